/* The first-come, first-served pool of db/pool.h: each waiter sleeps on a condition variable
 * of its own, on its stack, and is handed a connection (or the right to open one) directly. */
#include "pool.h"

#include <errno.h>
#include <stdlib.h>
#include <time.h>

struct pool_waiter {
	pthread_cond_t cond;
	bool served;  /* conn, or the right to open one, was handed over */
	void *conn;
	struct pool_waiter *next;
};

enum err pool_init(struct pool *p, int max_open)
{
	*p = (struct pool){.max_open = max_open};
	p->free = calloc((size_t)max_open, sizeof *p->free);
	if (!p->free)
		return ERR_NOMEM;
	if (pthread_mutex_init(&p->mu, NULL) != 0) {
		free(p->free);
		return ERR_NOMEM;
	}
	return ERR_OK;
}

void pool_finish(struct pool *p)
{
	pthread_mutex_destroy(&p->mu);
	free(p->free);
	p->free = NULL;
}

/* Hands conn (NULL: the right to open one) to the oldest waiter; false when none waits. */
static bool serve_waiter(struct pool *p, void *conn)
{
	struct pool_waiter *w = p->head;
	if (!w)
		return false;
	p->head = w->next;
	if (!p->head)
		p->tail = NULL;
	p->n_waiting--;
	w->served = true;
	w->conn = conn;
	pthread_cond_signal(&w->cond);
	return true;
}

static void unlink_waiter(struct pool *p, struct pool_waiter *w)
{
	struct pool_waiter **at = &p->head, *prev = NULL;
	while (*at && *at != w) {
		prev = *at;
		at = &(*at)->next;
	}
	if (!*at)
		return;
	*at = w->next;
	if (p->tail == w)
		p->tail = prev;
	p->n_waiting--;
}

enum err pool_take(struct pool *p, int wait_ms, void **ret_conn)
{
	pthread_mutex_lock(&p->mu);
	/* Nobody waits before us: a free connection, or room to open one, is ours at once. */
	if (!p->head && p->n_free) {
		*ret_conn = p->free[--p->n_free];
		pthread_mutex_unlock(&p->mu);
		return ERR_OK;
	}
	if (!p->head && p->open < p->max_open) {
		p->open++;
		*ret_conn = NULL;
		pthread_mutex_unlock(&p->mu);
		return ERR_OK;
	}
	struct pool_waiter w = {.served = false};
	pthread_condattr_t attr;
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&w.cond, &attr);
	pthread_condattr_destroy(&attr);
	/* On this stack while queued: served (serve_waiter) or timed out (unlink_waiter), it is
	 * off the queue before this function returns. */
	if (p->tail)
		p->tail->next = &w;
	else
		p->head = &w; /* cppcheck-suppress autoVariables */
	p->tail = &w; /* cppcheck-suppress autoVariables */
	p->n_waiting++;

	struct timespec until;
	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += wait_ms / 1000;
	until.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
	until.tv_sec += until.tv_nsec / 1000000000L;
	until.tv_nsec %= 1000000000L;
	int rc = 0;
	while (!w.served && rc != ETIMEDOUT)
		rc = pthread_cond_timedwait(&w.cond, &p->mu, &until);
	if (!w.served)
		unlink_waiter(p, &w);
	pthread_mutex_unlock(&p->mu);
	pthread_cond_destroy(&w.cond);
	if (!w.served)
		return ERR_UNAVAILABLE;
	*ret_conn = w.conn;
	return ERR_OK;
}

void pool_give(struct pool *p, void *conn)
{
	pthread_mutex_lock(&p->mu);
	if (!serve_waiter(p, conn)) {
		if (conn)
			p->free[p->n_free++] = conn;
		else
			p->open--; /* a closed one: its place is free */
	}
	pthread_mutex_unlock(&p->mu);
}

void *pool_drain(struct pool *p)
{
	pthread_mutex_lock(&p->mu);
	void *conn = p->n_free ? p->free[--p->n_free] : NULL;
	if (conn)
		p->open--;
	pthread_mutex_unlock(&p->mu);
	return conn;
}

/* The ticker's thread waits on a condition variable with a CLOCK_MONOTONIC deadline, so a
 * stop is seen at once and a wall-clock change never stretches or skips a period. */
#include "ticker.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "threadname.h"

struct ticker {
	const char *name; /* a literal */
	int period_ms;
	ticker_fn fn;
	void *arg;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	bool stopping;
};

static void *ticker_main(void *arg)
{
	struct ticker *t = arg;
	thread_name(t->name);
	pthread_mutex_lock(&t->lock);
	while (!t->stopping) {
		pthread_mutex_unlock(&t->lock);
		bool more = t->fn(t->arg);
		pthread_mutex_lock(&t->lock);
		if (more)
			continue;
		struct timespec until;
		clock_gettime(CLOCK_MONOTONIC, &until);
		until.tv_nsec += t->period_ms * 1000000L;
		until.tv_sec += until.tv_nsec / 1000000000L;
		until.tv_nsec %= 1000000000L;
		while (!t->stopping && pthread_cond_timedwait(&t->wake, &t->lock, &until) != ETIMEDOUT)
			;
	}
	pthread_mutex_unlock(&t->lock);
	return NULL;
}

enum err ticker_start(const char *name, int period_ms, ticker_fn fn, void *arg,
		      struct ticker **ret_t)
{
	struct ticker *t = calloc(1, sizeof *t);
	if (!t)
		return ERR_NOMEM;
	*t = (struct ticker){.name = name, .period_ms = period_ms, .fn = fn, .arg = arg};
	pthread_condattr_t attr;
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	int rc = pthread_cond_init(&t->wake, &attr);
	pthread_condattr_destroy(&attr);
	if (rc != 0) {
		free(t);
		return ERR_NOMEM;
	}
	pthread_mutex_init(&t->lock, NULL);
	if (pthread_create(&t->thread, NULL, ticker_main, t) != 0) {
		pthread_cond_destroy(&t->wake);
		pthread_mutex_destroy(&t->lock);
		free(t);
		return ERR_INTERNAL;
	}
	*ret_t = t;
	return ERR_OK;
}

void ticker_stop(struct ticker *t)
{
	if (!t)
		return;
	pthread_mutex_lock(&t->lock);
	t->stopping = true;
	pthread_cond_signal(&t->wake);
	pthread_mutex_unlock(&t->lock);
	pthread_join(t->thread, NULL);
	pthread_cond_destroy(&t->wake);
	pthread_mutex_destroy(&t->lock);
	free(t);
}

/* A thread that polls storage for due calls every TIMER_PERIOD_MS. API.md asks for timers to
 * fire within 1 s of their deadline; every request also settles a call's expired timers
 * before acting on it, so the poll period only bounds how late an untouched call settles. */
#include "timers.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

#include "log.h"

#define TIMER_PERIOD_MS 200

struct timers {
	const struct calls *cs;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	bool stopping;
};

static void *timer_main(void *arg)
{
	struct timers *t = arg;
	pthread_mutex_lock(&t->lock);
	while (!t->stopping) {
		pthread_mutex_unlock(&t->lock);
		size_t fired = 0;
		enum err e = calls_fire_due(t->cs, &fired);
		if (e != ERR_OK)
			log_write(LOG_WARN, "msg=\"timer pass failed\" error=%s", err_code(e));
		pthread_mutex_lock(&t->lock);
		if (fired || t->stopping)
			continue; /* more may be due right away */
		struct timespec until;
		clock_gettime(CLOCK_MONOTONIC, &until);
		until.tv_nsec += TIMER_PERIOD_MS * 1000000L;
		until.tv_sec += until.tv_nsec / 1000000000L;
		until.tv_nsec %= 1000000000L;
		while (!t->stopping && pthread_cond_timedwait(&t->wake, &t->lock, &until) != ETIMEDOUT)
			;
	}
	pthread_mutex_unlock(&t->lock);
	return NULL;
}

enum err timers_start(const struct calls *cs, struct timers **ret_t)
{
	struct timers *t = calloc(1, sizeof *t);
	if (!t)
		return ERR_NOMEM;
	pthread_condattr_t attr;
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&t->wake, &attr);
	pthread_condattr_destroy(&attr);
	pthread_mutex_init(&t->lock, NULL);
	t->cs = cs;
	if (pthread_create(&t->thread, NULL, timer_main, t) != 0) {
		pthread_cond_destroy(&t->wake);
		pthread_mutex_destroy(&t->lock);
		free(t);
		return ERR_INTERNAL;
	}
	*ret_t = t;
	return ERR_OK;
}

void timers_stop(struct timers *t)
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

#include "feed_signal.h"

#include <errno.h>
#include <time.h>

#include "clock.h"

enum err feed_signal_init(struct feed_signal *f, int64_t newest, bool reliable)
{
	pthread_condattr_t attr;
	if (pthread_condattr_init(&attr) != 0)
		return ERR_NOMEM;
	bool ok = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC) == 0 &&
		  pthread_cond_init(&f->cond, &attr) == 0;
	pthread_condattr_destroy(&attr);
	if (!ok)
		return ERR_NOMEM;
	if (pthread_mutex_init(&f->mu, NULL) != 0) {
		pthread_cond_destroy(&f->cond);
		return ERR_NOMEM;
	}
	f->newest = newest;
	f->reliable = reliable;
	f->interrupted = false;
	return ERR_OK;
}

void feed_signal_finish(struct feed_signal *f)
{
	pthread_cond_destroy(&f->cond);
	pthread_mutex_destroy(&f->mu);
}

void feed_signal_raise(struct feed_signal *f, int64_t newest)
{
	pthread_mutex_lock(&f->mu);
	if (newest > f->newest) {
		f->newest = newest;
		pthread_cond_broadcast(&f->cond);
	}
	pthread_mutex_unlock(&f->mu);
}

void feed_signal_set_reliable(struct feed_signal *f, bool reliable)
{
	pthread_mutex_lock(&f->mu);
	f->reliable = reliable;
	pthread_cond_broadcast(&f->cond); /* waiters pick their timeouts again */
	pthread_mutex_unlock(&f->mu);
}

void feed_signal_interrupt(struct feed_signal *f)
{
	pthread_mutex_lock(&f->mu);
	f->interrupted = true;
	pthread_cond_broadcast(&f->cond);
	pthread_mutex_unlock(&f->mu);
}

static struct timespec timespec_of(int64_t ms)
{
	return (struct timespec){.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};
}

enum err feed_signal_wait(struct feed_signal *f, int64_t *seen, int64_t deadline_ms)
{
	enum err e = ERR_OK;
	pthread_mutex_lock(&f->mu);
	int64_t recheck = clock_monotonic_ms() + FEED_RECHECK_MS;
	while (f->newest <= *seen) {
		int64_t now = clock_monotonic_ms();
		if (f->interrupted || now >= deadline_ms) {
			e = ERR_TIMEOUT;
			break;
		}
		if (!f->reliable && now >= recheck)
			break;
		int64_t until = f->reliable || deadline_ms < recheck ? deadline_ms : recheck;
		struct timespec ts = timespec_of(until);
		int rc = pthread_cond_timedwait(&f->cond, &f->mu, &ts);
		if (rc != 0 && rc != ETIMEDOUT && rc != EINTR)
			break;
	}
	if (f->newest > *seen)
		*seen = f->newest;
	pthread_mutex_unlock(&f->mu);
	return e;
}

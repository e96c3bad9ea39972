/* The watchdog that interrupts request-body reads past their deadline (see deadline.h). */
#include "deadline.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "ticker.h"

struct slot {
	pthread_mutex_t mu;        /* held by the watchdog while it signals, and by disarm */
	pthread_t thread;
	_Atomic int64_t armed_at;  /* the deadline in ns, 0 when disarmed */
};

struct deadlines {
	struct slot *slots;
	int n;
	atomic_int taken;
	struct ticker *watchdog;
};

/* The calling thread's slot, and its deadline (kept even without a slot). */
static _Thread_local struct slot *my_slot;
static _Thread_local int64_t my_deadline;

int64_t monotonic_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int wake_signal(void)
{
	return SIGRTMIN;
}

/* Its only work is to be delivered: the blocked poll() returns EINTR. */
static void on_wake_signal(int sig)
{
	(void)sig;
}

static bool watch(void *arg)
{
	struct deadlines *d = arg;
	int64_t now = monotonic_ns();
	int taken = atomic_load(&d->taken);
	for (int i = 0; i < taken && i < d->n; i++) {
		struct slot *s = &d->slots[i];
		int64_t at = atomic_load_explicit(&s->armed_at, memory_order_relaxed);
		if (!at || now < at)
			continue;
		pthread_mutex_lock(&s->mu);
		/* Again under the lock: disarmed, or armed anew for later, since it was read. */
		at = atomic_load(&s->armed_at);
		if (at && now >= at)
			pthread_kill(s->thread, wake_signal());
		pthread_mutex_unlock(&s->mu);
	}
	return false;
}

static void slots_free(struct deadlines *d, int initialized)
{
	for (int i = 0; i < initialized; i++)
		pthread_mutex_destroy(&d->slots[i].mu);
	free(d->slots);
	free(d);
}

enum err deadlines_start(int slots, struct deadlines **ret_d)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_wake_signal;
	sigemptyset(&sa.sa_mask);
	/* Restartable calls (read, write, recv, send) carry on; poll and sem_wait never restart. */
	sa.sa_flags = SA_RESTART;
	if (sigaction(wake_signal(), &sa, NULL) != 0)
		return ERR_INTERNAL;

	struct deadlines *d = calloc(1, sizeof *d);
	if (!d)
		return ERR_NOMEM;
	d->slots = calloc((size_t)slots, sizeof *d->slots);
	if (!d->slots) {
		free(d);
		return ERR_NOMEM;
	}
	int i = 0;
	for (; i < slots; i++)
		if (pthread_mutex_init(&d->slots[i].mu, NULL) != 0)
			break;
	d->n = i;
	enum err e = i < slots ? ERR_NOMEM
			       : ticker_start("cs-deadlines", DEADLINE_TICK_MS, watch, d, &d->watchdog);
	if (e != ERR_OK) {
		slots_free(d, i);
		return e;
	}
	*ret_d = d;
	return ERR_OK;
}

void deadlines_stop(struct deadlines *d)
{
	if (!d)
		return;
	ticker_stop(d->watchdog);
	slots_free(d, d->n);
}

bool deadlines_thread_init(struct deadlines *d)
{
	int i = atomic_fetch_add(&d->taken, 1);
	if (i >= d->n) {
		log_write(LOG_ERROR, "msg=\"no deadline slot for a worker thread\" slots=%d", d->n);
		return false;
	}
	d->slots[i].thread = pthread_self();
	my_slot = &d->slots[i];
	return true;
}

void deadlines_expire(struct deadlines *d)
{
	int taken = atomic_load(&d->taken);
	for (int i = 0; i < taken && i < d->n; i++) {
		int64_t armed = atomic_load(&d->slots[i].armed_at);
		/* 1 ns after the clock's start: passed, and not 0 (disarmed). */
		if (armed)
			atomic_compare_exchange_strong(&d->slots[i].armed_at, &armed, 1);
	}
}

void deadline_arm(int64_t at_ns)
{
	my_deadline = at_ns;
	if (my_slot)
		atomic_store(&my_slot->armed_at, at_ns);
}

void deadline_disarm(void)
{
	my_deadline = 0;
	if (!my_slot)
		return;
	pthread_mutex_lock(&my_slot->mu);
	atomic_store(&my_slot->armed_at, 0);
	pthread_mutex_unlock(&my_slot->mu);
}

bool deadline_passed(void)
{
	return my_deadline && monotonic_ns() >= my_deadline;
}

/* How a long poll of the feed waits without polling: each backend raises the newest seq it
 * knows to be visible (SQLite's syncer once a batch is durable; on PostgreSQL a numbering
 * round once it has committed, and the listener when another instance's has), and the
 * waiters of storage_events_wait sleep on a condition variable until it passes theirs. Only
 * db/ includes this header. */
#pragma once

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "err.h"

/* While raises may be missed (PostgreSQL's listener is down, or cannot LISTEN through
 * pgbouncer), waiters look again this often instead. */
#define FEED_RECHECK_MS 1000

struct feed_signal {
	pthread_mutex_t mu;
	pthread_cond_t cond;   /* CLOCK_MONOTONIC */
	int64_t newest;        /* the newest seq known to be visible */
	bool reliable;         /* every new seq is raised */
	bool interrupted;      /* storage_events_interrupt: waits end at once */
};

enum err feed_signal_init(struct feed_signal *f, int64_t newest, bool reliable);
void feed_signal_finish(struct feed_signal *f);
/* newest is visible now: wake the waiters it concerns. */
void feed_signal_raise(struct feed_signal *f, int64_t newest);
void feed_signal_set_reliable(struct feed_signal *f, bool reliable);
void feed_signal_interrupt(struct feed_signal *f);
/* As storage_events_wait. */
enum err feed_signal_wait(struct feed_signal *f, int64_t *seen, int64_t deadline_ms);

/* A bounded pool of database connections shared by the backends (SQLite's readers,
 * PostgreSQL's connections), handed out first come, first served.
 *
 * Fairness matters: with a condition variable a thread that just arrived can take the
 * connection a long waiter was woken for, again and again, and the slowest requests waited
 * hundreds of milliseconds behind a busy pool. Here a returned connection goes straight to the
 * oldest waiter, which alone is woken. Connections are opaque; the pool opens and closes none
 * itself: a taker that gets no connection but the right to open one opens it, and one that
 * finds its connection broken closes it and gives NULL back. Only db/ includes this header. */
#pragma once

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#include "err.h"

struct pool_waiter;

struct pool {
	pthread_mutex_t mu;
	void **free; /* a stack: the most recently used first, its caches warm */
	size_t n_free;
	int open, max_open;
	struct pool_waiter *head, *tail; /* waiting takers, oldest first */
	int n_waiting;
};

/* max_open connections at most; ERR_NOMEM. */
enum err pool_init(struct pool *p, int max_open);
/* Every connection must have been taken out (pool_drain) and closed first. */
void pool_finish(struct pool *p);

/* A connection for the caller alone: ERR_OK with *ret_conn a free one, or NULL when the
 * caller may open one (it counts as open from now; give NULL back if opening fails). Waits up
 * to wait_ms behind the takers before it, then ERR_UNAVAILABLE. */
enum err pool_take(struct pool *p, int wait_ms, void **ret_conn);
/* Gives back what pool_take handed out: the connection, or NULL for one closed (or never
 * opened), whose place the next taker may open again. */
void pool_give(struct pool *p, void *conn);
/* One free connection taken out for good, for the caller to close; NULL when none is left. */
void *pool_drain(struct pool *p);

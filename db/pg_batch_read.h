/* Token minting's access reads on PostgreSQL, coalesced: the threads that want one at the same
 * time are answered by one statement in one round trip (db/pg_batch_read.c says how and why).
 * The batcher knows no SQL: the backend's run function answers a batch. Only db/ includes
 * this header. */
#pragma once

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>

#include "err.h"
#include "storage.h"

#define ACCESS_BATCH_MAX 64 /* requests answered by one statement at most */

enum access_read_state { ACCESS_QUEUED, ACCESS_LEADS, ACCESS_DONE };

/* One thread's request, on its stack. run reads id and user and sets e, and answer when e is
 * ERR_OK; the rest is the batcher's. */
struct access_read {
	const char *id, *user;
	enum err e;
	struct call_access answer;
	enum access_read_state state;
	pthread_cond_t wake;
	struct access_read *next;
};

/* Answers every one of reqs[0..n), 1 <= n <= ACCESS_BATCH_MAX, without blocking on the
 * batcher. */
typedef void (*access_batch_fn)(void *arg, struct access_read *const *reqs, size_t n);

struct access_batcher {
	pthread_mutex_t mu;
	struct access_read *head, *tail; /* queued, oldest first */
	int in_flight, max_in_flight;    /* batches being answered (run) now, and the limit */
	access_batch_fn run;
	void *arg;
	atomic_uint_fast64_t batches, reads; /* answered so far (reads / batches = batch size) */
};

/* At most max_in_flight (>= 1) batches run at once. */
void access_batcher_init(struct access_batcher *b, int max_in_flight, access_batch_fn run,
			 void *arg);
/* No read may be in progress. */
void access_batcher_finish(struct access_batcher *b);
/* What run answered for (id, user), from a statement sent after this call began; *ret is set
 * only on ERR_OK. */
enum err access_batcher_read(struct access_batcher *b, const char *id, const char *user,
			     struct call_access *ret);

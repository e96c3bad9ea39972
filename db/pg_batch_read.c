/* Group commit for token minting's reads. On PostgreSQL a token costs one statement, and each
 * statement wakes a server backend, runs the executor's start-up for one row and wakes the
 * worker again; the round trip, not the row, is the cost. So the threads that want an access
 * read at the same time share one statement over arrays (db/postgres.c's run function):
 *
 * - A thread that arrives while fewer than max_in_flight batches run leads at once: it takes
 *   the queue (which is then only itself: below) and runs it. A lone request waits for
 *   nothing; there is no timer and no delay.
 * - A thread that arrives while max_in_flight batches run queues and sleeps. Batches form only
 *   while others are in flight, so the queue is never non-empty with fewer batches running
 *   (a finished leader hands the lead to the oldest queued thread before it lets go).
 * - The leader takes up to ACCESS_BATCH_MAX queued requests, oldest first, itself included,
 *   runs them, then under the lock marks each done and wakes it, and hands the lead on.
 *
 * Freshness: a request is answered only by a batch that took it from the queue, and a leader
 * takes requests only after they were queued, then sends its statement. The statement (READ
 * COMMITTED, one statement outside a transaction) takes its snapshot when the server starts
 * it, after the request arrived; so a token asked for after another instance's COMMIT of "call
 * ended" returned sees the call ended, as a read of its own would (storage.h rule 8). */
#include "pg_batch_read.h"

void access_batcher_init(struct access_batcher *b, int max_in_flight, access_batch_fn run,
			 void *arg)
{
	*b = (struct access_batcher){.max_in_flight = max_in_flight > 0 ? max_in_flight : 1,
				     .run = run,
				     .arg = arg};
	pthread_mutex_init(&b->mu, NULL);
	atomic_init(&b->batches, 0);
	atomic_init(&b->reads, 0);
}

void access_batcher_finish(struct access_batcher *b)
{
	pthread_mutex_destroy(&b->mu);
}

/* Called by the thread whose request leads, with mu held, at the head of the queue (it leads
 * only from there); returns with mu held and its own request answered. */
static void lead(struct access_batcher *b)
{
	struct access_read *batch[ACCESS_BATCH_MAX];
	size_t n = 0;
	for (; b->head && n < ACCESS_BATCH_MAX; b->head = b->head->next)
		batch[n++] = b->head;
	if (!b->head)
		b->tail = NULL;
	pthread_mutex_unlock(&b->mu);
	b->run(b->arg, batch, n);
	atomic_fetch_add_explicit(&b->batches, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&b->reads, n, memory_order_relaxed);
	pthread_mutex_lock(&b->mu);
	/* Signalled under the lock: a waiter destroys its condition variable as soon as it sees
	 * ACCESS_DONE, which it can only once this thread lets go of mu. */
	for (size_t i = 0; i < n; i++) {
		batch[i]->state = ACCESS_DONE;
		pthread_cond_signal(&batch[i]->wake);
	}
	b->in_flight--;
	if (b->head) {
		b->in_flight++;
		b->head->state = ACCESS_LEADS;
		pthread_cond_signal(&b->head->wake);
	}
}

enum err access_batcher_read(struct access_batcher *b, const char *id, const char *user,
			     struct call_access *ret)
{
	struct access_read r = {.id = id, .user = user, .e = ERR_INTERNAL, .state = ACCESS_QUEUED};
	pthread_cond_init(&r.wake, NULL);
	pthread_mutex_lock(&b->mu);
	if (b->tail)
		b->tail->next = &r;
	else
		b->head = &r;
	b->tail = &r;
	if (b->in_flight < b->max_in_flight) {
		b->in_flight++;
		r.state = ACCESS_LEADS;
	}
	while (r.state == ACCESS_QUEUED)
		pthread_cond_wait(&r.wake, &b->mu);
	if (r.state == ACCESS_LEADS)
		lead(b);
	pthread_mutex_unlock(&b->mu);
	pthread_cond_destroy(&r.wake);
	if (r.e == ERR_OK)
		*ret = r.answer;
	return r.e;
}

/* A sweep deletes batches of PURGE_BATCH calls, each in its own transaction with a pause
 * after it, until no ended call is old enough; then what no call owns, the same way; then
 * it sleeps SWEEP_INTERVAL_MS. Small transactions keep the purge off the request path: on
 * SQLite the one writer runs each batch between the requests' own transactions, so a request
 * waits for one batch at most, never for the whole purge; on PostgreSQL a batch holds only
 * the rows it deletes, and instances purging at once share them (storage.h rule 11). The
 * pause is twice what the batch took, queueing included, so the purge has a third of the
 * writer at most and yields more of it the busier the service is. */
#include "retention.h"

#include <inttypes.h>
#include <stdlib.h>
#include <time.h>

#include "clock.h"
#include "log.h"
#include "metrics.h"
#include "ticker.h"

#define PURGE_BATCH 200     /* about 10 ms of SQLite's writer */
#define PAUSE_FACTOR 2      /* the pause after a batch, in what the batch took */
#define TICK_MS 1000        /* how often an idle thread looks whether the next sweep is due */
#define PAUSE_MAX_MS 1000   /* a pause is slept in the round, so that a stop waits this at most */
#define SWEEP_INTERVAL_MS (60 * 1000)
#define DAY_MS (24LL * 60 * 60 * 1000)

struct retention {
	struct storage *st;
	const struct clock *clk;
	int64_t keep_ms;
	struct ticker *ticker;
	/* Used by the ticker's thread only. */
	int64_t resume_at;   /* monotonic ms: the end of the pause, or the next sweep */
	bool calls_done;     /* this sweep has no ended call left to purge */
	uint64_t calls, unowned;
};

struct purge_job {
	int64_t before;
	bool calls;          /* purge calls, or what no call owns */
	size_t n;
};

static enum err purge_tx(struct storage_tx *tx, void *arg)
{
	struct purge_job *j = arg;
	j->n = 0;
	return j->calls ? storage_tx_purge_calls(tx, j->before, PURGE_BATCH, &j->n)
			: storage_tx_purge_unowned(tx, j->before, PURGE_BATCH, &j->n);
}

static void sweep_done(struct retention *r, int64_t now)
{
	if (r->calls || r->unowned)
		log_write(LOG_INFO, "msg=\"retention sweep\" calls=%" PRIu64 " unowned_rows=%" PRIu64,
			  r->calls, r->unowned);
	r->calls = r->unowned = 0;
	r->calls_done = false;
	r->resume_at = now + SWEEP_INTERVAL_MS;
}

/* One batch, then its pause, slept here: true while the sweep goes on, so that the ticker
 * runs the next batch at once; an idle thread wakes every TICK_MS to see if a sweep is due. */
static bool purge_round(void *arg)
{
	struct retention *r = arg;
	int64_t start = clock_monotonic_ms();
	if (start < r->resume_at)
		return false;
	struct purge_job j = {.before = clock_now_ms(r->clk) - r->keep_ms, .calls = !r->calls_done};
	enum err e = storage_transact(r->st, purge_tx, &j);
	int64_t now = clock_monotonic_ms();
	if (e != ERR_OK) {
		log_write(LOG_WARN, "msg=\"retention batch failed, retried at the next sweep\" "
				    "error=%s",
			  err_code(e));
		sweep_done(r, now);
		return false;
	}
	if (j.calls) {
		metrics_calls_purged(j.n);
		r->calls += j.n;
		r->calls_done = j.n == 0;
	} else {
		r->unowned += j.n;
		if (j.n == 0) {
			sweep_done(r, now);
			return false;
		}
	}
	int64_t pause = PAUSE_FACTOR * (now - start);
	pause = pause > PAUSE_MAX_MS ? PAUSE_MAX_MS : pause;
	nanosleep(&(struct timespec){.tv_sec = pause / 1000, .tv_nsec = pause % 1000 * 1000000},
		  NULL);
	return true;
}

enum err retention_start(struct storage *st, const struct clock *clk, int days,
			 struct retention **ret_r)
{
	if (days <= 0) {
		*ret_r = NULL;
		return ERR_OK;
	}
	struct retention *r = calloc(1, sizeof *r);
	if (!r)
		return ERR_NOMEM;
	*r = (struct retention){.st = st, .clk = clk, .keep_ms = days * DAY_MS};
	enum err e = ticker_start("cs-retention", TICK_MS, purge_round, r, &r->ticker);
	if (e != ERR_OK) {
		free(r);
		return e;
	}
	*ret_r = r;
	return ERR_OK;
}

void retention_stop(struct retention *r)
{
	if (!r)
		return;
	ticker_stop(r->ticker);
	free(r);
}

/* A thread that polls storage for due calls every TIMER_PERIOD_MS. API.md asks for timers to
 * fire within 1 s of their deadline; every request also settles a call's expired timers
 * before acting on it, so the poll period only bounds how late an untouched call settles. */
#include "timers.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "ticker.h"

#define TIMER_PERIOD_MS 200
/* A call the timers cannot settle (an unreadable row) is passed over for a while instead of
 * being read again five times a second, each read logging its own database error, and is
 * named in the log at most once per FAILURE_LOG_INTERVAL_MS. A request that touches the call
 * still settles it, so the pause only delays a call nobody asks about. */
#define FAILURE_RETRY_MS (60LL * 1000)
#define FAILURE_LOG_INTERVAL_MS (10LL * 60 * 1000)
#define FAILURES_REMEMBERED 64

struct failing {
	char call_id[ID_LEN + 1];
	int64_t logged_at_ms;
	int64_t retry_at_ms;
};

struct timers {
	const struct calls *cs;
	struct ticker *ticker;
	/* Used by the ticker's thread only. */
	struct failing failing[FAILURES_REMEMBERED];
	size_t next_failing;
};

static struct failing *failing_find(struct timers *t, const char *call_id)
{
	for (size_t i = 0; i < FAILURES_REMEMBERED; i++)
		if (strcmp(t->failing[i].call_id, call_id) == 0)
			return &t->failing[i];
	return NULL;
}

static bool skip_failing(void *arg, const char *call_id)
{
	const struct failing *f = failing_find(arg, call_id);
	return f && clock_now_ms(&clock_system) < f->retry_at_ms;
}

/* Notes the failure of call_id; true when it is to be logged. */
static bool failing_note(struct timers *t, const char *call_id, int64_t now)
{
	struct failing *f = failing_find(t, call_id);
	if (!f) {
		f = &t->failing[t->next_failing++ % FAILURES_REMEMBERED];
		*f = (struct failing){.logged_at_ms = INT64_MIN};
		memcpy(f->call_id, call_id, sizeof f->call_id);
	}
	f->retry_at_ms = now + FAILURE_RETRY_MS;
	if (f->logged_at_ms != INT64_MIN && now - f->logged_at_ms < FAILURE_LOG_INTERVAL_MS)
		return false;
	f->logged_at_ms = now;
	return true;
}

static void log_pass(struct timers *t, enum err e, const struct timer_pass *pass)
{
	if (e != ERR_OK)
		log_write(LOG_WARN, "msg=\"timer pass stopped\" error=%s", err_code(e));
	int64_t now = clock_now_ms(&clock_system);
	size_t named = pass->failed < TIMER_FAILURES_KEPT ? pass->failed : TIMER_FAILURES_KEPT;
	for (size_t i = 0; i < named; i++)
		if (failing_note(t, pass->failures[i].call_id, now))
			log_write(LOG_ERROR,
				  "msg=\"timer cannot settle call, skipped\" call_id=%s error=%s "
				  "failing_calls=%zu",
				  pass->failures[i].call_id, err_code(pass->failures[i].e),
				  pass->failed);
}

/* One pass; when something fired, more may be due right away. */
static bool timer_pass(void *arg)
{
	struct timers *t = arg;
	struct timer_pass pass;
	enum err e = calls_fire_due(t->cs, skip_failing, t, &pass);
	if (e != ERR_OK || pass.failed)
		log_pass(t, e, &pass);
	return pass.fired > 0;
}

enum err timers_start(const struct calls *cs, struct timers **ret_t)
{
	struct timers *t = calloc(1, sizeof *t);
	if (!t)
		return ERR_NOMEM;
	t->cs = cs;
	enum err e = ticker_start("cs-timers", TIMER_PERIOD_MS, timer_pass, t, &t->ticker);
	if (e != ERR_OK) {
		free(t);
		return e;
	}
	*ret_t = t;
	return ERR_OK;
}

void timers_stop(struct timers *t)
{
	if (!t)
		return;
	ticker_stop(t->ticker);
	free(t);
}

/* A thread that polls storage for due calls every TIMER_PERIOD_MS. API.md asks for timers to
 * fire within 1 s of their deadline; every request also settles a call's expired timers
 * before acting on it, so the poll period only bounds how late an untouched call settles. */
#include "timers.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "ticker.h"

#define TIMER_PERIOD_MS 200
/* A call the timers cannot settle is retried on every pass, but logged again only after this
 * long, so that one unreadable row does not flood the log five times a second. */
#define FAILURE_LOG_INTERVAL_MS (10LL * 60 * 1000)
#define FAILURES_REMEMBERED 64

struct reported {
	char call_id[ID_LEN + 1];
	int64_t at_ms;
};

struct timers {
	const struct calls *cs;
	struct ticker *ticker;
	/* Used by the ticker's thread only. */
	struct reported reported[FAILURES_REMEMBERED];
	size_t next_report;
};

/* True when call_id was not logged within FAILURE_LOG_INTERVAL_MS; remembers it as logged. */
static bool report_due(struct timers *t, const char *call_id, int64_t now)
{
	for (size_t i = 0; i < FAILURES_REMEMBERED; i++) {
		struct reported *r = &t->reported[i];
		if (strcmp(r->call_id, call_id) != 0)
			continue;
		if (now - r->at_ms < FAILURE_LOG_INTERVAL_MS)
			return false;
		r->at_ms = now;
		return true;
	}
	struct reported *r = &t->reported[t->next_report++ % FAILURES_REMEMBERED];
	memcpy(r->call_id, call_id, sizeof r->call_id);
	r->at_ms = now;
	return true;
}

static void log_pass(struct timers *t, enum err e, const struct timer_pass *pass)
{
	if (e != ERR_OK)
		log_write(LOG_WARN, "msg=\"timer pass stopped\" error=%s", err_code(e));
	int64_t now = clock_now_ms(&clock_system);
	size_t named = pass->failed < TIMER_FAILURES_KEPT ? pass->failed : TIMER_FAILURES_KEPT;
	for (size_t i = 0; i < named; i++)
		if (report_due(t, pass->failures[i].call_id, now))
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
	enum err e = calls_fire_due(t->cs, &pass);
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

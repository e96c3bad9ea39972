/* The counters every layer shares (see metrics.h) and the Prometheus text of histograms. The
 * counters are static atomics: one set per process, like the process they describe, written
 * with relaxed adds from any thread and read only by the exposition. */
#include "metrics.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void add(_Atomic uint64_t *counter, uint64_t n)
{
	atomic_fetch_add_explicit(counter, n, memory_order_relaxed);
}

static uint64_t get(const _Atomic uint64_t *counter)
{
	return atomic_load_explicit(counter, memory_order_relaxed);
}

void metrics_observe(struct metrics_histogram *h, const struct metrics_bounds *b, int64_t v)
{
	size_t i = 0;
	while (i < b->n && v > b->le[i])
		i++;
	add(&h->buckets[i], 1);
	add(&h->sum, v > 0 ? (uint64_t)v : 0);
}

void metrics_text_finish(struct metrics_text *t)
{
	free(t->buf);
	*t = (struct metrics_text){0};
}

void metrics_printf(struct metrics_text *t, const char *fmt, ...)
{
	for (int tries = 0; tries < 2 && !t->failed; tries++) {
		va_list ap;
		va_start(ap, fmt);
		size_t room = t->cap - t->len;
		int n = vsnprintf(t->buf ? t->buf + t->len : NULL, room, fmt, ap);
		va_end(ap);
		if (n < 0) {
			t->failed = true;
			return;
		}
		if ((size_t)n < room) {
			t->len += (size_t)n;
			return;
		}
		size_t cap = t->cap ? t->cap : 4096;
		while (cap - t->len <= (size_t)n)
			cap *= 2;
		char *grown = realloc(t->buf, cap);
		if (!grown) {
			t->failed = true;
			return;
		}
		t->buf = grown;
		t->cap = cap;
	}
}

void metrics_family(struct metrics_text *t, const char *name, const char *type, const char *help)
{
	metrics_printf(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void metrics_histogram_text(struct metrics_text *t, const char *name, const char *labels,
			    const struct metrics_histogram *h, const struct metrics_bounds *b)
{
	const char *sep = *labels ? "," : "";
	uint64_t cumulative = 0;
	for (size_t i = 0; i <= b->n; i++) {
		cumulative += get(&h->buckets[i]);
		if (i < b->n)
			metrics_printf(t, "%s_bucket{%s%sle=\"%g\"} %" PRIu64 "\n", name, labels, sep,
				       (double)b->le[i] / b->scale, cumulative);
		else
			metrics_printf(t, "%s_bucket{%s%sle=\"+Inf\"} %" PRIu64 "\n", name, labels,
				       sep, cumulative);
	}
	/* The count is the +Inf bucket as read, so the two always agree. */
	const char *open = *labels ? "{" : "", *close = *labels ? "}" : "";
	metrics_printf(t, "%s_sum%s%s%s %.6f\n", name, open, labels, close,
		       (double)get(&h->sum) / b->scale);
	metrics_printf(t, "%s_count%s%s%s %" PRIu64 "\n", name, open, labels, close, cumulative);
}

/* --- calls --- */

static _Atomic uint64_t calls_ended[OUTCOME_FAILED + 1];
static _Atomic uint64_t calls_purged;

static const int64_t join_le_ms[] = {500, 1000, 2000, 3000, 5000, 10000, 15000, 20000, 30000,
				     45000, 60000, 120000};
_Static_assert(sizeof join_le_ms / sizeof join_le_ms[0] <= METRICS_BUCKETS_MAX, "buckets");
static const struct metrics_bounds join_bounds = {
	join_le_ms, sizeof join_le_ms / sizeof join_le_ms[0], 1e3};
static struct metrics_histogram time_to_join;

void metrics_call_ended(enum call_outcome outcome)
{
	if (outcome > OUTCOME_NONE && outcome <= OUTCOME_FAILED)
		add(&calls_ended[outcome], 1);
}

void metrics_calls_purged(size_t n)
{
	add(&calls_purged, n);
}

void metrics_time_to_join(int64_t ms)
{
	metrics_observe(&time_to_join, &join_bounds, ms);
}

/* --- storage --- */

static const char *const backend_names[METRICS_BACKENDS] = {
	[METRICS_SQLITE] = "sqlite", [METRICS_POSTGRES] = "postgresql"};
static const char *const db_error_names[METRICS_DB_ERRORS] = {
	[METRICS_DB_UNAVAILABLE] = "unavailable",
	[METRICS_DB_SERIALIZATION] = "serialization",
	[METRICS_DB_NOMEM] = "out_of_memory",
	[METRICS_DB_INTERNAL] = "internal",
};
static _Atomic uint64_t db_errors[METRICS_BACKENDS][METRICS_DB_ERRORS];

static const int64_t batch_le[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512};
_Static_assert(sizeof batch_le / sizeof batch_le[0] <= METRICS_BUCKETS_MAX, "buckets");
static const struct metrics_bounds batch_bounds = {batch_le, sizeof batch_le / sizeof batch_le[0],
						   1};
static struct metrics_histogram commit_batches[METRICS_BACKENDS];

void metrics_db_error(enum metrics_backend backend, enum metrics_db_error kind)
{
	add(&db_errors[backend][kind], 1);
}

void metrics_commit_batch(enum metrics_backend backend, size_t n)
{
	metrics_observe(&commit_batches[backend], &batch_bounds, (int64_t)n);
}

void metrics_domain_text(struct metrics_text *t, const char *backend)
{
	metrics_family(t, "callstate_calls_ended_total", "counter",
		       "Calls that ended, by outcome.");
	for (int o = OUTCOME_NONE + 1; o <= OUTCOME_FAILED; o++)
		metrics_printf(t, "callstate_calls_ended_total{outcome=\"%s\"} %" PRIu64 "\n",
			       call_outcome_name((enum call_outcome)o), get(&calls_ended[o]));
	metrics_family(t, "callstate_calls_purged_total", "counter",
		       "Ended calls deleted with their events and webhooks by retention "
		       "(CALLSTATE_RETENTION_DAYS).");
	metrics_printf(t, "callstate_calls_purged_total %" PRIu64 "\n", get(&calls_purged));
	metrics_family(t, "callstate_time_to_join_seconds", "histogram",
		       "From a member's token (on accept, or call creation for the caller) to "
		       "their first participant_joined.");
	metrics_histogram_text(t, "callstate_time_to_join_seconds", "", &time_to_join,
			       &join_bounds);

	metrics_family(t, "callstate_db_errors_total", "counter",
		       "Failed database statements, commits and syncs, by kind.");
	int b = 0;
	while (b < METRICS_BACKENDS && strcmp(backend_names[b], backend) != 0)
		b++;
	if (b == METRICS_BACKENDS)
		return;
	for (int k = 0; k < METRICS_DB_ERRORS; k++)
		metrics_printf(t, "callstate_db_errors_total{backend=\"%s\",kind=\"%s\"} %" PRIu64 "\n",
			       backend, db_error_names[k], get(&db_errors[b][k]));
	char labels[32];
	snprintf(labels, sizeof labels, "backend=\"%s\"", backend);
	metrics_family(t, "callstate_db_commit_batch_transactions", "histogram",
		       "Transactions committed together by one commit.");
	metrics_histogram_text(t, "callstate_db_commit_batch_transactions", labels,
			       &commit_batches[b], &batch_bounds);
}

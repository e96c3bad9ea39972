/* Process-wide counters behind GET /metrics. Every layer counts here without knowing about
 * HTTP: the domain counts ended calls and times to join, the storage backends count their
 * errors and commit batches, the service its requests and webhooks. Counting is a relaxed
 * atomic add and never fails, logs or locks, so the hot paths pay a few nanoseconds;
 * reading is for the exposition only, which may see one counter a moment before another. */
#pragma once

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "model.h"

/* A histogram over fixed upper bounds, in the integer unit it is observed in; one more bucket
 * past the last bound is +Inf. Buckets are kept apart (not cumulative) so that an observation
 * is one add; the exposition sums them. */
#define METRICS_BUCKETS_MAX 16
struct metrics_histogram {
	_Atomic uint64_t buckets[METRICS_BUCKETS_MAX + 1];
	_Atomic uint64_t sum;
};

struct metrics_bounds {
	const int64_t *le; /* ascending, at most METRICS_BUCKETS_MAX */
	size_t n;
	double scale;      /* units per exposed unit: 1e6 for microseconds shown as seconds */
};

void metrics_observe(struct metrics_histogram *h, const struct metrics_bounds *b, int64_t v);

/* The exposition text, grown as it is written; failed is set (and the text left short) when
 * memory runs out. */
struct metrics_text {
	char *buf;
	size_t len, cap;
	bool failed;
};
void metrics_text_finish(struct metrics_text *t);
void metrics_printf(struct metrics_text *t, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* The HELP and TYPE lines of a metric family. */
void metrics_family(struct metrics_text *t, const char *name, const char *type, const char *help);
/* The _bucket, _sum and _count lines of one histogram; labels is "" or `key="value",...`. */
void metrics_histogram_text(struct metrics_text *t, const char *name, const char *labels,
			    const struct metrics_histogram *h, const struct metrics_bounds *b);

/* --- what the domain and the storage count --- */

/* A call ended (counted once, after its transaction committed). */
void metrics_call_ended(enum call_outcome outcome);
/* n ended calls purged by retention (CALLSTATE_RETENTION_DAYS). */
void metrics_calls_purged(size_t n);
/* A member's first join of the room, ms after their token was minted. */
void metrics_time_to_join(int64_t ms);

enum metrics_backend { METRICS_SQLITE, METRICS_POSTGRES, METRICS_BACKENDS };
/* What a failed database statement or sync came to; a unique-key conflict is an answer (a
 * duplicate), not an error, and is not counted. */
enum metrics_db_error {
	METRICS_DB_UNAVAILABLE,   /* busy, locked, full, I/O, connection lost, read-only */
	METRICS_DB_SERIALIZATION, /* a serialization failure or deadlock: the transaction reran */
	METRICS_DB_NOMEM,
	METRICS_DB_INTERNAL,      /* anything else: a bug, a schema or a value we cannot read */
	METRICS_DB_ERRORS,
};
void metrics_db_error(enum metrics_backend backend, enum metrics_db_error kind);
/* A commit of n transactions at once (SQLite groups them; PostgreSQL commits each alone). */
void metrics_commit_batch(enum metrics_backend backend, size_t n);

/* Appends the families above to t, the storage's for backend (storage_backend_name) only. */
void metrics_domain_text(struct metrics_text *t, const char *backend);

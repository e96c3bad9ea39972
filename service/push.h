/* Push of the feed to CALLSTATE_EVENTS_URL (API.md "Events"): signed as Standard Webhooks
 * says, in seq order per call, retried with backoff for 24 h, queued in the database
 * (storage.h rule 11) so that a restart loses nothing. */
#pragma once

#include "config.h"
#include "metrics.h"
#include "storage.h"

struct push;

/* Starts the queueing thread and PUSH_SENDERS sending threads; *ret_p is NULL (and nothing
 * runs) when CALLSTATE_EVENTS_URL is empty. cfg and st must outlive the push. */
enum err push_start(const struct config *cfg, struct storage *st, struct push **ret_p);
/* Stops the threads; an attempt in flight is cut short (it is made again after a restart).
 * NULL is accepted. */
void push_stop(struct push *p);

/* What this process's attempts came to since it started. */
struct push_counts {
	uint64_t delivered, retried, dead, stopped;
};
void push_counts(struct push_counts *ret);

/* The Standard Webhooks signature header value of "id.timestamp.body": "v1,<base64>" per key,
 * separated by spaces, into out (cap at least PUSH_SIGNATURE_MAX); false without memory. */
#define PUSH_SIGNATURE_MAX (CONFIG_EVENTS_KEYS * 48)
bool push_sign(const struct config *cfg, const char *id, long long timestamp,
	       const char *body, size_t len, char *out, size_t cap);

/* The delivery families of GET /metrics, from status (read from storage) and the counts. */
void push_metrics_text(struct metrics_text *t, const struct delivery_status *status,
		       int64_t now);

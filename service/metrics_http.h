/* The service's counters for GET /metrics (requests by route and status with their latency,
 * LiveKit webhooks by event and result) and the whole exposition text. Counting is a few
 * relaxed atomic adds (see metrics.h). */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "http.h"
#include "metrics.h"
#include "webhook.h"

/* Counts an answered request by r->route_slot and r->status. */
void metrics_http_request(const struct req *r, int64_t duration_us);
/* Counts a webhook delivery that was answered with e: we is NULL when the body was refused
 * before it was parsed (its event unknown); duplicate tells a repeat delivery. */
void metrics_http_webhook(const struct webhook_event *we, enum err e, bool duplicate);
/* Appends every family, the domain's and the storage's included, to t. */
void metrics_http_text(const struct app *app, struct metrics_text *t);

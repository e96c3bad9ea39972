/* GET /v1/events: the feed, paged by seq, and a long poll with wait=S. Event data is stored as
 * JSON text and copied into the answer as is, never parsed again. */
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "jsonutil.h"
#include "push.h"
#include "routes.h"
#include "timefmt.h"

#define EVENTS_LIMIT_DEFAULT 100
#define EVENTS_LIMIT_MAX 500
#define EVENTS_WAIT_MAX_S 30

/* Long polls waiting now, at most CALLSTATE_LONG_POLLS. */
static atomic_int long_polls;
#define LONG_POLLS_END_MS 5000

int long_polls_waiting(void)
{
	return atomic_load(&long_polls);
}

void long_polls_end(struct storage *st)
{
	storage_events_interrupt(st);
	for (int waited = 0; atomic_load(&long_polls) > 0 && waited < LONG_POLLS_END_MS; waited++)
		nanosleep(&(struct timespec){.tv_nsec = 1000000}, NULL);
}

static bool parse_nonneg(const char *s, long long max, long long *ret)
{
	char *end;
	if (!*s || *s == '-' || *s == '+')
		return false;
	long long v = strtoll(s, &end, 10);
	if (*end || v < 0 || v > max)
		return false;
	*ret = v;
	return true;
}

static size_t event_json_cap(const struct event *ev)
{
	return strlen(ev->data) + 256;
}

static size_t format_event(char *out, size_t cap, const struct event *ev)
{
	char at[TIMEFMT_LEN + 1], call_id[ID_LEN + 3], version[24];
	timefmt_format(ev->at, at);
	if (*ev->call_id) {
		snprintf(call_id, sizeof call_id, "\"%s\"", ev->call_id);
		snprintf(version, sizeof version, "%" PRId64, ev->call_version);
	} else {
		snprintf(call_id, sizeof call_id, "null");
		snprintf(version, sizeof version, "null");
	}
	int n = snprintf(out, cap,
			 "{\"id\":\"%s\",\"seq\":%" PRId64 ",\"type\":\"%s\",\"at\":\"%s\","
			 "\"call_id\":%s,\"call_version\":%s,\"data\":%s}",
			 ev->id, ev->seq, ev->type, at, call_id, version, ev->data);
	return n < 0 ? 0 : (size_t)n;
}

char *event_json(const struct event *ev, size_t *ret_len)
{
	size_t cap = event_json_cap(ev);
	char *out = malloc(cap);
	if (out)
		*ret_len = format_event(out, cap, ev);
	return out;
}

/* A long poll's empty page: read again each time events past after may have come, until
 * some have or wait_s seconds have passed. */
static enum err wait_for_events(struct storage *st, int64_t after, int limit, int wait_s,
				struct event_page *page)
{
	int64_t deadline = clock_monotonic_ms() + (int64_t)wait_s * 1000, seen = after;
	enum err e = ERR_OK;
	while (e == ERR_OK && page->n == 0 && storage_events_wait(st, &seen, deadline) == ERR_OK) {
		event_page_finish(page);
		e = storage_events_after(st, after, limit, page);
	}
	return e;
}

/* The answer of GET /v1/events: the page, or the refusal of e; frees the page. */
static int reply_page(struct req *r, enum err e, struct event_page *page)
{
	if (e != ERR_OK) {
		event_page_finish(page);
		return reply_refusal(r, e, NULL);
	}
	size_t cap = 32;
	for (size_t i = 0; i < page->n; i++)
		cap += event_json_cap(&page->events[i]) + 1;
	char *body = malloc(cap);
	if (!body) {
		event_page_finish(page);
		return reply_error(r, ERR_NOMEM, NULL);
	}
	size_t len = (size_t)snprintf(body, cap, "{\"events\":[");
	for (size_t i = 0; i < page->n; i++) {
		if (i)
			body[len++] = ',';
		len += format_event(body + len, cap - len, &page->events[i]);
	}
	len += (size_t)snprintf(body + len, cap - len, "]}");
	event_page_finish(page);
	int rc = reply_json(r, 200, body, len);
	free(body);
	return rc;
}

int handle_events_list(struct req *r)
{
	long long after = 0, limit = EVENTS_LIMIT_DEFAULT, wait_s = 0;
	char buf[32];
	enum err e = req_auth(r, ROLE_SERVICE);
	if (e != ERR_OK)
		return reply_error(r, e, NULL);
	int n = req_query(r, "after", 0, buf, sizeof buf);
	if (n != -1 && (n < 0 || !parse_nonneg(buf, INT64_MAX, &after)))
		return reply_error(r, ERR_INVALID, "after: must be a non-negative integer");
	n = req_query(r, "limit", 0, buf, sizeof buf);
	if (n != -1 && (n < 0 || !parse_nonneg(buf, EVENTS_LIMIT_MAX, &limit) || limit < 1))
		return reply_error(r, ERR_INVALID, "limit: must be an integer from 1 to 500");
	n = req_query(r, "wait", 0, buf, sizeof buf);
	if (n != -1 && (n < 0 || !parse_nonneg(buf, EVENTS_WAIT_MAX_S, &wait_s)))
		return reply_error(r, ERR_INVALID, "wait: must be an integer from 0 to 30");

	struct event_page page = {0};
	e = storage_events_after(r->app->st, after, (int)limit, &page);
	if (e != ERR_OK || page.n > 0 || wait_s == 0)
		return reply_page(r, e, &page);
	/* Each waiting long poll holds a worker thread. */
	if (atomic_fetch_add(&long_polls, 1) >= r->app->cfg->long_polls) {
		atomic_fetch_sub(&long_polls, 1);
		return reply_error(r, ERR_UNAVAILABLE,
				   "too many long polls are waiting (CALLSTATE_LONG_POLLS)");
	}
	e = wait_for_events(r->app->st, after, (int)limit, (int)wait_s, &page);
	/* Counted until answered: a graceful stop (long_polls_end) must not stop the server
	 * between the wake-up and the answer, which would then never be written. */
	int rc = reply_page(r, e, &page);
	atomic_fetch_sub(&long_polls, 1);
	return rc;
}

int handle_events_delivery(struct req *r)
{
	enum err e = req_auth(r, ROLE_ADMIN);
	if (e != ERR_OK)
		return reply_error(r, e, NULL);
	const char *url = r->app->cfg->events_url ? r->app->cfg->events_url : "";
	struct delivery_status ds = {0};
	e = storage_delivery_status(r->app->st, url, &ds);
	if (e != ERR_OK)
		return reply_refusal(r, e, NULL);
	struct push_counts c;
	push_counts(&c);
	int64_t now = clock_now_ms(&clock_system);
	char body[4096];
	/* url is null, not "", when push is off. */
	size_t len = (size_t)snprintf(body, sizeof body, *url ? "{\"url\":" : "{\"url\":null");
	bool fits = !*url || json_append_string(body, sizeof body, &len, url);
	int n = snprintf(body + len, sizeof body - len,
			 ",\"backlog\":%" PRId64 ",\"oldest_undelivered_age_ms\":%" PRId64
			 ",\"dead\":%" PRId64 ",\"stopped\":%s,\"delivered\":%" PRIu64
			 ",\"retried\":%" PRIu64 ",\"last_error\":",
			 ds.backlog, ds.oldest_at ? now - ds.oldest_at : 0, ds.dead,
			 ds.stopped ? "true" : "false", c.delivered, c.retried);
	fits = fits && n > 0 && (size_t)n < sizeof body - len;
	len += fits ? (size_t)n : 0;
	if (fits && ds.last_error_seq) {
		char at[TIMEFMT_LEN + 1];
		timefmt_format(ds.last_error_at, at);
		n = snprintf(body + len, sizeof body - len,
			     "{\"seq\":%" PRId64 ",\"at\":\"%s\",\"error\":", ds.last_error_seq, at);
		fits = n > 0 && (size_t)n < sizeof body - len;
		len += fits ? (size_t)n : 0;
		fits = fits && json_append_string(body, sizeof body, &len, ds.last_error);
		n = snprintf(body + len, sizeof body - len, "}}");
	} else if (fits) {
		n = snprintf(body + len, sizeof body - len, "null}");
	}
	fits = fits && n > 0 && (size_t)n < sizeof body - len;
	if (!fits)
		return reply_error(r, ERR_INTERNAL, NULL);
	return reply_json(r, 200, body, len + (size_t)n);
}

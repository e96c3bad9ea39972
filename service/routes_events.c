/* GET /v1/events: the feed, paged by seq. Event data is stored as JSON text and copied into
 * the answer as is, never parsed again. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "routes.h"
#include "timefmt.h"

#define EVENTS_LIMIT_DEFAULT 100
#define EVENTS_LIMIT_MAX 500

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

int handle_events_list(struct req *r)
{
	long long after = 0, limit = EVENTS_LIMIT_DEFAULT;
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

	struct event_page page = {0};
	e = storage_events_after(r->app->st, after, (int)limit, &page);
	if (e != ERR_OK)
		return reply_error(r, e, NULL);
	size_t cap = 32;
	for (size_t i = 0; i < page.n; i++)
		cap += event_json_cap(&page.events[i]) + 1;
	char *body = malloc(cap);
	if (!body) {
		event_page_finish(&page);
		return reply_error(r, ERR_NOMEM, NULL);
	}
	size_t len = (size_t)snprintf(body, cap, "{\"events\":[");
	for (size_t i = 0; i < page.n; i++) {
		if (i)
			body[len++] = ',';
		len += format_event(body + len, cap - len, &page.events[i]);
	}
	len += (size_t)snprintf(body + len, cap - len, "]}");
	event_page_finish(&page);
	int rc = reply_json(r, 200, body, len);
	free(body);
	return rc;
}

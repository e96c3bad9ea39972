/* Admin history: GET /v1/calls?format=csv streams every matching call as RFC 4180 CSV, page by
 * page of the same keyset list as the JSON answer, so memory stays the same however many rows;
 * GET /v1/stats aggregates the calls created in a time range. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "routes.h"
#include "timefmt.h"

/* --- CSV --- */

#define CSV_PAGE 500 /* the list's largest page */

static const char csv_header[] = "id,room,kind,status,outcome,caller,callees,chat_id,created_at,"
				 "answered_at,ended_at,duration_ms,end_cause\r\n";

/* One field, quoted (its quotes doubled) only when it holds a quote, comma, CR or LF. */
static void csv_text(struct reply_stream *s, const char *p, size_t n)
{
	if (strcspn(p, "\",\r\n") >= n) {
		reply_stream_write(s, p, n);
		return;
	}
	reply_stream_write(s, "\"", 1);
	for (;;) {
		const char *quote = memchr(p, '"', n);
		size_t run = quote ? (size_t)(quote - p) + 1 : n;
		reply_stream_write(s, p, run);
		if (!quote)
			break;
		reply_stream_write(s, "\"", 1);
		p += run;
		n -= run;
	}
	reply_stream_write(s, "\"", 1);
}

/* A view's value as a field: a string as is, an integer in decimal, null (or absent) empty. */
static bool csv_value(struct reply_stream *s, const json_t *v)
{
	char num[24];
	if (json_is_string(v)) {
		csv_text(s, json_string_value(v), json_string_length(v));
	} else if (json_is_integer(v)) {
		int n = snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		reply_stream_write(s, num, (size_t)n);
	} else if (v && !json_is_null(v)) {
		return false;
	}
	return true;
}

/* The callees, in the call's order, joined by ';' into one field. */
static bool csv_callees(struct reply_stream *s, const json_t *members)
{
	size_t cap = 0, len = 0, i;
	char *joined = NULL;
	const json_t *m;
	json_array_foreach(members, i, m) {
		const char *role = json_string_value(json_object_get(m, "role"));
		const json_t *user = json_object_get(m, "user");
		if (!role || strcmp(role, "callee") != 0)
			continue;
		if (!json_is_string(user))
			break;
		size_t n = json_string_length(user);
		if (len + n + 1 > cap) {
			size_t grown = (len + n + 1) * 2;
			char *p = realloc(joined, grown);
			if (!p)
				break;
			joined = p;
			cap = grown;
		}
		if (len)
			joined[len++] = ';';
		memcpy(joined + len, json_string_value(user), n);
		len += n;
	}
	bool ok = i == json_array_size(members);
	if (ok && joined) {
		joined[len] = '\0';
		csv_text(s, joined, len);
	}
	free(joined);
	return ok;
}

/* The CSV row of a call's stored view: the JSON answer's values, so both formats agree. */
static enum err csv_row(struct reply_stream *s, const struct call_view *v)
{
	static const char *const before_callees[] = {"id", "room", "kind", "status", "outcome",
						     "caller"};
	static const char *const after_callees[] = {"chat_id", "created_at", "answered_at",
						    "ended_at", "duration_ms", "end_cause"};
	uint64_t start = reply_stream_mark(s);
	json_t *call = json_loads(v->json, 0, NULL);
	if (!call)
		return ERR_INTERNAL;
	bool ok = json_is_object(call);
	for (size_t i = 0; ok && i < sizeof before_callees / sizeof *before_callees; i++) {
		ok = csv_value(s, json_object_get(call, before_callees[i]));
		reply_stream_write(s, ",", 1);
	}
	ok = ok && csv_callees(s, json_object_get(call, "members"));
	for (size_t i = 0; ok && i < sizeof after_callees / sizeof *after_callees; i++) {
		reply_stream_write(s, ",", 1);
		ok = csv_value(s, json_object_get(call, after_callees[i]));
	}
	json_decref(call);
	if (!ok) {
		/* No half record before the cut, unless its start already went out. */
		reply_stream_rewind(s, start);
		return ERR_INTERNAL;
	}
	reply_stream_write(s, "\r\n", 2);
	return ERR_OK;
}

int reply_calls_csv(struct req *r, struct call_filter *f)
{
	struct view_page page = {0};
	struct reply_stream s;
	uint64_t rows = 0;
	f->limit = CSV_PAGE;
	/* The first page is read before anything is sent, so that its failure is still a 503. */
	enum err e = storage_calls_list(r->app->st, f, &page);
	if (e != ERR_OK)
		return reply_error(r, e, NULL);
	if (!reply_stream_begin(r, &s, "text/csv; charset=utf-8",
				"Content-Disposition: attachment; filename=\"calls.csv\"\r\n")) {
		view_page_finish(&page);
		return reply_error(r, ERR_NOMEM, NULL);
	}
	bool sent = reply_stream_write(&s, csv_header, sizeof csv_header - 1);
	while (e == ERR_OK && sent) {
		for (size_t i = 0; e == ERR_OK && i < page.n; i++) {
			e = csv_row(&s, &page.views[i]);
			rows += e == ERR_OK;
		}
		sent = reply_stream_write(&s, "", 0); /* false once the client is gone */
		if (e != ERR_OK || !page.more || !page.n)
			break;
		/* The next page starts after the last row sent: the keyset cursor of the JSON list. */
		const struct call_view *last = &page.views[page.n - 1];
		f->after_created_at = last->created_at;
		memcpy(f->after_id, last->id, sizeof f->after_id);
		view_page_finish(&page);
		e = storage_calls_list(r->app->st, f, &page);
	}
	view_page_finish(&page);
	if (e == ERR_OK && sent && reply_stream_end(&s)) {
		snprintf(r->log_fields, sizeof r->log_fields, " rows=%" PRIu64, rows);
		return 200;
	}
	/* The status is sent: a failure can only cut the transfer short, visibly. */
	reply_stream_abort(&s);
	snprintf(r->log_fields, sizeof r->log_fields, " rows=%" PRIu64 " aborted=%s", rows,
		 e != ERR_OK ? err_code(e) : "client_gone");
	return 200;
}

/* --- stats --- */

/* A ratio over no data is null (API.md). */
static json_t *ratio(int64_t num, int64_t den)
{
	return den ? json_real((double)num / (double)den) : json_null();
}

static json_t *time_or_null(int64_t ms)
{
	char text[TIMEFMT_LEN + 1];
	if (!ms)
		return json_null();
	timefmt_format(ms, text);
	return json_string(text);
}

static json_t *stats_json(const struct call_stats *st, int64_t since, int64_t until)
{
	json_t *joins = st->joins ? json_pack("{s:I, s:I}", "p50", (json_int_t)st->join_p50_ms,
					      "p95", (json_int_t)st->join_p95_ms)
				  : json_pack("{s:n, s:n}", "p50", "p95");
	/* The mean duration rounds to the nearest millisecond. */
	json_t *avg = st->answered ? json_integer((st->duration_sum_ms + st->answered / 2) /
						  st->answered)
				   : json_null();
	json_t *by_outcome = json_object();
	for (int o = OUTCOME_COMPLETED; by_outcome && o <= OUTCOME_FAILED; o++)
		json_object_set_new(by_outcome, call_outcome_name((enum call_outcome)o),
				    json_integer(st->by_outcome[o]));
	return json_pack("{s:o, s:o, s:I, s:o, s:o, s:o, s:o, s:o}", "since", time_or_null(since),
			 "until", time_or_null(until), "calls", (json_int_t)st->calls, "by_outcome",
			 by_outcome, "answer_rate", ratio(st->answered, st->ended),
			 "connect_success_rate", ratio(st->joined_in_time, st->accepted),
			 "time_to_join_ms", joins, "avg_duration_ms", avg);
}

int handle_stats(struct req *r)
{
	int64_t since = 0, until = 0;
	struct call_stats st;
	const char *msg = NULL;
	enum err e = req_auth(r, ROLE_ADMIN);
	if (e != ERR_OK)
		return reply_error(r, e, NULL);
	if (req_query_time(r, "since", &since) != ERR_OK)
		msg = "since: must be an RFC 3339 time";
	else if (req_query_time(r, "until", &until) != ERR_OK)
		msg = "until: must be an RFC 3339 time";
	else if (since && until && since >= until)
		msg = "until: must be later than since";
	if (msg)
		return reply_error(r, ERR_INVALID, msg);
	const struct calls *cs = &r->app->calls;
	int64_t now = clock_now_ms(&cs->clock);
	/* Without until, the stats are as of now, and say so. */
	if (!until)
		until = now;
	e = storage_call_stats(r->app->st, since, until, (int64_t)cs->cfg.join_timeout_s * 1000,
			       now, &st);
	if (e != ERR_OK)
		return reply_error(r, e, NULL);
	return reply_json_value(r, 200, stats_json(&st, since, until));
}

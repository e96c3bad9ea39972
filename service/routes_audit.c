/* GET /v1/calls/{id}/events (admin): the call's audit trail, the LiveKit webhooks of its room
 * as received and every change of the call with its cause, in order. The answer is streamed
 * entry by entry, each stored body as its text: a trail holds the whole call after every
 * change, so a call with hundreds of sessions has megabytes of them, which a jansson tree of
 * the answer made about ten times larger in memory and took seconds to build and dump. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "json_scan.h"
#include "routes.h"
#include "timefmt.h"

/* The longest head of an entry: its names, time, numbers and the escaped ids and types. */
#define ENTRY_HEAD_MAX (256 + 6 * (AUDIT_ID_MAX + AUDIT_TYPE_MAX + CHANGE_REF_MAX))

/* Stored JSON text (a webhook body or a call object) as it is. It was JSON when stored; one
 * that is not (written by something else) is null, never a broken answer. */
static bool stored_json(struct reply_stream *s, const char *text)
{
	size_t len = strlen(text);
	if (json_scan(text, len, NULL, NULL, 0) != JSON_LOAD_OK)
		return reply_stream_write(s, "null", 4);
	return reply_stream_write(s, text, len);
}

/* Appends printf's output at out[*len]; false, *len unchanged, if it does not fit in cap. */
__attribute__((format(printf, 4, 5)))
static bool append(char *out, size_t cap, size_t *len, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(out + *len, cap - *len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= cap - *len)
		return false;
	*len += (size_t)n;
	return true;
}

/* The members of entry a before its stored JSON, from "{" to that JSON's name; false if they
 * do not fit in cap. */
static bool entry_head(const struct audit_entry *a, char *out, size_t cap, size_t *ret_len)
{
	char at[TIMEFMT_LEN + 1];
	timefmt_format(a->at, at);
	size_t len = 0;
	if (a->webhook) {
		bool ok = append(out, cap, &len, "{\"kind\":\"webhook\",\"at\":\"%s\",\"webhook_id\":",
				 at) &&
			  json_append_string(out, cap, &len, a->id) &&
			  append(out, cap, &len, ",\"event\":") &&
			  json_append_string(out, cap, &len, a->type) &&
			  append(out, cap, &len, ",\"body\":");
		*ret_len = len;
		return ok;
	}
	char seq[24] = "null";
	if (a->seq)
		snprintf(seq, sizeof seq, "%" PRId64, a->seq);
	const char *source = change_source_name(a->cause);
	bool ok = append(out, cap, &len, "{\"kind\":\"transition\",\"at\":\"%s\",\"seq\":%s,"
			 "\"event_id\":", at, seq) &&
		  json_append_string(out, cap, &len, a->id) &&
		  append(out, cap, &len, ",\"type\":") &&
		  json_append_string(out, cap, &len, a->type) &&
		  append(out, cap, &len, ",\"call_version\":%" PRId64 ",\"cause\":",
			 a->call_version);
	if (ok && !source)
		ok = append(out, cap, &len, "null");
	else if (ok)
		ok = append(out, cap, &len, "{\"source\":\"%s\"", source) &&
		     (!*a->cause_ref ||
		      (append(out, cap, &len, ",\"%s\":",
			      a->cause == CHANGE_API ? "request_id" : "webhook_id") &&
		       json_append_string(out, cap, &len, a->cause_ref))) &&
		     append(out, cap, &len, "}");
	ok = ok && append(out, cap, &len, ",\"data\":");
	*ret_len = len;
	return ok;
}

int handle_call_audit(struct req *r)
{
	struct audit_trail trail = {0};
	const char *msg = NULL;
	enum err e = req_auth(r, ROLE_ADMIN);
	if (e == ERR_OK)
		e = req_call_id_param(r, &msg);
	if (e == ERR_OK)
		e = calls_audit(&r->app->calls, r->param, &trail);
	if (e == ERR_NOT_FOUND)
		msg = "no such call";
	if (e != ERR_OK)
		return reply_refusal(r, e, msg);
	struct reply_stream s;
	if (!reply_stream_begin(r, &s, "application/json; charset=utf-8", "")) {
		audit_trail_finish(&trail);
		return reply_error(r, ERR_NOMEM, NULL);
	}
	bool sent = reply_stream_write(&s, "{\"events\":[", 11), whole = true;
	for (size_t i = 0; sent && whole && i < trail.n; i++) {
		char head[ENTRY_HEAD_MAX];
		size_t len = 0;
		whole = entry_head(&trail.entries[i], head, sizeof head, &len);
		sent = whole && (!i || reply_stream_write(&s, ",", 1)) &&
		       reply_stream_write(&s, head, len) &&
		       stored_json(&s, trail.entries[i].body) && reply_stream_write(&s, "}", 1);
	}
	audit_trail_finish(&trail);
	if (sent && whole && reply_stream_write(&s, "]}", 2) && reply_stream_end(&s))
		return 200;
	/* The status is sent: a failure can only cut the transfer short, visibly. */
	reply_stream_abort(&s);
	snprintf(r->log_fields, sizeof r->log_fields, " aborted=%s",
		 whole ? "client_gone" : "entry_too_long");
	return 200;
}

/* GET /v1/calls/{id}/events (admin): the call's audit trail, the LiveKit webhooks of its room
 * as received and every change of the call with its cause, in order. An admin route, read
 * rarely: the answer is built as a jansson tree. */
#include <stdio.h>
#include <string.h>

#include "jsonutil.h"
#include "routes.h"
#include "timefmt.h"

static json_t *time_value(int64_t ms)
{
	char text[TIMEFMT_LEN + 1];
	timefmt_format(ms, text);
	return json_string(text);
}

/* Stored JSON text (a webhook body or a call object) as a value; it was JSON when stored, so
 * null here only means storage held something else. */
static json_t *stored_json(const char *text)
{
	enum json_load_result result;
	json_t *v = json_load_bounded(text, strlen(text), &result);
	return v ? v : json_null();
}

static json_t *cause_value(const struct audit_entry *a)
{
	const char *source = change_source_name(a->cause);
	if (!source)
		return json_null();
	json_t *cause = json_pack("{s:s}", "source", source);
	if (cause && *a->cause_ref)
		json_object_set_new(cause, a->cause == CHANGE_API ? "request_id" : "webhook_id",
				    json_string(a->cause_ref));
	return cause;
}

static json_t *entry_value(const struct audit_entry *a)
{
	if (a->webhook)
		return json_pack("{s:s, s:o, s:s, s:s, s:o}", "kind", "webhook", "at",
				 time_value(a->at), "webhook_id", a->id, "event", a->type, "body",
				 stored_json(a->body));
	return json_pack("{s:s, s:o, s:o, s:s, s:s, s:I, s:o, s:o}", "kind", "transition", "at",
			 time_value(a->at), "seq", a->seq ? json_integer(a->seq) : json_null(),
			 "event_id", a->id, "type", a->type, "call_version",
			 (json_int_t)a->call_version, "cause", cause_value(a), "data",
			 stored_json(a->body));
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
	json_t *entries = json_array();
	for (size_t i = 0; entries && i < trail.n; i++) {
		json_t *v = entry_value(&trail.entries[i]);
		if (!v || json_array_append_new(entries, v) != 0) {
			json_decref(entries);
			entries = NULL;
		}
	}
	audit_trail_finish(&trail);
	return reply_json_value(r, 200, entries ? json_pack("{s:o}", "events", entries) : NULL);
}

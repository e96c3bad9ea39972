/* The call object's JSON: every key of API.md in order, nulls, escaping, and valid JSON that
 * jansson reads back to the same values. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "calls.h"

static struct call *sample(void)
{
	struct call *c = call_new();
	cr_assert_not_null(c);
	snprintf(c->id, sizeof c->id, "01900000-0000-7000-8000-00000000000a");
	snprintf(c->room, sizeof c->room, "call_%s", c->id);
	c->kind = CALL_VIDEO;
	c->status = CALL_ENDED;
	c->outcome = OUTCOME_COMPLETED;
	snprintf(c->caller, sizeof c->caller, "al\"ice\\\n\x01é");
	cr_assert(call_set_metadata(c, "{\"topic\":\"x\",\"n\":[1,2]}"));
	c->created_at = 1767225600123;
	c->answered_at = 1767225605000;
	c->ended_at = 1767225665500;
	c->end_cause = CAUSE_ROOM_FINISHED;
	snprintf(c->room_end_reason, sizeof c->room_end_reason, "ROOM_END_API_DELETE");
	snprintf(c->members[0].user, sizeof c->members[0].user, "%s", c->caller);
	c->members[0].invite = INVITE_ACCEPTED;
	c->members[0].responded_at = c->created_at;
	c->members[0].in_room = true;
	snprintf(c->members[1].user, sizeof c->members[1].user, "bob/1");
	c->members[1].role = MEMBER_CALLEE;
	c->members[1].invite = INVITE_MISSED;
	c->n_members = 2;
	struct participant p = {.joined_at = 1767225606000, .left_at = 1767225660000};
	snprintf(p.sid, sizeof p.sid, "PA_1");
	snprintf(p.user, sizeof p.user, "EG_recorder");
	snprintf(p.disconnect_reason, sizeof p.disconnect_reason, "CLIENT_INITIATED");
	cr_assert(call_add_participant(c, &p));
	return c;
}

Test(call_json, every_key_in_order_with_its_value)
{
	struct call *c = sample();
	char *text = call_to_json_text(c);
	cr_assert_not_null(text);
	json_error_t err;
	json_t *j = json_loads(text, JSON_REJECT_DUPLICATES, &err);
	cr_assert_not_null(j, "%s: %s", err.text, text);

	static const char *const keys[] = {"id", "room", "kind", "status", "outcome", "caller",
					   "chat_id", "metadata", "created_at", "answered_at",
					   "ended_at", "duration_ms", "end_cause", "room_end_reason",
					   "members", "participants"};
	const char *at = text;
	for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
		char quoted[40];
		snprintf(quoted, sizeof quoted, "\"%s\":", keys[i]);
		const char *found = strstr(at, quoted);
		cr_assert_not_null(found, "key %s in order", keys[i]);
		at = found;
	}
	cr_assert_eq(json_object_size(j), sizeof keys / sizeof keys[0]);
	cr_assert_str_eq(json_string_value(json_object_get(j, "caller")), c->caller);
	cr_assert(json_is_null(json_object_get(j, "chat_id")));
	cr_assert_str_eq(json_string_value(json_object_get(j, "created_at")),
			 "2026-01-01T00:00:00.123Z");
	cr_assert_eq(json_integer_value(json_object_get(j, "duration_ms")), 60500);
	cr_assert_str_eq(json_string_value(json_object_get(j, "end_cause")), "room_finished");
	json_t *md = json_object_get(j, "metadata");
	cr_assert_str_eq(json_string_value(json_object_get(md, "topic")), "x");

	json_t *m1 = json_array_get(json_object_get(j, "members"), 1);
	cr_assert_str_eq(json_string_value(json_object_get(m1, "user")), "bob/1");
	cr_assert_str_eq(json_string_value(json_object_get(m1, "role")), "callee");
	cr_assert_str_eq(json_string_value(json_object_get(m1, "invite")), "missed");
	cr_assert(json_is_false(json_object_get(m1, "in_room")));
	cr_assert(json_is_null(json_object_get(m1, "responded_at")));
	cr_assert_eq(json_object_size(m1), 7);
	json_t *m0 = json_array_get(json_object_get(j, "members"), 0);
	cr_assert(json_is_true(json_object_get(m0, "in_room")));

	json_t *p0 = json_array_get(json_object_get(j, "participants"), 0);
	cr_assert_eq(json_object_size(p0), 5);
	cr_assert_str_eq(json_string_value(json_object_get(p0, "sid")), "PA_1");
	cr_assert_str_eq(json_string_value(json_object_get(p0, "disconnect_reason")),
			 "CLIENT_INITIATED");
	json_decref(j);
	free(text);
	call_free(c);
}

Test(call_json, a_live_call_has_nulls)
{
	struct call *c = sample();
	c->status = CALL_RINGING;
	c->outcome = OUTCOME_NONE;
	c->answered_at = c->ended_at = 0;
	c->end_cause = CAUSE_NONE;
	c->room_end_reason[0] = 0;
	c->n_participants = 0;
	char *text = call_to_json_text(c);
	json_t *j = json_loads(text, 0, NULL);
	cr_assert_not_null(j);
	const char *nulls[] = {"outcome", "answered_at", "ended_at", "duration_ms", "end_cause",
			       "room_end_reason"};
	for (size_t i = 0; i < sizeof nulls / sizeof nulls[0]; i++)
		cr_assert(json_is_null(json_object_get(j, nulls[i])), "%s", nulls[i]);
	cr_assert_eq(json_array_size(json_object_get(j, "participants")), 0);
	json_decref(j);
	free(text);
	call_free(c);
}

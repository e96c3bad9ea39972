/* The call object of API.md as JSON: one function shared by every HTTP answer and by the data
 * of feed events, so the two can never disagree. */
#include <jansson.h>
#include <stdlib.h>

#include "calls.h"
#include "timefmt.h"

static json_t *time_or_null(int64_t ms)
{
	if (!ms)
		return json_null();
	char buf[TIMEFMT_LEN + 1];
	timefmt_format(ms, buf);
	return json_stringn(buf, TIMEFMT_LEN);
}

static json_t *string_or_null(const char *s)
{
	return s && *s ? json_string(s) : json_null();
}

static json_t *member_to_json(const struct member *m)
{
	return json_pack("{s:s, s:s, s:s, s:b, s:o, s:o, s:o}", "user", m->user, "role",
			 member_role_name(m->role), "invite", invite_state_name(m->invite),
			 "in_room", m->in_room, "responded_at", time_or_null(m->responded_at),
			 "first_joined_at", time_or_null(m->first_joined_at), "last_left_at",
			 time_or_null(m->last_left_at));
}

static json_t *participant_to_json(const struct participant *p)
{
	return json_pack("{s:s, s:s, s:o, s:o, s:o}", "user", p->user, "sid", p->sid, "joined_at",
			 time_or_null(p->joined_at), "left_at", time_or_null(p->left_at),
			 "disconnect_reason", string_or_null(p->disconnect_reason));
}

json_t *call_to_json(const struct call *c)
{
	json_t *metadata = json_loads(c->metadata, 0, NULL);
	json_t *members = json_array();
	json_t *participants = json_array();
	json_t *duration = c->answered_at && c->ended_at
				   ? json_integer(c->ended_at - c->answered_at)
				   : json_null();
	if (!metadata)
		metadata = json_object();
	for (size_t i = 0; members && i < c->n_members; i++)
		if (json_array_append_new(members, member_to_json(&c->members[i])) != 0)
			json_decref(members), members = NULL;
	for (size_t i = 0; participants && i < c->n_participants; i++)
		if (json_array_append_new(participants, participant_to_json(&c->participants[i])) != 0)
			json_decref(participants), participants = NULL;

	/* json_pack steals the "o" references even when it fails, so nothing leaks here. */
	return json_pack("{s:s, s:s, s:s, s:s, s:o, s:s, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o,"
			 " s:o, s:o}",
			 "id", c->id, "room", c->room, "kind", call_kind_name(c->kind), "status",
			 call_status_name(c->status), "outcome",
			 string_or_null(call_outcome_name(c->outcome)), "caller", c->caller,
			 "chat_id", string_or_null(c->chat_id), "metadata", metadata, "created_at",
			 time_or_null(c->created_at), "answered_at", time_or_null(c->answered_at),
			 "ended_at", time_or_null(c->ended_at), "duration_ms", duration, "end_cause",
			 string_or_null(end_cause_name(c->end_cause)), "room_end_reason",
			 string_or_null(c->room_end_reason), "members", members, "participants",
			 participants);
}

char *call_to_json_text(const struct call *c)
{
	json_t *j = call_to_json(c);
	if (!j)
		return NULL;
	char *text = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(j);
	return text;
}

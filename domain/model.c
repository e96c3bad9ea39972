/* Construction, copying and naming of the plain model types. */
#include "model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct call *call_new(void)
{
	struct call *c = calloc(1, sizeof *c);
	if (!c)
		return NULL;
	c->metadata = strdup("{}");
	if (!c->metadata) {
		free(c);
		return NULL;
	}
	return c;
}

struct call *call_clone(const struct call *src)
{
	struct call *c = malloc(sizeof *c);
	if (!c)
		return NULL;
	*c = *src;
	c->metadata = strdup(src->metadata);
	c->participants = NULL;
	if (src->n_participants) {
		c->participants = malloc(src->n_participants * sizeof *c->participants);
		if (c->participants)
			memcpy(c->participants, src->participants,
			       src->n_participants * sizeof *c->participants);
	}
	if (!c->metadata || (src->n_participants && !c->participants)) {
		call_free(c);
		return NULL;
	}
	return c;
}

void call_free(struct call *c)
{
	if (!c)
		return;
	free(c->metadata);
	free(c->participants);
	free(c);
}

void call_freep(struct call **c)
{
	call_free(*c);
	*c = NULL;
}

bool call_set_metadata(struct call *c, const char *json_text)
{
	char *copy = strdup(json_text);
	if (!copy)
		return false;
	free(c->metadata);
	c->metadata = copy;
	return true;
}

bool call_add_participant(struct call *c, const struct participant *p)
{
	struct participant *grown =
		realloc(c->participants, (c->n_participants + 1) * sizeof *grown);
	if (!grown)
		return false;
	grown[c->n_participants++] = *p;
	c->participants = grown;
	return true;
}

struct member *call_member(struct call *c, const char *user)
{
	for (size_t i = 0; i < c->n_members; i++)
		if (strcmp(c->members[i].user, user) == 0)
			return &c->members[i];
	return NULL;
}

const struct member *call_member_const(const struct call *c, const char *user)
{
	return call_member((struct call *)c, user);
}

void event_finish(struct event *ev)
{
	free(ev->data);
	ev->data = NULL;
}

void event_set_cause(struct event *ev, const struct change_cause *cause)
{
	ev->cause = cause->source;
	snprintf(ev->cause_ref, sizeof ev->cause_ref, "%s", cause->ref ? cause->ref : "");
}

static int name_index(const char *const *names, size_t n, const char *s)
{
	if (!s)
		return -1;
	for (size_t i = 0; i < n; i++)
		if (names[i] && strcmp(names[i], s) == 0)
			return (int)i;
	return -1;
}

#define NAMES(type, table, ...)                                                                    \
	static const char *const table[] = {__VA_ARGS__};                                          \
	const char *type##_name(enum type v)                                                       \
	{                                                                                          \
		return (unsigned)v < sizeof table / sizeof table[0] ? table[v] : NULL;             \
	}                                                                                          \
	int type##_parse(const char *s)                                                            \
	{                                                                                          \
		return name_index(table, sizeof table / sizeof table[0], s);                       \
	}

NAMES(call_kind, kind_names, [CALL_AUDIO] = "audio", [CALL_VIDEO] = "video")
NAMES(call_status, status_names, [CALL_RINGING] = "ringing", [CALL_ACTIVE] = "active",
      [CALL_ENDED] = "ended")
NAMES(call_outcome, outcome_names, [OUTCOME_NONE] = NULL, [OUTCOME_COMPLETED] = "completed",
      [OUTCOME_MISSED] = "missed", [OUTCOME_DECLINED] = "declined",
      [OUTCOME_CANCELLED] = "cancelled", [OUTCOME_FAILED] = "failed")
NAMES(end_cause, cause_names, [CAUSE_NONE] = NULL, [CAUSE_END_REQUEST] = "end_request",
      [CAUSE_LEAVE] = "leave", [CAUSE_DECLINED] = "declined",
      [CAUSE_RING_TIMEOUT] = "ring_timeout", [CAUSE_JOIN_TIMEOUT] = "join_timeout",
      [CAUSE_ROOM_EMPTY] = "room_empty", [CAUSE_ROOM_FINISHED] = "room_finished")
NAMES(member_role, role_names, [MEMBER_CALLER] = "caller", [MEMBER_CALLEE] = "callee")
NAMES(invite_state, invite_names, [INVITE_PENDING] = "pending", [INVITE_ACCEPTED] = "accepted",
      [INVITE_DECLINED] = "declined", [INVITE_MISSED] = "missed",
      [INVITE_CANCELLED] = "cancelled")
NAMES(change_source, source_names, [CHANGE_NONE] = NULL, [CHANGE_API] = "api",
      [CHANGE_WEBHOOK] = "webhook", [CHANGE_TIMER] = "timer")

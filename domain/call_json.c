/* The call object of API.md as JSON text: one writer shared by every HTTP answer, the stored
 * view and the data of feed events, so none can disagree. It writes straight into one growing
 * buffer: every change of a call is serialized once inside its transaction, on the single
 * writer thread, where building a jansson tree first cost several times more. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "calls.h"
#include "jsonutil.h"
#include "timefmt.h"

struct jbuf {
	char *p;
	size_t len, cap;
	bool failed;
};

static bool reserve(struct jbuf *b, size_t n)
{
	if (b->failed)
		return false;
	if (b->len + n <= b->cap)
		return true;
	size_t cap = b->cap ? b->cap : 1024;
	while (cap < b->len + n)
		cap *= 2;
	char *p = realloc(b->p, cap);
	if (!p) {
		b->failed = true;
		return false;
	}
	b->p = p;
	b->cap = cap;
	return true;
}

static void raw(struct jbuf *b, const char *s, size_t n)
{
	if (reserve(b, n)) {
		memcpy(b->p + b->len, s, n);
		b->len += n;
	}
}

#define LIT(b, s) raw(b, s, sizeof(s) - 1)

static void str(struct jbuf *b, const char *s)
{
	if (reserve(b, 6 * strlen(s) + 2))
		json_append_string(b->p, b->cap, &b->len, s);
}

static void str_or_null(struct jbuf *b, const char *s)
{
	if (s && *s)
		str(b, s);
	else
		LIT(b, "null");
}

static void time_or_null(struct jbuf *b, int64_t ms)
{
	if (!ms) {
		LIT(b, "null");
		return;
	}
	char t[TIMEFMT_LEN + 3];
	t[0] = '"';
	timefmt_format(ms, t + 1);
	t[TIMEFMT_LEN + 1] = '"';
	raw(b, t, TIMEFMT_LEN + 2);
}

static void integer(struct jbuf *b, int64_t v)
{
	char n[24];
	raw(b, n, (size_t)snprintf(n, sizeof n, "%" PRId64, v));
}

static void member(struct jbuf *b, const struct member *m)
{
	LIT(b, "{\"user\":");
	str(b, m->user);
	LIT(b, ",\"role\":");
	str(b, member_role_name(m->role));
	LIT(b, ",\"invite\":");
	str(b, invite_state_name(m->invite));
	if (m->in_room)
		LIT(b, ",\"in_room\":true,\"responded_at\":");
	else
		LIT(b, ",\"in_room\":false,\"responded_at\":");
	time_or_null(b, m->responded_at);
	LIT(b, ",\"first_joined_at\":");
	time_or_null(b, m->first_joined_at);
	LIT(b, ",\"last_left_at\":");
	time_or_null(b, m->last_left_at);
	LIT(b, "}");
}

static void participant(struct jbuf *b, const struct participant *p)
{
	LIT(b, "{\"user\":");
	str(b, p->user);
	LIT(b, ",\"sid\":");
	str(b, p->sid);
	LIT(b, ",\"joined_at\":");
	time_or_null(b, p->joined_at);
	LIT(b, ",\"left_at\":");
	time_or_null(b, p->left_at);
	LIT(b, ",\"disconnect_reason\":");
	str_or_null(b, p->disconnect_reason);
	LIT(b, "}");
}

char *call_to_json_text(const struct call *c)
{
	struct jbuf b = {0};
	LIT(&b, "{\"id\":");
	str(&b, c->id);
	LIT(&b, ",\"room\":");
	str(&b, c->room);
	LIT(&b, ",\"kind\":");
	str(&b, call_kind_name(c->kind));
	LIT(&b, ",\"status\":");
	str(&b, call_status_name(c->status));
	LIT(&b, ",\"outcome\":");
	str_or_null(&b, call_outcome_name(c->outcome));
	LIT(&b, ",\"caller\":");
	str(&b, c->caller);
	LIT(&b, ",\"chat_id\":");
	str_or_null(&b, c->chat_id);
	/* Stored as the compact JSON of the object that was validated on creation. */
	LIT(&b, ",\"metadata\":");
	raw(&b, c->metadata, strlen(c->metadata));
	LIT(&b, ",\"created_at\":");
	time_or_null(&b, c->created_at);
	LIT(&b, ",\"answered_at\":");
	time_or_null(&b, c->answered_at);
	LIT(&b, ",\"ended_at\":");
	time_or_null(&b, c->ended_at);
	LIT(&b, ",\"duration_ms\":");
	if (c->answered_at && c->ended_at)
		integer(&b, c->ended_at - c->answered_at);
	else
		LIT(&b, "null");
	LIT(&b, ",\"end_cause\":");
	str_or_null(&b, end_cause_name(c->end_cause));
	LIT(&b, ",\"room_end_reason\":");
	str_or_null(&b, c->room_end_reason);
	LIT(&b, ",\"members\":[");
	for (size_t i = 0; i < c->n_members; i++) {
		if (i)
			LIT(&b, ",");
		member(&b, &c->members[i]);
	}
	LIT(&b, "],\"participants\":[");
	for (size_t i = 0; i < c->n_participants; i++) {
		if (i)
			LIT(&b, ",");
		participant(&b, &c->participants[i]);
	}
	LIT(&b, "]}");
	raw(&b, "", 1);
	if (b.failed) {
		free(b.p);
		return NULL;
	}
	return b.p;
}

/* What LiveKit's webhooks say about a call's room, applied to the call as pure functions.
 * Results do not depend on arrival order: participant sessions are keyed by sid and merged
 * field by field (a leave may come before its join; a real leave overrides one inferred from
 * room_finished), members' in_room and join/leave times are recomputed from the whole set of
 * sessions, and the call rules (a join answers, the caller's last session closing cancels a
 * ringing call and either side's ends a two-person call, an empty room ends a group call) look
 * at that state rather than at the one event.
 * A user whose session LiveKit closed for a newer one of theirs (session_reconnect_open)
 * still counts for the end rules until that newer one is known. What no order-free rule can decide is left to
 * API.md's: an ended call stays ended, and late webhooks only fill in session times. */
#include <stdlib.h>
#include <string.h>

#include "call_fsm_internal.h"
#include "webhook.h"

static int64_t max64(int64_t a, int64_t b)
{
	return a > b ? a : b;
}

static bool session_joined(const struct participant *s)
{
	return s->joined_at && !s->aborted && !s->observer;
}

static bool session_open(const struct participant *s)
{
	return session_joined(s) && !s->left_at;
}

/* LiveKit closes a session with DUPLICATE_IDENTITY when a newer one of the same identity joins
 * the room (a client's full reconnect), and it sends that leave before the newer session's
 * join, which comes only once the newer one has connected. Meanwhile the user is out of the
 * room (in_room, presence and the feed say so, as LiveKit does) but reconnecting: until a later
 * session of the user is known, joined or aborted (a reconnect that failed), the room has
 * finished, or the grace below has passed, they still count for the end rules. So a reconnect
 * does not end a two-person call, whichever of the two webhooks arrives first.
 *
 * How long a reconnect counts, from the old session's leave: LiveKit's new session connects
 * (participant_joined) or is aborted within seconds, and its webhook is retried for 15 s at
 * most (LIVEKIT.md §4); if neither ever arrives, the user left when the old session did. */
#define RECONNECT_GRACE_MS 30000

/* A session that LiveKit closed for a newer one of the same user and whose reconnect still
 * counts at now, or at any time if now is 0 (its grace not looked at). */
static bool session_reconnect_open(const struct call *c, const struct participant *s, int64_t now)
{
	if (!session_joined(s) || !s->left_at || c->room_finished_at ||
	    strcmp(s->disconnect_reason, "DUPLICATE_IDENTITY") != 0 ||
	    (now && now >= s->left_at + RECONNECT_GRACE_MS))
		return false;
	for (size_t i = 0; i < c->n_participants; i++) {
		const struct participant *t = &c->participants[i];
		if (t == s || strcmp(t->user, s->user) != 0)
			continue;
		if ((t->joined_at && t->joined_at >= s->joined_at) ||
		    (t->aborted && t->left_at >= s->left_at))
			return false;
	}
	return true;
}

static struct participant *session_find(struct call *c, const char *sid)
{
	for (size_t i = 0; i < c->n_participants; i++)
		if (strcmp(c->participants[i].sid, sid) == 0)
			return &c->participants[i];
	return NULL;
}

static struct participant *session_upsert(struct call *c, const struct webhook_participant *p)
{
	struct participant *s = session_find(c, p->sid);
	if (s)
		return s;
	struct participant fresh = {0};
	memcpy(fresh.sid, p->sid, sizeof fresh.sid);
	memcpy(fresh.user, p->identity, sizeof fresh.user);
	if (!call_add_participant(c, &fresh))
		return NULL;
	return &c->participants[c->n_participants - 1];
}

/* When the participant became active: joinedAtMs, else joinedAt, else the event's time. */
static int64_t joined_ms(const struct webhook_participant *p, int64_t fallback)
{
	if (p->joined_at_ms)
		return p->joined_at_ms;
	return p->joined_at ? p->joined_at * 1000 : fallback;
}

/* Keep left_at >= joined_at, and close a session the finished room left open. */
static void session_settle(const struct call *c, struct participant *s)
{
	if (s->left_at && s->joined_at && s->left_at < s->joined_at)
		s->left_at = s->joined_at;
	if (c->room_finished_at && s->joined_at && !s->left_at && !s->aborted) {
		s->left_at = max64(c->room_finished_at, s->joined_at);
		s->left_inferred = true;
	}
}

static bool is_screen_share(const struct webhook_track *t)
{
	return strcmp(t->source, "SCREEN_SHARE") == 0 || strcmp(t->source, "SCREEN_SHARE_AUDIO") == 0;
}

/* A closed session's disconnect_reason: LiveKit's name, and UNKNOWN_REASON when the event
 * has none, since protojson leaves out an enum's zero value (LIVEKIT.md §3), and an older
 * server sends none at all. A name already learnt (the same leave, delivered again or as an
 * abort) is not overwritten by an absent one, whatever the order. */
static void session_reason(struct participant *s, const struct webhook_participant *p)
{
	if (*p->disconnect_reason)
		memcpy(s->disconnect_reason, p->disconnect_reason, sizeof s->disconnect_reason);
	else if (!*s->disconnect_reason)
		memcpy(s->disconnect_reason, "UNKNOWN_REASON", sizeof "UNKNOWN_REASON");
}

/* Merge one webhook's facts into the sessions. false only on allocation failure. */
static bool apply_facts(struct call *c, const struct webhook_event *we, int64_t at)
{
	const struct webhook_participant *p = &we->participant;
	if (we->kind == WEBHOOK_ROOM_FINISHED) {
		if (!c->room_finished_at || at < c->room_finished_at)
			c->room_finished_at = at;
		for (size_t i = 0; i < c->n_participants; i++)
			session_settle(c, &c->participants[i]);
		return true;
	}
	/* LiveKit gives every session an identity; one without is no member's, and its webhook
	 * is stored as received without a session of its own. */
	if (!*p->sid || !*p->identity)
		return true;
	struct participant *s = session_upsert(c, p);
	if (!s)
		return false;
	/* Track events carry only sid and identity; the other events the whole participant. */
	if (we->kind != WEBHOOK_TRACK_PUBLISHED && we->kind != WEBHOOK_TRACK_UNPUBLISHED)
		s->observer = !webhook_participant_is_standard(p);
	switch (we->kind) {
	case WEBHOOK_PARTICIPANT_JOINED:
		s->joined_at = joined_ms(p, at);
		break;
	case WEBHOOK_PARTICIPANT_LEFT:
		if (!s->joined_at)
			s->joined_at = joined_ms(p, at);
		s->left_at = max64(at, s->joined_at);
		s->left_inferred = false;
		session_reason(s, p);
		break;
	case WEBHOOK_PARTICIPANT_CONNECTION_ABORTED:
		s->aborted = true;
		if (!s->left_at || s->left_inferred)
			s->left_at = at;
		s->left_inferred = false;
		session_reason(s, p);
		break;
	case WEBHOOK_TRACK_PUBLISHED:
		if (is_screen_share(&we->track) && (!s->screen_share_at || at < s->screen_share_at))
			s->screen_share_at = at;
		break;
	case WEBHOOK_TRACK_UNPUBLISHED:
		if (is_screen_share(&we->track))
			s->screen_share_ended_at = max64(s->screen_share_ended_at, at);
		break;
	default:
		break;
	}
	session_settle(c, s);
	return true;
}

/* Sessions in the order they began (not yet begun last), whatever order they were learnt in. */
static int session_order(const void *a, const void *b)
{
	const struct participant *x = a, *y = b;
	if (!x->joined_at != !y->joined_at)
		return x->joined_at ? -1 : 1;
	if (x->joined_at != y->joined_at)
		return x->joined_at < y->joined_at ? -1 : 1;
	return strcmp(x->sid, y->sid);
}

/* A member's room state is a function of their sessions only. */
static void member_recompute(struct call *c, struct member *m)
{
	m->in_room = false;
	m->first_joined_at = 0;
	m->last_left_at = 0;
	for (size_t i = 0; i < c->n_participants; i++) {
		const struct participant *s = &c->participants[i];
		if (strcmp(s->user, m->user) != 0 || !session_joined(s))
			continue;
		m->in_room = m->in_room || session_open(s);
		if (!m->first_joined_at || s->joined_at < m->first_joined_at)
			m->first_joined_at = s->joined_at;
		m->last_left_at = max64(m->last_left_at, s->left_at);
	}
}

/* A callee who joined the room while invited is taken to have accepted, at the time LiveKit
 * says they joined; a join learnt late (an earlier session reported after a later one) moves
 * the answer back to it, so the times do not depend on arrival order. */
static void accept_by_joining(struct call *c, const struct fsm_timeouts *t, struct fsm_events *ev)
{
	for (size_t i = 0; i < c->n_members; i++) {
		struct member *m = &c->members[i];
		if (m->role != MEMBER_CALLEE || !m->first_joined_at)
			continue;
		int64_t at = max64(m->first_joined_at, c->created_at);
		if (m->invite == INVITE_ACCEPTED) {
			if (at < m->responded_at)
				m->responded_at = at;
			if (c->answered_at && at < c->answered_at)
				c->answered_at = at;
			continue;
		}
		if (m->invite != INVITE_PENDING || m->first_joined_at >= c->ring_deadline)
			continue;
		bool was_active = c->status == CALL_ACTIVE;
		call_fsm_answer(c, m, at, t, ev);
		if (was_active && at < c->answered_at)
			c->answered_at = at;
	}
}

static bool member_reconnecting(const struct call *c, const struct member *m, int64_t now)
{
	for (size_t i = 0; i < c->n_participants; i++)
		if (strcmp(c->participants[i].user, m->user) == 0 &&
		    session_reconnect_open(c, &c->participants[i], now))
			return true;
	return false;
}

int64_t call_room_reconnect_deadline(const struct call *c, int64_t now)
{
	int64_t next = 0;
	for (size_t i = 0; i < c->n_participants; i++) {
		const struct participant *s = &c->participants[i];
		if (session_reconnect_open(c, s, now) &&
		    (!next || s->left_at + RECONNECT_GRACE_MS < next))
			next = s->left_at + RECONNECT_GRACE_MS;
	}
	return next;
}

/* The end rules of API.md that look at the room, as of now; we is the webhook that brought
 * the change, NULL for a timer. */
static void end_rules(struct call *c, const struct webhook_event *we, int64_t now,
		      struct fsm_events *ev)
{
	if (c->status == CALL_ENDED)
		return;
	if (c->room_finished_at) {
		if (we && we->kind == WEBHOOK_ROOM_FINISHED)
			memcpy(c->room_end_reason, we->room_end_reason, sizeof c->room_end_reason);
		call_fsm_end_call(c,
				  c->status == CALL_RINGING ? OUTCOME_CANCELLED : OUTCOME_COMPLETED,
				  CAUSE_ROOM_FINISHED, c->room_finished_at, ev);
		return;
	}
	if (c->status == CALL_RINGING) {
		/* The caller's last session closing before anyone answered is the caller leaving. */
		for (size_t i = 0; i < c->n_members; i++) {
			const struct member *m = &c->members[i];
			if (m->role == MEMBER_CALLER && m->first_joined_at && !m->in_room &&
			    !member_reconnecting(c, m, now))
				call_fsm_end_call(c, OUTCOME_CANCELLED, CAUSE_LEAVE, m->last_left_at,
						  ev);
		}
		return;
	}
	if (c->status != CALL_ACTIVE)
		return;
	bool anyone_joined = false, anyone_in = false;
	int64_t last_left = 0, first_gone = 0;
	for (size_t i = 0; i < c->n_members; i++) {
		const struct member *m = &c->members[i];
		bool present = m->in_room || member_reconnecting(c, m, now);
		anyone_joined = anyone_joined || m->first_joined_at;
		anyone_in = anyone_in || present;
		last_left = max64(last_left, m->last_left_at);
		/* One side of a two-person call whose last session closed has left it; when both
		 * leaves are known at once (learnt in another order), the earlier one ended it. */
		if (c->n_members == 2 && m->first_joined_at && !present &&
		    (!first_gone || m->last_left_at < first_gone))
			first_gone = m->last_left_at;
	}
	if (first_gone) {
		call_fsm_end_call(c, OUTCOME_COMPLETED, CAUSE_LEAVE, first_gone, ev);
		return;
	}
	if (anyone_joined && !anyone_in)
		call_fsm_end_call(c, OUTCOME_COMPLETED, CAUSE_ROOM_EMPTY, last_left, ev);
}

enum err call_fsm_room_event(struct call *c, const struct webhook_event *we, int64_t now,
			     const struct fsm_timeouts *t, struct fsm_events *ev,
			     struct room_presence *ret_presence)
{
	bool was_in[CALL_MAX_MEMBERS];
	int64_t at = we->created_at ? we->created_at * 1000 : now;
	const char *sid = we->participant.sid;
	const struct participant *s = *sid ? session_find(c, sid) : NULL;
	bool was_joined = s && session_joined(s);
	for (size_t i = 0; i < c->n_members; i++)
		was_in[i] = c->members[i].in_room;
	if (!apply_facts(c, we, at))
		return ERR_NOMEM;
	if (c->n_participants > 1) /* none: the array may be NULL, which qsort must not get */
		qsort(c->participants, c->n_participants, sizeof c->participants[0],
		      session_order);
	for (size_t i = 0; i < c->n_members; i++)
		member_recompute(c, &c->members[i]);
	if (c->status != CALL_ENDED)
		accept_by_joining(c, t, ev);

	/* A stay learnt only once it was over (its leave came before its join, or the join was
	 * lost) is a join and a leave of the feed all the same, unless another session of the
	 * member kept them in the room meanwhile. */
	s = *sid ? session_find(c, sid) : NULL;
	const char *stay_user = s && !was_joined && session_joined(s) && s->left_at ? s->user : "";
	ret_presence->n = 0;
	for (size_t i = 0; i < c->n_members; i++) {
		struct member *m = &c->members[i];
		/* Back in the room after saying leave over the API: back in the call. */
		if (m->in_room && !was_in[i])
			m->left = false;
		if (m->in_room != was_in[i]) {
			call_fsm_emit(ev, m->in_room ? "call.member_joined" : "call.member_left");
		} else if (!m->in_room && strcmp(m->user, stay_user) == 0) {
			call_fsm_emit(ev, "call.member_joined");
			call_fsm_emit(ev, "call.member_left");
		} else {
			continue;
		}
		ret_presence->users[ret_presence->n++] = m->user;
	}
	end_rules(c, we, now, ev);
	call_fsm_tick(c, now, t, ev);
	call_fsm_arm(c, now);
	return ERR_OK;
}

void call_room_reconnects_expire(struct call *c, int64_t now, struct fsm_events *ev)
{
	/* Without a reconnect whose grace has passed, the rules gave their answer at the last
	 * webhook already. */
	int64_t any = call_room_reconnect_deadline(c, 0);
	if (any && any <= now)
		end_rules(c, NULL, now, ev);
}

/* The call state machine of API.md as pure functions over struct call: no I/O, no clock of its
 * own. Each transition records the feed events it produces; calls.c persists them. Timers are
 * deadlines stored on the call, settled by call_fsm_tick whenever the call is next touched
 * (a request, a webhook or the timer thread), so an expired call can never be acted upon. */
#include <string.h>

#include "call_fsm_internal.h"

void call_fsm_emit(struct fsm_events *ev, const char *type)
{
	if (ev->n < FSM_MAX_EVENTS)
		ev->types[ev->n++] = type;
}

static bool is_callee(const struct member *m)
{
	return m->role == MEMBER_CALLEE;
}

void call_fsm_end_call(struct call *c, enum call_outcome outcome, enum end_cause cause, int64_t at,
		     struct fsm_events *ev)
{
	for (size_t i = 0; i < c->n_members; i++) {
		struct member *m = &c->members[i];
		if (m->invite != INVITE_PENDING)
			continue;
		if (cause == CAUSE_RING_TIMEOUT) {
			m->invite = INVITE_MISSED;
			call_fsm_emit(ev, "call.missed");
		} else {
			m->invite = INVITE_CANCELLED;
		}
	}
	c->status = CALL_ENDED;
	c->outcome = outcome;
	c->end_cause = cause;
	c->ended_at = at > c->created_at ? at : c->created_at;
	if (c->answered_at && c->ended_at < c->answered_at)
		c->ended_at = c->answered_at;
	call_fsm_emit(ev, "call.ended");
	call_fsm_arm(c, at);
}

void call_fsm_answer(struct call *c, struct member *m, int64_t at, const struct fsm_timeouts *t,
		     struct fsm_events *ev)
{
	m->invite = INVITE_ACCEPTED;
	m->responded_at = at;
	call_fsm_emit(ev, "call.accepted");
	if (c->status == CALL_RINGING) {
		c->status = CALL_ACTIVE;
		c->answered_at = at;
		c->join_deadline = at + (int64_t)t->join_timeout_s * 1000;
		call_fsm_emit(ev, "call.active");
	}
}

static bool has_pending(const struct call *c)
{
	for (size_t i = 0; i < c->n_members; i++)
		if (c->members[i].invite == INVITE_PENDING)
			return true;
	return false;
}

static bool callee_joined(const struct call *c)
{
	for (size_t i = 0; i < c->n_members; i++)
		if (is_callee(&c->members[i]) && c->members[i].first_joined_at)
			return true;
	return false;
}

static bool join_timer_armed(const struct call *c)
{
	return c->status == CALL_ACTIVE && c->join_deadline && !callee_joined(c);
}

void call_fsm_arm(struct call *c, int64_t now)
{
	int64_t next = 0;
	if (c->status != CALL_ENDED) {
		if (has_pending(c))
			next = c->ring_deadline;
		if (join_timer_armed(c) && (!next || c->join_deadline < next))
			next = c->join_deadline;
		int64_t grace = call_room_reconnect_deadline(c, now);
		if (grace && (!next || grace < next))
			next = grace;
	}
	c->next_deadline = next;
}

void call_fsm_tick(struct call *c, int64_t now, const struct fsm_timeouts *t,
		   struct fsm_events *ev)
{
	(void)t;
	if (c->status == CALL_ENDED)
		return;
	if (has_pending(c) && c->ring_deadline && now >= c->ring_deadline) {
		if (c->status == CALL_RINGING) {
			call_fsm_end_call(c, OUTCOME_MISSED, CAUSE_RING_TIMEOUT, c->ring_deadline, ev);
			return;
		}
		/* A group call goes on without the callees who never answered. */
		for (size_t i = 0; i < c->n_members; i++) {
			if (c->members[i].invite == INVITE_PENDING) {
				c->members[i].invite = INVITE_MISSED;
				call_fsm_emit(ev, "call.missed");
			}
		}
	}
	if (join_timer_armed(c) && now >= c->join_deadline) {
		call_fsm_end_call(c, OUTCOME_FAILED, CAUSE_JOIN_TIMEOUT, c->join_deadline, ev);
		return;
	}
	call_room_reconnects_expire(c, now, ev);
	if (c->status != CALL_ENDED)
		call_fsm_arm(c, now);
}

static enum err find_member(struct call *c, const char *user, struct member **ret_m,
			    const char **ret_msg)
{
	struct member *m = call_member(c, user);
	if (!m) {
		*ret_msg = "user is not a member of this call";
		return ERR_FORBIDDEN;
	}
	*ret_m = m;
	return ERR_OK;
}

enum err call_fsm_accept(struct call *c, const char *user, int64_t now,
			 const struct fsm_timeouts *t, struct fsm_events *ev, const char **ret_msg)
{
	struct member *m;
	enum err e = find_member(c, user, &m, ret_msg);
	if (e != ERR_OK)
		return e;
	if (c->status == CALL_ENDED) {
		*ret_msg = "the call has ended";
		return ERR_CONFLICT;
	}
	switch (m->invite) {
	case INVITE_ACCEPTED:
		return ERR_OK; /* a repeated accept only hands out a fresh token */
	case INVITE_DECLINED:
		*ret_msg = "the invite was declined";
		return ERR_CONFLICT;
	case INVITE_MISSED:
	case INVITE_CANCELLED:
		*ret_msg = "the invite is no longer open";
		return ERR_CONFLICT;
	case INVITE_PENDING:
		break;
	}
	m->token_minted_at = now;
	call_fsm_answer(c, m, now, t, ev);
	call_fsm_arm(c, now);
	return ERR_OK;
}

static bool every_callee_declined(const struct call *c)
{
	for (size_t i = 0; i < c->n_members; i++)
		if (is_callee(&c->members[i]) && c->members[i].invite != INVITE_DECLINED)
			return false;
	return true;
}

/* A pending callee who declines; the caller of this function checked the invite. */
static void decline_invite(struct call *c, struct member *m, int64_t now, struct fsm_events *ev)
{
	m->invite = INVITE_DECLINED;
	m->responded_at = now;
	call_fsm_emit(ev, "call.declined");
	if (c->status == CALL_RINGING && every_callee_declined(c))
		call_fsm_end_call(c, OUTCOME_DECLINED, CAUSE_DECLINED, now, ev);
	else
		call_fsm_arm(c, now);
}

enum err call_fsm_decline(struct call *c, const char *user, int64_t now, struct fsm_events *ev,
			  const char **ret_msg)
{
	struct member *m;
	enum err e = find_member(c, user, &m, ret_msg);
	if (e != ERR_OK)
		return e;
	if (m->invite == INVITE_DECLINED)
		return ERR_OK;
	if (c->status == CALL_ENDED) {
		*ret_msg = "the call has ended";
		return ERR_CONFLICT;
	}
	if (m->role == MEMBER_CALLER) {
		*ret_msg = "the caller cannot decline; leave or end the call instead";
		return ERR_CONFLICT;
	}
	if (m->invite != INVITE_PENDING) {
		*ret_msg = m->invite == INVITE_ACCEPTED ? "the invite was accepted; leave instead"
							: "the invite is no longer open";
		return ERR_CONFLICT;
	}
	decline_invite(c, m, now, ev);
	return ERR_OK;
}

static bool every_accepted_member_left(const struct call *c)
{
	for (size_t i = 0; i < c->n_members; i++)
		if (c->members[i].invite == INVITE_ACCEPTED && !c->members[i].left)
			return false;
	return true;
}

enum err call_fsm_leave(struct call *c, const char *user, int64_t now, struct fsm_events *ev,
			const char **ret_msg)
{
	struct member *m;
	enum err e = find_member(c, user, &m, ret_msg);
	if (e != ERR_OK || c->status == CALL_ENDED)
		return e; /* leaving an ended call changes nothing */
	if (m->invite == INVITE_PENDING) {
		/* A callee who was never in the call can only turn it down. */
		decline_invite(c, m, now, ev);
		return ERR_OK;
	}
	if (m->invite != INVITE_ACCEPTED || m->left)
		return ERR_OK;
	m->left = true;
	if (c->status == CALL_RINGING) /* only the caller has accepted while ringing */
		call_fsm_end_call(c, OUTCOME_CANCELLED, CAUSE_LEAVE, now, ev);
	else if (c->n_members == 2 || every_accepted_member_left(c))
		call_fsm_end_call(c, OUTCOME_COMPLETED, CAUSE_LEAVE, now, ev);
	return ERR_OK;
}

enum err call_fsm_end(struct call *c, const char *user, int64_t now, struct fsm_events *ev,
		      const char **ret_msg)
{
	struct member *m = NULL;
	if (user) {
		enum err e = find_member(c, user, &m, ret_msg);
		if (e != ERR_OK)
			return e;
	}
	if (c->status == CALL_ENDED)
		return ERR_OK;
	if (m && m->invite != INVITE_ACCEPTED) {
		/* Only people in the call end it for everyone; an invitee turns it down. */
		if (m->invite != INVITE_PENDING) {
			*ret_msg = "the invite is no longer open";
			return ERR_CONFLICT;
		}
		decline_invite(c, m, now, ev);
		return ERR_OK;
	}
	call_fsm_end_call(c, c->status == CALL_RINGING ? OUTCOME_CANCELLED : OUTCOME_COMPLETED,
		 CAUSE_END_REQUEST, now, ev);
	return ERR_OK;
}

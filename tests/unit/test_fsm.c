/* The call state machine of API.md, transition by transition, on calls held in memory with
 * explicit times: no storage, no clock. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "calls.h"
#include "fixtures.h"

#define T0 FIXTURE_T0
#define RING_S FIXTURE_RING_S
#define JOIN_S 60

static const struct fsm_timeouts timeouts = {.join_timeout_s = JOIN_S};

static void assert_events(const struct fsm_events *ev, size_t n, const char *const *types)
{
	cr_assert_eq(ev->n, n, "expected %zu events, got %zu", n, ev->n);
	for (size_t i = 0; i < n; i++)
		cr_assert_str_eq(ev->types[i], types[i]);
}

#define EVENTS(ev, ...)                                                                            \
	do {                                                                                       \
		const char *const want_[] = {__VA_ARGS__};                                         \
		assert_events(&(ev), sizeof want_ / sizeof want_[0], want_);                       \
	} while (0)

static void assert_ended(const struct call *c, enum call_outcome o, enum end_cause cause,
			 int64_t at)
{
	cr_assert_eq(c->status, CALL_ENDED);
	cr_assert_eq(c->outcome, o, "outcome %s", call_outcome_name(c->outcome));
	cr_assert_eq(c->end_cause, cause, "cause %s", end_cause_name(c->end_cause));
	cr_assert_eq(c->ended_at, at);
	cr_assert_eq(c->next_deadline, 0);
}

static void accept_ok(struct call *c, const char *user, int64_t now, struct fsm_events *ev)
{
	const char *msg = NULL;
	cr_assert_eq(call_fsm_accept(c, user, now, &timeouts, ev, &msg), ERR_OK, "%s", msg);
}

Test(fsm, new_call_arms_the_ring_timer)
{
	struct call *c = fixture_ringing_call(1);
	cr_assert_eq(c->next_deadline, T0 + RING_S * 1000);
	call_free(c);
}

Test(fsm, accept_makes_ringing_call_active_and_arms_join_timer)
{
	struct call *c = fixture_ringing_call(1);
	struct fsm_events ev = {0};
	accept_ok(c, "c1", T0 + 3000, &ev);
	EVENTS(ev, "call.accepted", "call.active");
	cr_assert_eq(c->status, CALL_ACTIVE);
	cr_assert_eq(c->answered_at, T0 + 3000);
	cr_assert_eq(c->members[1].invite, INVITE_ACCEPTED);
	cr_assert_eq(c->members[1].responded_at, T0 + 3000);
	cr_assert_eq(c->members[1].token_minted_at, T0 + 3000);
	cr_assert_eq(c->join_deadline, T0 + 3000 + JOIN_S * 1000);
	cr_assert_eq(c->next_deadline, c->join_deadline);
	call_free(c);
}

Test(fsm, second_accept_in_group_adds_no_active_event)
{
	struct call *c = fixture_ringing_call(2);
	struct fsm_events ev = {0}, ev2 = {0};
	accept_ok(c, "c1", T0 + 1000, &ev);
	accept_ok(c, "c2", T0 + 2000, &ev2);
	EVENTS(ev2, "call.accepted");
	cr_assert_eq(c->answered_at, T0 + 1000);
	call_free(c);
}

Test(fsm, repeated_accept_changes_nothing)
{
	struct call *c = fixture_ringing_call(1);
	struct fsm_events ev = {0}, ev2 = {0};
	accept_ok(c, "c1", T0 + 1000, &ev);
	accept_ok(c, "c1", T0 + 5000, &ev2);
	cr_assert_eq(ev2.n, 0);
	cr_assert_eq(c->members[1].token_minted_at, T0 + 1000);
	call_free(c);
}

Test(fsm, non_member_is_forbidden_everywhere)
{
	struct call *c = fixture_ringing_call(1);
	struct fsm_events ev = {0};
	const char *msg = NULL;
	cr_assert_eq(call_fsm_accept(c, "x", T0, &timeouts, &ev, &msg), ERR_FORBIDDEN);
	cr_assert_eq(call_fsm_decline(c, "x", T0, &ev, &msg), ERR_FORBIDDEN);
	cr_assert_eq(call_fsm_leave(c, "x", T0, &ev, &msg), ERR_FORBIDDEN);
	cr_assert_eq(call_fsm_end(c, "x", T0, &ev, &msg), ERR_FORBIDDEN);
	cr_assert_eq(ev.n, 0);
	cr_assert_eq(c->status, CALL_RINGING);
	call_free(c);
}

Test(fsm, only_callee_declining_ends_call_declined)
{
	struct call *c = fixture_ringing_call(1);
	struct fsm_events ev = {0};
	const char *msg = NULL;
	cr_assert_eq(call_fsm_decline(c, "c1", T0 + 2000, &ev, &msg), ERR_OK);
	EVENTS(ev, "call.declined", "call.ended");
	assert_ended(c, OUTCOME_DECLINED, CAUSE_DECLINED, T0 + 2000);
	cr_assert_eq(c->members[1].invite, INVITE_DECLINED);
	cr_assert_eq(c->members[1].responded_at, T0 + 2000);
	call_free(c);
}

Test(fsm, group_call_rings_on_until_every_callee_declined)
{
	struct call *c = fixture_ringing_call(3);
	const char *msg = NULL;
	struct fsm_events ev1 = {0}, ev2 = {0}, ev3 = {0};
	cr_assert_eq(call_fsm_decline(c, "c1", T0 + 1000, &ev1, &msg), ERR_OK);
	cr_assert_eq(call_fsm_decline(c, "c2", T0 + 2000, &ev2, &msg), ERR_OK);
	EVENTS(ev2, "call.declined");
	cr_assert_eq(c->status, CALL_RINGING);
	cr_assert_eq(call_fsm_decline(c, "c3", T0 + 3000, &ev3, &msg), ERR_OK);
	EVENTS(ev3, "call.declined", "call.ended");
	assert_ended(c, OUTCOME_DECLINED, CAUSE_DECLINED, T0 + 3000);
	call_free(c);
}

Test(fsm, decline_rules)
{
	struct call *c = fixture_ringing_call(2);
	struct fsm_events ev = {0};
	const char *msg = NULL;
	cr_assert_eq(call_fsm_decline(c, "caller", T0, &ev, &msg), ERR_CONFLICT);
	accept_ok(c, "c1", T0 + 1000, &ev);
	ev.n = 0;
	cr_assert_eq(call_fsm_decline(c, "c1", T0 + 2000, &ev, &msg), ERR_CONFLICT,
		     "an accepted invite cannot be declined");
	cr_assert_eq(call_fsm_decline(c, "c2", T0 + 2000, &ev, &msg), ERR_OK);
	EVENTS(ev, "call.declined");
	cr_assert_eq(c->status, CALL_ACTIVE, "declining in an active group call keeps it active");
	ev.n = 0;
	cr_assert_eq(call_fsm_decline(c, "c2", T0 + 3000, &ev, &msg), ERR_OK, "idempotent");
	cr_assert_eq(ev.n, 0);
	cr_assert_eq(call_fsm_accept(c, "c2", T0 + 3000, &timeouts, &ev, &msg), ERR_CONFLICT,
		     "accept after decline");
	call_free(c);
}

Test(fsm, ring_timeout_makes_unanswered_call_missed)
{
	struct call *c = fixture_ringing_call(2);
	struct fsm_events ev = {0};
	call_fsm_tick(c, T0 + RING_S * 1000 - 1, &timeouts, &ev);
	cr_assert_eq(ev.n, 0);
	cr_assert_eq(c->status, CALL_RINGING);
	call_fsm_tick(c, T0 + RING_S * 1000 + 700, &timeouts, &ev);
	EVENTS(ev, "call.missed", "call.missed", "call.ended");
	assert_ended(c, OUTCOME_MISSED, CAUSE_RING_TIMEOUT, T0 + RING_S * 1000);
	cr_assert_eq(c->members[1].invite, INVITE_MISSED);
	cr_assert_eq(c->members[2].invite, INVITE_MISSED);
	call_free(c);
}

Test(fsm, ring_timeout_in_active_group_call_misses_pending_only)
{
	struct call *c = fixture_ringing_call(3);
	struct fsm_events ev = {0};
	const char *msg = NULL;
	accept_ok(c, "c1", T0 + 1000, &ev);
	cr_assert_eq(call_fsm_decline(c, "c2", T0 + 2000, &ev, &msg), ERR_OK);
	c->members[1].first_joined_at = T0 + 1500; /* c1 is in the room: no join timeout */
	call_fsm_arm(c, T0 + 2000);
	cr_assert_eq(c->next_deadline, T0 + RING_S * 1000);
	ev.n = 0;
	call_fsm_tick(c, T0 + RING_S * 1000, &timeouts, &ev);
	EVENTS(ev, "call.missed");
	cr_assert_eq(c->status, CALL_ACTIVE);
	cr_assert_eq(c->members[3].invite, INVITE_MISSED);
	cr_assert_eq(c->members[2].invite, INVITE_DECLINED);
	cr_assert_eq(c->next_deadline, 0);
	call_free(c);
}

Test(fsm, join_timeout_fails_an_active_call_nobody_joined)
{
	struct call *c = fixture_ringing_call(1);
	struct fsm_events ev = {0};
	accept_ok(c, "c1", T0 + 1000, &ev);
	ev.n = 0;
	int64_t deadline = T0 + 1000 + JOIN_S * 1000;
	call_fsm_tick(c, deadline - 1, &timeouts, &ev);
	cr_assert_eq(c->status, CALL_ACTIVE);
	call_fsm_tick(c, deadline + 300, &timeouts, &ev);
	EVENTS(ev, "call.ended");
	assert_ended(c, OUTCOME_FAILED, CAUSE_JOIN_TIMEOUT, deadline);
	call_free(c);
}

Test(fsm, a_callee_in_the_room_disarms_the_join_timeout)
{
	struct call *c = fixture_ringing_call(1);
	struct fsm_events ev = {0};
	accept_ok(c, "c1", T0 + 1000, &ev);
	c->members[1].first_joined_at = T0 + 4000;
	call_fsm_arm(c, T0 + 4000);
	cr_assert_eq(c->next_deadline, 0);
	ev.n = 0;
	call_fsm_tick(c, T0 + 1000 + JOIN_S * 1000 + 1, &timeouts, &ev);
	cr_assert_eq(ev.n, 0);
	cr_assert_eq(c->status, CALL_ACTIVE);
	call_free(c);
}

Test(fsm, caller_leaving_while_ringing_cancels)
{
	struct call *c = fixture_ringing_call(2);
	struct fsm_events ev = {0};
	const char *msg = NULL;
	cr_assert_eq(call_fsm_leave(c, "caller", T0 + 5000, &ev, &msg), ERR_OK);
	EVENTS(ev, "call.ended");
	assert_ended(c, OUTCOME_CANCELLED, CAUSE_LEAVE, T0 + 5000);
	cr_assert_eq(c->members[1].invite, INVITE_CANCELLED);
	cr_assert_eq(c->members[2].invite, INVITE_CANCELLED);
	call_free(c);
}

Test(fsm, caller_ending_while_ringing_cancels)
{
	struct call *c = fixture_ringing_call(1);
	struct fsm_events ev = {0};
	const char *msg = NULL;
	cr_assert_eq(call_fsm_end(c, "caller", T0 + 5000, &ev, &msg), ERR_OK);
	EVENTS(ev, "call.ended");
	assert_ended(c, OUTCOME_CANCELLED, CAUSE_END_REQUEST, T0 + 5000);
	cr_assert_eq(c->members[1].invite, INVITE_CANCELLED);
	call_free(c);
}

Test(fsm, either_side_leaving_a_two_person_call_completes_it)
{
	const char *leavers[] = {"caller", "c1"};
	for (size_t i = 0; i < 2; i++) {
		struct call *c = fixture_ringing_call(1);
		struct fsm_events ev = {0};
		const char *msg = NULL;
		accept_ok(c, "c1", T0 + 1000, &ev);
		ev.n = 0;
		cr_assert_eq(call_fsm_leave(c, leavers[i], T0 + 61000, &ev, &msg), ERR_OK);
		EVENTS(ev, "call.ended");
		assert_ended(c, OUTCOME_COMPLETED, CAUSE_LEAVE, T0 + 61000);
		call_free(c);
	}
}

Test(fsm, group_call_goes_on_until_everyone_left)
{
	struct call *c = fixture_ringing_call(2);
	struct fsm_events ev = {0};
	const char *msg = NULL;
	accept_ok(c, "c1", T0 + 1000, &ev);
	accept_ok(c, "c2", T0 + 1000, &ev);
	ev.n = 0;
	cr_assert_eq(call_fsm_leave(c, "caller", T0 + 2000, &ev, &msg), ERR_OK);
	cr_assert_eq(call_fsm_leave(c, "c1", T0 + 3000, &ev, &msg), ERR_OK);
	cr_assert_eq(ev.n, 0);
	cr_assert_eq(c->status, CALL_ACTIVE);
	cr_assert_eq(call_fsm_leave(c, "c2", T0 + 4000, &ev, &msg), ERR_OK);
	EVENTS(ev, "call.ended");
	assert_ended(c, OUTCOME_COMPLETED, CAUSE_LEAVE, T0 + 4000);
	call_free(c);
}

Test(fsm, pending_callee_leaving_or_ending_declines)
{
	struct call *c = fixture_ringing_call(2);
	struct fsm_events ev = {0};
	const char *msg = NULL;
	cr_assert_eq(call_fsm_leave(c, "c1", T0 + 1000, &ev, &msg), ERR_OK);
	cr_assert_eq(call_fsm_end(c, "c2", T0 + 2000, &ev, &msg), ERR_OK);
	EVENTS(ev, "call.declined", "call.declined", "call.ended");
	assert_ended(c, OUTCOME_DECLINED, CAUSE_DECLINED, T0 + 2000);
	call_free(c);
}

Test(fsm, explicit_end_of_active_call_completes_it)
{
	struct call *c = fixture_ringing_call(3);
	struct fsm_events ev = {0};
	const char *msg = NULL;
	accept_ok(c, "c1", T0 + 1000, &ev);
	ev.n = 0;
	cr_assert_eq(call_fsm_end(c, "c1", T0 + 9000, &ev, &msg), ERR_OK);
	EVENTS(ev, "call.ended");
	assert_ended(c, OUTCOME_COMPLETED, CAUSE_END_REQUEST, T0 + 9000);
	cr_assert_eq(c->members[2].invite, INVITE_CANCELLED,
		     "invites pending at an end request are cancelled, not missed");
	call_free(c);
}

Test(fsm, admin_end_needs_no_membership)
{
	struct call *c = fixture_ringing_call(1);
	struct fsm_events ev = {0};
	const char *msg = NULL;
	cr_assert_eq(call_fsm_end(c, NULL, T0 + 1000, &ev, &msg), ERR_OK);
	assert_ended(c, OUTCOME_CANCELLED, CAUSE_END_REQUEST, T0 + 1000);
	call_free(c);
}

Test(fsm, an_ended_call_never_changes_again)
{
	struct call *c = fixture_ringing_call(2);
	struct fsm_events ev = {0};
	const char *msg = NULL;
	cr_assert_eq(call_fsm_end(c, "caller", T0 + 1000, &ev, &msg), ERR_OK);
	struct call *before = call_clone(c);
	ev.n = 0;
	cr_assert_eq(call_fsm_accept(c, "c1", T0 + 2000, &timeouts, &ev, &msg), ERR_CONFLICT);
	cr_assert_eq(call_fsm_decline(c, "c2", T0 + 2000, &ev, &msg), ERR_CONFLICT);
	cr_assert_eq(call_fsm_leave(c, "c1", T0 + 2000, &ev, &msg), ERR_OK);
	cr_assert_eq(call_fsm_end(c, "caller", T0 + 2000, &ev, &msg), ERR_OK);
	call_fsm_tick(c, T0 + 999999, &timeouts, &ev);
	cr_assert_eq(ev.n, 0);
	cr_assert_eq(c->status, before->status);
	cr_assert_eq(c->outcome, before->outcome);
	cr_assert_eq(c->ended_at, before->ended_at);
	cr_assert_eq(memcmp(c->members, before->members, sizeof c->members), 0);
	call_free(before);
	call_free(c);
}

Test(fsm, times_stay_ordered)
{
	struct call *c = fixture_ringing_call(1);
	struct fsm_events ev = {0};
	const char *msg = NULL;
	accept_ok(c, "c1", T0 + 1000, &ev);
	cr_assert_eq(call_fsm_end(c, "caller", T0 + 500, &ev, &msg), ERR_OK, "a skewed clock");
	cr_assert_geq(c->ended_at, c->answered_at);
	cr_assert_geq(c->answered_at, c->created_at);
	call_free(c);
}

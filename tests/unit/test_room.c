/* LiveKit room facts applied to calls (call_fsm_room_event): joins answer calls, sessions are
 * keyed by sid, and the final state does not depend on the order webhooks arrive in. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "calls.h"
#include "fixtures.h"
#include "webhook.h"

#define T0 FIXTURE_T0
#define S0 (T0 / 1000)

static const struct fsm_timeouts timeouts = {.join_timeout_s = 60};

/* A webhook about participant `user` in session `sid`, sent at second `s` after S0. */
static struct webhook_event wh(enum webhook_kind kind, const char *user, const char *sid, int s)
{
	struct webhook_event we = {.kind = kind, .created_at = S0 + s};
	snprintf(we.id, sizeof we.id, "EV_%s_%d_%d", sid ? sid : "room", (int)kind, s);
	snprintf(we.room.name, sizeof we.room.name, "call_01900000-0000-7000-8000-000000000001");
	if (user) {
		snprintf(we.participant.identity, sizeof we.participant.identity, "%s", user);
		snprintf(we.participant.sid, sizeof we.participant.sid, "%s", sid);
	}
	return we;
}

static struct webhook_event joined(const char *user, const char *sid, int s)
{
	struct webhook_event we = wh(WEBHOOK_PARTICIPANT_JOINED, user, sid, s);
	we.participant.joined_at = S0 + s;
	we.participant.joined_at_ms = T0 + s * 1000 + 250;
	return we;
}

/* A leave carries the session's joinedAt too, as LiveKit's ParticipantInfo does. */
static struct webhook_event left(const char *user, const char *sid, int joined_s, int s)
{
	struct webhook_event we = wh(WEBHOOK_PARTICIPANT_LEFT, user, sid, s);
	we.participant.joined_at = S0 + joined_s;
	we.participant.joined_at_ms = T0 + joined_s * 1000 + 250;
	snprintf(we.participant.disconnect_reason, sizeof we.participant.disconnect_reason,
		 "CLIENT_INITIATED");
	return we;
}

static struct webhook_event finished(int s)
{
	struct webhook_event we = wh(WEBHOOK_ROOM_FINISHED, NULL, NULL, s);
	snprintf(we.room_end_reason, sizeof we.room_end_reason, "ROOM_END_API_DELETE");
	return we;
}

static void apply(struct call *c, const struct webhook_event *we, struct fsm_events *ev)
{
	struct room_presence rp;
	int64_t now = we->created_at * 1000 + 500;
	cr_assert_eq(call_fsm_room_event(c, we, now, &timeouts, ev, &rp), ERR_OK);
}

static struct call *play(size_t callees, const struct webhook_event *evs, size_t n,
			 const size_t *order)
{
	struct call *c = fixture_ringing_call(callees);
	for (size_t i = 0; i < n; i++) {
		struct fsm_events ev = {0};
		apply(c, &evs[order ? order[i] : i], &ev);
	}
	return c;
}

static const struct participant *session(const struct call *c, const char *sid)
{
	for (size_t i = 0; i < c->n_participants; i++)
		if (strcmp(c->participants[i].sid, sid) == 0)
			return &c->participants[i];
	cr_assert_fail("no session %s", sid);
	return NULL;
}

/* The same call state, whatever order the sessions were recorded in. */
static void assert_same(const struct call *a, const struct call *b)
{
	cr_assert_eq(a->status, b->status);
	cr_assert_eq(a->outcome, b->outcome);
	cr_assert_eq(a->end_cause, b->end_cause);
	cr_assert_eq(a->answered_at, b->answered_at);
	cr_assert_eq(a->ended_at, b->ended_at);
	cr_assert_eq(memcmp(a->members, b->members, a->n_members * sizeof a->members[0]), 0,
		     "members differ");
	cr_assert_eq(a->n_participants, b->n_participants);
	for (size_t i = 0; i < a->n_participants; i++) {
		const struct participant *pa = &a->participants[i];
		const struct participant *pb = session(b, pa->sid);
		cr_assert_eq(pa->joined_at, pb->joined_at, "%s joined_at", pa->sid);
		cr_assert_eq(pa->left_at, pb->left_at, "%s left_at", pa->sid);
		cr_assert_str_eq(pa->disconnect_reason, pb->disconnect_reason);
		cr_assert_eq(pa->aborted, pb->aborted);
	}
}

Test(room, callee_joining_a_ringing_call_answers_it)
{
	struct call *c = fixture_ringing_call(1);
	struct fsm_events ev = {0};
	struct webhook_event we = joined("c1", "PA_b1", 3);
	apply(c, &we, &ev);
	cr_assert_eq(ev.n, 3);
	cr_assert_str_eq(ev.types[0], "call.accepted");
	cr_assert_str_eq(ev.types[1], "call.active");
	cr_assert_str_eq(ev.types[2], "call.member_joined");
	cr_assert_eq(c->status, CALL_ACTIVE);
	cr_assert_eq(c->answered_at, T0 + 3250, "answered when LiveKit says they joined");
	cr_assert_eq(c->members[1].invite, INVITE_ACCEPTED);
	cr_assert(c->members[1].in_room);
	cr_assert_eq(c->members[1].first_joined_at, T0 + 3250);
	cr_assert_eq(c->next_deadline, 0, "a callee in the room disarms the join timeout");
	call_free(c);
}

Test(room, caller_joining_keeps_the_call_ringing)
{
	struct call *c = fixture_ringing_call(1);
	struct fsm_events ev = {0};
	struct webhook_event we = joined("caller", "PA_a1", 1);
	apply(c, &we, &ev);
	cr_assert_eq(ev.n, 1);
	cr_assert_str_eq(ev.types[0], "call.member_joined");
	cr_assert_eq(c->status, CALL_RINGING);
	call_free(c);
}

Test(room, a_leave_before_its_join_gives_the_same_call)
{
	const struct webhook_event evs[] = {joined("caller", "PA_a1", 1), joined("c1", "PA_b1", 2),
					    joined("c1", "PA_b1", 2), left("c1", "PA_b1", 2, 40)};
	const size_t natural[] = {0, 1, 3}, swapped[] = {0, 3, 1};
	struct call *a = play(1, evs, 3, natural);
	struct call *b = play(1, evs, 3, swapped);
	cr_assert_eq(a->status, CALL_ENDED);
	cr_assert_eq(a->outcome, OUTCOME_COMPLETED);
	cr_assert_eq(a->end_cause, CAUSE_LEAVE);
	cr_assert_eq(a->ended_at, T0 + 40000);
	assert_same(a, b);
	cr_assert_str_eq(session(b, "PA_b1")->disconnect_reason, "CLIENT_INITIATED");
	call_free(a);
	call_free(b);
}

/* The feed shows the stay whichever webhook came first: a leave learnt before its join is a
 * join and a leave at once, and the join that follows adds nothing. */
Test(room, a_leave_before_its_join_still_shows_the_stay_in_the_feed)
{
	struct call *c = fixture_ringing_call(2);
	struct webhook_event evs[] = {joined("caller", "PA_a1", 1), joined("c1", "PA_b1", 2),
				      left("c2", "PA_c1", 3, 20), joined("c2", "PA_c1", 3)};
	struct fsm_events ev = {0};
	apply(c, &evs[0], &ev);
	apply(c, &evs[1], &ev);
	ev.n = 0;
	apply(c, &evs[2], &ev);
	cr_assert_eq(ev.n, 3);
	cr_assert_str_eq(ev.types[0], "call.accepted", "joining answered c2's invite");
	cr_assert_str_eq(ev.types[1], "call.member_joined");
	cr_assert_str_eq(ev.types[2], "call.member_left");
	cr_assert_eq(c->status, CALL_ACTIVE, "the caller and c1 are still in the room");
	ev.n = 0;
	apply(c, &evs[3], &ev);
	cr_assert_eq(ev.n, 0, "the late join is known already");
	cr_assert_not(c->members[2].in_room);
	cr_assert_eq(c->members[2].first_joined_at, T0 + 3250);
	call_free(c);
}

/* A stay that closes while another session keeps the member in the room is not a leave. */
Test(room, a_closed_stay_learnt_while_in_the_room_is_no_event)
{
	struct call *c = fixture_ringing_call(1);
	struct webhook_event evs[] = {joined("c1", "PA_b2", 10), left("c1", "PA_b1", 2, 9)};
	struct fsm_events ev = {0};
	apply(c, &evs[0], &ev);
	ev.n = 0;
	apply(c, &evs[1], &ev);
	cr_assert_eq(ev.n, 0);
	cr_assert(c->members[1].in_room);
	call_free(c);
}

Test(room, a_reconnects_old_leave_after_its_new_join_does_not_end_the_call)
{
	const struct webhook_event evs[] = {
		joined("caller", "PA_a1", 1), joined("c1", "PA_b1", 2),
		joined("c1", "PA_b2", 30), left("c1", "PA_b1", 2, 31)};
	const size_t orders[][4] = {{0, 1, 2, 3}, {0, 2, 1, 3}, {0, 2, 3, 1}, {2, 0, 3, 1}};
	struct call *first = NULL;
	for (size_t k = 0; k < 4; k++) {
		struct call *c = play(1, evs, 4, orders[k]);
		cr_assert_eq(c->status, CALL_ACTIVE, "order %zu", k);
		cr_assert(c->members[1].in_room);
		cr_assert_eq(c->members[1].first_joined_at, T0 + 2250);
		cr_assert_eq(c->members[1].last_left_at, T0 + 31000);
		if (first) {
			assert_same(first, c);
			call_free(c);
		} else {
			first = c;
		}
	}
	struct fsm_events ev = {0};
	struct webhook_event last = left("c1", "PA_b2", 30, 90);
	apply(first, &last, &ev);
	cr_assert_eq(first->status, CALL_ENDED);
	cr_assert_eq(first->end_cause, CAUSE_LEAVE);
	cr_assert_eq(first->ended_at, T0 + 90000);
	call_free(first);
}

/* A leave LiveKit sent because the same identity joined again (a full reconnect). */
static struct webhook_event replaced(const char *user, const char *sid, int joined_s, int s)
{
	struct webhook_event we = left(user, sid, joined_s, s);
	snprintf(we.participant.disconnect_reason, sizeof we.participant.disconnect_reason,
		 "DUPLICATE_IDENTITY");
	return we;
}

/* Every order of n events (n <= 5), one after the other, in orders[k]; how many. */
static size_t permutations(size_t n, size_t orders[][5])
{
	size_t count = 0, idx[5];
	for (size_t i = 0; i < n; i++)
		idx[i] = i;
	for (;;) {
		memcpy(orders[count++], idx, sizeof idx);
		size_t i = n - 1;
		while (i > 0 && idx[i - 1] >= idx[i])
			i--;
		if (i == 0)
			return count;
		size_t j = n - 1;
		while (idx[j] <= idx[i - 1])
			j--;
		size_t t = idx[i - 1];
		idx[i - 1] = idx[j];
		idx[j] = t;
		for (size_t a = i, b = n - 1; a < b; a++, b--) {
			t = idx[a];
			idx[a] = idx[b];
			idx[b] = t;
		}
	}
}

/* Plays n events (n <= 4) in every order and returns the call of the first order, after
 * checking that every other order gave the same call. */
static struct call *same_in_every_order(size_t callees, const struct webhook_event *evs, size_t n)
{
	size_t orders[24][5];
	size_t count = permutations(n, orders);
	struct call *first = play(callees, evs, n, orders[0]);
	for (size_t k = 1; k < count; k++) {
		struct call *c = play(callees, evs, n, orders[k]);
		assert_same(first, c);
		call_free(c);
	}
	return first;
}

/* LiveKit sends the replaced session's leave first, the new session's join once it connects. */
Test(room, a_reconnect_whose_old_leave_comes_first_does_not_end_the_call, .timeout = 10)
{
	const struct webhook_event evs[] = {
		joined("caller", "PA_a1", 1), joined("c1", "PA_b1", 2),
		replaced("c1", "PA_b1", 2, 30), joined("c1", "PA_b2", 31)};
	struct call *all = same_in_every_order(1, evs, 4);
	cr_assert_eq(all->status, CALL_ACTIVE);
	cr_assert(all->members[1].in_room);
	call_free(all);

	/* Before the new join arrives, the user is out of the room, and the call goes on. */
	struct call *c = play(1, evs, 3, NULL);
	cr_assert_eq(c->status, CALL_ACTIVE);
	cr_assert(!c->members[1].in_room);
	/* A replaced session does not hold the call once the room has finished. */
	struct fsm_events ev = {0};
	struct webhook_event done = finished(60);
	apply(c, &done, &ev);
	cr_assert_eq(c->status, CALL_ENDED);
	cr_assert_eq(c->end_cause, CAUSE_ROOM_FINISHED);
	cr_assert(!c->members[1].in_room);
	call_free(c);
}

/* The new session's webhooks never came (lost after LiveKit's last retry): 30 s after the old
 * session's leave, the user is taken to have left then. */
Test(room, a_reconnect_never_heard_of_again_ends_the_call_at_the_old_leave)
{
	const struct webhook_event evs[] = {joined("caller", "PA_a1", 1), joined("c1", "PA_b1", 2),
					    replaced("c1", "PA_b1", 2, 30)};
	struct call *c = play(1, evs, 3, NULL);
	cr_assert_eq(c->status, CALL_ACTIVE);
	cr_assert_eq(c->next_deadline, T0 + 60000, "the reconnect's grace is a deadline");
	struct fsm_events ev = {0};
	call_fsm_tick(c, T0 + 59999, &timeouts, &ev);
	cr_assert_eq(c->status, CALL_ACTIVE);
	call_fsm_tick(c, T0 + 60000, &timeouts, &ev);
	cr_assert_eq(c->status, CALL_ENDED);
	cr_assert_eq(c->end_cause, CAUSE_LEAVE);
	cr_assert_eq(c->ended_at, T0 + 30000);
	cr_assert_eq(c->next_deadline, 0);
	call_free(c);
}

Test(room, a_member_reconnecting_keeps_a_group_calls_room_from_emptying)
{
	const struct webhook_event evs[] = {
		joined("caller", "PA_a1", 1), joined("c1", "PA_b1", 2), joined("c2", "PA_c1", 3),
		left("c2", "PA_c1", 3, 10), replaced("c1", "PA_b1", 2, 11), left("caller", "PA_a1", 1, 12)};
	struct call *c = play(2, evs, 6, NULL);
	cr_assert_eq(c->status, CALL_ACTIVE, "c1 is reconnecting");
	cr_assert(!c->members[1].in_room);
	struct fsm_events ev = {0};
	struct webhook_event back = joined("c1", "PA_b2", 13);
	apply(c, &back, &ev);
	cr_assert_eq(c->status, CALL_ACTIVE);
	cr_assert(c->members[1].in_room);
	struct webhook_event gone = left("c1", "PA_b2", 13, 20);
	apply(c, &gone, &ev);
	cr_assert_eq(c->status, CALL_ENDED);
	cr_assert_eq(c->end_cause, CAUSE_ROOM_EMPTY);
	cr_assert_eq(c->ended_at, T0 + 20000);
	call_free(c);
}

Test(room, a_reconnect_that_fails_ends_the_call_at_the_old_leave_in_any_order, .timeout = 10)
{
	struct webhook_event aborted = wh(WEBHOOK_PARTICIPANT_CONNECTION_ABORTED, "c1", "PA_b2", 35);
	const struct webhook_event evs[] = {joined("caller", "PA_a1", 1), joined("c1", "PA_b1", 2),
					    replaced("c1", "PA_b1", 2, 30), aborted};
	struct call *c = same_in_every_order(1, evs, 4);
	cr_assert_eq(c->status, CALL_ENDED);
	cr_assert_eq(c->end_cause, CAUSE_LEAVE);
	cr_assert_eq(c->ended_at, T0 + 30000);
	cr_assert(!c->members[1].in_room);
	call_free(c);
}

/* The callee left at 3 s, the caller at 4 s. Learnt in orders where both leaves are known
 * when the call is decided, it ends at the first leave, as it does in the natural order. */
Test(room, both_leaves_known_at_once_end_a_two_person_call_at_the_first)
{
	const struct webhook_event evs[] = {joined("caller", "PA_a1", 1), joined("c1", "PA_b1", 2),
					    left("c1", "PA_b1", 2, 3), left("caller", "PA_a1", 1, 4)};
	/* The callee's join (evs[1], or the joinedAt of evs[2]) is learnt before the caller's leave:
	 * a caller who leaves first cancels a ringing call (the test below). */
	const size_t orders[][4] = {{0, 1, 2, 3}, {2, 3, 0, 1}, {2, 0, 3, 1}, {2, 3, 1, 0}};
	struct call *first = play(1, evs, 4, orders[0]);
	cr_assert_eq(first->status, CALL_ENDED);
	cr_assert_eq(first->end_cause, CAUSE_LEAVE);
	cr_assert_eq(first->ended_at, T0 + 3000);
	for (size_t k = 1; k < sizeof orders / sizeof orders[0]; k++) {
		struct call *c = play(1, evs, 4, orders[k]);
		cr_assert_eq(c->ended_at, T0 + 3000, "order %zu", k);
		assert_same(first, c);
		call_free(c);
	}
	call_free(first);
}

/* protojson leaves an enum's zero out: a leave without disconnectReason is UNKNOWN_REASON. */
/* API.md: ringing → cancelled when the caller leaves before anyone accepted; their last session
 * closing is their leaving, as it is in an active two-person call. */
Test(room, the_callers_last_session_closing_cancels_a_ringing_call)
{
	struct call *c = fixture_ringing_call(2);
	struct webhook_event evs[] = {joined("caller", "PA_a1", 1), left("caller", "PA_a1", 1, 7)};
	struct fsm_events ev = {0};
	apply(c, &evs[0], &ev);
	cr_assert_eq(c->status, CALL_RINGING);
	ev.n = 0;
	apply(c, &evs[1], &ev);
	cr_assert_eq(c->status, CALL_ENDED);
	cr_assert_eq(c->outcome, OUTCOME_CANCELLED);
	cr_assert_eq(c->end_cause, CAUSE_LEAVE);
	cr_assert_eq(c->ended_at, T0 + 7000);
	cr_assert_eq(c->members[1].invite, INVITE_CANCELLED);
	cr_assert_eq(ev.n, 2);
	cr_assert_str_eq(ev.types[0], "call.member_left");
	cr_assert_str_eq(ev.types[1], "call.ended");
	call_free(c);
}

/* A caller who has not joined the room yet, or whose session LiveKit closed for a newer one,
 * has not left. */
Test(room, a_ringing_call_outlives_a_callers_reconnect)
{
	struct call *c = fixture_ringing_call(1);
	struct webhook_event evs[] = {joined("caller", "PA_a1", 1), replaced("caller", "PA_a1", 1, 5),
				      joined("caller", "PA_a2", 6)};
	for (size_t i = 0; i < sizeof evs / sizeof evs[0]; i++) {
		struct fsm_events ev = {0};
		apply(c, &evs[i], &ev);
		cr_assert_eq(c->status, CALL_RINGING, "after webhook %zu", i);
	}
	call_free(c);
}

/* A session without an identity (protojson leaves out an empty one) belongs to nobody: the
 * webhook changes nothing, and there is no session to store. */
Test(room, a_session_without_an_identity_is_not_recorded)
{
	struct call *c = fixture_ringing_call(1);
	struct webhook_event evs[] = {joined("", "PA_x1", 1), left("", "PA_x1", 1, 2)};
	for (size_t i = 0; i < sizeof evs / sizeof evs[0]; i++) {
		struct fsm_events ev = {0};
		apply(c, &evs[i], &ev);
		cr_assert_eq(ev.n, 0);
	}
	cr_assert_eq(c->n_participants, 0);
	cr_assert_eq(c->status, CALL_RINGING);
	call_free(c);
}

/* A group member who said leave over the API and then joined the room again is back in the
 * call: the caller's leave afterwards does not end it while they are in the room. */
Test(room, rejoining_the_room_takes_back_an_api_leave)
{
	struct call *c = fixture_ringing_call(2);
	struct fsm_events ev = {0};
	const char *msg = NULL;
	cr_assert_eq(call_fsm_accept(c, "c1", T0 + 1000, &timeouts, &ev, &msg), ERR_OK);
	cr_assert_eq(call_fsm_leave(c, "c1", T0 + 2000, &ev, &msg), ERR_OK);
	cr_assert(c->members[1].left);
	struct webhook_event we = joined("c1", "PA_b2", 3);
	apply(c, &we, &ev);
	cr_assert_not(c->members[1].left);
	cr_assert_eq(call_fsm_leave(c, "caller", T0 + 4000, &ev, &msg), ERR_OK);
	cr_assert_eq(c->status, CALL_ACTIVE, "c1 is still in the call");
	call_free(c);
}

Test(room, a_leave_without_a_reason_is_unknown_reason)
{
	struct webhook_event bare = left("c1", "PA_b1", 2, 40);
	bare.participant.disconnect_reason[0] = '\0';
	const struct webhook_event evs[] = {joined("caller", "PA_a1", 1), joined("c1", "PA_b1", 2),
					    bare};
	struct call *c = same_in_every_order(1, evs, 3);
	cr_assert_str_eq(session(c, "PA_b1")->disconnect_reason, "UNKNOWN_REASON");
	cr_assert_str_eq(session(c, "PA_a1")->disconnect_reason, "", "an open session has none");
	call_free(c);
}

Test(room, room_finished_with_people_in_closes_their_sessions)
{
	const struct webhook_event evs[] = {joined("caller", "PA_a1", 1), joined("c1", "PA_b1", 2),
					    finished(100), left("c1", "PA_b1", 2, 99),
					    left("caller", "PA_a1", 1, 99)};
	struct call *c = play(1, evs, 3, NULL);
	cr_assert_eq(c->status, CALL_ENDED);
	cr_assert_eq(c->outcome, OUTCOME_COMPLETED);
	cr_assert_eq(c->end_cause, CAUSE_ROOM_FINISHED);
	cr_assert_str_eq(c->room_end_reason, "ROOM_END_API_DELETE");
	cr_assert_eq(c->ended_at, T0 + 100000);
	cr_assert_not(c->members[0].in_room);
	cr_assert_eq(session(c, "PA_b1")->left_at, T0 + 100000);

	/* The leaves come late: they fill in the real times and reasons, nothing else. */
	for (size_t i = 3; i < 5; i++) {
		struct fsm_events ev = {0};
		apply(c, &evs[i], &ev);
	}
	cr_assert_eq(session(c, "PA_b1")->left_at, T0 + 99000);
	cr_assert_str_eq(session(c, "PA_a1")->disconnect_reason, "CLIENT_INITIATED");
	cr_assert_eq(c->end_cause, CAUSE_ROOM_FINISHED);
	cr_assert_eq(c->ended_at, T0 + 100000);
	call_free(c);
}

Test(room, room_finished_while_ringing_cancels)
{
	const struct webhook_event evs[] = {joined("caller", "PA_a1", 1), finished(30)};
	struct call *c = play(2, evs, 2, NULL);
	cr_assert_eq(c->outcome, OUTCOME_CANCELLED);
	cr_assert_eq(c->end_cause, CAUSE_ROOM_FINISHED);
	cr_assert_eq(c->members[1].invite, INVITE_CANCELLED);
	call_free(c);
}

Test(room, a_group_call_ends_when_the_room_empties)
{
	const struct webhook_event evs[] = {
		joined("caller", "PA_a1", 1), joined("c1", "PA_b1", 2), joined("c2", "PA_c1", 3),
		left("c1", "PA_b1", 2, 20), left("caller", "PA_a1", 1, 21), left("c2", "PA_c1", 3, 22)};
	struct call *c = play(2, evs, 5, NULL);
	cr_assert_eq(c->status, CALL_ACTIVE, "one member is still in");
	struct fsm_events ev = {0};
	apply(c, &evs[5], &ev);
	cr_assert_eq(ev.n, 2);
	cr_assert_str_eq(ev.types[0], "call.member_left");
	cr_assert_str_eq(ev.types[1], "call.ended");
	cr_assert_eq(c->end_cause, CAUSE_ROOM_EMPTY);
	cr_assert_eq(c->ended_at, T0 + 22000);
	call_free(c);
}

Test(room, an_aborted_connection_is_not_a_join)
{
	struct call *c = fixture_ringing_call(1);
	struct fsm_events ev = {0};
	const char *msg = NULL;
	cr_assert_eq(call_fsm_accept(c, "c1", T0 + 1000, &timeouts, &ev, &msg), ERR_OK);
	struct webhook_event we = wh(WEBHOOK_PARTICIPANT_CONNECTION_ABORTED, "c1", "PA_b1", 5);
	ev.n = 0;
	apply(c, &we, &ev);
	cr_assert_eq(ev.n, 0);
	cr_assert(session(c, "PA_b1")->aborted);
	cr_assert_eq(c->members[1].first_joined_at, 0);
	cr_assert_eq(c->next_deadline, T0 + 61000, "the join timeout still runs");
	call_fsm_tick(c, T0 + 61000, &timeouts, &ev);
	cr_assert_eq(c->outcome, OUTCOME_FAILED);
	call_free(c);
}

Test(room, participants_who_are_not_members_are_recorded_only)
{
	struct call *c = fixture_ringing_call(1);
	struct fsm_events ev = {0};
	struct webhook_event we = joined("EG_recorder", "PA_eg", 2);
	snprintf(we.participant.kind, sizeof we.participant.kind, "EGRESS");
	apply(c, &we, &ev);
	cr_assert_eq(ev.n, 0);
	cr_assert_eq(c->n_participants, 1);
	cr_assert_str_eq(c->participants[0].user, "EG_recorder");
	cr_assert_eq(c->n_members, 2);
	cr_assert_eq(c->status, CALL_RINGING);
	call_free(c);
}

Test(room, an_ended_call_only_takes_in_session_times)
{
	struct call *c = fixture_ringing_call(1);
	struct fsm_events ev = {0};
	const char *msg = NULL;
	cr_assert_eq(call_fsm_end(c, "caller", T0 + 2000, &ev, &msg), ERR_OK);
	struct webhook_event we = joined("c1", "PA_b1", 3);
	ev.n = 0;
	apply(c, &we, &ev);
	cr_assert_eq(c->status, CALL_ENDED);
	cr_assert_eq(c->outcome, OUTCOME_CANCELLED);
	cr_assert_eq(c->members[1].invite, INVITE_CANCELLED);
	cr_assert_eq(session(c, "PA_b1")->joined_at, T0 + 3250);
	call_free(c);
}

Test(room, joining_after_the_ring_deadline_does_not_answer)
{
	struct call *c = fixture_ringing_call(1);
	struct fsm_events ev = {0};
	struct webhook_event we = joined("c1", "PA_b1", 50);
	apply(c, &we, &ev);
	cr_assert_eq(c->status, CALL_ENDED);
	cr_assert_eq(c->outcome, OUTCOME_MISSED);
	call_free(c);
}

Test(room, screen_shares_are_recorded_on_the_session)
{
	struct call *c = fixture_ringing_call(1);
	struct fsm_events ev = {0};
	struct webhook_event j = joined("c1", "PA_b1", 2);
	struct webhook_event pub = wh(WEBHOOK_TRACK_PUBLISHED, "c1", "PA_b1", 10);
	struct webhook_event unpub = wh(WEBHOOK_TRACK_UNPUBLISHED, "c1", "PA_b1", 20);
	snprintf(pub.track.source, sizeof pub.track.source, "SCREEN_SHARE");
	snprintf(unpub.track.source, sizeof unpub.track.source, "SCREEN_SHARE");
	apply(c, &unpub, &ev);
	apply(c, &pub, &ev);
	apply(c, &j, &ev);
	cr_assert_eq(session(c, "PA_b1")->screen_share_at, T0 + 10000);
	cr_assert_eq(session(c, "PA_b1")->screen_share_ended_at, T0 + 20000);
	call_free(c);
}

Test(room, a_member_identity_joining_as_an_agent_is_not_in_the_room)
{
	struct call *c = fixture_ringing_call(1);
	struct fsm_events ev = {0};
	struct webhook_event we = joined("c1", "PA_agent", 2);
	snprintf(we.participant.kind, sizeof we.participant.kind, "AGENT");
	apply(c, &we, &ev);
	cr_assert_eq(ev.n, 0);
	cr_assert_not(c->members[1].in_room);
	cr_assert_eq(c->members[1].invite, INVITE_PENDING, "an agent does not answer for them");
	cr_assert(session(c, "PA_agent")->observer);
	call_free(c);
}

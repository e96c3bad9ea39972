/* The steps of the state machine that both the API's transitions (call_fsm.c) and the room's
 * (call_room.c) take; not part of the calls interface. */
#pragma once

#include "calls.h"

void call_fsm_emit(struct fsm_events *ev, const char *type);
/* A pending invite of m accepted at `at`: a ringing call becomes active then and its join
 * timer starts. */
void call_fsm_answer(struct call *c, struct member *m, int64_t at, const struct fsm_timeouts *t,
		     struct fsm_events *ev);
/* End the call at `at` (kept within created_at and answered_at). Invites still pending become
 * missed when the ring timeout ended them, else cancelled (API.md); only missed invites get an
 * event of their own. */
void call_fsm_end_call(struct call *c, enum call_outcome outcome, enum end_cause cause,
		       int64_t at, struct fsm_events *ev);
/* When the earliest reconnect's grace that has not passed by now ends, 0 if none (call_room.c). */
int64_t call_room_reconnect_deadline(const struct call *c, int64_t now);
/* The room's end rules again once a reconnect's grace has passed (the timer's part). */
void call_room_reconnects_expire(struct call *c, int64_t now, struct fsm_events *ev);

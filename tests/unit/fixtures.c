/* Shared builders of the unit tests; see fixtures.h. */
#include "fixtures.h"

#include <criterion/criterion.h>
#include <stdio.h>

struct call *fixture_ringing_call(size_t n)
{
	struct call *c = call_new();
	cr_assert_not_null(c);
	snprintf(c->id, sizeof c->id, "01900000-0000-7000-8000-000000000001");
	snprintf(c->room, sizeof c->room, "call_%s", c->id);
	snprintf(c->caller, sizeof c->caller, "caller");
	c->status = CALL_RINGING;
	c->created_at = FIXTURE_T0;
	c->ring_timeout_s = FIXTURE_RING_S;
	c->ring_deadline = FIXTURE_T0 + FIXTURE_RING_S * 1000;
	snprintf(c->members[0].user, sizeof c->members[0].user, "caller");
	c->members[0].role = MEMBER_CALLER;
	c->members[0].invite = INVITE_ACCEPTED;
	c->members[0].responded_at = FIXTURE_T0;
	for (size_t i = 1; i <= n; i++) {
		snprintf(c->members[i].user, sizeof c->members[i].user, "c%zu", i);
		c->members[i].role = MEMBER_CALLEE;
		c->members[i].invite = INVITE_PENDING;
	}
	c->n_members = n + 1;
	call_fsm_arm(c, FIXTURE_T0);
	return c;
}

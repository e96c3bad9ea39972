/* The calls service over a real database (SQLite, or PostgreSQL: see rawdb.h) with a
 * hand-driven clock: every action commits the call with its feed events, timers fire when due
 * (also after a restart), and idempotent creation replays. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "calls.h"
#include "rawdb.h"
#include "webhook.h"

#define T0 1767225600000LL

static int64_t fake_now;
static int64_t fake_clock(void *ctx)
{
	(void)ctx;
	return fake_now;
}

static char dir[] = "/tmp/callstate-calls-XXXXXX";
static char url[256];
static struct storage *st;
static struct token_signer signer;
static struct calls cs;

static void open_db(void)
{
	int applied;
	cr_assert_eq(storage_open(url, NULL, &st), ERR_OK);
	cr_assert_eq(storage_migrate(st, &applied), ERR_OK);
	cs = (struct calls){
		.st = st,
		.signer = &signer,
		.clock = {.now_ms = fake_clock},
		.cfg = {.ring_timeout_s = 45, .join_timeout_s = 60, .token_ttl_s = 600,
			.livekit_url = "ws://lk"},
	};
}

static void setup(void)
{
	cr_assert_not_null(mkdtemp(dir));
	rawdb_fresh(dir, "callstate_test_calls", url, sizeof url);
	cr_assert_eq(tokens_signer_init(&signer, "key", "secret-0123456789abcdef0123456789"), ERR_OK);
	fake_now = T0;
	open_db();
}

static void teardown(void)
{
	storage_close(st);
	tokens_signer_finish(&signer);
	char cmd[300];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	cr_assert_eq(system(cmd), 0);
	memcpy(dir + strlen(dir) - 6, "XXXXXX", 6);
}

TestSuite(calls, .init = setup, .fini = teardown);

static struct call_create_req request(const char *caller, size_t n)
{
	struct call_create_req req = {.kind = CALL_VIDEO, .n_callees = n};
	snprintf(req.caller, sizeof req.caller, "%s", caller);
	for (size_t i = 0; i < n; i++)
		snprintf(req.callees[i], sizeof req.callees[i], "callee%zu", i + 1);
	return req;
}

static struct call *create(const struct call_create_req *req)
{
	struct call_grant g = {0};
	const char *msg = NULL;
	cr_assert_eq(calls_create(&cs, req, &g, &msg), ERR_OK, "%s", msg ? msg : "");
	cr_assert(g.has_token);
	struct call *c = g.call;
	g.call = NULL;
	call_grant_finish(&g);
	return c;
}

/* The types of every event of the feed, in seq order, joined by spaces. */
static void feed_types(char *out, size_t cap, int64_t *ret_last_version)
{
	struct event_page page = {0};
	cr_assert_eq(storage_events_after(st, 0, 500, &page), ERR_OK);
	size_t len = 0;
	int64_t version = 0;
	out[0] = 0;
	for (size_t i = 0; i < page.n; i++) {
		len += (size_t)snprintf(out + len, cap - len, "%s%s", i ? " " : "",
					page.events[i].type);
		if (i)
			cr_assert_gt(page.events[i].seq, page.events[i - 1].seq);
		if (strcmp(page.events[i].type, "presence.changed") == 0)
			continue; /* no call, no call_version */
		cr_assert_eq(page.events[i].call_version, ++version, "call_version is consecutive");
		*ret_last_version = version;
	}
	event_page_finish(&page);
}

Test(calls, every_change_commits_with_its_events)
{
	struct call_create_req req = request("alice", 1);
	struct call *c = create(&req);
	struct call_grant g = {0};
	const char *msg = NULL;
	fake_now += 2000;
	cr_assert_eq(calls_accept(&cs, NULL, c->id, "callee1", "Bob", &g, &msg), ERR_OK);
	cr_assert_eq(g.call->status, CALL_ACTIVE);
	call_grant_finish(&g);
	struct call *left = NULL;
	fake_now += 30000;
	cr_assert_eq(calls_leave(&cs, NULL, c->id, "alice", &left, &msg), ERR_OK);
	cr_assert_eq(left->outcome, OUTCOME_COMPLETED);
	call_free(left);

	char types[512];
	int64_t version = 0;
	feed_types(types, sizeof types, &version);
	cr_assert_str_eq(types, "call.ringing call.accepted call.active call.ended");
	struct call *stored = NULL;
	cr_assert_eq(storage_call_get(st, c->id, &stored), ERR_OK);
	cr_assert_eq(stored->version, version);
	cr_assert_eq(stored->ended_at - stored->answered_at, 30000);
	cr_assert_eq(stored->members[1].token_minted_at, T0 + 2000);
	cr_assert_str_eq(stored->members[1].name, "Bob");
	call_free(stored);
	call_free(c);
}

Test(calls, refusals_change_nothing)
{
	struct call_create_req req = request("alice", 1);
	struct call *c = create(&req);
	struct call_grant g = {0};
	const char *msg = NULL;
	cr_assert_eq(calls_accept(&cs, NULL, c->id, "mallory", NULL, &g, &msg), ERR_FORBIDDEN);
	cr_assert_eq(calls_accept(&cs, NULL, "01900000-0000-7000-8000-000000000000", "alice", NULL, &g,
				  &msg),
		     ERR_NOT_FOUND);
	cr_assert_eq(calls_token(&cs, c->id, "mallory", NULL, &g, &msg), ERR_FORBIDDEN);
	char types[512];
	int64_t version = 0;
	feed_types(types, sizeof types, &version);
	cr_assert_str_eq(types, "call.ringing");
	call_free(c);
}

Test(calls, ring_timeout_fires_when_due)
{
	struct call_create_req req = request("alice", 2);
	req.ring_timeout_s = 5;
	struct call *c = create(&req);
	struct timer_pass pass = {.fired = 9};
	fake_now = T0 + 4999;
	cr_assert_eq(calls_fire_due(&cs, NULL, NULL, &pass), ERR_OK);
	cr_assert_eq(pass.fired, 0);
	fake_now = T0 + 5000;
	cr_assert_eq(calls_fire_due(&cs, NULL, NULL, &pass), ERR_OK);
	cr_assert_eq(pass.fired, 1);
	cr_assert_eq(pass.failed, 0);
	struct call *got = NULL;
	cr_assert_eq(calls_get(&cs, c->id, &got), ERR_OK);
	cr_assert_eq(got->outcome, OUTCOME_MISSED);
	cr_assert_eq(got->end_cause, CAUSE_RING_TIMEOUT);
	cr_assert_eq(got->ended_at, T0 + 5000);
	call_free(got);
	char types[512];
	int64_t version = 0;
	feed_types(types, sizeof types, &version);
	cr_assert_str_eq(types, "call.ringing call.missed call.missed call.ended");
	cr_assert_eq(calls_fire_due(&cs, NULL, NULL, &pass), ERR_OK);
	cr_assert_eq(pass.fired, 0, "a settled call is not due again");
	call_free(c);
}

/* A row this build cannot read (a status written by a newer version, then rolled back) must
 * not stop the timers: the pass skips it, names it, and every other due call still fires,
 * also when there are more unreadable rows than one page of due calls holds. */
Test(calls, an_unreadable_row_does_not_stop_the_timers)
{
	enum { POISONED = 300, GOOD = 3 };
	struct call *poisoned[POISONED], *good[GOOD];
	struct call_create_req req = request("alice", 1);
	req.ring_timeout_s = 5;
	for (int i = 0; i < POISONED; i++)
		poisoned[i] = create(&req);
	for (int i = 0; i < GOOD; i++)
		good[i] = create(&req);
	for (int i = 0; i < POISONED; i++)
		rawdb_exec1(url, "UPDATE calls SET status = 'on_hold' WHERE id = ?1", poisoned[i]->id);

	fake_now = T0 + 5000;
	struct timer_pass pass;
	cr_assert_eq(calls_fire_due(&cs, NULL, NULL, &pass), ERR_OK);
	cr_assert_eq(pass.fired, GOOD);
	cr_assert_eq(pass.failed, POISONED);
	cr_assert_str_eq(pass.failures[0].call_id, poisoned[0]->id, "the first is named");
	cr_assert_eq(pass.failures[0].e, ERR_INTERNAL);
	for (int i = 0; i < GOOD; i++) {
		struct call *got = NULL;
		cr_assert_eq(calls_get(&cs, good[i]->id, &got), ERR_OK);
		cr_assert_eq(got->outcome, OUTCOME_MISSED, "call %d timed out", i);
		call_free(got);
	}
	cr_assert_eq(calls_fire_due(&cs, NULL, NULL, &pass), ERR_OK);
	cr_assert_eq(pass.fired, 0);
	cr_assert_eq(pass.failed, POISONED, "still skipped, still counted");
	for (int i = 0; i < POISONED; i++)
		call_free(poisoned[i]);
	for (int i = 0; i < GOOD; i++)
		call_free(good[i]);
}

Test(calls, a_call_ringing_at_shutdown_is_settled_after_restart)
{
	struct call_create_req req = request("alice", 1);
	req.ring_timeout_s = 5;
	struct call *c = create(&req);
	storage_close(st);
	fake_now = T0 + 60000;
	open_db();
	struct timer_pass pass;
	cr_assert_eq(calls_fire_due(&cs, NULL, NULL, &pass), ERR_OK);
	cr_assert_eq(pass.fired, 1);
	struct call *got = NULL;
	cr_assert_eq(storage_call_get(st, c->id, &got), ERR_OK);
	cr_assert_eq(got->status, CALL_ENDED);
	cr_assert_eq(got->outcome, OUTCOME_MISSED);
	call_free(got);
	call_free(c);
}

Test(calls, an_action_after_the_deadline_sees_the_settled_call)
{
	struct call_create_req req = request("alice", 1);
	req.ring_timeout_s = 5;
	struct call *c = create(&req);
	fake_now = T0 + 5001; /* the timer thread has not run yet */
	struct call_grant g = {0};
	const char *msg = NULL;
	cr_assert_eq(calls_accept(&cs, NULL, c->id, "callee1", NULL, &g, &msg), ERR_CONFLICT);
	cr_assert_eq(calls_token(&cs, c->id, "alice", NULL, &g, &msg), ERR_CONFLICT);
	struct call *got = NULL;
	cr_assert_eq(storage_call_get(st, c->id, &got), ERR_OK);
	cr_assert_eq(got->outcome, OUTCOME_MISSED, "the settlement committed despite the refusal");
	call_free(got);
	call_free(c);
}

/* A LiveKit webhook about user's session PA_<sid> at at_ms (its createdAt is whole seconds),
 * applied through the calls service. reason: a participant_left's disconnectReason. */
static void apply_session(const struct call *c, const char *event, const char *user,
			  const char *sid, int64_t joined_ms, int64_t at_ms, const char *reason)
{
	char body[640];
	int n = snprintf(body, sizeof body,
			 "{\"event\":\"%s\",\"id\":\"EV_%s_%s\",\"createdAt\":\"%lld\","
			 "\"room\":{\"name\":\"%s\"},\"participant\":{\"sid\":\"PA_%s\","
			 "\"identity\":\"%s\",\"joinedAtMs\":\"%lld\"%s%s%s}}",
			 event, event, sid, (long long)(at_ms / 1000), c->room, sid, user,
			 (long long)joined_ms, reason ? ",\"disconnectReason\":\"" : "",
			 reason ? reason : "", reason ? "\"" : "");
	cr_assert_lt(n, (int)sizeof body);
	struct webhook_event we;
	cr_assert_eq(webhook_event_parse(body, (size_t)n, &we), ERR_OK);
	bool duplicate = true;
	cr_assert_eq(calls_apply_webhook(&cs, &we, body, (size_t)n, &duplicate), ERR_OK);
	cr_assert(!duplicate);
}

/* Every read shows a call past its deadline as settled; a webhook arriving then must not bring
 * it back to life, whatever time it reports (API.md: an ended call never changes status again). */
Test(calls, a_webhook_after_the_deadline_sees_the_settled_call)
{
	struct call_create_req req = request("alice", 1);
	req.ring_timeout_s = 5;
	struct call *c = create(&req);
	fake_now = T0 + 5100; /* the timer thread has not run yet */
	/* Delivered late: the callee joined 1 s before the ring deadline. */
	apply_session(c, "participant_joined", "callee1", "b1", T0 + 4000, T0 + 4000, NULL);
	struct call *got = NULL;
	cr_assert_eq(storage_call_get(st, c->id, &got), ERR_OK);
	cr_assert_eq(got->status, CALL_ENDED);
	cr_assert_eq(got->outcome, OUTCOME_MISSED);
	cr_assert_eq(got->ended_at, T0 + 5000);
	cr_assert_eq(got->answered_at, 0);
	cr_assert_eq(got->members[1].invite, INVITE_MISSED);
	cr_assert_eq(got->members[1].first_joined_at, T0 + 4000, "the session times are filled in");
	char types[512];
	int64_t version = 0;
	feed_types(types, sizeof types, &version);
	/* The room is LiveKit's: the session is open in it, though the call has ended. */
	cr_assert_str_eq(types, "call.ringing call.missed call.ended call.member_joined presence.changed");
	call_free(got);
	call_free(c);
}

/* A full reconnect whose new session LiveKit never reported: the timer ends the call 30 s
 * after the old session's leave, at that leave. */
Test(calls, a_reconnect_never_completed_ends_the_call_by_the_timer)
{
	struct call_create_req req = request("alice", 1);
	struct call *c = create(&req);
	fake_now = T0 + 2000;
	apply_session(c, "participant_joined", "alice", "a1", T0 + 1000, T0 + 1000, NULL);
	apply_session(c, "participant_joined", "callee1", "b1", T0 + 2000, T0 + 2000, NULL);
	fake_now = T0 + 10500;
	apply_session(c, "participant_left", "callee1", "b1", T0 + 2000, T0 + 10000,
		      "DUPLICATE_IDENTITY");
	struct timer_pass pass;
	fake_now = T0 + 39999;
	cr_assert_eq(calls_fire_due(&cs, NULL, NULL, &pass), ERR_OK);
	cr_assert_eq(pass.fired, 0);
	fake_now = T0 + 40000;
	cr_assert_eq(calls_fire_due(&cs, NULL, NULL, &pass), ERR_OK);
	cr_assert_eq(pass.fired, 1);
	struct call *got = NULL;
	cr_assert_eq(storage_call_get(st, c->id, &got), ERR_OK);
	cr_assert_eq(got->status, CALL_ENDED);
	cr_assert_eq(got->outcome, OUTCOME_COMPLETED);
	cr_assert_eq(got->end_cause, CAUSE_LEAVE);
	cr_assert_eq(got->ended_at, T0 + 10000);
	cr_assert_eq(got->next_deadline, 0);
	call_free(got);
	call_free(c);
}

Test(calls, join_timeout_fails_the_call)
{
	struct call_create_req req = request("alice", 1);
	struct call *c = create(&req);
	struct call_grant g = {0};
	const char *msg = NULL;
	fake_now = T0 + 1000;
	cr_assert_eq(calls_accept(&cs, NULL, c->id, "callee1", NULL, &g, &msg), ERR_OK);
	call_grant_finish(&g);
	fake_now = T0 + 1000 + 60000;
	struct timer_pass pass;
	cr_assert_eq(calls_fire_due(&cs, NULL, NULL, &pass), ERR_OK);
	cr_assert_eq(pass.fired, 1);
	struct call *got = NULL;
	cr_assert_eq(calls_get(&cs, c->id, &got), ERR_OK);
	cr_assert_eq(got->outcome, OUTCOME_FAILED);
	cr_assert_eq(got->end_cause, CAUSE_JOIN_TIMEOUT);
	call_free(got);
	call_free(c);
}

Test(calls, idempotency_key_replays_the_same_call)
{
	struct call_create_req req = request("alice", 1);
	req.idempotency_key = "k1";
	memset(req.request_hash, 7, sizeof req.request_hash);
	struct call *first = create(&req);

	struct call_grant g = {0};
	const char *msg = NULL;
	cr_assert_eq(calls_create(&cs, &req, &g, &msg), ERR_OK);
	cr_assert(g.replayed);
	cr_assert(g.has_token);
	cr_assert_str_eq(g.call->id, first->id);
	call_grant_finish(&g);

	req.request_hash[0] = 8;
	cr_assert_eq(calls_create(&cs, &req, &g, &msg), ERR_CONFLICT);

	struct call_create_req other = request("bob", 1);
	other.idempotency_key = "k1";
	struct call *second = create(&other);
	cr_assert_str_neq(second->id, first->id, "keys are per caller");

	req.request_hash[0] = 7;
	struct call *ended = NULL;
	cr_assert_eq(calls_end(&cs, NULL, first->id, "alice", &ended, &msg), ERR_OK);
	call_free(ended);
	cr_assert_eq(calls_create(&cs, &req, &g, &msg), ERR_OK);
	cr_assert(g.replayed);
	cr_assert_not(g.has_token, "no token for an ended call");
	call_grant_finish(&g);

	fake_now += 24LL * 3600 * 1000 + 1;
	struct call *fresh = create(&req);
	cr_assert_str_neq(fresh->id, first->id, "the key expires after 24 h");
	call_free(fresh);
	call_free(second);
	call_free(first);
}

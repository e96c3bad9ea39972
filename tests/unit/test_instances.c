/* Two callstate instances on one database at once (two storages on one URL, each with its
 * calls service, as two processes behind a load balancer would be): the rules of
 * include/storage.h that only several writers can break. Runs on every backend (rawdb.h);
 * PostgreSQL is where they matter. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "calls.h"
#include "presence.h"
#include "rawdb.h"
#include "webhook.h"

#define T0 1767225600000LL

static _Atomic int64_t fake_now;
static int64_t shared_clock(void *ctx)
{
	(void)ctx;
	return atomic_load(&fake_now);
}

static char dir[] = "/tmp/callstate-instances-XXXXXX";
static char url[512];
static struct token_signer signer;
static struct storage *stores[2];
static struct calls instances[2];

static void setup(void)
{
	cr_assert_not_null(mkdtemp(dir));
	rawdb_fresh(dir, "callstate_test_instances", url, sizeof url);
	cr_assert_eq(tokens_signer_init(&signer, "key", "secret-0123456789abcdef0123456789"), ERR_OK);
	atomic_store(&fake_now, T0);
	for (int i = 0; i < 2; i++) {
		int applied;
		cr_assert_eq(storage_open(url, NULL, &stores[i]), ERR_OK);
		cr_assert_eq(storage_migrate(stores[i], &applied), ERR_OK);
		instances[i] = (struct calls){
			.st = stores[i],
			.signer = &signer,
			.clock = {.now_ms = shared_clock},
			.cfg = {.ring_timeout_s = 45, .join_timeout_s = 60, .token_ttl_s = 600,
				.livekit_url = "ws://lk"},
		};
	}
}

static void teardown(void)
{
	for (int i = 0; i < 2; i++)
		storage_close(stores[i]);
	tokens_signer_finish(&signer);
	char cmd[300];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	cr_assert_eq(system(cmd), 0);
	memcpy(dir + strlen(dir) - 6, "XXXXXX", 6);
}

TestSuite(instances, .init = setup, .fini = teardown, .timeout = 120);

/* ---- helpers ---- */

static struct call_create_req request(const char *caller, size_t n)
{
	struct call_create_req req = {.kind = CALL_AUDIO, .n_callees = n, .ring_timeout_s = 300};
	snprintf(req.caller, sizeof req.caller, "%s", caller);
	for (size_t i = 0; i < n; i++)
		snprintf(req.callees[i], sizeof req.callees[i], "%s-callee%zu", caller, i + 1);
	return req;
}

static char *create(int instance, const struct call_create_req *req)
{
	struct call_grant g = {0};
	const char *msg = NULL;
	cr_assert_eq(calls_create(&instances[instance], req, &g, &msg), ERR_OK, "%s",
		     msg ? msg : "");
	char *id = strdup(g.call->id);
	call_grant_finish(&g);
	return id;
}

/* The whole feed, in seq order (every event, through pages of 500). */
static struct event *whole_feed(size_t *ret_n)
{
	struct event *all = NULL;
	size_t n = 0;
	int64_t after = 0;
	for (;;) {
		struct event_page page = {0};
		cr_assert_eq(storage_events_after(stores[0], after, 500, &page), ERR_OK);
		all = realloc(all, (n + page.n + 1) * sizeof *all);
		cr_assert_not_null(all);
		memcpy(all + n, page.events, page.n * sizeof *all);
		n += page.n;
		if (page.n)
			after = page.events[page.n - 1].seq;
		size_t got = page.n;
		free(page.events); /* the events' data now belong to all */
		if (got < 500)
			break;
	}
	*ret_n = n;
	return all;
}

static void free_feed(struct event *all, size_t n)
{
	for (size_t i = 0; i < n; i++)
		event_finish(&all[i]);
	free(all);
}

/* Every call's events carry call_version 1, 2, 3, ... in seq order, with no gap and no
 * repeat; seqs strictly increase. Returns how many events of type the call has. */
static size_t check_versions(const struct event *all, size_t n, const char *call_id,
			     const char *type)
{
	int64_t want = 1;
	size_t typed = 0;
	for (size_t i = 0; i < n; i++) {
		if (i)
			cr_assert_gt(all[i].seq, all[i - 1].seq, "seq strictly increases");
		if (strcmp(all[i].call_id, call_id) != 0)
			continue;
		cr_assert_eq(all[i].call_version, want, "call %s: version %lld where %lld was due",
			     call_id, (long long)all[i].call_version, (long long)want);
		want++;
		typed += type && strcmp(all[i].type, type) == 0;
	}
	return typed;
}

/* Runs fn(k) on 2 * per_instance threads, half on each instance, released together. */
struct race {
	pthread_barrier_t start;
	void (*fn)(int instance, int k, void *arg);
	void *arg;
	int per_instance;
};

struct racer {
	struct race *race;
	int instance, k;
};

static void *racer_main(void *p)
{
	struct racer *r = p;
	pthread_barrier_wait(&r->race->start);
	r->race->fn(r->instance, r->k, r->race->arg);
	return NULL;
}

static void run_race(int per_instance, void (*fn)(int instance, int k, void *arg), void *arg)
{
	struct race race = {.fn = fn, .arg = arg, .per_instance = per_instance};
	int n = 2 * per_instance;
	pthread_t threads[64];
	struct racer racers[64];
	cr_assert_leq(n, 64);
	cr_assert_eq(pthread_barrier_init(&race.start, NULL, (unsigned)n), 0);
	for (int k = 0; k < n; k++) {
		racers[k] = (struct racer){&race, k % 2, k};
		cr_assert_eq(pthread_create(&threads[k], NULL, racer_main, &racers[k]), 0);
	}
	for (int k = 0; k < n; k++)
		pthread_join(threads[k], NULL);
	pthread_barrier_destroy(&race.start);
}

/* ---- one Idempotency-Key from both instances ---- */

struct idem_race {
	struct call_create_req req;
	enum err result[64];
	char call_id[64][ID_LEN + 1];
	bool replayed[64];
};

static void create_with_key(int instance, int k, void *arg)
{
	struct idem_race *ir = arg;
	struct call_grant g = {0};
	const char *msg = NULL;
	ir->result[k] = calls_create(&instances[instance], &ir->req, &g, &msg);
	if (ir->result[k] == ERR_OK) {
		memcpy(ir->call_id[k], g.call->id, ID_LEN + 1);
		ir->replayed[k] = g.replayed;
	}
	call_grant_finish(&g);
}

Test(instances, one_idempotency_key_makes_one_call)
{
	for (int round = 0; round < 10; round++) {
		struct idem_race ir = {.req = request("idem", 2)};
		char key[32];
		snprintf(key, sizeof key, "key-%d", round);
		ir.req.idempotency_key = key;
		memset(ir.req.request_hash, round + 1, sizeof ir.req.request_hash);
		run_race(4, create_with_key, &ir);
		int created = 0;
		for (int k = 0; k < 8; k++) {
			cr_assert_eq(ir.result[k], ERR_OK, "round %d racer %d", round, k);
			cr_assert_str_eq(ir.call_id[k], ir.call_id[0], "one call for one key");
			created += !ir.replayed[k];
		}
		cr_assert_eq(created, 1, "round %d: one creation, the rest replays", round);
	}
	size_t n = 0;
	struct event *all = whole_feed(&n);
	cr_assert_eq(n, 10, "one call.ringing per key");
	free_feed(all, n);
}

/* ---- the same due calls on both instances ---- */

struct due_race {
	_Atomic size_t fired;
};

static void fire(int instance, int k, void *arg)
{
	struct due_race *dr = arg;
	(void)k;
	for (int pass = 0; pass < 3; pass++) {
		struct timer_pass tp;
		cr_assert_eq(calls_fire_due(&instances[instance], NULL, NULL, &tp), ERR_OK);
		cr_assert_eq(tp.failed, 0);
		atomic_fetch_add(&dr->fired, tp.fired);
	}
}

Test(instances, each_due_call_fires_once)
{
	enum { CALLS = 40 };
	char *ids[CALLS];
	for (int i = 0; i < CALLS; i++) {
		struct call_create_req req = request("due", 1);
		req.ring_timeout_s = 5;
		ids[i] = create(i % 2, &req);
	}
	atomic_store(&fake_now, T0 + 5000);
	struct due_race dr = {0};
	run_race(2, fire, &dr);
	cr_assert_eq(atomic_load(&dr.fired), CALLS, "every call fired, once");
	size_t n = 0;
	struct event *all = whole_feed(&n);
	for (int i = 0; i < CALLS; i++) {
		cr_assert_eq(check_versions(all, n, ids[i], "call.ended"), 1, "call %d ended once", i);
		struct call *c = NULL;
		cr_assert_eq(storage_call_get(stores[1], ids[i], &c), ERR_OK);
		cr_assert_eq(c->outcome, OUTCOME_MISSED);
		call_free(c);
		free(ids[i]);
	}
	free_feed(all, n);
}

/* ---- one user's presence, moved by a webhook on one instance and a PUT on the other ---- */

struct presence_race {
	char call_id[ID_LEN + 1];
	const char *user;
};

static struct webhook_event session_event(const char *call_id, const char *user, int n,
					  bool joined)
{
	struct webhook_event we = {
		.kind = joined ? WEBHOOK_PARTICIPANT_JOINED : WEBHOOK_PARTICIPANT_LEFT,
		.created_at = T0 / 1000 + n,
	};
	snprintf(we.name, sizeof we.name, joined ? "participant_joined" : "participant_left");
	snprintf(we.id, sizeof we.id, "EV_%s_%d", joined ? "in" : "out", n);
	snprintf(we.room.name, sizeof we.room.name, "call_%s", call_id);
	snprintf(we.room.sid, sizeof we.room.sid, "RM_race");
	snprintf(we.participant.sid, sizeof we.participant.sid, "PA_%d", n);
	snprintf(we.participant.identity, sizeof we.participant.identity, "%s", user);
	we.participant.joined_at = T0 / 1000 + n;
	we.participant.joined_at_ms = T0 + (int64_t)n * 1000;
	return we;
}

static void move_presence(int instance, int k, void *arg)
{
	struct presence_race *pr = arg;
	(void)k;
	for (int n = 1; n <= 20; n++) {
		if (instance == 0) {
			/* A session in the call's room opens and closes: in_call, then back. */
			for (int joined = 1; joined >= 0; joined--) {
				struct webhook_event we = session_event(pr->call_id, pr->user, n, joined);
				bool dup = false;
				cr_assert_eq(calls_apply_webhook(&instances[0], &we, "{}", 2, &dup),
					     ERR_OK);
			}
		} else {
			struct presence p;
			cr_assert_eq(presence_set(&instances[1], NULL, pr->user,
						  n % 2 ? PRESENCE_AWAY : PRESENCE_ONLINE, &p),
				     ERR_OK);
		}
	}
}

/* presence.changed is only appended when what others see changed, from the state just
 * before: with the user's changes serialised, no two consecutive events of the user are
 * equal, and the last is what a read says now. */
Test(instances, presence_changes_of_one_user_are_serialised)
{
	struct call_create_req req = request("pres", 1);
	char *call_id = create(0, &req);
	struct presence_race pr = {.user = "pres"};
	memcpy(pr.call_id, call_id, ID_LEN + 1);
	run_race(1, move_presence, &pr);

	size_t n = 0;
	struct event *all = whole_feed(&n);
	char last[512] = "";
	size_t changes = 0;
	for (size_t i = 0; i < n; i++) {
		if (strcmp(all[i].type, "presence.changed") != 0 || !strstr(all[i].data, "\"pres\""))
			continue;
		/* status and call_id, the part that must change from one event to the next */
		char now[512];
		const char *since = strstr(all[i].data, ",\"since\"");
		cr_assert_not_null(since);
		snprintf(now, sizeof now, "%.*s", (int)(since - all[i].data), all[i].data);
		cr_assert_str_neq(now, last, "event %zu repeats the presence before it", i);
		memcpy(last, now, sizeof last);
		changes++;
	}
	cr_assert_geq(changes, 20, "the PUTs and the sessions moved presence");
	struct presence p;
	cr_assert_eq(presence_get(&instances[1], "pres", &p), ERR_OK);
	char *text = presence_to_json_text(&p);
	cr_assert(strncmp(text, last, strlen(last)) == 0, "the last event is the presence now: %s "
							  "vs %s", text, last);
	free(text);
	free_feed(all, n);
	free(call_id);
}

/* ---- accept, decline, leave and end of one call at once, from both instances ---- */

struct action_race {
	char call_id[ID_LEN + 1];
};

static void act(int instance, int k, void *arg)
{
	struct action_race *ar = arg;
	const struct calls *cs = &instances[instance];
	char user[64];
	const char *msg = NULL;
	struct call *c = NULL;
	struct call_grant g = {0};
	snprintf(user, sizeof user, "act-callee%d", k % 6 + 1);
	switch (k % 4) {
	case 0: calls_accept(cs, NULL, ar->call_id, user, NULL, &g, &msg); break;
	case 1: calls_decline(cs, NULL, ar->call_id, user, &c, &msg); break;
	case 2: calls_leave(cs, NULL, ar->call_id, k < 8 ? "act" : user, &c, &msg); break;
	default: calls_end(cs, NULL, ar->call_id, k == 11 ? NULL : user, &c, &msg); break;
	}
	call_grant_finish(&g);
	call_free(c);
}

Test(instances, concurrent_actions_on_one_call_keep_its_versions)
{
	for (int round = 0; round < 5; round++) {
		struct call_create_req req = request("act", 6);
		char *call_id = create(round % 2, &req);
		struct action_race ar;
		memcpy(ar.call_id, call_id, ID_LEN + 1);
		run_race(6, act, &ar);
		size_t n = 0;
		struct event *all = whole_feed(&n);
		check_versions(all, n, call_id, NULL);
		struct call *c = NULL;
		cr_assert_eq(storage_call_get(stores[0], call_id, &c), ERR_OK);
		size_t ended = check_versions(all, n, call_id, "call.ended");
		cr_assert_eq(ended, c->status == CALL_ENDED ? 1 : 0, "ended once, if at all");
		int64_t last = 0;
		for (size_t i = 0; i < n; i++)
			if (strcmp(all[i].call_id, call_id) == 0)
				last = all[i].call_version;
		cr_assert_eq(c->version, last, "the stored call is at its last event's version");
		call_free(c);
		free_feed(all, n);
		free(call_id);
	}
}

/* ---- a feed reader paging while both instances commit ---- */

struct feed_race {
	_Atomic int writers_done;
	char (*seen)[ID_LEN + 1];
	int64_t *seen_seq;
	size_t n_seen, cap;
};

static void write_many(int instance, int k, void *arg)
{
	struct feed_race *fr = arg;
	char caller[32];
	for (int i = 0; i < 60; i++) {
		snprintf(caller, sizeof caller, "feed%d-%d", k, i);
		struct call_create_req req = request(caller, 1);
		free(create(instance, &req));
		struct presence p;
		cr_assert_eq(presence_set(&instances[instance], NULL, caller, PRESENCE_ONLINE, &p), ERR_OK);
	}
	atomic_fetch_add(&fr->writers_done, 1);
}

static void *read_feed(void *arg)
{
	struct feed_race *fr = arg;
	int64_t after = 0;
	for (;;) {
		bool done = atomic_load(&fr->writers_done) == 4;
		struct event_page page = {0};
		cr_assert_eq(storage_events_after(stores[1], after, 7, &page), ERR_OK);
		for (size_t i = 0; i < page.n; i++) {
			cr_assert_lt(fr->n_seen, fr->cap);
			memcpy(fr->seen[fr->n_seen], page.events[i].id, ID_LEN + 1);
			fr->seen_seq[fr->n_seen++] = page.events[i].seq;
			after = page.events[i].seq;
		}
		size_t got = page.n;
		event_page_finish(&page);
		if (done && got == 0)
			return NULL; /* the writers had finished before this empty page began */
	}
}

Test(instances, a_reader_paging_during_commits_sees_every_event_once_in_order)
{
	struct feed_race fr = {.cap = 1000};
	fr.seen = calloc(fr.cap, sizeof *fr.seen);
	fr.seen_seq = calloc(fr.cap, sizeof *fr.seen_seq);
	pthread_t reader;
	cr_assert_eq(pthread_create(&reader, NULL, read_feed, &fr), 0);
	run_race(2, write_many, &fr);
	pthread_join(reader, NULL);

	size_t n = 0;
	struct event *all = whole_feed(&n);
	cr_assert_eq(n, 4 * 60 * 2, "a call.ringing and a presence.changed per write");
	cr_assert_eq(fr.n_seen, n, "the reader saw %zu of %zu events", fr.n_seen, n);
	for (size_t i = 0; i < n; i++) {
		cr_assert_str_eq(fr.seen[i], all[i].id, "event %zu", i);
		cr_assert_eq(fr.seen_seq[i], all[i].seq);
	}
	free_feed(all, n);
	free(fr.seen);
	free(fr.seen_seq);
}

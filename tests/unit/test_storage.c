/* The storage contract, written against struct storage only so that it runs on every backend
 * (rawdb.h picks it from the environment): each test gets an empty database of its own. Tests
 * also keep to their own ids, users and created_at window. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <pthread.h>
#include <semaphore.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "rawdb.h"
#include "storage.h"

#define WINDOW 100000 /* width of a test's created_at window; see test_start() */

static struct storage *st;
static char dir[256];
static char url[512];
static unsigned tag;  /* in every id, user and chat of this test */
static int64_t base;  /* this test's created_at window is [base, base + WINDOW) */

/* ---- fixture ---- */

static int64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static bool is_sqlite(void)
{
	return strncmp(url, "sqlite:", 7) == 0;
}

static void open_storage(void)
{
	cr_assert_eq(storage_open(url, NULL, &st), ERR_OK, "storage_open(%s)", url);
}

static void setup(void)
{
	int64_t us = now_us();
	tag = (unsigned)us ^ ((unsigned)getpid() << 20);
	/* A test takes well over a millisecond, so windows 100x the microsecond clock never meet
	 * (and stay far above the realistic times some tests use). */
	base = us * 100;
	const char *tmp = getenv("TMPDIR");
	snprintf(dir, sizeof dir, "%s/callstate-storage-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	cr_assert(mkdtemp(dir), "mkdtemp");
	rawdb_fresh(dir, "callstate_test_storage", url, sizeof url);
	open_storage();
	int applied = -1;
	cr_assert_eq(storage_migrate(st, &applied), ERR_OK);
}

static void teardown(void)
{
	storage_close(st);
	st = NULL;
	DIR *d = opendir(dir);
	struct dirent *ent;
	while (d && (ent = readdir(d))) {
		char path[512];
		if (strcmp(ent->d_name, ".") == 0 || strcmp(ent->d_name, "..") == 0)
			continue;
		snprintf(path, sizeof path, "%s/%s", dir, ent->d_name);
		unlink(path);
	}
	if (d)
		closedir(d);
	rmdir(dir);
}

TestSuite(storage, .init = setup, .fini = teardown);

/* ---- data ---- */

static void make_id(char out[ID_LEN + 1], unsigned n)
{
	snprintf(out, ID_LEN + 1, "%08x-0000-7000-8000-%012x", tag, n);
}

static void make_name(char *out, size_t cap, const char *who)
{
	snprintf(out, cap, "%s-%08x", who, tag);
}

static struct member *add_member(struct call *c, const char *who, enum member_role role)
{
	cr_assert_lt(c->n_members, CALL_MAX_MEMBERS);
	struct member *m = &c->members[c->n_members++];
	*m = (struct member){.role = role, .invite = INVITE_PENDING};
	make_name(m->user, sizeof m->user, who);
	return m;
}

/* A ringing audio call of the caller `who`, with only the fields every call has. */
static struct call *new_call(unsigned n, int64_t created_at, const char *who)
{
	struct call *c = call_new();
	cr_assert(c);
	make_id(c->id, n);
	snprintf(c->room, sizeof c->room, "call_%s", c->id);
	c->kind = CALL_AUDIO;
	c->status = CALL_RINGING;
	c->outcome = OUTCOME_NONE;
	c->end_cause = CAUSE_NONE;
	make_name(c->caller, sizeof c->caller, who);
	c->created_at = created_at;
	c->ring_timeout_s = 30;
	c->version = 1;
	struct member *m = add_member(c, who, MEMBER_CALLER);
	m->invite = INVITE_ACCEPTED;
	return c;
}

static void add_session(struct call *c, const char *sid, const char *who, int64_t joined,
			int64_t left, const char *reason, bool aborted)
{
	struct participant p = {.joined_at = joined, .left_at = left, .aborted = aborted};
	snprintf(p.sid, sizeof p.sid, "%s", sid);
	make_name(p.user, sizeof p.user, who);
	snprintf(p.disconnect_reason, sizeof p.disconnect_reason, "%s", reason);
	cr_assert(call_add_participant(c, &p));
}

/* Every field set, members in every state, sessions whose stored order differs from the
 * order they were added in (loaded by joined_at, a NULL joined_at last). */
static struct call *full_call(unsigned n)
{
	const int64_t t = 1767225600123;
	struct call *c = new_call(n, t, "alice");
	c->kind = CALL_VIDEO;
	c->status = CALL_ENDED;
	c->outcome = OUTCOME_COMPLETED;
	make_name(c->chat_id, sizeof c->chat_id, "chat");
	cr_assert(call_set_metadata(c, "{\"topic\":\"stand-up \xe2\x98\x95\",\"n\":[1,2,3]}"));
	c->answered_at = t + 4000;
	c->ended_at = t + 65000;
	c->end_cause = CAUSE_ROOM_FINISHED;
	snprintf(c->room_end_reason, sizeof c->room_end_reason, "ROOM_DELETED");
	c->room_finished_at = t + 64000;
	c->ring_timeout_s = 45;
	c->ring_deadline = t + 45000;
	c->join_deadline = t + 34000;
	c->next_deadline = t + 34000;
	c->version = 7;
	snprintf(c->members[0].name, sizeof c->members[0].name, "Alice \"A\" Liddell");
	c->members[0].left = true;
	c->members[0].token_minted_at = t;
	c->members[0].first_joined_at = t + 900;
	c->members[0].last_left_at = t + 60000;
	struct member *bob = add_member(c, "bob", MEMBER_CALLEE);
	*bob = (struct member){.role = MEMBER_CALLEE, .invite = INVITE_ACCEPTED, .in_room = true,
			       .responded_at = t + 3900, .token_minted_at = t + 3950,
			       .first_joined_at = t + 4000};
	make_name(bob->user, sizeof bob->user, "bob");
	snprintf(bob->name, sizeof bob->name, "Bob");
	add_member(c, "carol", MEMBER_CALLEE)->invite = INVITE_MISSED;
	add_member(c, "dave", MEMBER_CALLEE)->invite = INVITE_DECLINED;
	add_session(c, "PA_bob", "bob", t + 4000, 0, "", false);
	add_session(c, "PA_carol", "carol", 0, 0, "", true);
	add_session(c, "PA_alice", "alice", t + 900, t + 60000, "CLIENT_INITIATED", false);
	c->participants[0].left_inferred = true;
	c->participants[0].left_at = t + 64000;
	c->participants[2].screen_share_at = t + 1000;
	c->participants[2].screen_share_ended_at = t + 2000;
	/* The stored order: joined_at ascending, NULL last. */
	struct participant *p = c->participants;
	struct participant alice = p[2], bob_s = p[0], carol = p[1];
	p[0] = alice;
	p[1] = bob_s;
	p[2] = carol;
	return c;
}

static void assert_member_eq(const struct member *a, const struct member *b)
{
	cr_assert_str_eq(a->user, b->user);
	cr_assert_str_eq(a->name, b->name, "member %s", a->user);
	cr_assert_eq(a->role, b->role, "member %s", a->user);
	cr_assert_eq(a->invite, b->invite, "member %s", a->user);
	cr_assert_eq(a->in_room, b->in_room, "member %s", a->user);
	cr_assert_eq(a->left, b->left, "member %s", a->user);
	cr_assert_eq(a->responded_at, b->responded_at, "member %s", a->user);
	cr_assert_eq(a->token_minted_at, b->token_minted_at, "member %s", a->user);
	cr_assert_eq(a->first_joined_at, b->first_joined_at, "member %s", a->user);
	cr_assert_eq(a->last_left_at, b->last_left_at, "member %s", a->user);
}

static void assert_participant_eq(const struct participant *a, const struct participant *b)
{
	cr_assert_str_eq(a->sid, b->sid);
	cr_assert_str_eq(a->user, b->user, "session %s", a->sid);
	cr_assert_eq(a->joined_at, b->joined_at, "session %s", a->sid);
	cr_assert_eq(a->left_at, b->left_at, "session %s", a->sid);
	cr_assert_str_eq(a->disconnect_reason, b->disconnect_reason, "session %s", a->sid);
	cr_assert_eq(a->aborted, b->aborted, "session %s", a->sid);
	cr_assert_eq(a->left_inferred, b->left_inferred, "session %s", a->sid);
	cr_assert_eq(a->screen_share_at, b->screen_share_at, "session %s", a->sid);
	cr_assert_eq(a->screen_share_ended_at, b->screen_share_ended_at, "session %s", a->sid);
}

static void assert_call_eq(const struct call *a, const struct call *b)
{
	cr_assert_str_eq(a->id, b->id);
	cr_assert_str_eq(a->room, b->room);
	cr_assert_eq(a->kind, b->kind);
	cr_assert_eq(a->status, b->status);
	cr_assert_eq(a->outcome, b->outcome);
	cr_assert_str_eq(a->caller, b->caller);
	cr_assert_str_eq(a->chat_id, b->chat_id);
	cr_assert_str_eq(a->metadata, b->metadata);
	cr_assert_eq(a->created_at, b->created_at);
	cr_assert_eq(a->answered_at, b->answered_at);
	cr_assert_eq(a->ended_at, b->ended_at);
	cr_assert_eq(a->end_cause, b->end_cause);
	cr_assert_str_eq(a->room_end_reason, b->room_end_reason);
	cr_assert_eq(a->room_finished_at, b->room_finished_at);
	cr_assert_eq(a->ring_timeout_s, b->ring_timeout_s);
	cr_assert_eq(a->ring_deadline, b->ring_deadline);
	cr_assert_eq(a->join_deadline, b->join_deadline);
	cr_assert_eq(a->next_deadline, b->next_deadline);
	cr_assert_eq(a->version, b->version);
	cr_assert_eq(a->n_members, b->n_members);
	for (size_t i = 0; i < a->n_members; i++)
		assert_member_eq(&a->members[i], &b->members[i]);
	cr_assert_eq(a->n_participants, b->n_participants);
	for (size_t i = 0; i < a->n_participants; i++)
		assert_participant_eq(&a->participants[i], &b->participants[i]);
}

static void make_event(struct event *ev, unsigned n, const char *type, const char *call_id,
		       int64_t version, const char *data)
{
	*ev = (struct event){.at = 1767225600000 + n, .call_version = version};
	make_id(ev->id, n);
	snprintf(ev->type, sizeof ev->type, "%s", type);
	snprintf(ev->call_id, sizeof ev->call_id, "%s", call_id);
	ev->data = strdup(data);
	cr_assert(ev->data);
}

/* The view stored with a call: the domain writes the API JSON; here any text that names the
 * call and its state shows that the view travels with the row. */
static const char *view_of(const struct call *c, char *buf, size_t cap)
{
	snprintf(buf, cap, "{\"id\":\"%s\",\"version\":%lld,\"members\":%zu}", c->id,
		 (long long)c->version, c->n_members);
	return buf;
}

/* ---- transaction functions ---- */

static enum err tx_insert(struct storage_tx *tx, void *arg)
{
	char view[128];
	return storage_tx_call_insert(tx, arg, view_of(arg, view, sizeof view));
}

static enum err tx_update(struct storage_tx *tx, void *arg)
{
	char view[128];
	return storage_tx_call_update(tx, arg, NULL, view_of(arg, view, sizeof view));
}

static enum err tx_append(struct storage_tx *tx, void *arg)
{
	return storage_tx_event_append(tx, arg);
}

static void insert(const struct call *c)
{
	cr_assert_eq(storage_transact(st, tx_insert, (void *)c), ERR_OK, "insert %s", c->id);
}

static struct call *get(const char *id)
{
	struct call *c = NULL;
	cr_assert_eq(storage_call_get(st, id, &c), ERR_OK, "get %s", id);
	return c;
}

/* The seq the feed gave the event of this id (storage.h rule 4: not known at append). */
static int64_t seq_of(const char *id)
{
	int64_t after = 0;
	for (;;) {
		struct event_page page = {0};
		cr_assert_eq(storage_events_after(st, after, 500, &page), ERR_OK);
		for (size_t i = 0; i < page.n; i++) {
			if (strcmp(page.events[i].id, id) == 0) {
				int64_t seq = page.events[i].seq;
				event_page_finish(&page);
				return seq;
			}
			after = page.events[i].seq;
		}
		size_t n = page.n;
		event_page_finish(&page);
		cr_assert_eq(n, 500, "event %s is not in the feed", id);
	}
}

/* Appends ev in a transaction of its own; returns, and sets, the seq it got. */
static int64_t append(struct event *ev)
{
	cr_assert_eq(storage_transact(st, tx_append, ev), ERR_OK, "append %s", ev->id);
	ev->seq = seq_of(ev->id);
	return ev->seq;
}

/* ---- schema and connection ---- */

Test(storage, open_rejects_unknown_scheme)
{
	struct storage *other = NULL;
	cr_assert_eq(storage_open("mysql://localhost/db", NULL, &other), ERR_INVALID);
	cr_assert_eq(storage_open("", NULL, &other), ERR_INVALID);
	cr_assert_eq(storage_open("sqlite:", NULL, &other), ERR_INVALID);
	cr_assert_null(other);
}

Test(storage, ping_and_backend_name)
{
	cr_assert_eq(storage_ping(st), ERR_OK);
	const char *name = storage_backend_name(st);
	cr_assert(name && *name);
	if (is_sqlite())
		cr_assert_str_eq(name, "sqlite");
}

Test(storage, migrate_is_idempotent)
{
	int v1 = -1, v2 = -1, applied = -1;
	cr_assert_eq(storage_schema_version(st, &v1), ERR_OK);
	cr_assert_geq(v1, 1);
	cr_assert_eq(storage_migrate(st, &applied), ERR_OK);
	cr_assert_eq(applied, 0);
	cr_assert_eq(storage_schema_version(st, &v2), ERR_OK);
	cr_assert_eq(v2, v1);
}

Test(storage, migrate_applies_to_an_empty_database)
{
	struct storage *empty = NULL;
	char empty_url[600];
	int v0 = -1, v1 = -1, v2 = -1, applied = -1, again = -1;
	rawdb_fresh(dir, "callstate_test_storage_empty", empty_url, sizeof empty_url);
	cr_assert_eq(storage_open(empty_url, NULL, &empty), ERR_OK);
	cr_assert_eq(storage_schema_version(empty, &v0), ERR_OK);
	cr_assert_eq(v0, 0);
	cr_assert_eq(storage_migrate(empty, &applied), ERR_OK);
	cr_assert_geq(applied, 1);
	cr_assert_eq(storage_schema_version(empty, &v1), ERR_OK);
	cr_assert_geq(v1, applied);
	cr_assert_eq(storage_migrate(empty, &again), ERR_OK);
	cr_assert_eq(again, 0);
	cr_assert_eq(storage_schema_version(empty, &v2), ERR_OK);
	cr_assert_eq(v2, v1);
	storage_close(empty);
}

/* ---- calls ---- */

Test(storage, call_round_trip_every_field)
{
	struct call *c = full_call(1);
	insert(c);
	struct call *got = get(c->id);
	assert_call_eq(got, c);
	call_free(got);
	call_free(c);
}

Test(storage, call_round_trip_unset_fields)
{
	struct call *c = new_call(1, 1767225600000, "alice");
	add_member(c, "bob", MEMBER_CALLEE);
	insert(c);
	struct call *got = get(c->id);
	assert_call_eq(got, c);
	cr_assert_str_eq(got->metadata, "{}");
	cr_assert_eq(got->n_participants, 0);
	call_free(got);
	call_free(c);
}

struct insert_then_read {
	const struct call *c;
	struct call *by_id;
};

static enum err tx_insert_then_read(struct storage_tx *tx, void *arg)
{
	struct insert_then_read *a = arg;
	char view[128];
	enum err e = storage_tx_call_insert(tx, a->c, view_of(a->c, view, sizeof view));
	if (e == ERR_OK)
		e = storage_tx_call_get(tx, a->c->id, &a->by_id);
	return e;
}

Test(storage, transaction_reads_its_own_writes)
{
	struct insert_then_read a = {.c = full_call(1)};
	cr_assert_eq(storage_transact(st, tx_insert_then_read, &a), ERR_OK);
	assert_call_eq(a.by_id, a.c);
	call_free(a.by_id);
	call_free((struct call *)a.c);
}

struct update_from {
	struct call *c;
	const struct call *loaded;
};

static enum err tx_update_from(struct storage_tx *tx, void *arg)
{
	struct update_from *u = arg;
	char view[128];
	return storage_tx_call_update(tx, u->c, u->loaded, view_of(u->c, view, sizeof view));
}

/* With the call as loaded, only what changed is written: the result reads back the same. */
Test(storage, call_update_from_loaded_writes_what_changed)
{
	struct call *c = full_call(1);
	insert(c);
	struct call *loaded = get(c->id);
	struct call *changed = call_clone(loaded);
	cr_assert_not_null(changed);
	changed->version = 5;
	changed->members[2].invite = INVITE_DECLINED;
	changed->members[2].responded_at = changed->created_at + 7;
	changed->participants[0].left_at = changed->participants[0].joined_at + 1000;
	add_session(changed, "PA_erin", "erin", changed->created_at + 5000, 0, "", false);
	/* Reads list sessions by joined_at, not yet joined last: erin goes before carol. */
	size_t n = changed->n_participants;
	struct participant erin = changed->participants[n - 1];
	changed->participants[n - 1] = changed->participants[n - 2];
	changed->participants[n - 2] = erin;
	struct update_from u = {.c = changed, .loaded = loaded};
	cr_assert_eq(storage_transact(st, tx_update_from, &u), ERR_OK);
	struct call *got = get(c->id);
	assert_call_eq(got, changed);
	call_free(got);
	call_free(changed);
	call_free(loaded);
	call_free(c);
}

Test(storage, call_update_rewrites_call_members_and_sessions)
{
	struct call *c = full_call(1);
	c->status = CALL_ACTIVE;
	c->outcome = OUTCOME_NONE;
	c->ended_at = 0;
	c->end_cause = CAUSE_NONE;
	c->room_end_reason[0] = 0;
	insert(c);

	c->status = CALL_ENDED;
	c->outcome = OUTCOME_FAILED;
	c->ended_at = c->created_at + 99000;
	c->end_cause = CAUSE_JOIN_TIMEOUT;
	snprintf(c->room_end_reason, sizeof c->room_end_reason, "DUPLICATE_IDENTITY");
	c->chat_id[0] = 0;
	c->next_deadline = 0;
	c->join_deadline = 0;
	c->version = 9;
	cr_assert(call_set_metadata(c, "{\"a\":1}"));
	c->members[1].in_room = false;
	c->members[1].last_left_at = c->created_at + 98000;
	c->members[1].name[0] = 0;
	c->members[2].invite = INVITE_CANCELLED;
	c->members[2].responded_at = c->created_at + 5;
	c->participants[1].left_at = c->created_at + 98000;
	c->participants[1].left_inferred = true;
	c->participants[1].screen_share_at = c->created_at + 97100;
	c->room_finished_at = c->created_at + 98000;
	snprintf(c->participants[1].disconnect_reason, sizeof c->participants[1].disconnect_reason,
		 "SERVER_SHUTDOWN");
	add_session(c, "PA_dave", "dave", c->created_at + 97000, c->created_at + 97500, "", true);
	/* PA_carol has no joined_at and stays last. */
	struct participant carol = c->participants[2];
	c->participants[2] = c->participants[3];
	c->participants[3] = carol;
	cr_assert_eq(storage_transact(st, tx_update, c), ERR_OK);

	struct call *got = get(c->id);
	assert_call_eq(got, c);
	call_free(got);
	call_free(c);
}

static void assert_view(const struct call *c)
{
	struct call_view v = {0};
	char want[128];
	cr_assert_eq(storage_call_view(st, c->id, &v), ERR_OK);
	cr_assert_str_eq(v.id, c->id);
	cr_assert_eq(v.created_at, c->created_at);
	cr_assert_eq(v.next_deadline, c->next_deadline);
	cr_assert_str_eq(v.json, view_of(c, want, sizeof want));
	call_view_finish(&v);
	cr_assert_null(v.json);
}

static enum err tx_insert_without_view(struct storage_tx *tx, void *arg)
{
	return storage_tx_call_insert(tx, arg, NULL);
}

Test(storage, call_view_follows_every_write)
{
	struct call *c = full_call(1);
	cr_assert_eq(storage_transact(st, tx_insert_without_view, c), ERR_INVALID);
	insert(c);
	assert_view(c);
	c->version = 8;
	c->next_deadline = 0;
	cr_assert_eq(storage_transact(st, tx_update, c), ERR_OK);
	assert_view(c);
	struct call_view none = {0};
	make_id(c->id, 2);
	cr_assert_eq(storage_call_view(st, c->id, &none), ERR_NOT_FOUND);
	cr_assert_null(none.json);
	call_free(c);
}

Test(storage, duplicate_id_is_a_conflict)
{
	struct call *c = full_call(1);
	insert(c);
	struct call *same_id = new_call(1, 1767225600000, "erin");
	snprintf(same_id->room, sizeof same_id->room, "call_other");
	cr_assert_eq(storage_transact(st, tx_insert, same_id), ERR_CONFLICT);
	/* It left nothing behind, and the original is intact. */
	struct call *got = get(c->id);
	assert_call_eq(got, c);
	call_free(got);
	call_free(same_id);
	call_free(c);
}

static enum err tx_get_unknown(struct storage_tx *tx, void *arg)
{
	enum err *errs = arg;
	struct call *c = NULL;
	errs[0] = storage_tx_call_get(tx, "00000000-0000-7000-8000-000000000000", &c);
	errs[1] = storage_tx_call_get_due(tx, "00000000-0000-7000-8000-000000000000",
					  INT64_MAX, &c);
	return ERR_OK;
}

Test(storage, unknown_is_not_found)
{
	struct call *c = NULL;
	cr_assert_eq(storage_call_get(st, "00000000-0000-7000-8000-000000000000", &c),
		     ERR_NOT_FOUND);
	cr_assert_null(c);
	enum err errs[2];
	cr_assert_eq(storage_transact(st, tx_get_unknown, errs), ERR_OK);
	for (size_t i = 0; i < 2; i++)
		cr_assert_eq(errs[i], ERR_NOT_FOUND, "lookup %zu", i);
	struct call *ghost = new_call(1, 1767225600000, "alice");
	cr_assert_eq(storage_transact(st, tx_update, ghost), ERR_NOT_FOUND);
	cr_assert_eq(storage_call_get(st, ghost->id, &c), ERR_NOT_FOUND);
	call_free(ghost);
}

/* ---- transactions ---- */

struct job {
	struct call *c;
	struct event ev;
	enum err fail_with; /* returned after both writes succeeded */
};

static enum err tx_job(struct storage_tx *tx, void *arg)
{
	struct job *j = arg;
	char view[128];
	enum err e = storage_tx_event_append(tx, &j->ev);
	if (e == ERR_OK)
		e = storage_tx_call_insert(tx, j->c, view_of(j->c, view, sizeof view));
	return e == ERR_OK ? j->fail_with : e;
}

Test(storage, failing_function_rolls_back_only_itself)
{
	struct job j = {.c = new_call(1, 1767225600000, "alice"), .fail_with = ERR_FORBIDDEN};
	make_event(&j.ev, 101, "call.ringing", j.c->id, 1, "{}");
	cr_assert_eq(storage_transact(st, tx_job, &j), ERR_FORBIDDEN);
	struct call *c = NULL;
	cr_assert_eq(storage_call_get(st, j.c->id, &c), ERR_NOT_FOUND);
	/* The same writes succeed afterwards: nothing of the failed attempt remains. */
	j.fail_with = ERR_OK;
	cr_assert_eq(storage_transact(st, tx_job, &j), ERR_OK);
	c = get(j.c->id);
	call_free(c);
	event_finish(&j.ev);
	call_free(j.c);
}

#define THREADS 16
#define PER_THREAD 24
#define JOBS (THREADS * PER_THREAD)
#define SEED_N 0xfffff

enum job_kind { JOB_OK, JOB_FAILS, JOB_DUPLICATE };

static enum job_kind job_kind(unsigned k)
{
	return k % 3 == 0 ? JOB_FAILS : k % 6 == 2 ? JOB_DUPLICATE : JOB_OK;
}

struct worker {
	unsigned first;
	pthread_barrier_t *start;
	enum err result[PER_THREAD];
	enum err read_back[PER_THREAD]; /* storage_call_get right after a successful commit */
};

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	pthread_barrier_wait(w->start);
	for (unsigned i = 0; i < PER_THREAD; i++) {
		unsigned k = w->first + i;
		struct job j = {.c = new_call(k, 1767225600000 + k, "alice")};
		if (job_kind(k) == JOB_FAILS)
			j.fail_with = ERR_FORBIDDEN;
		if (job_kind(k) == JOB_DUPLICATE)
			make_id(j.c->id, SEED_N); /* its room is new: the id alone conflicts */
		make_event(&j.ev, 0x100000 + k, "call.ringing", j.c->id, 1, "{\"k\":1}");
		w->result[i] = storage_transact(st, tx_job, &j);
		w->read_back[i] = ERR_OK;
		if (w->result[i] == ERR_OK) {
			struct call *c = NULL;
			w->read_back[i] = storage_call_get(st, j.c->id, &c);
			call_free(c);
		}
		event_finish(&j.ev);
		call_free(j.c);
	}
	return NULL;
}

/* Many callers at once land in shared batches: each failure undoes only its own writes, and
 * every success is durable and readable as soon as storage_transact() returns. */
Test(storage, concurrent_transactions_commit_or_roll_back_alone, .timeout = 60)
{
	struct call *seed = new_call(SEED_N, 1767225600000, "alice");
	snprintf(seed->room, sizeof seed->room, "call_seed_%08x", tag);
	insert(seed);
	struct event mark;
	make_event(&mark, 0x100000 + SEED_N, "mark", "", 0, "{}");
	int64_t from = append(&mark);

	pthread_barrier_t start;
	pthread_t threads[THREADS];
	static struct worker workers[THREADS];
	cr_assert_eq(pthread_barrier_init(&start, NULL, THREADS), 0);
	for (unsigned t = 0; t < THREADS; t++) {
		workers[t] = (struct worker){.first = t * PER_THREAD, .start = &start};
		cr_assert_eq(pthread_create(&threads[t], NULL, worker_main, &workers[t]), 0);
	}
	for (unsigned t = 0; t < THREADS; t++)
		pthread_join(threads[t], NULL);
	pthread_barrier_destroy(&start);

	static bool committed[JOBS];
	for (unsigned k = 0; k < JOBS; k++) {
		const struct worker *w = &workers[k / PER_THREAD];
		enum err want = job_kind(k) == JOB_FAILS       ? ERR_FORBIDDEN
				: job_kind(k) == JOB_DUPLICATE ? ERR_CONFLICT
							       : ERR_OK;
		cr_assert_eq(w->result[k % PER_THREAD], want, "job %u", k);
		cr_assert_eq(w->read_back[k % PER_THREAD], ERR_OK, "job %u read back", k);
		committed[k] = want == ERR_OK;
		char id[ID_LEN + 1];
		struct call *c = NULL;
		make_id(id, k);
		cr_assert_eq(storage_call_get(st, id, &c), want == ERR_OK ? ERR_OK : ERR_NOT_FOUND,
			     "job %u", k);
		call_free(c);
	}

	/* Exactly the committed jobs' events follow the mark, seq strictly increasing. */
	struct event_page page = {0};
	cr_assert_eq(storage_events_after(st, from, JOBS + 1, &page), ERR_OK);
	size_t n_committed = 0;
	for (unsigned k = 0; k < JOBS; k++)
		n_committed += committed[k];
	cr_assert_eq(page.n, n_committed);
	for (size_t i = 0; i < page.n; i++) {
		unsigned k = (unsigned)strtoul(page.events[i].id + 24, NULL, 16) - 0x100000;
		cr_assert_lt(k, JOBS);
		cr_assert(committed[k], "event of job %u", k);
		committed[k] = false; /* each at most once */
		cr_assert_gt(page.events[i].seq, i ? page.events[i - 1].seq : from);
	}
	event_page_finish(&page);
	event_finish(&mark);
	call_free(seed);
}

/* ---- events ---- */

Test(storage, events_get_increasing_seq_and_page)
{
	struct event evs[5];
	make_event(&evs[0], 1, "call.ringing", "", 1, "{\"a\":1}");
	make_id(evs[0].call_id, 77);
	make_event(&evs[1], 2, "presence.changed", "", 0, "{\"user\":\"x\"}");
	make_event(&evs[2], 3, "call.accepted", evs[0].call_id, 2, "{}");
	make_event(&evs[3], 4, "call.active", evs[0].call_id, 3, "{\"b\":[true,null]}");
	make_event(&evs[4], 5, "call.ended", evs[0].call_id, 4, "{}");
	int64_t before = 0;
	for (size_t i = 0; i < 5; i++) {
		int64_t seq = append(&evs[i]);
		cr_assert_gt(seq, before);
		before = seq;
	}

	int64_t after = evs[0].seq - 1;
	size_t seen = 0;
	for (int pages = 0; pages < 3; pages++) {
		struct event_page page = {0};
		cr_assert_eq(storage_events_after(st, after, 2, &page), ERR_OK);
		cr_assert_eq(page.n, pages < 2 ? 2 : 1);
		for (size_t i = 0; i < page.n; i++, seen++) {
			const struct event *got = &page.events[i], *want = &evs[seen];
			cr_assert_eq(got->seq, want->seq);
			cr_assert_str_eq(got->id, want->id);
			cr_assert_str_eq(got->type, want->type);
			cr_assert_eq(got->at, want->at);
			cr_assert_str_eq(got->call_id, want->call_id);
			cr_assert_eq(got->call_version, want->call_version);
			cr_assert_str_eq(got->data, want->data);
			after = got->seq;
		}
		event_page_finish(&page);
	}
	struct event_page end = {0};
	cr_assert_eq(storage_events_after(st, after, 2, &end), ERR_OK);
	cr_assert_eq(end.n, 0);
	event_page_finish(&end);
	cr_assert_eq(storage_events_after(st, after, 0, &end), ERR_INVALID);
	for (size_t i = 0; i < 5; i++)
		event_finish(&evs[i]);
}

Test(storage, page_finish_accepts_zeroed_pages)
{
	struct view_page vp = {0};
	struct event_page ep = {0};
	view_page_finish(&vp);
	event_page_finish(&ep);
	cr_assert_null(vp.views);
	cr_assert_null(ep.events);
}

/* ---- idempotency ---- */

struct idem_op {
	const char *caller, *key;
	struct idempotency rec;  /* the claim */
	int64_t live_after;
	struct idempotency live; /* the live record, on ERR_CONFLICT */
	enum err result;
};

static enum err tx_idem(struct storage_tx *tx, void *arg)
{
	struct idem_op *op = arg;
	op->result = storage_tx_idempotency_claim(tx, op->caller, op->key, &op->rec,
						  op->live_after, &op->live);
	return op->result == ERR_CONFLICT ? ERR_OK : op->result;
}

/* Claims (caller, key) for rec; ERR_CONFLICT fills *ret_live. */
static enum err idem_claim(const char *caller, const char *key, const struct idempotency *rec,
			   int64_t live_after, struct idempotency *ret_live)
{
	struct idem_op op = {.caller = caller, .key = key, .rec = *rec, .live_after = live_after};
	cr_assert_eq(storage_transact(st, tx_idem, &op), ERR_OK);
	if (op.result == ERR_CONFLICT && ret_live)
		*ret_live = op.live;
	return op.result;
}

Test(storage, idempotency_claim_live_and_expired)
{
	char alice[64], bob[64];
	make_name(alice, sizeof alice, "alice");
	make_name(bob, sizeof bob, "bob");
	struct idempotency got, first = {.created_at = 1767225600000},
				second = {.created_at = 1767225600000 + 86400000};
	make_id(first.call_id, 1);
	make_id(second.call_id, 2);
	for (size_t i = 0; i < sizeof first.request_hash; i++) {
		first.request_hash[i] = (unsigned char)i;
		second.request_hash[i] = (unsigned char)(0xff - i); /* includes a 0 byte */
	}

	cr_assert_eq(idem_claim(alice, "k1", &first, 0, NULL), ERR_OK, "a new key is claimed");
	cr_assert_eq(idem_claim(alice, "k1", &second, first.created_at, &got), ERR_CONFLICT,
		     "a record created at live_after is live");
	cr_assert_str_eq(got.call_id, first.call_id);
	cr_assert_arr_eq(got.request_hash, first.request_hash, sizeof got.request_hash);
	cr_assert_eq(got.created_at, first.created_at);
	cr_assert_eq(idem_claim(bob, "k1", &second, 0, NULL), ERR_OK, "keys are per caller");

	/* Expired (created before live_after): the new claim replaces it. */
	cr_assert_eq(idem_claim(alice, "k1", &second, first.created_at + 1, NULL), ERR_OK);
	cr_assert_eq(idem_claim(alice, "k1", &first, 0, &got), ERR_CONFLICT);
	cr_assert_str_eq(got.call_id, second.call_id);
	cr_assert_arr_eq(got.request_hash, second.request_hash, sizeof got.request_hash);
	cr_assert_eq(got.created_at, second.created_at);
}

/* ---- webhooks ---- */

struct webhook_op {
	struct webhook_record rec;
	struct event ev; /* appended after the insert, whatever it returned */
	enum err insert_result;
};

/* Like the domain: a duplicate delivery is an answer, and the transaction goes on. */
static enum err tx_webhook(struct storage_tx *tx, void *arg)
{
	struct webhook_op *op = arg;
	op->insert_result = storage_tx_webhook_insert(tx, &op->rec);
	return storage_tx_event_append(tx, &op->ev);
}

Test(storage, webhook_redelivery_is_a_conflict_the_transaction_survives)
{
	static const char body[] = "{\"event\":\"room_finished\",\"x\":\"\\u0000\"}";
	char id[ID_LEN + 1];
	make_id(id, 1);
	struct webhook_op op = {.rec = {.id = id, .event = "room_finished", .room = "call_x",
					.call_id = "", .created_at = 1767225600000,
					.received_at = 1767225600100, .body = body,
					.body_len = sizeof body - 1}};
	make_event(&op.ev, 2, "call.ended", "", 0, "{}");
	cr_assert_eq(storage_transact(st, tx_webhook, &op), ERR_OK);
	cr_assert_eq(op.insert_result, ERR_OK);

	struct event again;
	make_event(&again, 3, "call.ended", "", 0, "{}");
	event_finish(&op.ev);
	op.ev = again;
	cr_assert_eq(storage_transact(st, tx_webhook, &op), ERR_OK);
	cr_assert_eq(op.insert_result, ERR_CONFLICT);
	struct event_page page = {0};
	cr_assert_eq(storage_events_after(st, seq_of(op.ev.id) - 1, 10, &page), ERR_OK);
	cr_assert_eq(page.n, 1);
	cr_assert_str_eq(page.events[0].id, op.ev.id);
	event_page_finish(&page);
	event_finish(&op.ev);
}

/* ---- presence ---- */

struct presence_op {
	const char *user;
	const char *except_call_id;
	int status; /* set when >= 0 */
	int64_t since;
	struct presence_record rec;
};

static enum err tx_presence(struct storage_tx *tx, void *arg)
{
	struct presence_op *op = arg;
	enum err e = ERR_OK;
	if (op->status >= 0)
		e = storage_tx_presence_set(tx, op->user, op->status, op->since);
	return e == ERR_OK ? storage_tx_presence_get(tx, op->user, op->except_call_id, &op->rec) : e;
}

static void assert_presence(const char *user, int status, int64_t since, const char *open_call,
			    int64_t open_since, int64_t last_left)
{
	struct presence_op op = {.user = user, .status = -1};
	struct presence_record rec;
	cr_assert_eq(storage_transact(st, tx_presence, &op), ERR_OK);
	cr_assert_eq(storage_presence_get(st, user, &rec), ERR_OK);
	const struct presence_record *both[] = {&op.rec, &rec};
	for (size_t i = 0; i < 2; i++) {
		cr_assert_eq(both[i]->status, status, "%s", i ? "read" : "in tx");
		cr_assert_eq(both[i]->status_since, since);
		cr_assert_str_eq(both[i]->open_call_id, open_call);
		cr_assert_eq(both[i]->open_since, open_since);
		cr_assert_eq(both[i]->last_left_at, last_left);
	}
}

Test(storage, presence_status_and_sessions)
{
	char user[64];
	make_name(user, sizeof user, "alice");
	assert_presence(user, -1, 0, "", 0, 0);

	struct presence_op set = {.user = user, .status = 1, .since = 100};
	cr_assert_eq(storage_transact(st, tx_presence, &set), ERR_OK);
	assert_presence(user, 1, 100, "", 0, 0);
	set.status = 2;
	set.since = 200;
	cr_assert_eq(storage_transact(st, tx_presence, &set), ERR_OK);
	assert_presence(user, 2, 200, "", 0, 0);

	/* Sessions: a closed one, two open ones in two calls, an aborted and a never-joined one;
	 * another user's open session does not count. */
	struct call *a = new_call(1, 1767225600000, "alice");
	struct call *b = new_call(2, 1767225600000, "alice");
	add_session(a, "PA_1", "alice", 1000, 2000, "CLIENT_INITIATED", false);
	add_session(a, "PA_2", "alice", 3000, 0, "", false);
	add_session(b, "PA_3", "alice", 4000, 0, "", false);
	add_session(b, "PA_4", "alice", 5000, 0, "", true);
	add_session(b, "PA_5", "alice", 0, 0, "", false);
	add_session(b, "PA_6", "bob", 6000, 0, "", false);
	insert(a);
	insert(b);
	assert_presence(user, 2, 200, b->id, 4000, 2000);

	b->participants[0].left_at = 7000; /* PA_3 */
	cr_assert_eq(storage_transact(st, tx_update, b), ERR_OK);
	assert_presence(user, 2, 200, a->id, 3000, 7000);
	/* Leaving a call out (the caller holds it in memory): its sessions do not count. */
	struct presence_op except = {.user = user, .status = -1, .except_call_id = a->id};
	cr_assert_eq(storage_transact(st, tx_presence, &except), ERR_OK);
	cr_assert_str_eq(except.rec.open_call_id, "");
	cr_assert_eq(except.rec.last_left_at, 7000);
	except.except_call_id = b->id;
	cr_assert_eq(storage_transact(st, tx_presence, &except), ERR_OK);
	cr_assert_str_eq(except.rec.open_call_id, a->id);
	cr_assert_eq(except.rec.open_newest, 3000);
	cr_assert_eq(except.rec.last_left_at, 2000);
	a->participants[1].left_at = 6500; /* PA_2 */
	cr_assert_eq(storage_transact(st, tx_update, a), ERR_OK);
	assert_presence(user, 2, 200, "", 0, 7000);
	call_free(a);
	call_free(b);
}

struct with_presence {
	const char *id, *user;
	struct call *c;
	struct presence_record rec;
};

static enum err tx_get_with_presence(struct storage_tx *tx, void *arg)
{
	struct with_presence *w = arg;
	call_free(w->c); /* fn may run again (storage.h rule 1) */
	w->c = NULL;
	return storage_tx_call_get_with_presence(tx, w->id, w->user, &w->c, &w->rec);
}

/* The call as storage_tx_call_get reads it, then the user's presence as
 * storage_tx_presence_get reads it with that call left out. */
Test(storage, call_get_with_presence_reads_the_call_then_the_presence_without_it)
{
	char user[64];
	make_name(user, sizeof user, "alice");
	struct call *a = new_call(1, 1767225600000, "alice");
	struct call *b = new_call(2, 1767225600000, "alice");
	add_session(a, "PA_1", "alice", 5000, 0, "", false);
	add_session(b, "PA_2", "alice", 4000, 0, "", false);
	add_session(b, "PA_3", "alice", 1000, 2000, "CLIENT_INITIATED", false);
	insert(a);
	insert(b);
	struct presence_op set = {.user = user, .status = 1, .since = 100};
	cr_assert_eq(storage_transact(st, tx_presence, &set), ERR_OK);

	struct with_presence w = {.id = a->id, .user = user};
	cr_assert_eq(storage_transact(st, tx_get_with_presence, &w), ERR_OK);
	assert_call_eq(w.c, a);
	cr_assert_eq(w.rec.status, 1);
	cr_assert_eq(w.rec.status_since, 100);
	cr_assert_str_eq(w.rec.open_call_id, b->id, "the call read is left out");
	cr_assert_eq(w.rec.open_newest, 4000);
	cr_assert_eq(w.rec.last_left_at, 2000);
	call_free(w.c);

	struct call *ghost = new_call(3, 1767225600000, "alice");
	w = (struct with_presence){.id = ghost->id, .user = user};
	cr_assert_eq(storage_transact(st, tx_get_with_presence, &w), ERR_NOT_FOUND);
	cr_assert_null(w.c);
	call_free(ghost);
	call_free(a);
	call_free(b);
}

/* ---- token minting's view of a call ---- */

Test(storage, call_access_for_member_and_stranger)
{
	struct call *c = full_call(1);
	insert(c);
	struct call_access got;
	cr_assert_eq(storage_call_access(st, c->id, c->members[1].user, &got), ERR_OK);
	cr_assert_str_eq(got.room, c->room);
	cr_assert_eq(got.kind, c->kind);
	cr_assert_eq(got.status, c->status);
	cr_assert_eq(got.next_deadline, c->next_deadline);
	cr_assert(got.member);
	cr_assert_eq(got.invite, c->members[1].invite);
	cr_assert_str_eq(got.name, c->members[1].name);

	char stranger[64];
	make_name(stranger, sizeof stranger, "mallory");
	cr_assert_eq(storage_call_access(st, c->id, stranger, &got), ERR_OK);
	cr_assert_str_eq(got.room, c->room);
	cr_assert_not(got.member);
	char unknown[ID_LEN + 1];
	make_id(unknown, 2);
	cr_assert_eq(storage_call_access(st, unknown, c->members[1].user, &got), ERR_NOT_FOUND);
	call_free(c);
}

/* Many threads ask at once, each for another (call, user), in a tight loop: PostgreSQL answers
 * them in shared statements (db/pg_batch_read.c), and every thread must get its own answer.
 * The calls, users and names differ in every field read, and hold the bytes an array literal
 * could mistake for syntax; once with prepared statements and once without (pgbouncer). */
#define ACCESS_CALLS 4
#define ACCESS_USERS 4 /* the calls' three members and a stranger */
#define ACCESS_COMBOS (ACCESS_CALLS * ACCESS_USERS + 1) /* and an unknown call */
#define ACCESS_ROUNDS 60

struct access_combo {
	char id[ID_LEN + 1];
	char user[USER_ID_MAX + 1];
	enum err want;
	struct call_access answer;
};

struct access_worker {
	struct storage *st;
	const struct access_combo *combos;
	unsigned first;
	pthread_barrier_t *start;
	unsigned wrong;
	char first_wrong[640];
};

static bool access_eq(const struct call_access *a, const struct call_access *b)
{
	return strcmp(a->room, b->room) == 0 && a->kind == b->kind && a->status == b->status &&
	       a->next_deadline == b->next_deadline && a->member == b->member &&
	       (!a->member || (a->invite == b->invite && strcmp(a->name, b->name) == 0));
}

static void *access_worker_main(void *arg)
{
	struct access_worker *w = arg;
	pthread_barrier_wait(w->start);
	for (unsigned i = 0; i < ACCESS_ROUNDS * ACCESS_COMBOS; i++) {
		const struct access_combo *c = &w->combos[(w->first + i) % ACCESS_COMBOS];
		struct call_access got = {0};
		enum err e = storage_call_access(w->st, c->id, c->user, &got);
		if (e == c->want && (e != ERR_OK || access_eq(&got, &c->answer)))
			continue;
		if (!w->wrong++)
			snprintf(w->first_wrong, sizeof w->first_wrong,
				 "call %s user %s: err %d (want %d), room %s member %d name %s",
				 c->id, c->user, e, c->want, got.room, got.member, got.name);
	}
	return NULL;
}

static void run_access_workers(struct storage *on, const struct access_combo *combos)
{
	pthread_barrier_t start;
	pthread_t threads[THREADS];
	struct access_worker workers[THREADS];
	cr_assert_eq(pthread_barrier_init(&start, NULL, THREADS), 0);
	for (unsigned t = 0; t < THREADS; t++) {
		workers[t] = (struct access_worker){.st = on, .combos = combos, .first = t,
						    .start = &start};
		cr_assert_eq(pthread_create(&threads[t], NULL, access_worker_main, &workers[t]), 0);
	}
	for (unsigned t = 0; t < THREADS; t++)
		pthread_join(threads[t], NULL);
	pthread_barrier_destroy(&start);
	for (unsigned t = 0; t < THREADS; t++)
		cr_assert_eq(workers[t].wrong, 0, "thread %u: %u wrong answers, first: %s", t,
			     workers[t].wrong, workers[t].first_wrong);
}

Test(storage, concurrent_call_access_each_gets_its_own_answer, .timeout = 120)
{
	static const char *const who[ACCESS_USERS] = {"alice", "bob", "q\"u\\o,t{e} \xc3\xa9", "mallory"};
	static const enum call_status status[ACCESS_CALLS] = {CALL_RINGING, CALL_ACTIVE, CALL_ENDED,
							      CALL_RINGING};
	static struct access_combo combos[ACCESS_COMBOS];
	for (unsigned k = 0; k < ACCESS_CALLS; k++) {
		struct call *c = new_call(k, 1767225600000 + k, who[0]);
		/* Ids with a quote, a backslash, a comma, braces, a space and non-ASCII bytes. */
		snprintf(c->id, sizeof c->id, "%08x-\"\\,{%u} \xc3\xa9\\\"", tag, k);
		snprintf(c->room, sizeof c->room, "room-%u-%08x", k, tag);
		c->kind = k % 2 ? CALL_VIDEO : CALL_AUDIO;
		c->status = status[k];
		c->next_deadline = 1767225700000 + 1000 * k;
		add_member(c, who[1], MEMBER_CALLEE)->invite = k % 2 ? INVITE_ACCEPTED : INVITE_PENDING;
		add_member(c, who[2], MEMBER_CALLEE)->invite = INVITE_DECLINED;
		for (size_t m = 0; m < c->n_members; m++)
			snprintf(c->members[m].name, sizeof c->members[m].name, "%s of call %u",
				 who[m], k);
		insert(c);
		for (unsigned u = 0; u < ACCESS_USERS; u++) {
			struct access_combo *x = &combos[k * ACCESS_USERS + u];
			snprintf(x->id, sizeof x->id, "%s", c->id);
			make_name(x->user, sizeof x->user, who[u]);
			x->want = ERR_OK;
			x->answer = (struct call_access){.kind = c->kind, .status = c->status,
							 .next_deadline = c->next_deadline,
							 .member = u < c->n_members};
			snprintf(x->answer.room, sizeof x->answer.room, "%s", c->room);
			if (x->answer.member) {
				x->answer.invite = c->members[u].invite;
				snprintf(x->answer.name, sizeof x->answer.name, "%s", c->members[u].name);
			}
		}
		call_free(c);
	}
	struct access_combo *unknown = &combos[ACCESS_COMBOS - 1];
	snprintf(unknown->id, sizeof unknown->id, "%08x-\"\\,{9} \xc3\xa9\\\"", tag);
	make_name(unknown->user, sizeof unknown->user, who[1]);
	unknown->want = ERR_NOT_FOUND;

	run_access_workers(st, combos);
	struct storage *unprepared = NULL;
	struct storage_options opts = {.pool_size = 4, .unprepared = true};
	cr_assert_eq(storage_open(url, &opts, &unprepared), ERR_OK);
	run_access_workers(unprepared, combos);
	storage_close(unprepared);
}

/* A pooled connection the server dropped (a restart, a failover) is replaced and the batch's
 * statement sent again, as every read does: the read after it succeeds. */
Test(storage, call_access_survives_a_lost_connection)
{
	if (is_sqlite())
		cr_skip_test("PostgreSQL property: SQLite has no server to lose");
	struct call *c = full_call(1);
	insert(c);
	struct storage *one = NULL;
	struct storage_options opts = {.pool_size = 1};
	cr_assert_eq(storage_open(url, &opts, &one), ERR_OK);
	struct call_access got;
	cr_assert_eq(storage_call_access(one, c->id, c->members[1].user, &got), ERR_OK);
	/* CREATE TABLE AS: rawdb_exec1 runs commands; the wait makes each backend gone. */
	rawdb_exec1(url,
		    "CREATE TEMP TABLE terminated AS SELECT pg_terminate_backend(pid, 5000)"
		    " FROM pg_stat_activity WHERE datname = current_database()"
		    " AND application_name = ?1",
		    "callstate");
	got = (struct call_access){0};
	cr_assert_eq(storage_call_access(one, c->id, c->members[1].user, &got), ERR_OK);
	cr_assert_str_eq(got.room, c->room);
	cr_assert(got.member);
	cr_assert_str_eq(got.name, c->members[1].name);
	storage_close(one);
	call_free(c);
}

/* ---- lists ---- */

#define LIST_N 48
static const char *const people[] = {"alice", "bob", "carol", "dave"};
static const enum call_outcome outcomes[] = {OUTCOME_COMPLETED, OUTCOME_MISSED, OUTCOME_DECLINED,
					     OUTCOME_CANCELLED, OUTCOME_FAILED};
static struct call *dataset[LIST_N];

/* Calls in groups of four sharing a created_at, ids not in insertion order, and every
 * attribute a filter looks at spread so filters combine in many ways. */
static void make_dataset(void)
{
	for (unsigned i = 0; i < LIST_N; i++) {
		struct call *c = new_call(i * 919 % 1000, base + (i / 4) * 10, people[i % 4]);
		add_member(c, people[(i + 1) % 4], MEMBER_CALLEE);
		if (i % 5 == 0)
			add_member(c, people[(i + 2) % 4], MEMBER_CALLEE);
		if (i % 3 != 2)
			make_name(c->chat_id, sizeof c->chat_id, i % 3 ? "chat-b" : "chat-a");
		c->status = (enum call_status)(i / 3 % 3);
		if (c->status == CALL_ENDED)
			c->outcome = outcomes[i % 5];
		c->kind = i / 2 % 2 ? CALL_VIDEO : CALL_AUDIO;
		insert(c);
		dataset[i] = c;
	}
}

static void free_dataset(void)
{
	for (unsigned i = 0; i < LIST_N; i++)
		call_freep(&dataset[i]);
}

static bool matches(const struct call *c, const struct call_filter *f)
{
	return (!f->user[0] || call_member_const(c, f->user)) &&
	       (!f->chat_id[0] || strcmp(c->chat_id, f->chat_id) == 0) &&
	       (f->status == -1 || (int)c->status == f->status) &&
	       (f->outcome == -1 || (int)c->outcome == f->outcome) &&
	       (f->kind == -1 || (int)c->kind == f->kind) &&
	       (!f->since || c->created_at >= f->since) && (!f->until || c->created_at < f->until);
}

static int newest_first(const void *pa, const void *pb)
{
	const struct call *a = *(struct call *const *)pa, *b = *(struct call *const *)pb;
	if (a->created_at != b->created_at)
		return a->created_at > b->created_at ? -1 : 1;
	return -strcmp(a->id, b->id);
}

/* Pages through f with page size limit and checks the concatenation is exactly the expected
 * list: right order, no gap, no repeat, more set on all pages but the last. */
static void check_list(const char *what, struct call_filter f, int limit)
{
	struct call *want[LIST_N];
	size_t n_want = 0, n_got = 0;
	for (unsigned i = 0; i < LIST_N; i++)
		if (matches(dataset[i], &f))
			want[n_want++] = dataset[i];
	qsort(want, n_want, sizeof want[0], newest_first);

	f.limit = limit;
	for (int pages = 0;; pages++) {
		cr_assert_leq(pages, LIST_N + 1, "%s: runaway paging", what);
		struct view_page page = {0};
		cr_assert_eq(storage_calls_list(st, &f, &page), ERR_OK, "%s", what);
		cr_assert_leq(page.n, (size_t)limit, "%s", what);
		for (size_t i = 0; i < page.n; i++, n_got++) {
			char view[128];
			cr_assert_lt(n_got, n_want, "%s: extra row %s", what, page.views[i].id);
			cr_assert_str_eq(page.views[i].id, want[n_got]->id, "%s limit %d row %zu",
					 what, limit, n_got);
			cr_assert_eq(page.views[i].created_at, want[n_got]->created_at);
			cr_assert_str_eq(page.views[i].json, view_of(want[n_got], view, sizeof view),
					 "%s", what);
		}
		cr_assert_eq(page.more, n_got < n_want, "%s limit %d: more after %zu", what, limit,
			     n_got);
		if (page.n) {
			const struct call_view *last = &page.views[page.n - 1];
			f.after_created_at = last->created_at;
			snprintf(f.after_id, sizeof f.after_id, "%s", last->id);
		}
		bool more = page.more;
		view_page_finish(&page);
		if (!more)
			break;
	}
	cr_assert_eq(n_got, n_want, "%s limit %d", what, limit);
}

static struct call_filter window(void)
{
	return (struct call_filter){.status = -1, .outcome = -1, .kind = -1, .since = base,
				    .until = base + WINDOW};
}

static struct call_filter unbounded(void)
{
	return (struct call_filter){.status = -1, .outcome = -1, .kind = -1};
}

static void check_list_limits(const char *what, struct call_filter f)
{
	static const int limits[] = {1, 3, 4, 7, 500};
	for (size_t i = 0; i < sizeof limits / sizeof limits[0]; i++)
		check_list(what, f, limits[i]);
}

Test(storage, calls_list_orders_and_pages_without_gaps)
{
	make_dataset();
	struct call_filter f = window();
	check_list_limits("all", f);
	check_list("all, one exact page", f, LIST_N);
	/* Equal created_at: the id breaks the tie, newest (greatest) first. */
	f.limit = 4;
	struct view_page page = {0};
	cr_assert_eq(storage_calls_list(st, &f, &page), ERR_OK);
	cr_assert_eq(page.n, 4);
	for (size_t i = 1; i < page.n; i++) {
		cr_assert_eq(page.views[i].created_at, page.views[0].created_at);
		cr_assert_lt(strcmp(page.views[i].id, page.views[i - 1].id), 0);
	}
	view_page_finish(&page);
	free_dataset();
}

Test(storage, calls_list_filters_alone_and_combined, .timeout = 60)
{
	make_dataset();
	struct call_filter f;

	for (size_t i = 0; i < 4; i++) {
		f = unbounded();
		make_name(f.user, sizeof f.user, people[i]);
		check_list_limits(people[i], f);
	}
	f = unbounded();
	make_name(f.chat_id, sizeof f.chat_id, "chat-a");
	check_list_limits("chat", f);
	for (int s = CALL_RINGING; s <= CALL_ENDED; s++) {
		f = window();
		f.status = s;
		check_list_limits("status", f);
	}
	for (size_t i = 0; i < sizeof outcomes / sizeof outcomes[0]; i++) {
		f = window();
		f.outcome = (int)outcomes[i];
		check_list_limits("outcome", f);
	}
	f = window();
	f.kind = CALL_VIDEO;
	check_list_limits("kind", f);
	f = window();
	f.until = 0;
	f.since = base + 50;
	check_list_limits("since", f);
	f = window();
	f.until = base + 60;
	check_list_limits("until", f);
	f = window();
	f.since = base + 20;
	f.until = base + 70;
	check_list_limits("since and until", f);

	f = unbounded();
	make_name(f.user, sizeof f.user, "bob");
	f.status = CALL_ENDED;
	check_list_limits("user and status", f);
	f = unbounded();
	make_name(f.user, sizeof f.user, "alice");
	make_name(f.chat_id, sizeof f.chat_id, "chat-b");
	f.kind = CALL_AUDIO;
	check_list_limits("user, chat and kind", f);
	f = unbounded();
	make_name(f.user, sizeof f.user, "carol");
	f.outcome = OUTCOME_DECLINED;
	f.since = base + 30;
	f.until = base + 100;
	check_list_limits("user, outcome, since and until", f);
	f = unbounded();
	make_name(f.chat_id, sizeof f.chat_id, "chat-a");
	f.status = CALL_ENDED;
	f.outcome = OUTCOME_COMPLETED;
	check_list_limits("chat, status and outcome", f);
	f = window();
	f.status = CALL_ENDED;
	f.outcome = OUTCOME_MISSED;
	f.kind = CALL_VIDEO;
	f.since = base + 10;
	check_list_limits("status, outcome, kind and since", f);
	f = window();
	f.status = CALL_ACTIVE;
	f.kind = CALL_AUDIO;
	check_list_limits("status and kind", f);
	free_dataset();
}

Test(storage, calls_list_rejects_bad_filters)
{
	struct view_page page = {0};
	struct call_filter f = window();
	f.limit = 0;
	cr_assert_eq(storage_calls_list(st, &f, &page), ERR_INVALID);
	f.limit = 501;
	cr_assert_eq(storage_calls_list(st, &f, &page), ERR_INVALID);
	f = window();
	f.limit = 10;
	f.status = 42;
	cr_assert_eq(storage_calls_list(st, &f, &page), ERR_INVALID);
	f = window();
	f.limit = 10;
	f.outcome = OUTCOME_NONE; /* "not ended" is a status */
	cr_assert_eq(storage_calls_list(st, &f, &page), ERR_INVALID);
	cr_assert_null(page.views);
}

/* ---- stats ---- */

/* A member of c accepted at token (0: by joining the room) who first joined at joined (0: never). */
static void accept_member(struct call *c, size_t i, int64_t token, int64_t joined)
{
	c->members[i].invite = INVITE_ACCEPTED;
	c->members[i].token_minted_at = token;
	c->members[i].first_joined_at = joined;
}

static void end_call(struct call *c, enum call_outcome outcome, int64_t answered, int64_t ended)
{
	c->status = CALL_ENDED;
	c->outcome = outcome;
	c->end_cause = CAUSE_END_REQUEST;
	c->answered_at = answered;
	c->ended_at = ended;
}

/* Calls worked out by hand; the comments give each one's share of the answer. */
Test(storage, call_stats_match_hand_computed_values)
{
	const int64_t t = base + 1000, timeout = 60000, now = t + 40 + 30000;
	struct call *c[7];
	/* completed, answered, 60 s long; caller joins after 500 ms, callee 2000 ms after accept */
	c[0] = new_call(1, t, "alice");
	add_member(c[0], "bob", MEMBER_CALLEE);
	accept_member(c[0], 0, t, t + 500);
	accept_member(c[0], 1, t + 1000, t + 3000);
	end_call(c[0], OUTCOME_COMPLETED, t + 1000, t + 61000);
	/* missed: not answered; caller joins after 100 ms */
	c[1] = new_call(2, t + 10, "alice");
	add_member(c[1], "bob", MEMBER_CALLEE)->invite = INVITE_MISSED;
	accept_member(c[1], 0, t + 10, t + 110);
	end_call(c[1], OUTCOME_MISSED, 0, t + 30010);
	/* failed, answered, 60 s long; caller joins after 200 ms; callee never does (counts) */
	c[2] = new_call(3, t + 20, "carol");
	add_member(c[2], "dave", MEMBER_CALLEE);
	accept_member(c[2], 0, t + 20, t + 220);
	accept_member(c[2], 1, t + 1020, 0);
	end_call(c[2], OUTCOME_FAILED, t + 1020, t + 61020);
	/* active; caller joins after 70 s (too late); callee accepted by joining (no sample) */
	c[3] = new_call(4, t + 30, "carol");
	add_member(c[3], "dave", MEMBER_CALLEE);
	accept_member(c[3], 0, t + 30, t + 70030);
	accept_member(c[3], 1, 0, t + 5030);
	c[3]->status = CALL_ACTIVE;
	c[3]->answered_at = t + 5030;
	/* ringing; caller not joined, 30 s of 60 left: not settled, left out */
	c[4] = new_call(5, t + 40, "erin");
	add_member(c[4], "frank", MEMBER_CALLEE);
	accept_member(c[4], 0, t + 40, 0);
	/* outside [t, t + 100): before and at the end */
	c[5] = new_call(6, t - 1, "alice");
	add_member(c[5], "bob", MEMBER_CALLEE);
	end_call(c[5], OUTCOME_DECLINED, 0, t);
	c[6] = new_call(7, t + 100, "alice");
	add_member(c[6], "bob", MEMBER_CALLEE);
	end_call(c[6], OUTCOME_CANCELLED, 0, t + 200);
	for (size_t i = 0; i < 7; i++)
		insert(c[i]);

	struct call_stats s;
	cr_assert_eq(storage_call_stats(st, t, t + 100, timeout, now, &s), ERR_OK);
	cr_assert_eq(s.calls, 5);
	cr_assert_eq(s.by_outcome[OUTCOME_COMPLETED], 1);
	cr_assert_eq(s.by_outcome[OUTCOME_MISSED], 1);
	cr_assert_eq(s.by_outcome[OUTCOME_DECLINED], 0);
	cr_assert_eq(s.by_outcome[OUTCOME_CANCELLED], 0);
	cr_assert_eq(s.by_outcome[OUTCOME_FAILED], 1);
	cr_assert_eq(s.ended, 3);
	cr_assert_eq(s.answered, 2);
	cr_assert_eq(s.duration_sum_ms, 120000);
	cr_assert_eq(s.accepted, 7);       /* all but the ringing call's caller */
	cr_assert_eq(s.joined_in_time, 5); /* not the late caller, not the failed call's callee */
	/* times to join: 100 200 500 2000 70000; ranks ceil(2.5) = 3 and ceil(4.75) = 5 */
	cr_assert_eq(s.joins, 5);
	cr_assert_eq(s.join_p50_ms, 500);
	cr_assert_eq(s.join_p95_ms, 70000);

	/* since is inclusive: from the failed call on. Once its window closed, the ringing
	 * call's caller counts, as a failure. */
	cr_assert_eq(storage_call_stats(st, t + 20, t + 100, timeout, t + 40 + timeout, &s), ERR_OK);
	cr_assert_eq(s.calls, 3);
	cr_assert_eq(s.ended, 1);
	cr_assert_eq(s.answered, 1);
	cr_assert_eq(s.accepted, 5);
	cr_assert_eq(s.joined_in_time, 2);
	cr_assert_eq(s.joins, 2); /* 200 70000: ranks 1 and 2 */
	cr_assert_eq(s.join_p50_ms, 200);
	cr_assert_eq(s.join_p95_ms, 70000);

	/* nothing in range: zeros, no percentiles */
	cr_assert_eq(storage_call_stats(st, t + 41, t + 100, timeout, now, &s), ERR_OK);
	cr_assert_eq(s.calls, 0);
	cr_assert_eq(s.ended + s.answered + s.accepted + s.joins + s.duration_sum_ms, 0);
	for (size_t i = 0; i < 7; i++)
		call_free(c[i]);
}

/* ---- timers ---- */

Test(storage, calls_due_earliest_first)
{
	static const int64_t deadlines[] = {100, 50, 50, 200, 0};
	struct call *calls[5];
	for (unsigned i = 0; i < 5; i++) {
		calls[i] = new_call(i + 1, base, "alice");
		calls[i]->next_deadline = deadlines[i] ? base + deadlines[i] : 0;
		insert(calls[i]);
	}
	struct due_call due[1000];
	char prefix[9];
	snprintf(prefix, sizeof prefix, "%08x", tag);
	size_t n = 0, mine = 0;
	cr_assert_eq(storage_calls_due(st, base + 100, NULL, 1000, due, &n), ERR_OK);
	const char *want[] = {calls[1]->id, calls[2]->id, calls[0]->id};
	for (size_t i = 0; i < n; i++) {
		if (strncmp(due[i].id, prefix, 8) != 0)
			continue; /* another test's, in a shared database */
		cr_assert_lt(mine, 3);
		cr_assert_str_eq(due[i].id, want[mine]);
		cr_assert_eq(due[i].deadline, base + deadlines[mine == 2 ? 0 : 1]);
		mine++;
	}
	cr_assert_eq(mine, 3);
	{
		cr_assert_eq(storage_calls_due(st, base + 100, NULL, 2, due, &n), ERR_OK);
		cr_assert_eq(n, 2);
		cr_assert_str_eq(due[1].id, calls[2]->id);
		/* the next page starts after the last one seen, ties broken by id */
		struct due_call after = due[0];
		cr_assert_eq(storage_calls_due(st, base + 100, &after, 1000, due, &n), ERR_OK);
		cr_assert_eq(n, 2);
		cr_assert_str_eq(due[0].id, calls[2]->id);
		cr_assert_str_eq(due[1].id, calls[0]->id);
		after = due[1];
		cr_assert_eq(storage_calls_due(st, base + 100, &after, 1000, due, &n), ERR_OK);
		cr_assert_eq(n, 0);
		cr_assert_eq(storage_calls_due(st, base + 49, NULL, 1000, due, &n), ERR_OK);
		cr_assert_eq(n, 0);
	}
	for (unsigned i = 0; i < 5; i++)
		call_free(calls[i]);
}

/* ---- retention ---- */

struct purge_op {
	bool calls;
	int64_t before;
	size_t max, n;
};

static enum err tx_purge(struct storage_tx *tx, void *arg)
{
	struct purge_op *op = arg;
	return op->calls ? storage_tx_purge_calls(tx, op->before, op->max, &op->n)
			 : storage_tx_purge_unowned(tx, op->before, op->max, &op->n);
}

static size_t purge(bool calls, int64_t before, size_t max)
{
	struct purge_op op = {.calls = calls, .before = before, .max = max};
	cr_assert_eq(storage_transact(st, tx_purge, &op), ERR_OK);
	return op.n;
}

static enum err tx_webhook_only(struct storage_tx *tx, void *arg)
{
	return storage_tx_webhook_insert(tx, arg);
}

/* Stores webhook n of call_id ("" for a room no call owns), received at. */
static void store_webhook(unsigned n, const char *call_id, int64_t at)
{
	static const char body[] = "{\"event\":\"participant_left\"}";
	char id[ID_LEN + 1];
	make_id(id, n);
	struct webhook_record rec = {.id = id, .event = "participant_left", .room = "call_x",
				     .call_id = call_id, .call_version = 1, .created_at = at,
				     .received_at = at, .body = body, .body_len = sizeof body - 1};
	cr_assert_eq(storage_transact(st, tx_webhook_only, &rec), ERR_OK, "webhook %u", n);
}

/* Appends event n of call_id at `at`, and returns its seq. */
static int64_t append_at(unsigned n, const char *call_id, int64_t at)
{
	struct event ev;
	make_event(&ev, n, call_id[0] ? "call.ended" : "presence.changed", call_id, 0, "{}");
	ev.at = at;
	ev.call_version = call_id[0] ? 1 : 0;
	int64_t seq = append(&ev);
	event_finish(&ev);
	return seq;
}

static bool in_feed(int64_t seq)
{
	struct event_page page = {0};
	cr_assert_eq(storage_events_after(st, seq - 1, 1, &page), ERR_OK);
	bool found = page.n == 1 && page.events[0].seq == seq;
	event_page_finish(&page);
	return found;
}

static size_t trail_length(const char *id)
{
	struct audit_trail trail = {0};
	cr_assert_eq(storage_call_audit(st, id, &trail), ERR_OK);
	size_t n = trail.n;
	audit_trail_finish(&trail);
	return n;
}

/* An ended call with one session, one feed event and one webhook; returns the event's seq. */
static int64_t ended_call(struct call **ret, unsigned n, int64_t created, int64_t ended)
{
	struct call *c = new_call(n, created, "alice");
	c->status = ended ? CALL_ENDED : CALL_RINGING;
	c->outcome = ended ? OUTCOME_COMPLETED : OUTCOME_NONE;
	c->ended_at = ended;
	add_session(c, "PA_alice", "alice", created + 1, ended, "", false);
	insert(c);
	store_webhook(100 + n, c->id, created + 1);
	*ret = c;
	return append_at(200 + n, c->id, created + 2);
}

/* Ended calls older than the bound go with their sessions, events and webhooks, in batches of
 * at most max; calls not ended, or ended since, stay whatever their age. On SQLite one old
 * call's rows are in the audit tables (the storage was closed since) and one's are not yet. */
Test(storage, purge_calls_takes_ended_calls_with_what_they_own)
{
	const int64_t before = base + 1000;
	struct call *indexed, *fresh_old, *recent, *live, *ended_late;
	int64_t seq_indexed = ended_call(&indexed, 1, base, base + 10);
	storage_close(st);
	st = NULL;
	open_storage();
	int64_t seq_fresh_old = ended_call(&fresh_old, 2, base + 20, base + 30);
	int64_t seq_recent = ended_call(&recent, 3, base + 2000, base + 3000);
	int64_t seq_live = ended_call(&live, 4, base + 40, 0);
	int64_t seq_late = ended_call(&ended_late, 5, base + 50, base + 1500);

	cr_assert_eq(purge(true, before, 1), 1, "at most max calls a batch");
	cr_assert_eq(purge(true, before, 100), 1);
	cr_assert_eq(purge(true, before, 100), 0, "nothing left to purge");

	struct call *gone = NULL;
	cr_assert_eq(storage_call_get(st, indexed->id, &gone), ERR_NOT_FOUND);
	cr_assert_eq(storage_call_get(st, fresh_old->id, &gone), ERR_NOT_FOUND);
	cr_assert_not(in_feed(seq_indexed));
	cr_assert_not(in_feed(seq_fresh_old));
	cr_assert_eq(trail_length(indexed->id), 0, "its webhook and events are gone");
	cr_assert_eq(trail_length(fresh_old->id), 0);
	struct call *kept[] = {recent, live, ended_late};
	int64_t kept_seqs[] = {seq_recent, seq_live, seq_late};
	for (size_t i = 0; i < 3; i++) {
		struct call *got = get(kept[i]->id);
		assert_call_eq(got, kept[i]);
		call_free(got);
		cr_assert(in_feed(kept_seqs[i]), "event of %s", kept[i]->id);
		cr_assert_eq(trail_length(kept[i]->id), 2, "webhook and event of %s", kept[i]->id);
	}
	/* A webhook stored after the purge is still found by its call's trail: on SQLite the
	 * audit marks were not left above the rowids to come. */
	store_webhook(300, recent->id, base + 3001);
	cr_assert_eq(trail_length(recent->id), 3);
	storage_close(st);
	st = NULL;
	open_storage();
	cr_assert_eq(trail_length(recent->id), 3);

	call_free(indexed);
	call_free(fresh_old);
	call_free(recent);
	call_free(live);
	call_free(ended_late);
}

/* Purging the newest webhooks, already in the audit tables, leaves the next webhook's trail
 * whole (on SQLite: its rowid, reused, is not under the audit mark). */
Test(storage, purge_of_the_newest_webhooks_keeps_later_trails)
{
	struct call *live = new_call(1, base + 2000, "bob"), *old;
	insert(live);
	ended_call(&old, 2, base, base + 10);
	storage_close(st);
	st = NULL;
	open_storage();
	cr_assert_eq(purge(true, base + 1000, 100), 1);
	store_webhook(3, live->id, base + 2001);
	cr_assert_eq(trail_length(live->id), 1);
	storage_close(st);
	st = NULL;
	open_storage();
	cr_assert_eq(trail_length(live->id), 1);
	call_free(live);
	call_free(old);
}

/* A transaction that holds an old call (a request on it, or another instance's purge). */
struct holder {
	const char *id;
	sem_t held, release;
	enum err result;
};

static enum err tx_hold(struct storage_tx *tx, void *arg)
{
	struct holder *h = arg;
	struct call *c = NULL;
	enum err e = storage_tx_call_get(tx, h->id, &c);
	call_free(c);
	sem_post(&h->held);
	sem_wait(&h->release);
	return e;
}

static void *hold_main(void *arg)
{
	struct holder *h = arg;
	h->result = storage_transact(st, tx_hold, h);
	return NULL;
}

/* Storage.h rule 11 on PostgreSQL: the purge passes over a call another transaction holds,
 * without waiting for it, and takes it once it is free. */
Test(storage, purge_skips_calls_another_transaction_holds, .timeout = 30)
{
	if (is_sqlite())
		cr_skip_test("PostgreSQL property: SQLite's one writer runs one transaction at a time");
	struct call *held_call, *free_call;
	ended_call(&held_call, 1, base, base + 10);
	ended_call(&free_call, 2, base + 20, base + 30);
	struct holder h = {.id = held_call->id};
	cr_assert_eq(sem_init(&h.held, 0, 0), 0);
	cr_assert_eq(sem_init(&h.release, 0, 0), 0);
	pthread_t holder_thread;
	cr_assert_eq(pthread_create(&holder_thread, NULL, hold_main, &h), 0);
	sem_wait(&h.held);
	cr_assert_eq(purge(true, base + 1000, 100), 1, "only the call nobody holds");
	struct call *gone = NULL;
	cr_assert_eq(storage_call_get(st, free_call->id, &gone), ERR_NOT_FOUND);
	sem_post(&h.release);
	pthread_join(holder_thread, NULL);
	cr_assert_eq(h.result, ERR_OK);
	cr_assert_eq(purge(true, base + 1000, 100), 1, "the other one, once free");
	cr_assert_eq(storage_call_get(st, held_call->id, &gone), ERR_NOT_FOUND);
	sem_destroy(&h.held);
	sem_destroy(&h.release);
	call_free(held_call);
	call_free(free_call);
}

/* What no call owns ages out by its own time: presence events, webhooks of unknown rooms and
 * idempotency records; a call's own rows are not touched. */
Test(storage, purge_unowned_takes_old_loose_rows)
{
	const int64_t before = base + 1000;
	int64_t old_presence[3];
	for (unsigned i = 0; i < 3; i++)
		old_presence[i] = append_at(1 + i, "", base + i);
	struct call *c;
	int64_t call_seq = ended_call(&c, 10, base + 5, base + 6);
	int64_t new_presence = append_at(20, "", base + 2000);
	store_webhook(30, "", base + 10);
	store_webhook(31, "", base + 2000);
	char alice[64];
	make_name(alice, sizeof alice, "alice");
	struct idempotency old = {.created_at = base + 10}, young = {.created_at = base + 2000};
	make_id(old.call_id, 40);
	make_id(young.call_id, 41);
	cr_assert_eq(idem_claim(alice, "old", &old, 0, NULL), ERR_OK);
	cr_assert_eq(idem_claim(alice, "young", &young, 0, NULL), ERR_OK);

	cr_assert_eq(purge(false, before, 2), 2 + 1 + 1, "at most max of each");
	cr_assert_eq(purge(false, before, 100), 1);
	cr_assert_eq(purge(false, before, 100), 0);

	for (unsigned i = 0; i < 3; i++)
		cr_assert_not(in_feed(old_presence[i]));
	cr_assert(in_feed(new_presence));
	cr_assert(in_feed(call_seq), "a call's event waits for its call");
	cr_assert_eq(trail_length(c->id), 2);
	struct idempotency got;
	struct idempotency probe = {.created_at = base + 3000};
	make_id(probe.call_id, 42);
	cr_assert_eq(idem_claim(alice, "old", &probe, 0, NULL), ERR_OK, "the old record is gone");
	cr_assert_eq(idem_claim(alice, "young", &probe, 0, &got), ERR_CONFLICT);
	cr_assert_str_eq(got.call_id, young.call_id);
	call_free(c);
}

/* ---- durability ---- */

Test(storage, data_survives_close_and_reopen)
{
	struct call *c = full_call(1);
	insert(c);
	struct event ev;
	make_event(&ev, 2, "call.ended", c->id, 7, "{\"x\":1}");
	append(&ev);
	struct idempotency rec = {.created_at = 5};
	make_id(rec.call_id, 1);
	char alice[64];
	make_name(alice, sizeof alice, "alice");
	cr_assert_eq(idem_claim(alice, "k", &rec, 0, NULL), ERR_OK);

	storage_close(st);
	st = NULL;
	open_storage();

	struct call *got = get(c->id);
	assert_call_eq(got, c);
	struct event_page page = {0};
	cr_assert_eq(storage_events_after(st, ev.seq - 1, 1, &page), ERR_OK);
	cr_assert_eq(page.n, 1);
	cr_assert_str_eq(page.events[0].id, ev.id);
	struct idempotency back, other = {.created_at = 6};
	make_id(other.call_id, 3);
	cr_assert_eq(idem_claim(alice, "k", &other, 0, &back), ERR_CONFLICT);
	cr_assert_str_eq(back.call_id, rec.call_id);
	event_page_finish(&page);
	event_finish(&ev);
	call_free(got);
	call_free(c);
}

/* SQLite only: the writer's durability settings, seen on the backend's own connection. Every
 * connection the backend opens is recorded through an auto extension; inside a transaction
 * the writer is the one connection not in autocommit. */
#define SEEN_MAX 16
static sqlite3 *seen[SEEN_MAX];
static size_t n_seen;

static int record_connection(sqlite3 *db, char **errmsg, const sqlite3_api_routines *api)
{
	if (n_seen < SEEN_MAX)
		seen[n_seen++] = db;
	return SQLITE_OK;
}

static int64_t pragma_int(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *stmt = NULL;
	int64_t v = -1;
	if (sqlite3_prepare_v2(db, sql, -1, &stmt, NULL) == SQLITE_OK &&
	    sqlite3_step(stmt) == SQLITE_ROW)
		v = sqlite3_column_int64(stmt, 0);
	sqlite3_finalize(stmt);
	return v;
}

struct writer_settings {
	int writers;
	int64_t synchronous, checkpoint_fullfsync, foreign_keys;
};

static enum err tx_writer_settings(struct storage_tx *tx, void *arg)
{
	struct writer_settings *ws = arg;
	for (size_t i = 0; i < n_seen; i++) {
		if (sqlite3_get_autocommit(seen[i]))
			continue;
		ws->writers++;
		ws->synchronous = pragma_int(seen[i], "PRAGMA synchronous");
		ws->checkpoint_fullfsync = pragma_int(seen[i], "PRAGMA checkpoint_fullfsync");
		ws->foreign_keys = pragma_int(seen[i], "PRAGMA foreign_keys");
	}
	return ERR_OK;
}

/* FULL with checkpoint_fullfsync: how the writer's VFS tells a commit's sync (left to the
 * syncer thread, which answers each batch once durable: tests/http/crash.test.js cuts the power
 * to show it) from a checkpoint's (db/sqlite_vfs.c). */
Test(storage, sqlite_writer_is_wal_with_synchronous_full_and_checkpoint_fullfsync)
{
	if (!is_sqlite())
		cr_skip_test("SQLite property");
	storage_close(st);
	st = NULL;
	cr_assert_eq(sqlite3_auto_extension((void (*)(void))record_connection), SQLITE_OK);
	open_storage();
	struct writer_settings ws = {0};
	cr_assert_eq(storage_transact(st, tx_writer_settings, &ws), ERR_OK);
	sqlite3_reset_auto_extension();
	cr_assert_eq(ws.writers, 1);
	cr_assert_eq(ws.synchronous, 2, "synchronous=FULL is 2");
	cr_assert_eq(ws.checkpoint_fullfsync, 1);
	cr_assert_eq(ws.foreign_keys, 1);

	/* WAL is a property of the file: any connection sees it. */
	sqlite3 *db = NULL;
	sqlite3_stmt *stmt = NULL;
	cr_assert_eq(sqlite3_open_v2(url + 7, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	cr_assert_eq(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &stmt, NULL), SQLITE_OK);
	cr_assert_eq(sqlite3_step(stmt), SQLITE_ROW);
	cr_assert_str_eq((const char *)sqlite3_column_text(stmt, 0), "wal");
	sqlite3_finalize(stmt);
	sqlite3_close(db);
}

static enum err tx_nested(struct storage_tx *tx, void *arg)
{
	enum err *inner = arg;
	*inner = storage_transact(st, tx_append, NULL);
	return ERR_OK;
}

Test(storage, sqlite_transact_inside_a_transaction_fails_instead_of_hanging, .timeout = 10)
{
	if (!is_sqlite())
		cr_skip_test("SQLite property: its one writer thread would wait for itself");
	enum err inner = ERR_OK;
	cr_assert_eq(storage_transact(st, tx_nested, &inner), ERR_OK);
	cr_assert_eq(inner, ERR_INTERNAL);
}

Test(storage, sqlite_unopenable_path_is_unavailable)
{
	if (!is_sqlite())
		cr_skip_test("SQLite property");
	struct storage *other = NULL;
	cr_assert_eq(storage_open("sqlite:/nonexistent-dir/x/test.db", NULL, &other), ERR_UNAVAILABLE);
	cr_assert_null(other);
}

/* ---- push delivery (rule 12) ---- */

#define CLAIM_MAX 9

struct delivery_call {
	int64_t from;
	const struct event_page *page;
	const char *url;
	int64_t now;
	size_t max;
	struct delivery got[CLAIM_MAX];
	size_t n;
	int64_t next_due;
	const struct delivery *d;
	enum delivery_state state;
	int64_t next_at;
	const char *error;
};

static enum err tx_enqueue(struct storage_tx *tx, void *arg)
{
	struct delivery_call *a = arg;
	return storage_tx_delivery_enqueue(tx, a->from, a->page);
}

static enum err tx_claim(struct storage_tx *tx, void *arg)
{
	struct delivery_call *a = arg;
	return storage_tx_delivery_claim(tx, a->url, a->now, a->now + 1000, a->max, a->got, &a->n,
					 &a->next_due);
}

/* One settle and the advance of its order, as a sender records an order it sent. */
static enum err tx_settle(struct storage_tx *tx, void *arg)
{
	struct delivery_call *a = arg;
	enum err e = storage_tx_delivery_settle(tx, a->d, a->state, a->next_at, a->url, a->error,
						a->now);
	return e != ERR_OK ? e : storage_tx_delivery_advance(tx, a->d->order_key);
}

/* Claims up to max (<= CLAIM_MAX) for url at now into ret; how many. */
static size_t claim_n(const char *to, int64_t now, size_t max, struct delivery *ret,
		      int64_t *ret_next_due)
{
	struct delivery_call a = {.url = to, .now = now, .max = max};
	cr_assert_eq(storage_transact(st, tx_claim, &a), ERR_OK);
	for (size_t i = 0; i < a.n; i++)
		ret[i] = a.got[i];
	if (ret_next_due)
		*ret_next_due = a.next_due;
	return a.n;
}

/* The seq of the one delivery claimed for url at now, or 0 when nothing is due. */
static int64_t claim(const char *to, int64_t now, struct delivery *ret)
{
	struct delivery d[1];
	size_t n = claim_n(to, now, 1, d, NULL);
	if (n && ret)
		*ret = d[0];
	return n ? d[0].seq : 0;
}

static void settle(const struct delivery *d, enum delivery_state state, int64_t next_at,
		   const char *to, const char *error, int64_t now)
{
	struct delivery_call a = {.d = d, .state = state, .next_at = next_at, .url = to,
				  .error = error, .now = now};
	cr_assert_eq(storage_transact(st, tx_settle, &a), ERR_OK);
}

/* Appends evs and queues them all for delivery. */
static void queue_events(struct event *evs, size_t n)
{
	int64_t cursor = -1;
	for (size_t i = 0; i < n; i++)
		append(&evs[i]);
	cr_assert_eq(storage_delivery_cursor(st, &cursor), ERR_OK);
	struct event_page page = {0};
	cr_assert_eq(storage_events_after(st, cursor, 100, &page), ERR_OK);
	cr_assert_eq(page.n, n);
	struct delivery_call q = {.from = cursor, .page = &page};
	cr_assert_eq(storage_transact(st, tx_enqueue, &q), ERR_OK);
	cr_assert_eq(storage_transact(st, tx_enqueue, &q), ERR_CONFLICT, "queued once");
	event_page_finish(&page);
	cr_assert_eq(storage_delivery_cursor(st, &cursor), ERR_OK);
	cr_assert_eq(cursor, evs[n - 1].seq);
}

Test(storage, deliveries_go_in_order_per_call_leased_and_settled)
{
	struct event evs[4];
	char call_a[ID_LEN + 1], call_b[ID_LEN + 1];
	make_id(call_a, 81);
	make_id(call_b, 82);
	make_event(&evs[0], 1, "call.ringing", call_a, 1, "{}");
	make_event(&evs[1], 2, "call.ringing", call_b, 1, "{}");
	make_event(&evs[2], 3, "call.ended", call_a, 2, "{}");
	make_event(&evs[3], 4, "presence.changed", "", 0, "{}");
	int64_t cursor = -1;
	cr_assert_eq(storage_delivery_cursor(st, &cursor), ERR_OK);
	cr_assert_eq(cursor, 0, "a fresh database queues from its first event");
	queue_events(evs, 4);

	/* One head per order: A's second event waits for its first, leased or not. */
	struct delivery a1, b1, p1, again;
	int64_t next_due = 0;
	cr_assert_eq(claim("u", 100, &a1), evs[0].seq);
	cr_assert(a1.leased);
	cr_assert_str_eq(a1.order_key, call_a);
	cr_assert_eq(a1.attempts, 0);
	cr_assert_eq(a1.first_attempt_at, 0);
	cr_assert_eq(claim("u", 100, &b1), evs[1].seq);
	cr_assert_eq(claim("u", 100, &p1), evs[3].seq);
	cr_assert_str_eq(p1.order_key, "", "presence events are one order");
	cr_assert_eq(claim_n("u", 100, 1, &again, &next_due), 0, "the heads are leased until 1100");
	cr_assert_eq(next_due, 1100, "an idle sender knows when a lease ends");

	a1.attempts = 1;
	a1.first_attempt_at = 150;
	settle(&a1, DELIVERY_PENDING, 1000, "u", "HTTP 503", 150);
	struct delivery_status ds;
	cr_assert_eq(storage_delivery_status(st, "u", &ds), ERR_OK);
	cr_assert_eq(ds.backlog, 4);
	cr_assert_eq(ds.oldest_at, evs[0].at);
	cr_assert_eq(ds.dead, 0);
	cr_assert_eq(ds.stopped, 0);
	cr_assert_eq(ds.last_error_seq, evs[0].seq);
	cr_assert_eq(ds.last_error_at, 150);
	cr_assert_str_eq(ds.last_error, "HTTP 503");
	cr_assert_eq(claim_n("u", 999, 1, &again, &next_due), 0, "not before its retry");
	cr_assert_eq(next_due, 1000, "the retry is the next due");
	cr_assert_eq(claim("u", 1000, &again), evs[0].seq);
	cr_assert_eq(again.attempts, 1);
	cr_assert_eq(again.first_attempt_at, 150);
	/* Given back unattempted: due again, its attempts and last error kept. */
	settle(&again, DELIVERY_PENDING, 1000, "u", NULL, 1000);
	cr_assert_eq(storage_delivery_status(st, "u", &ds), ERR_OK);
	cr_assert_str_eq(ds.last_error, "HTTP 503");
	cr_assert_eq(claim("u", 1000, &again), evs[0].seq);
	cr_assert_eq(again.attempts, 1);
	settle(&again, DELIVERY_DELIVERED, 0, "u", NULL, 1000);
	struct delivery a2;
	cr_assert_eq(claim("u", 1000, &a2), evs[2].seq, "A's next event once the first is done");

	/* 410: nothing more for that URL; another URL goes on. Dead events are counted. */
	settle(&a2, DELIVERY_STOPPED, 0, "u", "HTTP 410", 1600);
	cr_assert_eq(claim_n("u", 5000, 1, &again, &next_due), 0, "stopped");
	cr_assert_eq(next_due, INT64_MAX, "nothing comes due once stopped");
	settle(&b1, DELIVERY_DEAD, 0, "v", "HTTP 500", 1700);
	cr_assert_eq(claim("v", 5000, NULL), evs[3].seq, "the lease of the presence head ended");
	cr_assert_eq(storage_delivery_status(st, "u", &ds), ERR_OK);
	cr_assert_eq(ds.backlog, 1);
	cr_assert_eq(ds.dead, 1);
	cr_assert_eq(ds.stopped, 1);
	cr_assert_eq(ds.last_error_seq, evs[1].seq);
	cr_assert_str_eq(ds.last_error, "HTTP 500");
	cr_assert_eq(storage_delivery_status(st, "v", &ds), ERR_OK);
	cr_assert_eq(ds.stopped, 0, "stopped is per URL");
	for (size_t i = 0; i < 4; i++)
		event_finish(&evs[i]);
}

Test(storage, a_claim_takes_heads_with_what_is_queued_behind_them)
{
	struct event evs[7];
	char call_a[ID_LEN + 1], call_b[ID_LEN + 1];
	make_id(call_a, 91);
	make_id(call_b, 92);
	make_event(&evs[0], 1, "call.ringing", call_a, 1, "{}");
	make_event(&evs[1], 2, "presence.changed", "", 0, "{}");
	make_event(&evs[2], 3, "call.ringing", call_b, 1, "{}");
	make_event(&evs[3], 4, "call.active", call_a, 2, "{}");
	make_event(&evs[4], 5, "presence.changed", "", 0, "{}");
	make_event(&evs[5], 6, "call.ended", call_a, 3, "{}");
	make_event(&evs[6], 7, "presence.changed", "", 0, "{}");
	queue_events(evs, 7);

	/* Three heads, and the room left shared: (9 - 3) / 3 behind each. */
	struct delivery got[CLAIM_MAX];
	size_t n = claim_n("u", 100, CLAIM_MAX, got, NULL);
	int64_t want[] = {evs[0].seq, evs[3].seq, evs[5].seq, evs[1].seq, evs[4].seq, evs[6].seq,
			  evs[2].seq};
	bool leased[] = {true, false, false, true, false, false, true};
	cr_assert_eq(n, 7);
	for (size_t i = 0; i < n; i++) {
		cr_assert_eq(got[i].seq, want[i], "entry %zu", i);
		cr_assert_eq(got[i].leased, leased[i], "entry %zu", i);
	}
	cr_assert_eq(claim("u", 100, NULL), 0, "everything is the claimer's");

	/* A sends its head and next event, then fails on the third: that one is A's head now. */
	settle(&got[0], DELIVERY_DELIVERED, 0, "u", NULL, 200);
	settle(&got[1], DELIVERY_DELIVERED, 0, "u", NULL, 200);
	got[2].attempts = 1;
	got[2].first_attempt_at = 200;
	settle(&got[2], DELIVERY_PENDING, 300, "u", "HTTP 500", 200);
	/* The presence events: the head sent, the two behind it not tried. */
	settle(&got[3], DELIVERY_DELIVERED, 0, "u", NULL, 200);
	/* B's head given back unattempted. */
	settle(&got[6], DELIVERY_PENDING, 200, "u", NULL, 200);

	struct delivery next[CLAIM_MAX];
	n = claim_n("u", 250, CLAIM_MAX, next, NULL);
	cr_assert_eq(n, 3, "B's head, presence's next head and the one behind it");
	cr_assert_eq(next[0].seq, evs[2].seq, "heads in seq order");
	cr_assert_eq(next[1].seq, evs[4].seq);
	cr_assert(next[1].leased, "advanced to the head");
	cr_assert_eq(next[2].seq, evs[6].seq);
	cr_assert_not(next[2].leased);
	/* The heads never tried go first: a receiver that failed one event before is tried
	 * again after the others. */
	settle(&next[0], DELIVERY_PENDING, 300, "u", NULL, 250);
	n = claim_n("u", 300, CLAIM_MAX, next, NULL);
	cr_assert_eq(n, 2, "A's failed event once its retry is due, and B's head");
	cr_assert_eq(next[0].seq, evs[2].seq);
	cr_assert_eq(next[1].seq, evs[5].seq);
	cr_assert_eq(next[1].attempts, 1);
	for (size_t i = 0; i < 7; i++)
		event_finish(&evs[i]);
}

Test(storage, events_are_read_back_by_seq)
{
	struct event evs[3];
	char call_a[ID_LEN + 1];
	make_id(call_a, 93);
	for (unsigned i = 0; i < 3; i++)
		make_event(&evs[i], i + 1, "call.ringing", call_a, i + 1, "{\"n\":1}");
	for (size_t i = 0; i < 3; i++)
		append(&evs[i]);
	int64_t seqs[] = {evs[0].seq, evs[2].seq, evs[2].seq + 1000};
	struct event_page page = {0};
	cr_assert_eq(storage_events_get(st, seqs, 3, &page), ERR_OK);
	cr_assert_eq(page.n, 2, "a seq not in the feed is left out");
	cr_assert_eq(page.events[0].seq, evs[0].seq);
	cr_assert_str_eq(page.events[0].id, evs[0].id);
	cr_assert_str_eq(page.events[0].data, "{\"n\":1}");
	cr_assert_eq(page.events[1].seq, evs[2].seq);
	event_page_finish(&page);
	cr_assert_eq(storage_events_get(st, seqs, 0, &page), ERR_OK);
	cr_assert_eq(page.n, 0);
	event_page_finish(&page);
	for (size_t i = 0; i < 3; i++)
		event_finish(&evs[i]);
}

Test(storage, retention_takes_the_deliveries_settled_for_good)
{
	struct event evs[3];
	char call_a[ID_LEN + 1];
	make_id(call_a, 94);
	for (unsigned i = 0; i < 3; i++)
		make_event(&evs[i], i + 1, "call.ringing", call_a, i + 1, "{}");
	queue_events(evs, 3);
	struct delivery d;
	cr_assert_eq(claim("u", 100, &d), evs[0].seq);
	settle(&d, DELIVERY_DEAD, 0, "u", "HTTP 500", 100);
	cr_assert_eq(claim("u", 100, &d), evs[1].seq, "the next after a dead one");
	settle(&d, DELIVERY_STOPPED, 0, "u", "HTTP 410", 100);

	int64_t before = evs[2].at + 1;
	cr_assert_eq(purge(false, evs[0].at, 100), 0, "nothing that young");
	cr_assert_eq(purge(false, before, 100), 2, "the dead and the stopped one");
	struct delivery_status ds;
	cr_assert_eq(storage_delivery_status(st, "u", &ds), ERR_OK);
	cr_assert_eq(ds.dead, 0);
	cr_assert_eq(ds.stopped, 0);
	cr_assert_eq(ds.backlog, 1, "a pending delivery stays");
	for (size_t i = 0; i < 3; i++)
		event_finish(&evs[i]);
}

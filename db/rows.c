/* The column mapping of db/rows.h: records to values and back, with every value checked
 * against what the model can hold, since a database may hold rows this build did not write
 * (an enum added by a newer version, a text longer than its bound). */
#include "rows.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

/* ---- writing ---- */

static struct db_value v_int(int64_t i)
{
	return (struct db_value){.type = DB_INT, .i = i};
}

/* "" is the model's "not set": NULL, like an unset time. */
static struct db_value v_text(const char *s)
{
	if (!s || !*s)
		return (struct db_value){.type = DB_NULL};
	return (struct db_value){.type = DB_TEXT, .p = s, .len = strlen(s)};
}

static struct db_value v_time(int64_t t)
{
	return t ? v_int(t) : (struct db_value){.type = DB_NULL};
}

static struct db_value v_flag(bool b)
{
	return v_int(b ? 1 : 0);
}

/* An enum's name; none for the value that means "not set". A value without a name is a caller
 * bug, refused rather than stored. */
static bool v_name(struct db_value *out, const char *name, bool none)
{
	*out = v_text(none ? NULL : name);
	return none || name;
}

bool rows_call_values(const struct call *c, struct db_value out[CC_COUNT])
{
	bool ok = v_name(&out[CC_KIND], call_kind_name(c->kind), false) &&
		  v_name(&out[CC_STATUS], call_status_name(c->status), false) &&
		  v_name(&out[CC_OUTCOME], call_outcome_name(c->outcome),
			 c->outcome == OUTCOME_NONE) &&
		  v_name(&out[CC_END_CAUSE], end_cause_name(c->end_cause),
			 c->end_cause == CAUSE_NONE);
	out[CC_ID] = v_text(c->id);
	out[CC_ROOM] = v_text(c->room);
	out[CC_CALLER] = v_text(c->caller);
	out[CC_CHAT_ID] = v_text(c->chat_id);
	out[CC_METADATA] = v_text(c->metadata);
	out[CC_CREATED_AT] = v_int(c->created_at);
	out[CC_ANSWERED_AT] = v_time(c->answered_at);
	out[CC_ENDED_AT] = v_time(c->ended_at);
	out[CC_ROOM_END_REASON] = v_text(c->room_end_reason);
	out[CC_ROOM_FINISHED_AT] = v_time(c->room_finished_at);
	out[CC_RING_TIMEOUT_S] = v_int(c->ring_timeout_s);
	out[CC_RING_DEADLINE] = v_time(c->ring_deadline);
	out[CC_JOIN_DEADLINE] = v_time(c->join_deadline);
	out[CC_NEXT_DEADLINE] = v_time(c->next_deadline);
	out[CC_VERSION] = v_int(c->version);
	return ok && c->metadata;
}

bool rows_member_values(const struct member *m, struct db_value out[MEMBER_COUNT])
{
	bool ok = v_name(&out[1], member_role_name(m->role), false) &&
		  v_name(&out[2], invite_state_name(m->invite), false);
	out[0] = v_text(m->user);
	out[3] = v_text(m->name);
	out[4] = v_flag(m->in_room);
	out[5] = v_flag(m->left);
	out[6] = v_time(m->responded_at);
	out[7] = v_time(m->token_minted_at);
	out[8] = v_time(m->first_joined_at);
	out[9] = v_time(m->last_left_at);
	return ok;
}

void rows_participant_values(const struct participant *p, struct db_value out[PARTICIPANT_COUNT])
{
	out[0] = v_text(p->sid);
	out[1] = v_text(p->user);
	out[2] = v_time(p->joined_at);
	out[3] = v_time(p->left_at);
	out[4] = v_text(p->disconnect_reason);
	out[5] = v_flag(p->aborted);
	out[6] = v_flag(p->left_inferred);
	out[7] = v_flag(p->observer);
	out[8] = v_time(p->screen_share_at);
	out[9] = v_time(p->screen_share_ended_at);
}

void rows_event_values(const struct event *ev, struct db_value out[EVENT_COUNT])
{
	out[0] = v_text(ev->id);
	out[1] = v_text(ev->type);
	out[2] = v_int(ev->at);
	out[3] = v_text(ev->call_id);
	out[4] = v_time(ev->call_version);
	out[5] = v_text(ev->data && *ev->data ? ev->data : "{}");
	out[6] = v_text(change_source_name(ev->cause));
	out[7] = v_text(ev->cause_ref);
}

bool rows_member_unchanged(const struct call *c, const struct call *loaded, size_t i)
{
	return loaded && i < loaded->n_members &&
	       memcmp(&c->members[i], &loaded->members[i], sizeof c->members[i]) == 0;
}

static bool value_equal(const struct db_value *a, const struct db_value *b)
{
	if (a->type != b->type)
		return false;
	if (a->type == DB_INT)
		return a->i == b->i;
	return a->type == DB_NULL || (a->len == b->len && memcmp(a->p, b->p, a->len) == 0);
}

bool rows_call_only_unindexed_changed(const struct call *c, const struct call *loaded)
{
	static const bool unindexed[CC_COUNT] = {
		[CC_ANSWERED_AT] = true,    [CC_ENDED_AT] = true,	  [CC_END_CAUSE] = true,
		[CC_ROOM_END_REASON] = true, [CC_ROOM_FINISHED_AT] = true, [CC_RING_DEADLINE] = true,
		[CC_JOIN_DEADLINE] = true,   [CC_VERSION] = true,
	};
	struct db_value now[CC_COUNT], before[CC_COUNT];
	if (!loaded || !rows_call_values(c, now) || !rows_call_values(loaded, before))
		return false;
	for (size_t i = 0; i < CC_COUNT; i++)
		if (!unindexed[i] && !value_equal(&now[i], &before[i]))
			return false;
	return true;
}

bool rows_session_unchanged(const struct call *c, const struct call *loaded, size_t i)
{
	const struct participant *p = &c->participants[i];
	for (size_t k = 0; loaded && k < loaded->n_participants; k++)
		if (strcmp(loaded->participants[k].sid, p->sid) == 0)
			return memcmp(p, &loaded->participants[k], sizeof *p) == 0;
	return false;
}

/* -1 is "no filter", a NULL parameter; any other value must have a name (OUTCOME_NONE has
 * none: an unended call is found by status). */
static bool enum_filter(int v, const char *name, struct db_value *out)
{
	if (v != -1 && !name)
		return false;
	*out = v_text(v == -1 ? NULL : name);
	return true;
}

bool rows_list_values(const struct call_filter *f, struct db_value out[LIST_PARAM_COUNT],
		      size_t *ret_n, enum list_driver *ret_driver)
{
	if (!enum_filter(f->status, call_status_name((enum call_status)f->status), &out[3]) ||
	    !enum_filter(f->outcome, call_outcome_name((enum call_outcome)f->outcome), &out[4]) ||
	    !enum_filter(f->kind, call_kind_name((enum call_kind)f->kind), &out[5]))
		return false;
	/* One exclusive upper bound from the cursor and until: (until, "") sorts before every
	 * row created at until, so it means created_at < until. The "" is bound as a text, not
	 * a NULL, which would make the row comparison false. */
	int64_t upper_at = INT64_MAX;
	const char *upper_id = "";
	if (f->after_id[0]) {
		upper_at = f->after_created_at;
		upper_id = f->after_id;
	}
	if (f->until && f->until <= upper_at) {
		upper_at = f->until;
		upper_id = "";
	}
	out[0] = v_int(upper_at);
	out[1] = (struct db_value){.type = DB_TEXT, .p = upper_id, .len = strlen(upper_id)};
	out[2] = v_int(f->since ? f->since : INT64_MIN);
	out[6] = v_text(f->chat_id);
	out[7] = v_int(f->limit + 1);
	*ret_n = 8;
	if (f->user[0])
		out[(*ret_n)++] = v_text(f->user);
	*ret_driver = f->user[0]		? LIST_BY_USER
		      : f->chat_id[0]		? LIST_BY_CHAT
		      : f->outcome != -1	? LIST_BY_OUTCOME
		      : f->status != -1		? LIST_BY_STATUS
						: LIST_BY_ALL;
	return true;
}

/* ---- reading ---- */

/* A row being read, with a sticky "every value fit the model" flag. */
struct reader {
	const struct db_value *in;
	bool ok;
};

/* NULL reads as "". */
static void r_text(struct reader *r, int i, char *buf, size_t cap)
{
	const struct db_value *v = &r->in[i];
	size_t n = v->type == DB_TEXT ? v->len : 0;
	if ((v->type != DB_TEXT && v->type != DB_NULL) || n >= cap || (n && memchr(v->p, 0, n))) {
		r->ok = false;
		n = 0;
	}
	if (n)
		memcpy(buf, v->p, n);
	buf[n] = '\0';
}

/* NULL reads as 0. PostgreSQL hands integers over as decimal text. */
static int64_t r_int(struct reader *r, int i)
{
	const struct db_value *v = &r->in[i];
	if (v->type == DB_INT)
		return v->i;
	if (v->type == DB_NULL)
		return 0;
	if (v->type != DB_TEXT || v->len == 0 || v->len > 20) {
		r->ok = false;
		return 0;
	}
	char buf[24], *end;
	memcpy(buf, v->p, v->len);
	buf[v->len] = '\0';
	long long n = strtoll(buf, &end, 10);
	if (*end)
		r->ok = false;
	return *end ? 0 : n;
}

/* SQLite stores flags as 0/1; PostgreSQL booleans read back as "t"/"f". */
static bool r_flag(struct reader *r, int i)
{
	const struct db_value *v = &r->in[i];
	if (v->type == DB_TEXT && v->len == 1 && (v->p[0] == 't' || v->p[0] == 'f'))
		return v->p[0] == 't';
	return r_int(r, i) != 0;
}

/* parse() of the stored name; NULL reads as if_null, or is refused when if_null < 0. */
static int r_enum(struct reader *r, int i, int (*parse)(const char *), int if_null)
{
	char name[64];
	r_text(r, i, name, sizeof name);
	int v = r->in[i].type == DB_NULL ? if_null : parse(name);
	if (v < 0)
		r->ok = false;
	return v < 0 ? 0 : v;
}

/* A malloc'd copy of a text column; NULL and non-text are refused. */
static enum err r_dup(struct reader *r, int i, char **ret)
{
	const struct db_value *v = &r->in[i];
	if (v->type != DB_TEXT) {
		r->ok = false;
		*ret = NULL;
		return ERR_OK;
	}
	*ret = malloc(v->len + 1);
	if (!*ret)
		return ERR_NOMEM;
	memcpy(*ret, v->p, v->len);
	(*ret)[v->len] = '\0';
	return ERR_OK;
}

static enum err done(const struct reader *r)
{
	return r->ok ? ERR_OK : ERR_INTERNAL;
}

enum err rows_read_call(const struct db_value in[CC_COUNT], struct call *c)
{
	struct reader r = {in, true};
	r_text(&r, CC_ID, c->id, sizeof c->id);
	r_text(&r, CC_ROOM, c->room, sizeof c->room);
	c->kind = (enum call_kind)r_enum(&r, CC_KIND, call_kind_parse, -1);
	c->status = (enum call_status)r_enum(&r, CC_STATUS, call_status_parse, -1);
	c->outcome = (enum call_outcome)r_enum(&r, CC_OUTCOME, call_outcome_parse, OUTCOME_NONE);
	r_text(&r, CC_CALLER, c->caller, sizeof c->caller);
	r_text(&r, CC_CHAT_ID, c->chat_id, sizeof c->chat_id);
	c->created_at = r_int(&r, CC_CREATED_AT);
	c->answered_at = r_int(&r, CC_ANSWERED_AT);
	c->ended_at = r_int(&r, CC_ENDED_AT);
	c->end_cause = (enum end_cause)r_enum(&r, CC_END_CAUSE, end_cause_parse, CAUSE_NONE);
	r_text(&r, CC_ROOM_END_REASON, c->room_end_reason, sizeof c->room_end_reason);
	c->room_finished_at = r_int(&r, CC_ROOM_FINISHED_AT);
	c->ring_timeout_s = (int)r_int(&r, CC_RING_TIMEOUT_S);
	c->ring_deadline = r_int(&r, CC_RING_DEADLINE);
	c->join_deadline = r_int(&r, CC_JOIN_DEADLINE);
	c->next_deadline = r_int(&r, CC_NEXT_DEADLINE);
	c->version = r_int(&r, CC_VERSION);
	char *metadata = NULL;
	enum err e = r_dup(&r, CC_METADATA, &metadata);
	if (e == ERR_OK && metadata) {
		free(c->metadata);
		c->metadata = metadata;
	}
	return e == ERR_OK ? done(&r) : e;
}

enum err rows_read_member(const struct db_value in[MEMBER_COUNT], struct member *m)
{
	struct reader r = {in, true};
	r_text(&r, 0, m->user, sizeof m->user);
	m->role = (enum member_role)r_enum(&r, 1, member_role_parse, -1);
	m->invite = (enum invite_state)r_enum(&r, 2, invite_state_parse, -1);
	r_text(&r, 3, m->name, sizeof m->name);
	m->in_room = r_flag(&r, 4);
	m->left = r_flag(&r, 5);
	m->responded_at = r_int(&r, 6);
	m->token_minted_at = r_int(&r, 7);
	m->first_joined_at = r_int(&r, 8);
	m->last_left_at = r_int(&r, 9);
	return done(&r);
}

enum err rows_read_participant(const struct db_value in[PARTICIPANT_COUNT], struct participant *p)
{
	struct reader r = {in, true};
	r_text(&r, 0, p->sid, sizeof p->sid);
	r_text(&r, 1, p->user, sizeof p->user);
	p->joined_at = r_int(&r, 2);
	p->left_at = r_int(&r, 3);
	r_text(&r, 4, p->disconnect_reason, sizeof p->disconnect_reason);
	p->aborted = r_flag(&r, 5);
	p->left_inferred = r_flag(&r, 6);
	p->observer = r_flag(&r, 7);
	p->screen_share_at = r_int(&r, 8);
	p->screen_share_ended_at = r_int(&r, 9);
	return done(&r);
}

enum err rows_read_event(const struct db_value in[EVENT_COUNT + 1], struct event *ev)
{
	struct reader r = {in, true};
	ev->seq = r_int(&r, 0);
	r_text(&r, 1, ev->id, sizeof ev->id);
	r_text(&r, 2, ev->type, sizeof ev->type);
	ev->at = r_int(&r, 3);
	r_text(&r, 4, ev->call_id, sizeof ev->call_id);
	ev->call_version = r_int(&r, 5);
	ev->cause = (enum change_source)r_enum(&r, 7, change_source_parse, CHANGE_NONE);
	r_text(&r, 8, ev->cause_ref, sizeof ev->cause_ref);
	enum err e = r_dup(&r, 6, &ev->data);
	return e == ERR_OK ? done(&r) : e;
}

enum err rows_read_audit(const struct db_value in[AUDIT_COUNT], struct audit_entry *a)
{
	struct reader r = {in, true};
	a->webhook = r_int(&r, 0) != 0;
	a->seq = r_int(&r, 1);
	r_text(&r, 2, a->id, sizeof a->id);
	r_text(&r, 3, a->type, sizeof a->type);
	a->at = r_int(&r, 4);
	a->call_version = r_int(&r, 5);
	a->cause = (enum change_source)r_enum(&r, 6, change_source_parse, CHANGE_NONE);
	r_text(&r, 7, a->cause_ref, sizeof a->cause_ref);
	enum err e = r_dup(&r, 8, &a->body);
	return e == ERR_OK ? done(&r) : e;
}

enum err rows_read_view(const struct db_value in[VIEW_COUNT], struct call_view *v)
{
	struct reader r = {in, true};
	r_text(&r, 0, v->id, sizeof v->id);
	v->created_at = r_int(&r, 1);
	v->next_deadline = r_int(&r, 2);
	enum err e = r_dup(&r, 3, &v->json);
	return e == ERR_OK ? done(&r) : e;
}

enum err rows_read_idempotency(const struct db_value in[3], struct idempotency *rec)
{
	struct reader r = {in, true};
	r_text(&r, 0, rec->call_id, sizeof rec->call_id);
	if (in[1].type != DB_BLOB || in[1].len != sizeof rec->request_hash)
		r.ok = false;
	else
		memcpy(rec->request_hash, in[1].p, sizeof rec->request_hash);
	rec->created_at = r_int(&r, 2);
	return done(&r);
}

enum err rows_read_access(const struct db_value in[7], struct call_access *a)
{
	struct reader r = {in, true};
	r_text(&r, 0, a->room, sizeof a->room);
	a->kind = (enum call_kind)r_enum(&r, 1, call_kind_parse, -1);
	a->status = (enum call_status)r_enum(&r, 2, call_status_parse, -1);
	a->next_deadline = r_int(&r, 3);
	a->member = r_flag(&r, 4);
	if (a->member) {
		a->invite = (enum invite_state)r_enum(&r, 5, invite_state_parse, -1);
		r_text(&r, 6, a->name, sizeof a->name);
	}
	return done(&r);
}

enum err rows_read_presence(const struct db_value in[6], struct presence_record *rec)
{
	struct reader r = {in, true};
	rec->status = in[0].type == DB_NULL ? -1 : (int)r_int(&r, 0);
	rec->status_since = r_int(&r, 1);
	r_text(&r, 2, rec->open_call_id, sizeof rec->open_call_id);
	rec->open_since = r_int(&r, 3);
	rec->open_newest = r_int(&r, 4);
	rec->last_left_at = r_int(&r, 5);
	return done(&r);
}

enum err rows_read_stats(const struct db_value in[STATS_COUNT], struct call_stats *ret)
{
	struct reader r = {in, true};
	struct call_stats st = {.calls = r_int(&r, 0)};
	for (int o = OUTCOME_COMPLETED; o <= OUTCOME_FAILED; o++)
		st.by_outcome[o] = r_int(&r, o);
	st.ended = r_int(&r, 6);
	st.answered = r_int(&r, 7);
	st.duration_sum_ms = r_int(&r, 8);
	st.accepted = r_int(&r, 9);
	st.joined_in_time = r_int(&r, 10);
	st.joins = r_int(&r, 11);
	st.join_p50_ms = r_int(&r, 12);
	st.join_p95_ms = r_int(&r, 13);
	enum err e = done(&r);
	if (e == ERR_OK)
		*ret = st;
	return e;
}

enum err rows_read_due(const struct db_value in[2], struct due_call *d)
{
	struct reader r = {in, true};
	r_text(&r, 0, d->id, sizeof d->id);
	d->deadline = r_int(&r, 1);
	return done(&r);
}

enum err rows_read_seq(const struct db_value in[1], int64_t *ret)
{
	struct reader r = {in, true};
	*ret = r_int(&r, 0);
	return done(&r);
}

enum err rows_read_delivery(const struct db_value in[4], struct delivery *d)
{
	struct reader r = {in, true};
	d->seq = r_int(&r, 0);
	int64_t attempts = r_int(&r, 1);
	d->first_attempt_at = r_int(&r, 2);
	r_text(&r, 3, d->order_key, sizeof d->order_key);
	if (attempts < 0 || attempts > INT_MAX)
		r.ok = false;
	d->attempts = r.ok ? (int)attempts : 0;
	return done(&r);
}

enum err rows_read_delivery_status(const struct db_value in[7], struct delivery_status *ds)
{
	struct reader r = {in, true};
	ds->backlog = r_int(&r, 0);
	ds->oldest_at = r_int(&r, 1);
	ds->dead = r_int(&r, 2);
	ds->stopped = r_int(&r, 3);
	ds->last_error_seq = r_int(&r, 4);
	ds->last_error_at = r_int(&r, 5);
	r_text(&r, 6, ds->last_error, sizeof ds->last_error);
	return done(&r);
}

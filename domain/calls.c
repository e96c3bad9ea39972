/* The calls service: each action loads the call inside a storage transaction, settles its
 * expired timers, applies the state machine, and writes the call together with the feed events
 * of both changes, so a 2xx always means the change and its events are durable together.
 * Domain refusals (403/404/409) are carried beside the transaction's own result so that timer
 * settlements found on the way still commit. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "calls.h"
#include "calls_internal.h"
#include "ids.h"
#include "log.h"
#include "metrics.h"

#define IDEMPOTENCY_WINDOW_MS (24LL * 3600 * 1000)
#define ROOM_PREFIX "call_"
#define DUE_BATCH 256

void call_grant_finish(struct call_grant *g)
{
	call_freep(&g->call);
	free(g->call_json);
	g->call_json = NULL;
}

static struct fsm_timeouts timeouts_of(const struct calls *cs)
{
	return (struct fsm_timeouts){.join_timeout_s = cs->cfg.join_timeout_s};
}

const struct change_cause calls_timer_cause = {.source = CHANGE_TIMER};

static enum err append_event(struct storage_tx *tx, struct call *c, const char *type,
			     const struct change_cause *cause, int64_t now, char *data)
{
	struct event ev = {.at = now, .call_version = ++c->version, .data = data};
	event_set_cause(&ev, cause);
	ids_uuidv7(now, ev.id);
	snprintf(ev.type, sizeof ev.type, "%s", type);
	memcpy(ev.call_id, c->id, sizeof ev.call_id);
	return storage_tx_event_append(tx, &ev);
}

enum err calls_record_change(struct storage_tx *tx, struct call *c, const struct fsm_events *fe,
			     const struct change_cause *cause, int64_t now, char **view)
{
	free(*view);
	*view = call_to_json_text(c);
	if (!*view)
		return ERR_NOMEM;
	enum err e = ERR_OK;
	for (size_t i = 0; i < fe->n && e == ERR_OK; i++)
		e = append_event(tx, c, fe->types[i], cause, now, *view);
	return e;
}

void calls_note_milestones(const struct call *before, const struct call *after,
			   struct call_milestones *ret)
{
	ret->ended = before->outcome == OUTCOME_NONE ? after->outcome : OUTCOME_NONE;
	ret->n_joined = 0;
	for (size_t i = 0; i < after->n_members && i < before->n_members; i++) {
		const struct member *was = &before->members[i], *is = &after->members[i];
		/* A member who joined without ever being minted a token has no time to join. */
		if (was->first_joined_at || !is->first_joined_at || !is->token_minted_at)
			continue;
		int64_t ms = is->first_joined_at - is->token_minted_at;
		ret->join_ms[ret->n_joined++] = ms > 0 ? ms : 0;
	}
}

void calls_count_milestones(const struct call_milestones *m)
{
	if (m->ended != OUTCOME_NONE)
		metrics_call_ended(m->ended);
	for (size_t i = 0; i < m->n_joined; i++)
		metrics_time_to_join(m->join_ms[i]);
}

/* --- actions on an existing call --- */

/* ACT_TICK settles the call's expired timers on the way to something else (an idempotent
 * replay); ACT_TIMER is the timer pass's own, and takes the call only while it is due and no
 * other instance holds it (storage.h rule 7). */
enum action { ACT_ACCEPT, ACT_DECLINE, ACT_LEAVE, ACT_END, ACT_TICK, ACT_TIMER };

struct action_job {
	const struct calls *cs;
	enum action act;
	const char *id;
	const char *user;
	const char *name;
	struct change_cause cause; /* of the action; its timers' changes are the timer's */
	int64_t now;
	enum err refusal;       /* the domain's answer, returned after the commit */
	const char *msg;
	struct call *call;      /* the call after the change, owned by the job */
	char *view;             /* its JSON when it changed, owned by the job */
	bool changed;
	struct call_milestones milestones;
};

static enum err apply_action(struct action_job *j, struct call *c, struct fsm_events *fe)
{
	struct fsm_timeouts t = timeouts_of(j->cs);
	switch (j->act) {
	case ACT_ACCEPT: {
		enum err e = call_fsm_accept(c, j->user, j->now, &t, fe, &j->msg);
		struct member *m = call_member(c, j->user);
		if (e == ERR_OK && j->name && *j->name && m)
			snprintf(m->name, sizeof m->name, "%s", j->name);
		return e;
	}
	case ACT_DECLINE:
		return call_fsm_decline(c, j->user, j->now, fe, &j->msg);
	case ACT_LEAVE:
		return call_fsm_leave(c, j->user, j->now, fe, &j->msg);
	case ACT_END:
		return call_fsm_end(c, j->user, j->now, fe, &j->msg);
	case ACT_TICK:
	case ACT_TIMER:
		return ERR_OK;
	}
	return ERR_INTERNAL;
}

static bool same_member_state(const struct call *a, const struct call *b)
{
	return memcmp(a->members, b->members, a->n_members * sizeof a->members[0]) == 0;
}

static enum err action_tx(struct storage_tx *tx, void *arg)
{
	struct action_job *j = arg;
	struct call *c = NULL;
	struct call *loaded = NULL; /* as stored: the write skips what did not change */
	struct call *before = NULL; /* after the timers, before the action */
	struct fsm_timeouts t = timeouts_of(j->cs);
	struct fsm_events tick_ev = {0}, act_ev = {0};
	char *view = NULL; /* the call's JSON as of the last recorded change */
	bool changed = false;

	call_freep(&j->call);
	free(j->view);
	j->view = NULL;
	j->refusal = ERR_OK;
	j->msg = NULL;
	j->milestones = (struct call_milestones){0};
	enum err e = j->act == ACT_TIMER ? storage_tx_call_get_due(tx, j->id, j->now, &c)
					 : storage_tx_call_get(tx, j->id, &c);
	if (e == ERR_NOT_FOUND) {
		j->refusal = ERR_NOT_FOUND;
		j->msg = "no such call";
		return ERR_OK;
	}
	if (e != ERR_OK)
		return e;

	loaded = call_clone(c);
	if (!loaded) {
		e = ERR_NOMEM;
		goto out;
	}
	int64_t stored_deadline = c->next_deadline;
	call_fsm_tick(c, j->now, &t, &tick_ev);
	changed = tick_ev.n > 0;
	if (changed)
		e = calls_record_change(tx, c, &tick_ev, &calls_timer_cause, j->now, &view);
	if (e != ERR_OK)
		goto out;

	before = call_clone(c);
	if (!before) {
		e = ERR_NOMEM;
		goto out;
	}
	j->refusal = apply_action(j, c, &act_ev);
	/* Some accepted actions change no event-worthy state yet must persist (a name, a leave in
	 * a group call). */
	if (j->refusal == ERR_OK && (act_ev.n > 0 || !same_member_state(before, c))) {
		changed = true;
		e = calls_record_change(tx, c, &act_ev, &j->cause, j->now, &view);
	}
	if (e == ERR_OK && !changed && c->next_deadline != stored_deadline) {
		struct fsm_events none = {0};
		changed = true;
		e = calls_record_change(tx, c, &none, &j->cause, j->now, &view);
	}
	if (e == ERR_OK && changed)
		e = storage_tx_call_update(tx, c, loaded, view);
	if (e == ERR_OK)
		calls_note_milestones(loaded, c, &j->milestones);
out:
	call_free(loaded);
	call_free(before);
	if (e == ERR_OK) {
		j->call = c;
		j->view = view;
		j->changed = changed;
	} else {
		call_free(c);
		free(view);
	}
	return e;
}

/* ret_view may be NULL; otherwise it gets the call's JSON if the action changed it, else NULL. */
static enum err run_action(const struct calls *cs, struct action_job *j, struct call **ret_call,
			   char **ret_view, const char **ret_msg)
{
	j->cs = cs;
	j->now = clock_now_ms(&cs->clock);
	enum err e = storage_transact(cs->st, action_tx, j);
	if (e == ERR_OK)
		calls_count_milestones(&j->milestones);
	if (e == ERR_OK && j->refusal != ERR_OK) {
		e = j->refusal;
		*ret_msg = j->msg;
	}
	if (e == ERR_OK) {
		*ret_call = j->call;
		j->call = NULL;
		if (ret_view) {
			*ret_view = j->view;
			j->view = NULL;
		}
	}
	call_freep(&j->call);
	free(j->view);
	j->view = NULL;
	return e;
}

static enum err mint(const struct calls *cs, const char *room, enum call_kind kind,
		     const char *user, const char *name, int64_t now_ms, struct call_grant *g)
{
	struct token_request tr = {
		.identity = user,
		.name = name,
		.room = room,
		.kind = kind,
		.now_s = now_ms / 1000,
		.ttl_s = cs->cfg.token_ttl_s,
	};
	size_t len;
	enum err e = tokens_mint(cs->signer, &tr, g->token, &len);
	if (e != ERR_OK)
		return e;
	g->has_token = true;
	g->token_expires_at = (tr.now_s + tr.ttl_s) * 1000;
	return ERR_OK;
}

static enum err mint_for(const struct calls *cs, const struct call *c, const char *user,
			 const char *name, int64_t now_ms, struct call_grant *g)
{
	return mint(cs, c->room, c->kind, user, name, now_ms, g);
}

static const char *display_name(const struct member *m, const char *given)
{
	if (given && *given)
		return given;
	return m && *m->name ? m->name : NULL;
}

static struct change_cause api_cause(const char *request_id)
{
	return (struct change_cause){.source = CHANGE_API, .ref = request_id};
}

enum err calls_accept(const struct calls *cs, const char *request_id, const char *id,
		      const char *user, const char *name, struct call_grant *ret,
		      const char **ret_msg)
{
	struct action_job j = {.act = ACT_ACCEPT, .id = id, .user = user, .name = name,
			       .cause = api_cause(request_id)};
	struct call_grant g = {0};
	enum err e = run_action(cs, &j, &g.call, &g.call_json, ret_msg);
	if (e == ERR_OK)
		e = mint_for(cs, g.call, user, display_name(call_member_const(g.call, user), name),
			     j.now, &g);
	if (e != ERR_OK) {
		call_grant_finish(&g);
		return e;
	}
	*ret = g;
	return ERR_OK;
}

enum err calls_decline(const struct calls *cs, const char *request_id, const char *id,
		       const char *user, struct call **ret_call, const char **ret_msg)
{
	struct action_job j = {.act = ACT_DECLINE, .id = id, .user = user,
			       .cause = api_cause(request_id)};
	return run_action(cs, &j, ret_call, NULL, ret_msg);
}

enum err calls_leave(const struct calls *cs, const char *request_id, const char *id,
		     const char *user, struct call **ret_call, const char **ret_msg)
{
	struct action_job j = {.act = ACT_LEAVE, .id = id, .user = user,
			       .cause = api_cause(request_id)};
	return run_action(cs, &j, ret_call, NULL, ret_msg);
}

enum err calls_end(const struct calls *cs, const char *request_id, const char *id,
		   const char *user, struct call **ret_call, const char **ret_msg)
{
	struct action_job j = {.act = ACT_END, .id = id, .user = user,
			       .cause = api_cause(request_id)};
	return run_action(cs, &j, ret_call, NULL, ret_msg);
}

/* Reads see the stored call; a deadline that passed but was not yet settled by the timer
 * thread is settled on the copy, so no reader ever sees an expired call as live. */
static void settle_view(const struct calls *cs, struct call *c, int64_t now)
{
	if (c->next_deadline && now >= c->next_deadline) {
		struct fsm_timeouts t = timeouts_of(cs);
		struct fsm_events ignored = {0};
		call_fsm_tick(c, now, &t, &ignored);
	}
}

enum err calls_get_json(const struct calls *cs, const char *id, char **ret_json)
{
	struct call_view v = {0};
	enum err e = storage_call_view(cs->st, id, &v);
	if (e != ERR_OK)
		return e;
	if (!v.next_deadline || clock_now_ms(&cs->clock) < v.next_deadline) {
		*ret_json = v.json;
		return ERR_OK;
	}
	/* A timer is due and not settled yet: show the call as it will be. */
	call_view_finish(&v);
	struct call *c = NULL;
	e = calls_get(cs, id, &c);
	char *json = e == ERR_OK ? call_to_json_text(c) : NULL;
	call_free(c);
	if (e == ERR_OK && !json)
		e = ERR_NOMEM;
	if (e == ERR_OK)
		*ret_json = json;
	return e;
}

enum err calls_get(const struct calls *cs, const char *id, struct call **ret_call)
{
	struct call *c = NULL;
	enum err e = storage_call_get(cs->st, id, &c);
	if (e != ERR_OK)
		return e;
	settle_view(cs, c, clock_now_ms(&cs->clock));
	*ret_call = c;
	return ERR_OK;
}

enum err calls_audit(const struct calls *cs, const char *id, struct audit_trail *ret)
{
	struct audit_trail trail = {0};
	enum err e = storage_call_audit(cs->st, id, &trail);
	if (e != ERR_OK)
		return e;
	/* Every call has its call.ringing event from its first write on. */
	if (trail.n == 0)
		return ERR_NOT_FOUND;
	*ret = trail;
	return ERR_OK;
}

/* Who may have a token: a member of a call that is not ended whose invite is still open. */
static enum err token_refusal(bool member, enum call_status status, enum invite_state invite,
			      const char **ret_msg)
{
	if (!member) {
		*ret_msg = "user is not a member of this call";
		return ERR_FORBIDDEN;
	}
	if (status == CALL_ENDED) {
		*ret_msg = "the call has ended";
		return ERR_CONFLICT;
	}
	if (invite == INVITE_DECLINED || invite == INVITE_MISSED) {
		*ret_msg = "the invite is no longer open";
		return ERR_CONFLICT;
	}
	return ERR_OK;
}

/* A call whose timer is due but not yet settled: decide on the settled view of it. */
static enum err token_after_deadline(const struct calls *cs, const char *id, const char *user,
				     const char *name, int64_t now, struct call_grant *g,
				     const char **ret_msg)
{
	struct call *c = NULL;
	enum err e = storage_call_get(cs->st, id, &c);
	if (e != ERR_OK)
		return e;
	settle_view(cs, c, now);
	const struct member *m = call_member_const(c, user);
	e = token_refusal(m != NULL, c->status, m ? m->invite : INVITE_PENDING, ret_msg);
	if (e == ERR_OK)
		e = mint_for(cs, c, user, display_name(m, name), now, g);
	call_free(c);
	return e;
}

/* The hot path: one indexed read of what the decision needs, then one HMAC. */
enum err calls_token(const struct calls *cs, const char *id, const char *user, const char *name,
		     struct call_grant *ret, const char **ret_msg)
{
	int64_t now = clock_now_ms(&cs->clock);
	struct call_access a;
	struct call_grant g = {0};
	enum err e = storage_call_access(cs->st, id, user, &a);
	if (e == ERR_NOT_FOUND)
		*ret_msg = "no such call";
	if (e != ERR_OK)
		return e;
	if (a.next_deadline && now >= a.next_deadline) {
		e = token_after_deadline(cs, id, user, name, now, &g, ret_msg);
	} else {
		e = token_refusal(a.member, a.status, a.invite, ret_msg);
		if (e == ERR_OK)
			e = mint(cs, a.room, a.kind, user,
				 name && *name ? name : (*a.name ? a.name : NULL), now, &g);
	}
	if (e == ERR_OK)
		*ret = g;
	return e;
}

enum err calls_fire_due(const struct calls *cs, bool (*skip)(void *arg, const char *call_id),
			void *skip_arg, struct timer_pass *ret)
{
	struct due_call due[DUE_BATCH];
	struct timer_pass pass = {0};
	int64_t now = clock_now_ms(&cs->clock);
	const struct due_call *after = NULL;
	struct due_call last;
	size_t n = 0;
	enum err e;

	do {
		e = storage_calls_due(cs->st, now, after, DUE_BATCH, due, &n);
		for (size_t i = 0; e == ERR_OK && i < n; i++) {
			if (skip && skip(skip_arg, due[i].id))
				continue;
			struct action_job j = {.act = ACT_TIMER, .id = due[i].id,
					       .cause = calls_timer_cause};
			struct call *c = NULL;
			const char *msg = NULL;
			enum err one = run_action(cs, &j, &c, NULL, &msg);
			call_free(c);
			pass.fired += j.changed;
			/* Settled meanwhile by another instance, or gone (retention), is not a
			 * failure; a storage outage ends the pass, since every other call would fail
			 * the same way. */
			if (one == ERR_UNAVAILABLE)
				e = one;
			else if (one != ERR_OK && one != ERR_NOT_FOUND) {
				if (pass.failed < TIMER_FAILURES_KEPT) {
					memcpy(pass.failures[pass.failed].call_id, due[i].id, ID_LEN + 1);
					pass.failures[pass.failed].e = one;
				}
				pass.failed++;
			}
		}
		if (n) {
			last = due[n - 1];
			after = &last;
		}
	} while (e == ERR_OK && n == DUE_BATCH);
	*ret = pass;
	return e;
}

/* --- creation --- */

/* The new call and its JSON are made before the transaction: they depend only on the
 * request, and the single writer thread should spend its time writing. */
struct create_job {
	const struct calls *cs;
	const struct call_create_req *req;
	int64_t now;
	struct call *fresh;     /* the call to insert, version 1 */
	char *fresh_view;
	enum err refusal;
	const char *msg;
	struct call *replayed;  /* an earlier creation with the same Idempotency-Key */
};

static enum err build_call(const struct calls *cs, const struct call_create_req *req, int64_t now,
			   struct call **ret_call)
{
	struct call *c = call_new();
	if (!c)
		return ERR_NOMEM;
	if (req->metadata && !call_set_metadata(c, req->metadata)) {
		call_free(c);
		return ERR_NOMEM;
	}
	ids_uuidv7(now, c->id);
	snprintf(c->room, sizeof c->room, ROOM_PREFIX "%s", c->id);
	c->kind = req->kind;
	c->status = CALL_RINGING;
	snprintf(c->caller, sizeof c->caller, "%s", req->caller);
	snprintf(c->chat_id, sizeof c->chat_id, "%s", req->chat_id);
	c->created_at = now;
	c->ring_timeout_s = req->ring_timeout_s ? req->ring_timeout_s : cs->cfg.ring_timeout_s;
	c->ring_deadline = now + (int64_t)c->ring_timeout_s * 1000;

	struct member *caller = &c->members[0];
	snprintf(caller->user, sizeof caller->user, "%s", req->caller);
	snprintf(caller->name, sizeof caller->name, "%s", req->caller_name);
	caller->role = MEMBER_CALLER;
	caller->invite = INVITE_ACCEPTED;
	caller->responded_at = now;
	caller->token_minted_at = now;
	for (size_t i = 0; i < req->n_callees; i++) {
		struct member *m = &c->members[i + 1];
		snprintf(m->user, sizeof m->user, "%s", req->callees[i]);
		m->role = MEMBER_CALLEE;
		m->invite = INVITE_PENDING;
	}
	c->n_members = req->n_callees + 1;
	c->version = 1; /* its call.ringing event */
	call_fsm_arm(c, now);
	*ret_call = c;
	return ERR_OK;
}

bool calls_room_call_id(const char *room, char ret_id[ID_LEN + 1])
{
	size_t prefix = sizeof ROOM_PREFIX - 1;
	if (strncmp(room, ROOM_PREFIX, prefix) != 0 || strlen(room + prefix) != ID_LEN)
		return false;
	memcpy(ret_id, room + prefix, ID_LEN + 1);
	return true;
}

/* A repeat of an earlier creation: the same call, settled if its timers expired. */
static enum err replay_tx(struct storage_tx *tx, struct create_job *j, const char *call_id)
{
	struct action_job tick = {.cs = j->cs, .act = ACT_TICK, .id = call_id, .now = j->now,
				  .cause = calls_timer_cause};
	enum err e = action_tx(tx, &tick);
	if (e == ERR_OK && tick.refusal != ERR_OK)
		e = ERR_INTERNAL; /* an idempotency record whose call is gone */
	if (e == ERR_OK) {
		j->replayed = tick.call;
		tick.call = NULL;
	}
	call_free(tick.call);
	free(tick.view);
	return e;
}

static enum err create_tx(struct storage_tx *tx, void *arg)
{
	struct create_job *j = arg;
	const struct call_create_req *req = j->req;
	struct call *c = j->fresh;
	enum err e;

	call_freep(&j->replayed);
	j->refusal = ERR_OK;
	/* The key is claimed before anything is written: two creations with one key, on any
	 * instances, make one call, and the second replays it. */
	if (req->idempotency_key) {
		struct idempotency mine = {.created_at = j->now}, live;
		memcpy(mine.call_id, c->id, sizeof mine.call_id);
		memcpy(mine.request_hash, req->request_hash, sizeof mine.request_hash);
		e = storage_tx_idempotency_claim(tx, req->caller, req->idempotency_key, &mine,
						 j->now - IDEMPOTENCY_WINDOW_MS, &live);
		if (e == ERR_CONFLICT) {
			if (memcmp(live.request_hash, req->request_hash, sizeof live.request_hash)) {
				j->refusal = ERR_CONFLICT;
				j->msg = "Idempotency-Key was already used with a different request";
				return ERR_OK;
			}
			return replay_tx(tx, j, live.call_id);
		}
		if (e != ERR_OK)
			return e;
	}

	struct event ev = {.at = j->now, .call_version = c->version, .data = j->fresh_view};
	struct change_cause cause = api_cause(req->request_id);
	event_set_cause(&ev, &cause);
	ids_uuidv7(j->now, ev.id);
	snprintf(ev.type, sizeof ev.type, "call.ringing");
	memcpy(ev.call_id, c->id, sizeof ev.call_id);
	e = storage_tx_event_append(tx, &ev);
	if (e == ERR_OK)
		e = storage_tx_call_insert(tx, c, j->fresh_view);
	return e;
}

static bool valid_ring_timeout(int s)
{
	return s == 0 || (s >= 5 && s <= 300);
}

enum err calls_create(const struct calls *cs, const struct call_create_req *req,
		      struct call_grant *ret, const char **ret_msg)
{
	if (!req->n_callees || req->n_callees > CALL_MAX_CALLEES) {
		*ret_msg = "callees: must hold 1 to 32 user ids";
		return ERR_INVALID;
	}
	if (!valid_ring_timeout(req->ring_timeout_s)) {
		*ret_msg = "ring_timeout_s: must be from 5 to 300";
		return ERR_INVALID;
	}
	struct create_job j = {.cs = cs, .req = req, .now = clock_now_ms(&cs->clock)};
	enum err e = build_call(cs, req, j.now, &j.fresh);
	if (e == ERR_OK) {
		j.fresh_view = call_to_json_text(j.fresh);
		e = j.fresh_view ? ERR_OK : ERR_NOMEM;
	}
	if (e == ERR_OK)
		e = storage_transact(cs->st, create_tx, &j);
	if (e == ERR_OK && j.refusal != ERR_OK) {
		*ret_msg = j.msg;
		e = j.refusal;
	}
	struct call_grant g = {0};
	if (e == ERR_OK && j.replayed) {
		g = (struct call_grant){.call = j.replayed, .replayed = true};
		j.replayed = NULL;
	} else if (e == ERR_OK) {
		g = (struct call_grant){.call = j.fresh, .call_json = j.fresh_view};
		j.fresh = NULL;
		j.fresh_view = NULL;
	}
	if (e == ERR_OK && g.call->status != CALL_ENDED) {
		const struct member *caller = &g.call->members[0];
		e = mint_for(cs, g.call, caller->user, display_name(caller, req->caller_name), j.now,
			     &g);
	}
	call_free(j.fresh);
	free(j.fresh_view);
	call_free(j.replayed);
	if (e != ERR_OK) {
		call_grant_finish(&g);
		return e;
	}
	*ret = g;
	return ERR_OK;
}

/* LiveKit webhooks applied to calls: one storage transaction stores the raw event under its id
 * (a duplicate delivery stops there), applies it to the call that owns the room, appends the
 * feed events of the change and of any presence it moved, and commits before the answer. */
#include <stdlib.h>
#include <string.h>

#include "calls_internal.h"
#include "presence.h"
#include "webhook.h"

struct room_job {
	const struct calls *cs;
	const struct webhook_event *we;
	const char *body;
	size_t body_len;
	int64_t now;
	bool duplicate;
	struct call_milestones milestones;
};

/* order[0..n) by users[order[i]], ascending; n is at most CALL_MAX_MEMBERS. */
static void sort_by_user(size_t *order, size_t n, const char *const *users)
{
	for (size_t i = 1; i < n; i++)
		for (size_t k = i; k > 0 && strcmp(users[order[k - 1]], users[order[k]]) > 0; k--) {
			size_t t = order[k];
			order[k] = order[k - 1];
			order[k - 1] = t;
		}
}

/* The user whose presence a webhook most likely moves, read with the call: the one member a
 * session event can move in or out of the room (call_fsm_room_event), NULL for other events. */
static const char *participant_user(const struct webhook_event *we)
{
	bool session = we->kind == WEBHOOK_PARTICIPANT_JOINED ||
		       we->kind == WEBHOOK_PARTICIPANT_LEFT ||
		       we->kind == WEBHOOK_PARTICIPANT_CONNECTION_ABORTED;
	return session && *we->participant.identity &&
			       webhook_participant_is_standard(&we->participant)
		       ? we->participant.identity
		       : NULL;
}

/* ahead, when ahead_user is not NULL, is that user's presence, read with the call. */
static enum err apply_to_call(struct room_job *j, struct storage_tx *tx, struct call *c,
			      const char *ahead_user, const struct presence_record *ahead)
{
	struct fsm_timeouts t = {.join_timeout_s = j->cs->cfg.join_timeout_s};
	struct change_cause cause = {.source = CHANGE_WEBHOOK, .ref = j->we->id};
	struct fsm_events tick_ev = {0}, ev = {0};
	struct room_presence rp = {0};
	char *view = NULL;
	struct call *loaded = call_clone(c);
	if (!loaded)
		return ERR_NOMEM;
	/* A deadline that passed is settled first, as every read already shows it (an expired
	 * call is never shown live), and as the API's actions do: a late webhook then only
	 * fills in session times, it cannot bring a missed or failed call back. */
	call_fsm_tick(c, j->now, &t, &tick_ev);
	enum err e = ERR_OK;
	if (tick_ev.n > 0)
		e = calls_record_change(tx, c, &tick_ev, &calls_timer_cause, j->now, &view);
	if (e == ERR_OK)
		e = call_fsm_room_event(c, j->we, j->now, &t, &ev, &rp);
	if (e == ERR_OK)
		e = calls_record_change(tx, c, &ev, &cause, j->now, &view);
	if (e == ERR_OK)
		e = storage_tx_call_update(tx, c, loaded, view);
	if (e == ERR_OK)
		calls_note_milestones(loaded, c, &j->milestones);
	free(view);
	/* Presence of the members whose room state moved: their other calls read once, this
	 * call merged in as loaded and as changed. The reads hold each user (storage.h rule 5),
	 * so they go in the order of ids; the events go in the order of members. */
	struct presence_record others[CALL_MAX_MEMBERS];
	size_t order[CALL_MAX_MEMBERS];
	for (size_t i = 0; i < rp.n; i++)
		order[i] = i;
	sort_by_user(order, rp.n, rp.users);
	for (size_t k = 0; k < rp.n && e == ERR_OK; k++) {
		size_t i = order[k];
		if (ahead_user && strcmp(rp.users[i], ahead_user) == 0)
			others[i] = *ahead;
		else
			e = storage_tx_presence_get(tx, rp.users[i], c->id, &others[i]);
	}
	for (size_t i = 0; i < rp.n && e == ERR_OK; i++) {
		struct presence before, after;
		presence_with_call(rp.users[i], &others[i], loaded, &before);
		presence_with_call(rp.users[i], &others[i], c, &after);
		e = presence_tx_append_change(tx, &before, &after, &cause, j->now);
	}
	call_free(loaded);
	return e;
}

static enum err room_tx(struct storage_tx *tx, void *arg)
{
	struct room_job *j = arg;
	const struct webhook_event *we = j->we;
	struct call *c = NULL;
	char call_id[ID_LEN + 1];
	j->duplicate = false;
	j->milestones = (struct call_milestones){0};
	const char *user = participant_user(we);
	struct presence_record ahead;
	enum err e = ERR_NOT_FOUND;
	if (calls_room_call_id(we->room.name, call_id))
		e = user ? storage_tx_call_get_with_presence(tx, call_id, user, &c, &ahead)
			 : storage_tx_call_get(tx, call_id, &c);
	if (e != ERR_OK && e != ERR_NOT_FOUND)
		return e;

	struct webhook_record rec = {
		.id = we->id,
		.event = we->name,
		.room = we->room.name,
		.call_id = c ? c->id : "",
		.call_version = c ? c->version : 0,
		.created_at = we->created_at * 1000,
		.received_at = j->now,
		.body = j->body,
		.body_len = j->body_len,
	};
	e = storage_tx_webhook_insert(tx, &rec);
	if (e == ERR_CONFLICT) {
		j->duplicate = true;
		e = ERR_OK;
	} else if (e == ERR_OK && c && we->kind != WEBHOOK_IGNORED &&
		   we->kind != WEBHOOK_ROOM_STARTED) {
		e = apply_to_call(j, tx, c, user, &ahead);
	}
	call_free(c);
	return e;
}

enum err calls_apply_webhook(const struct calls *cs, const struct webhook_event *we,
			     const char *body, size_t body_len, bool *ret_duplicate)
{
	struct room_job j = {
		.cs = cs, .we = we, .body = body, .body_len = body_len,
		.now = clock_now_ms(&cs->clock),
	};
	enum err e = storage_transact(cs->st, room_tx, &j);
	if (e == ERR_OK)
		calls_count_milestones(&j.milestones);
	if (e == ERR_OK && ret_duplicate)
		*ret_duplicate = j.duplicate;
	return e;
}

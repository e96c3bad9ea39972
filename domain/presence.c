/* Presence composed from the chat-set status and the user's open LiveKit sessions, and the
 * presence.changed events of the feed. */
#include "presence.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ids.h"
#include "timefmt.h"

static const char *const status_names[] = {
	[PRESENCE_ONLINE] = "online",
	[PRESENCE_AWAY] = "away",
	[PRESENCE_OFFLINE] = "offline",
	[PRESENCE_IN_CALL] = "in_call",
};

const char *presence_status_name(enum presence_status s)
{
	return status_names[s];
}

int presence_status_parse_settable(const char *s)
{
	for (int i = PRESENCE_ONLINE; s && i <= PRESENCE_OFFLINE; i++)
		if (strcmp(status_names[i], s) == 0)
			return i;
	return -1;
}

void presence_compose(const char *user, const struct presence_record *rec, struct presence *ret)
{
	struct presence p = {.status = PRESENCE_OFFLINE};
	snprintf(p.user, sizeof p.user, "%s", user);
	if (*rec->open_call_id) {
		p.status = PRESENCE_IN_CALL;
		memcpy(p.call_id, rec->open_call_id, sizeof p.call_id);
		p.since = rec->open_since;
	} else {
		/* Back from a call, the chat status shows again from the moment they left. */
		if (rec->status >= 0)
			p.status = (enum presence_status)rec->status;
		p.since = rec->status_since > rec->last_left_at ? rec->status_since : rec->last_left_at;
	}
	*ret = p;
}

json_t *presence_to_json(const struct presence *p)
{
	char since[TIMEFMT_LEN + 1];
	if (p->since)
		timefmt_format(p->since, since);
	return json_pack("{s:s, s:s, s:o, s:o}", "user", p->user, "status",
			 presence_status_name(p->status), "call_id",
			 *p->call_id ? json_string(p->call_id) : json_null(), "since",
			 p->since ? json_string(since) : json_null());
}

char *presence_to_json_text(const struct presence *p)
{
	json_t *j = presence_to_json(p);
	char *text = j ? json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
	json_decref(j);
	return text;
}

/* Fold the sessions user has in c, a call held in memory, into a record of their other calls,
 * counting them as the storage query counts stored ones (joined, not aborted, not an
 * observer; the newest open session's call wins, the greater id on a tie). */
static void merge_call(struct presence_record *rec, const struct call *c, const char *user)
{
	int64_t newest = 0;
	for (size_t i = 0; i < c->n_participants; i++) {
		const struct participant *s = &c->participants[i];
		if (strcmp(s->user, user) != 0 || !s->joined_at || s->aborted || s->observer)
			continue;
		if (!s->left_at && s->joined_at > newest)
			newest = s->joined_at;
		if (s->left_at > rec->last_left_at)
			rec->last_left_at = s->left_at;
	}
	if (!newest || newest < rec->open_newest ||
	    (newest == rec->open_newest && strcmp(c->id, rec->open_call_id) < 0))
		return;
	int64_t since = newest;
	for (size_t i = 0; i < c->n_participants; i++) {
		const struct participant *s = &c->participants[i];
		if (strcmp(s->user, user) == 0 && s->joined_at && !s->aborted && !s->observer &&
		    (!s->left_at || s->left_at >= newest) && s->joined_at < since)
			since = s->joined_at;
	}
	memcpy(rec->open_call_id, c->id, sizeof rec->open_call_id);
	rec->open_newest = newest;
	rec->open_since = since;
}

void presence_with_call(const char *user, const struct presence_record *others,
			const struct call *c, struct presence *ret)
{
	struct presence_record rec = *others;
	if (call_member_const(c, user))
		merge_call(&rec, c, user);
	presence_compose(user, &rec, ret);
}

enum err presence_tx_append_change(struct storage_tx *tx, const struct presence *before,
				   const struct presence *after, const struct change_cause *cause,
				   int64_t now)
{
	if (after->status == before->status && strcmp(after->call_id, before->call_id) == 0)
		return ERR_OK;
	struct event ev = {.at = now};
	ev.data = presence_to_json_text(after);
	if (!ev.data)
		return ERR_NOMEM;
	ids_uuidv7(now, ev.id);
	event_set_cause(&ev, cause);
	snprintf(ev.type, sizeof ev.type, "presence.changed");
	enum err e = storage_tx_event_append(tx, &ev);
	free(ev.data);
	return e;
}

struct presence_job {
	const char *user;
	enum presence_status status;
	struct change_cause cause;
	int64_t now;
	struct presence result;
};

static enum err presence_set_tx(struct storage_tx *tx, void *arg)
{
	struct presence_job *j = arg;
	struct presence_record rec;
	struct presence before;
	enum err e = storage_tx_presence_get(tx, j->user, NULL, &rec);
	if (e != ERR_OK)
		return e;
	presence_compose(j->user, &rec, &before);
	/* Saying the same status again keeps the time it was first said. */
	if (rec.status != (int)j->status) {
		e = storage_tx_presence_set(tx, j->user, (int)j->status, j->now);
		rec.status = (int)j->status;
		rec.status_since = j->now;
	}
	presence_compose(j->user, &rec, &j->result);
	if (e == ERR_OK)
		e = presence_tx_append_change(tx, &before, &j->result, &j->cause, j->now);
	return e;
}

enum err presence_set(const struct calls *cs, const char *request_id, const char *user,
		      enum presence_status status, struct presence *ret)
{
	struct presence_job j = {.user = user, .status = status,
				 .cause = {.source = CHANGE_API, .ref = request_id},
				 .now = clock_now_ms(&cs->clock)};
	enum err e = storage_transact(cs->st, presence_set_tx, &j);
	if (e == ERR_OK)
		*ret = j.result;
	return e;
}

enum err presence_get(const struct calls *cs, const char *user, struct presence *ret)
{
	struct presence_record rec;
	enum err e = storage_presence_get(cs->st, user, &rec);
	if (e == ERR_OK)
		presence_compose(user, &rec, ret);
	return e;
}

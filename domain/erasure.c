/* Erasure of a user. The calls to rewrite are found through the user's member rows and
 * sessions (indexed by user), ERASE_BATCH to a transaction; presence events have no call and
 * no index by user, so the feed is read through, a page at a time, for them. */
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "calls.h"
#include "erasure.h"
#include "jsonutil.h"
#include "model.h"

#define ERASE_BATCH 16    /* calls to a transaction: a user in thousands of calls takes many */
#define FEED_PAGE 500     /* feed events read at once looking for presence events */
#define ERASE_TAG "erase:"

enum err erasure_pseudonym(const unsigned char *secret, size_t secret_len, const char *user,
			   char ret[ERASURE_PSEUDONYM_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";
	char message[sizeof ERASE_TAG + USER_ID_MAX];
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int mac_len = 0;
	int len = snprintf(message, sizeof message, ERASE_TAG "%s", user);
	if (len < 0 || (size_t)len >= sizeof message)
		return ERR_INVALID;
	if (!HMAC(EVP_sha256(), secret, (int)secret_len, (const unsigned char *)message,
		  (size_t)len, mac, &mac_len) ||
	    mac_len * 2 < ERASURE_HEX)
		return ERR_INTERNAL;
	char *out = ret + sizeof ERASURE_PREFIX - 1;
	memcpy(ret, ERASURE_PREFIX, sizeof ERASURE_PREFIX - 1);
	for (size_t i = 0; i < ERASURE_HEX / 2; i++) {
		out[2 * i] = hex[mac[i] >> 4];
		out[2 * i + 1] = hex[mac[i] & 0xf];
	}
	out[ERASURE_HEX] = '\0';
	return ERR_OK;
}

static bool is_user(const json_t *v, const char *user)
{
	return json_is_string(v) && strcmp(json_string_value(v), user) == 0;
}

static bool set_pseudonym(json_t *v, const char *pseudonym)
{
	if (!json_is_string(v) || !*json_string_value(v) ||
	    strcmp(json_string_value(v), pseudonym) == 0)
		return false;
	json_string_set(v, pseudonym);
	return true;
}

/* Free-form JSON (a call's metadata, set by the chat app): any string may be a user id. The
 * value's own strings are changed in place (json_string_set), so walking an object while
 * changing it is safe. Depth is bounded by the loader. */
static bool erase_free_form(json_t *v, const char *user, const char *pseudonym)
{
	bool changed = false;
	const char *key;
	size_t i;
	json_t *item;
	if (is_user(v, user))
		return set_pseudonym(v, pseudonym);
	if (json_is_object(v))
		json_object_foreach(v, key, item)
			changed |= erase_free_form(item, user, pseudonym);
	else if (json_is_array(v))
		json_array_foreach(v, i, item)
			changed |= erase_free_form(item, user, pseudonym);
	return changed;
}

/* Keys whose value is a user id in what callstate stores: a call's caller, a member's,
 * session's or presence's user, a LiveKit participant's identity. */
static bool is_id_key(const char *key)
{
	return strcmp(key, "user") == 0 || strcmp(key, "caller") == 0 ||
	       strcmp(key, "identity") == 0;
}

/* What an object whose user or identity is the user holds of that person besides the id: a
 * member's display name, a LiveKit participant's name, metadata and attributes. */
static bool erase_personal(const char *key, json_t *item, const char *pseudonym)
{
	if (strcmp(key, "name") == 0 || strcmp(key, "metadata") == 0)
		return set_pseudonym(item, pseudonym);
	if (strcmp(key, "attributes") == 0 && json_object_size(item)) {
		json_object_clear(item);
		return true;
	}
	return false;
}

/* A call, a presence or a LiveKit webhook: the user is found by key, so other strings that
 * happen to equal the id (a kind, a status, a chat id, another person's name) are kept. */
static bool erase_structured(json_t *v, const char *user, const char *pseudonym)
{
	bool changed = false;
	const char *key;
	size_t i;
	json_t *item;
	if (json_is_array(v)) {
		json_array_foreach(v, i, item)
			changed |= erase_structured(item, user, pseudonym);
		return changed;
	}
	if (!json_is_object(v))
		return false;
	bool names_user = is_user(json_object_get(v, "user"), user) ||
			  is_user(json_object_get(v, "identity"), user);
	json_object_foreach(v, key, item) {
		if (is_id_key(key) && is_user(item, user))
			changed |= set_pseudonym(item, pseudonym);
		else if (names_user && erase_personal(key, item, pseudonym))
			changed = true;
		else if (strcmp(key, "metadata") == 0 && !json_is_string(item))
			changed |= erase_free_form(item, user, pseudonym);
		else
			changed |= erase_structured(item, user, pseudonym);
	}
	return changed;
}

static enum err rewrite(const char *text, bool (*erase)(json_t *, const char *, const char *),
			const char *user, const char *pseudonym, char **ret_text)
{
	enum json_load_result result;
	json_t *v = json_load_bounded(text, strlen(text), &result);
	if (!v && result == JSON_LOAD_NOMEM)
		return ERR_NOMEM;
	char *out = NULL;
	enum err e = ERR_OK;
	if (v && erase(v, user, pseudonym)) {
		out = json_dumps(v, JSON_COMPACT);
		if (!out)
			e = ERR_NOMEM;
	}
	json_decref(v);
	if (e == ERR_OK)
		*ret_text = out;
	return e;
}

enum err erasure_rewrite_json(const char *text, const char *user, const char *pseudonym,
			      char **ret_text)
{
	return rewrite(text, erase_structured, user, pseudonym, ret_text);
}

enum err erasure_rewrite_metadata(const char *text, const char *user, const char *pseudonym,
				  char **ret_text)
{
	return rewrite(text, erase_free_form, user, pseudonym, ret_text);
}

/* The user's places in the call itself; true if they had any. */
static bool rename_in_call(struct call *c, const char *user, const char *pseudonym)
{
	bool named = false;
	if (strcmp(c->caller, user) == 0) {
		snprintf(c->caller, sizeof c->caller, "%s", pseudonym);
		named = true;
	}
	for (size_t i = 0; i < c->n_members; i++) {
		struct member *m = &c->members[i];
		if (strcmp(m->user, user) != 0)
			continue;
		snprintf(m->user, sizeof m->user, "%s", pseudonym);
		if (*m->name)
			snprintf(m->name, sizeof m->name, "%s", pseudonym);
		named = true;
	}
	for (size_t i = 0; i < c->n_participants; i++) {
		struct participant *p = &c->participants[i];
		if (strcmp(p->user, user) == 0) {
			snprintf(p->user, sizeof p->user, "%s", pseudonym);
			named = true;
		}
	}
	return named;
}

struct erase_job {
	const char *user;
	const char *pseudonym;
	char ids[ERASE_BATCH][ID_LEN + 1];
	size_t n_ids;
	size_t changed; /* calls changed by the transaction */
};

/* Rewrites each entry of the trail that names the user; *changed is set if any did. */
static enum err erase_in_trail(struct storage_tx *tx, const struct erase_job *j,
			       struct audit_trail *trail, bool *changed)
{
	enum err e = ERR_OK;
	for (size_t i = 0; i < trail->n && e == ERR_OK; i++) {
		struct audit_entry *a = &trail->entries[i];
		char *text = NULL;
		e = erasure_rewrite_json(a->body, j->user, j->pseudonym, &text);
		if (e != ERR_OK || !text)
			continue;
		free(a->body);
		a->body = text;
		*changed = true;
		e = storage_tx_audit_rewrite(tx, a);
	}
	return e;
}

static enum err erase_in_call(struct storage_tx *tx, const struct erase_job *j, const char *id,
			      bool *ret_changed)
{
	struct call *c = NULL;
	struct audit_trail trail = {0};
	char *metadata = NULL, *view = NULL;
	bool changed = false;
	enum err e = storage_tx_call_get(tx, id, &c);
	if (e == ERR_NOT_FOUND) {
		*ret_changed = false;
		return ERR_OK;
	}
	if (e != ERR_OK)
		return e;
	changed = rename_in_call(c, j->user, j->pseudonym);
	e = erasure_rewrite_metadata(c->metadata, j->user, j->pseudonym, &metadata);
	if (e == ERR_OK && metadata) {
		changed = true;
		if (!call_set_metadata(c, metadata))
			e = ERR_NOMEM;
	}
	if (e == ERR_OK && changed) {
		view = call_to_json_text(c);
		e = view ? storage_tx_call_rename_user(tx, id, j->user, j->pseudonym, c->metadata,
						       view)
			 : ERR_NOMEM;
	}
	if (e == ERR_OK)
		e = storage_tx_call_audit(tx, id, &trail);
	if (e == ERR_OK)
		e = erase_in_trail(tx, j, &trail, &changed);
	audit_trail_finish(&trail);
	free(metadata);
	free(view);
	call_free(c);
	if (e == ERR_OK)
		*ret_changed = changed;
	return e;
}

/* The calls of j->ids, in ascending order of id (the order they were listed in), so that two
 * erasures lock them in the same order. */
static enum err erase_calls_tx(struct storage_tx *tx, void *arg)
{
	struct erase_job *j = arg;
	j->changed = 0;
	for (size_t i = 0; i < j->n_ids; i++) {
		bool changed = false;
		enum err e = erase_in_call(tx, j, j->ids[i], &changed);
		if (e != ERR_OK)
			return e;
		j->changed += changed;
	}
	return ERR_OK;
}

static enum err forget_tx(struct storage_tx *tx, void *arg)
{
	const struct erase_job *j = arg;
	struct presence_record held;
	enum err e = storage_tx_presence_get(tx, j->user, NULL, &held);
	return e == ERR_OK ? storage_tx_user_forget(tx, j->user) : e;
}

/* Presence events of the user found on one page of the feed, with their new data. */
struct presence_rewrite {
	const char *user;
	struct audit_entry *entries; /* owned bodies */
	size_t n;
};

static enum err presence_rewrite_tx(struct storage_tx *tx, void *arg)
{
	const struct presence_rewrite *p = arg;
	struct presence_record held; /* presence events are written under the user's hold */
	enum err e = storage_tx_presence_get(tx, p->user, NULL, &held);
	for (size_t i = 0; i < p->n && e == ERR_OK; i++)
		e = storage_tx_audit_rewrite(tx, &p->entries[i]);
	return e;
}

/* One page of the feed after *after: its events without a call that name the user are
 * rewritten. *ret_more is false at the end of the feed. */
static enum err erase_feed_page(struct storage *st, const struct erase_job *j, int64_t *after,
				bool *ret_more)
{
	struct event_page page = {0};
	struct presence_rewrite p = {.user = j->user};
	enum err e = storage_events_after(st, *after, FEED_PAGE, &page);
	if (e == ERR_OK && page.n) {
		p.entries = calloc(page.n, sizeof *p.entries);
		if (!p.entries)
			e = ERR_NOMEM;
	}
	for (size_t i = 0; i < page.n && e == ERR_OK; i++) {
		const struct event *ev = &page.events[i];
		char *text = NULL;
		if (*ev->call_id)
			continue; /* a call's: rewritten with the call */
		e = erasure_rewrite_json(ev->data, j->user, j->pseudonym, &text);
		if (e != ERR_OK || !text)
			continue;
		struct audit_entry *a = &p.entries[p.n++];
		snprintf(a->id, sizeof a->id, "%s", ev->id);
		a->seq = ev->seq;
		a->body = text;
	}
	if (e == ERR_OK && p.n)
		e = storage_transact(st, presence_rewrite_tx, &p);
	if (e == ERR_OK) {
		*ret_more = page.n == FEED_PAGE;
		if (page.n)
			*after = page.events[page.n - 1].seq;
	}
	for (size_t i = 0; i < p.n; i++)
		free(p.entries[i].body);
	free(p.entries);
	event_page_finish(&page);
	return e;
}

enum err erasure_run(struct storage *st, const unsigned char *secret, size_t secret_len,
		     const char *user, size_t *ret_calls_updated)
{
	char pseudonym[ERASURE_PSEUDONYM_LEN + 1];
	struct erase_job *j = calloc(1, sizeof *j);
	size_t updated = 0;
	if (!j)
		return ERR_NOMEM;
	enum err e = erasure_pseudonym(secret, secret_len, user, pseudonym);
	j->user = user;
	j->pseudonym = pseudonym;
	/* Listed after the last call of the batch before: a call the user joins again meanwhile
	 * is not met twice, so this ends whatever webhooks arrive. */
	char after[ID_LEN + 1] = "";
	do {
		j->changed = 0;
		if (e == ERR_OK)
			e = storage_user_call_ids(st, user, after, ERASE_BATCH, j->ids, &j->n_ids);
		if (e == ERR_OK && j->n_ids) {
			e = storage_transact(st, erase_calls_tx, j);
			memcpy(after, j->ids[j->n_ids - 1], sizeof after);
		}
		if (e == ERR_OK)
			updated += j->changed;
	} while (e == ERR_OK && j->n_ids == ERASE_BATCH);
	if (e == ERR_OK)
		e = storage_transact(st, forget_tx, j);
	int64_t seq = 0;
	for (bool more = true; e == ERR_OK && more;)
		e = erase_feed_page(st, j, &seq, &more);
	if (e == ERR_OK)
		e = storage_scrub(st);
	free(j);
	if (e == ERR_OK)
		*ret_calls_updated = updated;
	return e;
}

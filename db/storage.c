/* The storage front end: storage_open() picks a backend by the URL's scheme, and every other
 * storage_* call dispatches through that backend's const impl table (the curl vtls shape).
 * No state and no logging here: backends log their driver text, callers log the rest. */
#include "storage_impl.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct backend {
	const char *scheme;
	bool strip_scheme; /* pass the rest of the URL (a path) rather than the whole URL */
	enum err (*open)(const char *arg, const struct storage_options *opts,
			 struct storage **ret_st);
};

/* A backend left out of the build (meson -Dsqlite=disabled, -Dpostgres=disabled) keeps its
 * schemes with a NULL open, so that its URLs say "not in this build" rather than "unknown". */
static const struct backend backends[] = {
#if CALLSTATE_WITH_SQLITE
	{"sqlite:", true, sqlite_storage_open},
#else
	{"sqlite:", true, NULL},
#endif
#if CALLSTATE_WITH_POSTGRES
	{"postgresql://", false, pg_storage_open},
	{"postgres://", false, pg_storage_open},
#else
	{"postgresql://", false, NULL},
	{"postgres://", false, NULL},
#endif
};

bool storage_backend_built(const char *url)
{
	for (size_t i = 0; url && i < sizeof backends / sizeof backends[0]; i++)
		if (strncmp(url, backends[i].scheme, strlen(backends[i].scheme)) == 0)
			return backends[i].open != NULL;
	return false;
}

enum err storage_open(const char *url, const struct storage_options *opts,
		      struct storage **ret_st)
{
	struct storage_options o = {.pool_size = STORAGE_POOL_DEFAULT};
	if (opts)
		o.unprepared = opts->unprepared;
	if (opts && opts->pool_size > 0)
		o.pool_size = opts->pool_size;
	if (!url)
		return ERR_INVALID;
	for (size_t i = 0; i < sizeof backends / sizeof backends[0]; i++) {
		const struct backend *b = &backends[i];
		size_t len = strlen(b->scheme);
		if (strncmp(url, b->scheme, len) != 0)
			continue;
		if (!b->open)
			return ERR_INVALID;
		return b->open(b->strip_scheme ? url + len : url, &o, ret_st);
	}
	return ERR_INVALID;
}

void storage_close(struct storage *st)
{
	if (st)
		st->impl->close(st);
}

enum err storage_migrate(struct storage *st, int *ret_applied)
{
	return st->impl->migrate(st, ret_applied);
}

enum err storage_schema_version(struct storage *st, int *ret_version)
{
	return st->impl->schema_version(st, ret_version);
}

enum err storage_ping(struct storage *st)
{
	return st->impl->ping(st);
}

const char *storage_backend_name(const struct storage *st)
{
	return st->impl->name;
}

enum err storage_transact(struct storage *st, storage_tx_fn fn, void *arg)
{
	return st->impl->transact(st, fn, arg);
}

enum err storage_tx_call_get(struct storage_tx *tx, const char *id, struct call **ret_call)
{
	return tx->st->impl->tx_call_get(tx, id, ret_call);
}

enum err storage_tx_call_insert(struct storage_tx *tx, const struct call *c, const char *view)
{
	return tx->st->impl->tx_call_insert(tx, c, view);
}

enum err storage_tx_call_update(struct storage_tx *tx, const struct call *c,
				const struct call *loaded, const char *view)
{
	return tx->st->impl->tx_call_update(tx, c, loaded, view);
}

enum err storage_tx_call_get_due(struct storage_tx *tx, const char *id, int64_t now,
				 struct call **ret_call)
{
	return tx->st->impl->tx_call_get_due(tx, id, now, ret_call);
}

enum err storage_tx_event_append(struct storage_tx *tx, const struct event *ev)
{
	return tx->st->impl->tx_event_append(tx, ev);
}

enum err storage_tx_idempotency_claim(struct storage_tx *tx, const char *caller, const char *key,
				      const struct idempotency *rec, int64_t live_after,
				      struct idempotency *ret_live)
{
	return tx->st->impl->tx_idempotency_claim(tx, caller, key, rec, live_after, ret_live);
}

enum err storage_tx_webhook_insert(struct storage_tx *tx, const struct webhook_record *rec)
{
	return tx->st->impl->tx_webhook_insert(tx, rec);
}

enum err storage_tx_presence_get(struct storage_tx *tx, const char *user,
				 const char *except_call_id, struct presence_record *ret)
{
	return tx->st->impl->tx_presence_get(tx, user, except_call_id, ret);
}

enum err storage_tx_call_get_with_presence(struct storage_tx *tx, const char *id,
					   const char *user, struct call **ret_call,
					   struct presence_record *ret_presence)
{
	const struct storage_impl *impl = tx->st->impl;
	if (impl->tx_call_get_with_presence)
		return impl->tx_call_get_with_presence(tx, id, user, ret_call, ret_presence);
	struct call *c = NULL;
	struct presence_record p;
	enum err e = impl->tx_call_get(tx, id, &c);
	if (e == ERR_OK)
		e = impl->tx_presence_get(tx, user, id, &p);
	if (e != ERR_OK) {
		call_free(c);
		return e;
	}
	*ret_call = c;
	*ret_presence = p;
	return ERR_OK;
}

enum err storage_tx_presence_set(struct storage_tx *tx, const char *user, int status,
				 int64_t since)
{
	return tx->st->impl->tx_presence_set(tx, user, status, since);
}

enum err storage_tx_purge_calls(struct storage_tx *tx, int64_t ended_before, size_t max,
				size_t *ret_n)
{
	return tx->st->impl->tx_purge_calls(tx, ended_before, max, ret_n);
}

enum err storage_tx_purge_unowned(struct storage_tx *tx, int64_t before, size_t max,
				  size_t *ret_n)
{
	return tx->st->impl->tx_purge_unowned(tx, before, max, ret_n);
}

enum err storage_presence_get(struct storage *st, const char *user, struct presence_record *ret)
{
	return st->impl->presence_get(st, user, ret);
}

enum err storage_call_access(struct storage *st, const char *id, const char *user,
			     struct call_access *ret)
{
	return st->impl->call_access(st, id, user, ret);
}

enum err storage_call_get(struct storage *st, const char *id, struct call **ret_call)
{
	return st->impl->call_get(st, id, ret_call);
}

enum err storage_call_view(struct storage *st, const char *id, struct call_view *ret_view)
{
	return st->impl->call_view(st, id, ret_view);
}

enum err storage_calls_list(struct storage *st, const struct call_filter *f,
			    struct view_page *ret_page)
{
	return st->impl->calls_list(st, f, ret_page);
}

enum err storage_call_audit(struct storage *st, const char *id, struct audit_trail *ret)
{
	return st->impl->call_audit(st, id, ret);
}

enum err storage_events_wait(struct storage *st, int64_t *seen, int64_t deadline_ms)
{
	return feed_signal_wait(&st->feed, seen, deadline_ms);
}

void storage_events_interrupt(struct storage *st)
{
	feed_signal_interrupt(&st->feed);
}

enum err storage_call_stats(struct storage *st, int64_t since, int64_t until,
			    int64_t join_timeout_ms, int64_t now, struct call_stats *ret)
{
	return st->impl->call_stats(st, since, until, join_timeout_ms, now, ret);
}

enum err storage_events_after(struct storage *st, int64_t after, int limit,
			      struct event_page *ret_page)
{
	return st->impl->events_after(st, after, limit, ret_page);
}

enum err storage_events_get(struct storage *st, const int64_t *seqs, size_t n,
			    struct event_page *ret_page)
{
	enum { SEQ_TEXT_MAX = 21 }; /* "-9223372036854775808," */
	if (n > EVENTS_GET_MAX)
		return ERR_INVALID;
	char json[2 + EVENTS_GET_MAX * SEQ_TEXT_MAX + 1];
	size_t used = 1;
	json[0] = '[';
	for (size_t i = 0; i < n; i++)
		used += (size_t)snprintf(json + used, sizeof json - used, "%s%" PRId64, i ? "," : "",
					 seqs[i]);
	snprintf(json + used, sizeof json - used, "]");
	return st->impl->events_get(st, json, ret_page);
}

enum err storage_calls_due(struct storage *st, int64_t now, const struct due_call *after,
			   size_t max, struct due_call *ret_calls, size_t *ret_n)
{
	return st->impl->calls_due(st, now, after, max, ret_calls, ret_n);
}

enum err storage_user_call_ids(struct storage *st, const char *user, const char *after_id,
			       size_t max, char (*ret_ids)[ID_LEN + 1], size_t *ret_n)
{
	return st->impl->user_call_ids(st, user, after_id, max, ret_ids, ret_n);
}

enum err storage_tx_call_audit(struct storage_tx *tx, const char *id, struct audit_trail *ret)
{
	return tx->st->impl->tx_call_audit(tx, id, ret);
}

enum err storage_tx_audit_rewrite(struct storage_tx *tx, const struct audit_entry *entry)
{
	return tx->st->impl->tx_audit_rewrite(tx, entry);
}

enum err storage_tx_call_rename_user(struct storage_tx *tx, const char *id, const char *user,
				     const char *pseudonym, const char *metadata,
				     const char *view)
{
	return tx->st->impl->tx_call_rename_user(tx, id, user, pseudonym, metadata, view);
}

enum err storage_tx_user_forget(struct storage_tx *tx, const char *user)
{
	return tx->st->impl->tx_user_forget(tx, user);
}

enum err storage_scrub(struct storage *st)
{
	return st->impl->scrub(st);
}

void call_view_finish(struct call_view *v)
{
	if (!v)
		return;
	free(v->json);
	v->json = NULL;
}

void view_page_finish(struct view_page *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->n; i++)
		call_view_finish(&p->views[i]);
	free(p->views);
	*p = (struct view_page){0};
}

void event_page_finish(struct event_page *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->n; i++)
		event_finish(&p->events[i]);
	free(p->events);
	*p = (struct event_page){0};
}

void audit_trail_finish(struct audit_trail *a)
{
	if (!a)
		return;
	for (size_t i = 0; i < a->n; i++)
		free(a->entries[i].body);
	free(a->entries);
	*a = (struct audit_trail){0};
}

enum err storage_delivery_cursor(struct storage *st, int64_t *ret_seq)
{
	return st->impl->delivery_cursor(st, ret_seq);
}

enum err storage_tx_delivery_enqueue(struct storage_tx *tx, int64_t from,
				     const struct event_page *page)
{
	return tx->st->impl->tx_delivery_enqueue(tx, from, page);
}

static int never_tried_first(const void *a, const void *b)
{
	const struct delivery *x = a, *y = b;
	if ((x->attempts > 0) != (y->attempts > 0))
		return x->attempts > 0 ? 1 : -1;
	return (x->seq > y->seq) - (x->seq < y->seq);
}

enum err storage_tx_delivery_claim(struct storage_tx *tx, const char *url, int64_t now,
				   int64_t lease_until, size_t max, struct delivery *ret,
				   size_t *ret_n, int64_t *ret_next_due)
{
	const struct storage_impl *impl = tx->st->impl;
	struct delivery *heads = max ? calloc(max, sizeof *heads) : NULL;
	if (max && !heads)
		return ERR_NOMEM;
	size_t n_heads = 0, n = 0;
	int64_t next_due = INT64_MAX;
	enum err e = max ? impl->tx_delivery_heads(tx, url, now, lease_until, max, heads, &n_heads)
			 : ERR_OK;
	if (e == ERR_OK && n_heads == 0)
		e = impl->tx_delivery_next_due(tx, url, &next_due);
	if (n_heads > 1) /* heads is NULL when max is 0, which qsort must not get */
		qsort(heads, n_heads, sizeof *heads, never_tried_first);
	/* The room left is shared evenly, so that one long queue (the presence events, say)
	 * does not crowd out the other orders' heads. */
	size_t room = n_heads ? (max - n_heads) / n_heads : 0;
	for (size_t h = 0; h < n_heads && e == ERR_OK; h++) {
		size_t behind = 0;
		ret[n++] = heads[h];
		if (room)
			e = impl->tx_delivery_behind(tx, heads[h].order_key, heads[h].seq, room,
						     ret + n, &behind);
		n += behind;
	}
	free(heads);
	if (e == ERR_OK) {
		*ret_n = n;
		*ret_next_due = next_due;
	}
	return e;
}

enum err storage_tx_delivery_settle(struct storage_tx *tx, const struct delivery *d,
				    enum delivery_state state, int64_t next_at,
				    const char *url, const char *error, int64_t now)
{
	return tx->st->impl->tx_delivery_settle(tx, d, state, next_at, url, error, now);
}

enum err storage_tx_delivery_advance(struct storage_tx *tx, const char *order_key)
{
	return tx->st->impl->tx_delivery_advance(tx, order_key);
}

enum err storage_delivery_status(struct storage *st, const char *url,
				 struct delivery_status *ret)
{
	return st->impl->delivery_status(st, url, ret);
}

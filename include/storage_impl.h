/* What a storage backend implements. Each backend embeds struct storage first in its own
 * state and struct storage_tx first in its transaction handle, and fills one const
 * storage_impl table; db/storage.c dispatches through it. Only db/ includes this header. */
#pragma once

#include "feed_signal.h"
#include "storage.h"

struct storage_impl {
	const char *name;
	void (*close)(struct storage *st);
	enum err (*migrate)(struct storage *st, int *ret_applied);
	enum err (*schema_version)(struct storage *st, int *ret_version);
	enum err (*ping)(struct storage *st);
	enum err (*transact)(struct storage *st, storage_tx_fn fn, void *arg);

	enum err (*tx_call_get)(struct storage_tx *tx, const char *id, struct call **ret_call);
	enum err (*tx_call_get_due)(struct storage_tx *tx, const char *id, int64_t now,
				    struct call **ret_call);
	enum err (*tx_call_insert)(struct storage_tx *tx, const struct call *c, const char *view);
	enum err (*tx_call_update)(struct storage_tx *tx, const struct call *c,
				   const struct call *loaded, const char *view);
	enum err (*tx_event_append)(struct storage_tx *tx, const struct event *ev);
	enum err (*tx_idempotency_claim)(struct storage_tx *tx, const char *caller,
					 const char *key, const struct idempotency *rec,
					 int64_t live_after, struct idempotency *ret_live);

	enum err (*tx_webhook_insert)(struct storage_tx *tx, const struct webhook_record *rec);
	enum err (*tx_presence_get)(struct storage_tx *tx, const char *user,
				    const char *except_call_id, struct presence_record *ret);
	/* NULL: tx_call_get, then tx_presence_get. */
	enum err (*tx_call_get_with_presence)(struct storage_tx *tx, const char *id,
					      const char *user, struct call **ret_call,
					      struct presence_record *ret_presence);
	enum err (*tx_presence_set)(struct storage_tx *tx, const char *user, int status,
				    int64_t since);
	enum err (*tx_purge_calls)(struct storage_tx *tx, int64_t ended_before, size_t max,
				   size_t *ret_n);
	enum err (*tx_purge_unowned)(struct storage_tx *tx, int64_t before, size_t max,
				     size_t *ret_n);
	enum err (*presence_get)(struct storage *st, const char *user, struct presence_record *ret);
	enum err (*call_access)(struct storage *st, const char *id, const char *user,
				struct call_access *ret);

	enum err (*call_get)(struct storage *st, const char *id, struct call **ret_call);
	enum err (*call_view)(struct storage *st, const char *id, struct call_view *ret_view);
	enum err (*calls_list)(struct storage *st, const struct call_filter *f,
			       struct view_page *ret_page);
	enum err (*call_audit)(struct storage *st, const char *id, struct audit_trail *ret);
	enum err (*call_stats)(struct storage *st, int64_t since, int64_t until,
			       int64_t join_timeout_ms, int64_t now, struct call_stats *ret);
	enum err (*events_after)(struct storage *st, int64_t after, int limit,
				 struct event_page *ret_page);
	/* seqs as a JSON array of integers, n <= EVENTS_GET_MAX of them. */
	enum err (*events_get)(struct storage *st, const char *seqs_json, struct event_page *ret_page);
	enum err (*calls_due)(struct storage *st, int64_t now, const struct due_call *after,
			      size_t max, struct due_call *ret_calls, size_t *ret_n);

	enum err (*user_call_ids)(struct storage *st, const char *user, const char *after_id,
				  size_t max, char (*ret_ids)[ID_LEN + 1], size_t *ret_n);
	enum err (*tx_call_audit)(struct storage_tx *tx, const char *id, struct audit_trail *ret);
	enum err (*tx_audit_rewrite)(struct storage_tx *tx, const struct audit_entry *entry);
	enum err (*tx_call_rename_user)(struct storage_tx *tx, const char *id, const char *user,
					const char *pseudonym, const char *metadata,
					const char *view);
	enum err (*tx_user_forget)(struct storage_tx *tx, const char *user);
	enum err (*scrub)(struct storage *st);

	enum err (*delivery_cursor)(struct storage *st, int64_t *ret_seq);
	enum err (*tx_delivery_enqueue)(struct storage_tx *tx, int64_t from,
					const struct event_page *page);
	/* Claim and lease up to max due heads into ret, earliest due first. */
	enum err (*tx_delivery_heads)(struct storage_tx *tx, const char *url, int64_t now,
				      int64_t lease_until, size_t max, struct delivery *ret,
				      size_t *ret_n);
	/* Up to max pending events of order_key past seq, ascending, not leased. */
	enum err (*tx_delivery_behind)(struct storage_tx *tx, const char *order_key, int64_t seq,
				       size_t max, struct delivery *ret, size_t *ret_n);
	/* When the earliest pending head comes due; INT64_MAX for none, or once url answered
	 * 410. */
	enum err (*tx_delivery_next_due)(struct storage_tx *tx, const char *url, int64_t *ret);
	enum err (*tx_delivery_settle)(struct storage_tx *tx, const struct delivery *d,
				       enum delivery_state state, int64_t next_at, const char *url,
				       const char *error, int64_t now);
	enum err (*tx_delivery_advance)(struct storage_tx *tx, const char *order_key);
	enum err (*delivery_status)(struct storage *st, const char *url,
				    struct delivery_status *ret);
};

struct storage {
	const struct storage_impl *impl;
	struct feed_signal feed; /* initialized and finished by the backend */
};

struct storage_tx {
	struct storage *st;
};

/* Backend constructors, called by storage_open() with the part of the URL after the scheme
 * ("sqlite:" stripped) or the whole URL (PostgreSQL), and the options with defaults filled. */
enum err sqlite_storage_open(const char *path, const struct storage_options *opts,
			     struct storage **ret_st);
enum err pg_storage_open(const char *url, const struct storage_options *opts,
			 struct storage **ret_st);

/* Migrations embedded at build time from db/migrations/<backend>/NNNN_name.sql by
 * db/embed_migrations.py; each backend's list is ascending by version. */
struct migration {
	int version;
	const char *name;
	const char *sql;
};
extern const struct migration sqlite_migrations[];
extern const size_t sqlite_migrations_count;
extern const struct migration postgres_migrations[];
extern const size_t postgres_migrations_count;

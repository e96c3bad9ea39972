/* Storage: the one interface the domain uses, with one backend per database (SQLite, and
 * PostgreSQL for several callstate instances on one database), picked at run time from the
 * CALLSTATE_DB URL.
 *
 * The rules below hold on every backend, so that any number of instances on one PostgreSQL
 * behave as one. On SQLite one process owns the file and one writer thread runs every
 * transaction, which gives several of them for free; PostgreSQL enforces them with locks.
 *
 *  1. Transactions. Writes happen only inside storage_transact(fn): fn runs in a transaction,
 *     and ERR_OK means it committed durably (flushed to disk). fn MAY RUN MORE THAN ONCE: a
 *     backend runs it again after a serialization failure, a deadlock, or a guess of its own
 *     gone wrong (PostgreSQL takes a webhook to be new until the commit), so fn starts from
 *     its inputs each time (it resets its outputs first), does nothing but storage_tx_* calls
 *     (no other I/O, no effect outside its arg), and keeps no pointer into the tx after it
 *     returns. Backends may group concurrent transactions into one commit; each fn then runs
 *     in its own savepoint, so a failing fn rolls back only its own writes.
 *  2. A call is locked by its transaction. storage_tx_call_get locks the call until the
 *     transaction ends: two transactions on one call run one after the other and the second
 *     sees what the first wrote, so call.version goes up by one per feed event, never twice
 *     to the same value, however many instances write.
 *  3. Expected refusals leave the transaction usable: ERR_CONFLICT and ERR_NOT_FOUND from a
 *     write wrote nothing, and fn may carry on (a duplicate webhook is an answer, not a
 *     failure). After any other error fn must fail.
 *  4. The feed is in commit order. An event's seq is given when its transaction commits or
 *     after, never before, so a reader paging with storage_events_after(after = the last seq
 *     it saw) never pages past an event that becomes visible later: once seq N is visible,
 *     every smaller seq that will ever exist is visible too. Events keep their order within a
 *     transaction, and across transactions on one call (rule 2) or one user (rule 5).
 *  5. Presence is serialised per user. storage_tx_presence_get holds the user until the
 *     transaction ends, so two transactions that compare a user's presence before and after
 *     their change (a webhook and a PUT, or webhooks of two calls) run one after the other.
 *     A transaction that reads several users' presence reads them in ascending order of id
 *     (strcmp), after the one call it locked, so that no two transactions wait for each other.
 *  6. Idempotency keys are claimed, not read and then written: storage_tx_idempotency_claim
 *     records the key for this transaction's call, or answers with the live record of the
 *     transaction that claimed it first (waiting for it if it has not committed yet).
 *  7. Each due timer is settled once. storage_calls_due lists due calls for every instance;
 *     storage_tx_call_get_due takes one only while it is still due and no other transaction
 *     holds it, so the instances share the due calls instead of queueing on each.
 *  8. Reads outside a transaction see every transaction that storage_transact returned for,
 *     on any instance; a read of several statements (a call with its members and sessions)
 *     sees one snapshot. A read may see a transaction a moment before that (SQLite answers a
 *     batch once the syncer has made it durable, and its readers see it from the commit), but
 *     the feed shows no event before it is durable, so a power cut never takes back a seq
 *     that a reader saw (rule 4).
 *  9. Connections come from a pool of at most storage_options.pool_size; a thread waits for
 *     one, and gets ERR_UNAVAILABLE when none is free in time. No connection is used by two
 *     threads at once. All functions are safe to call from any thread.
 * 10. Errors: ERR_NOT_FOUND, ERR_CONFLICT (unique key), ERR_UNAVAILABLE whenever the
 *     database cannot answer now (busy, locked, disk full, connection lost, shutting down,
 *     read-only after a failover: the caller answers 503, and the backend reconnects by
 *     itself), ERR_NOMEM, ERR_INTERNAL. Backends log driver text themselves, once.
 * 11. Retention runs beside live traffic, never against it. storage_tx_purge_calls takes only
 *     ended calls that no other transaction holds (PostgreSQL: FOR UPDATE SKIP LOCKED), so
 *     instances purging at once share the old calls instead of waiting on each other, and a
 *     request on an old call is never made to wait for the purge.
 * 12. Push deliveries (CALLSTATE_EVENTS_URL) are leased, not locked: a claim sets the head of
 *     one order's queue in flight until its lease ends, so each event is in flight at one
 *     instance at a time, and a crashed attempt is sent again once its lease has passed. Only
 *     heads have a due time; an event queued behind one waits until storage_tx_delivery_advance
 *     follows the head's settle, so a claim reads due heads from an index however long the
 *     queues are. An enqueue that sees a head pending queues behind it: on PostgreSQL enqueues
 *     and advances exclude each other (an advisory lock), or an advance that ran before an
 *     enqueue committed could leave the enqueued event behind a head that is gone. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "model.h"

struct storage;
struct storage_tx;

/* Filters of the call lists. Empty strings, zero times and -1 for the enums mean "no filter"
 * (OUTCOME_NONE is not a filter: a call not ended is found by its status). The order is
 * (created_at, id) newest first; after_created_at/after_id is the keyset cursor (the last row
 * of the previous page), unset when after_id is "". */
struct call_filter {
	char user[USER_ID_MAX + 1];    /* calls the user is a member of */
	char chat_id[USER_ID_MAX + 1];
	int status;                    /* enum call_status, or -1 */
	int outcome;                   /* enum call_outcome, or -1 */
	int kind;                      /* enum call_kind, or -1 */
	int64_t since;                 /* created_at >= since, 0 = unbounded */
	int64_t until;                 /* created_at < until, 0 = unbounded */
	int64_t after_created_at;
	char after_id[ID_LEN + 1];
	int limit;                     /* 1..500 */
};

/* A call as the API shows it: the JSON view stored with every write of the call, so lists
 * and reads copy text instead of loading members and sessions and serializing them again. */
struct call_view {
	char id[ID_LEN + 1];
	int64_t created_at;  /* with id, the keyset cursor of a list */
	int64_t next_deadline;
	char *json;          /* owned */
};

struct view_page {
	struct call_view *views; /* owned, n entries */
	size_t n;
	bool more;               /* another page follows the last entry */
};
void view_page_finish(struct view_page *p);
void call_view_finish(struct call_view *v);

struct event_page {
	struct event *events; /* owned, n entries, seq ascending */
	size_t n;
};
void event_page_finish(struct event_page *p);

/* One entry of a call's audit trail: a LiveKit webhook of its room as received, or one of its
 * feed events (a change of the call) with its cause. */
#define AUDIT_ID_MAX 64    /* LiveKit event ids are bounded to this on input; event ids are UUIDs */
#define AUDIT_TYPE_MAX 64  /* LiveKit event names are bounded to this on input */
struct audit_entry {
	bool webhook;
	int64_t seq;                       /* a change's seq in the feed, 0 until it has one */
	char id[AUDIT_ID_MAX + 1];         /* LiveKit's event id, or the feed event's id */
	char type[AUDIT_TYPE_MAX + 1];     /* LiveKit's event name, or the feed event's type */
	int64_t at;                        /* when received, or when changed */
	int64_t call_version;              /* a change's call_version */
	enum change_source cause;          /* a change's cause and its request or webhook id */
	char cause_ref[CHANGE_REF_MAX + 1];
	char *body;                        /* owned: the webhook body as received, or the call
					    * object after the change */
};
/* In order: each change by call_version, and each webhook just before the first change made
 * after it took the call's lock (rule 2), so a webhook comes before the changes it caused. */
struct audit_trail {
	struct audit_entry *entries;       /* owned, n entries */
	size_t n;
};
void audit_trail_finish(struct audit_trail *a);
/* What GET /v1/stats reports of the calls created in a time range (storage_call_stats). */
struct call_stats {
	int64_t calls;
	int64_t by_outcome[OUTCOME_FAILED + 1]; /* by enum call_outcome; [OUTCOME_NONE] is 0 */
	int64_t ended;
	int64_t answered;         /* ended calls with answered_at */
	int64_t duration_sum_ms;  /* of those: ended_at - answered_at */
	int64_t accepted;         /* accepted members (callers included) whose join is settled */
	int64_t joined_in_time;   /* of those, members who joined within the join timeout */
	int64_t joins;            /* members with a time to join: token minted, then joined */
	int64_t join_p50_ms;      /* nearest-rank percentiles of the time to join; 0 if no joins */
	int64_t join_p95_ms;
};

/* Idempotency record of POST /v1/calls. */
struct idempotency {
	char call_id[ID_LEN + 1];
	unsigned char request_hash[32];
	int64_t created_at;
};

/* A LiveKit webhook as received: stored once per event id, raw, with the call it touched. */
struct webhook_record {
	const char *id;           /* LiveKit's event id: the deduplication key */
	const char *event;        /* event name as sent */
	const char *room;         /* room name, "" when none */
	const char *call_id;      /* "" when no call owns the room */
	int64_t call_version;     /* the call's version as the webhook found it (before its
				   * changes): orders it among the call's feed events */
	int64_t created_at;       /* LiveKit's createdAt, ms */
	int64_t received_at;
	const char *body;         /* the exact bytes that were signed */
	size_t body_len;
};

/* What presence is made of; the visible presence is composed by the domain. */
struct presence_record {
	int status;                      /* the chat-set enum presence_status, -1 if never set */
	int64_t status_since;
	char open_call_id[ID_LEN + 1];   /* a call whose room holds an open session of the user's,
					  * "" for none; the newest if several */
	int64_t open_since;              /* since when the user has been in that call's room,
					  * through reconnects (see presence_get in db/sqlite.c) */
	int64_t open_newest;             /* joined_at of that newest open session */
	int64_t last_left_at;            /* the latest end of any of the user's sessions, 0 = none */
};

/* What minting a token needs to know of a call and one user: the hot path reads only this. */
struct call_access {
	char room[ROOM_LEN + 1];
	enum call_kind kind;
	enum call_status status;
	int64_t next_deadline;
	bool member;                   /* the fields below are set only for a member */
	enum invite_state invite;
	char name[NAME_MAX_BYTES + 1];
};

struct storage_options {
	int pool_size;     /* database connections at most (SQLite: readers; the writer is its own) */
	bool unprepared;   /* PostgreSQL: no named prepared statements (pgbouncer in transaction
			    * pooling mode before 1.21 cannot keep them); SQLite prepares anyway */
};
/* A few connections per database core do the most: on a 2-core machine PostgreSQL served more
 * tokens and webhooks with 8 than with 32, whose backends, more than the cores, sometimes
 * slept on each other's spinlocks (p99 over a second); SQLite's readers did as well with 8. */
#define STORAGE_POOL_DEFAULT 8

/* Open the database named by url ("sqlite:PATH", "postgresql://…", "postgres://…"); opts
 * NULL takes the defaults. Does not migrate. ERR_INVALID for an unknown scheme or a backend
 * this build lacks, ERR_UNAVAILABLE if it cannot open. */
enum err storage_open(const char *url, const struct storage_options *opts,
		      struct storage **ret_st);
/* Close every connection; waits for the writer to drain. NULL is accepted. */
void storage_close(struct storage *st);
/* Apply pending migrations, each in its own transaction; *ret_applied counts them. */
enum err storage_migrate(struct storage *st, int *ret_applied);
/* The newest applied migration version, 0 for an empty database. */
enum err storage_schema_version(struct storage *st, int *ret_version);
/* Cheap round trip to the database (readiness). */
enum err storage_ping(struct storage *st);
const char *storage_backend_name(const struct storage *st);
/* Whether this build has the backend of url's scheme (meson options per backend). */
bool storage_backend_built(const char *url);

typedef enum err (*storage_tx_fn)(struct storage_tx *tx, void *arg);
/* Run fn in a transaction; ERR_OK only once it is durable. fn's own error rolls it back and
 * is returned as is. If the commit fails, ERR_UNAVAILABLE is returned even though fn
 * succeeded: the caller must discard what fn produced. */
enum err storage_transact(struct storage *st, storage_tx_fn fn, void *arg);

/* --- inside a transaction ---
 * Reads through storage_* (not storage_tx_*) inside a function do not see its writes, and a
 * nested storage_transact fails with ERR_INTERNAL. */
/* The call with its members and participants, locked until the transaction ends (rule 2).
 * ERR_NOT_FOUND if absent. */
enum err storage_tx_call_get(struct storage_tx *tx, const char *id, struct call **ret_call);
/* The same, only while the call is due (next_deadline set and <= now) and no other
 * transaction holds it (rule 7); ERR_NOT_FOUND otherwise. */
enum err storage_tx_call_get_due(struct storage_tx *tx, const char *id, int64_t now,
				 struct call **ret_call);

/* Insert a new call with its members, and view, its API JSON as of this write.
 * ERR_CONFLICT if the id or room exists. */
enum err storage_tx_call_insert(struct storage_tx *tx, const struct call *c, const char *view);
/* Write back every field of the call row and of each member; insert participants whose sid is
 * new and update the others (a session's user is the one it was inserted with: LiveKit gives
 * each sid one identity). ERR_NOT_FOUND if the call is absent. */
/* loaded, when not NULL, is the call as this transaction read it: members and sessions equal
 * to theirs in it are not written again. */
enum err storage_tx_call_update(struct storage_tx *tx, const struct call *c,
				const struct call *loaded, const char *view);
/* Append to the feed. Its seq comes with the commit (rule 4): ev->seq is not set. */
enum err storage_tx_event_append(struct storage_tx *tx, const struct event *ev);
/* Claims (caller, key) for rec (rule 6): ERR_OK when there was no record, or only one created
 * before live_after, which rec replaces; ERR_CONFLICT with *ret_live set when a record
 * created at or after live_after holds the key. */
enum err storage_tx_idempotency_claim(struct storage_tx *tx, const char *caller, const char *key,
				      const struct idempotency *rec, int64_t live_after,
				      struct idempotency *ret_live);

/* ERR_CONFLICT when a webhook with this id was stored before (a duplicate delivery). */
enum err storage_tx_webhook_insert(struct storage_tx *tx, const struct webhook_record *rec);
/* Holds user until the transaction ends (rule 5), then reads their presence. Sessions of the
 * call except_call_id (NULL for none) are left out: the caller holds that call in memory,
 * changed, and merges its sessions in itself. */
enum err storage_tx_presence_get(struct storage_tx *tx, const char *user,
				 const char *except_call_id, struct presence_record *ret);
/* storage_tx_call_get(id), then storage_tx_presence_get(user, id), in one round trip where
 * the backend can (PostgreSQL): for a transaction that will most likely need user's presence
 * once it has read the call (a webhook about one participant's session). User may be held
 * even when the call is absent (ERR_NOT_FOUND, *ret_presence untouched), and is held when the
 * caller turns out not to need the presence. A transaction that reads another user's presence afterwards
 * reads one whose id is greater than user's (rule 5). */
enum err storage_tx_call_get_with_presence(struct storage_tx *tx, const char *id,
					   const char *user, struct call **ret_call,
					   struct presence_record *ret_presence);
/* Insert or replace the chat-set status of user. */
enum err storage_tx_presence_set(struct storage_tx *tx, const char *user, int status,
				 int64_t since);

/* --- retention (CALLSTATE_RETENTION_DAYS) --- */
/* Deletes at most max calls that ended before ended_before (rule 11), oldest created first,
 * with their members, sessions, feed events and webhooks; *ret_n counts the calls. Calls are
 * found through their created_at (a call ends after it starts), so no index is kept on
 * ended_at; an old call not ended, or ended lately, is passed over. */
enum err storage_tx_purge_calls(struct storage_tx *tx, int64_t ended_before, size_t max,
				size_t *ret_n);
/* Deletes at most max each of what no call owns and is older than before: feed events
 * without a call (presence), webhooks of rooms no call owns, idempotency records (expired
 * long before: a live one points to a call too young to purge), and the deliveries settled
 * for good (dead, or stopped by a 410) of events that old. *ret_n counts the rows. */
enum err storage_tx_purge_unowned(struct storage_tx *tx, int64_t before, size_t max,
				  size_t *ret_n);

/* --- reads --- */
enum err storage_presence_get(struct storage *st, const char *user, struct presence_record *ret);
/* ERR_NOT_FOUND when there is no such call; a non-member gets member = false. */
enum err storage_call_access(struct storage *st, const char *id, const char *user,
			     struct call_access *ret);
enum err storage_call_get(struct storage *st, const char *id, struct call **ret_call);
/* The stored view of a call; ERR_NOT_FOUND if absent. */
enum err storage_call_view(struct storage *st, const char *id, struct call_view *ret_view);
enum err storage_calls_list(struct storage *st, const struct call_filter *f,
			    struct view_page *ret_page);
/* The audit trail of call id (empty for an unknown call); one snapshot. */
enum err storage_call_audit(struct storage *st, const char *id, struct audit_trail *ret);
/* Aggregates of the calls with since <= created_at < until (0: unbounded), in one snapshot.
 * A member's time to join runs from their token_minted_at (an accept, or the call's creation
 * for the caller) to first_joined_at, 0 if they joined first; members accepted by joining the
 * room (no token minted) count as joined in time but have no time to join. A member's join is
 * settled once they joined, their call ended, or join_timeout_ms has passed since the token
 * (as of now): an accepted member who may still join in time is left out of accepted. The
 * p-th percentile is the value of rank ceil(p * joins / 100) in ascending order. */
enum err storage_call_stats(struct storage *st, int64_t since, int64_t until,
			    int64_t join_timeout_ms, int64_t now, struct call_stats *ret);
/* Long polls: sleep, without polling, until an event newer than *seen may be in the feed
 * (SQLite: once the syncer made it durable; PostgreSQL: once any instance numbered it, told by
 * LISTEN/NOTIFY), then ERR_OK with *seen raised: read the feed again (the event may be of no
 * interest, or, rarely, not be there after all: wait again with the new *seen). Start with
 * *seen = the after of a read that found nothing. ERR_TIMEOUT at deadline_ms
 * (clock_monotonic_ms) or after storage_events_interrupt. */
enum err storage_events_wait(struct storage *st, int64_t *seen, int64_t deadline_ms);
/* Ends every wait, now and to come, with ERR_TIMEOUT: for a graceful stop. */
void storage_events_interrupt(struct storage *st);
/* Events with seq > after, ascending, at most limit (rule 4: no smaller seq appears later). */
enum err storage_events_after(struct storage *st, int64_t after, int limit,
			      struct event_page *ret_page);
/* The events of seqs[0..n) that are in the feed (retention may have taken some), ascending;
 * n <= EVENTS_GET_MAX. For seqs read from the feed before: rule 4 is the caller's. */
#define EVENTS_GET_MAX 256
enum err storage_events_get(struct storage *st, const int64_t *seqs, size_t n,
			    struct event_page *ret_page);
/* A call with a timer due: its id and next_deadline, which together order the due calls. */
struct due_call {
	char id[ID_LEN + 1];
	int64_t deadline;
};
/* Calls whose next_deadline is set and <= now, in (next_deadline, id) order, at most max,
 * starting after *after (NULL: from the first). A timer pass pages with the last one it got,
 * so a call it cannot settle does not hide the calls due after it. */
enum err storage_calls_due(struct storage *st, int64_t now, const struct due_call *after,
			   size_t max, struct due_call *ret_calls, size_t *ret_n);

/* --- push delivery of the feed (CALLSTATE_EVENTS_URL, rule 12) --- */
enum delivery_state { DELIVERY_PENDING, DELIVERY_DEAD, DELIVERY_STOPPED, DELIVERY_DELIVERED };
#define DELIVERY_ERROR_MAX 200
/* An event's delivery as claimed, and what its attempt made of it (settle). */
struct delivery {
	int64_t seq;
	int attempts;                /* made before this one */
	int64_t first_attempt_at;    /* 0 before the first */
	bool leased;                 /* its order's head, in flight; false: queued behind it */
	char order_key[ID_LEN + 1];  /* its call's id; "" for presence events */
};
struct delivery_status {
	int64_t backlog;             /* pending deliveries */
	int64_t oldest_at;           /* the oldest pending event's time, 0 when none */
	int64_t dead;
	int64_t stopped;             /* refused with 410 by the URL asked about */
	int64_t last_error_seq;      /* 0 when none */
	int64_t last_error_at;
	char last_error[DELIVERY_ERROR_MAX + 1];
};
/* The last seq queued for delivery. */
enum err storage_delivery_cursor(struct storage *st, int64_t *ret_seq);
/* Queue page's events (past from) and move the cursor from from to their last seq;
 * ERR_CONFLICT, queueing nothing, when the cursor is no longer at from (another instance
 * queued them). Presence events share one order; a call's events are ordered per call. */
enum err storage_tx_delivery_enqueue(struct storage_tx *tx, int64_t from,
				     const struct event_page *page);
/* Claims up to max deliveries into ret: the heads due by now (next attempt <= now) of orders
 * whose earlier events are all settled, earliest due first, each in flight until lease_until
 * (leased), in ret those never tried first and then in seq order, each followed by events
 * queued behind it in its order, in seq order, while room is left. Those are not leased: nothing behind a pending head can be claimed (rule 12),
 * so they are the claimer's to send after their head until it settles them. *ret_n is 0 when
 * nothing is due or url refused an event with 410; *ret_next_due is then when the earliest head
 * comes due (INT64_MAX: none). */
enum err storage_tx_delivery_claim(struct storage_tx *tx, const char *url, int64_t now,
				   int64_t lease_until, size_t max, struct delivery *ret,
				   size_t *ret_n, int64_t *ret_next_due);
/* Record an attempt: DELIVERY_DELIVERED deletes the row; DELIVERY_PENDING retries it at
 * next_at; DEAD and STOPPED settle it for good (url is kept for STOPPED). error NULL when
 * delivered, or to give back a lease unattempted (PENDING: due at next_at, the last error
 * kept). Then storage_tx_delivery_advance, once per order settled. */
enum err storage_tx_delivery_settle(struct storage_tx *tx, const struct delivery *d,
				    enum delivery_state state, int64_t next_at,
				    const char *url, const char *error, int64_t now);
/* After the settles of an order's claimed events: the first event left in order_key comes due
 * if it was queued behind a head that is settled now. */
enum err storage_tx_delivery_advance(struct storage_tx *tx, const char *order_key);
enum err storage_delivery_status(struct storage *st, const char *url,
				 struct delivery_status *ret);

/* --- erasure of a user (DELETE /v1/users/{user}/data): the domain rewrites, storage stores --- */
/* Ids of the calls user is a member of or had a session in, ascending, after after_id (""
 * from the first), at most max into ret_ids. */
enum err storage_user_call_ids(struct storage *st, const char *user, const char *after_id,
			       size_t max, char (*ret_ids)[ID_LEN + 1], size_t *ret_n);
/* The audit trail of call id as storage_call_audit reads it, inside the transaction (it sees
 * the transaction's own writes). */
enum err storage_tx_call_audit(struct storage_tx *tx, const char *id, struct audit_trail *ret);
/* Replace the stored text of one entry of a trail, found by its id (and a feed event's by its
 * seq as well, when it has one): a webhook's body (entry->webhook) or a feed event's data; an
 * entry that is gone is not an error. */
enum err storage_tx_audit_rewrite(struct storage_tx *tx, const struct audit_entry *entry);
/* In call id, locked by this transaction: user's member row and sessions take pseudonym as
 * their user (a member's name, when they had one, too), the caller column too, and the call
 * row takes metadata and view, which the domain rewrote. ERR_CONFLICT if pseudonym is a
 * member already. */
enum err storage_tx_call_rename_user(struct storage_tx *tx, const char *id, const char *user,
				     const char *pseudonym, const char *metadata,
				     const char *view);
/* Delete user's chat-set presence and idempotency records. Hold the user first (rule 5). */
enum err storage_tx_user_forget(struct storage_tx *tx, const char *user);
/* Leave no readable copy of what was overwritten or deleted in the database's files where the
 * backend can: SQLite zeroes freed content as it goes (secure_delete) and here checkpoints the
 * WAL into the database and truncates it; PostgreSQL keeps dead row versions until VACUUM,
 * which cannot run in a transaction: nothing is done there. */
enum err storage_scrub(struct storage *st);

/* Storage: the one interface the domain uses, with one backend per database (SQLite today,
 * PostgreSQL next), picked at run time from the CALLSTATE_DB URL.
 *
 * Writes happen only inside storage_transact(): the backend runs the caller's function in a
 * transaction and returns once that transaction is durable (committed and fsync'd). Backends
 * may group many concurrent transactions into one commit (group commit); each function then
 * runs in its own savepoint, so one failing function rolls back only its own changes.
 * A transaction function must not block on anything but its storage_tx calls, and must not
 * keep pointers into the tx after it returns.
 *
 * Reads outside a transaction see every transaction that storage_transact() has returned for.
 * All functions are safe to call from many threads; no connection is used by two at once.
 * Errors: ERR_NOT_FOUND, ERR_CONFLICT (unique key), ERR_UNAVAILABLE (busy, locked, disk full,
 * connection lost), ERR_NOMEM, ERR_INTERNAL. Backends log driver text themselves, once. */
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

/* Open the database named by url ("sqlite:PATH", "postgresql://…", "postgres://…").
 * Does not migrate. ERR_INVALID for an unknown scheme, ERR_UNAVAILABLE if it cannot open. */
enum err storage_open(const char *url, struct storage **ret_st);
/* Close every connection; waits for the writer to drain. NULL is accepted. */
void storage_close(struct storage *st);
/* Apply pending migrations, each in its own transaction; *ret_applied counts them. */
enum err storage_migrate(struct storage *st, int *ret_applied);
/* The newest applied migration version, 0 for an empty database. */
enum err storage_schema_version(struct storage *st, int *ret_version);
/* Cheap round trip to the database (readiness). */
enum err storage_ping(struct storage *st);
const char *storage_backend_name(const struct storage *st);

typedef enum err (*storage_tx_fn)(struct storage_tx *tx, void *arg);
/* Run fn in a transaction; ERR_OK only once it is durable. fn's own error rolls it back and
 * is returned as is. If the commit fails, ERR_UNAVAILABLE is returned even though fn
 * succeeded: the caller must discard what fn produced. */
enum err storage_transact(struct storage *st, storage_tx_fn fn, void *arg);

/* --- inside a transaction ---
 * ERR_CONFLICT and ERR_NOT_FOUND from a write leave nothing written, so the function may carry
 * on; after any other error the function must fail, and its savepoint undoes what it wrote.
 * Reads through storage_* (not storage_tx_*) inside a function do not see its writes, and a
 * nested storage_transact fails with ERR_INTERNAL. */
/* The call with its members and participants, locked for this transaction where the backend
 * has row locks. ERR_NOT_FOUND if absent. */
enum err storage_tx_call_get(struct storage_tx *tx, const char *id, struct call **ret_call);

/* Insert a new call with its members, and view, its API JSON as of this write.
 * ERR_CONFLICT if the id or room exists. */
enum err storage_tx_call_insert(struct storage_tx *tx, const struct call *c, const char *view);
/* Write back every field of the call row and of each member; insert participants whose sid is
 * new and update the others. ERR_NOT_FOUND if the call is absent. */
/* loaded, when not NULL, is the call as this transaction read it: members and sessions equal
 * to theirs in it are not written again. */
enum err storage_tx_call_update(struct storage_tx *tx, const struct call *c,
				const struct call *loaded, const char *view);
/* Append to the feed; sets ev->seq. */
enum err storage_tx_event_append(struct storage_tx *tx, struct event *ev);
/* ERR_NOT_FOUND when (caller, key) has no record. */
enum err storage_tx_idempotency_get(struct storage_tx *tx, const char *caller, const char *key,
				    struct idempotency *ret);
/* Insert or replace the record of (caller, key). */
enum err storage_tx_idempotency_put(struct storage_tx *tx, const char *caller, const char *key,
				    const struct idempotency *rec);

/* ERR_CONFLICT when a webhook with this id was stored before (a duplicate delivery). */
enum err storage_tx_webhook_insert(struct storage_tx *tx, const struct webhook_record *rec);
/* Sessions of the call except_call_id (NULL for none) are left out: the caller holds that call
 * in memory, changed, and merges its sessions in itself. */
enum err storage_tx_presence_get(struct storage_tx *tx, const char *user,
				 const char *except_call_id, struct presence_record *ret);
/* Insert or replace the chat-set status of user. */
enum err storage_tx_presence_set(struct storage_tx *tx, const char *user, int status,
				 int64_t since);

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
/* Events with seq > after, ascending, at most limit. */
enum err storage_events_after(struct storage *st, int64_t after, int limit,
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

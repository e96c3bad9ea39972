/* The PostgreSQL backend (libpq), for one or several callstate instances on one database.
 * How it keeps the rules of include/storage.h with many writers:
 *
 * - Transactions (rule 1) run on a pooled connection at READ COMMITTED: BEGIN, the caller's
 *   function, COMMIT. A serialization failure (40001) or a deadlock (40P01) rolls back and runs
 *   the function again, and so does a connection lost before COMMIT was sent (the server rolled
 *   it back); a connection lost during COMMIT is ERR_UNAVAILABLE, since it may have committed.
 * - A call is locked with SELECT ... FOR UPDATE (rule 2); the timer pass takes a due call with
 *   FOR UPDATE SKIP LOCKED (rule 7). Its members and sessions are read by statements of their
 *   own after the lock (each with a snapshot taken once the lock is held, so that they see
 *   what the transaction that held the call committed), in the same round trip.
 * - Expected conflicts never abort the transaction (rule 3): inserts that may meet an existing
 *   key are INSERT ... ON CONFLICT, and the row count tells the conflict. A webhook's insert
 *   is the exception: taken to be new, it is deferred to the next round trip, and an id
 *   already stored fails that round trip and runs the function again with the insert
 *   checked at once (rule 1), so that the function learns of the duplicate after all.
 * - Round trips: writes whose results nobody reads wait for the next statement that has a
 *   reader, or the COMMIT, and go with it in one pipeline. A webhook about one participant
 *   reads that user's presence (lock, then read) in the round trip of the call's read
 *   (storage_tx_call_get_with_presence), and its feed events are numbered in the round trip
 *   of its COMMIT when it can (below): three round trips at most.
 * - The feed (rule 4). A sequence hands out numbers at insert, not at commit, so a reader
 *   could page past a small seq whose transaction commits after a larger one. Events are
 *   inserted with seq NULL instead; once their transaction has committed, a numbering
 *   transaction gives every committed, unnumbered event the next seqs, in insert order (pos),
 *   under a transaction-level advisory lock: one numbering at a time across all instances, and
 *   the next one takes the lock only once the last has committed and is visible, so seq N is
 *   never visible before a smaller one. storage_transact returns once a numbering round that
 *   began after its commit has run, so its events are in the feed when it returns; concurrent
 *   commits share rounds, one round of an instance at a time. A commit that finds no round of
 *   its instance running takes the next one and sends it in its own pipeline, after the
 *   COMMIT: the statements of a pipeline after its last COMMIT, up to the sync, are one
 *   transaction of their own, which the sync commits. The others wait for a round that begins
 *   after their commit, and the first of them to find none running runs it in a round trip of
 *   its own. (A round for every commit would cost more than the round trip it saves: each
 *   would wait for the lock holding its connection, and write and flush apart.) A ticker
 *   also numbers what others left behind (an instance killed between its commit and its
 *   numbering) every FEED_TICK_MS.
 * - Presence (rule 5): pg_advisory_xact_lock on the user id's hash. Idempotency (rule 6):
 *   INSERT ... ON CONFLICT DO UPDATE ... WHERE the record expired, which waits for a claim of
 *   the same key in flight to commit or roll back.
 * - A read of several statements runs in one REPEATABLE READ READ ONLY transaction (rule 8).
 *   Token minting's reads (storage_call_access) of concurrent requests share one statement,
 *   sent after each of them arrived (db/pg_batch_read.c).
 * - The pool (rule 9) opens connections on demand up to pool_size; a broken one is dropped,
 *   and the next use connects again, so service resumes by itself after an outage or failover
 *   (a multi-host URL with target_session_attrs=read-write finds the new primary).
 * - Nothing outlives a transaction but the named prepared statements of each connection
 *   (parsed and planned once, not at every execution): no session settings, no session
 *   advisory locks. With storage_options.unprepared every statement goes as an unnamed
 *   PQexecParams instead, and nothing at all outlives a transaction: that is what pgbouncer in
 *   transaction pooling mode needs. Settings belong in the URL (options=-c...). */
#include <errno.h>
#include <fcntl.h>
#include <libpq-fe.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"
#include "metrics.h"
#include "pg_batch_read.h"
#include "pool.h"
#include "rows.h"
#include "storage_impl.h"
#include "threadname.h"
#include "ticker.h"

#define POOL_WAIT_MS 5000   /* the longest a thread waits for a free connection */
#define CONNECT_TIMEOUT_S "5"
#define TX_ATTEMPTS 5       /* runs of one transaction function, retries included */
#define FEED_TICK_MS 1000   /* numbering of what other instances left unnumbered */
#define FEED_BATCH "10000"  /* events numbered by one numbering transaction at most */
#define LIST_LIMIT_MAX 500
#define EVENTS_GROW 64
#define MAX_PARAMS 24
#define BYTEA_OID 17
#define ACCESS_BATCHES 2    /* access read batches in flight at once (pg_batch_read.c) */
/* Advisory lock classes, the first key of pg_advisory_xact_lock(int, int): 0x6373000N. */
#define LOCK_MIGRATE "1668481025"
#define LOCK_FEED "1668481026"
#define LOCK_PRESENCE "1668481027"
#define LOCK_DELIVERY "1668481028"
/* The feed's numbering notifies this channel with the newest seq (see listener_main). */
#define FEED_CHANNEL "callstate_feed"
#define LISTEN_RETRY_MAX_MS 8000

/* ---- statements ---- */

/* The list statements share their parameters, as in db/sqlite.c: $1/$2 the exclusive upper
 * keyset bound (created_at, id), $3 since, $4 status, $5 outcome, $6 kind, $7 chat_id, $8 the
 * row limit, $9 user (the user list only). Each driving statement puts its own filter first. */
#define F_STATUS "($4::text IS NULL OR c.status = $4::text)"
#define F_OUTCOME "($5::text IS NULL OR c.outcome = $5::text)"
#define F_KIND "($6::text IS NULL OR c.kind = $6::text)"
#define F_CHAT "($7::text IS NULL OR c.chat_id = $7::text)"
#define LIST_CALLS(where)                                                                          \
	"SELECT " VIEW_COLS " FROM calls c WHERE " where                                           \
	" AND (c.created_at, c.id) < ($1::bigint, $2::text) AND c.created_at >= $3::bigint"       \
	" ORDER BY c.created_at DESC, c.id DESC LIMIT $8::bigint"
/* A participant session that counts toward presence, as domain/call_room.c counts them. */
#define COUNTS "NOT s.aborted AND NOT s.observer"

enum stmt_id {
	S_BEGIN,
	S_BEGIN_READ,
	S_COMMIT,
	S_PING,
	S_VERSION_CREATE,
	S_VERSION_MAX,
	S_VERSION_INSERT,
	S_CALL_LOCK,
	S_CALL_LOCK_DUE,
	S_CALL_READ,
	S_VIEW_BY_ID,
	S_CALL_INSERT,
	S_CALL_UPDATE,
	S_MEMBERS,
	S_MEMBER_UPSERT,
	S_PARTICIPANTS,
	S_PARTICIPANT_UPSERT,
	S_EVENT_INSERT,
	S_EVENTS_AFTER,
	S_EVENTS_GET,
	S_AUDIT,
	S_IDEM_CLAIM,
	S_IDEM_GET,
	S_DUE,
	S_WEBHOOK_INSERT,
	S_WEBHOOK_INSERT_NEW,
	S_PRESENCE_LOCK,
	S_PRESENCE_GET,
	S_PRESENCE_SET,
	S_CALL_ACCESS,
	S_LIST_ALL,
	S_LIST_STATUS,
	S_LIST_OUTCOME,
	S_LIST_CHAT,
	S_LIST_USER,
	S_STATS,
	S_USER_CALL_IDS,
	S_WEBHOOK_REWRITE,
	S_EVENT_REWRITE,
	S_RENAME_MEMBER,
	S_RENAME_SESSIONS,
	S_RENAME_CALL,
	S_FORGET_PRESENCE,
	S_FORGET_IDEMPOTENCY,
	S_PURGE_CALLS,
	S_PURGE_UNOWNED,
	S_DELIVERY_CURSOR,
	S_DELIVERY_ENQUEUE_LOCK,
	S_DELIVERY_CURSOR_MOVE,
	S_DELIVERY_ADD,
	S_DELIVERY_HEADS,
	S_DELIVERY_BEHIND,
	S_DELIVERY_NEXT_DUE,
	S_DELIVERY_DELETE,
	S_DELIVERY_SETTLE,
	S_DELIVERY_ADVANCE_LOCK,
	S_DELIVERY_ADVANCE,
	S_DELIVERY_STATUS,
	S_FEED_LOCK,
	S_FEED_NUMBER,
	S_COUNT
};

static const struct {
	const char *name; /* for the log */
	const char *sql;
} stmts[S_COUNT] = {
	[S_BEGIN] = {"begin", "BEGIN"},
	/* Reads of several statements: one snapshot (storage.h rule 8). */
	[S_BEGIN_READ] = {"begin_read", "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"},
	[S_COMMIT] = {"commit", "COMMIT"},
	[S_PING] = {"ping", "SELECT 1"},
	[S_VERSION_CREATE] = {"schema_version_create",
			      "CREATE TABLE IF NOT EXISTS schema_version (version integer PRIMARY KEY,"
			      " name text NOT NULL, applied_at bigint NOT NULL)"},
	[S_VERSION_MAX] = {"schema_version",
			   "SELECT coalesce(max(version), 0) FROM schema_version"},
	[S_VERSION_INSERT] = {"schema_version_insert",
			      "INSERT INTO schema_version (version, name, applied_at)"
			      " VALUES ($1::integer, $2::text, $3::bigint)"},
	[S_CALL_LOCK] = {"call_get", "SELECT " CALL_COLS " FROM calls c WHERE c.id = $1::text"
					 " FOR UPDATE"},
	[S_CALL_LOCK_DUE] = {"call_get_due",
			     "SELECT " CALL_COLS " FROM calls c WHERE c.id = $1::text"
			     " AND c.next_deadline <= $2::bigint FOR UPDATE SKIP LOCKED"},
	[S_CALL_READ] = {"call_read", "SELECT " CALL_COLS " FROM calls c WHERE c.id = $1::text"},
	[S_VIEW_BY_ID] = {"call_view", "SELECT " VIEW_COLS " FROM calls c WHERE c.id = $1::text"},
	[S_CALL_INSERT] = {"call_insert",
			   "INSERT INTO calls (id, room, kind, status, outcome, caller, chat_id,"
			   " metadata, created_at, answered_at, ended_at, end_cause,"
			   " room_end_reason, room_finished_at, ring_timeout_s, ring_deadline,"
			   " join_deadline, next_deadline, version, view) VALUES ($1, $2, $3, $4,"
			   " $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19,"
			   " $20) ON CONFLICT DO NOTHING"},
	[S_CALL_UPDATE] = {"call_update",
			   "UPDATE calls SET room = $2, kind = $3, status = $4, outcome = $5,"
			   " caller = $6, chat_id = $7, metadata = $8, created_at = $9,"
			   " answered_at = $10, ended_at = $11, end_cause = $12,"
			   " room_end_reason = $13, room_finished_at = $14, ring_timeout_s = $15,"
			   " ring_deadline = $16, join_deadline = $17, next_deadline = $18,"
			   " version = $19, view = $20 WHERE id = $1"},
	[S_MEMBERS] = {"members_get", "SELECT " MEMBER_COLS " FROM call_members"
				      " WHERE call_id = $1::text ORDER BY position"},
	[S_MEMBER_UPSERT] = {"member_upsert",
			     "INSERT INTO call_members (call_id, position, created_at, " MEMBER_COLS
			     ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8::integer::boolean,"
			     " $9::integer::boolean, $10, $11, $12, $13)"
			     " ON CONFLICT (call_id, user_id) DO UPDATE SET"
			     " position = excluded.position, created_at = excluded.created_at,"
			     " role = excluded.role, invite = excluded.invite, name = excluded.name,"
			     " in_room = excluded.in_room, left_call = excluded.left_call,"
			     " responded_at = excluded.responded_at,"
			     " token_minted_at = excluded.token_minted_at,"
			     " first_joined_at = excluded.first_joined_at,"
			     " last_left_at = excluded.last_left_at"},
	[S_PARTICIPANTS] = {"participants_get",
			    "SELECT " PARTICIPANT_COLS " FROM participants WHERE call_id = $1::text"
			    " ORDER BY joined_at IS NULL, joined_at, sid"},
	[S_PARTICIPANT_UPSERT] = {"participant_upsert",
				  "INSERT INTO participants (call_id, " PARTICIPANT_COLS
				  ") VALUES ($1, $2, $3, $4, $5, $6, $7::integer::boolean,"
				  " $8::integer::boolean, $9::integer::boolean, $10, $11)"
				  " ON CONFLICT (call_id, sid) DO UPDATE SET"
				  " user_id = excluded.user_id, joined_at = excluded.joined_at,"
				  " left_at = excluded.left_at,"
				  " disconnect_reason = excluded.disconnect_reason,"
				  " aborted = excluded.aborted, left_inferred = excluded.left_inferred,"
				  " observer = excluded.observer,"
				  " screen_share_at = excluded.screen_share_at,"
				  " screen_share_ended_at = excluded.screen_share_ended_at"},
	[S_EVENT_INSERT] = {"event_append", "INSERT INTO events (" EVENT_COLS
					    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"},
	[S_EVENTS_AFTER] = {"events_after",
			    "SELECT seq, " EVENT_COLS " FROM events WHERE seq > $1::bigint"
			    " ORDER BY seq LIMIT $2::bigint"},
	[S_EVENTS_GET] = {"events_get",
			  "SELECT seq, " EVENT_COLS " FROM events WHERE seq IN"
			  " (SELECT value::bigint FROM json_array_elements_text($1::json))"
			  " ORDER BY seq"},
	/* As db/sqlite.c's call_audit. An event not numbered yet shows no seq. */
	[S_AUDIT] = {"call_audit",
		     "SELECT 1 AS webhook, NULL::bigint, id, event, received_at AS at, NULL::bigint,"
		     " NULL::text, NULL::text, convert_from(body, 'UTF8'),"
		     " coalesce(call_version, 0) + 1 AS pos FROM webhooks WHERE call_id = $1::text"
		     " UNION ALL SELECT 0, seq, id, type, at, call_version, cause, cause_ref, data,"
		     " call_version FROM events WHERE call_id = $1::text"
		     " ORDER BY pos, webhook DESC, at, id"},
	/* Inserts the record, or replaces one created before $6 (expired); a live one stays and
	 * the row count is 0. A claim of the same key in flight makes this wait for it. */
	[S_IDEM_CLAIM] = {"idempotency_claim",
			  "INSERT INTO idempotency_keys"
			  " (caller, key, call_id, request_hash, created_at)"
			  " VALUES ($1, $2, $3, $4, $5)"
			  " ON CONFLICT (caller, key) DO UPDATE SET call_id = excluded.call_id,"
			  " request_hash = excluded.request_hash, created_at = excluded.created_at"
			  " WHERE idempotency_keys.created_at < $6::bigint"},
	[S_IDEM_GET] = {"idempotency_get",
			"SELECT call_id, request_hash, created_at FROM idempotency_keys"
			" WHERE caller = $1::text AND key = $2::text"},
	[S_DUE] = {"calls_due",
		   "SELECT id, next_deadline FROM calls WHERE next_deadline <= $1::bigint"
		   " AND (next_deadline, id) > ($2::bigint, $3::text)"
		   " ORDER BY next_deadline, id LIMIT $4::bigint"},
	[S_WEBHOOK_INSERT] = {"webhook_insert",
			      "INSERT INTO webhooks (id, event, room, call_id, created_at,"
			      " received_at, body, call_version)"
			      " VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
			      " ON CONFLICT (id) DO NOTHING"},
	/* Deferred, for an event taken to be new (see pg_tx_webhook_insert). */
	[S_WEBHOOK_INSERT_NEW] = {"webhook_insert_new",
				  "INSERT INTO webhooks (id, event, room, call_id, created_at,"
				  " received_at, body, call_version)"
				  " VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"},
	[S_PRESENCE_LOCK] = {"presence_lock",
			     "SELECT pg_advisory_xact_lock(" LOCK_PRESENCE ", hashtext($1::text))"},
	/* As db/sqlite.c's presence_get: one row whatever exists. */
	[S_PRESENCE_GET] = {"presence_get",
			    "SELECT p.status, p.since, o.call_id,"
			    " (SELECT min(s.joined_at) FROM participants s"
			    " WHERE s.call_id = o.call_id AND s.user_id = $1::text AND " COUNTS
			    " AND s.joined_at IS NOT NULL"
			    " AND (s.left_at IS NULL OR s.left_at >= o.joined_at)),"
			    " o.joined_at,"
			    " (SELECT s.left_at FROM participants s JOIN call_members m"
			    " ON m.call_id = s.call_id AND m.user_id = s.user_id"
			    " WHERE s.user_id = $1::text AND s.left_at IS NOT NULL AND " COUNTS
			    " AND s.call_id IS DISTINCT FROM $2::text"
			    " ORDER BY s.left_at DESC LIMIT 1)"
			    " FROM (SELECT $1::text AS user_id) u"
			    " LEFT JOIN presence p ON p.user_id = u.user_id"
			    " LEFT JOIN LATERAL (SELECT s.call_id, s.joined_at FROM participants s"
			    " JOIN call_members m ON m.call_id = s.call_id AND m.user_id = s.user_id"
			    " WHERE s.user_id = $1::text AND s.left_at IS NULL"
			    " AND s.joined_at IS NOT NULL AND " COUNTS
			    " AND s.call_id IS DISTINCT FROM $2::text"
			    " ORDER BY s.joined_at DESC, s.call_id DESC LIMIT 1) o ON true"},
	[S_PRESENCE_SET] = {"presence_set",
			    "INSERT INTO presence (user_id, status, since) VALUES ($1, $2, $3)"
			    " ON CONFLICT (user_id) DO UPDATE SET status = excluded.status,"
			    " since = excluded.since"},
	/* The access reads of a batch (db/pg_batch_read.c): $1 the call ids, $2 the users, as
	 * text arrays of one element per request; each row says by q.i (from 1) whose it is, and
	 * a request without a row has no such call. */
	[S_CALL_ACCESS] = {"call_access",
			   "SELECT q.i, c.room, c.kind, c.status, c.next_deadline,"
			   " m.user_id IS NOT NULL, m.invite, m.name"
			   " FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS q(id, user_id, i)"
			   " JOIN calls c ON c.id = q.id"
			   " LEFT JOIN call_members m ON m.call_id = c.id AND m.user_id = q.user_id"},
	[S_LIST_ALL] = {"calls_list", LIST_CALLS(F_STATUS " AND " F_OUTCOME " AND " F_KIND
							  " AND " F_CHAT)},
	[S_LIST_STATUS] = {"calls_list_status", LIST_CALLS("c.status = $4::text AND " F_OUTCOME
							   " AND " F_KIND " AND " F_CHAT)},
	[S_LIST_OUTCOME] = {"calls_list_outcome", LIST_CALLS("c.outcome = $5::text AND " F_STATUS
							     " AND " F_KIND " AND " F_CHAT)},
	[S_LIST_CHAT] = {"calls_list_chat", LIST_CALLS("c.chat_id = $7::text AND " F_STATUS
						       " AND " F_OUTCOME " AND " F_KIND)},
	[S_LIST_USER] = {"calls_list_user",
			 "SELECT " VIEW_COLS " FROM call_members m JOIN calls c ON c.id = m.call_id"
			 " WHERE m.user_id = $9::text"
			 " AND (m.created_at, m.call_id) < ($1::bigint, $2::text)"
			 " AND m.created_at >= $3::bigint AND " F_STATUS " AND " F_OUTCOME
			 " AND " F_KIND " AND " F_CHAT
			 " ORDER BY m.created_at DESC, m.call_id DESC LIMIT $8::bigint"},
	[S_STATS] = {"call_stats", STATS_SQL("$1::bigint", "$2::bigint", "$3::bigint",
					     "$4::bigint", "greatest")},
	[S_USER_CALL_IDS] = {"user_call_ids",
			     "SELECT call_id FROM call_members WHERE user_id = $1::text"
			     " AND call_id > $2::text UNION SELECT call_id FROM participants"
			     " WHERE user_id = $1::text AND call_id > $2::text"
			     " ORDER BY 1 LIMIT $3::bigint"},
	[S_WEBHOOK_REWRITE] = {"webhook_rewrite",
			       "UPDATE webhooks SET body = $2::bytea WHERE id = $1::text"},
	[S_EVENT_REWRITE] = {"event_rewrite",
			     "UPDATE events SET data = $2::text WHERE id = $1::text"},
	[S_RENAME_MEMBER] = {"rename_member",
			     "UPDATE call_members SET user_id = $3::text,"
			     " name = CASE WHEN coalesce(name, '') = '' THEN name ELSE $3::text END"
			     " WHERE call_id = $1::text AND user_id = $2::text"},
	[S_RENAME_SESSIONS] = {"rename_sessions",
			       "UPDATE participants SET user_id = $3::text"
			       " WHERE call_id = $1::text AND user_id = $2::text"},
	[S_RENAME_CALL] = {"rename_call",
			   "UPDATE calls SET caller = CASE WHEN caller = $2::text THEN $3::text"
			   " ELSE caller END, metadata = $4::text, view = $5::text"
			   " WHERE id = $1::text"},
	[S_FORGET_PRESENCE] = {"forget_presence",
			       "DELETE FROM presence WHERE user_id = $1::text"},
	[S_FORGET_IDEMPOTENCY] = {"forget_idempotency",
				  "DELETE FROM idempotency_keys WHERE caller = $1::text"},
	/* One statement, so one round trip: the calls are locked first (SKIP LOCKED: storage.h
	 * rule 11), then their events, webhooks and the calls themselves go, members and
	 * sessions with them (ON DELETE CASCADE). The count is the calls'. */
	[S_PURGE_CALLS] = {"purge_calls",
			   "WITH doomed AS (SELECT id FROM calls WHERE created_at < $1::bigint"
			   " AND ended_at < $1::bigint ORDER BY created_at, id LIMIT $2::bigint"
			   " FOR UPDATE SKIP LOCKED),"
			   " gone_events AS (DELETE FROM events WHERE call_id IN"
			   " (SELECT id FROM doomed)),"
			   " gone_webhooks AS (DELETE FROM webhooks WHERE call_id IN"
			   " (SELECT id COLLATE \"default\" FROM doomed)),"
			   " gone_calls AS (DELETE FROM calls WHERE id IN (SELECT id FROM doomed)"
			   " RETURNING 1)"
			   " SELECT count(*) FROM gone_calls"},
	/* The feed is walked in seq order up to its first event at or after $1 (seq follows at
	 * but for moments), so that no index on at is needed. Idempotency records are expired
	 * long before: a live one points to a call too young to purge. */
	[S_PURGE_UNOWNED] = {"purge_unowned",
			     "WITH loose_events AS (DELETE FROM events WHERE id IN (SELECT id"
			     " FROM events WHERE call_id IS NULL AND seq < coalesce((SELECT seq"
			     " FROM events WHERE seq IS NOT NULL AND at >= $1::bigint ORDER BY seq"
			     " LIMIT 1), (SELECT last_seq + 1 FROM feed_counter)) ORDER BY seq"
			     " LIMIT $2::bigint FOR UPDATE SKIP LOCKED) RETURNING 1),"
			     " loose_webhooks AS (DELETE FROM webhooks WHERE id IN (SELECT id"
			     " FROM webhooks WHERE call_id IS NULL AND received_at < $1::bigint"
			     " ORDER BY received_at LIMIT $2::bigint FOR UPDATE SKIP LOCKED)"
			     " RETURNING 1),"
			     " expired_keys AS (DELETE FROM idempotency_keys WHERE (caller, key) IN"
			     " (SELECT caller, key FROM idempotency_keys WHERE created_at < $1::bigint"
			     " ORDER BY created_at LIMIT $2::bigint FOR UPDATE SKIP LOCKED)"
			     " RETURNING 1),"
			     " settled_deliveries AS (DELETE FROM deliveries WHERE seq IN (SELECT seq"
			     " FROM deliveries WHERE state IN (1, 2) AND at < $1::bigint ORDER BY at"
			     " LIMIT $2::bigint FOR UPDATE SKIP LOCKED) RETURNING 1)"
			     " SELECT (SELECT count(*) FROM loose_events)"
			     " + (SELECT count(*) FROM loose_webhooks)"
			     " + (SELECT count(*) FROM expired_keys)"
			     " + (SELECT count(*) FROM settled_deliveries)"},
	/* As db/sqlite.c's delivery statements. */
	[S_DELIVERY_CURSOR] = {"delivery_cursor", "SELECT seq FROM delivery_cursor WHERE id = 1"},
	/* Enqueues and advances exclude each other (storage.h rule 12): each takes the lock in a
	 * statement of its own, so that the statements after it, at READ COMMITTED, see what the
	 * other committed before. */
	[S_DELIVERY_ENQUEUE_LOCK] = {"delivery_enqueue_lock",
				     "SELECT pg_advisory_xact_lock(" LOCK_DELIVERY ", 0)"},
	[S_DELIVERY_CURSOR_MOVE] = {"delivery_cursor_move",
				    "UPDATE delivery_cursor SET seq = $2::bigint"
				    " WHERE id = 1 AND seq = $1::bigint"},
	[S_DELIVERY_ADD] = {"delivery_add",
			    DELIVERY_ADD_SQL("$1::bigint", "$2::text", "$3::bigint")},
	/* SKIP LOCKED: an instance claiming heads passes over those another instance is leasing
	 * at the same moment instead of waiting for them (storage.h rule 12). */
	[S_DELIVERY_HEADS] = {"delivery_heads",
			      DELIVERY_HEADS_SQL("$1::text", "$2::bigint", "$3::bigint",
						 "$4::bigint", " FOR UPDATE SKIP LOCKED")},
	[S_DELIVERY_BEHIND] = {"delivery_behind",
			       DELIVERY_BEHIND_SQL("$1::text", "$2::bigint", "$3::bigint")},
	[S_DELIVERY_NEXT_DUE] = {"delivery_next_due", DELIVERY_NEXT_DUE_SQL("$1::text")},
	[S_DELIVERY_DELETE] = {"delivery_delete", "DELETE FROM deliveries WHERE seq = $1::bigint"},
	[S_DELIVERY_SETTLE] = {"delivery_settle",
			       DELIVERY_SETTLE_SQL("$1::bigint", "$2::int", "$3::int", "$4::bigint",
						   "$5::bigint", "$6::text", "$7::text",
						   "$8::bigint")},
	[S_DELIVERY_ADVANCE_LOCK] = {"delivery_advance_lock",
				     "SELECT pg_advisory_xact_lock_shared(" LOCK_DELIVERY ", 0)"},
	[S_DELIVERY_ADVANCE] = {"delivery_advance", DELIVERY_ADVANCE_SQL("$1::text")},
	[S_DELIVERY_STATUS] = {"delivery_status", DELIVERY_STATUS_SQL("$1::text")},
	/* A numbering round (see the top of this file and feed_round): the feed's lock, then,
	 * with a snapshot taken once it is held, the committed events not yet numbered get the
	 * next seqs in insert order, and feed_counter moves on by as many (only when there are
	 * some, so a round that finds nothing writes nothing and needs no flush). The events to
	 * number are found by a plain scan of events_unnumbered, bitmap scans being off for the
	 * round's transaction: a bitmap scan would visit every entry the earlier rounds left dead
	 * (one per event numbered since the last vacuum, 3 ms a round after 20 000 events), where
	 * a plain one marks them dead in the index as it passes and the next round skips them. */
	[S_FEED_LOCK] = {"feed_lock", "SELECT set_config('enable_bitmapscan', 'off', true),"
				      " pg_advisory_xact_lock(" LOCK_FEED ", 0)"},
	[S_FEED_NUMBER] = {"feed_number",
			   "WITH todo AS (SELECT id, pos FROM events WHERE seq IS NULL ORDER BY pos"
			   " LIMIT " FEED_BATCH "),"
			   " numbered AS (SELECT id, row_number() OVER (ORDER BY pos) AS n FROM todo),"
			   " counter AS (UPDATE feed_counter SET last_seq = last_seq"
			   " + (SELECT count(*) FROM todo) WHERE (SELECT count(*) FROM todo) > 0"
			   " RETURNING last_seq - (SELECT count(*) FROM todo) AS base,"
			   " last_seq AS top),"
			   " numbering AS (UPDATE events e SET seq = counter.base + numbered.n"
			   " FROM numbered, counter WHERE e.id = numbered.id)"
			   /* Delivered at the commit, to every instance's listener: the long polls.
			    * The top comes back too, for this instance's own (see feed_numbered). */
			   " SELECT top, pg_notify('" FEED_CHANNEL "', top::text) FROM counter"},
};

/* ---- state ---- */

/* What this instance asked of the server, logged at close (the bench reads it per event):
 * round trips are the waits for an answer, one per pipeline; statements are those executed,
 * BEGIN and COMMIT included (pg_stat_statements leaves them out). */
struct pg_totals {
	atomic_uint_fast64_t round_trips, statements, transactions, numbering_rounds;
};

struct conn {
	PGconn *pg;
	struct pg_totals *totals; /* the storage's; NULL for the listener's connection */
	bool broken;            /* lost, or in a state no statement can clear: closed on return */
	bool prepare;           /* named statements, prepared once on this connection */
	bool prepared[S_COUNT];
};

/* A statement whose result nobody waits for, kept until the next one that has a reader (or
 * the COMMIT) so that they all go in one round trip. The parameters are copied into buf: the
 * record they came from may be gone by then. */
struct deferred {
	enum stmt_id id;
	struct params *p;
};

struct pg_tx {
	struct storage_tx base; /* first: storage_impl.h */
	struct conn *cn;
	bool failed;            /* a statement failed: the transaction can only roll back */
	bool retry;             /* ... with a failure that running it again may not meet */
	bool appended;          /* events were appended: number them after the commit */
	bool check_webhooks;    /* a webhook is inserted at once, its duplicate told to fn */
	bool webhook_seen;      /* a deferred webhook insert met its id already stored */
	struct deferred *deferred; /* owned, n_deferred of them, BEGIN first */
	size_t n_deferred, cap_deferred;
};

struct pg_storage {
	struct storage base; /* first: storage_impl.h */
	char *url;
	struct pool conns; /* storage_options.pool_size at most */
	bool conns_ready;
	bool prepare;            /* named prepared statements (storage_options.unprepared) */
	struct ticker *feed_ticker;
	struct pg_totals totals;
	struct access_batcher access; /* token minting's reads (pg_call_access) */
	/* Numbering rounds of this instance, one at a time (see feed_number_committed). */
	pthread_mutex_t feed_mu;
	pthread_cond_t feed_cond;
	uint64_t feed_started, feed_done;
	bool feed_running;
	/* The listener: LISTENs on FEED_CHANNEL on a connection of its own, for the long polls
	 * (base.feed) to hear of other instances' rounds (this instance's own raise it at their
	 * commit); listener_wake stops it. Not run without prepared statements: pgbouncer in
	 * transaction pooling mode keeps no LISTEN, and the waiters look again each second. */
	bool feed_signal_ready;
	bool listener_running;
	pthread_t listener;
	int listener_wake[2];
};

static struct pg_storage *to_pg(struct storage *st)
{
	return (struct pg_storage *)st;
}

static struct pg_tx *to_pg_tx(struct storage_tx *tx)
{
	return (struct pg_tx *)tx;
}

/* ---- errors ---- */

enum outcome { OUT_OK, OUT_CONFLICT, OUT_RETRY, OUT_UNAVAILABLE, OUT_INTERNAL };

/* What a failed result means (SQLSTATE classes of PostgreSQL's appendix A). */
static enum outcome classify(const char *state, bool connection_bad)
{
	if (connection_bad || !state)
		return OUT_UNAVAILABLE;
	if (strcmp(state, "23505") == 0)
		return OUT_CONFLICT;
	if (strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0)
		return OUT_RETRY;
	/* 08 connection exception, 53 insufficient resources (disk full, too many
	 * connections), 57 operator intervention (shutdown, cannot connect now, statement
	 * canceled), 25006 read-only transaction (a standby after a failover), 58 system error. */
	if (strncmp(state, "08", 2) == 0 || strncmp(state, "53", 2) == 0 ||
	    strncmp(state, "57", 2) == 0 || strncmp(state, "58", 2) == 0 ||
	    strcmp(state, "25006") == 0)
		return OUT_UNAVAILABLE;
	return OUT_INTERNAL;
}

static void count_error(enum outcome o)
{
	if (o == OUT_RETRY)
		metrics_db_error(METRICS_POSTGRES, METRICS_DB_SERIALIZATION);
	else if (o == OUT_UNAVAILABLE)
		metrics_db_error(METRICS_POSTGRES, METRICS_DB_UNAVAILABLE);
	else if (o == OUT_INTERNAL)
		metrics_db_error(METRICS_POSTGRES, METRICS_DB_INTERNAL);
}

/* The one place driver text is logged (and errors counted); a conflict is a client's
 * duplicate, not a fault. */
static enum outcome pg_fail(struct conn *cn, const PGresult *res, const char *op)
{
	bool bad = PQstatus(cn->pg) == CONNECTION_BAD;
	const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	enum outcome o = classify(state, bad);
	count_error(o);
	const char *text = res ? PQresultErrorMessage(res) : PQerrorMessage(cn->pg);
	char value[320];
	log_write(o == OUT_CONFLICT || o == OUT_RETRY ? LOG_DEBUG : LOG_ERROR,
		  "msg=\"postgres statement failed\" op=%s sqlstate=%s err=%s", op,
		  state ? state : "-", log_value(value, sizeof value, text && *text ? text : "-"));
	/* A connection that failed outside a result (or that the server is leaving) is not
	 * trusted again; the pool opens a new one. */
	if (bad || o == OUT_UNAVAILABLE)
		cn->broken = true;
	return o;
}

static enum err err_of(enum outcome o)
{
	switch (o) {
	case OUT_OK: return ERR_OK;
	case OUT_CONFLICT: return ERR_CONFLICT;
	case OUT_RETRY: /* fallthrough: the transaction's caller runs it again */
	case OUT_UNAVAILABLE: return ERR_UNAVAILABLE;
	case OUT_INTERNAL: break;
	}
	return ERR_INTERNAL;
}

/* A value the model cannot hold, read by statement id. */
static enum err checked(enum err e, enum stmt_id id)
{
	if (e == ERR_INTERNAL) {
		log_write(LOG_ERROR, "msg=\"unexpected value in database\" op=%s", stmts[id].name);
		count_error(OUT_INTERNAL);
	}
	return e;
}

/* ---- parameters and rows ---- */

/* A statement's parameters: text, except blobs in binary. Integers are formatted into num. */
struct params {
	int n;
	const char *values[MAX_PARAMS];
	int lengths[MAX_PARAMS];
	int formats[MAX_PARAMS];
	char num[MAX_PARAMS][24];
};

static void p_value(struct params *p, const struct db_value *v)
{
	int i = p->n++;
	p->lengths[i] = 0;
	p->formats[i] = 0;
	switch (v->type) {
	case DB_NULL: p->values[i] = NULL; break;
	case DB_INT:
		snprintf(p->num[i], sizeof p->num[i], "%lld", (long long)v->i);
		p->values[i] = p->num[i];
		break;
	case DB_TEXT: p->values[i] = v->p; break;
	case DB_BLOB:
		p->values[i] = v->p ? v->p : "";
		p->lengths[i] = (int)v->len;
		p->formats[i] = 1;
		break;
	}
}

static void p_values(struct params *p, const struct db_value *v, size_t n)
{
	for (size_t k = 0; k < n; k++)
		p_value(p, &v[k]);
}

/* "" stays "": storage keys and filters, not the model's unset fields. */
static void p_text(struct params *p, const char *s)
{
	struct db_value v = {.type = s ? DB_TEXT : DB_NULL, .p = s, .len = s ? strlen(s) : 0};
	p_value(p, &v);
}

static void p_int(struct params *p, int64_t i)
{
	struct db_value v = {.type = DB_INT, .i = i};
	p_value(p, &v);
}

static void p_blob(struct params *p, const void *data, size_t len)
{
	struct db_value v = {.type = DB_BLOB, .p = data, .len = len};
	p_value(p, &v);
}

/* A heap copy of p whose values point into the copy itself. */
static struct params *params_copy(const struct params *src)
{
	size_t bytes = 0;
	for (int i = 0; i < src->n; i++)
		if (src->values[i] && src->values[i] != src->num[i])
			bytes += src->formats[i] ? (size_t)src->lengths[i] : strlen(src->values[i]) + 1;
	struct params *p = malloc(sizeof *p + bytes);
	if (!p)
		return NULL;
	*p = *src;
	char *buf = (char *)(p + 1);
	for (int i = 0; i < src->n; i++) {
		if (!src->values[i])
			continue;
		if (src->values[i] == src->num[i]) {
			p->values[i] = p->num[i];
			continue;
		}
		size_t len = src->formats[i] ? (size_t)src->lengths[i] : strlen(src->values[i]) + 1;
		memcpy(buf, src->values[i], len);
		p->values[i] = buf;
		buf += len;
	}
	return p;
}

static int hex_digit(char c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* A bytea's text output ("\\x0a1b...") decoded into out; false when it is not one or does
 * not fit. */
static bool bytea_decode(const char *s, size_t len, unsigned char *out, size_t cap,
			 size_t *ret_len)
{
	if (len < 2 || s[0] != '\\' || s[1] != 'x' || (len - 2) % 2 || (len - 2) / 2 > cap)
		return false;
	size_t n = (len - 2) / 2;
	for (size_t b = 0; b < n; b++) {
		int hi = hex_digit(s[2 + 2 * b]), lo = hex_digit(s[3 + 2 * b]);
		if (hi < 0 || lo < 0)
			return false;
		out[b] = (unsigned char)(hi << 4 | lo);
	}
	*ret_len = n;
	return true;
}

/* Columns first .. first + n - 1 of a result row as values, borrowed from res. A bytea is
 * decoded into scratch, which must have room for its bytes. */
static void row_values(const PGresult *res, int row, int first, size_t n, struct db_value *out,
		       unsigned char *scratch, size_t scratch_cap)
{
	for (size_t k = 0; k < n; k++) {
		int col = first + (int)k;
		if (PQgetisnull(res, row, col)) {
			out[k] = (struct db_value){.type = DB_NULL};
			continue;
		}
		const char *s = PQgetvalue(res, row, col);
		size_t len = (size_t)PQgetlength(res, row, col), bytes = 0;
		out[k] = (struct db_value){.type = DB_TEXT, .p = s, .len = len};
		if (PQftype(res, col) == BYTEA_OID &&
		    bytea_decode(s, len, scratch, scratch_cap, &bytes)) {
			out[k] = (struct db_value){.type = DB_BLOB, .p = (const char *)scratch,
						   .len = bytes};
			scratch += bytes;
			scratch_cap -= bytes;
		}
	}
}

/* One wait for the server's answer, to statements executed. */
static void count_trip(const struct conn *cn, unsigned statements)
{
	if (!cn->totals)
		return;
	atomic_fetch_add_explicit(&cn->totals->round_trips, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&cn->totals->statements, statements, memory_order_relaxed);
}

/* The statement as a named prepared statement of this connection ("cs<id>"), prepared on
 * first use: the server parses and plans it once instead of at every execution. */
static PGresult *run_prepared(struct conn *cn, enum stmt_id id, const struct params *p)
{
	char name[16];
	snprintf(name, sizeof name, "cs%d", (int)id);
	if (!cn->prepared[id]) {
		PGresult *res = PQprepare(cn->pg, name, stmts[id].sql, 0, NULL);
		count_trip(cn, 0);
		if (!res || PQresultStatus(res) != PGRES_COMMAND_OK)
			return res;
		PQclear(res);
		cn->prepared[id] = true;
	}
	return PQexecPrepared(cn->pg, name, p ? p->n : 0, p ? p->values : NULL,
			      p ? p->lengths : NULL, p ? p->formats : NULL, 0);
}

/* Runs statement id; *ret_res (when not NULL) gets a PGRES_TUPLES_OK or PGRES_COMMAND_OK
 * result for the caller to PQclear. */
static enum outcome run(struct conn *cn, enum stmt_id id, const struct params *p,
		       PGresult **ret_res)
{
	count_trip(cn, 1);
	PGresult *res = cn->prepare ? run_prepared(cn, id, p)
				    : PQexecParams(cn->pg, stmts[id].sql, p ? p->n : 0, NULL,
						   p ? p->values : NULL, p ? p->lengths : NULL,
						   p ? p->formats : NULL, 0);
	ExecStatusType status = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
	if (status == PGRES_TUPLES_OK || status == PGRES_COMMAND_OK) {
		if (ret_res)
			*ret_res = res;
		else
			PQclear(res);
		return OUT_OK;
	}
	enum outcome o = pg_fail(cn, res, stmts[id].name);
	PQclear(res);
	return o;
}

/* One statement of a batch: what to run, and (keep) where its result goes. */
struct batched {
	enum stmt_id id;
	const struct params *p;
	bool keep;
	PGresult *res; /* kept result for the caller to PQclear, NULL otherwise */
};

/* The next result of a pipeline, with the NULL that ends it consumed. */
static PGresult *pipeline_result(struct conn *cn)
{
	PGresult *res = PQgetResult(cn->pg);
	if (res && PQresultStatus(res) != PGRES_PIPELINE_SYNC)
		while (PQgetResult(cn->pg)) /* a well-behaved server sends nothing more */
			;
	return res;
}

static bool send_one(struct conn *cn, const struct batched *b, bool *ret_preparing)
{
	char name[16];
	snprintf(name, sizeof name, "cs%d", (int)b->id);
	const struct params *p = b->p;
	*ret_preparing = cn->prepare && !cn->prepared[b->id];
	if (*ret_preparing) {
		if (!PQsendPrepare(cn->pg, name, stmts[b->id].sql, 0, NULL))
			return false;
		cn->prepared[b->id] = true; /* taken back below if the prepare fails */
	}
	if (cn->prepare)
		return PQsendQueryPrepared(cn->pg, name, p ? p->n : 0, p ? p->values : NULL,
					   p ? p->lengths : NULL, p ? p->formats : NULL, 0);
	return PQsendQueryParams(cn->pg, stmts[b->id].sql, p ? p->n : 0, NULL,
				 p ? p->values : NULL, p ? p->lengths : NULL,
				 p ? p->formats : NULL, 0);
}

/* Runs b[0..n) in one round trip (libpq's pipeline mode): they run in order, and after a
 * failure the rest do not run. Returns OUT_OK with every kept result set, or the outcome of
 * the first failure with *ret_failed its index (and no result kept). */
static enum outcome run_batch(struct conn *cn, struct batched *b, int n, int *ret_failed)
{
	enum { BATCH_MAX = 64 };
	bool preparing[BATCH_MAX];
	enum outcome o = OUT_OK;
	int failed = -1;
	if (n > BATCH_MAX)
		return OUT_INTERNAL;
	if (n == 1) {
		b[0].res = NULL;
		o = run(cn, b[0].id, b[0].p, b[0].keep ? &b[0].res : NULL);
		*ret_failed = o == OUT_OK ? -1 : 0;
		return o;
	}
	count_trip(cn, (unsigned)n);
	bool sent = PQenterPipelineMode(cn->pg);
	for (int i = 0; i < n && sent; i++) {
		b[i].res = NULL;
		sent = send_one(cn, &b[i], &preparing[i]);
	}
	if (!sent || !PQpipelineSync(cn->pg)) {
		o = pg_fail(cn, NULL, "pipeline_send");
		cn->broken = true; /* a half-sent pipeline leaves nothing to trust */
		*ret_failed = 0;
		return o;
	}
	for (int i = 0; i < n; i++) {
		for (int part = preparing[i] ? 0 : 1; part < 2; part++) {
			PGresult *res = pipeline_result(cn);
			ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
			bool ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
			if (!ok && part == 0)
				cn->prepared[b[i].id] = false;
			if (!ok && o == OUT_OK && st != PGRES_PIPELINE_ABORTED) {
				o = pg_fail(cn, res, stmts[b[i].id].name);
				failed = i;
			}
			if (ok && part == 1 && b[i].keep && o == OUT_OK)
				b[i].res = res;
			else
				PQclear(res);
			if (!res) /* the connection went: nothing more will come */
				goto done;
		}
	}
	PGresult *sync = pipeline_result(cn);
	if (!sync || PQresultStatus(sync) != PGRES_PIPELINE_SYNC)
		cn->broken = true;
	PQclear(sync);
done:
	if (!PQexitPipelineMode(cn->pg))
		cn->broken = true;
	if (o == OUT_OK && cn->broken)
		o = pg_fail(cn, NULL, "pipeline");
	if (o != OUT_OK) {
		for (int i = 0; i < n; i++) {
			PQclear(b[i].res);
			b[i].res = NULL;
		}
		*ret_failed = failed < 0 ? 0 : failed;
		return o;
	}
	*ret_failed = -1;
	return OUT_OK;
}

/* A statement without parameters, through the simple protocol (several statements at once:
 * transaction control, migrations). */
static enum outcome exec_simple(struct conn *cn, const char *sql, const char *op)
{
	count_trip(cn, 1);
	PGresult *res = PQexec(cn->pg, sql);
	ExecStatusType status = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
	enum outcome o = OUT_OK;
	if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK)
		o = pg_fail(cn, res, op);
	PQclear(res);
	return o;
}

/* The rows affected by a command result. */
static long affected(const PGresult *res)
{
	return strtol(PQcmdTuples((PGresult *)res), NULL, 10);
}

/* ---- connections ---- */

static void conn_free(struct conn *cn)
{
	if (!cn)
		return;
	PQfinish(cn->pg);
	free(cn);
}

/* Notices ("relation already exists, skipping") are the server's small talk, not errors: by
 * default libpq would print them on stderr, outside the log's format. */
static void ignore_notice(void *arg, const char *message)
{
	(void)arg;
	(void)message;
}

static enum err conn_open(const char *url, bool prepare, struct pg_totals *totals,
			  struct conn **ret_cn)
{
	/* The URL's own settings come after these and win (expand_dbname). The keepalives and
	 * the user timeout bound how long a statement waits on a server that went silent (a
	 * host gone, a network cut) to about 20 s, instead of the kernel's two hours. */
	static const char *const keys[] = {
		"connect_timeout", "application_name", "keepalives_idle", "keepalives_interval",
		"keepalives_count", "tcp_user_timeout", "dbname", NULL,
	};
	const char *values[] = {CONNECT_TIMEOUT_S, "callstate", "10", "3", "3", "20000", url, NULL};
	struct conn *cn = calloc(1, sizeof *cn);
	if (!cn)
		return ERR_NOMEM;
	cn->prepare = prepare;
	cn->totals = totals;
	cn->pg = PQconnectdbParams(keys, values, 1);
	if (!cn->pg) {
		free(cn);
		return ERR_NOMEM;
	}
	if (PQstatus(cn->pg) == CONNECTION_OK)
		PQsetNoticeProcessor(cn->pg, ignore_notice, NULL);
	if (PQstatus(cn->pg) != CONNECTION_OK) {
		char value[320];
		log_write(LOG_ERROR, "msg=\"postgres connection failed\" err=%s",
			  log_value(value, sizeof value, PQerrorMessage(cn->pg)));
		conn_free(cn);
		return ERR_UNAVAILABLE;
	}
	*ret_cn = cn;
	return ERR_OK;
}

/* A connection for this thread alone: a pooled one, or a new one while the pool has room;
 * else waits up to POOL_WAIT_MS behind the threads that asked before. */
static enum err conn_take(struct pg_storage *s, struct conn **ret_cn)
{
	void *pooled = NULL;
	enum err e = pool_take(&s->conns, POOL_WAIT_MS, &pooled);
	if (e != ERR_OK) {
		log_write(LOG_WARN, "msg=\"every postgres connection busy\" pool=%d",
			  s->conns.max_open);
		return e;
	}
	struct conn *cn = pooled;
	if (!cn) {
		e = conn_open(s->url, s->prepare, &s->totals, &cn);
		if (e != ERR_OK) {
			pool_give(&s->conns, NULL);
			return e;
		}
	}
	*ret_cn = cn;
	return ERR_OK;
}

/* Back to the pool, or closed when broken or left inside a transaction. */
static void conn_give(struct pg_storage *s, struct conn *cn)
{
	if (!cn->broken && PQtransactionStatus(cn->pg) != PQTRANS_IDLE)
		cn->broken = exec_simple(cn, "ROLLBACK", "rollback") != OUT_OK ||
			     PQtransactionStatus(cn->pg) != PQTRANS_IDLE;
	if (cn->broken) {
		conn_free(cn);
		cn = NULL;
	}
	pool_give(&s->conns, cn);
}

/* ---- the feed ---- */

/* A numbering round as b[0..2): two statements that a pipeline runs as one transaction of
 * their own, committed at its sync, when no BEGIN or COMMIT of the pipeline comes after them
 * (see the top of this file). b[1] keeps its result for feed_numbered. */
static void feed_round(struct batched *b)
{
	b[0] = (struct batched){S_FEED_LOCK, NULL, false, NULL};
	b[1] = (struct batched){S_FEED_NUMBER, NULL, true, NULL};
}

/* After a numbering round committed, with res its S_FEED_NUMBER result (taken): this
 * instance's own long polls are woken at once, without waiting for its NOTIFY to come back
 * through the server and the listener's connection. Raising top is safe (rule 4: every seq up
 * to it is visible): the round gave base + 1 .. top, every one of them, and the seqs up to
 * base were given by earlier rounds, which held the same advisory lock and so had committed
 * before this round took it (PostgreSQL makes a commit visible before it releases the
 * transaction's locks); everything numbered by now has committed, and any snapshot taken
 * after this round's commit sees it. Rounds of other instances are heard through the
 * listener. A round that found nothing to number answers no row. */
static void feed_numbered(struct pg_storage *s, PGresult *res)
{
	atomic_fetch_add_explicit(&s->totals.numbering_rounds, 1, memory_order_relaxed);
	int64_t top = PQntuples(res) == 1 ? strtoll(PQgetvalue(res, 0, 0), NULL, 10) : 0;
	PQclear(res);
	if (top > 0)
		feed_signal_raise(&s->base.feed, top);
}

/* A numbering round in a round trip of its own. ERR_OK once it has committed, whether or not
 * there was anything to number. */
static enum err feed_number(struct pg_storage *s)
{
	struct conn *cn = NULL;
	enum err e = conn_take(s, &cn);
	if (e != ERR_OK)
		return e;
	struct batched b[2];
	int failed;
	feed_round(b);
	enum outcome o = run_batch(cn, b, 2, &failed);
	conn_give(s, cn);
	if (o == OUT_OK)
		feed_numbered(s, b[1].res);
	return err_of(o);
}

/* After a commit that appended events: returns once a numbering round that began after the
 * commit has run, so the events are in the feed. Concurrent commits share rounds: the first
 * caller to find no round running runs one for everyone waiting, so there is about one
 * numbering transaction (and one flush) per round trip of the database, not one per commit. */
static enum err feed_number_committed(struct pg_storage *s)
{
	enum err e = ERR_OK;
	pthread_mutex_lock(&s->feed_mu);
	uint64_t target = s->feed_started + 1; /* a round running now may have begun too early */
	while (s->feed_done < target) {
		if (s->feed_running) {
			pthread_cond_wait(&s->feed_cond, &s->feed_mu);
			continue;
		}
		s->feed_running = true;
		uint64_t round = ++s->feed_started;
		pthread_mutex_unlock(&s->feed_mu);
		e = feed_number(s);
		pthread_mutex_lock(&s->feed_mu);
		s->feed_done = round;
		s->feed_running = false;
		pthread_cond_broadcast(&s->feed_cond);
	}
	pthread_mutex_unlock(&s->feed_mu);
	return e;
}

/* The next round of this instance for a commit about to be sent, when no round is running:
 * it goes in the commit's round trip, after the COMMIT, and so begins after it. */
static bool feed_claim(struct pg_storage *s, uint64_t *ret_round)
{
	pthread_mutex_lock(&s->feed_mu);
	bool claimed = !s->feed_running;
	if (claimed) {
		s->feed_running = true;
		*ret_round = ++s->feed_started;
	}
	pthread_mutex_unlock(&s->feed_mu);
	return claimed;
}

/* The end of a claimed round. One that did not run (its commit or itself failed) is given
 * back: no one else could start a round meanwhile, and a commit waiting for it runs it. */
static void feed_release(struct pg_storage *s, uint64_t round, bool ran)
{
	pthread_mutex_lock(&s->feed_mu);
	if (ran)
		s->feed_done = round;
	else
		s->feed_started = round - 1;
	s->feed_running = false;
	pthread_cond_broadcast(&s->feed_cond);
	pthread_mutex_unlock(&s->feed_mu);
}

static bool feed_tick(void *arg)
{
	feed_number(arg);
	return false;
}

/* ---- the feed's listener ---- */

/* LISTEN, then the newest seq now: what was numbered while no one listened is not missed. */
static enum err listener_connect(struct pg_storage *s, struct conn **ret_cn)
{
	struct conn *cn = NULL;
	enum err e = conn_open(s->url, false, NULL, &cn);
	if (e == ERR_OK)
		e = err_of(exec_simple(cn, "LISTEN " FEED_CHANNEL, "listen"));
	PGresult *res = e == ERR_OK ? PQexec(cn->pg, "SELECT last_seq FROM feed_counter") : NULL;
	/* No feed_counter before the first migration: nothing to catch up on. */
	if (res && PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
		feed_signal_raise(&s->base.feed, strtoll(PQgetvalue(res, 0, 0), NULL, 10));
	PQclear(res);
	if (e != ERR_OK) {
		conn_free(cn);
		return e;
	}
	*ret_cn = cn;
	return ERR_OK;
}

/* Sleeps until the connection has input or listener_wake is written (timeout_ms -1: no
 * timeout); false when woken to stop. */
static bool listener_sleep(struct pg_storage *s, const struct conn *cn, int timeout_ms)
{
	struct pollfd fds[2] = {{.fd = s->listener_wake[0], .events = POLLIN},
				{.fd = cn ? PQsocket(cn->pg) : -1, .events = POLLIN}};
	while (poll(fds, 2, timeout_ms) < 0 && errno == EINTR)
		;
	return !(fds[0].revents & POLLIN);
}

static void *listener_main(void *arg)
{
	struct pg_storage *s = arg;
	struct conn *cn = NULL;
	int retry_ms = FEED_RECHECK_MS;
	thread_name("cs-pg-listen");
	for (;;) {
		if (!cn) {
			if (listener_connect(s, &cn) != ERR_OK) {
				if (!listener_sleep(s, NULL, retry_ms))
					break;
				retry_ms = retry_ms * 2 > LISTEN_RETRY_MAX_MS ? LISTEN_RETRY_MAX_MS
									      : retry_ms * 2;
				continue;
			}
			retry_ms = FEED_RECHECK_MS;
			feed_signal_set_reliable(&s->base.feed, true);
		}
		if (!listener_sleep(s, cn, -1))
			break;
		if (!PQconsumeInput(cn->pg)) {
			log_write(LOG_WARN, "msg=\"feed listener lost its connection; long polls look "
					    "again every second until it is back\"");
			feed_signal_set_reliable(&s->base.feed, false);
			conn_free(cn);
			cn = NULL;
			continue;
		}
		PGnotify *n;
		while ((n = PQnotifies(cn->pg))) {
			feed_signal_raise(&s->base.feed, strtoll(n->extra, NULL, 10));
			PQfreemem(n);
		}
	}
	conn_free(cn);
	return NULL;
}

static enum err listener_start(struct pg_storage *s)
{
	if (pipe(s->listener_wake) != 0)
		return ERR_NOMEM;
	fcntl(s->listener_wake[0], F_SETFD, FD_CLOEXEC);
	fcntl(s->listener_wake[1], F_SETFD, FD_CLOEXEC);
	if (pthread_create(&s->listener, NULL, listener_main, s) != 0) {
		close(s->listener_wake[0]);
		close(s->listener_wake[1]);
		return ERR_NOMEM;
	}
	s->listener_running = true;
	return ERR_OK;
}

static void listener_stop(struct pg_storage *s)
{
	if (!s->listener_running)
		return;
	while (write(s->listener_wake[1], "", 1) < 0 && errno == EINTR)
		;
	pthread_join(s->listener, NULL);
	close(s->listener_wake[0]);
	close(s->listener_wake[1]);
	s->listener_running = false;
}

/* ---- transactions ---- */

static void deferred_free(struct pg_tx *tx)
{
	for (size_t i = 0; i < tx->n_deferred; i++)
		free(tx->deferred[i].p);
	free(tx->deferred);
	tx->deferred = NULL;
	tx->n_deferred = tx->cap_deferred = 0;
}

/* Keeps a statement for the next round trip (p copied; NULL for none). */
static enum outcome tx_defer(struct pg_tx *tx, enum stmt_id id, const struct params *p)
{
	if (tx->failed)
		return OUT_INTERNAL;
	if (tx->n_deferred == tx->cap_deferred) {
		size_t cap = tx->cap_deferred ? tx->cap_deferred * 2 : 16;
		struct deferred *grown = realloc(tx->deferred, cap * sizeof *grown);
		if (!grown)
			goto nomem;
		tx->deferred = grown;
		tx->cap_deferred = cap;
	}
	struct params *copy = p ? params_copy(p) : NULL;
	if (p && !copy)
		goto nomem;
	tx->deferred[tx->n_deferred++] = (struct deferred){id, copy};
	return OUT_OK;
nomem:
	tx->failed = true;
	return OUT_INTERNAL;
}

/* Runs the deferred statements, then now[0..n) (with their kept results), in one round trip.
 * After a failure every later call fails at once (fn must give up, storage.h rule 3), and a
 * retryable failure (or a connection lost before COMMIT) marks the transaction for a rerun. A
 * unique violation of a deferred event is the feed's backstop (storage.h rule 2) and an
 * internal error, never a conflict for fn to carry on after. On a failure, *failed_now (when
 * not NULL) is the index in now of the statement that failed, or -1 when it was not one of
 * them. */
static enum outcome tx_flush(struct pg_tx *tx, struct batched *now, int n, int *failed_now)
{
	if (failed_now)
		*failed_now = -1;
	if (tx->failed)
		return OUT_INTERNAL;
	enum { FLUSH_MAX = 64 };
	struct batched all[FLUSH_MAX];
	enum outcome o = OUT_OK;
	size_t done = 0;
	while (o == OUT_OK && (done < tx->n_deferred || n)) {
		/* A long transaction's writes go in several round trips, now's in the last. */
		int k = 0;
		while (done + (size_t)k < tx->n_deferred && k < FLUSH_MAX - n) {
			all[k] = (struct batched){tx->deferred[done + k].id, tx->deferred[done + k].p,
						  false, NULL};
			k++;
		}
		bool last = done + (size_t)k == tx->n_deferred;
		for (int i = 0; last && i < n; i++)
			all[k + i] = now[i];
		int total = k + (last ? n : 0), failed = -1;
		o = run_batch(tx->cn, all, total, &failed);
		if (o == OUT_CONFLICT && failed >= 0 && failed < k &&
		    all[failed].id == S_EVENT_INSERT) {
			log_write(LOG_ERROR, "msg=\"feed event refused: duplicate id or call_version\"");
			o = OUT_INTERNAL;
		}
		if (o == OUT_CONFLICT && failed >= 0 && failed < k &&
		    all[failed].id == S_WEBHOOK_INSERT_NEW) {
			tx->webhook_seen = true;
			o = OUT_RETRY;
		}
		for (int i = 0; last && i < n; i++)
			now[i] = all[k + i];
		if (o != OUT_OK && last && failed >= k && failed_now)
			*failed_now = failed - k;
		done += (size_t)k;
		if (last)
			break;
	}
	for (size_t i = 0; i < tx->n_deferred; i++)
		free(tx->deferred[i].p);
	tx->n_deferred = 0;
	if (o != OUT_OK) {
		tx->failed = true;
		tx->retry = o == OUT_RETRY || tx->cn->broken;
	}
	return o;
}

/* One statement of the transaction, after the deferred ones, in one round trip. */
static enum outcome tx_exec(struct pg_tx *tx, enum stmt_id id, const struct params *p,
			    PGresult **ret_res)
{
	struct batched b = {id, p, ret_res != NULL, NULL};
	enum outcome o = tx_flush(tx, &b, 1, NULL);
	if (ret_res)
		*ret_res = b.res;
	return o;
}

static enum err pg_transact(struct storage *st, storage_tx_fn fn, void *arg)
{
	struct pg_storage *s = to_pg(st);
	struct pg_tx tx = {.base.st = st};
	enum err e = ERR_UNAVAILABLE;
	bool check_webhooks = false, numbered = false;

	for (int attempt = 0; attempt < TX_ATTEMPTS; attempt++) {
		struct conn *cn = NULL;
		e = conn_take(s, &cn);
		if (e != ERR_OK)
			return e;
		tx = (struct pg_tx){.base.st = st, .cn = cn, .check_webhooks = check_webhooks};
		/* BEGIN goes with the transaction's first statement. */
		e = tx_defer(&tx, S_BEGIN, NULL) == OUT_OK ? fn(&tx.base, arg) : ERR_NOMEM;
		if (e == ERR_OK && !tx.failed) {
			/* Events appended and no round of this instance running: the round goes
			 * after the COMMIT, in the same round trip (see the top of this file). */
			struct batched commit[3] = {{S_COMMIT, NULL, false, NULL}};
			uint64_t round = 0;
			bool numbering = tx.appended && feed_claim(s, &round);
			int n = 1, failed = -1;
			if (numbering) {
				feed_round(commit + 1);
				n = 3;
			}
			enum outcome o = tx_flush(&tx, commit, n, &failed);
			bool committed = o == OUT_OK || failed > 0;
			/* Lost with the COMMIT sent: it may have committed, so it is not run again;
			 * nor is one that committed and failed in its numbering round. */
			if (o != OUT_OK && (tx.cn->broken || committed))
				tx.retry = false;
			if (committed) {
				metrics_commit_batch(METRICS_POSTGRES, 1);
				atomic_fetch_add_explicit(&s->totals.transactions, 1,
							  memory_order_relaxed);
			}
			if (o == OUT_OK && numbering)
				feed_numbered(s, commit[2].res);
			if (numbering)
				feed_release(s, round, o == OUT_OK);
			numbered = numbering && o == OUT_OK;
			e = committed ? ERR_OK : err_of(o);
		} else if (e == ERR_OK) {
			e = ERR_INTERNAL; /* fn went on after a failure it was told of */
		}
		deferred_free(&tx);
		conn_give(s, cn);
		check_webhooks = check_webhooks || tx.webhook_seen;
		if (!tx.retry || attempt + 1 == TX_ATTEMPTS)
			break;
		if (tx.webhook_seen)
			continue; /* nothing to wait for */
		/* Serialization failures and deadlocks meet again at once: back off a little,
		 * differently for each thread (the clock's low bits differ enough). */
		struct timespec now, pause;
		clock_gettime(CLOCK_MONOTONIC, &now);
		pause = (struct timespec){0, (1 + now.tv_nsec % 10) * (attempt + 1) * 1000000L};
		nanosleep(&pause, NULL);
	}
	if (e == ERR_OK && tx.appended && !numbered && feed_number_committed(s) != ERR_OK)
		/* Committed all the same: a later numbering (the ticker's, or any instance's)
		 * gives these events their seqs. */
		log_write(LOG_WARN, "msg=\"feed numbering deferred\"");
	return e;
}

/* ---- calls ---- */

/* The members (S_MEMBERS) or the sessions (S_PARTICIPANTS) of c, from their result. */
static enum err read_children(const PGresult *res, enum stmt_id id, struct call *c)
{
	enum err e = ERR_OK;
	int rows = PQntuples(res);
	for (int r = 0; r < rows && e == ERR_OK; r++) {
		struct db_value v[PARTICIPANT_COUNT > MEMBER_COUNT ? PARTICIPANT_COUNT : MEMBER_COUNT];
		if (id == S_PARTICIPANTS) {
			struct participant part = {0};
			row_values(res, r, 0, PARTICIPANT_COUNT, v, NULL, 0);
			e = checked(rows_read_participant(v, &part), id);
			if (e == ERR_OK && !call_add_participant(c, &part))
				e = ERR_NOMEM;
		} else if (c->n_members < CALL_MAX_MEMBERS) {
			row_values(res, r, 0, MEMBER_COUNT, v, NULL, 0);
			e = checked(rows_read_member(v, &c->members[c->n_members++]), id);
		} else {
			e = checked(ERR_INTERNAL, id);
		}
	}
	return e;
}

/* The call, its members and its sessions from the results of one batch. */
static enum err read_call(struct batched *b, struct call **ret_call)
{
	if (PQntuples(b[0].res) == 0)
		return ERR_NOT_FOUND;
	struct call *c = call_new();
	if (!c)
		return ERR_NOMEM;
	struct db_value v[CC_COUNT];
	row_values(b[0].res, 0, 0, CC_COUNT, v, NULL, 0);
	enum err e = checked(rows_read_call(v, c), b[0].id);
	if (e == ERR_OK)
		e = read_children(b[1].res, S_MEMBERS, c);
	if (e == ERR_OK)
		e = read_children(b[2].res, S_PARTICIPANTS, c);
	if (e != ERR_OK) {
		call_free(c);
		return e;
	}
	*ret_call = c;
	return ERR_OK;
}

static void presence_params(struct params *p, const char *user, const char *except_call_id)
{
	p_text(p, user);
	p_text(p, except_call_id);
}

static enum err read_presence(const PGresult *res, struct presence_record *ret)
{
	if (PQntuples(res) != 1)
		return checked(ERR_INTERNAL, S_PRESENCE_GET);
	struct db_value v[6];
	row_values(res, 0, 0, 6, v, NULL, 0);
	return checked(rows_read_presence(v, ret), S_PRESENCE_GET);
}

/* The call selected by statement id (its key, and for S_CALL_LOCK_DUE the time it must be
 * due by) with its members and sessions: three statements, one round trip, inside tx. With
 * user, the user's lock and presence go in the same round trip, after the call's lock. */
static enum err tx_load_call(struct pg_tx *tx, enum stmt_id id, const char *key, int64_t due_by,
			     const char *user, struct call **ret_call,
			     struct presence_record *ret_presence)
{
	struct params p = {0}, k = {0}, lock = {0}, get = {0};
	p_text(&p, key);
	if (id == S_CALL_LOCK_DUE)
		p_int(&p, due_by);
	p_text(&k, key);
	p_text(&lock, user);
	presence_params(&get, user, key);
	struct batched b[5] = {{id, &p, true, NULL}, {S_MEMBERS, &k, true, NULL},
			       {S_PARTICIPANTS, &k, true, NULL}, {S_PRESENCE_LOCK, &lock, false, NULL},
			       {S_PRESENCE_GET, &get, true, NULL}};
	int n = user ? 5 : 3;
	enum outcome o = tx_flush(tx, b, n, NULL);
	if (o != OUT_OK)
		return err_of(o);
	struct presence_record presence;
	enum err e = user && PQntuples(b[0].res) ? read_presence(b[4].res, &presence) : ERR_OK;
	struct call *c = NULL;
	if (e == ERR_OK)
		e = read_call(b, &c);
	for (int i = 0; i < n; i++)
		PQclear(b[i].res);
	if (e != ERR_OK)
		return e;
	*ret_call = c;
	if (user)
		*ret_presence = presence;
	return ERR_OK;
}

static enum err pg_tx_call_get(struct storage_tx *tx, const char *id, struct call **ret_call)
{
	return tx_load_call(to_pg_tx(tx), S_CALL_LOCK, id, 0, NULL, ret_call, NULL);
}

static enum err pg_tx_call_get_due(struct storage_tx *tx, const char *id, int64_t now,
				   struct call **ret_call)
{
	return tx_load_call(to_pg_tx(tx), S_CALL_LOCK_DUE, id, now, NULL, ret_call, NULL);
}

static enum err pg_tx_call_get_with_presence(struct storage_tx *tx, const char *id,
					     const char *user, struct call **ret_call,
					     struct presence_record *ret_presence)
{
	return tx_load_call(to_pg_tx(tx), S_CALL_LOCK, id, 0, user, ret_call, ret_presence);
}

/* The call row (S_CALL_INSERT or S_CALL_UPDATE), then the members and sessions that changed
 * since loaded, deferred to the next round trip. ERR_CONFLICT and ERR_NOT_FOUND come from the
 * call row, before anything else is written, and leave the transaction usable. */
static enum err write_call(struct pg_tx *tx, enum stmt_id id, const struct call *c,
			   const struct call *loaded, const char *view)
{
	if (c->n_members > CALL_MAX_MEMBERS || (c->n_participants && !c->participants) ||
	    !view || !*view)
		return ERR_INVALID;
	struct db_value v[CC_COUNT];
	if (!rows_call_values(c, v))
		return ERR_INVALID;
	struct params p = {0};
	PGresult *res = NULL;
	p_values(&p, v, CC_COUNT);
	p_text(&p, view);
	enum outcome o;
	if (id == S_CALL_UPDATE && loaded && strcmp(loaded->id, c->id) == 0) {
		/* Read and locked by this transaction (storage.h rule 2): the row is there, so
		 * the update needs no answer and goes with the next round trip. */
		o = tx_defer(tx, id, &p);
		if (o != OUT_OK)
			return err_of(o);
	} else {
		o = tx_exec(tx, id, &p, &res);
		if (o != OUT_OK)
			return err_of(o);
		long n = affected(res);
		PQclear(res);
		if (n == 0)
			return id == S_CALL_INSERT ? ERR_CONFLICT : ERR_NOT_FOUND;
	}
	for (size_t i = 0; i < c->n_members; i++) {
		if (rows_member_unchanged(c, loaded, i))
			continue;
		struct db_value mv[MEMBER_COUNT];
		if (!rows_member_values(&c->members[i], mv))
			return ERR_INVALID;
		struct params mp = {0};
		p_text(&mp, c->id);
		p_int(&mp, (int64_t)i);
		p_int(&mp, c->created_at);
		p_values(&mp, mv, MEMBER_COUNT);
		o = tx_defer(tx, S_MEMBER_UPSERT, &mp);
		if (o != OUT_OK)
			return err_of(o);
	}
	for (size_t i = 0; i < c->n_participants; i++) {
		if (rows_session_unchanged(c, loaded, i))
			continue;
		struct db_value pv[PARTICIPANT_COUNT];
		rows_participant_values(&c->participants[i], pv);
		struct params pp = {0};
		p_text(&pp, c->id);
		p_values(&pp, pv, PARTICIPANT_COUNT);
		o = tx_defer(tx, S_PARTICIPANT_UPSERT, &pp);
		if (o != OUT_OK)
			return err_of(o);
	}
	return ERR_OK;
}

static enum err pg_tx_call_insert(struct storage_tx *tx, const struct call *c, const char *view)
{
	return write_call(to_pg_tx(tx), S_CALL_INSERT, c, NULL, view);
}

static enum err pg_tx_call_update(struct storage_tx *tx, const struct call *c,
				  const struct call *loaded, const char *view)
{
	return write_call(to_pg_tx(tx), S_CALL_UPDATE, c, loaded, view);
}

/* ---- transaction functions: feed, keys, webhooks, presence ---- */

static enum err pg_tx_event_append(struct storage_tx *tx, const struct event *ev)
{
	struct pg_tx *t = to_pg_tx(tx);
	struct db_value v[EVENT_COUNT];
	struct params p = {0};
	rows_event_values(ev, v);
	p_values(&p, v, EVENT_COUNT);
	/* Deferred: a duplicate (the backstop of rule 2) fails the transaction at its flush. */
	enum outcome o = tx_defer(t, S_EVENT_INSERT, &p);
	t->appended = t->appended || o == OUT_OK;
	return err_of(o);
}

static enum err pg_tx_idempotency_claim(struct storage_tx *tx, const char *caller,
					const char *key, const struct idempotency *rec,
					int64_t live_after, struct idempotency *ret_live)
{
	struct pg_tx *t = to_pg_tx(tx);
	struct params p = {0};
	PGresult *res = NULL;
	p_text(&p, caller);
	p_text(&p, key);
	p_text(&p, rec->call_id);
	p_blob(&p, rec->request_hash, sizeof rec->request_hash);
	p_int(&p, rec->created_at);
	p_int(&p, live_after);
	enum outcome o = tx_exec(t, S_IDEM_CLAIM, &p, &res);
	if (o != OUT_OK)
		return err_of(o);
	long n = affected(res);
	PQclear(res);
	if (n == 1)
		return ERR_OK;
	/* Live: this statement runs after the claim it waited for committed, and sees it. */
	struct params g = {0};
	p_text(&g, caller);
	p_text(&g, key);
	o = tx_exec(t, S_IDEM_GET, &g, &res);
	if (o != OUT_OK)
		return err_of(o);
	enum err e = ERR_INTERNAL;
	if (PQntuples(res) == 1) {
		struct db_value v[3];
		unsigned char hash[sizeof ret_live->request_hash];
		row_values(res, 0, 0, 3, v, hash, sizeof hash);
		e = checked(rows_read_idempotency(v, ret_live), S_IDEM_GET);
	}
	PQclear(res);
	return e == ERR_OK ? ERR_CONFLICT : e;
}

/* Nearly every event is new (LiveKit redelivers only what it saw fail), so the insert is taken
 * to succeed and goes with the transaction's next round trip, saving one. When the id is there
 * already, that round trip fails, and the transaction runs again with the insert checked at
 * once, so that fn learns of the duplicate as storage.h says. */
static enum err pg_tx_webhook_insert(struct storage_tx *tx, const struct webhook_record *rec)
{
	struct pg_tx *t = to_pg_tx(tx);
	struct params p = {0};
	PGresult *res = NULL;
	struct db_value created = {.type = rec->created_at ? DB_INT : DB_NULL,
				   .i = rec->created_at};
	struct db_value version = {.type = rec->call_version ? DB_INT : DB_NULL,
				   .i = rec->call_version};
	p_text(&p, rec->id);
	p_text(&p, rec->event);
	p_text(&p, rec->room && *rec->room ? rec->room : NULL);
	p_text(&p, rec->call_id && *rec->call_id ? rec->call_id : NULL);
	p_value(&p, &created);
	p_int(&p, rec->received_at);
	p_blob(&p, rec->body, rec->body_len);
	p_value(&p, &version);
	if (!t->check_webhooks)
		return err_of(tx_defer(t, S_WEBHOOK_INSERT_NEW, &p));
	enum outcome o = tx_exec(t, S_WEBHOOK_INSERT, &p, &res);
	if (o != OUT_OK)
		return err_of(o);
	long n = affected(res);
	PQclear(res);
	return n == 1 ? ERR_OK : ERR_CONFLICT;
}

/* The user's lock, then their presence: one round trip. */
static enum err pg_tx_presence_get(struct storage_tx *tx, const char *user,
				   const char *except_call_id, struct presence_record *ret)
{
	struct params lock = {0}, get = {0};
	p_text(&lock, user);
	presence_params(&get, user, except_call_id);
	struct batched b[2] = {{S_PRESENCE_LOCK, &lock, false, NULL},
			       {S_PRESENCE_GET, &get, true, NULL}};
	enum outcome o = tx_flush(to_pg_tx(tx), b, 2, NULL);
	if (o != OUT_OK)
		return err_of(o);
	enum err e = read_presence(b[1].res, ret);
	PQclear(b[1].res);
	return e;
}

static enum err pg_tx_presence_set(struct storage_tx *tx, const char *user, int status,
				   int64_t since)
{
	struct params p = {0};
	p_text(&p, user);
	p_int(&p, status);
	p_int(&p, since);
	return err_of(tx_defer(to_pg_tx(tx), S_PRESENCE_SET, &p));
}

/* ---- reads ---- */

/* One statement on a pooled connection, outside any transaction. A pooled connection found
 * dead (the server restarted, or failed over, since it was last used) is replaced and the
 * read tried once more: after an outage, the first reads succeed rather than answer 503. */
static enum err read_one(struct pg_storage *s, enum stmt_id id, const struct params *p,
			 struct conn **ret_cn, PGresult **ret_res)
{
	enum outcome o = OUT_UNAVAILABLE;
	for (int attempt = 0; attempt < 2; attempt++) {
		struct conn *cn = NULL;
		enum err e = conn_take(s, &cn);
		if (e != ERR_OK)
			return e;
		o = run(cn, id, p, ret_res);
		if (o == OUT_OK) {
			*ret_cn = cn;
			return ERR_OK;
		}
		bool lost = cn->broken;
		conn_give(s, cn);
		if (!lost)
			break;
	}
	return err_of(o);
}

/* ---- retention ---- */

/* Runs purge statement id with $1 = before and $2 = max; *ret_n is the count it answers. */
static enum err purge_count(struct storage_tx *tx, enum stmt_id id, int64_t before, size_t max,
			    size_t *ret_n)
{
	struct params p = {0};
	PGresult *res = NULL;
	p_int(&p, before);
	p_int(&p, max > INT64_MAX ? INT64_MAX : (int64_t)max);
	enum outcome o = tx_exec(to_pg_tx(tx), id, &p, &res);
	if (o != OUT_OK)
		return err_of(o);
	enum err e = ERR_INTERNAL;
	if (PQntuples(res) == 1 && PQnfields(res) == 1) {
		long long n = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
		*ret_n = n > 0 ? (size_t)n : 0;
		e = ERR_OK;
	}
	PQclear(res);
	return checked(e, id);
}

static enum err pg_tx_purge_calls(struct storage_tx *tx, int64_t ended_before, size_t max,
				  size_t *ret_n)
{
	return purge_count(tx, S_PURGE_CALLS, ended_before, max, ret_n);
}

static enum err pg_tx_purge_unowned(struct storage_tx *tx, int64_t before, size_t max,
				    size_t *ret_n)
{
	return purge_count(tx, S_PURGE_UNOWNED, before, max, ret_n);
}

static enum err pg_ping(struct storage *st)
{
	struct pg_storage *s = to_pg(st);
	struct conn *cn = NULL;
	PGresult *res = NULL;
	enum err e = read_one(s, S_PING, NULL, &cn, &res);
	if (e != ERR_OK)
		return e;
	PQclear(res);
	conn_give(s, cn);
	return ERR_OK;
}

static enum err version_read(struct conn *cn, int *ret_version)
{
	PGresult *res = NULL;
	enum outcome o = run(cn, S_VERSION_CREATE, NULL, NULL);
	if (o == OUT_OK)
		o = run(cn, S_VERSION_MAX, NULL, &res);
	if (o != OUT_OK)
		return err_of(o);
	char *end;
	long v = strtol(PQgetvalue(res, 0, 0), &end, 10);
	enum err e = *end || v < 0 || v > 1000000 ? checked(ERR_INTERNAL, S_VERSION_MAX) : ERR_OK;
	PQclear(res);
	if (e == ERR_OK)
		*ret_version = (int)v;
	return e;
}

static enum err pg_schema_version(struct storage *st, int *ret_version)
{
	struct pg_storage *s = to_pg(st);
	struct conn *cn = NULL;
	enum err e = conn_take(s, &cn);
	if (e != ERR_OK)
		return e;
	e = version_read(cn, ret_version);
	conn_give(s, cn);
	return e;
}

static enum err pg_call_get(struct storage *st, const char *id, struct call **ret_call)
{
	struct pg_storage *s = to_pg(st);
	struct params k = {0};
	p_text(&k, id);
	/* Three statements, one snapshot (storage.h rule 8), one round trip; a pooled connection
	 * found dead is replaced once, as in read_one. */
	enum outcome o = OUT_UNAVAILABLE;
	for (int attempt = 0; attempt < 2; attempt++) {
		struct conn *cn = NULL;
		enum err e = conn_take(s, &cn);
		if (e != ERR_OK)
			return e;
		struct batched b[5] = {
			{S_BEGIN_READ, NULL, false, NULL}, {S_CALL_READ, &k, true, NULL},
			{S_MEMBERS, &k, true, NULL},       {S_PARTICIPANTS, &k, true, NULL},
			{S_COMMIT, NULL, false, NULL},
		};
		int failed;
		o = run_batch(cn, b, 5, &failed);
		bool lost = o != OUT_OK && cn->broken;
		conn_give(s, cn);
		if (o == OUT_OK) {
			e = read_call(b + 1, ret_call);
			for (int i = 1; i < 4; i++)
				PQclear(b[i].res);
			return e;
		}
		if (!lost)
			break;
	}
	return err_of(o);
}

static enum err pg_presence_get(struct storage *st, const char *user, struct presence_record *ret)
{
	struct pg_storage *s = to_pg(st);
	struct conn *cn = NULL;
	PGresult *res = NULL;
	struct params p = {0};
	presence_params(&p, user, NULL);
	enum err e = read_one(s, S_PRESENCE_GET, &p, &cn, &res);
	if (e != ERR_OK)
		return e;
	e = read_presence(res, ret);
	PQclear(res);
	conn_give(s, cn);
	return e;
}

/* Appends v to a text array literal as one element: double-quoted, '"' and '\\' escaped, so
 * that no byte of an id or user (a comma, a brace, a space) is taken for the literal's syntax.
 * Needs 2 * strlen(v) + 2 bytes at w; returns the end. */
static char *array_element(char *w, const char *v)
{
	*w++ = '"';
	for (; *v; v++) {
		if (*v == '"' || *v == '\\')
			*w++ = '\\';
		*w++ = *v;
	}
	*w++ = '"';
	return w;
}

/* The ids ($1) and users ($2) of reqs[0..n) as text array literals, one element per request
 * in order, into one allocation for the caller to free; NULL when out of memory. */
static char *access_arrays(struct access_read *const *reqs, size_t n, char **ret_users)
{
	size_t cap = 6; /* the braces and NULs of both */
	for (size_t i = 0; i < n; i++)
		cap += 2 * (strlen(reqs[i]->id) + strlen(reqs[i]->user)) + 6;
	char *ids = malloc(cap);
	if (!ids)
		return NULL;
	char *w = ids;
	for (int users = 0; users < 2; users++) {
		if (users)
			*ret_users = w;
		*w++ = '{';
		for (size_t i = 0; i < n; i++) {
			if (i)
				*w++ = ',';
			w = array_element(w, users ? reqs[i]->user : reqs[i]->id);
		}
		*w++ = '}';
		*w++ = '\0';
	}
	return ids;
}

/* The batcher's run function: one statement for the batch, a row per request that has a
 * call, matched to it by its position (q.i). An error of the statement is every request's. */
static void access_batch_run(void *arg, struct access_read *const *reqs, size_t n)
{
	struct pg_storage *s = arg;
	struct conn *cn = NULL;
	PGresult *res = NULL;
	struct params p = {0};
	char *users = NULL, *ids = access_arrays(reqs, n, &users);
	enum err e = ERR_NOMEM;
	if (ids) {
		p_text(&p, ids);
		p_text(&p, users);
		e = read_one(s, S_CALL_ACCESS, &p, &cn, &res);
		free(ids);
	}
	for (size_t i = 0; i < n; i++)
		reqs[i]->e = e == ERR_OK ? ERR_NOT_FOUND : e;
	if (e != ERR_OK)
		return;
	for (int row = 0; row < PQntuples(res); row++) {
		long i = strtol(PQgetvalue(res, row, 0), NULL, 10);
		if (i < 1 || (size_t)i > n) { /* not a position the statement was given */
			checked(ERR_INTERNAL, S_CALL_ACCESS);
			continue;
		}
		struct access_read *r = reqs[i - 1];
		struct db_value v[7];
		r->answer = (struct call_access){0};
		row_values(res, row, 1, 7, v, NULL, 0);
		r->e = checked(rows_read_access(v, &r->answer), S_CALL_ACCESS);
	}
	PQclear(res);
	conn_give(s, cn);
}

static enum err pg_call_access(struct storage *st, const char *id, const char *user,
			       struct call_access *ret)
{
	return access_batcher_read(&to_pg(st)->access, id, user, ret);
}

static enum err pg_call_view(struct storage *st, const char *id, struct call_view *ret_view)
{
	struct pg_storage *s = to_pg(st);
	struct conn *cn = NULL;
	PGresult *res = NULL;
	struct params p = {0};
	p_text(&p, id);
	enum err e = read_one(s, S_VIEW_BY_ID, &p, &cn, &res);
	if (e != ERR_OK)
		return e;
	e = ERR_NOT_FOUND;
	if (PQntuples(res) == 1) {
		struct db_value v[VIEW_COUNT];
		*ret_view = (struct call_view){0};
		row_values(res, 0, 0, VIEW_COUNT, v, NULL, 0);
		e = checked(rows_read_view(v, ret_view), S_VIEW_BY_ID);
		if (e != ERR_OK)
			call_view_finish(ret_view);
	}
	PQclear(res);
	conn_give(s, cn);
	return e;
}

static const enum stmt_id list_stmts[] = {
	[LIST_BY_USER] = S_LIST_USER,	  [LIST_BY_CHAT] = S_LIST_CHAT,
	[LIST_BY_OUTCOME] = S_LIST_OUTCOME, [LIST_BY_STATUS] = S_LIST_STATUS,
	[LIST_BY_ALL] = S_LIST_ALL,
};

static enum err pg_calls_list(struct storage *st, const struct call_filter *f,
			      struct view_page *ret_page)
{
	struct pg_storage *s = to_pg(st);
	struct db_value params[LIST_PARAM_COUNT];
	size_t n;
	enum list_driver driver;
	if (f->limit < 1 || f->limit > LIST_LIMIT_MAX || !rows_list_values(f, params, &n, &driver))
		return ERR_INVALID;
	enum stmt_id id = list_stmts[driver];
	struct params p = {0};
	p_values(&p, params, n);
	struct view_page page = {0};
	page.views = calloc((size_t)f->limit, sizeof *page.views);
	if (!page.views)
		return ERR_NOMEM;
	struct conn *cn = NULL;
	PGresult *res = NULL;
	enum err e = read_one(s, id, &p, &cn, &res);
	if (e != ERR_OK) {
		view_page_finish(&page);
		return e;
	}
	int rows = PQntuples(res);
	for (int r = 0; r < rows && e == ERR_OK; r++) {
		if (page.n == (size_t)f->limit) {
			page.more = true;
			break;
		}
		struct db_value v[VIEW_COUNT];
		row_values(res, r, 0, VIEW_COUNT, v, NULL, 0);
		e = checked(rows_read_view(v, &page.views[page.n]), id);
		if (e == ERR_OK)
			page.n++;
		else
			call_view_finish(&page.views[page.n]);
	}
	PQclear(res);
	conn_give(s, cn);
	if (e != ERR_OK) {
		view_page_finish(&page);
		return e;
	}
	*ret_page = page;
	return ERR_OK;
}

static enum err pg_call_stats(struct storage *st, int64_t since, int64_t until,
			      int64_t join_timeout_ms, int64_t now, struct call_stats *ret)
{
	struct pg_storage *s = to_pg(st);
	struct conn *cn = NULL;
	PGresult *res = NULL;
	struct params p = {0};
	p_int(&p, since ? since : INT64_MIN);
	p_int(&p, until ? until : INT64_MAX);
	p_int(&p, join_timeout_ms);
	p_int(&p, now);
	enum err e = read_one(s, S_STATS, &p, &cn, &res);
	if (e != ERR_OK)
		return e;
	e = ERR_INTERNAL;
	if (PQntuples(res) == 1) {
		struct db_value v[STATS_COUNT];
		row_values(res, 0, 0, STATS_COUNT, v, NULL, 0);
		e = checked(rows_read_stats(v, ret), S_STATS);
	}
	PQclear(res);
	conn_give(s, cn);
	return e;
}

/* The feed's rows of a read of id as a page; takes res and gives cn back. */
static enum err event_rows(struct pg_storage *s, struct conn *cn, PGresult *res, enum stmt_id id,
			   struct event_page *ret_page)
{
	struct event_page page = {0};
	enum err e = ERR_OK;
	int rows = PQntuples(res);
	if (rows) {
		page.events = calloc((size_t)rows, sizeof *page.events);
		if (!page.events)
			e = ERR_NOMEM;
	}
	for (int r = 0; r < rows && e == ERR_OK; r++) {
		struct db_value v[EVENT_COUNT + 1];
		row_values(res, r, 0, EVENT_COUNT + 1, v, NULL, 0);
		e = checked(rows_read_event(v, &page.events[page.n++]), id);
	}
	PQclear(res);
	conn_give(s, cn);
	if (e != ERR_OK) {
		event_page_finish(&page);
		return e;
	}
	*ret_page = page;
	return ERR_OK;
}

static enum err pg_events_after(struct storage *st, int64_t after, int limit,
				struct event_page *ret_page)
{
	struct pg_storage *s = to_pg(st);
	if (limit < 1)
		return ERR_INVALID;
	struct params p = {0};
	p_int(&p, after);
	p_int(&p, limit);
	struct conn *cn = NULL;
	PGresult *res = NULL;
	enum err e = read_one(s, S_EVENTS_AFTER, &p, &cn, &res);
	return e != ERR_OK ? e : event_rows(s, cn, res, S_EVENTS_AFTER, ret_page);
}

static enum err pg_events_get(struct storage *st, const char *seqs_json,
			      struct event_page *ret_page)
{
	struct pg_storage *s = to_pg(st);
	struct params p = {0};
	p_text(&p, seqs_json);
	struct conn *cn = NULL;
	PGresult *res = NULL;
	enum err e = read_one(s, S_EVENTS_GET, &p, &cn, &res);
	return e != ERR_OK ? e : event_rows(s, cn, res, S_EVENTS_GET, ret_page);
}

/* The rows of S_AUDIT into *ret. */
static enum err audit_collect(const PGresult *res, struct audit_trail *ret)
{
	struct audit_trail trail = {0};
	enum err e = ERR_OK;
	int rows = PQntuples(res);
	if (rows) {
		trail.entries = calloc((size_t)rows, sizeof *trail.entries);
		if (!trail.entries)
			e = ERR_NOMEM;
	}
	for (int r = 0; r < rows && e == ERR_OK; r++) {
		struct db_value v[AUDIT_COUNT];
		row_values(res, r, 0, AUDIT_COUNT, v, NULL, 0);
		e = checked(rows_read_audit(v, &trail.entries[trail.n++]), S_AUDIT);
	}
	if (e != ERR_OK) {
		audit_trail_finish(&trail);
		return e;
	}
	*ret = trail;
	return ERR_OK;
}

static enum err pg_call_audit(struct storage *st, const char *id, struct audit_trail *ret)
{
	struct pg_storage *s = to_pg(st);
	struct params p = {0};
	p_text(&p, id);
	struct conn *cn = NULL;
	PGresult *res = NULL;
	enum err e = read_one(s, S_AUDIT, &p, &cn, &res);
	if (e != ERR_OK)
		return e;
	e = audit_collect(res, ret);
	PQclear(res);
	conn_give(s, cn);
	return e;
}

static enum err pg_calls_due(struct storage *st, int64_t now, const struct due_call *after,
			     size_t max, struct due_call *ret_calls, size_t *ret_n)
{
	struct pg_storage *s = to_pg(st);
	struct params p = {0};
	p_int(&p, now);
	p_int(&p, after ? after->deadline : INT64_MIN);
	p_text(&p, after ? after->id : "");
	p_int(&p, max > INT64_MAX ? INT64_MAX : (int64_t)max);
	struct conn *cn = NULL;
	PGresult *res = NULL;
	enum err e = read_one(s, S_DUE, &p, &cn, &res);
	if (e != ERR_OK)
		return e;
	size_t n = 0;
	int rows = PQntuples(res);
	for (int r = 0; r < rows && n < max && e == ERR_OK; r++) {
		struct db_value v[2];
		row_values(res, r, 0, 2, v, NULL, 0);
		e = checked(rows_read_due(v, &ret_calls[n++]), S_DUE);
	}
	PQclear(res);
	conn_give(s, cn);
	if (e == ERR_OK)
		*ret_n = n;
	return e;
}

/* ---- erasure of a user ---- */

static enum err pg_user_call_ids(struct storage *st, const char *user, const char *after_id,
				 size_t max, char (*ret_ids)[ID_LEN + 1], size_t *ret_n)
{
	struct pg_storage *s = to_pg(st);
	struct params p = {0};
	p_text(&p, user);
	p_text(&p, after_id);
	p_int(&p, max > INT64_MAX ? INT64_MAX : (int64_t)max);
	struct conn *cn = NULL;
	PGresult *res = NULL;
	enum err e = read_one(s, S_USER_CALL_IDS, &p, &cn, &res);
	if (e != ERR_OK)
		return e;
	size_t n = 0;
	int rows = PQntuples(res);
	for (int r = 0; r < rows && n < max && e == ERR_OK; r++) {
		const char *id = PQgetvalue(res, r, 0);
		if (PQgetisnull(res, r, 0) || strlen(id) > ID_LEN)
			e = checked(ERR_INTERNAL, S_USER_CALL_IDS);
		else
			memcpy(ret_ids[n++], id, strlen(id) + 1);
	}
	PQclear(res);
	conn_give(s, cn);
	if (e == ERR_OK)
		*ret_n = n;
	return e;
}

static enum err pg_tx_call_audit(struct storage_tx *tx, const char *id, struct audit_trail *ret)
{
	struct params p = {0};
	p_text(&p, id);
	PGresult *res = NULL;
	enum outcome o = tx_exec(to_pg_tx(tx), S_AUDIT, &p, &res);
	if (o != OUT_OK)
		return err_of(o);
	enum err e = audit_collect(res, ret);
	PQclear(res);
	return e;
}

static enum err pg_tx_audit_rewrite(struct storage_tx *tx, const struct audit_entry *entry)
{
	struct params p = {0};
	p_text(&p, entry->id);
	/* As stored: a webhook's body is bytea, an event's data text. */
	if (entry->webhook)
		p_blob(&p, entry->body, strlen(entry->body));
	else
		p_text(&p, entry->body);
	return err_of(tx_defer(to_pg_tx(tx), entry->webhook ? S_WEBHOOK_REWRITE : S_EVENT_REWRITE,
			       &p));
}

static enum err pg_tx_call_rename_user(struct storage_tx *tx, const char *id, const char *user,
				       const char *pseudonym, const char *metadata,
				       const char *view)
{
	struct pg_tx *t = to_pg_tx(tx);
	struct params renamed = {0}, call = {0};
	p_text(&renamed, id);
	p_text(&renamed, user);
	p_text(&renamed, pseudonym);
	call = renamed;
	p_text(&call, metadata);
	p_text(&call, view);
	enum outcome o = tx_defer(t, S_RENAME_MEMBER, &renamed);
	if (o == OUT_OK)
		o = tx_defer(t, S_RENAME_SESSIONS, &renamed);
	if (o == OUT_OK)
		o = tx_defer(t, S_RENAME_CALL, &call);
	return err_of(o);
}

static enum err pg_tx_user_forget(struct storage_tx *tx, const char *user)
{
	struct pg_tx *t = to_pg_tx(tx);
	struct params p = {0};
	p_text(&p, user);
	enum outcome o = tx_defer(t, S_FORGET_PRESENCE, &p);
	return err_of(o == OUT_OK ? tx_defer(t, S_FORGET_IDEMPOTENCY, &p) : o);
}

/* Dead row versions stay in the files until VACUUM, which no transaction can run: the
 * erasure answers for the live rows only (README, "Erasing a user"). */
static enum err pg_scrub(struct storage *st)
{
	(void)st;
	return ERR_OK;
}

/* ---- migrations ---- */

/* Applies the first pending migration, if any, in its own transaction under an advisory
 * lock, so that instances starting together apply each migration once. */
static enum err migrate_next(struct pg_storage *s, bool *ret_applied)
{
	struct conn *cn = NULL;
	enum err e = conn_take(s, &cn);
	if (e != ERR_OK)
		return e;
	int version = 0;
	const struct migration *m = NULL;
	enum outcome o = exec_simple(cn, "BEGIN", "migrate_begin");
	if (o == OUT_OK)
		o = exec_simple(cn, "SELECT pg_advisory_xact_lock(" LOCK_MIGRATE ", 0)",
				"migrate_lock");
	e = err_of(o);
	if (e == ERR_OK)
		e = version_read(cn, &version);
	for (size_t i = 0; e == ERR_OK && i < postgres_migrations_count && !m; i++)
		if (postgres_migrations[i].version > version)
			m = &postgres_migrations[i];
	if (e == ERR_OK && m) {
		/* The migration text is compiled in (db/embed_migrations.py), never input. */
		o = exec_simple(cn, m->sql, m->name);
		if (o == OUT_OK) {
			struct params p = {0};
			p_int(&p, m->version);
			p_text(&p, m->name);
			p_int(&p, clock_now_ms(&clock_system));
			o = run(cn, S_VERSION_INSERT, &p, NULL);
		}
		e = err_of(o);
	}
	if (e == ERR_OK)
		e = err_of(exec_simple(cn, "COMMIT", "migrate_commit"));
	conn_give(s, cn);
	if (e == ERR_OK)
		*ret_applied = m != NULL;
	return e;
}

static enum err pg_migrate(struct storage *st, int *ret_applied)
{
	int n = 0;
	bool applied;
	do {
		applied = false;
		enum err e = migrate_next(to_pg(st), &applied);
		if (e != ERR_OK)
			return e;
		n += applied;
	} while (applied);
	*ret_applied = n;
	/* The feed's tables exist now: number what other instances leave behind. */
	struct pg_storage *s = to_pg(st);
	return s->feed_ticker ? ERR_OK
			      : ticker_start("cs-pg-feed", FEED_TICK_MS, feed_tick, s, &s->feed_ticker);
}

/* ---- open and close ---- */

static void pg_free(struct pg_storage *s)
{
	listener_stop(s);
	ticker_stop(s->feed_ticker);
	pthread_cond_destroy(&s->feed_cond);
	pthread_mutex_destroy(&s->feed_mu);
	if (s->conns_ready)
		log_write(LOG_INFO,
			  "msg=\"postgres totals\" transactions=%" PRIuFAST64
			  " round_trips=%" PRIuFAST64 " statements=%" PRIuFAST64
			  " numbering_rounds=%" PRIuFAST64 " access_reads=%" PRIuFAST64
			  " access_batches=%" PRIuFAST64,
			  atomic_load(&s->totals.transactions), atomic_load(&s->totals.round_trips),
			  atomic_load(&s->totals.statements),
			  atomic_load(&s->totals.numbering_rounds), atomic_load(&s->access.reads),
			  atomic_load(&s->access.batches));
	access_batcher_finish(&s->access);
	if (s->conns_ready) {
		struct conn *cn;
		while ((cn = pool_drain(&s->conns)))
			conn_free(cn);
		pool_finish(&s->conns);
	}
	if (s->feed_signal_ready)
		feed_signal_finish(&s->base.feed);
	free(s->url);
	free(s);
}

static void pg_close(struct storage *st)
{
	pg_free(to_pg(st));
}

/* ---- push delivery ---- */

static enum err pg_delivery_cursor(struct storage *st, int64_t *ret_seq)
{
	struct pg_storage *s = to_pg(st);
	struct conn *cn = NULL;
	PGresult *res = NULL;
	enum err e = read_one(s, S_DELIVERY_CURSOR, NULL, &cn, &res);
	if (e != ERR_OK)
		return e;
	int64_t seq = 0;
	e = ERR_INTERNAL;
	if (PQntuples(res) == 1) {
		struct db_value v;
		row_values(res, 0, 0, 1, &v, NULL, 0);
		e = rows_read_seq(&v, &seq);
	}
	e = checked(e, S_DELIVERY_CURSOR);
	PQclear(res);
	conn_give(s, cn);
	if (e == ERR_OK)
		*ret_seq = seq;
	return e;
}

static enum err pg_tx_delivery_enqueue(struct storage_tx *tx, int64_t from,
				       const struct event_page *page)
{
	struct pg_tx *t = to_pg_tx(tx);
	struct params p = {0};
	PGresult *res = NULL;
	if (page->n == 0)
		return ERR_OK;
	enum outcome o = tx_defer(t, S_DELIVERY_ENQUEUE_LOCK, NULL);
	p_int(&p, from);
	p_int(&p, page->events[page->n - 1].seq);
	if (o == OUT_OK)
		o = tx_exec(t, S_DELIVERY_CURSOR_MOVE, &p, &res);
	if (o != OUT_OK)
		return err_of(o);
	long n = affected(res);
	PQclear(res);
	if (n != 1)
		return ERR_CONFLICT;
	for (size_t i = 0; i < page->n && o == OUT_OK; i++) {
		p = (struct params){0};
		p_int(&p, page->events[i].seq);
		p_text(&p, page->events[i].call_id);
		p_int(&p, page->events[i].at);
		o = tx_defer(t, S_DELIVERY_ADD, &p);
	}
	return err_of(o);
}

/* The rows of res as deliveries into ret (at most max), each marked leased. */
static enum err delivery_rows(PGresult *res, enum stmt_id id, bool leased, size_t max,
			      struct delivery *ret, size_t *ret_n)
{
	size_t rows = (size_t)PQntuples(res);
	enum err e = rows > max ? ERR_INTERNAL : ERR_OK;
	for (size_t r = 0; r < rows && e == ERR_OK; r++) {
		struct db_value v[4];
		row_values(res, (int)r, 0, 4, v, NULL, 0);
		ret[r] = (struct delivery){.leased = leased};
		e = rows_read_delivery(v, &ret[r]);
	}
	PQclear(res);
	e = checked(e, id);
	if (e == ERR_OK)
		*ret_n = rows;
	return e;
}

static enum err pg_tx_delivery_heads(struct storage_tx *tx, const char *url, int64_t now,
				     int64_t lease_until, size_t max, struct delivery *ret,
				     size_t *ret_n)
{
	struct params p = {0};
	PGresult *res = NULL;
	p_text(&p, url);
	p_int(&p, now);
	p_int(&p, lease_until);
	p_int(&p, (int64_t)max);
	enum outcome o = tx_exec(to_pg_tx(tx), S_DELIVERY_HEADS, &p, &res);
	if (o != OUT_OK)
		return err_of(o);
	return delivery_rows(res, S_DELIVERY_HEADS, true, max, ret, ret_n);
}

static enum err pg_tx_delivery_behind(struct storage_tx *tx, const char *order_key, int64_t seq,
				      size_t max, struct delivery *ret, size_t *ret_n)
{
	struct params p = {0};
	PGresult *res = NULL;
	p_text(&p, order_key);
	p_int(&p, seq);
	p_int(&p, (int64_t)max);
	enum outcome o = tx_exec(to_pg_tx(tx), S_DELIVERY_BEHIND, &p, &res);
	if (o != OUT_OK)
		return err_of(o);
	return delivery_rows(res, S_DELIVERY_BEHIND, false, max, ret, ret_n);
}

static enum err pg_tx_delivery_next_due(struct storage_tx *tx, const char *url, int64_t *ret)
{
	struct params p = {0};
	PGresult *res = NULL;
	p_text(&p, url);
	enum outcome o = tx_exec(to_pg_tx(tx), S_DELIVERY_NEXT_DUE, &p, &res);
	if (o != OUT_OK)
		return err_of(o);
	int64_t due = 0;
	enum err e = ERR_INTERNAL;
	if (PQntuples(res) == 1) {
		struct db_value v;
		row_values(res, 0, 0, 1, &v, NULL, 0);
		e = rows_read_seq(&v, &due);
	}
	PQclear(res);
	e = checked(e, S_DELIVERY_NEXT_DUE);
	if (e == ERR_OK)
		*ret = due;
	return e;
}

static enum err pg_tx_delivery_settle(struct storage_tx *tx, const struct delivery *d,
				      enum delivery_state state, int64_t next_at,
				      const char *url, const char *error, int64_t now)
{
	struct params p = {0};
	p_int(&p, d->seq);
	if (state == DELIVERY_DELIVERED)
		return err_of(tx_defer(to_pg_tx(tx), S_DELIVERY_DELETE, &p));
	struct db_value first = {.type = d->first_attempt_at ? DB_INT : DB_NULL,
				 .i = d->first_attempt_at};
	struct db_value error_at = {.type = error ? DB_INT : DB_NULL, .i = now};
	p_int(&p, state);
	p_int(&p, d->attempts);
	p_value(&p, &first);
	p_int(&p, next_at);
	p_text(&p, state == DELIVERY_STOPPED ? url : NULL);
	p_text(&p, error);
	p_value(&p, &error_at);
	return err_of(tx_defer(to_pg_tx(tx), S_DELIVERY_SETTLE, &p));
}

static enum err pg_tx_delivery_advance(struct storage_tx *tx, const char *order_key)
{
	struct pg_tx *t = to_pg_tx(tx);
	struct params p = {0};
	p_text(&p, order_key);
	enum outcome o = tx_defer(t, S_DELIVERY_ADVANCE_LOCK, NULL);
	if (o == OUT_OK)
		o = tx_defer(t, S_DELIVERY_ADVANCE, &p);
	return err_of(o);
}

static enum err pg_delivery_status(struct storage *st, const char *url,
				   struct delivery_status *ret)
{
	struct pg_storage *s = to_pg(st);
	struct params p = {0};
	p_text(&p, url);
	struct conn *cn = NULL;
	PGresult *res = NULL;
	enum err e = read_one(s, S_DELIVERY_STATUS, &p, &cn, &res);
	if (e != ERR_OK)
		return e;
	struct delivery_status ds = {0};
	e = ERR_INTERNAL;
	if (PQntuples(res) == 1) {
		struct db_value v[7];
		row_values(res, 0, 0, 7, v, NULL, 0);
		e = rows_read_delivery_status(v, &ds);
	}
	e = checked(e, S_DELIVERY_STATUS);
	PQclear(res);
	conn_give(s, cn);
	if (e == ERR_OK)
		*ret = ds;
	return e;
}

static const struct storage_impl pg_impl = {
	.name = "postgresql",
	.close = pg_close,
	.migrate = pg_migrate,
	.schema_version = pg_schema_version,
	.ping = pg_ping,
	.transact = pg_transact,
	.tx_call_get = pg_tx_call_get,
	.tx_call_get_due = pg_tx_call_get_due,
	.tx_call_insert = pg_tx_call_insert,
	.tx_call_update = pg_tx_call_update,
	.tx_event_append = pg_tx_event_append,
	.tx_idempotency_claim = pg_tx_idempotency_claim,
	.tx_webhook_insert = pg_tx_webhook_insert,
	.tx_presence_get = pg_tx_presence_get,
	.tx_call_get_with_presence = pg_tx_call_get_with_presence,
	.tx_presence_set = pg_tx_presence_set,
	.tx_purge_calls = pg_tx_purge_calls,
	.tx_purge_unowned = pg_tx_purge_unowned,
	.presence_get = pg_presence_get,
	.call_access = pg_call_access,
	.call_get = pg_call_get,
	.call_view = pg_call_view,
	.calls_list = pg_calls_list,
	.call_audit = pg_call_audit,
	.call_stats = pg_call_stats,
	.events_after = pg_events_after,
	.events_get = pg_events_get,
	.calls_due = pg_calls_due,
	.user_call_ids = pg_user_call_ids,
	.tx_call_audit = pg_tx_call_audit,
	.tx_audit_rewrite = pg_tx_audit_rewrite,
	.tx_call_rename_user = pg_tx_call_rename_user,
	.tx_user_forget = pg_tx_user_forget,
	.scrub = pg_scrub,
	.delivery_cursor = pg_delivery_cursor,
	.tx_delivery_enqueue = pg_tx_delivery_enqueue,
	.tx_delivery_heads = pg_tx_delivery_heads,
	.tx_delivery_behind = pg_tx_delivery_behind,
	.tx_delivery_next_due = pg_tx_delivery_next_due,
	.tx_delivery_settle = pg_tx_delivery_settle,
	.tx_delivery_advance = pg_tx_delivery_advance,
	.delivery_status = pg_delivery_status,
};

enum err pg_storage_open(const char *url, const struct storage_options *opts,
			 struct storage **ret_st)
{
	if (!PQisthreadsafe()) {
		log_write(LOG_ERROR, "msg=\"libpq built without thread support\"");
		return ERR_INTERNAL;
	}
	/* A URL libpq cannot parse is the caller's to report: libpq's message quotes the part it
	 * could not read, which may be the password. */
	char *parse_error = NULL;
	PQconninfoOption *parsed = PQconninfoParse(url, &parse_error);
	if (!parsed) {
		PQfreemem(parse_error);
		return parse_error ? ERR_INVALID : ERR_NOMEM;
	}
	PQconninfoFree(parsed);
	struct pg_storage *s = calloc(1, sizeof *s);
	if (!s)
		return ERR_NOMEM;
	pthread_mutex_init(&s->feed_mu, NULL);
	pthread_cond_init(&s->feed_cond, NULL);
	/* Batches take pooled connections: never more of them than the pool has. */
	access_batcher_init(&s->access, opts->pool_size < ACCESS_BATCHES ? opts->pool_size
									 : ACCESS_BATCHES,
			    access_batch_run, s);
	s->base.impl = &pg_impl;
	s->prepare = !opts->unprepared;
	s->url = strdup(url);
	s->conns_ready = pool_init(&s->conns, opts->pool_size) == ERR_OK;
	s->feed_signal_ready = feed_signal_init(&s->base.feed, 0, false) == ERR_OK;
	if (!s->url || !s->conns_ready || !s->feed_signal_ready ||
	    (s->prepare && listener_start(s) != ERR_OK)) {
		pg_free(s);
		return ERR_NOMEM;
	}
	/* Connect once now: a wrong URL or password fails at start, not at the first request. */
	struct conn *cn = NULL;
	enum err e = conn_take(s, &cn);
	if (e == ERR_OK)
		conn_give(s, cn);
	if (e != ERR_OK) {
		pg_free(s);
		return e;
	}
	*ret_st = &s->base;
	return ERR_OK;
}

/* The SQLite backend. One writer thread owns the only write connection and runs the queued
 * transactions in groups, one SQLite transaction per batch (each caller's function in its own
 * savepoint); a syncer thread makes the committed batches durable and only then answers their
 * callers; reads use a pool of query_only connections. SQL is constant, prepared once.
 *
 * When a batch commits. A batch committed while the syncer is in an fdatasync could only be
 * released by the next one, so the writer keeps its batch open meanwhile, runs the jobs queued
 * since in the same transaction, and commits when the fdatasync returns (or at BATCH_MAX jobs,
 * at a failure, at the close). A batch is then what arrives during one fdatasync, and what
 * every commit rewrites (the header, sqlite_sequence, the rightmost leaves) and its write calls
 * are shared by all of it. No job waits longer for it: the next fdatasync cannot begin before
 * this one returns, and the batch commits then, within one job's run. So no time bound is
 * needed beside BATCH_MAX, which bounds one transaction's work (and a disk that hangs holds
 * every answer either way).
 *
 * Why an answer released by the syncer is durable. Through its VFS (db/sqlite_vfs.c) the
 * writer's COMMIT writes the batch's frames into the WAL (the OS's page cache) and returns
 * without an fsync. The syncer then calls fdatasync on the WAL file, and releases only the
 * batches that had committed before that call began: their frames, and every frame before
 * them, are on the disk. The writer hands a batch over only once it has committed (or rolled
 * back, its jobs failed), so an answer is released only by an fdatasync that began after its
 * batch's commit, never by one that began while the batch was open. After a power cut,
 * recovery replays the WAL up to its last valid commit frame, which is at or after theirs.
 * The WAL is only ever written over from its start (a restart) once a checkpoint has copied all
 * of it into the database and synced the database (SQLite does both before it lets the WAL
 * restart, and syncs the new WAL header), so frames already released never vanish: they are in
 * the database file by then. The WAL file is the same file for as long as the writer's
 * connection is open (SQLite deletes it only when the last connection closes;
 * journal_size_limit truncates it in place), so the syncer's descriptor keeps naming it. A
 * failed fdatasync leaves unknown what reached the disk (and the kernel may forget the
 * failure), so it is never retried: the storage then refuses every write and its ping fails
 * until the service restarts and recovers from the files; the batch open at that moment is
 * rolled back and its jobs fail.
 *
 * What a read may see: a committed batch is visible to the readers before it is durable. Only
 * a power cut in that window (a millisecond or so, not a crash of the process: the page cache
 * survives that) could take back what such a read returned. The feed, whose readers keep a
 * cursor, never shows an event before it is durable (storage.h rule 4; see sq_events_after). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <semaphore.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"
#include "metrics.h"
#include "pool.h"
#include "rows.h"
#include "sqlite_vfs.h"
#include "storage_impl.h"
#include "threadname.h"

#define BATCH_MAX 512 /* bounds a batch's savepoints and the latency of its first job */
/* WAL size, in pages, past which the checkpointer is woken. SQLite's own automatic
 * checkpoint would run in the writer at 1000 pages, copying the WAL into the database and
 * fsyncing it while every waiting request waits too. */
#define CHECKPOINT_PAGES 1000
#define CHECKPOINT_IDLE_S 1 /* also checkpoint what is there after this long */
/* The audit tables are filled in bulk at most this often (see 0003_audit_trail.sql), by the
 * checkpointer, which wakes at least once a second. */
#define AUDIT_INDEX_INTERVAL_MS 1000
#define AUDIT_INDEX_CHUNK 512     /* seqs, and webhook rowids, indexed by one transaction */
#define AUDIT_INDEX_CHUNKS_MAX 64 /* transactions of one catch-up: the checkpoints go on */
/* Under sustained writes the checkpointer never reaches the WAL's end, and the WAL can only
 * start over once a checkpoint has: past this size the writer finishes the copy itself,
 * between two batches (the batch just committed already handed to the syncer, so that its
 * answers do not wait for the copy), so the WAL (and recovery after a crash) stays bounded. */
#define WAL_LIMIT_PAGES 16000
#define WAL_FILE_LIMIT "67108864" /* bytes a reset WAL file is truncated to */
#define BUSY_TIMEOUT_MS 5000
#define SCRUB_ATTEMPTS 5 /* TRUNCATE checkpoints of an erasure, each up to the busy timeout */
#define SCRUB_PAUSE_MS 50
#define LIST_LIMIT_MAX 500
#define EVENTS_GROW 64 /* first allocation of an events page; a large limit need not be used */

/* ---- statements ---- */

/* The list statements share their parameters: ?1/?2 the exclusive upper keyset bound
 * (created_at, id), ?3 since, ?4 status, ?5 outcome, ?6 kind, ?7 chat_id, ?8 the row limit,
 * ?9 user. Each driving statement puts its own filter first so the planner keeps its index;
 * a NULL parameter switches the other filters off. */
#define F_STATUS "(?4 IS NULL OR c.status = ?4)"
#define F_OUTCOME "(?5 IS NULL OR c.outcome = ?5)"
#define F_KIND "(?6 IS NULL OR c.kind = ?6)"
#define F_CHAT "(?7 IS NULL OR c.chat_id = ?7)"
#define LIST_CALLS(where)                                                                          \
	"SELECT " VIEW_COLS " FROM calls c WHERE " where                                           \
	" AND (c.created_at, c.id) < (?1, ?2) AND c.created_at >= ?3"                              \
	" ORDER BY c.created_at DESC, c.id DESC LIMIT ?8"

/* The calls one purge batch deletes (?1 the end before which, ?2 how many), by the column
 * col (their id or rid): the same rows in each statement of the batch, since only the writer
 * changes calls and it runs them in one transaction, the calls last. calls_created finds them
 * (storage.h). */
#define PURGED_CALLS(col)                                                                          \
	"SELECT " col " FROM calls WHERE created_at < ?1 AND ended_at < ?1"                        \
	" ORDER BY created_at, id LIMIT ?2"

enum stmt_id {
	S_BEGIN, /* readers: one snapshot across the statements of a read */
	S_BEGIN_IMMEDIATE,
	S_COMMIT,
	S_ROLLBACK,
	S_JOB_SAVEPOINT,
	S_JOB_ROLLBACK_TO,
	S_JOB_RELEASE,
	S_JOURNAL_WAL,
	S_PING,
	S_VERSION_EXISTS,
	S_VERSION_CREATE,
	S_VERSION_MAX,
	S_VERSION_INSERT,
	S_CALL_BY_ID,
	S_CALL_DUE,
	S_VIEW_BY_ID,
	S_CALL_INSERT,
	S_CALL_UPDATE,
	S_CALL_UPDATE_UNINDEXED,
	S_MEMBERS,
	S_MEMBER_UPSERT,
	S_PARTICIPANTS,
	S_PARTICIPANT_UPSERT,
	S_EVENT_INSERT,
	S_EVENTS_AFTER,
	S_EVENTS_GET,
	S_AUDIT,
	S_AUDIT_INDEX_EVENTS,
	S_AUDIT_INDEX_WEBHOOKS,
	S_AUDIT_INDEXED,
	S_AUDIT_BEHIND,
	S_IDEM_GET,
	S_IDEM_CLAIM,
	S_DUE,
	S_WEBHOOK_INSERT,
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
	S_PURGE_EVENTS,
	S_PURGE_WEBHOOKS,
	S_PURGE_AUDIT_EVENTS,
	S_PURGE_AUDIT_WEBHOOKS,
	S_PURGE_CALLS,
	S_PURGE_LOOSE_EVENTS,
	S_PURGE_LOOSE_WEBHOOKS,
	S_PURGE_IDEMPOTENCY,
	S_PURGE_SETTLED_DELIVERIES,
	S_AUDIT_MARK_LOWER,
	S_DELIVERY_CURSOR,
	S_DELIVERY_CURSOR_MOVE,
	S_DELIVERY_ADD,
	S_DELIVERY_HEADS,
	S_DELIVERY_BEHIND,
	S_DELIVERY_NEXT_DUE,
	S_DELIVERY_DELETE,
	S_DELIVERY_SETTLE,
	S_DELIVERY_ADVANCE,
	S_DELIVERY_STATUS,
	S_COUNT
};

static const struct {
	const char *name; /* for the log */
	const char *sql;
} stmts[S_COUNT] = {
	[S_BEGIN] = {"begin", "BEGIN"},
	[S_BEGIN_IMMEDIATE] = {"begin_immediate", "BEGIN IMMEDIATE"},
	[S_COMMIT] = {"commit", "COMMIT"},
	[S_ROLLBACK] = {"rollback", "ROLLBACK"},
	[S_JOB_SAVEPOINT] = {"job_savepoint", "SAVEPOINT job"},
	[S_JOB_ROLLBACK_TO] = {"job_rollback_to", "ROLLBACK TO job"},
	[S_JOB_RELEASE] = {"job_release", "RELEASE job"},
	[S_JOURNAL_WAL] = {"journal_mode", "PRAGMA journal_mode = WAL"},
	[S_PING] = {"ping", "SELECT 1"},
	[S_VERSION_EXISTS] = {"schema_version_exists",
			      "SELECT count(*) FROM sqlite_master"
			      " WHERE type = 'table' AND name = 'schema_version'"},
	[S_VERSION_CREATE] = {"schema_version_create",
			      "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY "
			      "KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)"},
	[S_VERSION_MAX] = {"schema_version",
			   "SELECT coalesce(max(version), 0) FROM schema_version"},
	[S_VERSION_INSERT] = {"schema_version_insert",
			      "INSERT INTO schema_version (version, name, applied_at)"
			      " VALUES (?1, ?2, ?3)"},
	[S_CALL_BY_ID] = {"call_get", "SELECT " CALL_COLS " FROM calls c WHERE c.id = ?1"},
	[S_CALL_DUE] = {"call_get_due", "SELECT " CALL_COLS " FROM calls c"
					" WHERE c.id = ?1 AND c.next_deadline <= ?2"},
	[S_VIEW_BY_ID] = {"call_view", "SELECT " VIEW_COLS " FROM calls c WHERE c.id = ?1"},
	[S_CALL_INSERT] = {"call_insert",
			   "INSERT INTO calls (id, room, kind, status, outcome, caller, chat_id,"
			   " metadata, created_at, answered_at, ended_at, end_cause,"
			   " room_end_reason, room_finished_at, ring_timeout_s, ring_deadline,"
			   " join_deadline, next_deadline, version, view) VALUES (?1, ?2, ?3, ?4,"
			   " ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19,"
			   " ?20)"},
	[S_CALL_UPDATE] = {"call_update",
			   "UPDATE calls SET room = ?2, kind = ?3, status = ?4, outcome = ?5,"
			   " caller = ?6, chat_id = ?7, metadata = ?8, created_at = ?9,"
			   " answered_at = ?10, ended_at = ?11, end_cause = ?12,"
			   " room_end_reason = ?13, room_finished_at = ?14, ring_timeout_s = ?15,"
			   " ring_deadline = ?16, join_deadline = ?17, next_deadline = ?18,"
			   " version = ?19, view = ?20 WHERE id = ?1"},
	/* The usual update as a call goes on (rows_call_only_unindexed_changed): it leaves every
	 * index of calls as it is, the full one rewrites an entry in each. */
	[S_CALL_UPDATE_UNINDEXED] = {"call_update_unindexed",
				     "UPDATE calls SET answered_at = ?10, ended_at = ?11,"
				     " end_cause = ?12, room_end_reason = ?13,"
				     " room_finished_at = ?14, ring_deadline = ?16,"
				     " join_deadline = ?17, version = ?19, view = ?20 WHERE id = ?1"},
	[S_MEMBERS] = {"members_get", "SELECT " MEMBER_COLS
				      " FROM call_members WHERE call_id = ?1 ORDER BY position"},
	[S_MEMBER_UPSERT] = {"member_upsert",
			     "INSERT INTO call_members (call_id, position, created_at, " MEMBER_COLS
			     ", call_rid) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12,"
			     " ?13, (SELECT rid FROM calls WHERE id = ?1))"
			     " ON CONFLICT (call_id, user_id) DO UPDATE SET"
			     " position = excluded.position,"
			     " role = excluded.role, invite = excluded.invite,"
			     " name = excluded.name,"
			     " in_room = excluded.in_room, left_call = excluded.left_call,"
			     " responded_at = excluded.responded_at,"
			     " token_minted_at = excluded.token_minted_at,"
			     " first_joined_at = excluded.first_joined_at,"
			     " last_left_at = excluded.last_left_at"},
	[S_PARTICIPANTS] = {"participants_get",
			    "SELECT " PARTICIPANT_COLS " FROM participants WHERE call_id = ?1"
			    " ORDER BY joined_at IS NULL, joined_at, sid"},
	[S_PARTICIPANT_UPSERT] = {"participant_upsert",
				  "INSERT INTO participants (call_id, " PARTICIPANT_COLS
				  ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
				  " ON CONFLICT (call_id, sid) DO UPDATE SET"
				  " joined_at = excluded.joined_at,"
				  " left_at = excluded.left_at,"
				  " disconnect_reason = excluded.disconnect_reason,"
				  " aborted = excluded.aborted,"
				  " left_inferred = excluded.left_inferred,"
				  " observer = excluded.observer,"
				  " screen_share_at = excluded.screen_share_at,"
				  " screen_share_ended_at = excluded.screen_share_ended_at"},
	[S_EVENT_INSERT] = {"event_append", "INSERT INTO events (" EVENT_COLS
					    ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"},
	[S_EVENTS_AFTER] = {"events_after", "SELECT seq, " EVENT_COLS
					    " FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2"},
	[S_EVENTS_GET] = {"events_get", "SELECT seq, " EVENT_COLS " FROM events"
					" WHERE seq IN (SELECT value FROM json_each(?1)) ORDER BY seq"},
	/* AUDIT_COUNT columns, then the position: a webhook goes just before the change that
	 * follows the version it found (struct audit_trail). The call's rows are those of the
	 * audit tables and those past their marks, not indexed yet. */
	[S_AUDIT] = {"call_audit",
		     "SELECT 1 AS webhook, NULL, w.id, w.event, w.received_at AS at, NULL, NULL, NULL,"
		     " CAST(w.body AS TEXT), coalesce(w.call_version, 0) + 1 AS pos"
		     " FROM audit_webhooks a JOIN webhooks w ON w.id = a.webhook_id"
		     " WHERE a.call_rid = (SELECT rid FROM calls WHERE id = ?1)"
		     " UNION ALL SELECT 1, NULL, id, event, received_at, NULL, NULL, NULL,"
		     " CAST(body AS TEXT), coalesce(call_version, 0) + 1 FROM webhooks"
		     " WHERE rowid > (SELECT webhooks_upto FROM audit_indexed) AND call_id = ?1"
		     " UNION ALL SELECT 0, e.seq, e.id, e.type, e.at, e.call_version, e.cause,"
		     " e.cause_ref, e.data, e.call_version"
		     " FROM audit_events a JOIN events e ON e.seq = a.seq"
		     " WHERE a.call_rid = (SELECT rid FROM calls WHERE id = ?1)"
		     " UNION ALL SELECT 0, seq, id, type, at, call_version, cause, cause_ref, data,"
		     " call_version FROM events"
		     " WHERE seq > (SELECT events_upto FROM audit_indexed) AND call_id = ?1"
		     " ORDER BY pos, webhook DESC, at, id"},
	/* The audit tables are filled AUDIT_INDEX_CHUNK seqs and rowids past their marks at a
	 * time (?1), and the marks moved as far, never past the newest row nor back. Each row
	 * past a mark is read in order and its call looked up (CROSS JOIN pins that order). */
	[S_AUDIT_INDEX_EVENTS] = {"audit_index_events",
				  "INSERT INTO audit_events (call_rid, seq) SELECT c.rid, e.seq"
				  " FROM audit_indexed CROSS JOIN events e CROSS JOIN calls c"
				  " WHERE e.seq > events_upto AND e.seq <= events_upto + ?1"
				  " AND c.id = e.call_id"},
	[S_AUDIT_INDEX_WEBHOOKS] = {"audit_index_webhooks",
				    "INSERT INTO audit_webhooks (call_rid, webhook_id)"
				    " SELECT c.rid, w.id"
				    " FROM audit_indexed CROSS JOIN webhooks w CROSS JOIN calls c"
				    " WHERE w.rowid > webhooks_upto AND w.rowid <= webhooks_upto + ?1"
				    " AND c.id = w.call_id"},
	[S_AUDIT_INDEXED] = {"audit_indexed",
			     "UPDATE audit_indexed SET"
			     " events_upto = max(events_upto, min(events_upto + ?1,"
			     " coalesce((SELECT max(seq) FROM events), events_upto))),"
			     " webhooks_upto = max(webhooks_upto, min(webhooks_upto + ?1,"
			     " coalesce((SELECT max(rowid) FROM webhooks), webhooks_upto)))"},
	[S_AUDIT_BEHIND] = {"audit_behind",
			    "SELECT coalesce((SELECT max(seq) FROM events), 0) > events_upto"
			    " OR coalesce((SELECT max(rowid) FROM webhooks), 0) > webhooks_upto"
			    " FROM audit_indexed"},
	[S_IDEM_GET] = {"idempotency_get",
			"SELECT call_id, request_hash, created_at FROM idempotency_keys"
			" WHERE caller = ?1 AND key = ?2"},
	/* Inserts the record, or replaces one created before ?6 (expired); a live one stays,
	 * and changes() says which happened. */
	[S_IDEM_CLAIM] = {"idempotency_claim",
			  "INSERT INTO idempotency_keys"
			  " (caller, key, call_id, request_hash, created_at)"
			  " VALUES (?1, ?2, ?3, ?4, ?5)"
			  " ON CONFLICT (caller, key) DO UPDATE SET call_id = excluded.call_id,"
			  " request_hash = excluded.request_hash, created_at = excluded.created_at"
			  " WHERE idempotency_keys.created_at < ?6"},
	[S_DUE] = {"calls_due", "SELECT id, next_deadline FROM calls WHERE next_deadline <= ?1"
				" AND (next_deadline, id) > (?2, ?3)"
				" ORDER BY next_deadline, id LIMIT ?4"},
	[S_WEBHOOK_INSERT] = {"webhook_insert",
			      "INSERT INTO webhooks (id, event, room, call_id, created_at,"
			      " received_at, body, call_version) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7,"
			      " ?8)"},
	/* One row whatever exists: the chat-set status; the call of the user's newest open session
	 * (joined, not left, not aborted, not an observer, in a call they are a member of: as
	 * domain/call_room.c counts them) and since when they have been in it, through reconnects
	 * (sessions of that call still open when the newest began); the latest end of any. */
	[S_PRESENCE_GET] = {"presence_get",
			    "SELECT p.status, p.since, o.call_id,"
			    " (SELECT min(s.joined_at) FROM participants s"
			    " WHERE s.call_id = o.call_id AND s.user_id = ?1 AND s.aborted = 0"
			    " AND s.observer = 0 AND s.joined_at IS NOT NULL"
			    " AND (s.left_at IS NULL OR s.left_at >= o.joined_at)),"
			    " o.joined_at,"
			    " (SELECT s.left_at FROM participants s JOIN call_members m"
			    " ON m.call_id = s.call_id AND m.user_id = s.user_id"
			    " WHERE s.user_id = ?1 AND s.left_at IS NOT NULL AND s.aborted = 0"
			    " AND s.observer = 0 AND s.call_id IS NOT ?2"
			    " ORDER BY s.left_at DESC LIMIT 1)"
			    " FROM (SELECT ?1 AS user_id) u"
			    " LEFT JOIN presence p ON p.user_id = u.user_id"
			    " LEFT JOIN (SELECT s.call_id, s.joined_at FROM participants s"
			    " JOIN call_members m ON m.call_id = s.call_id AND m.user_id = s.user_id"
			    " WHERE s.user_id = ?1 AND s.left_at IS NULL AND s.joined_at IS NOT NULL"
			    " AND s.aborted = 0 AND s.observer = 0 AND s.call_id IS NOT ?2"
			    " ORDER BY s.joined_at DESC, s.call_id DESC LIMIT 1) o ON 1"},
	[S_PRESENCE_SET] = {"presence_set",
			    "INSERT INTO presence (user_id, status, since) VALUES (?1, ?2, ?3)"
			    " ON CONFLICT (user_id) DO UPDATE SET status = excluded.status,"
			    " since = excluded.since"},
	[S_CALL_ACCESS] = {"call_access",
			   "SELECT c.room, c.kind, c.status, c.next_deadline,"
			   " m.user_id IS NOT NULL, m.invite, m.name FROM calls c"
			   " LEFT JOIN call_members m ON m.call_id = c.id AND m.user_id = ?2"
			   " WHERE c.id = ?1"},
	[S_LIST_ALL] = {"calls_list", LIST_CALLS(F_STATUS " AND " F_OUTCOME " AND " F_KIND
							  " AND " F_CHAT)},
	[S_LIST_STATUS] = {"calls_list_status", LIST_CALLS("c.status = ?4 AND " F_OUTCOME
							   " AND " F_KIND " AND " F_CHAT)},
	[S_LIST_OUTCOME] = {"calls_list_outcome", LIST_CALLS("c.outcome = ?5 AND " F_STATUS
							     " AND " F_KIND " AND " F_CHAT)},
	[S_LIST_CHAT] = {"calls_list_chat", LIST_CALLS("c.chat_id = ?7 AND " F_STATUS
						       " AND " F_OUTCOME " AND " F_KIND)},
	/* CROSS JOIN pins the join order: the user's index range drives, calls is looked up. */
	[S_LIST_USER] = {"calls_list_user",
			 "SELECT " VIEW_COLS " FROM call_members m CROSS JOIN calls c"
			 " WHERE m.user_id = ?9 AND (m.created_at, m.call_id) < (?1, ?2)"
			 " AND m.created_at >= ?3 AND c.rid = m.call_rid AND " F_STATUS
			 " AND " F_OUTCOME " AND " F_KIND " AND " F_CHAT
			 " ORDER BY m.created_at DESC, m.call_id DESC LIMIT ?8"},
	[S_STATS] = {"call_stats", STATS_SQL("?1", "?2", "?3", "?4", "max")},
	[S_USER_CALL_IDS] = {"user_call_ids",
			     "SELECT call_id FROM call_members WHERE user_id = ?1 AND call_id > ?2"
			     " UNION SELECT call_id FROM participants WHERE user_id = ?1"
			     " AND call_id > ?2 ORDER BY 1 LIMIT ?3"},
	[S_WEBHOOK_REWRITE] = {"webhook_rewrite", "UPDATE webhooks SET body = ?2 WHERE id = ?1"},
	/* By seq, the rowid: events.id has no index (0008). */
	[S_EVENT_REWRITE] = {"event_rewrite", "UPDATE events SET data = ?2 WHERE seq = ?3 AND id = ?1"},
	[S_RENAME_MEMBER] = {"rename_member",
			     "UPDATE call_members SET user_id = ?3,"
			     " name = CASE WHEN coalesce(name, '') = '' THEN name ELSE ?3 END"
			     " WHERE call_id = ?1 AND user_id = ?2"},
	[S_RENAME_SESSIONS] = {"rename_sessions",
			       "UPDATE participants SET user_id = ?3"
			       " WHERE call_id = ?1 AND user_id = ?2"},
	[S_RENAME_CALL] = {"rename_call",
			   "UPDATE calls SET caller = CASE WHEN caller = ?2 THEN ?3 ELSE caller END,"
			   " metadata = ?4, view = ?5 WHERE id = ?1"},
	[S_FORGET_PRESENCE] = {"forget_presence", "DELETE FROM presence WHERE user_id = ?1"},
	[S_FORGET_IDEMPOTENCY] = {"forget_idempotency",
				  "DELETE FROM idempotency_keys WHERE caller = ?1"},
	/* A call's events and webhooks are those of the audit tables and those past their marks,
	 * as for S_AUDIT. Members and sessions go with the call (ON DELETE CASCADE). */
	[S_PURGE_EVENTS] = {"purge_events",
			    "DELETE FROM events WHERE seq IN (SELECT seq FROM audit_events"
			    " WHERE call_rid IN (" PURGED_CALLS("rid") ") UNION ALL SELECT seq FROM events"
			    " WHERE seq > (SELECT events_upto FROM audit_indexed)"
			    " AND call_id IN (" PURGED_CALLS("id") "))"},
	[S_PURGE_WEBHOOKS] = {"purge_webhooks",
			      "DELETE FROM webhooks WHERE id IN (SELECT webhook_id FROM audit_webhooks"
			      " WHERE call_rid IN (" PURGED_CALLS("rid") ") UNION ALL SELECT id"
			      " FROM webhooks WHERE rowid > (SELECT webhooks_upto FROM audit_indexed)"
			      " AND call_id IN (" PURGED_CALLS("id") "))"},
	[S_PURGE_AUDIT_EVENTS] = {"purge_audit_events", "DELETE FROM audit_events"
							" WHERE call_rid IN (" PURGED_CALLS("rid") ")"},
	[S_PURGE_AUDIT_WEBHOOKS] = {"purge_audit_webhooks", "DELETE FROM audit_webhooks"
							    " WHERE call_rid IN (" PURGED_CALLS("rid") ")"},
	[S_PURGE_CALLS] = {"purge_calls", "DELETE FROM calls WHERE id IN (" PURGED_CALLS("id") ")"},
	/* The feed is walked in seq order up to its first event at or after ?1 (seq follows at
	 * but for moments), so a pass reads what it deletes and no more: events has no index on
	 * at, and no write should pay for one. */
	[S_PURGE_LOOSE_EVENTS] = {"purge_loose_events",
				  "DELETE FROM events WHERE seq IN (SELECT seq FROM events"
				  " WHERE call_id IS NULL AND seq < coalesce((SELECT seq FROM events"
				  " WHERE at >= ?1 ORDER BY seq LIMIT 1),"
				  " (SELECT max(seq) + 1 FROM events)) ORDER BY seq LIMIT ?2)"},
	[S_PURGE_LOOSE_WEBHOOKS] = {"purge_loose_webhooks",
				    "DELETE FROM webhooks WHERE id IN (SELECT id FROM webhooks"
				    " WHERE call_id IS NULL AND received_at < ?1"
				    " ORDER BY received_at LIMIT ?2)"},
	[S_PURGE_IDEMPOTENCY] = {"purge_idempotency",
				 "DELETE FROM idempotency_keys WHERE (caller, key) IN"
				 " (SELECT caller, key FROM idempotency_keys WHERE created_at < ?1"
				 " ORDER BY created_at LIMIT ?2)"},
	[S_PURGE_SETTLED_DELIVERIES] = {"purge_settled_deliveries",
					"DELETE FROM deliveries WHERE seq IN (SELECT seq FROM deliveries"
					" WHERE state IN (1, 2) AND at < ?1 ORDER BY at LIMIT ?2)"},
	/* webhooks has no AUTOINCREMENT: once its newest rows are deleted, the next insert
	 * takes a rowid at or below webhooks_upto, which the audit catch-up would never index.
	 * The mark comes down to the newest row left; nothing between was left unindexed. */
	[S_AUDIT_MARK_LOWER] = {"audit_mark_lower",
				"UPDATE audit_indexed SET webhooks_upto = min(webhooks_upto,"
				" coalesce((SELECT max(rowid) FROM webhooks), 0))"},
	[S_DELIVERY_CURSOR] = {"delivery_cursor", "SELECT seq FROM delivery_cursor WHERE id = 1"},
	[S_DELIVERY_CURSOR_MOVE] = {"delivery_cursor_move",
				    "UPDATE delivery_cursor SET seq = ?2 WHERE id = 1 AND seq = ?1"},
	[S_DELIVERY_ADD] = {"delivery_add", DELIVERY_ADD_SQL("?1", "?2", "?3")},
	[S_DELIVERY_HEADS] = {"delivery_heads", DELIVERY_HEADS_SQL("?1", "?2", "?3", "?4", "")},
	[S_DELIVERY_BEHIND] = {"delivery_behind", DELIVERY_BEHIND_SQL("?1", "?2", "?3")},
	[S_DELIVERY_NEXT_DUE] = {"delivery_next_due", DELIVERY_NEXT_DUE_SQL("?1")},
	[S_DELIVERY_DELETE] = {"delivery_delete", "DELETE FROM deliveries WHERE seq = ?1"},
	[S_DELIVERY_SETTLE] = {"delivery_settle", DELIVERY_SETTLE_SQL("?1", "?2", "?3", "?4", "?5",
								      "?6", "?7", "?8")},
	[S_DELIVERY_ADVANCE] = {"delivery_advance", DELIVERY_ADVANCE_SQL("?1")},
	[S_DELIVERY_STATUS] = {"delivery_status", DELIVERY_STATUS_SQL("?1")},
};

/* ---- state ---- */

struct conn {
	sqlite3 *db;
	sqlite3_stmt *stmt[S_COUNT]; /* prepared on first use */
};

/* A queued storage_transact() call, on the caller's stack. done is posted once result is
 * final: one semaphore per job wakes exactly its caller, and the wake-ups of a whole batch do
 * not all contend for the queue lock as a condition variable's would. */
struct job {
	storage_tx_fn fn;
	void *arg;
	const char *request_id; /* the submitting thread's, named by what fn logs */
	enum err result;
	sem_t done;
	struct job *next;
};

/* A file as stat names it: the same path may come to name another. */
struct file_id {
	dev_t dev;
	ino_t ino;
};

struct sqlite_storage {
	struct storage base; /* first: storage_impl.h */
	struct storage_tx tx; /* handed to transaction functions, on the writer thread only */
	char *path;
	struct conn writer; /* used by the writer thread only, once it runs */
	bool sync_ready;
	bool thread_running;
	pthread_t thread;
	pthread_mutex_t queue_mu; /* head, tail, stopping */
	pthread_cond_t queue_cond;
	struct job *head, *tail;
	bool stopping;
	struct pool readers; /* storage_options.pool_size at most */
	bool readers_ready;
	/* The checkpointer copies the WAL into the database on its own connection, beside the
	 * writer (a passive checkpoint takes no lock the writer needs). */
	sqlite3 *checkpoint_db;
	bool checkpointer_running;
	pthread_t checkpointer;
	pthread_mutex_t checkpoint_mu; /* checkpoint_due, checkpoint_stop */
	pthread_cond_t checkpoint_cond;
	bool checkpoint_due, checkpoint_stop;
	/* The syncer: batches the writer committed, waiting for the WAL to reach the disk, in
	 * commit order (a job's next links the batches one after the other). */
	bool syncer_running;
	pthread_t syncer;
	pthread_mutex_t sync_mu; /* unsynced_*, sync_stop, feed_appended */
	pthread_cond_t sync_cond;
	struct job *unsynced_head, *unsynced_tail;
	int64_t unsynced_feed; /* feed_appended when the newest unsynced batch was handed over */
	bool sync_stop;
	/* The syncer is in an fdatasync: set as it takes the batches, cleared when the call
	 * returns, and then queue_cond is signalled (the writer reads it under queue_mu). */
	atomic_bool syncing;
	char *wal_path;
	int wal_fd;            /* the syncer's descriptor of the WAL file; -1 before it opens it */
	struct file_id db_id, wal_id; /* the files the syncer found at their paths */
	atomic_bool failed;    /* an fdatasync failed: nothing is written any more */
	/* The feed's seqs up to feed_durable are durable; the readers show no seq past it. The
	 * writer lowers it (to the seq before its first) when it appends to a feed with nothing
	 * unsynced, before that commit can be seen; the syncer raises it after each fdatasync:
	 * to INT64_MAX when no appended seq awaits a sync. feed_appended is the last seq the
	 * writer appended (kept even if its savepoint rolled back: a seq reused later is still
	 * above the bound). */
	atomic_int_least64_t feed_durable;
	int64_t feed_appended;
	/* The writer appended events or webhooks of a call past the marks of audit_indexed;
	 * the checkpointer then has them indexed, at most every AUDIT_INDEX_INTERVAL_MS. */
	atomic_bool audit_behind;
	/* What the writer did, logged at close: the figures a write-path benchmark divides by
	 * its events. Written by the writer thread only, but syncs by the syncer. */
	uint64_t batches, transactions, wal_frames, syncs, wal_restarts, writer_checkpoints;
	int wal_pages; /* the WAL's size after the last commit */
};

static struct sqlite_storage *to_sqlite(struct storage *st)
{
	return (struct sqlite_storage *)st;
}

static struct conn *tx_conn(struct storage_tx *tx)
{
	return &to_sqlite(tx->st)->writer;
}

/* ---- errors ---- */

static enum err map_rc(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_CONSTRAINT:
		return rc == SQLITE_CONSTRAINT_UNIQUE || rc == SQLITE_CONSTRAINT_PRIMARYKEY
			       ? ERR_CONFLICT
			       : ERR_INTERNAL;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
	case SQLITE_FULL:
	case SQLITE_IOERR:
	case SQLITE_CANTOPEN:
	case SQLITE_READONLY:
		return ERR_UNAVAILABLE;
	case SQLITE_NOMEM:
		return ERR_NOMEM;
	default:
		return ERR_INTERNAL;
	}
}

static void count_error(enum err e)
{
	if (e == ERR_UNAVAILABLE)
		metrics_db_error(METRICS_SQLITE, METRICS_DB_UNAVAILABLE);
	else if (e == ERR_NOMEM)
		metrics_db_error(METRICS_SQLITE, METRICS_DB_NOMEM);
	else if (e == ERR_INTERNAL)
		metrics_db_error(METRICS_SQLITE, METRICS_DB_INTERNAL);
}

/* The one place driver text is logged (and errors counted). A conflict is a client's
 * duplicate, not a fault. */
static enum err db_fail(sqlite3 *db, int rc, const char *op)
{
	enum err e = map_rc(rc);
	count_error(e);
	/* rc may be ours (a refused binding), not the connection's last error. */
	const char *msg =
		sqlite3_extended_errcode(db) == rc ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
	char text[256];
	log_write(e == ERR_CONFLICT ? LOG_DEBUG : LOG_ERROR,
		  "msg=\"sqlite statement failed\" op=%s sqlite_rc=%d err=%s", op, rc,
		  log_value(text, sizeof text, msg));
	return e;
}

/* ---- statement helpers ---- */

static enum err stmt_get(struct conn *cn, enum stmt_id id, sqlite3_stmt **ret_stmt)
{
	if (!cn->stmt[id]) {
		int rc = sqlite3_prepare_v3(cn->db, stmts[id].sql, -1, SQLITE_PREPARE_PERSISTENT,
					    &cn->stmt[id], NULL);
		if (rc != SQLITE_OK)
			return db_fail(cn->db, rc, stmts[id].name);
	}
	*ret_stmt = cn->stmt[id];
	return ERR_OK;
}

static void stmt_done(sqlite3_stmt *st)
{
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
}

/* Binding with a sticky error, so a row's dozen bindings read as a list. "" and 0 bind NULL
 * where the model uses them for "not set". Texts are SQLITE_STATIC: every statement is
 * stepped and reset before the bound struct goes away. */
struct binder {
	sqlite3_stmt *st;
	int rc;
};

static void bind_text(struct binder *b, int i, const char *s)
{
	if (b->rc == SQLITE_OK)
		b->rc = s && *s ? sqlite3_bind_text(b->st, i, s, -1, SQLITE_STATIC)
				: sqlite3_bind_null(b->st, i);
}

static void bind_int(struct binder *b, int i, int64_t v)
{
	if (b->rc == SQLITE_OK)
		b->rc = sqlite3_bind_int64(b->st, i, v);
}

static void bind_time(struct binder *b, int i, int64_t v)
{
	if (b->rc == SQLITE_OK)
		b->rc = v ? sqlite3_bind_int64(b->st, i, v) : sqlite3_bind_null(b->st, i);
}

static void bind_blob(struct binder *b, int i, const void *p, int n)
{
	if (b->rc == SQLITE_OK)
		b->rc = sqlite3_bind_blob(b->st, i, p, n, SQLITE_STATIC);
}

/* A record's values (db/rows.h) as parameters first, first + 1, ... */
static void bind_values(struct binder *b, int first, const struct db_value *v, size_t n)
{
	for (size_t k = 0; k < n && b->rc == SQLITE_OK; k++) {
		int i = first + (int)k;
		switch (v[k].type) {
		case DB_NULL: b->rc = sqlite3_bind_null(b->st, i); break;
		case DB_INT: b->rc = sqlite3_bind_int64(b->st, i, v[k].i); break;
		case DB_TEXT:
			b->rc = sqlite3_bind_text(b->st, i, v[k].p, (int)v[k].len, SQLITE_STATIC);
			break;
		case DB_BLOB:
			b->rc = sqlite3_bind_blob(b->st, i, v[k].p, (int)v[k].len, SQLITE_STATIC);
			break;
		}
	}
}

/* Columns first .. first + n - 1 of the current row as values (db/rows.h), borrowed from the
 * statement until it steps again. */
static void row_values(sqlite3_stmt *st, int first, size_t n, struct db_value *out)
{
	for (size_t k = 0; k < n; k++) {
		int i = first + (int)k;
		switch (sqlite3_column_type(st, i)) {
		case SQLITE_NULL: out[k] = (struct db_value){.type = DB_NULL}; break;
		case SQLITE_INTEGER:
			out[k] = (struct db_value){.type = DB_INT, .i = sqlite3_column_int64(st, i)};
			break;
		case SQLITE_BLOB:
			out[k] = (struct db_value){.type = DB_BLOB, .p = sqlite3_column_blob(st, i)};
			out[k].len = (size_t)sqlite3_column_bytes(st, i);
			break;
		default: /* text, and a float read as its text: rows.c refuses what is not a number */
			out[k] = (struct db_value){.type = DB_TEXT,
						   .p = (const char *)sqlite3_column_text(st, i)};
			out[k].len = (size_t)sqlite3_column_bytes(st, i);
			if (!out[k].p)
				out[k] = (struct db_value){.type = DB_NULL};
			break;
		}
	}
}

/* A value the model cannot hold, read by statement id: the file was written by something
 * else (or a newer version). The one place that says so. */
static enum err checked(enum err e, enum stmt_id id)
{
	if (e == ERR_INTERNAL) {
		log_write(LOG_ERROR, "msg=\"unexpected value in database\" op=%s", stmts[id].name);
		count_error(e);
	}
	return e;
}

/* Step a statement whose bindings may have failed: the binding error wins. */
static int step_bound(const struct binder *b)
{
	return b->rc != SQLITE_OK ? b->rc : sqlite3_step(b->st);
}

/* Run a bound statement that returns no rows, and reset it. */
static enum err run_bound(struct conn *cn, enum stmt_id id, const struct binder *b)
{
	int rc = step_bound(b);
	enum err e = rc == SQLITE_DONE ? ERR_OK : db_fail(cn->db, rc, stmts[id].name);
	stmt_done(b->st);
	return e;
}

/* Run a statement without parameters or rows (transaction control, DDL). */
static enum err exec_stmt(struct conn *cn, enum stmt_id id)
{
	struct binder b = {0};
	enum err e = stmt_get(cn, id, &b.st);
	return e != ERR_OK ? e : run_bound(cn, id, &b);
}

/* Run a statement without parameters that returns one integer. */
static enum err query_int(struct conn *cn, enum stmt_id id, int64_t *ret_v)
{
	sqlite3_stmt *st = NULL;
	enum err e = stmt_get(cn, id, &st);
	if (e != ERR_OK)
		return e;
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*ret_v = sqlite3_column_int64(st, 0);
	else
		e = db_fail(cn->db, rc == SQLITE_DONE ? SQLITE_INTERNAL : rc, stmts[id].name);
	stmt_done(st);
	return e;
}

/* ---- connections ---- */

static void conn_close(struct conn *cn)
{
	for (size_t i = 0; i < S_COUNT; i++)
		sqlite3_finalize(cn->stmt[i]);
	sqlite3_close(cn->db);
	*cn = (struct conn){0};
}

/* NOMUTEX: SQLite's per-connection mutex is redundant, no connection is shared at once. vfs
 * NULL is the default one. */
static enum err conn_open(struct conn *cn, const char *path, int flags, const char *vfs,
			  const char *pragmas)
{
	int rc = sqlite3_open_v2(path, &cn->db, flags | SQLITE_OPEN_NOMUTEX, vfs);
	if (rc == SQLITE_OK)
		rc = sqlite3_extended_result_codes(cn->db, 1);
	if (rc == SQLITE_OK)
		rc = sqlite3_busy_timeout(cn->db, BUSY_TIMEOUT_MS);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(cn->db, pragmas, NULL, NULL, NULL);
	if (rc == SQLITE_OK)
		return ERR_OK;
	enum err e = db_fail(cn->db, rc, "open");
	conn_close(cn);
	return e;
}

/* WAL lets readers run beside the writer. Through the writer's VFS (db/sqlite_vfs.c) a commit
 * writes its frames in one go and returns without an fsync (the syncer's), while the WAL and
 * the database are still synced around each checkpoint and the WAL's header when it restarts,
 * which the syncer's argument (at the top) relies on. secure_delete zeroes what a write frees,
 * so that an erased user (domain/erasure.c) is not left in free space; Debian's SQLite has it
 * on by default, other builds may not. Its cost on the webhook path is within the noise: with
 * bench/run.sh (webhooks at 32 connections, SKIP_HISTORY/PEERS/ATTACK) ON against OFF gave
 * 5.70 / 5.50 WAL pages and 1022 / 1015 VM steps per event, writer 106 / 107 us, 3057 / 3107
 * events/s (the webhook path inserts; its updates free small cells inside pages written anyway). */
static enum err writer_open(struct conn *w, const char *path)
{
	if (!writer_vfs_register())
		return ERR_INTERNAL;
	enum err e = conn_open(w, path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
			       WRITER_VFS_NAME, WRITER_VFS_PRAGMAS " PRAGMA foreign_keys = ON;"
			       " PRAGMA temp_store = MEMORY; PRAGMA trusted_schema = OFF;"
			       " PRAGMA cache_size = -16384; PRAGMA secure_delete = ON;"
			       " PRAGMA journal_size_limit = " WAL_FILE_LIMIT ";");
	sqlite3_stmt *st = NULL;
	if (e == ERR_OK)
		e = stmt_get(w, S_JOURNAL_WAL, &st);
	if (e == ERR_OK) {
		int rc = sqlite3_step(st);
		const unsigned char *mode = rc == SQLITE_ROW ? sqlite3_column_text(st, 0) : NULL;
		if (rc != SQLITE_ROW)
			e = db_fail(w->db, rc, stmts[S_JOURNAL_WAL].name);
		else if (!mode || strcmp((const char *)mode, "wal") != 0)
			e = db_fail(w->db, SQLITE_CANTOPEN, "journal_mode_wal_refused");
		stmt_done(st);
	}
	/* SQLite opens a file this process may not write read-only, without a word: it would
	 * serve, and answer 503 to every write. */
	if (e == ERR_OK && sqlite3_db_readonly(w->db, "main") == 1)
		e = db_fail(w->db, SQLITE_READONLY, "open_for_writing");
	if (e != ERR_OK && w->db)
		conn_close(w);
	return e;
}

static enum err reader_open(const char *path, struct conn **ret_cn)
{
	struct conn *cn = calloc(1, sizeof *cn);
	if (!cn)
		return ERR_NOMEM;
	/* Pages are read through the file mapping, so each of up to CALLSTATE_THREADS readers
	 * keeps only a small private cache. */
	enum err e = conn_open(cn, path, SQLITE_OPEN_READWRITE, NULL,
			       "PRAGMA query_only = ON; PRAGMA trusted_schema = OFF;"
			       " PRAGMA cache_size = -1024; PRAGMA mmap_size = 4294967296;");
	if (e != ERR_OK) {
		free(cn);
		return e;
	}
	*ret_cn = cn;
	return ERR_OK;
}

/* Closes a reader for good and frees its place in the pool; cn may be NULL (never opened). */
static void reader_discard(struct sqlite_storage *s, struct conn *cn)
{
	if (cn) {
		conn_close(cn);
		free(cn);
	}
	pool_give(&s->readers, NULL);
}

/* A pooled reader. With snapshot, inside a read transaction, so that the statements of one
 * read see one state; a single statement is atomic on its own and skips BEGIN and ROLLBACK,
 * which on the token path cost as much as the query. */
static enum err reader_begin(struct sqlite_storage *s, struct conn **ret_cn, bool snapshot)
{
	void *pooled = NULL;
	enum err e = pool_take(&s->readers, BUSY_TIMEOUT_MS, &pooled);
	if (e != ERR_OK) {
		log_write(LOG_WARN, "msg=\"every sqlite reader busy\" readers=%d",
			  s->readers.max_open);
		return e;
	}
	struct conn *cn = pooled;
	if (!cn)
		e = reader_open(s->path, &cn);
	if (e == ERR_OK && snapshot)
		e = exec_stmt(cn, S_BEGIN);
	if (e == ERR_OK) {
		*ret_cn = cn;
		return ERR_OK;
	}
	reader_discard(s, cn);
	return e;
}

/* Ends the read (nothing to commit) and pools the reader; one stuck in a transaction would
 * fail its next BEGIN, so it is closed instead. */
static void reader_end(struct sqlite_storage *s, struct conn *cn)
{
	if (!sqlite3_get_autocommit(cn->db) && exec_stmt(cn, S_ROLLBACK) != ERR_OK) {
		reader_discard(s, cn);
		return;
	}
	pool_give(&s->readers, cn);
}

/* The end of a read: the statement reset, the reader back in the pool; either may be NULL. */
static void read_done(struct sqlite_storage *s, struct conn *cn, sqlite3_stmt *st)
{
	if (st)
		stmt_done(st);
	if (cn)
		reader_end(s, cn);
}

/* ---- rows ---- */

/* The call row's parameters: CALL_COLS as ?1..?19, its view as ?20. */
static void bind_call(struct binder *b, const struct call *c)
{
	struct db_value v[CC_COUNT];
	if (!rows_call_values(c, v) && b->rc == SQLITE_OK)
		b->rc = SQLITE_MISUSE; /* an enum out of range: a caller bug */
	bind_values(b, 1, v, CC_COUNT);
}

/* ?1 call id, ?2 position, ?3 the call's created_at, then MEMBER_COLS. */
static void bind_member(struct binder *b, const struct call *c, size_t position)
{
	struct db_value v[MEMBER_COUNT];
	if (!rows_member_values(&c->members[position], v) && b->rc == SQLITE_OK)
		b->rc = SQLITE_MISUSE;
	bind_text(b, 1, c->id);
	bind_int(b, 2, (int64_t)position);
	bind_int(b, 3, c->created_at);
	bind_values(b, 4, v, MEMBER_COUNT);
}

/* ?1 call id, then PARTICIPANT_COLS. */
static void bind_participant(struct binder *b, const char *call_id, const struct participant *p)
{
	struct db_value v[PARTICIPANT_COUNT];
	rows_participant_values(p, v);
	bind_text(b, 1, call_id);
	bind_values(b, 2, v, PARTICIPANT_COUNT);
}

/* The members, by position, or the participant sessions of c (by c->id), appended to c. */
static enum err load_children(struct conn *cn, enum stmt_id id, struct call *c)
{
	struct binder b = {0};
	enum err e = stmt_get(cn, id, &b.st);
	if (e != ERR_OK)
		return e;
	bind_text(&b, 1, c->id);
	int rc = SQLITE_DONE;
	while (e == ERR_OK && (rc = step_bound(&b)) == SQLITE_ROW) {
		struct db_value v[PARTICIPANT_COUNT > MEMBER_COUNT ? PARTICIPANT_COUNT : MEMBER_COUNT];
		if (id == S_PARTICIPANTS) {
			struct participant p = {0};
			row_values(b.st, 0, PARTICIPANT_COUNT, v);
			e = checked(rows_read_participant(v, &p), id);
			if (e == ERR_OK && !call_add_participant(c, &p))
				e = ERR_NOMEM;
		} else if (c->n_members < CALL_MAX_MEMBERS) {
			row_values(b.st, 0, MEMBER_COUNT, v);
			e = checked(rows_read_member(v, &c->members[c->n_members++]), id);
		} else {
			e = checked(ERR_INTERNAL, id);
		}
	}
	if (e == ERR_OK && rc != SQLITE_DONE)
		e = db_fail(cn->db, rc, stmts[id].name);
	stmt_done(b.st);
	return e;
}

/* The call of the current row of st (a CALL_COLS statement) with its members and sessions. */
static enum err read_call(struct conn *cn, sqlite3_stmt *st, enum stmt_id id,
			  struct call **ret_call)
{
	struct call *c = call_new();
	if (!c)
		return ERR_NOMEM;
	struct db_value v[CC_COUNT];
	row_values(st, 0, CC_COUNT, v);
	enum err e = checked(rows_read_call(v, c), id);
	if (e == ERR_OK)
		e = load_children(cn, S_MEMBERS, c);
	if (e == ERR_OK)
		e = load_children(cn, S_PARTICIPANTS, c);
	if (e != ERR_OK) {
		call_free(c);
		return e;
	}
	*ret_call = c;
	return ERR_OK;
}

/* id is the statement that selects the row by its key (?1), and for S_CALL_DUE by the time
 * it must be due by (?2). */
static enum err load_call(struct conn *cn, enum stmt_id id, const char *key, int64_t due_by,
			  struct call **ret_call)
{
	struct binder b = {0};
	enum err e = stmt_get(cn, id, &b.st);
	if (e != ERR_OK)
		return e;
	bind_text(&b, 1, key);
	if (id == S_CALL_DUE)
		bind_int(&b, 2, due_by);
	int rc = step_bound(&b);
	if (rc == SQLITE_ROW)
		e = read_call(cn, b.st, id, ret_call);
	else
		e = rc == SQLITE_DONE ? ERR_NOT_FOUND : db_fail(cn->db, rc, stmts[id].name);
	stmt_done(b.st);
	return e;
}

/* The view is the call row's last parameter, after the columns of CALL_COLS. */
#define VIEW_PARAM (CC_VERSION + 2)

static enum err write_row(struct conn *w, enum stmt_id id, const struct call *c,
			  const char *view, size_t i)
{
	struct binder b = {0};
	enum err e = stmt_get(w, id, &b.st);
	if (e != ERR_OK)
		return e;
	if (id == S_CALL_INSERT || id == S_CALL_UPDATE || id == S_CALL_UPDATE_UNINDEXED) {
		bind_call(&b, c);
		bind_text(&b, VIEW_PARAM, view);
	} else if (id == S_MEMBER_UPSERT)
		bind_member(&b, c, i);
	else
		bind_participant(&b, c->id, &c->participants[i]);
	e = run_bound(w, id, &b);
	if (e == ERR_OK && id != S_CALL_INSERT && sqlite3_changes(w->db) == 0)
		e = ERR_NOT_FOUND;
	return e;
}

/* The call row (id: S_CALL_INSERT or an update), then its members and sessions. The
 * expected failures, ERR_CONFLICT and ERR_NOT_FOUND, come from the call row, before anything
 * is written, so a function may carry on after them; any other error leaves a part written
 * and the function must fail (its savepoint then undoes it). No savepoint per call here: each
 * would copy the pages it touches again, which a function writing many calls pays per call. */
static enum err write_call(struct conn *w, enum stmt_id id, const struct call *c,
			   const struct call *loaded, const char *view)
{
	if (c->n_members > CALL_MAX_MEMBERS || (c->n_participants && !c->participants) ||
	    !view || !*view)
		return ERR_INVALID;
	enum err e = write_row(w, id, c, view, 0);
	for (size_t i = 0; e == ERR_OK && i < c->n_members; i++)
		if (!rows_member_unchanged(c, loaded, i))
			e = write_row(w, S_MEMBER_UPSERT, c, NULL, i);
	for (size_t i = 0; e == ERR_OK && i < c->n_participants; i++)
		if (!rows_session_unchanged(c, loaded, i))
			e = write_row(w, S_PARTICIPANT_UPSERT, c, NULL, i);
	return e;
}

/* ---- group commit ---- */

/* Runs one job in its own savepoint. *intact goes false when the batch transaction no longer
 * holds exactly the jobs that succeeded, so it must not commit. */
static enum err run_job(struct sqlite_storage *s, struct job *j, bool *intact)
{
	struct conn *w = &s->writer;
	if (exec_stmt(w, S_JOB_SAVEPOINT) != ERR_OK)
		return ERR_UNAVAILABLE;
	log_request_begin(j->request_id);
	enum err e = j->fn(&s->tx, j->arg);
	log_request_end();
	if (e != ERR_OK && exec_stmt(w, S_JOB_ROLLBACK_TO) != ERR_OK)
		*intact = false;
	if (exec_stmt(w, S_JOB_RELEASE) != ERR_OK)
		*intact = false;
	/* Some errors (IOERR, FULL, NOMEM) make SQLite roll back the whole transaction. */
	if (sqlite3_get_autocommit(w->db))
		*intact = false;
	return e;
}

/* sqlite3_wal_hook: runs in the writer after each commit, with the WAL's size in pages. */
static int on_wal_commit(void *arg, sqlite3 *db, const char *name, int pages)
{
	(void)db;
	(void)name;
	struct sqlite_storage *s = arg;
	/* A smaller WAL than last time started over from its first frame. */
	if (pages < s->wal_pages)
		s->wal_restarts++;
	s->wal_frames += (uint64_t)(pages >= s->wal_pages ? pages - s->wal_pages : pages);
	s->wal_pages = pages;
	if (pages >= CHECKPOINT_PAGES && pages < WAL_LIMIT_PAGES) {
		pthread_mutex_lock(&s->checkpoint_mu);
		s->checkpoint_due = true;
		pthread_cond_signal(&s->checkpoint_cond);
		pthread_mutex_unlock(&s->checkpoint_mu);
	}
	return SQLITE_OK;
}

static enum err sq_transact(struct storage *st, storage_tx_fn fn, void *arg);

/* One transaction of the writer's: indexes the next AUDIT_INDEX_CHUNK rows past each mark,
 * and leaves audit_behind set while more are past them. */
static enum err audit_catch_up(struct storage_tx *tx, void *arg)
{
	struct sqlite_storage *s = arg;
	struct conn *w = tx_conn(tx);
	int64_t behind = 1;
	enum err e = ERR_OK;
	static const enum stmt_id steps[] = {S_AUDIT_INDEX_EVENTS, S_AUDIT_INDEX_WEBHOOKS,
					     S_AUDIT_INDEXED};
	for (size_t i = 0; e == ERR_OK && i < sizeof steps / sizeof *steps; i++) {
		struct binder b = {0};
		e = stmt_get(w, steps[i], &b.st);
		bind_int(&b, 1, AUDIT_INDEX_CHUNK);
		if (e == ERR_OK)
			e = run_bound(w, steps[i], &b);
	}
	if (e == ERR_OK)
		e = query_int(w, S_AUDIT_BEHIND, &behind);
	atomic_store(&s->audit_behind, e != ERR_OK || behind);
	return e;
}

/* Indexes what is past the marks, one chunk per transaction: a second's appends in one
 * transaction held the writer, and every webhook queued behind it, for up to 20 ms under
 * load. At most max_chunks transactions (0: until nothing is left). */
static enum err audit_index(struct sqlite_storage *s, int max_chunks)
{
	enum err e = ERR_OK;
	for (int n = 0; e == ERR_OK && atomic_load(&s->audit_behind) &&
			(max_chunks == 0 || n < max_chunks); n++)
		e = sq_transact(&s->base, audit_catch_up, s);
	return e;
}

/* Runs on the checkpointer, which does nothing else meanwhile. */
static void audit_index_if_due(struct sqlite_storage *s, int64_t *last_ms)
{
	int64_t now = clock_monotonic_ms();
	/* A failed storage writes nothing until the restart, which catches up. */
	if (!atomic_load(&s->audit_behind) || atomic_load(&s->failed) ||
	    now - *last_ms < AUDIT_INDEX_INTERVAL_MS)
		return;
	*last_ms = now;
	enum err e = audit_index(s, AUDIT_INDEX_CHUNKS_MAX);
	if (e != ERR_OK)
		log_write(LOG_WARN, "msg=\"audit index catch-up failed\" error=%s", err_code(e));
}

static void *checkpointer_main(void *arg)
{
	struct sqlite_storage *s = arg;
	int64_t audit_indexed_ms = 0;
	thread_name("cs-checkpoint");
	pthread_mutex_lock(&s->checkpoint_mu);
	while (!s->checkpoint_stop) {
		struct timespec until;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += CHECKPOINT_IDLE_S;
		while (!s->checkpoint_due && !s->checkpoint_stop &&
		       pthread_cond_timedwait(&s->checkpoint_cond, &s->checkpoint_mu, &until) == 0)
			;
		if (s->checkpoint_stop)
			break;
		s->checkpoint_due = false;
		pthread_mutex_unlock(&s->checkpoint_mu);
		audit_index_if_due(s, &audit_indexed_ms);
		/* After a failed fdatasync nothing more goes to the files until the restart
		 * recovers from them: a checkpoint's sync would also make durable the batches
		 * whose callers were refused. */
		int rc = atomic_load(&s->failed)
				 ? SQLITE_OK
				 : sqlite3_wal_checkpoint_v2(s->checkpoint_db, NULL,
							     SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
		if (rc != SQLITE_OK && rc != SQLITE_BUSY)
			db_fail(s->checkpoint_db, rc, "wal_checkpoint");
		pthread_mutex_lock(&s->checkpoint_mu);
	}
	pthread_mutex_unlock(&s->checkpoint_mu);
	return NULL;
}

static enum err checkpointer_start(struct sqlite_storage *s)
{
	struct conn cn = {0};
	enum err e = conn_open(&cn, s->path, SQLITE_OPEN_READWRITE, NULL,
			       "PRAGMA synchronous = FULL; PRAGMA trusted_schema = OFF;");
	if (e != ERR_OK)
		return e;
	s->checkpoint_db = cn.db;
	if (pthread_create(&s->checkpointer, NULL, checkpointer_main, s) != 0)
		return ERR_NOMEM;
	s->checkpointer_running = true;
	sqlite3_wal_autocheckpoint(s->writer.db, 0);
	sqlite3_wal_hook(s->writer.db, on_wal_commit, s);
	return ERR_OK;
}

/* Opens the WAL file for the syncer and syncs its directory, so that the file's name survives
 * a power cut as well as its frames. missing_ok: no WAL is no failure (at open, before the
 * first write made one), and leaves wal_fd -1. */
static bool wal_open(struct sqlite_storage *s, bool missing_ok)
{
	s->wal_fd = open(s->wal_path, O_RDONLY | O_CLOEXEC);
	int err = s->wal_fd < 0 ? errno : 0;
	if (err == ENOENT && missing_ok)
		return true;
	struct stat st;
	if (!err && fstat(s->wal_fd, &st) != 0)
		err = errno;
	if (!err) {
		s->wal_id = (struct file_id){st.st_dev, st.st_ino};
		size_t n = strlen(s->wal_path);
		char *dir_name = malloc(n + 1);
		if (!dir_name)
			return false;
		memcpy(dir_name, s->wal_path, n + 1);
		char *slash = strrchr(dir_name, '/');
		if (!slash)
			memcpy(dir_name, ".", 2);
		else
			slash[slash == dir_name] = '\0';
		int dir = open(dir_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dir < 0 || fsync(dir) != 0)
			err = errno;
		if (dir >= 0)
			close(dir);
		free(dir_name);
	}
	if (err)
		log_write(LOG_ERROR, "msg=\"cannot open the sqlite WAL to sync it\" err=\"%s\"",
			  strerror(err));
	return !err;
}

/* Whether path still names the file of id: not once it was deleted, renamed or replaced. */
static bool still_there(const char *path, const struct file_id *id)
{
	struct stat st;
	return stat(path, &st) == 0 && st.st_dev == id->dev && st.st_ino == id->ino;
}

/* The syncer's fdatasync of the WAL. */
static bool wal_sync(struct sqlite_storage *s)
{
	if (s->wal_fd < 0 && !wal_open(s, false))
		return false;
	s->syncs++;
	if (fdatasync(s->wal_fd) != 0) {
		metrics_db_error(METRICS_SQLITE, METRICS_DB_UNAVAILABLE);
		log_write(LOG_ERROR, "msg=\"fdatasync of the sqlite WAL failed: writes refused until"
			  " a restart\" err=\"%s\"", strerror(errno));
		return false;
	}
	/* Files that were deleted (rm, the directory gone) or replaced (a restore copied over
	 * them) still take writes through their open descriptors, which a restart would not
	 * find: nothing synced into them is stored, and nothing more is answered as stored. */
	if (still_there(s->path, &s->db_id) && still_there(s->wal_path, &s->wal_id))
		return true;
	metrics_db_error(METRICS_SQLITE, METRICS_DB_UNAVAILABLE);
	log_write(LOG_ERROR, "msg=\"the sqlite database or its WAL was deleted or replaced: writes"
		  " refused until a restart\"");
	return false;
}

/* Hands a run batch (first .. last, linked) to the syncer, which answers its callers once the
 * batch is durable: whatever each job's result, it may rest on batches before it. */
static void syncer_hand(struct sqlite_storage *s, struct job *first, struct job *last)
{
	pthread_mutex_lock(&s->sync_mu);
	if (s->unsynced_tail)
		s->unsynced_tail->next = first;
	else
		s->unsynced_head = first;
	s->unsynced_tail = last;
	s->unsynced_feed = s->feed_appended;
	pthread_cond_signal(&s->sync_cond);
	pthread_mutex_unlock(&s->sync_mu);
}

static void *syncer_main(void *arg)
{
	struct sqlite_storage *s = arg;
	thread_name("cs-sync");
	pthread_mutex_lock(&s->sync_mu);
	for (;;) {
		while (!s->unsynced_head && !s->sync_stop)
			pthread_cond_wait(&s->sync_cond, &s->sync_mu);
		struct job *batches = s->unsynced_head;
		if (!batches)
			break; /* stopping, and every batch answered */
		int64_t feed = s->unsynced_feed;
		s->unsynced_head = s->unsynced_tail = NULL;
		atomic_store(&s->syncing, true);
		pthread_mutex_unlock(&s->sync_mu);

		bool durable = !atomic_load(&s->failed) && wal_sync(s);
		if (!durable)
			atomic_store(&s->failed, true);
		/* The writer's open batch is due: committed now, it is in the next fdatasync. Not
		 * under sync_mu: the writer takes that lock without queue_mu, never inside it. */
		atomic_store(&s->syncing, false);
		pthread_mutex_lock(&s->queue_mu);
		pthread_cond_signal(&s->queue_cond);
		pthread_mutex_unlock(&s->queue_mu);
		pthread_mutex_lock(&s->sync_mu);
		if (durable)
			atomic_store(&s->feed_durable, s->feed_appended == feed ? INT64_MAX : feed);
		pthread_mutex_unlock(&s->sync_mu);
		if (durable)
			feed_signal_raise(&s->base.feed, feed); /* the long polls (rule 4 holds) */
		for (struct job *j = batches, *next; j; j = next) {
			next = j->next; /* j is its caller's again once posted */
			if (!durable)
				j->result = ERR_UNAVAILABLE;
			sem_post(&j->done);
		}
		pthread_mutex_lock(&s->sync_mu);
	}
	pthread_mutex_unlock(&s->sync_mu);
	return NULL;
}

/* The writer's open batch: jobs run (first .. last, linked) in one transaction not yet
 * committed. */
struct batch {
	struct job *first, *last;
	size_t n;
	bool intact; /* the transaction holds exactly the jobs of the batch that succeeded */
};

/* Runs the jobs (linked, ending in NULL) in the open batch, which it begins if there is none.
 * Each job's result is its function's; jobs start with ERR_UNAVAILABLE, which is what the
 * ones never run keep. */
static void batch_run(struct sqlite_storage *s, struct batch *b, struct job *jobs,
		      struct job *last)
{
	if (b->n == 0) {
		b->intact = !atomic_load(&s->failed) &&
			    exec_stmt(&s->writer, S_BEGIN_IMMEDIATE) == ERR_OK;
		b->first = jobs;
		s->batches++;
	} else {
		b->last->next = jobs;
	}
	b->last = last;
	for (struct job *j = jobs; j; j = j->next) {
		b->n++;
		if (b->intact) {
			j->result = run_job(s, j, &b->intact);
			s->transactions++;
		}
	}
}

/* Commits the open batch and hands it to the syncer. If it cannot commit, the jobs that had
 * succeeded get ERR_UNAVAILABLE. */
static void batch_close(struct sqlite_storage *s, struct batch *b)
{
	struct conn *w = &s->writer;
	if (b->intact && !atomic_load(&s->failed) && exec_stmt(w, S_COMMIT) == ERR_OK) {
		metrics_commit_batch(METRICS_SQLITE, b->n);
	} else {
		if (!sqlite3_get_autocommit(w->db))
			exec_stmt(w, S_ROLLBACK);
		for (struct job *j = b->first; j; j = j->next)
			if (j->result == ERR_OK)
				j->result = ERR_UNAVAILABLE;
	}
	syncer_hand(s, b->first, b->last);
	*b = (struct batch){0};
}

/* Runs in the writer between two batches: past WAL_LIMIT_PAGES, copies what the checkpointer
 * has not, so that the next batch starts the WAL over. */
static void wal_limit_checkpoint(struct sqlite_storage *s)
{
	if (s->wal_pages < WAL_LIMIT_PAGES || atomic_load(&s->failed))
		return;
	s->writer_checkpoints++;
	int rc = sqlite3_wal_checkpoint_v2(s->writer.db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL,
					   NULL);
	/* BUSY: the checkpointer is copying; the end of the next batch tries again. */
	if (rc != SQLITE_OK && rc != SQLITE_BUSY)
		db_fail(s->writer.db, rc, "wal_checkpoint_writer");
}

/* Whether the open batch (b->n > 0) is to be committed now; queue_mu held. While the syncer
 * is in an fdatasync, what the batch would commit could not be released before the next one
 * anyway: the batch stays open and takes the jobs queued meanwhile. */
static bool batch_due(struct sqlite_storage *s, const struct batch *b)
{
	return !atomic_load(&s->syncing) || b->n >= BATCH_MAX || !b->intact || s->stopping;
}

static void *writer_main(void *arg)
{
	struct sqlite_storage *s = arg;
	struct batch b = {0};
	thread_name("cs-writer");
	pthread_mutex_lock(&s->queue_mu);
	for (;;) {
		if (b.n > 0 && batch_due(s, &b)) {
			pthread_mutex_unlock(&s->queue_mu);
			batch_close(s, &b);
			wal_limit_checkpoint(s);
		} else if (s->head) {
			struct job *jobs = s->head, *last = jobs;
			for (size_t n = b.n + 1; last->next && n < BATCH_MAX; n++)
				last = last->next;
			s->head = last->next;
			if (!s->head)
				s->tail = NULL;
			last->next = NULL;
			pthread_mutex_unlock(&s->queue_mu);
			batch_run(s, &b, jobs, last);
		} else if (b.n == 0 && s->stopping) {
			break; /* the queue is drained, and every batch handed over */
		} else {
			/* Woken by a job queued, the close, or the end of an fdatasync. */
			pthread_cond_wait(&s->queue_cond, &s->queue_mu);
			continue;
		}
		pthread_mutex_lock(&s->queue_mu);
	}
	pthread_mutex_unlock(&s->queue_mu);
	return NULL;
}

static enum err sq_transact(struct storage *st, storage_tx_fn fn, void *arg)
{
	struct sqlite_storage *s = to_sqlite(st);
	struct job j = {.fn = fn, .arg = arg, .request_id = log_request_current(),
			.result = ERR_UNAVAILABLE};
	/* From inside a transaction function the writer would wait for itself forever. */
	if (pthread_equal(pthread_self(), s->thread)) {
		log_write(LOG_ERROR, "msg=\"storage_transact called inside a transaction\"");
		return ERR_INTERNAL;
	}
	if (sem_init(&j.done, 0, 0) != 0)
		return ERR_INTERNAL;
	pthread_mutex_lock(&s->queue_mu);
	bool queued = !s->stopping;
	if (queued) {
		if (s->tail)
			s->tail->next = &j;
		else
			s->head = &j;
		s->tail = &j;
		pthread_cond_signal(&s->queue_cond);
	}
	pthread_mutex_unlock(&s->queue_mu);
	while (queued && sem_wait(&j.done) != 0)
		; /* EINTR: a signal handler ran; the job is still the writer's */
	sem_destroy(&j.done);
	return j.result;
}

/* ---- migrations ---- */

static enum err version_read(struct conn *cn, int *ret_version)
{
	int64_t exists = 0, v = 0;
	enum err e = query_int(cn, S_VERSION_EXISTS, &exists);
	if (e == ERR_OK && exists)
		e = query_int(cn, S_VERSION_MAX, &v);
	if (e != ERR_OK)
		return e;
	if (v < 0 || v > INT_MAX)
		return checked(ERR_INTERNAL, S_VERSION_MAX);
	*ret_version = (int)v;
	return ERR_OK;
}

/* Applies the first pending migration, if any, and records it: each migration commits on its
 * own, and the version is read under the write lock so two processes cannot both apply it. */
static enum err migrate_next(struct storage_tx *tx, void *arg)
{
	bool *ret_applied = arg;
	struct conn *w = tx_conn(tx);
	int version = 0;
	enum err e = exec_stmt(w, S_VERSION_CREATE);
	if (e == ERR_OK)
		e = version_read(w, &version);
	if (e != ERR_OK)
		return e;
	const struct migration *m = NULL;
	for (size_t i = 0; i < sqlite_migrations_count && !m; i++)
		if (sqlite_migrations[i].version > version)
			m = &sqlite_migrations[i];
	if (!m) {
		*ret_applied = false;
		return ERR_OK;
	}
	/* The migration text is compiled in (db/embed_migrations.py), never input. */
	int rc = sqlite3_exec(w->db, m->sql, NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		return db_fail(w->db, rc, m->name);
	struct binder b = {0};
	e = stmt_get(w, S_VERSION_INSERT, &b.st);
	if (e != ERR_OK)
		return e;
	bind_int(&b, 1, m->version);
	bind_text(&b, 2, m->name);
	bind_int(&b, 3, clock_now_ms(&clock_system));
	e = run_bound(w, S_VERSION_INSERT, &b);
	if (e == ERR_OK)
		*ret_applied = true;
	return e;
}

static enum err sq_migrate(struct storage *st, int *ret_applied)
{
	int n = 0;
	bool applied;
	do {
		applied = false;
		enum err e = sq_transact(st, migrate_next, &applied);
		if (e != ERR_OK)
			return e;
		n += applied;
	} while (applied);
	/* What a crash left past the marks, now that the audit tables exist. */
	atomic_store(&to_sqlite(st)->audit_behind, true);
	*ret_applied = n;
	return ERR_OK;
}

/* ---- transaction functions ---- */

static enum err sq_tx_call_get(struct storage_tx *tx, const char *id, struct call **ret_call)
{
	return load_call(tx_conn(tx), S_CALL_BY_ID, id, 0, ret_call);
}

/* One writer runs every transaction, so nothing else can hold the call: only "due" filters. */
static enum err sq_tx_call_get_due(struct storage_tx *tx, const char *id, int64_t now,
				   struct call **ret_call)
{
	return load_call(tx_conn(tx), S_CALL_DUE, id, now, ret_call);
}

static enum err sq_tx_call_insert(struct storage_tx *tx, const struct call *c, const char *view)
{
	return write_call(tx_conn(tx), S_CALL_INSERT, c, NULL, view);
}

static enum err sq_tx_call_update(struct storage_tx *tx, const struct call *c,
				  const struct call *loaded, const char *view)
{
	enum stmt_id id = rows_call_only_unindexed_changed(c, loaded) ? S_CALL_UPDATE_UNINDEXED
								       : S_CALL_UPDATE;
	return write_call(tx_conn(tx), id, c, loaded, view);
}

/* The single writer commits in the order it inserts, so the rowid is already in commit
 * order (storage.h rule 4). */
static enum err sq_tx_event_append(struct storage_tx *tx, const struct event *ev)
{
	struct conn *w = tx_conn(tx);
	struct binder b = {0};
	enum err e = stmt_get(w, S_EVENT_INSERT, &b.st);
	if (e != ERR_OK)
		return e;
	struct db_value v[EVENT_COUNT];
	rows_event_values(ev, v);
	bind_values(&b, 1, v, EVENT_COUNT);
	e = run_bound(w, S_EVENT_INSERT, &b);
	if (e != ERR_OK)
		return e;
	struct sqlite_storage *s = to_sqlite(tx->st);
	int64_t seq = sqlite3_last_insert_rowid(w->db);
	pthread_mutex_lock(&s->sync_mu);
	if (atomic_load(&s->feed_durable) == INT64_MAX)
		atomic_store(&s->feed_durable, seq - 1);
	s->feed_appended = seq;
	pthread_mutex_unlock(&s->sync_mu);
	if (*ev->call_id)
		atomic_store(&s->audit_behind, true);
	return ERR_OK;
}

static enum err idempotency_read(struct conn *w, const char *caller, const char *key,
				 struct idempotency *ret)
{
	struct binder b = {0};
	enum err e = stmt_get(w, S_IDEM_GET, &b.st);
	if (e != ERR_OK)
		return e;
	bind_text(&b, 1, caller);
	bind_text(&b, 2, key);
	int rc = step_bound(&b);
	if (rc == SQLITE_ROW) {
		struct db_value v[3];
		row_values(b.st, 0, 3, v);
		e = checked(rows_read_idempotency(v, ret), S_IDEM_GET);
	} else {
		e = db_fail(w->db, rc == SQLITE_DONE ? SQLITE_INTERNAL : rc, stmts[S_IDEM_GET].name);
	}
	stmt_done(b.st);
	return e;
}

static enum err sq_tx_idempotency_claim(struct storage_tx *tx, const char *caller,
					const char *key, const struct idempotency *rec,
					int64_t live_after, struct idempotency *ret_live)
{
	struct conn *w = tx_conn(tx);
	struct binder b = {0};
	enum err e = stmt_get(w, S_IDEM_CLAIM, &b.st);
	if (e != ERR_OK)
		return e;
	bind_text(&b, 1, caller);
	bind_text(&b, 2, key);
	bind_text(&b, 3, rec->call_id);
	bind_blob(&b, 4, rec->request_hash, (int)sizeof rec->request_hash);
	bind_int(&b, 5, rec->created_at);
	bind_int(&b, 6, live_after);
	e = run_bound(w, S_IDEM_CLAIM, &b);
	if (e != ERR_OK || sqlite3_changes(w->db) == 1)
		return e;
	e = idempotency_read(w, caller, key, ret_live);
	return e == ERR_OK ? ERR_CONFLICT : e;
}

static enum err sq_tx_webhook_insert(struct storage_tx *tx, const struct webhook_record *rec)
{
	struct conn *w = tx_conn(tx);
	struct binder b = {0};
	if (rec->body_len > INT_MAX)
		return ERR_TOO_LARGE;
	enum err e = stmt_get(w, S_WEBHOOK_INSERT, &b.st);
	if (e != ERR_OK)
		return e;
	bind_text(&b, 1, rec->id);
	bind_text(&b, 2, rec->event);
	bind_text(&b, 3, rec->room);
	bind_text(&b, 4, rec->call_id);
	bind_time(&b, 5, rec->created_at);
	bind_int(&b, 6, rec->received_at);
	/* A NULL pointer would bind SQL NULL; an empty body is still a body. */
	bind_blob(&b, 7, rec->body ? rec->body : "", (int)rec->body_len);
	bind_time(&b, 8, rec->call_version); /* 0: no call owns the room */
	e = run_bound(w, S_WEBHOOK_INSERT, &b);
	if (e == ERR_OK && *rec->call_id)
		atomic_store(&to_sqlite(tx->st)->audit_behind, true);
	return e;
}

static enum err presence_read(struct conn *cn, const char *user, const char *except_call_id,
			      struct presence_record *ret)
{
	struct binder b = {0};
	enum err e = stmt_get(cn, S_PRESENCE_GET, &b.st);
	if (e != ERR_OK)
		return e;
	bind_text(&b, 1, user);
	bind_text(&b, 2, except_call_id);
	int rc = step_bound(&b);
	if (rc == SQLITE_ROW) {
		struct db_value v[6];
		row_values(b.st, 0, 6, v);
		e = checked(rows_read_presence(v, ret), S_PRESENCE_GET);
	} else {
		e = db_fail(cn->db, rc == SQLITE_DONE ? SQLITE_INTERNAL : rc,
			    stmts[S_PRESENCE_GET].name);
	}
	stmt_done(b.st);
	return e;
}

static enum err sq_tx_presence_get(struct storage_tx *tx, const char *user,
				   const char *except_call_id, struct presence_record *ret)
{
	return presence_read(tx_conn(tx), user, except_call_id, ret);
}

static enum err sq_tx_presence_set(struct storage_tx *tx, const char *user, int status,
				   int64_t since)
{
	struct conn *w = tx_conn(tx);
	struct binder b = {0};
	enum err e = stmt_get(w, S_PRESENCE_SET, &b.st);
	if (e != ERR_OK)
		return e;
	bind_text(&b, 1, user);
	bind_int(&b, 2, status);
	bind_int(&b, 3, since);
	return run_bound(w, S_PRESENCE_SET, &b);
}

/* ---- retention ---- */

/* Runs the statements ids[0..n) with ?1 = before and ?2 = max, then brings the webhooks'
 * audit mark down (S_AUDIT_MARK_LOWER); *ret_n counts the rows that ids[counted..n) deleted. */
static enum err purge_steps(struct storage_tx *tx, const enum stmt_id *ids, size_t n,
			    size_t counted, int64_t before, size_t max, size_t *ret_n)
{
	struct conn *w = tx_conn(tx);
	size_t deleted = 0;
	enum err e = ERR_OK;
	for (size_t i = 0; e == ERR_OK && i < n; i++) {
		struct binder b = {0};
		e = stmt_get(w, ids[i], &b.st);
		if (e != ERR_OK)
			break;
		bind_int(&b, 1, before);
		bind_int(&b, 2, max > INT64_MAX ? INT64_MAX : (int64_t)max);
		e = run_bound(w, ids[i], &b);
		if (e == ERR_OK && i >= counted)
			deleted += (size_t)sqlite3_changes(w->db);
	}
	if (e == ERR_OK)
		e = exec_stmt(w, S_AUDIT_MARK_LOWER);
	if (e == ERR_OK)
		*ret_n = deleted;
	return e;
}

static enum err sq_tx_purge_calls(struct storage_tx *tx, int64_t ended_before, size_t max,
				  size_t *ret_n)
{
	/* What names the calls first: the calls (which PURGED_CALLS selects) go last. */
	static const enum stmt_id steps[] = {S_PURGE_EVENTS, S_PURGE_WEBHOOKS,
					     S_PURGE_AUDIT_EVENTS, S_PURGE_AUDIT_WEBHOOKS,
					     S_PURGE_CALLS};
	enum { N = sizeof steps / sizeof steps[0] };
	return purge_steps(tx, steps, N, N - 1, ended_before, max, ret_n);
}

static enum err sq_tx_purge_unowned(struct storage_tx *tx, int64_t before, size_t max,
				    size_t *ret_n)
{
	static const enum stmt_id steps[] = {S_PURGE_LOOSE_EVENTS, S_PURGE_LOOSE_WEBHOOKS,
					     S_PURGE_IDEMPOTENCY, S_PURGE_SETTLED_DELIVERIES};
	return purge_steps(tx, steps, sizeof steps / sizeof steps[0], 0, before, max, ret_n);
}

/* ---- reads ---- */

static enum err sq_ping(struct storage *st)
{
	struct sqlite_storage *s = to_sqlite(st);
	struct conn *cn;
	int64_t one;
	if (atomic_load(&s->failed))
		return ERR_UNAVAILABLE;
	enum err e = reader_begin(s, &cn, false);
	if (e != ERR_OK)
		return e;
	e = query_int(cn, S_PING, &one);
	reader_end(s, cn);
	return e;
}

static enum err sq_schema_version(struct storage *st, int *ret_version)
{
	struct sqlite_storage *s = to_sqlite(st);
	struct conn *cn;
	enum err e = reader_begin(s, &cn, false);
	if (e != ERR_OK)
		return e;
	e = version_read(cn, ret_version);
	reader_end(s, cn);
	return e;
}

static enum err sq_call_get(struct storage *st, const char *id, struct call **ret_call)
{
	struct sqlite_storage *s = to_sqlite(st);
	struct conn *cn;
	enum err e = reader_begin(s, &cn, true);
	if (e != ERR_OK)
		return e;
	e = load_call(cn, S_CALL_BY_ID, id, 0, ret_call);
	reader_end(s, cn);
	return e;
}

static enum err sq_presence_get(struct storage *st, const char *user, struct presence_record *ret)
{
	struct sqlite_storage *s = to_sqlite(st);
	struct conn *cn;
	enum err e = reader_begin(s, &cn, false);
	if (e != ERR_OK)
		return e;
	e = presence_read(cn, user, NULL, ret);
	reader_end(s, cn);
	return e;
}

static enum err call_access_read(struct conn *cn, const char *id, const char *user,
				 struct call_access *ret)
{
	struct binder b = {0};
	enum err e = stmt_get(cn, S_CALL_ACCESS, &b.st);
	if (e != ERR_OK)
		return e;
	bind_text(&b, 1, id);
	bind_text(&b, 2, user);
	int rc = step_bound(&b);
	if (rc == SQLITE_ROW) {
		struct db_value v[7];
		*ret = (struct call_access){0};
		row_values(b.st, 0, 7, v);
		e = checked(rows_read_access(v, ret), S_CALL_ACCESS);
	} else {
		e = rc == SQLITE_DONE ? ERR_NOT_FOUND
				      : db_fail(cn->db, rc, stmts[S_CALL_ACCESS].name);
	}
	stmt_done(b.st);
	return e;
}

static enum err sq_call_access(struct storage *st, const char *id, const char *user,
			       struct call_access *ret)
{
	struct sqlite_storage *s = to_sqlite(st);
	struct conn *cn;
	enum err e = reader_begin(s, &cn, false);
	if (e != ERR_OK)
		return e;
	e = call_access_read(cn, id, user, ret);
	reader_end(s, cn);
	return e;
}

static const enum stmt_id list_stmts[] = {
	[LIST_BY_USER] = S_LIST_USER,	  [LIST_BY_CHAT] = S_LIST_CHAT,
	[LIST_BY_OUTCOME] = S_LIST_OUTCOME, [LIST_BY_STATUS] = S_LIST_STATUS,
	[LIST_BY_ALL] = S_LIST_ALL,
};

/* A row of VIEW_COLS. */
static enum err read_view(sqlite3_stmt *st, enum stmt_id id, struct call_view *ret_view)
{
	struct db_value v[VIEW_COUNT];
	*ret_view = (struct call_view){0};
	row_values(st, 0, VIEW_COUNT, v);
	enum err e = checked(rows_read_view(v, ret_view), id);
	if (e != ERR_OK)
		call_view_finish(ret_view);
	return e;
}

static enum err sq_call_view(struct storage *st, const char *id, struct call_view *ret_view)
{
	struct sqlite_storage *s = to_sqlite(st);
	struct binder b = {0};
	struct conn *cn = NULL;
	enum err e = reader_begin(s, &cn, false);
	if (e == ERR_OK)
		e = stmt_get(cn, S_VIEW_BY_ID, &b.st);
	if (e == ERR_OK) {
		bind_text(&b, 1, id);
		int rc = step_bound(&b);
		if (rc == SQLITE_ROW)
			e = read_view(b.st, S_VIEW_BY_ID, ret_view);
		else
			e = rc == SQLITE_DONE ? ERR_NOT_FOUND
					      : db_fail(cn->db, rc, stmts[S_VIEW_BY_ID].name);
		stmt_done(b.st);
	}
	if (cn)
		reader_end(s, cn);
	return e;
}

static enum err sq_calls_list(struct storage *st, const struct call_filter *f,
			      struct view_page *ret_page)
{
	struct sqlite_storage *s = to_sqlite(st);
	struct db_value params[LIST_PARAM_COUNT];
	size_t n_params;
	enum list_driver driver = LIST_BY_ALL;
	struct view_page page = {0};
	struct binder b = {0};
	struct conn *cn = NULL;
	int rc = SQLITE_DONE;
	enum err e;

	if (f->limit < 1 || f->limit > LIST_LIMIT_MAX ||
	    !rows_list_values(f, params, &n_params, &driver))
		return ERR_INVALID;
	page.views = calloc((size_t)f->limit, sizeof *page.views);
	if (!page.views)
		return ERR_NOMEM;
	enum stmt_id id = list_stmts[driver];
	e = reader_begin(s, &cn, false);
	if (e == ERR_OK)
		e = stmt_get(cn, id, &b.st);
	if (e == ERR_OK)
		bind_values(&b, 1, params, n_params); /* a failure shows at the first step */
	if (e != ERR_OK)
		goto out;
	while (e == ERR_OK && (rc = step_bound(&b)) == SQLITE_ROW) {
		if (page.n == (size_t)f->limit) {
			page.more = true;
			break;
		}
		e = read_view(b.st, id, &page.views[page.n]);
		if (e == ERR_OK)
			page.n++;
	}
	if (e == ERR_OK && !page.more && rc != SQLITE_DONE)
		e = db_fail(cn->db, rc, stmts[id].name);
out:
	read_done(s, cn, b.st);
	if (e != ERR_OK) {
		view_page_finish(&page);
		return e;
	}
	*ret_page = page;
	return ERR_OK;
}

static enum err sq_call_stats(struct storage *st, int64_t since, int64_t until,
			      int64_t join_timeout_ms, int64_t now, struct call_stats *ret)
{
	struct sqlite_storage *s = to_sqlite(st);
	struct binder b = {0};
	struct conn *cn = NULL;
	enum err e = reader_begin(s, &cn, false);
	if (e == ERR_OK)
		e = stmt_get(cn, S_STATS, &b.st);
	if (e != ERR_OK)
		goto out;
	bind_int(&b, 1, since ? since : INT64_MIN);
	bind_int(&b, 2, until ? until : INT64_MAX);
	bind_int(&b, 3, join_timeout_ms);
	bind_int(&b, 4, now);
	int rc = step_bound(&b);
	if (rc == SQLITE_ROW) {
		struct db_value v[STATS_COUNT];
		row_values(b.st, 0, STATS_COUNT, v);
		e = checked(rows_read_stats(v, ret), S_STATS);
	} else {
		e = db_fail(cn->db, rc == SQLITE_DONE ? SQLITE_INTERNAL : rc, stmts[S_STATS].name);
	}
out:
	read_done(s, cn, b.st);
	return e;
}

/* The feed's rows of b's statement (id), prepared on cn, as a page. */
static enum err event_rows(struct sqlite_storage *s, struct conn *cn, enum stmt_id id,
			   struct binder *b, struct event_page *ret_page)
{
	struct event_page page = {0};
	size_t cap = 0;
	enum err e = ERR_OK;
	int rc = SQLITE_DONE;
	/* Read after the first step, which fixed this read's snapshot: the writer lowers the
	 * bound before it commits an event, so an event in the snapshot past the bound is one
	 * this read must not show yet (see feed_durable). Seqs ascend: the page ends there. */
	int64_t durable = INT64_MAX;
	while (e == ERR_OK && (rc = step_bound(b)) == SQLITE_ROW) {
		if (page.n == 0)
			durable = atomic_load(&s->feed_durable);
		if (sqlite3_column_int64(b->st, 0) > durable) {
			rc = SQLITE_DONE;
			break;
		}
		if (page.n == cap) {
			size_t grown = cap ? cap * 2 : EVENTS_GROW;
			struct event *p = realloc(page.events, grown * sizeof *p);
			if (!p) {
				e = ERR_NOMEM;
				break;
			}
			page.events = p;
			cap = grown;
		}
		struct db_value v[EVENT_COUNT + 1];
		struct event *ev = &page.events[page.n++]; /* counted now: the cleanup frees it */
		*ev = (struct event){0};
		row_values(b->st, 0, EVENT_COUNT + 1, v);
		e = checked(rows_read_event(v, ev), id);
	}
	if (e == ERR_OK && rc != SQLITE_DONE)
		e = db_fail(cn->db, rc, stmts[id].name);
	if (e != ERR_OK) {
		event_page_finish(&page);
		return e;
	}
	*ret_page = page;
	return ERR_OK;
}

static enum err sq_events_after(struct storage *st, int64_t after, int limit,
				struct event_page *ret_page)
{
	struct sqlite_storage *s = to_sqlite(st);
	struct binder b = {0};
	struct conn *cn = NULL;
	if (limit < 1)
		return ERR_INVALID;
	enum err e = reader_begin(s, &cn, false);
	if (e == ERR_OK)
		e = stmt_get(cn, S_EVENTS_AFTER, &b.st);
	if (e == ERR_OK) {
		bind_int(&b, 1, after);
		bind_int(&b, 2, limit);
		e = event_rows(s, cn, S_EVENTS_AFTER, &b, ret_page);
	}
	read_done(s, cn, b.st);
	return e;
}

static enum err sq_events_get(struct storage *st, const char *seqs_json,
			      struct event_page *ret_page)
{
	struct sqlite_storage *s = to_sqlite(st);
	struct binder b = {0};
	struct conn *cn = NULL;
	enum err e = reader_begin(s, &cn, false);
	if (e == ERR_OK)
		e = stmt_get(cn, S_EVENTS_GET, &b.st);
	if (e == ERR_OK) {
		bind_text(&b, 1, seqs_json);
		e = event_rows(s, cn, S_EVENTS_GET, &b, ret_page);
	}
	read_done(s, cn, b.st);
	return e;
}

/* Room for one more entry at a->entries[a->n], zeroed; *cap is the allocated count. */
static enum err audit_trail_reserve(struct audit_trail *a, size_t *cap)
{
	if (a->n == *cap) {
		size_t grown = *cap ? *cap * 2 : 16;
		struct audit_entry *p = realloc(a->entries, grown * sizeof *p);
		if (!p)
			return ERR_NOMEM;
		a->entries = p;
		*cap = grown;
	}
	a->entries[a->n] = (struct audit_entry){0};
	return ERR_OK;
}

/* Steps S_AUDIT, prepared on cn into b, for call id into *ret. */
static enum err audit_collect(struct conn *cn, struct binder *b, const char *id,
			      struct audit_trail *ret)
{
	struct audit_trail trail = {0};
	size_t cap = 0;
	int rc = SQLITE_DONE;
	enum err e = ERR_OK;
	bind_text(b, 1, id);
	while (e == ERR_OK && (rc = step_bound(b)) == SQLITE_ROW) {
		e = audit_trail_reserve(&trail, &cap);
		if (e != ERR_OK)
			break;
		struct db_value v[AUDIT_COUNT];
		row_values(b->st, 0, AUDIT_COUNT, v);
		e = checked(rows_read_audit(v, &trail.entries[trail.n++]), S_AUDIT);
	}
	if (e == ERR_OK && rc != SQLITE_DONE)
		e = db_fail(cn->db, rc, stmts[S_AUDIT].name);
	if (e != ERR_OK) {
		audit_trail_finish(&trail);
		return e;
	}
	*ret = trail;
	return ERR_OK;
}

static enum err sq_call_audit(struct storage *st, const char *id, struct audit_trail *ret)
{
	struct sqlite_storage *s = to_sqlite(st);
	struct binder b = {0};
	struct conn *cn = NULL;
	enum err e = reader_begin(s, &cn, false);
	if (e == ERR_OK)
		e = stmt_get(cn, S_AUDIT, &b.st);
	if (e == ERR_OK)
		e = audit_collect(cn, &b, id, ret);
	read_done(s, cn, b.st);
	return e;
}

static enum err sq_calls_due(struct storage *st, int64_t now, const struct due_call *after,
			     size_t max, struct due_call *ret_calls, size_t *ret_n)
{
	struct sqlite_storage *s = to_sqlite(st);
	struct binder b = {0};
	struct conn *cn = NULL;
	size_t n = 0;
	enum err e;
	int rc = SQLITE_DONE;

	e = reader_begin(s, &cn, false);
	if (e == ERR_OK)
		e = stmt_get(cn, S_DUE, &b.st);
	if (e != ERR_OK)
		goto out;
	bind_int(&b, 1, now);
	bind_int(&b, 2, after ? after->deadline : INT64_MIN);
	/* bind_text() would make "" a NULL, and a NULL makes the row comparison false. */
	if (b.rc == SQLITE_OK)
		b.rc = sqlite3_bind_text(b.st, 3, after ? after->id : "", -1, SQLITE_STATIC);
	bind_int(&b, 4, max > INT64_MAX ? INT64_MAX : (int64_t)max);
	while (e == ERR_OK && n < max && (rc = step_bound(&b)) == SQLITE_ROW) {
		struct db_value v[2];
		row_values(b.st, 0, 2, v);
		e = checked(rows_read_due(v, &ret_calls[n]), S_DUE);
		n++;
	}
	if (e == ERR_OK && n < max && rc != SQLITE_DONE)
		e = db_fail(cn->db, rc, stmts[S_DUE].name);
out:
	read_done(s, cn, b.st);
	if (e == ERR_OK)
		*ret_n = n;
	return e;
}

/* ---- erasure of a user ---- */

static enum err sq_user_call_ids(struct storage *st, const char *user, const char *after_id,
				 size_t max, char (*ret_ids)[ID_LEN + 1], size_t *ret_n)
{
	struct sqlite_storage *s = to_sqlite(st);
	struct binder b = {0};
	struct conn *cn = NULL;
	size_t n = 0;
	int rc = SQLITE_DONE;
	enum err e = reader_begin(s, &cn, false);
	if (e == ERR_OK)
		e = stmt_get(cn, S_USER_CALL_IDS, &b.st);
	if (e != ERR_OK)
		goto out;
	bind_text(&b, 1, user);
	/* bind_text() would make "" a NULL, which no id is greater than. */
	if (b.rc == SQLITE_OK)
		b.rc = sqlite3_bind_text(b.st, 2, after_id, -1, SQLITE_STATIC);
	bind_int(&b, 3, max > INT64_MAX ? INT64_MAX : (int64_t)max);
	while (n < max && (rc = step_bound(&b)) == SQLITE_ROW) {
		const unsigned char *id = sqlite3_column_text(b.st, 0);
		if (!id || strlen((const char *)id) > ID_LEN) {
			e = checked(ERR_INTERNAL, S_USER_CALL_IDS);
			break;
		}
		memcpy(ret_ids[n++], id, strlen((const char *)id) + 1);
	}
	if (e == ERR_OK && n < max && rc != SQLITE_DONE)
		e = db_fail(cn->db, rc, stmts[S_USER_CALL_IDS].name);
out:
	read_done(s, cn, b.st);
	if (e == ERR_OK)
		*ret_n = n;
	return e;
}

static enum err sq_tx_call_audit(struct storage_tx *tx, const char *id, struct audit_trail *ret)
{
	struct conn *w = tx_conn(tx);
	struct binder b = {0};
	enum err e = stmt_get(w, S_AUDIT, &b.st);
	if (e != ERR_OK)
		return e;
	e = audit_collect(w, &b, id, ret);
	stmt_done(b.st);
	return e;
}

static enum err sq_tx_audit_rewrite(struct storage_tx *tx, const struct audit_entry *entry)
{
	struct conn *w = tx_conn(tx);
	struct binder b = {0};
	enum stmt_id id = entry->webhook ? S_WEBHOOK_REWRITE : S_EVENT_REWRITE;
	size_t len = strlen(entry->body);
	if (len > INT_MAX)
		return ERR_TOO_LARGE;
	enum err e = stmt_get(w, id, &b.st);
	if (e != ERR_OK)
		return e;
	bind_text(&b, 1, entry->id);
	/* As stored: a webhook's body is a blob, an event's data text. */
	if (entry->webhook) {
		bind_blob(&b, 2, entry->body, (int)len);
	} else {
		bind_text(&b, 2, entry->body);
		bind_int(&b, 3, entry->seq);
	}
	return run_bound(w, id, &b);
}

/* Runs statement id on the writer with the texts as ?1.., in order. */
static enum err run_texts(struct conn *w, enum stmt_id id, const char *const *texts, int n)
{
	struct binder b = {0};
	enum err e = stmt_get(w, id, &b.st);
	if (e != ERR_OK)
		return e;
	for (int i = 0; i < n; i++)
		bind_text(&b, i + 1, texts[i]);
	return run_bound(w, id, &b);
}

static enum err sq_tx_call_rename_user(struct storage_tx *tx, const char *id, const char *user,
				       const char *pseudonym, const char *metadata,
				       const char *view)
{
	struct conn *w = tx_conn(tx);
	const char *texts[] = {id, user, pseudonym, metadata, view};
	enum err e = run_texts(w, S_RENAME_MEMBER, texts, 3);
	if (e == ERR_OK)
		e = run_texts(w, S_RENAME_SESSIONS, texts, 3);
	if (e == ERR_OK)
		e = run_texts(w, S_RENAME_CALL, texts, 5);
	return e;
}

static enum err sq_tx_user_forget(struct storage_tx *tx, const char *user)
{
	struct conn *w = tx_conn(tx);
	enum err e = run_texts(w, S_FORGET_PRESENCE, &user, 1);
	return e == ERR_OK ? run_texts(w, S_FORGET_IDEMPOTENCY, &user, 1) : e;
}

/* A TRUNCATE checkpoint copies the whole WAL into the database, syncs it and cuts the WAL to
 * nothing, so the frames holding what the writer overwrote are gone; secure_delete already
 * zeroed the freed content in the pages copied. It runs on a connection of its own (the
 * checkpointer's belongs to its thread), waits for the writer's lock and for readers still on
 * old frames through the busy timeout, and is tried a few times: a reader that keeps an old
 * snapshot would make it give up with SQLITE_BUSY. */
static enum err sq_scrub(struct storage *st)
{
	struct sqlite_storage *s = to_sqlite(st);
	struct conn cn = {0};
	enum err e = conn_open(&cn, s->path, SQLITE_OPEN_READWRITE, NULL,
			       "PRAGMA synchronous = FULL; PRAGMA trusted_schema = OFF;");
	if (e != ERR_OK)
		return e;
	int rc = SQLITE_BUSY;
	for (int attempt = 0; attempt < SCRUB_ATTEMPTS && (rc & 0xff) == SQLITE_BUSY; attempt++) {
		/* The checkpointer's own passive run makes this busy at once, without waiting. */
		if (attempt)
			nanosleep(&(struct timespec){0, SCRUB_PAUSE_MS * 1000000L}, NULL);
		rc = sqlite3_wal_checkpoint_v2(cn.db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
	}
	e = rc == SQLITE_OK ? ERR_OK : db_fail(cn.db, rc, "wal_checkpoint_truncate");
	conn_close(&cn);
	return e;
}

/* ---- open and close ---- */

static void log_writer_totals(struct sqlite_storage *s)
{
	uint64_t statements = 0, vm_steps = 0;
	for (size_t i = 0; i < S_COUNT; i++) {
		sqlite3_stmt *st = s->writer.stmt[i];
		if (!st)
			continue;
		statements += (uint64_t)sqlite3_stmt_status(st, SQLITE_STMTSTATUS_RUN, 0);
		vm_steps += (uint64_t)sqlite3_stmt_status(st, SQLITE_STMTSTATUS_VM_STEP, 0);
	}
	log_write(LOG_INFO,
		  "msg=\"sqlite writer totals\" batches=%" PRIu64 " transactions=%" PRIu64
		  " statements=%" PRIu64 " vm_steps=%" PRIu64 " wal_frames=%" PRIu64
		  " syncs=%" PRIu64 " wal_restarts=%" PRIu64 " writer_checkpoints=%" PRIu64,
		  s->batches, s->transactions, statements, vm_steps, s->wal_frames, s->syncs,
		  s->wal_restarts, s->writer_checkpoints);
}

static void sqlite_free(struct sqlite_storage *s)
{
	/* Nothing is left past the audit marks at rest (see 0003_audit_trail.sql). */
	if (s->thread_running && !atomic_load(&s->failed) && audit_index(s, 0) != ERR_OK)
		log_write(LOG_WARN, "msg=\"audit index catch-up failed at close\"");
	if (s->thread_running) {
		pthread_mutex_lock(&s->queue_mu);
		s->stopping = true;
		pthread_cond_signal(&s->queue_cond);
		pthread_mutex_unlock(&s->queue_mu);
		pthread_join(s->thread, NULL);
	}
	if (s->syncer_running) {
		pthread_mutex_lock(&s->sync_mu);
		s->sync_stop = true;
		pthread_cond_signal(&s->sync_cond);
		pthread_mutex_unlock(&s->sync_mu);
		pthread_join(s->syncer, NULL);
	}
	if (s->wal_fd >= 0)
		close(s->wal_fd);
	if (s->checkpointer_running) {
		pthread_mutex_lock(&s->checkpoint_mu);
		s->checkpoint_stop = true;
		pthread_cond_signal(&s->checkpoint_cond);
		pthread_mutex_unlock(&s->checkpoint_mu);
		pthread_join(s->checkpointer, NULL);
	}
	if (s->checkpoint_db)
		sqlite3_close(s->checkpoint_db);
	if (s->writer.db) {
		log_writer_totals(s);
		conn_close(&s->writer);
	}
	if (s->readers_ready) {
		struct conn *cn;
		while ((cn = pool_drain(&s->readers))) {
			conn_close(cn);
			free(cn);
		}
		pool_finish(&s->readers);
	}
	if (s->sync_ready) {
		pthread_mutex_destroy(&s->queue_mu);
		pthread_cond_destroy(&s->queue_cond);
		pthread_mutex_destroy(&s->checkpoint_mu);
		pthread_cond_destroy(&s->checkpoint_cond);
		pthread_mutex_destroy(&s->sync_mu);
		pthread_cond_destroy(&s->sync_cond);
		feed_signal_finish(&s->base.feed);
	}
	free(s->path);
	free(s->wal_path);
	free(s);
}

static void sq_close(struct storage *st)
{
	sqlite_free(to_sqlite(st));
}

/* glibc's mutex and condition variable inits cannot fail with these attributes; a failure
 * would still be refused rather than used. */
static bool sync_init(struct sqlite_storage *s)
{
	return pthread_mutex_init(&s->queue_mu, NULL) == 0 &&
	       pthread_cond_init(&s->queue_cond, NULL) == 0 &&
	       pthread_mutex_init(&s->checkpoint_mu, NULL) == 0 &&
	       pthread_cond_init(&s->checkpoint_cond, NULL) == 0 &&
	       pthread_mutex_init(&s->sync_mu, NULL) == 0 &&
	       pthread_cond_init(&s->sync_cond, NULL) == 0 &&
	       feed_signal_init(&s->base.feed, 0, true) == ERR_OK;
}

/* ---- push delivery ---- */

static enum err sq_delivery_cursor(struct storage *st, int64_t *ret_seq)
{
	struct sqlite_storage *s = to_sqlite(st);
	struct conn *cn;
	enum err e = reader_begin(s, &cn, false);
	if (e != ERR_OK)
		return e;
	e = query_int(cn, S_DELIVERY_CURSOR, ret_seq);
	reader_end(s, cn);
	return e;
}

/* bind_text() would make "" (the presence events' order) a NULL. */
static void bind_order_key(struct binder *b, int i, const char *order_key)
{
	if (b->rc == SQLITE_OK)
		b->rc = sqlite3_bind_text(b->st, i, order_key, -1, SQLITE_STATIC);
}

static enum err sq_tx_delivery_enqueue(struct storage_tx *tx, int64_t from,
				       const struct event_page *page)
{
	struct conn *w = tx_conn(tx);
	struct binder b = {0};
	if (page->n == 0)
		return ERR_OK;
	enum err e = stmt_get(w, S_DELIVERY_CURSOR_MOVE, &b.st);
	if (e != ERR_OK)
		return e;
	bind_int(&b, 1, from);
	bind_int(&b, 2, page->events[page->n - 1].seq);
	e = run_bound(w, S_DELIVERY_CURSOR_MOVE, &b);
	if (e == ERR_OK && sqlite3_changes(w->db) == 0)
		return ERR_CONFLICT;
	for (size_t i = 0; i < page->n && e == ERR_OK; i++) {
		const struct event *ev = &page->events[i];
		b = (struct binder){0};
		e = stmt_get(w, S_DELIVERY_ADD, &b.st);
		if (e != ERR_OK)
			break;
		bind_int(&b, 1, ev->seq);
		bind_order_key(&b, 2, ev->call_id);
		bind_int(&b, 3, ev->at);
		e = run_bound(w, S_DELIVERY_ADD, &b);
	}
	return e;
}

/* The rows of b's statement as deliveries into ret (at most max), each marked leased. */
static enum err delivery_rows(struct conn *w, enum stmt_id id, struct binder *b, bool leased,
			      size_t max, struct delivery *ret, size_t *ret_n)
{
	size_t n = 0;
	enum err e = ERR_OK;
	int rc;
	while ((rc = step_bound(b)) == SQLITE_ROW) {
		if (n == max) {
			e = checked(ERR_INTERNAL, id);
			break;
		}
		struct db_value v[4];
		row_values(b->st, 0, 4, v);
		ret[n] = (struct delivery){.leased = leased};
		e = checked(rows_read_delivery(v, &ret[n]), id);
		if (e != ERR_OK)
			break;
		n++;
	}
	if (e == ERR_OK && rc != SQLITE_DONE)
		e = db_fail(w->db, rc, stmts[id].name);
	stmt_done(b->st);
	if (e == ERR_OK)
		*ret_n = n;
	return e;
}

static enum err sq_tx_delivery_heads(struct storage_tx *tx, const char *url, int64_t now,
				     int64_t lease_until, size_t max, struct delivery *ret,
				     size_t *ret_n)
{
	struct conn *w = tx_conn(tx);
	struct binder b = {0};
	enum err e = stmt_get(w, S_DELIVERY_HEADS, &b.st);
	if (e != ERR_OK)
		return e;
	bind_text(&b, 1, url);
	bind_int(&b, 2, now);
	bind_int(&b, 3, lease_until);
	bind_int(&b, 4, (int64_t)max);
	return delivery_rows(w, S_DELIVERY_HEADS, &b, true, max, ret, ret_n);
}

static enum err sq_tx_delivery_behind(struct storage_tx *tx, const char *order_key, int64_t seq,
				      size_t max, struct delivery *ret, size_t *ret_n)
{
	struct conn *w = tx_conn(tx);
	struct binder b = {0};
	enum err e = stmt_get(w, S_DELIVERY_BEHIND, &b.st);
	if (e != ERR_OK)
		return e;
	bind_order_key(&b, 1, order_key);
	bind_int(&b, 2, seq);
	bind_int(&b, 3, (int64_t)max);
	return delivery_rows(w, S_DELIVERY_BEHIND, &b, false, max, ret, ret_n);
}

static enum err sq_tx_delivery_next_due(struct storage_tx *tx, const char *url, int64_t *ret)
{
	struct conn *w = tx_conn(tx);
	struct binder b = {0};
	enum err e = stmt_get(w, S_DELIVERY_NEXT_DUE, &b.st);
	if (e != ERR_OK)
		return e;
	bind_text(&b, 1, url);
	int rc = step_bound(&b);
	if (rc == SQLITE_ROW)
		*ret = sqlite3_column_int64(b.st, 0);
	else
		e = db_fail(w->db, rc == SQLITE_DONE ? SQLITE_INTERNAL : rc,
			    stmts[S_DELIVERY_NEXT_DUE].name);
	stmt_done(b.st);
	return e;
}

static enum err sq_tx_delivery_settle(struct storage_tx *tx, const struct delivery *d,
				      enum delivery_state state, int64_t next_at,
				      const char *url, const char *error, int64_t now)
{
	struct conn *w = tx_conn(tx);
	struct binder b = {0};
	enum stmt_id id = state == DELIVERY_DELIVERED ? S_DELIVERY_DELETE : S_DELIVERY_SETTLE;
	enum err e = stmt_get(w, id, &b.st);
	if (e != ERR_OK)
		return e;
	bind_int(&b, 1, d->seq);
	if (id == S_DELIVERY_SETTLE) {
		bind_int(&b, 2, state);
		bind_int(&b, 3, d->attempts);
		bind_time(&b, 4, d->first_attempt_at);
		bind_int(&b, 5, next_at);
		bind_text(&b, 6, state == DELIVERY_STOPPED ? url : NULL);
		bind_text(&b, 7, error);
		bind_time(&b, 8, error ? now : 0);
	}
	return run_bound(w, id, &b);
}

static enum err sq_tx_delivery_advance(struct storage_tx *tx, const char *order_key)
{
	struct conn *w = tx_conn(tx);
	struct binder b = {0};
	enum err e = stmt_get(w, S_DELIVERY_ADVANCE, &b.st);
	if (e != ERR_OK)
		return e;
	bind_order_key(&b, 1, order_key);
	return run_bound(w, S_DELIVERY_ADVANCE, &b);
}

static enum err sq_delivery_status(struct storage *st, const char *url,
				   struct delivery_status *ret)
{
	struct sqlite_storage *s = to_sqlite(st);
	struct binder b = {0};
	struct conn *cn = NULL;
	enum err e = reader_begin(s, &cn, false);
	if (e == ERR_OK)
		e = stmt_get(cn, S_DELIVERY_STATUS, &b.st);
	if (e != ERR_OK)
		goto out;
	bind_text(&b, 1, url);
	int rc = step_bound(&b);
	if (rc != SQLITE_ROW) {
		e = db_fail(cn->db, rc == SQLITE_DONE ? SQLITE_INTERNAL : rc,
			    stmts[S_DELIVERY_STATUS].name);
		goto out;
	}
	struct delivery_status ds = {0};
	struct db_value v[7];
	row_values(b.st, 0, 7, v);
	e = checked(rows_read_delivery_status(v, &ds), S_DELIVERY_STATUS);
	if (e == ERR_OK)
		*ret = ds;
out:
	read_done(s, cn, b.st);
	return e;
}

static const struct storage_impl sqlite_impl = {
	.name = "sqlite",
	.close = sq_close,
	.migrate = sq_migrate,
	.schema_version = sq_schema_version,
	.ping = sq_ping,
	.transact = sq_transact,
	.tx_call_get = sq_tx_call_get,
	.tx_call_get_due = sq_tx_call_get_due,
	.tx_call_insert = sq_tx_call_insert,
	.tx_call_update = sq_tx_call_update,
	.tx_event_append = sq_tx_event_append,
	.tx_idempotency_claim = sq_tx_idempotency_claim,
	.tx_webhook_insert = sq_tx_webhook_insert,
	.tx_presence_get = sq_tx_presence_get,
	.tx_presence_set = sq_tx_presence_set,
	.tx_purge_calls = sq_tx_purge_calls,
	.tx_purge_unowned = sq_tx_purge_unowned,
	.presence_get = sq_presence_get,
	.call_access = sq_call_access,
	.call_get = sq_call_get,
	.call_view = sq_call_view,
	.calls_list = sq_calls_list,
	.call_audit = sq_call_audit,
	.call_stats = sq_call_stats,
	.events_after = sq_events_after,
	.events_get = sq_events_get,
	.calls_due = sq_calls_due,
	.user_call_ids = sq_user_call_ids,
	.tx_call_audit = sq_tx_call_audit,
	.tx_audit_rewrite = sq_tx_audit_rewrite,
	.tx_call_rename_user = sq_tx_call_rename_user,
	.tx_user_forget = sq_tx_user_forget,
	.scrub = sq_scrub,
	.delivery_cursor = sq_delivery_cursor,
	.tx_delivery_enqueue = sq_tx_delivery_enqueue,
	.tx_delivery_heads = sq_tx_delivery_heads,
	.tx_delivery_behind = sq_tx_delivery_behind,
	.tx_delivery_next_due = sq_tx_delivery_next_due,
	.tx_delivery_settle = sq_tx_delivery_settle,
	.tx_delivery_advance = sq_tx_delivery_advance,
	.delivery_status = sq_delivery_status,
};

enum err sqlite_storage_open(const char *path, const struct storage_options *opts,
			     struct storage **ret_st)
{
	struct sqlite_storage *s = NULL;
	enum err e = ERR_OK;

	/* Each connection of ":memory:" would be a database of its own. */
	if (!path || !*path || strcmp(path, ":memory:") == 0)
		return ERR_INVALID;
	if (!sqlite3_threadsafe()) {
		log_write(LOG_ERROR, "msg=\"sqlite library built without thread support\"");
		return ERR_INTERNAL;
	}
	s = calloc(1, sizeof *s);
	if (!s)
		return ERR_NOMEM;
	s->base.impl = &sqlite_impl;
	s->tx.st = &s->base;
	s->wal_fd = -1;
	atomic_init(&s->failed, false);
	atomic_init(&s->syncing, false);
	atomic_init(&s->feed_durable, INT64_MAX);
	atomic_init(&s->audit_behind, false); /* set by sq_migrate: no audit tables before it */
	s->path = strdup(path);
	size_t path_len = strlen(path);
	s->wal_path = s->path ? malloc(path_len + sizeof "-wal") : NULL;
	if (s->wal_path) {
		memcpy(s->wal_path, path, path_len);
		memcpy(s->wal_path + path_len, "-wal", sizeof "-wal");
	}
	s->sync_ready = s->wal_path && sync_init(s);
	s->readers_ready = s->sync_ready && pool_init(&s->readers, opts->pool_size) == ERR_OK;
	if (!s->readers_ready) {
		e = ERR_NOMEM;
		goto out;
	}
	e = writer_open(&s->writer, path);
	struct stat db_stat;
	if (e == ERR_OK && stat(path, &db_stat) != 0)
		e = ERR_UNAVAILABLE;
	if (e == ERR_OK)
		s->db_id = (struct file_id){db_stat.st_dev, db_stat.st_ino};
	/* What a process killed before us committed may still be in the page cache only; the
	 * readers are about to show it, so it is made durable first. */
	if (e == ERR_OK && (!wal_open(s, true) || (s->wal_fd >= 0 && !wal_sync(s))))
		e = ERR_UNAVAILABLE;
	if (e == ERR_OK)
		e = checkpointer_start(s);
	if (e != ERR_OK)
		goto out;
	if (pthread_create(&s->syncer, NULL, syncer_main, s) != 0) {
		e = ERR_NOMEM;
		goto out;
	}
	s->syncer_running = true;
	if (pthread_create(&s->thread, NULL, writer_main, s) != 0) {
		e = ERR_NOMEM;
		goto out;
	}
	s->thread_running = true;
out:
	if (e != ERR_OK) {
		sqlite_free(s);
		return e;
	}
	*ret_st = &s->base;
	return ERR_OK;
}

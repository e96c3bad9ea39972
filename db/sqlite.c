/* The SQLite backend. One writer thread owns the only write connection and commits whatever
 * transactions are queued in one group (one fsync per batch, each caller's function in its own
 * savepoint); reads use a pool of query_only connections. SQL is constant, prepared once. */
#include <limits.h>
#include <pthread.h>
#include <semaphore.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "log.h"
#include "storage_impl.h"

#define BATCH_MAX 512 /* bounds a batch's savepoints and the latency of its first job */
/* WAL size, in pages, past which the checkpointer is woken. SQLite's own automatic
 * checkpoint would run in the writer at 1000 pages, copying the WAL into the database and
 * fsyncing it while every waiting request waits too. */
#define CHECKPOINT_PAGES 1000
#define CHECKPOINT_IDLE_S 1 /* also checkpoint what is there after this long */
/* Under sustained writes the checkpointer never reaches the WAL's end, and the WAL can only
 * start over once a checkpoint has: past this size the writer finishes the copy itself,
 * between two batches, so the WAL (and recovery after a crash) stays bounded. */
#define WAL_LIMIT_PAGES 16000
#define WAL_FILE_LIMIT "67108864" /* bytes a reset WAL file is truncated to */
#define BUSY_TIMEOUT_MS 5000
#define LIST_LIMIT_MAX 500
#define EVENTS_GROW 64 /* first allocation of an events page; a large limit need not be used */

/* ---- statements ---- */

#define CALL_COLS                                                                                  \
	"c.id, c.room, c.kind, c.status, c.outcome, c.caller, c.chat_id, c.metadata, "             \
	"c.created_at, c.answered_at, c.ended_at, c.end_cause, c.room_end_reason, "                \
	"c.room_finished_at, c.ring_timeout_s, c.ring_deadline, c.join_deadline, "                 \
	"c.next_deadline, c.version"

/* Column of CALL_COLS, and (plus one) parameter of the call insert and update. */
enum call_col {
	CC_ID,
	CC_ROOM,
	CC_KIND,
	CC_STATUS,
	CC_OUTCOME,
	CC_CALLER,
	CC_CHAT_ID,
	CC_METADATA,
	CC_CREATED_AT,
	CC_ANSWERED_AT,
	CC_ENDED_AT,
	CC_END_CAUSE,
	CC_ROOM_END_REASON,
	CC_ROOM_FINISHED_AT,
	CC_RING_TIMEOUT_S,
	CC_RING_DEADLINE,
	CC_JOIN_DEADLINE,
	CC_NEXT_DEADLINE,
	CC_VERSION,
};

/* The list statements share their parameters: ?1/?2 the exclusive upper keyset bound
 * (created_at, id), ?3 since, ?4 status, ?5 outcome, ?6 kind, ?7 chat_id, ?8 the row limit,
 * ?9 user. Each driving statement puts its own filter first so the planner keeps its index;
 * a NULL parameter switches the other filters off. */
#define F_STATUS "(?4 IS NULL OR c.status = ?4)"
#define F_OUTCOME "(?5 IS NULL OR c.outcome = ?5)"
#define F_KIND "(?6 IS NULL OR c.kind = ?6)"
#define F_CHAT "(?7 IS NULL OR c.chat_id = ?7)"
#define VIEW_COLS "c.id, c.created_at, c.next_deadline, c.view"
#define LIST_CALLS(where)                                                                          \
	"SELECT " VIEW_COLS " FROM calls c WHERE " where                                           \
	" AND (c.created_at, c.id) < (?1, ?2) AND c.created_at >= ?3"                              \
	" ORDER BY c.created_at DESC, c.id DESC LIMIT ?8"

#define MEMBER_COLS                                                                                \
	"user_id, role, invite, name, in_room, left_call, responded_at, token_minted_at, "         \
	"first_joined_at, last_left_at"
#define PARTICIPANT_COLS                                                                           \
	"sid, user_id, joined_at, left_at, disconnect_reason, aborted, left_inferred, observer, "  \
	"screen_share_at, screen_share_ended_at"
#define EVENT_COLS "id, type, at, call_id, call_version, data"

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
	S_VIEW_BY_ID,
	S_CALL_INSERT,
	S_CALL_UPDATE,
	S_MEMBERS,
	S_MEMBER_UPSERT,
	S_PARTICIPANTS,
	S_PARTICIPANT_UPSERT,
	S_EVENT_INSERT,
	S_EVENTS_AFTER,
	S_IDEM_GET,
	S_IDEM_PUT,
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
	[S_MEMBERS] = {"members_get", "SELECT " MEMBER_COLS
				      " FROM call_members WHERE call_id = ?1 ORDER BY position"},
	[S_MEMBER_UPSERT] = {"member_upsert",
			     "INSERT INTO call_members (call_id, position, created_at, " MEMBER_COLS
			     ", call_rid) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12,"
			     " ?13, (SELECT rid FROM calls WHERE id = ?1))"
			     " ON CONFLICT (call_id, user_id) DO UPDATE SET"
			     " position = excluded.position, created_at = excluded.created_at,"
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
				  " user_id = excluded.user_id, joined_at = excluded.joined_at,"
				  " left_at = excluded.left_at,"
				  " disconnect_reason = excluded.disconnect_reason,"
				  " aborted = excluded.aborted,"
				  " left_inferred = excluded.left_inferred,"
				  " observer = excluded.observer,"
				  " screen_share_at = excluded.screen_share_at,"
				  " screen_share_ended_at = excluded.screen_share_ended_at"},
	[S_EVENT_INSERT] = {"event_append", "INSERT INTO events (" EVENT_COLS
					    ") VALUES (?1, ?2, ?3, ?4, ?5, ?6)"},
	[S_EVENTS_AFTER] = {"events_after", "SELECT seq, " EVENT_COLS
					    " FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2"},
	[S_IDEM_GET] = {"idempotency_get",
			"SELECT call_id, request_hash, created_at FROM idempotency_keys"
			" WHERE caller = ?1 AND key = ?2"},
	[S_IDEM_PUT] = {"idempotency_put",
			"INSERT OR REPLACE INTO idempotency_keys"
			" (caller, key, call_id, request_hash, created_at)"
			" VALUES (?1, ?2, ?3, ?4, ?5)"},
	[S_DUE] = {"calls_due", "SELECT id, next_deadline FROM calls WHERE next_deadline <= ?1"
				" AND (next_deadline, id) > (?2, ?3)"
				" ORDER BY next_deadline, id LIMIT ?4"},
	[S_WEBHOOK_INSERT] = {"webhook_insert",
			      "INSERT INTO webhooks (id, event, room, call_id, created_at,"
			      " received_at, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"},
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
};

/* ---- state ---- */

struct conn {
	sqlite3 *db;
	sqlite3_stmt *stmt[S_COUNT]; /* prepared on first use */
	struct conn *next_free;      /* reader pool */
};

/* A queued storage_transact() call, on the caller's stack. done is posted once result is
 * final: one semaphore per job wakes exactly its caller, and the wake-ups of a whole batch do
 * not all contend for the queue lock as a condition variable's would. */
struct job {
	storage_tx_fn fn;
	void *arg;
	enum err result;
	sem_t done;
	struct job *next;
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
	pthread_mutex_t pool_mu; /* free_readers */
	struct conn *free_readers;
	/* The checkpointer copies the WAL into the database on its own connection, beside the
	 * writer (a passive checkpoint takes no lock the writer needs). */
	sqlite3 *checkpoint_db;
	bool checkpointer_running;
	pthread_t checkpointer;
	pthread_mutex_t checkpoint_mu; /* checkpoint_due, checkpoint_stop */
	pthread_cond_t checkpoint_cond;
	bool checkpoint_due, checkpoint_stop;
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

/* The one place driver text is logged. A conflict is a client's duplicate, not a fault. */
static enum err db_fail(sqlite3 *db, int rc, const char *op)
{
	enum err e = map_rc(rc);
	/* rc may be ours (a refused binding), not the connection's last error. */
	const char *msg =
		sqlite3_extended_errcode(db) == rc ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
	char text[256];
	log_write(e == ERR_CONFLICT ? LOG_DEBUG : LOG_ERROR,
		  "msg=\"sqlite statement failed\" op=%s sqlite_rc=%d err=%s", op, rc,
		  log_value(text, sizeof text, msg));
	return e;
}

/* A stored value that model.h cannot hold: the file was written by something else. */
static enum err corrupt(enum stmt_id id)
{
	log_write(LOG_ERROR, "msg=\"unexpected value in database\" op=%s", stmts[id].name);
	return ERR_INTERNAL;
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

/* An enum's name; none is true for the value that means "not set" (stored as NULL). */
static void bind_name(struct binder *b, int i, const char *name, bool none)
{
	if (b->rc == SQLITE_OK && !none && !name)
		b->rc = SQLITE_MISUSE; /* out-of-range enum in the struct: a caller bug */
	bind_text(b, i, none ? NULL : name);
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

/* Reading a row with a sticky "the value fits the model" flag. NULL reads as "" and 0. */
struct row {
	sqlite3_stmt *st;
	bool ok;
};

static void col_text(struct row *r, int i, char *buf, size_t cap)
{
	const unsigned char *s = sqlite3_column_text(r->st, i);
	size_t n = s ? (size_t)sqlite3_column_bytes(r->st, i) : 0;
	if (n >= cap || (n && memchr(s, 0, n))) {
		r->ok = false;
		n = 0;
	}
	if (n)
		memcpy(buf, s, n);
	buf[n] = 0;
}

/* parse() of the stored name; a NULL reads as if_null, or is refused when if_null < 0. */
static int col_enum(struct row *r, int i, int (*parse)(const char *), int if_null)
{
	const char *s = (const char *)sqlite3_column_text(r->st, i);
	int v = s ? parse(s) : if_null;
	if (v < 0)
		r->ok = false;
	return v < 0 ? 0 : v;
}

static int64_t col_int(struct row *r, int i)
{
	return sqlite3_column_int64(r->st, i);
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

/* NOMUTEX: SQLite's per-connection mutex is redundant, no connection is shared at once. */
static enum err conn_open(struct conn *cn, const char *path, int flags, const char *pragmas)
{
	int rc = sqlite3_open_v2(path, &cn->db, flags | SQLITE_OPEN_NOMUTEX, NULL);
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

/* WAL lets readers run beside the writer; synchronous=FULL fsyncs the WAL at each commit, so
 * storage_transact() returns only once its batch is durable. */
static enum err writer_open(struct conn *w, const char *path)
{
	enum err e = conn_open(w, path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
			       "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;"
			       " PRAGMA temp_store = MEMORY; PRAGMA trusted_schema = OFF;"
			       " PRAGMA cache_size = -16384;"
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
	enum err e = conn_open(cn, path, SQLITE_OPEN_READWRITE,
			       "PRAGMA query_only = ON; PRAGMA trusted_schema = OFF;"
			       " PRAGMA cache_size = -1024; PRAGMA mmap_size = 4294967296;");
	if (e != ERR_OK) {
		free(cn);
		return e;
	}
	*ret_cn = cn;
	return ERR_OK;
}

/* A pooled reader. With snapshot, inside a read transaction, so that the statements of one
 * read see one state; a single statement is atomic on its own and skips BEGIN and ROLLBACK,
 * which on the token path cost as much as the query. */
static enum err reader_begin(struct sqlite_storage *s, struct conn **ret_cn, bool snapshot)
{
	pthread_mutex_lock(&s->pool_mu);
	struct conn *cn = s->free_readers;
	if (cn)
		s->free_readers = cn->next_free;
	pthread_mutex_unlock(&s->pool_mu);

	enum err e = cn ? ERR_OK : reader_open(s->path, &cn);
	if (e == ERR_OK && snapshot)
		e = exec_stmt(cn, S_BEGIN);
	if (e == ERR_OK) {
		*ret_cn = cn;
		return ERR_OK;
	}
	if (cn) {
		conn_close(cn);
		free(cn);
	}
	return e;
}

/* Ends the read (nothing to commit) and pools the reader; one stuck in a transaction would
 * fail its next BEGIN, so it is closed instead. */
static void reader_end(struct sqlite_storage *s, struct conn *cn)
{
	if (!sqlite3_get_autocommit(cn->db) && exec_stmt(cn, S_ROLLBACK) != ERR_OK) {
		conn_close(cn);
		free(cn);
		return;
	}
	pthread_mutex_lock(&s->pool_mu);
	cn->next_free = s->free_readers;
	s->free_readers = cn;
	pthread_mutex_unlock(&s->pool_mu);
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

static void bind_call(struct binder *b, const struct call *c)
{
	bind_text(b, CC_ID + 1, c->id);
	bind_text(b, CC_ROOM + 1, c->room);
	bind_name(b, CC_KIND + 1, call_kind_name(c->kind), false);
	bind_name(b, CC_STATUS + 1, call_status_name(c->status), false);
	bind_name(b, CC_OUTCOME + 1, call_outcome_name(c->outcome), c->outcome == OUTCOME_NONE);
	bind_text(b, CC_CALLER + 1, c->caller);
	bind_text(b, CC_CHAT_ID + 1, c->chat_id);
	bind_text(b, CC_METADATA + 1, c->metadata);
	bind_int(b, CC_CREATED_AT + 1, c->created_at);
	bind_time(b, CC_ANSWERED_AT + 1, c->answered_at);
	bind_time(b, CC_ENDED_AT + 1, c->ended_at);
	bind_name(b, CC_END_CAUSE + 1, end_cause_name(c->end_cause), c->end_cause == CAUSE_NONE);
	bind_text(b, CC_ROOM_END_REASON + 1, c->room_end_reason);
	bind_time(b, CC_ROOM_FINISHED_AT + 1, c->room_finished_at);
	bind_int(b, CC_RING_TIMEOUT_S + 1, c->ring_timeout_s);
	bind_time(b, CC_RING_DEADLINE + 1, c->ring_deadline);
	bind_time(b, CC_JOIN_DEADLINE + 1, c->join_deadline);
	bind_time(b, CC_NEXT_DEADLINE + 1, c->next_deadline);
	bind_int(b, CC_VERSION + 1, c->version);
}

/* Fills the scalar fields of c (from call_new(): metadata is replaced). */
static enum err read_call_row(struct row *r, struct call *c)
{
	col_text(r, CC_ID, c->id, sizeof c->id);
	col_text(r, CC_ROOM, c->room, sizeof c->room);
	c->kind = (enum call_kind)col_enum(r, CC_KIND, call_kind_parse, -1);
	c->status = (enum call_status)col_enum(r, CC_STATUS, call_status_parse, -1);
	c->outcome = (enum call_outcome)col_enum(r, CC_OUTCOME, call_outcome_parse, OUTCOME_NONE);
	col_text(r, CC_CALLER, c->caller, sizeof c->caller);
	col_text(r, CC_CHAT_ID, c->chat_id, sizeof c->chat_id);
	c->created_at = col_int(r, CC_CREATED_AT);
	c->answered_at = col_int(r, CC_ANSWERED_AT);
	c->ended_at = col_int(r, CC_ENDED_AT);
	c->end_cause = (enum end_cause)col_enum(r, CC_END_CAUSE, end_cause_parse, CAUSE_NONE);
	col_text(r, CC_ROOM_END_REASON, c->room_end_reason, sizeof c->room_end_reason);
	c->room_finished_at = col_int(r, CC_ROOM_FINISHED_AT);
	c->ring_timeout_s = (int)col_int(r, CC_RING_TIMEOUT_S);
	c->ring_deadline = col_int(r, CC_RING_DEADLINE);
	c->join_deadline = col_int(r, CC_JOIN_DEADLINE);
	c->next_deadline = col_int(r, CC_NEXT_DEADLINE);
	c->version = col_int(r, CC_VERSION);

	const char *metadata = (const char *)sqlite3_column_text(r->st, CC_METADATA);
	if (!metadata)
		r->ok = false;
	else if (!call_set_metadata(c, metadata))
		return ERR_NOMEM;
	return ERR_OK;
}

static void bind_member(struct binder *b, const struct call *c, size_t position)
{
	const struct member *m = &c->members[position];
	bind_text(b, 1, c->id);
	bind_int(b, 2, (int64_t)position);
	bind_int(b, 3, c->created_at);
	bind_text(b, 4, m->user);
	bind_name(b, 5, member_role_name(m->role), false);
	bind_name(b, 6, invite_state_name(m->invite), false);
	bind_text(b, 7, m->name);
	bind_int(b, 8, m->in_room);
	bind_int(b, 9, m->left);
	bind_time(b, 10, m->responded_at);
	bind_time(b, 11, m->token_minted_at);
	bind_time(b, 12, m->first_joined_at);
	bind_time(b, 13, m->last_left_at);
}

static void read_member(struct row *r, struct member *m)
{
	col_text(r, 0, m->user, sizeof m->user);
	m->role = (enum member_role)col_enum(r, 1, member_role_parse, -1);
	m->invite = (enum invite_state)col_enum(r, 2, invite_state_parse, -1);
	col_text(r, 3, m->name, sizeof m->name);
	m->in_room = col_int(r, 4) != 0;
	m->left = col_int(r, 5) != 0;
	m->responded_at = col_int(r, 6);
	m->token_minted_at = col_int(r, 7);
	m->first_joined_at = col_int(r, 8);
	m->last_left_at = col_int(r, 9);
}

static void bind_participant(struct binder *b, const char *call_id, const struct participant *p)
{
	bind_text(b, 1, call_id);
	bind_text(b, 2, p->sid);
	bind_text(b, 3, p->user);
	bind_time(b, 4, p->joined_at);
	bind_time(b, 5, p->left_at);
	bind_text(b, 6, p->disconnect_reason);
	bind_int(b, 7, p->aborted);
	bind_int(b, 8, p->left_inferred);
	bind_int(b, 9, p->observer);
	bind_time(b, 10, p->screen_share_at);
	bind_time(b, 11, p->screen_share_ended_at);
}

static void read_participant(struct row *r, struct participant *p)
{
	col_text(r, 0, p->sid, sizeof p->sid);
	col_text(r, 1, p->user, sizeof p->user);
	p->joined_at = col_int(r, 2);
	p->left_at = col_int(r, 3);
	col_text(r, 4, p->disconnect_reason, sizeof p->disconnect_reason);
	p->aborted = col_int(r, 5) != 0;
	p->left_inferred = col_int(r, 6) != 0;
	p->observer = col_int(r, 7) != 0;
	p->screen_share_at = col_int(r, 8);
	p->screen_share_ended_at = col_int(r, 9);
}

/* The members, by position, or the participant sessions of c (by c->id), appended to c. */
static enum err load_children(struct conn *cn, enum stmt_id id, struct call *c)
{
	struct binder b = {0};
	enum err e = stmt_get(cn, id, &b.st);
	if (e != ERR_OK)
		return e;
	bind_text(&b, 1, c->id);
	struct row r = {b.st, true};
	int rc = SQLITE_DONE;
	while (e == ERR_OK && (rc = step_bound(&b)) == SQLITE_ROW) {
		if (id == S_PARTICIPANTS) {
			struct participant p = {0};
			read_participant(&r, &p);
			if (!call_add_participant(c, &p))
				e = ERR_NOMEM;
		} else if (c->n_members < CALL_MAX_MEMBERS) {
			read_member(&r, &c->members[c->n_members++]);
		} else {
			r.ok = false;
		}
		if (e == ERR_OK && !r.ok)
			e = corrupt(id);
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
	struct row r = {st, true};
	enum err e = read_call_row(&r, c);
	if (e == ERR_OK && !r.ok)
		e = corrupt(id);
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

/* id is the statement that selects the row by its key. */
static enum err load_call(struct conn *cn, enum stmt_id id, const char *key,
			  struct call **ret_call)
{
	struct binder b = {0};
	enum err e = stmt_get(cn, id, &b.st);
	if (e != ERR_OK)
		return e;
	bind_text(&b, 1, key);
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
	if (id == S_CALL_INSERT || id == S_CALL_UPDATE) {
		bind_call(&b, c);
		bind_text(&b, VIEW_PARAM, view);
	} else if (id == S_MEMBER_UPSERT)
		bind_member(&b, c, i);
	else
		bind_participant(&b, c->id, &c->participants[i]);
	e = run_bound(w, id, &b);
	if (e == ERR_OK && id == S_CALL_UPDATE && sqlite3_changes(w->db) == 0)
		e = ERR_NOT_FOUND;
	return e;
}

/* The call row (id: S_CALL_INSERT or S_CALL_UPDATE), then its members and sessions. The
 * expected failures, ERR_CONFLICT and ERR_NOT_FOUND, come from the call row, before anything
 * is written, so a function may carry on after them; any other error leaves a part written
 * and the function must fail (its savepoint then undoes it). No savepoint per call here: each
 * would copy the pages it touches again, which a function writing many calls pays per call. */
/* Whether member i, or the session of participants[i], is as loaded (then not written). */
static bool member_unchanged(const struct call *c, const struct call *loaded, size_t i)
{
	return loaded && i < loaded->n_members &&
	       memcmp(&c->members[i], &loaded->members[i], sizeof c->members[i]) == 0;
}

static bool session_unchanged(const struct call *c, const struct call *loaded, size_t i)
{
	const struct participant *p = &c->participants[i];
	for (size_t k = 0; loaded && k < loaded->n_participants; k++)
		if (strcmp(loaded->participants[k].sid, p->sid) == 0)
			return memcmp(p, &loaded->participants[k], sizeof *p) == 0;
	return false;
}

static enum err write_call(struct conn *w, enum stmt_id id, const struct call *c,
			   const struct call *loaded, const char *view)
{
	if (c->n_members > CALL_MAX_MEMBERS || (c->n_participants && !c->participants) ||
	    !view || !*view)
		return ERR_INVALID;
	enum err e = write_row(w, id, c, view, 0);
	for (size_t i = 0; e == ERR_OK && i < c->n_members; i++)
		if (!member_unchanged(c, loaded, i))
			e = write_row(w, S_MEMBER_UPSERT, c, NULL, i);
	for (size_t i = 0; e == ERR_OK && i < c->n_participants; i++)
		if (!session_unchanged(c, loaded, i))
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
	enum err e = j->fn(&s->tx, j->arg);
	if (e != ERR_OK && exec_stmt(w, S_JOB_ROLLBACK_TO) != ERR_OK)
		*intact = false;
	if (exec_stmt(w, S_JOB_RELEASE) != ERR_OK)
		*intact = false;
	/* Some errors (IOERR, FULL, NOMEM) make SQLite roll back the whole transaction. */
	if (sqlite3_get_autocommit(w->db))
		*intact = false;
	return e;
}

/* One transaction, one fsync, for the whole batch. Each job's result is its function's; if
 * the batch cannot commit, the jobs that had succeeded get ERR_UNAVAILABLE. Jobs start with
 * ERR_UNAVAILABLE, which is what the ones never run keep. */
static void run_batch(struct sqlite_storage *s, struct job *batch)
{
	struct conn *w = &s->writer;
	bool intact = exec_stmt(w, S_BEGIN_IMMEDIATE) == ERR_OK;
	for (struct job *j = batch; j && intact; j = j->next)
		j->result = run_job(s, j, &intact);
	if (intact && exec_stmt(w, S_COMMIT) == ERR_OK)
		return;
	if (!sqlite3_get_autocommit(w->db))
		exec_stmt(w, S_ROLLBACK);
	for (struct job *j = batch; j; j = j->next)
		if (j->result == ERR_OK)
			j->result = ERR_UNAVAILABLE;
}

/* sqlite3_wal_hook: runs in the writer after each commit, with the WAL's size in pages. */
static int on_wal_commit(void *arg, sqlite3 *db, const char *name, int pages)
{
	(void)name;
	struct sqlite_storage *s = arg;
	if (pages >= WAL_LIMIT_PAGES) {
		int rc = sqlite3_wal_checkpoint_v2(db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
		if (rc != SQLITE_OK && rc != SQLITE_BUSY)
			db_fail(db, rc, "wal_checkpoint_writer");
	} else if (pages >= CHECKPOINT_PAGES) {
		pthread_mutex_lock(&s->checkpoint_mu);
		s->checkpoint_due = true;
		pthread_cond_signal(&s->checkpoint_cond);
		pthread_mutex_unlock(&s->checkpoint_mu);
	}
	return SQLITE_OK;
}

static void *checkpointer_main(void *arg)
{
	struct sqlite_storage *s = arg;
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
		int rc = sqlite3_wal_checkpoint_v2(s->checkpoint_db, NULL, SQLITE_CHECKPOINT_PASSIVE,
						   NULL, NULL);
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
	enum err e = conn_open(&cn, s->path, SQLITE_OPEN_READWRITE,
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

static void *writer_main(void *arg)
{
	struct sqlite_storage *s = arg;
	pthread_mutex_lock(&s->queue_mu);
	for (;;) {
		while (!s->head && !s->stopping)
			pthread_cond_wait(&s->queue_cond, &s->queue_mu);
		struct job *batch = s->head;
		if (!batch)
			break; /* stopping, and the queue is drained */
		struct job *last = batch;
		for (size_t n = 1; last->next && n < BATCH_MAX; n++)
			last = last->next;
		s->head = last->next;
		if (!s->head)
			s->tail = NULL;
		last->next = NULL;
		pthread_mutex_unlock(&s->queue_mu);

		run_batch(s, batch);
		for (struct job *j = batch, *next; j; j = next) {
			next = j->next; /* j is its caller's again once posted */
			sem_post(&j->done);
		}
		pthread_mutex_lock(&s->queue_mu);
	}
	pthread_mutex_unlock(&s->queue_mu);
	return NULL;
}

static enum err sq_transact(struct storage *st, storage_tx_fn fn, void *arg)
{
	struct sqlite_storage *s = to_sqlite(st);
	struct job j = {.fn = fn, .arg = arg, .result = ERR_UNAVAILABLE};
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
		return corrupt(S_VERSION_MAX);
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
	*ret_applied = n;
	return ERR_OK;
}

/* ---- transaction functions ---- */

static enum err sq_tx_call_get(struct storage_tx *tx, const char *id, struct call **ret_call)
{
	return load_call(tx_conn(tx), S_CALL_BY_ID, id, ret_call);
}

static enum err sq_tx_call_insert(struct storage_tx *tx, const struct call *c, const char *view)
{
	return write_call(tx_conn(tx), S_CALL_INSERT, c, NULL, view);
}

static enum err sq_tx_call_update(struct storage_tx *tx, const struct call *c,
				  const struct call *loaded, const char *view)
{
	return write_call(tx_conn(tx), S_CALL_UPDATE, c, loaded, view);
}

static enum err sq_tx_event_append(struct storage_tx *tx, struct event *ev)
{
	struct conn *w = tx_conn(tx);
	struct binder b = {0};
	enum err e = stmt_get(w, S_EVENT_INSERT, &b.st);
	if (e != ERR_OK)
		return e;
	bind_text(&b, 1, ev->id);
	bind_text(&b, 2, ev->type);
	bind_int(&b, 3, ev->at);
	bind_text(&b, 4, ev->call_id);
	bind_time(&b, 5, ev->call_version);
	bind_text(&b, 6, ev->data ? ev->data : "{}");
	e = run_bound(w, S_EVENT_INSERT, &b);
	if (e == ERR_OK)
		ev->seq = sqlite3_last_insert_rowid(w->db);
	return e;
}

static enum err sq_tx_idempotency_get(struct storage_tx *tx, const char *caller, const char *key,
				      struct idempotency *ret)
{
	struct conn *w = tx_conn(tx);
	struct binder b = {0};
	enum err e = stmt_get(w, S_IDEM_GET, &b.st);
	if (e != ERR_OK)
		return e;
	bind_text(&b, 1, caller);
	bind_text(&b, 2, key);
	int rc = step_bound(&b);
	if (rc == SQLITE_ROW) {
		struct idempotency rec = {0};
		struct row r = {b.st, true};
		col_text(&r, 0, rec.call_id, sizeof rec.call_id);
		const void *hash = sqlite3_column_blob(b.st, 1);
		if (!hash || sqlite3_column_bytes(b.st, 1) != sizeof rec.request_hash)
			r.ok = false;
		else
			memcpy(rec.request_hash, hash, sizeof rec.request_hash);
		rec.created_at = col_int(&r, 2);
		e = r.ok ? ERR_OK : corrupt(S_IDEM_GET);
		if (e == ERR_OK)
			*ret = rec;
	} else {
		e = rc == SQLITE_DONE ? ERR_NOT_FOUND : db_fail(w->db, rc, stmts[S_IDEM_GET].name);
	}
	stmt_done(b.st);
	return e;
}

static enum err sq_tx_idempotency_put(struct storage_tx *tx, const char *caller, const char *key,
				      const struct idempotency *rec)
{
	struct conn *w = tx_conn(tx);
	struct binder b = {0};
	enum err e = stmt_get(w, S_IDEM_PUT, &b.st);
	if (e != ERR_OK)
		return e;
	bind_text(&b, 1, caller);
	bind_text(&b, 2, key);
	bind_text(&b, 3, rec->call_id);
	bind_blob(&b, 4, rec->request_hash, (int)sizeof rec->request_hash);
	bind_int(&b, 5, rec->created_at);
	return run_bound(w, S_IDEM_PUT, &b);
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
	return run_bound(w, S_WEBHOOK_INSERT, &b);
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
		struct row r = {b.st, true};
		bool never_set = sqlite3_column_type(b.st, 0) == SQLITE_NULL;
		struct presence_record rec = {
			.status = never_set ? -1 : (int)col_int(&r, 0),
			.status_since = col_int(&r, 1),
			.open_since = col_int(&r, 3),
			.open_newest = col_int(&r, 4),
			.last_left_at = col_int(&r, 5),
		};
		col_text(&r, 2, rec.open_call_id, sizeof rec.open_call_id);
		e = r.ok ? ERR_OK : corrupt(S_PRESENCE_GET);
		if (e == ERR_OK)
			*ret = rec;
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

/* ---- reads ---- */

static enum err sq_ping(struct storage *st)
{
	struct sqlite_storage *s = to_sqlite(st);
	struct conn *cn;
	int64_t one;
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
	e = load_call(cn, S_CALL_BY_ID, id, ret_call);
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
		struct row r = {b.st, true};
		struct call_access a = {0};
		col_text(&r, 0, a.room, sizeof a.room);
		a.kind = (enum call_kind)col_enum(&r, 1, call_kind_parse, -1);
		a.status = (enum call_status)col_enum(&r, 2, call_status_parse, -1);
		a.next_deadline = col_int(&r, 3);
		a.member = col_int(&r, 4) != 0;
		if (a.member) {
			a.invite = (enum invite_state)col_enum(&r, 5, invite_state_parse, -1);
			col_text(&r, 6, a.name, sizeof a.name);
		}
		e = r.ok ? ERR_OK : corrupt(S_CALL_ACCESS);
		if (e == ERR_OK)
			*ret = a;
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

/* -1 is "no filter"; any other value must have a name (OUTCOME_NONE has none: an unended call
 * is found by status). */
static bool enum_filter(int v, const char *name, const char **ret_name)
{
	if (v != -1 && !name)
		return false;
	*ret_name = v == -1 ? NULL : name;
	return true;
}

/* The most selective filter present picks the driving statement and its index. */
static enum stmt_id list_stmt(const struct call_filter *f)
{
	if (f->user[0])
		return S_LIST_USER;
	if (f->chat_id[0])
		return S_LIST_CHAT;
	if (f->outcome != -1)
		return S_LIST_OUTCOME;
	if (f->status != -1)
		return S_LIST_STATUS;
	return S_LIST_ALL;
}

static enum err list_bind(struct binder *b, const struct call_filter *f)
{
	const char *status, *outcome, *kind;
	if (!enum_filter(f->status, call_status_name((enum call_status)f->status), &status) ||
	    !enum_filter(f->outcome, call_outcome_name((enum call_outcome)f->outcome), &outcome) ||
	    !enum_filter(f->kind, call_kind_name((enum call_kind)f->kind), &kind))
		return ERR_INVALID;
	/* One exclusive upper bound from the cursor and until: (until, "") sorts before every
	 * row created at until, so it means created_at < until. */
	int64_t upper_at = INT64_MAX;
	const char *upper_id = "";
	if (f->after_id[0]) {
		upper_at = f->after_created_at;
		upper_id = f->after_id;
	}
	if (f->until && f->until <= upper_at) {
		upper_at = f->until;
		upper_id = "";
	}
	bind_int(b, 1, upper_at);
	/* bind_text() would make "" a NULL, and a NULL bound makes the row comparison false. */
	if (b->rc == SQLITE_OK)
		b->rc = sqlite3_bind_text(b->st, 2, upper_id, -1, SQLITE_STATIC);
	bind_int(b, 3, f->since ? f->since : INT64_MIN);
	bind_text(b, 4, status);
	bind_text(b, 5, outcome);
	bind_text(b, 6, kind);
	bind_text(b, 7, f->chat_id);
	bind_int(b, 8, f->limit + 1); /* the extra row only says whether more follow */
	if (f->user[0])
		bind_text(b, 9, f->user);
	return ERR_OK;
}

/* A row of VIEW_COLS. */
static enum err read_view(sqlite3_stmt *st, enum stmt_id id, struct call_view *ret_view)
{
	struct row r = {st, true};
	struct call_view v = {0};
	col_text(&r, 0, v.id, sizeof v.id);
	v.created_at = col_int(&r, 1);
	v.next_deadline = col_int(&r, 2);
	const unsigned char *json = sqlite3_column_text(st, 3);
	if (!r.ok || !json)
		return corrupt(id);
	v.json = malloc((size_t)sqlite3_column_bytes(st, 3) + 1);
	if (!v.json)
		return ERR_NOMEM;
	memcpy(v.json, json, (size_t)sqlite3_column_bytes(st, 3) + 1);
	*ret_view = v;
	return ERR_OK;
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
	enum stmt_id id = list_stmt(f);
	struct view_page page = {0};
	struct binder b = {0};
	struct conn *cn = NULL;
	int rc = SQLITE_DONE;
	enum err e;

	if (f->limit < 1 || f->limit > LIST_LIMIT_MAX)
		return ERR_INVALID;
	page.views = calloc((size_t)f->limit, sizeof *page.views);
	if (!page.views)
		return ERR_NOMEM;
	e = reader_begin(s, &cn, false);
	if (e == ERR_OK)
		e = stmt_get(cn, id, &b.st);
	if (e == ERR_OK)
		e = list_bind(&b, f);
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

static enum err read_event(struct row *r, struct event *ev)
{
	ev->seq = col_int(r, 0);
	col_text(r, 1, ev->id, sizeof ev->id);
	col_text(r, 2, ev->type, sizeof ev->type);
	ev->at = col_int(r, 3);
	col_text(r, 4, ev->call_id, sizeof ev->call_id);
	ev->call_version = col_int(r, 5);
	const char *data = (const char *)sqlite3_column_text(r->st, 6);
	if (!data) {
		r->ok = false;
		return ERR_OK;
	}
	ev->data = strdup(data);
	return ev->data ? ERR_OK : ERR_NOMEM;
}

static enum err sq_events_after(struct storage *st, int64_t after, int limit,
				struct event_page *ret_page)
{
	struct sqlite_storage *s = to_sqlite(st);
	struct event_page page = {0};
	struct binder b = {0};
	struct conn *cn = NULL;
	size_t cap = 0;
	enum err e;
	int rc = SQLITE_DONE;

	if (limit < 1)
		return ERR_INVALID;
	e = reader_begin(s, &cn, false);
	if (e == ERR_OK)
		e = stmt_get(cn, S_EVENTS_AFTER, &b.st);
	if (e != ERR_OK)
		goto out;
	bind_int(&b, 1, after);
	bind_int(&b, 2, limit);
	while (e == ERR_OK && (rc = step_bound(&b)) == SQLITE_ROW) {
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
		struct row r = {b.st, true};
		struct event *ev = &page.events[page.n];
		*ev = (struct event){0};
		e = read_event(&r, ev);
		if (e == ERR_OK)
			page.n++; /* counted even when corrupt, so the page's cleanup frees it */
		if (e == ERR_OK && !r.ok)
			e = corrupt(S_EVENTS_AFTER);
	}
	if (e == ERR_OK && rc != SQLITE_DONE)
		e = db_fail(cn->db, rc, stmts[S_EVENTS_AFTER].name);
out:
	read_done(s, cn, b.st);
	if (e != ERR_OK) {
		event_page_finish(&page);
		return e;
	}
	*ret_page = page;
	return ERR_OK;
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
		struct row r = {b.st, true};
		col_text(&r, 0, ret_calls[n].id, sizeof ret_calls[n].id);
		ret_calls[n].deadline = col_int(&r, 1);
		e = r.ok ? ERR_OK : corrupt(S_DUE);
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

/* ---- open and close ---- */

static void sqlite_free(struct sqlite_storage *s)
{
	if (s->thread_running) {
		pthread_mutex_lock(&s->queue_mu);
		s->stopping = true;
		pthread_cond_signal(&s->queue_cond);
		pthread_mutex_unlock(&s->queue_mu);
		pthread_join(s->thread, NULL);
	}
	if (s->checkpointer_running) {
		pthread_mutex_lock(&s->checkpoint_mu);
		s->checkpoint_stop = true;
		pthread_cond_signal(&s->checkpoint_cond);
		pthread_mutex_unlock(&s->checkpoint_mu);
		pthread_join(s->checkpointer, NULL);
	}
	if (s->checkpoint_db)
		sqlite3_close(s->checkpoint_db);
	if (s->writer.db)
		conn_close(&s->writer);
	while (s->free_readers) {
		struct conn *cn = s->free_readers;
		s->free_readers = cn->next_free;
		conn_close(cn);
		free(cn);
	}
	if (s->sync_ready) {
		pthread_mutex_destroy(&s->queue_mu);
		pthread_cond_destroy(&s->queue_cond);
		pthread_mutex_destroy(&s->pool_mu);
		pthread_mutex_destroy(&s->checkpoint_mu);
		pthread_cond_destroy(&s->checkpoint_cond);
	}
	free(s->path);
	free(s);
}

static void sq_close(struct storage *st)
{
	sqlite_free(to_sqlite(st));
}

/* The three primitives, or none of them. */
static bool sync_init(struct sqlite_storage *s)
{
	if (pthread_mutex_init(&s->queue_mu, NULL) != 0)
		return false;
	if (pthread_cond_init(&s->queue_cond, NULL) != 0) {
		pthread_mutex_destroy(&s->queue_mu);
		return false;
	}
	if (pthread_mutex_init(&s->pool_mu, NULL) != 0) {
		pthread_cond_destroy(&s->queue_cond);
		pthread_mutex_destroy(&s->queue_mu);
		return false;
	}
	if (pthread_mutex_init(&s->checkpoint_mu, NULL) != 0) {
		pthread_mutex_destroy(&s->pool_mu);
		pthread_cond_destroy(&s->queue_cond);
		pthread_mutex_destroy(&s->queue_mu);
		return false;
	}
	if (pthread_cond_init(&s->checkpoint_cond, NULL) != 0) {
		pthread_mutex_destroy(&s->checkpoint_mu);
		pthread_mutex_destroy(&s->pool_mu);
		pthread_cond_destroy(&s->queue_cond);
		pthread_mutex_destroy(&s->queue_mu);
		return false;
	}
	return true;
}

static const struct storage_impl sqlite_impl = {
	.name = "sqlite",
	.close = sq_close,
	.migrate = sq_migrate,
	.schema_version = sq_schema_version,
	.ping = sq_ping,
	.transact = sq_transact,
	.tx_call_get = sq_tx_call_get,
	.tx_call_insert = sq_tx_call_insert,
	.tx_call_update = sq_tx_call_update,
	.tx_event_append = sq_tx_event_append,
	.tx_idempotency_get = sq_tx_idempotency_get,
	.tx_idempotency_put = sq_tx_idempotency_put,
	.tx_webhook_insert = sq_tx_webhook_insert,
	.tx_presence_get = sq_tx_presence_get,
	.tx_presence_set = sq_tx_presence_set,
	.presence_get = sq_presence_get,
	.call_access = sq_call_access,
	.call_get = sq_call_get,
	.call_view = sq_call_view,
	.calls_list = sq_calls_list,
	.events_after = sq_events_after,
	.calls_due = sq_calls_due,
};

enum err sqlite_storage_open(const char *path, struct storage **ret_st)
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
	s->path = strdup(path);
	s->sync_ready = s->path && sync_init(s);
	if (!s->sync_ready) {
		e = ERR_NOMEM;
		goto out;
	}
	e = writer_open(&s->writer, path);
	if (e == ERR_OK)
		e = checkpointer_start(s);
	if (e != ERR_OK)
		goto out;
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

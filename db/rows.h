/* How the records of storage.h map to table columns, shared by the backends so that SQLite
 * and PostgreSQL store the same values the same way: enums by their model.h names, unset
 * times and empty strings as NULL, flags as 0/1 (PostgreSQL booleans read back as "t"/"f").
 * A backend binds the values a record becomes, and hands a result row back as values; it
 * never maps a field itself. Only db/ includes this header. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "storage.h"

/* One column's value. Texts and blobs are borrowed: from the record being written, or from
 * the driver's row being read. */
enum db_type { DB_NULL, DB_INT, DB_TEXT, DB_BLOB };
struct db_value {
	enum db_type type;
	int64_t i;     /* DB_INT */
	const char *p; /* DB_TEXT (NUL-terminated) and DB_BLOB */
	size_t len;    /* bytes at p */
};

/* The columns of a call row, in this order (the "c." alias is the statements' own). */
#define CALL_COLS                                                                                  \
	"c.id, c.room, c.kind, c.status, c.outcome, c.caller, c.chat_id, c.metadata, "             \
	"c.created_at, c.answered_at, c.ended_at, c.end_cause, c.room_end_reason, "                \
	"c.room_finished_at, c.ring_timeout_s, c.ring_deadline, c.join_deadline, "                 \
	"c.next_deadline, c.version"
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
	CC_COUNT
};

#define MEMBER_COLS                                                                                \
	"user_id, role, invite, name, in_room, left_call, responded_at, token_minted_at, "         \
	"first_joined_at, last_left_at"
#define MEMBER_COUNT 10
#define PARTICIPANT_COLS                                                                           \
	"sid, user_id, joined_at, left_at, disconnect_reason, aborted, left_inferred, observer, "  \
	"screen_share_at, screen_share_ended_at"
#define PARTICIPANT_COUNT 10
/* Written as these; read back as "seq, " EVENT_COLS. */
#define EVENT_COLS "id, type, at, call_id, call_version, data, cause, cause_ref"
#define EVENT_COUNT 8
/* A call's stored view: what lists and reads copy. */
#define VIEW_COLS "c.id, c.created_at, c.next_deadline, c.view"
#define VIEW_COUNT 4

/* ---- writing: the values of a record, in column order ---- */
/* Returns false for a record the model cannot hold (an enum out of range): a caller bug. */
bool rows_call_values(const struct call *c, struct db_value out[CC_COUNT]);
bool rows_member_values(const struct member *m, struct db_value out[MEMBER_COUNT]);
void rows_participant_values(const struct participant *p, struct db_value out[PARTICIPANT_COUNT]);
void rows_event_values(const struct event *ev, struct db_value out[EVENT_COUNT]);

/* Whether member i of c, or the session of c->participants[i], is as in loaded (the call as
 * read at the start of the transaction, or NULL): a backend writes only the rows that changed. */
bool rows_member_unchanged(const struct call *c, const struct call *loaded, size_t i);
bool rows_session_unchanged(const struct call *c, const struct call *loaded, size_t i);
/* Whether c differs from loaded (NULL: unknown, so it may) only in the columns that no index
 * of calls holds and that change as a call goes on: answered_at, ended_at, end_cause,
 * room_end_reason, room_finished_at, ring_deadline, join_deadline and version. SQLite rewrites
 * the entry of every index whose column an UPDATE sets, changed or not, so its backend then
 * sets only these (and the view). False also for a record rows_call_values() refuses. */
bool rows_call_only_unindexed_changed(const struct call *c, const struct call *loaded);

/* ---- the history list ----
 * Each backend has one statement per driving index; all take the same parameters:
 * 1-2 an exclusive upper bound (created_at, id) from the cursor and until, 3 since, 4 status,
 * 5 outcome, 6 kind, 7 chat_id (NULL: any), 8 limit + 1 (the extra row says whether more
 * follow), and 9 the user for LIST_BY_USER. */
enum list_driver { LIST_BY_USER, LIST_BY_CHAT, LIST_BY_OUTCOME, LIST_BY_STATUS, LIST_BY_ALL };
#define LIST_PARAM_COUNT 9
/* The driver (the most selective filter present) and the parameters, *ret_n of them,
 * borrowing f's strings. False for a filter value that has no name. */
bool rows_list_values(const struct call_filter *f, struct db_value out[LIST_PARAM_COUNT],
		      size_t *ret_n, enum list_driver *ret_driver);

/* ---- the stats ----
 * One statement, so one snapshot on either backend, over the calls created in [since, until)
 * and their accepted members: the placeholders of since, until, the join timeout and now are
 * the backend's, and greatest its two-argument max. Percentiles take the row at the
 * nearest-rank offset, so no backend holds more than its sort of the times to join. */
#define STATS_SQL(since, until, timeout, now, greatest)                                            \
	"WITH c AS (SELECT id, status, outcome, answered_at, ended_at FROM calls"                   \
	" WHERE created_at >= " since " AND created_at < " until "),"                              \
	" m AS (SELECT m.first_joined_at, m.token_minted_at, c.status FROM c"                      \
	" JOIN call_members m ON m.call_id = c.id WHERE m.invite = 'accepted'),"                   \
	" s AS (SELECT " greatest "(first_joined_at - token_minted_at, 0) AS t FROM m"             \
	" WHERE first_joined_at IS NOT NULL AND token_minted_at IS NOT NULL)"                      \
	" SELECT a.*, b.*, (SELECT count(*) FROM s), " STATS_RANK(50, greatest) ", "               \
	STATS_RANK(95, greatest) " FROM (SELECT count(*),"                                          \
	" count(*) FILTER (WHERE outcome = 'completed'),"                                          \
	" count(*) FILTER (WHERE outcome = 'missed'),"                                             \
	" count(*) FILTER (WHERE outcome = 'declined'),"                                           \
	" count(*) FILTER (WHERE outcome = 'cancelled'),"                                          \
	" count(*) FILTER (WHERE outcome = 'failed'),"                                             \
	" count(*) FILTER (WHERE status = 'ended'),"                                               \
	" count(*) FILTER (WHERE status = 'ended' AND answered_at IS NOT NULL),"                   \
	" sum(ended_at - answered_at) FILTER (WHERE status = 'ended') FROM c) a,"                  \
	" (SELECT count(*) FILTER (WHERE first_joined_at IS NOT NULL OR status = 'ended'"          \
	" OR token_minted_at + " timeout " <= " now "),"                                          \
	" count(*) FILTER (WHERE first_joined_at IS NOT NULL AND (token_minted_at IS NULL"         \
	" OR first_joined_at - token_minted_at <= " timeout ")) FROM m) b"
#define STATS_RANK(p, greatest)                                                                    \
	"(SELECT t FROM s ORDER BY t LIMIT 1 OFFSET (SELECT " greatest "((" #p                     \
	" * count(*) + 99) / 100 - 1, 0) FROM s))"
#define STATS_COUNT 14
/* A row of STATS_SQL. */
enum err rows_read_stats(const struct db_value in[STATS_COUNT], struct call_stats *ret);

/* ---- reading: a row's values back into a record ----
 * Each returns ERR_OK, ERR_NOMEM, or ERR_INTERNAL for a value the model cannot hold (the
 * database holds something this build did not write): the caller logs which statement. */
/* The scalar fields of c, from a call_new() call (its metadata is replaced). */
enum err rows_read_call(const struct db_value in[CC_COUNT], struct call *c);
enum err rows_read_member(const struct db_value in[MEMBER_COUNT], struct member *m);
enum err rows_read_participant(const struct db_value in[PARTICIPANT_COUNT],
			       struct participant *p);
/* "seq, " EVENT_COLS; ev->data is malloc'd. */
enum err rows_read_event(const struct db_value in[EVENT_COUNT + 1], struct event *ev);
/* A row of a call's audit trail, as both backends' audit statements give it: is a webhook
 * (0/1), seq, id, type, at, call_version, cause, cause_ref, body; a->body is malloc'd. */
#define AUDIT_COUNT 9
enum err rows_read_audit(const struct db_value in[AUDIT_COUNT], struct audit_entry *a);
/* VIEW_COLS; v->json is malloc'd. */
enum err rows_read_view(const struct db_value in[VIEW_COUNT], struct call_view *v);
/* call_id, request_hash (32 bytes), created_at. */
enum err rows_read_idempotency(const struct db_value in[3], struct idempotency *rec);
/* room, kind, status, next_deadline, is member (0/1), invite, name. */
enum err rows_read_access(const struct db_value in[7], struct call_access *a);
/* status (NULL: never set), since, open call id, open since, open newest, last left at. */
enum err rows_read_presence(const struct db_value in[6], struct presence_record *rec);
/* A call id of a due call, and its deadline. */
enum err rows_read_due(const struct db_value in[2], struct due_call *d);
/* The push's figures for one URL (the backend's placeholder url): a row for
 * rows_read_delivery_status. The last error is that of an event still queued, dead or
 * stopped: a delivered event's row is gone. */
#define DELIVERY_STATUS_SQL(url)                                                                   \
	"SELECT (SELECT count(*) FROM deliveries WHERE state = 0),"                                \
	" (SELECT coalesce(min(at), 0) FROM deliveries WHERE state = 0),"                          \
	" (SELECT count(*) FROM deliveries WHERE state = 1),"                                      \
	" (SELECT count(*) FROM deliveries WHERE state = 2 AND url = " url "),"                    \
	" coalesce(l.seq, 0), coalesce(l.last_error_at, 0), l.last_error"                          \
	" FROM (SELECT 1) o LEFT JOIN (SELECT seq, last_error_at, last_error"                      \
	" FROM deliveries WHERE last_error_at IS NOT NULL"                                         \
	" ORDER BY last_error_at DESC, seq DESC LIMIT 1) l ON true"
/* The next attempt time of an event queued behind its order's head: the largest integer, so
 * that it is never due until storage_tx_delivery_advance makes it the head. */
#define DELIVERY_BEHIND "9223372036854775807"
#define DELIVERY_COLS "seq, attempts, coalesce(first_attempt_at, 0), order_key"
/* Leases the heads due by now, earliest due first, and nothing once url answered 410: rows for
 * rows_read_delivery. lock: what the backend adds to the inner SELECT. */
#define DELIVERY_HEADS_SQL(url, now, lease_until, max, lock)                                      \
	"UPDATE deliveries SET next_attempt_at = " lease_until " WHERE seq IN (SELECT seq"          \
	" FROM deliveries WHERE state = 0 AND next_attempt_at <= " now                             \
	" AND NOT EXISTS (SELECT 1 FROM deliveries s WHERE s.state = 2 AND s.url = " url ")"       \
	" ORDER BY next_attempt_at, seq LIMIT " max lock ") RETURNING " DELIVERY_COLS
/* The pending events of an order past a seq: rows for rows_read_delivery. */
#define DELIVERY_BEHIND_SQL(order_key, seq, max)                                                  \
	"SELECT " DELIVERY_COLS " FROM deliveries WHERE order_key = " order_key                    \
	" AND state = 0 AND seq > " seq " ORDER BY seq LIMIT " max
#define DELIVERY_NEXT_DUE_SQL(url)                                                                 \
	"SELECT CASE WHEN EXISTS (SELECT 1 FROM deliveries s WHERE s.state = 2 AND s.url = " url   \
	") THEN " DELIVERY_BEHIND " ELSE coalesce(min(next_attempt_at), " DELIVERY_BEHIND ") END"  \
	" FROM deliveries WHERE state = 0"
/* The first pending event of an order comes due if it waits behind a head. */
#define DELIVERY_ADVANCE_SQL(order_key)                                                            \
	"UPDATE deliveries SET next_attempt_at = 0 WHERE seq = (SELECT min(seq) FROM deliveries"    \
	" WHERE order_key = " order_key " AND state = 0) AND next_attempt_at = " DELIVERY_BEHIND
/* A new event is due at once (0) unless a pending event of its order is ahead of it. */
#define DELIVERY_ADD_SQL(seq, order_key, at)                                                       \
	"INSERT INTO deliveries (seq, order_key, at, next_attempt_at) VALUES (" seq ", " order_key  \
	", " at ", CASE WHEN EXISTS (SELECT 1 FROM deliveries WHERE order_key = " order_key         \
	" AND state = 0) THEN " DELIVERY_BEHIND " ELSE 0 END) ON CONFLICT DO NOTHING"
/* An attempt's outcome; a NULL error keeps the last one (a lease given back unattempted). */
#define DELIVERY_SETTLE_SQL(seq, state, attempts, first, next_at, url, error, error_at)            \
	"UPDATE deliveries SET state = " state ", attempts = " attempts ", first_attempt_at = "     \
	first ", next_attempt_at = " next_at ", url = " url ", last_error = coalesce(" error        \
	", last_error), last_error_at = coalesce(" error_at ", last_error_at) WHERE seq = " seq
/* One integer column (a seq). */
enum err rows_read_seq(const struct db_value in[1], int64_t *ret);
/* A claimed delivery: seq, attempts, first attempt (0 for none), order key; leased is left as
 * it was. */
enum err rows_read_delivery(const struct db_value in[4], struct delivery *d);
/* Backlog, oldest pending at, dead, stopped, and the last error's seq, time and text. */
enum err rows_read_delivery_status(const struct db_value in[7], struct delivery_status *ds);

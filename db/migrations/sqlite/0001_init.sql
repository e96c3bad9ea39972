-- The initial schema: calls with their members and LiveKit participant sessions, the events
-- feed, the idempotency records of POST /v1/calls, the LiveKit webhooks as received and the
-- chat-set presence statuses. Times are Unix milliseconds; NULL means
-- "not set" (0 in struct call). Enums are stored as their model.h names so the file reads well
-- in the sqlite3 shell and survives reordering of the C enums. schema_version belongs to the
-- migration runner (db/sqlite.c), not to this file.
-- The indexes serve the lists of storage_calls_list(), newest first with the keyset
-- (created_at, id): one per driving filter, so no page sorts or scans.

-- rid is the table's own key (the rowid, kept stable by declaring it): every other index of
-- calls leads to a row through it, and call_members carries it so that a user's history
-- reaches each call in one step instead of going through the id index as well.
CREATE TABLE calls (
	rid INTEGER PRIMARY KEY,
	id TEXT NOT NULL UNIQUE,
	room TEXT NOT NULL, -- "call_" + id: unique with it, and found through it
	kind TEXT NOT NULL,
	status TEXT NOT NULL,
	outcome TEXT,
	caller TEXT NOT NULL,
	chat_id TEXT,
	metadata TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	answered_at INTEGER,
	ended_at INTEGER,
	end_cause TEXT,
	room_end_reason TEXT,
	room_finished_at INTEGER,
	ring_timeout_s INTEGER NOT NULL,
	ring_deadline INTEGER,
	join_deadline INTEGER,
	next_deadline INTEGER,
	version INTEGER NOT NULL,
	-- The call's API JSON as of this row's last write, written in the same statement: lists
	-- and reads copy it instead of joining members and sessions and serializing them again.
	view TEXT NOT NULL
);
CREATE INDEX calls_created ON calls (created_at, id);
-- Partial where the column is often NULL (no chat, not ended): an equality filter implies
-- NOT NULL, so SQLite still picks them, and they stay smaller.
CREATE INDEX calls_chat ON calls (chat_id, created_at, id) WHERE chat_id IS NOT NULL;
CREATE INDEX calls_status ON calls (status, created_at, id);
CREATE INDEX calls_outcome ON calls (outcome, created_at, id) WHERE outcome IS NOT NULL;
-- The timer wheel's query: only calls with a timer still to fire are indexed.
CREATE INDEX calls_due ON calls (next_deadline, id) WHERE next_deadline IS NOT NULL;

-- user_id rather than user: USER is reserved in PostgreSQL, and both backends keep one naming.
-- created_at copies the call's so a user's history is one range of call_members_user.
CREATE TABLE call_members (
	call_id TEXT NOT NULL REFERENCES calls (id) ON DELETE CASCADE,
	call_rid INTEGER NOT NULL, -- calls.rid of call_id
	user_id TEXT NOT NULL,
	position INTEGER NOT NULL, -- index in struct call.members[], 0 = the caller
	role TEXT NOT NULL,
	invite TEXT NOT NULL,
	name TEXT,
	in_room INTEGER NOT NULL,
	left_call INTEGER NOT NULL, -- struct member.left
	responded_at INTEGER,
	token_minted_at INTEGER,
	first_joined_at INTEGER,
	last_left_at INTEGER,
	created_at INTEGER NOT NULL,
	PRIMARY KEY (call_id, user_id)
) WITHOUT ROWID;
CREATE INDEX call_members_user ON call_members (user_id, created_at, call_id, call_rid);

CREATE TABLE participants (
	call_id TEXT NOT NULL REFERENCES calls (id) ON DELETE CASCADE,
	sid TEXT NOT NULL,
	user_id TEXT NOT NULL,
	joined_at INTEGER,
	left_at INTEGER,
	disconnect_reason TEXT,
	aborted INTEGER NOT NULL,
	left_inferred INTEGER NOT NULL,
	observer INTEGER NOT NULL,
	screen_share_at INTEGER,
	screen_share_ended_at INTEGER,
	PRIMARY KEY (call_id, sid)
) WITHOUT ROWID;
-- Presence: a user's open sessions are the NULL left_at range, and max(left_at) is the end of
-- that range, so both reads are a few index steps however many calls the user had.
CREATE INDEX participants_user ON participants (user_id, left_at);

-- AUTOINCREMENT: a seq is never handed out twice, even after the newest events are deleted,
-- so a consumer's cursor stays meaningful. call_id has no foreign key: the feed is a log that
-- may outlive the calls it mentions, and presence events have none.
CREATE TABLE events (
	seq INTEGER PRIMARY KEY AUTOINCREMENT,
	id TEXT NOT NULL UNIQUE,
	type TEXT NOT NULL,
	at INTEGER NOT NULL,
	call_id TEXT,
	call_version INTEGER,
	data TEXT NOT NULL
);
CREATE INDEX events_call ON events (call_id, seq);

CREATE TABLE idempotency_keys (
	caller TEXT NOT NULL,
	key TEXT NOT NULL,
	request_hash BLOB NOT NULL,
	call_id TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	PRIMARY KEY (caller, key)
) WITHOUT ROWID;

-- LiveKit webhooks exactly as signed, once per event id: a redelivery is a conflict.
CREATE TABLE webhooks (
	id TEXT NOT NULL PRIMARY KEY,
	event TEXT NOT NULL,
	room TEXT,
	call_id TEXT,
	created_at INTEGER,
	received_at INTEGER NOT NULL,
	body BLOB NOT NULL
);

-- The status the chat app set (enum presence_status of the domain, as its number: storage does
-- not know the names), and since when. The in_call part of presence comes from participants.
CREATE TABLE presence (
	user_id TEXT NOT NULL PRIMARY KEY,
	status INTEGER NOT NULL,
	since INTEGER NOT NULL
) WITHOUT ROWID;

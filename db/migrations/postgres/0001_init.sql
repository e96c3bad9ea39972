-- The initial PostgreSQL schema: the same tables as db/migrations/sqlite/0001_init.sql, with
-- the same values (times as Unix milliseconds, NULL for "not set", enums by their model.h
-- names), so that db/rows.c maps both. What differs is what several writers need:
-- * keys and the texts lists order by are COLLATE "C", so that ordering and keyset cursors
--   compare bytes as SQLite does, whatever the database's locale;
-- * the feed is numbered after commit (db/postgres.c): events are inserted with seq NULL and
--   numbered in insert order (pos) by one numbering transaction at a time, counting on from
--   feed_counter; UNIQUE (call_id, call_version) is the backstop against two writers giving a
--   call the same version.
-- schema_version belongs to the migration runner (db/postgres.c), not to this file.

CREATE TABLE calls (
	id text COLLATE "C" PRIMARY KEY,
	room text COLLATE "C" NOT NULL, -- "call_" + id
	kind text NOT NULL,
	status text NOT NULL,
	outcome text,
	caller text COLLATE "C" NOT NULL,
	chat_id text COLLATE "C",
	metadata text NOT NULL,
	created_at bigint NOT NULL,
	answered_at bigint,
	ended_at bigint,
	end_cause text,
	room_end_reason text,
	room_finished_at bigint,
	ring_timeout_s integer NOT NULL,
	ring_deadline bigint,
	join_deadline bigint,
	next_deadline bigint,
	version bigint NOT NULL,
	view text NOT NULL -- the call's API JSON as of this row's last write
);
CREATE INDEX calls_created ON calls (created_at, id);
CREATE INDEX calls_chat ON calls (chat_id, created_at, id) WHERE chat_id IS NOT NULL;
CREATE INDEX calls_status ON calls (status, created_at, id);
CREATE INDEX calls_outcome ON calls (outcome, created_at, id) WHERE outcome IS NOT NULL;
CREATE INDEX calls_due ON calls (next_deadline, id) WHERE next_deadline IS NOT NULL;

-- user_id rather than user: USER is reserved. created_at copies the call's, so that a user's
-- history is one range of call_members_user.
CREATE TABLE call_members (
	call_id text COLLATE "C" NOT NULL REFERENCES calls (id) ON DELETE CASCADE,
	user_id text COLLATE "C" NOT NULL,
	position integer NOT NULL, -- index in struct call.members[], 0 = the caller
	role text NOT NULL,
	invite text NOT NULL,
	name text,
	in_room boolean NOT NULL,
	left_call boolean NOT NULL, -- struct member.left
	responded_at bigint,
	token_minted_at bigint,
	first_joined_at bigint,
	last_left_at bigint,
	created_at bigint NOT NULL,
	PRIMARY KEY (call_id, user_id)
);
CREATE INDEX call_members_user ON call_members (user_id, created_at, call_id);

CREATE TABLE participants (
	call_id text COLLATE "C" NOT NULL REFERENCES calls (id) ON DELETE CASCADE,
	sid text COLLATE "C" NOT NULL,
	user_id text COLLATE "C" NOT NULL,
	joined_at bigint,
	left_at bigint,
	disconnect_reason text,
	aborted boolean NOT NULL,
	left_inferred boolean NOT NULL,
	observer boolean NOT NULL,
	screen_share_at bigint,
	screen_share_ended_at bigint,
	PRIMARY KEY (call_id, sid)
);
CREATE INDEX participants_user ON participants (user_id, left_at);

CREATE TABLE events (
	id text COLLATE "C" PRIMARY KEY,
	pos bigint GENERATED ALWAYS AS IDENTITY, -- insert order: what numbering follows
	seq bigint,                              -- feed order: NULL until numbered
	type text NOT NULL,
	at bigint NOT NULL,
	call_id text COLLATE "C",
	call_version bigint,
	data text NOT NULL,
	UNIQUE (call_id, call_version)
);
-- Numbered, each seq once; an event is indexed here only when numbered, so its insert does
-- not touch this index, and the numbering's "seq IS NULL" can only use events_unnumbered.
CREATE UNIQUE INDEX events_seq ON events (seq) WHERE seq IS NOT NULL;
-- What the numbering has left to do, in insert order. Numbering updates each row, which
-- leaves its entry here dead until vacuum; a plain index scan marks the dead entries it
-- meets so that the next round skips them (db/postgres.c: feed_numbering).
CREATE INDEX events_unnumbered ON events (pos) WHERE seq IS NULL;

CREATE TABLE feed_counter (
	only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
	last_seq bigint NOT NULL
);
INSERT INTO feed_counter (last_seq) VALUES (0);

CREATE TABLE idempotency_keys (
	caller text COLLATE "C" NOT NULL,
	key text COLLATE "C" NOT NULL,
	request_hash bytea NOT NULL,
	call_id text NOT NULL,
	created_at bigint NOT NULL,
	PRIMARY KEY (caller, key)
);

-- LiveKit webhooks exactly as signed, once per event id.
CREATE TABLE webhooks (
	id text COLLATE "C" PRIMARY KEY,
	event text NOT NULL,
	room text,
	call_id text,
	created_at bigint,
	received_at bigint NOT NULL,
	body bytea NOT NULL
);

CREATE TABLE presence (
	user_id text COLLATE "C" PRIMARY KEY,
	status integer NOT NULL,
	since bigint NOT NULL
);

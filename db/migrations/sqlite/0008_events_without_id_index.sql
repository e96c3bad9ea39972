-- events.id was UNIQUE, and so indexed: an index that only the rewrite of an event by the
-- erasure read (it now goes by seq, the rowid), and that every event appended to, a page or
-- more per commit (bench/README.md, "WAL pages by b-tree"). Its ids are UUIDv7 that callstate
-- makes, strictly increasing (API.md), so no other row can hold one. SQLite drops a UNIQUE only
-- with its table: the rows move to a table without it, and the AUTOINCREMENT counter with them,
-- so that no seq is handed out twice (0001), even one whose event is gone.
CREATE TABLE events_by_seq (
	seq INTEGER PRIMARY KEY AUTOINCREMENT,
	id TEXT NOT NULL,
	type TEXT NOT NULL,
	at INTEGER NOT NULL,
	call_id TEXT,
	call_version INTEGER,
	data TEXT NOT NULL,
	cause TEXT,
	cause_ref TEXT
);
INSERT INTO events_by_seq (seq, id, type, at, call_id, call_version, data, cause, cause_ref)
	SELECT seq, id, type, at, call_id, call_version, data, cause, cause_ref FROM events;
DELETE FROM sqlite_sequence WHERE name = 'events_by_seq';
UPDATE sqlite_sequence SET name = 'events_by_seq' WHERE name = 'events';
DROP TABLE events;
ALTER TABLE events_by_seq RENAME TO events;

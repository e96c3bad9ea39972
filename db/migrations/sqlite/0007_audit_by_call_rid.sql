-- The audit tables by calls.rid (an integer of a few bytes, stable: the rowid declared) in
-- place of the call's 36-character id. Each catch-up (0003) inserts its rows all over the
-- range of the calls live at the time, so the pages it writes are about as many as that range
-- has leaves, up to one per row: with keys five times shorter the range has that many fewer
-- leaves (measured in bench/README.md, "WAL pages by b-tree"). Rows of calls that are gone
-- lead nowhere (a trail is read by its call), and go.
CREATE TABLE audit_events_by_rid (
	call_rid INTEGER NOT NULL, -- calls.rid
	seq INTEGER NOT NULL,
	PRIMARY KEY (call_rid, seq)
) WITHOUT ROWID;
INSERT INTO audit_events_by_rid (call_rid, seq)
	SELECT c.rid, a.seq FROM audit_events a JOIN calls c ON c.id = a.call_id;
DROP TABLE audit_events;
ALTER TABLE audit_events_by_rid RENAME TO audit_events;
CREATE TABLE audit_webhooks_by_rid (
	call_rid INTEGER NOT NULL, -- calls.rid
	webhook_id TEXT NOT NULL,
	PRIMARY KEY (call_rid, webhook_id)
) WITHOUT ROWID;
INSERT INTO audit_webhooks_by_rid (call_rid, webhook_id)
	SELECT c.rid, a.webhook_id FROM audit_webhooks a JOIN calls c ON c.id = a.call_id;
DROP TABLE audit_webhooks;
ALTER TABLE audit_webhooks_by_rid RENAME TO audit_webhooks;

-- The audit trail of a call (GET /v1/calls/{id}/events): its webhooks as received and its feed
-- events, each change with its cause. Rows written before this have no cause (NULL).
-- cause is 'api', 'webhook' or 'timer'; cause_ref the request id or the webhook's event id.
ALTER TABLE events ADD COLUMN cause TEXT;
ALTER TABLE events ADD COLUMN cause_ref TEXT;
-- The call's version as the webhook found it: a webhook goes just before the change that
-- follows it.
ALTER TABLE webhooks ADD COLUMN call_version INTEGER;

-- Which feed events and webhooks belong to which call. An index on call_id kept by every
-- insert would change one more page at random per event, since the calls live at once are
-- spread over it (1.75 more WAL pages per webhook in the bench); these are filled in bulk, with
-- what was appended past audit_indexed, about once a second and when the storage closes, so
-- each of their pages changes once for many rows. A read of a call's trail adds what is past
-- the marks (db/sqlite.c, S_AUDIT). Webhooks are named by id, not rowid, which VACUUM may
-- renumber; it cannot run while callstate holds the file, and nothing is past the mark then.
CREATE TABLE audit_events (
	call_id TEXT NOT NULL,
	seq INTEGER NOT NULL,
	PRIMARY KEY (call_id, seq)
) WITHOUT ROWID;
CREATE TABLE audit_webhooks (
	call_id TEXT NOT NULL,
	webhook_id TEXT NOT NULL,
	PRIMARY KEY (call_id, webhook_id)
) WITHOUT ROWID;
CREATE TABLE audit_indexed (
	events_upto INTEGER NOT NULL,   -- events.seq
	webhooks_upto INTEGER NOT NULL  -- webhooks.rowid
);
INSERT INTO audit_events (call_id, seq) SELECT call_id, seq FROM events WHERE call_id IS NOT NULL;
INSERT INTO audit_webhooks (call_id, webhook_id)
	SELECT call_id, id FROM webhooks WHERE call_id IS NOT NULL;
INSERT INTO audit_indexed (events_upto, webhooks_upto)
	SELECT (SELECT coalesce(max(seq), 0) FROM events),
	       (SELECT coalesce(max(rowid), 0) FROM webhooks);

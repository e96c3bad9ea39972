-- Retention (CALLSTATE_RETENTION_DAYS) deletes, in small batches, what no index leads to by
-- age yet. Ended calls need none: they are found through calls_created (a call ends after it
-- starts), and their events and webhooks through the audit tables of 0003.
-- Webhooks of rooms no call owns, by when they came: partial, so a webhook of a call (the
-- hot path) never touches it, only the rare one of an unknown room.
CREATE INDEX webhooks_unowned ON webhooks (received_at) WHERE call_id IS NULL;
-- Idempotency records by age: written by POST /v1/calls with a key only, in time order, so an
-- insert changes the index's last page, which the writer's group commit shares.
CREATE INDEX idempotency_created ON idempotency_keys (created_at);

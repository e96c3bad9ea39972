-- Retention (CALLSTATE_RETENTION_DAYS) deletes, in small batches, what no index leads to by
-- age yet. Ended calls need none: they are found through calls_created (a call ends after it
-- starts), and their events and webhooks through UNIQUE (call_id, call_version) of 0001 and
-- webhooks_call of 0002.
-- Webhooks of rooms no call owns, by when they came: partial, so a webhook of a call (the
-- hot path) never touches it, only the rare one of an unknown room.
CREATE INDEX webhooks_unowned ON webhooks (received_at) WHERE call_id IS NULL;
-- Idempotency records by age: written by POST /v1/calls with a key only, in time order.
CREATE INDEX idempotency_created ON idempotency_keys (created_at);

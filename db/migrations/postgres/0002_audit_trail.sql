-- The audit trail of a call (GET /v1/calls/{id}/events): its webhooks as received and its feed
-- events, each change with its cause. Rows written before this have no cause (NULL).
-- cause is 'api', 'webhook' or 'timer'; cause_ref the request id or the webhook's event id.
-- The call's events are read through UNIQUE (call_id, call_version) of 0001.
ALTER TABLE events ADD COLUMN cause text;
ALTER TABLE events ADD COLUMN cause_ref text;
-- The call's version as the webhook found it: a webhook goes just before the change that
-- follows it.
ALTER TABLE webhooks ADD COLUMN call_version bigint;
CREATE INDEX webhooks_call ON webhooks (call_id) WHERE call_id IS NOT NULL;

-- Push delivery of the feed (CALLSTATE_EVENTS_URL): a cursor past which the feed has not been
-- queued yet, and one row per queued event until it is delivered (then deleted), dead or
-- stopped. The request path writes nothing here: the delivery worker queues from the feed.
CREATE TABLE delivery_cursor (
	id INTEGER PRIMARY KEY CHECK (id = 1),
	seq INTEGER NOT NULL
);
-- Events from the upgrade on are pushed.
INSERT INTO delivery_cursor (id, seq) SELECT 1, coalesce(max(seq), 0) FROM events;
CREATE TABLE deliveries (
	seq INTEGER PRIMARY KEY,
	order_key TEXT NOT NULL,           -- the call id; '' for presence events (one order)
	at INTEGER NOT NULL,               -- the event's time
	state INTEGER NOT NULL DEFAULT 0,  -- 0 pending, 1 dead, 2 stopped (410)
	attempts INTEGER NOT NULL DEFAULT 0,
	first_attempt_at INTEGER,
	next_attempt_at INTEGER NOT NULL,  -- also the lease of an attempt in flight
	url TEXT,                          -- where a stopped delivery was refused
	last_error TEXT,
	last_error_at INTEGER
);
CREATE INDEX deliveries_pending ON deliveries (order_key, seq) WHERE state = 0;

-- As db/migrations/sqlite/0005_event_delivery.sql.
CREATE TABLE delivery_cursor (
	id int PRIMARY KEY CHECK (id = 1),
	seq bigint NOT NULL
);
INSERT INTO delivery_cursor (id, seq) SELECT 1, coalesce(max(seq), 0) FROM events;
CREATE TABLE deliveries (
	seq bigint PRIMARY KEY,
	order_key text COLLATE "C" NOT NULL,
	at bigint NOT NULL,
	state int NOT NULL DEFAULT 0,
	attempts int NOT NULL DEFAULT 0,
	first_attempt_at bigint,
	next_attempt_at bigint NOT NULL,
	url text,
	last_error text,
	last_error_at bigint
);
CREATE INDEX deliveries_pending ON deliveries (order_key, seq) WHERE state = 0;

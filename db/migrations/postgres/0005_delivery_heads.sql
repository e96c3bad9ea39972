-- As db/migrations/sqlite/0006_delivery_heads.sql.
UPDATE deliveries SET next_attempt_at = 9223372036854775807
 WHERE state = 0 AND EXISTS (SELECT 1 FROM deliveries e WHERE e.state = 0
                             AND e.order_key = deliveries.order_key AND e.seq < deliveries.seq);
CREATE INDEX deliveries_due ON deliveries (next_attempt_at, seq) WHERE state = 0;
CREATE INDEX deliveries_stopped ON deliveries (url) WHERE state = 2;

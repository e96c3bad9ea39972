-- Only the head of each order's queue has a due time: the events behind it wait with the
-- largest next_attempt_at until the head is settled (storage.h rule 12), so that a claim reads
-- the due heads from deliveries_due instead of scanning every queue, and a sender with nothing
-- due knows when the next head comes due.
UPDATE deliveries SET next_attempt_at = 9223372036854775807
 WHERE state = 0 AND EXISTS (SELECT 1 FROM deliveries e WHERE e.state = 0
                             AND e.order_key = deliveries.order_key AND e.seq < deliveries.seq);
CREATE INDEX deliveries_due ON deliveries (next_attempt_at, seq) WHERE state = 0;
CREATE INDEX deliveries_stopped ON deliveries (url) WHERE state = 2;

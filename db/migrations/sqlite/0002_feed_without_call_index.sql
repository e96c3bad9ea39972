-- No statement reads the feed by call: events_call only cost each event a write to a random
-- page of the index.
DROP INDEX events_call;

-- Room on each page for the next version of its rows. A webhook updates its call, a member
-- or two and a session; an update whose indexed columns keep their values can be HOT (the
-- new version on the same page, no index entry written, pruned in place) only when its page
-- has room, and at the default fillfactor (100) inserts leave none. Only pages written from
-- now on keep the room; the tables' existing pages fill up as before until rewritten.
ALTER TABLE calls SET (fillfactor = 70);
ALTER TABLE call_members SET (fillfactor = 80);
ALTER TABLE participants SET (fillfactor = 80);

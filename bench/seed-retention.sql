-- Seed @N@ calls that ended long ago straight into a migrated callstate SQLite database, for
-- bench/retention.sh (which substitutes @N@ and @BASE@, the first created_at in Unix ms, far
-- enough back that every one is past the retention it sets). Each call is what a short
-- one-to-one call leaves behind (db/migrations/sqlite/0001 to 0003): its row, two members, one
-- session, two feed events (call.ringing, call.ended), two webhooks (participant_joined, _left)
-- and their rows in the audit tables, whose marks are moved past them as a clean stop would.
PRAGMA journal_mode = WAL;
PRAGMA synchronous = OFF;
PRAGMA cache_size = -262144;
PRAGMA temp_store = MEMORY;
BEGIN;
CREATE TEMP TABLE seed AS
WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s WHERE i + 1 < @N@)
SELECT i, @BASE@ + i * 2000 AS created_at,
  printf('%08x-%04x-7%03x-%04x-%012x', (@BASE@ + i * 2000) / 65536,
         (@BASE@ + i * 2000) % 65536, i % 4096, 32768 + (i / 4096) % 16384, i) AS id,
  printf('old-%05d', i % 10000) AS caller, printf('old-%05d', (i + 1) % 10000) AS callee
FROM s;

INSERT INTO calls (id, room, kind, status, outcome, caller, chat_id, metadata, created_at,
                   answered_at, ended_at, end_cause, ring_timeout_s, version, view)
SELECT id, 'call_' || id, 'audio', 'ended', 'completed', caller, NULL, '{}', created_at,
       created_at + 3000, created_at + 60000, 'leave', 45, 3,
       json_object('id', id, 'room', 'call_' || id, 'status', 'ended')
FROM seed ORDER BY i;

INSERT INTO call_members (call_id, call_rid, user_id, position, role, invite, in_room, left_call,
                          created_at)
SELECT s.id, c.rid, s.caller, 0, 'caller', 'accepted', 0, 1, s.created_at
FROM seed s JOIN calls c ON c.id = s.id
UNION ALL
SELECT s.id, c.rid, s.callee, 1, 'callee', 'accepted', 0, 1, s.created_at
FROM seed s JOIN calls c ON c.id = s.id;

INSERT INTO participants (call_id, sid, user_id, joined_at, left_at, disconnect_reason, aborted,
                          left_inferred, observer)
SELECT id, 'PA_old' || i, callee, created_at + 3500, created_at + 59000, 'CLIENT_INITIATED', 0,
       0, 0
FROM seed;

INSERT INTO events (id, type, at, call_id, call_version, data, cause, cause_ref)
SELECT printf('ev-old-%d-%d', i, k), CASE k WHEN 0 THEN 'call.ringing' ELSE 'call.ended' END,
       created_at + k * 60000, id, k * 2 + 1, '{"id":"' || id || '"}', 'api', NULL
FROM seed, (SELECT 0 AS k UNION ALL SELECT 1) ORDER BY i, k;

INSERT INTO webhooks (id, event, room, call_id, created_at, received_at, body, call_version)
SELECT printf('EV_old_%d_%d', i, k),
       CASE k WHEN 0 THEN 'participant_joined' ELSE 'participant_left' END, 'call_' || id, id,
       created_at + 3500 + k * 55500, created_at + 3500 + k * 55500,
       '{"event":"participant_joined","room":{"name":"call_' || id || '"}}', 2 + k
FROM seed, (SELECT 0 AS k UNION ALL SELECT 1) ORDER BY i, k;

INSERT INTO audit_events (call_id, seq)
SELECT call_id, seq FROM events
WHERE seq > (SELECT events_upto FROM audit_indexed) AND call_id IS NOT NULL;
INSERT INTO audit_webhooks (call_id, webhook_id)
SELECT call_id, id FROM webhooks
WHERE rowid > (SELECT webhooks_upto FROM audit_indexed) AND call_id IS NOT NULL;
UPDATE audit_indexed SET events_upto = (SELECT max(seq) FROM events),
                         webhooks_upto = (SELECT max(rowid) FROM webhooks);
DROP TABLE seed;
COMMIT;
ANALYZE;

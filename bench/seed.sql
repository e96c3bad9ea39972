-- Seed @N@ ended-or-live calls straight into a migrated callstate SQLite database, for the list
-- benchmarks of bench/run.sh (which substitutes @N@ and @BASE@, the first created_at in Unix ms).
-- Follows db/migrations/sqlite/0001_init.sql: one row in calls (rid = i + 1: the table starts
-- empty) and two in call_members (caller, callee) per call. ids are UUIDv7 text whose timestamp is created_at, so they sort like the
-- server's own and stay below every id it mints later. Spread: 10k users (user-00000..09999),
-- 40 chat ids plus 20% without, 1/3 video, 98% ended (completed/missed/declined/cancelled/failed),
-- 1% active, 1% ringing. Live calls get no timer (next_deadline NULL), so the server's timer
-- thread leaves the seeded history alone during the benchmark.
PRAGMA journal_mode = WAL;
PRAGMA synchronous = OFF;
PRAGMA cache_size = -262144;
PRAGMA temp_store = MEMORY;
BEGIN;
CREATE TEMP TABLE seed0 AS
WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s WHERE i + 1 < @N@)
SELECT
  i,
  @BASE@ + i * 2500 + (i * 37) % 1000 AS created_at,
  printf('user-%05d', (i * 7919) % 10000) AS caller,
  printf('user-%05d', ((i * 7919) % 10000 + 1 + i % 9999) % 10000) AS callee,
  CASE WHEN i % 3 = 0 THEN 'video' ELSE 'audio' END AS kind,
  CASE i % 100 WHEN 0 THEN 'active' WHEN 1 THEN 'ringing' ELSE 'ended' END AS status,
  CASE WHEN i % 100 < 2 THEN NULL ELSE
    CASE (i / 7) % 10 WHEN 0 THEN 'completed' WHEN 1 THEN 'completed' WHEN 2 THEN 'completed'
      WHEN 3 THEN 'completed' WHEN 4 THEN 'completed' WHEN 5 THEN 'missed' WHEN 6 THEN 'missed'
      WHEN 7 THEN 'declined' WHEN 8 THEN 'cancelled' ELSE 'failed' END END AS outcome,
  CASE WHEN i % 5 = 0 THEN NULL ELSE 'chat-' || (i % 40) END AS chat_id
FROM s;

CREATE TEMP TABLE seed AS
SELECT *,
  CASE outcome WHEN 'completed' THEN answered_at + 60000 + (i % 600) * 1000
               WHEN 'failed' THEN answered_at + 60000
               WHEN 'missed' THEN created_at + 45000
               WHEN 'declined' THEN created_at + 4000
               WHEN 'cancelled' THEN created_at + 3000 END AS ended_at
FROM (
  SELECT *,
    substr(printf('%012x', created_at), 1, 8) || '-' || substr(printf('%012x', created_at), 9, 4)
      || '-7' || printf('%03x', i % 4096) || '-' || printf('%04x', 32768 + (i / 4096) % 16384)
      || '-' || printf('%012x', i) AS id,
    CASE WHEN status = 'active' OR outcome IN ('completed', 'failed') THEN created_at + 5000 END AS answered_at
  FROM seed0
);
DROP TABLE seed0;

CREATE TEMP TABLE seed2 AS
SELECT *,
  CASE WHEN status = 'ringing' THEN 'pending'
       WHEN answered_at IS NOT NULL THEN 'accepted'
       WHEN outcome = 'missed' THEN 'missed'
       WHEN outcome = 'declined' THEN 'declined'
       ELSE 'cancelled' END AS callee_invite,
  CASE WHEN answered_at IS NOT NULL THEN answered_at
       WHEN outcome = 'declined' THEN ended_at END AS callee_responded_at,
  CASE outcome WHEN 'completed' THEN 'leave' WHEN 'failed' THEN 'join_timeout'
               WHEN 'missed' THEN 'ring_timeout' WHEN 'declined' THEN 'declined'
               WHEN 'cancelled' THEN 'end_request' END AS end_cause
FROM seed;

-- view: the call object of API.md, as the server stores it with every write of a call.
INSERT INTO calls (rid, id, room, kind, status, outcome, caller, chat_id, metadata, created_at,
                   answered_at, ended_at, end_cause, room_end_reason, ring_timeout_s,
                   ring_deadline, join_deadline, next_deadline, version, view)
SELECT i + 1, id, 'call_' || id, kind, status, outcome, caller, chat_id, '{}', created_at,
       answered_at, ended_at, end_cause, NULL, 45, created_at + 45000, NULL, NULL,
       CASE WHEN outcome IS NULL THEN 1 ELSE 3 END,
       json_object('id', id, 'room', 'call_' || id, 'kind', kind, 'status', status,
         'outcome', outcome, 'caller', caller, 'chat_id', chat_id, 'metadata', json('{}'),
         'created_at', strftime('%Y-%m-%dT%H:%M:%fZ', created_at / 1000.0, 'unixepoch'),
         'answered_at', strftime('%Y-%m-%dT%H:%M:%fZ', answered_at / 1000.0, 'unixepoch'),
         'ended_at', strftime('%Y-%m-%dT%H:%M:%fZ', ended_at / 1000.0, 'unixepoch'),
         'duration_ms', ended_at - answered_at, 'end_cause', end_cause,
         'room_end_reason', NULL,
         'members', json_array(
           json_object('user', caller, 'role', 'caller', 'invite', 'accepted',
             'in_room', json('false'),
             'responded_at', strftime('%Y-%m-%dT%H:%M:%fZ', created_at / 1000.0, 'unixepoch'),
             'first_joined_at', NULL, 'last_left_at', NULL),
           json_object('user', callee, 'role', 'callee', 'invite', callee_invite,
             'in_room', json('false'),
             'responded_at',
             strftime('%Y-%m-%dT%H:%M:%fZ', callee_responded_at / 1000.0, 'unixepoch'),
             'first_joined_at', NULL, 'last_left_at', NULL)),
         'participants', json_array())
FROM seed2 ORDER BY i;

INSERT INTO call_members (call_id, call_rid, user_id, position, role, invite, name, in_room,
                          left_call, responded_at, token_minted_at, first_joined_at,
                          last_left_at, created_at)
SELECT id, i + 1, caller, 0, 'caller', 'accepted', NULL, 0, 0, created_at, created_at, NULL, NULL,
       created_at
FROM seed2
UNION ALL
SELECT id, i + 1, callee, 1, 'callee', callee_invite, NULL, 0, 0, callee_responded_at,
       answered_at, NULL, NULL, created_at
FROM seed2;
DROP TABLE seed2;
DROP TABLE seed;
COMMIT;
ANALYZE;

// CALLSTATE_RETENTION_DAYS (API.md settings): ended calls older than the setting are purged,
// with their sessions, feed events, webhooks and audit rows, and so is what no call owns once
// it is as old (presence events, webhooks of other rooms, idempotency records). Calls made
// through the API are aged by rewriting their times in the database while the server is
// stopped; then a server started with the setting purges them by itself.
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  BACKEND, startServer, shutdown, newCall, pollUntil, makeTmpDir, removeTmpDir, rawSql, uid,
} from './harness.js';
import { LkRoom, deliver } from './livekit-kit.js';

const DAY = 86400000;
const RETENTION_DAYS = 30;

let srv;
let dir;
after(async () => {
  await shutdown(srv);
  if (dir) removeTmpDir(dir);
});

/** A call that rang with the caller in the room, and ended when the caller left. */
async function endedCall(server, extra = {}) {
  const req = newCall(1);
  const body = JSON.stringify(req);
  const headers = { 'Content-Type': 'application/json', ...(extra.key ? { 'Idempotency-Key': extra.key } : {}) };
  const r = await server.request('POST', '/v1/calls', { body, headers });
  assert.equal(r.status, 201, r.text);
  const c = r.body.call;
  const room = new LkRoom(c.room);
  const s = room.session(req.caller, Date.now());
  assert.equal((await deliver(server, room.joined(s))).status, 200);
  const ended = await server.act(c.id, 'leave', { user: req.caller });
  assert.equal(ended.status, 'ended');
  return { id: c.id, body, key: extra.key };
}

function count(server, sql, id) {
  return Number(rawSql(server, sql, [id]).trim());
}

/** callstate_calls_purged_total summed over the server's instances (each counts its own sweeps;
 * with CALLSTATE_TEST_INSTANCES any of them may have swept), and the first instance's text. */
async function scrapePurged(server) {
  let purged = 0;
  let first = null;
  for (const port of server.ports) {
    const r = await fetch(`http://127.0.0.1:${port}/metrics`, { headers: { Authorization: `Bearer ${server.secrets.adminToken}` } });
    assert.equal(r.status, 200);
    const text = await r.text();
    const line = text.split('\n').find((l) => l.startsWith('callstate_calls_purged_total '));
    assert.ok(line, 'callstate_calls_purged_total is exposed');
    purged += Number(line.split(' ')[1]);
    first ??= text;
  }
  return { text: first, purged };
}

describe('CALLSTATE_RETENTION_DAYS', () => {
  it('purges ended calls older than the setting with what they own, keeps the rest', async () => {
    dir = makeTmpDir();
    srv = await startServer({ dir, env: { CALLSTATE_RING_TIMEOUT_S: '300' } });
    const { secrets } = srv;

    // What will be old: a call, the presence changes around it, a webhook of another room.
    const old = await endedCall(srv, { key: `k-${uid()}` });
    assert.equal((await srv.svc('PUT', `/v1/presence/${uid('p')}`, { status: 'away' })).status, 200);
    const other = new LkRoom('not-a-call-room');
    assert.equal((await deliver(srv, other.started(Date.now()))).status, 200);
    const oldFeed = await srv.allEvents();
    const lastOldSeq = oldFeed.at(-1).seq;
    assert.ok(oldFeed.some((e) => e.call_id === null), 'presence events to age out');

    // What stays: a call ended just inside the window (made before it), one ended now, one
    // ringing, and one ringing since long before the window.
    const inside = await endedCall(srv);
    const recent = await endedCall(srv);
    const live = (await srv.createCall(newCall(1))).call;
    const oldLive = (await srv.createCall(newCall(1))).call;
    const keptFeed = (await srv.allEvents(lastOldSeq));
    const insideTrail = (await srv.request('GET', `/v1/calls/${inside.id}/events`, { token: 'admin' })).body;
    await srv.stop({ keepDir: true });

    rawSql(srv, `UPDATE calls SET created_at = created_at - ${40 * DAY}, ended_at = ended_at - ${40 * DAY} WHERE id = @p1`, [old.id]);
    rawSql(srv, `UPDATE idempotency_keys SET created_at = created_at - ${40 * DAY} WHERE call_id = @p1`, [old.id]);
    rawSql(srv, `UPDATE events SET at = at - ${40 * DAY} WHERE seq <= ${lastOldSeq}`);
    rawSql(srv, `UPDATE webhooks SET received_at = received_at - ${40 * DAY} WHERE call_id IS NULL`);
    const insideEnd = RETENTION_DAYS * DAY - 3600000; // an hour inside the window
    rawSql(srv, `UPDATE calls SET created_at = created_at - ${40 * DAY}, ended_at = ended_at - ${insideEnd} WHERE id = @p1`, [inside.id]);
    rawSql(srv, `UPDATE calls SET created_at = created_at - ${40 * DAY} WHERE id = @p1`, [oldLive.id]);
    assert.equal(count(srv, 'SELECT count(*) FROM webhooks WHERE call_id = @p1', old.id), 1);
    assert.equal(count(srv, 'SELECT count(*) FROM participants WHERE call_id = @p1', old.id), 1);
    // SQLite's audit tables go by the call's rid, which the purge takes away with the call.
    const oldRid = BACKEND === 'sqlite' && rawSql(srv, 'SELECT rid FROM calls WHERE id = @p1', [old.id]).trim();
    if (BACKEND === 'sqlite') {
      for (const table of ['audit_events', 'audit_webhooks']) {
        assert.ok(count(srv, `SELECT count(*) FROM ${table} WHERE call_rid = @p1`, oldRid) > 0, table);
      }
    }

    srv = await startServer({ dir, secrets, env: { CALLSTATE_RING_TIMEOUT_S: '300', CALLSTATE_RETENTION_DAYS: String(RETENTION_DAYS) } });
    const [gone] = await pollUntil(async () => (await srv.request('GET', `/v1/calls/${old.id}`)).status === 404, 10000);
    assert.ok(gone, 'the old call is purged');
    assert.equal((await srv.request('GET', `/v1/calls/${old.id}/events`, { token: 'admin' })).status, 404);
    for (const id of [inside.id, recent.id, live.id, oldLive.id]) {
      assert.equal((await srv.request('GET', `/v1/calls/${id}`)).status, 200, `call ${id} is kept`);
    }
    assert.deepEqual((await srv.request('GET', `/v1/calls/${inside.id}/events`, { token: 'admin' })).body, insideTrail);

    // The feed: everything up to lastOldSeq is gone (the call's events and the presence
    // changes), everything after it is there as it was.
    const [feed] = await pollUntil(async () => {
      const all = await srv.allEvents();
      return all.every((e) => e.seq > lastOldSeq) && all;
    }, 10000);
    assert.ok(feed, 'old feed events are purged');
    assert.deepEqual(feed.map((e) => e.id), keptFeed.map((e) => e.id));

    for (const table of ['call_members', 'participants', 'events', 'webhooks', 'idempotency_keys']) {
      assert.equal(count(srv, `SELECT count(*) FROM ${table} WHERE call_id = @p1`, old.id), 0, table);
    }
    if (BACKEND === 'sqlite') {
      for (const table of ['audit_events', 'audit_webhooks']) {
        assert.equal(count(srv, `SELECT count(*) FROM ${table} WHERE call_rid = @p1`, oldRid), 0, table);
      }
    }
    assert.equal(Number(rawSql(srv, 'SELECT count(*) FROM webhooks WHERE call_id IS NULL').trim()), 0,
      'the webhook of a room no call owns ages out too');
    assert.equal(count(srv, 'SELECT count(*) FROM participants WHERE call_id = @p1', inside.id), 1);

    // The idempotency record went with its age: the same request makes a new call.
    const again = await srv.request('POST', '/v1/calls', {
      body: old.body, headers: { 'Content-Type': 'application/json', 'Idempotency-Key': old.key },
    });
    assert.equal(again.status, 201, again.text);
    assert.notEqual(again.body.call.id, old.id);

    const { text, purged } = await scrapePurged(srv);
    assert.equal(purged, 1);
    const promtool = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
    if (!promtool.error) assert.equal(promtool.status, 0, `promtool check metrics: ${promtool.stdout}${promtool.stderr}`);
    assert.match(srv.stderr, /msg="retention sweep" calls=1 /);
  });

  it('0 (the default) keeps everything', async () => {
    const own = await startServer({ env: { CALLSTATE_RETENTION_DAYS: '0' } });
    try {
      const c = await endedCall(own);
      await own.stop({ keepDir: true });
      rawSql(own, `UPDATE calls SET created_at = created_at - ${400 * DAY}, ended_at = ended_at - ${400 * DAY} WHERE id = @p1`, [c.id]);
      const again = await startServer({ dir: own.dir, secrets: own.secrets });
      try {
        await new Promise((resolve) => { setTimeout(resolve, 500); });
        assert.equal((await again.request('GET', `/v1/calls/${c.id}`)).status, 200);
        assert.equal((await scrapePurged(again)).purged, 0);
      } finally {
        await shutdown(again);
      }
    } finally {
      removeTmpDir(own.dir);
    }
  });
});

// The audit trail, GET /v1/calls/{id}/events (API.md "Calls" and "LiveKit webhooks"): every
// webhook of the call's room as received, and every transition with its cause (the API request
// with its X-Request-Id, the webhook with its event id, or the timer), in the order they
// happened; auth (admin only), unknown and malformed ids.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import {
  BACKEND, startServer, shutdown, assertError, newCall, pollUntil, makeTmpDir, RFC3339_MS,
} from './harness.js';
import { LkRoom, deliver } from './livekit-kit.js';

let srv;

before(async () => { srv = await startServer(); });
after(async () => { await shutdown(srv); });

async function audit(id, token = 'admin', server = srv) {
  return server.request('GET', `/v1/calls/${id}/events`, { token });
}

/** One line per entry: what the assertions compare. */
function summary(entries) {
  return entries.map((e) => (e.kind === 'webhook'
    ? `webhook ${e.event} ${e.webhook_id}`
    : `${e.type} v${e.call_version} by ${e.cause.source} ${e.cause.request_id ?? e.cause.webhook_id ?? ''}`.trimEnd()));
}

/** A one-to-one call through create, webhooks, accept, a duplicate webhook, leave and a late
 * leave, with a webhook of another room between. */
async function driveCall(server) {
  const req = newCall(1);
  const created = await server.createCall(req, { requestId: 'audit-create-1' });
  const c = created.call;
  const [alice, bob] = [req.caller, req.callees[0]];
  const room = new LkRoom(c.room);
  const t0 = Date.now();
  const sa = room.session(alice, t0);
  const joinA = room.joined(sa);
  await deliver(server, joinA);
  const r = await server.request('POST', `/v1/calls/${c.id}/accept`, { json: { user: bob }, requestId: 'audit-accept-1' });
  assert.equal(r.status, 200, r.text);
  const sb = room.session(bob, Date.now());
  const joinB = room.joined(sb);
  await deliver(server, joinB);
  const duplicate = await deliver(server, joinB); // stored once, shown once
  assert.equal(duplicate.status, 200);
  const leave = await server.request('POST', `/v1/calls/${c.id}/leave`, { json: { user: alice }, requestId: 'audit-leave-1' });
  assert.equal(leave.status, 200, leave.text);
  assert.equal(leave.body.status, 'ended');
  const leftB = room.left(sb, Date.now()); // after the end: a member leaving, no status change
  await deliver(server, leftB);
  const other = new LkRoom('not-a-call-room');
  await deliver(server, other.started(Date.now()));
  return { c, joinA, joinB, leftB };
}

describe('GET /v1/calls/{id}/events', () => {
  it('a call driven by requests and webhooks: each webhook raw, each transition with its cause, in order', async () => {
    const { c, joinA, joinB, leftB } = await driveCall(srv);
    const a = await audit(c.id);
    assert.equal(a.status, 200, a.text);
    assert.deepEqual(summary(a.body.events), [
      'call.ringing v1 by api audit-create-1',
      `webhook participant_joined ${joinA.id}`,
      `call.member_joined v2 by webhook ${joinA.id}`,
      'call.accepted v3 by api audit-accept-1',
      'call.active v4 by api audit-accept-1',
      `webhook participant_joined ${joinB.id}`,
      `call.member_joined v5 by webhook ${joinB.id}`,
      'call.ended v6 by api audit-leave-1',
      `webhook participant_left ${leftB.id}`,
      `call.member_left v7 by webhook ${leftB.id}`,
    ]);
    const events = a.body.events;
    const webhook = events.find((e) => e.webhook_id === joinA.id);
    assert.deepEqual(webhook.body, JSON.parse(joinA.body), 'the webhook body as received');
    assert.deepEqual(Object.keys(webhook).sort(), ['at', 'body', 'event', 'kind', 'webhook_id']);
    for (const e of events) assert.match(e.at, RFC3339_MS);
    const ended = events.find((e) => e.type === 'call.ended');
    assert.deepEqual(Object.keys(ended).sort(), ['at', 'call_version', 'cause', 'data', 'event_id', 'kind', 'seq', 'type']);
    assert.equal(ended.data.outcome, 'completed');
    assert.equal(ended.data.end_cause, 'leave');
    // The transitions are the feed's events of this call, with the same ids, seqs and data.
    const feed = (await srv.allEvents()).filter((e) => e.call_id === c.id);
    assert.deepEqual(events.filter((e) => e.kind === 'transition').map((e) => [e.event_id, e.seq, e.type, e.data]),
      feed.map((e) => [e.id, e.seq, e.type, e.data]));
  });

  it('a ring timeout is the timer\'s doing', async () => {
    const req = newCall(2, { ring_timeout_s: 5 });
    const { call } = await srv.createCall(req, { requestId: 'audit-create-2' });
    const d = await srv.request('POST', `/v1/calls/${call.id}/decline`, { json: { user: req.callees[0] }, requestId: 'audit-decline-2' });
    assert.equal(d.status, 200, d.text);
    // A read shows the call ended at its deadline; the trail once the timer thread wrote it.
    const [a] = await pollUntil(async () => {
      const got = await audit(call.id);
      assert.equal(got.status, 200, got.text);
      return got.body.events.length >= 4 && got;
    }, 9000, 200);
    assert.ok(a, 'the ring timeout ended the call');
    assert.deepEqual(summary(a.body.events), [
      'call.ringing v1 by api audit-create-2',
      'call.declined v2 by api audit-decline-2',
      'call.missed v3 by timer',
      'call.ended v4 by timer',
    ]);
    assert.equal(a.body.events.at(-1).data.outcome, 'missed');
  });

  it('the same trail after a restart, then read from the audit tables (SQLite: filled in bulk)', async () => {
    const dir = makeTmpDir();
    let own = await startServer({ dir });
    const { secrets } = own;
    try {
      const { c } = await driveCall(own);
      const before = await audit(c.id, 'admin', own);
      assert.equal(before.status, 200, before.text);
      await own.stop(); // a clean stop indexes what is left past the marks
      own = await startServer({ dir, secrets });
      const again = await audit(c.id, 'admin', own);
      assert.deepEqual(again.body, before.body);
      if (BACKEND === 'sqlite') {
        const db = path.join(dir, 'callstate.db');
        const q = (sql) => spawnSync('sqlite3', [db, sql], { encoding: 'utf8' }).stdout.trim();
        const transitions = before.body.events.filter((e) => e.kind === 'transition').length;
        const webhooks = before.body.events.filter((e) => e.kind === 'webhook').length;
        const rid = `(SELECT rid FROM calls WHERE id = '${c.id}')`;
        assert.equal(q(`SELECT count(*) FROM audit_events WHERE call_rid = ${rid}`), String(transitions));
        assert.equal(q(`SELECT count(*) FROM audit_webhooks WHERE call_rid = ${rid}`), String(webhooks));
        assert.equal(q('SELECT events_upto = (SELECT max(seq) FROM events) FROM audit_indexed'), '1');
      }
    } finally {
      await shutdown(own);
    }
  });

  // More than one chunk of the bulk indexing (SQLite indexes 512 seqs and 512 webhooks a
  // transaction): the trails are whole while the marks move, and after a clean stop every row
  // is in the audit tables.
  it('more rows than an indexing chunk: whole trails while indexed, and after a restart', async () => {
    const dir = makeTmpDir();
    let own = await startServer({ dir });
    const { secrets } = own;
    try {
      const calls = [];
      let next = 0;
      const CALLS = 280; // each: 2 webhooks and about 5 changes
      await Promise.all(Array.from({ length: 8 }, async () => {
        while (next < CALLS) {
          next += 1;
          const req = newCall(2, { ring_timeout_s: 300 });
          const { call } = await own.createCall(req);
          const room = new LkRoom(call.room);
          const s = room.session(req.callees[0], Date.now());
          for (const ev of [room.started(Date.now()), room.joined(s)]) assert.equal((await deliver(own, ev)).status, 200);
          const r = await own.request('POST', `/v1/calls/${call.id}/decline`, { json: { user: req.callees[1] } });
          assert.equal(r.status, 200, r.text);
          calls.push(call.id);
        }
      }));
      const trails = new Map();
      let transitions = 0;
      for (const id of calls) {
        const a = await audit(id, 'admin', own);
        assert.equal(a.body.events.filter((e) => e.kind === 'webhook').length, 2, `call ${id}: both webhooks`);
        const changes = a.body.events.filter((e) => e.kind === 'transition');
        assert.deepEqual(changes.map((e) => e.call_version), changes.map((_, i) => i + 1), `call ${id}: every change`);
        transitions += changes.length;
        trails.set(id, a.body);
      }
      assert.ok(transitions > 512 && calls.length * 2 > 512, `${transitions} changes and ${calls.length * 2} webhooks: more than a chunk each`);
      await own.stop();
      const db = path.join(dir, 'callstate.db');
      const q = (sql) => spawnSync('sqlite3', [db, sql], { encoding: 'utf8' }).stdout.trim();
      if (BACKEND === 'sqlite') {
        // Everything past the marks again, as far as a file from before the audit tables: the
        // restart indexes it in several chunks, and the reads meanwhile show it all.
        q('DELETE FROM audit_events; DELETE FROM audit_webhooks; UPDATE audit_indexed SET events_upto = 0, webhooks_upto = 0');
      }
      own = await startServer({ dir, secrets });
      for (const id of calls) assert.deepEqual((await audit(id, 'admin', own)).body, trails.get(id));
      await own.stop();
      own = await startServer({ dir, secrets });
      for (const id of calls) assert.deepEqual((await audit(id, 'admin', own)).body, trails.get(id));
      if (BACKEND === 'sqlite') {
        assert.equal(q('SELECT count(*) FROM audit_events'), String(transitions));
        assert.equal(q('SELECT count(*) FROM audit_webhooks'), String(calls.length * 2));
        assert.equal(q('SELECT events_upto = (SELECT max(seq) FROM events) AND webhooks_upto = (SELECT max(rowid) FROM webhooks) FROM audit_indexed'), '1');
      }
    } finally {
      await shutdown(own);
    }
  });

  // Each transition carries the whole call, sessions included, so the trail of a call with
  // many sessions is large: it is streamed with each stored body as its text, and the
  // server's memory grows by a few times the answer at most (a jansson tree of the answer
  // took ten times it). Memory is checked on builds without ASan, whose allocator keeps what
  // is freed.
  it('a long trail comes whole, and costs the server a few times its size in memory at most', async () => {
    const own = await startServer();
    try {
      const req = newCall(9, { ring_timeout_s: 300 });
      const { call } = await own.createCall(req);
      const room = new LkRoom(call.room, { creationMs: Date.now() - 600000 });
      const t0 = Date.now() - 500000;
      const users = [req.caller, ...req.callees];
      await Promise.all(users.map(async (user, u) => { // each member's sessions in turn
        for (let i = 0; i < 20; i++) {
          const s = room.session(user, t0 + (i * users.length + u) * 1000);
          for (const ev of [room.joined(s), room.left(s, s.joinedAtMs + 500)]) assert.equal((await deliver(own, ev)).status, 200);
        }
      }));
      const pid = own.child.pid;
      const peakKb = () => Number(/^VmHWM:\s+(\d+) kB/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))[1]);
      const before = peakKb();
      const a = await own.request('GET', `/v1/calls/${call.id}/events`, { token: 'admin', timeoutMs: 60000 });
      assert.equal(a.status, 200);
      assert.equal(a.body.events.filter((e) => e.kind === 'webhook').length, users.length * 40);
      const changes = a.body.events.filter((e) => e.kind === 'transition');
      assert.deepEqual(changes.map((e) => e.call_version), changes.map((_, i) => i + 1));
      assert.equal(changes.at(-1).data.participants.length, users.length * 20, 'the last change carries every session');
      assert.ok(a.text.length > 4e6, `a trail of ${a.text.length} bytes`);
      if (!fs.readFileSync(`/proc/${pid}/maps`, 'utf8').includes('libasan')) {
        const grew = (peakKb() - before) * 1024;
        assert.ok(grew < 5 * a.text.length, `peak memory grew by ${grew} bytes for an answer of ${a.text.length}`);
      }
    } finally {
      await shutdown(own);
    }
  });

  it('admin only; an unknown call is 404, a malformed id 400', async () => {
    const { call } = await srv.createCall(newCall(1));
    assertError(await audit(call.id, 'none'), 401, 'unauthorized');
    assertError(await audit(call.id, 'service'), 403, 'forbidden');
    assertError(await audit('01900000-0000-7000-8000-000000000000'), 404, 'not_found');
    assertError(await audit('nope'), 404, 'not_found');
    assertError(await audit('a%2Fb'), 400, 'bad_request');
    const wrong = await srv.request('POST', `/v1/calls/${call.id}/events`, { token: 'admin', json: {} });
    assert.equal(wrong.status, 405);
    assert.equal(wrong.headers.get('allow'), 'GET');
  });
});

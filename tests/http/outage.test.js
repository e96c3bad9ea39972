// PostgreSQL going away in the middle of a webhook burst (issue: "if PostgreSQL goes away,
// everything that needs it answers 503 ... and service resumes by itself when it is back, with
// no restart and no 2xx for anything not stored"). The server is stopped (fast: every
// connection cut) while signed webhooks keep arriving, then started again; callstate is never
// restarted. Every webhook answered 200 must be stored and applied; while the database is away
// the answers are 503 (so LiveKit retries) and /readyz is 503; once it is back, the refused
// deliveries are accepted. PostgreSQL only: the tools/pg.sh server of the test run is the one
// stopped, so the test needs CALLSTATE_TEST_PG_DIR (tools/test sets it).
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startServer, shutdown, newCall, BACKEND, rawSql, sleep, pollUntil } from './harness.js';
import { LkRoom, postWebhook, signWebhook } from './livekit-kit.js';

const PG_SH = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../tools/pg.sh');
const CALLS = 20;
const PAIRS = 300; // 600 webhooks
const CONNECTIONS = 16;

function pgServer(verb) {
  const r = spawnSync('bash', ['-c', `. "${PG_SH}" && pg_${verb}_server`],
    { env: { ...process.env, PG_DIR: process.env.CALLSTATE_TEST_PG_DIR, PG_PORT: process.env.CALLSTATE_TEST_PG_PORT }, encoding: 'utf8' });
  assert.equal(r.status, 0, `pg_${verb}_server: ${r.stderr}`);
}

const skip = BACKEND !== 'postgres' ? 'PostgreSQL only (the SQLite file has no server to lose)'
  : !process.env.CALLSTATE_TEST_PG_DIR ? 'needs CALLSTATE_TEST_PG_DIR: the test server to stop' : false;

describe('PostgreSQL restarted during a webhook burst', { skip }, () => {
  let srv;
  let down = false;
  after(async () => {
    if (down) pgServer('run');
    await shutdown(srv);
  });

  it('503 while it is away, service back by itself, no acknowledged event lost', async () => {
    srv = await startServer();
    const calls = [];
    for (let c = 0; c < CALLS; c++) {
      const req = newCall(1, { ring_timeout_s: 300 });
      calls.push({ req, call: (await srv.createCall(req)).call });
    }
    const t0 = Date.now() - 60000;
    const rooms = calls.map(({ call }) => new LkRoom(call.room, { creationMs: t0 }));
    const events = [];
    for (let p = 0; p < PAIRS; p++) {
      const c = p % CALLS;
      const s = rooms[c].session(calls[c].req.callees[0], t0 + p * 20);
      events.push({ ...rooms[c].joined(s), c, s });
      events.push({ ...rooms[c].left(s, s.joinedAtMs + 500), c, s });
    }
    await Promise.all(events.map(async (ev) => { ev.auth = await signWebhook(ev.body, srv.secrets.apiKey, srv.secrets.apiSecret); }));

    const acked = new Set();
    const statuses = new Map();
    let next = 0;
    const worker = async () => {
      while (next < events.length) {
        const i = next++;
        const r = await postWebhook(srv, events[i].body, events[i].auth);
        statuses.set(r.status, (statuses.get(r.status) || 0) + 1);
        if (r.status === 200) acked.add(i);
        else {
          assert.equal(r.status, 503, `only 503 while the database is away: ${r.status} ${r.text}`);
          assert.equal(r.body.error.code, 'unavailable');
        }
        if (i === 150) {
          pgServer('stop');
          down = true;
          assert.equal((await srv.request('GET', '/readyz', { token: 'none' })).status, 503, '/readyz while it is away');
          setTimeout(() => { pgServer('run'); down = false; }, 1500);
        }
      }
    };
    await Promise.all(Array.from({ length: CONNECTIONS }, worker));
    assert.ok((statuses.get(503) || 0) > 0, `some deliveries met the outage: ${JSON.stringify([...statuses])}`);

    // Back by itself: ready again, and LiveKit's retries of the refused ones are accepted.
    const [ready] = await pollUntil(async () => (await srv.request('GET', '/readyz', { token: 'none' })).status === 200, 15000, 100);
    assert.ok(ready, '/readyz is 200 again without a restart');
    for (let i = 0; i < events.length; i++) {
      if (acked.has(i)) continue;
      const r = await postWebhook(srv, events[i].body, events[i].auth);
      assert.equal(r.status, 200, `retry after the outage: ${r.status} ${r.text}`);
    }

    // Every event is stored once, and applied: each session is in its call.
    const stored = rawSql(srv, 'SELECT count(*) FROM webhooks').trim();
    assert.equal(Number(stored), events.length, 'each event stored once');
    for (let c = 0; c < CALLS; c++) {
      const got = await srv.getCall(calls[c].call.id);
      const sids = new Set(got.participants.map((p) => p.sid));
      for (const ev of events.filter((e) => e.c === c)) assert.ok(sids.has(ev.s.sid), `session ${ev.s.sid} applied`);
    }
    // The feed stayed whole: every seq once, in order.
    const feed = await srv.allEvents();
    for (let i = 1; i < feed.length; i++) assert.equal(feed[i].seq, feed[i - 1].seq + 1, 'no seq lost or repeated');
    assert.equal(srv.exit, null, 'callstate was never restarted');
  });
});

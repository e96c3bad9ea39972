// A full disk (API.md: "503 when storage is unavailable, so that LiveKit retries; never 2xx for
// an event that is not stored"): the database lives on a small tmpfs that fills up while signed
// webhooks arrive. Every 200 must be in the database, every refusal must be a 503 with nothing
// stored, and once there is room again the refused deliveries are accepted and applied.
// Mounting a tmpfs needs root (CI runs as root); elsewhere the test is skipped.
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { startServer, shutdown, makeTmpDir, removeTmpDir, newCall, BACKEND } from './harness.js';
import { LkRoom, postWebhook, signWebhook } from './livekit-kit.js';

const TMPFS_SIZE = '8m';
const CALLS = 10;
const EVENTS = 400;

function tryMount(dir) {
  if (BACKEND !== 'sqlite') return 'a SQLite file on a full disk; PostgreSQL going away is outage.test.js';
  if (process.getuid?.() !== 0) return 'needs root to mount a tmpfs';
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${TMPFS_SIZE}`, 'tmpfs', dir], { stdio: 'pipe' });
    return null;
  } catch (e) {
    return `cannot mount a tmpfs: ${e.message.split('\n')[0]}`;
  }
}

/** Fill the file system of dir until it refuses more; returns the filler's path. */
function fillUp(dir) {
  const filler = path.join(dir, 'filler');
  const fd = fs.openSync(filler, 'w');
  const chunk = Buffer.alloc(16384, 1);
  try {
    for (;;) fs.writeSync(fd, chunk);
  } catch (e) {
    assert.equal(e.code, 'ENOSPC', `filling up: ${e.message}`);
  } finally {
    fs.closeSync(fd);
  }
  return filler;
}

/** The ids among `ids` that the webhooks table holds, read straight from the database file. */
function storedIds(dbPath, ids) {
  const out = execFileSync('sqlite3', [dbPath, 'SELECT id FROM webhooks'], { encoding: 'utf8' });
  const have = new Set(out.split('\n').filter(Boolean));
  return new Set(ids.filter((id) => have.has(id)));
}

const mountDir = makeTmpDir();
const skip = tryMount(mountDir);

describe('storage full', { skip: skip ?? false }, () => {
  let srv;
  after(async () => {
    await shutdown(srv);
    try { execFileSync('umount', [mountDir], { stdio: 'pipe' }); } catch { /* not mounted */ }
    removeTmpDir(mountDir);
  });

  it('every 200 is stored, every refusal is a 503 with nothing stored, and a retry with room succeeds', async () => {
    srv = await startServer({ dir: mountDir });
    const calls = [];
    for (let i = 0; i < CALLS; i++) {
      const req = newCall(1, { ring_timeout_s: 300 });
      calls.push({ req, call: (await srv.createCall(req)).call });
    }
    const t0 = Date.now() - 60000;
    const rooms = calls.map(({ call }) => new LkRoom(call.room, { creationMs: t0 }));
    const events = [];
    for (let n = 0; n < EVENTS; n++) {
      const c = n % CALLS;
      const s = rooms[c].session(calls[c].req.caller, t0 + n);
      events.push({ ...rooms[c].joined(s), c, s });
    }
    await Promise.all(events.map(async (ev) => { ev.auth = await signWebhook(ev.body, srv.secrets.apiKey, srv.secrets.apiSecret); }));

    const filler = fillUp(mountDir);
    const acked = [];
    const refused = [];
    for (const ev of events) {
      const r = await postWebhook(srv, ev.body, ev.auth);
      if (r.status === 200) acked.push(ev);
      else {
        assert.equal(r.status, 503, `a full disk answers 503, got ${r.status} ${r.text}`);
        assert.equal(JSON.parse(r.text).error.code, 'unavailable');
        refused.push(ev);
      }
    }
    assert.ok(refused.length > 0, 'the disk filled up before the last webhook');

    const dbPath = path.join(mountDir, 'callstate.db');
    const ackedStored = storedIds(dbPath, acked.map((e) => e.id));
    assert.equal(ackedStored.size, acked.length, 'every acknowledged webhook is stored');
    assert.equal(storedIds(dbPath, refused.map((e) => e.id)).size, 0, 'no refused webhook is stored');

    // Room again: LiveKit's retries now succeed, and every session is in its call.
    fs.rmSync(filler);
    for (const ev of refused) {
      const r = await postWebhook(srv, ev.body, ev.auth);
      assert.equal(r.status, 200, `retry with room: ${r.status} ${r.text}`);
    }
    for (let c = 0; c < CALLS; c++) {
      const got = await srv.getCall(calls[c].call.id);
      const sids = new Set(got.participants.map((p) => p.sid));
      for (const ev of events.filter((e) => e.c === c)) assert.ok(sids.has(ev.s.sid), `session ${ev.s.sid} applied`);
    }
    assert.equal((await srv.request('GET', '/readyz')).status, 200, 'ready again');
  });
});

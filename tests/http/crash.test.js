// Durability of webhooks (API.md: "200 once the event is durably stored and applied ... never
// 2xx for an event that is not stored"): a burst of distinct signed webhooks over many
// connections, `kill -9` in the middle of it, a restart on the same database, and then every
// webhook that got its 200 before the kill must be there and applied; re-sending one is a
// duplicate that changes nothing, and the rest, sent now, complete the picture.
//
// The same with a power cut (SQLite): the server runs with tests/powercut/powercut.c preloaded,
// which keeps beside each database file a copy of only what was fsync'd; after the kill the
// restart is on those copies, as after a power cut, so a 200 sent before its event reached the
// disk shows as a missing event.
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import {
  startServer, shutdown, makeTmpDir, removeTmpDir, makeSecrets, newCall, assertCallShape, assertFeed, ms, sleep, pollUntil, rawSql, BACKEND,
} from './harness.js';
import { LkRoom, postWebhook, signWebhook } from './livekit-kit.js';

const CALLS = 100;
const PAIRS = 2000; // participant_joined + participant_left each: 4000 webhooks
const CONNECTIONS = 48; // below the server's 64 worker threads
// Acknowledged webhooks before the kill. The power cut comes sooner: the checkpointer syncs the
// WAL too, every 1000 pages (about 200 webhooks), which would hide a 200 sent before its own
// sync in all but the last few events before the cut.
const KILL_AFTER = { kill: 1200, powerCut: 150 };
const iso = (t) => new Date(t).toISOString();

/** Send events[i] for every i in idx over `conc` concurrent connections; stop() ends early. */
async function burst(srv, events, idx, conc, onAck = () => {}, stop = () => false) {
  const acked = new Set();
  const errors = [];
  const statuses = [];
  let next = 0;
  const worker = async () => {
    while (next < idx.length && !stop()) {
      const i = idx[next++];
      try {
        const r = await postWebhook(srv, events[i].body, events[i].auth);
        if (r.status === 200) {
          acked.add(i);
          onAck(acked.size);
        } else {
          statuses.push(`${events[i].label}: ${r.status} ${r.text}`);
        }
      } catch (e) {
        errors.push({ i, stopped: stop(), message: e.cause?.code || e.message });
      }
    }
  };
  await Promise.all(Array.from({ length: conc }, worker));
  return { acked, errors, statuses, sent: next };
}

const POWERCUT_LIB = process.env.CALLSTATE_POWERCUT_LIB;
const DB_FILES = ['callstate.db', 'callstate.db-wal'];

/** The server's environment under the power-cut library (ASan, when built in, is loaded by the
 * binary itself, after the preloaded library). */
function powerCutEnv(dir) {
  return { LD_PRELOAD: POWERCUT_LIB, POWERCUT_DIR: dir, ASAN_OPTIONS: 'verify_asan_link_order=0' };
}

/** What the disk would hold after a power cut: each database file as far as it was synced. */
function cutPower(dir) {
  for (const f of DB_FILES) {
    const durable = path.join(dir, `${f}.durable`);
    if (fs.existsSync(durable)) fs.renameSync(durable, path.join(dir, f));
    else fs.rmSync(path.join(dir, f), { force: true });
  }
  fs.rmSync(path.join(dir, 'callstate.db-shm'), { force: true });
}

/** A directory for a server and the one restarted on its files, both stopped after the suite. */
function restartPair() {
  const pair = { dir: makeTmpDir(), secrets: makeSecrets(), first: null, second: null };
  after(async () => {
    if (pair.first && !pair.first.exit) await pair.first.kill();
    await shutdown(pair.second);
    removeTmpDir(pair.dir);
  });
  return pair;
}

/** The first server of pair under the power-cut library (extra variables in env), and a call of
 * two members whose room began a minute ago. */
async function callOnPowerCutDisk(pair, env) {
  const srv = pair.first = await startServer({ dir: pair.dir, secrets: pair.secrets, env: { ...powerCutEnv(pair.dir), ...env } });
  const req = newCall(2, { ring_timeout_s: 300 });
  const { call } = await srv.createCall(req);
  const t0 = Date.now() - 60000;
  return { srv, req, call, room: new LkRoom(call.room, { creationMs: t0 }), t0 };
}

function killMidBurst(title, { powerCut }) {
  const killAfter = powerCut ? KILL_AFTER.powerCut : KILL_AFTER.kill;
  const pair = restartPair();
  const { dir, secrets } = pair;

  it(title, async () => {
    const srv = pair.first = await startServer({ dir, secrets, env: powerCut ? powerCutEnv(dir) : {} });
    const calls = [];
    for (let k = 0; k < CALLS; k += 20) {
      calls.push(...(await Promise.all(Array.from({ length: 20 }, async () => {
        const req = newCall(2, { ring_timeout_s: 300 });
        return { req, call: (await srv.createCall(req)).call };
      }))));
    }
    // The events: pair p is one session of one member of call p % CALLS, joined then left.
    const t0 = Date.now() - 120000;
    const rooms = calls.map(({ call }) => new LkRoom(call.room, { creationMs: t0 }));
    const events = [];
    for (let p = 0; p < PAIRS; p++) {
      const c = p % CALLS;
      const users = [calls[c].req.caller, ...calls[c].req.callees];
      const s = rooms[c].session(users[Math.floor(p / CALLS) % users.length], t0 + p * 37);
      const leftAt = s.joinedAtMs + 1500;
      events.push({ ...rooms[c].joined(s), kind: 'joined', c, s });
      events.push({ ...rooms[c].left(s, leftAt), kind: 'left', c, s, leftAt });
    }
    await Promise.all(events.map(async (ev) => { ev.auth = await signWebhook(ev.body, secrets.apiKey, secrets.apiSecret); }));
    assert.equal(new Set(events.map((e) => e.id)).size, events.length, 'distinct event ids');

    // The burst, and the kill once KILL_AFTER are acknowledged.
    let killedAt = null;
    const all = events.map((_, i) => i);
    const first = await burst(srv, events, all, CONNECTIONS, (n) => {
      if (n >= killAfter && killedAt === null) {
        killedAt = Date.now();
        srv.child.kill('SIGKILL');
      }
    }, () => killedAt !== null);
    await srv.exited;
    assert.equal(srv.exit.signal, 'SIGKILL', 'the server was killed');
    assert.deepEqual(first.statuses, [], 'nothing but 200 before the kill');
    assert.deepEqual(first.errors.filter((e) => !e.stopped), [], 'no failed request before the kill');
    assert.ok(first.acked.size >= killAfter, `${first.acked.size} acknowledged`);
    const unacked = all.filter((i) => !first.acked.has(i));
    assert.ok(unacked.length > 0, 'the kill came in the middle of the burst');
    if (powerCut) {
      assert.ok(fs.existsSync(path.join(dir, 'callstate.db-wal.durable')), 'the power-cut library saw the WAL synced');
      cutPower(dir);
    }

    // Restart on the same database.
    const srv2 = pair.second = await startServer({ dir, secrets });
    const byId = async () => new Map(await Promise.all(calls.map(async ({ call }) => [call.id, assertCallShape(await srv2.getCall(call.id))])));
    let now = await byId();
    const missing = [];
    for (const i of first.acked) {
      const ev = events[i];
      const c = now.get(calls[ev.c].call.id);
      const part = c.participants.find((x) => x.sid === ev.s.sid);
      if (!part || part.joined_at !== iso(ev.s.joinedAtMs) || (ev.kind === 'left' && part.left_at !== iso(Math.max(Math.floor(ev.leftAt / 1000) * 1000, ev.s.joinedAtMs)))) {
        missing.push(`${ev.label} → ${JSON.stringify(part)}`);
      }
    }
    assert.deepEqual(missing.slice(0, 10), [], `${missing.length} of ${first.acked.size} acknowledged webhooks are missing after the restart`);
    // Members' room state still agrees with their sessions.
    for (const c of now.values()) {
      assert.equal(new Set(c.participants.map((x) => x.sid)).size, c.participants.length, 'no session twice');
      for (const m of c.members) {
        const mine = c.participants.filter((x) => x.user === m.user && x.joined_at);
        assert.equal(m.in_room, mine.some((x) => x.left_at === null), `${c.id} ${m.user} in_room`);
        const firsts = mine.map((x) => ms(x.joined_at));
        assert.equal(m.first_joined_at, firsts.length ? iso(Math.min(...firsts)) : null, `${c.id} ${m.user} first_joined_at`);
      }
    }

    // Re-sending what was acknowledged: duplicates, nothing changes, nothing appended.
    const feedBefore = await srv2.allEvents(0);
    const again = await burst(srv2, events, [...first.acked], CONNECTIONS);
    assert.deepEqual([again.statuses, again.errors.slice(0, 5)], [[], []], `${again.errors.length} failed`);
    assert.equal(again.acked.size, first.acked.size);
    assert.deepEqual(await byId(), now, 'duplicates change no call');
    assert.deepEqual((await srv2.allEvents(feedBefore.at(-1)?.seq ?? 0)), [], 'duplicates append no event');

    // The rest, sent now (LiveKit retries what got no answer): everything is there.
    const rest = await burst(srv2, events, unacked, CONNECTIONS);
    assert.equal(srv2.exit, null, `the restarted server is still up; stderr tail:\n${srv2.stderr.slice(-1500)}`);
    assert.deepEqual([rest.statuses, rest.errors.slice(0, 5)], [[], []], `${rest.errors.length} failed`);
    now = await byId();
    for (const [i, ev] of events.entries()) {
      const part = now.get(calls[ev.c].call.id).participants.find((x) => x.sid === ev.s.sid);
      assert.ok(part && part.left_at !== null, `event ${i} (${ev.label}) applied`);
    }
    assert.equal([...now.values()].reduce((n, c) => n + c.participants.length, 0), PAIRS, 'one participant entry per session');
    assertFeed(await srv2.allEvents(0));
  });
}

describe('kill -9 in the middle of a webhook burst', () => {
  killMidBurst('every webhook acknowledged before the kill is stored and applied after the restart', { powerCut: false });
});

describe('an fdatasync of the WAL that fails', { skip: BACKEND !== 'sqlite' || !POWERCUT_LIB }, () => {
  const pair = restartPair();
  const { dir, secrets } = pair;
  const failFile = path.join(dir, 'fail-sync');

  it('answers 503 and fails readiness from then on; a restart has every acknowledged event', async () => {
    const { srv, req, call, room, t0 } = await callOnPowerCutDisk(pair, { POWERCUT_FAIL_FILE: failFile });
    const s1 = room.session(req.callees[0], t0 + 1000);
    const s2 = room.session(req.caller, t0 + 2000);
    const first = room.joined(s1);
    const second = room.joined(s2);
    const send = async (ev) => postWebhook(srv, ev.body, await signWebhook(ev.body, secrets.apiKey, secrets.apiSecret));
    assert.equal((await send(first)).status, 200, 'before the disk fails');

    fs.writeFileSync(failFile, '');
    for (let i = 0; i < 2; i++) {
      const r = await send(second);
      assert.equal(r.status, 503, `try ${i + 1} once the sync failed: ${r.text}`);
    }
    fs.rmSync(failFile);
    const retried = await send(second);
    assert.equal(retried.status, 503, 'a failed fdatasync is never retried: the storage stays refused until a restart');
    assert.equal((await srv.request('GET', '/readyz', { token: 'none' })).status, 503, 'not ready');
    assert.match(srv.stderr, /fdatasync of the sqlite WAL failed/);

    srv.child.kill('SIGKILL');
    await srv.exited;
    cutPower(dir);
    const srv2 = pair.second = await startServer({ dir, secrets });
    const sessions = () => srv2.getCall(call.id).then((c) => c.participants.map((p) => p.sid));
    assert.deepEqual(await sessions(), [s1.sid], 'the acknowledged join is there, the refused one is not');
    assert.equal((await postWebhook(srv2, second.body, await signWebhook(second.body, secrets.apiKey, secrets.apiSecret))).status, 200);
    assert.deepEqual((await sessions()).sort(), [s1.sid, s2.sid].sort(), 'the retried join is applied');
  });
});

// The writer hands a batch to the syncer only once it has committed: a sync that began before the
// commit's frames were written must release nothing of it (the burst above would see that only
// if the cut fell in that gap). Here the commit is held in its writes while the syncer is free.
describe('a commit held in its writes', { skip: BACKEND !== 'sqlite' || !POWERCUT_LIB }, () => {
  const pair = restartPair();
  const { dir, secrets } = pair;
  const holdFile = path.join(dir, 'hold-writes');

  it('answers nothing until the commit is written and synced; after a power cut the 200 is stored', async () => {
    const { srv, req, call, room, t0 } = await callOnPowerCutDisk(pair, { POWERCUT_WRITE_STALL_FILE: holdFile });
    const s1 = room.session(req.callees[0], t0 + 1000);
    const joined = room.joined(s1);
    const auth = await signWebhook(joined.body, secrets.apiKey, secrets.apiSecret);

    fs.writeFileSync(holdFile, '');
    let status = null;
    const answer = postWebhook(srv, joined.body, auth).then((r) => { status = r.status; return r; });
    await sleep(1500);
    assert.equal(status, null, 'no answer while the commit\'s frames are not written');
    fs.rmSync(holdFile);
    assert.equal((await answer).status, 200, 'answered once written and synced');

    srv.child.kill('SIGKILL');
    await srv.exited;
    cutPower(dir);
    const srv2 = pair.second = await startServer({ dir, secrets });
    assert.deepEqual((await srv2.getCall(call.id)).participants.map((p) => p.sid), [s1.sid], 'the acknowledged join is on the disk');
  });
});

// A checkpoint copies frames of the WAL into the database file and syncs it. A frame the WAL's
// fdatasync has not made durable must never get there first: a power cut would take it out of the
// WAL and leave it in the database, part of a transaction nobody was answered for (only the pages
// the checkpoint copied). The checkpointer syncs the WAL before it copies (its connection is at
// synchronous=FULL), so while the WAL's syncs hang, no checkpoint copies anything.
describe('a checkpoint while the WAL\'s fdatasync hangs', { skip: BACKEND !== 'sqlite' || !POWERCUT_LIB }, () => {
  const pair = restartPair();
  const { dir, secrets } = pair;
  const stallFile = path.join(dir, 'stall-wal-syncs');
  /** Whether the database file as the disk holds it, read alone (no WAL), has the webhook. */
  const inDatabaseFile = (ev) => {
    const durable = path.join(dir, 'callstate.db.durable');
    if (!fs.existsSync(durable)) return false;
    const alone = fs.mkdtempSync(path.join(dir, 'alone-'));
    fs.copyFileSync(durable, path.join(alone, 'callstate.db'));
    const r = spawnSync('sqlite3', ['-bail', path.join(alone, 'callstate.db'), `SELECT count(*) FROM webhooks WHERE id = '${ev.id}'`], { encoding: 'utf8' });
    fs.rmSync(alone, { recursive: true, force: true });
    if (/no such table: webhooks/.test(r.stderr)) return false; // no checkpoint since the migrations
    assert.equal(r.status, 0, `sqlite3: ${r.stderr}`);
    return r.stdout.trim() === '1';
  };

  it('copies nothing unacknowledged into the database file; after a power cut the acknowledged join is stored', async () => {
    const { srv, req, call, room, t0 } = await callOnPowerCutDisk(pair, { POWERCUT_WAL_STALL_FILE: stallFile });
    const s1 = room.session(req.callees[0], t0 + 1000);
    const first = room.joined(s1);
    // The other two are of a room no call owns: stored, but with nothing for the audit trail, whose
    // indexing the checkpointer runs before its checkpoint and which would wait for the sync too.
    const elsewhere = new LkRoom(`no-call-${s1.sid}`, { creationMs: t0 });
    const [restarting, unanswered] = [2000, 3000].map((at, i) => elsewhere.joined(elsewhere.session(req.callees[i], t0 + at)));
    const sign = (ev) => signWebhook(ev.body, secrets.apiKey, secrets.apiSecret);
    assert.equal((await postWebhook(srv, first.body, await sign(first))).status, 200);
    // The checkpointer (once a second at least) copies it into the database file and syncs it.
    const [copied] = await pollUntil(() => inDatabaseFile(first), 10000, 200);
    assert.ok(copied, 'the acknowledged join reached the database file');
    // A commit after a complete checkpoint starts the WAL over and syncs its new header, which
    // the stall would hold: `restarting` does that first, and `unanswered` then appends.
    const unansweredAuth = await sign(unanswered);
    assert.equal((await postWebhook(srv, restarting.body, await sign(restarting))).status, 200);
    fs.writeFileSync(stallFile, '');
    let status = null;
    postWebhook(srv, unanswered.body, unansweredAuth).then((r) => { status = r.status; }, () => {});
    await sleep(3000); // three of the checkpointer's rounds, the webhook committed into the WAL
    assert.equal(status, null, 'no answer while the WAL\'s sync hangs');
    srv.child.kill('SIGKILL');
    await srv.exited;
    assert.equal(inDatabaseFile(unanswered), false, 'the unanswered webhook is not in the database file');

    cutPower(dir);
    const srv2 = pair.second = await startServer({ dir, secrets });
    assert.deepEqual((await srv2.getCall(call.id)).participants.map((p) => p.sid), [s1.sid], 'the acknowledged join is there');
    assert.equal(rawSql(srv2, 'SELECT count(*) FROM webhooks WHERE id = @p1', [unanswered.id]).trim(), '0', 'the unanswered webhook is not');
  });
});

describe('a power cut in the middle of a webhook burst', { skip: BACKEND !== 'sqlite' || !POWERCUT_LIB }, () => {
  killMidBurst('every webhook acknowledged before the cut is on the disk and applied after the restart', { powerCut: true });
});

// The database's files deleted (rm, the directory gone) or replaced (a restore renamed over
// them) under a running server: its descriptors still take writes, into files that a restart
// would not find, so nothing may be answered as stored from then on.
describe('the database files deleted or replaced under the server', { skip: BACKEND !== 'sqlite' }, () => {
  const servers = [];
  after(async () => { for (const s of servers) await shutdown(s); });

  for (const [how, change] of [
    ['deleted', (db) => { for (const f of [db, `${db}-wal`, `${db}-shm`]) fs.rmSync(f, { force: true }); }],
    ['replaced by a copy', (db) => { fs.copyFileSync(db, `${db}.copy`); fs.renameSync(`${db}.copy`, db); }],
  ]) {
    it(`${how}: 503 and not ready from then on, never a 2xx for what went into them`, async () => {
      const srv = await startServer();
      servers.push(srv);
      const db = path.join(srv.dir, 'callstate.db');
      const req = newCall(1, { ring_timeout_s: 300 });
      const { call } = await srv.createCall(req);
      const room = new LkRoom(call.room, { creationMs: Date.now() - 60000 });
      const joined = room.joined(room.session(req.callees[0], Date.now() - 1000));
      change(db);
      for (let i = 0; i < 3; i++) {
        const created = await srv.svc('POST', '/v1/calls', newCall(1));
        assert.equal(created.status, 503, `a create after the files were ${how}: ${created.text}`);
        const hook = await postWebhook(srv, joined.body, await signWebhook(joined.body, srv.secrets.apiKey, srv.secrets.apiSecret));
        assert.equal(hook.status, 503, `a webhook after the files were ${how}: ${hook.text}`);
      }
      assert.equal((await srv.request('GET', '/readyz', { token: 'none' })).status, 503, 'not ready');
      assert.match(srv.stderr, /the sqlite database or its WAL was deleted or replaced/);
    });
  }
});

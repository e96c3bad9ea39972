// Erasure, DELETE /v1/users/{user}/data (API.md "Users"): the user's presence is deleted and,
// in every call, their id, name and participant metadata become their pseudonym
// erased:<16 hex of HMAC-SHA256(LIVEKIT_API_SECRET, "erase:" + user)>, in the stored call, its
// feed events, its audit trail (the LiveKit webhook bodies as stored) and their presence events;
// nothing of them is left in the database file (SQLite: the .db and -wal files; PostgreSQL:
// the live rows of every table). Admin only; a repeat changes nothing.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { BACKEND, startServer, shutdown, assertError, uid, dbUrlFor } from './harness.js';
import { LkRoom, deliver } from './livekit-kit.js';

let srv;

before(async () => { srv = await startServer(); });
after(async () => { await shutdown(srv); });

function pseudonymOf(user) {
  return 'erased:' + createHmac('sha256', srv.secrets.apiSecret).update('erase:' + user).digest('hex').slice(0, 16);
}

async function erase(user, token = 'admin') {
  return srv.request('DELETE', `/v1/users/${encodeURIComponent(user)}/data`, { token });
}

/** Everything the database holds, as text: SQLite's files byte for byte, PostgreSQL's live rows. */
function databaseText() {
  if (BACKEND === 'sqlite') {
    const db = path.join(srv.dir, 'callstate.db');
    return [db, db + '-wal'].filter((f) => fs.existsSync(f)).map((f) => fs.readFileSync(f).toString('latin1')).join('\n');
  }
  const url = dbUrlFor(srv.dir);
  const dump = spawnSync('pg_dump', ['--data-only', url], { encoding: 'utf8' });
  assert.equal(dump.status, 0, dump.stderr);
  // pg_dump writes bytea as hex: the webhook bodies are read back as text.
  const bodies = spawnSync('psql', [url, '-X', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-c',
    "SELECT convert_from(body, 'UTF8') FROM webhooks"], { encoding: 'utf8' });
  assert.equal(bodies.status, 0, bodies.stderr);
  return dump.stdout + '\n' + bodies.stdout;
}

function assertNoTrace(text, what, user, name) {
  assert.ok(!text.includes(user), `${what}: the user id ${user} is gone`);
  assert.ok(!text.includes(name), `${what}: the user's name is gone`);
}

describe('DELETE /v1/users/{user}/data', () => {
  it('admin only', async () => {
    const user = uid('nobody');
    assertError(await erase(user, 'none'), 401, 'unauthorized');
    assertError(await erase(user, 'service'), 403, 'forbidden');
    const r = await erase(user);
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.body, { calls_updated: 0 });
    assertError(await srv.request('DELETE', '/v1/users/a%00b/data', { token: 'admin' }), 400, 'bad_request');
  });

  it('a user in three calls: pseudonymised everywhere, nothing left in the database, stable', async () => {
    const user = uid('erasee');
    const name = `Erin ${uid('name')}`;
    const near = user.slice(0, -3); // a substring of the erased id: another user, untouched
    const other = uid('other');
    const pseudonym = pseudonymOf(user);

    // 1: the user calls `near`, with a name and an idempotency key. The metadata makes the
    // view longer than a page: each rewrite frees overflow pages, which SQLite would leave as
    // they were without secure_delete.
    const c1 = (await srv.createCall({ caller: user, caller_name: name, callees: [near], kind: 'audio', metadata: { topic: 'plans', owner: user, pad: 'p'.repeat(3800) } },
      { headers: { 'Idempotency-Key': 'erase-1' } })).call;
    // 2: `other` calls the user and `near`; the user accepts with their name and joins the room.
    const c2 = (await srv.createCall({ caller: other, callees: [user, near], kind: 'video' })).call;
    const acc = await srv.svc('POST', `/v1/calls/${c2.id}/accept`, { user, name });
    assert.equal(acc.status, 200, acc.text);
    const room = new LkRoom(c2.room);
    const t0 = Date.now();
    const sOther = room.session(other, t0);
    const sUser = room.session(user, t0 + 1, { name });
    for (const ev of [room.joined(sOther), room.joined(sUser), room.left(sUser, Date.now())]) {
      const d = await deliver(srv, ev);
      assert.equal(d.status, 200, d.text);
    }
    // 3: `other` calls the user, who declines.
    const c3 = (await srv.createCall({ caller: other, callees: [user], kind: 'audio' })).call;
    assert.equal((await srv.svc('POST', `/v1/calls/${c3.id}/decline`, { user })).status, 200);
    // 4: a call of others only.
    const c4 = (await srv.createCall({ caller: other, callees: [near], kind: 'audio' })).call;
    for (const u of [user, near]) assert.equal((await srv.svc('PUT', `/v1/presence/${u}`, { status: 'online' })).status, 200);

    assert.ok(databaseText().includes(user), 'the database held the user before');
    const before4 = (await srv.svc('GET', `/v1/calls/${c4.id}`)).body;

    const r = await erase(user);
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.body, { calls_updated: 3 });

    for (const c of [c1, c2, c3]) {
      const got = await srv.svc('GET', `/v1/calls/${c.id}`);
      assert.equal(got.status, 200, got.text);
      const text = JSON.stringify(got.body);
      assertNoTrace(text, `call ${c.id}`, user, name);
      assert.ok(got.body.members.some((m) => m.user === pseudonym), `call ${c.id} shows the pseudonym`);
    }
    const g1 = (await srv.svc('GET', `/v1/calls/${c1.id}`)).body;
    assert.equal(g1.caller, pseudonym);
    assert.deepEqual(g1.members.map((m) => m.user), [pseudonym, near], 'the substring user is kept');
    assert.equal(g1.metadata.topic, 'plans', 'the call metadata is the call\'s');
    assert.equal(g1.metadata.owner, pseudonym, 'a metadata string that is the user id is replaced');
    const g2 = (await srv.svc('GET', `/v1/calls/${c2.id}`)).body;
    assert.deepEqual(g2.participants.map((p) => p.user).sort(), [other, pseudonym].sort());
    assert.deepEqual((await srv.svc('GET', `/v1/calls/${c4.id}`)).body, before4, 'a call without the user is unchanged');

    const pres = await srv.svc('GET', `/v1/presence?users=${encodeURIComponent(user)},${encodeURIComponent(near)}`);
    assert.equal(pres.status, 200, pres.text);
    assert.equal(pres.body.presence[0].status, 'offline', 'the chat-set status is deleted');
    assert.equal(pres.body.presence[1].status, 'online', 'the substring user keeps theirs');

    const feed = JSON.stringify(await srv.allEvents());
    assertNoTrace(feed, 'the feed', user, name);
    assert.ok(feed.includes(pseudonym), 'the feed names the pseudonym');
    assert.ok(feed.includes(`"user":"${near}"`), 'the substring user is still in the feed');
    const trail = await srv.request('GET', `/v1/calls/${c2.id}/events`, { token: 'admin' });
    assert.equal(trail.status, 200, trail.text);
    const webhooks = trail.body.events.filter((e) => e.kind === 'webhook');
    assert.equal(webhooks.length, 3);
    assertNoTrace(JSON.stringify(trail.body), 'the audit trail', user, name);
    const joined = webhooks.find((w) => w.body.participant?.sid === sUser.sid).body.participant;
    assert.deepEqual([joined.identity, joined.name, joined.metadata], [pseudonym, pseudonym, pseudonym]);
    const joinedOther = webhooks.find((w) => w.body.participant?.sid === sOther.sid).body.participant;
    assert.equal(joinedOther.identity, other, 'another participant is kept');

    assertNoTrace(databaseText(), BACKEND === 'sqlite' ? 'the .db and -wal files' : 'every live row', user, name);

    const again = await erase(user);
    assert.equal(again.status, 200, again.text);
    assert.deepEqual(again.body, { calls_updated: 0 }, 'a repeat finds nothing left');
    assert.equal((await srv.svc('GET', `/v1/calls/${c1.id}`)).body.caller, pseudonym, 'the same pseudonym');
  });

  // An id that is also a word the call uses (its kind), the chat's id, and another member's
  // display name: only the places that hold this user change.
  it('a user whose id is also a kind, a chat id and another person\'s name: only the user changes', async () => {
    const user = 'video';
    const peer = uid('peer');
    const pseudonym = pseudonymOf(user);
    const c = (await srv.createCall({ caller: user, callees: [peer], kind: 'video', chat_id: 'video' })).call;
    assert.equal((await srv.svc('POST', `/v1/calls/${c.id}/accept`, { user: peer, name: 'video' })).status, 200);
    const room = new LkRoom(c.room);
    const t0 = Date.now();
    const sUser = room.session(user, t0, { name: 'Vid Eo', attributes: { display: 'Vid Eo' } });
    const sPeer = room.session(peer, t0 + 1, { name: 'video', attributes: { display: 'video' } });
    for (const ev of [room.joined(sUser), room.joined(sPeer)]) {
      const d = await deliver(srv, ev);
      assert.equal(d.status, 200, d.text);
    }
    const r = await erase(user);
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.body, { calls_updated: 1 });

    const got = (await srv.svc('GET', `/v1/calls/${c.id}`)).body;
    assert.deepEqual([got.caller, got.kind, got.chat_id], [pseudonym, 'video', 'video']);
    const feed = (await srv.allEvents()).filter((e) => e.call_id === c.id);
    assert.ok(feed.length >= 4, 'ringing, accepted, active, joins');
    for (const e of feed) {
      assert.deepEqual([e.data.caller, e.data.kind, e.data.chat_id], [pseudonym, 'video', 'video'], `${e.type}: the feed agrees with the call`);
    }
    const trail = (await srv.request('GET', `/v1/calls/${c.id}/events`, { token: 'admin' })).body.events;
    const bodyOf = (sid) => trail.find((e) => e.kind === 'webhook' && e.body.participant?.sid === sid).body.participant;
    const pUser = bodyOf(sUser.sid);
    assert.deepEqual([pUser.identity, pUser.name, pUser.attributes], [pseudonym, pseudonym, {}], 'the user\'s attributes are emptied');
    const pPeer = bodyOf(sPeer.sid);
    assert.deepEqual([pPeer.identity, pPeer.name, pPeer.attributes], [peer, 'video', { display: 'video' }], 'the peer named "video" is kept');
    for (const e of trail.filter((t) => t.kind !== 'webhook')) assert.equal(e.data.kind, 'video', 'a transition keeps the call\'s kind');
  });

  it('a user in more calls than one transaction takes (16): every call, counted once', async () => {
    const user = uid('busy');
    const calls = [];
    for (let i = 0; i < 37; i++) {
      const req = i % 2 ? { caller: user, callees: [uid('peer')], kind: 'audio' } : { caller: uid('peer'), callees: [user], kind: 'audio' };
      calls.push((await srv.createCall(req)).call.id);
    }
    const r = await erase(user);
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.body, { calls_updated: 37 });
    const list = await srv.svc('GET', `/v1/users/${pseudonymOf(user)}/calls?limit=100`);
    assert.equal(list.status, 200, list.text);
    assert.deepEqual(list.body.calls.map((c) => c.id).sort(), calls.sort(), 'the history moved to the pseudonym');
    assert.equal((await srv.svc('GET', `/v1/users/${user}/calls`)).body.calls.length, 0);
  });
});

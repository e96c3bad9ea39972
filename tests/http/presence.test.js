// Presence (API.md "Presence"): PUT /v1/presence/{user} sets the chat status, GET /v1/presence
// reads up to 200 users in the order asked; while a member has an open LiveKit session in a
// call's room (from webhooks) they are in_call with the call's id, and their last chat status
// shows again when they leave. Every visible change (status or call_id) appends exactly one
// presence.changed event, with call_id and call_version null and the presence as data.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, shutdown, assertError, assertTime, assertFeed, newCall, uid, ms,
} from './harness.js';
import { LkRoom, FeedCursor, deliver } from './livekit-kit.js';

const PRESENCE_KEYS = ['call_id', 'since', 'status', 'user'];

let srv;
let cursor;
before(async () => {
  srv = await startServer();
  cursor = await new FeedCursor(srv).init();
});
after(async () => { await shutdown(srv); });

function assertPresence(p, user) {
  assert.deepEqual(Object.keys(p).sort(), PRESENCE_KEYS, `presence keys: ${JSON.stringify(p)}`);
  assert.equal(p.user, user);
  assert.ok(['online', 'away', 'offline', 'in_call'].includes(p.status), `status ${p.status}`);
  if (p.status === 'in_call') assert.equal(typeof p.call_id, 'string', 'in_call has a call_id');
  else assert.equal(p.call_id, null, 'call_id null unless in_call');
  if (p.since !== null) assertTime(p.since, 'since');
  return p;
}

/** GET /v1/presence with a raw query string; expects 200 and returns the list. */
async function getPresence(query) {
  const r = await getRaw(query);
  assert.equal(r.status, 200, `GET /v1/presence?${query.slice(0, 100)}… (${query.length} bytes of query): ${r.status} ${r.text.slice(0, 300)}`);
  assert.deepEqual(Object.keys(r.body), ['presence']);
  return r.body.presence;
}

/**
 * The harness's request() for any query, but with failure messages that do not quote a 26 KB
 * URL: the same checks (JSON body, X-Request-Id) made here with a short description.
 */
async function getRaw(query) {
  const res = await fetch(`${srv.base}/v1/presence?${query}`, {
    headers: { Authorization: `Bearer ${srv.secrets.serviceToken}` }, signal: AbortSignal.timeout(15000),
  });
  const text = await res.text();
  const what = `GET /v1/presence (${query.length} bytes of query) → ${res.status} ${text.slice(0, 200)}`;
  assert.ok(res.headers.get('x-request-id'), `missing X-Request-Id on ${what}`);
  let body;
  if ((res.headers.get('content-type') || '').startsWith('application/json')) body = JSON.parse(text);
  return { status: res.status, headers: res.headers, text, body };
}

const q = (users) => 'users=' + users.map(encodeURIComponent).join(',');
const qEach = (users) => users.map((u) => 'user=' + encodeURIComponent(u)).join('&');

async function presenceOf(users) {
  const list = await getPresence(qEach(users));
  assert.deepEqual(list.map((x) => x.user), users);
  return Object.fromEntries(list.map((x) => [x.user, assertPresence(x, x.user)]));
}

async function put(user, status, expectStatus = 200) {
  const r = await srv.svc('PUT', `/v1/presence/${encodeURIComponent(user)}`, { status });
  assert.equal(r.status, expectStatus, `PUT ${user} ${status}: ${r.status} ${r.text}`);
  return r.body;
}

/**
 * Run fn, then check that exactly the users whose visible presence (status, call_id) changed got
 * one presence.changed event each, whose data is their presence as GET shows it.
 */
async function presenceStep(users, fn, what) {
  await cursor.next();
  const before = await presenceOf(users);
  const ret = await fn();
  const after = await presenceOf(users);
  const evs = await cursor.next();
  const pres = evs.filter((e) => e.type === 'presence.changed' && users.includes(e.data?.user));
  const changed = users.filter((u) => before[u].status !== after[u].status || before[u].call_id !== after[u].call_id);
  assert.deepEqual(pres.map((e) => e.data.user).sort(), [...changed].sort(),
    `${what}: one presence.changed per visible change (before ${JSON.stringify(before)}, after ${JSON.stringify(after)})`);
  for (const e of pres) {
    assert.equal(e.call_id, null, 'presence.changed has call_id null');
    assert.equal(e.call_version, null, 'presence.changed has call_version null');
    assert.deepEqual(e.data, after[e.data.user], `${what}: presence.changed data is the presence after the change`);
  }
  return { before, after, ret, events: evs };
}

describe('PUT /v1/presence/{user} and GET /v1/presence', () => {
  it('unknown users are offline with since null', async () => {
    const u = uid('nobody');
    assert.deepEqual(await getPresence(q([u])), [{ user: u, status: 'offline', call_id: null, since: null }]);
  });

  it('PUT sets online, away, offline; GET answers the same; each change appends presence.changed', async () => {
    const u = uid('chat');
    for (const status of ['online', 'away', 'offline', 'online']) {
      const t0 = Date.now();
      const { ret, after } = await presenceStep([u], () => put(u, status), `PUT ${status}`);
      assertPresence(ret, u);
      assert.equal(ret.status, status);
      assert.equal(ret.call_id, null);
      assert.ok(Math.abs(ms(ret.since) - t0) < 2000, `since ${ret.since} is now`);
      assert.deepEqual(after[u], ret, 'GET answers what PUT answered');
    }
    // The same status again: no visible change, no event.
    const again = await presenceStep([u], () => put(u, 'online'), 'PUT online again');
    assert.equal(again.ret.status, 'online');
  });

  it('an admin token may set presence too', async () => {
    const u = uid('adm');
    const r = await srv.admin('PUT', `/v1/presence/${u}`, { status: 'away' });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body.status, 'away');
  });

  it('PUT validation: 400 naming status; 415; 401; bad user ids; nothing appended', async () => {
    const u = uid('val');
    await cursor.next();
    for (const body of [{ status: 'in_call' }, { status: 'ONLINE' }, { status: 'busy' }, { status: '' }, { status: 1 }, { status: null }, {}]) {
      assertError(await srv.svc('PUT', `/v1/presence/${u}`, body), 400, 'bad_request', 'status');
    }
    for (const raw of ['[]', '"online"', '{"status":', 'online']) {
      const r = await srv.request('PUT', `/v1/presence/${u}`, { body: raw, headers: { 'Content-Type': 'application/json' } });
      assertError(r, 400, 'bad_request');
    }
    assertError(await srv.request('PUT', `/v1/presence/${u}`, { body: '{"status":"online"}', headers: { 'Content-Type': 'text/plain' } }), 415, 'unsupported_media_type');
    assertError(await srv.request('PUT', `/v1/presence/${u}`, { json: { status: 'online' }, token: 'none' }), 401, 'unauthorized');
    assertError(await srv.request('PUT', `/v1/presence/${u}`, { json: { status: 'online' }, token: 'wrong-token' }), 401, 'unauthorized');
    assertError(await srv.svc('PUT', `/v1/presence/${'x'.repeat(129)}`, { status: 'online' }), 400, 'bad_request', 'user');
    assertError(await srv.svc('PUT', `/v1/presence/${encodeURIComponent('a\u0001b')}`, { status: 'online' }), 400, 'bad_request', 'user');
    assert.deepEqual(await getPresence(q([u])), [{ user: u, status: 'offline', call_id: null, since: null }], 'nothing was set');
    assert.deepEqual((await cursor.next()).filter((e) => e.type === 'presence.changed'), []);
  });

  it('GET keeps the order asked, mixes known and unknown users, and reads ids with commas from user=', async () => {
    const a = uid('ord');
    const b = uid('ord');
    const odd = [`x,${uid()}`, `${uid()}, y,z`, `é ü & = + ? # % ${uid()}`];
    await put(a, 'online');
    await put(b, 'away');
    for (const u of odd) await put(u, 'away');
    const unknown = uid('unk');
    const list = await getPresence(q([b, unknown, a]));
    assert.deepEqual(list.map((x) => [x.user, x.status]), [[b, 'away'], [unknown, 'offline'], [a, 'online']]);
    assert.equal(list[1].since, null);
    list.forEach((x) => assertPresence(x, x.user));
    const list2 = await getPresence(qEach([odd[2], a, odd[0], odd[1]]));
    assert.deepEqual(list2.map((x) => [x.user, x.status]), [[odd[2], 'away'], [a, 'online'], [odd[0], 'away'], [odd[1], 'away']]);
    // users= and user= together: every id asked, once each.
    const list3 = await getPresence(`${q([a, b])}&${qEach([odd[0]])}`);
    assert.deepEqual(list3.map((x) => x.user).sort(), [a, b, odd[0]].sort());
  });

  it('GET takes 200 users, even of 128 bytes each; 201 is 400 however they are asked', async () => {
    const short = Array.from({ length: 201 }, (_, i) => `p${i}-${uid()}`);
    let list = await getPresence(q(short.slice(0, 200)));
    assert.equal(list.length, 200);
    assert.deepEqual(list.map((x) => x.user), short.slice(0, 200));
    assertError(await getRaw(q(short)), 400, 'bad_request', 'user');
    assertError(await getRaw(qEach(short)), 400, 'bad_request', 'user');
    assertError(await getRaw(`${q(short.slice(0, 150))}&${qEach(short.slice(150))}`), 400, 'bad_request', 'user');
    // The longest legal request: 200 ids of 128 bytes.
    const long = Array.from({ length: 201 }, (_, i) => `${i}-`.padEnd(128, 'L'));
    list = await getPresence(q(long.slice(0, 200)));
    assert.deepEqual(list.map((x) => x.user), long.slice(0, 200), '200 ids of 128 bytes through users=');
    list = await getPresence(qEach(long.slice(0, 200)));
    assert.deepEqual(list.map((x) => x.user), long.slice(0, 200), '200 ids of 128 bytes through user=');
    assertError(await getRaw(qEach(long)), 400, 'bad_request', 'user');
    assertError(await getRaw(`${q(long.slice(0, 200))}&${qEach(long.slice(200))}`), 400, 'bad_request', 'user');
  });

  it('GET validation: no users, an empty entry, a bad id, no token', async () => {
    for (const query of ['', 'users=', 'users=a,,b', 'users=,a', `users=${'x'.repeat(129)}`, 'user=', `users=a%01b`, 'other=a']) {
      assertError(await srv.svc('GET', `/v1/presence?${query}`), 400, 'bad_request', 'user');
    }
    assertError(await srv.request('GET', '/v1/presence?users=a', { token: 'none' }), 401, 'unauthorized');
  });
});

describe('in_call from webhooks', () => {
  it('a member is in_call while in the room, their chat status shows again after; one event per visible change', async () => {
    const req = newCall(1);
    const { call } = await srv.createCall(req);
    const [a, b] = [req.caller, req.callees[0]];
    await put(a, 'online');
    await put(b, 'away');
    await cursor.next();
    const room = new LkRoom(call.room);
    const sA = room.session(a, Date.now());
    let st = await presenceStep([a, b], () => deliver(srv, room.joined(sA)), 'caller joins');
    assert.deepEqual({ ...st.after[a], since: null }, { user: a, status: 'in_call', call_id: call.id, since: null });
    assert.ok(ms(st.after[a].since) >= sA.joinedAtMs - 1000 && ms(st.after[a].since) <= Date.now(), 'in_call since about the join');
    assert.equal(st.after[b].status, 'away', 'the callee is not in the room yet');
    const sB = room.session(b, Date.now());
    st = await presenceStep([a, b], () => deliver(srv, room.joined(sB)), 'callee joins');
    assert.deepEqual([st.after[b].status, st.after[b].call_id], ['in_call', call.id]);
    // A chat status set during the call: in_call still wins, nothing visible changes.
    st = await presenceStep([a, b], () => put(a, 'away'), 'PUT away while in the call');
    assert.deepEqual([st.ret.status, st.ret.call_id], ['in_call', call.id], 'PUT answers the presence as it shows: in_call');
    // The callee leaves: the two-person call ends; the caller is still in its room.
    st = await presenceStep([a, b], () => deliver(srv, room.left(sB, Date.now())), 'callee leaves');
    assert.deepEqual([st.after[b].status, st.after[b].call_id], ['away', null], 'the callee\'s chat status shows again');
    assert.equal((await srv.getCall(call.id)).status, 'ended');
    assert.deepEqual([st.after[a].status, st.after[a].call_id], ['in_call', call.id], 'the caller is still in the room');
    st = await presenceStep([a, b], () => deliver(srv, room.left(sA, Date.now())), 'caller leaves');
    assert.deepEqual([st.after[a].status, st.after[a].call_id], ['away', null], 'the status set during the call shows');
    assert.notEqual(st.after[a].since, null);
  });

  it('a reconnect keeps in_call (same since, no event) until the last session closes', async () => {
    const req = newCall(2);
    const { call } = await srv.createCall(req);
    const [a, b] = [req.caller, req.callees[0]];
    await put(a, 'online');
    const room = new LkRoom(call.room);
    const t = Date.now();
    const s1 = room.session(a, t - 2000);
    const s2 = room.session(a, t - 1000);
    let st = await presenceStep([a], () => deliver(srv, room.joined(s1)), 'first session');
    const inCall = st.after[a];
    assert.equal(inCall.status, 'in_call');
    await deliver(srv, room.joined(room.session(b, t - 1500)));
    st = await presenceStep([a], () => deliver(srv, room.joined(s2)), 'second session (reconnect)');
    assert.deepEqual(st.after[a], inCall, 'nothing changes: same call, same since');
    st = await presenceStep([a], () => deliver(srv, room.left(s1, t, 'SIGNAL_CLOSE')), 'old session closes');
    assert.deepEqual(st.after[a], inCall, 'the newer session is open: still in_call, same since');
    st = await presenceStep([a], () => deliver(srv, room.left(s2, Date.now())), 'last session closes');
    assert.deepEqual([st.after[a].status, st.after[a].call_id], ['online', null]);
  });

  it('room_finished closes the sessions: presence goes back; an aborted connection never shows in_call', async () => {
    const req = newCall(1);
    const { call } = await srv.createCall(req);
    const [a, b] = [req.caller, req.callees[0]];
    await put(b, 'online');
    const room = new LkRoom(call.room);
    const st0 = await presenceStep([a, b], () => deliver(srv, room.aborted(room.session(b, Date.now()), Date.now())), 'callee aborted');
    assert.deepEqual(st0.after[b].status, 'online');
    await presenceStep([a, b], () => deliver(srv, room.joined(room.session(a, Date.now()))), 'caller joins');
    await presenceStep([a, b], () => deliver(srv, room.joined(room.session(b, Date.now()))), 'callee joins');
    const st = await presenceStep([a, b], () => deliver(srv, room.finished(Date.now(), 'ROOM_END_API_DELETE')), 'room_finished');
    assert.deepEqual([st.after[b].status, st.after[b].call_id], ['online', null]);
    // a never set a chat status: offline again once out of the room.
    assert.deepEqual([st.after[a].status, st.after[a].call_id], ['offline', null]);
  });

  it('in two calls\' rooms at once: in_call with the call still open, then back', async () => {
    const r1 = newCall(1);
    const { call: c1 } = await srv.createCall(r1);
    const u = r1.callees[0];
    const r2 = { ...newCall(1), callees: [u] };
    const { call: c2 } = await srv.createCall(r2);
    await put(u, 'online');
    const room1 = new LkRoom(c1.room);
    const room2 = new LkRoom(c2.room);
    const t = Date.now();
    const s1 = room1.session(u, t - 2000);
    const s2 = room2.session(u, t - 1000);
    await presenceStep([u], () => deliver(srv, room1.joined(s1)), 'joins call 1');
    await presenceStep([u], () => deliver(srv, room2.joined(s2)), 'joins call 2');
    let st = await presenceStep([u], () => deliver(srv, room2.left(s2, Date.now())), 'leaves call 2');
    assert.deepEqual([st.after[u].status, st.after[u].call_id], ['in_call', c1.id], 'still in call 1\'s room');
    st = await presenceStep([u], () => deliver(srv, room1.left(s1, Date.now())), 'leaves call 1');
    assert.deepEqual([st.after[u].status, st.after[u].call_id], ['online', null]);
  });

  it('identities that are not members of the call: their presence moves only with a presence.changed event', async () => {
    const req = newCall(1);
    const { call } = await srv.createCall(req);
    const stranger = uid('stranger');
    await put(stranger, 'online');
    const room = new LkRoom(call.room);
    const sX = room.session(stranger, Date.now());
    const sEg = room.session('EG_' + uid(), Date.now(), { kind: 'EGRESS', recorder: true, hidden: true });
    await presenceStep([stranger, sEg.identity], () => deliver(srv, room.joined(sX)), 'a non-member joins');
    await presenceStep([stranger, sEg.identity], () => deliver(srv, room.joined(sEg)), 'a recorder joins');
    await presenceStep([stranger, sEg.identity], () => deliver(srv, room.left(sX, Date.now())), 'the non-member leaves');
  });

  it('a member\'s identity joining as an agent or recorder (kind, permission) does not put them in_call', async () => {
    const req = newCall(1);
    const { call } = await srv.createCall(req);
    const b = req.callees[0];
    await put(b, 'online');
    const room = new LkRoom(call.room);
    const sAg = room.session(b, Date.now(), { kind: 'AGENT', agent: true });
    const st = await presenceStep([b], () => deliver(srv, room.joined(sAg)), 'agent with the callee\'s identity joins');
    assert.deepEqual([st.after[b].status, st.after[b].call_id], ['online', null], 'LIVEKIT.md §6.11: filter on kind');
    const c = await srv.getCall(call.id);
    assert.equal(c.status, 'ringing', 'an agent does not answer for the callee');
    assert.equal(c.members[1].in_room, false);
  });

  it('the whole feed is consistent', async () => {
    assertFeed(await srv.allEvents(0));
  });
});

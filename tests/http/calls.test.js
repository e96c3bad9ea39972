// Calls: creation (shape, ids, validation), auth, conventions (415/413/X-Request-Id/errors),
// the state machine over HTTP (one-to-one and group), and Idempotency-Key.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, shutdown, assertCallShape, assertError, assertTime, assertToken, member, invites,
  newCall, uid, ms, randomUUIDv7Like, UUID7, sleep,
} from './harness.js';

let srv;
before(async () => { srv = await startServer(); });
after(async () => { await shutdown(srv); });

describe('POST /v1/calls: create', () => {
  it('answers 201 {call, token, url, token_expires_at} with the call object of API.md', async () => {
    const req = {
      caller: uid('alice'), callees: [uid('bob')], kind: 'video', chat_id: 'chat-42',
      caller_name: 'Alice A.', metadata: { topic: 'standup', n: 3, nested: { ok: true } }, ring_timeout_s: 30,
    };
    const t0 = Date.now();
    const r = await srv.svc('POST', '/v1/calls', req);
    const t1 = Date.now();
    assert.equal(r.status, 201, r.text);
    assert.match(r.headers.get('content-type'), /^application\/json/);
    assert.deepEqual(Object.keys(r.body).sort(), ['call', 'token', 'token_expires_at', 'url']);
    const c = assertCallShape(r.body.call);
    assert.equal(c.kind, 'video');
    assert.equal(c.status, 'ringing');
    assert.equal(c.outcome, null);
    assert.equal(c.caller, req.caller);
    assert.equal(c.chat_id, 'chat-42');
    assert.deepEqual(c.metadata, req.metadata);
    const created = assertTime(c.created_at, 'created_at');
    assert.ok(created >= t0 - 1000 && created <= t1 + 1000, `created_at ${c.created_at} is now`);
    // UUIDv7: the 48-bit Unix ms timestamp of the id is the creation time.
    const idMs = parseInt(c.id.replace(/-/g, '').slice(0, 12), 16);
    assert.ok(Math.abs(idMs - created) < 1000, `id timestamp ${idMs} ~ created_at ${created}`);
    assert.equal(c.answered_at, null);
    assert.equal(c.ended_at, null);
    assert.equal(c.duration_ms, null);
    assert.equal(c.end_cause, null);
    assert.equal(c.room_end_reason, null);
    assert.deepEqual(c.participants, []);
    assert.equal(c.members.length, 2);
    const [cm, bm] = c.members;
    assert.deepEqual({ ...cm, responded_at: undefined }, {
      user: req.caller, role: 'caller', invite: 'accepted', in_room: false,
      responded_at: undefined, first_joined_at: null, last_left_at: null,
    });
    const callerResponded = assertTime(cm.responded_at, 'caller responded_at');
    assert.ok(callerResponded >= created && callerResponded - created < 1000, 'caller responded_at is the creation time');
    assert.deepEqual(bm, {
      user: req.callees[0], role: 'callee', invite: 'pending', in_room: false,
      responded_at: null, first_joined_at: null, last_left_at: null,
    });
    await assertToken(srv, r.body, { user: req.caller, name: 'Alice A.', room: c.room, kind: 'video', before: t0, after: t1 });
    // GET answers the same object.
    assert.deepEqual(await srv.getCall(c.id), c);
  });

  it('defaults: chat_id null, metadata {}, callees in the order given', async () => {
    const req = newCall(3);
    const { call } = await srv.createCall(req);
    assertCallShape(call);
    assert.equal(call.chat_id, null);
    assert.deepEqual(call.metadata, {});
    assert.equal(call.kind, 'audio');
    assert.deepEqual(call.members.map((m) => m.user), [req.caller, ...req.callees]);
    assert.deepEqual(call.members.map((m) => m.invite), ['accepted', 'pending', 'pending', 'pending']);
    assert.deepEqual(call.members.map((m) => m.role), ['caller', 'callee', 'callee', 'callee']);
  });

  it('ids are UUIDv7, strictly increasing across creations', async () => {
    const ids = [];
    for (let i = 0; i < 30; i++) ids.push((await srv.createCall(newCall(1))).call.id);
    // Some in parallel too: the counter must hold under concurrency.
    const par = await Promise.all(Array.from({ length: 20 }, () => srv.createCall(newCall(1))));
    for (const id of ids) assert.match(id, UUID7);
    for (let i = 1; i < ids.length; i++) assert.ok(ids[i] > ids[i - 1], `ids not increasing: ${ids[i - 1]} then ${ids[i]}`);
    const parIds = par.map((b) => b.call.id);
    assert.equal(new Set([...ids, ...parIds]).size, 50, 'ids are unique');
    for (const id of parIds) assert.ok(id > ids[ids.length - 1], 'later creations have larger ids');
  });

  it('accepts the limits: 32 callees, 128-byte ids (multibyte), ring_timeout_s 5 and 300, 4 KiB metadata', async () => {
    const caller = 'é'.repeat(64); // 128 bytes of UTF-8
    const callees = Array.from({ length: 32 }, (_, i) => `edge-${i}-${uid()}`);
    callees[31] = 'x'.repeat(128);
    let r = await srv.svc('POST', '/v1/calls', { caller, callees, kind: 'audio', ring_timeout_s: 5 });
    assert.equal(r.status, 201, r.text);
    assert.equal(r.body.call.members.length, 33);
    assert.equal(r.body.call.caller, caller);
    r = await srv.svc('POST', '/v1/calls', { ...newCall(1), ring_timeout_s: 300 });
    assert.equal(r.status, 201, r.text);
    const metadata = { pad: 'm'.repeat(4000) }; // 4011 bytes as JSON
    r = await srv.svc('POST', '/v1/calls', { ...newCall(1), metadata });
    assert.equal(r.status, 201, r.text);
    assert.deepEqual(r.body.call.metadata, metadata);
  });

  it('accepts application/json; charset=utf-8', async () => {
    const r = await srv.request('POST', '/v1/calls', {
      body: JSON.stringify(newCall(1)), headers: { 'Content-Type': 'application/json; charset=utf-8' },
    });
    assert.equal(r.status, 201, r.text);
  });

  describe('validation: 400 bad_request naming the field', () => {
    const ok = () => newCall(2);
    const cases = [
      ['caller empty', () => ({ ...ok(), caller: '' }), 'caller'],
      ['caller missing', () => { const b = ok(); delete b.caller; return b; }, 'caller'],
      ['caller 129 bytes', () => ({ ...ok(), caller: 'c'.repeat(129) }), 'caller'],
      ['caller 130 bytes of multibyte UTF-8', () => ({ ...ok(), caller: 'é'.repeat(65) }), 'caller'],
      ['caller with a control character', () => ({ ...ok(), caller: 'a\u0001b' }), 'caller'],
      ['caller with a C1 control character', () => ({ ...ok(), caller: 'a\u0085b' }), 'caller'],
      ['caller not a string', () => ({ ...ok(), caller: 42 }), 'caller'],
      ['callees empty', () => ({ ...ok(), callees: [] }), 'callees'],
      ['callees missing', () => { const b = ok(); delete b.callees; return b; }, 'callees'],
      ['33 callees', () => ({ ...ok(), callees: Array.from({ length: 33 }, () => uid()) }), 'callees'],
      ['duplicate callee', () => { const u = uid(); return { ...ok(), callees: [u, uid(), u] }; }, 'callees'],
      ['caller among callees', () => { const b = ok(); b.callees.push(b.caller); return b; }, 'callees'],
      ['callee empty', () => ({ ...ok(), callees: [uid(), ''] }), 'callees'],
      ['callee 129 bytes', () => ({ ...ok(), callees: [uid(), 'd'.repeat(129)] }), 'callees'],
      ['callee not a string', () => ({ ...ok(), callees: [uid(), 7] }), 'callees'],
      ['callees not an array', () => ({ ...ok(), callees: uid() }), 'callees'],
      ['unknown kind', () => ({ ...ok(), kind: 'screen' }), 'kind'],
      ['kind missing', () => { const b = ok(); delete b.kind; return b; }, 'kind'],
      ['kind upper case', () => ({ ...ok(), kind: 'AUDIO' }), 'kind'],
      ['kind not a string', () => ({ ...ok(), kind: 1 }), 'kind'],
      ['metadata an array', () => ({ ...ok(), metadata: [1, 2] }), 'metadata'],
      ['metadata a string', () => ({ ...ok(), metadata: '{"a":1}' }), 'metadata'],
      ['metadata over 4 KiB', () => ({ ...ok(), metadata: { pad: 'm'.repeat(4200) } }), 'metadata'],
      ['ring_timeout_s 4', () => ({ ...ok(), ring_timeout_s: 4 }), 'ring_timeout_s'],
      ['ring_timeout_s 301', () => ({ ...ok(), ring_timeout_s: 301 }), 'ring_timeout_s'],
      ['ring_timeout_s 0', () => ({ ...ok(), ring_timeout_s: 0 }), 'ring_timeout_s'],
      ['ring_timeout_s a string', () => ({ ...ok(), ring_timeout_s: '30' }), 'ring_timeout_s'],
      ['ring_timeout_s fractional', () => ({ ...ok(), ring_timeout_s: 30.5 }), 'ring_timeout_s'],
      ['chat_id not a string', () => ({ ...ok(), chat_id: 9 }), 'chat_id'],
      ['caller_name not a string', () => ({ ...ok(), caller_name: 9 }), 'caller_name'],
    ];
    for (const [name, make, field] of cases) {
      it(name, async () => {
        const r = await srv.svc('POST', '/v1/calls', make());
        assertError(r, 400, 'bad_request', field);
      });
    }
    for (const [name, raw] of [
      ['invalid JSON', '{"caller": "a", "callees": ['],
      ['a JSON array', '[]'],
      ['a JSON string', '"call"'],
      ['an empty body', ''],
      ['trailing garbage', '{"caller":"a","callees":["b"],"kind":"audio"} x'],
    ]) {
      it(name, async () => {
        const r = await srv.request('POST', '/v1/calls', { body: raw, headers: { 'Content-Type': 'application/json' } });
        assertError(r, 400, 'bad_request');
      });
    }
    it('no call is created by a rejected request', async () => {
      const caller = uid('rejected');
      const r = await srv.svc('POST', '/v1/calls', { caller, callees: [], kind: 'audio' });
      assertError(r, 400, 'bad_request', 'callees');
      const list = await srv.svc('GET', `/v1/users/${encodeURIComponent(caller)}/calls`);
      assert.equal(list.status, 200, list.text);
      assert.deepEqual(list.body.calls, []);
    });
  });

  it('415 unsupported_media_type for a body that is not JSON', async () => {
    for (const ct of ['text/plain', 'application/x-www-form-urlencoded', 'application/xml', 'application/jsonx',
      'application/json; charset=latin1', 'application/json;charset="ISO-8859-1"', 'application/json; charset=utf-16']) {
      const r = await srv.request('POST', '/v1/calls', { body: JSON.stringify(newCall(1)), headers: { 'Content-Type': ct } });
      assertError(r, 415, 'unsupported_media_type');
    }
    const r = await srv.request('POST', `/v1/calls/${randomUUIDv7Like()}/accept`, {
      body: JSON.stringify({ user: 'x' }), headers: { 'Content-Type': 'text/plain' },
    });
    assertError(r, 415, 'unsupported_media_type');
  });

  it('JSON in UTF-8: with or without its charset, in any case, with other parameters', async () => {
    for (const ct of ['application/json', 'APPLICATION/JSON', 'application/json; charset=utf-8', 'application/json;charset=UTF-8',
      'application/json; charset="utf-8"', 'application/json; charset=utf8', 'application/json ; v=1', 'application/json;']) {
      const r = await srv.request('POST', '/v1/calls', { body: JSON.stringify(newCall(1)), headers: { 'Content-Type': ct } });
      assert.equal(r.status, 201, `${ct}: ${r.text}`);
    }
  });

  it('413 payload_too_large over the default 64 KiB', async () => {
    const body = JSON.stringify({ ...newCall(1), chat_id: 'c', pad: 'p'.repeat(70000) });
    const r = await srv.request('POST', '/v1/calls', { body, headers: { 'Content-Type': 'application/json' } });
    assertError(r, 413, 'payload_too_large');
  });
});

describe('CALLSTATE_MAX_BODY_BYTES', () => {
  let small;
  before(async () => { small = await startServer({ env: { CALLSTATE_MAX_BODY_BYTES: 1024 } }); });
  after(async () => { await shutdown(small); });

  it('413 over the limit, 201 under it', async () => {
    const over = JSON.stringify({ ...newCall(1), metadata: { pad: 'p'.repeat(1100) } });
    assert.ok(Buffer.byteLength(over) > 1024);
    let r = await small.request('POST', '/v1/calls', { body: over, headers: { 'Content-Type': 'application/json' } });
    assertError(r, 413, 'payload_too_large');
    const under = JSON.stringify({ ...newCall(1), metadata: { pad: 'p'.repeat(700) } });
    assert.ok(Buffer.byteLength(under) < 1024);
    r = await small.request('POST', '/v1/calls', { body: under, headers: { 'Content-Type': 'application/json' } });
    assert.equal(r.status, 201, r.text);
    // The server still answers on a new connection afterwards.
    r = await small.request('GET', '/healthz', { token: 'none' });
    assert.equal(r.status, 200);
  });
});

describe('auth', () => {
  it('401 unauthorized without a token, with an unknown one, or with another scheme', async () => {
    const id = randomUUIDv7Like();
    const routes = [
      ['POST', '/v1/calls', newCall(1)],
      ['GET', `/v1/calls/${id}`],
      ['POST', `/v1/calls/${id}/accept`, { user: 'u' }],
      ['POST', `/v1/calls/${id}/decline`, { user: 'u' }],
      ['POST', `/v1/calls/${id}/token`, { user: 'u' }],
      ['POST', `/v1/calls/${id}/leave`, { user: 'u' }],
      ['POST', `/v1/calls/${id}/end`, { user: 'u' }],
      ['GET', '/v1/users/u/calls'],
      ['GET', '/v1/calls'],
      ['GET', '/v1/events?after=0'],
    ];
    for (const [m, p, json] of routes) {
      for (const token of ['none', 'not-a-known-token', `Basic ${Buffer.from('a:b').toString('base64')}`, `Bearer ${srv.secrets.serviceToken}x`, 'Bearer ']) {
        const r = await srv.request(m, p, { json, token });
        assertError(r, 401, 'unauthorized');
      }
    }
  });

  it('every service token of CALLSTATE_SERVICE_TOKENS works; the admin token works on service routes', async () => {
    let r = await srv.request('POST', '/v1/calls', { json: newCall(1), token: srv.secrets.serviceToken2 });
    assert.equal(r.status, 201, r.text);
    r = await srv.request('POST', '/v1/calls', { json: newCall(1), token: 'admin' });
    assert.equal(r.status, 201, r.text);
    r = await srv.request('GET', `/v1/calls/${r.body.call.id}`, { token: 'admin' });
    assert.equal(r.status, 200, r.text);
    r = await srv.request('GET', '/v1/events?after=0&limit=1', { token: 'admin' });
    assert.equal(r.status, 200, r.text);
  });

  it('403 forbidden: a service token on admin routes', async () => {
    const r = await srv.svc('GET', '/v1/calls');
    assertError(r, 403, 'forbidden');
    const r2 = await srv.svc('GET', '/v1/calls?status=ended');
    assertError(r2, 403, 'forbidden');
    const ok = await srv.admin('GET', '/v1/calls');
    assert.equal(ok.status, 200, ok.text);
  });

  it('health routes need no token', async () => {
    for (const p of ['/healthz', '/readyz']) {
      const r = await srv.request('GET', p, { token: 'none' });
      assert.equal(r.status, 200, `${p}: ${r.text}`);
    }
  });
});

describe('conventions', () => {
  it('X-Request-Id: echoed when sent, generated and distinct when not, on every kind of answer', async () => {
    const cases = [
      ['POST', '/v1/calls', { json: newCall(1) }],
      ['POST', '/v1/calls', { json: { caller: '' } }],
      ['GET', `/v1/calls/${randomUUIDv7Like()}`, {}],
      ['GET', '/v1/calls', { token: 'none' }],
      ['GET', '/v1/calls', {}],
      ['GET', '/healthz', { token: 'none' }],
      ['GET', '/readyz', { token: 'none' }],
      ['POST', '/v1/calls', { body: 'x', headers: { 'Content-Type': 'text/plain' } }],
    ];
    const generated = new Set();
    for (const [m, p, o] of cases) {
      const rid = `rid-${uid()}`;
      await srv.request(m, p, { ...o, requestId: rid }); // the harness asserts the echo
      const r = await srv.request(m, p, o);
      assert.ok(r.requestId.length >= 8, `generated X-Request-Id too short: ${r.requestId}`);
      assert.ok(!generated.has(r.requestId), 'generated ids are distinct');
      generated.add(r.requestId);
    }
  });

  it('unknown routes and ids: 404 not_found with the error object', async () => {
    assertError(await srv.svc('GET', '/v1/nothing-here'), 404, 'not_found');
    assertError(await srv.svc('GET', `/v1/calls/${randomUUIDv7Like()}`), 404, 'not_found');
    assertError(await srv.svc('GET', '/v1/calls/not-a-uuid'), 404, 'not_found');
  });

  it('unknown call: 404 on every action', async () => {
    const id = randomUUIDv7Like();
    for (const a of ['accept', 'decline', 'token', 'leave', 'end']) {
      const r = await srv.svc('POST', `/v1/calls/${id}/${a}`, { user: 'someone' });
      assertError(r, 404, 'not_found');
    }
    assertError(await srv.admin('POST', `/v1/calls/${id}/end`, {}), 404, 'not_found');
  });

  it('actions validate their body: user required and well-formed', async () => {
    const { call } = await srv.createCall(newCall(1));
    for (const a of ['accept', 'decline', 'token', 'leave', 'end']) {
      assertError(await srv.svc('POST', `/v1/calls/${call.id}/${a}`, {}), 400, 'bad_request', 'user');
      assertError(await srv.svc('POST', `/v1/calls/${call.id}/${a}`, { user: '' }), 400, 'bad_request', 'user');
      assertError(await srv.svc('POST', `/v1/calls/${call.id}/${a}`, { user: 'u'.repeat(129) }), 400, 'bad_request', 'user');
      assertError(await srv.svc('POST', `/v1/calls/${call.id}/${a}`, { user: 5 }), 400, 'bad_request', 'user');
      const bad = await srv.request('POST', `/v1/calls/${call.id}/${a}`, { body: '{"user":', headers: { 'Content-Type': 'application/json' } });
      assertError(bad, 400, 'bad_request');
    }
    for (const a of ['accept', 'token']) {
      assertError(await srv.svc('POST', `/v1/calls/${call.id}/${a}`, { user: call.members[1].user, name: 7 }), 400, 'bad_request', 'name');
    }
    // Nothing changed.
    const after1 = await srv.getCall(call.id);
    assert.deepEqual(after1, call);
  });
});

describe('state machine, one-to-one', () => {
  it('accept → active: answered_at set, the callee accepted, a token for the callee', async () => {
    const req = newCall(1, { kind: 'video' });
    const created = await srv.createCall(req);
    const t0 = Date.now();
    const r = await srv.svc('POST', `/v1/calls/${created.call.id}/accept`, { user: req.callees[0], name: 'Bob B.' });
    const t1 = Date.now();
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(Object.keys(r.body).sort(), ['call', 'token', 'token_expires_at', 'url']);
    const c = assertCallShape(r.body.call);
    assert.equal(c.status, 'active');
    assert.equal(c.outcome, null);
    const answered = assertTime(c.answered_at, 'answered_at');
    assert.ok(answered >= t0 - 1000 && answered <= t1 + 1000, 'answered_at is now');
    const bob = member(c, req.callees[0]);
    assert.equal(bob.invite, 'accepted');
    assert.equal(bob.responded_at, c.answered_at, 'the accepting member responded when the call was answered');
    assert.equal(bob.in_room, false);
    await assertToken(srv, r.body, { user: req.callees[0], name: 'Bob B.', room: c.room, kind: 'video', before: t0, after: t1 });
    assert.deepEqual(await srv.getCall(c.id), c);
  });

  it('decline by the only callee → ended/declined', async () => {
    const req = newCall(1);
    const { call } = await srv.createCall(req);
    const c = assertCallShape(await srv.act(call.id, 'decline', { user: req.callees[0] }));
    assert.equal(c.status, 'ended');
    assert.equal(c.outcome, 'declined');
    assert.equal(c.end_cause, 'declined');
    assert.equal(c.answered_at, null);
    assert.equal(c.duration_ms, null);
    assertTime(c.ended_at, 'ended_at');
    const m = member(c, req.callees[0]);
    assert.equal(m.invite, 'declined');
    assert.equal(m.responded_at, c.ended_at);
    assert.deepEqual(await srv.getCall(c.id), c);
  });

  for (const action of ['leave', 'end']) {
    it(`caller ${action}s while ringing → ended/cancelled, pending invites cancelled`, async () => {
      const req = newCall(1);
      const { call } = await srv.createCall(req);
      const c = assertCallShape(await srv.act(call.id, action, { user: req.caller }));
      assert.equal(c.status, 'ended');
      assert.equal(c.outcome, 'cancelled');
      assert.equal(c.end_cause, action === 'leave' ? 'leave' : 'end_request');
      assert.equal(c.answered_at, null);
      assert.equal(c.duration_ms, null);
      assert.deepEqual(invites(c), { [req.caller]: 'accepted', [req.callees[0]]: 'cancelled' });
      assert.equal(member(c, req.callees[0]).responded_at, null, 'a cancelled invite was never responded to');
    });
  }

  for (const who of ['callee', 'caller']) {
    it(`active two-person call: the ${who} leaves → ended/completed, end_cause leave, duration_ms`, async () => {
      const req = newCall(1);
      const { call } = await srv.createCall(req);
      await srv.act(call.id, 'accept', { user: req.callees[0] });
      await sleep(30);
      const user = who === 'caller' ? req.caller : req.callees[0];
      const c = assertCallShape(await srv.act(call.id, 'leave', { user }));
      assert.equal(c.status, 'ended');
      assert.equal(c.outcome, 'completed');
      assert.equal(c.end_cause, 'leave');
      assert.equal(c.duration_ms, ms(c.ended_at) - ms(c.answered_at));
      assert.ok(c.duration_ms >= 30, `duration_ms ${c.duration_ms} covers the 30 ms wait`);
      assert.deepEqual(invites(c), { [req.caller]: 'accepted', [req.callees[0]]: 'accepted' });
    });
  }

  it('end by a member of an active call → completed, end_request', async () => {
    const req = newCall(1);
    const { call } = await srv.createCall(req);
    await srv.act(call.id, 'accept', { user: req.callees[0] });
    const c = assertCallShape(await srv.act(call.id, 'end', { user: req.callees[0] }));
    assert.equal(c.status, 'ended');
    assert.equal(c.outcome, 'completed');
    assert.equal(c.end_cause, 'end_request');
    assert.equal(c.duration_ms, ms(c.ended_at) - ms(c.answered_at));
  });

  it('end by an admin without user; a service token must name the user', async () => {
    const req = newCall(1);
    const { call } = await srv.createCall(req);
    await srv.act(call.id, 'accept', { user: req.callees[0] });
    assertError(await srv.svc('POST', `/v1/calls/${call.id}/end`, {}), 400, 'bad_request', 'user');
    const c = assertCallShape(await srv.act(call.id, 'end', {}, 200, 'admin'));
    assert.equal(c.status, 'ended');
    assert.equal(c.outcome, 'completed');
    assert.equal(c.end_cause, 'end_request');
    // Admin ending a ringing call cancels it.
    const req2 = newCall(2);
    const { call: call2 } = await srv.createCall(req2);
    const c2 = assertCallShape(await srv.act(call2.id, 'end', {}, 200, 'admin'));
    assert.equal(c2.outcome, 'cancelled');
    assert.equal(c2.end_cause, 'end_request');
    assert.deepEqual(c2.members.slice(1).map((m) => m.invite), ['cancelled', 'cancelled']);
  });

  it('accept or token on an ended call → 409 conflict; an ended call never changes again', async () => {
    const req = newCall(1);
    const { call } = await srv.createCall(req);
    const ended = await srv.act(call.id, 'decline', { user: req.callees[0] });
    assertError(await srv.svc('POST', `/v1/calls/${call.id}/accept`, { user: req.callees[0] }), 409, 'conflict');
    assertError(await srv.svc('POST', `/v1/calls/${call.id}/token`, { user: req.caller }), 409, 'conflict');
    assertError(await srv.svc('POST', `/v1/calls/${call.id}/token`, { user: req.callees[0] }), 409, 'conflict');
    for (const [a, user] of [['decline', req.callees[0]], ['leave', req.caller], ['leave', req.callees[0]], ['end', req.caller]]) {
      const r = await srv.svc('POST', `/v1/calls/${call.id}/${a}`, { user });
      assert.ok([200, 409].includes(r.status), `${a} on an ended call: ${r.status} ${r.text}`);
      if (r.status === 409) assertError(r, 409, 'conflict');
    }
    const r = await srv.admin('POST', `/v1/calls/${call.id}/end`, {});
    assert.ok([200, 409].includes(r.status), `admin end on an ended call: ${r.status} ${r.text}`);
    assert.deepEqual(await srv.getCall(call.id), ended, 'an ended call never changes');
  });

  it('non-members: 403 forbidden on every action, and nothing changes', async () => {
    const req = newCall(1);
    const { call } = await srv.createCall(req);
    for (const a of ['accept', 'decline', 'token', 'leave', 'end']) {
      assertError(await srv.svc('POST', `/v1/calls/${call.id}/${a}`, { user: uid('stranger') }), 403, 'forbidden');
    }
    assert.deepEqual(await srv.getCall(call.id), call);
    await srv.act(call.id, 'accept', { user: req.callees[0] });
    for (const a of ['accept', 'decline', 'token', 'leave', 'end']) {
      assertError(await srv.svc('POST', `/v1/calls/${call.id}/${a}`, { user: uid('stranger') }), 403, 'forbidden');
    }
  });

  it('a callee may ask a token while ringing (members of a call not ended)', async () => {
    const req = newCall(1);
    const { call } = await srv.createCall(req);
    const t0 = Date.now();
    const g = await srv.act(call.id, 'token', { user: req.callees[0] });
    assert.deepEqual(Object.keys(g).sort(), ['token', 'token_expires_at', 'url']);
    await assertToken(srv, g, { user: req.callees[0], room: call.room, kind: 'audio', before: t0, after: Date.now() });
    assert.deepEqual(await srv.getCall(call.id), call, 'a token does not change the call');
  });
});

describe('state machine, group', () => {
  it('declines: one declines → still ringing; all decline → ended/declined', async () => {
    const req = newCall(3);
    const { call } = await srv.createCall(req);
    const [b, c, d] = req.callees;
    let x = assertCallShape(await srv.act(call.id, 'decline', { user: b }));
    assert.equal(x.status, 'ringing');
    assert.deepEqual(invites(x), { [req.caller]: 'accepted', [b]: 'declined', [c]: 'pending', [d]: 'pending' });
    assertTime(member(x, b).responded_at, 'responded_at of a decline');
    x = assertCallShape(await srv.act(call.id, 'decline', { user: c }));
    assert.equal(x.status, 'ringing');
    x = assertCallShape(await srv.act(call.id, 'decline', { user: d }));
    assert.equal(x.status, 'ended');
    assert.equal(x.outcome, 'declined');
    assert.equal(x.end_cause, 'declined');
    assert.deepEqual(invites(x), { [req.caller]: 'accepted', [b]: 'declined', [c]: 'declined', [d]: 'declined' });
  });

  it('accept after decline → 409; another callee can still accept', async () => {
    const req = newCall(2);
    const { call } = await srv.createCall(req);
    const [b, c] = req.callees;
    await srv.act(call.id, 'decline', { user: b });
    assertError(await srv.svc('POST', `/v1/calls/${call.id}/accept`, { user: b }), 409, 'conflict');
    const g = await srv.act(call.id, 'accept', { user: c });
    assert.equal(g.call.status, 'active');
    assert.deepEqual(invites(g.call), { [req.caller]: 'accepted', [b]: 'declined', [c]: 'accepted' });
  });

  it('caller ends a ringing group call → cancelled; every pending invite cancelled, declines kept', async () => {
    const req = newCall(3);
    const { call } = await srv.createCall(req);
    const [b, c, d] = req.callees;
    await srv.act(call.id, 'decline', { user: b });
    const x = assertCallShape(await srv.act(call.id, 'end', { user: req.caller }));
    assert.equal(x.outcome, 'cancelled');
    assert.deepEqual(invites(x), { [req.caller]: 'accepted', [b]: 'declined', [c]: 'cancelled', [d]: 'cancelled' });
  });

  it('active group: a leave keeps it active; end by a member → completed, pending invites cancelled', async () => {
    const req = newCall(3);
    const { call } = await srv.createCall(req);
    const [b, c, d] = req.callees;
    await srv.act(call.id, 'accept', { user: b });
    const g = await srv.act(call.id, 'accept', { user: c });
    assert.equal(g.call.status, 'active');
    assert.equal(g.call.answered_at, member(g.call, b).responded_at, 'answered_at is the first accept');
    let x = assertCallShape(await srv.act(call.id, 'leave', { user: c }));
    assert.equal(x.status, 'active');
    x = assertCallShape(await srv.act(call.id, 'leave', { user: req.caller }));
    assert.equal(x.status, 'active', 'the caller leaving a group call does not end it');
    x = assertCallShape(await srv.act(call.id, 'end', { user: b }));
    assert.equal(x.status, 'ended');
    assert.equal(x.outcome, 'completed');
    assert.equal(x.end_cause, 'end_request');
    assert.deepEqual(invites(x), { [req.caller]: 'accepted', [b]: 'accepted', [c]: 'accepted', [d]: 'cancelled' });
    assert.equal(x.duration_ms, ms(x.ended_at) - ms(x.answered_at));
  });

  it('a pending callee of an active group call can still accept, and decline', async () => {
    const req = newCall(3);
    const { call } = await srv.createCall(req);
    const [b, c, d] = req.callees;
    await srv.act(call.id, 'accept', { user: b });
    const g = await srv.act(call.id, 'accept', { user: c });
    assert.equal(member(g.call, c).invite, 'accepted');
    const x = await srv.act(call.id, 'decline', { user: d });
    assert.equal(x.status, 'active');
    assert.equal(member(x, d).invite, 'declined');
  });
});

describe('Idempotency-Key', () => {
  it('same key, caller and body → 200, the same call, a fresh valid caller token', async () => {
    const key = `idem-${uid()}`;
    const req = newCall(2, { caller_name: 'Caro', kind: 'video' });
    const body = JSON.stringify(req);
    const first = await srv.request('POST', '/v1/calls', { body, headers: { 'Content-Type': 'application/json', 'Idempotency-Key': key } });
    assert.equal(first.status, 201, first.text);
    const p1 = await assertToken(srv, first.body, { user: req.caller, name: 'Caro', room: first.body.call.room, kind: 'video' });
    await sleep(1100); // a fresh token has a later nbf
    const t0 = Date.now();
    const again = await srv.request('POST', '/v1/calls', { body, headers: { 'Content-Type': 'application/json', 'Idempotency-Key': key } });
    const t1 = Date.now();
    assert.equal(again.status, 200, again.text);
    assert.deepEqual(Object.keys(again.body).sort(), ['call', 'token', 'token_expires_at', 'url']);
    assert.equal(again.body.call.id, first.body.call.id);
    assert.deepEqual(again.body.call, first.body.call);
    assert.notEqual(again.body.token, first.body.token, 'a fresh token');
    const p2 = await assertToken(srv, again.body, { user: req.caller, name: 'Caro', room: first.body.call.room, kind: 'video', before: t0, after: t1 });
    assert.ok(p2.nbf > p1.nbf, 'the replayed token is minted now');
    // No second call was created.
    const list = await srv.svc('GET', `/v1/users/${encodeURIComponent(req.caller)}/calls`);
    assert.deepEqual(list.body.calls.map((c) => c.id), [first.body.call.id]);
  });

  it('the replay returns the call as it is now', async () => {
    const key = `idem-${uid()}`;
    const req = newCall(1);
    const first = await srv.svc('POST', '/v1/calls', req, { headers: { 'Idempotency-Key': key } });
    assert.equal(first.status, 201, first.text);
    await srv.act(first.body.call.id, 'accept', { user: req.callees[0] });
    const again = await srv.svc('POST', '/v1/calls', req, { headers: { 'Idempotency-Key': key } });
    assert.equal(again.status, 200, again.text);
    assert.equal(again.body.call.status, 'active');
    await assertToken(srv, again.body, { user: req.caller, room: first.body.call.room, kind: 'audio' });
  });

  it('same key and caller with a different body → 409 conflict', async () => {
    const key = `idem-${uid()}`;
    const req = newCall(1);
    const first = await srv.svc('POST', '/v1/calls', req, { headers: { 'Idempotency-Key': key } });
    assert.equal(first.status, 201, first.text);
    assertError(await srv.svc('POST', '/v1/calls', { ...req, kind: 'video' }, { headers: { 'Idempotency-Key': key } }), 409, 'conflict');
    assertError(await srv.svc('POST', '/v1/calls', { ...req, callees: [uid()] }, { headers: { 'Idempotency-Key': key } }), 409, 'conflict');
    const list = await srv.svc('GET', `/v1/users/${encodeURIComponent(req.caller)}/calls`);
    assert.equal(list.body.calls.length, 1);
  });

  it('a replay of an ended call → 200 with token, url, token_expires_at null', async () => {
    const key = `idem-${uid()}`;
    const req = newCall(1);
    const first = await srv.svc('POST', '/v1/calls', req, { headers: { 'Idempotency-Key': key } });
    assert.equal(first.status, 201, first.text);
    const ended = await srv.act(first.body.call.id, 'end', { user: req.caller });
    const again = await srv.svc('POST', '/v1/calls', req, { headers: { 'Idempotency-Key': key } });
    assert.equal(again.status, 200, again.text);
    assert.deepEqual(again.body, { call: ended, token: null, url: null, token_expires_at: null });
  });

  it('a different caller with the same key → a new call', async () => {
    const key = `idem-${uid()}`;
    const a = await srv.svc('POST', '/v1/calls', newCall(1), { headers: { 'Idempotency-Key': key } });
    const b = await srv.svc('POST', '/v1/calls', newCall(1), { headers: { 'Idempotency-Key': key } });
    assert.equal(a.status, 201, a.text);
    assert.equal(b.status, 201, b.text);
    assert.notEqual(a.body.call.id, b.body.call.id);
  });

  it('without the header, the same body twice makes two calls', async () => {
    const req = newCall(1);
    const a = await srv.createCall(req);
    const b = await srv.createCall(req);
    assert.notEqual(a.call.id, b.call.id);
  });
});

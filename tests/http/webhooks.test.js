// LiveKit webhooks (API.md "LiveKit webhooks" and "Calls", LIVEKIT.md): calls driven from
// ringing to ended by webhooks only (one-to-one and group), duplicates applied once, out-of-order
// delivery compared across orders, room_finished, connection aborts, non-member participants,
// unknown rooms, key rotation, every 401 forgery over HTTP (nothing stored: the same event id sent
// correctly afterwards is applied), 400 and 413, Go-style bodies, and the feed events that each
// webhook appends. Bodies come from @livekit/protocol's WebhookEvent and are signed with the SDK's
// AccessToken exactly as the LiveKit server does (livekit-kit.js).
//
// One server for the whole file. Every call is created up front and every scenario's timeline is
// relative to one `base` second just after the last creation; events are never sent before the
// times they carry, so the scenarios are also in the server's past, as real webhooks are.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import {
  startServer, shutdown, assertCallShape, assertError, assertFeed, byCall, member, newCall, ms, pollUntil,
  randomUUIDv7Like,
} from './harness.js';
import {
  LkRoom, FeedCursor, deliver, step, postWebhook, signWebhook, handJwt, sha256b64, goJson, rawEvent,
  normalizeCall, lkId, nowS, sentAuthorizations,
} from './livekit-kit.js';

const JOIN_S = 5;
const DEV_KEY = 'APIdevkey'; // LIVEKIT.md §2 test vector (b)
const DEV_SECRET = 'devsecret-0123456789abcdef0123456789';
const ROT_KEY = 'APIrot' + randomBytes(4).toString('hex');
const ROT_SECRET = 'rot-' + randomBytes(20).toString('hex');
const iso = (t) => new Date(t).toISOString();

let srv;
let cursor;
let base; // a whole second (ms) after every call below was created
const S = {}; // scenario name → {id, room, created, u: {A, B, C, D}, names}

// name → number of callees. Every call rings for 120 s so that no ring timeout fires here.
const SCENARIOS = {
  o2o: 1, dup: 1, group: 3, lb1: 1, lb2: 1, rc0: 1, rc1: 1, rc2: 1, rd0: 1, rd1: 1,
  rcg0: 2, rcg1: 2, rcg2: 2, rcg3: 2, rcg4: 2, rcg5: 2,
  rf: 1, rfg0: 2, rfg1: 2, rfg2: 2, rr: 1, rn: 1, nm: 1, nmg: 2,
  forge: 1, big: 1, bad: 1, rot: 1, go1: 1, go2: 1, go3: 1, unknown: 1, ab1: 1, ab2: 1, jt1: 1, jt2: 2,
  ooo: 2, ooo2: 2, kind: 1, lim: 1,
};

before(async () => {
  srv = await startServer({
    env: { CALLSTATE_JOIN_TIMEOUT_S: JOIN_S, LIVEKIT_KEYS: `${DEV_KEY}: ${DEV_SECRET}, ${ROT_KEY}: ${ROT_SECRET}` },
  });
  const names = Object.keys(SCENARIOS);
  const made = await Promise.all(names.map((n) => srv.createCall(newCall(SCENARIOS[n], { ring_timeout_s: 120 }))));
  let last = 0;
  names.forEach((n, i) => {
    const c = made[i].call;
    const u = {};
    c.members.forEach((m, k) => { u['ABCD'[k]] = m.user; });
    S[n] = { id: c.id, room: c.room, created: c, u, names: Object.fromEntries(Object.entries(u).map(([k, v]) => [v, k])) };
    last = Math.max(last, ms(c.created_at));
  });
  base = (Math.floor(last / 1000) + 1) * 1000;
  cursor = await new FeedCursor(srv).init();
});

after(async () => {
  if (srv && !srv.exit) {
    const logs = srv.stderr + srv.stdout;
    for (const a of sentAuthorizations) {
      const sig = a.replace(/^Bearer\s+/i, '').split('.')[2];
      if (sig && sig.length > 10) assert.ok(!logs.includes(sig), 'a webhook token\'s signature appears in the server\'s output');
    }
  }
  await shutdown(srv);
});

/** Deliver each [event, feed types] in turn; returns the call after the last. */
async function run(s, steps) {
  let call;
  for (const [ev, types] of steps) {
    const r = await step(srv, cursor, s.id, ev);
    assert.deepEqual(r.types, [...types].sort(), `feed events appended by ${ev.label}`);
    call = assertCallShape(r.call);
  }
  return call;
}

/** The call created for `s`, with what the test expects changed. */
function expected(s, changes) {
  return { ...s.created, ...changes };
}

function m(s, key, fields) {
  const c = s.created.members.find((x) => x.user === s.u[key]);
  return { ...c, ...fields };
}

function p(s, key, sess, joined, left, reason = null) {
  return { user: s.u[key], sid: sess.sid, joined_at: joined === null ? null : iso(joined), left_at: left === null ? null : iso(left), disconnect_reason: reason };
}

/** The webhooks of a one-to-one call from ringing to ended, with the feed events each appends. */
function oneToOne(s) {
  const room = new LkRoom(s.room, { creationMs: base });
  const sA = room.session(s.u.A, base + 250);
  const sB = room.session(s.u.B, base + 1250);
  const steps = [
    [room.started(base), []],
    [room.joined(sA), ['call.member_joined']],
    [room.track('track_published', sA, base + 400, 'MICROPHONE'), []],
    [room.joined(sB), ['call.accepted', 'call.active', 'call.member_joined']],
    [room.track('track_published', sB, base + 1500, 'SCREEN_SHARE'), []],
    [room.track('track_unpublished', sB, base + 2000, 'SCREEN_SHARE'), []],
    [room.left(sB, base + 3000), ['call.member_left', 'call.ended']],
    [room.left(sA, base + 3400), ['call.member_left']],
    [room.finished(base + 4000), []],
  ];
  return { steps, sA, sB, sids: { [sA.sid]: 'sA', [sB.sid]: 'sB' } };
}

function oneToOneFinal(s, sA, sB) {
  return expected(s, {
    status: 'ended', outcome: 'completed', end_cause: 'leave', room_end_reason: null,
    answered_at: iso(base + 1250), ended_at: iso(base + 3000), duration_ms: 1750,
    members: [
      m(s, 'A', { in_room: false, first_joined_at: iso(base + 250), last_left_at: iso(base + 3000) }),
      m(s, 'B', { invite: 'accepted', responded_at: iso(base + 1250), in_room: false, first_joined_at: iso(base + 1250), last_left_at: iso(base + 3000) }),
    ],
    participants: [
      p(s, 'A', sA, base + 250, base + 3000, 'CLIENT_INITIATED'),
      p(s, 'B', sB, base + 1250, base + 3000, 'CLIENT_INITIATED'),
    ],
  });
}

let o2oNormalized;

// Started first so that the join timeout runs out while the other scenarios run; checked last.
const jt = {};
describe('the join timeout (set up)', () => {
  it('setup: an aborted connection, a callee who joined, a group with one callee who never joins', async () => {
    // ab1: the callee accepts by API, the caller joins, the callee's connection aborts.
    const a = S.ab1;
    const acc = await srv.act(a.id, 'accept', { user: a.u.B });
    jt.ab1 = ms(acc.call.answered_at) + JOIN_S * 1000;
    const room = new LkRoom(a.room);
    const now = Date.now();
    await step(srv, cursor, a.id, room.joined(room.session(a.u.A, now - 500)));
    const sB = room.session(a.u.B, now);
    const r = await step(srv, cursor, a.id, room.aborted(sB, now, 'CONNECTION_TIMEOUT'));
    assert.deepEqual(r.types, []);
    assert.equal(member(r.call, a.u.B).first_joined_at, null, 'an aborted connection is not a join');
    assert.equal(member(r.call, a.u.B).in_room, false);
    assert.equal(r.call.status, 'active');
    // jt1: one-to-one, the callee accepts and joins; the caller never shows up.
    const b = S.jt1;
    const acc1 = await srv.act(b.id, 'accept', { user: b.u.B });
    jt.jt1 = ms(acc1.call.answered_at) + JOIN_S * 1000;
    const r1 = new LkRoom(b.room);
    await deliver(srv, r1.joined(r1.session(b.u.B, Date.now())));
    // jt2: group, B accepts and joins, C accepts and never joins.
    const c = S.jt2;
    const acc2 = await srv.act(c.id, 'accept', { user: c.u.B });
    await srv.act(c.id, 'accept', { user: c.u.C });
    jt.jt2 = ms(acc2.call.answered_at) + JOIN_S * 1000;
    const r2 = new LkRoom(c.room);
    await deliver(srv, r2.joined(r2.session(c.u.B, Date.now())));
  });

});

describe('calls driven by webhooks only', () => {
  it('one-to-one: ringing → caller joins → callee joins (accepted, active) → callee leaves (ended/completed, leave)', async () => {
    const s = S.o2o;
    const { steps, sA, sB, sids } = oneToOne(s);
    // Step by step: the caller's join leaves the call ringing; the callee's join answers it.
    const c1 = await run(s, steps.slice(0, 2));
    assert.equal(c1.status, 'ringing', 'the caller joining does not answer the call');
    assert.deepEqual(c1.members[0], m(s, 'A', { in_room: true, first_joined_at: iso(base + 250) }));
    assert.deepEqual(c1.members[1], s.created.members[1], 'the callee is untouched');
    assert.deepEqual(c1.participants, [p(s, 'A', sA, base + 250, null)]);
    const c2 = await run(s, steps.slice(2, 4));
    assert.equal(c2.status, 'active');
    assert.equal(c2.answered_at, iso(base + 1250), 'answered_at = the callee\'s joinedAtMs');
    assert.deepEqual(member(c2, s.u.B), m(s, 'B', { invite: 'accepted', responded_at: iso(base + 1250), in_room: true, first_joined_at: iso(base + 1250) }));
    const c3 = await run(s, steps.slice(4, 6));
    assert.deepEqual(c3, c2, 'screen-share track events change nothing');
    const c4 = await run(s, steps.slice(6, 7));
    assert.equal(c4.status, 'ended');
    assert.equal(member(c4, s.u.A).in_room, true, 'the caller is still in the room of the ended call');
    const final = await run(s, steps.slice(7));
    assert.deepEqual(final, oneToOneFinal(s, sA, sB));
    o2oNormalized = normalizeCall(final, { users: s.names, sids, base });
  });

  it('group: answered by the first callee to join, goes on while anyone is in, ends room_empty; the pending invite is cancelled', async () => {
    const s = S.group;
    const room = new LkRoom(s.room, { creationMs: base });
    const sA = room.session(s.u.A, base + 250);
    const sB = room.session(s.u.B, base + 1250);
    const sC = room.session(s.u.C, base + 1600);
    const c1 = await run(s, [
      [room.started(base), []],
      [room.joined(sA), ['call.member_joined']],
      [room.joined(sB), ['call.accepted', 'call.active', 'call.member_joined']],
      [room.joined(sC), ['call.accepted', 'call.member_joined']],
      [room.left(sB, base + 2000), ['call.member_left']],
      [room.left(sA, base + 3000), ['call.member_left']],
    ]);
    assert.equal(c1.status, 'active', 'one callee still in: the group call goes on');
    assert.deepEqual(c1.members.map((x) => x.invite), ['accepted', 'accepted', 'accepted', 'pending']);
    const final = await run(s, [
      [room.left(sC, base + 4000), ['call.member_left', 'call.ended']],
      [room.finished(base + 4900), []],
    ]);
    assert.deepEqual(final, expected(s, {
      status: 'ended', outcome: 'completed', end_cause: 'room_empty', room_end_reason: null,
      answered_at: iso(base + 1250), ended_at: iso(base + 4000), duration_ms: 2750,
      members: [
        m(s, 'A', { in_room: false, first_joined_at: iso(base + 250), last_left_at: iso(base + 3000) }),
        m(s, 'B', { invite: 'accepted', responded_at: iso(base + 1250), first_joined_at: iso(base + 1250), last_left_at: iso(base + 2000) }),
        m(s, 'C', { invite: 'accepted', responded_at: iso(base + 1600), first_joined_at: iso(base + 1600), last_left_at: iso(base + 4000) }),
        { ...final.members[3], invite: 'cancelled' },
      ],
      participants: [
        p(s, 'A', sA, base + 250, base + 3000, 'CLIENT_INITIATED'),
        p(s, 'B', sB, base + 1250, base + 2000, 'CLIENT_INITIATED'),
        p(s, 'C', sC, base + 1600, base + 4000, 'CLIENT_INITIATED'),
      ],
    }));
    assert.deepEqual(final.members[3], { ...s.created.members[3], invite: 'cancelled', responded_at: final.members[3].responded_at });
  });

  it('duplicates: every webhook delivered 3 times (in a row or at once) is applied once', async () => {
    const s = S.dup;
    const { steps, sA, sB, sids } = oneToOne(s);
    for (const [i, [ev, types]] of steps.entries()) {
      if (i % 2) {
        await Promise.all([deliver(srv, ev), deliver(srv, ev), deliver(srv, ev)]);
      } else {
        for (let k = 0; k < 3; k++) await deliver(srv, ev);
      }
      const mine = (await cursor.next()).filter((e) => e.call_id === s.id);
      assert.deepEqual(mine.map((e) => e.type).sort(), [...types].sort(), `feed events of ${ev.label} delivered 3 times`);
    }
    const final = assertCallShape(await srv.getCall(s.id));
    assert.equal(final.participants.length, 2, 'participants not doubled');
    assert.deepEqual(final, oneToOneFinal(s, sA, sB));
    assert.ok(o2oNormalized, 'the one-to-one scenario ran');
    assert.deepEqual(normalizeCall(final, { users: s.names, sids, base }), o2oNormalized, 'same result as single delivery');
    // And once more, long after: still a duplicate.
    for (const [ev] of steps) await deliver(srv, ev);
    assert.deepEqual(await srv.getCall(s.id), final);
    assert.deepEqual((await cursor.next()).filter((e) => e.call_id === s.id), []);
  });
});

describe('out-of-order delivery: the final call does not depend on arrival order', () => {
  it('participant_left before its participant_joined (one-to-one)', async () => {
    const finals = [];
    for (const [name, order] of [['lb1', ['jA', 'jB', 'lB', 'lA']], ['lb2', ['jA', 'lB', 'jB', 'lA']]]) {
      const s = S[name];
      const room = new LkRoom(s.room, { creationMs: base });
      const sA = room.session(s.u.A, base + 250);
      const sB = room.session(s.u.B, base + 1250);
      const evs = { jA: room.joined(sA), jB: room.joined(sB), lB: room.left(sB, base + 3000), lA: room.left(sA, base + 3500) };
      for (const k of order) await deliver(srv, evs[k]);
      const c = assertCallShape(await srv.getCall(s.id));
      assert.equal(c.status, 'ended', `${order}: ended`);
      assert.equal(c.end_cause, 'leave', `${order}`);
      assert.equal(c.answered_at, iso(base + 1250), `${order}: answered when the callee joined`);
      assert.equal(c.ended_at, iso(base + 3000), `${order}: ended when the callee left`);
      assert.deepEqual(c.participants, [p(s, 'A', sA, base + 250, base + 3000, 'CLIENT_INITIATED'), p(s, 'B', sB, base + 1250, base + 3000, 'CLIENT_INITIATED')]);
      finals.push([order.join(','), normalizeCall(c, { users: s.names, sids: { [sA.sid]: 'sA', [sB.sid]: 'sB' }, base })]);
    }
    assert.deepEqual(finals[1][1], finals[0][1], `${finals[1][0]} vs ${finals[0][0]}`);
  });

  it('a reconnect\'s old participant_left after the new participant_joined (one-to-one, 3 orders): the call goes on', async () => {
    const orders = [['jB1', 'jB2', 'lB1'], ['jB2', 'jB1', 'lB1'], ['jB2', 'lB1', 'jB1']];
    const finals = [];
    for (const [i, order] of orders.entries()) {
      const s = S[`rc${i}`];
      const room = new LkRoom(s.room, { creationMs: base });
      const sA = room.session(s.u.A, base + 250);
      const sB1 = room.session(s.u.B, base + 1250);
      const sB2 = room.session(s.u.B, base + 2250);
      const evs = { jB1: room.joined(sB1), jB2: room.joined(sB2), lB1: room.left(sB1, base + 3000, 'SIGNAL_CLOSE') };
      await deliver(srv, room.joined(sA));
      for (const k of order) await deliver(srv, evs[k]);
      const mid = assertCallShape(await srv.getCall(s.id));
      assert.equal(mid.status, 'active', `${order}: the old session closing while the new one is open does not end the call`);
      assert.equal(member(mid, s.u.B).in_room, true, `${order}: the callee is in the room`);
      assert.equal(mid.participants.length, 3, `${order}: one entry per session`);
      await deliver(srv, room.left(sB2, base + 5000));
      const c = assertCallShape(await srv.getCall(s.id));
      assert.equal(c.status, 'ended', `${order}`);
      assert.equal(c.end_cause, 'leave', `${order}`);
      assert.equal(c.ended_at, iso(base + 5000), `${order}: ended when the last session closed`);
      assert.equal(c.answered_at, iso(base + 1250), `${order}: answered at the first session`);
      assert.deepEqual(member(c, s.u.B), m(s, 'B', { invite: 'accepted', responded_at: iso(base + 1250), in_room: false, first_joined_at: iso(base + 1250), last_left_at: iso(base + 5000) }));
      assert.deepEqual(c.participants, [
        p(s, 'A', sA, base + 250, null), p(s, 'B', sB1, base + 1250, base + 3000, 'SIGNAL_CLOSE'), p(s, 'B', sB2, base + 2250, base + 5000, 'CLIENT_INITIATED'),
      ], `${order}: participants`);
      finals.push([order.join(','), normalizeCall(c, { users: s.names, sids: { [sA.sid]: 'sA', [sB1.sid]: 'sB1', [sB2.sid]: 'sB2' }, base })]);
    }
    for (const f of finals.slice(1)) assert.deepEqual(f[1], finals[0][1], `${f[0]} vs ${finals[0][0]}`);
  });

  it('a full reconnect: the replaced session\'s participant_left (DUPLICATE_IDENTITY) before or after the new join: the call goes on', async () => {
    // LiveKit removes the old session as the new one joins and sends its leave first; the new
    // session's participant_joined comes once it has connected. Times from now: a reconnect
    // counts for 30 s after the old session's leave.
    const t0 = Math.max(base, Math.floor(Date.now() / 1000) * 1000);
    const finals = [];
    for (const [i, order] of [['lB1', 'jB2'], ['jB2', 'lB1']].entries()) {
      const s = S[`rd${i}`];
      const room = new LkRoom(s.room, { creationMs: t0 });
      const sA = room.session(s.u.A, t0 + 250);
      const sB1 = room.session(s.u.B, t0 + 1250);
      const sB2 = room.session(s.u.B, t0 + 3500);
      const evs = { lB1: room.left(sB1, t0 + 3000, 'DUPLICATE_IDENTITY'), jB2: room.joined(sB2) };
      await deliver(srv, room.joined(sA));
      await deliver(srv, room.joined(sB1));
      await deliver(srv, evs[order[0]]);
      const between = assertCallShape(await srv.getCall(s.id));
      assert.equal(between.status, 'active', `${order}: after ${order[0]} alone`);
      // Out of the room between the two (as LiveKit has it), in it once the new session is known.
      assert.equal(member(between, s.u.B).in_room, order[0] === 'jB2', `${order}: in_room after ${order[0]} alone`);
      await deliver(srv, evs[order[1]]);
      const c = assertCallShape(await srv.getCall(s.id));
      assert.equal(c.status, 'active', `${order}`);
      assert.equal(member(c, s.u.B).in_room, true, `${order}`);
      assert.deepEqual(c.participants, [
        p(s, 'A', sA, t0 + 250, null), p(s, 'B', sB1, t0 + 1250, t0 + 3000, 'DUPLICATE_IDENTITY'), p(s, 'B', sB2, t0 + 3500, null),
      ], `${order}: participants`);
      finals.push([order.join(','), normalizeCall(c, { users: s.names, sids: { [sA.sid]: 'sA', [sB1.sid]: 'sB1', [sB2.sid]: 'sB2' }, base: t0 })]);
    }
    assert.deepEqual(finals[1][1], finals[0][1], `${finals[1][0]} vs ${finals[0][0]}`);
  });

  it('a reconnect in a group call, all 6 orders of (old joined, new joined, old left): same call', async () => {
    const perms = [['j1', 'j2', 'l1'], ['j1', 'l1', 'j2'], ['j2', 'j1', 'l1'], ['j2', 'l1', 'j1'], ['l1', 'j1', 'j2'], ['l1', 'j2', 'j1']];
    const finals = [];
    for (const [i, order] of perms.entries()) {
      const s = S[`rcg${i}`];
      const room = new LkRoom(s.room, { creationMs: base });
      const sA = room.session(s.u.A, base + 250);
      const sB = room.session(s.u.B, base + 500);
      const sC1 = room.session(s.u.C, base + 1250);
      const sC2 = room.session(s.u.C, base + 2250);
      const evs = { j1: room.joined(sC1), j2: room.joined(sC2), l1: room.left(sC1, base + 3000, 'SIGNAL_CLOSE') };
      await deliver(srv, room.joined(sA));
      await deliver(srv, room.joined(sB));
      for (const k of order) await deliver(srv, evs[k]);
      const mid = assertCallShape(await srv.getCall(s.id));
      assert.equal(mid.status, 'active', `${order}`);
      assert.equal(member(mid, s.u.C).in_room, true, `${order}: C is in the room`);
      for (const ev of [room.left(sA, base + 4000), room.left(sB, base + 4500), room.left(sC2, base + 5000)]) await deliver(srv, ev);
      const c = assertCallShape(await srv.getCall(s.id));
      assert.equal(c.end_cause, 'room_empty', `${order}`);
      assert.equal(c.ended_at, iso(base + 5000), `${order}`);
      assert.deepEqual(member(c, s.u.C), m(s, 'C', { invite: 'accepted', responded_at: iso(base + 1250), in_room: false, first_joined_at: iso(base + 1250), last_left_at: iso(base + 5000) }), `${order}`);
      finals.push([order.join(','), normalizeCall(c, { users: s.names, sids: { [sA.sid]: 'sA', [sB.sid]: 'sB', [sC1.sid]: 'sC1', [sC2.sid]: 'sC2' }, base })]);
    }
    for (const f of finals.slice(1)) assert.deepEqual(f[1], finals[0][1], `${f[0]} vs ${finals[0][0]}`);
  });

  it('group joins learnt out of order (C then B, who joined first): answered_at is B\'s join, as in order', async () => {
    const s = S.ooo;
    const room = new LkRoom(s.room, { creationMs: base });
    const sA = room.session(s.u.A, base + 250);
    const sB = room.session(s.u.B, base + 1250);
    const sC = room.session(s.u.C, base + 1600);
    for (const ev of [room.joined(sA), room.joined(sC), room.joined(sB)]) await deliver(srv, ev);
    const c = assertCallShape(await srv.getCall(s.id));
    assert.deepEqual(c.participants, [p(s, 'A', sA, base + 250, null), p(s, 'B', sB, base + 1250, null), p(s, 'C', sC, base + 1600, null)]);
    assert.equal(member(c, s.u.B).responded_at, iso(base + 1250));
    assert.equal(c.answered_at, iso(base + 1250), 'answered when the first callee joined, whatever the arrival order');
  });

  it('group joins learnt out of order: each change\'s feed event holds the call as GET shows it', async () => {
    const s = S.ooo2;
    const room = new LkRoom(s.room, { creationMs: base });
    const sA = room.session(s.u.A, base + 250);
    const sB = room.session(s.u.B, base + 1250);
    const sC = room.session(s.u.C, base + 1600);
    // step() asserts that the last event's data deep-equals GET after every webhook.
    await run(s, [
      [room.joined(sA), ['call.member_joined']],
      [room.joined(sC), ['call.accepted', 'call.active', 'call.member_joined']],
      [room.joined(sB), ['call.accepted', 'call.member_joined']],
    ]);
  });

  it('participant_left after room_finished (group, 3 orders): real left_at and disconnect_reason filled in, same call', async () => {
    const orders = [['rf', 'lA', 'lB', 'lC'], ['rf', 'lC', 'lA', 'lB'], ['lA', 'rf', 'lC', 'lB']];
    const finals = [];
    for (const [i, order] of orders.entries()) {
      const s = S[`rfg${i}`];
      const room = new LkRoom(s.room, { creationMs: base });
      const sA = room.session(s.u.A, base + 250);
      const sB = room.session(s.u.B, base + 1250);
      const sC = room.session(s.u.C, base + 1600);
      for (const x of [sA, sB, sC]) await deliver(srv, room.joined(x));
      const evs = {
        rf: room.finished(base + 4000, 'ROOM_END_API_DELETE'),
        lA: room.left(sA, base + 3100, 'ROOM_DELETED'), lB: room.left(sB, base + 3200, 'ROOM_DELETED'), lC: room.left(sC, base + 3300, 'ROOM_DELETED'),
      };
      for (const k of order) await deliver(srv, evs[k]);
      const c = assertCallShape(await srv.getCall(s.id));
      assert.deepEqual({ status: c.status, outcome: c.outcome, end_cause: c.end_cause, room_end_reason: c.room_end_reason, ended_at: c.ended_at },
        { status: 'ended', outcome: 'completed', end_cause: 'room_finished', room_end_reason: 'ROOM_END_API_DELETE', ended_at: iso(base + 4000) }, `${order}`);
      assert.deepEqual(c.participants, [
        p(s, 'A', sA, base + 250, base + 3000, 'ROOM_DELETED'), p(s, 'B', sB, base + 1250, base + 3000, 'ROOM_DELETED'),
        p(s, 'C', sC, base + 1600, base + 3000, 'ROOM_DELETED'),
      ], `${order}: the real leaves replace the times room_finished inferred`);
      for (const x of c.members) {
        assert.equal(x.in_room, false);
        assert.equal(x.last_left_at, iso(base + 3000), `${order}: ${x.user} last_left_at`);
      }
      finals.push([order.join(','), normalizeCall(c, { users: s.names, sids: { [sA.sid]: 'sA', [sB.sid]: 'sB', [sC.sid]: 'sC' }, base })]);
    }
    for (const f of finals.slice(1)) assert.deepEqual(f[1], finals[0][1], `${f[0]} vs ${finals[0][0]}`);
  });
});

describe('room_finished', () => {
  it('with people still in: ends the call (completed, room_finished, its roomEndReason) and closes their sessions; late leaves fill in', async () => {
    const s = S.rf;
    const room = new LkRoom(s.room, { creationMs: base });
    const sA = room.session(s.u.A, base + 250);
    const sB = room.session(s.u.B, base + 1250);
    await run(s, [[room.joined(sA), ['call.member_joined']], [room.joined(sB), ['call.accepted', 'call.active', 'call.member_joined']]]);
    const c1 = await run(s, [[room.finished(base + 4000, 'ROOM_END_API_DELETE'), ['call.member_left', 'call.member_left', 'call.ended']]]);
    const closed = expected(s, {
      status: 'ended', outcome: 'completed', end_cause: 'room_finished', room_end_reason: 'ROOM_END_API_DELETE',
      answered_at: iso(base + 1250), ended_at: iso(base + 4000), duration_ms: 2750,
      members: [
        m(s, 'A', { in_room: false, first_joined_at: iso(base + 250), last_left_at: iso(base + 4000) }),
        m(s, 'B', { invite: 'accepted', responded_at: iso(base + 1250), in_room: false, first_joined_at: iso(base + 1250), last_left_at: iso(base + 4000) }),
      ],
      participants: [p(s, 'A', sA, base + 250, base + 4000), p(s, 'B', sB, base + 1250, base + 4000)],
    });
    assert.deepEqual(c1, closed, 'open sessions closed at room_finished\'s createdAt');
    const c2 = await run(s, [
      [room.left(sA, base + 3600, 'ROOM_DELETED'), []],
      [room.left(sB, base + 3700, 'ROOM_DELETED'), []],
    ]);
    assert.deepEqual(c2, {
      ...closed,
      members: [{ ...closed.members[0], last_left_at: iso(base + 3000) }, { ...closed.members[1], last_left_at: iso(base + 3000) }],
      participants: [p(s, 'A', sA, base + 250, base + 3000, 'ROOM_DELETED'), p(s, 'B', sB, base + 1250, base + 3000, 'ROOM_DELETED')],
    }, 'only participant times change on the ended call');
  });

  it('while ringing: ended/cancelled, invites cancelled (roomEndReason as a number, Go style)', async () => {
    const s = S.rr;
    const room = new LkRoom(s.room, { creationMs: base });
    const sA = room.session(s.u.A, base + 250);
    await run(s, [[room.joined(sA), ['call.member_joined']]]);
    const body = goJson({
      event: 'room_finished', room: { sid: room.sid, name: room.name, emptyTimeout: 300, departureTimeout: 20, creationTime: Math.floor(base / 1000) },
      id: lkId('EV_'), createdAt: Math.floor(base / 1000) + 2, roomEndReason: 2,
    });
    const c = await run(s, [[rawEvent(body, base + 2000, 'room_finished (Go style, reason 2)'), ['call.member_left', 'call.ended']]]);
    assert.deepEqual(c, expected(s, {
      status: 'ended', outcome: 'cancelled', end_cause: 'room_finished', room_end_reason: 'ROOM_END_IDLE_TIMEOUT',
      ended_at: iso(base + 2000),
      members: [
        m(s, 'A', { in_room: false, first_joined_at: iso(base + 250), last_left_at: iso(base + 2000) }),
        m(s, 'B', { invite: 'cancelled' }),
      ],
      participants: [p(s, 'A', sA, base + 250, base + 2000)],
    }));
  });

  it('without roomEndReason (what the OSS server sends): room_end_reason stays null', async () => {
    const s = S.rn;
    const room = new LkRoom(s.room, { creationMs: base });
    const sA = room.session(s.u.A, base + 250);
    const sB = room.session(s.u.B, base + 1250);
    await deliver(srv, room.joined(sA));
    await deliver(srv, room.joined(sB));
    await deliver(srv, room.finished(base + 3000));
    const c = assertCallShape(await srv.getCall(s.id));
    assert.deepEqual([c.status, c.outcome, c.end_cause, c.room_end_reason, c.ended_at], ['ended', 'completed', 'room_finished', null, iso(base + 3000)]);
  });
});

describe('who is in the room', () => {
  it('participant_connection_aborted in a ringing call: a failed join, not an answer', async () => {
    const s = S.ab2;
    const room = new LkRoom(s.room, { creationMs: base });
    const sA = room.session(s.u.A, base + 250);
    const sB = room.session(s.u.B, base + 1250);
    await run(s, [[room.joined(sA), ['call.member_joined']]]);
    const c = await run(s, [[room.aborted(sB, base + 2000), []]]);
    assert.equal(c.status, 'ringing', 'an aborted connection does not answer the call');
    assert.deepEqual(member(c, s.u.B), s.created.members[1], 'the callee is untouched: no join, no answer');
    const pb = c.participants.find((x) => x.sid === sB.sid);
    assert.ok(pb, 'the aborted session is listed');
    assert.equal(pb.user, s.u.B);
    assert.notEqual(pb.left_at, null, 'the aborted session is ended');
    if (pb.joined_at !== null) assert.ok(ms(pb.left_at) >= ms(pb.joined_at));
    assert.equal(pb.disconnect_reason, 'JOIN_FAILURE');
  });

  it('non-member identities (recorder, agent, stranger) are listed as participants, never as members', async () => {
    const s = S.nm;
    const room = new LkRoom(s.room, { creationMs: base });
    const sA = room.session(s.u.A, base + 250);
    const sEg = room.session('EG_' + lkId('', 12), base + 500, { kind: 'EGRESS', recorder: true, hidden: true });
    const sAg = room.session('agent-' + lkId('AJ_'), base + 600, { kind: 'AGENT', agent: true });
    const sX = room.session('stranger-' + lkId(''), base + 700);
    const sB = room.session(s.u.B, base + 1250);
    const c1 = await run(s, [
      [room.joined(sA), ['call.member_joined']],
      [room.joined(sEg), []], [room.joined(sAg), []], [room.joined(sX), []],
    ]);
    assert.equal(c1.status, 'ringing', 'no non-member answers the call');
    assert.deepEqual(c1.members, [m(s, 'A', { in_room: true, first_joined_at: iso(base + 250) }), s.created.members[1]]);
    assert.deepEqual(c1.participants.map((x) => x.user), [s.u.A, sEg.identity, sAg.identity, sX.identity]);
    const c2 = await run(s, [
      [room.joined(sB), ['call.accepted', 'call.active', 'call.member_joined']],
      [room.left(sB, base + 3000), ['call.member_left', 'call.ended']],
      [room.left(sEg, base + 3100, 'CLIENT_INITIATED'), []],
      [room.left(sAg, base + 4000, 'CLIENT_INITIATED'), []],
    ]);
    assert.equal(c2.end_cause, 'leave', 'the callee left: the recorder and agent do not keep the call going');
    assert.equal(c2.members.length, 2);
    assert.deepEqual(c2.participants, [
      p(s, 'A', sA, base + 250, null), { ...p(s, 'A', sEg, base + 500, base + 3000, 'CLIENT_INITIATED'), user: sEg.identity },
      { ...p(s, 'A', sAg, base + 600, base + 4000, 'CLIENT_INITIATED'), user: sAg.identity }, { ...p(s, 'A', sX, base + 700, null), user: sX.identity },
      p(s, 'B', sB, base + 1250, base + 3000, 'CLIENT_INITIATED'),
    ]);
  });

  it('a member\'s identity joining as a recorder or an agent (kind, permission) is not the member (LIVEKIT.md §6.11)', async () => {
    const s = S.kind;
    const room = new LkRoom(s.room, { creationMs: base });
    const sA = room.session(s.u.A, base + 250);
    const sEg = room.session(s.u.B, base + 500, { kind: 'EGRESS', recorder: true, hidden: true });
    const sAg = room.session(s.u.B, base + 600, { kind: 'AGENT', agent: true });
    const sHid = room.session(s.u.B, base + 700, { hidden: true });
    const c1 = await run(s, [
      [room.joined(sA), ['call.member_joined']],
      [room.joined(sEg), []], [room.joined(sAg), []], [room.joined(sHid), []],
    ]);
    assert.equal(c1.status, 'ringing', 'a recorder, an agent or a hidden participant does not answer for the callee');
    assert.deepEqual(c1.members[1], s.created.members[1], 'the callee is untouched');
    assert.equal(c1.participants.length, 4, 'all listed as participants');
    const sB = room.session(s.u.B, base + 1250);
    const c2 = await run(s, [[room.joined(sB), ['call.accepted', 'call.active', 'call.member_joined']]]);
    assert.equal(c2.answered_at, iso(base + 1250));
  });

  it('group: the room is empty when the last member leaves, even with an agent still in', async () => {
    const s = S.nmg;
    const room = new LkRoom(s.room, { creationMs: base });
    const sA = room.session(s.u.A, base + 250);
    const sB = room.session(s.u.B, base + 1250);
    const sAg = room.session('agent-' + lkId('AJ_'), base + 1300, { kind: 'AGENT', agent: true });
    const c = await run(s, [
      [room.joined(sA), ['call.member_joined']],
      [room.joined(sB), ['call.accepted', 'call.active', 'call.member_joined']],
      [room.joined(sAg), []],
      [room.left(sA, base + 3000), ['call.member_left']],
      [room.left(sB, base + 4000), ['call.member_left', 'call.ended']],
    ]);
    assert.deepEqual([c.status, c.outcome, c.end_cause, c.ended_at], ['ended', 'completed', 'room_empty', iso(base + 4000)]);
    assert.deepEqual(c.members.map((x) => x.invite), ['accepted', 'accepted', 'cancelled']);
    const c2 = await run(s, [[room.left(sAg, base + 5000), []]]);
    assert.deepEqual(c2.participants.find((x) => x.sid === sAg.sid), { ...p(s, 'A', sAg, base + 1300, base + 5000, 'CLIENT_INITIATED'), user: sAg.identity });
  });

  it('events of rooms no call owns: 200, stored, and no call changes', async () => {
    const s = S.unknown;
    const before1 = await srv.getCall(s.id);
    const before2 = await srv.getCall(S.o2o.id);
    const near = [`call_${randomUUIDv7Like()}`, s.id, s.room.toUpperCase(), `${s.room}x`, 'mytestroom'];
    for (const name of near) {
      const room = new LkRoom(name, { creationMs: base });
      const sx = room.session(s.u.B, base + 250); // a real member's identity, in the wrong room
      for (const ev of [room.started(base), room.joined(sx), room.finished(base + 900, 'ROOM_END_API_DELETE'), room.left(sx, base + 1000)]) {
        await deliver(srv, ev);
      }
    }
    // No room at all, and the LIVEKIT.md test vector (a), a real Go body with its spaces.
    await deliver(srv, rawEvent(goJson({ event: 'participant_joined', participant: { sid: lkId('PA_'), identity: s.u.A }, id: lkId('EV_'), createdAt: nowS() })));
    const vectorA = '{"event":"room_started", "room":{"sid":"RM_TkVjUvAqgzKz", "name":"mytestroom", "emptyTimeout":300, "creationTime":"1628545903", "turnPassword":"ICkSr2rEeslkN6e9bXL4Ji5zzMD5Z7zzr6ulOaxMj6N", "enabledCodecs":[{"mime":"audio/opus"}, {"mime":"video/VP8"}]}}';
    assert.equal(sha256b64(vectorA), 'CoEQz1chqJ9bnZRcORddjplkvpjmPujmLTR42DbefYI=', 'test vector (a) digest');
    // Vector (a) has no id (that SDK test predates ids): LiveKit always sends one, so add it the Go way.
    const withId = vectorA.slice(0, -1) + `, "id":"${lkId('EV_')}", "createdAt":"${nowS()}"}`;
    await deliver(srv, rawEvent(withId));
    assert.deepEqual(await cursor.next(), [], 'no feed event at all');
    assert.deepEqual(await srv.getCall(s.id), before1);
    assert.deepEqual(await srv.getCall(S.o2o.id), before2);
  });
});

describe('signatures (LIVEKIT.md §2): 401 and nothing stored', () => {
  it('every forgery is 401 unauthorized and stores nothing; the same event id sent correctly afterwards is applied', async () => {
    const s = S.forge;
    const { apiKey, apiSecret } = srv.secrets;
    const room = new LkRoom(s.room, { creationMs: base });
    const sB = room.session(s.u.B, base + 1250);
    const ev = room.joined(sB);
    const body = ev.body;
    const other = room.joined(room.session(s.u.B, base + 1300));
    const altered = body.replace(`"joinedAtMs":"${base + 1250}"`, `"joinedAtMs":"${base + 1251}"`);
    assert.notEqual(altered, body);
    const now = nowS();
    const claims = (extra = {}) => ({ iss: apiKey, nbf: now, iat: now, exp: now + 300, sha256: sha256b64(body), ...extra });
    const good = await signWebhook(body, apiKey, apiSecret);
    const [gh, , gs] = good.split('.');
    const otherTok = await signWebhook(other.body, apiKey, apiSecret);
    // A digest with '+' or '/', so its URL-safe spelling differs.
    const hex = Buffer.from(sha256b64(body), 'base64').toString('hex');
    const urlsafe = sha256b64(body).replace(/\+/g, '-').replace(/\//g, '_');
    const unpadded = sha256b64(body).replace(/=+$/, '');
    const cases = [
      ['no Authorization header', body, undefined],
      ['empty Authorization', body, ''],
      ['the body changed after signing', altered, good],
      ['a newline added after signing', body + '\n', good],
      ['the body re-serialised (pretty) after signing', JSON.stringify(JSON.parse(body), null, 1), good],
      ['wrong secret', body, await signWebhook(body, apiKey, apiSecret + 'x')],
      ['unknown key', body, await signWebhook(body, 'APIunknown', apiSecret)],
      ['a rotation key id with the main secret', body, await signWebhook(body, ROT_KEY, apiSecret)],
      ['expired (exp 120 s ago, beyond the 60 s leeway)', body, handJwt(claims({ nbf: now - 420, iat: now - 420, exp: now - 120 }), apiSecret)],
      ['no exp', body, handJwt((({ exp, ...c }) => c)(claims()), apiSecret)],
      ['exp as a string', body, handJwt(claims({ exp: String(now + 300) }), apiSecret)],
      ['nbf 120 s ahead', body, handJwt(claims({ nbf: now + 120 }), apiSecret)],
      ['no sha256 claim (SDK token without it)', body, await signWebhook(body, apiKey, apiSecret, { sha256: null })],
      ['sha256 of another body', body, await signWebhook(body, apiKey, apiSecret, { sha256: sha256b64(other.body) })],
      ['sha256 as hex', body, handJwt(claims({ sha256: hex }), apiSecret)],
      ['sha256 unpadded', body, handJwt(claims({ sha256: unpadded }), apiSecret)],
      ...(urlsafe !== sha256b64(body) ? [['sha256 URL-safe base64', body, handJwt(claims({ sha256: urlsafe }), apiSecret)]] : []),
      ['alg none', body, handJwt(claims(), null, { header: { alg: 'none', typ: 'JWT' } })],
      ['HS512 with the right secret', body, handJwt(claims(), apiSecret, { header: { alg: 'HS512', typ: 'JWT' }, hmac: 'sha512' })],
      ['HS384 with the right secret', body, handJwt(claims(), apiSecret, { header: { alg: 'HS384', typ: 'JWT' }, hmac: 'sha384' })],
      ['another event\'s token', body, otherTok],
      ['a valid signature over another payload', body, `${gh}.${otherTok.split('.')[1]}.${gs}`],
      ['signature truncated', body, good.slice(0, -2)],
      ['signature altered', body, good.slice(0, -5) + (good.at(-5) === 'A' ? 'B' : 'A') + good.slice(-4)],
      ['two segments only', body, good.split('.').slice(0, 2).join('.')],
      ['garbage', body, 'not-a-jwt'],
      ['Basic scheme', body, `Basic ${good}`],
    ];
    const untouched = await srv.getCall(s.id);
    for (const [what, b, auth] of cases) {
      const r = await postWebhook(srv, b, auth);
      assertError(r, 401, 'unauthorized');
      assert.deepEqual(await srv.getCall(s.id), untouched, `${what}: the call is untouched`);
    }
    assert.deepEqual(await cursor.next(), [], 'no forgery appended a feed event');
    // Now the same event id, as LiveKit sends it: applied, so nothing above was stored.
    const c = await run(s, [[ev, ['call.accepted', 'call.active', 'call.member_joined']]]);
    assert.deepEqual(c.participants, [p(s, 'B', sB, base + 1250, null)]);
  });

  it('accepted: a "Bearer " prefix, a Go token (typ, iat), exp within the 60 s leeway, nbf 30 s ahead, any Content-Type', async () => {
    const s = S.forge;
    const { apiKey, apiSecret } = srv.secrets;
    const room = new LkRoom(s.room, { creationMs: base });
    const sA = room.session(s.u.A, base + 250);
    const now = nowS();
    const go = (b, extra = {}) => handJwt({ iss: apiKey, exp: now + 300, nbf: now, iat: now, sha256: sha256b64(b), ...extra }, apiSecret);
    const evA = room.joined(sA);
    let r = await postWebhook(srv, evA.body, `Bearer ${await signWebhook(evA.body, apiKey, apiSecret)}`);
    assert.equal(r.status, 200, `Bearer prefix: ${r.text}`);
    assert.equal(member(await srv.getCall(s.id), s.u.A).in_room, true, 'applied');
    const variants = [
      ['Go token', (b) => go(b), {}],
      ['exp 30 s ago', (b) => go(b, { exp: now - 30, nbf: now - 330, iat: now - 330 }), {}],
      ['nbf 30 s ahead', (b) => go(b, { nbf: now + 30 }), {}],
      ['no Content-Type', (b) => go(b), { 'Content-Type': null }],
      ['Content-Type application/json', (b) => go(b), { 'Content-Type': 'application/json' }],
      ['Content-Type text/plain', (b) => go(b), { 'Content-Type': 'text/plain' }],
    ];
    for (const [what, sign, headers] of variants) {
      const ev = room.track('track_published', sA, base + 500, 'CAMERA');
      r = await postWebhook(srv, ev.body, sign(ev.body), headers);
      assert.equal(r.status, 200, `${what}: ${r.status} ${r.text}`);
      assert.deepEqual(r.body, { status: 'ok' });
    }
  });

  it('key rotation: a LIVEKIT_KEYS key is accepted; LIVEKIT.md\'s expired Go token is 401, the same body freshly signed is 200', async () => {
    const s = S.rot;
    const room = new LkRoom(s.room, { creationMs: base });
    const sA = room.session(s.u.A, base + 250);
    const sB = room.session(s.u.B, base + 1250);
    await step(srv, cursor, s.id, room.joined(sA), { key: ROT_KEY, secret: ROT_SECRET });
    const r1 = await step(srv, cursor, s.id, room.joined(sB), { key: DEV_KEY, secret: DEV_SECRET });
    assert.deepEqual(r1.types, ['call.accepted', 'call.active', 'call.member_joined'], 'applied');
    assert.equal(r1.call.participants.length, 2);

    const vectorB = '{"event":"room_finished","room":{"sid":"RM_tQ8xVvZ3kT9a","name":"call-7f3a","emptyTimeout":300,"departureTimeout":20,"creationTime":"1767225600","creationTimeMs":"1767225600123","enabledCodecs":[{"mime":"audio/opus"},{"mime":"video/VP8"}],"version":{"unixMicro":"1767227433001207","ticks":5}},"id":"EV_St9wgVG8SGcu","createdAt":"1767227433"}';
    // LIVEKIT.md calls it 342 bytes; the text it quotes, whose digest it gives, is 341.
    assert.equal(Buffer.byteLength(vectorB), 341);
    assert.equal(sha256b64(vectorB), 'xkkxQgDO+GkzqepyAN8k9E53jMOQDO7V012xLYwkJCE=', 'test vector (b) digest');
    const goToken = 'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJBUElkZXZrZXkiLCJleHAiOjE3NjcyMjc3MzMsIm5iZiI6MTc2NzIyNzQzMywiaWF0IjoxNzY3MjI3NDMzLCJzaGEyNTYiOiJ4a2t4UWdETytHa3pxZXB5QU44azlFNTNqTU9RRE83VjAxMnhMWXdrSkNFPSJ9.5Ua-8CZnLKJn8EXxfxH-6EOsPR0__-uUuetSxl6xGa4';
    assertError(await postWebhook(srv, vectorB, goToken), 401, 'unauthorized');
    const r = await postWebhook(srv, vectorB, await signWebhook(vectorB, DEV_KEY, DEV_SECRET));
    assert.equal(r.status, 200, `fresh signature: ${r.text}`);
    assert.deepEqual(await cursor.next(), [], 'an unknown room: nothing appended');
  });
});

describe('bodies', () => {
  it('400 for bodies that are not a webhook event (each correctly signed); nothing stored', async () => {
    const s = S.bad;
    const room = new LkRoom(s.room, { creationMs: base });
    const sA = room.session(s.u.A, base + 250);
    const ev = room.joined(sA);
    const obj = JSON.parse(ev.body);
    const bodies = [
      ['not JSON', 'event=participant_joined'],
      ['empty', ''],
      ['truncated JSON', ev.body.slice(0, -3)],
      ['a JSON array', `[${ev.body}]`],
      ['a JSON string', JSON.stringify(ev.body)],
      ['null', 'null'],
      ['an empty object', '{}'],
      ['no event', JSON.stringify({ ...obj, event: undefined })],
      ['no id', JSON.stringify({ ...obj, id: undefined })],
      ['event a number', JSON.stringify({ ...obj, event: 2 })],
      ['id a number', JSON.stringify({ ...obj, id: 7 })],
      ['createdAt not a number', JSON.stringify({ ...obj, createdAt: 'yesterday' })],
      ['room a string', JSON.stringify({ ...obj, room: s.room })],
      ['participant an array', JSON.stringify({ ...obj, participant: [] })],
      ['participant.sid a number', JSON.stringify({ ...obj, participant: { ...obj.participant, sid: 12 } })],
      ['joinedAtMs not a number', JSON.stringify({ ...obj, participant: { ...obj.participant, joinedAtMs: '12a' } })],
    ];
    for (const [what, b] of bodies) {
      const r = await postWebhook(srv, b, await signWebhook(b, srv.secrets.apiKey, srv.secrets.apiSecret));
      assert.equal(r.status, 400, `${what}: ${r.status} ${r.text}`);
      assertError(r, 400, 'bad_request');
    }
    assert.deepEqual(await srv.getCall(s.id), s.created, 'the call is untouched');
    assert.deepEqual(await cursor.next(), []);
    // The id of the refused bodies, now as a real event: applied.
    const c = await run(s, [[ev, ['call.member_joined']]]);
    assert.equal(member(c, s.u.A).in_room, true);
  });

  it('413 over CALLSTATE_MAX_BODY_BYTES (65536), exactly the limit is accepted; the refused id is not stored', async () => {
    const s = S.big;
    const room = new LkRoom(s.room, { creationMs: base });
    const sA = room.session(s.u.A, base + 250);
    const ev = room.joined(sA);
    const obj = JSON.parse(ev.body);
    const sized = (n) => {
      const b0 = JSON.stringify({ ...obj, room: { ...obj.room, metadata: '' } });
      const b = JSON.stringify({ ...obj, room: { ...obj.room, metadata: 'm'.repeat(n - Buffer.byteLength(b0)) } });
      assert.equal(Buffer.byteLength(b), n);
      return b;
    };
    const over = sized(65537);
    assertError(await postWebhook(srv, over, await signWebhook(over, srv.secrets.apiKey, srv.secrets.apiSecret)), 413, 'payload_too_large');
    assert.deepEqual(await srv.getCall(s.id), s.created);
    const r = await step(srv, cursor, s.id, rawEvent(sized(65536), base + 250, 'joined, 65536 bytes'));
    assert.deepEqual(r.types, ['call.member_joined'], 'the same id at exactly the limit is applied');
  });

  it('LiveKit\'s default limits (256-byte identity, name and room name) are webhook events: 200', async () => {
    const s = S.lim;
    const room = new LkRoom(s.room, { creationMs: base });
    const sA = room.session(s.u.A, base + 250, { name: 'é'.repeat(128) });
    let r = await step(srv, cursor, s.id, room.joined(sA));
    assert.deepEqual(r.types, ['call.member_joined'], 'a 256-byte display name');
    const far = new LkRoom('r'.repeat(256), { creationMs: base });
    await deliver(srv, far.started(base));
    const sAg = room.session('agent-'.padEnd(256, 'x'), base + 300, { kind: 'AGENT', agent: true, name: 'n'.repeat(256) });
    r = await step(srv, cursor, s.id, { ...room.joined(sAg), label: 'joined: an agent with a 256-byte identity' });
    assert.ok(r.call.participants.some((x) => x.sid === sAg.sid), 'a 256-byte identity (a non-member) is listed');
  });

  it('Go-style bodies: spaces after commas, int64 as numbers, enums as numbers, snake_case keys, unknown fields and events', async () => {
    const s = S.go1;
    const rs = Math.floor(base / 1000);
    const room = { sid: lkId('RM_'), name: s.room };
    const [pa, pb] = [lkId('PA_'), lkId('PA_')];
    const g = (o, t, label) => rawEvent(goJson(o), t, label);
    const c = await run(s, [
      [g({
        event: 'participant_joined', room: { ...room, emptyTimeout: 300, creationTime: rs, numParticipants: 1 },
        participant: {
          sid: pa, identity: s.u.A, state: 2, joinedAt: rs, joinedAtMs: base + 250, name: 'A', version: 3,
          permission: { canSubscribe: true, canPublish: true, canPublishData: true, canPublishSources: [1, 2] }, kind: 0,
        }, id: lkId('EV_'), createdAt: rs,
      }, base + 250, 'joined A (numbers)'), ['call.member_joined']],
      [g({ event: 'egress_started', egressInfo: { egressId: lkId('EG_'), roomId: room.sid, roomName: s.room, status: 0, startedAt: `${base}000000` }, id: lkId('EV_'), createdAt: rs }, base, 'egress_started'), []],
      [g({ event: 'participant_metadata_changed', room, participant: { sid: pa, identity: s.u.A }, id: lkId('EV_'), createdAt: rs, futureField: { x: [1, 2] } }, base, 'unknown event'), []],
      [g({
        event: 'participant_joined', room: { sid: room.sid, name: room.name, creation_time: String(rs) },
        participant: { sid: pb, identity: s.u.B, state: 'ACTIVE', joined_at: String(rs + 1), joined_at_ms: String(base + 1250), is_publisher: true, client_protocol: 1, futureField: 'x' },
        id: lkId('EV_'), created_at: String(rs + 1), num_dropped: 2, anotherFutureField: true,
      }, base + 1250, 'joined B (snake_case)'), ['call.accepted', 'call.active', 'call.member_joined']],
      [g({ event: 'participant_left', room, participant: { sid: pb, identity: s.u.B, state: 3, joinedAt: rs + 1, joinedAtMs: base + 1250, disconnectReason: 1 }, id: lkId('EV_'), createdAt: rs + 3 }, base + 3000, 'left B (reason 1)'), ['call.member_left', 'call.ended']],
      [g({ event: 'participant_left', room, participant: { sid: pa, identity: s.u.A, state: 'DISCONNECTED', joined_at_ms: base + 250, disconnect_reason: 5 }, id: lkId('EV_'), created_at: rs + 4 }, base + 4000, 'left A (snake, reason 5)'), ['call.member_left']],
    ]);
    assert.deepEqual([c.status, c.end_cause, c.answered_at, c.ended_at], ['ended', 'leave', iso(base + 1250), iso(base + 3000)]);
    assert.deepEqual(c.participants, [
      { user: s.u.A, sid: pa, joined_at: iso(base + 250), left_at: iso(base + 4000), disconnect_reason: 'ROOM_DELETED' },
      { user: s.u.B, sid: pb, joined_at: iso(base + 1250), left_at: iso(base + 3000), disconnect_reason: 'CLIENT_INITIATED' },
    ]);

    // roomEndReason as a number and as a snake_case key.
    for (const [name, key, val, want, outcome] of [['go2', 'roomEndReason', 1, 'ROOM_END_API_DELETE', 'completed'], ['go3', 'room_end_reason', 'ROOM_END_SERVER_SHUTDOWN', 'ROOM_END_SERVER_SHUTDOWN', 'cancelled']]) {
      const t = S[name];
      const lr = new LkRoom(t.room, { creationMs: base });
      await deliver(srv, lr.joined(lr.session(t.u.A, base + 250)));
      if (outcome === 'completed') await deliver(srv, lr.joined(lr.session(t.u.B, base + 1250)));
      await deliver(srv, g({ event: 'room_finished', room: { sid: lr.sid, name: t.room }, id: lkId('EV_'), createdAt: rs + 3, [key]: val }, base + 3000));
      const x = assertCallShape(await srv.getCall(t.id));
      assert.deepEqual([x.status, x.outcome, x.end_cause, x.room_end_reason], ['ended', outcome, 'room_finished', want], `${key}: ${val}`);
    }
  });
});

describe('the join timeout (checked)', () => {
  it('fires for the aborted join (failed, join_timeout) and for no call where a callee joined', async () => {
    const [x] = await pollUntil(async () => {
      const c = await srv.getCall(S.ab1.id);
      return c.status === 'ended' ? c : null;
    }, Math.max(0, jt.ab1 - Date.now()) + 3000);
    assert.ok(x, 'the aborted call ended');
    assert.deepEqual([x.outcome, x.end_cause], ['failed', 'join_timeout']);
    assert.ok(ms(x.ended_at) >= jt.ab1 && ms(x.ended_at) <= jt.ab1 + 1000, `ended ${ms(x.ended_at) - jt.ab1} ms after the join deadline`);
    const wait = Math.max(jt.jt1, jt.jt2) + 1500 - Date.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    for (const name of ['jt1', 'jt2']) {
      const c = assertCallShape(await srv.getCall(S[name].id));
      assert.equal(c.status, 'active', `${name}: a callee joined, so the join timeout does not fail the call`);
    }
  });
});

describe('the feed', () => {
  it('is consistent after all of the above: envelope, seq, consecutive call_version, data = the call', async () => {
    const all = await srv.allEvents(0);
    assertFeed(all);
    const per = byCall(all);
    // Every call's last event holds the call's state as it is now: status, outcome, cause and
    // each member's invite and in_room (late webhooks may still fill in times without an event).
    const state = (c) => ({
      status: c.status, outcome: c.outcome, end_cause: c.end_cause, room_end_reason: c.room_end_reason, ended_at: c.ended_at,
      members: c.members.map((x) => [x.user, x.invite, x.in_room]),
    });
    for (const s of Object.values(S)) {
      const evs = per.get(s.id) || [];
      assert.ok(evs.length >= 1);
      assert.deepEqual(state(evs.at(-1).data), state(await srv.getCall(s.id)), `${s.id}: the last event's call`);
    }
    assert.ok(all.some((e) => e.type === 'presence.changed'), 'members entering rooms moved their presence');
  });
});


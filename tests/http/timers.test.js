// Timers: ring timeout (missed), ring timeout in an active group call, join timeout (failed:
// without webhooks nobody joins, so every accepted call fails after the join timeout), and
// timers that survive a restart. API.md: timers fire within 1 s of their deadline.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, shutdown, assertCallShape, assertFeed, byCall, invites, member, newCall, ms, pollUntil, sleep,
} from './harness.js';

const RING_S = 5;
const JOIN_S = 5;
const SLACK_MS = 300; // our polling interval plus a request

/**
 * Poll until pred(call) holds both for GET /v1/calls/{id} and for the data of the call's last
 * feed event: a timer has fired when its change and its events are committed (the chat backend
 * learns of it from the feed), not merely when a read shows it. Returns [call, observedAtMs].
 */
async function waitFor(srv, id, pred, timeoutMs, what) {
  let last;
  let lastEv;
  const [c, at] = await pollUntil(async () => {
    last = await srv.getCall(id);
    if (!pred(last)) return null;
    const evs = eventsOf(await srv.allEvents(0), id);
    lastEv = evs[evs.length - 1];
    return lastEv && pred(lastEv.data) ? last : null;
  }, timeoutMs, 50);
  assert.ok(c, `${what}: not reached within ${timeoutMs} ms; last GET: ${JSON.stringify(last)}; last event: ${JSON.stringify(lastEv)}`);
  return [c, at];
}

function eventsOf(events, id) {
  return byCall(events).get(id) || [];
}

describe('timers', () => {
  let srv;
  before(async () => { srv = await startServer({ env: { CALLSTATE_JOIN_TIMEOUT_S: JOIN_S } }); });
  after(async () => { await shutdown(srv); });

  it('unanswered calls become ended/missed within 1 s of the ring deadline (one-to-one, group, many at once)', async () => {
    const one = newCall(1, { ring_timeout_s: RING_S });
    const group = newCall(3, { ring_timeout_s: RING_S });
    const c1 = (await srv.createCall(one)).call;
    const c2 = (await srv.createCall(group)).call;
    await srv.act(c2.id, 'decline', { user: group.callees[0] });
    const many = await Promise.all(Array.from({ length: 20 }, () => srv.createCall(newCall(2, { ring_timeout_s: RING_S }))));

    const deadline1 = ms(c1.created_at) + RING_S * 1000;
    // Not before the deadline.
    await sleep(Math.max(0, deadline1 - Date.now() - 700));
    assert.equal((await srv.getCall(c1.id)).status, 'ringing', 'still ringing shortly before the deadline');

    const [x1, seen1] = await waitFor(srv, c1.id, (c) => c.status === 'ended', RING_S * 1000 + 3000, 'one-to-one ring timeout');
    assert.ok(seen1 <= deadline1 + 1000 + SLACK_MS, `ended ${seen1 - deadline1} ms after the deadline`);
    assertCallShape(x1);
    assert.equal(x1.outcome, 'missed');
    assert.equal(x1.end_cause, 'ring_timeout');
    assert.equal(x1.answered_at, null);
    assert.equal(x1.duration_ms, null);
    assert.ok(ms(x1.ended_at) >= deadline1 && ms(x1.ended_at) <= deadline1 + 1000,
      `ended_at ${x1.ended_at} within 1 s of the deadline ${new Date(deadline1).toISOString()}`);
    assert.deepEqual(invites(x1), { [one.caller]: 'accepted', [one.callees[0]]: 'missed' });
    assert.equal(member(x1, one.callees[0]).responded_at, null);

    const deadline2 = ms(c2.created_at) + RING_S * 1000;
    const [x2, seen2] = await waitFor(srv, c2.id, (c) => c.status === 'ended', 3000, 'group ring timeout');
    assert.ok(seen2 <= deadline2 + 1000 + SLACK_MS, `group ended ${seen2 - deadline2} ms after the deadline`);
    assert.equal(x2.outcome, 'missed');
    assert.equal(x2.end_cause, 'ring_timeout');
    assert.deepEqual(invites(x2), {
      [group.caller]: 'accepted', [group.callees[0]]: 'declined', [group.callees[1]]: 'missed', [group.callees[2]]: 'missed',
    });

    await sleep(Math.max(0, Math.max(...many.map((g) => ms(g.call.created_at))) + RING_S * 1000 + 1000 + SLACK_MS - Date.now()));
    for (const g of many) {
      const c = await srv.getCall(g.call.id);
      const d = ms(g.call.created_at) + RING_S * 1000;
      assert.equal(c.status, 'ended', `call ${c.id} not ended 1 s after its deadline`);
      assert.equal(c.outcome, 'missed');
      assert.ok(ms(c.ended_at) >= d && ms(c.ended_at) <= d + 1000, `ended_at ${ms(c.ended_at) - d} ms after the deadline`);
    }

    const events = await srv.allEvents(0);
    assertFeed(events);
    const e1 = eventsOf(events, c1.id);
    assert.deepEqual(e1.map((e) => e.type), ['call.ringing', 'call.missed', 'call.ended']);
    assert.deepEqual(e1[1].data, e1[2].data, 'missed and ended come from one change');
    assert.deepEqual(e1[2].data, x1);
    const e2 = eventsOf(events, c2.id);
    assert.deepEqual(e2.map((e) => e.type), ['call.ringing', 'call.declined', 'call.missed', 'call.missed', 'call.ended']);
    assert.deepEqual(e2[4].data, x2);
  });

  it('active group call: pending invites become missed at the ring timeout and the call goes on; then the join timeout fails it', async () => {
    const req = newCall(3, { ring_timeout_s: RING_S });
    const { call } = await srv.createCall(req);
    const [b, c, d] = req.callees;
    const created = ms(call.created_at);
    await sleep(Math.max(0, created + 2500 - Date.now()));
    const acc = await srv.act(call.id, 'accept', { user: b });
    assert.equal(acc.call.status, 'active');
    const ringDeadline = created + RING_S * 1000;
    const joinDeadline = ms(acc.call.answered_at) + JOIN_S * 1000;

    const [x, seen] = await waitFor(srv, call.id, (k) => k.members.some((m) => m.invite === 'missed'), RING_S * 1000, 'pending invites missed');
    assert.ok(seen <= ringDeadline + 1000 + SLACK_MS, `missed ${seen - ringDeadline} ms after the ring deadline`);
    assert.ok(Date.now() < joinDeadline, 'checked before the join deadline');
    assertCallShape(x);
    assert.equal(x.status, 'active', 'the call goes on');
    assert.deepEqual(invites(x), { [req.caller]: 'accepted', [b]: 'accepted', [c]: 'missed', [d]: 'missed' });
    assert.equal(x.outcome, null);

    const [y, seenEnd] = await waitFor(srv, call.id, (k) => k.status === 'ended', JOIN_S * 1000 + 3000, 'join timeout');
    assert.ok(seenEnd <= joinDeadline + 1000 + SLACK_MS, `failed ${seenEnd - joinDeadline} ms after the join deadline`);
    assert.equal(y.outcome, 'failed');
    assert.equal(y.end_cause, 'join_timeout');
    assert.deepEqual(invites(y), { [req.caller]: 'accepted', [b]: 'accepted', [c]: 'missed', [d]: 'missed' });
    assert.ok(ms(y.ended_at) >= joinDeadline && ms(y.ended_at) <= joinDeadline + 1000);
    assert.equal(y.duration_ms, ms(y.ended_at) - ms(y.answered_at));

    const evs = eventsOf(await srv.allEvents(0), call.id);
    assert.deepEqual(evs.map((e) => e.type), ['call.ringing', 'call.accepted', 'call.active', 'call.missed', 'call.missed', 'call.ended']);
    assert.equal(evs[3].data.status, 'active');
    assert.deepEqual(evs[3].data, evs[4].data);
    assert.equal(evs[5].data.outcome, 'failed');
  });

  it('an accepted call that nobody joins ends failed/join_timeout within 1 s of the join deadline', async () => {
    const req = newCall(1, { kind: 'video' });
    const { call } = await srv.createCall(req);
    const acc = await srv.act(call.id, 'accept', { user: req.callees[0] });
    const joinDeadline = ms(acc.call.answered_at) + JOIN_S * 1000;
    await sleep(Math.max(0, joinDeadline - Date.now() - 700));
    assert.equal((await srv.getCall(call.id)).status, 'active', 'still active shortly before the join deadline');
    const [y, seen] = await waitFor(srv, call.id, (k) => k.status === 'ended', 3000, 'join timeout');
    assert.ok(seen <= joinDeadline + 1000 + SLACK_MS, `failed ${seen - joinDeadline} ms after the deadline`);
    assertCallShape(y);
    assert.equal(y.outcome, 'failed');
    assert.equal(y.end_cause, 'join_timeout');
    assert.ok(ms(y.ended_at) >= joinDeadline && ms(y.ended_at) <= joinDeadline + 1000);
    assert.equal(y.duration_ms, ms(y.ended_at) - ms(y.answered_at));
    assert.deepEqual(invites(y), { [req.caller]: 'accepted', [req.callees[0]]: 'accepted' });
    const evs = eventsOf(await srv.allEvents(0), call.id);
    assert.deepEqual(evs.map((e) => e.type), ['call.ringing', 'call.accepted', 'call.active', 'call.ended']);
    assert.deepEqual(evs[3].data, y);
  });

  it('a call ended before its deadline is not touched by the timer', async () => {
    const req = newCall(1, { ring_timeout_s: RING_S });
    const { call } = await srv.createCall(req);
    const ended = await srv.act(call.id, 'end', { user: req.caller });
    await sleep(Math.max(0, ms(call.created_at) + RING_S * 1000 + 1200 - Date.now()));
    assert.deepEqual(await srv.getCall(call.id), ended);
    const evs = eventsOf(await srv.allEvents(0), call.id);
    assert.deepEqual(evs.map((e) => e.type), ['call.ringing', 'call.ended']);
  });
});

describe('timers across a restart', () => {
  it('a ringing call whose deadline passed while the server was down is settled within 1 s of start', async () => {
    let srv = await startServer({ env: { CALLSTATE_JOIN_TIMEOUT_S: JOIN_S } });
    const { dir, secrets } = srv;
    try {
      const req = newCall(1, { ring_timeout_s: RING_S });
      const { call } = await srv.createCall(req);
      const deadline = ms(call.created_at) + RING_S * 1000;
      await srv.stop({ keepDir: true });
      await sleep(Math.max(0, deadline + 1500 - Date.now()));
      srv = await startServer({ dir, secrets, env: { CALLSTATE_JOIN_TIMEOUT_S: JOIN_S } });
      const up = Date.now();
      const [x, seen] = await waitFor(srv, call.id, (c) => c.status === 'ended', 3000, 'settled after restart');
      assert.ok(seen - up <= 1000 + SLACK_MS, `settled ${seen - up} ms after start`);
      assertCallShape(x);
      assert.equal(x.outcome, 'missed');
      assert.equal(x.end_cause, 'ring_timeout');
      assert.ok(ms(x.ended_at) >= deadline);
      assert.deepEqual(invites(x), { [req.caller]: 'accepted', [req.callees[0]]: 'missed' });
      const evs = eventsOf(await srv.allEvents(0), call.id);
      assert.deepEqual(evs.map((e) => e.type), ['call.ringing', 'call.missed', 'call.ended']);
    } finally {
      try {
        await shutdown(srv);
      } finally {
        srv.ownsDir = true;
        srv.cleanup();
      }
    }
  });

  it('timers armed before a restart still fire on time after it; calls and the feed survive', async () => {
    let srv = await startServer({ env: { CALLSTATE_JOIN_TIMEOUT_S: JOIN_S } });
    const { dir, secrets } = srv;
    try {
      const ringing = newCall(1, { ring_timeout_s: RING_S });
      const c1 = (await srv.createCall(ringing)).call;
      const active = newCall(1);
      const c2 = (await srv.createCall(active)).call;
      const acc = await srv.act(c2.id, 'accept', { user: active.callees[0] });
      const feedBefore = await srv.allEvents(0);
      await srv.stop({ keepDir: true });
      srv = await startServer({ dir, secrets, env: { CALLSTATE_JOIN_TIMEOUT_S: JOIN_S } });
      assert.deepEqual((await srv.allEvents(0)).slice(0, feedBefore.length), feedBefore, 'the feed survives');
      assert.equal((await srv.getCall(c1.id)).status, 'ringing');
      const ringDeadline = ms(c1.created_at) + RING_S * 1000;
      const joinDeadline = ms(acc.call.answered_at) + JOIN_S * 1000;
      const [x1, seen1] = await waitFor(srv, c1.id, (c) => c.status === 'ended', RING_S * 1000 + 3000, 'ring timeout after restart');
      assert.ok(seen1 <= ringDeadline + 1000 + SLACK_MS, `${seen1 - ringDeadline} ms late`);
      assert.equal(x1.outcome, 'missed');
      const [x2, seen2] = await waitFor(srv, c2.id, (c) => c.status === 'ended', JOIN_S * 1000 + 3000, 'join timeout after restart');
      assert.ok(seen2 <= joinDeadline + 1000 + SLACK_MS, `${seen2 - joinDeadline} ms late`);
      assert.equal(x2.outcome, 'failed');
      assert.equal(x2.end_cause, 'join_timeout');
      // Ids stay strictly increasing across the restart.
      const later = (await srv.createCall(newCall(1))).call;
      assert.ok(later.id > c2.id, 'ids after a restart are larger');
      assertFeed(await srv.allEvents(0));
    } finally {
      try {
        await shutdown(srv);
      } finally {
        srv.ownsDir = true;
        srv.cleanup();
      }
    }
  });
});

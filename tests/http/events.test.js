// The events feed GET /v1/events?after=SEQ&limit=N: every transition appended, the envelope
// of API.md, seq order, call_version per call, paging that never misses or repeats.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, shutdown, assertError, feedEvents, newCall, assertFeed, byCall,
} from './harness.js';

describe('GET /v1/events', () => {
  let srv;
  before(async () => { srv = await startServer(); });
  after(async () => { await shutdown(srv); });

  it('starts empty', async () => {
    const r = await srv.svc('GET', '/v1/events?after=0');
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(feedEvents(r.body), []);
  });

  const sc = {};
  it('every transition appends its events, with the call after the change as data', async () => {
    // c1: accept then the callee leaves a two-person call.
    sc.r1 = newCall(1);
    sc.c1 = (await srv.createCall(sc.r1)).call.id;
    await srv.act(sc.c1, 'accept', { user: sc.r1.callees[0] });
    await srv.act(sc.c1, 'leave', { user: sc.r1.callees[0] });
    // c2: the only callee declines.
    sc.r2 = newCall(1, { kind: 'video' });
    sc.c2 = (await srv.createCall(sc.r2)).call.id;
    await srv.act(sc.c2, 'decline', { user: sc.r2.callees[0] });
    // c3: group: b declines, c accepts, c ends (d's pending invite is cancelled: no invite event).
    sc.r3 = newCall(3);
    sc.c3 = (await srv.createCall(sc.r3)).call.id;
    await srv.act(sc.c3, 'decline', { user: sc.r3.callees[0] });
    await srv.act(sc.c3, 'accept', { user: sc.r3.callees[1] });
    await srv.act(sc.c3, 'end', { user: sc.r3.callees[1] });
    // c4: the caller cancels.
    sc.r4 = newCall(2);
    sc.c4 = (await srv.createCall(sc.r4)).call.id;
    await srv.act(sc.c4, 'end', { user: sc.r4.caller });

    const events = await srv.allEvents(0);
    assertFeed(events);
    const per = byCall(events);
    assert.deepEqual([...per.keys()], [sc.c1, sc.c2, sc.c3, sc.c4], 'events come in the order of the changes');
    const types = (id) => per.get(id).map((e) => e.type);
    assert.deepEqual(types(sc.c1), ['call.ringing', 'call.accepted', 'call.active', 'call.ended']);
    assert.deepEqual(types(sc.c2), ['call.ringing', 'call.declined', 'call.ended']);
    assert.deepEqual(types(sc.c3), ['call.ringing', 'call.declined', 'call.accepted', 'call.active', 'call.ended']);
    assert.deepEqual(types(sc.c4), ['call.ringing', 'call.ended']);

    // data after each change
    const e1 = per.get(sc.c1);
    assert.equal(e1[0].data.status, 'ringing');
    assert.deepEqual(e1[1].data, e1[2].data, 'accepted and active come from one change: the same data');
    assert.equal(e1[1].data.status, 'active');
    assert.equal(e1[1].data.members[1].invite, 'accepted');
    assert.equal(e1[3].data.status, 'ended');
    assert.equal(e1[3].data.outcome, 'completed');
    assert.equal(e1[3].data.end_cause, 'leave');
    const e2 = per.get(sc.c2);
    assert.deepEqual(e2[1].data, e2[2].data);
    assert.equal(e2[2].data.outcome, 'declined');
    assert.equal(e2[2].data.kind, 'video');
    const e3 = per.get(sc.c3);
    assert.equal(e3[1].data.status, 'ringing', 'one decline in a group: still ringing');
    assert.equal(e3[1].data.members[1].invite, 'declined');
    assert.equal(e3[4].data.outcome, 'completed');
    assert.equal(e3[4].data.members[3].invite, 'cancelled');
    const e4 = per.get(sc.c4);
    assert.equal(e4[1].data.outcome, 'cancelled');

    for (const [id, evs] of per) {
      // one change with several events: consecutive call_version (assertFeed) and seq adjacency
      assert.deepEqual(evs[evs.length - 1].data, await srv.getCall(id), 'the last event holds the call as it is');
      assert.equal(evs[0].data.status, 'ringing');
    }
  });

  it('an ended call appends nothing more', async () => {
    const before1 = await srv.allEvents(0);
    const last = before1[before1.length - 1].seq;
    await srv.svc('POST', `/v1/calls/${sc.c2}/accept`, { user: sc.r2.callees[0] });
    await srv.svc('POST', `/v1/calls/${sc.c2}/decline`, { user: sc.r2.callees[0] });
    await srv.svc('POST', `/v1/calls/${sc.c2}/end`, { user: sc.r2.caller });
    await srv.svc('POST', `/v1/calls/${sc.c2}/leave`, { user: sc.r2.caller });
    await srv.svc('POST', `/v1/calls/${sc.c2}/token`, { user: sc.r2.caller });
    await srv.admin('POST', `/v1/calls/${sc.c2}/end`, {});
    const r = await srv.svc('GET', `/v1/events?after=${last}`);
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(feedEvents(r.body), []);
  });

  it('a token or a failed action appends nothing', async () => {
    const evs = await srv.allEvents(0);
    const last = evs[evs.length - 1].seq;
    const req = newCall(1);
    const { call } = await srv.createCall(req);
    await srv.act(call.id, 'token', { user: req.caller });
    await srv.svc('POST', `/v1/calls/${call.id}/accept`, { user: 'stranger' });
    await srv.svc('POST', `/v1/calls/${call.id}/accept`, {});
    const r = await srv.svc('GET', `/v1/events?after=${last}`);
    assert.deepEqual(feedEvents(r.body).map((e) => e.type), ['call.ringing']);
  });

  it('paging with the last seq never misses or repeats, at every limit', async () => {
    const all = await srv.allEvents(0);
    for (const limit of [1, 2, 3, 5, 7]) {
      const got = [];
      let after = 0;
      for (let i = 0; i < 1000; i++) {
        const r = await srv.svc('GET', `/v1/events?after=${after}&limit=${limit}`);
        assert.equal(r.status, 200, r.text);
        const evs = feedEvents(r.body);
        assert.ok(evs.length <= limit);
        got.push(...evs);
        if (evs.length < limit) break;
        after = evs[evs.length - 1].seq;
      }
      assert.deepEqual(got, all, `limit ${limit}`);
    }
    // after the last seq: nothing; after a middle seq: exactly the rest
    const r = await srv.svc('GET', `/v1/events?after=${all[all.length - 1].seq}`);
    assert.deepEqual(feedEvents(r.body), []);
    const mid = all[Math.floor(all.length / 2)].seq;
    const r2 = await srv.svc('GET', `/v1/events?after=${mid}&limit=500`);
    assert.deepEqual(feedEvents(r2.body), all.filter((e) => e.seq > mid));
    const r3 = await srv.svc('GET', '/v1/events?after=99999999999');
    assert.deepEqual(feedEvents(r3.body), []);
  });

  it('limit: default 100, max 500; 0, 501 and junk → 400', async () => {
    // 35 accepted calls append 105 events.
    for (let i = 0; i < 35; i++) {
      const req = newCall(1);
      const { call } = await srv.createCall(req);
      await srv.act(call.id, 'accept', { user: req.callees[0] });
    }
    const all = await srv.allEvents(0);
    assert.ok(all.length > 110, `${all.length} events`);
    let r = await srv.svc('GET', '/v1/events?after=0');
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(feedEvents(r.body), all.slice(0, 100), 'default limit 100');
    r = await srv.svc('GET', '/v1/events?after=0&limit=500');
    assert.deepEqual(feedEvents(r.body), all.slice(0, 500));
    r = await srv.svc('GET', '/v1/events?after=0&limit=1');
    assert.deepEqual(feedEvents(r.body), all.slice(0, 1));
    for (const bad of ['0', '501', 'abc', '-3', '2.5']) {
      assertError(await srv.svc('GET', `/v1/events?after=0&limit=${encodeURIComponent(bad)}`), 400, 'bad_request', 'limit');
    }
    for (const bad of ['abc', '1.5', '1e3']) {
      assertError(await srv.svc('GET', `/v1/events?after=${encodeURIComponent(bad)}`), 400, 'bad_request', 'after');
    }
  });

  it('racing accepts in a group: every accept counts, exactly one call.active, one answered_at', async () => {
    const start = (await srv.allEvents(0)).at(-1).seq;
    const req = newCall(6);
    const { call } = await srv.createCall(req);
    const grants = await Promise.all(req.callees.map((user) => srv.act(call.id, 'accept', { user })));
    for (const g of grants) assert.equal(g.call.status, 'active');
    const final = await srv.getCall(call.id);
    assert.ok(final.members.every((m) => m.invite === 'accepted'));
    const evs = (await srv.allEvents(start)).filter((e) => e.call_id === call.id);
    assertFeed(evs);
    const types = evs.map((e) => e.type);
    assert.equal(types.filter((t) => t === 'call.active').length, 1, `one call.active: ${types}`);
    assert.equal(types.filter((t) => t === 'call.accepted').length, 6);
    assert.deepEqual(types.slice(0, 3), ['call.ringing', 'call.accepted', 'call.active']);
    assert.equal(final.answered_at, evs[2].data.answered_at, 'answered_at is the first accept');
    assert.deepEqual(evs.at(-1).data, final);
  });

  it('racing declines: exactly one call.ended, outcome declined', async () => {
    const start = (await srv.allEvents(0)).at(-1).seq;
    const req = newCall(6);
    const { call } = await srv.createCall(req);
    await Promise.all(req.callees.map((user) => srv.act(call.id, 'decline', { user })));
    const final = await srv.getCall(call.id);
    assert.equal(final.outcome, 'declined');
    const evs = (await srv.allEvents(start)).filter((e) => e.call_id === call.id);
    assertFeed(evs);
    const types = evs.map((e) => e.type);
    assert.equal(types.filter((t) => t === 'call.declined').length, 6);
    assert.deepEqual(types.filter((t) => t === 'call.ended'), ['call.ended']);
    assert.equal(types.at(-1), 'call.ended');
    assert.deepEqual(evs.at(-1).data, final);
  });

  it('accept racing the caller\'s end: one consistent outcome, feed and call agree', async () => {
    for (let i = 0; i < 10; i++) {
      const start = (await srv.allEvents(0)).at(-1).seq;
      const req = newCall(1);
      const { call } = await srv.createCall(req);
      const [a, e] = await Promise.all([
        srv.svc('POST', `/v1/calls/${call.id}/accept`, { user: req.callees[0] }),
        srv.svc('POST', `/v1/calls/${call.id}/end`, { user: req.caller }),
      ]);
      assert.equal(e.status, 200, e.text);
      const final = await srv.getCall(call.id);
      assert.equal(final.status, 'ended');
      if (a.status === 200) {
        assert.equal(final.outcome, 'completed', 'accepted first, then ended');
      } else {
        assert.equal(a.status, 409, a.text);
        assert.equal(final.outcome, 'cancelled');
      }
      const evs = (await srv.allEvents(start)).filter((x) => x.call_id === call.id);
      assertFeed(evs);
      assert.deepEqual(evs.at(-1).data, final);
      assert.deepEqual(evs.map((x) => x.type), a.status === 200
        ? ['call.ringing', 'call.accepted', 'call.active', 'call.ended']
        : ['call.ringing', 'call.ended']);
    }
  });

  it('a reader paging while writers commit misses nothing and sees nothing twice', async () => {
    const start = (await srv.allEvents(0)).at(-1).seq;
    let writing = true;
    const seen = [];
    let after = start;
    const reader = (async () => {
      for (;;) {
        const done = !writing;
        const r = await srv.svc('GET', `/v1/events?after=${after}&limit=7`);
        assert.equal(r.status, 200, r.text);
        const evs = feedEvents(r.body);
        seen.push(...evs);
        if (evs.length) after = evs[evs.length - 1].seq;
        if (done && evs.length < 7) return;
      }
    })();
    const writers = Array.from({ length: 8 }, async () => {
      for (let i = 0; i < 6; i++) {
        const req = newCall(2);
        const { call } = await srv.createCall(req);
        await srv.act(call.id, 'decline', { user: req.callees[0] });
        await srv.act(call.id, 'accept', { user: req.callees[1] });
        await srv.act(call.id, 'end', { user: req.caller });
      }
    });
    await Promise.all(writers);
    writing = false;
    await reader;
    const all = (await srv.allEvents(start));
    assert.equal(all.length, 8 * 6 * 5);
    assert.deepEqual(seen.map((e) => e.seq), all.map((e) => e.seq));
    assertFeed(await srv.allEvents(0));
  });
});

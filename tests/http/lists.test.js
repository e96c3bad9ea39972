// Lists: GET /v1/users/{user}/calls (service) and GET /v1/calls (admin): newest first by
// (created_at, id), filters, limit bounds, keyset pagination without gaps or repeats.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, shutdown, assertCallShape, assertError, uid, sleep,
} from './harness.js';

const enc = encodeURIComponent;

/** Every page of a list, following next_cursor; asserts each page's shape. */
async function allPages(srv, basePath, limit, token = 'service') {
  const pages = [];
  let cursor = null;
  for (let i = 0; i < 1000; i++) {
    const sep = basePath.includes('?') ? '&' : '?';
    const p = `${basePath}${sep}limit=${limit}${cursor ? `&cursor=${enc(cursor)}` : ''}`;
    const r = await srv.request('GET', p, { token });
    assert.equal(r.status, 200, `${p}: ${r.text}`);
    assert.deepEqual(Object.keys(r.body).sort(), ['calls', 'next_cursor']);
    assert.ok(r.body.calls.length <= limit);
    pages.push(r.body.calls.map((c) => c.id));
    if (r.body.next_cursor === null) return pages;
    assert.equal(typeof r.body.next_cursor, 'string');
    assert.ok(r.body.next_cursor.length > 0);
    cursor = r.body.next_cursor;
  }
  assert.fail('pagination never ended');
}

describe('GET /v1/users/{user}/calls', () => {
  let srv;
  const U = `list user ü ${uid()}`; // a space and non-ASCII: must be percent-decoded
  const ids = []; // creation order
  const expectStatus = new Map();
  before(async () => {
    srv = await startServer();
    for (let i = 0; i < 25; i++) {
      const other = uid('o');
      const req = i % 3 === 0
        ? { caller: U, callees: [other], kind: 'audio' }
        : { caller: other, callees: i % 2 ? [U, uid('p')] : [U], kind: 'video' };
      const { call } = await srv.createCall(req);
      ids.push(call.id);
      // Noise: a call without U.
      await srv.createCall({ caller: uid('n'), callees: [uid('n')], kind: 'audio' });
      if (i % 5 === 1) {
        await srv.act(call.id, 'accept', { user: req.caller === U ? other : U });
        expectStatus.set(call.id, 'active');
      } else if (i % 5 === 2) {
        await srv.act(call.id, 'end', { user: req.caller });
        expectStatus.set(call.id, 'ended');
      } else {
        expectStatus.set(call.id, 'ringing');
      }
    }
  });
  after(async () => { await shutdown(srv); });

  const path = () => `/v1/users/${enc(U)}/calls`;

  it('newest first, every call of the user (caller or callee), full call objects, default limit 50', async () => {
    const r = await srv.svc('GET', path());
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(Object.keys(r.body).sort(), ['calls', 'next_cursor']);
    assert.equal(r.body.next_cursor, null);
    assert.deepEqual(r.body.calls.map((c) => c.id), [...ids].reverse());
    for (const c of r.body.calls) {
      assertCallShape(c);
      assert.ok(c.members.some((m) => m.user === U));
      assert.equal(c.status, expectStatus.get(c.id));
      assert.deepEqual(c, await srv.getCall(c.id), 'list items equal GET /v1/calls/{id}');
    }
  });

  for (const status of ['ringing', 'active', 'ended']) {
    it(`status=${status}`, async () => {
      const r = await srv.svc('GET', `${path()}?status=${status}`);
      assert.equal(r.status, 200, r.text);
      const want = [...ids].reverse().filter((id) => expectStatus.get(id) === status);
      assert.ok(want.length > 0);
      assert.deepEqual(r.body.calls.map((c) => c.id), want);
      assert.equal(r.body.next_cursor, null);
    });
  }

  it('keyset pagination, limit 7: no gaps, no repeats, next_cursor null on the last page', async () => {
    const pages = await allPages(srv, path(), 7);
    assert.deepEqual(pages.map((p) => p.length), [7, 7, 7, 4]);
    assert.deepEqual(pages.flat(), [...ids].reverse());
  });

  it('pagination with a status filter', async () => {
    const pages = await allPages(srv, `${path()}?status=ringing`, 2);
    const want = [...ids].reverse().filter((id) => expectStatus.get(id) === 'ringing');
    assert.deepEqual(pages.flat(), want);
  });

  it('limit 1 and 500 are accepted', async () => {
    let r = await srv.svc('GET', `${path()}?limit=1`);
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.body.calls.map((c) => c.id), [ids[ids.length - 1]]);
    assert.equal(typeof r.body.next_cursor, 'string');
    r = await srv.svc('GET', `${path()}?limit=500`);
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body.calls.length, 25);
    assert.equal(r.body.next_cursor, null);
  });

  for (const bad of ['0', '501', 'abc', '-1', '1.5', '10x', '99999999999999999999']) {
    it(`limit=${JSON.stringify(bad)} → 400`, async () => {
      assertError(await srv.svc('GET', `${path()}?limit=${enc(bad)}`), 400, 'bad_request', 'limit');
    });
  }

  it('a bad cursor → 400 naming cursor', async () => {
    for (const c of ['garbage', 'AAAA', '!!!', 'eyJ4IjoxfQ']) {
      assertError(await srv.svc('GET', `${path()}?cursor=${enc(c)}`), 400, 'bad_request', 'cursor');
    }
  });

  it('an unknown status → 400 naming status', async () => {
    assertError(await srv.svc('GET', `${path()}?status=bogus`), 400, 'bad_request', 'status');
  });

  it('a user without calls: empty list, next_cursor null', async () => {
    const r = await srv.svc('GET', `/v1/users/${enc(uid('nobody'))}/calls`);
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.body, { calls: [], next_cursor: null });
  });

  it('a call created while paging shows up on neither page (keyset), and nothing repeats', async () => {
    const p1 = await srv.svc('GET', `${path()}?limit=10`);
    assert.equal(p1.status, 200, p1.text);
    const { call } = await srv.createCall({ caller: U, callees: [uid()], kind: 'audio' });
    const rest = [];
    let cursor = p1.body.next_cursor;
    while (cursor) {
      const r = await srv.svc('GET', `${path()}?limit=10&cursor=${enc(cursor)}`);
      assert.equal(r.status, 200, r.text);
      rest.push(...r.body.calls.map((c) => c.id));
      cursor = r.body.next_cursor;
    }
    assert.deepEqual([...p1.body.calls.map((c) => c.id), ...rest], [...ids].reverse());
    const now = await srv.svc('GET', `${path()}?limit=1`);
    assert.equal(now.body.calls[0].id, call.id, 'the new call is first now');
    ids.push(call.id);
    expectStatus.set(call.id, 'ringing');
  });

  it('a user id with a slash cannot be named in a path; the admin list finds its calls', async () => {
    const u = `team/${uid()}`;
    const { call } = await srv.createCall({ caller: u, callees: [uid()], kind: 'audio' });
    const r = await srv.svc('GET', `/v1/users/${enc(u)}/calls`);
    assertError(r, 400, 'bad_request', 'user');
    const a = await srv.admin('GET', `/v1/calls?user=${enc(u)}`);
    assert.equal(a.status, 200, a.text);
    assert.deepEqual(a.body.calls.map((c) => c.id), [call.id]);
  });
});

describe('GET /v1/calls (admin)', () => {
  let srv;
  let calls = []; // final call objects, newest first
  let T1;
  let T2;
  const A = uid('A'); const B = uid('B'); const C = uid('C'); const D = uid('D');

  before(async () => {
    srv = await startServer();
    const mk = (caller, callees, kind, chat_id) => srv.createCall({ caller, callees, kind, ...(chat_id ? { chat_id } : {}) }).then((g) => g.call.id);
    const ids = [];
    // batch 1
    let id = await mk(A, [B], 'audio', 'chat-x'); ids.push(id);
    await srv.act(id, 'accept', { user: B }); await srv.act(id, 'end', { user: A }); // completed
    id = await mk(A, [C], 'video', 'chat-y'); ids.push(id);
    await srv.act(id, 'decline', { user: C }); // declined
    id = await mk(B, [A, C], 'video', 'chat-x'); ids.push(id); // ringing
    await sleep(40); T1 = new Date().toISOString(); await sleep(40);
    // batch 2
    id = await mk(C, [D], 'audio'); ids.push(id);
    await srv.act(id, 'end', { user: C }); // cancelled
    id = await mk(D, [A], 'video', 'chat-y'); ids.push(id);
    await srv.act(id, 'accept', { user: A }); // active
    id = await mk(A, [D], 'video', 'chat-x'); ids.push(id);
    await srv.act(id, 'accept', { user: D }); await srv.act(id, 'end', {}, 200, 'admin'); // completed
    await sleep(40); T2 = new Date().toISOString(); await sleep(40);
    // batch 3
    id = await mk(B, [C], 'audio', 'chat-y'); ids.push(id); // ringing
    id = await mk(D, [B], 'video'); ids.push(id);
    await srv.act(id, 'leave', { user: D }); // cancelled
    calls = [];
    for (const i of [...ids].reverse()) calls.push(await srv.getCall(i));
  });
  after(async () => { await shutdown(srv); });

  const isMember = (u) => (c) => c.members.some((m) => m.user === u);
  const cases = [
    ['no filter', '', () => true],
    ['user', `user=${enc(A)}`, isMember(A)],
    ['user (callee only)', `user=${enc(C)}`, isMember(C)],
    ['chat_id', 'chat_id=chat-x', (c) => c.chat_id === 'chat-x'],
    ['status=ended', 'status=ended', (c) => c.status === 'ended'],
    ['status=ringing', 'status=ringing', (c) => c.status === 'ringing'],
    ['status=active', 'status=active', (c) => c.status === 'active'],
    ['outcome=completed', 'outcome=completed', (c) => c.outcome === 'completed'],
    ['outcome=cancelled', 'outcome=cancelled', (c) => c.outcome === 'cancelled'],
    ['outcome=declined', 'outcome=declined', (c) => c.outcome === 'declined'],
    ['outcome=missed (none)', 'outcome=missed', () => false],
    ['kind=video', 'kind=video', (c) => c.kind === 'video'],
    ['kind=audio', 'kind=audio', (c) => c.kind === 'audio'],
    ['since', () => `since=${enc(T1)}`, (c) => c.created_at > T1],
    ['until', () => `until=${enc(T2)}`, (c) => c.created_at < T2],
    ['since+until', () => `since=${enc(T1)}&until=${enc(T2)}`, (c) => c.created_at > T1 && c.created_at < T2],
    ['user+status+kind', () => `user=${enc(A)}&status=ended&kind=video`, (c) => isMember(A)(c) && c.status === 'ended' && c.kind === 'video'],
    ['chat_id+outcome', 'chat_id=chat-y&outcome=declined', (c) => c.chat_id === 'chat-y' && c.outcome === 'declined'],
    ['status+kind (the bench query)', 'status=ended&kind=video', (c) => c.status === 'ended' && c.kind === 'video'],
    ['user+since', () => `user=${enc(D)}&since=${enc(T1)}`, (c) => isMember(D)(c) && c.created_at > T1],
    ['unknown user', `user=${enc(uid('none'))}`, () => false],
  ];
  for (const [name, q, pred] of cases) {
    it(`filter: ${name}`, async () => {
      const query = typeof q === 'function' ? q() : q;
      const r = await srv.admin('GET', `/v1/calls${query ? `?${query}` : ''}`);
      assert.equal(r.status, 200, r.text);
      const want = calls.filter(pred).map((c) => c.id);
      assert.deepEqual(r.body.calls.map((c) => c.id), want, `query ${query}`);
      assert.equal(r.body.next_cursor, null);
      for (const c of r.body.calls) assertCallShape(c);
    });
  }

  it('the dataset covers every filter value it asserts on', () => {
    assert.equal(calls.length, 8);
    assert.ok(calls.some((c) => c.outcome === 'declined') && calls.some((c) => c.status === 'active'));
  });

  it('since/until accept RFC 3339 with an offset and without milliseconds', async () => {
    const t1 = new Date(T1);
    const shifted = new Date(t1.getTime() + 3600_000).toISOString().replace(/\.(\d{3})Z$/, '.$1+01:00');
    let r = await srv.admin('GET', `/v1/calls?since=${enc(shifted)}`);
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.body.calls.map((c) => c.id), calls.filter((c) => c.created_at > T1).map((c) => c.id));
    r = await srv.admin('GET', `/v1/calls?until=${enc('2000-01-01T00:00:00Z')}`);
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.body.calls, []);
    r = await srv.admin('GET', `/v1/calls?since=${enc('2000-01-01T00:00:00Z')}`);
    assert.equal(r.body.calls.length, 8);
  });

  it('pagination over a filter, limit 3', async () => {
    const pages = await allPages(srv, '/v1/calls?kind=video', 3, 'admin');
    const want = calls.filter((c) => c.kind === 'video').map((c) => c.id);
    assert.deepEqual(pages.flat(), want);
    assert.deepEqual(pages.map((p) => p.length), [3, 2]);
    const all = await allPages(srv, '/v1/calls', 3, 'admin');
    assert.deepEqual(all.flat(), calls.map((c) => c.id));
    assert.deepEqual(all.map((p) => p.length), [3, 3, 2]);
  });

  for (const [q, field] of [
    ['status=bogus', 'status'], ['outcome=bogus', 'outcome'], ['kind=bogus', 'kind'],
    ['since=yesterday', 'since'], ['until=2026-13-45T00:00:00Z', 'until'], ['since=1767225600', 'since'],
    ['since=2026-12-02T00:00:00Z&until=2026-12-01T00:00:00Z', 'until'], ['since=2026-12-01T00:00:00Z&until=2026-12-01T00:00:00Z', 'until'],
    ['limit=0', 'limit'], ['limit=501', 'limit'], ['limit=x', 'limit'], ['cursor=nope', 'cursor'],
  ]) {
    it(`${q} → 400 naming ${field}`, async () => {
      assertError(await srv.admin('GET', `/v1/calls?${q}`), 400, 'bad_request', field);
    });
  }

  it('a service token → 403 on every variant', async () => {
    for (const q of ['', '?status=ended', `?user=${enc(A)}`]) {
      assertError(await srv.svc('GET', `/v1/calls${q}`), 403, 'forbidden');
    }
  });
});

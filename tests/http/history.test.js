// Admin history: GET /v1/calls?format=csv (every match, RFC 4180, read back by Python's csv
// module and compared with the JSON list) and GET /v1/stats (against values worked out by hand
// from a scripted set of calls and signed LiveKit webhooks).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  startServer, shutdown, uid, sleep, assertError, RFC3339_MS, ms, BACKEND, makeTmpDir, makeSecrets, dbUrlFor,
} from './harness.js';
import { LkRoom, deliver } from './livekit-kit.js';

const enc = encodeURIComponent;
const HEADER = ['id', 'room', 'kind', 'status', 'outcome', 'caller', 'callees', 'chat_id', 'created_at',
  'answered_at', 'ended_at', 'duration_ms', 'end_cause'];

/** Rows of a CSV text as Python's csv module reads it (strict: a malformed quote fails). */
function parseCsv(text) {
  const py = 'import csv, io, json, sys\n'
    + 'rows = list(csv.reader(io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8", newline=""), strict=True))\n'
    + 'json.dump(rows, sys.stdout)';
  const r = spawnSync('python3', ['-c', py], { input: Buffer.from(text, 'utf8'), encoding: 'utf8', maxBuffer: 1 << 28 });
  assert.equal(r.status, 0, `python csv: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

/** A call of the JSON API as the CSV row it must be. */
function csvRow(c) {
  const orEmpty = (v) => (v === null ? '' : String(v));
  return [c.id, c.room, c.kind, c.status, orEmpty(c.outcome), c.caller,
    c.members.filter((m) => m.role === 'callee').map((m) => m.user).join(';'), orEmpty(c.chat_id),
    c.created_at, orEmpty(c.answered_at), orEmpty(c.ended_at), orEmpty(c.duration_ms), orEmpty(c.end_cause)];
}

/** Every call of the JSON list with these filters, newest first. */
async function jsonList(srv, query) {
  const out = [];
  let cursor = null;
  for (;;) {
    const r = await srv.request('GET', `/v1/calls?${query}&limit=500${cursor ? `&cursor=${enc(cursor)}` : ''}`, { token: 'admin' });
    assert.equal(r.status, 200, r.text);
    out.push(...r.body.calls);
    if (r.body.next_cursor === null) return out;
    cursor = r.body.next_cursor;
  }
}

async function getCsv(srv, query) {
  const r = await srv.request('GET', `/v1/calls?format=csv${query ? `&${query}` : ''}`, { token: 'admin', timeoutMs: 60000 });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.headers.get('content-type'), 'text/csv; charset=utf-8');
  assert.equal(r.headers.get('transfer-encoding'), 'chunked', 'streamed, not buffered');
  assert.equal(r.headers.get('content-length'), null);
  assert.ok(r.text.endsWith('\r\n'), 'every record ends with CRLF');
  assert.ok(!/[^\r]\n/.test(r.text), 'no bare LF: records end with CRLF');
  const rows = parseCsv(r.text);
  assert.deepEqual(rows[0], HEADER);
  return rows.slice(1);
}

async function inBatches(n, size, fn) {
  for (let i = 0; i < n; i += size) {
    await Promise.all(Array.from({ length: Math.min(size, n - i) }, (_, k) => fn(i + k)));
  }
}

describe('GET /v1/calls?format=csv', () => {
  let srv;
  // Values the CSV must quote, or must not split: commas, quotes, semicolons, spaces, UTF-8.
  const trickyChat = `chat, "quoted" ;semi ü ${uid('')}`;
  const trickyCaller = `caller "x", ${uid('')}`;
  const commaCallee = `callee,with,commas ${uid('')}`;
  const MANY = 530; // more than one page of 500 inside the stream
  before(async () => {
    // The longest ring timeout: the ringing calls must still ring when the last test reads
    // them, which on a loaded machine (CI runs suites side by side) is well past the default 45 s.
    srv = await startServer({ env: { CALLSTATE_RING_TIMEOUT_S: '300' } });
    await inBatches(MANY, 25, (i) => srv.createCall({
      caller: uid('c'), callees: [uid('e')], kind: i % 3 ? 'audio' : 'video', ...(i % 2 ? { chat_id: `chat-${i % 7}` } : {}),
    }));
    const { call: a } = await srv.createCall({ caller: trickyCaller, callees: [commaCallee, 'plain "q"'], kind: 'video', chat_id: trickyChat });
    await srv.act(a.id, 'accept', { user: commaCallee });
    await srv.act(a.id, 'end', { user: trickyCaller });
    const { call: b } = await srv.createCall({ caller: uid('d'), callees: [trickyCaller], kind: 'audio', chat_id: trickyChat });
    await srv.act(b.id, 'decline', { user: trickyCaller });
    await srv.createCall({ caller: trickyCaller, callees: [uid('f')], kind: 'audio', chat_id: trickyChat });
  });
  after(async () => { await shutdown(srv); });

  it('auth: none 401, service 403, admin 200', async () => {
    assertError(await srv.request('GET', '/v1/calls?format=csv', { token: 'none' }), 401, 'unauthorized');
    assertError(await srv.request('GET', '/v1/calls?format=csv', { token: 'service' }), 403, 'forbidden');
    assert.equal((await srv.request('GET', '/v1/calls?format=csv', { token: 'admin' })).status, 200);
  });

  it('every call in one response, across pages, as the JSON list has them', async () => {
    const rows = await getCsv(srv, '');
    const calls = await jsonList(srv, 'format=json');
    assert.equal(calls.length, MANY + 3);
    assert.equal(rows.length, calls.length);
    assert.deepEqual(rows, calls.map(csvRow));
    assert.equal(new Set(rows.map((r) => r[0])).size, rows.length, 'no call twice');
  });

  it('quotes what must be quoted; times and durations as in JSON', async () => {
    const rows = await getCsv(srv, `chat_id=${enc(trickyChat)}`);
    const calls = await jsonList(srv, `chat_id=${enc(trickyChat)}`);
    assert.equal(rows.length, 3);
    assert.deepEqual(rows, calls.map(csvRow));
    const ended = rows.find((r) => r[4] === 'completed');
    assert.equal(ended[5], trickyCaller);
    assert.equal(ended[6], `${commaCallee};plain "q"`);
    assert.equal(ended[7], trickyChat);
    for (const t of [ended[8], ended[9], ended[10]]) assert.match(t, RFC3339_MS);
    assert.equal(Number(ended[11]), ms(ended[10]) - ms(ended[9]));
    assert.equal(ended[12], 'end_request');
    const ringing = rows.find((r) => r[3] === 'ringing');
    assert.deepEqual(ringing.slice(9), ['', '', '', ''], 'null is an empty field');
    // The raw text: a quote is doubled inside a quoted field.
    const r = await srv.request('GET', `/v1/calls?format=csv&chat_id=${enc(trickyChat)}`, { token: 'admin' });
    assert.ok(r.text.includes(`"${trickyChat.replaceAll('"', '""')}"`));
  });

  it('applies the filters of the JSON list', async () => {
    for (const q of ['kind=video', 'status=ended', 'outcome=declined', `user=${enc(trickyCaller)}`, 'chat_id=chat-3&kind=audio']) {
      const rows = await getCsv(srv, q);
      const calls = await jsonList(srv, q);
      assert.ok(calls.length > 0, q);
      assert.deepEqual(rows, calls.map(csvRow), q);
    }
    const all = await jsonList(srv, 'format=json');
    const mid = all[200].created_at;
    const since = await getCsv(srv, `since=${enc(mid)}`);
    assert.deepEqual(since, all.filter((c) => ms(c.created_at) >= ms(mid)).map(csvRow));
    const until = await getCsv(srv, `until=${enc(mid)}`);
    assert.deepEqual(until, all.filter((c) => ms(c.created_at) < ms(mid)).map(csvRow));
    assert.deepEqual(await getCsv(srv, 'outcome=failed'), [], 'no match: the header alone');
  });

  it('refuses what does not apply', async () => {
    assertError(await srv.admin('GET', '/v1/calls?format=xml'), 400, 'bad_request', 'format');
    assertError(await srv.admin('GET', '/v1/calls?format='), 400, 'bad_request', 'format');
    assertError(await srv.admin('GET', '/v1/calls?format=csv&limit=10'), 400, 'bad_request', 'limit');
    const page = await srv.admin('GET', '/v1/calls?limit=1');
    assertError(await srv.admin('GET', `/v1/calls?format=csv&cursor=${enc(page.body.next_cursor)}`), 400, 'bad_request', 'cursor');
    assertError(await srv.admin('GET', '/v1/calls?format=csv&since=yesterday'), 400, 'bad_request', 'since');
    assert.equal((await srv.admin('GET', '/v1/calls?format=json&limit=1')).status, 200);
  });
});

/** Replaces the stored view of a call, as a damaged row would be. */
function breakView(dir, id, view) {
  const r = BACKEND === 'sqlite'
    ? spawnSync('python3', ['-c', 'import sqlite3, sys\n'
      + 'db = sqlite3.connect(sys.argv[1])\n'
      + 'assert db.execute("UPDATE calls SET view = ? WHERE id = ?", (sys.argv[3], sys.argv[2])).rowcount == 1\n'
      + 'db.commit()', `${dir}/callstate.db`, id, view], { encoding: 'utf8' })
    : spawnSync('psql', [dbUrlFor(dir), '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-v', `id=${id}`, '-v', `view=${view}`],
      { input: "UPDATE calls SET view = :'view' WHERE id = :'id';", encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
}

describe('GET /v1/calls?format=csv failing midway', () => {
  let srv;
  after(async () => { await shutdown(srv); });

  // Not JSON; and JSON whose first fields are written before one (caller) is found wrong.
  for (const damage of ['{broken', '{"id":"x","room":"y","kind":"audio","status":"ended","outcome":null,"caller":{}}']) {
  it(`cuts the transfer short after the last whole record: view ${damage.slice(0, 12)}…`, async () => {
    const dir = makeTmpDir();
    const secrets = makeSecrets();
    srv = await startServer({ dir, secrets });
    await inBatches(520, 25, (i) => srv.createCall({ caller: uid('c'), callees: [uid('e')], kind: i % 2 ? 'audio' : 'video' }));
    const calls = await jsonList(srv, 'format=json');
    const broken = calls[510]; // on the second page of 500, after the first was sent
    await srv.stop({ keepDir: true });
    breakView(dir, broken.id, damage);
    srv = await startServer({ dir, secrets });

    const res = await fetch(`${srv.base}/v1/calls?format=csv`, { headers: { Authorization: `Bearer ${secrets.adminToken}` } });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('transfer-encoding'), 'chunked');
    const decoder = new TextDecoder();
    let text = '';
    let failure = null;
    try {
      for await (const chunk of res.body) text += decoder.decode(chunk, { stream: true });
    } catch (e) {
      failure = e;
    }
    assert.ok(failure, 'the transfer ended normally: a client would take the short CSV for all of it');
    // What came before the failure is whole records: the header and every newer call.
    const records = parseCsv(text);
    assert.deepEqual(records, [HEADER, ...calls.slice(0, 510).map(csvRow)]);
    assert.equal((await srv.request('GET', '/healthz', { token: 'none' })).status, 200, 'the server serves on');
    assert.match(srv.stderr, /route=\/v1\/calls status=200 .*rows=510 aborted=internal/);
    await srv.stop();
    srv = null;
  });
  }
});

describe('GET /v1/stats', () => {
  let srv;
  let since; // the created_at of the first scripted call
  const calls = {};
  before(async () => {
    srv = await startServer();
    // A call before the window: left out when since is given.
    await srv.createCall({ caller: uid('early'), callees: [uid('e')], kind: 'audio' });
    await sleep(5);
    const u = (k) => `${k}-${uid('')}`;
    const A = u('A'), B = u('B'), C = u('C'), D = u('D'), E = u('E'), F = u('F'), G = u('G'), H = u('H');
    const I = u('I'), J = u('J');
    // 1: B accepts; A joins 200 ms after creation, B 300 ms after the accept; A ends: completed.
    const one = (await srv.createCall({ caller: A, callees: [B], kind: 'audio' })).call;
    since = one.created_at;
    const accepted = (await srv.act(one.id, 'accept', { user: B })).call;
    const tB = ms(accepted.members.find((m) => m.user === B).responded_at);
    const r1 = new LkRoom(one.room);
    await deliver(srv, r1.joined(r1.session(A, ms(one.created_at) + 200)));
    await deliver(srv, r1.joined(r1.session(B, tB + 300)));
    calls.one = await srv.act(one.id, 'end', { user: A });
    // 2: D declines; C had joined 100 ms after creation: declined.
    const two = (await srv.createCall({ caller: C, callees: [D], kind: 'video' })).call;
    const r2 = new LkRoom(two.room);
    await deliver(srv, r2.joined(r2.session(C, ms(two.created_at) + 100)));
    calls.two = await srv.act(two.id, 'decline', { user: D });
    // 3: E ends before anyone answers and never joined: cancelled, E a failed connection.
    const three = (await srv.createCall({ caller: E, callees: [F], kind: 'audio' })).call;
    calls.three = await srv.act(three.id, 'end', { user: E });
    // 4: G joins after 150 ms; H accepts by joining the room (no token minted on accept: no
    // time to join, but a connection); G ends: completed.
    const four = (await srv.createCall({ caller: G, callees: [H], kind: 'audio' })).call;
    const r4 = new LkRoom(four.room);
    await deliver(srv, r4.joined(r4.session(G, ms(four.created_at) + 150)));
    await deliver(srv, r4.joined(r4.session(H, ms(four.created_at) + 400)));
    calls.four = await srv.act(four.id, 'end', { user: G });
    // 5: still ringing, I not in the room yet with most of the join timeout left: a call, but
    // no connection counted either way.
    calls.five = (await srv.createCall({ caller: I, callees: [J], kind: 'video' })).call;
    // 6: L accepts, nobody has joined yet: answered but not ended (not in answer_rate), and
    // both members may still join in time (not in connect_success_rate).
    const K = u('K'), L = u('L');
    const six = (await srv.createCall({ caller: K, callees: [L], kind: 'audio' })).call;
    calls.six = (await srv.act(six.id, 'accept', { user: L })).call;
  });
  after(async () => { await shutdown(srv); });

  // By hand: calls 6; ended 4 (1, 2, 3, 4), of which answered 2 (1, 4); accepted members whose
  // join is settled: A B C E G H = 6, of which joined within the join timeout: A B C G H = 5;
  // times to join 200 300 100 150 → sorted 100 150 200 300: p50 = rank ceil(0.5*4) = 2 → 150,
  // p95 = rank ceil(0.95*4) = 4 → 300.
  it('matches the values worked out by hand', async () => {
    assert.equal(calls.one.outcome, 'completed');
    assert.equal(calls.two.outcome, 'declined');
    assert.equal(calls.three.outcome, 'cancelled');
    assert.equal(calls.four.outcome, 'completed');
    assert.equal(calls.four.answered_at, calls.four.members[1].first_joined_at, 'H accepted by joining');
    assert.equal(calls.six.status, 'active');
    const r = await srv.admin('GET', `/v1/stats?since=${enc(since)}`);
    assert.equal(r.status, 200, r.text);
    assert.equal(r.headers.get('content-type'), 'application/json; charset=utf-8');
    const s = r.body;
    assert.deepEqual(Object.keys(s), ['since', 'until', 'calls', 'by_outcome', 'answer_rate', 'connect_success_rate', 'time_to_join_ms', 'avg_duration_ms']);
    assert.equal(s.since, since);
    assert.match(s.until, RFC3339_MS);
    assert.ok(Math.abs(ms(s.until) - Date.now()) < 5000, 'until defaults to now');
    assert.equal(s.calls, 6);
    assert.deepEqual(s.by_outcome, { completed: 2, missed: 0, declined: 1, cancelled: 1, failed: 0 });
    assert.equal(s.answer_rate, 2 / 4);
    assert.ok(Math.abs(s.connect_success_rate - 5 / 6) < 1e-12, String(s.connect_success_rate));
    assert.deepEqual(s.time_to_join_ms, { p50: 150, p95: 300 });
    const d1 = calls.one.duration_ms, d4 = calls.four.duration_ms;
    assert.equal(d1, ms(calls.one.ended_at) - ms(calls.one.answered_at));
    assert.equal(s.avg_duration_ms, Math.round((d1 + d4) / 2));
  });

  it('since and until bound created_at: [since, until)', async () => {
    const all = (await srv.admin('GET', '/v1/stats')).body;
    assert.equal(all.since, null);
    assert.equal(all.calls, 7, 'the call before the window too');
    const until = calls.three.created_at;
    const s = (await srv.admin('GET', `/v1/stats?since=${enc(since)}&until=${enc(until)}`)).body;
    assert.equal(s.until, until);
    assert.equal(s.calls, 2); // 1 and 2
    assert.deepEqual(s.by_outcome, { completed: 1, missed: 0, declined: 1, cancelled: 0, failed: 0 });
    assert.equal(s.answer_rate, 1 / 2);
    assert.equal(s.connect_success_rate, 1); // A B C
    assert.deepEqual(s.time_to_join_ms, { p50: 200, p95: 300 }); // 100 200 300: ranks 2 and 3
    assert.equal(s.avg_duration_ms, calls.one.duration_ms);
  });

  it('no data: counts 0, every ratio, mean and percentile null', async () => {
    const r = await srv.admin('GET', '/v1/stats?since=2001-01-01T00:00:00.000Z&until=2001-01-02T00:00:00Z');
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.body, {
      since: '2001-01-01T00:00:00.000Z', until: '2001-01-02T00:00:00.000Z', calls: 0,
      by_outcome: { completed: 0, missed: 0, declined: 0, cancelled: 0, failed: 0 },
      answer_rate: null, connect_success_rate: null, time_to_join_ms: { p50: null, p95: null }, avg_duration_ms: null,
    });
  });

  it('auth: none 401, service 403, admin 200; bad bounds 400', async () => {
    assertError(await srv.request('GET', '/v1/stats', { token: 'none' }), 401, 'unauthorized');
    assertError(await srv.request('GET', '/v1/stats', { token: 'service' }), 403, 'forbidden');
    assert.equal((await srv.admin('GET', '/v1/stats')).status, 200);
    assertError(await srv.admin('GET', '/v1/stats?since=soon'), 400, 'bad_request', 'since');
    assertError(await srv.admin('GET', '/v1/stats?until=2026-13-01T00:00:00Z'), 400, 'bad_request', 'until');
    assertError(await srv.admin('GET', `/v1/stats?since=${enc(since)}&until=${enc(since)}`), 400, 'bad_request', 'until');
    const r = await srv.request('POST', '/v1/stats', { token: 'admin', json: {} });
    assert.equal(r.status, 405);
  });
});

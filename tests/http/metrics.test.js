// GET /metrics (API.md "Operations"): admin only; the Prometheus text of one process, whose
// counters move by exactly what a scripted set of requests, webhooks and calls did to them:
// requests by route pattern (never the raw path) and status, their latency histograms,
// webhooks by event and result, calls by outcome, time to join, database errors and commit
// batches. The real output must pass `promtool check metrics` (Debian's prometheus package;
// tools/test installs it and sets CALLSTATE_TEST_REQUIRE_PROMTOOL=1 so the check never skips).
//
// One server of one process (counters are per process, so CALLSTATE_TEST_INSTANCES does not
// apply); every expectation is a difference between two scrapes.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import {
  startServer, shutdown, newCall, ms, member, randomUUIDv7Like, rawSql, makeTmpDir, removeTmpDir,
  runCli, pollUntil, sleep, BACKEND,
} from './harness.js';
import { LkRoom, deliver, postWebhook, signWebhook, lkId, nowS } from './livekit-kit.js';

const CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

/** The samples of an exposition: Map of `name{labels}` (labels sorted) → number. Asserts the
 * text's shape: every sample's family has HELP and TYPE lines before it. */
function parse(text) {
  const samples = new Map();
  const typed = new Map();
  for (const line of text.split('\n')) {
    if (line === '') continue;
    let m = line.match(/^# (HELP|TYPE) ([a-z_]+) (.+)$/);
    if (m) {
      if (m[1] === 'TYPE') typed.set(m[2], m[3]);
      continue;
    }
    m = line.match(/^([a-z_]+)(?:\{(.*)\})? (\S+)$/);
    assert.ok(m, `a sample line: ${JSON.stringify(line)}`);
    const [, name, labelText, value] = m;
    const family = [...typed.keys()].find((f) => name === f || (typed.get(f) === 'histogram' &&
      [`${f}_bucket`, `${f}_sum`, `${f}_count`].includes(name)));
    assert.ok(family, `${name} comes after its family's TYPE line`);
    const labels = labelText ? [...labelText.matchAll(/([a-z_]+)="((?:[^"\\]|\\.)*)"/g)].map((x) => `${x[1]}=${x[2]}`).sort() : [];
    samples.set(`${name}{${labels.join(',')}}`, Number(value));
  }
  return { samples, typed };
}

/** The value of a sample, 0 when absent (counters of labels never seen are not shown). */
function value(parsed, name, labels = {}) {
  const key = `${name}{${Object.entries(labels).map(([k, v]) => `${k}=${v}`).sort().join(',')}}`;
  return parsed.samples.get(key) ?? 0;
}

let srv;
async function scrape(server = srv) {
  const r = await server.request('GET', '/metrics', { token: 'admin' });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.headers.get('content-type'), CONTENT_TYPE);
  return { ...parse(r.text), text: r.text };
}

before(async () => {
  srv = await startServer({ instances: 1 });
});
after(async () => { await shutdown(srv); });

describe('GET /metrics', () => {
  it('is for admins only: 401 without or with an unknown token, 403 for a service token', async () => {
    let r = await srv.request('GET', '/metrics', { token: 'none' });
    assert.equal(r.status, 401);
    assert.equal(r.body.error.code, 'unauthorized');
    assert.equal(r.headers.get('www-authenticate'), 'Bearer');
    r = await srv.request('GET', '/metrics', { token: 'not-a-token' });
    assert.equal(r.status, 401);
    r = await srv.request('GET', '/metrics', { token: 'service' });
    assert.equal(r.status, 403);
    assert.equal(r.body.error.code, 'forbidden');
    r = await srv.request('GET', '/metrics', { token: 'admin' });
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('content-type'), CONTENT_TYPE);
    const m = parse(r.text);
    const info = [...m.samples].filter(([k]) => k.startsWith('callstate_build_info{'));
    assert.equal(info.length, 1, 'one build info sample');
    const [labels, one] = info[0];
    assert.equal(one, 1);
    const backend = BACKEND === 'postgres' ? 'postgresql' : 'sqlite';
    assert.match(labels, new RegExp(`backends=([a-z]+,)*${backend}(,[a-z]+)*[,}]`), `${labels}: this backend is built`);
    const version = runCli(['--version'], {}).stdout.trim();
    assert.ok(version.includes(labels.match(/version=([^,}]+)/)[1]), `${labels}: the version of callstate --version (${version})`);
    for (const [family, type] of Object.entries({
      callstate_http_requests_total: 'counter', callstate_http_request_duration_seconds: 'histogram',
      callstate_webhooks_total: 'counter', callstate_calls_ended_total: 'counter',
      callstate_time_to_join_seconds: 'histogram', callstate_db_errors_total: 'counter',
      callstate_db_commit_batch_transactions: 'histogram', callstate_build_info: 'gauge',
    })) assert.equal(m.typed.get(family), type, `${family} is a ${type}`);
  });

  it('counts exactly what requests, webhooks and calls did', async () => {
    const before = await scrape();
    const startedMs = Date.now();
    let writes = 0; // transactions committed: each must appear in the commit batches' sum

    // A one-to-one call: accepted, both join (the caller 1.5 s after creation, the callee 3.5 s
    // after accepting), ended by the caller: completed.
    const a = await srv.createCall(newCall(1, { ring_timeout_s: 120 }));
    writes++;
    const [caller, callee] = [a.call.caller, a.call.members[1].user];
    const acc = await srv.act(a.call.id, 'accept', { user: callee });
    writes++;
    const created = ms(a.call.created_at);
    const accepted = ms(member(acc.call, callee).responded_at);
    const room = new LkRoom(a.call.room);
    await deliver(srv, room.started(Date.now()));
    writes++;
    const sA = room.session(caller, created + 1500);
    await deliver(srv, room.joined(sA));
    writes++;
    const sB = room.session(callee, accepted + 3500);
    const joinedB = room.joined(sB);
    await deliver(srv, joinedB);
    writes++;
    // A repeat delivery: a duplicate, and no second time to join (on PostgreSQL its first run
    // takes the event to be new and is rolled back at the commit).
    await deliver(srv, joinedB);
    writes++;
    const ended = await srv.act(a.call.id, 'end', { user: caller });
    writes++;
    assert.equal(ended.outcome, 'completed');

    // Declined, and cancelled by its caller.
    const b = await srv.createCall(newCall(1, { ring_timeout_s: 120 }));
    await srv.act(b.call.id, 'decline', { user: b.call.members[1].user });
    const c = await srv.createCall(newCall(1, { ring_timeout_s: 120 }));
    await srv.act(c.call.id, 'end', { user: c.call.caller });
    writes += 4;
    // A refused accept of the declined call: 409, its transaction committed all the same.
    await srv.act(b.call.id, 'accept', { user: b.call.members[1].user }, 409);
    writes++;

    // Reads: the route's pattern is the label, whatever the id.
    for (const id of [a.call.id, b.call.id, randomUUIDv7Like()]) await srv.request('GET', `/v1/calls/${id}`);
    let r = await srv.request('GET', '/no/such/path/' + lkId('X'), { token: 'none' });
    assert.equal(r.status, 404);
    r = await srv.request('DELETE', '/healthz', { token: 'none' });
    assert.equal(r.status, 405);

    // Webhooks refused before their event is read, and events callstate does not act on.
    const stray = new LkRoom('not-a-call-room');
    const forged = stray.started(Date.now());
    r = await postWebhook(srv, forged.body, await signWebhook(forged.body, srv.secrets.apiKey, 'wrong-secret'));
    assert.equal(r.status, 401);
    const notEvent = '{"event": 42}';
    r = await postWebhook(srv, notEvent, await signWebhook(notEvent, srv.secrets.apiKey, srv.secrets.apiSecret));
    assert.equal(r.status, 400);
    await deliver(srv, stray.make({ event: 'egress_started' }, Date.now()));
    await deliver(srv, forged);
    writes += 2;

    const now = await scrape();
    const delta = (name, labels) => value(now, name, labels) - value(before, name, labels);
    const req = (method, route, status) => delta('callstate_http_requests_total', { method, route, status });

    assert.equal(req('POST', '/v1/calls', '201'), 3);
    assert.equal(req('POST', '/v1/calls/{id}/accept', '200'), 1);
    assert.equal(req('POST', '/v1/calls/{id}/accept', '409'), 1);
    assert.equal(req('POST', '/v1/calls/{id}/decline', '200'), 1);
    assert.equal(req('POST', '/v1/calls/{id}/end', '200'), 2);
    assert.equal(req('GET', '/v1/calls/{id}', '200'), 2);
    assert.equal(req('GET', '/v1/calls/{id}', '404'), 1);
    assert.equal(req('POST', '/webhooks/livekit', '200'), 6);
    assert.equal(req('POST', '/webhooks/livekit', '401'), 1);
    assert.equal(req('POST', '/webhooks/livekit', '400'), 1);
    assert.equal(req('other', 'unmatched', '404'), 1);
    assert.equal(req('other', 'unmatched', '405'), 1);
    assert.equal(req('GET', '/metrics', '200'), 1, 'the scrape before (a scrape counts once answered)');
    assert.ok(![...now.samples.keys()].some((k) => k.includes(a.call.id) || k.includes('/no/such')),
      'no label holds a raw path');

    const hist = (labels) => ({
      count: delta('callstate_http_request_duration_seconds_count', labels),
      inf: delta('callstate_http_request_duration_seconds_bucket', { ...labels, le: '+Inf' }),
      sum: delta('callstate_http_request_duration_seconds_sum', labels),
    });
    const created3 = hist({ method: 'POST', route: '/v1/calls' });
    assert.equal(created3.count, 3);
    assert.equal(created3.inf, 3);
    assert.ok(created3.sum > 0 && created3.sum < 30, `latency sum ${created3.sum} s`);
    assert.equal(hist({ method: 'GET', route: '/v1/calls/{id}' }).count, 3, 'one histogram per route, every status');

    const wh = (event, result) => delta('callstate_webhooks_total', { event, result });
    assert.equal(wh('room_started', 'applied'), 2, 'the call room and the stray room');
    assert.equal(wh('participant_joined', 'applied'), 2);
    assert.equal(wh('participant_joined', 'duplicate'), 1);
    assert.equal(wh('other', 'applied'), 1, 'egress_started');
    assert.equal(wh('unknown', 'unauthorized'), 1);
    assert.equal(wh('unknown', 'bad_request'), 1);

    const outcome = (o) => delta('callstate_calls_ended_total', { outcome: o });
    assert.deepEqual(['completed', 'missed', 'declined', 'cancelled', 'failed'].map(outcome), [1, 0, 1, 1, 0]);

    // Time to join: 1.5 s (le 2) and 3.5 s (le 5), once each, duplicate or not.
    const ttj = (le) => delta('callstate_time_to_join_seconds_bucket', { le });
    assert.equal(delta('callstate_time_to_join_seconds_count'), 2);
    assert.equal(ttj('1'), 0);
    assert.equal(ttj('2'), 1);
    assert.equal(ttj('3'), 1);
    assert.equal(ttj('5'), 2);
    assert.equal(ttj('+Inf'), 2);
    assert.ok(Math.abs(delta('callstate_time_to_join_seconds_sum') - 5) < 1e-6,
      `time to join sum ${delta('callstate_time_to_join_seconds_sum')} s`);

    const backend = BACKEND === 'postgres' ? 'postgresql' : 'sqlite';
    for (const kind of ['unavailable', 'serialization', 'out_of_memory', 'internal']) {
      assert.ok(now.samples.has(`callstate_db_errors_total{backend=${backend},kind=${kind}}`), `db errors of kind ${kind} shown`);
      assert.equal(delta('callstate_db_errors_total', { backend, kind }), 0, `no ${kind} database error`);
    }
    // SQLite also indexes the audit trail in a transaction of its own, at most once a second.
    const background = BACKEND === 'sqlite' ? Math.ceil((Date.now() - startedMs) / 1000) + 1 : 0;
    const committed = delta('callstate_db_commit_batch_transactions_sum', { backend });
    assert.ok(committed >= writes && committed <= writes + background,
      `every committed transaction is in one commit batch: ${committed} for ${writes} (+ ${background} at most)`);
    const batches = delta('callstate_db_commit_batch_transactions_count', { backend });
    assert.ok(batches >= 1 && batches <= committed, `${batches} batches of ${committed} transactions`);
  });

  it('counts a call that a timer ended, once', async () => {
    const before = await scrape();
    const { call } = await srv.createCall(newCall(1, { ring_timeout_s: 5 }));
    const [ended] = await pollUntil(async () => (await srv.getCall(call.id)).outcome, 15000, 250);
    assert.equal(ended, 'missed');
    // A read shows the call as it will be; the count comes with the timer pass's commit.
    const deltas = async () => {
      const now = await scrape();
      return ['completed', 'missed', 'declined', 'cancelled', 'failed'].map((outcome) =>
        value(now, 'callstate_calls_ended_total', { outcome }) - value(before, 'callstate_calls_ended_total', { outcome }));
    };
    const [counted] = await pollUntil(async () => (await deltas())[1] === 1, 5000, 100);
    assert.ok(counted, 'the missed call is counted once the timer settled it');
    await sleep(1000); // several timer passes, and reads, later
    await srv.getCall(call.id);
    assert.deepEqual(await deltas(), [0, 1, 0, 0, 0]);
  });

  it('counts a database error by its kind', async () => {
    const backend = BACKEND === 'postgres' ? 'postgresql' : 'sqlite';
    const before = await scrape();
    // A table gone from under the server: its statements fail as a fault, not as a conflict.
    rawSql(srv, 'DROP TABLE idempotency_keys');
    const r = await srv.request('POST', '/v1/calls', { json: newCall(1), headers: { 'Idempotency-Key': 'k-' + nowS() } });
    assert.equal(r.status, 500, r.text);
    const now = await scrape();
    const delta = (kind) => value(now, 'callstate_db_errors_total', { backend, kind }) -
      value(before, 'callstate_db_errors_total', { backend, kind });
    assert.equal(delta('internal'), 1, 'the one failed statement');
    assert.equal(delta('unavailable'), 0);
  });

  // The power cut library of crash.test.js fails the SQLite WAL's fdatasync on demand: the
  // transaction ran and committed into the WAL, but storage_transact answers ERR_UNAVAILABLE.
  const POWERCUT_LIB = process.env.CALLSTATE_POWERCUT_LIB;
  it('counts nothing of a transaction that did not become durable', {
    skip: BACKEND !== 'sqlite' ? 'a failed fdatasync is SQLite\'s' : !POWERCUT_LIB && 'needs CALLSTATE_POWERCUT_LIB (meson sets it)',
  }, async () => {
    const dir = makeTmpDir();
    const failFile = path.join(dir, 'fail-sync');
    const cut = await startServer({
      dir, instances: 1,
      env: { LD_PRELOAD: POWERCUT_LIB, POWERCUT_DIR: dir, POWERCUT_FAIL_FILE: failFile, ASAN_OPTIONS: 'verify_asan_link_order=0' },
    });
    try {
      const { call } = await cut.createCall(newCall(1, { ring_timeout_s: 120 }));
      const room = new LkRoom(call.room);
      const joined = room.joined(room.session(call.caller, ms(call.created_at) + 100));
      const before = await scrape(cut);
      fs.writeFileSync(failFile, '');
      const r = await postWebhook(cut, joined.body, await signWebhook(joined.body, cut.secrets.apiKey, cut.secrets.apiSecret));
      assert.equal(r.status, 503, r.text);
      const now = await scrape(cut);
      const delta = (name, labels) => value(now, name, labels) - value(before, name, labels);
      assert.equal(delta('callstate_time_to_join_seconds_count'), 0, 'the join was never durable');
      assert.equal(delta('callstate_webhooks_total', { event: 'participant_joined', result: 'unavailable' }), 1);
      assert.equal(delta('callstate_webhooks_total', { event: 'participant_joined', result: 'applied' }), 0);
      assert.equal(delta('callstate_db_errors_total', { backend: 'sqlite', kind: 'unavailable' }), 1, 'the failed fdatasync');
    } finally {
      // The storage refuses every write from now on; the server is killed, not stopped.
      await cut.kill();
      removeTmpDir(dir);
    }
  });

  it('passes promtool check metrics', { skip: promtoolSkip() }, async () => {
    const { text } = await scrape();
    const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
    assert.equal(r.error, undefined, `promtool: ${r.error}`);
    assert.equal(r.status, 0, `promtool check metrics: ${r.stdout}${r.stderr}`);
    assert.equal((r.stdout + r.stderr).trim(), '', 'no lint warnings');
  });
});

function promtoolSkip() {
  const found = spawnSync('promtool', ['--version'], { encoding: 'utf8' }).status === 0;
  if (found) return false;
  if (process.env.CALLSTATE_TEST_REQUIRE_PROMTOOL === '1') {
    throw new Error('promtool is missing and CALLSTATE_TEST_REQUIRE_PROMTOOL=1: install Debian\'s prometheus package');
  }
  return 'promtool is not installed (Debian: prometheus); tools/test requires it';
}

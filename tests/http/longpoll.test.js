// Long polls of the feed, GET /v1/events?after=SEQ&wait=S (API.md "Call events to the chat
// backend"): the answer comes as soon as an event past SEQ is committed (by any instance), or
// with an empty page after S seconds; waiting burns no CPU; CALLSTATE_LONG_POLLS bounds the
// waiting polls (503 beyond); a graceful stop answers the waiting polls at once.
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import { BACKEND, startServer, shutdown, assertError, newCall, sleep } from './harness.js';

const servers = [];
after(async () => { for (const s of servers) await shutdown(s); });

async function server(opts = {}) {
  const s = await startServer(opts);
  servers.push(s);
  return s;
}

async function lastSeq(srv) {
  const all = await srv.allEvents();
  return all.length ? all[all.length - 1].seq : 0;
}

/** GET /v1/events on a connection of its own (fetch would queue concurrent requests to one
 * origin behind each other here), to the first instance unless port says otherwise (waiting is
 * counted per instance, and untilWaiting looks there too); resolves to {status, body, ms, at}, ms: how long it took,
 * at: when the answer had arrived (Date.now()). */
function poll(srv, after, wait, { port = srv.ports[0] } = {}) {
  const t0 = Date.now();
  return new Promise((resolve, reject) => {
    const req = http.get({
      host: '127.0.0.1', port, path: `/v1/events?after=${after}&wait=${wait}`, agent: false,
      headers: { Authorization: `Bearer ${srv.secrets.serviceToken}` }, timeout: 40000,
    }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk) => { text += chunk; });
      res.on('end', () => resolve({ status: res.statusCode, body: JSON.parse(text), ms: Date.now() - t0, at: Date.now() }));
    });
    req.on('timeout', () => req.destroy(new Error('no answer in 40 s')));
    req.on('error', reject);
  });
}

/** Resolves once n long polls wait (on the instance of port), as GET /metrics counts them. */
async function untilWaiting(srv, n, port = srv.ports[0]) {
  for (let i = 0; i < 200; i++) {
    const m = await fetch(`http://127.0.0.1:${port}/metrics`, {
      headers: { Authorization: `Bearer ${srv.secrets.adminToken}` },
    });
    const waiting = Number(/^callstate_long_polls_waiting (\d+)$/m.exec(await m.text())?.[1]);
    if (waiting === n) return;
    await sleep(50);
  }
  assert.fail(`${n} long polls never waited at once`);
}

/** CPU seconds the process has used (user + system), from /proc. */
function cpuSeconds(pid) {
  const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks
}

describe('GET /v1/events?wait=S', () => {
  it('answers as soon as an event past SEQ is committed', async () => {
    const srv = await server();
    const seq = await lastSeq(srv);
    const waiting = poll(srv, seq, 20);
    await untilWaiting(srv, 1);
    const { call } = await srv.createCall(newCall(1));
    const r = await waiting;
    assert.equal(r.status, 200);
    assert.ok(r.ms < 10000, `it answered when the event came, not at the end (${r.ms} ms)`);
    assert.deepEqual(r.body.events.map((e) => [e.type, e.call_id]), [['call.ringing', call.id]]);
    assert.ok(r.body.events[0].seq > seq);
  });

  it('answers at once when events are there, and with an empty page after S seconds', async () => {
    const srv = await server();
    await srv.createCall(newCall(1));
    const now = await poll(srv, 0, 30);
    assert.equal(now.status, 200);
    assert.ok(now.body.events.length > 0);
    assert.ok(now.ms < 5000, `${now.ms} ms`);
    const idle = await poll(srv, await lastSeq(srv), 1);
    assert.equal(idle.status, 200);
    assert.deepEqual(idle.body, { events: [] });
    assert.ok(idle.ms >= 950 && idle.ms < 6000, `an empty page after the wait (${idle.ms} ms)`);
  });

  it('wait is 0 to 30', async () => {
    const srv = await server();
    for (const w of ['31', '-1', 'abc', '', '1.5']) {
      assertError(await srv.svc('GET', `/v1/events?after=0&wait=${w}`), 400, 'bad_request');
    }
    const zero = await poll(srv, 1000000, 0);
    assert.equal(zero.status, 200);
    assert.deepEqual(zero.body, { events: [] });
  });

  it('waiting burns no CPU', async () => {
    const srv = await server();
    const seq = await lastSeq(srv);
    const polls = Array.from({ length: 50 }, () => poll(srv, seq, 5));
    await untilWaiting(srv, 50);
    const cpu0 = cpuSeconds(srv.child.pid);
    await sleep(2000);
    const used = cpuSeconds(srv.child.pid) - cpu0;
    assert.ok(used < 0.2, `50 waiting polls used ${used} s of CPU in 2 s`);
    for (const r of await Promise.all(polls)) assert.deepEqual(r.body, { events: [] });
  });

  it('CALLSTATE_LONG_POLLS bounds the waiting polls: 503 beyond, a place again once one ends', async () => {
    const srv = await server({ env: { CALLSTATE_LONG_POLLS: 2 } });
    const seq = await lastSeq(srv);
    const two = [poll(srv, seq, 3), poll(srv, seq, 3)];
    await untilWaiting(srv, 2);
    const third = await poll(srv, seq, 2);
    assert.equal(third.status, 503);
    assert.equal(third.body.error.code, 'unavailable');
    assert.match(third.body.error.message, /CALLSTATE_LONG_POLLS/);
    const notWaiting = await srv.svc('GET', '/v1/events?after=0&wait=0');
    assert.equal(notWaiting.status, 200, 'a poll that does not wait needs no place');
    await Promise.all(two);
    const again = await poll(srv, seq, 1);
    assert.equal(again.status, 200);
  });

  it('a graceful stop answers the waiting polls at once', async () => {
    const srv = await server();
    const seq = await lastSeq(srv);
    const waiting = poll(srv, seq, 30);
    await untilWaiting(srv, 1);
    const t0 = Date.now();
    srv.child.kill('SIGTERM');
    const r = await waiting;
    assert.equal(r.status, 200);
    assert.deepEqual(r.body, { events: [] });
    const exit = await srv.exited;
    assert.deepEqual({ code: exit.code, signal: exit.signal }, { code: 0, signal: null });
    assert.ok(Date.now() - t0 < 10000, 'the stop did not wait for the poll\'s 30 s');
  });

  it('wakes for an event another instance committed (PostgreSQL, two instances)', { skip: BACKEND !== 'postgres' }, async () => {
    const srv = await server({ instances: 2 });
    const [a, b] = srv.ports;
    const seq = await lastSeq(srv);
    const waiting = poll(srv, seq, 20, { port: a });
    await untilWaiting(srv, 1, a);
    const res = await fetch(`http://127.0.0.1:${b}/v1/calls`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${srv.secrets.serviceToken}`, 'Content-Type': 'application/json' },
      body: JSON.stringify(newCall(1)),
    });
    assert.equal(res.status, 201);
    const call = (await res.json()).call;
    const r = await waiting;
    assert.equal(r.status, 200);
    assert.ok(r.ms < 10000, `woken by the other instance's commit (${r.ms} ms)`);
    assert.deepEqual(r.body.events.map((e) => e.call_id), [call.id]);
  });

  // Without prepared statements (pgbouncer) there is no listener, and a poll would find another
  // instance's events only when it looks again, a second after it began to wait; this
  // instance's own numbering round wakes it at its commit.
  it('wakes at once for this instance\'s commit, with no listener (PostgreSQL, CALLSTATE_DB_PREPARED=off)', { skip: BACKEND !== 'postgres' }, async () => {
    // One instance: with CALLSTATE_TEST_INSTANCES the commits would be made by others.
    const srv = await server({ instances: 1, env: { CALLSTATE_DB_PREPARED: 'off' } });
    for (let i = 0; i < 3; i++) {
      const seq = await lastSeq(srv);
      const waiting = poll(srv, seq, 20);
      await untilWaiting(srv, 1);
      const { call } = await srv.createCall(newCall(i + 1));
      const created = Date.now();
      const r = await waiting;
      assert.deepEqual(r.body.events.map((e) => [e.type, e.call_id]), [['call.ringing', call.id]]);
      assert.ok(r.at - created < 500, `answered ${r.at - created} ms after the 201, not when it looked again`);
    }
  });
});

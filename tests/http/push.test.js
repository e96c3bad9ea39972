// Push of the feed to CALLSTATE_EVENTS_URL (API.md "Events"): every event POSTed to a receiver
// of the test's own, signed as Standard Webhooks says (checked with the `standardwebhooks`
// package), in seq order per call, retried with backoff while the receiver fails, stopped by
// 410, kept across a kill -9, over kept connections, several calls at once per sender;
// GET /v1/events/delivery and /metrics say how it goes.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import https from 'node:https';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Webhook } from 'standardwebhooks';
import {
  startServer, shutdown, newCall, pollUntil, sleep, makeTmpDir, removeTmpDir, makeSecrets, baseEnv,
  runCli, freePort,
} from './harness.js';

const newKey = () => 'whsec_' + randomBytes(32).toString('base64');

/**
 * A receiver: answer(event, attempt) gives the status to answer with, 'hang' to never answer, or
 * 'slow' for a 200 after 300 ms.
 * Every request is verified with each key; received lists the events of verified requests in
 * arrival order, requests counts every request.
 */
async function startReceiver(keys, answer = () => 204) {
  const rx = { received: [], requests: 0, attempts: new Map(), failures: [], hanging: new Set() };
  rx.server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      rx.requests += 1;
      const body = Buffer.concat(chunks).toString('utf8');
      let event;
      try {
        for (const k of keys) new Webhook(k).verify(body, req.headers);
        event = JSON.parse(body);
        assert.equal(req.headers['webhook-id'], event.id, 'webhook-id is the event id');
        assert.equal(req.headers['webhook-signature'].split(' ').length, keys.length, 'one signature per key');
      } catch (e) {
        rx.failures.push(e.message);
        res.writeHead(400).end();
        return;
      }
      const attempt = (rx.attempts.get(event.id) || 0) + 1;
      rx.attempts.set(event.id, attempt);
      const status = answer(event, attempt);
      if (status === 'hang') {
        rx.hanging.add(res);
        return;
      }
      if (status === 'slow') {
        setTimeout(() => { rx.received.push(event); res.writeHead(200).end(); }, 300);
        return;
      }
      if (status >= 200 && status < 300) rx.received.push(event);
      res.writeHead(status).end();
    });
  });
  await new Promise((resolve) => rx.server.listen(0, '127.0.0.1', resolve));
  rx.url = `http://127.0.0.1:${rx.server.address().port}/hooks?src=callstate`;
  rx.close = async () => {
    for (const res of rx.hanging) res.socket?.destroy();
    rx.server.closeAllConnections();
    await new Promise((resolve) => rx.server.close(resolve));
  };
  return rx;
}

/** Each call's events as first received, in order; duplicates (at least once) dropped. */
function firstArrivals(received) {
  const seen = new Set();
  const per = new Map();
  for (const e of received) {
    if (seen.has(e.id)) continue;
    seen.add(e.id);
    const key = e.call_id ?? 'presence';
    if (!per.has(key)) per.set(key, []);
    per.get(key).push(e);
  }
  return per;
}

/** Until the receiver holds every event of the feed; then each arrived in seq order per call
 * and is the feed's event exactly. */
async function assertAllDelivered(srv, rx, timeoutMs) {
  const feed = await srv.allEvents(0);
  assert.ok(feed.length > 0, 'the feed has events');
  const [done] = await pollUntil(() => {
    const ids = new Set(rx.received.map((e) => e.id));
    return feed.every((e) => ids.has(e.id));
  }, timeoutMs, 100);
  const ids = new Set(rx.received.map((e) => e.id));
  assert.ok(done, `every event pushed within ${timeoutMs} ms: ${feed.filter((e) => !ids.has(e.id)).length} of ${feed.length} missing`);
  const byId = new Map(feed.map((e) => [e.id, e]));
  for (const e of rx.received) assert.deepEqual(e, byId.get(e.id), 'the pushed body is the feed\'s event');
  for (const [key, evs] of firstArrivals(rx.received)) {
    const seqs = evs.map((e) => e.seq);
    assert.deepEqual(seqs, [...seqs].sort((a, b) => a - b), `events of ${key} in seq order`);
  }
  assert.deepEqual(rx.failures, [], 'every push verified');
  return feed;
}

/** A few calls driven at once, each through several changes. */
async function driveCalls(srv, n) {
  const ids = [];
  await Promise.all(Array.from({ length: n }, async () => {
    const r = newCall(1);
    const id = (await srv.createCall(r)).call.id;
    ids.push(id);
    await srv.act(id, 'accept', { user: r.callees[0] });
    await srv.act(id, 'end', { user: r.caller });
  }));
  return ids;
}

async function deliveryStatus(srv) {
  const r = await srv.admin('GET', '/v1/events/delivery');
  assert.equal(r.status, 200, r.text);
  return r.body;
}

describe('push settings', () => {
  const dir = makeTmpDir();
  const env = (over) => baseEnv(makeSecrets(), dir, 1, over);
  const refused = (over, name) => {
    const r = runCli(['serve'], env(over));
    assert.equal(r.code, 2, r.stderr);
    assert.equal(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr}`);
    assert.match(r.stderr, new RegExp(name), r.stderr);
  };
  it('the URL must be http:// or https://', () => {
    refused({ CALLSTATE_EVENTS_URL: 'ftp://example.com/x', CALLSTATE_EVENTS_SECRET: newKey() }, 'CALLSTATE_EVENTS_URL');
    refused({ CALLSTATE_EVENTS_URL: 'http://', CALLSTATE_EVENTS_SECRET: newKey() }, 'CALLSTATE_EVENTS_URL');
  });
  it('the secret is required with the URL, whsec_ and base64, two keys at most', () => {
    refused({ CALLSTATE_EVENTS_URL: 'http://127.0.0.1:9/x' }, 'CALLSTATE_EVENTS_SECRET');
    refused({ CALLSTATE_EVENTS_URL: 'http://127.0.0.1:9/x', CALLSTATE_EVENTS_SECRET: 'plain' }, 'CALLSTATE_EVENTS_SECRET');
    refused({ CALLSTATE_EVENTS_URL: 'http://127.0.0.1:9/x', CALLSTATE_EVENTS_SECRET: 'whsec_!!!!' }, 'CALLSTATE_EVENTS_SECRET');
    refused({
      CALLSTATE_EVENTS_URL: 'http://127.0.0.1:9/x',
      CALLSTATE_EVENTS_SECRET: `${newKey()} ${newKey()},${newKey()}`,
    }, 'CALLSTATE_EVENTS_SECRET');
  });
  after(() => removeTmpDir(dir));
});

describe('push to CALLSTATE_EVENTS_URL', () => {
  let srv;
  let rx;
  const keys = [newKey(), newKey()];
  before(async () => {
    rx = await startReceiver(keys);
    srv = await startServer({ env: { CALLSTATE_EVENTS_URL: rx.url, CALLSTATE_EVENTS_SECRET: keys.join(' ') } });
  });
  after(async () => { await shutdown(srv); await rx?.close(); });

  it('pushes every event, signed with both keys while rotating, in seq order per call', async () => {
    await driveCalls(srv, 8);
    await srv.svc('PUT', '/v1/presence/pu1', { status: 'busy' });
    await assertAllDelivered(srv, rx, 15000);
    // The receiver holds the last events a moment before their answers are read and recorded.
    const [st] = await pollUntil(async () => {
      const s = await deliveryStatus(srv);
      return s.backlog === 0 ? s : null;
    }, 5000, 50);
    assert.ok(st, 'the backlog empties');
    assert.equal(st.url, rx.url);
    assert.equal(st.oldest_undelivered_age_ms, 0);
    assert.equal(st.dead, 0);
    assert.equal(st.stopped, false);
    assert.equal(st.last_error, null);
    assert.ok(st.delivered > 0, `delivered counts this instance's deliveries: ${JSON.stringify(st)}`);
  });

  it('shows the figures in /metrics', async () => {
    const r = await srv.admin('GET', '/metrics');
    assert.equal(r.status, 200);
    assert.match(r.text, /^callstate_push_backlog 0$/m);
    assert.match(r.text, /^callstate_push_attempts_total\{result="delivered"\} [1-9]\d*$/m);
    assert.match(r.text, /^callstate_push_dead_events 0$/m);
  });

  it('GET /v1/events/delivery is for admins', async () => {
    assert.equal((await srv.request('GET', '/v1/events/delivery', { token: 'none' })).status, 401);
    assert.equal((await srv.request('GET', '/v1/events/delivery', { token: 'service' })).status, 403);
    assert.equal((await srv.request('GET', '/v1/events/delivery', { token: 'wrong' })).status, 401);
    assert.equal((await srv.request('GET', '/v1/events/delivery', { token: 'admin' })).status, 200);
  });
});

describe('push while the receiver fails', () => {
  let srv;
  let rx;
  const key = newKey();
  let failing = true;
  before(async () => {
    // Fails the first two tries of every event, and everything while `failing`.
    rx = await startReceiver([key], (e, attempt) => (failing || attempt <= 2 ? 503 : 200));
    srv = await startServer({ env: { CALLSTATE_EVENTS_URL: rx.url, CALLSTATE_EVENTS_SECRET: key } });
  });
  after(async () => { await shutdown(srv); await rx?.close(); });

  it('retries with backoff, says so in the status, then delivers every event in order', async () => {
    await driveCalls(srv, 3);
    const [st] = await pollUntil(async () => {
      const s = await deliveryStatus(srv);
      return s.last_error && s.backlog > 0 ? s : null;
    }, 5000, 100);
    assert.ok(st, 'the status shows the failure');
    assert.equal(st.last_error.error, 'HTTP 503');
    assert.equal(typeof st.last_error.seq, 'number');
    assert.ok(st.oldest_undelivered_age_ms > 0);
    failing = false;
    // Each event's own tries: 1 s, 2 s, then a third try within 4 s (with jitter) that succeeds;
    // a call's later events wait for the earlier ones.
    await assertAllDelivered(srv, rx, 60000);
    for (const [id, n] of rx.attempts) assert.ok(n >= 3, `event ${id} was tried ${n} times`);
    const after = await deliveryStatus(srv);
    assert.equal(after.backlog, 0);
    assert.ok(after.retried > 0);
  });
});

describe('push with a receiver that hangs on one call', () => {
  let srv;
  let rx;
  const key = newKey();
  let slowCall = null;
  before(async () => {
    rx = await startReceiver([key], (e) => (e.call_id && e.call_id === slowCall ? 'hang' : 200));
    srv = await startServer({ env: { CALLSTATE_EVENTS_URL: rx.url, CALLSTATE_EVENTS_SECRET: key } });
  });
  after(async () => { await shutdown(srv); await rx?.close(); });

  it('delivers the other calls\' events meanwhile', async () => {
    const r = newCall(1);
    slowCall = (await srv.createCall(r)).call.id;
    await srv.act(slowCall, 'accept', { user: r.callees[0] });
    const [hung] = await pollUntil(() => rx.hanging.size > 0, 5000);
    assert.ok(hung, 'the slow call\'s first event reached the receiver');
    const started = Date.now();
    const others = await driveCalls(srv, 4);
    const want = (await srv.allEvents(0)).filter((e) => others.includes(e.call_id)).map((e) => e.id);
    const [done] = await pollUntil(() => {
      const got = new Set(rx.received.map((e) => e.id));
      return want.every((id) => got.has(id));
    }, 5000);
    assert.ok(done, 'the other calls\' events arrived while one call hangs');
    assert.ok(Date.now() - started < 5000);
    assert.equal(rx.received.filter((e) => e.call_id === slowCall).length, 0, 'nothing of the hanging call got through');
  });
});

/** Commits so far, as /metrics counts them (every transaction, empty or not), summed over the
 * server's instances (CALLSTATE_TEST_INSTANCES): each counts its own. */
async function commits(srv) {
  let n = 0;
  for (const port of srv.ports) {
    const r = await fetch(`http://127.0.0.1:${port}/metrics`, { headers: { Authorization: `Bearer ${srv.secrets.adminToken}` } });
    const m = (await r.text()).match(/^callstate_db_commit_batch_transactions_count\{[^}]*\} (\d+)$/m);
    assert.ok(m, 'the commit count is in /metrics');
    n += Number(m[1]);
  }
  return n;
}

/**
 * A receiver on kept connections for the connection tests: `server` is made by `create(handler)`
 * (http or https); each request is verified with key and recorded, then `answer(req, res, event)`
 * answers it. Counts connections (`connectionEvent`: 'connection', or 'secureConnection').
 */
async function startKeptReceiver(key, create, connectionEvent, answer) {
  const rx = { received: [], requests: 0, connections: 0, failures: [] };
  rx.server = create((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      new Webhook(key).verify(body, req.headers);
      const event = JSON.parse(body);
      rx.received.push(event);
      answer(req, res, event);
    });
  });
  rx.server.keepAliveTimeout = 60000;
  rx.server.on(connectionEvent, () => { rx.connections += 1; });
  await new Promise((resolve) => rx.server.listen(0, '127.0.0.1', resolve));
  const scheme = connectionEvent === 'secureConnection' ? 'https' : 'http';
  rx.url = `${scheme}://127.0.0.1:${rx.server.address().port}/hooks`;
  rx.close = async () => {
    rx.server.closeAllConnections();
    await new Promise((resolve) => rx.server.close(resolve));
  };
  return rx;
}

describe('push stopped while an attempt hangs', () => {
  let srv;
  let rx;
  const key = newKey();
  before(async () => {
    rx = await startReceiver([key], () => 'hang');
    srv = await startServer({ env: { CALLSTATE_EVENTS_URL: rx.url, CALLSTATE_EVENTS_SECRET: key } });
  });
  after(async () => { await shutdown(srv); await rx?.close(); });

  it('stops without waiting for the receiver\'s 10 s', async () => {
    await srv.createCall(newCall(1));
    const [hung] = await pollUntil(() => rx.hanging.size > 0, 5000);
    assert.ok(hung, 'an attempt hangs');
    const stopping = Date.now();
    await srv.stop();
    // A stop takes about 2 s here (CivetWeb joins its workers); waiting for the attempt would
    // take its 10 s.
    const took = Date.now() - stopping;
    assert.ok(took < 7000, `the stop took ${took} ms`);
  });
});

describe('push over kept connections', () => {
  let srv;
  let rx;
  const key = newKey();
  const shapes = ['empty', 'length', 'chunked', 'close'];
  let stallNext = false;
  let stalled = null;
  before(async () => {
    // Answers in turn with no body, a body with a length, a chunked body, and "Connection:
    // close"; on demand, an answer whose body never ends.
    rx = await startKeptReceiver(key, (h) => http.createServer(h), 'connection', (req, res) => {
      if (stallNext) {
        stallNext = false;
        stalled = { at: Date.now(), closedAt: null };
        req.socket.on('close', () => { stalled.closedAt = Date.now(); });
        res.writeHead(200, { 'Content-Length': 100 });
        res.write('only ten b');
        return;
      }
      const shape = shapes[rx.requests++ % shapes.length];
      if (shape === 'empty') res.writeHead(204).end();
      else if (shape === 'length') res.writeHead(200, { 'Content-Type': 'text/plain' }).end('received');
      else if (shape === 'chunked') { res.writeHead(202); res.write('rece'); res.end('ived'); }
      else res.writeHead(200, { Connection: 'close' }).end('bye');
    });
    srv = await startServer({ env: { CALLSTATE_EVENTS_URL: rx.url, CALLSTATE_EVENTS_SECRET: key } });
  });
  after(async () => { await shutdown(srv); await rx?.close(); });

  it('keeps connections across answers of every shape', async () => {
    await driveCalls(srv, 40);
    await assertAllDelivered(srv, rx, 15000);
    // One answer in four closes its connection; the others leave it for the next request. Each
    // of the 4 senders opens one connection per request it has in flight at once (8 at most).
    assert.ok(rx.requests >= 100, `${rx.requests} requests`);
    assert.ok(rx.connections <= rx.requests / 4 + 4 * 8 + 2,
      `${rx.connections} connections for ${rx.requests} requests`);
  });

  it('closes a connection whose answer never ends, within the timeout, and goes on', async () => {
    stallNext = true;
    await driveCalls(srv, 1);
    const [closed] = await pollUntil(() => stalled?.closedAt, 16000, 100);
    assert.ok(closed, 'callstate closed the stalled connection');
    const held = stalled.closedAt - stalled.at;
    assert.ok(held >= 9000 && held < 15000, `held ${held} ms: the 10 s timeout`);
    await driveCalls(srv, 2);
    await assertAllDelivered(srv, rx, 15000);
  });

  it('does no work while there is nothing to push', async () => {
    await sleep(500);
    const before = await commits(srv);
    await sleep(3000);
    const idle = (await commits(srv)) - before;
    assert.ok(idle <= srv.ports.length, `${idle} transactions in 3 s of idle`);
  });
});

/**
 * A CA of the test's own and, by the openssl command, three certificates it signs: `ip` for
 * 127.0.0.1, `dns` for localhost, and `other` for names the receiver is not reached by.
 */
function makeCertificates(dir) {
  const run = (args) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  run(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=callstate test CA',
    '-keyout', 'ca.key', '-out', 'ca.pem']);
  const names = { ip: 'IP:127.0.0.1', dns: 'DNS:localhost', other: 'DNS:receiver.invalid,IP:127.0.0.2' };
  const certs = { ca: join(dir, 'ca.pem') };
  for (const [name, alt] of Object.entries(names)) {
    // The subject's common name is the receiver's address in every one: a name check must go
    // by the subject alternative names, which is what a CA-issued certificate carries.
    run(['req', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=127.0.0.1', '-keyout', `${name}.key`,
      '-out', `${name}.csr`]);
    writeFileSync(join(dir, `${name}.ext`), `subjectAltName=${alt}\n`);
    run(['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial',
      '-days', '2', '-extfile', `${name}.ext`, '-out', `${name}.pem`]);
    certs[name] = { key: readFileSync(join(dir, `${name}.key`)), cert: readFileSync(join(dir, `${name}.pem`)) };
  }
  return certs;
}

describe('push to an https receiver', () => {
  const dir = makeTmpDir();
  const key = newKey();
  let certs;
  let rx;
  let srv;
  before(async () => {
    certs = makeCertificates(dir);
    const create = (h) => https.createServer(certs.ip, h);
    rx = await startKeptReceiver(key, create, 'secureConnection', (req, res) => res.writeHead(204).end());
  });
  after(async () => {
    await shutdown(srv);
    await rx?.close();
    removeTmpDir(dir);
  });

  /** A server pushing to url, trusting the test's CA. */
  const startPushing = (url) => startServer({
    env: { CALLSTATE_EVENTS_URL: url, CALLSTATE_EVENTS_SECRET: key, CALLSTATE_EVENTS_CA_FILE: certs.ca },
  });
  /** Until the delivery status shows an error; the receiver got nothing meanwhile. */
  async function assertRefused() {
    const before = rx.received.length;
    await driveCalls(srv, 1);
    const [st] = await pollUntil(async () => {
      const s = await deliveryStatus(srv);
      return s.last_error ? s : null;
    }, 5000, 100);
    assert.ok(st, 'the status shows the failure');
    assert.match(st.last_error.error, /^cannot connect/);
    assert.equal(rx.received.length, before, 'nothing reached the receiver');
    await shutdown(srv);
    srv = null;
  }

  it('delivers over TLS to a receiver whose certificate CALLSTATE_EVENTS_CA_FILE vouches for', async () => {
    srv = await startPushing(rx.url);
    // Four calls at a time, three times: a sender has at most four calls' events in flight at
    // once, each on a connection of its own, and keeps them for the next ones.
    for (let i = 0; i < 3; i++) await driveCalls(srv, 4);
    await assertAllDelivered(srv, rx, 15000);
    assert.ok(rx.connections <= 4 * 4 + 2, `${rx.connections} TLS connections for ${rx.received.length} events`);
    await shutdown(srv);
    srv = null;
  });

  it('sends nothing to a receiver whose certificate the CA file does not vouch for', async () => {
    srv = await startServer({ env: { CALLSTATE_EVENTS_URL: rx.url, CALLSTATE_EVENTS_SECRET: key } });
    await assertRefused();
  });

  it('sends nothing to a receiver whose certificate, from a trusted CA, names another host', async () => {
    rx.server.setSecureContext(certs.other);
    try {
      srv = await startPushing(rx.url);
      await assertRefused();
    } finally {
      rx.server.setSecureContext(certs.ip);
    }
  });

  it('checks a host name too: delivers to https://localhost with a certificate for localhost', async () => {
    rx.server.setSecureContext(certs.dns);
    rx.received = [];
    try {
      srv = await startPushing(rx.url.replace('127.0.0.1', 'localhost'));
      await driveCalls(srv, 2);
      await assertAllDelivered(srv, rx, 15000);
      await shutdown(srv);
      srv = null;
      // The same certificate, reached by the address it does not name.
      srv = await startPushing(rx.url);
      await assertRefused();
    } finally {
      rx.server.setSecureContext(certs.ip);
    }
  });

  it('refuses to start without certificates to check https receivers with', () => {
    const r = runCli(['serve'], baseEnv(makeSecrets(), dir, 1, {
      CALLSTATE_EVENTS_URL: rx.url, CALLSTATE_EVENTS_SECRET: key, CALLSTATE_EVENTS_CA_FILE: join(dir, 'ip.csr'),
    }));
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /CALLSTATE_EVENTS_CA_FILE: no PEM certificates/);
  });
});

describe('push across a kill -9', () => {
  let first;
  let second;
  let rx;
  const key = newKey();
  before(async () => {
    rx = await startReceiver([key], () => 'slow');
  });
  after(async () => {
    if (first) await first.kill();
    await shutdown(second);
    await rx?.close();
  });

  it('loses nothing: after the restart every event arrives', async () => {
    const env = { CALLSTATE_EVENTS_URL: rx.url, CALLSTATE_EVENTS_SECRET: key };
    first = await startServer({ env });
    await driveCalls(first, 6);
    const feedBefore = await first.allEvents(0);
    const [some] = await pollUntil(() => rx.received.length > 0, 10000, 10);
    assert.ok(some, 'some events arrived before the kill');
    first.child.kill('SIGKILL');
    await first.exited;
    const pushedBefore = new Set(rx.received.map((e) => e.id)).size;
    assert.ok(pushedBefore < feedBefore.length, 'the kill came with events still to push');
    second = await startServer({ env, dir: first.dir, secrets: first.secrets, port: await freePort() });
    await driveCalls(second, 2);
    // What was in flight at the kill is leased for 27 s: it goes again after that.
    await assertAllDelivered(second, rx, 60000);
  });
});

describe('push stopped by 410 Gone', () => {
  let srv;
  let rx;
  const key = newKey();
  before(async () => {
    rx = await startReceiver([key], () => 410);
    srv = await startServer({ env: { CALLSTATE_EVENTS_URL: rx.url, CALLSTATE_EVENTS_SECRET: key } });
  });
  after(async () => { await shutdown(srv); await rx?.close(); });

  it('sends nothing more, and the status and the log say so', async () => {
    await driveCalls(srv, 2);
    const [st] = await pollUntil(async () => {
      const s = await deliveryStatus(srv);
      return s.stopped ? s : null;
    }, 5000, 100);
    assert.ok(st, 'the status says stopped');
    assert.equal(st.last_error.error, 'HTTP 410');
    assert.ok(st.backlog > 0, 'the other events wait');
    const requests = rx.requests;
    await driveCalls(srv, 1);
    await sleep(1500);
    assert.equal(rx.requests, requests, 'nothing was sent after the 410');
    // The senders, and each sender's connections, run in parallel: besides the refused one,
    // the head of the other call may have been in flight (refused too, and kept, since delivery
    // stopped); nothing comes after a call's refused head.
    assert.ok(rx.requests <= 2, `${rx.requests} requests: one per call at most`);
    assert.match(srv.stderr, /410/);
    const m = await srv.admin('GET', '/metrics');
    assert.match(m.text, /^callstate_push_stopped 1$/m);
  });
});

/**
 * A receiver on kept connections (startKeptReceiver) that answers each request after a random
 * 5-40 ms, 503 to the first attempt of every call.accepted. Per call it records, for each
 * request, the events of that call answered 2xx before the request came; it notes a violation
 * when a request comes while another of its call is unanswered. Counts requests unanswered at
 * once.
 */
async function startSlowReceiver(key) {
  const rx = await startKeptReceiver(key, (h) => http.createServer(h), 'connection', (req, res, event) => {
    const call = event.call_id ?? 'presence';
    if (rx.busy.has(call)) rx.violations.push(`${event.type} (seq ${event.seq}) came while another event of its call was unanswered`);
    rx.busy.add(call);
    if (!rx.answered.has(call)) rx.answered.set(call, new Set());
    rx.arrivals.push({ event, deliveredBefore: new Set(rx.answered.get(call)) });
    rx.inFlight += 1;
    rx.maxInFlight = Math.max(rx.maxInFlight, rx.inFlight);
    const attempt = (rx.attempts.get(event.id) || 0) + 1;
    rx.attempts.set(event.id, attempt);
    const status = event.type === 'call.accepted' && attempt === 1 ? 503 : 204;
    setTimeout(() => {
      rx.busy.delete(call);
      rx.inFlight -= 1;
      if (status === 204) rx.answered.get(call).add(event.seq);
      res.writeHead(status).end();
    }, 5 + Math.random() * 35);
  });
  return Object.assign(rx, {
    arrivals: [], violations: [], attempts: new Map(), inFlight: 0, maxInFlight: 0,
    answered: new Map(), busy: new Set(),
  });
}

describe('push of many calls at once', () => {
  let srv;
  let rx;
  const key = newKey();
  before(async () => {
    rx = await startSlowReceiver(key);
    srv = await startServer({ env: { CALLSTATE_EVENTS_URL: rx.url, CALLSTATE_EVENTS_SECRET: key } });
  });
  after(async () => { await shutdown(srv); await rx?.close(); });

  it('sends several calls\' events at once per sender, each call\'s one at a time, stopping at a failure', async () => {
    await driveCalls(srv, 40);
    const feed = await assertAllDelivered(srv, rx, 30000);
    const [answered] = await pollUntil(() => feed.every((e) => rx.answered.get(e.call_id)?.has(e.seq)), 5000, 50);
    assert.ok(answered, 'every event was answered 2xx');
    // 4 senders: more requests than that at once means a sender has several in flight; 8
    // connections each bound them, per instance (CALLSTATE_TEST_INSTANCES).
    const bound = 4 * 8 * srv.ports.length;
    assert.ok(rx.maxInFlight > 4, `${rx.maxInFlight} requests in flight at once at most`);
    assert.ok(rx.maxInFlight <= bound, `${rx.maxInFlight} requests in flight at once`);
    assert.ok(rx.connections <= bound, `${rx.connections} connections`);
    assert.deepEqual(rx.violations, [], 'one request per call in flight at a time');
    // Every request came after each earlier event of its call was answered 2xx: a call.accepted
    // refused once held its call.ended back until its retry was delivered.
    const bySeq = new Map(feed.map((e) => [e.seq, e]));
    for (const { event, deliveredBefore } of rx.arrivals) {
      const earlier = feed.filter((e) => e.call_id === event.call_id && e.seq < event.seq).map((e) => e.seq);
      const missing = earlier.filter((q) => !deliveredBefore.has(q));
      assert.deepEqual(missing.map((q) => bySeq.get(q).type), [], `${event.type} (seq ${event.seq}) went before these were delivered`);
    }
    const refused = [...rx.attempts].filter(([, n]) => n > 1).length;
    assert.equal(refused, 40, 'each call.accepted was refused once, then delivered');
  });
});

describe('push of a backlog in full batches', () => {
  let first;
  let srv;
  let rx;
  const key = newKey();
  before(async () => {
    rx = await startSlowReceiver(key);
  });
  after(async () => {
    await shutdown(first);
    await shutdown(srv);
    await rx?.close();
  });

  it('loses, repeats and reorders nothing when every claim is full', async () => {
    // Made with push off, then pushed at once: 300 heads due, so every sender's claims are full
    // (64) and its connections stay busy from one batch to the next.
    first = await startServer({ env: { CALLSTATE_EVENTS_URL: null } });
    for (let i = 0; i < 15; i++) await driveCalls(first, 20); // 20 at a time: a slow build keeps up
    await first.stop({ keepDir: true });
    srv = await startServer({
      env: { CALLSTATE_EVENTS_URL: rx.url, CALLSTATE_EVENTS_SECRET: key },
      dir: first.dir, secrets: first.secrets, port: await freePort(),
    });
    const feed = await assertAllDelivered(srv, rx, 60000);
    assert.ok(feed.length >= 900, `${feed.length} events`);
    assert.deepEqual(rx.violations, [], 'one request per call in flight at a time');
    assert.ok(rx.maxInFlight <= 4 * 8 * srv.ports.length, `${rx.maxInFlight} requests in flight at once`);
    const bySeq = new Map(feed.map((e) => [e.seq, e]));
    for (const { event, deliveredBefore } of rx.arrivals) {
      const earlier = feed.filter((e) => e.call_id === event.call_id && e.seq < event.seq).map((e) => e.seq);
      const missing = earlier.filter((q) => !deliveredBefore.has(q));
      assert.deepEqual(missing.map((q) => bySeq.get(q).type), [], `${event.type} (seq ${event.seq}) went before these were delivered`);
    }
    // Each outcome recorded once: nothing is sent again after its lease, but the refused ones.
    const [settled] = await pollUntil(async () => (await deliveryStatus(srv)).backlog === 0, 10000, 100);
    assert.ok(settled, 'every outcome recorded');
    const again = feed.filter((e) => rx.attempts.get(e.id) !== (e.type === 'call.accepted' ? 2 : 1));
    assert.deepEqual(again.map((e) => `${e.type} ${e.seq}: ${rx.attempts.get(e.id)}`), [], 'each event sent once, each call.accepted twice');
  });
});

// The process: --version/--help, configuration errors (one line, exit 2, nothing served),
// migrate, health routes, graceful SIGTERM with requests in flight, logs (logfmt, request id,
// never a secret or a token).
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import {
  BIN, startServer, shutdown, runCli, baseEnv, makeSecrets, makeTmpDir, removeTmpDir, freePort,
  assertToken, newCall, uid, sleep, BACKEND, rawSql,
} from './harness.js';

const dirs = [];
after(() => { for (const d of dirs) removeTmpDir(d); });
function tmp() { const d = makeTmpDir(); dirs.push(d); return d; }

async function envFor(overrides = {}) {
  const d = tmp();
  const port = await freePort();
  return { env: baseEnv(makeSecrets(), d, port, overrides), dir: d, port };
}

function portOpen(port) {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.on('connect', () => { s.destroy(); resolve(true); });
    s.on('error', () => resolve(false));
  });
}

function assertOneLineNaming(r, name) {
  assert.equal(r.code, 2, `exit status 2 for ${name}; got ${r.code} (signal ${r.signal}); stderr: ${r.stderr}`);
  const lines = r.stderr.split('\n').filter((l) => l.trim() !== '');
  assert.equal(lines.length, 1, `exactly one line on stderr, got: ${JSON.stringify(r.stderr)}`);
  assert.ok(lines[0].includes(name), `the line names ${name}: ${lines[0]}`);
}

const LOGFMT = /^\s*(?:[A-Za-z_][\w.\-]*=(?:"(?:[^"\\]|\\.)*"|[^\s"]*)\s*)+$/;

describe('command line', () => {
  it('--version exits 0 and prints the version', async () => {
    const { env } = await envFor();
    const r = runCli(['--version'], env);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /\d+\.\d+\.\d+/);
  });

  it('--help exits 0 and names the commands', async () => {
    const { env } = await envFor();
    const r = runCli(['--help'], env);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /serve/);
    assert.match(r.stdout, /migrate/);
  });

  it('--version and --help work without any setting', () => {
    assert.equal(runCli(['--version'], { PATH: process.env.PATH }).code, 0);
    assert.equal(runCli(['--help'], { PATH: process.env.PATH }).code, 0);
  });

  it('an unknown command fails', async () => {
    const { env } = await envFor();
    const r = runCli(['frobnicate'], env);
    assert.notEqual(r.code, 0);
    assert.equal(r.signal, null);
  });
});

describe('configuration errors: one line naming the setting, exit 2, nothing served', () => {
  const missing = ['LIVEKIT_API_SECRET', 'LIVEKIT_API_KEY', 'CALLSTATE_SERVICE_TOKENS'];
  for (const name of missing) {
    it(`missing ${name}`, async () => {
      const { env, port } = await envFor({ [name]: null });
      assertOneLineNaming(runCli(['serve'], env, 5000), name);
      assert.equal(await portOpen(port), false, 'nothing listens');
    });
  }
  const invalid = [
    ['CALLSTATE_THREADS', '0'],
    ['CALLSTATE_THREADS', 'many'],
    ['CALLSTATE_THREADS', '-4'],
    ['CALLSTATE_LISTEN', 'not-an-address'],
    ['CALLSTATE_LISTEN', '127.0.0.1:99999'],
    ['CALLSTATE_LISTEN', '999.1.1.1:8080'],
    ['CALLSTATE_DB', 'mysql://localhost/x'],
    ['CALLSTATE_RING_TIMEOUT_S', 'soon'],
    ['CALLSTATE_JOIN_TIMEOUT_S', '-1'],
    ['CALLSTATE_TOKEN_TTL_S', '0'],
    ['CALLSTATE_MAX_BODY_BYTES', 'big'],
    ['CALLSTATE_IDLE_TIMEOUT_MS', 'x'],
    ['CALLSTATE_RETENTION_DAYS', '-1'],
    ['CALLSTATE_RETENTION_DAYS', '36501'],
  ];
  for (const [name, value] of invalid) {
    it(`${name}=${value}`, async () => {
      const { env, port } = await envFor({ [name]: value });
      const r = runCli(['serve'], env, 5000);
      assertOneLineNaming(r, name);
      assert.equal(await portOpen(port), false, 'nothing listens');
    });
  }
  it('an unreadable LIVEKIT_API_SECRET_FILE', async () => {
    const { env, dir } = await envFor({ LIVEKIT_API_SECRET: null });
    env.LIVEKIT_API_SECRET_FILE = path.join(dir, 'does-not-exist');
    assertOneLineNaming(runCli(['serve'], env, 5000), 'LIVEKIT_API_SECRET');
  });
  it('an unreadable --config file', async () => {
    const { env, dir } = await envFor();
    const r = runCli(['serve', '--config', path.join(dir, 'nope.conf')], env, 5000);
    assert.equal(r.code, 2, r.stderr);
    assert.equal(r.stderr.split('\n').filter((l) => l.trim()).length, 1, r.stderr);
  });
  it('a PostgreSQL URL libpq cannot parse: one line, exit 2, the password not shown', async () => {
    const { env, port } = await envFor({ CALLSTATE_DB: 'postgresql://u:Pass%zzWord@127.0.0.1:1/x' });
    const r = runCli(['serve'], env, 5000);
    assertOneLineNaming(r, 'CALLSTATE_DB');
    assert.ok(!r.stderr.includes('Pass'), r.stderr);
    assert.equal(await portOpen(port), false, 'nothing listens');
  });
  // SQLite opens a file the process may not write read-only, silently: the server would then
  // serve and refuse every write. Shown as root, starting callstate as nobody on a root-owned
  // 0444 file (root itself may write any file).
  const asNobody = BACKEND === 'sqlite' && process.getuid?.() === 0 &&
    spawnSync('runuser', ['-u', 'nobody', '--', 'test', '-x', BIN]).status === 0;
  it('a database file it may not write: exit 2 at start, nothing served', { skip: !asNobody && 'needs root, runuser and a binary nobody may run (SQLite)' }, async () => {
    const { env, dir, port } = await envFor();
    assert.equal(runCli(['migrate'], env).code, 0);
    fs.chmodSync(dir, 0o777);
    fs.chmodSync(path.join(dir, 'callstate.db'), 0o444);
    const r = spawnSync('runuser', ['-u', 'nobody', '--', 'env', ...Object.entries(env).map(([k, v]) => `${k}=${v}`), BIN, 'serve'],
      { encoding: 'utf8', timeout: 5000 });
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, /CALLSTATE_DB/);
    assert.equal(await portOpen(port), false, 'nothing listens');
  });
  it('the error line never shows a secret', async () => {
    const { env } = await envFor({ CALLSTATE_THREADS: '0' });
    const r = runCli(['serve'], env, 5000);
    assert.ok(!r.stderr.includes(env.LIVEKIT_API_SECRET));
    assert.ok(!r.stderr.includes(env.CALLSTATE_SERVICE_TOKENS.split(',')[0]));
  });
});

describe('settings from files', () => {
  it('NAME_FILE and --config (environment wins over the file)', async () => {
    const d = tmp();
    const secrets = makeSecrets();
    const port = await freePort();
    const env = baseEnv(secrets, d, port, { LIVEKIT_API_SECRET: null, CALLSTATE_TOKEN_TTL_S: null });
    fs.writeFileSync(path.join(d, 'secret'), secrets.apiSecret + '\n');
    env.LIVEKIT_API_SECRET_FILE = path.join(d, 'secret');
    fs.writeFileSync(path.join(d, 'callstate.conf'),
      `# test config\nCALLSTATE_TOKEN_TTL_S = 900\nLIVEKIT_URL = ws://config-file.invalid\n`);
    const { spawn } = await import('node:child_process');
    // Start by hand: the harness has no --config option.
    const child = spawn(BIN, ['serve', '--config', path.join(d, 'callstate.conf')], { env, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (b) => { stderr += b; });
    const exited = new Promise((r) => child.on('exit', (code, signal) => r({ code, signal })));
    try {
      let ok = false;
      for (let i = 0; i < 200 && !ok; i++) {
        try { ok = (await fetch(`http://127.0.0.1:${port}/healthz`)).status === 200; } catch { await sleep(50); }
      }
      assert.ok(ok, `did not start: ${stderr}`);
      const req = newCall(1);
      const res = await fetch(`http://127.0.0.1:${port}/v1/calls`, {
        method: 'POST', headers: { Authorization: `Bearer ${secrets.serviceToken}`, 'Content-Type': 'application/json' }, body: JSON.stringify(req),
      });
      const body = await res.json();
      assert.equal(res.status, 201, JSON.stringify(body));
      // LIVEKIT_URL: the environment (ws://127.0.0.1:7880) wins over the file.
      const fake = { secrets, verifier: new (await import('livekit-server-sdk')).TokenVerifier(secrets.apiKey, secrets.apiSecret) };
      await assertToken(fake, body, { user: req.caller, room: body.call.room, kind: 'audio' });
    } finally {
      child.kill('SIGTERM');
      const ex = await Promise.race([exited, sleep(15000).then(() => null)]);
      if (!ex) child.kill('SIGKILL');
      assert.deepEqual(ex, { code: 0, signal: null });
      assert.ok(!stderr.includes(secrets.apiSecret));
    }
  });
});

describe('migrate', () => {
  it('callstate migrate twice on the same DB exits 0 both times; serve then uses it', async () => {
    const { env, dir } = await envFor();
    const r1 = runCli(['migrate'], env, 10000);
    assert.equal(r1.code, 0, r1.stderr);
    if (BACKEND === 'sqlite') assert.ok(fs.existsSync(path.join(dir, 'callstate.db')), 'the database file exists');
    else assert.match(rawSql({ env }, 'SELECT max(version) FROM schema_version'), /^[1-9]/, 'the schema is there');
    const r2 = runCli(['migrate'], env, 10000);
    assert.equal(r2.code, 0, r2.stderr);
    const srv = await startServer({ dir, secrets: undefined, env: {} });
    try {
      // startServer made its own secrets; the DB is what matters here.
      const r = await srv.svc('POST', '/v1/calls', newCall(1));
      assert.equal(r.status, 201, r.text);
    } finally {
      await shutdown(srv);
    }
    const r3 = runCli(['migrate'], env, 10000);
    assert.equal(r3.code, 0, `migrate after serve: ${r3.stderr}`);
  });
});

describe('health and graceful stop', () => {
  it('GET /healthz 200 {"status":"ok"}, GET /readyz 200', async () => {
    const srv = await startServer();
    try {
      const h = await srv.request('GET', '/healthz', { token: 'none' });
      assert.equal(h.status, 200);
      assert.match(h.headers.get('content-type'), /^application\/json/);
      assert.deepEqual(h.body, { status: 'ok' });
      const r = await srv.request('GET', '/readyz', { token: 'none' });
      assert.equal(r.status, 200, r.text);
    } finally {
      await shutdown(srv);
    }
  });

  it('GET /openapi.json: openapi.yaml as JSON, without auth; another method is 405', async () => {
    const srv = await startServer();
    try {
      const r = await srv.request('GET', '/openapi.json', { token: 'none' });
      assert.equal(r.status, 200, r.text);
      assert.match(r.headers.get('content-type'), /^application\/json/);
      assert.equal(r.body.openapi, '3.1.0');
      const source = fs.readFileSync(new URL('../../openapi.yaml', import.meta.url), 'utf8');
      const sourcePaths = [...source.matchAll(/^  (\/\S*):$/gm)].map((m) => m[1]);
      assert.ok(sourcePaths.length > 10);
      assert.deepEqual(Object.keys(r.body.paths), sourcePaths, 'served from this openapi.yaml');
      const wrong = await srv.request('POST', '/openapi.json', { token: 'none' });
      assert.equal(wrong.status, 405);
      assert.equal(wrong.headers.get('allow'), 'GET');
    } finally {
      await shutdown(srv);
    }
  });

  it('SIGINT is graceful too', async () => {
    const srv = await startServer();
    await srv.createCall(newCall(1));
    srv.child.kill('SIGINT');
    const ex = await Promise.race([srv.exited, sleep(15000).then(() => null)]);
    await srv.kill();
    assert.deepEqual(ex && { code: ex.code, signal: ex.signal }, { code: 0, signal: null }, srv.stderr.slice(-2000));
  });

  // A stop answers what a handler holds: before it waited for them, CivetWeb's stop made
  // their answers fail, so a body still arriving and a long poll got no answer at all.
  it('SIGTERM answers what is in flight (a body still arriving, a long poll); a request after it gets 503', async () => {
    let srv = await startServer({ instances: 1 });
    const { dir, secrets } = srv;
    try {
      const call = newCall(1);
      const body = JSON.stringify(call);
      const half = Math.floor(body.length / 2);
      const sock = net.connect({ host: '127.0.0.1', port: Number(new URL(srv.base).port) });
      await new Promise((resolve, reject) => { sock.once('connect', resolve); sock.once('error', reject); });
      let raw = '';
      sock.on('data', (d) => { raw += d; });
      const sockClosed = new Promise((resolve) => sock.once('close', resolve));
      sock.write(`POST /v1/calls HTTP/1.1\r\nHost: callstate\r\nAuthorization: Bearer ${secrets.serviceToken}\r\n` +
        `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body.slice(0, half)}`);
      const poll = srv.svc('GET', '/v1/events?after=0&wait=20', undefined, { timeoutMs: 25000 });
      await sleep(500); // both are in their handlers
      srv.child.kill('SIGTERM');
      await sleep(300);
      const late = await srv.svc('GET', '/v1/calls/01900000-0000-7000-8000-000000000000');
      assert.equal(late.status, 503, late.text);
      assert.equal(late.body.error.code, 'unavailable');
      assert.equal(late.headers.get('connection'), 'close');
      sock.write(body.slice(half));
      await sockClosed;
      const [head, answer] = raw.split('\r\n\r\n');
      assert.match(head, /^HTTP\/1\.1 201 /, raw.slice(0, 300));
      const id = JSON.parse(answer).call.id;
      const polled = await poll;
      assert.equal(polled.status, 200, polled.text);
      const ex = await Promise.race([srv.exited, sleep(20000).then(() => null)]);
      assert.deepEqual(ex && { code: ex.code, signal: ex.signal }, { code: 0, signal: null }, srv.stderr.slice(-2000));
      srv = await startServer({ dir, secrets, instances: 1 });
      const got = await srv.svc('GET', `/v1/calls/${id}`);
      assert.equal(got.status, 200, 'the call answered 201 during the stop is stored');
      assert.equal(got.body.caller, call.caller);
    } finally {
      try { await shutdown(srv); } finally { srv.ownsDir = true; srv.cleanup(); }
    }
  });

  it('SIGTERM with requests in flight: every answer is complete, every 201 is durable, exit 0', async () => {
    let srv = await startServer({ env: { CALLSTATE_THREADS: 16 } });
    const { dir, secrets } = srv;
    try {
      const results = [];
      let stopAt = 0;
      const worker = async () => {
        for (let i = 0; i < 400; i++) {
          const req = newCall(1);
          let res;
          try {
            res = await fetch(`${srv.base}/v1/calls`, {
              method: 'POST',
              headers: { Authorization: `Bearer ${secrets.serviceToken}`, 'Content-Type': 'application/json' },
              body: JSON.stringify(req),
            });
          } catch (e) {
            results.push({ kind: 'no-answer', err: e.cause?.code || e.message });
            if (stopAt && Date.now() - stopAt > 300) return;
            continue;
          }
          let text;
          try {
            text = await res.text();
          } catch (e) {
            results.push({ kind: 'truncated', status: res.status, err: e.cause?.code || e.message });
            continue;
          }
          let body;
          try { body = JSON.parse(text); } catch { results.push({ kind: 'truncated', status: res.status, text }); continue; }
          results.push({ kind: 'answer', status: res.status, body });
        }
      };
      const workers = Array.from({ length: 12 }, worker);
      // Requests are flowing (however slow the machine) before the signal comes.
      for (let i = 0; i < 300 && results.filter((r) => r.kind === 'answer').length <= 20; i++) await sleep(50);
      stopAt = Date.now();
      srv.child.kill('SIGTERM');
      const ex = await Promise.race([srv.exited, sleep(15000).then(() => null)]);
      await Promise.all(workers);
      assert.ok(ex, 'exited within 15 s of SIGTERM');
      assert.deepEqual({ code: ex.code, signal: ex.signal }, { code: 0, signal: null }, srv.stderr.slice(-2000));
      const truncated = results.filter((r) => r.kind === 'truncated');
      assert.deepEqual(truncated, [], 'no answer was cut short');
      const answers = results.filter((r) => r.kind === 'answer');
      assert.ok(answers.length > 20, `some requests were answered (${answers.length})`);
      for (const a of answers) assert.ok([201, 503].includes(a.status), `status ${a.status}: ${JSON.stringify(a.body)}`);
      const created = answers.filter((a) => a.status === 201).map((a) => a.body.call.id);
      srv.assertNoSecretsInLogs();
      srv = await startServer({ dir, secrets });
      for (const id of created) {
        const r = await srv.svc('GET', `/v1/calls/${id}`);
        assert.equal(r.status, 200, `a call answered 201 before SIGTERM is missing after restart: ${id}`);
      }
    } finally {
      try { await shutdown(srv); } finally { srv.ownsDir = true; srv.cleanup(); }
    }
  });
});

describe('logs', () => {
  it('one logfmt line per request naming the request id and status; never a secret or a token', async () => {
    const srv = await startServer();
    try {
      const probes = [];
      const rid = () => `log-${randomUUID()}`;
      let id = rid();
      const g = await srv.svc('POST', '/v1/calls', newCall(1), { requestId: id });
      probes.push([id, 201]);
      const call = g.body.call;
      id = rid(); probes.push([id, 200]);
      await srv.svc('POST', `/v1/calls/${call.id}/token`, { user: call.caller }, { requestId: id });
      id = rid(); probes.push([id, 200]);
      await srv.svc('POST', `/v1/calls/${call.id}/accept`, { user: call.members[1].user }, { requestId: id });
      id = rid(); probes.push([id, 400]);
      await srv.svc('POST', '/v1/calls', { caller: '' }, { requestId: id });
      id = rid(); probes.push([id, 404]);
      await srv.svc('GET', `/v1/calls/${randomUUID()}`, undefined, { requestId: id });
      id = rid(); probes.push([id, 403]);
      await srv.svc('GET', '/v1/calls', undefined, { requestId: id });
      const unknownToken = `guess-${randomUUID()}`;
      id = rid(); probes.push([id, 401]);
      await srv.request('GET', '/v1/events?after=0', { token: unknownToken, requestId: id });
      id = rid(); probes.push([id, 200]);
      await srv.request('GET', '/healthz', { token: 'none', requestId: id });
      // A caller's id of 128 printable characters is echoed and logged.
      id = `long-${'x'.repeat(86)}-${randomUUID()}`; probes.push([id, 200]);
      assert.equal(id.length, 128);
      await srv.request('GET', '/readyz', { token: 'none', requestId: id });
      // An id with a space and a quote cannot break the log: either it is echoed and logged
      // quoted, or (like Heroku's router) replaced by a fresh id, which is then the one logged.
      const odd = `odd id "${randomUUID()}"`;
      const oddRes = await srv.request('GET', '/readyz', { token: 'none', headers: { 'X-Request-Id': odd } });
      probes.push([oddRes.requestId, 200]);
      // A generated id is logged too.
      const gen = await srv.svc('GET', '/v1/events?after=0');
      probes.push([gen.requestId, 200]);
      await sleep(300);

      const lines = srv.stderr.split('\n').filter((l) => l.length);
      assert.ok(lines.length > 0, 'the server logs');
      for (const [reqId, status] of probes) {
        const esc = reqId.replace(/\\/g, '\\\\').replace(/"/g, '\\"');
        const mine = lines.filter((l) => l.includes(reqId) || l.includes(esc));
        assert.ok(mine.length >= 1, `no log line names request ${reqId}`);
        for (const l of mine) assert.match(l, LOGFMT, `not logfmt: ${l}`);
        const access = mine.filter((l) => new RegExp(`(^|\\s)status=${status}(\\s|$)`).test(l));
        assert.equal(access.length, 1, `exactly one line with status=${status} for ${reqId}: ${JSON.stringify(mine)}`);
        assert.match(access[0], /(^|\s)level=\S+/, 'the line has a level');
      }
      for (const l of lines) assert.match(l, LOGFMT, `every stderr line is logfmt: ${l}`);
      assert.ok(!srv.stderr.includes(unknownToken), 'an unknown bearer token appears in the logs');
      assert.ok(!srv.stderr.includes(g.body.token), 'a minted token appears in the logs');
    } finally {
      await shutdown(srv); // asserts no secret, service/admin token or minted token in stderr
    }
  });
});

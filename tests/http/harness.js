// Black-box harness for the HTTP tests: starts the real `callstate serve` on a fresh temp dir
// and a free loopback port, waits for /healthz, and gives the tests authorized JSON requests
// plus shape checkers that follow API.md exactly.
//
// Every server (and its temp dir) is registered so that it is killed and removed when the test
// process exits, even after a failed assertion or an exception in a hook. stop() sends SIGTERM
// and asserts exit status 0; it also asserts that no secret, bearer token or minted LiveKit
// token ever appeared on the server's stderr.
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { TokenVerifier } from 'livekit-server-sdk';

export { sleep };

export const BIN = process.env.CALLSTATE_BIN || '/work/main/build/callstate';
/** The storage backend under test: CALLSTATE_TEST_BACKEND=postgres gives every server a
 * database of its own on the server of CALLSTATE_TEST_PG_URL (postgresql://user@host:port);
 * else each gets a SQLite file in its temp dir. */
export const BACKEND = process.env.CALLSTATE_TEST_BACKEND === 'postgres' ? 'postgres' : 'sqlite';
const PG_URL = process.env.CALLSTATE_TEST_PG_URL || '';
if (BACKEND === 'postgres' && !/^postgresql:\/\/[^/]+$/.test(PG_URL)) {
  throw new Error('CALLSTATE_TEST_BACKEND=postgres needs CALLSTATE_TEST_PG_URL=postgresql://user@host:port (tools/test sets it)');
}
/** CALLSTATE_TEST_INSTANCES=N (PostgreSQL only) runs every server as N callstate processes on
 * one database, and sends each request to one of them at random, as a load balancer would. */
export const INSTANCES = Number(process.env.CALLSTATE_TEST_INSTANCES || 1);
if (INSTANCES > 1 && BACKEND !== 'postgres') throw new Error('CALLSTATE_TEST_INSTANCES > 1 needs CALLSTATE_TEST_BACKEND=postgres');
export const LIVEKIT_URL = 'ws://127.0.0.1:7880';
export const TOKEN_TTL_S = 900;

const live = new Set(); // servers not yet stopped
const tmpDirs = new Set();

process.on('exit', () => {
  for (const s of live) {
    try { s.child.kill('SIGKILL'); } catch { /* already gone */ }
  }
  for (const d of tmpDirs) {
    try { fs.rmSync(d, { recursive: true, force: true }); } catch { /* best effort */ }
    try { if (BACKEND === 'postgres') dropDatabase(d); } catch { /* best effort */ }
  }
});

export function makeTmpDir() {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'callstate-http-'));
  tmpDirs.add(d);
  return d;
}

export function removeTmpDir(d) {
  fs.rmSync(d, { recursive: true, force: true });
  tmpDirs.delete(d);
  if (BACKEND === 'postgres') dropDatabase(d);
}

function psql(db, args) {
  const r = spawnSync('psql', [`${PG_URL}/${db}`, '-X', '-q', '-v', 'ON_ERROR_STOP=1', ...args], { encoding: 'utf8' });
  if (r.error) throw r.error;
  if (r.status !== 0) throw new Error(`psql failed (${r.status}): ${r.stderr}`);
  return r.stdout;
}

/** The database of a temp dir (its name is made from the dir's, so restarts find it). */
function databaseOf(dir) {
  return 'cs_' + path.basename(dir).toLowerCase().replace(/[^a-z0-9]/g, '_');
}

const madeDatabases = new Set();
function dropDatabase(dir) {
  const db = databaseOf(dir);
  if (!madeDatabases.has(db)) return;
  psql('postgres', ['-c', `DROP DATABASE IF EXISTS ${db} WITH (FORCE)`]);
  madeDatabases.delete(db);
}

/** The CALLSTATE_DB of a server whose files live in dir. */
export function dbUrlFor(dir) {
  if (BACKEND === 'sqlite') return `sqlite:${path.join(dir, 'callstate.db')}`;
  const db = databaseOf(dir);
  if (!madeDatabases.has(db)) {
    psql('postgres', ['-c', `CREATE DATABASE ${db} TEMPLATE template0 ENCODING 'UTF8'`]);
    madeDatabases.add(db);
  }
  return `${PG_URL}/${db}`;
}

export async function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** Fresh credentials: random so that grepping the logs for them means something. */
export function makeSecrets() {
  return {
    apiKey: 'APItest' + randomBytes(4).toString('hex'),
    apiSecret: 'sec-' + randomBytes(24).toString('hex'),
    serviceToken: 'svc-' + randomBytes(16).toString('hex'),
    serviceToken2: 'svc2-' + randomBytes(16).toString('hex'),
    adminToken: 'adm-' + randomBytes(16).toString('hex'),
  };
}

/** The environment of a server: nothing inherited but PATH, so stray settings cannot leak in. */
export function baseEnv(secrets, dir, port, overrides = {}) {
  const env = {
    PATH: process.env.PATH || '/usr/bin:/bin',
    LIVEKIT_URL,
    LIVEKIT_API_KEY: secrets.apiKey,
    LIVEKIT_API_SECRET: secrets.apiSecret,
    CALLSTATE_SERVICE_TOKENS: `${secrets.serviceToken},${secrets.serviceToken2}`,
    CALLSTATE_ADMIN_TOKENS: secrets.adminToken,
    CALLSTATE_DB: dbUrlFor(dir),
    CALLSTATE_LISTEN: `127.0.0.1:${port}`,
    CALLSTATE_TOKEN_TTL_S: String(TOKEN_TTL_S),
    // Fewer workers than the default 1536, which CivetWeb starts and joins one by one: that
    // took ~3 s of each start and stop under ASan, times ~80 servers a suite. 512 is still
    // more than any test holds at once (hardening: 370 connections; 256 long polls).
    CALLSTATE_THREADS: '512',
  };
  for (const [k, v] of Object.entries(overrides)) {
    if (v === undefined || v === null) delete env[k];
    else env[k] = String(v);
  }
  return env;
}

/** Run the binary to completion (for --version, migrate, bad configs). */
export function runCli(args, env, timeoutMs = 10000) {
  const r = spawnSync(BIN, args, { env, encoding: 'utf8', timeout: timeoutMs });
  if (r.error) throw r.error;
  return { code: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
}

export class Server {
  constructor({ dir, ports, env, secrets, ownsDir }) {
    this.dir = dir;
    this.ports = ports;
    this.env = env; // the first instance's; the others differ only in CALLSTATE_LISTEN
    this.secrets = secrets;
    this.ownsDir = ownsDir;
    this.stderrChunks = [];
    this.stdoutChunks = [];
    this.exit = null; // {code, signal} once exited
    this.mintedTokens = new Set(); // every `token` seen in a response
    this.verifier = new TokenVerifier(secrets.apiKey, secrets.apiSecret);
  }

  get stderr() { return Buffer.concat(this.stderrChunks).toString('utf8'); }
  get stdout() { return Buffer.concat(this.stdoutChunks).toString('utf8'); }
  /** The port of one instance: with several, any of them, as a load balancer would pick. */
  get port() { return this.ports[Math.floor(Math.random() * this.ports.length)]; }
  get base() { return `http://127.0.0.1:${this.port}`; }

  spawn() {
    const children = this.ports.map((port) => spawn(BIN, ['serve'], {
      env: { ...this.env, CALLSTATE_LISTEN: `127.0.0.1:${port}` }, stdio: ['ignore', 'pipe', 'pipe'],
    }));
    // One handle for all the instances: signals go to each; the exit is the worst of theirs.
    this.child = {
      pid: children[0].pid,
      kill: (sig) => { for (const c of children) c.kill(sig); },
    };
    const exits = children.map((c) => new Promise((resolve) => {
      c.on('exit', (code, signal) => resolve({ code, signal }));
      c.on('error', (err) => {
        this.stderrChunks.push(Buffer.from(`\n[harness] spawn error: ${err.message}\n`));
        resolve({ code: null, signal: null, error: err });
      });
    }));
    this.exited = Promise.all(exits).then((all) => {
      this.exit = all.find((x) => x.signal || x.error || x.code !== 0) || all[0];
      live.delete(this);
      return this.exit;
    });
    // Any instance that stops early stops the test's server: seen by waitHealthy.
    this.firstExit = Promise.race(exits);
    for (const c of children) {
      c.stderr.on('data', (b) => this.stderrChunks.push(b));
      c.stdout.on('data', (b) => this.stdoutChunks.push(b));
    }
    live.add(this);
  }

  async waitHealthy(timeoutMs = 10000) {
    const deadline = Date.now() + timeoutMs;
    let early = null;
    this.firstExit.then((x) => { early = x; });
    for (const port of this.ports) {
      let last = 'no answer';
      for (;;) {
        if (early || this.exit) {
          throw new Error(`callstate exited early (${JSON.stringify(early || this.exit)}) before /healthz; stderr:\n${this.stderr}`);
        }
        if (Date.now() > deadline) {
          throw new Error(`callstate did not answer GET /healthz 200 within ${timeoutMs} ms (last: ${last}); stderr:\n${this.stderr}`);
        }
        try {
          const r = await fetch(`http://127.0.0.1:${port}/healthz`, { signal: AbortSignal.timeout(1000) });
          await r.arrayBuffer();
          if (r.status === 200) break;
          last = `status ${r.status}`;
        } catch (e) {
          last = e.cause?.code || e.message;
        }
        await sleep(50);
      }
    }
  }

  /**
   * One HTTP request. opts: json (object → JSON body), body (raw string/Buffer), token
   * ('service' | 'admin' | 'none' | any literal string), headers, requestId.
   * Returns {status, headers, text, body (parsed JSON or undefined), requestId}.
   * Asserts the contract of every answer: an X-Request-Id, echoing the caller's when sent.
   */
  async request(method, urlPath, opts = {}) {
    const headers = { ...(opts.headers || {}) };
    const tok = opts.token ?? 'service';
    if (tok === 'service') headers.Authorization = `Bearer ${this.secrets.serviceToken}`;
    else if (tok === 'admin') headers.Authorization = `Bearer ${this.secrets.adminToken}`;
    else if (tok !== 'none') headers.Authorization = tok.startsWith('Bearer ') || tok.startsWith('Basic ') ? tok : `Bearer ${tok}`;
    let body;
    if (opts.json !== undefined) {
      body = JSON.stringify(opts.json);
      if (!Object.keys(headers).some((h) => h.toLowerCase() === 'content-type')) headers['Content-Type'] = 'application/json';
    } else if (opts.body !== undefined) {
      body = opts.body;
    }
    if (opts.requestId) headers['X-Request-Id'] = opts.requestId;
    const res = await fetch(this.base + urlPath, { method, headers, body, signal: AbortSignal.timeout(opts.timeoutMs ?? 15000) });
    const text = await res.text();
    const out = { status: res.status, headers: res.headers, text, body: undefined, requestId: res.headers.get('x-request-id') };
    const ct = res.headers.get('content-type') || '';
    if (ct.startsWith('application/json') && text.length) {
      try { out.body = JSON.parse(text); } catch (e) {
        assert.fail(`${method} ${urlPath} → ${res.status}: body is not JSON: ${JSON.stringify(text.slice(0, 300))}`);
      }
    }
    const where = `${method} ${urlPath} → ${res.status} ${text.slice(0, 300)}`;
    assert.ok(out.requestId && out.requestId.length > 0, `missing X-Request-Id on ${where}`);
    if (opts.requestId) assert.equal(out.requestId, opts.requestId, `X-Request-Id not echoed on ${where}`);
    collectTokens(out.body, this.mintedTokens);
    return out;
  }

  svc(method, urlPath, json, extra = {}) { return this.request(method, urlPath, { ...extra, json, token: extra.token ?? 'service' }); }
  admin(method, urlPath, json, extra = {}) { return this.request(method, urlPath, { ...extra, json, token: 'admin' }); }

  /** POST /v1/calls expecting 201; returns the body ({call, token, url, token_expires_at}). */
  async createCall(req, extra = {}) {
    const r = await this.svc('POST', '/v1/calls', req, extra);
    assert.equal(r.status, 201, `create failed: ${r.status} ${r.text}`);
    return r.body;
  }

  async getCall(id, token = 'service') {
    const r = await this.request('GET', `/v1/calls/${id}`, { token });
    assert.equal(r.status, 200, `GET call ${id}: ${r.status} ${r.text}`);
    return r.body;
  }

  /** POST /v1/calls/{id}/{action} with {user} expecting `status` (200 by default). */
  async act(id, action, json, status = 200, token = 'service') {
    const r = await this.request('POST', `/v1/calls/${id}/${action}`, { json, token });
    assert.equal(r.status, status, `${action} on ${id} with ${JSON.stringify(json)}: ${r.status} ${r.text}`);
    return r.body;
  }

  /** All feed events after `after`, paging with limit 500. */
  async allEvents(after = 0) {
    const out = [];
    for (;;) {
      const r = await this.svc('GET', `/v1/events?after=${after}&limit=500`);
      assert.equal(r.status, 200, `GET /v1/events: ${r.status} ${r.text}`);
      const evs = feedEvents(r.body);
      out.push(...evs);
      if (evs.length < 500) return out;
      after = evs[evs.length - 1].seq;
    }
  }

  /** Secrets and minted tokens must never reach the logs. */
  assertNoSecretsInLogs() {
    const err = this.stderr + this.stdout;
    const s = this.secrets;
    for (const [name, v] of [['LIVEKIT_API_SECRET', s.apiSecret], ['service token', s.serviceToken],
      ['second service token', s.serviceToken2], ['admin token', s.adminToken]]) {
      assert.ok(!err.includes(v), `the ${name} appears in the server's output`);
    }
    for (const t of this.mintedTokens) {
      assert.ok(!err.includes(t), 'a minted LiveKit token appears in the server\'s output');
      const sig = t.split('.')[2];
      if (sig) assert.ok(!err.includes(sig), 'a minted token\'s signature appears in the server\'s output');
    }
  }

  /** SIGTERM; asserts a clean exit (status 0) within timeoutMs and clean logs. */
  async stop({ timeoutMs = 15000, expectCode = 0, keepDir = false } = {}) {
    if (!this.exit) {
      this.child.kill('SIGTERM');
      // An unref'd timer: a pending 15 s race must not keep the test process alive after the last test.
      const t = await Promise.race([this.exited, sleep(timeoutMs, null, { ref: false })]);
      if (!t) {
        this.child.kill('SIGKILL');
        await this.exited;
        if (!keepDir) this.cleanup();
        assert.fail(`callstate did not exit within ${timeoutMs} ms of SIGTERM; stderr tail:\n${this.stderr.slice(-2000)}`);
      }
    }
    if (!keepDir) this.cleanup();
    assert.deepEqual({ code: this.exit.code, signal: this.exit.signal }, { code: expectCode, signal: null },
      `callstate exit status after SIGTERM; stderr tail:\n${this.stderr.slice(-2000)}`);
    this.assertNoSecretsInLogs();
  }

  /** Kill without checks (for after() hooks when a test already failed). */
  async kill() {
    if (!this.exit) {
      this.child.kill('SIGKILL');
      await this.exited;
    }
    this.cleanup();
  }

  cleanup() {
    if (this.ownsDir) removeTmpDir(this.dir);
  }
}

/**
 * Start `callstate serve`. opts.env: per-test overrides (undefined/null deletes a setting);
 * opts.dir/opts.secrets/opts.port: reuse a previous server's database and credentials
 * (restart tests); opts.instances: how many processes (CALLSTATE_TEST_INSTANCES by default).
 */
export async function startServer(opts = {}) {
  const ownsDir = !opts.dir;
  const dir = opts.dir || makeTmpDir();
  const secrets = opts.secrets || makeSecrets();
  const ports = opts.port ? [opts.port] : [];
  while (ports.length < (opts.instances ?? INSTANCES)) ports.push(await freePort());
  const env = baseEnv(secrets, dir, ports[0], opts.env || {});
  const srv = new Server({ dir, ports, env, secrets, ownsDir });
  srv.spawn();
  try {
    await srv.waitHealthy(opts.healthTimeoutMs ?? 10000);
  } catch (e) {
    await srv.kill();
    throw e;
  }
  return srv;
}

/** For after() hooks: stop cleanly when possible, else kill; never leaves a process behind. */
export async function shutdown(srv) {
  if (!srv) return;
  try {
    await srv.stop();
  } finally {
    if (!srv.exit) await srv.kill();
    srv.cleanup();
  }
}

function collectTokens(v, set) {
  if (!v || typeof v !== 'object') return;
  if (typeof v.token === 'string') set.add(v.token);
}

// ---------------------------------------------------------------------------------------------
// Shape checks, straight from API.md.

export const UUID7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
export const RFC3339_MS = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

export function assertTime(v, what) {
  assert.equal(typeof v, 'string', `${what} should be an RFC 3339 string, got ${JSON.stringify(v)}`);
  assert.match(v, RFC3339_MS, `${what} should be RFC 3339 UTC with milliseconds`);
  const d = new Date(v);
  assert.ok(!Number.isNaN(d.getTime()), `${what} is not a valid date: ${v}`);
  assert.equal(d.toISOString(), v, `${what} is not a canonical date: ${v}`);
  return d.getTime();
}

export function assertTimeOrNull(v, what) {
  if (v === null) return null;
  return assertTime(v, what);
}

export function ms(v) { return v === null ? null : new Date(v).getTime(); }

export const CALL_KEYS = ['answered_at', 'caller', 'chat_id', 'created_at', 'duration_ms', 'end_cause', 'ended_at',
  'id', 'kind', 'members', 'metadata', 'outcome', 'participants', 'room', 'room_end_reason', 'status'];
export const MEMBER_KEYS = ['first_joined_at', 'in_room', 'invite', 'last_left_at', 'responded_at', 'role', 'user'];
export const PARTICIPANT_KEYS = ['disconnect_reason', 'joined_at', 'left_at', 'sid', 'user'];
const OUTCOMES = ['completed', 'missed', 'declined', 'cancelled', 'failed'];
const CAUSES = ['end_request', 'leave', 'declined', 'ring_timeout', 'join_timeout', 'room_empty', 'room_finished'];
const INVITES = ['pending', 'accepted', 'declined', 'missed', 'cancelled'];

/** The call object of API.md: every key, the right types, and its invariants. */
export function assertCallShape(c) {
  assert.equal(typeof c, 'object');
  assert.notEqual(c, null);
  assert.deepEqual(Object.keys(c).sort(), CALL_KEYS, 'call object keys');
  assert.match(c.id, UUID7, 'call.id is a UUIDv7');
  assert.equal(c.room, 'call_' + c.id, 'room = "call_" + id');
  assert.ok(['audio', 'video'].includes(c.kind), `kind ${c.kind}`);
  assert.ok(['ringing', 'active', 'ended'].includes(c.status), `status ${c.status}`);
  assert.equal(typeof c.caller, 'string');
  assert.ok(c.chat_id === null || typeof c.chat_id === 'string', 'chat_id string or null');
  assert.ok(c.metadata && typeof c.metadata === 'object' && !Array.isArray(c.metadata), 'metadata is an object');
  const created = assertTime(c.created_at, 'created_at');
  const answered = assertTimeOrNull(c.answered_at, 'answered_at');
  const ended = assertTimeOrNull(c.ended_at, 'ended_at');
  if (answered !== null) assert.ok(answered >= created, 'answered_at >= created_at');
  if (ended !== null) assert.ok(ended >= (answered ?? created), 'ended_at >= answered_at >= created_at');
  if (c.status === 'ended') {
    assert.ok(OUTCOMES.includes(c.outcome), `outcome of an ended call: ${c.outcome}`);
    assert.ok(CAUSES.includes(c.end_cause), `end_cause of an ended call: ${c.end_cause}`);
    assert.notEqual(ended, null, 'an ended call has ended_at');
    if (answered !== null) assert.equal(c.duration_ms, ended - answered, 'duration_ms = ended_at - answered_at');
    else assert.equal(c.duration_ms, null, 'duration_ms null when never answered');
  } else {
    assert.equal(c.outcome, null, 'outcome null until ended');
    assert.equal(c.end_cause, null, 'end_cause null until ended');
    assert.equal(c.ended_at, null, 'ended_at null until ended');
    assert.equal(c.duration_ms, null, 'duration_ms null until ended');
  }
  if (c.status === 'ringing') assert.equal(c.answered_at, null, 'a ringing call has no answered_at');
  if (c.status === 'active') assert.notEqual(c.answered_at, null, 'an active call has answered_at');
  assert.ok(c.room_end_reason === null || typeof c.room_end_reason === 'string');
  assert.ok(Array.isArray(c.members) && c.members.length >= 2 && c.members.length <= 33, 'members 2..33');
  c.members.forEach((m, i) => {
    assert.deepEqual(Object.keys(m).sort(), MEMBER_KEYS, `member ${i} keys`);
    assert.equal(typeof m.user, 'string');
    assert.equal(m.role, i === 0 ? 'caller' : 'callee', `member ${i} role (caller first)`);
    assert.ok(INVITES.includes(m.invite), `invite ${m.invite}`);
    assert.equal(typeof m.in_room, 'boolean');
    assertTimeOrNull(m.responded_at, `member ${m.user} responded_at`);
    assertTimeOrNull(m.first_joined_at, `member ${m.user} first_joined_at`);
    assertTimeOrNull(m.last_left_at, `member ${m.user} last_left_at`);
    if (m.invite === 'pending') assert.equal(m.responded_at, null, `pending member ${m.user} has no responded_at`);
  });
  assert.equal(c.members[0].user, c.caller, 'members[0] is the caller');
  assert.equal(c.members[0].invite, 'accepted', 'the caller is accepted');
  if (c.status === 'ended') {
    assert.ok(!c.members.some((m) => m.invite === 'pending'), 'no pending invite in an ended call');
  }
  assert.ok(Array.isArray(c.participants), 'participants is an array');
  for (const p of c.participants) assert.deepEqual(Object.keys(p).sort(), PARTICIPANT_KEYS);
  return c;
}

export function member(call, user) {
  const m = call.members.find((x) => x.user === user);
  assert.ok(m, `no member ${user} in ${call.id}`);
  return m;
}

export function invites(call) {
  return Object.fromEntries(call.members.map((m) => [m.user, m.invite]));
}

/** Error answers: exactly {"error":{"code","message"}}, and the message names `field`. */
export function assertError(res, status, code, field) {
  const where = `${res.status} ${res.text}`;
  assert.equal(res.status, status, `status (answer: ${where})`);
  assert.match(res.headers.get('content-type') || '', /^application\/json/, `error content-type (answer: ${where})`);
  assert.ok(res.body, `error body is JSON (answer: ${where})`);
  assert.deepEqual(Object.keys(res.body), ['error'], `error envelope (answer: ${where})`);
  assert.deepEqual(Object.keys(res.body.error).sort(), ['code', 'message'], `error object keys (answer: ${where})`);
  assert.equal(res.body.error.code, code, `error.code (answer: ${where})`);
  assert.equal(typeof res.body.error.message, 'string');
  assert.ok(res.body.error.message.length > 0, 'error.message is not empty');
  if (field) assert.ok(res.body.error.message.includes(field), `error.message should name "${field}": ${res.body.error.message}`);
}

/** The feed answer: API.md says "events with seq > SEQ"; the envelope is {"events":[…]}. */
export function feedEvents(body) {
  assert.ok(body && Array.isArray(body.events), `feed answer should be {"events":[…]}, got ${JSON.stringify(body)?.slice(0, 200)}`);
  return body.events;
}

// ---------------------------------------------------------------------------------------------
// Tokens (LIVEKIT.md §1, API.md "Tokens").

export const SOURCES = {
  audio: ['microphone'],
  video: ['camera', 'microphone', 'screen_share', 'screen_share_audio'],
};

const seenJti = new Set();

function decodeSegment(s) {
  return JSON.parse(Buffer.from(s, 'base64url').toString('utf8'));
}

/**
 * Verify a minted token with the SDK's TokenVerifier and assert every claim.
 * want: {user, name, room, kind, before, after} where before/after (ms) bracket the request.
 * Returns the payload.
 */
export async function assertToken(srv, grant, want) {
  assert.equal(typeof grant.token, 'string', 'token is a string');
  assert.equal(grant.url, LIVEKIT_URL, 'url = LIVEKIT_URL');
  const payload = await srv.verifier.verify(grant.token);
  const [h, , sig] = grant.token.split('.');
  const header = decodeSegment(h);
  assert.equal(header.alg, 'HS256', 'alg HS256');
  assert.ok(sig && sig.length > 0);
  const allowed = new Set(['iss', 'sub', 'name', 'nbf', 'exp', 'jti', 'video', 'iat']);
  for (const k of Object.keys(payload)) assert.ok(allowed.has(k), `unexpected claim ${k}`);
  assert.equal(payload.iss, srv.secrets.apiKey, 'iss = LIVEKIT_API_KEY');
  assert.equal(payload.sub, want.user, 'sub = user id');
  assert.equal(payload.name, want.name ?? want.user, 'name = given name or the user id');
  assert.ok(Number.isInteger(payload.nbf), 'nbf is an integer');
  assert.ok(Number.isInteger(payload.exp), 'exp is an integer');
  if (want.before !== undefined) {
    assert.ok(payload.nbf >= Math.floor(want.before / 1000) - 1 && payload.nbf <= Math.ceil(want.after / 1000) + 1,
      `nbf ${payload.nbf} is now (${want.before}..${want.after} ms)`);
  }
  assert.equal(payload.exp, payload.nbf + TOKEN_TTL_S, 'exp = nbf + CALLSTATE_TOKEN_TTL_S');
  if (payload.iat !== undefined) assert.equal(payload.iat, payload.nbf, 'iat, if present, = nbf');
  assert.equal(typeof payload.jti, 'string', 'jti present');
  assert.ok(payload.jti.length > 0, 'jti not empty');
  assert.ok(!seenJti.has(payload.jti), `jti ${payload.jti} is unique`);
  seenJti.add(payload.jti);
  assert.deepEqual(payload.video, {
    roomJoin: true,
    room: want.room,
    canPublish: true,
    canSubscribe: true,
    canPublishData: true,
    canPublishSources: SOURCES[want.kind],
  }, 'video grant');
  assert.equal(grant.token_expires_at, new Date(payload.exp * 1000).toISOString(), 'token_expires_at = exp');
  // Sanity: the same token must fail with a wrong secret.
  await assert.rejects(new TokenVerifier(srv.secrets.apiKey, srv.secrets.apiSecret + 'x').verify(grant.token),
    'a wrong secret must not verify');
  return payload;
}

// ---------------------------------------------------------------------------------------------
// Small helpers.

let userSeq = 0;
/** Unique user ids per process, readable in failures. */
export function uid(prefix = 'u') {
  userSeq += 1;
  return `${prefix}${userSeq}-${randomUUID().slice(0, 8)}`;
}

export function newCall(callees = 1, extra = {}) {
  const caller = uid('caller');
  const list = Array.from({ length: callees }, () => uid('callee'));
  return { caller, callees: list, kind: 'audio', ...extra };
}

/** Poll fn() until it returns a truthy value or timeoutMs passes; returns [value, atMs]. */
export async function pollUntil(fn, timeoutMs, intervalMs = 50) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return [v, Date.now()];
    if (Date.now() > deadline) return [null, Date.now()];
    await sleep(intervalMs);
  }
}

export function randomUUIDv7Like() {
  // A well-formed UUIDv7 that no server minted (timestamp 1 ms after the epoch).
  return '00000000-0001-7000-8000-' + randomBytes(6).toString('hex');
}

// ---------------------------------------------------------------------------------------------
// The events feed.

const EVENT_KEYS = ['at', 'call_id', 'call_version', 'data', 'id', 'seq', 'type'];
const TYPES = ['call.ringing', 'call.accepted', 'call.declined', 'call.missed', 'call.active', 'call.ended',
  'call.member_joined', 'call.member_left', 'presence.changed'];

/** Envelope and cross-event invariants of a full feed. */
export function assertFeed(events) {
  let lastSeq = 0;
  const ids = new Set();
  const versions = new Map();
  for (const e of events) {
    assert.deepEqual(Object.keys(e).sort(), EVENT_KEYS, `event keys: ${JSON.stringify(e).slice(0, 200)}`);
    assert.ok(Number.isSafeInteger(e.seq) && e.seq > lastSeq, `seq strictly increasing: ${lastSeq} then ${e.seq}`);
    lastSeq = e.seq;
    assert.equal(typeof e.id, 'string');
    assert.ok(e.id.length > 0 && !ids.has(e.id), `event id unique: ${e.id}`);
    ids.add(e.id);
    assert.ok(TYPES.includes(e.type), `type ${e.type}`);
    assertTime(e.at, 'event at');
    if (e.type.startsWith('call.')) {
      assert.match(e.call_id, UUID7);
      assertCallShape(e.data);
      assert.equal(e.data.id, e.call_id, 'data is the call of call_id');
      assert.ok(Number.isSafeInteger(e.call_version) && e.call_version >= 1, `call_version ${e.call_version}`);
      const prev = versions.get(e.call_id);
      if (prev !== undefined) assert.equal(e.call_version, prev + 1, `call_version of ${e.call_id} increases by one`);
      versions.set(e.call_id, e.call_version);
    }
  }
}

export function byCall(events) {
  const m = new Map();
  for (const e of events) {
    if (!m.has(e.call_id)) m.set(e.call_id, []);
    m.get(e.call_id).push(e);
  }
  return m;
}


// ---------------------------------------------------------------------------------------------
// The database behind a server, past callstate: for planting what callstate never writes.

/**
 * Run one SQL statement on srv's database, with text parameters written @p1, @p2, ... and
 * bound as such (the sqlite3 shell's named parameters; psql's :'p1' variables). Throws if it
 * fails; returns what it printed.
 */
export function rawSql(srv, sql, params = []) {
  const url = srv.env.CALLSTATE_DB;
  if (url.startsWith('postgresql://')) {
    const args = [];
    params.forEach((v, i) => args.push('-v', `p${i + 1}=${v}`));
    // On stdin: psql interpolates :'pN' there, not in -c.
    const r = spawnSync('psql', [url, '-X', '-q', '-t', '-A', '-v', 'ON_ERROR_STOP=1', ...args],
      { input: `${sql.replace(/@p(\d+)/g, ":'p$1'")};\n`, encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`psql failed (${r.status}): ${r.stderr}`);
    return r.stdout;
  }
  assert.ok(url.startsWith('sqlite:'), `rawSql: unsupported database ${url}`);
  const quote = (v) => `'${String(v).replaceAll("'", "''")}'`;
  const args = ['-bail', '-cmd', '.timeout 5000'];
  params.forEach((v, i) => args.push('-cmd', `.parameter set @p${i + 1} ${quote(v)}`));
  args.push(url.slice('sqlite:'.length), sql);
  const r = spawnSync('sqlite3', args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`sqlite3 failed (${r.status}): ${r.stderr}`);
  return r.stdout;
}

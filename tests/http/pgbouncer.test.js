// callstate behind pgbouncer in transaction pooling mode (issue: "works through pgbouncer in
// transaction pooling mode"), with CALLSTATE_DB_PREPARED=off as the README says. pgbouncer
// gives each transaction whichever server connection is free, so anything that outlived a
// transaction (a session setting, a named statement, a session lock) would meet another
// connection and fail. Two instances with 12 connections each go through a pgbouncer with 3
// server connections: every call, token and webhook must come out as it would direct.
// PostgreSQL only; pgbouncer comes from Debian (tools/test installs it).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import {
  BACKEND, startServer, shutdown, makeTmpDir, removeTmpDir, dbUrlFor, freePort, newCall, rawSql,
  sleep, assertFeed, byCall,
} from './harness.js';
import { LkRoom, deliver } from './livekit-kit.js';

const SERVER_CONNECTIONS = 3;
const CALLS = 24;

const skip = BACKEND !== 'postgres' ? 'PostgreSQL only' : false;

/** Runs as the postgres user when we are root: pgbouncer refuses to run as root. */
function asServerUser(cmd, args) {
  return process.getuid() === 0 ? ['runuser', ['-u', 'postgres', '--', cmd, ...args]] : [cmd, args];
}

async function startBouncer(dir, upstream) {
  const bin = spawnSync('sh', ['-c', 'command -v pgbouncer'], { encoding: 'utf8' }).stdout.trim();
  assert.ok(bin, 'pgbouncer is not installed (Debian package pgbouncer; tools/test installs it)');
  const port = await freePort();
  const u = new URL(upstream);
  const ini = path.join(dir, 'pgbouncer.ini');
  fs.writeFileSync(ini, [
    '[databases]',
    `* = host=${u.hostname} port=${u.port} user=${u.username}`,
    '[pgbouncer]',
    'listen_addr = 127.0.0.1',
    `listen_port = ${port}`,
    'unix_socket_dir =',
    'auth_type = any',
    'pool_mode = transaction',
    `default_pool_size = ${SERVER_CONNECTIONS}`,
    'max_client_conn = 200',
    `logfile = ${path.join(dir, 'pgbouncer.log')}`,
    '',
  ].join('\n'));
  fs.chmodSync(dir, 0o777);
  const [cmd, args] = asServerUser(bin, [ini]);
  const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (b) => { stderr += b; });
  for (let i = 0; i < 100; i++) {
    const r = spawnSync('psql', [`postgresql://${u.username}@127.0.0.1:${port}/postgres`, '-X', '-Atc', 'SELECT 1'], { encoding: 'utf8' });
    if (r.status === 0) return { child, port };
    if (child.exitCode !== null) break;
    await sleep(50);
  }
  child.kill('SIGKILL');
  assert.fail(`pgbouncer did not start: ${stderr}`);
}

describe('through pgbouncer in transaction pooling mode', { skip }, () => {
  let dir, bouncer, srv, direct;
  before(async () => {
    dir = makeTmpDir();
    direct = dbUrlFor(dir); // the database, made on the server itself
    bouncer = await startBouncer(dir, direct);
    const via = new URL(direct);
    via.port = String(bouncer.port);
    srv = await startServer({
      dir, instances: 2,
      env: { CALLSTATE_DB: via.toString(), CALLSTATE_DB_PREPARED: 'off', CALLSTATE_DB_POOL: 12 },
    });
  });
  after(async () => {
    await shutdown(srv);
    bouncer?.child.kill('SIGTERM');
    if (dir) removeTmpDir(dir);
  });

  it('calls, tokens, webhooks and the feed come out whole', async () => {
    const t0 = Date.now() - 60000;
    const runs = await Promise.all(Array.from({ length: CALLS }, async (_, n) => {
      const req = newCall(2, { ring_timeout_s: 300 });
      const { call } = await srv.createCall(req);
      const [answerer, decliner] = req.callees;
      const room = new LkRoom(call.room, { creationMs: t0 });
      await Promise.all([srv.act(call.id, 'accept', { user: answerer }), srv.act(call.id, 'decline', { user: decliner })]);
      const r = await srv.svc('POST', `/v1/calls/${call.id}/token`, { user: req.caller });
      assert.equal(r.status, 200, `token: ${r.status} ${r.text}`);
      const sessions = [room.session(req.caller, t0 + n * 10), room.session(answerer, t0 + n * 10 + 5)];
      await deliver(srv, room.started(t0));
      await Promise.all(sessions.map((s) => deliver(srv, room.joined(s))));
      await Promise.all(sessions.map((s) => deliver(srv, room.left(s, s.joinedAtMs + 1000))));
      await srv.act(call.id, 'end', { user: req.caller });
      return { call, req, sessions };
    }));

    for (const { call, req, sessions } of runs) {
      const got = await srv.getCall(call.id);
      assert.equal(got.status, 'ended', `call ${call.id}`);
      assert.deepEqual(got.participants.map((p) => p.sid).sort(), sessions.map((s) => s.sid).sort(), 'both sessions stored');
      const m = Object.fromEntries(got.members.map((x) => [x.user, x.invite]));
      assert.equal(m[req.callees[0]], 'accepted');
      assert.equal(m[req.callees[1]], 'declined');
    }
    const feed = await srv.allEvents();
    assertFeed(feed);
    const perCall = byCall(feed);
    for (const { call } of runs) assert.ok(perCall.get(call.id)?.length > 0, `events of ${call.id} in the feed`);
    assert.equal(Number(rawSql(srv, 'SELECT count(*) FROM webhooks').trim()), CALLS * 5, 'every webhook stored once');

    // The work really went through pgbouncer's few server connections.
    const db = new URL(direct).pathname.slice(1);
    const r = spawnSync('psql', [direct, '-X', '-Atc',
      `SELECT count(*) FROM pg_stat_activity WHERE datname = '${db}' AND pid <> pg_backend_pid()`], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.ok(Number(r.stdout) <= SERVER_CONNECTIONS, `at most ${SERVER_CONNECTIONS} server connections: ${r.stdout}`);
  });
});

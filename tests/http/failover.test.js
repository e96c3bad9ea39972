// Failover to a synchronous standby, as the README describes it (issue: "libpq multi-host URLs
// with target_session_attrs=read-write work; document how to run on a primary with a
// synchronous standby"). A real hot standby is made from the test server (pg_basebackup),
// listed first in callstate's multi-host URL: callstate must write to the primary all the
// same. Then the primary stops and the standby is promoted; callstate, never restarted, must
// carry on against the new primary, with every change it acknowledged before still there.
// PostgreSQL only; needs the tools/pg.sh server of the run (CALLSTATE_TEST_PG_DIR/PORT), which
// is started again afterwards for the tests that follow.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  BACKEND, startServer, shutdown, makeTmpDir, removeTmpDir, dbUrlFor, freePort, newCall,
  pollUntil, assertFeed,
} from './harness.js';
import { LkRoom, deliver } from './livekit-kit.js';

const PG_SH = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../tools/pg.sh');
const PRIMARY = { PG_DIR: process.env.CALLSTATE_TEST_PG_DIR, PG_PORT: process.env.CALLSTATE_TEST_PG_PORT };

/** Runs bash with tools/pg.sh sourced, on the server of env ({PG_DIR, PG_PORT}). */
function pg(env, script) {
  const r = spawnSync('bash', ['-c', `. "${PG_SH}" && ${script}`], { env: { ...process.env, ...env }, encoding: 'utf8' });
  assert.equal(r.status, 0, `${script}: ${r.stderr}`);
  return r.stdout;
}

function psqlAt(port, db, sql) {
  const r = spawnSync('psql', [`postgresql://postgres@127.0.0.1:${port}/${db}`, '-X', '-Atc', sql], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : null;
}

const skip = BACKEND !== 'postgres' ? 'PostgreSQL only'
  : !PRIMARY.PG_DIR ? 'needs CALLSTATE_TEST_PG_DIR: the test server to fail over from' : false;

describe('failover to a synchronous standby', { skip }, () => {
  let dir, srv, standby, primaryDown = false, syncSet = false;
  before(async () => {
    dir = makeTmpDir();
    dbUrlFor(dir); // the database, on the primary, before the standby copies it
    standby = { PG_DIR: fs.mkdtempSync(path.join(os.tmpdir(), 'callstate-standby-')), PG_PORT: String(await freePort()) };
    fs.chmodSync(standby.PG_DIR, 0o755);
    pg(standby, `[ "$(id -u)" -ne 0 ] || chown postgres: "$PG_DIR"
      pg_as "$(pg_bin)/pg_basebackup" -h 127.0.0.1 -p ${PRIMARY.PG_PORT} -U postgres -D "$PG_DIR/data" -R -X stream -c fast
      pg_as sh -c 'echo "cluster_name = standby" >> "$1/data/postgresql.auto.conf"' sh "$PG_DIR"
      pg_run_server`);
    // A commit on the primary now waits for the standby to have it.
    psqlAt(PRIMARY.PG_PORT, 'postgres', "ALTER SYSTEM SET synchronous_standby_names = 'standby'");
    psqlAt(PRIMARY.PG_PORT, 'postgres', 'SELECT pg_reload_conf()');
    syncSet = true;
    const [synced] = await pollUntil(async () => psqlAt(PRIMARY.PG_PORT, 'postgres',
      "SELECT sync_state FROM pg_stat_replication WHERE application_name = 'standby'") === 'sync', 15000, 100);
    assert.ok(synced, 'the standby is synchronous');
  });
  after(async () => {
    await shutdown(srv);
    if (primaryDown) pg(PRIMARY, 'pg_run_server');
    if (syncSet) {
      psqlAt(PRIMARY.PG_PORT, 'postgres', 'ALTER SYSTEM RESET synchronous_standby_names');
      psqlAt(PRIMARY.PG_PORT, 'postgres', 'SELECT pg_reload_conf()');
    }
    if (standby) pg(standby, 'pg_stop');
    if (dir) removeTmpDir(dir);
  });

  it('writes go to the primary, then to the promoted standby, nothing acknowledged lost', async () => {
    const db = new URL(dbUrlFor(dir)).pathname.slice(1);
    const url = `postgresql://postgres@127.0.0.1:${standby.PG_PORT},127.0.0.1:${PRIMARY.PG_PORT}/${db}?target_session_attrs=read-write`;
    srv = await startServer({ dir, env: { CALLSTATE_DB: url } });

    const before = [];
    for (let i = 0; i < 5; i++) {
      const req = newCall(1, { ring_timeout_s: 300 });
      const { call } = await srv.createCall(req);
      await srv.act(call.id, 'accept', { user: req.callees[0] });
      before.push(call.id);
    }
    const room = new LkRoom((await srv.getCall(before[0])).room);
    await deliver(srv, room.started(Date.now()));
    // Replicated: flushed on the standby before each answer (synchronous_commit = on), and
    // visible there once replayed.
    for (const id of before) {
      const [seen] = await pollUntil(async () => psqlAt(standby.PG_PORT, db, `SELECT status FROM calls WHERE id = '${id}'`) === 'active', 5000);
      assert.ok(seen, `call ${id} is on the standby`);
    }

    // The primary goes; the standby is promoted. Until then, 503 (never a 2xx for nothing).
    pg(PRIMARY, 'pg_stop_server');
    primaryDown = true;
    const during = await srv.svc('POST', '/v1/calls', newCall(1));
    assert.equal(during.status, 503, `while no primary: ${during.status} ${during.text}`);
    pg(standby, 'pg_as "$(pg_bin)/pg_ctl" -D "$PG_DIR/data" -w promote >/dev/null');

    const [back] = await pollUntil(async () => (await srv.request('GET', '/readyz', { token: 'none' })).status === 200, 20000, 100);
    assert.ok(back, '/readyz is 200 again on the promoted standby, without a restart');
    const req = newCall(1);
    const { call } = await srv.createCall(req);
    await srv.act(call.id, 'decline', { user: req.callees[0] });
    assert.equal(psqlAt(standby.PG_PORT, db, `SELECT status FROM calls WHERE id = '${call.id}'`), 'ended', 'written to the new primary');
    for (const id of before) assert.equal((await srv.getCall(id)).status, 'active', `call ${id} survived the failover`);
    assertFeed(await srv.allEvents());
    assert.equal(srv.exit, null, 'callstate was never restarted');
  });
});

// A PostgreSQL server that goes silent: its host gone or the network cut, so that nothing
// answers and nothing resets the connections (outage.test.js stops the server, which closes
// them at once). callstate must not hang on it: requests answer 503 once the TCP keepalives
// or the user timeout of db/postgres.c's connections give up on the server (~20 s, instead of
// the kernel's two hours or fifteen minutes), and once the server answers again the service,
// and the long polls' wake-ups by LISTEN/NOTIFY, come back without a restart.
//
// The instance under test reaches PostgreSQL through a TCP forwarder of this test, and an
// nftables rule drops every packet to and from the forwarder's port: the silence is the
// kernel's, so no ACK or keepalive answer comes either. Needs root and the nft command
// (tools/test installs nftables); a second instance connects directly and stays well.
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import http from 'node:http';
import { spawnSync } from 'node:child_process';
import { BACKEND, startServer, shutdown, newCall, makeTmpDir, removeTmpDir, dbUrlFor, pollUntil, sleep } from './harness.js';

const PG_PORT = Number(process.env.CALLSTATE_TEST_PG_PORT);
const TABLE = `callstate_silent_${process.pid}`;

function nft(args) {
  return spawnSync('nft', args, { encoding: 'utf8' });
}

const skip = BACKEND !== 'postgres' ? 'PostgreSQL only'
  : !PG_PORT ? 'needs CALLSTATE_TEST_PG_PORT'
    : process.getuid() !== 0 ? 'needs root, for the nftables rule'
      : nft(['list', 'tables']).status !== 0 ? 'needs the nft command (Debian nftables)' : false;

/** Forwards 127.0.0.1:port to PostgreSQL, each connection to one of its own. */
async function startForwarder() {
  const sockets = new Set();
  const server = net.createServer((client) => {
    const upstream = net.connect(PG_PORT, '127.0.0.1');
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('error', () => {});
      s.on('close', () => { sockets.delete(s); client.destroy(); upstream.destroy(); });
    }
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: server.address().port,
    close: () => { for (const s of sockets) s.destroy(); server.close(); },
  };
}

/** Drops every packet to or from port, in both directions, on loopback. */
function silence(port) {
  for (const args of [
    ['add', 'table', 'inet', TABLE],
    ['add', 'chain', 'inet', TABLE, 'input', '{ type filter hook input priority -10 ; }'],
    ['add', 'rule', 'inet', TABLE, 'input', 'tcp', 'dport', String(port), 'drop'],
    ['add', 'rule', 'inet', TABLE, 'input', 'tcp', 'sport', String(port), 'drop'],
  ]) {
    const r = nft(args);
    assert.equal(r.status, 0, `nft ${args.join(' ')}: ${r.stderr}`);
  }
}

function unsilence() {
  nft(['delete', 'table', 'inet', TABLE]);
}

/** GET /v1/events?after&wait on a connection of its own; resolves to {status, body, at}. */
function longPoll(srv, port, after, wait) {
  return new Promise((resolve, reject) => {
    http.get({
      host: '127.0.0.1', port, path: `/v1/events?after=${after}&wait=${wait}`, agent: false,
      headers: { Authorization: `Bearer ${srv.secrets.serviceToken}` },
    }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c) => { text += c; });
      res.on('end', () => resolve({ status: res.statusCode, body: JSON.parse(text), at: Date.now() }));
    }).on('error', reject);
  });
}

async function lastSeq(srv) {
  const all = await srv.allEvents();
  return all.length ? all[all.length - 1].seq : 0;
}

describe('a PostgreSQL server that goes silent', { skip }, () => {
  let forwarder;
  let dir;
  const servers = [];
  after(async () => {
    unsilence();
    for (const s of servers) await shutdown(s);
    forwarder?.close();
    if (dir) removeTmpDir(dir);
  });

  it('503 instead of a hang while it is silent; service and NOTIFY wake-ups back by themselves', { timeout: 180000 }, async () => {
    forwarder = await startForwarder();
    dir = makeTmpDir();
    const direct = dbUrlFor(dir);
    const viaForwarder = direct.replace(`:${PG_PORT}/`, `:${forwarder.port}/`);
    assert.notEqual(viaForwarder, direct);
    const a = await startServer({ dir, env: { CALLSTATE_DB: viaForwarder } });
    servers.push(a);
    const b = await startServer({ dir, secrets: a.secrets });
    servers.push(b);
    assert.equal((await a.createCall(newCall(1))).call.status, 'ringing');

    silence(forwarder.port);
    const t0 = Date.now();
    const [created, ready] = await Promise.all([
      fetch(`http://127.0.0.1:${a.ports[0]}/v1/calls`, {
        method: 'POST', body: JSON.stringify(newCall(1)),
        headers: { Authorization: `Bearer ${a.secrets.serviceToken}`, 'Content-Type': 'application/json' },
      }),
      pollUntil(async () => (await fetch(`http://127.0.0.1:${a.ports[0]}/readyz`)).status === 503, 60000, 1000),
    ]);
    const took = Date.now() - t0;
    assert.equal(created.status, 503, `a create while the database is silent: ${created.status}`);
    assert.equal((await created.json()).error.code, 'unavailable');
    assert.ok(took < 60000, `answered after ${took} ms: the keepalives bound the wait, not the kernel's retransmissions`);
    assert.ok(ready[0], '/readyz went 503');
    // The instance that reaches the server directly never noticed.
    assert.equal((await b.createCall(newCall(1))).call.status, 'ringing');

    // Silent long enough for the feed's listener, idle on its own connection, to give up on it
    // too (its keepalives), so that what follows tests its reconnection.
    const [lost] = await pollUntil(async () => /feed listener lost its connection/.test(a.stderr), 60000, 500);
    assert.ok(lost, 'the listener noticed the silence');
    unsilence();
    const [back] = await pollUntil(async () => (await fetch(`http://127.0.0.1:${a.ports[0]}/readyz`)).status === 200, 60000, 200);
    assert.ok(back, '/readyz is 200 again without a restart');
    assert.equal((await a.createCall(newCall(1))).call.status, 'ringing');

    // The listener is back too: a long poll on the first instance wakes at a commit of the
    // second within 300 ms, three times in a row. Without it the poll would look again only
    // once a second (or not before its wait ends), so three quick wakes are not luck.
    let quick = 0;
    for (const deadline = Date.now() + 60000; quick < 3 && Date.now() < deadline;) {
      const seq = await lastSeq(b);
      const waiting = longPoll(a, a.ports[0], seq, 5);
      await sleep(300);
      const { call } = await b.createCall(newCall(1));
      const committed = Date.now();
      const r = await waiting;
      assert.equal(r.status, 200);
      const woke = r.body.events.some((e) => e.call_id === call.id);
      quick = woke && r.at - committed < 300 ? quick + 1 : 0;
    }
    assert.equal(quick, 3, 'long polls of the first instance wake at the second\'s commits again');
  });
});

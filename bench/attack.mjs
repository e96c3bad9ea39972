// Connection attacks against a running callstate, and what a normal client sees meanwhile.
//
//   node bench/attack.mjs --url http://127.0.0.1:8080 --pid PID --token SERVICE_TOKEN \
//        --call CALL_ID --user MEMBER [--idle 1000] [--slow 200] [--seconds 20]
//
// Opens IDLE connections that never send a byte and SLOW connections that send the headers of
// a POST /webhooks/livekit with Content-Length: 60000 and then one body byte every 2 s (each
// reconnects as soon as the server closes it, as an attacker would). Once they are all open it
// sends, every 50 ms, a GET /healthz and a POST /v1/calls/{id}/token, each on a new connection
// (as a client arriving during the attack), and prints their p50/p99/max latency, how many
// failed, the slow clients' answers, and the server's RSS (VmRSS of PID) at its highest.
import net from 'node:net';
import fs from 'node:fs';
import { parseArgs } from 'node:util';

const { values: opt } = parseArgs({
  options: {
    url: { type: 'string', default: 'http://127.0.0.1:8080' },
    pid: { type: 'string' },
    token: { type: 'string' },
    call: { type: 'string' },
    user: { type: 'string' },
    idle: { type: 'string', default: '1000' },
    slow: { type: 'string', default: '200' },
    seconds: { type: 'string', default: '20' },
  },
});
const target = new URL(opt.url);
const host = target.hostname;
const port = Number(target.port || 80);
const IDLE = Number(opt.idle);
const SLOW = Number(opt.slow);
const SECONDS = Number(opt.seconds);
let stopping = false;

function rssKb() {
  if (!opt.pid) return 0;
  const m = /VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${opt.pid}/status`, 'utf8'));
  return m ? Number(m[1]) : 0;
}

const held = { idle: 0, slow: 0 };
const slowAnswers = new Map(); // status line → count

function idleConnection() {
  if (stopping) return;
  const s = net.connect({ host, port });
  s.on('connect', () => { held.idle++; });
  s.on('data', () => {});
  s.on('error', () => {});
  s.on('close', (hadConnect) => {
    if (s.connected !== false) held.idle = Math.max(0, held.idle - 1);
    setTimeout(idleConnection, 10);
  });
}

function slowConnection() {
  if (stopping) return;
  const s = net.connect({ host, port });
  let timer = null;
  let answer = '';
  s.on('connect', () => {
    held.slow++;
    s.write(`POST /webhooks/livekit HTTP/1.1\r\nHost: ${host}\r\nContent-Type: application/webhook+json\r\n` +
      'Authorization: x\r\nContent-Length: 60000\r\n\r\n{');
    timer = setInterval(() => s.write('x'), 2000);
  });
  s.on('data', (b) => { answer += b.toString('latin1'); });
  s.on('error', () => {});
  s.on('close', () => {
    clearInterval(timer);
    held.slow = Math.max(0, held.slow - 1);
    const line = answer.split('\r\n')[0] || '(closed without an answer)';
    slowAnswers.set(line, (slowAnswers.get(line) || 0) + 1);
    setTimeout(slowConnection, 10);
  });
}

/** One request on a new connection; resolves to its latency in ms, or null on failure. */
function probe(method, path, headers = {}, body = '') {
  return new Promise((resolve) => {
    const t0 = process.hrtime.bigint();
    const s = net.connect({ host, port });
    let got = '';
    const done = (ok) => {
      clearTimeout(limit);
      s.destroy();
      resolve(ok ? Number(process.hrtime.bigint() - t0) / 1e6 : null);
    };
    const limit = setTimeout(() => done(false), 30000);
    s.on('connect', () => {
      const h = Object.entries({ Host: host, Connection: 'close', 'Content-Length': Buffer.byteLength(body), ...headers })
        .map(([k, v]) => `${k}: ${v}\r\n`).join('');
      s.write(`${method} ${path} HTTP/1.1\r\n${h}\r\n${body}`);
    });
    s.on('data', (b) => {
      got += b.toString('latin1');
      if (/\r\n\r\n/.test(got)) done(/^HTTP\/1\.1 2\d\d /.test(got));
    });
    s.on('error', () => done(false));
    s.on('close', () => done(false));
  });
}

function pct(xs, p) {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)];
}

const fmt = (v) => (Number.isFinite(v) ? v.toFixed(1) : '-');

async function main() {
  const rssBefore = rssKb();
  for (let i = 0; i < IDLE; i++) idleConnection();
  for (let i = 0; i < SLOW; i++) slowConnection();
  const t0 = Date.now();
  while (held.idle + held.slow < IDLE + SLOW && Date.now() - t0 < 10000) await new Promise((r) => setTimeout(r, 50));
  const opened = { ...held };
  let rssMax = rssKb();
  const lat = { healthz: [], token: [] };
  const failed = { healthz: 0, token: 0 };
  const tokenBody = JSON.stringify({ user: opt.user });
  const end = Date.now() + SECONDS * 1000;
  const inflight = [];
  while (Date.now() < end) {
    inflight.push(probe('GET', '/healthz').then((ms) => (ms === null ? failed.healthz++ : lat.healthz.push(ms))));
    if (opt.token && opt.call) {
      inflight.push(probe('POST', `/v1/calls/${opt.call}/token`,
        { Authorization: `Bearer ${opt.token}`, 'Content-Type': 'application/json' }, tokenBody)
        .then((ms) => (ms === null ? failed.token++ : lat.token.push(ms))));
    }
    rssMax = Math.max(rssMax, rssKb());
    await new Promise((r) => setTimeout(r, 50));
  }
  await Promise.all(inflight);
  stopping = true;
  console.log(`attack: ${opened.idle}/${IDLE} idle and ${opened.slow}/${SLOW} slow-body connections open before sampling; ${SECONDS} s of samples`);
  for (const k of Object.keys(lat)) {
    if (!lat[k].length && !failed[k]) continue;
    console.log(`${k.padEnd(8)} n=${lat[k].length} failed=${failed[k]} p50=${fmt(pct(lat[k], 50))} ms p99=${fmt(pct(lat[k], 99))} ms max=${fmt(Math.max(...lat[k]))} ms`);
  }
  console.log(`rss: ${(rssBefore / 1024).toFixed(1)} MB before, ${(rssMax / 1024).toFixed(1)} MB at most during the attack`);
  console.log(`slow clients' answers: ${[...slowAnswers].map(([l, n]) => `${n} × ${l}`).join('; ') || 'none yet'}`);
  process.exit(0);
}

main();

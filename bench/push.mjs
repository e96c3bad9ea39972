// Push throughput and latency (on demand, never in CI; bench/push.sh sets the environment).
// Runs the receiver itself (node:http, keep-alive, answers 204 without verifying: the cost
// measured is callstate's) and starts callstate twice from BIN:
// 1. backlog: callstate without CALLSTATE_EVENTS_URL; CALLS calls are created (16 at a time),
//    then it stops. Restarted with the URL, it queues and pushes the whole feed: throughput is
//    the feed's events over the time from its /healthz to the last first arrival, with the
//    server's CPU seconds (utime + stime of /proc/PID/stat) per event.
// 2. latency: on that server, RATE calls a second for SECONDS; for each call, the arrival of
//    its call.ringing at the receiver against when the POST was sent (the commit is later:
//    an upper bound of commit to delivery) and when its 201 arrived (a lower bound).
// With PERF_OUT=FILE, `perf record -g` samples the server during the backlog's push.
// RECEIVER_DELAY_MS=N: the receiver answers each push N ms after it came, as a receiver on
// another host, or one that does work before it answers, would. RECEIVER_PROCESSES=N: the
// receiver is N node:cluster workers (bench/push-receiver.mjs), for when one process is the
// limit. Per thread of the server: CPU and context switches per event (/proc/PID/task), and
// with SYSCALLS=1 syscalls per event (`perf stat -e raw_syscalls:sys_enter --per-thread`).
// SERVER_LOG=FILE: the server's stderr (its "sqlite writer totals" at exit). SECONDS=0: the
// backlog only.
// Usage: node bench/push.mjs BIN PORT SERVICE_TOKEN [CALLS=20000] [RATE=1000] [SECONDS=10]
import http from 'node:http';
import cluster from 'node:cluster';
import { spawn } from 'node:child_process';
import { receiverHandler } from './push-receiver.mjs';
import { closeSync, openSync, readFileSync, readdirSync, unlinkSync } from 'node:fs';

const [bin, port, token, calls = '20000', rate = '1000', seconds = '10'] = process.argv.slice(2);
const receiverDelayMs = Number(process.env.RECEIVER_DELAY_MS || 0);
const headers = { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' };
const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });

function request(method, path, body) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path, agent, headers }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c) => { text += c; });
      res.on('end', () => resolve({ status: res.statusCode, body: text ? JSON.parse(text) : null, at: performance.now() }));
    });
    req.on('error', reject);
    req.end(body ? JSON.stringify(body) : undefined);
  });
}

// The receiver: first arrival per event id, and per call the arrival of its call.ringing.
const firstArrival = new Map();
const ringingAt = new Map();
let requests = 0;
const arrived = (id, at, callIdOf) => {
  requests += 1;
  if (firstArrival.has(id) && firstArrival.get(id) <= at) return;
  firstArrival.set(id, at);
  const callId = callIdOf();
  if (callId) ringingAt.set(callId, at);
};
const receiverProcesses = Number(process.env.RECEIVER_PROCESSES || 1);
const receiverBin = process.env.RECEIVER === 'c' ? process.env.RECEIVER_BIN : null;
let receiver = null;
const workers = [];
let receiverPort;
const freePort = async () => {
  const probe = http.createServer();
  await new Promise((r) => probe.listen(0, '127.0.0.1', r));
  const { port: free } = probe.address();
  await new Promise((r) => probe.close(r));
  return free;
};
if (receiverBin) {
  // bench/push-receiver.c: one line per arrival, "MONOTONIC_MS WEBHOOK_ID CALL_ID" ("-":
  // none); process.hrtime() reads the same clock.
  receiverPort = await freePort();
  const monotonicToNow = Number(process.hrtime.bigint()) / 1e6 - performance.now();
  const child = spawn(receiverBin, [String(receiverPort), '64', String(receiverDelayMs)], { stdio: ['ignore', 'pipe', 'inherit'] });
  workers.push({ process: child, kill: () => child.kill('SIGTERM') });
  let partial = '';
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (text) => {
    const lines = (partial + text).split('\n');
    partial = lines.pop();
    for (const line of lines) {
      const [monotonicAt, id, callId] = line.split(' ');
      arrived(id, Number(monotonicAt) - monotonicToNow, () => (callId === '-' ? null : callId));
    }
  });
  for (let i = 0; ; i++) {
    const up = await new Promise((r) => http.get({ host: '127.0.0.1', port: receiverPort, path: '/' }, (res) => { res.resume(); r(true); }).on('error', () => r(false)));
    if (up) break;
    if (i === 200) throw new Error('the C receiver did not start');
    await new Promise((r) => setTimeout(r, 25));
  }
} else if (receiverProcesses === 1) {
  receiver = http.createServer({ keepAliveTimeout: 60000 }, receiverHandler(receiverDelayMs, arrived));
  await new Promise((r) => receiver.listen(0, '127.0.0.1', r));
  receiverPort = receiver.address().port;
} else {
  receiverPort = await freePort();
  cluster.setupPrimary({ exec: new URL('push-receiver.mjs', import.meta.url).pathname });
  for (let i = 0; i < receiverProcesses; i++) {
    const w = cluster.fork({ RECEIVER_PORT: String(receiverPort) });
    workers.push(w);
    await new Promise((r) => w.once('message', r)); // 'listening'
    // Arrivals stamped on the wall clock, moved onto this process's performance.now().
    w.on('message', (batch) => {
      for (const [id, wallAt, callId] of batch) arrived(id, wallAt - performance.timeOrigin, () => callId);
    });
  }
}
const receiverUrl = `http://127.0.0.1:${receiverPort}/events`;
// The receiver's CPU seconds: this process's (it is the receiver unless RECEIVER_PROCESSES > 1)
// and its workers'.
const receiverCpuSeconds = () => {
  const own = process.cpuUsage();
  return (own.user + own.system) / 1e6 + workers.reduce((sum, w) => sum + cpuSeconds(w.process.pid), 0);
};
const receiverClose = () => {
  receiver?.close();
  for (const w of workers) w.kill();
};

const children = new Set();
process.on('exit', () => { for (const c of children) c.kill('SIGKILL'); });
async function start(env) {
  const log = process.env.SERVER_LOG ? openSync(process.env.SERVER_LOG, 'a') : 'ignore';
  const child = spawn(bin, ['serve'], { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', log] });
  if (log !== 'ignore') closeSync(log);
  children.add(child);
  child.once('exit', () => children.delete(child));
  for (let i = 0; i < 400; i++) {
    try {
      if ((await request('GET', '/healthz')).status === 200) return child;
    } catch { /* not listening yet */ }
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error('callstate did not start');
}
async function stop(child) {
  child.kill('SIGTERM');
  await new Promise((r) => child.once('exit', r));
}
const cpuSeconds = (pid) => {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(f[11]) + Number(f[12])) / 100; // utime, stime in clock ticks (USER_HZ 100)
};
// By thread name, summed over the threads of each name: CPU seconds, and context switches
// (voluntary: the thread blocked; involuntary: it was preempted).
const cpuByThread = (pid) => {
  const by = new Map();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      const status = readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8');
      const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const switches = (key) => Number(status.match(new RegExp(`^${key}:\\s*(\\d+)`, 'm'))[1]);
      const t = by.get(name) || { cpu: 0, vol: 0, invol: 0 };
      t.cpu += (Number(f[11]) + Number(f[12])) / 100;
      t.vol += switches('voluntary_ctxt_switches');
      t.invol += switches('nonvoluntary_ctxt_switches');
      by.set(name, t);
    } catch { /* the thread ended */ }
  }
  return by;
};
const pct = (xs, p) => xs[Math.min(xs.length - 1, Math.max(0, Math.ceil((p / 100) * xs.length) - 1))];
const fmt = (x) => x.toFixed(1);

// 1. A backlog made while nothing is pushed, then pushed at once.
let server = await start({ CALLSTATE_EVENTS_URL: '' });
let next = 0;
await Promise.all(Array.from({ length: 16 }, async () => {
  for (let i; (i = next++) < Number(calls);) {
    const r = await request('POST', '/v1/calls', { caller: `pb-c${i}`, callees: [`pb-e${i}`], kind: 'audio' });
    if (r.status !== 201) throw new Error(`create: ${r.status}`);
  }
}));
let total = 0;
for (let after = 0, page; (page = (await request('GET', `/v1/events?after=${after}&limit=500`)).body.events).length;) {
  total += page.length;
  after = page.at(-1).seq;
}
await stop(server);
const t0 = performance.now();
server = await start({ CALLSTATE_EVENTS_URL: receiverUrl });
const perf = process.env.PERF_OUT
  ? spawn('perf', ['record', '-e', 'cpu-clock', '-g', '-p', String(server.pid), '-o', process.env.PERF_OUT], { stdio: 'ignore' })
  : null;
const syscallsOut = `/tmp/callstate-push-syscalls.${process.pid}`;
const syscalls = process.env.SYSCALLS
  ? spawn('perf', ['stat', '-e', 'raw_syscalls:sys_enter', '--per-thread', '-x,', '-p', String(server.pid), '-o', syscallsOut], { stdio: 'ignore' })
  : null;
const cpu0 = cpuSeconds(server.pid);
const threads0 = cpuByThread(server.pid);
const own0 = receiverCpuSeconds();
const ownC0 = receiverBin ? cpuSeconds(workers[0].process.pid) : 0;
while (firstArrival.size < total) await new Promise((r) => setTimeout(r, 5));
const arrivals = [...firstArrival.values()];
const t1 = arrivals.reduce((a, b) => Math.max(a, b), 0);
const first = arrivals.reduce((a, b) => Math.min(a, b), Infinity);
const cpu1 = cpuSeconds(server.pid);
const threads1 = cpuByThread(server.pid);
for (const p of [perf, syscalls].filter(Boolean)) {
  p.kill('SIGINT');
  await new Promise((r) => p.once('exit', r));
}
const own = (receiverCpuSeconds() - own0) * 1e6;
console.log(`backlog: ${total} events pushed in ${fmt(t1 - t0)} ms from the restart ` +
  `(${Math.round(total / ((t1 - t0) / 1000))} events/s), in ${fmt(t1 - first)} ms from the first ` +
  `arrival (${Math.round(total / ((t1 - first) / 1000))} events/s); ${requests - total} sent twice; ` +
  `server CPU ${fmt(((cpu1 - cpu0) * 1e6) / total)} us per event, this receiver's ` +
  `${fmt(own / total)} us (${Math.round((own / 1000 / (t1 - t0)) * 100)} % of a core` +
  `${receiverBin ? `; the C receiver ${fmt(((cpuSeconds(workers[0].process.pid) - ownC0) * 1e6) / total)} us of it` : ''}` +
  `${receiverProcesses > 1 && !receiverBin ? `, ${receiverProcesses} processes` : ''})`);

const zero = { cpu: 0, vol: 0, invol: 0 };
const perThread = [...threads1].map(([name, t]) => {
  const t0 = threads0.get(name) || zero;
  return { name, us: ((t.cpu - t0.cpu) * 1e6) / total, vol: (t.vol - t0.vol) / total, invol: (t.invol - t0.invol) / total };
}).filter((t) => t.us >= 0.5 || t.vol >= 0.05).sort((a, b) => b.us - a.us);
console.log(`  server CPU by thread, us per event: ${perThread.map((t) => `${t.name} ${fmt(t.us)}`).join(', ')}`);
if (syscalls) {
  // Lines "NAME-TID,COUNT,,raw_syscalls:sys_enter,...", summed by thread name.
  const by = new Map();
  for (const line of readFileSync(syscallsOut, 'utf8').split('\n')) {
    const m = line.match(/^(.*)-\d+,(\d+),/);
    if (m) by.set(m[1], (by.get(m[1]) || 0) + Number(m[2]));
  }
  unlinkSync(syscallsOut);
  const list = [...by].map(([n, c]) => [n, c / total]).filter(([, c]) => c >= 0.05).sort((a, b) => b[1] - a[1]);
  console.log(`  syscalls per event: ${list.map(([n, c]) => `${n} ${c.toFixed(2)}`).join(', ')}`);
}
console.log(`  context switches per event, voluntary/involuntary: ${perThread.map((t) => `${t.name} ${t.vol.toFixed(2)}/${t.invol.toFixed(2)}`).join(', ')}`);

// 2. Latency at a steady rate on the same server (none with SECONDS=0).
if (Number(seconds) === 0) {
  await stop(server);
  receiverClose();
  agent.destroy();
  process.exit(0);
}
const sent = new Map();
const perTick = Math.max(1, Math.round(Number(rate) / 100));
const ticks = Number(seconds) * 100;
const pending = [];
const startAt = performance.now();
for (let k = 0; k < ticks; k++) {
  for (let j = 0; j < perTick; j++) {
    const i = k * perTick + j;
    const sentAt = performance.now();
    pending.push(request('POST', '/v1/calls', { caller: `pl-c${i}`, callees: [`pl-e${i}`], kind: 'audio' }).then((r) => {
      if (r.status !== 201) throw new Error(`create: ${r.status}`);
      sent.set(r.body.call.id, { sentAt, answeredAt: r.at });
    }));
  }
  const due = startAt + (k + 1) * 10;
  await new Promise((r) => setTimeout(r, Math.max(0, due - performance.now())));
}
await Promise.all(pending);
const achieved = sent.size / ((performance.now() - startAt) / 1000);
while ([...sent.keys()].some((id) => !ringingAt.has(id))) await new Promise((r) => setTimeout(r, 10));
const fromSent = [];
const fromAnswer = [];
for (const [id, s] of sent) {
  fromSent.push(ringingAt.get(id) - s.sentAt);
  fromAnswer.push(Math.max(0, ringingAt.get(id) - s.answeredAt));
}
fromSent.sort((a, b) => a - b);
fromAnswer.sort((a, b) => a - b);
console.log(`latency at ${Math.round(achieved)} calls/s over ${seconds} s (${sent.size} calls): ` +
  `request sent -> pushed p50 ${fmt(pct(fromSent, 50))} ms, p99 ${fmt(pct(fromSent, 99))} ms, ` +
  `max ${fmt(fromSent.at(-1))} ms; 201 -> pushed p50 ${fmt(pct(fromAnswer, 50))} ms, ` +
  `p99 ${fmt(pct(fromAnswer, 99))} ms`);
await stop(server);
receiverClose();
agent.destroy();

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
// another host, or one that does work before it answers, would.
// Usage: node bench/push.mjs BIN PORT SERVICE_TOKEN [CALLS=20000] [RATE=1000] [SECONDS=10]
import http from 'node:http';
import { spawn } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';

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
const receiver = http.createServer({ keepAliveTimeout: 60000 }, (req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const at = performance.now();
    requests += 1;
    const id = req.headers['webhook-id'];
    if (!firstArrival.has(id)) {
      firstArrival.set(id, at);
      const body = Buffer.concat(chunks).toString('utf8');
      if (body.includes('"call.ringing"')) ringingAt.set(JSON.parse(body).call_id, at);
    }
    if (receiverDelayMs > 0) setTimeout(() => res.writeHead(204).end(), receiverDelayMs);
    else res.writeHead(204).end();
  });
});
await new Promise((r) => receiver.listen(0, '127.0.0.1', r));
const receiverUrl = `http://127.0.0.1:${receiver.address().port}/events`;

const children = new Set();
process.on('exit', () => { for (const c of children) c.kill('SIGKILL'); });
async function start(env) {
  const child = spawn(bin, ['serve'], { env: { ...process.env, ...env }, stdio: 'ignore' });
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
// CPU seconds by thread name, summed over the threads of each name.
const cpuByThread = (pid) => {
  const by = new Map();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      by.set(name, (by.get(name) || 0) + (Number(f[11]) + Number(f[12])) / 100);
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
const cpu0 = cpuSeconds(server.pid);
const threads0 = cpuByThread(server.pid);
const own0 = process.cpuUsage();
while (firstArrival.size < total) await new Promise((r) => setTimeout(r, 5));
const arrivals = [...firstArrival.values()];
const t1 = arrivals.reduce((a, b) => Math.max(a, b), 0);
const first = arrivals.reduce((a, b) => Math.min(a, b), Infinity);
const cpu1 = cpuSeconds(server.pid);
const threads1 = cpuByThread(server.pid);
if (perf) {
  perf.kill('SIGINT');
  await new Promise((r) => perf.once('exit', r));
}
const own = process.cpuUsage(own0);
console.log(`backlog: ${total} events pushed in ${fmt(t1 - t0)} ms from the restart ` +
  `(${Math.round(total / ((t1 - t0) / 1000))} events/s), in ${fmt(t1 - first)} ms from the first ` +
  `arrival (${Math.round(total / ((t1 - first) / 1000))} events/s); ${requests - total} sent twice; ` +
  `server CPU ${fmt(((cpu1 - cpu0) * 1e6) / total)} us per event, this receiver's ` +
  `${fmt((own.user + own.system) / total)} us (${Math.round(((own.user + own.system) / 1000 / (t1 - t0)) * 100)} % of a core)`);

const perThread = [...threads1].map(([name, s]) => [name, ((s - (threads0.get(name) || 0)) * 1e6) / total])
  .filter(([, us]) => us >= 0.5).sort((a, b) => b[1] - a[1]);
console.log(`  server CPU by thread, us per event: ${perThread.map(([n, us]) => `${n} ${fmt(us)}`).join(', ')}`);

// 2. Latency at a steady rate on the same server.
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
receiver.close();
agent.destroy();

// Long-poll wake-up (on demand, never in CI; bench/longpoll.sh starts the server): one client
// creates a call every 1000/RATE ms on a keep-alive connection of its own, while WAITERS
// clients each long-poll GET /v1/events?after=<last seq>&wait=25 on theirs. For each call and
// waiter it records when the waiter's answer with that call's call.ringing arrived, against
// when the creator's POST was sent and when its 201 arrived (the event is durable and
// visible by then; a waiter may hear of it first, which counts as 0).
// CREATOR_PORT (default PORT) is the instance the creator posts to.
// Usage: node bench/longpoll.mjs PORT SERVICE_TOKEN [SAMPLES=300] [RATE=20] [WAITERS=4] [CREATOR_PORT]
// With RAW_OUT set, also writes every wake-up after the 201 (ms, one a line) to that file,
// for percentiles over several runs.
import fs from 'node:fs';
import http from 'node:http';

const [port, token, samples = '300', rate = '20', waiters = '4', creatorPort = port] = process.argv.slice(2);
const N = Number(samples);
const headers = { Authorization: `Bearer ${token}` };

function request(agent, method, path, body, to = port) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: to, method, path, agent,
      headers: body ? { ...headers, 'Content-Type': 'application/json' } : headers }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c) => { text += c; });
      res.on('end', () => resolve({ status: res.statusCode, body: JSON.parse(text), at: performance.now() }));
    });
    req.on('error', reject);
    req.end(body ? JSON.stringify(body) : undefined);
  });
}

const sent = new Map(); // call id → {t0, t1}
const heard = [];       // per waiter: Map call id → time
let done = false;

async function waiter(k, after) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  heard[k] = new Map();
  while (!done) {
    const r = await request(agent, 'GET', `/v1/events?after=${after}&wait=25&limit=500`);
    for (const e of r.body.events) {
      if (e.type === 'call.ringing') heard[k].set(e.call_id, r.at);
      after = e.seq;
    }
  }
}

const pct = (xs, p) => xs[Math.min(xs.length - 1, Math.ceil((p / 100) * xs.length) - 1)];
const creator = new http.Agent({ keepAlive: true, maxSockets: 1 });
let last = 0;
for (let page; (page = (await request(creator, 'GET', `/v1/events?after=${last}&limit=500`)).body.events).length;) last = page.at(-1).seq;
const loops = Array.from({ length: Number(waiters) }, (_, k) => waiter(k, last));
await new Promise((r) => setTimeout(r, 500));
for (let i = 0; i < N; i++) {
  const t0 = performance.now();
  const r = await request(creator, 'POST', '/v1/calls', { caller: `lp-c${i}`, callees: [`lp-e${i}`], kind: 'audio' }, creatorPort);
  if (r.status !== 201) throw new Error(`create: ${r.status}`);
  sent.set(r.body.call.id, { t0, t1: r.at });
  await new Promise((res) => setTimeout(res, 1000 / Number(rate)));
}
await new Promise((r) => setTimeout(r, 1000));
done = true;
await request(creator, 'POST', '/v1/calls', { caller: 'lp-end', callees: ['lp-end2'], kind: 'audio' });
await Promise.all(loops);
const fromSend = [], fromAnswer = [];
let missed = 0;
for (const [id, { t0, t1 }] of sent) {
  for (const h of heard) {
    const t = h.get(id);
    if (t === undefined) { missed++; continue; }
    fromSend.push(t - t0);
    fromAnswer.push(Math.max(0, t - t1));
  }
}
fromSend.sort((a, b) => a - b);
fromAnswer.sort((a, b) => a - b);
if (process.env.RAW_OUT) fs.writeFileSync(process.env.RAW_OUT, fromAnswer.map((x) => `${x.toFixed(3)}\n`).join(''));
const f = (x) => x.toFixed(2);
console.log(`samples ${fromSend.length} (${sent.size} calls x ${waiters} waiters, ${rate}/s), missed ${missed}`);
console.log(`wake after the creator's 201:   p50 ${f(pct(fromAnswer, 50))} ms  p99 ${f(pct(fromAnswer, 99))} ms  max ${f(fromAnswer.at(-1))} ms`);
console.log(`wake after the POST was sent:   p50 ${f(pct(fromSend, 50))} ms  p99 ${f(pct(fromSend, 99))} ms`);

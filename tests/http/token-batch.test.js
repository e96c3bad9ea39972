// Tokens asked for at once: on PostgreSQL the access reads of concurrent token requests share
// statements (db/pg_batch_read.c), and each request must still get the answer for its own call
// and user. Many requests in flight, over calls and users whose answers differ (member or not,
// audio or video, ended, declined, unknown call, names stored or given, ids with odd bytes),
// every status and every token's claims checked.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, shutdown, uid, randomUUIDv7Like, SOURCES } from './harness.js';

let srv;
before(async () => { srv = await startServer(); });
after(async () => { await shutdown(srv); });

const IN_FLIGHT = 64;
const ROUNDS = 8;

// The requests to ask, each with what it must get: {id, user, name?, status, room, kind, want}.
async function makeCases() {
  const cases = [];
  for (let k = 0; k < 6; k++) {
    const kind = k % 2 ? 'video' : 'audio';
    // Users with a quote, a backslash, a comma, braces, a space and non-ASCII characters.
    const caller = `${uid('caller')}-"q\\,{${k}} é-日本`;
    const callees = [uid('callee'), `${uid('callee')} "b\\,{}" ü`];
    const { call: { id, room } } = await srv.createCall({ caller, callees, kind, caller_name: `Caller of ${k}` });
    const ended = k === 5;
    if (!ended) await srv.act(id, 'decline', { user: callees[1] });
    if (k % 3 === 1) await srv.act(id, 'accept', { user: callees[0], name: `Callee of ${k}` });
    if (ended) await srv.act(id, 'end', { user: caller });
    const ok = (user, name) => ({ id, user, status: ended ? 409 : 200, room, kind, want: name ?? user });
    cases.push(ok(caller, `Caller of ${k}`));
    cases.push({ ...ok(caller, `Given ${k}`), name: `Given ${k}` });
    cases.push(ok(callees[0], k % 3 === 1 ? `Callee of ${k}` : undefined));
    cases.push({ id, user: callees[1], status: 409 });
    cases.push({ id, user: `${uid('stranger')} "{,}\\"`, status: 403 });
  }
  cases.push({ id: randomUUIDv7Like(), user: uid('nobody'), status: 404 });
  return cases;
}

async function ask(c) {
  const body = c.name === undefined ? { user: c.user } : { user: c.user, name: c.name };
  const res = await srv.svc('POST', `/v1/calls/${c.id}/token`, body);
  const where = `call ${c.id} user ${c.user}: ${res.status} ${res.text}`;
  assert.equal(res.status, c.status, where);
  if (c.status !== 200) return;
  const p = await srv.verifier.verify(res.body.token);
  assert.equal(p.sub, c.user, `sub: ${where}`);
  assert.equal(p.name, c.want, `name: ${where}`);
  assert.equal(p.video.room, c.room, `video.room: ${where}`);
  assert.deepEqual(p.video.canPublishSources, SOURCES[c.kind], `sources: ${where}`);
}

describe('tokens asked for at once', () => {
  it('each request gets the answer for its own call and user', async () => {
    const cases = await makeCases();
    // IN_FLIGHT requests at a time, each the next case in turn, so neighbours differ.
    const total = cases.length * ROUNDS;
    let next = 0;
    const worker = async () => {
      while (next < total) await ask(cases[next++ % cases.length]);
    };
    await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
  });
});

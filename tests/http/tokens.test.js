// LiveKit tokens: every token callstate mints (create, accept, token) verifies with the
// official SDK's TokenVerifier and carries exactly the claims of API.md / LIVEKIT.md §1.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { TokenVerifier, AccessToken } from 'livekit-server-sdk';
import {
  startServer, shutdown, assertError, assertToken, newCall, uid, randomUUIDv7Like, LIVEKIT_URL, TOKEN_TTL_S,
  makeSecrets,
} from './harness.js';
import { randomBytes } from 'node:crypto';

let srv;
before(async () => { srv = await startServer(); });
after(async () => { await shutdown(srv); });

async function timed(fn) {
  const before = Date.now();
  const v = await fn();
  return [v, before, Date.now()];
}

describe('tokens', () => {
  for (const kind of ['audio', 'video']) {
    it(`${kind}: create, accept and token all mint valid tokens with the exact claims`, async () => {
      const req = newCall(2, { kind });
      const [created, b0, a0] = await timed(() => srv.createCall(req));
      const room = created.call.room;
      await assertToken(srv, created, { user: req.caller, room, kind, before: b0, after: a0 });

      const [acc, b1, a1] = await timed(() => srv.act(created.call.id, 'accept', { user: req.callees[0], name: 'Callee One' }));
      await assertToken(srv, acc, { user: req.callees[0], name: 'Callee One', room, kind, before: b1, after: a1 });

      const [acc2, b2, a2] = await timed(() => srv.act(created.call.id, 'accept', { user: req.callees[1] }));
      await assertToken(srv, acc2, { user: req.callees[1], room, kind, before: b2, after: a2 });

      // name: the one given in this request, else the one the member gave on accept (or the
      // caller on create), else the user id.
      for (const [user, name, want] of [
        [req.caller, undefined, undefined],
        [req.caller, 'Caller Renamed', 'Caller Renamed'],
        [req.callees[0], undefined, 'Callee One'],
        [req.callees[0], 'Other', 'Other'],
        [req.callees[1], undefined, undefined],
        [req.callees[1], 'Two', 'Two'],
      ]) {
        const json = name === undefined ? { user } : { user, name };
        const [g, b, a] = await timed(() => srv.act(created.call.id, 'token', json));
        assert.deepEqual(Object.keys(g).sort(), ['token', 'token_expires_at', 'url']);
        await assertToken(srv, g, { user, name: want, room, kind, before: b, after: a });
      }
    });
  }

  it('caller_name becomes the caller token name', async () => {
    const req = newCall(1, { caller_name: 'Alice Liddell' });
    const g = await srv.createCall(req);
    await assertToken(srv, g, { user: req.caller, name: 'Alice Liddell', room: g.call.room, kind: 'audio' });
  });

  it('identities and names that need JSON escaping round-trip exactly', async () => {
    const caller = `we"ird\\user/${uid()}`;
    const callee = `Zoë-日本-😀-${uid()}`;
    const req = { caller, callees: [callee], kind: 'video', caller_name: 'Q "quoted" \\ back </script> ünï 😀' };
    const g = await srv.createCall(req);
    await assertToken(srv, g, { user: caller, name: req.caller_name, room: g.call.room, kind: 'video' });
    const acc = await srv.act(g.call.id, 'accept', { user: callee, name: 'line\u2028sep ünï' });
    await assertToken(srv, acc, { user: callee, name: 'line\u2028sep ünï', room: g.call.room, kind: 'video' });
  });

  it('a reconnect token without a name keeps the name given on create', async () => {
    const req = newCall(1, { caller_name: 'Sticky' });
    const { call } = await srv.createCall(req);
    const g = await srv.act(call.id, 'token', { user: req.caller });
    await assertToken(srv, g, { user: req.caller, name: 'Sticky', room: call.room, kind: 'audio' });
  });

  it('an empty name falls back to the user id', async () => {
    const req = newCall(1);
    const { call } = await srv.createCall(req);
    const g = await srv.act(call.id, 'token', { user: req.caller, name: '' });
    await assertToken(srv, g, { user: req.caller, room: call.room, kind: 'audio' });
  });

  it('every token has a unique jti, even minted in parallel', async () => {
    const req = newCall(1);
    const { call } = await srv.createCall(req);
    const grants = await Promise.all(Array.from({ length: 40 }, () => srv.act(call.id, 'token', { user: req.callees[0] })));
    const verifier = new TokenVerifier(srv.secrets.apiKey, srv.secrets.apiSecret);
    const jtis = new Set();
    for (const g of grants) {
      const p = await verifier.verify(g.token);
      jtis.add(p.jti);
    }
    assert.equal(jtis.size, 40);
  });

  // The signer absorbs its secret once into SHA-256 states that every worker copies: two
  // servers, one with a secret longer than a SHA-256 block (hashed first, RFC 2104), mint in
  // parallel on many workers, and each token verifies with its own secret only.
  it('tokens minted in parallel by two servers verify with their own secret only', async () => {
    const long = { ...makeSecrets(), apiSecret: 'long-' + randomBytes(64).toString('hex') };
    const other = await startServer({ secrets: long });
    try {
      const servers = [srv, other];
      const calls = await Promise.all(servers.map(async (s) => {
        const req = newCall(1);
        return { s, req, call: (await s.createCall(req)).call };
      }));
      const grants = await Promise.all(calls.flatMap(({ s, req, call }) => Array.from({ length: 24 },
        async () => ({ s, g: await s.act(call.id, 'token', { user: req.callees[0] }) }))));
      for (const { s, g } of grants) {
        const mine = await new TokenVerifier(s.secrets.apiKey, s.secrets.apiSecret).verify(g.token);
        assert.equal(mine.iss, s.secrets.apiKey);
        const theirs = servers.find((x) => x !== s).secrets;
        await assert.rejects(new TokenVerifier(s.secrets.apiKey, theirs.apiSecret).verify(g.token));
      }
    } finally {
      await shutdown(other);
    }
  });

  it('sanity: the verifier rejects a wrong secret, a wrong key, and a tampered token', async () => {
    const req = newCall(1);
    const g = await srv.createCall(req);
    await assert.rejects(new TokenVerifier(srv.secrets.apiKey, 'not-the-secret').verify(g.token));
    await assert.rejects(new TokenVerifier('APIother', srv.secrets.apiSecret).verify(g.token));
    const [h, p, s] = g.token.split('.');
    const claims = JSON.parse(Buffer.from(p, 'base64url').toString());
    claims.sub = 'mallory';
    const forged = [h, Buffer.from(JSON.stringify(claims)).toString('base64url'), s].join('.');
    await assert.rejects(new TokenVerifier(srv.secrets.apiKey, srv.secrets.apiSecret).verify(forged));
    // And the SDK's own token for the same grant verifies: the verifier itself works.
    const at = new AccessToken(srv.secrets.apiKey, srv.secrets.apiSecret, { identity: req.caller, ttl: TOKEN_TTL_S });
    at.addGrant({ roomJoin: true, room: g.call.room });
    const p2 = await new TokenVerifier(srv.secrets.apiKey, srv.secrets.apiSecret).verify(await at.toJwt());
    assert.equal(p2.sub, req.caller);
  });

  it('url is LIVEKIT_URL on every grant', async () => {
    const req = newCall(1);
    const g = await srv.createCall(req);
    assert.equal(g.url, LIVEKIT_URL);
    const a = await srv.act(g.call.id, 'accept', { user: req.callees[0] });
    assert.equal(a.url, LIVEKIT_URL);
    const t = await srv.act(g.call.id, 'token', { user: req.caller });
    assert.equal(t.url, LIVEKIT_URL);
  });

  it('token for a non-member → 403, an unknown call → 404, an ended call → 409', async () => {
    const req = newCall(1);
    const { call } = await srv.createCall(req);
    assertError(await srv.svc('POST', `/v1/calls/${call.id}/token`, { user: uid('stranger') }), 403, 'forbidden');
    assertError(await srv.svc('POST', `/v1/calls/${randomUUIDv7Like()}/token`, { user: req.caller }), 404, 'not_found');
    await srv.act(call.id, 'accept', { user: req.callees[0] });
    await srv.act(call.id, 'end', { user: req.caller });
    assertError(await srv.svc('POST', `/v1/calls/${call.id}/token`, { user: req.caller }), 409, 'conflict');
    assertError(await srv.svc('POST', `/v1/calls/${call.id}/token`, { user: req.callees[0] }), 409, 'conflict');
    assertError(await srv.svc('POST', `/v1/calls/${call.id}/token`, { user: uid('stranger') }), 403, 'forbidden');
  });
});

describe('CALLSTATE_TOKEN_TTL_S', () => {
  let short;
  before(async () => { short = await startServer({ env: { CALLSTATE_TOKEN_TTL_S: 120 } }); });
  after(async () => { await shutdown(short); });

  it('exp = nbf + the configured TTL', async () => {
    const g = await short.createCall(newCall(1));
    const p = await short.verifier.verify(g.token);
    assert.equal(p.exp - p.nbf, 120);
    assert.equal(g.token_expires_at, new Date(p.exp * 1000).toISOString());
  });
});

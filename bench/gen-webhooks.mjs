// Writes signed LiveKit participant_joined / participant_left pairs for the rooms of real calls,
// one request per line: "<jwt>\t<json body>" (what bench/webhook.lua sends).
//
//   node bench/gen-webhooks.mjs MEMBERS_FILE PAIRS OUT_FILE [ID_PREFIX] [WRK_THREADS]
//
// MEMBERS_FILE has "<call id>\t<user>" lines (bench/run.sh writes it from the API's answers):
// pair p is a new session (fresh PA_ sid) of one member of call p % ncalls, in room
// "call_<id>", joined then left 2 s later. Event ids are "EV_<ID_PREFIX>_<n>", all distinct.
// Bodies are @livekit/protocol WebhookEvent.toJsonString() (protojson, as LiveKit's Go server
// writes them, int64 as strings); the Authorization value is livekit-server-sdk's AccessToken
// with the sha256 claim and a 5 min ttl, exactly as the LiveKit server signs webhooks.
// Lines are laid out for wrk threads that take lines k, k+T, k+2T, ... (webhook.lua): T joins,
// then the T matching leaves, so each thread sends a session's join before its leave.
// Env: LIVEKIT_API_KEY, LIVEKIT_API_SECRET (the server's). The SDKs come from tests/http.
import fs from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(here, '..', 'tests', 'http', 'package.json'));
const { AccessToken } = require('livekit-server-sdk');
const { WebhookEvent, ParticipantInfo_State, DisconnectReason, TrackSource } = require('@livekit/protocol');

const [membersFile, pairsArg, out, prefixArg, threadsArg] = process.argv.slice(2);
if (!membersFile || !out) {
  console.error('usage: node gen-webhooks.mjs MEMBERS_FILE PAIRS OUT_FILE [ID_PREFIX] [WRK_THREADS]');
  process.exit(2);
}
const PAIRS = Number(pairsArg || 10000);
const PREFIX = prefixArg || crypto.randomBytes(4).toString('hex');
const T = Math.max(1, Number(threadsArg || 2));
const KEY = process.env.LIVEKIT_API_KEY || 'APIbenchkey';
const SECRET = process.env.LIVEKIT_API_SECRET || 'bench-secret-0123456789abcdef0123456789abcdef';

const calls = new Map();
for (const line of fs.readFileSync(membersFile, 'utf8').split('\n')) {
  const [id, user] = line.split('\t');
  if (!id || !user) continue;
  if (!calls.has(id)) calls.set(id, []);
  calls.get(id).push(user);
}
const ids = [...calls.keys()];
if (!ids.length) {
  console.error(`no calls in ${membersFile}`);
  process.exit(1);
}

const B62 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
const rnd = (n) => { const b = crypto.randomBytes(n); let s = ''; for (let i = 0; i < n; i++) s += B62[b[i] % 62]; return s; };
const roomSid = new Map(ids.map((id) => [id, 'RM_' + rnd(12)]));
const now = Date.now();
const base = now - 600000; // sessions in the recent past, one every 5 ms

function room(id, t) {
  return {
    sid: roomSid.get(id), name: `call_${id}`, emptyTimeout: 300, departureTimeout: 20,
    creationTime: BigInt(Math.floor(base / 1000)), creationTimeMs: BigInt(base),
    enabledCodecs: [{ mime: 'audio/opus' }, { mime: 'audio/red' }, { mime: 'video/VP8' }, { mime: 'video/H264' }],
    numParticipants: 2, version: { unixMicro: BigInt(t) * 1000n, ticks: 2 },
  };
}

function participant(sid, identity, joinedMs, left) {
  const p = {
    sid, identity, name: `Bench ${identity}`, state: left ? ParticipantInfo_State.DISCONNECTED : ParticipantInfo_State.ACTIVE,
    joinedAt: BigInt(Math.floor(joinedMs / 1000)), joinedAtMs: BigInt(joinedMs), version: left ? 9 : 3,
    permission: {
      canSubscribe: true, canPublish: true, canPublishData: true,
      canPublishSources: [TrackSource.CAMERA, TrackSource.MICROPHONE, TrackSource.SCREEN_SHARE, TrackSource.SCREEN_SHARE_AUDIO],
    },
    region: 'eu-central', clientProtocol: 1,
  };
  if (left) Object.assign(p, { isPublisher: true, disconnectReason: DisconnectReason.CLIENT_INITIATED });
  return p;
}

let n = 0;
function event(kind, id, sid, identity, joinedMs, t) {
  const ev = new WebhookEvent({
    event: kind, room: room(id, t), participant: participant(sid, identity, joinedMs, kind === 'participant_left'),
    id: `EV_${PREFIX}_${n++}`, createdAt: BigInt(Math.floor(t / 1000)),
  });
  return ev.toJsonString();
}

async function line(body) {
  const at = new AccessToken(KEY, SECRET, { ttl: '5m' });
  at.sha256 = crypto.createHash('sha256').update(body).digest('base64');
  return `${await at.toJwt()}\t${body}\n`;
}

const fd = fs.openSync(out, 'w');
let minLen = Infinity;
let maxLen = 0;
for (let p0 = 0; p0 < PAIRS; p0 += T) {
  const joins = [];
  const leaves = [];
  for (let p = p0; p < Math.min(PAIRS, p0 + T); p++) {
    const id = ids[p % ids.length];
    const users = calls.get(id);
    const identity = users[Math.floor(p / ids.length) % users.length];
    const sid = 'PA_' + rnd(12);
    const joinedMs = base + p * 5;
    joins.push(event('participant_joined', id, sid, identity, joinedMs, joinedMs));
    leaves.push(event('participant_left', id, sid, identity, joinedMs, joinedMs + 2000));
  }
  const bodies = [...joins, ...leaves];
  for (const b of bodies) { minLen = Math.min(minLen, b.length); maxLen = Math.max(maxLen, b.length); }
  fs.writeSync(fd, (await Promise.all(bodies.map(line))).join(''));
}
fs.closeSync(fd);
process.stderr.write(`wrote ${2 * PAIRS} webhooks for ${ids.length} calls to ${out} (ids EV_${PREFIX}_*, bodies ${minLen}-${maxLen} bytes)\n`);

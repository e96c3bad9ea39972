// LiveKit's side of the webhook tests: bodies built with @livekit/protocol's WebhookEvent (the
// protojson LiveKit's Go server writes; NOT the SDK's WebhookEvent subclass, which resets
// `event`), signed with livekit-server-sdk's AccessToken exactly as the LiveKit server signs them
// (LIVEKIT.md §2: bare JWT in Authorization, ttl 5 min, `sha256` = std base64 of SHA-256 of the
// raw body), plus hand-made tokens and Go-style bodies for the cases the SDK cannot produce.
import { createHash, createHmac, randomBytes } from 'node:crypto';
import assert from 'node:assert/strict';
import { AccessToken } from 'livekit-server-sdk';
import {
  WebhookEvent, ParticipantInfo_State, ParticipantInfo_Kind, DisconnectReason, RoomEndReason, TrackType,
  TrackSource, VideoQuality,
} from '@livekit/protocol';
import { sleep, feedEvents, ms } from './harness.js';

export const WEBHOOK_PATH = '/webhooks/livekit';
export const WEBHOOK_CT = 'application/webhook+json';

const B62 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
/** A LiveKit-looking id: PREFIX + n base62 characters (EV_, PA_, RM_, TR_). */
export function lkId(prefix, n = 12) {
  const b = randomBytes(n);
  let s = prefix;
  for (let i = 0; i < n; i++) s += B62[b[i] % 62];
  return s;
}

export function sha256b64(body) {
  return createHash('sha256').update(body).digest('base64');
}

/** The Authorization value LiveKit sends: an SDK AccessToken with the body's sha256, ttl 5 min. */
export async function signWebhook(body, key, secret, { ttl = '5m', sha256 = sha256b64(body) } = {}) {
  const at = new AccessToken(key, secret, { ttl });
  if (sha256 !== null) at.sha256 = sha256;
  return at.toJwt();
}

/** A hand-made JWS (Go's golang-jwt header by default) for claims the SDK will not produce. */
export function handJwt(claims, secret, { header = { alg: 'HS256', typ: 'JWT' }, hmac = 'sha256' } = {}) {
  const seg = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const signing = `${seg(header)}.${seg(claims)}`;
  if (secret === null) return `${signing}.`;
  return `${signing}.${createHmac(hmac, secret).update(signing).digest('base64url')}`;
}

export const nowS = () => Math.floor(Date.now() / 1000);

/** Every Authorization value sent, so that a test can check none reached the server's logs. */
export const sentAuthorizations = new Set();

/** POST /webhooks/livekit with the raw body; authorization undefined = no header. */
export function postWebhook(srv, body, authorization, headers = {}) {
  const h = { 'Content-Type': WEBHOOK_CT, ...headers };
  if (authorization !== undefined) h.Authorization = authorization;
  if (authorization) sentAuthorizations.add(authorization);
  for (const [k, v] of Object.entries(h)) if (v === null) delete h[k];
  // As bytes, so that fetch adds no Content-Type of its own when the test sends none.
  return srv.request('POST', WEBHOOK_PATH, { token: 'none', body: Buffer.from(body), headers: h });
}

async function sleepUntil(t) {
  const d = t - Date.now();
  if (d > 0) await sleep(d + 5);
}

/**
 * Deliver one event as LiveKit does and expect 200 {"status":"ok"}. LiveKit stamps createdAt
 * at enqueue, so an event is never sent before the times it carries: wait for them first.
 */
export async function deliver(srv, ev, { key = srv.secrets.apiKey, secret = srv.secrets.apiSecret } = {}) {
  await sleepUntil(ev.at ?? 0);
  const r = await postWebhook(srv, ev.body, await signWebhook(ev.body, key, secret));
  assert.equal(r.status, 200, `webhook ${ev.label || ev.id}: ${r.status} ${r.text}\nbody: ${ev.body}`);
  assert.deepEqual(r.body, { status: 'ok' }, `webhook ${ev.label || ev.id} answer`);
  return r;
}

const ENABLED_CODECS = [{ mime: 'audio/opus' }, { mime: 'audio/red' }, { mime: 'video/VP8' }, { mime: 'video/H264' }];

/**
 * One LiveKit room (a call's `room`, or any other name) and the webhooks its server would send.
 * Times are Unix ms; createdAt/joinedAt are their whole seconds, joinedAtMs the ms (LIVEKIT.md §3).
 */
export class LkRoom {
  constructor(name, { creationMs = Date.now() } = {}) {
    this.name = name;
    this.sid = lkId('RM_');
    this.creationMs = creationMs;
    this.ticks = 0;
    this.n = 0;
  }

  info(t, full = true) {
    if (!full) return { sid: this.sid, name: this.name };
    this.ticks += 1;
    return {
      sid: this.sid, name: this.name, emptyTimeout: 300, departureTimeout: 20,
      creationTime: BigInt(Math.floor(this.creationMs / 1000)), creationTimeMs: BigInt(this.creationMs),
      enabledCodecs: ENABLED_CODECS, numParticipants: this.n,
      version: { unixMicro: BigInt(t) * 1000n, ticks: this.ticks },
    };
  }

  /** A participant session (a new sid per connection). opts.kind: 'EGRESS' | 'AGENT' | …;
   * opts.attributes: the participant's attributes ({role: 'member'} by default). */
  session(identity, joinedAtMs, opts = {}) {
    return { sid: lkId('PA_'), identity, joinedAtMs, name: opts.name ?? `Name of ${identity}`, kind: opts.kind, recorder: opts.recorder, hidden: opts.hidden, agent: opts.agent, attributes: opts.attributes };
  }

  pinfo(s, state, extra = {}) {
    const p = {
      sid: s.sid, identity: s.identity, state, name: s.name, version: 3,
      metadata: JSON.stringify({ uid: s.identity }),
      joinedAt: BigInt(Math.floor(s.joinedAtMs / 1000)), joinedAtMs: BigInt(s.joinedAtMs),
      permission: {
        canSubscribe: true, canPublish: !s.recorder, canPublishData: !s.recorder,
        canPublishSources: [TrackSource.CAMERA, TrackSource.MICROPHONE, TrackSource.SCREEN_SHARE, TrackSource.SCREEN_SHARE_AUDIO],
        hidden: !!s.hidden, recorder: !!s.recorder, agent: !!s.agent,
      },
      attributes: s.attributes ?? { role: 'member' }, region: 'eu-central', clientProtocol: 1,
      ...extra,
    };
    if (s.kind) p.kind = ParticipantInfo_Kind[s.kind];
    return p;
  }

  /** {id, body, at, label}: `at` is the latest time the event carries (sent no earlier). */
  make(fields, t, label) {
    const id = fields.id ?? lkId('EV_');
    const ev = new WebhookEvent({ ...fields, id, createdAt: BigInt(Math.floor(t / 1000)) });
    assert.equal(ev.event, fields.event, 'the protocol WebhookEvent keeps `event`');
    return { id, body: ev.toJsonString(), at: t, label: label ?? `${fields.event}@${this.name}` };
  }

  started(t) {
    return this.make({ event: 'room_started', room: this.info(t) }, t);
  }

  joined(s, t = s.joinedAtMs) {
    this.n += 1;
    return this.make({ event: 'participant_joined', room: this.info(t), participant: this.pinfo(s, ParticipantInfo_State.ACTIVE) },
      Math.max(t, s.joinedAtMs), `joined ${s.identity} ${s.sid}`);
  }

  left(s, t, reason = 'CLIENT_INITIATED') {
    this.n = Math.max(0, this.n - 1);
    const extra = { isPublisher: true };
    if (reason) extra.disconnectReason = DisconnectReason[reason];
    return this.make({ event: 'participant_left', room: this.info(t), participant: this.pinfo(s, ParticipantInfo_State.DISCONNECTED, extra) },
      Math.max(t, s.joinedAtMs), `left ${s.identity} ${s.sid}`);
  }

  /** A connection that never became active: no joinedAtMs in a real one, state JOINING. */
  aborted(s, t, reason = 'JOIN_FAILURE') {
    const p = this.pinfo(s, ParticipantInfo_State.JOINING, reason ? { disconnectReason: DisconnectReason[reason] } : {});
    delete p.joinedAtMs;
    return this.make({ event: 'participant_connection_aborted', room: this.info(t), participant: p }, t, `aborted ${s.identity} ${s.sid}`);
  }

  /** track_published / track_unpublished with the short room and participant of LIVEKIT.md §3. */
  track(event, s, t, source = 'SCREEN_SHARE') {
    const video = source === 'SCREEN_SHARE' || source === 'CAMERA';
    const track = {
      sid: lkId('TR_'), type: video ? TrackType.VIDEO : TrackType.AUDIO, source: TrackSource[source],
      name: source.toLowerCase(), mimeType: video ? 'video/VP8' : 'audio/opus', mid: '2', stream: source.toLowerCase(),
      version: { unixMicro: BigInt(t) * 1000n },
    };
    if (video) {
      Object.assign(track, { width: 1920, height: 1080 });
      track.codecs = [{ mimeType: 'video/VP8', mid: '2', cid: 'c-' + lkId(''), layers: [{ quality: VideoQuality.HIGH, width: 1920, height: 1080, bitrate: 2500000 }] }];
    }
    return this.make({ event, room: this.info(t, false), participant: { sid: s.sid, identity: s.identity }, track }, t, `${event} ${source} ${s.identity}`);
  }

  finished(t, reason) {
    const f = { event: 'room_finished', room: this.info(t) };
    if (reason) f.roomEndReason = RoomEndReason[reason];
    return this.make(f, t, `room_finished ${reason ?? ''}`);
  }
}

/**
 * Go's protojson output, written by hand: compact but with the random space Go inserts after
 * commas, and (as the parsing cases want) int64 as JSON numbers and enums as numbers, unlike
 * the SDK. Keys are written as given (so snake_case can be tested too).
 */
export function goJson(v) {
  if (Array.isArray(v)) return '[' + v.map(goJson).join(', ') + ']';
  if (v && typeof v === 'object') return '{' + Object.entries(v).map(([k, x]) => JSON.stringify(k) + ':' + goJson(x)).join(', ') + '}';
  return JSON.stringify(v);
}

/** A raw body as an event for deliver(). */
export function rawEvent(body, at = 0, label = 'raw') {
  return { id: JSON.parse(body).id, body, at, label };
}

// ---------------------------------------------------------------------------------------------
// Following the feed while webhooks are applied.

/** A cursor on GET /v1/events: next() returns the events appended since the last call. */
export class FeedCursor {
  constructor(srv) { this.srv = srv; this.seq = 0; }

  async init() {
    const all = await this.srv.allEvents(0);
    this.seq = all.length ? all[all.length - 1].seq : 0;
    return this;
  }

  async next() {
    const evs = await this.srv.allEvents(this.seq);
    if (evs.length) this.seq = evs[evs.length - 1].seq;
    return evs;
  }
}

/**
 * Deliver `ev` for the call `callId` and return {types, events, call}: the types of the call's
 * feed events this one webhook appended (sorted: one change may append several, in any order),
 * and the call after it. When the webhook appended events for the call, the last one's data
 * must be the call as GET shows it (API.md: data is the call after the change).
 */
export async function step(srv, cursor, callId, ev, opts) {
  await deliver(srv, ev, opts);
  const evs = await cursor.next();
  const mine = evs.filter((e) => e.call_id === callId);
  const call = await srv.getCall(callId);
  if (mine.length) {
    assert.deepEqual(mine.at(-1).data, call, `after ${ev.label}: the last feed event's data is the call as GET shows it`);
    for (let i = 1; i < mine.length; i++) {
      assert.equal(mine[i].call_version, mine[i - 1].call_version + 1, `after ${ev.label}: consecutive call_version`);
    }
  }
  return { types: mine.map((e) => e.type).sort(), events: mine, all: evs, call };
}

// ---------------------------------------------------------------------------------------------
// Comparing calls that lived the same timeline with other users, sids and creation times.

/**
 * The call with its id, room, users and sids replaced by the names given, and every time
 * expressed relative to `base` (ms); created_at (and a caller's responded_at equal to it)
 * become "CREATED". Calls that lived the same relative timeline then compare equal.
 */
export function normalizeCall(call, { users, sids, base }) {
  const name = (u) => users[u] ?? `?${u}`;
  const rel = (v) => (v === null ? null : v === call.created_at ? 'CREATED' : ms(v) - base);
  return {
    ...call,
    id: 'ID', room: 'ROOM', caller: name(call.caller), created_at: 'CREATED',
    answered_at: rel(call.answered_at), ended_at: rel(call.ended_at),
    members: call.members.map((m) => ({
      ...m, user: name(m.user), responded_at: rel(m.responded_at),
      first_joined_at: rel(m.first_joined_at), last_left_at: rel(m.last_left_at),
    })),
    participants: call.participants.map((p) => ({
      ...p, user: name(p.user), sid: sids[p.sid] ?? `?${p.sid}`, joined_at: rel(p.joined_at), left_at: rel(p.left_at),
    })),
  };
}

export { feedEvents };

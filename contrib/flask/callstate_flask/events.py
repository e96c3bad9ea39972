"""callstate's call events, pushed to the browsers over Socket.IO.

Two ways in, either or both: callstate POSTs each event to an endpoint of the app, signed as
the Standard Webhooks spec says (events_blueprint), or a thread long-polls GET /v1/events
(EventRelay). Both hand the event to one EventFanout, which emits it at most once per event id.
"""
import base64
import binascii
import collections
import hashlib
import hmac
import json
import threading
import time

import flask
from flask_socketio import join_room

from .client import CallstateError

SOCKET_EVENTS = {
    'call.ringing': 'call:incoming',
    'call.accepted': 'call:accepted',
    'call.declined': 'call:declined',
    'call.missed': 'call:missed',
    'call.active': 'call:active',
    'call.ended': 'call:ended',
    'call.member_joined': 'call:member_joined',
    'call.member_left': 'call:member_left',
    'presence.changed': 'presence:changed',
}


def user_room(user):
    """The Socket.IO room of one user: every connection of theirs joins it (socketio_auth)."""
    return 'user:' + user


def socketio_auth(socketio, current_user):
    """On connect, current_user() (the app's own authentication, called in the handshake's
    request context) names the user, whose room the connection joins; None refuses it."""

    @socketio.on('connect')
    def connect():
        user = current_user()
        if not user:
            return False
        join_room(user_room(user))
        return True


class EventFanout:
    """Emits each event, named as SOCKET_EVENTS says, with the event object as its payload:
    a call's events to the room of every member of the call (data.members[].user), a
    presence.changed to presence_rooms(presence), by default the user's own room (their other
    tabs and devices). Unknown types are skipped, so that a newer callstate breaks nothing.

    At most once per event id: the ids of the last `remember` events are kept (in memory, so a
    restart of the app may emit again what the relay's cursor or a redelivery brings back)."""

    def __init__(self, socketio, presence_rooms=None, remember=10000):
        self.socketio = socketio
        self.presence_rooms = presence_rooms or (lambda presence: [user_room(presence['user'])])
        self.remember = remember
        self._seen = collections.OrderedDict()
        self._lock = threading.Lock()

    def _first_time(self, event_id):
        with self._lock:
            if event_id in self._seen:
                self._seen.move_to_end(event_id)
                return False
            self._seen[event_id] = True
            if len(self._seen) > self.remember:
                self._seen.popitem(last=False)
            return True

    def rooms_of(self, event):
        if event['type'] == 'presence.changed':
            return list(self.presence_rooms(event['data']))
        return sorted({user_room(m['user']) for m in event['data']['members']})

    def dispatch(self, event):
        """Emit one event (a dict as GET /v1/events gives it); False if it was seen before or
        its type is unknown."""
        name = SOCKET_EVENTS.get(event.get('type'))
        if name is None or not self._first_time(event['id']):
            return False
        for room in self.rooms_of(event):
            self.socketio.emit(name, event, to=room)
        return True


class SignatureError(Exception):
    """A push that is not callstate's: refused with 401."""


class WebhookVerifier:
    """Standard Webhooks: webhook-signature holds space-separated "v1,<base64 HMAC-SHA256 of
    'id.timestamp.body'>", keyed by the base64 after "whsec_" of CALLSTATE_EVENTS_SECRET;
    webhook-timestamp (Unix seconds) more than tolerance_s away from now is refused, so that
    a captured push cannot be replayed later (within that window, the fanout's memory of ids
    stops a replay)."""

    def __init__(self, secret, tolerance_s=300):
        if not secret.startswith('whsec_'):
            raise ValueError('the events secret must start with whsec_')
        try:
            self.key = base64.b64decode(secret[len('whsec_'):], validate=True)
        except binascii.Error as e:
            raise ValueError('the events secret is not base64 after whsec_') from e
        self.tolerance_s = tolerance_s

    def verify(self, headers, body, now=None):
        msg_id = headers.get('webhook-id', '')
        stamp = headers.get('webhook-timestamp', '')
        signatures = headers.get('webhook-signature', '')
        if not msg_id or not (stamp.isascii() and stamp.isdigit()) or not signatures:
            raise SignatureError('missing or malformed webhook headers')
        if abs((time.time() if now is None else now) - int(stamp)) > self.tolerance_s:
            raise SignatureError('webhook-timestamp too old or too new')
        mac = hmac.new(self.key, f'{msg_id}.{stamp}.'.encode() + body, hashlib.sha256)
        expected = base64.b64encode(mac.digest()).decode()
        for sig in signatures.split(' '):
            version, _, value = sig.partition(',')
            if version == 'v1' and hmac.compare_digest(value, expected):
                return
        raise SignatureError('no valid signature')


def _error(status, code, message):
    return flask.jsonify({'error': {'code': code, 'message': message}}), status


def events_blueprint(fanout, secret, path='/callstate/events', max_body_bytes=1 << 20,
                     name='callstate_events'):
    """The endpoint of CALLSTATE_EVENTS_URL: 204 once the event is emitted (or was before),
    401 for a push not signed by `secret` or outside the time window, 400 for a body that is
    not an event, 413 over max_body_bytes."""
    bp = flask.Blueprint(name, __name__)
    verifier = WebhookVerifier(secret)

    @bp.post(path)
    def receive():
        body = flask.request.stream.read(max_body_bytes + 1)
        if len(body) > max_body_bytes:
            return _error(413, 'payload_too_large', f'over {max_body_bytes} bytes')
        try:
            verifier.verify(flask.request.headers, body)
        except SignatureError as e:
            return _error(401, 'unauthorized', str(e))
        try:
            event = json.loads(body)
            if not isinstance(event.get('id'), str) or not isinstance(event.get('data'), dict):
                raise ValueError('not an event')
        except (ValueError, AttributeError):
            return _error(400, 'bad_request', 'the body is not an event')
        fanout.dispatch(event)
        return '', 204

    return bp


class MemoryCursorStore:
    """Where the relay keeps the last seq it emitted. In memory: a restarted app reads the
    feed from the start again (and emits it again). Give EventRelay a store of your own, with
    the same two methods, backed by your database, to resume where it stopped."""

    def __init__(self, seq=0):
        self.seq = seq

    def load(self):
        return self.seq

    def save(self, seq):
        self.seq = seq


class EventRelay:
    """A thread that long-polls GET /v1/events?after=SEQ&wait=wait_s and hands every event to
    the fanout, saving the cursor after each page. On an error (callstate down, 503 when too
    many long polls wait) it waits backoff_s, doubling up to max_backoff_s. stop() cuts the
    poll in flight (its connection is the relay's own, a copy() of the client's) and returns
    at once, without emitting that poll's events or saving its cursor: the next start()
    resumes from the store's seq. The thread is a daemon: it does not hold the process's exit.
    Run one relay per deployment, not one per worker process: each fanout remembers only the
    ids it emitted itself."""

    def __init__(self, client, fanout, store=None, wait_s=25, limit=100, backoff_s=0.5,
                 max_backoff_s=30.0):
        self.client = client
        self.fanout = fanout
        self.store = store or MemoryCursorStore()
        self.wait_s = wait_s
        self.limit = limit
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.errors = 0
        self.last_error = None
        self._stopping = threading.Event()
        self._poller = None
        self._thread = None

    def start(self):
        if self.is_alive():
            raise RuntimeError('the relay runs already')
        self._stopping = threading.Event()
        self._poller = self.client.copy()
        self._poller.retries = 0  # a 503 waits in _relay's backoff, which stop() interrupts
        self._thread = threading.Thread(target=self._run, args=(self._stopping, self._poller),
                                        name='callstate-relay', daemon=True)
        self._thread.start()

    def stop(self, timeout_s=5.0):
        """Stop, waiting up to timeout_s for the thread to end (it ends at once unless it is
        emitting a page: the page is emitted, and its cursor saved, first)."""
        self._stopping.set()
        if self._thread:
            self._poller.cancel()
            self._thread.join(timeout_s)

    def is_alive(self):
        return bool(self._thread and self._thread.is_alive())

    def _run(self, stopping, poller):
        try:
            self._relay(stopping, poller)
        finally:
            poller.close()

    def _relay(self, stopping, poller):
        after = self.store.load()
        delay = self.backoff_s
        while not stopping.is_set():
            try:
                events = poller.events(after=after, limit=self.limit, wait_s=self.wait_s)
            except (CallstateError, OSError, ValueError) as e:
                # requests' exceptions are OSErrors; ValueError: a body that is not JSON.
                if stopping.is_set():
                    return  # cut by stop(): not an error
                self.errors += 1
                self.last_error = e
                stopping.wait(delay)
                delay = min(delay * 2, self.max_backoff_s)
                continue
            delay = self.backoff_s
            if stopping.is_set():
                return
            for event in events:
                self.fanout.dispatch(event)
                after = event['seq']
            if events:
                self.store.save(after)

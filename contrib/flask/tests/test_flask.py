"""The Flask side of callstate, against the real binary: a whole call through the blueprint,
its events reaching the right users' Socket.IO clients from the relay and from callstate's own
pushes to the app served over loopback HTTP, redeliveries emitted once, forged and replayed
pushes refused, 503s retried, the relay stopped mid-poll at once and losing nothing."""
import base64
import hashlib
import hmac
import io
import json
import re
import secrets
import threading
import time

import flask
import pytest
import requests
from werkzeug.serving import make_server

from callstate_flask import (SOCKET_EVENTS, CallstateClient, CallstateError, EventFanout,
                             EventRelay, MemoryCursorStore, calls_blueprint)
from example_app import create_app

EVENTS_SECRET = 'whsec_' + base64.b64encode(secrets.token_bytes(32)).decode()


def new_users(n):
    tag = secrets.token_hex(4)
    return [f'u{i}-{tag}' for i in range(1, n + 1)]


class Browser:
    """One signed-in user: the React app's HTTP calls and its Socket.IO connection."""

    def __init__(self, app, socketio, user):
        self.user = user
        self.http = app.test_client()
        assert self.http.post('/login', json={'user': user}).status_code == 204
        self.sio = socketio.test_client(app, flask_test_client=self.http)
        assert self.sio.is_connected()

    def post(self, path, json=None, status=200):
        r = self.http.post('/api' + path, json=json or {})
        assert r.status_code == status, r.get_data(as_text=True)
        return r.get_json()

    def received(self):
        """Every (name, event) received so far. Read off the test client's queue, which only
        grows: its get_received() would empty it, and could drop a packet that another
        thread (the relay, a push) appends meanwhile."""
        return [(m['name'], m['args'][0]) for m in list(self.sio.queue)]

    def names(self, call_id):
        return [name for name, ev in self.received() if ev['call_id'] == call_id]


def wait_for(what, timeout_s=10):
    deadline = time.monotonic() + timeout_s
    while not what():
        assert time.monotonic() < deadline, 'timed out'
        time.sleep(0.05)


def ended_for(browsers, call_id):
    return lambda: all('call:ended' in b.names(call_id) for b in browsers)


@pytest.fixture
def relayed(callstate):
    app, socketio, relay = create_app(callstate.url, callstate.token)
    relay.start()
    yield app, socketio
    relay.stop()
    assert not relay.is_alive()
    assert relay.errors == 0, relay.last_error


def test_whole_call_through_the_blueprint_and_the_relay(relayed):
    app, socketio = relayed
    a, b, c = (Browser(app, socketio, u) for u in new_users(3))

    started = a.post('/calls', {'callees': [b.user], 'kind': 'video'}, status=201)
    call = started['call']
    assert started['token'] and started['url']
    assert (call['caller'], call['status'], call['kind']) == (a.user, 'ringing', 'video')
    accepted = b.post(f"/calls/{call['id']}/accept")
    assert accepted['token'] and accepted['call']['status'] == 'active'
    assert b.post(f"/calls/{call['id']}/token")['token']
    c.post(f"/calls/{call['id']}/accept", status=403)
    left = a.post(f"/calls/{call['id']}/leave")
    assert (left['status'], left['outcome']) == ('ended', 'completed')
    b.post(f"/calls/{call['id']}/accept", status=409)

    history = a.http.get('/api/calls?limit=5').get_json()
    assert [(x['id'], x['outcome']) for x in history['calls']] == [(call['id'], 'completed')]

    wait_for(ended_for([a, b], call['id']))
    time.sleep(0.3)  # anything more, or twice, would have come by now
    for who in (a, b):
        assert who.names(call['id']) == ['call:incoming', 'call:accepted', 'call:active',
                                         'call:ended']
    assert c.received() == [], 'nothing for a user who is not in the call'
    last = [ev for name, ev in a.received() if name == 'call:ended'][0]
    assert last['data']['outcome'] == 'completed' and last['type'] == 'call.ended'


def test_declined_call_and_presence_through_the_relay(relayed, callstate):
    app, socketio = relayed
    a, b, c = (Browser(app, socketio, u) for u in new_users(3))
    call = a.post('/calls', {'callees': [b.user, c.user]}, status=201)['call']
    b.post(f"/calls/{call['id']}/decline")
    assert c.post(f"/calls/{call['id']}/decline")['outcome'] == 'declined'
    CallstateClient(callstate.url, callstate.token).set_presence(b.user, 'away')

    wait_for(ended_for([a, b, c], call['id']))
    wait_for(lambda: any(name == 'presence:changed' for name, _ in b.received()))
    time.sleep(0.3)
    for who in (a, b, c):
        assert who.names(call['id']) == ['call:incoming', 'call:declined', 'call:declined',
                                         'call:ended']
    presence = [(name, ev['data']) for name, ev in b.received() if ev['call_id'] is None]
    assert presence == [('presence:changed', {**presence[0][1], 'user': b.user,
                                              'status': 'away'})]
    assert not [n for n, ev in a.received() + c.received() if n == 'presence:changed']


def test_room_joins_and_missed_invites_through_the_relay(relayed, callstate):
    app, socketio = relayed
    a, b, c = (Browser(app, socketio, u) for u in new_users(3))
    call = a.post('/calls', {'callees': [b.user]}, status=201)['call']
    b.post(f"/calls/{call['id']}/accept")
    now = time.time()
    callstate.livekit_webhook({
        'event': 'participant_joined', 'id': 'EV_' + secrets.token_hex(6),
        'createdAt': str(int(now)), 'room': {'sid': 'RM_flask', 'name': call['room']},
        'participant': {'sid': 'PA_' + secrets.token_hex(6), 'identity': b.user,
                        'state': 'ACTIVE', 'joinedAt': str(int(now)),
                        'joinedAtMs': str(int(now * 1000))}})
    wait_for(lambda: all('call:member_joined' in w.names(call['id']) for w in (a, b)))

    client = CallstateClient(callstate.url, callstate.token)
    missed = client.create_call(a.user, [c.user], ring_timeout_s=5)['call']
    wait_for(ended_for([a, c], missed['id']), timeout_s=15)
    time.sleep(0.3)
    for who in (a, b):
        assert who.names(call['id']) == ['call:incoming', 'call:accepted', 'call:active',
                                         'call:member_joined']
    for who in (a, c):
        assert who.names(missed['id']) == ['call:incoming', 'call:missed', 'call:ended']
    assert [ev['data']['outcome'] for n, ev in c.received() if n == 'call:ended'] == ['missed']
    assert b.names(missed['id']) == [] and c.names(call['id']) == []


def test_blueprint_refuses_who_is_not_signed_in_and_passes_callstate_errors(callstate):
    app, socketio, _ = create_app(callstate.url, callstate.token)
    anonymous = app.test_client()
    r = anonymous.post('/api/calls', json={'callees': ['x']})
    assert r.status_code == 401 and r.get_json()['error']['code'] == 'unauthorized'
    assert not socketio.test_client(app, flask_test_client=anonymous).is_connected()

    a = Browser(app, socketio, new_users(1)[0])
    err = a.post('/calls/0193aaaa-0000-7000-8000-000000000000/accept', status=404)['error']
    assert err['code'] == 'not_found'
    err = a.post('/calls', {'callees': [a.user]}, status=400)['error']
    assert err['code'] == 'bad_request' and 'callees' in err['message']
    err = a.post('/calls', {'callees': 'bo'}, status=400)['error']
    assert err['code'] == 'bad_request' and 'callees' in err['message']

    with pytest.raises(CallstateError) as e:
        CallstateClient(callstate.url, 'svc-not-a-token').get_call('x')
    assert (e.value.status, e.value.code) == (401, 'unauthorized')
    bad = create_app(callstate.url, 'svc-not-a-token')[0].test_client()
    bad.post('/login', json={'user': 'u'})
    r = bad.get('/api/calls')
    assert r.status_code == 502, 'a wrong service token is not the browser\'s 401'


def test_display_name_names_the_user_in_livekit_tokens(callstate):
    app = flask.Flask(__name__)
    user = new_users(1)[0]
    client = CallstateClient(callstate.url, callstate.token)
    app.register_blueprint(calls_blueprint(client, lambda: user, lambda u: f'Name of {u}'))
    answer = app.test_client().post('/calls', json={'callees': ['someone-' + user]})
    assert answer.status_code == 201
    claims = answer.get_json()['token'].split('.')[1]
    claims = json.loads(base64.urlsafe_b64decode(claims + '=' * (-len(claims) % 4)))
    assert (claims['sub'], claims['name']) == (user, f'Name of {user}')


def sign(event_id, stamp, body, secret=EVENTS_SECRET):
    key = base64.b64decode(secret[len('whsec_'):])
    mac = hmac.new(key, f'{event_id}.{stamp}.'.encode() + body, hashlib.sha256).digest()
    return 'v1,' + base64.b64encode(mac).decode()


def push(http, event, stamp=None, signature=None, body=None, headers=None):
    body = json.dumps(event).encode() if body is None else body
    stamp = str(int(time.time())) if stamp is None else str(stamp)
    h = {'webhook-id': event['id'], 'webhook-timestamp': stamp,
         'webhook-signature': signature or sign(event['id'], stamp, body),
         'Content-Type': 'application/json'}
    h.update(headers or {})
    return http.post('/callstate/events', data=body, headers={k: v for k, v in h.items() if v})


def test_pushed_events_reach_the_members_once_and_forgeries_do_not(callstate):
    app, socketio, relay = create_app(callstate.url, callstate.token, EVENTS_SECRET)
    assert relay is None
    a, b, c = (Browser(app, socketio, u) for u in new_users(3))
    client = CallstateClient(callstate.url, callstate.token)
    call = client.create_call(a.user, [b.user])['call']
    client.accept(call['id'], b.user)
    client.end(call['id'], a.user)
    # The events as callstate has them, pushed as callstate pushes them (API.md).
    events = [e for e in client.events(after=0, limit=500) if e['call_id'] == call['id']]
    assert [e['type'] for e in events] == ['call.ringing', 'call.accepted', 'call.active',
                                           'call.ended']
    pusher = app.test_client()
    ringing, accepted, active, ended = events

    assert push(pusher, ringing).status_code == 204
    assert push(pusher, ringing).status_code == 204, 'a redelivery is acknowledged'
    stamp = int(time.time())
    body = json.dumps(accepted).encode()
    several = f'v2,abc v1,{base64.b64encode(b"x" * 32).decode()} {sign(accepted["id"], stamp, body)}'
    assert push(pusher, accepted, stamp=stamp, signature=several).status_code == 204

    forged = {**active, 'data': {**active['data'], 'members': [{'user': c.user}]}}
    refused = [
        push(pusher, active, signature=sign(active['id'], int(time.time()), json.dumps(forged).encode())),
        push(pusher, active, body=json.dumps(forged).encode(),
             signature=sign(active['id'], int(time.time()), json.dumps(active).encode())),
        push(pusher, active, signature=sign(
            active['id'], int(time.time()), json.dumps(active).encode(),
            'whsec_' + base64.b64encode(secrets.token_bytes(32)).decode())),
        push(pusher, active, stamp=int(time.time()) - 301),   # a replay, well signed
        push(pusher, active, stamp=int(time.time()) + 301),
        push(pusher, active, headers={'webhook-signature': ''}),
        push(pusher, active, headers={'webhook-timestamp': ''}),
        push(pusher, active, headers={'webhook-timestamp': '\u00b2'}),
        push(pusher, {**active, 'id': ''}, headers={'webhook-id': ''}),
    ]
    assert [r.status_code for r in refused] == [401] * len(refused)
    assert a.names(call['id']) == ['call:incoming', 'call:accepted']

    assert push(pusher, active).status_code == 204
    assert push(pusher, ended).status_code == 204
    assert push(pusher, ended, stamp=int(time.time()) - 299).status_code == 204
    for who in (a, b):
        assert who.names(call['id']) == ['call:incoming', 'call:accepted', 'call:active',
                                         'call:ended']
    assert c.received() == []
    huge = json.dumps({**active, 'pad': 'x' * (1 << 20)}).encode()
    r = push(pusher, active, body=huge, signature=sign(active['id'], int(time.time()), huge))
    assert r.status_code == 413
    not_json = b'{"id": "x"'
    assert push(pusher, {'id': 'x'}, body=not_json).status_code == 400


def long_polls_waiting(server, admin_token):
    text = requests.get(server.url + '/metrics', timeout=10,
                        headers={'Authorization': f'Bearer {admin_token}'}).text
    return int(re.search(r'^callstate_long_polls_waiting (\d+)$', text, re.M).group(1))


def test_relay_resumes_from_its_store_and_backs_off_on_503(callstate_factory):
    admin = 'adm-' + secrets.token_hex(16)
    server = callstate_factory(CALLSTATE_LONG_POLLS='1', CALLSTATE_ADMIN_TOKENS=admin)
    client = CallstateClient(server.url, server.token, retries=0)
    app, socketio, _ = create_app(server.url, server.token)
    a, b = (Browser(app, socketio, u) for u in new_users(2))

    first = client.create_call(a.user, [b.user])['call']
    client.decline(first['id'], b.user)
    store = MemoryCursorStore()  # stands in for one that outlives the app
    relay = EventRelay(client, EventFanout(socketio), store, wait_s=1)
    relay.start()
    wait_for(ended_for([a], first['id']))
    relay.stop()
    assert not relay.is_alive() and store.load() > 0
    # callstate does not see that the poll stop() cut is gone: it keeps its place till wait_s.
    wait_for(lambda: long_polls_waiting(server, admin) == 0)

    # The one long-poll place taken: a poll more is refused, the relay backs off and retries.
    hold = threading.Thread(target=client.events, kwargs={'after': 10 ** 9, 'wait_s': 3})
    hold.start()
    time.sleep(0.3)
    with pytest.raises(CallstateError) as e:
        client.events(after=10 ** 9, wait_s=1)
    assert (e.value.status, e.value.code) == (503, 'unavailable')
    patient = CallstateClient(server.url, server.token, retries=6, backoff_s=0.2)
    assert patient.events(after=10 ** 9, wait_s=1) == [], 'retried until the place was free'
    hold.join()

    hold = threading.Thread(target=client.events, kwargs={'after': 10 ** 9, 'wait_s': 2})
    hold.start()
    time.sleep(0.3)
    # After a restart of the app: a new fanout (no memory of ids), the same store.
    relay = EventRelay(client, EventFanout(socketio), store, wait_s=1, backoff_s=0.2)
    relay.start()
    second = client.create_call(a.user, [b.user])['call']
    client.leave(second['id'], a.user)
    wait_for(ended_for([a, b], second['id']))
    hold.join()
    relay.stop()
    assert relay.errors >= 1 and relay.last_error.status == 503
    assert a.names(first['id']) == ['call:incoming', 'call:declined', 'call:ended'], \
        'the first call is not emitted again'
    assert a.names(second['id']) == ['call:incoming', 'call:ended']


def feed(client, after=0):
    """Every event of the feed past `after`, as GET /v1/events pages it."""
    events = []
    while True:
        page = client.events(after=after, limit=500)
        events += page
        if len(page) < 500:
            return events
        after = page[-1]['seq']


class Receiver:
    """The example app served over real HTTP on loopback, at the URL callstate pushes to. It
    logs every push as (webhook-id, type, status answered). The first push of each type in
    lose_first_answer is handled (its event emitted) and then answered 500, as if the answer
    had been lost on its way back: callstate must send it again, and the app emit it once."""

    def __init__(self, lose_first_answer):
        self.app = None  # set once callstate, whose URL the app needs, is up: 503 till then
        self.pushes = []
        self._to_lose = set(lose_first_answer)
        self._lock = threading.Lock()
        self.server = make_server('127.0.0.1', 0, self, threaded=True)
        self.url = f'http://127.0.0.1:{self.server.server_port}/callstate/events'
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def __call__(self, environ, start_response):
        if self.app is None:
            start_response('503 Service Unavailable', [('Content-Length', '0')])
            return [b'']
        body = environ['wsgi.input'].read(int(environ.get('CONTENT_LENGTH') or 0))
        environ['wsgi.input'] = io.BytesIO(body)
        answer = []
        chunks = self.app(environ, lambda status, headers, exc_info=None:
                          answer.extend((status, headers)))
        content = b''.join(chunks)
        status, headers = answer
        event_type = json.loads(body).get('type') if body.startswith(b'{') else None
        with self._lock:
            if status.startswith('204') and event_type in self._to_lose:
                self._to_lose.discard(event_type)
                status, headers, content = '500 Internal Server Error', [], b''
            self.pushes.append((environ.get('HTTP_WEBHOOK_ID'), event_type, int(status[:3])))
        start_response(status, [(k, v) for k, v in headers if k.lower() != 'content-length']
                       + [('Content-Length', str(len(content)))])
        return [content]

    def answered(self):
        with self._lock:
            return list(self.pushes)

    def close(self):
        self.server.shutdown()
        self.server.server_close()
        self._thread.join()


@pytest.fixture
def receiver():
    r = Receiver(lose_first_answer={'call.accepted', 'call.ended'})
    yield r
    r.close()


def livekit_participant(server, event, room, user):
    now = time.time()
    server.livekit_webhook({
        'event': event, 'id': 'EV_' + secrets.token_hex(6), 'createdAt': str(int(now)),
        'room': {'sid': 'RM_' + room[-8:], 'name': room},
        'participant': {'sid': 'PA_' + hashlib.sha256(user.encode()).hexdigest()[:12],
                        'identity': user, 'state': 'ACTIVE', 'joinedAt': str(int(now)),
                        'joinedAtMs': str(int(now * 1000))}})


def test_callstate_pushes_a_whole_call_to_the_example_app_over_http(receiver, callstate_factory):
    server = callstate_factory(CALLSTATE_EVENTS_URL=receiver.url,
                               CALLSTATE_EVENTS_SECRET=EVENTS_SECRET)
    app, socketio, relay = create_app(server.url, server.token, EVENTS_SECRET)
    assert relay is None
    receiver.app = app
    a, b, c, d = (Browser(app, socketio, u) for u in new_users(4))

    call = a.post('/calls', {'callees': [b.user, c.user], 'kind': 'video'}, status=201)['call']
    b.post(f"/calls/{call['id']}/accept")
    c.post(f"/calls/{call['id']}/decline")
    livekit_participant(server, 'participant_joined', call['room'], a.user)
    livekit_participant(server, 'participant_joined', call['room'], b.user)
    livekit_participant(server, 'participant_left', call['room'], b.user)
    assert b.post(f"/calls/{call['id']}/leave")['status'] == 'active'
    assert a.post(f"/calls/{call['id']}/leave")['outcome'] == 'completed'
    livekit_participant(server, 'participant_left', call['room'], a.user)

    client = CallstateClient(server.url, server.token)
    events = feed(client)
    delivered = lambda: {i for i, _, status in receiver.answered() if status == 204}
    wait_for(lambda: delivered() >= {e['id'] for e in events}, timeout_s=20)
    time.sleep(0.3)  # anything more, or twice, would have come by now
    of_call = [e for e in events if e['call_id'] == call['id']]
    assert [e['type'] for e in of_call] == [
        'call.ringing', 'call.accepted', 'call.active', 'call.declined', 'call.member_joined',
        'call.member_joined', 'call.member_left', 'call.ended', 'call.member_left']
    for who in (a, b, c):
        got = [(name, ev) for name, ev in who.received() if ev['call_id'] == call['id']]
        assert got == [(SOCKET_EVENTS[e['type']], e) for e in of_call], \
            'each event of the call, as the feed has it, once, in order'
        presence = [e for e in events if e['type'] == 'presence.changed'
                    and e['data']['user'] == who.user]
        assert [ev for name, ev in who.received() if name == 'presence:changed'] == presence
    assert [(e['data']['user'], e['data']['status']) for e in events
            if e['type'] == 'presence.changed'] == [
        (a.user, 'in_call'), (b.user, 'in_call'), (b.user, 'offline'), (a.user, 'offline')]
    assert d.received() == [], 'nothing for a user who is not in the call'

    pushes = receiver.answered()
    for lost in ('call.accepted', 'call.ended'):
        tries = [(i, status) for i, t, status in pushes if t == lost]
        event_id = next(e['id'] for e in of_call if e['type'] == lost)
        assert tries == [(event_id, 500), (event_id, 204)], 'sent again after a lost answer'
    assert all(status in (204, 500) for _, _, status in pushes)


class RecordingFanout(EventFanout):
    """An EventFanout that notes the seq of every event handed to it, once it is emitted."""

    def __init__(self, socketio):
        super().__init__(socketio)
        self.seqs = []

    def dispatch(self, event):
        emitted = super().dispatch(event)
        self.seqs.append(event['seq'])
        return emitted


def stop_timed(relay):
    began = time.monotonic()
    relay.stop()
    took = time.monotonic() - began
    assert not relay.is_alive()
    return took


def test_relay_stops_mid_poll_at_once_and_resumes_where_it_stopped(callstate):
    client = CallstateClient(callstate.url, callstate.token)
    app, socketio, _ = create_app(callstate.url, callstate.token)
    a, b = (Browser(app, socketio, u) for u in new_users(2))
    start = max([e['seq'] for e in feed(client)], default=0)
    fanout = RecordingFanout(socketio)
    relay = EventRelay(client, fanout, MemoryCursorStore(start))  # long polls of 25 s
    relay.start()
    first = client.create_call(a.user, [b.user])['call']
    client.decline(first['id'], b.user)
    of_first = [e['seq'] for e in feed(client, start)]
    wait_for(lambda: fanout.seqs == of_first)
    time.sleep(0.5)  # the relay waits in its next long poll, with nothing to come
    assert stop_timed(relay) < 1.0, 'stop() waited for the long poll'

    # Events come while the relay is stopped, and while it stops and starts again and again.
    busy = threading.Event()

    def make_calls():
        while not busy.is_set():
            call = client.create_call(a.user, [b.user])['call']
            client.leave(call['id'], a.user)

    maker = threading.Thread(target=make_calls)
    maker.start()
    try:
        for _ in range(10):
            relay.start()
            time.sleep(0.2)
            assert stop_timed(relay) < 1.0
    finally:
        busy.set()
        maker.join()
    relay.start()
    try:
        expected = [e['seq'] for e in feed(client, start)]
        wait_for(lambda: fanout.seqs[-1:] == expected[-1:])
    finally:
        assert stop_timed(relay) < 1.0
    assert fanout.seqs == expected, 'every event once, in order, across the stops and starts'
    assert [ev['seq'] for _, ev in a.received()] == expected, 'a is in every call'
    assert relay.errors == 0, relay.last_error


def test_relay_stops_at_once_while_it_backs_off_from_503(callstate_factory):
    server = callstate_factory(CALLSTATE_LONG_POLLS='1')
    patient = CallstateClient(server.url, server.token, retries=5, backoff_s=1.0)
    app, socketio, _ = create_app(server.url, server.token)
    hold = threading.Thread(target=patient.copy().events,
                            kwargs={'after': 10 ** 9, 'wait_s': 3})
    hold.start()
    time.sleep(0.3)
    relay = EventRelay(patient, EventFanout(socketio), backoff_s=10)
    relay.start()
    wait_for(lambda: relay.errors == 1)
    assert relay.last_error.status == 503, 'the relay backs off itself, not in the client'
    assert stop_timed(relay) < 1.0, 'stop() waited for the backoff'
    hold.join()

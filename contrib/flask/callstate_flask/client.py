"""A client for callstate's REST API (API.md): one requests.Session, so connections are kept
alive; callstate's errors raised as CallstateError with their `code`; 503 retried with backoff.

A 503 from callstate means nothing was done (storage unavailable, or too many long polls), so a
retry is safe; create_call also sends an Idempotency-Key, so that a retry after a lost answer
cannot make a second call."""
import copy
import socket
import threading
import time
import uuid
import weakref
from urllib.parse import quote

import requests
from requests.adapters import HTTPAdapter


class CallstateError(Exception):
    """An error answer of callstate: `status` (HTTP), `code` (e.g. "not_found", "conflict"),
    `message` and the `request_id` to look for in callstate's log."""

    def __init__(self, status, code, message, request_id=None):
        super().__init__(f'{status} {code}: {message}')
        self.status = status
        self.code = code
        self.message = message
        self.request_id = request_id


def _path(*parts):
    return '/'.join(quote(p, safe='') for p in parts)


class CallstateClient:
    """base_url like "http://127.0.0.1:8080"; token: one of CALLSTATE_SERVICE_TOKENS.
    retries: how many times a 503 is tried again, after backoff_s, doubling each time (or the
    answer's Retry-After, if longer), capped at max_backoff_s."""

    def __init__(self, base_url, token, timeout_s=10.0, retries=3, backoff_s=0.2,
                 max_backoff_s=5.0):
        self.base_url = base_url.rstrip('/')
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.session = requests.Session()
        self.session.headers['Authorization'] = f'Bearer {token}'
        self._mount_cancellable()

    def _mount_cancellable(self):
        adapter = _CancellableAdapter()
        self.session.mount('http://', adapter)
        self.session.mount('https://', adapter)

    def close(self):
        self.session.close()

    def copy(self):
        """This client on connections of its own: a session with the same headers, auth, TLS
        and proxy settings, so that its cancel() leaves this client's requests alone."""
        twin = copy.copy(self)
        twin.session = requests.Session()
        for setting in ('headers', 'auth', 'proxies', 'verify', 'cert', 'trust_env'):
            setattr(twin.session, setting, copy.copy(getattr(self.session, setting)))
        twin._mount_cancellable()
        return twin

    def cancel(self):
        """Ends this client's requests in flight at once, and fails every later one: they
        raise requests.ConnectionError. For a long poll that must stop now; a client used by
        others is cancelled for them too, hence copy()."""
        for adapter in set(self.session.adapters.values()):
            if isinstance(adapter, _CancellableAdapter):
                adapter.cancel()

    def request(self, method, path, json=None, params=None, headers=None, timeout_s=None):
        """One call of callstate's API: the parsed JSON answer, or CallstateError."""
        delay = self.backoff_s
        for attempt in range(self.retries + 1):
            r = self.session.request(method, self.base_url + path, json=json, params=params,
                                     headers=headers, timeout=timeout_s or self.timeout_s)
            if r.status_code != 503 or attempt == self.retries:
                break
            r.close()
            time.sleep(min(max(delay, _retry_after(r)), self.max_backoff_s))
            delay *= 2
        if r.ok:
            return r.json()
        raise _error_of(r)

    def create_call(self, caller, callees, kind='audio', chat_id=None, caller_name=None,
                    metadata=None, ring_timeout_s=None, idempotency_key=None):
        body = {'caller': caller, 'callees': callees, 'kind': kind}
        optional = {'chat_id': chat_id, 'caller_name': caller_name, 'metadata': metadata,
                    'ring_timeout_s': ring_timeout_s}
        body.update({k: v for k, v in optional.items() if v is not None})
        key = idempotency_key or str(uuid.uuid4())
        return self.request('POST', '/v1/calls', json=body, headers={'Idempotency-Key': key})

    def get_call(self, call_id):
        return self.request('GET', '/v1/' + _path('calls', call_id))

    def _act(self, call_id, action, user, name=None):
        body = {'user': user} if name is None else {'user': user, 'name': name}
        return self.request('POST', '/v1/' + _path('calls', call_id, action), json=body)

    def accept(self, call_id, user, name=None):
        return self._act(call_id, 'accept', user, name)

    def decline(self, call_id, user):
        return self._act(call_id, 'decline', user)

    def token(self, call_id, user, name=None):
        return self._act(call_id, 'token', user, name)

    def leave(self, call_id, user):
        return self._act(call_id, 'leave', user)

    def end(self, call_id, user):
        return self._act(call_id, 'end', user)

    def user_calls(self, user, status=None, limit=None, cursor=None):
        params = {k: v for k, v in (('status', status), ('limit', limit), ('cursor', cursor))
                  if v is not None}
        return self.request('GET', '/v1/' + _path('users', user, 'calls'), params=params)

    def set_presence(self, user, status):
        return self.request('PUT', '/v1/' + _path('presence', user), json={'status': status})

    def events(self, after=0, limit=None, wait_s=0):
        """The feed past `after`; with wait_s, a long poll (the read timeout allows for it)."""
        params = {'after': after, 'wait': wait_s}
        if limit is not None:
            params['limit'] = limit
        return self.request('GET', '/v1/events', params=params,
                            timeout_s=self.timeout_s + wait_s)['events']


class _CancellableAdapter(HTTPAdapter):
    """Keeps the sockets of its connections, so that cancel() can shut them down from another
    thread: a recv blocked in one thread returns when another shuts its socket down, not when
    it closes it. A connection made after cancel() is shut down as soon as it is made."""

    def __init__(self):
        self._lock = threading.Lock()
        self._sockets = weakref.WeakSet()
        self._cancelled = False
        self._tracking = {}  # a pool class -> its subclass whose connections report here
        super().__init__()

    def _tracking_pool(self, pool):
        if pool in self._tracking.values():
            return pool
        if pool not in self._tracking:
            adapter = self

            class Connection(pool.ConnectionCls):
                def connect(self):
                    super().connect()
                    adapter._opened(self.sock)

            self._tracking[pool] = type(pool.__name__, (pool,), {'ConnectionCls': Connection})
        return self._tracking[pool]

    def _track(self, manager):
        manager.pool_classes_by_scheme = {
            scheme: self._tracking_pool(pool)
            for scheme, pool in manager.pool_classes_by_scheme.items()}
        return manager

    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        self._track(self.poolmanager)

    def proxy_manager_for(self, proxy, **proxy_kwargs):
        return self._track(super().proxy_manager_for(proxy, **proxy_kwargs))

    def _opened(self, sock):
        with self._lock:
            self._sockets.add(sock)
            if self._cancelled:
                _shut(sock)

    def cancel(self):
        with self._lock:
            self._cancelled = True
            for sock in self._sockets:
                _shut(sock)


def _shut(sock):
    try:  # socket.socket's own: an SSLSocket's would drop its TLS state under another thread
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:  # closed already
        pass


def _retry_after(r):
    try:
        return float(r.headers.get('Retry-After', 0))
    except ValueError:
        return 0.0


def _error_of(r):
    request_id = r.headers.get('X-Request-Id')
    try:
        err = r.json()['error']
        return CallstateError(r.status_code, err['code'], err['message'], request_id)
    except (ValueError, KeyError, TypeError):
        return CallstateError(r.status_code, 'internal', r.text[:200], request_id)

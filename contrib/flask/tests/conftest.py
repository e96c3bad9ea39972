"""A real `callstate serve` for the tests, as tests/http/harness.js starts one: a free loopback
port, a temp dir with its SQLite database (or, with CALLSTATE_TEST_BACKEND=postgres, a database
of its own on CALLSTATE_TEST_PG_URL's server), fresh random tokens; SIGTERM must end it with
status 0, and no token may appear in its log."""
import base64
import hashlib
import hmac
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import pytest
import requests

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # callstate_flask and example_app, from the tree

BIN = os.environ.get('CALLSTATE_BIN', '')
BACKEND = os.environ.get('CALLSTATE_TEST_BACKEND', 'sqlite')
PG_URL = os.environ.get('CALLSTATE_TEST_PG_URL', '')


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def psql(sql):
    subprocess.run(['psql', f'{PG_URL}/postgres', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-c', sql],
                   check=True, capture_output=True)


class Callstate:
    def __init__(self, **settings):
        self.dir = tempfile.mkdtemp(prefix='callstate-flask-')
        self.port = free_port()
        self.url = f'http://127.0.0.1:{self.port}'
        self.token = 'svc-' + secrets.token_hex(16)
        self.livekit_key, self.livekit_secret = 'APIflask', secrets.token_hex(24)
        self.db = None
        if BACKEND == 'postgres':
            self.db = 'cs_flask_' + secrets.token_hex(6)
            psql(f'CREATE DATABASE {self.db}')
        env = {
            'PATH': os.environ.get('PATH', '/usr/bin:/bin'),
            'LIVEKIT_API_KEY': self.livekit_key,
            'LIVEKIT_API_SECRET': self.livekit_secret,
            'CALLSTATE_SERVICE_TOKENS': self.token,
            'CALLSTATE_DB': (f'{PG_URL}/{self.db}' if self.db
                             else 'sqlite:' + os.path.join(self.dir, 'callstate.db')),
            'CALLSTATE_LISTEN': f'127.0.0.1:{self.port}',
            **{k: os.environ[k] for k in ('ASAN_OPTIONS', 'UBSAN_OPTIONS') if k in os.environ},
            **settings,
        }
        self.log = open(os.path.join(self.dir, 'stderr'), 'w+b')
        self.proc = subprocess.Popen([BIN, 'serve'], env=env, stdout=subprocess.DEVNULL,
                                     stderr=self.log)
        try:
            self._wait_healthy(time.monotonic() + 20)
        except BaseException:
            self.proc.kill()
            self._remove()
            raise

    def _wait_healthy(self, deadline):
        while True:
            assert self.proc.poll() is None, f'callstate exited early: {self.stderr()}'
            try:
                if requests.get(self.url + '/healthz', timeout=1).status_code == 200:
                    return
            except requests.RequestException:  # not listening yet, or still starting up
                pass
            assert time.monotonic() < deadline, f'no /healthz: {self.stderr()}'
            time.sleep(0.05)

    def livekit_webhook(self, event):
        """POST one LiveKit webhook event, signed as the LiveKit server signs it (LIVEKIT.md)."""
        body = json.dumps(event).encode()
        seg = lambda o: base64.urlsafe_b64encode(json.dumps(o).encode()).rstrip(b'=').decode()
        now = int(time.time())
        claims = {'iss': self.livekit_key, 'nbf': now, 'exp': now + 300,
                  'sha256': base64.b64encode(hashlib.sha256(body).digest()).decode()}
        signing = seg({'alg': 'HS256', 'typ': 'JWT'}) + '.' + seg(claims)
        mac = hmac.new(self.livekit_secret.encode(), signing.encode(), hashlib.sha256).digest()
        jwt = signing + '.' + base64.urlsafe_b64encode(mac).rstrip(b'=').decode()
        r = requests.post(self.url + '/webhooks/livekit', data=body, timeout=10,
                          headers={'Authorization': jwt,
                                   'Content-Type': 'application/webhook+json'})
        assert r.status_code == 200, r.text

    def stderr(self):
        self.log.seek(0)
        return self.log.read().decode(errors='replace')

    def _remove(self):
        self.proc.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)
        if self.db:
            psql(f'DROP DATABASE IF EXISTS {self.db} WITH (FORCE)')

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = 'none within 15 s of SIGTERM'
        log = self.stderr()
        self._remove()
        assert code == 0, f'callstate exited {code}: {log}'
        assert self.token not in log, 'the service token was logged'


@pytest.fixture(scope='session')
def callstate():
    if not BIN:
        pytest.fail('CALLSTATE_BIN must name the callstate binary')
    server = Callstate()
    yield server
    server.stop()


@pytest.fixture
def callstate_factory():
    """Servers of a test's own, with settings of its own (stopped after the test)."""
    servers = []

    def make(**settings):
        servers.append(Callstate(**settings))
        return servers[-1]

    yield make
    stopped = []
    for s in servers:  # every one, even after one fails
        try:
            s.stop()
        except AssertionError as e:
            stopped.append(e)
    assert not stopped, stopped

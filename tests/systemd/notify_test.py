#!/usr/bin/env python3
"""callstate's systemd notifications, read from a NOTIFY_SOCKET of the test's own, as systemd
would read them (node has no AF_UNIX datagram sockets, hence Python).

  - READY=1 only once the port answers and the database is migrated: it must not come at all
    when the port is taken or a migration fails, and /readyz answers 200 the moment it comes;
  - WATCHDOG=1 every half of WATCHDOG_USEC after READY=1;
  - the pings stop while the database cannot take a write, the process staying up (systemd,
    not callstate, restarts it): on SQLite while every fdatasync fails, or hangs (the pings
    come back when it returns), by tests/powercut's LD_PRELOAD library; on PostgreSQL while
    its server is stopped (the pings come back once it runs again);
  - SIGTERM: STOPPING=1, no ping after it, exit 0.

Run by meson (tests/meson.build) on each backend: CALLSTATE_BIN, CALLSTATE_TEST_BACKEND,
CALLSTATE_POWERCUT_LIB; on PostgreSQL CALLSTATE_TEST_PG_URL, CALLSTATE_TEST_PG_DIR and
CALLSTATE_TEST_PG_PORT (tools/test sets them; tools/pg.sh stops and starts that server)."""
import os
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.request

BIN = os.environ.get('CALLSTATE_BIN', '')
BACKEND = os.environ.get('CALLSTATE_TEST_BACKEND', 'sqlite')
PG_URL = os.environ.get('CALLSTATE_TEST_PG_URL', '')
PG_SH = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'tools', 'pg.sh')
WATCHDOG_S = 1.0
START_TIMEOUT_S = 15.0


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def http_status(port, path):
    try:
        with urllib.request.urlopen(f'http://127.0.0.1:{port}{path}', timeout=5) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def psql(db, sql):
    subprocess.run(['psql', f'{PG_URL}/{db}', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-c', sql],
                   check=True, capture_output=True)


def pg_server(verb):
    subprocess.run(['bash', '-c', f'. "{PG_SH}" && pg_{verb}_server'], check=True,
                   env={**os.environ, 'PG_DIR': os.environ['CALLSTATE_TEST_PG_DIR'],
                        'PG_PORT': os.environ['CALLSTATE_TEST_PG_PORT']})


class Service:
    """One callstate serve with its own notify socket, database and port."""

    def __init__(self, test, env=None, port=None):
        self.dir = tempfile.mkdtemp(prefix='callstate-notify-')
        test.addCleanup(self.cleanup)
        self.port = port or free_port()
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(os.path.join(self.dir, 'notify'))
        self.db = None
        if BACKEND == 'postgres':
            self.db = 'cs_notify_' + secrets.token_hex(6)
            psql('postgres', f'CREATE DATABASE {self.db}')
        self.env = {
            'PATH': os.environ.get('PATH', '/usr/bin:/bin'),
            'LIVEKIT_API_KEY': 'APInotify',
            'LIVEKIT_API_SECRET': secrets.token_hex(24),
            'CALLSTATE_SERVICE_TOKENS': secrets.token_hex(16),
            'CALLSTATE_DB': (f'{PG_URL}/{self.db}' if self.db
                             else 'sqlite:' + os.path.join(self.dir, 'callstate.db')),
            'CALLSTATE_LISTEN': f'127.0.0.1:{self.port}',
            'NOTIFY_SOCKET': os.path.join(self.dir, 'notify'),
            'WATCHDOG_USEC': str(int(WATCHDOG_S * 1e6)),
            **(env or {}),
        }
        for k in ('ASAN_OPTIONS', 'UBSAN_OPTIONS'):
            if k in os.environ and k not in self.env:
                self.env[k] = os.environ[k]
        self.proc = None
        self.log = None

    def start(self):
        self.log = open(os.path.join(self.dir, 'stderr'), 'w+')
        self.proc = subprocess.Popen([BIN, 'serve'], env=self.env, stdout=self.log,
                                     stderr=subprocess.STDOUT)

    def receive(self, seconds, until_message=None):
        """The messages (time received, text) of the next seconds, or up to and including the
        first until_message."""
        got = []
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            self.sock.settimeout(left)
            try:
                message = self.sock.recv(4096).decode()
            except socket.timeout:
                break
            got.append((time.monotonic(), message))
            if message == until_message:
                break
        return got

    def stderr(self):
        self.log.seek(0)
        return self.log.read()

    def cleanup(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.log:
            self.log.close()
        self.sock.close()
        if self.db:
            psql('postgres', f'DROP DATABASE IF EXISTS {self.db} WITH (FORCE)')
        shutil.rmtree(self.dir, ignore_errors=True)


def names(messages):
    return [m for _, m in messages]


def ping_times(messages):
    return [t for t, m in messages if m == 'WATCHDOG=1']


class Notify(unittest.TestCase):
    def start_ready(self, svc):
        """Starts svc and checks that READY=1 comes with the port and the database ready."""
        svc.start()
        got = svc.receive(START_TIMEOUT_S, 'READY=1')
        self.assertIn('READY=1', names(got), 'no READY=1:\n' + svc.stderr())
        # At READY=1 the server must already answer, with the database migrated.
        self.assertEqual(http_status(svc.port, '/readyz'), 200, svc.stderr())
        self.assertEqual(names(got), ['READY=1'], 'READY=1 comes first, alone')

    def assert_pinging(self, svc, seconds):
        start = time.monotonic()
        got = svc.receive(seconds)
        times = ping_times(got)
        self.assertEqual(names(got), ['WATCHDOG=1'] * len(times), 'only pings while serving')
        # One every half interval: never a whole interval without one.
        gaps = [b - a for a, b in zip([start] + times, times + [start + seconds])]
        self.assertLess(max(gaps), WATCHDOG_S, f'pings {len(times)}, gaps {gaps}\n'
                        + svc.stderr())

    def assert_no_pings(self, svc, seconds, readyz=503):
        got = svc.receive(seconds)
        self.assertEqual(names(got), [], 'no ping while the database is dead\n' + svc.stderr())
        self.assertIsNone(svc.proc.poll(), 'the process is still up: systemd restarts it')
        self.assertEqual(http_status(svc.port, '/healthz'), 200)
        self.assertEqual(http_status(svc.port, '/readyz'), readyz)

    def assert_pings_again(self, svc):
        got = svc.receive(10, 'WATCHDOG=1')
        self.assertIn('WATCHDOG=1', names(got), 'pings again\n' + svc.stderr())
        self.assertLessEqual(set(names(got)), {'WATCHDOG=1'})
        self.assert_pinging(svc, 2 * WATCHDOG_S)

    def stop(self, svc):
        svc.proc.send_signal(signal.SIGTERM)
        got = names(svc.receive(10, 'STOPPING=1'))
        self.assertIn('STOPPING=1', got, 'no STOPPING=1 after SIGTERM\n' + svc.stderr())
        self.assertLessEqual(set(got[:-1]), {'WATCHDOG=1'}, got)
        self.assertEqual(svc.proc.wait(30), 0, svc.stderr())
        self.assertEqual(names(svc.receive(0.2)), [], 'nothing after STOPPING=1')

    def test_ready_then_pings_then_stopping(self):
        svc = Service(self)
        self.start_ready(svc)
        self.assert_pinging(svc, 3 * WATCHDOG_S)
        self.stop(svc)

    def test_no_ready_while_the_port_is_taken(self):
        with socket.socket() as taken:
            taken.bind(('127.0.0.1', 0))
            taken.listen()
            svc = Service(self, port=taken.getsockname()[1])
            svc.start()
            self.assertNotEqual(svc.proc.wait(START_TIMEOUT_S), 0, svc.stderr())
            self.assertEqual(names(svc.receive(0.2)), [],
                             'no READY=1 (nor anything) from a service that cannot listen')

    def test_no_ready_when_a_migration_fails(self):
        # A table of the first migration's is there already, with another shape.
        svc = Service(self)
        if BACKEND == 'postgres':
            psql(svc.db, 'CREATE TABLE calls (x int)')
        else:
            with sqlite3.connect(os.path.join(svc.dir, 'callstate.db')) as db:
                db.execute('CREATE TABLE calls (x int)')
        svc.start()
        self.assertNotEqual(svc.proc.wait(START_TIMEOUT_S), 0, svc.stderr())
        self.assertIn('migration failed', svc.stderr())
        self.assertEqual(names(svc.receive(0.2)), [],
                         'no READY=1 from a service whose database is not migrated')

    def sqlite_on_powercut_disk(self, trigger_variable):
        """A service whose disk (tests/powercut) misbehaves while a file exists: its path."""
        lib = os.environ.get('CALLSTATE_POWERCUT_LIB')
        if not lib:
            self.skipTest('needs CALLSTATE_POWERCUT_LIB (tests/powercut)')
        asan = ':'.join(filter(None, [os.environ.get('ASAN_OPTIONS'), 'verify_asan_link_order=0']))
        svc = Service(self, env={'LD_PRELOAD': lib, 'ASAN_OPTIONS': asan})
        trigger = os.path.join(svc.dir, 'disk-trouble')
        svc.env.update({'POWERCUT_DIR': svc.dir, trigger_variable: trigger})
        self.start_ready(svc)
        self.assert_pinging(svc, 2 * WATCHDOG_S)
        open(trigger, 'w').close()
        # A check under way when the trouble began may still ping, once, at once.
        svc.receive(WATCHDOG_S / 2)
        return svc, trigger

    @unittest.skipUnless(BACKEND == 'sqlite', 'SQLite')
    def test_no_pings_once_sqlite_cannot_sync(self):
        svc, _ = self.sqlite_on_powercut_disk('POWERCUT_FAIL_FILE')
        self.assert_no_pings(svc, 3 * WATCHDOG_S)
        self.stop(svc)

    @unittest.skipUnless(BACKEND == 'sqlite', 'SQLite')
    def test_no_pings_while_sqlite_sync_hangs(self):
        # The writer's batch waits for the syncer, stuck in fdatasync; the readers still
        # answer (/readyz is 200), so only a check through the writer sees it.
        svc, stall_file = self.sqlite_on_powercut_disk('POWERCUT_STALL_FILE')
        self.assert_no_pings(svc, 3 * WATCHDOG_S, readyz=200)
        os.unlink(stall_file)
        self.assert_pings_again(svc)
        self.stop(svc)

    @unittest.skipUnless(BACKEND == 'postgres', 'PostgreSQL')
    def test_no_pings_while_postgres_is_down(self):
        if not os.environ.get('CALLSTATE_TEST_PG_DIR'):
            self.skipTest('needs CALLSTATE_TEST_PG_DIR: the test server to stop')
        svc = Service(self)
        self.start_ready(svc)
        self.assert_pinging(svc, 2 * WATCHDOG_S)
        pg_server('stop')
        try:
            svc.receive(WATCHDOG_S / 2)
            self.assert_no_pings(svc, 3 * WATCHDOG_S)
        finally:
            pg_server('run')
        # Back by itself: the pings resume with no restart.
        self.assert_pings_again(svc)
        self.stop(svc)


if __name__ == '__main__':
    if not BIN:
        sys.exit('CALLSTATE_BIN: the callstate binary to test')
    if BACKEND == 'postgres' and not PG_URL:
        sys.exit('CALLSTATE_TEST_BACKEND=postgres needs CALLSTATE_TEST_PG_URL')
    unittest.main(verbosity=2)

#!/usr/bin/env bash
# Push throughput and commit-to-delivery latency (on demand, never in CI): a release callstate
# (SQLite, or BACKEND=postgres on a throwaway PostgreSQL server from tools/pg.sh) pushing to
# bench/push.mjs's receiver. Knobs: CALLS (20000, the backlog), RATE (1000 calls/s) and
# DURATION (10 s; 0: no latency run) for the latency run, RECEIVER_DELAY_MS (0: how long the
# receiver takes to answer each push), RECEIVER_PROCESSES (1: the receiver's node:cluster
# workers), RECEIVER=c (bench/push-receiver.c, CivetWeb, instead of Node), SYSCALLS=1 (the
# server's syscalls per event by thread, with perf stat), SERVER_LOG (a file for the server's
# stderr), PERF_OUT, SKIP_BUILD=1, CALLSTATE_BIN.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BACKEND=${BACKEND:-sqlite}
. "$ROOT/bench/lib.sh"
release_binary
WORK=$(mktemp -d /tmp/callstate-push.XXXXXX)
cleanup() {
	[ "$BACKEND" != postgres ] || pg_stop
	rm -rf "$WORK"
}
trap cleanup EXIT
bench_service push
if [ "${RECEIVER:-node}" = c ]; then
	cc -O2 -Wall -Wextra -o "$WORK/push-receiver" "$ROOT/bench/push-receiver.c" -lcivetweb -lpthread
	export RECEIVER_BIN="$WORK/push-receiver"
fi
export CALLSTATE_EVENTS_SECRET="whsec_$(head -c 32 /dev/urandom | base64)"
echo "== push, $BACKEND" >&2
node "$ROOT/bench/push.mjs" "$BIN" "$PORT" "$SVC" "${CALLS:-20000}" "${RATE:-1000}" "${DURATION:-10}"

#!/usr/bin/env bash
# Long-poll wake-up latency (on demand, never in CI): starts a release callstate (SQLite, or
# BACKEND=postgres on a throwaway PostgreSQL server from tools/pg.sh) and runs
# bench/longpoll.mjs against it. Knobs: SAMPLES (300), RATE (20 calls/s), WAITERS (4),
# SKIP_BUILD=1, CALLSTATE_BIN.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BACKEND=${BACKEND:-sqlite}
. "$ROOT/bench/lib.sh"
release_binary
WORK=$(mktemp -d /tmp/callstate-longpoll.XXXXXX)
CS_PID=
cleanup() {
	[ -n "$CS_PID" ] && kill "$CS_PID" 2>/dev/null && wait "$CS_PID" 2>/dev/null
	[ "$BACKEND" != postgres ] || pg_stop
	rm -rf "$WORK"
}
trap cleanup EXIT
bench_service longpoll
serve_on "$PORT" "$WORK/serve.log"
echo "== long-poll wake-up, $BACKEND" >&2
node "$ROOT/bench/longpoll.mjs" "$PORT" "$SVC" "${SAMPLES:-300}" "${RATE:-20}" "${WAITERS:-4}"

#!/usr/bin/env bash
# Long-poll wake-up latency (on demand, never in CI): starts a release callstate (SQLite, or
# BACKEND=postgres on a throwaway PostgreSQL server from tools/pg.sh) and runs
# bench/longpoll.mjs against it. Knobs: SAMPLES (300), RATE (20 calls/s), WAITERS (4),
# SKIP_BUILD=1, CALLSTATE_BIN, RAW_OUT (a file that gets every sample), and with
# BACKEND=postgres CREATOR=other: a second instance takes the creates, so that the waiters
# hear of them through LISTEN/NOTIFY.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BACKEND=${BACKEND:-sqlite}
. "$ROOT/bench/lib.sh"
release_binary
WORK=$(mktemp -d /tmp/callstate-longpoll.XXXXXX)
CS_PID= WAITERS_PID=
cleanup() {
	for pid in $CS_PID $WAITERS_PID; do kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; done
	[ "$BACKEND" != postgres ] || pg_stop
	rm -rf "$WORK"
}
trap cleanup EXIT
bench_service longpoll
serve_on "$PORT" "$WORK/serve.log"
CREATOR_PORT=$PORT
if [ "${CREATOR:-}" = other ]; then
	[ "$BACKEND" = postgres ] || { echo "CREATOR=other needs BACKEND=postgres" >&2; exit 1; }
	WAITERS_PID=$CS_PID
	CREATOR_PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
	CALLSTATE_LISTEN="127.0.0.1:$CREATOR_PORT" serve_on "$CREATOR_PORT" "$WORK/serve-creator.log"
fi
echo "== long-poll wake-up, $BACKEND${CREATOR:+, creator: $CREATOR instance}" >&2
node "$ROOT/bench/longpoll.mjs" "$PORT" "$SVC" "${SAMPLES:-300}" "${RATE:-20}" "${WAITERS:-4}" "$CREATOR_PORT"

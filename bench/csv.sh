#!/usr/bin/env bash
# The CSV export and the stats over a large history (on demand, never in CI): seeds SEED_CALLS
# (1M) calls into a fresh SQLite database with seed.sql (as run.sh does for the lists), starts a
# release callstate on it, downloads GET /v1/calls?format=csv once with curl and reports the
# time, the size, the rows (counted by Python's csv module) and the server's memory: VmRSS idle
# and VmHWM (the process's peak resident set since it started) after the download. Then times
# GET /v1/stats over the same calls.
#
# Knobs: SEED_CALLS (1000000), SKIP_BUILD=1 (use build-release as it is), CALLSTATE_BIN (use
# this binary, no build), KEEP=1 (keep the work directory).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SEED_CALLS=${SEED_CALLS:-1000000}
for cmd in sqlite3 curl python3; do
	command -v "$cmd" >/dev/null || { echo "bench/csv.sh needs $cmd" >&2; exit 1; }
done

. "$ROOT/bench/lib.sh"
release_binary

WORK=$(mktemp -d /tmp/callstate-csv-bench.XXXXXX)
CS_PID=
cleanup() {
	[ -n "$CS_PID" ] && kill "$CS_PID" 2>/dev/null && wait "$CS_PID" 2>/dev/null
	[ -n "${KEEP:-}" ] || rm -rf "$WORK"
}
trap cleanup EXIT

ADM_TOKEN="bench-adm-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
export LIVEKIT_API_KEY=APIbenchkey LIVEKIT_API_SECRET=bench-secret-0123456789abcdef0123456789abcdef
export CALLSTATE_SERVICE_TOKENS="bench-svc-unused" CALLSTATE_ADMIN_TOKENS="$ADM_TOKEN"
export CALLSTATE_DB="sqlite:$WORK/seeded.db"
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export CALLSTATE_LISTEN="127.0.0.1:$PORT"

"$BIN" migrate 2>"$WORK/migrate.log"
BASE=$(($(date +%s%3N) - SEED_CALLS * 2500 - 3600000))
echo "== seeding $SEED_CALLS calls" >&2
sed -e "s/@N@/$SEED_CALLS/g" -e "s/@BASE@/$BASE/g" "$ROOT/bench/seed.sql" | sqlite3 "$WORK/seeded.db" >/dev/null

serve_on "$PORT" "$WORK/serve.log"
status() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }
IDLE_RSS=$(status "$CS_PID" VmRSS)
IDLE_HWM=$(status "$CS_PID" VmHWM)

ms_now() { date +%s%3N; }
# The readers map the database file (mmap_size): pages they read count in VmRSS as RssFile,
# the kernel's page cache, shared and reclaimable. The heap is RssAnon, which has no peak
# counter of its own: sampled every 50 ms during the download, its largest value is kept.
sample_anon() {
	local max=0 v
	while kill -0 "$CS_PID" 2>/dev/null && [ ! -e "$WORK/done" ]; do
		v=$(status "$CS_PID" RssAnon)
		[ "${v:-0}" -gt "$max" ] && max=$v
		sleep 0.05
	done
	echo "$max" >"$WORK/anon_max"
}
IDLE_ANON=$(status "$CS_PID" RssAnon)
sample_anon &
SAMPLER=$!
T0=$(ms_now)
curl -sf -H "Authorization: Bearer $ADM_TOKEN" -o "$WORK/calls.csv" "http://127.0.0.1:$PORT/v1/calls?format=csv"
T1=$(ms_now)
touch "$WORK/done"
wait "$SAMPLER"
ANON_MAX=$(cat "$WORK/anon_max")
HWM=$(status "$CS_PID" VmHWM)
RSS=$(status "$CS_PID" VmRSS)
FILE=$(status "$CS_PID" RssFile)
ROWS=$(python3 -c 'import csv, sys; print(sum(1 for _ in csv.reader(open(sys.argv[1], newline="", encoding="utf-8"), strict=True)) - 1)' "$WORK/calls.csv")
BYTES=$(stat -c %s "$WORK/calls.csv")

T2=$(ms_now)
curl -sf -H "Authorization: Bearer $ADM_TOKEN" -o "$WORK/stats.json" "http://127.0.0.1:$PORT/v1/stats"
T3=$(ms_now)

echo "calls seeded: $SEED_CALLS; CSV rows read back: $ROWS; CSV bytes: $BYTES"
awk -v ms=$((T1 - T0)) -v rows="$ROWS" -v bytes="$BYTES" 'BEGIN {
	printf "CSV download: %.1f s, %.0f rows/s, %.1f MB/s\n", ms / 1000, rows / (ms / 1000), bytes / 1e6 / (ms / 1000) }'
echo "server memory: idle VmRSS ${IDLE_RSS} kB (VmHWM ${IDLE_HWM} kB, RssAnon ${IDLE_ANON} kB);" \
	"after the CSV VmRSS ${RSS} kB (RssFile ${FILE} kB: the mapped database), peak VmHWM ${HWM} kB;" \
	"RssAnon (heap) at most ${ANON_MAX} kB during the download"
echo "GET /v1/stats over all $SEED_CALLS calls: $((T3 - T2)) ms: $(cat "$WORK/stats.json")"
[ "$ROWS" -eq "$SEED_CALLS" ] || { echo "MISMATCH: $ROWS rows for $SEED_CALLS calls" >&2; exit 1; }

#!/usr/bin/env bash
# Instructions one POST /v1/calls/{id}/token costs the server, counted by callgrind: a measure
# that a shared, noisy machine does not move (wall-clock rates do), for comparing two builds.
#   bench/token-instructions.sh BIN [BIN ...]
# For each binary: a fresh SQLite server with one worker thread under valgrind --tool=callgrind
# collecting only inside CivetWeb's request handler (on_request), one call created, then N1
# and, on a second fresh server, N2 token requests on one keep-alive connection.
# (Ir(N2) - Ir(N1)) / (N2 - N1) is the handler's instructions per token request, start-up and
# the create cancelled out. One worker, so that what a thread sets up once (OpenSSL's
# per-thread random generator, on its first request id) falls alike in both runs.
#   COLLECT=all   the whole process instead: CivetWeb's reading and parsing too
#   CEILING=1     the binaries are builds of shared/peers/civetweb-ceiling (run as BIN PORT 1),
#                 which answer token-sized POSTs without auth, storage or token: the floor
#                 (needs COLLECT=all, as the ceiling has no on_request)
set -euo pipefail
N1=${N1:-200}
N2=${N2:-1200}
PORT=${PORT:-18931}
COLLECT=${COLLECT:-on_request}
CEILING=${CEILING:-}
command -v valgrind >/dev/null || { echo "needs valgrind" >&2; exit 1; }

# run BIN N: prints the Ir collected inside on_request for one create and N token requests.
run() {
	local bin=$1 n=$2 dir
	dir=$(mktemp -d)
	local collect=()
	[ "$COLLECT" = all ] || collect=(--toggle-collect="$COLLECT")
	local cmd=("$bin" serve)
	[ -z "$CEILING" ] || cmd=("$bin" "$PORT" 1)
	env -i PATH="$PATH" LIVEKIT_URL=ws://127.0.0.1:7880 LIVEKIT_API_KEY=APIbench \
		LIVEKIT_API_SECRET=bench-secret-0123456789abcdef0123 CALLSTATE_SERVICE_TOKENS=svc \
		CALLSTATE_ADMIN_TOKENS=adm CALLSTATE_DB="sqlite:$dir/db" CALLSTATE_THREADS=1 \
		CALLSTATE_LISTEN=127.0.0.1:$PORT \
		valgrind --tool=callgrind "${collect[@]}" \
		--callgrind-out-file="$dir/out" "${cmd[@]}" >"$dir/log" 2>&1 &
	local pid=$!
	for _ in $(seq 100); do
		curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break
		sleep 0.2
	done
	local id=x
	[ -n "$CEILING" ] || id=$(curl -sf -H 'Authorization: Bearer svc' \
		-H 'Content-Type: application/json' \
		-d '{"caller":"alice","callees":["bob"],"kind":"audio"}' \
		"http://127.0.0.1:$PORT/v1/calls" | sed -E 's/.*"id":"([^"]+)".*/\1/;q')
	local url="http://127.0.0.1:$PORT/v1/calls/$id/token" urls=()
	for _ in $(seq "$n"); do urls+=("$url"); done
	curl -sf -H 'Authorization: Bearer svc' -H 'Content-Type: application/json' \
		-d '{"user":"alice"}' "${urls[@]}" >/dev/null
	kill -TERM "$pid"
	wait "$pid" || true
	awk '/^summary:/ { print $2 }' "$dir/out"
	rm -rf "$dir"
}

for bin in "$@"; do
	a=$(run "$bin" "$N1")
	b=$(run "$bin" "$N2")
	echo "$bin: $(( (b - a) / (N2 - N1) )) instructions per token request (Ir $a at $N1, $b at $N2)"
done

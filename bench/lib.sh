# Shared by the bench scripts. Sourced, not run; ROOT is the project's top directory.

# release_binary: sets BIN to CALLSTATE_BIN if given, else to build-release/callstate, built
# (release) unless SKIP_BUILD is set; exits if there is no binary.
release_binary() {
	if [ -n "${CALLSTATE_BIN:-}" ]; then
		BIN=$CALLSTATE_BIN
	else
		BIN="$ROOT/build-release/callstate"
		if [ -z "${SKIP_BUILD:-}" ]; then
			echo "== release build" >&2
			[ -d "$ROOT/build-release" ] ||
				meson setup "$ROOT/build-release" "$ROOT" --buildtype=release >/dev/null
			ninja -C "$ROOT/build-release" callstate >/dev/null
		fi
	fi
	[ -x "$BIN" ] || { echo "no callstate binary at $BIN" >&2; exit 1; }
}

# serve_on PORT LOG: starts "$BIN serve" (its settings from the environment) with stderr to LOG,
# sets CS_PID, and returns once /healthz answers (10 s at most).
serve_on() {
	"$BIN" serve 2>"$2" &
	CS_PID=$!
	for _ in $(seq 200); do
		curl -sf "http://127.0.0.1:$1/healthz" >/dev/null && return 0
		sleep 0.05
	done
	echo "callstate did not answer on port $1 (see $2)" >&2
	return 1
}

# bench_service NAME: the settings of a bench's callstate: LiveKit keys, a service token (SVC),
# the database (a throwaway PostgreSQL server with BACKEND=postgres, else $WORK/NAME.db) and
# a free loopback port (PORT). The caller stops PostgreSQL (pg_stop) when BACKEND=postgres.
bench_service() {
	SVC="bench-svc-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
	export LIVEKIT_API_KEY=APIbenchkey LIVEKIT_API_SECRET=bench-secret-0123456789abcdef0123456789abcdef
	export CALLSTATE_SERVICE_TOKENS="$SVC"
	if [ "$BACKEND" = postgres ]; then
		. "$ROOT/tools/pg.sh"
		pg_start
		export CALLSTATE_DB="$PG_URL/postgres"
	else
		export CALLSTATE_DB="sqlite:$WORK/$1.db"
	fi
	PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
	export CALLSTATE_LISTEN="127.0.0.1:$PORT"
}

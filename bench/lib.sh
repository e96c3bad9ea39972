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

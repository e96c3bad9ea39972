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

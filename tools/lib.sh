# Shared by tools/dev and tools/test: install what the build needs from Debian, once.
# Sourced, not run.

packages_build="meson ninja-build pkg-config gcc libcivetweb-dev libsqlite3-dev libpq-dev
libjansson-dev libjwt-dev libssl-dev libcriterion-dev sqlite3 python3 python3-yaml libsystemd-dev"

as_root() {
	if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# install_packages PKG...: apt-get install the ones that are missing.
install_packages() {
	local missing=()
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
			missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	echo "==> installing ${missing[*]}"
	as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
		"${missing[@]}" >/dev/null
}

# build DIR [meson options...]: configure once, then build.
build() {
	local dir=$1
	shift
	if [ ! -f "$dir/build.ninja" ]; then
		meson setup "$dir" "$@" >/dev/null
	fi
	ninja -C "$dir" >/dev/null
}

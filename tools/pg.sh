# A throwaway PostgreSQL server for the tests, the benchmarks and `tools/dev --postgres`:
# initdb into a temporary directory, listening on a free loopback port only, with trust
# authentication (loopback, a database nobody else uses). Sourced, not run.
#   pg_start        starts it; sets PG_DIR, PG_PORT and PG_URL (postgresql://postgres@127.0.0.1:PORT)
#   pg_stop         stops it and removes its directory
#   pg_stop_server  stops it (fast: connections are cut), keeping its data
#   pg_run_server   starts it again on the same data and port
# Run as root, the server runs as the postgres user (PostgreSQL refuses to run as root).
# PG_SERVER_OPTIONS: more "-c name=value" settings for the server's start (the bench's
# pg_stat_statements), the same on every start of one sitting.

pg_bin() {
	local d
	for d in /usr/lib/postgresql/*/bin; do
		[ -x "$d/pg_ctl" ] && { echo "$d"; return 0; }
	done
	echo "tools/pg.sh: no PostgreSQL server binaries (Debian package postgresql)" >&2
	return 1
}

# pg_as CMD...: run as the server's owner.
pg_as() {
	if [ "$(id -u)" -eq 0 ]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

pg_start() {
	local bin
	bin=$(pg_bin) || return 1
	PG_DIR=$(mktemp -d /tmp/callstate-pg.XXXXXX)
	chmod 755 "$PG_DIR"
	[ "$(id -u)" -eq 0 ] && chown postgres: "$PG_DIR"
	PG_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
	pg_as "$bin/initdb" -D "$PG_DIR/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 \
		>"$PG_DIR/initdb.log" 2>&1 || { cat "$PG_DIR/initdb.log" >&2; return 1; }
	PG_URL="postgresql://postgres@127.0.0.1:$PG_PORT"
	export PG_DIR PG_PORT PG_URL
	pg_run_server
}

pg_run_server() {
	local bin
	bin=$(pg_bin) || return 1
	# fsync stays on: the durability tests mean it. More connections than the default 100:
	# several callstate instances with their pools, and the test suites beside them.
	pg_as "$bin/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w -t 60 start \
		-o "-c listen_addresses=127.0.0.1 -c port=$PG_PORT -c unix_socket_directories=$PG_DIR \
		    -c max_connections=400 -c shared_buffers=128MB ${PG_SERVER_OPTIONS:-}" >/dev/null ||
		{ tail -20 "$PG_DIR/server.log" >&2; return 1; }
}

pg_stop_server() {
	local bin
	bin=$(pg_bin) || return 1
	pg_as "$bin/pg_ctl" -D "$PG_DIR/data" -m fast -w stop >/dev/null
}

pg_stop() {
	[ -n "${PG_DIR:-}" ] || return 0
	local bin
	bin=$(pg_bin) || return 1
	pg_as "$bin/pg_ctl" -D "$PG_DIR/data" -m fast -w stop >/dev/null 2>&1 || true
	rm -rf "$PG_DIR"
	PG_DIR=
}

#!/usr/bin/env bash
# callstate benchmarks (on demand, never in CI). Builds a release binary, then measures with wrk
# over loopback, keep-alive, CONNS connections (never more than the server's worker threads):
#   1. token minting     POST /v1/calls/{id}/token   (real calls and members, created via the API)
#   2. call creation     POST /v1/calls              (durable writes)
#   3. LiveKit webhooks  POST /webhooks/livekit      signed participant_joined/left pairs for the
#                        rooms of MEMBERS calls, at each of WEBHOOK_CONNS connections, each on a
#                        fresh server and database (durable: every 200 is stored and applied,
#                        fsync'd; one request = one event)
#   4. user history      GET  /v1/users/{u}/calls    over SEED_CALLS stored calls
#   5. admin filter      GET  /v1/calls?status=ended&kind=video   over the same
#   6. peers, when they can run: the bare CivetWeb ceiling and the Node SDK peer (tokens, webhooks)
#   7. connection attacks (attack.mjs): ATTACK_IDLE idle connections and ATTACK_SLOW trickling
#      bodies held open, while a new client asks /healthz and a token every 50 ms
#   8. retention (SQLite): webhooks as in 3 on a database holding RETENTION_CALLS calls ended
#      long ago, first kept, then while CALLSTATE_RETENTION_DAYS purges them; and the purge rate
# and prints callstate's idle RSS and a table of req/s, p50 and p99.
#
# BACKEND=postgres runs callstate on a throwaway PostgreSQL server (tools/pg.sh), a database of
# its own per run, adds webhooks on two instances sharing one database (two wrk processes, half
# the connections each), and skips the lists (their 1M-call seed is SQLite's). callstate talks
# to it over loopback TCP, as instances on other machines would. Its token run has a server of
# its own, and what one token cost is printed: round trips, statements, access reads per batch
# (db/pg_batch_read.c) and the CPU of the PostgreSQL server and of callstate.
#
# Environment knobs: DURATION (10s), CONNS (32), WRK_THREADS (2), SEED_CALLS (1000000),
# SERVER_THREADS (1536, the service's default), MEMBERS (2000 calls created for the token bench),
# WEBHOOK_CONNS ("32 64"), WEBHOOK_PAIRS (60000 joined/left pairs generated per webhook run),
# PG_STATS=1 (PostgreSQL: pg_stat_statements loaded at the server's start, and each webhook
# run's statements per event printed; the server's CPU, WAL and HOT updates, and callstate's
# round trips, statements and numbering rounds, are printed always),
# PG_PERF=1 (PostgreSQL: perf's call graph of the server's processes, to PG_PERF_OUT or stderr),
# ATTACK_IDLE (1000), ATTACK_SLOW (200), ATTACK_SECONDS (20), RETENTION_CALLS (1000000),
# RETENTION_IDLE_S (30: how long the purge is timed alone after its webhook run),
# SKIP_WEBHOOKS=1, SKIP_HISTORY=1, SKIP_PEERS=1, SKIP_ATTACK=1, SKIP_RETENTION=1, SKIP_BUILD=1 (use build-release as it is), CALLSTATE_BIN (use
# this binary, no build), PERF_OUT=PREFIX (`perf record -g` of the server during each webhook
# run, into PREFIX-CONNS.data), WAL_MAP=1 (SQLite: bench/walpages.c preloaded into the server of
# each webhook run counts the pages it writes into the WAL, and bench/walpages.py prints them by
# b-tree), SYNC_TIMES=1 (SQLite: bench/synctimes.c preloaded likewise times every fdatasync and
# fsync by thread and file). Each webhook run also prints, per event and by thread group, the
# time the threads were ready to run but waited for a core (schedstat).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BENCH="$ROOT/bench"
PEERS="${PEERS_DIR:-$ROOT/../shared/peers}"
[ -d "$PEERS" ] || PEERS=/work/shared/peers
DURATION=${DURATION:-10s}
CONNS=${CONNS:-32}
WRK_THREADS=${WRK_THREADS:-2}
SEED_CALLS=${SEED_CALLS:-1000000}
SERVER_THREADS=${SERVER_THREADS:-1536}
MEMBERS=${MEMBERS:-2000}
WEBHOOK_CONNS=${WEBHOOK_CONNS:-"32 64"}
WEBHOOK_PAIRS=${WEBHOOK_PAIRS:-60000}
ATTACK_IDLE=${ATTACK_IDLE:-1000}
ATTACK_SLOW=${ATTACK_SLOW:-200}
ATTACK_SECONDS=${ATTACK_SECONDS:-20}
RETENTION_CALLS=${RETENTION_CALLS:-1000000}
RETENTION_IDLE_S=${RETENTION_IDLE_S:-30}
BACKEND=${BACKEND:-sqlite}
case "$BACKEND" in sqlite | postgres) ;; *) echo "BACKEND must be sqlite or postgres" >&2; exit 2 ;; esac
if [ "$SEED_CALLS" -ge 1000000 ] && [ $((SEED_CALLS % 1000000)) -eq 0 ]; then SEED_LABEL="$((SEED_CALLS / 1000000))M calls"
else SEED_LABEL="$SEED_CALLS calls"; fi
if [ "$SERVER_THREADS" -lt "$CONNS" ]; then
	echo "SERVER_THREADS ($SERVER_THREADS) must be >= CONNS ($CONNS): CivetWeb leaves extra keep-alive connections unanswered" >&2
	exit 2
fi

need() { # need CMD PACKAGE
	command -v "$1" >/dev/null 2>&1 && return 0
	echo "== installing $2" >&2
	if [ "$(id -u)" = 0 ]; then
		apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null
	else
		sudo apt-get update -qq >/dev/null && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null
	fi
}
need wrk wrk
need sqlite3 sqlite3
need curl curl
need jq jq

# ---- build ----
. "$ROOT/bench/lib.sh"
release_binary

WORK=$(mktemp -d /tmp/callstate-bench.XXXXXX)
PIDS=()
cleanup() {
	for p in "${PIDS[@]:-}"; do
		[ -n "$p" ] && kill "$p" 2>/dev/null || true
	done
	for p in "${PIDS[@]:-}"; do
		[ -n "$p" ] && wait "$p" 2>/dev/null || true
	done
	[ "$BACKEND" != postgres ] || pg_stop
	rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
wait_http() { # wait_http URL [TRIES]
	local i
	for i in $(seq 1 "${2:-200}"); do
		curl -s -o /dev/null "$1" && return 0
		sleep 0.05
	done
	echo "nothing answers at $1" >&2
	return 1
}
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
# thread_cpu PID: "<thread group> <ns on a CPU> <ns runnable, waiting for a CPU>" per group of
# the process's threads (named by the service: cs-writer, cs-checkpoint, ...; CivetWeb's
# civetweb-worker and -master). From schedstat, not utime/stime: those are sampled at each clock
# tick, and a thread that wakes on a timer runs right at the tick and gets charged far more than
# it ran. The wait is the time a thread was ready to run but queued behind others for a core.
# Read with builtins: a process per file made it take minutes on a loaded machine, and the
# webhooks' signatures (5 min) expired before wrk sent them.
thread_cpu() {
	local t comm ns wait
	for t in /proc/"$1"/task/*; do
		{ read -r comm <"$t/comm" && read -r ns wait _ <"$t/schedstat"; } 2>/dev/null && printf '%s %s %s\n' "$comm" "$ns" "$wait"
	done | awk 'NF == 3 { sub(/-[0-9]+$/, "", $1); n[$1] += $2; w[$1] += $3 }
		END { for (k in n) printf "%s %.0f %.0f\n", k, n[k], w[k] }' | sort
}

SVC_TOKEN="bench-svc-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
ADM_TOKEN="bench-adm-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
API_KEY=APIbenchkey
API_SECRET=bench-secret-0123456789abcdef0123456789abcdef

if [ "$BACKEND" = postgres ]; then
	need psql postgresql-client
	need /usr/lib/postgresql/15/bin/postgres postgresql
	. "$ROOT/tools/pg.sh"
	[ -z "${PG_STATS:-}" ] || export PG_SERVER_OPTIONS="-c shared_preload_libraries=pg_stat_statements"
	pg_start
fi
# db_url NAME: the CALLSTATE_DB of the run NAME (a SQLite file, or a PostgreSQL database made
# on first use).
db_url() {
	if [ "$BACKEND" = sqlite ]; then
		echo "sqlite:$WORK/$1.db"
		return
	fi
	psql "$PG_URL/postgres" -X -q -c "CREATE DATABASE bench_$1" 2>/dev/null || true
	echo "$PG_URL/bench_$1"
}
# db_query NAME SQL: one value from the database of the run NAME.
db_query() {
	if [ "$BACKEND" = sqlite ]; then
		sqlite3 "$WORK/$1.db" "$2"
	else
		psql "$PG_URL/bench_$1" -X -q -t -A -c "$2"
	fi
}
start_callstate() { # start_callstate NAME PORT LOG → sets CS_PID; CS_ENV: more NAME=value
	# shellcheck disable=SC2086 # CS_ENV is a list of assignments
	env -i PATH="$PATH" ${CS_ENV:-} \
		LIVEKIT_API_KEY=$API_KEY LIVEKIT_API_SECRET=$API_SECRET \
		CALLSTATE_SERVICE_TOKENS="$SVC_TOKEN" CALLSTATE_ADMIN_TOKENS="$ADM_TOKEN" \
		CALLSTATE_DB="$(db_url "$1")" CALLSTATE_LISTEN="127.0.0.1:$2" \
		CALLSTATE_THREADS="$SERVER_THREADS" CALLSTATE_RING_TIMEOUT_S=300 \
		"$BIN" serve 2>"$3" &
	CS_PID=$!
	PIDS+=("$CS_PID")
	wait_http "http://127.0.0.1:$2/healthz"
}
stop_pid() {
	kill -TERM "$1" 2>/dev/null || true
	wait "$1" 2>/dev/null || true
}
# alive PID LOG: fail loudly, with the server's last log lines, when it died during a run
alive() {
	kill -0 "$1" 2>/dev/null && return 0
	local st=0
	wait "$1" 2>/dev/null || st=$?
	echo "callstate (pid $1) is gone (wait status $st); last lines of $2:" >&2
	grep -v 'msg=request ' "$2" | tail -n 20 >&2
	exit 1
}

RESULTS="$WORK/results.tsv"
: >"$RESULTS"
# run_wrk NAME URL SCRIPT [SCRIPT ARGS...]: one bounded wrk run; records req/s, p50, p99, errors.
# RUN_CONNS overrides CONNS for one run.
run_wrk() {
	local name=$1 url=$2 script=$3
	shift 3
	local conns=${RUN_CONNS:-$CONNS}
	local out="$WORK/wrk-$(echo "$name" | tr -c 'a-zA-Z0-9' '_').txt"
	echo "== $name: wrk -t$WRK_THREADS -c$conns -d$DURATION $url" >&2
	wrk -t"$WRK_THREADS" -c"$conns" -d"$DURATION" --timeout 5s --latency -s "$script" "$url" -- "$@" >"$out" 2>&1 || true
	awk -v name="$name" '
		function to_ms(v) {
			if (v ~ /us$/) { sub(/us$/, "", v); return v / 1000 }
			if (v ~ /ms$/) { sub(/ms$/, "", v); return v + 0 }
			if (v ~ /s$/)  { sub(/s$/, "", v);  return v * 1000 }
			return v
		}
		/^Requests\/sec:/ { rps = $2 }
		/^ +50%/ { p50 = to_ms($2) }
		/^ +99%/ { p99 = to_ms($2) }
		/Non-2xx or 3xx responses:/ { non2xx = $NF }
		/Socket errors:/ { errs = $0; sub(/.*Socket errors: */, "", errs) }
		/requests in/ { total = $1 }
		/^webhook-lua:/ { wraps = $3; sub(/wraps=/, "", wraps) }
		END {
			if (rps == "") { printf "%s\t-\t-\t-\twrk failed\n", name; exit }
			note = ""
			if (non2xx != "") note = note "non-2xx " non2xx "/" total " "
			if (wraps != "" && wraps > 0) note = note "WRAPPED " wraps "x (duplicates sent) "
			if (errs != "") note = note "socket " errs
			printf "%s\t%.0f\t%.2f\t%.2f\t%s\n", name, rps, p50, p99, note
		}' "$out" >>"$RESULTS"
	tail -n 1 "$RESULTS" >&2
	LAST_WRK_OUT=$out
}
# per_event CONNS EVENTS: what one webhook cost in the run at CONNS connections: server CPU by
# thread group (µs), and from the writer's totals (SQLite) and perf (when it may trace
# syscalls) WAL pages, statements, VM steps, batch size, fsyncs, pwrites, context switches.
per_event() {
	local wc=$1 events=$2
	[ "$events" -gt 0 ] 2>/dev/null || { echo "per event (c=$wc): no events"; return; }
	join -a2 -e0 -o 0,1.2,1.3,2.2,2.3 "$WORK/cpu-before-$wc" "$WORK/cpu-after-$wc" |
		awk -v n="$events" -v c="$wc" '
			{ us = ($4 - $2) / 1e3 / n; total += us; if (us >= 0.05) parts = parts sprintf(" %s %.1f", $1, us)
			  wus = ($5 - $3) / 1e3 / n; wtotal += wus; if (wus >= 0.05) wparts = wparts sprintf(" %s %.1f", $1, wus) }
			END { printf "per event (c=%s): server CPU %.1f us:%s\n", c, total, parts
			      printf "  waiting for a core, us per event:%s\n", wparts }'
	grep -h 'msg="sqlite writer totals"' "$WORK/webhooks-$wc.log" | tail -n 1 |
		awk -v n="$events" '{
			for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
			if (v["batches"] > 0)
				printf "  writer: %.2f WAL pages, %.1f statements, %.0f VM steps per event; %.1f transactions per batch\n",
					v["wal_frames"] / n, v["statements"] / n, v["vm_steps"] / n, v["transactions"] / v["batches"]
			if ("wal_restarts" in v)
				printf "  WAL: %d restarts, %d checkpoints run by the writer, %.3f fdatasyncs of the syncer per event\n",
					v["wal_restarts"], v["writer_checkpoints"], v["syncs"] / n
		}'
	grep -h 'msg="postgres totals"' "$WORK/webhooks-$wc.log" | tail -n 1 |
		awk -v n="$events" '{
			for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
			printf "  postgres client: %.2f round trips, %.1f statements, %.2f transactions, %.2f numbering rounds per event\n",
				v["round_trips"] / n, v["statements"] / n, v["transactions"] / n, v["numbering_rounds"] / n
		}'
	[ -s "$WORK/perf-$wc.csv" ] && awk -F, -v n="$events" '
		$1 ~ /^[0-9]+$/ { name = $3; sub(/^syscalls:sys_enter_/, "", name); parts = parts sprintf(" %s %.2f", name, $1 / n) }
		END { if (parts != "") printf "  syscalls and switches per event:%s\n", parts }' "$WORK/perf-$wc.csv"
	return 0
}
# pg_cpu_ns: the CPU time (ns) of the PostgreSQL server so far: its processes alive now
# (schedstat, as thread_cpu) and those the postmaster has reaped (its cutime + cstime, in ticks).
pg_cpu_ns() {
	local pm t ps
	pm=$(head -n 1 "$PG_DIR/data/postmaster.pid")
	t=$(awk -v hz="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); printf "%.0f", ($14 + $15) * 1e9 / hz }' "/proc/$pm/stat")
	for ps in "$pm" $(ps --ppid "$pm" -o pid=); do
		t=$((t + $(cut -d' ' -f1 "/proc/$ps/schedstat" 2>/dev/null || echo 0)))
	done
	echo "$t"
}
# pg_stats_reset NAME: zeroes the statistics pg_per_event reads, in the database of the run NAME.
pg_stats_reset() {
	db_query "$1" "SELECT pg_stat_reset(), pg_stat_reset_shared('wal')" >/dev/null
	[ -z "${PG_STATS:-}" ] ||
		db_query "$1" "CREATE EXTENSION IF NOT EXISTS pg_stat_statements; SELECT pg_stat_statements_reset()" >/dev/null
	pg_cpu_ns >"$WORK/pg-cpu-before"
}
# pg_per_event NAME EVENTS: what one webhook cost PostgreSQL since pg_stats_reset NAME: CPU,
# WAL, the share of updates that were HOT (no index entry written), and with PG_STATS the
# statements (calls, time, shared blocks hit and dirtied per event, the dearest first).
pg_per_event() {
	local name=$1 n=$2 cpu
	[ "$n" -gt 0 ] 2>/dev/null || { echo "  postgres: no events"; return 0; }
	cpu=$(($(pg_cpu_ns) - $(cat "$WORK/pg-cpu-before")))
	sleep 1 # the statistics of the backends reach the views within a second (PGSTAT_MIN_INTERVAL)
	db_query "$name" "SELECT format('  postgres: CPU %s us, WAL %s bytes (%s records, %s full pages, %s syncs), %s%% of %s updates HOT, per event',
		round($cpu / 1e3 / $n), round(w.wal_bytes / $n), round(w.wal_records / $n::numeric, 1),
		round(w.wal_fpi / $n::numeric, 2), round(w.wal_sync / $n::numeric, 2),
		round(100.0 * t.hot / nullif(t.upd, 0)), round(t.upd / $n::numeric, 2))
		FROM pg_stat_wal w, (SELECT sum(n_tup_upd) AS upd, sum(n_tup_hot_upd) AS hot FROM pg_stat_user_tables) t"
	db_query "$name" "SELECT format('  sizes: call view %s bytes (%s stored), event data %s (%s stored); toast blocks hit %s per event',
		(SELECT round(avg(octet_length(view))) FROM calls), (SELECT round(avg(pg_column_size(view))) FROM calls),
		(SELECT round(avg(octet_length(data))) FROM events), (SELECT round(avg(pg_column_size(data))) FROM events),
		(SELECT round(sum(coalesce(toast_blks_hit, 0) + coalesce(tidx_blks_hit, 0)) / $n::numeric, 1) FROM pg_statio_user_tables))"
	[ -z "${PG_STATS:-}" ] && return 0
	db_query "$name" "SELECT format('  statements: %s per event', round(sum(calls) / $n::numeric, 1)) FROM pg_stat_statements"
	db_query "$name" "SELECT format('  %6s calls %7s us %6s hit %5s dirtied  %s', round(calls / $n::numeric, 2),
		round((total_exec_time * 1e3 / $n)::numeric, 1), round(shared_blks_hit / $n::numeric, 1),
		round(shared_blks_dirtied / $n::numeric, 2), left(regexp_replace(query, '\s+', ' ', 'g'), 90))
		FROM pg_stat_statements ORDER BY total_exec_time DESC LIMIT 14"
}
# note TEXT: appended to the notes of the last result line
note() { sed -i '$ s/$/ '"$1"'/' "$RESULTS"; }

# The SDKs the webhook generator signs with (livekit-server-sdk, @livekit/protocol): the HTTP
# tests' own dependencies.
have_sdk() {
	command -v node >/dev/null || return 1
	[ -d "$ROOT/tests/http/node_modules/livekit-server-sdk" ] && return 0
	command -v npm >/dev/null || return 1
	echo "== npm ci in tests/http (webhook generator)" >&2
	(cd "$ROOT/tests/http" && npm ci --no-audit --no-fund >"$WORK/npm-tests.log" 2>&1)
}
# gen_webhooks MEMBERS_TSV PAIRS OUT PREFIX: signed joined/left pairs for the calls of MEMBERS_TSV
gen_webhooks() {
	LIVEKIT_API_KEY=$API_KEY LIVEKIT_API_SECRET=$API_SECRET \
		node "$BENCH/gen-webhooks.mjs" "$1" "$2" "$3" "$4" "$WRK_THREADS"
}

# ---------------------------------------------------------------------------------------------
# 1 + 2: tokens and creation on a fresh database
PORT=$(free_port)
start_callstate fresh "$PORT" "$WORK/fresh.log"
IDLE_RSS=$(rss_kb "$CS_PID")
echo "== callstate idle RSS: ${IDLE_RSS} kB" >&2

# create_calls PORT OUT TAG: MEMBERS one-to-one video calls through the API; OUT gets one
# "<call id>\t<user>" line per member (the token and webhook generators read it).
create_calls() {
	local port=$1 out=$2 tag=$3 f
	echo "== creating $MEMBERS calls through the API" >&2
	rm -f "$WORK"/bodies.*
	for i in $(seq 1 "$MEMBERS"); do
		printf '{"caller":"%s-caller-%d","callees":["%s-callee-%d"],"kind":"video","ring_timeout_s":300}\n' "$tag" "$i" "$tag" "$i"
	done >"$WORK/create-bodies.jsonl"
	# One keep-alive curl per 250 calls, 8 in parallel.
	split -l 250 "$WORK/create-bodies.jsonl" "$WORK/bodies."
	local pids=()
	for f in "$WORK"/bodies.*; do
		(
			args=()
			while IFS= read -r body; do
				args+=(--next -s -X POST -H "Authorization: Bearer $SVC_TOKEN" -H 'Content-Type: application/json'
					-d "$body" -w '\n' "http://127.0.0.1:$port/v1/calls")
			done <"$f"
			curl "${args[@]:1}" >"$f.out"
		) &
		pids+=($!)
		if [ "${#pids[@]}" -ge 8 ]; then
			wait "${pids[@]}"
			pids=()
		fi
	done
	[ "${#pids[@]}" -eq 0 ] || wait "${pids[@]}"
	cat "$WORK"/bodies.*.out | jq -r 'select(.call) | .call.id as $id | .call.members[] | "\($id)\t\(.user)"' >"$out"
	rm -f "$WORK"/bodies.*
	echo "== $(wc -l <"$out") members of $(cut -f1 "$out" | sort -u | wc -l) calls" >&2
}
MEMBERS_FILE="$WORK/members.tsv"
create_calls "$PORT" "$MEMBERS_FILE" tk

# token_per_request TOKENS PG_CPU_NS CS_CPU_NS: what one token of the token run cost, from the
# totals its server logged at exit (PostgreSQL): round trips, statements, access reads per
# batch (pg_batch_read.c; absent before it), and the CPU of the PostgreSQL server and callstate.
token_per_request() {
	grep -h 'msg="postgres totals"' "$WORK/tokens.log" | tail -n 1 |
		awk -v n="$1" -v cpu="$2" -v cs="$3" -v load="$(cut -d' ' -f1-3 /proc/loadavg)" '{
			for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
			batch = v["access_batches"] > 0 ? sprintf(", %.1f access reads per batch", v["access_reads"] / v["access_batches"]) : ""
			printf "tokens: %d; per token %.3f round trips, %.3f statements, CPU us: postgres %.1f, callstate %.1f%s (load average %s)\n",
				n, v["round_trips"] / n, v["statements"] / n, cpu / 1e3 / n, cs / 1e3 / n, batch, load
		}'
}
# cpu_ns PID: the CPU time (ns) of all of a process's threads so far.
cpu_ns() { thread_cpu "$1" | awk '{ t += $2 } END { printf "%.0f\n", t }'; }
TOKEN_REPORT=
CS_LOG="$WORK/fresh.log"
if [ "$BACKEND" = postgres ]; then
	# The token run on a server of its own on the same database, so that the totals it logs at
	# exit count the tokens only, not the calls created for them.
	stop_pid "$CS_PID"
	start_callstate fresh "$PORT" "$WORK/tokens.log"
	pg_cpu_ns >"$WORK/pg-cpu-before"
	TOKEN_CS_NS=$(cpu_ns "$CS_PID")
fi
run_wrk "token POST /v1/calls/{id}/token" "http://127.0.0.1:$PORT" "$BENCH/token.lua" "$MEMBERS_FILE" "$SVC_TOKEN"
if [ "$BACKEND" = postgres ]; then
	alive "$CS_PID" "$WORK/tokens.log"
	TOKEN_PG_NS=$(($(pg_cpu_ns) - $(cat "$WORK/pg-cpu-before")))
	TOKEN_CS_NS=$(($(cpu_ns "$CS_PID") - TOKEN_CS_NS))
	stop_pid "$CS_PID"
	TOKEN_REPORT=$(token_per_request "$(awk '/requests in/ { print $1 }' "$LAST_WRK_OUT")" "$TOKEN_PG_NS" "$TOKEN_CS_NS")
	CS_LOG="$WORK/create.log"
	start_callstate fresh "$PORT" "$CS_LOG"
fi
run_wrk "create POST /v1/calls" "http://127.0.0.1:$PORT" "$BENCH/create.lua" "$SVC_TOKEN"
alive "$CS_PID" "$CS_LOG"

LOADED_RSS=$(rss_kb "$CS_PID")
stop_pid "$CS_PID"

# ---------------------------------------------------------------------------------------------
# 3: LiveKit webhooks. Each connection count gets the same start: a fresh server and database,
# MEMBERS new calls, and WEBHOOK_PAIRS new sessions of their members (fresh event ids), so that
# the runs compare (sessions pile up in their calls: a later run on the same calls would be
# slower for that alone).
WEBHOOK_SUMMARY=()
WALPAGES_SO=
if [ -n "${WAL_MAP:-}" ] && [ "$BACKEND" = sqlite ]; then
	WALPAGES_SO="$WORK/walpages.so"
	cc -O2 -shared -fPIC -o "$WALPAGES_SO" "$BENCH/walpages.c" -ldl
fi
SYNCTIMES_SO=
if [ -n "${SYNC_TIMES:-}" ] && [ "$BACKEND" = sqlite ]; then
	SYNCTIMES_SO="$WORK/synctimes.so"
	cc -O2 -shared -fPIC -o "$SYNCTIMES_SO" "$BENCH/synctimes.c" -ldl
fi
if [ -n "${SKIP_WEBHOOKS:-}" ]; then
	echo "== webhooks skipped (SKIP_WEBHOOKS)" >&2
elif ! have_sdk; then
	echo "== webhooks skipped: node or the tests/http SDKs are missing" >&2
else
	for wc in $WEBHOOK_CONNS; do
		if [ "$wc" -gt "$SERVER_THREADS" ]; then
			echo "== webhooks at $wc connections skipped: SERVER_THREADS is $SERVER_THREADS" >&2
			continue
		fi
		PORT=$(free_port)
		start_callstate "webhooks$wc" "$PORT" "$WORK/webhooks-$wc.log"
		create_calls "$PORT" "$WORK/wh-members-$wc.tsv" "wh$wc"
		prefix="b$wc$(head -c 4 /dev/urandom | od -An -tx1 | tr -d ' \n')"
		gen_webhooks "$WORK/wh-members-$wc.tsv" "$WEBHOOK_PAIRS" "$WORK/webhooks-$wc.txt" "$prefix"
		# A restart on the same database, so that the writer's totals (logged at exit) count
		# the webhooks only, not the calls created for them.
		stop_pid "$CS_PID"
		preload=
		CS_ENV=
		[ -z "$WALPAGES_SO" ] || { preload=$WALPAGES_SO; CS_ENV="WALPAGES_OUT=$WORK/walpages-$wc.txt"; }
		[ -z "$SYNCTIMES_SO" ] || { preload="$preload${preload:+:}$SYNCTIMES_SO"; CS_ENV="$CS_ENV SYNCTIMES_OUT=$WORK/synctimes-$wc.txt"; }
		[ -z "$preload" ] || CS_ENV="LD_PRELOAD=$preload $CS_ENV"
		start_callstate "webhooks$wc" "$PORT" "$WORK/webhooks-$wc.log"
		CS_ENV=
		thread_cpu "$CS_PID" >"$WORK/cpu-before-$wc"
		[ "$BACKEND" != postgres ] || pg_stats_reset "webhooks$wc"
		PERF_PID=
		if command -v perf >/dev/null; then
			perf stat -x, -e syscalls:sys_enter_fdatasync,syscalls:sys_enter_fsync,syscalls:sys_enter_pwrite64,context-switches \
				-p "$CS_PID" -o "$WORK/perf-$wc.csv" 2>/dev/null &
			PERF_PID=$!
		fi
		RECORD_PID=
		if [ -n "${PERF_OUT:-}" ]; then
			perf record -g -q -p "$CS_PID" -o "$PERF_OUT-$wc.data" 2>/dev/null &
			RECORD_PID=$!
		fi
		# PG_PERF=1: a call graph of the PostgreSQL server's processes through the middle of the
		# run (its backends open with the run), reported below.
		if [ -n "${PG_PERF:-}" ] && [ "$BACKEND" = postgres ]; then
			(sleep 2; perf record -q -g -o "$WORK/pg-perf-$wc.data" \
				-p "$(ps --ppid "$(head -n 1 "$PG_DIR/data/postmaster.pid")" -o pid= | paste -sd, | tr -d ' ')" \
				-- sleep 6 >/dev/null 2>&1) &
		fi
		RUN_CONNS=$wc run_wrk "webhooks POST /webhooks/livekit (c=$wc)" "http://127.0.0.1:$PORT" \
			"$BENCH/webhook.lua" "$WORK/webhooks-$wc.txt" "$WRK_THREADS"
		alive "$CS_PID" "$WORK/webhooks-$wc.log"
		thread_cpu "$CS_PID" >"$WORK/cpu-after-$wc"
		[ -z "$PERF_PID" ] || { kill -INT "$PERF_PID" 2>/dev/null; wait "$PERF_PID" 2>/dev/null || true; }
		[ -z "$RECORD_PID" ] || { kill -INT "$RECORD_PID" 2>/dev/null; wait "$RECORD_PID" 2>/dev/null || true; }
		# Every 200 means stored: count what this run's ids left in the database.
		stored=$(db_query "webhooks$wc" "SELECT count(*) FROM webhooks WHERE substr(id, 1, $((${#prefix} + 4))) = 'EV_${prefix}_'")
		acked=$(awk '/requests in/ { t = $1 } /Non-2xx or 3xx responses:/ { n = $NF } END { print t - n }' "$LAST_WRK_OUT")
		note "stored $stored (acked $acked)"
		echo "== webhooks: this run's ids stored $stored, 2xx answers $acked" >&2
		WEBHOOK_SUMMARY+=("$(awk -F'\t' -v c="$wc" 'END { printf "webhooks at %s connections: %s events/s, p50 %s ms, p99 %s ms", c, $2, $3, $4 }' "$RESULTS")")
		rm -f "$WORK/webhooks-$wc.txt"
		stop_pid "$CS_PID"
		WEBHOOK_SUMMARY+=("$(per_event "$wc" "$stored")")
		[ -z "$WALPAGES_SO" ] ||
			WEBHOOK_SUMMARY+=("$(python3 "$BENCH/walpages.py" "$WORK/walpages-$wc.txt" "$WORK/webhooks$wc.db" "$stored")")
		[ ! -s "$WORK/synctimes-$wc.txt" ] || WEBHOOK_SUMMARY+=("$(sed 's/^/  sync: /' "$WORK/synctimes-$wc.txt")")
		[ "$BACKEND" != postgres ] || WEBHOOK_SUMMARY+=("$(pg_per_event "webhooks$wc" "$stored")")
		[ ! -s "$WORK/pg-perf-$wc.data" ] || perf report -i "$WORK/pg-perf-$wc.data" --no-children \
			--sort symbol --stdio 2>/dev/null | grep -E '^ +[0-9]' | head -n 40 >"${PG_PERF_OUT:-/dev/stderr}" || true
	done
	# Two instances on one PostgreSQL database, behind no balancer: a wrk of its own for each,
	# with half the connections and events of its own, started together; their rates add up.
	if [ "$BACKEND" = postgres ]; then
		wc=$(echo "$WEBHOOK_CONNS" | awk '{print $1}')
		PORT_A=$(free_port)
		start_callstate webhooks2i "$PORT_A" "$WORK/webhooks-2i-a.log"
		PID_A=$CS_PID
		PORT_B=$(free_port)
		start_callstate webhooks2i "$PORT_B" "$WORK/webhooks-2i-b.log"
		PID_B=$CS_PID
		create_calls "$PORT_A" "$WORK/wh-members-2i.tsv" wh2i
		for half in a b; do
			prefix="i$half$(head -c 4 /dev/urandom | od -An -tx1 | tr -d ' \n')"
			gen_webhooks "$WORK/wh-members-2i.tsv" "$((WEBHOOK_PAIRS / 2))" "$WORK/webhooks-2i-$half.txt" "$prefix"
		done
		wrks=()
		for half in a b; do
			port=$PORT_A
			[ "$half" = a ] || port=$PORT_B
			wrk -t1 -c"$((wc / 2))" -d"$DURATION" --timeout 5s --latency -s "$BENCH/webhook.lua" \
				"http://127.0.0.1:$port" -- "$WORK/webhooks-2i-$half.txt" 1 >"$WORK/wrk-2i-$half.txt" 2>&1 &
			wrks+=($!)
		done
		wait "${wrks[@]}" || true
		alive "$PID_A" "$WORK/webhooks-2i-a.log"
		alive "$PID_B" "$WORK/webhooks-2i-b.log"
		rate=$(awk '/^Requests\/sec:/ { s += $2 } END { printf "%.0f", s }' "$WORK"/wrk-2i-*.txt)
		p99=$(awk '/^ +99%/ { print $2 }' "$WORK"/wrk-2i-*.txt | tr '\n' '/' | sed 's|/$||')
		printf '%s\t%s\t-\t-\tp99 per instance %s\n' "webhooks, 2 instances on one database (c=$wc)" "$rate" "$p99" >>"$RESULTS"
		WEBHOOK_SUMMARY+=("webhooks on 2 instances at $wc connections in all: $rate events/s (p99 $p99)")
		stop_pid "$PID_A"
		stop_pid "$PID_B"
	fi
fi

# ---------------------------------------------------------------------------------------------
# 4 + 5: lists over SEED_CALLS stored calls
SEEDED_RSS=-
if [ -n "${SKIP_HISTORY:-}" ] || [ "$BACKEND" != sqlite ]; then
	echo "== history and admin lists skipped (SKIP_HISTORY, or a backend other than sqlite)" >&2
else
SEEDED="$WORK/seeded.db"
env -i PATH="$PATH" LIVEKIT_API_KEY=$API_KEY LIVEKIT_API_SECRET=$API_SECRET \
	CALLSTATE_SERVICE_TOKENS="$SVC_TOKEN" CALLSTATE_DB="sqlite:$SEEDED" "$BIN" migrate 2>"$WORK/migrate.log"
BASE=$(($(date +%s%3N) - SEED_CALLS * 2500 - 3600000))
echo "== seeding $SEED_CALLS calls into $SEEDED" >&2
SEED_START=$(date +%s%3N)
sed -e "s/@N@/$SEED_CALLS/g" -e "s/@BASE@/$BASE/g" "$BENCH/seed.sql" | sqlite3 "$SEEDED" >/dev/null
SEED_S=$(awk -v a="$SEED_START" -v b="$(date +%s%3N)" 'BEGIN { printf "%.1f", (b - a) / 1000 }')
echo "== seeded in ${SEED_S}s: $(sqlite3 "$SEEDED" 'SELECT count(*) FROM calls') calls, $(du -h "$SEEDED" | cut -f1)" >&2
PORT=$(free_port)
start_callstate seeded "$PORT" "$WORK/seeded.log"
SEEDED_RSS=$(rss_kb "$CS_PID")
# sanity: the first page of a user's history and of the admin filter
curl -sf -H "Authorization: Bearer $SVC_TOKEN" "http://127.0.0.1:$PORT/v1/users/user-00042/calls" |
	jq -e '(.calls | length) == ([50, '"$SEED_CALLS"' / 5000 | floor] | min) or (.calls | length) > 0' >/dev/null ||
	echo "WARNING: user-00042 has no history" >&2
curl -sf -H "Authorization: Bearer $ADM_TOKEN" "http://127.0.0.1:$PORT/v1/calls?status=ended&kind=video" |
	jq -e '.calls | length == 50 and all(.status == "ended" and .kind == "video")' >/dev/null ||
	echo "WARNING: the admin filter page is wrong" >&2
run_wrk "history GET /v1/users/{u}/calls ($SEED_LABEL)" "http://127.0.0.1:$PORT" "$BENCH/get.lua" "$SVC_TOKEN" "/v1/users/%s/calls" 10000
run_wrk "admin GET /v1/calls?status=ended&kind=video ($SEED_LABEL)" "http://127.0.0.1:$PORT" "$BENCH/get.lua" "$ADM_TOKEN" "/v1/calls?status=ended&kind=video"
stop_pid "$CS_PID"
fi

# ---------------------------------------------------------------------------------------------
# 6: peers
if [ -z "${SKIP_PEERS:-}" ] && [ -d "$PEERS" ]; then
	if [ -f "$PEERS/civetweb-ceiling/ceiling.c" ] && cc -O2 -o "$WORK/ceiling" "$PEERS/civetweb-ceiling/ceiling.c" -lcivetweb 2>"$WORK/ceiling-build.log"; then
		PORT=$(free_port)
		"$WORK/ceiling" "$PORT" "$SERVER_THREADS" one >/dev/null 2>&1 &
		CPID=$!
		PIDS+=("$CPID")
		if wait_http "http://127.0.0.1:$PORT/"; then
			run_wrk "peer: CivetWeb ceiling, token-sized POST" "http://127.0.0.1:$PORT" "$BENCH/token.lua" "$MEMBERS_FILE" "$SVC_TOKEN"
		fi
		stop_pid "$CPID"
	else
		echo "== ceiling peer skipped (no compiler or libcivetweb)" >&2
	fi
	if command -v node >/dev/null && command -v npm >/dev/null && [ -f "$PEERS/node-sdk/server.js" ]; then
		cp -r "$PEERS" "$WORK/peers"
		if (cd "$WORK/peers" && npm ci --no-audit --no-fund >"$WORK/npm.log" 2>&1); then
			for workers in 0 2; do
				PORT=$(free_port)
				(cd "$WORK/peers" && env PORT="$PORT" WORKERS=$workers DB="$WORK/node-sdk-$workers.db" \
					LIVEKIT_API_KEY=$API_KEY LIVEKIT_API_SECRET=$API_SECRET node node-sdk/server.js) >/dev/null 2>&1 &
				NPID=$!
				PIDS+=("$NPID")
				for _ in $(seq 1 100); do
					curl -s -o /dev/null -X POST "http://127.0.0.1:$PORT/v1/calls/x/token" -d '{"identity":"a"}' && break
					sleep 0.1
				done
				run_wrk "peer: Node SDK tokens (workers=$workers)" "http://127.0.0.1:$PORT" "$PEERS/token.lua"
				# The same kind of webhooks as callstate's run (the peer inserts raw rows with
				# synchronous=NORMAL: no fsync per event, and applies nothing).
				if [ -z "${SKIP_WEBHOOKS:-}" ] && have_sdk; then
					gen_webhooks "$MEMBERS_FILE" "$WEBHOOK_PAIRS" "$WORK/webhooks-peer.txt" "p$workers$(head -c 4 /dev/urandom | od -An -tx1 | tr -d ' \n')"
					run_wrk "peer: Node SDK webhooks (workers=$workers)" "http://127.0.0.1:$PORT" \
						"$BENCH/webhook.lua" "$WORK/webhooks-peer.txt" "$WRK_THREADS"
					rm -f "$WORK/webhooks-peer.txt"
				fi
				stop_pid "$NPID"
			done
		else
			echo "== node peer skipped (npm ci failed, see $WORK/npm.log)" >&2
		fi
	fi
fi

# ---------------------------------------------------------------------------------------------
# 7: connection attacks, against a fresh server and one real call
ATTACK_REPORT=""
if [ -z "${SKIP_ATTACK:-}" ] && command -v node >/dev/null; then
	PORT=$(free_port)
	start_callstate attack "$PORT" "$WORK/attack.log"
	attack_call=$(curl -s -H "Authorization: Bearer $SVC_TOKEN" -H 'Content-Type: application/json' \
		-d '{"caller":"attack-caller","callees":["attack-callee"],"kind":"audio","ring_timeout_s":300}' \
		"http://127.0.0.1:$PORT/v1/calls" | jq -r .call.id)
	echo "== attack: $ATTACK_IDLE idle + $ATTACK_SLOW slow-body connections, ${ATTACK_SECONDS}s" >&2
	ATTACK_REPORT=$(node "$BENCH/attack.mjs" --url "http://127.0.0.1:$PORT" --pid "$CS_PID" \
		--token "$SVC_TOKEN" --call "$attack_call" --user attack-callee \
		--idle "$ATTACK_IDLE" --slow "$ATTACK_SLOW" --seconds "$ATTACK_SECONDS" 2>&1) || true
	stop_pid "$CS_PID"
fi

# ---------------------------------------------------------------------------------------------
# 8: webhooks while retention purges RETENTION_CALLS calls that ended long ago
# (bench/seed-retention.sql), against the same load on the same database with nothing to purge.
RETENTION_REPORT=""
metric() { # metric PORT NAME → the value of an unlabelled metric
	curl -s -H "Authorization: Bearer $ADM_TOKEN" "http://127.0.0.1:$1/metrics" | awk -v n="$2" '$1 == n { print $2 }'
}
if [ -n "${SKIP_RETENTION:-}" ] || [ "$BACKEND" != sqlite ] || ! have_sdk; then
	echo "== retention skipped (SKIP_RETENTION, a backend other than sqlite, or no SDKs)" >&2
else
	wc=$(echo "$WEBHOOK_CONNS" | awk '{print $1}')
	PORT=$(free_port)
	start_callstate retention "$PORT" "$WORK/retention.log"
	create_calls "$PORT" "$WORK/rt-members.tsv" rt
	for run in kept purged; do
		gen_webhooks "$WORK/rt-members.tsv" "$WEBHOOK_PAIRS" "$WORK/rt-$run.txt" "r$run$(head -c 4 /dev/urandom | od -An -tx1 | tr -d ' \n')"
	done
	stop_pid "$CS_PID"
	# Every seeded call ended an hour before the 30 days that are kept, or earlier.
	BASE=$(($(date +%s%3N) - (30 * 24 + 1) * 3600000 - RETENTION_CALLS * 2000 - 60000))
	echo "== seeding $RETENTION_CALLS old calls into retention.db" >&2
	sed -e "s/@N@/$RETENTION_CALLS/g" -e "s/@BASE@/$BASE/g" "$BENCH/seed-retention.sql" | sqlite3 "$WORK/retention.db" >/dev/null
	# The seed never syncs: without this the server's first checkpoint would flush its 2 GB,
	# and the first run's fdatasyncs wait behind that.
	sync
	echo "== seeded: $(du -h "$WORK/retention.db" | cut -f1)" >&2
	start_callstate retention "$PORT" "$WORK/retention.log"
	RUN_CONNS=$wc run_wrk "webhooks, nothing purged, $RETENTION_CALLS old calls kept (c=$wc)" "http://127.0.0.1:$PORT" \
		"$BENCH/webhook.lua" "$WORK/rt-kept.txt" "$WRK_THREADS"
	alive "$CS_PID" "$WORK/retention.log"
	stop_pid "$CS_PID"
	PURGE_START=$(date +%s%3N)
	CS_ENV="CALLSTATE_RETENTION_DAYS=30" start_callstate retention "$PORT" "$WORK/retention.log"
	RUN_CONNS=$wc run_wrk "webhooks during the purge of $RETENTION_CALLS calls (c=$wc)" "http://127.0.0.1:$PORT" \
		"$BENCH/webhook.lua" "$WORK/rt-purged.txt" "$WRK_THREADS"
	alive "$CS_PID" "$WORK/retention.log"
	DURING=$(metric "$PORT" callstate_calls_purged_total)
	DURING_S=$(awk -v a="$PURGE_START" -v b="$(date +%s%3N)" 'BEGIN { printf "%.1f", (b - a) / 1000 }')
	note "purged $DURING calls in ${DURING_S}s from the start"
	# Then the purge alone for RETENTION_IDLE_S, rather than to its end: the bench stays short.
	sleep "$RETENTION_IDLE_S"
	AFTER=$(metric "$PORT" callstate_calls_purged_total)
	RETENTION_REPORT="retention: $DURING calls purged in the first ${DURING_S}s (under the webhook load, $(awk -v n="$DURING" -v s="$DURING_S" 'BEGIN { printf "%.0f", n / s }')/s), then $((AFTER - DURING)) in ${RETENTION_IDLE_S}s without load ($(((AFTER - DURING) / RETENTION_IDLE_S))/s)"
	stop_pid "$CS_PID"
	rm -f "$WORK"/rt-*.txt
fi

# ---------------------------------------------------------------------------------------------
echo
echo "$("$BIN" --version 2>/dev/null | head -n1) on $BACKEND  ($(nproc) CPUs, wrk -t$WRK_THREADS -c$CONNS -d$DURATION, server threads $SERVER_THREADS)"
echo "RSS: idle ${IDLE_RSS} kB, after the token+create runs ${LOADED_RSS} kB, idle on the ${SEED_CALLS}-call DB ${SEEDED_RSS} kB"
printf '%-52s %10s %9s %9s  %s\n' "benchmark" "req/s" "p50 ms" "p99 ms" "notes"
while IFS=$'\t' read -r name rps p50 p99 notes; do
	printf '%-52s %10s %9s %9s  %s\n' "$name" "$rps" "$p50" "$p99" "$notes"
done <"$RESULTS"
[ -z "$TOKEN_REPORT" ] || printf '%s\n' "$TOKEN_REPORT"
for line in "${WEBHOOK_SUMMARY[@]}"; do echo "$line"; done
[ -z "$ATTACK_REPORT" ] || printf '%s\n' "$ATTACK_REPORT"
[ -z "$RETENTION_REPORT" ] || printf '%s\n' "$RETENTION_REPORT"

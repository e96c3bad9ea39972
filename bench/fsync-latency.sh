#!/usr/bin/env bash
# The disk's fdatasync latency where the bench's databases live (bench/fsync-latency.c): the
# floor under any durable answer's latency. Knobs: DIR (/tmp, as bench/run.sh's databases), N
# (2000 syncs), PAGES (40: about one group commit's WAL frames at the bench's load).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d "${DIR:-/tmp}/callstate-fsync.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
cc -O2 -Wall -Wextra -o "$WORK/fsync-latency" "$ROOT/bench/fsync-latency.c"
"$WORK/fsync-latency" "$WORK/file" "${N:-2000}" "${PAGES:-40}"

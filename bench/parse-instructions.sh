#!/usr/bin/env bash
# Instructions the webhook handler's two CPU steps cost per request, counted by callgrind (a
# measure a shared, noisy machine does not move): webhook_event_parse of LIVEKIT.md §3's
# participant_joined and participant_left bodies, and webhook_verify of §2's token (b) with its
# room_finished body. For comparing builds of the same code at two commits.
#   bench/parse-instructions.sh BUILD_DIR [BUILD_DIR ...]
# Each BUILD_DIR's libcallstate_core.a is linked into a small driver that runs each step N
# (1000) times; callgrind collects only inside the step (--toggle-collect), so Ir / N is the
# step's own cost, start-up excluded.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-1000}
command -v valgrind >/dev/null || { echo "needs valgrind" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cat >"$work/driver.c" <<'C'
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "webhook.h"

static const char joined[] =
	"{\"event\":\"participant_joined\",\"room\":{\"sid\":\"RM_tQ8xVvZ3kT9a\",\"name\":\"call-7f3a\","
	"\"emptyTimeout\":300,\"departureTimeout\":20,\"creationTime\":\"1767225600\","
	"\"creationTimeMs\":\"1767225600123\",\"enabledCodecs\":[{\"mime\":\"audio/opus\"},"
	"{\"mime\":\"video/VP8\"}],\"numParticipants\":1,\"version\":{\"unixMicro\":"
	"\"1767225601502311\",\"ticks\":1}},\"participant\":{\"sid\":\"PA_Jx4bN8sQw2Lm\","
	"\"identity\":\"user-42\",\"state\":\"ACTIVE\",\"metadata\":\"{\\\"uid\\\":42}\","
	"\"joinedAt\":\"1767225601\",\"joinedAtMs\":\"1767225601456\",\"name\":\"Alice\","
	"\"version\":3,\"permission\":{\"canSubscribe\":true,\"canPublish\":true,"
	"\"canPublishData\":true,\"canPublishSources\":[\"CAMERA\",\"MICROPHONE\",\"SCREEN_SHARE\","
	"\"SCREEN_SHARE_AUDIO\"]},\"attributes\":{\"role\":\"host\"},\"clientProtocol\":1},"
	"\"id\":\"EV_kKc9DW235ytJ\",\"createdAt\":\"1767225601\"}";
static const char left[] =
	"{\"event\":\"participant_left\",\"room\":{\"sid\":\"RM_tQ8xVvZ3kT9a\",\"name\":\"call-7f3a\","
	"\"emptyTimeout\":300,\"departureTimeout\":20,\"creationTime\":\"1767225600\","
	"\"creationTimeMs\":\"1767225600123\",\"enabledCodecs\":[{\"mime\":\"audio/opus\"},"
	"{\"mime\":\"video/VP8\"}],\"version\":{\"unixMicro\":\"1767227412880310\",\"ticks\":4}},"
	"\"participant\":{\"sid\":\"PA_Jx4bN8sQw2Lm\",\"identity\":\"user-42\",\"state\":"
	"\"DISCONNECTED\",\"metadata\":\"{\\\"uid\\\":42}\",\"joinedAt\":\"1767225601\","
	"\"joinedAtMs\":\"1767225601456\",\"name\":\"Alice\",\"version\":11,\"permission\":{"
	"\"canSubscribe\":true,\"canPublish\":true,\"canPublishData\":true},\"isPublisher\":true,"
	"\"attributes\":{\"role\":\"host\"},\"disconnectReason\":\"CLIENT_INITIATED\"},"
	"\"id\":\"EV_zWtQEAJwGNk2\",\"createdAt\":\"1767227412\"}";
static const char finished[] =
	"{\"event\":\"room_finished\",\"room\":{\"sid\":\"RM_tQ8xVvZ3kT9a\",\"name\":\"call-7f3a\","
	"\"emptyTimeout\":300,\"departureTimeout\":20,\"creationTime\":\"1767225600\","
	"\"creationTimeMs\":\"1767225600123\",\"enabledCodecs\":[{\"mime\":\"audio/opus\"},"
	"{\"mime\":\"video/VP8\"}],\"version\":{\"unixMicro\":\"1767227433001207\",\"ticks\":5}},"
	"\"id\":\"EV_St9wgVG8SGcu\",\"createdAt\":\"1767227433\"}";
static const char token[] =
	"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
	"eyJpc3MiOiJBUElkZXZrZXkiLCJleHAiOjE3NjcyMjc3MzMsIm5iZiI6MTc2NzIyNzQzMywiaWF0IjoxNzY3MjI3ND"
	"MzLCJzaGEyNTYiOiJ4a2t4UWdETytHa3pxZXB5QU44azlFNTNqTU9RRE83VjAxMnhMWXdrSkNFPSJ9."
	"5Ua-8CZnLKJn8EXxfxH-6EOsPR0__-uUuetSxl6xGa4";

int main(int argc, char **argv)
{
	int n = atoi(argv[1]);
	struct config cfg = {.api_key = {"APIdevkey", "devsecret-0123456789abcdef0123456789"}};
	struct webhook_keys keys;
	struct webhook_event ev;
	const char *body = strcmp(argv[2], "joined") == 0 ? joined : left;

	if (webhook_keys_init(&keys, &cfg) != ERR_OK)
		return 1;
	for (int i = 0; i < n; i++) {
		if (strcmp(argv[2], "verify") == 0) {
			if (webhook_verify(&keys, token, finished, strlen(finished), 1767227443, NULL,
					   NULL) != ERR_OK)
				return 1;
		} else if (webhook_event_parse(body, strlen(body), &ev) != ERR_OK) {
			return 1;
		}
	}
	return 0;
}
C

for dir in "$@"; do
	cc -O2 -Iinclude -o "$work/driver" "$work/driver.c" "$dir/libcallstate_core.a" \
		$(pkg-config --libs jansson libcrypto)
	line="$dir:"
	for step in joined left verify; do
		fn=webhook_event_parse
		[ "$step" = verify ] && fn=webhook_verify
		valgrind --tool=callgrind --toggle-collect="$fn" --callgrind-out-file="$work/out" \
			"$work/driver" "$N" "$step" >/dev/null 2>&1
		ir=$(awk '/^summary:/ { print $2 }' "$work/out")
		line="$line $step $((ir / N))"
	done
	echo "$line Ir per call"
done

/* LiveKit webhooks in (LIVEKIT.md §2–§3): checking the Authorization JWT against the raw body,
 * then parsing the body into a plain struct webhook_event. No HTTP, no storage, no logging: the
 * handler reads the request, calls webhook_verify (→ 401) and webhook_event_parse (→ 400), logs
 * once and applies the event.
 * Everything here is reentrant. A struct webhook_keys is immutable after webhook_keys_init and is
 * shared by every thread; a struct webhook_event is plain inline data the caller owns. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "err.h"
#include "model.h"

#define WEBHOOK_AUTH_MAX 8192      /* bytes of Authorization looked at; LiveKit sends ~330 */
#define WEBHOOK_LEEWAY_S 60        /* clock skew allowed on exp and nbf, as LiveKit's verifier */
#define WEBHOOK_ID_MAX 64          /* event id, "EV_" + 12 characters today */
#define WEBHOOK_EVENT_NAME_MAX 64  /* event name, "participant_connection_aborted" is 30 */
#define WEBHOOK_ROOM_NAME_MAX 256  /* ours are ROOM_LEN; foreign rooms are bounded too */

/* ---- Verification ---------------------------------------------------------------------- */

struct webhook_key {
	const char *id;     /* API key, matched against the token's iss */
	const char *secret; /* HMAC-SHA256 key: the secret string's bytes, used as is */
	size_t secret_len;
};

struct webhook_keys {
	struct webhook_key keys[CONFIG_MAX_KEYS + 1];
	size_t n;
};

/* Collects the signing key (LIVEKIT_API_KEY/SECRET) and every LIVEKIT_KEYS pair of cfg. The
 * strings are borrowed: cfg must outlive ret. Pairs with an empty key or secret are skipped.
 * ERR_INVALID when no usable key is left (every webhook would then be refused). */
enum err webhook_keys_init(struct webhook_keys *ret, const struct config *cfg);

/* Checks a webhook request as LiveKit signs it: authorization is the Authorization header value
 * (the bare JWT; a leading "Bearer " is tolerated), NULL when absent; body/body_len are the raw
 * body bytes exactly as received; now_s is the current Unix time in seconds.
 * Accepts only an HS256 JWS whose iss names a configured key, whose signature matches that key's
 * secret, whose exp (required) and nbf (optional) hold at now_s within WEBHOOK_LEEWAY_S, and
 * whose sha256 claim is the standard base64 of SHA-256(body). MAC and digest are compared in
 * constant time.
 * ERR_OK: *ret_key_id (may be NULL) points at the matching key's id, borrowed from keys.
 * ERR_UNAUTHENTICATED on every failure: *why (may be NULL) then names the check that failed,
 * a static string for the log only; it never contains token or secret material. */
enum err webhook_verify(const struct webhook_keys *keys, const char *authorization,
			const void *body, size_t body_len, int64_t now_s, const char **ret_key_id,
			const char **why);

/* ---- Parsing --------------------------------------------------------------------------- */

enum webhook_kind {
	WEBHOOK_IGNORED = 0, /* egress_*, ingress_*, agent_*, or a name unknown to callstate */
	WEBHOOK_ROOM_STARTED,
	WEBHOOK_ROOM_FINISHED,
	WEBHOOK_PARTICIPANT_JOINED,
	WEBHOOK_PARTICIPANT_LEFT,
	WEBHOOK_PARTICIPANT_CONNECTION_ABORTED,
	WEBHOOK_TRACK_PUBLISHED,
	WEBHOOK_TRACK_UNPUBLISHED,
};

/* LiveKit enum fields are kept as LiveKit's enum value names ("CLIENT_INITIATED",
 * "ROOM_END_API_DELETE", "SCREEN_SHARE"), whether the body spelt them as a name or a number.
 * "" is the enum's zero value, whether absent (protojson omits it), 0, or its zero name:
 * UNKNOWN_REASON, ROOM_END_UNKNOWN, STANDARD, JOINING, AUDIO, UNKNOWN. A number with no name in
 * callstate's tables is kept as its decimal text ("17"), an unknown name as sent.
 * Strings and numbers absent from the body are "" and 0. */
struct webhook_room {
	char sid[SID_MAX + 1];
	char name[WEBHOOK_ROOM_NAME_MAX + 1];
};

struct webhook_participant {
	char sid[SID_MAX + 1]; /* PA_…, one per session: key sessions by it */
	char identity[IDENTITY_MAX + 1];
	int64_t joined_at;    /* Unix seconds */
	int64_t joined_at_ms; /* Unix milliseconds; 0 from servers that do not send it */
	char kind[REASON_MAX + 1];              /* "" = STANDARD; EGRESS, SIP, AGENT, … */
	char state[REASON_MAX + 1];             /* "" = JOINING; JOINED, ACTIVE, DISCONNECTED */
	char disconnect_reason[REASON_MAX + 1]; /* "" = not given (older servers never give it) */
	bool hidden;                            /* permission.hidden */
	bool recorder;                          /* permission.recorder, deprecated for kind */
	bool agent;                             /* permission.agent, deprecated for kind */
};

struct webhook_track {
	char sid[SID_MAX + 1];
	char type[REASON_MAX + 1];   /* "" = AUDIO; VIDEO, DATA */
	char source[REASON_MAX + 1]; /* "" = UNKNOWN; CAMERA, MICROPHONE, SCREEN_SHARE, … */
};

struct webhook_event {
	enum webhook_kind kind;
	char name[WEBHOOK_EVENT_NAME_MAX + 1]; /* the event name as sent, also when ignored */
	char id[WEBHOOK_ID_MAX + 1];           /* never "": the deduplication key */
	int64_t created_at;                    /* Unix seconds; also the "left at" of a leave */
	int32_t num_dropped;                   /* legacy notifier only (LIVEKIT.md §4) */
	char room_end_reason[REASON_MAX + 1];  /* "" = not given */
	struct webhook_room room;
	struct webhook_participant participant;
	struct webhook_track track;
};

/* Parses one webhook body (body need not be NUL-terminated) in one json_scan pass. Keys are
 * accepted in lowerCamelCase or snake_case (both spellings of one field → ERR_INVALID, as
 * protojson does), int64 as a decimal string or a JSON integer, enums as a name or a number,
 * null as absent; unknown fields are ignored. Which sub-objects an event kind needs is the
 * caller's rule, not checked here.
 * ERR_OK: *ret_ev is filled. ERR_INVALID (*ret_ev untouched): not a JSON object (as jansson would
 * refuse it: json_scan.h), duplicate keys, no non-empty "event" or "id", a known field of the
 * wrong type, a negative time or count, an enum name that is not an identifier, a string over
 * its bound. ERR_NOMEM when memory ran out (answer 5xx so that LiveKit retries). */
enum err webhook_event_parse(const char *body, size_t len, struct webhook_event *ret_ev);

/* True for a participant that can be a call member: kind STANDARD, not hidden, not a recorder,
 * not an agent. Egress, ingress, SIP, agent, connector and bridge participants (and kinds newer
 * than callstate) also send participant events and must not count as members (LIVEKIT.md §6.11).
 * Identities are not looked at: a user id may well start with "EG_". */
bool webhook_participant_is_standard(const struct webhook_participant *p);

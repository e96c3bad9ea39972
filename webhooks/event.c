/* Parsing of LiveKit webhook bodies (LIVEKIT.md §3) into a struct webhook_event: one jansson
 * parse, then lookups of the few fields callstate acts on under both protojson spellings. The
 * enum tables below mirror livekit_models.proto / livekit_webhook.proto (protocol 1.51). */
#include "webhook.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "jsonutil.h"

/* Value names indexed by number; NULL marks a number the proto leaves unused. */
struct enum_names {
	const char *const *names;
	size_t n;
};
#define ENUM_NAMES(a) {(a), sizeof(a) / sizeof((a)[0])}

static const char *const participant_kind[] = {
	"STANDARD", "INGRESS", "EGRESS", "SIP", "AGENT", NULL, NULL, "CONNECTOR", "BRIDGE",
};
static const char *const participant_state[] = {"JOINING", "JOINED", "ACTIVE", "DISCONNECTED"};
static const char *const disconnect_reason[] = {
	"UNKNOWN_REASON",   "CLIENT_INITIATED",   "DUPLICATE_IDENTITY", "SERVER_SHUTDOWN",
	"PARTICIPANT_REMOVED", "ROOM_DELETED",    "STATE_MISMATCH",     "JOIN_FAILURE",
	"MIGRATION",        "SIGNAL_CLOSE",       "ROOM_CLOSED",        "USER_UNAVAILABLE",
	"USER_REJECTED",    "SIP_TRUNK_FAILURE",  "CONNECTION_TIMEOUT", "MEDIA_FAILURE",
	"AGENT_ERROR",
};
static const char *const room_end_reason[] = {
	"ROOM_END_UNKNOWN",         "ROOM_END_API_DELETE", "ROOM_END_IDLE_TIMEOUT",
	"ROOM_END_SERVER_SHUTDOWN", "ROOM_END_SUPERSEDED", "ROOM_END_OPEN_FAILED",
};
static const char *const track_type[] = {"AUDIO", "VIDEO", "DATA"};
static const char *const track_source[] = {
	"UNKNOWN", "CAMERA", "MICROPHONE", "SCREEN_SHARE", "SCREEN_SHARE_AUDIO",
};

static const struct enum_names kinds = ENUM_NAMES(participant_kind);
static const struct enum_names states = ENUM_NAMES(participant_state);
static const struct enum_names disconnect_reasons = ENUM_NAMES(disconnect_reason);
static const struct enum_names room_end_reasons = ENUM_NAMES(room_end_reason);
static const struct enum_names track_types = ENUM_NAMES(track_type);
static const struct enum_names track_sources = ENUM_NAMES(track_source);

static const struct {
	const char *name;
	enum webhook_kind kind;
} event_kinds[] = {
	{"room_started", WEBHOOK_ROOM_STARTED},
	{"room_finished", WEBHOOK_ROOM_FINISHED},
	{"participant_joined", WEBHOOK_PARTICIPANT_JOINED},
	{"participant_left", WEBHOOK_PARTICIPANT_LEFT},
	{"participant_connection_aborted", WEBHOOK_PARTICIPANT_CONNECTION_ABORTED},
	{"track_published", WEBHOOK_TRACK_PUBLISHED},
	{"track_unpublished", WEBHOOK_TRACK_UNPUBLISHED},
};

/* A field under its JSON name (lowerCamelCase) or its proto name (snake_case, NULL when the same
 * word). Protojson accepts either and refuses both at once; null means absent. *ret is NULL when
 * the field is absent. */
static bool field(const json_t *obj, const char *camel, const char *snake, const json_t **ret)
{
	const json_t *a = json_object_get(obj, camel);
	const json_t *b = snake ? json_object_get(obj, snake) : NULL;

	if (a && b)
		return false;
	*ret = json_is_null(a ? a : b) ? NULL : (a ? a : b);
	return true;
}

/* Copies a string field into out (cap bytes with the NUL); longer → false, absent → "". */
static bool get_string(const json_t *obj, const char *camel, const char *snake, char *out,
		       size_t cap)
{
	const json_t *v;

	if (!field(obj, camel, snake, &v))
		return false;
	if (!v)
		return true;
	if (!json_is_string(v))
		return false;
	/* jansson refuses \u0000 (no JSON_ALLOW_NUL), so the length is the C string's. */
	size_t len = json_string_length(v);
	if (len >= cap)
		return false;
	memcpy(out, json_string_value(v), len + 1);
	return true;
}

/* The int64 fields callstate reads are times and counts: a JSON integer or, as protojson writes
 * int64, a string of decimal digits; negative values are refused. */
static bool get_int64(const json_t *obj, const char *camel, const char *snake, int64_t *out)
{
	const json_t *v;

	if (!field(obj, camel, snake, &v))
		return false;
	if (!v)
		return true;
	if (json_is_integer(v)) {
		if (json_integer_value(v) < 0)
			return false;
		*out = json_integer_value(v);
		return true;
	}
	if (!json_is_string(v))
		return false;
	const char *s = json_string_value(v);
	size_t len = json_string_length(v);
	uint64_t n = 0;
	if (len == 0)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		unsigned d = (unsigned)(s[i] - '0');
		if (n > ((uint64_t)INT64_MAX - d) / 10)
			return false;
		n = n * 10 + d;
	}
	*out = (int64_t)n;
	return true;
}

static bool get_int32(const json_t *obj, const char *camel, const char *snake, int32_t *out)
{
	int64_t v = 0;

	if (!get_int64(obj, camel, snake, &v) || v > INT32_MAX)
		return false;
	*out = (int32_t)v;
	return true;
}

static bool get_bool(const json_t *obj, const char *name, bool *out)
{
	const json_t *v;

	if (!field(obj, name, NULL, &v))
		return false;
	if (v && !json_is_boolean(v))
		return false;
	*out = json_is_true(v);
	return true;
}

static bool get_object(const json_t *obj, const char *camel, const char *snake,
		       const json_t **ret)
{
	return field(obj, camel, snake, ret) && (!*ret || json_is_object(*ret));
}

/* An enum value as its name (see webhook.h): from a number through the table, from a string as
 * sent once it looks like a proto identifier, and the zero value always as "". */
static bool get_enum(const json_t *obj, const char *camel, const char *snake,
		     const struct enum_names *t, char out[REASON_MAX + 1])
{
	const json_t *v;

	if (!field(obj, camel, snake, &v))
		return false;
	if (!v)
		return true;
	if (json_is_integer(v)) {
		json_int_t n = json_integer_value(v);
		if (n < INT32_MIN || n > INT32_MAX) /* proto enums are int32 */
			return false;
		if (n > 0 && (size_t)n < t->n && t->names[n])
			memcpy(out, t->names[n], strlen(t->names[n]) + 1);
		else if (n != 0)
			snprintf(out, REASON_MAX + 1, "%" PRId32, (int32_t)n);
		return true;
	}
	if (!json_is_string(v))
		return false;
	const char *s = json_string_value(v);
	size_t len = json_string_length(v);
	if (len == 0 || len > REASON_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '_'))
			return false;
	}
	if (strcmp(s, t->names[0]) != 0)
		memcpy(out, s, len + 1);
	return true;
}

static bool parse_room(const json_t *o, struct webhook_room *r)
{
	return get_string(o, "sid", NULL, r->sid, sizeof r->sid) &&
	       get_string(o, "name", NULL, r->name, sizeof r->name);
}

static bool parse_participant(const json_t *o, struct webhook_participant *p)
{
	const json_t *perm;

	return get_string(o, "sid", NULL, p->sid, sizeof p->sid) &&
	       get_string(o, "identity", NULL, p->identity, sizeof p->identity) &&
	       get_string(o, "name", NULL, p->name, sizeof p->name) &&
	       get_int64(o, "joinedAt", "joined_at", &p->joined_at) &&
	       get_int64(o, "joinedAtMs", "joined_at_ms", &p->joined_at_ms) &&
	       get_enum(o, "kind", NULL, &kinds, p->kind) &&
	       get_enum(o, "state", NULL, &states, p->state) &&
	       get_enum(o, "disconnectReason", "disconnect_reason", &disconnect_reasons,
			p->disconnect_reason) &&
	       get_object(o, "permission", NULL, &perm) &&
	       (!perm || (get_bool(perm, "hidden", &p->hidden) &&
			  get_bool(perm, "recorder", &p->recorder) &&
			  get_bool(perm, "agent", &p->agent)));
}

static bool parse_track(const json_t *o, struct webhook_track *t)
{
	return get_string(o, "sid", NULL, t->sid, sizeof t->sid) &&
	       get_enum(o, "type", NULL, &track_types, t->type) &&
	       get_enum(o, "source", NULL, &track_sources, t->source);
}

static enum webhook_kind event_kind(const char *name)
{
	for (size_t i = 0; i < sizeof event_kinds / sizeof event_kinds[0]; i++)
		if (strcmp(name, event_kinds[i].name) == 0)
			return event_kinds[i].kind;
	return WEBHOOK_IGNORED;
}

static bool parse_event(const json_t *root, struct webhook_event *ev)
{
	const json_t *room, *participant, *track;

	if (!json_is_object(root) || !get_string(root, "event", NULL, ev->name, sizeof ev->name) ||
	    !ev->name[0] || !get_string(root, "id", NULL, ev->id, sizeof ev->id) || !ev->id[0])
		return false;
	ev->kind = event_kind(ev->name);
	return get_int64(root, "createdAt", "created_at", &ev->created_at) &&
	       get_int32(root, "numDropped", "num_dropped", &ev->num_dropped) &&
	       get_enum(root, "roomEndReason", "room_end_reason", &room_end_reasons,
			ev->room_end_reason) &&
	       get_object(root, "room", NULL, &room) && (!room || parse_room(room, &ev->room)) &&
	       get_object(root, "participant", NULL, &participant) &&
	       (!participant || parse_participant(participant, &ev->participant)) &&
	       get_object(root, "track", NULL, &track) && (!track || parse_track(track, &ev->track));
}

enum err webhook_event_parse(const char *body, size_t len, struct webhook_event *ret_ev)
{
	struct webhook_event ev = {0};
	enum json_load_result result;
	json_t *root = json_load_bounded(body, len, &result);

	if (!root)
		/* Out of memory is ours, not the sender's: 500 makes LiveKit retry, 400 would not. */
		return result == JSON_LOAD_NOMEM ? ERR_NOMEM : ERR_INVALID;
	bool ok = parse_event(root, &ev);
	json_decref(root);
	if (!ok)
		return ERR_INVALID;
	*ret_ev = ev;
	return ERR_OK;
}

bool webhook_participant_is_standard(const struct webhook_participant *p)
{
	return !p->kind[0] && !p->hidden && !p->recorder && !p->agent;
}

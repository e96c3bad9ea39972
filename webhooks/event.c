/* Parsing of LiveKit webhook bodies (LIVEKIT.md §3) into a struct webhook_event: one json_scan
 * pass that checks the whole body and picks out the few fields callstate acts on, under both
 * protojson spellings, without building a tree. The enum tables below mirror
 * livekit_models.proto / livekit_webhook.proto (protocol 1.51). */
#include "webhook.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "json_scan.h"

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

/* Where json_scan puts each member callstate reads. A field with two protojson spellings has
 * two slots, lowerCamelCase first and snake_case right after it. */
enum slot {
	EVENT, ID, CREATED_AT, CREATED_AT_SNAKE, NUM_DROPPED, NUM_DROPPED_SNAKE, ROOM_END_REASON,
	ROOM_END_REASON_SNAKE, ROOM, PARTICIPANT, TRACK,
	ROOM_SID, ROOM_NAME,
	P_SID, P_IDENTITY, P_JOINED_AT, P_JOINED_AT_SNAKE, P_JOINED_AT_MS,
	P_JOINED_AT_MS_SNAKE, P_KIND, P_STATE, P_DISCONNECT_REASON, P_DISCONNECT_REASON_SNAKE,
	P_PERMISSION,
	PERM_HIDDEN, PERM_RECORDER, PERM_AGENT,
	T_SID, T_TYPE, T_SOURCE,
	N_SLOTS
};

#define MEMBERS(a) {(a), sizeof(a) / sizeof((a)[0])}

static const struct json_scan_member permission_members[] = {
	{"hidden", PERM_HIDDEN, NULL},
	{"recorder", PERM_RECORDER, NULL},
	{"agent", PERM_AGENT, NULL},
};
static const struct json_scan_object permission_object = MEMBERS(permission_members);

static const struct json_scan_member room_members[] = {
	{"sid", ROOM_SID, NULL},
	{"name", ROOM_NAME, NULL},
};
static const struct json_scan_member participant_members[] = {
	{"sid", P_SID, NULL},
	{"identity", P_IDENTITY, NULL},
	{"joinedAt", P_JOINED_AT, NULL},
	{"joined_at", P_JOINED_AT_SNAKE, NULL},
	{"joinedAtMs", P_JOINED_AT_MS, NULL},
	{"joined_at_ms", P_JOINED_AT_MS_SNAKE, NULL},
	{"kind", P_KIND, NULL},
	{"state", P_STATE, NULL},
	{"disconnectReason", P_DISCONNECT_REASON, NULL},
	{"disconnect_reason", P_DISCONNECT_REASON_SNAKE, NULL},
	{"permission", P_PERMISSION, &permission_object},
};
static const struct json_scan_member track_members[] = {
	{"sid", T_SID, NULL},
	{"type", T_TYPE, NULL},
	{"source", T_SOURCE, NULL},
};
static const struct json_scan_object room_object = MEMBERS(room_members);
static const struct json_scan_object participant_object = MEMBERS(participant_members);
static const struct json_scan_object track_object = MEMBERS(track_members);

static const struct json_scan_member event_members[] = {
	{"event", EVENT, NULL},
	{"id", ID, NULL},
	{"createdAt", CREATED_AT, NULL},
	{"created_at", CREATED_AT_SNAKE, NULL},
	{"numDropped", NUM_DROPPED, NULL},
	{"num_dropped", NUM_DROPPED_SNAKE, NULL},
	{"roomEndReason", ROOM_END_REASON, NULL},
	{"room_end_reason", ROOM_END_REASON_SNAKE, NULL},
	{"room", ROOM, &room_object},
	{"participant", PARTICIPANT, &participant_object},
	{"track", TRACK, &track_object},
};
static const struct json_scan_object event_object = MEMBERS(event_members);

/* A field under one spelling, or under either of two (slot and slot + 1). Protojson accepts
 * either and refuses both at once, also when one is null; null means absent. *ret is NULL when
 * the field is absent. */
static bool field(const struct json_scan_value *v, enum slot slot, bool two_spellings,
		  const struct json_scan_value **ret)
{
	const struct json_scan_value *a = &v[slot];
	const struct json_scan_value *b = two_spellings ? &v[slot + 1] : NULL;

	if (b && a->type != JSON_SCAN_ABSENT && b->type != JSON_SCAN_ABSENT)
		return false;
	if (b && a->type == JSON_SCAN_ABSENT)
		a = b;
	*ret = a->type == JSON_SCAN_ABSENT || a->type == JSON_SCAN_NULL ? NULL : a;
	return true;
}

/* Copies a string field into out (cap bytes with the NUL); longer → false, absent → "". The
 * scan refused \u0000, so the length is the C string's. */
static bool get_string(const struct json_scan_value *v, enum slot slot, char *out, size_t cap)
{
	const struct json_scan_value *s;

	if (!field(v, slot, false, &s))
		return false;
	return !s || json_scan_string(s, out, cap);
}

/* The int64 fields callstate reads are times and counts: a JSON integer or, as protojson writes
 * int64, a string of decimal digits; negative values are refused. */
static bool get_int64(const struct json_scan_value *v, enum slot slot, int64_t *out)
{
	const struct json_scan_value *s;

	if (!field(v, slot, true, &s))
		return false;
	if (!s)
		return true;
	if (s->type == JSON_SCAN_INTEGER) {
		if (s->integer < 0)
			return false;
		*out = s->integer;
		return true;
	}
	if (s->type != JSON_SCAN_STRING || s->len == 0)
		return false;
	struct json_scan_chars it;
	uint64_t n = 0;
	char c;
	json_scan_chars_init(&it, s);
	while (json_scan_chars_next(&it, &c)) {
		if (c < '0' || c > '9')
			return false;
		unsigned d = (unsigned)(c - '0');
		if (n > ((uint64_t)INT64_MAX - d) / 10)
			return false;
		n = n * 10 + d;
	}
	*out = (int64_t)n;
	return true;
}

/* Times LiveKit sends, in seconds or ms since the epoch, up to the last one RFC 3339 writes
 * (9999-12-31T23:59:59Z): callstate counts in ms, and no later time survives the * 1000. */
#define TIME_S_MAX INT64_C(253402300799)
#define TIME_MS_MAX (TIME_S_MAX * 1000 + 999)

static bool get_time(const struct json_scan_value *v, enum slot slot, int64_t max, int64_t *out)
{
	int64_t t = 0;

	if (!get_int64(v, slot, &t) || t > max)
		return false;
	*out = t;
	return true;
}

static bool get_int32(const struct json_scan_value *v, enum slot slot, int32_t *out)
{
	int64_t n = 0;

	if (!get_int64(v, slot, &n) || n > INT32_MAX)
		return false;
	*out = (int32_t)n;
	return true;
}

static bool get_bool(const struct json_scan_value *v, enum slot slot, bool *out)
{
	const struct json_scan_value *b;

	if (!field(v, slot, false, &b))
		return false;
	if (b && b->type != JSON_SCAN_TRUE && b->type != JSON_SCAN_FALSE)
		return false;
	*out = b && b->type == JSON_SCAN_TRUE;
	return true;
}

/* An object field: *ret is true when it is present (its members are then in their slots). */
static bool get_object(const struct json_scan_value *v, enum slot slot, bool *ret)
{
	const struct json_scan_value *o;

	if (!field(v, slot, false, &o) || (o && o->type != JSON_SCAN_OBJECT))
		return false;
	*ret = o != NULL;
	return true;
}

/* An enum value as its name (see webhook.h): from a number through the table, from a string as
 * sent once it looks like a proto identifier, and the zero value always as "". */
static bool get_enum(const struct json_scan_value *v, enum slot slot, bool two_spellings,
		     const struct enum_names *t, char out[REASON_MAX + 1])
{
	const struct json_scan_value *e;
	char name[REASON_MAX + 1];

	if (!field(v, slot, two_spellings, &e))
		return false;
	if (!e)
		return true;
	if (e->type == JSON_SCAN_INTEGER) {
		int64_t n = e->integer;
		if (n < INT32_MIN || n > INT32_MAX) /* proto enums are int32 */
			return false;
		if (n > 0 && (size_t)n < t->n && t->names[n])
			memcpy(out, t->names[n], strlen(t->names[n]) + 1);
		else if (n != 0)
			snprintf(out, REASON_MAX + 1, "%" PRId32, (int32_t)n);
		return true;
	}
	if (!json_scan_string(e, name, sizeof name) || !name[0])
		return false;
	for (size_t i = 0; name[i]; i++) {
		char c = name[i];
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '_'))
			return false;
	}
	if (strcmp(name, t->names[0]) != 0)
		memcpy(out, name, e->len + 1);
	return true;
}

static bool parse_room(const struct json_scan_value *v, struct webhook_room *r)
{
	return get_string(v, ROOM_SID, r->sid, sizeof r->sid) &&
	       get_string(v, ROOM_NAME, r->name, sizeof r->name);
}

static bool parse_participant(const struct json_scan_value *v, struct webhook_participant *p)
{
	bool perm;

	return get_string(v, P_SID, p->sid, sizeof p->sid) &&
	       get_string(v, P_IDENTITY, p->identity, sizeof p->identity) &&
	       get_time(v, P_JOINED_AT, TIME_S_MAX, &p->joined_at) &&
	       get_time(v, P_JOINED_AT_MS, TIME_MS_MAX, &p->joined_at_ms) &&
	       get_enum(v, P_KIND, false, &kinds, p->kind) &&
	       get_enum(v, P_STATE, false, &states, p->state) &&
	       get_enum(v, P_DISCONNECT_REASON, true, &disconnect_reasons, p->disconnect_reason) &&
	       get_object(v, P_PERMISSION, &perm) &&
	       (!perm || (get_bool(v, PERM_HIDDEN, &p->hidden) &&
			  get_bool(v, PERM_RECORDER, &p->recorder) &&
			  get_bool(v, PERM_AGENT, &p->agent)));
}

static bool parse_track(const struct json_scan_value *v, struct webhook_track *t)
{
	return get_string(v, T_SID, t->sid, sizeof t->sid) &&
	       get_enum(v, T_TYPE, false, &track_types, t->type) &&
	       get_enum(v, T_SOURCE, false, &track_sources, t->source);
}

static enum webhook_kind event_kind(const char *name)
{
	for (size_t i = 0; i < sizeof event_kinds / sizeof event_kinds[0]; i++)
		if (strcmp(name, event_kinds[i].name) == 0)
			return event_kinds[i].kind;
	return WEBHOOK_IGNORED;
}

static bool parse_event(const struct json_scan_value *v, struct webhook_event *ev)
{
	bool room, participant, track;

	if (!get_string(v, EVENT, ev->name, sizeof ev->name) || !ev->name[0] ||
	    !get_string(v, ID, ev->id, sizeof ev->id) || !ev->id[0])
		return false;
	ev->kind = event_kind(ev->name);
	return get_time(v, CREATED_AT, TIME_S_MAX, &ev->created_at) &&
	       get_int32(v, NUM_DROPPED, &ev->num_dropped) &&
	       get_enum(v, ROOM_END_REASON, true, &room_end_reasons, ev->room_end_reason) &&
	       get_object(v, ROOM, &room) && (!room || parse_room(v, &ev->room)) &&
	       get_object(v, PARTICIPANT, &participant) &&
	       (!participant || parse_participant(v, &ev->participant)) &&
	       get_object(v, TRACK, &track) && (!track || parse_track(v, &ev->track));
}

enum err webhook_event_parse(const char *body, size_t len, struct webhook_event *ret_ev)
{
	struct webhook_event ev = {0};
	struct json_scan_value values[N_SLOTS];
	enum json_load_result result = json_scan(body, len, &event_object, values, N_SLOTS);

	if (result != JSON_LOAD_OK)
		/* Out of memory is ours, not the sender's: 500 makes LiveKit retry, 400 would not. */
		return result == JSON_LOAD_NOMEM ? ERR_NOMEM : ERR_INVALID;
	if (!parse_event(values, &ev))
		return ERR_INVALID;
	*ret_ev = ev;
	return ERR_OK;
}

bool webhook_participant_is_standard(const struct webhook_participant *p)
{
	return !p->kind[0] && !p->hidden && !p->recorder && !p->agent;
}

/* The call model shared by the domain and storage. Plain data: no behaviour, no I/O.
 * Times are Unix milliseconds (int64_t); 0 means "not set" (JSON null). Strings that the API
 * bounds are stored inline so a call can be copied and freed without chasing pointers; the
 * unbounded parts (metadata, participant sessions) are heap-owned by the struct call. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define USER_ID_MAX 128        /* bytes of UTF-8, API.md */
#define IDENTITY_MAX 256       /* LiveKit's own limit on identities: agents and recorders in a
				* call's room may use all of it, members never more than USER_ID_MAX */
#define NAME_MAX_BYTES 256     /* display name given on create/accept/token */
#define CALL_MAX_CALLEES 32
#define CALL_MAX_MEMBERS (CALL_MAX_CALLEES + 1)
#define METADATA_MAX_BYTES 4096
#define ID_LEN 36              /* a UUID in its 8-4-4-4-12 text form */
#define ROOM_LEN (5 + ID_LEN)  /* "call_" + id */
#define SID_MAX 64             /* LiveKit sids (PA_…, RM_…) are short; bounded on input */
#define REASON_MAX 40          /* LiveKit enum names, e.g. "CLIENT_INITIATED" */
#define CHANGE_REF_MAX 128     /* a request id (X-Request-Id, bounded) or a webhook's event id */

enum call_kind { CALL_AUDIO, CALL_VIDEO };
enum call_status { CALL_RINGING, CALL_ACTIVE, CALL_ENDED };
enum call_outcome {
	OUTCOME_NONE, /* not ended */
	OUTCOME_COMPLETED,
	OUTCOME_MISSED,
	OUTCOME_DECLINED,
	OUTCOME_CANCELLED,
	OUTCOME_FAILED,
};
enum end_cause {
	CAUSE_NONE,
	CAUSE_END_REQUEST,
	CAUSE_LEAVE,
	CAUSE_DECLINED,
	CAUSE_RING_TIMEOUT,
	CAUSE_JOIN_TIMEOUT,
	CAUSE_ROOM_EMPTY,
	CAUSE_ROOM_FINISHED,
};
enum member_role { MEMBER_CALLER, MEMBER_CALLEE };
enum invite_state { INVITE_PENDING, INVITE_ACCEPTED, INVITE_DECLINED, INVITE_MISSED, INVITE_CANCELLED };

struct member {
	char user[USER_ID_MAX + 1];
	char name[NAME_MAX_BYTES + 1]; /* "" = not given */
	enum member_role role;
	enum invite_state invite;
	bool in_room;                  /* has an open participant session (webhooks) */
	bool left;                     /* said leave over the API; intent, kept for the rules */
	int64_t responded_at;
	int64_t token_minted_at;       /* first token of the accept (or creation, for the caller) */
	int64_t first_joined_at;
	int64_t last_left_at;
};

/* One LiveKit participant session (a reconnect is a new sid). */
struct participant {
	char sid[SID_MAX + 1];
	char user[IDENTITY_MAX + 1];
	int64_t joined_at;
	int64_t left_at;
	char disconnect_reason[REASON_MAX + 1]; /* "" = null */
	bool aborted;                           /* participant_connection_aborted: a failed join */
	bool left_inferred;     /* left_at was set by room_finished; a real leave overrides it */
	bool observer;          /* an agent, recorder, egress or hidden participant: recorded,
				 * but not a person in the call (LIVEKIT.md §6.11) */
	int64_t screen_share_at;       /* first screen share track published, 0 = never */
	int64_t screen_share_ended_at; /* last screen share track unpublished, 0 = never */
};

struct call {
	char id[ID_LEN + 1];
	char room[ROOM_LEN + 1];
	enum call_kind kind;
	enum call_status status;
	enum call_outcome outcome;
	char caller[USER_ID_MAX + 1];
	char chat_id[USER_ID_MAX + 1]; /* "" = null */
	char *metadata;                /* compact JSON object text, never NULL ("{}") */
	int64_t created_at;
	int64_t answered_at;
	int64_t ended_at;
	enum end_cause end_cause;
	char room_end_reason[REASON_MAX + 1]; /* "" = null */
	int64_t room_finished_at; /* LiveKit's room_finished; sessions still open end with it */
	int ring_timeout_s;
	int64_t ring_deadline;  /* created_at + ring timeout; pending invites are missed after it */
	int64_t join_deadline;  /* answered_at + join timeout; 0 when not armed */
	int64_t next_deadline;  /* earliest timer still to fire, 0 = none; indexed by storage */
	int64_t version;        /* call_version of the last event of this call */
	size_t n_members;       /* members[0] is the caller */
	struct member members[CALL_MAX_MEMBERS];
	size_t n_participants;
	struct participant *participants; /* heap, owned */
};

/* What made a change of a call or of presence: kept with each feed event, for the call's audit
 * trail. CHANGE_NONE only in rows written before causes were kept. */
enum change_source { CHANGE_NONE, CHANGE_API, CHANGE_WEBHOOK, CHANGE_TIMER };
struct change_cause {
	enum change_source source;
	const char *ref; /* the request id (API) or the webhook's event id; NULL for a timer */
};

/* One entry of the events feed. */
struct event {
	int64_t seq;               /* set by storage on append */
	char id[ID_LEN + 1];
	char type[32];             /* "call.ringing", "presence.changed", … */
	int64_t at;
	char call_id[ID_LEN + 1];  /* "" = null (presence events) */
	int64_t call_version;      /* 0 = null */
	char *data;                /* compact JSON text, owned */
	enum change_source cause;  /* not in the feed's answers: the audit trail shows it */
	char cause_ref[CHANGE_REF_MAX + 1];
};

/* Heap-allocate a zeroed call with metadata "{}". NULL on allocation failure. */
struct call *call_new(void);
/* Deep copy; NULL on allocation failure. */
struct call *call_clone(const struct call *c);
void call_free(struct call *c);
void call_freep(struct call **c);
/* Replace the metadata text (copied). ERR-free: returns false on allocation failure. */
bool call_set_metadata(struct call *c, const char *json_text);
/* Append a participant session (copied); false on allocation failure. */
bool call_add_participant(struct call *c, const struct participant *p);
struct member *call_member(struct call *c, const char *user);
const struct member *call_member_const(const struct call *c, const char *user);
void event_finish(struct event *ev);
/* Record what made the change of ev; a ref longer than CHANGE_REF_MAX is cut. */
void event_set_cause(struct event *ev, const struct change_cause *cause);

/* Names used on the wire and in storage; *_parse return -1 for an unknown name. */
const char *call_kind_name(enum call_kind k);
int call_kind_parse(const char *s);
const char *call_status_name(enum call_status s);
int call_status_parse(const char *s);
const char *call_outcome_name(enum call_outcome o); /* NULL for OUTCOME_NONE */
int call_outcome_parse(const char *s);
const char *end_cause_name(enum end_cause c);       /* NULL for CAUSE_NONE */
int end_cause_parse(const char *s);
const char *member_role_name(enum member_role r);
int member_role_parse(const char *s);
const char *invite_state_name(enum invite_state s);
int invite_state_parse(const char *s);
const char *change_source_name(enum change_source s);  /* NULL for CHANGE_NONE */
int change_source_parse(const char *s);

/* The call lifecycle: who may do what to a call, and what each action changes. The pure state
 * machine is call_fsm_* (no I/O, unit tested alone); calls_* wrap it in storage transactions,
 * append the feed events of every change in the same transaction, and mint tokens.
 * Validation of request shapes happens in the service layer; the domain re-checks ranges.
 * Messages returned through ret_msg are static strings safe to show to clients. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "clock.h"
#include "err.h"
#include "model.h"
#include "storage.h"
#include "tokens.h"

/* --- the state machine --- */

#define FSM_MAX_EVENTS (CALL_MAX_MEMBERS + 4)

/* The feed events one change produces, in order. */
struct fsm_events {
	const char *types[FSM_MAX_EVENTS];
	size_t n;
};

struct fsm_timeouts {
	int join_timeout_s;
};

/* Settle every timer of c whose deadline is <= now (ring timeout, join timeout) and recompute
 * c->next_deadline. Run before any other transition so an expired call cannot be acted on. */
void call_fsm_tick(struct call *c, int64_t now, const struct fsm_timeouts *t,
		   struct fsm_events *ev);
enum err call_fsm_accept(struct call *c, const char *user, int64_t now,
			 const struct fsm_timeouts *t, struct fsm_events *ev, const char **ret_msg);
enum err call_fsm_decline(struct call *c, const char *user, int64_t now, struct fsm_events *ev,
			  const char **ret_msg);
enum err call_fsm_leave(struct call *c, const char *user, int64_t now, struct fsm_events *ev,
			const char **ret_msg);
/* user NULL: an admin ends the call. */
enum err call_fsm_end(struct call *c, const char *user, int64_t now, struct fsm_events *ev,
		      const char **ret_msg);
/* Recompute next_deadline from the call's state (after any change) as of now: the ring and
 * join deadlines, and the end of a reconnect's grace (call_room.c) that has not passed. */
void call_fsm_arm(struct call *c, int64_t now);

struct webhook_event;
/* Members whose in_room changed: their presence may have changed too. Borrowed from the call. */
struct room_presence {
	const char *users[CALL_MAX_MEMBERS];
	size_t n;
};
/* Apply what one LiveKit webhook says about the call's room (sessions, joins, leaves, screen
 * shares, room_finished), then the rules that follow from the room, then expired timers.
 * at most ERR_NOMEM. An ended call only takes in the session facts. */
enum err call_fsm_room_event(struct call *c, const struct webhook_event *we, int64_t now,
			     const struct fsm_timeouts *t, struct fsm_events *ev,
			     struct room_presence *ret_presence);

/* --- the service --- */

struct calls_config {
	int ring_timeout_s;
	int join_timeout_s;
	int token_ttl_s;
	const char *livekit_url;
};

struct calls {
	struct storage *st;
	const struct token_signer *signer;
	struct clock clock;
	struct calls_config cfg;
};

struct call_create_req {
	char caller[USER_ID_MAX + 1];
	char caller_name[NAME_MAX_BYTES + 1];
	char callees[CALL_MAX_CALLEES][USER_ID_MAX + 1];
	size_t n_callees;
	enum call_kind kind;
	char chat_id[USER_ID_MAX + 1];
	const char *metadata;          /* compact JSON object, NULL = {} */
	int ring_timeout_s;            /* 0 = the configured default */
	const char *idempotency_key;   /* NULL = none */
	const char *request_id;        /* the API request's id, for the audit trail; NULL = none */
	unsigned char request_hash[32];/* of the canonical body, with an idempotency key */
};

/* What an action that hands out a token returns. The caller owns call (call_free). */
struct call_grant {
	struct call *call;
	char *call_json;               /* the call object's JSON text when the action made it */
	bool replayed;                 /* an Idempotency-Key repeat: answer 200, not 201 */
	bool has_token;                /* false for a replay of an ended call */
	char token[TOKEN_MAX];
	int64_t token_expires_at;      /* ms */
};
void call_grant_finish(struct call_grant *g);

enum err calls_create(const struct calls *cs, const struct call_create_req *req,
		      struct call_grant *ret, const char **ret_msg);
/* request_id: the API request's id, kept as the cause of the change (NULL = none). */
enum err calls_accept(const struct calls *cs, const char *request_id, const char *id,
		      const char *user, const char *name, struct call_grant *ret,
		      const char **ret_msg);
enum err calls_token(const struct calls *cs, const char *id, const char *user, const char *name,
		     struct call_grant *ret, const char **ret_msg);
enum err calls_decline(const struct calls *cs, const char *request_id, const char *id,
		       const char *user, struct call **ret_call, const char **ret_msg);
enum err calls_leave(const struct calls *cs, const char *request_id, const char *id,
		     const char *user, struct call **ret_call, const char **ret_msg);
/* user NULL: an admin ends it without being a member. */
enum err calls_end(const struct calls *cs, const char *request_id, const char *id,
		   const char *user, struct call **ret_call, const char **ret_msg);
enum err calls_get(const struct calls *cs, const char *id, struct call **ret_call);
/* The call object's JSON text (malloc'd), from the stored view unless a timer is due. */
enum err calls_get_json(const struct calls *cs, const char *id, char **ret_json);
/* What one timer pass did. A call it could not settle (a row this build cannot read, say)
 * is skipped so that the others still fire; the first few are named for the log. */
#define TIMER_FAILURES_KEPT 64
struct timer_pass {
	size_t fired;  /* calls that changed */
	size_t failed; /* calls that could not be settled */
	struct {
		char call_id[ID_LEN + 1];
		enum err e;
	} failures[TIMER_FAILURES_KEPT];
};
/* Fire every due timer but those skip (NULL: none) passes over. ERR_OK unless the pass could
 * not go on (storage unavailable): a call that fails alone is counted in ret->failed and the
 * pass carries on past it. */
enum err calls_fire_due(const struct calls *cs, bool (*skip)(void *arg, const char *call_id),
			void *skip_arg, struct timer_pass *ret);

/* Store a verified LiveKit webhook once per event id and apply it to the call owning its room
 * (events of other rooms are only stored). ERR_OK once durable; *ret_duplicate tells a repeat
 * delivery, which changes nothing. */
enum err calls_apply_webhook(const struct calls *cs, const struct webhook_event *we,
			     const char *body, size_t body_len, bool *ret_duplicate);

/* The audit trail of call id: its webhooks and its changes with their causes, in order
 * (struct audit_trail). ERR_NOT_FOUND for an unknown call. */
enum err calls_audit(const struct calls *cs, const char *id, struct audit_trail *ret);

/* --- the call object of API.md, shared by the HTTP answers, the views and the feed --- */
/* Compact JSON text of the call object; malloc'd, NULL on allocation failure. */
char *call_to_json_text(const struct call *c);

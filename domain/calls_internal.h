/* Shared by the files of the calls service; not part of its interface. */
#pragma once

#include "calls.h"

/* The id of the call a room belongs to: every call's room is named after its id. */
bool calls_room_call_id(const char *room, char ret_id[ID_LEN + 1]);

/* What a timer changes: ring and join timeouts, settled by the timer pass or on the way to
 * another change. */
extern const struct change_cause calls_timer_cause;

/* Serialize the call as it is now into *view (replacing what it held; the caller frees it)
 * and append one feed event per type in fe carrying it, each with the next call_version and
 * cause. The caller then writes the call with that view. */
enum err calls_record_change(struct storage_tx *tx, struct call *c, const struct fsm_events *fe,
			     const struct change_cause *cause, int64_t now, char **view);

/* What one transaction did to a call that GET /metrics counts: kept by the transaction
 * function (which may run more than once, so it starts over each time) and counted with
 * calls_count_milestones only once storage_transact returned ERR_OK. */
struct call_milestones {
	enum call_outcome ended;            /* OUTCOME_NONE unless the call ended */
	size_t n_joined;                    /* members whose first join this was */
	int64_t join_ms[CALL_MAX_MEMBERS];  /* their times to join */
};
/* Compares the call as the transaction loaded it with what it writes. */
void calls_note_milestones(const struct call *before, const struct call *after,
			   struct call_milestones *ret);
void calls_count_milestones(const struct call_milestones *m);

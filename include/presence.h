/* User presence: the status the chat app sets (online, away, offline), overridden by in_call
 * while the user has an open session in a call's LiveKit room. Presence is composed from
 * storage on every read, so it never disagrees with the sessions that webhooks recorded. */
#pragma once

#include <stdint.h>

#include "calls.h"
#include "storage.h"

enum presence_status { PRESENCE_ONLINE, PRESENCE_AWAY, PRESENCE_OFFLINE, PRESENCE_IN_CALL };

struct presence {
	char user[USER_ID_MAX + 1];
	enum presence_status status;
	char call_id[ID_LEN + 1]; /* "" = null */
	int64_t since;            /* 0 = null (a user never seen) */
};

const char *presence_status_name(enum presence_status s);
/* Only the statuses the chat app may set; -1 otherwise. */
int presence_status_parse_settable(const char *s);

void presence_compose(const char *user, const struct presence_record *rec, struct presence *ret);
struct json_t;
/* The presence object of API.md; a new reference, NULL on allocation failure. */
struct json_t *presence_to_json(const struct presence *p);
/* Compact JSON text of the presence object; malloc'd, NULL on allocation failure. */
char *presence_to_json_text(const struct presence *p);

/* Set the chat status; appends presence.changed when what others see changed, caused by the
 * API request request_id (NULL = none). */
enum err presence_set(const struct calls *cs, const char *request_id, const char *user,
		      enum presence_status status, struct presence *ret);
enum err presence_get(const struct calls *cs, const char *user, struct presence *ret);

/* The presence of a member of c, from the record of their other calls (read with c left
 * out) and c as held in memory: one read gives both sides of a change to c. */
void presence_with_call(const char *user, const struct presence_record *others,
			const struct call *c, struct presence *ret);
/* Inside a transaction: append presence.changed when what others see changed. */
enum err presence_tx_append_change(struct storage_tx *tx, const struct presence *before,
				   const struct presence *after, const struct change_cause *cause,
				   int64_t now);

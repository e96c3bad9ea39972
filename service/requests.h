/* Parsers of the REST API's request bodies (see requests.c). Each takes a parsed JSON object
 * (borrowed) and returns ERR_OK with the struct filled, or ERR_INVALID with *ret_msg naming
 * the field (a static string), or ERR_NOMEM. */
#pragma once

#include <jansson.h>
#include <stdbool.h>

#include "calls.h"
#include "json_scan.h"
#include "presence.h"

/* POST /v1/calls. req->metadata points into *ret_metadata, which the caller frees (also on
 * failure; NULL when there is no metadata). */
enum err requests_call_create(json_t *body, struct call_create_req *req, char **ret_metadata,
			      const char **ret_msg);
/* The identity of a POST /v1/calls body for Idempotency-Key: SHA-256 of its canonical form
 * (compact, keys sorted). */
enum err requests_hash(json_t *body, unsigned char out[32]);

/* {"user", "name"?} of accept, token, decline, leave and end: every token request has one, so
 * it is read with json_scan (requests_member_body), not as a tree. values are the slots that
 * json_scan filled (all JSON_SCAN_ABSENT for no body). */
struct member_req {
	char user[USER_ID_MAX + 1];
	char name[NAME_MAX_BYTES + 1]; /* "" when not given */
};
enum member_slot { MEMBER_USER, MEMBER_NAME, MEMBER_SLOTS };
extern const struct json_scan_object requests_member_body;
enum err requests_member(const struct json_scan_value values[MEMBER_SLOTS], bool user_required,
			 struct member_req *ret, const char **ret_msg);

/* {"status"} of PUT /v1/presence/{user}: a status the chat app may set. */
enum err requests_presence_status(json_t *body, enum presence_status *ret, const char **ret_msg);

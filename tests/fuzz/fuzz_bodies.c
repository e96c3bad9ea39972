/* Every REST request body as the handlers read it: parsed with its depth bounded, then given
 * to each body parser. What POST /v1/calls accepts is also written out as the call object,
 * which must be valid JSON whatever the accepted strings and metadata held. */
#include <stdlib.h>
#include <string.h>

#include "calls.h"
#include "json_scan.h"
#include "jsonutil.h"
#include "requests.h"
#include "worker_stack.h"

static void check_call_json(const struct call_create_req *req)
{
	struct call *c = call_new();
	if (!c || (req->metadata && !call_set_metadata(c, req->metadata)))
		abort();
	memcpy(c->id, "01900000-0000-7000-8000-000000000001", ID_LEN + 1);
	memcpy(c->room, "call_01900000-0000-7000-8000-000000000001", ROOM_LEN + 1);
	memcpy(c->caller, req->caller, sizeof c->caller);
	memcpy(c->chat_id, req->chat_id, sizeof c->chat_id);
	c->kind = req->kind;
	c->created_at = 1767225600000;
	memcpy(c->members[0].user, req->caller, sizeof c->members[0].user);
	memcpy(c->members[0].name, req->caller_name, sizeof c->members[0].name);
	for (size_t i = 0; i < req->n_callees; i++) {
		memcpy(c->members[i + 1].user, req->callees[i], sizeof c->members[i + 1].user);
		c->members[i + 1].role = MEMBER_CALLEE;
	}
	c->n_members = req->n_callees + 1;
	char *text = call_to_json_text(c);
	if (!text)
		abort();
	json_error_t jerr;
	json_t *back = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
	if (!back || strcmp(json_string_value(json_object_get(back, "caller")), req->caller) != 0)
		abort(); /* the call object must be JSON, and say who called */
	json_decref(back);
	free(text);
	call_free(c);
}

/* The member body as the token route reads it, with json_scan: a refusal names its field, and
 * what is accepted is what the tree holds. */
static void check_member(const uint8_t *data, size_t size, json_t *body)
{
	struct json_scan_value values[MEMBER_SLOTS];
	if (json_scan((const char *)data, size, &requests_member_body, values, MEMBER_SLOTS) !=
	    JSON_LOAD_OK)
		return;
	for (int required = 0; required < 2; required++) {
		struct member_req mr;
		const char *msg = NULL;
		if (requests_member(values, required, &mr, &msg) != ERR_OK) {
			if (!msg)
				abort();
			continue;
		}
		const char *user = json_string_value(json_object_get(body, "user"));
		const char *name = json_string_value(json_object_get(body, "name"));
		if (strcmp(mr.user, user ? user : "") != 0 || strcmp(mr.name, name ? name : "") != 0)
			abort();
	}
}

static void one(const uint8_t *data, size_t size)
{
	enum json_load_result result;
	json_t *body = json_load_bounded((const char *)data, size, &result);
	if (!json_is_object(body)) {
		json_decref(body);
		return;
	}
	struct call_create_req req = {0};
	char *metadata = NULL;
	const char *msg = NULL;
	if (requests_call_create(body, &req, &metadata, &msg) == ERR_OK) {
		unsigned char hash[32];
		if (requests_hash(body, hash) != ERR_OK)
			abort();
		check_call_json(&req);
	} else if (!msg) {
		abort(); /* a refusal always names what was wrong */
	}
	free(metadata);

	enum presence_status status;
	requests_presence_status(body, &status, &msg);
	check_member(data, size, body);
	json_decref(body);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_on_worker_stack(one, data, size);
	return 0;
}

/* The JSON bodies of the REST API, validated field by field into plain structs, each refusal
 * with a message that names the field. The body is already parsed by req_json_body (depth
 * bounded, duplicate keys refused), or for the member bodies scanned by req_json_scan_body to
 * the same rules; nothing here reads a request or answers one, so the fuzzers reach every
 * parser. */
#include "requests.h"

#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"

/* A required (or optional, when ret is preset to "") user-id-like string field. */
static enum err user_field(json_t *body, const char *field, bool required, char *ret, size_t cap,
			   const char **ret_msg)
{
	json_t *v = json_object_get(body, field);
	if (!v || json_is_null(v)) {
		if (!required)
			return ERR_OK;
		*ret_msg = field;
		return ERR_INVALID;
	}
	const char *s = json_string_value(v);
	if (!s || strlen(s) != json_string_length(v) || !valid_user_id(s)) {
		*ret_msg = field;
		return ERR_INVALID;
	}
	snprintf(ret, cap, "%s", s);
	return ERR_OK;
}

static enum err name_field(json_t *body, const char *field, char *ret, size_t cap,
			   const char **ret_msg)
{
	json_t *v = json_object_get(body, field);
	if (!v || json_is_null(v))
		return ERR_OK;
	const char *s = json_string_value(v);
	if (!s || json_string_length(v) > NAME_MAX_BYTES || strlen(s) != json_string_length(v)) {
		*ret_msg = field;
		return ERR_INVALID;
	}
	snprintf(ret, cap, "%s", s);
	return ERR_OK;
}

/* Field-named validation messages for the 400 answers. */
static const char *field_message(const char *field)
{
	static const struct {
		const char *field, *message;
	} table[] = {
		{"caller", "caller: must be a user id of 1 to 128 bytes without control characters"},
		{"user", "user: must be a user id of 1 to 128 bytes without control characters"},
		{"chat_id", "chat_id: must be a string of 1 to 128 bytes without control characters"},
		{"caller_name", "caller_name: must be a string of at most 256 bytes"},
		{"name", "name: must be a string of at most 256 bytes"},
	};
	for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
		if (strcmp(table[i].field, field) == 0)
			return table[i].message;
	return field;
}

static enum err parse_callees(json_t *body, struct call_create_req *req, const char **ret_msg)
{
	json_t *arr = json_object_get(body, "callees");
	if (!json_is_array(arr) || json_array_size(arr) == 0 ||
	    json_array_size(arr) > CALL_MAX_CALLEES) {
		*ret_msg = "callees: must be an array of 1 to 32 user ids";
		return ERR_INVALID;
	}
	size_t i;
	json_t *v;
	json_array_foreach(arr, i, v) {
		const char *s = json_string_value(v);
		if (!s || strlen(s) != json_string_length(v) || !valid_user_id(s)) {
			*ret_msg = "callees: every entry must be a user id of 1 to 128 bytes "
				   "without control characters";
			return ERR_INVALID;
		}
		if (strcmp(s, req->caller) == 0) {
			*ret_msg = "callees: the caller cannot be among the callees";
			return ERR_INVALID;
		}
		for (size_t k = 0; k < i; k++) {
			if (strcmp(req->callees[k], s) == 0) {
				*ret_msg = "callees: duplicate callee";
				return ERR_INVALID;
			}
		}
		snprintf(req->callees[i], sizeof req->callees[i], "%s", s);
	}
	req->n_callees = json_array_size(arr);
	return ERR_OK;
}

enum err requests_call_create(json_t *body, struct call_create_req *req, char **ret_metadata,
			      const char **ret_msg)
{
	const char *field = NULL;
	enum err e = user_field(body, "caller", true, req->caller, sizeof req->caller, &field);
	if (e == ERR_OK)
		e = user_field(body, "chat_id", false, req->chat_id, sizeof req->chat_id, &field);
	if (e == ERR_OK)
		e = name_field(body, "caller_name", req->caller_name, sizeof req->caller_name,
			       &field);
	if (e != ERR_OK) {
		*ret_msg = field_message(field);
		return e;
	}
	e = parse_callees(body, req, ret_msg);
	if (e != ERR_OK)
		return e;

	int kind = call_kind_parse(json_string_value(json_object_get(body, "kind")));
	if (kind < 0) {
		*ret_msg = "kind: must be \"audio\" or \"video\"";
		return ERR_INVALID;
	}
	req->kind = (enum call_kind)kind;

	json_t *rt = json_object_get(body, "ring_timeout_s");
	if (rt && !json_is_null(rt)) {
		json_int_t v = json_is_integer(rt) ? json_integer_value(rt) : 0;
		if (v < 5 || v > 300) {
			*ret_msg = "ring_timeout_s: must be an integer from 5 to 300";
			return ERR_INVALID;
		}
		req->ring_timeout_s = (int)v;
	}

	json_t *md = json_object_get(body, "metadata");
	if (md && !json_is_null(md)) {
		char *text = json_is_object(md) ? json_dumps(md, JSON_COMPACT | JSON_PRESERVE_ORDER)
						: NULL;
		if (!text || strlen(text) > METADATA_MAX_BYTES) {
			free(text);
			*ret_msg = "metadata: must be a JSON object of at most 4 KiB";
			return ERR_INVALID;
		}
		req->metadata = text;
		*ret_metadata = text;
	}
	return ERR_OK;
}

enum err requests_hash(json_t *body, unsigned char out[32])
{
	char *canon = json_dumps(body, JSON_COMPACT | JSON_SORT_KEYS);
	if (!canon)
		return ERR_NOMEM;
	SHA256((const unsigned char *)canon, strlen(canon), out);
	free(canon);
	return ERR_OK;
}

static const struct json_scan_member member_members[] = {
	{"user", MEMBER_USER, NULL},
	{"name", MEMBER_NAME, NULL},
};
const struct json_scan_object requests_member_body = {member_members, MEMBER_SLOTS};

static bool absent(const struct json_scan_value *v)
{
	return v->type == JSON_SCAN_ABSENT || v->type == JSON_SCAN_NULL;
}

/* user_field and name_field over json_scan's values: a string decoded whole (json_scan refuses
 * \u0000, so none holds a NUL), else refused. */
enum err requests_member(const struct json_scan_value values[MEMBER_SLOTS], bool user_required,
			 struct member_req *ret, const char **ret_msg)
{
	struct member_req mr = {0};
	const struct json_scan_value *user = &values[MEMBER_USER], *name = &values[MEMBER_NAME];
	const char *field = NULL;
	if (absent(user) ? user_required
			 : !json_scan_string(user, mr.user, sizeof mr.user) ||
				   !valid_user_id(mr.user))
		field = "user";
	else if (!absent(name) && (name->type != JSON_SCAN_STRING || name->len > NAME_MAX_BYTES ||
				   !json_scan_string(name, mr.name, sizeof mr.name)))
		field = "name";
	if (field) {
		*ret_msg = field_message(field);
		return ERR_INVALID;
	}
	*ret = mr;
	return ERR_OK;
}

enum err requests_presence_status(json_t *body, enum presence_status *ret, const char **ret_msg)
{
	int status = presence_status_parse_settable(
		json_string_value(json_object_get(body, "status")));
	if (status < 0) {
		*ret_msg = "status: must be online, away or offline";
		return ERR_INVALID;
	}
	*ret = (enum presence_status)status;
	return ERR_OK;
}

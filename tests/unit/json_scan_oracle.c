/* The differential check of json_scan_oracle.h: jansson builds the tree, and every member the
 * schema names is looked up in it and compared with what json_scan extracted. */
#include "json_scan_oracle.h"

#include <stdlib.h>
#include <string.h>

#include <jansson.h>

enum {
	S_EVENT, S_ID, S_NUMBER, S_EMPTY, S_E_ACUTE, S_ROOM, S_ROOM_SID, S_ROOM_NAME,
	S_PARTICIPANT, S_PARTICIPANT_SID, S_PERMISSION, S_HIDDEN,
};

static const struct json_scan_member permission[] = {{"hidden", S_HIDDEN, NULL}};
static const struct json_scan_object permission_object = {permission, 1};
static const struct json_scan_member room[] = {
	{"sid", S_ROOM_SID, NULL},
	{"name", S_ROOM_NAME, NULL},
};
static const struct json_scan_object room_object = {room, 2};
static const struct json_scan_member participant[] = {
	{"sid", S_PARTICIPANT_SID, NULL},
	{"permission", S_PERMISSION, &permission_object},
};
static const struct json_scan_object participant_object = {participant, 2};
static const struct json_scan_member members[] = {
	{"event", S_EVENT, NULL},
	{"id", S_ID, NULL},
	{"n", S_NUMBER, NULL},
	{"", S_EMPTY, NULL},
	{"\xc3\xa9", S_E_ACUTE, NULL},
	{"room", S_ROOM, &room_object},
	{"participant", S_PARTICIPANT, &participant_object},
};
const struct json_scan_object json_scan_oracle_schema = {members, 7};

static enum json_scan_type type_of(const json_t *j)
{
	switch (json_typeof(j)) {
	case JSON_OBJECT: return JSON_SCAN_OBJECT;
	case JSON_ARRAY: return JSON_SCAN_ARRAY;
	case JSON_STRING: return JSON_SCAN_STRING;
	case JSON_INTEGER: return JSON_SCAN_INTEGER;
	case JSON_REAL: return JSON_SCAN_REAL;
	case JSON_TRUE: return JSON_SCAN_TRUE;
	case JSON_FALSE: return JSON_SCAN_FALSE;
	case JSON_NULL: return JSON_SCAN_NULL;
	}
	return JSON_SCAN_ABSENT;
}

static bool same_string(const struct json_scan_value *v, const json_t *j)
{
	size_t len = json_string_length(j);
	char *s = malloc(len + 1);
	bool same = s && v->len == len && json_scan_string(v, s, len + 1) &&
		    memcmp(s, json_string_value(j), len) == 0;
	free(s);
	return same || !s;
}

/* Compares every member of schema (and of its sub-objects) between obj (NULL when the object is
 * absent or not an object: its members must then all be absent) and values. */
static const char *compare(const json_t *obj, const struct json_scan_object *schema,
			   const struct json_scan_value *values, size_t n_slots)
{
	for (size_t i = 0; i < schema->n; i++) {
		const struct json_scan_member *m = &schema->members[i];
		const json_t *j = obj ? json_object_get(obj, m->name) : NULL;
		const struct json_scan_value *v = &values[m->slot];
		if (m->slot >= n_slots)
			continue;
		if (v->type != (j ? type_of(j) : JSON_SCAN_ABSENT))
			return "a member's type differs";
		if (v->type == JSON_SCAN_INTEGER && v->integer != json_integer_value(j))
			return "an integer differs";
		if (v->type == JSON_SCAN_STRING && !same_string(v, j))
			return "a string differs";
		if (m->object) {
			const char *why = compare(json_is_object(j) ? j : NULL, m->object, values,
						  n_slots);
			if (why)
				return why;
		}
	}
	return NULL;
}

bool json_scan_agrees_with_jansson(const char *text, size_t len,
				   const struct json_scan_object *schema, size_t n_slots,
				   const char **ret_why)
{
	struct json_scan_value *values = calloc(n_slots ? n_slots : 1, sizeof *values);
	enum json_load_result jr;
	json_t *root = json_load_bounded(text, len, &jr);
	const char *why = NULL;

	if (!values || jr == JSON_LOAD_NOMEM) {
		json_decref(root);
		free(values);
		return true;
	}
	enum json_load_result sr = json_scan(text, len, schema, values, n_slots);
	if (sr == JSON_LOAD_NOMEM)
		why = NULL;
	else if (len && memchr(text, '\0', len))
		/* Never JSON. jansson 2.14 drops one NUL byte right after a number or a literal (its
		 * lexer puts the byte back where a NUL means "buffer empty"), and so reads
		 * {"a":1\0} as {"a":1}; json_scan refuses every NUL. */
		why = sr == JSON_LOAD_OK ? "json_scan accepts a NUL byte" : NULL;
	else if ((sr == JSON_LOAD_OK) != json_is_object(root))
		why = sr == JSON_LOAD_OK ? "json_scan accepts what jansson refuses"
					 : "json_scan refuses what jansson accepts";
	else if (sr == JSON_LOAD_TOO_DEEP && jr != JSON_LOAD_TOO_DEEP)
		why = "json_scan says too deep, jansson does not";
	else if (sr == JSON_LOAD_OK)
		why = compare(root, schema, values, n_slots);
	json_decref(root);
	free(values);
	if (why && ret_why)
		*ret_why = why;
	return !why;
}

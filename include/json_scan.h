/* A one-pass JSON reader for hot paths (webhook bodies, JWT headers and claims): it checks the
 * whole document exactly as json_load_bounded would and hands back only the members the caller
 * names, as slices of the text, without building a tree. What it refuses is what jansson's
 * json_loadb(JSON_REJECT_DUPLICATES) refuses after json_depth_within(JSON_MAX_DEPTH): bad
 * syntax, bad UTF-8, bad escapes, lone surrogates, \u0000, integers outside int64, reals that
 * overflow a double, duplicate keys in any object, nesting over JSON_MAX_DEPTH; and, as its
 * callers want, any top-level value that is not an object. One difference, on the strict side:
 * a raw NUL byte is refused wherever it is, where jansson 2.14 skips one that directly follows
 * a number or true/false/null (a lexer quirk: {"a":1\0} reads as {"a":1}).
 * Reentrant and allocation-free unless an object holds more keys than fit on the stack. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "jsonutil.h"

enum json_scan_type {
	JSON_SCAN_ABSENT = 0, /* the member is not in the document */
	JSON_SCAN_NULL,
	JSON_SCAN_FALSE,
	JSON_SCAN_TRUE,
	JSON_SCAN_INTEGER, /* no fraction or exponent, as jansson's json_integer */
	JSON_SCAN_REAL,
	JSON_SCAN_STRING,
	JSON_SCAN_ARRAY,
	JSON_SCAN_OBJECT,
};

/* One member's value. The slices point into the scanned text, which must outlive them. */
struct json_scan_value {
	enum json_scan_type type;
	int64_t integer;  /* JSON_SCAN_INTEGER */
	const char *text; /* JSON_SCAN_STRING: the bytes between the quotes, escapes still in */
	size_t text_len;
	size_t len;   /* JSON_SCAN_STRING: decoded length in bytes (never holds a NUL) */
	bool escaped; /* JSON_SCAN_STRING: text holds backslash escapes */
};

struct json_scan_object;

/* A member to extract: its value lands in values[slot]. When that value is an object and
 * object is not NULL, the object's own members are extracted by that description too. */
struct json_scan_member {
	const char *name; /* the decoded key, matched byte for byte ("\u0072oom" is "room") */
	unsigned slot;
	const struct json_scan_object *object;
};

struct json_scan_object {
	const struct json_scan_member *members;
	size_t n;
};

/* Reads text[0..len) (need not be NUL-terminated) once. Every values[i] is reset to
 * JSON_SCAN_ABSENT first, then set for each member of root (and of its described sub-objects)
 * present in the document; slots >= n_values are not extracted. On anything but JSON_LOAD_OK
 * the values are meaningless.
 * JSON_LOAD_OK; JSON_LOAD_INVALID (see above, or the document is not an object);
 * JSON_LOAD_TOO_DEEP when an array or object opens deeper than JSON_MAX_DEPTH; JSON_LOAD_NOMEM
 * when an object with very many keys needs memory for the duplicate check and none is left. */
enum json_load_result json_scan(const char *text, size_t len, const struct json_scan_object *root,
				struct json_scan_value *values, size_t n_values);

/* The decoded bytes of a JSON_SCAN_STRING value, one at a time:
 *	struct json_scan_chars it;
 *	json_scan_chars_init(&it, v);
 *	while (json_scan_chars_next(&it, &c)) ...                                              */
struct json_scan_chars {
	const char *p, *end;
	char pending[4]; /* the rest of a multi-byte character decoded from \uXXXX */
	unsigned char n_pending, i_pending;
};
void json_scan_chars_init(struct json_scan_chars *it, const struct json_scan_value *v);
bool json_scan_chars_next(struct json_scan_chars *it, char *ret_c);

/* Copies a JSON_SCAN_STRING value, decoded and NUL-terminated, into out (cap bytes with the
 * NUL). False, out untouched, when it is not a string or does not fit. */
bool json_scan_string(const struct json_scan_value *v, char *out, size_t cap);

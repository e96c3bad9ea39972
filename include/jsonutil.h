/* Small JSON helpers: string literals for hand-formatted hot-path output (tokens, responses),
 * and the one way JSON from outside is parsed, with its nesting bounded. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/* Nesting levels (arrays and objects) allowed in any JSON from outside: request bodies,
 * webhook bodies, JWT headers and payloads. jansson's parser and its dump and free functions
 * recurse once per level, and a CivetWeb worker has a 100 KiB stack: ~900 levels overflow it.
 * Nothing callstate reads needs more than 3; metadata passes through with the rest. */
#define JSON_MAX_DEPTH 32

/* Append s as a JSON string literal (with quotes) at out[*len]; false if it would not fit in
 * cap (out is then unchanged past *len). Escapes ", \ and control characters; UTF-8 passes. */
bool json_append_string(char *out, size_t cap, size_t *len, const char *s);

/* True when no array or object in text[0..len) opens deeper than max_depth levels. Linear,
 * no recursion, no allocation; brackets inside strings do not count. */
bool json_depth_within(const char *text, size_t len, int max_depth);

enum json_load_result {
	JSON_LOAD_OK,
	JSON_LOAD_INVALID,  /* not JSON, or duplicate keys */
	JSON_LOAD_TOO_DEEP, /* nested deeper than JSON_MAX_DEPTH: refused before parsing */
	JSON_LOAD_NOMEM,    /* ours, not the sender's */
};

/* Parses JSON that came from outside: nesting checked first, then json_loadb with
 * JSON_REJECT_DUPLICATES. Returns a new reference, or NULL with *ret_result saying why. */
json_t *json_load_bounded(const char *text, size_t len, enum json_load_result *ret_result);

/* json_scan checked against jansson, its reference: the unit tests and the webhook fuzzer call
 * this on every document they have, so that any document the two read differently shows up. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "json_scan.h"

/* Members for differential runs: escaped and non-ASCII names, nested objects, a member that is
 * named in two objects. Its values need JSON_SCAN_ORACLE_SLOTS slots. */
extern const struct json_scan_object json_scan_oracle_schema;
#define JSON_SCAN_ORACLE_SLOTS 12

/* Scans text[0..len) with json_scan and parses it with json_load_bounded. True when they agree:
 * both refuse it (json_scan also refuses a top level that is not an object), or both read an
 * object and every member of schema has the same type, integer and decoded string in both; and
 * json_scan says "too deep" only when jansson does. A run out of memory on either side counts
 * as agreement. A document with a raw NUL byte must be refused by json_scan, whatever jansson
 * says: jansson 2.14 skips one that follows a number or a literal. When false, *ret_why (may be NULL) says what differed. */
bool json_scan_agrees_with_jansson(const char *text, size_t len,
				   const struct json_scan_object *schema, size_t n_slots,
				   const char **ret_why);

/* The request target as the client sent it, decoded once by callstate.
 *
 * CivetWeb is told not to decode paths (decode_url=no): it would decode the whole path and then
 * remove dot segments, so that /v1/users/x%2F..%2Falice/calls named alice, and "a%5Cb" or a
 * trailing '.' turned into other users. Here each path segment and each query value is
 * percent-decoded on its own, once, and a %00 is an error rather than the end of the value. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/* What uri_decode and uri_query return instead of a length. */
#define URI_ABSENT (-1)   /* no such query parameter */
#define URI_TOO_LONG (-2) /* the decoded value does not fit */
#define URI_INVALID (-3)  /* a '%' without two hex digits after it, or a %00 */

/* Percent-decodes in[0..len) into out (cap bytes with the terminating NUL). plus_is_space
 * decodes '+' as a space, as query strings (application/x-www-form-urlencoded) do.
 * Returns the decoded length, URI_TOO_LONG or URI_INVALID. */
int uri_decode(const char *in, size_t len, bool plus_is_space, char *out, size_t cap);

/* The n-th (from 0) value of the parameter name in a raw query string (without the '?'; NULL
 * for none), decoded into out. Names match exactly once decoded; "a" and "a=" give "".
 * Returns the value's length, URI_ABSENT, URI_TOO_LONG or URI_INVALID (also when the name
 * itself is malformed: a query that cannot be read is refused, not skipped). */
int uri_query(const char *query, const char *name, int n, char *out, size_t cap);

/* A path segment that must not name a resource, once decoded: empty segments are allowed
 * (handlers refuse them), '/' and '\' (a proxy may take them for separators), and "." and ".."
 * (a proxy may remove them). The caller has already refused URI_INVALID. */
bool uri_segment_ambiguous(const char *decoded, size_t len);

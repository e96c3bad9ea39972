/* Percent-decoding of path segments and query values (RFC 3986 §2.1), one value at a time. */
#include "uri.h"

#include <string.h>

/* Longest query parameter name compared; longer names are nobody's. */
#define NAME_MAX_LEN 32

static int hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int uri_decode(const char *in, size_t len, bool plus_is_space, char *out, size_t cap)
{
	size_t o = 0;
	bool too_long = false;

	for (size_t i = 0; i < len; i++) {
		char c = in[i];
		if (c == '%') {
			int hi = i + 2 < len ? hex_value(in[i + 1]) : -1;
			int lo = i + 2 < len ? hex_value(in[i + 2]) : -1;
			if (hi < 0 || lo < 0 || (hi | lo) == 0)
				return URI_INVALID;
			c = (char)(hi << 4 | lo);
			i += 2;
		} else if (c == '+' && plus_is_space) {
			c = ' ';
		} else if (c == '\0') {
			return URI_INVALID;
		}
		/* Keep scanning past the end of out: a malformed escape later still wins. */
		if (o + 1 < cap)
			out[o++] = c;
		else
			too_long = true;
	}
	if (cap)
		out[o] = '\0';
	return too_long ? URI_TOO_LONG : (int)o;
}

int uri_query(const char *query, const char *name, int n, char *out, size_t cap)
{
	size_t name_len = strlen(name);
	const char *p = query;

	while (p && *p) {
		const char *end = strchr(p, '&');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		const char *eq = memchr(p, '=', len);
		size_t key_len = eq ? (size_t)(eq - p) : len;
		char key[NAME_MAX_LEN + 1];
		int k = uri_decode(p, key_len, true, key, sizeof key);
		if (k == URI_INVALID)
			return URI_INVALID;
		if (k == (int)name_len && memcmp(key, name, name_len) == 0 && n-- == 0) {
			const char *value = eq ? eq + 1 : p + len;
			return uri_decode(value, (size_t)(p + len - value), true, out, cap);
		}
		p = end ? end + 1 : NULL;
	}
	return URI_ABSENT;
}

bool uri_segment_ambiguous(const char *decoded, size_t len)
{
	if ((len == 1 && decoded[0] == '.') || (len == 2 && memcmp(decoded, "..", 2) == 0))
		return true;
	return memchr(decoded, '/', len) || memchr(decoded, '\\', len);
}

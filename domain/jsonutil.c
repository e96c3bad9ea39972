/* JSON string literals for hand-formatted output. The common case (room for the worst case,
 * six bytes per input byte) escapes in one pass; only a tight buffer pays for measuring first,
 * so that a string that does not fit leaves the buffer untouched. */
#include "jsonutil.h"

#include <string.h>

/* For each byte: 0 = copied as is, 'u' = \u00XX, else the letter after the backslash. */
static const char escapes[256] = {
	[0x00] = 'u', [0x01] = 'u', [0x02] = 'u', [0x03] = 'u', [0x04] = 'u', [0x05] = 'u',
	[0x06] = 'u', [0x07] = 'u', ['\b'] = 'b', ['\t'] = 't', ['\n'] = 'n', [0x0b] = 'u',
	['\f'] = 'f', ['\r'] = 'r', [0x0e] = 'u', [0x0f] = 'u', [0x10] = 'u', [0x11] = 'u',
	[0x12] = 'u', [0x13] = 'u', [0x14] = 'u', [0x15] = 'u', [0x16] = 'u', [0x17] = 'u',
	[0x18] = 'u', [0x19] = 'u', [0x1a] = 'u', [0x1b] = 'u', [0x1c] = 'u', [0x1d] = 'u',
	[0x1e] = 'u', [0x1f] = 'u', ['"'] = '"', ['\\'] = '\\',
};

static size_t escaped_len(const unsigned char *s, size_t n)
{
	size_t len = 2;
	for (size_t i = 0; i < n; i++)
		len += !escapes[s[i]] ? 1 : escapes[s[i]] == 'u' ? 6 : 2;
	return len;
}

bool json_append_string(char *out, size_t cap, size_t *len, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *)s;
	size_t n = strlen(s);
	size_t o = *len;

	if (o > cap)
		return false;
	size_t room = cap - o;
	bool worst_case_fits = room >= 2 && n <= (room - 2) / 6;
	if (!worst_case_fits && escaped_len(p, n) > room)
		return false;

	out[o++] = '"';
	for (size_t i = 0; i < n; i++) {
		unsigned char c = p[i];
		char e = escapes[c];
		if (!e) {
			out[o++] = (char)c;
		} else if (e == 'u') {
			memcpy(out + o, "\\u00", 4);
			out[o + 4] = hex[c >> 4];
			out[o + 5] = hex[c & 0xf];
			o += 6;
		} else {
			out[o++] = '\\';
			out[o++] = e;
		}
	}
	out[o++] = '"';
	*len = o;
	return true;
}

/* One pass over the text: only brackets outside strings count, and a string ends at the first
 * quote not escaped by an odd run of backslashes. Malformed text is the parser's to refuse; here
 * it only has to be bounded. */
bool json_depth_within(const char *text, size_t len, int max_depth)
{
	int depth = 0;
	bool in_string = false, escaped = false;

	for (size_t i = 0; i < len; i++) {
		char c = text[i];
		if (in_string) {
			if (escaped)
				escaped = false;
			else if (c == '\\')
				escaped = true;
			else if (c == '"')
				in_string = false;
		} else if (c == '"') {
			in_string = true;
		} else if (c == '[' || c == '{') {
			if (++depth > max_depth)
				return false;
		} else if ((c == ']' || c == '}') && depth > 0) {
			depth--; /* a stray close cannot buy room for more opens */
		}
	}
	return true;
}

json_t *json_load_bounded(const char *text, size_t len, enum json_load_result *ret_result)
{
	json_error_t jerr;
	json_t *root = NULL;

	if (!json_depth_within(text, len, JSON_MAX_DEPTH)) {
		*ret_result = JSON_LOAD_TOO_DEEP;
		return NULL;
	}
	root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	if (root)
		*ret_result = JSON_LOAD_OK;
	else if (json_error_code(&jerr) == json_error_out_of_memory)
		*ret_result = JSON_LOAD_NOMEM;
	else
		*ret_result = JSON_LOAD_INVALID;
	return root;
}

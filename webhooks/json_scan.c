/* The one-pass JSON reader of json_scan.h. A recursive descent whose depth is bounded before it
 * recurses (JSON_MAX_DEPTH frames of a few dozen bytes fit a worker's stack many times over).
 * Every rule here mirrors jansson 2.14's lexer and parser (load.c, utf.c) so that the two accept
 * the same documents; tests/fuzz/fuzz_webhook.c checks that they do. Duplicate keys are found
 * per object when it closes, from a stack of the keys of the objects still open. */
#include "json_scan.h"

#include <stdlib.h>
#include <string.h>

/* Keys of the open objects held without allocating; past this, the stack moves to the heap. */
#define INLINE_KEYS 64
/* Up to this many keys an object is checked for duplicates pair by pair, beyond by sorting. */
#define PAIRWISE_KEYS 16

/* 2^1024 - 2^970, the least decimal value strtod rounds to infinity (a tie there rounds up:
 * DBL_MAX's significand is odd), without its trailing zeros: 309 digits, the first at 10^308. */
static const char overflow_digits[] =
	"17976931348623158079372897140530341507993413271003782693617377898044496829276475094664"
	"90179775872070963302864166928879109465555478519404026306574886715058206819089020007083"
	"83676273854845817711531764475730270069855571366959622842914819860834936475292719074168"
	"444365510704342711559699508093042880177904174497792";
#define OVERFLOW_EXP10 308

struct key {
	struct json_scan_value name; /* a string value: where the key is and how it decodes */
	uint32_t hash;               /* FNV-1a of the decoded key */
};

struct scanner {
	const unsigned char *p, *end;
	struct json_scan_value *values;
	size_t n_values;
	struct key *keys; /* keys of the open objects, innermost last */
	size_t n_keys, cap_keys;
	enum json_load_result fail;
	struct key inline_keys[INLINE_KEYS];
};

static bool refuse(struct scanner *s, enum json_load_result why)
{
	s->fail = why;
	return false;
}

static void skip_space(struct scanner *s)
{
	while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
		s->p++;
}

static int hex_digit(unsigned char c)
{
	unsigned char lower = c | 0x20; /* 'A'-'F' become 'a'-'f'; only they and 'a'-'f' land there */

	if (c >= '0' && c <= '9')
		return c - '0';
	return lower >= 'a' && lower <= 'f' ? lower - 'a' + 10 : -1;
}

/* The code unit of the four hex digits at p (end bounds them), or -1. */
static int32_t hex4(const unsigned char *p, const unsigned char *end)
{
	int32_t v = 0;

	if (end - p < 4)
		return -1;
	for (int i = 0; i < 4; i++) {
		int d = hex_digit(p[i]);
		if (d < 0)
			return -1;
		v = v << 4 | d;
	}
	return v;
}

/* A \u escape at p (just past the backslash and the 'u'), with its low surrogate if it opens a
 * pair: the code point and the bytes read, or -1 for what jansson refuses (bad hex, \u0000, a
 * surrogate alone or out of order). */
static int32_t unicode_escape(const unsigned char *p, const unsigned char *end, size_t *ret_used)
{
	int32_t v = hex4(p, end);

	if (v <= 0 || (v >= 0xDC00 && v <= 0xDFFF))
		return -1;
	if (v >= 0xD800 && v <= 0xDBFF) {
		if (end - p < 6 || p[4] != '\\' || p[5] != 'u')
			return -1;
		int32_t low = hex4(p + 6, end);
		if (low < 0xDC00 || low > 0xDFFF)
			return -1;
		*ret_used = 10;
		return 0x10000 + ((v - 0xD800) << 10) + (low - 0xDC00);
	}
	*ret_used = 4;
	return v;
}

static size_t utf8_len(int32_t cp)
{
	return cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
}

/* Length of the well-formed UTF-8 sequence at p (its first byte >= 0x80), or 0: no overlong
 * forms, no surrogates, nothing past U+10FFFF (RFC 3629, as jansson's utf8_check_full). */
static size_t utf8_sequence(const unsigned char *p, const unsigned char *end)
{
	unsigned char c = p[0];
	size_t n;
	unsigned char lo = 0x80, hi = 0xBF; /* allowed range of the second byte */

	if (c < 0xC2 || c > 0xF4)
		return 0;
	n = c <= 0xDF ? 2 : c <= 0xEF ? 3 : 4;
	if (c == 0xE0)
		lo = 0xA0;
	else if (c == 0xED)
		hi = 0x9F;
	else if (c == 0xF0)
		lo = 0x90;
	else if (c == 0xF4)
		hi = 0x8F;
	if ((size_t)(end - p) < n || p[1] < lo || p[1] > hi)
		return 0;
	for (size_t i = 2; i < n; i++)
		if (p[i] < 0x80 || p[i] > 0xBF)
			return 0;
	return n;
}

/* Bytes that end the plain run of a string: control characters, the quote, the backslash, and
 * every byte of a multi-byte UTF-8 character. */
static const bool special[256] = {
#define SPECIAL4(c) [c] = true, [c + 1] = true, [c + 2] = true, [c + 3] = true
#define SPECIAL16(c) SPECIAL4(c), SPECIAL4(c + 4), SPECIAL4(c + 8), SPECIAL4(c + 12)
	SPECIAL16(0x00), SPECIAL16(0x10), ['"'] = true, ['\\'] = true,
	SPECIAL16(0x80), SPECIAL16(0x90), SPECIAL16(0xA0), SPECIAL16(0xB0),
	SPECIAL16(0xC0), SPECIAL16(0xD0), SPECIAL16(0xE0), SPECIAL16(0xF0),
#undef SPECIAL16
#undef SPECIAL4
};

/* A string at s->p (its opening quote) into *ret: validated, its decoded length counted. */
static bool scan_string(struct scanner *s, struct json_scan_value *ret)
{
	const unsigned char *p = s->p + 1, *end = s->end, *start = p;
	size_t shrink = 0; /* raw bytes minus decoded bytes, from escapes */
	bool escaped = false;

	for (;;) {
		/* Printable ASCII other than the quote and the backslash is by far the most. */
		while (p < end && !special[*p])
			p++;
		if (p == end || *p < 0x20)
			return refuse(s, JSON_LOAD_INVALID);
		if (*p == '"')
			break;
		if (*p == '\\') {
			escaped = true;
			if (end - p < 2)
				return refuse(s, JSON_LOAD_INVALID);
			if (p[1] == 'u') {
				size_t used;
				int32_t cp = unicode_escape(p + 2, end, &used);
				if (cp < 0)
					return refuse(s, JSON_LOAD_INVALID);
				p += 2 + used;
				shrink += 2 + used - utf8_len(cp);
			} else if (p[1] && strchr("\"\\/bfnrt", p[1])) {
				p += 2;
				shrink++;
			} else {
				return refuse(s, JSON_LOAD_INVALID);
			}
		} else {
			size_t n = utf8_sequence(p, end);
			if (!n)
				return refuse(s, JSON_LOAD_INVALID);
			p += n;
		}
	}
	*ret = (struct json_scan_value){
		.type = JSON_SCAN_STRING,
		.text = (const char *)start,
		.text_len = (size_t)(p - start),
		.len = (size_t)(p - start) - shrink,
		.escaped = escaped,
	};
	s->p = p + 1;
	return true;
}

static bool is_digit(const unsigned char *p, const unsigned char *end)
{
	return p < end && *p >= '0' && *p <= '9';
}

/* True when the real whose digits are int_part then frac_part, times 10^exp10, is at least
 * the value strtod rounds to infinity. Only the magnitude and then the leading digits matter,
 * so this is exact without converting, and the same in every locale. */
static bool real_overflows(const unsigned char *int_part, size_t int_len,
			   const unsigned char *frac_part, size_t frac_len, int64_t exp10)
{
	size_t n = int_len + frac_len, first = 0;
#define DIGIT(i) ((i) < int_len ? int_part[(i)] : frac_part[(i) - int_len])

	while (first < n && DIGIT(first) == '0')
		first++;
	if (first == n)
		return false; /* zero */
	int64_t magnitude = (int64_t)int_len - 1 - (int64_t)first + exp10;
	if (magnitude != OVERFLOW_EXP10)
		return magnitude > OVERFLOW_EXP10;
	for (size_t i = 0; i < sizeof overflow_digits - 1; i++) {
		char d = first + i < n ? (char)DIGIT(first + i) : '0';
		if (d != overflow_digits[i])
			return d > overflow_digits[i];
	}
	return true; /* equal so far: at least the threshold */
#undef DIGIT
}

/* A number at s->p, by RFC 8259's grammar; an integer must fit int64 (jansson refuses it
 * otherwise), a real must not overflow a double. */
static bool scan_number(struct scanner *s, struct json_scan_value *ret)
{
	const unsigned char *p = s->p, *end = s->end;
	bool negative = *p == '-';
	const unsigned char *frac = NULL;
	size_t frac_len = 0;
	int64_t exp10 = 0;
	bool real = false;

	if (negative)
		p++;
	if (!is_digit(p, end))
		return refuse(s, JSON_LOAD_INVALID);
	const unsigned char *int_part = p;
	if (*p == '0') {
		p++;
		if (is_digit(p, end))
			return refuse(s, JSON_LOAD_INVALID);
	} else {
		while (is_digit(p, end))
			p++;
	}
	size_t int_len = (size_t)(p - int_part);
	if (p < end && *p == '.') {
		real = true;
		frac = ++p;
		if (!is_digit(p, end))
			return refuse(s, JSON_LOAD_INVALID);
		while (is_digit(p, end))
			p++;
		frac_len = (size_t)(p - frac);
	}
	if (p < end && (*p == 'e' || *p == 'E')) {
		real = true;
		p++;
		bool exp_negative = p < end && *p == '-';
		if (p < end && (*p == '-' || *p == '+'))
			p++;
		if (!is_digit(p, end))
			return refuse(s, JSON_LOAD_INVALID);
		for (; is_digit(p, end); p++)
			if (exp10 < 1000000000) /* saturates far beyond any double and any body */
				exp10 = exp10 * 10 + (*p - '0');
		if (exp_negative)
			exp10 = -exp10;
	}
	s->p = p;
	if (real) {
		if (real_overflows(int_part, int_len, frac, frac_len, exp10))
			return refuse(s, JSON_LOAD_INVALID);
		*ret = (struct json_scan_value){.type = JSON_SCAN_REAL};
		return true;
	}
	/* Accumulated negatively: INT64_MIN has no positive counterpart. */
	int64_t v = 0;
	for (size_t i = 0; i < int_len; i++) {
		int d = int_part[i] - '0';
		if (v < (INT64_MIN + d) / 10)
			return refuse(s, JSON_LOAD_INVALID);
		v = v * 10 - d;
	}
	if (!negative) {
		if (v == INT64_MIN)
			return refuse(s, JSON_LOAD_INVALID);
		v = -v;
	}
	*ret = (struct json_scan_value){.type = JSON_SCAN_INTEGER, .integer = v};
	return true;
}

static bool scan_literal(struct scanner *s, const char *word, enum json_scan_type type,
			 struct json_scan_value *ret)
{
	size_t n = strlen(word);

	if ((size_t)(s->end - s->p) < n || memcmp(s->p, word, n) != 0)
		return refuse(s, JSON_LOAD_INVALID);
	s->p += n;
	*ret = (struct json_scan_value){.type = type};
	return true;
}

void json_scan_chars_init(struct json_scan_chars *it, const struct json_scan_value *v)
{
	*it = (struct json_scan_chars){.p = v->text, .end = v->text + v->text_len};
}

/* Only called on strings scan_string accepted: every escape here is well-formed. */
bool json_scan_chars_next(struct json_scan_chars *it, char *ret_c)
{
	if (it->i_pending < it->n_pending) {
		*ret_c = it->pending[it->i_pending++];
		return true;
	}
	if (it->p == it->end)
		return false;
	if (*it->p != '\\') {
		*ret_c = *it->p++;
		return true;
	}
	char e = it->p[1];
	if (e != 'u') {
		static const char simple[] = "\"\"\\\\//b\bf\fn\nr\rt\t";
		*ret_c = strchr(simple, e)[1];
		it->p += 2;
		return true;
	}
	size_t used = 0;
	const unsigned char *u = (const unsigned char *)it->p + 2;
	int32_t cp = unicode_escape(u, (const unsigned char *)it->end, &used);
	unsigned char b[4];
	size_t n = utf8_len(cp);
	it->p += 2 + used;
	if (n == 1) {
		b[0] = (unsigned char)cp;
	} else if (n == 2) {
		b[0] = (unsigned char)(0xC0 | cp >> 6);
		b[1] = (unsigned char)(0x80 | (cp & 0x3F));
	} else if (n == 3) {
		b[0] = (unsigned char)(0xE0 | cp >> 12);
		b[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
		b[2] = (unsigned char)(0x80 | (cp & 0x3F));
	} else {
		b[0] = (unsigned char)(0xF0 | cp >> 18);
		b[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3F));
		b[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
		b[3] = (unsigned char)(0x80 | (cp & 0x3F));
	}
	memcpy(it->pending, b, n);
	it->n_pending = (unsigned char)n;
	it->i_pending = 1;
	*ret_c = it->pending[0];
	return true;
}

bool json_scan_string(const struct json_scan_value *v, char *out, size_t cap)
{
	struct json_scan_chars it;
	char c;
	size_t i = 0;

	if (v->type != JSON_SCAN_STRING || v->len >= cap)
		return false;
	if (!v->escaped) {
		memcpy(out, v->text, v->len);
	} else {
		json_scan_chars_init(&it, v);
		while (json_scan_chars_next(&it, &c))
			out[i++] = c;
	}
	out[v->len] = '\0';
	return true;
}

/* Orders decoded strings: by length, then bytes. 0 when equal. */
static int compare_decoded(const struct json_scan_value *a, const struct json_scan_value *b)
{
	if (a->len != b->len)
		return a->len < b->len ? -1 : 1;
	if (!a->escaped && !b->escaped)
		return memcmp(a->text, b->text, a->len);
	struct json_scan_chars ia, ib;
	char ca, cb;
	json_scan_chars_init(&ia, a);
	json_scan_chars_init(&ib, b);
	while (json_scan_chars_next(&ia, &ca) && json_scan_chars_next(&ib, &cb))
		if (ca != cb)
			return (unsigned char)ca < (unsigned char)cb ? -1 : 1;
	return 0;
}

static bool key_is(const struct json_scan_value *key, const char *name)
{
	/* Most keys differ from most names in their first byte: no need to measure the name. */
	if (!key->escaped && (key->len == 0 ? name[0] != '\0' : key->text[0] != name[0]))
		return false;
	size_t n = strlen(name);
	struct json_scan_value v = {.type = JSON_SCAN_STRING, .text = name, .text_len = n, .len = n};

	return key->len == n && compare_decoded(key, &v) == 0;
}

static uint32_t hash_decoded(const struct json_scan_value *v)
{
	struct json_scan_chars it;
	uint32_t h = 2166136261u;
	char c;

	if (!v->escaped) {
		for (size_t i = 0; i < v->len; i++)
			h = (h ^ (unsigned char)v->text[i]) * 16777619u;
		return h;
	}
	json_scan_chars_init(&it, v);
	while (json_scan_chars_next(&it, &c))
		h = (h ^ (unsigned char)c) * 16777619u;
	return h;
}

static int compare_keys(const void *a, const void *b)
{
	const struct key *x = a, *y = b;

	if (x->hash != y->hash)
		return x->hash < y->hash ? -1 : 1;
	return compare_decoded(&x->name, &y->name);
}

static bool push_key(struct scanner *s, const struct json_scan_value *name)
{
	if (s->n_keys == s->cap_keys) {
		size_t cap = s->cap_keys * 2;
		struct key *k = s->keys == s->inline_keys ? malloc(cap * sizeof *k)
							  : realloc(s->keys, cap * sizeof *k);
		if (!k)
			return refuse(s, JSON_LOAD_NOMEM);
		if (s->keys == s->inline_keys)
			memcpy(k, s->inline_keys, sizeof s->inline_keys);
		s->keys = k;
		s->cap_keys = cap;
	}
	s->keys[s->n_keys++] = (struct key){*name, hash_decoded(name)};
	return true;
}

/* True when no two of keys[0..n) decode to the same string. */
static bool keys_unique(struct key *keys, size_t n)
{
	if (n <= PAIRWISE_KEYS) {
		for (size_t i = 1; i < n; i++)
			for (size_t j = 0; j < i; j++)
				if (keys[i].hash == keys[j].hash &&
				    compare_decoded(&keys[i].name, &keys[j].name) == 0)
					return false;
		return true;
	}
	/* The order is total (hash, length, bytes), so colliding hashes cost a log, not a square. */
	qsort(keys, n, sizeof *keys, compare_keys);
	for (size_t i = 1; i < n; i++)
		if (compare_keys(&keys[i - 1], &keys[i]) == 0)
			return false;
	return true;
}

static bool scan_value(struct scanner *s, const struct json_scan_object *obj,
		       struct json_scan_value *ret, int depth);

static const struct json_scan_member *find_member(const struct json_scan_object *obj,
						  const struct json_scan_value *key)
{
	for (size_t i = 0; obj && i < obj->n; i++)
		if (key_is(key, obj->members[i].name))
			return &obj->members[i];
	return NULL;
}

/* An object at s->p, depth levels already open around it. */
static bool scan_object(struct scanner *s, const struct json_scan_object *obj, int depth)
{
	size_t first_key = s->n_keys;
	struct json_scan_value key, ignored;

	s->p++;
	skip_space(s);
	if (s->p < s->end && *s->p == '}') {
		s->p++;
		return true;
	}
	for (;;) {
		if (s->p == s->end || *s->p != '"')
			return refuse(s, JSON_LOAD_INVALID);
		if (!scan_string(s, &key) || !push_key(s, &key))
			return false;
		skip_space(s);
		if (s->p == s->end || *s->p != ':')
			return refuse(s, JSON_LOAD_INVALID);
		s->p++;
		const struct json_scan_member *m = find_member(obj, &key);
		struct json_scan_value *v = m && m->slot < s->n_values ? &s->values[m->slot] : &ignored;
		if (!scan_value(s, m ? m->object : NULL, v, depth))
			return false;
		skip_space(s);
		if (s->p < s->end && *s->p == ',') {
			s->p++;
			skip_space(s);
			continue;
		}
		if (s->p < s->end && *s->p == '}')
			break;
		return refuse(s, JSON_LOAD_INVALID);
	}
	s->p++;
	bool unique = keys_unique(s->keys + first_key, s->n_keys - first_key);
	s->n_keys = first_key;
	return unique || refuse(s, JSON_LOAD_INVALID);
}

static bool scan_array(struct scanner *s, int depth)
{
	struct json_scan_value ignored;

	s->p++;
	skip_space(s);
	if (s->p < s->end && *s->p == ']') {
		s->p++;
		return true;
	}
	for (;;) {
		if (!scan_value(s, NULL, &ignored, depth))
			return false;
		skip_space(s);
		if (s->p < s->end && *s->p == ',') {
			s->p++;
			continue;
		}
		if (s->p < s->end && *s->p == ']') {
			s->p++;
			return true;
		}
		return refuse(s, JSON_LOAD_INVALID);
	}
}

/* Any value, depth levels open around it; obj describes its members if it is an object. */
static bool scan_value(struct scanner *s, const struct json_scan_object *obj,
		       struct json_scan_value *ret, int depth)
{
	skip_space(s);
	if (s->p == s->end)
		return refuse(s, JSON_LOAD_INVALID);
	switch (*s->p) {
	case '{':
	case '[':
		/* Bounded before recursing, as json_depth_within bounds jansson. */
		if (depth >= JSON_MAX_DEPTH)
			return refuse(s, JSON_LOAD_TOO_DEEP);
		*ret = (struct json_scan_value){
			.type = *s->p == '{' ? JSON_SCAN_OBJECT : JSON_SCAN_ARRAY};
		return *s->p == '{' ? scan_object(s, obj, depth + 1) : scan_array(s, depth + 1);
	case '"':
		return scan_string(s, ret);
	case 't':
		return scan_literal(s, "true", JSON_SCAN_TRUE, ret);
	case 'f':
		return scan_literal(s, "false", JSON_SCAN_FALSE, ret);
	case 'n':
		return scan_literal(s, "null", JSON_SCAN_NULL, ret);
	default:
		if (*s->p == '-' || (*s->p >= '0' && *s->p <= '9'))
			return scan_number(s, ret);
		return refuse(s, JSON_LOAD_INVALID);
	}
}

enum json_load_result json_scan(const char *text, size_t len, const struct json_scan_object *root,
				struct json_scan_value *values, size_t n_values)
{
	struct scanner s;
	struct json_scan_value top;

	s.p = (const unsigned char *)text;
	s.end = s.p + (text ? len : 0);
	s.values = values;
	s.n_values = n_values;
	s.keys = s.inline_keys;
	s.n_keys = 0;
	s.cap_keys = INLINE_KEYS;
	s.fail = JSON_LOAD_INVALID;
	for (size_t i = 0; i < n_values; i++)
		values[i].type = JSON_SCAN_ABSENT;

	skip_space(&s);
	bool ok = s.p < s.end && *s.p == '{' && scan_value(&s, root, &top, 0);
	if (ok) {
		skip_space(&s);
		ok = s.p == s.end;
	}
	if (s.keys != s.inline_keys)
		free(s.keys);
	return ok ? JSON_LOAD_OK : s.fail;
}

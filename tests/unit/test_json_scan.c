/* json_scan: what it extracts, what it refuses, and that it agrees with jansson on both, on hand-
 * picked adversarial documents and on many random mutations of real webhook bodies. */
#include <criterion/criterion.h>

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json_scan.h"
#include "json_scan_oracle.h"

enum { A, B, OBJ, OBJ_X, N };

static const struct json_scan_member inner[] = {{"x", OBJ_X, NULL}};
static const struct json_scan_object inner_object = {inner, 1};
static const struct json_scan_member outer[] = {
	{"a", A, NULL},
	{"b", B, NULL},
	{"obj", OBJ, &inner_object},
};
static const struct json_scan_object schema = {outer, 3};

static enum json_load_result scan(const char *doc, struct json_scan_value v[N])
{
	return json_scan(doc, strlen(doc), &schema, v, N);
}

/* The document must be read alike by json_scan and jansson, under both schemas. */
static void assert_agrees(const char *doc, size_t len)
{
	const char *why = "";
	cr_assert(json_scan_agrees_with_jansson(doc, len, &schema, N, &why), "%s: %.*s", why,
		  (int)len, doc);
	cr_assert(json_scan_agrees_with_jansson(doc, len, &json_scan_oracle_schema,
						JSON_SCAN_ORACLE_SLOTS, &why),
		  "%s: %.*s", why, (int)len, doc);
}

static void assert_refused(const char *doc)
{
	struct json_scan_value v[N];
	cr_assert_eq(scan(doc, v), JSON_LOAD_INVALID, "accepted: %s", doc);
	assert_agrees(doc, strlen(doc));
}

static void assert_accepted(const char *doc)
{
	struct json_scan_value v[N];
	cr_assert_eq(scan(doc, v), JSON_LOAD_OK, "refused: %s", doc);
	assert_agrees(doc, strlen(doc));
}

static const char *decoded(const struct json_scan_value *v)
{
	static char buf[256];
	cr_assert(json_scan_string(v, buf, sizeof buf));
	return buf;
}

Test(json_scan, extracts_named_members_only)
{
	struct json_scan_value v[N];
	const char *doc = " {\"skip\":{\"a\":1,\"obj\":{\"x\":2}},\"a\":-42,\"list\":[{\"b\":1}],"
			  "\"obj\":{\"y\":[],\"x\":\"X\"},\"b\":null}\r\n\t";

	cr_assert_eq(scan(doc, v), JSON_LOAD_OK);
	cr_assert_eq(v[A].type, JSON_SCAN_INTEGER);
	cr_assert_eq(v[A].integer, -42);
	cr_assert_eq(v[B].type, JSON_SCAN_NULL);
	cr_assert_eq(v[OBJ].type, JSON_SCAN_OBJECT);
	cr_assert_eq(v[OBJ_X].type, JSON_SCAN_STRING);
	cr_assert_str_eq(decoded(&v[OBJ_X]), "X");
	assert_agrees(doc, strlen(doc));

	cr_assert_eq(scan("{}", v), JSON_LOAD_OK);
	for (int i = 0; i < N; i++)
		cr_assert_eq(v[i].type, JSON_SCAN_ABSENT);
	/* a member's object description applies to an object only */
	cr_assert_eq(scan("{\"obj\":[{\"x\":1}]}", v), JSON_LOAD_OK);
	cr_assert_eq(v[OBJ].type, JSON_SCAN_ARRAY);
	cr_assert_eq(v[OBJ_X].type, JSON_SCAN_ABSENT);
}

Test(json_scan, types)
{
	struct json_scan_value v[N];
	static const struct {
		const char *doc;
		enum json_scan_type type;
	} cases[] = {
		{"{\"a\":true}", JSON_SCAN_TRUE},   {"{\"a\":false}", JSON_SCAN_FALSE},
		{"{\"a\":null}", JSON_SCAN_NULL},   {"{\"a\":0}", JSON_SCAN_INTEGER},
		{"{\"a\":-0}", JSON_SCAN_INTEGER},  {"{\"a\":1.0}", JSON_SCAN_REAL},
		{"{\"a\":1e2}", JSON_SCAN_REAL},    {"{\"a\":-0.5E-3}", JSON_SCAN_REAL},
		{"{\"a\":\"\"}", JSON_SCAN_STRING}, {"{\"a\":[]}", JSON_SCAN_ARRAY},
		{"{\"a\":{}}", JSON_SCAN_OBJECT},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		cr_assert_eq(scan(cases[i].doc, v), JSON_LOAD_OK, "%s", cases[i].doc);
		cr_assert_eq(v[A].type, cases[i].type, "%s", cases[i].doc);
		assert_agrees(cases[i].doc, strlen(cases[i].doc));
	}
}

Test(json_scan, keys_match_decoded)
{
	struct json_scan_value v[N];

	cr_assert_eq(scan("{\"\\u0061\":1,\"\\u0062\":\"\\u0041\\/\\n\",\"o\\u0062j\":{\"\\u0078\":3}}",
			  v),
		     JSON_LOAD_OK);
	cr_assert_eq(v[A].integer, 1);
	cr_assert_str_eq(decoded(&v[B]), "A/\n");
	cr_assert_eq(v[B].len, 3);
	cr_assert(v[B].escaped);
	cr_assert_eq(v[OBJ_X].integer, 3);
	/* a key that only begins like a member, or extends one, is another key */
	cr_assert_eq(scan("{\"ab\":1,\"\":2,\"a\\u0000\":3}", v), JSON_LOAD_INVALID);
	cr_assert_eq(scan("{\"ab\":1,\"\":2,\"A\":3}", v), JSON_LOAD_OK);
	cr_assert_eq(v[A].type, JSON_SCAN_ABSENT);
}

Test(json_scan, strings_decode_to_utf8)
{
	struct json_scan_value v[N];

	cr_assert_eq(scan("{\"a\":\"\\u00e9\\u20AC\\ud83d\\ude00 \xc3\xa9\\\"\\\\\\b\\f\\r\\t\"}", v),
		     JSON_LOAD_OK);
	cr_assert_str_eq(decoded(&v[A]), "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80 \xc3\xa9\"\\\b\f\r\t");
	cr_assert_eq(v[A].len, strlen(decoded(&v[A])));

	/* json_scan_string: the NUL needs room, and a value that does not fit leaves out alone */
	char out[4] = "zzz";
	cr_assert_eq(scan("{\"a\":\"abcd\",\"b\":\"abc\"}", v), JSON_LOAD_OK);
	cr_assert_not(json_scan_string(&v[A], out, sizeof out));
	cr_assert_str_eq(out, "zzz");
	cr_assert(json_scan_string(&v[B], out, sizeof out));
	cr_assert_str_eq(out, "abc");
	cr_assert_eq(scan("{\"a\":1}", v), JSON_LOAD_OK);
	cr_assert_not(json_scan_string(&v[A], out, sizeof out));
}

Test(json_scan, refuses_bad_syntax)
{
	static const char *const docs[] = {
		"", " ", "{", "}", "{\"a\"}", "{\"a\":}", "{\"a\" 1}", "{a:1}", "{'a':1}",
		"{\"a\":1,}", "{,\"a\":1}", "{\"a\":1 \"b\":2}", "{\"a\":[1,]}", "{\"a\":[,1]}",
		"{\"a\":[1 2]}", "{\"a\":[}", "{\"a\":]}", "{\"a\":tru}", "{\"a\":True}",
		"{\"a\":truex}", "{\"a\":nul}", "{\"a\":NaN}", "{\"a\":Infinity}", "{\"a\":1}}",
		"{\"a\":1} x", "{}{}", "{},", "\xef\xbb\xbf{}", "{\f}", "{\v}",
		/* numbers */
		"{\"a\":01}", "{\"a\":-01}", "{\"a\":00}", "{\"a\":1.}", "{\"a\":.5}", "{\"a\":+1}",
		"{\"a\":1e}", "{\"a\":1e+}", "{\"a\":-}", "{\"a\":--1}", "{\"a\":0x10}", "{\"a\":1.5.}",
		"{\"a\":1true}",
		/* not an object at the top, which jansson reads but json_scan refuses */
		"[]", "[{}]", "\"s\"", "1", "null",
	};
	for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++)
		assert_refused(docs[i]);
	struct json_scan_value v[N];
	cr_assert_eq(json_scan("{\"a\":1}\x00", 8, &schema, v, N), JSON_LOAD_INVALID);
	/* where jansson 2.14 skips the NUL (after a number or a literal), json_scan refuses it */
#define WITH_LEN(s) {(s), sizeof(s) - 1}
	static const struct {
		const char *doc;
		size_t len;
	} nul_after[] = {
		WITH_LEN("{\"a\":1\0}"), WITH_LEN("{\"a\":true\0}"), WITH_LEN("{\"a\":[1e5\0]}"),
	};
#undef WITH_LEN
	enum json_load_result jr;
	json_decref(json_load_bounded(nul_after[0].doc, nul_after[0].len, &jr));
	cr_assert_eq(jr, JSON_LOAD_OK, "jansson's quirk, which json_scan does not copy");
	for (size_t i = 0; i < sizeof nul_after / sizeof nul_after[0]; i++) {
		cr_assert_eq(json_scan(nul_after[i].doc, nul_after[i].len, &schema, v, N),
			     JSON_LOAD_INVALID);
		assert_agrees(nul_after[i].doc, nul_after[i].len);
	}
	cr_assert_eq(json_scan(NULL, 0, &schema, v, N), JSON_LOAD_INVALID);
}

Test(json_scan, refuses_bad_strings)
{
	static const char *const docs[] = {
		"{\"a\":\"unterminated}", "{\"a\":\"tab\there\"}", "{\"a\":\"new\nline\"}",
		"{\"a\":\"\x01\"}", "{\"a\":\"\x1f\"}", "{\"a\":\"\\x41\"}", "{\"a\":\"\\U0041\"}",
		"{\"a\":\"\\'\"}", "{\"a\":\"\\\"}", "{\"a\":\"\\u12\"}", "{\"a\":\"\\u12G4\"}",
		"{\"a\":\"\\u\"}", "{\"a\":\"\\u0000\"}", "{\"\\u0000\":1}", "{\"a\":\"\\ud800\"}",
		"{\"a\":\"\\ud800x\"}", "{\"a\":\"\\ud800\\n\"}", "{\"a\":\"\\ud800\\u0041\"}",
		"{\"a\":\"\\ud800\\ud800\"}", "{\"a\":\"\\udc00\"}", "{\"a\":\"\\udfff\\ud800\"}",
		"{\"a\":\"\\ud800\\udc0\"}",
		/* UTF-8: stray continuation, overlong, surrogate, past U+10FFFF, truncated */
		"{\"a\":\"\x80\"}", "{\"a\":\"\xbf\"}", "{\"a\":\"\xc0\x80\"}", "{\"a\":\"\xc1\xbf\"}",
		"{\"a\":\"\xe0\x80\x80\"}", "{\"a\":\"\xe0\x9f\xbf\"}", "{\"a\":\"\xed\xa0\x80\"}",
		"{\"a\":\"\xed\xbf\xbf\"}", "{\"a\":\"\xf0\x8f\xbf\xbf\"}", "{\"a\":\"\xf4\x90\x80\x80\"}",
		"{\"a\":\"\xf5\x80\x80\x80\"}", "{\"a\":\"\xff\"}", "{\"a\":\"\xc3\"}",
		"{\"a\":\"\xe2\x82\"}", "{\"a\":\"\xf0\x9f\x98\"}", "{\"a\":\"\xc3\x41\"}",
		"{\"\xc3\":1}", "{\"a\":1,\xc3\xa9:1}",
	};
	for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++)
		assert_refused(docs[i]);
	/* and their well-formed neighbours */
	static const char *const ok[] = {
		"{\"a\":\"\x7f\"}", "{\"a\":\"\xc2\x80\"}", "{\"a\":\"\xdf\xbf\"}",
		"{\"a\":\"\xe0\xa0\x80\"}", "{\"a\":\"\xed\x9f\xbf\"}", "{\"a\":\"\xee\x80\x80\"}",
		"{\"a\":\"\xf0\x90\x80\x80\"}", "{\"a\":\"\xf4\x8f\xbf\xbf\"}",
		"{\"a\":\"\\ud800\\udc00\\udbff\\udfff\"}", "{\"a\":\"\\uFFFF\\u0001\\u07ff\"}",
		"{\"a\":\"\\/\\\"\"}",
	};
	for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
		assert_accepted(ok[i]);
}

Test(json_scan, integers_within_int64)
{
	struct json_scan_value v[N];

	cr_assert_eq(scan("{\"a\":9223372036854775807,\"b\":-9223372036854775808}", v),
		     JSON_LOAD_OK);
	cr_assert_eq(v[A].integer, INT64_MAX);
	cr_assert_eq(v[B].integer, INT64_MIN);
	cr_assert_eq(scan("{\"a\":-0}", v), JSON_LOAD_OK);
	cr_assert_eq(v[A].integer, 0);
	assert_refused("{\"a\":9223372036854775808}");
	assert_refused("{\"a\":-9223372036854775809}");
	assert_refused("{\"a\":100000000000000000000}");
	assert_refused("{\"x\":[99999999999999999999]}"); /* anywhere, as jansson */
	assert_accepted("{\"x\":[99999999999999999999.0]}"); /* that many digits as a real: fine */
}

Test(json_scan, reals_that_overflow_a_double)
{
	static const char *const overflow[] = {
		"1e309", "-1e309", "1e99999999999999999999", "10e308", "0.1e310",
		"1.797693134862315808e308", "179769313486231580793728971405303415079934132710037826"
		"936173778980444968292764750946649017977587207096330286416692887910946555547851940402"
		"630657488671505820681908902000708383676273854845817711531764475730270069855571366959"
		"622842914819860834936475292719074168444365510704342711559699508093042880177904174497"
		"792.0",
		"0.0000000000000000000000000000001e340",
	};
	static const char *const fine[] = {
		"1e308", "1.7976931348623158e308", "1.797693134862315807e308", "-1.79769313486231570e308",
		"1e-400", "0e99999999999999", "0.000e400", "0.0e1", "123456789.123e-10",
		"179769313486231580793728971405303415079934132710037826936173778980444968292764750946"
		"649017977587207096330286416692887910946555547851940402630657488671505820681908902000"
		"708383676273854845817711531764475730270069855571366959622842914819860834936475292719"
		"074168444365510704342711559699508093042880177904174497791.9999",
	};
	char doc[512];

	for (size_t i = 0; i < sizeof overflow / sizeof overflow[0]; i++) {
		cr_assert(isinf(strtod(overflow[i], NULL)), "%s", overflow[i]);
		snprintf(doc, sizeof doc, "{\"a\":%s}", overflow[i]);
		assert_refused(doc);
	}
	for (size_t i = 0; i < sizeof fine / sizeof fine[0]; i++) {
		cr_assert(!isinf(strtod(fine[i], NULL)), "%s", fine[i]);
		snprintf(doc, sizeof doc, "{\"a\":%s}", fine[i]);
		assert_accepted(doc);
	}
}

/* Scans a generated document (and frees it): the result must be want, jansson must agree. */
static void scans_to(char *doc, enum json_load_result want)
{
	struct json_scan_value v[N];

	cr_assert_eq(scan(doc, v), want, "%.200s", doc);
	assert_agrees(doc, strlen(doc));
	free(doc);
}

static char *nested(int depth, const char *open, const char *close)
{
	size_t lo = strlen(open), lc = strlen(close);
	size_t cap = (size_t)depth * (lo + lc) + 16;
	char *s = malloc(cap);
	cr_assert_not_null(s);
	size_t len = (size_t)snprintf(s, cap, "{\"k\":");
	for (int i = 1; i < depth; i++, len += lo)
		memcpy(s + len, open, lo);
	s[len++] = '1';
	for (int i = 1; i < depth; i++, len += lc)
		memcpy(s + len, close, lc);
	snprintf(s + len, cap - len, "}");
	return s;
}

Test(json_scan, nesting_is_bounded)
{
	struct json_scan_value v[N];
	static const char *const kinds[][2] = {{"[", "]"}, {"{\"k\":", "}"}, {"[{\"a\":", "}]"}};

	for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
		int levels_per = i == 2 ? 2 : 1;
		scans_to(nested(1 + (JSON_MAX_DEPTH - 1) / levels_per, kinds[i][0], kinds[i][1]),
			 JSON_LOAD_OK);
		scans_to(nested(2 + (JSON_MAX_DEPTH - 1) / levels_per, kinds[i][0], kinds[i][1]),
			 JSON_LOAD_TOO_DEEP);
	}
	/* far deeper than a worker's stack would survive, were the bound not checked first */
	char *abyss = nested(100000, "[", "]");
	cr_assert_eq(scan(abyss, v), JSON_LOAD_TOO_DEEP);
	free(abyss);
	/* brackets in strings are text */
	assert_accepted("{\"a\":\"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\"}");
}

Test(json_scan, duplicate_keys_anywhere)
{
	static const char *const dup[] = {
		"{\"a\":1,\"a\":2}", "{\"a\":1,\"\\u0061\":2}", "{\"\\u0061\":1,\"\\u0061\":2}",
		"{\"zz\":{\"q\":1,\"q\":2}}", "{\"zz\":[{},{\"q\":1,\"r\":0,\"q\":2}]}",
		"{\"\":1,\"\":2}", "{\"\xc3\xa9\":1,\"\\u00e9\":2}", "{\"\\ud83d\\ude00\":1,\"\xf0\x9f\x98\x80\":1}",
		"{\"obj\":{\"x\":1,\"x\":1}}", "{\"a\":null,\"a\":null}",
	};
	static const char *const unique[] = {
		"{\"a\":1,\"b\":{\"a\":2},\"c\":[{\"a\":3},{\"a\":4}]}", "{\"a\":1,\"A\":2,\"a \":3}",
		"{\"a\":{\"a\":{\"a\":{}}}}", "{\"\xc3\xa9\":1,\"\\u00e8\":2}",
	};
	for (size_t i = 0; i < sizeof dup / sizeof dup[0]; i++)
		assert_refused(dup[i]);
	for (size_t i = 0; i < sizeof unique / sizeof unique[0]; i++)
		assert_accepted(unique[i]);
}

/* An object of n keys "k0".."k<n-1>" (with an escape in every third), one of them repeated at
 * position at if at < n, nested inside an object with keys of its own. */
static char *many_keys(size_t n, size_t at)
{
	size_t cap = n * 48 + 64, len = 0;
	char *s = malloc(cap);
	cr_assert_not_null(s);
	len += (size_t)snprintf(s, cap, "{\"before\":1,\"inner\":{");
	for (size_t i = 0; i < n; i++)
		len += (size_t)snprintf(s + len, cap - len,
					i % 3 ? "%s\"k%zu\":%zu" : "%s\"\\u006b%zu\":%zu", i ? "," : "",
					i == at ? (size_t)0 : i, i);
	snprintf(s + len, cap - len, "},\"after\":[1]}");
	cr_assert_lt(len, cap - 16);
	return s;
}

Test(json_scan, duplicates_among_many_keys)
{
	static const size_t sizes[] = {2, 16, 17, 63, 64, 65, 200, 5000};

	for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
		scans_to(many_keys(sizes[i], sizes[i]), JSON_LOAD_OK);
		scans_to(many_keys(sizes[i], 1), JSON_LOAD_INVALID);
		scans_to(many_keys(sizes[i], sizes[i] - 1), JSON_LOAD_INVALID);
	}
}

Test(json_scan, body_need_not_be_terminated)
{
	struct json_scan_value v[N];
	const char buf[] = "{\"a\":\"x\"}{\"a\":1} \"";

	cr_assert_eq(json_scan(buf, 9, &schema, v, N), JSON_LOAD_OK);
	cr_assert_str_eq(decoded(&v[A]), "x");
	/* a string, number or literal cut by the end is refused, not read past it */
	cr_assert_eq(json_scan(buf, 8, &schema, v, N), JSON_LOAD_INVALID);
	cr_assert_eq(json_scan("{\"a\":12", 6, &schema, v, N), JSON_LOAD_INVALID);
	cr_assert_eq(json_scan("{\"a\":true}", 8, &schema, v, N), JSON_LOAD_INVALID);
	cr_assert_eq(json_scan("{\"a\":\"\\u0041\"}", 10, &schema, v, N), JSON_LOAD_INVALID);
	cr_assert_eq(json_scan("{\"a\":\"\\ud83d\\ude00\"}", 16, &schema, v, N),
		     JSON_LOAD_INVALID);
	cr_assert_eq(json_scan("{\"a\":\"\xc3\xa9\"}", 7, &schema, v, N), JSON_LOAD_INVALID);
}

/* ---- Differential: random mutations of real bodies ------------------------------------- */

static const char *const seeds[] = {
	"{\"event\":\"participant_joined\",\"room\":{\"sid\":\"RM_tQ8xVvZ3kT9a\",\"name\":\"call-7f3a\","
	"\"emptyTimeout\":300,\"creationTime\":\"1767225600\",\"enabledCodecs\":[{\"mime\":"
	"\"audio/opus\"},{\"mime\":\"video/VP8\"}],\"version\":{\"unixMicro\":\"1767225601502311\","
	"\"ticks\":1}},\"participant\":{\"sid\":\"PA_Jx4bN8sQw2Lm\",\"identity\":\"user-42\","
	"\"state\":\"ACTIVE\",\"metadata\":\"{\\\"uid\\\":42}\",\"joinedAt\":\"1767225601\","
	"\"permission\":{\"canSubscribe\":true,\"hidden\":false,\"canPublishSources\":[\"CAMERA\"]},"
	"\"attributes\":{\"r\\u00f4le\":\"h\xc3\xb4te\"}},\"id\":\"EV_kKc9DW235ytJ\",\"n\":-1.5e3,"
	"\"createdAt\":\"1767225601\"}",
	"{\"event\":\"room_started\", \"room\":{\"sid\":\"RM_TkVjUvAqgzKz\", \"name\":\"mytestroom\", "
	"\"emptyTimeout\":300, \"turnPassword\":\"ICkSr2rEeslkN6e9bXL4Ji5zzMD5Z7zzr6ulOaxMj6N\"}, "
	"\"\":null, \"\\u00e9\":[true,false,null,{}], \"id\":\"EV_\\ud83d\\ude00\"}",
};

/* Pieces a mutation inserts: the tokens and near-tokens where readers tend to differ. */
static const char *const pieces[] = {
	"\"", "\\", "\\u", "\\u0000", "\\ud800", "\\udc00", "\\u00e9", "{", "}", "[", "]", ",", ":",
	"-", "0", "1e309", "9223372036854775808", ".", "e", "true", "nul", " ", "\n", "\t", "\x01",
	"\x80", "\xc3", "\xc3\xa9", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\"id\":1,", "\"a\":2,",
	"\"room\":", "\"participant\":{\"sid\":\"x\"},", "\"\\u0069d\":\"y\",", "\"n\":0,",
};

static uint64_t rng_state = 0x9e3779b97f4a7c15u;
static uint64_t rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

Test(json_scan, agrees_with_jansson_on_random_mutations)
{
	char doc[2048];
	size_t accepted = 0;

	for (int round = 0; round < 60000; round++) {
		const char *seed = seeds[rng() % (sizeof seeds / sizeof seeds[0])];
		size_t len = strlen(seed);
		memcpy(doc, seed, len);
		for (int k = 1 + (int)(rng() % 3); k > 0; k--) {
			size_t at = rng() % (len + 1);
			unsigned op = rng() % 4;
			if (op == 0 && len > 0) { /* delete a few bytes */
				size_t n = 1 + rng() % 3;
				if (at + n > len)
					n = len - at;
				memmove(doc + at, doc + at + n, len - at - n);
				len -= n;
			} else if (op == 1 && at < len) { /* change one byte */
				doc[at] = (char)(rng() & 0xff);
			} else { /* insert a piece */
				const char *p = pieces[rng() % (sizeof pieces / sizeof pieces[0])];
				size_t n = strlen(p);
				memmove(doc + at + n, doc + at, len - at);
				memcpy(doc + at, p, n);
				len += n;
			}
		}
		struct json_scan_value v[JSON_SCAN_ORACLE_SLOTS];
		accepted += json_scan(doc, len, &json_scan_oracle_schema, v,
				      JSON_SCAN_ORACLE_SLOTS) == JSON_LOAD_OK;
		assert_agrees(doc, len);
	}
	/* the mutations must reach both sides of the line for the comparison to mean anything */
	cr_assert(accepted > 5000 && accepted < 55000, "%zu of 60000 accepted", accepted);
}

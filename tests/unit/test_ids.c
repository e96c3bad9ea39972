/* Unit tests of the small text formats: UUIDv7 ids (layout, monotonicity within a millisecond,
 * across a backwards clock and across threads), RFC 3339 timestamps and JSON string escaping. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "ids.h"
#include "jsonutil.h"
#include "timefmt.h"

/* ---- ids ---------------------------------------------------------------------------------- */

static bool is_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

static void assert_uuidv7(const char *id)
{
	cr_assert_eq(strlen(id), ID_LEN, "%s", id);
	for (int i = 0; i < ID_LEN; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23)
			cr_assert_eq(id[i], '-', "%s", id);
		else
			cr_assert(is_hex(id[i]), "%s: not lowercase hex at %d", id, i);
	}
	cr_assert_eq(id[14], '7', "version of %s", id);
	cr_assert(strchr("89ab", id[19]) != NULL, "variant of %s", id);
}

static int64_t id_timestamp(const char *id)
{
	char hex[13];
	memcpy(hex, id, 8);
	memcpy(hex + 8, id + 9, 4);
	hex[12] = '\0';
	return (int64_t)strtoll(hex, NULL, 16);
}

Test(ids, layout_and_timestamp)
{
	char id[ID_LEN + 1];
	ids_uuidv7(INT64_C(1795575600123), id);
	assert_uuidv7(id);
	cr_assert_eq(id_timestamp(id), INT64_C(1795575600123));
	cr_assert_eq(strncmp(id, "01a2", 4), 0, "%s", id); /* 0x01a2… is 2026 */
}

Test(ids, reseed_leaves_counter_top_bit_clear)
{
	char id[ID_LEN + 1];
	for (int64_t ms = 1000; ms < 1200; ms++) {
		ids_uuidv7(ms, id);
		/* id[15] holds the counter's top four bits: its top bit must be clear */
		cr_assert(id[15] >= '0' && id[15] <= '7', "%s", id);
	}
}

Test(ids, strictly_increasing_within_one_millisecond)
{
	char prev[ID_LEN + 1], cur[ID_LEN + 1];
	ids_uuidv7(5000, prev);
	for (int i = 0; i < 100000; i++) {
		ids_uuidv7(5000, cur);
		cr_assert_lt(strcmp(prev, cur), 0, "%s then %s", prev, cur);
		memcpy(prev, cur, sizeof cur);
	}
	assert_uuidv7(cur);
	cr_assert_eq(id_timestamp(cur), 5000);
}

Test(ids, clock_going_backwards_keeps_increasing)
{
	char a[ID_LEN + 1], b[ID_LEN + 1], c[ID_LEN + 1];
	ids_uuidv7(10000, a);
	ids_uuidv7(9000, b);
	ids_uuidv7(10001, c);
	cr_assert_lt(strcmp(a, b), 0, "%s then %s", a, b);
	cr_assert_eq(id_timestamp(b), 10000, "keeps the last timestamp: %s", b);
	cr_assert_lt(strcmp(b, c), 0);
	cr_assert_eq(id_timestamp(c), 10001);
}

Test(ids, clamps_out_of_range_clocks)
{
	char id[ID_LEN + 1];
	ids_uuidv7(-5, id);
	assert_uuidv7(id);
	ids_uuidv7(INT64_MAX, id);
	assert_uuidv7(id);
	cr_assert_eq(strncmp(id, "ffffffff-ffff-7", 15), 0, "%s", id);
}

#define THREADS 4
#define PER_THREAD 25000

static char thread_ids[THREADS][PER_THREAD][ID_LEN + 1];

static void *make_ids(void *arg)
{
	char(*out)[ID_LEN + 1] = arg;
	for (int i = 0; i < PER_THREAD; i++)
		ids_uuidv7(20000 + i / 1000, out[i]); /* a few ids per ms, shared by the threads */
	return NULL;
}

static int cmp_ids(const void *a, const void *b)
{
	return strcmp(a, b);
}

Test(ids, unique_and_increasing_across_threads)
{
	pthread_t th[THREADS];
	for (int t = 0; t < THREADS; t++)
		cr_assert_eq(pthread_create(&th[t], NULL, make_ids, thread_ids[t]), 0);
	for (int t = 0; t < THREADS; t++)
		pthread_join(th[t], NULL);
	for (int t = 0; t < THREADS; t++) {
		for (int i = 1; i < PER_THREAD; i++)
			cr_assert_lt(strcmp(thread_ids[t][i - 1], thread_ids[t][i]), 0);
	}
	qsort(thread_ids, (size_t)THREADS * PER_THREAD, ID_LEN + 1, cmp_ids);
	char(*all)[ID_LEN + 1] = &thread_ids[0][0];
	for (int i = 1; i < THREADS * PER_THREAD; i++)
		cr_assert_neq(strcmp(all[i - 1], all[i]), 0, "duplicate %s", all[i]);
}

/* ---- timefmt ------------------------------------------------------------------------------ */

struct vector {
	int64_t ms;
	const char *text;
};

static const struct vector format_vectors[] = {
	{0, "1970-01-01T00:00:00.000Z"},
	{INT64_C(1709164800000), "2024-02-29T00:00:00.000Z"},
	{INT64_C(1795575600123), "2026-11-25T03:00:00.123Z"},
	{INT64_C(951868799999), "2000-02-29T23:59:59.999Z"},
	{INT64_C(253402300799999), "9999-12-31T23:59:59.999Z"},
	{INT64_C(1709251199001), "2024-02-29T23:59:59.001Z"},
	{INT64_C(1735689599999), "2024-12-31T23:59:59.999Z"},
};

Test(timefmt, formats_known_vectors)
{
	char out[TIMEFMT_LEN + 1];
	for (size_t i = 0; i < sizeof format_vectors / sizeof format_vectors[0]; i++) {
		timefmt_format(format_vectors[i].ms, out);
		cr_assert_str_eq(out, format_vectors[i].text);
	}
}

Test(timefmt, clamps_outside_1970_to_9999)
{
	char out[TIMEFMT_LEN + 1];
	timefmt_format(-1, out);
	cr_assert_str_eq(out, "1970-01-01T00:00:00.000Z");
	timefmt_format(INT64_MAX, out);
	cr_assert_str_eq(out, "9999-12-31T23:59:59.999Z");
}

Test(timefmt, parses_known_vectors)
{
	int64_t ms;
	for (size_t i = 0; i < sizeof format_vectors / sizeof format_vectors[0]; i++) {
		cr_assert(timefmt_parse(format_vectors[i].text, &ms), "%s", format_vectors[i].text);
		cr_assert_eq(ms, format_vectors[i].ms, "%s", format_vectors[i].text);
	}
}

Test(timefmt, parses_offsets_fractions_and_lowercase)
{
	static const struct vector v[] = {
		{INT64_C(1795564800000), "2026-11-25T05:30:00+05:30"},
		{INT64_C(1795575600000), "2026-11-24T22:00:00-05:00"},
		{INT64_C(1795575600000), "2026-11-25T03:00:00-00:00"},
		{INT64_C(1795575600000), "2026-11-25t03:00:00z"},
		{INT64_C(1795575600100), "2026-11-25T03:00:00.1Z"},
		{INT64_C(1795575600120), "2026-11-25T03:00:00.12Z"},
		{INT64_C(1795575600123), "2026-11-25T03:00:00.123456789Z"},
		{INT64_C(1795575600999), "2026-11-25T03:00:00.9999Z"},
		{-500, "1969-12-31T23:59:59.500Z"},
		{INT64_C(-62135596800000), "0001-01-01T00:00:00Z"},
		{INT64_C(1709164800000), "2024-02-29T01:00:00+01:00"},
	};
	for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
		int64_t ms = 0;
		cr_assert(timefmt_parse(v[i].text, &ms), "%s", v[i].text);
		cr_assert_eq(ms, v[i].ms, "%s: %lld", v[i].text, (long long)ms);
	}
}

Test(timefmt, rejects_invalid)
{
	static const char *const bad[] = {
		"",
		"junk",
		"2026-02-30T00:00:00Z",       /* Feb 30 */
		"2023-02-29T00:00:00Z",       /* not a leap year */
		"1900-02-29T00:00:00Z",       /* centuries are not, unless divisible by 400 */
		"2026-04-31T00:00:00Z",
		"2026-13-01T00:00:00Z",
		"2026-00-01T00:00:00Z",
		"2026-01-00T00:00:00Z",
		"2026-11-25T24:00:00Z",       /* hour 24 */
		"2026-11-25T03:60:00Z",
		"2026-11-25T03:00:60Z",       /* leap seconds are refused */
		"2026-11-25T03:00:00",        /* missing zone */
		"2026-11-25",
		"2026-11-25 03:00:00Z",       /* space separator */
		"2026-11-25T03:00:00.Z",      /* a dot without digits */
		"2026-11-25T03:00:00.1234567890Z", /* ten fraction digits */
		"2026-11-25T03:00:00Zjunk",
		"2026-11-25T03:00:00Z ",
		" 2026-11-25T03:00:00Z",
		"2026-11-25T03:00:00+0500",
		"2026-11-25T03:00:00+24:00",
		"2026-11-25T03:00:00+05:60",
		"2026-11-25T03:00:00+5:00",
		"2026-1-25T03:00:00Z",
		"2026-11-25T3:00:00Z",
		"+2026-11-25T03:00:00Z",
		"2026-11-25T03:00:00UTC",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		int64_t ms = 42;
		cr_assert_not(timefmt_parse(bad[i], &ms), "accepted %s", bad[i]);
		cr_assert_eq(ms, 42, "wrote the output for %s", bad[i]);
	}
}

Test(timefmt, round_trips)
{
	char out[TIMEFMT_LEN + 1];
	uint64_t x = 88172645463325252u; /* xorshift64: a reproducible spread of instants */
	for (int i = 0; i < 100000; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		int64_t ms = (int64_t)(x % UINT64_C(253402300800000)), back;
		timefmt_format(ms, out);
		cr_assert(timefmt_parse(out, &back), "%s", out);
		cr_assert_eq(back, ms, "%s", out);
	}
}

/* ---- jsonutil ----------------------------------------------------------------------------- */

static const char *json(const char *s)
{
	static char out[512];
	size_t len = 0;
	cr_assert(json_append_string(out, sizeof out - 1, &len, s));
	out[len] = '\0';
	return out;
}

Test(jsonutil, escapes)
{
	cr_assert_str_eq(json(""), "\"\"");
	cr_assert_str_eq(json("plain"), "\"plain\"");
	cr_assert_str_eq(json("a\"b\\c"), "\"a\\\"b\\\\c\"");
	cr_assert_str_eq(json("\b\f\n\r\t"), "\"\\b\\f\\n\\r\\t\"");
	cr_assert_str_eq(json("\x01\x1f\x0b"), "\"\\u0001\\u001f\\u000b\"");
	cr_assert_str_eq(json("Zoë 😀 / \x7f"), "\"Zoë 😀 / \x7f\"");
}

Test(jsonutil, appends_at_len)
{
	char out[32] = "ab";
	size_t len = 2;
	cr_assert(json_append_string(out, sizeof out, &len, "x"));
	cr_assert_eq(len, 5);
	cr_assert_eq(memcmp(out, "ab\"x\"", 5), 0);
}

/* A string that does not fit leaves *len and every byte past it alone, on both the one-pass
 * path and the measuring path. */
Test(jsonutil, refuses_what_does_not_fit)
{
	static const char *const inputs[] = {"abcd", "a\nb", "\x01\x02"};
	for (size_t i = 0; i < sizeof inputs / sizeof inputs[0]; i++) {
		char probe[64];
		size_t need = 0;
		cr_assert(json_append_string(probe, sizeof probe, &need, inputs[i]));

		char out[64];
		size_t len = 3;
		memset(out, '#', sizeof out);
		cr_assert_not(json_append_string(out, 3 + need - 1, &len, inputs[i]), "%s",
			      inputs[i]);
		cr_assert_eq(len, 3);
		for (size_t k = 0; k < sizeof out; k++)
			cr_assert_eq(out[k], '#');

		cr_assert(json_append_string(out, 3 + need, &len, inputs[i]));
		cr_assert_eq(len, 3 + need);
		cr_assert_eq(memcmp(out + 3, probe, need), 0);
	}
	size_t len = 10;
	char out[8];
	cr_assert_not(json_append_string(out, sizeof out, &len, ""), "len past cap");
}

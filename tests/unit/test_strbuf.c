/* Unit tests of strbuf.c: every append agrees with snprintf's formatting of the same value,
 * and an append that does not fit is cut at the buffer's end and says so. */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "strbuf.h"

static const uint64_t values[] = {0, 1, 9, 10, 99, 100, 999, 1000, 65535, 4294967295u,
				  UINT64_C(1796184649123), INT64_MAX, (uint64_t)INT64_MAX + 1,
				  UINT64_MAX};

#define N_VALUES (sizeof values / sizeof values[0])

static void check(const struct strbuf *b, const char *want)
{
	cr_assert_eq(b->len, strlen(want));
	cr_assert(memcmp(b->p, want, b->len) == 0, "got %.*s, want %s", (int)b->len, b->p,
		  want);
	cr_assert_not(b->cut);
}

Test(strbuf, numbers_as_printf)
{
	for (size_t i = 0; i < N_VALUES; i++) {
		for (int digits = 0; digits <= 20; digits++) {
			char buf[64], want[64];
			struct strbuf b = STRBUF_INIT(buf, sizeof buf);
			strbuf_u64(&b, values[i], digits);
			snprintf(want, sizeof want, "%0*" PRIu64, digits, values[i]);
			check(&b, want);
			b = STRBUF_INIT(buf, sizeof buf);
			strbuf_hex(&b, values[i], digits);
			snprintf(want, sizeof want, "%0*" PRIx64, digits, values[i]);
			check(&b, want);
		}
		int64_t s[] = {(int64_t)values[i], -(int64_t)(values[i] & INT64_MAX), INT64_MIN};
		for (size_t k = 0; k < 3; k++) {
			char buf[64], want[64];
			struct strbuf b = STRBUF_INIT(buf, sizeof buf);
			strbuf_i64(&b, s[k]);
			snprintf(want, sizeof want, "%" PRId64, s[k]);
			check(&b, want);
		}
	}
}

Test(strbuf, appends_in_order)
{
	char buf[64];
	struct strbuf b = STRBUF_INIT(buf, sizeof buf);
	strbuf_lit(&b, "status=");
	strbuf_i64(&b, 200);
	strbuf_puts(&b, " route=");
	strbuf_put(&b, "/v1/callsXX", 9);
	check(&b, "status=200 route=/v1/calls");
}

Test(strbuf, cut_at_capacity)
{
	char buf[8];
	memset(buf, '.', sizeof buf);
	struct strbuf b = STRBUF_INIT(buf, 5);
	strbuf_lit(&b, "abc");
	cr_assert_not(b.cut);
	strbuf_u64(&b, 12345, 1);
	cr_assert(b.cut);
	cr_assert_eq(b.len, 5);
	cr_assert(memcmp(buf, "abc12...", 8) == 0);
	strbuf_puts(&b, "more");
	cr_assert_eq(b.len, 5);
	cr_assert(memcmp(buf, "abc12...", 8) == 0);
}

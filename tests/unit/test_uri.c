/* Path segments and query values decoded once, with every trick that used to name another
 * resource refused rather than normalised. */
#include <criterion/criterion.h>
#include <string.h>

#include "uri.h"

Test(uri_decode, decodes_once)
{
	char out[64];
	cr_assert_eq(uri_decode("a%2Fb", 5, false, out, sizeof out), 3);
	cr_assert_str_eq(out, "a/b");
	cr_assert_eq(uri_decode("%252F", 5, false, out, sizeof out), 3);
	cr_assert_str_eq(out, "%2F", "decoded once, not twice");
	cr_assert_eq(uri_decode("a+b%20c", 7, false, out, sizeof out), 5);
	cr_assert_str_eq(out, "a+b c", "'+' is a plus in a path");
	cr_assert_eq(uri_decode("a+b", 3, true, out, sizeof out), 3);
	cr_assert_str_eq(out, "a b", "and a space in a query");
	cr_assert_eq(uri_decode("%C3%A9%e2%82%AC", 15, false, out, sizeof out), 5);
	cr_assert_str_eq(out, "\xc3\xa9\xe2\x82\xac");
	cr_assert_eq(uri_decode("", 0, false, out, sizeof out), 0);
	cr_assert_str_eq(out, "");
}

Test(uri_decode, refuses_nul_and_malformed_escapes)
{
	static const char *const bad[] = {"a%00b", "%00", "%", "a%", "a%2", "%zz", "%2g", "%g2",
					  "%%41"};
	char out[64];
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		cr_assert_eq(uri_decode(bad[i], strlen(bad[i]), false, out, sizeof out),
			     URI_INVALID, "%s", bad[i]);
}

Test(uri_decode, too_long_unless_malformed)
{
	char out[4];
	cr_assert_eq(uri_decode("abcd", 4, false, out, sizeof out), URI_TOO_LONG);
	cr_assert_eq(uri_decode("abc", 3, false, out, sizeof out), 3);
	cr_assert_eq(uri_decode("abcdef%00", 9, false, out, sizeof out), URI_INVALID,
		     "a NUL past the end still wins");
}

Test(uri_query, finds_the_nth_value)
{
	char out[64];
	const char *q = "users=a,b&user=x%2Fy&user=&after=1&flag";
	cr_assert_eq(uri_query(q, "users", 0, out, sizeof out), 3);
	cr_assert_str_eq(out, "a,b");
	cr_assert_eq(uri_query(q, "user", 0, out, sizeof out), 3);
	cr_assert_str_eq(out, "x/y");
	cr_assert_eq(uri_query(q, "user", 1, out, sizeof out), 0);
	cr_assert_eq(uri_query(q, "user", 2, out, sizeof out), URI_ABSENT);
	cr_assert_eq(uri_query(q, "flag", 0, out, sizeof out), 0);
	cr_assert_eq(uri_query(q, "use", 0, out, sizeof out), URI_ABSENT, "names match whole");
	cr_assert_eq(uri_query(q, "USERS", 0, out, sizeof out), URI_ABSENT, "and exactly");
	cr_assert_eq(uri_query(NULL, "a", 0, out, sizeof out), URI_ABSENT);
	cr_assert_eq(uri_query("", "a", 0, out, sizeof out), URI_ABSENT);
	cr_assert_eq(uri_query("%61fter=2", "after", 0, out, sizeof out), 1, "names decode");
	cr_assert_str_eq(out, "2");
}

Test(uri_query, nul_and_bad_escapes_are_errors_not_truncation)
{
	char out[64];
	cr_assert_eq(uri_query("after=1%00", "after", 0, out, sizeof out), URI_INVALID);
	cr_assert_eq(uri_query("after=%", "after", 0, out, sizeof out), URI_INVALID);
	cr_assert_eq(uri_query("a%00=1&after=2", "after", 0, out, sizeof out), URI_INVALID,
		     "a malformed name is refused, not skipped");
	cr_assert_eq(uri_query("after=123456", "after", 0, out, 4), URI_TOO_LONG);
}

Test(uri_segment, ambiguous_segments)
{
	cr_assert(uri_segment_ambiguous(".", 1));
	cr_assert(uri_segment_ambiguous("..", 2));
	cr_assert(uri_segment_ambiguous("a/b", 3));
	cr_assert(uri_segment_ambiguous("a\\b", 3));
	cr_assert_not(uri_segment_ambiguous("...", 3));
	cr_assert_not(uri_segment_ambiguous("alice.", 6));
	cr_assert_not(uri_segment_ambiguous("", 0));
}

/* JSON from outside is parsed with its nesting bounded before jansson recurses over it. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "jsonutil.h"

static char *nested(int depth, const char *open, const char *inner, const char *close)
{
	size_t lo = strlen(open), li = strlen(inner), lc = strlen(close);
	char *s = malloc((size_t)depth * (lo + lc) + li + 1);
	cr_assert_not_null(s);
	char *at = s;
	for (int i = 0; i < depth; i++, at += lo)
		memcpy(at, open, lo);
	memcpy(at, inner, li);
	at += li;
	for (int i = 0; i < depth; i++, at += lc)
		memcpy(at, close, lc);
	*at = '\0';
	return s;
}

Test(json_depth, counts_arrays_and_objects)
{
	char *a32 = nested(32, "[", "1", "]"), *a33 = nested(33, "[", "1", "]");
	char *o32 = nested(32, "{\"k\":", "1", "}"), *o33 = nested(33, "{\"k\":", "1", "}");
	cr_assert(json_depth_within(a32, strlen(a32), 32));
	cr_assert_not(json_depth_within(a33, strlen(a33), 32));
	cr_assert(json_depth_within(o32, strlen(o32), 32));
	cr_assert_not(json_depth_within(o33, strlen(o33), 32));
	cr_assert(json_depth_within("1", 1, 0));
	cr_assert_not(json_depth_within("[]", 2, 0));
	free(a32);
	free(a33);
	free(o32);
	free(o33);
}

Test(json_depth, brackets_inside_strings_do_not_count)
{
	static const char *const ok[] = {
		"[\"[[[[[[[[\"]",
		"{\"a\":\"\\\\\",\"b\":\"[[[\"}", /* an escaped backslash ends before the quote */
		"[\"\\\"[[[[\"]",                 /* an escaped quote does not end the string */
	};
	for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
		cr_assert(json_depth_within(ok[i], strlen(ok[i]), 1), "%s", ok[i]);
	/* an unterminated string hides the rest: the parser refuses it, nothing recurses */
	cr_assert(json_depth_within("[\"[[[[", 6, 1));
}

Test(json_depth, closing_brackets_never_lower_the_bound)
{
	/* "]]]]" first cannot buy room for more "[" later */
	const char *s = "]]]][[";
	cr_assert_not(json_depth_within(s, strlen(s), 1));
}

Test(json_load_bounded, says_why)
{
	enum json_load_result r;
	json_t *j = json_load_bounded("{\"a\":[1]}", 9, &r);
	cr_assert_not_null(j);
	cr_assert_eq(r, JSON_LOAD_OK);
	json_decref(j);

	char *deep = nested(900, "[", "", "]");
	cr_assert_null(json_load_bounded(deep, strlen(deep), &r));
	cr_assert_eq(r, JSON_LOAD_TOO_DEEP);
	free(deep);

	cr_assert_null(json_load_bounded("{\"a\":1,\"a\":2}", 13, &r));
	cr_assert_eq(r, JSON_LOAD_INVALID, "duplicate keys are refused");
	cr_assert_null(json_load_bounded("[1,", 3, &r));
	cr_assert_eq(r, JSON_LOAD_INVALID);
}

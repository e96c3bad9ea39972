/* Unit tests of erasure's pure parts: the pseudonym against a vector computed apart (Python's
 * hmac module), and the JSON rewrite: exact strings only, a person's name and metadata with
 * their id, nothing else. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "erasure.h"

#define SECRET "devsecret-0123456789abcdef"

static void pseudonym_of(const char *user, char out[ERASURE_PSEUDONYM_LEN + 1])
{
	cr_assert_eq(erasure_pseudonym((const unsigned char *)SECRET, strlen(SECRET), user, out),
		     ERR_OK);
}

/* python3 -c "import hmac,hashlib; print(hmac.new(b'devsecret-0123456789abcdef',
 * b'erase:alice', hashlib.sha256).hexdigest()[:16])" */
Test(erasure, pseudonym_vector)
{
	char p[ERASURE_PSEUDONYM_LEN + 1];
	pseudonym_of("alice", p);
	cr_assert_str_eq(p, "erased:55f2bc5a2d672467");
	cr_assert_eq(strlen(p), ERASURE_PSEUDONYM_LEN);
}

Test(erasure, pseudonym_depends_on_user_and_secret)
{
	char a[ERASURE_PSEUDONYM_LEN + 1], b[ERASURE_PSEUDONYM_LEN + 1];
	pseudonym_of("alice", a);
	pseudonym_of("alicf", b);
	cr_assert_str_neq(a, b);
	cr_assert_eq(erasure_pseudonym((const unsigned char *)"other", 5, "alice", b), ERR_OK);
	cr_assert_str_neq(a, b);
}

static char *rewritten(const char *text)
{
	char *out = NULL;
	cr_assert_eq(erasure_rewrite_json(text, "a", "erased:x", &out), ERR_OK);
	return out;
}

Test(erasure, exact_strings_only)
{
	char *out = rewritten("{\"caller\":\"a\",\"chat_id\":\"ab\",\"members\":[{\"user\":\"a\","
			      "\"name\":\"Ann\"},{\"user\":\"ba\",\"name\":\"a\"}],\"list\":[\"a\","
			      "\"aa\",1]}");
	cr_assert_str_eq(out, "{\"caller\":\"erased:x\",\"chat_id\":\"ab\",\"members\":[{\"user\":"
			      "\"erased:x\",\"name\":\"erased:x\"},{\"user\":\"ba\",\"name\":"
			      "\"erased:x\"}],\"list\":[\"erased:x\",\"aa\",1]}");
	free(out);
}

Test(erasure, participant_name_and_metadata)
{
	char *out = rewritten("{\"participant\":{\"identity\":\"a\",\"name\":\"Ann\",\"metadata\":"
			      "\"{\\\"uid\\\":\\\"a\\\"}\",\"attributes\":{}},\"room\":{\"name\":"
			      "\"call_1\",\"metadata\":\"\"}}");
	cr_assert_str_eq(out, "{\"participant\":{\"identity\":\"erased:x\",\"name\":\"erased:x\","
			      "\"metadata\":\"erased:x\",\"attributes\":{}},\"room\":{\"name\":"
			      "\"call_1\",\"metadata\":\"\"}}");
	free(out);
}

Test(erasure, nothing_to_change)
{
	cr_assert_null(rewritten("{\"user\":\"b\",\"name\":\"a b\",\"metadata\":\"ab\"}"));
	cr_assert_null(rewritten("not json: a"));
	cr_assert_null(rewritten("{\"user\":\"erased:x\",\"name\":\"erased:x\"}"));
}

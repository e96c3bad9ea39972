/* Unit tests of erasure's pure parts: the pseudonym against a vector computed apart (Python's
 * hmac module), and the JSON rewrite: the id where a key says it is one, a person's name,
 * metadata and attributes with their id, any exact string in a call's free-form metadata,
 * nothing else. */
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

/* The id is found by key: the same text as a chat id, a kind, a status or another person's
 * display name is someone else's data and stays. */
Test(erasure, the_user_is_found_by_key)
{
	char *out = rewritten("{\"caller\":\"a\",\"kind\":\"a\",\"chat_id\":\"a\",\"members\":["
			      "{\"user\":\"a\",\"name\":\"Ann\",\"invite\":\"a\"},{\"user\":"
			      "\"ba\",\"name\":\"a\"}],\"list\":[\"a\",\"aa\",1]}");
	cr_assert_str_eq(out, "{\"caller\":\"erased:x\",\"kind\":\"a\",\"chat_id\":\"a\","
			      "\"members\":[{\"user\":\"erased:x\",\"name\":\"erased:x\","
			      "\"invite\":\"a\"},{\"user\":\"ba\",\"name\":\"a\"}],\"list\":"
			      "[\"a\",\"aa\",1]}");
	free(out);
}

Test(erasure, participant_name_metadata_and_attributes)
{
	char *out = rewritten("{\"participant\":{\"identity\":\"a\",\"name\":\"Ann\",\"metadata\":"
			      "\"{\\\"uid\\\":\\\"a\\\"}\",\"attributes\":{\"display\":\"Ann Q.\"}},"
			      "\"room\":{\"name\":\"a\",\"metadata\":\"a\"}}");
	cr_assert_str_eq(out, "{\"participant\":{\"identity\":\"erased:x\",\"name\":\"erased:x\","
			      "\"metadata\":\"erased:x\",\"attributes\":{}},\"room\":{\"name\":"
			      "\"a\",\"metadata\":\"a\"}}");
	free(out);
}

/* A call's own metadata is the chat app's free-form JSON: any string in it may be the id. */
Test(erasure, a_calls_metadata_is_free_form)
{
	char *out = rewritten("{\"caller\":\"b\",\"metadata\":{\"by\":\"a\",\"tags\":[\"a\","
			      "\"x\"]}}");
	cr_assert_str_eq(out, "{\"caller\":\"b\",\"metadata\":{\"by\":\"erased:x\",\"tags\":"
			      "[\"erased:x\",\"x\"]}}");
	free(out);
	out = NULL;
	cr_assert_eq(erasure_rewrite_metadata("{\"by\":{\"kind\":\"a\"}}", "a", "erased:x", &out),
		     ERR_OK);
	cr_assert_str_eq(out, "{\"by\":{\"kind\":\"erased:x\"}}");
	free(out);
}

Test(erasure, nothing_to_change)
{
	cr_assert_null(rewritten("{\"user\":\"b\",\"name\":\"a b\",\"metadata\":\"ab\"}"));
	cr_assert_null(rewritten("[\"a\",{\"status\":\"a\"}]"));
	cr_assert_null(rewritten("not json: a"));
	cr_assert_null(rewritten("{\"user\":\"erased:x\",\"name\":\"erased:x\"}"));
}

/* Unit tests of LiveKit token minting: every token is decoded independently, by libjwt with
 * the secret and by jansson from its base64url parts, and its header and claims are checked
 * key for key; the signature is recomputed with OpenSSL's one-shot HMAC(). */
#include <criterion/criterion.h>
#include <jansson.h>
#include <jwt.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "tokens.h"

#define KEY "APIdevkey"
#define SECRET "devsecret-0123456789abcdef0123456789"
#define ROOM "call_0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"
#define NOW INT64_C(1767225600)

static struct token_signer signer;

static void setup(void)
{
	cr_assert_eq(tokens_signer_init(&signer, KEY, SECRET), ERR_OK);
}

static void teardown(void)
{
	tokens_signer_finish(&signer);
}

TestSuite(tokens, .init = setup, .fini = teardown);

static struct token_request request(const char *identity, const char *name, enum call_kind kind)
{
	return (struct token_request){
		.identity = identity, .name = name, .room = ROOM, .kind = kind, .now_s = NOW,
		.ttl_s = 600};
}

static void mint(const struct token_signer *ts, const struct token_request *req,
		 char out[TOKEN_MAX])
{
	size_t len = 0;
	cr_assert_eq(tokens_mint(ts, req, out, &len), ERR_OK);
	cr_assert_eq(len, strlen(out));
}

/* Decodes one base64url segment (no padding) of a JWT into a NUL-terminated buffer. */
static char *segment(const char *token, int index, size_t *ret_len)
{
	const char *start = token;
	for (int i = 0; i < index; i++)
		start = strchr(start, '.') + 1;
	const char *end = strchr(start, '.');
	size_t n = end ? (size_t)(end - start) : strlen(start);
	char *b64 = malloc(n + 4);
	size_t m = 0;
	for (size_t i = 0; i < n; i++) {
		char c = start[i];
		cr_assert(c != '=' && c != '+' && c != '/', "not base64url without padding: %c", c);
		b64[m++] = (char)(c == '-' ? '+' : c == '_' ? '/' : c);
	}
	size_t pad = (4 - m % 4) % 4;
	for (size_t i = 0; i < pad; i++)
		b64[m++] = '=';
	unsigned char *out = malloc(m / 4 * 3 + 1);
	int len = EVP_DecodeBlock(out, (unsigned char *)b64, (int)m);
	cr_assert_geq(len, 0);
	free(b64);
	len -= (int)pad;
	out[len] = '\0';
	if (ret_len)
		*ret_len = (size_t)len;
	return (char *)out;
}

static json_t *json_segment(const char *token, int index)
{
	char *text = segment(token, index, NULL);
	json_error_t err;
	json_t *j = json_loads(text, JSON_REJECT_DUPLICATES, &err);
	cr_assert_not_null(j, "%s: %s", err.text, text);
	free(text);
	return j;
}

static const char *str(json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);
	cr_assert(json_is_string(v), "%s is not a string", key);
	return json_string_value(v);
}

static void assert_true(json_t *obj, const char *key)
{
	cr_assert(json_is_true(json_object_get(obj, key)), "%s is not true", key);
}

static void assert_sources(json_t *video, enum call_kind kind)
{
	static const char *const audio[] = {"microphone"};
	static const char *const video_sources[] = {"camera", "microphone", "screen_share",
						    "screen_share_audio"};
	const char *const *want = kind == CALL_AUDIO ? audio : video_sources;
	size_t n = kind == CALL_AUDIO ? 1 : 4;
	json_t *s = json_object_get(video, "canPublishSources");
	cr_assert(json_is_array(s));
	cr_assert_eq(json_array_size(s), n);
	for (size_t i = 0; i < n; i++)
		cr_assert_str_eq(json_string_value(json_array_get(s, i)), want[i]);
}

/* Checks the whole token with jansson: the exact header, the exact key sets. */
static void assert_claims(const char *token, const char *sub, const char *name,
			  enum call_kind kind, int ttl)
{
	json_t *h = json_segment(token, 0);
	cr_assert_eq(json_object_size(h), 2);
	cr_assert_str_eq(str(h, "alg"), "HS256");
	cr_assert_str_eq(str(h, "typ"), "JWT");
	json_decref(h);

	json_t *p = json_segment(token, 1);
	cr_assert_eq(json_object_size(p), 7, "iss sub name nbf exp jti video");
	cr_assert_str_eq(str(p, "iss"), KEY);
	cr_assert_str_eq(str(p, "sub"), sub);
	cr_assert_str_eq(str(p, "name"), name);
	cr_assert(json_is_integer(json_object_get(p, "nbf")));
	cr_assert(json_is_integer(json_object_get(p, "exp")));
	json_int_t nbf = json_integer_value(json_object_get(p, "nbf"));
	cr_assert_eq(nbf, NOW);
	cr_assert_eq(json_integer_value(json_object_get(p, "exp")) - nbf, ttl);
	const char *jti = str(p, "jti");
	cr_assert_eq(strlen(jti), 22, "16 bytes in base64url: %s", jti);
	static const char b64url[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	cr_assert_eq(strspn(jti, b64url), 22);

	json_t *v = json_object_get(p, "video");
	cr_assert(json_is_object(v));
	cr_assert_eq(json_object_size(v), 6, "the grant has exactly its six keys");
	assert_true(v, "roomJoin");
	cr_assert_str_eq(str(v, "room"), ROOM);
	assert_true(v, "canPublish");
	assert_true(v, "canSubscribe");
	assert_true(v, "canPublishData");
	assert_sources(v, kind);
	json_decref(p);
}

/* Verifies the signature with libjwt and reads the claims back through it. */
static void assert_libjwt(const char *token, const char *sub, const char *name)
{
	jwt_t *jwt = NULL;
	cr_assert_eq(jwt_decode(&jwt, token, (const unsigned char *)SECRET, strlen(SECRET)), 0);
	cr_assert_eq(jwt_get_alg(jwt), JWT_ALG_HS256);
	cr_assert_str_eq(jwt_get_header(jwt, "typ"), "JWT");
	cr_assert_str_eq(jwt_get_grant(jwt, "iss"), KEY);
	cr_assert_str_eq(jwt_get_grant(jwt, "sub"), sub);
	cr_assert_str_eq(jwt_get_grant(jwt, "name"), name);
	cr_assert_eq(jwt_get_grant_int(jwt, "nbf"), NOW);
	char *video = jwt_get_grants_json(jwt, "video");
	cr_assert_not_null(video);
	json_t *v = json_loads(video, 0, NULL);
	cr_assert_str_eq(str(v, "room"), ROOM);
	json_decref(v);
	free(video);
	jwt_free(jwt);
}

Test(tokens, audio_token_claims)
{
	char t[TOKEN_MAX];
	struct token_request r = request("user-42", "Alice", CALL_AUDIO);
	mint(&signer, &r, t);
	cr_assert_eq(strncmp(t, "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.", 37), 0);
	assert_claims(t, "user-42", "Alice", CALL_AUDIO, 600);
	assert_libjwt(t, "user-42", "Alice");
}

Test(tokens, video_token_claims)
{
	char t[TOKEN_MAX];
	struct token_request r = request("user-42", "Alice", CALL_VIDEO);
	r.ttl_s = 3600;
	mint(&signer, &r, t);
	assert_claims(t, "user-42", "Alice", CALL_VIDEO, 3600);
	assert_libjwt(t, "user-42", "Alice");
}

Test(tokens, name_falls_back_to_identity)
{
	char t[TOKEN_MAX];
	struct token_request r = request("user-7", NULL, CALL_AUDIO);
	mint(&signer, &r, t);
	assert_claims(t, "user-7", "user-7", CALL_AUDIO, 600);
	r.name = "";
	mint(&signer, &r, t);
	assert_claims(t, "user-7", "user-7", CALL_AUDIO, 600);
}

Test(tokens, escapes_identity_and_name)
{
	static const char *const names[] = {
		"say \"hi\" \\ bye", "Zoë 😀 日本", "tab\tnew\nline\x01\x1f end", "</script>"};
	char t[TOKEN_MAX];
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		struct token_request r = request(names[(i + 1) % 4], names[i], CALL_VIDEO);
		mint(&signer, &r, t);
		assert_claims(t, names[(i + 1) % 4], names[i], CALL_VIDEO, 600);
		assert_libjwt(t, names[(i + 1) % 4], names[i]);
	}
}

Test(tokens, signature_matches_one_shot_hmac)
{
	char t[TOKEN_MAX];
	struct token_request r = request("user-42", "Alice", CALL_VIDEO);
	mint(&signer, &r, t);
	const char *dot = strrchr(t, '.');
	unsigned char mac[32];
	unsigned int mac_len = 0;
	HMAC(EVP_sha256(), SECRET, (int)strlen(SECRET), (const unsigned char *)t,
	     (size_t)(dot - t), mac, &mac_len);
	size_t sig_len;
	char *sig = segment(t, 2, &sig_len);
	cr_assert_eq(sig_len, 32);
	cr_assert_eq(memcmp(sig, mac, 32), 0);
	free(sig);
}

Test(tokens, long_secret_is_hashed_first)
{
	char secret[200];
	memset(secret, 'k', sizeof secret - 1);
	secret[sizeof secret - 1] = '\0';
	struct token_signer ts;
	cr_assert_eq(tokens_signer_init(&ts, KEY, secret), ERR_OK);
	char t[TOKEN_MAX];
	struct token_request r = request("user-42", "Alice", CALL_AUDIO);
	mint(&ts, &r, t);
	jwt_t *jwt = NULL;
	cr_assert_eq(jwt_decode(&jwt, t, (const unsigned char *)secret, strlen(secret)), 0);
	jwt_free(jwt);
	tokens_signer_finish(&ts);
}

Test(tokens, wrong_secret_fails_verification)
{
	char t[TOKEN_MAX];
	struct token_request r = request("user-42", "Alice", CALL_AUDIO);
	mint(&signer, &r, t);
	jwt_t *jwt = NULL;
	const char *wrong = "devsecret-0123456789abcdef012345678X";
	cr_assert_neq(jwt_decode(&jwt, t, (const unsigned char *)wrong, strlen(wrong)), 0);
	cr_assert_null(jwt);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

Test(tokens, jti_unique_across_10k_tokens)
{
	enum { N = 10000 };
	char **jtis = calloc(N, sizeof *jtis);
	char t[TOKEN_MAX];
	struct token_request r = request("user-42", "Alice", CALL_AUDIO);
	for (int i = 0; i < N; i++) {
		mint(&signer, &r, t);
		json_t *p = json_segment(t, 1);
		jtis[i] = strdup(str(p, "jti"));
		json_decref(p);
	}
	qsort(jtis, N, sizeof *jtis, cmp_str);
	for (int i = 1; i < N; i++)
		cr_assert_neq(strcmp(jtis[i - 1], jtis[i]), 0, "duplicate jti %s", jtis[i]);
	for (int i = 0; i < N; i++)
		free(jtis[i]);
	free(jtis);
}

/* The largest inputs the API allows: 128-byte ids and 256-byte names, all control bytes,
 * which escape to six bytes each. */
Test(tokens, longest_inputs_fit)
{
	char id[129], name[257], t[TOKEN_MAX];
	memset(id, '\x01', sizeof id - 1);
	id[128] = '\0';
	memset(name, '\x02', sizeof name - 1);
	name[256] = '\0';
	struct token_request r = request(id, name, CALL_VIDEO);
	mint(&signer, &r, t);
	assert_claims(t, id, name, CALL_VIDEO, 600);
	assert_libjwt(t, id, name);
}

Test(tokens, rejects_what_cannot_be_a_token)
{
	char t[TOKEN_MAX], name[4000];
	size_t len = 0;
	memset(name, 'n', sizeof name - 1);
	name[sizeof name - 1] = '\0';
	struct token_request r = request("user-42", name, CALL_AUDIO);
	cr_assert_eq(tokens_mint(&signer, &r, t, &len), ERR_INVALID);
	r = request("", "Alice", CALL_AUDIO);
	cr_assert_eq(tokens_mint(&signer, &r, t, &len), ERR_INVALID);
	r = request("user-42", "Alice", CALL_AUDIO);
	r.room = "";
	cr_assert_eq(tokens_mint(&signer, &r, t, &len), ERR_INVALID);
}

Test(tokens, signer_init_validates_and_finish_accepts_zeroed)
{
	struct token_signer ts = {0};
	cr_assert_eq(tokens_signer_init(&ts, KEY, ""), ERR_INVALID);
	cr_assert_eq(tokens_signer_init(&ts, "", SECRET), ERR_INVALID);
	cr_assert_null(ts.api_key);
	tokens_signer_finish(&ts);
	cr_assert_eq(tokens_signer_init(&ts, "key\"with\\quotes", SECRET), ERR_OK);
	cr_assert_str_eq(ts.api_key_json, "\"key\\\"with\\\\quotes\"");
	cr_assert_eq(ts.secret_len, strlen(SECRET));
	tokens_signer_finish(&ts);
	tokens_signer_finish(&ts);
}

static void *mint_many(void *arg)
{
	(void)arg;
	char t[TOKEN_MAX];
	struct token_request r = request("user-42", "Alice", CALL_VIDEO);
	for (int i = 0; i < 2000; i++) {
		size_t len;
		if (tokens_mint(&signer, &r, t, &len) != ERR_OK)
			return "mint failed";
		jwt_t *jwt = NULL;
		if (jwt_decode(&jwt, t, (const unsigned char *)SECRET, strlen(SECRET)) != 0)
			return "bad signature";
		jwt_free(jwt);
	}
	return NULL;
}

Test(tokens, one_signer_shared_by_threads)
{
	pthread_t th[4];
	for (int i = 0; i < 4; i++)
		cr_assert_eq(pthread_create(&th[i], NULL, mint_many, NULL), 0);
	for (int i = 0; i < 4; i++) {
		void *res;
		pthread_join(th[i], &res);
		cr_assert_null(res, "%s", (const char *)res);
	}
}

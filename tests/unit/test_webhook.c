/* Unit tests of webhooks/: LIVEKIT.md §2's test vectors and every forgery we could think of for
 * webhook_verify (tokens built by a small OpenSSL signer below, time passed in explicitly), and
 * §3's example bodies and their protojson variants for webhook_event_parse. */
#include <criterion/criterion.h>

#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "webhook.h"

/* ---- Vectors from LIVEKIT.md §2 -------------------------------------------------------- */

#define DEV_KEY "APIdevkey"
#define DEV_SECRET "devsecret-0123456789abcdef0123456789"
#define OLD_KEY "APIoldkey"
#define OLD_SECRET "oldsecret-abcdefabcdefabcdefabcdef12"
#define T_NBF 1767227433LL
#define T_EXP 1767227733LL
#define NOW (T_NBF + 10)

/* (a) a real Go body, spaces after commas, and its digest */
static const char go_body[] =
	"{\"event\":\"room_started\", \"room\":{\"sid\":\"RM_TkVjUvAqgzKz\", \"name\":\"mytestroom\", "
	"\"emptyTimeout\":300, \"creationTime\":\"1628545903\", "
	"\"turnPassword\":\"ICkSr2rEeslkN6e9bXL4Ji5zzMD5Z7zzr6ulOaxMj6N\", "
	"\"enabledCodecs\":[{\"mime\":\"audio/opus\"}, {\"mime\":\"video/VP8\"}]}}";
#define GO_BODY_SHA256 "CoEQz1chqJ9bnZRcORddjplkvpjmPujmLTR42DbefYI="

/* (b) §3's room_finished example, and the token LiveKit would send with it */
static const char room_finished[] =
	"{\"event\":\"room_finished\",\"room\":{\"sid\":\"RM_tQ8xVvZ3kT9a\",\"name\":\"call-7f3a\","
	"\"emptyTimeout\":300,\"departureTimeout\":20,\"creationTime\":\"1767225600\","
	"\"creationTimeMs\":\"1767225600123\",\"enabledCodecs\":[{\"mime\":\"audio/opus\"},"
	"{\"mime\":\"video/VP8\"}],\"version\":{\"unixMicro\":\"1767227433001207\",\"ticks\":5}},"
	"\"id\":\"EV_St9wgVG8SGcu\",\"createdAt\":\"1767227433\"}";
#define ROOM_FINISHED_SHA256 "xkkxQgDO+GkzqepyAN8k9E53jMOQDO7V012xLYwkJCE="
static const char vector_token[] =
	"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
	"eyJpc3MiOiJBUElkZXZrZXkiLCJleHAiOjE3NjcyMjc3MzMsIm5iZiI6MTc2NzIyNzQzMywiaWF0IjoxNzY3MjI3ND"
	"MzLCJzaGEyNTYiOiJ4a2t4UWdETytHa3pxZXB5QU44azlFNTNqTU9RRE83VjAxMnhMWXdrSkNFPSJ9."
	"5Ua-8CZnLKJn8EXxfxH-6EOsPR0__-uUuetSxl6xGa4";

/* ---- A small signer for forged tokens -------------------------------------------------- */

#define TOK_CAP 16384
#define HS256 "{\"alg\":\"HS256\",\"typ\":\"JWT\"}"

static void b64url(const void *in, size_t n, char *out)
{
	int len = EVP_EncodeBlock((unsigned char *)out, in, (int)n);
	while (len > 0 && out[len - 1] == '=')
		len--;
	out[len] = '\0';
	for (char *p = out; *p; p++)
		*p = *p == '+' ? '-' : *p == '/' ? '_' : *p;
}

static void sha256_b64(const void *body, size_t len, char out[45])
{
	unsigned char d[32];
	cr_assert(EVP_Digest(body, len, d, NULL, EVP_sha256(), NULL));
	EVP_EncodeBlock((unsigned char *)out, d, 32);
}

/* header.payload.signature; md NULL leaves the signature empty (an "alg":"none" token). */
static void sign_md(char out[TOK_CAP], const char *header, const char *payload, const char *secret,
		    const EVP_MD *md)
{
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int mac_len = 0;
	size_t len;

	cr_assert(4 * (strlen(header) + strlen(payload)) / 3 + 200 < TOK_CAP);
	b64url(header, strlen(header), out);
	len = strlen(out);
	out[len++] = '.';
	b64url(payload, strlen(payload), out + len);
	len = strlen(out);
	if (md)
		cr_assert(HMAC(md, secret, (int)strlen(secret), (unsigned char *)out, len, mac,
			       &mac_len));
	out[len++] = '.';
	b64url(mac, mac_len, out + len);
}

static void sign(char out[TOK_CAP], const char *header, const char *payload, const char *secret)
{
	sign_md(out, header, payload, secret, EVP_sha256());
}

/* A token as LiveKit mints it for body, valid nbf..exp. */
static void livekit_token(char out[TOK_CAP], const char *iss, const char *secret, long long nbf,
			  long long exp, const char *body)
{
	char sha[45], payload[512];
	sha256_b64(body, strlen(body), sha);
	snprintf(payload, sizeof payload,
		 "{\"iss\":\"%s\",\"exp\":%lld,\"nbf\":%lld,\"iat\":%lld,\"sha256\":\"%s\"}", iss,
		 exp, nbf, nbf, sha);
	sign(out, HS256, payload, secret);
}

/* ---- Verification ---------------------------------------------------------------------- */

static struct config cfg;
static struct webhook_keys keys;

static void keys_setup(void)
{
	cfg = (struct config){0};
	cfg.api_key = (struct api_key){DEV_KEY, DEV_SECRET};
	cfg.extra_keys[0] = (struct api_key){"APIempty", ""}; /* skipped: no secret */
	cfg.extra_keys[1] = (struct api_key){OLD_KEY, OLD_SECRET};
	cfg.n_extra_keys = 2;
	cr_assert_eq(webhook_keys_init(&keys, &cfg), ERR_OK);
	cr_assert_eq(keys.n, 2);
}

TestSuite(verify, .init = keys_setup);

static enum err verify_at(const char *auth, const char *body, long long now)
{
	const char *why = NULL;
	enum err e = webhook_verify(&keys, auth, body, body ? strlen(body) : 0, now, NULL, &why);
	if (e != ERR_OK)
		cr_assert(why && why[0], "a failure always says why");
	return e;
}

static void assert_refused(const char *auth, const char *body, long long now)
{
	cr_assert_eq(verify_at(auth, body, now), ERR_UNAUTHENTICATED);
}

Test(verify, vector_b_room_finished)
{
	const char *key_id = NULL, *why = NULL;
	char sha[45];

	cr_assert_eq(strlen(room_finished), 341); /* LIVEKIT.md says 342; the digest settles it */
	sha256_b64(room_finished, strlen(room_finished), sha);
	cr_assert_str_eq(sha, ROOM_FINISHED_SHA256);
	cr_assert_eq(webhook_verify(&keys, vector_token, room_finished, strlen(room_finished), NOW,
				    &key_id, &why),
		     ERR_OK, "%s", why);
	cr_assert_str_eq(key_id, DEV_KEY);
}

Test(verify, vector_a_go_body_with_its_published_digest)
{
	char tok[TOK_CAP];
	char payload[512];

	snprintf(payload, sizeof payload,
		 "{\"iss\":\"" DEV_KEY "\",\"exp\":%lld,\"nbf\":%lld,\"sha256\":\"" GO_BODY_SHA256
		 "\"}",
		 T_EXP, T_NBF);
	sign(tok, HS256, payload, DEV_SECRET);
	cr_assert_eq(verify_at(tok, go_body, NOW), ERR_OK);
	assert_refused(tok, room_finished, NOW);
}

Test(verify, leeway_on_exp)
{
	cr_assert_eq(verify_at(vector_token, room_finished, T_EXP), ERR_OK);
	cr_assert_eq(verify_at(vector_token, room_finished, T_EXP + 59), ERR_OK);
	cr_assert_eq(verify_at(vector_token, room_finished, T_EXP + 60), ERR_OK);
	assert_refused(vector_token, room_finished, T_EXP + 61);
	assert_refused(vector_token, room_finished, T_EXP + 100000);
}

Test(verify, leeway_on_nbf)
{
	cr_assert_eq(verify_at(vector_token, room_finished, T_NBF), ERR_OK);
	cr_assert_eq(verify_at(vector_token, room_finished, T_NBF - 59), ERR_OK);
	cr_assert_eq(verify_at(vector_token, room_finished, T_NBF - 60), ERR_OK);
	assert_refused(vector_token, room_finished, T_NBF - 61);
}

Test(verify, header_without_typ)
{
	char tok[TOK_CAP], sha[45], payload[256];

	sha256_b64(room_finished, strlen(room_finished), sha);
	snprintf(payload, sizeof payload, "{\"iss\":\"" DEV_KEY "\",\"exp\":%lld,\"sha256\":\"%s\"}",
		 T_EXP, sha);
	sign(tok, "{\"alg\":\"HS256\"}", payload, DEV_SECRET);
	cr_assert_eq(verify_at(tok, room_finished, NOW), ERR_OK);
}

Test(verify, bearer_prefix_is_tolerated)
{
	char auth[TOK_CAP];

	snprintf(auth, sizeof auth, "Bearer %s", vector_token);
	cr_assert_eq(verify_at(auth, room_finished, NOW), ERR_OK);
	snprintf(auth, sizeof auth, "bearer  %s", vector_token);
	cr_assert_eq(verify_at(auth, room_finished, NOW), ERR_OK);
	snprintf(auth, sizeof auth, "Basic %s", vector_token);
	assert_refused(auth, room_finished, NOW);
	snprintf(auth, sizeof auth, "Bearer%s", vector_token);
	assert_refused(auth, room_finished, NOW);
	assert_refused("Bearer ", room_finished, NOW);
	assert_refused("Bearer", room_finished, NOW);
}

Test(verify, missing_or_empty_header)
{
	assert_refused(NULL, room_finished, NOW);
	assert_refused("", room_finished, NOW);
}

Test(verify, body_changed_after_signing)
{
	char body[sizeof room_finished];

	memcpy(body, room_finished, sizeof body);
	body[60] ^= 1;
	assert_refused(vector_token, body, NOW);
	/* one byte more or less, e.g. a proxy adding a newline or re-serialising */
	cr_assert_eq(webhook_verify(&keys, vector_token, room_finished, strlen(room_finished) - 1,
				    NOW, NULL, NULL),
		     ERR_UNAUTHENTICATED);
	assert_refused(vector_token, "", NOW);
	assert_refused(vector_token, NULL, NOW);
}

Test(verify, payload_changed_after_signing)
{
	char tok[TOK_CAP], forged[TOK_CAP], sha[45], payload[256], p64[512];

	/* Re-encode a payload with a later exp but keep the original signature. */
	livekit_token(tok, DEV_KEY, DEV_SECRET, T_NBF, T_EXP, room_finished);
	sha256_b64(room_finished, strlen(room_finished), sha);
	snprintf(payload, sizeof payload,
		 "{\"iss\":\"" DEV_KEY "\",\"exp\":%lld,\"nbf\":%lld,\"iat\":%lld,\"sha256\":\"%s\"}",
		 T_EXP + 86400, T_NBF, T_NBF, sha);
	b64url(payload, strlen(payload), p64);
	char *dot1 = strchr(tok, '.'), *dot2 = strchr(dot1 + 1, '.');
	snprintf(forged, sizeof forged, "%.*s.%s%s", (int)(dot1 - tok), tok, p64, dot2);
	cr_assert_eq(verify_at(tok, room_finished, NOW), ERR_OK);
	assert_refused(forged, room_finished, NOW);
	assert_refused(forged, room_finished, T_EXP + 3600);
}

Test(verify, wrong_secret)
{
	char tok[TOK_CAP];

	livekit_token(tok, DEV_KEY, "devsecret-0123456789abcdef012345678X", T_NBF, T_EXP,
		      room_finished);
	assert_refused(tok, room_finished, NOW);
	livekit_token(tok, DEV_KEY, OLD_SECRET, T_NBF, T_EXP, room_finished);
	assert_refused(tok, room_finished, NOW);
}

Test(verify, unknown_key)
{
	char tok[TOK_CAP], payload[256], sha[45];

	livekit_token(tok, "APIstranger", DEV_SECRET, T_NBF, T_EXP, room_finished);
	assert_refused(tok, room_finished, NOW);
	livekit_token(tok, "APIempty", "", T_NBF, T_EXP, room_finished);
	assert_refused(tok, room_finished, NOW);
	/* no iss at all, or not a string */
	sha256_b64(room_finished, strlen(room_finished), sha);
	snprintf(payload, sizeof payload, "{\"exp\":%lld,\"sha256\":\"%s\"}", T_EXP, sha);
	sign(tok, HS256, payload, DEV_SECRET);
	assert_refused(tok, room_finished, NOW);
	snprintf(payload, sizeof payload, "{\"iss\":7,\"exp\":%lld,\"sha256\":\"%s\"}", T_EXP, sha);
	sign(tok, HS256, payload, DEV_SECRET);
	assert_refused(tok, room_finished, NOW);
}

Test(verify, key_rotation)
{
	char tok[TOK_CAP];
	const char *key_id = NULL;

	livekit_token(tok, OLD_KEY, OLD_SECRET, T_NBF, T_EXP, room_finished);
	cr_assert_eq(webhook_verify(&keys, tok, room_finished, strlen(room_finished), NOW, &key_id,
				    NULL),
		     ERR_OK);
	cr_assert_str_eq(key_id, OLD_KEY);
}

Test(verify, same_key_id_with_two_secrets)
{
	char tok[TOK_CAP];

	cfg.extra_keys[0] = (struct api_key){DEV_KEY, OLD_SECRET};
	cr_assert_eq(webhook_keys_init(&keys, &cfg), ERR_OK);
	livekit_token(tok, DEV_KEY, OLD_SECRET, T_NBF, T_EXP, room_finished);
	cr_assert_eq(verify_at(tok, room_finished, NOW), ERR_OK);
	cr_assert_eq(verify_at(vector_token, room_finished, NOW), ERR_OK);
}

Test(verify, expired)
{
	char tok[TOK_CAP];

	livekit_token(tok, DEV_KEY, DEV_SECRET, NOW - 600, NOW - 300, room_finished);
	assert_refused(tok, room_finished, NOW);
	livekit_token(tok, DEV_KEY, DEV_SECRET, NOW - 360, NOW - 61, room_finished);
	assert_refused(tok, room_finished, NOW);
}

/* Signs a DEV_KEY token for room_finished whose exp and nbf are the given JSON texts (NULL:
 * the claim is left out). */
static void token_with_times(char out[TOK_CAP], const char *exp, const char *nbf)
{
	char sha[45], payload[256];
	size_t n;

	sha256_b64(room_finished, strlen(room_finished), sha);
	n = (size_t)snprintf(payload, sizeof payload, "{\"iss\":\"" DEV_KEY "\",\"sha256\":\"%s\"", sha);
	if (exp)
		n += (size_t)snprintf(payload + n, sizeof payload - n, ",\"exp\":%s", exp);
	if (nbf)
		n += (size_t)snprintf(payload + n, sizeof payload - n, ",\"nbf\":%s", nbf);
	snprintf(payload + n, sizeof payload - n, "}");
	sign(out, HS256, payload, DEV_SECRET);
}

Test(verify, times_missing_or_not_integers)
{
	static const char *const bad[][2] = {
		{NULL, "1767227433"},         {"\"1767227733\"", NULL}, {"1767227733.5", NULL},
		{"null", NULL},               {"true", NULL},           {"1767227733", "\"1\""},
		{"1767227733", "1767227433.0"}, {"1767227733", "null"},
	};
	char tok[TOK_CAP];

	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		token_with_times(tok, bad[i][0], bad[i][1]);
		assert_refused(tok, room_finished, NOW);
	}
	/* and exp alone, the minimum, verifies */
	token_with_times(tok, "1767227733", NULL);
	cr_assert_eq(verify_at(tok, room_finished, NOW), ERR_OK);
	/* far-future and far-past times neither overflow nor wrap */
	token_with_times(tok, "9223372036854775807", "-9223372036854775808");
	cr_assert_eq(verify_at(tok, room_finished, NOW), ERR_OK);
	token_with_times(tok, "-9223372036854775808", NULL);
	assert_refused(tok, room_finished, NOW);
}

Test(verify, alg_none_unsigned)
{
	char tok[TOK_CAP], sha[45], payload[256];

	sha256_b64(room_finished, strlen(room_finished), sha);
	snprintf(payload, sizeof payload,
		 "{\"iss\":\"" DEV_KEY "\",\"exp\":%lld,\"nbf\":%lld,\"sha256\":\"%s\"}", T_EXP,
		 T_NBF, sha);
	sign_md(tok, "{\"alg\":\"none\",\"typ\":\"JWT\"}", payload, NULL, NULL);
	assert_refused(tok, room_finished, NOW);
	/* even with a valid HMAC: the header must say HS256 */
	sign(tok, "{\"alg\":\"none\"}", payload, DEV_SECRET);
	assert_refused(tok, room_finished, NOW);
}

Test(verify, other_algs)
{
	static const char *const headers[] = {
		"{\"alg\":\"HS512\",\"typ\":\"JWT\"}", "{\"alg\":\"HS384\"}",
		"{\"alg\":\"RS256\",\"typ\":\"JWT\"}", "{\"alg\":\"ES256\"}",
		"{\"alg\":\"hs256\"}",                 "{\"typ\":\"JWT\"}",
		"{\"alg\":[\"HS256\"]}",               "[\"HS256\"]",
		"{\"alg\":\"HS256\",\"alg\":\"HS256\"}", "{\"alg\":\"HS256\",\"crit\":[\"exp\"]}",
		"not json",
	};
	char tok[TOK_CAP], sha[45], payload[256];

	sha256_b64(room_finished, strlen(room_finished), sha);
	snprintf(payload, sizeof payload,
		 "{\"iss\":\"" DEV_KEY "\",\"exp\":%lld,\"nbf\":%lld,\"sha256\":\"%s\"}", T_EXP,
		 T_NBF, sha);
	for (size_t i = 0; i < sizeof headers / sizeof headers[0]; i++) {
		/* signed with HMAC-SHA256 under the right secret: only the header is wrong */
		sign(tok, headers[i], payload, DEV_SECRET);
		assert_refused(tok, room_finished, NOW);
	}
	sign_md(tok, "{\"alg\":\"HS512\",\"typ\":\"JWT\"}", payload, DEV_SECRET, EVP_sha512());
	assert_refused(tok, room_finished, NOW);
}

Test(verify, sha256_claim_forms)
{
	char hex[65], sha[45], payload[512], tok[TOK_CAP];
	unsigned char d[32];

	cr_assert(EVP_Digest(room_finished, strlen(room_finished), d, NULL, EVP_sha256(), NULL));
	for (int i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", d[i]);
	sha256_b64(room_finished, strlen(room_finished), sha);

	const char *const claims[] = {
		NULL,                                           /* no sha256 */
		hex,                                            /* hex, not base64 */
		"xkkxQgDO-GkzqepyAN8k9E53jMOQDO7V012xLYwkJCE=", /* URL-safe alphabet */
		"xkkxQgDO+GkzqepyAN8k9E53jMOQDO7V012xLYwkJCE",  /* unpadded */
		"xkkxQgDO+GkzqepyAN8k9E53jMOQDO7V012xLYwkJCE=\\n", /* JSON "\n" */
		"",
		"CoEQz1chqJ9bnZRcORddjplkvpjmPujmLTR42DbefYI=", /* another body's */
	};
	for (size_t i = 0; i < sizeof claims / sizeof claims[0]; i++) {
		if (claims[i])
			snprintf(payload, sizeof payload,
				 "{\"iss\":\"" DEV_KEY "\",\"exp\":%lld,\"sha256\":\"%s\"}", T_EXP,
				 claims[i]);
		else
			snprintf(payload, sizeof payload, "{\"iss\":\"" DEV_KEY "\",\"exp\":%lld}",
				 T_EXP);
		sign(tok, HS256, payload, DEV_SECRET);
		assert_refused(tok, room_finished, NOW);
	}
	snprintf(payload, sizeof payload, "{\"iss\":\"" DEV_KEY "\",\"exp\":%lld,\"sha256\":32}",
		 T_EXP);
	sign(tok, HS256, payload, DEV_SECRET);
	assert_refused(tok, room_finished, NOW);
	/* and the genuine one, to show the forms above fail for their form alone */
	snprintf(payload, sizeof payload, "{\"iss\":\"" DEV_KEY "\",\"exp\":%lld,\"sha256\":\"%s\"}",
		 T_EXP, sha);
	sign(tok, HS256, payload, DEV_SECRET);
	cr_assert_eq(verify_at(tok, room_finished, NOW), ERR_OK);
}

Test(verify, empty_body_digest)
{
	char tok[TOK_CAP];

	livekit_token(tok, DEV_KEY, DEV_SECRET, T_NBF, T_EXP, "");
	cr_assert_eq(webhook_verify(&keys, tok, NULL, 0, NOW, NULL, NULL), ERR_OK);
	cr_assert_eq(verify_at(tok, "", NOW), ERR_OK);
}

Test(verify, duplicate_claims)
{
	char tok[TOK_CAP], sha[45], payload[512];

	sha256_b64(room_finished, strlen(room_finished), sha);
	snprintf(payload, sizeof payload,
		 "{\"iss\":\"APIstranger\",\"iss\":\"" DEV_KEY "\",\"exp\":%lld,\"sha256\":\"%s\"}",
		 T_EXP, sha);
	sign(tok, HS256, payload, DEV_SECRET);
	assert_refused(tok, room_finished, NOW);
	snprintf(payload, sizeof payload,
		 "{\"iss\":\"" DEV_KEY "\",\"exp\":%lld,\"exp\":%lld,\"sha256\":\"%s\"}", T_NBF,
		 T_EXP + 86400, sha);
	sign(tok, HS256, payload, DEV_SECRET);
	assert_refused(tok, room_finished, T_EXP + 3600);
}

Test(verify, garbage_tokens)
{
	char tok[TOK_CAP];
	const char *const garbage[] = {
		"garbage",
		"a.b",
		"..",
		"...",
		"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9..5Ua-8CZnLKJn8EXxfxH-6EOsPR0__-uUuetSxl6xGa4",
		" eyJhbGciOiJIUzI1NiJ9.e30.5Ua-8CZnLKJn8EXxfxH-6EOsPR0__-uUuetSxl6xGa4",
	};
	for (size_t i = 0; i < sizeof garbage / sizeof garbage[0]; i++)
		assert_refused(garbage[i], room_finished, NOW);

	/* four segments */
	snprintf(tok, sizeof tok, "%s.e30", vector_token);
	assert_refused(tok, room_finished, NOW);
	/* bad base64url: padding, the standard alphabet, a space, a bad length */
	snprintf(tok, sizeof tok, "%s=", vector_token);
	assert_refused(tok, room_finished, NOW);
	snprintf(tok, sizeof tok, "%s", vector_token);
	*strchr(tok, '-') = '+';
	assert_refused(tok, room_finished, NOW);
	snprintf(tok, sizeof tok, "%s", vector_token);
	tok[10] = ' ';
	assert_refused(tok, room_finished, NOW);
	snprintf(tok, sizeof tok, "%s", vector_token);
	*strchr(tok, '.') = '\0';
	snprintf(tok + strlen(tok), sizeof tok - strlen(tok), "A%s", strchr(vector_token, '.'));
	assert_refused(tok, room_finished, NOW);
	/* signature truncated or extended */
	snprintf(tok, sizeof tok, "%.*s", (int)strlen(vector_token) - 1, vector_token);
	assert_refused(tok, room_finished, NOW);
	snprintf(tok, sizeof tok, "%sAAAA", vector_token);
	assert_refused(tok, room_finished, NOW);
	/* payload not JSON, or JSON but not an object */
	sign(tok, HS256, "not json", DEV_SECRET);
	assert_refused(tok, room_finished, NOW);
	sign(tok, HS256, "[\"" DEV_KEY "\"]", DEV_SECRET);
	assert_refused(tok, room_finished, NOW);
	sign(tok, HS256, "{\"iss\":\"" DEV_KEY "\"} trailing", DEV_SECRET);
	assert_refused(tok, room_finished, NOW);
}

Test(verify, signature_spelling_must_be_canonical)
{
	char tok[TOK_CAP];
	static const char alphabet[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

	/* The last of 43 characters carries 4 bits of the MAC and 2 spare bits: setting a spare
	 * bit decodes to the same MAC but is a different token, which must not verify. */
	snprintf(tok, sizeof tok, "%s", vector_token);
	char *last = tok + strlen(tok) - 1;
	*last = alphabet[(strchr(alphabet, *last) - alphabet) ^ 1];
	assert_refused(tok, room_finished, NOW);
}

Test(verify, oversize_header)
{
	static char big[WEBHOOK_AUTH_MAX + 2];

	memset(big, 'A', sizeof big - 1);
	memcpy(big, vector_token, strlen(vector_token));
	assert_refused(big, room_finished, NOW);
	/* a valid token behind whitespace padding that pushes it past the bound */
	memset(big, ' ', sizeof big - 1);
	memcpy(big, "Bearer", 6);
	memcpy(big + sizeof big - 1 - strlen(vector_token), vector_token, strlen(vector_token));
	assert_refused(big, room_finished, NOW);
}

Test(verify, keys_init_needs_a_usable_key)
{
	struct config none = {0};
	struct webhook_keys k = {0};

	cr_assert_eq(webhook_keys_init(&k, &none), ERR_INVALID);
	none.api_key = (struct api_key){DEV_KEY, ""};
	cr_assert_eq(webhook_keys_init(&k, &none), ERR_INVALID);
	none.api_key = (struct api_key){"", DEV_SECRET};
	cr_assert_eq(webhook_keys_init(&k, &none), ERR_INVALID);
	none.extra_keys[0] = (struct api_key){OLD_KEY, OLD_SECRET};
	none.n_extra_keys = 1;
	cr_assert_eq(webhook_keys_init(&k, &none), ERR_OK);
	cr_assert_eq(k.n, 1);
	cr_assert_str_eq(k.keys[0].id, OLD_KEY);
}

/* ---- Parsing --------------------------------------------------------------------------- */

static const char room_started[] =
	"{\"event\":\"room_started\",\"room\":{\"sid\":\"RM_tQ8xVvZ3kT9a\",\"name\":\"call-7f3a\","
	"\"emptyTimeout\":300,\"departureTimeout\":20,\"creationTime\":\"1767225600\","
	"\"creationTimeMs\":\"1767225600123\",\"turnPassword\":\"k9xK71mcoNAfHi0rpOL8zm6pjCAXzTUK\","
	"\"enabledCodecs\":[{\"mime\":\"audio/opus\"},{\"mime\":\"video/VP8\"}],"
	"\"version\":{\"unixMicro\":\"1767225600123456\"}},\"id\":\"EV_3vTqJ8mWkP2x\","
	"\"createdAt\":\"1767225600\"}";
static const char participant_joined[] =
	"{\"event\":\"participant_joined\",\"room\":{\"sid\":\"RM_tQ8xVvZ3kT9a\",\"name\":\"call-7f3a\","
	"\"emptyTimeout\":300,\"departureTimeout\":20,\"creationTime\":\"1767225600\","
	"\"creationTimeMs\":\"1767225600123\",\"enabledCodecs\":[{\"mime\":\"audio/opus\"},"
	"{\"mime\":\"video/VP8\"}],\"numParticipants\":1,\"version\":{\"unixMicro\":"
	"\"1767225601502311\",\"ticks\":1}},\"participant\":{\"sid\":\"PA_Jx4bN8sQw2Lm\","
	"\"identity\":\"user-42\",\"state\":\"ACTIVE\",\"metadata\":\"{\\\"uid\\\":42}\","
	"\"joinedAt\":\"1767225601\",\"joinedAtMs\":\"1767225601456\",\"name\":\"Alice\","
	"\"version\":3,\"permission\":{\"canSubscribe\":true,\"canPublish\":true,"
	"\"canPublishData\":true,\"canPublishSources\":[\"CAMERA\",\"MICROPHONE\",\"SCREEN_SHARE\","
	"\"SCREEN_SHARE_AUDIO\"]},\"attributes\":{\"role\":\"host\"},\"clientProtocol\":1},"
	"\"id\":\"EV_kKc9DW235ytJ\",\"createdAt\":\"1767225601\"}";
static const char track_published[] =
	"{\"event\":\"track_published\",\"room\":{\"sid\":\"RM_tQ8xVvZ3kT9a\",\"name\":\"call-7f3a\"},"
	"\"participant\":{\"sid\":\"PA_Jx4bN8sQw2Lm\",\"identity\":\"user-42\"},\"track\":{\"sid\":"
	"\"TR_VCf2n6WpZr4s\",\"type\":\"VIDEO\",\"name\":\"screen\",\"width\":1920,\"height\":1080,"
	"\"source\":\"SCREEN_SHARE\",\"mimeType\":\"video/VP8\",\"mid\":\"2\",\"codecs\":[{"
	"\"mimeType\":\"video/VP8\",\"mid\":\"2\",\"cid\":\"4f1c2a9e-6d0b-4c51-9b7e-0a2d5e8f3c11\","
	"\"layers\":[{\"quality\":\"HIGH\",\"width\":1920,\"height\":1080,\"bitrate\":2500000}]}],"
	"\"stream\":\"screen\",\"version\":{\"unixMicro\":\"1767225720411092\"}},"
	"\"id\":\"EV_Yb7QmR2nX9pL\",\"createdAt\":\"1767225720\"}";
static const char participant_left[] =
	"{\"event\":\"participant_left\",\"room\":{\"sid\":\"RM_tQ8xVvZ3kT9a\",\"name\":\"call-7f3a\","
	"\"emptyTimeout\":300,\"departureTimeout\":20,\"creationTime\":\"1767225600\","
	"\"creationTimeMs\":\"1767225600123\",\"enabledCodecs\":[{\"mime\":\"audio/opus\"},"
	"{\"mime\":\"video/VP8\"}],\"version\":{\"unixMicro\":\"1767227412880310\",\"ticks\":4}},"
	"\"participant\":{\"sid\":\"PA_Jx4bN8sQw2Lm\",\"identity\":\"user-42\",\"state\":"
	"\"DISCONNECTED\",\"metadata\":\"{\\\"uid\\\":42}\",\"joinedAt\":\"1767225601\","
	"\"joinedAtMs\":\"1767225601456\",\"name\":\"Alice\",\"version\":11,\"permission\":{"
	"\"canSubscribe\":true,\"canPublish\":true,\"canPublishData\":true},\"isPublisher\":true,"
	"\"attributes\":{\"role\":\"host\"},\"disconnectReason\":\"CLIENT_INITIATED\"},"
	"\"id\":\"EV_zWtQEAJwGNk2\",\"createdAt\":\"1767227412\"}";

static struct webhook_event parse_ok(const char *body)
{
	struct webhook_event ev;

	memset(&ev, 0xA5, sizeof ev);
	cr_assert_eq(webhook_event_parse(body, strlen(body), &ev), ERR_OK, "%s", body);
	return ev;
}

static void assert_invalid(const char *body)
{
	struct webhook_event ev;

	memset(&ev, 0xA5, sizeof ev);
	cr_assert_eq(webhook_event_parse(body, strlen(body), &ev), ERR_INVALID, "%s", body);
	cr_assert_eq(((unsigned char *)&ev)[0], 0xA5, "untouched on failure");
}

static void assert_no_participant(const struct webhook_participant *p)
{
	static const struct webhook_participant zero;
	cr_assert(memcmp(p, &zero, sizeof zero) == 0);
}

Test(parse, example_room_started)
{
	struct webhook_event ev = parse_ok(room_started);

	cr_assert_eq(ev.kind, WEBHOOK_ROOM_STARTED);
	cr_assert_str_eq(ev.name, "room_started");
	cr_assert_str_eq(ev.id, "EV_3vTqJ8mWkP2x");
	cr_assert_eq(ev.created_at, 1767225600);
	cr_assert_eq(ev.num_dropped, 0);
	cr_assert_str_eq(ev.room_end_reason, "");
	cr_assert_str_eq(ev.room.sid, "RM_tQ8xVvZ3kT9a");
	cr_assert_str_eq(ev.room.name, "call-7f3a");
	assert_no_participant(&ev.participant);
	cr_assert_str_eq(ev.track.sid, "");
}

Test(parse, example_participant_joined)
{
	struct webhook_event ev = parse_ok(participant_joined);
	const struct webhook_participant *p = &ev.participant;

	cr_assert_eq(ev.kind, WEBHOOK_PARTICIPANT_JOINED);
	cr_assert_str_eq(ev.id, "EV_kKc9DW235ytJ");
	cr_assert_eq(ev.created_at, 1767225601);
	cr_assert_str_eq(ev.room.name, "call-7f3a");
	cr_assert_str_eq(p->sid, "PA_Jx4bN8sQw2Lm");
	cr_assert_str_eq(p->identity, "user-42");
	cr_assert_eq(p->joined_at, 1767225601);
	cr_assert_eq(p->joined_at_ms, 1767225601456);
	cr_assert_str_eq(p->state, "ACTIVE");
	cr_assert_str_eq(p->kind, "");
	cr_assert_str_eq(p->disconnect_reason, "");
	cr_assert(!p->hidden && !p->recorder && !p->agent);
	cr_assert(webhook_participant_is_standard(p));
}

/* A participant's display name is not read: however long another token issuer made it (an
 * agent, SIP), the event is applied, never refused with a 400 that LiveKit would not retry. */
Test(parse, a_participant_name_of_any_length)
{
	char body[1400];
	char name[1001];
	memset(name, 'n', sizeof name - 1);
	name[sizeof name - 1] = '\0';
	snprintf(body, sizeof body,
		 "{\"event\":\"participant_joined\",\"id\":\"EV_l\",\"participant\":{\"sid\":"
		 "\"PA_l\",\"identity\":\"u\",\"name\":\"%s\"}}", name);
	struct webhook_event ev = parse_ok(body);
	cr_assert_str_eq(ev.participant.identity, "u");
}

Test(parse, example_track_published_screen_share)
{
	struct webhook_event ev = parse_ok(track_published);

	cr_assert_eq(ev.kind, WEBHOOK_TRACK_PUBLISHED);
	cr_assert_str_eq(ev.id, "EV_Yb7QmR2nX9pL");
	cr_assert_eq(ev.created_at, 1767225720);
	cr_assert_str_eq(ev.room.sid, "RM_tQ8xVvZ3kT9a");
	cr_assert_str_eq(ev.participant.sid, "PA_Jx4bN8sQw2Lm");
	cr_assert_str_eq(ev.participant.identity, "user-42");
	cr_assert_eq(ev.participant.joined_at, 0);
	cr_assert_str_eq(ev.track.sid, "TR_VCf2n6WpZr4s");
	cr_assert_str_eq(ev.track.type, "VIDEO");
	cr_assert_str_eq(ev.track.source, "SCREEN_SHARE");
}

Test(parse, example_participant_left)
{
	struct webhook_event ev = parse_ok(participant_left);

	cr_assert_eq(ev.kind, WEBHOOK_PARTICIPANT_LEFT);
	cr_assert_str_eq(ev.id, "EV_zWtQEAJwGNk2");
	cr_assert_eq(ev.created_at, 1767227412);
	cr_assert_str_eq(ev.participant.sid, "PA_Jx4bN8sQw2Lm");
	cr_assert_str_eq(ev.participant.state, "DISCONNECTED");
	cr_assert_str_eq(ev.participant.disconnect_reason, "CLIENT_INITIATED");
	cr_assert_eq(ev.participant.joined_at_ms, 1767225601456);
}

Test(parse, example_room_finished)
{
	struct webhook_event ev = parse_ok(room_finished);

	cr_assert_eq(ev.kind, WEBHOOK_ROOM_FINISHED);
	cr_assert_str_eq(ev.id, "EV_St9wgVG8SGcu");
	cr_assert_eq(ev.created_at, 1767227433);
	cr_assert_str_eq(ev.room.sid, "RM_tQ8xVvZ3kT9a");
	cr_assert_str_eq(ev.room_end_reason, "");
}

Test(parse, go_style_spaces)
{
	struct webhook_event ev = parse_ok(
		"{\"event\":\"participant_left\", \"room\":{\"sid\":\"RM_a\", \"name\":\"call-1\"}, "
		"\"participant\":{\"sid\":\"PA_b\", \"identity\":\"u1\", \"state\":\"DISCONNECTED\", "
		"\"joinedAt\":\"1767225601\", \"disconnectReason\":\"ROOM_DELETED\"}, "
		"\"id\":\"EV_c\", \"createdAt\":\"1767227412\"}");

	cr_assert_eq(ev.kind, WEBHOOK_PARTICIPANT_LEFT);
	cr_assert_str_eq(ev.room.name, "call-1");
	cr_assert_str_eq(ev.participant.identity, "u1");
	cr_assert_str_eq(ev.participant.disconnect_reason, "ROOM_DELETED");
	cr_assert_eq(ev.participant.joined_at, 1767225601);
	/* vector (a) is Go-formatted too, but from a server too old to send an id */
	assert_invalid(go_body);
}

Test(parse, snake_case_keys)
{
	struct webhook_event ev = parse_ok(
		"{\"event\":\"participant_left\",\"id\":\"EV_s\",\"created_at\":\"1767227412\","
		"\"num_dropped\":3,\"room_end_reason\":\"ROOM_END_API_DELETE\","
		"\"participant\":{\"sid\":\"PA_s\",\"identity\":\"u\",\"joined_at\":\"1767225601\","
		"\"joined_at_ms\":\"1767225601456\",\"disconnect_reason\":\"PARTICIPANT_REMOVED\"}}");

	cr_assert_eq(ev.created_at, 1767227412);
	cr_assert_eq(ev.num_dropped, 3);
	cr_assert_str_eq(ev.room_end_reason, "ROOM_END_API_DELETE");
	cr_assert_eq(ev.participant.joined_at, 1767225601);
	cr_assert_eq(ev.participant.joined_at_ms, 1767225601456);
	cr_assert_str_eq(ev.participant.disconnect_reason, "PARTICIPANT_REMOVED");
}

Test(parse, both_spellings_of_one_field)
{
	assert_invalid("{\"event\":\"room_started\",\"id\":\"EV_x\",\"createdAt\":\"1\","
		       "\"created_at\":\"2\"}");
	assert_invalid("{\"event\":\"participant_left\",\"id\":\"EV_x\",\"participant\":{"
		       "\"joinedAtMs\":1,\"joined_at_ms\":1}}");
}

Test(parse, int64_as_numbers)
{
	struct webhook_event ev = parse_ok(
		"{\"event\":\"participant_joined\",\"id\":\"EV_n\",\"createdAt\":1767225601,"
		"\"numDropped\":\"2\",\"participant\":{\"sid\":\"PA_n\",\"joinedAt\":1767225601,"
		"\"joinedAtMs\":1767225601456}}");

	cr_assert_eq(ev.created_at, 1767225601);
	cr_assert_eq(ev.num_dropped, 2);
	cr_assert_eq(ev.participant.joined_at, 1767225601);
	cr_assert_eq(ev.participant.joined_at_ms, 1767225601456);

	assert_invalid("{\"event\":\"x\",\"id\":\"EV_n\",\"createdAt\":\"9223372036854775808\"}");
	assert_invalid("{\"event\":\"x\",\"id\":\"EV_n\",\"numDropped\":2147483648}");
}

/* Times are kept in ms: a time in seconds past the year 9999 would overflow the * 1000. */
Test(parse, times_end_at_the_year_9999)
{
	struct webhook_event ev = parse_ok(
		"{\"event\":\"participant_joined\",\"id\":\"EV_t\",\"createdAt\":\"253402300799\","
		"\"participant\":{\"sid\":\"PA_t\",\"joinedAt\":253402300799,"
		"\"joinedAtMs\":\"253402300799999\"}}");

	cr_assert_eq(ev.created_at, 253402300799);
	cr_assert_eq(ev.participant.joined_at, 253402300799);
	cr_assert_eq(ev.participant.joined_at_ms, 253402300799999);
	assert_invalid("{\"event\":\"x\",\"id\":\"EV_t\",\"createdAt\":\"253402300800\"}");
	assert_invalid("{\"event\":\"x\",\"id\":\"EV_t\",\"createdAt\":\"9223372036854775807\"}");
	assert_invalid("{\"event\":\"x\",\"id\":\"EV_t\",\"participant\":{\"joinedAt\":"
		       "10000000000000000}}");
	assert_invalid("{\"event\":\"x\",\"id\":\"EV_t\",\"participant\":{\"joinedAtMs\":"
		       "253402300800000}}");
}

Test(parse, enums_as_numbers)
{
	struct webhook_event ev = parse_ok(
		"{\"event\":\"participant_left\",\"id\":\"EV_e\",\"roomEndReason\":2,"
		"\"participant\":{\"sid\":\"PA_e\",\"kind\":2,\"state\":3,\"disconnectReason\":1},"
		"\"track\":{\"sid\":\"TR_e\",\"type\":1,\"source\":3}}");

	cr_assert_str_eq(ev.room_end_reason, "ROOM_END_IDLE_TIMEOUT");
	cr_assert_str_eq(ev.participant.kind, "EGRESS");
	cr_assert_str_eq(ev.participant.state, "DISCONNECTED");
	cr_assert_str_eq(ev.participant.disconnect_reason, "CLIENT_INITIATED");
	cr_assert_str_eq(ev.track.type, "VIDEO");
	cr_assert_str_eq(ev.track.source, "SCREEN_SHARE");
	cr_assert(!webhook_participant_is_standard(&ev.participant));

	ev = parse_ok("{\"event\":\"participant_left\",\"id\":\"EV_e\",\"participant\":{"
		      "\"kind\":7,\"disconnectReason\":16}}");
	cr_assert_str_eq(ev.participant.kind, "CONNECTOR");
	cr_assert_str_eq(ev.participant.disconnect_reason, "AGENT_ERROR");
	/* numbers without a name here: a hole in the proto, a newer value, a negative one */
	ev = parse_ok("{\"event\":\"participant_left\",\"id\":\"EV_e\",\"participant\":{"
		      "\"kind\":5,\"disconnectReason\":17,\"state\":-1}}");
	cr_assert_str_eq(ev.participant.kind, "5");
	cr_assert_str_eq(ev.participant.disconnect_reason, "17");
	cr_assert_str_eq(ev.participant.state, "-1");
	cr_assert(!webhook_participant_is_standard(&ev.participant));
	assert_invalid("{\"event\":\"x\",\"id\":\"EV_e\",\"participant\":{\"kind\":4294967296}}");
}

Test(parse, enum_zero_value_is_empty)
{
	struct webhook_event ev = parse_ok(
		"{\"event\":\"participant_left\",\"id\":\"EV_z\",\"roomEndReason\":\"ROOM_END_UNKNOWN\","
		"\"participant\":{\"kind\":\"STANDARD\",\"state\":0,"
		"\"disconnectReason\":\"UNKNOWN_REASON\"},\"track\":{\"type\":\"AUDIO\",\"source\":0}}");

	cr_assert_str_eq(ev.room_end_reason, "");
	cr_assert_str_eq(ev.participant.kind, "");
	cr_assert_str_eq(ev.participant.state, "");
	cr_assert_str_eq(ev.participant.disconnect_reason, "");
	cr_assert_str_eq(ev.track.type, "");
	cr_assert_str_eq(ev.track.source, "");
}

Test(parse, unknown_enum_names_are_kept)
{
	struct webhook_event ev = parse_ok(
		"{\"event\":\"participant_left\",\"id\":\"EV_u\",\"participant\":{"
		"\"kind\":\"HOLOGRAM\",\"disconnectReason\":\"SOLAR_FLARE\"}}");

	cr_assert_str_eq(ev.participant.kind, "HOLOGRAM");
	cr_assert_str_eq(ev.participant.disconnect_reason, "SOLAR_FLARE");
	cr_assert(!webhook_participant_is_standard(&ev.participant));
	assert_invalid("{\"event\":\"x\",\"id\":\"EV_u\",\"participant\":{\"kind\":\"\"}}");
	assert_invalid("{\"event\":\"x\",\"id\":\"EV_u\",\"participant\":{\"kind\":\"a b\"}}");
	assert_invalid("{\"event\":\"x\",\"id\":\"EV_u\",\"participant\":{\"kind\":\"EG\\n\"}}");
	assert_invalid("{\"event\":\"x\",\"id\":\"EV_u\",\"participant\":{\"kind\":true}}");
	assert_invalid("{\"event\":\"x\",\"id\":\"EV_u\",\"participant\":{\"kind\":1.0}}");
	/* REASON_MAX is 40 */
	parse_ok("{\"event\":\"x\",\"id\":\"EV_u\",\"roomEndReason\":"
		 "\"ROOM_END_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"}");
	assert_invalid("{\"event\":\"x\",\"id\":\"EV_u\",\"roomEndReason\":"
		       "\"ROOM_END_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"}");
}

Test(parse, room_end_reason_as_name_and_number)
{
	struct webhook_event ev;

	ev = parse_ok("{\"event\":\"room_finished\",\"id\":\"EV_r\",\"room\":{\"sid\":\"RM_r\"},"
		      "\"roomEndReason\":\"ROOM_END_API_DELETE\"}");
	cr_assert_eq(ev.kind, WEBHOOK_ROOM_FINISHED);
	cr_assert_str_eq(ev.room_end_reason, "ROOM_END_API_DELETE");
	ev = parse_ok("{\"event\":\"room_finished\",\"id\":\"EV_r\",\"roomEndReason\":1}");
	cr_assert_str_eq(ev.room_end_reason, "ROOM_END_API_DELETE");
	ev = parse_ok("{\"event\":\"room_finished\",\"id\":\"EV_r\",\"roomEndReason\":5}");
	cr_assert_str_eq(ev.room_end_reason, "ROOM_END_OPEN_FAILED");
	ev = parse_ok("{\"event\":\"room_finished\",\"id\":\"EV_r\",\"roomEndReason\":6}");
	cr_assert_str_eq(ev.room_end_reason, "6");
}

Test(parse, participant_connection_aborted)
{
	struct webhook_event ev = parse_ok(
		"{\"event\":\"participant_connection_aborted\",\"room\":{\"sid\":\"RM_a\","
		"\"name\":\"call-7f3a\"},\"participant\":{\"sid\":\"PA_x\",\"identity\":\"user-7\","
		"\"state\":\"JOINED\",\"joinedAt\":\"1767225601\",\"disconnectReason\":\"JOIN_FAILURE\"},"
		"\"id\":\"EV_ab\",\"createdAt\":\"1767225630\"}");

	cr_assert_eq(ev.kind, WEBHOOK_PARTICIPANT_CONNECTION_ABORTED);
	cr_assert_str_eq(ev.participant.sid, "PA_x");
	cr_assert_str_eq(ev.participant.state, "JOINED");
	cr_assert_str_eq(ev.participant.disconnect_reason, "JOIN_FAILURE");
}

Test(parse, track_unpublished)
{
	struct webhook_event ev = parse_ok(
		"{\"event\":\"track_unpublished\",\"id\":\"EV_t\",\"track\":{\"sid\":\"TR_a\","
		"\"source\":\"MICROPHONE\"}}");

	cr_assert_eq(ev.kind, WEBHOOK_TRACK_UNPUBLISHED);
	cr_assert_str_eq(ev.track.type, ""); /* AUDIO, omitted as the zero value */
	cr_assert_str_eq(ev.track.source, "MICROPHONE");
}

Test(parse, missing_keys_are_zero)
{
	struct webhook_event ev = parse_ok("{\"event\":\"participant_left\",\"id\":\"EV_m\"}");
	static const struct webhook_track no_track;

	cr_assert_eq(ev.kind, WEBHOOK_PARTICIPANT_LEFT);
	cr_assert_eq(ev.created_at, 0);
	cr_assert_eq(ev.num_dropped, 0);
	cr_assert_str_eq(ev.room_end_reason, "");
	cr_assert_str_eq(ev.room.sid, "");
	cr_assert_str_eq(ev.room.name, "");
	assert_no_participant(&ev.participant);
	cr_assert(memcmp(&ev.track, &no_track, sizeof no_track) == 0);

	/* null is absent too */
	ev = parse_ok("{\"event\":\"participant_left\",\"id\":\"EV_m\",\"createdAt\":null,"
		      "\"room\":null,\"participant\":{\"sid\":null,\"permission\":null,"
		      "\"kind\":null}}");
	cr_assert_eq(ev.created_at, 0);
	assert_no_participant(&ev.participant);
}

Test(parse, unknown_events_are_ignored_not_errors)
{
	struct webhook_event ev;

	ev = parse_ok("{\"event\":\"egress_ended\",\"egressInfo\":{\"egressId\":\"EG_1\","
		      "\"status\":\"EGRESS_COMPLETE\"},\"id\":\"EV_g\",\"createdAt\":\"1\"}");
	cr_assert_eq(ev.kind, WEBHOOK_IGNORED);
	cr_assert_str_eq(ev.name, "egress_ended");
	ev = parse_ok("{\"event\":\"room_teleported\",\"id\":\"EV_g\",\"futureField\":[1,{}]}");
	cr_assert_eq(ev.kind, WEBHOOK_IGNORED);
	cr_assert_str_eq(ev.name, "room_teleported");
	cr_assert_str_eq(ev.id, "EV_g");
}

Test(parse, not_an_event)
{
	static const char *const bodies[] = {
		"",
		"{",
		"not json",
		"[]",
		"\"room_started\"",
		"42",
		"null",
		"{}",
		"{\"id\":\"EV_1\"}",
		"{\"event\":\"\",\"id\":\"EV_1\"}",
		"{\"event\":null,\"id\":\"EV_1\"}",
		"{\"event\":7,\"id\":\"EV_1\"}",
		"{\"event\":\"room_started\"}",
		"{\"event\":\"room_started\",\"id\":\"\"}",
		"{\"event\":\"room_started\",\"id\":9}",
		"{\"event\":\"room_started\",\"id\":\"EV_1\",\"id\":\"EV_2\"}",
		"{\"event\":\"room_started\",\"id\":\"EV_1\"} {}",
		"{\"event\":\"room_started\",\"id\":\"EV_1\",\"x\":\"\\u0000\"}",
	};
	for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++)
		assert_invalid(bodies[i]);
	cr_assert_eq(webhook_event_parse(NULL, 0, &(struct webhook_event){0}), ERR_INVALID);
	/* a raw NUL byte, even where jansson used to skip it (after a number) */
	static const char nul[] = "{\"event\":\"room_started\",\"id\":\"EV_1\",\"createdAt\":1\0}";
	cr_assert_eq(webhook_event_parse(nul, sizeof nul - 1, &(struct webhook_event){0}),
		     ERR_INVALID);
}

Test(parse, wrong_types)
{
	static const char *const bodies[] = {
		"{\"event\":\"x\",\"id\":\"EV_1\",\"room\":\"RM_1\"}",
		"{\"event\":\"x\",\"id\":\"EV_1\",\"room\":[]}",
		"{\"event\":\"x\",\"id\":\"EV_1\",\"room\":{\"sid\":1}}",
		"{\"event\":\"x\",\"id\":\"EV_1\",\"participant\":true}",
		"{\"event\":\"x\",\"id\":\"EV_1\",\"track\":1}",
		"{\"event\":\"x\",\"id\":\"EV_1\",\"createdAt\":true}",
		"{\"event\":\"x\",\"id\":\"EV_1\",\"createdAt\":\"12a\"}",
		"{\"event\":\"x\",\"id\":\"EV_1\",\"createdAt\":\" 12\"}",
		"{\"event\":\"x\",\"id\":\"EV_1\",\"createdAt\":\"+12\"}",
		"{\"event\":\"x\",\"id\":\"EV_1\",\"createdAt\":\"\"}",
		"{\"event\":\"x\",\"id\":\"EV_1\",\"createdAt\":-1}",
		"{\"event\":\"x\",\"id\":\"EV_1\",\"createdAt\":\"-1\"}",
		"{\"event\":\"x\",\"id\":\"EV_1\",\"createdAt\":1.5}",
		"{\"event\":\"x\",\"id\":\"EV_1\",\"numDropped\":[]}",
		"{\"event\":\"x\",\"id\":\"EV_1\",\"participant\":{\"joinedAt\":{}}}",
		"{\"event\":\"x\",\"id\":\"EV_1\",\"participant\":{\"permission\":true}}",
		"{\"event\":\"x\",\"id\":\"EV_1\",\"participant\":{\"permission\":{\"hidden\":1}}}",
		"{\"event\":\"x\",\"id\":\"EV_1\",\"participant\":{\"permission\":{\"recorder\":\"y\"}}}",
		"{\"event\":\"x\",\"id\":\"EV_1\",\"participant\":{\"disconnectReason\":[1]}}",
		"{\"event\":\"x\",\"id\":\"EV_1\",\"track\":{\"source\":{}}}",
	};
	for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++)
		assert_invalid(bodies[i]);
}

/* n times 'u', in a static buffer */
static const char *repeat_u(size_t n)
{
	static char s[512];
	cr_assert(n < sizeof s);
	memset(s, 'u', n);
	s[n] = '\0';
	return s;
}

Test(parse, string_bounds)
{
	char body[1024];
	struct webhook_event ev;

#define PARTICIPANT_IDENTITY "{\"event\":\"x\",\"id\":\"EV_b\",\"participant\":{\"identity\":\"%s\"}}"
	/* Identities go up to LiveKit's own limit: agents and recorders may use it all. */
	snprintf(body, sizeof body, PARTICIPANT_IDENTITY, repeat_u(IDENTITY_MAX));
	ev = parse_ok(body);
	cr_assert_eq(strlen(ev.participant.identity), IDENTITY_MAX);
	snprintf(body, sizeof body, PARTICIPANT_IDENTITY, repeat_u(IDENTITY_MAX + 1));
	assert_invalid(body);

	/* UTF-8 counts in bytes: 129 two-byte characters are 258 bytes */
	char utf8[2 * 129 + 1];
	for (int i = 0; i < 129; i++)
		memcpy(utf8 + 2 * i, "\xc3\xa9", 2);
	utf8[2 * 129] = '\0';
	snprintf(body, sizeof body, PARTICIPANT_IDENTITY, utf8);
	assert_invalid(body);
	utf8[2 * 128] = '\0';
	snprintf(body, sizeof body, PARTICIPANT_IDENTITY, utf8);
	parse_ok(body);

	snprintf(body, sizeof body, "{\"event\":\"x\",\"id\":\"EV_b\",\"room\":{\"sid\":\"%s\"}}",
		 repeat_u(SID_MAX));
	cr_assert_eq(strlen(parse_ok(body).room.sid), SID_MAX);
	snprintf(body, sizeof body, "{\"event\":\"x\",\"id\":\"EV_b\",\"room\":{\"sid\":\"%s\"}}",
		 repeat_u(SID_MAX + 1));
	assert_invalid(body);
	snprintf(body, sizeof body, "{\"event\":\"x\",\"id\":\"EV_b\",\"track\":{\"sid\":\"%s\"}}",
		 repeat_u(SID_MAX + 1));
	assert_invalid(body);
	snprintf(body, sizeof body, "{\"event\":\"x\",\"id\":\"EV_b\",\"room\":{\"name\":\"%s\"}}",
		 repeat_u(WEBHOOK_ROOM_NAME_MAX + 1));
	assert_invalid(body);

	snprintf(body, sizeof body, "{\"event\":\"x\",\"id\":\"%s\"}", repeat_u(WEBHOOK_ID_MAX + 1));
	assert_invalid(body);
	snprintf(body, sizeof body, "{\"event\":\"%s\",\"id\":\"EV_b\"}",
		 repeat_u(WEBHOOK_EVENT_NAME_MAX + 1));
	assert_invalid(body);
	snprintf(body, sizeof body, "{\"event\":\"%s\",\"id\":\"EV_b\"}",
		 repeat_u(WEBHOOK_EVENT_NAME_MAX));
	ev = parse_ok(body);
	cr_assert_eq(ev.kind, WEBHOOK_IGNORED);
	snprintf(body, sizeof body, "{\"event\":\"x\",\"id\":\"%s\"}", repeat_u(WEBHOOK_ID_MAX));
	cr_assert_eq(strlen(parse_ok(body).id), WEBHOOK_ID_MAX);
#undef PARTICIPANT_IDENTITY
}

Test(parse, body_need_not_be_terminated)
{
	char buf[sizeof room_started + 8];
	struct webhook_event ev;

	memcpy(buf, room_started, strlen(room_started));
	memcpy(buf + strlen(room_started), "garbage!", 8);
	cr_assert_eq(webhook_event_parse(buf, strlen(room_started), &ev), ERR_OK);
	cr_assert_str_eq(ev.id, "EV_3vTqJ8mWkP2x");
	cr_assert_eq(webhook_event_parse(buf, sizeof buf, &ev), ERR_INVALID);
}

Test(parse, non_member_participants)
{
	static const char *const bodies[] = {
		"{\"event\":\"participant_joined\",\"id\":\"EV_1\",\"participant\":{\"sid\":\"PA_1\","
		"\"identity\":\"EG_abc\",\"kind\":\"EGRESS\"}}",
		"{\"event\":\"participant_joined\",\"id\":\"EV_1\",\"participant\":{\"kind\":\"INGRESS\"}}",
		"{\"event\":\"participant_joined\",\"id\":\"EV_1\",\"participant\":{\"kind\":\"SIP\"}}",
		"{\"event\":\"participant_joined\",\"id\":\"EV_1\",\"participant\":{\"kind\":\"AGENT\"}}",
		"{\"event\":\"participant_joined\",\"id\":\"EV_1\",\"participant\":{\"kind\":8}}",
		"{\"event\":\"participant_joined\",\"id\":\"EV_1\",\"participant\":{"
		"\"permission\":{\"hidden\":true}}}",
		"{\"event\":\"participant_joined\",\"id\":\"EV_1\",\"participant\":{"
		"\"permission\":{\"recorder\":true,\"hidden\":true}}}",
		"{\"event\":\"participant_joined\",\"id\":\"EV_1\",\"participant\":{"
		"\"permission\":{\"agent\":true}}}",
	};
	for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
		struct webhook_event ev = parse_ok(bodies[i]);
		cr_assert(!webhook_participant_is_standard(&ev.participant), "%s", bodies[i]);
	}
	/* a standard user whose id merely looks like an egress one is a member */
	struct webhook_event ev = parse_ok(
		"{\"event\":\"participant_joined\",\"id\":\"EV_1\",\"participant\":{\"identity\":"
		"\"EG_user\",\"kind\":\"STANDARD\",\"permission\":{\"hidden\":false}}}");
	cr_assert(webhook_participant_is_standard(&ev.participant));
}

/* ---- Both together, as the handler runs them ------------------------------------------- */

Test(verify, then_parse)
{
	struct webhook_event ev;
	const char *key_id = NULL;

	cr_assert_eq(webhook_verify(&keys, vector_token, room_finished, strlen(room_finished),
				    T_EXP, &key_id, NULL),
		     ERR_OK);
	cr_assert_eq(webhook_event_parse(room_finished, strlen(room_finished), &ev), ERR_OK);
	cr_assert_eq(ev.kind, WEBHOOK_ROOM_FINISHED);
	cr_assert_str_eq(key_id, DEV_KEY);
}

/* Authentication of LiveKit webhook requests (LIVEKIT.md §2): the JWT in Authorization is checked
 * here with OpenSSL and json_scan rather than libjwt, whose 1.x releases neither check exp/nbf nor
 * compare the MAC in constant time. Cheap structural checks come before any parsing or hashing;
 * header and claims are read in one json_scan pass each, which picks out the few members used. */
#include "webhook.h"

#include <limits.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include "json_scan.h"

/* Standard base64 of a SHA-256 digest: 44 characters with one '=' of padding. */
#define SHA256_B64_LEN 44

enum err webhook_keys_init(struct webhook_keys *ret, const struct config *cfg)
{
	struct webhook_keys keys = {0};
	const struct api_key *all[CONFIG_MAX_KEYS + 1];
	size_t n_all = 0;

	all[n_all++] = &cfg->api_key;
	for (size_t i = 0; i < cfg->n_extra_keys && i < CONFIG_MAX_KEYS; i++)
		all[n_all++] = &cfg->extra_keys[i];

	for (size_t i = 0; i < n_all; i++) {
		const struct api_key *k = all[i];
		if (!k->key || !k->key[0] || !k->secret || !k->secret[0])
			continue;
		size_t secret_len = strlen(k->secret);
		if (secret_len > INT_MAX) /* HMAC() takes an int */
			continue;
		keys.keys[keys.n++] = (struct webhook_key){k->key, k->secret, secret_len};
	}
	if (keys.n == 0)
		return ERR_INVALID;
	*ret = keys;
	return ERR_OK;
}

static int b64url_digit(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '-')
		return 62;
	if (c == '_')
		return 63;
	return -1;
}

/* Strict unpadded base64url (RFC 7515 §2). Non-zero spare bits in the last character are refused
 * so that every value has one spelling and a tampered signature cannot decode to the same MAC. */
static bool b64url_decode(const char *in, size_t len, unsigned char *out, size_t cap,
			  size_t *ret_len)
{
	size_t n = 0;
	uint32_t acc = 0;
	int bits = 0;

	if (len % 4 == 1 || len / 4 * 3 + (len % 4 ? len % 4 - 1 : 0) > cap)
		return false;
	for (size_t i = 0; i < len; i++) {
		int d = b64url_digit((unsigned char)in[i]);
		if (d < 0)
			return false;
		acc = (acc << 6) | (uint32_t)d;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[n++] = (unsigned char)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	if (acc != 0)
		return false;
	*ret_len = n;
	return true;
}

/* The JOSE header must say HS256: "none", HS384/512 and every asymmetric alg are refused, so the
 * token cannot pick how it is checked. A "crit" header asks for extensions we do not implement,
 * which RFC 7515 §4.1.11 says must fail. "typ" is advisory and ignored. */
enum { HEADER_ALG, HEADER_CRIT, HEADER_SLOTS };
static const struct json_scan_member header_members[] = {
	{"alg", HEADER_ALG, NULL},
	{"crit", HEADER_CRIT, NULL},
};
static const struct json_scan_object header_object = {header_members, HEADER_SLOTS};

static bool header_ok(const unsigned char *json, size_t len)
{
	struct json_scan_value v[HEADER_SLOTS];
	char alg[sizeof "HS256"];

	return json_scan((const char *)json, len, &header_object, v, HEADER_SLOTS) == JSON_LOAD_OK &&
	       v[HEADER_CRIT].type == JSON_SCAN_ABSENT &&
	       json_scan_string(&v[HEADER_ALG], alg, sizeof alg) && strcmp(alg, "HS256") == 0;
}

enum { CLAIM_ISS, CLAIM_EXP, CLAIM_NBF, CLAIM_SHA256, CLAIM_SLOTS };
static const struct json_scan_member claim_members[] = {
	{"iss", CLAIM_ISS, NULL},
	{"exp", CLAIM_EXP, NULL},
	{"nbf", CLAIM_NBF, NULL},
	{"sha256", CLAIM_SHA256, NULL},
};
static const struct json_scan_object claims_object = {claim_members, CLAIM_SLOTS};

/* A NumericDate claim as whole seconds, clamped so that adding or removing the leeway cannot
 * overflow. LiveKit writes integers; fractional or string times are refused. */
static bool claim_time(const struct json_scan_value *v, int64_t *ret)
{
	if (v->type != JSON_SCAN_INTEGER)
		return false;
	int64_t t = v->integer;
	if (t > INT64_MAX - WEBHOOK_LEEWAY_S)
		t = INT64_MAX - WEBHOOK_LEEWAY_S;
	if (t < INT64_MIN + WEBHOOK_LEEWAY_S)
		t = INT64_MIN + WEBHOOK_LEEWAY_S;
	*ret = t;
	return true;
}

/* Skips an optional "Bearer " (scheme case-insensitive, RFC 9110 §11.1) before the token. */
static const char *skip_bearer(const char *s, size_t *len)
{
	static const char scheme[] = "bearer";
	size_t n = sizeof scheme - 1;

	if (*len <= n || strncasecmp(s, scheme, n) != 0 || s[n] != ' ')
		return s;
	while (n < *len && s[n] == ' ')
		n++;
	*len -= n;
	return s + n;
}

static bool mac_ok(const struct webhook_key *k, const char *signed_part, size_t signed_len,
		   const unsigned char sig[SHA256_DIGEST_LENGTH])
{
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int mac_len = 0;

	if (!HMAC(EVP_sha256(), k->secret, (int)k->secret_len, (const unsigned char *)signed_part,
		  signed_len, mac, &mac_len) ||
	    mac_len != SHA256_DIGEST_LENGTH)
		return false;
	return CRYPTO_memcmp(mac, sig, SHA256_DIGEST_LENGTH) == 0;
}

static bool body_digest_ok(const struct json_scan_value *claim, const void *body, size_t body_len)
{
	unsigned char digest[SHA256_DIGEST_LENGTH];
	unsigned char b64[SHA256_B64_LEN + 1]; /* EVP_EncodeBlock adds a NUL */
	char sent[SHA256_B64_LEN + 1];

	if (claim->type != JSON_SCAN_STRING || claim->len != SHA256_B64_LEN ||
	    !json_scan_string(claim, sent, sizeof sent))
		return false;
	if (!EVP_Digest(body_len ? body : "", body_len, digest, NULL, EVP_sha256(), NULL))
		return false;
	EVP_EncodeBlock(b64, digest, SHA256_DIGEST_LENGTH);
	return CRYPTO_memcmp(b64, sent, SHA256_B64_LEN) == 0;
}

/* The iss claim names this key id. Ids are public: no need for constant time. */
static bool iss_is(const struct json_scan_value *iss, const char *id)
{
	struct json_scan_chars it;
	size_t i = 0;
	char c;

	if (iss->type != JSON_SCAN_STRING || iss->len != strlen(id))
		return false;
	json_scan_chars_init(&it, iss);
	while (json_scan_chars_next(&it, &c))
		if (c != id[i++])
			return false;
	return true;
}

/* The claims of a parsed payload: signature first, since until it holds nothing else in the
 * token means anything. Returns NULL when all hold, else which check failed. */
static const char *check_claims(const struct webhook_keys *keys,
				const struct json_scan_value claims[CLAIM_SLOTS],
				const char *signed_part, size_t signed_len,
				const unsigned char sig[SHA256_DIGEST_LENGTH], const void *body,
				size_t body_len, int64_t now_s, const struct webhook_key **ret_key)
{
	const struct webhook_key *key = NULL;
	bool known = false;
	int64_t exp, nbf;

	for (size_t i = 0; i < keys->n && !key; i++) {
		if (!iss_is(&claims[CLAIM_ISS], keys->keys[i].id))
			continue;
		/* A key id listed twice (mid-rotation) is tried with each of its secrets. */
		known = true;
		if (mac_ok(&keys->keys[i], signed_part, signed_len, sig))
			key = &keys->keys[i];
	}
	if (!key)
		return known ? "bad signature" : "unknown iss";

	if (!claim_time(&claims[CLAIM_EXP], &exp))
		return "exp missing or not an integer";
	/* nbf is optional, but present (even as null) it must be a time */
	bool has_nbf = claims[CLAIM_NBF].type != JSON_SCAN_ABSENT;
	if (has_nbf && !claim_time(&claims[CLAIM_NBF], &nbf))
		return "nbf not an integer";
	if (now_s > exp + WEBHOOK_LEEWAY_S)
		return "expired";
	if (has_nbf && now_s < nbf - WEBHOOK_LEEWAY_S)
		return "not yet valid";
	if (!body_digest_ok(&claims[CLAIM_SHA256], body, body_len))
		return "sha256 missing or does not match the body";
	*ret_key = key;
	return NULL;
}

/* The token once the header is bounded: three base64url segments, an HS256 header, a JSON object
 * payload. The signature is decoded first as it is the cheapest to refuse. */
static const char *check_token(const struct webhook_keys *keys, const char *tok, size_t len,
			       const void *body, size_t body_len, int64_t now_s,
			       const struct webhook_key **ret_key)
{
	/* Decoded header or payload: at most 3/4 of the bounded token. */
	unsigned char buf[WEBHOOK_AUTH_MAX / 4 * 3];
	unsigned char sig[SHA256_DIGEST_LENGTH];
	size_t n;

	const char *dot1 = memchr(tok, '.', len);
	const char *dot2 = dot1 ? memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - tok)) : NULL;
	if (!dot2 || memchr(dot2 + 1, '.', len - (size_t)(dot2 + 1 - tok)))
		return "not a JWS compact token";
	size_t signed_len = (size_t)(dot2 - tok);

	if (!b64url_decode(dot2 + 1, len - signed_len - 1, sig, sizeof sig, &n) || n != sizeof sig)
		return "signature is not 32 bytes of base64url";
	if (!b64url_decode(tok, (size_t)(dot1 - tok), buf, sizeof buf, &n))
		return "header is not base64url";
	if (!header_ok(buf, n))
		return "header is not HS256";
	if (!b64url_decode(dot1 + 1, (size_t)(dot2 - dot1 - 1), buf, sizeof buf, &n))
		return "payload is not base64url";

	struct json_scan_value claims[CLAIM_SLOTS];
	switch (json_scan((const char *)buf, n, &claims_object, claims, CLAIM_SLOTS)) {
	case JSON_LOAD_OK:
		return check_claims(keys, claims, tok, signed_len, sig, body, body_len, now_s,
				    ret_key);
	case JSON_LOAD_TOO_DEEP:
		return "payload is nested too deep";
	default:
		return "payload is not a JSON object";
	}
}

enum err webhook_verify(const struct webhook_keys *keys, const char *authorization,
			const void *body, size_t body_len, int64_t now_s, const char **ret_key_id,
			const char **why)
{
	const struct webhook_key *key = NULL;
	const char *fail;
	size_t len = authorization ? strnlen(authorization, WEBHOOK_AUTH_MAX + 1) : 0;

	if (len == 0) {
		fail = "no Authorization header";
	} else if (len > WEBHOOK_AUTH_MAX) {
		fail = "Authorization header too long";
	} else {
		const char *tok = skip_bearer(authorization, &len);
		fail = check_token(keys, tok, len, body, body_len, now_s, &key);
	}
	if (fail) {
		if (why)
			*why = fail;
		return ERR_UNAUTHENTICATED;
	}
	if (ret_key_id)
		*ret_key_id = key->id;
	return ERR_OK;
}

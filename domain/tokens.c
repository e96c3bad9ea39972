/* LiveKit access tokens on the hot path: the claims are formatted straight into a stack buffer
 * and signed with HMAC-SHA256 from the key's inner and outer SHA-256 states, which the signer
 * computes once, so a token costs two state copies and the hashing of its own bytes. */
#include "tokens.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "jsonutil.h"
#include "sha256.h"

#define SIG_B64_LEN 43 /* base64url of 32 bytes, unpadded */
#define JTI_BYTES 16

/* base64url of {"alg":"HS256","typ":"JWT"} */
static const char header_b64[] = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9";

/* The longest payload whose base64url still fits TOKEN_MAX with the header, two dots, the
 * signature and the NUL. */
#define PAYLOAD_MAX ((TOKEN_MAX - (sizeof header_b64 - 1) - 2 - SIG_B64_LEN - 1) / 4 * 3)

/* jti bytes: RAND_bytes costs about 0.6 µs a call whatever the length, so each thread draws
 * 1 KiB at a time and hands out 16 bytes per token. */
static _Thread_local struct {
	unsigned char bytes[1024];
	size_t left;
} jti_pool;

static const char b64url_alphabet[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* Every 12-bit group as its two base64url characters, so that three bytes take two lookups,
 * not four (a token is about 600 bytes of base64url). Filled once, before any token. */
static char b64url_pairs[4096][2];

static void fill_b64url_pairs(void)
{
	for (size_t i = 0; i < 4096; i++) {
		b64url_pairs[i][0] = b64url_alphabet[i >> 6];
		b64url_pairs[i][1] = b64url_alphabet[i & 63];
	}
}

static pthread_once_t once = PTHREAD_ONCE_INIT;

/* A forked child must not hand out the jtis its parent is about to use. */
static void jti_pool_drop(void)
{
	jti_pool.left = 0;
}

static void init_once(void)
{
	pthread_atfork(NULL, NULL, jti_pool_drop);
	fill_b64url_pairs();
}

static bool jti_random(unsigned char out[JTI_BYTES])
{
	if (jti_pool.left < JTI_BYTES) {
		if (RAND_bytes(jti_pool.bytes, sizeof jti_pool.bytes) != 1)
			return false;
		jti_pool.left = sizeof jti_pool.bytes;
	}
	memcpy(out, jti_pool.bytes + sizeof jti_pool.bytes - jti_pool.left, JTI_BYTES);
	jti_pool.left -= JTI_BYTES;
	return true;
}

static size_t base64url(char *dst, const unsigned char *src, size_t n)
{
	char *o = dst;
	size_t i = 0;
	for (; i + 3 <= n; i += 3) {
		uint32_t v = (uint32_t)src[i] << 16 | (uint32_t)src[i + 1] << 8 | src[i + 2];
		memcpy(o, b64url_pairs[v >> 12], 2);
		memcpy(o + 2, b64url_pairs[v & 4095], 2);
		o += 4;
	}
	if (n - i == 1) {
		uint32_t v = (uint32_t)src[i] << 16;
		*o++ = b64url_alphabet[v >> 18];
		*o++ = b64url_alphabet[v >> 12 & 63];
	} else if (n - i == 2) {
		uint32_t v = (uint32_t)src[i] << 16 | (uint32_t)src[i + 1] << 8;
		*o++ = b64url_alphabet[v >> 18];
		*o++ = b64url_alphabet[v >> 12 & 63];
		*o++ = b64url_alphabet[v >> 6 & 63];
	}
	return (size_t)(o - dst);
}

/* The payload under construction; the first append that does not fit clears ok and the
 * rest do nothing, so the formatting reads straight and is checked once. */
struct buf {
	char *p;
	size_t len, cap;
	bool ok;
};

static void put_raw(struct buf *b, const char *s, size_t n)
{
	if (!b->ok || b->cap - b->len < n) {
		b->ok = false;
		return;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
}

#define put_lit(b, lit) put_raw((b), (lit), sizeof(lit) - 1)

static void put_str(struct buf *b, const char *s)
{
	if (b->ok)
		b->ok = json_append_string(b->p, b->cap, &b->len, s);
}

static void put_i64(struct buf *b, int64_t v)
{
	char tmp[24];
	char *end = tmp + sizeof tmp, *p = end;
	uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
	do {
		*--p = (char)('0' + u % 10);
		u /= 10;
	} while (u);
	if (v < 0)
		*--p = '-';
	put_raw(b, p, (size_t)(end - p));
}

enum err tokens_signer_init(struct token_signer *ts, const char *api_key, const char *secret)
{
	struct token_signer s = {0};
	size_t json_len = 0, json_cap;

	if (!api_key || !*api_key || !secret || !*secret)
		return ERR_INVALID;
	pthread_once(&once, init_once);

	s.secret_len = strlen(secret);
	json_cap = 6 * strlen(api_key) + 3;
	s.api_key = strdup(api_key);
	s.api_key_json = malloc(json_cap);
	s.secret = malloc(s.secret_len);
	if (!s.api_key || !s.api_key_json || !s.secret) {
		tokens_signer_finish(&s);
		return ERR_NOMEM;
	}
	memcpy(s.secret, secret, s.secret_len);
	json_append_string(s.api_key_json, json_cap, &json_len, api_key);
	s.api_key_json[json_len] = '\0';
	hmac_sha256_key_init(&s.hmac, s.secret, s.secret_len);
	*ts = s;
	hmac_sha256_key_finish(&s.hmac); /* no keyed state left behind on the stack */
	return ERR_OK;
}

void tokens_signer_finish(struct token_signer *ts)
{
	free(ts->api_key);
	free(ts->api_key_json);
	OPENSSL_clear_free(ts->secret, ts->secret_len);
	hmac_sha256_key_finish(&ts->hmac);
	*ts = (struct token_signer){0};
}

enum err tokens_mint(const struct token_signer *ts, const struct token_request *req,
		     char out[TOKEN_MAX], size_t *ret_len)
{
	char payload[PAYLOAD_MAX];
	struct buf b = {.p = payload, .cap = sizeof payload, .ok = true};
	unsigned char jti[JTI_BYTES], mac[SHA256_LEN];
	char jti_b64[24];
	const char *name = req->name && *req->name ? req->name : req->identity;

	if (!req->identity || !*req->identity || !req->room || !*req->room)
		return ERR_INVALID;
	if (!jti_random(jti))
		return ERR_INTERNAL;
	size_t jti_len = base64url(jti_b64, jti, sizeof jti);

	put_lit(&b, "{\"iss\":");
	put_raw(&b, ts->api_key_json, strlen(ts->api_key_json));
	put_lit(&b, ",\"sub\":");
	put_str(&b, req->identity);
	put_lit(&b, ",\"name\":");
	put_str(&b, name);
	put_lit(&b, ",\"nbf\":");
	put_i64(&b, req->now_s);
	put_lit(&b, ",\"exp\":");
	put_i64(&b, req->now_s + req->ttl_s);
	put_lit(&b, ",\"jti\":\"");
	put_raw(&b, jti_b64, jti_len);
	put_lit(&b, "\",\"video\":{\"roomJoin\":true,\"room\":");
	put_str(&b, req->room);
	put_lit(&b, ",\"canPublish\":true,\"canSubscribe\":true,\"canPublishData\":true,"
		    "\"canPublishSources\":");
	if (req->kind == CALL_VIDEO)
		put_lit(&b, "[\"camera\",\"microphone\",\"screen_share\","
			    "\"screen_share_audio\"]}}");
	else
		put_lit(&b, "[\"microphone\"]}}");
	if (!b.ok)
		return ERR_INVALID;

	/* PAYLOAD_MAX guarantees that the rest fits. */
	size_t n = sizeof header_b64 - 1;
	memcpy(out, header_b64, n);
	out[n++] = '.';
	n += base64url(out + n, (const unsigned char *)payload, b.len);
	hmac_sha256(&ts->hmac, out, n, mac);
	out[n++] = '.';
	n += base64url(out + n, mac, sizeof mac);
	out[n] = '\0';
	*ret_len = n;
	return ERR_OK;
}

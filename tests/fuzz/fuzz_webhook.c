/* LiveKit webhook verification and parsing, as POST /webhooks/livekit runs them. The input is
 * a mode byte, a line, and a body. Mode 0: the line is the Authorization header as sent.
 * Mode 1: the line is the JWT's claims, signed here with the configured secret, so that the
 * claims are parsed and checked past the signature. Every body is also parsed as an event.
 * Every body, and in mode 1 the claims, is read by json_scan and by jansson, which must agree
 * (json_scan_oracle.h). */
#include <openssl/hmac.h>
#include <stdlib.h>
#include <string.h>

#include "json_scan_oracle.h"
#include "webhook.h"
#include "worker_stack.h"

#define KEY "APIfuzzkey"
#define SECRET "fuzz-secret-0123456789abcdef0123456789"
#define NOW_S 1767225600

static struct config cfg = {.api_key = {.key = KEY, .secret = SECRET}};
static struct webhook_keys keys;

static size_t b64url(const unsigned char *in, size_t n, char *out)
{
	static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	size_t o = 0;
	for (size_t i = 0; i < n; i += 3) {
		unsigned v = (unsigned)in[i] << 16 | (i + 1 < n ? (unsigned)in[i + 1] << 8 : 0) |
			     (i + 2 < n ? in[i + 2] : 0);
		out[o++] = a[v >> 18 & 63];
		out[o++] = a[v >> 12 & 63];
		if (i + 1 < n)
			out[o++] = a[v >> 6 & 63];
		if (i + 2 < n)
			out[o++] = a[v & 63];
	}
	return o;
}

/* header.claims.signature with the real secret; NULL when the claims are too long. */
static char *signed_token(const uint8_t *claims, size_t n)
{
	static const char header[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
	if (n > WEBHOOK_AUTH_MAX)
		return NULL;
	char *tok = malloc(2 * (sizeof header + n) + 64);
	if (!tok)
		return NULL;
	size_t len = b64url((const unsigned char *)header, sizeof header - 1, tok);
	tok[len++] = '.';
	len += b64url(claims, n, tok + len);
	unsigned char mac[32];
	unsigned int mac_len = 0;
	HMAC(EVP_sha256(), SECRET, sizeof SECRET - 1, (const unsigned char *)tok, len, mac,
	     &mac_len);
	tok[len++] = '.';
	len += b64url(mac, mac_len, tok + len);
	tok[len] = '\0';
	return tok;
}

static void one(const uint8_t *data, size_t size)
{
	if (size < 1)
		return;
	int mode = data[0] & 1;
	const uint8_t *line = data + 1;
	const uint8_t *nl = memchr(line, '\n', size - 1);
	size_t line_len = nl ? (size_t)(nl - line) : size - 1;
	const char *body = nl ? (const char *)nl + 1 : "";
	size_t body_len = nl ? size - 1 - line_len - 1 : 0;

	if (mode && !json_scan_agrees_with_jansson((const char *)line, line_len,
						   &json_scan_oracle_schema, JSON_SCAN_ORACLE_SLOTS,
						   NULL))
		abort();
	char *auth = mode ? signed_token(line, line_len) : strndup((const char *)line, line_len);
	const char *key_id = NULL, *why = NULL;
	enum err e = webhook_verify(&keys, auth, body, body_len, NOW_S, &key_id, &why);
	if (e == ERR_OK && (!key_id || strcmp(key_id, KEY) != 0))
		abort(); /* accepted under some other key */
	if (e != ERR_OK && e != ERR_UNAUTHENTICATED)
		abort();
	free(auth);

	struct webhook_event ev;
	e = webhook_event_parse(body, body_len, &ev);
	if (e == ERR_OK && (!ev.name[0] || !ev.id[0]))
		abort(); /* the dedupe key may never be empty */
	if (e != ERR_OK && e != ERR_INVALID && e != ERR_NOMEM)
		abort();
	if (!json_scan_agrees_with_jansson(body, body_len, &json_scan_oracle_schema,
					   JSON_SCAN_ORACLE_SLOTS, NULL))
		abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	if (webhook_keys_init(&keys, &cfg) != ERR_OK)
		abort();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_on_worker_stack(one, data, size);
	return 0;
}

/* LiveKit access tokens (LIVEKIT.md §1): HS256 JWTs with iss, sub, name, nbf, exp, a unique
 * jti and the video grant of the call. This is the hot path of POST /v1/calls/{id}/token, so
 * it formats the claims and signs them with one HMAC, without building JSON trees.
 * A token_signer is immutable after tokens_signer_init and safe to share between threads. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "model.h"
#include "sha256.h"

/* Big enough for the longest token: 128-byte identity and a 256-byte name, both fully
 * escaped, in base64url. */
#define TOKEN_MAX 4096

struct token_signer {
	char *api_key;        /* iss */
	char *api_key_json;   /* api_key as an escaped JSON string, with quotes */
	unsigned char *secret;
	size_t secret_len;
	struct hmac_sha256_key hmac; /* the secret absorbed once; read-only while minting */
};

/* ERR_INVALID for an empty key or secret, ERR_NOMEM; on failure *ts is left zeroed.
 * tokens_signer_finish accepts a zeroed signer. */
enum err tokens_signer_init(struct token_signer *ts, const char *api_key, const char *secret);
void tokens_signer_finish(struct token_signer *ts);

struct token_request {
	const char *identity; /* sub */
	const char *name;     /* name; NULL or "" = the identity */
	const char *room;
	enum call_kind kind;  /* picks canPublishSources */
	int64_t now_s;        /* nbf */
	int ttl_s;            /* exp = now_s + ttl_s */
};

/* Writes the NUL-terminated token into out (TOKEN_MAX bytes); *ret_len is its length.
 * ERR_INVALID for an empty identity or room or claims too long for TOKEN_MAX, ERR_INTERNAL
 * when OpenSSL cannot draw the jti. */
enum err tokens_mint(const struct token_signer *ts, const struct token_request *req,
		     char out[TOKEN_MAX], size_t *ret_len);

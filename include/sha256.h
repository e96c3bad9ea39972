/* SHA-256 and HMAC-SHA256 on the hot paths (a bearer token's digest, a LiveKit token's
 * signature) without OpenSSL 3's EVP layer, whose per-call context allocation and algorithm
 * fetch cost more than hashing a short input. A key is absorbed once into two plain states
 * that every caller copies onto its stack, so a keyed MAC needs no allocation and no
 * per-thread state, and one hmac_sha256_key is safe to share read-only between threads. */
#pragma once

#include <stddef.h>

#include <openssl/sha.h> /* SHA256_CTX: a plain struct, copied by assignment */

#define SHA256_LEN 32

struct hmac_sha256_key {
	SHA256_CTX inner; /* after absorbing key ^ ipad */
	SHA256_CTX outer; /* after absorbing key ^ opad */
};

void sha256(const void *data, size_t n, unsigned char ret_digest[SHA256_LEN]);

/* RFC 2104: a key longer than a block is hashed first. hmac_sha256_key_finish wipes the
 * states (they are as good as the key) and accepts a zeroed key. */
void hmac_sha256_key_init(struct hmac_sha256_key *k, const void *key, size_t key_len);
void hmac_sha256_key_finish(struct hmac_sha256_key *k);

void hmac_sha256(const struct hmac_sha256_key *k, const void *data, size_t n,
		 unsigned char ret_mac[SHA256_LEN]);

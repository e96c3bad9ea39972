/* SHA-256 and HMAC-SHA256 over OpenSSL's plain SHA256_CTX: see sha256.h for why not EVP.
 * The low-level SHA256_* functions are deprecated in OpenSSL 3.0, not removed; this file alone
 * calls them, so it alone asks for the 1.1.1 API. */
#define OPENSSL_API_COMPAT 10101
#include "sha256.h"

#include <string.h>

#include <openssl/crypto.h>

#define BLOCK 64

void sha256(const void *data, size_t n, unsigned char ret_digest[SHA256_LEN])
{
	SHA256_CTX c;
	SHA256_Init(&c);
	SHA256_Update(&c, data, n);
	SHA256_Final(ret_digest, &c);
}

static void absorb_pad(SHA256_CTX *c, const unsigned char k[BLOCK], unsigned char x)
{
	unsigned char pad[BLOCK];
	for (size_t i = 0; i < BLOCK; i++)
		pad[i] = k[i] ^ x;
	SHA256_Init(c);
	SHA256_Update(c, pad, sizeof pad);
	OPENSSL_cleanse(pad, sizeof pad);
}

void hmac_sha256_key_init(struct hmac_sha256_key *k, const void *key, size_t key_len)
{
	unsigned char block[BLOCK] = {0};
	if (key_len > BLOCK)
		sha256(key, key_len, block);
	else if (key_len)
		memcpy(block, key, key_len);
	absorb_pad(&k->inner, block, 0x36);
	absorb_pad(&k->outer, block, 0x5c);
	OPENSSL_cleanse(block, sizeof block);
}

void hmac_sha256_key_finish(struct hmac_sha256_key *k)
{
	if (k)
		OPENSSL_cleanse(k, sizeof *k);
}

void hmac_sha256(const struct hmac_sha256_key *k, const void *data, size_t n,
		 unsigned char ret_mac[SHA256_LEN])
{
	unsigned char inner[SHA256_LEN];
	SHA256_CTX c = k->inner;
	SHA256_Update(&c, data, n);
	SHA256_Final(inner, &c);
	c = k->outer;
	SHA256_Update(&c, inner, sizeof inner);
	SHA256_Final(ret_mac, &c);
	OPENSSL_cleanse(&c, sizeof c);
}

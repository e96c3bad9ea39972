/* Unit tests of sha256.c: RFC 4231's HMAC-SHA256 vectors, and agreement with OpenSSL's one-shot
 * HMAC() and EVP SHA-256 over every key length around the block size, with one key shared by
 * threads. */
#include <criterion/criterion.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pthread.h>
#include <string.h>

#include "sha256.h"

/* out holds 2n + 1 bytes. */
static void hex(const unsigned char *b, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[b[i] >> 4];
		out[2 * i + 1] = digits[b[i] & 15];
	}
	out[2 * n] = '\0';
}

static void check_hmac_hex(const void *key, size_t key_len, const void *data, size_t n,
			   const char *want)
{
	struct hmac_sha256_key k;
	unsigned char mac[SHA256_LEN];
	char got[2 * SHA256_LEN + 1];
	hmac_sha256_key_init(&k, key, key_len);
	hmac_sha256(&k, data, n, mac);
	hmac_sha256_key_finish(&k);
	hex(mac, sizeof mac, got);
	cr_assert_str_eq(got, want);
}

Test(sha256, rfc4231_vectors)
{
	unsigned char k1[20], k3[20], d3[50], k6[131];
	memset(k1, 0x0b, sizeof k1);
	memset(k3, 0xaa, sizeof k3);
	memset(d3, 0xdd, sizeof d3);
	memset(k6, 0xaa, sizeof k6);
	check_hmac_hex(k1, sizeof k1, "Hi There", 8,
		       "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
	check_hmac_hex("Jefe", 4, "what do ya want for nothing?", 28,
		       "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
	check_hmac_hex(k3, sizeof k3, d3, sizeof d3,
		       "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe");
	/* Case 6: a key longer than a block is hashed first. */
	check_hmac_hex(k6, sizeof k6, "Test Using Larger Than Block-Size Key - Hash Key First", 54,
		       "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
}

Test(sha256, digest_vectors)
{
	unsigned char d[SHA256_LEN];
	char got[2 * SHA256_LEN + 1];
	sha256("", 0, d);
	hex(d, sizeof d, got);
	cr_assert_str_eq(got, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	sha256("abc", 3, d);
	hex(d, sizeof d, got);
	cr_assert_str_eq(got, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

/* Every key length from 0 to 3 blocks and data lengths across block and padding edges. */
Test(sha256, agrees_with_openssl_one_shot)
{
	unsigned char key[200], data[300];
	for (size_t i = 0; i < sizeof key; i++)
		key[i] = (unsigned char)(i * 7 + 3);
	for (size_t i = 0; i < sizeof data; i++)
		data[i] = (unsigned char)(i * 13 + 1);
	static const size_t lens[] = {0, 1, 55, 56, 63, 64, 65, 119, 120, 128, 300};
	for (size_t key_len = 0; key_len <= 192; key_len++) {
		struct hmac_sha256_key k;
		hmac_sha256_key_init(&k, key, key_len);
		for (size_t j = 0; j < sizeof lens / sizeof lens[0]; j++) {
			unsigned char got[SHA256_LEN], want[SHA256_LEN];
			unsigned int want_len = 0;
			hmac_sha256(&k, data, lens[j], got);
			cr_assert(HMAC(EVP_sha256(), key, (int)key_len, data, lens[j], want,
				       &want_len));
			cr_assert_eq(want_len, SHA256_LEN);
			cr_assert_arr_eq(got, want, SHA256_LEN, "key %zu bytes, data %zu bytes",
					 key_len, lens[j]);
			sha256(data, lens[j], got);
			cr_assert(EVP_Digest(data, lens[j], want, NULL, EVP_sha256(), NULL));
			cr_assert_arr_eq(got, want, SHA256_LEN, "digest of %zu bytes", lens[j]);
		}
		hmac_sha256_key_finish(&k);
	}
}

Test(sha256, finish_wipes_and_accepts_null)
{
	struct hmac_sha256_key k, zero;
	memset(&zero, 0, sizeof zero);
	hmac_sha256_key_init(&k, "secret", 6);
	cr_assert(memcmp(&k, &zero, sizeof k) != 0);
	hmac_sha256_key_finish(&k);
	cr_assert(memcmp(&k, &zero, sizeof k) == 0);
	hmac_sha256_key_finish(NULL);
}

/* Two keys, each used by two threads at once: a MAC must never depend on another thread's
 * use of the shared, read-only states. */
struct job {
	const struct hmac_sha256_key *k;
	const char *secret;
	int bad;
};

static void *mac_many(void *arg)
{
	struct job *j = arg;
	for (int i = 0; i < 2000; i++) {
		char msg[32];
		int n = snprintf(msg, sizeof msg, "message %d", i);
		unsigned char got[SHA256_LEN], want[SHA256_LEN];
		hmac_sha256(j->k, msg, (size_t)n, got);
		HMAC(EVP_sha256(), j->secret, (int)strlen(j->secret), (unsigned char *)msg,
		     (size_t)n, want, NULL);
		j->bad += memcmp(got, want, sizeof got) != 0;
	}
	return NULL;
}

Test(sha256, keys_shared_by_threads)
{
	static const char *const secrets[] = {"first-secret", "second-secret-longer-than-that"};
	struct hmac_sha256_key keys[2];
	struct job jobs[4];
	pthread_t t[4];
	for (int i = 0; i < 2; i++)
		hmac_sha256_key_init(&keys[i], secrets[i], strlen(secrets[i]));
	for (int i = 0; i < 4; i++) {
		jobs[i] = (struct job){&keys[i % 2], secrets[i % 2], 0};
		cr_assert_eq(pthread_create(&t[i], NULL, mac_many, &jobs[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		cr_assert_eq(jobs[i].bad, 0, "thread %d", i);
	}
	for (int i = 0; i < 2; i++)
		hmac_sha256_key_finish(&keys[i]);
}

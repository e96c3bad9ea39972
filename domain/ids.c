/* UUIDv7 ids (RFC 9562 §5.7) made strictly increasing by §6.2 method 2: the 74 bits after the
 * version and variant are one counter, reseeded at random on each new millisecond and bumped
 * by one within a millisecond or when the clock steps back. One mutex guards that state. */
#include "ids.h"

#include <pthread.h>
#include <openssl/rand.h>

#define TS_MAX ((INT64_C(1) << 48) - 1)
#define LO_BITS 62 /* rand_b; rand_a holds the counter's top 12 bits */

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int64_t last_ms = -1;
static uint16_t counter_hi; /* 12 bits */
static uint64_t counter_lo; /* 62 bits */

/* Random counter with its top bit clear, so at least 2^73 ids fit in the millisecond. */
static void reseed(void)
{
	unsigned char b[10];
	/* A failed RAND_bytes leaves a zero counter: ids stay unique and increasing, only less
	 * unguessable, which beats failing every request that needs an id. */
	if (RAND_bytes(b, sizeof b) != 1) {
		for (size_t i = 0; i < sizeof b; i++)
			b[i] = 0;
	}
	counter_hi = (uint16_t)(((b[0] << 8) | b[1]) & 0x7ff);
	uint64_t lo = 0;
	for (int i = 2; i < 10; i++)
		lo = lo << 8 | b[i];
	counter_lo = lo >> (64 - LO_BITS);
}

static void next(int64_t now_ms)
{
	if (now_ms > last_ms) {
		last_ms = now_ms;
		reseed();
		return;
	}
	if (++counter_lo < UINT64_C(1) << LO_BITS)
		return;
	counter_lo = 0;
	if (++counter_hi < 1u << 12)
		return;
	/* 2^73 ids in one millisecond: borrow the next one, as §6.2 allows. */
	last_ms++;
	reseed();
}

void ids_uuidv7(int64_t now_ms, char out[ID_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char b[16];

	if (now_ms < 0)
		now_ms = 0;
	if (now_ms > TS_MAX)
		now_ms = TS_MAX;

	pthread_mutex_lock(&lock);
	next(now_ms);
	uint64_t ms = (uint64_t)last_ms;
	unsigned hi = counter_hi;
	uint64_t lo = counter_lo;
	pthread_mutex_unlock(&lock);

	for (int i = 0; i < 6; i++)
		b[i] = (unsigned char)(ms >> (40 - 8 * i));
	b[6] = (unsigned char)(0x70 | hi >> 8);
	b[7] = (unsigned char)hi;
	b[8] = (unsigned char)(0x80 | lo >> 56);
	for (int i = 9; i < 16; i++)
		b[i] = (unsigned char)(lo >> (8 * (15 - i)));

	char *o = out;
	for (int i = 0; i < 16; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			*o++ = '-';
		*o++ = hex[b[i] >> 4];
		*o++ = hex[b[i] & 0xf];
	}
	*o = '\0';
}

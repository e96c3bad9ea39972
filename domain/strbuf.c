/* Appends to a bounded buffer without snprintf: see strbuf.h. */
#include "strbuf.h"

static void put_digits(struct strbuf *b, uint64_t v, unsigned base, int min_digits)
{
	static const char alphabet[] = "0123456789abcdef";
	char digits[20];
	char *end = digits + sizeof digits, *p = end;
	do {
		*--p = alphabet[v % base];
		v /= base;
	} while (v || (end - p < min_digits && p > digits));
	strbuf_put(b, p, (size_t)(end - p));
}

void strbuf_u64(struct strbuf *b, uint64_t v, int min_digits)
{
	put_digits(b, v, 10, min_digits);
}

void strbuf_i64(struct strbuf *b, int64_t v)
{
	if (v < 0)
		strbuf_lit(b, "-");
	put_digits(b, v < 0 ? 0 - (uint64_t)v : (uint64_t)v, 10, 1);
}

void strbuf_hex(struct strbuf *b, uint64_t v, int min_digits)
{
	put_digits(b, v, 16, min_digits);
}

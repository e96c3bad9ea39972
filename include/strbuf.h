/* Text put together by hand into a caller's buffer, for lines written on every request (an
 * answer's head, its log line), where snprintf's format parsing cost more than the copying.
 * An append that does not fit is cut at cap and sets cut; nothing is NUL-terminated. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct strbuf {
	char *p;
	size_t len, cap;
	bool cut;
};

#define STRBUF_INIT(buf, size) ((struct strbuf){.p = (buf), .cap = (size)})

/* Inline: a head or a log line is a dozen short appends. */
static inline void strbuf_put(struct strbuf *b, const char *s, size_t n)
{
	if (n > b->cap - b->len) {
		n = b->cap - b->len;
		b->cut = true;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
}

static inline void strbuf_puts(struct strbuf *b, const char *s)
{
	strbuf_put(b, s, strlen(s));
}

#define strbuf_lit(b, lit) strbuf_put((b), (lit), sizeof(lit) - 1)
/* Decimal as printf's %lld; decimal and lowercase hexadecimal with at least min_digits digits
 * (up to 20), zero-padded, as %0*llu and %0*llx. */
void strbuf_i64(struct strbuf *b, int64_t v);
void strbuf_u64(struct strbuf *b, uint64_t v, int min_digits);
void strbuf_hex(struct strbuf *b, uint64_t v, int min_digits);

/* logfmt lines on stderr, one write(2) per line so concurrent threads never interleave.
 * Never pass a secret or a token to these functions. */
#pragma once

#include <stddef.h>

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

/* The longest line, newline included; longer ones are cut. */
#define LOG_LINE_MAX 2048

/* Writes "ts=<RFC 3339> level=<level> " followed by the formatted key=value pairs and "\n". */
void log_write(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The same line with text[0..len), key=value pairs formatted by the caller, after the prefix:
 * for a line on every request, where vsnprintf would cost more than the rest of the line. */
void log_write_text(enum log_level level, const char *text, size_t len);
/* s as a logfmt value: quoted and escaped when it has spaces, quotes, '=' or control bytes.
 * Returns buf; truncates to cap. */
const char *log_value(char *buf, size_t cap, const char *s);

/* logfmt lines on stderr, one write(2) per line so concurrent threads never interleave.
 * Never pass a secret or a token to these functions. */
#pragma once

#include <stddef.h>

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

/* The longest line, newline included; longer ones are cut. */
#define LOG_LINE_MAX 2048

/* The longest request id a line names. */
#define LOG_REQUEST_ID_MAX 128
/* Names the request this thread serves in every line it writes until log_request_end, so
 * that a storage error met on the way names its request too. request_id must be a logfmt
 * value as it is (printable, no spaces, quotes or backslashes) and outlive the request. */
void log_request_begin(const char *request_id);
void log_request_end(void);
/* The request this thread serves, NULL for none: for work it hands to another thread. */
const char *log_request_current(void);

/* Writes "ts=<RFC 3339> level=<level> [request_id=<id>] " followed by the formatted key=value
 * pairs and "\n". */
void log_write(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The same line with text[0..len), key=value pairs formatted by the caller, after the prefix:
 * for a line on every request, where vsnprintf would cost more than the rest of the line. */
void log_write_text(enum log_level level, const char *text, size_t len);
/* s as a logfmt value: quoted and escaped when it has spaces, quotes, '=' or control bytes.
 * Returns buf; truncates to cap. */
const char *log_value(char *buf, size_t cap, const char *s);

/* logfmt output: the line is formatted in a stack buffer and written with one write(2). */
#include "log.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "timefmt.h"

static const char *const level_names[] = {"debug", "info", "warn", "error"};

static _Thread_local const char *current_request;

void log_request_begin(const char *request_id)
{
	current_request = request_id;
}

void log_request_end(void)
{
	current_request = NULL;
}

const char *log_request_current(void)
{
	return current_request;
}

/* "ts=<time> level=<level> [request_id=<id>] " at the start of line (which has room for it:
 * ids are short); returns its length. */
static size_t line_prefix(char *line, enum log_level level)
{
	static const char ts[] = "ts=", lvl[] = " level=", rid[] = "request_id=";
	size_t n = 0, name_len = strlen(level_names[level]);
	memcpy(line, ts, sizeof ts - 1);
	n += sizeof ts - 1;
	timefmt_format(clock_now_ms(&clock_system), line + n);
	n += TIMEFMT_LEN;
	memcpy(line + n, lvl, sizeof lvl - 1);
	n += sizeof lvl - 1;
	memcpy(line + n, level_names[level], name_len);
	n += name_len;
	line[n++] = ' ';
	if (current_request) {
		size_t id_len = strnlen(current_request, LOG_REQUEST_ID_MAX);
		memcpy(line + n, rid, sizeof rid - 1);
		n += sizeof rid - 1;
		memcpy(line + n, current_request, id_len);
		n += id_len;
		line[n++] = ' ';
	}
	return n;
}

/* Ends the line of len bytes (cut to fit, cap >= 2) with a newline and writes it at once. */
static void line_write(char *line, size_t len, size_t cap)
{
	if (len > cap - 2)
		len = cap - 2;
	line[len++] = '\n';
	ssize_t w = write(STDERR_FILENO, line, len);
	(void)w; /* nowhere left to report a failed log write */
}

void log_write(enum log_level level, const char *fmt, ...)
{
	char line[LOG_LINE_MAX];
	size_t n = line_prefix(line, level);
	va_list ap;
	va_start(ap, fmt);
	int m = vsnprintf(line + n, sizeof line - n - 1, fmt, ap);
	va_end(ap);
	line_write(line, n + (m < 0 ? 0 : (size_t)m), sizeof line);
}

void log_write_text(enum log_level level, const char *text, size_t len)
{
	char line[LOG_LINE_MAX];
	size_t n = line_prefix(line, level);
	if (len > sizeof line - n - 2)
		len = sizeof line - n - 2;
	memcpy(line + n, text, len);
	line_write(line, n + len, sizeof line);
}

const char *log_value(char *buf, size_t cap, const char *s)
{
	bool quote = !*s;
	for (const char *p = s; *p && !quote; p++)
		quote = *p <= ' ' || *p == '"' || *p == '=' || *p == '\\' || *p == 0x7f;
	if (!quote) {
		size_t len = strnlen(s, cap - 1);
		memcpy(buf, s, len);
		buf[len] = '\0';
		return buf;
	}
	size_t o = 0;
	if (cap < 3) {
		buf[0] = 0;
		return buf;
	}
	buf[o++] = '"';
	for (const unsigned char *p = (const unsigned char *)s; *p && o + 5 < cap; p++) {
		if (*p == '"' || *p == '\\') {
			buf[o++] = '\\';
			buf[o++] = (char)*p;
		} else if (*p < ' ' || *p == 0x7f) {
			o += (size_t)snprintf(buf + o, cap - o, "\\x%02x", *p);
		} else {
			buf[o++] = (char)*p;
		}
	}
	buf[o++] = '"';
	buf[o] = 0;
	return buf;
}

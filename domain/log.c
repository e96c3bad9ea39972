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

void log_write(enum log_level level, const char *fmt, ...)
{
	char line[2048];
	char ts[TIMEFMT_LEN + 1];
	timefmt_format(clock_now_ms(&clock_system), ts);
	int n = snprintf(line, sizeof line, "ts=%s level=%s ", ts, level_names[level]);
	va_list ap;
	va_start(ap, fmt);
	int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
	va_end(ap);
	size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
	if (len > sizeof line - 2)
		len = sizeof line - 2;
	line[len++] = '\n';
	ssize_t w = write(STDERR_FILENO, line, len);
	(void)w; /* nowhere left to report a failed log write */
}

const char *log_value(char *buf, size_t cap, const char *s)
{
	bool quote = !*s;
	for (const char *p = s; *p && !quote; p++)
		quote = *p <= ' ' || *p == '"' || *p == '=' || *p == '\\' || *p == 0x7f;
	if (!quote) {
		snprintf(buf, cap, "%s", s);
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

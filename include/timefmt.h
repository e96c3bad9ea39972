/* RFC 3339 UTC timestamps with milliseconds, the API's only time format. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#define TIMEFMT_LEN 24 /* "2026-11-25T03:00:00.123Z" */

/* Writes TIMEFMT_LEN chars and a NUL. */
void timefmt_format(int64_t unix_ms, char out[TIMEFMT_LEN + 1]);
/* Accepts RFC 3339 date-times with any offset and 0–9 fraction digits; false if invalid. */
bool timefmt_parse(const char *s, int64_t *ret_unix_ms);

/* Small JSON text helpers for hand-formatted hot-path output (tokens, responses). */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/* Append s as a JSON string literal (with quotes) at out[*len]; false if it would not fit in
 * cap (out is then unchanged past *len). Escapes ", \ and control characters; UTF-8 passes. */
bool json_append_string(char *out, size_t cap, size_t *len, const char *s);

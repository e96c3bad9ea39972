/* The error table: one row per enum err, mapping it to HTTP and to the public code. */
#include "err.h"

static const struct {
	int status;
	const char *code;
	const char *message;
} err_table[] = {
	[ERR_OK] = {200, "ok", "ok"},
	[ERR_INVALID] = {400, "bad_request", "the request is invalid"},
	[ERR_UNAUTHENTICATED] = {401, "unauthorized", "missing or unknown bearer token"},
	[ERR_FORBIDDEN] = {403, "forbidden", "not allowed"},
	[ERR_NOT_FOUND] = {404, "not_found", "not found"},
	[ERR_METHOD] = {405, "method_not_allowed", "the method is not allowed on this path"},
	[ERR_TIMEOUT] = {408, "request_timeout", "the request did not arrive in time"},
	[ERR_CONFLICT] = {409, "conflict", "conflicts with the current state"},
	[ERR_TOO_LARGE] = {413, "payload_too_large", "the request body is too large"},
	[ERR_UNSUPPORTED_TYPE] = {415, "unsupported_media_type",
				  "the request body must be application/json"},
	[ERR_UNAVAILABLE] = {503, "unavailable", "storage is unavailable, retry later"},
	[ERR_NOMEM] = {500, "internal", "internal error"},
	[ERR_INTERNAL] = {500, "internal", "internal error"},
};

static unsigned err_index(enum err e)
{
	unsigned i = (unsigned)e;
	return i < sizeof err_table / sizeof err_table[0] ? i : (unsigned)ERR_INTERNAL;
}

int err_http_status(enum err e)
{
	return err_table[err_index(e)].status;
}

const char *err_code(enum err e)
{
	return err_table[err_index(e)].code;
}

const char *err_message(enum err e)
{
	return err_table[err_index(e)].message;
}

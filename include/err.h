/* The one closed error enum of callstate. Every layer returns these; the HTTP layer maps them
 * to a status and a public code with err_http_status()/err_code(). Driver or library text never
 * travels in an enum err: callers log details, clients only see the code and a safe message. */
#pragma once

enum err {
	ERR_OK = 0,
	ERR_INVALID,          /* 400 bad_request */
	ERR_UNAUTHENTICATED,  /* 401 unauthorized */
	ERR_FORBIDDEN,        /* 403 forbidden */
	ERR_NOT_FOUND,        /* 404 not_found */
	ERR_METHOD,           /* 405 method_not_allowed: a known path, another method */
	ERR_TIMEOUT,          /* 408 request_timeout: the request did not arrive in time */
	ERR_CONFLICT,         /* 409 conflict */
	ERR_TOO_LARGE,        /* 413 payload_too_large */
	ERR_UNSUPPORTED_TYPE, /* 415 unsupported_media_type */
	ERR_UNAVAILABLE,      /* 503 unavailable: storage busy, down or full; the client may retry */
	ERR_NOMEM,            /* 500 internal */
	ERR_INTERNAL,         /* 500 internal */
};

int err_http_status(enum err e);
/* The public error.code string, e.g. "not_found". */
const char *err_code(enum err e);
/* A safe default message for e, used when the caller has no more precise one. */
const char *err_message(enum err e);

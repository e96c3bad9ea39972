/* One HTTP request as the handlers see it, and the ways to answer it. Every answer is built in
 * one buffer (status line, headers, body) and sent with one mg_write: on CivetWeb 1.15 that is
 * about 4x faster than its header helpers, which send each header line separately. */
#pragma once

#include <civetweb.h>
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "app.h"
#include "err.h"
#include "json_scan.h"
#include "log.h"
#include "model.h"
#include "uri.h"

#define REQUEST_ID_MAX LOG_REQUEST_ID_MAX
#define PATH_PARAM_MAX USER_ID_MAX /* decoded bytes; longer sets param_too_long */
#define LOG_FIELDS_MAX 1024

struct req {
	struct mg_connection *conn;
	const struct mg_request_info *ri;
	const struct app *app;
	const char *route;                     /* the route pattern, for logs */
	int route_slot;                        /* for GET /metrics: see router.h */
	char request_id[REQUEST_ID_MAX + 1];
	char param[PATH_PARAM_MAX + 1];        /* the {id} or {user} of the path, decoded */
	bool param_too_long;
	bool param_invalid;                    /* malformed, %00, '/', '\\', "." or ".." */
	int64_t start_us;                      /* CLOCK_MONOTONIC: when the worker took it */
	int64_t body_deadline_ns;              /* CLOCK_MONOTONIC: the body must be in by then */
	bool body_read;                        /* the whole body was consumed */
	bool must_close;                       /* answer with Connection: close, then close */
	bool unsent;                           /* the answer could not be written whole */
	const char *allow;                     /* the Allow header of a 405 */
	int status;                            /* what was answered, for the log */
	enum role role;
	/* Fields a route adds to the request's one log line (" key=value ...", escaped). */
	char log_fields[LOG_FIELDS_MAX];
};

/* Answer with a body of content_type; returns the status for CivetWeb. */
int reply_typed(struct req *r, int status, const char *content_type, const char *body,
		size_t len);
/* Answer with a JSON body (already serialized); returns the status for CivetWeb. */
int reply_json(struct req *r, int status, const char *body, size_t len);
/* Answer {"error":{"code","message"}}; msg NULL uses the error's default message. */
int reply_error(struct req *r, enum err e, const char *msg);
/* reply_error, with msg left out of a 5xx: a 5xx never explains internals. */
int reply_refusal(struct req *r, enum err e, const char *msg);
/* Answer a jansson value (stolen) with status. */
int reply_json_value(struct req *r, int status, json_t *value);

/* A 200 answer of unknown length, sent with chunked transfer encoding in chunks of
 * REPLY_STREAM_CHUNK bytes, so memory stays the same however long it is. Once begun the
 * status is sent: a failure later calls reply_stream_abort, which closes the connection
 * without the terminating chunk, so that the client sees a truncated transfer and never a
 * short body that looks complete. */
#define REPLY_STREAM_CHUNK 65536
struct reply_stream {
	struct req *r;
	char *buf;   /* owned until end or abort */
	size_t len;  /* buffered bytes */
	uint64_t flushed; /* bytes of body handed to the connection */
	bool broken; /* a write failed: the client is gone */
};
/* Sends the head (with the extra header lines, each ending in CRLF); false for ERR_NOMEM,
 * when nothing was sent and the caller still answers. */
bool reply_stream_begin(struct req *r, struct reply_stream *s, const char *content_type,
			const char *extra);
/* Buffers n bytes, sending each full chunk; false once the client is gone. */
bool reply_stream_write(struct reply_stream *s, const char *p, size_t n);
/* The body's length so far, to drop what follows it with reply_stream_rewind (a record that
 * could not be completed); false when part of it has been sent already. */
uint64_t reply_stream_mark(const struct reply_stream *s);
bool reply_stream_rewind(struct reply_stream *s, uint64_t mark);
/* Sends the rest and the terminating chunk; false if the client was gone. */
bool reply_stream_end(struct reply_stream *s);
void reply_stream_abort(struct reply_stream *s);

/* ERR_UNAUTHENTICATED or ERR_FORBIDDEN unless the bearer token has at least role need. */
enum err req_auth(struct req *r, enum role need);
/* Read and parse the JSON body. 415 for another content type, 413 over the limit, 400 for
 * invalid JSON (or nested deeper than JSON_MAX_DEPTH) or (required) a missing body, and the
 * errors of req_raw_body. *ret_json is NULL for an absent optional body. */
enum err req_json_body(struct req *r, bool required, json_t **ret_json, const char **ret_msg);
/* req_json_body's checks and refusals without a jansson tree: json_scan extracts the members
 * root names into values (all JSON_SCAN_ABSENT for an absent optional body). The values point
 * into *ret_buf (NULL without a body), which the caller frees after them. */
enum err req_json_scan_body(struct req *r, bool required, const struct json_scan_object *root,
			    struct json_scan_value *values, size_t n_values, char **ret_buf,
			    const char **ret_msg);
/* Read the raw body, at most the configured limit, by the request's body deadline. The caller
 * frees *ret_buf. ERR_TOO_LARGE beyond the limit; ERR_TIMEOUT when it did not arrive in time;
 * ERR_INVALID (*ret_msg set) when the connection ended before the body did. Nothing short of
 * the whole body is ever returned. */
enum err req_raw_body(struct req *r, char **ret_buf, size_t *ret_len, const char **ret_msg);
/* A query parameter, decoded, the n-th occurrence: its length, or URI_ABSENT, URI_TOO_LONG,
 * URI_INVALID (see uri.h). */
int req_query(const struct req *r, const char *name, int n, char *buf, size_t cap);
/* An RFC 3339 query parameter as Unix ms; *ret is left as it is when absent, ERR_INVALID when
 * malformed. */
enum err req_query_time(const struct req *r, const char *name, int64_t *ret);
/* The value of a request header, or NULL. */
const char *req_header(const struct req *r, const char *name);

/* API.md user ids: 1–128 bytes of UTF-8 without control characters. */
bool valid_user_id(const char *s);

/* The 400 message of a path parameter that route_param() marked invalid. */
#define PATH_SEGMENT_MSG(name)                                                                     \
	name ": a path segment must not hold a malformed escape, %00, '/' or '\\', nor be . or .."
/* The {id} of /v1/calls/{id}/…: ERR_INVALID for a malformed one, ERR_NOT_FOUND for one that
 * cannot name a call, with *ret_msg. */
enum err req_call_id_param(const struct req *r, const char **ret_msg);
/* The {user} of the path: ERR_INVALID with *ret_msg unless it is a valid user id. */
enum err req_user_param(const struct req *r, const char **ret_msg);

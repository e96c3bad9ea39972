/* Request reading and answer writing shared by every handler: auth, bounded JSON bodies,
 * query parameters, and single-write responses carrying X-Request-Id. */
#include "http.h"
#include "server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "deadline.h"
#include "json_scan.h"
#include "jsonutil.h"
#include "metrics_http.h"
#include "strbuf.h"
#include "timefmt.h"

static const char *reason_phrase(int status)
{
	switch (status) {
	case 200: return "OK";
	case 201: return "Created";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 409: return "Conflict";
	case 413: return "Payload Too Large";
	case 415: return "Unsupported Media Type";
	case 503: return "Service Unavailable";
	default: return "Internal Server Error";
	}
}

static enum err read_body(struct req *r, long max, char **ret_buf, size_t *ret_len,
			  const char **ret_msg);

/* A body the handler did not read (it refused the request first) is read and dropped here,
 * by the same deadline: after the answer CivetWeb would drain it itself, for as long as the
 * client cares to trickle it. One that cannot be read in time, or is over the limit, ends the
 * connection instead (read_body sets must_close). */
static void drop_unread_body(struct req *r)
{
	bool unread = !r->body_read && (r->ri->content_length > 0 ||
					(r->ri->content_length < 0 &&
					 req_header(r, "Transfer-Encoding")));
	if (!unread || r->must_close)
		return;
	char *buf = NULL;
	size_t len = 0;
	const char *msg = NULL;
	if (read_body(r, r->app->cfg->max_body_bytes, &buf, &len, &msg) == ERR_OK)
		free(buf);
}

/* The status line and headers; framing is the Content-Length or Transfer-Encoding line. By
 * hand: snprintf cost more than the rest of a token's answer. */
static int format_head(struct req *r, int status, const char *content_type, const char *framing,
		       const char *extra, char *buf, size_t cap)
{
	struct strbuf h = STRBUF_INIT(buf, cap);
	drop_unread_body(r);
	strbuf_lit(&h, "HTTP/1.1 ");
	strbuf_i64(&h, status);
	strbuf_lit(&h, " ");
	strbuf_puts(&h, reason_phrase(status));
	strbuf_lit(&h, "\r\nContent-Type: ");
	strbuf_puts(&h, content_type);
	strbuf_lit(&h, "\r\n");
	strbuf_puts(&h, framing);
	strbuf_lit(&h, "\r\nX-Request-Id: ");
	strbuf_puts(&h, r->request_id);
	strbuf_lit(&h, "\r\nCache-Control: no-store\r\n");
	if (status == 401)
		strbuf_lit(&h, "WWW-Authenticate: Bearer\r\n");
	if (status == 405 && r->allow) {
		strbuf_lit(&h, "Allow: ");
		strbuf_puts(&h, r->allow);
		strbuf_lit(&h, "\r\n");
	}
	if (!r->must_close && server_stopping(r->conn))
		r->must_close = true; /* the connection's next request would be refused */
	if (r->must_close)
		strbuf_lit(&h, "Connection: close\r\n");
	strbuf_puts(&h, extra);
	strbuf_lit(&h, "\r\n");
	return (int)h.len;
}

/* An answer that could not be written whole (the client stopped reading, and the write timed
 * out) ends its connection: CivetWeb would otherwise go on to the next request pipelined
 * behind it and block on its answer again, holding the worker for as long as the client
 * keeps sending. */
static void write_answer(struct req *r, const char *p, size_t len)
{
	if (mg_write(r->conn, p, len) != (int)len)
		r->must_close = r->unsent = true;
}

int reply_typed(struct req *r, int status, const char *content_type, const char *body,
		size_t len)
{
	char head[640], framing[48];
	struct strbuf f = STRBUF_INIT(framing, sizeof framing - 1);
	strbuf_lit(&f, "Content-Length: ");
	strbuf_u64(&f, len, 1);
	framing[f.len] = '\0';
	int n = format_head(r, status, content_type, framing, "", head, sizeof head);
	/* HEAD: the same head, no body (RFC 9110 §9.3.2). */
	if (r->ri->request_method && strcmp(r->ri->request_method, "HEAD") == 0)
		len = 0;
	char stackbuf[8192];
	size_t total = (size_t)n + len;
	char *buf = total <= sizeof stackbuf ? stackbuf : malloc(total);
	r->status = status;
	/* Counted before the answer leaves, so that a client that has it sees it counted. */
	metrics_http_request(r, monotonic_ns() / 1000 - r->start_us);
	if (!buf) {
		/* Out of memory for a large body: two writes still answer correctly. */
		write_answer(r, head, (size_t)n);
		if (!r->unsent)
			write_answer(r, body, len);
		return status;
	}
	memcpy(buf, head, (size_t)n);
	memcpy(buf + n, body, len);
	write_answer(r, buf, total);
	if (buf != stackbuf)
		free(buf);
	return status;
}

int reply_json(struct req *r, int status, const char *body, size_t len)
{
	return reply_typed(r, status, "application/json; charset=utf-8", body, len);
}

int reply_json_value(struct req *r, int status, json_t *value)
{
	char *text = value ? json_dumps(value, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
	json_decref(value);
	if (!text)
		return reply_error(r, ERR_NOMEM, NULL);
	int rc = reply_json(r, status, text, strlen(text));
	free(text);
	return rc;
}

int reply_refusal(struct req *r, enum err e, const char *msg)
{
	if (e == ERR_UNAVAILABLE || e == ERR_INTERNAL || e == ERR_NOMEM)
		msg = NULL; /* a 5xx never explains internals */
	return reply_error(r, e, msg);
}

enum err req_call_id_param(const struct req *r, const char **ret_msg)
{
	if (r->param_invalid) {
		*ret_msg = PATH_SEGMENT_MSG("id");
		return ERR_INVALID;
	}
	if (r->param_too_long || strlen(r->param) != ID_LEN) {
		*ret_msg = "no such call";
		return ERR_NOT_FOUND;
	}
	return ERR_OK;
}

int reply_error(struct req *r, enum err e, const char *msg)
{
	json_t *body = json_pack("{s:{s:s, s:s}}", "error", "code", err_code(e), "message",
				 msg ? msg : err_message(e));
	char *text = body ? json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
	json_decref(body);
	int status = err_http_status(e);
	if (!text) {
		static const char fallback[] =
			"{\"error\":{\"code\":\"internal\",\"message\":\"internal error\"}}";
		return reply_json(r, 500, fallback, sizeof fallback - 1);
	}
	int rc = reply_json(r, status, text, strlen(text));
	free(text);
	return rc;
}

const char *req_header(const struct req *r, const char *name)
{
	return mg_get_header(r->conn, name);
}

enum err req_auth(struct req *r, enum role need)
{
	r->role = auth_role(&r->app->auth, req_header(r, "Authorization"));
	if (r->role == ROLE_NONE)
		return ERR_UNAUTHENTICATED;
	return r->role >= need ? ERR_OK : ERR_FORBIDDEN;
}

static const char *skip_blanks(const char *p)
{
	return p + strspn(p, " \t");
}

/* application/json, in UTF-8 (RFC 8259 §8.1): a charset parameter must name it; other
 * parameters are ignored. */
static bool is_json_type(const char *ct)
{
	static const char json[] = "application/json";
	if (!ct || strncasecmp(ct, json, sizeof json - 1) != 0)
		return false;
	const char *p = skip_blanks(ct + sizeof json - 1);
	while (*p == ';') {
		p = skip_blanks(p + 1);
		size_t name_len = strcspn(p, "=; \t");
		bool charset = name_len == 7 && strncasecmp(p, "charset", 7) == 0;
		p = skip_blanks(p + name_len);
		if (*p != '=') {
			if (name_len)
				return false;
			continue;
		}
		p = skip_blanks(p + 1);
		const char *value = p + (*p == '"');
		size_t len = strcspn(value, *p == '"' ? "\"" : "; \t");
		p = skip_blanks(value + len + (*p == '"' && value[len] == '"'));
		if (charset && !(len == 5 && strncasecmp(value, "utf-8", 5) == 0) &&
		    !(len == 4 && strncasecmp(value, "utf8", 4) == 0))
			return false;
	}
	return *p == '\0';
}

/* Reads at most max + 1 bytes, so an oversize chunked body is caught without reading it all,
 * and only until the request's body deadline (see deadline.h): mg_read() on its own waits as
 * long as bytes trickle in. */
static enum err read_body(struct req *r, long max, char **ret_buf, size_t *ret_len,
			  const char **ret_msg)
{
	long long declared = r->ri->content_length;
	if (declared > max) {
		r->must_close = true; /* never read, never drained */
		return ERR_TOO_LARGE;
	}
	/* Grown as bytes arrive, so a trickled body costs what it sent, not what it declared. */
	size_t cap = declared >= 0 && declared < 4096 ? (size_t)declared + 1 : 4096;
	size_t len = 0;
	char *buf = malloc(cap);
	if (!buf)
		return ERR_NOMEM;
	enum err e = ERR_OK;
	deadline_arm(r->body_deadline_ns);
	for (;;) {
		if (deadline_passed()) {
			e = ERR_TIMEOUT;
			break;
		}
		if (len == cap) {
			size_t grown_cap = cap * 2 > (size_t)max + 1 ? (size_t)max + 1 : cap * 2;
			char *grown = grown_cap > cap ? realloc(buf, grown_cap) : NULL;
			if (!grown) {
				e = len > (size_t)max ? ERR_TOO_LARGE : ERR_NOMEM;
				break;
			}
			buf = grown;
			cap = grown_cap;
		}
		int n = mg_read(r->conn, buf + len, cap - len);
		if (n > 0) {
			len += (size_t)n;
			if (len > (size_t)max) {
				e = ERR_TOO_LARGE;
				break;
			}
			continue;
		}
		/* n == 0 is the end of the body, or with a Content-Length a whole request timeout
		 * without a byte; n < 0 is a connection that ended or chunks that broke off. */
		if (deadline_passed() || (n == 0 && declared >= 0 && len < (size_t)declared))
			e = ERR_TIMEOUT;
		else if (n < 0 || (declared >= 0 && len < (size_t)declared))
			e = ERR_INVALID;
		break;
	}
	deadline_disarm();
	if (e != ERR_OK) {
		free(buf);
		r->must_close = true;
		if (e == ERR_INVALID)
			*ret_msg = "body: the connection ended before the whole body arrived";
		if (e == ERR_TIMEOUT)
			*ret_msg = "body: did not arrive in time";
		return e;
	}
	r->body_read = true;
	*ret_buf = buf;
	*ret_len = len;
	return ERR_OK;
}

enum err req_raw_body(struct req *r, char **ret_buf, size_t *ret_len, const char **ret_msg)
{
	return read_body(r, r->app->cfg->max_body_bytes, ret_buf, ret_len, ret_msg);
}

/* The text of a JSON body, read whole; *ret_buf is NULL for an absent optional body. */
static enum err json_body_text(struct req *r, bool required, char **ret_buf, size_t *ret_len,
			       const char **ret_msg)
{
	const char *ct = req_header(r, "Content-Type");
	bool has_body = r->ri->content_length > 0 ||
			(r->ri->content_length < 0 && req_header(r, "Transfer-Encoding"));
	if (!has_body && !ct) {
		if (required) {
			*ret_msg = "a JSON body is required";
			return ERR_INVALID;
		}
		*ret_buf = NULL;
		return ERR_OK;
	}
	if (!is_json_type(ct))
		return ERR_UNSUPPORTED_TYPE;
	char *buf = NULL;
	size_t len = 0;
	enum err e = req_raw_body(r, &buf, &len, ret_msg);
	if (e != ERR_OK)
		return e;
	if (len == 0 && !required) {
		free(buf);
		buf = NULL;
	}
	*ret_buf = buf;
	*ret_len = len;
	return ERR_OK;
}

/* Why a body was not a JSON object: result as json_load_bounded gave it, parsed when it read
 * the body as a value of another type. */
static enum err json_body_refusal(enum json_load_result result, bool parsed, const char **ret_msg)
{
	if (result == JSON_LOAD_NOMEM)
		return ERR_NOMEM;
	if (result == JSON_LOAD_TOO_DEEP)
		*ret_msg = "body: JSON nested deeper than 32 levels";
	else if (!parsed)
		*ret_msg = "body: invalid JSON";
	else
		*ret_msg = "body: must be a JSON object";
	return ERR_INVALID;
}

enum err req_json_body(struct req *r, bool required, json_t **ret_json, const char **ret_msg)
{
	char *buf = NULL;
	size_t len = 0;
	enum err e = json_body_text(r, required, &buf, &len, ret_msg);
	if (e != ERR_OK)
		return e;
	if (!buf) {
		*ret_json = NULL;
		return ERR_OK;
	}
	enum json_load_result result;
	json_t *root = json_load_bounded(buf, len, &result);
	free(buf);
	if (!json_is_object(root)) {
		bool parsed = root != NULL;
		json_decref(root);
		return json_body_refusal(result, parsed, ret_msg);
	}
	*ret_json = root;
	return ERR_OK;
}

enum err req_json_scan_body(struct req *r, bool required, const struct json_scan_object *root,
			    struct json_scan_value *values, size_t n_values, char **ret_buf,
			    const char **ret_msg)
{
	char *buf = NULL;
	size_t len = 0;
	enum err e = json_body_text(r, required, &buf, &len, ret_msg);
	if (e != ERR_OK)
		return e;
	enum json_load_result result = JSON_LOAD_OK;
	if (buf)
		result = json_scan(buf, len, root, values, n_values);
	else
		for (size_t i = 0; i < n_values; i++)
			values[i] = (struct json_scan_value){.type = JSON_SCAN_ABSENT};
	if (result == JSON_LOAD_OK) {
		*ret_buf = buf;
		return ERR_OK;
	}
	/* Refused: jansson tells invalid JSON from another type of value, for the message of
	 * req_json_body. An object here is one of json_scan's stricter refusals (json_scan.h). */
	bool parsed = false;
	if (result == JSON_LOAD_INVALID) {
		json_t *value = json_load_bounded(buf, len, &result);
		parsed = value && !json_is_object(value);
		json_decref(value);
		result = JSON_LOAD_INVALID;
	}
	free(buf);
	return json_body_refusal(result, parsed, ret_msg);
}

int req_query(const struct req *r, const char *name, int n, char *buf, size_t cap)
{
	return uri_query(r->ri->query_string, name, n, buf, cap);
}

enum err req_query_time(const struct req *r, const char *name, int64_t *ret)
{
	char buf[64];
	int n = req_query(r, name, 0, buf, sizeof buf);
	if (n == -1)
		return ERR_OK;
	return n > 0 && timefmt_parse(buf, ret) ? ERR_OK : ERR_INVALID;
}

/* Strict UTF-8: no overlongs, no surrogates, nothing above U+10FFFF. */
static bool valid_utf8(const unsigned char *s, size_t len)
{
	size_t i = 0;
	while (i < len) {
		unsigned char c = s[i];
		size_t extra;
		unsigned min, cp;
		if (c < 0x80) {
			i++;
			continue;
		} else if ((c & 0xe0) == 0xc0) {
			extra = 1, min = 0x80, cp = c & 0x1f;
		} else if ((c & 0xf0) == 0xe0) {
			extra = 2, min = 0x800, cp = c & 0x0f;
		} else if ((c & 0xf8) == 0xf0) {
			extra = 3, min = 0x10000, cp = c & 0x07;
		} else {
			return false;
		}
		if (i + extra >= len)
			return false;
		for (size_t k = 1; k <= extra; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += extra + 1;
	}
	return true;
}

bool valid_user_id(const char *s)
{
	size_t len = strlen(s);
	if (len == 0 || len > USER_ID_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		/* C0, DEL, and C1 (U+0080..U+009F: C2 80..C2 9F in UTF-8) */
		if (c < 0x20 || c == 0x7f ||
		    (c == 0xc2 && i + 1 < len && (unsigned char)s[i + 1] <= 0x9f))
			return false;
	}
	return valid_utf8((const unsigned char *)s, len);
}

enum err req_user_param(const struct req *r, const char **ret_msg)
{
	if (r->param_invalid) {
		*ret_msg = PATH_SEGMENT_MSG("user");
		return ERR_INVALID;
	}
	if (r->param_too_long || !valid_user_id(r->param)) {
		*ret_msg = "user: must be a user id of 1 to 128 bytes without control characters";
		return ERR_INVALID;
	}
	return ERR_OK;
}

/* ---- streamed answers ---- */

/* Each chunk goes out in one write: its size line is written into the room left before the
 * data, and its CRLF after it. */
#define CHUNK_PREFIX 16 /* "%zx\r\n" of a size below 2^32 fits */
#define CHUNK_SUFFIX 2

bool reply_stream_begin(struct req *r, struct reply_stream *s, const char *content_type,
			const char *extra)
{
	char head[768];
	*s = (struct reply_stream){.r = r};
	s->buf = malloc(CHUNK_PREFIX + REPLY_STREAM_CHUNK + CHUNK_SUFFIX);
	if (!s->buf)
		return false;
	int n = format_head(r, 200, content_type, "Transfer-Encoding: chunked", extra, head,
			    sizeof head);
	r->status = 200;
	metrics_http_request(r, monotonic_ns() / 1000 - r->start_us); /* as far as the head */
	s->broken = mg_write(r->conn, head, (size_t)n) != n;
	return true;
}

static void stream_flush(struct reply_stream *s)
{
	if (!s->len || s->broken) {
		s->len = 0;
		return;
	}
	char size[CHUNK_PREFIX + 1];
	int n = snprintf(size, sizeof size, "%zx\r\n", s->len);
	char *start = s->buf + CHUNK_PREFIX - n;
	memcpy(start, size, (size_t)n);
	memcpy(s->buf + CHUNK_PREFIX + s->len, "\r\n", CHUNK_SUFFIX);
	size_t total = (size_t)n + s->len + CHUNK_SUFFIX;
	s->broken = mg_write(s->r->conn, start, total) != (int)total;
	s->flushed += s->len;
	s->len = 0;
}

uint64_t reply_stream_mark(const struct reply_stream *s)
{
	return s->flushed + s->len;
}

bool reply_stream_rewind(struct reply_stream *s, uint64_t mark)
{
	if (mark < s->flushed)
		return false;
	s->len = (size_t)(mark - s->flushed);
	return true;
}

bool reply_stream_write(struct reply_stream *s, const char *p, size_t n)
{
	while (n && !s->broken) {
		size_t room = REPLY_STREAM_CHUNK - s->len;
		size_t take = n < room ? n : room;
		memcpy(s->buf + CHUNK_PREFIX + s->len, p, take);
		s->len += take;
		p += take;
		n -= take;
		if (s->len == REPLY_STREAM_CHUNK)
			stream_flush(s);
	}
	return !s->broken;
}

bool reply_stream_end(struct reply_stream *s)
{
	stream_flush(s);
	if (!s->broken)
		s->broken = mg_write(s->r->conn, "0\r\n\r\n", 5) != 5;
	if (s->broken)
		s->r->must_close = s->r->unsent = true;
	free(s->buf);
	s->buf = NULL;
	return !s->broken;
}

void reply_stream_abort(struct reply_stream *s)
{
	/* What is buffered goes out, the terminating chunk does not: the client's parser sees
	 * the connection close in the middle of the body. */
	stream_flush(s);
	s->r->must_close = true;
	free(s->buf);
	s->buf = NULL;
}

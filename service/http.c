/* Request reading and answer writing shared by every handler: auth, bounded JSON bodies,
 * query parameters, and single-write responses carrying X-Request-Id. */
#include "http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *reason_phrase(int status)
{
	switch (status) {
	case 200: return "OK";
	case 201: return "Created";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 409: return "Conflict";
	case 413: return "Payload Too Large";
	case 415: return "Unsupported Media Type";
	case 503: return "Service Unavailable";
	default: return "Internal Server Error";
	}
}

static int reply(struct req *r, int status, const char *content_type, const char *body,
		 size_t len)
{
	char head[512];
	int n = snprintf(head, sizeof head,
			 "HTTP/1.1 %d %s\r\n"
			 "Content-Type: %s\r\n"
			 "Content-Length: %zu\r\n"
			 "X-Request-Id: %s\r\n"
			 "Cache-Control: no-store\r\n"
			 "%s"
			 "\r\n",
			 status, reason_phrase(status), content_type, len, r->request_id,
			 status == 401 ? "WWW-Authenticate: Bearer\r\n" : "");
	char stackbuf[8192];
	size_t total = (size_t)n + len;
	char *buf = total <= sizeof stackbuf ? stackbuf : malloc(total);
	r->status = status;
	if (!buf) {
		/* Out of memory for a large body: two writes still answer correctly. */
		mg_write(r->conn, head, (size_t)n);
		mg_write(r->conn, body, len);
		return status;
	}
	memcpy(buf, head, (size_t)n);
	memcpy(buf + n, body, len);
	mg_write(r->conn, buf, total);
	if (buf != stackbuf)
		free(buf);
	return status;
}

int reply_json(struct req *r, int status, const char *body, size_t len)
{
	return reply(r, status, "application/json; charset=utf-8", body, len);
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

static bool is_json_type(const char *ct)
{
	static const char json[] = "application/json";
	if (!ct || strncasecmp(ct, json, sizeof json - 1) != 0)
		return false;
	char next = ct[sizeof json - 1];
	return next == '\0' || next == ';' || next == ' ';
}

/* Reads at most max + 1 bytes, so an oversize chunked body is caught without reading it all. */
static enum err read_body(struct req *r, long max, char **ret_buf, size_t *ret_len)
{
	long long declared = r->ri->content_length;
	if (declared > max)
		return ERR_TOO_LARGE;
	size_t cap = declared >= 0 ? (size_t)declared + 1 : 4096;
	size_t len = 0;
	char *buf = malloc(cap);
	if (!buf)
		return ERR_NOMEM;
	for (;;) {
		if (len == cap) {
			size_t grown_cap = cap * 2 > (size_t)max + 1 ? (size_t)max + 1 : cap * 2;
			char *grown = grown_cap > cap ? realloc(buf, grown_cap) : NULL;
			if (!grown) {
				free(buf);
				return len > (size_t)max ? ERR_TOO_LARGE : ERR_NOMEM;
			}
			buf = grown;
			cap = grown_cap;
		}
		int n = mg_read(r->conn, buf + len, cap - len);
		if (n <= 0)
			break;
		len += (size_t)n;
		if (len > (size_t)max) {
			free(buf);
			return ERR_TOO_LARGE;
		}
	}
	*ret_buf = buf;
	*ret_len = len;
	return ERR_OK;
}

enum err req_raw_body(struct req *r, char **ret_buf, size_t *ret_len)
{
	return read_body(r, r->app->cfg->max_body_bytes, ret_buf, ret_len);
}

enum err req_json_body(struct req *r, bool required, json_t **ret_json, const char **ret_msg)
{
	const char *ct = req_header(r, "Content-Type");
	bool has_body = r->ri->content_length > 0 ||
			(r->ri->content_length < 0 && req_header(r, "Transfer-Encoding"));
	if (!has_body && !ct) {
		*ret_json = NULL;
		if (!required)
			return ERR_OK;
		*ret_msg = "a JSON body is required";
		return ERR_INVALID;
	}
	if (!is_json_type(ct))
		return ERR_UNSUPPORTED_TYPE;
	char *buf = NULL;
	size_t len = 0;
	enum err e = read_body(r, r->app->cfg->max_body_bytes, &buf, &len);
	if (e != ERR_OK)
		return e;
	if (len == 0 && !required) {
		free(buf);
		*ret_json = NULL;
		return ERR_OK;
	}
	json_error_t jerr;
	json_t *root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
	free(buf);
	if (!root) {
		*ret_msg = "body: invalid JSON";
		return ERR_INVALID;
	}
	if (!json_is_object(root)) {
		json_decref(root);
		*ret_msg = "body: must be a JSON object";
		return ERR_INVALID;
	}
	*ret_json = root;
	return ERR_OK;
}

int req_query(const struct req *r, const char *name, int n, char *buf, size_t cap)
{
	const char *qs = r->ri->query_string;
	if (!qs)
		return -1;
	int rc = mg_get_var2(qs, strlen(qs), name, buf, cap, (size_t)n);
	return rc < -1 ? -2 : rc;
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
		if (c < 0x20 || c == 0x7f)
			return false;
	}
	return valid_utf8((const unsigned char *)s, len);
}

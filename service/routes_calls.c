/* Handlers of /v1/calls and /v1/users/{user}/calls: parse and validate the request, call the
 * calls domain, and answer with the call object (or a grant with its token). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonutil.h"
#include "log.h"
#include "requests.h"
#include "routes.h"
#include "strbuf.h"
#include "timefmt.h"

#define IDEMPOTENCY_KEY_MAX 255
#define LIST_LIMIT_DEFAULT 50
#define LIST_LIMIT_MAX 500

/* --- answers --- */

static int reply_call(struct req *r, int status, const struct call *c)
{
	char *text = call_to_json_text(c);
	if (!text)
		return reply_error(r, ERR_NOMEM, NULL);
	int rc = reply_json(r, status, text, strlen(text));
	free(text);
	return rc;
}

/* {"call"?, "token", "url", "token_expires_at"}; the token, url and time are null when the
 * grant has no token (an idempotent replay of an ended call). Put together without snprintf:
 * it is every token request's answer. */
static int reply_grant(struct req *r, int status, const struct call_grant *g, bool with_call)
{
	char *made = with_call && !g->call_json ? call_to_json_text(g->call) : NULL;
	const char *call_text = with_call ? (g->call_json ? g->call_json : made) : NULL;
	if (with_call && !call_text)
		return reply_error(r, ERR_NOMEM, NULL);
	size_t call_len = call_text ? strlen(call_text) : 0;
	size_t url_len = strlen(r->app->livekit_url_json);
	/* TOKEN_MAX holds the token with its NUL; 128 the keys, punctuation and the time. */
	size_t cap = call_len + TOKEN_MAX + url_len + 128;
	char *buf = malloc(cap);
	if (!buf) {
		free(made);
		return reply_error(r, ERR_NOMEM, NULL);
	}
	struct strbuf b = STRBUF_INIT(buf, cap);
	strbuf_lit(&b, "{");
	if (call_text) {
		strbuf_lit(&b, "\"call\":");
		strbuf_put(&b, call_text, call_len);
		strbuf_lit(&b, ",");
	}
	if (g->has_token) {
		char expires[TIMEFMT_LEN + 1];
		timefmt_format(g->token_expires_at, expires);
		strbuf_lit(&b, "\"token\":\"");
		strbuf_puts(&b, g->token);
		strbuf_lit(&b, "\",\"url\":");
		strbuf_put(&b, r->app->livekit_url_json, url_len);
		strbuf_lit(&b, ",\"token_expires_at\":\"");
		strbuf_put(&b, expires, TIMEFMT_LEN);
		strbuf_lit(&b, "\"}");
	} else {
		strbuf_lit(&b, "\"token\":null,\"url\":null,\"token_expires_at\":null}");
	}
	int rc = reply_json(r, status, buf, b.len);
	free(buf);
	free(made);
	return rc;
}

int handle_calls_create(struct req *r)
{
	struct call_create_req req = {0};
	struct call_grant grant = {0};
	json_t *body = NULL;
	char *metadata = NULL;
	const char *msg = NULL;
	const char *key = req_header(r, "Idempotency-Key");

	enum err e = req_auth(r, ROLE_SERVICE);
	if (e == ERR_OK)
		e = req_json_body(r, true, &body, &msg);
	if (e == ERR_OK)
		e = requests_call_create(body, &req, &metadata, &msg);
	if (e == ERR_OK && key) {
		size_t klen = strlen(key);
		if (!klen || klen > IDEMPOTENCY_KEY_MAX) {
			msg = "Idempotency-Key: must be 1 to 255 bytes";
			e = ERR_INVALID;
		} else {
			req.idempotency_key = key;
			e = requests_hash(body, req.request_hash);
		}
	}
	req.request_id = r->request_id;
	if (e == ERR_OK)
		e = calls_create(&r->app->calls, &req, &grant, &msg);
	json_decref(body);
	free(metadata);
	if (e != ERR_OK)
		return reply_refusal(r, e, msg);
	int rc = reply_grant(r, grant.replayed ? 200 : 201, &grant, true);
	call_grant_finish(&grant);
	return rc;
}

int handle_call_get(struct req *r)
{
	char *json = NULL;
	const char *msg = NULL;
	enum err e = req_auth(r, ROLE_SERVICE);
	if (e == ERR_OK)
		e = req_call_id_param(r, &msg);
	if (e == ERR_OK)
		e = calls_get_json(&r->app->calls, r->param, &json);
	if (e == ERR_NOT_FOUND)
		msg = "no such call";
	if (e != ERR_OK)
		return reply_refusal(r, e, msg);
	int rc = reply_json(r, 200, json, strlen(json));
	free(json);
	return rc;
}

static enum err read_member_req(struct req *r, bool user_required, struct member_req *mr,
				const char **ret_msg)
{
	struct json_scan_value values[MEMBER_SLOTS];
	char *body = NULL;
	enum err e = req_call_id_param(r, ret_msg);
	if (e == ERR_OK)
		e = req_json_scan_body(r, user_required, &requests_member_body, values, MEMBER_SLOTS,
				       &body, ret_msg);
	if (e == ERR_OK)
		e = requests_member(values, user_required, mr, ret_msg);
	free(body);
	return e;
}

static int grant_action(struct req *r, bool accept)
{
	struct member_req mr = {0};
	struct call_grant grant = {0};
	const char *msg = NULL;
	enum err e = req_auth(r, ROLE_SERVICE);
	if (e == ERR_OK)
		e = read_member_req(r, true, &mr, &msg);
	if (e == ERR_OK)
		e = accept ? calls_accept(&r->app->calls, r->request_id, r->param, mr.user, mr.name,
					  &grant, &msg)
			   : calls_token(&r->app->calls, r->param, mr.user, mr.name, &grant, &msg);
	if (e != ERR_OK)
		return reply_refusal(r, e, msg);
	int rc = reply_grant(r, 200, &grant, accept);
	call_grant_finish(&grant);
	return rc;
}

int handle_call_accept(struct req *r)
{
	return grant_action(r, true);
}

int handle_call_token(struct req *r)
{
	return grant_action(r, false);
}

typedef enum err (*member_action_fn)(const struct calls *cs, const char *request_id,
				     const char *id, const char *user, struct call **ret_call,
				     const char **ret_msg);

static int member_action(struct req *r, member_action_fn fn, bool admin_may_omit_user)
{
	struct member_req mr = {0};
	struct call *c = NULL;
	const char *msg = NULL;
	/* The role is known only after auth; an admin may end a call without naming a user. */
	enum err e = req_auth(r, ROLE_SERVICE);
	bool user_required = !(admin_may_omit_user && r->role == ROLE_ADMIN);
	if (e == ERR_OK)
		e = read_member_req(r, user_required, &mr, &msg);
	if (e == ERR_OK)
		e = fn(&r->app->calls, r->request_id, r->param, *mr.user ? mr.user : NULL, &c, &msg);
	if (e != ERR_OK)
		return reply_refusal(r, e, msg);
	int rc = reply_call(r, 200, c);
	call_free(c);
	return rc;
}

int handle_call_decline(struct req *r)
{
	return member_action(r, calls_decline, false);
}

int handle_call_leave(struct req *r)
{
	return member_action(r, calls_leave, false);
}

int handle_call_end(struct req *r)
{
	return member_action(r, calls_end, true);
}

/* --- lists --- */

/* The opaque cursor: "<created_at ms>.<id>" of the last row of the previous page. */
static void cursor_format(const struct call_view *v, char *out, size_t cap)
{
	snprintf(out, cap, "%lld.%s", (long long)v->created_at, v->id);
}

static bool cursor_parse(const char *s, struct call_filter *f)
{
	char *end;
	long long ms = strtoll(s, &end, 10);
	if (end == s || *end != '.' || ms <= 0 || strlen(end + 1) != ID_LEN)
		return false;
	f->after_created_at = ms;
	memcpy(f->after_id, end + 1, ID_LEN + 1);
	return true;
}

static enum err query_int(const struct req *r, const char *name, long long min, long long max,
			  long long *ret)
{
	char buf[32];
	int n = req_query(r, name, 0, buf, sizeof buf);
	if (n == -1)
		return ERR_OK;
	char *end;
	long long v = n > 0 ? strtoll(buf, &end, 10) : 0;
	if (n <= 0 || *end || v < min || v > max)
		return ERR_INVALID;
	*ret = v;
	return ERR_OK;
}

static enum err query_enum(const struct req *r, const char *name, int (*parse)(const char *),
			   int *ret)
{
	char buf[32];
	int n = req_query(r, name, 0, buf, sizeof buf);
	if (n == -1)
		return ERR_OK;
	int v = n > 0 ? parse(buf) : -1;
	if (v < 0)
		return ERR_INVALID;
	*ret = v;
	return ERR_OK;
}

static enum err query_string(const struct req *r, const char *name, char *out, size_t cap)
{
	int n = req_query(r, name, 0, out, cap);
	if (n == -1) {
		*out = '\0';
		return ERR_OK;
	}
	return n > 0 && valid_user_id(out) ? ERR_OK : ERR_INVALID;
}

/* The filters every list shares: status, limit, cursor. */
static enum err parse_common_filters(const struct req *r, struct call_filter *f,
				     const char **ret_msg)
{
	long long limit = LIST_LIMIT_DEFAULT;
	char cursor[64];
	if (query_enum(r, "status", call_status_parse, &f->status) != ERR_OK) {
		*ret_msg = "status: must be ringing, active or ended";
		return ERR_INVALID;
	}
	if (query_int(r, "limit", 1, LIST_LIMIT_MAX, &limit) != ERR_OK) {
		*ret_msg = "limit: must be an integer from 1 to 500";
		return ERR_INVALID;
	}
	f->limit = (int)limit;
	int n = req_query(r, "cursor", 0, cursor, sizeof cursor);
	if (n != -1 && (n <= 0 || !cursor_parse(cursor, f))) {
		*ret_msg = "cursor: invalid";
		return ERR_INVALID;
	}
	return ERR_OK;
}

/* The page is the stored views of its calls, copied into the answer as they are. */
static int reply_page(struct req *r, const struct view_page *page)
{
	size_t cap = 64 + 2 * ID_LEN;
	for (size_t i = 0; i < page->n; i++)
		cap += strlen(page->views[i].json) + 1;
	char *body = malloc(cap);
	if (!body)
		return reply_error(r, ERR_NOMEM, NULL);
	size_t len = (size_t)snprintf(body, cap, "{\"calls\":[");
	for (size_t i = 0; i < page->n; i++) {
		size_t n = strlen(page->views[i].json);
		if (i)
			body[len++] = ',';
		memcpy(body + len, page->views[i].json, n);
		len += n;
	}
	if (page->more && page->n) {
		char cursor[64];
		cursor_format(&page->views[page->n - 1], cursor, sizeof cursor);
		len += (size_t)snprintf(body + len, cap - len, "],\"next_cursor\":\"%s\"}", cursor);
	} else {
		len += (size_t)snprintf(body + len, cap - len, "],\"next_cursor\":null}");
	}
	int rc = reply_json(r, 200, body, len);
	free(body);
	return rc;
}

static int list_calls(struct req *r, const struct call_filter *f)
{
	struct view_page page = {0};
	enum err e = storage_calls_list(r->app->st, f, &page);
	if (e != ERR_OK)
		return reply_refusal(r, e, NULL);
	int rc = reply_page(r, &page);
	view_page_finish(&page);
	return rc;
}

int handle_user_calls(struct req *r)
{
	struct call_filter f = {.status = -1, .outcome = -1, .kind = -1};
	const char *msg = NULL;
	enum err e = req_auth(r, ROLE_SERVICE);
	if (e == ERR_OK)
		e = req_user_param(r, &msg);
	if (e == ERR_OK)
		e = parse_common_filters(r, &f, &msg);
	if (e != ERR_OK)
		return reply_refusal(r, e, msg);
	memcpy(f.user, r->param, strlen(r->param) + 1); /* valid_user_id bounded it */
	return list_calls(r, &f);
}

int handle_calls_list(struct req *r)
{
	struct call_filter f = {.status = -1, .outcome = -1, .kind = -1};
	const char *msg = NULL;
	char format[16];
	enum err e = req_auth(r, ROLE_ADMIN);
	if (e == ERR_OK)
		e = parse_common_filters(r, &f, &msg);
	if (e != ERR_OK)
		return reply_refusal(r, e, msg);
	if (query_string(r, "user", f.user, sizeof f.user) != ERR_OK)
		msg = "user: must be a user id of 1 to 128 bytes without control characters";
	else if (query_string(r, "chat_id", f.chat_id, sizeof f.chat_id) != ERR_OK)
		msg = "chat_id: must be a string of 1 to 128 bytes without control characters";
	else if (query_enum(r, "outcome", call_outcome_parse, &f.outcome) != ERR_OK)
		msg = "outcome: must be completed, missed, declined, cancelled or failed";
	else if (query_enum(r, "kind", call_kind_parse, &f.kind) != ERR_OK)
		msg = "kind: must be audio or video";
	else if (req_query_time(r, "since", &f.since) != ERR_OK)
		msg = "since: must be an RFC 3339 time";
	else if (req_query_time(r, "until", &f.until) != ERR_OK)
		msg = "until: must be an RFC 3339 time";
	else if (f.since && f.until && f.since >= f.until)
		msg = "until: must be later than since"; /* as GET /v1/stats says */
	int format_len = msg ? -1 : req_query(r, "format", 0, format, sizeof format);
	bool csv = format_len > 0 && strcmp(format, "csv") == 0;
	if (format_len != -1 && !csv && (format_len <= 0 || strcmp(format, "json") != 0))
		msg = "format: must be json or csv";
	if (csv && (req_query(r, "limit", 0, format, sizeof format) != -1 || *f.after_id))
		msg = "format=csv answers every match at once: limit and cursor do not apply";
	if (msg)
		return reply_error(r, ERR_INVALID, msg);
	return csv ? reply_calls_csv(r, &f) : list_calls(r, &f);
}

/* Routing and request logging. One CivetWeb handler receives every request, matches it
 * against the route table (patterns with one {param}), and logs method, route, status, duration
 * and the request id once the handler has answered. */
#include "server.h"

#include <civetweb.h>
#include <inttypes.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "http.h"
#include "log.h"
#include "routes.h"

struct route {
	const char *method;
	const char *pattern; /* "{name}" stands for one parameter: a path segment, except that
			      * "{user}" takes every byte between the fixed parts, since user ids
			      * are opaque and may hold '/' */
	int (*handler)(struct req *r);
};

static const struct route routes[] = {
	{"POST", "/v1/calls", handle_calls_create},
	{"GET", "/v1/calls", handle_calls_list},
	{"GET", "/v1/calls/{id}", handle_call_get},
	{"POST", "/v1/calls/{id}/accept", handle_call_accept},
	{"POST", "/v1/calls/{id}/decline", handle_call_decline},
	{"POST", "/v1/calls/{id}/token", handle_call_token},
	{"POST", "/v1/calls/{id}/leave", handle_call_leave},
	{"POST", "/v1/calls/{id}/end", handle_call_end},
	{"GET", "/v1/users/{user}/calls", handle_user_calls},
	{"GET", "/v1/events", handle_events_list},
	{"PUT", "/v1/presence/{user}", handle_presence_put},
	{"GET", "/v1/presence", handle_presence_list},
	{"POST", "/webhooks/livekit", handle_livekit_webhook},
	{"GET", "/healthz", handle_healthz},
	{"GET", "/readyz", handle_readyz},
};

struct server {
	struct mg_context *ctx;
};

/* Match path against pattern; the parameter may hold '/' only when the pattern's fixed suffix
 * pins where it ends (user ids are opaque and may contain it). */
static bool route_match(const char *pattern, const char *path, struct req *r)
{
	const char *brace = strchr(pattern, '{');
	if (!brace)
		return strcmp(pattern, path) == 0;
	size_t pre = (size_t)(brace - pattern);
	const char *suffix = strchr(brace, '}') + 1;
	size_t path_len = strlen(path), suf_len = strlen(suffix);
	if (path_len < pre + suf_len + 1 || strncmp(pattern, path, pre) != 0 ||
	    strcmp(path + path_len - suf_len, suffix) != 0)
		return false;
	size_t plen = path_len - pre - suf_len;
	const char *param = path + pre;
	if (strncmp(brace, "{user}", 6) != 0 && memchr(param, '/', plen))
		return false;
	r->param_too_long = plen > PATH_PARAM_MAX;
	if (r->param_too_long)
		plen = PATH_PARAM_MAX;
	memcpy(r->param, param, plen);
	r->param[plen] = '\0';
	return true;
}

static bool valid_request_id(const char *s)
{
	size_t len = strlen(s);
	if (!len || len > REQUEST_ID_MAX)
		return false;
	for (size_t i = 0; i < len; i++)
		if (s[i] <= ' ' || s[i] > '~' || s[i] == '"' || s[i] == '\\')
			return false;
	return true;
}

static int64_t monotonic_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* A new request id: a random per-thread prefix and a per-thread counter, unique without a lock
 * (the shared UUIDv7 generator serializes every request on its mutex). */
static void new_request_id(char out[REQUEST_ID_MAX + 1])
{
	static _Thread_local uint64_t prefix, counter;
	if (!prefix && RAND_bytes((unsigned char *)&prefix, sizeof prefix) != 1)
		prefix = (uint64_t)monotonic_ns() ^ (uint64_t)(uintptr_t)&counter;
	snprintf(out, REQUEST_ID_MAX + 1, "%016" PRIx64 "-%08" PRIx64, prefix, ++counter);
}

static int64_t monotonic_us(void)
{
	return monotonic_ns() / 1000;
}

static int dispatch(struct req *r)
{
	const char *path = r->ri->local_uri ? r->ri->local_uri : "/";
	bool path_known = false;
	for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
		if (!route_match(routes[i].pattern, path, r))
			continue;
		path_known = true;
		if (strcmp(routes[i].method, r->ri->request_method) != 0)
			continue;
		r->route = routes[i].pattern;
		return routes[i].handler(r);
	}
	r->route = "unmatched";
	return reply_error(r, ERR_NOT_FOUND,
			   path_known ? "method not allowed on this path" : "no such route");
}

static int on_request(struct mg_connection *conn, void *cbdata)
{
	const struct app *app = cbdata;
	int64_t start = monotonic_us();
	struct req r = {.conn = conn, .ri = mg_get_request_info(conn), .app = app};
	const char *given = mg_get_header(conn, "X-Request-Id");
	if (given && valid_request_id(given))
		snprintf(r.request_id, sizeof r.request_id, "%s", given);
	else
		new_request_id(r.request_id);

	dispatch(&r);

	char route[160];
	log_write(LOG_INFO,
		  "msg=request request_id=%s method=%s route=%s status=%d duration_ms=%.3f",
		  r.request_id, r.ri->request_method, log_value(route, sizeof route, r.route),
		  r.status, (double)(monotonic_us() - start) / 1000.0);
	return r.status ? r.status : 500;
}

static int on_log_message(const struct mg_connection *conn, const char *message)
{
	(void)conn;
	char value[512];
	log_write(LOG_WARN, "msg=civetweb detail=%s", log_value(value, sizeof value, message));
	return 1;
}

enum err server_start(const struct app *app, struct server **ret_srv)
{
	const struct config *cfg = app->cfg;
	char listen[300], threads[16], timeout[16];
	bool v6 = strchr(cfg->listen_host, ':') != NULL;
	snprintf(listen, sizeof listen, v6 ? "[%s]:%d" : "%s:%d", cfg->listen_host,
		 cfg->listen_port);
	snprintf(threads, sizeof threads, "%d", cfg->threads);
	snprintf(timeout, sizeof timeout, "%d", cfg->idle_timeout_ms);
	const char *options[] = {
		"listening_ports", listen,
		"num_threads", threads,
		"enable_keep_alive", "yes",
		"keep_alive_timeout_ms", timeout,
		"request_timeout_ms", timeout,
		"tcp_nodelay", "1",
		"listen_backlog", "1024",
		/* A presence query names up to 200 ids of 128 bytes, percent-encoded. */
		"max_request_size", "131072",
		"connection_queue", "1024",
		"decode_url", "yes",
		NULL,
	};
	struct mg_callbacks callbacks = {.log_message = on_log_message};
	struct server *srv = calloc(1, sizeof *srv);
	if (!srv)
		return ERR_NOMEM;
	srv->ctx = mg_start(&callbacks, NULL, options);
	if (!srv->ctx) {
		char value[320];
		log_write(LOG_ERROR, "msg=\"cannot listen\" listen=%s",
			  log_value(value, sizeof value, listen));
		free(srv);
		return ERR_UNAVAILABLE;
	}
	mg_set_request_handler(srv->ctx, "**", on_request, (void *)app);
	*ret_srv = srv;
	return ERR_OK;
}

void server_stop(struct server *srv)
{
	if (!srv)
		return;
	mg_stop(srv->ctx);
	free(srv);
}

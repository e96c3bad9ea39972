/* The HTTP server: CivetWeb's options and callbacks, one handler that receives every request,
 * routes it (router.c), and logs method, route, status, duration and the request id once it
 * has been answered. */
#define _GNU_SOURCE /* pthread_getattr_np, madvise */
#include "server.h"

#include <civetweb.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "deadline.h"
#include "http.h"
#include "log.h"
#include "router.h"
#include "strbuf.h"
#include "routes.h"

struct server {
	const struct app *app;
	struct mg_context *ctx;
	struct deadlines *deadlines;
	atomic_int in_flight;   /* requests inside on_request */
	atomic_bool draining;   /* stopping: requests that arrive now are refused */
};

/* How long a stop waits for the requests in flight beyond the longest a request may take to
 * arrive: a handler may still wait for the database (a connection of the pool, a commit). */
#define DRAIN_EXTRA_MS 5000
#define DRAIN_POLL_MS 10

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

/* A new request id: a random per-thread prefix and a per-thread counter, unique without a lock
 * (the shared UUIDv7 generator serializes every request on its mutex). */
static void new_request_id(char out[REQUEST_ID_MAX + 1])
{
	static _Thread_local uint64_t prefix, counter;
	if (!prefix && RAND_bytes((unsigned char *)&prefix, sizeof prefix) != 1)
		prefix = (uint64_t)monotonic_ns() ^ (uint64_t)(uintptr_t)&counter;
	struct strbuf b = STRBUF_INIT(out, REQUEST_ID_MAX);
	strbuf_hex(&b, prefix, 16);
	strbuf_lit(&b, "-");
	strbuf_hex(&b, ++counter, 8);
	out[b.len] = '\0';
}

static int64_t monotonic_us(void)
{
	return monotonic_ns() / 1000;
}

/* A stopping server still names the route, for the log and the metrics, but refuses it; every
 * answer it gives closes its connection, so that keep-alive clients go elsewhere. */
static int dispatch(struct req *r, bool stopping)
{
	char allow[64];
	const struct route *route = router_find(r, allow, sizeof allow);
	if (!route) {
		r->route = "unmatched";
		r->route_slot = ROUTE_SLOT_UNMATCHED;
	}
	if (stopping) {
		r->must_close = true;
		return reply_error(r, ERR_UNAVAILABLE, "the server is stopping");
	}
	if (route)
		return route->handler(r);
	if (!*allow)
		return reply_error(r, ERR_NOT_FOUND, "no such route");
	r->allow = allow;
	return reply_error(r, ERR_METHOD, NULL);
}

/* By hand rather than through log_write's vsnprintf: this line is written for every request. */
static void log_request(const struct req *r)
{
	char line[LOG_LINE_MAX], value[160];
	struct strbuf b = STRBUF_INIT(line, sizeof line);
	int64_t duration_us = monotonic_us() - r->start_us; /* monotonic: never below 0 */
	strbuf_lit(&b, "msg=request method=");
	strbuf_puts(&b, log_value(value, 48,
				  r->ri->request_method ? r->ri->request_method : "-"));
	strbuf_lit(&b, " route=");
	strbuf_puts(&b, log_value(value, sizeof value, r->route));
	strbuf_lit(&b, " status=");
	strbuf_i64(&b, r->status);
	/* duration_ms with three decimals, as %.3f of duration_us / 1000.0 prints it */
	strbuf_lit(&b, " duration_ms=");
	strbuf_u64(&b, (uint64_t)duration_us / 1000, 1);
	strbuf_lit(&b, ".");
	strbuf_u64(&b, (uint64_t)duration_us % 1000, 3);
	strbuf_puts(&b, r->log_fields);
	if (r->unsent)
		strbuf_lit(&b, " unsent=true");
	log_write_text(LOG_INFO, line, b.len);
}

/* The bound on a request's arrival: CALLSTATE_REQUEST_TIMEOUT_MS, or CALLSTATE_IDLE_TIMEOUT_MS
 * when smaller, since a request that stalls must not outlive an idle connection (API.md). */
static int request_deadline_ms(const struct config *cfg)
{
	return cfg->request_timeout_ms < cfg->idle_timeout_ms ? cfg->request_timeout_ms
							      : cfg->idle_timeout_ms;
}

static int allow_all(struct mg_connection *conn, void *cbdata)
{
	(void)conn;
	(void)cbdata;
	return 1;
}

/* Framing that CivetWeb 1.15 reads one way and a proxy in front may read another (request
 * smuggling, RFC 9112 §6.3), or that it reads wrongly itself: it drops the headers past
 * MG_MAX_HEADERS, Content-Length among them, takes the first of two Content-Lengths and the
 * digits that start "45abc". NULL when the request is framed plainly. */
static const char *ambiguous_framing(const struct mg_request_info *ri)
{
	if (ri->num_headers >= MG_MAX_HEADERS)
		return "too many headers";
	const char *length = NULL;
	bool chunked = false;
	for (int i = 0; i < ri->num_headers; i++) {
		const char *name = ri->http_headers[i].name, *value = ri->http_headers[i].value;
		if (strcasecmp(name, "Transfer-Encoding") == 0) {
			if (chunked)
				return "Transfer-Encoding given twice";
			chunked = true;
		} else if (strcasecmp(name, "Content-Length") == 0) {
			if (!*value || value[strspn(value, "0123456789")])
				return "Content-Length must be decimal digits";
			if (length && strcmp(length, value) != 0)
				return "two different Content-Length headers";
			length = value;
		}
	}
	if (length && chunked)
		return "both Content-Length and Transfer-Encoding";
	return NULL;
}

static int on_request(struct mg_connection *conn, void *cbdata)
{
	const struct app *app = cbdata;
	struct server *srv = mg_get_user_data(mg_get_context(conn));
	atomic_fetch_add(&srv->in_flight, 1);
	int64_t start = monotonic_us();
	struct req r = {
		.conn = conn,
		.ri = mg_get_request_info(conn),
		.app = app,
		.start_us = start,
		.body_deadline_ns = start * 1000 + (int64_t)request_deadline_ms(app->cfg) * 1000000,
	};
	const char *given = mg_get_header(conn, "X-Request-Id");
	if (given && valid_request_id(given))
		snprintf(r.request_id, sizeof r.request_id, "%s", given);
	else
		new_request_id(r.request_id);
	log_request_begin(r.request_id);

	const char *framing = ambiguous_framing(r.ri);
	if (framing) {
		/* Closed unread: no byte of it may be taken for another request. */
		r.route = "unparsed";
		r.route_slot = ROUTE_SLOT_UNPARSED;
		r.must_close = true;
		reply_error(&r, ERR_INVALID, framing);
	} else {
		dispatch(&r, atomic_load(&srv->draining));
	}
	/* Closed here, or CivetWeb would read what is left of the body to keep the connection,
	 * with no deadline (see drop_unread_body). */
	if (r.must_close)
		mg_close_connection(conn);
	log_request(&r);
	log_request_end();
	atomic_fetch_sub(&srv->in_flight, 1);
	return r.status ? r.status : 500;
}

/* CivetWeb's own refusals (a request line or headers it cannot parse, headers that did not
 * arrive in time, an unsupported protocol) in the envelope of every other error, with a
 * request id and a log line. Returning 0 tells CivetWeb the answer was sent. */
static int on_http_error(struct mg_connection *conn, int status, const char *msg)
{
	(void)msg; /* CivetWeb's wording, which may quote the request */
	const struct mg_request_info *ri = mg_get_request_info(conn);
	const struct server *srv = mg_get_user_data(mg_get_context(conn));
	struct req r = {.conn = conn, .ri = ri, .app = srv->app, .start_us = monotonic_us(),
			.route = "unparsed", .route_slot = ROUTE_SLOT_UNPARSED,
			.must_close = true, .body_read = true};
	new_request_id(r.request_id);
	log_request_begin(r.request_id);
	enum err e = status == 413 ? ERR_TOO_LARGE : status == 500 ? ERR_INTERNAL : ERR_INVALID;
	reply_error(&r, e, e == ERR_INVALID ? "the request could not be parsed" : NULL);
	log_request(&r);
	log_request_end();
	return 0;
}

static int on_log_message(const struct mg_connection *conn, const char *message)
{
	(void)conn;
	char value[512];
	log_write(LOG_WARN, "msg=civetweb detail=%s", log_value(value, sizeof value, message));
	return 1;
}

/* The lowest usable address of this worker's stack (above its guard page). */
static _Thread_local char *stack_low;

/* Notes where this worker's stack ends, and logs once, from the first worker, the size every
 * handler runs on, as the fuzzers assume it. */
static void worker_stack_init(void)
{
	static atomic_flag logged = ATOMIC_FLAG_INIT;
	pthread_attr_t attr;
	void *addr = NULL;
	size_t size = 0, guard = 0;
	if (pthread_getattr_np(pthread_self(), &attr) != 0)
		return;
	pthread_attr_getstack(&attr, &addr, &size);
	pthread_attr_getguardsize(&attr, &guard);
	pthread_attr_destroy(&attr);
	stack_low = (char *)addr + guard;
	if (!atomic_flag_test_and_set(&logged))
		log_write(size == WORKER_STACK_BYTES ? LOG_INFO : LOG_WARN,
			  "msg=\"worker stack\" worker_stack_bytes=%zu fuzzed_with=%d", size,
			  WORKER_STACK_BYTES);
}

/* A worker that once served a deep request (a handler's buffers, a signal frame) keeps those
 * stack pages resident for good: 1536 workers that each went deep once hold ~45 MB. When a
 * connection closes, the stack below this frame goes back to the kernel (the worker only
 * waits for the next connection from here), so idle workers cost their first pages only and
 * keep-alive traffic never pays for it. */
static void on_connection_closed(const struct mg_connection *conn)
{
	(void)conn;
	enum { KEEP = 4096 }; /* below this frame: the madvise call itself, with room to spare */
	uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
	char here;
	uintptr_t low = ((uintptr_t)stack_low + page - 1) & ~(page - 1);
	uintptr_t high = ((uintptr_t)&here - KEEP) & ~(page - 1);
	if (stack_low && high > low)
		madvise((void *)low, high - low, MADV_DONTNEED);
}

/* CivetWeb calls this first thing in each of its threads; workers get a deadline slot. */
static void *on_init_thread(const struct mg_context *ctx, int thread_type)
{
	enum { CIVETWEB_WORKER = 1 };
	const struct server *srv = mg_get_user_data(ctx);
	if (thread_type == CIVETWEB_WORKER) {
		worker_stack_init();
		deadlines_thread_init(srv->deadlines);
	}
	return NULL;
}

/* mg_stop makes every later write of a handler fail, so the requests in flight are answered
 * first: new ones are refused meanwhile, and long polls answer with what they have. */
static void drain(struct server *srv)
{
	atomic_store(&srv->draining, true);
	long_polls_end(srv->app->st);
	int64_t until_ms = clock_monotonic_ms() + request_deadline_ms(srv->app->cfg) +
			   DRAIN_EXTRA_MS;
	while (atomic_load(&srv->in_flight) > 0 && clock_monotonic_ms() < until_ms)
		nanosleep(&(struct timespec){.tv_nsec = DRAIN_POLL_MS * 1000000L}, NULL);
	int left = atomic_load(&srv->in_flight);
	if (left > 0)
		log_write(LOG_WARN, "msg=\"requests still in flight at stop\" requests=%d", left);
}

static void server_free(struct server *srv)
{
	if (srv->ctx) {
		drain(srv);
		mg_stop(srv->ctx);
	}
	deadlines_stop(srv->deadlines);
	free(srv);
}

enum err server_start(const struct app *app, struct server **ret_srv)
{
	const struct config *cfg = app->cfg;
	char listen[300], threads[16], idle_timeout[16], request_timeout[16];
	bool v6 = strchr(cfg->listen_host, ':') != NULL;
	snprintf(listen, sizeof listen, v6 ? "[%s]:%d" : "%s:%d", cfg->listen_host,
		 cfg->listen_port);
	snprintf(threads, sizeof threads, "%d", cfg->threads);
	snprintf(idle_timeout, sizeof idle_timeout, "%d", cfg->idle_timeout_ms);
	snprintf(request_timeout, sizeof request_timeout, "%d", request_deadline_ms(cfg));
	const char *options[] = {
		"listening_ports", listen,
		"num_threads", threads,
		"enable_keep_alive", "yes",
		/* Headers of a request after the first on a connection: idle time included. */
		"keep_alive_timeout_ms", idle_timeout,
		/* Headers of a connection's first request, from when a worker takes it; also the
		 * longest wait for one byte of a body or one write of an answer. The body as a
		 * whole is bounded by the deadline of read_body(). */
		"request_timeout_ms", request_timeout,
		"tcp_nodelay", "1",
		"listen_backlog", "1024",
		/* A presence query names up to 200 ids of 128 bytes, percent-encoded. */
		"max_request_size", "131072",
		"connection_queue", "1024",
		/* Paths are decoded by callstate, one segment at a time (see uri.h). */
		"decode_url", "no",
		NULL,
	};
	struct mg_callbacks callbacks = {
		.log_message = on_log_message,
		.http_error = on_http_error,
		.init_thread = on_init_thread,
		.connection_closed = on_connection_closed,
	};
	struct server *srv = calloc(1, sizeof *srv);
	if (!srv)
		return ERR_NOMEM;
	srv->app = app;
	atomic_init(&srv->in_flight, 0);
	atomic_init(&srv->draining, false);
	enum err e = deadlines_start(cfg->threads, &srv->deadlines);
	if (e != ERR_OK) {
		free(srv);
		return e;
	}
	srv->ctx = mg_start(&callbacks, srv, options);
	if (!srv->ctx) {
		char value[320];
		log_write(LOG_ERROR, "msg=\"cannot listen\" listen=%s",
			  log_value(value, sizeof value, listen));
		server_free(srv);
		return ERR_UNAVAILABLE;
	}
	/* Each route checks its own bearer token or signature; without a handler of its own,
	 * CivetWeb would look for an .htpasswd file on every request. */
	mg_set_auth_handler(srv->ctx, "**", allow_all, NULL);
	mg_set_request_handler(srv->ctx, "**", on_request, (void *)app);
	*ret_srv = srv;
	return ERR_OK;
}

bool server_stopping(const struct mg_connection *conn)
{
	const struct server *srv = conn ? mg_get_user_data(mg_get_context(conn)) : NULL;
	return srv && atomic_load(&srv->draining);
}

void server_stop(struct server *srv)
{
	if (srv)
		server_free(srv);
}

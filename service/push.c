/* One thread queues the feed past the delivery cursor into the deliveries table; PUSH_SENDERS
 * threads each claim up to PUSH_BATCH events (the due heads of several orders, a call or the
 * presence events, each with what is queued behind it), POST them over up to PUSH_FANOUT
 * connections they keep alive, the events of different orders at once and each order's one
 * after another, and record the outcomes with their next claim in one transaction. The
 * request path writes nothing for push: the queue is filled from the feed, which is durable
 * already. A receiver that hangs on one call holds its sender for at most the 10 s timeout:
 * answers are read in the order the requests went, so the rest of that sender's batch waits
 * that long at most, once, since a sender tries the heads never tried before first and starts
 * nothing after PUSH_ROUND_MS (it gives back what it did not start); the other senders go on.
 * Senders with nothing due sleep until the queue thread wakes them or the earliest retry comes
 * due. */
#include "push.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <civetweb.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "clock.h"
#include "deadline.h"
#include "log.h"
#include "routes.h"
#include "threadname.h"
#include "tls_name.h"

#define PUSH_SENDERS 4
#define PUSH_BATCH 64
/* A sender keeps this many connections, each with one request in flight at most: the heads of
 * different orders go at once, and a sender blocks once for several answers rather than once
 * per event (CivetWeb's client cannot pipeline: mg_get_response drops what it read early). */
#define PUSH_FANOUT 8
#define PUSH_TIMEOUT_MS 10000
/* A sender starts no attempt this long after its round began; it gives back the heads it did
 * not try. */
#define PUSH_ROUND_MS 2000
/* A claimed head stays with its sender this long: the round, CivetWeb's own 10 s to connect,
 * the 10 s for the answer, and some slack. After a crash, what was in flight waits this long. */
#define PUSH_CONNECT_TIMEOUT_MS 10000
#define PUSH_LEASE_MS (PUSH_ROUND_MS + PUSH_CONNECT_TIMEOUT_MS + PUSH_TIMEOUT_MS + 5000)
#define PUSH_BACKOFF_FIRST_MS 1000
#define PUSH_BACKOFF_MAX_MS (10 * 60 * 1000)
#define PUSH_GIVE_UP_MS (24LL * 3600 * 1000)
/* An idle sender looks again after this long at most, for heads that another instance's
 * crashed sender leaves behind when its lease ends (those wake no one here). */
#define PUSH_IDLE_MAX_MS 30000
/* The answer's body is read (and dropped) to keep the connection; a longer one closes it. */
#define PUSH_ANSWER_BODY_MAX (64 * 1024)
#define PUSH_QUEUE_PAGE 200
#define PUSH_QUEUE_WAIT_MS 1000

static _Atomic uint64_t n_delivered, n_retried, n_dead, n_stopped;

struct push {
	const struct config *cfg;
	struct storage *st;
	struct events_target target;
	struct deadlines *deadlines; /* one slot per sender: a body read cannot outlast the timeout */
	pthread_t queuer;
	struct sender *senders;      /* PUSH_SENDERS of them */
	size_t n_senders;            /* started */
	bool queuer_started;
	atomic_bool stop;
	atomic_bool stop_logged; /* the 410 is logged once per process */
	pthread_mutex_t mu;
	pthread_cond_t wake;
	uint64_t wakes;          /* under mu: a sender that saw it change does not sleep */
};

/* What came of one claimed delivery in a round. */
struct outcome {
	bool tried;
	enum delivery_state state;
	int64_t next_at;
	char error[DELIVERY_ERROR_MAX + 1];
};

/* One of a sender's connections to the receiver, kept alive between requests, with one
 * request in flight at most. */
struct link {
	struct mg_connection *conn; /* NULL when closed */
	bool reused;                /* the request in flight went on a connection kept from before */
	bool busy;                  /* a request in flight: ev, the event order next of the round */
	const struct event *ev;
	size_t order;
	int64_t written_ns;         /* when it was written: its 10 s run from there */
	uint64_t sent;              /* the sender's count of requests then: answers are read oldest first */
};

/* One order of a round: its claimed deliveries from next to end, sent one at a time. */
struct order {
	size_t next, end;
	bool busy;   /* next is in flight */
	bool halted; /* next failed: the rest waits for its retry */
};

struct round {
	const struct event_page *page;
	struct order orders[PUSH_BATCH];
	size_t n_orders;
	int64_t started;
	bool gone; /* a 410: nothing more is started */
};

struct sender {
	struct push *p;
	pthread_t thread;
	struct link links[PUSH_FANOUT];
	uint64_t sent;
	/* The round sent last: its claimed deliveries (each head followed by those behind it) and
	 * what came of them, to be recorded by the next round's transaction. */
	struct delivery claimed[PUSH_BATCH];
	struct outcome outcome[PUSH_BATCH];
	size_t n;
	/* The claim of that transaction, apart: a transaction may run more than once. */
	struct delivery next[PUSH_BATCH];
	size_t n_next;
	int64_t next_due;
	int64_t now;
	bool stopping; /* record the outcomes only, claim nothing */
};

void push_counts(struct push_counts *ret)
{
	*ret = (struct push_counts){atomic_load(&n_delivered), atomic_load(&n_retried),
				    atomic_load(&n_dead), atomic_load(&n_stopped)};
}

bool push_sign(const struct config *cfg, const char *id, long long timestamp,
	       const char *body, size_t len, char *out, size_t cap)
{
	char prefix[128];
	int n = snprintf(prefix, sizeof prefix, "%s.%lld.", id, timestamp);
	if (n <= 0 || (size_t)n >= sizeof prefix)
		return false;
	unsigned char *message = malloc((size_t)n + len);
	if (!message)
		return false;
	memcpy(message, prefix, (size_t)n);
	memcpy(message + n, body, len);
	size_t used = 0;
	bool ok = true;
	out[0] = '\0';
	for (size_t k = 0; k < cfg->n_events_keys && ok; k++) {
		unsigned char mac[EVP_MAX_MD_SIZE];
		unsigned int mac_len = 0;
		char b64[64];
		ok = HMAC(EVP_sha256(), cfg->events_keys[k].bytes, (int)cfg->events_keys[k].len,
			  message, (size_t)n + len, mac, &mac_len) != NULL;
		if (ok)
			EVP_EncodeBlock((unsigned char *)b64, mac, (int)mac_len);
		int w = ok ? snprintf(out + used, cap - used, "%sv1,%s", used ? " " : "", b64) : 0;
		ok = ok && w > 0 && (size_t)w < cap - used;
		used += ok ? (size_t)w : 0;
	}
	free(message);
	return ok;
}

/* Backoff before attempt attempts + 1: 1 s doubling to 10 min, plus up to a quarter more at
 * random, so that receivers coming back are not hit by every retry at once. */
static int64_t backoff_ms(int attempts)
{
	int64_t base = PUSH_BACKOFF_FIRST_MS;
	for (int i = 1; i < attempts && base < PUSH_BACKOFF_MAX_MS; i++)
		base *= 2;
	if (base > PUSH_BACKOFF_MAX_MS)
		base = PUSH_BACKOFF_MAX_MS;
	uint32_t r = 0;
	if (RAND_bytes((unsigned char *)&r, sizeof r) != 1)
		r = 0;
	int64_t delay = base + (int64_t)(r % (uint32_t)(base / 4 + 1));
	return delay > PUSH_BACKOFF_MAX_MS ? PUSH_BACKOFF_MAX_MS : delay;
}

/* ---- the queueing thread ---- */

struct enqueue_arg {
	int64_t from;
	const struct event_page *page;
};

static enum err enqueue_tx(struct storage_tx *tx, void *arg)
{
	struct enqueue_arg *a = arg;
	return storage_tx_delivery_enqueue(tx, a->from, a->page);
}

/* Wakes n idle senders (all for n >= PUSH_SENDERS), and keeps those about to sleep awake. */
static void wake_senders(struct push *p, size_t n)
{
	pthread_mutex_lock(&p->mu);
	p->wakes++;
	if (n >= PUSH_SENDERS)
		pthread_cond_broadcast(&p->wake);
	for (size_t i = 0; i < n && n < PUSH_SENDERS; i++)
		pthread_cond_signal(&p->wake);
	pthread_mutex_unlock(&p->mu);
}

static uint64_t wakes_now(struct push *p)
{
	pthread_mutex_lock(&p->mu);
	uint64_t wakes = p->wakes;
	pthread_mutex_unlock(&p->mu);
	return wakes;
}

/* Sleeps for wait_ms at most, unless woken since wakes was seen. */
static void idle(struct push *p, uint64_t seen, int64_t wait_ms)
{
	struct timespec until;
	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += wait_ms / 1000;
	until.tv_nsec += (wait_ms % 1000) * 1000000L;
	until.tv_sec += until.tv_nsec / 1000000000L;
	until.tv_nsec %= 1000000000L;
	pthread_mutex_lock(&p->mu);
	while (!atomic_load(&p->stop) && p->wakes == seen &&
	       pthread_cond_timedwait(&p->wake, &p->mu, &until) == 0)
		;
	pthread_mutex_unlock(&p->mu);
}

static void *queue_thread(void *arg)
{
	struct push *p = arg;
	thread_name("cs-push-queue");
	while (!atomic_load(&p->stop)) {
		int64_t cursor = 0;
		struct event_page page = {0};
		enum err e = storage_delivery_cursor(p->st, &cursor);
		if (e == ERR_OK)
			e = storage_events_after(p->st, cursor, PUSH_QUEUE_PAGE, &page);
		if (e == ERR_OK && page.n > 0) {
			struct enqueue_arg a = {cursor, &page};
			e = storage_transact(p->st, enqueue_tx, &a);
			if (e == ERR_OK || e == ERR_CONFLICT) /* queued here, or by another instance */
				wake_senders(p, 1 + page.n / PUSH_BATCH);
		}
		bool more = e == ERR_OK && page.n == PUSH_QUEUE_PAGE;
		bool conflict = e == ERR_CONFLICT; /* another instance queued them */
		event_page_finish(&page);
		if (more || conflict)
			continue;
		if (e != ERR_OK) {
			log_write(LOG_WARN, "msg=\"push cannot queue events\" error=%s", err_code(e));
			usleep(PUSH_QUEUE_WAIT_MS * 1000);
			continue;
		}
		int64_t seen = cursor;
		storage_events_wait(p->st, &seen, clock_monotonic_ms() + PUSH_QUEUE_WAIT_MS);
	}
	return NULL;
}

/* ---- the sending threads ---- */

/* Records the outcomes of the round sent last, each order advanced after its own, and claims
 * the next round (unless stopping). */
static enum err round_tx(struct storage_tx *tx, void *arg)
{
	struct sender *s = arg;
	const char *url = s->p->cfg->events_url;
	enum err e = ERR_OK;
	for (size_t i = 0; i < s->n && e == ERR_OK; i++) {
		const struct delivery *d = &s->claimed[i];
		const struct outcome *o = &s->outcome[i];
		if (o->tried)
			e = storage_tx_delivery_settle(tx, d, o->state, o->next_at, url,
						       o->state == DELIVERY_DELIVERED ? NULL : o->error,
						       s->now);
		else if (d->leased) /* not started: given back, due again at once */
			e = storage_tx_delivery_settle(tx, d, DELIVERY_PENDING, s->now, url, NULL,
						       s->now);
		bool order_ends = i + 1 == s->n || s->claimed[i + 1].leased;
		if (e == ERR_OK && order_ends)
			e = storage_tx_delivery_advance(tx, d->order_key);
	}
	s->n_next = 0;
	if (e != ERR_OK || s->stopping)
		return e;
	return storage_tx_delivery_claim(tx, url, s->now, s->now + PUSH_LEASE_MS, PUSH_BATCH,
					 s->next, &s->n_next, &s->next_due);
}

/* Whether a header name lists token among its comma-separated values. */
static bool header_has(const struct mg_response_info *info, const char *name, const char *token)
{
	size_t len = strlen(token);
	for (int i = 0; i < info->num_headers; i++) {
		if (strcasecmp(info->http_headers[i].name, name) != 0)
			continue;
		for (const char *v = info->http_headers[i].value; *v;) {
			v += strspn(v, " \t,");
			size_t n = strcspn(v, ",");
			size_t end = n;
			while (end > 0 && (v[end - 1] == ' ' || v[end - 1] == '\t'))
				end--;
			if (end == len && strncasecmp(v, token, len) == 0)
				return true;
			v += n;
		}
	}
	return false;
}

/* Reads the answer's body to its end, so that the connection can carry the next request;
 * false when it cannot: HTTP/1.0, "Connection: close", a body without a length (it ends with
 * the connection), too long, cut, or past the deadline. */
static bool answer_drained(struct mg_connection *conn, const struct mg_response_info *info)
{
	int status = info->status_code;
	if (strcmp(info->http_version, "1.1") != 0 || header_has(info, "Connection", "close"))
		return false;
	if (status < 200 || status == 204 || status == 304)
		return true;
	if (info->content_length < 0 && !header_has(info, "Transfer-Encoding", "chunked"))
		return false;
	if (info->content_length > PUSH_ANSWER_BODY_MAX)
		return false;
	char sink[4096];
	long long total = 0;
	int r;
	while ((r = mg_read(conn, sink, sizeof sink)) > 0)
		if ((total += r) > PUSH_ANSWER_BODY_MAX)
			return false;
	return r == 0 && !deadline_passed();
}

static void hang_up(struct link *c)
{
	if (c->conn)
		mg_close_connection(c->conn);
	c->conn = NULL;
}

static int by_seq(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

static const struct event *event_of(const struct event_page *page, int64_t seq)
{
	size_t lo = 0, hi = page->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (page->events[mid].seq < seq)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < page->n && page->events[lo].seq == seq ? &page->events[lo] : NULL;
}

/* Arms the thread's deadline at at_ns; false when the push is stopping. After arming: push_stop
 * either sees this deadline to expire, or is seen here. */
static bool deadline_armed(struct push *p, int64_t at_ns)
{
	deadline_arm(at_ns);
	return !atomic_load(&p->stop);
}

/* Writes the request for ev on c, connected first if it has no connection; false with error
 * set when it cannot (c is then closed). */
static bool request_write(struct sender *s, struct link *c, const struct event *ev,
			  char *error, size_t cap)
{
	const struct events_target *t = &s->p->target;
	c->reused = c->conn != NULL;
	if (!c->conn) {
		char ebuf[256] = "";
		struct mg_client_options opts = {.host = t->host, .port = t->port,
						 .server_cert = s->p->cfg->events_ca_file,
						 .host_name = t->host};
		c->conn = t->tls ? mg_connect_client_secure(&opts, ebuf, sizeof ebuf)
				 : mg_connect_client(t->host, t->port, 0, ebuf, sizeof ebuf);
		if (!c->conn) {
			snprintf(error, cap, "cannot connect: %s", ebuf);
			return false;
		}
	}
	size_t len = 0;
	char *body = event_json(ev, &len);
	long long timestamp = (long long)(clock_now_ms(&clock_system) / 1000);
	char signature[PUSH_SIGNATURE_MAX];
	/* One write for the head and the body: two would wait for the receiver's delayed ACK of
	 * the first (Nagle's algorithm; CivetWeb's client sets no TCP_NODELAY), 40 ms each. */
	char head[2048];
	int n = -1;
	if (body && push_sign(s->p->cfg, ev->id, timestamp, body, len, signature, sizeof signature))
		n = snprintf(head, sizeof head,
			     "POST %s HTTP/1.1\r\nHost: %s:%d\r\nUser-Agent: callstate\r\n"
			     "Content-Type: application/json\r\nContent-Length: %zu\r\n"
			     "webhook-id: %s\r\nwebhook-timestamp: %lld\r\nwebhook-signature: %s\r\n\r\n",
			     t->path, t->host, t->port, len, ev->id, timestamp, signature);
	size_t size = n > 0 && (size_t)n < sizeof head ? (size_t)n + len : 0;
	char *request = size ? malloc(size) : NULL;
	bool ok = request != NULL;
	if (!ok) {
		snprintf(error, cap, "cannot make the request");
	} else {
		memcpy(request, head, (size_t)n);
		memcpy(request + n, body, len);
		c->written_ns = monotonic_ns();
		if (!(ok = deadline_armed(s->p, c->written_ns + PUSH_TIMEOUT_MS * 1000000LL)))
			snprintf(error, cap, "stopping");
		else if (!(ok = mg_write(c->conn, request, size) == (int)size))
			snprintf(error, cap, "cannot send the request");
		deadline_disarm();
	}
	free(request);
	free(body);
	if (!ok)
		hang_up(c);
	return ok;
}

/* Reads the answer to c's request: the HTTP status, or 0 with error set. The deadline, 10 s
 * after the request was written, interrupts a read that CivetWeb would let run on
 * (deadline.h). */
static int answer_read(struct sender *s, struct link *c, char *error, size_t cap)
{
	char ebuf[256] = "";
	int status = 0;
	bool keep = false;
	if (!deadline_armed(s->p, c->written_ns + PUSH_TIMEOUT_MS * 1000000LL)) {
		snprintf(error, cap, "stopping");
	} else if (mg_get_response(c->conn, ebuf, sizeof ebuf, PUSH_TIMEOUT_MS) < 0) {
		snprintf(error, cap, "no answer within %d s: %s", PUSH_TIMEOUT_MS / 1000, ebuf);
	} else {
		const struct mg_response_info *info = mg_get_response_info(c->conn);
		status = info ? info->status_code : 0;
		if (!status)
			snprintf(error, cap, "unreadable answer");
		else
			snprintf(error, cap, "HTTP %d", status);
		keep = status && answer_drained(c->conn, info);
	}
	deadline_disarm();
	if (!keep)
		hang_up(c);
	return status;
}

/* Records what came of the attempt at order k's event in flight (status 0: no answer), and
 * moves the order on past it when it is done with. */
static void settle(struct sender *s, struct round *r, size_t k, int status)
{
	struct push *p = s->p;
	struct order *ord = &r->orders[k];
	struct delivery *d = &s->claimed[ord->next];
	struct outcome *o = &s->outcome[ord->next];
	int64_t now = clock_now_ms(&clock_system);
	ord->busy = false;
	d->attempts++;
	if (!d->first_attempt_at)
		d->first_attempt_at = now;
	if (status >= 200 && status < 300) {
		atomic_fetch_add(&n_delivered, 1);
		ord->next++;
		return;
	}
	if (status == 410) {
		o->state = DELIVERY_STOPPED;
		ord->halted = r->gone = true;
		atomic_fetch_add(&n_stopped, 1);
		if (!atomic_exchange(&p->stop_logged, true))
			log_write(LOG_WARN,
				  "msg=\"push stopped: the receiver answered 410 Gone\" seq=%" PRId64,
				  d->seq);
		return;
	}
	o->next_at = now + backoff_ms(d->attempts);
	o->state = o->next_at - d->first_attempt_at > PUSH_GIVE_UP_MS ? DELIVERY_DEAD
									 : DELIVERY_PENDING;
	atomic_fetch_add(o->state == DELIVERY_DEAD ? &n_dead : &n_retried, 1);
	ord->halted = o->state == DELIVERY_PENDING; /* the rest of the order waits for its retry */
	if (o->state == DELIVERY_DEAD) { /* given up: the order goes on without it */
		ord->next++;
		log_write(LOG_WARN,
			  "msg=\"push gave up on an event after 24 h\" seq=%" PRId64 " attempts=%d",
			  d->seq, d->attempts);
	}
}

/* Whether a request that failed on c may go once more on a new connection: c was kept from an
 * earlier request, and the receiver closed it while it was idle (the failure came at once). */
static bool closed_while_idle(const struct sender *s, const struct round *r,
			      const struct link *c, int64_t failed_after_ms)
{
	return c->reused && failed_after_ms <= 1000 && !r->gone && !atomic_load(&s->p->stop);
}

/* Starts the attempt at order k's next event on c. */
static void start(struct sender *s, struct round *r, struct link *c, size_t k)
{
	struct order *ord = &r->orders[k];
	size_t i = ord->next;
	struct outcome *o = &s->outcome[i];
	*o = (struct outcome){.tried = true, .state = DELIVERY_DELIVERED};
	const struct event *ev = event_of(r->page, s->claimed[i].seq);
	if (!ev) { /* gone from the feed: done with */
		ord->next++;
		return;
	}
	bool ok = request_write(s, c, ev, o->error, sizeof o->error);
	if (!ok && closed_while_idle(s, r, c, 0))
		ok = request_write(s, c, ev, o->error, sizeof o->error);
	if (!ok) {
		settle(s, r, k, 0);
		return;
	}
	ord->busy = c->busy = true;
	c->ev = ev;
	c->order = k;
	c->sent = ++s->sent;
}

/* Reads the answer on c, the oldest request in flight, and settles its attempt; or writes the
 * request once more, on a new connection, when the receiver closed c while it was idle. */
static void finish(struct sender *s, struct round *r, struct link *c)
{
	struct outcome *o = &s->outcome[r->orders[c->order].next];
	int64_t started = clock_monotonic_ms();
	int status = answer_read(s, c, o->error, sizeof o->error);
	/* A new connection is not reused: this happens once per attempt at most. */
	if (!status && closed_while_idle(s, r, c, clock_monotonic_ms() - started) &&
	    request_write(s, c, c->ev, o->error, sizeof o->error)) {
		c->sent = ++s->sent;
		return;
	}
	c->busy = false;
	settle(s, r, c->order, status);
}

/* A connection with no request in flight, one kept open first; NULL when all are busy. */
static struct link *link_free(struct sender *s)
{
	struct link *closed = NULL;
	for (size_t j = 0; j < PUSH_FANOUT; j++) {
		struct link *c = &s->links[j];
		if (!c->busy && c->conn)
			return c;
		if (!c->busy && !closed)
			closed = c;
	}
	return closed;
}

/* The connection whose request was written first of those in flight; NULL when none is. */
static struct link *link_oldest(struct sender *s)
{
	struct link *oldest = NULL;
	for (size_t j = 0; j < PUSH_FANOUT; j++)
		if (s->links[j].busy && (!oldest || s->links[j].sent < oldest->sent))
			oldest = &s->links[j];
	return oldest;
}

/* The first order (never tried heads come first) with an event to send and none in flight;
 * r->n_orders when none has. */
static size_t order_ready(const struct round *r)
{
	size_t k = 0;
	while (k < r->n_orders && (r->orders[k].busy || r->orders[k].halted ||
				   r->orders[k].next == r->orders[k].end))
		k++;
	return k;
}

/* Starts attempts on free connections while an order has an event to send, until the round's
 * PUSH_ROUND_MS have passed, a 410 or the stop. */
static void fill(struct sender *s, struct round *r)
{
	while (!r->gone && !atomic_load(&s->p->stop) &&
	       clock_monotonic_ms() - r->started <= PUSH_ROUND_MS) {
		struct link *c = link_free(s);
		size_t k = order_ready(r);
		if (!c || k == r->n_orders)
			return;
		start(s, r, c, k);
	}
}

/* Sends the claimed deliveries, the events of different orders at once on up to PUSH_FANOUT
 * connections, each order's in seq order, one at a time, until one of its events fails; false
 * when their events cannot be read (nothing tried: the heads are given back). */
static bool send_round(struct sender *s)
{
	int64_t seqs[PUSH_BATCH];
	struct event_page page = {0};
	for (size_t i = 0; i < s->n; i++) {
		s->outcome[i].tried = false;
		seqs[i] = s->claimed[i].seq;
	}
	qsort(seqs, s->n, sizeof *seqs, by_seq);
	if (storage_events_get(s->p->st, seqs, s->n, &page) != ERR_OK)
		return false;
	struct round r = {.page = &page, .started = clock_monotonic_ms()};
	for (size_t i = 0; i < s->n; i++) {
		if (s->claimed[i].leased || r.n_orders == 0) /* a head starts an order */
			r.orders[r.n_orders++] = (struct order){.next = i};
		r.orders[r.n_orders - 1].end = i + 1;
	}
	for (;;) {
		fill(s, &r);
		struct link *c = link_oldest(s);
		if (!c)
			break;
		finish(s, &r, c);
	}
	event_page_finish(&page);
	return true;
}

static void *send_thread(void *arg)
{
	struct sender *s = arg;
	struct push *p = s->p;
	thread_name("cs-push-send");
	deadlines_thread_init(p->deadlines);
	while (!atomic_load(&p->stop)) {
		uint64_t seen = wakes_now(p);
		s->now = clock_now_ms(&clock_system);
		enum err e = storage_transact(p->st, round_tx, s);
		if (e != ERR_OK && s->n) /* their leases end, and they are sent again */
			log_write(LOG_WARN, "msg=\"push cannot record attempts\" events=%zu error=%s",
				  s->n, err_code(e));
		s->n = 0;
		if (e != ERR_OK) {
			idle(p, seen, PUSH_QUEUE_WAIT_MS);
			continue;
		}
		if (s->n_next == 0) {
			/* 10 ms at least: a head due but leased by another instance this moment. */
			int64_t wait = s->next_due - clock_now_ms(&clock_system);
			idle(p, seen, wait < 10 ? 10 : wait > PUSH_IDLE_MAX_MS ? PUSH_IDLE_MAX_MS : wait);
			continue;
		}
		memcpy(s->claimed, s->next, s->n_next * sizeof *s->next);
		s->n = s->n_next;
		if (s->n == PUSH_BATCH) /* more may be due: another sender can take it */
			wake_senders(p, 1);
		if (!send_round(s)) /* not at once again: the feed cannot be read now */
			idle(p, wakes_now(p), PUSH_QUEUE_WAIT_MS);
	}
	/* The outcomes of the round sent just before the stop. */
	s->stopping = true;
	s->now = clock_now_ms(&clock_system);
	if (s->n && storage_transact(p->st, round_tx, s) != ERR_OK)
		log_write(LOG_WARN, "msg=\"push cannot record attempts\" events=%zu", s->n);
	for (size_t j = 0; j < PUSH_FANOUT; j++)
		hang_up(&s->links[j]);
	return NULL;
}

enum err push_start(const struct config *cfg, struct storage *st, struct push **ret_p)
{
	*ret_p = NULL;
	if (!cfg->events_url || !*cfg->events_url)
		return ERR_OK;
	struct push *p = calloc(1, sizeof *p);
	if (!p)
		return ERR_NOMEM;
	p->cfg = cfg;
	p->st = st;
	if (!config_events_target(cfg->events_url, &p->target)) {
		free(p);
		return ERR_INVALID;
	}
	if (p->target.tls && !tls_name_require(p->target.host)) {
		free(p);
		return ERR_INTERNAL;
	}
	pthread_condattr_t attr;
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->wake, &attr);
	pthread_condattr_destroy(&attr);
	p->senders = calloc(PUSH_SENDERS, sizeof *p->senders);
	bool ok = p->senders && deadlines_start(PUSH_SENDERS, &p->deadlines) == ERR_OK;
	ok = ok && pthread_create(&p->queuer, NULL, queue_thread, p) == 0;
	p->queuer_started = ok;
	for (size_t i = 0; ok && i < PUSH_SENDERS; i++) {
		p->senders[i].p = p;
		ok = pthread_create(&p->senders[i].thread, NULL, send_thread, &p->senders[i]) == 0;
		p->n_senders += ok;
	}
	if (!ok) {
		push_stop(p);
		return ERR_NOMEM;
	}
	*ret_p = p;
	return ERR_OK;
}

void push_stop(struct push *p)
{
	if (!p)
		return;
	atomic_store(&p->stop, true);
	/* An attempt in flight ends now, to be made again after the restart, rather than make
	 * the stop wait for a receiver's 10 s. */
	if (p->deadlines)
		deadlines_expire(p->deadlines);
	wake_senders(p, PUSH_SENDERS);
	if (p->queuer_started)
		pthread_join(p->queuer, NULL);
	for (size_t i = 0; i < p->n_senders; i++)
		pthread_join(p->senders[i].thread, NULL);
	deadlines_stop(p->deadlines);
	free(p->senders);
	pthread_cond_destroy(&p->wake);
	pthread_mutex_destroy(&p->mu);
	free(p);
}

void push_metrics_text(struct metrics_text *t, const struct delivery_status *status,
		       int64_t now)
{
	struct push_counts c;
	push_counts(&c);
	metrics_family(t, "callstate_push_attempts_total", "counter",
		       "Attempts to push feed events to CALLSTATE_EVENTS_URL, by what came of them");
	metrics_printf(t, "callstate_push_attempts_total{result=\"delivered\"} %" PRIu64 "\n",
		       c.delivered);
	metrics_printf(t, "callstate_push_attempts_total{result=\"retried\"} %" PRIu64 "\n",
		       c.retried);
	metrics_printf(t, "callstate_push_attempts_total{result=\"dead\"} %" PRIu64 "\n", c.dead);
	metrics_printf(t, "callstate_push_attempts_total{result=\"stopped\"} %" PRIu64 "\n",
		       c.stopped);
	metrics_family(t, "callstate_push_backlog", "gauge", "Events waiting to be pushed");
	metrics_printf(t, "callstate_push_backlog %" PRId64 "\n", status->backlog);
	metrics_family(t, "callstate_push_oldest_undelivered_age_seconds", "gauge",
		       "Age of the oldest event waiting to be pushed (0 when none)");
	metrics_printf(t, "callstate_push_oldest_undelivered_age_seconds %.3f\n",
		       status->oldest_at ? (double)(now - status->oldest_at) / 1000.0 : 0.0);
	metrics_family(t, "callstate_push_dead_events", "gauge",
		       "Events given up on after 24 h of failed attempts");
	metrics_printf(t, "callstate_push_dead_events %" PRId64 "\n", status->dead);
	metrics_family(t, "callstate_push_stopped", "gauge",
		       "1 once the receiver answered 410 Gone: nothing more is pushed to it");
	metrics_printf(t, "callstate_push_stopped %d\n", status->stopped > 0);
}

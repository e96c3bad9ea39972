/* One thread queues the feed past the delivery cursor into the deliveries table; PUSH_SENDERS
 * threads each claim the head of one order (a call, or the presence events), POST it, and
 * record the outcome. The request path writes nothing for push: the queue is filled from the
 * feed, which is durable already. A call whose receiver hangs holds one sender for at most
 * the 10 s timeout, and only its own order, since a claimed head is leased. */
#include "push.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <civetweb.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "clock.h"
#include "log.h"
#include "routes.h"
#include "threadname.h"

#define PUSH_SENDERS 4
#define PUSH_TIMEOUT_MS 10000
/* A claimed head stays with its sender this long: CivetWeb's own 10 s to connect, the 10 s
 * for the answer, and some slack. After a crash, what was in flight waits this long. */
#define PUSH_CONNECT_TIMEOUT_MS 10000
#define PUSH_LEASE_MS (PUSH_CONNECT_TIMEOUT_MS + PUSH_TIMEOUT_MS + 5000)
#define PUSH_BACKOFF_FIRST_MS 1000
#define PUSH_BACKOFF_MAX_MS (10 * 60 * 1000)
#define PUSH_GIVE_UP_MS (24LL * 3600 * 1000)
/* A sender with nothing due looks again this often (a retry may come due meanwhile). */
#define PUSH_IDLE_MS 1000
#define PUSH_QUEUE_PAGE 200
#define PUSH_QUEUE_WAIT_MS 1000
/* System CA certificates: an https receiver must present a certificate they vouch for. */
#define PUSH_CA_FILE "/etc/ssl/certs/ca-certificates.crt"

static _Atomic uint64_t n_delivered, n_retried, n_dead, n_stopped;

struct push {
	const struct config *cfg;
	struct storage *st;
	struct events_target target;
	pthread_t queuer;
	pthread_t senders[PUSH_SENDERS];
	size_t n_senders;
	bool queuer_started;
	atomic_bool stop;
	atomic_bool stop_logged; /* the 410 is logged once per process */
	pthread_mutex_t mu;
	pthread_cond_t wake;
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

/* Wakes n idle senders (all for n >= PUSH_SENDERS): one per event queued, since a claim that
 * finds nothing costs a transaction. */
static void wake_senders(struct push *p, size_t n)
{
	pthread_mutex_lock(&p->mu);
	if (n >= PUSH_SENDERS)
		pthread_cond_broadcast(&p->wake);
	for (size_t i = 0; i < n && n < PUSH_SENDERS; i++)
		pthread_cond_signal(&p->wake);
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
			if (e == ERR_OK)
				wake_senders(p, page.n);
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

/* A sender's round: the outcome of its last attempt, if any, and the claim of its next
 * delivery, in one transaction (one sync on SQLite instead of two). */
struct round {
	bool settle;                     /* the fields of the outcome below are set */
	struct delivery d;               /* the attempted delivery, then the claimed one */
	enum delivery_state state;
	int64_t next_at;
	char error[DELIVERY_ERROR_MAX + 1];
	bool has_error;
	const char *url;
	int64_t now;
	bool stopping;                   /* record the outcome only, claim nothing */
	bool claimed;
	struct delivery next_claim;
};

static enum err round_tx(struct storage_tx *tx, void *arg)
{
	struct round *r = arg;
	struct delivery claimed = {0};
	r->claimed = false;
	if (r->settle) {
		enum err e = storage_tx_delivery_settle(tx, &r->d, r->state, r->next_at, r->url,
							r->has_error ? r->error : NULL, r->now);
		if (e != ERR_OK)
			return e;
	}
	if (r->stopping)
		return ERR_OK;
	enum err e = storage_tx_delivery_claim(tx, r->url, r->now, r->now + PUSH_LEASE_MS,
					       &claimed);
	if (e == ERR_NOT_FOUND) /* nothing due: the outcome commits alone (rule 3) */
		return ERR_OK;
	if (e == ERR_OK) {
		r->claimed = true;
		r->next_claim = claimed;
	}
	return e;
}

/* POSTs body to the target; the HTTP status, or 0 with error set when there is none. */
static int post(const struct push *p, const struct event *ev, const char *body, size_t len,
		char *error, size_t cap)
{
	const struct events_target *t = &p->target;
	char ebuf[256] = "";
	struct mg_client_options opts = {.host = t->host, .port = t->port,
					 .server_cert = PUSH_CA_FILE, .host_name = t->host};
	struct mg_connection *conn = t->tls
		? mg_connect_client_secure(&opts, ebuf, sizeof ebuf)
		: mg_connect_client(t->host, t->port, 0, ebuf, sizeof ebuf);
	if (!conn) {
		snprintf(error, cap, "cannot connect: %s", ebuf);
		return 0;
	}
	long long timestamp = (long long)(clock_now_ms(&clock_system) / 1000);
	char signature[PUSH_SIGNATURE_MAX];
	int status = 0, w = 0;
	if (push_sign(p->cfg, ev->id, timestamp, body, len, signature, sizeof signature))
		w = mg_printf(conn,
			  "POST %s HTTP/1.1\r\nHost: %s:%d\r\nUser-Agent: callstate\r\n"
			  "Content-Type: application/json\r\nContent-Length: %zu\r\n"
			  "webhook-id: %s\r\nwebhook-timestamp: %lld\r\nwebhook-signature: %s\r\n"
			  "Connection: close\r\n\r\n",
			  t->path, t->host, t->port, len, ev->id, timestamp, signature);
	if (w <= 0 || mg_write(conn, body, len) != (int)len) {
		snprintf(error, cap, "cannot sign or send the request");
	} else if (mg_get_response(conn, ebuf, sizeof ebuf, PUSH_TIMEOUT_MS) < 0) {
		snprintf(error, cap, "no answer within %d s: %s", PUSH_TIMEOUT_MS / 1000, ebuf);
	} else {
		const struct mg_response_info *info = mg_get_response_info(conn);
		status = info ? info->status_code : 0;
		if (!status)
			snprintf(error, cap, "unreadable answer");
		else
			snprintf(error, cap, "HTTP %d", status);
	}
	mg_close_connection(conn);
	return status;
}

/* One attempt at r->d's event; its outcome goes into r for the next round to record. */
static void attempt(struct push *p, struct round *r)
{
	struct delivery *d = &r->d;
	struct event_page page = {0};
	r->settle = false;
	if (storage_events_after(p->st, d->seq - 1, 1, &page) != ERR_OK) {
		event_page_finish(&page);
		return; /* the lease ends and the event is tried again */
	}
	r->settle = true;
	r->state = DELIVERY_DELIVERED;
	r->has_error = false;
	if (page.n != 1 || page.events[0].seq != d->seq) {
		event_page_finish(&page); /* gone from the feed: nothing to send, done */
		return;
	}
	size_t len = 0;
	char *body = event_json(&page.events[0], &len);
	int status = body ? post(p, &page.events[0], body, len, r->error, sizeof r->error) : 0;
	if (!body)
		snprintf(r->error, sizeof r->error, "out of memory");
	free(body);
	event_page_finish(&page);
	int64_t now = clock_now_ms(&clock_system);
	d->attempts++;
	if (!d->first_attempt_at)
		d->first_attempt_at = now;
	if (status >= 200 && status < 300) {
		atomic_fetch_add(&n_delivered, 1);
		return;
	}
	r->has_error = true;
	if (status == 410) {
		r->state = DELIVERY_STOPPED;
		atomic_fetch_add(&n_stopped, 1);
		if (!atomic_exchange(&p->stop_logged, true))
			log_write(LOG_WARN,
				  "msg=\"push stopped: the receiver answered 410 Gone\" seq=%" PRId64,
				  d->seq);
		return;
	}
	r->next_at = now + backoff_ms(d->attempts);
	r->state = r->next_at - d->first_attempt_at > PUSH_GIVE_UP_MS ? DELIVERY_DEAD
									 : DELIVERY_PENDING;
	atomic_fetch_add(r->state == DELIVERY_DEAD ? &n_dead : &n_retried, 1);
	if (r->state == DELIVERY_DEAD)
		log_write(LOG_WARN,
			  "msg=\"push gave up on an event after 24 h\" seq=%" PRId64 " attempts=%d",
			  d->seq, d->attempts);
}

static void idle(struct push *p)
{
	struct timespec until;
	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_nsec += PUSH_IDLE_MS * 1000000L;
	until.tv_sec += until.tv_nsec / 1000000000L;
	until.tv_nsec %= 1000000000L;
	pthread_mutex_lock(&p->mu);
	if (!atomic_load(&p->stop))
		pthread_cond_timedwait(&p->wake, &p->mu, &until);
	pthread_mutex_unlock(&p->mu);
}

static void *send_thread(void *arg)
{
	struct push *p = arg;
	struct round r = {.url = p->cfg->events_url};
	thread_name("cs-push-send");
	while (!atomic_load(&p->stop)) {
		r.now = clock_now_ms(&clock_system);
		enum err e = storage_transact(p->st, round_tx, &r);
		if (e != ERR_OK && r.settle) /* its lease ends, and it is sent again */
			log_write(LOG_WARN,
				  "msg=\"push cannot record an attempt\" seq=%" PRId64 " error=%s",
				  r.d.seq, err_code(e));
		r.settle = false;
		if (e == ERR_OK && r.claimed) {
			r.d = r.next_claim;
			attempt(p, &r);
		} else {
			idle(p);
		}
	}
	/* The outcome of an attempt made just before the stop. */
	r.stopping = true;
	if (r.settle && storage_transact(p->st, round_tx, &r) != ERR_OK)
		log_write(LOG_WARN, "msg=\"push cannot record an attempt\" seq=%" PRId64, r.d.seq);
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
	pthread_condattr_t attr;
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->wake, &attr);
	pthread_condattr_destroy(&attr);
	bool ok = pthread_create(&p->queuer, NULL, queue_thread, p) == 0;
	p->queuer_started = ok;
	for (size_t i = 0; ok && i < PUSH_SENDERS; i++) {
		ok = pthread_create(&p->senders[i], NULL, send_thread, p) == 0;
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
	wake_senders(p, PUSH_SENDERS);
	if (p->queuer_started)
		pthread_join(p->queuer, NULL);
	for (size_t i = 0; i < p->n_senders; i++)
		pthread_join(p->senders[i], NULL);
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

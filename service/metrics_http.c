/* Requests and webhooks as GET /metrics shows them. Labels come only from fixed tables (route
 * patterns, known status codes, known LiveKit event names), never from what a client sent, so
 * the number of series is bounded whatever the traffic. */
#include "metrics_http.h"

#include <inttypes.h>
#include <stdio.h>

#include "clock.h"
#include "push.h"
#include "router.h"
#include "routes.h"

/* Every status an answer can have (err_http_status, 200, 201); STATUS_OTHER is a safety net. */
static const int statuses[] = {200, 201, 400, 401, 403, 404, 405, 408, 409, 413, 415, 500, 503};
#define N_STATUSES (sizeof statuses / sizeof statuses[0])
#define STATUS_OTHER N_STATUSES

static const int64_t latency_le_us[] = {500,    1000,   2500,    5000,    10000,
					25000,  50000,  100000,  250000,  500000,
					1000000, 2500000, 5000000, 10000000};
_Static_assert(sizeof latency_le_us / sizeof latency_le_us[0] <= METRICS_BUCKETS_MAX, "buckets");
static const struct metrics_bounds latency_bounds = {
	latency_le_us, sizeof latency_le_us / sizeof latency_le_us[0], 1e6};

static _Atomic uint64_t requests[ROUTE_SLOTS][N_STATUSES + 1];
static struct metrics_histogram latency[ROUTE_SLOTS];

/* The event label: LiveKit's names callstate knows, "other" for the rest (egress_*, …), and
 * "unknown" for a delivery refused before its body was read as an event. */
static const char *const event_names[] = {
	[WEBHOOK_IGNORED] = "other",
	[WEBHOOK_ROOM_STARTED] = "room_started",
	[WEBHOOK_ROOM_FINISHED] = "room_finished",
	[WEBHOOK_PARTICIPANT_JOINED] = "participant_joined",
	[WEBHOOK_PARTICIPANT_LEFT] = "participant_left",
	[WEBHOOK_PARTICIPANT_CONNECTION_ABORTED] = "participant_connection_aborted",
	[WEBHOOK_TRACK_PUBLISHED] = "track_published",
	[WEBHOOK_TRACK_UNPUBLISHED] = "track_unpublished",
	"unknown",
};
#define N_EVENTS (sizeof event_names / sizeof event_names[0])
#define EVENT_UNKNOWN (N_EVENTS - 1)

enum webhook_result {
	RESULT_APPLIED,
	RESULT_DUPLICATE,
	RESULT_UNAUTHORIZED,
	RESULT_BAD_REQUEST,
	RESULT_TOO_LARGE,
	RESULT_TIMEOUT,
	RESULT_UNAVAILABLE,
	N_RESULTS,
};
static const char *const result_names[N_RESULTS] = {
	[RESULT_APPLIED] = "applied",          [RESULT_DUPLICATE] = "duplicate",
	[RESULT_UNAUTHORIZED] = "unauthorized", [RESULT_BAD_REQUEST] = "bad_request",
	[RESULT_TOO_LARGE] = "too_large",       [RESULT_TIMEOUT] = "timeout",
	[RESULT_UNAVAILABLE] = "unavailable",
};
static _Atomic uint64_t webhooks[N_EVENTS][N_RESULTS];

static size_t status_index(int status)
{
	for (size_t i = 0; i < N_STATUSES; i++)
		if (statuses[i] == status)
			return i;
	return STATUS_OTHER;
}

void metrics_http_request(const struct req *r, int64_t duration_us)
{
	size_t slot = r->route_slot >= 0 && r->route_slot < ROUTE_SLOTS ? (size_t)r->route_slot
									 : ROUTE_SLOT_UNMATCHED;
	atomic_fetch_add_explicit(&requests[slot][status_index(r->status)], 1,
				  memory_order_relaxed);
	metrics_observe(&latency[slot], &latency_bounds, duration_us);
}

static enum webhook_result result_of(enum err e, bool duplicate)
{
	switch (e) {
	case ERR_OK: return duplicate ? RESULT_DUPLICATE : RESULT_APPLIED;
	case ERR_UNAUTHENTICATED: return RESULT_UNAUTHORIZED;
	case ERR_INVALID: return RESULT_BAD_REQUEST;
	case ERR_TOO_LARGE: return RESULT_TOO_LARGE;
	case ERR_TIMEOUT: return RESULT_TIMEOUT;
	default: return RESULT_UNAVAILABLE;
	}
}

void metrics_http_webhook(const struct webhook_event *we, enum err e, bool duplicate)
{
	size_t event = we && (size_t)we->kind < EVENT_UNKNOWN ? (size_t)we->kind : EVENT_UNKNOWN;
	atomic_fetch_add_explicit(&webhooks[event][result_of(e, duplicate)], 1,
				  memory_order_relaxed);
}

/* The method and pattern of a slot, for its labels. */
static void slot_labels(size_t slot, const char **ret_method, const char **ret_route)
{
	const struct route *route = router_route(slot);
	*ret_method = route ? route->method : "other";
	*ret_route = route                          ? route->pattern
		     : slot == ROUTE_SLOT_UNPARSED ? "unparsed"
						   : "unmatched";
}

static void requests_text(struct metrics_text *t)
{
	metrics_family(t, "callstate_http_requests_total", "counter",
		       "HTTP requests answered, by route pattern and status.");
	for (size_t slot = 0; slot < ROUTE_SLOTS; slot++) {
		const char *method, *route;
		slot_labels(slot, &method, &route);
		for (size_t s = 0; s <= N_STATUSES; s++) {
			uint64_t n = atomic_load_explicit(&requests[slot][s], memory_order_relaxed);
			if (!n)
				continue;
			char status[8] = "other";
			if (s < N_STATUSES)
				snprintf(status, sizeof status, "%d", statuses[s]);
			metrics_printf(t,
				       "callstate_http_requests_total{method=\"%s\",route=\"%s\","
				       "status=\"%s\"} %" PRIu64 "\n",
				       method, route, status, n);
		}
	}
	metrics_family(t, "callstate_http_request_duration_seconds", "histogram",
		       "From a request's headers to its answer, by route pattern.");
	for (size_t slot = 0; slot < ROUTE_SLOTS; slot++) {
		const char *method, *route;
		char labels[160];
		uint64_t seen = 0;
		for (size_t b = 0; b <= latency_bounds.n; b++)
			seen += atomic_load_explicit(&latency[slot].buckets[b], memory_order_relaxed);
		if (!seen)
			continue;
		slot_labels(slot, &method, &route);
		snprintf(labels, sizeof labels, "method=\"%s\",route=\"%s\"", method, route);
		metrics_histogram_text(t, "callstate_http_request_duration_seconds", labels,
				       &latency[slot], &latency_bounds);
	}
}

static void webhooks_text(struct metrics_text *t)
{
	metrics_family(t, "callstate_webhooks_total", "counter",
		       "LiveKit webhook deliveries, by event and result.");
	for (size_t ev = 0; ev < N_EVENTS; ev++)
		for (size_t res = 0; res < N_RESULTS; res++) {
			uint64_t n = atomic_load_explicit(&webhooks[ev][res], memory_order_relaxed);
			if (n)
				metrics_printf(t,
					       "callstate_webhooks_total{event=\"%s\",result=\"%s\"} "
					       "%" PRIu64 "\n",
					       event_names[ev], result_names[res], n);
		}
}

void metrics_http_text(const struct app *app, struct metrics_text *t)
{
	static const char backends[] = ""
#if CALLSTATE_WITH_SQLITE
		"sqlite"
#endif
#if CALLSTATE_WITH_SQLITE && CALLSTATE_WITH_POSTGRES
		","
#endif
#if CALLSTATE_WITH_POSTGRES
		"postgresql"
#endif
		;
	metrics_family(t, "callstate_build_info", "gauge",
		       "Always 1: the version and the storage backends of this build.");
	metrics_printf(t, "callstate_build_info{version=\"%s\",backends=\"%s\"} 1\n",
		       CALLSTATE_VERSION, backends);
	requests_text(t);
	webhooks_text(t);
	metrics_family(t, "callstate_long_polls_waiting", "gauge",
		       "GET /v1/events?wait= polls waiting now, each holding a worker thread.");
	metrics_printf(t, "callstate_long_polls_waiting %d\n", long_polls_waiting());
	metrics_family(t, "callstate_long_polls_max", "gauge",
		       "CALLSTATE_LONG_POLLS: polls that may wait at once; more get 503.");
	metrics_printf(t, "callstate_long_polls_max %d\n", app->cfg->long_polls);
	metrics_domain_text(t, storage_backend_name(app->st));
	/* The push figures only when push is on; its gauges need the database, and without it
	 * the rest of the exposition is still worth answering. */
	struct delivery_status ds;
	if (app->cfg->events_url && *app->cfg->events_url &&
	    storage_delivery_status(app->st, app->cfg->events_url, &ds) == ERR_OK)
		push_metrics_text(t, &ds, clock_now_ms(&clock_system));
}

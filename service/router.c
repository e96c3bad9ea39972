/* Routing on the raw path: fixed segments compare byte for byte, the one parameter segment is
 * percent-decoded once by uri_decode, and nothing is normalised, so no spelling of a path
 * reaches a resource that another spelling names. */
#include "router.h"

#include <stdio.h>
#include <string.h>

#include "routes.h"

static const struct route routes[] = {
	{"POST", "/v1/calls", handle_calls_create},
	{"GET", "/v1/calls", handle_calls_list},
	{"GET", "/v1/calls/{id}", handle_call_get},
	{"POST", "/v1/calls/{id}/accept", handle_call_accept},
	{"POST", "/v1/calls/{id}/decline", handle_call_decline},
	{"POST", "/v1/calls/{id}/token", handle_call_token},
	{"POST", "/v1/calls/{id}/leave", handle_call_leave},
	{"POST", "/v1/calls/{id}/end", handle_call_end},
	{"GET", "/v1/calls/{id}/events", handle_call_audit},
	{"GET", "/v1/users/{user}/calls", handle_user_calls},
	{"DELETE", "/v1/users/{user}/data", handle_user_data_delete},
	{"GET", "/v1/events", handle_events_list},
	{"GET", "/v1/events/delivery", handle_events_delivery},
	{"GET", "/v1/stats", handle_stats},
	{"PUT", "/v1/presence/{user}", handle_presence_put},
	{"GET", "/v1/presence", handle_presence_list},
	{"POST", "/webhooks/livekit", handle_livekit_webhook},
	{"GET", "/healthz", handle_healthz},
	{"GET", "/readyz", handle_readyz},
	{"GET", "/openapi.json", handle_openapi},
	{"GET", "/metrics", handle_metrics},
};
#define N_ROUTES (sizeof routes / sizeof routes[0])
_Static_assert(N_ROUTES <= ROUTES_MAX, "GET /metrics keeps ROUTES_MAX slots of routes");

const struct route *router_route(size_t i)
{
	return i < N_ROUTES ? &routes[i] : NULL;
}

const struct route *router_routes(size_t *ret_n)
{
	*ret_n = N_ROUTES;
	return routes;
}

/* The parameter's raw bytes come back through ret_param/ret_len; an encoded letter in a fixed
 * segment (/v1/%63alls) matches no route. */
static bool route_match(const char *pattern, const char *path, const char **ret_param,
			size_t *ret_len)
{
	while (*pattern && *path) {
		if (*pattern != '/' || *path != '/')
			return false;
		pattern++;
		path++;
		if (*pattern == '{') {
			const char *segment = path;
			while (*path && *path != '/')
				path++;
			*ret_param = segment;
			*ret_len = (size_t)(path - segment);
			while (*pattern && *pattern != '/')
				pattern++;
			continue;
		}
		while (*pattern && *pattern != '/' && *pattern == *path) {
			pattern++;
			path++;
		}
		if ((*pattern && *pattern != '/') || (*path && *path != '/'))
			return false;
	}
	return !*pattern && !*path;
}

/* Decoded once; anything that could name another resource once a proxy or a second decoding
 * got at it is marked invalid, for the handler to refuse after it has checked auth. */
static void route_param(struct req *r, const char *raw, size_t len)
{
	int n = uri_decode(raw, len, false, r->param, sizeof r->param);
	r->param_too_long = n == URI_TOO_LONG;
	r->param_invalid = n == URI_INVALID ||
			   (n >= 0 && uri_segment_ambiguous(r->param, (size_t)n));
}

/* The methods of every route whose pattern matches path, for Allow; only a request that found
 * no route needs them. */
static void allowed_methods(const char *path, char *allow, size_t allow_cap)
{
	size_t used = 0;
	allow[0] = '\0';
	for (size_t i = 0; i < N_ROUTES; i++) {
		const char *param = NULL;
		size_t len = 0;
		if (!route_match(routes[i].pattern, path, &param, &len))
			continue;
		int n = snprintf(allow + used, allow_cap - used, "%s%s", used ? ", " : "",
				 routes[i].method);
		if (n > 0 && (size_t)n < allow_cap - used)
			used += (size_t)n;
	}
}

const struct route *router_find(struct req *r, char *allow, size_t allow_cap)
{
	/* NULL for "*" and for absolute URIs naming another host: no route of ours. */
	const char *path = r->ri->local_uri_raw ? r->ri->local_uri_raw : "";
	const char *method = r->ri->request_method ? r->ri->request_method : "";
	for (size_t i = 0; i < N_ROUTES; i++) {
		const char *param = NULL;
		size_t len = 0;
		if (strcmp(routes[i].method, method) != 0 ||
		    !route_match(routes[i].pattern, path, &param, &len))
			continue;
		r->route = routes[i].pattern;
		r->route_slot = (int)i;
		if (param)
			route_param(r, param, len);
		allow[0] = '\0';
		return &routes[i];
	}
	allowed_methods(path, allow, allow_cap);
	return NULL;
}

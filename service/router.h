/* The route table, and how a request's raw path finds its route. */
#pragma once

#include <stddef.h>

#include "http.h"

struct route {
	const char *method;
	const char *pattern; /* "{name}" is one path segment, decoded once into req.param */
	int (*handler)(struct req *r);
};

/* Slots of GET /metrics: each route's index in the table, then requests no route took. */
#define ROUTES_MAX 24
#define ROUTE_SLOT_UNMATCHED ROUTES_MAX       /* no route: 404 or 405 */
#define ROUTE_SLOT_UNPARSED (ROUTES_MAX + 1)  /* refused by CivetWeb before routing */
#define ROUTE_SLOTS (ROUTES_MAX + 2)
/* The route of slot i (< ROUTES_MAX), or NULL past the last. */
const struct route *router_route(size_t i);

/* The route of r's method and raw path (r->ri->local_uri_raw, as sent: see uri.h), or NULL.
 * On a match, r->route, r->route_slot, r->param, r->param_too_long and r->param_invalid are set
 * and allow is "". Without one, allow gets the methods of every route with this path ("" when
 * no route has it), for a 405. */
const struct route *router_find(struct req *r, char *allow, size_t allow_cap);
/* Every route, *ret_n of them: what openapi.yaml must describe, no more and no less. */
const struct route *router_routes(size_t *ret_n);

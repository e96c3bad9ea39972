/* The route table, and how a request's raw path finds its route. */
#pragma once

#include <stddef.h>

#include "http.h"

struct route {
	const char *method;
	const char *pattern; /* "{name}" is one path segment, decoded once into req.param */
	int (*handler)(struct req *r);
};

/* The route of r's method and raw path (r->ri->local_uri_raw, as sent: see uri.h), or NULL.
 * On a match, r->route, r->param, r->param_too_long and r->param_invalid are set. allow gets
 * the methods of every route with this path ("" when no route has it), for a 405. */
const struct route *router_find(struct req *r, char *allow, size_t allow_cap);
/* Every route, *ret_n of them: what openapi.yaml must describe, no more and no less. */
const struct route *router_routes(size_t *ret_n);

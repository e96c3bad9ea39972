/* The raw request target as the router and the query readers see it. Input: a method byte,
 * the path, a newline, the query string. Whatever the bytes, a decoded path parameter that is
 * not marked invalid names one resource (no '/', '\', NUL, "." or ".."), and a decoded query
 * value has no NUL inside it. */
#include <stdlib.h>
#include <string.h>

#include "router.h"
#include "worker_stack.h"

static const char *const methods[] = {"GET", "POST", "PUT", "DELETE", "HEAD", "PATCH"};
static const char *const query_names[] = {"users", "user",  "after", "limit",  "cursor",
					  "status", "outcome", "kind", "since", "until",
					  "chat_id", "format"};

static void one(const uint8_t *data, size_t size)
{
	if (size < 1)
		return;
	char *text = strndup((const char *)data + 1, size - 1); /* stops at a NUL, as HTTP does */
	if (!text)
		return;
	char *nl = strchr(text, '\n');
	if (nl)
		*nl = '\0';
	struct mg_request_info ri = {
		.request_method = methods[data[0] % (sizeof methods / sizeof methods[0])],
		.local_uri_raw = text,
		.query_string = nl ? nl + 1 : NULL,
	};
	struct req r = {.ri = &ri};
	char allow[64];
	const struct route *route = router_find(&r, allow, sizeof allow);
	if (route && strcmp(route->method, ri.request_method) != 0)
		abort();
	if (route && !r.param_invalid && !r.param_too_long &&
	    (strchr(r.param, '/') || strchr(r.param, '\\') || strcmp(r.param, ".") == 0 ||
	     strcmp(r.param, "..") == 0))
		abort();

	char out[512];
	for (size_t i = 0; i < sizeof query_names / sizeof query_names[0]; i++) {
		for (int k = 0; k < 3; k++) {
			int n = uri_query(ri.query_string, query_names[i], k, out, sizeof out);
			if (n >= 0 && strlen(out) != (size_t)n)
				abort(); /* a NUL inside a value would cut it short */
			if (n < 0 && n != URI_ABSENT && n != URI_TOO_LONG && n != URI_INVALID)
				abort();
		}
	}
	free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_on_worker_stack(one, data, size);
	return 0;
}

/* The routes without auth or body: liveness and readiness for load balancers and systemd, and
 * the API description. */
#include "log.h"
#include "openapi.h"
#include "routes.h"

int handle_healthz(struct req *r)
{
	static const char ok[] = "{\"status\":\"ok\"}";
	return reply_json(r, 200, ok, sizeof ok - 1);
}

int handle_readyz(struct req *r)
{
	static const char ready[] = "{\"status\":\"ready\"}";
	enum err e = storage_ping(r->app->st);
	if (e != ERR_OK)
		return reply_error(r, ERR_UNAVAILABLE, "the database does not answer");
	return reply_json(r, 200, ready, sizeof ready - 1);
}

int handle_openapi(struct req *r)
{
	return reply_json(r, 200, (const char *)openapi_json, openapi_json_len);
}

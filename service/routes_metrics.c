/* GET /metrics: the Prometheus text exposition (format 0.0.4), for admins. */
#include "metrics_http.h"
#include "routes.h"

int handle_metrics(struct req *r)
{
	enum err e = req_auth(r, ROLE_ADMIN);
	if (e != ERR_OK)
		return reply_error(r, e, NULL);
	struct metrics_text t = {0};
	metrics_http_text(r->app, &t);
	int rc = t.failed ? reply_error(r, ERR_NOMEM, NULL)
			  : reply_typed(r, 200, "text/plain; version=0.0.4; charset=utf-8", t.buf,
					t.len);
	metrics_text_finish(&t);
	return rc;
}

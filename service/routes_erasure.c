/* DELETE /v1/users/{user}/data (admin): erasure of a user (include/erasure.h). The request's
 * log line names the path as every request's does; the pseudonym is never logged. */
#include "erasure.h"
#include "routes.h"

int handle_user_data_delete(struct req *r)
{
	const char *msg = NULL;
	size_t calls_updated = 0;
	enum err e = req_auth(r, ROLE_ADMIN);
	if (e == ERR_OK)
		e = req_user_param(r, &msg);
	if (e == ERR_OK)
		e = erasure_run(r->app->st, r->app->signer.secret, r->app->signer.secret_len,
				r->param, &calls_updated);
	if (e != ERR_OK)
		return reply_refusal(r, e, msg);
	return reply_json_value(r, 200,
				json_pack("{s:I}", "calls_updated", (json_int_t)calls_updated));
}

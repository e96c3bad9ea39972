/* POST /webhooks/livekit: the raw body is kept byte for byte (its SHA-256 is signed), the
 * signature checked against every configured key, the event parsed and handed to the calls
 * service, and 200 sent only once it is durably stored. A 5xx makes LiveKit retry. */
#include <stdio.h>
#include <stdlib.h>

#include "log.h"
#include "metrics_http.h"
#include "routes.h"

/* Room for a logfmt value of n bytes of the sender's text: each may become \xNN. */
#define LOGGED(n) (4 * (n) + 3)

int handle_livekit_webhook(struct req *r)
{
	char *body = NULL;
	size_t len = 0;
	const char *key_id = NULL, *why = NULL, *msg = NULL;
	struct webhook_event we;
	bool duplicate = false, parsed = false;

	enum err e = req_raw_body(r, &body, &len, &msg);
	if (e == ERR_OK) {
		int64_t now_s = clock_now_ms(&r->app->calls.clock) / 1000;
		e = webhook_verify(&r->app->webhook_keys, req_header(r, "Authorization"), body,
				   len, now_s, &key_id, &why);
		if (e != ERR_OK)
			log_write(LOG_WARN, "msg=\"webhook refused\" why=\"%s\"",
				  why ? why : "unknown");
	}
	if (e == ERR_OK) {
		e = webhook_event_parse(body, len, &we);
		parsed = e == ERR_OK;
		if (e == ERR_INVALID)
			msg = "body: not a LiveKit webhook event";
	}
	if (e == ERR_OK)
		e = calls_apply_webhook(&r->app->calls, &we, body, len, &duplicate);
	free(body);
	if (e == ERR_NOMEM || e == ERR_INTERNAL)
		e = ERR_UNAVAILABLE; /* never lose an event LiveKit would not resend */
	metrics_http_webhook(parsed ? &we : NULL, e, duplicate);
	if (e != ERR_OK)
		return reply_error(r, e, e == ERR_UNAVAILABLE ? NULL : msg);
	/* On the request's log line, the one line a request logs when it succeeds. The event's
	 * name and id are the sender's text, escaped like any other. */
	char event[LOGGED(WEBHOOK_EVENT_NAME_MAX)], id[LOGGED(WEBHOOK_ID_MAX)], key[160];
	snprintf(r->log_fields, sizeof r->log_fields, " event=%s webhook_id=%s key=%s duplicate=%d",
		 log_value(event, sizeof event, we.name), log_value(id, sizeof id, we.id),
		 log_value(key, sizeof key, key_id), duplicate);
	static const char ok[] = "{\"status\":\"ok\"}";
	return reply_json(r, 200, ok, sizeof ok - 1);
}

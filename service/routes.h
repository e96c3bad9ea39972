/* The handlers of every route, one file per resource; server.c maps paths to them. */
#pragma once

#include "http.h"

int handle_calls_create(struct req *r);
int handle_calls_list(struct req *r);
int handle_call_get(struct req *r);
int handle_call_accept(struct req *r);
int handle_call_decline(struct req *r);
int handle_call_token(struct req *r);
int handle_call_leave(struct req *r);
int handle_call_end(struct req *r);
int handle_call_audit(struct req *r);
int handle_user_calls(struct req *r);
int handle_user_data_delete(struct req *r);
int handle_events_list(struct req *r);
int handle_presence_put(struct req *r);
int handle_presence_list(struct req *r);
int handle_livekit_webhook(struct req *r);
int handle_healthz(struct req *r);
int handle_readyz(struct req *r);
int handle_openapi(struct req *r);
int handle_metrics(struct req *r);

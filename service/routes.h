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
/* GET /v1/events/delivery: the push's backlog and errors (admin). */
int handle_events_delivery(struct req *r);
/* An event as GET /v1/events shows it, malloc'd (*ret_len bytes); NULL without memory. */
char *event_json(const struct event *ev, size_t *ret_len);
/* A graceful stop: waiting long polls answer now (with what there is), and this returns once
 * they have, before CivetWeb stops writing (at most 5 s). */
void long_polls_end(struct storage *st);
/* How many long polls wait now (GET /metrics). */
int long_polls_waiting(void);
int handle_presence_put(struct req *r);
int handle_presence_list(struct req *r);
int handle_livekit_webhook(struct req *r);
int handle_healthz(struct req *r);
int handle_readyz(struct req *r);
int handle_openapi(struct req *r);
int handle_metrics(struct req *r);
/* routes_history.c: the CSV form of GET /v1/calls (f is its parsed filter), and the stats. */
int reply_calls_csv(struct req *r, struct call_filter *f);
int handle_stats(struct req *r);

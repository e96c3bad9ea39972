/* The HTTP server: CivetWeb started with the configured listener and threads, every request
 * routed through one table, answered, and logged as one logfmt line. */
#pragma once

#include "app.h"

struct server;

/* Starts listening; ERR_UNAVAILABLE if the address cannot be bound (logged). */
enum err server_start(const struct app *app, struct server **ret_srv);
/* Stops accepting, lets in-flight requests finish, joins the workers. NULL is accepted. */
void server_stop(struct server *srv);

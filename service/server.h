/* The HTTP server: CivetWeb started with the configured listener and threads, every request
 * routed through one table, answered, and logged as one logfmt line. */
#pragma once

#include <stdbool.h>

#include "app.h"

/* The stack of a CivetWeb worker thread, where every handler runs. Debian builds CivetWeb 1.15
 * with its CMake default (CIVETWEB_THREAD_STACK_SIZE, i.e. USE_STACK_SIZE=102400); the fuzzers
 * run each input on a thread of this size, and the server logs the size its workers really
 * have at start, warning if it is not this. */
#define WORKER_STACK_BYTES 102400

struct server;
struct mg_connection;

/* Starts listening; ERR_UNAVAILABLE if the address cannot be bound (logged). */
enum err server_start(const struct app *app, struct server **ret_srv);
/* Stops accepting, lets in-flight requests finish, joins the workers. NULL is accepted. */
void server_stop(struct server *srv);
/* Whether the server of conn is stopping: an answer then closes its connection. */
bool server_stopping(const struct mg_connection *conn);

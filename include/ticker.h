/* A thread that runs one function every period and stops promptly when asked: the timers'
 * pass, the body-deadline watchdog, and the PostgreSQL backend's feed numbering. */
#pragma once

#include <stdbool.h>

#include "err.h"

struct ticker;

/* Runs one round of work; true when more is waiting, to run again at once instead of after
 * a period. */
typedef bool (*ticker_fn)(void *arg);

/* Starts the thread, named name (15 bytes at most): fn(arg) at once, then every period_ms. */
enum err ticker_start(const char *name, int period_ms, ticker_fn fn, void *arg,
		      struct ticker **ret_t);
/* Wakes the thread, lets its current round finish, joins it. NULL is accepted. */
void ticker_stop(struct ticker *t);

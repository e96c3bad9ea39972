/* Retention (CALLSTATE_RETENTION_DAYS): a thread that deletes ended calls older than the
 * setting, with everything they own, and what no call owns once it is as old, in small
 * transactions off the request path. */
#pragma once

#include "clock.h"
#include "err.h"
#include "storage.h"

struct retention;

/* Starts the thread when days > 0; *ret_r is NULL when days is 0 (everything is kept). st and
 * clk are borrowed until retention_stop. */
enum err retention_start(struct storage *st, const struct clock *clk, int days,
			 struct retention **ret_r);
/* Wakes the thread, lets its current batch finish, joins it. NULL is accepted. */
void retention_stop(struct retention *r);

/* The timer thread: settles due ring and join timeouts. Deadlines live in storage, so timers
 * survive a restart and, with a shared database, fire once whichever instance runs them. */
#pragma once

#include "calls.h"

struct timers;

enum err timers_start(const struct calls *cs, struct timers **ret_t);
/* Wakes the thread, waits for it to finish its current pass. NULL is accepted. */
void timers_stop(struct timers *t);

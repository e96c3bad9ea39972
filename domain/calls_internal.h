/* Shared by the files of the calls service; not part of its interface. */
#pragma once

#include "calls.h"

/* Append one feed event per type in fe, all carrying the call as it is now, each with the
 * next call_version. */
enum err calls_append_events(struct storage_tx *tx, struct call *c, const struct fsm_events *fe,
			     int64_t now);

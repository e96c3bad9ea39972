/* Calls built in memory for the unit tests of the state machine and the room rules. */
#pragma once

#include <stddef.h>

#include "calls.h"

#define FIXTURE_T0 1767225600000LL /* 2026-01-01T00:00:00Z */
#define FIXTURE_RING_S 45

/* A ringing call from "caller" to n callees named c1, c2, … created at FIXTURE_T0, its room
 * named after its id, the ring timer armed. Asserts on allocation failure. */
struct call *fixture_ringing_call(size_t n);

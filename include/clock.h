/* Time for the domain, injectable so tests can drive timers. */
#pragma once

#include <stdint.h>

struct clock {
	int64_t (*now_ms)(void *ctx); /* Unix milliseconds */
	void *ctx;
};

/* The wall clock (CLOCK_REALTIME). */
extern const struct clock clock_system;

static inline int64_t clock_now_ms(const struct clock *c)
{
	return c->now_ms(c->ctx);
}

/* CLOCK_MONOTONIC in milliseconds: for deadlines and intervals, which the wall clock's steps
 * must not stretch or cut short. */
int64_t clock_monotonic_ms(void);

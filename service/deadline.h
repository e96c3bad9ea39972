/* Deadlines that a slow client cannot stretch while a handler reads its request body.
 *
 * CivetWeb's mg_read() waits for as long as bytes keep coming: its timeout restarts with every
 * byte, so a client sending one byte a second holds a worker thread for as long as it likes.
 * Each CivetWeb worker thread gets a slot here (deadlines_thread_init, from CivetWeb's
 * init_thread callback). A handler arms its thread's slot before reading and disarms it after;
 * a watchdog thread sends every armed, overdue worker a signal whose handler does nothing. The
 * poll() inside mg_read() then fails with EINTR (poll is never restarted, SA_RESTART or not),
 * mg_read() returns what it has, and the handler sees that its deadline passed. The signal is
 * sent again on every tick until the slot is disarmed, so one that lands just before the
 * worker enters poll() is not lost, and never after: the watchdog holds the slot's lock while
 * it signals, and disarming takes that lock. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "err.h"

/* How often the watchdog looks: an overdue read ends within about this much of its deadline. */
#define DEADLINE_TICK_MS 50

struct deadlines;

/* slots: how many threads may register (CivetWeb's worker count). Installs the signal's
 * handler and starts the watchdog. */
enum err deadlines_start(int slots, struct deadlines **ret_d);
/* Stops the watchdog; every registered thread must have exited. NULL is accepted. */
void deadlines_stop(struct deadlines *d);

/* Gives the calling thread a slot of d; false when every slot is taken (the thread then reads
 * without a deadline that can interrupt it, and deadline_passed still reports the time). */
bool deadlines_thread_init(struct deadlines *d);

/* Brings every armed deadline of d forward to now: their threads are interrupted within a
 * tick (a graceful stop). A thread that arms after this must look for the stop itself. */
void deadlines_expire(struct deadlines *d);

/* Arms the calling thread's deadline at the CLOCK_MONOTONIC time at_ns. */
void deadline_arm(int64_t at_ns);
/* Disarms it: once this returns, the watchdog sends this thread nothing more. */
void deadline_disarm(void);
/* True once the armed deadline has passed. */
bool deadline_passed(void);

/* CLOCK_MONOTONIC in nanoseconds. */
int64_t monotonic_ns(void);

/* systemd's service notifications: READY=1 once callstate serves, STOPPING=1 when it starts
 * to stop, and WATCHDOG=1 pings while the database and its writer make progress. Outside
 * systemd (no $NOTIFY_SOCKET, no $WATCHDOG_USEC), or in a build without libsystemd, each
 * function does nothing and succeeds. */
#pragma once

#include "err.h"
#include "storage.h"

struct notify_watchdog;

/* Tell systemd the service is up: call once listening, with the database migrated. */
void notify_ready(void);
/* Tell systemd the service is stopping (before the slow part of the shutdown). */
void notify_stopping(void);

/* When systemd asked for a watchdog ($WATCHDOG_USEC), starts a thread that, every half of
 * that interval, runs an empty transaction through st's writer and a read, and pings only when
 * both answered: a writer or database that hangs or fails makes the pings stop, and systemd
 * restarts the service. *ret_wd is NULL when no watchdog was asked for. st is borrowed until
 * notify_watchdog_stop. */
enum err notify_watchdog_start(struct storage *st, struct notify_watchdog **ret_wd);
/* Stops the pings and joins the thread (which waits for a check under way). NULL is
 * accepted. */
void notify_watchdog_stop(struct notify_watchdog *wd);

/* systemd's notifications through libsystemd's sd_notify(3), and the watchdog's thread. In a
 * build without libsystemd (meson -Dsystemd=disabled, or libsystemd-dev missing) the calls do
 * nothing: the protocol is libsystemd's to speak, not ours. */
#include "notify.h"

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include "log.h"

#if CALLSTATE_WITH_SYSTEMD
#include <systemd/sd-daemon.h>

#include "ticker.h"

struct notify_watchdog {
	struct storage *st;
	struct ticker *ticker;
	bool failing; /* the last check failed; the ticker's thread only */
};

void notify_ready(void)
{
	sd_notify(0, "READY=1");
}

void notify_stopping(void)
{
	sd_notify(0, "STOPPING=1");
}

static enum err empty_transaction(struct storage_tx *tx, void *arg)
{
	return ERR_OK;
}

/* A ping proves the database still takes writes: the empty transaction is committed like any
 * other (on SQLite through the writer's queue, then the syncer's fdatasync; on PostgreSQL a
 * BEGIN and COMMIT round trip), then a read is made. A check that hangs sends nothing, and
 * one slower than half the interval leaves systemd without a ping in time: both count as
 * dead. An outage is logged when it starts and when it ends, not on every round. */
static bool watchdog_round(void *arg)
{
	struct notify_watchdog *wd = arg;
	enum err e = storage_transact(wd->st, empty_transaction, NULL);
	if (e == ERR_OK)
		e = storage_ping(wd->st);
	if (e == ERR_OK) {
		sd_notify(0, "WATCHDOG=1");
		if (wd->failing)
			log_write(LOG_INFO, "msg=\"database answers again, watchdog pings resumed\"");
	} else if (!wd->failing) {
		log_write(LOG_ERROR, "msg=\"database check failed, watchdog pings withheld\" error=%s",
			  err_code(e));
	}
	wd->failing = e != ERR_OK;
	return false;
}

enum err notify_watchdog_start(struct storage *st, struct notify_watchdog **ret_wd)
{
	uint64_t usec = 0;
	int r = sd_watchdog_enabled(0, &usec);
	if (r < 0)
		log_write(LOG_WARN, "msg=\"WATCHDOG_USEC or WATCHDOG_PID is invalid, no watchdog "
				    "pings\"");
	if (r <= 0) {
		*ret_wd = NULL;
		return ERR_OK;
	}
	uint64_t half_ms = usec / 2000;
	int period_ms = half_ms < 1 ? 1 : half_ms > INT_MAX ? INT_MAX : (int)half_ms;
	struct notify_watchdog *wd = calloc(1, sizeof *wd);
	if (!wd)
		return ERR_NOMEM;
	wd->st = st;
	enum err e = ticker_start("cs-watchdog", period_ms, watchdog_round, wd, &wd->ticker);
	if (e != ERR_OK) {
		free(wd);
		return e;
	}
	log_write(LOG_INFO, "msg=\"watchdog pings\" period_ms=%d", period_ms);
	*ret_wd = wd;
	return ERR_OK;
}

void notify_watchdog_stop(struct notify_watchdog *wd)
{
	if (!wd)
		return;
	ticker_stop(wd->ticker);
	free(wd);
}

#else

/* Without libsystemd a Type=notify unit would wait for READY=1 until it times out: say why. */
void notify_ready(void)
{
	if (getenv("NOTIFY_SOCKET"))
		log_write(LOG_WARN, "msg=\"NOTIFY_SOCKET is set but this build has no libsystemd: "
				    "no READY=1 is sent (use Type=exec)\"");
}

void notify_stopping(void)
{
}

enum err notify_watchdog_start(struct storage *st, struct notify_watchdog **ret_wd)
{
	*ret_wd = NULL;
	return ERR_OK;
}

void notify_watchdog_stop(struct notify_watchdog *wd)
{
}

#endif

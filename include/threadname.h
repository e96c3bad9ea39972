/* Names the calling thread (at most 15 bytes), so that top -H, perf and /proc/PID/task show
 * which of the service's threads spends the time. */
#pragma once

#include <sys/prctl.h>

static inline void thread_name(const char *name)
{
	prctl(PR_SET_NAME, name, 0, 0, 0);
}

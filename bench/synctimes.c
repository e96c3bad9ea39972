/* Preloaded into the server by `SYNC_TIMES=1 bench/run.sh`: times every fdatasync and fsync,
 * by the calling thread's name (cs-sync, cs-writer, cs-checkpoint, ...) and by the file (the
 * WAL, whose name ends in -wal, or any other: the database), and writes at exit, to
 * $SYNCTIMES_OUT, one line per thread and file: the calls, their mean and longest duration,
 * and how many took at most 0.5, 1, 2, ... 64 ms or longer. What a durable answer waits for is
 * the syncer's fdatasync of the WAL; the lines of the other threads show what the disk did
 * beside it. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

enum { SLOTS = 32, BUCKETS = 9 }; /* ≤0.5, ≤1, ≤2, ... ≤64 ms, longer */

struct slot {
	char thread[16];
	int wal;
	uint64_t calls, total_ns, max_ns, buckets[BUCKETS];
};

static struct slot slots[SLOTS];
static pthread_mutex_t slots_mu = PTHREAD_MUTEX_INITIALIZER;

static uint64_t now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static int is_wal(int fd)
{
	char link[64], name[4096];
	snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
	ssize_t n = readlink(link, name, sizeof name - 1);
	return n > 4 && memcmp(name + n - 4, "-wal", 4) == 0;
}

static void record(int fd, uint64_t ns)
{
	char thread[16] = {0};
	prctl(PR_GET_NAME, thread, 0, 0, 0);
	char *dash = strrchr(thread, '-'); /* civetweb-worker-12 and the like: one group */
	if (dash && dash[1] >= '0' && dash[1] <= '9')
		*dash = '\0';
	int wal = is_wal(fd), bucket = 0;
	for (uint64_t limit = 500000; bucket < BUCKETS - 1 && ns > limit; limit *= 2)
		bucket++;
	pthread_mutex_lock(&slots_mu);
	for (struct slot *s = slots; s < slots + SLOTS; s++) {
		if (s->calls && (s->wal != wal || strcmp(s->thread, thread) != 0))
			continue;
		memcpy(s->thread, thread, sizeof thread);
		s->wal = wal;
		s->calls++;
		s->total_ns += ns;
		if (ns > s->max_ns)
			s->max_ns = ns;
		s->buckets[bucket]++;
		break;
	}
	pthread_mutex_unlock(&slots_mu);
}

typedef int sync_fn(int);
static sync_fn *real_fdatasync, *real_fsync;

/* Before main, and so before any thread can sync. */
__attribute__((constructor)) static void find_real(void)
{
	real_fdatasync = (sync_fn *)dlsym(RTLD_NEXT, "fdatasync");
	real_fsync = (sync_fn *)dlsym(RTLD_NEXT, "fsync");
}

static int timed(sync_fn *real, int fd)
{
	uint64_t start = now_ns();
	int rc = real(fd);
	record(fd, now_ns() - start);
	return rc;
}

int fdatasync(int fd)
{
	return timed(real_fdatasync, fd);
}

int fsync(int fd)
{
	return timed(real_fsync, fd);
}

__attribute__((destructor)) static void report(void)
{
	const char *path = getenv("SYNCTIMES_OUT");
	FILE *out = path ? fopen(path, "w") : NULL;
	if (!out)
		return;
	static const char *const labels[BUCKETS] = {"0.5", "1", "2", "4", "8", "16", "32", "64", ">64"};
	for (const struct slot *s = slots; s < slots + SLOTS && s->calls; s++) {
		fprintf(out, "%s %s: %llu syncs, mean %.2f ms, max %.1f ms; by ms:", s->thread,
			s->wal ? "WAL" : "database", (unsigned long long)s->calls,
			(double)s->total_ns / 1e6 / (double)s->calls, (double)s->max_ns / 1e6);
		for (int b = 0; b < BUCKETS; b++)
			if (s->buckets[b])
				fprintf(out, " %s:%llu", labels[b], (unsigned long long)s->buckets[b]);
		fputc('\n', out);
	}
	fclose(out);
}

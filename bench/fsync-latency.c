/* What the disk allows a durable answer: the latency of fdatasync after appending PAGES pages
 * of 4 KiB, N times, as SQLite's WAL is appended and synced (the file wraps at 64 MiB, like a
 * WAL that restarts). Every durable webhook waits for at least one such fdatasync begun after
 * it arrived, so this distribution is the floor of the service's own latency.
 *
 * Build: cc -O2 -o fsync-latency bench/fsync-latency.c
 * Run:   fsync-latency FILE N PAGES   (FILE is created, then removed) */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096
#define WRAP (64L << 20)

static double monotonic_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int by_value(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
	long n = argc == 4 ? strtol(argv[2], NULL, 10) : 0;
	long pages = argc == 4 ? strtol(argv[3], NULL, 10) : 0;
	if (n < 1 || n > 1000000 || pages < 1 || pages > 256) {
		fprintf(stderr, "usage: fsync-latency FILE N(1-1000000) PAGES(1-256)\n");
		return 2;
	}
	size_t len = (size_t)pages * PAGE;
	char *buf = malloc(len);
	double *ms = malloc(sizeof *ms * (size_t)n);
	int fd = open(argv[1], O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (!buf || !ms || fd < 0) {
		perror("fsync-latency");
		return 1;
	}
	memset(buf, 0x5a, len);
	off_t at = 0;
	for (long i = 0; i < n; i++) {
		if (pwrite(fd, buf, len, at) != (ssize_t)len) {
			perror("pwrite");
			return 1;
		}
		at = at + (off_t)len >= WRAP ? 0 : at + (off_t)len;
		double t0 = monotonic_ms();
		if (fdatasync(fd) != 0) {
			perror("fdatasync");
			return 1;
		}
		ms[i] = monotonic_ms() - t0;
	}
	close(fd);
	unlink(argv[1]);
	qsort(ms, (size_t)n, sizeof *ms, by_value);
	printf("%ld fdatasyncs after %ld pages each: p50 %.2f, p90 %.2f, p99 %.2f, p99.9 %.2f, "
	       "max %.2f ms\n",
	       n, pages, ms[n / 2], ms[n * 9 / 10], ms[n * 99 / 100], ms[n * 999 / 1000], ms[n - 1]);
	free(ms);
	free(buf);
	return 0;
}

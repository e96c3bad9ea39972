/* Which database pages a process writes into its SQLite WALs, as an LD_PRELOAD library for
 * bench/run.sh (WAL_MAP=1): it parses the frames of every write to a file whose name ends in
 * "-wal" and, when the process exits, writes to the file named by $WALPAGES_OUT
 *
 *   commits N
 *   frames N
 *   rewrites N        frames of a page already written by the same commit (a cache spill)
 *   page PGNO FRAMES  one line per page written
 *
 * bench/walpages.py then names each page's b-tree from the database's dbstat.
 *
 * A WAL is a 32-byte header (its page size big-endian at bytes 8-11), then frames of a 24-byte
 * header (the page number big-endian at bytes 0-3; at 4-7 the database's size in pages after
 * the commit, non-zero only on a transaction's last frame) and the page. The writer's VFS
 * (db/sqlite_vfs.c) writes a run of frames in one call and SQLite's own a frame in two (header,
 * then page), so frames are found by their offsets, whatever the writes' bounds. Each
 * interposed call keeps errno as the real call left it. */
#undef _FILE_OFFSET_BITS /* pwrite and pwrite64 are both interposed, each under its own name */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#define WAL_HEADER 32
#define FRAME_HEADER 24
#define MAX_FDS 4096

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
/* Per descriptor: 0 not looked at yet, -1 not a WAL, 1 a WAL whose header is not written yet,
 * else the WAL's page size. */
static int32_t fd_wal[MAX_FDS];
static uint64_t commits, frames, rewrites;
static uint64_t *page_frames;      /* by page number */
static uint64_t *page_last_commit; /* the commit that last wrote the page, + 1 */
static size_t pages_cap;

static ssize_t (*real_pwrite)(int, const void *, size_t, off_t);
static ssize_t (*real_pwrite64)(int, const void *, size_t, off64_t);
static ssize_t (*real_write)(int, const void *, size_t);
static int (*real_close)(int);

__attribute__((constructor)) static void walpages_init(void)
{
	real_pwrite = dlsym(RTLD_NEXT, "pwrite");
	real_pwrite64 = dlsym(RTLD_NEXT, "pwrite64");
	real_write = dlsym(RTLD_NEXT, "write");
	real_close = dlsym(RTLD_NEXT, "close");
}

static uint32_t be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* The page size of the WAL behind fd, or 0 when fd is no WAL or its header is not written
 * yet; mu held. The header is read again when it is written (a WAL starting over). */
static uint32_t wal_page_size(int fd, off_t written_at)
{
	if (fd < 0 || fd >= MAX_FDS)
		return 0;
	if (fd_wal[fd] == 0) {
		char link[64], path[PATH_MAX];
		snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
		ssize_t n = readlink(link, path, sizeof path - 1);
		fd_wal[fd] = n > 4 && memcmp(path + n - 4, "-wal", 4) == 0 ? 1 : -1;
	}
	if (fd_wal[fd] == 1 || (fd_wal[fd] > 1 && written_at < WAL_HEADER)) {
		unsigned char header[WAL_HEADER];
		if (pread(fd, header, sizeof header, 0) == (ssize_t)sizeof header &&
		    be32(header + 8) > 1)
			fd_wal[fd] = (int32_t)be32(header + 8);
	}
	return fd_wal[fd] > 1 ? (uint32_t)fd_wal[fd] : 0;
}

static void count_frame(uint32_t pgno, uint32_t db_size)
{
	if (pgno >= pages_cap) {
		size_t cap = pages_cap ? pages_cap : 1024;
		while (cap <= pgno)
			cap *= 2;
		uint64_t *f = realloc(page_frames, cap * sizeof *f);
		uint64_t *c = f ? realloc(page_last_commit, cap * sizeof *c) : NULL;
		if (!f || !c)
			abort();
		memset(f + pages_cap, 0, (cap - pages_cap) * sizeof *f);
		memset(c + pages_cap, 0, (cap - pages_cap) * sizeof *c);
		page_frames = f;
		page_last_commit = c;
		pages_cap = cap;
	}
	frames++;
	page_frames[pgno]++;
	if (page_last_commit[pgno] == commits + 1)
		rewrites++;
	page_last_commit[pgno] = commits + 1;
	if (db_size != 0)
		commits++;
}

/* Counts the frames whose headers lie wholly in the n bytes written at off. */
static void parse(int fd, const unsigned char *buf, ssize_t n, off_t off)
{
	if (n <= 0)
		return;
	int saved = errno;
	pthread_mutex_lock(&mu);
	uint32_t page_size = wal_page_size(fd, off);
	if (page_size != 0) {
		off_t frame = FRAME_HEADER + (off_t)page_size;
		off_t first = off <= WAL_HEADER ? 0 : (off - WAL_HEADER + frame - 1) / frame;
		for (off_t at = WAL_HEADER + first * frame; at + FRAME_HEADER <= off + n; at += frame)
			count_frame(be32(buf + (at - off)), be32(buf + (at - off) + 4));
	}
	pthread_mutex_unlock(&mu);
	errno = saved;
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
	ssize_t r = real_pwrite(fd, buf, n, off);
	parse(fd, buf, r, off);
	return r;
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off64_t off)
{
	ssize_t r = real_pwrite64(fd, buf, n, off);
	parse(fd, buf, r, (off_t)off);
	return r;
}

ssize_t write(int fd, const void *buf, size_t n)
{
	int saved = errno;
	off_t off = lseek(fd, 0, SEEK_CUR); /* -1 for a socket or pipe: never a WAL */
	errno = saved;
	ssize_t r = real_write(fd, buf, n);
	if (off >= 0)
		parse(fd, buf, r, off);
	return r;
}

int close(int fd)
{
	pthread_mutex_lock(&mu);
	if (fd >= 0 && fd < MAX_FDS)
		fd_wal[fd] = 0;
	pthread_mutex_unlock(&mu);
	return real_close(fd);
}

__attribute__((destructor)) static void walpages_report(void)
{
	const char *path = getenv("WALPAGES_OUT");
	FILE *out = path ? fopen(path, "w") : NULL;
	if (!out)
		return;
	pthread_mutex_lock(&mu);
	fprintf(out, "commits %llu\nframes %llu\nrewrites %llu\n", (unsigned long long)commits,
		(unsigned long long)frames, (unsigned long long)rewrites);
	for (size_t p = 0; p < pages_cap; p++)
		if (page_frames[p])
			fprintf(out, "page %zu %llu\n", p, (unsigned long long)page_frames[p]);
	pthread_mutex_unlock(&mu); /* fclose closes: close() takes mu */
	fclose(out);
}

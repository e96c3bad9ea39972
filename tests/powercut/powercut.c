/* A power cut for the durability tests, as an LD_PRELOAD library: it keeps, beside each file
 * written under $POWERCUT_DIR, a copy named FILE.durable that holds only what an fsync or
 * fdatasync of FILE made durable. After the process is killed, the .durable copies are what
 * the disk would hold had the power gone at that moment (every write not synced lost), which
 * tests/http/crash.test.js restarts the service on.
 *
 * Between two syncs of a file its writes are kept as one dirty span [lo, hi): a sync copies
 * that span from the file into the copy and sets the copy's size to the file's, which also
 * carries a truncation over. The span may cover bytes written before the last sync again,
 * which only copies them twice; bytes written after a sync began are not in its span (writes
 * wait for the lock the sync holds to be counted), so the copy never holds more than a power cut
 * would leave, save a rewrite in place of bytes of the span while the sync runs.
 *
 * While the file named by $POWERCUT_FAIL_FILE exists, every sync of a file under the directory
 * fails with EIO and makes nothing durable: a disk that stopped taking writes. While the file
 * named by $POWERCUT_STALL_FILE exists, every such sync waits for it to go: a disk that hangs.
 * While the file named by $POWERCUT_WAL_STALL_FILE exists, every sync of such a file whose name
 * ends in -wal waits for it to go: the WAL's syncs hang, the database's go through.
 * While the file named by $POWERCUT_WRITE_STALL_FILE exists, every pwrite to such a file waits
 * for it to go (SQLite's writes): a writer held in the middle of its commit.
 *
 * Each interposed call keeps errno as the real call left it. */
#undef _FILE_OFFSET_BITS /* pwrite and pwrite64 are both interposed, each under its own name */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#define MAX_FILES 64
#define MAX_FDS 4096
#define COPY_CHUNK 65536

/* Files go by name, not inode: a deleted file's inode comes back for the next one created (the
 * rollback journal of the first transaction, then the WAL). */
struct tracked {
	char path[PATH_MAX];
	off_t lo, hi; /* dirty span since the last sync; lo == hi: none */
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct tracked files[MAX_FILES];
static int n_files;
/* Per descriptor: 0 not looked at yet, -1 not under the directory, k + 1 files[k]. */
static int fd_file[MAX_FDS];

static ssize_t (*real_pwrite)(int, const void *, size_t, off_t);
static ssize_t (*real_pwrite64)(int, const void *, size_t, off64_t);
static ssize_t (*real_write)(int, const void *, size_t);
static int (*real_fsync)(int);
static int (*real_fdatasync)(int);
static int (*real_close)(int);

__attribute__((constructor)) static void powercut_init(void)
{
	real_pwrite = dlsym(RTLD_NEXT, "pwrite");
	real_pwrite64 = dlsym(RTLD_NEXT, "pwrite64");
	real_write = dlsym(RTLD_NEXT, "write");
	real_fsync = dlsym(RTLD_NEXT, "fsync");
	real_fdatasync = dlsym(RTLD_NEXT, "fdatasync");
	real_close = dlsym(RTLD_NEXT, "close");
}

static void die(const char *what)
{
	fprintf(stderr, "powercut: %s: %s\n", what, strerror(errno));
	abort();
}

/* The tracked file behind fd, or NULL; mu held. */
static struct tracked *lookup(int fd)
{
	if (fd < 0 || fd >= MAX_FDS)
		return NULL;
	if (fd_file[fd] == 0) {
		const char *dir = getenv("POWERCUT_DIR");
		char link[64], path[PATH_MAX];
		snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
		ssize_t n = readlink(link, path, sizeof path - 1);
		struct stat st;
		fd_file[fd] = -1;
		if (!dir || n <= 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
			return NULL;
		path[n] = '\0';
		if (strncmp(path, dir, strlen(dir)) != 0)
			return NULL;
		int k = 0;
		while (k < n_files && strcmp(files[k].path, path) != 0)
			k++;
		if (k == n_files) {
			if (n_files == MAX_FILES)
				die("too many files");
			snprintf(files[k].path, sizeof files[k].path, "%s", path);
			n_files++;
		}
		fd_file[fd] = k + 1;
	}
	return fd_file[fd] > 0 ? &files[fd_file[fd] - 1] : NULL;
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);
	return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* Waits without the lock while the file named by the variable trigger exists, if fd is one of
 * the directory's files and its name ends in suffix ("" for any). */
static void hold(int fd, const char *trigger_variable, const char *suffix)
{
	const char *trigger = getenv(trigger_variable);
	if (!trigger)
		return;
	int saved = errno;
	pthread_mutex_lock(&mu);
	const struct tracked *t = lookup(fd);
	bool tracked = t && ends_with(t->path, suffix);
	pthread_mutex_unlock(&mu);
	struct timespec pause = {0, 10000000};
	while (tracked && access(trigger, F_OK) == 0)
		nanosleep(&pause, NULL);
	errno = saved;
}

static void dirty(int fd, off_t off, ssize_t n)
{
	if (n <= 0)
		return;
	int saved = errno;
	pthread_mutex_lock(&mu);
	struct tracked *t = lookup(fd);
	if (t) {
		if (t->lo == t->hi) {
			t->lo = off;
			t->hi = off + n;
		} else {
			t->lo = off < t->lo ? off : t->lo;
			t->hi = off + n > t->hi ? off + n : t->hi;
		}
	}
	pthread_mutex_unlock(&mu);
	errno = saved;
}

/* What a sync of fd makes durable, copied into FILE.durable; mu held. */
static void make_durable(int fd)
{
	struct tracked *t = lookup(fd);
	if (!t)
		return;
	char copy[PATH_MAX + 16];
	snprintf(copy, sizeof copy, "%s.durable", t->path);
	int out = open(copy, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	struct stat st;
	if (out < 0 || fstat(fd, &st) != 0)
		die("open the durable copy");
	static char buf[COPY_CHUNK];
	off_t hi = t->hi < st.st_size ? t->hi : st.st_size;
	for (off_t at = t->lo; at < hi;) {
		size_t want = hi - at < COPY_CHUNK ? (size_t)(hi - at) : COPY_CHUNK;
		ssize_t got = pread(fd, buf, want, at);
		if (got <= 0 || real_pwrite(out, buf, (size_t)got, at) != got)
			die("copy a synced span");
		at += got;
	}
	if (ftruncate(out, st.st_size) != 0)
		die("size the durable copy");
	real_close(out);
	t->lo = t->hi = 0;
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
	hold(fd, "POWERCUT_WRITE_STALL_FILE", "");
	ssize_t r = real_pwrite(fd, buf, n, off);
	dirty(fd, off, r);
	return r;
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off64_t off)
{
	hold(fd, "POWERCUT_WRITE_STALL_FILE", "");
	ssize_t r = real_pwrite64(fd, buf, n, off);
	dirty(fd, (off_t)off, r);
	return r;
}

ssize_t write(int fd, const void *buf, size_t n)
{
	int saved = errno;
	off_t off = lseek(fd, 0, SEEK_CUR); /* -1 for a socket or pipe: never tracked */
	errno = saved;
	ssize_t r = real_write(fd, buf, n);
	if (off >= 0)
		dirty(fd, off, r);
	return r;
}

/* A truncation (ftruncate, not interposed) shows at the next sync, which gives the copy the
 * file's size. */
static bool sync_fails(int fd)
{
	const char *trigger = getenv("POWERCUT_FAIL_FILE");
	return trigger && lookup(fd) && access(trigger, F_OK) == 0;
}

static int synced(int (*real_sync)(int), int fd)
{
	/* Writes go on meanwhile, as into the page cache. */
	hold(fd, "POWERCUT_STALL_FILE", "");
	hold(fd, "POWERCUT_WAL_STALL_FILE", "-wal");
	pthread_mutex_lock(&mu);
	bool fail = sync_fails(fd);
	int r = fail ? -1 : real_sync(fd);
	int saved = fail ? EIO : errno;
	if (r == 0)
		make_durable(fd);
	pthread_mutex_unlock(&mu);
	errno = saved;
	return r;
}

int fsync(int fd)
{
	return synced(real_fsync, fd);
}

int fdatasync(int fd)
{
	return synced(real_fdatasync, fd);
}

int close(int fd)
{
	pthread_mutex_lock(&mu);
	if (fd >= 0 && fd < MAX_FDS)
		fd_file[fd] = 0;
	pthread_mutex_unlock(&mu);
	return real_close(fd);
}

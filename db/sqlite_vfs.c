/* The writer's VFS: SQLite's default one, except for how the WAL is written and synced.
 *
 * SQLite writes each frame it appends to the WAL with two writes (its 24-byte header, then the
 * page): five pages an event made ten pwrite calls, and on a VM where a system call costs
 * microseconds they were most of the writer's time. Here the writes that extend one run of the
 * file are gathered in memory and written with one call when SQLite next syncs the WAL, or
 * sooner: before any other use of the file (a read, its size, a truncation, a write elsewhere,
 * closing it), when the run is full, and before any change of the wal-index locks. So SQLite,
 * and every other connection, sees the file as if each write had gone straight to it: a
 * commit's frames are written before SQLite publishes them in the wal-index (its sync comes
 * first), and no gathered write outlives the write lock it was made under.
 *
 * The writer runs with WRITER_VFS_PRAGMAS, so SQLite syncs the WAL at each commit with
 * SQLITE_SYNC_NORMAL and before a checkpoint (and after writing a restarted WAL's header) with
 * SQLITE_SYNC_FULL. A commit's sync only writes what is gathered, and fails the commit if that
 * fails; the fdatasync that makes the commit durable is the syncer thread's (db/sqlite.c), and
 * no caller hears of the commit before it. Every other sync, and every sync of another file,
 * is SQLite's own. */
#include "sqlite_vfs.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

/* The longest run: the unix VFS writes at most 128 KiB - 1 bytes a call (its seekAndWrite
 * masks the length with 0x1ffff, so a longer write comes out short and fails as SQLITE_FULL).
 * 31 frames of 4 KiB pages. */
#define GATHER_MAX (128 * 1024 - 1)

struct vfs_file {
	sqlite3_file base;   /* methods: file_methods */
	sqlite3_file *real;  /* the default VFS's file, in the same allocation, after this */
	bool wal;
	/* A WAL's gathered run: len bytes that go at offset start. */
	unsigned char *run;
	size_t len;
	sqlite3_int64 start;
	struct vfs_file *next_wal; /* the open WALs, for a flush before a lock change */
};

static sqlite3_vfs *base_vfs;
static sqlite3_vfs writer_vfs;
static sqlite3_io_methods file_methods;
/* Guards every run and the list: the writer is one thread, so it is not contended, but a
 * lock change of one connection flushes the runs of all. */
static pthread_mutex_t runs_mu = PTHREAD_MUTEX_INITIALIZER;
static struct vfs_file *wals;

static struct vfs_file *vf(sqlite3_file *f)
{
	return (struct vfs_file *)f;
}

/* Writes the gathered run out; runs_mu held. */
static int flush_run(struct vfs_file *w)
{
	if (w->len == 0)
		return SQLITE_OK;
	int rc = w->real->pMethods->xWrite(w->real, w->run, (int)w->len, w->start);
	w->len = 0;
	return rc;
}

static int flush_file(sqlite3_file *f)
{
	struct vfs_file *w = vf(f);
	if (!w->wal)
		return SQLITE_OK;
	pthread_mutex_lock(&runs_mu);
	int rc = flush_run(w);
	pthread_mutex_unlock(&runs_mu);
	return rc;
}

static int vfs_close(sqlite3_file *f)
{
	struct vfs_file *w = vf(f);
	int rc = SQLITE_OK;
	if (w->wal) {
		pthread_mutex_lock(&runs_mu);
		rc = flush_run(w);
		for (struct vfs_file **p = &wals; *p; p = &(*p)->next_wal)
			if (*p == w) {
				*p = w->next_wal;
				break;
			}
		pthread_mutex_unlock(&runs_mu);
		free(w->run);
	}
	int closed = w->real->pMethods->xClose(w->real);
	return rc != SQLITE_OK ? rc : closed;
}

static int vfs_read(sqlite3_file *f, void *p, int n, sqlite3_int64 off)
{
	int rc = flush_file(f);
	return rc != SQLITE_OK ? rc : vf(f)->real->pMethods->xRead(vf(f)->real, p, n, off);
}

static int vfs_write(sqlite3_file *f, const void *p, int n, sqlite3_int64 off)
{
	struct vfs_file *w = vf(f);
	if (!w->wal || n <= 0)
		return w->real->pMethods->xWrite(w->real, p, n, off);
	pthread_mutex_lock(&runs_mu);
	int rc = SQLITE_OK;
	bool extends = w->len > 0 && off == w->start + (sqlite3_int64)w->len;
	if (!extends || w->len + (size_t)n > GATHER_MAX)
		rc = flush_run(w);
	if (rc == SQLITE_OK && (size_t)n > GATHER_MAX) {
		rc = w->real->pMethods->xWrite(w->real, p, n, off);
	} else if (rc == SQLITE_OK) {
		if (!w->run && !(w->run = malloc(GATHER_MAX))) {
			rc = w->real->pMethods->xWrite(w->real, p, n, off);
		} else {
			if (w->len == 0)
				w->start = off;
			memcpy(w->run + w->len, p, (size_t)n);
			w->len += (size_t)n;
		}
	}
	pthread_mutex_unlock(&runs_mu);
	return rc;
}

static int vfs_truncate(sqlite3_file *f, sqlite3_int64 size)
{
	int rc = flush_file(f);
	return rc != SQLITE_OK ? rc : vf(f)->real->pMethods->xTruncate(vf(f)->real, size);
}

static int vfs_sync(sqlite3_file *f, int flags)
{
	int rc = flush_file(f);
	if (rc != SQLITE_OK || (vf(f)->wal && (flags & 0x0f) == SQLITE_SYNC_NORMAL))
		return rc; /* a commit's: the syncer's fdatasync makes it durable */
	return vf(f)->real->pMethods->xSync(vf(f)->real, flags);
}

static int vfs_file_size(sqlite3_file *f, sqlite3_int64 *ret_size)
{
	int rc = flush_file(f);
	return rc != SQLITE_OK ? rc : vf(f)->real->pMethods->xFileSize(vf(f)->real, ret_size);
}

static int vfs_lock(sqlite3_file *f, int level)
{
	return vf(f)->real->pMethods->xLock(vf(f)->real, level);
}

static int vfs_unlock(sqlite3_file *f, int level)
{
	return vf(f)->real->pMethods->xUnlock(vf(f)->real, level);
}

static int vfs_check_reserved_lock(sqlite3_file *f, int *ret_out)
{
	return vf(f)->real->pMethods->xCheckReservedLock(vf(f)->real, ret_out);
}

static int vfs_file_control(sqlite3_file *f, int op, void *arg)
{
	int rc = flush_file(f);
	return rc != SQLITE_OK ? rc : vf(f)->real->pMethods->xFileControl(vf(f)->real, op, arg);
}

static int vfs_sector_size(sqlite3_file *f)
{
	return vf(f)->real->pMethods->xSectorSize(vf(f)->real);
}

static int vfs_device_characteristics(sqlite3_file *f)
{
	return vf(f)->real->pMethods->xDeviceCharacteristics(vf(f)->real);
}

static int vfs_shm_map(sqlite3_file *f, int region, int size, int extend, void volatile **ret)
{
	return vf(f)->real->pMethods->xShmMap(vf(f)->real, region, size, extend, ret);
}

/* Every WAL write gathered under the write lock is out before any lock of the wal-index
 * changes, the write lock's release included. */
static int vfs_shm_lock(sqlite3_file *f, int offset, int n, int flags)
{
	int rc = SQLITE_OK;
	pthread_mutex_lock(&runs_mu);
	for (struct vfs_file *w = wals; w && rc == SQLITE_OK; w = w->next_wal)
		rc = flush_run(w);
	pthread_mutex_unlock(&runs_mu);
	return rc != SQLITE_OK ? rc : vf(f)->real->pMethods->xShmLock(vf(f)->real, offset, n, flags);
}

static void vfs_shm_barrier(sqlite3_file *f)
{
	vf(f)->real->pMethods->xShmBarrier(vf(f)->real);
}

static int vfs_shm_unmap(sqlite3_file *f, int delete_flag)
{
	return vf(f)->real->pMethods->xShmUnmap(vf(f)->real, delete_flag);
}

static int vfs_fetch(sqlite3_file *f, sqlite3_int64 off, int n, void **ret)
{
	int rc = flush_file(f);
	return rc != SQLITE_OK ? rc : vf(f)->real->pMethods->xFetch(vf(f)->real, off, n, ret);
}

static int vfs_unfetch(sqlite3_file *f, sqlite3_int64 off, void *p)
{
	return vf(f)->real->pMethods->xUnfetch(vf(f)->real, off, p);
}

static int vfs_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *f, int flags,
		    int *ret_flags)
{
	(void)vfs;
	struct vfs_file *w = vf(f);
	*w = (struct vfs_file){.real = (sqlite3_file *)(w + 1), .wal = flags & SQLITE_OPEN_WAL};
	int rc = base_vfs->xOpen(base_vfs, name, w->real, flags, ret_flags);
	if (!w->real->pMethods)
		return rc; /* nothing to close: base.pMethods stays NULL */
	if (w->real->pMethods->iVersion < 3) { /* file_methods calls xShm* and xFetch */
		w->real->pMethods->xClose(w->real);
		return SQLITE_CANTOPEN;
	}
	w->base.pMethods = &file_methods;
	if (w->wal) {
		pthread_mutex_lock(&runs_mu);
		w->next_wal = wals;
		wals = w;
		pthread_mutex_unlock(&runs_mu);
	}
	return rc;
}

static void register_once(void)
{
	base_vfs = sqlite3_vfs_find(NULL);
	if (!base_vfs)
		return;
	file_methods = (sqlite3_io_methods){
		.iVersion = 3,
		.xClose = vfs_close,
		.xRead = vfs_read,
		.xWrite = vfs_write,
		.xTruncate = vfs_truncate,
		.xSync = vfs_sync,
		.xFileSize = vfs_file_size,
		.xLock = vfs_lock,
		.xUnlock = vfs_unlock,
		.xCheckReservedLock = vfs_check_reserved_lock,
		.xFileControl = vfs_file_control,
		.xSectorSize = vfs_sector_size,
		.xDeviceCharacteristics = vfs_device_characteristics,
		.xShmMap = vfs_shm_map,
		.xShmLock = vfs_shm_lock,
		.xShmBarrier = vfs_shm_barrier,
		.xShmUnmap = vfs_shm_unmap,
		.xFetch = vfs_fetch,
		.xUnfetch = vfs_unfetch,
	};
	/* Everything but opening a file is the default VFS's, with its own pAppData. */
	writer_vfs = *base_vfs;
	writer_vfs.pNext = NULL;
	writer_vfs.zName = WRITER_VFS_NAME;
	writer_vfs.szOsFile = (int)sizeof(struct vfs_file) + base_vfs->szOsFile;
	writer_vfs.xOpen = vfs_open;
	if (sqlite3_vfs_register(&writer_vfs, 0) != SQLITE_OK)
		base_vfs = NULL;
}

bool writer_vfs_register(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	pthread_once(&once, register_once);
	return base_vfs != NULL;
}

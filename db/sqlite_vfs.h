/* The SQLite writer's VFS (db/sqlite_vfs.c): the default one, but a commit's WAL frames go to
 * the file in one write, and the commit leaves the WAL's fdatasync to the syncer thread. */
#pragma once

#include <stdbool.h>

/* Registers the VFS once (any thread); false if SQLite refused it. */
bool writer_vfs_register(void);
/* The name to open the writer's connection with. */
#define WRITER_VFS_NAME "callstate-writer"
/* The pragmas the writer's connection needs for it: SQLite then asks for the WAL's sync at a
 * commit with SQLITE_SYNC_NORMAL and for those of a checkpoint and of a restarted WAL's header
 * with SQLITE_SYNC_FULL, which is how the VFS tells them apart. */
#define WRITER_VFS_PRAGMAS "PRAGMA synchronous = FULL; PRAGMA checkpoint_fullfsync = ON;"

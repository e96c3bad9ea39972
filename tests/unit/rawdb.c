/* rawdb.h for SQLite URLs ("sqlite:PATH"). */
#include "rawdb.h"

#include <criterion/criterion.h>
#include <sqlite3.h>
#include <string.h>

void rawdb_exec1(const char *url, const char *sql, const char *param)
{
	cr_assert(strncmp(url, "sqlite:", 7) == 0, "rawdb: unsupported URL %s", url);
	sqlite3 *db = NULL;
	sqlite3_stmt *stmt = NULL;
	cr_assert_eq(sqlite3_open_v2(url + 7, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
	sqlite3_busy_timeout(db, 5000);
	cr_assert_eq(sqlite3_prepare_v2(db, sql, -1, &stmt, NULL), SQLITE_OK, "%s",
		     sqlite3_errmsg(db));
	cr_assert_eq(sqlite3_bind_text(stmt, 1, param, -1, SQLITE_STATIC), SQLITE_OK);
	cr_assert_eq(sqlite3_step(stmt), SQLITE_DONE, "%s", sqlite3_errmsg(db));
	sqlite3_finalize(stmt);
	sqlite3_close(db);
}

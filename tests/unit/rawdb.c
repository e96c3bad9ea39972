/* rawdb.h on SQLite (sqlite3) and PostgreSQL (libpq). */
#include "rawdb.h"

#include <criterion/criterion.h>
#include <libpq-fe.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool rawdb_postgres(void)
{
	const char *b = getenv("CALLSTATE_TEST_BACKEND");
	return b && strcmp(b, "postgres") == 0;
}

static void quiet(void *arg, const char *message)
{
	(void)arg;
	(void)message;
}

static PGconn *pg_connect(const char *url)
{
	PGconn *pg = PQconnectdb(url);
	cr_assert_eq(PQstatus(pg), CONNECTION_OK, "rawdb: %s: %s", url, PQerrorMessage(pg));
	PQsetNoticeProcessor(pg, quiet, NULL); /* "drop cascades to table ..." */
	return pg;
}

/* One statement without parameters; "ok_if" is an SQLSTATE that counts as done. */
static void pg_simple(PGconn *pg, const char *sql, const char *ok_if)
{
	PGresult *res = PQexec(pg, sql);
	ExecStatusType st = PQresultStatus(res);
	const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	cr_assert(st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK ||
			  (ok_if && state && strcmp(state, ok_if) == 0),
		  "rawdb: %s: %s", sql, PQerrorMessage(pg));
	PQclear(res);
}

void rawdb_fresh(const char *dir, const char *name, char *url, size_t cap)
{
	if (!rawdb_postgres()) {
		snprintf(url, cap, "sqlite:%s/%s.db", dir, name);
		return;
	}
	const char *base = getenv("CALLSTATE_TEST_PG_URL");
	cr_assert(base && strncmp(base, "postgresql://", 13) == 0 && !strchr(base + 13, '/'),
		  "CALLSTATE_TEST_BACKEND=postgres needs CALLSTATE_TEST_PG_URL="
		  "postgresql://user@host:port (tools/test sets it)");
	char admin[512], create[256];
	snprintf(admin, sizeof admin, "%s/postgres", base);
	snprintf(url, cap, "%s/%s", base, name);
	/* The name is the test's own constant, not input. */
	snprintf(create, sizeof create,
		 "CREATE DATABASE %s TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C'",
		 name);
	PGconn *pg = pg_connect(admin);
	pg_simple(pg, create, "42P04"); /* duplicate_database: made by an earlier test */
	PQfinish(pg);
	pg = pg_connect(url);
	pg_simple(pg, "DROP SCHEMA public CASCADE; CREATE SCHEMA public", NULL);
	PQfinish(pg);
}

void rawdb_exec1(const char *url, const char *sql, const char *param)
{
	if (strncmp(url, "postgresql://", 13) == 0) {
		char pg_sql[1024];
		const char *q = strstr(sql, "?1");
		cr_assert(q && strlen(sql) < sizeof pg_sql);
		snprintf(pg_sql, sizeof pg_sql, "%.*s$1%s", (int)(q - sql), sql, q + 2);
		PGconn *pg = pg_connect(url);
		const char *values[] = {param};
		PGresult *res = PQexecParams(pg, pg_sql, 1, NULL, values, NULL, NULL, 0);
		cr_assert_eq(PQresultStatus(res), PGRES_COMMAND_OK, "rawdb: %s: %s", pg_sql,
			     PQerrorMessage(pg));
		PQclear(res);
		PQfinish(pg);
		return;
	}
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

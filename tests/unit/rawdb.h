/* For tests only: the database behind a storage URL, past the storage layer, to give each test
 * a database of its own and to plant what callstate itself never writes (a row it cannot
 * read).
 *
 * The backend comes from the environment: CALLSTATE_TEST_BACKEND=postgres runs on the
 * PostgreSQL server of CALLSTATE_TEST_PG_URL (postgresql://user@host:port, no database: the
 * tests make their own, as tools/test does); anything else runs on SQLite files in a
 * temporary directory. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/* True when the tests run on PostgreSQL. */
bool rawdb_postgres(void);

/* A fresh, empty database for one test: on SQLite a file in dir (a directory the test made),
 * on PostgreSQL the database name's public schema dropped and made again (the database made
 * on first use). Writes its storage URL into url. */
void rawdb_fresh(const char *dir, const char *name, char *url, size_t cap);

/* Runs sql with its one text parameter bound as ?1 (SQLite) or $1 (PostgreSQL): write it in
 * the syntax both take, "?1" being rewritten to "$1". Asserts that it succeeds. */
void rawdb_exec1(const char *url, const char *sql, const char *param);

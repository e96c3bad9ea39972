/* For tests only: one SQL statement straight on the database behind a storage URL, past the
 * storage layer, to plant what callstate itself never writes (a row it cannot read). */
#pragma once

/* Runs sql with its one text parameter bound as ?1 (SQLite) / $1 (PostgreSQL, written by the
 * caller in that backend's syntax). Asserts that it succeeds. */
void rawdb_exec1(const char *url, const char *sql, const char *param);

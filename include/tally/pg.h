/**
 * @file pg.h
 * @brief PostgreSQL: connections with retry, and tally's schema, applied as migrations.
 *
 * Every statement tally sends is either fixed DDL or parameterised (PQexecParams); no value
 * is ever spliced into SQL text. libpq's SQLSTATEs are turned into tally errors here.
 */
#ifndef TALLY_PG_H
#define TALLY_PG_H

#include <stddef.h>

#include <libpq-fe.h>

#include <tally/pg_types.h>

/**
 * @brief Connect to dsn (a conninfo string or URI), with extra keywords overriding it.
 * Retries a refused or dropped connection with backoff (100 ms doubling to 2 s) until
 * timeout_ms has passed (0: one try). Bad keywords or a bad dsn fail at once.
 * @returns a connection the caller frees with PQfinish(), or NULL with errstr set
 *          (never containing the password).
 */
PGconn *tally_pg_connect(const char *dsn, const tally_pg_param_t *params, size_t nparams,
                         unsigned timeout_ms, char *errstr, size_t errstr_size);

/**
 * @brief Check extra keywords against libpq's list without connecting.
 * @returns 0, or TALLY_ECONFIG with errstr naming the first unknown keyword.
 */
int tally_pg_check_params(const tally_pg_param_t *params, size_t nparams, char *errstr,
                          size_t errstr_size);

/** @brief Map a failed result's SQLSTATE (or the connection's state) to a tally error. */
int tally_pg_err(PGconn *conn, const PGresult *res);

/**
 * @brief Bring the database to tally's current schema: applies, each in its own
 * transaction and under an advisory lock (so concurrent starts are safe), every migration
 * not yet recorded in tally_schema_version. Idempotent.
 * @param applied if not NULL, receives how many migrations this call applied.
 * @returns 0, or a tally error with errstr set ("migration 2 \"votes\": ...").
 */
int tally_pg_migrate(PGconn *conn, int *applied, char *errstr, size_t errstr_size);

/** @brief The schema version tally's code expects (the number of migrations). */
int tally_pg_schema_version(void);

#endif /* TALLY_PG_H */

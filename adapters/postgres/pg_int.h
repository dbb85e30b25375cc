/*
 * adapters/postgres internals shared by its modules.
 */
#ifndef TALLY_PG_INT_H
#define TALLY_PG_INT_H

#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include <tally/pg_checkpoint.h>
#include <tally/registry.h>

/* Binary COPY of votes into the votes table, in the caller's transaction. */
int tally__pg_copy_votes(PGconn *conn, const char *election_id, const tally_pg_vote_row_t *votes,
                         size_t n, char *errstr, size_t errstr_size);

/* errstr = "WHAT: the server's (or the connection's) first message line". */
void tally__pg_set_error(PGconn *conn, const PGresult *res, const char *what, char *errstr,
                         size_t errstr_size);

/* tally__pg_set_error(), then the tally error of res (or of the connection). */
int tally__pg_failed(PGconn *conn, const PGresult *res, const char *what, char *errstr,
                     size_t errstr_size);

/* Run a fixed or parameterised statement whose rows, if any, are not wanted.
 * Returns 0, or the tally error with errstr = "WHAT: message". */
int tally__pg_exec(PGconn *conn, const char *sql, int n, const char *const *values,
                   const int *lengths, const int *formats, const char *what, char *errstr,
                   size_t errstr_size);

/* Roll back the open transaction, if the connection still works and one is open. */
void tally__pg_rollback(PGconn *conn);

/*
 * Register every party, then every candidate stored, in the caller's transaction (as
 * tally_pg_registry_load() does before the voters). Returns 0 or a tally error with errstr
 * set; *parties and *candidates receive how many were registered either way.
 */
int tally__pg_load_parties_candidates(PGconn *conn, tally_registry_t *reg, uint64_t *parties,
                                      uint64_t *candidates, char *errstr, size_t errstr_size);

#endif /* TALLY_PG_INT_H */

/*
 * adapters/postgres internals shared by its modules.
 */
#ifndef TALLY_PG_INT_H
#define TALLY_PG_INT_H

#include <stddef.h>

#include <libpq-fe.h>

#include <tally/pg_checkpoint.h>

/* Binary COPY of votes into the votes table, in the caller's transaction. */
int tally__pg_copy_votes(PGconn *conn, const char *election_id, const tally_pg_vote_row_t *votes,
                         size_t n, char *errstr, size_t errstr_size);

/* errstr = "WHAT: the server's (or the connection's) first message line". */
void tally__pg_set_error(PGconn *conn, const PGresult *res, const char *what, char *errstr,
                         size_t errstr_size);

#endif /* TALLY_PG_INT_H */

/*
 * Shared by the registry's PostgreSQL modules (registry_store.c, registry_image.c).
 * Private to adapters/postgres/.
 */
#ifndef TALLY_PG_REGISTRY_INT_H
#define TALLY_PG_REGISTRY_INT_H

#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include <tally/registry.h>

/*
 * Register every party, then every candidate stored, in the caller's transaction (as
 * tally_pg_registry_load() does before the voters). Returns 0 or a tally error with errstr
 * set; *parties and *candidates receive how many were registered either way.
 */
int tally__pg_load_parties_candidates(PGconn *conn, tally_registry_t *reg, uint64_t *parties,
                                      uint64_t *candidates, char *errstr, size_t errstr_size);

#endif /* TALLY_PG_REGISTRY_INT_H */

/*
 * PostgreSQL scaffolding for integration tests: each test works in a schema of its own on
 * the server scripts/services started, so runs never see each other's rows.
 * Failures print the reason and abort the test (these helpers run inside Criterion tests,
 * but do not include it, so they also build against the TSan runner).
 */
#ifndef TALLY_TEST_PGTEST_H
#define TALLY_TEST_PGTEST_H

#include <libpq-fe.h>

#include <tally/gen.h>
#include <tally/pg.h>

/* Create a fresh schema named tally_test_<pid>_<n>; later pgtest_connect()s use it. */
void pgtest_schema_create(void);

/* Drop the schema pgtest_schema_create() made, with everything in it. */
void pgtest_schema_drop(void);

/* The schema's name, and "-csearch_path=<schema>" for a libpq "options" keyword. */
const char *pgtest_schema(void);
const char *pgtest_options(void);

/* Connect with search_path set to the test's schema (retrying up to 10 s). */
PGconn *pgtest_connect(void);

/* As pgtest_connect(), then apply tally's migrations. */
PGconn *pgtest_connect_migrated(void);

/* Run a fixed statement that must succeed. */
void pgtest_exec_ok(PGconn *c, const char *sql);

/* The first column of the first row of a fixed query, as a number. */
long pgtest_count(PGconn *c, const char *sql);

/*
 * Store the generator's parties, candidates and voters [0, nvoters) with COPY, each table
 * checked to hold exactly what was sent. Every no_regno_every-th voter (0: none) goes
 * without a registration number. gen_seconds, if not NULL, receives the time spent
 * generating voters. Returns 0, or -1 with err set.
 */
int pgtest_store_gen(PGconn *c, const tally_gen_t *gen, uint64_t nvoters,
                     unsigned no_regno_every, double *gen_seconds, char *err, size_t errsz);

#endif

#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include <tally/pg_registry.h>

#include "pgtest.h"
#include "testutil.h"
#include "services.h"

static char schema[64], options[96];

static void
die(const char *what, const char *why)
{
	fprintf(stderr, "pgtest: %s: %s\n", what, why);
	abort();
}

const char *
pgtest_schema(void)
{
	return schema;
}

const char *
pgtest_options(void)
{
	return options;
}

static PGconn *
connect_with(const tally_pg_param_t *params, size_t n)
{
	char err[512];
	PGconn *c = tally_pg_connect(tally_test_service("TALLY_PG_DSN"), params, n, 10000, err,
	                             sizeof(err));

	if (c == NULL)
		die("connect", err);
	return c;
}

PGconn *
pgtest_connect(void)
{
	tally_pg_param_t p = {"options", options};

	return connect_with(&p, 1);
}

PGconn *
pgtest_connect_migrated(void)
{
	PGconn *c = pgtest_connect();
	char err[512];

	if (tally_pg_migrate(c, NULL, err, sizeof(err)) != 0)
		die("migrate", err);
	return c;
}

void
pgtest_exec_ok(PGconn *c, const char *sql)
{
	PGresult *r = PQexec(c, sql);

	if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
		die(sql, PQresultErrorMessage(r));
	PQclear(r);
}

long
pgtest_count(PGconn *c, const char *sql)
{
	PGresult *r = PQexecParams(c, sql, 0, NULL, NULL, NULL, NULL, 0);
	long n;

	if (PQresultStatus(r) != PGRES_TUPLES_OK)
		die(sql, PQresultErrorMessage(r));
	n = atol(PQgetvalue(r, 0, 0));
	PQclear(r);
	return n;
}

void
pgtest_schema_create(void)
{
	static unsigned seq;
	char sql[160];
	PGconn *c;

	snprintf(schema, sizeof(schema), "tally_test_%d_%ld_%u", (int)getpid(),
	         (long)(time(NULL) % 100000), seq++);
	snprintf(options, sizeof(options), "-csearch_path=%s", schema);
	c = connect_with(NULL, 0);
	/* Identifiers cannot be parameters: the name is the test's own, only [a-z0-9_]. */
	snprintf(sql, sizeof(sql), "CREATE SCHEMA %s", schema);
	pgtest_exec_ok(c, sql);
	PQfinish(c);
}

void
pgtest_schema_drop(void)
{
	PGconn *c = connect_with(NULL, 0);
	char sql[160];

	snprintf(sql, sizeof(sql), "DROP SCHEMA %s CASCADE", schema);
	pgtest_exec_ok(c, sql);
	PQfinish(c);
}

/* COPY one table's rows; checks the count the server stored. */
static int
copy_table(PGconn *c, tally_pg_table_t which, const tally_gen_t *gen, uint64_t n,
           unsigned no_regno_every, double *gen_seconds, char *err, size_t errsz)
{
	tally_pg_copy_t *copy = tally_pg_copy_begin(c, which, err, errsz);
	uint64_t rows = 0;
	double spent = 0;
	int rc = 0;

	if (copy == NULL)
		return -1;
	for (uint64_t i = 0; i < n && rc == 0; i++) {
		if (which == TALLY_PG_PARTIES) {
			tally_pg_party_row_t row = {tally_gen_party_name(gen, (uint32_t)i)};

			rc = tally_pg_copy_party(copy, &row);
		} else if (which == TALLY_PG_CANDIDATES) {
			tally_gen_candidate_t gc;
			tally_pg_candidate_row_t row;

			if (!tally_gen_candidate(gen, (uint32_t)i, &gc)) {
				tally_pg_copy_abort(copy);
				snprintf(err, errsz, "the generator has no candidate %llu",
				         (unsigned long long)i);
				return -1;
			}
			tally_pg_candidate_row_from_gen(&gc, &row);
			rc = tally_pg_copy_candidate(copy, &row);
		} else {
			tally_gen_voter_t v;
			tally_pg_voter_row_t row;
			double t0 = gen_seconds != NULL ? test_now_s() : 0;

			tally_gen_voter(gen, i, &v);
			if (gen_seconds != NULL)
				spent += test_now_s() - t0;
			tally_pg_voter_row_from_gen(&v, &row);
			if (no_regno_every != 0 && i % no_regno_every == 0)
				row.registration_number = NULL;
			rc = tally_pg_copy_voter(copy, &row);
		}
	}
	/* A refused row is reported by copy_end, which also ends the COPY. */
	if (tally_pg_copy_end(copy, &rows, err, errsz) != 0)
		return -1;
	if (rows != n) {
		snprintf(err, errsz, "COPY stored %llu rows of %llu", (unsigned long long)rows,
		         (unsigned long long)n);
		return -1;
	}
	if (gen_seconds != NULL)
		*gen_seconds = spent;
	return 0;
}

int
pgtest_store_gen(PGconn *c, const tally_gen_t *gen, uint64_t nvoters, unsigned no_regno_every,
                 double *gen_seconds, char *err, size_t errsz)
{
	if (copy_table(c, TALLY_PG_PARTIES, gen, tally_gen_party_count(gen), 0, NULL, err,
	               errsz) != 0 ||
	    copy_table(c, TALLY_PG_CANDIDATES, gen, tally_gen_candidate_count(gen), 0, NULL, err,
	               errsz) != 0)
		return -1;
	return copy_table(c, TALLY_PG_VOTERS, gen, nvoters, no_regno_every, gen_seconds, err,
	                  errsz);
}

#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "pgtest.h"
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

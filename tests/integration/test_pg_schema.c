/*
 * tally's PostgreSQL schema on a real server (scripts/services): migrations, constraints,
 * the original system's columns, connection errors. Each run works in its own schema.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <tally/error.h>
#include <tally/pg.h>

#include "pgtest.h"
#include "services.h"

/* Run a parameterised statement; returns 0 or the tally error its failure maps to. */
static int
exec_params(PGconn *c, const char *sql, int n, const char *const *values)
{
	PGresult *r = PQexecParams(c, sql, n, NULL, values, NULL, NULL, 0);
	int rc = PQresultStatus(r) == PGRES_COMMAND_OK ? 0 : tally_pg_err(c, r);

	PQclear(r);
	return rc;
}

static void
setup(void)
{
	pgtest_schema_create();
}

TestSuite(pg_schema, .init = setup, .fini = pgtest_schema_drop, .timeout = 120);

Test(pg_schema, migrates_once_and_is_idempotent)
{
	PGconn *c = pgtest_connect();
	char err[512];
	int applied = -1;

	cr_assert_eq(tally_pg_migrate(c, &applied, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(applied, tally_pg_schema_version());
	cr_assert_eq(applied, 9);
	cr_assert_eq(tally_pg_migrate(c, &applied, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(applied, 0);
	cr_assert_eq(pgtest_count(c, "SELECT count(*) FROM tally_schema_version"),
	             tally_pg_schema_version());
	cr_assert_eq(pgtest_count(c, "SELECT count(*) FROM tally_schema_version WHERE version = 5 "
	                             "AND name = 'registry image'"), 1);
	cr_assert_eq(pgtest_count(c, "SELECT count(*) FROM information_schema.columns WHERE "
	                             "table_schema = current_schema() AND table_name = 'checkpoints' "
	                             "AND column_name = 'is_delta'"), 0);
	cr_assert_eq(pgtest_count(c, "SELECT count(*) FROM information_schema.columns WHERE "
	                             "table_schema = current_schema() AND table_name = "
	                             "'partition_states' AND column_name = 'forward' AND "
	                             "data_type = 'bytea' AND is_nullable = 'YES'"), 1);
	cr_assert_eq(pgtest_count(c, "SELECT count(*) FROM information_schema.tables WHERE "
	                             "table_schema = current_schema() AND table_name IN ('parties', "
	                             "'candidates', 'voters', 'votes', 'elections', 'checkpoints', "
	                             "'checkpoint_offsets', 'vote_journal', 'registry_generation', "
	                             "'registry_images', 'registry_image_parts', "
	                             "'registry_image_complete')"), 12);
	PQfinish(c);
}

/* Failing SQL: its SQLSTATE ("23505" unique, "23514" check, ...). */
static void
sql_fails_with(PGconn *c, const char *sql, const char *state)
{
	PGresult *r = PQexec(c, sql);
	const char *got = PQresultErrorField(r, PG_DIAG_SQLSTATE);

	cr_assert_eq(PQresultStatus(r), PGRES_FATAL_ERROR, "%s succeeded", sql);
	cr_assert_str_eq(got != NULL ? got : "", state, "%s: %s", sql, PQresultErrorMessage(r));
	PQclear(r);
}

/* Migration 9: contests partition their level's regions; a party stands once a contest. */
Test(pg_schema, contests_keep_their_rules)
{
	PGconn *c = pgtest_connect_migrated();

	pgtest_exec_ok(c, "INSERT INTO parties (party_affiliation) VALUES ('Savior Party')");
	pgtest_exec_ok(c, "INSERT INTO contests (contest_id, contest_name, level) VALUES "
	                  "('E1', 'Aldershot', 'constituency'), ('E2', 'Bath', 'constituency'), "
	                  "('C1', 'Kent County', 'county')");
	pgtest_exec_ok(c, "INSERT INTO contest_regions (contest_id, level, position, region) VALUES "
	                  "('E1', 'constituency', 0, 'Kent'), ('E2', 'constituency', 0, 'Avon'), "
	                  "('C1', 'county', 0, 'Kent')");
	/* Kent is in E1 at its level already; another level may take it (C1 did). */
	sql_fails_with(c, "INSERT INTO contest_regions (contest_id, level, position, region) "
	                  "VALUES ('E2', 'constituency', 1, 'Kent')", "23505");
	/* The region's level must be its contest's. */
	sql_fails_with(c, "INSERT INTO contest_regions (contest_id, level, position, region) "
	                  "VALUES ('E2', 'county', 1, 'Essex')", "23503");
	/* "national" is contest 0 and level 0: never a row. */
	sql_fails_with(c, "INSERT INTO contests (contest_id, contest_name, level) VALUES "
	                  "('national', 'National', 'x')", "23514");
	sql_fails_with(c, "INSERT INTO contests (contest_id, contest_name, level) VALUES "
	                  "('E3', 'Crewe', 'national')", "23514");
	pgtest_exec_ok(c, "INSERT INTO candidates (candidate_id, candidate_name, party_affiliation, "
	                  "contest_id) VALUES ('3f0b2c1e-8d5a-4f3b-9c2d-1a2b3c4d5e6f', 'Ada', "
	                  "'Savior Party', 'E1'), ('4f0b2c1e-8d5a-4f3b-9c2d-1a2b3c4d5e6f', 'Alan', "
	                  "'Savior Party', 'E2'), ('5f0b2c1e-8d5a-4f3b-9c2d-1a2b3c4d5e6f', 'Grace', "
	                  "'Savior Party', NULL), ('6f0b2c1e-8d5a-4f3b-9c2d-1a2b3c4d5e6f', 'Joan', "
	                  "'Savior Party', NULL)");
	/* One candidate per party in a contest (the national race, NULL, has no such rule). */
	sql_fails_with(c, "INSERT INTO candidates (candidate_id, candidate_name, party_affiliation, "
	                  "contest_id) VALUES ('7f0b2c1e-8d5a-4f3b-9c2d-1a2b3c4d5e6f', 'Ben', "
	                  "'Savior Party', 'E1')", "23505");
	sql_fails_with(c, "INSERT INTO candidates (candidate_id, candidate_name, party_affiliation, "
	                  "contest_id) VALUES ('8f0b2c1e-8d5a-4f3b-9c2d-1a2b3c4d5e6f', 'Cy', "
	                  "'Savior Party', 'E9')", "23503");
	cr_assert_eq(pgtest_count(c, "SELECT count(*) FROM candidates WHERE contest_id IS NOT NULL"),
	             2);
	PQfinish(c);
}

struct racer {
	int applied, rc;
	char err[512];
};

static void *
race(void *arg)
{
	struct racer *r = arg;
	char err[512];
	tally_pg_param_t opt = {"options", pgtest_options()};
	PGconn *c = tally_pg_connect(tally_test_service("TALLY_PG_DSN"), &opt, 1, 10000, err,
	                             sizeof(err));

	if (c == NULL) {
		r->rc = -1;
		snprintf(r->err, sizeof(r->err), "%s", err);
		return NULL;
	}
	r->rc = tally_pg_migrate(c, &r->applied, r->err, sizeof(r->err));
	PQfinish(c);
	return NULL;
}

Test(pg_schema, concurrent_starts_migrate_once)
{
	struct racer r[4];
	pthread_t t[4];
	int total = 0;

	memset(r, 0, sizeof(r));
	for (int i = 0; i < 4; i++)
		pthread_create(&t[i], NULL, race, &r[i]);
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		cr_assert_eq(r[i].rc, 0, "racer %d: %s", i, r[i].err);
		total += r[i].applied;
	}
	cr_assert_eq(total, tally_pg_schema_version());
}

Test(pg_schema, constraints_hold)
{
	PGconn *c = pgtest_connect();
	char err[512];
	const char *party[] = {"Savior Party"};
	const char *cand[] = {"3f0b2c1e-8d5a-4f3b-9c2d-1a2b3c4d5e6f", "Ada Lovelace", "Savior Party"};
	const char *bad_cand[] = {"4f0b2c1e-8d5a-4f3b-9c2d-1a2b3c4d5e6f", "Alan Turing", "No Party"};
	const char *voter[] = {"0d6e3c5b-2a1f-4b9e-8c7d-6e5f4a3b2c1d", "1990-02-28", "Kent", "kindfox12"};
	const char *election[] = {"ge-2026", "2026-05-07 07:00:00+00", "2026-05-07 22:00:00+00"};
	const char *vote[] = {voter[0], cand[0], "2026-05-07 10:00:00+00", "ge-2026", "3", "41", "1"};
	const char *vote2[] = {voter[0], cand[0], "2026-05-07 11:00:00+00", "ge-2026", "3", "42", "1"};
	const char *bad_vote[] = {voter[0], cand[0], "2026-05-07 10:00:00+00", "ge-2026", "3", "43", "2"};
	static const char ins_vote[] =
	    "INSERT INTO votes (voter_id, candidate_id, voting_time, election_id, source_partition, "
	    "source_offset, vote) VALUES ($1, $2, $3, $4, $5, $6, $7)";

	cr_assert_eq(tally_pg_migrate(c, NULL, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(exec_params(c, "INSERT INTO parties (party_affiliation) VALUES ($1)", 1, party), 0);
	cr_assert_eq(exec_params(c, "INSERT INTO parties (party_affiliation) VALUES ($1)", 1, party),
	             TALLY_EEXISTS);
	cr_assert_eq(exec_params(c, "INSERT INTO candidates (candidate_id, candidate_name, "
	                            "party_affiliation) VALUES ($1, $2, $3)", 3, cand), 0);
	cr_assert_eq(exec_params(c, "INSERT INTO candidates (candidate_id, candidate_name, "
	                            "party_affiliation) VALUES ($1, $2, $3)", 3, bad_cand),
	             TALLY_ENOENT);
	cr_assert_eq(exec_params(c, "INSERT INTO voters (voter_id, date_of_birth, address_state, "
	                            "registration_number) VALUES ($1, $2, $3, $4)", 4, voter), 0);
	cr_assert_eq(pgtest_count(c, "SELECT count(*) FROM voters WHERE region = 'Kent'"), 1);
	cr_assert_eq(exec_params(c, "INSERT INTO elections (election_id, opens_at, closes_at) "
	                            "VALUES ($1, $2, $3)", 3, election), 0);
	cr_assert_eq(exec_params(c, ins_vote, 7, bad_vote), TALLY_EINVAL);
	cr_assert_eq(exec_params(c, ins_vote, 7, vote), 0);
	cr_assert_eq(exec_params(c, ins_vote, 7, vote2), TALLY_EEXISTS, "one vote per voter");
	cr_assert_eq(pgtest_count(c, "SELECT count(*) FROM votes"), 1);
	PQfinish(c);
}

Test(pg_schema, loads_the_original_systems_columns)
{
	PGconn *c = pgtest_connect();
	char err[512];
	/* A voters row as the original main.py wrote it: every column text, dob as text. */
	const char *row[] = {"5b1c2d3e-4f5a-4b6c-8d7e-9f0a1b2c3d4e", "Olivia Hughes", "1984-11-03",
	                     "female", "GB", "silverhare519", "12 Station Road", "Leeds",
	                     "West Yorkshire", "United Kingdom", "LS1 4AP", "olivia@example.org",
	                     "0113 496 0000", "07700 900000", "https://example.org/p.jpg", "6"};

	cr_assert_eq(tally_pg_migrate(c, NULL, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(exec_params(c,
	                         "INSERT INTO voters (voter_id, voter_name, date_of_birth, gender, "
	                         "nationality, registration_number, address_street, address_city, "
	                         "address_state, address_country, address_postcode, email, "
	                         "phone_number, cell_number, picture, registered_age) VALUES ($1, $2, "
	                         "$3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
	                         16, row), 0);
	cr_assert_eq(pgtest_count(c, "SELECT count(*) FROM voters WHERE region = 'West Yorkshire' AND "
	                      "date_of_birth = '1984-11-03' AND registered_age = 6"), 1);
	PQfinish(c);
}

Test(pg_connect, refused_connections_and_bad_settings_are_clear, .timeout = 60)
{
	tally_pg_param_t bad[] = {{"conect_timeout", "3"}};
	char err[512];

	cr_assert_null(tally_pg_connect("host=127.0.0.1 port=1 dbname=tally user=x password=secret",
	                                NULL, 0, 600, err, sizeof(err)));
	cr_assert_eq(strncmp(err, "could not connect to PostgreSQL at \"127.0.0.1:1\": ", 50), 0, "%s",
	             err);
	cr_assert_null(strstr(err, "secret"));
	cr_assert_null(tally_pg_connect(tally_test_service("TALLY_PG_DSN"), bad, 1, 0, err, sizeof(err)));
	cr_assert_str_eq(err, "\"conect_timeout\" is not a libpq connection keyword tally accepts");
	cr_assert_null(tally_pg_connect("host=127.0.0.1 port", NULL, 0, 0, err, sizeof(err)));
	cr_assert_str_eq(err, "invalid PostgreSQL connection string: missing \"=\" after \"port\" "
	                      "in connection info string");
}

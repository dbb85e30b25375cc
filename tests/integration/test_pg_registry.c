/*
 * The registry in PostgreSQL (adapters/postgres/registry_store.c) on a real server: COPY
 * bulk store, escaping, refused batches, load into a tally_registry, and the time both
 * take for a million voters. Each test works in its own schema.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <tally/error.h>
#include <tally/gen.h>
#include <tally/pg.h>
#include <tally/pg_registry.h>
#include <tally/registry.h>
#include <tally/uuid.h>

#include "pgtest.h"
#include "services.h"
#include "testutil.h"

static void
setup(void)
{
	pgtest_schema_create();
}

TestSuite(pg_registry, .init = setup, .fini = pgtest_schema_drop, .timeout = 900);



static tally_gen_t *
make_gen(uint64_t voters, uint32_t parties, uint32_t candidates)
{
	tally_gen_opts_t o;
	tally_gen_t *gen;
	char err[256];

	tally_gen_opts_init(&o);
	o.seed = 20261124;
	o.voters = voters;
	o.parties = parties;
	o.candidates = candidates;
	gen = tally_gen_new(&o, err, sizeof(err));
	cr_assert_not_null(gen, "%s", err);
	return gen;
}

/* Store the generator's parties, candidates and voters [0, nvoters) with COPY. */
static void
store_gen(PGconn *c, const tally_gen_t *gen, uint64_t nvoters, double *gen_seconds)
{
	char err[512];

	cr_assert_eq(pgtest_store_gen(c, gen, nvoters, 0, gen_seconds, err, sizeof(err)), 0, "%s",
	             err);
}

static tally_registry_t *
new_registry(PGconn *c, uint32_t max_regions)
{
	tally_registry_opts_t o = {0};
	tally_registry_t *reg;
	int64_t n = tally_pg_voter_count(c);
	char err[256];

	cr_assert_geq(n, 0, "voter count: %s", tally_err_name((int)n));
	o.expected_voters = n > 0 ? (size_t)n : 1;
	o.max_regions = max_regions;
	reg = tally_registry_new(&o, err, sizeof(err));
	cr_assert_not_null(reg, "%s", err);
	return reg;
}

/* A parameterised one-row SELECT; the caller PQclear()s. */
static PGresult *
select_row(PGconn *c, const char *sql, const char *param)
{
	const char *values[1] = {param};
	PGresult *r = PQexecParams(c, sql, 1, NULL, values, NULL, NULL, 0);

	cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s: %s", sql, PQresultErrorMessage(r));
	cr_assert_eq(PQntuples(r), 1, "%s with %s", sql, param);
	return r;
}

static void
assert_col(const PGresult *r, int col, const char *want)
{
	if (want == NULL) {
		cr_assert(PQgetisnull(r, 0, col), "column %d: want NULL", col);
		return;
	}
	cr_assert(!PQgetisnull(r, 0, col), "column %d: want \"%s\", got NULL", col, want);
	cr_assert_str_eq(PQgetvalue(r, 0, col), want, "column %d", col);
}

Test(pg_registry, stores_and_loads_100k_generated_voters)
{
	const uint64_t nvoters = 100000;
	PGconn *c = pgtest_connect_migrated();
	tally_gen_t *gen = make_gen(nvoters, 3, 5);
	tally_registry_t *reg;
	uint64_t np, nc, nv, total = 0;
	char err[512];
	PGresult *r;

	store_gen(c, gen, nvoters, NULL);
	cr_assert_eq(tally_pg_voter_count(c), (int64_t)nvoters);
	reg = new_registry(c, 0);
	cr_assert_eq(tally_pg_registry_load(c, reg, &np, &nc, &nv, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(PQtransactionStatus(c), PQTRANS_IDLE);
	cr_assert_eq(np, 3);
	cr_assert_eq(nc, 5);
	cr_assert_eq(nv, nvoters);
	cr_assert_eq(tally_registry_party_count(reg), 3);
	cr_assert_eq(tally_registry_candidate_count(reg), 5);
	cr_assert_eq(tally_registry_voter_count(reg), nvoters);

	/* Parties and candidates, each with its party. */
	for (uint32_t i = 0; i < 3; i++)
		cr_assert_geq(tally_registry_party_find(reg, tally_gen_party_name(gen, i)), 0);
	for (uint32_t i = 0; i < 5; i++) {
		tally_gen_candidate_t gc;
		tally_candidate_info_t info;
		int32_t idx;

		cr_assert(tally_gen_candidate(gen, i, &gc));
		cr_assert_geq(idx = tally_registry_candidate_find(reg, &gc.id), 0);
		cr_assert(tally_registry_candidate_get(reg, (uint32_t)idx, &info));
		cr_assert_str_eq(info.name, gc.candidate_name);
		cr_assert_str_eq(info.photo_url, gc.photo_url);
		cr_assert_str_eq(tally_registry_party_name(reg, info.party), gc.party_affiliation);
	}

	/* Registered voters per region: the registry's = SQL's GROUP BY (= the generator's). */
	r = PQexecParams(c, "SELECT region, count(*) FROM voters GROUP BY region", 0, NULL, NULL,
	                 NULL, NULL, 0);
	cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s", PQresultErrorMessage(r));
	cr_assert_eq((uint32_t)PQntuples(r), tally_registry_region_count(reg));
	for (int i = 0; i < PQntuples(r); i++) {
		const char *name = PQgetvalue(r, i, 0);
		uint64_t n = strtoull(PQgetvalue(r, i, 1), NULL, 10);
		int32_t idx = tally_registry_region_find(reg, name);

		cr_assert_geq(idx, 0, "region \"%s\" not loaded", name);
		cr_assert_eq(tally_registry_region_voters(reg, (uint32_t)idx), n, "region \"%s\"", name);
		total += n;
	}
	PQclear(r);
	cr_assert_eq(total, nvoters);
	for (uint32_t i = 0; i < tally_gen_region_count(gen); i++) {
		int32_t idx = tally_registry_region_find(reg, tally_gen_region_name(gen, i));

		if (tally_gen_region_registered(gen, i) == 0)
			continue;
		cr_assert_geq(idx, 0);
		cr_assert_eq(tally_registry_region_voters(reg, (uint32_t)idx),
		             tally_gen_region_registered(gen, i));
	}

	/* A sample of voters round-trips exactly, into the registry and in every column. */
	for (uint64_t i = 0; i < nvoters; i += 97) {
		tally_gen_voter_brief_t b;
		tally_voter_info_t info;

		tally_gen_voter_brief(gen, i, &b);
		cr_assert(tally_registry_voter_get(reg, &b.id, &info), "voter %llu not loaded",
		          (unsigned long long)i);
		cr_assert(tally_uuid_equal(&info.id, &b.id));
		cr_assert_eq(info.date_of_birth, b.dob_days, "voter %llu", (unsigned long long)i);
		cr_assert_str_eq(tally_registry_region_name(reg, info.region),
		                 tally_gen_region_name(gen, b.region));
		cr_assert_eq(info.registration_number_len, strlen(b.registration_number));
		cr_assert_eq(memcmp(info.registration_number, b.registration_number,
		                    info.registration_number_len), 0);
		cr_assert(!info.voted);
	}
	for (uint64_t i = 0; i < nvoters; i += 997) {
		tally_gen_voter_t v;
		char age[16];

		tally_gen_voter(gen, i, &v);
		snprintf(age, sizeof(age), "%d", v.registered_age);
		r = select_row(c,
		               "SELECT voter_id::text, voter_name, to_char(date_of_birth, 'YYYY-MM-DD'), "
		               "gender, nationality, registration_number, address_street, address_city, "
		               "address_state, address_country, address_postcode, email, phone_number, "
		               "cell_number, picture, registered_age::text, region FROM voters "
		               "WHERE voter_id = $1",
		               v.voter_id);
		assert_col(r, 0, v.voter_id);
		assert_col(r, 1, v.voter_name);
		assert_col(r, 2, v.date_of_birth);
		assert_col(r, 3, v.gender);
		assert_col(r, 4, v.nationality);
		assert_col(r, 5, v.registration_number);
		assert_col(r, 6, v.street);
		assert_col(r, 7, v.city);
		assert_col(r, 8, v.state);
		assert_col(r, 9, v.country);
		assert_col(r, 10, v.postcode);
		assert_col(r, 11, v.email);
		assert_col(r, 12, v.phone_number);
		assert_col(r, 13, v.cell_number);
		assert_col(r, 14, v.picture);
		assert_col(r, 15, age);
		assert_col(r, 16, v.state);
		PQclear(r);
	}
	tally_registry_destroy(reg);
	tally_gen_destroy(gen);
	PQfinish(c);
}

/* Text COPY must escape: none of these may be split, cut short, read as NULL or end data. */
static const char *const awkward[] = {
	"Workers' \"Unity\" Party",
	"Tab\there",
	"C:\\Users\\N and \\N",
	"\\N",
	"\\.",
	"Line one\nLine two\r\nthree\rfour",
	"Zoë Ångström-Łukasiewicz, Ñúñez, Ξένια, 東京 🗳",
	"trailing backslash \\",
	"\t\n\\\r mixed \\t\\n",
};
#define NAWKWARD (sizeof(awkward) / sizeof(awkward[0]))

Test(pg_registry, copy_escapes_awkward_text_exactly)
{
	PGconn *c = pgtest_connect_migrated();
	tally_registry_t *reg;
	tally_pg_copy_t *copy;
	char err[512], ids[NAWKWARD][TALLY_UUID_STRLEN + 1], regno[NAWKWARD][32];
	uint64_t rows, np, nc, nv;
	PGresult *r;

	for (size_t i = 0; i < NAWKWARD; i++) {
		snprintf(ids[i], sizeof(ids[i]), "00000000-0000-4000-8000-%012zx", i + 1);
		snprintf(regno[i], sizeof(regno[i]), "%.20s", awkward[i]);
	}
	copy = tally_pg_copy_begin(c, TALLY_PG_PARTIES, err, sizeof(err));
	cr_assert_not_null(copy, "%s", err);
	for (size_t i = 0; i < NAWKWARD; i++) {
		tally_pg_party_row_t row = {awkward[i]};

		cr_assert_eq(tally_pg_copy_party(copy, &row), 0);
	}
	cr_assert_eq(tally_pg_copy_end(copy, &rows, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(rows, NAWKWARD);

	copy = tally_pg_copy_begin(c, TALLY_PG_CANDIDATES, err, sizeof(err));
	cr_assert_not_null(copy, "%s", err);
	for (size_t i = 0; i < NAWKWARD; i++) {
		tally_pg_candidate_row_t row = {ids[i], awkward[i], awkward[NAWKWARD - 1 - i],
		                                awkward[(i + 1) % NAWKWARD], NULL, awkward[i], NULL};

		cr_assert_eq(tally_pg_copy_candidate(copy, &row), 0);
	}
	cr_assert_eq(tally_pg_copy_end(copy, &rows, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(rows, NAWKWARD);

	copy = tally_pg_copy_begin(c, TALLY_PG_VOTERS, err, sizeof(err));
	cr_assert_not_null(copy, "%s", err);
	for (size_t i = 0; i < NAWKWARD; i++) {
		tally_pg_voter_row_t row = {
		    .voter_id = ids[i], .voter_name = awkward[i], .date_of_birth = "1990-02-28",
		    .registration_number = regno[i], .address_street = awkward[(i + 2) % NAWKWARD],
		    .address_state = awkward[i], .email = "o'brien@example.org",
		    .registered_age = i % 2 ? TALLY_PG_NULL_INT : (int)i};

		cr_assert_eq(tally_pg_copy_voter(copy, &row), 0);
	}
	cr_assert_eq(tally_pg_copy_end(copy, &rows, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(rows, NAWKWARD);

	/* What the server holds, read with parameterised SELECTs. */
	for (size_t i = 0; i < NAWKWARD; i++) {
		char age[16];

		r = select_row(c, "SELECT count(*)::text FROM parties WHERE party_affiliation = $1",
		               awkward[i]);
		assert_col(r, 0, "1");
		PQclear(r);
		r = select_row(c, "SELECT candidate_name, party_affiliation, biography, campaign_platform, "
		                  "photo_url FROM candidates WHERE candidate_id = $1", ids[i]);
		assert_col(r, 0, awkward[i]);
		assert_col(r, 1, awkward[NAWKWARD - 1 - i]);
		assert_col(r, 2, awkward[(i + 1) % NAWKWARD]);
		assert_col(r, 3, NULL);
		assert_col(r, 4, awkward[i]);
		PQclear(r);
		r = select_row(c, "SELECT voter_name, address_state, region, registration_number, "
		                  "address_street, email, registered_age::text, gender, "
		                  "to_char(date_of_birth, 'YYYY-MM-DD') FROM voters WHERE voter_id = $1",
		               ids[i]);
		snprintf(age, sizeof(age), "%zu", i);
		assert_col(r, 0, awkward[i]);
		assert_col(r, 1, awkward[i]);
		assert_col(r, 2, awkward[i]);
		assert_col(r, 3, regno[i]);
		assert_col(r, 4, awkward[(i + 2) % NAWKWARD]);
		assert_col(r, 5, "o'brien@example.org");
		assert_col(r, 6, i % 2 ? NULL : age);
		assert_col(r, 7, NULL);
		assert_col(r, 8, "1990-02-28");
		PQclear(r);
	}

	/* And back through COPY TO STDOUT into the registry. */
	reg = new_registry(c, 0);
	cr_assert_eq(tally_pg_registry_load(c, reg, &np, &nc, &nv, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(np, NAWKWARD);
	cr_assert_eq(nc, NAWKWARD);
	cr_assert_eq(nv, NAWKWARD);
	for (size_t i = 0; i < NAWKWARD; i++) {
		tally_uuid_t id;
		tally_candidate_info_t cinfo;
		tally_voter_info_t vinfo;
		int32_t idx;

		cr_assert_geq(tally_registry_party_find(reg, awkward[i]), 0, "party %zu", i);
		cr_assert(tally_uuid_parse(ids[i], TALLY_UUID_STRLEN, &id));
		cr_assert_geq(idx = tally_registry_candidate_find(reg, &id), 0);
		cr_assert(tally_registry_candidate_get(reg, (uint32_t)idx, &cinfo));
		cr_assert_str_eq(cinfo.name, awkward[i]);
		cr_assert_str_eq(cinfo.photo_url, awkward[i]);
		cr_assert_str_eq(tally_registry_party_name(reg, cinfo.party), awkward[NAWKWARD - 1 - i]);
		cr_assert(tally_registry_voter_get(reg, &id, &vinfo));
		cr_assert_str_eq(tally_registry_region_name(reg, vinfo.region), awkward[i]);
		cr_assert_eq(vinfo.registration_number_len, strlen(regno[i]));
		cr_assert_eq(memcmp(vinfo.registration_number, regno[i], strlen(regno[i])), 0);
		cr_assert_eq(vinfo.date_of_birth, 7363);     /* 1990-02-28 */
		cr_assert_eq(tally_registry_region_voters(reg, vinfo.region), 1);
	}
	tally_registry_destroy(reg);
	PQfinish(c);
}

Test(pg_registry, a_refused_batch_stores_nothing)
{
	PGconn *c = pgtest_connect_migrated();
	tally_pg_copy_t *copy;
	tally_pg_party_row_t party = {"Savior Party"};
	tally_pg_candidate_row_t cands[] = {
	    {"3f0b2c1e-8d5a-4f3b-9c2d-1a2b3c4d5e6f", "Ada Lovelace", "Savior Party", NULL, NULL, NULL, NULL},
	    {"4f0b2c1e-8d5a-4f3b-9c2d-1a2b3c4d5e6f", "Alan Turing", "No Such Party", NULL, NULL, NULL, NULL},
	    {"5f0b2c1e-8d5a-4f3b-9c2d-1a2b3c4d5e6f", "Grace Hopper", "Savior Party", NULL, NULL, NULL, NULL},
	};
	tally_pg_voter_row_t voters[] = {
	    {.voter_id = "0d6e3c5b-2a1f-4b9e-8c7d-6e5f4a3b2c1d", .voter_name = "Olivia Hughes",
	     .date_of_birth = "1984-11-03", .address_state = "Kent", .registered_age = 3},
	    {.voter_id = "1d6e3c5b-2a1f-4b9e-8c7d-6e5f4a3b2c1d", .voter_name = "Oliver Oldfield",
	     .date_of_birth = "1899-12-31", .address_state = "Kent", .registered_age = 3},
	};
	char err[512];
	uint64_t rows = 99;

	copy = tally_pg_copy_begin(c, TALLY_PG_PARTIES, err, sizeof(err));
	cr_assert_not_null(copy, "%s", err);
	cr_assert_eq(tally_pg_copy_party(copy, &party), 0);
	cr_assert_eq(tally_pg_copy_end(copy, &rows, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(rows, 1);

	/* A candidate of an unregistered party: the foreign key refuses the whole batch. */
	copy = tally_pg_copy_begin(c, TALLY_PG_CANDIDATES, err, sizeof(err));
	cr_assert_not_null(copy, "%s", err);
	for (size_t i = 0; i < 3; i++)
		cr_assert_eq(tally_pg_copy_candidate(copy, &cands[i]), 0);
	cr_assert_eq(tally_pg_copy_end(copy, &rows, err, sizeof(err)), TALLY_ENOENT, "%s", err);
	cr_assert_eq(rows, 0);
	cr_assert_not_null(strstr(err, "could not copy into \"candidates\": insert or update on "
	                               "table \"candidates\" violates foreign key constraint "
	                               "\"candidates_party_affiliation_fkey\""), "%s", err);
	cr_assert_null(strchr(err, '\n'), "first line only: %s", err);
	cr_assert_eq(pgtest_count(c, "SELECT count(*) FROM candidates"), 0);
	cr_assert_eq(PQtransactionStatus(c), PQTRANS_IDLE);

	/* A check violation names the row, but not its values. */
	copy = tally_pg_copy_begin(c, TALLY_PG_VOTERS, err, sizeof(err));
	cr_assert_not_null(copy, "%s", err);
	for (size_t i = 0; i < 2; i++)
		cr_assert_eq(tally_pg_copy_voter(copy, &voters[i]), 0);
	cr_assert_eq(tally_pg_copy_end(copy, &rows, err, sizeof(err)), TALLY_EINVAL, "%s", err);
	cr_assert_str_eq(err, "could not copy into \"voters\": new row for relation \"voters\" "
	                      "violates check constraint \"voters_date_of_birth_check\" (row 2)");
	cr_assert_eq(pgtest_count(c, "SELECT count(*) FROM voters"), 0);

	/*
	 * The server refuses row 1 while megabytes are still being sent: the refusal, not a
	 * send failure, is what copy_end reports.
	 */
	copy = tally_pg_copy_begin(c, TALLY_PG_VOTERS, err, sizeof(err));
	cr_assert_not_null(copy, "%s", err);
	cr_assert_eq(tally_pg_copy_voter(copy, &voters[1]), 0);
	for (unsigned i = 0; i < 50000; i++) {
		char id[TALLY_UUID_STRLEN + 1];
		tally_pg_voter_row_t v = voters[0];

		snprintf(id, sizeof(id), "00000000-0000-4000-8000-%012x", i + 1);
		v.voter_id = id;
		if (tally_pg_copy_voter(copy, &v) != 0)
			break;
	}
	cr_assert_eq(tally_pg_copy_end(copy, &rows, err, sizeof(err)), TALLY_EINVAL, "%s", err);
	cr_assert_str_eq(err, "could not copy into \"voters\": new row for relation \"voters\" "
	                      "violates check constraint \"voters_date_of_birth_check\" (row 1)");
	cr_assert_eq(pgtest_count(c, "SELECT count(*) FROM voters"), 0);

	/* A duplicate id inside one batch. */
	copy = tally_pg_copy_begin(c, TALLY_PG_VOTERS, err, sizeof(err));
	cr_assert_not_null(copy, "%s", err);
	cr_assert_eq(tally_pg_copy_voter(copy, &voters[0]), 0);
	cr_assert_eq(tally_pg_copy_voter(copy, &voters[0]), 0);
	cr_assert_eq(tally_pg_copy_end(copy, &rows, err, sizeof(err)), TALLY_EEXISTS, "%s", err);
	cr_assert_not_null(strstr(err, "duplicate key value violates unique constraint "
	                               "\"voters_pkey\""), "%s", err);
	cr_assert_eq(pgtest_count(c, "SELECT count(*) FROM voters"), 0);

	/* A row for another table fails at once; the server drops the batch. */
	copy = tally_pg_copy_begin(c, TALLY_PG_PARTIES, err, sizeof(err));
	cr_assert_not_null(copy, "%s", err);
	cr_assert_eq(tally_pg_copy_voter(copy, &voters[0]), TALLY_EINVAL);
	cr_assert_eq(tally_pg_copy_party(copy, &party), TALLY_EINVAL, "a failed copy stays failed");
	cr_assert_eq(tally_pg_copy_end(copy, &rows, err, sizeof(err)), TALLY_EINVAL, "%s", err);
	cr_assert_str_eq(err, "could not copy into \"parties\": a row for \"voters\" was added");

	/* An abandoned copy stores nothing, and the connection goes on working. */
	copy = tally_pg_copy_begin(c, TALLY_PG_CANDIDATES, err, sizeof(err));
	cr_assert_not_null(copy, "%s", err);
	cr_assert_eq(tally_pg_copy_candidate(copy, &cands[0]), 0);
	tally_pg_copy_abort(copy);
	cr_assert_eq(pgtest_count(c, "SELECT count(*) FROM candidates"), 0);

	copy = tally_pg_copy_begin(c, TALLY_PG_CANDIDATES, err, sizeof(err));
	cr_assert_not_null(copy, "%s", err);
	cr_assert_eq(tally_pg_copy_candidate(copy, &cands[0]), 0);
	cr_assert_eq(tally_pg_copy_candidate(copy, &cands[2]), 0);
	cr_assert_eq(tally_pg_copy_end(copy, &rows, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(rows, 2);
	cr_assert_eq(pgtest_count(c, "SELECT count(*) FROM candidates"), 2);
	PQfinish(c);
}

Test(pg_registry, a_refusal_names_the_row_without_personal_data)
{
	PGconn *c = pgtest_connect_migrated();
	tally_gen_t *gen = make_gen(2000, 3, 3);
	tally_registry_t *reg;
	uint64_t np, nc, nv;
	unsigned long long row = 0;
	char err[512], tail[64];

	store_gen(c, gen, 2000, NULL);
	/* Two regions fit; the generator's voters live in twenty. */
	reg = new_registry(c, 2);
	cr_assert_eq(tally_pg_registry_load(c, reg, &np, &nc, &nv, err, sizeof(err)), TALLY_EFULL,
	             "%s", err);
	cr_assert_eq(sscanf(err, "could not register voters row %llu: %63s", &row, tail), 2, "%s",
	             err);
	cr_assert_str_eq(tail, "full");
	cr_assert_eq(np, 3);
	cr_assert_eq(nc, 3);
	cr_assert_eq(nv, row - 1);
	cr_assert_eq(tally_registry_region_count(reg), 2);
	cr_assert_eq(PQtransactionStatus(c), PQTRANS_IDLE, "the load's transaction is ended");
	cr_assert_eq(tally_pg_voter_count(c), 2000);
	tally_registry_destroy(reg);

	/* Loading into a registry that already holds the parties is refused as a duplicate. */
	reg = new_registry(c, 0);
	cr_assert_eq(tally_registry_add_party(reg, tally_gen_party_name(gen, 1), NULL),
	             TALLY_REFUSAL_NONE);
	cr_assert_eq(tally_pg_registry_load(c, reg, &np, &nc, &nv, err, sizeof(err)), TALLY_EEXISTS);
	cr_assert_eq(np + 1, (uint64_t)strtoull(err + strlen("could not register parties row "),
	                                         NULL, 10), "%s", err);
	cr_assert_not_null(strstr(err, ": duplicate_name"), "%s", err);
	tally_registry_destroy(reg);
	tally_gen_destroy(gen);
	PQfinish(c);
}

Test(pg_registry, copy_and_load_a_million_voters)
{
	const uint64_t nvoters = 1000000;
	PGconn *c = pgtest_connect_migrated();
	tally_gen_t *gen = make_gen(nvoters, 3, 3);
	tally_registry_t *reg;
	uint64_t np, nc, nv;
	double t0, store_s, gen_s, load_s;
	char err[512];

	t0 = test_now_s();
	store_gen(c, gen, nvoters, &gen_s);
	store_s = test_now_s() - t0;
	t0 = test_now_s();
	reg = new_registry(c, 0);
	cr_assert_eq(tally_pg_registry_load(c, reg, &np, &nc, &nv, err, sizeof(err)), 0, "%s", err);
	load_s = test_now_s() - t0;
	cr_assert_eq(nv, nvoters);
	cr_assert_eq(tally_registry_voter_count(reg), nvoters);
	cr_log_info("COPY of %llu voters: %.2f s (%.0f rows/s; generator %.2f s of it); "
	            "load into the registry: %.2f s (%.0f rows/s)",
	            (unsigned long long)nvoters, store_s, (double)nvoters / store_s, gen_s, load_s,
	            (double)nvoters / load_s);
	fprintf(stderr, "pg_registry: COPY of %llu voters: %.2f s (%.0f rows/s; generator %.2f s of "
	                "it); load into the registry: %.2f s (%.0f rows/s)\n",
	        (unsigned long long)nvoters, store_s, (double)nvoters / store_s, gen_s, load_s,
	        (double)nvoters / load_s);
	tally_registry_destroy(reg);
	tally_gen_destroy(gen);
	PQfinish(c);
}

/*
 * Registry images (adapters/postgres/registry_image.c) on a real server: written from a
 * full load, restored exactly; never used after a registration (insert, update, delete or
 * truncate of parties, candidates or voters); an image whose write was interrupted is
 * ignored; a damaged one is reported. Each test works in its own schema.
 */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tally/error.h>
#include <tally/gen.h>
#include <tally/pg.h>
#include <tally/pg_registry.h>
#include <tally/pg_registry_image.h>
#include <tally/registry.h>
#include <tally/uuid.h>

#include "pgtest.h"

static void
setup(void)
{
	pgtest_schema_create();
}

TestSuite(pg_registry_image, .init = setup, .fini = pgtest_schema_drop, .timeout = 600);

/* Parties, candidates and nvoters generated voters, stored with COPY. */
static void
store(PGconn *c, uint64_t nvoters)
{
	tally_gen_opts_t o;
	tally_gen_t *gen;
	char err[512];

	tally_gen_opts_init(&o);
	o.seed = 424242;
	o.voters = nvoters;
	o.parties = 3;
	o.candidates = 5;
	gen = tally_gen_new(&o, err, sizeof(err));
	cr_assert_not_null(gen, "%s", err);
	/* Every 7th voter without a registration number: the empty case travels too. */
	cr_assert_eq(pgtest_store_gen(c, gen, nvoters, 7, NULL, err, sizeof(err)), 0, "%s", err);
	tally_gen_destroy(gen);
}

static tally_registry_t *
fresh(uint64_t voters)
{
	tally_registry_opts_t o = {.expected_voters = voters + 16};
	char err[256];
	tally_registry_t *reg = tally_registry_new(&o, err, sizeof(err));

	cr_assert_not_null(reg, "%s", err);
	return reg;
}

static tally_registry_t *
restore(PGconn *c, tally_pg_restore_info_t *info)
{
	tally_registry_t *reg = fresh((uint64_t)pgtest_count(c, "SELECT count(*) FROM voters"));
	char err[512];

	cr_assert_eq(tally_pg_registry_restore(c, reg, info, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(PQtransactionStatus(c), PQTRANS_IDLE);
	return reg;
}

/*
 * reg holds exactly what the tables hold: every voters row (id, date of birth, region,
 * registration number) and no other voter, voters per region, every party and candidate.
 */
static void
assert_equals_tables(PGconn *c, const tally_registry_t *reg)
{
	PGresult *r = PQexecParams(c, "SELECT voter_id::text, date_of_birth - DATE '1970-01-01', "
	                              "region, coalesce(registration_number, '') FROM voters",
	                           0, NULL, NULL, NULL, NULL, 0);
	uint64_t n;

	cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s", PQresultErrorMessage(r));
	n = (uint64_t)PQntuples(r);
	cr_assert_eq(tally_registry_voter_count(reg), n);
	for (int i = 0; i < PQntuples(r); i++) {
		tally_uuid_t id;
		tally_voter_info_t info;
		const char *regno = PQgetvalue(r, i, 3);

		cr_assert(tally_uuid_parse(PQgetvalue(r, i, 0), 36, &id));
		cr_assert(tally_registry_voter_get(reg, &id, &info), "row %d not registered", i);
		cr_assert_eq(info.date_of_birth, atoi(PQgetvalue(r, i, 1)), "row %d", i);
		cr_assert_str_eq(tally_registry_region_name(reg, info.region), PQgetvalue(r, i, 2));
		cr_assert_eq(info.registration_number_len, strlen(regno), "row %d", i);
		cr_assert_eq(memcmp(info.registration_number, regno, strlen(regno)), 0, "row %d", i);
		cr_assert(!info.voted);
	}
	PQclear(r);
	r = PQexecParams(c, "SELECT region, count(*) FROM voters GROUP BY region", 0, NULL, NULL,
	                 NULL, NULL, 0);
	cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK);
	for (int i = 0; i < PQntuples(r); i++) {
		int32_t idx = tally_registry_region_find(reg, PQgetvalue(r, i, 0));

		cr_assert_geq(idx, 0);
		cr_assert_eq(tally_registry_region_voters(reg, (uint32_t)idx),
		             strtoull(PQgetvalue(r, i, 1), NULL, 10), "region %s", PQgetvalue(r, i, 0));
	}
	PQclear(r);
	cr_assert_eq(tally_registry_party_count(reg),
	             (uint32_t)pgtest_count(c, "SELECT count(*) FROM parties"));
	cr_assert_eq(tally_registry_candidate_count(reg),
	             (uint32_t)pgtest_count(c, "SELECT count(*) FROM candidates"));
}

static void
write_image(PGconn *c, const tally_registry_t *reg, int64_t generation, size_t part_bytes,
            tally_pg_image_write_info_t *info)
{
	tally_pg_image_write_opts_t o = {.part_bytes = part_bytes};
	char err[512];

	cr_assert_eq(tally_pg_registry_image_write(c, reg, generation, &o, info, err, sizeof(err)),
	             0, "%s", err);
}

Test(pg_registry_image, restores_exactly_what_the_full_load_holds)
{
	const uint64_t n = 30000;
	PGconn *c = pgtest_connect_migrated();
	tally_pg_restore_info_t full, img;
	tally_pg_image_write_info_t w, w2;
	tally_registry_t *a, *b;

	store(c, n);
	a = restore(c, &full);
	cr_assert(!full.from_image);
	cr_assert_eq(full.voters, n);
	cr_assert_eq(full.parties, 3);
	cr_assert_eq(full.candidates, 5);
	cr_assert_eq(full.generation, tally_pg_registry_generation(c));
	assert_equals_tables(c, a);

	/* Parts of 64 KiB: many parts, each cut at a record boundary. */
	write_image(c, a, full.generation, 64 << 10, &w);
	cr_assert_eq(w.voters, n);
	cr_assert_gt(w.parts, 5);
	cr_assert_eq(pgtest_count(c, "SELECT count(*) FROM registry_images"), 1);
	cr_assert_eq(pgtest_count(c, "SELECT count(*) FROM registry_image_parts"), (long)w.parts);
	cr_assert_eq(pgtest_count(c, "SELECT sum(length(data)) FROM registry_image_parts"),
	             (long)w.bytes);

	b = restore(c, &img);
	cr_assert(img.from_image);
	cr_assert_eq(img.image_id, w.image_id);
	cr_assert_eq(img.generation, full.generation);
	cr_assert_eq(img.voters, n);
	cr_assert_eq(img.parts, w.parts);
	cr_assert_eq(img.bytes, w.bytes);
	cr_assert_eq(img.parties, 3);
	cr_assert_eq(img.candidates, 5);
	assert_equals_tables(c, b);
	for (uint32_t i = 0; i < tally_registry_candidate_count(a); i++) {
		tally_candidate_info_t ca, cb;

		cr_assert(tally_registry_candidate_get(a, i, &ca));
		cr_assert(tally_registry_candidate_get(b, i, &cb));
		cr_assert(tally_uuid_equal(&ca.id, &cb.id));
		cr_assert_str_eq(ca.name, cb.name);
		cr_assert_str_eq(tally_registry_party_name(a, ca.party),
		                 tally_registry_party_name(b, cb.party));
	}

	/* A second image replaces the first. */
	write_image(c, b, img.generation, 0, &w2);
	cr_assert_gt(w2.image_id, w.image_id);
	cr_assert_eq(w2.parts, 1);
	cr_assert_eq(w2.bytes, w.bytes);
	cr_assert_eq(pgtest_count(c, "SELECT count(*) FROM registry_images"), 1);
	cr_assert_eq(pgtest_count(c, "SELECT count(*) FROM registry_image_parts"), 1);
	tally_registry_destroy(a);
	tally_registry_destroy(b);
	PQfinish(c);
}

/* Statements that change the registry: after each, the image is not used. */
static const struct change {
	const char *sql;
	long voters_after;        /* -1: unchanged */
	int bumps;                /* statements that change a registry table: 2 with a cascade */
} changes[] = {
	{"INSERT INTO voters (voter_id, date_of_birth, address_state, registration_number) "
	 "VALUES ('00000000-0000-4000-8000-000000000001', '1980-02-03', 'Newregion', 'new1')", 2001, 1},
	{"UPDATE voters SET address_state = 'Moved', registration_number = 'changed' "
	 "WHERE voter_id = (SELECT voter_id FROM voters ORDER BY voter_id LIMIT 1)", -1, 1},
	{"UPDATE voters SET date_of_birth = '1950-01-01' "
	 "WHERE voter_id = (SELECT voter_id FROM voters ORDER BY voter_id DESC LIMIT 1)", -1, 1},
	{"DELETE FROM voters WHERE voter_id IN (SELECT voter_id FROM voters LIMIT 3)", 1998, 1},
	{"UPDATE voters SET voter_name = 'x' WHERE false", -1, 1},     /* no row: still a change */
	{"INSERT INTO parties (party_affiliation) VALUES ('Late Party')", -1, 1},
	{"UPDATE candidates SET candidate_name = 'Renamed' "
	 "WHERE candidate_id = (SELECT candidate_id FROM candidates ORDER BY 1 LIMIT 1)", -1, 1},
	{"DELETE FROM candidates WHERE candidate_id = "
	 "(SELECT candidate_id FROM candidates ORDER BY 1 DESC LIMIT 1)", -1, 1},
	{"UPDATE parties SET party_affiliation = 'Renamed Party' "
	 "WHERE party_affiliation = (SELECT min(party_affiliation) FROM parties)", -1, 2},
	/* (its ON UPDATE CASCADE updates candidates too: one bump each) */
	{"TRUNCATE votes, candidates", -1, 1},
	{"TRUNCATE votes, voters", 0, 1},
};

Test(pg_registry_image, a_registration_after_the_image_means_a_full_load)
{
	PGconn *c = pgtest_connect_migrated();

	store(c, 2000);
	for (size_t k = 0; k < sizeof(changes) / sizeof(changes[0]); k++) {
		tally_pg_restore_info_t first, again;
		tally_pg_image_write_info_t w;
		tally_registry_t *a, *b;
		int64_t g;

		/* An image of the registry as it is now, used by the next restore... */
		a = restore(c, &first);
		if (!first.from_image) {
			write_image(c, a, first.generation, 4096, &w);
			tally_registry_destroy(a);
			a = restore(c, &first);
			cr_assert(first.from_image, "change %zu: the fresh image was not used", k);
		}
		assert_equals_tables(c, a);
		g = tally_pg_registry_generation(c);
		cr_assert_eq(g, first.generation);

		/* ...until one statement changes the registry: then every row is read. */
		pgtest_exec_ok(c, changes[k].sql);
		cr_assert_eq(tally_pg_registry_generation(c), g + changes[k].bumps, "change %zu", k);
		b = restore(c, &again);
		cr_assert(!again.from_image, "change %zu: %s: the image was used", k, changes[k].sql);
		cr_assert_eq(again.generation, g + changes[k].bumps);
		if (changes[k].voters_after >= 0)
			cr_assert_eq(again.voters, (uint64_t)changes[k].voters_after, "change %zu", k);
		assert_equals_tables(c, b);
		tally_registry_destroy(a);
		tally_registry_destroy(b);
	}
	PQfinish(c);
}

/* The test's stop callback: run a registration on another connection after part 1. */
struct meddler {
	PGconn *other;
	int calls;
	bool stop;
};

static bool
meddle(void *arg)
{
	struct meddler *m = arg;

	if (++m->calls == 1 && m->other != NULL)
		pgtest_exec_ok(m->other, "INSERT INTO parties (party_affiliation) VALUES ('Meddlers')");
	return m->stop && m->calls >= 1;
}

Test(pg_registry_image, an_interrupted_or_outdated_image_is_never_used)
{
	PGconn *c = pgtest_connect_migrated(), *other = pgtest_connect();
	tally_pg_restore_info_t info;
	tally_pg_image_write_info_t w;
	tally_registry_t *a, *b;
	char err[512], sql[128];
	int64_t g, first_id;

	store(c, 5000);
	a = restore(c, &info);
	cr_assert(!info.from_image);
	g = info.generation;

	/* The write crashed before its complete marker: simulated by deleting the marker. */
	write_image(c, a, g, 8192, &w);
	first_id = w.image_id;
	pgtest_exec_ok(c, "DELETE FROM registry_image_complete");
	b = restore(c, &info);
	cr_assert(!info.from_image);
	assert_equals_tables(c, b);
	tally_registry_destroy(b);

	/* Stopped after its first part: TALLY_EAGAIN, and nothing of it stays. */
	{
		struct meddler m = {.stop = true};
		tally_pg_image_write_opts_t o = {.part_bytes = 8192, .stop = meddle, .stop_arg = &m};

		cr_assert_eq(tally_pg_registry_image_write(c, a, g, &o, &w, err, sizeof(err)),
		             TALLY_EAGAIN);
		cr_assert_str_eq(err, "could not write a registry image: stopped after 1 parts");
		cr_assert_gt(w.image_id, first_id);
		snprintf(sql, sizeof(sql), "SELECT count(*) FROM registry_images WHERE image_id > %"
		         PRId64, first_id);
		cr_assert_eq(pgtest_count(c, sql), 0);
		cr_assert_eq(pgtest_count(c, "SELECT count(*) FROM registry_image_complete"), 0);
	}
	/* A generation that is not the stored one: refused before anything is written. */
	cr_assert_eq(tally_pg_registry_image_write(c, a, g - 1, NULL, &w, err, sizeof(err)),
	             TALLY_ESTATE);
	cr_assert(strstr(err, "the registry changed") != NULL, "%s", err);

	/* A registration commits while the image is being written: it is never completed. */
	{
		struct meddler m = {.other = other};
		tally_pg_image_write_opts_t o = {.part_bytes = 8192, .stop = meddle, .stop_arg = &m};

		cr_assert_eq(tally_pg_registry_image_write(c, a, g, &o, &w, err, sizeof(err)),
		             TALLY_ESTATE, "%s", err);
		cr_assert_eq(m.calls, 1);     /* the next part saw the generation move */
		cr_assert_eq(pgtest_count(c, "SELECT count(*) FROM registry_image_complete"), 0);
	}
	b = restore(c, &info);
	cr_assert(!info.from_image);
	cr_assert_eq(info.generation, g + 1);
	assert_equals_tables(c, b);
	cr_assert_geq(tally_registry_party_find(b, "Meddlers"), 0);
	tally_registry_destroy(a);
	tally_registry_destroy(b);
	PQfinish(other);
	PQfinish(c);
}

Test(pg_registry_image, a_damaged_image_is_reported)
{
	PGconn *c = pgtest_connect_migrated();
	tally_pg_restore_info_t info;
	tally_pg_image_write_info_t w;
	tally_registry_t *a, *b;
	char err[512];

	store(c, 5000);
	a = restore(c, &info);
	write_image(c, a, info.generation, 8192, &w);
	cr_assert_gt(w.parts, 3);
	pgtest_exec_ok(c, "DELETE FROM registry_image_parts WHERE part = 2");
	b = fresh(5000);
	cr_assert_eq(tally_pg_registry_restore(c, b, &info, err, sizeof(err)), TALLY_ECORRUPT);
	cr_assert(info.from_image);
	cr_assert(strstr(err, "part 2 is missing or malformed") != NULL, "%s", err);
	cr_assert_eq(PQtransactionStatus(c), PQTRANS_IDLE);
	tally_registry_destroy(b);

	/* A part whose bytes stop mid-record. */
	write_image(c, a, info.generation, 8192, &w);
	pgtest_exec_ok(c, "UPDATE registry_image_parts SET data = substring(data FROM 1 FOR "
	                  "length(data) - 3) WHERE part = 1");
	b = fresh(5000);
	cr_assert_eq(tally_pg_registry_restore(c, b, &info, err, sizeof(err)), TALLY_ECORRUPT);
	cr_assert(strstr(err, "part 1: could not add packed voter") != NULL, "%s", err);
	cr_assert(strstr(err, "cut short") != NULL, "%s", err);
	tally_registry_destroy(b);
	tally_registry_destroy(a);
	PQfinish(c);
}

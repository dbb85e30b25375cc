/*
 * Registry: registrations, refusals, lookups, growth past the first table.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <tally/registry.h>
#include <tally/time.h>

#include "fixture.h"

static tally_registry_t *
small(void)
{
	tally_registry_opts_t o = {.expected_voters = 1000, .max_parties = 4, .max_candidates = 4,
	                           .max_regions = 8};
	char err[128];
	tally_registry_t *reg = tally_registry_new(&o, err, sizeof(err));

	cr_assert_not_null(reg, "%s", err);
	return reg;
}

Test(registry, parties_refuse_duplicates_and_bad_names)
{
	tally_registry_t *reg = small();
	uint32_t idx = 99;
	char longname[300];

	cr_assert_eq(tally_registry_add_party(reg, "Savior Party", &idx), TALLY_REFUSAL_NONE);
	cr_assert_eq(idx, 0);
	cr_assert_eq(tally_registry_add_party(reg, "Savior Party", NULL), TALLY_REFUSAL_DUPLICATE_NAME);
	cr_assert_eq(tally_registry_add_party(reg, "", NULL), TALLY_REFUSAL_INVALID_NAME);
	memset(longname, 'x', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	cr_assert_eq(tally_registry_add_party(reg, longname, NULL), TALLY_REFUSAL_INVALID_NAME);
	cr_assert_eq(tally_registry_add_party(reg, "Tech Republic Party", &idx), TALLY_REFUSAL_NONE);
	cr_assert_eq(idx, 1);
	cr_assert_eq(tally_registry_party_count(reg), 2);
	cr_assert_str_eq(tally_registry_party_name(reg, 1), "Tech Republic Party");
	cr_assert_eq(tally_registry_party_find(reg, "Savior Party"), 0);
	cr_assert_eq(tally_registry_party_find(reg, "Nobody"), -1);
	cr_assert_null(tally_registry_party_name(reg, 2));
	tally_registry_add_party(reg, "C", NULL);
	tally_registry_add_party(reg, "D", NULL);
	cr_assert_eq(tally_registry_add_party(reg, "E", NULL), TALLY_REFUSAL_FULL);
	cr_assert_eq(tally_registry_generation(reg), 4);
	tally_registry_destroy(reg);
}

Test(registry, candidates_need_a_registered_party)
{
	tally_registry_t *reg = small();
	tally_candidate_reg_t c = {fixture_candidate_id(1), "Ada Lovelace", "Management Party",
	                           "https://example.org/a.jpg"};
	tally_candidate_info_t info;
	uint32_t idx;

	cr_assert_eq(tally_registry_add_candidate(reg, &c, NULL), TALLY_REFUSAL_UNKNOWN_PARTY);
	tally_registry_add_party(reg, "Management Party", NULL);
	cr_assert_eq(tally_registry_add_candidate(reg, &c, &idx), TALLY_REFUSAL_NONE);
	cr_assert_eq(idx, 0);
	cr_assert_eq(tally_registry_add_candidate(reg, &c, NULL), TALLY_REFUSAL_DUPLICATE_ID);
	c.id = (tally_uuid_t){0, 0};
	cr_assert_eq(tally_registry_add_candidate(reg, &c, NULL), TALLY_REFUSAL_INVALID_ID);
	c.id = fixture_candidate_id(2);
	c.name = "";
	cr_assert_eq(tally_registry_add_candidate(reg, &c, NULL), TALLY_REFUSAL_INVALID_NAME);
	c.name = "Alan Turing";
	c.photo_url = NULL;
	cr_assert_eq(tally_registry_add_candidate(reg, &c, &idx), TALLY_REFUSAL_NONE);
	cr_assert_eq(idx, 1);

	cr_assert(tally_registry_candidate_get(reg, 0, &info));
	cr_assert_str_eq(info.name, "Ada Lovelace");
	cr_assert_str_eq(info.photo_url, "https://example.org/a.jpg");
	cr_assert_eq(info.party, 0);
	cr_assert(tally_registry_candidate_get(reg, 1, &info));
	cr_assert_str_eq(info.photo_url, "");
	cr_assert_not(tally_registry_candidate_get(reg, 2, &info));
	{
		tally_uuid_t id2 = fixture_candidate_id(2), id3 = fixture_candidate_id(3);

		cr_assert_eq(tally_registry_candidate_find(reg, &id2), 1);
		cr_assert_eq(tally_registry_candidate_find(reg, &id3), -1);
	}
	tally_registry_destroy(reg);
}

Test(registry, voters_keep_what_the_count_needs)
{
	tally_registry_t *reg = small();
	tally_voter_reg_t v = {fixture_voter_id(7), tally_days_from_civil(1988, 2, 29),
	                       "Greater London", "purplelion482"};
	tally_voter_info_t info;

	cr_assert_eq(tally_registry_add_voter(reg, &v), TALLY_REFUSAL_NONE);
	cr_assert_eq(tally_registry_add_voter(reg, &v), TALLY_REFUSAL_DUPLICATE_ID);
	cr_assert(tally_registry_voter_get(reg, &v.id, &info));
	cr_assert_eq(info.date_of_birth, tally_days_from_civil(1988, 2, 29));
	cr_assert_str_eq(tally_registry_region_name(reg, info.region), "Greater London");
	cr_assert_eq(info.registration_number_len, 13);
	cr_assert_eq(memcmp(info.registration_number, "purplelion482", 13), 0);
	cr_assert_not(info.voted);
	cr_assert_eq(tally_registry_region_voters(reg, info.region), 1);

	v.id = fixture_voter_id(8);
	v.date_of_birth = tally_days_from_civil(1899, 12, 31);
	cr_assert_eq(tally_registry_add_voter(reg, &v), TALLY_REFUSAL_INVALID_DOB);
	v.date_of_birth = tally_days_from_civil(1900, 1, 1);
	v.region = "";
	cr_assert_eq(tally_registry_add_voter(reg, &v), TALLY_REFUSAL_INVALID_REGION);
	v.region = "West Yorkshire";
	v.registration_number = NULL;
	cr_assert_eq(tally_registry_add_voter(reg, &v), TALLY_REFUSAL_NONE);
	cr_assert(tally_registry_voter_get(reg, &v.id, &info));
	cr_assert_eq(info.date_of_birth, tally_days_from_civil(1900, 1, 1));
	cr_assert_eq(info.registration_number_len, 0);
	cr_assert_eq(tally_registry_voter_count(reg), 2);
	cr_assert_eq(tally_registry_region_count(reg), 2);
	{
		tally_uuid_t id9 = fixture_voter_id(9);

		cr_assert_not(tally_registry_voter_get(reg, &id9, &info));
	}
	v.id = (tally_uuid_t){0, 0};
	cr_assert_eq(tally_registry_add_voter(reg, &v), TALLY_REFUSAL_INVALID_ID);
	tally_registry_destroy(reg);
}

Test(registry, regions_are_capped)
{
	tally_registry_t *reg = small();
	char name[16];
	uint32_t idx;

	for (int i = 0; i < 8; i++) {
		snprintf(name, sizeof(name), "R%d", i);
		cr_assert_eq(tally_registry_add_region(reg, name, &idx), TALLY_REFUSAL_NONE);
		cr_assert_eq(idx, (uint32_t)i);
	}
	cr_assert_eq(tally_registry_add_region(reg, "R3", &idx), TALLY_REFUSAL_NONE);
	cr_assert_eq(idx, 3);
	cr_assert_eq(tally_registry_add_region(reg, "R8", &idx), TALLY_REFUSAL_FULL);
	cr_assert_eq(tally_registry_region_find(reg, "R7"), 7);
	tally_registry_destroy(reg);
}

Test(registry, grows_past_expected_voters)
{
	/* 1024 expected: the first table holds 1024, then tables are chained. */
	tally_registry_t *reg = fixture_registry(2, 2, 5, 50000, 1024);
	tally_voter_info_t info;
	uint64_t sum = 0;

	cr_assert_eq(tally_registry_voter_count(reg), 50000);
	for (uint64_t i = 0; i < 50000; i++) {
		tally_uuid_t id = fixture_voter_id(i);

		cr_assert(tally_registry_voter_get(reg, &id, &info), "voter %llu lost", (unsigned long long)i);
		cr_assert_eq(info.region, fixture_region_of(i, 5));
	}
	for (uint32_t r = 0; r < 5; r++)
		sum += tally_registry_region_voters(reg, r);
	cr_assert_eq(sum, 50000);
	for (uint64_t i = 50000; i < 51000; i++) {
		tally_uuid_t id = fixture_voter_id(i);

		cr_assert_not(tally_registry_voter_get(reg, &id, &info));
	}
	tally_registry_destroy(reg);
}

struct reader_arg {
	tally_registry_t *reg;
	uint64_t upto;
	uint64_t found_total;
	int stop;
};

static void *
reader(void *p)
{
	struct reader_arg *a = p;
	tally_voter_info_t info;

	while (!__atomic_load_n(&a->stop, __ATOMIC_ACQUIRE)) {
		uint64_t n = tally_registry_voter_count(a->reg);

		/* Every voter the count says is published must be found, with its region. */
		for (uint64_t i = n > 500 ? n - 500 : 0; i < n; i++) {
			tally_uuid_t id = fixture_voter_id(i);

			if (!tally_registry_voter_get(a->reg, &id, &info) ||
			    info.region != fixture_region_of(i, 7))
				return (void *)1;
			a->found_total++;
		}
	}
	return NULL;
}

Test(registry, readers_see_voters_while_the_writer_adds)
{
	tally_registry_t *reg = fixture_registry(1, 1, 7, 0, 1024);
	struct reader_arg a = {reg, 0, 0, 0};
	pthread_t t;
	void *bad;

	pthread_create(&t, NULL, reader, &a);
	fixture_add_voters(reg, 0, 200000, 7);
	__atomic_store_n(&a.stop, 1, __ATOMIC_RELEASE);
	pthread_join(t, &bad);
	cr_assert_null(bad, "a reader missed a published voter");
	cr_assert_gt(a.found_total, 0);
	cr_assert_eq(tally_registry_voter_count(reg), 200000);
	tally_registry_destroy(reg);
}

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
	                           "https://example.org/a.jpg", NULL};
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

/* ---- packed voters (registry images) ------------------------------------------------- */

#include <stdlib.h>

#include <tally/error.h>

#include "registry_int.h"

static const char *const packed_regions[] = {"Avon", "Kent", "Fife", "Powys", "Down", "Angus",
                                             "Essex"};
#define NPACKED_REGIONS 7u

/* Voter i's registration number: "" for every 5th, else 1..63 bytes. */
static void
packed_regno(uint64_t i, char *out)
{
	size_t len = i % 5 == 0 ? 0 : 1 + (size_t)(fixture_mix(i) % TALLY_REGNO_MAX);

	for (size_t k = 0; k < len; k++)
		out[k] = (char)('A' + (fixture_mix(i * 64 + k) % 26));
	out[len] = '\0';
}

static int32_t
packed_dob(uint64_t i)
{
	return -25567 + (int32_t)(fixture_mix(i ^ 0x5eed) % 0x10000);    /* the whole range */
}

/* n voters over 7 regions, in a registry sized for 1,000 (so tables are chained). */
static tally_registry_t *
packed_source(uint64_t n)
{
	tally_registry_opts_t o = {.expected_voters = 1000};
	char err[128], regno[TALLY_REGNO_MAX + 1];
	tally_registry_t *reg = tally_registry_new(&o, err, sizeof(err));

	cr_assert_not_null(reg, "%s", err);
	for (uint64_t i = 0; i < n; i++) {
		tally_voter_reg_t v = {fixture_voter_id(i), packed_dob(i),
		                       packed_regions[fixture_mix(i) % NPACKED_REGIONS], regno};

		packed_regno(i, regno);
		cr_assert_eq(tally_registry_add_voter(reg, &v), TALLY_REFUSAL_NONE, "voter %lu",
		             (unsigned long)i);
	}
	return reg;
}

/* Pack everything into one buffer, chunk by chunk of `chunk` bytes. */
static unsigned char *
pack_all(const tally_registry_t *reg, size_t chunk, size_t *len, uint64_t *records)
{
	tally_registry_cursor_t cur = {0, 0};
	size_t cap = 1 << 20, n;
	unsigned char *all = malloc(cap);
	uint64_t k;

	*len = 0;
	*records = 0;
	cr_assert_not_null(all);
	for (;;) {
		if (*len + chunk > cap) {
			cap *= 2;
			all = realloc(all, cap);
			cr_assert_not_null(all);
		}
		if ((n = tally_registry_voters_pack(reg, &cur, all + *len, chunk, &k)) == 0)
			break;
		cr_assert_leq(n, chunk);
		*len += n;
		*records += k;
	}
	return all;
}

/* The map from the source's region indices to dst's, registering each name in dst. */
static uint32_t *
packed_map(const tally_registry_t *src, tally_registry_t *dst, uint32_t *n)
{
	uint32_t *map;

	*n = tally_registry_region_count(src);
	map = calloc(*n, sizeof(*map));
	cr_assert_not_null(map);
	for (uint32_t r = 0; r < *n; r++)
		cr_assert_eq(tally_registry_add_region(dst, tally_registry_region_name(src, r), &map[r]),
		             TALLY_REFUSAL_NONE);
	return map;
}

Test(registry, packed_voters_round_trip_exactly)
{
	const uint64_t n = 50000;
	tally_registry_t *src = packed_source(n), *dst;
	tally_registry_opts_t o = {.expected_voters = 2000};
	unsigned char *buf;
	size_t len, off = 0;
	uint64_t records, added, total = 0;
	uint32_t *map, nmap;
	char err[256], regno[TALLY_REGNO_MAX + 1];

	/* A voted bit set on the source is never carried over. */
	for (uint64_t i = 0; i < n; i += 3) {
		tally_uuid_t id = fixture_voter_id(i);
		tally__vslot_t *s = tally__registry_voter_slot(tally__registry_hot(src), &id,
		                                               tally_uuid_hash(&id));

		cr_assert_not_null(s);
		__atomic_fetch_or(&s->meta, TALLY__VMETA_VOTED, __ATOMIC_ACQ_REL);
	}
	buf = pack_all(src, 4096, &len, &records);
	cr_assert_eq(records, n);
	cr_assert_gt(tally_registry_voter_count(src), 0);

	/* The destination knows two regions already, in another order: indices are mapped. */
	dst = tally_registry_new(&o, err, sizeof(err));
	cr_assert_not_null(dst, "%s", err);
	cr_assert_eq(tally_registry_add_region(dst, "Essex", NULL), TALLY_REFUSAL_NONE);
	cr_assert_eq(tally_registry_add_region(dst, "Zetland", NULL), TALLY_REFUSAL_NONE);
	map = packed_map(src, dst, &nmap);
	cr_assert_eq(nmap, NPACKED_REGIONS);
	cr_assert_eq(tally_registry_region_count(dst), NPACKED_REGIONS + 1);

	/* In pieces cut at record boundaries, as parts would be. */
	while (off < len) {
		size_t piece = 0;

		while (off + piece < len && piece < 100000) {
			piece += TALLY_VOTER_PACKED_MIN + buf[off + piece + 20];
		}
		cr_assert_eq(tally_registry_add_voters_packed(dst, buf + off, piece, map, nmap, &added,
		                                              err, sizeof(err)), 0, "%s", err);
		total += added;
		off += piece;
	}
	cr_assert_eq(total, n);
	cr_assert_eq(tally_registry_voter_count(dst), n);
	for (uint64_t i = 0; i < n; i++) {
		tally_uuid_t id = fixture_voter_id(i);
		tally_voter_info_t a, b;

		packed_regno(i, regno);
		cr_assert(tally_registry_voter_get(src, &id, &a));
		cr_assert(tally_registry_voter_get(dst, &id, &b), "voter %lu missing", (unsigned long)i);
		cr_assert_eq(b.date_of_birth, packed_dob(i));
		cr_assert_eq(b.date_of_birth, a.date_of_birth);
		cr_assert_str_eq(tally_registry_region_name(dst, b.region),
		                 packed_regions[fixture_mix(i) % NPACKED_REGIONS]);
		cr_assert_eq(b.registration_number_len, strlen(regno));
		cr_assert_eq(memcmp(b.registration_number, regno, strlen(regno)), 0);
		cr_assert_eq(a.voted, i % 3 == 0);
		cr_assert(!b.voted);
	}
	for (uint32_t r = 0; r < NPACKED_REGIONS; r++) {
		int32_t si = tally_registry_region_find(src, packed_regions[r]);
		int32_t di = tally_registry_region_find(dst, packed_regions[r]);

		cr_assert_geq(si, 0);
		cr_assert_geq(di, 0);
		cr_assert_eq(tally_registry_region_voters(dst, (uint32_t)di),
		             tally_registry_region_voters(src, (uint32_t)si), "%s", packed_regions[r]);
	}
	cr_assert_eq(tally_registry_region_voters(dst, 1), 0);    /* Zetland */
	/* Two regions added before, seven by the map (one of them known), n voters. */
	cr_assert_eq(tally_registry_generation(dst), 2 + 6 + n);
	free(map);
	free(buf);
	tally_registry_destroy(src);
	tally_registry_destroy(dst);
}

Test(registry, packed_voters_pack_whole_records_only)
{
	tally_registry_t *src = packed_source(100);
	tally_registry_cursor_t cur = {0, 0};
	unsigned char buf[TALLY_VOTER_PACKED_MAX];
	uint64_t k, records = 0;
	size_t n;

	/* The smallest useful buffer: every record fits, and only whole records are written. */
	while ((n = tally_registry_voters_pack(src, &cur, buf, sizeof(buf), &k)) > 0) {
		size_t off = 0;

		cr_assert_geq(k, 1);
		for (uint64_t r = 0; r < k; r++)
			off += TALLY_VOTER_PACKED_MIN + buf[off + 20];
		cr_assert_eq(off, n);
		records += k;
	}
	cr_assert_eq(records, 100);
	cr_assert_eq(tally_registry_voters_pack(src, &cur, buf, sizeof(buf), &k), 0);
	cr_assert_eq(k, 0);
	tally_registry_destroy(src);
}

Test(registry, packed_voters_refuse_bad_input)
{
	tally_registry_t *src = packed_source(10), *dst;
	unsigned char *buf, bad[TALLY_VOTER_PACKED_MAX + 8];
	size_t len, first;
	uint64_t records, added;
	uint32_t *map, nmap, badmap[1] = {5};
	char err[256];

	buf = pack_all(src, 4096, &len, &records);
	cr_assert_eq(records, 10);
	first = TALLY_VOTER_PACKED_MIN + buf[20];
	dst = small();
	map = packed_map(src, dst, &nmap);

	/* A region map naming a region dst does not have. */
	cr_assert_eq(tally_registry_add_voters_packed(dst, buf, len, badmap, 1, &added, err,
	                                              sizeof(err)), TALLY_EINVAL);
	cr_assert_eq(added, 0);
	cr_assert(strstr(err, "region map entry 0") != NULL, "%s", err);

	/* Cut short in the second record: the first is added, then the error names record 2. */
	cr_assert_eq(tally_registry_add_voters_packed(dst, buf, first + 5, map, nmap, &added, err,
	                                              sizeof(err)), TALLY_EFORMAT);
	cr_assert_eq(added, 1);
	cr_assert_str_eq(err, "could not add packed voter 2: the record is cut short (5 bytes left)");

	/* The same records again: the first is a duplicate. */
	cr_assert_eq(tally_registry_add_voters_packed(dst, buf, len, map, nmap, &added, err,
	                                              sizeof(err)), TALLY_EEXISTS);
	cr_assert_eq(added, 0);
	cr_assert_str_eq(err, "could not add packed voter 1: duplicate_id");
	cr_assert_eq(tally_registry_voter_count(dst), 1);

	/* A region index outside the saved table. */
	memcpy(bad, buf + first, TALLY_VOTER_PACKED_MIN + buf[first + 20]);
	bad[18] = (unsigned char)nmap;
	bad[19] = 0;
	cr_assert_eq(tally_registry_add_voters_packed(dst, bad, TALLY_VOTER_PACKED_MIN + bad[20],
	                                              map, nmap, &added, err, sizeof(err)),
	             TALLY_EFORMAT);
	cr_assert(strstr(err, "is not in the region table") != NULL, "%s", err);

	/* A nil id, and a registration number longer than 63 bytes. */
	memset(bad, 0, sizeof(bad));
	cr_assert_eq(tally_registry_add_voters_packed(dst, bad, TALLY_VOTER_PACKED_MIN, map, nmap,
	                                              &added, err, sizeof(err)), TALLY_EINVAL);
	cr_assert_str_eq(err, "could not add packed voter 1: invalid_id");
	bad[0] = 1;
	bad[20] = TALLY_REGNO_MAX + 1;
	cr_assert_eq(tally_registry_add_voters_packed(dst, bad, sizeof(bad), map, nmap, &added, err,
	                                              sizeof(err)), TALLY_EINVAL);
	cr_assert_str_eq(err, "could not add packed voter 1: invalid_field");
	cr_assert_eq(tally_registry_voter_count(dst), 1);

	/* Nothing at all is no error. */
	cr_assert_eq(tally_registry_add_voters_packed(dst, buf, 0, map, nmap, &added, err,
	                                              sizeof(err)), 0);
	cr_assert_eq(added, 0);
	free(map);
	free(buf);
	tally_registry_destroy(src);
	tally_registry_destroy(dst);
}

/* Packs the registry over and over while the writer adds; checks every record it gets. */
struct packer_arg {
	tally_registry_t *reg;
	int stop;
	uint64_t passes, records, bad;
};

static void *
packer(void *arg)
{
	struct packer_arg *a = arg;
	unsigned char *buf = malloc(1 << 16);
	char regno[TALLY_REGNO_MAX + 1];

	cr_assert_not_null(buf);
	while (!__atomic_load_n(&a->stop, __ATOMIC_ACQUIRE)) {
		tally_registry_cursor_t cur = {0, 0};
		uint64_t k;
		size_t n;

		while ((n = tally_registry_voters_pack(a->reg, &cur, buf, 1 << 16, &k)) > 0) {
			size_t off = 0;

			for (uint64_t r = 0; r < k; r++) {
				const unsigned char *p = buf + off;
				uint64_t i = 0;

				/* Voter i has id {0, i + 1} here: its fields follow from i. */
				for (int b = 8; b < 16; b++)
					i = (i << 8) | p[b];
				i--;
				packed_regno(i, regno);
				if ((uint32_t)(p[16] | p[17] << 8) != (uint32_t)(packed_dob(i) + 25567) ||
				    p[20] != strlen(regno) || memcmp(p + 21, regno, p[20]) != 0 ||
				    strcmp(tally_registry_region_name(a->reg, (uint32_t)(p[18] | p[19] << 8)),
				           packed_regions[fixture_mix(i) % NPACKED_REGIONS]) != 0)
					a->bad++;
				off += TALLY_VOTER_PACKED_MIN + p[20];
			}
			a->records += k;
		}
		a->passes++;
	}
	free(buf);
	return NULL;
}

Test(registry, packed_voters_pack_while_the_writer_adds)
{
	tally_registry_opts_t o = {.expected_voters = 1000};
	char err[128], regno[TALLY_REGNO_MAX + 1];
	tally_registry_t *reg = tally_registry_new(&o, err, sizeof(err));
	struct packer_arg a = {.reg = reg};
	pthread_t t;

	cr_assert_not_null(reg, "%s", err);
	pthread_create(&t, NULL, packer, &a);
	for (uint64_t i = 0; i < 100000; i++) {
		tally_voter_reg_t v = {{0, i + 1}, packed_dob(i),
		                       packed_regions[fixture_mix(i) % NPACKED_REGIONS], regno};

		packed_regno(i, regno);
		cr_assert_eq(tally_registry_add_voter(reg, &v), TALLY_REFUSAL_NONE);
	}
	__atomic_store_n(&a.stop, 1, __ATOMIC_RELEASE);
	pthread_join(t, NULL);
	cr_assert_eq(a.bad, 0, "%lu records differ from their voter", (unsigned long)a.bad);
	cr_assert_gt(a.passes, 0);
	tally_registry_destroy(reg);
}

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tally/time.h>

#include "fixture.h"

uint64_t
fixture_mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

tally_uuid_t
fixture_voter_id(uint64_t i)
{
	/* Random-looking but unique: lo carries i. Version 4 / variant bits set. */
	tally_uuid_t id;

	id.hi = (fixture_mix(i) & ~0xf000ULL) | 0x4000ULL;
	id.lo = 0x8000000000000000ULL | (i + 1);
	return id;
}

tally_uuid_t
fixture_candidate_id(uint32_t c)
{
	tally_uuid_t id = {0xcafe000000004000ULL | ((uint64_t)c << 16), 0x8000000000000000ULL | c};

	return id;
}

uint32_t
fixture_region_of(uint64_t i, uint32_t nregions)
{
	return (uint32_t)(fixture_mix(i ^ 0x5eed) % nregions);
}

void
fixture_add_voters(tally_registry_t *reg, uint64_t from, uint64_t to, uint32_t nregions)
{
	char region[32], regno[32];

	for (uint64_t i = from; i < to; i++) {
		tally_voter_reg_t v = {0};
		tally_refusal_t r;

		v.id = fixture_voter_id(i);
		v.date_of_birth = tally_days_from_civil(1950 + (int)(i % 50), 1 + (unsigned)(i % 12),
		                                        1 + (unsigned)(i % 28));
		snprintf(region, sizeof(region), "Region %u", fixture_region_of(i, nregions));
		snprintf(regno, sizeof(regno), "voter%llu", (unsigned long long)i);
		v.region = region;
		v.registration_number = regno;
		if ((r = tally_registry_add_voter(reg, &v)) != TALLY_REFUSAL_NONE) {
			fprintf(stderr, "fixture: voter %llu refused: %s\n", (unsigned long long)i,
			        tally_refusal_name(r));
			abort();
		}
	}
}

tally_registry_t *
fixture_registry(uint32_t nparties, uint32_t ncandidates, uint32_t nregions, uint64_t nvoters,
                 uint64_t expected_voters)
{
	tally_registry_opts_t o = {.expected_voters = expected_voters, .max_regions = 1024};
	char err[256], name[64], party[64];
	tally_registry_t *reg = tally_registry_new(&o, err, sizeof(err));

	if (reg == NULL) {
		fprintf(stderr, "fixture: %s\n", err);
		abort();
	}
	for (uint32_t p = 0; p < nparties; p++) {
		snprintf(name, sizeof(name), "Party %u", p);
		tally_registry_add_party(reg, name, NULL);
	}
	for (uint32_t c = 0; c < ncandidates; c++) {
		tally_candidate_reg_t cr = {fixture_candidate_id(c), name, party, "", NULL};

		snprintf(name, sizeof(name), "Candidate %u", c);
		snprintf(party, sizeof(party), "Party %u", c % nparties);
		if (tally_registry_add_candidate(reg, &cr, NULL) != TALLY_REFUSAL_NONE)
			abort();
	}
	/* Regions in index order, so region "Region k" has index k. */
	for (uint32_t r = 0; r < nregions; r++) {
		snprintf(name, sizeof(name), "Region %u", r);
		tally_registry_add_region(reg, name, NULL);
	}
	fixture_add_voters(reg, 0, nvoters, nregions);
	return reg;
}

tally_core_opts_t
fixture_core_opts(unsigned workers)
{
	tally_core_opts_t o;

	memset(&o, 0, sizeof(o));
	o.workers = workers;
	snprintf(o.election.id, sizeof(o.election.id), "ge-2026");
	o.election.opens_at = FIXTURE_OPENS_AT;
	o.election.closes_at = FIXTURE_CLOSES_AT;
	o.election.status = TALLY_ELECTION_OPEN;
	return o;
}

void
fixture_vote(tally_vote_t *v, uint64_t voter, uint32_t candidate)
{
	memset(v, 0, sizeof(*v));
	v->voter_id = fixture_voter_id(voter);
	v->candidate_id = fixture_candidate_id(candidate);
	v->voting_time = FIXTURE_OPENS_AT + 3600 + (int64_t)(voter % 40000);
	v->reason = TALLY_REASON_ACCEPTED;
}

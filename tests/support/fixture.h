/*
 * Deterministic registries and votes for the core's tests and benchmarks.
 */
#ifndef TALLY_TEST_FIXTURE_H
#define TALLY_TEST_FIXTURE_H

#include <stdint.h>

#include <tally/core.h>
#include <tally/registry.h>
#include <tally/vote.h>

/* Election used by fixtures: 2026-05-07 07:00:00Z .. 22:00:00Z. */
#define FIXTURE_OPENS_AT  1778137200LL
#define FIXTURE_CLOSES_AT 1778191200LL

uint64_t fixture_mix(uint64_t x);
tally_uuid_t fixture_voter_id(uint64_t i);
tally_uuid_t fixture_candidate_id(uint32_t c);
uint32_t fixture_region_of(uint64_t i, uint32_t nregions);

/*
 * A registry with nparties parties, ncandidates candidates (candidate c in party
 * c % nparties), and nvoters adult voters, voter i in region fixture_region_of(i).
 */
tally_registry_t *fixture_registry(uint32_t nparties, uint32_t ncandidates, uint32_t nregions,
                                   uint64_t nvoters, uint64_t expected_voters);

/* Register voters [from, to) into reg (as fixture_registry does). */
void fixture_add_voters(tally_registry_t *reg, uint64_t from, uint64_t to, uint32_t nregions);

/* Core options for the fixture election, already open. */
tally_core_opts_t fixture_core_opts(unsigned workers);

/* A valid vote by voter i for candidate c, in the middle of the polling day. */
void fixture_vote(tally_vote_t *v, uint64_t voter, uint32_t candidate);

#endif

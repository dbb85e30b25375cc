/*
 * Snapshots: reuse of buffers as the registry grows, copies, the invariant check, leaders.
 * (Concurrent readers during counting are in test_core_stress.c's snapshot hammer.)
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tally/core.h>
#include <tally/snapshot.h>

#include "fixture.h"

static void
vote(tally_core_t *core, uint64_t voter, uint32_t cand)
{
	tally_vote_t v;
	tally_batch_t b;

	fixture_vote(&v, voter, cand);
	tally_batch_init(&b, &v, 1, 0);
	tally_core_process(core, 0, &b);
}

Test(snapshot, take_into_grows_with_the_registry)
{
	tally_registry_t *reg = fixture_registry(2, 2, 3, 100, 1024);
	tally_core_opts_t o = fixture_core_opts(1);
	tally_core_t *core = tally_core_new(reg, &o, NULL, 0);
	tally_snapshot_t snap;
	char err[256], name[32];
	uint64_t v1;

	memset(&snap, 0, sizeof(snap));
	vote(core, 0, 1);
	cr_assert_eq(tally_snapshot_take_into(core, &snap), 0);
	cr_assert_eq(snap.ncandidates, 2);
	cr_assert_eq(snap.nregions, 3);
	cr_assert_eq(snap.candidates[1], 1);
	v1 = snap.version;

	/* New candidates and regions: the same snapshot object follows. */
	for (uint32_t c = 2; c < 40; c++) {
		tally_candidate_reg_t cr = {fixture_candidate_id(c), name, "Party 0", NULL, NULL};

		snprintf(name, sizeof(name), "Candidate %u", c);
		cr_assert_eq(tally_registry_add_candidate(reg, &cr, NULL), TALLY_REFUSAL_NONE);
	}
	for (uint32_t r = 3; r < 200; r++) {
		snprintf(name, sizeof(name), "Region %u", r);
		tally_registry_add_region(reg, name, NULL);
	}
	fixture_add_voters(reg, 100, 1000, 200);
	for (uint64_t i = 100; i < 1000; i++)
		vote(core, i, (uint32_t)(i % 40));
	cr_assert_eq(tally_snapshot_take_into(core, &snap), 0);
	cr_assert_eq(tally_snapshot_check(&snap, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(snap.ncandidates, 40);
	cr_assert_eq(snap.nregions, 200);
	cr_assert_eq(snap.accepted, 901);
	cr_assert_eq(snap.candidates[39], 23); /* 119, 159, ..., 999 */
	cr_assert_eq(snap.registered, 1000);
	cr_assert_gt(snap.version, v1);
	free(snap.candidates);
	free(snap.regions);
	free(snap.parties);
	free(snap.region_registered);
	free(snap.cells);
	free(snap.cell_first);
	free(snap.cell_region);
	free(snap.cand_contest);
	tally_core_destroy(core);
	tally_registry_destroy(reg);
}

Test(snapshot, copy_is_deep_and_check_catches_damage)
{
	tally_registry_t *reg = fixture_registry(3, 6, 5, 500, 1024);
	tally_core_opts_t o = fixture_core_opts(1);
	tally_core_t *core = tally_core_new(reg, &o, NULL, 0);
	tally_snapshot_t *a, *b;
	char err[256];

	for (uint64_t i = 0; i < 500; i++)
		vote(core, i, (uint32_t)(i % 6));
	vote(core, 1, 2); /* duplicate */
	a = tally_snapshot_take(core);
	b = tally_snapshot_copy(a);
	cr_assert_neq(a->candidates, b->candidates);
	cr_assert_eq(memcmp(a->cells, b->cells, 6 * 5 * sizeof(uint64_t)), 0);
	cr_assert_eq(tally_snapshot_check(b, err, sizeof(err)), 0, "%s", err);

	b->candidates[0]++;
	cr_assert_eq(tally_snapshot_check(b, err, sizeof(err)), TALLY_ECORRUPT);
	cr_assert_str_eq(err, "sums differ from accepted 500: candidates 501, regions 500, parties 500, "
	                      "candidate-regions 500");
	b->candidates[0]--;
	b->rejected[TALLY_REASON_DUPLICATE]++;
	cr_assert_eq(tally_snapshot_check(b, err, sizeof(err)), TALLY_ECORRUPT);
	cr_assert_str_eq(err, "accepted 500 + rejected 2 != read 501");
	cr_assert_eq(tally_snapshot_check(a, err, sizeof(err)), 0);
	tally_snapshot_destroy(a);
	tally_snapshot_destroy(b);
	tally_snapshot_destroy(NULL);
	tally_core_destroy(core);
	tally_registry_destroy(reg);
}

Test(snapshot, leader_is_the_most_votes_lowest_index_on_ties)
{
	tally_registry_t *reg = fixture_registry(2, 4, 2, 100, 1024);
	tally_core_opts_t o = fixture_core_opts(1);
	tally_core_t *core = tally_core_new(reg, &o, NULL, 0);
	tally_snapshot_t *s;

	s = tally_snapshot_take(core);
	cr_assert_eq(tally_snapshot_leader(s), -1);
	tally_snapshot_destroy(s);
	vote(core, 0, 3);
	vote(core, 1, 2);
	s = tally_snapshot_take(core);
	cr_assert_eq(tally_snapshot_leader(s), 2);
	tally_snapshot_destroy(s);
	vote(core, 2, 3);
	s = tally_snapshot_take(core);
	cr_assert_eq(tally_snapshot_leader(s), 3);
	tally_snapshot_destroy(s);
	tally_core_destroy(core);
	tally_registry_destroy(reg);
}

Test(snapshot, copy_into_reuses_and_grows_the_arrays)
{
	tally_registry_t *reg = fixture_registry(2, 3, 4, 200, 1024);
	tally_core_opts_t o = fixture_core_opts(1);
	tally_core_t *core = tally_core_new(reg, &o, NULL, 0);
	tally_snapshot_t *small, *big, dst;
	uint64_t *cand_before;
	char err[256], name[32];

	memset(&dst, 0, sizeof(dst));
	for (uint64_t i = 0; i < 100; i++)
		vote(core, i, (uint32_t)(i % 3));
	small = tally_snapshot_take(core);

	/* Into a zeroed snapshot: every figure and array equal, the arrays its own. */
	cr_assert_eq(tally_snapshot_copy_into(&dst, small), 0);
	cr_assert_neq(dst.candidates, small->candidates);
	cr_assert_eq(dst.version, small->version);
	cr_assert_eq(dst.taken_at_us, small->taken_at_us);
	cr_assert_str_eq(dst.election.id, small->election.id);
	cr_assert_eq(dst.read, 100);
	cr_assert_eq(dst.accepted, 100);
	cr_assert_eq(dst.registered, 200);
	cr_assert_eq(dst.ncandidates, 3);
	cr_assert_eq(dst.nregions, 4);
	cr_assert_eq(dst.nparties, 2);
	cr_assert_eq(dst.candidates[0], 34);
	cr_assert_eq(dst.candidates[1], 33);
	cr_assert_eq(dst.candidates[2], 33);
	cr_assert_eq(memcmp(dst.regions, small->regions, 4 * sizeof(uint64_t)), 0);
	cr_assert_eq(memcmp(dst.parties, small->parties, 2 * sizeof(uint64_t)), 0);
	cr_assert_eq(memcmp(dst.region_registered, small->region_registered, 4 * sizeof(uint64_t)), 0);
	cr_assert_eq(memcmp(dst.cells, small->cells, 3 * 4 * sizeof(uint64_t)), 0);
	cr_assert_eq(tally_snapshot_check(&dst, err, sizeof(err)), 0, "%s", err);

	/* A bigger registry: the arrays grow, and the figures follow. */
	for (uint32_t c = 3; c < 30; c++) {
		tally_candidate_reg_t cr = {fixture_candidate_id(c), name, "Party 1", NULL, NULL};

		snprintf(name, sizeof(name), "Candidate %u", c);
		cr_assert_eq(tally_registry_add_candidate(reg, &cr, NULL), TALLY_REFUSAL_NONE);
	}
	for (uint32_t r = 4; r < 50; r++) {
		snprintf(name, sizeof(name), "Region %u", r);
		tally_registry_add_region(reg, name, NULL);
	}
	fixture_add_voters(reg, 200, 600, 50);
	for (uint64_t i = 200; i < 600; i++)
		vote(core, i, (uint32_t)(i % 30));
	big = tally_snapshot_take(core);
	cr_assert_eq(tally_snapshot_copy_into(&dst, big), 0);
	cr_assert_eq(dst.ncandidates, 30);
	cr_assert_eq(dst.nregions, 50);
	cr_assert_geq(dst.cap_candidates, 30);
	cr_assert_geq(dst.cap_regions, 50);
	cr_assert_eq(dst.accepted, 500);
	cr_assert_eq(dst.version, big->version);
	cr_assert_eq(dst.candidates[29], big->candidates[29]);
	cr_assert_eq(dst.ncells, 30 * 50);
	cr_assert_eq(memcmp(dst.cells, big->cells, 30 * 50 * sizeof(uint64_t)), 0);
	cr_assert_eq(memcmp(dst.region_registered, big->region_registered, 50 * sizeof(uint64_t)), 0);
	cr_assert_eq(tally_snapshot_check(&dst, err, sizeof(err)), 0, "%s", err);

	/* Back to the smaller one: the same arrays are reused, the counts shrink with it. */
	cand_before = dst.candidates;
	cr_assert_eq(tally_snapshot_copy_into(&dst, small), 0);
	cr_assert_eq(dst.candidates, cand_before);
	cr_assert_eq(dst.ncandidates, 3);
	cr_assert_eq(dst.nregions, 4);
	cr_assert_eq(dst.accepted, 100);
	cr_assert_eq(dst.version, small->version);
	cr_assert_geq(dst.cap_candidates, 30);
	cr_assert_eq(memcmp(dst.cells, small->cells, 3 * 4 * sizeof(uint64_t)), 0);
	cr_assert_eq(tally_snapshot_check(&dst, err, sizeof(err)), 0, "%s", err);
	/* A copy into itself changes nothing. */
	cr_assert_eq(tally_snapshot_copy_into(&dst, &dst), 0);
	cr_assert_eq(dst.accepted, 100);

	free(dst.candidates);
	free(dst.regions);
	free(dst.parties);
	free(dst.region_registered);
	free(dst.cells);
	free(dst.cell_first);
	free(dst.cell_region);
	free(dst.cand_contest);
	tally_snapshot_destroy(small);
	tally_snapshot_destroy(big);
	tally_core_destroy(core);
	tally_registry_destroy(reg);
}

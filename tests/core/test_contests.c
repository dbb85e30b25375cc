/*
 * Elections of many contests: the registry's contests and levels, the vote path's
 * wrong_contest and one vote per (voter, level), cells sized by contest, snapshots, state
 * export/import, and contest results (leader, majority, ties, turnout, declaration,
 * seats, report status).
 *
 * The election: 3 parties, regions "Region 0" .. "Region 5", 600 voters. Level
 * "constituency": A = {Region 0, Region 1}, B = {Region 2}, C = {Region 3, 4, 5}, each
 * with one candidate per party (A's are candidates 0..2 of parties 0..2, B's 3..5, C's
 * 6..8). Level 0 (national): a referendum, "Yes" (party 0) and "No" (party 1), candidates
 * 9 and 10.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tally/contest.h>
#include <tally/core.h>
#include <tally/snapshot.h>
#include <tally/state.h>

#include "fixture.h"

#define NVOTERS 600
#define NREGIONS 6

/* A voter's id, addressable. */
#define ID(i) (&(tally_uuid_t){fixture_voter_id(i).hi, fixture_voter_id(i).lo})

static tally_registry_t *reg;
static tally_core_t *core;

static const char *const regions_a[] = {"Region 0", "Region 1"};
static const char *const regions_b[] = {"Region 2"};
static const char *const regions_c[] = {"Region 3", "Region 4", "Region 5"};

static void
add_contest(const char *id, const char *name, const char *level, const char *const *regions,
            uint32_t n, uint32_t want)
{
	tally_contest_reg_t c = {id, name, level, regions, n};
	uint32_t idx = 99;

	cr_assert_eq(tally_registry_add_contest(reg, &c, &idx), TALLY_REFUSAL_NONE, "%s", id);
	cr_assert_eq(idx, want);
}

static void
add_candidate(uint32_t c, const char *party, const char *contest)
{
	char name[64];
	tally_candidate_reg_t cr = {fixture_candidate_id(c), name, party, NULL, contest};

	snprintf(name, sizeof(name), "Candidate %u", c);
	cr_assert_eq(tally_registry_add_candidate(reg, &cr, NULL), TALLY_REFUSAL_NONE, "%u", c);
}

static void
build(unsigned workers)
{
	tally_core_opts_t o = fixture_core_opts(workers);
	const char *contest_of[3] = {"A", "B", "C"};
	char err[256], party[32];

	reg = fixture_registry(3, 0, NREGIONS, NVOTERS, 1000);
	add_contest("A", "Aldershot", "constituency", regions_a, 2, 1);
	add_contest("B", "Bath", "constituency", regions_b, 1, 2);
	add_contest("C", "Cardiff", "constituency", regions_c, 3, 3);
	for (uint32_t c = 0; c < 9; c++) {
		snprintf(party, sizeof(party), "Party %u", c % 3);
		add_candidate(c, party, contest_of[c / 3]);
	}
	add_candidate(9, "Party 0", NULL);
	add_candidate(10, "Party 1", "national");
	core = tally_core_new(reg, &o, err, sizeof(err));
	cr_assert_not_null(core, "%s", err);
}

static void
setup(void)
{
	build(2);
}

static void
teardown(void)
{
	tally_core_destroy(core);
	tally_registry_destroy(reg);
}

TestSuite(contests, .init = setup, .fini = teardown);

static tally_reason_t
one(uint64_t voter, uint32_t cand)
{
	tally_vote_t v;
	tally_batch_t b;

	fixture_vote(&v, voter, cand);
	tally_batch_init(&b, &v, 1, 0);
	tally_core_process(core, 0, &b);
	cr_assert(tally_batch_done(&b));
	return (tally_reason_t)v.reason;
}

/* The constituency (0: A, 1: B, 2: C) of a region index. */
static uint32_t
constituency(uint32_t region)
{
	return region < 2 ? 0 : region == 2 ? 1 : 2;
}

/* The first voter at or after `from` living in a region of constituency k. */
static uint64_t
voter_in(uint32_t k, uint64_t from)
{
	for (uint64_t i = from; i < NVOTERS; i++)
		if (constituency(fixture_region_of(i, NREGIONS)) == k)
			return i;
	cr_assert_fail("no voter in constituency %u from %llu", k, (unsigned long long)from);
	return 0;
}

Test(contests, registry_contests_levels_and_refusals)
{
	const char *const one_region[] = {"Region 0"};
	const char *const twice[] = {"Region 9", "Region 9"};
	const char *const fresh[] = {"Region 7"};
	tally_contest_reg_t c = {"D", "Dover", "constituency", one_region, 1};
	tally_candidate_reg_t cand = {fixture_candidate_id(50), "X", "Party 0", NULL, "A"};
	tally_contest_info_t info;
	tally_candidate_info_t ci;
	uint64_t first;
	uint32_t n;

	cr_assert_eq(tally_registry_contest_count(reg), 4);
	cr_assert_eq(tally_registry_level_count(reg), 2);
	cr_assert_str_eq(tally_registry_level_name(reg, 0), "national");
	cr_assert_str_eq(tally_registry_level_name(reg, 1), "constituency");
	cr_assert_null(tally_registry_level_name(reg, 2));
	cr_assert_eq(tally_registry_contest_find(reg, "national"), 0);
	cr_assert_eq(tally_registry_contest_find(reg, "C"), 3);
	cr_assert_eq(tally_registry_contest_find(reg, "Z"), -1);
	cr_assert(tally_registry_contest_get(reg, 3, &info));
	cr_assert_str_eq(info.id, "C");
	cr_assert_str_eq(info.name, "Cardiff");
	cr_assert_eq(info.level, 1);
	cr_assert_eq(info.nregions, 3);
	cr_assert_eq(info.regions[0], 3);
	cr_assert_eq(info.regions[2], 5);
	cr_assert(tally_registry_contest_get(reg, 0, &info));
	cr_assert_eq(info.level, 0);
	cr_assert_null(info.regions);
	cr_assert_not(tally_registry_contest_get(reg, 4, &info));
	cr_assert_eq(tally_registry_region_contest(reg, 1, 4), 3);
	cr_assert_eq(tally_registry_region_contest(reg, 1, 2), 2);
	cr_assert_eq(tally_registry_region_contest(reg, 0, 4), 0);
	cr_assert_eq(tally_registry_region_contest(reg, 1, 7), -1);

	/* A region is in one contest per level; another level may take it again. */
	cr_assert_eq(tally_registry_add_contest(reg, &c, NULL), TALLY_REFUSAL_REGION_TAKEN);
	c.level = "county";
	cr_assert_eq(tally_registry_add_contest(reg, &c, NULL), TALLY_REFUSAL_NONE);
	cr_assert_eq(tally_registry_level_count(reg), 3);
	cr_assert_eq(tally_registry_add_contest(reg, &c, NULL), TALLY_REFUSAL_DUPLICATE_ID);
	c.id = "E";
	c.level = "national";
	cr_assert_eq(tally_registry_add_contest(reg, &c, NULL), TALLY_REFUSAL_INVALID_LEVEL);
	c.level = "";
	cr_assert_eq(tally_registry_add_contest(reg, &c, NULL), TALLY_REFUSAL_INVALID_LEVEL);
	c.level = "ward";
	c.regions = twice;
	c.nregions = 2;
	cr_assert_eq(tally_registry_add_contest(reg, &c, NULL), TALLY_REFUSAL_INVALID_REGION);
	c.nregions = 0;
	cr_assert_eq(tally_registry_add_contest(reg, &c, NULL), TALLY_REFUSAL_INVALID_REGION);
	c.id = "";
	c.regions = fresh;
	c.nregions = 1;
	cr_assert_eq(tally_registry_add_contest(reg, &c, NULL), TALLY_REFUSAL_INVALID_ID);
	/* Levels 1 .. 8 at most. */
	for (uint32_t l = 3; l < TALLY_LEVELS_MAX; l++) {
		char id[16], level[16];

		snprintf(id, sizeof(id), "L%u", l);
		snprintf(level, sizeof(level), "level%u", l);
		c.id = id;
		c.level = level;
		cr_assert_eq(tally_registry_add_contest(reg, &c, NULL), TALLY_REFUSAL_NONE, "%u", l);
	}
	c.id = "L9";
	c.level = "level9";
	cr_assert_eq(tally_registry_add_contest(reg, &c, NULL), TALLY_REFUSAL_INVALID_LEVEL);
	cr_assert_eq(tally_registry_level_count(reg), TALLY_LEVELS_MAX);

	/* Candidates: a known contest, one per party in a contest (contest 0: no limit). */
	cr_assert_eq(tally_registry_add_candidate(reg, &cand, NULL), TALLY_REFUSAL_PARTY_STANDS);
	cand.contest = "Q";
	cr_assert_eq(tally_registry_add_candidate(reg, &cand, NULL), TALLY_REFUSAL_UNKNOWN_CONTEST);
	cand.contest = "";
	cr_assert_eq(tally_registry_add_candidate(reg, &cand, NULL), TALLY_REFUSAL_NONE);
	cr_assert(tally_registry_candidate_get(reg, 11, &ci));
	cr_assert_eq(ci.contest, 0);
	cr_assert(tally_registry_candidate_get(reg, 7, &ci));
	cr_assert_eq(ci.contest, 3);
	cr_assert_eq(ci.party, 1);

	/* Cells: 2 per A candidate, 1 per B, 3 per C, max_regions (1024) per national one. */
	tally_registry_candidate_cells(reg, 0, &first, &n);
	cr_assert_eq(first, 0);
	cr_assert_eq(n, 2);
	tally_registry_candidate_cells(reg, 3, &first, &n);
	cr_assert_eq(first, 6);
	cr_assert_eq(n, 1);
	tally_registry_candidate_cells(reg, 6, &first, &n);
	cr_assert_eq(first, 9);
	cr_assert_eq(n, 3);
	tally_registry_candidate_cells(reg, 10, &first, &n);
	cr_assert_eq(first, 18 + 1024);
	cr_assert_eq(n, 1024);
	cr_assert_eq(tally_registry_cell_count(reg), 18 + 3 * 1024);
}

Test(contests, wrong_contest_and_one_vote_per_level)
{
	uint64_t a = voter_in(0, 0), b = voter_in(1, 0), c = voter_in(2, 0);
	tally_voter_info_t vi;
	tally_snapshot_t *snap;
	char err[256];

	/* A's voter votes for B's candidate: wrong_contest, and the level is not claimed. */
	cr_assert_eq(one(a, 3), TALLY_REASON_WRONG_CONTEST);
	cr_assert_eq(one(a, 4), TALLY_REASON_WRONG_CONTEST);
	cr_assert_eq(one(a, 7), TALLY_REASON_WRONG_CONTEST);
	cr_assert(tally_registry_voter_get(reg, ID(a), &vi));
	cr_assert_eq(vi.voted_levels, 0);
	cr_assert_eq(one(a, 1), TALLY_REASON_ACCEPTED);
	cr_assert_eq(one(a, 2), TALLY_REASON_DUPLICATE);
	/* ... and may still vote once at level 0, in the referendum. */
	cr_assert_eq(one(a, 9), TALLY_REASON_ACCEPTED);
	cr_assert_eq(one(a, 10), TALLY_REASON_DUPLICATE);
	cr_assert(tally_registry_voter_get(reg, ID(a), &vi));
	cr_assert_eq(vi.voted_levels, 3);
	cr_assert(vi.voted);
	/* The other order: the referendum first. */
	cr_assert_eq(one(b, 10), TALLY_REASON_ACCEPTED);
	cr_assert(tally_registry_voter_get(reg, ID(b), &vi));
	cr_assert_eq(vi.voted_levels, 1);
	cr_assert_eq(one(b, 0), TALLY_REASON_WRONG_CONTEST);
	cr_assert_eq(one(b, 5), TALLY_REASON_ACCEPTED);
	cr_assert_eq(one(b, 5), TALLY_REASON_DUPLICATE);
	cr_assert_eq(one(c, 8), TALLY_REASON_ACCEPTED);
	/* Earlier checks win over wrong_contest: an unknown candidate, an unknown voter. */
	cr_assert_eq(one(c, 77), TALLY_REASON_UNKNOWN_CANDIDATE);
	cr_assert_eq(one(NVOTERS + 5, 0), TALLY_REASON_UNKNOWN_VOTER);

	snap = tally_snapshot_take(core);
	cr_assert_eq(tally_snapshot_check(snap, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(snap->accepted, 5);
	cr_assert_eq(snap->rejected[TALLY_REASON_WRONG_CONTEST], 4);
	cr_assert_eq(snap->rejected[TALLY_REASON_DUPLICATE], 3);
	cr_assert_eq(snap->read, 14);
	cr_assert_eq(snap->ncontests, 4);
	/* The cells: each candidate's contest's regions only (national: every region). */
	cr_assert_eq(snap->ncells, 3 * 2 + 3 * 1 + 3 * 3 + 2 * NREGIONS);
	cr_assert_eq(snap->cell_first[3] - snap->cell_first[0], 6);
	cr_assert_eq(snap->cell_first[4] - snap->cell_first[3], 1);
	cr_assert_eq(snap->cell_first[10] - snap->cell_first[9], NREGIONS);
	cr_assert_eq(tally_snapshot_cand_region(snap, 1, fixture_region_of(a, NREGIONS)), 1);
	cr_assert_eq(tally_snapshot_cand_region(snap, 5, 2), 1);
	cr_assert_eq(tally_snapshot_cand_region(snap, 5, 3), 0);
	cr_assert_eq(tally_snapshot_cand_region(snap, 8, fixture_region_of(c, NREGIONS)), 1);
	cr_assert_eq(tally_snapshot_cand_region(snap, 9, fixture_region_of(a, NREGIONS)), 1);
	cr_assert_eq(tally_snapshot_cand_region(snap, 10, 2), 1);
	cr_assert_eq(snap->cand_contest[4], 2);
	cr_assert_eq(snap->cand_contest[9], 0);
	cr_assert_eq(snap->parties[0], 1);  /* Yes */
	cr_assert_eq(snap->parties[1], 2);  /* A's Party 1, No */
	cr_assert_eq(snap->parties[2], 2);  /* B's and C's Party 2 */
	tally_snapshot_destroy(snap);

	/* Restoring the voted set at a level. */
	cr_assert_eq(tally_core_mark_voted_level(core, ID(c), 1), TALLY_EEXISTS);
	cr_assert_eq(tally_core_mark_voted_level(core, ID(c), 0), 0);
	cr_assert_eq(tally_core_mark_voted_level(core, ID(c), 2), TALLY_EINVAL);
	cr_assert_eq(one(c, 9), TALLY_REASON_DUPLICATE);
}

/* Votes per candidate: A 0:5 1:3 2:0; B 3:2 4:2 5:1 (a tie); C 6:0 7:0 8:4; Yes 6, No 4. */
static void
vote_the_example(void)
{
	const uint32_t want[9] = {5, 3, 0, 2, 2, 1, 0, 0, 4};
	uint64_t next[3] = {0, 0, 0};
	uint32_t refer = 0;

	for (uint32_t cand = 0; cand < 9; cand++) {
		uint32_t k = cand / 3;

		for (uint32_t i = 0; i < want[cand]; i++) {
			uint64_t v = voter_in(k, next[k]);

			next[k] = v + 1;
			cr_assert_eq(one(v, cand), TALLY_REASON_ACCEPTED);
			if (refer < 10) {
				cr_assert_eq(one(v, refer < 6 ? 9 : 10), TALLY_REASON_ACCEPTED);
				refer++;
			}
		}
	}
	cr_assert_eq(refer, 10);
}

Test(contests, results_leader_majority_tie_turnout_seats)
{
	tally_contests_t r = {0};
	tally_snapshot_t *snap;
	uint64_t reg_a = 0, reg_b = 0, reg_c = 0;

	vote_the_example();
	snap = tally_snapshot_take(core);
	cr_assert_eq(tally_contests_compute(reg, snap, false, &r), 0);
	cr_assert_eq(r.version, snap->version);
	cr_assert_eq(r.ncontests, 4);
	cr_assert_eq(r.nlevels, 2);
	cr_assert_eq(r.report, TALLY_REPORT_UNOFFICIAL_PARTIAL);
	for (uint64_t i = 0; i < NVOTERS; i++) {
		uint32_t k = constituency(fixture_region_of(i, NREGIONS));

		*(k == 0 ? &reg_a : k == 1 ? &reg_b : &reg_c) += 1;
	}

	/* A: 0 leads 1 by 2 of 8; turnout 8 / its voters. */
	cr_assert_eq(r.contests[1].votes, 8);
	cr_assert_eq(r.contests[1].registered, reg_a);
	cr_assert_eq(r.contests[1].leader, 0);
	cr_assert_eq(r.contests[1].runner_up, 1);
	cr_assert_eq(r.contests[1].majority, 2);
	cr_assert_not(r.contests[1].tie);
	cr_assert_eq(r.contests[1].status, TALLY_CONTEST_COUNTING);
	cr_assert_eq(r.contests[1].ncandidates, 3);
	cr_assert_eq(r.cands[r.contests[1].first + 0], 0);
	cr_assert_eq(r.cands[r.contests[1].first + 1], 1);
	cr_assert_eq(r.cands[r.contests[1].first + 2], 2);
	/* B: 3 and 4 tie on 2: no leader, never broken silently. */
	cr_assert_eq(r.contests[2].votes, 5);
	cr_assert_eq(r.contests[2].registered, reg_b);
	cr_assert(r.contests[2].tie);
	cr_assert_eq(r.contests[2].leader, -1);
	cr_assert_eq(r.contests[2].runner_up, 4);
	cr_assert_eq(r.contests[2].majority, 0);
	cr_assert_eq(r.cands[r.contests[2].first + 0], 3);
	cr_assert_eq(r.cands[r.contests[2].first + 1], 4);
	/* C: 8 alone, majority 4 over nobody. */
	cr_assert_eq(r.contests[3].leader, 8);
	cr_assert_eq(r.contests[3].runner_up, -1);
	cr_assert_eq(r.contests[3].majority, 4);
	cr_assert_eq(r.contests[3].registered, reg_c);
	/* National: Yes 6, No 4, every voter registered. */
	cr_assert_eq(r.contests[0].votes, 10);
	cr_assert_eq(r.contests[0].leader, 9);
	cr_assert_eq(r.contests[0].majority, 2);
	cr_assert_eq(r.contests[0].registered, NVOTERS);
	cr_assert_eq(r.contests[0].level, 0);

	/* Seats led while counting: constituency level, Party 0 (A) and Party 2 (C). */
	cr_assert_eq(r.seats_led[1 * 3 + 0], 1);
	cr_assert_eq(r.seats_led[1 * 3 + 1], 0);
	cr_assert_eq(r.seats_led[1 * 3 + 2], 1);
	cr_assert_eq(r.seats_won[1 * 3 + 0], 0);
	cr_assert_eq(r.level_contests[1], 3);
	cr_assert_eq(r.level_declared[1], 0);
	cr_assert_eq(r.level_ties[1], 1);
	cr_assert_eq(r.level_votes[1], 17);
	cr_assert_eq(r.party_votes[1 * 3 + 0], 5 + 2 + 0);
	cr_assert_eq(r.party_votes[1 * 3 + 1], 3 + 2 + 0);
	cr_assert_eq(r.party_votes[1 * 3 + 2], 0 + 1 + 4);
	cr_assert_eq(r.seats_led[0 * 3 + 0], 1);  /* the referendum's Yes (Party 0) */
	cr_assert_eq(r.level_contests[0], 1);
	tally_snapshot_destroy(snap);

	/* Polls closed: declared; seats won, the tie still no one's. */
	cr_assert_eq(tally_core_election_close(core), 0);
	snap = tally_snapshot_take(core);
	cr_assert_eq(tally_contests_compute(reg, snap, snap->election.status >= TALLY_ELECTION_CLOSED,
	                                    &r), 0);
	cr_assert_eq(r.contests[1].status, TALLY_CONTEST_DECLARED);
	cr_assert_eq(r.contests[2].status, TALLY_CONTEST_DECLARED);
	cr_assert_eq(r.seats_won[1 * 3 + 0], 1);
	cr_assert_eq(r.seats_won[1 * 3 + 2], 1);
	cr_assert_eq(r.seats_won[1 * 3 + 1], 0);
	cr_assert_eq(r.seats_led[1 * 3 + 0], 0);
	cr_assert_eq(r.level_declared[1], 3);
	cr_assert_eq(r.report, TALLY_REPORT_UNOFFICIAL_COMPLETE);
	cr_assert_str_eq(tally_report_status_name(r.report), "unofficial-complete");
	tally_snapshot_destroy(snap);

	/* Certified: the election is final. */
	cr_assert_eq(tally_core_election_finalize(core), 0);
	snap = tally_snapshot_take(core);
	cr_assert_eq(tally_contests_compute(reg, snap, true, &r), 0);
	cr_assert_eq(r.report, TALLY_REPORT_CERTIFIED);
	cr_assert_str_eq(tally_report_status_name(r.report), "certified");
	cr_assert_str_eq(tally_contest_status_name(r.contests[3].status), "declared");
	tally_snapshot_destroy(snap);
	tally_contests_free(&r);
}

Test(contests, state_round_trip_keeps_levels_and_cells)
{
	tally_snapshot_t *a, *b;
	void *buf, *part;
	size_t len, plen;
	tally_core_opts_t o = fixture_core_opts(1);
	char err[256];
	uint64_t v = voter_in(0, 0), w = voter_in(2, 0);

	vote_the_example();
	tally_core_pause(core);
	cr_assert_eq(tally_state_export(core, TALLY_STATE_VOTED, "pos", 3, &buf, &len), 0);
	tally_core_resume(core);
	cr_assert_eq(memcmp(buf, "TALLYST2", 8), 0);
	a = tally_snapshot_take(core);

	/* Into a fresh core of the same registry, its voted bits cleared. */
	tally_core_destroy(core);
	core = tally_core_new(reg, &o, err, sizeof(err));
	cr_assert_not_null(core, "%s", err);
	cr_assert_eq(tally_state_import(core, buf, len, NULL, NULL, err, sizeof(err)), 0, "%s", err);
	b = tally_snapshot_take(core);
	cr_assert_eq(a->accepted, b->accepted);
	cr_assert_eq(a->ncells, b->ncells);
	cr_assert_eq(memcmp(a->cells, b->cells, a->ncells * sizeof(uint64_t)), 0);
	cr_assert_eq(memcmp(a->candidates, b->candidates, a->ncandidates * sizeof(uint64_t)), 0);
	tally_snapshot_destroy(b);
	/* Both levels' voted sets came back: v voted at both, w only at level 1 (C). */
	cr_assert_eq(one(v, 0), TALLY_REASON_DUPLICATE);
	cr_assert_eq(one(v, 9), TALLY_REASON_DUPLICATE);
	cr_assert_eq(one(w, 8), TALLY_REASON_DUPLICATE);
	free(buf);

	/* One part's counters, exported and imported into a parts core. */
	tally_core_destroy(core);
	o.parts = 4;
	core = tally_core_new(reg, &o, err, sizeof(err));
	cr_assert_not_null(core, "%s", err);
	{
		tally_vote_t votes[2];
		tally_batch_t bt;

		fixture_vote(&votes[0], voter_in(1, 200), 5);
		fixture_vote(&votes[1], voter_in(0, 200), 4);   /* wrong contest */
		tally_batch_init(&bt, votes, 2, 3);
		tally_core_process(core, 3 % tally_core_workers(core), &bt);
		cr_assert_eq(bt.accepted, 1);
	}
	tally_core_pause(core);
	cr_assert_eq(tally_state_part_read(core, 3), 2);
	cr_assert_eq(tally_state_export_part(core, 3, &part, &plen), 0);
	cr_assert_eq(tally_state_reset_part(core, 3), 0);
	cr_assert_eq(tally_state_part_read(core, 3), 0);
	cr_assert_eq(tally_state_import_part(core, 3, part, plen, NULL, err, sizeof(err)), 0, "%s",
	             err);
	cr_assert_eq(tally_state_part_read(core, 3), 2);
	tally_core_resume(core);
	b = tally_snapshot_take(core);
	cr_assert_eq(tally_snapshot_cand_region(b, 5, 2), 1);
	cr_assert_eq(b->rejected[TALLY_REASON_WRONG_CONTEST], 1);
	tally_snapshot_destroy(b);
	free(part);
	tally_snapshot_destroy(a);
}

Test(contests, no_contest_is_the_original_single_race)
{
	tally_registry_t *r1 = fixture_registry(3, 5, 4, 100, 1000);
	tally_core_opts_t o = fixture_core_opts(1);
	tally_core_t *c1 = tally_core_new(r1, &o, NULL, 0);
	tally_contests_t res = {0};
	tally_snapshot_t *snap;
	void *buf;
	size_t len;

	cr_assert_eq(tally_registry_contest_count(r1), 1);
	cr_assert_eq(tally_registry_level_count(r1), 1);
	cr_assert_eq(tally_registry_cell_count(r1), 5 * 1024);
	for (uint64_t i = 0; i < 100; i++) {
		tally_vote_t v;
		tally_batch_t b;

		fixture_vote(&v, i, (uint32_t)(i % 5));
		tally_batch_init(&b, &v, 1, 0);
		tally_core_process(c1, 0, &b);
		cr_assert_eq(v.reason, TALLY_REASON_ACCEPTED);
	}
	tally_core_pause(c1);
	cr_assert_eq(tally_state_export(c1, TALLY_STATE_VOTED, NULL, 0, &buf, &len), 0);
	tally_core_resume(c1);
	cr_assert_eq(memcmp(buf, "TALLYST1", 8), 0);   /* the format as before */
	free(buf);
	snap = tally_snapshot_take(c1);
	cr_assert_eq(snap->ncells, 5 * 4);
	cr_assert_eq(tally_contests_compute(r1, snap, false, &res), 0);
	cr_assert_eq(res.contests[0].votes, 100);
	cr_assert_eq(res.contests[0].ncandidates, 5);
	cr_assert_eq(res.level_contests[0], 1);
	cr_assert(res.contests[0].tie);              /* 20 each */
	cr_assert_eq(res.contests[0].leader, -1);
	tally_snapshot_destroy(snap);
	tally_contests_free(&res);
	tally_core_destroy(c1);
	tally_registry_destroy(r1);
}

/*
 * Two workers racing on the same voters: each voter sends two votes for two different
 * candidates of their constituency (in different lanes, so on different workers), one
 * referendum vote and one for another constituency's candidate. Exactly one of the two
 * constituency votes counts, whichever worker claims the level first; the figures are
 * exact however the race goes (and the core's tests run under ThreadSanitizer).
 */
Test(contests, workers_race_one_vote_per_level)
{
	enum { PER_BATCH = 64 };
	tally_vote_t *votes = calloc(NVOTERS * 4, sizeof(*votes));
	tally_batch_t *batches = calloc(NVOTERS * 4 / PER_BATCH + 2, sizeof(*batches));
	uint64_t per_contest[4] = {0}, per_region[NREGIONS] = {0};
	tally_contests_t r = {0};
	tally_snapshot_t *snap;
	uint32_t nv[2] = {0, 0}, nb = 0;
	char err[256];

	cr_assert_not_null(votes);
	/* Lane 0 gets each voter's first constituency vote and the referendum vote, lane 1
	 * the second and the wrong one. */
	for (uint64_t i = 0; i < NVOTERS; i++) {
		uint32_t reg_i = fixture_region_of(i, NREGIONS), k = constituency(reg_i);
		uint32_t first = k * 3 + (uint32_t)(i % 3), second = k * 3 + (uint32_t)((i + 1) % 3);
		uint32_t wrong = ((k + 1) % 3) * 3;

		fixture_vote(&votes[nv[0]++], i, first);
		fixture_vote(&votes[nv[0]++], i, i % 2 ? 9 : 10);
		fixture_vote(&votes[NVOTERS * 2 + nv[1]++], i, second);
		fixture_vote(&votes[NVOTERS * 2 + nv[1]++], i, wrong);
		per_contest[k + 1]++;
		per_contest[0]++;
		per_region[reg_i] += 2;
	}
	cr_assert_eq(tally_core_start(core), 0);
	for (uint32_t at = 0; at < NVOTERS * 2; at += PER_BATCH)
		for (uint32_t lane = 0; lane < 2; lane++) {
			uint32_t n = NVOTERS * 2 - at < PER_BATCH ? NVOTERS * 2 - at : PER_BATCH;

			tally_batch_init(&batches[nb], &votes[lane * NVOTERS * 2 + at], n, lane);
			cr_assert_eq(tally_core_submit(core, &batches[nb]), 0);
			nb++;
		}
	for (uint32_t i = 0; i < nb; i++)
		while (!tally_batch_done(&batches[i]))
			;
	tally_core_drain(core);
	snap = tally_snapshot_take(core);
	cr_assert_eq(tally_snapshot_check(snap, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(snap->read, NVOTERS * 4);
	cr_assert_eq(snap->accepted, NVOTERS * 2);
	cr_assert_eq(snap->rejected[TALLY_REASON_DUPLICATE], NVOTERS);
	cr_assert_eq(snap->rejected[TALLY_REASON_WRONG_CONTEST], NVOTERS);
	for (uint32_t reg_i = 0; reg_i < NREGIONS; reg_i++)
		cr_assert_eq(snap->regions[reg_i], per_region[reg_i], "region %u", reg_i);
	cr_assert_eq(tally_contests_compute(reg, snap, false, &r), 0);
	for (uint32_t k = 0; k < 4; k++)
		cr_assert_eq(r.contests[k].votes, per_contest[k], "contest %u", k);
	cr_assert_eq(snap->candidates[9], NVOTERS / 2);
	cr_assert_eq(snap->candidates[10], NVOTERS / 2);
	tally_snapshot_destroy(snap);
	tally_contests_free(&r);
	tally_core_stop(core);
	free(batches);
	free(votes);
}

/*
 * Restoring the voted set of a constituencies-only election (what tallyd does from the
 * stored votes' voter ids): tally_core_mark_voted() marks the one level there is, so a
 * restored voter's second vote is a duplicate.
 */
Test(contests, restore_marks_the_only_level_of_constituencies)
{
	tally_registry_t *r1 = fixture_registry(3, 0, NREGIONS, NVOTERS, 1000);
	tally_core_opts_t o = fixture_core_opts(1);
	tally_core_t *c1;
	uint64_t a = voter_in(0, 0);
	tally_vote_t v;
	tally_batch_t b;
	tally_contest_reg_t k = {"A", "Aldershot", "constituency", regions_a, 2};
	tally_candidate_reg_t cr = {fixture_candidate_id(0), "Ada", "Party 0", NULL, "A"};

	cr_assert_eq(tally_registry_add_contest(r1, &k, NULL), TALLY_REFUSAL_NONE);
	cr_assert_eq(tally_registry_add_candidate(r1, &cr, NULL), TALLY_REFUSAL_NONE);
	c1 = tally_core_new(r1, &o, NULL, 0);
	cr_assert_eq(tally_core_mark_voted(c1, ID(a)), 0);
	cr_assert_eq(tally_core_mark_voted(c1, ID(a)), TALLY_EEXISTS);
	fixture_vote(&v, a, 0);
	tally_batch_init(&b, &v, 1, 0);
	tally_core_process(c1, 0, &b);
	cr_assert_eq(v.reason, TALLY_REASON_DUPLICATE);
	tally_core_destroy(c1);
	tally_registry_destroy(r1);
}

/*
 * State export and import: exact round trips, a registry loaded in another order, and
 * damaged input refused with a reason.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>

#include <tally/core.h>
#include <tally/snapshot.h>
#include <tally/state.h>

#include "fixture.h"

#define NV 20000

static void
vote_some(tally_core_t *core, uint64_t from, uint64_t to, int with_faults)
{
	uint64_t n = to - from;
	tally_vote_t *v = calloc(n, sizeof(*v));
	tally_batch_t b;

	for (uint64_t i = 0; i < n; i++) {
		uint64_t voter = from + i;

		fixture_vote(&v[i], voter, (uint32_t)(voter % 5));
		if (with_faults && i % 10 == 0)
			v[i].reason = TALLY_REASON_MALFORMED;
		if (with_faults && i % 10 == 1)
			v[i].voting_time = FIXTURE_CLOSES_AT + 5;
	}
	tally_batch_init(&b, v, (uint32_t)n, 0);
	tally_core_process(core, 0, &b);
	free(v);
}

static void
assert_same(const tally_snapshot_t *a, const tally_snapshot_t *b)
{
	cr_assert_eq(a->read, b->read);
	cr_assert_eq(a->accepted, b->accepted);
	cr_assert_eq(memcmp(a->rejected, b->rejected, sizeof(a->rejected)), 0);
	cr_assert_eq(a->ncandidates, b->ncandidates);
	cr_assert_eq(a->nregions, b->nregions);
	cr_assert_eq(memcmp(a->candidates, b->candidates, a->ncandidates * sizeof(uint64_t)), 0);
	cr_assert_eq(memcmp(a->regions, b->regions, a->nregions * sizeof(uint64_t)), 0);
	cr_assert_eq(memcmp(a->parties, b->parties, a->nparties * sizeof(uint64_t)), 0);
	cr_assert_eq(a->ncells, b->ncells);
	cr_assert_eq(memcmp(a->cells, b->cells, a->ncells * sizeof(uint64_t)), 0);
	cr_assert_eq(memcmp(a->cell_region, b->cell_region, a->ncells * sizeof(uint32_t)), 0);
	cr_assert_eq(a->election.status, b->election.status);
}

Test(state, export_import_gives_an_identical_snapshot)
{
	tally_registry_t *reg = fixture_registry(3, 5, 12, NV, NV);
	tally_registry_t *reg2 = fixture_registry(3, 5, 12, NV, NV);
	tally_core_opts_t o = fixture_core_opts(2);
	tally_core_t *core, *core2;
	tally_snapshot_t *before, *after;
	void *buf, *pos;
	size_t len, pos_len;
	char err[256];
	const char positions[] = "votes_topic:0=1200,1=998";

	core = tally_core_new(reg, &o, err, sizeof(err));
	core2 = tally_core_new(reg2, &o, err, sizeof(err));
	vote_some(core, 0, NV / 2, 1);
	cr_assert_eq(tally_state_export(core, TALLY_STATE_VOTED, positions, sizeof(positions), &buf,
	                                &len), 0);
	before = tally_snapshot_take(core);
	cr_assert_eq(tally_state_import(core2, buf, len, &pos, &pos_len, err, sizeof(err)), 0, "%s", err);
	after = tally_snapshot_take(core2);
	assert_same(before, after);
	cr_assert_geq(after->version, before->version);
	cr_assert_eq(pos_len, sizeof(positions));
	cr_assert_eq(memcmp(pos, positions, pos_len), 0);
	free(pos);

	/* The voted set came along: the same votes are duplicates in both. */
	vote_some(core, 0, NV, 0);
	vote_some(core2, 0, NV, 0);
	tally_snapshot_destroy(before);
	tally_snapshot_destroy(after);
	before = tally_snapshot_take(core);
	after = tally_snapshot_take(core2);
	assert_same(before, after);
	cr_assert_eq(after->rejected[TALLY_REASON_DUPLICATE], NV / 2 - NV / 2 / 10 * 2);
	tally_snapshot_destroy(before);
	tally_snapshot_destroy(after);
	free(buf);
	tally_core_destroy(core);
	tally_core_destroy(core2);
	tally_registry_destroy(reg);
	tally_registry_destroy(reg2);
}

Test(state, restores_into_a_registry_loaded_in_another_order)
{
	tally_registry_t *reg = fixture_registry(2, 4, 6, 5000, 5000);
	tally_registry_opts_t ro = {.expected_voters = 5000};
	tally_registry_t *reg2;
	tally_core_opts_t o = fixture_core_opts(1);
	tally_core_t *core, *core2;
	tally_snapshot_t *a, *b;
	void *buf;
	size_t len;
	char err[256], name[32], party[32];

	core = tally_core_new(reg, &o, err, sizeof(err));
	vote_some(core, 0, 3000, 0);
	cr_assert_eq(tally_state_export(core, TALLY_STATE_VOTED, NULL, 0, &buf, &len), 0);

	/* Same people, registered backwards: indices differ, ids and names do not. */
	reg2 = tally_registry_new(&ro, err, sizeof(err));
	tally_registry_add_party(reg2, "Party 1", NULL);
	tally_registry_add_party(reg2, "Party 0", NULL);
	for (int c = 3; c >= 0; c--) {
		tally_candidate_reg_t cr = {fixture_candidate_id((uint32_t)c), name, party, NULL, NULL};

		snprintf(name, sizeof(name), "Candidate %d", c);
		snprintf(party, sizeof(party), "Party %d", c % 2);
		tally_registry_add_candidate(reg2, &cr, NULL);
	}
	for (int64_t i = 4999; i >= 0; i--)
		fixture_add_voters(reg2, (uint64_t)i, (uint64_t)i + 1, 6);
	core2 = tally_core_new(reg2, &o, err, sizeof(err));
	cr_assert_eq(tally_state_import(core2, buf, len, NULL, NULL, err, sizeof(err)), 0, "%s", err);
	a = tally_snapshot_take(core);
	b = tally_snapshot_take(core2);
	cr_assert_eq(b->accepted, a->accepted);
	for (uint32_t c = 0; c < 4; c++) {
		tally_uuid_t id = fixture_candidate_id(c);

		cr_assert_eq(b->candidates[tally_registry_candidate_find(reg2, &id)], a->candidates[c]);
	}
	for (uint32_t r = 0; r < 6; r++) {
		const char *rn = tally_registry_region_name(reg, r);

		cr_assert_eq(b->regions[tally_registry_region_find(reg2, rn)], a->regions[r]);
	}
	tally_snapshot_destroy(a);
	tally_snapshot_destroy(b);
	free(buf);
	tally_core_destroy(core);
	tally_core_destroy(core2);
	tally_registry_destroy(reg);
	tally_registry_destroy(reg2);
}

Test(state, final_results_survive)
{
	tally_registry_t *reg = fixture_registry(2, 3, 4, 1000, 1000);
	tally_registry_t *reg2 = fixture_registry(2, 3, 4, 1000, 1000);
	tally_core_opts_t o = fixture_core_opts(1);
	tally_core_t *core = tally_core_new(reg, &o, NULL, 0), *core2 = tally_core_new(reg2, &o, NULL, 0);
	tally_snapshot_t *f1, *f2;
	void *buf;
	size_t len;
	char err[256];

	vote_some(core, 0, 500, 0);
	cr_assert_eq(tally_core_election_close(core), 0);
	vote_some(core, 500, 600, 0);   /* polls_closed */
	cr_assert_eq(tally_state_export(core, 0, NULL, 0, &buf, &len), 0);
	cr_assert_eq(tally_state_import(core2, buf, len, NULL, NULL, err, sizeof(err)), 0, "%s", err);
	f1 = tally_snapshot_final(core);
	f2 = tally_snapshot_final(core2);
	cr_assert_not_null(f2);
	cr_assert_eq(f2->read, 500);
	assert_same(f1, f2);
	tally_snapshot_destroy(f1);
	tally_snapshot_destroy(f2);
	f2 = tally_snapshot_take(core2);
	cr_assert_eq(f2->rejected[TALLY_REASON_POLLS_CLOSED], 100);
	tally_snapshot_destroy(f2);
	free(buf);
	tally_core_destroy(core);
	tally_core_destroy(core2);
	tally_registry_destroy(reg);
	tally_registry_destroy(reg2);
}

Test(state, damage_is_refused_with_a_reason)
{
	tally_registry_t *reg = fixture_registry(2, 3, 4, 1000, 1000);
	tally_registry_t *other = fixture_registry(2, 2, 4, 1000, 1000);
	tally_core_opts_t o = fixture_core_opts(1);
	tally_core_t *core = tally_core_new(reg, &o, NULL, 0), *core2 = tally_core_new(other, &o, NULL, 0);
	unsigned char *buf;
	size_t len;
	char err[256];

	vote_some(core, 0, 900, 0);
	cr_assert_eq(tally_state_export(core, TALLY_STATE_VOTED, "p", 1, (void **)&buf, &len), 0);
	cr_assert_eq(tally_state_import(core, buf, len - 1, NULL, NULL, err, sizeof(err)), TALLY_ECORRUPT);
	cr_assert_str_eq(err, "state checksum mismatch (truncated or damaged)");
	buf[40] ^= 1;
	cr_assert_eq(tally_state_import(core, buf, len, NULL, NULL, err, sizeof(err)), TALLY_ECORRUPT);
	buf[40] ^= 1;
	cr_assert_eq(tally_state_import(core, "nonsense-state", 14, NULL, NULL, err, sizeof(err)),
	             TALLY_ECORRUPT);
	cr_assert_str_eq(err, "not a tally state (bad magic or format version)");
	/* core2's registry lacks candidate 2. */
	cr_assert_eq(tally_state_import(core2, buf, len, NULL, NULL, err, sizeof(err)), TALLY_ENOENT);
	cr_assert_str_eq(err, "state counts votes for candidate \"cafe0000-0002-4000-8000-000000000002\", which is not registered");
	free(buf);
	cr_assert_eq(tally_core_start(core), 0);
	cr_assert_eq(tally_state_export(core, 0, NULL, 0, (void **)&buf, &len), TALLY_ESTATE);
	tally_core_pause(core);
	cr_assert_eq(tally_state_export(core, 0, NULL, 0, (void **)&buf, &len), 0);
	tally_core_resume(core);
	free(buf);
	tally_core_destroy(core);
	tally_core_destroy(core2);
	tally_registry_destroy(reg);
	tally_registry_destroy(other);
}

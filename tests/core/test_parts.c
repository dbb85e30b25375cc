/*
 * Counters kept per part (tally_core_opts_t.parts): the parts add up to exactly what one
 * part counts; each part exports, imports and resets on its own; a part moved from one
 * core to another goes on counting there, and the two cores together hold every vote once.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include <tally/core.h>
#include <tally/snapshot.h>
#include <tally/state.h>

#include "fixture.h"

#define NPARTS 5
#define NVOTERS 20000
#define NCAND 4
#define NREG 6
#define BATCH 64

/* Vote k of a seeded stream over voters [from, to): mostly valid, some second votes,
 * unknown voters and unknown candidates. Lane k % NPARTS, and a voter's votes are all in
 * one lane (voter % NPARTS), as a voter's votes all reach one home partition. */
static void
stream_vote(tally_vote_t *v, uint64_t k, uint64_t from, uint64_t to)
{
	uint64_t x = fixture_mix(k + 1);
	uint64_t voter = from + (x % ((to - from) / NPARTS)) * NPARTS + k % NPARTS;

	fixture_vote(v, voter, (uint32_t)(x >> 20) % NCAND);
	if ((x >> 40) % 50 == 0)
		v->voter_id.lo ^= 0x5a5a5a5a;                          /* unknown voter */
	else if ((x >> 40) % 50 == 1)
		v->candidate_id.lo ^= 0x77;                            /* unknown candidate */
}

/* Count votes [k0, k1) of the stream on core's workers, in batches of one lane each. */
static void
count(tally_core_t *core, uint64_t k0, uint64_t k1, uint64_t from, uint64_t to, int only_lane)
{
	size_t n = (size_t)(k1 - k0);
	tally_vote_t *votes = calloc(n, sizeof(*votes));
	tally_batch_t *batches = calloc(n, sizeof(*batches));
	size_t nb = 0;

	cr_assert(votes != NULL && batches != NULL);
	for (unsigned lane = 0; lane < NPARTS; lane++) {
		size_t start = 0, m = 0;
		tally_vote_t *lv = votes;

		if (only_lane >= 0 && (int)lane != only_lane)
			continue;
		/* Votes of this lane, in stream order, packed after the previous lanes'. */
		for (size_t i = 0; i < nb; i++)
			start += batches[i].count;
		lv = votes + start;
		for (uint64_t k = k0; k < k1; k++)
			if (k % NPARTS == lane)
				stream_vote(&lv[m++], k, from, to);
		for (size_t off = 0; off < m; off += BATCH) {
			uint32_t c = (uint32_t)(m - off < BATCH ? m - off : BATCH);

			tally_batch_init(&batches[nb], lv + off, c, lane);
			cr_assert_eq(tally_core_submit(core, &batches[nb]), 0);
			nb++;
		}
	}
	tally_core_drain(core);
	for (size_t i = 0; i < nb; i++)
		cr_assert(tally_batch_done(&batches[i]));
	free(votes);
	free(batches);
}

static tally_core_t *
core_new(tally_registry_t *reg, unsigned parts)
{
	tally_core_opts_t o = fixture_core_opts(2);
	char err[256];
	tally_core_t *core;

	o.parts = parts;
	core = tally_core_new(reg, &o, err, sizeof(err));
	cr_assert_not_null(core, "%s", err);
	cr_assert_eq(tally_core_parts(core), parts ? parts : 1);
	return core;
}

/* Every count of a and b equal (accepted by candidate, region and cell; rejected by reason). */
static void
same_counts(const tally_snapshot_t *a, const tally_snapshot_t *b)
{
	cr_assert_eq(a->read, b->read);
	cr_assert_eq(a->accepted, b->accepted);
	cr_assert_eq(a->ncandidates, b->ncandidates);
	cr_assert_eq(a->nregions, b->nregions);
	for (uint32_t c = 0; c < a->ncandidates; c++)
		cr_assert_eq(a->candidates[c], b->candidates[c], "candidate %u", c);
	cr_assert_eq(a->ncells, b->ncells);
	for (uint64_t i = 0; i < a->ncells; i++) {
		cr_assert_eq(a->cells[i], b->cells[i], "cell %llu", (unsigned long long)i);
		cr_assert_eq(a->cell_region[i], b->cell_region[i]);
	}
	for (int k = 0; k < TALLY_REASON__COUNT; k++)
		cr_assert_eq(a->rejected[k], b->rejected[k], "reason %d", k);
}

Test(parts, the_parts_add_up_to_one_part_exactly)
{
	tally_registry_t *reg1 = fixture_registry(3, NCAND, NREG, NVOTERS, NVOTERS);
	tally_registry_t *reg5 = fixture_registry(3, NCAND, NREG, NVOTERS, NVOTERS);
	tally_core_t *one = core_new(reg1, 0), *five = core_new(reg5, NPARTS);
	tally_snapshot_t *s1, *s5;
	uint64_t sum = 0;

	cr_assert_eq(tally_core_start(one), 0);
	cr_assert_eq(tally_core_start(five), 0);
	count(one, 0, 30000, 0, NVOTERS, -1);
	count(five, 0, 30000, 0, NVOTERS, -1);
	tally_core_pause(one);
	tally_core_pause(five);
	s1 = tally_snapshot_take(one);
	s5 = tally_snapshot_take(five);
	cr_assert_eq(s1->read, 30000);
	cr_assert_gt(s1->rejected[TALLY_REASON_DUPLICATE], 0);
	cr_assert_gt(s1->rejected[TALLY_REASON_UNKNOWN_VOTER], 0);
	cr_assert_gt(s1->rejected[TALLY_REASON_UNKNOWN_CANDIDATE], 0);
	same_counts(s1, s5);
	for (unsigned p = 0; p < NPARTS; p++) {
		cr_assert_eq(tally_state_part_read(five, p), 30000 / NPARTS, "part %u", p);
		sum += tally_state_part_read(five, p);
	}
	cr_assert_eq(sum, 30000);
	cr_assert_eq(tally_state_part_read(one, 0), 30000);
	tally_core_resume(one);
	tally_core_resume(five);
	tally_snapshot_destroy(s1);
	tally_snapshot_destroy(s5);
	tally_core_destroy(one);
	tally_core_destroy(five);
	tally_registry_destroy(reg1);
	tally_registry_destroy(reg5);
}

Test(parts, each_part_exports_imports_and_resets_on_its_own)
{
	tally_registry_t *ra = fixture_registry(3, NCAND, NREG, NVOTERS, NVOTERS);
	tally_registry_t *rb = fixture_registry(3, NCAND, NREG, NVOTERS, NVOTERS);
	tally_core_t *a = core_new(ra, NPARTS), *b = core_new(rb, NPARTS);
	tally_snapshot_t *sa, *sb, *before, *after;
	void *blob[NPARTS];
	size_t len[NPARTS];
	uint64_t version;
	char err[256];

	cr_assert_eq(tally_core_start(a), 0);
	count(a, 0, 25000, 0, NVOTERS, -1);
	tally_core_pause(a);
	for (unsigned p = 0; p < NPARTS; p++)
		cr_assert_eq(tally_state_export_part(a, p, &blob[p], &len[p]), 0);
	/* Into a core that is not started, every part: the same counts. */
	for (unsigned p = 0; p < NPARTS; p++) {
		cr_assert_eq(tally_state_import_part(b, p, blob[p], len[p], &version, err, sizeof(err)),
		             0, "%s", err);
		cr_assert_eq(version, tally_state_part_read(a, p));
		cr_assert_eq(tally_state_part_read(b, p), version);
	}
	sa = tally_snapshot_take(a);
	sb = tally_snapshot_take(b);
	same_counts(sa, sb);

	/* Reset one part: the totals drop by exactly that part. */
	before = tally_snapshot_take(b);
	cr_assert_eq(tally_state_reset_part(b, 2), 0);
	cr_assert_eq(tally_state_part_read(b, 2), 0);
	after = tally_snapshot_take(b);
	cr_assert_eq(after->read, before->read - tally_state_part_read(a, 2));
	cr_assert_eq(tally_state_import_part(b, 2, blob[2], len[2], NULL, err, sizeof(err)), 0);
	tally_snapshot_destroy(after);
	after = tally_snapshot_take(b);
	same_counts(before, after);

	/* Refused, and the part left as it was: another part's state, a damaged one, no such
	 * part, a running core. */
	cr_assert_eq(tally_state_import_part(b, 3, blob[1], len[1], NULL, err, sizeof(err)),
	             TALLY_ECORRUPT);
	cr_assert_str_eq(err, "part state is part 1 of election \"ge-2026\", not part 3 of "
	                      "\"ge-2026\"");
	((unsigned char *)blob[4])[len[4] / 2] ^= 1;
	cr_assert_eq(tally_state_import_part(b, 4, blob[4], len[4], NULL, err, sizeof(err)),
	             TALLY_ECORRUPT);
	cr_assert_str_eq(err, "part state checksum mismatch (truncated or damaged)");
	cr_assert_eq(tally_state_import_part(b, NPARTS, blob[0], len[0], NULL, err, sizeof(err)),
	             TALLY_EINVAL);
	cr_assert_eq(tally_state_reset_part(b, NPARTS), TALLY_EINVAL);
	tally_snapshot_destroy(after);
	after = tally_snapshot_take(b);
	same_counts(before, after);
	for (unsigned p = 0; p < NPARTS; p++)
		free(blob[p]);
	tally_core_resume(a);
	{
		void *x = NULL;
		size_t n = 0;

		cr_assert_eq(tally_state_export_part(a, 0, &x, &n), TALLY_ESTATE);
		cr_assert_eq(tally_state_reset_part(a, 0), TALLY_ESTATE);
		cr_assert_null(x);
	}
	tally_snapshot_destroy(sa);
	tally_snapshot_destroy(sb);
	tally_snapshot_destroy(before);
	tally_snapshot_destroy(after);
	tally_core_destroy(a);
	tally_core_destroy(b);
	tally_registry_destroy(ra);
	tally_registry_destroy(rb);
}

/*
 * Part 3 moves from core a to core b halfway (as a partition moves between two servers:
 * exported with a's cut, reset in a, imported in b); each then counts its lanes. The two
 * together equal one core that counted everything. Voters of the second half are new and
 * vote in one lane each, so neither core needs the other's voted set (the store's part).
 */
Test(parts, a_part_moved_to_another_core_goes_on_counting_there)
{
	tally_registry_t *ra = fixture_registry(3, NCAND, NREG, NVOTERS, NVOTERS);
	tally_registry_t *rb = fixture_registry(3, NCAND, NREG, NVOTERS, NVOTERS);
	tally_registry_t *rt = fixture_registry(3, NCAND, NREG, NVOTERS, NVOTERS);
	tally_core_t *a = core_new(ra, NPARTS), *b = core_new(rb, NPARTS), *t = core_new(rt, 1);
	tally_snapshot_t *sa, *sb, *st;
	void *blob;
	size_t len;
	char err[256];

	cr_assert_eq(tally_core_start(a), 0);
	cr_assert_eq(tally_core_start(t), 0);
	count(a, 0, 20000, 0, NVOTERS / 2, -1);
	count(t, 0, 20000, 0, NVOTERS / 2, -1);
	tally_core_pause(a);
	cr_assert_eq(tally_state_export_part(a, 3, &blob, &len), 0);
	cr_assert_eq(tally_state_reset_part(a, 3), 0);
	tally_core_resume(a);
	cr_assert_eq(tally_state_import_part(b, 3, blob, len, NULL, err, sizeof(err)), 0, "%s", err);
	free(blob);
	cr_assert_eq(tally_core_start(b), 0);
	for (int lane = 0; lane < NPARTS; lane++)
		count(lane == 3 ? b : a, 20000, 40000, NVOTERS / 2, NVOTERS, lane);
	count(t, 20000, 40000, NVOTERS / 2, NVOTERS, -1);
	/* b counted only lane 3; a every other; the refused lane is b's alone. */
	cr_assert_eq(tally_core_submit(b, &(tally_batch_t){.lane = NPARTS}), TALLY_EINVAL);
	tally_core_pause(a);
	tally_core_pause(b);
	tally_core_pause(t);
	sa = tally_snapshot_take(a);
	sb = tally_snapshot_take(b);
	st = tally_snapshot_take(t);
	cr_assert_eq(tally_state_part_read(a, 3), 0);
	cr_assert_eq(tally_state_part_read(b, 3), 40000 / NPARTS);
	cr_assert_eq(sb->read, 40000 / NPARTS);
	cr_assert_eq(sa->read + sb->read, st->read);
	cr_assert_eq(sa->accepted + sb->accepted, st->accepted);
	for (uint32_t c = 0; c < st->ncandidates; c++)
		cr_assert_eq(sa->candidates[c] + sb->candidates[c], st->candidates[c]);
	for (int k = 0; k < TALLY_REASON__COUNT; k++)
		cr_assert_eq(sa->rejected[k] + sb->rejected[k], st->rejected[k], "reason %d", k);
	tally_core_resume(a);
	tally_core_resume(b);
	tally_core_resume(t);
	tally_snapshot_destroy(sa);
	tally_snapshot_destroy(sb);
	tally_snapshot_destroy(st);
	tally_core_destroy(a);
	tally_core_destroy(b);
	tally_core_destroy(t);
	tally_registry_destroy(ra);
	tally_registry_destroy(rb);
	tally_registry_destroy(rt);
}

Test(parts, too_many_parts_are_refused)
{
	tally_registry_t *reg = fixture_registry(3, NCAND, NREG, 10, 10);
	tally_core_opts_t o = fixture_core_opts(2);
	char err[128];

	o.parts = TALLY_CORE_MAX_PARTS + 1;
	cr_assert_null(tally_core_new(reg, &o, err, sizeof(err)));
	cr_assert_str_eq(err, "parts 4097 is above the limit of 4096");
	tally_registry_destroy(reg);
}

/*
 * Snapshots: the workers' cells summed into results.
 *
 * DESIGN: readers never stop the workers. Each cell has a single writer and only grows;
 * a reader loads each once (relaxed) and derives every total from those loads, so the
 * equalities of snapshot.h hold in every snapshot by construction, and two snapshots
 * taken one after the other on a thread never go backwards. The candidate and region
 * counts are read before the cells: a vote for a candidate registered in between is left
 * out of this snapshot consistently, everywhere at once.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tally/error.h>
#include <tally/snapshot.h>
#include <tally/time.h>

#include "core_int.h"

/* Make room for nc candidates, nr regions and np parties; all arrays move together. */
static int
reserve(tally_snapshot_t *snap, uint32_t nc, uint32_t nr, uint32_t np)
{
	uint32_t cc = snap->cap_candidates, cr = snap->cap_regions, cp = snap->cap_parties;
	void *p;

	if (snap->candidates != NULL && nc <= cc && nr <= cr && np <= cp)
		return 0;
	cc = nc > cc ? nc : cc;
	cr = nr > cr ? nr : cr;
	cp = np > cp ? np : cp;
#define RESIZE(field, n)                                                             \
	do {                                                                         \
		if ((p = realloc(snap->field, ((size_t)(n) + 1) * sizeof(uint64_t))) == NULL) \
			return TALLY_ENOMEM;                                         \
		snap->field = p;                                                     \
	} while (0)
	RESIZE(candidates, cc);
	RESIZE(regions, cr);
	RESIZE(region_registered, cr);
	RESIZE(parties, cp);
	RESIZE(cand_region, (size_t)cc * cr);
#undef RESIZE
	snap->cap_candidates = cc;
	snap->cap_regions = cr;
	snap->cap_parties = cp;
	return 0;
}

int
tally__snapshot_fill(struct tally_core *core, tally_snapshot_t *snap)
{
	uint32_t nc = tally_registry_candidate_count(core->reg);
	uint32_t nr = tally_registry_region_count(core->reg);
	uint32_t np = tally_registry_party_count(core->reg);
	uint32_t *party_of;
	uint64_t gen = tally_registry_generation(core->reg);
	uint64_t egen = tally_load_acquire(&core->election_gen);

	if (reserve(snap, nc, nr, np) != 0)
		return TALLY_ENOMEM;
	if ((party_of = malloc((nc ? nc : 1) * sizeof(uint32_t))) == NULL)
		return TALLY_ENOMEM;

	snap->ncandidates = nc;
	snap->nregions = nr;
	snap->nparties = np;
	memset(snap->candidates, 0, nc * sizeof(uint64_t));
	memset(snap->regions, 0, nr * sizeof(uint64_t));
	memset(snap->parties, 0, np * sizeof(uint64_t));
	for (uint32_t c = 0; c < nc; c++) {
		tally_candidate_info_t info;

		tally_registry_candidate_get(core->reg, c, &info);
		party_of[c] = info.party;
	}

	snap->accepted = 0;
	for (uint32_t c = 0; c < nc; c++) {
		for (uint32_t r = 0; r < nr; r++) {
			uint64_t v = tally__word(core, (size_t)c * core->cap_regions + r);

			snap->cand_region[(size_t)c * nr + r] = v;
			snap->candidates[c] += v;
			snap->regions[r] += v;
			snap->accepted += v;
		}
		if (party_of[c] < np)
			snap->parties[party_of[c]] += snap->candidates[c];
	}
	free(party_of);

	snap->rejected_total = 0;
	for (int k = 0; k < TALLY_REASON__COUNT; k++) {
		uint64_t v = tally__word(core, core->cells_per_part + (size_t)k);

		snap->rejected[k] = k == TALLY_REASON_ACCEPTED ? 0 : v;
		snap->rejected_total += snap->rejected[k];
	}
	snap->read = snap->accepted + snap->rejected_total;
	snap->registered = 0;
	for (uint32_t r = 0; r < nr; r++) {
		snap->region_registered[r] = tally_registry_region_voters(core->reg, r);
		snap->registered += snap->region_registered[r];
	}
	tally_core_election(core, &snap->election);
	snap->version = snap->read + gen + egen + core->version_offset;
	snap->taken_at_us = tally_now_us();
	return 0;
}

int
tally_snapshot_take_into(tally_core_t *core, tally_snapshot_t *snap)
{
	return tally__snapshot_fill(core, snap);
}

tally_snapshot_t *
tally_snapshot_take(tally_core_t *core)
{
	tally_snapshot_t *snap = calloc(1, sizeof(*snap));

	if (snap != NULL && tally__snapshot_fill(core, snap) != 0) {
		tally_snapshot_destroy(snap);
		return NULL;
	}
	return snap;
}

static uint64_t *
dup_array(const uint64_t *a, size_t n)
{
	uint64_t *p = malloc((n ? n : 1) * sizeof(uint64_t));

	if (p != NULL && n > 0)
		memcpy(p, a, n * sizeof(uint64_t));
	return p;
}

tally_snapshot_t *
tally_snapshot_copy(const tally_snapshot_t *src)
{
	tally_snapshot_t *snap = malloc(sizeof(*snap));

	if (snap == NULL)
		return NULL;
	*snap = *src;
	snap->candidates = dup_array(src->candidates, src->ncandidates);
	snap->regions = dup_array(src->regions, src->nregions);
	snap->parties = dup_array(src->parties, src->nparties);
	snap->cand_region = dup_array(src->cand_region, (size_t)src->ncandidates * src->nregions);
	snap->region_registered = dup_array(src->region_registered, src->nregions);
	snap->cap_candidates = src->ncandidates;
	snap->cap_regions = src->nregions;
	snap->cap_parties = src->nparties;
	if (snap->candidates == NULL || snap->regions == NULL || snap->parties == NULL ||
	    snap->cand_region == NULL || snap->region_registered == NULL) {
		tally_snapshot_destroy(snap);
		return NULL;
	}
	return snap;
}

int
tally_snapshot_copy_into(tally_snapshot_t *dst, const tally_snapshot_t *src)
{
	uint32_t nc = src->ncandidates, nr = src->nregions, np = src->nparties;
	uint32_t cc, cr, cp;

	if (dst == src)
		return 0;
	if (reserve(dst, nc, nr, np) != 0)
		return TALLY_ENOMEM;
	/* Everything but the arrays and their capacities is copied as it is. */
	cc = dst->cap_candidates;
	cr = dst->cap_regions;
	cp = dst->cap_parties;
	{
		uint64_t *c = dst->candidates, *r = dst->regions, *p = dst->parties;
		uint64_t *x = dst->cand_region, *rr = dst->region_registered;

		*dst = *src;
		dst->candidates = c;
		dst->regions = r;
		dst->parties = p;
		dst->cand_region = x;
		dst->region_registered = rr;
	}
	dst->cap_candidates = cc;
	dst->cap_regions = cr;
	dst->cap_parties = cp;
	if (nc > 0)
		memcpy(dst->candidates, src->candidates, nc * sizeof(uint64_t));
	if (nr > 0) {
		memcpy(dst->regions, src->regions, nr * sizeof(uint64_t));
		memcpy(dst->region_registered, src->region_registered, nr * sizeof(uint64_t));
	}
	if (np > 0)
		memcpy(dst->parties, src->parties, np * sizeof(uint64_t));
	if ((size_t)nc * nr > 0)
		memcpy(dst->cand_region, src->cand_region, (size_t)nc * nr * sizeof(uint64_t));
	return 0;
}

tally_snapshot_t *
tally_snapshot_final(tally_core_t *core)
{
	tally_snapshot_t *final = tally_load_acquire(&core->final);
	tally_snapshot_t *snap;

	if (final == NULL)
		return NULL;
	if ((snap = tally_snapshot_copy(final)) != NULL)
		snap->election.status = (tally_election_status_t)tally_load_acquire(&core->status);
	return snap;
}

void
tally_snapshot_destroy(tally_snapshot_t *snap)
{
	if (snap == NULL)
		return;
	free(snap->candidates);
	free(snap->regions);
	free(snap->parties);
	free(snap->cand_region);
	free(snap->region_registered);
	free(snap);
}

int
tally_snapshot_check(const tally_snapshot_t *snap, char *errstr, size_t errstr_size)
{
	uint64_t sc = 0, sr = 0, sp = 0, srej = 0, scr = 0;

	for (uint32_t c = 0; c < snap->ncandidates; c++)
		sc += snap->candidates[c];
	for (uint32_t r = 0; r < snap->nregions; r++)
		sr += snap->regions[r];
	for (uint32_t p = 0; p < snap->nparties; p++)
		sp += snap->parties[p];
	for (size_t i = 0; i < (size_t)snap->ncandidates * snap->nregions; i++)
		scr += snap->cand_region[i];
	for (int k = 0; k < TALLY_REASON__COUNT; k++)
		srej += snap->rejected[k];
	if (sc != snap->accepted || sr != snap->accepted || sp != snap->accepted ||
	    scr != snap->accepted) {
		snprintf(errstr, errstr_size,
		         "sums differ from accepted %llu: candidates %llu, regions %llu, parties %llu, "
		         "candidate-regions %llu", (unsigned long long)snap->accepted,
		         (unsigned long long)sc, (unsigned long long)sr, (unsigned long long)sp,
		         (unsigned long long)scr);
		return TALLY_ECORRUPT;
	}
	if (srej != snap->rejected_total || snap->accepted + srej != snap->read) {
		snprintf(errstr, errstr_size, "accepted %llu + rejected %llu != read %llu",
		         (unsigned long long)snap->accepted, (unsigned long long)srej,
		         (unsigned long long)snap->read);
		return TALLY_ECORRUPT;
	}
	return 0;
}

int32_t
tally_snapshot_leader(const tally_snapshot_t *snap)
{
	int32_t best = -1;

	for (uint32_t c = 0; c < snap->ncandidates; c++)
		if (snap->candidates[c] > 0 && (best < 0 || snap->candidates[c] > snap->candidates[best]))
			best = (int32_t)c;
	return best;
}

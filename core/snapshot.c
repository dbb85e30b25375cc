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

/* Make room for nc candidates, nr regions, np parties and ncell cells. */
static int
reserve(tally_snapshot_t *snap, uint32_t nc, uint32_t nr, uint32_t np, uint64_t ncell)
{
	void *p;

#define RESIZE(field, n)                                                             \
	do {                                                                         \
		if ((p = realloc(snap->field, ((size_t)(n) + 1) * sizeof(*snap->field))) == NULL) \
			return TALLY_ENOMEM;                                         \
		snap->field = p;                                                     \
	} while (0)
	if (snap->candidates == NULL || nc > snap->cap_candidates) {
		nc = nc > snap->cap_candidates ? nc : snap->cap_candidates;
		RESIZE(candidates, nc);
		RESIZE(cell_first, nc);
		RESIZE(cand_contest, nc);
		snap->cap_candidates = nc;
	}
	if (snap->regions == NULL || nr > snap->cap_regions) {
		nr = nr > snap->cap_regions ? nr : snap->cap_regions;
		RESIZE(regions, nr);
		RESIZE(region_registered, nr);
		snap->cap_regions = nr;
	}
	if (snap->parties == NULL || np > snap->cap_parties) {
		np = np > snap->cap_parties ? np : snap->cap_parties;
		RESIZE(parties, np);
		snap->cap_parties = np;
	}
	if (snap->cells == NULL || ncell > snap->cap_cells) {
		ncell = ncell > snap->cap_cells ? ncell : snap->cap_cells;
		RESIZE(cells, ncell);
		RESIZE(cell_region, ncell);
		snap->cap_cells = ncell;
	}
#undef RESIZE
	return 0;
}

int
tally__snapshot_fill(struct tally_core *core, tally_snapshot_t *snap)
{
	/* Contests before candidates before regions: every candidate read has its contest,
	 * and every region of a contest is counted in nr. */
	uint32_t nk = tally_registry_contest_count(core->reg);
	uint32_t nc = tally_registry_candidate_count(core->reg);
	uint32_t nr = tally_registry_region_count(core->reg);
	uint32_t np = tally_registry_party_count(core->reg);
	uint64_t gen = tally_registry_generation(core->reg);
	uint64_t egen = tally_load_acquire(&core->election_gen);
	uint64_t ncell = 0;

	/* Cells: contest 0's candidates one per region known now, the others one per region
	 * of their contest. */
	for (uint32_t c = 0; c < nc; c++) {
		uint64_t first;
		uint32_t n;

		tally_registry_candidate_cells(core->reg, c, &first, &n);
		ncell += core->hot->cands[c].contest == 0 ? nr : n;
	}
	if (reserve(snap, nc, nr, np, ncell) != 0)
		return TALLY_ENOMEM;

	snap->ncandidates = nc;
	snap->nregions = nr;
	snap->nparties = np;
	snap->ncontests = nk;
	snap->ncells = ncell;
	memset(snap->regions, 0, nr * sizeof(uint64_t));
	memset(snap->parties, 0, np * sizeof(uint64_t));
	snap->accepted = 0;
	ncell = 0;
	for (uint32_t c = 0; c < nc; c++) {
		tally_candidate_info_t info;
		tally_contest_info_t k;
		uint64_t first, sum = 0;
		uint32_t n;

		tally_registry_candidate_get(core->reg, c, &info);
		tally_registry_candidate_cells(core->reg, c, &first, &n);
		snap->cand_contest[c] = info.contest;
		snap->cell_first[c] = ncell;
		if (info.contest == 0) {
			n = nr;
			k.regions = NULL;
		} else {
			tally_registry_contest_get(core->reg, info.contest, &k);
		}
		for (uint32_t i = 0; i < n; i++, ncell++) {
			uint32_t r = k.regions == NULL ? i : k.regions[i];
			uint64_t v = tally__word(core, first + i);

			snap->cells[ncell] = v;
			snap->cell_region[ncell] = r;
			snap->regions[r] += v;
			sum += v;
		}
		snap->candidates[c] = sum;
		snap->accepted += sum;
		if (info.party < np)
			snap->parties[info.party] += sum;
	}
	snap->cell_first[nc] = ncell;

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

uint64_t
tally_snapshot_cand_region(const tally_snapshot_t *snap, uint32_t c, uint32_t r)
{
	uint64_t a, b;

	if (c >= snap->ncandidates)
		return 0;
	a = snap->cell_first[c];
	b = snap->cell_first[c + 1];
	if (a + r < b && snap->cell_region[a + r] == r)
		return snap->cells[a + r];
	for (uint64_t i = a; i < b; i++)
		if (snap->cell_region[i] == r)
			return snap->cells[i];
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

tally_snapshot_t *
tally_snapshot_copy(const tally_snapshot_t *src)
{
	tally_snapshot_t *snap = calloc(1, sizeof(*snap));

	if (snap != NULL && tally_snapshot_copy_into(snap, src) != 0) {
		tally_snapshot_destroy(snap);
		return NULL;
	}
	return snap;
}

int
tally_snapshot_copy_into(tally_snapshot_t *dst, const tally_snapshot_t *src)
{
	uint32_t nc = src->ncandidates, nr = src->nregions, np = src->nparties;
	uint64_t ncell = src->ncells;
	tally_snapshot_t keep;

	if (dst == src)
		return 0;
	if (reserve(dst, nc, nr, np, ncell) != 0)
		return TALLY_ENOMEM;
	/* Everything but the arrays and their capacities is copied as it is. */
	keep = *dst;
	*dst = *src;
#define KEEP(field) dst->field = keep.field
	KEEP(candidates); KEEP(regions); KEEP(parties); KEEP(region_registered);
	KEEP(cells); KEEP(cell_first); KEEP(cell_region); KEEP(cand_contest);
	KEEP(cap_candidates); KEEP(cap_regions); KEEP(cap_parties); KEEP(cap_cells);
#undef KEEP
#define COPY(field, n)                                                                 \
	do {                                                                           \
		if ((n) > 0)                                                           \
			memcpy(dst->field, src->field, (size_t)(n) * sizeof(*dst->field)); \
	} while (0)
	COPY(candidates, nc);
	COPY(cand_contest, nc);
	COPY(cell_first, (size_t)nc + 1);
	COPY(regions, nr);
	COPY(region_registered, nr);
	COPY(parties, np);
	COPY(cells, ncell);
	COPY(cell_region, ncell);
#undef COPY
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
	free(snap->region_registered);
	free(snap->cells);
	free(snap->cell_first);
	free(snap->cell_region);
	free(snap->cand_contest);
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
	for (uint64_t i = 0; i < snap->ncells; i++)
		scr += snap->cells[i];
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

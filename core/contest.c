/*
 * Contest results from a snapshot (see include/tally/contest.h for the rules).
 *
 * Candidates are grouped by contest with a counting sort, then each contest's group is
 * sorted by votes (insertion sort: a contest has a handful of candidates; contest 0 of a
 * single national race may have hundreds, still cheap next to a snapshot).
 */
#include <stdlib.h>
#include <string.h>

#include <tally/contest.h>
#include <tally/error.h>

const char *
tally_contest_status_name(int status)
{
	return status == TALLY_CONTEST_DECLARED ? "declared" : "counting";
}

const char *
tally_report_status_name(int status)
{
	switch (status) {
	case TALLY_REPORT_CERTIFIED:
		return "certified";
	case TALLY_REPORT_UNOFFICIAL_COMPLETE:
		return "unofficial-complete";
	default:
		return "unofficial-partial";
	}
}

static int
grow(void **p, uint32_t *cap, uint32_t n, size_t elem)
{
	void *np;

	if (*p != NULL && n <= *cap)
		return 0;
	if ((np = realloc(*p, ((size_t)n + 1) * elem)) == NULL)
		return TALLY_ENOMEM;
	*p = np;
	*cap = n;
	return 0;
}

static int
reserve(tally_contests_t *out, uint32_t nk, uint32_t nc, uint32_t nl, uint32_t np)
{
	uint32_t ck = out->cap_contests, cc = out->cap_cands, clp = out->cap_level_party;
	uint32_t cl = out->cap_levels;

	if (grow((void **)&out->contests, &ck, nk, sizeof(*out->contests)) != 0 ||
	    grow((void **)&out->cands, &cc, nc, sizeof(*out->cands)) != 0)
		return TALLY_ENOMEM;
	out->cap_contests = ck;
	out->cap_cands = cc;
	if (out->seats_won == NULL || nl * np > clp) {
		uint32_t a = clp, b = clp, c = clp;

		if (grow((void **)&out->seats_won, &a, nl * np, sizeof(uint32_t)) != 0 ||
		    grow((void **)&out->seats_led, &b, nl * np, sizeof(uint32_t)) != 0 ||
		    grow((void **)&out->party_votes, &c, nl * np, sizeof(uint64_t)) != 0)
			return TALLY_ENOMEM;
		out->cap_level_party = nl * np;
	}
	if (out->level_votes == NULL || nl > cl) {
		uint32_t a = cl, b = cl, c = cl, d = cl;

		if (grow((void **)&out->level_votes, &a, nl, sizeof(uint64_t)) != 0 ||
		    grow((void **)&out->level_contests, &b, nl, sizeof(uint32_t)) != 0 ||
		    grow((void **)&out->level_declared, &c, nl, sizeof(uint32_t)) != 0 ||
		    grow((void **)&out->level_ties, &d, nl, sizeof(uint32_t)) != 0)
			return TALLY_ENOMEM;
		out->cap_levels = nl;
	}
	return 0;
}

/* Sort a contest's candidates by votes, most first; equal votes: lower index first. */
static void
sort_by_votes(uint32_t *a, uint32_t n, const uint64_t *votes)
{
	for (uint32_t i = 1; i < n; i++) {
		uint32_t x = a[i], j = i;

		while (j > 0 && (votes[a[j - 1]] < votes[x] ||
		                 (votes[a[j - 1]] == votes[x] && a[j - 1] > x))) {
			a[j] = a[j - 1];
			j--;
		}
		a[j] = x;
	}
}

int
tally_contests_compute(const tally_registry_t *reg, const tally_snapshot_t *snap, bool closed,
                       tally_contests_t *out)
{
	uint32_t nk = snap->ncontests, nc = snap->ncandidates, np = snap->nparties;
	uint32_t nl = tally_registry_level_count(reg);
	bool all_declared = true;

	if (nk == 0)
		nk = 1;
	if (reserve(out, nk, nc, nl, np) != 0)
		return TALLY_ENOMEM;
	out->version = snap->version;
	out->ncontests = nk;
	out->nlevels = nl;
	out->nparties = np;
	memset(out->seats_won, 0, (size_t)nl * np * sizeof(uint32_t));
	memset(out->seats_led, 0, (size_t)nl * np * sizeof(uint32_t));
	memset(out->party_votes, 0, (size_t)nl * np * sizeof(uint64_t));
	memset(out->level_votes, 0, nl * sizeof(uint64_t));
	memset(out->level_contests, 0, nl * sizeof(uint32_t));
	memset(out->level_declared, 0, nl * sizeof(uint32_t));
	memset(out->level_ties, 0, nl * sizeof(uint32_t));

	/* Each contest's place, size and registered voters. */
	for (uint32_t k = 0; k < nk; k++) {
		tally_contest_result_t *r = &out->contests[k];
		tally_contest_info_t info;

		memset(r, 0, sizeof(*r));
		r->contest = k;
		r->leader = r->runner_up = -1;
		if (!tally_registry_contest_get(reg, k, &info))
			continue;
		r->level = info.level;
		if (k == 0) {
			r->registered = snap->registered;
		} else {
			for (uint32_t i = 0; i < info.nregions; i++)
				if (info.regions[i] < snap->nregions)
					r->registered += snap->region_registered[info.regions[i]];
		}
	}
	for (uint32_t c = 0; c < nc; c++)
		out->contests[snap->cand_contest[c]].ncandidates++;
	for (uint32_t k = 0, at = 0; k < nk; k++) {
		out->contests[k].first = at;
		at += out->contests[k].ncandidates;
		out->contests[k].ncandidates = 0;
	}
	for (uint32_t c = 0; c < nc; c++) {
		tally_contest_result_t *r = &out->contests[snap->cand_contest[c]];

		out->cands[r->first + r->ncandidates++] = c;
	}

	/* Each contest's order, leader, majority and status; the levels' seats. */
	for (uint32_t k = 0; k < nk; k++) {
		tally_contest_result_t *r = &out->contests[k];
		uint32_t *cs = out->cands + r->first, L = r->level;

		if (r->ncandidates == 0)
			continue;
		sort_by_votes(cs, r->ncandidates, snap->candidates);
		for (uint32_t i = 0; i < r->ncandidates; i++) {
			tally_candidate_info_t info;

			r->votes += snap->candidates[cs[i]];
			if (tally_registry_candidate_get(reg, cs[i], &info) && info.party < np)
				out->party_votes[(size_t)L * np + info.party] += snap->candidates[cs[i]];
		}
		r->status = closed ? TALLY_CONTEST_DECLARED : TALLY_CONTEST_COUNTING;
		out->level_votes[L] += r->votes;
		out->level_contests[L]++;
		if (r->status == TALLY_CONTEST_DECLARED)
			out->level_declared[L]++;
		else
			all_declared = false;
		if (snap->candidates[cs[0]] == 0)
			continue;
		if (r->ncandidates > 1 && snap->candidates[cs[1]] > 0)
			r->runner_up = (int32_t)cs[1];
		if (r->ncandidates > 1 && snap->candidates[cs[1]] == snap->candidates[cs[0]]) {
			r->tie = true;
			out->level_ties[L]++;
			continue;
		}
		r->leader = (int32_t)cs[0];
		r->majority = snap->candidates[cs[0]] -
		              (r->ncandidates > 1 ? snap->candidates[cs[1]] : 0);
		{
			tally_candidate_info_t info;

			if (tally_registry_candidate_get(reg, cs[0], &info) && info.party < np) {
				if (r->status == TALLY_CONTEST_DECLARED)
					out->seats_won[(size_t)L * np + info.party]++;
				else
					out->seats_led[(size_t)L * np + info.party]++;
			}
		}
	}
	if (snap->election.status == TALLY_ELECTION_FINAL)
		out->report = TALLY_REPORT_CERTIFIED;
	else if (all_declared && closed)
		out->report = TALLY_REPORT_UNOFFICIAL_COMPLETE;
	else
		out->report = TALLY_REPORT_UNOFFICIAL_PARTIAL;
	return 0;
}

void
tally_contests_free(tally_contests_t *out)
{
	free(out->contests);
	free(out->cands);
	free(out->seats_won);
	free(out->seats_led);
	free(out->party_votes);
	free(out->level_votes);
	free(out->level_contests);
	free(out->level_declared);
	free(out->level_ties);
	memset(out, 0, sizeof(*out));
}

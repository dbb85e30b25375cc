/*
 * tally-bench core: the vote path on N workers against a bare hash-probe loop over the
 * same voters, in the same run.
 *
 * The probe loop is the memory-bound limit: it hashes each vote's voter_id, prefetches the
 * slot a few votes ahead and finds it, on the same number of threads, and does nothing else.
 * The core run submits pre-built batches (so the producer costs almost nothing) and times
 * until every vote is judged and counted.
 *
 * --contests N builds a second registry of the same regions and voters holding N
 * constituency contests (each of the regions r with r % N == its number) with 5 or 6
 * candidates of different parties (3,495 for 650) and no national race, and times the core
 * on the same voters' votes for a candidate of their own constituency against the single
 * national race, run after run: contests_ratio is the contests' rate over the single's.
 */
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tally/core.h>
#include <tally/registry.h>
#include <tally/snapshot.h>
#include <tally/time.h>

#include "bench.h"
#include "fixture.h"
#include "registry_int.h"

#define BATCH 1024
#define NCAND 10
#define NREGION 600

struct probe_arg {
	const struct tally__registry_hot *hot;
	const tally_vote_t *votes;
	uint64_t n;
	uint64_t found;
};

static void *
probe_thread(void *p)
{
	struct probe_arg *a = p;
	enum { D = 8 };
	uint64_t hs[D], found = 0;

	for (uint64_t i = 0; i < a->n && i < D; i++) {
		hs[i] = tally_uuid_hash(&a->votes[i].voter_id);
		tally__registry_prefetch(a->hot, hs[i]);
	}
	for (uint64_t i = 0; i < a->n; i++) {
		uint64_t h = hs[i % D];

		if (i + D < a->n) {
			hs[i % D] = tally_uuid_hash(&a->votes[i + D].voter_id);
			tally__registry_prefetch(a->hot, hs[i % D]);
		}
		found += tally__registry_voter_slot(a->hot, &a->votes[i].voter_id, h) != NULL;
	}
	a->found = found;
	return NULL;
}

static double
run_probe(tally_registry_t *reg, const tally_vote_t *votes, uint64_t n, unsigned threads,
          uint64_t *found)
{
	struct probe_arg args[64];
	pthread_t t[64];
	uint64_t t0 = tally_mono_ns();

	*found = 0;
	for (unsigned i = 0; i < threads; i++) {
		args[i].hot = tally__registry_hot(reg);
		args[i].votes = votes + n / threads * i;
		args[i].n = i + 1 == threads ? n - n / threads * i : n / threads;
		pthread_create(&t[i], NULL, probe_thread, &args[i]);
	}
	for (unsigned i = 0; i < threads; i++) {
		pthread_join(t[i], NULL);
		*found += args[i].found;
	}
	return (double)(tally_mono_ns() - t0) / 1e9;
}

/*
 * Counting alone, three ways, over the same (candidate, region) stream: one shared atomic
 * cell per (candidate, region) bumped with a locked add; five shared atomics per vote (the
 * cell plus candidate, region, party and accepted kept separately); and tally's choice, one
 * cell per worker written with a plain relaxed store and summed when read.
 */
enum count_mode { COUNT_SHARED1, COUNT_SHARED5, COUNT_OWNED };

struct count_arg {
	enum count_mode mode;
	const uint32_t *cells;   /* cell index per vote */
	uint64_t n;
	uint64_t *shared;        /* [NCAND * NREGION + NCAND + NREGION + 4 + 1] */
	uint64_t *owned;         /* this thread's own cells */
};

static void *
count_thread(void *p)
{
	struct count_arg *a = p;
	uint64_t *sh = a->shared;

	for (uint64_t i = 0; i < a->n; i++) {
		uint32_t cell = a->cells[i];

		switch (a->mode) {
		case COUNT_SHARED1:
			__atomic_add_fetch(&sh[cell], 1, __ATOMIC_RELAXED);
			break;
		case COUNT_SHARED5: {
			uint32_t c = cell / NREGION, r = cell % NREGION;

			__atomic_add_fetch(&sh[cell], 1, __ATOMIC_RELAXED);
			__atomic_add_fetch(&sh[NCAND * NREGION + c], 1, __ATOMIC_RELAXED);
			__atomic_add_fetch(&sh[NCAND * NREGION + NCAND + r], 1, __ATOMIC_RELAXED);
			__atomic_add_fetch(&sh[NCAND * NREGION + NCAND + NREGION + c % 4], 1,
			                   __ATOMIC_RELAXED);
			__atomic_add_fetch(&sh[NCAND * NREGION + NCAND + NREGION + 4], 1,
			                   __ATOMIC_RELAXED);
			break;
		}
		case COUNT_OWNED:
			tally_counter_inc_owned(&a->owned[cell]);
			break;
		}
	}
	return NULL;
}

static double
run_count(enum count_mode mode, const uint32_t *cells, uint64_t n, unsigned threads)
{
	size_t ncells = NCAND * NREGION + NCAND + NREGION + 5;
	uint64_t *shared = aligned_alloc(64, ((ncells * 8 + 63) / 64) * 64);
	struct count_arg args[64];
	pthread_t t[64];
	uint64_t t0, total = 0;

	memset(shared, 0, ncells * 8);
	for (unsigned i = 0; i < threads; i++) {
		args[i] = (struct count_arg){mode, cells + n / threads * i,
		                             i + 1 == threads ? n - n / threads * i : n / threads,
		                             shared, calloc(ncells, sizeof(uint64_t))};
	}
	t0 = tally_mono_ns();
	for (unsigned i = 0; i < threads; i++)
		pthread_create(&t[i], NULL, count_thread, &args[i]);
	for (unsigned i = 0; i < threads; i++)
		pthread_join(t[i], NULL);
	t0 = tally_mono_ns() - t0;
	for (unsigned i = 0; i < threads; i++) {
		for (size_t k = 0; k < NCAND * NREGION; k++)
			total += mode == COUNT_OWNED ? args[i].owned[k] : 0;
		free(args[i].owned);
	}
	for (size_t k = 0; mode != COUNT_OWNED && k < NCAND * NREGION; k++)
		total += shared[k];
	free(shared);
	if (total != n) {
		fprintf(stderr, "tally-bench: counting lost votes (%" PRIu64 " of %" PRIu64 ")\n", total, n);
		exit(1);
	}
	return (double)t0 / 1e9;
}

static double
run_core(tally_registry_t *reg, tally_vote_t *votes, uint64_t n, unsigned threads,
         tally_snapshot_t **out)
{
	tally_core_opts_t o = fixture_core_opts(threads);
	uint64_t nb = (n + BATCH - 1) / BATCH, t0;
	tally_batch_t *b = calloc(nb, sizeof(*b));
	char err[256];
	tally_core_t *core;
	double secs;

	tally__registry_clear_voted(reg);
	o.queue_size = 4096;
	if ((core = tally_core_new(reg, &o, err, sizeof(err))) == NULL) {
		fprintf(stderr, "tally-bench: %s\n", err);
		exit(1);
	}
	for (uint64_t i = 0; i < nb; i++) {
		uint64_t from = i * BATCH;

		tally_batch_init(&b[i], votes + from, (uint32_t)(n - from < BATCH ? n - from : BATCH),
		                 (uint32_t)i);
		for (uint32_t k = 0; k < b[i].count; k++)
			votes[from + k].reason = TALLY_REASON_ACCEPTED;
	}
	tally_core_start(core);
	t0 = tally_mono_ns();
	for (uint64_t i = 0; i < nb; i++)
		tally_core_submit(core, &b[i]);
	tally_core_drain(core);
	secs = (double)(tally_mono_ns() - t0) / 1e9;
	*out = tally_snapshot_take(core);
	tally_core_destroy(core);
	free(b);
	return secs;
}

static void
usage(FILE *f)
{
	fprintf(f, "usage: tally-bench core [--voters N] [--votes N] [--threads N] [--repeat N]\n"
	           "                        [--contests N]\n"
	           "  --voters N   registered voters (default 10000000)\n"
	           "  --votes N    votes to count (default 20000000); voters drawn uniformly\n"
	           "  --threads N  worker threads, and probe threads (default 2)\n"
	           "  --repeat N   runs of each, best kept (default 3)\n"
	           "  --contests N also N constituency contests (at most 16384), timed against\n"
	           "               the single national race in the same run (e.g. 650)\n");
}

#define NPARTY 12
#define CONTEST_CAND0 100000u   /* fixture ids of the contests' candidates from here */

/* Candidates of constituency k: 6 for k % 8 < 3, else 5. */
static uint32_t
contest_cands(uint32_t k)
{
	return k % 8 < 3 ? 6 : 5;
}

/* N constituencies over the registry's nregions regions (region r in contest r % N), their
 * candidates from first_cand on (index), party (k + j) % NPARTY for the j-th. */
static void
add_contests(tally_registry_t *reg, uint32_t n, uint32_t nregions, uint32_t *first_cand)
{
	uint32_t next = tally_registry_candidate_count(reg);
	char id[32], name[64], party[32];

	for (uint32_t k = 0; k < n; k++) {
		const char **names = calloc(nregions / n + 1, sizeof(char *));
		uint32_t m = 0;
		tally_contest_reg_t c = {id, name, "constituency", NULL, 0};

		for (uint32_t r = k; r < nregions; r += n)
			names[m++] = tally_registry_region_name(reg, r);
		snprintf(id, sizeof(id), "C%05u", k);
		snprintf(name, sizeof(name), "Constituency %u", k);
		c.regions = names;
		c.nregions = m;
		if (tally_registry_add_contest(reg, &c, NULL) != TALLY_REFUSAL_NONE) {
			fprintf(stderr, "tally-bench: contest %u refused\n", k);
			exit(1);
		}
		free(names);
		first_cand[k] = next;
		for (uint32_t j = 0; j < contest_cands(k); j++, next++) {
			tally_candidate_reg_t cr = {fixture_candidate_id(CONTEST_CAND0 + next), name,
			                            party, "", id};
			tally_refusal_t rf;

			snprintf(party, sizeof(party), "Party %u", (k + j) % NPARTY);
			if ((rf = tally_registry_add_candidate(reg, &cr, NULL)) != TALLY_REFUSAL_NONE) {
				fprintf(stderr, "tally-bench: candidate of contest %u refused: %s\n", k,
				        tally_refusal_name(rf));
				exit(1);
			}
		}
	}
}

int
tally_bench_core(int argc, char **argv)
{
	static const struct option opts[] = {
		{"voters", required_argument, NULL, 'v'}, {"votes", required_argument, NULL, 'n'},
		{"threads", required_argument, NULL, 't'}, {"repeat", required_argument, NULL, 'r'},
		{"contests", required_argument, NULL, 'k'}, {"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0}};
	uint64_t nvoters = 10000000, nvotes = 20000000, found = 0;
	unsigned threads = 2, repeat = 3;
	uint32_t ncontests = 0, nregions = NREGION, *first_cand = NULL;
	double best_probe = 1e30, best_core = 1e30, best_contests = 1e30, reg_secs;
	tally_snapshot_t *snap = NULL, *ksnap = NULL;
	tally_registry_t *reg, *kreg = NULL;
	tally_vote_t *votes, *kvotes = NULL;
	uint64_t t0;
	int c;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'v': nvoters = strtoull(optarg, NULL, 10); break;
		case 'n': nvotes = strtoull(optarg, NULL, 10); break;
		case 't': threads = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'r': repeat = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'k': ncontests = (uint32_t)strtoul(optarg, NULL, 10); break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (nvoters == 0 || nvotes == 0 || threads == 0 || threads > 64 || repeat == 0 ||
	    ncontests > 16384) {
		usage(stderr);
		return 2;
	}

	t0 = tally_mono_ns();
	if (ncontests > nregions)
		nregions = ncontests;
	reg = fixture_registry(4, NCAND, nregions, nvoters, nvoters);
	if (ncontests > 0) {
		/* The contests' own registry: the same regions and voters, 650 constituencies and
		 * their candidates, no national race (one level, as a general election). */
		tally_registry_opts_t ro = {.expected_voters = nvoters, .max_regions = nregions,
		                            .max_candidates = ncontests * 6 + 1,
		                            .max_parties = NPARTY, .max_contests = ncontests + 1};
		char err[256], name[64];

		if ((kreg = tally_registry_new(&ro, err, sizeof(err))) == NULL) {
			fprintf(stderr, "tally-bench: %s\n", err);
			return 1;
		}
		for (uint32_t p = 0; p < NPARTY; p++) {
			snprintf(name, sizeof(name), "Party %u", p);
			tally_registry_add_party(kreg, name, NULL);
		}
		for (uint32_t r = 0; r < nregions; r++) {
			snprintf(name, sizeof(name), "Region %u", r);
			tally_registry_add_region(kreg, name, NULL);
		}
		first_cand = calloc(ncontests, sizeof(uint32_t));
		add_contests(kreg, ncontests, nregions, first_cand);
		fixture_add_voters(kreg, 0, nvoters, nregions);
	}
	reg_secs = (double)(tally_mono_ns() - t0) / 1e9;
	if ((votes = malloc(nvotes * sizeof(*votes))) == NULL) {
		fprintf(stderr, "tally-bench: out of memory for %" PRIu64 " votes\n", nvotes);
		return 1;
	}
	for (uint64_t i = 0; i < nvotes; i++) {
		uint64_t voter = fixture_mix(i * 31 + 7) % nvoters;

		fixture_vote(&votes[i], voter, (uint32_t)(fixture_mix(voter) % NCAND));
	}
	if (ncontests > 0) {
		/* The same voters, each for a candidate of their own constituency. */
		if ((kvotes = malloc(nvotes * sizeof(*kvotes))) == NULL) {
			fprintf(stderr, "tally-bench: out of memory for %" PRIu64 " votes\n", nvotes);
			return 1;
		}
		for (uint64_t i = 0; i < nvotes; i++) {
			uint64_t voter = fixture_mix(i * 31 + 7) % nvoters;
			uint32_t k = fixture_region_of(voter, nregions) % ncontests;
			uint32_t cand = first_cand[k] + (uint32_t)(fixture_mix(voter) % contest_cands(k));

			fixture_vote(&kvotes[i], voter, 0);
			kvotes[i].candidate_id = fixture_candidate_id(CONTEST_CAND0 + cand);
		}
	}

	printf("%-24s %12s %10s %14s\n", "phase", "votes", "seconds", "votes/s");
	printf("%-24s %12" PRIu64 " %10.3f %14.0f\n", "register voters", nvoters, reg_secs,
	       (double)nvoters / reg_secs);
	for (unsigned r = 0; r < repeat; r++) {
		double p = run_probe(reg, votes, nvotes, threads, &found);
		tally_snapshot_t *s = NULL;
		double k = run_core(reg, votes, nvotes, threads, &s);

		printf("%-24s %12" PRIu64 " %10.3f %14.0f\n", "bare probe", nvotes, p, nvotes / p);
		printf("%-24s %12" PRIu64 " %10.3f %14.0f\n", "core (judge + count)", nvotes, k,
		       nvotes / k);
		if (p < best_probe)
			best_probe = p;
		if (k < best_core)
			best_core = k;
		tally_snapshot_destroy(snap);
		snap = s;
		if (ncontests > 0) {
			char label[40];

			s = NULL;
			k = run_core(kreg, kvotes, nvotes, threads, &s);
			snprintf(label, sizeof(label), "core, %u contests", ncontests);
			printf("%-24s %12" PRIu64 " %10.3f %14.0f\n", label, nvotes, k, nvotes / k);
			if (k < best_contests)
				best_contests = k;
			tally_snapshot_destroy(ksnap);
			ksnap = s;
		}
	}
	{
		uint32_t *cells = malloc(nvotes * sizeof(uint32_t));
		static const char *const names[] = {"count: 1 shared atomic", "count: 5 shared atomics",
		                                    "count: per-worker cell"};

		for (uint64_t i = 0; i < nvotes; i++) {
			uint64_t voter = fixture_mix(i * 31 + 7) % nvoters;

			cells[i] = (uint32_t)(fixture_mix(voter) % NCAND) * NREGION +
			           fixture_region_of(voter, NREGION);
		}
		for (int m = COUNT_SHARED1; m <= COUNT_OWNED; m++) {
			double secs = run_count((enum count_mode)m, cells, nvotes, threads);

			printf("%-24s %12" PRIu64 " %10.3f %14.0f\n", names[m], nvotes, secs, nvotes / secs);
		}
		free(cells);
	}
	if (found != nvotes || snap == NULL || snap->read != nvotes) {
		fprintf(stderr, "tally-bench: wrong counts (found %" PRIu64 ", read %" PRIu64 ")\n",
		        found, snap ? snap->read : 0);
		return 1;
	}
	printf("accepted %" PRIu64 ", duplicate %" PRIu64 ", threads %u, voters %" PRIu64 "\n",
	       snap->accepted, snap->rejected[TALLY_REASON_DUPLICATE], threads, nvoters);
	if (ncontests > 0) {
		char err[256];
		uint64_t cells = tally_registry_cell_count(kreg);
		uint32_t ncand = tally_registry_candidate_count(kreg);

		/* Every vote judged; each voter's first vote counted, the rest duplicates; none
		 * in the wrong contest; the snapshot's sums agree. */
		if (ksnap == NULL || ksnap->read != nvotes ||
		    ksnap->accepted != snap->accepted ||
		    ksnap->rejected[TALLY_REASON_WRONG_CONTEST] != 0 ||
		    ksnap->accepted + ksnap->rejected[TALLY_REASON_DUPLICATE] != nvotes ||
		    tally_snapshot_check(ksnap, err, sizeof(err)) != 0) {
			fprintf(stderr, "tally-bench: wrong counts with contests\n");
			return 1;
		}
		printf("contests %u, candidates %u, counter cells %" PRIu64 " (candidates x regions "
		       "would be %" PRIu64 "), levels %u\n", ncontests, ncand, cells,
		       (uint64_t)ncand * nregions, tally_registry_level_count(kreg));
		printf("contests votes_per_s=%.0f contests_ratio=%.2f bytes_per_voter=%.1f\n",
		       nvotes / best_contests, best_core / best_contests,
		       (double)tally_registry_voter_bytes(kreg) / (double)nvoters);
	}
	printf("core votes_per_s=%.0f probe_ratio=%.2f bytes_per_voter=%.1f\n", nvotes / best_core,
	       best_probe / best_core, (double)tally_registry_voter_bytes(reg) / (double)nvoters);
	tally_snapshot_destroy(snap);
	tally_snapshot_destroy(ksnap);
	free(votes);
	free(kvotes);
	free(first_cand);
	tally_registry_destroy(kreg);
	tally_registry_destroy(reg);
	return 0;
}

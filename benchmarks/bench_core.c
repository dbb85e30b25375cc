/*
 * tally-bench core: the vote path on N workers against a bare hash-probe loop over the
 * same voters, in the same run.
 *
 * The probe loop is the memory-bound limit: it hashes each vote's voter_id, prefetches the
 * slot a few votes ahead and finds it, on the same number of threads, and does nothing else.
 * The core run submits pre-built batches (so the producer costs almost nothing) and times
 * until every vote is judged and counted.
 */
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tally/core.h>
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

static void
clear_voted(tally__vslot_t *s, void *arg)
{
	(void)arg;
	__atomic_fetch_and(&s->meta, ~TALLY__VMETA_VOTED, __ATOMIC_RELAXED);
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

	tally__registry_voters_foreach(reg, clear_voted, NULL);
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
	           "  --voters N   registered voters (default 10000000)\n"
	           "  --votes N    votes to count (default 20000000); voters drawn uniformly\n"
	           "  --threads N  worker threads, and probe threads (default 2)\n"
	           "  --repeat N   runs of each, best kept (default 3)\n");
}

int
tally_bench_core(int argc, char **argv)
{
	static const struct option opts[] = {
		{"voters", required_argument, NULL, 'v'}, {"votes", required_argument, NULL, 'n'},
		{"threads", required_argument, NULL, 't'}, {"repeat", required_argument, NULL, 'r'},
		{"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
	uint64_t nvoters = 10000000, nvotes = 20000000, found = 0;
	unsigned threads = 2, repeat = 3;
	double best_probe = 1e30, best_core = 1e30, reg_secs;
	tally_snapshot_t *snap = NULL;
	tally_registry_t *reg;
	tally_vote_t *votes;
	uint64_t t0;
	int c;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'v': nvoters = strtoull(optarg, NULL, 10); break;
		case 'n': nvotes = strtoull(optarg, NULL, 10); break;
		case 't': threads = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'r': repeat = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (nvoters == 0 || nvotes == 0 || threads == 0 || threads > 64 || repeat == 0) {
		usage(stderr);
		return 2;
	}

	t0 = tally_mono_ns();
	reg = fixture_registry(4, NCAND, NREGION, nvoters, nvoters);
	reg_secs = (double)(tally_mono_ns() - t0) / 1e9;
	if ((votes = malloc(nvotes * sizeof(*votes))) == NULL) {
		fprintf(stderr, "tally-bench: out of memory for %" PRIu64 " votes\n", nvotes);
		return 1;
	}
	for (uint64_t i = 0; i < nvotes; i++) {
		uint64_t voter = fixture_mix(i * 31 + 7) % nvoters;

		fixture_vote(&votes[i], voter, (uint32_t)(fixture_mix(voter) % NCAND));
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
	printf("core votes_per_s=%.0f probe_ratio=%.2f bytes_per_voter=%.1f\n", nvotes / best_core,
	       best_probe / best_core, (double)tally_registry_voter_bytes(reg) / (double)nvoters);
	tally_snapshot_destroy(snap);
	free(votes);
	tally_registry_destroy(reg);
	return 0;
}

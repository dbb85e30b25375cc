/*
 * The core's insides, shared by core.c, snapshot.c and state.c. Private to core/.
 */
#ifndef TALLY_CORE_INT_H
#define TALLY_CORE_INT_H

#include <pthread.h>
#include <stdint.h>

#include <tally/core.h>
#include <tally/snapshot.h>

#include <tally/atomic.h>
#include "queue.h"
#include "registry_int.h"

/*
 * One worker. Its first cache lines are written only by the worker thread.
 *
 * Its counters: `slices` slices of `slice_words` words, each cells_per_part accepted cells
 * (candidate * cap_regions + region) then TALLY_REASON__COUNT rejections by reason. With
 * one part (the default) every worker counts the whole election into its slice 0; with
 * parts > 1, part p is counted only by worker p % nworkers, into its slice p / nworkers.
 */
struct tally__worker {
	uint64_t *counters;                      /* [slices][slice_words], mmap'd */
	uint64_t completed;                      /* batches done */
	uint32_t pause_ack;                      /* pause generation the worker parked on */
	unsigned idx;
	struct tally_core *core;
	pthread_t thread;
	int started;

	/* Written by producers. */
	uint64_t submitted __attribute__((aligned(TALLY_CACHELINE)));
	tally__queue_t queue __attribute__((aligned(TALLY_CACHELINE)));
} __attribute__((aligned(TALLY_CACHELINE)));

struct tally_core {
	tally_registry_t *reg;
	const struct tally__registry_hot *hot;
	unsigned nworkers;
	unsigned queue_size;
	struct tally__worker *workers;
	uint32_t cap_candidates, cap_regions, cap_parties;
	unsigned parts;                          /* counter parts (1: the whole election) */
	unsigned slices;                         /* slices per worker */
	size_t cells_per_part;                   /* cap_candidates * cap_regions */
	size_t slice_words;                      /* cells_per_part + TALLY_REASON__COUNT */
	size_t counters_bytes;                   /* one worker's counters */

	/* Counts restored by tally_state_import() (part 0) or tally_state_import_part(), added
	 * to the workers' on every read: [parts][slice_words], laid out as a slice. */
	uint64_t *base;

	tally_election_t election;               /* status lives in `status` */
	uint32_t status;                         /* tally_election_status_t, atomic */
	uint64_t election_gen;                   /* bumped on every status change */
	uint32_t dob_cutoff16;                   /* eligible when dob16 <= this */

	uint32_t running;
	uint32_t stopping;
	uint32_t pause_gen;                      /* odd while paused */
	unsigned pause_depth;
	uint64_t version_offset;                 /* keeps versions monotonic across import */

	tally_snapshot_t *final;                 /* frozen at close; published with release */
};

/* Part p's slice of worker w's counters (its cells, then its rejections), or NULL when w
 * does not count p. */
static inline uint64_t *
tally__slice(const struct tally_core *core, unsigned w, unsigned p)
{
	if (core->parts == 1)
		return core->workers[w].counters;
	if (p % core->nworkers != w)
		return NULL;
	return core->workers[w].counters + (size_t)(p / core->nworkers) * core->slice_words;
}

/* Part p's restored counts (a slice's layout). */
static inline uint64_t *
tally__base(const struct tally_core *core, unsigned p)
{
	return core->base + (size_t)p * core->slice_words;
}

/* Part p's count in word i of a slice (a cell, or cells_per_part + reason): restored plus
 * counted, relaxed loads. */
static inline uint64_t
tally__part_word(const struct tally_core *core, unsigned p, size_t i)
{
	uint64_t v = tally__base(core, p)[i];

	if (core->parts == 1) {
		for (unsigned w = 0; w < core->nworkers; w++)
			v += tally_load_relaxed(&core->workers[w].counters[i]);
	} else {
		v += tally_load_relaxed(&tally__slice(core, p % core->nworkers, p)[i]);
	}
	return v;
}

/* Every part's count in word i of a slice. */
static inline uint64_t
tally__word(const struct tally_core *core, size_t i)
{
	uint64_t v = 0;

	for (unsigned p = 0; p < core->parts; p++)
		v += tally__part_word(core, p, i);
	return v;
}

/* Sum of the counters; the snapshot's sums are derived from these. */
int tally__snapshot_fill(struct tally_core *core, tally_snapshot_t *snap);

/* true when no worker thread is running or every one is parked. */
int tally__core_quiescent(const struct tally_core *core);

#endif /* TALLY_CORE_INT_H */

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

/* One worker. Its first cache lines are written only by the worker thread. */
struct tally__worker {
	uint64_t *cells;                         /* [cap_candidates * cap_regions] accepted */
	uint64_t rejected[TALLY_REASON__COUNT];  /* by reason */
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
	size_t cells_bytes;

	/* Counts restored by tally_state_import(), added to the workers' on every read. */
	uint64_t *base_cells;
	uint64_t base_rejected[TALLY_REASON__COUNT];

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

/* Sum of the counters; the snapshot's sums are derived from these. */
int tally__snapshot_fill(struct tally_core *core, tally_snapshot_t *snap);

/* true when no worker thread is running or every one is parked. */
int tally__core_quiescent(const struct tally_core *core);

#endif /* TALLY_CORE_INT_H */

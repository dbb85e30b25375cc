/**
 * @file core.h
 * @brief The counting engine: the election, worker threads, their queues, and the vote path.
 *
 * DESIGN: N worker threads own the vote path. Each has a bounded lock-free MPSC queue
 * (ck_ring) of batch pointers; any number of producer threads submit batches, routed by
 * batch->lane to worker lane % N. A worker checks each vote against the election window and
 * the registry, claims the voter's "has voted" bit with one atomic compare-and-swap (so a
 * voter counts once even if two workers see them), and adds one to its own
 * (candidate, region) cell or its own rejection cell. Cells are per worker, cache-line
 * aligned, written only by their worker with relaxed atomic stores; readers sum them. Every
 * other figure (per candidate, region, party, totals) is derived from those cells when a
 * snapshot is taken, so every snapshot is internally consistent by construction. No mutex
 * anywhere on this path; idle workers back off by spinning, yielding, then sleeping.
 *
 * Parts (opts.parts > 1, e.g. one per home partition when several servers share an
 * election): a batch's lane is its part, and part p is counted only by worker p % N, into
 * a slice of cells of its own; so a part's counters can be exported, reset and imported
 * apart from the others (include/tally/state.h) while the voted bits stay one set.
 */
#ifndef TALLY_CORE_H
#define TALLY_CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <tally/error.h>
#include <tally/registry.h>
#include <tally/vote.h>

typedef struct tally_core tally_core_t;

/** Election status. */
#define TALLY_ELECTION_STATUS_MAP(XX) \
	XX(SCHEDULED, "scheduled")    \
	XX(OPEN,      "open")         \
	XX(CLOSED,    "closed")       \
	XX(FINAL,     "final")

typedef enum tally_election_status {
#define TALLY__ESTATUS_ENUM(name, str) TALLY_ELECTION_##name,
	TALLY_ELECTION_STATUS_MAP(TALLY__ESTATUS_ENUM)
#undef TALLY__ESTATUS_ENUM
} tally_election_status_t;

/** @brief Name of a status ("open"). */
const char *tally_election_status_name(int status);

#define TALLY_ELECTION_ID_MAX 63

/**
 * An election. Votes are accepted while it is OPEN and their voting_time is within
 * [opens_at, closes_at); while SCHEDULED every vote is too_early. Election day, for the age
 * check, is the UTC date of opens_at: a voter may vote if born on or before the same day and
 * month 18 years earlier. Someone born on 29 February has their birthday on 1 March in a
 * common year, so for election day 1 March 2026 a voter born 29 February 2008 is eligible,
 * and for election day 28 February 2026 they are not.
 */
typedef struct tally_election {
	char id[TALLY_ELECTION_ID_MAX + 1];
	int64_t opens_at;            /**< UTC seconds, inclusive. */
	int64_t closes_at;           /**< UTC seconds, exclusive. */
	tally_election_status_t status;
} tally_election_t;

/** Core options. 0 picks the default. */
typedef struct tally_core_opts {
	unsigned workers;            /**< default: online CPUs */
	unsigned queue_size;         /**< batches per worker queue, power of two, default 1024 */
	tally_election_t election;
	/** Counters kept apart per part, at most TALLY_CORE_MAX_PARTS (0 or 1: one part, the
	 *  whole election). With parts > 1 a batch counts into part batch->lane (which must be
	 *  below parts), counted by worker lane % workers only; each part's counters can be
	 *  exported, imported and reset on their own (include/tally/state.h), e.g. one part
	 *  per home partition when several servers share an election. Snapshots sum them. */
	unsigned parts;
} tally_core_opts_t;

#define TALLY_CORE_MAX_PARTS 4096u

/**
 * @brief Create a core counting into reg (which must outlive it).
 * The registry's capacities fix the size of the counters.
 * @returns NULL with errstr set on failure. Free with tally_core_destroy().
 */
tally_core_t *tally_core_new(tally_registry_t *reg, const tally_core_opts_t *opts, char *errstr,
                             size_t errstr_size);

/** @brief Start the worker threads ("tally:work<N>"). */
int tally_core_start(tally_core_t *core);

/**
 * @brief Process everything already submitted, then stop and join the workers.
 * Safe to call twice; the core may be started again afterwards.
 */
void tally_core_stop(tally_core_t *core);

/** @brief Stop if running and free. NULL is a no-op. */
void tally_core_destroy(tally_core_t *core);

/** @brief The registry this core counts against. */
tally_registry_t *tally_core_registry(tally_core_t *core);

/** @brief Number of worker threads. */
unsigned tally_core_workers(const tally_core_t *core);

/** @brief Number of counter parts (1 unless opts.parts said more). */
unsigned tally_core_parts(const tally_core_t *core);

/**
 * @brief Hand a batch to its worker. Thread-safe for any number of producers.
 * Waits (spinning, then sleeping) while that worker's queue is full.
 * @returns 0, TALLY_ESTATE if the core is not running, or TALLY_EINVAL if the core keeps
 *          parts and batch->lane is not one of them.
 */
int tally_core_submit(tally_core_t *core, tally_batch_t *batch);

/** @brief As tally_core_submit() but returns TALLY_EAGAIN instead of waiting. */
int tally_core_try_submit(tally_core_t *core, tally_batch_t *batch);

/**
 * @brief Process a batch on the calling thread as worker `worker` would (with parts > 1:
 * as the lane's worker, whatever worker says). Only for a core that is not started (tests,
 * replay); never concurrently with workers.
 */
void tally_core_process(tally_core_t *core, unsigned worker, tally_batch_t *batch);

/**
 * @brief Park every worker between two batches and wait until all are parked.
 *
 * While paused the counters and "has voted" bits are exactly those of the batches completed
 * so far, which is the cut a checkpoint needs. Submitting still works (it queues).
 * Pauses nest with resumes; call from one control thread.
 */
void tally_core_pause(tally_core_t *core);

/** @brief Let the workers run again. */
void tally_core_resume(tally_core_t *core);

/** @brief Wait until every batch submitted before the call is complete. */
void tally_core_drain(tally_core_t *core);

/* ---- the election -------------------------------------------------------------- */

/**
 * @brief The eligibility rule: the last date of birth (days since 1970-01-01) of a voter
 * who is 18 or older on election day, the UTC date of opens_at (born 29 February: the
 * birthday is 1 March in a common year). Votes of later-born voters are ineligible.
 */
int32_t tally_election_dob_cutoff(int64_t opens_at);

/** @brief A copy of the election (id, window, status). */
void tally_core_election(const tally_core_t *core, tally_election_t *out);

/** @brief SCHEDULED → OPEN. @returns 0 or TALLY_ESTATE. */
int tally_core_election_open(tally_core_t *core);

/**
 * @brief OPEN → CLOSED: pause the workers, set the status so every later vote is
 * polls_closed, freeze the final snapshot, resume. @returns 0 or TALLY_ESTATE.
 *
 * Batches submitted but not yet processed are judged after the close, so they count as
 * polls_closed. To count everything submitted so far, call tally_core_drain() first.
 */
int tally_core_election_close(tally_core_t *core);

/** @brief CLOSED → FINAL: the frozen results are declared. @returns 0 or TALLY_ESTATE. */
int tally_core_election_finalize(tally_core_t *core);

/**
 * @brief Record a voter as having voted without counting a vote (restoring the voted set
 * from a store whose counts come from a checkpoint), at the first level that got a
 * candidate: the one level of a single-level election, national or constituencies only
 * (a second level needs tally_core_mark_voted_level()). Not concurrent with workers.
 * @returns 0, TALLY_ENOENT (unknown voter) or TALLY_EEXISTS (already marked).
 */
int tally_core_mark_voted(tally_core_t *core, const tally_uuid_t *voter_id);

/**
 * @brief tally_core_mark_voted() at a level (include/tally/registry.h, contests).
 * @returns 0, TALLY_ENOENT, TALLY_EEXISTS, or TALLY_EINVAL for a level not registered.
 */
int tally_core_mark_voted_level(tally_core_t *core, const tally_uuid_t *voter_id,
                                uint32_t level);

/**
 * @brief tally_core_mark_voted() for n voters, prefetching ahead (restoring millions).
 * A voter already marked is fine.
 * @returns 0, or TALLY_ENOENT at the first unknown voter, with its index in *failed.
 */
int tally_core_mark_voted_many(tally_core_t *core, const tally_uuid_t *ids, size_t n,
                               size_t *failed);

#endif /* TALLY_CORE_H */

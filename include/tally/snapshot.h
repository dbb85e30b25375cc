/**
 * @file snapshot.h
 * @brief Consistent point-in-time results, taken by any thread while workers count.
 *
 * In every snapshot: sum(candidates) = sum(regions) = sum(parties) = accepted, and
 * accepted + sum(rejected) = read. The version grows with every vote read, registration and
 * election change, and never goes down for one core (also across export/import).
 */
#ifndef TALLY_SNAPSHOT_H
#define TALLY_SNAPSHOT_H

#include <stdint.h>

#include <tally/core.h>
#include <tally/vote.h>

typedef struct tally_snapshot {
	uint64_t version;
	int64_t taken_at_us;                       /**< Wall clock, microseconds. */
	tally_election_t election;

	uint64_t read;                             /**< Votes the core has processed. */
	uint64_t accepted;
	uint64_t rejected[TALLY_REASON__COUNT];    /**< [TALLY_REASON_ACCEPTED] is 0. */
	uint64_t rejected_total;
	uint64_t registered;                       /**< Voters registered. */

	uint32_t ncandidates, nregions, nparties;
	uint64_t *candidates;                      /**< [ncandidates] accepted per candidate. */
	uint64_t *regions;                         /**< [nregions] accepted per region. */
	uint64_t *parties;                         /**< [nparties] accepted per party. */
	uint64_t *region_registered;               /**< [nregions] voters registered per region. */
	/** Accepted per candidate and region, for the regions of the candidate's contest only:
	 *  candidate c's cells are cells[cell_first[c] .. cell_first[c + 1]), cell i counting
	 *  region cell_region[i] (for contest 0, every region: cell_first[c] + r is region r).
	 *  Read one with tally_snapshot_cand_region(). */
	uint64_t ncells;
	uint64_t *cells;                           /**< [ncells] */
	uint64_t *cell_first;                      /**< [ncandidates + 1] */
	uint32_t *cell_region;                     /**< [ncells] */
	uint32_t *cand_contest;                    /**< [ncandidates] each one's contest */
	uint32_t ncontests;                        /**< contests registered (with contest 0) */
	uint32_t cap_candidates, cap_regions, cap_parties; /* allocation sizes */
	uint64_t cap_cells;
} tally_snapshot_t;

/** @brief Candidate c's votes from region r (0 when r is not in c's contest). */
uint64_t tally_snapshot_cand_region(const tally_snapshot_t *snap, uint32_t c, uint32_t r);

/**
 * @brief Take a snapshot of core's live counts. Lock-free; any thread.
 * @returns a new snapshot (free with tally_snapshot_destroy()) or NULL if out of memory.
 */
tally_snapshot_t *tally_snapshot_take(tally_core_t *core);

/**
 * @brief Take a snapshot into snap, reusing its arrays (snap must come from
 * tally_snapshot_take() or be zeroed). @returns 0 or TALLY_ENOMEM.
 */
int tally_snapshot_take_into(tally_core_t *core, tally_snapshot_t *snap);

/**
 * @brief The results frozen when the polls closed.
 * @returns a new copy (caller frees) or NULL when the polls have not closed.
 */
tally_snapshot_t *tally_snapshot_final(tally_core_t *core);

/** @brief Deep copy. @returns NULL if out of memory. */
tally_snapshot_t *tally_snapshot_copy(const tally_snapshot_t *snap);

/**
 * @brief Copy src into dst, reusing dst's arrays (grown as tally_snapshot_take_into() grows
 * them; dst must come from tally_snapshot_take() or tally_snapshot_copy() or be zeroed). src
 * is only read; dst and src must not be the same. On failure dst keeps its arrays but its
 * contents are unspecified. @returns 0 or TALLY_ENOMEM.
 */
int tally_snapshot_copy_into(tally_snapshot_t *dst, const tally_snapshot_t *src);

/** @brief Free. NULL is a no-op. */
void tally_snapshot_destroy(tally_snapshot_t *snap);

/**
 * @brief Check the invariants (sums and read = accepted + rejected).
 * @returns 0, or TALLY_ECORRUPT with the first violated equality in errstr.
 */
int tally_snapshot_check(const tally_snapshot_t *snap, char *errstr, size_t errstr_size);

/** @brief Index of the leading candidate (ties: lowest index), or -1 when none has votes. */
int32_t tally_snapshot_leader(const tally_snapshot_t *snap);

#endif /* TALLY_SNAPSHOT_H */

/**
 * @file contest.h
 * @brief Contest results: each contest's leader, majority, turnout and status, and per
 * level the seats per party, derived from one snapshot.
 *
 * DESIGN: a pure function of a snapshot and the registry it was taken from (contests and
 * their regions never change once registered), so every figure here is as consistent as
 * the snapshot: a contest's votes are the sum of its candidates', a level's seats the count
 * of its contests' winners. Computing never blocks the workers; it is done by whoever
 * publishes (the results thread, an HTTP handler, tally-dq), in O(candidates + contests +
 * regions), reusing its arrays from one snapshot to the next.
 *
 * Rules (issue 11; NIST SP 1500-100's reporting terms):
 *  - a contest is "counting" while the polls are open and "declared" once they are closed
 *    and every vote read before the close is counted (the caller says so: `closed`);
 *  - its leader has the most votes; a tie for the lead is reported as a tie (no leader,
 *    no seat), never broken silently; majority = leader's votes - runner-up's;
 *  - turnout = its votes (one per voter at its level) / voters registered in its regions;
 *  - per level: seats won (declared contests) and led (counting) per party;
 *  - the election's report status: "unofficial-partial" until every contest with a
 *    candidate is declared, then "unofficial-complete", and "certified" once the election
 *    is final (POST /api/election/certify).
 */
#ifndef TALLY_CONTEST_H
#define TALLY_CONTEST_H

#include <stdbool.h>
#include <stdint.h>

#include <tally/registry.h>
#include <tally/snapshot.h>

typedef enum tally_contest_status {
	TALLY_CONTEST_COUNTING = 0,
	TALLY_CONTEST_DECLARED = 1,
} tally_contest_status_t;

typedef enum tally_report_status {
	TALLY_REPORT_UNOFFICIAL_PARTIAL = 0,
	TALLY_REPORT_UNOFFICIAL_COMPLETE = 1,
	TALLY_REPORT_CERTIFIED = 2,
} tally_report_status_t;

/** @brief "counting" / "declared". */
const char *tally_contest_status_name(int status);
/** @brief "unofficial-partial" / "unofficial-complete" / "certified". */
const char *tally_report_status_name(int status);

/** One contest's result. */
typedef struct tally_contest_result {
	uint32_t contest;            /**< its index in the registry */
	uint32_t level;
	uint64_t votes;              /**< accepted for its candidates */
	uint64_t registered;         /**< voters registered in its regions */
	int32_t leader;              /**< candidate index; -1 with no votes or a tie */
	int32_t runner_up;           /**< candidate index; -1 when none has votes */
	bool tie;                    /**< two or more share the most votes (> 0) */
	uint64_t majority;           /**< leader's votes - runner-up's (0 on a tie) */
	tally_contest_status_t status;
	uint32_t ncandidates;
	uint32_t first;              /**< its candidates: cands[first .. first + ncandidates) */
} tally_contest_result_t;

/** Every contest's result and the seats, from one snapshot. Zero it before first use. */
typedef struct tally_contests {
	uint64_t version;            /**< the snapshot's */
	tally_report_status_t report;
	uint32_t ncontests;          /**< as in the snapshot (with contest 0) */
	uint32_t nlevels, nparties;
	tally_contest_result_t *contests;   /**< [ncontests] */
	/** Candidates by contest, each contest's by votes, most first (ties: lower index). */
	uint32_t *cands;
	/** Per level L and party p, at [L * nparties + p]. */
	uint32_t *seats_won;         /**< declared contests it won */
	uint32_t *seats_led;         /**< counting contests it leads */
	uint64_t *party_votes;       /**< its candidates' votes at the level */
	/** Per level. */
	uint64_t *level_votes;
	uint32_t *level_contests;    /**< contests with a candidate */
	uint32_t *level_declared;
	uint32_t *level_ties;        /**< contests tied for the lead (with votes) */
	/* allocation sizes */
	uint32_t cap_contests, cap_cands, cap_level_party, cap_levels;
} tally_contests_t;

/**
 * @brief Compute every contest's result from a snapshot of reg's election.
 * @param closed the polls are closed and every vote read before the close is counted
 *        (single server: snap->election.status >= TALLY_ELECTION_CLOSED).
 * @returns 0 or TALLY_ENOMEM (out keeps its arrays; its contents are unspecified).
 */
int tally_contests_compute(const tally_registry_t *reg, const tally_snapshot_t *snap,
                           bool closed, tally_contests_t *out);

/** @brief Free out's arrays (not out). */
void tally_contests_free(tally_contests_t *out);

#endif /* TALLY_CONTEST_H */

/**
 * @file results.h
 * @brief Publishing live results to Kafka's results topics, in the original's shapes.
 *
 * Three compacted topics, one message per changed figure, keyed by its id so compaction
 * keeps the latest:
 * - aggregated_votes_per_candidate, key candidate_id: {"candidate_id", "candidate_name",
 *   "party_affiliation", "photo_url", "total_votes", "version", "election_id", "timestamp"}
 * - aggregated_turnout_by_location, key the region: {"state", "count", "registered",
 *   "turnout", "version", "election_id", "timestamp"}
 * - aggregated_votes_per_party, key the party: {"party_affiliation", "total_votes",
 *   "version", "election_id", "timestamp"}
 * timestamp is ISO-8601 UTC with milliseconds, when the snapshot was taken; version is
 * the snapshot's. No voter data is ever published.
 *
 * An election of many contests (include/tally/contest.h) also has, from the same snapshot:
 * - aggregated_votes_per_contest, key contest_id: {"contest_id", "contest_name", "level",
 *   "total_votes", "registered", "turnout", "status" ("counting"/"declared"), "leader"
 *   (candidate_id, null on a tie or with no votes), "leader_name", "party_affiliation",
 *   "majority", "tie", "candidates" [{"candidate_id", "party_affiliation", "total_votes"},
 *   most votes first], "version", "election_id", "timestamp"}
 * - seats_per_party, key "level/party": {"level", "party_affiliation", "seats_won" (declared
 *   contests won), "seats_led" (counting contests led), "total_votes", "contests",
 *   "declared", "report" (NIST SP 1500-100's status), "version", "election_id",
 *   "timestamp"}. Seats won and votes never go down; seats led move as leads change.
 * A single national race (no contest registered) produces neither.
 */
#ifndef TALLY_RESULTS_H
#define TALLY_RESULTS_H

#include <stdbool.h>
#include <stddef.h>

#include <tally/kafka.h>
#include <tally/registry.h>
#include <tally/snapshot.h>

typedef struct tally_results tally_results_t;

/**
 * @brief A publisher to topics (the standard table; its three results topics are used)
 * through producer p (borrowed; both must outlive the publisher).
 * @returns NULL only when out of memory.
 */
tally_results_t *tally_results_new(tally_kafka_producer_t *p, const tally_kafka_topics_t *topics);

/**
 * @brief Produce a message for every candidate, region and party whose figures differ
 * from those this publisher last produced (all of them on the first call, or when all is
 * true). Names come from reg, which must hold everything snap counts.
 * @param produced if not NULL, receives how many messages were queued.
 * @returns 0, or the first tally_kafka_produce() error.
 */
int tally_results_publish(tally_results_t *r, const tally_registry_t *reg,
                          const tally_snapshot_t *snap, bool all, size_t *produced);

/** @brief Free the publisher (not the producer). NULL is a no-op. */
void tally_results_destroy(tally_results_t *r);

#endif /* TALLY_RESULTS_H */

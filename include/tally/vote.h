/**
 * @file vote.h
 * @brief A decoded vote, the outcome reasons, and the batch that carries votes through the core.
 */
#ifndef TALLY_VOTE_H
#define TALLY_VOTE_H

#include <stdint.h>

#include <tally/uuid.h>

/**
 * Outcome of a vote. ACCEPTED is 0; every other value is one rejection reason. The order
 * below is also the order in which the checks are made, so a vote with several faults gets
 * the first that applies; but WRONG_CONTEST, added last to keep the others' values, is
 * checked before DUPLICATE (a vote for a contest the voter is not in claims nothing).
 */
#define TALLY_REASON_MAP(XX)                                                      \
	XX(ACCEPTED,          "accepted",          "counted")                       \
	XX(MALFORMED,         "malformed",         "message could not be decoded")  \
	XX(POLLS_CLOSED,      "polls_closed",      "polls were closed when the vote arrived") \
	XX(TOO_EARLY,         "too_early",         "voting_time before the polls opened") \
	XX(TOO_LATE,          "too_late",          "voting_time after the polls closed") \
	XX(UNKNOWN_VOTER,     "unknown_voter",     "voter_id is not registered")    \
	XX(UNKNOWN_CANDIDATE, "unknown_candidate", "candidate_id is not standing")  \
	XX(INELIGIBLE,        "ineligible",        "voter under 18 on election day") \
	XX(DUPLICATE,         "duplicate",         "voter has already voted")        \
	XX(WRONG_CONTEST,     "wrong_contest",     "candidate's contest does not include the voter's region")

typedef enum tally_reason {
#define TALLY__REASON_ENUM(name, str, doc) TALLY_REASON_##name,
	TALLY_REASON_MAP(TALLY__REASON_ENUM)
#undef TALLY__REASON_ENUM
	TALLY_REASON__COUNT
} tally_reason_t;

/** @brief The reason's stable name ("unknown_voter"), as used in topics, metrics and the API. */
const char *tally_reason_name(int reason);

/** @brief One-line description of the reason. */
const char *tally_reason_doc(int reason);

/** @brief Reason for a name, or -1 if none matches. */
int tally_reason_from_name(const char *name);

/**
 * A decoded vote. The decoder fills the ids and time and sets reason to ACCEPTED, or to
 * MALFORMED when it could not decode the message (the other fields are then meaningless).
 * The core overwrites reason with the outcome. 48 bytes, so a batch is a flat array.
 */
typedef struct tally_vote {
	tally_uuid_t voter_id;
	tally_uuid_t candidate_id;
	int64_t voting_time;    /**< UTC seconds since the epoch. */
	uint8_t reason;         /**< tally_reason_t. */
	uint8_t _reserved[3];
	uint32_t region;        /**< Out: the voter's region index when the voter is known. */
} tally_vote_t;

/**
 * A batch of votes: the unit that travels through the core's queues.
 *
 * The caller owns the batch and its votes array and must not touch either from submit
 * until the batch is complete: tally_batch_done() returns true, after which the outcome of
 * every vote is in votes[i].reason and the totals below are filled in. on_done, if set, is
 * called on the worker thread right after completion; it must be quick and must not block.
 *
 * Batches with the same lane are processed by the same worker in submission order, so
 * the first of two votes by one voter in one lane is the one that counts.
 */
typedef struct tally_batch {
	tally_vote_t *votes;
	uint32_t count;
	uint32_t lane;                     /**< Routing key, e.g. the source partition. */
	void (*on_done)(struct tally_batch *batch, void *arg);
	void *arg;

	/* Filled in by the core. */
	uint32_t accepted;
	uint32_t rejected;
	uint32_t done;                     /**< Published with release; read via tally_batch_done(). */
	uint32_t _reserved;
} tally_batch_t;

/** @brief Prepare a batch over votes[0..count). */
void tally_batch_init(tally_batch_t *batch, tally_vote_t *votes, uint32_t count, uint32_t lane);

/** @brief true once every vote of the batch has its outcome (acquire). */
int tally_batch_done(const tally_batch_t *batch);

#endif /* TALLY_VOTE_H */

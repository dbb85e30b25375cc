/**
 * @file pg_types.h
 * @brief The PostgreSQL adapter's plain types, without libpq: what callers of the store
 *        (store.h) pass in and get back. pg.h and pg_checkpoint.h include it.
 */
#ifndef TALLY_PG_TYPES_H
#define TALLY_PG_TYPES_H

#include <stddef.h>
#include <stdint.h>

#include <tally/uuid.h>

/** One extra libpq connection keyword (from "pg.KEY = VALUE" config lines). */
typedef struct tally_pg_param {
	const char *key;      /**< libpq keyword, e.g. "connect_timeout" */
	const char *value;
} tally_pg_param_t;

/** One accepted vote, as stored in the votes table. */
typedef struct tally_pg_vote_row {
	tally_uuid_t voter_id;
	tally_uuid_t candidate_id;
	int64_t voting_time;       /**< UTC seconds */
	int64_t offset;            /**< source offset */
	int32_t partition;         /**< source partition */
	int32_t _pad;
} tally_pg_vote_row_t;

/** One source partition's position: reading resumes at next_offset. */
typedef struct tally_pg_offset {
	int32_t partition;
	int64_t next_offset;
} tally_pg_offset_t;

/**
 * One home partition's state in a cut, or as read back (several instances in one consumer
 * group: store.h). A part is stored only while its owner row names the writer at epoch.
 */
typedef struct tally_pg_part {
	int32_t partition;         /**< the home partition of the source topic */
	int64_t epoch;             /**< the epoch of the claim the state was counted under */
	uint64_t version;          /**< the state's snapshot version */
	void *state;               /**< the core's bytes for the partition */
	size_t state_len;
	void *forward;             /**< the app's bytes stored with it (tallyd: the forwarded
	                                votes' position), or NULL; malloc'd like state */
	size_t forward_len;
} tally_pg_part_t;

/** What claiming one partition read (tally_pg_partitions_claim(), tally_store_claim()). */
typedef struct tally_pg_claimed {
	int32_t partition;
	int64_t epoch;             /**< the new epoch: 1 on the first claim, then one more each */
	void *state;               /**< the stored state (malloc'd, the caller frees), or NULL */
	size_t state_len;
	uint64_t version;          /**< the stored state's version, 0 without one */
	int64_t next_offset;       /**< the source topic's stored next offset, -1 without one */
	void *forward;             /**< the part's stored forward bytes (malloc'd, the caller
	                                frees them), or NULL */
	size_t forward_len;
} tally_pg_claimed_t;

#endif /* TALLY_PG_TYPES_H */

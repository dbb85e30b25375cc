/**
 * @file pg_types.h
 * @brief The PostgreSQL adapter's plain types, without libpq: what callers of the store
 *        (store.h) pass in and get back. pg.h and pg_checkpoint.h include it.
 */
#ifndef TALLY_PG_TYPES_H
#define TALLY_PG_TYPES_H

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

#endif /* TALLY_PG_TYPES_H */

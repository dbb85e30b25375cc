/**
 * @file uuid.h
 * @brief 128-bit identifiers (voter_id, candidate_id) held as two integers.
 */
#ifndef TALLY_UUID_H
#define TALLY_UUID_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/** A UUID in big-endian order: hi holds the first 8 bytes of the text form. */
typedef struct tally_uuid {
	uint64_t hi;
	uint64_t lo;
} tally_uuid_t;

/** Length of the canonical text form, without a terminator. */
#define TALLY_UUID_STRLEN 36

/**
 * @brief Parse the canonical 8-4-4-4-12 hex form (either case).
 * @returns true on success; false if len != 36 or a character is out of place.
 */
bool tally_uuid_parse(const char *text, size_t len, tally_uuid_t *out);

/**
 * @brief Format as 36 lower-case characters plus a NUL into buf (at least 37 bytes).
 * @returns buf.
 */
char *tally_uuid_format(const tally_uuid_t *id, char *buf);

/** @brief true when a and b are the same id. */
static inline bool
tally_uuid_equal(const tally_uuid_t *a, const tally_uuid_t *b)
{
	return a->hi == b->hi && a->lo == b->lo;
}

/** @brief true for the all-zero id, which is never a valid voter or candidate. */
static inline bool
tally_uuid_is_nil(const tally_uuid_t *id)
{
	return (id->hi | id->lo) == 0;
}

/**
 * @brief A well-mixed 64-bit hash of an id (ids need not be random v4 UUIDs).
 */
static inline uint64_t
tally_uuid_hash(const tally_uuid_t *id)
{
	uint64_t h = id->hi ^ (id->lo * 0x9e3779b97f4a7c15ULL);

	h ^= h >> 32;
	h *= 0xd6e8feb86659fd93ULL;
	h ^= h >> 32;
	h *= 0xd6e8feb86659fd93ULL;
	h ^= h >> 32;
	return h;
}

#endif /* TALLY_UUID_H */

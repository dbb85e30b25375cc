/**
 * @file home.h
 * @brief A voter's home partition: where every vote of one voter is judged when several
 *        servers share an election (tallyd --cluster).
 *
 * home = CRC-32 (IEEE 802.3, the one of zlib and of librdkafka) of the voter_id's canonical
 * text (36 lower-case characters, tally_uuid_format()) modulo the partition count. That is
 * the partition librdkafka's default partitioner (consistent_random) picks for a message
 * keyed by that text, so votes produced keyed by voter_id, as the original system's
 * producers do, are already home and need no forwarding. Pure functions.
 */
#ifndef TALLY_HOME_H
#define TALLY_HOME_H

#include <stddef.h>
#include <stdint.h>

#include <tally/uuid.h>

/** @brief CRC-32 (reflected, polynomial 0xedb88320, initial and final xor ~0) of buf. */
uint32_t tally_crc32(const void *buf, size_t len);

/** @brief The home partition of voter_id among nparts (0 when nparts is 0). */
uint32_t tally_home_partition(const tally_uuid_t *voter_id, uint32_t nparts);

#endif /* TALLY_HOME_H */

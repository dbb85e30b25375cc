/**
 * @file state.h
 * @brief Export and import of the core's whole state, for checkpoints.
 *
 * The state is the election, every counter, the set of voters who have voted, and opaque
 * source positions handed in by the caller (e.g. the next Kafka offset of each partition).
 * Counters are keyed by candidate id and region name, not by index, so a state restores
 * into a registry loaded in another order. The format is binary, little-endian, versioned,
 * and ends in a CRC-32C of everything before it.
 */
#ifndef TALLY_STATE_H
#define TALLY_STATE_H

#include <stddef.h>
#include <stdint.h>

#include <tally/core.h>

/** What to include in an export. */
enum {
	TALLY_STATE_VOTED = 1u << 0,   /**< The voted set (16 bytes per voter who voted). */
};

/**
 * @brief Serialise the state. The core must be paused (tally_core_pause()) or stopped,
 * so the state is an exact cut.
 * @param positions caller's opaque bytes stored as they are (may be NULL with len 0).
 * @param out receives a malloc'd buffer the caller frees with free().
 * @returns 0, TALLY_ESTATE if workers are running, or TALLY_ENOMEM.
 */
int tally_state_export(tally_core_t *core, unsigned flags, const void *positions,
                       size_t positions_len, void **out, size_t *out_len);

/**
 * @brief Replace the core's counters, election and (if present) voted set with a state.
 * The core must be stopped, and its registry must hold every candidate, region and voter
 * the state names.
 * @param positions if not NULL, receives a malloc'd copy of the stored positions (caller
 *        frees); *positions_len its size.
 * @returns 0, TALLY_ECORRUPT (bad checksum, version or layout), TALLY_ENOENT (names an
 *          unregistered candidate, region or voter; errstr says which) or TALLY_ESTATE.
 */
int tally_state_import(tally_core_t *core, const void *buf, size_t len, void **positions,
                       size_t *positions_len, char *errstr, size_t errstr_size);

#endif /* TALLY_STATE_H */

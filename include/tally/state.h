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

/* ---- one part (tally_core_opts_t.parts) ------------------------------------------------- */

/**
 * @brief Serialise one part's counters: accepted votes per candidate and region, rejected
 * per reason, and the part's version, the number of votes it has judged (which only
 * grows, so a later state of a part always has a higher version). Layout: "TALLYPT1", the
 * election id, the part, the version, rejections by reason name, the non-zero cells keyed
 * by candidate id and region name, a CRC-32C. The core must be paused or stopped.
 * @param out receives a malloc'd buffer the caller frees.
 * @returns 0, TALLY_ESTATE if workers are running, TALLY_EINVAL (no such part) or
 *          TALLY_ENOMEM.
 */
int tally_state_export_part(tally_core_t *core, unsigned part, void **out, size_t *out_len);

/**
 * @brief Replace one part's counters with an exported part's (of this election; the
 * registry may be loaded in another order). The core must be paused or stopped, and no
 * snapshot taken meanwhile (take them on the same thread).
 * @param version receives the state's version (may be NULL).
 * @returns 0, TALLY_ECORRUPT (damaged, another election or another part), TALLY_ENOENT
 *          (an unregistered candidate or region; errstr says which), TALLY_EINVAL (no such
 *          part) or TALLY_ESTATE; on error the part is unchanged.
 */
int tally_state_import_part(tally_core_t *core, unsigned part, const void *buf, size_t len,
                            uint64_t *version, char *errstr, size_t errstr_size);

/**
 * @brief Zero one part's counters (e.g. its partition moved to another server, which
 * restores it from the store). Same conditions as tally_state_import_part().
 * @returns 0, TALLY_EINVAL (no such part) or TALLY_ESTATE.
 */
int tally_state_reset_part(tally_core_t *core, unsigned part);

/** @brief Votes one part has judged, accepted or rejected (its version). Core paused. */
uint64_t tally_state_part_read(const tally_core_t *core, unsigned part);

#endif /* TALLY_STATE_H */

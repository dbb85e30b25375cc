/*
 * tally-sim's vote maker: for each registered voter read, maybe a vote (turnout), preceded
 * by fault messages at the requested shares, each written with the generator's vote writer
 * (tally_gen_vote_json) and judged as the core will judge it, into the ground truth.
 *
 * Judging: every message is decoded with the core's own decoder (tally_decode_vote), so
 * "malformed" is exactly the decoder's verdict; then the core's checks in
 * TALLY_REASON_MAP order against what the maker knows of the voter and candidate it meant
 * (polls never closed: the election is assumed open while the votes are counted). A voter
 * is read once, so their genuine vote is the first that can count; duplicates are drawn
 * only from voters whose vote was accepted (a ring of the last 4096), with the same key, so
 * Kafka delivers them after it in the same partition.
 *
 * --rekey-rate R: each message, with probability R, is keyed by a random uuid-like key
 * (from the seeded stream) instead of its voter_id, so it lands on a random partition and
 * a voter's vote and duplicate may travel on different partitions. Kafka has no order
 * across partitions, so which of the two a consumer (or tallyd's repartition topic) meets
 * first is not defined: with R > 0 a duplicate never changes its mind (it names the
 * candidate of the voter's counted vote), so whichever of the two is counted, every figure
 * of the truth (accepted and rejected per reason, per candidate, party and region) is the
 * same. With R = 0 nothing is drawn for it: the messages are those of earlier versions.
 *
 * Memory: the ring of recent accepted voters (4096 copies of a voter record, about 2 MiB at
 * most for the original shape) and per region one counter and one choice weight per
 * candidate. Nothing per voter.
 *
 * DESIGN (threads): one thread owns a simvotes_t.
 */
#ifndef TALLY_SIM_SIMVOTES_H
#define TALLY_SIM_SIMVOTES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <tally/vote.h>

#include "simreg.h"

typedef struct simvotes simvotes_t;

typedef struct simvotes_opts {
	uint64_t seed;
	double turnout;
	double dup_rate, invalid_rate, unknown_rate, unknown_candidate_rate, late_rate, early_rate;
	bool compact;
	double rekey_rate;           /* share of messages keyed by a random key, not voter_id */
	double wrong_contest_rate;   /* share for a candidate of another contest (contests) */
} simvotes_opts_t;

/**
 * Called for each message made: key (voter_id text, klen bytes) and value. Returns 0, or a
 * tally error that stops the run; the message is counted in the truth only after 0.
 */
typedef int (*simvotes_emit_fn)(const char *key, size_t klen, const char *val, size_t vlen,
                                void *arg);

/** @brief A maker over reg (which must outlive it). NULL with errstr set on failure. */
simvotes_t *simvotes_new(simreg_t *reg, const simvotes_opts_t *opts, char *errstr,
                         size_t errstr_size);

/**
 * @brief Make the messages of one registered voter: zero or more faults, then the voter's
 *        vote if they turn out. progress (0..1) places the vote in the polling window.
 * @returns 0, or the first error emit returned.
 */
int simvotes_voter(simvotes_t *sv, const simreg_voter_t *v, double progress,
                   simvotes_emit_fn emit, void *arg);

/** The ground truth so far. */
typedef struct simvotes_truth {
	uint64_t messages;
	uint64_t accepted;
	uint64_t rejected[TALLY_REASON__COUNT];
	uint64_t rejected_total;
	uint64_t faults;             /* messages made as a fault (not a voter's own vote) */
	uint64_t rekeyed;            /* messages keyed by a random key (--rekey-rate) */
} simvotes_truth_t;

/** @brief The totals so far. */
void simvotes_totals(const simvotes_t *sv, simvotes_truth_t *out);

/**
 * @brief Write the ground truth JSON (the format tally-dq and the tests read) to path,
 *        through a temporary file renamed into place.
 * @returns 0 or a tally error with errstr set.
 */
int simvotes_write_truth(const simvotes_t *sv, const char *election_id, const char *path,
                         char *errstr, size_t errstr_size);

/** @brief Free. NULL is a no-op. */
void simvotes_destroy(simvotes_t *sv);

#endif /* TALLY_SIM_SIMVOTES_H */

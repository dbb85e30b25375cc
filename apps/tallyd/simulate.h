/*
 * tallyd --simulate: a whole seeded election in one process, checked against the
 * generator's ground truth.
 */
#ifndef TALLYD_SIMULATE_H
#define TALLYD_SIMULATE_H

#include "conf.h"

/** Exit codes of a simulation. */
enum {
	TALLYD_EXIT_MATCH = 0,        /**< every figure matched the ground truth */
	TALLYD_EXIT_MISMATCH = 1,     /**< a figure differed, or the run failed */
	TALLYD_EXIT_USAGE = 2,        /**< bad options */
	TALLYD_EXIT_INTERRUPTED = 130 /**< stopped by SIGINT (figures were still checked) */
};

/**
 * @brief Run the simulation conf describes: register the generated election, count its
 *        vote stream on a tally_core fed by conf->producers threads, close the polls,
 *        print the results and compare every figure with the ground truth. The last line
 *        printed is the verdict ("result: ...").
 *
 * Installs a SIGINT handler for its duration: the first Ctrl-C stops the producers (what
 * was sent is still counted and checked), a second one kills the process.
 * @returns one of the TALLYD_EXIT_* codes.
 */
int tallyd_simulate(const tallyd_conf_t *conf);

#endif /* TALLYD_SIMULATE_H */

/*
 * tally-sim's configuration: one struct, described by one option table (conf.c).
 */
#ifndef TALLY_SIM_CONF_H
#define TALLY_SIM_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "opt.h"

/* Exit codes: 0 done, 1 a run-time failure, 2 a bad option, 130 interrupted (SIGINT, with
 * the ground truth of what was produced written). */
#define TALLYSIM_EXIT_FAIL 1
#define TALLYSIM_EXIT_USAGE 2
#define TALLYSIM_EXIT_INTERRUPTED 130

typedef struct tallysim_conf {
	bool help;
	char *config;                    /* the config file read, if any */
	tally_opt_kvlist_t passthrough;  /* kafka.* and pg.* settings, file then command line */

	char *election_id;
	char *source;                    /* "postgres" or "kafka" */
	char *topic_prefix;
	uint64_t partitions;             /* of votes_topic, when tally-sim creates it */
	uint64_t seed;
	double turnout;
	double rate;                     /* messages per second, 0: flat out */
	double dup_rate;
	double invalid_rate;
	double unknown_rate;
	double unknown_candidate_rate;
	double late_rate;
	double early_rate;
	double rekey_rate;               /* share of messages keyed by a random key */
	double wrong_contest_rate;       /* share for a candidate of another contest */
	char *opens_at;                  /* override the election row's window (both or none) */
	char *closes_at;
	char *truth;
	bool compact;
	bool append;
	bool quiet;
} tallysim_conf_t;

/** tally-sim's options, in --help order. */
extern const tally_opt_t tallysim_opts[];
extern const size_t tallysim_nopts;

/**
 * @brief Fill conf: defaults, then the file named by --config (if any), then the command
 * line, which wins; kafka.* and pg.* settings go to conf->passthrough.
 * @returns 0, or -1 with errstr set ("tally.conf:12: ..." or "--x: ...").
 */
int tallysim_conf_load(tallysim_conf_t *conf, int argc, char **argv, char *errstr,
                       size_t errstr_size);

/** @brief Free what tallysim_conf_load() allocated. */
void tallysim_conf_free(tallysim_conf_t *conf);

#endif /* TALLY_SIM_CONF_H */

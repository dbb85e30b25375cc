/*
 * tally-dq's configuration: one struct, described by one option table (conf.c).
 */
#ifndef TALLY_DQ_CONF_H
#define TALLY_DQ_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "opt.h"

/* Exit codes: 0 every check passed, 1 a check failed (or could not run), 2 bad usage. */
#define TALLYDQ_EXIT_FAIL 1
#define TALLYDQ_EXIT_USAGE 2

typedef struct tallydq_conf {
	bool help;
	char *config;                    /* the config file read, if any */
	tally_opt_kvlist_t passthrough;  /* kafka.* and pg.* settings, file then command line */

	char *election_id;
	char *topic_prefix;
	char *truth;                     /* ground-truth JSON file; NULL: no truth checks */
	bool json;
	bool no_kafka;
	bool quiet;
	uint64_t timeout;                /* seconds to read each topic to its end */
	uint64_t show;                   /* rows of each comparison table in the text report */
} tallydq_conf_t;

/** tally-dq's options, in --help order. */
extern const tally_opt_t tallydq_opts[];
extern const size_t tallydq_nopts;

/**
 * @brief Fill conf: defaults, then the file named by --config (if any), then the command
 * line, which wins; --kafka.KEY=VALUE and --pg.KEY=VALUE go to conf->passthrough.
 * @returns 0, or -1 with errstr set ("tally.conf:12: ..." or "--x: ...").
 */
int tallydq_conf_load(tallydq_conf_t *conf, int argc, char **argv, char *errstr,
                      size_t errstr_size);

/** @brief Free what tallydq_conf_load() allocated. */
void tallydq_conf_free(tallydq_conf_t *conf);

#endif /* TALLY_DQ_CONF_H */

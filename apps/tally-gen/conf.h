/*
 * tally-gen's configuration: one struct, described by one option table (conf.c).
 */
#ifndef TALLY_GEN_CONF_H
#define TALLY_GEN_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "opt.h"

/* Exit codes: 0 done, 1 a run-time failure, 2 a bad option or setting. */
#define TALLYGEN_EXIT_FAIL 1
#define TALLYGEN_EXIT_USAGE 2

typedef struct tallygen_conf {
	bool help;
	char *config;                    /* the config file read, if any */
	tally_opt_kvlist_t passthrough;  /* kafka.* and pg.* settings, file then command line */

	uint64_t seed;
	uint64_t voters;
	uint64_t candidates;
	uint64_t parties;
	uint64_t regions;
	uint64_t contests;
	uint64_t partitions;
	char *election_id;
	char *topic_prefix;
	bool no_kafka;
	bool no_postgres;
	uint64_t batch;
	bool quiet;
	char *import_original;
	char *randomuser;                /* fetch from this Random User API URL; NULL: generate */
	uint64_t randomuser_batch;
	double randomuser_rate;
} tallygen_conf_t;

/** tally-gen's options, in --help order. */
extern const tally_opt_t tallygen_opts[];
extern const size_t tallygen_nopts;

/**
 * @brief Fill conf: defaults, then the file named by --config (if any), then the command
 * line, which wins. Command-line --kafka.KEY=VALUE and --pg.KEY=VALUE (or with the value as
 * the next argument) are appended to conf->passthrough after the file's, so they win too.
 * @returns 0, or -1 with errstr set ("tally.conf:12: ..." or "--x: ...").
 */
int tallygen_conf_load(tallygen_conf_t *conf, int argc, char **argv, char *errstr,
                       size_t errstr_size);

/** @brief Free what tallygen_conf_load() allocated. */
void tallygen_conf_free(tallygen_conf_t *conf);

#endif /* TALLY_GEN_CONF_H */

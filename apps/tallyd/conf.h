/*
 * tallyd's configuration: one struct, described by one option table (conf.c).
 */
#ifndef TALLYD_CONF_H
#define TALLYD_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "opt.h"

typedef struct tallyd_conf {
	bool help;
	bool simulate;
	char *config;                    /* the config file read, if any */
	tally_opt_kvlist_t passthrough;  /* kafka.* and pg.* settings, for the adapters */

	/* The simulated election (the generator). */
	uint64_t seed;
	uint64_t voters;
	uint64_t candidates;
	uint64_t parties;
	uint64_t regions;
	double turnout;
	double underage;
	double dup_rate;
	double malformed_rate;
	double unknown_rate;
	double unknown_candidate_rate;
	double late_rate;
	double early_rate;
	double ineligible_rate;
	uint64_t contests;
	double wrong_contest_rate;
	bool compact;
	bool register_json;

	/* The server (Kafka mode). */
	char *election_id;
	char *topic_prefix;
	char *group_id;
	char *instance_id;
	bool cluster;                    /* one of several instances (state per partition) */
	uint64_t checkpoint_interval_ms;
	uint64_t results_interval_ms;
	uint64_t max_pending_votes;
	uint64_t journal_above;          /* cuts of more votes go to the vote journal */
	uint64_t exit_idle_ms;           /* also waits until the journal is moved */
	bool no_open;
	bool live_view;
	char *http;                      /* ADDR:PORT to serve HTTP on; NULL: off */
	char *admin_token;               /* bearer token of the admin endpoints; NULL: off */

	/* The run. */
	uint64_t workers;
	uint64_t producers;
	double rate;
	bool quiet;
} tallyd_conf_t;

/** tallyd's options, in --help order. */
extern const tally_opt_t tallyd_opts[];
extern const size_t tallyd_nopts;

/** Key prefixes passed through to librdkafka and libpq. */
extern const char *const tallyd_passthrough[];

/**
 * @brief Fill conf: defaults, then the file named by --config (if any), then the command
 * line, which wins. @returns 0, or -1 with errstr set ("tally.conf:12: ..." or "--x: ...").
 */
int tallyd_conf_load(tallyd_conf_t *conf, int argc, char **argv, char *errstr, size_t errstr_size);

/** @brief Free what tallyd_conf_load() allocated. */
void tallyd_conf_free(tallyd_conf_t *conf);

#endif /* TALLYD_CONF_H */

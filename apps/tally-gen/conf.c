/*
 * tally-gen's option table: the one description of every option, its default and range.
 * Limits mirror the generator's (include/tally/gen.h) so a bad value fails here, at start,
 * with the option's name.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"

#define OFF(member) offsetof(tallygen_conf_t, member)

const tally_opt_t tallygen_opts[] = {
	{"seed", TALLY_OPT_UINT, "1", TALLY_OPT_UNBOUNDED,
	 "generator seed: the same seed gives the same registry", OFF(seed), "N"},
	TALLY_OPT_GEN_REGISTRY(OFF),
	{"contests", TALLY_OPT_UINT, "0", 0, 1024,
	 "constituencies over the regions (region r in constituency r % N), each with "
	 "candidates from the parties (--candidates is then unused); 0: one national race",
	 OFF(contests), "N"},
	{"partitions", TALLY_OPT_UINT, "12", 1, 10000,
	 "partitions of votes_topic, voters_topic, candidates_topic and votes_rejected",
	 OFF(partitions), "N"},
	{"election-id", TALLY_OPT_STRING, "general", 0, 0,
	 "id of the election row written to postgres (1 to 63 bytes)", OFF(election_id), "ID"},
	{"topic-prefix", TALLY_OPT_STRING, NULL, 0, 0,
	 "put this in front of every topic name (e.g. to keep test runs apart)",
	 OFF(topic_prefix), "PREFIX"},
	{"no-kafka", TALLY_OPT_FLAG, NULL, 0, 0, "do not create topics or produce to kafka",
	 OFF(no_kafka), NULL},
	{"no-postgres", TALLY_OPT_FLAG, NULL, 0, 0, "do not touch postgres", OFF(no_postgres),
	 NULL},
	{"batch", TALLY_OPT_UINT, "50000", 1, 1e8,
	 "voters per COPY statement (all of them commit in one transaction)", OFF(batch), "N"},
	{"import-original", TALLY_OPT_STRING, NULL, 0, 0,
	 "instead of generating, load the original system's candidates and voters tables from "
	 "SCHEMA of the same database (registrations are not produced to kafka)",
	 OFF(import_original), "SCHEMA"},
	{"randomuser", TALLY_OPT_STRING, NULL, 0, 0,
	 "fetch voters and candidates from this Random User API URL instead of generating them",
	 OFF(randomuser), "URL"},
	{"randomuser-batch", TALLY_OPT_UINT, "100", 1, 5000, "voters per --randomuser request",
	 OFF(randomuser_batch), "N"},
	{"randomuser-rate", TALLY_OPT_DOUBLE, "5", 0, 1000,
	 "--randomuser requests per second (0: no limit)", OFF(randomuser_rate), "R"},
	{"quiet", TALLY_OPT_FLAG, NULL, 0, 0, "no progress: only errors and the summary line",
	 OFF(quiet), NULL},
	{"config", TALLY_OPT_STRING, NULL, 0, 0,
	 "read key = value lines from FILE first (flags win; kafka.*, pg.* pass through)",
	 OFF(config), "FILE"},
	{"help", TALLY_OPT_FLAG, NULL, 0, 0, "print this help and exit", OFF(help), NULL},
};

const size_t tallygen_nopts = sizeof(tallygen_opts) / sizeof(tallygen_opts[0]);

static const char *const passthrough_prefixes[] = {"kafka.", "pg.", NULL};

int
tallygen_conf_load(tallygen_conf_t *conf, int argc, char **argv, char *errstr,
                   size_t errstr_size)
{
	memset(conf, 0, sizeof(*conf));
	return tally_opt_load(tallygen_opts, tallygen_nopts, conf, argc, argv, passthrough_prefixes,
	                      &conf->passthrough, errstr, errstr_size);
}

void
tallygen_conf_free(tallygen_conf_t *conf)
{
	tally_opt_free(tallygen_opts, tallygen_nopts, conf);
	tally_opt_kvlist_free(&conf->passthrough);
}

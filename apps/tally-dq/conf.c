/*
 * tally-dq's option table: the one description of every option, its default and range.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"

#define OFF(member) offsetof(tallydq_conf_t, member)

const tally_opt_t tallydq_opts[] = {
	{"election-id", TALLY_OPT_STRING, "general", 0, 0,
	 "the election to check (1 to 63 bytes)", OFF(election_id), "ID"},
	{"topic-prefix", TALLY_OPT_STRING, NULL, 0, 0,
	 "the prefix in front of every topic name, as given to tally-gen and tallyd",
	 OFF(topic_prefix), "PREFIX"},
	{"truth", TALLY_OPT_STRING, NULL, 0, 0,
	 "also compare with this ground-truth JSON file (as tally-sim writes it)", OFF(truth),
	 "FILE"},
	{"json", TALLY_OPT_FLAG, NULL, 0, 0, "print the report as JSON on stdout", OFF(json), NULL},
	{"no-kafka", TALLY_OPT_FLAG, NULL, 0, 0,
	 "skip the checks that read the results and dead-letter topics", OFF(no_kafka), NULL},
	{"timeout", TALLY_OPT_UINT, "120", 1, 86400,
	 "seconds allowed to read each topic to its end", OFF(timeout), "S"},
	{"show", TALLY_OPT_UINT, "50", 0, 1e9,
	 "rows of each comparison table in the text report (mismatches first; 0: none)",
	 OFF(show), "N"},
	{"quiet", TALLY_OPT_FLAG, NULL, 0, 0,
	 "text report: only the failed checks and the summary line", OFF(quiet), NULL},
	{"config", TALLY_OPT_STRING, NULL, 0, 0,
	 "read key = value lines from FILE first (flags win; kafka.*, pg.* pass through)",
	 OFF(config), "FILE"},
	{"help", TALLY_OPT_FLAG, NULL, 0, 0, "print this help and exit", OFF(help), NULL},
};

const size_t tallydq_nopts = sizeof(tallydq_opts) / sizeof(tallydq_opts[0]);

static const char *const passthrough_prefixes[] = {"kafka.", "pg.", NULL};

int
tallydq_conf_load(tallydq_conf_t *conf, int argc, char **argv, char *errstr, size_t errstr_size)
{
	memset(conf, 0, sizeof(*conf));
	return tally_opt_load(tallydq_opts, tallydq_nopts, conf, argc, argv, passthrough_prefixes,
	                      &conf->passthrough, errstr, errstr_size);
}

void
tallydq_conf_free(tallydq_conf_t *conf)
{
	tally_opt_free(tallydq_opts, tallydq_nopts, conf);
	tally_opt_kvlist_free(&conf->passthrough);
}

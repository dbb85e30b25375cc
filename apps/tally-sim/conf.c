/*
 * tally-sim's option table: the one description of every option, its default and range.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"

#define OFF(member) offsetof(tallysim_conf_t, member)

const tally_opt_t tallysim_opts[] = {
	{"election-id", TALLY_OPT_STRING, "general", 0, 0,
	 "the election whose window (postgres table \"elections\") the votes are cast in",
	 OFF(election_id), "ID"},
	{"source", TALLY_OPT_STRING, "postgres", 0, 0,
	 "where the registry is read: postgres (tables) or kafka (voters_topic, candidates_topic)",
	 OFF(source), "postgres|kafka"},
	{"topic-prefix", TALLY_OPT_STRING, NULL, 0, 0,
	 "put this in front of every topic name (as given to tally-gen)", OFF(topic_prefix),
	 "PREFIX"},
	{"partitions", TALLY_OPT_UINT, "12", 1, 10000,
	 "partitions of votes_topic if tally-sim has to create it (an existing one is kept)",
	 OFF(partitions), "N"},
	{"seed", TALLY_OPT_UINT, "1", TALLY_OPT_UNBOUNDED,
	 "seed of every choice: the same seed and registry, read in the same order, give the "
	 "same messages", OFF(seed), "N"},
	{"turnout", TALLY_OPT_DOUBLE, "0.65", 0, 1,
	 "share of registered voters who vote (under-18s who do are rejected as ineligible)",
	 OFF(turnout), "F"},
	{"rate", TALLY_OPT_DOUBLE, "0", 0, 1e9, "messages per second (0: flat out)", OFF(rate),
	 "N"},
	{"dup-rate", TALLY_OPT_DOUBLE, "0.01", 0, 0.9,
	 "share of messages that are a second vote of a voter already counted", OFF(dup_rate),
	 "F"},
	{"invalid-rate", TALLY_OPT_DOUBLE, "0.005", 0, 0.9,
	 "share of messages that are malformed (11 kinds: cut, empty, bad uuid, bad time, ...)",
	 OFF(invalid_rate), "F"},
	{"unknown-rate", TALLY_OPT_DOUBLE, "0.005", 0, 0.9,
	 "share of messages from an unregistered voter_id", OFF(unknown_rate), "F"},
	{"unknown-candidate-rate", TALLY_OPT_DOUBLE, "0.002", 0, 0.9,
	 "share of messages for a candidate_id nobody registered", OFF(unknown_candidate_rate),
	 "F"},
	{"late-rate", TALLY_OPT_DOUBLE, "0.002", 0, 0.9,
	 "share of messages with voting_time at or after closes_at", OFF(late_rate), "F"},
	{"early-rate", TALLY_OPT_DOUBLE, "0.002", 0, 0.9,
	 "share of messages with voting_time before opens_at", OFF(early_rate), "F"},
	{"wrong-contest-rate", TALLY_OPT_DOUBLE, "0", 0, 0.9,
	 "share of messages for a candidate of another constituency (a registry of 2 or more "
	 "contests)", OFF(wrong_contest_rate), "F"},
	{"rekey-rate", TALLY_OPT_DOUBLE, "0", 0, 1,
	 "share of messages keyed by a random uuid-like key instead of their voter_id (so the "
	 "default partitioner puts them on a random partition), drawn for every message, a "
	 "voter's first vote and duplicates alike; when above 0, a duplicate always names the "
	 "voter's counted candidate: Kafka orders nothing across partitions, so either of a "
	 "voter's two votes may be the one counted, and every figure of the truth is the same "
	 "whichever it is",
	 OFF(rekey_rate), "F"},
	{"opens-at", TALLY_OPT_STRING, NULL, 0, 0,
	 "election window start, UTC \"YYYY-MM-DD HH:MM:SS\" or ISO-8601 (with --closes-at: "
	 "then the elections table is not read)",
	 OFF(opens_at), "TIME"},
	{"closes-at", TALLY_OPT_STRING, NULL, 0, 0, "election window end (exclusive), as --opens-at",
	 OFF(closes_at), "TIME"},
	{"truth", TALLY_OPT_STRING, "tally-sim-truth.json", 0, 0,
	 "write the ground truth (what the core must count) to this JSON file", OFF(truth),
	 "FILE"},
	{"compact", TALLY_OPT_FLAG, NULL, 0, 0,
	 "send only voter_id, candidate_id and voting_time instead of the original full shape",
	 OFF(compact), NULL},
	{"append", TALLY_OPT_FLAG, NULL, 0, 0,
	 "produce even if votes_topic already holds messages (the truth covers this run's only)",
	 OFF(append), NULL},
	{"quiet", TALLY_OPT_FLAG, NULL, 0, 0, "no progress: only errors and the summary line",
	 OFF(quiet), NULL},
	{"config", TALLY_OPT_STRING, NULL, 0, 0,
	 "read key = value lines from FILE first (flags win; kafka.*, pg.* pass through)",
	 OFF(config), "FILE"},
	{"help", TALLY_OPT_FLAG, NULL, 0, 0, "print this help and exit", OFF(help), NULL},
};

const size_t tallysim_nopts = sizeof(tallysim_opts) / sizeof(tallysim_opts[0]);

static const char *const passthrough_prefixes[] = {"kafka.", "pg.", NULL};

int
tallysim_conf_load(tallysim_conf_t *conf, int argc, char **argv, char *errstr,
                   size_t errstr_size)
{
	memset(conf, 0, sizeof(*conf));
	return tally_opt_load(tallysim_opts, tallysim_nopts, conf, argc, argv, passthrough_prefixes,
	                      &conf->passthrough, errstr, errstr_size);
}

void
tallysim_conf_free(tallysim_conf_t *conf)
{
	tally_opt_free(tallysim_opts, tallysim_nopts, conf);
	tally_opt_kvlist_free(&conf->passthrough);
}

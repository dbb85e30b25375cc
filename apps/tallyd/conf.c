/*
 * tallyd's option table: the one description of every option, its default and range.
 * Limits mirror the generator's (include/tally/gen.h) so a bad value fails here, at start,
 * with the option's name.
 */
#include <string.h>

#include "conf.h"

#define OFF(member) offsetof(tallyd_conf_t, member)

const tally_opt_t tallyd_opts[] = {
	{"simulate", TALLY_OPT_FLAG, NULL, 0, 0,
	 "run a whole seeded election in this process and check it against the ground truth",
	 OFF(simulate), NULL},
	{"seed", TALLY_OPT_UINT, "1", TALLY_OPT_UNBOUNDED,
	 "generator seed: the same seed gives the same election", OFF(seed), "N"},
	TALLY_OPT_GEN_REGISTRY(OFF),
	{"turnout", TALLY_OPT_DOUBLE, "0.65", 0, 1, "share of adult voters who vote (varies by region)",
	 OFF(turnout), "F"},
	{"underage", TALLY_OPT_DOUBLE, "0.01", 0, 1,
	 "share of registered voters under 18 on election day", OFF(underage), "F"},
	{"dup-rate", TALLY_OPT_DOUBLE, "0.01", 0, 0.9,
	 "share of messages that are a second vote by a voter who has voted", OFF(dup_rate), "F"},
	{"malformed-rate", TALLY_OPT_DOUBLE, "0.005", 0, 0.9,
	 "share of messages that are broken JSON or have bad fields", OFF(malformed_rate), "F"},
	{"unknown-rate", TALLY_OPT_DOUBLE, "0.005", 0, 0.9,
	 "share of messages from an unregistered voter_id", OFF(unknown_rate), "F"},
	{"unknown-candidate-rate", TALLY_OPT_DOUBLE, "0.002", 0, 0.9,
	 "share of messages for a candidate_id nobody registered", OFF(unknown_candidate_rate), "F"},
	{"late-rate", TALLY_OPT_DOUBLE, "0.002", 0, 0.9,
	 "share of messages with voting_time at or after the close", OFF(late_rate), "F"},
	{"early-rate", TALLY_OPT_DOUBLE, "0.002", 0, 0.9,
	 "share of messages with voting_time before the polls open", OFF(early_rate), "F"},
	{"ineligible-rate", TALLY_OPT_DOUBLE, "0.002", 0, 0.9,
	 "share of messages from voters under 18", OFF(ineligible_rate), "F"},
	{"contests", TALLY_OPT_UINT, "0", 0, 1024,
	 "constituencies over the regions (region r in constituency r % N), each with "
	 "candidates from the parties; 0: one national race", OFF(contests), "N"},
	{"wrong-contest-rate", TALLY_OPT_DOUBLE, "0", 0, 0.9,
	 "share of messages for a candidate of another constituency (needs --contests 2+)",
	 OFF(wrong_contest_rate), "F"},
	{"compact", TALLY_OPT_FLAG, NULL, 0, 0,
	 "send {voter_id, candidate_id, voting_time} instead of the original ~1 KB votes",
	 OFF(compact), NULL},
	{"register-json", TALLY_OPT_FLAG, NULL, 0, 0,
	 "register voters through voters_topic JSON and the registration decoder (slower)",
	 OFF(register_json), NULL},
	{"election-id", TALLY_OPT_STRING, "general", 0, 0,
	 "the election to count (a row of the elections table)", OFF(election_id), "ID"},
	{"topic-prefix", TALLY_OPT_STRING, NULL, 0, 0,
	 "prefix of every topic name, e.g. \"test1_\" (default none)", OFF(topic_prefix), "P"},
	{"group-id", TALLY_OPT_STRING, "tallyd", 0, 0, "Kafka consumer group of votes_topic",
	 OFF(group_id), "G"},
	{"instance-id", TALLY_OPT_STRING, NULL, 0, 0,
	 "this instance's name in the consumer group, Kafka's group.instance.id: a restarted "
	 "instance takes its partitions straight back (default: the host name; instances of one "
	 "group on one host need different names)", OFF(instance_id), "NAME"},
	{"cluster", TALLY_OPT_FLAG, NULL, 0, 0,
	 "count as one of several instances of one consumer group: state per partition in "
	 "postgres, fenced; every instance serves the whole election (exit status 3 when fenced "
	 "off)", OFF(cluster), NULL},
	{"checkpoint.interval.ms", TALLY_OPT_UINT, "50", 10, 3600000,
	 "cut a checkpoint (votes, state, offsets) this often while anything changed; results "
	 "are published only once postgres has committed one", OFF(checkpoint_interval_ms),
	 "MS"},
	{"results.interval.ms", TALLY_OPT_UINT, "50", 10, 3600000,
	 "publish the committed results' changes to the results topics at most this often "
	 "(and redraw --live-view)", OFF(results_interval_ms), "MS"},
	{"max-pending-votes", TALLY_OPT_UINT, "4000000", 1000, 1e9,
	 "accepted votes held in memory while postgres is away; reading pauses beyond "
	 "(56 bytes each)", OFF(max_pending_votes), "N"},
	{"checkpoint.journal.above", TALLY_OPT_UINT, "1000", 0, 1e9,
	 "a checkpoint of more accepted votes than this stores them packed in the vote journal "
	 "(~20 bytes each) instead of row by row in the votes table; they are moved there once "
	 "reading has caught up (0: always journal)", OFF(journal_above), "N"},
	{"exit-idle-ms", TALLY_OPT_UINT, "0", 0, 86400000,
	 "exit (after a final checkpoint) once every partition is read to its end and nothing "
	 "new came for this long (0: run until SIGTERM)", OFF(exit_idle_ms), "MS"},
	{"no-open", TALLY_OPT_FLAG, NULL, 0, 0,
	 "do not open a scheduled election on start (votes then count as too_early)",
	 OFF(no_open), NULL},
	{"live-view", TALLY_OPT_FLAG, NULL, 0, 0,
	 "draw the count live on stdout (a progress line every 2 s off a terminal) and print the "
	 "results tables at the end", OFF(live_view), NULL},
	{"http", TALLY_OPT_STRING, NULL, 0, 0,
	 "serve /metrics, /api/results, /api/stream and the dashboard on ADDR:PORT (or PORT on "
	 "127.0.0.1); off unless given", OFF(http), "ADDR:PORT"},
	{"admin-token", TALLY_OPT_STRING, NULL, 0, 0,
	 "bearer token for POST /api/election/open|close (better in the config file or "
	 "TALLY_ADMIN_TOKEN, out of ps' sight); admin actions are off without one",
	 OFF(admin_token), "TOKEN"},
	{"workers", TALLY_OPT_UINT, "0", 0, 256, "counting threads (0: one per CPU)", OFF(workers),
	 "N"},
	{"producers", TALLY_OPT_UINT, "2", 1, 64,
	 "threads generating and decoding votes (the stream depends on this)", OFF(producers), "N"},
	{"rate", TALLY_OPT_DOUBLE, "0", 0, 1e9, "votes per second in all (0: as fast as possible)",
	 OFF(rate), "VOTES_PER_S"},
	{"quiet", TALLY_OPT_FLAG, NULL, 0, 0,
	 "no progress and no result tables: only mismatches and the result line", OFF(quiet), NULL},
	{"config", TALLY_OPT_STRING, NULL, 0, 0,
	 "read key = value settings from FILE first (the command line wins); kafka.* and pg.* "
	 "keys go to librdkafka and libpq", OFF(config), "FILE"},
	{"help", TALLY_OPT_FLAG, NULL, 0, 0, "print this help and exit", OFF(help), NULL},
};

const size_t tallyd_nopts = sizeof(tallyd_opts) / sizeof(tallyd_opts[0]);

const char *const tallyd_passthrough[] = {"kafka.", "pg.", NULL};

int
tallyd_conf_load(tallyd_conf_t *conf, int argc, char **argv, char *errstr, size_t errstr_size)
{
	memset(conf, 0, sizeof(*conf));
	return tally_opt_load(tallyd_opts, tallyd_nopts, conf, argc, argv, tallyd_passthrough,
	                      &conf->passthrough, errstr, errstr_size);
}

void
tallyd_conf_free(tallyd_conf_t *conf)
{
	tally_opt_free(tallyd_opts, tallyd_nopts, conf);
	tally_opt_kvlist_free(&conf->passthrough);
}

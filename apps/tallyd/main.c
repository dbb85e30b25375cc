/*
 * tallyd: the election tally server. For now it runs only the embedded simulation
 * (--simulate); the Kafka and HTTP front ends plug in here later.
 */
#include <stdio.h>
#include <string.h>

#include "conf.h"
#include "opt.h"
#include "server.h"
#include "simulate.h"

static void
usage(FILE *f)
{
	fprintf(f,
	        "usage: tallyd [options]            count votes_topic (Kafka) into PostgreSQL\n"
	        "       tallyd --simulate [options] the quick look: a whole election in-process\n"
	        "\n"
	        "Server: restores the newest checkpoint of the election from PostgreSQL\n"
	        "(TALLY_PG_DSN, pg.* settings), follows votes_topic in a consumer group\n"
	        "(TALLY_KAFKA_BROKERS, kafka.* settings), counts each vote exactly once, writes\n"
	        "a checkpoint (accepted votes, the core's state, every partition's next offset)\n"
	        "in one transaction every checkpoint.interval.ms, publishes changed results to\n"
	        "the results topics and every rejected vote to votes_rejected. SIGTERM or\n"
	        "SIGINT: final checkpoint, clean exit.\n"
	        "\n"
	        "--simulate: runs a whole seeded election in one process: registers the generated parties,\n"
	        "candidates and voters, counts the generated vote stream (with faults) on the\n"
	        "core's worker threads, closes the polls, prints the results and checks every\n"
	        "figure against the generator's ground truth. Exits 0 only if all match.\n"
	        "\n"
	        "options:\n");
	tally_opt_help(f, tallyd_opts, tallyd_nopts);
}

int
main(int argc, char **argv)
{
	tallyd_conf_t conf;
	char err[512];
	int rc;

	/* --help wins over anything else on the line, even a bad option. */
	if (tally_opt_wants_help(argc, argv)) {
		usage(stdout);
		return 0;
	}
	if (tallyd_conf_load(&conf, argc, argv, err, sizeof(err)) != 0) {
		fprintf(stderr, "tallyd: %s\n", err);
		tallyd_conf_free(&conf);
		return TALLYD_EXIT_USAGE;
	}
	if (conf.help) {
		usage(stdout);
		rc = 0;
	} else if (!conf.simulate) {
		rc = tallyd_serve(&conf);
	} else {
		rc = tallyd_simulate(&conf);
	}
	tallyd_conf_free(&conf);
	return rc;
}

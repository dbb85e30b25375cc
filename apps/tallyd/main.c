/*
 * tallyd: the election tally server. For now it runs only the embedded simulation
 * (--simulate); the Kafka and HTTP front ends plug in here later.
 */
#include <stdio.h>
#include <string.h>

#include "conf.h"
#include "opt.h"
#include "simulate.h"

static void
usage(FILE *f)
{
	fprintf(f,
	        "usage: tallyd --simulate [options]\n"
	        "\n"
	        "Runs a whole seeded election in one process: registers the generated parties,\n"
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
		fprintf(stderr, "tallyd: only the simulation is implemented so far: run "
		                "\"tallyd --simulate\" (see --help)\n");
		rc = TALLYD_EXIT_USAGE;
	} else {
		rc = tallyd_simulate(&conf);
	}
	tallyd_conf_free(&conf);
	return rc;
}

/*
 * tally-bench: dispatches to one benchmark by name.
 */
#include <stdio.h>
#include <string.h>

#include "bench.h"

static const struct {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *doc;
} benches[] = {
	{"core", tally_bench_core, "vote path: registry probe, checks and counting on N workers"},
	{"decode", tally_bench_decode, "vote decoder against jansson on original-shape messages"},
	{"e2e", tally_bench_e2e, "tallyd counting votes_topic from Kafka into PostgreSQL, against a bare consumer"},
	{"recover", tally_bench_recover, "tallyd's time from start to live after a SIGKILL"},
	{"clean", tally_bench_clean, "drop the schema and topics of a run kept with --keep"},
	{"http", tally_bench_http, "scrape latency at ~10k series, counting rate with and without serving"},
	{"latency", tally_bench_latency, "produce to visible on the results topic and /api/stream, at a steady rate"},
	{"failover", tally_bench_failover, "tallyd --cluster: SIGKILL one of two instances, time until the other counts its partitions"},
};

static void
usage(FILE *f)
{
	fprintf(f, "usage: tally-bench <benchmark> [options]\n\nbenchmarks:\n");
	for (size_t i = 0; i < sizeof(benches) / sizeof(benches[0]); i++)
		fprintf(f, "  %-8s %s\n", benches[i].name, benches[i].doc);
	fprintf(f, "\n'tally-bench <benchmark> --help' lists its options.\n");
}

int
main(int argc, char **argv)
{
	if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	for (size_t i = 0; i < sizeof(benches) / sizeof(benches[0]); i++)
		if (strcmp(argv[1], benches[i].name) == 0)
			return benches[i].run(argc - 1, argv + 1);
	fprintf(stderr, "tally-bench: unknown benchmark \"%s\"\n", argv[1]);
	usage(stderr);
	return 2;
}

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
	{"voters", TALLY_OPT_UINT, "100000", 1, 1e9, "registered voters", OFF(voters), "N"},
	{"candidates", TALLY_OPT_UINT, "3", 1, 256, "candidates standing, parties round-robin",
	 OFF(candidates), "N"},
	{"parties", TALLY_OPT_UINT, "3", 1, 64,
	 "parties; the first three are the original's, more get generated names", OFF(parties),
	 "N"},
	{"regions", TALLY_OPT_UINT, "20", 1, 1024, "regions (address.state), largest counties first",
	 OFF(regions), "N"},
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

static int
fail(char *errstr, size_t errstr_size, const char *msg, const char *arg)
{
	snprintf(errstr, errstr_size, msg, arg);
	return -1;
}

static bool
is_passthrough(const char *name)
{
	for (const char *const *p = passthrough_prefixes; *p != NULL; p++)
		if (strncmp(name, *p, strlen(*p)) == 0 && name[strlen(*p)] != '\0')
			return true;
	return false;
}

int
tallygen_conf_load(tallygen_conf_t *conf, int argc, char **argv, char *errstr,
                   size_t errstr_size)
{
	const char *path = NULL;
	char **rest;
	int nrest = 1, rc = -1;

	memset(conf, 0, sizeof(*conf));
	if (tally_opt_defaults(tallygen_opts, tallygen_nopts, conf, errstr, errstr_size) != 0)
		return -1;
	for (int i = 1; i < argc; i++) {
		if (strncmp(argv[i], "--config=", 9) == 0)
			path = argv[i] + 9;
		else if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
			path = argv[++i];
	}
	if (path != NULL &&
	    tally_opt_parse_file(tallygen_opts, tallygen_nopts, conf, path, passthrough_prefixes,
	                         &conf->passthrough, errstr, errstr_size) != 0)
		return -1;

	/* The option engine knows only the table; pass-through settings are taken out here. */
	if ((rest = calloc((size_t)argc + 1, sizeof(*rest))) == NULL)
		return fail(errstr, errstr_size, "%s", "out of memory");
	rest[0] = argv[0];
	for (int i = 1; i < argc; i++) {
		const char *arg = argv[i], *eq, *value;
		char key[256];
		size_t len;

		if (strncmp(arg, "--", 2) != 0 || !is_passthrough(arg + 2)) {
			rest[nrest++] = argv[i];
			continue;
		}
		eq = strchr(arg, '=');
		len = eq != NULL ? (size_t)(eq - arg - 2) : strlen(arg + 2);
		if (len >= sizeof(key)) {
			fail(errstr, errstr_size, "unknown option \"%s\" (see --help)", arg);
			goto out;
		}
		memcpy(key, arg + 2, len);
		key[len] = '\0';
		if (eq != NULL) {
			value = eq + 1;
		} else if (i + 1 < argc) {
			value = argv[++i];
		} else {
			fail(errstr, errstr_size, "--%s: missing value", key);
			goto out;
		}
		if (tally_opt_kvlist_add(&conf->passthrough, key, value, "command line") != 0) {
			fail(errstr, errstr_size, "%s", "out of memory");
			goto out;
		}
	}
	rc = tally_opt_parse_argv(tallygen_opts, tallygen_nopts, conf, nrest, rest, errstr,
	                          errstr_size);
out:
	free(rest);
	return rc;
}

void
tallygen_conf_free(tallygen_conf_t *conf)
{
	tally_opt_free(tallygen_opts, tallygen_nopts, conf);
	tally_opt_kvlist_free(&conf->passthrough);
}

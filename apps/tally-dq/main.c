/*
 * tally-dq: the data-quality checks of the original system, done right. Checks one
 * election's data across PostgreSQL, the last checkpoint, the Kafka topics and (when given)
 * the ground-truth file, prints a report and exits 1 if any check failed.
 *
 * Checks, each named in the report:
 *   election.exists              the election row is there
 *   integrity.votes_voters       votes whose voter is not registered        (by query: the
 *   integrity.votes_candidates   votes whose candidate is not registered     foreign keys may
 *   integrity.candidates_parties candidates whose party is not registered    be absent)
 *   votes.one_per_voter          no voter_id with more than one vote
 *   votes.election_id            no vote of another election
 *   votes.journal                every vote journal piece decodes (its votes count as
 *                                stored votes in every other check)
 *   checkpoint.offsets           checkpoint_offsets rows for the election
 *   checkpoint.latest            the last checkpoint (tallyd --cluster: every partition's
 *                                state) imports into a core and adds up
 *   topics.results               the results topics read to their end, none malformed
 *   topics.dead_letters          votes_rejected read to its end, every header there
 *   rows.*                       voters, candidates, parties, votes (= the truth if given)
 *   {candidates,regions,parties}.{checkpoint,results,truth}
 *                                votes from PostgreSQL = that source, row by row
 *   cells.checkpoint             votes per candidate x region, PostgreSQL = checkpoint
 *   regions.registered[_truth]   registered voters per region = turnout messages / truth
 *   rejected.truth, read.truth   the checkpoint's rejections per reason and messages read
 *   dead_letters.{checkpoint,truth} dead letters per reason (once per source position)
 *
 * DESIGN (threads): one thread; the sources are read one after the other.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <librdkafka/rdkafka.h>

#include <tally/core.h>
#include <tally/kafka.h>
#include <tally/pg.h>
#include <tally/vote.h>

#include "conf.h"
#include "dq.h"
#include "opt.h"

/* Errors are "tally-dq: message" on stderr. */
#define die_msg(...) tally_app_error("tally-dq", __VA_ARGS__)

static void
usage(FILE *f)
{
	fprintf(f,
	        "usage: tally-dq [options]\n"
	        "\n"
	        "Checks one election's data: referential integrity (votes->voters,\n"
	        "votes->candidates, candidates->parties) and one vote per voter by query, row\n"
	        "counts, and that the votes per candidate, region and party in PostgreSQL equal\n"
	        "the last checkpointed core state, the latest results-topic messages and (with\n"
	        "--truth) the ground truth; rejections per reason in the checkpoint and the dead\n"
	        "letters equal the truth. PostgreSQL and Kafka come from TALLY_PG_DSN and\n"
	        "TALLY_KAFKA_BROKERS; pg.KEY and kafka.KEY settings (in the config file, or as\n"
	        "--pg.KEY=VALUE / --kafka.KEY=VALUE) go to libpq and librdkafka. Prints counts and\n"
	        "candidate, region and party names only, never voter data. Exit status: 0 every\n"
	        "check passed, 1 a check failed or a source could not be read, 2 bad usage.\n"
	        "\n"
	        "options:\n");
	tally_opt_help(f, tallydq_opts, tallydq_nopts);
}

/* Split the pass-through settings into libpq keywords and librdkafka settings. */
static int
split_passthrough(dq_run_t *run, const tally_opt_kvlist_t *list, const char ***pg_where)
{
	run->pg = calloc(list->n + 1, sizeof(*run->pg));
	run->kafka = calloc(list->n + 1, sizeof(*run->kafka));
	*pg_where = calloc(list->n + 1, sizeof(**pg_where));
	if (run->pg == NULL || run->kafka == NULL || *pg_where == NULL)
		return -1;
	for (size_t i = 0; i < list->n; i++) {
		const tally_opt_kv_t *kv = &list->items[i];

		if (strncmp(kv->key, "pg.", 3) == 0) {
			(*pg_where)[run->npg] = kv->where;
			run->pg[run->npg++] = (tally_pg_param_t){kv->key + 3, kv->value};
		} else {
			run->kafka[run->nkafka++] = (tally_kafka_setting_t){kv->key, kv->value, kv->where};
		}
	}
	return 0;
}

/* Everything wrong with the options fails here, before any work: 0 or exit 2's message. */
static int
check_usage(dq_run_t *run, const char **pg_where, char *err, size_t errsz)
{
	const tallydq_conf_t *conf = run->conf;
	tally_kafka_topics_t topics;
	size_t len = strlen(conf->election_id);

	if (len < 1 || len > TALLY_ELECTION_ID_MAX) {
		snprintf(err, errsz, "--election-id: \"%s\" must be 1 to %d bytes", conf->election_id,
		         TALLY_ELECTION_ID_MAX);
		return -1;
	}
	if (tally_kafka_topics_init(&topics, conf->topic_prefix, 0, err, errsz) != 0) {
		char why[256];

		snprintf(why, sizeof(why), "%.250s", err);
		snprintf(err, errsz, "--topic-prefix: %s", why);
		return -1;
	}
	for (size_t i = 0; i < run->npg; i++) {
		char why[256];

		if (tally_pg_check_params(&run->pg[i], 1, why, sizeof(why)) != 0) {
			snprintf(err, errsz, "%s: pg.%s: %s", pg_where[i], run->pg[i].key, why);
			return -1;
		}
	}
	if (!conf->no_kafka) {
		rd_kafka_conf_t *kconf = tally_kafka_conf_new(getenv("TALLY_KAFKA_BROKERS"), run->kafka,
		                                              run->nkafka, err, errsz);

		if (kconf == NULL)
			return -1;
		rd_kafka_conf_destroy(kconf);
	}
	return 0;
}

/* Row counts: against the truth when given, else a registry table must not be empty. */
static void
row_check(dq_run_t *run, const char *name, const char *table, int64_t n, int64_t want,
          bool must_have)
{
	if (run->conf->truth != NULL)
		dq_check(run, name, n == want ? DQ_PASS : DQ_FAIL,
		         json_pack("{s:I, s:I}", "postgres", (json_int_t)n, "truth", (json_int_t)want),
		         "%" PRId64 " %s, the truth %" PRId64, n, table, want);
	else
		dq_check(run, name, n > 0 || !must_have ? DQ_PASS : DQ_FAIL,
		         json_pack("{s:I}", "postgres", (json_int_t)n), "%" PRId64 " %s%s", n, table,
		         n > 0 || !must_have ? "" : " (none at all)");
}

static void
read_check(dq_run_t *run)
{
	if (!run->have_ckpt) {
		dq_check(run, "read.truth", DQ_SKIP, NULL, "%s", run->missing[DQ_CKPT]);
	} else if (run->conf->truth == NULL) {
		dq_check(run, "read.truth", DQ_SKIP, NULL, "%s", run->missing[DQ_TRUTH]);
	} else {
		bool ok = run->ckpt_read == run->truth_messages &&
		          run->ckpt_accepted == run->truth_accepted;

		dq_check(run, "read.truth", ok ? DQ_PASS : DQ_FAIL,
		         json_pack("{s:I, s:I, s:I, s:I}", "checkpoint_read",
		                   (json_int_t)run->ckpt_read, "checkpoint_accepted",
		                   (json_int_t)run->ckpt_accepted, "truth_messages",
		                   (json_int_t)run->truth_messages, "truth_accepted",
		                   (json_int_t)run->truth_accepted),
		         "checkpoint read %" PRId64 " (accepted %" PRId64 "), the truth %" PRId64
		         " messages (accepted %" PRId64 ")",
		         run->ckpt_read, run->ckpt_accepted, run->truth_messages, run->truth_accepted);
	}
}

static int
run_checks(dq_run_t *run)
{
	const tallydq_conf_t *conf = run->conf;
	char err[1024];

	run->missing[DQ_PG] = "postgres was not read";
	run->missing[DQ_CKPT] = "no checkpoint was read (see checkpoint.latest)";
	run->missing[DQ_TOPIC] = conf->no_kafka ? "--no-kafka" : "the topic was not read (see topics.*)";
	run->missing[DQ_TRUTH] = "no --truth file";

	/* The reasons in their canonical order, whatever source names them first. */
	for (int k = 1; k < TALLY_REASON__COUNT; k++)
		if (dq_dim_row(&run->dim[DQ_DIM_REASONS], tally_reason_name(k), NULL, NULL) == NULL) {
			die_msg("out of memory");
			return TALLYDQ_EXIT_FAIL;
		}
	if (conf->truth != NULL && dq_truth(run, conf->truth, err, sizeof(err)) != 0) {
		die_msg("%s", err);
		return TALLYDQ_EXIT_USAGE;
	}
	if (dq_pg(run, err, sizeof(err)) != 0) {
		die_msg("%s", err);
		return TALLYDQ_EXIT_FAIL;
	}
	if (!conf->no_kafka) {
		dq_kafka(run);
		if (run->ndl > 0 && dq_pg_superseded(run, err, sizeof(err)) != 0) {
			die_msg("%s", err);
			return TALLYDQ_EXIT_FAIL;
		}
	} else {
		dq_check(run, "topics.results", DQ_SKIP, NULL, "--no-kafka");
		dq_check(run, "topics.dead_letters", DQ_SKIP, NULL, "--no-kafka");
	}

	row_check(run, "rows.voters", "voters", run->pg_voters, run->truth_registered, true);
	row_check(run, "rows.candidates", "candidates", run->pg_candidates, run->truth_candidates,
	          true);
	row_check(run, "rows.parties", "parties", run->pg_parties, run->truth_parties, true);
	row_check(run, "rows.votes", "votes of the election", run->pg_votes, run->truth_accepted,
	          false);

	dq_compare(run, "candidates.checkpoint", DQ_DIM_CANDIDATES, DQ_PG, DQ_CKPT, false);
	dq_compare(run, "regions.checkpoint", DQ_DIM_REGIONS, DQ_PG, DQ_CKPT, false);
	dq_compare(run, "parties.checkpoint", DQ_DIM_PARTIES, DQ_PG, DQ_CKPT, false);
	dq_compare(run, "cells.checkpoint", DQ_DIM_CELLS, DQ_PG, DQ_CKPT, false);
	dq_compare(run, "candidates.results", DQ_DIM_CANDIDATES, DQ_PG, DQ_TOPIC, false);
	dq_compare(run, "regions.results", DQ_DIM_REGIONS, DQ_PG, DQ_TOPIC, false);
	dq_compare(run, "regions.registered", DQ_DIM_REGIONS, DQ_PG, DQ_TOPIC, true);
	dq_compare(run, "parties.results", DQ_DIM_PARTIES, DQ_PG, DQ_TOPIC, false);
	dq_compare(run, "candidates.truth", DQ_DIM_CANDIDATES, DQ_PG, DQ_TRUTH, false);
	dq_compare(run, "regions.truth", DQ_DIM_REGIONS, DQ_PG, DQ_TRUTH, false);
	dq_compare(run, "regions.registered_truth", DQ_DIM_REGIONS, DQ_PG, DQ_TRUTH, true);
	dq_compare(run, "parties.truth", DQ_DIM_PARTIES, DQ_PG, DQ_TRUTH, false);
	read_check(run);
	dq_compare(run, "rejected.truth", DQ_DIM_REASONS, DQ_CKPT, DQ_TRUTH, false);
	dq_compare(run, "dead_letters.checkpoint", DQ_DIM_REASONS, DQ_CKPT, DQ_TOPIC, false);
	dq_compare(run, "dead_letters.truth", DQ_DIM_REASONS, DQ_TRUTH, DQ_TOPIC, false);

	if (conf->json)
		dq_report_json(run, stdout);
	else
		dq_report_text(run, stdout);
	fflush(stdout);
	return dq_count(run, DQ_FAIL) > 0 ? TALLYDQ_EXIT_FAIL : 0;
}

int
main(int argc, char **argv)
{
	static const char *const dims[DQ_NDIM][2] = {
		[DQ_DIM_CANDIDATES] = {"candidates", "votes per candidate"},
		[DQ_DIM_REGIONS] = {"regions", "votes per region"},
		[DQ_DIM_PARTIES] = {"parties", "votes per party"},
		[DQ_DIM_CELLS] = {"candidate x region cells", "votes per candidate x region"},
		[DQ_DIM_REASONS] = {"reasons", "rejections per reason"},
	};
	tallydq_conf_t conf;
	dq_run_t run;
	const char **pg_where = NULL;
	char err[1024];
	int rc;

	/* --help wins over anything else on the line, even a bad option. */
	if (tally_opt_wants_help(argc, argv)) {
		usage(stdout);
		return 0;
	}
	if (tallydq_conf_load(&conf, argc, argv, err, sizeof(err)) != 0) {
		die_msg("%s", err);
		tallydq_conf_free(&conf);
		return TALLYDQ_EXIT_USAGE;
	}
	if (conf.help) {
		usage(stdout);
		tallydq_conf_free(&conf);
		return 0;
	}
	memset(&run, 0, sizeof(run));
	run.conf = &conf;
	for (int d = 0; d < DQ_NDIM; d++) {
		run.dim[d].name = dims[d][0];
		run.dim[d].what = dims[d][1];
	}
	run.pg_voters = run.pg_candidates = run.pg_parties = run.pg_votes = run.pg_votes_all = -1;
	if (split_passthrough(&run, &conf.passthrough, &pg_where) != 0) {
		die_msg("out of memory");
		rc = TALLYDQ_EXIT_FAIL;
	} else if (check_usage(&run, pg_where, err, sizeof(err)) != 0) {
		die_msg("%s", err);
		rc = TALLYDQ_EXIT_USAGE;
	} else {
		rc = run_checks(&run);
	}
	for (int d = 0; d < DQ_NDIM; d++)
		dq_dim_free(&run.dim[d]);
	for (size_t i = 0; i < run.nchecks; i++)
		json_decref(run.checks[i].figures);
	free(run.checks);
	free(run.dl);
	free(run.pg);
	free(run.kafka);
	free(pg_where);
	tallydq_conf_free(&conf);
	return rc;
}

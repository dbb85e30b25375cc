/*
 * tallyd against the real Kafka and PostgreSQL scripts/services started.
 *
 * tally-gen registers a seeded election into a private schema and topic prefix; the test
 * produces the same generator's vote stream (every fault kind) to votes_topic keyed by
 * voter_id, so the generator's ground truth is what tallyd must count. Then:
 * - exact: one tallyd run to the end of the stream; the votes table, the last
 *   checkpoint's state, the results topics and the dead letters all equal the truth.
 * - crash: tallyd killed with SIGKILL at random moments and restarted each time, then
 *   run to the end: the same exact figures (nothing lost, nothing counted twice).
 */
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <curl/curl.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <librdkafka/rdkafka.h>

#include <tally/core.h>
#include <tally/gen.h>
#include <tally/kafka.h>
#include <tally/pg_checkpoint.h>
#include <tally/pg_registry.h>
#include <tally/snapshot.h>
#include <tally/state.h>

#include "kafkatest.h"
#include "pgtest.h"
#include "services.h"
#include "tallydtest.h"
#include "testutil.h"

#define SEED 11
#define N_CANDIDATES 5
#define N_REGIONS 12
#define N_PARTITIONS 4

typedef struct run {
	char prefix[64];
	char pgopt[160];
	tally_kafka_topics_t topics;
	tally_gen_t *gen;
	tally_gen_stream_t *stream;
	tally_gen_truth_t *truth;
	char log[256];
	const char *journal_above;   /* --checkpoint.journal.above, NULL: tallyd's default */
} run_t;

/* The generator's vote stream to votes_topic keyed by voter_id: up to n more messages
 * (all that are left when n < 0). Returns how many were produced. */
static long
produce(run_t *r, long n)
{
	tally_kafka_producer_t *p;
	rd_kafka_conf_t *kc;
	char buf[TALLY_GEN_MSG_MAX], err[256];
	tally_gen_msg_t msg;
	long len, done = 0;

	kc = rd_kafka_conf_new();
	cr_assert_eq(rd_kafka_conf_set(kc, "bootstrap.servers",
	                               tally_test_service("TALLY_KAFKA_BROKERS"), err, sizeof(err)),
	             RD_KAFKA_CONF_OK);
	rd_kafka_conf_set(kc, "linger.ms", "20", NULL, 0);
	p = tally_kafka_producer_new(kc, err, sizeof(err));
	cr_assert_not_null(p, "%s", err);
	while ((n < 0 || done < n) &&
	       (len = tally_gen_stream_next(r->stream, buf, sizeof(buf), &msg)) >= 0) {
		char key[TALLY_UUID_STRLEN + 1];

		tally_uuid_format(&msg.voter_id, key);
		cr_assert_eq(tally_kafka_produce(p, r->topics.topic[TALLY_KAFKA_VOTES].name, key,
		                                 strlen(key), buf, (size_t)len),
		             0);
		done++;
	}
	cr_assert_eq(tally_kafka_producer_flush(p, 120000, err, sizeof(err)), 0, "%s", err);
	tally_kafka_producer_destroy(p);
	return done;
}

/* The truth of everything produced (call once the stream is all produced). */
static void
take_truth(run_t *r)
{
	r->truth = tally_gen_truth_new(r->gen);
	tally_gen_truth_add(r->truth, r->stream);
	fprintf(stderr, "produced %llu votes (%llu accepted, %llu rejected)\n",
	        (unsigned long long)r->truth->read, (unsigned long long)r->truth->accepted,
	        (unsigned long long)r->truth->rejected_total);
}

/* tally-gen the registry into a private schema and topic prefix; open the same stream. */
static void
setup_registry(run_t *r, uint64_t voters, bool compact)
{
	char voters_s[24], parts[8], cands[8], regions[8], seed[8], err[256];
	static char out[1 << 16];
	tally_gen_opts_t o;

	pgtest_schema_create();
	snprintf(r->prefix, sizeof(r->prefix), "tallyd%d_%ld_", (int)getpid(), (long)time(NULL));
	snprintf(r->pgopt, sizeof(r->pgopt), "--pg.options=%s", pgtest_options());
	snprintf(r->log, sizeof(r->log), "/tmp/%stallyd.log", r->prefix);
	cr_assert_eq(tally_kafka_topics_init(&r->topics, r->prefix, N_PARTITIONS, err, sizeof(err)),
	             0);
	snprintf(voters_s, sizeof(voters_s), "%llu", (unsigned long long)voters);
	snprintf(parts, sizeof(parts), "%d", N_PARTITIONS);
	snprintf(cands, sizeof(cands), "%d", N_CANDIDATES);
	snprintf(regions, sizeof(regions), "%d", N_REGIONS);
	snprintf(seed, sizeof(seed), "%d", SEED);
	{
		const char *args[] = {"--seed", seed, "--voters", voters_s, "--candidates", cands,
		                      "--regions", regions, "--partitions", parts, "--topic-prefix",
		                      r->prefix, r->pgopt, "--quiet", NULL};

		cr_assert_eq(test_run("tally-gen", args, out, sizeof(out)), 0, "tally-gen: %s", out);
	}
	tally_gen_opts_init(&o);
	o.seed = SEED;
	o.voters = voters;
	o.candidates = N_CANDIDATES;
	o.regions = N_REGIONS;
	o.compact = compact;
	r->gen = tally_gen_new(&o, err, sizeof(err));
	cr_assert_not_null(r->gen, "%s", err);
	r->stream = tally_gen_stream_new(r->gen, 0, 1);
}

/* The registry, then the whole vote stream. */
static void
setup_run(run_t *r, uint64_t voters, bool compact)
{
	setup_registry(r, voters, compact);
	produce(r, -1);
	take_truth(r);
}

static void
teardown_run(run_t *r)
{
	const char *names[TALLY_KAFKA_N_TOPICS];

	for (int i = 0; i < TALLY_KAFKA_N_TOPICS; i++)
		names[i] = r->topics.topic[i].name;
	kt_delete_topics(names, TALLY_KAFKA_N_TOPICS);
	tally_gen_truth_destroy(r->truth);
	tally_gen_stream_destroy(r->stream);
	tally_gen_destroy(r->gen);
	pgtest_schema_drop();
	unlink(r->log);
}

static int
spawn_tallyd(run_t *r, const char *exit_idle)
{
	const char *args[] = {"--topic-prefix", r->prefix, r->pgopt, "--checkpoint.interval.ms",
	                      "200", "--exit-idle-ms", exit_idle, "--group-id", r->prefix,
	                      "--max-pending-votes", "20000",
	                      r->journal_above != NULL ? "--checkpoint.journal.above" : NULL,
	                      r->journal_above, NULL};
	int pid = test_spawn("tallyd", args, r->log);

	cr_assert(pid > 0);
	return pid;
}

static void
dump_log(run_t *r)
{
	FILE *f = fopen(r->log, "r");
	char line[1024];

	while (f != NULL && fgets(line, sizeof(line), f) != NULL)
		fputs(line, stderr);
	if (f != NULL)
		fclose(f);
}

/* Run tallyd until it has read everything and exits by itself. */
static void
run_to_end(run_t *r)
{
	int pid = spawn_tallyd(r, "1500"), status;

	cr_assert_eq(waitpid(pid, &status, 0), pid);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		dump_log(r);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "tallyd status %d", status);
}

static long checkpointed(PGconn *c);

/* ---- checks --------------------------------------------------------------------------- */

static int
gen_candidate_index(const tally_gen_t *gen, const char *id)
{
	for (uint32_t i = 0; i < tally_gen_candidate_count(gen); i++) {
		tally_gen_candidate_t c;

		tally_gen_candidate(gen, i, &c);
		if (strcmp(c.candidate_id, id) == 0)
			return (int)i;
	}
	return -1;
}

static int
gen_region_index(const tally_gen_t *gen, const char *name)
{
	for (uint32_t i = 0; i < tally_gen_region_count(gen); i++)
		if (strcmp(tally_gen_region_name(gen, i), name) == 0)
			return (int)i;
	return -1;
}

static void
check_pg(run_t *r)
{
	PGconn *c = pgtest_connect();
	PGresult *res;
	const tally_gen_truth_t *t = r->truth;

	/* tallyd exits once idle, and idle includes the journal moved into votes. */
	cr_assert_eq(pgtest_count(c, "SELECT count(*) FROM vote_journal"), 0);
	cr_assert_eq(pgtest_count(c, "SELECT count(*) FROM votes"), (long)t->accepted);
	res = PQexec(c, "SELECT v.candidate_id::text, r.region, count(*) FROM votes v"
	                " JOIN voters r USING (voter_id) GROUP BY 1, 2");
	cr_assert_eq(PQresultStatus(res), PGRES_TUPLES_OK, "%s", PQerrorMessage(c));
	{
		uint64_t sum = 0;

		for (int i = 0; i < PQntuples(res); i++) {
			int ci = gen_candidate_index(r->gen, PQgetvalue(res, i, 0));
			int ri = gen_region_index(r->gen, PQgetvalue(res, i, 1));
			long n = strtol(PQgetvalue(res, i, 2), NULL, 10);

			cr_assert(ci >= 0 && ri >= 0);
			cr_assert_eq((uint64_t)n, t->cand_region[(size_t)ci * t->nregions + (size_t)ri],
			             "votes table: candidate %d region %d", ci, ri);
			sum += (uint64_t)n;
		}
		cr_assert_eq(sum, t->accepted);
	}
	PQclear(res);

	/* The newest checkpoint's state counts exactly the truth. */
	{
		tally_registry_t *reg = tally_registry_new(NULL, NULL, 0);
		tally_core_opts_t co = {.workers = 1};
		tally_core_t *core;
		tally_snapshot_t *snap;
		void *state;
		size_t len;
		uint64_t version;
		char err[256];

		cr_assert_eq(tally_pg_registry_load(c, reg, NULL, NULL, NULL, err, sizeof(err)), 0,
		             "%s", err);
		cr_assert_eq(tally_pg_election_get(c, "general", &co.election, err, sizeof(err)), 0);
		core = tally_core_new(reg, &co, err, sizeof(err));
		cr_assert_not_null(core);
		cr_assert_eq(tally_pg_checkpoint_latest(c, "general", &state, &len, &version, err,
		                                        sizeof(err)),
		             0, "%s", err);
		cr_assert_not_null(state, "no checkpoint");
		cr_assert_eq(tally_state_import(core, state, len, NULL, NULL, err, sizeof(err)), 0,
		             "%s", err);
		snap = tally_snapshot_take(core);
		cr_assert_eq(snap->read, t->read);
		cr_assert_eq(snap->accepted, t->accepted);
		for (int k = 0; k < TALLY_REASON__COUNT; k++)
			cr_assert_eq(snap->rejected[k], t->rejected[k], "checkpoint: %s",
			             tally_reason_name(k));
		for (uint32_t i = 0; i < snap->ncandidates; i++) {
			tally_candidate_info_t ci;
			char id[TALLY_UUID_STRLEN + 1];

			tally_registry_candidate_get(reg, i, &ci);
			tally_uuid_format(&ci.id, id);
			cr_assert_eq(snap->candidates[i], t->candidates[gen_candidate_index(r->gen, id)]);
		}
		free(state);
		tally_snapshot_destroy(snap);
		tally_core_destroy(core);
		tally_registry_destroy(reg);
	}
	/* Every partition's stored offset is its end. */
	cr_assert_eq(pgtest_count(c, "SELECT coalesce(sum(next_offset), 0) FROM checkpoint_offsets"
	                             " WHERE topic LIKE '%votes_topic'"),
	             (long)t->read);
	PQfinish(c);
}

typedef struct latest {
	const tally_gen_t *gen;
	uint64_t cand[TALLY_GEN_MAX_CANDIDATES];
	uint64_t region[64];
	int64_t cand_version[TALLY_GEN_MAX_CANDIDATES];
	uint64_t by_reason[TALLY_REASON__COUNT];
	uint64_t letters;
	unsigned char *seen;      /* dead letters by partition * stride + offset */
	uint64_t stride, distinct;
} latest_t;

static void
on_candidate(const rd_kafka_message_t *m, void *arg)
{
	latest_t *l = arg;
	json_t *o = json_loadb(m->payload, m->len, 0, NULL);
	int ci;

	cr_assert_not_null(o);
	ci = gen_candidate_index(l->gen, json_string_value(json_object_get(o, "candidate_id")));
	cr_assert(ci >= 0);
	cr_assert_eq(strncmp(m->key, json_string_value(json_object_get(o, "candidate_id")),
	                     m->key_len), 0);
	cr_assert_str_eq(json_string_value(json_object_get(o, "election_id")), "general");
	l->cand[ci] = (uint64_t)json_integer_value(json_object_get(o, "total_votes"));
	json_decref(o);
}

static void
on_region(const rd_kafka_message_t *m, void *arg)
{
	latest_t *l = arg;
	json_t *o = json_loadb(m->payload, m->len, 0, NULL);
	int ri;

	cr_assert_not_null(o);
	ri = gen_region_index(l->gen, json_string_value(json_object_get(o, "state")));
	cr_assert(ri >= 0 && ri < 64);
	l->region[ri] = (uint64_t)json_integer_value(json_object_get(o, "count"));
	json_decref(o);
}

static void
on_letter(const rd_kafka_message_t *m, void *arg)
{
	latest_t *l = arg;
	rd_kafka_headers_t *h = NULL;
	const void *v;
	size_t n;
	char reason[32] = "", off[24] = "", part[16] = "";
	int k;
	uint64_t o, p;

	cr_assert_eq(rd_kafka_message_headers(m, &h), RD_KAFKA_RESP_ERR_NO_ERROR);
	cr_assert_eq(rd_kafka_header_get_last(h, "reason", &v, &n), RD_KAFKA_RESP_ERR_NO_ERROR);
	snprintf(reason, sizeof(reason), "%.*s", (int)n, (const char *)v);
	cr_assert_eq(rd_kafka_header_get_last(h, "source_offset", &v, &n),
	             RD_KAFKA_RESP_ERR_NO_ERROR);
	snprintf(off, sizeof(off), "%.*s", (int)n, (const char *)v);
	cr_assert_eq(rd_kafka_header_get_last(h, "source_partition", &v, &n),
	             RD_KAFKA_RESP_ERR_NO_ERROR);
	snprintf(part, sizeof(part), "%.*s", (int)n, (const char *)v);
	cr_assert_eq(rd_kafka_header_get_last(h, "detail", &v, &n), RD_KAFKA_RESP_ERR_NO_ERROR);
	cr_assert(n > 0);
	k = tally_reason_from_name(reason);
	cr_assert(k > 0, "dead letter reason \"%s\"", reason);
	o = strtoull(off, NULL, 10);
	p = strtoull(part, NULL, 10);
	cr_assert(p < N_PARTITIONS && o < l->stride);
	l->letters++;
	/* At least once: a re-sent dead letter names the same source position. */
	if (!l->seen[p * l->stride + o]) {
		l->seen[p * l->stride + o] = 1;
		l->by_reason[k]++;
		l->distinct++;
	}
}

static void
check_kafka(run_t *r, bool exactly_once_letters)
{
	latest_t *l = calloc(1, sizeof(*l));
	const tally_gen_truth_t *t = r->truth;

	l->gen = r->gen;
	l->stride = t->read + 1;
	l->seen = calloc(N_PARTITIONS * l->stride, 1);
	kt_consume_all(r->topics.topic[TALLY_KAFKA_RESULTS_CANDIDATE].name, on_candidate, l, 60);
	for (uint32_t i = 0; i < t->ncandidates; i++)
		cr_assert_eq(l->cand[i], t->candidates[i], "results topic: candidate %u", i);
	kt_consume_all(r->topics.topic[TALLY_KAFKA_RESULTS_LOCATION].name, on_region, l, 60);
	for (uint32_t i = 0; i < t->nregions; i++)
		cr_assert_eq(l->region[i], t->regions[i], "results topic: region %u", i);
	kt_consume_all(r->topics.topic[TALLY_KAFKA_REJECTED].name, on_letter, l, 60);
	cr_assert_eq(l->distinct, t->rejected_total, "distinct dead letters");
	if (exactly_once_letters)
		cr_assert_eq(l->letters, t->rejected_total, "dead letters");
	for (int k = 1; k < TALLY_REASON__COUNT; k++)
		cr_assert_eq(l->by_reason[k], t->rejected[k], "dead letters: %s", tally_reason_name(k));
	free(l->seen);
	free(l);
}

/* ---- tests ------------------------------------------------------------------------------ */

Test(tallyd, exact, .timeout = 300)
{
	run_t r;

	memset(&r, 0, sizeof(r));
	setup_run(&r, 20000, false);
	run_to_end(&r);
	check_pg(&r);
	check_kafka(&r, true);
	/* A second run finds nothing new: the same figures, no new dead letters. */
	run_to_end(&r);
	check_pg(&r);
	check_kafka(&r, true);
	teardown_run(&r);
}

Test(tallyd, crash, .timeout = 900)
{
	run_t r;
	unsigned seed = (unsigned)time(NULL);
	const char *env = getenv("TALLY_CRASH_VOTERS");
	uint64_t voters = env != NULL ? strtoull(env, NULL, 10) : 1600000;

	memset(&r, 0, sizeof(r));
	/* Most cuts then go to the vote journal, some straight to votes: both paths crash. */
	r.journal_above = "4000";
	setup_run(&r, voters, true);
	fprintf(stderr, "crash test seed %u\n", seed);
	srand(seed);
	{
		PGconn *c = pgtest_connect();
		const char *sql = "SELECT coalesce(sum(next_offset), 0) FROM checkpoint_offsets"
		                  " WHERE topic LIKE '%votes_topic'";
		long total = (long)r.truth->read, target = 0;

		/* Kill at 6 moments spread over the stream: each once the checkpoints have passed
		 * a random point further on, plus up to 300 ms, so every kill lands mid-stream
		 * (mid-batch, mid-checkpoint or mid-publish: wherever it falls). */
		for (int k = 0; k < 6; k++) {
			int pid, status;
			long stored;
			useconds_t extra = (useconds_t)(rand() % 300000);
			double t0 = test_now_s();

			target = (long)((double)total * (k + 0.5 + 0.5 * (double)rand() / RAND_MAX) / 7);
			pid = spawn_tallyd(&r, "0");
			while ((stored = pgtest_count(c, sql)) < target && test_now_s() - t0 < 120)
				usleep(20000);
			cr_assert(stored >= target && stored < total,
			          "kill %d would not land mid-stream (%ld of %ld checkpointed, target %ld)",
			          k + 1, stored, total, target);
			usleep(extra);
			kill(pid, SIGKILL);
			cr_assert_eq(waitpid(pid, &status, 0), pid);
			fprintf(stderr, "kill %d: after %.2f s, %ld of %ld votes checkpointed\n", k + 1,
			        test_now_s() - t0, pgtest_count(c, sql), total);
		}
		PQfinish(c);
	}
	run_to_end(&r);
	check_pg(&r);
	check_kafka(&r, false);
	teardown_run(&r);
}

/*
 * Every checkpoint into the vote journal, then tallyd killed three times while it moves
 * the journal into votes, and run to its end: the votes table holds every accepted vote
 * exactly once and the journal is empty.
 */
Test(tallyd, journal, .timeout = 600)
{
	run_t r;
	PGconn *c;
	long total;

	memset(&r, 0, sizeof(r));
	r.journal_above = "0";
	setup_run(&r, 300000, true);
	c = pgtest_connect();
	total = (long)r.truth->accepted;
	for (int k = 0; k < 3; k++) {
		int pid = spawn_tallyd(&r, "0"), status;
		long moved = 0, before = pgtest_count(c, "SELECT count(*) FROM votes");
		long target = before + 20000 + rand() % 20000;
		double t0 = test_now_s();

		/* The moves start once reading has caught up; kill in the middle of them. */
		while (((moved = pgtest_count(c, "SELECT count(*) FROM votes")) < target ||
		        checkpointed(c) < (long)r.truth->read) &&
		       test_now_s() - t0 < 180)
			usleep(20000);
		cr_assert(moved >= target && moved < total,
		          "kill %d would not land mid-move (%ld of %ld votes in the votes table)", k + 1,
		          moved, total);
		cr_assert(pgtest_count(c, "SELECT count(*) FROM vote_journal") > 0);
		kill(pid, SIGKILL);
		cr_assert_eq(waitpid(pid, &status, 0), pid);
		/* Journal and table together hold every accepted vote, none twice. */
		cr_assert_eq(pgtest_count(c, "SELECT (SELECT count(*) FROM votes) +"
		                             " (SELECT coalesce(sum(votes), 0) FROM vote_journal)"),
		             total, "kill %d", k + 1);
		fprintf(stderr, "journal kill %d: %ld of %ld votes moved\n", k + 1,
		        pgtest_count(c, "SELECT count(*) FROM votes"), total);
	}
	PQfinish(c);
	run_to_end(&r);
	check_pg(&r);
	check_kafka(&r, true);
	teardown_run(&r);
}

/* Run scripts/services ACTION SERVICE; false if the service is external (exit 4). */
static bool
services(const char *action, const char *which)
{
	char cmd[PATH_MAX + 64];
	int rc;

	snprintf(cmd, sizeof(cmd), "env -u TALLY_KAFKA_BROKERS -u TALLY_PG_DSN %s/../scripts/services "
	         "%s %s", TALLY_TEST_DIR, action, which);
	rc = system(cmd);
	cr_assert(WIFEXITED(rc) && (WEXITSTATUS(rc) == 0 || WEXITSTATUS(rc) == 4), "%s: %d", cmd,
	          rc);
	return WEXITSTATUS(rc) == 0;
}

static bool
alive(int pid)
{
	int status;

	return waitpid(pid, &status, WNOHANG) == 0;
}

static long
checkpointed(PGconn *c)
{
	return pgtest_count(c, "SELECT coalesce(sum(next_offset), 0) FROM checkpoint_offsets"
	                       " WHERE topic LIKE '%votes_topic'");
}

/*
 * The Kafka broker restarted mid-stream, then PostgreSQL stopped for 10 s mid-stream:
 * tallyd never exits and the final figures are exact.
 */
Test(tallyd, services_restart, .timeout = 900)
{
	run_t r;
	PGconn *c;
	int pid, status;
	long first, total;
	double t0;

	memset(&r, 0, sizeof(r));
	setup_registry(&r, 300000, true);
	first = produce(&r, 60000);
	pid = spawn_tallyd(&r, "0");
	c = pgtest_connect();
	t0 = test_now_s();
	while (checkpointed(c) < first / 2 && test_now_s() - t0 < 120)
		usleep(20000);
	PQfinish(c);

	/* The broker goes away for 3 s while tallyd reads and publishes. */
	if (!services("stop", "kafka")) {
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
		teardown_run(&r);
		cr_skip_test("kafka is external: cannot restart it");
	}
	sleep(3);
	cr_assert(alive(pid), "tallyd exited while Kafka was down");
	cr_assert(services("start", "kafka"));
	produce(&r, -1);
	take_truth(&r);
	total = (long)r.truth->read;

	/* PostgreSQL goes away for 10 s while votes are still to be checkpointed. */
	c = pgtest_connect();
	cr_assert(checkpointed(c) < total, "the stream ended before postgres could be stopped");
	PQfinish(c);
	if (!services("stop", "postgres")) {
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
		teardown_run(&r);
		cr_skip_test("postgres is external: cannot stop it");
	}
	for (int i = 0; i < 10; i++) {
		sleep(1);
		cr_assert(alive(pid), "tallyd exited while PostgreSQL was down");
	}
	cr_assert(services("start", "postgres"));
	c = pgtest_connect();
	t0 = test_now_s();
	while (checkpointed(c) < total && test_now_s() - t0 < 300) {
		cr_assert(alive(pid), "tallyd exited");
		usleep(50000);
	}
	PQfinish(c);
	kill(pid, SIGTERM);
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		dump_log(&r);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "tallyd status %d", status);
	dump_log(&r);
	/* The checkpoints after the outage held more votes than journal.above: SIGTERM leaves
	 * them in the vote journal; the next start moves them into votes and exits idle. */
	c = pgtest_connect();
	cr_assert_eq(pgtest_count(c, "SELECT (SELECT count(*) FROM votes) +"
	                             " (SELECT coalesce(sum(votes), 0) FROM vote_journal)"),
	             (long)r.truth->accepted);
	PQfinish(c);
	run_to_end(&r);
	check_pg(&r);
	check_kafka(&r, true);
	teardown_run(&r);
}

/*
 * A candidate of a new party and a voter register through candidates_topic and voters_topic
 * while tallyd runs; a vote of that voter for that candidate is then accepted and stored,
 * and the registrations are in PostgreSQL. A restart keeps all of it.
 */
Test(tallyd, live_registration, .timeout = 300)
{
	run_t r;
	tally_gen_opts_t o;
	tally_gen_t *other;
	tally_gen_voter_t v;
	tally_gen_voter_fields_t vf;
	tally_gen_candidate_t c;
	char err[256], buf[TALLY_GEN_MSG_MAX], cand[TALLY_GEN_MSG_MAX];
	size_t len;
	PGconn *pg;
	int pid, status;
	double t0;

	memset(&r, 0, sizeof(r));
	setup_run(&r, 5000, false);
	/* Another seed: a voter and a candidate nobody registered, with a party of their own. */
	tally_gen_opts_init(&o);
	o.seed = SEED + 1000;
	o.voters = 100;
	o.candidates = 4;
	o.parties = 4;
	other = tally_gen_new(&o, err, sizeof(err));
	cr_assert_not_null(other);
	tally_gen_voter(other, 0, &v);
	cr_assert(!v.underage);
	tally_gen_candidate(other, 3, &c);   /* the fourth party: "4th" is not in the registry */

	pid = spawn_tallyd(&r, "0");
	pg = pgtest_connect();
	t0 = test_now_s();
	while (checkpointed(pg) < (long)r.truth->read && test_now_s() - t0 < 60)
		usleep(50000);

	len = tally_gen_candidate_json(other, 3, cand, sizeof(cand));
	kt_produce_one(r.topics.topic[TALLY_KAFKA_CANDIDATES].name, c.candidate_id, cand, len);
	len = tally_gen_voter_json(other, 0, buf, sizeof(buf));
	kt_produce_one(r.topics.topic[TALLY_KAFKA_VOTERS].name, v.voter_id, buf, len);
	/* Registrations are taken in once stored: wait for both rows. */
	{
		const char *params[2] = {v.voter_id, c.candidate_id};

		t0 = test_now_s();
		for (;;) {
			PGresult *q = PQexecParams(pg, "SELECT (SELECT count(*) FROM voters WHERE"
			                               " voter_id = $1::uuid) + (SELECT count(*) FROM"
			                               " candidates WHERE candidate_id = $2::uuid)",
			                           2, NULL, params, NULL, NULL, 0);
			long n = strtol(PQgetvalue(q, 0, 0), NULL, 10);

			PQclear(q);
			if (n == 2)
				break;
			cr_assert(test_now_s() - t0 < 30, "registrations not stored within 30 s");
			usleep(50000);
		}
	}
	usleep(300000);
	tally_gen_voter_fields(&v, &vf);
	len = tally_gen_vote_json(&vf, &c, tally_gen_get_opts(r.gen)->opens_at + 3600,
	                          TALLY_GEN_MALFORMED_NONE, 0, false, buf, sizeof(buf));
	kt_produce_one(r.topics.topic[TALLY_KAFKA_VOTES].name, v.voter_id, buf, len);
	{
		const char *params[2] = {v.voter_id, c.candidate_id};

		t0 = test_now_s();
		for (;;) {
			PGresult *q = PQexecParams(pg, "SELECT count(*) FROM votes WHERE voter_id = $1::uuid"
			                               " AND candidate_id = $2::uuid",
			                           2, NULL, params, NULL, NULL, 0);
			long n = strtol(PQgetvalue(q, 0, 0), NULL, 10);

			PQclear(q);
			if (n == 1)
				break;
			if (test_now_s() - t0 > 30)
				dump_log(&r);
			cr_assert(test_now_s() - t0 < 30, "the new voter's vote was not stored within 30 s");
			usleep(50000);
		}
	}
	/* Stored: in votes or, until the mover has moved it, in the vote journal. */
	cr_assert_eq(pgtest_count(pg, "SELECT (SELECT count(*) FROM votes) +"
	                              " (SELECT coalesce(sum(votes), 0) FROM vote_journal)"),
	             (long)r.truth->accepted + 1);
	kill(pid, SIGTERM);
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	/* A restart restores the new registrations and the vote (nothing new is counted). */
	run_to_end(&r);
	cr_assert_eq(pgtest_count(pg, "SELECT count(*) FROM votes"), (long)r.truth->accepted + 1);
	cr_assert_eq(pgtest_count(pg, "SELECT count(*) FROM parties"), 4);
	PQfinish(pg);
	tally_gen_destroy(other);
	teardown_run(&r);
}

/* ---- HTTP ------------------------------------------------------------------------------- */

typedef struct body {
	char *p;
	size_t n;
} body_t;

static size_t
body_write(char *data, size_t size, size_t nmemb, void *arg)
{
	body_t *b = arg;
	size_t n = size * nmemb;
	char *p = realloc(b->p, b->n + n + 1);

	cr_assert_not_null(p);
	memcpy(p + b->n, data, n);
	b->n += n;
	p[b->n] = '\0';
	b->p = p;
	return n;
}

/* One request; returns the status, the body in *out (caller frees). */
static long
http(const char *method, int port, const char *path, const char *token, char **out)
{
	CURL *c = curl_easy_init();
	struct curl_slist *h = NULL;
	body_t b = {NULL, 0};
	char url[256], auth[128];
	long status = 0;

	snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, body_write);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
	if (strcmp(method, "POST") == 0)
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
	if (token != NULL) {
		snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
		h = curl_slist_append(h, auth);
		curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	}
	cr_assert_eq(curl_easy_perform(c), CURLE_OK, "%s %s", method, url);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
	if (out != NULL)
		*out = b.p != NULL ? b.p : strdup("");
	else
		free(b.p);
	return status;
}

/* The port tallyd logged ("... (port N; ..."), waiting for the line. */
static int
logged_port(run_t *r)
{
	for (double t0 = test_now_s(); test_now_s() - t0 < 60; usleep(50000)) {
		int port = tt_log_port(r->log, 0);

		if (port > 0)
			return port;
	}
	cr_assert_fail("tallyd did not log its http port");
	return 0;
}

/*
 * tallyd --http: /readyz once partitions are assigned, /api/results and /metrics equal the
 * ground truth once everything is counted (promtool finds nothing wrong with /metrics),
 * consumer lag 0, admin actions need the token; closing the polls makes a later vote a
 * polls_closed dead letter.
 */
Test(tallyd, http, .timeout = 300)
{
	run_t r;
	const char *args_fmt[] = {"--topic-prefix", NULL, NULL, "--group-id", NULL, "--http",
	                          "127.0.0.1:0", "--admin-token", "s3cret-token", NULL};
	char *body;
	json_t *res;
	int pid, port, status;
	PGconn *pg;
	double t0;

	memset(&r, 0, sizeof(r));
	setup_run(&r, 5000, false);
	args_fmt[1] = r.prefix;
	args_fmt[2] = r.pgopt;
	args_fmt[4] = r.prefix;
	pid = test_spawn("tallyd", args_fmt, r.log);
	cr_assert(pid > 0);
	port = logged_port(&r);
	cr_assert_eq(http("GET", port, "/healthz", NULL, NULL), 200);
	for (t0 = test_now_s(); http("GET", port, "/readyz", NULL, NULL) != 200; usleep(50000))
		cr_assert(test_now_s() - t0 < 60, "never ready");
	pg = pgtest_connect();
	for (t0 = test_now_s(); checkpointed(pg) < (long)r.truth->read; usleep(50000))
		cr_assert(test_now_s() - t0 < 60);
	usleep(400000);     /* a render or two */
	cr_assert_eq(http("GET", port, "/api/results", NULL, &body), 200);
	res = json_loads(body, 0, NULL);
	cr_assert_not_null(res, "%s", body);
	cr_assert_eq(json_integer_value(json_object_get(res, "accepted")), (json_int_t)r.truth->accepted,
	             "%s", body);
	cr_assert_eq(json_integer_value(json_object_get(json_object_get(res, "rejected"),
	                                                "duplicate")),
	             (json_int_t)r.truth->rejected[TALLY_REASON_DUPLICATE]);
	json_decref(res);
	free(body);
	/* The lag is refreshed from librdkafka's watermarks every 250 ms: wait for one. */
	for (t0 = test_now_s();; usleep(50000)) {
		cr_assert_eq(http("GET", port, "/metrics", NULL, &body), 200);
		if (strstr(body, "\ntally_consumer_lag_messages{partition=\"0\"} 0\n") != NULL)
			break;
		cr_assert(test_now_s() - t0 < 10, "lag never 0: %s", body);
		free(body);
	}
	{
		char want[128];

		snprintf(want, sizeof(want), "\ntally_votes_accepted_total %llu\n",
		         (unsigned long long)r.truth->accepted);
		cr_assert_not_null(strstr(body, want), "%s", body);
		cr_assert_not_null(strstr(body, "\ntally_consumer_lag_messages{partition=\"0\"} 0\n"),
		                   "%s", body);
		cr_assert_not_null(strstr(body, "\ntally_checkpoints_total "));
		cr_assert_not_null(strstr(body, "\ntally_postgres_up 1\n"));
		/* No voter data: no voter id of the registry appears. */
		{
			tally_gen_voter_t v;

			tally_gen_voter(r.gen, 1, &v);
			cr_assert_null(strstr(body, v.voter_id));
		}
	}
	{
		FILE *f = popen("promtool check metrics", "w");

		if (f != NULL) {
			fputs(body, f);
			cr_assert_eq(pclose(f), 0, "promtool check metrics found problems");
		}
	}
	free(body);

	/* Admin: no token 401, wrong token 401, right token closes the polls. */
	cr_assert_eq(http("POST", port, "/api/election/close", NULL, NULL), 401);
	cr_assert_eq(http("POST", port, "/api/election/close", "wrong", NULL), 401);
	cr_assert_eq(http("POST", port, "/api/election/close", "s3cret-token", NULL), 200);
	cr_assert_eq(http("POST", port, "/api/election/close", "s3cret-token", NULL), 409);
	cr_assert_eq(pgtest_count(pg, "SELECT count(*) FROM elections WHERE status = 'closed'"), 1);
	/* A new voter's vote now counts as polls_closed. */
	{
		tally_gen_voter_t v;
		tally_gen_voter_fields_t vf;
		tally_gen_candidate_t c;
		char buf[TALLY_GEN_MSG_MAX];
		size_t len;

		tally_gen_voter(r.gen, 4999, &v);
		tally_gen_voter_fields(&v, &vf);
		tally_gen_candidate(r.gen, 0, &c);
		len = tally_gen_vote_json(&vf, &c, tally_gen_get_opts(r.gen)->opens_at + 60,
		                          TALLY_GEN_MALFORMED_NONE, 0, false, buf, sizeof(buf));
		kt_produce_one(r.topics.topic[TALLY_KAFKA_VOTES].name, v.voter_id, buf, len);
	}
	for (t0 = test_now_s();; usleep(50000)) {
		long closed;

		cr_assert_eq(http("GET", port, "/api/results", NULL, &body), 200);
		res = json_loads(body, 0, NULL);
		closed = (long)json_integer_value(json_object_get(json_object_get(res, "rejected"),
		                                                  "polls_closed"));
		cr_assert_str_eq(json_string_value(json_object_get(json_object_get(res, "election"),
		                                                   "status")),
		                 "closed");
		json_decref(res);
		free(body);
		if (closed == 1)
			break;
		cr_assert(test_now_s() - t0 < 30, "the vote after closing was not counted as "
		          "polls_closed");
	}
	kill(pid, SIGTERM);
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	PQfinish(pg);
	teardown_run(&r);
}

/* ---- registry images ------------------------------------------------------------------ */

/* How many times needle occurs in tallyd's log so far. */
static int
log_count(run_t *r, const char *needle)
{
	return tt_log_count(r->log, 0, needle);
}

/*
 * The first start reads every voters row and writes the registry image in the background;
 * the next start restores from it, exactly; a damaged image is read past (every row); after
 * a registration made straight in PostgreSQL the image is not used and every row is read.
 */
Test(tallyd, registry_image, .timeout = 300)
{
	run_t r;
	PGconn *pg;
	int pid, status;
	double t0;

	memset(&r, 0, sizeof(r));
	setup_run(&r, 20000, true);
	pid = spawn_tallyd(&r, "0");
	t0 = test_now_s();
	while (log_count(&r, "tallyd: registry image ") == 0 && test_now_s() - t0 < 60)
		usleep(50000);
	kill(pid, SIGTERM);
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "tallyd status %d", status);
	if (log_count(&r, "voters (") != 1 || log_count(&r, "registry image 1 written: 20000 "
	                                               "voters, 1 parts") != 1)
		dump_log(&r);
	cr_assert_eq(log_count(&r, "every voters row, no registry image of generation"), 1);
	cr_assert_eq(log_count(&r, "registry image 1 written: 20000 voters, 1 parts"), 1);
	pg = pgtest_connect();
	cr_assert_eq(pgtest_count(pg, "SELECT count(*) FROM registry_image_complete"), 1);
	cr_assert_eq(pgtest_count(pg, "SELECT sum(voters) FROM registry_image_parts"), 20000);

	/* The restart reads the image, and nothing is counted twice. */
	run_to_end(&r);
	if (log_count(&r, "20000 voters (") != 2 || log_count(&r, "registry image 1: 1 parts") != 1)
		dump_log(&r);
	cr_assert_eq(log_count(&r, "registry image 1: 1 parts"), 1);
	cr_assert_eq(log_count(&r, "written:"), 1);
	cr_assert_eq(pgtest_count(pg, "SELECT count(*) FROM votes"), (long)r.truth->accepted);

	/* A damaged image: logged, deleted, and read past with every voters row. */
	pgtest_exec_ok(pg, "UPDATE registry_image_parts SET data = substring(data FROM 1 FOR "
	                   "length(data) - 1)");
	run_to_end(&r);
	if (log_count(&r, "could not restore registry image 1: part 0: could not add packed "
	                  "voter") != 1)
		dump_log(&r);
	cr_assert_eq(log_count(&r, "could not restore registry image 1: part 0: could not add "
	                           "packed voter 20000: the record is cut short"), 1);
	cr_assert_eq(log_count(&r, "reading every voters row instead"), 1);
	cr_assert_eq(log_count(&r, "20000 voters ("), 3);
	cr_assert_eq(log_count(&r, "every voters row, no registry image of generation"), 2);
	cr_assert_eq(pgtest_count(pg, "SELECT count(*) FROM registry_images WHERE image_id = 1"), 0);
	cr_assert_eq(pgtest_count(pg, "SELECT count(*) FROM votes"), (long)r.truth->accepted);

	/* A registration outside tallyd: the next start reads every row (20001 voters). */
	pgtest_exec_ok(pg, "INSERT INTO voters (voter_id, date_of_birth, address_state) VALUES "
	                   "('00000000-0000-4000-8000-00000000abcd', '1970-01-01', 'Elsewhere')");
	run_to_end(&r);
	if (log_count(&r, "20001 voters (") != 1)
		dump_log(&r);
	cr_assert_eq(log_count(&r, "20001 voters ("), 1);
	cr_assert_eq(log_count(&r, "every voters row, no registry image of generation"), 3);
	cr_assert_eq(pgtest_count(pg, "SELECT count(*) FROM votes"), (long)r.truth->accepted);
	PQfinish(pg);
	teardown_run(&r);
}

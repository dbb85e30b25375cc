/*
 * tallyd --cluster: several instances of one consumer group, against the real Kafka and
 * PostgreSQL.
 *
 * tally-gen registers a seeded election (60,000 voters, 5 candidates, 12 regions, votes_topic
 * of 4 partitions); tally-sim casts its votes keyed by voter_id at a steady 1,500 messages/s
 * (its default fault mix). Every instance runs with --http 127.0.0.1:0, a 6 s Kafka session
 * (heartbeats every second, so one slow answer on a busy machine does not end it), a 20 s
 * rebalance timeout (max.poll.interval.ms: the most a stopped member can hold a rebalance up)
 * and checkpoint.journal.above high (every vote row by row in the votes table). All along,
 * the test reads each running instance's /api/results every 100 ms: on each instance no
 * version and no figure (read, accepted, rejected_total, each reason, candidate, party,
 * region) ever goes down.
 * - scale: instance a alone, then b joins (and takes a share of the partitions), then a is
 *   stopped with SIGTERM (b takes everything), the stream ends, b counts to the end and is
 *   stopped: the votes table, each partition's stored state summed, the stored offsets and
 *   b's /api/results equal tally-sim's truth exactly.
 * - zombie: a and b share the partitions; b is stopped with SIGSTOP past the session
 *   timeout, a claims b's partitions; SIGCONT: b exits with status 3 and logs "fenced"; a
 *   counts to the end: everything exact, nothing counted twice.
 */
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
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

#include <tally/kafka.h>

#include "kafkatest.h"
#include "pgtest.h"
#include "services.h"
#include "tallydtest.h"
#include "testutil.h"

#define GEN_SEED "29"
#define VOTERS "60000"
#define CANDIDATES "5"
#define REGIONS "12"
#define N_PARTITIONS 4
#define RATE "1500"
#define SESSION_MS "6000"

typedef struct inst {
	const char *name;
	int pid;                 /* 0: not running */
	int status;              /* its wait status, once it ended */
	char log[256];
	int port;
	tt_monotonic_t mono;
	json_t *last;            /* its last /api/results reading */
} inst_t;

typedef struct run {
	char prefix[64], pgopt[160], tallyd_pgopt[256], simlog[256], truth_path[256];
	tally_kafka_topics_t topics;
	int sim;
	double t0;
	inst_t a, b;
} run_t;

static char out[1 << 16];

static void
setup(run_t *r, const char *tag)
{
	char err[256], parts[8];

	memset(r, 0, sizeof(*r));
	r->t0 = test_now_s();
	cr_assert_eq(curl_global_init(CURL_GLOBAL_DEFAULT), CURLE_OK);
	pgtest_schema_create();
	snprintf(r->prefix, sizeof(r->prefix), "tcl%s%d_%ld_", tag, (int)getpid(), (long)time(NULL));
	snprintf(r->pgopt, sizeof(r->pgopt), "--pg.options=%s", pgtest_options());
	/* tallyd's: a stopped instance's session idle in a transaction (or stuck in a statement,
	 * e.g. a COPY) is ended, so it cannot hold its partitions' rows locked (README). */
	snprintf(r->tallyd_pgopt, sizeof(r->tallyd_pgopt), "--pg.options=%s "
	         "-cidle_in_transaction_session_timeout=5000 -cstatement_timeout=20000",
	         pgtest_options());
	snprintf(r->simlog, sizeof(r->simlog), "/tmp/%stally-sim.log", r->prefix);
	snprintf(r->truth_path, sizeof(r->truth_path), "/tmp/%struth.json", r->prefix);
	cr_assert_eq(tally_kafka_topics_init(&r->topics, r->prefix, N_PARTITIONS, err, sizeof(err)),
	             0);
	snprintf(parts, sizeof(parts), "%d", N_PARTITIONS);
	{
		const char *args[] = {"--seed", GEN_SEED, "--voters", VOTERS, "--candidates",
		                      CANDIDATES, "--regions", REGIONS, "--partitions", parts,
		                      "--topic-prefix", r->prefix, r->pgopt, "--quiet", NULL};

		cr_assert_eq(test_run("tally-gen", args, out, sizeof(out)), 0, "tally-gen: %s", out);
	}
	r->a.name = "a";
	r->b.name = "b";
	tt_monotonic_init(&r->a.mono, "a's /api/results");
	tt_monotonic_init(&r->b.mono, "b's /api/results");
	snprintf(r->a.log, sizeof(r->a.log), "/tmp/%stallyd-a.log", r->prefix);
	snprintf(r->b.log, sizeof(r->b.log), "/tmp/%stallyd-b.log", r->prefix);
}

static void
start_sim(run_t *r)
{
	const char *args[] = {"--topic-prefix", r->prefix, r->pgopt, "--truth", r->truth_path,
	                      "--rate", RATE, "--seed", GEN_SEED, "--quiet", NULL};

	r->sim = test_spawn("tally-sim", args, r->simlog);
	cr_assert(r->sim > 0);
}

static void
spawn(run_t *r, inst_t *in)
{
	const char *args[] = {"--cluster", "--topic-prefix", r->prefix, r->tallyd_pgopt,
	                      "--group-id", r->prefix, "--instance-id", in->name,
	                      "--http", "127.0.0.1:0",
	                      "--kafka.session.timeout.ms=" SESSION_MS,
	                      "--kafka.heartbeat.interval.ms=1000",
	                      "--kafka.max.poll.interval.ms=20000",
	                      "--checkpoint.journal.above=1000000000", NULL};

	in->port = 0;
	in->pid = test_spawn("tallyd", args, in->log);
	cr_assert(in->pid > 0);
	fprintf(stderr, "%.1f s: instance %s started (pid %d, log %s)\n", test_now_s() - r->t0,
	        in->name, in->pid, in->log);
}

/* Partitions the instance holds now, from its log: assigned minus revoked. */
static long
owned(const inst_t *in)
{
	return tt_log_sum_after(in->log, 0, "tallyd: assigned ") -
	       tt_log_sum_after(in->log, 0, "tallyd: revoked ");
}

static void
kill_all(run_t *r)
{
	inst_t *all[2] = {&r->a, &r->b};
	int status;

	for (int i = 0; i < 2; i++)
		if (all[i]->pid > 0) {
			kill(all[i]->pid, SIGCONT);
			kill(all[i]->pid, SIGKILL);
			waitpid(all[i]->pid, &status, 0);
			all[i]->pid = 0;
		}
	if (r->sim > 0) {
		kill(r->sim, SIGKILL);
		waitpid(r->sim, &status, 0);
		r->sim = 0;
	}
}

static void fail_run(run_t *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Stop everything, show both logs, fail. */
static void
fail_run(run_t *r, const char *fmt, ...)
{
	char msg[768];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	kill_all(r);
	tt_dump_tail(r->a.log, 12000);
	tt_dump_tail(r->b.log, 12000);
	cr_assert_fail("%s", msg);
}

/* One reading of an instance's /api/results, checked by its monotonic reader. */
static void
read_results(run_t *r, inst_t *in)
{
	char *body = NULL;
	json_t *o;

	if (in->pid <= 0)
		return;
	if (in->port == 0 && (in->port = tt_log_port(in->log, 0)) == 0)
		return;
	if (tt_http_get(in->port, "/api/results", &body) != 200 || body == NULL) {
		free(body);
		return;
	}
	o = json_loads(body, 0, NULL);
	free(body);
	if (o == NULL)
		return;
	if (!tt_monotonic_feed(&in->mono, o))
		fail_run(r, "%s", in->mono.failure);
	json_decref(in->last);
	in->last = o;
}

/* Has the instance ended by itself? (its status is kept) */
static bool
ended(inst_t *in)
{
	if (in->pid <= 0)
		return true;
	if (waitpid(in->pid, &in->status, WNOHANG) != in->pid)
		return false;
	in->pid = 0;
	return true;
}

static bool
sim_done(run_t *r)
{
	int status;

	if (r->sim == 0)
		return true;
	if (waitpid(r->sim, &status, WNOHANG) != r->sim)
		return false;
	r->sim = 0;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		tt_dump_tail(r->simlog, 4096);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "tally-sim: status %d", status);
	return true;
}

/* Read every running instance once, then wait 100 ms; an instance that ends by itself
 * (unless expected) fails the test. */
static void
pump(run_t *r, const inst_t *may_end)
{
	inst_t *all[2] = {&r->a, &r->b};

	for (int i = 0; i < 2; i++) {
		if (all[i]->pid > 0 && all[i] != may_end && ended(all[i])) {
			fail_run(r, "instance %s ended by itself (status %d)", all[i]->name,
			         all[i]->status);
		}
		read_results(r, all[i]);
	}
	sim_done(r);
	usleep(100000);
}

/* As pump(), reading only in (the other is stopped with SIGSTOP: it would not answer). */
static void
pump_one(run_t *r, inst_t *in)
{
	if (ended(in))
		fail_run(r, "instance %s ended by itself (status %d)", in->name, in->status);
	read_results(r, in);
	sim_done(r);
	usleep(100000);
}

/* Stop an instance with SIGTERM and wait for it (reading the others meanwhile). */
static void
stop(run_t *r, inst_t *in)
{
	double t0 = test_now_s();

	kill(in->pid, SIGTERM);
	while (!ended(in)) {
		pump(r, in);
		if (test_now_s() - t0 > 90)
			fail_run(r, "instance %s did not stop within 90 s of SIGTERM", in->name);
	}
	if (!WIFEXITED(in->status) || WEXITSTATUS(in->status) != 0)
		tt_dump_tail(in->log, 12000);
	cr_assert(WIFEXITED(in->status) && WEXITSTATUS(in->status) == 0,
	          "instance %s: status %d after SIGTERM", in->name, in->status);
	fprintf(stderr, "%.1f s: instance %s stopped (%.1f s after SIGTERM)\n",
	        test_now_s() - r->t0, in->name, test_now_s() - t0);
}

#define WAIT_FOR(r, cond, secs, what)                                                        \
	do {                                                                                     \
		double t_ = test_now_s();                                                            \
		while (!(cond)) {                                                                    \
			pump((r), NULL);                                                                 \
			if (test_now_s() - t_ > (secs))                                                  \
				fail_run((r), "not within " #secs " s: %s", (what));                          \
		}                                                                                    \
		fprintf(stderr, "%.1f s: %s (%.1f s)\n", test_now_s() - (r)->t0, (what),           \
		        test_now_s() - t_);                                                          \
	} while (0)

/* True once neither instance has logged an assignment for 3 s. */
static bool
settled(run_t *r)
{
	static int last = -1;
	static double since;
	int now = tt_log_count(r->a.log, 0, "tallyd: assigned ") +
	          tt_log_count(r->b.log, 0, "tallyd: assigned ");

	if (now != last) {
		last = now;
		since = test_now_s();
	}
	return test_now_s() - since >= 3.0;
}

static json_t *
load_truth(run_t *r)
{
	json_t *truth = json_load_file(r->truth_path, 0, NULL);

	cr_assert_not_null(truth, "no truth from tally-sim");
	fprintf(stderr, "truth: %" PRId64 " messages, %" PRId64 " accepted, %" PRId64 " rejected\n",
	        tt_truth_int(truth, "messages"), tt_truth_int(truth, "accepted"),
	        tt_truth_int(truth, "rejected_total"));
	return truth;
}

static bool
shows_truth(const inst_t *in, json_t *truth)
{
	char why[256];

	return in->last != NULL && tt_results_equal_truth(in->last, truth, why, sizeof(why));
}

/* The end: PostgreSQL and the last reading of in equal the truth; no reader saw a drop. */
static void
check_end(run_t *r, const inst_t *in, json_t *truth)
{
	PGconn *c = pgtest_connect();
	char why[512];

	cr_assert(tt_results_equal_truth(in->last, truth, why, sizeof(why)), "%s's /api/results: %s",
	          in->name, why);
	cr_assert(tt_pg_equal_truth(c, truth, N_PARTITIONS, why, sizeof(why)), "postgres: %s", why);
	PQfinish(c);
	cr_assert_eq(r->a.mono.failure[0], '\0', "%s", r->a.mono.failure);
	cr_assert_eq(r->b.mono.failure[0], '\0', "%s", r->b.mono.failure);
	fprintf(stderr, "readings checked: a %ld, b %ld\n", r->a.mono.readings,
	        r->b.mono.readings);
}

static void
teardown(run_t *r)
{
	const char *names[TALLY_KAFKA_N_TOPICS];

	kill_all(r);
	json_decref(r->a.last);
	json_decref(r->b.last);
	for (int i = 0; i < TALLY_KAFKA_N_TOPICS; i++)
		names[i] = r->topics.topic[i].name;
	kt_delete_topics(names, TALLY_KAFKA_N_TOPICS);
	pgtest_schema_drop();
	unlink(r->a.log);
	unlink(r->b.log);
	unlink(r->simlog);
	unlink(r->truth_path);
	curl_global_cleanup();
}

Test(tallyd_cluster, scale_1_2_1, .timeout = 900)
{
	static run_t r;
	json_t *truth;
	long a_before;

	setup(&r, "s");
	start_sim(&r);
	spawn(&r, &r.a);
	WAIT_FOR(&r, owned(&r.a) == N_PARTITIONS, 90, "a counts every partition");
	WAIT_FOR(&r, r.a.mono.readings >= 20, 60, "a's results read 20 times");
	spawn(&r, &r.b);
	WAIT_FOR(&r, owned(&r.b) >= 1 && owned(&r.a) + owned(&r.b) == N_PARTITIONS, 90,
	         "b takes a share, a keeps the rest");
	fprintf(stderr, "shares: a %ld, b %ld partitions\n", owned(&r.a), owned(&r.b));
	cr_assert_geq(owned(&r.a), 1, "a kept no partition");
	a_before = r.a.mono.readings;
	{
		long b_before = r.b.mono.readings;

		WAIT_FOR(&r, r.a.mono.readings >= a_before + 20 && r.b.mono.readings >= b_before + 20,
		         60, "both read 20 more times while both count");
	}
	cr_assert(r.sim != 0, "the stream ended before both counted: slow the rate down");
	stop(&r, &r.a);
	WAIT_FOR(&r, owned(&r.b) == N_PARTITIONS, 90, "b counts every partition");
	WAIT_FOR(&r, sim_done(&r), 300, "tally-sim done");
	truth = load_truth(&r);
	WAIT_FOR(&r, shows_truth(&r.b, truth), 180, "b shows the whole election's truth");
	stop(&r, &r.b);
	check_end(&r, &r.b, truth);
	json_decref(truth);
	teardown(&r);
}

Test(tallyd_cluster, zombie, .timeout = 900)
{
	static run_t r;
	json_t *truth;
	long mark;
	double t_stop;
	PGconn *pg;
	char owner_like[64], woke_at[64];

	setup(&r, "z");
	start_sim(&r);
	spawn(&r, &r.a);
	WAIT_FOR(&r, owned(&r.a) == N_PARTITIONS, 90, "a counts every partition");
	spawn(&r, &r.b);
	WAIT_FOR(&r, owned(&r.b) >= 1 && owned(&r.a) + owned(&r.b) == N_PARTITIONS, 90,
	         "b takes a share, a keeps the rest");
	WAIT_FOR(&r, r.b.mono.readings >= 10, 60, "b's results read 10 times");
	/* A member stopped inside a rebalance would hold the group up to the rebalance timeout:
	 * stop b once the group has settled (no assignment for 3 s). */
	WAIT_FOR(&r, settled(&r), 60, "the group settled");
	cr_assert(r.sim != 0, "the stream ended before both counted: slow the rate down");

	/* b stops answering past its session: a claims b's partitions. */
	mark = tt_file_size(r.a.log);
	kill(r.b.pid, SIGSTOP);
	t_stop = test_now_s();
	fprintf(stderr, "%.1f s: b stopped (SIGSTOP) holding %ld partitions\n", t_stop - r.t0,
	        owned(&r.b));
	while (tt_log_count(r.a.log, mark, "claimed ") == 0 && test_now_s() - t_stop < 40)
		pump_one(&r, &r.a);
	cr_assert_gt(tt_log_count(r.a.log, mark, "claimed "), 0,
	             "a did not claim b's partitions within 40 s of b's SIGSTOP");
	fprintf(stderr, "%.1f s: a claimed b's partitions %.1f s after b's SIGSTOP\n",
	        test_now_s() - r.t0, test_now_s() - t_stop);
	/* Let a count b's partitions for 2 s, then wake the zombie. */
	for (int i = 0; i < 20; i++)
		pump_one(&r, &r.a);
	pg = pgtest_connect();
	snprintf(owner_like, sizeof(owner_like), "tallyd@%%:%d", r.b.pid);
	{
		PGresult *res = PQexec(pg, "SELECT now()::text");

		cr_assert_eq(PQresultStatus(res), PGRES_TUPLES_OK);
		snprintf(woke_at, sizeof(woke_at), "%s", PQgetvalue(res, 0, 0));
		PQclear(res);
	}
	kill(r.b.pid, SIGCONT);
	{
		double t0 = test_now_s();

		while (!ended(&r.b)) {
			pump(&r, &r.b);
			if (test_now_s() - t0 > 60)
				fail_run(&r, "the zombie %s did not exit within 60 s of SIGCONT", "b");
		}
		fprintf(stderr, "%.1f s: b exited %.1f s after SIGCONT, status %d\n",
		        test_now_s() - r.t0, test_now_s() - t0, r.b.status);
	}
	if (!WIFEXITED(r.b.status) || WEXITSTATUS(r.b.status) != 3)
		tt_dump_tail(r.b.log, 12000);
	cr_assert(WIFEXITED(r.b.status) && WEXITSTATUS(r.b.status) == 3,
	          "the zombie's status is %d, not exit 3", r.b.status);
	cr_assert_gt(tt_log_count(r.b.log, 0, "fenced"), 0, "the zombie did not log \"fenced\"");
	/* It committed nothing after it woke: no state of its own, no partition of its own. */
	{
		const char *params[2] = {owner_like, woke_at};
		PGresult *res = PQexecParams(pg, "SELECT (SELECT count(*) FROM partition_states WHERE "
		                                 "owner LIKE $1 AND committed_at >= $2::timestamptz), "
		                                 "(SELECT count(*) FROM partition_owners WHERE owner "
		                                 "LIKE $1)", 2, NULL, params, NULL, NULL, 0);

		cr_assert_eq(PQresultStatus(res), PGRES_TUPLES_OK, "%s", PQerrorMessage(pg));
		cr_assert_str_eq(PQgetvalue(res, 0, 0), "0", "the zombie committed a partition state "
		                 "after it woke");
		cr_assert_str_eq(PQgetvalue(res, 0, 1), "0", "the zombie still owns a partition");
		PQclear(res);
	}
	PQfinish(pg);

	WAIT_FOR(&r, owned(&r.a) == N_PARTITIONS, 90, "a counts every partition");
	WAIT_FOR(&r, sim_done(&r), 300, "tally-sim done");
	truth = load_truth(&r);
	WAIT_FOR(&r, shows_truth(&r.a, truth), 180, "a shows the whole election's truth");
	stop(&r, &r.a);
	check_end(&r, &r.a, truth);
	json_decref(truth);
	teardown(&r);
}

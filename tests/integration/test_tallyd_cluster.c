/*
 * tallyd --cluster: several instances of one consumer group, against the real Kafka and
 * PostgreSQL.
 *
 * tally-gen registers a seeded election (60,000 voters, 5 candidates, 12 regions, votes_topic
 * of 4 partitions); tally-sim casts its votes at a steady 1,000 messages/s (about 45 s) (its default fault
 * mix) with --rekey-rate 0.1: a tenth of the messages keyed by a random key instead of
 * voter_id, so a voter's vote and duplicate may arrive on partitions other instances own
 * (tallyd's repartition topic, <votes_topic>-by-voter, brings them together; tally-sim then
 * keeps a duplicate's candidate, so the truth is the same whichever of the two counts).
 * Every instance runs with --http 127.0.0.1:0, a 6 s Kafka session (heartbeats every
 * second), a 20 s rebalance timeout (max.poll.interval.ms: the most a stopped member can
 * hold a rebalance up) and checkpoint.journal.above high (every vote row by row in the votes
 * table). All along the test reads, in its main loop:
 * - each running instance's /api/results every 100 ms and its /api/stream (Server-Sent
 *   Events; the event id is the data's version): on each instance no figure (read,
 *   accepted, rejected_total, each reason, candidate, party, region) and no version goes
 *   down within one start of it (a violation fails at once), and neither goes down across
 *   its restarts either (checked at the end, after the exact checks, so a run shows both):
 *   a version is the sum of the parts' committed versions plus the registry's entries
 *   (apps/tallyd/cluster.c), both durable. Versions are not compared between instances
 *   (one may have read a newer state than another);
 * - the three results topics from the beginning: per key the figure never goes down.
 * Tests:
 * - scale_1_3_1: instance a alone, then b and c join (each takes a share of the
 *   partitions), then b and c are stopped with SIGTERM (a takes everything back), the
 *   stream ends, a counts to the end and is stopped.
 * - zombie: a and b share the partitions; b is stopped with SIGSTOP past the session
 *   timeout, a claims b's partitions; SIGCONT: b exits with status 3 and logs "fenced", and
 *   committed nothing after it woke; a counts to the end.
 * - kill: a, b and c count while tally-sim streams; at 5 or more seeded random moments a
 *   random instance is killed with SIGKILL and started again at once with the same
 *   --instance-id (TALLY_CLUSTER_KILL_SEED=N replays a run's choices; the seed is printed).
 *   Then every instance counts to the end and all are stopped with SIGTERM.
 * Each ends exact against tally-sim's truth: the votes table per candidate and region (one
 * per voter), each partition's stored state summed (read, accepted, each reason, each
 * candidate), the stored offsets, the newest results message per key, and the last
 * /api/results of every instance still running at the end (in kill, all three: the same
 * figures on each); then tally-dq --truth passes every check.
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

#include <tally/gen.h>
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
#define RATE "1000"
#define REKEY_RATE "0.1"
#define SESSION_MS "6000"
#define MAX_INST 3
#define POLL_EVERY_S 0.1
#define MIN_KILLS 5

typedef struct inst {
	char name[8];
	int pid;                 /* 0: not running */
	int status;              /* its wait status, once it ended */
	bool stopped;            /* SIGSTOPped: not polled (it would not answer) */
	int starts;
	char log[256];
	long log_from;           /* this start's part of the log begins here */
	int port;
	double poll_next;
	tt_monotonic_t mono;     /* /api/results, this start */
	tt_monotonic_t smono;    /* /api/stream, this start */
	/* The same, figures only, across every start of the instance (a violation here is
	 * reported at the end, after the exact checks). */
	tt_monotonic_t mono_all, smono_all;
	tt_sse_t *sse;
	double sse_next;
	long sse_events;         /* events of this instance's earlier streams */
	json_t *last;            /* its last /api/results reading */
	long readings;           /* /api/results readings, every start */
	char sse_failure[512];
} inst_t;

typedef struct run {
	char prefix[64], pgopt[160], tallyd_pgopt[256], simlog[256], truth_path[256];
	tally_kafka_topics_t topics;
	int sim;
	double t0;
	int n;                   /* instances in this test */
	inst_t in[MAX_INST];
	tt_topics_t *results;    /* the results topics, read from the beginning */
} run_t;

static char out[1 << 16];

static void
setup(run_t *r, const char *tag, int n)
{
	char err[256], parts[8], group[96];
	const char *rt[3];

	memset(r, 0, sizeof(*r));
	r->t0 = test_now_s();
	r->n = n;
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
	for (int i = 0; i < n; i++) {
		inst_t *in = &r->in[i];

		snprintf(in->name, sizeof(in->name), "%c", 'a' + i);
		snprintf(in->log, sizeof(in->log), "/tmp/%stallyd-%s.log", r->prefix, in->name);
		unlink(in->log);
	}
	rt[0] = r->topics.topic[TALLY_KAFKA_RESULTS_CANDIDATE].name;
	rt[1] = r->topics.topic[TALLY_KAFKA_RESULTS_LOCATION].name;
	rt[2] = r->topics.topic[TALLY_KAFKA_RESULTS_PARTY].name;
	snprintf(group, sizeof(group), "%sreader", r->prefix);
	r->results = tt_topics_new(tally_test_service("TALLY_KAFKA_BROKERS"), rt, "general", group);
}

static void
start_sim(run_t *r)
{
	const char *args[] = {"--topic-prefix", r->prefix, r->pgopt, "--truth", r->truth_path,
	                      "--rate", RATE, "--seed", GEN_SEED, "--rekey-rate", REKEY_RATE,
	                      "--quiet", NULL};

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
	char name[96];

	in->starts++;
	if (in->starts == 1) {
		snprintf(name, sizeof(name), "%s's /api/results", in->name);
		in->mono.name = strdup(name);
		snprintf(name, sizeof(name), "%s's /api/stream", in->name);
		in->smono.name = strdup(name);
		snprintf(name, sizeof(name), "%s's /api/results across its restarts", in->name);
		tt_monotonic_init(&in->mono_all, strdup(name));
		snprintf(name, sizeof(name), "%s's /api/stream across its restarts", in->name);
		tt_monotonic_init(&in->smono_all, strdup(name));
	}
	tt_monotonic_init(&in->mono, in->mono.name);
	tt_monotonic_init(&in->smono, in->smono.name);
	/* A new start goes on from what the last one showed: figures and version. */
	tt_log_mark(in->log, "==== test: instance %s start %d\n", in->name, in->starts);
	in->log_from = tt_file_size(in->log);
	in->port = 0;
	in->stopped = false;
	in->pid = test_spawn("tallyd", args, in->log);
	cr_assert(in->pid > 0);
	fprintf(stderr, "%.1f s: instance %s started (start %d, pid %d, log %s)\n",
	        test_now_s() - r->t0, in->name, in->starts, in->pid, in->log);
}

/* Partitions the instance holds now, from this start's log: assigned minus revoked. */
static long
owned(const inst_t *in)
{
	if (in->pid <= 0)
		return 0;
	return tt_log_sum_after(in->log, in->log_from, "tallyd: assigned ") -
	       tt_log_sum_after(in->log, in->log_from, "tallyd: revoked ");
}

static long
owned_all(run_t *r)
{
	long n = 0;

	for (int i = 0; i < r->n; i++)
		n += owned(&r->in[i]);
	return n;
}

/* The instance's stream ends (it was stopped or killed). */
static void
sse_drop(inst_t *in)
{
	if (in->sse != NULL) {
		in->sse_events += tt_sse_events(in->sse);
		tt_sse_close(in->sse);
		in->sse = NULL;
	}
}

static void
kill_all(run_t *r)
{
	int status;

	for (int i = 0; i < r->n; i++) {
		inst_t *in = &r->in[i];

		sse_drop(in);
		if (in->pid > 0) {
			kill(in->pid, SIGCONT);
			kill(in->pid, SIGKILL);
			waitpid(in->pid, &status, 0);
			in->pid = 0;
		}
	}
	if (r->sim > 0) {
		kill(r->sim, SIGKILL);
		waitpid(r->sim, &status, 0);
		r->sim = 0;
	}
}

static void fail_run(run_t *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Stop everything, show every log, fail. */
static void
fail_run(run_t *r, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	kill_all(r);
	for (int i = 0; i < r->n; i++)
		tt_dump_tail(r->in[i].log, 12000);
	cr_assert_fail("%s", msg);
}

/* One /api/stream event: its id is its data's version; figures never go down. */
static void
on_event(void *arg, int64_t id, const char *data, size_t len)
{
	inst_t *in = arg;
	json_t *o = json_loadb(data, len, 0, NULL);
	json_t *v = json_object_get(o, "version");

	if (o == NULL || !json_is_integer(v)) {
		if (in->sse_failure[0] == '\0')
			snprintf(in->sse_failure, sizeof(in->sse_failure), "%s's /api/stream: an event "
			         "that is no results: %.*s", in->name, (int)(len < 200 ? len : 200), data);
	} else if (id != json_integer_value(v)) {
		if (in->sse_failure[0] == '\0')
			snprintf(in->sse_failure, sizeof(in->sse_failure), "%s's /api/stream: event id "
			         "%" PRId64 " but version %" PRId64, in->name, id,
			         (int64_t)json_integer_value(v));
	} else {
		tt_monotonic_feed(&in->smono, o);
		tt_monotonic_feed(&in->smono_all, o);
	}
	json_decref(o);
}

/* Read one instance: its port from this start's log, its stream, a poll when due. */
static void
read_inst(run_t *r, inst_t *in)
{
	char *body = NULL;
	json_t *o;

	if (in->pid <= 0 || in->stopped)
		return;
	if (in->port == 0 && (in->port = tt_log_port(in->log, in->log_from)) == 0)
		return;
	if (in->sse == NULL && test_now_s() >= in->sse_next)
		in->sse = tt_sse_open(in->port, "/api/stream", on_event, in);
	if (in->sse != NULL && !tt_sse_pump(in->sse)) {
		const char *head;
		long code = tt_sse_status(in->sse, &head);

		/* Refused while starting (503) or ended: connect again soon. */
		if (code != 0 && code != 200 && code != 503)
			fail_run(r, "%s's /api/stream answered %ld: %s", in->name, code, head);
		sse_drop(in);
		in->sse_next = test_now_s() + 0.2;
	}
	if (in->sse_failure[0] != '\0')
		fail_run(r, "%s", in->sse_failure);
	if (in->smono.failure[0] != '\0')
		fail_run(r, "%s", in->smono.failure);
	if (test_now_s() < in->poll_next)
		return;
	in->poll_next = test_now_s() + POLL_EVERY_S;
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
	tt_monotonic_feed(&in->mono_all, o);
	in->readings++;
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
	sse_drop(in);
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

/*
 * An instance that ended by itself: on a starved machine the broker may not answer for
 * longer than the session, and librdkafka then fences a static member with a fatal error,
 * on which tallyd exits 1 for its service manager to start it again (README, "tallyd
 * --cluster"). The test does what the service manager would, at most MAX_FATAL_RESTARTS
 * times a run; any other end fails the test.
 */
#define MAX_FATAL_RESTARTS 3
static int fatal_restarts;

static void
ended_by_itself(run_t *r, inst_t *in)
{
	if (WIFEXITED(in->status) && WEXITSTATUS(in->status) == 1 &&
	    tt_log_count(in->log, in->log_from, "kafka: fatal: ") > 0 &&
	    fatal_restarts < MAX_FATAL_RESTARTS) {
		fatal_restarts++;
		fprintf(stderr, "%.1f s: WARNING: instance %s exited 1 on a fatal Kafka error (the "
		        "broker starved? load average in /proc/loadavg); started again (%d of at most "
		        "%d in this run)\n", test_now_s() - r->t0, in->name, fatal_restarts,
		        MAX_FATAL_RESTARTS);
		spawn(r, in);
		return;
	}
	fail_run(r, "instance %s ended by itself (status %d)", in->name, in->status);
}

/* Read every running instance and the results topics, then wait 20 ms; an instance that
 * ends by itself (unless may_end) fails the test, but for a fatal Kafka error. */
static void
pump(run_t *r, const inst_t *may_end)
{
	for (int i = 0; i < r->n; i++) {
		inst_t *in = &r->in[i];

		if (in->pid > 0 && in != may_end && !in->stopped && ended(in))
			ended_by_itself(r, in);
		read_inst(r, in);
	}
	tt_topics_pump(r->results);
	if (tt_topics_failure(r->results)[0] != '\0')
		fail_run(r, "%s", tt_topics_failure(r->results));
	sim_done(r);
	usleep(20000);
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

/* True once no instance has logged an assignment for 3 s. */
static bool
settled(run_t *r)
{
	static int last = -1;
	static double since;
	int now = 0;

	for (int i = 0; i < r->n; i++)
		now += tt_log_count(r->in[i].log, 0, "tallyd: assigned ");
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

static bool
all_show_truth(run_t *r, json_t *truth)
{
	for (int i = 0; i < r->n; i++)
		if (r->in[i].pid > 0 && !shows_truth(&r->in[i], truth))
			return false;
	return true;
}

/* tally-dq over the election, against the truth: every check passes. */
static void
check_dq(run_t *r)
{
	const char *args[] = {"--topic-prefix", r->prefix, r->pgopt, "--truth", r->truth_path, NULL};
	int rc = test_run("tally-dq", args, out, sizeof(out));

	cr_assert_eq(rc, 0, "tally-dq exited %d; its report:\n%s", rc, out);
}

/*
 * The end, once every instance is stopped: PostgreSQL, the results topics and the last
 * reading of each instance in shown (all equal the truth); no reader saw a drop; then
 * tally-dq.
 */
static void
check_end(run_t *r, inst_t *const *shown, int nshown, json_t *truth)
{
	PGconn *c = pgtest_connect();
	char why[512];

	for (int i = 0; i < nshown; i++)
		cr_assert(tt_results_equal_truth(shown[i]->last, truth, why, sizeof(why)),
		          "%s's /api/results: %s", shown[i]->name, why);
	cr_assert(tt_pg_equal_truth(c, truth, N_PARTITIONS, why, sizeof(why)), "postgres: %s", why);
	PQfinish(c);
	cr_assert(tt_topics_drain(r->results, 60), "results topics not read to their ends in 60 s");
	cr_assert_eq(tt_topics_failure(r->results)[0], '\0', "%s", tt_topics_failure(r->results));
	cr_assert(tt_topics_equal_truth(r->results, truth, why, sizeof(why)), "%s", why);
	cr_assert_gt(tt_topics_readings(r->results), 0, "no results message read");
	for (int i = 0; i < r->n; i++) {
		inst_t *in = &r->in[i];

		cr_assert_eq(in->mono.failure[0], '\0', "%s", in->mono.failure);
		cr_assert_eq(in->smono.failure[0], '\0', "%s", in->smono.failure);
		fprintf(stderr, "instance %s: %d starts, /api/results read %ld times, /api/stream "
		        "%ld events\n", in->name, in->starts, in->readings, in->smono_all.readings);
	}
	fprintf(stderr, "results topics: %ld messages read\n", tt_topics_readings(r->results));
	/* What an instance showed, a start of it after a crash shows too (nothing shown is
	 * taken back), as the single instance does (test_tallyd_kill). */
	for (int i = 0; i < r->n; i++) {
		inst_t *in = &r->in[i];

		cr_assert_eq(in->mono_all.failure[0], '\0', "%s", in->mono_all.failure);
		cr_assert_eq(in->smono_all.failure[0], '\0', "%s", in->smono_all.failure);
	}
	check_dq(r);
}

static void
teardown(run_t *r)
{
	const char *names[TALLY_KAFKA_N_TOPICS + 1];
	char by_voter[256];

	kill_all(r);
	tt_topics_destroy(r->results);
	for (int i = 0; i < r->n; i++) {
		json_decref(r->in[i].last);
		free((char *)r->in[i].mono.name);
		free((char *)r->in[i].smono.name);
		free((char *)r->in[i].mono_all.name);
		free((char *)r->in[i].smono_all.name);
		unlink(r->in[i].log);
	}
	for (int i = 0; i < TALLY_KAFKA_N_TOPICS; i++)
		names[i] = r->topics.topic[i].name;
	/* The repartition topic of --cluster (it may not exist: then nothing is deleted). */
	snprintf(by_voter, sizeof(by_voter), "%s-by-voter", r->topics.topic[TALLY_KAFKA_VOTES].name);
	names[TALLY_KAFKA_N_TOPICS] = by_voter;
	kt_delete_topics(names, TALLY_KAFKA_N_TOPICS + 1);
	pgtest_schema_drop();
	unlink(r->simlog);
	unlink(r->truth_path);
	curl_global_cleanup();
}

Test(tallyd_cluster, scale_1_3_1, .timeout = 900)
{
	static run_t r;
	inst_t *a = &r.in[0], *b = &r.in[1], *c = &r.in[2];
	json_t *truth;

	setup(&r, "s", 3);
	start_sim(&r);
	spawn(&r, a);
	WAIT_FOR(&r, owned(a) == N_PARTITIONS, 90, "a counts every partition");
	WAIT_FOR(&r, a->mono.readings >= 20, 60, "a's results read 20 times");
	spawn(&r, b);
	spawn(&r, c);
	WAIT_FOR(&r, owned(b) >= 1 && owned(c) >= 1 && owned_all(&r) == N_PARTITIONS, 90,
	         "b and c take a share each, a keeps the rest");
	fprintf(stderr, "shares: a %ld, b %ld, c %ld partitions\n", owned(a), owned(b), owned(c));
	cr_assert_geq(owned(a), 1, "a kept no partition");
	{
		long before[3] = {a->mono.readings, b->mono.readings, c->mono.readings};

		WAIT_FOR(&r, a->mono.readings >= before[0] + 20 && b->mono.readings >= before[1] + 20 &&
		             c->mono.readings >= before[2] + 20,
		         60, "all three read 20 more times while all three count");
	}
	cr_assert(r.sim != 0, "the stream ended before all three counted: slow the rate down");
	stop(&r, b);
	stop(&r, c);
	WAIT_FOR(&r, owned(a) == N_PARTITIONS, 90, "a counts every partition again");
	fprintf(stderr, "a took every partition back %s\n", r.sim != 0 ? "while the votes come"
	        : "after the stream ended");
	WAIT_FOR(&r, sim_done(&r), 300, "tally-sim done");
	truth = load_truth(&r);
	WAIT_FOR(&r, shows_truth(a, truth), 180, "a shows the whole election's truth");
	stop(&r, a);
	check_end(&r, (inst_t *const[]){a}, 1, truth);
	json_decref(truth);
	teardown(&r);
}

Test(tallyd_cluster, zombie, .timeout = 900)
{
	static run_t r;
	inst_t *a = &r.in[0], *b = &r.in[1];
	json_t *truth;
	long mark;
	double t_stop;
	PGconn *pg;
	char owner_like[64], woke_at[64];

	setup(&r, "z", 2);
	start_sim(&r);
	spawn(&r, a);
	WAIT_FOR(&r, owned(a) == N_PARTITIONS, 90, "a counts every partition");
	spawn(&r, b);
	WAIT_FOR(&r, owned(b) >= 1 && owned(a) + owned(b) == N_PARTITIONS, 90,
	         "b takes a share, a keeps the rest");
	WAIT_FOR(&r, b->mono.readings >= 10, 60, "b's results read 10 times");
	/* A member stopped inside a rebalance would hold the group up to the rebalance timeout:
	 * stop b once the group has settled (no assignment for 3 s). */
	WAIT_FOR(&r, settled(&r), 60, "the group settled");
	cr_assert(r.sim != 0, "the stream ended before both counted: slow the rate down");

	/* b stops answering past its session: a claims b's partitions. */
	mark = tt_file_size(a->log);
	kill(b->pid, SIGSTOP);
	b->stopped = true;
	t_stop = test_now_s();
	fprintf(stderr, "%.1f s: b stopped (SIGSTOP) holding %ld partitions\n", t_stop - r.t0,
	        owned(b));
	while (tt_log_count(a->log, mark, "claimed ") == 0 && test_now_s() - t_stop < 40)
		pump(&r, NULL);
	cr_assert_gt(tt_log_count(a->log, mark, "claimed "), 0,
	             "a did not claim b's partitions within 40 s of b's SIGSTOP");
	fprintf(stderr, "%.1f s: a claimed b's partitions %.1f s after b's SIGSTOP\n",
	        test_now_s() - r.t0, test_now_s() - t_stop);
	/* Let a count b's partitions for 2 s, then wake the zombie. */
	for (double t0 = test_now_s(); test_now_s() - t0 < 2;)
		pump(&r, NULL);
	pg = pgtest_connect();
	snprintf(owner_like, sizeof(owner_like), "tallyd@%%:%d", b->pid);
	{
		PGresult *res = PQexec(pg, "SELECT now()::text");

		cr_assert_eq(PQresultStatus(res), PGRES_TUPLES_OK);
		snprintf(woke_at, sizeof(woke_at), "%s", PQgetvalue(res, 0, 0));
		PQclear(res);
	}
	kill(b->pid, SIGCONT);
	b->stopped = false;
	{
		double t0 = test_now_s();

		while (!ended(b)) {
			pump(&r, b);
			if (test_now_s() - t0 > 60)
				fail_run(&r, "the zombie %s did not exit within 60 s of SIGCONT", "b");
		}
		fprintf(stderr, "%.1f s: b exited %.1f s after SIGCONT, status %d\n",
		        test_now_s() - r.t0, test_now_s() - t0, b->status);
	}
	if (!WIFEXITED(b->status) || WEXITSTATUS(b->status) != 3)
		tt_dump_tail(b->log, 12000);
	cr_assert(WIFEXITED(b->status) && WEXITSTATUS(b->status) == 3,
	          "the zombie's status is %d, not exit 3", b->status);
	cr_assert_gt(tt_log_count(b->log, 0, "fenced"), 0, "the zombie did not log \"fenced\"");
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

	WAIT_FOR(&r, owned(a) == N_PARTITIONS, 90, "a counts every partition");
	WAIT_FOR(&r, sim_done(&r), 300, "tally-sim done");
	truth = load_truth(&r);
	WAIT_FOR(&r, shows_truth(a, truth), 180, "a shows the whole election's truth");
	stop(&r, a);
	check_end(&r, (inst_t *const[]){a}, 1, truth);
	json_decref(truth);
	teardown(&r);
}

/* A uniform number in [0, 1) from a seeded xorshift64*. */
static double
uniform(uint64_t *state)
{
	*state ^= *state >> 12;
	*state ^= *state << 25;
	*state ^= *state >> 27;
	return (double)((*state * 2685821657736338717ull) >> 11) / 9007199254740992.0;
}

Test(tallyd_cluster, kill, .timeout = 900)
{
	static run_t r;
	const char *env = getenv("TALLY_CLUSTER_KILL_SEED");
	uint64_t seed = env != NULL ? strtoull(env, NULL, 10) : (uint64_t)time(NULL), rng;
	inst_t *shown[MAX_INST];
	json_t *truth;
	int kills = 0, status;

	setup(&r, "k", 3);
	fatal_restarts = 0;
	fprintf(stderr, "cluster kill test seed %" PRIu64 " (TALLY_CLUSTER_KILL_SEED=%" PRIu64
	        " replays the kills' moments and victims)\n", seed, seed);
	rng = seed * 0x9E3779B97F4A7C15ull + 1;
	start_sim(&r);
	for (int i = 0; i < r.n; i++)
		spawn(&r, &r.in[i]);
	WAIT_FOR(&r, owned(&r.in[0]) >= 1 && owned(&r.in[1]) >= 1 && owned(&r.in[2]) >= 1 &&
	             owned_all(&r) == N_PARTITIONS,
	         90, "a, b and c each count a share");

	/* Kill after kill while the votes come, and at least MIN_KILLS: each 0.5-5 s after the
	 * one before (so some land while the instance before starts, claims or restores). */
	while (kills < MIN_KILLS || !sim_done(&r)) {
		double wait = 0.5 + 4.5 * uniform(&rng), t0 = test_now_s();
		inst_t *victim = &r.in[(int)(uniform(&rng) * r.n) % r.n];

		while (test_now_s() - t0 < wait)
			pump(&r, NULL);
		kills++;
		fprintf(stderr, "%.1f s: kill %d: instance %s (start %d, %.1f s after the kill "
		        "before; holding %ld partitions; tally-sim %s)\n", test_now_s() - r.t0, kills,
		        victim->name, victim->starts, wait, owned(victim),
		        r.sim != 0 ? "producing" : "done");
		sse_drop(victim);
		kill(victim->pid, SIGKILL);
		cr_assert_eq(waitpid(victim->pid, &status, 0), victim->pid);
		victim->pid = 0;
		if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL)
			fail_run(&r, "instance %s ended before its kill (status %d)", victim->name,
			         status);
		tt_log_mark(victim->log, "==== test: kill %d (SIGKILL)\n", kills);
		spawn(&r, victim);
		if (test_now_s() - r.t0 > 400)
			fail_run(&r, "tally-sim not done within 400 s");
	}
	fprintf(stderr, "%.1f s: tally-sim done; %d kills\n", test_now_s() - r.t0, kills);
	WAIT_FOR(&r, owned_all(&r) == N_PARTITIONS, 120, "every partition counted again");
	truth = load_truth(&r);
	WAIT_FOR(&r, all_show_truth(&r, truth), 180, "a, b and c show the whole election's truth");
	/* The same figures on all three (versions are each instance's own: not compared). */
	for (int i = 0; i < r.n; i++)
		shown[i] = &r.in[i];
	for (int i = 0; i < r.n; i++)
		stop(&r, &r.in[i]);
	check_end(&r, shown, r.n, truth);
	json_decref(truth);
	teardown(&r);
}

/* The candidate's total_votes in an /api/results reading, -1 if it is not listed. */
static long
candidate_votes(json_t *results, const char *candidate_id)
{
	json_t *cands = results != NULL ? json_object_get(results, "candidates") : NULL;
	size_t i;
	json_t *c;

	json_array_foreach(cands, i, c)
		if (strcmp(json_string_value(json_object_get(c, "candidate_id")), candidate_id) == 0)
			return (long)json_integer_value(json_object_get(c, "total_votes"));
	return -1;
}

static long
results_int(json_t *results, const char *field)
{
	return results != NULL ? (long)json_integer_value(json_object_get(results, field)) : -1;
}

/*
 * Live registrations reach every instance: two instances count the election; a candidate
 * of a new party and a voter register through candidates_topic and voters_topic; both
 * instances show the candidate and the voter (registered + 1) and PostgreSQL has one row
 * of each. The voter then votes twice, each vote under a key of its own (so on whatever
 * partition): whichever instance reads them, both are judged at the voter's home, one
 * counted, one a duplicate, on both instances, in PostgreSQL and in tally-dq.
 */
Test(tallyd_cluster, live_registration, .timeout = 600)
{
	static run_t r;
	inst_t *a = &r.in[0], *b = &r.in[1];
	tally_gen_opts_t o;
	tally_gen_t *other;
	tally_gen_voter_t v;
	tally_gen_voter_fields_t vf;
	tally_gen_candidate_t c;
	char err[256], buf[TALLY_GEN_MSG_MAX];
	const char *cid;
	long registered0, read0, dup0;
	int64_t opens_at;
	size_t len;
	PGconn *pg;

	setup(&r, "r", 2);
	spawn(&r, a);
	spawn(&r, b);
	WAIT_FOR(&r, owned(a) >= 1 && owned(b) >= 1 && owned_all(&r) == N_PARTITIONS, 90,
	         "a and b each count a share");
	WAIT_FOR(&r, a->last != NULL && b->last != NULL, 30, "both serve results");
	registered0 = results_int(a->last, "registered");
	read0 = results_int(a->last, "read");
	dup0 = (long)json_integer_value(json_object_get(json_object_get(a->last, "rejected"),
	                                                "duplicate"));
	cr_assert_eq(registered0, atol(VOTERS));

	/* Another seed: a voter and a candidate nobody registered, of a party of their own. */
	tally_gen_opts_init(&o);
	o.seed = 1029;
	o.voters = 100;
	o.candidates = 8;
	o.parties = 8;
	cr_assert_not_null(other = tally_gen_new(&o, err, sizeof(err)), "%s", err);
	tally_gen_voter(other, 0, &v);
	cr_assert(!v.underage);
	tally_gen_candidate(other, 7, &c);
	cid = c.candidate_id;
	len = tally_gen_candidate_json(other, 7, buf, sizeof(buf));
	kt_produce_one(r.topics.topic[TALLY_KAFKA_CANDIDATES].name, c.candidate_id, buf, len);
	len = tally_gen_voter_json(other, 0, buf, sizeof(buf));
	kt_produce_one(r.topics.topic[TALLY_KAFKA_VOTERS].name, v.voter_id, buf, len);
	WAIT_FOR(&r, candidate_votes(a->last, cid) == 0 && candidate_votes(b->last, cid) == 0 &&
	             results_int(a->last, "registered") == registered0 + 1 &&
	             results_int(b->last, "registered") == registered0 + 1,
	         60, "both instances show the new candidate and voter");
	pg = pgtest_connect();
	{
		const char *params[2] = {v.voter_id, c.candidate_id};
		PGresult *q = PQexecParams(pg, "SELECT (SELECT count(*) FROM voters WHERE voter_id ="
		                               " $1::uuid), (SELECT count(*) FROM candidates WHERE"
		                               " candidate_id = $2::uuid), (SELECT extract(epoch FROM"
		                               " opens_at)::bigint FROM elections)",
		                           2, NULL, params, NULL, NULL, 0);

		cr_assert_eq(PQresultStatus(q), PGRES_TUPLES_OK, "%s", PQerrorMessage(pg));
		cr_assert_str_eq(PQgetvalue(q, 0, 0), "1", "the voter's rows in PostgreSQL");
		cr_assert_str_eq(PQgetvalue(q, 0, 1), "1", "the candidate's rows in PostgreSQL");
		opens_at = strtoll(PQgetvalue(q, 0, 2), NULL, 10);
		PQclear(q);
	}

	/* Two votes of the new voter, under keys that are not its voter_id. */
	tally_gen_voter_fields(&v, &vf);
	len = tally_gen_vote_json(&vf, &c, opens_at + 3600, TALLY_GEN_MALFORMED_NONE, 0, false, buf,
	                          sizeof(buf));
	kt_produce_one(r.topics.topic[TALLY_KAFKA_VOTES].name, "a key of its own", buf, len);
	kt_produce_one(r.topics.topic[TALLY_KAFKA_VOTES].name, "another key", buf, len);
	WAIT_FOR(&r, candidate_votes(a->last, cid) == 1 && candidate_votes(b->last, cid) == 1 &&
	             results_int(a->last, "read") == read0 + 2 &&
	             results_int(b->last, "read") == read0 + 2,
	         60, "both instances count one vote and read two");
	cr_assert_eq((long)json_integer_value(json_object_get(json_object_get(a->last, "rejected"),
	                                                      "duplicate")), dup0 + 1);
	cr_assert_eq((long)json_integer_value(json_object_get(json_object_get(b->last, "rejected"),
	                                                      "duplicate")), dup0 + 1);
	stop(&r, a);
	stop(&r, b);
	/* The two keys land on partitions 0 and 1 (librdkafka's crc32): at least one of the
	 * votes was read off its voter's home and forwarded there. */
	cr_assert_geq(tt_log_sum_after(a->log, 0, "tallyd: stopped: forwarded ") +
	              tt_log_sum_after(b->log, 0, "tallyd: stopped: forwarded "), 1,
	              "no vote was forwarded");
	{
		const char *params[1] = {v.voter_id};
		PGresult *q = PQexecParams(pg, "SELECT (SELECT count(*) FROM votes WHERE voter_id ="
		                               " $1::uuid), (SELECT count(*) FROM voters WHERE voter_id"
		                               " = $1::uuid)", 1, NULL, params, NULL, NULL, 0);

		cr_assert_eq(PQresultStatus(q), PGRES_TUPLES_OK, "%s", PQerrorMessage(pg));
		cr_assert_str_eq(PQgetvalue(q, 0, 0), "1", "the new voter's votes in PostgreSQL");
		cr_assert_str_eq(PQgetvalue(q, 0, 1), "1", "the new voter's rows in PostgreSQL");
		PQclear(q);
	}
	PQfinish(pg);
	{
		const char *args[] = {"--topic-prefix", r.prefix, r.pgopt, NULL};
		int rc = test_run("tally-dq", args, out, sizeof(out));

		cr_assert_eq(rc, 0, "tally-dq exited %d; its report:\n%s", rc, out);
	}
	for (int i = 0; i < r.n; i++) {
		cr_assert_eq(r.in[i].mono.failure[0], '\0', "%s", r.in[i].mono.failure);
		cr_assert_eq(r.in[i].smono.failure[0], '\0', "%s", r.in[i].smono.failure);
	}
	tally_gen_destroy(other);
	teardown(&r);
}

/*
 * tally-bench e2e and recover: tallyd itself, against the real Kafka and PostgreSQL.
 *
 * e2e: with the votes already in votes_topic, the time tallyd takes to consume and count
 * them all with checkpointing on, against a bare librdkafka consumer reading the same topic
 * in the same run (before and after tallyd; the faster of the two is the reference).
 *
 * recover: with the registry and the votes counted and checkpointed, tallyd is started,
 * left to be live, killed with SIGKILL and started again; each start is timed from exec to
 * its "live" log line.
 *
 * Both load their data the way a user would (tally-gen, then tally-sim, compact or with
 * --shape full the original producers' shape) into a private PostgreSQL schema and topics
 * with a private prefix, unless --reuse names a run kept earlier with --keep. e2e --pairs N
 * alternates bare consumers and tallyd N times instead, for a machine shared with other
 * work. tally's programs run as children; their stderr goes to files that
 * are parsed for tallyd's "restored in", "live", "caught up" and "stopped" lines.
 */
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "bench_svc.h"

#define ROW_FMT "%-54s %12s %10s %12s %8s\n"

typedef struct opts {
	uint64_t votes, voters;
	int partitions;
	uint64_t max_pending;   /* e2e: 0, or an extra tallyd run with this --max-pending-votes */
	int repeat;             /* recover */
	const char *reuse, *bindir;
	bool keep, drop;
	bool diag;              /* e2e: also a run with checkpointing off, killed once caught up */
	bool full;              /* load votes in the original full shape, not compact */
	bool bare_only;         /* e2e: only the bare consumers (e.g. to profile them) */
	int pairs;              /* e2e: alternate bare consumers and tallyd this many times */
} opts_t;

typedef struct tallyd_result {
	int status;
	double live, restored, caught_up, durable, exit;   /* seconds from exec; -1: not seen */
	uint64_t read, accepted, rejected;
	int64_t stored;                                       /* rows in votes afterwards */
} tallyd_result_t;

static void
row_s(const char *what, uint64_t n, double secs, double ratio)
{
	char a[32] = "", b[32] = "", c[32] = "", d[32] = "";

	if (n > 0)
		snprintf(a, sizeof(a), "%" PRIu64, n);
	if (secs >= 0)
		snprintf(b, sizeof(b), "%.3f", secs);
	if (n > 0 && secs > 0)
		snprintf(c, sizeof(c), "%.0f", (double)n / secs);
	if (ratio > 0)
		snprintf(d, sizeof(d), "%.2f", ratio);
	printf(ROW_FMT, what, a, b, c, d);
	fflush(stdout);
}

/* Bare consumer number n (prefetch: with tallyd's prefetch settings) into *c, and its rows. */
static int
bare_rows(bench_run_t *run, int n, bool prefetch, bench_consume_t *c)
{
	char group[128], label[96];
	const char *what = prefetch ? " (tallyd's prefetch)" : "";

	snprintf(group, sizeof(group), "%s_bare%d", run->name, n);
	if (bench_bare_consume(run, run->votes_topic, group, prefetch, c) != 0)
		return -1;
	snprintf(label, sizeof(label), "bare consumer %d%s: exec to assigned", n, what);
	row_s(label, 0, c->assigned_s, 0);
	snprintf(label, sizeof(label), "bare consumer %d%s: assigned to end", n, what);
	row_s(label, c->msgs, c->total_s - c->assigned_s, 0);
	return 0;
}

/*
 * The data: the registry (tally-gen) and the votes (tally-sim, turnout 1.0, compact), or a
 * kept run's. Returns the messages in votes_topic, or -1.
 */
static int64_t
prepare(bench_run_t *run, const opts_t *o)
{
	char voters[32], parts[32], truth[4400];
	int64_t msgs, nvoters;
	int np = 0;
	PGconn *conn;

	if (!run->reused) {
		double gen, sim;

		snprintf(voters, sizeof(voters), "%" PRIu64, o->voters ? o->voters : o->votes);
		snprintf(parts, sizeof(parts), "%d", o->partitions);
		snprintf(truth, sizeof(truth), "%s", bench_log_path(run, "truth.json"));
		if (bench_schema_create(run) != 0)
			return -1;
		{
			char *argv[] = {"tally-gen", "--voters", voters, "--partitions", parts,
			                "--topic-prefix", run->prefix, run->pgopt, "--quiet", NULL};

			if ((gen = bench_run_child(run, "tally-gen", argv, "tally-gen.log")) < 0)
				return -1;
		}
		row_s("load registry (tally-gen)", strtoull(voters, NULL, 10), gen, 0);
		{
			/* Without --compact tally-sim sends the original shape (~1.3 KB a vote). */
			char *argv[] = {"tally-sim", "--topic-prefix", run->prefix, run->pgopt,
			                "--partitions", parts, "--turnout", "1.0", "--truth", truth,
			                "--quiet", o->full ? NULL : "--compact", NULL};

			if ((sim = bench_run_child(run, "tally-sim", argv, "tally-sim.log")) < 0)
				return -1;
		}
		msgs = bench_topic_messages(run, run->votes_topic, &np);
		row_s(o->full ? "produce votes (tally-sim, full shape)"
		              : "produce votes (tally-sim --compact)",
		      msgs > 0 ? (uint64_t)msgs : 0, sim, 0);
	} else {
		msgs = bench_topic_messages(run, run->votes_topic, &np);
	}
	if (msgs < 0)
		return -1;
	if ((conn = bench_pg(run, true)) == NULL)
		return -1;
	nvoters = bench_pg_int(conn, "SELECT count(*) FROM voters");
	PQfinish(conn);
	printf("run \"%s\": %" PRId64 " voters, %" PRId64 " messages in \"%s\" (%d partitions)%s\n",
	       run->name, nvoters, msgs, run->votes_topic, np, run->reused ? ", reused" : "");
	if (np != o->partitions)
		fprintf(stderr, "tally-bench: warning: \"%s\" has %d partitions, not %d\n",
		        run->votes_topic, np, o->partitions);
	if ((uint64_t)msgs < o->votes) {
		fprintf(stderr, "tally-bench: \"%s\" holds %" PRId64 " messages, fewer than --votes %"
		                PRIu64 "\n", run->votes_topic, msgs, o->votes);
		return -1;
	}
	return msgs;
}

/*
 * Forget what tallyd stored, so it counts votes_topic from the beginning again. With
 * registrations, also the registrar's offsets of voters_topic and candidates_topic: the
 * state right after tally-gen, where a first start replays every registration (skipping
 * those PostgreSQL holds). Without, the registrar resumes at the end of those topics, as
 * a server that has followed the registrations does.
 */
/* Votes stored: in the votes table or still in the vote journal. */
#define STORED_VOTES_SQL \
	"SELECT (SELECT count(*) FROM votes) + (SELECT coalesce(sum(votes), 0) FROM vote_journal)"

static int
reset_tallyd(const bench_run_t *run, bool registrations)
{
	PGconn *conn = bench_pg(run, true);
	int rc;

	if (conn == NULL)
		return -1;
	if (registrations) {
		rc = bench_pg_exec(conn, "TRUNCATE votes, vote_journal, checkpoints, checkpoint_offsets");
	} else {
		const char *topic = run->votes_topic;
		PGresult *res;

		rc = bench_pg_exec(conn, "TRUNCATE votes, vote_journal, checkpoints");
		res = PQexecParams(conn, "DELETE FROM checkpoint_offsets WHERE topic = $1", 1, NULL,
		                   &topic, NULL, NULL, 0);
		if (PQresultStatus(res) != PGRES_COMMAND_OK) {
			fprintf(stderr, "tally-bench: could not delete the offsets of \"%s\": %s", topic,
			        PQresultErrorMessage(res));
			rc = -1;
		}
		PQclear(res);
	}
	PQfinish(conn);
	return rc;
}

static void
parse_tallyd_log(const char *text, tallyd_result_t *r)
{
	const char *p;

	if ((p = bench_log_find(text, "tallyd: restored in ", false)) != NULL)
		sscanf(p, "%lf", &r->restored);
	if ((p = bench_log_find(text, "tallyd: live ", false)) != NULL)
		sscanf(p, "%lf", &r->live);
	if ((p = bench_log_find(text, "tallyd: caught up: read ", true)) != NULL)
		sscanf(p, "%" SCNu64 ", accepted %" SCNu64 ", rejected %" SCNu64 " (%lf", &r->read,
		       &r->accepted, &r->rejected, &r->caught_up);
	if ((p = bench_log_find(text, "tallyd: stopped: read ", true)) != NULL)
		sscanf(p, "%" SCNu64 ", accepted %" SCNu64 ", rejected %" SCNu64, &r->read,
		       &r->accepted, &r->rejected);
}

/* How a tallyd run ends. */
typedef enum run_end {
	END_EXIT,       /* by itself (--exit-idle-ms 2000), after the journal has been moved */
	END_NO_CKPT,    /* no checkpoint while reading; SIGKILL once caught up */
	END_DURABLE,    /* SIGTERM once durable (a clean stop; the mover stops after its piece) */
} run_end_t;

/*
 * Run tallyd over the whole topic until it ends as end says. live and caught up come from
 * its log (seconds since it started serving); durable is when the bench sees the
 * checkpointed offsets cover every message (polled every 100 ms); exit from the bench.
 */
static int
run_tallyd(const bench_run_t *run, const char *group, uint64_t max_pending, run_end_t end,
           int64_t msgs, const char *log, tallyd_result_t *r)
{
	bool no_ckpt = end == END_NO_CKPT, stopping = false;
	char mp[32];
	char *argv[] = {"tallyd", "--topic-prefix", (char *)run->prefix, (char *)run->pgopt,
	                "--group-id", (char *)group, "--exit-idle-ms", "2000",
	                "--max-pending-votes", mp, no_ckpt ? "--checkpoint.interval.ms" : NULL,
	                "3600000", NULL};
	PGconn *conn = bench_pg(run, true);
	double t0, next_poll;
	char *text;
	pid_t pid;
	int st = -1;

	memset(r, 0, sizeof(*r));
	r->live = r->restored = r->caught_up = r->durable = r->exit = -1;
	r->stored = -1;
	if (conn == NULL)
		return -1;
	snprintf(mp, sizeof(mp), "%" PRIu64, max_pending ? max_pending : 4000000);
	t0 = bench_now();
	if ((pid = bench_spawn(run, "tallyd", argv, log)) < 0) {
		PQfinish(conn);
		return -1;
	}
	next_poll = t0;
	for (;;) {
		pid_t w = waitpid(pid, &st, WNOHANG);
		double now = bench_now();

		if (w == pid) {
			r->exit = now - t0;
			break;
		}
		if (no_ckpt && now >= next_poll) {
			/* The diagnostic run: no checkpoint until the end, killed once caught up. */
			text = bench_slurp(bench_log_path(run, log));
			if (bench_log_find(text, "tallyd: caught up: ", false) != NULL)
				kill(pid, SIGKILL);
			free(text);
			next_poll = now + 0.05;
		} else if (r->durable < 0 && now >= next_poll) {
			/* The registrar keeps its registration topics' offsets in the same table. */
			int64_t done = bench_pg_int1(conn, "SELECT coalesce(sum(next_offset), 0) "
			                                   "FROM checkpoint_offsets WHERE topic = $1",
			                             run->votes_topic);

			/* The services are shared: a test may restart PostgreSQL under us. */
			if (done < 0 && PQstatus(conn) != CONNECTION_OK)
				PQreset(conn);

			if (done >= msgs)
				r->durable = bench_now() - t0;
			next_poll = now + 0.1;
		} else if (end == END_DURABLE && r->durable >= 0 && !stopping && now >= next_poll) {
			/* Durable can come before the "caught up" line: stop only after both. */
			text = bench_slurp(bench_log_path(run, log));
			if (bench_log_find(text, "tallyd: caught up: ", false) != NULL) {
				kill(pid, SIGTERM);
				stopping = true;
			}
			free(text);
			next_poll = now + 0.05;
		}
		bench_sleep_ms(20);
	}
	r->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	text = bench_slurp(bench_log_path(run, log));
	parse_tallyd_log(text, r);
	{
		/* The services may be shared (tests stop and start them): say so when tallyd saw
		 * them go away, as such a run's times mean little. */
		int kerr = 0, pgdown = 0;

		for (const char *p = text; p != NULL && (p = strstr(p, "tallyd: kafka error")) != NULL; p++)
			kerr++;
		for (const char *p = text; p != NULL && (p = strstr(p, "postgres unreachable")) != NULL;
		     p++)
			pgdown++;
		if (kerr > 0 || pgdown > 0)
			fprintf(stderr, "tally-bench: warning: %s logged %d Kafka errors and %d "
			                "\"postgres unreachable\" lines: were the services restarted?\n",
			        log, kerr, pgdown);
	}
	free(text);
	if (PQstatus(conn) != CONNECTION_OK)
		PQreset(conn);
	r->stored = bench_pg_int(conn, STORED_VOTES_SQL);
	PQfinish(conn);
	if (no_ckpt) {
		if (r->read == (uint64_t)msgs)
			return 0;
		fprintf(stderr, "tally-bench: tallyd read %" PRIu64 " of %" PRId64 " messages\n",
		        r->read, msgs);
		return -1;
	}
	if (r->status != 0 || r->read != (uint64_t)msgs || r->stored != (int64_t)r->accepted ||
	    r->live < 0 || r->caught_up < 0 || (end == END_DURABLE && r->durable < 0)) {
		fprintf(stderr, "tally-bench: tallyd exited with status %d having read %" PRIu64
		                " of %" PRId64 " messages, accepted %" PRIu64 ", %" PRId64 " stored\n",
		        r->status, r->read, msgs, r->accepted, r->stored);
		bench_log_tail(bench_log_path(run, log), 20);
		return -1;
	}
	return 0;
}

enum { O_DIAG = 100, O_SHAPE, O_BARE, O_PAIRS, O_VOTES = 1, O_VOTERS, O_PARTS, O_MAXP, O_REPEAT, O_REUSE, O_KEEP, O_DROP, O_BIN, O_HELP };

static const struct option long_opts[] = {
	{"votes", required_argument, NULL, O_VOTES},
	{"voters", required_argument, NULL, O_VOTERS},
	{"partitions", required_argument, NULL, O_PARTS},
	{"max-pending-votes", required_argument, NULL, O_MAXP},
	{"repeat", required_argument, NULL, O_REPEAT},
	{"reuse", required_argument, NULL, O_REUSE},
	{"keep", no_argument, NULL, O_KEEP},
	{"drop", no_argument, NULL, O_DROP},
	{"bin", required_argument, NULL, O_BIN},
	{"no-checkpoint-row", no_argument, NULL, O_DIAG},
	{"shape", required_argument, NULL, O_SHAPE},
	{"bare-only", no_argument, NULL, O_BARE},
	{"pairs", required_argument, NULL, O_PAIRS},
	{"help", no_argument, NULL, O_HELP},
	{NULL, 0, NULL, 0}};

static const char common_help[] =
    "  --votes N       votes in votes_topic, at least (default 10000000); the registry gets\n"
    "                  as many voters and tally-sim turns them all out (plus its faults)\n"
    "  --voters N      registered voters, if not --votes\n"
    "  --partitions N  partitions of votes_topic (default 12)\n"
    "  --shape S       compact (default: tally-sim --compact, voter_id, candidate_id and\n"
    "                  voting_time, ~120 bytes) or full (the original producers' shape,\n"
    "                  every voter and candidate field, ~1.3 KB); only when loading\n"
    "  --reuse NAME    use the schema NAME and topics \"NAME_*\" of a run kept with --keep\n"
    "                  instead of loading (tally-gen, tally-sim) again\n"
    "  --keep          keep the schema, topics and logs at the end (then --reuse NAME);\n"
    "                  with --reuse the run is kept anyway unless --drop\n"
    "  --drop          with --reuse: drop the reused schema and topics at the end\n"
    "  --bin DIR       where tally-gen, tally-sim and tallyd are (default: next to tally-bench)\n"
    "\n"
    "Needs TALLY_KAFKA_BROKERS and TALLY_PG_DSN: run 'eval \"$(scripts/services up)\"' first.\n"
    "Loading 10 M voters takes about 2 minutes and 10 M votes about 1 more; a 10 M-vote\n"
    "topic is about 1 GB on the broker's disk (compact), about 13 GB in the full shape.\n";

static int
parse(int argc, char **argv, opts_t *o, void (*usage)(FILE *))
{
	int c;

	*o = (opts_t){.votes = 10000000, .partitions = 12, .repeat = 5};
	optind = 1;
	while ((c = getopt_long(argc, argv, "", long_opts, NULL)) != -1) {
		switch (c) {
		case O_VOTES: o->votes = strtoull(optarg, NULL, 10); break;
		case O_VOTERS: o->voters = strtoull(optarg, NULL, 10); break;
		case O_PARTS: o->partitions = atoi(optarg); break;
		case O_MAXP: o->max_pending = strtoull(optarg, NULL, 10); break;
		case O_REPEAT: o->repeat = atoi(optarg); break;
		case O_REUSE: o->reuse = optarg; break;
		case O_KEEP: o->keep = true; break;
		case O_DROP: o->drop = true; break;
		case O_BIN: o->bindir = optarg; break;
		case O_DIAG: o->diag = true; break;
		case O_BARE: o->bare_only = true; break;
		case O_PAIRS: o->pairs = atoi(optarg); break;
		case O_SHAPE:
			if (strcmp(optarg, "full") == 0) {
				o->full = true;
			} else if (strcmp(optarg, "compact") != 0) {
				fprintf(stderr, "tally-bench: --shape \"%s\": full or compact\n", optarg);
				return 2;
			}
			break;
		case O_HELP: usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind < argc || o->votes == 0 || o->partitions < 1 || o->repeat < 1 || o->pairs < 0 ||
	    (o->max_pending != 0 && o->max_pending < 1000)) {
		usage(stderr);
		return 2;
	}
	return -1;
}

/* ---- e2e ---------------------------------------------------------------------------------- */

static void
e2e_usage(FILE *f)
{
	fprintf(f,
	        "usage: tally-bench e2e [options]\n\n"
	        "With the votes already in votes_topic, times tallyd (checkpointing at its defaults,\n"
	        "--exit-idle-ms 2000) consuming and counting them all, against a bare librdkafka\n"
	        "consumer reading the same topic before and after it (the faster is the\n"
	        "reference). tallyd runs, each from an empty checkpoint:\n"
	        "  A  the first start after loading: its registrar also replays voters_topic;\n"
	        "  D  (--no-checkpoint-row) no checkpoint while reading, killed once caught up;\n"
	        "  P  (--max-pending-votes N) with that many accepted votes held, not 4000000;\n"
	        "  B  registrations already followed: the run the last line reports.\n"
	        "From partitions assigned (the \"live\" line): counted = to tallyd's \"caught up\"\n"
	        "line, durable = until the checkpointed offsets cover every message (polled every\n"
	        "100 ms). consumer_ratio = bare consumer seconds / B's counted seconds (target\n"
	        ">= 0.8); durable_ratio likewise with B's durable seconds.\n\n"
	        "options:\n"
	        "  --max-pending-votes N  also run tallyd with this --max-pending-votes (an extra\n"
	        "                  row; the default run uses tallyd's default, 4000000)\n"
	        "  --no-checkpoint-row  also run tallyd with --checkpoint.interval.ms 3600000 and\n"
	        "                  --max-pending-votes 1000000000 (no checkpoint while reading),\n"
	        "                  killed once caught up: a diagnostic row, counting without\n"
	        "                  PostgreSQL competing for the CPUs\n"
	        "  --bare-only     only the bare consumers (librdkafka's defaults, then tallyd's\n"
	        "                  prefetch), no tallyd: e.g. to profile them\n"
	        "  --pairs N       instead of A, D, P and B: N rounds of the bare consumer, the\n"
	        "                  bare consumer with tallyd's prefetch and tallyd (as B, but\n"
	        "                  stopped with SIGTERM once durable, the journal left unmoved);\n"
	        "                  the last line compares the fastest of each (on a shared\n"
	        "                  machine the fastest run is the least disturbed)\n"
	        "%s",
	        common_help);
}

static void
tallyd_rows(const char *label, const tallyd_result_t *r, double bare)
{
	char what[128];
	double counted = r->caught_up - r->live, durable = r->durable - r->live;

	printf("\n");
	snprintf(what, sizeof(what), "%s: restore", label);
	row_s(what, 0, r->restored, 0);
	snprintf(what, sizeof(what), "%s: exec to live", label);
	row_s(what, 0, r->live, 0);
	snprintf(what, sizeof(what), "%s: counted (live to caught up)", label);
	row_s(what, r->read, counted, bare / counted);
	snprintf(what, sizeof(what), "%s: durable (live to checkpoint)", label);
	row_s(what, r->read, durable, bare / durable);
	snprintf(what, sizeof(what), "%s: exec to exit", label);
	row_s(what, 0, r->exit, 0);
}

static int cmp_double(const void *a, const void *b);

static double
median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/*
 * --pairs: rounds of bare consumer, bare consumer with tallyd's prefetch, tallyd stopped
 * once durable; then the fastest and the median of each, and the ratios of the fastest.
 * bare1 is the bare consumer already run before the rounds (counted with them).
 */
static int
e2e_pairs(const bench_run_t *run, const opts_t *o, int64_t msgs, const bench_consume_t *bare1)
{
	int n = o->pairs;
	double *b = calloc((size_t)n + 1, sizeof(double)), *bp = calloc((size_t)n, sizeof(double));
	double *cnt = calloc((size_t)n, sizeof(double)), *dur = calloc((size_t)n, sizeof(double));
	double *rat = calloc((size_t)n, sizeof(double));
	double bb, bbp, bc, bd, mb, mbp, mc, md;
	tallyd_result_t r = {0};
	int rc = -1;

	if (b == NULL || bp == NULL || cnt == NULL || dur == NULL || rat == NULL)
		goto out;
	b[n] = bare1->total_s - bare1->assigned_s;
	for (int i = 0; i < n; i++) {
		bench_consume_t c;
		char group[128], what[96], log[64];

		snprintf(group, sizeof(group), "%s_pair%d_bare", run->name, i);
		if (bench_bare_consume(run, run->votes_topic, group, false, &c) != 0)
			goto out;
		b[i] = c.total_s - c.assigned_s;
		snprintf(what, sizeof(what), "round %d: bare consumer", i + 1);
		row_s(what, c.msgs, b[i], 0);
		snprintf(group, sizeof(group), "%s_pair%d_bare3", run->name, i);
		if (bench_bare_consume(run, run->votes_topic, group, true, &c) != 0)
			goto out;
		bp[i] = c.total_s - c.assigned_s;
		snprintf(what, sizeof(what), "round %d: bare consumer (tallyd's prefetch)", i + 1);
		row_s(what, c.msgs, bp[i], 0);
		snprintf(group, sizeof(group), "%s_pair%d_tallyd", run->name, i);
		snprintf(log, sizeof(log), "tallyd-e2e-pair%d.log", i);
		if (reset_tallyd(run, false) != 0 ||
		    run_tallyd(run, group, 0, END_DURABLE, msgs, log, &r) != 0)
			goto out;
		cnt[i] = r.caught_up - r.live;
		dur[i] = r.durable - r.live;
		rat[i] = (b[i] < bp[i] ? b[i] : bp[i]) / cnt[i];
		snprintf(what, sizeof(what), "round %d: tallyd counted (live to caught up)", i + 1);
		row_s(what, r.read, cnt[i], b[i] / cnt[i]);
		snprintf(what, sizeof(what), "round %d: tallyd durable (live to checkpoint)", i + 1);
		row_s(what, r.read, dur[i], b[i] / dur[i]);
		snprintf(what, sizeof(what), "after round %d", i + 1);
		bench_print_load(what);
	}
	bb = b[0], bbp = bp[0], bc = cnt[0], bd = dur[0];
	for (int i = 0; i <= n; i++) {
		bb = b[i] < bb ? b[i] : bb;
		if (i < n) {
			bbp = bp[i] < bbp ? bp[i] : bbp;
			bc = cnt[i] < bc ? cnt[i] : bc;
			bd = dur[i] < bd ? dur[i] : bd;
		}
	}
	mb = median(b, n + 1), mbp = median(bp, n), mc = median(cnt, n), md = median(dur, n);
	printf("\n%-54s %12s %10s %10s\n", "fastest and median of", "runs", "fastest", "median");
	printf("%-54s %12d %10.3f %10.3f\n", "bare consumer: assigned to end", n + 1, bb, mb);
	printf("%-54s %12d %10.3f %10.3f\n", "bare consumer (tallyd's prefetch)", n, bbp, mbp);
	printf("%-54s %12d %10.3f %10.3f\n", "tallyd counted (live to caught up)", n, bc, mc);
	printf("%-54s %12d %10.3f %10.3f\n", "tallyd durable (live to checkpoint)", n, bd, md);
	printf("median over the rounds of (faster bare consumer of the round / tallyd counted): "
	       "%.2f\n", median(rat, n));
	printf("tallyd: read %" PRIu64 ", accepted %" PRIu64 ", rejected %" PRIu64 ", %" PRId64
	       " votes stored (last round)\n", r.read, r.accepted, r.rejected, r.stored);
	printf("e2e votes_per_s=%.0f consumer_ratio=%.2f durable_votes_per_s=%.0f "
	       "durable_ratio=%.2f prefetch_consumer_ratio=%.2f bytes_per_msg=%.0f\n",
	       (double)msgs / bc, bb / bc, (double)msgs / bd, bb / bd, bbp / bc,
	       (double)bare1->bytes / (double)bare1->msgs);
	rc = 0;
out:
	free(b), free(bp), free(cnt), free(dur), free(rat);
	return rc;
}

int
tally_bench_e2e(int argc, char **argv)
{
	bench_run_t run;
	opts_t o;
	int rc = parse(argc, argv, &o, e2e_usage);
	int64_t msgs;
	bench_consume_t bare[3];
	tallyd_result_t def = {0}, big = {0}, nock = {0}, first = {0};
	char group[128];
	double best;
	bool ok = false;

	if (rc >= 0)
		return rc;
	if (bench_run_init(&run, "e2e", argv[0], o.bindir, o.reuse, o.reuse ? !o.drop : o.keep) != 0)
		return 1;
	printf(ROW_FMT, "phase", "messages", "seconds", "msgs/s", "ratio");
	if ((msgs = prepare(&run, &o)) < 0)
		goto out;

	if (bare_rows(&run, 1, false, &bare[0]) != 0)
		goto out;
	printf("votes_topic: %.0f bytes a message on average (%.2f GB)\n",
	       (double)bare[0].bytes / (double)bare[0].msgs, (double)bare[0].bytes / 1e9);
	fflush(stdout);
	if (o.bare_only) {
		if (bare_rows(&run, 3, true, &bare[2]) != 0)
			goto out;
		ok = true;
		goto out;
	}

	if (o.pairs > 0) {
		bench_print_load("before the rounds");
		ok = e2e_pairs(&run, &o, msgs, &bare[0]) == 0;
		goto out;
	}

	/* A: the first start after loading; its registrar replays the registrations. */
	snprintf(group, sizeof(group), "%s_tallyd_a", run.name);
	if (reset_tallyd(&run, true) != 0 ||
	    run_tallyd(&run, group, 0, END_EXIT, msgs, "tallyd-e2e-first.log", &first) != 0)
		goto out;
	/* Before B, so that the last run leaves a complete checkpoint (for recover). */
	if (o.diag) {
		snprintf(group, sizeof(group), "%s_tallyd_d", run.name);
		if (reset_tallyd(&run, false) != 0 ||
		    run_tallyd(&run, group, 1000000000, END_NO_CKPT, msgs, "tallyd-e2e-nockpt.log",
		                      &nock) != 0)
			goto out;
	}
	if (o.max_pending != 0) {
		snprintf(group, sizeof(group), "%s_tallyd_p", run.name);
		if (reset_tallyd(&run, false) != 0 ||
		    run_tallyd(&run, group, o.max_pending, END_EXIT, msgs, "tallyd-e2e-pending.log",
		                      &big) != 0)
			goto out;
	}
	/* B, the one the last line reports: registrations already followed. */
	snprintf(group, sizeof(group), "%s_tallyd_b", run.name);
	if (reset_tallyd(&run, false) != 0 ||
	    run_tallyd(&run, group, 0, END_EXIT, msgs, "tallyd-e2e.log", &def) != 0)
		goto out;

	if (bare_rows(&run, 2, false, &bare[1]) != 0)
		goto out;
	/* For comparison: the bare consumer with the prefetch tallyd sets for itself. */
	if (bare_rows(&run, 3, true, &bare[2]) != 0)
		goto out;
	best = bare[0].total_s - bare[0].assigned_s;
	if (bare[1].total_s - bare[1].assigned_s < best)
		best = bare[1].total_s - bare[1].assigned_s;
	tallyd_rows("tallyd A (first start)", &first, best);
	if (o.diag) {
		printf("\n");
		row_s("tallyd D (no checkpoint): exec to live", 0, nock.live, 0);
		row_s("tallyd D (no checkpoint): counted", nock.read,
		      nock.caught_up - nock.live, best / (nock.caught_up - nock.live));
	}
	if (o.max_pending != 0) {
		char label[64];

		snprintf(label, sizeof(label), "tallyd P (max pending %" PRIu64 ")", o.max_pending);
		tallyd_rows(label, &big, best);
	}
	tallyd_rows("tallyd B", &def, best);
	printf("tallyd: read %" PRIu64 ", accepted %" PRIu64 ", rejected %" PRIu64 ", %" PRId64
	       " votes stored; bare consumer %.3f s (best of 2)\n",
	       def.read, def.accepted, def.rejected, def.stored, best);
	printf("e2e votes_per_s=%.0f consumer_ratio=%.2f durable_votes_per_s=%.0f "
	       "durable_ratio=%.2f prefetch_consumer_ratio=%.2f bytes_per_msg=%.0f\n",
	       (double)def.read / (def.caught_up - def.live), best / (def.caught_up - def.live),
	       (double)def.read / (def.durable - def.live), best / (def.durable - def.live),
	       (bare[2].total_s - bare[2].assigned_s) / (def.caught_up - def.live),
	       (double)bare[0].bytes / (double)bare[0].msgs);
	ok = true;
out:
	bench_finish(&run, ok, o.keep);
	return ok ? 0 : 1;
}

/* ---- recover ------------------------------------------------------------------------------ */

static void
recover_usage(FILE *f)
{
	fprintf(f,
	        "usage: tally-bench recover [options]\n\n"
	        "With the registry and every vote counted and checkpointed (tallyd is run to its\n"
	        "end first if the checkpoint does not cover votes_topic), starts tallyd, waits\n"
	        "until it is live and caught up, kills it with SIGKILL and starts it again,\n"
	        "--repeat times. Each start is timed from exec to tallyd's \"live\" log line,\n"
	        "with tallyd's own \"restored in\" figure beside it (registry, checkpoint and\n"
	        "voted set from PostgreSQL). The last line gives the median over the restarts\n"
	        "after a kill (target <= 5 s). The first start, when it reads every voters row,\n"
	        "is left to write its registry image before it is killed. Then times, alone,\n"
	        "the PostgreSQL reads the restore makes.\n\n"
	        "options:\n"
	        "  --repeat N      restarts after a kill (default 5)\n"
	        "%s",
	        common_help);
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/*
 * Start tallyd, time exec to "live", wait for "caught up" (or 10 s), then SIGKILL it. With
 * wait_image, a start that read every voters row is also left to write its registry image
 * (its "registry image ..." line, up to 300 s) first, as a server that stayed up would.
 */
static int
start_and_kill(const bench_run_t *run, const char *group, const char *log, bool wait_image,
               double *live, double *own_live, double *restored, uint64_t *read)
{
	char *argv[] = {"tallyd", "--topic-prefix", (char *)run->prefix, (char *)run->pgopt,
	                "--group-id", (char *)group, NULL};
	double t0 = bench_now(), seen_live = -1;
	tallyd_result_t r;
	char *text = NULL;
	pid_t pid = bench_spawn(run, "tallyd", argv, log);
	int st;

	if (pid < 0)
		return -1;
	memset(&r, 0, sizeof(r));
	r.live = r.restored = -1;
	for (;;) {
		double now = bench_now();

		if (waitpid(pid, &st, WNOHANG) == pid) {
			fprintf(stderr, "tally-bench: tallyd exited before it was live and caught up\n");
			bench_log_tail(bench_log_path(run, log), 20);
			return -1;
		}
		free(text);
		text = bench_slurp(bench_log_path(run, log));
		if (seen_live < 0 && bench_log_find(text, "tallyd: live ", false) != NULL)
			seen_live = now - t0;
		if (seen_live >= 0 &&
		    (bench_log_find(text, "tallyd: caught up: ", false) != NULL || now - t0 > 10 + seen_live)) {
			/* tallyd's restored line says "every voters row" after a full load. */
			bool full = bench_log_find(text, "every voters row", false) != NULL;

			if (!wait_image || !full ||
			    bench_log_find(text, "tallyd: registry image ", false) != NULL ||
			    now - t0 > 300 + seen_live)
				break;
		}
		if (now - t0 > 300) {
			fprintf(stderr, "tally-bench: tallyd not live after 300 s\n");
			kill(pid, SIGKILL);
			bench_wait(pid);
			free(text);
			return -1;
		}
		bench_sleep_ms(seen_live < 0 ? 2 : 20);
	}
	kill(pid, SIGKILL);
	bench_wait(pid);
	parse_tallyd_log(text, &r);
	free(text);
	*live = seen_live;
	*own_live = r.live;
	*restored = r.restored;
	*read = r.read;
	return 0;
}

int
tally_bench_recover(int argc, char **argv)
{
	bench_run_t run;
	opts_t o;
	int rc = parse(argc, argv, &o, recover_usage);
	int64_t msgs, covered, stored;
	char group[128], log[64];
	double *live = NULL, median;
	PGconn *conn = NULL;
	bool ok = false;

	if (rc >= 0)
		return rc;
	if (bench_run_init(&run, "recover", argv[0], o.bindir, o.reuse,
	                   o.reuse ? !o.drop : o.keep) != 0)
		return 1;
	live = calloc((size_t)o.repeat + 1, sizeof(*live));
	printf(ROW_FMT, "phase", "messages", "seconds", "msgs/s", "");
	if ((msgs = prepare(&run, &o)) < 0 || (conn = bench_pg(&run, true)) == NULL)
		goto out;
	/* tallyd's group: the same for every start, as a restarted server's would be. */
	snprintf(group, sizeof(group), "%s_recover", run.name);
	covered = bench_pg_int1(conn, "SELECT coalesce(sum(next_offset), 0) FROM checkpoint_offsets"
	                              " WHERE topic = $1", run.votes_topic);
	if (covered < msgs) {
		tallyd_result_t r;

		if (reset_tallyd(&run, false) != 0 ||
		    run_tallyd(&run, group, 0, END_EXIT, msgs, "tallyd-count.log", &r) != 0)
			goto out;
		row_s("count and checkpoint (tallyd, to exit)", r.read, r.exit, 0);
	}
	stored = bench_pg_int(conn, STORED_VOTES_SQL);
	printf("%" PRId64 " votes stored, checkpoint covers every message of \"%s\"\n", stored,
	       run.votes_topic);
	printf("\n%-34s %10s %12s %14s %10s\n", "start", "exec->live", "restored in",
	       "restore->live", "read");
	for (int i = 0; i <= o.repeat; i++) {
		double own = -1, restored = -1;
		uint64_t read = 0;
		char what[64];

		snprintf(log, sizeof(log), "tallyd-recover-%d.log", i);
		if (start_and_kill(&run, group, log, i == 0, &live[i], &own, &restored, &read) != 0)
			goto out;
		if (i == 0)
			snprintf(what, sizeof(what), "0 (after a clean stop)");
		else
			snprintf(what, sizeof(what), "%d (after SIGKILL)", i);
		printf("%-34s %10.3f %12.3f %14.3f %10" PRIu64 "\n", what, live[i], restored,
		       own - restored, read);
		fflush(stdout);
	}
	{
		uint64_t bytes;
		double t0 = bench_now();
		int64_t n = bench_pg_int(conn, "SELECT count(*) FROM voters");
		double secs = bench_now() - t0;

		printf("\n%-52s %12s %10s %10s\n", "postgres alone (what the restore reads)", "rows",
		       "seconds", "MB");
		printf("%-52s %12" PRId64 " %10.3f %10s\n", "SELECT count(*) FROM voters", n, secs, "");
		secs = bench_pg_copy_out(conn, "COPY (SELECT voter_id, date_of_birth - DATE '1970-01-01',"
		                               " region, registration_number FROM voters) TO STDOUT",
		                         &bytes);
		printf("%-52s %12" PRId64 " %10.3f %10.1f\n", "COPY voters (4 columns) TO STDOUT", n,
		       secs, (double)bytes / 1e6);
		secs = bench_pg_copy_out(conn, "COPY votes (voter_id) TO STDOUT (FORMAT binary)", &bytes);
		printf("%-52s %12" PRId64 " %10.3f %10.1f\n", "COPY votes (voter_id) TO STDOUT binary",
		       stored, secs, (double)bytes / 1e6);
		n = bench_pg_int(conn, "SELECT count(*) FROM registry_image_parts");
		secs = bench_pg_copy_out(conn, "COPY (SELECT data FROM registry_image_parts) TO STDOUT "
		                               "(FORMAT binary)", &bytes);
		printf("%-52s %12" PRId64 " %10.3f %10.1f\n", "COPY registry image parts TO STDOUT binary",
		       n, secs, (double)bytes / 1e6);
	}
	qsort(live + 1, (size_t)o.repeat, sizeof(*live), cmp_double);
	median = o.repeat % 2 ? live[1 + o.repeat / 2]
	                      : (live[o.repeat / 2] + live[1 + o.repeat / 2]) / 2;
	printf("recover seconds=%.3f\n", median);
	ok = true;
out:
	if (conn != NULL)
		PQfinish(conn);
	free(live);
	bench_finish(&run, ok, o.keep);
	return ok ? 0 : 1;
}

/* ---- clean ------------------------------------------------------------------------------- */

int
tally_bench_clean(int argc, char **argv)
{
	bench_run_t run;

	if (argc != 2 || strcmp(argv[1], "--help") == 0) {
		fprintf(argc == 2 ? stdout : stderr,
		        "usage: tally-bench clean NAME\n\n"
		        "Drops the schema NAME and deletes the topics \"NAME_*\" of a run kept with\n"
		        "--keep (NAME as printed by e2e or recover).\n");
		return argc == 2 ? 0 : 2;
	}
	if (bench_run_init(&run, "clean", argv[0], NULL, argv[1], false) != 0)
		return 1;
	bench_finish(&run, true, false);
	return 0;
}

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
#include "tallydtest.h"

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
	int instances;          /* e2e: 0, or also this many tallyd --cluster instances */
} opts_t;

typedef struct tallyd_result {
	int status;
	double live, restored, caught_up, durable, exit;   /* seconds from exec; -1: not seen */
	uint64_t read, accepted, rejected;
	int64_t stored;                                       /* rows in votes afterwards */
	/* CPU seconds so far, sampled when the bench saw "live" (0) and durable (1). */
	bench_cpu_t cpu0, cpu1;
	double self0, self1;                                  /* tallyd's own; -1: not taken */
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
	double next_live;
	char mp[32], app[BENCH_NAME_MAX + 32];
	/* The application name tells its PostgreSQL backends from other clients' (CPU rows). */
	char *argv[] = {"tallyd", "--topic-prefix", (char *)run->prefix, (char *)run->pgopt,
	                "--group-id", (char *)group, "--exit-idle-ms", "2000", app,
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
	r->self0 = r->self1 = -1;
	if (conn == NULL)
		return -1;
	snprintf(mp, sizeof(mp), "%" PRIu64, max_pending ? max_pending : 4000000);
	snprintf(app, sizeof(app), "--pg.application_name=%s", run->name);
	t0 = bench_now();
	if ((pid = bench_spawn(run, "tallyd", argv, log)) < 0) {
		PQfinish(conn);
		return -1;
	}
	next_poll = next_live = t0;
	for (;;) {
		pid_t w = waitpid(pid, &st, WNOHANG);
		double now = bench_now();

		if (w == pid) {
			r->exit = now - t0;
			break;
		}
		if (r->self0 < 0 && now >= next_live) {
			/* The CPU the processes have used so far, when counting begins. */
			text = bench_slurp(bench_log_path(run, log));
			if (bench_log_find(text, "tallyd: live ", false) != NULL) {
				bench_cpu_sample(&r->cpu0, conn, run->name);
				r->self0 = bench_cpu_pid(pid);
			}
			free(text);
			next_live = now + 0.02;
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

			if (done >= msgs) {
				r->durable = bench_now() - t0;
				bench_cpu_sample(&r->cpu1, conn, run->name);
				r->self1 = bench_cpu_pid(pid);
			}
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


/* ---- e2e --instances: tallyd --cluster ---------------------------------------------------- */

#define MAX_INST 16

typedef struct cluster_result {
	int n;
	double first_live;     /* seconds from the first exec to the first "live" line */
	double counted;        /* first live to the last "caught up" line of any instance */
	double durable;        /* first live to the checkpointed offsets covering every message */
	double shown;          /* first live to every instance's /api/results reading them all */
	double exec_shown;     /* the first exec to the same */
	double settled;        /* first live to every instance holding partitions (-1: never) */
	int64_t at_settled;    /* messages the checkpointed offsets covered then */
	double live[MAX_INST];              /* each one's "live", seconds from the first exec */
	double self0[MAX_INST], self1[MAX_INST];   /* CPU seconds at first live and durable */
	long parts[MAX_INST];               /* partitions each held at the end */
	uint64_t own_read[MAX_INST];        /* messages each read ("stopped: read N") */
	bench_cpu_t cpu0, cpu1;
	uint64_t read, accepted, rejected;  /* the whole election, from /api/results */
	int64_t stored;
	bool truth_checked;
} cluster_result_t;

static int64_t
json_int(json_t *o, const char *field)
{
	json_t *v = json_object_get(o, field);

	return json_is_integer(v) ? (int64_t)json_integer_value(v) : -1;
}

/*
 * n tallyd --cluster instances (one group, instance ids TAG-1..TAG-n, each its own --http
 * port), started together on the whole topic from an empty store, until every instance's
 * /api/results shows every message read (and, when this run loaded the data, equals
 * tally-sim's truth); then stopped with SIGTERM, and each must exit 0. Times are from the
 * first instance's "live" line (the earliest start of counting): counted = to the last
 * "caught up" line of any instance (each partition's last owner has read it to its end),
 * durable = the checkpointed offsets cover every message (polled every 50 ms), shown = the
 * whole election on every instance's /api/results (polled every 100 ms per instance).
 */
static int
run_cluster(const bench_run_t *run, int n, const char *tag, int64_t msgs, cluster_result_t *r)
{
	bench_inst_t inst[MAX_INST];
	char group[128], pgopt[256], log[4400], app[BENCH_NAME_MAX + 32];
	double t0, first_live = -1, next_poll = 0, next_http = 0;
	bool shown[MAX_INST] = {false};
	json_t *truth, *res = NULL;
	PGconn *conn;
	double settled_at = -1;
	int rc = -1, nshown = 0, np = 0;

	memset(r, 0, sizeof(*r));
	memset(inst, 0, sizeof(inst));
	r->n = n;
	r->first_live = r->counted = r->durable = r->shown = r->exec_shown = r->settled = -1;
	for (int i = 0; i < n; i++)
		r->live[i] = r->self0[i] = r->self1[i] = -1;
	if (bench_topic_messages(run, run->votes_topic, &np) < 0 || reset_tallyd(run, false) != 0 ||
	    (conn = bench_pg(run, true)) == NULL)
		return -1;
	/* The cluster's own tables: every partition unclaimed, no state stored. */
	if (bench_pg_exec(conn, "TRUNCATE partition_states, partition_owners") != 0) {
		PQfinish(conn);
		return -1;
	}
	snprintf(log, sizeof(log), "%s", bench_log_path(run, "truth.json"));
	truth = json_load_file(log, 0, NULL);   /* only when this run loaded the data */
	r->truth_checked = truth != NULL;
	snprintf(group, sizeof(group), "%s_%s", run->name, tag);
	/* tallyd adds this itself unless pg.options is set, as it is here (search_path). */
	snprintf(pgopt, sizeof(pgopt), "%s -cidle_in_transaction_session_timeout=10000", run->pgopt);
	snprintf(app, sizeof(app), "--pg.application_name=%s", run->name);
	t0 = bench_now();
	for (int i = 0; i < n; i++) {
		char *extra[] = {app, NULL};

		snprintf(inst[i].id, sizeof(inst[i].id), "%s-%d", tag, i + 1);
		if (bench_inst_spawn(run, &inst[i], group, pgopt, extra) < 0)
			goto out;
	}
	for (;;) {
		double now = bench_now();

		for (int i = 0; i < n; i++)
			if (!bench_inst_alive(&inst[i]))
				goto fail;
		if (first_live < 0) {
			for (int i = 0; i < n; i++) {
				char *text = bench_slurp(bench_log_path(run, inst[i].log));

				if (bench_log_find(text, "tallyd: live ", false) != NULL && first_live < 0) {
					first_live = now;
					bench_cpu_sample(&r->cpu0, conn, run->name);
					for (int j = 0; j < n; j++)
						r->self0[j] = bench_cpu_pid(inst[j].pid);
				}
				free(text);
			}
		}
		if (first_live >= 0 && r->durable < 0 && now >= next_poll) {
			int64_t done = bench_pg_int1(conn, "SELECT coalesce(sum(next_offset), 0) "
			                                   "FROM checkpoint_offsets WHERE topic = $1",
			                             run->votes_topic);

			if (done < 0 && PQstatus(conn) != CONNECTION_OK)
				PQreset(conn);
			if (r->settled < 0 && done >= 0) {
				/* Every instance holds partitions (logs: assigned minus revoked). */
				long sum = 0, each = 1;

				for (int i = 0; i < n; i++) {
					long k = bench_inst_owned(run, &inst[i]);

					sum += k;
					each = k > 0 ? each : 0;
				}
				if (each && sum == np) {
					r->settled = now - first_live;
					r->at_settled = done;
				}
			}
			if (done >= msgs) {
				r->durable = bench_now() - first_live;
				bench_cpu_sample(&r->cpu1, conn, run->name);
				for (int j = 0; j < n; j++)
					r->self1[j] = bench_cpu_pid(inst[j].pid);
			}
			next_poll = now + 0.05;
		}
		if (first_live >= 0 && now >= next_http) {
			for (int i = 0; i < n; i++) {
				char why[256];

				if (shown[i])
					continue;
				json_decref(res);
				if ((res = bench_inst_results(run, &inst[i])) == NULL ||
				    json_int(res, "read") != msgs)
					continue;
				if (truth != NULL && !tt_results_equal_truth(res, truth, why, sizeof(why))) {
					fprintf(stderr, "tally-bench: %s's /api/results read every message but "
					                "is not tally-sim's truth: %s\n", inst[i].id, why);
					goto fail;
				}
				shown[i] = true;
				nshown++;
				r->read = (uint64_t)json_int(res, "read");
				r->accepted = (uint64_t)json_int(res, "accepted");
				r->rejected = (uint64_t)json_int(res, "rejected_total");
			}
			if (nshown == n) {
				r->shown = bench_now() - first_live;
				r->exec_shown = bench_now() - t0;
			}
			next_http = now + 0.1;
		}
		if (r->shown >= 0 && r->durable >= 0 && settled_at < 0)
			settled_at = now;
		/* Each instance holding partitions logs "caught up" once it has seen their ends
		 * (up to a fetch wait later): wait for that line after its last assignment, so that
		 * counted can be read from the logs, as for one tallyd. */
		if (settled_at >= 0) {
			int ncaught = 0;

			for (int i = 0; i < n; i++) {
				char *text = bench_slurp(bench_log_path(run, inst[i].log));
				const char *a = bench_log_find(text, "tallyd: assigned ", true);
				const char *c = bench_log_find(text, "tallyd: caught up: ", true);

				ncaught += bench_inst_owned(run, &inst[i]) == 0 || (c != NULL && c > a);
				free(text);
			}
			if (ncaught == n)
				break;
			if (now - settled_at > 10) {
				fprintf(stderr, "tally-bench: warning: %d of %d instances logged no \"caught "
				                "up\" after their last assignment within 10 s of durable\n",
				        n - ncaught, n);
				break;
			}
		}
		if (now - t0 > 900) {
			fprintf(stderr, "tally-bench: the cluster of %d had not counted every message "
			                "after 900 s (%d instances show them all)\n", n, nshown);
			goto fail;
		}
		bench_sleep_ms(20);
	}
	for (int i = 0; i < n; i++)
		r->parts[i] = bench_inst_owned(run, &inst[i]);
	for (int i = 0; i < n; i++)
		kill(inst[i].pid, SIGTERM);
	rc = 0;
	for (int i = 0; i < n; i++) {
		tallyd_result_t one;
		int st = bench_wait(inst[i].pid);
		char *text = bench_slurp(bench_log_path(run, inst[i].log));

		inst[i].pid = 0;
		memset(&one, 0, sizeof(one));
		one.live = one.caught_up = -1;
		parse_tallyd_log(text, &one);
		free(text);
		r->own_read[i] = one.read;
		if (one.live >= 0)
			r->live[i] = inst[i].t_exec - t0 + one.live;
		/* Seconds since that instance's start, made relative to the first live. */
		if (one.caught_up >= 0 && inst[i].t_exec + one.caught_up - first_live > r->counted)
			r->counted = inst[i].t_exec + one.caught_up - first_live;
		if (st != 0) {
			fprintf(stderr, "tally-bench: %s exited with status %d after SIGTERM\n",
			        inst[i].id, st);
			rc = -1;
		}
	}
	r->first_live = first_live - t0;
	if (PQstatus(conn) != CONNECTION_OK)
		PQreset(conn);
	r->stored = bench_pg_int(conn, STORED_VOTES_SQL);
	if (rc == 0 && (r->stored != (int64_t)r->accepted || r->counted < 0)) {
		fprintf(stderr, "tally-bench: the cluster of %d: %" PRId64 " votes stored, %" PRIu64
		                " accepted%s\n", n, r->stored, r->accepted,
		        r->counted < 0 ? ", no \"caught up\" line" : "");
		rc = -1;
	}
	if (rc == 0)
		goto out;
fail:
	rc = -1;
	for (int i = 0; i < n; i++)
		if (inst[i].log[0] != '\0') {
			fprintf(stderr, "--- %s\n", bench_log_path(run, inst[i].log));
			bench_log_tail(bench_log_path(run, inst[i].log), 15);
		}
out:
	bench_inst_kill_all(inst, n);
	json_decref(res);
	json_decref(truth);
	PQfinish(conn);
	return rc;
}

/* CPU seconds a message, in microseconds, between two samples. */
static double
us_per_msg(double a, double b, int64_t msgs)
{
	return a < 0 || b < 0 ? -1 : (b - a) * 1e6 / (double)msgs;
}

/* Where the CPU went between "live" and durable: tallyd's processes, the broker, PostgreSQL. */
static void
cpu_rows(const char *label, double tallyd0, double tallyd1, const bench_cpu_t *c0,
         const bench_cpu_t *c1, double window, int64_t msgs)
{
	double busy = c1->machine_busy - c0->machine_busy, all = c1->machine_all - c0->machine_all;

	printf("%-54s %9.2f CPU-s %6.2f us/msg\n", label, tallyd1 - tallyd0,
	       us_per_msg(tallyd0, tallyd1, msgs));
	printf("%-54s %9.2f CPU-s %6.2f us/msg\n", "  Kafka broker (shared: all its clients)", c1->broker - c0->broker,
	       us_per_msg(c0->broker, c1->broker, msgs));
	printf("%-54s %9.2f CPU-s %6.2f us/msg\n", "  PostgreSQL: tallyd's backends",
	       c1->backends - c0->backends, us_per_msg(c0->backends, c1->backends, msgs));
	printf("%-54s %9.2f CPU-s %6.2f us/msg\n", "  PostgreSQL: every postgres process",
	       c1->postgres - c0->postgres, us_per_msg(c0->postgres, c1->postgres, msgs));
	printf("%-54s %9.2f CPU-s of %.2f (%.0f %% busy over %.3f s)\n", "  the whole machine",
	       busy, all, all > 0 ? 100 * busy / all : 0, window);
	fflush(stdout);
}

static void
cluster_rows(const char *label, const cluster_result_t *r, int64_t msgs, double bare)
{
	char what[128];
	double t0 = 0, t1 = 0;

	printf("\n");
	for (int i = 0; i < r->n; i++) {
		printf("%s, instance %d: live at %.3f s, %ld partitions at the end, read %" PRIu64
		       ", %.2f CPU-s counting\n", label, i + 1, r->live[i], r->parts[i], r->own_read[i],
		       r->self1[i] - r->self0[i]);
		t0 += r->self0[i];
		t1 += r->self1[i];
	}
	snprintf(what, sizeof(what), "%s: exec to first live", label);
	row_s(what, 0, r->first_live, 0);
	snprintf(what, sizeof(what), "%s: counted (first live to last caught up)", label);
	row_s(what, msgs, r->counted, bare / r->counted);
	snprintf(what, sizeof(what), "%s: every instance holding partitions", label);
	row_s(what, r->settled >= 0 ? (uint64_t)r->at_settled : 0, r->settled, 0);
	if (r->settled >= 0 && r->settled < r->durable) {
		snprintf(what, sizeof(what), "%s: from then to durable", label);
		row_s(what, (uint64_t)(msgs - r->at_settled), r->durable - r->settled, 0);
	} else {
		printf("%s: the backlog was counted before every instance held partitions\n", label);
	}
	snprintf(what, sizeof(what), "%s: durable (first live to checkpoint)", label);
	row_s(what, msgs, r->durable, bare / r->durable);
	snprintf(what, sizeof(what), "%s: shown (first live to every /api/results)", label);
	row_s(what, msgs, r->shown, bare / r->shown);
	snprintf(what, sizeof(what), "%s: exec to shown", label);
	row_s(what, 0, r->exec_shown, 0);
	printf("%s: read %" PRIu64 ", accepted %" PRIu64 ", rejected %" PRIu64 ", %" PRId64
	       " votes stored%s\n", label, r->read, r->accepted, r->rejected, r->stored,
	       r->truth_checked ? "; every instance's /api/results = tally-sim's truth" : "");
	snprintf(what, sizeof(what), "CPU, first live to durable: %d tallyd", r->n);
	cpu_rows(what, t0, t1, &r->cpu0, &r->cpu1, r->durable, msgs);
}

enum { O_DIAG = 100, O_SHAPE, O_BARE, O_PAIRS, O_INST, O_VOTES = 1, O_VOTERS, O_PARTS, O_MAXP, O_REPEAT, O_REUSE, O_KEEP, O_DROP, O_BIN, O_HELP };

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
	{"instances", required_argument, NULL, O_INST},
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
		case O_INST: o->instances = atoi(optarg); break;
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
	    o->instances < 0 || o->instances > MAX_INST ||
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
	        "  --instances N   also run N tallyd --cluster instances (one group, instance ids\n"
	        "                  cN-1..cN-N, --http on free ports) together on the same topic,\n"
	        "                  after B (B then stops once durable) or in each --pairs round\n"
	        "                  after tallyd, until every instance's /api/results shows every\n"
	        "                  message; the last line reports the cluster (same fields, from\n"
	        "                  the first instance's live line; counted = to the last\n"
	        "                  \"caught up\" line of any instance) plus instances=N,\n"
	        "                  shown_ratio (to every /api/results) and vs_plain (the plain\n"
	        "                  tallyd's durable seconds / the cluster's, in the same run);\n"
	        "                  N at most the partitions of votes_topic (1 to %d)\n"
	        "%s",
	        MAX_INST, common_help);
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
	double *ccnt = calloc((size_t)n, sizeof(double)), *cdur = calloc((size_t)n, sizeof(double));
	double *cshow = calloc((size_t)n, sizeof(double));
	double bb, bbp, bc, bd, mb, mbp, mc, md, cc = 0, cd = 0, cs = 0;
	tallyd_result_t r = {0};
	cluster_result_t cr = {0};
	int rc = -1;

	if (b == NULL || bp == NULL || cnt == NULL || dur == NULL || rat == NULL || ccnt == NULL ||
	    cdur == NULL || cshow == NULL)
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
		if (o->instances > 0) {
			char tag[32];

			cpu_rows("CPU, live to durable: tallyd", r.self0, r.self1, &r.cpu0, &r.cpu1,
			         dur[i], msgs);
			/* A group of its own each round: static members of the last round's group
			 * stay in it until their session times out. */
			snprintf(tag, sizeof(tag), "c%dr%d", o->instances, i + 1);
			snprintf(what, sizeof(what), "round %d: cluster of %d", i + 1, o->instances);
			if (run_cluster(run, o->instances, tag, msgs, &cr) != 0)
				goto out;
			cluster_rows(what, &cr, msgs, b[i] < bp[i] ? b[i] : bp[i]);
			if (cr.accepted != r.accepted || cr.rejected != r.rejected) {
				fprintf(stderr, "tally-bench: the cluster accepted %" PRIu64 " and rejected %"
				                PRIu64 ", tallyd %" PRIu64 " and %" PRIu64 "\n", cr.accepted,
				        cr.rejected, r.accepted, r.rejected);
				goto out;
			}
			ccnt[i] = cr.counted, cdur[i] = cr.durable, cshow[i] = cr.shown;
		}
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
	for (int i = 0; o->instances > 0 && i < n; i++) {
		cc = i == 0 || ccnt[i] < cc ? ccnt[i] : cc;
		cd = i == 0 || cdur[i] < cd ? cdur[i] : cd;
		cs = i == 0 || cshow[i] < cs ? cshow[i] : cs;
	}
	mb = median(b, n + 1), mbp = median(bp, n), mc = median(cnt, n), md = median(dur, n);
	printf("\n%-54s %12s %10s %10s\n", "fastest and median of", "runs", "fastest", "median");
	printf("%-54s %12d %10.3f %10.3f\n", "bare consumer: assigned to end", n + 1, bb, mb);
	printf("%-54s %12d %10.3f %10.3f\n", "bare consumer (tallyd's prefetch)", n, bbp, mbp);
	printf("%-54s %12d %10.3f %10.3f\n", "tallyd counted (live to caught up)", n, bc, mc);
	printf("%-54s %12d %10.3f %10.3f\n", "tallyd durable (live to checkpoint)", n, bd, md);
	if (o->instances > 0) {
		char what[96];

		snprintf(what, sizeof(what), "%d tallyd --cluster counted (to last caught up)",
		         o->instances);
		printf("%-54s %12d %10.3f %10.3f\n", what, n, cc, median(ccnt, n));
		snprintf(what, sizeof(what), "%d tallyd --cluster durable", o->instances);
		printf("%-54s %12d %10.3f %10.3f\n", what, n, cd, median(cdur, n));
		snprintf(what, sizeof(what), "%d tallyd --cluster shown (every /api/results)",
		         o->instances);
		printf("%-54s %12d %10.3f %10.3f\n", what, n, cs, median(cshow, n));
	}
	printf("median over the rounds of (faster bare consumer of the round / tallyd counted): "
	       "%.2f\n", median(rat, n));
	printf("tallyd: read %" PRIu64 ", accepted %" PRIu64 ", rejected %" PRIu64 ", %" PRId64
	       " votes stored (last round)\n", r.read, r.accepted, r.rejected, r.stored);
	if (o->instances > 0)
		printf("e2e votes_per_s=%.0f consumer_ratio=%.2f durable_votes_per_s=%.0f "
		       "durable_ratio=%.2f prefetch_consumer_ratio=%.2f bytes_per_msg=%.0f "
		       "instances=%d shown_ratio=%.2f vs_plain=%.2f\n",
		       (double)msgs / cc, bb / cc, (double)msgs / cd, bb / cd, bbp / cc,
		       (double)bare1->bytes / (double)bare1->msgs, o->instances, bb / cs, bd / cd);
	else
		printf("e2e votes_per_s=%.0f consumer_ratio=%.2f durable_votes_per_s=%.0f "
		       "durable_ratio=%.2f prefetch_consumer_ratio=%.2f bytes_per_msg=%.0f\n",
		       (double)msgs / bc, bb / bc, (double)msgs / bd, bb / bd, bbp / bc,
		       (double)bare1->bytes / (double)bare1->msgs);
	rc = 0;
out:
	free(b), free(bp), free(cnt), free(dur), free(rat), free(ccnt), free(cdur), free(cshow);
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
	cluster_result_t clu = {0};
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
	if (o.instances > 0) {
		int np = 0;

		if (bench_topic_messages(&run, run.votes_topic, &np) < 0)
			goto out;
		if (o.instances > np) {
			fprintf(stderr, "tally-bench: \"%s\" has %d partitions, fewer than --instances %d "
			                "(load with --partitions %d or more)\n", run.votes_topic, np,
			        o.instances, o.instances);
			goto out;
		}
	}

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
	/* B, the one the last line reports: registrations already followed. With --instances
	 * it is stopped once durable, as the cluster is, and the cluster is reported. */
	snprintf(group, sizeof(group), "%s_tallyd_b", run.name);
	if (reset_tallyd(&run, false) != 0 ||
	    run_tallyd(&run, group, 0, o.instances > 0 ? END_DURABLE : END_EXIT, msgs,
	               "tallyd-e2e.log", &def) != 0)
		goto out;
	if (o.instances > 0) {
		char tag[32];

		bench_print_load("before the cluster");
		snprintf(tag, sizeof(tag), "c%d", o.instances);
		if (run_cluster(&run, o.instances, tag, msgs, &clu) != 0)
			goto out;
	}

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
	if (o.instances > 0) {
		char label[64];
		double bare3 = bare[2].total_s - bare[2].assigned_s;

		cpu_rows("CPU, live to durable: tallyd B", def.self0, def.self1, &def.cpu0, &def.cpu1,
		         def.durable - def.live, msgs);
		snprintf(label, sizeof(label), "cluster of %d", o.instances);
		cluster_rows(label, &clu, msgs, best);
		if (clu.accepted != def.accepted || clu.rejected != def.rejected) {
			fprintf(stderr, "tally-bench: the cluster accepted %" PRIu64 " and rejected %"
			                PRIu64 ", tallyd B %" PRIu64 " and %" PRIu64 "\n", clu.accepted,
			        clu.rejected, def.accepted, def.rejected);
			goto out;
		}
		printf("e2e votes_per_s=%.0f consumer_ratio=%.2f durable_votes_per_s=%.0f "
		       "durable_ratio=%.2f prefetch_consumer_ratio=%.2f bytes_per_msg=%.0f "
		       "instances=%d shown_ratio=%.2f vs_plain=%.2f\n",
		       (double)msgs / clu.counted, best / clu.counted, (double)msgs / clu.durable,
		       best / clu.durable, bare3 / clu.counted,
		       (double)bare[0].bytes / (double)bare[0].msgs, o.instances, best / clu.shown,
		       (def.durable - def.live) / clu.durable);
		ok = true;
		goto out;
	}
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

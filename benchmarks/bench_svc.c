/*
 * tally-bench's service helpers (see bench_svc.h).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#include <tally/kafka.h>
#include <tally/pg.h>

#include "bench_svc.h"
#include "tallydtest.h"

extern char **environ;

double
bench_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void
bench_print_load(const char *label)
{
	char buf[128] = "";
	FILE *f = fopen("/proc/loadavg", "r");

	if (f != NULL) {
		if (fgets(buf, sizeof(buf), f) == NULL)
			buf[0] = '\0';
		fclose(f);
	}
	buf[strcspn(buf, "\n")] = '\0';
	printf("load average %s: %s\n", label, buf[0] ? buf : "unknown");
	fflush(stdout);
}

void
bench_sleep_ms(unsigned ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

static bool
name_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > BENCH_NAME_MAX || !(s[0] >= 'a' && s[0] <= 'z'))
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_'))
			return false;
	return true;
}

int
bench_run_init(bench_run_t *run, const char *what, const char *argv0, const char *bindir,
               const char *reuse, bool keep)
{
	const char *tmp = getenv("TMPDIR");
	char self[4096];
	ssize_t n;

	memset(run, 0, sizeof(*run));
	run->brokers = getenv("TALLY_KAFKA_BROKERS");
	run->dsn = getenv("TALLY_PG_DSN");
	if (run->brokers == NULL || run->brokers[0] == '\0' || run->dsn == NULL ||
	    run->dsn[0] == '\0') {
		fprintf(stderr, "tally-bench %s: TALLY_KAFKA_BROKERS and TALLY_PG_DSN must be set: "
		                "run 'eval \"$(scripts/services up)\"' first (or point them at your own "
		                "Kafka and PostgreSQL)\n", what);
		return -1;
	}
	if (bindir != NULL) {
		snprintf(run->bindir, sizeof(run->bindir), "%s", bindir);
	} else if ((n = readlink("/proc/self/exe", self, sizeof(self) - 1)) > 0) {
		self[n] = '\0';
		snprintf(run->bindir, sizeof(run->bindir), "%s", dirname(self));
	} else {
		snprintf(self, sizeof(self), "%s", argv0);
		snprintf(run->bindir, sizeof(run->bindir), "%s", dirname(self));
	}
	if (reuse != NULL) {
		if (!name_ok(reuse)) {
			fprintf(stderr, "tally-bench %s: --reuse \"%s\": a run name is 1 to %d of "
			                "[a-z0-9_], starting with a letter\n", what, reuse, BENCH_NAME_MAX);
			return -1;
		}
		snprintf(run->name, sizeof(run->name), "%s", reuse);
		run->reused = true;
	} else {
		snprintf(run->name, sizeof(run->name), "tbench_%s_%d_%ld", what, (int)getpid(),
		         (long)(time(NULL) % 100000));
	}
	snprintf(run->prefix, sizeof(run->prefix), "%s_", run->name);
	snprintf(run->pgopt, sizeof(run->pgopt), "--pg.options=-csearch_path=%s", run->name);
	snprintf(run->votes_topic, sizeof(run->votes_topic), "%svotes_topic", run->prefix);
	snprintf(run->logdir, sizeof(run->logdir), "%s/tally-bench-%s-%d",
	         tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp", run->name, (int)getpid());
	if (mkdir(run->logdir, 0700) != 0 && errno != EEXIST) {
		fprintf(stderr, "tally-bench %s: could not create \"%s\": %s\n", what, run->logdir,
		        strerror(errno));
		return -1;
	}
	run->keep = keep;
	return 0;
}

/* ---- PostgreSQL ------------------------------------------------------------------------ */

PGconn *
bench_pg(const bench_run_t *run, bool in_schema)
{
	char opt[BENCH_NAME_MAX + 32], err[512];
	tally_pg_param_t p = {"options", opt};
	PGconn *conn;

	snprintf(opt, sizeof(opt), "-csearch_path=%s", run->name);
	conn = tally_pg_connect(run->dsn, &p, in_schema ? 1 : 0, 5000, err, sizeof(err));
	if (conn == NULL)
		fprintf(stderr, "tally-bench: %s\n", err);
	return conn;
}

int
bench_pg_exec(PGconn *conn, const char *sql)
{
	PGresult *res = PQexec(conn, sql);
	int rc = 0;

	if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK) {
		fprintf(stderr, "tally-bench: \"%s\" failed: %s", sql, PQresultErrorMessage(res));
		rc = -1;
	}
	PQclear(res);
	return rc;
}

int64_t
bench_pg_int(PGconn *conn, const char *sql)
{
	return bench_pg_int1(conn, sql, NULL);
}

int64_t
bench_pg_int1(PGconn *conn, const char *sql, const char *param)
{
	PGresult *res = param != NULL ? PQexecParams(conn, sql, 1, NULL, &param, NULL, NULL, 0)
	                              : PQexec(conn, sql);
	int64_t v = -1;

	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) < 1)
		fprintf(stderr, "tally-bench: \"%s\" failed: %s", sql, PQresultErrorMessage(res));
	else
		v = PQgetisnull(res, 0, 0) ? 0 : strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	return v;
}

int64_t
bench_pg_copy_rows(PGconn *conn, const char *sql,
                   void (*row)(void *arg, const char *data, int len), void *arg,
                   uint64_t *bytes)
{
	PGresult *res = PQexec(conn, sql);
	int64_t rows = 0;
	char *buf;
	int n;

	if (bytes != NULL)
		*bytes = 0;
	if (PQresultStatus(res) != PGRES_COPY_OUT) {
		fprintf(stderr, "tally-bench: \"%s\" failed: %s", sql, PQresultErrorMessage(res));
		PQclear(res);
		return -1;
	}
	PQclear(res);
	while ((n = PQgetCopyData(conn, &buf, 0)) > 0) {
		if (row != NULL)
			row(arg, buf, n);
		if (bytes != NULL)
			*bytes += (uint64_t)n;
		rows++;
		PQfreemem(buf);
	}
	if (n != -1) {
		fprintf(stderr, "tally-bench: \"%s\" failed: %s", sql, PQerrorMessage(conn));
		rows = -1;
	}
	while ((res = PQgetResult(conn)) != NULL) {
		if (PQresultStatus(res) != PGRES_COMMAND_OK) {
			fprintf(stderr, "tally-bench: \"%s\" failed: %s", sql, PQresultErrorMessage(res));
			rows = -1;
		}
		PQclear(res);
	}
	return rows;
}

double
bench_pg_copy_out(PGconn *conn, const char *sql, uint64_t *bytes)
{
	double t0 = bench_now();

	return bench_pg_copy_rows(conn, sql, NULL, NULL, bytes) < 0 ? -1 : bench_now() - t0;
}

int
bench_schema_create(const bench_run_t *run)
{
	PGconn *conn = bench_pg(run, false);
	char sql[BENCH_NAME_MAX + 32];
	int rc;

	if (conn == NULL)
		return -1;
	/* Identifiers cannot be parameters: the name is checked to be only [a-z0-9_]. */
	snprintf(sql, sizeof(sql), "CREATE SCHEMA %s", run->name);
	rc = bench_pg_exec(conn, sql);
	PQfinish(conn);
	return rc;
}

int
bench_schema_drop(const bench_run_t *run)
{
	PGconn *conn = bench_pg(run, false);
	char sql[BENCH_NAME_MAX + 32];
	int rc;

	if (conn == NULL)
		return -1;
	snprintf(sql, sizeof(sql), "DROP SCHEMA IF EXISTS %s CASCADE", run->name);
	rc = bench_pg_exec(conn, sql);
	PQfinish(conn);
	return rc;
}

/* ---- Kafka ------------------------------------------------------------------------------ */

static rd_kafka_t *
kafka_client(const bench_run_t *run, rd_kafka_type_t type, const char *const *kv, size_t nkv)
{
	char err[512];
	rd_kafka_conf_t *kc = tally_kafka_conf_new(run->brokers, NULL, 0, err, sizeof(err));
	rd_kafka_t *rk;

	if (kc == NULL) {
		fprintf(stderr, "tally-bench: %s\n", err);
		return NULL;
	}
	for (size_t i = 0; i + 1 < nkv; i += 2) {
		if (rd_kafka_conf_set(kc, kv[i], kv[i + 1], err, sizeof(err)) != RD_KAFKA_CONF_OK) {
			fprintf(stderr, "tally-bench: %s: %s\n", kv[i], err);
			rd_kafka_conf_destroy(kc);
			return NULL;
		}
	}
	if ((rk = rd_kafka_new(type, kc, err, sizeof(err))) == NULL) {
		fprintf(stderr, "tally-bench: could not create a Kafka client: %s\n", err);
		rd_kafka_conf_destroy(kc);
	}
	return rk;
}

rd_kafka_t *
bench_kafka_new(const bench_run_t *run, rd_kafka_type_t type, const char *const *kv, size_t nkv)
{
	return kafka_client(run, type, kv, nkv);
}

void
bench_topics_delete(const bench_run_t *run)
{
	tally_kafka_topics_t t;
	rd_kafka_DeleteTopic_t *dts[TALLY_KAFKA_N_TOPICS];
	rd_kafka_t *rk;
	rd_kafka_queue_t *q;
	rd_kafka_event_t *ev;
	char err[256];

	if (tally_kafka_topics_init(&t, run->prefix, 0, err, sizeof(err)) != 0 ||
	    (rk = kafka_client(run, RD_KAFKA_PRODUCER, NULL, 0)) == NULL) {
		fprintf(stderr, "tally-bench: could not delete the topics \"%s*\"\n", run->prefix);
		return;
	}
	q = rd_kafka_queue_new(rk);
	for (int i = 0; i < TALLY_KAFKA_N_TOPICS; i++)
		dts[i] = rd_kafka_DeleteTopic_new(t.names[i]);
	rd_kafka_DeleteTopics(rk, dts, TALLY_KAFKA_N_TOPICS, NULL, q);
	if ((ev = rd_kafka_queue_poll(q, 30000)) == NULL)
		fprintf(stderr, "tally-bench: deleting the topics \"%s*\" timed out\n", run->prefix);
	else
		rd_kafka_event_destroy(ev);
	rd_kafka_DeleteTopic_destroy_array(dts, TALLY_KAFKA_N_TOPICS);
	rd_kafka_queue_destroy(q);
	rd_kafka_destroy(rk);
}

int64_t
bench_topic_messages(const bench_run_t *run, const char *topic, int *partitions)
{
	rd_kafka_t *rk = kafka_client(run, RD_KAFKA_PRODUCER, NULL, 0);
	const struct rd_kafka_metadata *md = NULL;
	rd_kafka_topic_t *rkt;
	rd_kafka_resp_err_t e;
	int64_t total = 0;
	int np;

	if (rk == NULL)
		return -1;
	rkt = rd_kafka_topic_new(rk, topic, NULL);
	e = rd_kafka_metadata(rk, 0, rkt, &md, 10000);
	if (e != RD_KAFKA_RESP_ERR_NO_ERROR || md->topic_cnt != 1 || md->topics[0].err != 0) {
		fprintf(stderr, "tally-bench: no topic \"%s\": %s\n", topic,
		        rd_kafka_err2str(e ? e : md->topic_cnt ? md->topics[0].err : e));
		total = -1;
		goto out;
	}
	np = md->topics[0].partition_cnt;
	for (int p = 0; p < np; p++) {
		int64_t lo, hi;

		e = rd_kafka_query_watermark_offsets(rk, topic, p, &lo, &hi, 10000);
		if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
			fprintf(stderr, "tally-bench: watermarks of \"%s\" [%d]: %s\n", topic, p,
			        rd_kafka_err2str(e));
			total = -1;
			goto out;
		}
		total += hi - lo;
	}
	if (partitions != NULL)
		*partitions = np;
out:
	if (md != NULL)
		rd_kafka_metadata_destroy(md);
	rd_kafka_topic_destroy(rkt);
	rd_kafka_destroy(rk);
	return total;
}

struct consume_state {
	double t0, assigned;
};

static void
on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t *list,
             void *opaque)
{
	struct consume_state *st = opaque;

	if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
		/* As tallyd does with no checkpoint: every partition from its beginning. */
		for (int i = 0; i < list->cnt; i++)
			list->elems[i].offset = RD_KAFKA_OFFSET_BEGINNING;
		rd_kafka_assign(rk, list);
		if (st->assigned == 0)
			st->assigned = bench_now();
	} else {
		rd_kafka_assign(rk, NULL);
	}
}

int
bench_bare_consume(const bench_run_t *run, const char *topic, const char *group,
                   bool prefetch, bench_consume_t *out)
{
	/* tallyd's consumer settings; fetch settings at librdkafka's defaults unless prefetch. */
	const char *kv[] = {"group.id", group, "enable.auto.commit", "false",
	                    "enable.auto.offset.store", "false", "auto.offset.reset", "earliest",
	                    "enable.partition.eof", "true",
	                    "queued.min.messages", prefetch ? "1000000" : "100000",
	                    "queued.max.messages.kbytes", prefetch ? "262144" : "65536"};
	struct consume_state st = {bench_now(), 0};
	rd_kafka_topic_partition_list_t *sub;
	rd_kafka_message_t *msgs[1024];
	rd_kafka_queue_t *queue;
	rd_kafka_t *rk;
	char err[512];
	rd_kafka_conf_t *kc = tally_kafka_conf_new(run->brokers, NULL, 0, err, sizeof(err));
	int partitions = 0, at_end = 0;
	bool *eof = NULL;
	double deadline;
	int64_t expect = bench_topic_messages(run, topic, &partitions);

	memset(out, 0, sizeof(*out));
	if (kc == NULL || expect < 0) {
		if (kc == NULL)
			fprintf(stderr, "tally-bench: %s\n", err);
		else
			rd_kafka_conf_destroy(kc);
		return -1;
	}
	for (size_t i = 0; i < sizeof(kv) / sizeof(kv[0]); i += 2)
		if (rd_kafka_conf_set(kc, kv[i], kv[i + 1], err, sizeof(err)) != RD_KAFKA_CONF_OK) {
			fprintf(stderr, "tally-bench: %s: %s\n", kv[i], err);
			rd_kafka_conf_destroy(kc);
			return -1;
		}
	rd_kafka_conf_set_opaque(kc, &st);
	rd_kafka_conf_set_rebalance_cb(kc, on_rebalance);
	st.t0 = bench_now();
	if ((rk = rd_kafka_new(RD_KAFKA_CONSUMER, kc, err, sizeof(err))) == NULL) {
		fprintf(stderr, "tally-bench: could not create a Kafka consumer: %s\n", err);
		rd_kafka_conf_destroy(kc);
		return -1;
	}
	rd_kafka_poll_set_consumer(rk);
	queue = rd_kafka_queue_get_consumer(rk);
	sub = rd_kafka_topic_partition_list_new(1);
	rd_kafka_topic_partition_list_add(sub, topic, RD_KAFKA_PARTITION_UA);
	rd_kafka_subscribe(rk, sub);
	rd_kafka_topic_partition_list_destroy(sub);
	eof = calloc((size_t)partitions, sizeof(*eof));
	deadline = st.t0 + 600;
	while (at_end < partitions && bench_now() < deadline) {
		ssize_t got = rd_kafka_consume_batch_queue(queue, 100, msgs, 1024);

		for (ssize_t i = 0; i < got; i++) {
			rd_kafka_message_t *m = msgs[i];

			if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
				if (m->partition < partitions && !eof[m->partition]) {
					eof[m->partition] = true;
					at_end++;
				}
			} else if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
				out->msgs++;
				out->bytes += m->len;
			} else {
				fprintf(stderr, "tally-bench: bare consumer: %s\n", rd_kafka_message_errstr(m));
			}
			rd_kafka_message_destroy(m);
		}
	}
	out->total_s = bench_now() - st.t0;
	out->assigned_s = st.assigned > 0 ? st.assigned - st.t0 : 0;
	free(eof);
	rd_kafka_queue_destroy(queue);
	rd_kafka_consumer_close(rk);
	rd_kafka_destroy(rk);
	if (at_end < partitions || out->msgs != (uint64_t)expect) {
		fprintf(stderr, "tally-bench: bare consumer read %" PRIu64 " of %" PRId64
		                " messages (%d of %d partitions to their end)\n",
		        out->msgs, expect, at_end, partitions);
		return -1;
	}
	return 0;
}

/* ---- children --------------------------------------------------------------------------- */

const char *
bench_log_path(const bench_run_t *run, const char *log)
{
	static char path[sizeof(((bench_run_t *)0)->logdir) + 260];

	snprintf(path, sizeof(path), "%s/%s", run->logdir, log);
	return path;
}

pid_t
bench_spawn(const bench_run_t *run, const char *prog, char *const argv[], const char *log)
{
	posix_spawn_file_actions_t fa;
	char path[4200];
	pid_t pid;
	int rc;

	snprintf(path, sizeof(path), "%s/%s", run->bindir, prog);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 2, bench_log_path(run, log),
	                                 O_WRONLY | O_CREAT | O_TRUNC, 0644);
	rc = posix_spawn(&pid, path, &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (rc != 0) {
		fprintf(stderr, "tally-bench: could not start \"%s\": %s\n", path, strerror(rc));
		return -1;
	}
	return pid;
}

int
bench_wait(pid_t pid)
{
	int st;

	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

char *
bench_slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf = NULL;
	size_t len = 0, cap = 0, n;

	if (f == NULL)
		return NULL;
	do {
		if (cap - len < 65536) {
			char *b = realloc(buf, cap + 65536 + 1);

			if (b == NULL) {
				free(buf);
				fclose(f);
				return NULL;
			}
			buf = b;
			cap += 65536;
		}
		n = fread(buf + len, 1, cap - len, f);
		len += n;
	} while (n > 0);
	fclose(f);
	buf[len] = '\0';
	return buf;
}

const char *
bench_log_find(const char *text, const char *key, bool last)
{
	const char *hit = NULL, *p = text;

	if (text == NULL)
		return NULL;
	while ((p = strstr(p, key)) != NULL) {
		hit = p + strlen(key);
		if (!last)
			break;
		p = hit;
	}
	return hit;
}

void
bench_log_tail(const char *path, int lines)
{
	char *text = bench_slurp(path);
	const char *p;
	int seen = 0;

	if (text == NULL)
		return;
	p = text + strlen(text);
	while (p > text && seen <= lines)
		if (*--p == '\n')
			seen++;
	fprintf(stderr, "--- last lines of %s ---\n%s", path, p == text ? p : p + 1);
	free(text);
}

double
bench_run_child(const bench_run_t *run, const char *prog, char *const argv[], const char *log)
{
	double t0 = bench_now();
	pid_t pid = bench_spawn(run, prog, argv, log);
	int st;

	if (pid < 0)
		return -1;
	if ((st = bench_wait(pid)) != 0) {
		fprintf(stderr, "tally-bench: %s exited with status %d\n", prog, st);
		bench_log_tail(bench_log_path(run, log), 20);
		return -1;
	}
	return bench_now() - t0;
}

void
bench_finish(const bench_run_t *run, bool ok, bool keep_logs)
{
	if (!run->keep) {
		bench_topics_delete(run);
		bench_schema_drop(run);
		printf("dropped schema \"%s\" and topics \"%s*\"\n", run->name, run->prefix);
	} else {
		printf("kept schema \"%s\" and topics \"%s*\": --reuse %s\n", run->name, run->prefix,
		       run->name);
	}
	if (ok && !keep_logs) {
		/* Only our own directory of logs, made by bench_run_init: plain files, no subfolders. */
		DIR *dir = opendir(run->logdir);
		struct dirent *de;

		while (dir != NULL && (de = readdir(dir)) != NULL)
			if (de->d_name[0] != '.')
				unlink(bench_log_path(run, de->d_name));
		if (dir != NULL)
			closedir(dir);
		if (rmdir(run->logdir) != 0)
			fprintf(stderr, "tally-bench: could not remove \"%s\"\n", run->logdir);
	} else {
		printf("logs in %s\n", run->logdir);
	}
}

/* ---- tallyd --cluster instances ---------------------------------------------------------- */

pid_t
bench_inst_spawn(const bench_run_t *run, bench_inst_t *in, const char *group, const char *pgopt,
                 char *const extra[])
{
	char *argv[32] = {"tallyd", "--cluster", "--topic-prefix", (char *)run->prefix,
	                  (char *)pgopt, "--group-id", (char *)group, "--instance-id", in->id,
	                  "--http", "127.0.0.1:0"};
	int n = 11;

	for (int i = 0; extra != NULL && extra[i] != NULL && n < 31; i++)
		argv[n++] = extra[i];
	argv[n] = NULL;
	snprintf(in->log, sizeof(in->log), "tallyd-%s.log", in->id);
	in->port = 0;
	in->owner[0] = '\0';
	in->t_exec = bench_now();
	if ((in->pid = bench_spawn(run, "tallyd", argv, in->log)) > 0) {
		char host[128] = "";

		gethostname(host, sizeof(host) - 1);
		snprintf(in->owner, sizeof(in->owner), "tallyd@%s:%d", host, (int)in->pid);
	}
	return in->pid;
}

bool
bench_inst_alive(bench_inst_t *in)
{
	int st;

	if (in->pid <= 0)
		return false;
	if (waitpid(in->pid, &st, WNOHANG) == in->pid) {
		fprintf(stderr, "tally-bench: tallyd \"%s\" exited (status %d)\n", in->id,
		        WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
		in->pid = 0;
		return false;
	}
	return true;
}

long
bench_inst_owned(const bench_run_t *run, const bench_inst_t *in)
{
	char path[4600];

	snprintf(path, sizeof(path), "%s", bench_log_path(run, in->log));
	return tt_log_sum_after(path, 0, "tallyd: assigned ") -
	       tt_log_sum_after(path, 0, "tallyd: revoked ");
}

json_t *
bench_inst_results(const bench_run_t *run, bench_inst_t *in)
{
	char *body = NULL;
	json_t *res;

	if (in->port == 0 && (in->port = tt_log_port(bench_log_path(run, in->log), 0)) == 0)
		return NULL;
	if (tt_http_get(in->port, "/api/results", &body) != 200 || body == NULL) {
		free(body);
		return NULL;
	}
	res = json_loads(body, 0, NULL);
	free(body);
	return res;
}

void
bench_inst_kill_all(bench_inst_t *insts, int n)
{
	for (int i = 0; i < n; i++)
		if (insts[i].pid > 0) {
			kill(insts[i].pid, SIGKILL);
			bench_wait(insts[i].pid);
			insts[i].pid = 0;
		}
}

/* ---- CPU time per process ---------------------------------------------------------------- */

/* utime + stime in clock ticks from a /proc/PID/stat line; -1 if it cannot be parsed. */
static double
stat_ticks(const char *path)
{
	char buf[1024];
	unsigned long long ut = 0, st = 0;
	const char *p;
	FILE *f = fopen(path, "r");
	size_t n;

	if (f == NULL)
		return -1;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* The command name may hold spaces and parentheses: the fields start after the last ')'. */
	if ((p = strrchr(buf, ')')) == NULL ||
	    sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
		return -1;
	return (double)(ut + st);
}

double
bench_cpu_pid(pid_t pid)
{
	char path[64];
	double t;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	t = stat_ticks(path);
	return t < 0 ? -1 : t / (double)sysconf(_SC_CLK_TCK);
}

/* Whether /proc/PID/cmdline contains word (its arguments are NUL-separated). */
static bool
cmdline_has(const char *pid, const char *word)
{
	char path[300], buf[8192];
	size_t n, wl = strlen(word);
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%s/cmdline", pid);
	if ((f = fopen(path, "r")) == NULL)
		return false;
	n = fread(buf, 1, sizeof(buf), f);
	fclose(f);
	for (size_t i = 0; i + wl <= n; i++)
		if (memcmp(buf + i, word, wl) == 0)
			return true;
	return false;
}

void
bench_cpu_sample(bench_cpu_t *out, PGconn *conn, const char *app)
{
	double hz = (double)sysconf(_SC_CLK_TCK);
	DIR *d = opendir("/proc");
	struct dirent *e;
	FILE *f;

	memset(out, 0, sizeof(*out));
	while (d != NULL && (e = readdir(d)) != NULL) {
		char path[300], comm[64] = "";
		double t;

		if (e->d_name[0] < '1' || e->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/comm", e->d_name);
		if ((f = fopen(path, "r")) == NULL)
			continue;
		if (fgets(comm, sizeof(comm), f) == NULL)
			comm[0] = '\0';
		fclose(f);
		comm[strcspn(comm, "\n")] = '\0';
		snprintf(path, sizeof(path), "/proc/%s/stat", e->d_name);
		if (strcmp(comm, "postgres") == 0) {
			if ((t = stat_ticks(path)) > 0)
				out->postgres += t / hz;
		} else if (strcmp(comm, "java") == 0 && cmdline_has(e->d_name, "kafka.Kafka")) {
			if ((t = stat_ticks(path)) > 0)
				out->broker += t / hz;
		}
	}
	if (d != NULL)
		closedir(d);
	if ((f = fopen("/proc/stat", "r")) != NULL) {
		unsigned long long v[10] = {0};

		if (fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1],
		           &v[2], &v[3], &v[4], &v[5], &v[6], &v[7], &v[8], &v[9]) >= 8) {
			/* user nice system idle iowait irq softirq steal (guest is in user already) */
			double all = 0;

			for (int i = 0; i < 8; i++)
				all += (double)v[i];
			out->machine_all = all / hz;
			out->machine_busy = (all - (double)v[3] - (double)v[4]) / hz;
		}
		fclose(f);
	}
	if (conn != NULL && app != NULL) {
		PGresult *res = PQexecParams(conn, "SELECT pid FROM pg_stat_activity WHERE "
		                                   "application_name = $1", 1, NULL, &app, NULL, NULL, 0);

		for (int i = 0; PQresultStatus(res) == PGRES_TUPLES_OK && i < PQntuples(res); i++) {
			double t = bench_cpu_pid((pid_t)atoi(PQgetvalue(res, i, 0)));

			if (t > 0)
				out->backends += t;
		}
		PQclear(res);
	}
}

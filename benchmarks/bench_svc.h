/*
 * tally-bench's service helpers: what the e2e and recover benchmarks need from the real
 * Kafka and PostgreSQL and from tally's programs run as children.
 *
 * A bench "run" is one name, used for everything it creates: the PostgreSQL schema NAME
 * and the topic prefix "NAME_". Names are the bench's own or given with --reuse, and only
 * [a-z0-9_] (identifiers cannot be query parameters, so the name is checked instead).
 */
#ifndef TALLY_BENCH_SVC_H
#define TALLY_BENCH_SVC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>
#include <libpq-fe.h>
#include <librdkafka/rdkafka.h>

#define BENCH_NAME_MAX 48

typedef struct bench_run {
	const char *brokers;               /* TALLY_KAFKA_BROKERS */
	const char *dsn;                   /* TALLY_PG_DSN */
	char bindir[4096];                 /* where tally-gen, tally-sim, tallyd are */
	char name[BENCH_NAME_MAX + 1];     /* schema */
	char prefix[BENCH_NAME_MAX + 2];   /* topic prefix: name + "_" */
	char pgopt[BENCH_NAME_MAX + 64];   /* "--pg.options=-csearch_path=NAME" */
	char votes_topic[BENCH_NAME_MAX + 32];
	char logdir[4200];                 /* children's stderr */
	bool reused;
	bool keep;
} bench_run_t;

/*
 * Read TALLY_KAFKA_BROKERS and TALLY_PG_DSN (fails, saying how to get them, when unset),
 * find the programs next to argv0 (or in bindir if not NULL), and name the run: reuse if
 * not NULL, else a fresh "tbench_<what>_<pid>_<time>". Creates the log directory.
 * Returns 0, or -1 after printing why.
 */
int bench_run_init(bench_run_t *run, const char *what, const char *argv0, const char *bindir,
                   const char *reuse, bool keep);

/* A connection into the run's schema (in_schema) or to the database as it is; NULL after
 * printing why. */
PGconn *bench_pg(const bench_run_t *run, bool in_schema);

/* Run one fixed statement; 0, or -1 after printing why. */
int bench_pg_exec(PGconn *conn, const char *sql);

/* The first column of the first row of a query as an integer; -1 after printing why. */
int64_t bench_pg_int(PGconn *conn, const char *sql);

/* The same, for a statement with one text parameter $1. */
int64_t bench_pg_int1(PGconn *conn, const char *sql, const char *param);

/* Run a COPY ... TO STDOUT, calling row(arg, data, len) on each row (row may be NULL: the
 * data is dropped); returns the rows, or -1 after printing why. *bytes (may be NULL) gets
 * the bytes read. */
int64_t bench_pg_copy_rows(PGconn *conn, const char *sql,
                           void (*row)(void *arg, const char *data, int len), void *arg,
                           uint64_t *bytes);

/* Time a COPY ... TO STDOUT, reading and dropping the data; returns seconds or -1. */
double bench_pg_copy_out(PGconn *conn, const char *sql, uint64_t *bytes);

/* CREATE SCHEMA / DROP SCHEMA ... CASCADE for the run; 0 or -1. */
int bench_schema_create(const bench_run_t *run);
int bench_schema_drop(const bench_run_t *run);

/* Delete the run's standard topics (errors are reported, not fatal). */
void bench_topics_delete(const bench_run_t *run);

/*
 * Start bindir/prog with argv (argv[0] is prog; NULL-terminated) and its stderr to
 * logdir/<log>, stdout to /dev/null. Returns the pid, or -1 after printing why.
 */
pid_t bench_spawn(const bench_run_t *run, const char *prog, char *const argv[], const char *log);

/* Wait for pid; returns its exit status (128 + signal if killed). */
int bench_wait(pid_t pid);

/* Run bindir/prog to its end (as bench_spawn); returns its wall time in seconds, or -1
 * after printing why (a non-zero exit shows the log's last lines). */
double bench_run_child(const bench_run_t *run, const char *prog, char *const argv[],
                       const char *log);

/* Drop the run's schema and topics unless run->keep, and remove its logs after a success
 * unless keep_logs (else print where they are). */
void bench_finish(const bench_run_t *run, bool ok, bool keep_logs);

/* Full path of a log in the run's log directory (static buffer, one at a time). */
const char *bench_log_path(const bench_run_t *run, const char *log);

/* The whole file, NUL-terminated (caller frees); NULL if it cannot be read. */
char *bench_slurp(const char *path);

/*
 * Find the last line of text containing key and return a pointer just after key in it,
 * or NULL. Used to parse tallyd's log lines.
 */
const char *bench_log_find(const char *text, const char *key, bool last);

/* Print the log's last lines to stderr, to show why a child failed. */
void bench_log_tail(const char *path, int lines);

/*
 * A librdkafka client of the run's brokers with kv (nkv strings: key, value, ...) set on top
 * of tally's Kafka configuration; NULL after printing why.
 */
rd_kafka_t *bench_kafka_new(const bench_run_t *run, rd_kafka_type_t type, const char *const *kv,
                            size_t nkv);

/* Sum of (high - low) watermarks over a topic's partitions; -1 after printing why. */
int64_t bench_topic_messages(const bench_run_t *run, const char *topic, int *partitions);

typedef struct bench_consume {
	double total_s;      /* rd_kafka_new to every partition at its end */
	double assigned_s;   /* rd_kafka_new to partitions assigned */
	uint64_t msgs;
	uint64_t bytes;
} bench_consume_t;

/*
 * The bare consumer: a librdkafka consumer in a new group, subscribed to topic, reading
 * every partition from the beginning to its end (partition EOF), counting messages and
 * bytes and doing nothing else. Fetch settings are librdkafka's defaults, or with
 * prefetch tallyd's deeper prefetch (queued.min.messages 1000000,
 * queued.max.messages.kbytes 262144). Returns 0, or -1 after printing why.
 */
int bench_bare_consume(const bench_run_t *run, const char *topic, const char *group,
                       bool prefetch, bench_consume_t *out);

/* Print "load average: ..." from /proc/loadavg with a label (the machine may be shared). */
void bench_print_load(const char *label);

/* Seconds since an arbitrary point (monotonic). */
double bench_now(void);

void bench_sleep_ms(unsigned ms);

/* ---- tallyd --cluster instances (failover, e2e --instances) ------------------------------ */

/* One tallyd --cluster instance the bench runs. */
typedef struct bench_inst {
	char id[32];       /* --instance-id */
	char log[48];      /* its stderr, in the run's log directory */
	char owner[160];   /* how its claims name it in PostgreSQL: "tallyd@HOST:PID" */
	pid_t pid;         /* 0 once it has exited and been reaped */
	int port;          /* its --http port, from its log (0: not seen yet) */
	double t_exec;     /* bench_now() when it was started */
} bench_inst_t;

/*
 * Start in->id as "tallyd --cluster --instance-id ID --group-id group --http 127.0.0.1:0"
 * with the run's topic prefix, pgopt as its pg.options argument and extra (NULL-terminated,
 * may be NULL) appended; its stderr goes to "tallyd-ID.log". Returns the pid, or -1.
 */
pid_t bench_inst_spawn(const bench_run_t *run, bench_inst_t *in, const char *group,
                       const char *pgopt, char *const extra[]);

/* Whether the instance still runs; reaps it and says so on stderr when it has exited. */
bool bench_inst_alive(bench_inst_t *in);

/* Partitions the instance holds now, from its log: assigned minus revoked. */
long bench_inst_owned(const bench_run_t *run, const bench_inst_t *in);

/* One reading of the instance's /api/results (caller frees with json_decref), or NULL. */
json_t *bench_inst_results(const bench_run_t *run, bench_inst_t *in);

/* SIGKILL and reap every instance still running (at the end of a failed run). */
void bench_inst_kill_all(bench_inst_t *insts, int n);

/* ---- CPU time per process, from /proc ------------------------------------------------ */

/* utime + stime of a process in seconds, from /proc/PID/stat; -1 if it cannot be read. */
double bench_cpu_pid(pid_t pid);

/*
 * The CPU seconds, so far, of the processes the bench shares the machine with: the Kafka
 * broker (a java process running kafka.Kafka), every postgres process together, and the
 * whole machine (busy and all, from /proc/stat, summed over the CPUs).
 */
typedef struct bench_cpu {
	double broker, postgres, machine_busy, machine_all;
	double backends;   /* the PostgreSQL backends of the connections named app (below) */
} bench_cpu_t;

/*
 * Sample the above. With conn and app not NULL, also the backends whose application_name
 * is app (pg_stat_activity: the bench starts tallyd with --pg.application_name=app), so
 * that PostgreSQL's work for tallyd is told from other clients' of shared services.
 */
void bench_cpu_sample(bench_cpu_t *out, PGconn *conn, const char *app);

#endif

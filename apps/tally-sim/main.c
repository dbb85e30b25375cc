/*
 * tally-sim: the original voting.py, done right. Reads the registry (PostgreSQL tables or
 * voters_topic/candidates_topic), produces votes to votes_topic keyed by voter_id in the
 * original shape (or --compact), at --rate messages per second or flat out, with faults at
 * the requested shares of messages, and writes the ground truth: what tally's core must
 * count from exactly these messages (accepted per candidate, party and region; rejected per
 * reason).
 *
 * --rekey-rate R keys a share R of the messages (first votes, duplicates and faults alike)
 * by a random uuid-like key from the seeded stream instead of voter_id, so they land on a
 * random partition, as a producer keying by something else would do. Kafka orders nothing
 * across partitions, so of a voter's vote and duplicate on different partitions either may
 * be counted: with R > 0 a duplicate always names the voter's counted candidate, and every
 * figure of the truth is the same whichever one is (simvotes.h). The truth's format does
 * not change; the summary adds a line with the number of messages rekeyed.
 *
 * Steps: read the election window (the elections row, or --opens-at/--closes-at); open the
 * registry (PostgreSQL: one REPEATABLE READ READ ONLY snapshot for the small tables, the
 * per-region counts and a COPY stream of the full voters rows; Kafka: candidates_topic
 * whole, then voters_topic streamed to the end it had at the start); create votes_topic if
 * it is missing; then for each voter read, the vote maker (simvotes.h) emits zero or more
 * fault messages and the voter's own vote if they turn out, and each message is judged as
 * the core will judge it (with the core's own decoder) and counted in the truth once the
 * producer took it. At the end the producer is flushed and every delivery checked; only then
 * is the truth file written (through a temporary file renamed into place).
 *
 * SIGINT or SIGTERM: production stops after the current voter, the registry's counts are
 * completed (Kafka reads the rest of voters_topic without producing), the producer is
 * flushed, the truth of what was produced is written, and the exit status is 128 + the
 * signal (130 for SIGINT). A second signal ends the process at once.
 *
 * Memory is bounded whatever the registry's size (see simreg.h and simvotes.h): from
 * PostgreSQL nothing is kept per voter; from Kafka 16 bytes per voter id in a set at most
 * 3/4 full (10 M voters: 256 MiB); plus librdkafka's queues (256 MiB to send by
 * tally-sim's default, 64 MiB fetched ahead). Measured with 1 M voters: 46 MiB resident
 * from PostgreSQL in the full shape, 31 MiB compact, 167 MiB from Kafka.
 *
 * DESIGN (threads): one thread reads, makes, judges and produces; librdkafka's own threads
 * deliver. Signal handlers only set a flag.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <librdkafka/rdkafka.h>

#include <tally/error.h>
#include <tally/kafka.h>
#include <tally/pg.h>
#include <tally/time.h>

#include "conf.h"
#include "opt.h"
#include "simreg.h"
#include "simvotes.h"

#define PG_CONNECT_TIMEOUT_MS 30000
#define KAFKA_TOPIC_TIMEOUT_MS 60000
#define KAFKA_FLUSH_TIMEOUT_MS 600000
#define PROGRESS_TTY_S 0.2
#define PROGRESS_PLAIN_S 5.0

static volatile sig_atomic_t stop_signal;

static void
on_signal(int sig)
{
	stop_signal = sig;
}

static double
now_s(void)
{
	return (double)tally_mono_ns() / 1e9;
}

/* Errors are "tally-sim: message" on stderr. */
#define die_msg(...) tally_app_error("tally-sim", __VA_ARGS__)

static void
usage(FILE *f)
{
	fprintf(f,
	        "usage: tally-sim [options]\n"
	        "\n"
	        "Reads the registry (PostgreSQL, or voters_topic and candidates_topic) and produces\n"
	        "votes to votes_topic keyed by voter_id, in the original shape (every voter field,\n"
	        "the candidate's row, voting_time, \"vote\": 1) or --compact, at --rate messages per\n"
	        "second or flat out. Fault rates are shares of all messages: duplicates (a counted\n"
	        "voter votes again), malformed messages of 11 kinds, unregistered voter_ids, unknown\n"
	        "candidate_ids, voting_time before opens_at or at/after closes_at; under-18 voters\n"
	        "who turn out are rejected as ineligible. --rekey-rate keys a share of messages by a\n"
	        "random key instead of voter_id (a random partition); a duplicate then keeps the\n"
	        "voter's candidate, so the truth holds whichever of the two is counted. Writes the\n"
	        "ground truth (--truth): what tally's core will count from exactly these messages,\n"
	        "with the election open.\n"
	        "PostgreSQL and Kafka come from TALLY_PG_DSN and TALLY_KAFKA_BROKERS; pg.KEY and\n"
	        "kafka.KEY settings (config file, or --pg.KEY=VALUE / --kafka.KEY=VALUE) go to libpq\n"
	        "and librdkafka (the producer, and with --source kafka the consumer too). Memory does\n"
	        "not grow with the registry from PostgreSQL; from Kafka a set of the voter ids read\n"
	        "(21 to 43 bytes per voter; 10 M voters: 256 MiB) drops repeated registrations. Exit\n"
	        "status: 0 done, 1 failed, 2 bad option, 130 interrupted by SIGINT (the truth of what\n"
	        "was produced is written).\n"
	        "\n"
	        "options:\n");
	tally_opt_help(f, tallysim_opts, tallysim_nopts);
}

/* ---- settings passed through ------------------------------------------------------- */

typedef struct passthrough {
	tally_pg_param_t *pg;
	const char **pg_where;
	size_t npg;
	tally_kafka_setting_t *kafka;    /* producer: tally-sim's defaults, then the user's */
	size_t nkafka;
	tally_kafka_setting_t *ckafka;   /* consumer (--source kafka): the user's only */
	size_t nckafka;
} passthrough_t;

/*
 * tally-sim's defaults come first so the user's settings win. The producer's queue of
 * messages waiting to be sent is bounded to 256 MiB (librdkafka's default is 1 GiB). The
 * consumer keeps librdkafka's 64 MiB fetched ahead: 16 MiB made reading voters_topic 40 %
 * slower (1 M voters: 26 s instead of 18.5 s).
 */
static const tally_kafka_setting_t producer_defaults[] = {
	{"kafka.linger.ms", "20", "tally-sim default"},
	{"kafka.batch.size", "1000000", "tally-sim default"},
	{"kafka.queue.buffering.max.kbytes", "262144", "tally-sim default"},
};
#define NPRODUCER_DEFAULTS (sizeof(producer_defaults) / sizeof(producer_defaults[0]))

static int
split_passthrough(const tally_opt_kvlist_t *list, passthrough_t *pt)
{
	memset(pt, 0, sizeof(*pt));
	pt->pg = calloc(list->n + 1, sizeof(*pt->pg));
	pt->pg_where = calloc(list->n + 1, sizeof(*pt->pg_where));
	pt->kafka = calloc(list->n + NPRODUCER_DEFAULTS, sizeof(*pt->kafka));
	pt->ckafka = calloc(list->n + 1, sizeof(*pt->ckafka));
	if (pt->pg == NULL || pt->pg_where == NULL || pt->kafka == NULL || pt->ckafka == NULL)
		return -1;
	for (size_t i = 0; i < NPRODUCER_DEFAULTS; i++)
		pt->kafka[pt->nkafka++] = producer_defaults[i];
	for (size_t i = 0; i < list->n; i++) {
		const tally_opt_kv_t *kv = &list->items[i];

		if (strncmp(kv->key, "pg.", 3) == 0) {
			pt->pg_where[pt->npg] = kv->where;
			pt->pg[pt->npg++] = (tally_pg_param_t){kv->key + 3, kv->value};
		} else {
			pt->kafka[pt->nkafka++] = (tally_kafka_setting_t){kv->key, kv->value, kv->where};
			pt->ckafka[pt->nckafka++] = (tally_kafka_setting_t){kv->key, kv->value, kv->where};
		}
	}
	return 0;
}

static void
passthrough_free(passthrough_t *pt)
{
	free(pt->pg);
	free(pt->pg_where);
	free(pt->kafka);
	free(pt->ckafka);
}

/* ---- the run ----------------------------------------------------------------------- */

typedef struct run {
	const tallysim_conf_t *conf;
	tally_kafka_producer_t *prod;
	const char *topic;
	double rate;
	double t0;
	uint64_t produced;
} run_t;

static int
emit(const char *key, size_t klen, const char *val, size_t vlen, void *arg)
{
	run_t *r = arg;
	int rc;

	/* --rate: message n leaves no earlier than n / rate seconds after the start. */
	if (r->rate > 0 && !stop_signal) {
		double due = r->t0 + (double)r->produced / r->rate, wait = due - now_s();

		if (wait > 0) {
			struct timespec ts = {(time_t)wait, (long)((wait - (double)(time_t)wait) * 1e9)};

			while (nanosleep(&ts, &ts) != 0 && errno == EINTR && !stop_signal)
				;
		}
	}
	if ((rc = tally_kafka_produce(r->prod, r->topic, key, klen, val, vlen)) != 0)
		return rc;
	r->produced++;
	return 0;
}

static void
fmt_eta(char *buf, size_t size, double s)
{
	if (s < 0 || s > 359999)
		snprintf(buf, size, "--:--");
	else if (s >= 3600)
		snprintf(buf, size, "%d:%02d:%02d", (int)s / 3600, (int)s / 60 % 60, (int)s % 60);
	else
		snprintf(buf, size, "%d:%02d", (int)s / 60, (int)s % 60);
}

/* One progress report: voters read of the registry, messages produced, rate and ETA. */
static void
progress(const simreg_t *reg, const run_t *r, bool tty, bool final)
{
	uint64_t done = simreg_read(reg), n = reg->expected_voters;
	double el = now_s() - r->t0, rate = el > 0 ? (double)r->produced / el : 0;
	double share = n > 0 ? (double)done / (double)n : 1.0;
	char eta[32], bar[31];
	int fill;

	if (share > 1.0)
		share = 1.0;
	fill = (int)(30.0 * share);
	fmt_eta(eta, sizeof(eta), share > 0 && el > 0 ? el / share - el : -1);
	if (tty) {
		for (int i = 0; i < 30; i++)
			bar[i] = i < fill ? '#' : '.';
		bar[30] = '\0';
		fprintf(stderr, "\r\033[Kvoters [%s] %" PRIu64 "/%" PRIu64 " %5.1f%%  %" PRIu64
		        " votes  %.0f/s  ETA %s", bar, done, n, 100.0 * share, r->produced, rate, eta);
		if (final)
			fputc('\n', stderr);
	} else {
		fprintf(stderr, "tally-sim: voters %" PRIu64 "/%" PRIu64 " (%.1f%%), %" PRIu64
		        " votes, %.0f/s, ETA %s\n", done, n, 100.0 * share, r->produced, rate, eta);
	}
	fflush(stderr);
}

/* Check the options that need more than the table can say. @returns 0 or -1 (printed). */
static int
check_conf(const tallysim_conf_t *conf, int64_t *opens_at, int64_t *closes_at)
{
	double sum = conf->dup_rate + conf->invalid_rate + conf->unknown_rate +
	             conf->unknown_candidate_rate + conf->late_rate + conf->early_rate +
	             conf->wrong_contest_rate;
	const char *err = NULL;

	if (strcmp(conf->source, "postgres") != 0 && strcmp(conf->source, "kafka") != 0) {
		die_msg("--source: \"%s\" is not postgres or kafka", conf->source);
		return -1;
	}
	if (strlen(conf->election_id) < 1 || strlen(conf->election_id) > 63) {
		die_msg("--election-id: \"%s\" must be 1 to 63 bytes", conf->election_id);
		return -1;
	}
	if (!(sum < 0.9)) {
		die_msg("fault rates add up to %g; they must add up to less than 0.9", sum);
		return -1;
	}
	if (conf->truth[0] == '\0') {
		die_msg("--truth: a file name is needed");
		return -1;
	}
	if ((conf->opens_at == NULL) != (conf->closes_at == NULL)) {
		die_msg("--opens-at and --closes-at go together: give both or neither");
		return -1;
	}
	if (conf->opens_at != NULL) {
		if (!tally_time_parse(conf->opens_at, strlen(conf->opens_at), opens_at, &err)) {
			die_msg("--opens-at: \"%s\" is not a time: %s", conf->opens_at, err);
			return -1;
		}
		if (!tally_time_parse(conf->closes_at, strlen(conf->closes_at), closes_at, &err)) {
			die_msg("--closes-at: \"%s\" is not a time: %s", conf->closes_at, err);
			return -1;
		}
		if (*closes_at <= *opens_at) {
			die_msg("--closes-at must be after --opens-at");
			return -1;
		}
	}
	return 0;
}

/* Create votes_topic unless it exists (an existing one is used as it is). */
static int
ensure_votes_topic(tally_kafka_producer_t *prod, const tally_kafka_topic_t *topic, char *err,
                   size_t errsz)
{
	rd_kafka_t *rk = tally_kafka_producer_handle(prod);
	const struct rd_kafka_metadata *md;
	rd_kafka_resp_err_t e;
	bool exists;

	/* All topics' metadata: asking for one would create it if auto-creation is on. */
	e = rd_kafka_metadata(rk, 1, NULL, &md, KAFKA_TOPIC_TIMEOUT_MS);
	if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
		snprintf(err, errsz, "could not read the cluster's topics: %s", rd_kafka_err2str(e));
		return tally_kafka_err(e);
	}
	exists = false;
	for (int i = 0; i < md->topic_cnt && !exists; i++)
		exists = strcmp(md->topics[i].topic, topic->name) == 0 &&
		         md->topics[i].err == RD_KAFKA_RESP_ERR_NO_ERROR &&
		         md->topics[i].partition_cnt > 0;
	rd_kafka_metadata_destroy(md);
	if (exists)
		return 0;
	return tally_kafka_ensure_topics(rk, topic, 1, KAFKA_TOPIC_TIMEOUT_MS, err, errsz);
}

/*
 * Refuse a votes_topic that already holds messages unless --append: the truth describes
 * this run's messages only, so a reader comparing it with the whole topic would be misled.
 */
static int
check_votes_topic_empty(tally_kafka_producer_t *prod, const char *topic, bool append,
                        char *err, size_t errsz)
{
	int64_t *hi = NULL, held = 0;
	int n = 0, rc;

	if ((rc = simreg_topic_ends(tally_kafka_producer_handle(prod), topic, &n, &hi, err,
	                            errsz)) != 0)
		return rc;
	for (int p = 0; p < n; p++)
		held += hi[p];
	free(hi);
	if (held > 0 && !append) {
		snprintf(err, errsz,
		         "topic \"%s\" already holds %" PRId64 " messages, which the ground truth "
		         "would not describe: use another --topic-prefix, delete the topic, or "
		         "--append to add to it anyway",
		         topic, held);
		return TALLY_EEXISTS;
	}
	return 0;
}

/* Fail early, before producing anything, if the truth file cannot be written there. */
static int
check_truth_writable(const char *path, char *err, size_t errsz)
{
	size_t n = strlen(path) + 32;
	char *tmp = malloc(n);
	FILE *f;

	if (tmp == NULL) {
		snprintf(err, errsz, "out of memory");
		return TALLY_ENOMEM;
	}
	snprintf(tmp, n, "%s.tmp.%d", path, (int)getpid());
	if ((f = fopen(tmp, "w")) == NULL) {
		snprintf(err, errsz, "could not write the truth next to \"%s\": %s", path,
		         strerror(errno));
		free(tmp);
		return TALLY_EIO;
	}
	fclose(f);
	unlink(tmp);
	free(tmp);
	return 0;
}

static int
run(const tallysim_conf_t *conf)
{
	passthrough_t pt;
	tally_kafka_topics_t topics;
	rd_kafka_conf_t *kconf = NULL, *cconf = NULL;
	simreg_t reg;
	simvotes_t *sv = NULL;
	simvotes_opts_t vo;
	simvotes_truth_t t;
	run_t r;
	PGconn *pg = NULL;
	struct sigaction sa, old_int, old_term;
	bool tty = isatty(STDERR_FILENO) && !conf->quiet, kafka_src;
	bool signals_set = false;
	char err[1024] = "";
	int64_t opens_at = 0, closes_at = 0;
	double next_report, t_end;
	int exit_rc = TALLYSIM_EXIT_USAGE, rc;

	memset(&reg, 0, sizeof(reg));
	memset(&r, 0, sizeof(r));
	if (split_passthrough(&conf->passthrough, &pt) != 0) {
		die_msg("out of memory");
		passthrough_free(&pt);
		return TALLYSIM_EXIT_FAIL;
	}
	r.conf = conf;

	/* Everything that can be wrong with the options fails here, before any work (exit 2). */
	if (check_conf(conf, &opens_at, &closes_at) != 0)
		goto out;
	kafka_src = strcmp(conf->source, "kafka") == 0;
	if (tally_kafka_topics_init(&topics, conf->topic_prefix, (int)conf->partitions, err,
	                            sizeof(err)) != 0) {
		die_msg("--topic-prefix: %s", err);
		goto out;
	}
	for (size_t i = 0; i < pt.npg; i++) {
		if (tally_pg_check_params(&pt.pg[i], 1, err, sizeof(err)) != 0) {
			die_msg("%s: pg.%s: %s", pt.pg_where[i], pt.pg[i].key, err);
			goto out;
		}
	}
	if ((kconf = tally_kafka_conf_new(getenv("TALLY_KAFKA_BROKERS"), pt.kafka, pt.nkafka, err,
	                                  sizeof(err))) == NULL) {
		die_msg("%s", err);
		goto out;
	}
	if (kafka_src &&
	    (cconf = tally_kafka_conf_new(getenv("TALLY_KAFKA_BROKERS"), pt.ckafka, pt.nckafka, err,
	                                  sizeof(err))) == NULL) {
		die_msg("%s", err);
		goto out;
	}
	exit_rc = TALLYSIM_EXIT_FAIL;
	if (check_truth_writable(conf->truth, err, sizeof(err)) != 0) {
		die_msg("%s", err);
		goto out;
	}

	/* The election window and the registry. */
	if (!kafka_src || conf->opens_at == NULL) {
		const char *dsn = getenv("TALLY_PG_DSN");

		pg = tally_pg_connect(dsn != NULL ? dsn : "", pt.pg, pt.npg, PG_CONNECT_TIMEOUT_MS,
		                      err, sizeof(err));
		if (pg == NULL) {
			die_msg("%s", err);
			goto out;
		}
	}
	if (conf->opens_at == NULL &&
	    simreg_election_pg(pg, conf->election_id, &opens_at, &closes_at, err,
	                       sizeof(err)) != 0) {
		die_msg("%s", err);
		goto out;
	}
	reg.opens_at = opens_at;
	reg.closes_at = closes_at;
	if (kafka_src) {
		rc = simreg_open_kafka(&reg, cconf, topics.topic[TALLY_KAFKA_VOTERS].name,
		                       topics.topic[TALLY_KAFKA_CANDIDATES].name, err, sizeof(err));
		cconf = NULL;
	} else {
		rc = simreg_open_pg(&reg, pg, err, sizeof(err));
	}
	if (rc != 0) {
		die_msg("%s", err);
		goto out;
	}
	if (reg.ncands == 0) {
		die_msg("the registry (%s) has no candidates: load it with tally-gen first",
		        kafka_src ? "topic \"candidates_topic\"" : "table \"candidates\"");
		goto out;
	}

	if (conf->wrong_contest_rate > 0 && reg.ncontests < 2) {
		die_msg("--wrong-contest-rate: the registry has %u contests; it needs 2 or more",
		        reg.ncontests);
		goto out;
	}
	vo = (simvotes_opts_t){conf->seed, conf->turnout, conf->dup_rate, conf->invalid_rate,
	                       conf->unknown_rate, conf->unknown_candidate_rate, conf->late_rate,
	                       conf->early_rate, conf->compact, conf->rekey_rate,
	                       conf->wrong_contest_rate};
	if ((sv = simvotes_new(&reg, &vo, err, sizeof(err))) == NULL) {
		die_msg("%s", err);
		goto out;
	}
	if ((r.prod = tally_kafka_producer_new(kconf, err, sizeof(err))) == NULL) {
		kconf = NULL;
		die_msg("%s", err);
		goto out;
	}
	kconf = NULL;
	if (ensure_votes_topic(r.prod, &topics.topic[TALLY_KAFKA_VOTES], err, sizeof(err)) != 0) {
		die_msg("%s", err);
		goto out;
	}
	r.topic = topics.topic[TALLY_KAFKA_VOTES].name;
	r.rate = conf->rate;
	if (check_votes_topic_empty(r.prod, r.topic, conf->append, err, sizeof(err)) != 0) {
		die_msg("%s", err);
		goto out;
	}

	/* The first signal stops production; a second one ends the process at once. */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sa.sa_flags = SA_RESETHAND;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, &old_int);
	sigaction(SIGTERM, &sa, &old_term);
	signals_set = true;

	r.t0 = now_s();
	next_report = r.t0 + (tty ? PROGRESS_TTY_S : PROGRESS_PLAIN_S);
	for (;;) {
		simreg_voter_t v;
		double share;

		if (stop_signal)
			break;
		if ((rc = simreg_next(&reg, &v, err, sizeof(err))) < 0) {
			die_msg("%s", err);
			goto out;
		}
		if (rc == 0)
			break;
		share = reg.expected_voters > 0
		            ? (double)simreg_read(&reg) / (double)reg.expected_voters : 1.0;
		if ((rc = simvotes_voter(sv, &v, share > 1.0 ? 1.0 : share, emit, &r)) != 0) {
			die_msg("could not produce to \"%s\": %s", r.topic, tally_err2str(rc));
			goto out;
		}
		if (!conf->quiet && now_s() >= next_report) {
			progress(&reg, &r, tty, false);
			next_report = now_s() + (tty ? PROGRESS_TTY_S : PROGRESS_PLAIN_S);
		}
	}
	if (tty)
		progress(&reg, &r, true, true);
	if (stop_signal) {
		fprintf(stderr, "tally-sim: %s: stopped producing after %" PRIu64 " votes\n",
		        stop_signal == SIGINT ? "interrupted" : "terminated", r.produced);
		if (simreg_finish_counts(&reg, err, sizeof(err)) != 0) {
			die_msg("%s", err);
			goto out;
		}
	}
	/* Every message delivered, or no truth: a truth for messages Kafka lost would lie. */
	if (tally_kafka_producer_flush(r.prod, KAFKA_FLUSH_TIMEOUT_MS, err, sizeof(err)) != 0) {
		die_msg("%s", err);
		goto out;
	}
	t_end = now_s();
	if (simvotes_write_truth(sv, conf->election_id, conf->truth, err, sizeof(err)) != 0) {
		die_msg("%s", err);
		goto out;
	}
	simvotes_totals(sv, &t);
	printf("tally-sim: %" PRIu64 " votes to \"%s\" in %.1f s (%.0f/s): %" PRIu64
	       " valid, %" PRIu64 " to be rejected (%" PRIu64 " faults); ground truth in \"%s\"\n",
	       t.messages, r.topic, t_end - r.t0,
	       t_end > r.t0 ? (double)t.messages / (t_end - r.t0) : 0.0, t.accepted,
	       t.rejected_total, t.faults, conf->truth);
	if (conf->rekey_rate > 0)
		printf("tally-sim: %" PRIu64 " of the %" PRIu64 " messages keyed by another key than "
		       "their voter_id (--rekey-rate %g)\n", t.rekeyed, t.messages, conf->rekey_rate);
	if (kafka_src && (reg.skipped > 0 || reg.repeated > 0))
		fprintf(stderr, "tally-sim: voters_topic: %" PRIu64 " messages the registry would "
		        "refuse and %" PRIu64 " repeated registrations were not voters\n",
		        reg.skipped, reg.repeated);
	fflush(stdout);
	exit_rc = stop_signal ? 128 + stop_signal : 0;

out:
	if (signals_set) {
		sigaction(SIGINT, &old_int, NULL);
		sigaction(SIGTERM, &old_term, NULL);
	}
	simvotes_destroy(sv);
	simreg_fini(&reg);
	if (pg != NULL)
		PQfinish(pg);
	if (kconf != NULL)
		rd_kafka_conf_destroy(kconf);
	if (cconf != NULL)
		rd_kafka_conf_destroy(cconf);
	tally_kafka_producer_destroy(r.prod);
	passthrough_free(&pt);
	return exit_rc;
}

int
main(int argc, char **argv)
{
	tallysim_conf_t conf;
	char err[512];
	int rc;

	/* --help wins over anything else on the line, even a bad option. */
	if (tally_opt_wants_help(argc, argv)) {
		usage(stdout);
		return 0;
	}
	if (tallysim_conf_load(&conf, argc, argv, err, sizeof(err)) != 0) {
		die_msg("%s", err);
		tallysim_conf_free(&conf);
		return TALLYSIM_EXIT_USAGE;
	}
	rc = conf.help ? (usage(stdout), 0) : run(&conf);
	tallysim_conf_free(&conf);
	return rc;
}

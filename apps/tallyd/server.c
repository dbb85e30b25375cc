/*
 * tallyd's server mode: votes from Kafka, counted by the core, checkpointed to PostgreSQL
 * exactly once, results and dead letters out to Kafka.
 *
 * Threads:
 * - the ingest thread (the caller of tallyd_serve; its batch work is in ingest.c) polls
 *   votes_topic, decodes each message into the batch of its partition (lane = partition, so one worker sees a partition's
 *   votes in order), submits batches, harvests completed ones in order, cuts checkpoints
 *   and publishes results;
 * - the core's workers count (core/);
 * - the store's threads (include/tally/store.h; tallyd holds no PostgreSQL connection):
 *   the writer (tally:ckpt) writes each cut and retries while PostgreSQL is away, calling
 *   tallyd's hooks around the commit (checkpointer.c: dead letters before, publishing
 *   after); the mover (tally:mover) and, after a full load, the image writer (tally:imager);
 * - the registrar follows voters_topic and candidates_topic (registrar.c) and stores
 *   registrations through the store.
 *
 * Exactly once: a checkpoint is cut with the core paused, after harvesting every batch the
 * workers finished, so the state it exports counts exactly the votes harvested; those
 * votes' rows, the state and each partition's next offset commit in one transaction.
 * Offsets are never committed to Kafka. Restarting restores the newest checkpoint and
 * seeks each partition to its stored offset: whatever was read after that cut is read
 * again and counted once.
 *
 * Published means committed: results (the results topics, HTTP, the live view) come
 * only from cuts PostgreSQL has committed, published by the committed hook on the store's
 * writer thread after each commit (checkpointer.c), so no figure shown is ever taken back.
 *
 * Dead letters travel with the cut that moves past them and are written by the
 * checkpointer before it commits; on start, those a crashed run wrote after the newest
 * committed cut are read back and not written again (exactly once; checkpointer.c).
 *
 * --cluster (cluster.c has its DESIGN): one of several instances of one consumer group;
 * the rebalance callback claims and lets go of partitions, cuts carry one fenced state per
 * assigned partition, and the published snapshot is the store's watcher's merge of every
 * partition's committed state, not this instance's cuts.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <tally/atomic.h>
#include <tally/core.h>
#include <tally/decode.h>
#include <tally/error.h>
#include <tally/kafka.h>
#include <tally/registry.h>
#include <tally/results.h>
#include <tally/snapshot.h>
#include <tally/state.h>
#include <tally/store.h>
#include <tally/time.h>

#include "notify.h"
#include "registrar.h"
#include "server_int.h"
#include "view.h"
#include "web.h"

#define POLL_BATCH 1024          /* messages per consume call */
#define STATS_INTERVAL_NS 5000000000ull
#define IMAGE_DELAY_MS 1000      /* the registry image waits this long after catching up */

/* ---- logging ------------------------------------------------------------------------ */

static int stop_signal;

static void
on_signal(int sig)
{
	tally_store_relaxed(&stop_signal, sig);
}

void
tallyd_request_stop(void)
{
	tally_store_relaxed(&stop_signal, SIGTERM);
}

static bool
stopping(void)
{
	return tally_load_relaxed(&stop_signal) != 0;
}

void
tallyd_log(const char *fmt, ...)
{
	char ts[24], line[1024];
	va_list ap;

	tally_time_format_iso(tally_now_us() / 1000000, ts);
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	fprintf(stderr, "%s tallyd: %s\n", ts, line);
}

bool
tallyd_stopping(void)
{
	return stopping();
}

void
tallyd_sleep_ms(unsigned ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

/* ---- rebalancing ---------------------------------------------------------------------- */

static void
on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t *list,
             void *opaque)
{
	server_t *s = opaque;

	if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS)
		s->group_synced = true;
	if (s->cluster) {
		(void)rk;
		if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS)
			tallyd_cluster_assign(s, list);
		else
			tallyd_cluster_revoke(s, list);
		return;
	}
	if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
		int maxp = 0;

		for (int i = 0; i < list->cnt; i++)
			if (list->elems[i].partition + 1 > maxp)
				maxp = list->elems[i].partition + 1;
		if (tallyd_parts_fit(s, maxp) != 0) {
			tallyd_log("out of memory");
			abort();
		}
		s->generation++;
		for (int i = 0; i < list->cnt; i++) {
			part_t *p = &s->parts[list->elems[i].partition];

			p->assigned = true;
			p->eof = false;
			list->elems[i].offset =
			    p->next_offset >= 0 ? p->next_offset : RD_KAFKA_OFFSET_BEGINNING;
		}
		tallyd_log("assigned %d partition%s of \"%s\" (generation %" PRId64 ")", list->cnt,
		           list->cnt == 1 ? "" : "s", s->votes_topic, s->generation);
		rd_kafka_assign(rk, list);
		s->paused = false;
	} else {
		/* Count what was read from these partitions and checkpoint it before letting them
		 * go, so whoever reads them next starts where this count ends. */
		tallyd_settle(s);
		tallyd_checkpoint_now(s, 30000);
		for (int i = 0; i < list->cnt; i++)
			if (list->elems[i].partition < s->nparts)
				s->parts[list->elems[i].partition].assigned = false;
		tallyd_log("revoked %d partition%s", list->cnt, list->cnt == 1 ? "" : "s");
		rd_kafka_assign(rk, NULL);
	}
}

static void
set_paused(server_t *s, bool pause)
{
	rd_kafka_topic_partition_list_t *l;

	if (s->paused == pause)
		return;
	if (rd_kafka_assignment(s->rk, &l) != RD_KAFKA_RESP_ERR_NO_ERROR)
		return;
	if (pause)
		rd_kafka_pause_partitions(s->rk, l);
	else
		rd_kafka_resume_partitions(s->rk, l);
	rd_kafka_topic_partition_list_destroy(l);
	s->paused = pause;
	tallyd_log(pause ? "reading paused: %zu accepted votes wait for postgres"
	                 : "reading resumed (%zu votes pending)", s->pending.n);
}

static void
consumer_destroy(server_t *s)
{
	if (!tally_kafka_consumer_destroy(s->rk, s->group_synced || !s->cluster))
		tallyd_log("the consumer never got an assignment: not destroyed (librdkafka %s "
		           "would abort on it: issue 4312), left to the exit",
		           rd_kafka_version_str());
	s->rk = NULL;
}

/* ---- start-up ------------------------------------------------------------------------- */

void
tallyd_kafka_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
	(void)rk;
	tallyd_log("kafka %s%s: %s", level <= 3 ? "error " : "", fac, buf);
}

rd_kafka_conf_t *
tallyd_kafka_conf(const tallyd_conf_t *conf, char *err, size_t errsz)
{
	const tally_opt_kvlist_t *kv = &conf->passthrough;
	tally_kafka_setting_t *set = calloc(kv->n + 1, sizeof(*set));
	size_t n = 0;
	rd_kafka_conf_t *kc;

	/* Never go on without a setting given (security.protocol, say): fail instead. */
	if (set == NULL) {
		snprintf(err, errsz, "could not read the kafka.* settings: out of memory");
		return NULL;
	}
	for (size_t i = 0; i < kv->n; i++)
		if (strncmp(kv->items[i].key, "kafka.", 6) == 0)
			set[n++] = (tally_kafka_setting_t){kv->items[i].key, kv->items[i].value,
			                                   kv->items[i].where};
	kc = tally_kafka_conf_new(getenv("TALLY_KAFKA_BROKERS"), set, n, err, errsz);
	free(set);
	if (kc != NULL)
		rd_kafka_conf_set_log_cb(kc, tallyd_kafka_log);
	return kc;
}

static int
conf_set(rd_kafka_conf_t *kc, const char *key, const char *value, char *err, size_t errsz)
{
	if (rd_kafka_conf_set(kc, key, value, err, errsz) != RD_KAFKA_CONF_OK)
		return TALLY_ECONFIG;
	return 0;
}

static void
store_log(void *arg, const char *line)
{
	(void)arg;
	tallyd_log("%s", line);
}

static bool
store_cancel(void *arg)
{
	(void)arg;
	return stopping();
}

/*
 * The store (its opts name s's strings), and from it the registry, election, checkpoint
 * and voted set; the core is made and brought to the restored cut here.
 */
static int
restore(server_t *s, size_t npg, char *err, size_t errsz)
{
	const tallyd_conf_t *conf = s->conf;
	tally_store_opts_t so = {
	    .dsn = getenv("TALLY_PG_DSN"),
	    .params = s->pg_params,
	    .nparams = npg,
	    .election_id = conf->election_id,
	    .topic = s->votes_topic,
	    .extra_topic = s->dl_topic,
	    .owner = s->owner,
	    .journal_above = conf->journal_above,
	    .image_delay_ms = IMAGE_DELAY_MS,
	    .log = store_log,
	    .cancel = store_cancel,
	};
	tally_store_restored_t rs;
	tally_registry_opts_t ro = {0};
	tally_core_opts_t co = {0};
	tally_election_t el;
	int64_t *offsets = NULL;
	uint64_t t0 = tally_mono_ns(), t_mark = 0;
	int rc, stored = 0;

	if ((s->store = tally_store_new(&so, err, errsz)) == NULL)
		return TALLY_ECONFIG;
	if ((rc = tally_store_restore(s->store, &ro, &rs, err, errsz)) != 0)
		return rc;
	s->reg = rs.reg;
	co.workers = (unsigned)conf->workers;
	co.election = rs.election;
	/* --cluster: one part per partition of votes_topic; each part's state and offset come
	 * with its claim (cluster.c), not from the election's checkpoint. */
	if (s->cluster) {
		if ((rc = tallyd_cluster_parts(s, err, errsz)) != 0)
			goto out;
		co.parts = (unsigned)s->nvotes_parts;
	}
	if ((s->core = tally_core_new(s->reg, &co, err, errsz)) == NULL) {
		rc = TALLY_ENOMEM;
		goto out;
	}
	if (!s->cluster && rs.state != NULL &&
	    (rc = tally_state_import(s->core, rs.state, rs.state_len, NULL, NULL, err, errsz)) != 0)
		goto out;
	t_mark = tally_mono_ns();
	if ((rc = tally_core_mark_voted_many(s->core, rs.voted, rs.nvoted, NULL)) != 0) {
		snprintf(err, errsz, "could not restore the voted set: a stored vote's voter is not "
		         "registered (%s)", tally_err2str(rc));
		goto out;
	}
	t_mark = tally_mono_ns() - t_mark;
	if ((offsets = calloc(4096, sizeof(*offsets))) == NULL) {
		rc = TALLY_ENOMEM;
		goto out;
	}
	if ((stored = tally_store_offsets(s->store, s->votes_topic, offsets, 4096, err,
	                                  errsz)) < 0) {
		rc = stored;
		goto out;
	}
	for (int p = 0; p < 4096 && !s->cluster; p++) {
		if (offsets[p] >= 0) {
			if ((rc = tallyd_parts_fit(s, p + 1)) != 0)
				goto out;
			s->parts[p].next_offset = offsets[p];
		}
	}
	/* Where the dead letters written after this checkpoint begin (dead_letters_recover()). */
	if ((s->dl_from = calloc(DL_PARTITIONS, sizeof(*s->dl_from))) == NULL) {
		rc = TALLY_ENOMEM;
		goto out;
	}
	if ((rc = tally_store_offsets(s->store, s->dl_topic, s->dl_from, DL_PARTITIONS, err,
	                              errsz)) < 0)
		goto out;
	rc = 0;
	tally_core_election(s->core, &el);
	if (el.status == TALLY_ELECTION_SCHEDULED && !conf->no_open) {
		if ((rc = tally_core_election_open(s->core)) != 0 ||
		    (rc = tally_store_election_set_status(s->store, TALLY_ELECTION_OPEN, err,
		                                          errsz)) != 0)
			goto out;
		tallyd_log("election \"%s\" opened", conf->election_id);
	}
	tallyd_log("restored in %.3f s: %" PRIu64 " parties, %" PRIu64 " candidates, %" PRIu64
	           " voters (%.3f s, %s); %s (version %" PRIu64 "), %zu votes stored (read "
	           "in %.3f s alongside, marked in %.3f s), %d partition offsets",
	           (double)(tally_mono_ns() - t0) / 1e9, rs.parties, rs.candidates, rs.voters,
	           rs.registry_s, rs.how,
	           rs.state != NULL ? "checkpoint restored" : "no checkpoint yet", rs.version,
	           rs.nvoted, rs.voted_s, (double)t_mark / 1e9, stored);
out:
	free(rs.voted);
	free(rs.state);
	free(offsets);
	return rc;
}

/*
 * Read back the dead letters written after the restored checkpoint (by a run that crashed
 * before its next commit): they are not written again. From here on the producer tracks
 * where its dead letters land, for the offsets each checkpoint stores.
 */
static int
dead_letters_recover(server_t *s, char *err, size_t errsz)
{
	rd_kafka_conf_t *kc = tallyd_kafka_conf(s->conf, err, errsz);
	uint64_t t0 = tally_mono_ns();
	int rc;

	if (kc == NULL)
		return TALLY_ECONFIG;
	/* Kafka may be coming back (a partition without a leader yet): retry, as for the
	 * restore's PostgreSQL, until it answers or we are told to stop. */
	while ((rc = tally_kafka_dead_letters_scan(kc, s->dl_topic, s->dl_from, DL_PARTITIONS,
	                                           s->conf->election_id, s->votes_topic, 30000,
	                                           &s->dl_found, err, errsz)) != 0) {
		if (rc == TALLY_ECONFIG || rc == TALLY_ENOMEM || stopping())
			return rc;
		tallyd_log("reading back the dead letters, retrying in 1 s: %s", err);
		tallyd_sleep_ms(1000);
		if ((kc = tallyd_kafka_conf(s->conf, err, errsz)) == NULL)
			return TALLY_ECONFIG;
	}
	s->ndl_base = s->dl_found.nend;
	s->dl_base = s->dl_found.end;
	if ((rc = tally_kafka_producer_track(s->producer, s->dl_topic, s->ndl_base)) != 0) {
		snprintf(err, errsz, "could not track dead letters: %s", tally_err2str(rc));
		return rc;
	}
	tallyd_log("dead letters: %zu written after the restored checkpoint, not to be written "
	           "again (%" PRIu64 " messages of \"%s\" read in %.3f s)", s->dl_found.npos,
	           s->dl_found.messages, s->dl_topic, (double)(tally_mono_ns() - t0) / 1e9);
	return 0;
}

static int
kafka_start(server_t *s, char *err, size_t errsz)
{
	const tallyd_conf_t *conf = s->conf;
	rd_kafka_conf_t *kc;
	rd_kafka_topic_partition_list_t *sub;
	rd_kafka_resp_err_t e;
	int rc;

	/* The producer: dead letters and results. It never gives up on a message. */
	if ((kc = tallyd_kafka_conf(conf, err, errsz)) == NULL)
		return TALLY_ECONFIG;
	if ((rc = conf_set(kc, "message.timeout.ms", "0", err, errsz)) != 0 ||
	    (rc = conf_set(kc, "linger.ms", "1", err, errsz)) != 0) {
		rd_kafka_conf_destroy(kc);
		return rc;
	}
	if ((s->producer = tally_kafka_producer_new(kc, err, errsz)) == NULL)
		return TALLY_ECONFIG;
	/* A broker that does not answer (starting, or starved) is waited for, not given up on. */
	while ((rc = tally_kafka_ensure_topics(tally_kafka_producer_handle(s->producer),
	                                       s->topics.topic, TALLY_KAFKA_N_TOPICS, 30000, err,
	                                       errsz)) == TALLY_ETIMEDOUT && !stopping())
		tallyd_log("%s; retrying", err);
	if (rc != 0)
		return rc;
	if ((s->results = tally_results_new(s->producer, &s->topics)) == NULL)
		return TALLY_ENOMEM;
	if (conf->cluster && (rc = tallyd_forward_start(s, err, errsz)) != 0)
		return rc;

	/* The consumer: offsets live in PostgreSQL, never committed to Kafka. */
	if ((kc = tallyd_kafka_conf(conf, err, errsz)) == NULL)
		return TALLY_ECONFIG;
	if ((rc = conf_set(kc, "group.id", conf->group_id, err, errsz)) != 0 ||
	    (rc = conf_set(kc, "enable.auto.commit", "false", err, errsz)) != 0 ||
	    (rc = conf_set(kc, "enable.auto.offset.store", "false", err, errsz)) != 0 ||
	    (rc = conf_set(kc, "auto.offset.reset", "earliest", err, errsz)) != 0 ||
	    (rc = conf_set(kc, "enable.partition.eof", "true", err, errsz)) != 0 ||
	    (conf->cluster && (rc = conf_set(kc, "partition.assignment.strategy",
	                                     "cooperative-sticky", err, errsz)) != 0)) {
		rd_kafka_conf_destroy(kc);
		return rc;
	}
	/* Prefetch deeper than librdkafka's defaults (100000 messages per partition, 64 MB in
	 * all): votes are taken in bursts of batches, and a partition over either mark is left
	 * out of the next fetch, so with the defaults the fetcher idled while a burst was
	 * counted. Measured on 3.08 M compact votes, checkpointing on: 3.1-3.4 s with the
	 * defaults, 1.8-2.3 s with these. Memory: up to 256 MB of fetched messages. A kafka.*
	 * line naming either still wins. */
	/* With --cluster, a shorter session: static members never leave the group, so a killed
	 * instance's partitions move only once its session times out; at librdkafka's 45 s
	 * that was 46 s of failover (tally-bench failover, 10 M voters), at 6 s (the broker's
	 * smallest by default) with 1 s heartbeats 6.2 s. */
	{
		static const char *const defaults[][4] = {
		    /* property, librdkafka's default, tallyd's, only with --cluster */
		    {"queued.min.messages", "100000", "1000000", ""},
		    {"queued.max.messages.kbytes", "65536", "262144", ""},
		    {"session.timeout.ms", "45000", "6000", "cluster"},
		    {"heartbeat.interval.ms", "3000", "1000", "cluster"},
		};

		for (size_t i = 0; i < sizeof(defaults) / sizeof(defaults[0]); i++) {
			char v[32];
			size_t len = sizeof(v);

			if (defaults[i][3][0] != '\0' && !conf->cluster)
				continue;
			if (rd_kafka_conf_get(kc, defaults[i][0], v, &len) == RD_KAFKA_CONF_OK &&
			    strcmp(v, defaults[i][1]) == 0 &&
			    (rc = conf_set(kc, defaults[i][0], defaults[i][2], err, errsz)) != 0) {
				rd_kafka_conf_destroy(kc);
				return rc;
			}
		}
	}
	/* Static membership: a restarted tallyd takes its partitions back at once instead of
	 * waiting out the killed one's session. The name: --instance-id, else a
	 * kafka.group.instance.id line, else the host name. */
	{
		char id[256] = "localhost";
		size_t len = sizeof(id);

		if (conf->instance_id != NULL && conf->instance_id[0] != '\0') {
			snprintf(id, sizeof(id), "%s", conf->instance_id);
		} else if (rd_kafka_conf_get(kc, "group.instance.id", id, &len) != RD_KAFKA_CONF_OK ||
		           id[0] == '\0') {
			if (gethostname(id, sizeof(id) - 1) != 0 || id[0] == '\0')
				snprintf(id, sizeof(id), "localhost");
			id[sizeof(id) - 1] = '\0';
		}
		if ((rc = conf_set(kc, "group.instance.id", id, err, errsz)) != 0) {
			rd_kafka_conf_destroy(kc);
			return rc;
		}
		tallyd_log("instance \"%s\" of consumer group \"%s\"", id, conf->group_id);
	}
	rd_kafka_conf_set_opaque(kc, s);
	rd_kafka_conf_set_rebalance_cb(kc, on_rebalance);
	if ((s->rk = rd_kafka_new(RD_KAFKA_CONSUMER, kc, err, errsz)) == NULL) {
		rd_kafka_conf_destroy(kc);
		return TALLY_ECONFIG;
	}
	rd_kafka_poll_set_consumer(s->rk);
	s->queue = rd_kafka_queue_get_consumer(s->rk);
	sub = rd_kafka_topic_partition_list_new(1);
	rd_kafka_topic_partition_list_add(sub, s->votes_topic, RD_KAFKA_PARTITION_UA);
	e = rd_kafka_subscribe(s->rk, sub);
	rd_kafka_topic_partition_list_destroy(sub);
	if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
		snprintf(err, errsz, "could not subscribe to \"%s\": %s", s->votes_topic,
		         rd_kafka_err2str(e));
		return tally_kafka_err(e);
	}
	return 0;
}

/* ---- the loop -------------------------------------------------------------------------- */

/*
 * Every figure of the committed cut to the results topics. Only while the checkpointer is
 * not running (at start and at the end): while it runs, it publishes each cut it commits.
 */
static void
publish_all(server_t *s)
{
	size_t n;

	if (s->cluster) {
		/* Only the leader publishes, the merged committed view, from its own thread
		 * (cluster.c): at the end, its last round. */
		tallyd_cluster_results_stop(s);
		return;
	}
	if (tally_results_publish(s->results, s->reg, s->committed, true, &n) != 0)
		tallyd_log("could not queue results");
}

static void
stats_line(server_t *s, const char *what)
{
	tally_store_stats_t fig;
	uint64_t last;

	tally_store_stats(s->store, &fig);
	last = fig.last_checkpoint_ns;
	tallyd_log("%s: read %" PRIu64 ", accepted %" PRIu64 ", rejected %" PRIu64
	           ", dead letters %" PRIu64 "; checkpoints %" PRIu64 " (%" PRIu64
	           " votes stored, last %.1f s ago, took %" PRIu64 " ms)%s",
	           what, tally_load_relaxed(&s->read), tally_load_relaxed(&s->accepted),
	           tally_load_relaxed(&s->rejected), tally_load_relaxed(&s->dead_letters),
	           fig.checkpoints, fig.checkpointed_votes,
	           last ? (double)(tally_mono_ns() - last) / 1e9 : 0.0, fig.last_checkpoint_ms,
	           fig.postgres_up ? "" : "; postgres unreachable");
	if (s->fwd != NULL)
		tallyd_log("%s: forwarded %" PRIu64 " votes to their voter's home partition; %" PRIu64
		           " forwards let pass as sent twice", what, tally_load_relaxed(&s->forwarded),
		           tally_load_relaxed(&s->fwd_twice));
}

static bool
part_caught_up(const part_t *p)
{
	return !p->assigned || (p->eof && p->head == NULL && p->fill == NULL);
}

static bool
caught_up(server_t *s)
{
	bool any = false;

	for (int i = 0; i < s->nparts; i++) {
		if (!s->parts[i].assigned)
			continue;
		any = true;
		if (!part_caught_up(&s->parts[i]))
			return false;
	}
	for (int i = 0; s->fparts != NULL && i < s->nvotes_parts; i++)
		if (!part_caught_up(&s->fparts[i]))
			return false;
	return any;
}

/* Each assigned partition's lag, from the watermarks librdkafka last saw (no request). */
static void
update_lag(server_t *s)
{
	int n = s->nparts < LAG_PARTITIONS ? s->nparts : LAG_PARTITIONS;

	for (int i = 0; i < n; i++) {
		part_t *p = &s->parts[i];
		int64_t lo, hi, lag = -1;

		if (p->assigned &&
		    rd_kafka_get_watermark_offsets(s->rk, s->votes_topic, i, &lo, &hi) ==
		        RD_KAFKA_RESP_ERR_NO_ERROR && hi >= 0) {
			int64_t at = p->read_offset >= 0 ? p->read_offset
			             : p->next_offset >= 0 ? p->next_offset : lo;

			lag = hi > at ? hi - at : 0;
		}
		tally_store_relaxed(&s->lag[i], lag);
	}
	tally_store_release(&s->nlag, n);
}

/*
 * An admin action asked for over HTTP, done on this (the ingest) thread. The elections row
 * follows with the next checkpoint (its state has the status), so nothing here waits on
 * PostgreSQL.
 */
static void
admin_action(server_t *s, int req)
{
	bool open = req - 1 == TALLY_HTTP_ACTION_OPEN;
	tally_election_t el;
	char err[128] = "";
	int rc;

	tallyd_settle(s);      /* everything read so far is counted before the polls close */
	rc = open ? tally_core_election_open(s->core) : tally_core_election_close(s->core);
	tally_core_election(s->core, &el);
	if (rc != 0)
		snprintf(err, sizeof(err), "the election is %s", tally_election_status_name(el.status));
	else
		tallyd_log("election \"%s\" %s over http", s->conf->election_id,
		           open ? "opened" : "closed");
	s->admin_status = el.status;
	tally_handoff_answer(&s->admin, rc, err);
}

/* The ingest thread: act on an admin request if one waits. */
static void
admin_poll(server_t *s)
{
	int req = tally_handoff_take(&s->admin);

	if (req > 0)
		admin_action(s, req);
}

static bool
web_ready(void *arg, char *reason, size_t size)
{
	server_t *s = arg;

	if (tally_load_acquire(&s->ready))
		return true;
	snprintf(reason, size, "registry loaded and checkpoint restored; waiting for partitions");
	return false;
}

/* Answer only once a committed checkpoint (and the elections row with it) has status. */
static int
admin_wait_committed(server_t *s, tally_election_status_t status, char *errstr,
                     size_t errstr_size)
{
	uint64_t until = tally_mono_ns() + 10000000000ull;

	for (;;) {
		tally_election_status_t now;

		pthread_mutex_lock(&s->committed_lock);
		now = s->committed->election.status;
		pthread_mutex_unlock(&s->committed_lock);
		if (now == status)
			return 0;
		if (tally_mono_ns() > until) {
			snprintf(errstr, errstr_size, "the election is %s but not yet stored in postgres "
			         "(within 10 s); it will be with the next checkpoint",
			         tally_election_status_name(status));
			return TALLY_ETIMEDOUT;
		}
		tallyd_sleep_ms(5);
	}
}

static int
web_admin(void *arg, tally_http_action_t action, char *errstr, size_t errstr_size)
{
	server_t *s = arg;
	int rc, answer;

	rc = tally_handoff_ask(&s->admin, 1 + (int)action, 10000, &answer, errstr, errstr_size);
	if (rc == TALLY_EAGAIN)
		snprintf(errstr, errstr_size, "another admin action is in progress");
	else if (rc == TALLY_ETIMEDOUT)
		snprintf(errstr, errstr_size, "the server did not take the action within 10 s; "
		         "nothing was done");
	if (rc != 0)
		return rc;
	if ((rc = answer) == 0)
		rc = admin_wait_committed(s, s->admin_status, errstr, errstr_size);
	tally_handoff_release(&s->admin);
	return rc;
}

/* The HTTP adapter shows the committed state only. */
static int
web_snapshot(void *arg, tally_snapshot_t *snap)
{
	return tallyd_committed_copy(arg, snap);
}

static void
web_metrics(void *arg, tally_metrics_builder_t *b)
{
	server_t *s = arg;
	tally_store_stats_t fig;
	uint64_t last;
	int n = tally_load_acquire(&s->nlag);
	int64_t lat = tally_kafka_producer_latency_us(s->producer);

	tally_store_stats(s->store, &fig);
	last = fig.last_checkpoint_ns;
	tally_metrics_counter(b, "tally_dead_letters_total",
	                      "Rejected votes produced to the dead-letter topic.", NULL,
	                      (double)tally_load_relaxed(&s->dead_letters));
	tally_metrics_counter(b, "tally_dead_letter_failures_total",
	                      "Rejected votes Kafka refused as dead letters (logged).", NULL,
	                      (double)tally_load_relaxed(&s->dead_letter_failed));
	if (s->fwd != NULL) {
		tally_metrics_counter(b, "tally_votes_forwarded_total",
		                      "--cluster: votes read off their voter's home partition and "
		                      "forwarded there.", NULL,
		                      (double)tally_load_relaxed(&s->forwarded));
		tally_metrics_counter(b, "tally_forwards_twice_total",
		                      "--cluster: forwarded votes received again (sent twice, e.g. "
		                      "by an instance that stopped before its checkpoint), let pass.",
		                      NULL, (double)tally_load_relaxed(&s->fwd_twice));
	}
	tally_metrics_counter(b, "tally_checkpoints_total", "Checkpoints written to PostgreSQL.",
	                      NULL, (double)fig.checkpoints);
	tally_metrics_counter(b, "tally_checkpoint_failures_total",
	                      "Checkpoint attempts that failed (retried).", NULL,
	                      (double)fig.checkpoint_failures);
	tally_metrics_counter(b, "tally_checkpointed_votes_total",
	                      "Accepted votes stored by checkpoints since start.", NULL,
	                      (double)fig.checkpointed_votes);
	tally_metrics_gauge(b, "tally_checkpoint_age_seconds",
	                    "Time since the last checkpoint committed (since start if none).", NULL,
	                    (double)(tally_mono_ns() - (last ? last : s->start_ns)) / 1e9);
	tally_metrics_gauge(b, "tally_checkpoint_duration_seconds",
	                    "Time from the cut to the commit of the last checkpoint.", NULL,
	                    (double)fig.last_checkpoint_ms / 1e3);
	tally_metrics_gauge(b, "tally_votes_pending_checkpoint",
	                    "Accepted votes held in memory until a checkpoint stores them.", NULL,
	                    (double)tally_load_relaxed(&s->pending_votes));
	tally_metrics_gauge(b, "tally_votes_journalled",
	                    "Stored votes in the vote journal, not yet moved into the votes table.",
	                    NULL, (double)fig.journal_votes);
	tally_metrics_counter(b, "tally_journal_moved_votes_total",
	                      "Votes moved from the vote journal into the votes table since start.",
	                      NULL, (double)fig.moved_votes);
	tally_metrics_gauge(b, "tally_postgres_up",
	                    "1 when the last checkpoint attempt reached PostgreSQL.", NULL,
	                    fig.postgres_up ? 1.0 : 0.0);
	tally_metrics_gauge(b, "tally_results_publish_latency_seconds",
	                    "Produce-to-acknowledgement time of the last results or dead-letter "
	                    "message.", NULL, lat > 0 ? (double)lat / 1e6 : 0.0);
	for (int i = 0; i < n; i++) {
		int64_t lag = tally_load_relaxed(&s->lag[i]);
		char part[16];
		const char *labels[] = {"partition", part, NULL};

		if (lag < 0)
			continue;
		snprintf(part, sizeof(part), "%d", i);
		tally_metrics_gauge(b, "tally_consumer_lag_messages",
		                    "Messages of votes_topic not yet read, per partition.", labels,
		                    (double)lag);
	}
}

/* The HTTP surfaces (NULL without --http, or on failure: logged). */
static tally_http_t *
web_start(server_t *s, char *err, size_t errsz)
{
	tally_http_opts_t cbs = {.ready = web_ready, .admin = web_admin, .metrics = web_metrics,
	                         .snapshot = web_snapshot, .cb_arg = s};
	tally_http_t *web;

	if (s->conf->http == NULL)
		return NULL;
	if ((web = tallyd_web_start(s->conf, s->core, &cbs, err, errsz)) == NULL)
		tallyd_log("--http %s: %s", s->conf->http, err);
	return web;
}

static void
draw(server_t *s, tallyd_view_t *view, bool final)
{
	char header[160], note[160];
	tally_store_stats_t fig;
	uint64_t last;

	tally_store_stats(s->store, &fig);
	last = fig.last_checkpoint_ns;

	tallyd_committed_copy(s, s->snap);
	snprintf(header, sizeof(header), "tallyd   election \"%s\"   %s",
	         s->conf->election_id, tally_election_status_name(s->snap->election.status));
	snprintf(note, sizeof(note), "checkpoint %.1f s ago, %" PRIu64 " votes stored%s",
	         last ? (double)(tally_mono_ns() - last) / 1e9 : 0.0,
	         fig.checkpointed_votes, fig.postgres_up ? "" : ", postgres unreachable");
	tallyd_view_draw(view, s->reg, s->snap, header, note, final);
}

static void
serve_loop(server_t *s)
{
	const tallyd_conf_t *conf = s->conf;
	rd_kafka_message_t *msgs[POLL_BATCH];
	uint64_t ckpt_every = conf->checkpoint_interval_ms * 1000000ull;
	uint64_t results_every = conf->results_interval_ms * 1000000ull;
	uint64_t now = tally_mono_ns(), last_cut = now, next_results = now;
	uint64_t next_stats = now + STATS_INTERVAL_NS, idle_since = 0, next_lag = now;
	bool live = false, was_caught_up = false;
	uint64_t behind_since = now;
	int64_t logged_gen = -1;
	tallyd_view_t view;

	tallyd_view_init(&view);

	while (!stopping()) {
		/* What is there now, without waiting for a full batch (which would hold the first
		 * vote back until POLL_BATCH came); when nothing is, wait for the first message. */
		ssize_t got = rd_kafka_consume_batch_queue(s->queue, 0, msgs, POLL_BATCH);

		if (got == 0 && (msgs[0] = rd_kafka_consume_queue(s->queue, s->paused ? 100 : 20)) !=
		                    NULL)
			got = 1;

		for (ssize_t i = 0; i < got; i++) {
			rd_kafka_message_t *m = msgs[i];

			if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
				part_t *p = m->partition >= 0 ? tallyd_part_of(s, m) : NULL;

				if (p != NULL)
					p->eof = true;
				rd_kafka_message_destroy(m);
			} else if (m->err == RD_KAFKA_RESP_ERR__FATAL) {
				/* E.g. a static member fenced by a newer one with its instance id: this
				 * consumer reads nothing more. Stop (the last cut is still committed, or
				 * refused if the partitions were claimed since) and exit non-zero, so
				 * that the service manager starts a new one. */
				char why[512];

				rd_kafka_fatal_error(s->rk, why, sizeof(why));
				tallyd_log("kafka: fatal: %s: stopping", why);
				s->kafka_fatal = true;
				tallyd_request_stop();
				rd_kafka_message_destroy(m);
			} else if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
				tallyd_log("kafka: %s", rd_kafka_message_errstr(m));
				rd_kafka_message_destroy(m);
			} else {
				tallyd_ingest(s, m);
			}
		}
		/* The queue ran dry: send what is filling now rather than wait for full batches,
		 * so a vote is counted within one poll of arriving even at a trickle. */
		if (got < POLL_BATCH)
			tallyd_submit_all(s);
		tallyd_harvest(s);
		admin_poll(s);
		tally_store_relaxed(&s->pending_votes, s->pending.n);
		if (!live && s->generation > 0) {
			live = true;
			tally_store_release(&s->ready, 1);
			tallyd_log("live %.3f s after start", (double)(tally_mono_ns() - s->start_ns) / 1e9);
			tally_notify_or_warn("tallyd", "READY=1");
		}
		now = tally_mono_ns();
		if (s->pending.n + s->pending_dl.n >= conf->max_pending_votes)
			set_paused(s, true);
		else if (s->paused && tallyd_ckpt_idle(s))
			set_paused(s, false);
		if (now >= last_cut + ckpt_every && tallyd_ckpt_idle(s)) {
			if (tallyd_cut(s) != 0)
				tallyd_log("could not cut a checkpoint: out of memory");
			last_cut = now;
		}
		if (now >= next_results) {
			next_results = now + results_every;
			if (conf->live_view)
				draw(s, &view, false);
		}
		if (now >= next_lag) {
			update_lag(s);
			next_lag = now + 250000000ull;
		}
		if (now >= next_stats && !(conf->live_view && view.tty)) {
			stats_line(s, "counting");
			next_stats = now + STATS_INTERVAL_NS;
		}
		if (caught_up(s) != was_caught_up) {
			was_caught_up = !was_caught_up;
			tally_store_set_caught_up(s->store, was_caught_up);
			/* At a trickle it is caught up again after every vote: logged the first time,
			 * after a new assignment, or after a second or more of reading. */
			if (!was_caught_up)
				behind_since = now;
			else if (logged_gen != s->generation || now - behind_since >= 1000000000ull) {
				logged_gen = s->generation;
				tallyd_log("caught up: read %" PRIu64 ", accepted %" PRIu64 ", rejected %" PRIu64
				           " (%.3f s since start)", tally_load_relaxed(&s->read),
				           tally_load_relaxed(&s->accepted), tally_load_relaxed(&s->rejected),
				           (double)(now - s->start_ns) / 1e9);
			}
		}
		if (conf->exit_idle_ms > 0) {
			/* Idle means nothing left to do: the journal moved into votes too. */
			tally_store_stats_t fig;

			tally_store_stats(s->store, &fig);
			if (got > 0 || !caught_up(s) || fig.journal_votes > 0)
				idle_since = 0;
			else if (idle_since == 0)
				idle_since = now;
			else if (now - idle_since >= conf->exit_idle_ms * 1000000ull) {
				tallyd_log("every partition read to its end and idle for %" PRIu64
				           " ms: stopping", conf->exit_idle_ms);
				break;
			}
		}
	}
}

/* Final checkpoint and results; waits for PostgreSQL up to a limit. */
static int
shutdown_cleanly(server_t *s)
{
	int rc = 0;

	tallyd_settle(s);
	if (!tallyd_checkpoint_now(s, 30000)) {
		tallyd_log("the final checkpoint could not be written: postgres unreachable for 30 s; "
		           "the votes since the last checkpoint are read again on restart");
		tally_store_abandon(s->store);
		rc = 1;
	}
	return rc;
}

/* After the checkpointer has ended: every committed figure out once more, flushed. */
static int
publish_final(server_t *s)
{
	char err[256];
	int rc = 0;

	publish_all(s);
	if (s->conf->live_view) {
		tallyd_committed_copy(s, s->snap);
		tallyd_print_results(s->reg, s->snap, (double)(tally_mono_ns() - s->start_ns) / 1e9);
	}
	if (tally_kafka_producer_flush(s->producer, 30000, err, sizeof(err)) != 0) {
		tallyd_log("results: %s", err);
		rc = 1;
	}
	stats_line(s, "stopped");
	return rc;
}

/*
 * --cluster: a PostgreSQL session left idle inside a transaction (an instance stopped
 * between two statements of a cut, e.g. SIGSTOP, holding its partitions' owner rows) is
 * ended by the server after CLUSTER_IDLE_TX, so a claim by the instance that took the
 * partitions over waits that long at most. Added as libpq's options unless pg.options or
 * the DSN already set options (then it is the operator's to set; README).
 */
#define CLUSTER_IDLE_TX "-c idle_in_transaction_session_timeout=10000"

static void
cluster_pg_options(server_t *s, size_t *npg, const char *dsn)
{
	for (size_t i = 0; i < *npg; i++)
		if (strcmp(s->pg_params[i].key, "options") == 0) {
			tallyd_log("pg.options is set: make sure it sets idle_in_transaction_session_"
			           "timeout (or the role does), so a stopped instance cannot hold its "
			           "partitions' rows");
			return;
		}
	if (dsn != NULL && strstr(dsn, "options") != NULL) {
		tallyd_log("TALLY_PG_DSN sets options: make sure they set idle_in_transaction_"
		           "session_timeout (or the role does), so a stopped instance cannot hold its "
		           "partitions' rows");
		return;
	}
	s->pg_params[(*npg)++] = (tally_pg_param_t){"options", CLUSTER_IDLE_TX};
}

int
tallyd_serve(const tallyd_conf_t *conf)
{
	server_t s_, *s = &s_;
	struct sigaction sa;
	char err[1024], host[64] = "localhost";
	tallyd_registrar_t *registrar = NULL;
	tally_http_t *web = NULL;
	tally_store_hooks_t hooks;
	const char *dsn = getenv("TALLY_PG_DSN");
	int rc = TALLYD_EXIT_FAILURE;
	size_t npg = 0;
	bool admin_ready = false;

	memset(s, 0, sizeof(*s));
	pthread_mutex_init(&s->committed_lock, NULL);
	s->start_ns = tally_mono_ns();
	s->conf = conf;
	s->cluster = conf->cluster;
	gethostname(host, sizeof(host) - 1);
	snprintf(s->owner, sizeof(s->owner), "tallyd@%s:%d", host, (int)getpid());
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);

	/* Every pg.* line is checked here, naming its FILE:LINE; none is ever dropped. */
	if ((s->pg_params = calloc(conf->passthrough.n + 2, sizeof(*s->pg_params))) == NULL) {
		tallyd_log("could not read the pg.* settings: out of memory");
		goto out;
	}
	for (size_t i = 0; i < conf->passthrough.n; i++) {
		const tally_opt_kv_t *kv = &conf->passthrough.items[i];

		if (strncmp(kv->key, "pg.", 3) != 0)
			continue;
		s->pg_params[npg] = (tally_pg_param_t){kv->key + 3, kv->value};
		if (tally_store_check_params(&s->pg_params[npg], 1, err, sizeof(err)) != 0) {
			tallyd_log("%s: %s: %s", kv->where, kv->key, err);
			rc = TALLYD_EXIT_USAGE;
			goto out;
		}
		npg++;
	}
	/* Partitions 1: tally-gen creates the topics with their partitions; tallyd only makes
	 * sure they exist (creating any missing one with a single partition). */
	if ((dsn == NULL || dsn[0] == '\0') && npg == 0) {
		tallyd_log("no PostgreSQL to count into: set TALLY_PG_DSN (or pg.* settings), e.g. "
		           "eval \"$(scripts/services up)\"");
		rc = TALLYD_EXIT_USAGE;
		goto out;
	}
	if (conf->cluster)
		cluster_pg_options(s, &npg, dsn);
	{
		/* A bad kafka.* line fails now, naming its file:line, not after the restore. */
		rd_kafka_conf_t *kc = tallyd_kafka_conf(conf, err, sizeof(err));

		if (kc == NULL) {
			tallyd_log("%s", err);
			rc = TALLYD_EXIT_USAGE;
			goto out;
		}
		rd_kafka_conf_destroy(kc);
	}
	if (tally_kafka_topics_init(&s->topics, conf->topic_prefix, 1, err, sizeof(err)) != 0) {
		tallyd_log("%s", err);
		rc = TALLYD_EXIT_USAGE;
		goto out;
	}
	s->votes_topic = s->topics.topic[TALLY_KAFKA_VOTES].name;
	s->dl_topic = s->topics.topic[TALLY_KAFKA_REJECTED].name;
	if ((s->slots = calloc(NSLOTS, sizeof(*s->slots))) == NULL) {
		tallyd_log("could not allocate %u batches: out of memory", NSLOTS);
		goto out;
	}
	for (unsigned i = 0; i < NSLOTS; i++)
		tallyd_slot_put(s, &s->slots[i]);

	if (restore(s, npg, err, sizeof(err)) != 0) {
		tallyd_log("%s", err);
		goto out;
	}
	/* The restored checkpoint is the first committed state to show. */
	if ((s->snap = tally_snapshot_take(s->core)) == NULL ||
	    (s->committed = tally_snapshot_take(s->core)) == NULL) {
		tallyd_log("could not take the first snapshot: out of memory");
		goto out;
	}
	s->cut_version = s->committed->version;
	if (kafka_start(s, err, sizeof(err)) != 0 || dead_letters_recover(s, err, sizeof(err)) != 0) {
		tallyd_log("%s", err);
		goto out;
	}
	if (!s->cluster)
		publish_all(s);
	if (tally_handoff_init(&s->admin) != 0) {
		tallyd_log("could not make the admin handoff: %s", strerror(errno));
		goto out;
	}
	admin_ready = true;
	/* --cluster: HTTP once the whole election's committed state is read (below), so a
	 * restarted instance never shows less than it did before. */
	if (!s->cluster && (web = web_start(s, err, sizeof(err))) == NULL && conf->http != NULL)
		goto out;
	if ((rc = tally_core_start(s->core)) != 0) {
		tallyd_log("could not start the core's workers: %s", tally_err2str(rc));
		rc = TALLYD_EXIT_FAILURE;
		goto out;
	}
	/* The store's threads: the writer, the mover and (after a full load) the image
	 * writer for the next start. */
	tallyd_store_hooks(s, &hooks);
	if (tally_store_start(s->store, &hooks, s->reg, err, sizeof(err)) != 0) {
		tallyd_log("%s", err);
		goto out;
	}
	if (s->cluster) {
		if (tallyd_cluster_start(s, err, sizeof(err)) != 0) {
			tallyd_log("%s", err);
			goto out;
		}
		if (!tallyd_cluster_wait_view(s) ||
		    ((web = web_start(s, err, sizeof(err))) == NULL && conf->http != NULL))
			goto out;
	}
	registrar = tallyd_registrar_start(conf, s->reg, &s->topics, s->store, err, sizeof(err));
	if (registrar == NULL)
		tallyd_log("registrations from Kafka are off: %s", err);
	tallyd_log("counting \"%s\" from \"%s\" (workers %u, checkpoint every %" PRIu64
	           " ms, results every %" PRIu64 " ms)", conf->election_id, s->votes_topic,
	           tally_core_workers(s->core), conf->checkpoint_interval_ms,
	           conf->results_interval_ms);

	serve_loop(s);
	tally_notify_or_warn("tallyd", "STOPPING=1");
	tally_handoff_end(&s->admin, false, "tallyd is stopping");
	/* The mover stops after its current piece (the rest waits for the next start), and the
	 * image writer too: its write is worth less than a prompt exit. */
	tally_store_stop_background(s->store);
	tally_store_set_caught_up(s->store, false);
	/* Let go of the partitions (the revoke settles what was read), then the last cut. */
	rd_kafka_consumer_close(s->rk);
	if (tallyd_fenced(s) || s->give_up || tally_load_acquire(&s->fwd_failed) != 0) {
		/* A zombie commits and publishes nothing more: no final checkpoint. */
		tallyd_cluster_stop(s);
		tally_store_abandon(s->store);
		rc = tallyd_fenced(s) ? TALLYD_EXIT_FENCED : TALLYD_EXIT_FAILURE;
		tallyd_log(tallyd_fenced(s) ? "fenced: stopped without a final checkpoint"
		                            : "stopped without a final checkpoint");
		goto out;
	}
	rc = shutdown_cleanly(s) == 0 && !s->kafka_fatal ? 0 : TALLYD_EXIT_FAILURE;
	if (s->cluster) {
		/* The last commit shown (and, as leader, published) before letting go. */
		tallyd_cluster_wait_seen(s, 3000);
		if (publish_final(s) != 0)
			rc = TALLYD_EXIT_FAILURE;
		tallyd_cluster_stop(s);
		tally_store_stop(s->store);
	} else {
		tally_store_stop(s->store);
		if (publish_final(s) != 0)
			rc = TALLYD_EXIT_FAILURE;
	}
out:
	tallyd_cluster_results_stop(s);
	if (s->store != NULL) {
		/* On a failed start: the cut in hand, if any, is given up. */
		tally_store_abandon(s->store);
		tally_store_stop(s->store);
	}
	tallyd_web_stop(web);
	tallyd_registrar_stop(registrar);
	tally_store_destroy(s->store);
	tally_core_destroy(s->view);     /* after the watcher, its only user */
	free(s->view_seen);
	free(s->part_committed);
	tally_snapshot_destroy(s->pub_snap);
	if (s->core != NULL)
		tally_core_stop(s->core);
	if (s->queue != NULL)
		rd_kafka_queue_destroy(s->queue);
	consumer_destroy(s);
	tally_results_destroy(s->results);
	tally_kafka_producer_destroy(s->producer);
	tally_kafka_producer_destroy(s->fwd);
	for (int i = 0; s->fparts != NULL && i < s->nvotes_parts; i++) {
		free(s->fparts[i].seen);
		free(s->fparts[i].seen_done);
	}
	free(s->fparts);
	tally_snapshot_destroy(s->snap);
	tally_snapshot_destroy(s->committed);
	pthread_mutex_destroy(&s->committed_lock);
	if (admin_ready)
		tally_handoff_destroy(&s->admin);
	tallyd_dead_letters_free(&s->pending_dl);
	tally_kafka_dead_letters_free(&s->dl_found);
	free(s->dl_from);
	tally_core_destroy(s->core);
	tally_registry_destroy(s->reg);
	free(s->pending.v);
	free(s->parts);
	free(s->slots);
	free(s->pg_params);
	return rc;
}

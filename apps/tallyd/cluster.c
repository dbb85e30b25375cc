/*
 * tallyd --cluster (server_int.h): one of several instances of one consumer group, each
 * counting the partitions of votes_topic Kafka assigns it, every one serving the whole
 * election.
 *
 * DESIGN: who writes, who reads, what is published when.
 * - The core keeps one part per partition of votes_topic (lane = partition). The ingest
 *   thread (the rebalance callback runs on it) claims what Kafka assigns
 *   (tally_store_claim(): epoch + 1 fences off every earlier owner), imports each claimed
 *   part's state with the core paused, marks the voters of every vote stored since (other
 *   instances' too), and reads each partition from its claimed next offset. On revocation
 *   it settles, cuts and waits for the commit, then zeroes the revoked parts.
 * - Cuts (checkpointer.c) carry one part per assigned partition {partition, epoch,
 *   version, state} and only those partitions' offsets; PostgreSQL checks the epochs in
 *   the cut's own transaction. A cut refused with TALLY_EFENCED (another instance claimed
 *   a partition since) stops this instance at once: no final checkpoint, nothing more
 *   published, exit status 3.
 * - The whole election: the store's watcher (thread tally:watch) hands every partition's
 *   committed state to on_parts(), which imports it into s->view (a core with the same
 *   parts, never started, touched by that thread only) unless its version is not above
 *   the highest seen for that partition (a published part never goes back), takes the
 *   view's snapshot with version = the sum of the versions seen (each only grows, so the
 *   sum does too) and swaps it in as s->committed under committed_lock (HTTP and the live
 *   view show it as in single mode). Everything shown is committed.
 * - Results topics: only the election's leader (the owner of the lowest partition, says
 *   the watcher; s->leader, atomic) publishes, from its thread tally:results
 *   (results_main(): at most every results.interval.ms, changes only, each round one Kafka
 *   transaction of a producer whose transactional.id all instances share, so becoming
 *   leader fences every earlier leader's producer; everything once when it becomes
 *   leader, from states read after that fence).
 * - One vote per voter across instances: every vote is judged in its voter's home part
 *   (include/tally/home.h), whoever read it. A vote read elsewhere is forwarded through
 *   fwd_topic (`<votes_topic>-by-voter`, as many partitions) to partition home, with its
 *   source position in a header, and let pass where it was read; the owner of home
 *   partition h also reads fwd_topic's h (assigned with votes_topic's h, from the offset
 *   stored with part h) into lane h. Forwarding is at least once (a cut commits a source
 *   offset only once every vote forwarded below it is delivered; an instance that dies
 *   before its cut forwards them again from there), counting exactly once: forwards from
 *   one source partition reach one home in source order (an idempotent producer), so
 *   home h lets in a forward only above the highest source offset it let in from that
 *   source before, and stores those offsets with part h's state, in the same row and
 *   transaction, fenced alike (the part's forward bytes: tallyd_forward_pack()). Two
 *   senders of one source (a zombie and the new owner) each send an ordered run of the
 *   same sequence, the new one from the committed offset, below which the old one's
 *   forwards were all delivered; so whichever copy arrives first is let in, and every
 *   one is.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tally/atomic.h>
#include <tally/core.h>
#include <tally/error.h>
#include <tally/home.h>
#include <tally/kafka.h>
#include <tally/registry.h>
#include <tally/results.h>
#include <tally/snapshot.h>
#include <tally/state.h>
#include <tally/store.h>
#include <tally/thread.h>
#include <tally/time.h>

#include "server_int.h"

#define META_TIMEOUT_MS 10000

bool
tallyd_fenced(server_t *s)
{
	return tally_load_acquire(&s->fenced) != 0;
}

/* ---- start ------------------------------------------------------------------------------ */

/* votes_topic's partition count from the cluster's metadata (a producer handle of its own,
 * before anything else of Kafka is up); retried while the topic has no metadata yet. */
int
tallyd_cluster_parts(server_t *s, char *err, size_t errsz)
{
	for (int attempt = 0;; attempt++) {
		rd_kafka_conf_t *kc = tallyd_kafka_conf(s->conf, err, errsz);
		const struct rd_kafka_metadata *md = NULL;
		rd_kafka_topic_t *rkt;
		rd_kafka_resp_err_t e;
		rd_kafka_t *rk;
		int n = 0;

		if (kc == NULL)
			return TALLY_ECONFIG;
		if ((rk = rd_kafka_new(RD_KAFKA_PRODUCER, kc, err, errsz)) == NULL) {
			rd_kafka_conf_destroy(kc);
			return TALLY_ECONFIG;
		}
		rkt = rd_kafka_topic_new(rk, s->votes_topic, NULL);
		e = rd_kafka_metadata(rk, 0, rkt, &md, META_TIMEOUT_MS);
		if (e == RD_KAFKA_RESP_ERR_NO_ERROR && md->topic_cnt == 1 &&
		    md->topics[0].err == RD_KAFKA_RESP_ERR_NO_ERROR)
			n = md->topics[0].partition_cnt;
		else if (e == RD_KAFKA_RESP_ERR_NO_ERROR && md->topic_cnt == 1)
			e = md->topics[0].err;
		if (md != NULL)
			rd_kafka_metadata_destroy(md);
		rd_kafka_topic_destroy(rkt);
		rd_kafka_destroy(rk);
		if (n > 0) {
			if ((unsigned)n > TALLY_CORE_MAX_PARTS) {
				snprintf(err, errsz, "\"%s\" has %d partitions, more than the %u --cluster "
				         "counts", s->votes_topic, n, TALLY_CORE_MAX_PARTS);
				return TALLY_EINVAL;
			}
			s->nvotes_parts = n;
			return 0;
		}
		if (attempt >= 5) {
			snprintf(err, errsz, "could not read the partitions of \"%s\": %s",
			         s->votes_topic, rd_kafka_err2str(e));
			return tally_kafka_err(e);
		}
		tallyd_log("reading the partitions of \"%s\", retrying in 1 s: %s", s->votes_topic,
		           rd_kafka_err2str(e));
		tallyd_sleep_ms(1000);
	}
}

/* ---- forwarding ------------------------------------------------------------------------- */

/* The forward topic (as many partitions as votes_topic: at least, as an existing one may
 * have more; homes are below votes_topic's count) and its producer (idempotent: each
 * partition gets one sender's forwards in the order sent; it never gives up on one). */
int
tallyd_forward_start(server_t *s, char *err, size_t errsz)
{
	tally_kafka_topic_t t = {.name = s->fwd_topic, .partitions = s->nvotes_parts,
	                         .replication_factor = 1};
	rd_kafka_conf_t *kc;
	char msg[256];
	int rc;

	snprintf(s->fwd_topic, sizeof(s->fwd_topic), "%s-by-voter", s->votes_topic);
	if ((s->fparts = calloc((size_t)s->nvotes_parts, sizeof(*s->fparts))) == NULL) {
		snprintf(err, errsz, "out of memory");
		return TALLY_ENOMEM;
	}
	for (int i = 0; i < s->nvotes_parts; i++)
		s->fparts[i] = (part_t){.forward = true, .next_offset = -1, .read_offset = -1};
	if ((kc = tallyd_kafka_conf(s->conf, err, errsz)) == NULL)
		return TALLY_ECONFIG;
	if (rd_kafka_conf_set(kc, "message.timeout.ms", "0", msg, sizeof(msg)) != RD_KAFKA_CONF_OK ||
	    rd_kafka_conf_set(kc, "linger.ms", "1", msg, sizeof(msg)) != RD_KAFKA_CONF_OK) {
		snprintf(err, errsz, "forward producer: %s", msg);
		rd_kafka_conf_destroy(kc);
		return TALLY_ECONFIG;
	}
	if ((s->fwd = tally_kafka_producer_new(kc, err, errsz)) == NULL)
		return TALLY_ECONFIG;
	while ((rc = tally_kafka_ensure_topics(tally_kafka_producer_handle(s->fwd), &t, 1, 30000,
	                                       err, errsz)) == TALLY_ETIMEDOUT && !tallyd_stopping())
		tallyd_log("%s; retrying", err);
	if (rc != 0)
		return rc;
	tallyd_log("votes read off their voter's home partition go through \"%s\"", s->fwd_topic);
	return 0;
}

/*
 * A home part's forward bytes, stored with its state: "TFW1", the next offset of fwd_topic's
 * partition (-1: none), the count of source partitions let in from, then each one's
 * partition and highest source offset let in; big-endian.
 */
#define FWD_MAGIC "TFW1"

static void
be_put(unsigned char **at, uint64_t v, int bytes)
{
	for (int i = bytes - 1; i >= 0; i--, v >>= 8)
		(*at)[i] = (unsigned char)v;
	*at += bytes;
}

static uint64_t
be_get(const unsigned char **at, int bytes)
{
	uint64_t v = 0;

	for (int i = 0; i < bytes; i++)
		v = v << 8 | (*at)[i];
	*at += bytes;
	return v;
}

void *
tallyd_forward_pack(const part_t *fp, int nsrc, size_t *len)
{
	unsigned char *buf, *at;
	uint32_t n = 0;

	for (int i = 0; i < nsrc; i++)
		n += fp->seen_done != NULL && fp->seen_done[i] >= 0;
	*len = 4 + 8 + 4 + (size_t)n * 12;
	if ((buf = malloc(*len)) == NULL)
		return NULL;
	memcpy(buf, FWD_MAGIC, 4);
	at = buf + 4;
	be_put(&at, (uint64_t)fp->next_offset, 8);
	be_put(&at, n, 4);
	for (int i = 0; i < nsrc; i++) {
		if (fp->seen_done == NULL || fp->seen_done[i] < 0)
			continue;
		be_put(&at, (uint32_t)i, 4);
		be_put(&at, (uint64_t)fp->seen_done[i], 8);
	}
	return buf;
}

/* Restore fwd_topic's partition p (claimed with home p) from its stored bytes (NULL: from
 * the beginning, nothing let in yet). */
static int
forward_claim(server_t *s, int p, const void *bytes, size_t len, char *err, size_t errsz)
{
	part_t *fp = &s->fparts[p];
	const unsigned char *at = bytes;
	uint32_t n;

	if (fp->seen == NULL &&
	    ((fp->seen = malloc((size_t)s->nvotes_parts * sizeof(*fp->seen))) == NULL ||
	     (fp->seen_done = malloc((size_t)s->nvotes_parts * sizeof(*fp->seen_done))) == NULL)) {
		snprintf(err, errsz, "out of memory");
		return TALLY_ENOMEM;
	}
	for (int i = 0; i < s->nvotes_parts; i++)
		fp->seen[i] = fp->seen_done[i] = -1;
	fp->next_offset = -1;
	if (bytes != NULL) {
		if (len < 16 || memcmp(at, FWD_MAGIC, 4) != 0)
			goto corrupt;
		at += 4;
		fp->next_offset = (int64_t)be_get(&at, 8);
		n = (uint32_t)be_get(&at, 4);
		if (len != 16 + (size_t)n * 12)
			goto corrupt;
		for (uint32_t k = 0; k < n; k++) {
			uint32_t src = (uint32_t)be_get(&at, 4);
			int64_t off = (int64_t)be_get(&at, 8);

			if (src >= (uint32_t)s->nvotes_parts)
				goto corrupt;
			fp->seen[src] = fp->seen_done[src] = off;
		}
	}
	fp->assigned = true;
	fp->eof = false;
	fp->read_offset = -1;
	return 0;
corrupt:
	snprintf(err, errsz, "partition %d's stored forward position is not one tallyd wrote "
	         "(%zu bytes)", p, len);
	return TALLY_ECORRUPT;
}

/*
 * The prepare hook (the store's writer thread), before a cut is written: every vote
 * forwarded so far delivered, so that no source offset the cut commits is past an
 * undelivered forward. Waits while Kafka is away (the producer never gives up); a
 * forward that failed for good fails this cut and every later one (the instance stops).
 */
int
tallyd_forward_flush(server_t *s)
{
	char err[512];
	int rc;

	if (s->fwd == NULL)
		return 0;
	while (tally_load_acquire(&s->fwd_failed) == 0 &&
	       (rc = tally_kafka_producer_flush(s->fwd, 1000, err, sizeof(err))) != 0) {
		if (rc == TALLY_ETIMEDOUT) {
			if (tally_store_abandoning(s->store))
				return rc;
			continue;
		}
		tallyd_log("forwarding: %s; no cut commits from now on: stopping without a final "
		           "checkpoint (the next owner forwards them again)", err);
		tally_store_release(&s->fwd_failed, 1);
		tallyd_request_stop();
	}
	return tally_load_acquire(&s->fwd_failed) != 0 ? TALLY_EIO : 0;
}

static int results_start(server_t *s, char *err, size_t errsz);

/* ---- the whole election: the watcher's side --------------------------------------------- */

/*
 * The view's version: the sum of the parts' versions seen (votes judged; each only grows)
 * plus what the view's core counts beside its votes: the registry's entries (parties,
 * candidates, voters: PostgreSQL's, so the same after a restart) and its election changes
 * (none: the view never changes its election). Both only grow and are durable, so the
 * version never goes down, not across a restart either (HTTP starts after the first read),
 * and a registration still makes a new version.
 */
static void
view_version(tally_snapshot_t *snap, uint64_t sum)
{
	snap->version = sum + (snap->version >= snap->read ? snap->version - snap->read : 0);
}

/* The watcher thread: every partition's committed state, into the view; publish it. */
static void
on_parts(void *arg, const tally_pg_part_t *parts, size_t n)
{
	server_t *s = arg;
	tally_snapshot_t *snap, *old;
	uint64_t sum = 0;
	bool changed = false;
	char err[256];

	for (size_t i = 0; i < n; i++) {
		const tally_pg_part_t *pt = &parts[i];
		uint64_t version = 0;
		int rc;

		if (pt->partition < 0 || pt->partition >= s->nvotes_parts || pt->state == NULL ||
		    pt->version <= s->view_seen[pt->partition])
			continue;
		rc = tally_state_import_part(s->view, (unsigned)pt->partition, pt->state,
		                             pt->state_len, &version, err, sizeof(err));
		if (rc != 0) {
			/* E.g. a candidate registered elsewhere, not here yet: the next read tries
			 * again; the view keeps this partition's previous state meanwhile. */
			tallyd_log("partition %d's state (version %" PRIu64 ") not shown yet: %s",
			           (int)pt->partition, pt->version, rc == TALLY_ENOENT ? err
			           : tally_err2str(rc));
			continue;
		}
		pthread_mutex_lock(&s->committed_lock);
		s->view_seen[pt->partition] = version > pt->version ? version : pt->version;
		pthread_mutex_unlock(&s->committed_lock);
		changed = true;
	}
	/* Registrations change the view too (a new candidate, a voter's region): every round
	 * comes here (every_round), so they show within a round. */
	if (tally_registry_generation(s->reg) != s->view_reg_gen) {
		s->view_reg_gen = tally_registry_generation(s->reg);
		changed = true;
	}
	if (!changed) {
		tally_store_release(&s->view_read, 1);
		return;
	}
	for (int p = 0; p < s->nvotes_parts; p++)
		sum += s->view_seen[p];
	if ((snap = tally_snapshot_take(s->view)) == NULL) {
		tallyd_log("could not take the election's snapshot: out of memory");
		return;
	}
	view_version(snap, sum);
	pthread_mutex_lock(&s->committed_lock);
	old = s->committed;
	s->committed = snap;
	pthread_mutex_unlock(&s->committed_lock);
	tally_snapshot_destroy(old);
	tally_store_release(&s->view_read, 1);
}

static void
on_leader(void *arg, bool is_leader)
{
	server_t *s = arg;

	if (is_leader)
		tally_store_release(&s->leader_term, tally_load_relaxed(&s->leader_term) + 1);
	tally_store_release(&s->leader, is_leader ? 1 : 0);
	tallyd_log(is_leader ? "results leader of election \"%s\": publishing the results topics"
	                     : "no longer the results leader of election \"%s\"",
	           s->conf->election_id);
}

int
tallyd_cluster_start(server_t *s, char *err, size_t errsz)
{
	tally_core_opts_t co = {0};
	tally_store_watch_t w = {.parts = on_parts, .leader = on_leader, .arg = s,
	                         .interval_ms = 1000, .every_round = true};
	int rc;

	co.workers = 1;
	co.parts = (unsigned)s->nvotes_parts;
	tally_core_election(s->core, &co.election);
	if ((s->view = tally_core_new(s->reg, &co, err, errsz)) == NULL)
		return TALLY_ENOMEM;
	if ((s->view_seen = calloc((size_t)s->nvotes_parts, sizeof(*s->view_seen))) == NULL ||
	    (s->part_committed = calloc((size_t)s->nvotes_parts,
	                                sizeof(*s->part_committed))) == NULL ||
	    (s->pub_snap = calloc(1, sizeof(*s->pub_snap))) == NULL) {
		snprintf(err, errsz, "out of memory");
		return TALLY_ENOMEM;
	}
	/* Until the first read nothing is shown: HTTP starts after it (tallyd_cluster_wait_view()),
	 * and the results topics are published from it. */
	{
		tally_snapshot_t *snap = tally_snapshot_take(s->view), *old;

		if (snap == NULL) {
			snprintf(err, errsz, "out of memory");
			return TALLY_ENOMEM;
		}
		view_version(snap, 0);
		pthread_mutex_lock(&s->committed_lock);
		old = s->committed;
		s->committed = snap;
		pthread_mutex_unlock(&s->committed_lock);
		tally_snapshot_destroy(old);
	}
	if ((rc = tally_store_watch_start(s->store, &w, err, errsz)) != 0)
		return rc;
	return results_start(s, err, errsz);
}

/* Wait until the watcher has read every partition's committed state once (so what is
 * shown from then on is never below what any instance showed before). false: stopping. */
bool
tallyd_cluster_wait_view(server_t *s)
{
	uint64_t t0 = tally_mono_ns(), next_log = t0 + 5000000000ull;

	while (!tally_load_acquire(&s->view_read)) {
		if (tallyd_stopping())
			return false;
		if (tally_mono_ns() > next_log) {
			tallyd_log("waiting for the partitions' committed states (%.0f s) before serving",
			           (double)(tally_mono_ns() - t0) / 1e9);
			next_log += 5000000000ull;
		}
		tallyd_sleep_ms(10);
	}
	return true;
}

/* Wait (up to ms) until the view shows every version this run committed. */
void
tallyd_cluster_wait_seen(server_t *s, unsigned ms)
{
	uint64_t until = tally_mono_ns() + (uint64_t)ms * 1000000ull;

	while (tally_mono_ns() < until) {
		bool all = true;

		pthread_mutex_lock(&s->committed_lock);
		for (int p = 0; p < s->nvotes_parts; p++)
			all &= s->view_seen[p] >= tally_load_relaxed(&s->part_committed[p]);
		pthread_mutex_unlock(&s->committed_lock);
		if (all)
			return;
		tallyd_sleep_ms(10);
	}
}

void
tallyd_cluster_stop(server_t *s)
{
	tallyd_cluster_results_stop(s);
	if (s->store != NULL)
		tally_store_watch_stop(s->store);
}

/* ---- the results topics: the leader's publisher thread ---------------------------------- */

/* The results producer: transactional, one transactional.id per group and election, so a
 * new leader's initialisation fences every earlier leader's producer (a zombie's late
 * results are aborted and its later commits refused: read_committed readers never see
 * them). */
static int
results_producer_new(server_t *s, char *err, size_t errsz)
{
	char id[512], msg[256];
	rd_kafka_conf_t *kc;

	snprintf(id, sizeof(id), "tally-results:%s:%s", s->conf->group_id, s->conf->election_id);
	if ((kc = tallyd_kafka_conf(s->conf, err, errsz)) == NULL)
		return TALLY_ECONFIG;
	if (rd_kafka_conf_set(kc, "transactional.id", id, msg, sizeof(msg)) != RD_KAFKA_CONF_OK ||
	    rd_kafka_conf_set(kc, "linger.ms", "1", msg, sizeof(msg)) != RD_KAFKA_CONF_OK ||
	    rd_kafka_conf_set(kc, "message.timeout.ms", "30000", msg, sizeof(msg)) !=
	        RD_KAFKA_CONF_OK) {
		snprintf(err, errsz, "results producer: %s", msg);
		rd_kafka_conf_destroy(kc);
		return TALLY_ECONFIG;
	}
	if ((s->rprod = tally_kafka_producer_new(kc, err, errsz)) == NULL)
		return TALLY_ECONFIG;
	if ((s->rresults = tally_results_new(s->rprod, &s->topics)) == NULL) {
		tally_kafka_producer_destroy(s->rprod);
		s->rprod = NULL;
		snprintf(err, errsz, "out of memory");
		return TALLY_ENOMEM;
	}
	return 0;
}

static void
results_producer_drop(server_t *s)
{
	tally_results_destroy(s->rresults);
	tally_kafka_producer_destroy(s->rprod);
	s->rresults = NULL;
	s->rprod = NULL;
}

/* One transaction of the committed view's changes (all: every figure). */
static int
results_send(server_t *s, bool all, char *err, size_t errsz)
{
	size_t n;
	int rc;

	if ((rc = tally_kafka_txn_begin(s->rprod, err, errsz)) != 0)
		return rc;
	if (tally_results_publish(s->rresults, s->reg, s->pub_snap, all, &n) != 0) {
		snprintf(err, errsz, "could not queue results");
		/* Committing what was queued is still right: each figure is a committed one. */
	}
	return tally_kafka_txn_commit(s->rprod, 30000, err, errsz);
}

/*
 * The thread tally:results. While this instance is the results leader (it owns the lowest
 * partition, the watcher says), at most every results.interval.ms: the committed view's
 * changes, in one Kafka transaction. Each leadership (term) starts by initialising the
 * producer's transactions, which fences every earlier leader, waits for a watcher round
 * begun after that, then sends every figure once. A failed transaction sends every figure
 * again next time (what it held is not known to be out). Fenced: another instance leads
 * now (the watcher will say so); nothing more in this term, never fencing the new leader
 * back. On stop, one last round as leader.
 */
static void *
results_main(void *arg)
{
	server_t *s = arg;
	unsigned every = s->conf->results_interval_ms > 10 ? (unsigned)s->conf->results_interval_ms
	                                                    : 10;
	int term = 0, fenced_term = 0;   /* terms: 0 is none (the first is 1) */
	uint64_t fresh_from = 0;         /* the watcher's rounds before publishing in a term */
	bool all = true, said = false;
	char err[512];

	for (;;) {
		bool stop = tally_load_acquire(&s->rstop) != 0;
		int now_term;
		int rc;

		if (!stop)
			tallyd_sleep_ms(every);
		now_term = tally_load_acquire(&s->leader_term);
		if (tallyd_fenced(s) || !tally_load_acquire(&s->leader) || now_term == fenced_term)
			goto next;
		if (term != now_term) {
			/* A producer initialises its transactions once: a new one each term. */
			if (term != 0 && s->rprod != NULL) {
				results_producer_drop(s);
				term = 0;
			}
			if (s->rprod == NULL && results_producer_new(s, err, sizeof(err)) != 0) {
				if (!said)
					tallyd_log("results: %s", err);
				said = true;
				goto next;
			}
			if ((rc = tally_kafka_txn_init(s->rprod, 30000, err, sizeof(err))) != 0) {
				if (!said)
					tallyd_log("results: %s%s", err, rc == TALLY_EFENCED ? "" : " (retrying)");
				said = true;
				if (rc == TALLY_EFENCED) {
					results_producer_drop(s);
					fenced_term = now_term;
				}
				goto next;
			}
			said = false;
			term = now_term;
			all = true;
			/* Publish from states read after the fence: an earlier leader may have
			 * committed results read after this instance's last round. A round that
			 * ends second from now began after it. */
			fresh_from = tally_store_watch_rounds(s->store) + 2;
			tallyd_log("results: publishing as leader (transactions initialised: every earlier "
			           "leader's producer is fenced off)");
		}
		if (tally_store_watch_rounds(s->store) < fresh_from)
			goto next;
		rc = tallyd_committed_copy(s, s->pub_snap);
		if ((rc != 0 && !all) || s->pub_snap->taken_at_us == 0)
			goto next;
		if ((rc = results_send(s, all, err, sizeof(err))) == 0) {
			all = false;
			tally_store_release(&s->results_sent, tally_load_relaxed(&s->results_sent) + 1);
		} else {
			all = true;
			tallyd_log("results: %s", err);
			if (rc == TALLY_EFENCED) {
				tallyd_log("results: fenced by a newer results leader: publishing nothing "
				           "more unless this instance leads again");
				results_producer_drop(s);
				term = 0;
				fenced_term = now_term;
			}
		}
next:
		if (stop)
			break;
	}
	results_producer_drop(s);
	return NULL;
}

static int
results_start(server_t *s, char *err, size_t errsz)
{
	if (tally_thread_start(&s->rthread, "tally:results", results_main, s, err, errsz) != 0)
		return TALLY_EIO;
	s->rthread_started = true;
	return 0;
}

/* Stop the publisher thread (as leader, after a last round). Idempotent. */
void
tallyd_cluster_results_stop(server_t *s)
{
	if (!s->rthread_started)
		return;
	tally_store_release(&s->rstop, 1);
	pthread_join(s->rthread, NULL);
	s->rthread_started = false;
}

/* ---- rebalancing: the ingest thread ----------------------------------------------------- */

void
tallyd_cluster_assign(server_t *s, rd_kafka_topic_partition_list_t *list)
{
	int32_t *ids = calloc((size_t)list->cnt + 1, sizeof(*ids));
	tally_store_claimed_t *cl = calloc((size_t)list->cnt + 1, sizeof(*cl));
	rd_kafka_topic_partition_list_t *all;
	tally_uuid_t *voted = NULL;
	size_t nvoted = 0, failed = 0;
	char err[512];
	int rc = 0, maxp = 0;

	if (ids == NULL || cl == NULL) {
		tallyd_log("out of memory");
		abort();
	}
	for (int i = 0; i < list->cnt; i++) {
		ids[i] = list->elems[i].partition;
		if (ids[i] >= s->nvotes_parts) {
			tallyd_log("assigned partition %d of \"%s\", beyond the %d it had at start: "
			           "stopping (restart to count it)", (int)ids[i], s->votes_topic,
			           s->nvotes_parts);
			tallyd_request_stop();
			rc = TALLY_EINVAL;
		}
		if (ids[i] + 1 > maxp)
			maxp = ids[i] + 1;
	}
	if (rc == 0 && list->cnt > 0 &&
	    (rc = tally_store_claim(s->store, ids, (size_t)list->cnt, cl, err, sizeof(err))) != 0) {
		tallyd_log("could not claim the assigned partitions: %s", err);
		tallyd_request_stop();
	}
	if (rc == 0 && list->cnt > 0 &&
	    (rc = tally_store_voted(s->store, &voted, &nvoted, err, sizeof(err))) != 0) {
		tallyd_log("could not read the stored votes' voters: %s", err);
		tallyd_request_stop();
	}
	if (rc != 0 || tallyd_parts_fit(s, maxp) != 0) {
		/* Nothing counted of them: an empty assignment, and we stop. */
		rd_kafka_topic_partition_list_t *none = rd_kafka_topic_partition_list_new(0);
		rd_kafka_error_t *e = rd_kafka_incremental_assign(s->rk, none);

		if (e != NULL)
			rd_kafka_error_destroy(e);
		rd_kafka_topic_partition_list_destroy(none);
		for (int i = 0; i < list->cnt; i++) {
			free(cl[i].state);           /* NULL unless the claim read them */
			free(cl[i].forward);
		}
		tallyd_request_stop();
		free(voted);
		free(ids);
		free(cl);
		return;
	}
	s->generation++;
	if (list->cnt > 0) {
		tally_core_pause(s->core);
		for (int i = 0; i < list->cnt; i++) {
			unsigned p = (unsigned)cl[i].partition;

			if (cl[i].state != NULL)
				rc = tally_state_import_part(s->core, p, cl[i].state, cl[i].state_len, NULL,
				                             err, sizeof(err));
			else
				rc = tally_state_reset_part(s->core, p);
			if (rc != 0) {
				tallyd_log("could not restore partition %u's state: %s", p,
				           rc == TALLY_ENOENT ? err : tally_err2str(rc));
				abort();   /* never count a partition from a wrong state */
			}
		}
		if ((rc = tally_core_mark_voted_many(s->core, voted, nvoted, &failed)) != 0) {
			tallyd_log("could not mark the stored votes' voters: a stored vote's voter is not "
			           "registered here (%s)", tally_err2str(rc));
			abort();
		}
		tally_core_resume(s->core);
	}
	/* With each home partition, its partition of the forward topic. */
	all = rd_kafka_topic_partition_list_copy(list);
	for (int i = 0; i < list->cnt; i++) {
		part_t *p = &s->parts[cl[i].partition];

		p->assigned = true;
		p->eof = false;
		p->epoch = cl[i].epoch;
		p->next_offset = cl[i].next_offset;
		p->read_offset = -1;
		all->elems[i].offset =
		    p->next_offset >= 0 ? p->next_offset : RD_KAFKA_OFFSET_BEGINNING;
		if (s->fparts != NULL) {
			if ((rc = forward_claim(s, cl[i].partition, cl[i].forward, cl[i].forward_len,
			                        err, sizeof(err))) != 0) {
				tallyd_log("could not restore partition %d's forwarded votes: %s",
				           (int)cl[i].partition, err);
				abort();   /* never count a partition from a wrong state */
			}
			rd_kafka_topic_partition_list_add(all, s->fwd_topic, cl[i].partition)->offset =
			    s->fparts[cl[i].partition].next_offset >= 0
			        ? s->fparts[cl[i].partition].next_offset
			        : RD_KAFKA_OFFSET_BEGINNING;
		}
		free(cl[i].state);
		free(cl[i].forward);
	}
	tallyd_log("assigned %d more partition%s of \"%s\" (generation %" PRId64 "; %zu stored "
	           "votes' voters marked)", list->cnt, list->cnt == 1 ? "" : "s", s->votes_topic,
	           s->generation, nvoted);
	{
		rd_kafka_error_t *e = rd_kafka_incremental_assign(s->rk, all);

		if (e != NULL) {
			tallyd_log("could not take the assignment: %s", rd_kafka_error_string(e));
			rd_kafka_error_destroy(e);
			tallyd_request_stop();
		}
	}
	rd_kafka_topic_partition_list_destroy(all);
	s->paused = false;
	free(voted);
	free(ids);
	free(cl);
}

void
tallyd_cluster_revoke(server_t *s, rd_kafka_topic_partition_list_t *list)
{
	rd_kafka_topic_partition_list_t *all;
	rd_kafka_error_t *e;
	bool lost = rd_kafka_assignment_lost(s->rk) != 0;

	/* Count what was read from these partitions and commit it before letting them go, so
	 * whoever claims them next starts where this count ends. Lost ones too: if another has
	 * claimed them since, the cut is refused (fenced) and this instance stops. */
	/* Settled in any case: a batch holds its Kafka messages until harvested, and the
	 * consumer's close waits for every message held. */
	tallyd_settle(s);
	if (!tallyd_fenced(s) && !s->give_up) {
		s->force_cut = lost;
		if (!tallyd_checkpoint_now(s, 30000) && !tallyd_fenced(s)) {
			/* Their votes would otherwise go out with a later cut, without their
			 * partitions: stop instead, with no final checkpoint. */
			tallyd_log("revoking: the checkpoint could not be written (postgres unreachable "
			           "for 30 s); stopping without a final checkpoint: the votes since the "
			           "last one are read again by the next owner");
			s->give_up = true;
			tally_store_abandon(s->store);
			tallyd_request_stop();
		}
	}
	all = rd_kafka_topic_partition_list_copy(list);
	tally_core_pause(s->core);
	for (int i = 0; i < list->cnt; i++) {
		int32_t p = list->elems[i].partition;

		if (strcmp(list->elems[i].topic, s->votes_topic) != 0)
			continue;                /* the forward topic's: let go with its home's */
		if (p < s->nparts) {
			part_t *pt = &s->parts[p];

			pt->assigned = false;
			pt->eof = false;
			pt->epoch = 0;
			pt->next_offset = -1;
			pt->read_offset = -1;
		}
		if (p >= 0 && p < s->nvotes_parts) {
			tally_state_reset_part(s->core, (unsigned)p);
			if (s->fparts != NULL && s->fparts[p].assigned) {
				part_t *fp = &s->fparts[p];

				fp->assigned = false;
				fp->eof = false;
				fp->next_offset = -1;
				fp->read_offset = -1;
				if (rd_kafka_topic_partition_list_find(all, s->fwd_topic, p) == NULL)
					rd_kafka_topic_partition_list_add(all, s->fwd_topic, p);
			}
		}
	}
	tally_core_resume(s->core);
	tallyd_log("revoked %d partition%s%s", list->cnt, list->cnt == 1 ? "" : "s",
	           lost ? " (lost: the group went on without this instance)" : "");
	if ((e = rd_kafka_incremental_unassign(s->rk, all)) != NULL) {
		tallyd_log("could not let go of the partitions: %s", rd_kafka_error_string(e));
		rd_kafka_error_destroy(e);
	}
	rd_kafka_topic_partition_list_destroy(all);
}

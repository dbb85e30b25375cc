/*
 * tallyd's checkpoints (server_int.h): the cut (core paused, every finished batch
 * harvested, state, offsets and a results snapshot taken) on the ingest thread, and the
 * checkpointer thread that writes each cut and then publishes it.
 *
 * DESIGN: one cut at a time is in the checkpointer's hands (s->job). For it, the
 * checkpointer
 * 1. writes the cut's dead letters to Kafka (those a crashed run already wrote, found on
 *    start, are skipped) and waits until Kafka has them all;
 * 2. writes the cut's votes, state, source offsets and the dead-letter topic's offsets in
 *    one PostgreSQL transaction, retrying while PostgreSQL is away;
 * 3. only then publishes the cut's snapshot: it becomes s->committed (what HTTP and the
 *    live view show) and its changed figures go to the results topics.
 * So every figure shown outside the process is one PostgreSQL has committed, and as later
 * cuts count more, nothing shown is ever lower than what was shown before, also across a
 * crash: the restart restores the newest committed cut, never an older one.
 *
 * Dead letters exactly once: a cut stores, per dead-letter partition, an offset below
 * every dead letter written after it (the delivered end after step 1, which the next cut's
 * dead letters can only follow). On start, the dead letters from there to the topic's end
 * are read back (tally_kafka_dead_letters_scan()); their source positions are the ones a
 * crashed run wrote but did not commit, and they are not written again.
 */
#include <errno.h>
#include <time.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tally/atomic.h>
#include <tally/core.h>
#include <tally/decode.h>
#include <tally/error.h>
#include <tally/kafka.h>
#include <tally/pg_checkpoint.h>
#include <tally/snapshot.h>
#include <tally/state.h>
#include <tally/time.h>

#include "server_int.h"

#define SLOW_CHECKPOINT_NS 1000000000ull   /* a checkpoint slower than this is logged */

/* ---- the checkpointer --------------------------------------------------------------- */

static void
package_free(package_t *pk)
{
	if (pk == NULL)
		return;
	free(pk->rows.v);
	tallyd_dead_letters_free(&pk->dl);
	tally_snapshot_destroy(pk->snap);
	free(pk->state);
	free(pk->offsets);
	free(pk);
}

static PGconn *
ckpt_connect(server_t *s, char *err, size_t errsz)
{
	return tally_pg_connect(s->dsn, s->pg_params, s->npg_params, 2000, err, errsz);
}

/* Write one rejected vote to the dead-letter topic (the checkpointer's thread). */
static void
dead_letter_write(server_t *s, const dead_letter_t *d, const char *base)
{
	char part[16], off[24], detail[160];
	const char *reason = tally_reason_name((tally_reason_t)d->reason);
	const char *key = d->has_key ? base : NULL;
	const char *payload = base + d->key_len;
	int rc;

	if (d->reason == TALLY_REASON_MALFORMED) {
		tally_vote_t scratch;
		tally_decode_result_t res;

		/* Decoding is pure: doing it again gives the detail without keeping it per vote. */
		tally_decode_vote(NULL, payload, d->len, &scratch, &res);
		snprintf(detail, sizeof(detail), "%s: %s", tally_decode_err_name(res.cls), res.detail);
	} else {
		snprintf(detail, sizeof(detail), "%s", tally_reason_doc((tally_reason_t)d->reason));
	}
	snprintf(part, sizeof(part), "%" PRId32, d->partition);
	snprintf(off, sizeof(off), "%" PRId64, d->offset);
	{
		tally_kafka_header_t h[6] = {
		    {"reason", reason, strlen(reason)},
		    {"detail", detail, strlen(detail)},
		    {"source_topic", s->votes_topic, strlen(s->votes_topic)},
		    {"source_partition", part, strlen(part)},
		    {"source_offset", off, strlen(off)},
		    {"election_id", s->conf->election_id, strlen(s->conf->election_id)},
		};

		rc = tally_kafka_produce_headers(s->producer, s->dl_topic, key, d->key_len, payload,
		                                 d->len, h, 6);
	}
	/* Refused at once (e.g. larger than message.max.bytes with the headers added): said
	 * loudly, since the vote's only trace is then this line and the counter. */
	if (rc != 0 && tally_add_relaxed(&s->dead_letter_failed, 1) % 1000 == 1)
		tallyd_log("could not dead-letter the vote at \"%s\" [%" PRId32 "] offset %" PRId64
		           " (%s): %s (%" PRIu64 " so far)", s->votes_topic, d->partition, d->offset,
		           reason, tally_err2str(rc), tally_load_relaxed(&s->dead_letter_failed));
	else if (rc == 0)
		tally_add_relaxed(&s->dead_letters, 1);
}

/*
 * Write the package's dead letters and wait until Kafka has them (and everything produced
 * before); then fill pk's dead-letter offsets: where the next start reads back from.
 */
static int
dead_letters_write(server_t *s, package_t *pk, tally_pg_offset_t **dl_offsets, size_t *ndl)
{
	const dead_letters_t *dl = &pk->dl;
	int64_t *next = NULL;
	size_t n = 0;
	char err[512];
	int rc, nparts;

	for (size_t i = 0; i < dl->n; i++) {
		const dead_letter_t *d = &dl->v[i];

		if (tally_kafka_dead_letters_has(&s->dl_found, d->partition, d->offset)) {
			/* Written by a run that crashed before committing the cut past it. */
			tally_add_relaxed(&s->dead_letters_skipped, 1);
			tally_add_relaxed(&s->dead_letters, 1);
			continue;
		}
		dead_letter_write(s, d, dl->buf + d->at);
	}
	while ((rc = tally_kafka_producer_flush(s->producer, 1000, err, sizeof(err))) != 0) {
		if (rc != TALLY_ETIMEDOUT)
			tallyd_log("dead letters: %s", err);
		if (tally_load_relaxed(&s->ckpt_quit) == TALLYD_QUIT_ABANDON)
			return rc;
	}
	nparts = s->ndl_base;
	if ((next = calloc((size_t)nparts + 1, sizeof(*next))) == NULL ||
	    (*dl_offsets = calloc((size_t)nparts + 1, sizeof(**dl_offsets))) == NULL) {
		free(next);
		return TALLY_ENOMEM;
	}
	tally_kafka_producer_tracked(s->producer, next, nparts);
	for (int p = 0; p < nparts; p++) {
		int64_t at = next[p] > s->dl_base[p] ? next[p] : s->dl_base[p];

		if (at >= 0)
			(*dl_offsets)[n++] = (tally_pg_offset_t){p, at};
	}
	*ndl = n;
	free(next);
	return 0;
}

/* Write one package, retrying until it commits (or we are told to give up). */
static int
ckpt_write(server_t *s, package_t *pk)
{
	tally_pg_checkpoint_t c = {
	    .election_id = s->conf->election_id,
	    .topic = s->votes_topic,
	    .owner = s->owner,
	    .generation = pk->generation,
	    .version = pk->version,
	    .votes = pk->rows.v,
	    .nvotes = pk->rows.n,
	    .journal = pk->rows.n > s->conf->journal_above,
	    .state = pk->state,
	    .state_len = pk->state_len,
	    .offsets = pk->offsets,
	    .noffsets = pk->noffsets,
	};
	unsigned backoff = 100;
	bool uncertain = false;
	tally_pg_offset_t *dl_offsets = NULL;
	char err[512];
	int rc;

	uint64_t t0 = tally_mono_ns(), t1;

	/* Dead letters of the votes this checkpoint moves past must be in Kafka first. */
	if ((rc = dead_letters_write(s, pk, &dl_offsets, &c.ndl_offsets)) != 0) {
		free(dl_offsets);
		return rc;
	}
	t1 = tally_mono_ns();
	c.dl_topic = s->dl_topic;
	c.dl_offsets = dl_offsets;
	/* The elections row follows the state's status (opened or closed over HTTP). */
	c.status = pk->snap->election.status;
	c.set_status = c.status != s->status_stored;
	for (;;) {
		if (s->ckpt_conn == NULL || PQstatus(s->ckpt_conn) != CONNECTION_OK) {
			if (s->ckpt_conn != NULL)
				PQfinish(s->ckpt_conn);
			s->ckpt_conn = ckpt_connect(s, err, sizeof(err));
		}
		if (s->ckpt_conn != NULL) {
			rc = uncertain ? tally_pg_checkpoint_committed(s->ckpt_conn, &c, err, sizeof(err))
			               : 0;
			if (rc == 1)
				break;         /* the commit we lost sight of had gone through */
			if (rc == 0 && (rc = tally_pg_checkpoint_write(s->ckpt_conn, &c, err,
			                                               sizeof(err))) == 0)
				break;
			if (PQstatus(s->ckpt_conn) != CONNECTION_OK)
				uncertain = true;
		} else {
			rc = TALLY_EIO;
		}
		tally_add_relaxed(&s->checkpoint_failures, 1);
		if (!tally_load_relaxed(&s->pg_down)) {
			tally_store_relaxed(&s->pg_down_since, tally_mono_ns());
			tally_store_relaxed(&s->pg_down, 1);
			tallyd_log("checkpoint failed, retrying while counting goes on: %s", err);
		}
		if (rc != TALLY_EIO && rc != TALLY_EAGAIN) {
			tallyd_log("checkpoint refused: %s", err);
			free(dl_offsets);
			return rc;
		}
		if (tally_load_relaxed(&s->ckpt_quit) == TALLYD_QUIT_ABANDON) {
			free(dl_offsets);
			return rc;
		}
		tallyd_sleep_ms(backoff);
		backoff = backoff < 2000 ? backoff * 2 : 2000;
	}
	if (tally_load_relaxed(&s->pg_down)) {
		tally_store_relaxed(&s->pg_down_since, 0);
		tally_store_relaxed(&s->pg_down, 0);
		tallyd_log("postgres is back: checkpoint written");
	}
	s->status_stored = c.status;
	free(dl_offsets);
	if (tally_mono_ns() - t0 > SLOW_CHECKPOINT_NS)
		tallyd_log("slow checkpoint: %zu votes%s, %zu dead letters: %.3f s waiting for kafka "
		           "to take the dead letters and results, %.3f s writing to postgres",
		           pk->rows.n, c.journal ? " (journalled)" : "", pk->dl.n,
		           (double)(t1 - t0) / 1e9, (double)(tally_mono_ns() - t1) / 1e9);
	return 0;
}

/* Make pk's snapshot the published one (HTTP and the live view show it from now on). */
static void
commit_snapshot(server_t *s, package_t *pk)
{
	tally_snapshot_t *old;

	pthread_mutex_lock(&s->committed_lock);
	old = s->committed;
	s->committed = pk->snap;
	pthread_mutex_unlock(&s->committed_lock);
	pk->snap = NULL;
	tally_snapshot_destroy(old);
}

/*
 * The committed snapshot's changed figures to the results topics. Only this thread
 * publishes results while it runs (the ingest thread does before and after), and only it
 * replaces s->committed, so it reads it without the lock.
 */
static void
publish_results(server_t *s)
{
	size_t n;

	if (tally_results_publish(s->results, s->reg, s->committed, false, &n) != 0)
		tallyd_log("could not queue results");
}

int
tallyd_committed_copy(server_t *s, tally_snapshot_t *into)
{
	int rc = TALLY_EAGAIN;

	pthread_mutex_lock(&s->committed_lock);
	if (s->committed != NULL && (into->taken_at_us == 0 ||
	                             into->version != s->committed->version))
		rc = tally_snapshot_copy_into(into, s->committed);
	pthread_mutex_unlock(&s->committed_lock);
	return rc;
}

void *
tallyd_ckpt_main(void *arg)
{
	server_t *s = arg;
	uint64_t every = s->conf->results_interval_ms * 1000000ull, last_results = 0;
	bool unpublished = false;

	for (;;) {
		package_t *pk;
		uint64_t now;

		/* Results go out after each commit, at most every results.interval.ms: a commit
		 * that comes sooner is published when the interval is up. */
		if (unpublished) {
			struct timespec ts;
			uint64_t due = last_results + every;

			clock_gettime(CLOCK_REALTIME, &ts);
			now = tally_mono_ns();
			if (due > now) {
				uint64_t ns = (uint64_t)ts.tv_nsec + (due - now);

				ts.tv_sec += (time_t)(ns / 1000000000ull);
				ts.tv_nsec = (long)(ns % 1000000000ull);
				if (sem_timedwait(&s->ckpt_go, &ts) != 0 && errno != ETIMEDOUT)
					continue;
			}
			if (tally_mono_ns() >= due) {
				publish_results(s);
				last_results = tally_mono_ns();
				unpublished = false;
			}
		} else {
			sem_wait(&s->ckpt_go);
		}
		if ((pk = tally_load_acquire(&s->job)) == NULL) {
			if (tally_load_relaxed(&s->ckpt_quit))
				break;
			continue;
		}
		if (ckpt_write(s, pk) == 0) {
			now = tally_mono_ns();
			tally_add_relaxed(&s->checkpoints, 1);
			tally_add_relaxed(&s->checkpointed_votes, pk->rows.n);
			if (pk->rows.n > s->conf->journal_above)
				tally_add_relaxed(&s->journal_votes, (int64_t)pk->rows.n);
			tally_store_relaxed(&s->last_checkpoint_ns, now);
			tally_store_relaxed(&s->last_checkpoint_ms, (now - pk->cut_ns) / 1000000);
			commit_snapshot(s, pk);
			if (now >= last_results + every) {
				publish_results(s);
				last_results = now;
				unpublished = false;
			} else {
				unpublished = true;
			}
		} else if (tally_load_relaxed(&s->ckpt_quit) != TALLYD_QUIT_ABANDON) {
			/* Refused, not unreachable: a fault to stop on, not to retry. */
			tallyd_log("stopping: a checkpoint cannot be written; nothing is lost, the "
			           "votes since the last checkpoint are read again on restart");
			tallyd_request_stop();
		}
		package_free(pk);
		tally_store_release(&s->job, NULL);
	}
	if (unpublished)
		publish_results(s);
	return NULL;
}

bool
tallyd_ckpt_idle(server_t *s)
{
	return tally_load_acquire(&s->job) == NULL;
}

/*
 * Cut a checkpoint: pause, harvest, export, snapshot, resume; hand it to the checkpointer.
 * Nothing here waits on Kafka or PostgreSQL: the dead letters harvested go with the cut.
 * A cut that would change nothing (same snapshot version, assignment and no votes) is
 * dropped.
 */
int
tallyd_cut(server_t *s)
{
	package_t *pk = calloc(1, sizeof(*pk));
	size_t n = 0;
	int rc;

	if (pk == NULL || (pk->snap = calloc(1, sizeof(*pk->snap))) == NULL ||
	    (pk->offsets = calloc((size_t)s->nparts + 1, sizeof(*pk->offsets))) == NULL) {
		package_free(pk);
		return TALLY_ENOMEM;
	}
	tally_core_pause(s->core);
	tallyd_harvest(s);
	for (int i = 0; i < s->nparts; i++)
		if (s->parts[i].next_offset >= 0)
			pk->offsets[n++] = (tally_pg_offset_t){i, s->parts[i].next_offset};
	pk->noffsets = n;
	rc = tally_snapshot_take_into(s->core, pk->snap);
	if (rc == 0 && (pk->snap->version != s->cut_version || s->generation != s->cut_generation ||
	                s->pending.n > 0 || s->pending_dl.n > 0))
		rc = tally_state_export(s->core, 0, pk->offsets, n * sizeof(*pk->offsets),
		                        &pk->state, &pk->state_len);
	tally_core_resume(s->core);
	if (rc != 0 || pk->state == NULL) {
		package_free(pk);
		return rc;
	}
	pk->version = pk->snap->version;
	pk->rows = s->pending;
	pk->dl = s->pending_dl;
	pk->generation = s->generation;
	pk->cut_ns = tally_mono_ns();
	s->pending = (rows_t){0};
	s->pending_dl = (dead_letters_t){0};
	s->cut_version = pk->version;
	s->cut_generation = pk->generation;
	tally_store_release(&s->job, pk);
	sem_post(&s->ckpt_go);
	return 0;
}

/*
 * Wait until the checkpointer is idle. A checkpoint of millions of votes takes minutes at
 * PostgreSQL's pace, which is fine while it works: give up only once PostgreSQL has been
 * unreachable for unreachable_ms.
 */
static bool
ckpt_wait(server_t *s, unsigned unreachable_ms)
{
	while (!tallyd_ckpt_idle(s)) {
		uint64_t since = tally_load_relaxed(&s->pg_down_since);

		if (since != 0 && tally_mono_ns() - since > (uint64_t)unreachable_ms * 1000000ull)
			return false;
		tallyd_sleep_ms(5);
	}
	return true;
}

/* Cut a checkpoint and wait until it is written (see ckpt_wait()). */
bool
tallyd_checkpoint_now(server_t *s, unsigned unreachable_ms)
{
	if (!ckpt_wait(s, unreachable_ms) || tallyd_cut(s) != 0)
		return false;
	return ckpt_wait(s, unreachable_ms);
}


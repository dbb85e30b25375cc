/*
 * tallyd's checkpoints (server_int.h): the cut (core paused, every finished batch
 * harvested, state, offsets and a results snapshot taken) on the ingest thread, and the
 * app's part of writing it, in the hooks the store (include/tally/store.h) calls on its
 * writer thread (tally:ckpt).
 *
 * DESIGN: one cut at a time is in the store's hands. For it,
 * 1. the prepare hook writes the cut's dead letters to Kafka (those a crashed run already
 *    wrote, found on start, are skipped), waits until Kafka has them all and gives the
 *    store the dead-letter topic's offsets to keep with the cut;
 * 2. the store writes the cut's votes, state, source offsets and those offsets in one
 *    PostgreSQL transaction, retrying while PostgreSQL is away;
 * 3. only then the committed hook publishes the cut's snapshot: it becomes s->committed
 *    (what HTTP and the live view show) and its changed figures go to the results topics.
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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tally/atomic.h>
#include <tally/core.h>
#include <tally/decode.h>
#include <tally/error.h>
#include <tally/kafka.h>
#include <tally/snapshot.h>
#include <tally/state.h>
#include <tally/store.h>
#include <tally/time.h>

#include "server_int.h"

/* ---- the app's part of a cut ---------------------------------------------------------- */

static void
package_free(package_t *pk)
{
	if (pk == NULL)
		return;
	tallyd_dead_letters_free(&pk->dl);
	tally_snapshot_destroy(pk->snap);
	free(pk);
}

/* Write one rejected vote to the dead-letter topic (the store's writer thread: prepare hook). */
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
 * Where a start that restores cut will read dead letters back from, per dead-letter
 * partition: below every dead letter in the topic for a vote the cut does not cover. Those
 * are this run's later ones (after the delivered end, next[]) and those a crashed run
 * wrote that this run found on start (s->dl_found) and has not yet passed: while one of
 * them lies beyond the cut, its place bounds the offset, so the next start finds it again.
 */
static void
dead_letters_floor(server_t *s, const tally_store_cut_t *cut, int64_t *at, int nparts)
{
	const tally_kafka_dead_letters_t *found = &s->dl_found;

	for (size_t i = 0; i < found->npos; i++) {
		const tally_kafka_source_pos_t *f = &found->pos[i];
		bool covered = false;

		if (f->dl_partition < 0 || f->dl_partition >= nparts)
			continue;
		for (size_t k = 0; k < cut->noffsets; k++)
			if (cut->offsets[k].partition == f->partition)
				covered = f->offset < cut->offsets[k].next_offset;
		if (!covered && f->dl_offset < at[f->dl_partition])
			at[f->dl_partition] = f->dl_offset;
	}
}

/*
 * Write the package's dead letters and wait until Kafka has them (and everything produced
 * before); then fill the cut's dead-letter offsets: where the next start reads back from.
 */
static int
dead_letters_write(server_t *s, const tally_store_cut_t *cut, package_t *pk,
                   tally_pg_offset_t **dl_offsets, size_t *ndl)
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
		if (tally_store_abandoning(s->store))
			return rc;
	}
	nparts = s->ndl_base;
	if ((next = calloc((size_t)nparts + 1, sizeof(*next))) == NULL ||
	    (*dl_offsets = calloc((size_t)nparts + 1, sizeof(**dl_offsets))) == NULL) {
		free(next);
		return TALLY_ENOMEM;
	}
	tally_kafka_producer_tracked(s->producer, next, nparts);
	for (int p = 0; p < nparts; p++)
		if (next[p] < s->dl_base[p])
			next[p] = s->dl_base[p];
	dead_letters_floor(s, cut, next, nparts);
	for (int p = 0; p < nparts; p++)
		if (next[p] >= 0)
			(*dl_offsets)[n++] = (tally_pg_offset_t){p, next[p]};
	*ndl = n;
	free(next);
	return 0;
}

/* The prepare hook (the store's writer thread): every vote forwarded so far delivered
 * (--cluster), then the cut's dead letters. */
static int
on_prepare(void *arg, tally_store_cut_t *cut, tally_pg_offset_t **extra, size_t *nextra)
{
	int rc = tallyd_forward_flush(arg);

	return rc != 0 ? rc : dead_letters_write(arg, cut, cut->app, extra, nextra);
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

/*
 * The committed hook (the writer thread): the cut's snapshot becomes the published one,
 * and its results go out at most every results.interval.ms: a commit that comes sooner is
 * published when the interval is up (the timer hook).
 */
static uint64_t
on_committed(void *arg, tally_store_cut_t *cut)
{
	server_t *s = arg;
	uint64_t now = tally_mono_ns(), every = s->conf->results_interval_ms * 1000000ull;

	if (s->cluster) {
		/* What this run committed per partition: the watcher publishes it (cluster.c). */
		for (size_t i = 0; i < cut->nparts; i++) {
			int32_t p = cut->parts[i].partition;

			if (p >= 0 && p < s->nvotes_parts &&
			    cut->parts[i].version > tally_load_relaxed(&s->part_committed[p]))
				tally_store_relaxed(&s->part_committed[p], cut->parts[i].version);
		}
		return 0;
	}
	commit_snapshot(s, cut->app);
	if (now >= s->last_results + every) {
		publish_results(s);
		s->last_results = now;
		return 0;
	}
	return s->last_results + every;
}

static uint64_t
on_timer(void *arg)
{
	server_t *s = arg;

	publish_results(s);
	s->last_results = tally_mono_ns();
	return 0;
}

static void
on_refused(void *arg, int rc)
{
	server_t *s = arg;

	if (s->cluster && rc == TALLY_EFENCED) {
		/* Another instance claimed a partition this one counted: a zombie commits and
		 * publishes nothing more. */
		tally_store_release(&s->fenced, 1);
		tallyd_log("fenced: another instance owns a partition this one was counting; "
		           "stopping at once, without a final checkpoint, publishing nothing more "
		           "(exit status 3)");
		tallyd_request_stop();
		return;
	}
	tallyd_log("stopping: a checkpoint cannot be written; nothing is lost, the votes since "
	           "the last checkpoint are read again on restart");
	tallyd_request_stop();
}

static void
on_release(void *arg, void *app)
{
	(void)arg;
	package_free(app);
}

void
tallyd_store_hooks(server_t *s, tally_store_hooks_t *h)
{
	*h = (tally_store_hooks_t){.prepare = on_prepare, .committed = on_committed,
	                           .timer = on_timer, .refused = on_refused,
	                           .release = on_release, .arg = s};
}

bool
tallyd_ckpt_idle(server_t *s)
{
	return tally_store_idle(s->store);
}

static int cut_hand_over(server_t *s, package_t *pk, tally_store_cut_t *cutp);

/*
 * --cluster: one part per assigned partition {partition, epoch, version, state} and only
 * their offsets, taken in one pause; no state of the whole (the store writes none). No
 * partition assigned: no cut (a cut without parts would be a single instance's).
 */
static int
cut_parts(server_t *s, package_t *pk, tally_store_cut_t *cut)
{
	size_t n = 0, np = 0;
	int rc = 0;
	bool force = s->force_cut;

	s->force_cut = false;
	for (int i = 0; i < s->nparts; i++)
		np += s->parts[i].assigned;
	if (np == 0) {
		if (s->pending.n > 0 || s->pending_dl.n > 0)
			tallyd_log("%zu votes held with no partition assigned (not stored)",
			           s->pending.n + s->pending_dl.n);
		free(cut->offsets);
		package_free(pk);
		return 0;
	}
	if ((cut->parts = calloc(np, sizeof(*cut->parts))) == NULL) {
		free(cut->offsets);
		package_free(pk);
		return TALLY_ENOMEM;
	}
	tally_core_pause(s->core);
	tallyd_harvest(s);
	rc = tally_snapshot_take_into(s->core, pk->snap);
	if (rc == 0 && !force && pk->snap->version == s->cut_version &&
	    s->generation == s->cut_generation && s->pending.n == 0 && s->pending_dl.n == 0 &&
	    s->passed == s->cut_passed)
		rc = -1;   /* nothing changed */
	for (int i = 0; rc == 0 && i < s->nparts; i++) {
		part_t *p = &s->parts[i];
		tally_pg_part_t *pt;

		if (!p->assigned)
			continue;
		pt = &cut->parts[cut->nparts++];
		pt->partition = i;
		pt->epoch = p->epoch;
		pt->version = tally_state_part_read(s->core, (unsigned)i);
		rc = tally_state_export_part(s->core, (unsigned)i, &pt->state, &pt->state_len);
		if (rc == 0 && s->fparts != NULL && i < s->nvotes_parts &&
		    (pt->forward = tallyd_forward_pack(&s->fparts[i], s->nvotes_parts,
		                                       &pt->forward_len)) == NULL)
			rc = TALLY_ENOMEM;
		if (p->next_offset >= 0)
			cut->offsets[n++] = (tally_pg_offset_t){i, p->next_offset};
	}
	cut->noffsets = n;
	tally_core_resume(s->core);
	if (rc != 0) {
		for (size_t i = 0; i < cut->nparts; i++) {
			free(cut->parts[i].state);
			free(cut->parts[i].forward);
		}
		free(cut->parts);
		free(cut->offsets);
		package_free(pk);
		return rc < 0 ? 0 : rc;
	}
	s->cut_passed = s->passed;
	return cut_hand_over(s, pk, cut);
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
	tally_store_cut_t cut = {0};
	size_t n = 0;
	int rc;

	if (pk == NULL || (pk->snap = calloc(1, sizeof(*pk->snap))) == NULL ||
	    (cut.offsets = calloc((size_t)s->nparts + 1, sizeof(*cut.offsets))) == NULL) {
		package_free(pk);
		return TALLY_ENOMEM;
	}
	if (s->cluster)
		return cut_parts(s, pk, &cut);
	tally_core_pause(s->core);
	tallyd_harvest(s);
	for (int i = 0; i < s->nparts; i++)
		if (s->parts[i].next_offset >= 0)
			cut.offsets[n++] = (tally_pg_offset_t){i, s->parts[i].next_offset};
	cut.noffsets = n;
	rc = tally_snapshot_take_into(s->core, pk->snap);
	if (rc == 0 && (pk->snap->version != s->cut_version || s->generation != s->cut_generation ||
	                s->pending.n > 0 || s->pending_dl.n > 0))
		rc = tally_state_export(s->core, 0, NULL, 0, &cut.state, &cut.state_len);
	tally_core_resume(s->core);
	if (rc != 0 || cut.state == NULL) {
		free(cut.offsets);
		free(cut.state);
		package_free(pk);
		return rc;
	}
	return cut_hand_over(s, pk, &cut);
}

/* The cut (cut.offsets allocated for s->nparts + 1) with its package, to the store. */
static int
cut_hand_over(server_t *s, package_t *pk, tally_store_cut_t *cutp)
{
	tally_store_cut_t cut = *cutp;
	int rc;

	cut.version = pk->snap->version;
	cut.status = pk->snap->election.status;
	cut.votes = s->pending.v;
	cut.nvotes = s->pending.n;
	cut.generation = s->generation;
	cut.cut_ns = tally_mono_ns();
	cut.app = pk;
	pk->dl = s->pending_dl;
	if ((rc = tally_store_commit(s->store, &cut)) != 0) {
		/* Not idle (the caller checks first) or out of memory: nothing handed over. */
		pk->dl = (dead_letters_t){0};
		free(cut.offsets);
		free(cut.state);
		for (size_t i = 0; i < cut.nparts; i++) {
			free(cut.parts[i].state);
			free(cut.parts[i].forward);
		}
		free(cut.parts);
		package_free(pk);
		return rc;
	}
	s->pending = (rows_t){0};
	s->pending_dl = (dead_letters_t){0};
	s->cut_version = cut.version;
	s->cut_generation = cut.generation;
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
		tally_store_stats_t fig;
		uint64_t since;

		if (s->cluster && tallyd_fenced(s))
			return false;

		tally_store_stats(s->store, &fig);
		since = fig.postgres_down_since;

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
	/* Fenced: the cut was refused (the writer is idle again, nothing stored). */
	return ckpt_wait(s, unreachable_ms) && !(s->cluster && tallyd_fenced(s));
}


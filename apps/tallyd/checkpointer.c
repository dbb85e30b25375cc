/*
 * tallyd's checkpoints (server_int.h): the cut (core paused, every finished batch
 * harvested, state and offsets exported) on the ingest thread, and the checkpointer thread
 * that flushes the cut's dead letters and writes its votes, state and offsets to PostgreSQL
 * in one transaction, retrying while PostgreSQL is away.
 */
#include <errno.h>
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

/* ---- the checkpointer --------------------------------------------------------------- */

static void
package_free(package_t *pk)
{
	if (pk == NULL)
		return;
	free(pk->rows.v);
	free(pk->state);
	free(pk->offsets);
	free(pk);
}

static PGconn *
ckpt_connect(server_t *s, char *err, size_t errsz)
{
	return tally_pg_connect(s->dsn, s->pg_params, s->npg_params, 2000, err, errsz);
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
	char err[512];
	int rc;

	/* Dead letters of the votes this checkpoint moves past must be in Kafka first. */
	while ((rc = tally_kafka_producer_flush(s->producer, 1000, err, sizeof(err))) != 0) {
		if (rc != TALLY_ETIMEDOUT)
			tallyd_log("dead letters: %s", err);
		if (tally_load_relaxed(&s->ckpt_quit) == 2)
			return rc;
	}
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
			return rc;
		}
		if (tally_load_relaxed(&s->ckpt_quit) == 2)
			return rc;
		tallyd_sleep_ms(backoff);
		backoff = backoff < 2000 ? backoff * 2 : 2000;
	}
	if (tally_load_relaxed(&s->pg_down)) {
		tally_store_relaxed(&s->pg_down_since, 0);
		tally_store_relaxed(&s->pg_down, 0);
		tallyd_log("postgres is back: checkpoint written");
	}
	return 0;
}

void *
tallyd_ckpt_main(void *arg)
{
	server_t *s = arg;

	for (;;) {
		package_t *pk;

		sem_wait(&s->ckpt_go);
		if ((pk = tally_load_acquire(&s->job)) == NULL) {
			if (tally_load_relaxed(&s->ckpt_quit))
				break;
			continue;
		}
		if (ckpt_write(s, pk) == 0) {
			uint64_t now = tally_mono_ns();

			tally_add_relaxed(&s->checkpoints, 1);
			tally_add_relaxed(&s->checkpointed_votes, pk->rows.n);
			if (pk->rows.n > s->conf->journal_above)
				tally_add_relaxed(&s->journal_votes, (int64_t)pk->rows.n);
			tally_store_relaxed(&s->last_checkpoint_ns, now);
			tally_store_relaxed(&s->last_checkpoint_ms, (now - pk->cut_ns) / 1000000);
		} else if (tally_load_relaxed(&s->ckpt_quit) != 2) {
			/* Refused, not unreachable: a fault to stop on, not to retry. */
			tallyd_log("stopping: a checkpoint cannot be written; nothing is lost, the "
			           "votes since the last checkpoint are read again on restart");
			tallyd_request_stop();
		}
		package_free(pk);
		tally_store_release(&s->job, NULL);
	}
	return NULL;
}

bool
tallyd_ckpt_idle(server_t *s)
{
	return tally_load_acquire(&s->job) == NULL;
}

/* Cut a checkpoint: pause, harvest, export, resume; hand it to the checkpointer. */
int
tallyd_cut(server_t *s)
{
	package_t *pk = calloc(1, sizeof(*pk));
	size_t n = 0;
	int rc;

	if (pk == NULL)
		return TALLY_ENOMEM;
	tally_core_pause(s->core);
	tallyd_harvest(s);
	if ((pk->offsets = calloc((size_t)s->nparts + 1, sizeof(*pk->offsets))) == NULL) {
		tally_core_resume(s->core);
		free(pk);
		return TALLY_ENOMEM;
	}
	for (int i = 0; i < s->nparts; i++)
		if (s->parts[i].next_offset >= 0)
			pk->offsets[n++] = (tally_pg_offset_t){i, s->parts[i].next_offset};
	pk->noffsets = n;
	rc = tally_state_export(s->core, 0, pk->offsets, n * sizeof(*pk->offsets), &pk->state,
	                        &pk->state_len);
	if (rc == 0)
		rc = tally_snapshot_take_into(s->core, s->snap);
	tally_core_resume(s->core);
	if (rc != 0) {
		package_free(pk);
		return rc;
	}
	pk->version = s->snap->version;
	pk->rows = s->pending;
	pk->generation = s->generation;
	pk->cut_ns = tally_mono_ns();
	s->pending = (rows_t){0};
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


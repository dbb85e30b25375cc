/*
 * tallyd's mover (server_int.h): the votes a checkpoint stored in the vote journal
 * (include/tally/pg_journal.h) are moved into the votes table, one piece per transaction,
 * on a connection of its own. Counting comes first: the mover works only while the ingest
 * thread has caught up with votes_topic, so a backlog is counted at full speed and the
 * votes table fills in behind it. Every vote is in exactly one of the two at every commit.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <tally/atomic.h>
#include <tally/error.h>
#include <tally/pg_journal.h>
#include <tally/time.h>

#include "server_int.h"

#define MOVER_IDLE_MS 50

static bool
quitting(server_t *s)
{
	return tally_load_relaxed(&s->mover_quit) != TALLYD_QUIT_NO;
}

void *
tallyd_mover_main(void *arg)
{
	server_t *s = arg;
	PGconn *conn = NULL;
	unsigned backoff = 100;
	uint64_t started = 0, moved = 0;
	char err[512], last_err[512] = "";

	while (!quitting(s)) {
		size_t n = 0;
		int rc;

		if (tally_load_relaxed(&s->journal_votes) <= 0 ||
		    !tally_load_relaxed(&s->caught_up)) {
			tallyd_sleep_ms(MOVER_IDLE_MS);
			continue;
		}
		if (conn == NULL || PQstatus(conn) != CONNECTION_OK) {
			if (conn != NULL)
				PQfinish(conn);
			if ((conn = tallyd_pg_open(s, 2000, err, sizeof(err))) == NULL) {
				tallyd_sleep_ms(backoff);
				backoff = backoff < 2000 ? backoff * 2 : 2000;
				continue;
			}
		}
		if (started == 0) {
			started = tally_mono_ns();
			moved = 0;
		}
		if ((rc = tally_pg_journal_move_one(conn, &n, err, sizeof(err))) != 0) {
			/* Rolled back: the piece stays in the journal and is tried again; a piece
			 * PostgreSQL refuses (e.g. a voter deleted since the vote was counted) holds
			 * the journal up until someone looks, which the log says once. */
			if (rc != TALLY_EIO && strcmp(err, last_err) != 0) {
				tallyd_log("moving journalled votes: %s; the piece stays in the journal and "
				           "is retried", err);
				snprintf(last_err, sizeof(last_err), "%s", err);
			}
			tallyd_sleep_ms(backoff);
			backoff = backoff < 2000 ? backoff * 2 : 2000;
			continue;
		}
		backoff = 100;
		last_err[0] = '\0';
		if (n == 0) {
			/* Every piece left is locked, e.g. by the backend of a killed tallyd that
			 * PostgreSQL has not noticed yet: its move will roll back. */
			tallyd_sleep_ms(1000);
			continue;
		}
		moved += n;
		tally_add_relaxed(&s->moved_votes, n);
		if (tally_add_relaxed(&s->journal_votes, -(int64_t)n) <= 0) {
			tallyd_log("journal moved into votes: %" PRIu64 " votes in %.3f s", moved,
			           (double)(tally_mono_ns() - started) / 1e9);
			started = 0;
		}
	}
	if (conn != NULL)
		PQfinish(conn);
	return NULL;
}

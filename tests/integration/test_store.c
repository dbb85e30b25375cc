/*
 * The durable store (include/tally/store.h, adapters/postgres/store.c) in a real
 * PostgreSQL: restore, a cut handed over without waiting and written with the prepare
 * hook's extra offsets and the election's status, the committed hook after the commit,
 * the mover emptying the journal once caught up, the registry image written after a full
 * load and read by the next restore, and registrations stored with their offsets.
 */
#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include <tally/error.h>
#include <tally/pg.h>
#include <tally/pg_checkpoint.h>
#include <tally/store.h>
#include <tally/time.h>

#include "pgtest.h"
#include "services.h"

#define NVOTERS 1000
#define NVOTES 100

static tally_uuid_t
voter(uint64_t i)
{
	return (tally_uuid_t){0x0d6e3c5b2a1f4b9eULL ^ (i << 16), 0x8c7d000000000000ULL | i};
}

static const tally_uuid_t cand = {0x3f0b2c1e8d5a4f3bULL, 0x9c2d1a2b3c4d5e6fULL};

typedef struct hooks_seen {
	PGconn *pg;                  /* the test's own connection */
	int prepared, committed, released;
	int refused, refused_rc;     /* refused cuts, and the last one's error */
	sem_t *hold;                 /* set: the prepare hook waits for it (Kafka away) */
	long checkpoints_at_commit;  /* checkpoints stored when the committed hook ran */
	char log[8192];
	pthread_mutex_t lock;
} hooks_seen_t;

static void
on_log(void *arg, const char *line)
{
	hooks_seen_t *h = arg;

	pthread_mutex_lock(&h->lock);
	strncat(h->log, line, sizeof(h->log) - strlen(h->log) - 2);
	strcat(h->log, "\n");
	pthread_mutex_unlock(&h->lock);
}

static int
on_prepare(void *arg, tally_store_cut_t *cut, tally_pg_offset_t **extra, size_t *nextra)
{
	hooks_seen_t *h = arg;

	cr_assert_eq(cut->app, h);
	if (h->hold != NULL)
		while (sem_wait(h->hold) != 0)
			;
	h->prepared++;
	*extra = calloc(2, sizeof(**extra));
	(*extra)[0] = (tally_pg_offset_t){0, 7};
	(*extra)[1] = (tally_pg_offset_t){1, 9};
	*nextra = 2;
	return 0;
}

static uint64_t
on_committed(void *arg, tally_store_cut_t *cut)
{
	hooks_seen_t *h = arg;

	(void)cut;
	h->committed++;
	h->checkpoints_at_commit = pgtest_count(h->pg, "SELECT count(*) FROM checkpoints");
	return 0;
}

static void
on_release(void *arg, void *app)
{
	hooks_seen_t *h = arg;

	cr_assert_eq(app, h);
	h->released++;
}

static void
on_refused(void *arg, int rc)
{
	hooks_seen_t *h = arg;

	h->refused++;
	h->refused_rc = rc;
}

/* Whether a store's log so far holds needle (its threads may be logging meanwhile). */
static bool
log_has(hooks_seen_t *h, const char *needle)
{
	bool has;

	pthread_mutex_lock(&h->lock);
	has = strstr(h->log, needle) != NULL;
	pthread_mutex_unlock(&h->lock);
	return has;
}

/* A store of election ge-2026 writing as owner (the string must outlive it). */
static tally_store_t *
store_new_as(hooks_seen_t *h, const tally_pg_param_t *param, const char *owner)
{
	tally_store_opts_t o = {.dsn = tally_test_service("TALLY_PG_DSN"), .params = param, .nparams = 1,
	                        .election_id = "ge-2026", .topic = "votes_topic",
	                        .extra_topic = "votes_rejected", .owner = owner,
	                        .journal_above = 10, .image_delay_ms = 0, .log = on_log,
	                        .log_arg = h};
	char err[512];
	tally_store_t *st = tally_store_new(&o, err, sizeof(err));

	cr_assert_not_null(st, "%s", err);
	return st;
}

static tally_store_t *
store_new(hooks_seen_t *h, const tally_pg_param_t *param)
{
	return store_new_as(h, param, "test");
}

static bool
wait_for(PGconn *c, const char *sql, long want)
{
	for (int i = 0; i < 600; i++) {
		if (pgtest_count(c, sql) == want)
			return true;
		usleep(50000);
	}
	return false;
}

/* A private schema with a party, a candidate, the election and NVOTERS voters. */
static void
setup_db(hooks_seen_t *h, tally_pg_param_t *param)
{
	pthread_mutex_init(&h->lock, NULL);
	pgtest_schema_create();
	param->value = pgtest_options();
	h->pg = pgtest_connect_migrated();
	pgtest_exec_ok(h->pg, "INSERT INTO parties (party_affiliation) VALUES ('Savior Party')");
	pgtest_exec_ok(h->pg, "INSERT INTO candidates (candidate_id, candidate_name, party_affiliation)"
	                      " VALUES ('3f0b2c1e-8d5a-4f3b-9c2d-1a2b3c4d5e6f', 'Ada', 'Savior Party')");
	pgtest_exec_ok(h->pg, "INSERT INTO elections (election_id, opens_at, closes_at) VALUES"
	                      " ('ge-2026', '2026-05-07 07:00:00+00', '2026-05-07 22:00:00+00')");
	pgtest_exec_ok(h->pg, "INSERT INTO voters (voter_id, date_of_birth, address_state)"
	                      " SELECT (lpad(to_hex(x'0d6e3c5b2a1f4b9e'::bigint # (i << 16)), 16, '0')"
	                      " || lpad(to_hex(x'8c7d000000000000'::bigint | i), 16, '0'))::uuid,"
	                      " '1980-01-01', CASE WHEN i % 3 = 0 THEN 'Kent' ELSE 'Essex' END"
	                      " FROM generate_series(0::bigint, 999) AS i");
}

/* A cut of the first n voters' votes, for the candidate, read up to offset n. */
static void
cut_fill(tally_store_cut_t *cut, size_t n, uint64_t version, void *app)
{
	memset(cut, 0, sizeof(*cut));
	cut->votes = calloc(n, sizeof(*cut->votes));
	for (size_t i = 0; i < n; i++)
		cut->votes[i] = (tally_pg_vote_row_t){.voter_id = voter(i), .candidate_id = cand,
		                                      .voting_time = 1778140800, .offset = (int64_t)i};
	cut->nvotes = n;
	cut->state = strdup("state 1");
	cut->state_len = 7;
	cut->offsets = calloc(1, sizeof(*cut->offsets));
	cut->offsets[0] = (tally_pg_offset_t){0, (int64_t)n};
	cut->noffsets = 1;
	cut->version = version;
	cut->generation = 1;
	cut->status = TALLY_ELECTION_OPEN;
	cut->cut_ns = tally_mono_ns();
	cut->app = app;
}

Test(store, restore_commit_move_image_register, .timeout = 240)
{
	tally_pg_param_t param = {"options", NULL};
	hooks_seen_t h = {0};
	tally_store_hooks_t hooks = {.prepare = on_prepare, .committed = on_committed,
	                             .release = on_release, .arg = &h};
	tally_store_restored_t rs;
	tally_registry_opts_t ro = {0};
	tally_store_stats_t fig;
	tally_store_cut_t cut = {0};
	tally_store_t *st;
	int64_t offsets[4];
	char err[512];

	setup_db(&h, &param);

	/* A first restore: every voters row (no image yet), no checkpoint, no vote. */
	st = store_new(&h, &param);
	cr_assert_eq(tally_store_restore(st, &ro, &rs, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(rs.voters, NVOTERS);
	cr_assert_eq(rs.candidates, 1);
	cr_assert_null(rs.state);
	cr_assert_eq(rs.nvoted, 0);
	cr_assert_eq(rs.election.status, TALLY_ELECTION_SCHEDULED);
	cr_assert_not_null(strstr(rs.how, "every voters row"), "%s", rs.how);
	cr_assert_eq(tally_store_offsets(st, "votes_topic", offsets, 4, err, sizeof(err)), 0);
	cr_assert_eq(offsets[0], -1);
	cr_assert_eq(tally_store_start(st, &hooks, rs.reg, err, sizeof(err)), 0, "%s", err);

	/* One cut of NVOTES votes, journalled (above 10), handed over without waiting. */
	cut_fill(&cut, NVOTES, 1, &h);
	cr_assert_eq(tally_store_commit(st, &cut), 0);
	for (int i = 0; i < 600 && !tally_store_idle(st); i++)
		usleep(10000);
	cr_assert(tally_store_idle(st));
	cr_assert_eq(h.prepared, 1);
	cr_assert_eq(h.committed, 1);
	cr_assert_eq(h.released, 1);
	cr_assert_eq(h.checkpoints_at_commit, 1, "the committed hook runs after the commit");
	tally_store_stats(st, &fig);
	cr_assert_eq(fig.checkpoints, 1);
	cr_assert_eq(fig.checkpointed_votes, NVOTES);
	cr_assert(fig.postgres_up);
	cr_assert_eq(fig.journal_votes, NVOTES);
	cr_assert_eq(pgtest_count(h.pg, "SELECT count(*) FROM elections WHERE status = 'open'"), 1);
	cr_assert_eq(pgtest_count(h.pg, "SELECT sum(next_offset) FROM checkpoint_offsets"
	                                " WHERE topic = 'votes_rejected'"), 16);
	cr_assert_eq(pgtest_count(h.pg, "SELECT coalesce(sum(votes), 0) FROM vote_journal"), NVOTES);

	/* Caught up: the mover empties the journal, the image writer writes the image. */
	tally_store_set_caught_up(st, true);
	cr_assert(wait_for(h.pg, "SELECT count(*) FROM votes", NVOTES));
	cr_assert(wait_for(h.pg, "SELECT count(*) FROM vote_journal", 0));
	cr_assert(wait_for(h.pg, "SELECT count(*) FROM registry_image_complete", 1), "%s", h.log);
	for (int i = 0; i < 200; i++) {
		tally_store_stats(st, &fig);
		if (fig.journal_votes == 0)
			break;
		usleep(10000);
	}
	cr_assert_eq(fig.journal_votes, 0);
	cr_assert_eq(fig.moved_votes, NVOTES);
	tally_store_stop_background(st);
	tally_store_stop(st);
	tally_store_destroy(st);
	tally_registry_destroy(rs.reg);
	cr_assert_not_null(strstr(h.log, "registry image 1 written: 1000 voters"), "%s", h.log);

	/* The next restore: the image, the state, the voted set and the offsets. */
	st = store_new(&h, &param);
	cr_assert_eq(tally_store_restore(st, &ro, &rs, err, sizeof(err)), 0, "%s", err);
	cr_assert_not_null(strstr(rs.how, "registry image 1"), "%s", rs.how);
	cr_assert_eq(rs.voters, NVOTERS);
	cr_assert_eq(rs.state_len, 7);
	cr_assert_eq(memcmp(rs.state, "state 1", 7), 0);
	cr_assert_eq(rs.version, 1);
	cr_assert_eq(rs.nvoted, NVOTES);
	cr_assert_eq(rs.election.status, TALLY_ELECTION_OPEN);
	cr_assert_eq(tally_store_offsets(st, "votes_topic", offsets, 4, err, sizeof(err)), 1);
	cr_assert_eq(offsets[0], NVOTES);
	cr_assert_eq(tally_store_offsets(st, "votes_rejected", offsets, 4, err, sizeof(err)), 2);
	cr_assert_eq(offsets[1], 9);

	/* A registration and its topic's offsets, in one transaction. */
	{
		tally_store_registration_t regs[2] = {
		    {.voter = true, .json = "{\"voter_id\": \"00000000-0000-4000-8000-00000000abcd\","
		                            " \"date_of_birth\": \"1990-01-01\","
		                            " \"address\": {\"state\": \"Kent\"}}"},
		    {.voter = false, .party = "Other Party",
		     .json = "{\"candidate_id\": \"00000000-0000-4000-8000-00000000beef\","
		             " \"candidate_name\": \"Grace\", \"party_affiliation\": \"Other Party\"}"},
		};
		int64_t next[2] = {5, -1};
		tally_store_topic_offsets_t t = {"voters_topic", next, 2};

		cr_assert_eq(tally_store_registrations_write(st, regs, 2, &t, 1, NULL, NULL, err,
		                                             sizeof(err)), 0, "%s", err);
		cr_assert_eq(pgtest_count(h.pg, "SELECT count(*) FROM voters"), NVOTERS + 1);
		cr_assert_eq(pgtest_count(h.pg, "SELECT count(*) FROM candidates"), 2);
		cr_assert_eq(pgtest_count(h.pg, "SELECT count(*) FROM parties"), 2);
		cr_assert_eq(tally_store_offsets(st, "voters_topic", offsets, 4, err, sizeof(err)), 1);
		cr_assert_eq(offsets[0], 5);
		/* Stored again: nothing changes. */
		cr_assert_eq(tally_store_registrations_write(st, regs, 2, &t, 1, NULL, NULL, err,
		                                             sizeof(err)), 0, "%s", err);
		cr_assert_eq(pgtest_count(h.pg, "SELECT count(*) FROM voters"), NVOTERS + 1);
	}
	tally_store_destroy(st);
	tally_registry_destroy(rs.reg);
	free(rs.state);
	free(rs.voted);
	PQfinish(h.pg);
	pgtest_schema_drop();
}

static void restored_free(tally_store_restored_t *rs);

/* A restore on a thread of its own: done is set (release) once it returned. */
typedef struct restore_job {
	tally_store_t *st;
	tally_store_restored_t rs;
	int rc, done;
	char err[512];
} restore_job_t;

static void *
restore_main(void *arg)
{
	restore_job_t *job = arg;
	tally_registry_opts_t ro = {0};

	job->rc = tally_store_restore(job->st, &ro, &job->rs, job->err, sizeof(job->err));
	__atomic_store_n(&job->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

/*
 * A killed tallyd's last cut may still be committing in its backend when the next one
 * restores. The restore waits for it, so the stored votes' voters and the offsets it reads
 * come from the same cut: here the late cut (a vote and its offset) holds its transaction
 * open; the restore does not return until it commits, and then marks that vote's voter
 * and reads that offset. (Without the wait it returned at once with neither.)
 */
Test(store, a_restore_waits_for_a_checkpoint_still_committing, .timeout = 120)
{
	tally_pg_param_t param = {"options", NULL};
	hooks_seen_t h = {0};
	restore_job_t job = {0};
	int64_t offsets[1] = {-1};
	pthread_t t;
	PGconn *late;
	char err[512];

	setup_db(&h, &param);
	late = pgtest_connect();
	pgtest_exec_ok(late, "BEGIN");
	pgtest_exec_ok(late, "INSERT INTO votes (voter_id, candidate_id, voting_time, election_id,"
	                     " source_partition, source_offset) SELECT voter_id,"
	                     " '3f0b2c1e-8d5a-4f3b-9c2d-1a2b3c4d5e6f', '2026-05-07 12:00:00+00',"
	                     " 'ge-2026', 0, 41 FROM voters ORDER BY voter_id LIMIT 1");
	pgtest_exec_ok(late, "INSERT INTO checkpoint_offsets (election_id, topic, partition,"
	                     " next_offset, owner, generation) VALUES ('ge-2026', 'votes_topic', 0,"
	                     " 42, 'killed', 1)");
	job.st = store_new(&h, &param);
	cr_assert_eq(pthread_create(&t, NULL, restore_main, &job), 0);
	usleep(1500000);
	cr_assert_eq(__atomic_load_n(&job.done, __ATOMIC_ACQUIRE), 0,
	             "the restore returned while a checkpoint was still committing (rc %d: %s)",
	             job.rc, job.err);
	pgtest_exec_ok(late, "COMMIT");
	pthread_join(t, NULL);
	cr_assert_eq(job.rc, 0, "%s", job.err);
	cr_assert_eq(job.rs.nvoted, 1, "the late cut's voter is not marked");
	cr_assert_eq(tally_store_offsets(job.st, "votes_topic", offsets, 1, err, sizeof(err)), 1,
	             "%s", err);
	cr_assert_eq(offsets[0], 42);
	PQfinish(late);
	tally_store_destroy(job.st);
	restored_free(&job.rs);
	PQfinish(h.pg);
	pgtest_schema_drop();
}

/*
 * The prepare hook may wait as long as it likes (tallyd's waits for Kafka to take the cut's
 * dead letters, forever while Kafka is away): the caller's thread is never held. If
 * tally_store_commit() waited for the hook, this test would hang (only this thread lets
 * the hook go on) and fail on its timeout. Meanwhile the store is busy, a second cut is
 * refused at once (the caller keeps its votes for the next cut), and nothing is written
 * before the hook returns.
 */
Test(store, a_prepare_hook_that_waits_never_holds_the_caller, .timeout = 120)
{
	tally_pg_param_t param = {"options", NULL};
	hooks_seen_t h = {0};
	tally_store_hooks_t hooks = {.prepare = on_prepare, .committed = on_committed,
	                             .release = on_release, .arg = &h};
	tally_store_restored_t rs;
	tally_registry_opts_t ro = {0};
	tally_store_cut_t cut, second;
	tally_store_t *st;
	sem_t hold;
	char err[512];

	cr_assert_eq(sem_init(&hold, 0, 0), 0);
	setup_db(&h, &param);
	h.hold = &hold;
	st = store_new(&h, &param);
	cr_assert_eq(tally_store_restore(st, &ro, &rs, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(tally_store_start(st, &hooks, rs.reg, err, sizeof(err)), 0, "%s", err);

	cut_fill(&cut, NVOTES, 1, &h);
	cr_assert_eq(tally_store_commit(st, &cut), 0);
	usleep(200000);
	cr_assert_not(tally_store_idle(st));
	cr_assert_eq(h.prepared, 0);
	cut_fill(&second, 10, 2, &h);
	cr_assert_eq(tally_store_commit(st, &second), TALLY_EAGAIN);
	free(second.votes);
	free(second.state);
	free(second.offsets);
	cr_assert_eq(pgtest_count(h.pg, "SELECT count(*) FROM checkpoints"), 0);

	/* Kafka is back: the hook returns and the cut commits. */
	sem_post(&hold);
	for (int i = 0; i < 600 && !tally_store_idle(st); i++)
		usleep(10000);
	cr_assert(tally_store_idle(st));
	cr_assert_eq(h.prepared, 1);
	cr_assert_eq(h.committed, 1);
	cr_assert_eq(h.released, 1);
	cr_assert_eq(pgtest_count(h.pg, "SELECT count(*) FROM checkpoints"), 1);
	cr_assert_eq(pgtest_count(h.pg, "SELECT coalesce(sum(votes), 0) FROM vote_journal"), NVOTES);
	tally_store_stop(st);
	tally_store_destroy(st);
	tally_registry_destroy(rs.reg);
	sem_destroy(&hold);
	PQfinish(h.pg);
	pgtest_schema_drop();
}

/* ---- several instances: claims, fenced cuts, the watcher -------------------------------- */

/* One part of a fenced cut: its partition, claim epoch, version, state and next offset. */
typedef struct part_spec {
	int32_t partition;
	int64_t epoch;
	uint64_t version;
	const char *state;
	int64_t next;
} part_spec_t;

/* The extra offsets: votes_rejected partition 0 at 100 times the cuts prepared so far. */
static int
on_prepare_parts(void *arg, tally_store_cut_t *cut, tally_pg_offset_t **extra, size_t *nextra)
{
	hooks_seen_t *h = arg;

	cr_assert_eq(cut->app, h);
	h->prepared++;
	*extra = calloc(1, sizeof(**extra));
	(*extra)[0] = (tally_pg_offset_t){0, 100 * h->prepared};
	*nextra = 1;
	return 0;
}

/* A fenced cut: voters [from, to) voting on the parts' partitions in turn (offset = the
 * voter's number), each part's state and its partition's next offset. */
static void
cut_parts(tally_store_cut_t *cut, size_t from, size_t to, const part_spec_t *ps, size_t nps,
          void *app)
{
	memset(cut, 0, sizeof(*cut));
	cut->nvotes = to - from;
	cut->votes = calloc(cut->nvotes, sizeof(*cut->votes));
	for (size_t i = from; i < to; i++)
		cut->votes[i - from] = (tally_pg_vote_row_t){.voter_id = voter(i), .candidate_id = cand,
		                                             .voting_time = 1778140800,
		                                             .offset = (int64_t)i,
		                                             .partition = ps[i % nps].partition};
	cut->parts = calloc(nps, sizeof(*cut->parts));
	cut->offsets = calloc(nps, sizeof(*cut->offsets));
	for (size_t k = 0; k < nps; k++) {
		cut->parts[k] = (tally_pg_part_t){.partition = ps[k].partition, .epoch = ps[k].epoch,
		                                  .version = ps[k].version,
		                                  .state = strdup(ps[k].state),
		                                  .state_len = strlen(ps[k].state)};
		/* Odd partitions carry forward bytes ("f:" and the state), even ones none. */
		if (ps[k].partition % 2 == 1) {
			char *f = malloc(strlen(ps[k].state) + 3);

			sprintf(f, "f:%s", ps[k].state);
			cut->parts[k].forward = f;
			cut->parts[k].forward_len = strlen(f);
		}
		cut->offsets[k] = (tally_pg_offset_t){ps[k].partition, ps[k].next};
	}
	cut->nparts = nps;
	cut->noffsets = nps;
	cut->version = ps[0].version;
	cut->generation = 1;
	cut->status = TALLY_ELECTION_OPEN;
	cut->cut_ns = tally_mono_ns();
	cut->app = app;
}

/* Hand a cut over and wait until the writer is done with it (committed or refused). */
static void
commit_wait(tally_store_t *st, const tally_store_cut_t *cut)
{
	cr_assert_eq(tally_store_commit(st, cut), 0);
	for (int i = 0; i < 1000 && !tally_store_idle(st); i++)
		usleep(10000);
	cr_assert(tally_store_idle(st));
}

/* A store that restored and whose writer runs. */
static tally_store_t *
store_started(hooks_seen_t *h, const tally_pg_param_t *param, const char *owner,
              const tally_store_hooks_t *hooks, tally_store_restored_t *rs)
{
	tally_registry_opts_t ro = {0};
	tally_store_t *st = store_new_as(h, param, owner);
	char err[512];

	cr_assert_eq(tally_store_restore(st, &ro, rs, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(tally_store_start(st, hooks, rs->reg, err, sizeof(err)), 0, "%s", err);
	return st;
}

static void
restored_free(tally_store_restored_t *rs)
{
	tally_registry_destroy(rs->reg);
	free(rs->state);
	free(rs->voted);
}

/*
 * Instance A claims partitions 0 and 1 and stores a cut of both; instance B claims 1 and
 * reads exactly what A stored of it; A's next cut of both is refused (fenced) and nothing
 * of it is stored, not even partition 0's part, the votes or the dead-letter offsets; A's
 * cut of partition 0 alone then commits, and so does B's of partition 1.
 */
Test(store, claims_fence_off_a_lost_partition, .timeout = 120)
{
	tally_pg_param_t param = {"options", NULL};
	hooks_seen_t ha = {0}, hb = {0};
	tally_store_hooks_t hooks_a = {.prepare = on_prepare_parts, .committed = on_committed,
	                               .refused = on_refused, .release = on_release, .arg = &ha};
	tally_store_hooks_t hooks_b = {.prepare = on_prepare_parts, .committed = on_committed,
	                               .refused = on_refused, .release = on_release, .arg = &hb};
	tally_store_restored_t ra, rb;
	tally_store_claimed_t cl[2];
	tally_store_stats_t fig;
	tally_store_cut_t cut;
	tally_store_t *a, *b;
	int32_t both[2] = {1, 0}, dup[2] = {0, 0}, one[1] = {1};
	char err[512];

	setup_db(&ha, &param);
	pthread_mutex_init(&hb.lock, NULL);
	hb.pg = ha.pg;
	a = store_started(&ha, &param, "a", &hooks_a, &ra);

	/* A fresh election: epoch 1, no state, no offset; out[i] is partitions[i]'s. */
	cr_assert_eq(tally_store_claim(a, both, 2, cl, err, sizeof(err)), 0, "%s", err);
	for (int i = 0; i < 2; i++) {
		cr_assert_eq(cl[i].partition, both[i]);
		cr_assert_eq(cl[i].epoch, 1);
		cr_assert_null(cl[i].state);
		cr_assert_eq(cl[i].state_len, 0);
		cr_assert_null(cl[i].forward);
		cr_assert_eq(cl[i].version, 0);
		cr_assert_eq(cl[i].next_offset, -1);
	}
	cr_assert_eq(pgtest_count(ha.pg, "SELECT count(*) FROM partition_owners WHERE owner = 'a'"
	                                 " AND epoch = 1 AND topic = 'votes_topic'"), 2);
	cr_assert_eq(tally_store_claim(a, dup, 2, cl, err, sizeof(err)), TALLY_EINVAL);
	cr_assert_str_eq(err, "partition 0 of \"votes_topic\" is given twice");
	cr_assert_eq(pgtest_count(ha.pg, "SELECT count(*) FROM partition_owners WHERE epoch = 1"), 2);

	/* A's first cut: 10 votes (row by row), both parts, both offsets; no checkpoints row. */
	cut_parts(&cut, 0, 10, (part_spec_t[]){{0, 1, 1, "a p0 v1", 5}, {1, 1, 1, "a p1 v1", 5}}, 2,
	          &ha);
	commit_wait(a, &cut);
	cr_assert_eq(ha.committed, 1, "%s", ha.log);
	cr_assert_eq(ha.refused, 0);
	cr_assert_eq(pgtest_count(ha.pg, "SELECT count(*) FROM votes"), 10);
	cr_assert_eq(pgtest_count(ha.pg, "SELECT count(*) FROM checkpoints"), 0);
	cr_assert_eq(pgtest_count(ha.pg, "SELECT count(*) FROM partition_states"), 2);
	cr_assert_eq(pgtest_count(ha.pg, "SELECT count(*) FROM partition_states WHERE partition = 0"
	                                 " AND owner = 'a' AND epoch = 1 AND version = 1"
	                                 " AND state = 'a p0 v1'::bytea"), 1);
	cr_assert_eq(pgtest_count(ha.pg, "SELECT count(*) FROM partition_states WHERE partition = 1"
	                                 " AND owner = 'a' AND epoch = 1 AND version = 1"
	                                 " AND state = 'a p1 v1'::bytea"
	                                 " AND forward = 'f:a p1 v1'::bytea"), 1);
	cr_assert_eq(pgtest_count(ha.pg, "SELECT count(*) FROM partition_states WHERE partition = 0"
	                                 " AND forward IS NULL"), 1);
	cr_assert_eq(pgtest_count(ha.pg, "SELECT count(*) FROM checkpoint_offsets WHERE"
	                                 " topic = 'votes_topic' AND next_offset = 5 AND owner = 'a'"),
	             2);
	cr_assert_eq(pgtest_count(ha.pg, "SELECT next_offset FROM checkpoint_offsets WHERE"
	                                 " topic = 'votes_rejected' AND partition = 0"), 100);

	/* B claims partition 1: epoch 2, and reads A's state and offset of it exactly. */
	b = store_started(&hb, &param, "b", &hooks_b, &rb);
	cr_assert_eq(tally_store_claim(b, one, 1, cl, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(cl[0].partition, 1);
	cr_assert_eq(cl[0].epoch, 2);
	cr_assert_eq(cl[0].version, 1);
	cr_assert_eq(cl[0].state_len, 7);
	cr_assert_eq(memcmp(cl[0].state, "a p1 v1", 7), 0);
	cr_assert_eq(cl[0].next_offset, 5);
	cr_assert_eq(cl[0].forward_len, 9);
	cr_assert_eq(memcmp(cl[0].forward, "f:a p1 v1", 9), 0);
	free(cl[0].state);
	free(cl[0].forward);
	cr_assert_eq(pgtest_count(ha.pg, "SELECT count(*) FROM partition_owners WHERE"
	                                 " (partition = 1 AND owner = 'b' AND epoch = 2)"
	                                 " OR (partition = 0 AND owner = 'a' AND epoch = 1)"), 2);

	/* A's next cut of both (12 votes: for the journal) is refused, and stores nothing. */
	cut_parts(&cut, 10, 22, (part_spec_t[]){{0, 1, 2, "a p0 v2", 11}, {1, 1, 2, "a p1 v2", 11}},
	          2, &ha);
	commit_wait(a, &cut);
	cr_assert_eq(ha.prepared, 2);
	cr_assert_eq(ha.refused, 1);
	cr_assert_eq(ha.refused_rc, TALLY_EFENCED);
	cr_assert_eq(ha.committed, 1);
	cr_assert_eq(ha.released, 2);
	cr_assert(log_has(&ha, "checkpoint refused: fenced: partition 1 of \"votes_topic\" is owned"
	                       " by \"b\" at epoch 2, not \"a\" at epoch 1\n"), "%s", ha.log);
	cr_assert_eq(pgtest_count(ha.pg, "SELECT count(*) FROM votes"), 10);
	cr_assert_eq(pgtest_count(ha.pg, "SELECT count(*) FROM vote_journal"), 0);
	cr_assert_eq(pgtest_count(ha.pg, "SELECT count(*) FROM checkpoints"), 0);
	cr_assert_eq(pgtest_count(ha.pg, "SELECT count(*) FROM partition_states WHERE owner = 'a'"
	                                 " AND epoch = 1 AND version = 1 AND state ="
	                                 " convert_to('a p' || partition || ' v1', 'UTF8')"), 2);
	cr_assert_eq(pgtest_count(ha.pg, "SELECT count(*) FROM checkpoint_offsets WHERE"
	                                 " topic = 'votes_topic' AND next_offset = 5 AND owner = 'a'"),
	             2);
	cr_assert_eq(pgtest_count(ha.pg, "SELECT next_offset FROM checkpoint_offsets WHERE"
	                                 " topic = 'votes_rejected' AND partition = 0"), 100);
	cr_assert_eq(pgtest_count(ha.pg, "SELECT count(*) FROM elections WHERE status = 'open'"), 1);
	tally_store_stats(a, &fig);
	cr_assert_eq(fig.fenced, 1);
	cr_assert_eq(fig.checkpoints, 1);
	cr_assert_eq(fig.checkpoint_failures, 0);
	cr_assert(fig.postgres_up);

	/* A's cut of partition 0 alone commits; partition 1 stays as it was. */
	cut_parts(&cut, 22, 28, (part_spec_t[]){{0, 1, 3, "a p0 v3", 28}}, 1, &ha);
	commit_wait(a, &cut);
	cr_assert_eq(ha.committed, 2, "%s", ha.log);
	cr_assert_eq(ha.refused, 1);
	cr_assert_eq(pgtest_count(ha.pg, "SELECT count(*) FROM votes"), 16);
	cr_assert_eq(pgtest_count(ha.pg, "SELECT count(*) FROM partition_states WHERE partition = 0"
	                                 " AND owner = 'a' AND epoch = 1 AND version = 3"
	                                 " AND state = 'a p0 v3'::bytea"), 1);
	cr_assert_eq(pgtest_count(ha.pg, "SELECT count(*) FROM partition_states WHERE partition = 1"
	                                 " AND owner = 'a' AND epoch = 1 AND version = 1"
	                                 " AND state = 'a p1 v1'::bytea"
	                                 " AND forward = 'f:a p1 v1'::bytea"), 1);
	cr_assert_eq(pgtest_count(ha.pg, "SELECT count(*) FROM partition_states WHERE partition = 0"
	                                 " AND forward IS NULL"), 1);
	cr_assert_eq(pgtest_count(ha.pg, "SELECT next_offset FROM checkpoint_offsets WHERE"
	                                 " topic = 'votes_topic' AND partition = 0"), 28);
	cr_assert_eq(pgtest_count(ha.pg, "SELECT next_offset FROM checkpoint_offsets WHERE"
	                                 " topic = 'votes_topic' AND partition = 1"), 5);
	cr_assert_eq(pgtest_count(ha.pg, "SELECT next_offset FROM checkpoint_offsets WHERE"
	                                 " topic = 'votes_rejected' AND partition = 0"), 300);

	/* B's cut of partition 1 commits under epoch 2. */
	cut_parts(&cut, 30, 34, (part_spec_t[]){{1, 2, 2, "b p1 v2", 34}}, 1, &hb);
	commit_wait(b, &cut);
	cr_assert_eq(hb.committed, 1, "%s", hb.log);
	cr_assert_eq(pgtest_count(ha.pg, "SELECT count(*) FROM votes"), 20);
	cr_assert_eq(pgtest_count(ha.pg, "SELECT count(*) FROM partition_states WHERE partition = 1"
	                                 " AND owner = 'b' AND epoch = 2 AND version = 2"
	                                 " AND state = 'b p1 v2'::bytea"), 1);
	cr_assert_eq(pgtest_count(ha.pg, "SELECT count(*) FROM checkpoint_offsets WHERE"
	                                 " topic = 'votes_topic' AND partition = 1 AND owner = 'b'"
	                                 " AND next_offset = 34"), 1);

	/* Is a fenced cut the one committed (an uncertain COMMIT)? Its parts' rows say. */
	{
		char bytes[] = "a p0 v3";
		tally_pg_part_t pt = {.partition = 0, .epoch = 1, .version = 3, .state = bytes,
		                      .state_len = 7};
		tally_pg_checkpoint_t c = {.election_id = "ge-2026", .topic = "votes_topic",
		                           .owner = "a", .parts = &pt, .nparts = 1};

		cr_assert_eq(tally_pg_checkpoint_committed(ha.pg, &c, err, sizeof(err)), 1, "%s", err);
		pt.version = 2;
		cr_assert_eq(tally_pg_checkpoint_committed(ha.pg, &c, err, sizeof(err)), 0, "%s", err);
	}
	/* By its transaction's id, what the writer asks: still known as committed after a new
	 * owner has overwritten its part; a refused one never came to its COMMIT. */
	{
		char bytes[] = "a p0 v4";
		int64_t xact = -1;
		int32_t zero[1] = {0};
		tally_pg_part_t pt = {.partition = 0, .epoch = 1, .version = 4, .state = bytes,
		                      .state_len = 7};
		tally_pg_offset_t off = {0, 30};
		tally_pg_checkpoint_t c = {.election_id = "ge-2026", .topic = "votes_topic",
		                           .owner = "a", .generation = 1, .version = 4,
		                           .offsets = &off, .noffsets = 1, .parts = &pt, .nparts = 1,
		                           .xact = &xact};

		cr_assert_eq(tally_pg_checkpoint_write(ha.pg, &c, err, sizeof(err)), 0, "%s", err);
		cr_assert_gt(xact, 0);
		cr_assert_eq(tally_pg_checkpoint_committed(ha.pg, &c, err, sizeof(err)), 1, "%s", err);
		cr_assert_eq(tally_store_claim(b, zero, 1, cl, err, sizeof(err)), 0, "%s", err);
		cr_assert_eq(cl[0].epoch, 2);
		cr_assert_eq(cl[0].version, 4);
		cr_assert_eq(cl[0].next_offset, 30);
		cr_assert_null(cl[0].forward);
		free(cl[0].state);
		cut_parts(&cut, 34, 36, (part_spec_t[]){{0, 2, 5, "b p0 v5", 36}}, 1, &hb);
		commit_wait(b, &cut);
		cr_assert_eq(hb.committed, 2, "%s", hb.log);
		cr_assert_eq(tally_pg_checkpoint_committed(ha.pg, &c, err, sizeof(err)), 1, "%s", err);
		c.xact = NULL;
		cr_assert_eq(tally_pg_checkpoint_committed(ha.pg, &c, err, sizeof(err)), 0, "%s", err);
		c.xact = &xact;
		cr_assert_eq(tally_pg_checkpoint_write(ha.pg, &c, err, sizeof(err)), TALLY_EFENCED);
		cr_assert_str_eq(err, "fenced: partition 0 of \"votes_topic\" is owned by \"b\" at"
		                      " epoch 2, not \"a\" at epoch 1");
		cr_assert_eq(xact, 0);
		cr_assert_eq(tally_pg_checkpoint_committed(ha.pg, &c, err, sizeof(err)), 0, "%s", err);
		cr_assert_eq(pgtest_count(ha.pg, "SELECT count(*) FROM partition_states WHERE"
		                                 " owner = 'b' AND epoch = 2"), 2);
	}
	tally_store_destroy(a);
	tally_store_destroy(b);
	restored_free(&ra);
	restored_free(&rb);
	PQfinish(ha.pg);
	pgtest_schema_drop();
}

/* What a watcher's hooks were told, under its lock. */
typedef struct watch_view {
	int calls;                   /* parts calls */
	size_t n;                    /* the last call's parts, their bytes in bytes[] */
	tally_pg_part_t parts[4];
	char bytes[4][32];
	int leader;                  /* the last leader call's value */
	int leader_calls;
} watch_view_t;

typedef struct watched {
	pthread_mutex_t lock;
	watch_view_t v;
} watched_t;

static void
on_parts(void *arg, const tally_pg_part_t *parts, size_t n)
{
	watched_t *w = arg;

	pthread_mutex_lock(&w->lock);
	w->v.calls++;
	w->v.n = n;
	for (size_t i = 0; i < n && i < 4; i++) {
		size_t len = parts[i].state_len < 31 ? parts[i].state_len : 31;

		w->v.parts[i] = parts[i];
		memcpy(w->v.bytes[i], parts[i].state, len);
		w->v.bytes[i][len] = '\0';
		w->v.parts[i].state = NULL;
	}
	pthread_mutex_unlock(&w->lock);
}

static void
on_leader(void *arg, bool is_leader)
{
	watched_t *w = arg;

	pthread_mutex_lock(&w->lock);
	w->v.leader = is_leader;
	w->v.leader_calls++;
	pthread_mutex_unlock(&w->lock);
}

static watch_view_t
view(watched_t *w)
{
	watch_view_t v;

	pthread_mutex_lock(&w->lock);
	v = w->v;
	pthread_mutex_unlock(&w->lock);
	return v;
}

/* Wait up to ms for a watcher's parts calls, its leader calls and its leadership. */
static bool
wait_view(watched_t *w, int calls, int leader_calls, int leader, int ms)
{
	for (int waited = 0; waited <= ms; waited += 20) {
		watch_view_t v = view(w);

		if (v.calls == calls && v.leader_calls == leader_calls && v.leader == leader)
			return true;
		usleep(20000);
	}
	return false;
}

/* The last parts call's part i is (partition, epoch, version, state). */
static void
assert_part(const watch_view_t *v, size_t i, int32_t partition, int64_t epoch,
            uint64_t version, const char *state)
{
	cr_assert_eq(v->parts[i].partition, partition);
	cr_assert_eq(v->parts[i].epoch, epoch, "part %zu", i);
	cr_assert_eq(v->parts[i].version, version, "part %zu", i);
	cr_assert_eq(v->parts[i].state_len, strlen(state), "part %zu", i);
	cr_assert_str_eq(v->bytes[i], state);
}

/*
 * Two watchers of one election: W1 polls only every 60 s, so what it sees within seconds
 * came by NOTIFY; W2 polls every 200 ms. Each sees every committed part after each commit
 * and is called only on a change (not for a poll that finds nothing new, not for a refused
 * cut, not for a claim). The one whose owner owns partition 0 (the lowest) leads; when
 * the other's owner claims partition 0, the claim's notification moves the leadership at
 * once; a leader whose connection is killed is told at once, and leads again once back.
 */
Test(store, a_watcher_sees_every_committed_part_and_one_leads, .timeout = 120)
{
	tally_pg_param_t param = {"options", NULL};
	hooks_seen_t ha = {0}, hb = {0}, hw = {0};
	tally_store_hooks_t hooks_a = {.prepare = on_prepare_parts, .committed = on_committed,
	                               .refused = on_refused, .release = on_release, .arg = &ha};
	tally_store_hooks_t hooks_b = {.prepare = on_prepare_parts, .committed = on_committed,
	                               .refused = on_refused, .release = on_release, .arg = &hb};
	watched_t w1 = {.lock = PTHREAD_MUTEX_INITIALIZER}, w2 = {.lock = PTHREAD_MUTEX_INITIALIZER};
	tally_store_watch_t watch1 = {.parts = on_parts, .leader = on_leader, .arg = &w1,
	                              .interval_ms = 60000};
	tally_store_watch_t watch2 = {.parts = on_parts, .leader = on_leader, .arg = &w2,
	                              .interval_ms = 200};
	tally_store_restored_t ra, rb;
	tally_store_claimed_t cl[2];
	tally_store_cut_t cut;
	tally_store_t *a, *b, *s1, *s2;
	int32_t both[2] = {0, 1}, one[1] = {1}, zero[1] = {0};
	char err[512];
	watch_view_t v;

	setup_db(&ha, &param);
	pthread_mutex_init(&hb.lock, NULL);
	pthread_mutex_init(&hw.lock, NULL);
	hb.pg = ha.pg;
	a = store_started(&ha, &param, "a", &hooks_a, &ra);
	cr_assert_eq(tally_store_claim(a, both, 2, cl, err, sizeof(err)), 0, "%s", err);

	/* W1 watches as "a", the owner of partition 0 (the lowest): told of no part at its
	 * first read, and leads. */
	s1 = store_new_as(&hw, &param, "a");
	cr_assert_eq(tally_store_watch_start(s1, &watch1, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(tally_store_watch_start(s1, &watch1, err, sizeof(err)), TALLY_ESTATE);
	cr_assert(wait_view(&w1, 1, 1, 1, 5000));
	cr_assert_eq(view(&w1).n, 0);
	cr_assert_geq(tally_store_watch_rounds(s1), 1);

	/* W2 watches as "b": reads the same, does not lead, and polls without calling. */
	s2 = store_new_as(&hw, &param, "b");
	cr_assert_eq(tally_store_watch_start(s2, &watch2, err, sizeof(err)), 0, "%s", err);
	cr_assert(wait_view(&w2, 1, 0, 0, 5000));
	usleep(1000000);
	cr_assert(wait_view(&w1, 1, 1, 1, 0));
	cr_assert(wait_view(&w2, 1, 0, 0, 0), "a poll that finds nothing new calls nothing");

	/* A's cut of both: each watcher is told of both parts, once. */
	cut_parts(&cut, 0, 10, (part_spec_t[]){{0, 1, 1, "a p0 v1", 5}, {1, 1, 1, "a p1 v1", 5}}, 2,
	          &ha);
	commit_wait(a, &cut);
	cr_assert_eq(ha.committed, 1, "%s", ha.log);
	cr_assert(wait_view(&w1, 2, 1, 1, 5000), "notified: %d calls", view(&w1).calls);
	cr_assert(wait_view(&w2, 2, 0, 0, 5000));
	v = view(&w1);
	cr_assert_eq(v.n, 2);
	assert_part(&v, 0, 0, 1, 1, "a p0 v1");
	assert_part(&v, 1, 1, 1, 1, "a p1 v1");
	v = view(&w2);
	cr_assert_eq(v.n, 2);
	assert_part(&v, 0, 0, 1, 1, "a p0 v1");
	assert_part(&v, 1, 1, 1, 1, "a p1 v1");

	/* A's cut of partition 0: the new part 0, the old part 1. */
	cut_parts(&cut, 10, 14, (part_spec_t[]){{0, 1, 2, "a p0 v2", 14}}, 1, &ha);
	commit_wait(a, &cut);
	cr_assert(wait_view(&w1, 3, 1, 1, 5000), "notified: %d calls", view(&w1).calls);
	cr_assert(wait_view(&w2, 3, 0, 0, 5000));
	v = view(&w1);
	cr_assert_eq(v.n, 2);
	assert_part(&v, 0, 0, 1, 2, "a p0 v2");
	assert_part(&v, 1, 1, 1, 1, "a p1 v1");

	/* B claims partition 1 and A's cut of it is refused: nothing new to tell; A still owns
	 * partition 0, so W1 still leads. */
	b = store_started(&hb, &param, "b", &hooks_b, &rb);
	cr_assert_eq(tally_store_claim(b, one, 1, cl, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(cl[0].epoch, 2);
	free(cl[0].state);
	free(cl[0].forward);
	cut_parts(&cut, 14, 18, (part_spec_t[]){{0, 1, 3, "a p0 v3", 18}, {1, 1, 3, "a p1 v3", 18}},
	          2, &ha);
	commit_wait(a, &cut);
	cr_assert_eq(ha.refused_rc, TALLY_EFENCED);
	usleep(1000000);
	cr_assert(wait_view(&w1, 3, 1, 1, 0));
	cr_assert(wait_view(&w2, 3, 0, 0, 0));

	/* B's cut of partition 1, at epoch 2. */
	cut_parts(&cut, 20, 24, (part_spec_t[]){{1, 2, 2, "b p1 v2", 24}}, 1, &hb);
	commit_wait(b, &cut);
	cr_assert_eq(hb.committed, 1, "%s", hb.log);
	cr_assert(wait_view(&w1, 4, 1, 1, 5000), "notified: %d calls", view(&w1).calls);
	cr_assert(wait_view(&w2, 4, 0, 0, 5000));
	v = view(&w2);
	cr_assert_eq(v.n, 2);
	assert_part(&v, 0, 0, 1, 2, "a p0 v2");
	assert_part(&v, 1, 1, 2, 2, "b p1 v2");

	/* B claims partition 0 too: the claim's notification moves the leadership at once
	 * (W1's own poll is a minute away): W1 resigns, W2 leads. */
	cr_assert_eq(tally_store_claim(b, zero, 1, cl, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(cl[0].epoch, 2);
	free(cl[0].state);
	free(cl[0].forward);
	cr_assert(wait_view(&w1, 4, 2, 0, 5000), "%d leader calls", view(&w1).leader_calls);
	cr_assert(wait_view(&w2, 4, 1, 1, 5000), "%d leader calls", view(&w2).leader_calls);
	cr_assert(log_has(&hw, "no longer the results leader of election \"ge-2026\": partition "
	                       "0 is another instance's\n"), "%s", hw.log);

	/* The old leader's store stops: nothing more to say. */
	tally_store_destroy(s1);
	cr_assert(wait_view(&w1, 4, 2, 0, 0));

	/* W2's connection is killed: it is told it no longer leads, then leads again. */
	cr_assert_eq(pgtest_count(ha.pg, "SELECT count(pg_terminate_backend(pid)) FROM"
	                                 " pg_stat_activity WHERE pid <> pg_backend_pid() AND"
	                                 " query LIKE 'SELECT partition, epoch, version, state"
	                                 " FROM partition_states%'"), 1);
	cr_assert(wait_view(&w2, 4, 3, 1, 10000), "%d leader calls", view(&w2).leader_calls);
	cr_assert(log_has(&hw, "no longer the results leader of election \"ge-2026\": the"
	                       " connection to postgres was lost\n"));

	tally_store_destroy(s2);
	cr_assert(wait_view(&w2, 4, 4, 0, 0));
	tally_store_destroy(a);
	tally_store_destroy(b);
	restored_free(&ra);
	restored_free(&rb);
	PQfinish(ha.pg);
	pgtest_schema_drop();
}

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

static tally_store_t *
store_new(hooks_seen_t *h, const tally_pg_param_t *param)
{
	tally_store_opts_t o = {.dsn = tally_test_service("TALLY_PG_DSN"), .params = param, .nparams = 1,
	                        .election_id = "ge-2026", .topic = "votes_topic",
	                        .extra_topic = "votes_rejected", .owner = "test",
	                        .journal_above = 10, .image_delay_ms = 0, .log = on_log,
	                        .log_arg = h};
	char err[512];
	tally_store_t *st = tally_store_new(&o, err, sizeof(err));

	cr_assert_not_null(st, "%s", err);
	return st;
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

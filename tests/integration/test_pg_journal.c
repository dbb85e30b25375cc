/*
 * The vote journal in a real PostgreSQL (adapters/postgres/journal.c): checkpoints that
 * journal their votes, the stored votes read back as the union of the votes table and the
 * journal, and moves into the votes table, one piece per transaction.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include <tally/error.h>
#include <tally/pg.h>
#include <tally/pg_checkpoint.h>
#include <tally/pg_journal.h>

#include "pgtest.h"

#define NVOTERS 150000u

static tally_uuid_t
voter(uint64_t i)
{
	return (tally_uuid_t){0x0d6e3c5b2a1f4b9eULL ^ (i << 16), 0x8c7d000000000000ULL | i};
}

static const tally_uuid_t cand[2] = {{0x3f0b2c1e8d5a4f3bULL, 0x9c2d1a2b3c4d5e6fULL},
                                     {0x4f0b2c1e8d5a4f3bULL, 0x9c2d1a2b3c4d5e6fULL}};

/* A registry of NVOTERS voters in Kent and Essex, two candidates, election ge-2026. */
static PGconn *
setup(void)
{
	PGconn *c;
	char err[512];

	pgtest_schema_create();
	c = pgtest_connect();
	cr_assert_eq(tally_pg_migrate(c, NULL, err, sizeof(err)), 0, "%s", err);
	pgtest_exec_ok(c, "INSERT INTO parties (party_affiliation) VALUES ('Savior Party')");
	pgtest_exec_ok(c, "INSERT INTO candidates (candidate_id, candidate_name, party_affiliation)"
	                  " VALUES ('3f0b2c1e-8d5a-4f3b-9c2d-1a2b3c4d5e6f', 'Ada', 'Savior Party'),"
	                  " ('4f0b2c1e-8d5a-4f3b-9c2d-1a2b3c4d5e6f', 'Alan', 'Savior Party')");
	pgtest_exec_ok(c, "INSERT INTO elections (election_id, opens_at, closes_at) VALUES"
	                  " ('ge-2026', '2026-05-07 07:00:00+00', '2026-05-07 22:00:00+00')");
	/* The same ids as voter(i), built in SQL. */
	pgtest_exec_ok(c, "INSERT INTO voters (voter_id, date_of_birth, address_state)"
	                  " SELECT (lpad(to_hex(x'0d6e3c5b2a1f4b9e'::bigint # (i << 16)), 16, '0')"
	                  " || lpad(to_hex(x'8c7d000000000000'::bigint | i), 16, '0'))::uuid,"
	                  " '1980-01-01', CASE WHEN i % 3 = 0 THEN 'Kent' ELSE 'Essex' END"
	                  " FROM generate_series(0::bigint, 149999) AS i");
	cr_assert_eq(pgtest_count(c, "SELECT count(*) FROM voters"), NVOTERS);
	return c;
}

static tally_pg_vote_row_t *
votes_from(uint64_t first, size_t n)
{
	tally_pg_vote_row_t *v = calloc(n, sizeof(*v));

	for (size_t i = 0; i < n; i++) {
		v[i].voter_id = voter(first + i);
		v[i].candidate_id = cand[(first + i) % 7 == 0];
		v[i].voting_time = 1778140800 + (int64_t)i % 600;
		v[i].partition = (int32_t)((first + i) % 3);
		v[i].offset = (int64_t)(first + i);
	}
	return v;
}

static int
checkpoint(PGconn *c, uint64_t version, const tally_pg_vote_row_t *v, size_t n, bool journal,
           char *err, size_t errsz)
{
	char state[16];
	tally_pg_offset_t off = {0, (int64_t)version};
	tally_pg_checkpoint_t ck = {.election_id = "ge-2026", .topic = "votes_topic",
	                            .owner = "test", .generation = 1, .version = version,
	                            .votes = v, .nvotes = n, .journal = journal, .state = state,
	                            .offsets = &off, .noffsets = 1};

	snprintf(state, sizeof(state), "state %llu", (unsigned long long)version);
	ck.state_len = strlen(state);
	return tally_pg_checkpoint_write(c, &ck, err, errsz);
}

static long
stored(PGconn *c)
{
	return pgtest_count(c, "SELECT (SELECT count(*) FROM votes) +"
	                       " (SELECT coalesce(sum(votes), 0) FROM vote_journal)");
}

Test(pg_journal, checkpoints_journal_and_moves_are_exact)
{
	PGconn *c = setup();
	tally_pg_vote_row_t *a = votes_from(0, 1000), *b = votes_from(1000, 140000);
	tally_uuid_t *ids;
	size_t n, moved, total = 0;
	char err[512];
	unsigned char *seen = calloc(NVOTERS, 1);

	/* One checkpoint row by row, one journalled (three pieces: 65536 + 65536 + 8928). */
	cr_assert_eq(checkpoint(c, 1, a, 1000, false, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(checkpoint(c, 2, b, 140000, true, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(pgtest_count(c, "SELECT count(*) FROM votes"), 1000);
	cr_assert_eq(pgtest_count(c, "SELECT count(*) FROM vote_journal"), 3);
	cr_assert_eq(tally_pg_journal_votes(c, err, sizeof(err)), 140000);
	cr_assert_eq(stored(c), 141000);
	/* A journalled vote is still one vote: the same voter again fails the checkpoint. */
	cr_assert_eq(checkpoint(c, 3, b + 5, 1, false, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(tally_pg_journal_move_one(c, &moved, err, sizeof(err)), TALLY_EEXISTS);
	cr_assert_eq(moved, 0);
	cr_assert_eq(tally_pg_journal_votes(c, err, sizeof(err)), 140000, "rolled back");
	pgtest_exec_ok(c, "DELETE FROM votes WHERE source_offset = 1005");

	/* The voted set: every stored voter exactly once. */
	cr_assert_eq(tally_pg_votes_voters(c, &ids, &n, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(n, 141000);
	for (size_t i = 0; i < n; i++) {
		uint64_t k = ids[i].lo & 0xffffffffu;

		cr_assert_lt(k, 141000);
		cr_assert_eq(seen[k]++, 0, "voter %llu twice", (unsigned long long)k);
	}
	free(ids);

	/* Moves, one piece each, oldest first; then nothing is left to move. */
	for (int i = 0; i < 3; i++) {
		cr_assert_eq(tally_pg_journal_move_one(c, &moved, err, sizeof(err)), 0, "%s", err);
		cr_assert_eq(moved, i < 2 ? 65536u : 8928u);
		total += moved;
		cr_assert_eq(stored(c), 141000);
		cr_assert_eq(pgtest_count(c, "SELECT count(*) FROM votes"), (long)(1000 + total));
	}
	cr_assert_eq(tally_pg_journal_move_one(c, &moved, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(moved, 0);
	cr_assert_eq(tally_pg_journal_votes(c, err, sizeof(err)), 0);
	/* Moved votes are the journalled ones, column by column. */
	cr_assert_eq(pgtest_count(c, "SELECT count(*) FROM votes WHERE election_id = 'ge-2026'"
	                             " AND source_partition = source_offset % 3 AND voter_id ="
	                             " (lpad(to_hex(x'0d6e3c5b2a1f4b9e'::bigint # (source_offset << 16)),"
	                             " 16, '0') || lpad(to_hex(x'8c7d000000000000'::bigint"
	                             " | source_offset), 16, '0'))::uuid"),
	             141000);
	cr_assert_eq(pgtest_count(c, "SELECT count(*) FROM votes"
	                             " WHERE candidate_id = '4f0b2c1e-8d5a-4f3b-9c2d-1a2b3c4d5e6f'"),
	             (141000 + 6) / 7);
	cr_assert_eq(pgtest_count(c, "SELECT count(*) FROM votes WHERE voting_time ="
	                             " to_timestamp(1778140800 + (source_offset"
	                             " - CASE WHEN source_offset < 1000 THEN 0 ELSE 1000 END) % 600)"),
	             141000);
	free(seen);
	free(a);
	free(b);
	PQfinish(c);
	pgtest_schema_drop();
}

Test(pg_journal, a_damaged_piece_stops_the_move)
{
	PGconn *c = setup();
	tally_pg_vote_row_t *a = votes_from(0, 10);
	size_t moved;
	char err[512];

	cr_assert_eq(checkpoint(c, 1, a, 10, true, err, sizeof(err)), 0, "%s", err);
	pgtest_exec_ok(c, "UPDATE vote_journal SET piece = substring(piece FROM 1 FOR 40)");
	cr_assert_eq(tally_pg_journal_move_one(c, &moved, err, sizeof(err)), TALLY_ECORRUPT);
	cr_assert(strstr(err, "journal piece") != NULL, "%s", err);
	cr_assert_eq(pgtest_count(c, "SELECT count(*) FROM vote_journal"), 1, "nothing lost");
	cr_assert_eq(pgtest_count(c, "SELECT count(*) FROM votes"), 0);
	free(a);
	PQfinish(c);
	pgtest_schema_drop();
}

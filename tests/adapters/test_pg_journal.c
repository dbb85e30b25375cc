/*
 * The vote journal's piece format (adapters/postgres/journal.c): encode and decode, no
 * server needed. Round trips are exact; damaged pieces are refused with a reason.
 */
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include <tally/error.h>
#include <tally/pg_journal.h>

static tally_uuid_t
uuid_n(uint64_t n)
{
	return (tally_uuid_t){0x1234567800004000ULL | (n << 20), 0x8000000000000000ULL | n};
}

/* n votes over ncand candidates and 12 partitions, with forward and backward jumps. */
static tally_pg_vote_row_t *
make_votes(size_t n, unsigned ncand)
{
	tally_pg_vote_row_t *v = calloc(n ? n : 1, sizeof(*v));
	int64_t off[12] = {0};

	cr_assert_not_null(v);
	for (size_t i = 0; i < n; i++) {
		int32_t p = (int32_t)((i / 100) % 12);

		off[p] += 1 + (int64_t)(i % 7 == 0);
		v[i].voter_id = uuid_n(i * 2654435761u + 1);
		v[i].candidate_id = uuid_n(1000000 + i % ncand);
		v[i].partition = p;
		v[i].offset = off[p] + (i == 5 ? (int64_t)1 << 40 : 0);
		v[i].voting_time = 1778137200 + (int64_t)(i % 3600) - (i % 5 == 0 ? 86400 : 0);
	}
	return v;
}

static void
round_trip(size_t n, unsigned ncand)
{
	tally_pg_vote_row_t *v = make_votes(n, ncand), *out = NULL;
	void *piece;
	size_t len, got = 99;
	char err[256] = "";

	cr_assert_eq(tally_pg_journal_encode(v, n, &piece, &len), 0);
	cr_assert_eq(tally_pg_journal_decode(piece, len, &out, &got, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(got, n);
	for (size_t i = 0; i < n; i++) {
		cr_assert(tally_uuid_equal(&out[i].voter_id, &v[i].voter_id), "vote %zu voter", i);
		cr_assert(tally_uuid_equal(&out[i].candidate_id, &v[i].candidate_id), "vote %zu", i);
		cr_assert_eq(out[i].partition, v[i].partition, "vote %zu", i);
		cr_assert_eq(out[i].offset, v[i].offset, "vote %zu", i);
		cr_assert_eq(out[i].voting_time, v[i].voting_time, "vote %zu", i);
	}
	free(out);
	free(piece);
	free(v);
}

Test(pg_journal, round_trip_is_exact)
{
	round_trip(0, 1);
	round_trip(1, 1);
	round_trip(1000, 10);
	round_trip(TALLY_PG_JOURNAL_PIECE, 300);   /* more candidates than the first map */
}

Test(pg_journal, compact)
{
	size_t n = 50000, len;
	tally_pg_vote_row_t *v = make_votes(n, 10);
	void *piece;

	cr_assert_eq(tally_pg_journal_encode(v, n, &piece, &len), 0);
	/* 16 bytes of voter id and a few bytes of deltas: well under the 56-byte row. */
	cr_assert_lt(len, n * 24, "%zu bytes for %zu votes", len, n);
	free(piece);
	free(v);
}

Test(pg_journal, too_many_votes_for_a_piece)
{
	tally_pg_vote_row_t *v = make_votes(TALLY_PG_JOURNAL_PIECE + 1, 2);
	void *piece;
	size_t len;

	cr_assert_eq(tally_pg_journal_encode(v, TALLY_PG_JOURNAL_PIECE + 1, &piece, &len),
	             TALLY_EINVAL);
	cr_assert_null(piece);
	free(v);
}

static int
decode_err(const void *p, size_t len, char *err, size_t errsz)
{
	tally_pg_vote_row_t *out = (void *)1;
	size_t n = 7;
	int rc = tally_pg_journal_decode(p, len, &out, &n, err, errsz);

	if (rc != 0) {
		cr_assert_null(out);
		cr_assert_eq(n, 0);
	}
	free(rc == 0 ? out : NULL);
	return rc;
}

Test(pg_journal, damaged_pieces_are_refused)
{
	size_t n = 300, len;
	tally_pg_vote_row_t *v = make_votes(n, 4);
	unsigned char *piece, *copy;
	char err[256];

	cr_assert_eq(tally_pg_journal_encode(v, n, (void **)&piece, &len), 0);
	copy = malloc(len + 1);

	/* Not a piece at all. */
	cr_assert_eq(decode_err("TVJ", 3, err, sizeof(err)), TALLY_ECORRUPT);
	memcpy(copy, piece, len);
	copy[3] = '2';
	cr_assert_eq(decode_err(copy, len, err, sizeof(err)), TALLY_ECORRUPT);
	cr_assert(strstr(err, "not a version 1 piece") != NULL, "%s", err);
	/* Cut short anywhere: never read past the end. */
	for (size_t cut = 0; cut < len; cut += 1 + cut / 8)
		cr_assert_eq(decode_err(piece, cut, err, sizeof(err)), TALLY_ECORRUPT, "cut %zu", cut);
	/* A byte too many. */
	memcpy(copy, piece, len);
	copy[len] = 0;
	cr_assert_eq(decode_err(copy, len + 1, err, sizeof(err)), TALLY_ECORRUPT);
	cr_assert(strstr(err, "after the last vote") != NULL, "%s", err);
	/* A candidate index out of the piece's table: the first vote's index byte. */
	memcpy(copy, piece, len);
	copy[12 + 4 * 16 + 16] = 4;
	cr_assert_eq(decode_err(copy, len, err, sizeof(err)), TALLY_ECORRUPT);
	cr_assert(strstr(err, "vote 1 of 300 is malformed") != NULL, "%s", err);
	/* A vote count larger than a piece holds. */
	memcpy(copy, piece, len);
	copy[4] = 0xff;
	copy[5] = 0xff;
	copy[6] = 0xff;
	cr_assert_eq(decode_err(copy, len, err, sizeof(err)), TALLY_ECORRUPT);
	free(copy);
	free(piece);
	free(v);
}

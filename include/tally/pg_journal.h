/**
 * @file pg_journal.h
 * @brief The vote journal: accepted votes kept compactly in PostgreSQL by a checkpoint,
 *        and moved into the votes table afterwards.
 *
 * A checkpoint must make its votes durable in the same transaction as the state and the
 * offsets. Rows in the votes table cost PostgreSQL a primary-key and unique-index insert
 * and two foreign-key checks each (~40 k rows/s on two cores), far below the rate at which
 * tallyd counts a backlog. So a checkpoint with more votes than it may write row by row
 * stores them here instead, packed into pieces of at most TALLY_PG_JOURNAL_PIECE votes
 * (about 20 bytes a vote), and a mover later takes each piece out and COPYs its votes into
 * the votes table in one transaction with the piece's deletion. Every accepted vote is
 * therefore in exactly one of the two places at every commit, and the stored votes are
 * their union; the foreign keys are checked when a vote reaches the votes table, and
 * tallyd only accepts votes of registered voters and candidates in the first place.
 *
 * Piece format (version 1), integers little-endian or LEB128 varints:
 *   "TVJ1", u32 votes, u32 candidates, candidates x 16 bytes (uuid, big-endian),
 *   then per vote: 16 bytes voter uuid (big-endian), varint candidate index,
 *   and zigzag varint deltas from the previous vote of partition, offset and voting_time.
 */
#ifndef TALLY_PG_JOURNAL_H
#define TALLY_PG_JOURNAL_H

#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include <tally/pg_checkpoint.h>

/** Most votes in one journal piece (one row of vote_journal, one move). */
#define TALLY_PG_JOURNAL_PIECE 65536u

/**
 * @brief Pack n votes (n <= TALLY_PG_JOURNAL_PIECE) into a piece.
 * @param out receives a malloc'd buffer (caller frees) of *len bytes.
 * @returns 0 or TALLY_ENOMEM / TALLY_EINVAL.
 */
int tally_pg_journal_encode(const tally_pg_vote_row_t *votes, size_t n, void **out,
                            size_t *len);

/**
 * @brief Unpack a piece.
 * @param votes receives a malloc'd array (caller frees; NULL when empty) of *n votes.
 * @returns 0, or TALLY_ECORRUPT with errstr saying what is wrong with the bytes, or
 *          TALLY_ENOMEM.
 */
int tally_pg_journal_decode(const void *data, size_t len, tally_pg_vote_row_t **votes,
                            size_t *n, char *errstr, size_t errstr_size);

/**
 * @brief Store votes in the journal as pieces, inside the caller's open transaction
 * (tally_pg_checkpoint_write() calls it when the checkpoint says so).
 * @returns 0, or a tally error with errstr set.
 */
int tally_pg_journal_append(PGconn *conn, const char *election_id,
                            const tally_pg_vote_row_t *votes, size_t n, char *errstr,
                            size_t errstr_size);

/**
 * @brief Move the oldest piece of any election into the votes table: in one transaction,
 * read it (locked), COPY its votes into votes, delete it.
 * @param moved receives the votes moved (0 when the journal is empty).
 * @returns 0, or a tally error with errstr set (the transaction rolled back: nothing moved).
 */
int tally_pg_journal_move_one(PGconn *conn, size_t *moved, char *errstr, size_t errstr_size);

/**
 * @brief Votes in the journal (all elections), from the pieces' vote counts.
 * @returns the count (>= 0) or a tally error with errstr set.
 */
int64_t tally_pg_journal_votes(PGconn *conn, char *errstr, size_t errstr_size);

/**
 * @brief Read every piece and append the voter ids of its votes to *ids (grown with
 * realloc; *n and *cap updated). Call in the same snapshot as the read of the votes
 * table's voter ids, so that a piece moved meanwhile is seen exactly once.
 * @returns 0, or a tally error with errstr set.
 */
int tally_pg_journal_voters(PGconn *conn, tally_uuid_t **ids, size_t *n, size_t *cap,
                            char *errstr, size_t errstr_size);

/**
 * @brief Read every piece (of every election), decoded, one piece at a time, oldest first.
 * @param fn called per piece with the piece's election; a non-zero return stops the walk
 *        and is returned.
 * @returns 0, fn's value, or a tally error with errstr set (TALLY_ECORRUPT: a piece that
 *          cannot be decoded).
 */
typedef int (*tally_pg_journal_fn)(const char *election_id, const tally_pg_vote_row_t *votes,
                                   size_t n, void *arg);
int tally_pg_journal_walk(PGconn *conn, tally_pg_journal_fn fn, void *arg, char *errstr,
                          size_t errstr_size);

/**
 * The stored votes as one relation of a session: the votes table and the votes still in
 * the journal, unpacked (see tally_pg_stored_votes_open()). Columns voter_id uuid,
 * candidate_id uuid, election_id text, source_partition integer, source_offset bigint.
 * Readers query it and never add the two up.
 */
#define TALLY_PG_STORED_VOTES "pg_temp.stored_votes"

/** What tally_pg_stored_votes_fill() unpacked. */
typedef struct tally_pg_stored_votes_info {
	int64_t journal_votes;       /**< votes unpacked from the journal */
	int64_t journal_pieces;      /**< pieces unpacked */
	int64_t bad_piece;           /**< the journal_id of the piece that failed, or 0 */
} tally_pg_stored_votes_info_t;

/**
 * @brief Create TALLY_PG_STORED_VOTES in this session (a temporary view over the votes
 * table and a temporary table for the journalled votes). Call with no transaction open:
 * a READ ONLY transaction begun afterwards may still fill the temporary table.
 * @returns 0, or a tally error with errstr set.
 */
int tally_pg_stored_votes_open(PGconn *conn, char *errstr, size_t errstr_size);

/**
 * @brief Unpack every journal piece into TALLY_PG_STORED_VOTES, checking each decodes, in
 * the caller's transaction (the same snapshot as the queries that read it: a piece moved
 * meanwhile is seen exactly once).
 * @param info receives the counts, and on TALLY_ECORRUPT the piece that failed.
 * @returns 0, or a tally error with errstr set (TALLY_ECORRUPT: a piece that cannot be
 *          decoded; what was unpacked before it stays).
 */
int tally_pg_stored_votes_fill(PGconn *conn, tally_pg_stored_votes_info_t *info,
                               char *errstr, size_t errstr_size);

#endif /* TALLY_PG_JOURNAL_H */

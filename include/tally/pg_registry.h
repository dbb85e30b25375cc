/**
 * @file pg_registry.h
 * @brief The registry in PostgreSQL: bulk store with COPY, and load into a tally_registry.
 *
 * Storing streams rows to the server with COPY ... FROM STDIN in text format: each value is
 * escaped for COPY (backslash, tab, newline and carriage return) and NULL is sent as \N, so
 * no value is ever spliced into SQL text. One copy is one statement: if any row of the batch
 * is refused by the server (a foreign key, a check, a duplicate key, a malformed uuid or
 * date), nothing of the batch is stored.
 *
 * Loading streams parties, candidates and voters back with COPY (SELECT ...) TO STDOUT, one
 * row in memory at a time, inside one REPEATABLE READ READ ONLY transaction (unless the
 * caller already has one open), so the three tables are read from one snapshot.
 *
 * The row structs carry the original system's column names (FORMATS.md). Strings are UTF-8;
 * these functions set the connection's client_encoding to UTF8.
 *
 * DESIGN (threads): a PGconn, and a copy on it, belong to one thread at a time; nothing
 * here keeps global state.
 */
#ifndef TALLY_PG_REGISTRY_H
#define TALLY_PG_REGISTRY_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include <tally/gen.h>
#include <tally/registry.h>

/** The tables a copy can fill. */
typedef enum tally_pg_table {
	TALLY_PG_PARTIES = 0,
	TALLY_PG_CANDIDATES,
	TALLY_PG_VOTERS,
	TALLY_PG_CONTESTS,          /**< contests, then TALLY_PG_CONTEST_REGIONS */
	TALLY_PG_CONTEST_REGIONS,
} tally_pg_table_t;

/** A contests row (include/tally/registry.h, contests). */
typedef struct tally_pg_contest_row {
	const char *contest_id;          /**< 1 .. 63 bytes, not "national" */
	const char *contest_name;
	const char *level;               /**< not "national" */
} tally_pg_contest_row_t;

/** A contest_regions row: the contest's position-th region. */
typedef struct tally_pg_contest_region_row {
	const char *contest_id;
	const char *level;               /**< the contest's */
	int position;
	const char *region;
} tally_pg_contest_region_row_t;

/** An integer column left NULL. */
#define TALLY_PG_NULL_INT INT_MIN

/** A parties row. */
typedef struct tally_pg_party_row {
	const char *party_affiliation;   /**< the party's name (1 .. 255 bytes) */
} tally_pg_party_row_t;

/** A candidates row: the original table's columns. NULL pointers are stored as NULL. */
typedef struct tally_pg_candidate_row {
	const char *candidate_id;        /**< uuid text */
	const char *candidate_name;
	const char *party_affiliation;   /**< must name a stored party */
	const char *biography;
	const char *campaign_platform;
	const char *photo_url;
	const char *contest_id;          /**< NULL: the national race (contest 0) */
} tally_pg_candidate_row_t;

/**
 * A voters row: every column of the original voters table (region is generated from
 * address_state by the server). NULL pointers are stored as NULL.
 */
typedef struct tally_pg_voter_row {
	const char *voter_id;            /**< uuid text */
	const char *voter_name;
	const char *date_of_birth;       /**< "YYYY-MM-DD", 1900-01-01 .. 2079-06-05 */
	const char *gender;
	const char *nationality;
	const char *registration_number; /**< at most 63 bytes */
	const char *address_street;
	const char *address_city;
	const char *address_state;       /**< the region; required */
	const char *address_country;
	const char *address_postcode;
	const char *email;
	const char *phone_number;
	const char *cell_number;
	const char *picture;
	int registered_age;              /**< years since registration, or TALLY_PG_NULL_INT */
} tally_pg_voter_row_t;

/** A COPY into one table in progress. */
typedef struct tally_pg_copy tally_pg_copy_t;

/**
 * @brief Fill a candidates row from a generated candidate.
 * @note The row points into c (and so lives as long as its generator). Thread-safe.
 */
void tally_pg_candidate_row_from_gen(const tally_gen_candidate_t *c, tally_pg_candidate_row_t *row);

/**
 * @brief Fill a voters row from a generated voter.
 * @note The row points into v: keep v alive and unchanged until the row is copied.
 *       Thread-safe.
 */
void tally_pg_voter_row_from_gen(const tally_gen_voter_t *v, tally_pg_voter_row_t *row);

/**
 * @brief Start a COPY ... FROM STDIN into one table (which) on conn.
 * Until tally_pg_copy_end() or tally_pg_copy_abort(), conn must be used for nothing else.
 * Sets the connection's client_encoding to UTF8.
 * @returns a copy the caller ends with tally_pg_copy_end() or tally_pg_copy_abort() (which
 *          free it), or NULL with errstr set (the server's refusal, first line).
 * @note Not thread-safe for one conn.
 */
tally_pg_copy_t *tally_pg_copy_begin(PGconn *conn, tally_pg_table_t which, char *errstr,
                                     size_t errstr_size);

/**
 * @brief Add a row to a copy begun on TALLY_PG_PARTIES. The values are copied at once; rows
 *        are sent in blocks of 64 KiB.
 * @returns 0; TALLY_EINVAL if the copy is for another table; TALLY_ENOMEM; TALLY_EIO if
 *          sending failed (the server may have refused the batch already). After an error the copy is failed: further
 *          rows are ignored and tally_pg_copy_end() reports the first error.
 * @note Not thread-safe for one copy.
 */
int tally_pg_copy_party(tally_pg_copy_t *copy, const tally_pg_party_row_t *row);

/**
 * @brief Add a row to a copy begun on TALLY_PG_CANDIDATES; as tally_pg_copy_party().
 * @returns 0 or a tally error, as tally_pg_copy_party().
 * @note Not thread-safe for one copy.
 */
int tally_pg_copy_candidate(tally_pg_copy_t *copy, const tally_pg_candidate_row_t *row);

/** @brief Add a row to a copy begun on TALLY_PG_CONTESTS; as tally_pg_copy_party(). */
int tally_pg_copy_contest(tally_pg_copy_t *copy, const tally_pg_contest_row_t *row);

/** @brief Add a row to a copy begun on TALLY_PG_CONTEST_REGIONS; as tally_pg_copy_party(). */
int tally_pg_copy_contest_region(tally_pg_copy_t *copy, const tally_pg_contest_region_row_t *row);

/**
 * @brief Add a row to a copy begun on TALLY_PG_VOTERS; as tally_pg_copy_party().
 * @returns 0 or a tally error, as tally_pg_copy_party().
 * @note Not thread-safe for one copy.
 */
int tally_pg_copy_voter(tally_pg_copy_t *copy, const tally_pg_voter_row_t *row);

/**
 * @brief Finish the copy: send what is buffered, end the COPY and wait for the server.
 * Frees copy, whatever the outcome. NULL is a no-op that returns TALLY_EINVAL.
 * @param rows if not NULL, receives the rows the server stored (0 on failure).
 * @returns 0, or the tally error of the first failure with errstr set: a server refusal
 *          maps its SQLSTATE (tally_pg_err(): a foreign key gives TALLY_ENOENT, a
 *          duplicate key TALLY_EEXISTS, a check or bad value TALLY_EINVAL) and errstr holds
 *          `could not copy into "TABLE": MESSAGE (row N)`, the server's message first line
 *          and the row it names. On failure nothing of the batch is stored.
 * @note Not thread-safe for one copy.
 */
int tally_pg_copy_end(tally_pg_copy_t *copy, uint64_t *rows, char *errstr, size_t errstr_size);

/**
 * @brief Abandon the copy: the server stores nothing of it. Frees copy; NULL is a no-op.
 * Afterwards conn is ready for other commands.
 * @returns nothing: the batch is dropped whatever happens.
 * @note Not thread-safe for one copy.
 */
void tally_pg_copy_abort(tally_pg_copy_t *copy);

/**
 * @brief The number of rows in voters, to size a registry (tally_registry_opts_t's
 *        expected_voters) before tally_pg_registry_load().
 * @returns the count (>= 0), or a negative tally error (tally_pg_err()).
 * @note Not thread-safe for one conn.
 */
int64_t tally_pg_voter_count(PGconn *conn);

/**
 * @brief About how many voters are stored, for sizing a registry: the planner's estimate
 * when the table has been analysed, else tally_pg_voter_count().
 */
int64_t tally_pg_voter_estimate(PGconn *conn);

/**
 * @brief Register every party, candidate (with its party) and voter stored in conn's
 *        database into reg, in that order: parties and candidates by registration time,
 *        then name or id; voters in the server's order.
 *
 * Reads one snapshot (a REPEATABLE READ READ ONLY transaction, committed before return,
 * unless the caller has a transaction open: then it reads inside it). Streams with COPY TO
 * STDOUT: memory use is one row plus what reg keeps. Stops at the first row reg refuses
 * (then the counts tell how far it got; what was registered stays registered).
 * reg should be fresh: a party or candidate it already holds is refused as a duplicate.
 *
 * @param parties, candidates, voters if not NULL, receive how many of each were registered.
 * @returns 0; or with errstr set: a refusal as `could not register voters row N: REFUSAL`
 *          (N counts rows from 1, REFUSAL is tally_refusal_name(); no personal data) with
 *          TALLY_EEXISTS (duplicate), TALLY_ENOENT (unknown party), TALLY_EFULL
 *          (a capacity of reg) or TALLY_EINVAL (a value reg does not accept); a row the
 *          server gave that cannot be read, TALLY_EFORMAT; a server error, tally_pg_err().
 * @note reg's writer side: the caller serialises it with other registrations, as for
 *       tally_registry_add_*(); readers of reg may run concurrently. Not thread-safe for
 *       one conn.
 */
int tally_pg_registry_load(PGconn *conn, tally_registry_t *reg, uint64_t *parties,
                           uint64_t *candidates, uint64_t *voters, char *errstr,
                           size_t errstr_size);

/** A stream of full voters rows being read (tally_pg_voter_reader_open()). */
typedef struct tally_pg_voter_reader tally_pg_voter_reader_t;

/**
 * @brief Start reading every voters row, all the original columns, with one fixed
 *        COPY (SELECT ...) TO STDOUT in the server's order (no ORDER BY: a 10 M row table is
 *        not sorted for this). One row is in memory at a time.
 *
 * The caller chooses the snapshot: inside its own REPEATABLE READ transaction the rows are
 * those of that snapshot. Sets the connection's client_encoding to UTF8. Until
 * tally_pg_voter_reader_close(), conn must be used for nothing else.
 * @returns a reader, or NULL with errstr set (`could not read "voters": reason`).
 * @note Not thread-safe for one conn.
 */
tally_pg_voter_reader_t *tally_pg_voter_reader_open(PGconn *conn, char *errstr,
                                                    size_t errstr_size);

/**
 * @brief The next row. Its strings (NULL for a NULL column; registered_age
 *        TALLY_PG_NULL_INT when NULL) point into the reader and stay valid until the next
 *        call or close. date_of_birth is "YYYY-MM-DD" whatever the server's DateStyle; if
 *        dob_days is not NULL it receives the same date as days since 1970-01-01.
 * @returns 1 with *row filled; 0 at the end (the COPY finished well); or a negative tally
 *          error with errstr set (`could not read voters row N: reason`, never any of the
 *          row's values). After 0 or an error, further calls return the same.
 */
int tally_pg_voter_reader_next(tally_pg_voter_reader_t *rd, tally_pg_voter_row_t *row,
                               int32_t *dob_days, char *errstr, size_t errstr_size);

/** @brief Rows returned so far. */
uint64_t tally_pg_voter_reader_rows(const tally_pg_voter_reader_t *rd);

/**
 * @brief Stop reading and free the reader; NULL is a no-op. If the COPY was not read to its
 *        end, a cancel request is sent and the rest is drained, so closing early is quick;
 *        the cancel may then still reach the server after this returns, so finish the
 *        connection (PQfinish) instead of reusing it. A transaction the caller holds is
 *        left as it is (aborted, if the cancel reached the COPY).
 */
void tally_pg_voter_reader_close(tally_pg_voter_reader_t *rd);

/**
 * @brief Copy the original system's tables (FORMATS.md: candidates and voters with text
 * ids and text dates, no parties table) from another schema of the same database into
 * tally's tables, in the caller's transaction: parties from the candidates'
 * party_affiliation, then candidates, then voters (date_of_birth's first 10 characters as
 * a date, so "1990-05-17T10:11:12.345Z" from the Random User API works too).
 * @param schema the source schema's name (quoted as an identifier by libpq).
 * @returns 0 with the rows inserted in *parties, *candidates, *voters (any may be NULL);
 *          or a tally error with errstr set (`could not import voters: invalid input syntax
 *          for type uuid ...`): the caller rolls back.
 */
int tally_pg_import_original(PGconn *conn, const char *schema, uint64_t *parties,
                             uint64_t *candidates, uint64_t *voters, char *errstr,
                             size_t errstr_size);

#endif /* TALLY_PG_REGISTRY_H */

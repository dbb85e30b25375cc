/**
 * @file pg_checkpoint.h
 * @brief Checkpoints in PostgreSQL: the accepted votes, the core's state and each source
 *        partition's next offset, written in one transaction, and read back on start.
 *
 * A checkpoint is an exact cut: the votes it adds are every vote accepted since the
 * previous checkpoint, the state counts exactly the votes stored so far, and the offsets
 * say where reading resumes. Because all three commit together, a crash at any instant
 * leaves the database at one cut or the next, never between: restarting from it loses
 * nothing and counts nothing twice.
 *
 * With parts (several instances in one consumer group, store.h), a checkpoint stores one
 * state per home partition instead of the election's one: each partition has an owner row
 * (partition_owners: owner, epoch) and a state row (partition_states). Claiming a partition
 * bumps its epoch; a checkpoint with parts first locks its partitions' owner rows and is
 * refused (TALLY_EFENCED, nothing written) unless every one still names its writer at the
 * part's epoch. Locks are always taken in ascending partition order (claims and
 * checkpoints alike), so two instances never deadlock on them.
 *
 * Every statement is fixed or parameterised; votes go in with binary COPY.
 */
#ifndef TALLY_PG_CHECKPOINT_H
#define TALLY_PG_CHECKPOINT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include <tally/core.h>
#include <tally/pg_types.h>
#include <tally/uuid.h>

/** What one checkpoint writes. */
typedef struct tally_pg_checkpoint {
	const char *election_id;
	const char *topic;                 /**< the source topic the offsets are for */
	const char *owner;                 /**< the writer, e.g. "tallyd@host:pid" */
	int64_t generation;                /**< the writer's assignment generation */
	uint64_t version;                  /**< the core's snapshot version at the cut */
	const tally_pg_vote_row_t *votes;  /**< accepted since the previous checkpoint */
	size_t nvotes;
	bool journal;                      /**< store the votes in the vote journal
	                                        (pg_journal.h), not the votes table */
	const void *state;                 /**< tally_state_export() bytes */
	size_t state_len;
	const tally_pg_offset_t *offsets;  /**< every partition the writer has read from */
	size_t noffsets;
	const char *dl_topic;              /**< NULL, or a second topic whose offsets are
	                                        stored alongside: the dead-letter topic */
	const tally_pg_offset_t *dl_offsets; /**< its partitions' offsets (see tallyd) */
	size_t ndl_offsets;
	bool set_status;                   /**< also record status in the elections row */
	tally_election_status_t status;
	const tally_pg_part_t *parts;      /**< > 0 of them: the fenced per-partition form
	                                        (state is then not stored; see above) */
	size_t nparts;
	int64_t *xact;                     /**< with parts, if not NULL: set to 0 when a write
	                                        begins, to its transaction's id just before
	                                        its COMMIT (for tally_pg_checkpoint_committed) */
} tally_pg_checkpoint_t;

/** The channel a checkpoint with parts notifies at its commit, the election id as payload. */
#define TALLY_PG_PARTS_CHANNEL "tally_parts"

/** Checkpoints kept per election; older ones are deleted as new ones commit. */
#define TALLY_PG_CHECKPOINTS_KEPT 20

/**
 * @brief Write a checkpoint in one transaction: COPY the votes (or, with ckpt->journal,
 * append them to the vote journal), insert the state, upsert the offsets, prune old
 * checkpoints.
 *
 * With parts (nparts > 0): first lock every part's owner row (SELECT ... FOR UPDATE, in
 * ascending partition order) and check it names ckpt->owner at the part's epoch; then the
 * votes, each part's row of partition_states (upserted), the offsets (upserted: only the
 * partitions given, never deleting another's), the status, and NOTIFY
 * TALLY_PG_PARTS_CHANNEL with the election id; no checkpoints row. Every source offset must
 * be of a partition among the parts, and no partition may come twice (else TALLY_EINVAL,
 * before anything is sent).
 *
 * If the outcome of a previous attempt is unknown (the connection broke during COMMIT),
 * call tally_pg_checkpoint_committed() first: writing the same votes twice fails on the
 * votes' primary key (TALLY_EEXISTS) rather than count them twice.
 *
 * @returns 0; or a tally error with errstr set: tally_pg_err() of the failing statement
 *          (TALLY_EIO when the connection is lost: reconnect and retry); TALLY_EFENCED with
 *          errstr `fenced: partition P of "TOPIC" is owned by "OWNER" at epoch E, not
 *          "WRITER" at epoch E'` (not to be retried). On error the transaction is rolled
 *          back if the connection still works.
 */
int tally_pg_checkpoint_write(PGconn *conn, const tally_pg_checkpoint_t *ckpt, char *errstr,
                              size_t errstr_size);

/**
 * @brief Whether the checkpoint ckpt describes is the one committed last: the newest
 * checkpoint of its election has its version and state bytes. With parts and ckpt->xact:
 * whether the transaction *xact names committed (txid_status(): exact even when another
 * owner has overwritten the parts since; 0 if the write never came to its COMMIT, and
 * TALLY_EAGAIN while that transaction is still in progress); with parts and no xact:
 * whether every part's stored row has its epoch, version and state bytes.
 * @returns 1 yes, 0 no, or a tally error with errstr set.
 */
int tally_pg_checkpoint_committed(PGconn *conn, const tally_pg_checkpoint_t *ckpt,
                                  char *errstr, size_t errstr_size);

/**
 * @brief The newest checkpoint's state for an election.
 * @param state receives a malloc'd copy (caller frees) or NULL when there is none.
 * @returns 0 (also when there is none: *state NULL), or a tally error with errstr set.
 */
int tally_pg_checkpoint_latest(PGconn *conn, const char *election_id, void **state,
                               size_t *state_len, uint64_t *version, char *errstr,
                               size_t errstr_size);

/**
 * @brief Claim partitions of topic for owner, in one transaction: each owner row is
 * inserted (epoch 1) or taken over (epoch + 1), which fences off any previous owner; then,
 * in a snapshot taken after those rows are locked (so a cut of the previous owner that
 * committed meanwhile is seen), each partition's stored state and topic's next offset.
 * @param partitions n distinct partitions (>= 0), in any order.
 * @param out n entries, out[i] for partitions[i]; each state malloc'd (caller frees) or
 *        NULL. On error nothing is left to free.
 * @returns 0; TALLY_EINVAL (a negative or repeated partition, errstr says which, nothing
 *          sent), or the failing statement's tally error with errstr set (rolled back).
 */
int tally_pg_partitions_claim(PGconn *conn, const char *election_id, const char *topic,
                              const char *owner, const int32_t *partitions, size_t n,
                              tally_pg_claimed_t *out, char *errstr, size_t errstr_size);

/**
 * @brief Every stored partition state of an election's topic, in one statement, ascending
 * by partition.
 * @param parts receives a malloc'd array (tally_pg_parts_free(); NULL when there is none).
 * @returns 0, or a tally error with errstr set (*parts NULL).
 */
int tally_pg_parts_read(PGconn *conn, const char *election_id, const char *topic,
                        tally_pg_part_t **parts, size_t *n, char *errstr, size_t errstr_size);

/** @brief Free an array of n parts and each part's state. NULL is a no-op. */
void tally_pg_parts_free(tally_pg_part_t *parts, size_t n);

/**
 * @brief The stored next offset of each partition of topic, for an election.
 * @param offsets caller's array of n entries, filled with -1 first; offsets[p] is set for
 *        each stored partition p < n.
 * @returns how many partitions had a stored offset (>= 0), or a tally error.
 */
int tally_pg_offsets_load(PGconn *conn, const char *election_id, const char *topic,
                          int64_t *offsets, int n, char *errstr, size_t errstr_size);

/**
 * @brief Read the voter_id of every stored vote (the core's voted set is not in the
 * checkpointed state: the stored votes are its durable form), to mark them voted with
 * tally_core_mark_voted() once the registry is loaded: the votes table by binary COPY (16
 * bytes per vote) and the vote journal's pieces, in one REPEATABLE READ snapshot when the
 * connection is idle.
 * @param ids receives a malloc'd array (caller frees; NULL when there are none).
 * @returns 0, or a tally error with errstr set.
 */
int tally_pg_votes_voters(PGconn *conn, tally_uuid_t **ids, size_t *n, char *errstr,
                          size_t errstr_size);

/**
 * @brief Read an election's row.
 * @returns 0, TALLY_ENOENT if there is none (errstr says so), or another tally error.
 */
int tally_pg_election_get(PGconn *conn, const char *election_id, tally_election_t *out,
                          char *errstr, size_t errstr_size);

/**
 * @brief Insert an election's row (scheduled) unless one with that id exists; an existing row
 *        must have the same window.
 * @param opens_at, closes_at UTC seconds.
 * @returns 0 (inserted or already there with that window), TALLY_EEXISTS if the row has
 *          another window (errstr says so), or another tally error.
 */
int tally_pg_election_ensure(PGconn *conn, const char *election_id, int64_t opens_at,
                             int64_t closes_at, char *errstr, size_t errstr_size);

/**
 * @brief Record an election's status (as tallyd opens or closes it).
 * @returns 0, or a tally error with errstr set.
 */
int tally_pg_election_set_status(PGconn *conn, const char *election_id,
                                 tally_election_status_t status, char *errstr,
                                 size_t errstr_size);

#endif /* TALLY_PG_CHECKPOINT_H */

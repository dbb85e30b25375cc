/**
 * @file store.h
 * @brief The durable store: everything a server keeps in PostgreSQL, behind one opaque
 *        handle (adapters/postgres/store.c).
 *
 * The store owns its connections, its threads and its one retry policy (connect with a
 * timeout; on failure back off 100 ms doubling to 2 s, log once, and log "postgres is
 * back" when it works again). Callers never see a PGconn, a SQL statement, the vote
 * journal or a registry image: they restore, hand over cuts, store registrations and read
 * figures.
 *
 * DESIGN
 * - Restore (tally_store_restore(), the caller's thread, before anything is started):
 *   migrations, the election row, the registry (from a registry image when one is
 *   complete for the stored generation, else every voters row; a damaged image is logged,
 *   deleted and read past) while a second connection reads the stored votes' voters (the
 *   votes table and the vote journal, one snapshot), the newest checkpoint's state and
 *   the journal's size. Offsets of any topic and the election's status are read and
 *   written on the same (main) connection, from the same one thread.
 * - The writer (thread tally:ckpt, own connection): one cut at a time. The caller's
 *   thread hands a cut over with tally_store_commit(), which never waits; the writer
 *   calls the prepare hook (e.g. the app writes the cut's dead letters and returns the
 *   dead-letter topic's offsets to store with it), then writes the cut's votes (by COPY,
 *   or packed into the vote journal above journal_above votes), state, source offsets,
 *   the extra offsets and, when it changed, the election's status in one transaction,
 *   retrying while PostgreSQL is away (an uncertain COMMIT is checked before trying
 *   again); then it calls the committed hook (e.g. the app publishes the cut's results:
 *   published means committed) and only then is idle again.
 * - The mover (thread tally:mover, own connection): moves journalled votes into the votes
 *   table, a piece per transaction, only while the caller says reading has caught up
 *   (tally_store_set_caught_up()).
 * - The image writer (thread tally:imager, own connection, nice 10): started by
 *   tally_store_start() only after a restore that read every voters row; it writes the
 *   registry image for the next start part by part, only while caught up, 1 s after
 *   catching up first. It only reads the registry (lock-free).
 * - Registrations (tally_store_registrations_write(), one caller thread, own connection):
 *   new registrations and their topics' offsets in one transaction, retried until stored.
 * - Figures (tally_store_stats()): relaxed atomics written by the store's threads, read by
 *   any thread.
 * Every thread is started with tally_thread_start() (named, every signal blocked) and
 * stopped flag, wake, join, log.
 *
 * Several instances in one consumer group (each counting the home partitions of opts.topic
 * Kafka assigns it; single-instance mode, cuts without parts, is all of the above as it is):
 * - Claims (tally_store_claim(), the caller's thread, the main connection and the retry
 *   policy, waiting while PostgreSQL is away until opts.cancel says stop): one transaction
 *   per call takes each partition for opts.owner, epoch = the stored epoch + 1 (1 at first),
 *   then reads its stored state and opts.topic's next offset in a snapshot taken after its
 *   owner rows are locked. The new epoch fences off every earlier owner, this instance's own
 *   earlier claims included.
 * - Fenced cuts (a cut with nparts > 0, the writer as above, in the cut's one transaction):
 *   the parts' owner rows are locked (SELECT ... FOR UPDATE, ascending, as claims lock
 *   them) and each must name opts.owner at the part's epoch; else the cut is refused, rolled
 *   back with nothing of it stored (not retried), and hooks.refused gets TALLY_EFENCED (the
 *   log says `fenced: partition P of "TOPIC" is owned by "OWNER" at epoch E, not "OWNER'" at
 *   epoch E'`). Otherwise: the votes, each part's state (partition_states, upserted), the
 *   cut's own offsets (upserted, never another partition's: other instances own them; each
 *   must be of a partition among the parts), the extra offsets and the status, and
 *   pg_notify('tally_parts', election id), delivered at the commit. No checkpoints row
 *   (cut.state is not stored and may be NULL). A claim waits for a cut in flight on its
 *   rows and then reads what it stored; a cut after a claim sees the new epoch.
 * - The watcher (tally_store_watch_start(), thread tally:watch, own connection): LISTENs on
 *   tally_parts, and at start, on each notification for its election and at least every
 *   interval_ms, reads every partition's state of the election's opts.topic in one query;
 *   w->parts is called (on its thread) at the first read and after a read that differs
 *   (a partition, epoch, version or state byte) from the one before. It also says whether
 *   this store leads the election's results (one publisher): the leader is the owner
 *   (opts.owner) of the election's lowest-numbered claimed partition of opts.topic in
 *   partition_owners, read in each round before the states (claims notify too). So the
 *   leadership moves with that partition: an instance that stopped or lost its machine
 *   stops leading when another claims it (after the consumer group's session timeout), not
 *   when PostgreSQL notices its connection is gone. w->leader is called on its thread
 *   whenever that changes, after the round's w->parts: true after a round that found this
 *   store the owner, false after one that did not, when its connection is lost, and at
 *   stop. Two stores may both believe they lead for up to a round: the caller fences (e.g.
 *   tallyd's transactional results producer).
 */
#ifndef TALLY_STORE_H
#define TALLY_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <tally/core.h>
#include <tally/pg_types.h>
#include <tally/registry.h>
#include <tally/uuid.h>

typedef struct tally_store tally_store_t;

/** One cut: what one checkpoint stores. Every pointer is malloc'd; the store frees it. */
typedef struct tally_store_cut {
	tally_pg_vote_row_t *votes;        /**< accepted since the previous cut */
	size_t nvotes;
	void *state;                       /**< tally_state_export() bytes */
	size_t state_len;
	tally_pg_offset_t *offsets;        /**< next offset of each source partition read */
	size_t noffsets;
	tally_pg_part_t *parts;            /**< nparts > 0: one state per home partition, the
	                                        cut fenced by each part's epoch (DESIGN); the
	                                        array and each part's state and forward
	                                        malloc'd, the store frees them. 0: the
	                                        election's one state */
	size_t nparts;
	uint64_t version;                  /**< the snapshot version of the cut */
	int64_t generation;                /**< the caller's assignment generation */
	tally_election_status_t status;    /**< the election's status in the state */
	uint64_t cut_ns;                   /**< tally_mono_ns() of the cut */
	void *app;                         /**< the caller's, handed to the hooks (the store
	                                        never reads it; the release hook frees it) */
} tally_store_cut_t;

/** The caller's side of the writer, every hook called on the writer's thread. */
typedef struct tally_store_hooks {
	/** Before the cut is written (once per cut): may fill *extra (malloc'd, the store
	 *  frees it) with offsets of opts.extra_topic to store with the cut. Non-zero: the cut
	 *  is not written (give it up: the store then calls release). May be NULL. */
	int (*prepare)(void *arg, tally_store_cut_t *cut, tally_pg_offset_t **extra,
	               size_t *nextra);
	/** After the cut committed. Returns when to call timer (tally_mono_ns(); 0: never). */
	uint64_t (*committed)(void *arg, tally_store_cut_t *cut);
	/** When the time committed (or timer) asked for has come, or once at stop if still
	 *  pending (sooner cuts go first). Returns the next time, or 0. May be NULL. */
	uint64_t (*timer)(void *arg);
	/** The cut was refused by PostgreSQL (not unreachable: e.g. a constraint; or
	 *  TALLY_EFENCED: a part's partition has been claimed by another since), logged;
	 *  nothing is retried, nothing of the cut is stored. May be NULL. */
	void (*refused)(void *arg, int rc);
	/** Frees cut->app (whatever happened to the cut). May be NULL. */
	void (*release)(void *arg, void *app);
	void *arg;
} tally_store_hooks_t;

/** How to reach PostgreSQL and what to store. Strings must outlive the store. */
typedef struct tally_store_opts {
	const char *dsn;                   /**< conninfo or URI ("" : libpq's defaults) */
	const tally_pg_param_t *params;    /**< extra libpq keywords (pg.* settings) */
	size_t nparams;
	const char *election_id;
	const char *topic;                 /**< the source topic the cuts' offsets are for */
	const char *extra_topic;           /**< the topic of the prepare hook's offsets, or NULL */
	const char *owner;                 /**< the writer, e.g. "tallyd@host:pid"; with parts,
	                                        the claiming instance */
	size_t journal_above;              /**< a cut of more votes goes to the vote journal */
	unsigned image_delay_ms;           /**< the image writer starts this long after
	                                        catching up */
	/** One log line (no newline, no personal data); any thread. */
	void (*log)(void *arg, const char *line);
	void *log_arg;
	/** Polled while the restore or a claim waits for PostgreSQL: true gives up. May be
	 *  NULL. */
	bool (*cancel)(void *arg);
	void *cancel_arg;
} tally_store_opts_t;

/** What tally_store_restore() read. */
typedef struct tally_store_restored {
	tally_registry_t *reg;             /**< the registry (caller destroys) */
	tally_election_t election;
	void *state;                       /**< newest checkpoint's state (caller frees), or NULL */
	size_t state_len;
	uint64_t version;
	tally_uuid_t *voted;               /**< every stored vote's voter (caller frees) */
	size_t nvoted;
	uint64_t parties, candidates, voters;
	double registry_s, voted_s;        /**< reading the registry; the voters, alongside */
	char how[160];                     /**< which way the registry came, for the log */
} tally_store_restored_t;

/** Figures, read with relaxed loads (any thread). */
typedef struct tally_store_stats {
	uint64_t checkpoints;              /**< cuts committed */
	uint64_t checkpoint_failures;      /**< attempts that failed (retried) */
	uint64_t checkpointed_votes;       /**< votes stored by cuts since start */
	uint64_t last_checkpoint_ns;       /**< tally_mono_ns() of the last commit, 0: none */
	uint64_t last_checkpoint_ms;       /**< from its cut to its commit */
	bool postgres_up;                  /**< the last attempt reached PostgreSQL */
	uint64_t postgres_down_since;      /**< tally_mono_ns() of the first failure in a row */
	int64_t journal_votes;             /**< stored votes in the journal, not yet moved */
	uint64_t moved_votes;              /**< moved from the journal since start */
	uint64_t fenced;                   /**< cuts refused with TALLY_EFENCED */
} tally_store_stats_t;

/** What claiming a partition read (tally_store_claim()). */
typedef tally_pg_claimed_t tally_store_claimed_t;

/** The watcher's side of the caller, both called on the watcher's thread. */
typedef struct tally_store_watch {
	/** Every stored partition state of the election's opts.topic, ascending by partition
	 *  (parts and their bytes valid only during the call): after the first read, then
	 *  only when a read differs from the one before. May be NULL. */
	void (*parts)(void *arg, const tally_pg_part_t *parts, size_t n);
	/** This store now is (true) or no longer is (false) the election's one results
	 *  publisher. May be NULL. */
	void (*leader)(void *arg, bool is_leader);
	void *arg;
	unsigned interval_ms;              /**< read at least this often, notified or not
	                                        (0: 1000) */
	bool every_round;                  /**< call parts after every read, changed or not
	                                        (e.g. to retry a state not taken in, or to
	                                        show what changed beside the parts) */
} tally_store_watch_t;

/**
 * @brief Check extra libpq keywords (pg.* settings) without connecting.
 * @returns 0, or TALLY_ECONFIG with errstr naming the first one libpq does not know.
 */
int tally_store_check_params(const tally_pg_param_t *params, size_t nparams, char *errstr,
                             size_t errstr_size);

/**
 * @brief A store (no connection yet). Copies nothing: opts' strings must outlive it.
 * @returns the store (tally_store_destroy()), or NULL with errstr set (a bad pg.* keyword).
 */
tally_store_t *tally_store_new(const tally_store_opts_t *opts, char *errstr,
                               size_t errstr_size);

/**
 * @brief Restore: waits for PostgreSQL (logging why, until opts.cancel says stop), applies
 * the migrations, reads the election row, the registry (sized by ro, expected_voters from
 * PostgreSQL's estimate when 0) with the stored votes' voters read alongside on a second
 * connection, and the newest checkpoint. Logs how many stored votes wait in the journal.
 * @param out receives what was read; the caller owns out->reg, ->state and ->voted.
 * @returns 0, or a tally error with errstr set (out holds nothing to free).
 * @note The caller's thread, once, before tally_store_start().
 */
int tally_store_restore(tally_store_t *st, const tally_registry_opts_t *ro,
                        tally_store_restored_t *out, char *errstr, size_t errstr_size);

/**
 * @brief The stored next offset of each partition of topic (the election's).
 * @param offsets n entries, set to -1 first.
 * @returns how many partitions had one (>= 0), or a tally error with errstr set.
 * @note After tally_store_restore(), from the thread that restored.
 */
int tally_store_offsets(tally_store_t *st, const char *topic, int64_t *offsets, int n,
                        char *errstr, size_t errstr_size);

/**
 * @brief Record the election's status in its row now (e.g. opening it at start); later
 * changes go with the cuts. Same thread as tally_store_offsets().
 * @returns 0, or a tally error with errstr set.
 */
int tally_store_election_set_status(tally_store_t *st, tally_election_status_t status,
                                    char *errstr, size_t errstr_size);

/**
 * @brief Claim home partitions of opts.topic for opts.owner (Kafka assigned them), in one
 * transaction: each epoch becomes the stored one + 1 (1 at first), which fences off every
 * earlier owner; then each partition's stored state and next offset are read (DESIGN).
 * Waits while PostgreSQL is away (logged once, the store's retry policy) until
 * opts.cancel says stop.
 * @param partitions n distinct partitions (>= 0).
 * @param out n entries: out[i] for partitions[i]: its epoch (for the cuts' parts), the
 *        stored state (malloc'd, the caller frees; NULL and version 0 when none) and the
 *        stored next offset of opts.topic (-1 when none).
 * @returns 0; TALLY_EINVAL (a negative or repeated partition), another refusal (e.g.
 *          TALLY_ENOENT: no such election), or TALLY_EIO when cancelled, with errstr set
 *          (out then holds nothing to free).
 * @note The thread that restored (the main connection), after tally_store_restore().
 */
int tally_store_claim(tally_store_t *st, const int32_t *partitions, size_t n,
                      tally_store_claimed_t *out, char *errstr, size_t errstr_size);

/**
 * @brief Start the watcher (thread tally:watch, own connection; DESIGN): the election's
 * partition states to w->parts, the results leadership to w->leader. Copies *w.
 * @returns 0; TALLY_ESTATE if it is running already, or a tally error with errstr set
 *          (the thread could not start).
 * @note The caller's thread. Needs no restore of this store, but a migrated schema (e.g.
 *       by another store's restore); until then, and while PostgreSQL is away, the watcher
 *       retries (the store's policy, logged once).
 */
int tally_store_watch_start(tally_store_t *st, const tally_store_watch_t *w, char *errstr,
                            size_t errstr_size);

/** @brief The watcher's rounds done so far (any thread): a round that ends after a call
 *  began read the parts after it. */
uint64_t tally_store_watch_rounds(const tally_store_t *st);

/** @brief Stop the watcher: flag, wake, join, log; w->leader(false) first if it led.
 * Idempotent; tally_store_stop() does it too. */
void tally_store_watch_stop(tally_store_t *st);

/**
 * @brief Start the writer (tally:ckpt), the mover (tally:mover; if it cannot start, the
 * journal waits for the next start, logged) and, after a restore that read every voters
 * row, the image writer (tally:imager) of reg (which must outlive the store's threads).
 * @returns 0, or a tally error with errstr set (the writer could not start).
 */
int tally_store_start(tally_store_t *st, const tally_store_hooks_t *hooks,
                      const tally_registry_t *reg, char *errstr, size_t errstr_size);

/**
 * @brief Hand one cut to the writer, without waiting. The store owns *cut's buffers from
 * here (and frees them and calls hooks.release when done with it).
 * @returns 0; TALLY_EAGAIN while the previous cut is being written (nothing taken).
 * @note One caller thread.
 */
int tally_store_commit(tally_store_t *st, const tally_store_cut_t *cut);

/** @brief Whether the writer has no cut in hand (any thread). */
bool tally_store_idle(const tally_store_t *st);

/** @brief Whether reading has caught up with the source (the mover and the image writer
 * work only then). Any thread. */
void tally_store_set_caught_up(tally_store_t *st, bool caught_up);

/** @brief Whether the writer has been told to give up (prepare hooks that wait poll it). */
bool tally_store_abandoning(const tally_store_t *st);

/** @brief Stop the mover (after the piece in hand) and the image writer (between two
 * parts; an unfinished image is deleted): flag, join, log. Idempotent. */
void tally_store_stop_background(tally_store_t *st);

/** @brief Tell the writer to give up the cut in hand if PostgreSQL is away (it stops
 * retrying), without waiting. */
void tally_store_abandon(tally_store_t *st);

/** @brief Stop every thread of the store: the writer after the cut in hand (unless
 * abandoned), calling a pending timer once, then the watcher. Flag, wake, join, log.
 * Idempotent. */
void tally_store_stop(tally_store_t *st);

/** @brief The figures (any thread). */
void tally_store_stats(const tally_store_t *st, tally_store_stats_t *out);

/** One registration as its topic carries it (voters_topic or candidates_topic JSON). */
typedef struct tally_store_registration {
	bool voter;                        /**< else a candidate */
	const char *json;                  /**< the message, NUL-terminated */
	const char *party;                 /**< a candidate's party (stored first if new) */
} tally_store_registration_t;

/** A topic's next offsets, stored with registrations. */
typedef struct tally_store_topic_offsets {
	const char *topic;
	const int64_t *next;               /**< per partition; < 0: none */
	int nparts;
} tally_store_topic_offsets_t;

/**
 * @brief Store registrations (already stored ones are left as they are) and the topics'
 * offsets in one transaction, retrying (the store's policy) until it commits or
 * cancel(cancel_arg) is true.
 * @returns 0; TALLY_EAGAIN when cancelled (nothing stored), with errstr set.
 * @note One caller thread (its own connection).
 */
int tally_store_registrations_write(tally_store_t *st, const tally_store_registration_t *regs,
                                    size_t n, const tally_store_topic_offsets_t *topics,
                                    size_t ntopics, bool (*cancel)(void *), void *cancel_arg,
                                    char *errstr, size_t errstr_size);

/** @brief Stop every thread, close every connection, free. NULL is a no-op. */
void tally_store_destroy(tally_store_t *st);

/**
 * @brief Every stored vote's voter (the votes table and the vote journal, one snapshot), as
 * tally_store_restore() reads them for its voted set: e.g. the votes other instances have
 * committed since, to mark before counting partitions claimed from them.
 * Waits while PostgreSQL is away (the store's retry policy) until opts.cancel says stop.
 * @param ids receives a malloc'd array (the caller frees; NULL when there are none).
 * @returns 0, or a tally error with errstr set (TALLY_EIO when cancelled).
 * @note The thread that restored (the main connection), after tally_store_restore().
 */
int tally_store_voted(tally_store_t *st, tally_uuid_t **ids, size_t *n, char *errstr,
                      size_t errstr_size);

#endif /* TALLY_STORE_H */

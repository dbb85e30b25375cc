/*
 * tallyd's server internals, shared by server.c (start-up, the loop, rebalancing, HTTP
 * callbacks), ingest.c (batches in, harvest out) and checkpointer.c (the cut, and the
 * hooks the store calls on its writer thread). Everything here runs on the ingest thread
 * unless its comment says otherwise. PostgreSQL is the store's (include/tally/store.h):
 * nothing here holds a connection.
 */
#ifndef TALLYD_SERVER_INT_H
#define TALLYD_SERVER_INT_H

#include <pthread.h>
#include <semaphore.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include <tally/core.h>
#include <tally/handoff.h>
#include <tally/kafka.h>
#include <tally/registry.h>
#include <tally/results.h>
#include <tally/snapshot.h>
#include <tally/store.h>

#include "server.h"

#define SLOT_VOTES 512u          /* votes per batch */
#define NSLOTS 128u              /* batches in flight or filling, in all (64 k votes) */
#define LAG_PARTITIONS 1024      /* partitions with a lag metric */
#define DL_PARTITIONS 4096       /* dead-letter partitions with a stored offset */


/* ---- state ---------------------------------------------------------------------------- */

/* A vote's position in votes_topic. */
typedef struct srcpos {
	int32_t partition;
	int64_t offset;
} srcpos_t;

typedef struct slot {
	tally_batch_t batch;
	struct slot *next;
	int32_t partition;       /* of its part's topic */
	uint32_t n;
	int64_t pass_to;         /* messages let pass while it filled or waited (forwarded, or
	                            a forwarded vote delivered twice): its part's next offset
	                            once harvested is at least this; -1: none */
	rd_kafka_message_t *msgs[SLOT_VOTES];
	tally_vote_t votes[SLOT_VOTES];
	srcpos_t src[SLOT_VOTES];  /* forward parts: each vote's position in votes_topic */
} slot_t;

typedef struct part {
	bool assigned;
	bool eof;
	bool forward;            /* --cluster: a partition of the forward topic */
	int64_t next_offset;     /* harvested up to here (exclusive); -1: nothing known */
	int64_t read_offset;     /* polled up to here (exclusive); -1: nothing read yet */
	slot_t *fill;            /* being filled, not yet submitted */
	slot_t *head, *tail;     /* submitted, in order */
	int64_t epoch;           /* --cluster: the epoch this instance claimed it at */
	/* Forward parts: per source partition of votes_topic, the highest source offset let in
	 * (seen: when polled; seen_done: harvested, what the cut stores); -1: none. */
	int64_t *seen, *seen_done;
} part_t;

typedef struct rows {
	tally_pg_vote_row_t *v;
	size_t n, cap;
} rows_t;

/*
 * Rejected votes waiting to be written as dead letters: the key and bytes copied out of
 * the Kafka message (so no message is held: rd_kafka_consumer_close() waits for held ones),
 * in one buffer. They travel with the cut that moves past them; the checkpointer writes
 * them before it commits that cut.
 */
typedef struct dead_letter {
	int64_t offset;          /* source offset */
	int32_t partition;       /* source partition */
	uint8_t reason;          /* tally_reason_t */
	bool has_key;
	uint32_t key_len, len;
	size_t at;               /* key, then payload, at buf + at */
} dead_letter_t;

typedef struct dead_letters {
	dead_letter_t *v;
	size_t n, cap;
	char *buf;
	size_t used, bufcap;
} dead_letters_t;

/* The app's part of one cut (tally_store_cut_t.app): what the hooks write and publish. */
typedef struct package {
	dead_letters_t dl;               /* rejected since the previous cut */
	tally_snapshot_t *snap;          /* the results of this cut, published once committed */
} package_t;

typedef struct server {
	const tallyd_conf_t *conf;
	tally_registry_t *reg;
	tally_core_t *core;
	tally_kafka_topics_t topics;
	const char *votes_topic;
	char owner[128];

	rd_kafka_t *rk;                  /* the votes consumer */
	rd_kafka_queue_t *queue;
	tally_kafka_producer_t *producer; /* dead letters and results */
	tally_results_t *results;
	tally_snapshot_t *snap;

	part_t *parts;                   /* by partition of votes_topic */
	int nparts;
	int64_t generation;              /* assignments so far */
	slot_t *slots, *free_slots;
	unsigned free_count;
	rows_t pending;                  /* accepted since the last cut */
	dead_letters_t pending_dl;       /* rejected since the last cut */
	uint64_t cut_version;            /* the snapshot version of the last cut handed over */
	int64_t cut_generation;
	bool paused;                     /* reading paused: pending is full */
	bool group_synced;               /* the group gave this consumer an assignment once */

	/* Published results: the snapshot of the newest cut PostgreSQL has committed. The
	 * checkpointer swaps it in after each commit; the HTTP render thread and the ingest
	 * thread (live view) copy it out. The lock is held only for the swap or a copy, never
	 * on the vote path nor while the core is paused. */
	pthread_mutex_t committed_lock;
	tally_snapshot_t *committed;
	bool results_all;                /* the next results publish sends every figure */

	/* Dead letters: the dead-letter topic's end offsets when this run started, and the
	 * source positions a crashed run had already written there (skipped, not written
	 * twice). Set before the checkpointer starts, read-only after. */
	const char *dl_topic;
	tally_kafka_dead_letters_t dl_found;
	int64_t *dl_from;                /* [DL_PARTITIONS]: stored by the restored checkpoint */
	int64_t *dl_base;                /* [ndl_base] (in dl_found) */
	int ndl_base;
	uint64_t dead_letters_skipped;   /* atomic: found already written */

	/* PostgreSQL: restore, cuts, journal, registry image, registrations, figures. */
	tally_store_t *store;
	tally_pg_param_t *pg_params;     /* the pg.* settings (the store keeps pointers) */
	uint64_t last_results;           /* the writer thread's: results last published */

	/* Figures (relaxed atomics; read by the stats line and /metrics). */
	uint64_t read, accepted, rejected, dead_letters, dead_letter_failed;
	uint64_t start_ns;

	/* For the HTTP surfaces (read by its threads: atomics only). */
	int ready;                       /* partitions assigned at least once */
	uint64_t pending_votes;          /* accepted votes not yet checkpointed */
	int nlag;                        /* partitions with a lag figure */
	int64_t lag[LAG_PARTITIONS];     /* per partition: high watermark - next to read */
	/* Admin actions: an HTTP thread asks (1 + the tally_http_action_t), the ingest thread
	 * acts and answers; admin_status is written before the answer. */
	tally_handoff_t admin;
	tally_election_status_t admin_status;

	/* --cluster (server.c, cluster.c): one of several instances of the consumer group. The
	 * core keeps one part per partition of votes_topic (nvotes_parts). The watcher thread
	 * (the store's tally:watch) owns the view core and view_seen: it imports every
	 * partition's committed state there, keeps only the highest version seen per partition
	 * and swaps the view's snapshot in as s->committed. Results topics: the ingest thread
	 * publishes only while leader (atomic, the watcher's hook). fenced (atomic): a cut was
	 * refused with TALLY_EFENCED; from then on nothing is committed or published. */
	bool cluster;
	int nvotes_parts;
	tally_core_t *view;
	uint64_t *view_seen;             /* [nvotes_parts], the watcher's */
	uint64_t view_reg_gen;           /* the watcher's: registry generation in the view */
	uint64_t *part_committed;        /* [nvotes_parts], atomics: versions this run committed */
	int leader, leader_term;         /* atomics: the watcher's (term: leaderships won) */
	int fenced;                      /* atomic */
	int view_read;                   /* atomic: the watcher has read the parts once */
	bool kafka_fatal;                /* the ingest thread: the consumer had a fatal error */
	bool give_up;                    /* stop with no final checkpoint (a revocation's
	                                    checkpoint failed) */
	bool force_cut;                  /* the next cut is handed over even if unchanged */
	tally_snapshot_t *pub_snap;      /* tally:results' copy, published as leader */
	tally_kafka_producer_t *rprod;   /* tally:results': transactional */
	tally_results_t *rresults;
	pthread_t rthread;
	bool rthread_started;
	int rstop;                       /* atomic: tally:results, a last round and stop */
	uint64_t results_sent;           /* atomic: transactions of results committed */

	/* --cluster, forwarding (ingest.c, cluster.c): a vote read on a partition other than
	 * its voter's home (include/tally/home.h) is produced to partition home of fwd_topic
	 * (header "tally-source": its source partition and offset) and let pass here; fparts
	 * [home] reads it there, owned with parts[home], and lets in each source partition's
	 * offsets only above the highest it let in before (a forward sent twice, e.g. by an
	 * instance killed before its cut, counts once). The cut commits a source offset only
	 * after every vote forwarded below it is delivered (the prepare hook flushes fwd). */
	char fwd_topic[TALLY_KAFKA_TOPIC_NAME_MAX + 16];
	tally_kafka_producer_t *fwd;
	part_t *fparts;                  /* [nvotes_parts]: by partition of fwd_topic */
	uint64_t passed, cut_passed;     /* messages let pass; as of the last cut */
	uint64_t forwarded, fwd_twice;   /* atomics: votes forwarded; forwards let pass twice */
	int fwd_failed;                  /* atomic: a forward failed delivery: no cut commits */
} server_t;

/* ingest.c */
void tallyd_slot_put(server_t *s, slot_t *sl);        /* a free batch, e.g. at start */
int tallyd_parts_fit(server_t *s, int n);
void tallyd_submit_all(server_t *s);
void tallyd_harvest(server_t *s);
void tallyd_settle(server_t *s);
void tallyd_ingest(server_t *s, rd_kafka_message_t *m);
part_t *tallyd_part_of(server_t *s, const rd_kafka_message_t *m);
void tallyd_dead_letters_free(dead_letters_t *dl);

/* checkpointer.c */
void tallyd_store_hooks(server_t *s, tally_store_hooks_t *h);
bool tallyd_ckpt_idle(server_t *s);           /* any thread */
int tallyd_cut(server_t *s);
bool tallyd_checkpoint_now(server_t *s, unsigned unreachable_ms);
int tallyd_committed_copy(server_t *s, tally_snapshot_t *into); /* any thread */

/* cluster.c */
int tallyd_cluster_parts(server_t *s, char *err, size_t errsz);     /* votes_topic's */
int tallyd_cluster_start(server_t *s, char *err, size_t errsz);     /* view, watcher */
void tallyd_cluster_assign(server_t *s, rd_kafka_topic_partition_list_t *list);
void tallyd_cluster_revoke(server_t *s, rd_kafka_topic_partition_list_t *list);
void tallyd_cluster_results_stop(server_t *s);     /* tally:results: a last round as leader */
void tallyd_cluster_wait_seen(server_t *s, unsigned ms);
bool tallyd_cluster_wait_view(server_t *s);
void tallyd_cluster_stop(server_t *s);
int tallyd_forward_start(server_t *s, char *err, size_t errsz);     /* fwd_topic, fwd */
void *tallyd_forward_pack(const part_t *fp, int nsrc, size_t *len);
int tallyd_forward_flush(server_t *s);                              /* prepare hook */
bool tallyd_fenced(server_t *s);                                    /* any thread */

/* server.c */
void tallyd_sleep_ms(unsigned ms);
void tallyd_request_stop(void);              /* any thread: stop as on SIGTERM */
bool tallyd_stopping(void);                  /* any thread: a stop was asked for */

#endif /* TALLYD_SERVER_INT_H */

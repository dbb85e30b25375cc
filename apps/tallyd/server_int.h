/*
 * tallyd's server internals, shared by server.c (start-up, the loop, rebalancing, HTTP
 * callbacks), ingest.c (batches in, harvest out) and checkpointer.c. Everything here runs
 * on the ingest thread unless its comment says otherwise.
 */
#ifndef TALLYD_SERVER_INT_H
#define TALLYD_SERVER_INT_H

#include <pthread.h>
#include <semaphore.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>
#include <libpq-fe.h>

#include <tally/core.h>
#include <tally/kafka.h>
#include <tally/pg.h>
#include <tally/pg_checkpoint.h>
#include <tally/registry.h>
#include <tally/results.h>
#include <tally/snapshot.h>

#include "server.h"

#define SLOT_VOTES 512u          /* votes per batch */
#define NSLOTS 128u              /* batches in flight or filling, in all (64 k votes) */
#define LAG_PARTITIONS 1024      /* partitions with a lag metric */
#define DL_PARTITIONS 4096       /* dead-letter partitions with a stored offset */

/* What a thread's quit flag asks of it. */
typedef enum tallyd_quit {
	TALLYD_QUIT_NO = 0,
	TALLYD_QUIT_WHEN_IDLE,           /* finish the job in hand, then end */
	TALLYD_QUIT_ABANDON,             /* give up the job in hand (postgres is away), then end */
} tallyd_quit_t;

/* The admin handshake (server.c): an HTTP thread moves admin_req from ADMIN_IDLE to
 * 1 + action; the ingest thread takes it (to ADMIN_TAKEN), acts and posts admin_done; the
 * HTTP thread reads the outcome and sets ADMIN_IDLE. A request not yet taken when the HTTP
 * thread gives up is withdrawn (back to ADMIN_IDLE), so no late answer is left behind. */
#define ADMIN_IDLE 0
#define ADMIN_TAKEN (-1)

/* ---- state ---------------------------------------------------------------------------- */

typedef struct slot {
	tally_batch_t batch;
	struct slot *next;
	int32_t partition;
	uint32_t n;
	rd_kafka_message_t *msgs[SLOT_VOTES];
	tally_vote_t votes[SLOT_VOTES];
} slot_t;

typedef struct part {
	bool assigned;
	bool eof;
	int64_t next_offset;     /* harvested up to here (exclusive); -1: nothing known */
	int64_t read_offset;     /* polled up to here (exclusive); -1: nothing read yet */
	slot_t *fill;            /* being filled, not yet submitted */
	slot_t *head, *tail;     /* submitted, in order */
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

/* One cut, handed to the checkpointer. */
typedef struct package {
	rows_t rows;
	dead_letters_t dl;               /* rejected since the previous cut */
	tally_snapshot_t *snap;          /* the results of this cut, published once committed */
	void *state;
	size_t state_len;
	uint64_t version;
	tally_pg_offset_t *offsets;
	size_t noffsets;
	int64_t generation;
	uint64_t cut_ns;
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

	part_t *parts;
	int nparts;
	int64_t generation;              /* assignments so far */
	slot_t *slots, *free_slots;
	unsigned free_count;
	rows_t pending;                  /* accepted since the last cut */
	dead_letters_t pending_dl;       /* rejected since the last cut */
	uint64_t cut_version;            /* the snapshot version of the last cut handed over */
	int64_t cut_generation;
	bool paused;                     /* reading paused: pending is full */

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

	/* The checkpointer. */
	pthread_t ckpt_thread;
	bool ckpt_started;
	sem_t ckpt_go;
	package_t *job;                  /* set by ingest, cleared by the checkpointer (atomic) */
	int ckpt_quit;                   /* atomic: tallyd_quit_t */
	PGconn *ckpt_conn;
	tally_election_status_t status_stored; /* in the elections row (checkpointer's) */
	tally_pg_param_t *pg_params;
	size_t npg_params;
	const char *dsn;

	/* The mover: journalled votes into the votes table (mover.c). */
	pthread_t mover_thread;
	bool mover_started;
	int mover_quit;                  /* atomic: tallyd_quit_t */
	int caught_up;                   /* atomic: set by the ingest thread */
	int64_t journal_votes;           /* atomic: votes in the journal */
	uint64_t moved_votes;            /* atomic */

	/* Figures (relaxed atomics; read by the stats line and, later, /metrics). */
	uint64_t read, accepted, rejected, dead_letters, dead_letter_failed;
	uint64_t checkpoints, checkpoint_failures, last_checkpoint_ns, last_checkpoint_ms;
	uint64_t checkpointed_votes;
	int pg_down;
	uint64_t pg_down_since;          /* mono ns of the first failure in a row, 0 when up */
	uint64_t start_ns;
	int64_t image_generation;        /* > 0: the registry was read in full at this generation,
	                                  * and a registry image of it is to be written */

	/* For the HTTP surfaces (read by its threads: atomics only). */
	int ready;                       /* partitions assigned at least once */
	uint64_t pending_votes;          /* accepted votes not yet checkpointed */
	int nlag;                        /* partitions with a lag figure */
	int64_t lag[LAG_PARTITIONS];     /* per partition: high watermark - next to read */
	int admin_req;                   /* atomic: ADMIN_IDLE, ADMIN_TAKEN or 1 + the
	                                  * tally_http_action_t an HTTP thread asks for */
	int admin_rc;
	tally_election_status_t admin_status;
	char admin_err[256];
	sem_t admin_done;               /* when tallyd_serve began */
} server_t;

/* ingest.c */
void tallyd_slot_put(server_t *s, slot_t *sl);        /* a free batch, e.g. at start */
int tallyd_parts_fit(server_t *s, int n);
void tallyd_submit_all(server_t *s);
void tallyd_harvest(server_t *s);
void tallyd_settle(server_t *s);
void tallyd_ingest(server_t *s, rd_kafka_message_t *m);
void tallyd_dead_letters_free(dead_letters_t *dl);

/* checkpointer.c */
void *tallyd_ckpt_main(void *arg);            /* the checkpointer thread */
bool tallyd_ckpt_idle(server_t *s);           /* any thread */
int tallyd_cut(server_t *s);
bool tallyd_checkpoint_now(server_t *s, unsigned unreachable_ms);
int tallyd_committed_copy(server_t *s, tally_snapshot_t *into); /* any thread */

/* mover.c */
void *tallyd_mover_main(void *arg);           /* the mover thread */

/* server.c */
PGconn *tallyd_pg_open(server_t *s, unsigned timeout_ms, char *err, size_t errsz);
void tallyd_sleep_ms(unsigned ms);
void tallyd_request_stop(void);              /* any thread: stop as on SIGTERM */

#endif /* TALLYD_SERVER_INT_H */

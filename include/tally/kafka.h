/**
 * @file kafka.h
 * @brief The Kafka adapter's foundation: configuration, topics and an idempotent producer.
 *
 * Everything tally-gen, tally-sim and tallyd share about Kafka: building a librdkafka
 * configuration from TALLY_KAFKA_BROKERS and "kafka.*" config-file lines (a bad line fails
 * naming its file:line), creating tally's topics through the admin API, and a producer that
 * never drops a message silently. librdkafka's error codes are turned into tally errors here
 * (tally_kafka_err()); messages follow the house grammar (lower-case, names quoted, what
 * failed and why).
 */
#ifndef TALLY_KAFKA_H
#define TALLY_KAFKA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

/** Longest topic name Kafka accepts. */
#define TALLY_KAFKA_TOPIC_NAME_MAX 249

/** Partitions of the input topics when the caller does not say. */
#define TALLY_KAFKA_DEFAULT_PARTITIONS 12

/** One "kafka.KEY = VALUE" setting, e.g. from a config file. */
typedef struct tally_kafka_setting {
	const char *key;      /**< as written, with its "kafka." prefix: "kafka.linger.ms" */
	const char *value;
	const char *where;    /**< where it was written, for messages: "tally.conf:12" */
} tally_kafka_setting_t;

/**
 * @brief Map a librdkafka error code to a tally error.
 * @returns 0 for RD_KAFKA_RESP_ERR_NO_ERROR, else a negative TALLY_E* code (TALLY_ETIMEDOUT,
 *          TALLY_EAGAIN for a full queue, TALLY_ENOENT for unknown topics and partitions,
 *          TALLY_EEXISTS, TALLY_EINVAL for invalid requests, TALLY_ECONFIG, TALLY_ECORRUPT,
 *          TALLY_ENOMEM, TALLY_ESTATE, and TALLY_EIO for transport and anything else).
 *          Thread-safe (pure).
 */
int tally_kafka_err(rd_kafka_resp_err_t err);

/**
 * @brief Build a librdkafka configuration from a broker list and "kafka.*" settings.
 *
 * brokers (e.g. TALLY_KAFKA_BROKERS) is set as bootstrap.servers first, then each setting
 * in order with its "kafka." prefix stripped, so a kafka.bootstrap.servers line overrides
 * brokers. A key without the prefix is applied as it is. brokers may be NULL if a setting
 * gives bootstrap.servers.
 *
 * @returns a configuration the caller owns: pass it to rd_kafka_new() or
 *          tally_kafka_producer_new() (which take ownership), or free it with
 *          rd_kafka_conf_destroy(). NULL on error, with errstr set to
 *          "WHERE: KEY: librdkafka's message", e.g.
 *          `tally.conf:12: kafka.socket.timout.ms: No such configuration property:
 *          "socket.timout.ms"`, or "no Kafka brokers: set TALLY_KAFKA_BROKERS or
 *          kafka.bootstrap.servers" (a setting without a where gives "KEY: message").
 *          Thread-safe.
 */
rd_kafka_conf_t *tally_kafka_conf_new(const char *brokers, const tally_kafka_setting_t *settings,
                                      size_t n, char *errstr, size_t errstr_size);

/** One topic-level configuration pair for a new topic, e.g. {"cleanup.policy", "compact"}. */
typedef struct tally_kafka_topic_config {
	const char *key;
	const char *value;
} tally_kafka_topic_config_t;

/** A topic tally needs. */
typedef struct tally_kafka_topic {
	const char *name;
	int partitions;                            /**< at least 1 */
	int replication_factor;                    /**< 0 means 1 */
	const tally_kafka_topic_config_t *config;  /**< nconfig pairs, or NULL */
	size_t nconfig;
} tally_kafka_topic_t;

/**
 * @brief Create the topics that do not exist yet, through the admin API.
 *
 * One CreateTopics request for all of them (the broker is asked to wait up to timeout_ms
 * for each creation to complete). A topic that already exists is fine if it has at least
 * the partitions asked for; its configuration is left as it is. Returns only once every
 * topic shows in the cluster's metadata with a leader for each partition, so it can be
 * produced to at once (a new topic takes a moment to appear there). Idempotent.
 *
 * @param rk any client handle (producer or consumer); borrowed.
 * @returns 0, or a tally error with errstr set: `could not create topic "x": reason`, or
 *          `topic "x" exists with 3 partitions, fewer than the 12 asked for`. Thread-safe
 *          (each call uses its own reply queue).
 */
int tally_kafka_ensure_topics(rd_kafka_t *rk, const tally_kafka_topic_t *topics, size_t n,
                              int timeout_ms, char *errstr, size_t errstr_size);

/** tally's standard topics, in the order tally_kafka_topics_t holds them. */
typedef enum tally_kafka_topic_id {
	TALLY_KAFKA_VOTES,               /**< votes_topic */
	TALLY_KAFKA_VOTERS,              /**< voters_topic */
	TALLY_KAFKA_CANDIDATES,          /**< candidates_topic */
	TALLY_KAFKA_RESULTS_CANDIDATE,   /**< aggregated_votes_per_candidate, compacted */
	TALLY_KAFKA_RESULTS_LOCATION,    /**< aggregated_turnout_by_location, compacted */
	TALLY_KAFKA_RESULTS_PARTY,       /**< aggregated_votes_per_party, compacted */
	TALLY_KAFKA_REJECTED,            /**< votes_rejected, the dead letters */
	TALLY_KAFKA_RESULTS_CONTEST,     /**< aggregated_votes_per_contest, compacted */
	TALLY_KAFKA_RESULTS_SEATS,       /**< seats_per_party, compacted */
	TALLY_KAFKA_N_TOPICS
} tally_kafka_topic_id_t;

/** @brief Is this one of the (compacted, one-partition) results topics? */
static inline bool
tally_kafka_topic_is_results(int id)
{
	return id == TALLY_KAFKA_RESULTS_CANDIDATE || id == TALLY_KAFKA_RESULTS_LOCATION ||
	       id == TALLY_KAFKA_RESULTS_PARTY || id == TALLY_KAFKA_RESULTS_CONTEST ||
	       id == TALLY_KAFKA_RESULTS_SEATS;
}

/** Partitions of each results topic: one, so a reader sees every version in order. */
#define TALLY_KAFKA_RESULTS_PARTITIONS 1

/** tally's standard topics with their names, ready for tally_kafka_ensure_topics(). */
typedef struct tally_kafka_topics {
	char names[TALLY_KAFKA_N_TOPICS][TALLY_KAFKA_TOPIC_NAME_MAX + 1];
	tally_kafka_topic_t topic[TALLY_KAFKA_N_TOPICS];
} tally_kafka_topics_t;

/**
 * @brief The unprefixed name of a standard topic, e.g. "votes_topic".
 * @returns a static string, or NULL for an id out of range. Thread-safe.
 */
const char *tally_kafka_topic_name(tally_kafka_topic_id_t id);

/**
 * @brief Fill a caller-allocated table of the standard topics.
 *
 * Each name is prefix + the standard name (prefix may be NULL or "", e.g. "test123_" in
 * tests). votes_topic, voters_topic, candidates_topic and votes_rejected get partitions
 * partitions (0 means TALLY_KAFKA_DEFAULT_PARTITIONS); the three results topics get
 * TALLY_KAFKA_RESULTS_PARTITIONS and cleanup.policy=compact. Replication factor 1.
 * The table holds no resources: there is nothing to finalise, and it must outlive any use
 * of its topic[] entries, which point into it.
 *
 * @returns 0, or TALLY_EINVAL with errstr set when a name would be longer than
 *          TALLY_KAFKA_TOPIC_NAME_MAX or partitions is negative. Thread-safe.
 */
int tally_kafka_topics_init(tally_kafka_topics_t *topics, const char *prefix, int partitions,
                            char *errstr, size_t errstr_size);

/**
 * An idempotent producer (enable.idempotence=true, acks=all) that copies payloads, waits
 * instead of failing when librdkafka's local queue is full, and counts delivery failures
 * so flush can report them.
 *
 * Thread-safety: tally_kafka_produce() and tally_kafka_producer_flush() may be called from
 * any number of threads at once; delivery reports are served by whichever thread is inside
 * one of them. _destroy must not race any other call on the same producer.
 */
typedef struct tally_kafka_producer tally_kafka_producer_t;

/**
 * @brief Create a producer from conf, setting enable.idempotence=true and acks=all on it.
 * @param conf taken over in every case, success or not: the caller must not use or free it.
 * @returns a producer the caller frees with tally_kafka_producer_destroy(), or NULL with
 *          errstr set (`could not create Kafka producer: reason`).
 */
tally_kafka_producer_t *tally_kafka_producer_new(rd_kafka_conf_t *conf, char *errstr,
                                                 size_t errstr_size);

/**
 * @brief Queue one message for topic, partitioned by key (librdkafka's default
 * partitioner: the same key always goes to the same partition). key and val are copied,
 * so the caller may reuse them at once. key may be NULL (klen 0).
 *
 * When the local queue is full this serves delivery reports and tries again, so it blocks
 * rather than fail. A message that fails later, in delivery, is counted and reported by the
 * next tally_kafka_producer_flush().
 *
 * @returns 0, or a tally error for a message librdkafka refuses at once (e.g. larger than
 *          message.max.bytes: TALLY_EINVAL); such a message is also counted as failed.
 */
int tally_kafka_produce(tally_kafka_producer_t *p, const char *topic, const void *key,
                        size_t klen, const void *val, size_t vlen);

/** One Kafka message header. */
typedef struct tally_kafka_header {
	const char *name;
	const void *value;
	size_t len;
} tally_kafka_header_t;

/**
 * @brief As tally_kafka_produce(), with nh headers (copied) on the message.
 */
int tally_kafka_produce_headers(tally_kafka_producer_t *p, const char *topic, const void *key,
                                size_t klen, const void *val, size_t vlen,
                                const tally_kafka_header_t *h, size_t nh);

/**
 * @brief As tally_kafka_produce_headers(), to the given partition (RD_KAFKA_PARTITION_UA:
 *        the partitioner's choice).
 */
int tally_kafka_produce_to(tally_kafka_producer_t *p, const char *topic, int32_t partition,
                           const void *key, size_t klen, const void *val, size_t vlen,
                           const tally_kafka_header_t *h, size_t nh);

/**
 * @name Transactions (a producer made with a `transactional.id` in its configuration)
 * Kafka fences zombies by transactional.id: initialising a producer with an id aborts the
 * open transaction of any earlier producer with that id, and refuses that one's later
 * commits. Readers with isolation.level=read_committed (librdkafka's default) see only
 * committed transactions. Each call blocks up to timeout_ms. Returns 0; TALLY_EFENCED when
 * the producer was fenced by a newer one with its id (or another fatal error: make a new
 * producer); TALLY_EAGAIN when the transaction was aborted or the call may be retried;
 * TALLY_EIO otherwise; errstr says why.
 * @{
 */
int tally_kafka_txn_init(tally_kafka_producer_t *p, int timeout_ms, char *errstr,
                         size_t errstr_size);
int tally_kafka_txn_begin(tally_kafka_producer_t *p, char *errstr, size_t errstr_size);
int tally_kafka_txn_commit(tally_kafka_producer_t *p, int timeout_ms, char *errstr,
                           size_t errstr_size);
/** @} */

/**
 * @brief Wait until every queued message is delivered or has failed, then report.
 *
 * Failures are counted from the producer's creation or the last flush that reported them;
 * a flush that reports them starts the count again.
 *
 * @returns 0 when every message since then was delivered; TALLY_ETIMEDOUT when some are
 *          still in flight after timeout_ms (`N messages still in flight after T ms`);
 *          otherwise the tally error of the first failure, with errstr
 *          `N messages failed delivery, the first to topic "x": reason`.
 */
int tally_kafka_producer_flush(tally_kafka_producer_t *p, int timeout_ms, char *errstr,
                               size_t errstr_size);

/** @brief Messages delivered since creation. Thread-safe. */
uint64_t tally_kafka_producer_delivered(const tally_kafka_producer_t *p);

/**
 * @brief Time from produce to the broker's acknowledgement of the last message delivered,
 * in microseconds (-1 when unknown, 0 before any delivery). Thread-safe.
 */
int64_t tally_kafka_producer_latency_us(const tally_kafka_producer_t *p);

/** @brief Messages failed since creation (not reset by flush). Thread-safe. */
uint64_t tally_kafka_producer_failed(const tally_kafka_producer_t *p);

/**
 * @brief Track the offsets messages to topic are delivered at, for partitions 0 ..
 * partitions - 1 (see tally_kafka_producer_tracked()). Call once, before producing to
 * topic; one topic per producer.
 * @returns 0, TALLY_EINVAL (already tracking, or partitions <= 0) or TALLY_ENOMEM.
 */
int tally_kafka_producer_track(tally_kafka_producer_t *p, const char *topic, int partitions);

/**
 * @brief For each partition i < n of the tracked topic: 1 + the highest offset a message of
 * this producer was delivered at, or -1 when none was (or i is not tracked). After a
 * successful tally_kafka_producer_flush() it covers every message produced before it.
 * Thread-safe. @returns the partitions tracked (0 when none).
 */
int tally_kafka_producer_tracked(const tally_kafka_producer_t *p, int64_t *next, int n);

/**
 * @brief The librdkafka handle, e.g. for tally_kafka_ensure_topics(). Borrowed: it lives
 * as long as the producer. Thread-safe.
 */
rd_kafka_t *tally_kafka_producer_handle(tally_kafka_producer_t *p);

/**
 * @brief Destroy the producer without waiting for messages still queued (call
 * tally_kafka_producer_flush() first to deliver them). NULL is a no-op.
 */
void tally_kafka_producer_destroy(tally_kafka_producer_t *p);

/* ---- group consumers ----------------------------------------------------------------- */

/**
 * @brief Would rd_kafka_destroy() be safe on this (closed) group consumer?
 *
 * librdkafka before 2.3.0 aborts destroying a cooperative-sticky consumer whose group never
 * answered its SyncGroup (librdkafka issue 4312). assigned_once: the consumer's rebalance
 * callback was called with RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS at least once (every
 * SyncGroup answer gives one, even an empty one). Thread-safe (pure).
 */
bool tally_kafka_consumer_destroy_is_safe(bool assigned_once);

/**
 * @brief Destroy a closed group consumer (after rd_kafka_consumer_close()), or, when that
 * would abort (tally_kafka_consumer_destroy_is_safe() is false), keep its handle reachable
 * until the process exits. NULL is a no-op.
 * @returns true if destroyed, false if kept. Thread-safe.
 */
bool tally_kafka_consumer_destroy(rd_kafka_t *rk, bool assigned_once);

/* ---- dead letters already written ---------------------------------------------------- */

/** A vote's position in its source topic, as a dead letter's headers name it, and where
 * that dead letter is (the lowest offset, if it is there more than once). */
typedef struct tally_kafka_source_pos {
	int32_t partition;
	int64_t offset;
	int32_t dl_partition;
	int64_t dl_offset;
} tally_kafka_source_pos_t;

/** What tally_kafka_dead_letters_scan() found. Free with tally_kafka_dead_letters_free(). */
typedef struct tally_kafka_dead_letters {
	tally_kafka_source_pos_t *pos;   /**< sorted by (partition, offset), no duplicates */
	size_t npos;
	int64_t *end;                    /**< [nend]: each dead-letter partition's end offset
	                                      when it was read (its high watermark) */
	int nend;
	uint64_t messages;               /**< messages read, of every election */
} tally_kafka_dead_letters_t;

/**
 * @brief Read the dead-letter topic from from[i] (partition i; the partition's start where
 * i >= nfrom or from[i] < 0) up to its end as it is when called, and collect the source
 * positions of the dead letters whose "election_id" and "source_topic" headers are
 * election_id and source_topic. Used on start to learn which dead letters a run that
 * crashed had already written, so that they are not written twice.
 *
 * @param conf taken over in every case (a consumer is made of it; group.id is not needed).
 * @returns 0 with *out filled, or a tally error with errstr set (the topic's metadata or a
 *          partition could not be read within timeout_ms).
 */
int tally_kafka_dead_letters_scan(rd_kafka_conf_t *conf, const char *topic,
                                  const int64_t *from, int nfrom, const char *election_id,
                                  const char *source_topic, int timeout_ms,
                                  tally_kafka_dead_letters_t *out, char *errstr,
                                  size_t errstr_size);

/** @brief Whether the scan found a dead letter for (partition, offset). */
bool tally_kafka_dead_letters_has(const tally_kafka_dead_letters_t *dl, int32_t partition,
                                  int64_t offset);

/** @brief Free what a scan filled (not dl itself); dl is zeroed. */
void tally_kafka_dead_letters_free(tally_kafka_dead_letters_t *dl);

#endif /* TALLY_KAFKA_H */

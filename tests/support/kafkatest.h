/*
 * Kafka helpers for tests against the broker scripts/services started: clients, topic
 * sizes, reading a whole topic, deleting topics. Each aborts with a message on a broker
 * error (support code cannot use Criterion's asserts: see tests/CMakeLists.txt).
 */
#ifndef TALLY_TEST_KAFKATEST_H
#define TALLY_TEST_KAFKATEST_H

#include <stdint.h>

#include <librdkafka/rdkafka.h>

/* A client of the test broker; a consumer gets group.id group, auto-commit off. */
rd_kafka_t *kt_client(rd_kafka_type_t type, const char *group);

/* How many partitions topic has. */
int kt_partitions(rd_kafka_t *rk, const char *topic);

/* Messages topic holds: the sum of its partitions' high watermarks (nothing expires). */
int64_t kt_messages(rd_kafka_t *rk, const char *topic);

typedef void (*kt_msg_fn)(const rd_kafka_message_t *m, void *arg);

/*
 * Call fn for every message of topic, from the beginning of each partition to its end as
 * it was when the call began (the high watermarks then). Returns how many there were;
 * aborts if they do not all arrive within timeout_s.
 */
long kt_consume_all(const char *topic, kt_msg_fn fn, void *arg, double timeout_s);

/* Delete topics (those that exist), waiting for the broker's answer. */
void kt_delete_topics(const char *const *topics, int n);

/* Produce one message with key to topic and wait until it is delivered (fails the test
 * otherwise). */
void kt_produce_one(const char *topic, const char *key, const char *val, size_t len);

#endif

/*
 * Warms a fresh broker up before the tests that time things: Kafka creates its internal
 * topics (__transaction_state at the first transactional producer, __consumer_offsets at
 * the first consumer group) on first use, and on this 2-core machine a fresh broker has
 * stalled for 20 to 70 s doing so, once inside the timed kill test of tallyd --cluster
 * (CI runs 11 and 15: "Fencing broker 1 because its session has timed out" while creating
 * __transaction_state's logs). Registered with ctest as a setup of the "services" fixture,
 * after services_up, so the stall, if any, is paid here, with no clock running.
 *
 * It initialises a transactional producer, commits one message, has a consumer group read
 * it and commit its offset, and deletes its topic. Each step is retried for up to 5
 * minutes. Brokers as for every test (TALLY_KAFKA_BROKERS or var/services.env).
 */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#include <tally/kafka.h>

#include "kafkatest.h"
#include "services.h"
#include "testutil.h"

#define TOPIC "tally_warmup"
#define DEADLINE_S 300.0

static void
set(rd_kafka_conf_t *conf, const char *k, const char *v)
{
	char err[256];

	if (rd_kafka_conf_set(conf, k, v, err, sizeof(err)) != RD_KAFKA_CONF_OK) {
		fprintf(stderr, "warmup: %s: %s\n", k, err);
		_exit(1);
	}
}

static int
produce_transactionally(double t0)
{
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	rd_kafka_error_t *e = NULL;
	char err[256];
	rd_kafka_t *p;

	set(conf, "bootstrap.servers", tally_test_service("TALLY_KAFKA_BROKERS"));
	set(conf, "transactional.id", "tally-warmup");
	if ((p = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err))) == NULL) {
		fprintf(stderr, "warmup: producer: %s\n", err);
		return 1;
	}
	{
		tally_kafka_topic_t t = {TOPIC, 1, 1, NULL, 0};

		while (tally_kafka_ensure_topics(p, &t, 1, 30000, err, sizeof(err)) != 0) {
			fprintf(stderr, "warmup: %s (%.0f s)\n", err, test_now_s() - t0);
			if (test_now_s() - t0 > DEADLINE_S) {
				rd_kafka_destroy(p);
				return 1;
			}
			sleep(1);
		}
	}
	while ((e = rd_kafka_init_transactions(p, 30000)) != NULL) {
		fprintf(stderr, "warmup: init_transactions: %s (%.0f s)\n", rd_kafka_error_string(e),
		        test_now_s() - t0);
		if (rd_kafka_error_is_fatal(e) || test_now_s() - t0 > DEADLINE_S) {
			rd_kafka_error_destroy(e);
			rd_kafka_destroy(p);
			return 1;
		}
		rd_kafka_error_destroy(e);
		sleep(1);
	}
	if ((e = rd_kafka_begin_transaction(p)) == NULL &&
	    rd_kafka_producev(p, RD_KAFKA_V_TOPIC(TOPIC), RD_KAFKA_V_VALUE("warm", 4),
	                      RD_KAFKA_V_END) == RD_KAFKA_RESP_ERR_NO_ERROR)
		e = rd_kafka_commit_transaction(p, 120000);
	if (e != NULL) {
		fprintf(stderr, "warmup: transaction: %s\n", rd_kafka_error_string(e));
		rd_kafka_error_destroy(e);
		rd_kafka_destroy(p);
		return 1;
	}
	rd_kafka_destroy(p);
	return 0;
}

static int
consume_in_a_group(double t0)
{
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	rd_kafka_topic_partition_list_t *sub;
	char err[256];
	rd_kafka_t *c;
	int rc = 1;

	set(conf, "bootstrap.servers", tally_test_service("TALLY_KAFKA_BROKERS"));
	set(conf, "group.id", "tally-warmup");
	set(conf, "auto.offset.reset", "earliest");
	set(conf, "enable.auto.commit", "false");
	if ((c = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err))) == NULL) {
		fprintf(stderr, "warmup: consumer: %s\n", err);
		return 1;
	}
	sub = rd_kafka_topic_partition_list_new(1);

	rd_kafka_poll_set_consumer(c);
	rd_kafka_topic_partition_list_add(sub, TOPIC, RD_KAFKA_PARTITION_UA);
	rd_kafka_subscribe(c, sub);
	rd_kafka_topic_partition_list_destroy(sub);
	while (test_now_s() - t0 < DEADLINE_S) {
		rd_kafka_message_t *m = rd_kafka_consumer_poll(c, 1000);

		if (m == NULL)
			continue;
		if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
			rd_kafka_commit_message(c, m, 0);
			rd_kafka_message_destroy(m);
			rc = 0;
			break;
		}
		rd_kafka_message_destroy(m);
	}
	rd_kafka_consumer_close(c);
	rd_kafka_destroy(c);
	return rc;
}

int
main(void)
{
	double t0 = test_now_s();
	const char *topics[1] = {TOPIC};
	int rc = produce_transactionally(t0);

	if (rc == 0)
		rc = consume_in_a_group(t0);
	kt_delete_topics(topics, 1);
	fprintf(stderr, "warmup: the broker's internal topics are %s (%.1f s)\n",
	        rc == 0 ? "ready" : "NOT ready", test_now_s() - t0);
	return rc;
}

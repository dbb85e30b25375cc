#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tally/kafka.h>

#include "kafkatest.h"
#include "services.h"
#include "testutil.h"

#define KT_TIMEOUT_MS 30000

static void
kt_die(const char *what, const char *topic, const char *why)
{
	fprintf(stderr, "kafkatest: %s \"%s\": %s\n", what, topic != NULL ? topic : "", why);
	abort();
}

static void
kt_set(rd_kafka_conf_t *conf, const char *key, const char *value)
{
	char err[512];

	if (rd_kafka_conf_set(conf, key, value, err, sizeof(err)) != RD_KAFKA_CONF_OK)
		kt_die("config", key, err);
}

rd_kafka_t *
kt_client(rd_kafka_type_t type, const char *group)
{
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	char err[512];
	rd_kafka_t *rk;

	kt_set(conf, "bootstrap.servers", tally_test_service("TALLY_KAFKA_BROKERS"));
	if (type == RD_KAFKA_CONSUMER) {
		kt_set(conf, "group.id", group != NULL ? group : "tally-test");
		kt_set(conf, "enable.auto.commit", "false");
	}
	if ((rk = rd_kafka_new(type, conf, err, sizeof(err))) == NULL)
		kt_die("client", group, err);
	return rk;
}

int
kt_partitions(rd_kafka_t *rk, const char *topic)
{
	rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
	const struct rd_kafka_metadata *md;
	rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 0, rkt, &md, KT_TIMEOUT_MS);
	int n;

	if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
		kt_die("metadata", topic, rd_kafka_err2str(e));
	if (md->topics[0].err != RD_KAFKA_RESP_ERR_NO_ERROR)
		kt_die("metadata", topic, rd_kafka_err2str(md->topics[0].err));
	n = md->topics[0].partition_cnt;
	rd_kafka_metadata_destroy(md);
	rd_kafka_topic_destroy(rkt);
	return n;
}

/* The high watermark of each partition, into hi[] (n of them). */
static void
kt_watermarks(rd_kafka_t *rk, const char *topic, int64_t *hi, int n)
{
	for (int p = 0; p < n; p++) {
		int64_t lo;
		rd_kafka_resp_err_t e =
		    rd_kafka_query_watermark_offsets(rk, topic, p, &lo, &hi[p], KT_TIMEOUT_MS);

		if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
			kt_die("watermarks", topic, rd_kafka_err2str(e));
	}
}

int64_t
kt_messages(rd_kafka_t *rk, const char *topic)
{
	int n = kt_partitions(rk, topic);
	int64_t *hi = calloc((size_t)n, sizeof(*hi)), sum = 0;

	kt_watermarks(rk, topic, hi, n);
	for (int p = 0; p < n; p++)
		sum += hi[p];
	free(hi);
	return sum;
}

long
kt_consume_all(const char *topic, kt_msg_fn fn, void *arg, double timeout_s)
{
	rd_kafka_t *rk = kt_client(RD_KAFKA_CONSUMER, "tally-test-consume-all");
	int n = kt_partitions(rk, topic), left = 0;
	int64_t *hi = calloc((size_t)n, sizeof(*hi));
	rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(n);
	double deadline = test_now_s() + timeout_s;
	long got = 0;

	kt_watermarks(rk, topic, hi, n);
	for (int p = 0; p < n; p++) {
		if (hi[p] > 0) {
			rd_kafka_topic_partition_list_add(parts, topic, p)->offset =
			    RD_KAFKA_OFFSET_BEGINNING;
			left++;
		}
	}
	if (left > 0 && rd_kafka_assign(rk, parts) != RD_KAFKA_RESP_ERR_NO_ERROR)
		kt_die("assign", topic, "failed");
	rd_kafka_topic_partition_list_destroy(parts);
	while (left > 0) {
		rd_kafka_message_t *m;

		if (test_now_s() > deadline) {
			char why[128];

			snprintf(why, sizeof(why), "%ld messages, %d partitions not read to the end "
			         "within %.0f s", got, left, timeout_s);
			kt_die("consume", topic, why);
		}
		if ((m = rd_kafka_consumer_poll(rk, 200)) == NULL)
			continue;
		if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
			rd_kafka_message_destroy(m);
			continue;
		}
		if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR)
			kt_die("consume", topic, rd_kafka_message_errstr(m));
		if (m->offset < hi[m->partition]) {
			fn(m, arg);
			got++;
			if (m->offset == hi[m->partition] - 1)
				left--;
		}
		rd_kafka_message_destroy(m);
	}
	free(hi);
	rd_kafka_consumer_close(rk);
	rd_kafka_destroy(rk);
	return got;
}

void
kt_delete_topics(const char *const *topics, int n)
{
	rd_kafka_t *rk = kt_client(RD_KAFKA_PRODUCER, NULL);
	rd_kafka_DeleteTopic_t **dts = calloc((size_t)n, sizeof(*dts));
	rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
	rd_kafka_event_t *ev;

	for (int i = 0; i < n; i++)
		dts[i] = rd_kafka_DeleteTopic_new(topics[i]);
	rd_kafka_DeleteTopics(rk, dts, (size_t)n, NULL, q);
	if ((ev = rd_kafka_queue_poll(q, KT_TIMEOUT_MS)) != NULL)
		rd_kafka_event_destroy(ev);
	rd_kafka_DeleteTopic_destroy_array(dts, (size_t)n);
	free(dts);
	rd_kafka_queue_destroy(q);
	rd_kafka_destroy(rk);
}

void
kt_produce_one(const char *topic, const char *key, const char *val, size_t len)
{
	rd_kafka_conf_t *kc = rd_kafka_conf_new();
	tally_kafka_producer_t *p;
	char err[256];

	rd_kafka_conf_set(kc, "bootstrap.servers", tally_test_service("TALLY_KAFKA_BROKERS"), NULL,
	                  0);
	if ((p = tally_kafka_producer_new(kc, err, sizeof(err))) == NULL)
		kt_die("producer", topic, err);
	if (tally_kafka_produce(p, topic, key, strlen(key), val, len) != 0 ||
	    tally_kafka_producer_flush(p, 30000, err, sizeof(err)) != 0)
		kt_die("produce", topic, err);
	tally_kafka_producer_destroy(p);
}

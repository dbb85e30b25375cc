/*
 * The Kafka adapter's foundation (adapters/kafka, include/tally/kafka.h) against the real
 * broker scripts/services started: configuration errors name file:line and quote
 * librdkafka; tally's standard topics are created with their partition counts and
 * compaction, idempotently, and a topic with too few partitions is refused clearly; the
 * producer delivers 200,000 keyed messages that a plain consumer reads back exactly, and a
 * topic that cannot exist makes flush fail; the producer tracks the offsets a topic's
 * messages land at, and a dead-letter scan from them finds exactly the later ones.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <librdkafka/rdkafka.h>

#include <tally/error.h>
#include <tally/kafka.h>

#include "services.h"
#include "testutil.h"

#define N_MESSAGES 200000
#define N_KEYS 50000           /* each key is sent N_MESSAGES / N_KEYS times, in order */
#define N_PARTITIONS 12
#define TIMEOUT_MS 30000


/* A topic prefix no other run shares. */
static void
unique_prefix(char *buf, size_t size, const char *what)
{
	snprintf(buf, size, "tally_test_kafka_%s_%ld_%d_", what, (long)time(NULL), (int)getpid());
}

static rd_kafka_conf_t *
conf_or_die(const tally_kafka_setting_t *settings, size_t n)
{
	char err[512] = "";
	rd_kafka_conf_t *conf =
	    tally_kafka_conf_new(tally_test_service("TALLY_KAFKA_BROKERS"), settings, n, err,
	                         sizeof(err));

	cr_assert_not_null(conf, "%s", err);
	return conf;
}

/* A plain client handle for admin calls and metadata. */
static rd_kafka_t *
admin_client(void)
{
	char err[512];
	rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf_or_die(NULL, 0), err, sizeof(err));

	cr_assert_not_null(rk, "%s", err);
	return rk;
}

static void
delete_topics(rd_kafka_t *rk, const char *const *names, size_t n)
{
	rd_kafka_DeleteTopic_t *dts[16];
	rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
	rd_kafka_event_t *ev;

	cr_assert(n <= 16);
	for (size_t i = 0; i < n; i++)
		dts[i] = rd_kafka_DeleteTopic_new(names[i]);
	rd_kafka_DeleteTopics(rk, dts, n, NULL, q);
	ev = rd_kafka_queue_poll(q, TIMEOUT_MS);
	if (ev != NULL)
		rd_kafka_event_destroy(ev);
	rd_kafka_DeleteTopic_destroy_array(dts, n);
	rd_kafka_queue_destroy(q);
}

static int
partitions_of(rd_kafka_t *rk, const char *name)
{
	rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, name, NULL);
	const struct rd_kafka_metadata *md;
	rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 0, rkt, &md, TIMEOUT_MS);
	int n;

	cr_assert_eq(e, RD_KAFKA_RESP_ERR_NO_ERROR, "metadata \"%s\": %s", name,
	             rd_kafka_err2str(e));
	cr_assert_eq(md->topic_cnt, 1);
	cr_assert_eq(md->topics[0].err, RD_KAFKA_RESP_ERR_NO_ERROR, "metadata \"%s\": %s", name,
	             rd_kafka_err2str(md->topics[0].err));
	n = md->topics[0].partition_cnt;
	rd_kafka_metadata_destroy(md);
	rd_kafka_topic_destroy(rkt);
	return n;
}

/* The value of a topic's configuration entry, from DescribeConfigs, into out. */
static void
topic_config(rd_kafka_t *rk, const char *topic, const char *key, char *out, size_t out_size)
{
	rd_kafka_ConfigResource_t *cr = rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, topic);
	rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
	const rd_kafka_ConfigResource_t **res;
	const rd_kafka_ConfigEntry_t **entries;
	rd_kafka_event_t *ev;
	size_t nres, nentries;

	out[0] = '\0';
	rd_kafka_DescribeConfigs(rk, &cr, 1, NULL, q);
	ev = rd_kafka_queue_poll(q, TIMEOUT_MS);
	cr_assert_not_null(ev, "DescribeConfigs \"%s\": no answer", topic);
	cr_assert_eq(rd_kafka_event_error(ev), RD_KAFKA_RESP_ERR_NO_ERROR, "DescribeConfigs: %s",
	             rd_kafka_event_error_string(ev));
	res = rd_kafka_DescribeConfigs_result_resources(rd_kafka_event_DescribeConfigs_result(ev),
	                                                &nres);
	cr_assert_eq(nres, 1);
	cr_assert_eq(rd_kafka_ConfigResource_error(res[0]), RD_KAFKA_RESP_ERR_NO_ERROR,
	             "DescribeConfigs \"%s\": %s", topic,
	             rd_kafka_ConfigResource_error_string(res[0]));
	entries = rd_kafka_ConfigResource_configs(res[0], &nentries);
	for (size_t i = 0; i < nentries; i++)
		if (strcmp(rd_kafka_ConfigEntry_name(entries[i]), key) == 0 &&
		    rd_kafka_ConfigEntry_value(entries[i]) != NULL)
			snprintf(out, out_size, "%s", rd_kafka_ConfigEntry_value(entries[i]));
	rd_kafka_event_destroy(ev);
	rd_kafka_ConfigResource_destroy(cr);
	rd_kafka_queue_destroy(q);
}

/* ---- configuration ---- */

Test(kafka_conf, unknown_key_names_where_and_key)
{
	tally_kafka_setting_t s[] = {
		{"kafka.linger.ms", "5", "tally.conf:11"},
		{"kafka.socket.timout.ms", "1000", "tally.conf:12"},
	};
	char err[512] = "";

	cr_assert_null(tally_kafka_conf_new("127.0.0.1:9092", s, 2, err, sizeof(err)));
	cr_assert_str_eq(err, "tally.conf:12: kafka.socket.timout.ms: No such configuration "
	                      "property: \"socket.timout.ms\"");
}

Test(kafka_conf, bad_value_names_where_and_key)
{
	tally_kafka_setting_t s[] = {{"kafka.socket.timeout.ms", "soon", "tally.conf:7"}};
	tally_kafka_setting_t r[] = {{"kafka.socket.timeout.ms", "1", "tally.conf:8"}};
	char err[512] = "";

	cr_assert_null(tally_kafka_conf_new("127.0.0.1:9092", s, 1, err, sizeof(err)));
	cr_assert_str_eq(err, "tally.conf:7: kafka.socket.timeout.ms: Invalid value for "
	                      "configuration property \"socket.timeout.ms\"");
	cr_assert_null(tally_kafka_conf_new("127.0.0.1:9092", r, 1, err, sizeof(err)));
	cr_assert_str_eq(err, "tally.conf:8: kafka.socket.timeout.ms: Configuration property "
	                      "\"socket.timeout.ms\" value 1 is outside allowed range 10..300000");
}

Test(kafka_conf, missing_brokers)
{
	tally_kafka_setting_t s[] = {{"kafka.linger.ms", "5", "tally.conf:3"}};
	tally_kafka_setting_t b[] = {{"kafka.bootstrap.servers", "127.0.0.1:9092", "tally.conf:4"}};
	char err[512] = "", value[256];
	size_t size = sizeof(value);
	rd_kafka_conf_t *conf;

	cr_assert_null(tally_kafka_conf_new(NULL, s, 1, err, sizeof(err)));
	cr_assert_str_eq(err, "no Kafka brokers: set TALLY_KAFKA_BROKERS or kafka.bootstrap.servers");
	cr_assert_null(tally_kafka_conf_new("", NULL, 0, err, sizeof(err)));
	cr_assert_str_eq(err, "no Kafka brokers: set TALLY_KAFKA_BROKERS or kafka.bootstrap.servers");

	conf = tally_kafka_conf_new(NULL, b, 1, err, sizeof(err));
	cr_assert_not_null(conf, "%s", err);
	cr_assert_eq(rd_kafka_conf_get(conf, "bootstrap.servers", value, &size), RD_KAFKA_CONF_OK);
	cr_assert_str_eq(value, "127.0.0.1:9092");
	rd_kafka_conf_destroy(conf);

	/* Settings come after the broker list, so a kafka.bootstrap.servers line wins. */
	size = sizeof(value);
	conf = tally_kafka_conf_new("10.0.0.1:9092", b, 1, err, sizeof(err));
	cr_assert_not_null(conf, "%s", err);
	cr_assert_eq(rd_kafka_conf_get(conf, "bootstrap.servers", value, &size), RD_KAFKA_CONF_OK);
	cr_assert_str_eq(value, "127.0.0.1:9092");
	rd_kafka_conf_destroy(conf);
}

Test(kafka_conf, settings_applied_without_prefix)
{
	tally_kafka_setting_t s[] = {
		{"kafka.linger.ms", "17", "tally.conf:1"},
		{"client.id", "tally-test", "tally.conf:2"},
	};
	char err[512] = "", value[256];
	size_t size = sizeof(value);
	rd_kafka_conf_t *conf = tally_kafka_conf_new("127.0.0.1:9092", s, 2, err, sizeof(err));

	cr_assert_not_null(conf, "%s", err);
	cr_assert_eq(rd_kafka_conf_get(conf, "linger.ms", value, &size), RD_KAFKA_CONF_OK);
	cr_assert_str_eq(value, "17");
	size = sizeof(value);
	cr_assert_eq(rd_kafka_conf_get(conf, "client.id", value, &size), RD_KAFKA_CONF_OK);
	cr_assert_str_eq(value, "tally-test");
	rd_kafka_conf_destroy(conf);
}

Test(kafka_err, codes_wrapped)
{
	cr_assert_eq(tally_kafka_err(RD_KAFKA_RESP_ERR_NO_ERROR), 0);
	cr_assert_eq(tally_kafka_err(RD_KAFKA_RESP_ERR__TIMED_OUT), TALLY_ETIMEDOUT);
	cr_assert_eq(tally_kafka_err(RD_KAFKA_RESP_ERR__MSG_TIMED_OUT), TALLY_ETIMEDOUT);
	cr_assert_eq(tally_kafka_err(RD_KAFKA_RESP_ERR__QUEUE_FULL), TALLY_EAGAIN);
	cr_assert_eq(tally_kafka_err(RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART), TALLY_ENOENT);
	cr_assert_eq(tally_kafka_err(RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS), TALLY_EEXISTS);
	cr_assert_eq(tally_kafka_err(RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION), TALLY_EINVAL);
	cr_assert_eq(tally_kafka_err(RD_KAFKA_RESP_ERR__TRANSPORT), TALLY_EIO);
	cr_assert_eq(tally_kafka_err(RD_KAFKA_RESP_ERR_INVALID_MSG), TALLY_ECORRUPT);
}

/* ---- topics ---- */

Test(kafka_topics, standard_table)
{
	tally_kafka_topics_t t;
	char err[512] = "", longp[300];

	cr_assert_eq(tally_kafka_topics_init(&t, NULL, 0, err, sizeof(err)), 0, "%s", err);
	cr_assert_str_eq(t.topic[TALLY_KAFKA_VOTES].name, "votes_topic");
	cr_assert_str_eq(t.topic[TALLY_KAFKA_VOTERS].name, "voters_topic");
	cr_assert_str_eq(t.topic[TALLY_KAFKA_CANDIDATES].name, "candidates_topic");
	cr_assert_str_eq(t.topic[TALLY_KAFKA_RESULTS_CANDIDATE].name,
	                 "aggregated_votes_per_candidate");
	cr_assert_str_eq(t.topic[TALLY_KAFKA_RESULTS_LOCATION].name,
	                 "aggregated_turnout_by_location");
	cr_assert_str_eq(t.topic[TALLY_KAFKA_RESULTS_PARTY].name, "aggregated_votes_per_party");
	cr_assert_str_eq(t.topic[TALLY_KAFKA_REJECTED].name, "votes_rejected");
	cr_assert_eq(t.topic[TALLY_KAFKA_VOTES].partitions, 12);
	cr_assert_eq(t.topic[TALLY_KAFKA_REJECTED].partitions, 12);
	cr_assert_eq(t.topic[TALLY_KAFKA_RESULTS_PARTY].partitions, 1);
	cr_assert_eq(t.topic[TALLY_KAFKA_RESULTS_PARTY].nconfig, 1);
	cr_assert_str_eq(t.topic[TALLY_KAFKA_RESULTS_PARTY].config[0].key, "cleanup.policy");
	cr_assert_str_eq(t.topic[TALLY_KAFKA_RESULTS_PARTY].config[0].value, "compact");
	cr_assert_eq(t.topic[TALLY_KAFKA_VOTES].nconfig, 0);

	memset(longp, 'x', 240);
	longp[240] = '\0';
	cr_assert_eq(tally_kafka_topics_init(&t, longp, 4, err, sizeof(err)), TALLY_EINVAL);
	cr_assert_not_null(strstr(err, "is too long: 251 characters, at most 249"), "%s", err);
	cr_assert_eq(tally_kafka_topics_init(&t, "p_", -1, err, sizeof(err)), TALLY_EINVAL);
	cr_assert_str_eq(err, "invalid partition count -1: must be at least 1");
}

Test(kafka_topics, ensure_standard_topics, .timeout = 300)
{
	rd_kafka_t *rk = admin_client();
	tally_kafka_topics_t t;
	tally_kafka_topic_t few;
	const char *names[TALLY_KAFKA_N_TOPICS + 1];
	char prefix[128], err[512] = "", want[600], value[64], fewname[200];

	unique_prefix(prefix, sizeof(prefix), "topics");
	cr_assert_eq(tally_kafka_topics_init(&t, prefix, 0, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(tally_kafka_ensure_topics(rk, t.topic, TALLY_KAFKA_N_TOPICS, TIMEOUT_MS, err,
	                                       sizeof(err)),
	             0, "first call: %s", err);
	for (int i = 0; i < TALLY_KAFKA_N_TOPICS; i++) {
		int compact = tally_kafka_topic_is_results(i);

		names[i] = t.topic[i].name;
		cr_assert_eq(partitions_of(rk, t.topic[i].name), compact ? 1 : 12, "\"%s\"",
		             t.topic[i].name);
		topic_config(rk, t.topic[i].name, "cleanup.policy", value, sizeof(value));
		cr_assert_str_eq(value, compact ? "compact" : "delete", "\"%s\"", t.topic[i].name);
	}

	/* A second call finds them all and is content. */
	cr_assert_eq(tally_kafka_ensure_topics(rk, t.topic, TALLY_KAFKA_N_TOPICS, TIMEOUT_MS, err,
	                                       sizeof(err)),
	             0, "second call: %s", err);

	/* An existing topic with fewer partitions than asked for is refused, naming both. */
	snprintf(fewname, sizeof(fewname), "%sfew", prefix);
	few = (tally_kafka_topic_t){.name = fewname, .partitions = 3};
	cr_assert_eq(tally_kafka_ensure_topics(rk, &few, 1, TIMEOUT_MS, err, sizeof(err)), 0, "%s",
	             err);
	cr_assert_eq(partitions_of(rk, fewname), 3);
	few.partitions = 12;
	cr_assert_eq(tally_kafka_ensure_topics(rk, &few, 1, TIMEOUT_MS, err, sizeof(err)),
	             TALLY_ESTATE);
	snprintf(want, sizeof(want),
	         "topic \"%s\" exists with 3 partitions, fewer than the 12 asked for", fewname);
	cr_assert_str_eq(err, want);
	few.partitions = 2;
	cr_assert_eq(tally_kafka_ensure_topics(rk, &few, 1, TIMEOUT_MS, err, sizeof(err)), 0,
	             "more partitions than asked for is fine: %s", err);

	names[TALLY_KAFKA_N_TOPICS] = fewname;
	delete_topics(rk, names, TALLY_KAFKA_N_TOPICS + 1);
	rd_kafka_destroy(rk);
}

Test(kafka_topics, invalid_topic_refused)
{
	rd_kafka_t *rk = admin_client();
	tally_kafka_topic_t bad = {.name = "tally test: not a topic!", .partitions = 1};
	char err[512] = "";

	cr_assert_lt(tally_kafka_ensure_topics(rk, &bad, 1, TIMEOUT_MS, err, sizeof(err)), 0);
	cr_assert(strncmp(err, "could not create topic \"tally test: not a topic!\": ", 51) == 0,
	          "%s", err);
	fprintf(stderr, "kafka topics: %s\n", err);
	rd_kafka_destroy(rk);
}

/* ---- producer ---- */

static int
make_value(char *buf, size_t size, int i)
{
	return snprintf(buf, size, "{\"seq\":%d,\"key\":%d,\"round\":%d,\"pad\":\"%08x\"}", i,
	                i % N_KEYS, i / N_KEYS, (unsigned)i * 2654435761u);
}

static void
consume_and_check(const char *topic)
{
	char err[512], want[128];
	tally_kafka_setting_t s[] = {
		{"kafka.group.id", "tally-test-kafka", "test"},
		{"kafka.enable.auto.commit", "false", "test"},
		{"kafka.enable.partition.eof", "true", "test"},
	};
	rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf_or_die(s, 3), err, sizeof(err));
	rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(N_PARTITIONS);
	int *key_partition = malloc(N_KEYS * sizeof(int));
	int *key_next_round = calloc(N_KEYS, sizeof(int));
	long got = 0;
	double deadline = test_now_s() + 180;

	cr_assert_not_null(rk, "%s", err);
	cr_assert(key_partition != NULL && key_next_round != NULL);
	for (int k = 0; k < N_KEYS; k++)
		key_partition[k] = -1;
	for (int p = 0; p < N_PARTITIONS; p++)
		rd_kafka_topic_partition_list_add(parts, topic, p)->offset = RD_KAFKA_OFFSET_BEGINNING;
	cr_assert_eq(rd_kafka_assign(rk, parts), RD_KAFKA_RESP_ERR_NO_ERROR);
	rd_kafka_topic_partition_list_destroy(parts);

	while (got < N_MESSAGES && test_now_s() < deadline) {
		rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
		int k, i, wlen;

		if (m == NULL)
			continue;
		if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
			rd_kafka_message_destroy(m);
			continue;
		}
		cr_assert_eq(m->err, RD_KAFKA_RESP_ERR_NO_ERROR, "consume: %s",
		             rd_kafka_message_errstr(m));
		cr_assert_eq(m->key_len, 11, "key of %zu bytes", m->key_len);
		cr_assert_eq(sscanf((const char *)m->key, "voter-%5d", &k), 1);
		cr_assert(k >= 0 && k < N_KEYS, "key %d", k);
		/* Every message of a key lands in one partition, in the order produced. */
		if (key_partition[k] < 0)
			key_partition[k] = m->partition;
		cr_assert_eq(m->partition, key_partition[k], "key %d in partitions %d and %d", k,
		             key_partition[k], (int)m->partition);
		cr_assert(key_next_round[k] < N_MESSAGES / N_KEYS, "key %d: too many messages", k);
		i = key_next_round[k]++ * N_KEYS + k;
		wlen = make_value(want, sizeof(want), i);
		cr_assert_eq(m->len, (size_t)wlen, "message %d: %zu bytes", i, m->len);
		cr_assert(memcmp(m->payload, want, (size_t)wlen) == 0, "message %d: %.*s", i,
		          (int)m->len, (const char *)m->payload);
		got++;
		rd_kafka_message_destroy(m);
	}
	cr_assert_eq(got, N_MESSAGES, "consumed %ld of %d messages within 180 s", got, N_MESSAGES);
	/* Nothing more than was produced: a short extra wait finds no further message. */
	for (double end = test_now_s() + 1; test_now_s() < end;) {
		rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);

		if (m == NULL)
			continue;
		cr_assert_eq(m->err, RD_KAFKA_RESP_ERR__PARTITION_EOF,
		             "a message beyond the %d produced", N_MESSAGES);
		rd_kafka_message_destroy(m);
	}
	for (int k = 0; k < N_KEYS; k++)
		cr_assert_eq(key_next_round[k], N_MESSAGES / N_KEYS, "key %d: %d messages", k,
		             key_next_round[k]);
	free(key_partition);
	free(key_next_round);
	rd_kafka_consumer_close(rk);
	rd_kafka_destroy(rk);
}

Test(kafka_producer, produce_200k_keyed_read_back_exactly, .timeout = 600)
{
	tally_kafka_setting_t s[] = {{"kafka.linger.ms", "5", "test"}};
	rd_kafka_t *admin = admin_client();
	tally_kafka_producer_t *p;
	tally_kafka_topic_t topic;
	char prefix[128], name[200], err[512] = "", key[16], value[128];
	double t0, t1;

	unique_prefix(prefix, sizeof(prefix), "producer");
	snprintf(name, sizeof(name), "%svotes", prefix);
	topic = (tally_kafka_topic_t){.name = name, .partitions = N_PARTITIONS};
	cr_assert_eq(tally_kafka_ensure_topics(admin, &topic, 1, TIMEOUT_MS, err, sizeof(err)), 0,
	             "%s", err);

	p = tally_kafka_producer_new(conf_or_die(s, 1), err, sizeof(err));
	cr_assert_not_null(p, "%s", err);
	t0 = test_now_s();
	for (int i = 0; i < N_MESSAGES; i++) {
		int klen = snprintf(key, sizeof(key), "voter-%05d", i % N_KEYS);
		int vlen = make_value(value, sizeof(value), i);
		int rc = tally_kafka_produce(p, name, key, (size_t)klen, value, (size_t)vlen);

		cr_assert_eq(rc, 0, "produce %d: %s", i, tally_err2str(rc));
	}
	cr_assert_eq(tally_kafka_producer_flush(p, 120000, err, sizeof(err)), 0, "flush: %s", err);
	t1 = test_now_s();
	cr_assert_eq(tally_kafka_producer_delivered(p), N_MESSAGES);
	cr_assert_eq(tally_kafka_producer_failed(p), 0);
	fprintf(stderr, "kafka producer: %d messages delivered in %.2f s: %.0f messages/s\n",
	        N_MESSAGES, t1 - t0, N_MESSAGES / (t1 - t0));
	tally_kafka_producer_destroy(p);

	consume_and_check(name);
	delete_topics(admin, (const char *const[]){name}, 1);
	rd_kafka_destroy(admin);
}

#define MT_THREADS 4
#define MT_PER_THREAD 10000

struct mt_arg {
	tally_kafka_producer_t *p;
	const char *topic;
	int thread;
	int failures;
};

static void *
mt_produce(void *opaque)
{
	struct mt_arg *a = opaque;
	char key[32], value[64];

	for (int i = 0; i < MT_PER_THREAD; i++) {
		int klen = snprintf(key, sizeof(key), "t%d-%d", a->thread, i);
		int vlen = snprintf(value, sizeof(value), "thread %d message %d", a->thread, i);

		if (tally_kafka_produce(a->p, a->topic, key, (size_t)klen, value, (size_t)vlen) != 0)
			a->failures++;
		if (i % 2500 == 0 && a->thread == 0) {
			char err[512];

			/* A flush from one thread while the others produce. */
			if (tally_kafka_producer_flush(a->p, 60000, err, sizeof(err)) != 0)
				a->failures++;
		}
	}
	return NULL;
}

Test(kafka_producer, several_threads_share_one_producer, .timeout = 300)
{
	rd_kafka_t *admin = admin_client();
	tally_kafka_producer_t *p;
	tally_kafka_topic_t topic;
	struct mt_arg args[MT_THREADS];
	pthread_t th[MT_THREADS];
	char prefix[128], name[200], err[512] = "";
	int64_t total = 0;

	unique_prefix(prefix, sizeof(prefix), "threads");
	snprintf(name, sizeof(name), "%sshared", prefix);
	topic = (tally_kafka_topic_t){.name = name, .partitions = 3};
	cr_assert_eq(tally_kafka_ensure_topics(admin, &topic, 1, TIMEOUT_MS, err, sizeof(err)), 0,
	             "%s", err);
	p = tally_kafka_producer_new(conf_or_die(NULL, 0), err, sizeof(err));
	cr_assert_not_null(p, "%s", err);
	for (int t = 0; t < MT_THREADS; t++) {
		args[t] = (struct mt_arg){.p = p, .topic = name, .thread = t};
		cr_assert_eq(pthread_create(&th[t], NULL, mt_produce, &args[t]), 0);
	}
	for (int t = 0; t < MT_THREADS; t++) {
		pthread_join(th[t], NULL);
		cr_assert_eq(args[t].failures, 0, "thread %d: %d failures", t, args[t].failures);
	}
	cr_assert_eq(tally_kafka_producer_flush(p, 60000, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(tally_kafka_producer_delivered(p), MT_THREADS * MT_PER_THREAD);
	cr_assert_eq(tally_kafka_producer_failed(p), 0);
	tally_kafka_producer_destroy(p);
	for (int part = 0; part < 3; part++) {
		int64_t lo, hi;

		cr_assert_eq(rd_kafka_query_watermark_offsets(admin, name, part, &lo, &hi, TIMEOUT_MS),
		             RD_KAFKA_RESP_ERR_NO_ERROR);
		total += hi - lo;
	}
	cr_assert_eq(total, MT_THREADS * MT_PER_THREAD, "%lld messages in the topic",
	             (long long)total);
	delete_topics(admin, (const char *const[]){name}, 1);
	rd_kafka_destroy(admin);
}

/* Produces 3 messages to a topic that cannot exist and checks flush reports all three. */
static void
check_impossible(tally_kafka_producer_t *p, const char *topic)
{
	char err[1024] = "", want[600];
	int rc;

	for (int i = 0; i < 3; i++)
		/* Refused at once or in delivery: either way flush must report it. */
		(void)tally_kafka_produce(p, topic, "k", 1, "v", 1);
	rc = tally_kafka_producer_flush(p, 60000, err, sizeof(err));
	cr_assert_lt(rc, 0, "flush reported no error for \"%.40s...\"", topic);
	cr_assert_neq(rc, TALLY_ETIMEDOUT, "%s", err);
	snprintf(want, sizeof(want), "3 messages failed delivery, the first to topic \"%s\": ",
	         topic);
	cr_assert(strncmp(err, want, strlen(want)) == 0, "%s", err);
	fprintf(stderr, "kafka producer: topic of %zu characters: %s: ...%s (%s)\n", strlen(topic),
	        tally_err_name(rc), strstr(err, "\": ") + 1, tally_err2str(rc));
	/* Reported once: the next flush starts counting again. */
	cr_assert_eq(tally_kafka_producer_flush(p, 1000, err, sizeof(err)), 0, "%s", err);
}

Test(kafka_producer, impossible_topic_fails_flush, .timeout = 180)
{
	tally_kafka_setting_t s[] = {{"kafka.message.timeout.ms", "20000", "test"}};
	tally_kafka_producer_t *p;
	char longname[300], err[512] = "";

	memset(longname, 'x', 260);
	longname[260] = '\0';
	p = tally_kafka_producer_new(conf_or_die(s, 1), err, sizeof(err));
	cr_assert_not_null(p, "%s", err);
	check_impossible(p, "tally test: not a topic!");
	check_impossible(p, longname);
	cr_assert_eq(tally_kafka_producer_failed(p), 6);
	cr_assert_eq(tally_kafka_producer_delivered(p), 0);
	tally_kafka_producer_destroy(p);
}

Test(kafka_producer, destroy_null_is_noop)
{
	tally_kafka_producer_destroy(NULL);
}

/* One dead letter as tallyd writes it: the vote's key and bytes, its source in headers. */
static void
produce_dead_letter(tally_kafka_producer_t *p, const char *topic, const char *election,
                    const char *source, int partition, long offset)
{
	char part[16], off[24], key[64];
	tally_kafka_header_t h[4] = {
	    {"election_id", election, strlen(election)},
	    {"source_topic", source, strlen(source)},
	    {"source_partition", part, 0},
	    {"source_offset", off, 0},
	};

	snprintf(part, sizeof(part), "%d", partition);
	snprintf(off, sizeof(off), "%ld", offset);
	snprintf(key, sizeof(key), "voter-%d-%ld", partition, offset);
	h[2].len = strlen(part);
	h[3].len = strlen(off);
	cr_assert_eq(tally_kafka_produce_headers(p, topic, key, strlen(key), "{}", 2, h, 4), 0);
}

/*
 * The producer tracks where a topic's messages land (1 + the highest offset acknowledged
 * per partition), and a scan from those offsets finds exactly the dead letters written
 * after them, of one election and source topic, sorted and without duplicates.
 */
Test(kafka_dead_letters, tracked_offsets_and_scan_exactly, .timeout = 300)
{
	rd_kafka_t *rk = admin_client();
	tally_kafka_topic_t t;
	tally_kafka_producer_t *p;
	tally_kafka_dead_letters_t dl;
	const char *names[1];
	char prefix[128], name[200], err[512] = "";
	int64_t next[4], mid[4], total = 0;

	unique_prefix(prefix, sizeof(prefix), "dl");
	snprintf(name, sizeof(name), "%svotes_rejected", prefix);
	t = (tally_kafka_topic_t){.name = name, .partitions = 3};
	cr_assert_eq(tally_kafka_ensure_topics(rk, &t, 1, TIMEOUT_MS, err, sizeof(err)), 0, "%s",
	             err);
	p = tally_kafka_producer_new(conf_or_die(NULL, 0), err, sizeof(err));
	cr_assert_not_null(p, "%s", err);
	cr_assert_eq(tally_kafka_producer_track(p, name, 3), 0);
	cr_assert_eq(tally_kafka_producer_track(p, name, 3), TALLY_EINVAL, "tracks one topic");
	cr_assert_eq(tally_kafka_producer_tracked(p, next, 4), 3);
	for (int i = 0; i < 4; i++)
		cr_assert_eq(next[i], -1, "nothing delivered yet to %d", i);

	/* Before the cut: 300 dead letters of election "a" from source partitions 0..2. */
	for (long o = 0; o < 100; o++)
		for (int sp = 0; sp < 3; sp++)
			produce_dead_letter(p, name, "a", "src", sp, o);
	cr_assert_eq(tally_kafka_producer_flush(p, TIMEOUT_MS, err, sizeof(err)), 0, "%s", err);
	tally_kafka_producer_tracked(p, mid, 4);
	for (int i = 0; i < 3; i++) {
		cr_assert_geq(mid[i], 0, "partition %d got messages", i);
		total += mid[i];
	}
	cr_assert_eq(total, 300, "1 + the highest offset of each partition adds up to 300");
	cr_assert_eq(mid[3], -1);

	/* After the cut: 50 of "a" (10 of them twice, as a retried write would), and others'. */
	for (long o = 100; o < 150; o++)
		produce_dead_letter(p, name, "a", "src", (int)(o % 3), o);
	for (long o = 100; o < 110; o++)
		produce_dead_letter(p, name, "a", "src", (int)(o % 3), o);
	for (long o = 0; o < 40; o++) {
		produce_dead_letter(p, name, "b", "src", 0, 1000 + o);        /* another election */
		produce_dead_letter(p, name, "a", "other_src", 1, 2000 + o);  /* another source */
	}
	cr_assert_eq(tally_kafka_producer_flush(p, TIMEOUT_MS, err, sizeof(err)), 0, "%s", err);
	tally_kafka_producer_tracked(p, next, 4);
	total = 0;
	for (int i = 0; i < 3; i++)
		total += next[i];
	cr_assert_eq(total, 300 + 50 + 10 + 80);

	cr_assert_eq(tally_kafka_dead_letters_scan(conf_or_die(NULL, 0), name, mid, 3, "a", "src",
	                                           TIMEOUT_MS, &dl, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(dl.messages, 50 + 10 + 80, "read only what came after the cut");
	cr_assert_eq(dl.npos, 50);
	for (size_t i = 0; i < dl.npos; i++) {
		if (i > 0)
			cr_assert(dl.pos[i - 1].partition < dl.pos[i].partition ||
			          (dl.pos[i - 1].partition == dl.pos[i].partition &&
			           dl.pos[i - 1].offset < dl.pos[i].offset), "sorted, no duplicates");
		cr_assert_eq(dl.pos[i].partition, (int32_t)(dl.pos[i].offset % 3));
		/* Where it is: after the cut in its dead-letter partition, the first copy. */
		cr_assert(dl.pos[i].dl_partition >= 0 && dl.pos[i].dl_partition < 3);
		cr_assert_geq(dl.pos[i].dl_offset, mid[dl.pos[i].dl_partition]);
		cr_assert_lt(dl.pos[i].dl_offset, next[dl.pos[i].dl_partition]);
	}
	for (long o = 100; o < 150; o++)
		cr_assert(tally_kafka_dead_letters_has(&dl, (int32_t)(o % 3), o), "%ld found", o);
	cr_assert_not(tally_kafka_dead_letters_has(&dl, 0, 99), "before the cut: not read");
	cr_assert_not(tally_kafka_dead_letters_has(&dl, 0, 1000), "another election's");
	cr_assert_not(tally_kafka_dead_letters_has(&dl, 1, 2001), "another source's");
	cr_assert_eq(dl.nend, 3);
	for (int i = 0; i < 3; i++)
		cr_assert_eq(dl.end[i], next[i], "partition %d's end is its high watermark", i);
	tally_kafka_dead_letters_free(&dl);

	/* No stored offsets: the whole topic. */
	cr_assert_eq(tally_kafka_dead_letters_scan(conf_or_die(NULL, 0), name, NULL, 0, "a", "src",
	                                           TIMEOUT_MS, &dl, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(dl.messages, 300 + 50 + 10 + 80);
	cr_assert_eq(dl.npos, 350);
	tally_kafka_dead_letters_free(&dl);

	/* A topic that is not there is an error that names it. */
	snprintf(name + strlen(name), sizeof(name) - strlen(name), "_missing");
	cr_assert_neq(tally_kafka_dead_letters_scan(conf_or_die(NULL, 0), name, NULL, 0, "a", "src",
	                                            5000, &dl, err, sizeof(err)), 0);
	cr_assert_not_null(strstr(err, name), "%s", err);
	name[strlen(name) - strlen("_missing")] = '\0';

	tally_kafka_producer_destroy(p);
	names[0] = name;
	delete_topics(rk, names, 1);
	rd_kafka_destroy(rk);
}

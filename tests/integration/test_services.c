/*
 * Smoke test of the services scripts/services starts (or that TALLY_KAFKA_BROKERS and
 * TALLY_PG_DSN name): Kafka takes a topic, 100,000 idempotent acks=all messages and gives them
 * all back to a consumer group; PostgreSQL takes 1,000 parameterised rows and sums them;
 * `scripts/services status` says all is up; and an unreachable TALLY_PG_DSN makes
 * `scripts/services up` fail naming it.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <libpq-fe.h>
#include <librdkafka/rdkafka.h>

#include "services.h"
#include "testutil.h"

#define N_MESSAGES 100000
#define N_PARTITIONS 3
#define N_ROWS 1000


static rd_kafka_conf_t *
kafka_conf(void)
{
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	char err[512];

	cr_assert_eq(rd_kafka_conf_set(conf, "bootstrap.servers",
	                               tally_test_service("TALLY_KAFKA_BROKERS"), err, sizeof(err)),
	             RD_KAFKA_CONF_OK, "%s", err);
	return conf;
}

static void
conf_set(rd_kafka_conf_t *conf, const char *name, const char *value)
{
	char err[512];

	cr_assert_eq(rd_kafka_conf_set(conf, name, value, err, sizeof(err)), RD_KAFKA_CONF_OK,
	             "%s=%s: %s", name, value, err);
}

static void
create_topic(const char *topic)
{
	char err[512];
	rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, kafka_conf(), err, sizeof(err));
	rd_kafka_NewTopic_t *nt;
	rd_kafka_queue_t *q;
	rd_kafka_event_t *ev;
	const rd_kafka_topic_result_t **res;
	size_t n;

	cr_assert_not_null(rk, "%s", err);
	nt = rd_kafka_NewTopic_new(topic, N_PARTITIONS, 1, err, sizeof(err));
	cr_assert_not_null(nt, "%s", err);
	q = rd_kafka_queue_new(rk);
	rd_kafka_CreateTopics(rk, &nt, 1, NULL, q);
	ev = rd_kafka_queue_poll(q, 30000);
	cr_assert_not_null(ev, "CreateTopics \"%s\": no answer within 30 s", topic);
	cr_assert_eq(rd_kafka_event_error(ev), RD_KAFKA_RESP_ERR_NO_ERROR, "CreateTopics: %s",
	             rd_kafka_event_error_string(ev));
	res = rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &n);
	cr_assert_eq(n, 1);
	cr_assert_eq(rd_kafka_topic_result_error(res[0]), RD_KAFKA_RESP_ERR_NO_ERROR,
	             "CreateTopics \"%s\": %s", topic, rd_kafka_topic_result_error_string(res[0]));
	rd_kafka_event_destroy(ev);
	rd_kafka_NewTopic_destroy(nt);
	rd_kafka_queue_destroy(q);
	rd_kafka_destroy(rk);
}

static void
delete_topic(const char *topic)
{
	char err[512];
	rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, kafka_conf(), err, sizeof(err));
	rd_kafka_DeleteTopic_t *dt = rd_kafka_DeleteTopic_new(topic);
	rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
	rd_kafka_event_t *ev;

	rd_kafka_DeleteTopics(rk, &dt, 1, NULL, q);
	ev = rd_kafka_queue_poll(q, 30000);
	if (ev != NULL)
		rd_kafka_event_destroy(ev);
	rd_kafka_DeleteTopic_destroy(dt);
	rd_kafka_queue_destroy(q);
	rd_kafka_destroy(rk);
}

static long delivered, delivery_errors;

static void
on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	(void)rk;
	(void)opaque;
	if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR)
		delivered++;
	else if (delivery_errors++ == 0)
		fprintf(stderr, "delivery failed: %s\n", rd_kafka_err2str(m->err));
}

static void
produce_all(const char *topic)
{
	char err[512], key[32], value[64];
	rd_kafka_conf_t *conf = kafka_conf();
	rd_kafka_t *rk;

	conf_set(conf, "acks", "all");
	conf_set(conf, "enable.idempotence", "true");
	conf_set(conf, "linger.ms", "5");
	rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
	rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
	cr_assert_not_null(rk, "%s", err);
	for (int i = 0; i < N_MESSAGES; i++) {
		rd_kafka_resp_err_t e;
		int klen = snprintf(key, sizeof(key), "k%06d", i);
		int vlen = snprintf(value, sizeof(value), "message %d of %d", i, N_MESSAGES);

		while ((e = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic),
		                              RD_KAFKA_V_KEY(key, (size_t)klen),
		                              RD_KAFKA_V_VALUE(value, (size_t)vlen),
		                              RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
		                              RD_KAFKA_V_END)) == RD_KAFKA_RESP_ERR__QUEUE_FULL)
			rd_kafka_poll(rk, 10);
		cr_assert_eq(e, RD_KAFKA_RESP_ERR_NO_ERROR, "produce: %s", rd_kafka_err2str(e));
		rd_kafka_poll(rk, 0);
	}
	cr_assert_eq(rd_kafka_flush(rk, 60000), RD_KAFKA_RESP_ERR_NO_ERROR,
	             "flush: messages still in flight after 60 s");
	cr_assert_eq(delivery_errors, 0, "%ld delivery errors", delivery_errors);
	cr_assert_eq(delivered, N_MESSAGES);
	rd_kafka_destroy(rk);
}

static void
consume_all(const char *topic)
{
	char err[512], group[160], want[64];
	rd_kafka_conf_t *conf = kafka_conf();
	rd_kafka_topic_partition_list_t *sub;
	unsigned char *seen = calloc(N_MESSAGES, 1);
	long distinct = 0, duplicates = 0;
	double deadline = test_now_s() + 120;
	rd_kafka_t *rk;

	cr_assert_not_null(seen);
	snprintf(group, sizeof(group), "%s-group", topic);
	conf_set(conf, "group.id", group);
	conf_set(conf, "auto.offset.reset", "earliest");
	conf_set(conf, "enable.auto.commit", "false");
	rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
	cr_assert_not_null(rk, "%s", err);
	rd_kafka_poll_set_consumer(rk);
	sub = rd_kafka_topic_partition_list_new(1);
	rd_kafka_topic_partition_list_add(sub, topic, RD_KAFKA_PARTITION_UA);
	cr_assert_eq(rd_kafka_subscribe(rk, sub), RD_KAFKA_RESP_ERR_NO_ERROR);
	rd_kafka_topic_partition_list_destroy(sub);
	while (distinct < N_MESSAGES && test_now_s() < deadline) {
		rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
		int i, wlen;

		if (m == NULL)
			continue;
		if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
			rd_kafka_message_destroy(m);
			continue;
		}
		cr_assert_eq(m->err, RD_KAFKA_RESP_ERR_NO_ERROR, "consume: %s",
		             rd_kafka_message_errstr(m));
		cr_assert_eq(m->key_len, 7, "key of %zu bytes", m->key_len);
		cr_assert_eq(sscanf((const char *)m->key + 1, "%6d", &i), 1);
		cr_assert(i >= 0 && i < N_MESSAGES, "key index %d", i);
		wlen = snprintf(want, sizeof(want), "message %d of %d", i, N_MESSAGES);
		cr_assert_eq(m->len, (size_t)wlen, "value of message %d has %zu bytes", i, m->len);
		cr_assert(memcmp(m->payload, want, (size_t)wlen) == 0, "value of message %d", i);
		if (seen[i]++)
			duplicates++;
		else
			distinct++;
		rd_kafka_message_destroy(m);
	}
	cr_assert_eq(distinct, N_MESSAGES, "consumed %ld distinct of %d messages within 120 s",
	             distinct, N_MESSAGES);
	cr_assert_eq(duplicates, 0, "%ld duplicates", duplicates);
	rd_kafka_consumer_close(rk);
	rd_kafka_destroy(rk);
	free(seen);
}

Test(services, kafka_produce_consume_100k, .timeout = 300)
{
	char topic[128];
	double t0 = test_now_s(), t1, t2;

	snprintf(topic, sizeof(topic), "tally_test_services_%ld_%d", (long)time(NULL), (int)getpid());
	create_topic(topic);
	produce_all(topic);
	t1 = test_now_s();
	consume_all(topic);
	t2 = test_now_s();
	cr_log_info("kafka: %d messages produced in %.2f s, consumed in %.2f s", N_MESSAGES,
	            t1 - t0, t2 - t1);
	delete_topic(topic);
}

Test(services, postgres_parameterised_insert, .timeout = 120)
{
	PGconn *c = PQconnectdb(tally_test_service("TALLY_PG_DSN"));
	PGresult *r;
	long long sum = 0;

	cr_assert_eq(PQstatus(c), CONNECTION_OK, "connect: %s", PQerrorMessage(c));
	r = PQexec(c, "create temp table smoke (id integer primary key, v bigint not null)");
	cr_assert_eq(PQresultStatus(r), PGRES_COMMAND_OK, "%s", PQresultErrorMessage(r));
	PQclear(r);
	r = PQexec(c, "begin");
	PQclear(r);
	for (int i = 1; i <= N_ROWS; i++) {
		char id[16], v[32];
		const char *values[2] = { id, v };

		snprintf(id, sizeof(id), "%d", i);
		snprintf(v, sizeof(v), "%lld", (long long)i * i * 1000003LL);
		sum += (long long)i * i * 1000003LL;
		r = PQexecParams(c, "insert into smoke (id, v) values ($1, $2)", 2, NULL, values,
		                 NULL, NULL, 0);
		cr_assert_eq(PQresultStatus(r), PGRES_COMMAND_OK, "%s", PQresultErrorMessage(r));
		PQclear(r);
	}
	r = PQexec(c, "commit");
	cr_assert_eq(PQresultStatus(r), PGRES_COMMAND_OK, "%s", PQresultErrorMessage(r));
	PQclear(r);
	r = PQexec(c, "select count(*), sum(v) from smoke");
	cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s", PQresultErrorMessage(r));
	cr_assert_eq(atol(PQgetvalue(r, 0, 0)), N_ROWS);
	cr_assert_eq(atoll(PQgetvalue(r, 0, 1)), sum, "sum %s, expected %lld",
	             PQgetvalue(r, 0, 1), sum);
	PQclear(r);
	PQfinish(c);
}

/* Runs a shell command; returns its exit status and puts its stderr+stdout in out. */
static int
run(const char *cmd, char *out, size_t out_size)
{
	FILE *p = popen(cmd, "r");
	size_t n = 0;
	int st;

	cr_assert_not_null(p, "popen %s", cmd);
	while (n + 1 < out_size && !feof(p)) {
		size_t got = fread(out + n, 1, out_size - 1 - n, p);

		if (got == 0)
			break;
		n += got;
	}
	out[n] = '\0';
	st = pclose(p);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

Test(services, status_while_up)
{
	char out[4096];
	int rc = run("cd " TALLY_TEST_DIR "/.. && scripts/services status 2>&1", out, sizeof(out));

	cr_assert_eq(rc, 0, "scripts/services status exited %d:\n%s", rc, out);
}

/* A loopback port nothing listens on: bound by us, then released. */
static int
closed_port(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = 0 };
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	int port;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert(fd >= 0);
	cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	port = ntohs(a.sin_port);
	close(fd);
	return port;
}

Test(services, unreachable_external_postgres_fails_clearly, .timeout = 60)
{
	char cmd[1024], out[8192], dsn[128];
	int rc;

	snprintf(dsn, sizeof(dsn), "host=127.0.0.1 port=%d dbname=tally user=tally", closed_port());
	snprintf(cmd, sizeof(cmd),
	         "cd " TALLY_TEST_DIR "/.. && TALLY_PG_DSN='%s' timeout 30 scripts/services up 2>&1",
	         dsn);
	rc = run(cmd, out, sizeof(out));
	cr_assert(rc != 0 && rc != 124, "scripts/services up exited %d:\n%s", rc, out);
	cr_assert_not_null(strstr(out, dsn), "the message does not name the DSN:\n%s", out);
	cr_assert_not_null(strstr(out, "does not accept clients"), "unclear message:\n%s", out);
	cr_assert_null(strstr(out, "TALLY_KAFKA_BROKERS="), "printed service lines:\n%s", out);
}

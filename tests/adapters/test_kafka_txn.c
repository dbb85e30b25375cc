/*
 * The transactional producer's calls (adapters/kafka/producer.c) when the broker is slow
 * or fails, against librdkafka's mock cluster (fault injection only):
 *  - a commit whose flush times out is committed by retrying it (not left in progress);
 *  - a commit whose message failed is aborted, and the producer goes on committing;
 *  - a transaction left in progress by a timed-out commit does not stop the next begin
 *    (it is aborted first): before this, every begin failed with "Conflicting
 *    commit_transaction API call is already in progress" and the results leader
 *    published nothing more.
 */
#include <stdio.h>
#include <string.h>

#include <criterion/criterion.h>

#include <tally/error.h>
#include <tally/kafka.h>

#include <librdkafka/rdkafka_mock.h> /* after rdkafka.h (tally/kafka.h) */

#define PRODUCE 0 /* the Kafka protocol's ApiKey of Produce */

static rd_kafka_t *mrk;
static rd_kafka_mock_cluster_t *mc;
static tally_kafka_producer_t *p;

static void
set(rd_kafka_conf_t *conf, const char *k, const char *v)
{
	char err[256];

	cr_assert_eq(rd_kafka_conf_set(conf, k, v, err, sizeof(err)), RD_KAFKA_CONF_OK, "%s: %s",
	             k, err);
}

static void
setup(void)
{
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	char err[256];

	set(conf, "test.mock.num.brokers", "1");
	set(conf, "log_level", "0");
	mrk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
	cr_assert_not_null(mrk, "%s", err);
	mc = rd_kafka_handle_mock_cluster(mrk);
	cr_assert_eq(rd_kafka_mock_topic_create(mc, "results", 1, 1), RD_KAFKA_RESP_ERR_NO_ERROR);

	conf = rd_kafka_conf_new();
	set(conf, "bootstrap.servers", rd_kafka_mock_cluster_bootstraps(mc));
	set(conf, "transactional.id", "tally-results:test");
	set(conf, "log_level", "0");
	p = tally_kafka_producer_new(conf, err, sizeof(err));
	cr_assert_not_null(p, "%s", err);
	cr_assert_eq(tally_kafka_txn_init(p, 30000, err, sizeof(err)), 0, "%s", err);
}

static void
teardown(void)
{
	tally_kafka_producer_destroy(p);
	rd_kafka_destroy(mrk);
}

TestSuite(kafka_txn, .init = setup, .fini = teardown, .timeout = 120);

static void
one_message(void)
{
	char err[256] = "";
	int rc = tally_kafka_produce(p, "results", "k", 1, "v", 1);

	if (rc != 0)
		tally_kafka_producer_flush(p, 0, err, sizeof(err));
	cr_assert_eq(rc, 0, "produce: %d (%s)", rc, err);
}

Test(kafka_txn, a_timed_out_commit_is_retried_and_commits)
{
	char err[512] = "";

	cr_assert_eq(tally_kafka_txn_begin(p, err, sizeof(err)), 0, "%s", err);
	/* The broker answers the next Produce after 2.5 s; each commit waits 1.5 s. */
	rd_kafka_mock_broker_push_request_error_rtts(mc, 1, PRODUCE, 1,
	                                             RD_KAFKA_RESP_ERR_NO_ERROR, 2500);
	one_message();
	cr_assert_eq(tally_kafka_txn_commit(p, 1500, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(tally_kafka_producer_delivered(p), 1);
	/* And on to the next transaction. */
	cr_assert_eq(tally_kafka_txn_begin(p, err, sizeof(err)), 0, "%s", err);
	one_message();
	cr_assert_eq(tally_kafka_txn_commit(p, 30000, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(tally_kafka_producer_delivered(p), 2);
}

Test(kafka_txn, a_failed_message_aborts_the_transaction_and_the_next_commits)
{
	char err[512] = "";

	cr_assert_eq(tally_kafka_txn_begin(p, err, sizeof(err)), 0, "%s", err);
	rd_kafka_mock_push_request_errors(mc, PRODUCE, 1,
	                                  RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE);
	one_message();
	cr_assert_eq(tally_kafka_txn_commit(p, 30000, err, sizeof(err)), TALLY_EAGAIN);
	cr_assert(strstr(err, "could not commit a transaction") != NULL, "%s", err);
	/* The producer goes on: each transaction commits or is aborted (never stuck, never
	 * fatal). The mock broker refuses the first after the failure ("skipped sequence
	 * numbers": it does not follow librdkafka's epoch bump); the next commits. */
	for (int i = 0, done = 0; !done; i++) {
		int rc;

		cr_assert_lt(i, 3, "no transaction committed after the failed one");
		cr_assert_eq(tally_kafka_txn_begin(p, err, sizeof(err)), 0, "%s", err);
		one_message();
		rc = tally_kafka_txn_commit(p, 30000, err, sizeof(err));
		cr_assert(rc == 0 || rc == TALLY_EAGAIN, "%d: %s", rc, err);
		done = rc == 0;
	}
}

Test(kafka_txn, a_commit_left_in_progress_does_not_stop_the_next_begin)
{
	rd_kafka_error_t *e;
	char err[512] = "";

	cr_assert_eq(tally_kafka_txn_begin(p, err, sizeof(err)), 0, "%s", err);
	rd_kafka_mock_broker_push_request_error_rtts(mc, 1, PRODUCE, 1,
	                                             RD_KAFKA_RESP_ERR_NO_ERROR, 3000);
	one_message();
	/* What the results thread did before: one commit call, timing out, left there. */
	e = rd_kafka_commit_transaction(tally_kafka_producer_handle(p), 500);
	cr_assert_not_null(e);
	cr_assert(rd_kafka_error_is_retriable(e), "%s", rd_kafka_error_string(e));
	rd_kafka_error_destroy(e);
	e = rd_kafka_begin_transaction(tally_kafka_producer_handle(p));
	cr_assert_not_null(e, "librdkafka began a transaction over one in progress");
	rd_kafka_error_destroy(e);
	/* The adapter's begin gets past it. */
	cr_assert_eq(tally_kafka_txn_begin(p, err, sizeof(err)), 0, "%s", err);
	one_message();
	cr_assert_eq(tally_kafka_txn_commit(p, 30000, err, sizeof(err)), 0, "%s", err);
}

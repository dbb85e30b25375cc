/*
 * Ending a group consumer whose group never answered its SyncGroup (adapters/kafka/
 * consumer.c), against librdkafka's mock cluster (used here for fault injection only: it
 * delays every SyncGroup answer past the consumer's close).
 *
 * - the fault itself: on librdkafka < 2.3.0 a plain rd_kafka_destroy() of such a consumer
 *   aborts (in a child process); on a fixed librdkafka it exits 0;
 * - tally_kafka_consumer_destroy() on the same consumer returns, keeping the handle (or
 *   destroying it where that is safe), and the process goes on;
 * - a consumer that got its assignment is destroyed.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <tally/kafka.h>

#include <librdkafka/rdkafka_mock.h> /* after rdkafka.h (tally/kafka.h) */

#include "testutil.h"

#define SYNC_GROUP 14 /* the Kafka protocol's ApiKey of SyncGroup */

typedef struct fixture {
	rd_kafka_t *mrk;                  /* the mock cluster's own handle */
	rd_kafka_mock_cluster_t *mc;
	rd_kafka_t *c;                    /* the consumer under test */
	int assigned;                     /* assignments its rebalance callback saw */
} fixture_t;

static void
on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t *l,
             void *opaque)
{
	fixture_t *f = opaque;

	if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
		f->assigned++;
		rd_kafka_incremental_assign(rk, l);
	} else {
		rd_kafka_incremental_unassign(rk, l);
	}
}

static void
set(rd_kafka_conf_t *conf, const char *k, const char *v)
{
	char err[256];

	cr_assert_eq(rd_kafka_conf_set(conf, k, v, err, sizeof(err)), RD_KAFKA_CONF_OK, "%s: %s",
	             k, err);
}

/* A mock broker, a topic, and a cooperative-sticky consumer of it that has joined its
 * group (JoinGroup answered: it has a member id); when delay_sync, every SyncGroup is
 * answered only after 30 s. */
static void
setup(fixture_t *f, bool delay_sync)
{
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	rd_kafka_topic_partition_list_t *sub;
	char err[256];
	double t0;

	memset(f, 0, sizeof(*f));
	set(conf, "test.mock.num.brokers", "1");
	set(conf, "log_level", "0");
	f->mrk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
	cr_assert_not_null(f->mrk, "%s", err);
	f->mc = rd_kafka_handle_mock_cluster(f->mrk);
	cr_assert_not_null(f->mc);
	cr_assert_eq(rd_kafka_mock_topic_create(f->mc, "votes", 2, 1), RD_KAFKA_RESP_ERR_NO_ERROR);
	if (delay_sync)
		for (int i = 0; i < 4; i++)
			rd_kafka_mock_broker_push_request_error_rtts(f->mc, 1, SYNC_GROUP, 1,
			                                             RD_KAFKA_RESP_ERR_NO_ERROR,
			                                             30000);

	conf = rd_kafka_conf_new();
	set(conf, "bootstrap.servers", rd_kafka_mock_cluster_bootstraps(f->mc));
	set(conf, "group.id", "g");
	set(conf, "partition.assignment.strategy", "cooperative-sticky");
	set(conf, "log_level", "0");
	rd_kafka_conf_set_rebalance_cb(conf, on_rebalance);
	rd_kafka_conf_set_opaque(conf, f);
	f->c = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
	cr_assert_not_null(f->c, "%s", err);
	rd_kafka_poll_set_consumer(f->c);
	sub = rd_kafka_topic_partition_list_new(1);
	rd_kafka_topic_partition_list_add(sub, "votes", RD_KAFKA_PARTITION_UA);
	cr_assert_eq(rd_kafka_subscribe(f->c, sub), RD_KAFKA_RESP_ERR_NO_ERROR);
	rd_kafka_topic_partition_list_destroy(sub);

	/* Joined: a member id, from the JoinGroup's answer. With delay_sync, no assignment
	 * can follow; without, wait for it. */
	t0 = test_now_s();
	for (;;) {
		rd_kafka_message_t *m = rd_kafka_consumer_poll(f->c, 50);
		char *id = rd_kafka_memberid(f->c);
		bool joined = id != NULL && id[0] != '\0';

		if (m != NULL)
			rd_kafka_message_destroy(m);
		rd_kafka_mem_free(f->c, id);
		if (joined && (delay_sync || f->assigned > 0))
			break;
		cr_assert_lt(test_now_s() - t0, 30.0, "the consumer did not join the mock group");
	}
	/* The SyncGroup is on its way (sent right after the JoinGroup's answer). */
	for (int i = 0; i < 10; i++) {
		rd_kafka_message_t *m = rd_kafka_consumer_poll(f->c, 50);

		if (m != NULL)
			rd_kafka_message_destroy(m);
	}
	if (delay_sync)
		cr_assert_eq(f->assigned, 0, "the SyncGroup was answered despite its delay");
}

static void
teardown(fixture_t *f)
{
	rd_kafka_destroy(f->mrk);
}

Test(kafka_consumer, plain_destroy_without_syncgroup_aborts_on_old_librdkafka, .timeout = 120)
{
	pid_t pid = fork();
	int status;

	cr_assert_geq(pid, 0);
	if (pid == 0) {
		fixture_t f;

		setup(&f, true);
		rd_kafka_consumer_close(f.c);
		rd_kafka_destroy(f.c);
		_exit(0);
	}
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	if (rd_kafka_version() < 0x02030000) {
		cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT,
		          "librdkafka %s: destroying a consumer whose SyncGroup was never answered "
		          "did not abort (status %d): the workaround may be dropped",
		          rd_kafka_version_str(), status);
		cr_assert_not(tally_kafka_consumer_destroy_is_safe(false));
	} else {
		cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %d", status);
		cr_assert(tally_kafka_consumer_destroy_is_safe(false));
	}
	cr_assert(tally_kafka_consumer_destroy_is_safe(true));
}

Test(kafka_consumer, kept_without_syncgroup, .timeout = 120)
{
	fixture_t f;

	setup(&f, true);
	rd_kafka_consumer_close(f.c);
	cr_assert_eq(f.assigned, 0);
	cr_assert_eq(tally_kafka_consumer_destroy(f.c, f.assigned > 0),
	             rd_kafka_version() >= 0x02030000);
	teardown(&f);
	/* Still here: no abort. NULL is a no-op. */
	cr_assert(tally_kafka_consumer_destroy(NULL, false));
}

Test(kafka_consumer, destroyed_after_an_assignment, .timeout = 120)
{
	fixture_t f;

	setup(&f, false);
	cr_assert_geq(f.assigned, 1);
	rd_kafka_consumer_close(f.c);
	cr_assert(tally_kafka_consumer_destroy(f.c, f.assigned > 0));
	teardown(&f);
}

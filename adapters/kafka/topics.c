/*
 * tally's topics: the standard table, and creating them through the admin API.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <tally/error.h>
#include <tally/kafka.h>
#include <tally/time.h>

/* Extra time the client waits for the broker's answer beyond the operation timeout. */
#define ADMIN_SLACK_MS 5000

static const char *const standard_names[TALLY_KAFKA_N_TOPICS] = {
	[TALLY_KAFKA_VOTES] = "votes_topic",
	[TALLY_KAFKA_VOTERS] = "voters_topic",
	[TALLY_KAFKA_CANDIDATES] = "candidates_topic",
	[TALLY_KAFKA_RESULTS_CANDIDATE] = "aggregated_votes_per_candidate",
	[TALLY_KAFKA_RESULTS_LOCATION] = "aggregated_turnout_by_location",
	[TALLY_KAFKA_RESULTS_PARTY] = "aggregated_votes_per_party",
	[TALLY_KAFKA_REJECTED] = "votes_rejected",
	[TALLY_KAFKA_RESULTS_CONTEST] = "aggregated_votes_per_contest",
	[TALLY_KAFKA_RESULTS_SEATS] = "seats_per_party",
};

static const tally_kafka_topic_config_t compacted[] = {
	{"cleanup.policy", "compact"},
};

const char *
tally_kafka_topic_name(tally_kafka_topic_id_t id)
{
	if ((int)id < 0 || id >= TALLY_KAFKA_N_TOPICS)
		return NULL;
	return standard_names[id];
}

int
tally_kafka_topics_init(tally_kafka_topics_t *topics, const char *prefix, int partitions,
                        char *errstr, size_t errstr_size)
{
	if (prefix == NULL)
		prefix = "";
	if (partitions < 0) {
		snprintf(errstr, errstr_size, "invalid partition count %d: must be at least 1",
		         partitions);
		return TALLY_EINVAL;
	}
	if (partitions == 0)
		partitions = TALLY_KAFKA_DEFAULT_PARTITIONS;
	memset(topics, 0, sizeof(*topics));
	for (int i = 0; i < TALLY_KAFKA_N_TOPICS; i++) {
		tally_kafka_topic_t *t = &topics->topic[i];
		int len = snprintf(topics->names[i], sizeof(topics->names[i]), "%s%s", prefix,
		                   standard_names[i]);

		if (len < 0 || len > TALLY_KAFKA_TOPIC_NAME_MAX) {
			snprintf(errstr, errstr_size,
			         "topic name \"%s%s\" is too long: %d characters, at most %d", prefix,
			         standard_names[i], len, TALLY_KAFKA_TOPIC_NAME_MAX);
			return TALLY_EINVAL;
		}
		t->name = topics->names[i];
		t->replication_factor = 1;
		if (tally_kafka_topic_is_results(i)) {
			t->partitions = TALLY_KAFKA_RESULTS_PARTITIONS;
			t->config = compacted;
			t->nconfig = sizeof(compacted) / sizeof(compacted[0]);
		} else {
			t->partitions = partitions;
		}
	}
	return 0;
}

static void
sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

/*
 * The partition count of a topic, from the cluster's metadata, once every partition has a
 * leader. A topic just created may take a moment to appear in the metadata the broker
 * serves, so an unknown topic or a partition without a leader is retried until timeout_ms.
 */
static int
partition_count(rd_kafka_t *rk, const char *name, int timeout_ms, int *count, char *errstr,
                size_t errstr_size)
{
	rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, name, NULL);
	uint64_t deadline = tally_mono_ns() + (uint64_t)timeout_ms * 1000000ULL;
	rd_kafka_resp_err_t e;
	int backoff = 10;

	if (rkt == NULL) {
		e = rd_kafka_last_error();
		snprintf(errstr, errstr_size, "could not look up topic \"%s\": %s", name,
		         rd_kafka_err2str(e));
		return tally_kafka_err(e);
	}
	for (;;) {
		const struct rd_kafka_metadata *md = NULL;
		uint64_t now = tally_mono_ns();
		int left = now < deadline ? (int)((deadline - now) / 1000000ULL) : 0;

		e = rd_kafka_metadata(rk, 0, rkt, &md, left > 100 ? left : 100);
		if (e == RD_KAFKA_RESP_ERR_NO_ERROR) {
			if (md->topic_cnt != 1)
				e = RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC;
			else if (md->topics[0].err != RD_KAFKA_RESP_ERR_NO_ERROR)
				e = md->topics[0].err;
			else if (md->topics[0].partition_cnt == 0)
				e = RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART;
			for (int i = 0; e == RD_KAFKA_RESP_ERR_NO_ERROR &&
			                i < md->topics[0].partition_cnt; i++)
				if (md->topics[0].partitions[i].leader < 0)
					e = RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE;
			if (e == RD_KAFKA_RESP_ERR_NO_ERROR)
				*count = md->topics[0].partition_cnt;
		}
		if (md != NULL)
			rd_kafka_metadata_destroy(md);
		if ((e != RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART &&
		     e != RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC &&
		     e != RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE) ||
		    tally_mono_ns() >= deadline)
			break;
		sleep_ms(backoff);
		if (backoff < 500)
			backoff *= 2;
	}
	rd_kafka_topic_destroy(rkt);
	if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
		snprintf(errstr, errstr_size, "could not look up topic \"%s\": %s", name,
		         rd_kafka_err2str(e));
		return tally_kafka_err(e);
	}
	return 0;
}

/* The creation result for name, or NULL if the broker did not mention it. */
static const rd_kafka_topic_result_t *
find_result(const rd_kafka_topic_result_t **res, size_t nres, const char *name)
{
	for (size_t i = 0; i < nres; i++)
		if (strcmp(rd_kafka_topic_result_name(res[i]), name) == 0)
			return res[i];
	return NULL;
}

int
tally_kafka_ensure_topics(rd_kafka_t *rk, const tally_kafka_topic_t *topics, size_t n,
                          int timeout_ms, char *errstr, size_t errstr_size)
{
	rd_kafka_NewTopic_t **nts;
	rd_kafka_AdminOptions_t *opts = NULL;
	rd_kafka_queue_t *q = NULL;
	rd_kafka_event_t *ev = NULL;
	const rd_kafka_CreateTopics_result_t *cres;
	const rd_kafka_topic_result_t **res;
	size_t nres = 0, made = 0;
	char msg[512];
	int rc = 0;

	if (n == 0)
		return 0;
	nts = calloc(n, sizeof(*nts));
	if (nts == NULL) {
		snprintf(errstr, errstr_size, "could not create topics: out of memory");
		return TALLY_ENOMEM;
	}
	for (; made < n; made++) {
		const tally_kafka_topic_t *t = &topics[made];
		int rf = t->replication_factor > 0 ? t->replication_factor : 1;

		nts[made] = rd_kafka_NewTopic_new(t->name, t->partitions, rf, msg, sizeof(msg));
		if (nts[made] == NULL) {
			snprintf(errstr, errstr_size, "could not create topic \"%s\": %s", t->name, msg);
			rc = TALLY_EINVAL;
			goto out;
		}
		for (size_t c = 0; c < t->nconfig; c++) {
			rd_kafka_resp_err_t e = rd_kafka_NewTopic_set_config(
			    nts[made], t->config[c].key, t->config[c].value);

			if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
				snprintf(errstr, errstr_size, "could not create topic \"%s\": %s=%s: %s",
				         t->name, t->config[c].key, t->config[c].value,
				         rd_kafka_err2str(e));
				made++;
				rc = tally_kafka_err(e);
				goto out;
			}
		}
	}
	opts = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
	/* The broker waits for the creations to complete, so the topics exist on return. */
	if (rd_kafka_AdminOptions_set_operation_timeout(opts, timeout_ms, msg, sizeof(msg)) != 0 ||
	    rd_kafka_AdminOptions_set_request_timeout(opts, timeout_ms + ADMIN_SLACK_MS, msg,
	                                              sizeof(msg)) != 0) {
		snprintf(errstr, errstr_size, "could not create topics: %s", msg);
		rc = TALLY_EINVAL;
		goto out;
	}
	q = rd_kafka_queue_new(rk);
	rd_kafka_CreateTopics(rk, nts, n, opts, q);
	ev = rd_kafka_queue_poll(q, timeout_ms + 2 * ADMIN_SLACK_MS);
	if (ev == NULL) {
		snprintf(errstr, errstr_size, "could not create topics: no answer within %d ms",
		         timeout_ms + 2 * ADMIN_SLACK_MS);
		rc = TALLY_ETIMEDOUT;
		goto out;
	}
	if (rd_kafka_event_error(ev) != RD_KAFKA_RESP_ERR_NO_ERROR) {
		snprintf(errstr, errstr_size, "could not create topics: %s",
		         rd_kafka_event_error_string(ev));
		rc = tally_kafka_err(rd_kafka_event_error(ev));
		goto out;
	}
	cres = rd_kafka_event_CreateTopics_result(ev);
	res = rd_kafka_CreateTopics_result_topics(cres, &nres);
	for (size_t i = 0; i < n && rc == 0; i++) {
		const tally_kafka_topic_t *t = &topics[i];
		const rd_kafka_topic_result_t *r = find_result(res, nres, t->name);
		rd_kafka_resp_err_t e;
		int have = 0;

		if (r == NULL) {
			snprintf(errstr, errstr_size, "could not create topic \"%s\": no answer for it",
			         t->name);
			rc = TALLY_EIO;
			break;
		}
		e = rd_kafka_topic_result_error(r);
		if (e != RD_KAFKA_RESP_ERR_NO_ERROR && e != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
			const char *why = rd_kafka_topic_result_error_string(r);

			snprintf(errstr, errstr_size, "could not create topic \"%s\": %s", t->name,
			         why != NULL && why[0] != '\0' ? why : rd_kafka_err2str(e));
			rc = tally_kafka_err(e);
			break;
		}
		/* Created or not, return only once the topic is usable, with its partitions. */
		rc = partition_count(rk, t->name, timeout_ms, &have, errstr, errstr_size);
		if (rc == 0 && have < t->partitions) {
			snprintf(errstr, errstr_size,
			         "topic \"%s\" exists with %d partitions, fewer than the %d asked for",
			         t->name, have, t->partitions);
			rc = TALLY_ESTATE;
		}
	}
out:
	if (ev != NULL)
		rd_kafka_event_destroy(ev);
	if (q != NULL)
		rd_kafka_queue_destroy(q);
	if (opts != NULL)
		rd_kafka_AdminOptions_destroy(opts);
	for (size_t i = 0; i < made; i++)
		if (nts[i] != NULL)
			rd_kafka_NewTopic_destroy(nts[i]);
	free(nts);
	return rc;
}

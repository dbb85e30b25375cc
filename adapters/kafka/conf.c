/*
 * Kafka configuration: TALLY_KAFKA_BROKERS and "kafka.*" settings into a librdkafka
 * configuration, and librdkafka's error codes into tally's.
 */
#include <stdio.h>
#include <string.h>

#include <tally/error.h>
#include <tally/kafka.h>

#define KAFKA_PREFIX "kafka."

int
tally_kafka_err(rd_kafka_resp_err_t err)
{
	switch (err) {
	case RD_KAFKA_RESP_ERR_NO_ERROR:
		return 0;
	case RD_KAFKA_RESP_ERR__TIMED_OUT:
	case RD_KAFKA_RESP_ERR__MSG_TIMED_OUT:
	case RD_KAFKA_RESP_ERR__TIMED_OUT_QUEUE:
	case RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT:
		return TALLY_ETIMEDOUT;
	case RD_KAFKA_RESP_ERR__QUEUE_FULL:
	case RD_KAFKA_RESP_ERR__RETRY:
	case RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS:
	case RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND:
	case RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE:
	case RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION:
	case RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS:
	case RD_KAFKA_RESP_ERR_THROTTLING_QUOTA_EXCEEDED:
		return TALLY_EAGAIN;
	case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC:
	case RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION:
	case RD_KAFKA_RESP_ERR__NOENT:
	case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART:
	case RD_KAFKA_RESP_ERR_GROUP_ID_NOT_FOUND:
		return TALLY_ENOENT;
	case RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS:
	case RD_KAFKA_RESP_ERR__EXISTING_SUBSCRIPTION:
		return TALLY_EEXISTS;
	case RD_KAFKA_RESP_ERR__INVALID_ARG:
	case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
	case RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE:
	case RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION:
	case RD_KAFKA_RESP_ERR_INVALID_PARTITIONS:
	case RD_KAFKA_RESP_ERR_INVALID_REPLICATION_FACTOR:
	case RD_KAFKA_RESP_ERR_INVALID_REQUEST:
	case RD_KAFKA_RESP_ERR_INVALID_RECORD:
	case RD_KAFKA_RESP_ERR_POLICY_VIOLATION:
		return TALLY_EINVAL;
	case RD_KAFKA_RESP_ERR__INVALID_TYPE:
	case RD_KAFKA_RESP_ERR_INVALID_CONFIG:
	case RD_KAFKA_RESP_ERR__UNKNOWN_PROTOCOL:
	case RD_KAFKA_RESP_ERR__NOT_IMPLEMENTED:
	case RD_KAFKA_RESP_ERR__UNSUPPORTED_FEATURE:
	case RD_KAFKA_RESP_ERR_UNSUPPORTED_VERSION:
	case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
	case RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED:
	case RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED:
	case RD_KAFKA_RESP_ERR__AUTHENTICATION:
	case RD_KAFKA_RESP_ERR_SASL_AUTHENTICATION_FAILED:
		return TALLY_ECONFIG;
	case RD_KAFKA_RESP_ERR__BAD_MSG:
	case RD_KAFKA_RESP_ERR__BAD_COMPRESSION:
	case RD_KAFKA_RESP_ERR_INVALID_MSG:
		return TALLY_ECORRUPT;
	case RD_KAFKA_RESP_ERR__FATAL:
	case RD_KAFKA_RESP_ERR__FENCED:
	case RD_KAFKA_RESP_ERR__STATE:
	case RD_KAFKA_RESP_ERR__DESTROY:
	case RD_KAFKA_RESP_ERR__PURGE_QUEUE:
	case RD_KAFKA_RESP_ERR__PURGE_INFLIGHT:
	case RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER:
	case RD_KAFKA_RESP_ERR_INVALID_PRODUCER_EPOCH:
	case RD_KAFKA_RESP_ERR_UNKNOWN_PRODUCER_ID:
		return TALLY_ESTATE;
	default:
		return TALLY_EIO;
	}
}

/* The key librdkafka knows: "kafka.linger.ms" -> "linger.ms". */
static const char *
strip_prefix(const char *key)
{
	size_t n = strlen(KAFKA_PREFIX);

	return strncmp(key, KAFKA_PREFIX, n) == 0 ? key + n : key;
}

/* Some of librdkafka's messages end in a newline: the house grammar has none. */
static void
trim_end(char *msg)
{
	size_t n = strlen(msg);

	while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == ' ' || msg[n - 1] == '.'))
		msg[--n] = '\0';
}

static int
sets_brokers(const char *key)
{
	return strcmp(key, "bootstrap.servers") == 0 || strcmp(key, "metadata.broker.list") == 0;
}

rd_kafka_conf_t *
tally_kafka_conf_new(const char *brokers, const tally_kafka_setting_t *settings, size_t n,
                     char *errstr, size_t errstr_size)
{
	rd_kafka_conf_t *conf;
	char msg[512];
	int have_brokers = brokers != NULL && brokers[0] != '\0';

	for (size_t i = 0; i < n && !have_brokers; i++)
		if (sets_brokers(strip_prefix(settings[i].key)) && settings[i].value != NULL &&
		    settings[i].value[0] != '\0')
			have_brokers = 1;
	if (!have_brokers) {
		snprintf(errstr, errstr_size,
		         "no Kafka brokers: set TALLY_KAFKA_BROKERS or kafka.bootstrap.servers");
		return NULL;
	}
	conf = rd_kafka_conf_new();
	if (brokers != NULL && brokers[0] != '\0' &&
	    rd_kafka_conf_set(conf, "bootstrap.servers", brokers, msg, sizeof(msg)) !=
	        RD_KAFKA_CONF_OK) {
		trim_end(msg);
		snprintf(errstr, errstr_size, "TALLY_KAFKA_BROKERS: %s", msg);
		rd_kafka_conf_destroy(conf);
		return NULL;
	}
	for (size_t i = 0; i < n; i++) {
		const tally_kafka_setting_t *s = &settings[i];

		if (s->value == NULL ||
		    rd_kafka_conf_set(conf, strip_prefix(s->key), s->value, msg, sizeof(msg)) !=
		        RD_KAFKA_CONF_OK) {
			if (s->value == NULL)
				snprintf(msg, sizeof(msg), "no value");
			trim_end(msg);
			if (s->where != NULL)
				snprintf(errstr, errstr_size, "%s: %s: %s", s->where, s->key, msg);
			else
				snprintf(errstr, errstr_size, "%s: %s", s->key, msg);
			rd_kafka_conf_destroy(conf);
			return NULL;
		}
	}
	return conf;
}

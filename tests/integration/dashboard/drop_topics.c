/*
 * Deletes the Kafka topics tally uses under one prefix (votes_topic, voters_topic, the
 * results topics, ...), as the C integration tests do when they end: the dashboard test's
 * server mode (test_dashboard.mjs) has no Kafka client of its own. Brokers as for every
 * test (TALLY_KAFKA_BROKERS or var/services.env).
 * usage: drop_topics PREFIX
 */
#include <stdio.h>

#include <tally/kafka.h>

#include "kafkatest.h"

int
main(int argc, char **argv)
{
	tally_kafka_topics_t topics;
	const char *names[TALLY_KAFKA_N_TOPICS];
	char err[256];

	if (argc != 2 || argv[1][0] == '\0') {
		fprintf(stderr, "usage: drop_topics PREFIX\n");
		return 2;
	}
	if (tally_kafka_topics_init(&topics, argv[1], 1, err, sizeof(err)) != 0) {
		fprintf(stderr, "drop_topics: %s\n", err);
		return 1;
	}
	for (int i = 0; i < TALLY_KAFKA_N_TOPICS; i++)
		names[i] = topics.topic[i].name;
	kt_delete_topics(names, TALLY_KAFKA_N_TOPICS);
	return 0;
}

/*
 * tallyd's server mode (server.c): Kafka in, PostgreSQL checkpoints, Kafka out.
 */
#ifndef TALLYD_SERVER_H
#define TALLYD_SERVER_H

#include <librdkafka/rdkafka.h>

#include "conf.h"
#include "simulate.h"

/** Exit status of a server run that failed (TALLYD_EXIT_USAGE for bad settings). */
#define TALLYD_EXIT_FAILURE 1

/** Exit status of a --cluster instance fenced off: another instance claimed a partition it
 * was counting; it stopped at once, without a final checkpoint. */
#define TALLYD_EXIT_FENCED 3

/**
 * @brief Serve until SIGTERM or SIGINT (or --exit-idle-ms): restore the newest checkpoint,
 * count votes_topic, checkpoint, publish results and dead letters; then write a final
 * checkpoint. @returns 0 after a clean stop, TALLYD_EXIT_FAILURE, TALLYD_EXIT_USAGE or
 * (--cluster) TALLYD_EXIT_FENCED.
 */
int tallyd_serve(const tallyd_conf_t *conf);

/** @brief One timestamped line on stderr. Never give it voter data. */
void tallyd_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/**
 * @brief A librdkafka configuration from TALLY_KAFKA_BROKERS and conf's kafka.* settings,
 * logging through tallyd's log. @returns it (the caller owns it) or NULL with err set
 * ("FILE:LINE: kafka.KEY: ...").
 */
rd_kafka_conf_t *tallyd_kafka_conf(const tallyd_conf_t *conf, char *err, size_t errsz);

/** @brief librdkafka's log lines, as tallyd's (set with rd_kafka_conf_set_log_cb()). */
void tallyd_kafka_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf);

#endif /* TALLYD_SERVER_H */

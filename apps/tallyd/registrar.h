/*
 * Live registrations (registrar.c): voters_topic and candidates_topic, followed from the
 * offsets stored with the registry in PostgreSQL.
 */
#ifndef TALLYD_REGISTRAR_H
#define TALLYD_REGISTRAR_H

#include <stddef.h>

#include <tally/kafka.h>
#include <tally/pg.h>
#include <tally/registry.h>

#include "conf.h"

typedef struct tallyd_registrar tallyd_registrar_t;

/**
 * @brief Start the registrar thread, the registry's only writer from now on.
 * Every arguments' lifetime must exceed the registrar's.
 * @returns the registrar, or NULL with errstr set.
 */
tallyd_registrar_t *tallyd_registrar_start(const tallyd_conf_t *conf, tally_registry_t *reg,
                                           const tally_kafka_topics_t *topics, const char *dsn,
                                           const tally_pg_param_t *params, size_t nparams,
                                           char *errstr, size_t errstr_size);

/** @brief Stop and free it. NULL is a no-op. */
void tallyd_registrar_stop(tallyd_registrar_t *r);

#endif /* TALLYD_REGISTRAR_H */

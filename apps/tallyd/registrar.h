/*
 * Live registrations (registrar.c): voters_topic and candidates_topic, followed from the
 * offsets stored with the registry in PostgreSQL (by the store: include/tally/store.h).
 */
#ifndef TALLYD_REGISTRAR_H
#define TALLYD_REGISTRAR_H

#include <stddef.h>

#include <tally/kafka.h>
#include <tally/registry.h>
#include <tally/store.h>

#include "conf.h"

typedef struct tallyd_registrar tallyd_registrar_t;

/**
 * @brief Start the registrar thread, the registry's only writer from now on. It stores
 * registrations through store (tally_store_registrations_write(), from its thread) and
 * reads the topics' stored offsets here (tally_store_offsets(): the restoring thread).
 * Every arguments' lifetime must exceed the registrar's.
 * @returns the registrar, or NULL with errstr set.
 */
tallyd_registrar_t *tallyd_registrar_start(const tallyd_conf_t *conf, tally_registry_t *reg,
                                           const tally_kafka_topics_t *topics,
                                           tally_store_t *store, char *errstr,
                                           size_t errstr_size);

/** @brief Stop and free it. NULL is a no-op. */
void tallyd_registrar_stop(tallyd_registrar_t *r);

#endif /* TALLYD_REGISTRAR_H */

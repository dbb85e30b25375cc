/*
 * The registry image writer (imager.c): after a full load, stores the registry's voters as
 * a registry image in the background, so the next start reads the image instead.
 */
#ifndef TALLYD_IMAGER_H
#define TALLYD_IMAGER_H

#include <stddef.h>
#include <stdint.h>

#include <tally/pg.h>
#include <tally/registry.h>

typedef struct tallyd_imager tallyd_imager_t;

/**
 * @brief Start the writer thread (tally:imager): once *caught_up is set (read relaxed; NULL:
 * at once) it waits delay_ms, then writes the image of generation on a connection of its
 * own, one part at a time with pauses and only while *caught_up, at low CPU priority, and
 * logs the outcome. It only reads reg (lock-free).
 * Every argument's lifetime must exceed the imager's.
 * @returns the imager, or NULL with errstr set.
 */
tallyd_imager_t *tallyd_imager_start(const tally_registry_t *reg, int64_t generation,
                                     const char *dsn, const tally_pg_param_t *params,
                                     size_t nparams, const int *caught_up, unsigned delay_ms,
                                     char *errstr, size_t errstr_size);

/**
 * @brief Stop the writer (between two parts: at most one part's INSERT is waited for; an
 * unfinished image is deleted, or ignored if that fails) and free it. NULL is a no-op.
 */
void tallyd_imager_stop(tallyd_imager_t *im);

#endif /* TALLYD_IMAGER_H */

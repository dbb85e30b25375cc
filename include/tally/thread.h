/**
 * @file thread.h
 * @brief Starting the threads a module owns: named, with every signal blocked.
 *
 * Every thread tally starts goes through tally_thread_start(), so only the main thread of
 * a program sees SIGTERM and SIGINT (a module's thread is stopped by its module: flag, wake,
 * join, log) and every thread shows its name in top, gdb and perf.
 */
#ifndef TALLY_THREAD_H
#define TALLY_THREAD_H

#include <pthread.h>
#include <stddef.h>

/** Longest thread name Linux keeps (15 bytes and the NUL). */
#define TALLY_THREAD_NAME_MAX 15

/**
 * @brief Start fn(arg) on a new thread named name ("tally:ckpt"; longer names are cut to
 * TALLY_THREAD_NAME_MAX) with every signal blocked. Thread-safe.
 * @returns 0, or TALLY_EAGAIN (the system's thread or memory limit) / TALLY_EINVAL with
 *          errstr `could not start thread "NAME": REASON` (REASON from errno).
 */
int tally_thread_start(pthread_t *thread, const char *name, void *(*fn)(void *), void *arg,
                       char *errstr, size_t errstr_size);

#endif /* TALLY_THREAD_H */

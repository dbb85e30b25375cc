/*
 * Small helpers every test file would otherwise write again.
 */
#ifndef TALLY_TEST_UTIL_H
#define TALLY_TEST_UTIL_H

/* Monotonic seconds, for measuring a test's own steps. */
double test_now_s(void);

/*
 * The path of build/bin/<name>, found from the running test's own path (test binaries are
 * in build/tests/). Aborts with a message when the program is not built. The string is
 * static: each call overwrites it.
 */
const char *test_program_path(const char *name);

/*
 * Run build/bin/<name> with args (NULL-terminated, not counting argv[0]) and wait for it.
 * Its stdout and stderr, interleaved, go into out (NUL-terminated; the rest is read and
 * dropped when out is full) and are echoed to stderr for the test's log. TALLY_KAFKA_BROKERS
 * and TALLY_PG_DSN are set in its environment from tally_test_service().
 * Returns its exit status, 128 + the signal if a signal ended it, or -1 if it could not
 * be started.
 */
int test_run(const char *name, const char *const *args, char *out, size_t out_size);

/*
 * Start build/bin/<name> with args in the background, its stdout and stderr appended to
 * the file log (created if absent), with the services' environment as test_run().
 * Returns its pid, or -1.
 */
int test_spawn(const char *name, const char *const *args, const char *log);

#endif

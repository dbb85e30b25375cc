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

#endif

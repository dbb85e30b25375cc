/*
 * Helpers for tests that run tallyd as a program against the real Kafka and PostgreSQL:
 * its log (port, lines), /api/results, tally-sim's ground truth, and the exact checks of
 * PostgreSQL and of a results reading against that truth. Failures are returned as a
 * message (these helpers do not include Criterion, so they also build against the TSan
 * runner); the test asserts.
 */
#ifndef TALLY_TEST_TALLYDTEST_H
#define TALLY_TEST_TALLYDTEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <libpq-fe.h>

/* The HTTP port a tallyd logged ("(port N;") in log from byte from, or 0. */
int tt_log_port(const char *log, long from);

/* Lines of log (from byte from) containing needle. */
int tt_log_count(const char *log, long from, const char *needle);

/* The sum of N over the lines of log (from byte from) that read "<prefix>N ...". */
long tt_log_sum_after(const char *log, long from, const char *prefix);

/* Size of a file (0 if absent). */
long tt_file_size(const char *path);

/* Print the last bytes of a file to stderr. */
void tt_dump_tail(const char *path, long bytes);

/*
 * GET http://127.0.0.1:port/path (timeout 2 s). Returns the HTTP status (0: no answer);
 * *body (malloc'd, the caller frees) receives the body when not NULL.
 */
long tt_http_get(int port, const char *path, char **body);

/* A whole number field of tally-sim's truth (-1 when missing). */
int64_t tt_truth_int(json_t *truth, const char *field);

/*
 * One /api/results reading against the truth exactly: read, accepted, rejected_total, each
 * reason, each candidate's total_votes. Returns true, or false with why set.
 */
bool tt_results_equal_truth(json_t *results, json_t *truth, char *why, size_t whysz);

/*
 * A reader of one server's /api/results: no figure (read, accepted, rejected_total, each
 * reason, each candidate, party and region) and no version may ever go down.
 */
#define TT_MAX_KEYS 256
typedef struct tt_monotonic {
	const char *name;
	int64_t version;
	int nkeys;
	char keys[TT_MAX_KEYS][96];
	int64_t values[TT_MAX_KEYS];
	long readings;
	char failure[512];             /* the first violation, "" while none */
} tt_monotonic_t;

void tt_monotonic_init(tt_monotonic_t *m, const char *name);

/* Feed one reading (a JSON body of /api/results). Returns false on a violation. */
bool tt_monotonic_feed(tt_monotonic_t *m, json_t *results);

/*
 * PostgreSQL against the truth exactly: the votes table (and the journal, which must be
 * empty) per candidate and region, one vote per voter, no other election; and the stored
 * partition states of votes_topic (each election partition's, summed in a core of nparts
 * parts): read, accepted, rejected per reason, accepted per candidate; the stored offsets
 * sum to the messages. Returns true, or false with why set.
 */
bool tt_pg_equal_truth(PGconn *c, json_t *truth, int nparts, char *why, size_t whysz);

#endif

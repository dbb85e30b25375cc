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

/* Append a printf-formatted marker to a log file (e.g. the test's steps in tallyd's log). */
void tt_log_mark(const char *log, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

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

/*
 * A Server-Sent Events reader of http://127.0.0.1:port/path, driven without blocking:
 * each complete event's id (-1 when it had none) and data go to fn. Its own curl handle.
 */
typedef struct tt_sse tt_sse_t;
typedef void (*tt_sse_fn)(void *arg, int64_t id, const char *data, size_t len);

/* Connect (the answer comes through tt_sse_pump()). NULL when curl fails. */
tt_sse_t *tt_sse_open(int port, const char *path, tt_sse_fn fn, void *arg);

/* Move the stream on, without waiting. Returns true while it is open, false once it
 * ended (the server went away or answered something else than a stream). */
bool tt_sse_pump(tt_sse_t *sse);

/* The HTTP status of the answer (0 before one), and its first bytes (for a refusal). */
long tt_sse_status(const tt_sse_t *sse, const char **head);

/* Events delivered so far. */
long tt_sse_events(const tt_sse_t *sse);

/* Close and free; NULL is a no-op. */
void tt_sse_close(tt_sse_t *sse);

/*
 * A reader of the three results topics (candidate, location, party: TALLY_KAFKA_RESULTS_*,
 * partition 0 each) from the beginning: per topic and key, the figure (total_votes or count)
 * never goes down across messages, and every message names its key and the election.
 * Versions are not compared (in cluster mode the leader's view numbers them, and a new
 * leader numbers from its own view).
 */
typedef struct tt_topics tt_topics_t;

/* topics: the candidate, location and party results topics' names (copied); brokers:
 * bootstrap.servers. Aborts on a client error. */
tt_topics_t *tt_topics_new(const char *brokers, const char *const topics[3],
                           const char *election, const char *group);

/* Take what has arrived; returns how many messages. */
int tt_topics_pump(tt_topics_t *tr);

/* Read every topic to its end as it is now; false if not within timeout_s. */
bool tt_topics_drain(tt_topics_t *tr, double timeout_s);

/* The first violation, "" while none. */
const char *tt_topics_failure(const tt_topics_t *tr);

/* Messages read so far. */
long tt_topics_readings(const tt_topics_t *tr);

/*
 * The newest figure of every key equals the truth (candidates, regions, parties; a key
 * nobody voted for may have no message) and no other key was published. Returns true, or
 * false with why set.
 */
bool tt_topics_equal_truth(const tt_topics_t *tr, json_t *truth, char *why, size_t whysz);

void tt_topics_destroy(tt_topics_t *tr);

#endif

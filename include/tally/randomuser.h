/**
 * @file randomuser.h
 * @brief A client for a Random-User-API-compatible service (the https://randomuser.me shape).
 *
 * tally-gen --randomuser URL fetches voters and candidates from such a service, as the
 * original main.py did, but batched (`?nat=gb&results=N`), rate-limited, retried with backoff
 * and failing with a clear error instead of a silent "Error fetching data".
 *
 * Requests: every request asks nat=gb. Connection errors, timeouts, HTTP 429 and 5xx are
 * retried with exponential backoff and jitter (Retry-After is honoured when the server sends
 * it); any other 4xx, malformed JSON, a missing field or a result count different from the
 * one asked for fails at once. Error messages name the URL without its query string or user
 * info, so secrets in either never reach a log.
 *
 * Thread-safety: one client is used by one thread at a time; separate clients are independent.
 */
#ifndef TALLY_RANDOMUSER_H
#define TALLY_RANDOMUSER_H

#include <stddef.h>
#include <stdint.h>

/** Results asked for per voter request when the caller does not say. */
#define TALLY_RANDOMUSER_DEFAULT_BATCH 100
/** The most results the API serves per request. */
#define TALLY_RANDOMUSER_MAX_BATCH 5000

typedef struct tally_randomuser tally_randomuser_t;

/**
 * Progress: called after each successful request with the rows delivered so far and the rows
 * asked for in this fetch. A non-zero return stops the fetch, which then returns that value.
 */
typedef int (*tally_randomuser_progress_cb)(size_t done, size_t total, void *arg);

/** Options; fill with tally_randomuser_opts_init() and change what you need. */
typedef struct tally_randomuser_opts {
	size_t batch_size;            /**< results per voter request, 1..5000; default 100 */
	double requests_per_s;        /**< request starts per second; default 5; <= 0: no limit */
	int max_retries;              /**< retries after the first attempt, >= 0; default 6 */
	unsigned initial_backoff_ms;  /**< first retry delay, doubling; default 250 */
	unsigned max_backoff_ms;      /**< backoff cap (Retry-After is not capped); default 8000 */
	unsigned timeout_ms;          /**< whole-request timeout; default 30000 */
	uint64_t seed;                /**< candidates' biography/platform text and backoff jitter */
	tally_randomuser_progress_cb progress;  /**< optional */
	void *progress_arg;
} tally_randomuser_opts_t;

/**
 * One voter, mapped as the original did. Every string is NUL-terminated and valid only during
 * the callback; copy what you keep.
 */
typedef struct tally_randomuser_voter {
	const char *voter_id;             /**< login.uuid */
	const char *voter_name;           /**< name.first + " " + name.last */
	const char *date_of_birth;        /**< dob.date's YYYY-MM-DD */
	const char *gender;
	const char *nationality;          /**< nat */
	const char *registration_number;  /**< login.username */
	const char *address_street;       /**< location.street.number + " " + location.street.name */
	const char *address_city;         /**< location.city */
	const char *address_state;        /**< location.state; tally's region */
	const char *address_country;      /**< location.country */
	const char *address_postcode;     /**< location.postcode, a string or a number in the API */
	const char *email;
	const char *phone_number;         /**< phone */
	const char *cell_number;          /**< cell */
	const char *picture;              /**< picture.large */
	int registered_age;               /**< registered.age: years since registration */
} tally_randomuser_voter_t;

/** One candidate; strings valid only during the callback. */
typedef struct tally_randomuser_candidate {
	size_t index;                     /**< 0-based position in this fetch */
	const char *candidate_id;         /**< login.uuid */
	const char *candidate_name;       /**< name.first + " " + name.last */
	const char *gender;               /**< the gender asked for: "male" or "female" */
	const char *photo_url;            /**< picture.large */
	const char *biography;            /**< generated from opts.seed and index, not fetched */
	const char *campaign_platform;    /**< generated from opts.seed and index, not fetched */
} tally_randomuser_candidate_t;

/** Per-row callbacks: a non-zero return stops the fetch, which then returns that value. */
typedef int (*tally_randomuser_voter_cb)(const tally_randomuser_voter_t *voter, void *arg);
typedef int (*tally_randomuser_candidate_cb)(const tally_randomuser_candidate_t *cand,
                                             void *arg);

/** @brief Fill opts with the defaults listed in tally_randomuser_opts_t. */
void tally_randomuser_opts_init(tally_randomuser_opts_t *opts);

/**
 * @brief Create a client for base_url, e.g. "https://randomuser.me/api/".
 *
 * base_url may carry its own query string (e.g. an API key); the client appends nat=gb and
 * its other parameters to it.
 *
 * @param opts NULL for the defaults.
 * @returns a client the caller frees with tally_randomuser_destroy(), or NULL with errstr set
 *          (an option out of range, a URL that is not http:// or https://, libcurl failing).
 */
tally_randomuser_t *tally_randomuser_new(const char *base_url, const tally_randomuser_opts_t *opts,
                                         char *errstr, size_t errstr_size);

/** @brief Free a client; NULL is a no-op. */
void tally_randomuser_destroy(tally_randomuser_t *ru);

/**
 * @brief Fetch n voters in requests of at most opts.batch_size results, calling cb per voter.
 *
 * Voters are delivered in the order the service sent them; ids are not deduplicated. Each
 * batch is checked whole before any of its voters is delivered, so a bad answer delivers none
 * of its rows (earlier batches have been delivered).
 *
 * @returns 0 when all n were delivered; a callback's non-zero return; or a negative TALLY_E*
 *          code with errstr set: TALLY_EIO (transport errors and HTTP statuses, after the
 *          retries for retryable ones), TALLY_EFORMAT (malformed JSON, a missing or mistyped
 *          field, a wrong result count), TALLY_ENOMEM, TALLY_EINVAL.
 */
int tally_randomuser_fetch_voters(tally_randomuser_t *ru, size_t n, tally_randomuser_voter_cb cb,
                                  void *arg, char *errstr, size_t errstr_size);

/**
 * @brief Fetch n candidates, one request each, gender alternating as the original did
 *        (candidate i asks gender=female when i is odd, male when even).
 * @returns as tally_randomuser_fetch_voters().
 */
int tally_randomuser_fetch_candidates(tally_randomuser_t *ru, size_t n,
                                      tally_randomuser_candidate_cb cb, void *arg,
                                      char *errstr, size_t errstr_size);

/**
 * @brief Requests sent by this client so far, retries included (for tests and progress).
 */
uint64_t tally_randomuser_requests(const tally_randomuser_t *ru);

#endif /* TALLY_RANDOMUSER_H */

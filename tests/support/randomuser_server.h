/*
 * A fake Random User API for tests: a libmicrohttpd server on 127.0.0.1 (a free port) that
 * serves the API's JSON shape (https://randomuser.me/api/) from a small deterministic
 * generator. User k (0, 1, 2, ... in the order served, across requests) has login.uuid
 * "00000000-0000-4000-8000-<k as 12 hex digits>", name "First<k> Last<k>", and so on; its
 * postcode is a number for every third user, as the real API sometimes sends.
 *
 * A mode makes it fail in the ways the client must handle (statuses, slowness, bad bodies).
 * It counts and logs requests (their query strings) for the tests to check.
 *
 * Plain C without Criterion (so it builds against the TSan runner too): a setup failure
 * prints the reason and aborts.
 *
 * DESIGN (threads): the server answers on its own threads (one per connection); every
 * function here may be called from the test's thread while it runs, and takes the server's
 * mutex, so what a function returns reflects every request answered before the call.
 */
#ifndef TALLY_TEST_RANDOMUSER_SERVER_H
#define TALLY_TEST_RANDOMUSER_SERVER_H

#include <stddef.h>
#include <stdint.h>

typedef enum rusrv_mode {
	RUSRV_OK,
	RUSRV_503_TWICE,     /* the first two requests answer 503, then 200 */
	RUSRV_429_ONCE,      /* the first request answers 429 with Retry-After: 1 */
	RUSRV_404,           /* every request answers 404 */
	RUSRV_MALFORMED,     /* 200 with a truncated JSON body */
	RUSRV_NO_UUID,       /* results[2] has no login.uuid */
	RUSRV_SHORT,         /* one result fewer than asked for */
	RUSRV_SLOW_ONCE,     /* the first request is answered after 800 ms */
	RUSRV_SLOW,          /* every request is answered after 800 ms */
} rusrv_mode_t;

/** Requests whose query strings are kept (later ones are counted, not logged). */
#define RUSRV_MAX_LOGGED 256

typedef struct rusrv rusrv_t;

/** @brief Start a server in mode RUSRV_OK on 127.0.0.1, port 0 (a free one). Aborts on failure. */
rusrv_t *rusrv_start(void);

/** @brief Stop the server and free it; NULL is a no-op. */
void rusrv_stop(rusrv_t *srv);

/** @brief "http://127.0.0.1:PORT/api/"; lives as long as srv. */
const char *rusrv_url(const rusrv_t *srv);

/** @brief The port the server listens on. */
int rusrv_port(const rusrv_t *srv);

/** @brief Answer from now on in mode (request counts for the "first n" modes are not reset). */
void rusrv_set_mode(rusrv_t *srv, rusrv_mode_t mode);

/** @brief Serve user 0 next again (the request counter and log are kept). */
void rusrv_reset_users(rusrv_t *srv);

/** @brief Requests received so far, answered or not. */
int rusrv_requests(rusrv_t *srv);

/** @brief Users served so far (the next user's number). */
uint64_t rusrv_users_served(rusrv_t *srv);

/**
 * @brief The query string of request i (0-based, in arrival order), e.g.
 *        "nat=gb&results=100"; "" when i was not logged. Lives as long as srv.
 */
const char *rusrv_query(rusrv_t *srv, int i);

/** @brief How many logged requests carried the argument key=value (e.g. "gender", "male"). */
int rusrv_requests_with(rusrv_t *srv, const char *key, const char *value);

/** @brief The login.uuid of user k into out (37 bytes). */
void rusrv_user_id(uint64_t k, char out[37]);

/**
 * @brief The user number of a uuid rusrv_user_id() makes, or -1 when id is none of them.
 */
int64_t rusrv_user_of_id(const char *id);

#endif

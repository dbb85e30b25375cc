/**
 * @file handoff.h
 * @brief One request at a time from any thread to one serving thread, answered or
 *        withdrawn: e.g. an HTTP thread asking the ingest thread to close the polls.
 *
 * DESIGN
 * - The request word: TALLY_HANDOFF_IDLE (0), a request (> 0) posted by an asker with one
 *   compare-and-swap from IDLE (a second asker meanwhile gets TALLY_EAGAIN), or
 *   TALLY_HANDOFF_TAKEN once the serving thread took it with one compare-and-swap from the
 *   request. Only the asker sets it back to IDLE, so the word says who may act:
 *   the asker withdraws a request only while it is not taken (the same compare-and-swap
 *   the server would make), and a taken request is always answered, by one sem_post.
 * - So an asker that gives up never leaves a request behind to be taken later, and every
 *   answer posted is the answer to the request the waiting asker posted: the semaphore
 *   never runs ahead of the requests.
 * - The serving thread never waits here: take() is one load and at most one
 *   compare-and-swap, answer() one sem_post. The asker waits (up to its timeout for the
 *   request to be taken; once taken, until answered).
 * - End: after tally_handoff_end() (the serving thread, when it stops serving), a request
 *   still waiting is refused, one taken and unanswered is answered with TALLY_ESTATE, and
 *   later asks fail with TALLY_ESTATE at once.
 */
#ifndef TALLY_HANDOFF_H
#define TALLY_HANDOFF_H

#include <semaphore.h>
#include <stdbool.h>
#include <stddef.h>

#define TALLY_HANDOFF_IDLE 0
#define TALLY_HANDOFF_TAKEN (-1)
#define TALLY_HANDOFF_ERR_MAX 256

typedef struct tally_handoff {
	int req;                            /**< IDLE, a request (> 0) or TAKEN (atomic) */
	int ended;                          /**< set by tally_handoff_end() (atomic) */
	const char *why;                    /**< end()'s reason, written before ended */
	sem_t answered;
	/* The answer: written by the serving thread before sem_post, read after sem_wait. */
	int rc;
	char err[TALLY_HANDOFF_ERR_MAX];
} tally_handoff_t;

/** @returns 0, or TALLY_EINVAL if the semaphore cannot be made. */
int tally_handoff_init(tally_handoff_t *h);

/** Only when no thread asks or serves any more. */
void tally_handoff_destroy(tally_handoff_t *h);

/**
 * @brief Any thread: post req (> 0) and wait for the serving thread's answer.
 * @param timeout_ms how long the request may wait to be taken; once taken, the asker waits
 *        for the answer however long it takes.
 * @returns 0 when answered: *answer and err (the serving thread's rc and message) are set
 *          and the asker holds the handoff until tally_handoff_release() (e.g. to wait for
 *          the outcome to be stored before another request may start); or, with nothing
 *          held and err set: TALLY_EAGAIN (another request is in progress), TALLY_ETIMEDOUT
 *          (not taken within timeout_ms: withdrawn, nothing was done) or TALLY_ESTATE (the
 *          serving thread ended).
 */
int tally_handoff_ask(tally_handoff_t *h, int req, unsigned timeout_ms, int *answer, char *err,
                      size_t errsz);

/** @brief The asker, after an answered ask: the next request may start. */
void tally_handoff_release(tally_handoff_t *h);

/**
 * @brief The serving thread: take the waiting request.
 * @returns the request (> 0; then answer it with tally_handoff_answer()), or 0 if none waits.
 */
int tally_handoff_take(tally_handoff_t *h);

/** @brief The serving thread: answer the request it took. err may be NULL. */
void tally_handoff_answer(tally_handoff_t *h, int rc, const char *err);

/**
 * @brief The serving thread, when it stops serving: refuse or answer (TALLY_ESTATE, with
 *        why) what is waiting; later asks fail at once. taken: it took a request it has not
 *        answered.
 */
void tally_handoff_end(tally_handoff_t *h, bool taken, const char *why);

#endif /* TALLY_HANDOFF_H */

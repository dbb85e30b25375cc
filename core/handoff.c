/*
 * One request at a time from any thread to one serving thread (include/tally/handoff.h).
 * Every access to req and ended is sequentially consistent: this is not on the vote path,
 * and the withdraw/take race is the whole point.
 */
#include <errno.h>
#include <stdio.h>
#include <time.h>

#include <tally/error.h>
#include <tally/handoff.h>

#define SC __ATOMIC_SEQ_CST

int
tally_handoff_init(tally_handoff_t *h)
{
	h->req = TALLY_HANDOFF_IDLE;
	h->ended = 0;
	h->why = "no longer served";
	h->rc = 0;
	h->err[0] = '\0';
	return sem_init(&h->answered, 0, 0) == 0 ? 0 : TALLY_EINVAL;
}

void
tally_handoff_destroy(tally_handoff_t *h)
{
	sem_destroy(&h->answered);
}

/* Withdraw req unless the serving thread took it; true if withdrawn. */
static bool
withdraw(tally_handoff_t *h, int req)
{
	return __atomic_compare_exchange_n(&h->req, &req, TALLY_HANDOFF_IDLE, false, SC, SC);
}

int
tally_handoff_ask(tally_handoff_t *h, int req, unsigned timeout_ms, int *answer, char *err,
                  size_t errsz)
{
	int expected = TALLY_HANDOFF_IDLE;
	struct timespec ts;

	if (__atomic_load_n(&h->ended, SC)) {
		snprintf(err, errsz, "%s", h->why);
		return TALLY_ESTATE;
	}
	if (!__atomic_compare_exchange_n(&h->req, &expected, req, false, SC, SC)) {
		snprintf(err, errsz, "another request is in progress");
		return TALLY_EAGAIN;
	}
	/* Ended between the check and the post: end() may have looked before the post. */
	if (__atomic_load_n(&h->ended, SC) && withdraw(h, req)) {
		snprintf(err, errsz, "%s", h->why);
		return TALLY_ESTATE;
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += (time_t)(timeout_ms / 1000);
	ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	while (sem_timedwait(&h->answered, &ts) != 0) {
		if (errno == EINTR)
			continue;
		if (withdraw(h, req)) {
			snprintf(err, errsz, "not taken within %u ms; nothing was done", timeout_ms);
			return TALLY_ETIMEDOUT;
		}
		/* Taken: the serving thread is acting on it, and answers. */
		while (sem_wait(&h->answered) != 0 && errno == EINTR)
			;
		break;
	}
	*answer = h->rc;
	snprintf(err, errsz, "%s", h->err);
	return 0;
}

void
tally_handoff_release(tally_handoff_t *h)
{
	__atomic_store_n(&h->req, TALLY_HANDOFF_IDLE, SC);
}

int
tally_handoff_take(tally_handoff_t *h)
{
	int req = __atomic_load_n(&h->req, SC);

	if (req > 0 && __atomic_compare_exchange_n(&h->req, &req, TALLY_HANDOFF_TAKEN, false, SC, SC))
		return req;
	return 0;
}

void
tally_handoff_answer(tally_handoff_t *h, int rc, const char *err)
{
	h->rc = rc;
	snprintf(h->err, sizeof(h->err), "%s", err != NULL ? err : "");
	sem_post(&h->answered);
}

void
tally_handoff_end(tally_handoff_t *h, bool taken, const char *why)
{
	if (why != NULL)
		h->why = why;
	__atomic_store_n(&h->ended, 1, SC);
	if (taken || tally_handoff_take(h) > 0)
		tally_handoff_answer(h, TALLY_ESTATE, why);
}

/*
 * The handoff (include/tally/handoff.h): a request not taken in time is withdrawn and never
 * answered later; a taken one is always answered; every answer reaches the asker of its
 * own request; one request at a time; the end refuses or answers what waits.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <tally/error.h>
#include <tally/handoff.h>

static int
sem_value(tally_handoff_t *h)
{
	int v = -1;

	sem_getvalue(&h->answered, &v);
	return v;
}

/* A serving thread: takes each request after delay_us and answers rc = 100 + request. */
typedef struct server {
	tally_handoff_t *h;
	unsigned delay_us, answer_delay_us;
	int stop;
	int served;
} server_t;

static void *
serve(void *arg)
{
	server_t *s = arg;

	while (!__atomic_load_n(&s->stop, __ATOMIC_SEQ_CST)) {
		int req;

		usleep(s->delay_us);
		if ((req = tally_handoff_take(s->h)) > 0) {
			char msg[32];

			usleep(s->answer_delay_us);
			snprintf(msg, sizeof(msg), "done %d", req);
			tally_handoff_answer(s->h, 100 + req, msg);
			s->served++;
		}
	}
	return NULL;
}

/* Ask req within timeout_ms and expect the server's answer to it; the handoff stays held. */
static void
ask_answered(tally_handoff_t *h, int req, unsigned timeout_ms)
{
	char err[128], want[32];
	int answer = -1;

	cr_assert_eq(tally_handoff_ask(h, req, timeout_ms, &answer, err, sizeof(err)), 0, "%s",
	             err);
	snprintf(want, sizeof(want), "done %d", req);
	cr_assert_eq(answer, 100 + req);
	cr_assert_str_eq(err, want);
}

/* Stop the server thread t and check it served exactly `served` requests. */
static void
server_join(server_t *s, pthread_t t, int served)
{
	__atomic_store_n(&s->stop, 1, __ATOMIC_SEQ_CST);
	pthread_join(t, NULL);
	cr_assert_eq(s->served, served);
}

Test(handoff, a_request_not_taken_in_time_is_withdrawn_and_never_answered_later)
{
	tally_handoff_t h;
	char err[128];
	int answer = -1;

	cr_assert_eq(tally_handoff_init(&h), 0);
	/* Nobody serves: withdrawn after the timeout. */
	cr_assert_eq(tally_handoff_ask(&h, 1, 50, &answer, err, sizeof(err)), TALLY_ETIMEDOUT);
	cr_assert_str_eq(err, "not taken within 50 ms; nothing was done");
	cr_assert_eq(answer, -1);
	/* The serving thread comes late: there is nothing to take, so nothing is answered. */
	cr_assert_eq(tally_handoff_take(&h), 0);
	cr_assert_eq(sem_value(&h), 0);
	/* The next request gets its own answer, not a late one for the first. */
	{
		server_t s = {.h = &h, .delay_us = 1000};
		pthread_t t;

		cr_assert_eq(pthread_create(&t, NULL, serve, &s), 0);
		ask_answered(&h, 2, 5000);
		tally_handoff_release(&h);
		server_join(&s, t, 1);
	}
	cr_assert_eq(sem_value(&h), 0);
	tally_handoff_destroy(&h);
}

Test(handoff, a_taken_request_is_answered_however_long_it_takes)
{
	tally_handoff_t h;
	server_t s = {.delay_us = 100, .answer_delay_us = 200000};
	pthread_t t;
	char err[128];
	int answer = -1;

	cr_assert_eq(tally_handoff_init(&h), 0);
	s.h = &h;
	cr_assert_eq(pthread_create(&t, NULL, serve, &s), 0);
	/* Taken within the 50 ms, answered after 200 ms: the answer, not a timeout. */
	ask_answered(&h, 3, 50);
	/* Held until released: a second asker is refused meanwhile. */
	cr_assert_eq(tally_handoff_ask(&h, 4, 50, &answer, err, sizeof(err)), TALLY_EAGAIN);
	cr_assert_str_eq(err, "another request is in progress");
	tally_handoff_release(&h);
	server_join(&s, t, 1);
	cr_assert_eq(sem_value(&h), 0);
	tally_handoff_destroy(&h);
}

Test(handoff, the_end_refuses_what_waits_and_answers_what_was_taken)
{
	tally_handoff_t h;
	char err[128];
	int answer = -1;

	/* Ended: asks fail at once with the reason. */
	cr_assert_eq(tally_handoff_init(&h), 0);
	tally_handoff_end(&h, false, "the run is over");
	cr_assert_eq(tally_handoff_ask(&h, 1, 1000, &answer, err, sizeof(err)), TALLY_ESTATE);
	cr_assert_str_eq(err, "the run is over");
	cr_assert_eq(sem_value(&h), 0);
	tally_handoff_destroy(&h);

	/* Taken and not answered when the server ends: answered with TALLY_ESTATE. */
	cr_assert_eq(tally_handoff_init(&h), 0);
	h.req = 5;                                  /* as an asker would have posted it */
	cr_assert_eq(tally_handoff_take(&h), 5);
	tally_handoff_end(&h, true, "stopping");
	cr_assert_eq(sem_value(&h), 1);
	cr_assert_eq(h.rc, TALLY_ESTATE);
	cr_assert_str_eq(h.err, "stopping");
	tally_handoff_destroy(&h);

	/* Waiting, not taken, when the server ends: taken by end() and answered. */
	cr_assert_eq(tally_handoff_init(&h), 0);
	h.req = 6;
	tally_handoff_end(&h, false, "stopping");
	cr_assert_eq(h.req, TALLY_HANDOFF_TAKEN);
	cr_assert_eq(sem_value(&h), 1);
	cr_assert_eq(h.rc, TALLY_ESTATE);
	tally_handoff_destroy(&h);
}

/* Askers racing a slow server with short timeouts: every answer is its own request's. */
typedef struct asker {
	tally_handoff_t *h;
	int id;
	int answered, withdrawn, busy, wrong;
} asker_t;

static void *
ask_many(void *arg)
{
	asker_t *a = arg;

	for (int i = 0; i < 400; i++) {
		int req = a->id * 1000 + i + 1, answer = 0, rc;
		char err[64];

		rc = tally_handoff_ask(a->h, req, 1 + (unsigned)(i % 3), &answer, err, sizeof(err));
		if (rc == 0) {
			a->answered++;
			a->wrong += answer != 100 + req;
			tally_handoff_release(a->h);
		} else if (rc == TALLY_ETIMEDOUT) {
			a->withdrawn++;
		} else if (rc == TALLY_EAGAIN) {
			a->busy++;
			usleep(50);
		} else {
			a->wrong++;
		}
	}
	return NULL;
}

Test(handoff, racing_askers_each_get_the_answer_to_their_own_request, .timeout = 120)
{
	tally_handoff_t h;
	server_t s = {.delay_us = 2000, .answer_delay_us = 300};
	asker_t a[2] = {{.id = 1}, {.id = 2}};
	pthread_t ts, ta[2];
	int answered = 0, withdrawn = 0;

	cr_assert_eq(tally_handoff_init(&h), 0);
	s.h = a[0].h = a[1].h = &h;
	cr_assert_eq(pthread_create(&ts, NULL, serve, &s), 0);
	for (int i = 0; i < 2; i++)
		cr_assert_eq(pthread_create(&ta[i], NULL, ask_many, &a[i]), 0);
	for (int i = 0; i < 2; i++) {
		pthread_join(ta[i], NULL);
		cr_assert_eq(a[i].wrong, 0, "asker %d got %d answers that were not its own", i,
		             a[i].wrong);
		cr_assert_eq(a[i].answered + a[i].withdrawn + a[i].busy, 400);
		answered += a[i].answered;
		withdrawn += a[i].withdrawn;
	}
	/* Exactly the answered requests were served; nothing withdrawn was served later. */
	server_join(&s, ts, answered);
	cr_assert_gt(answered, 0);
	cr_assert_gt(withdrawn, 0, "the timeouts never raced the server: the test proves nothing");
	cr_assert_eq(sem_value(&h), 0);
	cr_assert_eq(h.req, TALLY_HANDOFF_IDLE);
	tally_handoff_destroy(&h);
}

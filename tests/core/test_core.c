/*
 * The vote path, one reason at a time, on a core whose batches run on the test thread
 * (tally_core_process) and on real workers.
 */
#include <criterion/criterion.h>
#include <string.h>
#include <unistd.h>

#include <tally/core.h>
#include <tally/snapshot.h>
#include <tally/time.h>

#include "fixture.h"

static tally_registry_t *reg;
static tally_core_t *core;

static void
setup(void)
{
	tally_core_opts_t o = fixture_core_opts(2);
	char err[128];

	reg = fixture_registry(3, 4, 6, 1000, 1000);
	core = tally_core_new(reg, &o, err, sizeof(err));
	cr_assert_not_null(core, "%s", err);
}

static void
teardown(void)
{
	tally_core_destroy(core);
	tally_registry_destroy(reg);
}

static tally_reason_t
one(tally_vote_t *v)
{
	tally_batch_t b;

	tally_batch_init(&b, v, 1, 0);
	tally_core_process(core, 0, &b);
	cr_assert(tally_batch_done(&b));
	cr_assert_eq(b.accepted + b.rejected, 1);
	return (tally_reason_t)v->reason;
}

TestSuite(core, .init = setup, .fini = teardown);

Test(core, each_reason)
{
	tally_vote_t v;
	tally_snapshot_t *snap;
	char err[256];

	fixture_vote(&v, 1, 2);
	cr_assert_eq(one(&v), TALLY_REASON_ACCEPTED);
	cr_assert_eq(v.region, fixture_region_of(1, 6));
	fixture_vote(&v, 1, 3);
	cr_assert_eq(one(&v), TALLY_REASON_DUPLICATE);
	fixture_vote(&v, 5000, 2);
	cr_assert_eq(one(&v), TALLY_REASON_UNKNOWN_VOTER);
	fixture_vote(&v, 2, 4);
	cr_assert_eq(one(&v), TALLY_REASON_UNKNOWN_CANDIDATE);
	fixture_vote(&v, 2, 1);
	v.voting_time = FIXTURE_OPENS_AT - 1;
	cr_assert_eq(one(&v), TALLY_REASON_TOO_EARLY);
	fixture_vote(&v, 2, 1);
	v.voting_time = FIXTURE_CLOSES_AT;
	cr_assert_eq(one(&v), TALLY_REASON_TOO_LATE);
	fixture_vote(&v, 2, 1);
	v.voting_time = FIXTURE_OPENS_AT;
	cr_assert_eq(one(&v), TALLY_REASON_ACCEPTED, "opening second is inside the window");
	fixture_vote(&v, 3, 1);
	v.reason = TALLY_REASON_MALFORMED;
	cr_assert_eq(one(&v), TALLY_REASON_MALFORMED);
	/* Rejected votes do not use the voter's vote up. */
	fixture_vote(&v, 3, 0);
	cr_assert_eq(one(&v), TALLY_REASON_ACCEPTED);

	snap = tally_snapshot_take(core);
	cr_assert_eq(tally_snapshot_check(snap, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(snap->read, 9);
	cr_assert_eq(snap->accepted, 3);
	cr_assert_eq(snap->candidates[2], 1);
	cr_assert_eq(snap->candidates[1], 1);
	cr_assert_eq(snap->candidates[0], 1);
	cr_assert_eq(snap->parties[2], 1); /* candidate 2 is in party 2 */
	cr_assert_eq(snap->parties[1], 1);
	cr_assert_eq(snap->parties[0], 1);
	cr_assert_eq(snap->rejected[TALLY_REASON_DUPLICATE], 1);
	cr_assert_eq(snap->rejected[TALLY_REASON_UNKNOWN_VOTER], 1);
	cr_assert_eq(snap->rejected[TALLY_REASON_UNKNOWN_CANDIDATE], 1);
	cr_assert_eq(snap->rejected[TALLY_REASON_TOO_EARLY], 1);
	cr_assert_eq(snap->rejected[TALLY_REASON_TOO_LATE], 1);
	cr_assert_eq(snap->rejected[TALLY_REASON_MALFORMED], 1);
	cr_assert_eq(snap->rejected[TALLY_REASON_INELIGIBLE], 0);
	cr_assert_eq(snap->rejected_total, 6);
	cr_assert_eq(snap->registered, 1000);
	cr_assert_eq(tally_snapshot_cand_region(snap, 2, fixture_region_of(1, 6)), 1);
	cr_assert_eq(tally_snapshot_leader(snap), 0);
	tally_snapshot_destroy(snap);
}

static void
add_voter_born(uint64_t i, int y, unsigned m, unsigned d)
{
	tally_voter_reg_t vr = {fixture_voter_id(i), tally_days_from_civil(y, m, d), "Kent", NULL};

	cr_assert_eq(tally_registry_add_voter(reg, &vr), TALLY_REFUSAL_NONE);
}

Test(core, eighteen_on_election_day)
{
	tally_vote_t v;

	/* Election day is 2026-05-07. */
	add_voter_born(2000, 2008, 5, 7);   /* 18 today */
	add_voter_born(2001, 2008, 5, 8);   /* 18 tomorrow */
	add_voter_born(2002, 1930, 1, 1);
	fixture_vote(&v, 2000, 0);
	cr_assert_eq(one(&v), TALLY_REASON_ACCEPTED);
	fixture_vote(&v, 2001, 0);
	cr_assert_eq(one(&v), TALLY_REASON_INELIGIBLE);
	fixture_vote(&v, 2002, 0);
	cr_assert_eq(one(&v), TALLY_REASON_ACCEPTED);
}

Test(core, leap_day_births, .init = NULL, .fini = NULL)
{
	/* Election on 2027-03-01: born 2009-02-29 does not exist; born 2009-03-01 is 18. */
	tally_core_opts_t o = fixture_core_opts(1);
	tally_registry_t *r = fixture_registry(1, 1, 1, 0, 1024);
	tally_voter_reg_t vr = {fixture_voter_id(1), tally_days_from_civil(2009, 3, 1), "Kent", NULL};
	tally_vote_t v[3];
	tally_batch_t b;
	char err[128];
	tally_core_t *c;

	o.election.opens_at = (int64_t)tally_days_from_civil(2027, 3, 1) * 86400 + 7 * 3600;
	o.election.closes_at = o.election.opens_at + 15 * 3600;
	c = tally_core_new(r, &o, err, sizeof(err));
	cr_assert_not_null(c, "%s", err);
	tally_registry_add_voter(r, &vr);
	vr.id = fixture_voter_id(2);
	vr.date_of_birth = tally_days_from_civil(2009, 3, 2);
	tally_registry_add_voter(r, &vr);
	vr.id = fixture_voter_id(3);
	vr.date_of_birth = tally_days_from_civil(2008, 2, 29); /* 18 on 2026-03-01 */
	tally_registry_add_voter(r, &vr);
	for (int i = 0; i < 3; i++) {
		fixture_vote(&v[i], (uint64_t)i + 1, 0);
		v[i].voting_time = o.election.opens_at + 60;
	}
	tally_batch_init(&b, v, 3, 0);
	tally_core_process(c, 0, &b);
	cr_assert_eq(v[0].reason, TALLY_REASON_ACCEPTED);
	cr_assert_eq(v[1].reason, TALLY_REASON_INELIGIBLE);
	cr_assert_eq(v[2].reason, TALLY_REASON_ACCEPTED);
	tally_core_destroy(c);
	tally_registry_destroy(r);
}

Test(core, scheduled_then_open_then_closed_then_final)
{
	tally_core_opts_t o = fixture_core_opts(2);
	tally_election_t el;
	tally_snapshot_t *fin, *live;
	tally_vote_t v;
	char err[128];

	tally_core_destroy(core);
	o.election.status = TALLY_ELECTION_SCHEDULED;
	core = tally_core_new(reg, &o, err, sizeof(err));
	cr_assert_not_null(core);
	cr_assert_null(tally_snapshot_final(core));
	fixture_vote(&v, 10, 1);
	cr_assert_eq(one(&v), TALLY_REASON_TOO_EARLY, "scheduled: polls not open yet");
	cr_assert_eq(tally_core_election_close(core), TALLY_ESTATE);
	cr_assert_eq(tally_core_election_open(core), 0);
	cr_assert_eq(tally_core_election_open(core), TALLY_ESTATE);
	fixture_vote(&v, 10, 1);
	cr_assert_eq(one(&v), TALLY_REASON_ACCEPTED);
	cr_assert_eq(tally_core_start(core), 0);
	cr_assert_eq(tally_core_election_close(core), 0);
	tally_core_stop(core);
	fixture_vote(&v, 11, 1);
	cr_assert_eq(one(&v), TALLY_REASON_POLLS_CLOSED);
	fin = tally_snapshot_final(core);
	live = tally_snapshot_take(core);
	cr_assert_not_null(fin);
	cr_assert_eq(fin->accepted, 1);
	cr_assert_eq(fin->read, 2);
	cr_assert_eq(fin->election.status, TALLY_ELECTION_CLOSED);
	cr_assert_eq(live->read, 3);
	cr_assert_eq(live->rejected[TALLY_REASON_POLLS_CLOSED], 1);
	cr_assert_gt(live->version, fin->version);
	tally_snapshot_destroy(fin);
	tally_snapshot_destroy(live);
	cr_assert_eq(tally_core_election_finalize(core), 0);
	tally_core_election(core, &el);
	cr_assert_eq(el.status, TALLY_ELECTION_FINAL);
	fin = tally_snapshot_final(core);
	cr_assert_eq(fin->election.status, TALLY_ELECTION_FINAL);
	cr_assert_eq(fin->accepted, 1);
	tally_snapshot_destroy(fin);
}

Test(core, first_vote_in_a_lane_wins)
{
	enum { N = 64 };
	static tally_vote_t votes[N][2];
	static tally_batch_t b[N];
	tally_snapshot_t *snap;

	cr_assert_eq(tally_core_start(core), 0);
	/* Each voter's two votes are in consecutive batches of the same lane. */
	for (int i = 0; i < N; i++) {
		fixture_vote(&votes[i][0], (uint64_t)i / 2, (i & 1) ? 3 : 0);
		fixture_vote(&votes[i][1], 500 + (uint64_t)i, 1);
		tally_batch_init(&b[i], votes[i], 2, (uint32_t)(i / 2) % 5);
	}
	for (int i = 0; i < N; i++)
		cr_assert_eq(tally_core_submit(core, &b[i]), 0);
	tally_core_drain(core);
	for (int i = 0; i < N; i++) {
		cr_assert(tally_batch_done(&b[i]));
		cr_assert_eq(votes[i][0].reason, (i & 1) ? TALLY_REASON_DUPLICATE : TALLY_REASON_ACCEPTED);
	}
	snap = tally_snapshot_take(core);
	cr_assert_eq(snap->candidates[0], N / 2);
	cr_assert_eq(snap->candidates[3], 0);
	cr_assert_eq(snap->candidates[1], N);
	tally_snapshot_destroy(snap);
	tally_core_stop(core);
	cr_assert_eq(tally_core_submit(core, &b[0]), TALLY_ESTATE);
}

Test(core, mark_voted_blocks_a_second_vote)
{
	tally_vote_t v;
	tally_uuid_t id = fixture_voter_id(42), nobody = fixture_voter_id(4242);

	cr_assert_eq(tally_core_mark_voted(core, &id), 0);
	cr_assert_eq(tally_core_mark_voted(core, &id), TALLY_EEXISTS);
	cr_assert_eq(tally_core_mark_voted(core, &nobody), TALLY_ENOENT);
	fixture_vote(&v, 42, 1);
	cr_assert_eq(one(&v), TALLY_REASON_DUPLICATE);
}

Test(core, mark_voted_many_marks_each_once_and_stops_at_an_unknown_voter)
{
	tally_uuid_t ids[300];
	tally_vote_t v;
	size_t failed = 0;

	/* 100 voters, each twice (a voter already marked is fine), prefetching ahead. */
	for (int i = 0; i < 200; i++)
		ids[i] = fixture_voter_id((uint64_t)(i % 100));
	cr_assert_eq(tally_core_mark_voted_many(core, ids, 200, &failed), 0);
	for (int i = 0; i < 100; i++)
		cr_assert_eq(tally_core_mark_voted(core, &ids[i]), TALLY_EEXISTS, "voter %d", i);
	fixture_vote(&v, 7, 1);
	cr_assert_eq(one(&v), TALLY_REASON_DUPLICATE);
	fixture_vote(&v, 150, 1);
	cr_assert_eq(one(&v), TALLY_REASON_ACCEPTED);
	/* An unknown voter in the middle: its index is reported, those before are marked. */
	for (int i = 0; i < 20; i++)
		ids[i] = fixture_voter_id((uint64_t)(200 + i));
	ids[10] = fixture_voter_id(987654321);
	cr_assert_eq(tally_core_mark_voted_many(core, ids, 20, &failed), TALLY_ENOENT);
	cr_assert_eq(failed, 10);
	cr_assert_eq(tally_core_mark_voted(core, &ids[9]), TALLY_EEXISTS);
	cr_assert_eq(tally_core_mark_voted(core, &ids[11]), 0);
}

static void
count_done(tally_batch_t *b, void *arg)
{
	__atomic_add_fetch((uint64_t *)arg, b->accepted, __ATOMIC_RELAXED);
}

Test(core, pause_holds_batches_and_callbacks_report)
{
	static tally_vote_t votes[100];
	tally_batch_t b;
	uint64_t accepted = 0;

	cr_assert_eq(tally_core_start(core), 0);
	tally_core_pause(core);
	for (int i = 0; i < 100; i++)
		fixture_vote(&votes[i], (uint64_t)i, (uint32_t)i % 4);
	tally_batch_init(&b, votes, 100, 1);
	b.on_done = count_done;
	b.arg = &accepted;
	cr_assert_eq(tally_core_submit(core, &b), 0);
	usleep(20000);
	cr_assert_not(tally_batch_done(&b), "a paused worker took a batch");
	tally_core_resume(core);
	tally_core_drain(core);
	cr_assert(tally_batch_done(&b));
	cr_assert_eq(b.accepted, 100);
	cr_assert_eq(__atomic_load_n(&accepted, __ATOMIC_RELAXED), 100);
	tally_core_stop(core);
}

Test(core, bad_options_are_refused)
{
	tally_core_opts_t o = fixture_core_opts(2);
	char err[128];

	o.queue_size = 100;
	cr_assert_null(tally_core_new(reg, &o, err, sizeof(err)));
	cr_assert_str_eq(err, "queue size 100 is not a power of two of at least 4");
	o = fixture_core_opts(2);
	o.election.closes_at = o.election.opens_at;
	cr_assert_null(tally_core_new(reg, &o, err, sizeof(err)));
	cr_assert_str_eq(err, "election \"ge-2026\" closes before it opens");
}

/*
 * Concurrency: many producers, two workers, exact counts; snapshots taken while counting;
 * registrations while counting.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>

#include <tally/core.h>
#include <tally/snapshot.h>

#include "fixture.h"

#define PRODUCERS   4
#define WORKERS     2
#define VOTES       2000000u   /* in all */
#define PER_PROD    (VOTES / PRODUCERS)
#define FRESH_PER_PROD (PER_PROD / 20 * 16)
#define NCAND       10
#define NPARTY      4
#define NREGION     50
#define NVOTERS     ((uint64_t)FRESH_PER_PROD * PRODUCERS + 1000)
#define BATCH       256
#define POOL        16

static uint32_t
choice(uint64_t voter)
{
	return (uint32_t)(fixture_mix(voter * 7 + 1) % NCAND);
}

struct producer {
	tally_core_t *core;
	unsigned id;
	uint64_t dups, unknown, malformed, fresh;
};

/*
 * Votes j of producer p: j % 20 in {0, 1} duplicate an earlier fresh voter of this
 * producer, 2 is an unknown voter, 3 is malformed, the rest are fresh voters. A voter always
 * picks the same candidate, so which of their votes counts does not change the results.
 */
static void *
produce(void *arg)
{
	struct producer *p = arg;
	tally_vote_t *votes = calloc((size_t)POOL * BATCH, sizeof(tally_vote_t));
	tally_batch_t batches[POOL];
	uint64_t fresh_base = (uint64_t)p->id * FRESH_PER_PROD, seq = 0;
	uint32_t slot = 0, fill = 0;
	uint64_t rnd = p->id + 1;

	for (int i = 0; i < POOL; i++)
		batches[i].done = 1;
	for (uint32_t j = 0; j < PER_PROD; j++) {
		tally_batch_t *b = &batches[slot];
		tally_vote_t *v;
		unsigned kind = j % 20;

		if (fill == 0)
			while (!tally_batch_done(b))
				sched_yield();
		v = &votes[(size_t)slot * BATCH + fill];
		rnd = fixture_mix(rnd);
		if (kind <= 1 && p->fresh > 0) {
			uint64_t voter = fresh_base + rnd % p->fresh;

			fixture_vote(v, voter, choice(voter));
			p->dups++;
		} else if (kind == 2 || kind <= 1) {
			fixture_vote(v, NVOTERS + 1000000 + (uint64_t)p->id * PER_PROD + j, 0);
			p->unknown++;
		} else if (kind == 3) {
			fixture_vote(v, fresh_base, 0);
			v->reason = TALLY_REASON_MALFORMED;
			p->malformed++;
		} else {
			uint64_t voter = fresh_base + p->fresh++;

			fixture_vote(v, voter, choice(voter));
		}
		if (++fill == BATCH || j + 1 == PER_PROD) {
			tally_batch_init(b, &votes[(size_t)slot * BATCH], fill, (uint32_t)(seq++ * 7 + p->id));
			if (tally_core_submit(p->core, b) != 0)
				abort();
			slot = (slot + 1) % POOL;
			fill = 0;
		}
	}
	for (int i = 0; i < POOL; i++)
		while (!tally_batch_done(&batches[i]))
			sched_yield();
	free(votes);
	return NULL;
}

struct reader {
	tally_core_t *core;
	int stop;
	uint64_t snapshots;
	char failure[256];
};

static void *
read_snapshots(void *arg)
{
	struct reader *r = arg;
	tally_snapshot_t *prev = NULL, *snap = calloc(1, sizeof(*snap));

	while (!__atomic_load_n(&r->stop, __ATOMIC_ACQUIRE)) {
		if (tally_snapshot_take_into(r->core, snap) != 0) {
			snprintf(r->failure, sizeof(r->failure), "out of memory");
			break;
		}
		if (tally_snapshot_check(snap, r->failure, sizeof(r->failure)) != 0)
			break;
		if (prev != NULL) {
			if (snap->version < prev->version || snap->read < prev->read) {
				snprintf(r->failure, sizeof(r->failure), "went backwards: version %llu after %llu",
				         (unsigned long long)snap->version, (unsigned long long)prev->version);
				break;
			}
			for (uint32_t c = 0; c < prev->ncandidates; c++)
				if (snap->candidates[c] < prev->candidates[c]) {
					snprintf(r->failure, sizeof(r->failure), "candidate %u went down", c);
					goto out;
				}
			tally_snapshot_destroy(prev);
		}
		prev = tally_snapshot_copy(snap);
		r->snapshots++;
	}
out:
	tally_snapshot_destroy(prev);
	tally_snapshot_destroy(snap);
	return NULL;
}

static void
run(int readers)
{
	tally_registry_t *reg = fixture_registry(NPARTY, NCAND, NREGION, NVOTERS, NVOTERS);
	tally_core_opts_t o = fixture_core_opts(WORKERS);
	uint64_t exp_cand[NCAND] = {0}, exp_region[NREGION] = {0}, exp_party[NPARTY] = {0};
	uint64_t exp_cr[NCAND][NREGION];
	uint64_t dups = 0, unknown = 0, malformed = 0, fresh = 0;
	struct producer prod[PRODUCERS];
	struct reader rd[2];
	pthread_t pt[PRODUCERS], rt[2];
	tally_snapshot_t *snap;
	char err[256];
	tally_core_t *core = tally_core_new(reg, &o, err, sizeof(err));

	cr_assert_not_null(core, "%s", err);
	cr_assert_eq(tally_core_start(core), 0);
	memset(exp_cr, 0, sizeof(exp_cr));
	for (int i = 0; i < readers; i++) {
		memset(&rd[i], 0, sizeof(rd[i]));
		rd[i].core = core;
		pthread_create(&rt[i], NULL, read_snapshots, &rd[i]);
	}
	for (unsigned i = 0; i < PRODUCERS; i++) {
		memset(&prod[i], 0, sizeof(prod[i]));
		prod[i].core = core;
		prod[i].id = i;
		pthread_create(&pt[i], NULL, produce, &prod[i]);
	}
	for (unsigned i = 0; i < PRODUCERS; i++)
		pthread_join(pt[i], NULL);
	tally_core_drain(core);
	for (int i = 0; i < readers; i++) {
		__atomic_store_n(&rd[i].stop, 1, __ATOMIC_RELEASE);
		pthread_join(rt[i], NULL);
		cr_assert_eq(rd[i].failure[0], '\0', "snapshot reader %d: %s", i, rd[i].failure);
		cr_assert_gt(rd[i].snapshots, 0);
	}

	/* What the test expects, computed from what it sent. */
	for (unsigned i = 0; i < PRODUCERS; i++) {
		dups += prod[i].dups;
		unknown += prod[i].unknown;
		malformed += prod[i].malformed;
		fresh += prod[i].fresh;
		for (uint64_t k = 0; k < prod[i].fresh; k++) {
			uint64_t voter = (uint64_t)i * FRESH_PER_PROD + k;
			uint32_t c = choice(voter), r = fixture_region_of(voter, NREGION);

			exp_cand[c]++;
			exp_region[r]++;
			exp_party[c % NPARTY]++;
			exp_cr[c][r]++;
		}
	}
	cr_assert_eq(fresh + dups + unknown + malformed, VOTES);
	cr_assert_eq(dups, VOTES / 10 - 2 * PRODUCERS); /* the first two of each have no voter to repeat */
	cr_assert_eq(unknown, VOTES / 20 + (VOTES / 10 - dups));
	cr_assert_eq(malformed, VOTES / 20);

	snap = tally_snapshot_take(core);
	cr_assert_eq(tally_snapshot_check(snap, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(snap->read, VOTES);
	cr_assert_eq(snap->accepted, fresh);
	cr_assert_eq(snap->rejected[TALLY_REASON_DUPLICATE], dups);
	cr_assert_eq(snap->rejected[TALLY_REASON_UNKNOWN_VOTER], unknown);
	cr_assert_eq(snap->rejected[TALLY_REASON_MALFORMED], malformed);
	cr_assert_eq(snap->rejected_total, dups + unknown + malformed);
	for (int c = 0; c < NCAND; c++)
		cr_assert_eq(snap->candidates[c], exp_cand[c], "candidate %d", c);
	for (int r = 0; r < NREGION; r++)
		cr_assert_eq(snap->regions[r], exp_region[r], "region %d", r);
	for (int p = 0; p < NPARTY; p++)
		cr_assert_eq(snap->parties[p], exp_party[p], "party %d", p);
	for (int c = 0; c < NCAND; c++)
		for (int r = 0; r < NREGION; r++)
			cr_assert_eq(tally_snapshot_cand_region(snap, c, r), exp_cr[c][r]);
	tally_snapshot_destroy(snap);
	tally_core_destroy(core);
	tally_registry_destroy(reg);
}

Test(stress, four_producers_two_workers_exact, .timeout = 600)
{
	run(0);
}

Test(stress, snapshot_hammer, .timeout = 600)
{
	run(2);
}

/* ---- registrations while counting ------------------------------------------------- */

struct registrar {
	tally_registry_t *reg;
	uint64_t from, to;
	uint64_t published;   /* voters [0, published) are registered */
};

static void *
register_voters(void *arg)
{
	struct registrar *g = arg;

	for (uint64_t i = g->from; i < g->to; i += 1000) {
		fixture_add_voters(g->reg, i, i + 1000 < g->to ? i + 1000 : g->to, NREGION);
		__atomic_store_n(&g->published, i + 1000 < g->to ? i + 1000 : g->to, __ATOMIC_RELEASE);
	}
	return NULL;
}

Test(stress, registrations_while_counting, .timeout = 600)
{
	enum { TOTAL = 300000, FIRST = 1000 };
	tally_registry_t *reg = fixture_registry(NPARTY, 3, NREGION, FIRST, 2048);
	tally_core_opts_t o = fixture_core_opts(WORKERS);
	struct registrar g = {reg, FIRST, TOTAL, FIRST};
	static tally_vote_t votes[TOTAL];
	static tally_batch_t batches[TOTAL / 100 + 1];
	uint64_t exp_cand[NCAND] = {0};
	tally_candidate_reg_t cr;
	tally_snapshot_t *snap;
	char err[256], name[32];
	pthread_t t;
	tally_core_t *core = tally_core_new(reg, &o, err, sizeof(err));
	uint32_t nb = 0, ncand = 3;

	cr_assert_not_null(core);
	cr_assert_eq(tally_core_start(core), 0);
	pthread_create(&t, NULL, register_voters, &g);
	/* Vote only for voters already published, in batches of 100; add a candidate now
	 * and then, from this thread, which is then the registry's only other writer... so the
	 * registrar must be done with candidates: candidates are added here after it joins. */
	for (uint64_t next = 0; next < TOTAL;) {
		uint64_t upto = __atomic_load_n(&g.published, __ATOMIC_ACQUIRE);

		while (next + 100 <= upto) {
			for (int k = 0; k < 100; k++) {
				uint32_t c = (uint32_t)((next + (uint64_t)k) % ncand);

				fixture_vote(&votes[next + (uint64_t)k], next + (uint64_t)k, c);
				exp_cand[c]++;
			}
			tally_batch_init(&batches[nb], &votes[next], 100, nb);
			cr_assert_eq(tally_core_submit(core, &batches[nb]), 0);
			nb++;
			next += 100;
		}
	}
	pthread_join(t, NULL);
	/* Candidates registered while counting: the registration writer is now this thread. */
	for (uint32_t c = 3; c < 6; c++) {
		cr = (tally_candidate_reg_t){fixture_candidate_id(c), name, "Party 1", NULL, NULL};
		snprintf(name, sizeof(name), "Late candidate %u", c);
		cr_assert_eq(tally_registry_add_candidate(reg, &cr, NULL), TALLY_REFUSAL_NONE);
	}
	fixture_add_voters(reg, TOTAL, TOTAL + 600, NREGION);
	{
		static tally_vote_t late[600];

		for (int k = 0; k < 600; k++) {
			fixture_vote(&late[k], TOTAL + (uint64_t)k, (uint32_t)(k % 6));
			exp_cand[k % 6]++;
		}
		tally_batch_init(&batches[nb], late, 600, 0);
		cr_assert_eq(tally_core_submit(core, &batches[nb]), 0);
	}
	tally_core_drain(core);
	snap = tally_snapshot_take(core);
	cr_assert_eq(tally_snapshot_check(snap, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(snap->accepted, TOTAL + 600);
	cr_assert_eq(snap->read, TOTAL + 600);
	cr_assert_eq(snap->ncandidates, 6);
	for (int c = 0; c < 6; c++)
		cr_assert_eq(snap->candidates[c], exp_cand[c], "candidate %d", c);
	cr_assert_eq(snap->registered, TOTAL + 600);
	tally_snapshot_destroy(snap);
	tally_core_destroy(core);
	tally_registry_destroy(reg);
}

/*
 * The counting engine: workers, their queues, the vote path, pause and the election.
 *
 * DESIGN (see also include/tally/core.h):
 *  - Producers (any thread) submit batch pointers into worker[lane % N]'s MPSC queue and
 *    bump that worker's `submitted`. The worker is the queue's only consumer.
 *  - The worker judges each vote against the election and the registry, claims the voter's
 *    voted bit with one fetch-or, and bumps one of its own cells with a relaxed store. It
 *    then publishes batch->done with release and bumps `completed`.
 *  - Pausing: the control thread makes pause_gen odd; each worker, between batches, stores
 *    the generation it saw into pause_ack and sleeps until pause_gen changes. Nothing on
 *    the vote path blocks on a lock; a paused worker just does not take the next batch.
 *  - Idle workers spin briefly, then yield, then sleep up to 200 us.
 */
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <tally/core.h>
#include <tally/error.h>
#include <tally/snapshot.h>
#include <tally/thread.h>
#include <tally/time.h>

#include "core_int.h"

#define PREFETCH_DISTANCE 8   /* power of two */

static void
sleep_us(unsigned us)
{
	struct timespec ts = {0, (long)us * 1000};

	nanosleep(&ts, NULL);
}

/* Back off after `idle` empty polls: spin, then yield, then sleep (≤ 200 us). */
static void
idle_backoff(unsigned idle)
{
	if (idle < 64)
		tally_cpu_relax();
	else if (idle < 96)
		sched_yield();
	else
		sleep_us(idle < 128 ? 20 : 200);
}

int32_t
tally_election_dob_cutoff(int64_t opens_at)
{
	int64_t days = opens_at >= 0 ? opens_at / 86400 : -((-opens_at + 86399) / 86400);
	int y;
	unsigned m, d;

	tally_civil_from_days((int32_t)days, &y, &m, &d);
	y -= 18;
	/* Born on 29 February: the birthday counts on 1 March in a common year, so the
	 * cutoff for election day 28 February stays 28 February, and for 29 February
	 * (leap election day, common cutoff year) it is 28 February. */
	if (m == 2 && d == 29 && !tally_date_valid(y, 2, 29))
		d = 28;
	return tally_days_from_civil(y, m, d);
}

/* The last date of birth (as dob16) that is 18 or older on election day. */
static uint32_t
dob_cutoff(int64_t opens_at)
{
	return tally__registry_dob16(tally_election_dob_cutoff(opens_at));
}

static inline tally_reason_t
judge(struct tally_core *core, uint64_t *cells, tally_vote_t *v, uint64_t h, uint64_t hc,
      uint32_t status)
{
	const tally__vtable_t *t;
	const tally__cand_hot_t *c;
	tally__vslot_t *s;
	int32_t cand;
	uint32_t meta, region;
	uint64_t cell;

	if (v->reason == TALLY_REASON_MALFORMED)
		return TALLY_REASON_MALFORMED;
	if (status >= TALLY_ELECTION_CLOSED)
		return TALLY_REASON_POLLS_CLOSED;
	if (status == TALLY_ELECTION_SCHEDULED || v->voting_time < core->election.opens_at)
		return TALLY_REASON_TOO_EARLY;
	if (v->voting_time >= core->election.closes_at)
		return TALLY_REASON_TOO_LATE;
	if ((s = tally__registry_voter_slot_in(core->hot, &v->voter_id, h, &t)) == NULL)
		return TALLY_REASON_UNKNOWN_VOTER;
	meta = tally_load_relaxed(&s->meta);
	region = TALLY__VMETA_REGION(meta);
	v->region = region;
	if ((cand = tally__cand_find(core->hot, &v->candidate_id, hc)) < 0)
		return TALLY_REASON_UNKNOWN_CANDIDATE;
	if (TALLY__VMETA_DOB(meta) > core->dob_cutoff16)
		return TALLY_REASON_INELIGIBLE;
	/* The candidate's contest: contest 0 takes every region (cell = region); another, only
	 * its own regions, at their places. */
	c = &core->hot->cands[cand];
	if (c->contest == 0) {
		cell = c->cell + region;
	} else {
		tally__place_t p = tally_load_relaxed(&core->hot->places[c->level][region]);

		if (TALLY__PLACE_CONTEST1(p) != c->contest + 1)
			return TALLY_REASON_WRONG_CONTEST;
		cell = c->cell + TALLY__PLACE_POS(p);
	}
	if (!tally__vslot_claim(s, t, c->store))
		return TALLY_REASON_DUPLICATE;
	tally_counter_inc_owned(&cells[cell]);
	return TALLY_REASON_ACCEPTED;
}

static void
process_batch(struct tally_core *core, struct tally__worker *w, tally_batch_t *b)
{
	uint64_t hs[PREFETCH_DISTANCE], hcs[PREFETCH_DISTANCE];
	uint32_t status = tally_load_acquire(&core->status);
	uint32_t n = b->count, accepted = 0;
	/* The batch's part: its lane (below parts: checked at submit) when counters are kept
	 * per part. */
	uint64_t *cells = tally__slice(core, w->idx, core->parts == 1 ? 0 : b->lane % core->parts);
	uint64_t *rejected = cells + core->cells_per_part;
	void (*on_done)(tally_batch_t *, void *) = b->on_done;
	void *arg = b->arg;

	/* Hash and prefetch a few votes ahead so several slot misses are in flight at once;
	 * the candidate's index slot as far ahead, its entry half as far (many candidates, as
	 * in 650 contests, no longer fit the cache beside the stream of voter slots). */
	for (uint32_t i = 0; i < n && i < PREFETCH_DISTANCE; i++) {
		hs[i] = tally_uuid_hash(&b->votes[i].voter_id);
		hcs[i] = tally_uuid_hash(&b->votes[i].candidate_id);
		tally__registry_prefetch(core->hot, hs[i]);
		tally__cand_prefetch_slot(core->hot, hcs[i]);
	}
	for (uint32_t i = 0; i < n; i++) {
		tally_vote_t *v = &b->votes[i];
		uint64_t h = hs[i & (PREFETCH_DISTANCE - 1)], hc = hcs[i & (PREFETCH_DISTANCE - 1)];
		tally_reason_t r;

		if (i + PREFETCH_DISTANCE < n) {
			const tally_vote_t *a = &b->votes[i + PREFETCH_DISTANCE];
			uint64_t ha = tally_uuid_hash(&a->voter_id), hca = tally_uuid_hash(&a->candidate_id);

			hs[i & (PREFETCH_DISTANCE - 1)] = ha;
			hcs[i & (PREFETCH_DISTANCE - 1)] = hca;
			tally__registry_prefetch(core->hot, ha);
			tally__cand_prefetch_slot(core->hot, hca);
		}
		if (i + PREFETCH_DISTANCE / 2 < n)
			tally__cand_prefetch_entry(core->hot,
			                           hcs[(i + PREFETCH_DISTANCE / 2) & (PREFETCH_DISTANCE - 1)]);
		r = judge(core, cells, v, h, hc, status);
		v->reason = (uint8_t)r;
		if (r == TALLY_REASON_ACCEPTED)
			accepted++;
		else
			tally_counter_inc_owned(&rejected[r]);
	}
	b->accepted = accepted;
	b->rejected = n - accepted;
	tally_store_release(&b->done, 1);
	tally_store_release(&w->completed, w->completed + 1);
	if (on_done != NULL)
		on_done(b, arg);
}

static void *
worker_main(void *arg)
{
	struct tally__worker *w = arg;
	struct tally_core *core = w->core;
	unsigned idle = 0;

	for (;;) {
		uint32_t gen = tally_load_acquire(&core->pause_gen);
		tally_batch_t *b;

		if (gen & 1) {
			tally_store_release(&w->pause_ack, gen);
			while (tally_load_acquire(&core->pause_gen) == gen)
				sleep_us(50);
			continue;
		}
		if ((b = tally__queue_dequeue_mpsc(&w->queue)) != NULL) {
			process_batch(core, w, b);
			idle = 0;
			continue;
		}
		if (tally_load_acquire(&core->stopping) &&
		    tally_load_acquire(&w->submitted) == w->completed)
			break;
		idle_backoff(idle++);
	}
	return NULL;
}

tally_core_t *
tally_core_new(tally_registry_t *reg, const tally_core_opts_t *opts, char *errstr,
               size_t errstr_size)
{
	struct tally_core *core;
	tally_registry_opts_t ro;
	tally_core_opts_t o = {0};
	long cpus;

	if (opts != NULL)
		o = *opts;
	cpus = sysconf(_SC_NPROCESSORS_ONLN);
	if (o.workers == 0)
		o.workers = cpus > 0 ? (unsigned)cpus : 1;
	if (o.queue_size == 0)
		o.queue_size = 1024;
	if (o.workers > 256) {
		snprintf(errstr, errstr_size, "workers %u is above the limit of 256", o.workers);
		return NULL;
	}
	if (o.parts == 0)
		o.parts = 1;
	if (o.parts > TALLY_CORE_MAX_PARTS) {
		snprintf(errstr, errstr_size, "parts %u is above the limit of %u", o.parts,
		         TALLY_CORE_MAX_PARTS);
		return NULL;
	}
	if (o.queue_size < 4 || (o.queue_size & (o.queue_size - 1)) != 0) {
		snprintf(errstr, errstr_size, "queue size %u is not a power of two of at least 4",
		         o.queue_size);
		return NULL;
	}
	if (o.election.closes_at <= o.election.opens_at) {
		snprintf(errstr, errstr_size, "election \"%s\" closes before it opens", o.election.id);
		return NULL;
	}
	if (o.election.status != TALLY_ELECTION_SCHEDULED && o.election.status != TALLY_ELECTION_OPEN) {
		snprintf(errstr, errstr_size, "a new election must be scheduled or open");
		return NULL;
	}
	if ((core = calloc(1, sizeof(*core))) == NULL)
		goto nomem;
	tally_registry_get_opts(reg, &ro);
	core->reg = reg;
	core->hot = tally__registry_hot(reg);
	core->nworkers = o.workers;
	core->queue_size = o.queue_size;
	core->cap_candidates = ro.max_candidates;
	core->cap_regions = ro.max_regions;
	core->cap_parties = ro.max_parties;
	core->parts = o.parts;
	core->slices = o.parts == 1 ? 1 : (o.parts + o.workers - 1) / o.workers;
	core->cells_per_part = (size_t)ro.max_cells;
	core->slice_words = core->cells_per_part + TALLY_REASON__COUNT;
	core->counters_bytes = core->slices * core->slice_words * sizeof(uint64_t);
	core->election = o.election;
	core->status = o.election.status;
	core->dob_cutoff16 = dob_cutoff(o.election.opens_at);
	core->base = calloc((size_t)o.parts * core->slice_words, sizeof(uint64_t));
	core->workers = aligned_alloc(TALLY_CACHELINE, sizeof(struct tally__worker) * o.workers);
	if (core->base == NULL || core->workers == NULL)
		goto nomem;
	memset(core->workers, 0, sizeof(struct tally__worker) * o.workers);
	for (unsigned i = 0; i < o.workers; i++) {
		struct tally__worker *w = &core->workers[i];

		w->idx = i;
		w->core = core;
		/* mmap: zeroed and backed only where written (sparse cells cost nothing). */
		w->counters = mmap(NULL, core->counters_bytes, PROT_READ | PROT_WRITE,
		                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (w->counters == MAP_FAILED) {
			w->counters = NULL;
			goto nomem;
		}
		if (tally__queue_init(&w->queue, o.queue_size) != 0)
			goto nomem;
	}
	return core;
nomem:
	snprintf(errstr, errstr_size, "could not allocate the core for %u workers: out of memory",
	         o.workers);
	tally_core_destroy(core);
	return NULL;
}

int
tally_core_start(tally_core_t *core)
{
	if (tally_load_acquire(&core->running))
		return TALLY_ESTATE;
	tally_store_release(&core->stopping, 0);
	for (unsigned i = 0; i < core->nworkers; i++) {
		struct tally__worker *w = &core->workers[i];

		char name[32];
		int rc;

		snprintf(name, sizeof(name), "tally:work%u", i);
		if ((rc = tally_thread_start(&w->thread, name, worker_main, w, NULL, 0)) != 0) {
			tally_core_stop(core);
			return rc;
		}
		w->started = 1;
	}
	tally_store_release(&core->running, 1);
	return 0;
}

void
tally_core_stop(tally_core_t *core)
{
	tally_store_release(&core->running, 0);
	tally_store_release(&core->stopping, 1);
	for (unsigned i = 0; i < core->nworkers; i++) {
		struct tally__worker *w = &core->workers[i];

		if (w->started) {
			pthread_join(w->thread, NULL);
			w->started = 0;
		}
	}
}

void
tally_core_destroy(tally_core_t *core)
{
	if (core == NULL)
		return;
	if (core->workers != NULL) {
		tally_core_stop(core);
		for (unsigned i = 0; i < core->nworkers; i++) {
			if (core->workers[i].counters != NULL)
				munmap(core->workers[i].counters, core->counters_bytes);
			tally__queue_fini(&core->workers[i].queue);
		}
	}
	free(core->workers);
	free(core->base);
	tally_snapshot_destroy(core->final);
	free(core);
}

tally_registry_t *
tally_core_registry(tally_core_t *core)
{
	return core->reg;
}

unsigned
tally_core_workers(const tally_core_t *core)
{
	return core->nworkers;
}

unsigned
tally_core_parts(const tally_core_t *core)
{
	return core->parts;
}

int
tally_core_try_submit(tally_core_t *core, tally_batch_t *batch)
{
	struct tally__worker *w;

	if (!tally_load_acquire(&core->running))
		return TALLY_ESTATE;
	if (core->parts > 1 && batch->lane >= core->parts)
		return TALLY_EINVAL;
	w = &core->workers[batch->lane % core->nworkers];
	batch->done = 0;
	batch->accepted = batch->rejected = 0;
	/* Count before the enqueue so drain never sees completed > submitted. */
	tally_add_acq_rel(&w->submitted, 1);
	if (!tally__queue_enqueue_mpsc(&w->queue, batch)) {
		tally_add_acq_rel(&w->submitted, (uint64_t)-1);
		return TALLY_EAGAIN;
	}
	return 0;
}

int
tally_core_submit(tally_core_t *core, tally_batch_t *batch)
{
	unsigned idle = 0;
	int rc;

	while ((rc = tally_core_try_submit(core, batch)) == TALLY_EAGAIN)
		idle_backoff(idle++);
	return rc;
}

void
tally_core_process(tally_core_t *core, unsigned worker, tally_batch_t *batch)
{
	struct tally__worker *w;

	/* With counters per part, a part has one worker: the lane's, whatever was asked. */
	if (core->parts > 1)
		worker = batch->lane % core->parts % core->nworkers;   /* see process_batch() */
	w = &core->workers[worker % core->nworkers];

	batch->done = 0;
	tally_add_acq_rel(&w->submitted, 1);
	process_batch(core, w, batch);
}

int
tally__core_quiescent(const struct tally_core *core)
{
	uint32_t gen = tally_load_acquire(&core->pause_gen);

	if (!tally_load_acquire(&core->running))
		return 1;
	if ((gen & 1) == 0)
		return 0;
	for (unsigned i = 0; i < core->nworkers; i++)
		if (tally_load_acquire(&core->workers[i].pause_ack) != gen)
			return 0;
	return 1;
}

void
tally_core_pause(tally_core_t *core)
{
	uint32_t gen;

	if (core->pause_depth++ > 0)
		return;
	gen = tally_add_acq_rel(&core->pause_gen, 1);
	for (unsigned i = 0; i < core->nworkers; i++) {
		struct tally__worker *w = &core->workers[i];

		while (w->started && tally_load_acquire(&w->pause_ack) != gen)
			sleep_us(20);
	}
}

void
tally_core_resume(tally_core_t *core)
{
	if (core->pause_depth == 0 || --core->pause_depth > 0)
		return;
	tally_add_acq_rel(&core->pause_gen, 1);
}

void
tally_core_drain(tally_core_t *core)
{
	for (unsigned i = 0; i < core->nworkers; i++) {
		struct tally__worker *w = &core->workers[i];
		uint64_t target = tally_load_acquire(&w->submitted);
		unsigned idle = 0;

		while (tally_load_acquire(&w->completed) < target)
			idle_backoff(idle++);
	}
}

/* ---- the election ---------------------------------------------------------------- */

void
tally_core_election(const tally_core_t *core, tally_election_t *out)
{
	*out = core->election;
	out->status = (tally_election_status_t)tally_load_acquire(&core->status);
}

static int
set_status(tally_core_t *core, uint32_t from, uint32_t to)
{
	if (!__atomic_compare_exchange_n(&core->status, &from, to, false, __ATOMIC_ACQ_REL,
	                                 __ATOMIC_ACQUIRE))
		return TALLY_ESTATE;
	tally_add_acq_rel(&core->election_gen, 1);
	return 0;
}

int
tally_core_election_open(tally_core_t *core)
{
	return set_status(core, TALLY_ELECTION_SCHEDULED, TALLY_ELECTION_OPEN);
}

int
tally_core_election_close(tally_core_t *core)
{
	tally_snapshot_t *snap;
	int rc;

	if ((snap = calloc(1, sizeof(*snap))) == NULL)
		return TALLY_ENOMEM;
	tally_core_pause(core);
	if ((rc = set_status(core, TALLY_ELECTION_OPEN, TALLY_ELECTION_CLOSED)) == 0 &&
	    (rc = tally_snapshot_take_into(core, snap)) == 0) {
		tally_snapshot_t *old = core->final;

		tally_store_release(&core->final, snap);
		snap = old;
	}
	tally_core_resume(core);
	tally_snapshot_destroy(snap);
	return rc;
}

int
tally_core_election_finalize(tally_core_t *core)
{
	return set_status(core, TALLY_ELECTION_CLOSED, TALLY_ELECTION_FINAL);
}

int
tally_core_mark_voted_many(tally_core_t *core, const tally_uuid_t *ids, size_t n,
                           size_t *failed)
{
	enum { AHEAD = 8 };

	for (size_t i = 0; i < n && i < AHEAD; i++)
		tally__registry_prefetch(core->hot, tally_uuid_hash(&ids[i]));
	for (size_t i = 0; i < n; i++) {
		if (i + AHEAD < n)
			tally__registry_prefetch(core->hot, tally_uuid_hash(&ids[i + AHEAD]));
		if (tally_core_mark_voted(core, &ids[i]) == TALLY_ENOENT) {
			if (failed != NULL)
				*failed = i;
			return TALLY_ENOENT;
		}
	}
	return 0;
}

int
tally_core_mark_voted(tally_core_t *core, const tally_uuid_t *voter_id)
{
	const tally__vtable_t *t;
	tally__vslot_t *s;

	/* Store 0: the first level that got a candidate, the only one of a single-level
	 * election (national, or constituencies only). */
	if ((s = tally__registry_voter_slot_in(core->hot, voter_id, tally_uuid_hash(voter_id),
	                                       &t)) == NULL)
		return TALLY_ENOENT;
	return tally__vslot_claim(s, t, 0) ? 0 : TALLY_EEXISTS;
}

int
tally_core_mark_voted_level(tally_core_t *core, const tally_uuid_t *voter_id, uint32_t level)
{
	const tally__vtable_t *t;
	tally__vslot_t *s;
	uint32_t store;

	if (level >= tally_registry_level_count(core->reg))
		return TALLY_EINVAL;
	if ((s = tally__registry_voter_slot_in(core->hot, voter_id, tally_uuid_hash(voter_id),
	                                       &t)) == NULL)
		return TALLY_ENOENT;
	/* A level with no candidate has no store: no one can have voted at it. */
	if ((store = tally__level_store(core->hot, level)) == TALLY__NO_STORE)
		return 0;
	return tally__vslot_claim(s, t, store) ? 0 : TALLY_EEXISTS;
}

/*
 * tallyd --simulate (see simulate.h).
 *
 * DESIGN: the main thread registers the generated election, starts the core, opens the
 * polls and starts P producer threads ("tally:prod<N>"). Producer p owns stream p of the
 * generator: it makes each message, decodes it with tally_decode_vote() into a per-lane
 * batch (lane = the message's route key modulo the number of workers, so all of a voter's
 * votes go to one worker in order), and submits a batch when it holds BATCH_VOTES votes.
 * A batch is reused only after tally_batch_done(). Producers publish their progress with
 * relaxed atomic stores; the main thread reads those and takes snapshots to draw the
 * progress view. SIGINT sets an atomic flag that producers poll: they stop, submit what
 * they have generated (the ground truth already counts it) and exit. The main thread then
 * joins them, drains the core, closes the election and compares the frozen results with
 * the generator's ground truth.
 *
 * With --http and an admin token, POST /api/election/open|close arrive on an HTTP thread,
 * which hands them to the main thread (the one that pauses the core) through one atomic
 * request word and waits on a semaphore for the answer (at most 10 s for it to be taken).
 * The main thread looks for a request every pass of its loops. A close while counting
 * stops the producers as Ctrl-C does (what was sent is still counted and checked), then
 * the main thread drains the core, closes the polls and answers; the final results stay
 * served. When the run ends, a request still waiting is answered "the simulation is
 * ending" and later ones get that at once.
 */
#include <inttypes.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <tally/atomic.h>
#include <tally/contest.h>
#include <tally/core.h>
#include <tally/decode.h>
#include <tally/error.h>
#include <tally/gen.h>
#include <tally/handoff.h>
#include <tally/regmsg.h>
#include <tally/registry.h>
#include <tally/snapshot.h>
#include <tally/thread.h>
#include <tally/time.h>
#include <tally/vote.h>

#include "simulate.h"
#include "view.h"
#include "web.h"

#define BATCH_VOTES 256u
#define MAX_MISMATCH_LINES 50u

static int stop_requested;
static int signalled;            /* SIGINT or SIGTERM came (stop_requested also stops the
                                    producers at the end of a run) */

static void
on_sigint(int sig)
{
	(void)sig;
	tally_store_relaxed(&stop_requested, 1);
	tally_store_relaxed(&signalled, 1);
}

static bool
stopping(void)
{
	return tally_load_relaxed(&stop_requested) != 0;
}

/* ---- producers ------------------------------------------------------------------- */

typedef enum slot_state { SLOT_FREE, SLOT_FILLING, SLOT_IN_FLIGHT } slot_state_t;

typedef struct slot {
	tally_batch_t batch;
	uint32_t count;
	uint32_t lane;
	slot_state_t state;
	tally_vote_t votes[BATCH_VOTES];
} slot_t;

struct sim;

typedef struct producer {
	struct sim *sim;
	unsigned index;
	pthread_t thread;
	bool started;
	tally_gen_stream_t *st;
	slot_t *slots;
	unsigned nslots, next_slot;
	slot_t **pending;             /* [nlanes]: the batch being filled for each lane */
	int error;                    /* a tally_err_t from submit, 0 if none */
	/* Read by the main thread. */
	uint64_t emitted;
	uint64_t progress_ppm; /* the stream's walk, in millionths */
	int finished;
} producer_t;

/* The admin requests (sim_t.admin). */
enum { ADMIN_OPEN = 1, ADMIN_CLOSE };

typedef struct sim {
	const tallyd_conf_t *conf;
	tally_gen_t *gen;
	tally_registry_t *reg;
	tally_core_t *core;
	unsigned nlanes;
	producer_t *producers;
	unsigned nproducers;

	/* Admin actions over HTTP (see DESIGN). */
	tally_handoff_t admin;         /* HTTP threads ask, the main thread answers */
	bool admin_init;              /* admin was initialised */
	bool admin_taken;             /* main thread: a request taken, not yet answered */
} sim_t;

static slot_t *
acquire_slot(producer_t *p)
{
	for (unsigned spins = 0;; spins++) {
		for (unsigned i = 0; i < p->nslots; i++) {
			unsigned k = (p->next_slot + i) % p->nslots;
			slot_t *s = &p->slots[k];

			if (s->state == SLOT_IN_FLIGHT && tally_batch_done(&s->batch))
				s->state = SLOT_FREE;
			if (s->state == SLOT_FREE) {
				p->next_slot = (k + 1) % p->nslots;
				s->state = SLOT_FILLING;
				s->count = 0;
				return s;
			}
		}
		/* Every batch is queued or being counted: let the workers catch up. */
		if (spins < 64)
			sched_yield();
		else
			usleep(50);
	}
}

static int
submit_lane(producer_t *p, unsigned lane)
{
	slot_t *s = p->pending[lane];
	int rc;

	if (s == NULL || s->count == 0)
		return 0;
	p->pending[lane] = NULL;
	tally_batch_init(&s->batch, s->votes, s->count, lane);
	s->state = SLOT_IN_FLIGHT;
	rc = tally_core_submit(p->sim->core, &s->batch);
	if (rc != 0) {
		/* Not queued: nobody will complete it. */
		s->state = SLOT_FREE;
		p->error = rc;
	}
	return rc;
}

static void
submit_all(producer_t *p)
{
	for (unsigned lane = 0; lane < p->sim->nlanes; lane++)
		submit_lane(p, lane);
}

static void
sleep_ns(uint64_t ns)
{
	struct timespec ts = {(time_t)(ns / 1000000000u), (long)(ns % 1000000000u)};

	nanosleep(&ts, NULL);
}

static void *
producer_main(void *arg)
{
	producer_t *p = arg;
	sim_t *sim = p->sim;
	char buf[TALLY_GEN_MSG_MAX];
	tally_decoder_opts_t dopts;
	double rate = sim->conf->rate / (double)sim->nproducers;
	uint64_t start = tally_mono_ns(), last_flush = start, n = 0;

	memset(&dopts, 0, sizeof(dopts));

	while (!stopping() && p->error == 0) {
		tally_gen_msg_t msg;
		long len = tally_gen_stream_next(p->st, buf, sizeof(buf), &msg);
		unsigned lane;
		slot_t *s;

		if (len < 0)
			break;
		lane = (unsigned)(msg.route % sim->nlanes);
		if (p->pending[lane] == NULL) {
			p->pending[lane] = acquire_slot(p);
			p->pending[lane]->lane = lane;
		}
		s = p->pending[lane];
		/* A message that does not decode is still submitted: the core counts it as
		 * malformed (the decoder set its reason). */
		tally_decode_vote(&dopts, buf, (size_t)len, &s->votes[s->count], NULL);
		s->count++;
		if (s->count == BATCH_VOTES)
			submit_lane(p, lane);
		n++;

		if ((n & 255) == 0) {
			tally_store_relaxed(&p->emitted, n);
			tally_store_relaxed(&p->progress_ppm,
			                   (uint64_t)(tally_gen_stream_progress(p->st) * 1e6));
		}
		if (rate > 0) {
			uint64_t due = start + (uint64_t)((double)n * 1e9 / rate);
			uint64_t now = tally_mono_ns();

			/* Sleep in short steps so a slow pace still notices Ctrl-C soon. */
			while (now < due && !stopping()) {
				/* Paced: send part-filled batches every 100 ms so the count moves. */
				if (now - last_flush > 100000000u) {
					submit_all(p);
					last_flush = now;
				}
				sleep_ns(due - now < 50000000u ? due - now : 50000000u);
				now = tally_mono_ns();
			}
		}
	}
	submit_all(p);
	tally_store_relaxed(&p->emitted, n);
	tally_store_relaxed(&p->progress_ppm,
	                   (uint64_t)(tally_gen_stream_progress(p->st) * 1e6));
	tally_store_release(&p->finished, 1);
	return NULL;
}

/* ---- admin actions over HTTP ----------------------------------------------------- */

/* An HTTP thread: hand the action to the main thread and wait for its answer. */
static int
sim_admin(void *arg, tally_http_action_t action, char *errstr, size_t errstr_size)
{
	sim_t *sim = arg;
	int req = action == TALLY_HTTP_ACTION_OPEN ? ADMIN_OPEN : ADMIN_CLOSE, rc, answer;

	rc = tally_handoff_ask(&sim->admin, req, 10000, &answer, errstr, errstr_size);
	if (rc == TALLY_EAGAIN)
		snprintf(errstr, errstr_size, "another admin action is in progress");
	else if (rc == TALLY_ETIMEDOUT)
		snprintf(errstr, errstr_size, "the simulation did not take the action within 10 s; "
		         "nothing was done");
	if (rc != 0)
		return rc;
	tally_handoff_release(&sim->admin);
	return answer;
}

/* The main thread: the action waiting, taken now (ADMIN_OPEN or ADMIN_CLOSE), or 0. */
static int
admin_take(sim_t *sim)
{
	int req = tally_handoff_take(&sim->admin);

	sim->admin_taken = req > 0;
	return req;
}

static void
admin_answer(sim_t *sim, int rc, const char *err)
{
	sim->admin_taken = false;
	tally_handoff_answer(&sim->admin, rc, err);
}

/* The main thread, once the polls are closed: do what is asked, on this thread. */
static void
admin_serve(sim_t *sim)
{
	int req = admin_take(sim), rc;

	if (req == 0)
		return;
	rc = req == ADMIN_OPEN ? tally_core_election_open(sim->core)
	                       : tally_core_election_close(sim->core);
	admin_answer(sim, rc, rc == TALLY_ESTATE ? (req == ADMIN_OPEN ? "the election is not scheduled"
	                                                               : "the election is not open")
	                                         : tally_err2str(rc));
}

/*
 * The main thread, at the end of the run: no more actions; answer the one taken and not
 * answered (a failed run), or still waiting, so no HTTP thread waits on a run that is over.
 */
static void
admin_end(sim_t *sim)
{
	if (sim->admin_init)
		tally_handoff_end(&sim->admin, sim->admin_taken, "the simulation is ending");
	sim->admin_taken = false;
}

/* ---- the progress view ----------------------------------------------------------- */

static void
draw(tallyd_view_t *v, const sim_t *sim, const tally_snapshot_t *snap, bool final)
{
	uint64_t emitted = 0, ppm = 0;
	char header[160], note[96], a[32];

	for (unsigned i = 0; i < sim->nproducers; i++) {
		emitted += tally_load_relaxed(&sim->producers[i].emitted);
		ppm += tally_load_relaxed(&sim->producers[i].progress_ppm);
	}
	ppm /= sim->nproducers;
	snprintf(header, sizeof(header), "tally --simulate   seed %" PRIu64 "   %3.0f%% of voters "
	         "walked", sim->conf->seed, (double)ppm / 1e4);
	snprintf(note, sizeof(note), "generated %s", tallyd_fmt_count(emitted, a));
	tallyd_view_draw(v, sim->reg, snap, header, note, final);
}

/* ---- registration ---------------------------------------------------------------- */

static int
register_election(sim_t *sim, bool verbose)
{
	const tally_gen_t *gen = sim->gen;
	uint64_t nvoters = tally_gen_get_opts(gen)->voters, t0 = tally_mono_ns();
	char json[TALLY_GEN_MSG_MAX], err[256], a[32];
	tally_regmsg_candidate_t cmsg;
	tally_regmsg_voter_t vmsg;
	tally_refusal_t ref;

	for (uint32_t i = 0; i < tally_gen_party_count(gen); i++) {
		ref = tally_registry_add_party(sim->reg, tally_gen_party_name(gen, i), NULL);
		if (ref != TALLY_REFUSAL_NONE) {
			fprintf(stderr, "tallyd: party %u refused: %s\n", i, tally_refusal_name(ref));
			return -1;
		}
	}
	for (uint32_t i = 0; i < tally_gen_region_count(gen); i++) {
		ref = tally_registry_add_region(sim->reg, tally_gen_region_name(gen, i), NULL);
		if (ref != TALLY_REFUSAL_NONE) {
			fprintf(stderr, "tallyd: region %u refused: %s\n", i, tally_refusal_name(ref));
			return -1;
		}
	}
	/* Constituencies, before the candidates that stand in them. */
	for (uint32_t k = 0; k < tally_gen_contest_count(gen); k++) {
		uint32_t nr = tally_gen_region_count(gen), nk = tally_gen_contest_count(gen), m = 0;
		const char **names = calloc(nr / nk + 1, sizeof(char *));
		tally_gen_contest_t gk;
		tally_contest_reg_t cr;

		if (names == NULL) {
			fprintf(stderr, "tallyd: out of memory\n");
			return -1;
		}
		tally_gen_contest(gen, k, &gk);
		for (uint32_t r = k; r < nr; r += nk)
			names[m++] = tally_gen_region_name(gen, r);
		cr = (tally_contest_reg_t){gk.contest_id, gk.contest_name, TALLY_GEN_CONTEST_LEVEL,
		                           names, m};
		ref = tally_registry_add_contest(sim->reg, &cr, NULL);
		free(names);
		if (ref != TALLY_REFUSAL_NONE) {
			fprintf(stderr, "tallyd: contest %u refused: %s\n", k, tally_refusal_name(ref));
			return -1;
		}
	}
	/* Candidates always go through their candidates_topic JSON, as they would arrive. */
	for (uint32_t i = 0; i < tally_gen_candidate_count(gen); i++) {
		size_t len = tally_gen_candidate_json(gen, i, json, sizeof(json));

		if (tally_regmsg_decode_candidate(json, len, &cmsg, err, sizeof(err)) != 0) {
			fprintf(stderr, "tallyd: candidate %u: %s\n", i, err);
			return -1;
		}
		ref = tally_registry_add_candidate(sim->reg, &cmsg.reg, NULL);
		if (ref != TALLY_REFUSAL_NONE) {
			fprintf(stderr, "tallyd: candidate %u refused: %s\n", i, tally_refusal_name(ref));
			return -1;
		}
	}
	for (uint64_t i = 0; i < nvoters; i++) {
		if (sim->conf->register_json) {
			size_t len = tally_gen_voter_json(gen, i, json, sizeof(json));

			if (tally_regmsg_decode_voter(json, len, &vmsg, err, sizeof(err)) != 0) {
				fprintf(stderr, "tallyd: voter %" PRIu64 ": %s\n", i, err);
				return -1;
			}
			ref = tally_registry_add_voter(sim->reg, &vmsg.reg);
		} else {
			tally_gen_voter_brief_t b;
			tally_voter_reg_t vr;

			tally_gen_voter_brief(gen, i, &b);
			vr.id = b.id;
			vr.date_of_birth = b.dob_days;
			vr.region = tally_gen_region_name(gen, b.region);
			vr.registration_number = b.registration_number;
			ref = tally_registry_add_voter(sim->reg, &vr);
		}
		if (ref != TALLY_REFUSAL_NONE) {
			/* The index only: a voter's data stays out of logs. */
			fprintf(stderr, "tallyd: voter %" PRIu64 " refused: %s\n", i, tally_refusal_name(ref));
			return -1;
		}
		if ((i & 0xffff) == 0 && stopping()) {
			fprintf(stderr, "tallyd: interrupted while registering voters\n");
			return -1;
		}
	}
	if (verbose)
		printf("registered %u parties, %u candidates and %s voters in %u regions%s (%.2f s)\n",
		       tally_gen_party_count(gen), tally_gen_candidate_count(gen), tallyd_fmt_count(nvoters, a),
		       tally_gen_region_count(gen), sim->conf->register_json ? " from JSON" : "",
		       (double)(tally_mono_ns() - t0) / 1e9);
	return 0;
}

/* ---- results and the check ------------------------------------------------------- */

typedef struct checker {
	unsigned figures;
	unsigned mismatches;
} checker_t;

static void
check(checker_t *ck, uint64_t counted, uint64_t expected, const char *fmt, ...)
{
	va_list ap;

	ck->figures++;
	if (counted == expected)
		return;
	if (++ck->mismatches > MAX_MISMATCH_LINES)
		return;
	printf("mismatch: ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf(": counted %" PRIu64 ", expected %" PRIu64 "\n", counted, expected);
}

/* A figure that cannot be compared (e.g. a name the core does not know) is a mismatch. */
static void
check_missing(checker_t *ck, const char *what, const char *name)
{
	ck->figures++;
	if (++ck->mismatches <= MAX_MISMATCH_LINES)
		printf("mismatch: %s \"%s\" is not in the core's registry\n", what, name);
}

/*
 * The contests' figures against the truth's: each constituency's votes, its leader (or a
 * tie) and its status, declared at the close; each party's seats won. The core's come
 * from tally_contests_compute() on the final snapshot, the truth's from its candidates.
 */
static void
compare_contests(const sim_t *sim, const tally_snapshot_t *snap, const tally_gen_truth_t *truth,
                 const int32_t *cidx, checker_t *ck)
{
	const tally_gen_t *gen = sim->gen;
	uint32_t np = truth->nparties, level;
	uint32_t *seats = calloc(np + 1, sizeof(uint32_t));
	tally_contests_t res = {0};
	int32_t lvl;

	if (seats == NULL || tally_contests_compute(sim->reg, snap, true, &res) != 0) {
		fprintf(stderr, "tallyd: out of memory\n");
		exit(TALLYD_EXIT_MISMATCH);
	}
	lvl = -1;
	for (uint32_t l = 0; l < tally_registry_level_count(sim->reg); l++)
		if (strcmp(tally_registry_level_name(sim->reg, l), TALLY_GEN_CONTEST_LEVEL) == 0)
			lvl = (int32_t)l;
	level = lvl < 0 ? 0 : (uint32_t)lvl;
	for (uint32_t k = 0; k < tally_gen_contest_count(gen); k++) {
		tally_gen_contest_t gk;
		uint64_t votes = 0, best = 0, second = 0;
		int32_t lead = -1, ki, core_lead = -1;
		const tally_contest_result_t *r;

		tally_gen_contest(gen, k, &gk);
		for (uint32_t i = 0; i < gk.ncandidates; i++) {
			uint32_t c = gk.first_candidate + i;
			uint64_t v = truth->candidates[c];

			votes += v;
			if (v > best) {
				second = best;
				best = v;
				lead = (int32_t)c;
			} else if (v > second) {
				second = v;
			}
		}
		if (best == 0 || second == best)
			lead = -1;
		ki = tally_registry_contest_find(sim->reg, gk.contest_id);
		if (ki < 0 || (uint32_t)ki >= res.ncontests) {
			check_missing(ck, "contest", gk.contest_name);
			continue;
		}
		r = &res.contests[ki];
		check(ck, r->votes, votes, "votes in contest \"%s\"", gk.contest_name);
		/* The leader as the truth's index (-1: none or a tie). */
		for (uint32_t i = 0; r->leader >= 0 && i < gk.ncandidates; i++)
			if (cidx[gk.first_candidate + i] == r->leader)
				core_lead = (int32_t)(gk.first_candidate + i);
		check(ck, (uint64_t)(int64_t)core_lead, (uint64_t)(int64_t)lead,
		      "leader (candidate number) of contest \"%s\"", gk.contest_name);
		check(ck, r->status, TALLY_CONTEST_DECLARED, "contest \"%s\" declared",
		      gk.contest_name);
		if (lead >= 0) {
			tally_gen_candidate_t gc;

			tally_gen_candidate(gen, (uint32_t)lead, &gc);
			seats[gc.party]++;
		}
	}
	for (uint32_t p = 0; p < np; p++) {
		const char *name = tally_gen_party_name(gen, p);
		int32_t i = tally_registry_party_find(sim->reg, name);

		if (i < 0 || (uint32_t)i >= res.nparties || level >= res.nlevels)
			continue;
		check(ck, res.seats_won[(size_t)level * res.nparties + (uint32_t)i], seats[p],
		      "seats won by party \"%s\"", name);
	}
	tally_contests_free(&res);
	free(seats);
}

/*
 * Compare every figure the core reports with the generator's ground truth, matching
 * candidates by id and parties and regions by name (not by index).
 */
static void
compare(const sim_t *sim, const tally_snapshot_t *snap, const tally_gen_truth_t *truth,
        checker_t *ck)
{
	const tally_gen_t *gen = sim->gen;
	uint32_t nc = truth->ncandidates, nr = truth->nregions;
	int32_t *cidx = calloc(nc, sizeof(int32_t)), *ridx = calloc(nr, sizeof(int32_t));
	char why[256];

	if (cidx == NULL || ridx == NULL) {
		fprintf(stderr, "tallyd: out of memory\n");
		exit(TALLYD_EXIT_MISMATCH);
	}
	for (uint32_t c = 0; c < nc; c++) {
		tally_gen_candidate_t gc;

		tally_gen_candidate(gen, c, &gc);
		cidx[c] = tally_registry_candidate_find(sim->reg, &gc.id);
		if (cidx[c] < 0 || (uint32_t)cidx[c] >= snap->ncandidates) {
			cidx[c] = -1;
			check_missing(ck, "candidate", gc.candidate_name);
			continue;
		}
		check(ck, snap->candidates[cidx[c]], truth->candidates[c], "votes for candidate \"%s\"",
		      gc.candidate_name);
	}
	for (uint32_t p = 0; p < truth->nparties; p++) {
		const char *name = tally_gen_party_name(gen, p);
		int32_t i = tally_registry_party_find(sim->reg, name);

		if (i < 0 || (uint32_t)i >= snap->nparties) {
			check_missing(ck, "party", name);
			continue;
		}
		check(ck, snap->parties[i], truth->parties[p], "votes for party \"%s\"", name);
	}
	for (uint32_t r = 0; r < nr; r++) {
		const char *name = tally_gen_region_name(gen, r);

		ridx[r] = tally_registry_region_find(sim->reg, name);
		if (ridx[r] < 0 || (uint32_t)ridx[r] >= snap->nregions) {
			ridx[r] = -1;
			check_missing(ck, "region", name);
			continue;
		}
		check(ck, snap->regions[ridx[r]], truth->regions[r], "votes in region \"%s\"", name);
		check(ck, snap->region_registered[ridx[r]], truth->region_registered[r],
		      "voters registered in region \"%s\"", name);
	}
	for (uint32_t c = 0; c < nc; c++) {
		tally_gen_candidate_t gc;

		tally_gen_candidate(gen, c, &gc);
		for (uint32_t r = 0; r < nr; r++) {
			/* With contests, the regions of the candidate's own: no other can count. */
			if (cidx[c] < 0 || ridx[r] < 0 ||
			    (gc.contest >= 0 && tally_gen_region_contest(gen, r) != gc.contest))
				continue;
			check(ck, tally_snapshot_cand_region(snap, (uint32_t)cidx[c], (uint32_t)ridx[r]),
			      truth->cand_region[(size_t)c * nr + r],
			      "votes for candidate \"%s\" in region \"%s\"", gc.candidate_name,
			      tally_gen_region_name(gen, r));
		}
	}
	for (int reason = 1; reason < TALLY_REASON__COUNT; reason++)
		check(ck, snap->rejected[reason], truth->rejected[reason], "votes rejected as %s",
		      tally_reason_name(reason));
	check(ck, snap->read, truth->read, "votes read");
	check(ck, snap->accepted, truth->accepted, "votes accepted");
	check(ck, snap->rejected_total, truth->rejected_total, "votes rejected");
	check(ck, snap->registered, truth->registered, "voters registered");
	check(ck, snap->ncandidates, nc, "candidates standing");
	check(ck, snap->nparties, truth->nparties, "parties registered");
	check(ck, snap->nregions, nr, "regions registered");

	if (tally_gen_contest_count(gen) > 0)
		compare_contests(sim, snap, truth, cidx, ck);
	ck->figures++;
	if (tally_snapshot_check(snap, why, sizeof(why)) != 0) {
		ck->mismatches++;
		printf("mismatch: the final snapshot is inconsistent: %s\n", why);
	}
	if (ck->mismatches > MAX_MISMATCH_LINES)
		printf("... and %u more mismatches\n", ck->mismatches - MAX_MISMATCH_LINES);
	free(cidx);
	free(ridx);
}

/* ---- the run --------------------------------------------------------------------- */

static void
gen_opts_from_conf(const tallyd_conf_t *conf, tally_gen_opts_t *o)
{
	tally_gen_opts_init(o);
	o->seed = conf->seed;
	o->voters = conf->voters;
	o->candidates = (uint32_t)conf->candidates;
	o->parties = (uint32_t)conf->parties;
	o->regions = (uint32_t)conf->regions;
	o->turnout = conf->turnout;
	o->underage = conf->underage;
	o->dup_rate = conf->dup_rate;
	o->malformed_rate = conf->malformed_rate;
	o->unknown_voter_rate = conf->unknown_rate;
	o->unknown_candidate_rate = conf->unknown_candidate_rate;
	o->late_rate = conf->late_rate;
	o->early_rate = conf->early_rate;
	o->ineligible_rate = conf->ineligible_rate;
	o->contests = (uint32_t)conf->contests;
	o->wrong_contest_rate = conf->wrong_contest_rate;
	o->compact = conf->compact;
}

/* Checks across options, worded with the flags' names. */
static int
check_conf(const tallyd_conf_t *conf)
{
	double faults = conf->dup_rate + conf->malformed_rate + conf->unknown_rate +
	                conf->unknown_candidate_rate + conf->late_rate + conf->early_rate +
	                conf->ineligible_rate;

	if (!(faults < 0.9)) {
		fprintf(stderr, "tallyd: the --*-rate options add up to %g; they must add up to less "
		                "than 0.9\n", faults);
		return -1;
	}
	if (conf->ineligible_rate > 0 && conf->underage <= 0) {
		fprintf(stderr, "tallyd: --ineligible-rate %g needs voters under 18, but --underage "
		                "is 0\n", conf->ineligible_rate);
		return -1;
	}
	if (strlen(conf->election_id) > TALLY_ELECTION_ID_MAX) {
		fprintf(stderr, "tallyd: --election-id: \"%.20s...\" is longer than %d bytes\n",
		        conf->election_id, TALLY_ELECTION_ID_MAX);
		return -1;
	}
	if (conf->election_id[0] == '\0') {
		fprintf(stderr, "tallyd: --election-id: the election needs a name\n");
		return -1;
	}
	return 0;
}

static void
stop_producers(sim_t *sim)
{
	tally_store_relaxed(&stop_requested, 1);
	for (unsigned i = 0; i < sim->nproducers; i++)
		if (sim->producers[i].started)
			pthread_join(sim->producers[i].thread, NULL);
}

static void
free_producers(sim_t *sim)
{
	for (unsigned i = 0; sim->producers != NULL && i < sim->nproducers; i++) {
		tally_gen_stream_destroy(sim->producers[i].st);
		free(sim->producers[i].slots);
		free(sim->producers[i].pending);
	}
	free(sim->producers);
}

int
tallyd_simulate(const tallyd_conf_t *conf)
{
	sim_t sim;
	tally_gen_opts_t gopts;
	tally_registry_opts_t ropts;
	tally_core_opts_t copts;
	tally_snapshot_t *live = NULL, *final = NULL;
	tally_gen_truth_t *truth = NULL;
	struct sigaction sa, old_sa, old_term;
	tally_http_t *web = NULL;
	checker_t ck = {0, 0};
	tallyd_view_t view;
	char err[256];
	bool verbose = !conf->quiet, interrupted, admin_closed = false;
	uint64_t t_open;
	int rc = TALLYD_EXIT_MISMATCH, close_rc;

	memset(&sim, 0, sizeof(sim));
	sim.conf = conf;
	if (check_conf(conf) != 0)
		return TALLYD_EXIT_USAGE;
	gen_opts_from_conf(conf, &gopts);
	sim.gen = tally_gen_new(&gopts, err, sizeof(err));
	if (sim.gen == NULL) {
		fprintf(stderr, "tallyd: %s\n", err);
		return TALLYD_EXIT_USAGE;
	}

	tally_store_relaxed(&stop_requested, 0);
	tally_store_relaxed(&signalled, 0);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_sigint;
	sa.sa_flags = SA_RESETHAND; /* a second Ctrl-C kills */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, &old_sa);
	sigaction(SIGTERM, &sa, &old_term);

	memset(&ropts, 0, sizeof(ropts));
	ropts.expected_voters = gopts.voters;
	ropts.max_parties = tally_gen_party_count(sim.gen);
	ropts.max_candidates = tally_gen_candidate_count(sim.gen);
	ropts.max_regions = tally_gen_region_count(sim.gen);
	ropts.max_contests = tally_gen_contest_count(sim.gen) + 1;
	sim.reg = tally_registry_new(&ropts, err, sizeof(err));
	if (sim.reg == NULL) {
		fprintf(stderr, "tallyd: could not create the registry: %s\n", err);
		goto out;
	}
	if (register_election(&sim, verbose) != 0) {
		if (stopping())
			rc = TALLYD_EXIT_INTERRUPTED;
		goto out;
	}

	memset(&copts, 0, sizeof(copts));
	copts.workers = (unsigned)conf->workers;
	/* The election is named by --election-id (checked to fit by check_conf()). */
	snprintf(copts.election.id, sizeof(copts.election.id), "%s", conf->election_id);
	copts.election.opens_at = gopts.opens_at;
	copts.election.closes_at = gopts.closes_at;
	copts.election.status = TALLY_ELECTION_SCHEDULED;
	sim.core = tally_core_new(sim.reg, &copts, err, sizeof(err));
	if (sim.core == NULL) {
		fprintf(stderr, "tallyd: could not create the core: %s\n", err);
		goto out;
	}
	if (conf->http != NULL) {
		/* Always ready; admin actions (with a token) are done by this thread, see DESIGN. */
		tally_http_opts_t cbs = {.admin = sim_admin, .cb_arg = &sim};

		if (tally_handoff_init(&sim.admin) != 0) {
			fprintf(stderr, "tallyd: could not create a semaphore: %s\n", strerror(errno));
			goto out;
		}
		sim.admin_init = true;
		if ((web = tallyd_web_start(conf, sim.core, &cbs, err, sizeof(err))) == NULL) {
			fprintf(stderr, "tallyd: --http %s: %s\n", conf->http, err);
			rc = TALLYD_EXIT_USAGE;
			goto out;
		}
	}
	if (tally_core_start(sim.core) != 0 || tally_core_election_open(sim.core) != 0) {
		fprintf(stderr, "tallyd: could not start the core and open the polls\n");
		goto out;
	}
	sim.nlanes = tally_core_workers(sim.core);

	sim.nproducers = (unsigned)conf->producers;
	sim.producers = calloc(sim.nproducers, sizeof(*sim.producers));
	if (sim.producers == NULL)
		goto nomem;
	for (unsigned i = 0; i < sim.nproducers; i++) {
		producer_t *p = &sim.producers[i];

		p->sim = &sim;
		p->index = i;
		/* Two batches per lane: one filling while the other is counted, plus spares. */
		p->nslots = 2 * sim.nlanes + 4;
		p->slots = calloc(p->nslots, sizeof(*p->slots));
		p->pending = calloc(sim.nlanes, sizeof(*p->pending));
		p->st = tally_gen_stream_new(sim.gen, i, sim.nproducers);
		if (p->slots == NULL || p->pending == NULL || p->st == NULL)
			goto nomem;
	}
	if (verbose)
		printf("polls open: %u workers, %u producers, %s votes%s\n", sim.nlanes, sim.nproducers,
		       conf->compact ? "compact" : "original-shape",
		       conf->rate > 0 ? ", paced" : ", full speed");

	memset(&view, 0, sizeof(view));
	tallyd_view_init(&view);
	t_open = view.start_ns;
	for (unsigned i = 0; i < sim.nproducers; i++) {
		producer_t *p = &sim.producers[i];

		char name[32], why[160];

		snprintf(name, sizeof(name), "tally:prod%u", i);
		if (tally_thread_start(&p->thread, name, producer_main, p, why, sizeof(why)) != 0) {
			fprintf(stderr, "tallyd: %s\n", why);
			stop_producers(&sim);
			goto out;
		}
		p->started = true;
	}

	live = tally_snapshot_take(sim.core);
	if (live == NULL)
		goto nomem;
	for (;;) {
		unsigned done = 0;

		for (unsigned i = 0; i < sim.nproducers; i++)
			done += tally_load_acquire(&sim.producers[i].finished) != 0;
		if (done == sim.nproducers)
			break;
		sleep_ns(200000000u);
		if (verbose) {
			if (tally_snapshot_take_into(sim.core, live) != 0)
				goto nomem;
			draw(&view, &sim, live, false);
		}
		switch (admin_take(&sim)) {
		case ADMIN_OPEN:
			admin_answer(&sim, TALLY_ESTATE, "the election is not scheduled");
			break;
		case ADMIN_CLOSE:
			/* Answered once the polls are closed, below. */
			admin_closed = true;
			tally_store_relaxed(&stop_requested, 1);
			break;
		}
		if (admin_closed)
			break;
	}
	interrupted = tally_load_relaxed(&signalled) != 0;
	stop_producers(&sim);
	for (unsigned i = 0; i < sim.nproducers; i++) {
		if (sim.producers[i].error != 0) {
			fprintf(stderr, "tallyd: producer %u could not submit: %s\n", i,
			        tally_err2str(sim.producers[i].error));
			goto out;
		}
	}

	tally_core_drain(sim.core);
	if (verbose) {
		if (tally_snapshot_take_into(sim.core, live) != 0)
			goto nomem;
		draw(&view, &sim, live, true);
	}
	close_rc = tally_core_election_close(sim.core);
	if (admin_closed) {
		admin_answer(&sim, close_rc, close_rc == 0 ? "" : tally_err2str(close_rc));
		admin_closed = close_rc == 0;
	}
	if (close_rc != 0) {
		fprintf(stderr, "tallyd: could not close the polls\n");
		goto out;
	}
	final = tally_snapshot_final(sim.core);
	if (final == NULL)
		goto nomem;

	truth = tally_gen_truth_new(sim.gen);
	if (truth == NULL)
		goto nomem;
	for (unsigned i = 0; i < sim.nproducers; i++)
		tally_gen_truth_add(truth, sim.producers[i].st);

	if (verbose)
		tallyd_print_results(sim.reg, final, (double)(tally_mono_ns() - t_open) / 1e9);
	if (verbose)
		printf("\nchecking every figure against the generator's ground truth\n");
	compare(&sim, final, truth, &ck);
	if (interrupted)
		printf("interrupted: only the votes sent before Ctrl-C were counted and checked\n");
	else if (admin_closed)
		printf("closed over http: only the votes sent before the close were counted and "
		       "checked\n");
	if (ck.mismatches == 0) {
		printf("result: all %u figures match the ground truth\n", ck.figures);
		rc = interrupted ? TALLYD_EXIT_INTERRUPTED : TALLYD_EXIT_MATCH;
	} else {
		printf("result: MISMATCH in %u of %u figures\n", ck.mismatches, ck.figures);
		rc = TALLYD_EXIT_MISMATCH;
	}
	if (web != NULL && !interrupted) {
		/* The election is over; its final results stay served until told to stop. */
		printf("serving the final results over http until SIGTERM or Ctrl-C\n");
		fflush(stdout);
		while (!tally_load_relaxed(&signalled)) {
			sleep_ns(100000000u);
			admin_serve(&sim);
		}
	}
	goto out;

nomem:
	fprintf(stderr, "tallyd: out of memory\n");
	stop_producers(&sim);
	rc = TALLYD_EXIT_MISMATCH;
out:
	fflush(stdout);
	admin_end(&sim);
	tallyd_web_stop(web);
	if (sim.admin_init)
		tally_handoff_destroy(&sim.admin);
	tally_snapshot_destroy(live);
	tally_snapshot_destroy(final);
	tally_gen_truth_destroy(truth);
	tally_core_destroy(sim.core);
	free_producers(&sim);
	tally_registry_destroy(sim.reg);
	tally_gen_destroy(sim.gen);
	sigaction(SIGINT, &old_sa, NULL);
	sigaction(SIGTERM, &old_term, NULL);
	return rc;
}

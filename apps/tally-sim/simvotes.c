/*
 * tally-sim's vote maker and its ground truth (see simvotes.h for the contract).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include <tally/decode.h>
#include <tally/error.h>
#include <tally/gen.h>
#include <tally/core.h>
#include <tally/mix.h>
#include <tally/time.h>
#include <tally/uuid.h>

#include "simvotes.h"

#define RING_SIZE 4096u
#define PEOPLE 1000u            /* made-up people for unregistered voter_ids */
#define PEOPLE_CANDIDATES 16u   /* made-up candidates for unknown candidate_ids */

enum {
	TAG_TURNOUT = 1,
	TAG_CHOICE,
	TAG_NATIONAL,
	TAG_PERSONAL,
	TAG_LEAN,
	TAG_FAVOURITE,
	TAG_STREAM,
};

/* A voter whose vote was accepted, kept for the duplicates drawn from them. */
typedef struct ring_entry {
	tally_gen_voter_fields_t f;     /* strings point into blob */
	char *blob;
	tally_uuid_t id;
	uint32_t region;
	uint32_t cand;
	int32_t dob_days;
} ring_entry_t;

struct simvotes {
	simreg_t *reg;
	simvotes_opts_t o;
	uint64_t rng;
	int32_t cutoff_days;            /* born on or before: 18 or older on election day */
	tally_gen_t *people;
	double *national, *personal;    /* [nparties], [ncands] */
	ring_entry_t *ring;
	uint32_t ring_len, ring_head;
	char *buf;
	size_t cap;
	simvotes_truth_t t;
};

/* ---- randomness -------------------------------------------------------------------- */

static inline uint64_t
rng_next(simvotes_t *sv)
{
	sv->rng += TALLY_MIX_GOLDEN;
	return tally_mix64(sv->rng);
}

static inline uint64_t
rng_below(simvotes_t *sv, uint64_t n)
{
	return (uint64_t)(((unsigned __int128)rng_next(sv) * n) >> 64);
}

static uint64_t
name_hash(const char *s)
{
	uint64_t h = 1469598103934665603ull;

	for (; *s != '\0'; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h;
}

/* A version-4 UUID nobody registered (2^-122 odds of meeting a registered one per draw). */
static void
random_uuid(simvotes_t *sv, tally_uuid_t *id)
{
	id->hi = (rng_next(sv) & ~0xf000ull) | 0x4000ull;
	id->lo = (rng_next(sv) & ~(3ull << 62)) | (2ull << 62);
}

/* ---- the maker --------------------------------------------------------------------- */

simvotes_t *
simvotes_new(simreg_t *reg, const simvotes_opts_t *opts, char *errstr, size_t errstr_size)
{
	simvotes_t *sv = calloc(1, sizeof(*sv));
	tally_gen_opts_t go;

	if (sv == NULL)
		goto nomem;
	sv->reg = reg;
	sv->o = *opts;
	sv->rng = tally_mix3(opts->seed, TAG_STREAM, 0);
	sv->cutoff_days = tally_election_dob_cutoff(reg->opens_at);
	tally_gen_opts_init(&go);
	go.seed = opts->seed;
	go.voters = PEOPLE;
	go.candidates = PEOPLE_CANDIDATES;
	if ((sv->people = tally_gen_new(&go, errstr, errstr_size)) == NULL) {
		free(sv);
		return NULL;
	}
	sv->national = calloc(reg->nparties + 1, sizeof(double));
	sv->personal = calloc(reg->ncands + 1, sizeof(double));
	sv->ring = calloc(RING_SIZE, sizeof(*sv->ring));
	sv->cap = TALLY_GEN_MSG_MAX;
	sv->buf = malloc(sv->cap);
	if (sv->national == NULL || sv->personal == NULL || sv->ring == NULL || sv->buf == NULL)
		goto nomem;
	for (uint32_t p = 0; p < reg->nparties; p++)
		sv->national[p] = 0.6 + 0.8 * tally_mix_u01(tally_mix3(opts->seed, TAG_NATIONAL, name_hash(reg->parties[p])));
	for (uint32_t c = 0; c < reg->ncands; c++)
		sv->personal[c] = 0.8 + 0.4 * tally_mix_u01(tally_mix3(opts->seed, TAG_PERSONAL,
		                                        reg->cands[c].id.hi ^ reg->cands[c].id.lo));
	return sv;
nomem:
	snprintf(errstr, errstr_size, "could not make the votes: out of memory");
	simvotes_destroy(sv);
	return NULL;
}

void
simvotes_destroy(simvotes_t *sv)
{
	if (sv == NULL)
		return;
	if (sv->ring != NULL)
		for (uint32_t i = 0; i < RING_SIZE; i++)
			free(sv->ring[i].blob);
	free(sv->ring);
	free(sv->national);
	free(sv->personal);
	free(sv->buf);
	tally_gen_destroy(sv->people);
	free(sv);
}

/* The i-th candidate a region may vote for. */
static uint32_t
simvotes_choice(const simreg_region_t *r, uint32_t i)
{
	return r->choices != NULL ? r->choices[i] : i;
}

/* Does candidate c stand where a voter of the region votes (always, without contests)? */
static bool
in_contest(const simvotes_t *sv, uint32_t region, int32_t c)
{
	return sv->reg->ncontests == 0 || sv->reg->cands[c].contest == sv->reg->regions[region].contest;
}

/*
 * The region's cumulative choice over the candidates, made on first use: each region leans
 * to one party (2.5 times its national weight), the others vary by +-30 %, and candidates
 * of one party differ by +-20 %, so the national leader does not lead everywhere.
 */
static const double *
region_choice(simvotes_t *sv, uint32_t region)
{
	simreg_region_t *r = &sv->reg->regions[region];
	uint32_t nc = sv->reg->ncands, fav, n = nc;
	uint64_t rh;
	double total = 0, acc = 0;

	if (r->choice_cum != NULL)
		return r->choice_cum;
	if (r->accepted == NULL && (r->accepted = calloc(nc, sizeof(uint64_t))) == NULL)
		return NULL;
	/* With contests: the candidates of the region's own (a region in none: all, and each
	 * such vote is a wrong_contest). */
	if (sv->reg->ncontests > 0 && r->contest >= 0) {
		if ((r->choices = calloc(nc, sizeof(uint32_t))) == NULL)
			return NULL;
		n = 0;
		for (uint32_t c = 0; c < nc; c++)
			if (sv->reg->cands[c].contest == r->contest)
				r->choices[n++] = c;
		if (n == 0) {
			free(r->choices);
			r->choices = NULL;
			n = nc;
		}
	}
	r->nchoices = n;
	if ((r->choice_cum = calloc(n, sizeof(double))) == NULL)
		return NULL;
	rh = name_hash(r->name);
	fav = sv->reg->cands[simvotes_choice(r, tally_mix3(sv->o.seed, TAG_FAVOURITE, rh) % n)].party;
	for (uint32_t i = 0; i < n; i++) {
		uint32_t c = simvotes_choice(r, i), p = sv->reg->cands[c].party;
		double lean = p == fav ? 2.5
		                       : 0.7 + 0.6 * tally_mix_u01(tally_mix3(sv->o.seed, TAG_LEAN, rh * 31 + p));

		r->choice_cum[i] = sv->national[p] * lean * sv->personal[c];
		total += r->choice_cum[i];
	}
	for (uint32_t i = 0; i < n; i++) {
		acc += r->choice_cum[i];
		r->choice_cum[i] = acc / total;
	}
	r->choice_cum[n - 1] = 1.0;
	return r->choice_cum;
}

/* What a message was made to say, and what the maker knows about it. */
typedef struct intent {
	const tally_gen_voter_fields_t *f;
	tally_uuid_t voter_id;
	bool registered;
	int32_t dob_days;
	uint32_t region;
	bool voted;                     /* the voter has an accepted vote already */
	int32_t cand;                   /* -1: a candidate nobody registered */
	const tally_gen_candidate_t *c;
	int64_t time;
	int malformed;
	bool fault;
} intent_t;

/*
 * The core's verdict on a message, without changing anything: the decoder first, then the
 * checks of core/core.c in TALLY_REASON_MAP order (the election is open).
 */
static int
judge(const simvotes_t *sv, const intent_t *in, const char *buf, size_t len)
{
	tally_vote_t vote;

	if (tally_decode_vote(NULL, buf, len, &vote, NULL) != 0)
		return TALLY_REASON_MALFORMED;
	/* A message that decodes says what it was made to say, or the maker has a bug. */
	if (!tally_uuid_equal(&vote.voter_id, &in->voter_id) ||
	    !tally_uuid_equal(&vote.candidate_id, &in->c->id) || vote.voting_time != in->time) {
		fprintf(stderr, "tally-sim: internal error: a message decodes to other fields than "
		        "it was made with (malformed kind \"%s\")\n",
		        tally_gen_malformed_name(in->malformed));
		abort();
	}
	if (vote.voting_time < sv->reg->opens_at)
		return TALLY_REASON_TOO_EARLY;
	if (vote.voting_time >= sv->reg->closes_at)
		return TALLY_REASON_TOO_LATE;
	if (!in->registered)
		return TALLY_REASON_UNKNOWN_VOTER;
	if (in->cand < 0)
		return TALLY_REASON_UNKNOWN_CANDIDATE;
	if (in->dob_days > sv->cutoff_days)
		return TALLY_REASON_INELIGIBLE;
	/* As the core: a candidate of another contest claims nothing. */
	if (!in_contest(sv, in->region, in->cand))
		return TALLY_REASON_WRONG_CONTEST;
	if (in->voted)
		return TALLY_REASON_DUPLICATE;
	return TALLY_REASON_ACCEPTED;
}

/* Write, judge, emit and count one message. *reason receives the verdict. */
static int
make(simvotes_t *sv, const intent_t *in, simvotes_emit_fn emit, void *arg, int *reason)
{
	uint64_t noise = rng_next(sv);
	size_t len;
	char rekey[TALLY_UUID_STRLEN + 1];
	const char *key = in->f->voter_id;
	bool rekeyed = false;
	int r, rc;

	/* Drawn only when asked for, so that without it the stream is the one it always was. */
	if (sv->o.rekey_rate > 0 && tally_mix_u01(rng_next(sv)) < sv->o.rekey_rate) {
		tally_uuid_t id;

		random_uuid(sv, &id);
		key = tally_uuid_format(&id, rekey);
		rekeyed = true;
	}
	while ((len = tally_gen_vote_json(in->f, in->c, in->time, in->malformed, noise,
	                                  sv->o.compact, sv->buf, sv->cap)) >= sv->cap) {
		size_t ncap = sv->cap * 2;
		char *nb;

		while (ncap <= len)
			ncap *= 2;
		if ((nb = realloc(sv->buf, ncap)) == NULL)
			return TALLY_ENOMEM;
		sv->buf = nb;
		sv->cap = ncap;
	}
	r = judge(sv, in, sv->buf, len);
	/* The region's counters exist before the message leaves. */
	if (r == TALLY_REASON_ACCEPTED && region_choice(sv, in->region) == NULL)
		return TALLY_ENOMEM;
	if ((rc = emit(key, strlen(key), sv->buf, len, arg)) != 0)
		return rc;
	sv->t.messages++;
	if (rekeyed)
		sv->t.rekeyed++;
	if (in->fault)
		sv->t.faults++;
	if (r == TALLY_REASON_ACCEPTED) {
		sv->t.accepted++;
		sv->reg->regions[in->region].accepted[in->cand]++;
	} else {
		sv->t.rejected[r]++;
		sv->t.rejected_total++;
	}
	*reason = r;
	return 0;
}

#define NSTRINGS 15

/* The string members of f, in one array, so they can be copied in a loop. */
static void
field_strings(tally_gen_voter_fields_t *f, const char **s[NSTRINGS])
{
	const char **m[NSTRINGS] = {
		&f->voter_id, &f->voter_name, &f->date_of_birth, &f->gender, &f->nationality,
		&f->registration_number, &f->street, &f->city, &f->state, &f->country, &f->postcode,
		&f->email, &f->phone_number, &f->cell_number, &f->picture,
	};

	memcpy(s, m, sizeof(m));
}

/* Keep a copy of an accepted voter for later duplicates. */
static int
ring_add(simvotes_t *sv, const simreg_voter_t *v, uint32_t cand)
{
	ring_entry_t *e = &sv->ring[sv->ring_head];
	tally_gen_voter_fields_t f = v->f;
	const char **s[NSTRINGS];
	size_t total = 0;
	char *p;

	field_strings(&f, s);
	for (int i = 0; i < NSTRINGS; i++)
		total += *s[i] != NULL ? strlen(*s[i]) + 1 : 0;
	if ((p = malloc(total + 1)) == NULL)
		return TALLY_ENOMEM;
	free(e->blob);
	e->blob = p;
	for (int i = 0; i < NSTRINGS; i++) {
		size_t n;

		if (*s[i] == NULL)
			continue;
		n = strlen(*s[i]) + 1;
		memcpy(p, *s[i], n);
		*s[i] = p;
		p += n;
	}
	e->f = f;
	e->id = v->id;
	e->region = v->region;
	e->cand = cand;
	e->dob_days = v->dob_days;
	sv->ring_head = (sv->ring_head + 1) % RING_SIZE;
	if (sv->ring_len < RING_SIZE)
		sv->ring_len++;
	return 0;
}

/* The kinds of message, in the order their shares are drawn. */
enum kind {
	K_VOTE = 0,
	K_INVALID,
	K_EARLY,
	K_LATE,
	K_UNKNOWN_VOTER,
	K_UNKNOWN_CANDIDATE,
	K_DUPLICATE,
	K_WRONG_CONTEST,
};

static enum kind
draw_kind(simvotes_t *sv)
{
	const simvotes_opts_t *o = &sv->o;
	const double rates[] = {0, o->invalid_rate, o->early_rate, o->late_rate, o->unknown_rate,
	                        o->unknown_candidate_rate, o->dup_rate, o->wrong_contest_rate};
	double u = tally_mix_u01(rng_next(sv)), acc = 0;

	for (int k = K_INVALID; k <= K_WRONG_CONTEST; k++) {
		acc += rates[k];
		if (u < acc)
			return (enum kind)k;
	}
	return K_VOTE;
}

static int64_t
vote_time(simvotes_t *sv, double progress)
{
	int64_t opens = sv->reg->opens_at, closes = sv->reg->closes_at;
	int64_t t = opens + (int64_t)(progress * (double)(closes - opens));

	/* Up to two minutes either way, kept inside the window. */
	t += (int64_t)rng_below(sv, 241) - 120;
	if (t < opens)
		t = opens;
	if (t >= closes)
		t = closes - 1;
	return t;
}

/* One fault message about (or instead of) voter v. */
static int
make_fault(simvotes_t *sv, enum kind k, const simreg_voter_t *v, double progress,
           simvotes_emit_fn emit, void *arg)
{
	const simreg_t *reg = sv->reg;
	tally_gen_voter_t person;
	tally_gen_voter_fields_t fake_f;
	tally_gen_candidate_t fake_c;
	char fake_vid[TALLY_UUID_STRLEN + 1], fake_cid[TALLY_UUID_STRLEN + 1];
	intent_t in = {
		.f = &v->f, .voter_id = v->id, .registered = true, .dob_days = v->dob_days,
		.region = v->region, .voted = false, .fault = true,
	};
	int reason;

	in.cand = (int32_t)rng_below(sv, reg->ncands);
	in.c = &reg->cands[in.cand].row;
	in.time = vote_time(sv, progress);
	switch (k) {
	case K_INVALID:
		in.malformed = 1 + (int)rng_below(sv, TALLY_GEN_MALFORMED__COUNT - 1);
		break;
	case K_EARLY:
		/* One in ten exactly one second before the polls open. */
		in.time = reg->opens_at - 1 -
		          (rng_below(sv, 10) == 0 ? 0 : (int64_t)rng_below(sv, 7200));
		break;
	case K_LATE:
		/* One in ten exactly when they close (closes_at is exclusive). */
		in.time = reg->closes_at + (rng_below(sv, 10) == 0 ? 0 : (int64_t)rng_below(sv, 7200));
		break;
	case K_UNKNOWN_VOTER:
		tally_gen_voter(sv->people, rng_below(sv, PEOPLE), &person);
		tally_gen_voter_fields(&person, &fake_f);
		random_uuid(sv, &in.voter_id);
		fake_f.voter_id = tally_uuid_format(&in.voter_id, fake_vid);
		in.f = &fake_f;
		in.registered = false;
		break;
	case K_UNKNOWN_CANDIDATE:
		tally_gen_candidate(sv->people, (uint32_t)rng_below(sv, PEOPLE_CANDIDATES), &fake_c);
		random_uuid(sv, &fake_c.id);
		fake_c.candidate_id = tally_uuid_format(&fake_c.id, fake_cid);
		in.c = &fake_c;
		in.cand = -1;
		break;
	case K_DUPLICATE: {
		const ring_entry_t *e = &sv->ring[rng_below(sv, sv->ring_len)];

		in.f = &e->f;
		in.voter_id = e->id;
		in.dob_days = e->dob_days;
		in.region = e->region;
		in.voted = true;
		/* Half the repeat votes change their mind; none when a key may differ (see
		 * simvotes.h: either of the two may be the one counted). */
		if (sv->o.rekey_rate > 0 || (rng_next(sv) & 1)) {
			in.cand = (int32_t)e->cand;
			in.c = &reg->cands[in.cand].row;
		} else if (reg->ncontests > 0) {
			/* Another mind within the voter's own contest (drawn only with contests). */
			const simreg_region_t *r = &reg->regions[e->region];

			in.cand = (int32_t)simvotes_choice(r, (uint32_t)rng_below(sv, r->nchoices));
			in.c = &reg->cands[in.cand].row;
		}
		break;
	}
	case K_WRONG_CONTEST: {
		/* A registered adult votes for a candidate of another constituency. */
		uint32_t tries = 0;

		while (in_contest(sv, v->region, in.cand) && tries++ < 64)
			in.cand = (int32_t)rng_below(sv, reg->ncands);
		in.c = &reg->cands[in.cand].row;
		break;
	}
	default:
		abort();
	}
	return make(sv, &in, emit, arg, &reason);
}

int
simvotes_voter(simvotes_t *sv, const simreg_voter_t *v, double progress, simvotes_emit_fn emit,
               void *arg)
{
	uint64_t h = v->id.hi ^ tally_mix64(v->id.lo);
	const double *cum;
	intent_t in;
	enum kind k;
	int rc, reason;
	uint32_t c = 0;
	double u;

	if (sv->reg->ncands == 0)
		return 0;
	if (tally_mix_u01(tally_mix3(sv->o.seed, TAG_TURNOUT, h)) >= sv->o.turnout)
		return 0;
	/* Faults at their shares of all messages, in front of the vote that takes a slot. */
	while ((k = draw_kind(sv)) != K_VOTE) {
		if (k == K_DUPLICATE && sv->ring_len == 0)
			break;
		if ((rc = make_fault(sv, k, v, progress, emit, arg)) != 0)
			return rc;
	}
	if ((cum = region_choice(sv, v->region)) == NULL)
		return TALLY_ENOMEM;
	u = tally_mix_u01(tally_mix3(sv->o.seed, TAG_CHOICE, h));
	while (c + 1 < sv->reg->regions[v->region].nchoices && u >= cum[c])
		c++;
	c = simvotes_choice(&sv->reg->regions[v->region], c);
	in = (intent_t){
		.f = &v->f, .voter_id = v->id, .registered = true, .dob_days = v->dob_days,
		.region = v->region, .voted = false, .cand = (int32_t)c,
		.c = &sv->reg->cands[c].row, .time = vote_time(sv, progress),
	};
	if ((rc = make(sv, &in, emit, arg, &reason)) != 0)
		return rc;
	return reason == TALLY_REASON_ACCEPTED ? ring_add(sv, v, c) : 0;
}

void
simvotes_totals(const simvotes_t *sv, simvotes_truth_t *out)
{
	*out = sv->t;
}

/* ---- the ground truth file --------------------------------------------------------- */

static json_t *
truth_json(const simvotes_t *sv, const char *election_id)
{
	const simreg_t *reg = sv->reg;
	json_t *root = json_object(), *rej = json_object(), *cands = json_array(),
	       *parties = json_array(), *regions = json_array();
	uint64_t *by_cand = calloc(reg->ncands + 1, sizeof(uint64_t));
	uint64_t *by_party = calloc(reg->nparties + 1, sizeof(uint64_t));
	int bad = root == NULL || rej == NULL || cands == NULL || parties == NULL ||
	          regions == NULL || by_cand == NULL || by_party == NULL;

	for (uint32_t r = 0; !bad && r < reg->nregions; r++) {
		uint64_t n = 0;

		for (uint32_t c = 0; reg->regions[r].accepted != NULL && c < reg->ncands; c++) {
			by_cand[c] += reg->regions[r].accepted[c];
			by_party[reg->cands[c].party] += reg->regions[r].accepted[c];
			n += reg->regions[r].accepted[c];
		}
		bad |= json_array_append_new(regions,
		           json_pack("{s:s, s:I, s:I}", "region", reg->regions[r].name, "registered",
		                     (json_int_t)reg->regions[r].registered, "count",
		                     (json_int_t)n)) != 0;
	}
	for (uint32_t c = 0; !bad && c < reg->ncands; c++)
		bad |= json_array_append_new(cands,
		           json_pack("{s:s, s:s?, s:s, s:I}", "candidate_id",
		                     reg->cands[c].row.candidate_id, "candidate_name",
		                     reg->cands[c].row.candidate_name, "party_affiliation",
		                     reg->cands[c].row.party_affiliation, "total_votes",
		                     (json_int_t)by_cand[c])) != 0;
	/* Contests: each one's votes and winner (null: no votes or a tie), and the seats. */
	if (!bad && reg->ncontests > 0) {
		json_t *ks = json_array(), *seats = json_object();
		uint32_t *won = calloc(reg->nparties + 1, sizeof(uint32_t));

		bad = ks == NULL || seats == NULL || won == NULL;
		for (uint32_t k = 0; !bad && k < reg->ncontests; k++) {
			uint64_t votes = 0, best = 0, second = 0;
			int32_t lead = -1;

			for (uint32_t c = 0; c < reg->ncands; c++) {
				if (reg->cands[c].contest != (int32_t)k)
					continue;
				votes += by_cand[c];
				if (by_cand[c] > best) {
					second = best;
					best = by_cand[c];
					lead = (int32_t)c;
				} else if (by_cand[c] > second) {
					second = by_cand[c];
				}
			}
			if (best == 0 || best == second)
				lead = -1;
			if (lead >= 0)
				won[reg->cands[lead].party]++;
			bad |= json_array_append_new(ks,
			           json_pack("{s:s, s:s, s:I, s:s?, s:I, s:b}", "contest_id",
			                     reg->contests[k], "contest_name", reg->contest_names[k],
			                     "votes", (json_int_t)votes, "winner",
			                     lead >= 0 ? reg->cands[lead].row.candidate_id : NULL,
			                     "majority", (json_int_t)(lead >= 0 ? best - second : 0),
			                     "tie", best > 0 && best == second)) != 0;
		}
		for (uint32_t p = 0; !bad && p < reg->nparties; p++)
			bad |= json_object_set_new(seats, reg->parties[p],
			                           json_integer((json_int_t)won[p])) != 0;
		if (!bad)
			bad = json_object_set_new(root, "contests", ks) != 0 ||
			      json_object_set_new(root, "seats", seats) != 0;
		else {
			json_decref(ks);
			json_decref(seats);
		}
		free(won);
	}
	for (uint32_t p = 0; !bad && p < reg->nparties; p++)
		bad |= json_array_append_new(parties,
		           json_pack("{s:s, s:I}", "party_affiliation", reg->parties[p],
		                     "total_votes", (json_int_t)by_party[p])) != 0;
	for (int i = 1; !bad && i < TALLY_REASON__COUNT; i++)
		bad |= json_object_set_new(rej, tally_reason_name(i),
		                           json_integer((json_int_t)sv->t.rejected[i])) != 0;
	free(by_cand);
	free(by_party);
	if (!bad)
		bad = json_object_set_new(root, "election_id", json_string(election_id)) != 0 ||
		      json_object_set_new(root, "messages", json_integer((json_int_t)sv->t.messages)) ||
		      json_object_set_new(root, "accepted", json_integer((json_int_t)sv->t.accepted)) ||
		      json_object_set_new(root, "rejected_total",
		                          json_integer((json_int_t)sv->t.rejected_total)) ||
		      json_object_set(root, "rejected", rej) ||
		      json_object_set_new(root, "registered",
		                          json_integer((json_int_t)reg->registered)) ||
		      json_object_set(root, "candidates", cands) ||
		      json_object_set(root, "parties", parties) ||
		      json_object_set(root, "regions", regions);
	json_decref(rej);
	json_decref(cands);
	json_decref(parties);
	json_decref(regions);
	if (bad) {
		json_decref(root);
		return NULL;
	}
	return root;
}

int
simvotes_write_truth(const simvotes_t *sv, const char *election_id, const char *path,
                     char *errstr, size_t errstr_size)
{
	json_t *root = truth_json(sv, election_id);
	char *tmp;
	size_t n = strlen(path) + 32;
	int rc = 0;

	if (root == NULL || (tmp = malloc(n)) == NULL) {
		json_decref(root);
		snprintf(errstr, errstr_size, "could not write \"%s\": out of memory", path);
		return TALLY_ENOMEM;
	}
	snprintf(tmp, n, "%s.tmp.%d", path, (int)getpid());
	if (json_dump_file(root, tmp, JSON_INDENT(2) | JSON_PRESERVE_ORDER) != 0) {
		snprintf(errstr, errstr_size, "could not write \"%s\": %s", tmp, strerror(errno));
		unlink(tmp);
		rc = TALLY_EIO;
	} else if (rename(tmp, path) != 0) {
		snprintf(errstr, errstr_size, "could not rename \"%s\" to \"%s\": %s", tmp, path,
		         strerror(errno));
		unlink(tmp);
		rc = TALLY_EIO;
	}
	json_decref(root);
	free(tmp);
	return rc;
}

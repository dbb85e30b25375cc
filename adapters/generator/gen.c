/*
 * The seeded election generator (see include/tally/gen.h for the contract).
 *
 * Randomness: every value is derived from the seed by splitmix64-style mixing. A value
 * that belongs to a thing with an index (voter i, candidate c, region r) is a hash of
 * (seed, tag, index), so it can be recomputed at any time without state; the vote stream
 * draws from its own sequential splitmix64 generator. Only +, -, *, / on doubles (correctly
 * rounded everywhere, with contraction into FMA turned off below) and integer arithmetic
 * are used, so output is the same on every machine.
 *
 * Who votes when: a 4-round Feistel permutation with cycle walking maps stream positions
 * to voter indices, so each stream visits its voters in a random order with O(1) memory.
 * A second permutation decides who is under 18 (voter i is iff perm(i) < U) and lets an
 * "ineligible" fault pick the j-th under-18 voter directly.
 */
/* Fusing a * b + c into one FMA (GCC does by default where the CPU has it) rounds
 * differently, which would make the output depend on the machine. */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tally/error.h>
#include <tally/gen.h>
#include <tally/mix.h>
#include <tally/time.h>

#include "names.h"

/* ---- hashing and random numbers -------------------------------------------------- */


enum {
	TAG_VOTER = 1,  /* the voter's own record */
	TAG_ID_HI,
	TAG_ID_LO,
	TAG_REGION,
	TAG_TURNOUT,
	TAG_CHOICE,
	TAG_CANDIDATE,
	TAG_PARTY,
	TAG_REGION_TABLE,
	TAG_WALK,
	TAG_AGE,
	TAG_STREAM,
	TAG_CONTEST,
};

typedef struct rng {
	uint64_t s;
} rng_t;

static inline uint64_t
rng_next(rng_t *r)
{
	r->s += TALLY_MIX_GOLDEN;
	return tally_mix64(r->s);
}

/* Uniform in [0, n) by multiply-high; n > 0. */
static inline uint64_t
rng_below(rng_t *r, uint64_t n)
{
	return (uint64_t)(((unsigned __int128)rng_next(r) * n) >> 64);
}

static inline double
rng_double(rng_t *r)
{
	return tally_mix_u01(rng_next(r));
}

static inline const char *
pick(rng_t *r, const tally__gen_words_t *w)
{
	return w->words[rng_below(r, w->count)];
}

/* ---- Feistel permutation of [0, n) ----------------------------------------------- */

typedef struct perm {
	uint64_t n;
	unsigned half;
	uint64_t mask;
	uint64_t key[4];
} perm_t;

static void
perm_init(perm_t *p, uint64_t n, uint64_t seed, uint64_t tag)
{
	unsigned bits = 0;

	while (bits < 64 && (1ull << bits) < n)
		bits++;
	p->n = n;
	p->half = bits < 2 ? 1 : (bits + 1) / 2;
	p->mask = (1ull << p->half) - 1;
	for (int i = 0; i < 4; i++)
		p->key[i] = tally_mix3(seed, tag, (uint64_t)i);
}

static uint64_t
perm_fwd(const perm_t *p, uint64_t x)
{
	do {
		uint64_t l = x >> p->half, r = x & p->mask;

		for (int i = 0; i < 4; i++) {
			uint64_t nl = r;

			r = l ^ (tally_mix64(r ^ p->key[i]) & p->mask);
			l = nl;
		}
		x = (l << p->half) | r;
	} while (x >= p->n);
	return x;
}

static uint64_t
perm_inv(const perm_t *p, uint64_t x)
{
	do {
		uint64_t l = x >> p->half, r = x & p->mask;

		for (int i = 3; i >= 0; i--) {
			uint64_t pr = l;

			l = r ^ (tally_mix64(l ^ p->key[i]) & p->mask);
			r = pr;
		}
		x = (l << p->half) | r;
	} while (x >= p->n);
	return x;
}

/* ---- the generator --------------------------------------------------------------- */

/* Share of the votes cast in each equal slice of the polling window (UK polling day: a
 * morning peak, a lull, and the after-work rush). */
static const double hour_weights[] = {6, 7, 8, 6, 5, 5, 5, 5, 6, 7, 9, 10, 9, 7, 5};
#define NSLICES (sizeof(hour_weights) / sizeof(hour_weights[0]))

typedef struct gen_party {
	char name[64];
} gen_party_t;

typedef struct gen_region {
	char name[64];
	const tally__gen_county_t *county;  /* towns and postcode areas */
	double weight;
	double turnout;                      /* chance an adult voter here votes */
	uint64_t registered;
} gen_region_t;

typedef struct gen_candidate {
	tally_uuid_t id;
	char id_str[TALLY_UUID_STRLEN + 1];
	char name[64];
	uint32_t party;
	bool female;
	char biography[256];
	char platform[256];
	char photo_url[64];
	int32_t contest;            /* -1: the national race */
} gen_candidate_t;

typedef struct gen_contest {
	char id[16];
	char name[96];
	uint32_t first, n;          /* its candidates */
	uint32_t nregions;
} gen_contest_t;

struct tally_gen {
	tally_gen_opts_t opts;
	uint32_t nparties, ncandidates, nregions;
	gen_party_t *parties;
	gen_region_t *regions;
	gen_candidate_t *candidates;
	uint32_t ncontests;
	gen_contest_t *contests;    /* [ncontests] */
	double *region_cum;         /* [nregions] cumulative population share, last = 1 */
	/* Per region, the cumulative choice over the candidates it may vote for (its
	 * contest's, or all): region r's are choice_cum[choice_off[r] ...], for candidates
	 * choice_first[r] onwards. */
	double *choice_cum;
	size_t *choice_off;
	uint32_t *choice_first, *choice_n;
	double slice_cum[NSLICES + 1];
	uint64_t underage;          /* U: voters under 18 */
	perm_t walk;
	perm_t age;
	int32_t eday;               /* election day */
	int32_t b18;                /* born on this day: turns 18 on election day */
	int32_t b16, b80, b95;      /* born on these days: 16, 80, 95 on election day */
	bool boundary_ok;           /* b18 and b18 + 1 are unambiguous birthdays */
};


void
tally_gen_opts_init(tally_gen_opts_t *opts)
{
	memset(opts, 0, sizeof(*opts));
	opts->seed = 1;
	opts->voters = 100000;
	opts->candidates = 3;
	opts->parties = 3;
	opts->regions = 20;
	opts->turnout = 0.65;
	opts->underage = 0.01;
	opts->dup_rate = 0.01;
	opts->malformed_rate = 0.005;
	opts->unknown_voter_rate = 0.005;
	opts->unknown_candidate_rate = 0.002;
	opts->late_rate = 0.002;
	opts->early_rate = 0.002;
	opts->ineligible_rate = 0.002;
	/* 2026-05-07 07:00:00Z .. 22:00:00Z. */
	opts->opens_at = 1778137200;
	opts->closes_at = 1778137200 + 15 * 3600;
	opts->compact = false;
}

/* The day `years` years before election day, moving 29 February to the 28th. */
static int32_t
years_before(int year, unsigned month, unsigned day, int years)
{
	if (!tally_date_valid(year - years, month, day))
		day = 28;
	return tally_days_from_civil(year - years, month, day);
}

static double
fault_sum(const tally_gen_opts_t *o)
{
	return o->dup_rate + o->malformed_rate + o->unknown_voter_rate +
	       o->unknown_candidate_rate + o->late_rate + o->early_rate + o->ineligible_rate +
	       o->wrong_contest_rate;
}

static int
check_opts(const tally_gen_opts_t *o, char *errstr, size_t errstr_size)
{
	const struct {
		const char *name;
		double value;
	} rates[] = {
		{"turnout", o->turnout},
		{"underage", o->underage},
		{"dup_rate", o->dup_rate},
		{"malformed_rate", o->malformed_rate},
		{"unknown_voter_rate", o->unknown_voter_rate},
		{"unknown_candidate_rate", o->unknown_candidate_rate},
		{"late_rate", o->late_rate},
		{"early_rate", o->early_rate},
		{"ineligible_rate", o->ineligible_rate},
		{"wrong_contest_rate", o->wrong_contest_rate},
	};

	if (o->voters < 1 || o->voters > TALLY_GEN_MAX_VOTERS) {
		tally_errstr_set(errstr, errstr_size, "voters: %llu is out of range 1 to %llu",
		     (unsigned long long)o->voters, (unsigned long long)TALLY_GEN_MAX_VOTERS);
		return -1;
	}
	if (o->candidates < 1 || o->candidates > TALLY_GEN_MAX_CANDIDATES) {
		tally_errstr_set(errstr, errstr_size, "candidates: %u is out of range 1 to %u", o->candidates,
		     TALLY_GEN_MAX_CANDIDATES);
		return -1;
	}
	if (o->parties < 1 || o->parties > TALLY_GEN_MAX_PARTIES) {
		tally_errstr_set(errstr, errstr_size, "parties: %u is out of range 1 to %u", o->parties,
		     TALLY_GEN_MAX_PARTIES);
		return -1;
	}
	if (o->regions < 1 || o->regions > TALLY_GEN_MAX_REGIONS) {
		tally_errstr_set(errstr, errstr_size, "regions: %u is out of range 1 to %u", o->regions,
		     TALLY_GEN_MAX_REGIONS);
		return -1;
	}
	if (o->contests > o->regions || o->contests > TALLY_GEN_MAX_CONTESTS) {
		tally_errstr_set(errstr, errstr_size, "contests: %u is above the regions (%u) or %u",
		     o->contests, o->regions, TALLY_GEN_MAX_CONTESTS);
		return -1;
	}
	if (o->wrong_contest_rate > 0 && o->contests < 2) {
		tally_errstr_set(errstr, errstr_size, "wrong_contest_rate: %g needs 2 or more contests",
		     o->wrong_contest_rate);
		return -1;
	}
	for (size_t i = 0; i < sizeof(rates) / sizeof(rates[0]); i++) {
		/* Written so that NaN fails too. */
		if (!(rates[i].value >= 0.0 && rates[i].value <= 1.0)) {
			tally_errstr_set(errstr, errstr_size, "%s: %g is out of range 0 to 1", rates[i].name,
			     rates[i].value);
			return -1;
		}
	}
	if (!(fault_sum(o) < 0.9)) {
		tally_errstr_set(errstr, errstr_size, "fault rates add up to %g; they must add up to less than 0.9",
		     fault_sum(o));
		return -1;
	}
	if (o->ineligible_rate > 0 && o->underage <= 0) {
		tally_errstr_set(errstr, errstr_size, "ineligible_rate: %g needs voters under 18, but underage is 0",
		     o->ineligible_rate);
		return -1;
	}
	if (o->closes_at <= o->opens_at) {
		tally_errstr_set(errstr, errstr_size, "closes_at must be after opens_at");
		return -1;
	}
	/* Keeps every date of birth inside what the registry takes (1900 .. 2079). */
	if (o->opens_at < 820454400 /* 1996-01-01 */ || o->closes_at > 3944678400 /* 2095-01-01 */) {
		tally_errstr_set(errstr, errstr_size, "the election must be held between 1996 and 2094");
		return -1;
	}
	return 0;
}

static void
build_parties(tally_gen_t *gen)
{
	const tally__gen_words_t *a = &tally__gen_party_words, *b = &tally__gen_party_kinds;
	size_t ncombos = a->count * b->count, next = 0;
	uint32_t *order = malloc(ncombos * sizeof(*order));
	rng_t r = {tally_mix3(gen->opts.seed, TAG_PARTY, 0)};
	uint32_t n = 0;

	for (; n < gen->nparties && n < 3; n++)
		snprintf(gen->parties[n].name, sizeof(gen->parties[n].name), "%s",
		         tally__gen_original_parties[n]);
	if (order == NULL)
		abort();
	for (size_t i = 0; i < ncombos; i++)
		order[i] = (uint32_t)i;
	for (size_t i = ncombos - 1; i > 0; i--) {
		size_t j = (size_t)rng_below(&r, i + 1);
		uint32_t t = order[i];

		order[i] = order[j];
		order[j] = t;
	}
	while (n < gen->nparties && next < ncombos) {
		uint32_t c = order[next++];
		char name[64];
		bool dup = false;

		snprintf(name, sizeof(name), "%s %s", a->words[c / b->count], b->words[c % b->count]);
		for (uint32_t k = 0; k < n && !dup; k++)
			dup = strcmp(gen->parties[k].name, name) == 0;
		if (!dup)
			memcpy(gen->parties[n++].name, name, sizeof(name));
	}
	free(order);
}

static int
build_regions(tally_gen_t *gen)
{
	size_t nc = tally__gen_ncounties;
	const tally__gen_words_t *pre = &tally__gen_region_prefixes;
	uint32_t n = 0;
	double total = 0, cum = 0;
	rng_t r = {tally_mix3(gen->opts.seed, TAG_REGION_TABLE, 0)};

	for (size_t k = 0; n < gen->nregions && k < nc * (pre->count + 1); k++) {
		const tally__gen_county_t *county = &tally__gen_counties[k % nc];
		gen_region_t *reg = &gen->regions[n];
		bool dup = false;

		if (k < nc) {
			snprintf(reg->name, sizeof(reg->name), "%s", county->name);
			reg->weight = county->population_k;
		} else {
			size_t p = k / nc - 1;

			snprintf(reg->name, sizeof(reg->name), "%s %s", pre->words[p], county->name);
			reg->weight = (double)county->population_k / (double)(3 + p);
		}
		for (uint32_t i = 0; i < n && !dup; i++)
			dup = strcmp(gen->regions[i].name, reg->name) == 0;
		if (dup)
			continue;
		reg->county = county;
		n++;
	}
	if (n < gen->nregions)
		return -1;
	for (uint32_t i = 0; i < n; i++) {
		double t = gen->opts.turnout * (0.85 + 0.3 * rng_double(&r));

		total += gen->regions[i].weight;
		gen->regions[i].turnout = gen->opts.turnout >= 1.0 ? 1.0 : (t > 1.0 ? 1.0 : t);
	}
	for (uint32_t i = 0; i < n; i++) {
		cum += gen->regions[i].weight;
		gen->region_cum[i] = cum / total;
	}
	gen->region_cum[n - 1] = 1.0;
	return 0;
}

static void
capitalise_into(char *dst, size_t size, const char *src)
{
	snprintf(dst, size, "%s", src);
	if (dst[0] >= 'a' && dst[0] <= 'z')
		dst[0] = (char)(dst[0] - 'a' + 'A');
}

static void
make_uuid(tally_uuid_t *id, uint64_t hi, uint64_t lo)
{
	/* Version 4, variant 10: what Python's uuid4() and randomuser's login.uuid look like. */
	id->hi = (hi & ~0xf000ull) | 0x4000ull;
	id->lo = (lo & ~(3ull << 62)) | (2ull << 62);
}

/* Does party p stand in contest k? The first three everywhere, the others in about half. */
static bool
stands(const tally_gen_t *gen, uint32_t k, uint32_t p)
{
	return p < 3 || tally_mix_u01(tally_mix3(gen->opts.seed, TAG_CONTEST,
	                                         ((uint64_t)k << 8) | p)) < 0.5;
}

/* How many candidates opts.contests constituencies take. */
static uint32_t
count_contest_candidates(const tally_gen_t *gen)
{
	uint32_t n = 0;

	for (uint32_t k = 0; k < gen->opts.contests; k++)
		for (uint32_t p = 0; p < gen->nparties; p++)
			n += stands(gen, k, p);
	return n;
}

/* Constituencies: ids in the style of ONS codes, names from their first region's county
 * towns with a compass point when taken ("Maidstone", "Maidstone North", ...), and who
 * stands in each (candidates in contest order). */
static void
build_contests(tally_gen_t *gen)
{
	static const char *const points[] = {"", " North", " South", " East", " West",
	                                     " Central", " North East", " North West",
	                                     " South East", " South West", " Rural", " Urban"};
	uint32_t next = 0;

	for (uint32_t k = 0; k < gen->ncontests; k++) {
		gen_contest_t *ct = &gen->contests[k];
		const tally__gen_county_t *county = gen->regions[k].county;
		size_t ntowns = 0;
		bool named = false;

		snprintf(ct->id, sizeof(ct->id), "E14%06u", k + 1);
		while (ntowns < 6 && county->towns[ntowns] != NULL)
			ntowns++;
		for (size_t i = 0; !named && i < ntowns * (sizeof(points) / sizeof(points[0])); i++) {
			const char *town = county->towns[(k + i) % ntowns];

			snprintf(ct->name, sizeof(ct->name), "%s%s", town, points[i / ntowns]);
			named = true;
			for (uint32_t j = 0; j < k && named; j++)
				named = strcmp(gen->contests[j].name, ct->name) != 0;
		}
		if (!named)
			snprintf(ct->name, sizeof(ct->name), "%s %u", gen->regions[k].name, k + 1);
		ct->first = next;
		for (uint32_t p = 0; p < gen->nparties; p++)
			if (stands(gen, k, p)) {
				gen->candidates[next].party = p;
				gen->candidates[next].contest = (int32_t)k;
				next++;
			}
		ct->n = next - ct->first;
		for (uint32_t r = k; r < gen->nregions; r += gen->ncontests)
			ct->nregions++;
	}
}

static void
build_candidates(tally_gen_t *gen)
{
	const tally__gen_words_t *pol = &tally__gen_policies;

	for (uint32_t c = 0; c < gen->ncandidates; c++) {
		gen_candidate_t *cand = &gen->candidates[c];
		rng_t r = {tally_mix3(gen->opts.seed, TAG_CANDIDATE, c)};
		const gen_region_t *home;
		const char *town;
		size_t p1, p2, p3, ntowns = 0;
		char first_policy[96];

		make_uuid(&cand->id, rng_next(&r), rng_next(&r));
		tally_uuid_format(&cand->id, cand->id_str);
		cand->female = (c % 2) == 1;
		if (gen->ncontests == 0) {
			cand->party = c % gen->nparties;
			cand->contest = -1;
		}
		/* Candidates' names are unique so results tables read unambiguously. */
		for (;;) {
			bool dup = false;

			snprintf(cand->name, sizeof(cand->name), "%s %s",
			         pick(&r, cand->female ? &tally__gen_female_names : &tally__gen_male_names),
			         pick(&r, &tally__gen_surnames));
			for (uint32_t k = 0; k < c && !dup; k++)
				dup = strcmp(gen->candidates[k].name, cand->name) == 0;
			if (!dup)
				break;
		}
		snprintf(cand->photo_url, sizeof(cand->photo_url),
		         "https://randomuser.me/api/portraits/%s/%u.jpg", cand->female ? "women" : "men",
		         (unsigned)rng_below(&r, 100));
		home = cand->contest >= 0 ? &gen->regions[cand->contest]
		                          : &gen->regions[rng_below(&r, gen->nregions)];
		while (ntowns < 6 && home->county->towns[ntowns] != NULL)
			ntowns++;
		town = home->county->towns[rng_below(&r, ntowns)];
		snprintf(cand->biography, sizeof(cand->biography),
		         "%s is a former %s from %s, %s, and has served %u years as a local councillor.",
		         cand->name, pick(&r, &tally__gen_professions), town, home->name,
		         (unsigned)(2 + rng_below(&r, 19)));
		p1 = (size_t)rng_below(&r, pol->count);
		p2 = (p1 + 1 + (size_t)rng_below(&r, pol->count - 1)) % pol->count;
		do
			p3 = (size_t)rng_below(&r, pol->count);
		while (p3 == p1 || p3 == p2);
		capitalise_into(first_policy, sizeof(first_policy), pol->words[p1]);
		snprintf(cand->platform, sizeof(cand->platform), "%s, %s and %s.", first_policy,
		         pol->words[p2], pol->words[p3]);
	}
}

/*
 * Each region leans to one party: it gets 2.5 times its national weight there, the others
 * vary by +-30%, and candidates of one party differ by +-20%. So the national leader is
 * not the leader everywhere.
 */
static void
build_choices(tally_gen_t *gen)
{
	uint32_t np = gen->nparties, nc = gen->ncandidates;
	double national[TALLY_GEN_MAX_PARTIES], *personal = malloc((nc + 1) * sizeof(double));
	rng_t r = {tally_mix3(gen->opts.seed, TAG_CHOICE, ~0ull)};
	size_t off = 0;

	if (personal == NULL)
		abort();
	for (uint32_t p = 0; p < np; p++)
		national[p] = 0.6 + 0.8 * rng_double(&r);
	for (uint32_t c = 0; c < nc; c++)
		personal[c] = 0.8 + 0.4 * rng_double(&r);
	for (uint32_t reg = 0; reg < gen->nregions; reg++) {
		uint32_t first = 0, n = nc;
		double *cum, total = 0, acc = 0;
		uint32_t fav;

		if (gen->ncontests > 0) {
			const gen_contest_t *ct = &gen->contests[reg % gen->ncontests];

			first = ct->first;
			n = ct->n;
		}
		gen->choice_off[reg] = off;
		gen->choice_first[reg] = first;
		gen->choice_n[reg] = n;
		cum = &gen->choice_cum[off];
		off += n;
		fav = gen->candidates[first + rng_below(&r, n)].party;
		for (uint32_t i = 0; i < n; i++) {
			uint32_t c = first + i, p = gen->candidates[c].party;
			double lean = p == fav ? 2.5 : 0.7 + 0.6 * rng_double(&r);

			cum[i] = national[p] * lean * personal[c];
			total += cum[i];
		}
		for (uint32_t i = 0; i < n; i++) {
			acc += cum[i];
			cum[i] = acc / total;
		}
		cum[n - 1] = 1.0;
	}
	free(personal);
}

static uint32_t
region_of(const tally_gen_t *gen, uint64_t idx)
{
	double u = tally_mix_u01(tally_mix3(gen->opts.seed, TAG_REGION, idx));
	uint32_t lo = 0, hi = gen->nregions - 1;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (u < gen->region_cum[mid])
			hi = mid;
		else
			lo = mid + 1;
	}
	return lo;
}

static uint32_t
choice_of(const tally_gen_t *gen, uint64_t idx, uint32_t region)
{
	const double *cum = &gen->choice_cum[gen->choice_off[region]];
	double u = tally_mix_u01(tally_mix3(gen->opts.seed, TAG_CHOICE, idx));
	uint32_t c = 0, n = gen->choice_n[region];

	while (c + 1 < n && u >= cum[c])
		c++;
	return gen->choice_first[region] + c;
}

static bool
is_underage(const tally_gen_t *gen, uint64_t idx)
{
	return gen->underage > 0 && perm_fwd(&gen->age, idx) < gen->underage;
}

/* Whether adult voter idx turns out (under-18 voters never cast a genuine vote). */
static bool
turns_out(const tally_gen_t *gen, uint64_t idx, uint32_t region)
{
	return tally_mix_u01(tally_mix3(gen->opts.seed, TAG_TURNOUT, idx)) < gen->regions[region].turnout;
}

tally_gen_t *
tally_gen_new(const tally_gen_opts_t *opts, char *errstr, size_t errstr_size)
{
	tally_gen_t *gen;
	int year;
	unsigned month, day;
	double acc = 0, total = 0;

	if (check_opts(opts, errstr, errstr_size) != 0)
		return NULL;
	gen = calloc(1, sizeof(*gen));
	if (gen == NULL)
		goto nomem;
	gen->opts = *opts;
	gen->nparties = opts->parties;
	gen->ncandidates = opts->candidates;
	gen->nregions = opts->regions;
	gen->ncontests = opts->contests;
	if (gen->ncontests > 0 &&
	    (gen->ncandidates = count_contest_candidates(gen)) > TALLY_GEN_MAX_CONTEST_CANDIDATES) {
		tally_errstr_set(errstr, errstr_size, "contests: %u take %u candidates, above %u",
		     gen->ncontests, gen->ncandidates, TALLY_GEN_MAX_CONTEST_CANDIDATES);
		free(gen);
		return NULL;
	}
	gen->parties = calloc(gen->nparties, sizeof(*gen->parties));
	gen->regions = calloc(gen->nregions, sizeof(*gen->regions));
	gen->candidates = calloc(gen->ncandidates, sizeof(*gen->candidates));
	gen->contests = calloc(gen->ncontests + 1, sizeof(*gen->contests));
	gen->region_cum = calloc(gen->nregions, sizeof(*gen->region_cum));
	/* Each region's choices: its contest's candidates (at most one per party), or all. */
	gen->choice_cum = calloc((size_t)gen->nregions *
	                             (gen->ncontests > 0 ? gen->nparties : gen->ncandidates),
	                         sizeof(double));
	gen->choice_off = calloc(gen->nregions, sizeof(size_t));
	gen->choice_first = calloc(gen->nregions, sizeof(uint32_t));
	gen->choice_n = calloc(gen->nregions, sizeof(uint32_t));
	if (gen->parties == NULL || gen->regions == NULL || gen->candidates == NULL ||
	    gen->contests == NULL || gen->region_cum == NULL || gen->choice_cum == NULL ||
	    gen->choice_off == NULL || gen->choice_first == NULL || gen->choice_n == NULL)
		goto nomem;

	build_parties(gen);
	if (build_regions(gen) != 0) {
		tally_errstr_set(errstr, errstr_size, "regions: could not make %u distinct region names",
		     gen->nregions);
		tally_gen_destroy(gen);
		return NULL;
	}
	if (gen->ncontests > 0)
		build_contests(gen);
	build_candidates(gen);
	build_choices(gen);

	for (size_t s = 0; s < NSLICES; s++)
		total += hour_weights[s];
	for (size_t s = 0; s < NSLICES; s++) {
		gen->slice_cum[s] = acc / total;
		acc += hour_weights[s];
	}
	gen->slice_cum[NSLICES] = 1.0;

	gen->eday = (int32_t)((opts->opens_at - ((opts->opens_at % 86400 + 86400) % 86400)) / 86400);
	tally_civil_from_days(gen->eday, &year, &month, &day);
	gen->b18 = years_before(year, month, day, 18);
	gen->b16 = years_before(year, month, day, 16);
	gen->b80 = years_before(year, month, day, 80);
	gen->b95 = years_before(year, month, day, 95);
	/* Someone born on 29 February turns 18 on a date the law does not fix; keep boundary
	 * cases away from the end of February. */
	gen->boundary_ok = !(month == 2 && day >= 28) && !(month == 3 && day == 1);

	if (opts->underage > 0) {
		double u = (double)opts->voters * opts->underage + 0.5;

		gen->underage = (uint64_t)u;
		if (gen->underage == 0)
			gen->underage = 1;
		if (gen->underage > opts->voters)
			gen->underage = opts->voters;
	}
	perm_init(&gen->walk, opts->voters, opts->seed, TAG_WALK);
	perm_init(&gen->age, opts->voters, opts->seed, TAG_AGE);

	for (uint64_t i = 0; i < opts->voters; i++)
		gen->regions[region_of(gen, i)].registered++;
	return gen;

nomem:
	tally_errstr_set(errstr, errstr_size, "out of memory");
	tally_gen_destroy(gen);
	return NULL;
}

void
tally_gen_destroy(tally_gen_t *gen)
{
	if (gen == NULL)
		return;
	free(gen->parties);
	free(gen->regions);
	free(gen->candidates);
	free(gen->region_cum);
	free(gen->choice_cum);
	free(gen->choice_off);
	free(gen->choice_first);
	free(gen->choice_n);
	free(gen->contests);
	free(gen);
}

const tally_gen_opts_t *
tally_gen_get_opts(const tally_gen_t *gen)
{
	return &gen->opts;
}

int32_t
tally_gen_election_day(const tally_gen_t *gen)
{
	return gen->eday;
}

uint32_t
tally_gen_party_count(const tally_gen_t *gen)
{
	return gen->nparties;
}

const char *
tally_gen_party_name(const tally_gen_t *gen, uint32_t idx)
{
	return idx < gen->nparties ? gen->parties[idx].name : NULL;
}

uint32_t
tally_gen_region_count(const tally_gen_t *gen)
{
	return gen->nregions;
}

const char *
tally_gen_region_name(const tally_gen_t *gen, uint32_t idx)
{
	return idx < gen->nregions ? gen->regions[idx].name : NULL;
}

uint64_t
tally_gen_region_registered(const tally_gen_t *gen, uint32_t idx)
{
	return idx < gen->nregions ? gen->regions[idx].registered : 0;
}

uint32_t
tally_gen_candidate_count(const tally_gen_t *gen)
{
	return gen->ncandidates;
}

bool
tally_gen_candidate(const tally_gen_t *gen, uint32_t idx, tally_gen_candidate_t *out)
{
	const gen_candidate_t *c;

	if (idx >= gen->ncandidates)
		return false;
	c = &gen->candidates[idx];
	out->id = c->id;
	out->candidate_id = c->id_str;
	out->candidate_name = c->name;
	out->party_affiliation = gen->parties[c->party].name;
	out->party = c->party;
	out->gender = c->female ? "female" : "male";
	out->biography = c->biography;
	out->campaign_platform = c->platform;
	out->photo_url = c->photo_url;
	out->contest = c->contest;
	out->contest_id = c->contest >= 0 ? gen->contests[c->contest].id : NULL;
	return true;
}

uint32_t
tally_gen_contest_count(const tally_gen_t *gen)
{
	return gen->ncontests;
}

bool
tally_gen_contest(const tally_gen_t *gen, uint32_t idx, tally_gen_contest_t *out)
{
	const gen_contest_t *ct;

	if (idx >= gen->ncontests)
		return false;
	ct = &gen->contests[idx];
	out->contest_id = ct->id;
	out->contest_name = ct->name;
	out->first_candidate = ct->first;
	out->ncandidates = ct->n;
	out->nregions = ct->nregions;
	return true;
}

int32_t
tally_gen_region_contest(const tally_gen_t *gen, uint32_t region)
{
	return gen->ncontests == 0 || region >= gen->nregions ? -1
	                                                       : (int32_t)(region % gen->ncontests);
}

/* ---- voters ---------------------------------------------------------------------- */

static void
voter_id_of(const tally_gen_t *gen, uint64_t idx, tally_uuid_t *id)
{
	make_uuid(id, tally_mix3(gen->opts.seed, TAG_ID_HI, idx), tally_mix3(gen->opts.seed, TAG_ID_LO, idx));
}

static int32_t
days_between(rng_t *r, int32_t lo, int32_t hi)
{
	return lo + (int32_t)rng_below(r, (uint64_t)(hi - lo) + 1);
}

/*
 * Date of birth. Adults are born on or before b18 - 3, except one in 500 born on b18 itself
 * (18 on election day: eligible). Under-18 voters are 16 or 17 ("attainers", who may
 * register early), born on or after b18 + 3, except one in 16 born on b18 + 1 (18 the day
 * after: ineligible). The 2-day gaps keep every other case away from the boundary.
 */
static int32_t
dob_of(const tally_gen_t *gen, uint64_t idx, bool underage, rng_t *r)
{
	uint64_t u = rng_next(r);

	if (underage) {
		if (gen->boundary_ok && perm_fwd(&gen->age, idx) % 16 == 0)
			return gen->b18 + 1;
		return days_between(r, gen->b18 + 3, gen->b16);
	}
	if (gen->boundary_ok && u % 500 == 0)
		return gen->b18;
	if (tally_mix_u01(u) < 0.85)
		return days_between(r, gen->b80, gen->b18 - 3);
	return days_between(r, gen->b95, gen->b80 - 1);
}

/*
 * The first draws of voter idx's record, shared by the full record and the brief one:
 * date of birth, gender, name and registration number (randomuser's login.username).
 */
static int32_t
voter_head(const tally_gen_t *gen, uint64_t idx, bool underage, rng_t *r, bool *female,
           const char **first, const char **last, char *regno, size_t regno_size)
{
	int32_t dob = dob_of(gen, idx, underage, r);

	*female = (rng_next(r) & 1) != 0;
	*first = pick(r, *female ? &tally__gen_female_names : &tally__gen_male_names);
	*last = pick(r, &tally__gen_surnames);
	snprintf(regno, regno_size, "%s%s%u", pick(r, &tally__gen_user_adjectives),
	         pick(r, &tally__gen_user_animals), (unsigned)(100 + rng_below(r, 900)));
	return dob;
}

void
tally_gen_voter_brief(const tally_gen_t *gen, uint64_t idx, tally_gen_voter_brief_t *out)
{
	rng_t r = {tally_mix3(gen->opts.seed, TAG_VOTER, idx)};
	const char *first, *last;
	bool female;

	voter_id_of(gen, idx, &out->id);
	out->region = region_of(gen, idx);
	out->underage = idx < gen->opts.voters && is_underage(gen, idx);
	out->dob_days = voter_head(gen, idx, out->underage, &r, &female, &first, &last,
	                           out->registration_number, sizeof(out->registration_number));
}

static void
lower_letters(char *dst, size_t size, const char *src)
{
	size_t n = 0;

	for (; *src != '\0' && n + 1 < size; src++) {
		char c = *src;

		if (c >= 'A' && c <= 'Z')
			dst[n++] = (char)(c - 'A' + 'a');
		else if (c >= 'a' && c <= 'z')
			dst[n++] = c;
	}
	dst[n] = '\0';
}

/* Fills every field of voter idx; idx may be >= voters, for the made-up unknown voters. */
static void
voter_fill(const tally_gen_t *gen, uint64_t idx, tally_gen_voter_t *v)
{
	static const char inward[] = "ABDEFGHJLNPQRSTUWXYZ";
	rng_t r = {tally_mix3(gen->opts.seed, TAG_VOTER, idx)};
	const gen_region_t *reg;
	const tally__gen_county_t *county;
	const char *first, *last, *street_name, *area;
	size_t ntowns = 0, nareas = 0;
	int year, age;
	unsigned month, day;
	bool female;

	v->index = idx;
	voter_id_of(gen, idx, &v->id);
	tally_uuid_format(&v->id, v->voter_id);
	v->underage = idx < gen->opts.voters && is_underage(gen, idx);
	v->dob_days = voter_head(gen, idx, v->underage, &r, &female, &first, &last,
	                         v->registration_number, sizeof(v->registration_number));
	tally_civil_from_days(v->dob_days, &year, &month, &day);
	snprintf(v->date_of_birth, sizeof(v->date_of_birth), "%04d-%02u-%02u", year, month, day);
	v->gender = female ? "female" : "male";
	snprintf(v->voter_name, sizeof(v->voter_name), "%s %s", first, last);
	v->nationality = "GB";

	v->region = region_of(gen, idx);
	reg = &gen->regions[v->region];
	county = reg->county;
	v->state = reg->name;
	v->country = "United Kingdom";
	while (ntowns < 6 && county->towns[ntowns] != NULL)
		ntowns++;
	while (nareas < 6 && county->postcode_areas[nareas] != NULL)
		nareas++;
	v->city = county->towns[rng_below(&r, ntowns)];
	street_name = pick(&r, &tally__gen_street_names);
	if (strchr(street_name, ' ') != NULL)
		snprintf(v->street, sizeof(v->street), "%u %s", (unsigned)(1 + rng_below(&r, 9999)),
		         street_name);
	else
		snprintf(v->street, sizeof(v->street), "%u %s %s", (unsigned)(1 + rng_below(&r, 9999)),
		         street_name, pick(&r, &tally__gen_street_types));
	area = county->postcode_areas[rng_below(&r, nareas)];
	snprintf(v->postcode, sizeof(v->postcode), "%s%u %u%c%c", area,
	         (unsigned)(1 + rng_below(&r, strlen(area) == 1 ? 20 : 30)),
	         (unsigned)rng_below(&r, 10), inward[rng_below(&r, sizeof(inward) - 1)],
	         inward[rng_below(&r, sizeof(inward) - 1)]);

	{
		char f[32], l[32];

		lower_letters(f, sizeof(f), first);
		lower_letters(l, sizeof(l), last);
		snprintf(v->email, sizeof(v->email), "%s.%s@example.com", f, l);
	}
	/* Ofcom's ranges reserved for drama: no real number is ever generated. */
	snprintf(v->phone_number, sizeof(v->phone_number), "01632 960%03u",
	         (unsigned)rng_below(&r, 1000));
	snprintf(v->cell_number, sizeof(v->cell_number), "07700 900%03u",
	         (unsigned)rng_below(&r, 1000));
	snprintf(v->picture, sizeof(v->picture), "https://randomuser.me/api/portraits/%s/%u.jpg",
	         female ? "women" : "men", (unsigned)rng_below(&r, 100));
	age = (gen->eday - v->dob_days) / 365;
	age = age - 15 < 1 ? 1 : (age - 15 > 20 ? 20 : age - 15);
	v->registered_age = 1 + (int)rng_below(&r, (uint64_t)age);
}

void
tally_gen_voter(const tally_gen_t *gen, uint64_t idx, tally_gen_voter_t *out)
{
	voter_fill(gen, idx, out);
}

/* ---- JSON writing ---------------------------------------------------------------- */

/* A bounded writer with snprintf semantics: len counts everything, buf gets what fits. */
typedef struct jw {
	char *buf;
	size_t size;
	size_t len;
	const char *colon;  /* ": " (Python's json.dumps) or ":" (compact) */
	const char *comma;
} jw_t;

static void
jw_raw(jw_t *w, const char *s, size_t n)
{
	if (w->len < w->size) {
		size_t room = w->size - w->len;

		memcpy(w->buf + w->len, s, n < room ? n : room);
	}
	w->len += n;
}

static void
jw_cstr(jw_t *w, const char *s)
{
	jw_raw(w, s, strlen(s));
}

static void
jw_str(jw_t *w, const char *s)
{
	static const char hex[] = "0123456789abcdef";

	jw_raw(w, "\"", 1);
	while (*s != '\0') {
		const char *run = s;
		unsigned char c;

		/* Copy the run of characters that need no escape in one go. */
		while ((c = (unsigned char)*s) != '\0' && c >= 0x20 && c != '"' && c != '\\')
			s++;
		jw_raw(w, run, (size_t)(s - run));
		if (c == '\0')
			break;
		if (c == '"' || c == '\\') {
			char e[2] = {'\\', (char)c};

			jw_raw(w, e, 2);
		} else {
			char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};

			jw_raw(w, e, 6);
		}
		s++;
	}
	jw_raw(w, "\"", 1);
}

/* `"key": ` preceded by a comma unless first. */
static void
jw_key(jw_t *w, const char *key, bool first)
{
	if (!first)
		jw_cstr(w, w->comma);
	jw_str(w, key);
	jw_cstr(w, w->colon);
}

static void
jw_kv(jw_t *w, const char *key, const char *value, bool first)
{
	jw_key(w, key, first);
	jw_str(w, value);
}

static void
jw_ki(jw_t *w, const char *key, long long value, bool first)
{
	char num[24];

	jw_key(w, key, first);
	snprintf(num, sizeof(num), "%lld", value);
	jw_cstr(w, num);
}

static void
jw_finish(jw_t *w)
{
	if (w->size > 0)
		w->buf[w->len < w->size ? w->len : w->size - 1] = '\0';
}

static void
jw_init(jw_t *w, char *buf, size_t size, bool compact)
{
	w->buf = buf;
	w->size = size;
	w->len = 0;
	w->colon = compact ? ":" : ": ";
	w->comma = compact ? "," : ", ";
}

/* The first member: voter_id as text, or as a number when voter_id is NULL (a fault). */
static void
jw_voter_id(jw_t *w, const char *voter_id, long long numeric_id)
{
	if (voter_id != NULL)
		jw_kv(w, "voter_id", voter_id, true);
	else
		jw_ki(w, "voter_id", numeric_id, true);
}

/* A JSON string, or null for a NULL pointer (a NULL column of a stored row). */
static void
jw_kv_or_null(jw_t *w, const char *key, const char *value, bool first)
{
	if (value != NULL) {
		jw_kv(w, key, value, first);
	} else {
		jw_key(w, key, first);
		jw_cstr(w, "null");
	}
}

/* The voters_topic members, without braces. */
static void
jw_voter_members(jw_t *w, const tally_gen_voter_fields_t *v, const char *voter_id,
                 long long numeric_id)
{
	jw_voter_id(w, voter_id, numeric_id);
	jw_kv_or_null(w, "voter_name", v->voter_name, false);
	jw_kv_or_null(w, "date_of_birth", v->date_of_birth, false);
	jw_kv_or_null(w, "gender", v->gender, false);
	jw_kv_or_null(w, "nationality", v->nationality, false);
	jw_kv_or_null(w, "registration_number", v->registration_number, false);
	jw_key(w, "address", false);
	jw_cstr(w, "{");
	jw_kv_or_null(w, "street", v->street, true);
	jw_kv_or_null(w, "city", v->city, false);
	jw_kv_or_null(w, "state", v->state, false);
	jw_kv_or_null(w, "country", v->country, false);
	jw_kv_or_null(w, "postcode", v->postcode, false);
	jw_cstr(w, "}");
	jw_kv_or_null(w, "email", v->email, false);
	jw_kv_or_null(w, "phone_number", v->phone_number, false);
	jw_kv_or_null(w, "cell_number", v->cell_number, false);
	jw_kv_or_null(w, "picture", v->picture, false);
	if (v->registered_age != TALLY_GEN_NULL_INT) {
		jw_ki(w, "registered_age", v->registered_age, false);
	} else {
		jw_key(w, "registered_age", false);
		jw_cstr(w, "null");
	}
}

void
tally_gen_voter_fields(const tally_gen_voter_t *v, tally_gen_voter_fields_t *out)
{
	out->voter_id = v->voter_id;
	out->voter_name = v->voter_name;
	out->date_of_birth = v->date_of_birth;
	out->gender = v->gender;
	out->nationality = v->nationality;
	out->registration_number = v->registration_number;
	out->street = v->street;
	out->city = v->city;
	out->state = v->state;
	out->country = v->country;
	out->postcode = v->postcode;
	out->email = v->email;
	out->phone_number = v->phone_number;
	out->cell_number = v->cell_number;
	out->picture = v->picture;
	out->registered_age = v->registered_age;
}

size_t
tally_gen_voter_json(const tally_gen_t *gen, uint64_t idx, char *buf, size_t size)
{
	tally_gen_voter_t v;
	tally_gen_voter_fields_t f;
	jw_t w;

	voter_fill(gen, idx, &v);
	tally_gen_voter_fields(&v, &f);
	jw_init(&w, buf, size, false);
	jw_cstr(&w, "{");
	jw_voter_members(&w, &f, v.voter_id, 0);
	jw_cstr(&w, "}");
	jw_finish(&w);
	return w.len;
}

static void
jw_candidate_members(jw_t *w, const tally_gen_candidate_t *c, const char *candidate_id, bool first)
{
	if (candidate_id != NULL)
		jw_kv(w, "candidate_id", candidate_id, first);
	jw_kv_or_null(w, "candidate_name", c->candidate_name, first && candidate_id == NULL);
	jw_kv_or_null(w, "party_affiliation", c->party_affiliation, false);
	jw_kv_or_null(w, "biography", c->biography, false);
	jw_kv_or_null(w, "campaign_platform", c->campaign_platform, false);
	jw_kv_or_null(w, "photo_url", c->photo_url, false);
}

size_t
tally_gen_candidate_json(const tally_gen_t *gen, uint32_t idx, char *buf, size_t size)
{
	tally_gen_candidate_t c;
	jw_t w;

	if (!tally_gen_candidate(gen, idx, &c))
		return 0;
	jw_init(&w, buf, size, false);
	jw_cstr(&w, "{");
	jw_candidate_members(&w, &c, c.candidate_id, true);
	if (c.contest_id != NULL)
		jw_kv(&w, "contest_id", c.contest_id, false);
	jw_cstr(&w, "}");
	jw_finish(&w);
	return w.len;
}

/* ---- the vote stream ------------------------------------------------------------- */

const char *
tally_gen_malformed_name(int kind)
{
	static const char *const names[] = {
		"none",
#define TALLY__GEN_MAL_NAME(name, str) str,
		TALLY_GEN_MALFORMED_MAP(TALLY__GEN_MAL_NAME)
#undef TALLY__GEN_MAL_NAME
	};

	if (kind < 0 || kind >= TALLY_GEN_MALFORMED__COUNT)
		return "unknown";
	return names[kind];
}

#define RING_SIZE 4096u

/* A recently accepted vote: a duplicate is drawn from these. */
typedef struct ring_entry {
	uint64_t voter;
	uint32_t candidate;
} ring_entry_t;

struct tally_gen_stream {
	const tally_gen_t *gen;
	unsigned index, nstreams;
	uint64_t npos;              /* positions index, index + nstreams, ... below voters */
	uint64_t next;              /* next local position to walk */
	uint64_t *voted;            /* [npos] bits, by local position: has an accepted vote */
	rng_t rng;
	uint64_t emitted;
	bool finished;
	uint32_t ring_len, ring_head;
	ring_entry_t ring[RING_SIZE];
	uint64_t rejected[TALLY_REASON__COUNT];
	uint64_t *cand_region;      /* [ncandidates * nregions] accepted */
};

tally_gen_stream_t *
tally_gen_stream_new(const tally_gen_t *gen, unsigned index, unsigned nstreams)
{
	tally_gen_stream_t *st;

	if (gen == NULL || nstreams < 1 || nstreams > TALLY_GEN_MAX_STREAMS || index >= nstreams)
		return NULL;
	st = calloc(1, sizeof(*st));
	if (st == NULL)
		return NULL;
	st->gen = gen;
	st->index = index;
	st->nstreams = nstreams;
	st->npos = gen->opts.voters > index ? (gen->opts.voters - index + nstreams - 1) / nstreams : 0;
	st->voted = calloc(st->npos / 64 + 1, sizeof(uint64_t));
	st->cand_region = calloc((size_t)gen->ncandidates * gen->nregions, sizeof(uint64_t));
	st->rng.s = tally_mix3(gen->opts.seed, TAG_STREAM, ((uint64_t)nstreams << 32) | index);
	if (st->voted == NULL || st->cand_region == NULL) {
		tally_gen_stream_destroy(st);
		return NULL;
	}
	return st;
}

void
tally_gen_stream_destroy(tally_gen_stream_t *st)
{
	if (st == NULL)
		return;
	free(st->voted);
	free(st->cand_region);
	free(st);
}

uint64_t
tally_gen_stream_emitted(const tally_gen_stream_t *st)
{
	return st->emitted;
}

double
tally_gen_stream_progress(const tally_gen_stream_t *st)
{
	if (st->finished || st->npos == 0)
		return 1.0;
	return (double)st->next / (double)st->npos;
}

/* Voting time for a vote cast `progress` (0..1) of the way through the day. */
static int64_t
time_at(tally_gen_stream_t *st, double progress, bool jitter)
{
	const tally_gen_t *gen = st->gen;
	int64_t opens = gen->opts.opens_at, closes = gen->opts.closes_at;
	size_t s = 0;
	double within, t;
	int64_t secs;

	while (s + 1 < NSLICES && progress >= gen->slice_cum[s + 1])
		s++;
	within = (progress - gen->slice_cum[s]) / (gen->slice_cum[s + 1] - gen->slice_cum[s]);
	t = ((double)s + within) / (double)NSLICES * (double)(closes - opens);
	secs = opens + (int64_t)t;
	if (jitter) {
		/* Up to two minutes either way, less near the edges, so votes do not pile up
		 * on the first and last second. */
		int64_t room = secs - opens < closes - 1 - secs ? secs - opens : closes - 1 - secs;

		if (room > 120)
			room = 120;
		if (room > 0)
			secs += (int64_t)rng_below(&st->rng, (uint64_t)(2 * room + 1)) - room;
	}
	if (secs < opens)
		secs = opens;
	if (secs >= closes)
		secs = closes - 1;
	return secs;
}

/* What the message says, as the core will see it after decoding. */
typedef struct emitted {
	bool malformed;
	int64_t time;
	int64_t voter;              /* -1: not registered */
	int32_t candidate;          /* -1: not standing */
} emitted_t;

/*
 * The ground truth of one message: the core's checks in TALLY_REASON_MAP order, the first
 * that applies wins. Polls are never closed while the stream is counted. Only the voter's
 * owning stream can get past the ineligible check, so the voted bit it reads is its own.
 */
static int
judge(tally_gen_stream_t *st, const emitted_t *e)
{
	const tally_gen_t *gen = st->gen;
	uint64_t k, j;

	if (e->malformed)
		return TALLY_REASON_MALFORMED;
	if (e->time < gen->opts.opens_at)
		return TALLY_REASON_TOO_EARLY;
	if (e->time >= gen->opts.closes_at)
		return TALLY_REASON_TOO_LATE;
	if (e->voter < 0)
		return TALLY_REASON_UNKNOWN_VOTER;
	if (e->candidate < 0)
		return TALLY_REASON_UNKNOWN_CANDIDATE;
	if (is_underage(gen, (uint64_t)e->voter))
		return TALLY_REASON_INELIGIBLE;
	/* As the core: a candidate of another contest claims nothing. */
	if (gen->ncontests > 0 &&
	    gen->candidates[e->candidate].contest !=
	        (int32_t)(region_of(gen, (uint64_t)e->voter) % gen->ncontests))
		return TALLY_REASON_WRONG_CONTEST;
	k = perm_inv(&gen->walk, (uint64_t)e->voter);
	if (k % st->nstreams != st->index)
		abort(); /* a generator bug: another stream's voter could be counted */
	j = k / st->nstreams;
	if (st->voted[j / 64] & (1ull << (j % 64)))
		return TALLY_REASON_DUPLICATE;
	st->voted[j / 64] |= 1ull << (j % 64);
	return TALLY_REASON_ACCEPTED;
}

/* A candidate nobody registered, for unknown_candidate faults in the full shape. */
typedef struct fake_candidate {
	tally_gen_candidate_t c;
	char id_str[TALLY_UUID_STRLEN + 1];
	char name[64];
	char photo_url[64];
} fake_candidate_t;

static void
write_vote(rng_t *rng, bool compact, jw_t *w, const tally_gen_voter_fields_t *v,
           const char *voter_id, const tally_gen_candidate_t *c, const char *candidate_id,
           int64_t time, int mal)
{
	char when[32], bad_id[TALLY_UUID_STRLEN + 1];
	long long numeric_id = 0;

	tally_time_format(time, when);
	if (mal == TALLY_GEN_MALFORMED_BAD_TIME)
		memcpy(when + 11, "25", 2);
	if (mal == TALLY_GEN_MALFORMED_BAD_UUID) {
		/* Any position but the four dashes. */
		static const uint8_t hexpos[] = {0, 3, 7, 9, 12, 15, 17, 20, 22, 25, 30, 35};

		memcpy(bad_id, voter_id, sizeof(bad_id));
		bad_id[hexpos[rng_below(rng, sizeof(hexpos))]] = "gxz"[rng_below(rng, 3)];
		voter_id = bad_id;
	}
	if (mal == TALLY_GEN_MALFORMED_WRONG_TYPE) {
		numeric_id = (long long)(1 + rng_below(rng, 99999999));
		voter_id = NULL;
	}
	if (mal == TALLY_GEN_MALFORMED_NOT_OBJECT)
		jw_cstr(w, "[");
	jw_cstr(w, "{");
	if (compact) {
		jw_voter_id(w, voter_id, numeric_id);
		if (mal != TALLY_GEN_MALFORMED_MISSING)
			jw_kv(w, "candidate_id", candidate_id, false);
		jw_kv(w, "voting_time", when, false);
		if (mal == TALLY_GEN_MALFORMED_BAD_VOTE)
			jw_ki(w, "vote", 0, false);
	} else {
		jw_voter_members(w, v, voter_id, numeric_id);
		jw_candidate_members(w, c, mal == TALLY_GEN_MALFORMED_MISSING ? NULL : candidate_id,
		                     false);
		jw_kv(w, "voting_time", when, false);
		jw_ki(w, "vote", mal == TALLY_GEN_MALFORMED_BAD_VOTE ? 0 : 1, false);
	}
	if (mal == TALLY_GEN_MALFORMED_DUP_KEY)
		jw_kv(w, "voter_id", voter_id, false);
	if (mal == TALLY_GEN_MALFORMED_BAD_UTF8) {
		jw_key(w, "note", false);
		jw_cstr(w, "\"caf\xc3\x28\"");
	}
	if (mal == TALLY_GEN_MALFORMED_NUL_ESCAPE) {
		jw_key(w, "note", false);
		jw_cstr(w, "\"a\\u0000b\"");
	}
	jw_cstr(w, "}");
	if (mal == TALLY_GEN_MALFORMED_NOT_OBJECT)
		jw_cstr(w, "]");
}

/* Intended kinds of message, in the order their rates are drawn. */
enum {
	K_GENUINE = -1,
};

static int
draw_kind(tally_gen_stream_t *st)
{
	const tally_gen_opts_t *o = &st->gen->opts;
	const struct {
		double rate;
		int reason;
	} kinds[] = {
		{o->malformed_rate, TALLY_REASON_MALFORMED},
		{o->early_rate, TALLY_REASON_TOO_EARLY},
		{o->late_rate, TALLY_REASON_TOO_LATE},
		{o->unknown_voter_rate, TALLY_REASON_UNKNOWN_VOTER},
		{o->unknown_candidate_rate, TALLY_REASON_UNKNOWN_CANDIDATE},
		{o->ineligible_rate, TALLY_REASON_INELIGIBLE},
		{o->dup_rate, TALLY_REASON_DUPLICATE},
		{o->wrong_contest_rate, TALLY_REASON_WRONG_CONTEST},
	};
	double u = rng_double(&st->rng), acc = 0;

	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		acc += kinds[i].rate;
		if (u < acc)
			return kinds[i].reason;
	}
	return K_GENUINE;
}

/* Walk to the next voter of this stream who turns out; false when none is left. */
static bool
walk_next(tally_gen_stream_t *st, uint64_t *voter)
{
	const tally_gen_t *gen = st->gen;

	while (st->next < st->npos) {
		uint64_t k = st->next * st->nstreams + st->index;
		uint64_t v = perm_fwd(&gen->walk, k);

		st->next++;
		if (!is_underage(gen, v) && turns_out(gen, v, region_of(gen, v))) {
			*voter = v;
			return true;
		}
	}
	return false;
}

long
tally_gen_stream_next(tally_gen_stream_t *st, char *buf, size_t size, tally_gen_msg_t *msg)
{
	const tally_gen_t *gen = st->gen;
	const tally_gen_opts_t *o = &gen->opts;
	int kind, reason, mal = TALLY_GEN_MALFORMED_NONE;
	emitted_t e = {false, 0, -1, -1};
	tally_gen_voter_t v;
	tally_uuid_t voter_uuid;
	char voter_id[TALLY_UUID_STRLEN + 1];
	tally_gen_candidate_t cand;
	fake_candidate_t fake;
	const char *candidate_id;
	int32_t region = -1;
	double progress;
	jw_t w;

	if (st->finished || size < TALLY_GEN_MSG_MAX)
		return -1;
	kind = draw_kind(st);
	if (kind == TALLY_REASON_DUPLICATE && st->ring_len == 0)
		kind = K_GENUINE;

	progress = tally_gen_stream_progress(st);
	e.time = time_at(st, progress, true);
	switch (kind) {
	case K_GENUINE: {
		uint64_t voter;

		if (!walk_next(st, &voter)) {
			st->finished = true;
			return -1;
		}
		e.voter = (int64_t)voter;
		region = (int32_t)region_of(gen, voter);
		e.candidate = (int32_t)choice_of(gen, voter, (uint32_t)region);
		e.time = time_at(st, tally_gen_stream_progress(st), true);
		break;
	}
	case TALLY_REASON_DUPLICATE: {
		const ring_entry_t *r = &st->ring[rng_below(&st->rng, st->ring_len)];

		e.voter = (int64_t)r->voter;
		/* Half the repeat votes change their mind (within the voter's contest). */
		e.candidate = (int32_t)r->candidate;
		if ((rng_next(&st->rng) & 1) == 0) {
			uint32_t reg = region_of(gen, r->voter);

			e.candidate = (int32_t)(gen->choice_first[reg] +
			                        rng_below(&st->rng, gen->choice_n[reg]));
		}
		break;
	}
	case TALLY_REASON_WRONG_CONTEST: {
		/* A registered adult votes for a candidate of another constituency. */
		uint64_t voter;
		uint32_t mine, other;
		const gen_contest_t *ct;

		do
			voter = rng_below(&st->rng, o->voters);
		while (is_underage(gen, voter));
		mine = region_of(gen, voter) % gen->ncontests;
		other = (mine + 1 + (uint32_t)rng_below(&st->rng, gen->ncontests - 1)) %
		        gen->ncontests;
		ct = &gen->contests[other];
		e.voter = (int64_t)voter;
		e.candidate = (int32_t)(ct->first + rng_below(&st->rng, ct->n));
		break;
	}
	case TALLY_REASON_MALFORMED:
		mal = 1 + (int)rng_below(&st->rng, TALLY_GEN_MALFORMED__COUNT - 1);
		e.malformed = true;
		e.voter = (int64_t)rng_below(&st->rng, o->voters);
		e.candidate = (int32_t)rng_below(&st->rng, gen->ncandidates);
		break;
	case TALLY_REASON_TOO_EARLY:
		e.voter = (int64_t)rng_below(&st->rng, o->voters);
		e.candidate = (int32_t)rng_below(&st->rng, gen->ncandidates);
		/* One in ten exactly one second before the polls open. */
		e.time = o->opens_at - 1 -
		         (rng_below(&st->rng, 10) == 0 ? 0 : (int64_t)rng_below(&st->rng, 7200));
		break;
	case TALLY_REASON_TOO_LATE:
		e.voter = (int64_t)rng_below(&st->rng, o->voters);
		e.candidate = (int32_t)rng_below(&st->rng, gen->ncandidates);
		/* One in ten exactly when they close (closes_at is exclusive). */
		e.time = o->closes_at +
		         (rng_below(&st->rng, 10) == 0 ? 0 : (int64_t)rng_below(&st->rng, 7200));
		break;
	case TALLY_REASON_UNKNOWN_VOTER:
		e.voter = -1;
		e.candidate = (int32_t)rng_below(&st->rng, gen->ncandidates);
		break;
	case TALLY_REASON_UNKNOWN_CANDIDATE:
		e.voter = (int64_t)rng_below(&st->rng, o->voters);
		e.candidate = -1;
		break;
	case TALLY_REASON_INELIGIBLE: {
		uint64_t voter = perm_inv(&gen->age, rng_below(&st->rng, gen->underage));

		e.voter = (int64_t)voter;
		e.candidate = (int32_t)choice_of(gen, voter, region_of(gen, voter));
		break;
	}
	default:
		abort();
	}

	/* The voter's record: a registered one, or a made-up person with a random id. */
	if (e.voter >= 0) {
		region = (int32_t)region_of(gen, (uint64_t)e.voter);
		if (o->compact)
			voter_id_of(gen, (uint64_t)e.voter, &voter_uuid);
		else {
			voter_fill(gen, (uint64_t)e.voter, &v);
			voter_uuid = v.id;
		}
	} else {
		uint64_t hi = rng_next(&st->rng), lo = rng_next(&st->rng);

		if (!o->compact)
			voter_fill(gen, o->voters + rng_below(&st->rng, o->voters), &v);
		make_uuid(&voter_uuid, hi, lo);
		v.id = voter_uuid;
	}
	tally_uuid_format(&voter_uuid, voter_id);

	if (e.candidate >= 0) {
		tally_gen_candidate(gen, (uint32_t)e.candidate, &cand);
		candidate_id = cand.candidate_id;
	} else {
		tally_uuid_t id;
		uint64_t hi = rng_next(&st->rng), lo = rng_next(&st->rng);
		bool female = (rng_next(&st->rng) & 1) != 0;

		make_uuid(&id, hi, lo);
		tally_uuid_format(&id, fake.id_str);
		snprintf(fake.name, sizeof(fake.name), "%s %s",
		         pick(&st->rng, female ? &tally__gen_female_names : &tally__gen_male_names),
		         pick(&st->rng, &tally__gen_surnames));
		snprintf(fake.photo_url, sizeof(fake.photo_url),
		         "https://randomuser.me/api/portraits/%s/%u.jpg", female ? "women" : "men",
		         (unsigned)rng_below(&st->rng, 100));
		memset(&fake.c, 0, sizeof(fake.c));
		fake.c.id = id;
		fake.c.candidate_id = fake.id_str;
		fake.c.candidate_name = fake.name;
		fake.c.party_affiliation = gen->parties[rng_below(&st->rng, gen->nparties)].name;
		fake.c.biography = "Withdrew before nominations closed.";
		fake.c.campaign_platform = "";
		fake.c.photo_url = fake.photo_url;
		cand = fake.c;
		candidate_id = fake.id_str;
	}

	jw_init(&w, buf, size, o->compact);
	if (mal != TALLY_GEN_MALFORMED_EMPTY) {
		tally_gen_voter_fields_t f;

		/* A compact vote never reads the voter's other fields, which are then unset. */
		if (!o->compact)
			tally_gen_voter_fields(&v, &f);
		else
			memset(&f, 0, sizeof(f));
		write_vote(&st->rng, o->compact, &w, &f, voter_id, &cand, candidate_id, e.time, mal);
	}
	if (w.len >= size)
		abort(); /* TALLY_GEN_MSG_MAX is too small: a generator bug */
	if (mal == TALLY_GEN_MALFORMED_TRUNCATED)
		w.len = 1 + (size_t)rng_below(&st->rng, w.len - 1);
	else
		buf[w.len] = '\0';

	reason = judge(st, &e);
	if (reason == TALLY_REASON_ACCEPTED) {
		st->cand_region[(size_t)e.candidate * gen->nregions + (uint32_t)region]++;
		st->ring[st->ring_head] = (ring_entry_t){(uint64_t)e.voter, (uint32_t)e.candidate};
		st->ring_head = (st->ring_head + 1) % RING_SIZE;
		if (st->ring_len < RING_SIZE)
			st->ring_len++;
	} else {
		st->rejected[reason]++;
	}

	if (msg != NULL) {
		msg->seq = st->emitted;
		msg->intended = (uint8_t)(kind == K_GENUINE ? TALLY_REASON_ACCEPTED : kind);
		msg->reason = (uint8_t)reason;
		msg->malformed = (uint8_t)mal;
		msg->voter = e.voter;
		msg->candidate = e.candidate;
		msg->region = e.voter >= 0 ? region : -1;
		msg->voter_id = voter_uuid;
		msg->voting_time = e.time;
		msg->route = tally_uuid_hash(&voter_uuid);
	}
	st->emitted++;
	return (long)w.len;
}

/* ---- vote messages of any registry ------------------------------------------------ */

size_t
tally_gen_vote_json(const tally_gen_voter_fields_t *v, const tally_gen_candidate_t *c,
                    int64_t voting_time, int malformed, uint64_t noise, bool compact, char *buf,
                    size_t size)
{
	rng_t rng = {tally_mix64(noise ^ 0x5ca1ab1e0ddba11ull)};
	jw_t w;

	if (malformed < 0 || malformed >= TALLY_GEN_MALFORMED__COUNT)
		malformed = TALLY_GEN_MALFORMED_NONE;
	jw_init(&w, buf, size, compact);
	if (malformed != TALLY_GEN_MALFORMED_EMPTY)
		write_vote(&rng, compact, &w, v, v->voter_id, c, c->candidate_id, voting_time,
		           malformed);
	/* Too small: report the whole length so the caller can grow buf and call again (the
	 * same noise gives the same message). */
	if (w.len >= size)
		return w.len;
	if (malformed == TALLY_GEN_MALFORMED_TRUNCATED && w.len > 1)
		w.len = 1 + (size_t)rng_below(&rng, w.len - 1);
	jw_finish(&w);
	return w.len;
}

/* ---- ground truth ---------------------------------------------------------------- */

tally_gen_truth_t *
tally_gen_truth_new(const tally_gen_t *gen)
{
	tally_gen_truth_t *t = calloc(1, sizeof(*t));
	size_t cells = (size_t)gen->ncandidates * gen->nregions;

	if (t == NULL)
		return NULL;
	t->ncandidates = gen->ncandidates;
	t->nregions = gen->nregions;
	t->nparties = gen->nparties;
	t->candidates = calloc(gen->ncandidates, sizeof(uint64_t));
	t->regions = calloc(gen->nregions, sizeof(uint64_t));
	t->parties = calloc(gen->nparties, sizeof(uint64_t));
	t->cand_region = calloc(cells, sizeof(uint64_t));
	t->region_registered = calloc(gen->nregions, sizeof(uint64_t));
	if (t->candidates == NULL || t->regions == NULL || t->parties == NULL ||
	    t->cand_region == NULL || t->region_registered == NULL) {
		tally_gen_truth_destroy(t);
		return NULL;
	}
	for (uint32_t r = 0; r < gen->nregions; r++) {
		t->region_registered[r] = gen->regions[r].registered;
		t->registered += gen->regions[r].registered;
	}
	return t;
}

void
tally_gen_truth_add(tally_gen_truth_t *t, const tally_gen_stream_t *st)
{
	const tally_gen_t *gen = st->gen;
	uint32_t nc = t->ncandidates, nr = t->nregions;

	for (size_t i = 0; i < (size_t)nc * nr; i++)
		t->cand_region[i] += st->cand_region[i];
	for (int i = 0; i < TALLY_REASON__COUNT; i++)
		t->rejected[i] += st->rejected[i];
	t->read += st->emitted;

	/* Every other figure follows from the cells, as in a core snapshot. */
	memset(t->candidates, 0, nc * sizeof(uint64_t));
	memset(t->regions, 0, nr * sizeof(uint64_t));
	memset(t->parties, 0, t->nparties * sizeof(uint64_t));
	t->accepted = 0;
	for (uint32_t c = 0; c < nc; c++) {
		for (uint32_t r = 0; r < nr; r++) {
			uint64_t n = t->cand_region[(size_t)c * nr + r];

			t->candidates[c] += n;
			t->regions[r] += n;
			t->parties[gen->candidates[c].party] += n;
			t->accepted += n;
		}
	}
	t->rejected_total = 0;
	for (int i = 0; i < TALLY_REASON__COUNT; i++)
		t->rejected_total += t->rejected[i];
}

void
tally_gen_truth_destroy(tally_gen_truth_t *t)
{
	if (t == NULL)
		return;
	free(t->candidates);
	free(t->regions);
	free(t->parties);
	free(t->cand_region);
	free(t->region_registered);
	free(t);
}

/*
 * The registry: parties, candidates, regions and voters.
 *
 * DESIGN: one registration writer at a time, any number of lock-free readers. Nothing is
 * ever moved or freed while the registry lives, so publication is the only concern:
 *  - parties, candidates, regions: fixed-capacity arrays; an entry is written in full, then
 *    its count is stored with release. Name lookups go through small open-addressing
 *    indexes of (index + 1) published with release.
 *  - voters: open-addressing tables with linear probing of 24-byte slots; a slot's meta word
 *    publishes it (see registry_int.h). A full table is never rehashed (that would move the
 *    "has voted" bits the vote path sets concurrently); a table twice the size of all
 *    before it is chained instead, and readers probe tables in order.
 *  - registration numbers: length-prefixed bytes in an append-only arena of 1 MiB chunks.
 * Tables are mmap'd (zeroed, lazily backed) and advised to use transparent huge pages:
 * the vote path's probes are random over hundreds of megabytes, where TLB misses dominate.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <tally/error.h>
#include <tally/registry.h>

#include <tally/atomic.h>
#include "registry_int.h"

#define DEFAULT_EXPECTED_VOTERS (1u << 20)
#define DEFAULT_MAX_PARTIES     64u
#define DEFAULT_MAX_CANDIDATES  256u
#define DEFAULT_MAX_REGIONS     1024u
#define DEFAULT_MAX_CONTESTS    1024u
#define MAX_CONTESTS            65535u
#define LEVEL_NAME_MAX          63u
#define MAX_LOAD_NUM            4u   /* tables fill to 4/5 */
#define MAX_LOAD_DEN            5u
#define ARENA_CHUNK_BITS        20
#define ARENA_CHUNK_SIZE        (1u << ARENA_CHUNK_BITS)
#define ARENA_MAX_CHUNKS        4096u

struct candidate {
	tally_uuid_t id;
	char *name;
	char *photo_url;
	uint32_t party;
	uint32_t contest;
};

struct contest {
	char *name;
	uint32_t level;
	uint32_t *regions;                   /* NULL for contest 0 */
	uint32_t nregions;
};

/* An index from a key hash to (entry index + 1); 0 is empty. */
struct name_index {
	uint32_t *slots;
	uint32_t mask;
};

struct tally_registry {
	struct tally__registry_hot hot;      /* First: the vote path reads only this. */
	tally_registry_opts_t opts;

	char **parties;
	uint32_t nparties;
	struct name_index party_index;

	struct candidate *candidates;
	uint32_t ncandidates;
	struct name_index candidate_index;

	char **regions;
	uint64_t *region_voters;
	uint32_t nregions;
	struct name_index region_index;

	struct contest *contests;
	char **contest_ids;                  /* [i]: contest i's id, for the index */
	uint32_t ncontests;
	struct name_index contest_index;
	char *levels[TALLY_LEVELS_MAX];
	uint32_t nlevels;
	uint64_t ncells;

	uint64_t nvoters;
	uint64_t generation;

	char *arena[ARENA_MAX_CHUNKS];
	uint32_t arena_chunks;
	uint32_t arena_used;                 /* Bytes used in the last chunk. */
};

static uint64_t
str_hash(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	for (; *s != '\0'; s++)
		h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
	return h ^ (h >> 29);
}

static uint64_t
uuid_index_hash(const tally_uuid_t *id)
{
	return tally_uuid_hash(id);
}

static int
name_index_init(struct name_index *ix, uint32_t capacity)
{
	uint32_t n = 16;

	while (n < capacity * 2)
		n <<= 1;
	ix->slots = calloc(n, sizeof(uint32_t));
	ix->mask = n - 1;
	return ix->slots == NULL ? TALLY_ENOMEM : 0;
}

/* Writer: publish entry idx under hash h. The entry must be complete already. */
static void
name_index_put(struct name_index *ix, uint64_t h, uint32_t idx)
{
	uint32_t i = (uint32_t)h & ix->mask;

	while (ix->slots[i] != 0)
		i = (i + 1) & ix->mask;
	tally_store_release(&ix->slots[i], idx + 1);
}

/* Reader: index of the entry named `name` in names[], or -1. */
static int32_t
name_index_find(const struct name_index *ix, char *const *names, const char *name)
{
	uint32_t i = (uint32_t)str_hash(name) & ix->mask;
	uint32_t v;

	while ((v = tally_load_acquire(&ix->slots[i])) != 0) {
		if (strcmp(names[v - 1], name) == 0)
			return (int32_t)(v - 1);
		i = (i + 1) & ix->mask;
	}
	return -1;
}

static bool
valid_text(const char *s, size_t max)
{
	return s != NULL && s[0] != '\0' && strnlen(s, max + 1) <= max;
}

uint32_t
tally__registry_dob16(int32_t days_since_1970)
{
	return (uint32_t)(days_since_1970 + TALLY__DOB_EPOCH_OFFSET);
}

const struct tally__registry_hot *
tally__registry_hot(const tally_registry_t *reg)
{
	return &reg->hot;
}

static void *
map_zeroed(size_t bytes)
{
	void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return NULL;
#ifdef MADV_HUGEPAGE
	if (bytes >= (2u << 20))
		(void)madvise(p, bytes, MADV_HUGEPAGE);
#endif
	return p;
}

/* Writer: add a voter table able to hold `voters` at the maximum load. */
static int
vtable_add(tally_registry_t *reg, uint64_t voters)
{
	uint32_t n = reg->hot.ntables;
	tally__vtable_t *t;

	if (n == TALLY__MAX_VTABLES)
		return TALLY_EFULL;
	if (voters < 1024)
		voters = 1024;
	t = &reg->hot.tables[n];
	t->nslots = voters * MAX_LOAD_DEN / MAX_LOAD_NUM + 1;
	t->limit = voters;
	t->count = 0;
	t->bytes = t->nslots * sizeof(tally__vslot_t);
	t->slots = map_zeroed(t->bytes);
	if (t->slots == NULL)
		return TALLY_ENOMEM;
	if (reg->hot.nstores > 1 && (t->lvoted = map_zeroed(t->nslots)) == NULL) {
		munmap(t->slots, t->bytes);
		t->slots = NULL;
		return TALLY_ENOMEM;
	}
	tally_store_release(&reg->hot.ntables, n + 1);
	return 0;
}

tally_registry_t *
tally_registry_new(const tally_registry_opts_t *opts, char *errstr, size_t errstr_size)
{
	tally_registry_t *reg = calloc(1, sizeof(*reg));
	tally_registry_opts_t o = {0};

	if (opts != NULL)
		o = *opts;
	if (o.expected_voters == 0)
		o.expected_voters = DEFAULT_EXPECTED_VOTERS;
	if (o.max_parties == 0)
		o.max_parties = DEFAULT_MAX_PARTIES;
	if (o.max_candidates == 0)
		o.max_candidates = DEFAULT_MAX_CANDIDATES;
	if (o.max_regions == 0)
		o.max_regions = DEFAULT_MAX_REGIONS;
	if (o.max_contests == 0)
		o.max_contests = DEFAULT_MAX_CONTESTS;
	if (o.max_cells == 0)
		o.max_cells = (uint64_t)o.max_candidates * o.max_regions;
	if (reg == NULL) {
		snprintf(errstr, errstr_size, "could not allocate the registry: out of memory");
		return NULL;
	}
	if (o.max_regions > TALLY__MAX_REGIONS) {
		snprintf(errstr, errstr_size, "max_regions %u is above the limit of %u",
		         o.max_regions, TALLY__MAX_REGIONS);
		free(reg);
		return NULL;
	}
	if (o.max_contests > MAX_CONTESTS) {
		snprintf(errstr, errstr_size, "max_contests %u is above the limit of %u",
		         o.max_contests, MAX_CONTESTS);
		free(reg);
		return NULL;
	}
	reg->opts = o;
	reg->parties = calloc(o.max_parties, sizeof(char *));
	reg->candidates = calloc(o.max_candidates, sizeof(struct candidate));
	reg->regions = calloc(o.max_regions, sizeof(char *));
	reg->region_voters = calloc(o.max_regions, sizeof(uint64_t));
	reg->hot.cands = aligned_alloc(32, (size_t)o.max_candidates * sizeof(tally__cand_hot_t));
	if (reg->hot.cands != NULL)
		memset(reg->hot.cands, 0, (size_t)o.max_candidates * sizeof(tally__cand_hot_t));
	reg->contests = calloc(o.max_contests, sizeof(struct contest));
	reg->contest_ids = calloc(o.max_contests, sizeof(char *));
	if (reg->contests != NULL && reg->contest_ids != NULL) {
		/* Contest 0, level 0: the election's own, of every region. */
		reg->contest_ids[0] = strdup(TALLY_NATIONAL);
		reg->contests[0].name = strdup("National");
		reg->levels[0] = strdup(TALLY_NATIONAL);
		reg->ncontests = 1;
		reg->nlevels = 1;
	}
	memset(reg->hot.level_store, TALLY__NO_STORE, sizeof(reg->hot.level_store));
	if (reg->parties == NULL || reg->candidates == NULL || reg->regions == NULL ||
	    reg->region_voters == NULL || reg->hot.cands == NULL || reg->contests == NULL ||
	    reg->contest_ids == NULL || reg->contest_ids[0] == NULL ||
	    reg->contests[0].name == NULL || reg->levels[0] == NULL ||
	    name_index_init(&reg->contest_index, o.max_contests) ||
	    name_index_init(&reg->party_index, o.max_parties) ||
	    name_index_init(&reg->candidate_index, o.max_candidates) ||
	    name_index_init(&reg->region_index, o.max_regions) ||
	    vtable_add(reg, o.expected_voters) != 0) {
		snprintf(errstr, errstr_size, "could not allocate the registry for %zu voters: %s",
		         o.expected_voters, strerror(errno ? errno : ENOMEM));
		tally_registry_destroy(reg);
		return NULL;
	}
	name_index_put(&reg->contest_index, str_hash(TALLY_NATIONAL), 0);
	reg->hot.cand_slots = reg->candidate_index.slots;
	reg->hot.cand_mask = reg->candidate_index.mask;
	return reg;
}

void
tally_registry_destroy(tally_registry_t *reg)
{
	if (reg == NULL)
		return;
	for (uint32_t i = 0; i < reg->nparties; i++)
		free(reg->parties[i]);
	for (uint32_t i = 0; i < reg->ncandidates; i++) {
		free(reg->candidates[i].name);
		free(reg->candidates[i].photo_url);
	}
	for (uint32_t i = 0; i < reg->nregions; i++)
		free(reg->regions[i]);
	for (uint32_t i = 0; reg->contests != NULL && i < reg->ncontests; i++) {
		free(reg->contests[i].name);
		free(reg->contests[i].regions);
		free(reg->contest_ids[i]);
	}
	for (uint32_t i = 0; i < TALLY_LEVELS_MAX; i++) {
		free(reg->levels[i]);
		free(reg->hot.places[i]);
	}
	free(reg->contests);
	free(reg->contest_ids);
	free(reg->contest_index.slots);
	free(reg->hot.cands);
	free(reg->parties);
	free(reg->candidates);
	free(reg->regions);
	free(reg->region_voters);
	free(reg->party_index.slots);
	free(reg->candidate_index.slots);
	free(reg->region_index.slots);
	for (uint32_t t = 0; t < reg->hot.ntables; t++) {
		munmap(reg->hot.tables[t].slots, reg->hot.tables[t].bytes);
		if (reg->hot.tables[t].lvoted != NULL)
			munmap(reg->hot.tables[t].lvoted, reg->hot.tables[t].nslots);
	}
	for (uint32_t c = 0; c < reg->arena_chunks; c++)
		free(reg->arena[c]);
	free(reg);
}

static void
bump_generation(tally_registry_t *reg)
{
	tally_add_acq_rel(&reg->generation, 1);
}

/* ---- parties ----------------------------------------------------------------------- */

int32_t
tally_registry_party_find(const tally_registry_t *reg, const char *name)
{
	return name_index_find(&reg->party_index, reg->parties, name);
}

tally_refusal_t
tally_registry_add_party(tally_registry_t *reg, const char *name, uint32_t *idx)
{
	uint32_t n = reg->nparties;

	if (!valid_text(name, TALLY_NAME_MAX))
		return TALLY_REFUSAL_INVALID_NAME;
	if (tally_registry_party_find(reg, name) >= 0)
		return TALLY_REFUSAL_DUPLICATE_NAME;
	if (n == reg->opts.max_parties)
		return TALLY_REFUSAL_FULL;
	if ((reg->parties[n] = strdup(name)) == NULL)
		return TALLY_REFUSAL_FULL;
	tally_store_release(&reg->nparties, n + 1);
	name_index_put(&reg->party_index, str_hash(name), n);
	bump_generation(reg);
	if (idx != NULL)
		*idx = n;
	return TALLY_REFUSAL_NONE;
}

uint32_t
tally_registry_party_count(const tally_registry_t *reg)
{
	return tally_load_acquire(&reg->nparties);
}

const char *
tally_registry_party_name(const tally_registry_t *reg, uint32_t idx)
{
	return idx < tally_registry_party_count(reg) ? reg->parties[idx] : NULL;
}

/* ---- candidates -------------------------------------------------------------------- */

static int lvoted_add(tally_registry_t *reg);

int32_t
tally_registry_candidate_find(const tally_registry_t *reg, const tally_uuid_t *id)
{
	const struct name_index *ix = &reg->candidate_index;
	uint32_t i = (uint32_t)uuid_index_hash(id) & ix->mask;
	uint32_t v;

	while ((v = tally_load_acquire(&ix->slots[i])) != 0) {
		if (tally_uuid_equal(&reg->candidates[v - 1].id, id))
			return (int32_t)(v - 1);
		i = (i + 1) & ix->mask;
	}
	return -1;
}

tally_refusal_t
tally_registry_add_candidate(tally_registry_t *reg, const tally_candidate_reg_t *c, uint32_t *idx)
{
	uint32_t n = reg->ncandidates;
	struct candidate *cand;
	int32_t party, contest = 0;
	uint32_t level, span;

	if (tally_uuid_is_nil(&c->id))
		return TALLY_REFUSAL_INVALID_ID;
	if (!valid_text(c->name, TALLY_NAME_MAX))
		return TALLY_REFUSAL_INVALID_NAME;
	if (c->photo_url != NULL && strnlen(c->photo_url, TALLY_URL_MAX + 1) > TALLY_URL_MAX)
		return TALLY_REFUSAL_INVALID_FIELD;
	if (tally_registry_candidate_find(reg, &c->id) >= 0)
		return TALLY_REFUSAL_DUPLICATE_ID;
	if (c->party == NULL || (party = tally_registry_party_find(reg, c->party)) < 0)
		return TALLY_REFUSAL_UNKNOWN_PARTY;
	if (c->contest != NULL && c->contest[0] != '\0' &&
	    (contest = tally_registry_contest_find(reg, c->contest)) < 0)
		return TALLY_REFUSAL_UNKNOWN_CONTEST;
	/* One candidate per party in a contest (not in contest 0: the original's one
	 * national race has several per party). */
	for (uint32_t i = 0; contest > 0 && i < n; i++)
		if (reg->candidates[i].contest == (uint32_t)contest &&
		    reg->candidates[i].party == (uint32_t)party)
			return TALLY_REFUSAL_PARTY_STANDS;
	level = reg->contests[contest].level;
	span = contest == 0 ? reg->opts.max_regions : reg->contests[contest].nregions;
	if (n == reg->opts.max_candidates || reg->ncells + span > reg->opts.max_cells)
		return TALLY_REFUSAL_FULL;
	/* The level's first candidate gives it a store (see registry_int.h). */
	if (reg->hot.level_store[level] == TALLY__NO_STORE) {
		uint32_t st = reg->hot.nstores;

		if (st == 1 && lvoted_add(reg) != 0)
			return TALLY_REFUSAL_FULL;
		reg->hot.nstores = st + 1;
		tally_store_release(&reg->hot.level_store[level], (uint8_t)st);
	}
	cand = &reg->candidates[n];
	cand->id = c->id;
	cand->party = (uint32_t)party;
	cand->contest = (uint32_t)contest;
	cand->name = strdup(c->name);
	cand->photo_url = strdup(c->photo_url != NULL ? c->photo_url : "");
	if (cand->name == NULL || cand->photo_url == NULL) {
		free(cand->name);
		free(cand->photo_url);
		memset(cand, 0, sizeof(*cand));
		return TALLY_REFUSAL_FULL;
	}
	reg->hot.cands[n].hi = c->id.hi;
	reg->hot.cands[n].lo = c->id.lo;
	reg->hot.cands[n].cell = reg->ncells;
	reg->hot.cands[n].contest = (uint32_t)contest;
	reg->hot.cands[n].level = (uint16_t)level;
	reg->hot.cands[n].store = reg->hot.level_store[level];
	tally_store_release(&reg->ncells, reg->ncells + span);
	tally_store_release(&reg->ncandidates, n + 1);
	name_index_put(&reg->candidate_index, uuid_index_hash(&c->id), n);
	bump_generation(reg);
	if (idx != NULL)
		*idx = n;
	return TALLY_REFUSAL_NONE;
}

uint32_t
tally_registry_candidate_count(const tally_registry_t *reg)
{
	return tally_load_acquire(&reg->ncandidates);
}

bool
tally_registry_candidate_get(const tally_registry_t *reg, uint32_t idx, tally_candidate_info_t *out)
{
	const struct candidate *c;

	if (idx >= tally_registry_candidate_count(reg))
		return false;
	c = &reg->candidates[idx];
	out->id = c->id;
	out->name = c->name;
	out->photo_url = c->photo_url;
	out->party = c->party;
	out->contest = c->contest;
	return true;
}

void
tally_registry_candidate_cells(const tally_registry_t *reg, uint32_t cand, uint64_t *first,
                               uint32_t *n)
{
	const tally__cand_hot_t *h = &reg->hot.cands[cand];

	*first = h->cell;
	*n = h->contest == 0 ? reg->opts.max_regions : reg->contests[h->contest].nregions;
}

uint64_t
tally_registry_cell_count(const tally_registry_t *reg)
{
	return tally_load_acquire(&reg->ncells);
}

/* ---- contests and levels ------------------------------------------------------------ */

int32_t
tally_registry_contest_find(const tally_registry_t *reg, const char *id)
{
	return name_index_find(&reg->contest_index, reg->contest_ids, id);
}

uint32_t
tally_registry_contest_count(const tally_registry_t *reg)
{
	return tally_load_acquire(&reg->ncontests);
}

uint32_t
tally_registry_level_count(const tally_registry_t *reg)
{
	return tally_load_acquire(&reg->nlevels);
}

const char *
tally_registry_level_name(const tally_registry_t *reg, uint32_t idx)
{
	return idx < tally_registry_level_count(reg) ? reg->levels[idx] : NULL;
}

bool
tally_registry_contest_get(const tally_registry_t *reg, uint32_t idx, tally_contest_info_t *out)
{
	const struct contest *c;

	if (idx >= tally_registry_contest_count(reg))
		return false;
	c = &reg->contests[idx];
	out->id = reg->contest_ids[idx];
	out->name = c->name;
	out->level = c->level;
	out->regions = c->regions;
	out->nregions = c->nregions;
	return true;
}

int32_t
tally_registry_region_contest(const tally_registry_t *reg, uint32_t level, uint32_t region)
{
	tally__place_t p;

	if (level >= tally_registry_level_count(reg) || region >= reg->opts.max_regions)
		return -1;
	if (level == 0)
		return 0;
	p = tally_load_relaxed(&reg->hot.places[level][region]);
	return p == 0 ? -1 : (int32_t)TALLY__PLACE_CONTEST1(p) - 1;
}

/* Writer: the second store gives every voter table its byte of store bits. */
static int
lvoted_add(tally_registry_t *reg)
{
	for (uint32_t t = 0; t < reg->hot.ntables; t++) {
		tally__vtable_t *vt = &reg->hot.tables[t];
		uint8_t *lv;

		if (vt->lvoted != NULL)
			continue;
		if ((lv = map_zeroed(vt->nslots)) == NULL)
			return TALLY_ENOMEM;
		tally_store_release(&vt->lvoted, lv);
	}
	return 0;
}

/* Writer: the level named `name`, added if new; -1 when it cannot be. */
static int32_t
level_get(tally_registry_t *reg, const char *name)
{
	uint32_t n = reg->nlevels;

	for (uint32_t i = 0; i < n; i++)
		if (strcmp(reg->levels[i], name) == 0)
			return i == 0 ? -1 : (int32_t)i;   /* level 0 takes no contests */
	if (n == TALLY_LEVELS_MAX)
		return -1;
	if ((reg->hot.places[n] = calloc(reg->opts.max_regions, sizeof(tally__place_t))) == NULL)
		return -1;
	if ((reg->levels[n] = strdup(name)) == NULL) {
		free(reg->hot.places[n]);
		reg->hot.places[n] = NULL;
		return -1;
	}
	tally_store_release(&reg->nlevels, n + 1);
	bump_generation(reg);
	return (int32_t)n;
}

tally_refusal_t
tally_registry_add_contest(tally_registry_t *reg, const tally_contest_reg_t *c, uint32_t *idx)
{
	uint32_t k = reg->ncontests, *regions;
	tally__place_t *places;
	tally_refusal_t r;
	int32_t level;
	char *id, *name;

	if (!valid_text(c->id, TALLY_CONTEST_ID_MAX))
		return TALLY_REFUSAL_INVALID_ID;
	if (tally_registry_contest_find(reg, c->id) >= 0)
		return TALLY_REFUSAL_DUPLICATE_ID;
	if (!valid_text(c->name, TALLY_NAME_MAX))
		return TALLY_REFUSAL_INVALID_NAME;
	if (!valid_text(c->level, LEVEL_NAME_MAX))
		return TALLY_REFUSAL_INVALID_LEVEL;
	if (c->nregions == 0 || c->regions == NULL || c->nregions > reg->opts.max_regions)
		return TALLY_REFUSAL_INVALID_REGION;
	if (k == reg->opts.max_contests)
		return TALLY_REFUSAL_FULL;
	if ((regions = malloc(c->nregions * sizeof(uint32_t))) == NULL)
		return TALLY_REFUSAL_FULL;
	/* Its regions (new ones are added), each once. */
	for (uint32_t i = 0; i < c->nregions; i++) {
		if ((r = tally_registry_add_region(reg, c->regions[i], &regions[i])) !=
		    TALLY_REFUSAL_NONE) {
			free(regions);
			return r;
		}
		for (uint32_t j = 0; j < i; j++)
			if (regions[j] == regions[i]) {
				free(regions);
				return TALLY_REFUSAL_INVALID_REGION;
			}
	}
	/* Its level: a region in no other contest of it. */
	for (uint32_t i = 1; i < reg->nlevels; i++)
		if (strcmp(reg->levels[i], c->level) == 0)
			for (uint32_t j = 0; j < c->nregions; j++)
				if (reg->hot.places[i][regions[j]] != 0) {
					free(regions);
					return TALLY_REFUSAL_REGION_TAKEN;
				}
	id = strdup(c->id);
	name = strdup(c->name);
	if (id == NULL || name == NULL || (level = level_get(reg, c->level)) < 0) {
		free(id);
		free(name);
		free(regions);
		return id == NULL || name == NULL ? TALLY_REFUSAL_FULL : TALLY_REFUSAL_INVALID_LEVEL;
	}
	places = reg->hot.places[level];
	for (uint32_t j = 0; j < c->nregions; j++)
		tally_store_relaxed(&places[regions[j]], TALLY__PLACE(k, j));
	reg->contests[k].name = name;
	reg->contests[k].level = (uint32_t)level;
	reg->contests[k].regions = regions;
	reg->contests[k].nregions = c->nregions;
	reg->contest_ids[k] = id;
	tally_store_release(&reg->ncontests, k + 1);
	name_index_put(&reg->contest_index, str_hash(id), k);
	bump_generation(reg);
	if (idx != NULL)
		*idx = k;
	return TALLY_REFUSAL_NONE;
}

/* ---- regions ----------------------------------------------------------------------- */

int32_t
tally_registry_region_find(const tally_registry_t *reg, const char *name)
{
	return name_index_find(&reg->region_index, reg->regions, name);
}

tally_refusal_t
tally_registry_add_region(tally_registry_t *reg, const char *name, uint32_t *idx)
{
	uint32_t n = reg->nregions;
	int32_t found;

	if (!valid_text(name, TALLY_NAME_MAX))
		return TALLY_REFUSAL_INVALID_REGION;
	if ((found = tally_registry_region_find(reg, name)) >= 0) {
		if (idx != NULL)
			*idx = (uint32_t)found;
		return TALLY_REFUSAL_NONE;
	}
	if (n == reg->opts.max_regions)
		return TALLY_REFUSAL_FULL;
	if ((reg->regions[n] = strdup(name)) == NULL)
		return TALLY_REFUSAL_FULL;
	tally_store_release(&reg->nregions, n + 1);
	name_index_put(&reg->region_index, str_hash(name), n);
	bump_generation(reg);
	if (idx != NULL)
		*idx = n;
	return TALLY_REFUSAL_NONE;
}

uint32_t
tally_registry_region_count(const tally_registry_t *reg)
{
	return tally_load_acquire(&reg->nregions);
}

const char *
tally_registry_region_name(const tally_registry_t *reg, uint32_t idx)
{
	return idx < tally_registry_region_count(reg) ? reg->regions[idx] : NULL;
}

uint64_t
tally_registry_region_voters(const tally_registry_t *reg, uint32_t idx)
{
	if (idx >= tally_registry_region_count(reg))
		return 0;
	return tally_load_relaxed(&reg->region_voters[idx]);
}

/* ---- voters ------------------------------------------------------------------------ */

/* Writer: copy a registration number into the arena; returns its offset, 0 on failure. */
static uint32_t
arena_put(tally_registry_t *reg, const char *s, size_t len)
{
	char *chunk;
	uint32_t off;

	if (reg->arena_chunks == 0 || reg->arena_used + len + 1 > ARENA_CHUNK_SIZE) {
		if (reg->arena_chunks == ARENA_MAX_CHUNKS)
			return 0;
		if ((reg->arena[reg->arena_chunks] = malloc(ARENA_CHUNK_SIZE)) == NULL)
			return 0;
		reg->arena_chunks++;
		reg->arena_used = 1;   /* Offset 0 means "none". */
	}
	chunk = reg->arena[reg->arena_chunks - 1];
	off = reg->arena_used;
	chunk[off] = (char)len;
	memcpy(chunk + off + 1, s, len);
	reg->arena_used += (uint32_t)len + 1;
	return ((reg->arena_chunks - 1) << ARENA_CHUNK_BITS) | off;
}

static const char *
arena_get(const tally_registry_t *reg, uint32_t ref, size_t *len)
{
	const char *p;

	if (ref == 0) {
		*len = 0;
		return "";
	}
	p = reg->arena[ref >> ARENA_CHUNK_BITS] + (ref & (ARENA_CHUNK_SIZE - 1));
	*len = (unsigned char)p[0];
	return p + 1;
}

void
tally_registry_prefetch_voter(const tally_registry_t *reg, const tally_uuid_t *id)
{
	tally__registry_prefetch(&reg->hot, tally_uuid_hash(id));
}

/*
 * Writer: store a validated voter whose id is not registered yet. The slot is found on the
 * newest table (chaining one when it is full); meta is stored last, with release, so a
 * reader that sees the slot sees all of it.
 */
static tally_refusal_t
voter_insert(tally_registry_t *reg, const tally_uuid_t *id, uint64_t h, uint32_t dob16,
             uint32_t region, const char *regno_s, size_t regno_len)
{
	uint32_t regno = 0;
	tally__vtable_t *t;
	tally__vslot_t *s;
	uint64_t i;

	t = &reg->hot.tables[reg->hot.ntables - 1];
	if (t->count == t->limit) {
		uint64_t total = 0;

		for (uint32_t k = 0; k < reg->hot.ntables; k++)
			total += reg->hot.tables[k].limit;
		if (vtable_add(reg, total) != 0)
			return TALLY_REFUSAL_FULL;
		t = &reg->hot.tables[reg->hot.ntables - 1];
	}
	if (regno_len > 0 && (regno = arena_put(reg, regno_s, regno_len)) == 0)
		return TALLY_REFUSAL_FULL;

	/* Workers may be setting voted bits in neighbouring slots: read meta atomically. */
	i = tally__vtable_home(h, t->nslots);
	while (tally_load_relaxed(&t->slots[i].meta) != 0)
		if (++i == t->nslots)
			i = 0;
	s = &t->slots[i];
	s->hi = id->hi;
	s->lo = id->lo;
	s->regno = regno;
	tally_store_release(&s->meta, TALLY__VMETA_PRESENT | (region << 16) | dob16);
	t->count++;
	tally_store_release(&reg->nvoters, reg->nvoters + 1);
	tally_add_relaxed(&reg->region_voters[region], 1);
	return TALLY_REFUSAL_NONE;
}

tally_refusal_t
tally_registry_add_voter(tally_registry_t *reg, const tally_voter_reg_t *v)
{
	uint64_t h = tally_uuid_hash(&v->id);
	int64_t dob16 = (int64_t)v->date_of_birth + TALLY__DOB_EPOCH_OFFSET;
	size_t regno_len = v->registration_number ? strlen(v->registration_number) : 0;
	uint32_t region;
	tally_refusal_t r;

	if (tally_uuid_is_nil(&v->id))
		return TALLY_REFUSAL_INVALID_ID;
	if (dob16 < 0 || dob16 > 0xffff)
		return TALLY_REFUSAL_INVALID_DOB;
	if (regno_len > TALLY_REGNO_MAX)
		return TALLY_REFUSAL_INVALID_FIELD;
	if (tally__registry_voter_slot(&reg->hot, &v->id, h) != NULL)
		return TALLY_REFUSAL_DUPLICATE_ID;
	if ((r = tally_registry_add_region(reg, v->region, &region)) != TALLY_REFUSAL_NONE)
		return r;
	if ((r = voter_insert(reg, &v->id, h, (uint32_t)dob16, region, v->registration_number,
	                      regno_len)) != TALLY_REFUSAL_NONE)
		return r;
	bump_generation(reg);
	return TALLY_REFUSAL_NONE;
}

/* ---- packed voters ------------------------------------------------------------------ */

static void
put_be64(unsigned char *p, uint64_t v)
{
	for (int k = 7; k >= 0; k--, v >>= 8)
		p[k] = (unsigned char)v;
}

static uint64_t
get_be64(const unsigned char *p)
{
	uint64_t v = 0;

	for (int k = 0; k < 8; k++)
		v = (v << 8) | p[k];
	return v;
}

size_t
tally_registry_voters_pack(const tally_registry_t *reg, tally_registry_cursor_t *cur, void *buf,
                           size_t cap, uint64_t *nvoters)
{
	uint32_t ntables = tally_load_acquire(&reg->hot.ntables);
	unsigned char *out = buf, *end = out + cap;
	uint64_t n = 0;

	for (; cur->table < ntables; cur->table++, cur->slot = 0) {
		const tally__vtable_t *vt = &reg->hot.tables[cur->table];

		for (; cur->slot < vt->nslots; cur->slot++) {
			const tally__vslot_t *s = &vt->slots[cur->slot];
			uint32_t meta = tally_load_acquire(&s->meta), region;
			const char *regno;
			size_t len;

			if (meta == 0)
				continue;
			regno = arena_get(reg, s->regno, &len);
			if ((size_t)(end - out) < TALLY_VOTER_PACKED_MIN + len)
				goto full;
			region = TALLY__VMETA_REGION(meta);
			put_be64(out, s->hi);
			put_be64(out + 8, s->lo);
			/* Never the voted bit: an image holds who may vote, not who did. */
			out[16] = (unsigned char)(TALLY__VMETA_DOB(meta) & 0xff);
			out[17] = (unsigned char)(TALLY__VMETA_DOB(meta) >> 8);
			out[18] = (unsigned char)(region & 0xff);
			out[19] = (unsigned char)(region >> 8);
			out[20] = (unsigned char)len;
			memcpy(out + 21, regno, len);
			out += TALLY_VOTER_PACKED_MIN + len;
			n++;
		}
	}
full:
	if (nvoters != NULL)
		*nvoters = n;
	return (size_t)(out - (unsigned char *)buf);
}

/* Records wait this many places while their slots are prefetched (see add_voters_packed). */
#define PACKED_WINDOW 16

int
tally_registry_add_voters_packed(tally_registry_t *reg, const void *buf, size_t len,
                                 const uint32_t *region_map, uint32_t nregions, uint64_t *added,
                                 char *errstr, size_t errstr_size)
{
	const unsigned char *p = buf, *end = p + len;
	const unsigned char *win[PACKED_WINDOW];
	uint64_t hashes[PACKED_WINDOW];
	unsigned head = 0, nwin = 0;
	uint64_t n = 0, rec = 0;
	uint32_t nreg = tally_registry_region_count(reg);
	int rc = 0;

	if (added != NULL)
		*added = 0;
	for (uint32_t k = 0; k < nregions; k++) {
		if (region_map[k] >= nreg) {
			snprintf(errstr, errstr_size, "could not add packed voters: region map entry %u "
			         "names region %u, and only %u are registered", k, region_map[k], nreg);
			return TALLY_EINVAL;
		}
	}
	/*
	 * A window of records whose home slots are being prefetched: the tables are far larger
	 * than the cache, so each insert would otherwise wait on memory. Every record is
	 * checked in full before anything of it is stored.
	 */
	for (;;) {
		const unsigned char *r;
		tally_uuid_t id;
		uint32_t dob16, region, regno_len;
		tally_refusal_t refusal;

		while (nwin < PACKED_WINDOW && p < end) {
			unsigned at = (head + nwin) % PACKED_WINDOW;

			if ((size_t)(end - p) < TALLY_VOTER_PACKED_MIN ||
			    (size_t)(end - p) < (size_t)TALLY_VOTER_PACKED_MIN + p[20]) {
				end = p;     /* cut short: reported when the window reaches it */
				break;
			}
			win[at] = p;
			id.hi = get_be64(p);
			id.lo = get_be64(p + 8);
			hashes[at] = tally_uuid_hash(&id);
			tally__registry_prefetch(&reg->hot, hashes[at]);
			p += TALLY_VOTER_PACKED_MIN + p[20];
			nwin++;
		}
		if (nwin == 0)
			break;
		r = win[head];
		rec++;
		id.hi = get_be64(r);
		id.lo = get_be64(r + 8);
		dob16 = (uint32_t)r[16] | (uint32_t)r[17] << 8;
		region = (uint32_t)r[18] | (uint32_t)r[19] << 8;
		regno_len = r[20];
		if (tally_uuid_is_nil(&id)) {
			refusal = TALLY_REFUSAL_INVALID_ID;
		} else if (regno_len > TALLY_REGNO_MAX) {
			refusal = TALLY_REFUSAL_INVALID_FIELD;
		} else if (region >= nregions) {
			snprintf(errstr, errstr_size, "could not add packed voter %llu: region %u is "
			         "not in the region table (%u regions)", (unsigned long long)rec, region,
			         nregions);
			rc = TALLY_EFORMAT;
			goto out;
		} else if (tally__registry_voter_slot(&reg->hot, &id, hashes[head]) != NULL) {
			refusal = TALLY_REFUSAL_DUPLICATE_ID;
		} else {
			refusal = voter_insert(reg, &id, hashes[head], dob16, region_map[region],
			                       (const char *)r + TALLY_VOTER_PACKED_MIN, regno_len);
		}
		if (refusal != TALLY_REFUSAL_NONE) {
			snprintf(errstr, errstr_size, "could not add packed voter %llu: %s",
			         (unsigned long long)rec, tally_refusal_name(refusal));
			rc = refusal == TALLY_REFUSAL_DUPLICATE_ID ? TALLY_EEXISTS
			   : refusal == TALLY_REFUSAL_FULL         ? TALLY_EFULL
			                                           : TALLY_EINVAL;
			goto out;
		}
		n++;
		head = (head + 1) % PACKED_WINDOW;
		nwin--;
	}
	if (end != (const unsigned char *)buf + len) {
		snprintf(errstr, errstr_size, "could not add packed voter %llu: the record is cut "
		         "short (%zu bytes left)", (unsigned long long)rec + 1,
		         (size_t)((const unsigned char *)buf + len - end));
		rc = TALLY_EFORMAT;
	}
out:
	if (n > 0)
		tally_add_acq_rel(&reg->generation, n);
	if (added != NULL)
		*added = n;
	return rc;
}

uint64_t
tally_registry_voter_count(const tally_registry_t *reg)
{
	return tally_load_acquire(&reg->nvoters);
}

bool
tally_registry_voter_get(const tally_registry_t *reg, const tally_uuid_t *id, tally_voter_info_t *out)
{
	const tally__vtable_t *t;
	tally__vslot_t *s = tally__registry_voter_slot_in(&reg->hot, id, tally_uuid_hash(id), &t);
	uint32_t meta;

	if (s == NULL)
		return false;
	meta = tally_load_acquire(&s->meta);
	out->id = *id;
	out->date_of_birth = (int32_t)TALLY__VMETA_DOB(meta) - TALLY__DOB_EPOCH_OFFSET;
	out->region = TALLY__VMETA_REGION(meta);
	{
		uint16_t stores = tally__vslot_voted(s, t);

		out->voted_levels = 0;
		for (uint32_t l = 0; l < TALLY_LEVELS_MAX; l++) {
			uint32_t st = tally__level_store(&reg->hot, l);

			if (st != TALLY__NO_STORE && (stores & (1u << st)))
				out->voted_levels |= (uint16_t)(1u << l);
		}
		out->voted = stores != 0;
	}
	out->registration_number = arena_get(reg, s->regno, &out->registration_number_len);
	return true;
}

void
tally__registry_voters_foreach(tally_registry_t *reg, tally__vslot_visit_fn fn, void *arg)
{
	uint32_t n = tally_load_acquire(&reg->hot.ntables);

	for (uint32_t t = 0; t < n; t++) {
		tally__vtable_t *vt = &reg->hot.tables[t];

		for (uint64_t i = 0; i < vt->nslots; i++)
			if (tally_load_acquire(&vt->slots[i].meta) != 0)
				fn(&vt->slots[i], vt, arg);
	}
}

void
tally__registry_clear_voted(tally_registry_t *reg)
{
	uint32_t n = tally_load_acquire(&reg->hot.ntables);

	for (uint32_t t = 0; t < n; t++) {
		tally__vtable_t *vt = &reg->hot.tables[t];
		uint8_t *lv = tally_load_acquire(&vt->lvoted);

		for (uint64_t i = 0; i < vt->nslots; i++) {
			if (tally_load_relaxed(&vt->slots[i].meta) & TALLY__VMETA_VOTED)
				__atomic_fetch_and(&vt->slots[i].meta, ~TALLY__VMETA_VOTED,
				                   __ATOMIC_ACQ_REL);
			if (lv != NULL && tally_load_relaxed(&lv[i]) != 0)
				tally_store_relaxed(&lv[i], 0);
		}
	}
}

uint64_t
tally_registry_generation(const tally_registry_t *reg)
{
	return tally_load_acquire(&reg->generation);
}

size_t
tally_registry_voter_bytes(const tally_registry_t *reg)
{
	size_t bytes = 0;

	for (uint32_t t = 0; t < reg->hot.ntables; t++)
		bytes += reg->hot.tables[t].bytes +
		         (reg->hot.tables[t].lvoted != NULL ? reg->hot.tables[t].nslots : 0);
	/* The arena's last chunk counts only as far as it is used: the rest is not touched. */
	if (reg->arena_chunks > 0)
		bytes += (size_t)(reg->arena_chunks - 1) * ARENA_CHUNK_SIZE + reg->arena_used;
	return bytes;
}

void
tally_registry_get_opts(const tally_registry_t *reg, tally_registry_opts_t *opts)
{
	*opts = reg->opts;
}

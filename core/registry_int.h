/*
 * The registry's insides that the vote path needs: the voter slot and the lookup, inline.
 * Private to core/.
 */
#ifndef TALLY_REGISTRY_INT_H
#define TALLY_REGISTRY_INT_H

#include <stdbool.h>
#include <stdint.h>

#include <tally/registry.h>

#include <tally/atomic.h>

/*
 * One voter: 24 bytes. meta is 0 while the slot is empty and is the field that publishes
 * the slot (store-release by the registration writer, load-acquire by readers).
 *   bit 31      present
 *   bit 30      has voted (set once, by fetch-or on the vote path)
 *   bits 16..29 region index (max 16384 regions)
 *   bits 0..15  date of birth, days since 1900-01-01 (1900-01-01 .. 2079-06-06)
 */
typedef struct tally__vslot {
	uint64_t hi;
	uint64_t lo;
	uint32_t regno;   /* Offset of the registration number in the string arena, 0 = none. */
	uint32_t meta;
} tally__vslot_t;

#define TALLY__VMETA_PRESENT   (1u << 31)
#define TALLY__VMETA_VOTED     (1u << 30)
#define TALLY__VMETA_REGION(m) (((m) >> 16) & 0x3fffu)
#define TALLY__VMETA_DOB(m)    ((m) & 0xffffu)
#define TALLY__DOB_EPOCH_OFFSET 25567  /* days from 1900-01-01 to 1970-01-01 */
#define TALLY__MAX_REGIONS     16384u
#define TALLY__MAX_VTABLES     24

typedef struct tally__vtable {
	tally__vslot_t *slots;
	/* Has-voted bits of vote stores 1..8, a byte per slot (bit s - 1: store s), beside
	 * slots; NULL until a second store is taken, then published with release before any
	 * candidate that uses it. Store 0 is the slot's own voted bit (see tally__cand_hot). */
	uint8_t *lvoted;
	uint64_t nslots;
	uint64_t count;      /* Writer only. */
	uint64_t limit;      /* Most voters before the next table is chained. */
	size_t bytes;
} tally__vtable_t;

/*
 * A candidate, as the vote path needs it: written before the candidate is published.
 *
 * Where a level's has-voted bits live (its store): the first level to get a candidate
 * takes store 0, the slot's own voted bit; any other, a bit of the slot's lvoted byte. So
 * an election of one level (a national race, or 650 constituencies and nothing else)
 * touches the voter's slot only, as before contests, and pays no byte per voter.
 */
typedef struct tally__cand_hot {
	uint64_t hi, lo;     /* its id: the vote path's lookup reads only this array */
	uint64_t cell;       /* its first counter cell */
	uint32_t contest;
	uint16_t level;
	uint16_t store;      /* its level's store */
} __attribute__((aligned(32))) tally__cand_hot_t;

#define TALLY__NO_STORE 0xffu

/* A region's place at a level above 0: (its contest + 1) << 16 | its position among the
 * contest's regions; 0 when in no contest of the level. Stored (relaxed) before the
 * contest is published, and so before any of its candidates. */
typedef uint32_t tally__place_t;
#define TALLY__PLACE(contest, pos) ((((uint32_t)(contest) + 1) << 16) | (uint32_t)(pos))
#define TALLY__PLACE_CONTEST1(p)   ((p) >> 16)
#define TALLY__PLACE_POS(p)        ((p) & 0xffffu)

/* The part of the registry the vote path reads; the rest is in registry.c. */
struct tally__registry_hot {
	tally__vtable_t tables[TALLY__MAX_VTABLES];
	uint32_t ntables;    /* Published with release after the table is ready. */
	tally__cand_hot_t *cands;                    /* [max_candidates] */
	const uint32_t *cand_slots;                  /* the candidates' id index: entry + 1 */
	uint32_t cand_mask;
	uint8_t level_store[TALLY_LEVELS_MAX];       /* TALLY__NO_STORE until it has a candidate */
	uint32_t nstores;
	tally__place_t *places[TALLY_LEVELS_MAX];    /* [level][max_regions]; [0] unused */
};

/* Slot index of hash h in a table of n slots (no power of two needed). */
static inline uint64_t
tally__vtable_home(uint64_t h, uint64_t n)
{
	return (uint64_t)(((unsigned __int128)h * n) >> 64);
}

static inline tally__vslot_t *
tally__vtable_find(const tally__vtable_t *t, const tally_uuid_t *id, uint64_t h)
{
	uint64_t i = tally__vtable_home(h, t->nslots);

	for (;;) {
		tally__vslot_t *s = &t->slots[i];
		uint32_t meta = tally_load_acquire(&s->meta);

		if (meta == 0)
			return NULL;
		if (s->hi == id->hi && s->lo == id->lo)
			return s;
		if (++i == t->nslots)
			i = 0;
	}
}

/* The registry's hot part, for the core. */
const struct tally__registry_hot *tally__registry_hot(const tally_registry_t *reg);

/* Find a voter's slot (lock-free, any thread); *table, if not NULL, gets its table. */
static inline tally__vslot_t *
tally__registry_voter_slot_in(const struct tally__registry_hot *hot, const tally_uuid_t *id,
                              uint64_t h, const tally__vtable_t **table)
{
	uint32_t n = tally_load_acquire(&hot->ntables);

	for (uint32_t t = 0; t < n; t++) {
		tally__vslot_t *s = tally__vtable_find(&hot->tables[t], id, h);

		if (s != NULL) {
			if (table != NULL)
				*table = &hot->tables[t];
			return s;
		}
	}
	return NULL;
}

static inline tally__vslot_t *
tally__registry_voter_slot(const struct tally__registry_hot *hot, const tally_uuid_t *id,
                           uint64_t h)
{
	return tally__registry_voter_slot_in(hot, id, h, NULL);
}

/*
 * Claim a voter's vote in a store (one atomic fetch-or, any thread): true if this call
 * claimed it, false if it was claimed before. Store > 0 needs the slot's table, whose
 * lvoted exists once that store does.
 */
static inline bool
tally__vslot_claim(tally__vslot_t *s, const tally__vtable_t *t, uint32_t store)
{
	uint8_t *lv, bit;

	if (store == 0)
		return (__atomic_fetch_or(&s->meta, TALLY__VMETA_VOTED, __ATOMIC_ACQ_REL) &
		        TALLY__VMETA_VOTED) == 0;
	lv = tally_load_acquire(&t->lvoted) + (s - t->slots);
	bit = (uint8_t)(1u << (store - 1));
	return (__atomic_fetch_or(lv, bit, __ATOMIC_ACQ_REL) & bit) == 0;
}

/* A voter's has-voted bits by store, bit s for store s. */
static inline uint16_t
tally__vslot_voted(const tally__vslot_t *s, const tally__vtable_t *t)
{
	uint8_t *lv = tally_load_acquire(&t->lvoted);
	uint16_t v = (tally_load_acquire(&s->meta) & TALLY__VMETA_VOTED) ? 1 : 0;

	if (lv != NULL)
		v |= (uint16_t)(tally_load_acquire(lv + (s - t->slots)) << 1);
	return v;
}

/* The store of a level, or TALLY__NO_STORE while it has no candidate (no one voted). */
static inline uint32_t
tally__level_store(const struct tally__registry_hot *hot, uint32_t level)
{
	return level < TALLY_LEVELS_MAX ? tally_load_acquire(&hot->level_store[level])
	                                : TALLY__NO_STORE;
}

/* Bring a voter's home slot towards the cache before it is needed. */
static inline void
tally__registry_prefetch(const struct tally__registry_hot *hot, uint64_t h)
{
	uint32_t n = tally_load_acquire(&hot->ntables);

	for (uint32_t t = 0; t < n && t < 2; t++) {
		const tally__vtable_t *vt = &hot->tables[t];
		const char *p = (const char *)&vt->slots[tally__vtable_home(h, vt->nslots)];

		__builtin_prefetch(p, 1, 3);
		__builtin_prefetch(p + sizeof(tally__vslot_t) - 1, 1, 3);
	}
}

/* A candidate's index by id (h = tally_uuid_hash(id)), or -1; lock-free, any thread.
 * Touches one index slot and one 32-byte entry when nothing collides. */
static inline int32_t
tally__cand_find(const struct tally__registry_hot *hot, const tally_uuid_t *id, uint64_t h)
{
	uint32_t i = (uint32_t)h & hot->cand_mask, v;

	while ((v = tally_load_acquire(&hot->cand_slots[i])) != 0) {
		const tally__cand_hot_t *c = &hot->cands[v - 1];

		if (c->hi == id->hi && c->lo == id->lo)
			return (int32_t)(v - 1);
		i = (i + 1) & hot->cand_mask;
	}
	return -1;
}

/* Prefetch a candidate lookup in two steps, a few votes apart: its index slot, then (the
 * slot in cache by then) its entry. */
static inline void
tally__cand_prefetch_slot(const struct tally__registry_hot *hot, uint64_t h)
{
	__builtin_prefetch(&hot->cand_slots[(uint32_t)h & hot->cand_mask], 0, 3);
}

static inline void
tally__cand_prefetch_entry(const struct tally__registry_hot *hot, uint64_t h)
{
	uint32_t v = tally_load_relaxed(&hot->cand_slots[(uint32_t)h & hot->cand_mask]);

	if (v != 0)
		__builtin_prefetch(&hot->cands[v - 1], 0, 3);
}

/* Date-of-birth cutoff: a voter may vote when dob16 <= cutoff. */
uint32_t tally__registry_dob16(int32_t days_since_1970);

/* Forget every has-voted bit, at every level (no worker counting). */
void tally__registry_clear_voted(tally_registry_t *reg);

/* Visit every voter slot (writer side, or with workers paused), with its table. */
typedef void (*tally__vslot_visit_fn)(tally__vslot_t *s, const tally__vtable_t *t, void *arg);
void tally__registry_voters_foreach(tally_registry_t *reg, tally__vslot_visit_fn fn, void *arg);

#endif /* TALLY_REGISTRY_INT_H */

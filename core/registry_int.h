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
	uint64_t nslots;
	uint64_t count;      /* Writer only. */
	uint64_t limit;      /* Most voters before the next table is chained. */
	size_t bytes;
} tally__vtable_t;

/* The part of the registry the vote path reads; the rest is in registry.c. */
struct tally__registry_hot {
	tally__vtable_t tables[TALLY__MAX_VTABLES];
	uint32_t ntables;    /* Published with release after the table is ready. */
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

/* Find a voter's slot (lock-free, any thread). */
static inline tally__vslot_t *
tally__registry_voter_slot(const struct tally__registry_hot *hot, const tally_uuid_t *id,
                           uint64_t h)
{
	uint32_t n = tally_load_acquire(&hot->ntables);

	for (uint32_t t = 0; t < n; t++) {
		tally__vslot_t *s = tally__vtable_find(&hot->tables[t], id, h);

		if (s != NULL)
			return s;
	}
	return NULL;
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

/* Date-of-birth cutoff: a voter may vote when dob16 <= cutoff. */
uint32_t tally__registry_dob16(int32_t days_since_1970);

/* Visit every voter slot (writer side, or with workers paused). */
typedef void (*tally__vslot_visit_fn)(tally__vslot_t *s, void *arg);
void tally__registry_voters_foreach(tally_registry_t *reg, tally__vslot_visit_fn fn, void *arg);

#endif /* TALLY_REGISTRY_INT_H */

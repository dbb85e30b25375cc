/**
 * @file registry.h
 * @brief Who may vote and who stands: parties, candidates, regions and voters.
 *
 * DESIGN: one registration writer at a time (the caller serialises add_* calls), any number
 * of lock-free readers, concurrently. Everything is append-only: an entry, once published,
 * never moves and is never freed before tally_registry_destroy(), so readers hold plain
 * pointers and indices. Parties, candidates and regions live in arrays sized at creation
 * (the max_* options) and are published by a release store of their count. Voters live in
 * open-addressing tables of 24-byte slots; when one fills, a larger one is chained after it
 * instead of rehashing, so a voter's slot (and its "has voted" bits) never moves.
 *
 * Contests: an election is one or more contests, each at a level. Level 0 is the
 * election's own ("national"): one contest, contest 0, of every region, present and
 * future; a candidate registered without a contest stands there, and an election with no
 * other contest counts exactly as one national race. Other levels (at most
 * TALLY_LEVELS_MAX - 1, e.g. "constituency") come with their contests: within a level the
 * contests partition the regions they name (a region in at most one contest per level),
 * each contest's regions are fixed when it is registered, and a party fields at most one
 * candidate per contest. A voter votes at most once per level. Each candidate has a run
 * of counter cells, one per region of its contest (contest 0: one per possible region),
 * so the counters are sized by what can be non-zero, not candidates * regions.
 */
#ifndef TALLY_REGISTRY_H
#define TALLY_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <tally/uuid.h>

typedef struct tally_registry tally_registry_t;

/** Why a registration was refused. */
#define TALLY_REFUSAL_MAP(XX)                                                  \
	XX(NONE,            "none")                                            \
	XX(DUPLICATE_ID,    "duplicate_id")      /* the id is already registered */ \
	XX(DUPLICATE_NAME,  "duplicate_name")    /* party name already registered */ \
	XX(UNKNOWN_PARTY,   "unknown_party")     /* candidate's party not registered */ \
	XX(INVALID_ID,      "invalid_id")        /* nil id */                        \
	XX(INVALID_NAME,    "invalid_name")      /* empty or too long name */        \
	XX(INVALID_DOB,     "invalid_dob")       /* date of birth out of range */    \
	XX(INVALID_REGION,  "invalid_region")    /* empty or too long region */      \
	XX(INVALID_FIELD,   "invalid_field")     /* another field too long */        \
	XX(FULL,            "full")              /* a max_* capacity is reached */ \
	XX(UNKNOWN_CONTEST, "unknown_contest")   /* candidate's contest not registered */ \
	XX(REGION_TAKEN,    "region_taken")      /* region in another contest of the level */ \
	XX(PARTY_STANDS,    "party_stands")      /* the party has a candidate in the contest */ \
	XX(INVALID_LEVEL,   "invalid_level")     /* empty, too long, or too many levels */

typedef enum tally_refusal {
#define TALLY__REFUSAL_ENUM(name, str) TALLY_REFUSAL_##name,
	TALLY_REFUSAL_MAP(TALLY__REFUSAL_ENUM)
#undef TALLY__REFUSAL_ENUM
	TALLY_REFUSAL__COUNT
} tally_refusal_t;

/** @brief Stable name of a refusal ("unknown_party"). */
const char *tally_refusal_name(int refusal);

/** Longest names accepted, in bytes. */
#define TALLY_NAME_MAX 255
#define TALLY_URL_MAX 2047
#define TALLY_REGNO_MAX 63

/** Capacities, fixed at creation. 0 picks the default given. */
typedef struct tally_registry_opts {
	size_t expected_voters;      /**< First voter table sized for this many (default 1 M). */
	uint32_t max_parties;        /**< default 64 */
	uint32_t max_candidates;     /**< default 256 */
	uint32_t max_regions;        /**< default 1024, at most 16384 */
	uint32_t max_contests;       /**< default 1024 (with contest 0), at most 65535 */
	/** Counter cells (a candidate takes one per region of its contest; in contest 0, one
	 *  per possible region: max_regions). Default max_candidates * max_regions, which
	 *  always suffices; counters are reserved, not touched, so the default costs address
	 *  space only. */
	uint64_t max_cells;
} tally_registry_opts_t;

/** Levels, with level 0 ("national", contest 0). */
#define TALLY_LEVELS_MAX 9
/** The level and contest every election has (id and level name). */
#define TALLY_NATIONAL "national"
#define TALLY_CONTEST_ID_MAX 63

/** A contest to register. Strings are copied. */
typedef struct tally_contest_reg {
	const char *id;              /**< Stable key, 1..63 bytes (e.g. "E14000530"). */
	const char *name;            /**< "Aldershot" */
	const char *level;           /**< "constituency"; new levels are added on first use. */
	const char *const *regions;  /**< Its regions' names (new ones are added). */
	uint32_t nregions;           /**< At least 1. */
} tally_contest_reg_t;

/** A registered contest, as readers see it. Pointers live as long as the registry. */
typedef struct tally_contest_info {
	const char *id;
	const char *name;
	uint32_t level;
	const uint32_t *regions;     /**< Region indices; NULL for contest 0 (every region). */
	uint32_t nregions;           /**< 0 for contest 0. */
} tally_contest_info_t;

/** A candidate to register. Strings are copied. */
typedef struct tally_candidate_reg {
	tally_uuid_t id;
	const char *name;
	const char *party;           /**< Must name a registered party. */
	const char *photo_url;       /**< May be NULL or empty. */
	const char *contest;         /**< Contest id; NULL or "" for contest 0 (national). */
} tally_candidate_reg_t;

/** A voter to register. Strings are copied. Only what the count needs is kept. */
typedef struct tally_voter_reg {
	tally_uuid_t id;
	int32_t date_of_birth;       /**< Days since 1970-01-01; 1900-01-01 .. 2079-06-05. */
	const char *region;          /**< address.state; new regions are added on first use. */
	const char *registration_number; /**< May be NULL or empty. */
} tally_voter_reg_t;

/** A registered candidate, as readers see it. Pointers live as long as the registry. */
typedef struct tally_candidate_info {
	tally_uuid_t id;
	const char *name;
	const char *photo_url;       /**< "" when none. */
	uint32_t party;              /**< Party index. */
	uint32_t contest;            /**< Contest index (0: national). */
} tally_candidate_info_t;

/** A registered voter, as readers see it (no personal data beyond what is kept). */
typedef struct tally_voter_info {
	tally_uuid_t id;
	int32_t date_of_birth;
	uint32_t region;
	bool voted;                  /**< Has voted (at some level). */
	uint16_t voted_levels;       /**< Bit L: has voted at level L. */
	const char *registration_number; /**< Points into the registry; "" when none. */
	size_t registration_number_len;
} tally_voter_info_t;

/**
 * @brief Create an empty registry.
 * @returns NULL on failure with the reason in errstr. Free with tally_registry_destroy().
 */
tally_registry_t *tally_registry_new(const tally_registry_opts_t *opts, char *errstr,
                                     size_t errstr_size);

/** @brief Free the registry. No reader may be using it. NULL is a no-op. */
void tally_registry_destroy(tally_registry_t *reg);

/* ---- writer side: one thread at a time ------------------------------------------- */

/**
 * @brief Register a party by name.
 * @param idx if not NULL, receives the party index.
 * @returns TALLY_REFUSAL_NONE or the reason it was refused.
 */
tally_refusal_t tally_registry_add_party(tally_registry_t *reg, const char *name, uint32_t *idx);

/** @brief Register a candidate; its party must be registered. */
tally_refusal_t tally_registry_add_candidate(tally_registry_t *reg, const tally_candidate_reg_t *c,
                                             uint32_t *idx);

/**
 * @brief Register a contest, and its level if new. Register contests before their
 * candidates.
 * @param idx if not NULL, receives the contest index (1, 2, ...).
 * @returns TALLY_REFUSAL_NONE, INVALID_ID (empty or overlong id), DUPLICATE_ID,
 *          INVALID_NAME, INVALID_LEVEL (empty, overlong, "national" or one level too
 *          many), INVALID_REGION (none, a bad name, or one named twice), REGION_TAKEN (in
 *          another contest of the level) or FULL. Nothing is registered on refusal but
 *          new regions it named.
 */
tally_refusal_t tally_registry_add_contest(tally_registry_t *reg, const tally_contest_reg_t *c,
                                           uint32_t *idx);

/** @brief Register a voter. Adds the region if it is new. */
tally_refusal_t tally_registry_add_voter(tally_registry_t *reg, const tally_voter_reg_t *v);

/**
 * @brief Start bringing the slots where id lives (or would go) towards the cache: call it
 * a few voters ahead of tally_registry_add_voter() or lookups when loading in bulk (the
 * tables are far larger than the cache, so each voter costs a memory round trip
 * otherwise). A hint only; any thread.
 */
void tally_registry_prefetch_voter(const tally_registry_t *reg, const tally_uuid_t *id);

/** @brief Index of a region by name, adding it if new. */
tally_refusal_t tally_registry_add_region(tally_registry_t *reg, const char *name, uint32_t *idx);

/* ---- packed voters: compact export and bulk import (registry images) ------------- */

/**
 * A packed voter record, as tally_registry_voters_pack() writes it and
 * tally_registry_add_voters_packed() reads it (a stable format: images stored by one
 * version are read by the next):
 *   bytes 0..15   id, the uuid's 16 bytes in order
 *   bytes 16..17  date of birth, little-endian, days since 1900-01-01
 *   bytes 18..19  region index, little-endian, into the region table saved with the records
 *                 (the registry's region names by index when the records were packed)
 *   byte  20      registration number length L (0 .. TALLY_REGNO_MAX)
 *   bytes 21..    the registration number's L bytes
 * The "has voted" bit is never packed.
 */
#define TALLY_VOTER_PACKED_MIN 21
#define TALLY_VOTER_PACKED_MAX (TALLY_VOTER_PACKED_MIN + TALLY_REGNO_MAX)

/** Where tally_registry_voters_pack() goes on; start at {0, 0}. */
typedef struct tally_registry_cursor {
	uint32_t table;
	uint64_t slot;
} tally_registry_cursor_t;

/**
 * @brief Pack the voters from *cur on into buf, in slot order, as many whole records as
 * fit, and advance *cur past them.
 *
 * A reader: any thread, lock-free, concurrently with the writer. A voter registered while
 * packing runs may or may not be included; every record written is a whole, published
 * voter. Region indices are the registry's: save tally_registry_region_name() for indices
 * 0 .. tally_registry_region_count() - 1 *after* the last call, so every index packed is
 * covered.
 * @param cap at least TALLY_VOTER_PACKED_MAX, or a long registration number never fits.
 * @param nvoters if not NULL, receives the number of records written.
 * @returns bytes written; 0 when every voter has been packed (or cap is too small for the
 *          next record, which cap >= TALLY_VOTER_PACKED_MAX rules out).
 */
size_t tally_registry_voters_pack(const tally_registry_t *reg, tally_registry_cursor_t *cur,
                                  void *buf, size_t cap, uint64_t *nvoters);

/**
 * @brief Register the voters of a buffer of packed records, in bulk: slots are prefetched
 * 16 records ahead and regions are taken by index, with no name lookup.
 *
 * @param region_map maps a record's region index (into the table saved with the records)
 *        to this registry's region index: the caller registers each saved name with
 *        tally_registry_add_region() first. Every entry must name a registered region.
 * @param nregions entries in region_map.
 * @param added if not NULL, receives how many voters were registered.
 * @returns 0 when every record was registered; else stops at the first bad record (what
 *          came before it stays registered) with errstr naming its place, never its data:
 *          TALLY_EFORMAT a record cut short or a region index outside the table,
 *          TALLY_EEXISTS an id already registered, TALLY_EINVAL a nil id, an overlong
 *          registration number or a bad region_map, TALLY_EFULL a capacity reached.
 * @note The writer side, as tally_registry_add_voter(); readers may run concurrently and
 *       see each voter as soon as it is added; tally_registry_generation() moves on by the
 *       number added, once, when the call returns.
 */
int tally_registry_add_voters_packed(tally_registry_t *reg, const void *buf, size_t len,
                                     const uint32_t *region_map, uint32_t nregions,
                                     uint64_t *added, char *errstr, size_t errstr_size);

/* ---- readers: any thread, lock-free ----------------------------------------------- */

uint32_t tally_registry_party_count(const tally_registry_t *reg);
uint32_t tally_registry_candidate_count(const tally_registry_t *reg);
uint32_t tally_registry_region_count(const tally_registry_t *reg);
uint64_t tally_registry_voter_count(const tally_registry_t *reg);

uint32_t tally_registry_contest_count(const tally_registry_t *reg);  /**< with contest 0 */
uint32_t tally_registry_level_count(const tally_registry_t *reg);    /**< with level 0 */

/** @brief Contest by index (0: national); false when out of range. */
bool tally_registry_contest_get(const tally_registry_t *reg, uint32_t idx,
                                tally_contest_info_t *out);

/** @brief Contest index by id ("national" is 0), or -1. */
int32_t tally_registry_contest_find(const tally_registry_t *reg, const char *id);

/** @brief Level name by index ("national" is 0); NULL when out of range. */
const char *tally_registry_level_name(const tally_registry_t *reg, uint32_t idx);

/** @brief Contest of a region at a level (level 0: 0), or -1 when none. */
int32_t tally_registry_region_contest(const tally_registry_t *reg, uint32_t level,
                                      uint32_t region);

/**
 * @brief A candidate's counter cells: the first and how many. Cell first + i counts the
 * votes from region i (contest 0) or from the contest's i-th region.
 */
void tally_registry_candidate_cells(const tally_registry_t *reg, uint32_t cand,
                                    uint64_t *first, uint32_t *n);

/** @brief Counter cells taken by the registered candidates (cells 0 .. this - 1). */
uint64_t tally_registry_cell_count(const tally_registry_t *reg);

/** @brief Party name by index; NULL when out of range. */
const char *tally_registry_party_name(const tally_registry_t *reg, uint32_t idx);

/** @brief Party index by name, or -1. */
int32_t tally_registry_party_find(const tally_registry_t *reg, const char *name);

/** @brief Candidate by index; false when out of range. */
bool tally_registry_candidate_get(const tally_registry_t *reg, uint32_t idx,
                                  tally_candidate_info_t *out);

/** @brief Candidate index by id, or -1. */
int32_t tally_registry_candidate_find(const tally_registry_t *reg, const tally_uuid_t *id);

/** @brief Region name by index; NULL when out of range. */
const char *tally_registry_region_name(const tally_registry_t *reg, uint32_t idx);

/** @brief Region index by name, or -1. */
int32_t tally_registry_region_find(const tally_registry_t *reg, const char *name);

/** @brief Registered voters in a region. */
uint64_t tally_registry_region_voters(const tally_registry_t *reg, uint32_t idx);

/** @brief Look a voter up; false if not registered. */
bool tally_registry_voter_get(const tally_registry_t *reg, const tally_uuid_t *id,
                              tally_voter_info_t *out);

/**
 * @brief Count of registration changes so far (every accepted add_* bumps it).
 * Readers use it to notice that names or turnout denominators changed.
 */
uint64_t tally_registry_generation(const tally_registry_t *reg);

/** @brief Bytes of memory held for voters (tables, slack and registration numbers). */
size_t tally_registry_voter_bytes(const tally_registry_t *reg);

/** @brief Capacities the registry was created with (defaults filled in). */
void tally_registry_get_opts(const tally_registry_t *reg, tally_registry_opts_t *opts);

#endif /* TALLY_REGISTRY_H */

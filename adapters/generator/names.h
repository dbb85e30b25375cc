/*
 * The generator's word tables: British names, UK counties with their towns and postcode
 * areas, words for usernames, streets, parties and candidates' prose. Private to
 * adapters/generator/.
 */
#ifndef TALLY_GEN_NAMES_H
#define TALLY_GEN_NAMES_H

#include <stddef.h>
#include <stdint.h>

/** A county (address.state), its population in thousands, towns and postcode areas. */
typedef struct tally__gen_county {
	const char *name;
	uint32_t population_k;
	const char *towns[6];        /* NULL-terminated when fewer */
	const char *postcode_areas[6];
} tally__gen_county_t;

/* A word list and its length. */
typedef struct tally__gen_words {
	const char *const *words;
	size_t count;
} tally__gen_words_t;

extern const tally__gen_county_t tally__gen_counties[];
extern const size_t tally__gen_ncounties;

/* Directions put before a county's name to make more regions than the table has. */
extern const tally__gen_words_t tally__gen_region_prefixes;

extern const tally__gen_words_t tally__gen_male_names;
extern const tally__gen_words_t tally__gen_female_names;
extern const tally__gen_words_t tally__gen_surnames;
extern const tally__gen_words_t tally__gen_user_adjectives;
extern const tally__gen_words_t tally__gen_user_animals;
extern const tally__gen_words_t tally__gen_street_names;
extern const tally__gen_words_t tally__gen_street_types;
extern const tally__gen_words_t tally__gen_party_words;
extern const tally__gen_words_t tally__gen_party_kinds;
extern const tally__gen_words_t tally__gen_professions;
extern const tally__gen_words_t tally__gen_policies;

/* The original's three parties, in its order. */
extern const char *const tally__gen_original_parties[3];

#endif /* TALLY_GEN_NAMES_H */

/*
 * tally-sim's view of the registry: the election window, parties, candidates (full rows),
 * regions with their registered voters, and a stream of full voter records, read from
 * PostgreSQL (the tables tally-gen loads) or from Kafka (voters_topic, candidates_topic).
 *
 * Memory: parties, candidates and regions are held (a few KiB). Voters are streamed, one in
 * memory at a time; from PostgreSQL nothing is kept per voter. From Kafka a set of the
 * voter ids seen (16 bytes each, at most 3/4 full: 21 to 43 bytes per voter, 10 M voters
 * take 256 MiB) drops a repeated registration as the registry would.
 *
 * DESIGN (threads): one thread owns a simreg_t and its source.
 */
#ifndef TALLY_SIM_SIMREG_H
#define TALLY_SIM_SIMREG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>
#include <librdkafka/rdkafka.h>

#include <tally/gen.h>
#include <tally/uuid.h>

typedef struct simreg_candidate {
	tally_uuid_t id;
	tally_gen_candidate_t row;      /* strings owned by the registry */
	uint32_t party;
	int32_t contest;                /* index into simreg_t.contests; -1: the national race */
} simreg_candidate_t;

typedef struct simreg_region {
	char *name;
	uint64_t registered;
	double *choice_cum;             /* [nchoices], made on first use by the vote maker */
	uint32_t *choices;              /* the candidates it may vote for (NULL: all) */
	uint32_t nchoices;
	uint64_t *accepted;             /* [ncandidates] accepted votes here, per candidate */
	int32_t contest;                /* its constituency; -1: none (no contests) */
} simreg_region_t;

/** A voter as read from the source; every pointer lives until the next simreg_next(). */
typedef struct simreg_voter {
	tally_gen_voter_fields_t f;
	tally_uuid_t id;
	int32_t dob_days;
	uint32_t region;
} simreg_voter_t;

typedef struct simreg {
	int64_t opens_at, closes_at;
	char **parties;
	uint32_t nparties;
	simreg_candidate_t *cands;
	uint32_t ncands;
	simreg_region_t *regions;
	uint32_t nregions, cap_regions;
	char **contests;                /* contest ids (postgres only; one level of contests) */
	char **contest_names;
	uint32_t ncontests;
	uint32_t *region_index;         /* open addressing by name: region + 1, 0 empty */
	uint32_t region_index_mask;
	uint64_t registered;            /* voters in the registry (all, once known) */
	uint64_t expected_voters;       /* for progress: the registry's size as first known */
	uint64_t skipped;               /* kafka: voter messages the registry would refuse */
	uint64_t repeated;              /* kafka: repeated registrations dropped */
	struct simreg_source *src;
} simreg_t;

/**
 * @brief Read the election window of election_id from PostgreSQL (table "elections").
 * @returns 0, TALLY_ENOENT when there is no such election, or a tally error; errstr set.
 */
int simreg_election_pg(PGconn *pg, const char *election_id, int64_t *opens_at,
                       int64_t *closes_at, char *errstr, size_t errstr_size);

/**
 * @brief Open the PostgreSQL registry: begins a REPEATABLE READ READ ONLY transaction on pg
 *        (so parties, candidates, region counts and the voter stream are one snapshot),
 *        reads the small tables and the region counts, and starts the voter stream.
 * @returns 0 or a tally error with errstr set. pg then belongs to reg until simreg_fini().
 */
int simreg_open_pg(simreg_t *reg, PGconn *pg, char *errstr, size_t errstr_size);

/**
 * @brief Open the Kafka registry: reads candidates_topic to its end, then streams
 *        voters_topic from the beginning to the end it had when opened.
 * @param conf taken over in every case.
 * @returns 0 or a tally error with errstr set.
 */
int simreg_open_kafka(simreg_t *reg, rd_kafka_conf_t *conf, const char *voters_topic,
                      const char *candidates_topic, char *errstr, size_t errstr_size);

/**
 * @brief The next voter of the registry into *v (valid until the next call).
 * @returns 1, 0 at the end, or a tally error with errstr set.
 */
int simreg_next(simreg_t *reg, simreg_voter_t *v, char *errstr, size_t errstr_size);

/** @brief Voters read so far (for progress). */
uint64_t simreg_read(const simreg_t *reg);

/**
 * @brief After an interrupt: make the registry's figures complete without keeping the
 *        voters (PostgreSQL counted them when opened; Kafka reads the rest of the topic).
 * @returns 0 or a tally error with errstr set.
 */
int simreg_finish_counts(simreg_t *reg, char *errstr, size_t errstr_size);

/**
 * @brief The partitions of topic and their end offsets (high watermarks) now, waiting up
 *        to 30 s for the leaders of a topic just created.
 * @param hi receives a malloc'd array of *nparts offsets; the caller frees it.
 * @returns 0 or a tally error with errstr set.
 */
int simreg_topic_ends(rd_kafka_t *rk, const char *topic, int *nparts, int64_t **hi,
                      char *errstr, size_t errstr_size);

/** @brief Region index of a name, or -1. */
int32_t simreg_region_find(const simreg_t *reg, const char *name);

/** @brief Free everything (and close the source; PostgreSQL's pg is not finished). */
void simreg_fini(simreg_t *reg);

#endif /* TALLY_SIM_SIMREG_H */

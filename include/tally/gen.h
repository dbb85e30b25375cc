/**
 * @file gen.h
 * @brief The seeded, deterministic election generator: parties, candidates, voters, a vote
 *        stream with faults, and the ground truth the core must reproduce.
 *
 * The generator stands in for the outside world of the original system (the Random User
 * Generator, its producers and their Kafka topics). Everything it makes is a pure function
 * of the options: the same options (seed included) give byte-identical registrations,
 * messages and ground truth, on any machine (only integer and correctly rounded IEEE
 * arithmetic is used, no libm, no rand()).
 *
 * Voters are made by index: tally_gen_voter(gen, i) computes voter i from the seed alone,
 * so 10 M voters need no storage. The vote stream is split into `nstreams` independent
 * streams (one per producer thread); stream s walks a seeded permutation of the voters at
 * positions s, s + nstreams, ... and emits the vote of each voter who turns out, with fault
 * messages mixed in at the requested rates. All messages that may be counted for a voter
 * (their genuine vote and any later duplicate) come from the one stream that owns them, so
 * routing every message by its route key (a hash of voter_id) keeps a voter's messages in
 * order. The output depends on nstreams: the same seed with another stream count gives a
 * different (equally valid) stream.
 *
 * Ground truth: each stream decides the outcome of every message it emits by applying the
 * core's checks in TALLY_REASON_MAP order to what it emitted (malformed, polls_closed,
 * too_early, too_late, unknown_voter, unknown_candidate, ineligible, duplicate), keeping one
 * bit per voter it owns for "has an accepted vote". It never runs the core.
 *
 * Memory: the generator holds tables sized by parties, candidates and regions; each stream
 * holds its share of the voted bitmap (voters / nstreams bits) and a fixed 64 KiB ring of
 * recent accepted voters to draw duplicates from.
 *
 * DESIGN (threads): a tally_gen_t is immutable after tally_gen_new() and may be read by any
 * number of threads. A tally_gen_stream_t belongs to one thread at a time.
 */
#ifndef TALLY_GEN_H
#define TALLY_GEN_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <tally/uuid.h>
#include <tally/vote.h>

typedef struct tally_gen tally_gen_t;
typedef struct tally_gen_stream tally_gen_stream_t;

/** Upper bounds of the sizes the generator accepts. */
#define TALLY_GEN_MAX_VOTERS 1000000000ull
#define TALLY_GEN_MAX_CANDIDATES 256u
/** Contests at most (each of at least one region); their candidates at most. */
#define TALLY_GEN_MAX_CONTESTS 1024u
#define TALLY_GEN_MAX_CONTEST_CANDIDATES 16384u
/** The level of the generator's contests. */
#define TALLY_GEN_CONTEST_LEVEL "constituency"
#define TALLY_GEN_MAX_PARTIES 64u
#define TALLY_GEN_MAX_REGIONS 1024u
#define TALLY_GEN_MAX_STREAMS 1024u

/** A buffer this large always holds one vote message or one registration message. */
#define TALLY_GEN_MSG_MAX 4096u

/**
 * Generator options. Fill with tally_gen_opts_init(), then change what you need; every
 * field is taken literally (a rate of 0 means none).
 */
typedef struct tally_gen_opts {
	uint64_t seed;               /**< default 1 */
	uint64_t voters;             /**< registered voters, 1 .. TALLY_GEN_MAX_VOTERS (100000) */
	uint32_t candidates;         /**< 1 .. 256 (3) */
	uint32_t parties;            /**< 1 .. 64 (3); the first three are the original's */
	uint32_t regions;            /**< 1 .. 1024 (20), largest UK counties first */
	double turnout;              /**< share of adult voters who vote, 0 .. 1 (0.65) */
	double underage;             /**< share of registered voters under 18 on election day (0.01) */

	/* Fault rates: the share of all emitted messages that have each fault. Sum < 0.9. */
	double dup_rate;             /**< a voter with an accepted vote votes again (0.01) */
	double malformed_rate;       /**< broken JSON or fields (0.005) */
	double unknown_voter_rate;   /**< unregistered random voter_id (0.005) */
	double unknown_candidate_rate; /**< random candidate_id nobody registered (0.002) */
	double late_rate;            /**< voting_time at or after closes_at (0.002) */
	double early_rate;           /**< voting_time before opens_at (0.002) */
	double ineligible_rate;      /**< a voter under 18 votes (0.002) */

	/**
	 * Contests (0): 0 is one national race of `candidates` candidates, as the original.
	 * N > 0: N constituencies (at level TALLY_GEN_CONTEST_LEVEL) over the regions, region
	 * r in constituency r % N (so N <= regions), each with one candidate of each of the
	 * first three parties and of about half the others; `candidates` is then unused.
	 * Voters vote in their own constituency.
	 */
	uint32_t contests;
	double wrong_contest_rate;   /**< a voter votes in another constituency (0; needs 2+) */

	int64_t opens_at;            /**< UTC seconds, inclusive (2026-05-07 07:00:00Z) */
	int64_t closes_at;           /**< UTC seconds, exclusive (2026-05-07 22:00:00Z) */
	bool compact;                /**< emit {voter_id, candidate_id, voting_time} only */
} tally_gen_opts_t;

/** @brief Fill opts with the defaults given in the field comments. */
void tally_gen_opts_init(tally_gen_opts_t *opts);

/**
 * @brief Build the election described by opts (parties, candidates, regions and the
 *        per-region tables; voters are computed on demand).
 * @returns a generator, or NULL with the reason in errstr (an option out of range names it,
 *          e.g. `turnout: 1.5 is out of range 0 to 1`). Free with tally_gen_destroy().
 * @note Counts the registered voters per region once, O(voters) time and O(regions) memory.
 */
tally_gen_t *tally_gen_new(const tally_gen_opts_t *opts, char *errstr, size_t errstr_size);

/** @brief Free the generator. Its streams must be destroyed first. NULL is a no-op. */
void tally_gen_destroy(tally_gen_t *gen);

/** @brief The options the generator was made with. Lives as long as gen. */
const tally_gen_opts_t *tally_gen_get_opts(const tally_gen_t *gen);

/** @brief Day number (days since 1970-01-01) of election day, the UTC date of opens_at. */
int32_t tally_gen_election_day(const tally_gen_t *gen);

/* ---- parties, regions, candidates ------------------------------------------------ */

/** @brief Number of parties (opts.parties). */
uint32_t tally_gen_party_count(const tally_gen_t *gen);

/** @brief Party name; NULL when out of range. Lives as long as gen. */
const char *tally_gen_party_name(const tally_gen_t *gen, uint32_t idx);

/** @brief Number of regions (opts.regions). */
uint32_t tally_gen_region_count(const tally_gen_t *gen);

/** @brief Region (address.state) name; NULL when out of range. Lives as long as gen. */
const char *tally_gen_region_name(const tally_gen_t *gen, uint32_t idx);

/** @brief Registered voters in a region (all ages). */
uint64_t tally_gen_region_registered(const tally_gen_t *gen, uint32_t idx);

/** @brief Number of candidates (opts.candidates). */
uint32_t tally_gen_candidate_count(const tally_gen_t *gen);

/** A candidate, in the original candidates table's columns. Strings live as long as gen. */
typedef struct tally_gen_candidate {
	tally_uuid_t id;
	const char *candidate_id;    /**< canonical lower-case text of id */
	const char *candidate_name;
	const char *party_affiliation;
	uint32_t party;              /**< party index */
	const char *gender;          /**< "male" or "female", alternating from "male" */
	const char *biography;
	const char *campaign_platform;
	const char *photo_url;
	const char *contest_id;      /**< NULL in the national race (opts.contests 0) */
	int32_t contest;             /**< its contest's index, -1 in the national race */
} tally_gen_candidate_t;

/** @brief Candidate idx into *out. @returns false when idx is out of range. */
bool tally_gen_candidate(const tally_gen_t *gen, uint32_t idx, tally_gen_candidate_t *out);

/** A generated contest (opts.contests > 0). Strings live as long as gen. */
typedef struct tally_gen_contest {
	const char *contest_id;      /**< "E14000001", ... */
	const char *contest_name;    /**< a British constituency name, unique */
	uint32_t first_candidate;    /**< its candidates: first_candidate .. + ncandidates - 1 */
	uint32_t ncandidates;
	uint32_t nregions;           /**< its regions: r with r % contests == its index */
} tally_gen_contest_t;

/** @brief Number of contests (opts.contests; 0: the national race only). */
uint32_t tally_gen_contest_count(const tally_gen_t *gen);

/** @brief Contest idx into *out. @returns false when idx is out of range. */
bool tally_gen_contest(const tally_gen_t *gen, uint32_t idx, tally_gen_contest_t *out);

/** @brief The contest of a region, or -1 with no contests. */
int32_t tally_gen_region_contest(const tally_gen_t *gen, uint32_t region);

/* ---- voters ---------------------------------------------------------------------- */

/** Every field of a voters_topic message, computed from the seed and the index alone. */
typedef struct tally_gen_voter {
	uint64_t index;
	tally_uuid_t id;
	char voter_id[TALLY_UUID_STRLEN + 1];
	char voter_name[64];
	char date_of_birth[11];      /**< "YYYY-MM-DD" */
	int32_t dob_days;            /**< the same as days since 1970-01-01 */
	const char *gender;          /**< "male" or "female" */
	const char *nationality;     /**< "GB" */
	char registration_number[32]; /**< e.g. "purplelion482" */
	char street[64];
	const char *city;
	const char *state;           /**< the region */
	uint32_t region;
	const char *country;         /**< "United Kingdom" */
	char postcode[12];
	char email[96];
	char phone_number[16];
	char cell_number[16];
	char picture[64];
	int registered_age;          /**< years since registration, as randomuser's */
	bool underage;               /**< under 18 on election day */
} tally_gen_voter_t;

/**
 * @brief Compute voter idx (0 <= idx < voters) into *out. Random access, no state:
 *        the result depends only on the options and idx. Thread-safe.
 */
void tally_gen_voter(const tally_gen_t *gen, uint64_t idx, tally_gen_voter_t *out);

/** The few facts the registry keeps about a voter. */
typedef struct tally_gen_voter_brief {
	tally_uuid_t id;
	int32_t dob_days;            /**< days since 1970-01-01 */
	uint32_t region;
	bool underage;
	char registration_number[32];
} tally_gen_voter_brief_t;

/**
 * @brief What the registry keeps of voter idx, without formatting the rest (the fast path
 *        for registering millions); equal to the same fields of tally_gen_voter().
 *        Thread-safe.
 */
void tally_gen_voter_brief(const tally_gen_t *gen, uint64_t idx, tally_gen_voter_brief_t *out);

/* ---- registration messages (the original topics' shapes) ------------------------- */

/**
 * @brief Write voter idx as a voters_topic JSON value into buf (snprintf semantics).
 * @returns the length of the whole message; it was written whole only if < size.
 */
size_t tally_gen_voter_json(const tally_gen_t *gen, uint64_t idx, char *buf, size_t size);

/**
 * @brief Write candidate idx as a candidates_topic JSON value (the candidates table's
 *        columns) into buf, snprintf semantics; 0 when idx is out of range.
 */
size_t tally_gen_candidate_json(const tally_gen_t *gen, uint32_t idx, char *buf, size_t size);

/* ---- the vote stream ------------------------------------------------------------- */

/** Kinds of malformed message the stream emits, one chosen uniformly per malformed vote. */
#define TALLY_GEN_MALFORMED_MAP(XX)                                               \
	XX(TRUNCATED,   "truncated")    /* a proper prefix of a good message */    \
	XX(EMPTY,       "empty")        /* zero bytes */                           \
	XX(NOT_OBJECT,  "not_object")   /* the message inside a JSON array */      \
	XX(BAD_UUID,    "bad_uuid")     /* voter_id with a non-hex character */    \
	XX(BAD_TIME,    "bad_time")     /* voting_time with hour 25 */             \
	XX(MISSING,     "missing")      /* no candidate_id */                      \
	XX(WRONG_TYPE,  "wrong_type")   /* voter_id is a number */                 \
	XX(BAD_VOTE,    "bad_vote")     /* "vote": 0 */                            \
	XX(DUP_KEY,     "dup_key")      /* voter_id given twice */                 \
	XX(BAD_UTF8,    "bad_utf8")     /* an invalid UTF-8 sequence in a string */ \
	XX(NUL_ESCAPE,  "nul_escape")   /* "\u0000" in a string */

typedef enum tally_gen_malformed {
	TALLY_GEN_MALFORMED_NONE = 0,
#define TALLY__GEN_MAL_ENUM(name, str) TALLY_GEN_MALFORMED_##name,
	TALLY_GEN_MALFORMED_MAP(TALLY__GEN_MAL_ENUM)
#undef TALLY__GEN_MAL_ENUM
	TALLY_GEN_MALFORMED__COUNT
} tally_gen_malformed_t;

/** @brief Name of a malformed kind ("bad_uuid"); "none" for 0. */
const char *tally_gen_malformed_name(int kind);

/** What the generator knows about one message it emitted. */
typedef struct tally_gen_msg {
	uint64_t seq;                /**< 0, 1, ... within the stream */
	uint8_t intended;            /**< tally_reason_t the message was made to have */
	uint8_t reason;              /**< tally_reason_t by the check order: the ground truth */
	uint8_t malformed;           /**< tally_gen_malformed_t, 0 unless malformed */
	int64_t voter;               /**< voter index, or -1 for an unregistered voter_id */
	int32_t candidate;           /**< candidate index, or -1 for an unknown candidate_id */
	int32_t region;              /**< the voter's region, or -1 for an unregistered voter */
	tally_uuid_t voter_id;       /**< the voter_id meant (even if the message mangles it) */
	int64_t voting_time;         /**< the time meant (even if the message mangles it) */
	uint64_t route;              /**< tally_uuid_hash(voter_id): route all of a voter's
	                                  messages to one lane or partition */
} tally_gen_msg_t;

/**
 * @brief Open stream `index` of `nstreams` (1 .. TALLY_GEN_MAX_STREAMS) over gen.
 * Streams of one generator are independent and may run on different threads.
 * @returns NULL when out of memory or the arguments are out of range.
 *          Free with tally_gen_stream_destroy().
 */
tally_gen_stream_t *tally_gen_stream_new(const tally_gen_t *gen, unsigned index,
                                         unsigned nstreams);

/** @brief Free a stream. NULL is a no-op. */
void tally_gen_stream_destroy(tally_gen_stream_t *st);

/**
 * @brief Emit the next vote message into buf (size >= TALLY_GEN_MSG_MAX) and its facts
 *        into *msg (may be NULL). The message is not NUL-terminated when it is malformed
 *        by truncation; use the returned length.
 * @returns the message length (0 only for the "empty" malformed kind), or -1 when the
 *          stream is finished (every voter it owns who turns out has voted).
 */
long tally_gen_stream_next(tally_gen_stream_t *st, char *buf, size_t size, tally_gen_msg_t *msg);

/** @brief Messages emitted so far (by the stream's own thread). */
uint64_t tally_gen_stream_emitted(const tally_gen_stream_t *st);

/** @brief How far the stream's walk over its voters has got, 0 .. 1 (own thread only). */
double tally_gen_stream_progress(const tally_gen_stream_t *st);

/* ---- vote messages of any registry (tally-sim) ------------------------------------ */

/** A registered_age (or other integer field) that is null. */
#define TALLY_GEN_NULL_INT INT_MIN

/**
 * Every voters_topic field of a voter from any source (a PostgreSQL row, a voters_topic
 * message, or tally_gen_voter_fields()). Strings are UTF-8; a NULL pointer is written as
 * JSON null. registered_age is TALLY_GEN_NULL_INT when null.
 */
typedef struct tally_gen_voter_fields {
	const char *voter_id;
	const char *voter_name;
	const char *date_of_birth;
	const char *gender;
	const char *nationality;
	const char *registration_number;
	const char *street;          /**< address.street */
	const char *city;            /**< address.city */
	const char *state;           /**< address.state, the region */
	const char *country;         /**< address.country */
	const char *postcode;        /**< address.postcode */
	const char *email;
	const char *phone_number;
	const char *cell_number;
	const char *picture;
	int registered_age;
} tally_gen_voter_fields_t;

/** @brief Point *out at the fields of v (which must outlive out). Thread-safe. */
void tally_gen_voter_fields(const tally_gen_voter_t *v, tally_gen_voter_fields_t *out);

/**
 * @brief Write one vote in the votes_topic shape (every voter field, the candidate's row,
 *        voting_time "YYYY-MM-DD HH:MM:SS", "vote": 1), or with compact only voter_id,
 *        candidate_id and voting_time, into buf: the same writer and the same malformed
 *        kinds as the generator's own stream, for voters and candidates that come from
 *        elsewhere.
 *
 * @param v the voter; only v->voter_id is read when compact.
 * @param c the candidate; only c->candidate_id is read when compact (the other strings may
 *          be NULL: written as null).
 * @param malformed a tally_gen_malformed_t; TALLY_GEN_MALFORMED_NONE for a good message.
 * @param noise random bits that decide the details of a malformed kind (which character of
 *          voter_id is broken, where a message is cut): the same arguments give the same
 *          bytes.
 * @returns the message length. If it is >= size, buf was too small (its content is then
 *          unspecified): call again with a larger buf. Otherwise buf holds the message and
 *          a NUL after it. A truncated message is a proper prefix of the good one; the
 *          empty kind has length 0. Thread-safe.
 */
size_t tally_gen_vote_json(const tally_gen_voter_fields_t *v, const tally_gen_candidate_t *c,
                           int64_t voting_time, int malformed, uint64_t noise, bool compact,
                           char *buf, size_t size);

/* ---- ground truth ---------------------------------------------------------------- */

/**
 * The expected results: what the core must report after counting every message of the
 * streams added. Indices are the generator's (party, candidate and region order).
 */
typedef struct tally_gen_truth {
	uint32_t ncandidates, nregions, nparties;
	uint64_t read;                            /**< messages */
	uint64_t accepted;
	uint64_t rejected[TALLY_REASON__COUNT];   /**< [TALLY_REASON_ACCEPTED] is 0 */
	uint64_t rejected_total;
	uint64_t registered;                      /**< voters registered */
	uint64_t *candidates;                     /**< [ncandidates] accepted */
	uint64_t *regions;                        /**< [nregions] accepted */
	uint64_t *parties;                        /**< [nparties] accepted */
	uint64_t *cand_region;                    /**< [ncandidates * nregions], row = candidate */
	uint64_t *region_registered;              /**< [nregions] */
} tally_gen_truth_t;

/**
 * @brief A truth with every count 0 and the registration figures of gen filled in.
 * @returns NULL when out of memory. Free with tally_gen_truth_destroy().
 */
tally_gen_truth_t *tally_gen_truth_new(const tally_gen_t *gen);

/**
 * @brief Add what st has emitted so far to truth (call once per stream, after its last
 *        message). Not thread-safe for one truth.
 */
void tally_gen_truth_add(tally_gen_truth_t *truth, const tally_gen_stream_t *st);

/** @brief Free. NULL is a no-op. */
void tally_gen_truth_destroy(tally_gen_truth_t *truth);

#endif /* TALLY_GEN_H */

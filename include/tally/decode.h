/**
 * @file decode.h
 * @brief The vote decoder: JSON in the original votes_topic shape (or the compact shape)
 *        to a tally_vote_t, strict, allocation-free, never reading past the buffer.
 *
 * Reads voter_id, candidate_id, voting_time and vote (must be the integer 1 if present),
 * validates the whole message as JSON and UTF-8, and skips every other member, nested
 * objects and arrays included. Anything wrong gives TALLY_REASON_MALFORMED with a detail.
 *
 * Validation matches jansson 2.14 (the reference): the top level must be an object;
 * nesting deeper than 2048 is refused; integers must fit in int64 and reals in a double;
 * strings must be valid UTF-8 without U+0000 (escaped or not). A key repeated at the top
 * level among the four read fields is malformed; repeats of other keys are ignored.
 *
 * Which class a message with several problems gets: any syntax error wins (the text is not
 * JSON to jansson); valid JSON whose top level is not an object is NOT_OBJECT; then a
 * repeated read field is DUPLICATE; then the fields are checked in the order voter_id,
 * candidate_id, voting_time, vote, and the first problem decides (MISSING, TYPE, UUID,
 * TIME, VOTE). A vote that is not an integer (1.0, "1", true) is TYPE; an integer other
 * than 1 is VOTE. Empty or blank input is SYNTAX.
 */
#ifndef TALLY_DECODE_H
#define TALLY_DECODE_H

#include <stddef.h>

#include <tally/vote.h>

/** Default and upper bound of the largest message accepted, in bytes. */
#define TALLY_DECODE_DEFAULT_MAX_SIZE (64u * 1024u)

/** Class of a decoding failure: tests compare classes with the reference decoder. */
#define TALLY_DECODE_ERR_MAP(XX)                                   \
	XX(NONE,      "none")                                      \
	XX(OVERSIZE,  "oversize")     /* longer than max_size */    \
	XX(SYNTAX,    "syntax")       /* not JSON, bad UTF-8, depth, number range */ \
	XX(NOT_OBJECT,"not_object")   /* top level is not an object */ \
	XX(MISSING,   "missing")      /* a required field is absent */ \
	XX(TYPE,      "type")         /* a read field has the wrong JSON type */ \
	XX(DUPLICATE, "duplicate")    /* a read field appears twice */ \
	XX(UUID,      "uuid")         /* voter_id/candidate_id is not a UUID */ \
	XX(TIME,      "time")         /* voting_time is not a valid time */ \
	XX(VOTE,      "vote")         /* vote present and not 1 */

typedef enum tally_decode_err {
#define TALLY__DECERR_ENUM(name, str) TALLY_DECODE_ERR_##name,
	TALLY_DECODE_ERR_MAP(TALLY__DECERR_ENUM)
#undef TALLY__DECERR_ENUM
	TALLY_DECODE_ERR__COUNT
} tally_decode_err_t;

/** @brief Name of a failure class ("syntax"). */
const char *tally_decode_err_name(int cls);

/** Result of one decode: the class and a precise detail ("voter_id: not a UUID"). */
typedef struct tally_decode_result {
	tally_decode_err_t cls;
	size_t offset;           /**< Byte offset where the problem was found. */
	char detail[128];        /**< NUL-terminated, no personal data copied from the input. */
} tally_decode_result_t;

/** Options of a decoder. */
typedef struct tally_decoder_opts {
	size_t max_size;         /**< 0 = TALLY_DECODE_DEFAULT_MAX_SIZE. */
} tally_decoder_opts_t;

/**
 * @brief Decode one message into *vote.
 *
 * On success vote->reason = TALLY_REASON_ACCEPTED (meaning "decoded"; the core decides the
 * outcome). On failure vote->reason = TALLY_REASON_MALFORMED, the ids are zero, and res
 * (if not NULL) says why. opts may be NULL for the defaults. Thread-safe: no state
 * besides the arguments; no allocation.
 *
 * @returns 0 on success, TALLY_EFORMAT on failure.
 */
int tally_decode_vote(const tally_decoder_opts_t *opts, const char *buf, size_t len,
                      tally_vote_t *vote, tally_decode_result_t *res);

#endif /* TALLY_DECODE_H */

/**
 * @file regmsg.h
 * @brief Decoding of registration messages: voters_topic and candidates_topic values in the
 *        original system's JSON shapes, into the registry's registration structs.
 *
 * Not the hot path: messages are parsed with jansson. Decoding is strict: the top level
 * must be a JSON object without repeated keys, required members must be present with the
 * right type, and every other member of the original shape, if present, must have its
 * type too. A member whose value is null counts as absent (Python's None). Members the
 * original did not have are ignored, so producers may add fields.
 *
 * Errors are lower-case, name the member (`address.state: expected a string`) and never
 * copy text from the message, so they may be logged without leaking personal data.
 *
 * Thread-safety: every function is reentrant; nothing is shared between calls.
 */
#ifndef TALLY_REGMSG_H
#define TALLY_REGMSG_H

#include <stddef.h>

#include <tally/registry.h>

/**
 * A decoded voters_topic message. `reg` is ready for tally_registry_add_voter(); its
 * strings point into this struct, so keep it alive (and unmoved) until then.
 *
 * Required: voter_id (a UUID, not nil), date_of_birth ("YYYY-MM-DD", or an ISO-8601
 * date-time as randomuser's dob.date, of which the UTC date is taken), address (an object)
 * with address.state (the region: non-empty, at most TALLY_NAME_MAX bytes).
 * Optional, type-checked: voter_name, gender, nationality, registration_number (at most
 * TALLY_REGNO_MAX bytes), address.street/city/country/postcode, email, phone_number,
 * cell_number, picture (strings), registered_age (an integer >= 0).
 */
typedef struct tally_regmsg_voter {
	tally_voter_reg_t reg;
	char region[TALLY_NAME_MAX + 1];
	char registration_number[TALLY_REGNO_MAX + 1];
} tally_regmsg_voter_t;

/**
 * A decoded candidates_topic message (the original candidates table's columns). `reg` is
 * ready for tally_registry_add_candidate(); its strings point into this struct.
 *
 * Required: candidate_id (a UUID, not nil), candidate_name and party_affiliation
 * (non-empty, at most TALLY_NAME_MAX bytes). Optional, type-checked: biography,
 * campaign_platform (strings), photo_url (a string of at most TALLY_URL_MAX bytes),
 * contest_id (a string of at most TALLY_CONTEST_ID_MAX bytes: the contest the candidate
 * stands in; absent, null or empty: the national race).
 */
typedef struct tally_regmsg_candidate {
	tally_candidate_reg_t reg;
	char name[TALLY_NAME_MAX + 1];
	char party[TALLY_NAME_MAX + 1];
	char photo_url[TALLY_URL_MAX + 1];
	char contest[TALLY_CONTEST_ID_MAX + 1];
} tally_regmsg_candidate_t;

/**
 * @brief Decode a voters_topic value (len bytes at buf; need not be NUL-terminated).
 * @param out caller-provided; filled on success, unspecified on failure.
 * @param errstr receives the reason on failure (may be NULL).
 * @returns 0, or TALLY_EFORMAT with errstr set (or TALLY_ENOMEM).
 */
int tally_regmsg_decode_voter(const char *buf, size_t len, tally_regmsg_voter_t *out, char *errstr,
                              size_t errstr_size);

/**
 * @brief Decode a candidates_topic value (len bytes at buf).
 * @param out caller-provided; filled on success, unspecified on failure.
 * @returns 0, or TALLY_EFORMAT with errstr set (or TALLY_ENOMEM).
 */
int tally_regmsg_decode_candidate(const char *buf, size_t len, tally_regmsg_candidate_t *out,
                                  char *errstr, size_t errstr_size);

#endif /* TALLY_REGMSG_H */

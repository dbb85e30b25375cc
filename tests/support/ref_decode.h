/*
 * The reference vote decoder: jansson for validity and values, plus plain, slow, separately
 * written checks of the field policy. The differential test holds tally_decode_vote to it.
 */
#ifndef TALLY_TEST_REF_DECODE_H
#define TALLY_TEST_REF_DECODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <tally/decode.h>
#include <tally/vote.h>

/**
 * @brief Decode one message as tally_decode_vote() must, but through jansson 2.14.
 *
 * json_loadb(buf, len, 0) decides validity; when it fails, json_loadb(..., JSON_DECODE_ANY)
 * tells a scalar top level (NOT_OBJECT) from broken JSON (SYNTAX). Repeated read keys are
 * found by a scan of the top-level keys of the text jansson accepted; ids and the time are
 * checked by this file's own parsers (not tally's). Same classes and field order as the
 * fast decoder (see core/decode.c).
 *
 * @returns 0 on success, TALLY_EFORMAT on failure; res (if not NULL) gets the class.
 */
int ref_decode_vote(const tally_decoder_opts_t *opts, const char *buf, size_t len,
                    tally_vote_t *vote, tally_decode_result_t *res);

/**
 * @brief The reference's own voting_time parser (sscanf/strtol, timegm).
 * @returns true and sets *secs when text[0..len) is a valid voting_time.
 */
bool ref_time_parse(const char *text, size_t len, int64_t *secs);

/** One corpus message. */
typedef struct ref_msg {
	char name[96];          /**< File name, e.g. "valid_full_001.json". */
	char *data;             /**< Exactly len bytes (not NUL-terminated), malloc'd. */
	size_t len;
} ref_msg_t;

/**
 * @brief Load every *.json file of dir, sorted by name.
 * @returns the count; *out is malloc'd, free it with ref_corpus_free(). Aborts on I/O errors.
 */
size_t ref_corpus_load(const char *dir, ref_msg_t **out);

/** @brief Free what ref_corpus_load() returned. */
void ref_corpus_free(ref_msg_t *msgs, size_t n);

/**
 * @brief The class a corpus file name promises: its prefix before the first '_'
 *        ("valid" is TALLY_DECODE_ERR_NONE). @returns -1 for an unknown prefix.
 */
int ref_corpus_class(const char *name);

#endif

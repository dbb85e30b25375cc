/*
 * Unit tests of the vote decoder (core/decode.c): exact fields, classes and details, and
 * every corpus message against the class its file name promises, through both decoders.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include <tally/decode.h>
#include <tally/error.h>
#include <tally/uuid.h>
#include <tally/vote.h>

#include "ref_decode.h"

#define VOTER "0b7e4c2a-9f1d-4e8b-a3c6-5d2f8e1b7a90"
#define CAND  "6f1c2a9e-4b7d-4e21-9a3f-0c5d8e7b1a24"

/* Decode a NUL-terminated message through a heap copy of exactly its length. */
static int
dec(const char *text, tally_vote_t *vote, tally_decode_result_t *res)
{
	size_t len = strlen(text);
	char *copy = malloc(len ? len : 1);
	int rc;

	memcpy(copy, text, len);
	rc = tally_decode_vote(NULL, copy, len, vote, res);
	free(copy);
	return rc;
}

/* Decode and expect a failure of class cls with this detail (NULL: any detail). */
static void
expect_fail(const char *text, tally_decode_err_t cls, const char *detail)
{
	tally_vote_t vote;
	tally_decode_result_t res;
	int rc = dec(text, &vote, &res);

	cr_assert_eq(rc, TALLY_EFORMAT, "accepted: %s", text);
	cr_assert_eq(res.cls, cls, "class %s (%s), wanted %s: %s", tally_decode_err_name(res.cls),
	             res.detail, tally_decode_err_name(cls), text);
	if (detail)
		cr_assert_str_eq(res.detail, detail, "for %s", text);
	cr_assert_eq(vote.reason, TALLY_REASON_MALFORMED);
	cr_assert(tally_uuid_is_nil(&vote.voter_id) && tally_uuid_is_nil(&vote.candidate_id));
	cr_assert_eq(vote.voting_time, 0);
}

Test(decode, compact_exact_fields)
{
	tally_vote_t vote;
	tally_decode_result_t res;
	char id[37];

	memset(&vote, 0xAB, sizeof(vote));
	cr_assert_eq(dec("{\"voter_id\":\"" VOTER "\",\"candidate_id\":\"" CAND "\","
	                 "\"voting_time\":\"2026-05-07 09:15:00\"}", &vote, &res), TALLY_OK);
	cr_assert_eq(res.cls, TALLY_DECODE_ERR_NONE);
	cr_assert_str_eq(res.detail, "");
	cr_assert_eq(vote.reason, TALLY_REASON_ACCEPTED);
	cr_assert_eq(vote.voter_id.hi, 0x0b7e4c2a9f1d4e8bULL);
	cr_assert_eq(vote.voter_id.lo, 0xa3c65d2f8e1b7a90ULL);
	cr_assert_str_eq(tally_uuid_format(&vote.candidate_id, id), CAND);
	cr_assert_eq(vote.voting_time, 1778145300);
	cr_assert_eq(vote.region, 0);
}

Test(decode, full_original_shape)
{
	const char *msg =
		"{\"voter_id\": \"" VOTER "\", \"voter_name\": \"Siân Llewellyn\", "
		"\"date_of_birth\": \"1986-03-14T09:21:44.512Z\", \"gender\": \"female\", "
		"\"nationality\": \"GB\", \"registration_number\": \"purplecat512\", "
		"\"address\": {\"street\": \"4821 Church Lane\", \"city\": \"Bristol\", "
		"\"state\": \"Somerset\", \"country\": \"United Kingdom\", \"postcode\": \"BS1 4DJ\"}, "
		"\"email\": \"sian.llewellyn@example.org\", \"phone_number\": \"017683 123456\", "
		"\"cell_number\": \"07700 900123\", \"picture\": \"https://portraits.example.org/women/44.jpg\", "
		"\"registered_age\": 9, \"candidate_id\": \"" CAND "\", \"candidate_name\": \"Margaret Ashworth\", "
		"\"party_affiliation\": \"Management Party\", \"biography\": \"A lifelong advocate for rural bus routes.\", "
		"\"campaign_platform\": \"Flood defences along the Severn.\", "
		"\"photo_url\": \"https://portraits.example.org/candidates/6f1c2a9e.jpg\", "
		"\"voting_time\": \"2026-05-07T10:15:00+01:00\", \"vote\": 1}";
	tally_vote_t vote;
	tally_decode_result_t res;
	char id[37];

	cr_assert_eq(dec(msg, &vote, &res), TALLY_OK, "%s", res.detail);
	cr_assert_str_eq(tally_uuid_format(&vote.voter_id, id), VOTER);
	cr_assert_str_eq(tally_uuid_format(&vote.candidate_id, id), CAND);
	cr_assert_eq(vote.voting_time, 1778145300);
}

Test(decode, escaped_keys_and_values)
{
	tally_vote_t vote;
	tally_decode_result_t res;

	cr_assert_eq(dec("{\"vot\\u0065r_id\":\"0b7e4c2a\\u002d9f1d-4e8b-a3c6-5d2f8e1b7a90\","
	                 "\"\\u0063andidate_id\":\"" CAND "\",\"voting\\u005ftime\":"
	                 "\"2026-05-07T09:15:00.\\u0039\\u0039Z\",\"v\\u006fte\":1}", &vote, &res),
	             TALLY_OK, "%s", res.detail);
	cr_assert_eq(vote.voter_id.hi, 0x0b7e4c2a9f1d4e8bULL);
	cr_assert_eq(vote.voting_time, 1778145300);
}

Test(decode, long_fraction_escaped)
{
	/* 300 fraction digits, one of them escaped: the decoder's small buffer must cope. */
	char msg[600];
	tally_vote_t vote;
	tally_decode_result_t res;
	int n = snprintf(msg, sizeof(msg), "{\"voter_id\":\"" VOTER "\",\"candidate_id\":\"" CAND
	                 "\",\"voting_time\":\"2026-05-07 09:15:00.\\u0031");

	for (int i = 0; i < 300; i++)
		msg[n++] = '7';
	strcpy(msg + n, "\"}");
	cr_assert_eq(dec(msg, &vote, &res), TALLY_OK, "%s", res.detail);
	cr_assert_eq(vote.voting_time, 1778145300);
	strcpy(msg + n, "x\"}");
	expect_fail(msg, TALLY_DECODE_ERR_TIME, "voting_time: unexpected characters after the time");
}

Test(decode, vote_field)
{
	expect_fail("{\"voter_id\":\"" VOTER "\",\"candidate_id\":\"" CAND "\","
	            "\"voting_time\":\"2026-05-07 09:15:00\",\"vote\":2}",
	            TALLY_DECODE_ERR_VOTE, "vote: expected 1, got another integer");
	expect_fail("{\"voter_id\":\"" VOTER "\",\"candidate_id\":\"" CAND "\","
	            "\"voting_time\":\"2026-05-07 09:15:00\",\"vote\":-0}",
	            TALLY_DECODE_ERR_VOTE, "vote: expected 1, got another integer");
	expect_fail("{\"voter_id\":\"" VOTER "\",\"candidate_id\":\"" CAND "\","
	            "\"voting_time\":\"2026-05-07 09:15:00\",\"vote\":1.0}",
	            TALLY_DECODE_ERR_TYPE, "vote: expected the integer 1, got a real");
	expect_fail("{\"voter_id\":\"" VOTER "\",\"candidate_id\":\"" CAND "\","
	            "\"voting_time\":\"2026-05-07 09:15:00\",\"vote\":\"1\"}",
	            TALLY_DECODE_ERR_TYPE, "vote: expected the integer 1, got a string");
	expect_fail("{\"voter_id\":\"" VOTER "\",\"candidate_id\":\"" CAND "\","
	            "\"voting_time\":\"2026-05-07 09:15:00\",\"vote\":true}",
	            TALLY_DECODE_ERR_TYPE, "vote: expected the integer 1, got a boolean");
	expect_fail("{\"voter_id\":\"" VOTER "\",\"candidate_id\":\"" CAND "\","
	            "\"voting_time\":\"2026-05-07 09:15:00\",\"vote\":null}",
	            TALLY_DECODE_ERR_TYPE, "vote: expected the integer 1, got null");
}

Test(decode, field_details)
{
	expect_fail("{\"candidate_id\":\"" CAND "\",\"voting_time\":\"2026-05-07 09:15:00\"}",
	            TALLY_DECODE_ERR_MISSING, "missing field \"voter_id\"");
	expect_fail("{\"voter_id\":\"" VOTER "\",\"voting_time\":\"2026-05-07 09:15:00\"}",
	            TALLY_DECODE_ERR_MISSING, "missing field \"candidate_id\"");
	expect_fail("{\"voter_id\":\"" VOTER "\",\"candidate_id\":\"" CAND "\"}",
	            TALLY_DECODE_ERR_MISSING, "missing field \"voting_time\"");
	expect_fail("{\"voter_id\":12,\"candidate_id\":\"" CAND "\",\"voting_time\":\"x\"}",
	            TALLY_DECODE_ERR_TYPE, "voter_id: expected a string, got a number");
	expect_fail("{\"voter_id\":\"" VOTER "\",\"candidate_id\":{},\"voting_time\":\"x\"}",
	            TALLY_DECODE_ERR_TYPE, "candidate_id: expected a string, got an object");
	expect_fail("{\"voter_id\":\"" VOTER "\",\"candidate_id\":\"" CAND "\",\"voting_time\":[]}",
	            TALLY_DECODE_ERR_TYPE, "voting_time: expected a string, got an array");
	expect_fail("{\"voter_id\":\"Eleanor Whitfield\",\"candidate_id\":\"" CAND "\","
	            "\"voting_time\":\"2026-05-07 09:15:00\"}",
	            TALLY_DECODE_ERR_UUID, "voter_id: not a UUID");
	expect_fail("{\"voter_id\":\"" VOTER "\",\"candidate_id\":\"" CAND "\","
	            "\"voting_time\":\"2026-02-30 09:15:00\"}",
	            TALLY_DECODE_ERR_TIME, "voting_time: day out of range");
	expect_fail("{\"voter_id\":\"" VOTER "\",\"candidate_id\":\"" CAND "\","
	            "\"voting_time\":\"2026-05-07T09:15:00\"}",
	            TALLY_DECODE_ERR_TIME, "voting_time: expected 'Z' or an offset after an ISO-8601 time");
	expect_fail("{\"voter_id\":\"" VOTER "\",\"candidate_id\":\"" CAND "\","
	            "\"voting_time\":\"2026-05-07 09:15:00\",\"voter_id\":\"" VOTER "\"}",
	            TALLY_DECODE_ERR_DUPLICATE, "field \"voter_id\" repeated");
	expect_fail("{\"vote\":1,\"voter_id\":5,\"vote\":1,\"voter_id\":6}",
	            TALLY_DECODE_ERR_DUPLICATE, "field \"vote\" repeated");
}

Test(decode, field_order)
{
	/* Field problems are reported in the order voter_id, candidate_id, voting_time, vote. */
	expect_fail("{\"vote\":7,\"voting_time\":\"x\",\"candidate_id\":1,\"voter_id\":\"y\"}",
	            TALLY_DECODE_ERR_UUID, "voter_id: not a UUID");
	expect_fail("{\"vote\":7,\"voting_time\":\"x\",\"candidate_id\":1}",
	            TALLY_DECODE_ERR_MISSING, "missing field \"voter_id\"");
	expect_fail("{\"vote\":7,\"voting_time\":\"x\",\"candidate_id\":1,\"voter_id\":\"" VOTER "\"}",
	            TALLY_DECODE_ERR_TYPE, "candidate_id: expected a string, got a number");
	expect_fail("{\"vote\":7,\"voting_time\":\"x\",\"candidate_id\":\"" CAND "\",\"voter_id\":\"" VOTER "\"}",
	            TALLY_DECODE_ERR_TIME, NULL);
	/* Syntax anywhere beats every field problem. */
	expect_fail("{\"vote\":7,\"x\":[1,]}", TALLY_DECODE_ERR_SYNTAX, "expected a value at byte 17");
}

Test(decode, syntax_details)
{
	expect_fail("", TALLY_DECODE_ERR_SYNTAX, "empty message");
	expect_fail(" \n", TALLY_DECODE_ERR_SYNTAX, "empty message");
	expect_fail("{\"a\":", TALLY_DECODE_ERR_SYNTAX, "unexpected end of message at byte 5");
	expect_fail("{\"a\":\"Zo\xc3\"}", TALLY_DECODE_ERR_SYNTAX, "invalid UTF-8 at byte 8");
	expect_fail("{\"a\":\"Zo\xed\xa0\x80\"}", TALLY_DECODE_ERR_SYNTAX, "invalid UTF-8 at byte 8");
	expect_fail("{\"a\":\"\t\"}", TALLY_DECODE_ERR_SYNTAX, "control character in a string at byte 6");
	expect_fail("{\"a\":\"\\x\"}", TALLY_DECODE_ERR_SYNTAX, "invalid escape at byte 6");
	expect_fail("{\"a\":\"\\ud800\"}", TALLY_DECODE_ERR_SYNTAX, "unpaired surrogate escape at byte 6");
	expect_fail("{\"a\":\"\\u0000\"}", TALLY_DECODE_ERR_SYNTAX, "\\u0000 in a string at byte 6");
	expect_fail("{\"a\":01}", TALLY_DECODE_ERR_SYNTAX, "invalid number at byte 5");
	expect_fail("{\"a\":9223372036854775808}", TALLY_DECODE_ERR_SYNTAX,
	            "integer out of int64 range at byte 5");
	expect_fail("{\"a\":1e309}", TALLY_DECODE_ERR_SYNTAX, "real number overflows a double at byte 5");
	expect_fail("{\"a\":nul}", TALLY_DECODE_ERR_SYNTAX, "invalid literal at byte 5");
	expect_fail("{\"a\" 1}", TALLY_DECODE_ERR_SYNTAX, "expected ':' after a key at byte 5");
	expect_fail("{\"a\":1 2}", TALLY_DECODE_ERR_SYNTAX, "expected ',' or '}' at byte 7");
	expect_fail("{\"a\":[1 2]}", TALLY_DECODE_ERR_SYNTAX, "expected ',' or ']' at byte 8");
	expect_fail("{1:2}", TALLY_DECODE_ERR_SYNTAX, "expected a string key at byte 1");
	expect_fail("{} x", TALLY_DECODE_ERR_SYNTAX, "unexpected data after the top-level value at byte 3");
	expect_fail("\xef\xbb\xbf{}", TALLY_DECODE_ERR_SYNTAX, "expected a value at byte 0");
}

Test(decode, not_object)
{
	expect_fail("[]", TALLY_DECODE_ERR_NOT_OBJECT, "top level is not an object");
	expect_fail(" \"x\" ", TALLY_DECODE_ERR_NOT_OBJECT, "top level is not an object");
	expect_fail("[1,", TALLY_DECODE_ERR_SYNTAX, NULL);
}

Test(decode, depth_limit)
{
	/* jansson counts every value, so 2048 containers pass only when the innermost is empty. */
	size_t n = 2048, k = 0;
	char *msg = malloc(4 * n + 16);

	msg[k++] = '{';
	memcpy(msg + k, "\"d\":", 4);
	k += 4;
	for (size_t i = 0; i < n - 1; i++)
		msg[k++] = '[';
	for (size_t i = 0; i < n - 1; i++)
		msg[k++] = ']';
	msg[k++] = '}';
	msg[k] = '\0';
	expect_fail(msg, TALLY_DECODE_ERR_MISSING, "missing field \"voter_id\"");

	k = 5;
	for (size_t i = 0; i < n - 1; i++)
		msg[k++] = '[';
	msg[k++] = '1';
	for (size_t i = 0; i < n - 1; i++)
		msg[k++] = ']';
	msg[k++] = '}';
	msg[k] = '\0';
	expect_fail(msg, TALLY_DECODE_ERR_SYNTAX, "nesting deeper than 2048 at byte 2052");
	free(msg);
}

Test(decode, nul_after_number_is_lost)
{
	/* jansson's lexer drops one NUL right after a number or literal; so must we. */
	static const char msg[] = "{\"voter_id\":\"" VOTER "\",\"candidate_id\":\"" CAND "\","
	                          "\"voting_time\":\"2026-05-07 09:15:00\",\"vote\":1\0,\"x\":null\0}";
	static const char two[] = "{\"vote\":1\0\0}";
	tally_vote_t vote;
	tally_decode_result_t res;

	cr_assert_eq(tally_decode_vote(NULL, msg, sizeof(msg) - 1, &vote, &res), TALLY_OK, "%s", res.detail);
	cr_assert_eq(tally_decode_vote(NULL, two, sizeof(two) - 1, &vote, &res), TALLY_EFORMAT);
	cr_assert_eq(res.cls, TALLY_DECODE_ERR_SYNTAX);
}

Test(decode, oversize_and_options)
{
	tally_decoder_opts_t opts = {.max_size = 16};
	tally_vote_t vote;
	tally_decode_result_t res;
	char *big = malloc(TALLY_DECODE_DEFAULT_MAX_SIZE + 1);

	cr_assert_eq(tally_decode_vote(&opts, "{\"voter_id\":\"abc\"}", 18, &vote, &res), TALLY_EFORMAT);
	cr_assert_eq(res.cls, TALLY_DECODE_ERR_OVERSIZE);
	cr_assert_str_eq(res.detail, "message of 18 bytes exceeds the limit of 16");
	cr_assert_eq(res.offset, 16);
	/* Larger limits are clamped to the default, which is also the upper bound. */
	opts.max_size = 10u * TALLY_DECODE_DEFAULT_MAX_SIZE;
	memset(big, ' ', TALLY_DECODE_DEFAULT_MAX_SIZE + 1);
	cr_assert_eq(tally_decode_vote(&opts, big, TALLY_DECODE_DEFAULT_MAX_SIZE + 1, &vote, &res),
	             TALLY_EFORMAT);
	cr_assert_eq(res.cls, TALLY_DECODE_ERR_OVERSIZE);
	cr_assert_eq(tally_decode_vote(&opts, big, TALLY_DECODE_DEFAULT_MAX_SIZE, &vote, NULL),
	             TALLY_EFORMAT);
	free(big);
}

Test(decode, detail_never_copies_input)
{
	tally_vote_t vote;
	tally_decode_result_t res;

	dec("{\"voter_id\":\"Eleanor Whitfield\"}", &vote, &res);
	cr_assert_null(strstr(res.detail, "Eleanor"));
	dec("{\"voter_id\":\"" VOTER "\",\"candidate_id\":\"" CAND "\",\"voting_time\":\"Whitfield\"}",
	    &vote, &res);
	cr_assert_eq(res.cls, TALLY_DECODE_ERR_TIME);
	cr_assert_null(strstr(res.detail, "Whitfield"));
}

Test(decode, corpus_classes)
{
	ref_msg_t *msgs;
	size_t n = ref_corpus_load(TALLY_TEST_DIR "/core/corpus", &msgs);
	size_t per_class[TALLY_DECODE_ERR__COUNT] = {0};

	cr_assert_geq(n, 200);
	for (size_t i = 0; i < n; i++) {
		int want = ref_corpus_class(msgs[i].name);
		tally_vote_t fast, ref;
		tally_decode_result_t fres, rres;
		char *copy = malloc(msgs[i].len ? msgs[i].len : 1);

		cr_assert_geq(want, 0, "%s: unknown class prefix", msgs[i].name);
		memcpy(copy, msgs[i].data, msgs[i].len);
		tally_decode_vote(NULL, copy, msgs[i].len, &fast, &fres);
		ref_decode_vote(NULL, copy, msgs[i].len, &ref, &rres);
		free(copy);
		cr_expect_eq(fres.cls, (unsigned)want, "%s: fast says %s (%s)", msgs[i].name,
		             tally_decode_err_name(fres.cls), fres.detail);
		cr_expect_eq(rres.cls, (unsigned)want, "%s: reference says %s (%s)", msgs[i].name,
		             tally_decode_err_name(rres.cls), rres.detail);
		if (want == TALLY_DECODE_ERR_NONE) {
			cr_expect(tally_uuid_equal(&fast.voter_id, &ref.voter_id), "%s", msgs[i].name);
			cr_expect(tally_uuid_equal(&fast.candidate_id, &ref.candidate_id), "%s", msgs[i].name);
			cr_expect_eq(fast.voting_time, ref.voting_time, "%s", msgs[i].name);
		}
		per_class[want]++;
	}
	for (int c = 0; c < TALLY_DECODE_ERR__COUNT; c++)
		cr_expect_gt(per_class[c], 0, "no corpus message of class %s", tally_decode_err_name(c));
	ref_corpus_free(msgs, n);
}

/*
 * tally_gen_vote_json(): the generator's vote writer for voters and candidates from
 * elsewhere (tally-sim). A good vote decodes to what it was made with, in the full shape
 * (every voter and candidate field, NULL ones as null) and the compact one; every malformed
 * kind is malformed to the core's decoder whatever the noise; a buffer too small reports
 * the length needed and the same noise then gives the same bytes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>
#include <jansson.h>

#include <tally/decode.h>
#include <tally/gen.h>
#include <tally/time.h>
#include <tally/uuid.h>
#include <tally/vote.h>

/* 2026-05-07 12:34:56Z */
#define WHEN 1778157296

static tally_gen_t *
make_gen(void)
{
	tally_gen_opts_t o;
	char err[256];
	tally_gen_t *gen;

	tally_gen_opts_init(&o);
	o.voters = 100;
	o.candidates = 4;
	gen = tally_gen_new(&o, err, sizeof(err));
	cr_assert_not_null(gen, "%s", err);
	return gen;
}

static void
expect_str(json_t *obj, const char *key, const char *want)
{
	json_t *v = json_object_get(obj, key);

	cr_assert_not_null(v, "no \"%s\"", key);
	if (want == NULL) {
		cr_assert(json_is_null(v), "\"%s\" should be null", key);
		return;
	}
	cr_assert(json_is_string(v), "\"%s\" is not a string", key);
	cr_assert_str_eq(json_string_value(v), want, "\"%s\"", key);
}

Test(gen_vote, full_shape_decodes_to_what_it_was_made_with)
{
	tally_gen_t *gen = make_gen();
	tally_gen_voter_t v;
	tally_gen_voter_fields_t f;
	tally_gen_candidate_t c;
	tally_vote_t vote;
	json_t *obj, *addr;
	char buf[TALLY_GEN_MSG_MAX];
	size_t len;

	tally_gen_voter(gen, 7, &v);
	tally_gen_voter_fields(&v, &f);
	cr_assert(tally_gen_candidate(gen, 2, &c));
	len = tally_gen_vote_json(&f, &c, WHEN, TALLY_GEN_MALFORMED_NONE, 42, false, buf,
	                          sizeof(buf));
	cr_assert_lt(len, sizeof(buf));
	cr_assert_eq(strlen(buf), len);
	cr_assert_eq(tally_decode_vote(NULL, buf, len, &vote, NULL), 0, "%s", buf);
	cr_assert(tally_uuid_equal(&vote.voter_id, &v.id));
	cr_assert(tally_uuid_equal(&vote.candidate_id, &c.id));
	cr_assert_eq(vote.voting_time, WHEN);

	obj = json_loads(buf, JSON_REJECT_DUPLICATES, NULL);
	cr_assert_not_null(obj, "%s", buf);
	cr_assert_eq(json_object_size(obj), 20);
	expect_str(obj, "voter_id", v.voter_id);
	expect_str(obj, "voter_name", v.voter_name);
	expect_str(obj, "date_of_birth", v.date_of_birth);
	expect_str(obj, "registration_number", v.registration_number);
	expect_str(obj, "email", v.email);
	expect_str(obj, "picture", v.picture);
	addr = json_object_get(obj, "address");
	cr_assert(json_is_object(addr));
	expect_str(addr, "state", v.state);
	expect_str(addr, "postcode", v.postcode);
	cr_assert_eq(json_integer_value(json_object_get(obj, "registered_age")), v.registered_age);
	expect_str(obj, "candidate_id", c.candidate_id);
	expect_str(obj, "candidate_name", c.candidate_name);
	expect_str(obj, "party_affiliation", c.party_affiliation);
	expect_str(obj, "biography", c.biography);
	expect_str(obj, "campaign_platform", c.campaign_platform);
	expect_str(obj, "photo_url", c.photo_url);
	expect_str(obj, "voting_time", "2026-05-07 12:34:56");
	cr_assert_eq(json_integer_value(json_object_get(obj, "vote")), 1);
	json_decref(obj);

	/* The voters_topic members are written as tally_gen_voter_json() writes them. */
	{
		char reg[TALLY_GEN_MSG_MAX];
		size_t rlen = tally_gen_voter_json(gen, 7, reg, sizeof(reg));

		cr_assert(rlen > 2 && strncmp(buf, reg, rlen - 1) == 0,
		          "vote does not start with the voters_topic value:\n%s\n%s", buf, reg);
	}
	tally_gen_destroy(gen);
}

Test(gen_vote, null_fields_are_null_and_compact_has_three_members)
{
	tally_gen_voter_fields_t f;
	tally_gen_candidate_t c;
	tally_uuid_t vid, cid;
	tally_vote_t vote;
	json_t *obj;
	char buf[TALLY_GEN_MSG_MAX];
	const char *vtext = "0b5c3c1e-8f0e-4c8e-9a53-6c1b1f2d3e4f";
	const char *ctext = "7d2f1a90-1111-4222-8333-944455556666";
	size_t len;

	memset(&f, 0, sizeof(f));
	memset(&c, 0, sizeof(c));
	f.voter_id = vtext;
	f.state = "Kent";
	f.registered_age = TALLY_GEN_NULL_INT;
	cr_assert(tally_uuid_parse(vtext, strlen(vtext), &vid));
	cr_assert(tally_uuid_parse(ctext, strlen(ctext), &cid));
	c.id = cid;
	c.candidate_id = ctext;
	len = tally_gen_vote_json(&f, &c, WHEN, 0, 1, false, buf, sizeof(buf));
	cr_assert_eq(tally_decode_vote(NULL, buf, len, &vote, NULL), 0, "%s", buf);
	cr_assert(tally_uuid_equal(&vote.voter_id, &vid));
	cr_assert(tally_uuid_equal(&vote.candidate_id, &cid));
	obj = json_loads(buf, 0, NULL);
	cr_assert_not_null(obj, "%s", buf);
	expect_str(obj, "voter_name", NULL);
	expect_str(obj, "email", NULL);
	expect_str(obj, "candidate_name", NULL);
	expect_str(obj, "biography", NULL);
	expect_str(json_object_get(obj, "address"), "street", NULL);
	expect_str(json_object_get(obj, "address"), "state", "Kent");
	cr_assert(json_is_null(json_object_get(obj, "registered_age")));
	json_decref(obj);

	len = tally_gen_vote_json(&f, &c, WHEN, 0, 1, true, buf, sizeof(buf));
	cr_assert_str_eq(buf, "{\"voter_id\":\"0b5c3c1e-8f0e-4c8e-9a53-6c1b1f2d3e4f\","
	                      "\"candidate_id\":\"7d2f1a90-1111-4222-8333-944455556666\","
	                      "\"voting_time\":\"2026-05-07 12:34:56\"}");
	cr_assert_eq(len, strlen(buf));
	cr_assert_eq(tally_decode_vote(NULL, buf, len, &vote, NULL), 0);
	cr_assert_eq(vote.voting_time, WHEN);
}

Test(gen_vote, every_malformed_kind_is_malformed)
{
	tally_gen_t *gen = make_gen();
	tally_gen_voter_t v;
	tally_gen_voter_fields_t f;
	tally_gen_candidate_t c;
	char buf[TALLY_GEN_MSG_MAX];

	cr_assert(tally_gen_candidate(gen, 1, &c));
	for (int compact = 0; compact < 2; compact++) {
		for (int kind = 1; kind < TALLY_GEN_MALFORMED__COUNT; kind++) {
			for (uint64_t noise = 0; noise < 200; noise++) {
				tally_vote_t vote;
				size_t len;

				tally_gen_voter(gen, noise % 100, &v);
				tally_gen_voter_fields(&v, &f);
				len = tally_gen_vote_json(&f, &c, WHEN, kind, noise, compact != 0, buf,
				                          sizeof(buf));
				cr_assert_lt(len, sizeof(buf));
				if (kind == TALLY_GEN_MALFORMED_EMPTY)
					cr_assert_eq(len, 0);
				cr_assert_neq(tally_decode_vote(NULL, buf, len, &vote, NULL), 0,
				              "kind \"%s\" (compact %d, noise %llu) decodes: %.*s",
				              tally_gen_malformed_name(kind), compact,
				              (unsigned long long)noise, (int)len, buf);
				cr_assert_eq(vote.reason, TALLY_REASON_MALFORMED);
			}
		}
	}
	tally_gen_destroy(gen);
}

Test(gen_vote, small_buffer_reports_the_length_and_noise_is_deterministic)
{
	tally_gen_t *gen = make_gen();
	tally_gen_voter_t v;
	tally_gen_voter_fields_t f;
	tally_gen_candidate_t c;
	char small[64], a[TALLY_GEN_MSG_MAX], b[TALLY_GEN_MSG_MAX];
	size_t need, la, lb;

	tally_gen_voter(gen, 3, &v);
	tally_gen_voter_fields(&v, &f);
	cr_assert(tally_gen_candidate(gen, 0, &c));
	need = tally_gen_vote_json(&f, &c, WHEN, 0, 9, false, small, sizeof(small));
	cr_assert_geq(need, sizeof(small));
	la = tally_gen_vote_json(&f, &c, WHEN, 0, 9, false, a, sizeof(a));
	cr_assert_eq(la, need);
	for (int kind = 0; kind < TALLY_GEN_MALFORMED__COUNT; kind++) {
		la = tally_gen_vote_json(&f, &c, WHEN, kind, 12345, false, a, sizeof(a));
		lb = tally_gen_vote_json(&f, &c, WHEN, kind, 12345, false, b, sizeof(b));
		cr_assert_eq(la, lb);
		cr_assert(memcmp(a, b, la) == 0, "kind %d differs between two calls", kind);
	}
	/* A cut message is a proper prefix of the good one. */
	lb = tally_gen_vote_json(&f, &c, WHEN, 0, 12345, false, b, sizeof(b));
	la = tally_gen_vote_json(&f, &c, WHEN, TALLY_GEN_MALFORMED_TRUNCATED, 12345, false, a,
	                         sizeof(a));
	cr_assert(la >= 1 && la < lb && memcmp(a, b, la) == 0);
	tally_gen_destroy(gen);
}

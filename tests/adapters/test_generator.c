/*
 * The election generator: determinism, random access to voters, the shapes of every
 * message, the fault mix, and a ground truth that agrees with an independent re-judging
 * of every message it emitted.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>
#include <jansson.h>

#include <tally/decode.h>
#include <tally/gen.h>
#include <tally/regmsg.h>
#include <tally/time.h>
#include <tally/uuid.h>
#include <tally/vote.h>

static tally_gen_t *
make_gen(const tally_gen_opts_t *o)
{
	char err[256] = "";
	tally_gen_t *gen = tally_gen_new(o, err, sizeof(err));

	cr_assert_not_null(gen, "tally_gen_new: %s", err);
	return gen;
}

static const char *
gen_err(const tally_gen_opts_t *o)
{
	static char err[256];
	tally_gen_t *gen;

	err[0] = '\0';
	gen = tally_gen_new(o, err, sizeof(err));
	if (gen != NULL) {
		tally_gen_destroy(gen);
		return "ok";
	}
	return err;
}

/* FNV-1a over a stream's whole output, messages and facts. */
static uint64_t
fnv(uint64_t h, const void *p, size_t n)
{
	const unsigned char *b = p;

	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 0x100000001b3ull;
	return h;
}

static uint64_t
stream_digest(const tally_gen_t *gen, unsigned index, unsigned nstreams, uint64_t *count)
{
	tally_gen_stream_t *st = tally_gen_stream_new(gen, index, nstreams);
	static char buf[TALLY_GEN_MSG_MAX];
	tally_gen_msg_t m;
	uint64_t h = 0xcbf29ce484222325ull;
	long n;

	cr_assert_not_null(st);
	*count = 0;
	while ((n = tally_gen_stream_next(st, buf, sizeof(buf), &m)) >= 0) {
		h = fnv(h, buf, (size_t)n);
		h = fnv(h, &m.reason, 1);
		h = fnv(h, &m.voter, sizeof(m.voter));
		(*count)++;
	}
	tally_gen_stream_destroy(st);
	return h;
}

Test(generator, defaults_are_the_originals)
{
	tally_gen_opts_t o;
	tally_gen_t *gen;
	char t[32];

	tally_gen_opts_init(&o);
	cr_assert_eq(o.voters, 100000);
	cr_assert_eq(o.candidates, 3);
	cr_assert_eq(o.parties, 3);
	cr_assert_str_eq(tally_time_format(o.opens_at, t), "2026-05-07 07:00:00");
	cr_assert_str_eq(tally_time_format(o.closes_at, t), "2026-05-07 22:00:00");
	o.voters = 1000;
	gen = make_gen(&o);
	cr_assert_eq(tally_gen_party_count(gen), 3);
	cr_assert_str_eq(tally_gen_party_name(gen, 0), "Management Party");
	cr_assert_str_eq(tally_gen_party_name(gen, 1), "Savior Party");
	cr_assert_str_eq(tally_gen_party_name(gen, 2), "Tech Republic Party");
	cr_assert_null(tally_gen_party_name(gen, 3));
	cr_assert_str_eq(tally_gen_region_name(gen, 0), "Greater London");
	cr_assert_eq(tally_gen_election_day(gen), tally_days_from_civil(2026, 5, 7));
	for (uint32_t c = 0; c < 3; c++) {
		tally_gen_candidate_t gc;

		cr_assert(tally_gen_candidate(gen, c, &gc));
		cr_assert_eq(gc.party, c);
		cr_assert_str_eq(gc.party_affiliation, tally_gen_party_name(gen, c));
		cr_assert_str_eq(gc.gender, c % 2 == 0 ? "male" : "female");
	}
	tally_gen_destroy(gen);
}

Test(generator, option_errors)
{
	tally_gen_opts_t o;

	tally_gen_opts_init(&o);
	o.voters = 0;
	cr_assert_str_eq(gen_err(&o), "voters: 0 is out of range 1 to 1000000000");
	tally_gen_opts_init(&o);
	o.candidates = 257;
	cr_assert_str_eq(gen_err(&o), "candidates: 257 is out of range 1 to 256");
	tally_gen_opts_init(&o);
	o.parties = 0;
	cr_assert_str_eq(gen_err(&o), "parties: 0 is out of range 1 to 64");
	tally_gen_opts_init(&o);
	o.regions = 1025;
	cr_assert_str_eq(gen_err(&o), "regions: 1025 is out of range 1 to 1024");
	tally_gen_opts_init(&o);
	o.turnout = 1.5;
	cr_assert_str_eq(gen_err(&o), "turnout: 1.5 is out of range 0 to 1");
	tally_gen_opts_init(&o);
	o.dup_rate = -0.1;
	cr_assert_str_eq(gen_err(&o), "dup_rate: -0.1 is out of range 0 to 1");
	tally_gen_opts_init(&o);
	o.dup_rate = 0.5;
	o.malformed_rate = 0.4;
	cr_assert_str_eq(gen_err(&o),
	                 "fault rates add up to 0.913; they must add up to less than 0.9");
	tally_gen_opts_init(&o);
	o.underage = 0;
	cr_assert_str_eq(gen_err(&o), "ineligible_rate: 0.002 needs voters under 18, but underage is 0");
	o.ineligible_rate = 0;
	cr_assert_str_eq(gen_err(&o), "ok");
	tally_gen_opts_init(&o);
	o.closes_at = o.opens_at;
	cr_assert_str_eq(gen_err(&o), "closes_at must be after opens_at");
	tally_gen_opts_init(&o);
	o.opens_at = 0;
	cr_assert_str_eq(gen_err(&o), "the election must be held between 1996 and 2094");
}

Test(generator, same_seed_same_bytes)
{
	tally_gen_opts_t o;
	tally_gen_t *a, *b;
	uint64_t na, nb;
	static char ja[TALLY_GEN_MSG_MAX], jb[TALLY_GEN_MSG_MAX];

	tally_gen_opts_init(&o);
	o.seed = 77;
	o.voters = 5000;
	o.candidates = 6;
	o.parties = 4;
	o.dup_rate = 0.05;
	o.malformed_rate = 0.05;
	a = make_gen(&o);
	b = make_gen(&o);
	for (unsigned s = 0; s < 3; s++)
		cr_assert_eq(stream_digest(a, s, 3, &na), stream_digest(b, s, 3, &nb));
	cr_assert_eq(na, nb);
	for (uint32_t c = 0; c < 6; c++) {
		tally_gen_candidate_json(a, c, ja, sizeof(ja));
		tally_gen_candidate_json(b, c, jb, sizeof(jb));
		cr_assert_str_eq(ja, jb);
	}
	for (uint64_t i = 0; i < 5000; i += 7) {
		tally_gen_voter_json(a, i, ja, sizeof(ja));
		tally_gen_voter_json(b, i, jb, sizeof(jb));
		cr_assert_str_eq(ja, jb);
	}
	tally_gen_destroy(b);

	/* Another seed: another election. */
	o.seed = 78;
	b = make_gen(&o);
	cr_assert_neq(stream_digest(a, 0, 1, &na), stream_digest(b, 0, 1, &nb));
	tally_gen_voter_json(a, 0, ja, sizeof(ja));
	tally_gen_voter_json(b, 0, jb, sizeof(jb));
	cr_assert_str_neq(ja, jb);
	tally_gen_destroy(a);
	tally_gen_destroy(b);
}

/* Golden values: the output is part of the contract (same seed, same election, anywhere). */
Test(generator, golden_seed_1)
{
	tally_gen_opts_t o;
	tally_gen_t *gen;
	tally_gen_candidate_t gc;
	tally_gen_voter_t v;

	tally_gen_opts_init(&o);
	gen = make_gen(&o);
	cr_assert(tally_gen_candidate(gen, 0, &gc));
	cr_assert_str_eq(gc.candidate_id, "47cce6e0-0ff6-4ceb-bf32-30adab95f9e5");
	cr_assert_str_eq(gc.candidate_name, "Mason Booth");
	tally_gen_voter(gen, 0, &v);
	cr_assert_str_eq(v.voter_id, "b6bc1ac3-d5e5-4211-b60b-a9a46a6e57de");
	cr_assert_str_eq(v.voter_name, "Matthew Parker");
	cr_assert_str_eq(v.date_of_birth, "1970-01-28");
	cr_assert_str_eq(v.registration_number, "purplemouse842");
	cr_assert_str_eq(v.state, "Staffordshire");
	tally_gen_destroy(gen);
}

Test(generator, voter_by_index_is_stable)
{
	tally_gen_opts_t o;
	tally_gen_t *a, *b;
	tally_gen_voter_t v1, v2, v3;
	tally_gen_voter_brief_t br;
	static char j1[TALLY_GEN_MSG_MAX], j2[TALLY_GEN_MSG_MAX];

	tally_gen_opts_init(&o);
	o.voters = 200000;
	a = make_gen(&o);
	/* Other rates, turnout and window do not change who the voters are. */
	o.turnout = 0.3;
	o.dup_rate = 0.2;
	o.compact = true;
	o.closes_at += 3600;
	b = make_gen(&o);

	tally_gen_voter(a, 123456, &v1);
	for (uint64_t i = 0; i < 1000; i++)
		tally_gen_voter(a, i * 191, &v2);
	tally_gen_voter(a, 123456, &v2);
	tally_gen_voter(b, 123456, &v3);
	/* Every field (the arrays' bytes after their terminators are not part of the value). */
	cr_assert_eq(v1.index, v2.index);
	cr_assert(tally_uuid_equal(&v1.id, &v2.id));
	cr_assert_str_eq(v1.voter_id, v2.voter_id);
	cr_assert_str_eq(v1.voter_name, v2.voter_name);
	cr_assert_str_eq(v1.date_of_birth, v2.date_of_birth);
	cr_assert_eq(v1.dob_days, v2.dob_days);
	cr_assert_str_eq(v1.gender, v2.gender);
	cr_assert_str_eq(v1.nationality, v2.nationality);
	cr_assert_str_eq(v1.registration_number, v2.registration_number);
	cr_assert_str_eq(v1.street, v2.street);
	cr_assert_str_eq(v1.city, v2.city);
	cr_assert_str_eq(v1.state, v2.state);
	cr_assert_eq(v1.region, v2.region);
	cr_assert_str_eq(v1.country, v2.country);
	cr_assert_str_eq(v1.postcode, v2.postcode);
	cr_assert_str_eq(v1.email, v2.email);
	cr_assert_str_eq(v1.phone_number, v2.phone_number);
	cr_assert_str_eq(v1.cell_number, v2.cell_number);
	cr_assert_str_eq(v1.picture, v2.picture);
	cr_assert_eq(v1.registered_age, v2.registered_age);
	cr_assert_eq(v1.underage, v2.underage);
	cr_assert_str_eq(v1.voter_id, v3.voter_id);
	cr_assert_str_eq(v1.voter_name, v3.voter_name);
	cr_assert_str_eq(v1.date_of_birth, v3.date_of_birth);
	cr_assert_str_eq(v1.registration_number, v3.registration_number);
	cr_assert_str_eq(v1.street, v3.street);
	cr_assert_str_eq(v1.postcode, v3.postcode);
	cr_assert_eq(v1.region, v3.region);
	tally_gen_voter_json(a, 123456, j1, sizeof(j1));
	tally_gen_voter_json(b, 123456, j2, sizeof(j2));
	cr_assert_str_eq(j1, j2);

	/* The brief record is the same facts as the full one, for every voter. */
	for (uint64_t i = 0; i < 200000; i += 13) {
		tally_gen_voter(a, i, &v1);
		tally_gen_voter_brief(a, i, &br);
		cr_assert(tally_uuid_equal(&br.id, &v1.id));
		cr_assert_eq(br.dob_days, v1.dob_days);
		cr_assert_eq(br.region, v1.region);
		cr_assert_eq(br.underage, v1.underage);
		cr_assert_str_eq(br.registration_number, v1.registration_number);
	}
	tally_gen_destroy(a);
	tally_gen_destroy(b);
}

static int
uuid_cmp(const void *pa, const void *pb)
{
	const tally_uuid_t *a = pa, *b = pb;

	if (a->hi != b->hi)
		return a->hi < b->hi ? -1 : 1;
	if (a->lo != b->lo)
		return a->lo < b->lo ? -1 : 1;
	return 0;
}

Test(generator, voters_ids_ages_and_regions)
{
	tally_gen_opts_t o;
	tally_gen_t *gen;
	uint64_t n = 100000, underage = 0, at_b18 = 0, at_b18_1 = 0, per_region[20] = {0}, sum = 0;
	int32_t eday, b18;
	tally_uuid_t *ids;

	tally_gen_opts_init(&o);
	o.voters = n;
	o.underage = 0.03;
	gen = make_gen(&o);
	eday = tally_gen_election_day(gen);
	b18 = tally_days_from_civil(2008, 5, 7);
	ids = calloc(n, sizeof(*ids));
	cr_assert_not_null(ids);
	for (uint64_t i = 0; i < n; i++) {
		tally_gen_voter_t v;

		tally_gen_voter(gen, i, &v);
		ids[i] = v.id;
		/* Version 4, variant 10. */
		cr_assert_eq(v.voter_id[14], '4');
		cr_assert(strchr("89ab", v.voter_id[19]) != NULL);
		if (v.underage) {
			underage++;
			/* 16 or 17 on election day. */
			cr_assert_gt(v.dob_days, b18);
			cr_assert_geq(v.dob_days, tally_days_from_civil(2008, 5, 8));
			cr_assert_leq(v.dob_days, tally_days_from_civil(2010, 5, 7));
		} else {
			cr_assert_leq(v.dob_days, b18);
			cr_assert_geq(v.dob_days, tally_days_from_civil(1931, 5, 7));
		}
		at_b18 += v.dob_days == b18;
		at_b18_1 += v.dob_days == b18 + 1;
		cr_assert(v.dob_days != b18 - 1 && v.dob_days != b18 - 2 && v.dob_days != b18 + 2,
		          "only the boundary day itself is used near the 18th birthday");
		cr_assert_lt(v.region, 20);
		cr_assert_str_eq(v.state, tally_gen_region_name(gen, v.region));
		per_region[v.region]++;
		cr_assert_lt(v.dob_days, eday);
	}
	/* The under-18 count is exact: round(voters * underage). */
	cr_assert_eq(underage, 3000);
	cr_assert_gt(at_b18, 0);
	cr_assert_gt(at_b18_1, 0);
	for (uint32_t r = 0; r < 20; r++) {
		cr_assert_eq(per_region[r], tally_gen_region_registered(gen, r));
		sum += per_region[r];
	}
	cr_assert_eq(sum, n);
	/* Skewed: Greater London, the first, is the largest by far. */
	for (uint32_t r = 1; r < 20; r++)
		cr_assert_gt(per_region[0], 2 * per_region[r]);
	/* Every id distinct. */
	qsort(ids, n, sizeof(*ids), uuid_cmp);
	for (uint64_t i = 1; i < n; i++)
		cr_assert(!tally_uuid_equal(&ids[i - 1], &ids[i]));
	free(ids);
	tally_gen_destroy(gen);
}

/* ---- shapes ------------------------------------------------------------------------ */

static const char *const voter_keys[] = {
	"voter_id", "voter_name", "date_of_birth", "gender", "nationality", "registration_number",
	"address", "email", "phone_number", "cell_number", "picture", "registered_age",
};
static const char *const address_keys[] = {"street", "city", "state", "country", "postcode"};
static const char *const candidate_keys[] = {
	"candidate_id", "candidate_name", "party_affiliation", "biography", "campaign_platform",
	"photo_url",
};

/* obj has exactly the keys listed (from up to three lists), each a non-empty string unless
 * it is "address" (an object) or "registered_age"/"vote" (integers). */
static void
assert_keys(json_t *obj, const char *const *k1, size_t n1, const char *const *k2, size_t n2,
            const char *const *k3, size_t n3)
{
	const char *const *lists[3] = {k1, k2, k3};
	size_t lens[3] = {n1, n2, n3}, total = 0;

	for (int l = 0; l < 3; l++) {
		for (size_t i = 0; i < lens[l]; i++) {
			const char *key = lists[l][i];
			json_t *v = json_object_get(obj, key);

			cr_assert_not_null(v, "missing %s", key);
			if (strcmp(key, "address") == 0)
				cr_assert(json_is_object(v));
			else if (strcmp(key, "registered_age") == 0 || strcmp(key, "vote") == 0)
				cr_assert(json_is_integer(v), "%s is not an integer", key);
			else if (strcmp(key, "campaign_platform") != 0 && strcmp(key, "biography") != 0)
				cr_assert(json_is_string(v) && json_string_length(v) > 0, "%s", key);
			else
				cr_assert(json_is_string(v), "%s", key);
			total++;
		}
	}
	cr_assert_eq(json_object_size(obj), total);
}

static json_t *
parse(const char *buf, size_t len)
{
	json_error_t jerr;
	json_t *j = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);

	cr_assert_not_null(j, "jansson: %s", jerr.text);
	return j;
}

Test(generator, registration_shapes)
{
	tally_gen_opts_t o;
	tally_gen_t *gen;
	static char buf[TALLY_GEN_MSG_MAX];

	tally_gen_opts_init(&o);
	o.voters = 3000;
	o.candidates = 9;
	o.parties = 5;
	gen = make_gen(&o);
	for (uint64_t i = 0; i < 3000; i++) {
		size_t n = tally_gen_voter_json(gen, i, buf, sizeof(buf));
		json_t *j = parse(buf, n), *addr;
		tally_gen_voter_t v;
		tally_regmsg_voter_t rm;
		char err[256];

		cr_assert_lt(n, sizeof(buf));
		cr_assert_eq(strlen(buf), n);
		assert_keys(j, voter_keys, 12, NULL, 0, NULL, 0);
		addr = json_object_get(j, "address");
		assert_keys(addr, address_keys, 5, NULL, 0, NULL, 0);
		tally_gen_voter(gen, i, &v);
		cr_assert_str_eq(json_string_value(json_object_get(j, "voter_id")), v.voter_id);
		cr_assert_str_eq(json_string_value(json_object_get(j, "nationality")), "GB");
		cr_assert_str_eq(json_string_value(json_object_get(addr, "country")), "United Kingdom");
		cr_assert_str_eq(json_string_value(json_object_get(addr, "state")), v.state);
		cr_assert_eq(json_integer_value(json_object_get(j, "registered_age")), v.registered_age);
		cr_assert_geq(v.registered_age, 1);
		cr_assert_leq(v.registered_age, 20);
		cr_assert(strncmp(v.picture, "https://randomuser.me/api/portraits/", 36) == 0);
		cr_assert_str_eq(json_string_value(json_object_get(j, "gender")), v.gender);
		json_decref(j);

		/* And the registration decoder takes it, with the same facts. */
		cr_assert_eq(tally_regmsg_decode_voter(buf, n, &rm, err, sizeof(err)), 0, "%s", err);
		cr_assert(tally_uuid_equal(&rm.reg.id, &v.id));
		cr_assert_eq(rm.reg.date_of_birth, v.dob_days);
		cr_assert_str_eq(rm.reg.region, v.state);
		cr_assert_str_eq(rm.reg.registration_number, v.registration_number);
	}
	for (uint32_t c = 0; c < 9; c++) {
		size_t n = tally_gen_candidate_json(gen, c, buf, sizeof(buf));
		json_t *j = parse(buf, n);
		tally_gen_candidate_t gc;
		tally_regmsg_candidate_t rm;
		char err[256];

		assert_keys(j, candidate_keys, 6, NULL, 0, NULL, 0);
		tally_gen_candidate(gen, c, &gc);
		cr_assert_str_eq(json_string_value(json_object_get(j, "candidate_name")), gc.candidate_name);
		cr_assert_str_eq(json_string_value(json_object_get(j, "party_affiliation")),
		                 tally_gen_party_name(gen, c % 5));
		json_decref(j);
		cr_assert_eq(tally_regmsg_decode_candidate(buf, n, &rm, err, sizeof(err)), 0, "%s", err);
		cr_assert(tally_uuid_equal(&rm.reg.id, &gc.id));
		cr_assert_str_eq(rm.reg.name, gc.candidate_name);
		cr_assert_str_eq(rm.reg.party, gc.party_affiliation);
		cr_assert_str_eq(rm.reg.photo_url, gc.photo_url);
	}
	cr_assert_eq(tally_gen_candidate_json(gen, 9, buf, sizeof(buf)), 0);
	/* snprintf semantics: a short buffer gets a terminated prefix and the full length. */
	{
		char small[16];
		size_t full = tally_gen_voter_json(gen, 0, buf, sizeof(buf));

		cr_assert_eq(tally_gen_voter_json(gen, 0, small, sizeof(small)), full);
		cr_assert_eq(strlen(small), 15);
		cr_assert(strncmp(small, buf, 15) == 0);
	}
	tally_gen_destroy(gen);
}

/* Check every message of one stream: shape, decoding, and the facts it reports. */
static void
check_vote_shapes(bool compact)
{
	tally_gen_opts_t o;
	tally_gen_t *gen;
	tally_gen_stream_t *st;
	static char buf[TALLY_GEN_MSG_MAX];
	static const char *const vote_keys[] = {"voting_time", "vote"};
	static const char *const compact_keys[] = {"voter_id", "candidate_id", "voting_time"};
	unsigned kinds_seen[TALLY_GEN_MALFORMED__COUNT] = {0};
	tally_gen_msg_t m;
	long n;

	tally_gen_opts_init(&o);
	o.voters = 20000;
	o.compact = compact;
	o.malformed_rate = 0.1;
	o.unknown_candidate_rate = 0.05;
	gen = make_gen(&o);
	st = tally_gen_stream_new(gen, 0, 1);
	while ((n = tally_gen_stream_next(st, buf, sizeof(buf), &m)) >= 0) {
		tally_vote_t vote;
		tally_decode_result_t res;
		int rc = tally_decode_vote(NULL, buf, (size_t)n, &vote, &res);

		cr_assert_eq(m.route, tally_uuid_hash(&m.voter_id));
		if (m.malformed != TALLY_GEN_MALFORMED_NONE) {
			cr_assert_eq(m.reason, TALLY_REASON_MALFORMED);
			cr_assert_neq(rc, 0, "kind %s decoded", tally_gen_malformed_name(m.malformed));
			cr_assert_eq(vote.reason, TALLY_REASON_MALFORMED);
			kinds_seen[m.malformed]++;
			continue;
		}
		cr_assert_eq(rc, 0, "decode: %s", res.detail);
		cr_assert(tally_uuid_equal(&vote.voter_id, &m.voter_id));
		cr_assert_eq(vote.voting_time, m.voting_time);
		if (m.candidate >= 0) {
			tally_gen_candidate_t gc;

			tally_gen_candidate(gen, (uint32_t)m.candidate, &gc);
			cr_assert(tally_uuid_equal(&vote.candidate_id, &gc.id));
		}
		{
			json_t *j = parse(buf, (size_t)n);
			char when[32];

			if (compact)
				assert_keys(j, compact_keys, 3, NULL, 0, NULL, 0);
			else
				assert_keys(j, voter_keys, 12, candidate_keys, 6, vote_keys, 2);
			cr_assert_str_eq(json_string_value(json_object_get(j, "voting_time")),
			                 tally_time_format(m.voting_time, when));
			if (!compact)
				cr_assert_eq(json_integer_value(json_object_get(j, "vote")), 1);
			json_decref(j);
		}
	}
	for (int k = 1; k < TALLY_GEN_MALFORMED__COUNT; k++)
		cr_assert_gt(kinds_seen[k], 10, "kind %s seen %u times", tally_gen_malformed_name(k),
		             kinds_seen[k]);
	/* Finished streams stay finished. */
	cr_assert_eq(tally_gen_stream_next(st, buf, sizeof(buf), &m), -1);
	cr_assert(tally_gen_stream_progress(st) == 1.0);
	tally_gen_stream_destroy(st);
	tally_gen_destroy(gen);
}

Test(generator, vote_shapes_original)
{
	check_vote_shapes(false);
}

Test(generator, vote_shapes_compact)
{
	check_vote_shapes(true);
}

/* ---- the ground truth -------------------------------------------------------------- */

/*
 * Run every stream and re-judge each message here, independently of the generator: the
 * core's checks in TALLY_REASON_MAP order over the facts the message carries, with one
 * "has voted" set for the whole election (not per stream). Then the generator's own
 * verdicts, its truth and the re-judged counts must all agree exactly.
 */
static void
check_truth(const tally_gen_opts_t *o, unsigned nstreams, uint64_t intended[TALLY_REASON__COUNT],
            uint64_t *adults_voting)
{
	tally_gen_t *gen = make_gen(o);
	tally_gen_truth_t *truth = tally_gen_truth_new(gen);
	uint32_t nc = tally_gen_candidate_count(gen), nr = tally_gen_region_count(gen);
	uint64_t *cells = calloc((size_t)nc * nr, sizeof(uint64_t));
	uint64_t rejected[TALLY_REASON__COUNT] = {0}, read = 0;
	uint8_t *voted = calloc(o->voters, 1);
	/* Voters turned away (time or candidate) before their vote counted. */
	uint8_t *turned_away = calloc(o->voters, 1);
	uint64_t counted_after_rejection = 0;
	static char buf[TALLY_GEN_MSG_MAX];

	cr_assert_not_null(truth);
	cr_assert(cells != NULL && voted != NULL);
	memset(intended, 0, TALLY_REASON__COUNT * sizeof(uint64_t));
	for (unsigned s = 0; s < nstreams; s++) {
		tally_gen_stream_t *st = tally_gen_stream_new(gen, s, nstreams);
		tally_gen_msg_t m;
		long n;
		int64_t last_time = 0;

		cr_assert_not_null(st);
		while ((n = tally_gen_stream_next(st, buf, sizeof(buf), &m)) >= 0) {
			int reason;

			cr_assert_eq(m.seq, tally_gen_stream_emitted(st) - 1);
			if (m.malformed)
				reason = TALLY_REASON_MALFORMED;
			else if (m.voting_time < o->opens_at)
				reason = TALLY_REASON_TOO_EARLY;
			else if (m.voting_time >= o->closes_at)
				reason = TALLY_REASON_TOO_LATE;
			else if (m.voter < 0)
				reason = TALLY_REASON_UNKNOWN_VOTER;
			else if (m.candidate < 0)
				reason = TALLY_REASON_UNKNOWN_CANDIDATE;
			else {
				tally_gen_voter_brief_t b;

				tally_gen_voter_brief(gen, (uint64_t)m.voter, &b);
				cr_assert(tally_uuid_equal(&b.id, &m.voter_id));
				cr_assert_eq((int32_t)b.region, m.region);
				if (b.underage)
					reason = TALLY_REASON_INELIGIBLE;
				else if (voted[m.voter])
					reason = TALLY_REASON_DUPLICATE;
				else
					reason = TALLY_REASON_ACCEPTED;
			}
			cr_assert_eq(m.reason, reason, "message %lu of stream %u", (unsigned long)m.seq, s);
			cr_assert_eq(m.intended, m.reason, "message %lu of stream %u", (unsigned long)m.seq, s);
			intended[m.intended]++;
			if (m.voter >= 0 && !voted[m.voter] &&
			    (reason == TALLY_REASON_TOO_EARLY || reason == TALLY_REASON_TOO_LATE ||
			     reason == TALLY_REASON_UNKNOWN_CANDIDATE))
				turned_away[m.voter] = 1;
			if (reason == TALLY_REASON_ACCEPTED) {
				counted_after_rejection += turned_away[m.voter];
				voted[m.voter] = 1;
				cells[(size_t)m.candidate * nr + (uint32_t)m.region]++;
				/* Accepted votes come in time order, give or take the jitter. */
				cr_assert_geq(m.voting_time, last_time - 240);
				last_time = m.voting_time;
			} else {
				rejected[reason]++;
			}
			read++;
		}
		tally_gen_truth_add(truth, st);
		tally_gen_stream_destroy(st);
	}

	/* The generator's truth is exactly what was re-judged here. */
	cr_assert_eq(truth->read, read);
	for (int r = 0; r < TALLY_REASON__COUNT; r++)
		cr_assert_eq(truth->rejected[r], rejected[r], "%s", tally_reason_name(r));
	cr_assert_eq(truth->rejected[TALLY_REASON_ACCEPTED], 0);
	cr_assert_eq(truth->rejected[TALLY_REASON_POLLS_CLOSED], 0);
	for (size_t i = 0; i < (size_t)nc * nr; i++)
		cr_assert_eq(truth->cand_region[i], cells[i]);

	/* And internally consistent, as a snapshot must be. */
	{
		uint64_t by_c = 0, by_r = 0, by_p = 0, rej = 0, reg = 0, voters_voted = 0;

		for (uint32_t c = 0; c < nc; c++) {
			uint64_t row = 0;

			for (uint32_t r = 0; r < nr; r++)
				row += truth->cand_region[(size_t)c * nr + r];
			cr_assert_eq(truth->candidates[c], row);
			by_c += truth->candidates[c];
		}
		for (uint32_t r = 0; r < nr; r++) {
			uint64_t col = 0;

			for (uint32_t c = 0; c < nc; c++)
				col += truth->cand_region[(size_t)c * nr + r];
			cr_assert_eq(truth->regions[r], col);
			cr_assert_leq(truth->regions[r], truth->region_registered[r]);
			by_r += truth->regions[r];
			reg += truth->region_registered[r];
		}
		for (uint32_t p = 0; p < truth->nparties; p++) {
			uint64_t sum = 0;

			for (uint32_t c = 0; c < nc; c++) {
				tally_gen_candidate_t gc;

				tally_gen_candidate(gen, c, &gc);
				if (gc.party == p)
					sum += truth->candidates[c];
			}
			cr_assert_eq(truth->parties[p], sum);
			by_p += truth->parties[p];
		}
		for (int r = 0; r < TALLY_REASON__COUNT; r++)
			rej += truth->rejected[r];
		for (uint64_t i = 0; i < o->voters; i++)
			voters_voted += voted[i];
		cr_assert_eq(by_c, truth->accepted);
		cr_assert_eq(by_r, truth->accepted);
		cr_assert_eq(by_p, truth->accepted);
		cr_assert_eq(rej, truth->rejected_total);
		cr_assert_eq(truth->accepted + truth->rejected_total, truth->read);
		cr_assert_eq(reg, o->voters);
		cr_assert_eq(truth->registered, o->voters);
		/* One accepted vote per voter who voted. */
		cr_assert_eq(voters_voted, truth->accepted);
		*adults_voting = voters_voted;
	}
	/* Rejected votes do not use a voter up: some who were turned away voted later. */
	if (o->late_rate + o->early_rate + o->unknown_candidate_rate > 0.05)
		cr_assert_gt(counted_after_rejection, 0);
	free(cells);
	free(voted);
	free(turned_away);
	tally_gen_truth_destroy(truth);
	tally_gen_destroy(gen);
}

Test(generator, truth_agrees_with_rejudging)
{
	tally_gen_opts_t o;
	uint64_t intended[TALLY_REASON__COUNT], voting;

	tally_gen_opts_init(&o);
	o.seed = 2024;
	o.voters = 60000;
	o.candidates = 5;
	o.parties = 4;
	o.regions = 30;
	o.underage = 0.05;
	o.dup_rate = 0.08;
	o.malformed_rate = 0.04;
	o.unknown_voter_rate = 0.03;
	o.unknown_candidate_rate = 0.03;
	o.late_rate = 0.03;
	o.early_rate = 0.03;
	o.ineligible_rate = 0.03;
	check_truth(&o, 1, intended, &voting);
	check_truth(&o, 4, intended, &voting);
	o.compact = true;
	check_truth(&o, 3, intended, &voting);
}

Test(generator, no_faults_means_no_rejections)
{
	tally_gen_opts_t o;
	uint64_t intended[TALLY_REASON__COUNT], voting;

	tally_gen_opts_init(&o);
	o.voters = 20000;
	o.turnout = 1.0;
	o.underage = 0;
	o.dup_rate = o.malformed_rate = o.unknown_voter_rate = o.unknown_candidate_rate = 0;
	o.late_rate = o.early_rate = o.ineligible_rate = 0;
	check_truth(&o, 2, intended, &voting);
	/* Everyone votes, once. */
	cr_assert_eq(voting, 20000);
	cr_assert_eq(intended[TALLY_REASON_ACCEPTED], 20000);
	for (int r = 1; r < TALLY_REASON__COUNT; r++)
		cr_assert_eq(intended[r], 0);
}

Test(generator, fault_fractions_as_requested)
{
	tally_gen_opts_t o;
	uint64_t intended[TALLY_REASON__COUNT], voting, total = 0, adults;
	const struct {
		int reason;
		double rate;
	} want[] = {
		{TALLY_REASON_DUPLICATE, 0.05},        {TALLY_REASON_MALFORMED, 0.03},
		{TALLY_REASON_UNKNOWN_VOTER, 0.02},    {TALLY_REASON_UNKNOWN_CANDIDATE, 0.02},
		{TALLY_REASON_TOO_LATE, 0.02},         {TALLY_REASON_TOO_EARLY, 0.01},
		{TALLY_REASON_INELIGIBLE, 0.015},
	};

	tally_gen_opts_init(&o);
	o.voters = 200000;
	o.turnout = 0.6;
	o.underage = 0.02;
	o.dup_rate = 0.05;
	o.malformed_rate = 0.03;
	o.unknown_voter_rate = 0.02;
	o.unknown_candidate_rate = 0.02;
	o.late_rate = 0.02;
	o.early_rate = 0.01;
	o.ineligible_rate = 0.015;
	check_truth(&o, 2, intended, &voting);
	for (int r = 0; r < TALLY_REASON__COUNT; r++)
		total += intended[r];
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		double got = (double)intended[want[i].reason] / (double)total;

		/* ~2500 or more of each: 10% is many standard deviations. */
		cr_assert(got > want[i].rate * 0.9 && got < want[i].rate * 1.1, "%s: %f of messages",
		          tally_reason_name(want[i].reason), got);
	}
	/* Turnout: share of adult voters with an accepted vote (regions vary by +-15%). */
	adults = 200000 - 4000;
	cr_assert((double)voting / (double)adults > 0.57 && (double)voting / (double)adults < 0.63,
	          "turnout %f", (double)voting / (double)adults);
}

Test(generator, voting_times_and_window)
{
	tally_gen_opts_t o;
	tally_gen_t *gen;
	tally_gen_stream_t *st;
	static char buf[TALLY_GEN_MSG_MAX];
	tally_gen_msg_t m;
	uint64_t early_edge = 0, late_edge = 0, at_open = 0, n_acc = 0, hours[15] = {0};
	double first_half = 0, second_half = 0;
	uint64_t n1 = 0, n2 = 0, emitted;

	tally_gen_opts_init(&o);
	o.voters = 100000;
	o.late_rate = 0.02;
	o.early_rate = 0.02;
	gen = make_gen(&o);
	st = tally_gen_stream_new(gen, 0, 1);
	while (tally_gen_stream_next(st, buf, sizeof(buf), &m) >= 0) {
		if (m.reason == TALLY_REASON_TOO_EARLY) {
			cr_assert_lt(m.voting_time, o.opens_at);
			cr_assert_geq(m.voting_time, o.opens_at - 7200);
			early_edge += m.voting_time == o.opens_at - 1;
			continue;
		}
		if (m.reason == TALLY_REASON_TOO_LATE) {
			cr_assert_geq(m.voting_time, o.closes_at);
			cr_assert_lt(m.voting_time, o.closes_at + 7200);
			late_edge += m.voting_time == o.closes_at;
			continue;
		}
		cr_assert_geq(m.voting_time, o.opens_at);
		cr_assert_lt(m.voting_time, o.closes_at);
		if (m.reason == TALLY_REASON_ACCEPTED) {
			at_open += m.voting_time == o.opens_at;
			hours[(m.voting_time - o.opens_at) / 3600]++;
			n_acc++;
		}
	}
	emitted = tally_gen_stream_emitted(st);
	tally_gen_stream_destroy(st);

	/* The edges are exercised: one second before the open and the close itself. */
	cr_assert_gt(early_edge, 0);
	cr_assert_gt(late_edge, 0);
	cr_assert_geq(at_open, 1);
	/* Morning and evening peaks: 17:00-18:00 is busier than 12:00-13:00. */
	cr_assert_gt(hours[10], hours[5] * 3 / 2);
	for (int h = 0; h < 15; h++)
		cr_assert_gt(hours[h], n_acc / 40);

	/* Monotone-ish: the first half of the stream is earlier in the day than the second. */
	st = tally_gen_stream_new(gen, 0, 1);
	for (uint64_t i = 0; tally_gen_stream_next(st, buf, sizeof(buf), &m) >= 0; i++) {
		if (m.reason != TALLY_REASON_ACCEPTED)
			continue;
		if (i < emitted / 2) {
			first_half += (double)(m.voting_time - o.opens_at);
			n1++;
		} else {
			second_half += (double)(m.voting_time - o.opens_at);
			n2++;
		}
	}
	cr_assert_lt(first_half / (double)n1 + 3 * 3600, second_half / (double)n2);
	tally_gen_stream_destroy(st);
	tally_gen_destroy(gen);
}

Test(generator, large_tables_have_distinct_names)
{
	tally_gen_opts_t o;
	tally_gen_t *gen;

	tally_gen_opts_init(&o);
	o.voters = 5000;
	o.candidates = TALLY_GEN_MAX_CANDIDATES;
	o.parties = TALLY_GEN_MAX_PARTIES;
	o.regions = TALLY_GEN_MAX_REGIONS;
	gen = make_gen(&o);
	cr_assert_eq(tally_gen_party_count(gen), 64);
	cr_assert_eq(tally_gen_region_count(gen), 1024);
	cr_assert_eq(tally_gen_candidate_count(gen), 256);
	for (uint32_t a = 0; a < 64; a++)
		for (uint32_t b = a + 1; b < 64; b++)
			cr_assert_str_neq(tally_gen_party_name(gen, a), tally_gen_party_name(gen, b));
	for (uint32_t a = 0; a < 1024; a++) {
		cr_assert_lt(strlen(tally_gen_region_name(gen, a)), 64);
		for (uint32_t b = a + 1; b < 1024; b++)
			cr_assert_str_neq(tally_gen_region_name(gen, a), tally_gen_region_name(gen, b));
	}
	for (uint32_t a = 0; a < 256; a++) {
		tally_gen_candidate_t ca, cb;

		tally_gen_candidate(gen, a, &ca);
		cr_assert_eq(ca.party, a % 64);
		for (uint32_t b = a + 1; b < 256; b++) {
			tally_gen_candidate(gen, b, &cb);
			cr_assert_str_neq(ca.candidate_name, cb.candidate_name);
			cr_assert(!tally_uuid_equal(&ca.id, &cb.id));
		}
	}
	tally_gen_destroy(gen);
}

Test(generator, bad_stream_arguments)
{
	tally_gen_opts_t o;
	tally_gen_t *gen;
	tally_gen_stream_t *st;
	char small[64];

	tally_gen_opts_init(&o);
	o.voters = 10;
	gen = make_gen(&o);
	cr_assert_null(tally_gen_stream_new(gen, 0, 0));
	cr_assert_null(tally_gen_stream_new(gen, 2, 2));
	cr_assert_null(tally_gen_stream_new(gen, 0, TALLY_GEN_MAX_STREAMS + 1));
	/* More streams than voters: some streams own nobody but still emit faults or end. */
	st = tally_gen_stream_new(gen, 15, 16);
	cr_assert_not_null(st);
	tally_gen_stream_destroy(st);
	/* A buffer below TALLY_GEN_MSG_MAX is refused. */
	st = tally_gen_stream_new(gen, 0, 1);
	cr_assert_eq(tally_gen_stream_next(st, small, sizeof(small), NULL), -1);
	tally_gen_stream_destroy(st);
	tally_gen_stream_destroy(NULL);
	tally_gen_truth_destroy(NULL);
	tally_gen_destroy(gen);
	tally_gen_destroy(NULL);
}

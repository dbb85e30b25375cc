/*
 * Registration messages: the original voters_topic and candidates_topic shapes decode into
 * registry structs; every kind of bad message fails with its exact error text, and no error
 * quotes the message.
 */
#include <stdio.h>
#include <string.h>

#include <criterion/criterion.h>

#include <tally/error.h>
#include <tally/regmsg.h>
#include <tally/time.h>
#include <tally/uuid.h>

/* A voters_topic value as the original main.py produced it (json.dumps of the dict). */
#define VOTER_ID "6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b"
#define VOTER_HEAD "{\"voter_id\": \"" VOTER_ID "\", \"voter_name\": \"Alice Smith\", "
#define VOTER_DOB "\"date_of_birth\": \"1990-04-21\", "
#define VOTER_MID                                                                          \
	"\"gender\": \"female\", \"nationality\": \"GB\", "                                   \
	"\"registration_number\": \"purplelion482\", "
#define VOTER_ADDRESS                                                                      \
	"\"address\": {\"street\": \"12 High Street\", \"city\": \"Leeds\", "                 \
	"\"state\": \"West Yorkshire\", \"country\": \"United Kingdom\", "                   \
	"\"postcode\": \"LS1 4AB\"}, "
#define VOTER_TAIL                                                                         \
	"\"email\": \"alice.smith@example.com\", \"phone_number\": \"01632 960123\", "       \
	"\"cell_number\": \"07700 900123\", "                                                \
	"\"picture\": \"https://randomuser.me/api/portraits/women/12.jpg\", "                 \
	"\"registered_age\": 7}"
#define VOTER_JSON VOTER_HEAD VOTER_DOB VOTER_MID VOTER_ADDRESS VOTER_TAIL

#define CAND_ID "0a1b2c3d-4e5f-4a6b-9c7d-8e9fa0b1c2d3"

static int
voter(const char *json, tally_regmsg_voter_t *out, char *err, size_t err_size)
{
	err[0] = '\0';
	return tally_regmsg_decode_voter(json, strlen(json), out, err, err_size);
}

static int
candidate(const char *json, tally_regmsg_candidate_t *out, char *err, size_t err_size)
{
	err[0] = '\0';
	return tally_regmsg_decode_candidate(json, strlen(json), out, err, err_size);
}

/* The error for a voter message, or "ok". */
static const char *
voter_err(const char *json)
{
	static char err[256];
	tally_regmsg_voter_t v;

	if (voter(json, &v, err, sizeof(err)) == 0)
		return "ok";
	return err;
}

static const char *
candidate_err(const char *json)
{
	static char err[256];
	static tally_regmsg_candidate_t c;

	if (candidate(json, &c, err, sizeof(err)) == 0)
		return "ok";
	return err;
}

Test(regmsg, voter_original_shape)
{
	tally_regmsg_voter_t v;
	tally_uuid_t id;
	char err[256];

	cr_assert_eq(voter(VOTER_JSON, &v, err, sizeof(err)), 0, "%s", err);
	cr_assert(tally_uuid_parse(VOTER_ID, 36, &id));
	cr_assert(tally_uuid_equal(&v.reg.id, &id));
	cr_assert_eq(v.reg.date_of_birth, tally_days_from_civil(1990, 4, 21));
	cr_assert_str_eq(v.reg.region, "West Yorkshire");
	cr_assert_str_eq(v.reg.registration_number, "purplelion482");
	cr_assert_eq(v.reg.region, v.region);
	cr_assert_eq(v.reg.registration_number, v.registration_number);
}

Test(regmsg, voter_not_nul_terminated)
{
	/* The length counts, not a terminator: decode a prefix of a longer buffer. */
	char buf[sizeof(VOTER_JSON) + 8];
	tally_regmsg_voter_t v;
	char err[256];

	memcpy(buf, VOTER_JSON, sizeof(VOTER_JSON) - 1);
	memcpy(buf + sizeof(VOTER_JSON) - 1, "garbage!", 8);
	cr_assert_eq(tally_regmsg_decode_voter(buf, sizeof(VOTER_JSON) - 1, &v, err, sizeof(err)), 0,
	             "%s", err);
	cr_assert_str_eq(v.reg.region, "West Yorkshire");
}

Test(regmsg, voter_minimal_and_optional_nulls)
{
	tally_regmsg_voter_t v;
	char err[256];

	cr_assert_eq(voter("{\"voter_id\":\"" VOTER_ID "\",\"date_of_birth\":\"2000-02-29\","
	                   "\"address\":{\"state\":\"Kent\"}}",
	                   &v, err, sizeof(err)),
	             0, "%s", err);
	cr_assert_eq(v.reg.date_of_birth, tally_days_from_civil(2000, 2, 29));
	cr_assert_str_eq(v.reg.region, "Kent");
	cr_assert_str_eq(v.reg.registration_number, "");

	cr_assert_eq(voter("{\"voter_id\":\"" VOTER_ID "\",\"date_of_birth\":\"2000-01-01\","
	                   "\"address\":{\"state\":\"Kent\",\"city\":null},\"email\":null,"
	                   "\"registration_number\":null,\"registered_age\":null,\"extra\":[1,{}]}",
	                   &v, err, sizeof(err)),
	             0, "%s", err);
	cr_assert_str_eq(v.reg.registration_number, "");
}

Test(regmsg, voter_upper_case_id)
{
	tally_regmsg_voter_t v;
	tally_uuid_t id;
	char err[256];

	cr_assert_eq(voter("{\"voter_id\":\"6F1C2A3B-4D5E-4F60-8A7B-9C0D1E2F3A4B\","
	                   "\"date_of_birth\":\"1990-04-21\",\"address\":{\"state\":\"Kent\"}}",
	                   &v, err, sizeof(err)),
	             0, "%s", err);
	cr_assert(tally_uuid_parse(VOTER_ID, 36, &id));
	cr_assert(tally_uuid_equal(&v.reg.id, &id));
}

Test(regmsg, voter_dob_as_randomuser_datetime)
{
	tally_regmsg_voter_t v;
	char err[256];

	/* randomuser's dob.date, which the original stored as it came. */
	cr_assert_eq(voter("{\"voter_id\":\"" VOTER_ID "\",\"date_of_birth\":"
	                   "\"1958-04-21T10:57:47.642Z\",\"address\":{\"state\":\"Kent\"}}",
	                   &v, err, sizeof(err)),
	             0, "%s", err);
	cr_assert_eq(v.reg.date_of_birth, tally_days_from_civil(1958, 4, 21));
	/* An offset moves the instant, and the UTC date is the one kept. */
	cr_assert_eq(voter("{\"voter_id\":\"" VOTER_ID "\",\"date_of_birth\":"
	                   "\"1958-04-21T23:30:00-02:00\",\"address\":{\"state\":\"Kent\"}}",
	                   &v, err, sizeof(err)),
	             0, "%s", err);
	cr_assert_eq(v.reg.date_of_birth, tally_days_from_civil(1958, 4, 22));
}

Test(regmsg, voter_json_errors)
{
	cr_assert_str_eq(voter_err(""), "invalid JSON at byte 0: unexpected end of input");
	cr_assert_str_eq(voter_err("{"), "invalid JSON at byte 1: unexpected end of input");
	cr_assert_str_eq(voter_err("{\"a\":1}x"), "invalid JSON at byte 8: unexpected data after the value");
	cr_assert_str_eq(voter_err("{\"a\":1,\"a\":2}"), "invalid JSON at byte 10: duplicate key");
	cr_assert_str_eq(voter_err("{\"a\":\"\\u0000\"}"), "invalid JSON at byte 13: NUL character in a string");
	cr_assert_str_eq(voter_err("{\"a\":\"\xff\"}"), "invalid JSON at byte 6: invalid UTF-8");
	cr_assert_str_eq(voter_err("nul"), "invalid JSON at byte 3: syntax error");
	cr_assert_str_eq(voter_err("{\"a\":1e999}"), "invalid JSON at byte 10: number out of range");
	cr_assert_str_eq(voter_err("[1]"), "expected a JSON object");
	cr_assert_str_eq(voter_err("\"x\""), "expected a JSON object");
	cr_assert_str_eq(voter_err("null"), "expected a JSON object");
}

Test(regmsg, voter_field_errors)
{
#define D "\"date_of_birth\":\"1990-04-21\""
#define I "\"voter_id\":\"" VOTER_ID "\""
#define A "\"address\":{\"state\":\"Kent\"}"
	cr_assert_str_eq(voter_err("{" D "," A "}"), "voter_id: missing");
	cr_assert_str_eq(voter_err("{\"voter_id\":null," D "," A "}"), "voter_id: missing");
	cr_assert_str_eq(voter_err("{\"voter_id\":5," D "," A "}"), "voter_id: expected a string");
	cr_assert_str_eq(voter_err("{\"voter_id\":\"abc\"," D "," A "}"), "voter_id: not a UUID");
	cr_assert_str_eq(voter_err("{\"voter_id\":\"6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4g\"," D "," A "}"),
	                 "voter_id: not a UUID");
	cr_assert_str_eq(voter_err("{\"voter_id\":\"00000000-0000-0000-0000-000000000000\"," D "," A "}"),
	                 "voter_id: the nil UUID is not an id");

	cr_assert_str_eq(voter_err("{" I "," A "}"), "date_of_birth: missing");
	cr_assert_str_eq(voter_err("{" I ",\"date_of_birth\":19900421," A "}"),
	                 "date_of_birth: expected a string");
	cr_assert_str_eq(voter_err("{" I ",\"date_of_birth\":\"1990-13-01\"," A "}"),
	                 "date_of_birth: not a date (expected YYYY-MM-DD or an ISO-8601 date-time)");
	cr_assert_str_eq(voter_err("{" I ",\"date_of_birth\":\"1990-02-30\"," A "}"),
	                 "date_of_birth: not a date (expected YYYY-MM-DD or an ISO-8601 date-time)");
	cr_assert_str_eq(voter_err("{" I ",\"date_of_birth\":\"21/04/1990\"," A "}"),
	                 "date_of_birth: not a date (expected YYYY-MM-DD or an ISO-8601 date-time)");
	cr_assert_str_eq(voter_err("{" I ",\"date_of_birth\":\"1990-04-21Tnoon\"," A "}"),
	                 "date_of_birth: not a date (expected YYYY-MM-DD or an ISO-8601 date-time)");

	cr_assert_str_eq(voter_err("{" I "," D "}"), "address: missing");
	cr_assert_str_eq(voter_err("{" I "," D ",\"address\":\"Kent\"}"), "address: expected an object");
	cr_assert_str_eq(voter_err("{" I "," D ",\"address\":{}}"), "address.state: missing");
	cr_assert_str_eq(voter_err("{" I "," D ",\"address\":{\"state\":7}}"),
	                 "address.state: expected a string");
	cr_assert_str_eq(voter_err("{" I "," D ",\"address\":{\"state\":null}}"),
	                 "address.state: missing");
	cr_assert_str_eq(voter_err("{" I "," D ",\"address\":{\"state\":\"\"}}"), "address.state: empty");
	cr_assert_str_eq(voter_err("{" I "," D ",\"address\":{\"state\":\"Kent\",\"city\":[]}}"),
	                 "address.city: expected a string");
	cr_assert_str_eq(voter_err("{" I "," D ",\"address\":{\"state\":\"Kent\",\"street\":1}}"),
	                 "address.street: expected a string");
	cr_assert_str_eq(voter_err("{" I "," D ",\"address\":{\"state\":\"Kent\",\"country\":true}}"),
	                 "address.country: expected a string");
	cr_assert_str_eq(voter_err("{" I "," D ",\"address\":{\"state\":\"Kent\",\"postcode\":1}}"),
	                 "address.postcode: expected a string");

	cr_assert_str_eq(voter_err("{" I "," D "," A ",\"registration_number\":42}"),
	                 "registration_number: expected a string");
	cr_assert_str_eq(voter_err("{" I "," D "," A ",\"voter_name\":{}}"),
	                 "voter_name: expected a string");
	cr_assert_str_eq(voter_err("{" I "," D "," A ",\"gender\":0}"), "gender: expected a string");
	cr_assert_str_eq(voter_err("{" I "," D "," A ",\"nationality\":0}"),
	                 "nationality: expected a string");
	cr_assert_str_eq(voter_err("{" I "," D "," A ",\"email\":0}"), "email: expected a string");
	cr_assert_str_eq(voter_err("{" I "," D "," A ",\"phone_number\":0}"),
	                 "phone_number: expected a string");
	cr_assert_str_eq(voter_err("{" I "," D "," A ",\"cell_number\":0}"),
	                 "cell_number: expected a string");
	cr_assert_str_eq(voter_err("{" I "," D "," A ",\"picture\":0}"), "picture: expected a string");
	cr_assert_str_eq(voter_err("{" I "," D "," A ",\"registered_age\":\"7\"}"),
	                 "registered_age: expected an integer");
	cr_assert_str_eq(voter_err("{" I "," D "," A ",\"registered_age\":7.5}"),
	                 "registered_age: expected an integer");
	cr_assert_str_eq(voter_err("{" I "," D "," A ",\"registered_age\":-1}"),
	                 "registered_age: negative");
	cr_assert_str_eq(voter_err("{" I "," D "," A ",\"registered_age\":0}"), "ok");
#undef D
#undef I
#undef A
}

Test(regmsg, voter_length_limits)
{
	char json[1024], name[300];

	/* address.state: at most 255 bytes. */
	memset(name, 'a', 255);
	name[255] = '\0';
	snprintf(json, sizeof(json), "{\"voter_id\":\"%s\",\"date_of_birth\":\"1990-04-21\","
	         "\"address\":{\"state\":\"%s\"}}", VOTER_ID, name);
	cr_assert_str_eq(voter_err(json), "ok");
	strcat(name, "a");
	snprintf(json, sizeof(json), "{\"voter_id\":\"%s\",\"date_of_birth\":\"1990-04-21\","
	         "\"address\":{\"state\":\"%s\"}}", VOTER_ID, name);
	cr_assert_str_eq(voter_err(json), "address.state: longer than 255 bytes");

	/* registration_number: at most 63 bytes. */
	memset(name, 'b', 63);
	name[63] = '\0';
	snprintf(json, sizeof(json), "{\"voter_id\":\"%s\",\"date_of_birth\":\"1990-04-21\","
	         "\"address\":{\"state\":\"Kent\"},\"registration_number\":\"%s\"}", VOTER_ID, name);
	cr_assert_str_eq(voter_err(json), "ok");
	strcat(name, "b");
	snprintf(json, sizeof(json), "{\"voter_id\":\"%s\",\"date_of_birth\":\"1990-04-21\","
	         "\"address\":{\"state\":\"Kent\"},\"registration_number\":\"%s\"}", VOTER_ID, name);
	cr_assert_str_eq(voter_err(json), "registration_number: longer than 63 bytes");
}

Test(regmsg, errors_never_quote_the_message)
{
	static const char *const bad[] = {
		"{\"voter_name\": \"Alice Smith\"",
		"{\"voter_name\": \"Alice Smith\" \"x\"}",
		"{\"voter_id\": \"Alice Smith\", \"date_of_birth\": \"1990-04-21\"}",
		"{\"voter_id\": \"" VOTER_ID "\", \"date_of_birth\": \"Alice Smith\"}",
		"{\"voter_id\": \"" VOTER_ID "\", \"date_of_birth\": \"1990-04-21\", "
		"\"address\": {\"state\": \"Kent\"}, \"email\": [\"Alice Smith\"]}",
		"{\"Alice Smith\": 1, \"Alice Smith\": 2}",
		"Alice Smith",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *err = voter_err(bad[i]);

		cr_assert_str_neq(err, "ok", "case %zu decoded", i);
		cr_assert_null(strstr(err, "Alice"), "case %zu: %s", i, err);
		cr_assert_null(strstr(err, "Smith"), "case %zu: %s", i, err);
	}
}

Test(regmsg, errstr_may_be_null_or_small)
{
	tally_regmsg_voter_t v;
	char small[8];

	cr_assert_eq(tally_regmsg_decode_voter("[]", 2, &v, NULL, 0), TALLY_EFORMAT);
	cr_assert_eq(tally_regmsg_decode_voter("[]", 2, &v, small, sizeof(small)), TALLY_EFORMAT);
	cr_assert_str_eq(small, "expecte");
}

#define CAND_JSON                                                                          \
	"{\"candidate_id\": \"" CAND_ID "\", \"candidate_name\": \"Mason Booth\", "           \
	"\"party_affiliation\": \"Management Party\", "                                       \
	"\"biography\": \"A brief bio of the candidate.\", "                                  \
	"\"campaign_platform\": \"Key campaign promises or platform.\", "                     \
	"\"photo_url\": \"https://randomuser.me/api/portraits/men/18.jpg\"}"

Test(regmsg, candidate_original_shape)
{
	tally_regmsg_candidate_t c;
	tally_uuid_t id;
	char err[256];

	cr_assert_eq(candidate(CAND_JSON, &c, err, sizeof(err)), 0, "%s", err);
	cr_assert(tally_uuid_parse(CAND_ID, 36, &id));
	cr_assert(tally_uuid_equal(&c.reg.id, &id));
	cr_assert_str_eq(c.reg.name, "Mason Booth");
	cr_assert_str_eq(c.reg.party, "Management Party");
	cr_assert_str_eq(c.reg.photo_url, "https://randomuser.me/api/portraits/men/18.jpg");
	cr_assert_eq(c.reg.name, c.name);
	cr_assert_eq(c.reg.party, c.party);
	cr_assert_eq(c.reg.photo_url, c.photo_url);
}

Test(regmsg, candidate_minimal)
{
	tally_regmsg_candidate_t c;
	char err[256];

	cr_assert_eq(candidate("{\"candidate_id\":\"" CAND_ID "\",\"candidate_name\":\"X\","
	                       "\"party_affiliation\":\"P\",\"photo_url\":null,\"biography\":null}",
	                       &c, err, sizeof(err)),
	             0, "%s", err);
	cr_assert_str_eq(c.reg.photo_url, "");
}

Test(regmsg, candidate_errors)
{
#define I "\"candidate_id\":\"" CAND_ID "\""
#define N "\"candidate_name\":\"Mason Booth\""
#define P "\"party_affiliation\":\"Management Party\""
	cr_assert_str_eq(candidate_err("[]"), "expected a JSON object");
	cr_assert_str_eq(candidate_err("{" I "," N "," P),
	                 "invalid JSON at byte 124: unexpected end of input");
	cr_assert_str_eq(candidate_err("{" N "," P "}"), "candidate_id: missing");
	cr_assert_str_eq(candidate_err("{\"candidate_id\":1," N "," P "}"),
	                 "candidate_id: expected a string");
	cr_assert_str_eq(candidate_err("{\"candidate_id\":\"x\"," N "," P "}"),
	                 "candidate_id: not a UUID");
	cr_assert_str_eq(candidate_err("{" I "," P "}"), "candidate_name: missing");
	cr_assert_str_eq(candidate_err("{" I ",\"candidate_name\":\"\"," P "}"), "candidate_name: empty");
	cr_assert_str_eq(candidate_err("{" I ",\"candidate_name\":[]," P "}"),
	                 "candidate_name: expected a string");
	cr_assert_str_eq(candidate_err("{" I "," N "}"), "party_affiliation: missing");
	cr_assert_str_eq(candidate_err("{" I "," N ",\"party_affiliation\":\"\"}"),
	                 "party_affiliation: empty");
	cr_assert_str_eq(candidate_err("{" I "," N ",\"party_affiliation\":null}"),
	                 "party_affiliation: missing");
	cr_assert_str_eq(candidate_err("{" I "," N "," P ",\"biography\":1}"),
	                 "biography: expected a string");
	cr_assert_str_eq(candidate_err("{" I "," N "," P ",\"campaign_platform\":{}}"),
	                 "campaign_platform: expected a string");
	cr_assert_str_eq(candidate_err("{" I "," N "," P ",\"photo_url\":false}"),
	                 "photo_url: expected a string");
#undef I
#undef N
#undef P
}

Test(regmsg, candidate_length_limits)
{
	static char json[4096 + 512], url[TALLY_URL_MAX + 2], name[TALLY_NAME_MAX + 2];

	memset(url, 'u', TALLY_URL_MAX);
	url[TALLY_URL_MAX] = '\0';
	snprintf(json, sizeof(json), "{\"candidate_id\":\"%s\",\"candidate_name\":\"N\","
	         "\"party_affiliation\":\"P\",\"photo_url\":\"%s\"}", CAND_ID, url);
	cr_assert_str_eq(candidate_err(json), "ok");
	strcat(url, "u");
	snprintf(json, sizeof(json), "{\"candidate_id\":\"%s\",\"candidate_name\":\"N\","
	         "\"party_affiliation\":\"P\",\"photo_url\":\"%s\"}", CAND_ID, url);
	cr_assert_str_eq(candidate_err(json), "photo_url: longer than 2047 bytes");

	memset(name, 'n', TALLY_NAME_MAX + 1);
	name[TALLY_NAME_MAX + 1] = '\0';
	snprintf(json, sizeof(json), "{\"candidate_id\":\"%s\",\"candidate_name\":\"%s\","
	         "\"party_affiliation\":\"P\"}", CAND_ID, name);
	cr_assert_str_eq(candidate_err(json), "candidate_name: longer than 255 bytes");
	snprintf(json, sizeof(json), "{\"candidate_id\":\"%s\",\"candidate_name\":\"N\","
	         "\"party_affiliation\":\"%s\"}", CAND_ID, name);
	cr_assert_str_eq(candidate_err(json), "party_affiliation: longer than 255 bytes");
}

/*
 * Registration messages (voters_topic, candidates_topic) to registry structs, with jansson.
 * Every error names the member and never quotes the input (see include/tally/regmsg.h).
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include <tally/error.h>
#include <tally/regmsg.h>
#include <tally/time.h>
#include <tally/uuid.h>

static int
fail(char *errstr, size_t errstr_size, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	tally_errstr_vset(errstr, errstr_size, fmt, ap);
	va_end(ap);
	return TALLY_EFORMAT;
}

/* jansson's own error text quotes the input ("near 'Smith'"), so only its code is used. */
static const char *
json_code_text(enum json_error_code code)
{
	switch (code) {
	case json_error_invalid_utf8:
		return "invalid UTF-8";
	case json_error_premature_end_of_input:
		return "unexpected end of input";
	case json_error_end_of_input_expected:
		return "unexpected data after the value";
	case json_error_null_character:
	case json_error_null_byte_in_key:
		return "NUL character in a string";
	case json_error_duplicate_key:
		return "duplicate key";
	case json_error_numeric_overflow:
		return "number out of range";
	case json_error_stack_overflow:
		return "nested too deeply";
	default:
		return "syntax error";
	}
}

/* Parse buf into an object, or fail with a message. */
static json_t *
load_object(const char *buf, size_t len, int *rc, char *errstr, size_t errstr_size)
{
	json_error_t jerr;
	json_t *root;

	root = json_loadb(buf, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
	if (root == NULL) {
		if (json_error_code(&jerr) == json_error_out_of_memory) {
			fail(errstr, errstr_size, "out of memory");
			*rc = TALLY_ENOMEM;
			return NULL;
		}
		*rc = fail(errstr, errstr_size, "invalid JSON at byte %d: %s", jerr.position,
		           json_code_text(json_error_code(&jerr)));
		return NULL;
	}
	if (!json_is_object(root)) {
		json_decref(root);
		*rc = fail(errstr, errstr_size, "expected a JSON object");
		return NULL;
	}
	*rc = 0;
	return root;
}

/* Flags of a string member. */
enum {
	REQUIRED = 1 << 0,  /* absent (or null) is an error */
	NONEMPTY = 1 << 1,
};

/*
 * Check member `key` of obj (named `path` in errors) is a string of at most max bytes.
 * Null counts as absent. *out is NULL when an optional member is absent.
 * Returns 0 or TALLY_EFORMAT.
 */
static int
get_string(json_t *obj, const char *key, const char *path, unsigned flags, size_t max,
           const char **out, size_t *out_len, char *errstr, size_t errstr_size)
{
	json_t *v = json_object_get(obj, key);
	size_t len;

	*out = NULL;
	if (out_len != NULL)
		*out_len = 0;
	if (v == NULL || json_is_null(v)) {
		if (flags & REQUIRED)
			return fail(errstr, errstr_size, "%s: missing", path);
		return 0;
	}
	if (!json_is_string(v))
		return fail(errstr, errstr_size, "%s: expected a string", path);
	len = json_string_length(v);
	if (len == 0 && (flags & NONEMPTY))
		return fail(errstr, errstr_size, "%s: empty", path);
	if (max > 0 && len > max)
		return fail(errstr, errstr_size, "%s: longer than %zu bytes", path, max);
	*out = json_string_value(v);
	if (out_len != NULL)
		*out_len = len;
	return 0;
}

static int
get_uuid(json_t *obj, const char *key, tally_uuid_t *id, char *errstr, size_t errstr_size)
{
	const char *s;
	size_t len;
	int rc = get_string(obj, key, key, REQUIRED, 0, &s, &len, errstr, errstr_size);

	if (rc != 0)
		return rc;
	if (!tally_uuid_parse(s, len, id))
		return fail(errstr, errstr_size, "%s: not a UUID", key);
	if (tally_uuid_is_nil(id))
		return fail(errstr, errstr_size, "%s: the nil UUID is not an id", key);
	return 0;
}

/* Copy a checked string (len <= size - 1) into a caller's buffer. */
static void
copy_into(char *dst, size_t size, const char *s, size_t len)
{
	if (s == NULL)
		len = 0;
	if (len >= size)
		len = size - 1;
	if (len > 0)
		memcpy(dst, s, len);
	dst[len] = '\0';
}

/* date_of_birth: "YYYY-MM-DD", or an ISO-8601 date-time of which the UTC date counts. */
static int
get_dob(json_t *obj, int32_t *days, char *errstr, size_t errstr_size)
{
	const char *s;
	size_t len;
	int64_t secs;
	int rc = get_string(obj, "date_of_birth", "date_of_birth", REQUIRED, 0, &s, &len, errstr,
	                    errstr_size);

	if (rc != 0)
		return rc;
	if (len == 10 && tally_date_parse(s, len, days))
		return 0;
	if (len > 10 && s[10] == 'T' && tally_time_parse(s, len, &secs, NULL)) {
		int64_t d = secs >= 0 ? secs / 86400 : -((-secs + 86399) / 86400);

		if (d >= INT32_MIN && d <= INT32_MAX) {
			*days = (int32_t)d;
			return 0;
		}
	}
	return fail(errstr, errstr_size,
	            "date_of_birth: not a date (expected YYYY-MM-DD or an ISO-8601 date-time)");
}

int
tally_regmsg_decode_voter(const char *buf, size_t len, tally_regmsg_voter_t *out, char *errstr,
                          size_t errstr_size)
{
	static const char *const optional[] = {
		"voter_name", "gender", "nationality", "email", "phone_number", "cell_number",
		"picture",
	};
	static const char *const address_optional[][2] = {
		{"street", "address.street"},
		{"city", "address.city"},
		{"country", "address.country"},
		{"postcode", "address.postcode"},
	};
	json_t *root, *address, *age;
	const char *s;
	size_t slen;
	int rc;

	root = load_object(buf, len, &rc, errstr, errstr_size);
	if (root == NULL)
		return rc;
	memset(out, 0, sizeof(*out));

	if ((rc = get_uuid(root, "voter_id", &out->reg.id, errstr, errstr_size)) != 0)
		goto done;
	if ((rc = get_dob(root, &out->reg.date_of_birth, errstr, errstr_size)) != 0)
		goto done;

	address = json_object_get(root, "address");
	if (address == NULL || json_is_null(address)) {
		rc = fail(errstr, errstr_size, "address: missing");
		goto done;
	}
	if (!json_is_object(address)) {
		rc = fail(errstr, errstr_size, "address: expected an object");
		goto done;
	}
	rc = get_string(address, "state", "address.state", REQUIRED | NONEMPTY, TALLY_NAME_MAX, &s,
	                &slen, errstr, errstr_size);
	if (rc != 0)
		goto done;
	copy_into(out->region, sizeof(out->region), s, slen);
	for (size_t i = 0; i < sizeof(address_optional) / sizeof(address_optional[0]); i++) {
		rc = get_string(address, address_optional[i][0], address_optional[i][1], 0, 0, &s,
		                NULL, errstr, errstr_size);
		if (rc != 0)
			goto done;
	}

	rc = get_string(root, "registration_number", "registration_number", 0, TALLY_REGNO_MAX, &s,
	                &slen, errstr, errstr_size);
	if (rc != 0)
		goto done;
	copy_into(out->registration_number, sizeof(out->registration_number), s, slen);

	for (size_t i = 0; i < sizeof(optional) / sizeof(optional[0]); i++) {
		rc = get_string(root, optional[i], optional[i], 0, 0, &s, NULL, errstr, errstr_size);
		if (rc != 0)
			goto done;
	}
	age = json_object_get(root, "registered_age");
	if (age != NULL && !json_is_null(age)) {
		if (!json_is_integer(age)) {
			rc = fail(errstr, errstr_size, "registered_age: expected an integer");
			goto done;
		}
		if (json_integer_value(age) < 0) {
			rc = fail(errstr, errstr_size, "registered_age: negative");
			goto done;
		}
	}

	out->reg.region = out->region;
	out->reg.registration_number = out->registration_number;
	rc = 0;
done:
	json_decref(root);
	return rc;
}

int
tally_regmsg_decode_candidate(const char *buf, size_t len, tally_regmsg_candidate_t *out,
                              char *errstr, size_t errstr_size)
{
	json_t *root;
	const char *s;
	size_t slen;
	int rc;

	root = load_object(buf, len, &rc, errstr, errstr_size);
	if (root == NULL)
		return rc;
	memset(&out->reg, 0, sizeof(out->reg));

	if ((rc = get_uuid(root, "candidate_id", &out->reg.id, errstr, errstr_size)) != 0)
		goto done;
	rc = get_string(root, "candidate_name", "candidate_name", REQUIRED | NONEMPTY,
	                TALLY_NAME_MAX, &s, &slen, errstr, errstr_size);
	if (rc != 0)
		goto done;
	copy_into(out->name, sizeof(out->name), s, slen);
	rc = get_string(root, "party_affiliation", "party_affiliation", REQUIRED | NONEMPTY,
	                TALLY_NAME_MAX, &s, &slen, errstr, errstr_size);
	if (rc != 0)
		goto done;
	copy_into(out->party, sizeof(out->party), s, slen);
	if ((rc = get_string(root, "biography", "biography", 0, 0, &s, NULL, errstr,
	                     errstr_size)) != 0)
		goto done;
	if ((rc = get_string(root, "campaign_platform", "campaign_platform", 0, 0, &s, NULL, errstr,
	                     errstr_size)) != 0)
		goto done;
	rc = get_string(root, "photo_url", "photo_url", 0, TALLY_URL_MAX, &s, &slen, errstr,
	                errstr_size);
	if (rc != 0)
		goto done;
	copy_into(out->photo_url, sizeof(out->photo_url), s, slen);
	rc = get_string(root, "contest_id", "contest_id", 0, TALLY_CONTEST_ID_MAX, &s, &slen,
	                errstr, errstr_size);
	if (rc != 0)
		goto done;
	copy_into(out->contest, sizeof(out->contest), s, slen);

	out->reg.contest = out->contest[0] != '\0' ? out->contest : NULL;
	out->reg.name = out->name;
	out->reg.party = out->party;
	out->reg.photo_url = out->photo_url;
	rc = 0;
done:
	json_decref(root);
	return rc;
}

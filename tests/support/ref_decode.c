/*
 * The reference vote decoder (see ref_decode.h). Written for obviousness, not speed, and
 * deliberately sharing no code with core/decode.c or core/time.c.
 */
#include <ctype.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include <tally/error.h>

#include "ref_decode.h"

static const char *const read_keys[4] = {"voter_id", "candidate_id", "voting_time", "vote"};

static void
ref_set(tally_decode_result_t *res, tally_decode_err_t cls, const char *detail)
{
	res->cls = cls;
	res->offset = 0;
	size_t n = strlen(detail);

	if (n >= sizeof(res->detail))
		n = sizeof(res->detail) - 1;
	memcpy(res->detail, detail, n);
	res->detail[n] = '\0';
}

static bool
ref_leap(long y)
{
	if (y % 400 == 0)
		return true;
	if (y % 100 == 0)
		return false;
	return y % 4 == 0;
}

static long
ref_mdays(long y, long m)
{
	switch (m) {
	case 2:
		return ref_leap(y) ? 29 : 28;
	case 4: case 6: case 9: case 11:
		return 30;
	default:
		return 31;
	}
}

/* Value of the two digits at s. The caller has checked they are digits. */
static long
two(const char *s)
{
	char tmp[3] = {s[0], s[1], 0};

	return strtol(tmp, NULL, 10);
}

bool
ref_time_parse(const char *text, size_t len, int64_t *secs)
{
	static const char pattern[] = "dddd-dd-dd?dd:dd:dd";
	char head[20];
	int y, mo, d, h, mi, s;
	char sep;
	const char *rest;
	size_t rlen, ndig;
	long off = 0;
	struct tm tm;

	if (len < 19)
		return false;
	for (size_t i = 0; i < 19; i++) {
		unsigned char c = (unsigned char)text[i];

		if (pattern[i] == 'd' && !isdigit(c))
			return false;
		if (pattern[i] == '?' && c != ' ' && c != 'T')
			return false;
		if (pattern[i] != 'd' && pattern[i] != '?' && c != (unsigned char)pattern[i])
			return false;
	}
	memcpy(head, text, 19);
	head[19] = '\0';
	if (sscanf(head, "%4d-%2d-%2d%c%2d:%2d:%2d", &y, &mo, &d, &sep, &h, &mi, &s) != 7)
		return false;
	if (y < 1 || mo < 1 || mo > 12 || d < 1 || d > ref_mdays(y, mo))
		return false;
	if (h > 23 || mi > 59 || s > 59)
		return false;

	rest = text + 19;
	rlen = len - 19;
	if (rlen > 0 && rest[0] == '.') {
		ndig = 0;
		while (ndig + 1 < rlen && isdigit((unsigned char)rest[1 + ndig]))
			ndig++;
		if (ndig == 0)
			return false;
		rest += 1 + ndig;
		rlen -= 1 + ndig;
	}
	if (sep == ' ') {
		if (rlen != 0)
			return false;
	} else if (rlen == 1 && rest[0] == 'Z') {
		off = 0;
	} else if (rlen == 6 && (rest[0] == '+' || rest[0] == '-') && isdigit((unsigned char)rest[1]) &&
	           isdigit((unsigned char)rest[2]) && rest[3] == ':' &&
	           isdigit((unsigned char)rest[4]) && isdigit((unsigned char)rest[5])) {
		long oh = two(rest + 1), om = two(rest + 4);

		if (oh > 23 || om > 59)
			return false;
		off = (oh * 60 + om) * 60;
		if (rest[0] == '-')
			off = -off;
	} else {
		return false;
	}

	memset(&tm, 0, sizeof(tm));
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = s;
	*secs = (int64_t)timegm(&tm) - off;
	return true;
}

/* The reference's own UUID check: 8-4-4-4-12 hex digits, either case. */
static bool
ref_uuid(const char *text, size_t len, tally_uuid_t *out)
{
	char hex[33];
	size_t n = 0;
	char part[17];

	if (len != 36)
		return false;
	for (size_t i = 0; i < 36; i++) {
		bool dash = i == 8 || i == 13 || i == 18 || i == 23;

		if (dash) {
			if (text[i] != '-')
				return false;
		} else {
			if (!isxdigit((unsigned char)text[i]))
				return false;
			hex[n++] = text[i];
		}
	}
	hex[n] = '\0';
	memcpy(part, hex, 16);
	part[16] = '\0';
	out->hi = strtoull(part, NULL, 16);
	out->lo = strtoull(hex + 16, NULL, 16);
	return true;
}

/* Decode the JSON string body s[0..n) (valid: jansson accepted it) into out; @returns length. */
static size_t
ref_unescape(const char *s, size_t n, char *out)
{
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		if (s[i] != '\\') {
			out[o++] = s[i];
			continue;
		}
		i++;
		if (s[i] != 'u') {
			const char *from = "\"\\/bfnrt", *to = "\"\\/\b\f\n\r\t";

			out[o++] = to[strchr(from, s[i]) - from];
			continue;
		}
		char h[5] = {s[i + 1], s[i + 2], s[i + 3], s[i + 4], 0};
		unsigned long cp = strtoul(h, NULL, 16);

		i += 4;
		if (cp >= 0xD800 && cp <= 0xDBFF) {
			char l[5] = {s[i + 3], s[i + 4], s[i + 5], s[i + 6], 0};

			cp = 0x10000 + ((cp - 0xD800) << 10) + (strtoul(l, NULL, 16) - 0xDC00);
			i += 6;
		}
		if (cp < 0x80) {
			out[o++] = (char)cp;
		} else if (cp < 0x800) {
			out[o++] = (char)(0xC0 | (cp >> 6));
			out[o++] = (char)(0x80 | (cp & 0x3F));
		} else if (cp < 0x10000) {
			out[o++] = (char)(0xE0 | (cp >> 12));
			out[o++] = (char)(0x80 | ((cp >> 6) & 0x3F));
			out[o++] = (char)(0x80 | (cp & 0x3F));
		} else {
			out[o++] = (char)(0xF0 | (cp >> 18));
			out[o++] = (char)(0x80 | ((cp >> 12) & 0x3F));
			out[o++] = (char)(0x80 | ((cp >> 6) & 0x3F));
			out[o++] = (char)(0x80 | (cp & 0x3F));
		}
	}
	return o;
}

/*
 * Count each read key among the top-level keys of a text jansson accepted as an object: a
 * key is a string at depth 1 followed by ':'. @returns the first read key (in text order)
 * whose second appearance comes first, or -1.
 */
static int
ref_first_repeat(const char *buf, size_t len)
{
	int count[4] = {0, 0, 0, 0};
	int depth = 0;
	char *tmp = malloc(len + 1);

	for (size_t i = 0; i < len; i++) {
		char c = buf[i];

		if (c == '{' || c == '[') {
			depth++;
		} else if (c == '}' || c == ']') {
			depth--;
		} else if (c == '"') {
			size_t start = ++i;

			while (buf[i] != '"')
				i += buf[i] == '\\' ? 2 : 1;
			if (depth != 1)
				continue;
			size_t j = i + 1;

			while (j < len && strchr(" \t\r\n", buf[j]) && buf[j] != '\0')
				j++;
			if (j >= len || buf[j] != ':')
				continue;
			size_t n = ref_unescape(buf + start, i - start, tmp);

			for (int k = 0; k < 4; k++) {
				if (n == strlen(read_keys[k]) && memcmp(tmp, read_keys[k], n) == 0 &&
				    ++count[k] == 2) {
					free(tmp);
					return k;
				}
			}
		}
	}
	free(tmp);
	return -1;
}

int
ref_decode_vote(const tally_decoder_opts_t *opts, const char *buf, size_t len,
                tally_vote_t *vote, tally_decode_result_t *res)
{
	tally_decode_result_t spare;
	size_t max = opts && opts->max_size ? opts->max_size : TALLY_DECODE_DEFAULT_MAX_SIZE;
	json_error_t jerr;
	json_t *root, *v;
	tally_uuid_t ids[2];
	int64_t when = 0;
	int dup;

	if (!res)
		res = &spare;
	memset(vote, 0, sizeof(*vote));
	vote->reason = TALLY_REASON_MALFORMED;
	if (max > TALLY_DECODE_DEFAULT_MAX_SIZE)
		max = TALLY_DECODE_DEFAULT_MAX_SIZE;
	if (len > max) {
		ref_set(res, TALLY_DECODE_ERR_OVERSIZE, "oversize");
		return TALLY_EFORMAT;
	}

	root = json_loadb(buf, len, 0, &jerr);
	if (!root) {
		json_t *any = json_loadb(buf, len, JSON_DECODE_ANY, &jerr);

		ref_set(res, any ? TALLY_DECODE_ERR_NOT_OBJECT : TALLY_DECODE_ERR_SYNTAX,
		        any ? "scalar at top level" : jerr.text);
		json_decref(any);
		return TALLY_EFORMAT;
	}
	if (!json_is_object(root)) {
		ref_set(res, TALLY_DECODE_ERR_NOT_OBJECT, "array at top level");
		json_decref(root);
		return TALLY_EFORMAT;
	}

	dup = ref_first_repeat(buf, len);
	if (dup >= 0) {
		ref_set(res, TALLY_DECODE_ERR_DUPLICATE, read_keys[dup]);
		json_decref(root);
		return TALLY_EFORMAT;
	}

	for (int k = 0; k < 4; k++) {
		v = json_object_get(root, read_keys[k]);
		if (!v) {
			if (k == 3)
				continue;
			ref_set(res, TALLY_DECODE_ERR_MISSING, read_keys[k]);
			goto fail;
		}
		if (k == 3) {
			if (!json_is_integer(v)) {
				ref_set(res, TALLY_DECODE_ERR_TYPE, "vote not an integer");
				goto fail;
			}
			if (json_integer_value(v) != 1) {
				ref_set(res, TALLY_DECODE_ERR_VOTE, "vote not 1");
				goto fail;
			}
			continue;
		}
		if (!json_is_string(v)) {
			ref_set(res, TALLY_DECODE_ERR_TYPE, "not a string");
			goto fail;
		}
		if (k < 2 && !ref_uuid(json_string_value(v), json_string_length(v), &ids[k])) {
			ref_set(res, TALLY_DECODE_ERR_UUID, "not a uuid");
			goto fail;
		}
		if (k == 2 && !ref_time_parse(json_string_value(v), json_string_length(v), &when)) {
			ref_set(res, TALLY_DECODE_ERR_TIME, "not a time");
			goto fail;
		}
	}
	json_decref(root);
	vote->voter_id = ids[0];
	vote->candidate_id = ids[1];
	vote->voting_time = when;
	vote->reason = TALLY_REASON_ACCEPTED;
	ref_set(res, TALLY_DECODE_ERR_NONE, "");
	return TALLY_OK;

fail:
	json_decref(root);
	return TALLY_EFORMAT;
}

static int
cmp_msg(const void *a, const void *b)
{
	return strcmp(((const ref_msg_t *)a)->name, ((const ref_msg_t *)b)->name);
}

size_t
ref_corpus_load(const char *dir, ref_msg_t **out)
{
	DIR *dh = opendir(dir);
	struct dirent *de;
	ref_msg_t *msgs = NULL;
	size_t n = 0, cap = 0;

	if (!dh) {
		fprintf(stderr, "could not open \"%s\"\n", dir);
		abort();
	}
	while ((de = readdir(dh)) != NULL) {
		size_t nl = strlen(de->d_name);
		char path[4096];
		FILE *f;
		long size;

		if (nl < 6 || strcmp(de->d_name + nl - 5, ".json") != 0)
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 256;
			msgs = realloc(msgs, cap * sizeof(*msgs));
		}
		snprintf(msgs[n].name, sizeof(msgs[n].name), "%s", de->d_name);
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		f = fopen(path, "rb");
		if (!f || fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0 ||
		    fseek(f, 0, SEEK_SET) != 0) {
			fprintf(stderr, "could not read \"%s\"\n", path);
			abort();
		}
		msgs[n].len = (size_t)size;
		msgs[n].data = malloc(size ? (size_t)size : 1);
		if (size && fread(msgs[n].data, 1, (size_t)size, f) != (size_t)size) {
			fprintf(stderr, "could not read \"%s\"\n", path);
			abort();
		}
		fclose(f);
		n++;
	}
	closedir(dh);
	qsort(msgs, n, sizeof(*msgs), cmp_msg);
	*out = msgs;
	return n;
}

void
ref_corpus_free(ref_msg_t *msgs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(msgs[i].data);
	free(msgs);
}

int
ref_corpus_class(const char *name)
{
	static const struct {
		const char *prefix;
		int cls;
	} map[] = {
		{"valid_", TALLY_DECODE_ERR_NONE},         {"oversize_", TALLY_DECODE_ERR_OVERSIZE},
		{"syntax_", TALLY_DECODE_ERR_SYNTAX},      {"notobject_", TALLY_DECODE_ERR_NOT_OBJECT},
		{"missing_", TALLY_DECODE_ERR_MISSING},    {"type_", TALLY_DECODE_ERR_TYPE},
		{"duplicate_", TALLY_DECODE_ERR_DUPLICATE}, {"uuid_", TALLY_DECODE_ERR_UUID},
		{"time_", TALLY_DECODE_ERR_TIME},          {"vote_", TALLY_DECODE_ERR_VOTE},
	};

	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if (strncmp(name, map[i].prefix, strlen(map[i].prefix)) == 0)
			return map[i].cls;
	return -1;
}

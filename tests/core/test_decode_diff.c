/*
 * Differential test: tally_decode_vote against the jansson reference (ref_decode_vote) on
 * every corpus message and on TALLY_DIFF_MUTATIONS (default 1,000,000) seeded random
 * mutations of them. Both must give the same class and, on success, the same ids and time.
 *
 * Every message is fed through a heap buffer of exactly its length, so AddressSanitizer
 * catches any read past the end. TALLY_DIFF_SEED picks another seed; a mismatch prints the
 * seed, the mutation's index and the message, enough to replay it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include <tally/decode.h>
#include <tally/uuid.h>

#include "ref_decode.h"

#define DEFAULT_MUTATIONS 1000000ULL
#define DEFAULT_SEED      20260507ULL
#define MAX_REPORTS       10

/* xorshift-multiply generator: small, fast, seedable. */
typedef struct {
	uint64_t s;
} rng_t;

static uint64_t
rnd(rng_t *r)
{
	uint64_t z = (r->s += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static size_t
below(rng_t *r, size_t n)
{
	return n ? (size_t)(rnd(r) % n) : 0;
}

#define PICK(r, arr) ((arr)[below((r), sizeof(arr) / sizeof((arr)[0]))])

/* A growable byte buffer. */
typedef struct {
	char *p;
	size_t len, cap;
} buf_t;

static void
buf_reserve(buf_t *b, size_t need)
{
	if (need <= b->cap)
		return;
	b->cap = need * 2 + 64;
	b->p = realloc(b->p, b->cap);
}

static void
buf_set(buf_t *b, const char *data, size_t len)
{
	buf_reserve(b, len);
	memcpy(b->p, data, len);
	b->len = len;
}

/* Replace b[at, at+del) with ins[0, n). */
static void
buf_splice(buf_t *b, size_t at, size_t del, const char *ins, size_t n)
{
	if (at > b->len)
		at = b->len;
	if (del > b->len - at)
		del = b->len - at;
	buf_reserve(b, b->len - del + n);
	memmove(b->p + at + n, b->p + at + del, b->len - at - del);
	memcpy(b->p + at, ins, n);
	b->len = b->len - del + n;
}

static void
buf_insert_str(buf_t *b, size_t at, const char *s)
{
	buf_splice(b, at, 0, s, strlen(s));
}

/* Offset of a random occurrence of byte c in b, or b->len if none. */
static size_t
find_random(rng_t *r, const buf_t *b, char c)
{
	size_t start = below(r, b->len + 1), i;

	for (i = start; i < b->len; i++)
		if (b->p[i] == c)
			return i;
	for (i = 0; i < start && i < b->len; i++)
		if (b->p[i] == c)
			return i;
	return b->len;
}

static const char *const json_bits[] = {
	"{", "}", "[", "]", ":", ",", "\"", "\\", " ", "\t", "\n", "\r", "0", "1", "9", "-", "+",
	".", "e", "E", "t", "f", "n", "u", "true", "false", "null", "{}", "[]", "\"\"", "\"a\":",
	"\x00", "\x01", "\x1f", "\x7f", "\x0b",
};

static const char *const utf8_bits[] = {
	"\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x97\xb3", "\xc3", "\x80", "\xbf", "\xed\xa0\x80",
	"\xed\x9f\xbf", "\xee\x80\x80", "\xf4\x8f\xbf\xbf", "\xf4\x90\x80\x80", "\xc0\xaf",
	"\xc1\xbf", "\xc2\x80", "\xe0\x9f\xbf", "\xe0\xa0\x80", "\xf0\x8f\xbf\xbf", "\xf0\x90\x80\x80",
	"\xef\xbb\xbf", "\xf5\x80\x80\x80", "\xff", "\xfe", "\xe2\x82", "\xf0\x9f\x97",
};

static const char *const numbers[] = {
	"1", "0", "-0", "2", "-1", "01", "-01", "1.0", "1e0", "1E+0", "10e-1", "1.", ".5", "1e", "1e+",
	"+1", "--1", "0x1", "9223372036854775807", "9223372036854775808", "-9223372036854775808",
	"-9223372036854775809", "18446744073709551616", "99999999999999999999999", "1e308", "1e309",
	"-1e309", "1.7976931348623157e308", "1.7976931348623158e308", "1.7976931348623159e308",
	"179769313486231580793728971405303415079934132710037826936173778980444968292764750946649017977587207096330286416692887910946555547851940402630657488671505820681908902000708383676273854845817711531764475730270069855571366959622842914819860834936475292719074168444365510704342711559699508093042880177904174080e-1",
	"0.1797693134862315807937289714053034150799e309", "0.0000001e315", "100000000e300",
	"5e-324", "1e-400", "0e999999999", "1e-99999999999999999999", "1e99999999999999999999",
	"123.456e-7", "-0.0", "0.000", "1e0000000000000000000308", "17976931348623158e292",
	"17976931348623159e292",
};

static const char *const escapes[] = {
	"\\u0000", "\\ud800", "\\udc00", "\\ud83d\\ude00", "\\ud83d\\u0041", "\\udbff\\udfff",
	"\\u00e9", "\\u0065", "\\u005f", "\\u002d", "\\u0031", "\\u003a", "\\u0020", "\\u0054",
	"\\u005a", "\\u002b", "\\n", "\\t", "\\\"", "\\\\", "\\/", "\\b", "\\x", "\\u12", "\\uZZZZ",
	"\\", "\\U0041", "\\u", "\\ud83d",
};

static const char *const read_keys[] = {
	"\"voter_id\"", "\"candidate_id\"", "\"voting_time\"", "\"vote\"", "\"vot\\u0065r_id\"",
	"\"\\u0076ote\"", "\"voting\\u005ftime\"", "\"candidate_i\\u0064\"",
};

/* Write a random, often nearly valid, voting_time (without quotes) into out. */
static void
random_time(rng_t *r, char *out, size_t cap)
{
	static const char *const zones[] = {"", "", "Z", "Z", "+01:00", "-05:30", "+23:59", "+24:00",
	                                    "-00:60", "z", "+0100", "Z ", " ", "+01:00:00", "-1:00"};
	static const char *const fracs[] = {"", "", ".5", ".", ".123456789123", ".0Z", ".x"};
	uint64_t x = rnd(r);
	unsigned year = (x & 7) == 0 ? (unsigned)below(r, 10001) : 1990 + (unsigned)below(r, 40);
	unsigned mon = (x >> 3 & 7) == 0 ? (unsigned)below(r, 15) : 1 + (unsigned)below(r, 12);
	unsigned day = (x >> 6 & 7) == 0 ? (unsigned)below(r, 33) : 27 + (unsigned)below(r, 5);
	unsigned hh = (unsigned)below(r, 26), mm = (unsigned)below(r, 62), ss = (unsigned)below(r, 62);
	char sep = (x >> 9 & 3) == 0 ? 'T' : (x >> 9 & 3) == 1 ? ' ' : (x >> 11 & 1) ? 't' : 'T';

	snprintf(out, cap, "%04u-%02u-%02u%c%02u:%02u:%02u%s%s", year, mon, day, sep, hh, mm, ss,
	         PICK(r, fracs), PICK(r, zones));
}

/* Apply one random mutation to b; pool is the corpus, for splices. */
static void
mutate(rng_t *r, buf_t *b, const ref_msg_t *pool, size_t npool)
{
	size_t at = below(r, b->len + 1);
	char tmp[128];

	switch (below(r, 15)) {
	case 0: /* flip bits of one byte */
		if (b->len)
			b->p[below(r, b->len)] ^= (char)(1u << below(r, 8));
		break;
	case 1: /* overwrite a byte */
		if (b->len)
			b->p[below(r, b->len)] = (char)rnd(r);
		break;
	case 2: /* insert something JSON cares about */
	{
		const char *s = PICK(r, json_bits);

		buf_splice(b, at, 0, s, s[0] ? strlen(s) : 1);     /* "" is the NUL byte */
		break;
	}
	case 3: /* insert a UTF-8 fragment, valid or not */
		buf_insert_str(b, at, PICK(r, utf8_bits));
		break;
	case 4: /* delete a few bytes */
		buf_splice(b, at, 1 + below(r, 8), "", 0);
		break;
	case 5: /* truncate */
		b->len = below(r, b->len + 1);
		break;
	case 6: { /* splice: this message's head, another's tail */
		const ref_msg_t *o = &pool[below(r, npool)];
		size_t from = below(r, o->len + 1);

		b->len = at;
		buf_splice(b, at, 0, o->data + from, o->len - from);
		break;
	}
	case 7: { /* duplicate a member: copy ",...," into another gap */
		size_t c1 = find_random(r, b, ','), c2;

		if (c1 >= b->len)
			break;
		for (c2 = c1 + 1; c2 < b->len && b->p[c2] != ',' && b->p[c2] != '}'; c2++)
			;
		if (c2 - c1 > sizeof(tmp))
			break;
		memcpy(tmp, b->p + c1, c2 - c1);
		at = find_random(r, b, ',');
		buf_splice(b, at, 0, tmp, c2 - c1);
		break;
	}
	case 8: { /* replace a run of number characters with an edge number */
		size_t i = find_random(r, b, (char)('0' + below(r, 10))), j = i;
		const char *num;

		if (i >= b->len)
			break;
		while (i > 0 && b->p[i - 1] && strchr("0123456789-+.eE", b->p[i - 1]))
			i--;
		while (j < b->len && b->p[j] && strchr("0123456789-+.eE", b->p[j]))
			j++;
		num = PICK(r, numbers);
		buf_splice(b, i, j - i, num, strlen(num));
		break;
	}
	case 9: /* an escape, good or bad, somewhere (usually in a string) */
		at = find_random(r, b, '"');
		if (at < b->len)
			at += 1 + below(r, 4);
		buf_insert_str(b, at, PICK(r, escapes));
		break;
	case 10: { /* turn some key into a read key */
		size_t q1 = find_random(r, b, '"'), q2;

		if (q1 >= b->len)
			break;
		for (q2 = q1 + 1; q2 < b->len && b->p[q2] != '"'; q2++)
			;
		if (q2 >= b->len)
			break;
		buf_splice(b, q1, q2 + 1 - q1, "", 0);
		buf_insert_str(b, q1, PICK(r, read_keys));
		break;
	}
	case 11: { /* a new voting_time value */
		const char *k = "\"voting_time\"";
		char *hit = memmem(b->p, b->len, k, strlen(k));
		size_t v, e;

		if (!hit)
			break;
		v = (size_t)(hit - b->p) + strlen(k);
		while (v < b->len && b->p[v] != '"')
			v++;
		for (e = v + 1; e < b->len && b->p[e] != '"'; e++)
			;
		if (e >= b->len)
			break;
		random_time(r, tmp, sizeof(tmp));
		buf_splice(b, v + 1, e - v - 1, tmp, strlen(tmp));
		break;
	}
	case 12: { /* damage a UUID a little: case, a hex digit, a dash */
		const char *k = below(r, 2) ? "\"voter_id\"" : "\"candidate_id\"";
		char *hit = memmem(b->p, b->len, k, strlen(k));
		size_t v;

		if (!hit)
			break;
		v = (size_t)(hit - b->p) + strlen(k);
		while (v < b->len && b->p[v] != '"')
			v++;
		v += 1 + below(r, 37);
		if (v < b->len)
			b->p[v] = "0aAfFgG-_ \"9"[below(r, 12)];
		break;
	}
	case 14: { /* start over: a short soup of JSON tokens, escapes and numbers */
		size_t ntok = 1 + below(r, 24);

		b->len = 0;
		for (size_t t = 0; t < ntok; t++) {
			const char *tok;

			switch (below(r, 5)) {
			case 0: tok = PICK(r, numbers); break;
			case 1: tok = PICK(r, read_keys); break;
			case 2: tok = PICK(r, escapes); break;
			case 3: tok = PICK(r, utf8_bits); break;
			default: tok = PICK(r, json_bits); break;
			}
			buf_splice(b, b->len, 0, tok, tok[0] ? strlen(tok) : 1);
		}
		break;
	}
	default: /* nest a copy of a member's value deeper, or wrap the whole message */
		if (below(r, 2)) {
			buf_insert_str(b, 0, "[");
			buf_insert_str(b, b->len, "]");
		} else {
			at = find_random(r, b, ':');
			if (at < b->len) {
				buf_insert_str(b, at + 1, "[{\"a\":");
				at = find_random(r, b, ',');
				buf_insert_str(b, at, "}]");
			}
		}
		break;
	}
}

static void
print_escaped(FILE *f, const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];

		if (c >= 0x20 && c < 0x7f && c != '\\')
			fputc(c, f);
		else
			fprintf(f, "\\x%02x", c);
	}
	fputc('\n', f);
}

/* Feed one message to both decoders; @returns true when they agree. */
static bool
check(const char *data, size_t len, uint64_t seed, long long index)
{
	char *copy = malloc(len ? len : 1);
	tally_vote_t fast, ref;
	tally_decode_result_t fres, rres;
	bool same;

	memcpy(copy, data, len);
	tally_decode_vote(NULL, copy, len, &fast, &fres);
	ref_decode_vote(NULL, copy, len, &ref, &rres);
	same = fres.cls == rres.cls && fast.reason == ref.reason;
	if (same && fres.cls == TALLY_DECODE_ERR_NONE)
		same = tally_uuid_equal(&fast.voter_id, &ref.voter_id) &&
		       tally_uuid_equal(&fast.candidate_id, &ref.candidate_id) &&
		       fast.voting_time == ref.voting_time;
	if (!same) {
		fprintf(stderr, "MISMATCH seed=%llu index=%lld len=%zu: fast %s (%s), reference %s (%s)\n",
		        (unsigned long long)seed, index, len, tally_decode_err_name(fres.cls), fres.detail,
		        tally_decode_err_name(rres.cls), rres.detail);
		print_escaped(stderr, copy, len);
	}
	free(copy);
	return same;
}

static uint64_t
env_u64(const char *name, uint64_t dflt)
{
	const char *v = getenv(name);

	return v && *v ? strtoull(v, NULL, 0) : dflt;
}

Test(decode_diff, corpus_and_mutations, .timeout = 1200)
{
	ref_msg_t *msgs;
	size_t n = ref_corpus_load(TALLY_TEST_DIR "/core/corpus", &msgs);
	uint64_t seed = env_u64("TALLY_DIFF_SEED", DEFAULT_SEED);
	uint64_t count = env_u64("TALLY_DIFF_MUTATIONS", DEFAULT_MUTATIONS);
	size_t classes[TALLY_DECODE_ERR__COUNT] = {0};
	buf_t b = {0};
	size_t *valid, nvalid = 0;
	int bad = 0;

	cr_assert_geq(n, 200);
	valid = malloc(n * sizeof(*valid));
	for (size_t i = 0; i < n; i++)
		if (ref_corpus_class(msgs[i].name) == TALLY_DECODE_ERR_NONE)
			valid[nvalid++] = i;
	cr_assert_gt(nvalid, 0);
	for (size_t i = 0; i < n; i++)
		if (!check(msgs[i].data, msgs[i].len, seed, -(long long)i - 1) && ++bad >= MAX_REPORTS)
			break;

	for (uint64_t i = 0; i < count && bad < MAX_REPORTS; i++) {
		/* Each mutation has its own stream, so any one can be replayed from (seed, index). */
		rng_t r = {seed ^ (i * 0xd1342543de82ef95ULL)};
		/* Half the time start from a valid message, so that field checks get exercised. */
		const ref_msg_t *m = below(&r, 2) ? &msgs[valid[below(&r, nvalid)]] : &msgs[below(&r, n)];
		unsigned steps = below(&r, 3) ? 1 : 2 + (unsigned)below(&r, 3);
		tally_vote_t v;
		tally_decode_result_t res;

		buf_set(&b, m->data, m->len);
		for (unsigned s = 0; s < steps; s++)
			mutate(&r, &b, msgs, n);
		if (!check(b.p, b.len, seed, (long long)i))
			bad++;
		tally_decode_vote(NULL, b.p, b.len, &v, &res);
		classes[res.cls]++;
	}

	fprintf(stderr, "decode_diff: seed %llu, %zu corpus messages, %llu mutations:",
	        (unsigned long long)seed, n, (unsigned long long)count);
	for (int c = 0; c < TALLY_DECODE_ERR__COUNT; c++)
		fprintf(stderr, " %s=%zu", tally_decode_err_name(c), classes[c]);
	fprintf(stderr, "\n");
	free(b.p);
	free(valid);
	ref_corpus_free(msgs, n);
	cr_assert_eq(bad, 0, "%d mismatches (first ones printed above; replay with TALLY_DIFF_SEED)", bad);
}

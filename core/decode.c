/*
 * The vote decoder: one strict pass over a JSON message, no allocation, no recursion.
 *
 * The scanner is a small state machine (value, after-value, key) with the kind of each open
 * container kept in a bit stack, so nesting costs one bit per level. Strings are skipped
 * sixteen bytes at a time with SSE2 (eight with portable SWAR elsewhere) while they hold
 * nothing but plain ASCII; escapes and multi-byte UTF-8 are checked where they occur. The
 * two ids are parsed eight hex digits at a time without branches. Only the members of the top-level object whose keys
 * are voter_id, candidate_id, voting_time or vote are looked at; everything else is checked
 * and thrown away.
 *
 * What is accepted is what jansson 2.14's json_loadb(buf, len, 0) accepts, to the byte:
 *  - whitespace is " \t\n\r" only; strings are strict UTF-8 without raw control characters;
 *    escapes must pair surrogates, and \u0000 is refused (jansson refuses NUL without
 *    JSON_ALLOW_NUL, in keys too);
 *  - integers (no '.', 'e' or 'E') must fit in int64; reals must not overflow a double
 *    (strtod giving +-HUGE_VAL); underflow is fine;
 *  - every value, scalars included, counts one level of depth, and a value deeper than
 *    2048 is refused, so 2048 nested empty arrays pass but a number inside 2048 arrays
 *    does not;
 *  - a single NUL byte right after a number or a literal (true, false, null) is skipped:
 *    jansson's lexer reads one character past such a token and, when it puts a NUL back,
 *    loses it (its one-character buffer treats NUL as "empty");
 *  - nothing but whitespace may follow the top-level value.
 * A top level that is valid JSON but not an object (an array, or a scalar that jansson's
 * JSON_DECODE_ANY would take) is NOT_OBJECT; a top level that is not valid JSON is SYNTAX.
 *
 * Field policy, applied only when the whole message is valid (a syntax error anywhere wins,
 * as jansson would not have produced a document at all):
 *  1. a read key (the four above, compared after unescaping) that appears twice at top
 *     level: DUPLICATE, naming the first key whose second appearance comes first;
 *  2. then voter_id, candidate_id, voting_time, vote in that order, the first with a
 *     problem decides: absent (not vote, which is optional) is MISSING; a value of the
 *     wrong JSON type is TYPE (vote must be a JSON integer: 1.0, "1", true are TYPE); a
 *     string that is not a UUID is UUID; a time tally_time_parse refuses is TIME; an
 *     integer vote other than 1 is VOTE.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include <tally/decode.h>
#include <tally/error.h>
#include <tally/time.h>
#include <tally/uuid.h>

#define MAX_DEPTH 2048

#define likely(x)   __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

/* Syntax failures, each with its detail format (takes the byte offset). */
#define SYNTAX_MAP(XX)                                                           \
	XX(EMPTY,      "empty message")                                         \
	XX(EOF,        "unexpected end of message at byte %zu")                 \
	XX(VALUE,      "expected a value at byte %zu")                          \
	XX(KEY,        "expected a string key at byte %zu")                     \
	XX(COLON,      "expected ':' after a key at byte %zu")                  \
	XX(OBJ_NEXT,   "expected ',' or '}' at byte %zu")                       \
	XX(ARR_NEXT,   "expected ',' or ']' at byte %zu")                       \
	XX(UTF8,       "invalid UTF-8 at byte %zu")                             \
	XX(CTRL,       "control character in a string at byte %zu")             \
	XX(ESCAPE,     "invalid escape at byte %zu")                            \
	XX(SURROGATE,  "unpaired surrogate escape at byte %zu")                 \
	XX(NUL,        "\\u0000 in a string at byte %zu")                       \
	XX(NUMBER,     "invalid number at byte %zu")                            \
	XX(INT_RANGE,  "integer out of int64 range at byte %zu")                \
	XX(REAL_RANGE, "real number overflows a double at byte %zu")            \
	XX(LITERAL,    "invalid literal at byte %zu")                           \
	XX(DEPTH,      "nesting deeper than 2048 at byte %zu")                  \
	XX(TRAILING,   "unexpected data after the top-level value at byte %zu")

enum syn {
	SYN_NONE,
#define SYN_ENUM(name, fmt) SYN_##name,
	SYNTAX_MAP(SYN_ENUM)
#undef SYN_ENUM
};

static const char *const syn_fmt[] = {
	"",
#define SYN_FMT(name, fmt) fmt,
	SYNTAX_MAP(SYN_FMT)
#undef SYN_FMT
};

/* The read fields, in the order their problems are reported. */
enum field { F_VOTER, F_CANDIDATE, F_TIME, F_VOTE, F__COUNT, F_NONE = F__COUNT };

static const char *const field_names[F__COUNT] = {
	"voter_id", "candidate_id", "voting_time", "vote"
};

/* JSON types, for "expected a string, got a number". */
enum jtype { J_STRING, J_NUMBER, J_REAL, J_OBJECT, J_ARRAY, J_BOOL, J_NULL };

static const char *const jtype_names[] = {
	"a string", "a number", "a real", "an object", "an array", "a boolean", "null"
};

enum fstate { FS_ABSENT = 0, FS_OK, FS_TYPE, FS_BAD };

struct field_state {
	uint8_t state;
	uint8_t got;            /* enum jtype, for FS_TYPE. */
	uint16_t seen;
	uint32_t at;            /* Offset of the value (messages are at most 64 KiB). */
};

struct dec {
	const uint8_t *buf;
	const uint8_t *end;
	enum syn syn;
	size_t syn_at;
	int dup;                /* First repeated field, or -1. */
	size_t dup_at;
	struct field_state f[F__COUNT];
	const char *time_why;   /* Why voting_time was refused. */
	tally_uuid_t voter_id;
	tally_uuid_t candidate_id;
	int64_t voting_time;
};

/* Bytes that are JSON whitespace. */
static inline bool
is_ws(uint8_t c)
{
	return c == ' ' || c == '\n' || c == '\r' || c == '\t';
}

static inline const uint8_t *
skip_ws(const uint8_t *p, const uint8_t *end)
{
	while (p < end && is_ws(*p))
		p++;
	return p;
}

static inline bool
is_digit(uint8_t c)
{
	return (unsigned)(c - '0') <= 9;
}

static inline int
hexval(uint8_t c)
{
	if (is_digit(c))
		return c - '0';
	c |= 0x20;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* The four hex digits at p, or -1. The caller has checked that they are in the buffer. */
static inline int32_t
hex4(const uint8_t *p)
{
	int a = hexval(p[0]), b = hexval(p[1]), c = hexval(p[2]), e = hexval(p[3]);

	if ((a | b | c | e) < 0)
		return -1;
	return (a << 12) | (b << 8) | (c << 4) | e;
}

/* Length of the valid UTF-8 sequence at p (whose first byte is >= 0x80), or 0. */
static inline size_t
utf8_seq(const uint8_t *p, const uint8_t *end)
{
	uint8_t c = p[0], lo = 0x80, hi = 0xBF;
	size_t n;

	if (c < 0xC2)
		return 0;
	if (c < 0xE0) {
		n = 2;
	} else if (c < 0xF0) {
		n = 3;
		if (c == 0xE0)
			lo = 0xA0;          /* overlong */
		else if (c == 0xED)
			hi = 0x9F;          /* surrogates */
	} else if (c < 0xF5) {
		n = 4;
		if (c == 0xF0)
			lo = 0x90;          /* overlong */
		else if (c == 0xF4)
			hi = 0x8F;          /* above U+10FFFF */
	} else {
		return 0;
	}
	if ((size_t)(end - p) < n || p[1] < lo || p[1] > hi)
		return 0;
	for (size_t i = 2; i < n; i++)
		if ((p[i] & 0xC0) != 0x80)
			return 0;
	return n;
}

/* Record a syntax failure at byte pointer at, and fail the scanner (NULL or -1). */
#define FAIL_NULL(code, at)                                            \
	do {                                                           \
		d->syn = SYN_##code;                                   \
		d->syn_at = (size_t)((at) - d->buf);                   \
		return NULL;                                           \
	} while (0)
#define FAIL(code, at)                                                 \
	do {                                                           \
		d->syn = SYN_##code;                                   \
		d->syn_at = (size_t)((at) - d->buf);                   \
		return -1;                                             \
	} while (0)

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define SWAR 1
#define ONES  0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL

/*
 * The high bit of each byte of x that is '"', '\\', a control character or >= 0x80. A
 * borrow can only flag a byte above a true hit, so the lowest flag is always exact.
 */
static inline uint64_t
special_bytes(uint64_t x)
{
	uint64_t q = x ^ (ONES * '"');
	uint64_t b = x ^ (ONES * '\\');

	return (((q - ONES) & ~q) | ((b - ONES) & ~b) | (x - ONES * 0x20) | x) & HIGHS;
}
#endif

/*
 * Check the string whose body starts at p (just after the opening quote).
 * @returns the byte after the closing quote, or NULL with d->syn set. *esc is set when
 * the string holds an escape.
 */
static inline const uint8_t *
scan_string(struct dec *d, const uint8_t *p, bool *esc)
{
	const uint8_t *end = d->end;

	for (;;) {
		uint8_t c;

#ifdef __SSE2__
		/* SSE2 is part of x86-64: sixteen bytes per step. Signed "< 0x20" also catches
		 * every byte >= 0x80. */
		while (likely(end - p >= 16)) {
			__m128i x = _mm_loadu_si128((const __m128i *)(const void *)p);
			__m128i hit = _mm_or_si128(
				_mm_or_si128(_mm_cmpeq_epi8(x, _mm_set1_epi8('"')),
				             _mm_cmpeq_epi8(x, _mm_set1_epi8('\\'))),
				_mm_cmplt_epi8(x, _mm_set1_epi8(0x20)));
			unsigned m = (unsigned)_mm_movemask_epi8(hit);

			if (m) {
				p += __builtin_ctz(m);
				goto special;
			}
			p += 16;
		}
#endif
#ifdef SWAR
		while (likely(end - p >= 8)) {
			uint64_t x, m;

			memcpy(&x, p, 8);
			m = special_bytes(x);
			if (m) {
				p += (unsigned)__builtin_ctzll(m) >> 3;
				goto special;
			}
			p += 8;
		}
#endif
		for (;;) {
			if (unlikely(p == end))
				FAIL_NULL(EOF, p);
			c = *p;
			if (c == '"' || c == '\\' || c < 0x20 || c >= 0x80)
				break;
			p++;
		}
#if defined(SWAR) || defined(__SSE2__)
special:
#endif
		c = *p;
		if (likely(c == '"'))
			return p + 1;
		if (c == '\\') {
			int32_t cp;

			*esc = true;
			if (end - p < 2)
				FAIL_NULL(EOF, end);
			switch (p[1]) {
			case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
				p += 2;
				continue;
			case 'u':
				break;
			default:
				FAIL_NULL(ESCAPE, p);
			}
			if (end - p < 6) {
				for (const uint8_t *h = p + 2; h < end; h++)
					if (hexval(*h) < 0)
						FAIL_NULL(ESCAPE, p);
				FAIL_NULL(EOF, end);
			}
			cp = hex4(p + 2);
			if (cp < 0)
				FAIL_NULL(ESCAPE, p);
			if (cp == 0)
				FAIL_NULL(NUL, p);
			if (cp >= 0xD800 && cp <= 0xDBFF) {
				int32_t lo;

				if (end - p < 12 || p[6] != '\\' || p[7] != 'u')
					FAIL_NULL(SURROGATE, p);
				lo = hex4(p + 8);
				if (lo < 0xDC00 || lo > 0xDFFF)
					FAIL_NULL(SURROGATE, p);
				p += 12;
			} else if (cp >= 0xDC00 && cp <= 0xDFFF) {
				FAIL_NULL(SURROGATE, p);
			} else {
				p += 6;
			}
			continue;
		}
		if (c < 0x20)
			FAIL_NULL(CTRL, p);
		{
			size_t n = utf8_seq(p, end);

			if (!n)
				FAIL_NULL(UTF8, p);
			p += n;
		}
	}
}

/*
 * Decode the checked string body [p, q) into out (at most cap bytes). A time's fraction
 * is truncated anyway, so a run of digits after a '.' is cut to 9 digits: that changes
 * neither what tally_time_parse nor what tally_uuid_parse makes of the text, and keeps the
 * buffer small.
 * @returns the length, -1 if the text has a non-ASCII character (then it is neither a read
 * key nor a UUID nor a time), -2 if it does not fit.
 */
static int
decode_small(const uint8_t *p, const uint8_t *q, char *out, int cap)
{
	int n = 0, run = 0;
	bool frac = false;

	while (p < q) {
		uint8_t c = *p++;

		if (c >= 0x80)
			return -1;
		if (c == '\\') {
			switch (*p++) {
			case 'b': c = '\b'; break;
			case 'f': c = '\f'; break;
			case 'n': c = '\n'; break;
			case 'r': c = '\r'; break;
			case 't': c = '\t'; break;
			case 'u': {
				int32_t cp = hex4(p);

				if (cp >= 0x80)
					return -1;
				c = (uint8_t)cp;
				p += 4;
				break;
			}
			default: c = p[-1]; break;       /* '"', '\\', '/' */
			}
		}
		if (frac && is_digit(c)) {
			if (run >= 9)
				continue;
			run++;
		} else {
			frac = c == '.';
			run = 0;
		}
		if (n == cap)
			return -2;
		out[n++] = (char)c;
	}
	return n;
}

/* Magnitude check of a real whose decimal exponent is exactly 308: let strtod decide. */
static bool
real_overflows(const uint8_t *start, const uint8_t *stop)
{
	char tmp[420];
	size_t n = 0, kept = 0;
	bool sticky = false, nonzero = false;

	if (*start == '-')
		tmp[n++] = '-';
	tmp[n++] = '0';
	tmp[n++] = '.';
	for (const uint8_t *p = start; p < stop && *p != 'e' && *p != 'E'; p++) {
		if (!is_digit(*p))
			continue;
		if (!nonzero && *p == '0')
			continue;
		nonzero = true;
		if (kept < 400) {
			tmp[n++] = (char)*p;
			kept++;
		} else if (*p != '0') {
			sticky = true;
		}
	}
	if (sticky)
		tmp[n++] = '1';
	memcpy(tmp + n, "e309", 5);
	errno = 0;
	double v = strtod(tmp, NULL);

	return (v == HUGE_VAL || v == -HUGE_VAL) && errno == ERANGE;
}

/*
 * Check the number at p. @returns the byte after it, or NULL with d->syn set. *real is
 * set when it has a fraction or an exponent.
 */
static inline const uint8_t *
scan_number(struct dec *d, const uint8_t *p, bool *real)
{
	const uint8_t *end = d->end, *start = p, *int_start, *int_end;
	const uint8_t *frac_start = NULL, *frac_end = NULL;
	int64_t exp = 0;

	if (*p == '-')
		p++;
	int_start = p;
	if (p == end)
		FAIL_NULL(NUMBER, start);
	if (*p == '0') {
		p++;
		if (p < end && is_digit(*p))
			FAIL_NULL(NUMBER, start);
	} else if (is_digit(*p)) {
		do
			p++;
		while (p < end && is_digit(*p));
	} else {
		FAIL_NULL(NUMBER, start);
	}
	int_end = p;

	if (likely(p == end || (*p != '.' && *p != 'e' && *p != 'E'))) {
		size_t ndig = (size_t)(int_end - int_start);

		*real = false;
		if (unlikely(ndig >= 19)) {
			const char *lim = *start == '-' ? "9223372036854775808" : "9223372036854775807";

			if (ndig > 19 || memcmp(int_start, lim, 19) > 0)
				FAIL_NULL(INT_RANGE, start);
		}
		return p;
	}

	*real = true;
	if (*p == '.') {
		p++;
		frac_start = p;
		if (p == end || !is_digit(*p))
			FAIL_NULL(NUMBER, start);
		do
			p++;
		while (p < end && is_digit(*p));
		frac_end = p;
	}
	if (p < end && (*p == 'e' || *p == 'E')) {
		bool neg = false;

		p++;
		if (p < end && (*p == '+' || *p == '-'))
			neg = *p++ == '-';
		if (p == end || !is_digit(*p))
			FAIL_NULL(NUMBER, start);
		do {
			if (exp < 1000000000)
				exp = exp * 10 + (*p - '0');
			p++;
		} while (p < end && is_digit(*p));
		if (neg)
			exp = -exp;
	}

	/* Decimal exponent of the first significant digit. */
	int64_t e10;

	if (*int_start != '0') {
		e10 = (int_end - int_start) - 1;
	} else {
		const uint8_t *z = frac_start;

		if (!z)
			return p;                       /* 0eN is zero */
		while (z < frac_end && *z == '0')
			z++;
		if (z == frac_end)
			return p;                       /* all zeros */
		e10 = -(int64_t)(z - frac_start) - 1;
	}
	e10 += exp;
	if (likely(e10 < 308))
		return p;
	if (e10 > 308 || real_overflows(start, p))
		FAIL_NULL(REAL_RANGE, start);
	return p;
}

/* Which read field a top-level key names, from its raw body [p, q). */
static inline int
key_field(const uint8_t *p, const uint8_t *q, bool esc)
{
	char tmp[16];
	size_t n = (size_t)(q - p);

	if (unlikely(esc)) {
		int k = decode_small(p, q, tmp, (int)sizeof(tmp));

		if (k < 0)
			return F_NONE;
		p = (const uint8_t *)tmp;
		n = (size_t)k;
	}
	switch (n) {
	case 4:
		return memcmp(p, "vote", 4) == 0 ? F_VOTE : F_NONE;
	case 8:
		return memcmp(p, "voter_id", 8) == 0 ? F_VOTER : F_NONE;
	case 11:
		return memcmp(p, "voting_time", 11) == 0 ? F_TIME : F_NONE;
	case 12:
		return memcmp(p, "candidate_id", 12) == 0 ? F_CANDIDATE : F_NONE;
	}
	return F_NONE;
}

/* Note a read field's value; @returns false if it was already seen. */
static inline bool
field_seen(struct dec *d, int f, const uint8_t *key)
{
	if (likely(d->f[f].seen++ == 0))
		return true;
	if (d->dup < 0) {
		d->dup = f;
		d->dup_at = (size_t)(key - d->buf);
	}
	return false;
}

static inline void
field_type(struct dec *d, int f, enum jtype got, const uint8_t *at)
{
	d->f[f].state = FS_TYPE;
	d->f[f].got = (uint8_t)got;
	d->f[f].at = (uint32_t)(at - d->buf);
}

/* A read field's string value, body [p, q). */
static void
field_string(struct dec *d, int f, const uint8_t *p, const uint8_t *q, bool esc)
{
	char tmp[48];
	const char *text = (const char *)p;
	int n = (int)(q - p);
	struct field_state *fs = &d->f[f];
	bool ok;

	fs->at = (uint32_t)(p - 1 - d->buf);
	if (f == F_VOTE) {
		fs->state = FS_TYPE;
		fs->got = J_STRING;
		return;
	}
	if (esc) {
		n = decode_small(p, q, tmp, (int)sizeof(tmp));
		text = tmp;
	}
	if (f == F_TIME) {
		if (n >= 0) {
			ok = tally_time_parse(text, (size_t)n, &d->voting_time, &d->time_why);
		} else {
			ok = false;
			d->time_why = n == -1 ? "has a non-ASCII character" : "too long for a time";
		}
	} else {
		ok = n >= 0 && tally_uuid_parse(text, (size_t)n, f == F_VOTER ? &d->voter_id : &d->candidate_id);
	}
	fs->state = ok ? FS_OK : FS_BAD;
}

/*
 * Check the whole message and collect the read fields.
 * @returns 0 when it is valid JSON with an object at top level, 1 when valid JSON but not
 * an object, -1 with d->syn set when not valid JSON.
 */
static int
scan(struct dec *d)
{
	const uint8_t *p = d->buf, *end = d->end, *q, *key = NULL;
	uint64_t kinds[MAX_DEPTH / 64];
	unsigned depth = 0;
	bool in_obj = false, top_obj, esc, real;
	int rf = F_NONE;

	p = skip_ws(p, end);
	if (p == end)
		FAIL(EMPTY, p);
	top_obj = *p == '{';

value:
	if (unlikely(depth >= MAX_DEPTH))
		FAIL(DEPTH, p);
	if (unlikely(p == end))
		FAIL(EOF, p);
	switch (*p) {
	case '"':
		esc = false;
		q = scan_string(d, p + 1, &esc);
		if (unlikely(!q))
			return -1;
		if (unlikely(rf != F_NONE) && field_seen(d, rf, key))
			field_string(d, rf, p + 1, q - 1, esc);
		p = q;
		goto after_value;
	case '{':
	case '[':
		if (unlikely(rf != F_NONE) && field_seen(d, rf, key))
			field_type(d, rf, *p == '{' ? J_OBJECT : J_ARRAY, p);
		in_obj = *p == '{';
		if (in_obj)
			kinds[depth >> 6] |= 1ULL << (depth & 63);
		else
			kinds[depth >> 6] &= ~(1ULL << (depth & 63));
		depth++;
		p = skip_ws(p + 1, end);
		if (p < end && *p == (in_obj ? '}' : ']')) {
			p++;
			goto close;
		}
		if (in_obj)
			goto key;
		rf = F_NONE;
		goto value;
	case '-': case '0': case '1': case '2': case '3': case '4':
	case '5': case '6': case '7': case '8': case '9':
		q = scan_number(d, p, &real);
		if (unlikely(!q))
			return -1;
		if (unlikely(rf != F_NONE) && field_seen(d, rf, key)) {
			if (rf != F_VOTE) {
				field_type(d, rf, J_NUMBER, p);
			} else if (real) {
				field_type(d, rf, J_REAL, p);
			} else {
				d->f[rf].state = q - p == 1 && *p == '1' ? FS_OK : FS_BAD;
				d->f[rf].at = (uint32_t)(p - d->buf);
			}
		}
		p = q;
		goto after_literal;
	case 't':
		if (end - p < 4 || memcmp(p, "true", 4) != 0)
			FAIL(LITERAL, p);
		if (unlikely(rf != F_NONE) && field_seen(d, rf, key))
			field_type(d, rf, J_BOOL, p);
		p += 4;
		goto after_literal;
	case 'f':
		if (end - p < 5 || memcmp(p, "false", 5) != 0)
			FAIL(LITERAL, p);
		if (unlikely(rf != F_NONE) && field_seen(d, rf, key))
			field_type(d, rf, J_BOOL, p);
		p += 5;
		goto after_literal;
	case 'n':
		if (end - p < 4 || memcmp(p, "null", 4) != 0)
			FAIL(LITERAL, p);
		if (unlikely(rf != F_NONE) && field_seen(d, rf, key))
			field_type(d, rf, J_NULL, p);
		p += 4;
		goto after_literal;
	default:
		FAIL(VALUE, p);
	}

after_literal:
	/* jansson's lexer loses a NUL it reads just past a number or a literal. */
	if (p < end && *p == 0)
		p++;
after_value:
	if (unlikely(depth == 0))
		goto top_done;
	if (p < end && is_ws(*p))
		p = skip_ws(p, end);
	if (unlikely(p == end))
		FAIL(EOF, p);
	if (*p == ',') {
		p = skip_ws(p + 1, end);
		if (in_obj)
			goto key;
		rf = F_NONE;
		goto value;
	}
	if (*p != (in_obj ? '}' : ']')) {
		if (in_obj)
			FAIL(OBJ_NEXT, p);
		FAIL(ARR_NEXT, p);
	}
	p++;
close:
	depth--;
	if (depth)
		in_obj = (kinds[(depth - 1) >> 6] >> ((depth - 1) & 63)) & 1;
	goto after_value;

key:
	if (unlikely(p == end))
		FAIL(EOF, p);
	if (unlikely(*p != '"'))
		FAIL(KEY, p);
	esc = false;
	key = p;
	q = scan_string(d, p + 1, &esc);
	if (unlikely(!q))
		return -1;
	rf = depth == 1 ? key_field(p + 1, q - 1, esc) : F_NONE;
	p = q;
	if (likely(p < end && *p == ':')) {
		p++;
	} else {
		p = skip_ws(p, end);
		if (p == end)
			FAIL(EOF, p);
		if (*p != ':')
			FAIL(COLON, p);
		p++;
	}
	if (p < end && is_ws(*p))
		p = skip_ws(p, end);
	goto value;

top_done:
	p = skip_ws(p, end);
	if (p != end)
		FAIL(TRAILING, p);
	return top_obj ? 0 : 1;
}

static void
set_detail(tally_decode_result_t *res, tally_decode_err_t cls, size_t offset, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void
set_detail(tally_decode_result_t *res, tally_decode_err_t cls, size_t offset, const char *fmt, ...)
{
	va_list ap;

	res->cls = cls;
	res->offset = offset;
	va_start(ap, fmt);
	vsnprintf(res->detail, sizeof(res->detail), fmt, ap);
	va_end(ap);
}

/* Turn a scan's findings into a class and a detail. @returns the class. */
static tally_decode_err_t
judge(struct dec *d, int rc, tally_decode_result_t *res)
{
	if (rc < 0) {
		set_detail(res, TALLY_DECODE_ERR_SYNTAX, d->syn_at, syn_fmt[d->syn], d->syn_at);
		return res->cls;
	}
	if (rc > 0) {
		set_detail(res, TALLY_DECODE_ERR_NOT_OBJECT, 0, "top level is not an object");
		return res->cls;
	}
	if (d->dup >= 0) {
		set_detail(res, TALLY_DECODE_ERR_DUPLICATE, d->dup_at, "field \"%s\" repeated",
		           field_names[d->dup]);
		return res->cls;
	}
	for (int f = 0; f < F__COUNT; f++) {
		struct field_state *fs = &d->f[f];
		const char *name = field_names[f];

		switch (fs->state) {
		case FS_ABSENT:
			if (f == F_VOTE)
				break;
			set_detail(res, TALLY_DECODE_ERR_MISSING, (size_t)(d->end - d->buf),
			           "missing field \"%s\"", name);
			return res->cls;
		case FS_TYPE:
			set_detail(res, TALLY_DECODE_ERR_TYPE, fs->at, "%s: expected %s, got %s", name,
			           f == F_VOTE ? "the integer 1" : "a string", jtype_names[fs->got]);
			return res->cls;
		case FS_BAD:
			if (f == F_TIME)
				set_detail(res, TALLY_DECODE_ERR_TIME, fs->at, "%s: %s", name, d->time_why);
			else if (f == F_VOTE)
				set_detail(res, TALLY_DECODE_ERR_VOTE, fs->at,
				           "%s: expected 1, got another integer", name);
			else
				set_detail(res, TALLY_DECODE_ERR_UUID, fs->at, "%s: not a UUID", name);
			return res->cls;
		}
	}
	return TALLY_DECODE_ERR_NONE;
}

int
tally_decode_vote(const tally_decoder_opts_t *opts, const char *buf, size_t len,
                  tally_vote_t *vote, tally_decode_result_t *res)
{
	tally_decode_result_t spare;
	size_t max = opts && opts->max_size ? opts->max_size : TALLY_DECODE_DEFAULT_MAX_SIZE;
	struct dec d;
	int rc;

	if (!res)
		res = &spare;
	memset(vote, 0, sizeof(*vote));
	vote->reason = TALLY_REASON_MALFORMED;
	if (max > TALLY_DECODE_DEFAULT_MAX_SIZE)
		max = TALLY_DECODE_DEFAULT_MAX_SIZE;
	if (len > max) {
		set_detail(res, TALLY_DECODE_ERR_OVERSIZE, max,
		           "message of %zu bytes exceeds the limit of %zu", len, max);
		return TALLY_EFORMAT;
	}

	d.buf = (const uint8_t *)buf;
	d.end = d.buf + len;
	d.syn = SYN_NONE;
	d.dup = -1;
	memset(d.f, 0, sizeof(d.f));
	d.time_why = NULL;
	d.voting_time = 0;
	memset(&d.voter_id, 0, sizeof(d.voter_id));
	memset(&d.candidate_id, 0, sizeof(d.candidate_id));
	rc = scan(&d);
	if (judge(&d, rc, res) != TALLY_DECODE_ERR_NONE)
		return TALLY_EFORMAT;

	vote->voter_id = d.voter_id;
	vote->candidate_id = d.candidate_id;
	vote->voting_time = d.voting_time;
	vote->reason = TALLY_REASON_ACCEPTED;
	res->cls = TALLY_DECODE_ERR_NONE;
	res->offset = 0;
	res->detail[0] = '\0';
	return TALLY_OK;
}

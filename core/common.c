/*
 * Strings of the enums and the small value types every layer shares.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <tally/core.h>
#include <tally/decode.h>
#include <tally/error.h>
#include <tally/registry.h>
#include <tally/uuid.h>
#include <tally/vote.h>

#include <tally/atomic.h>

const char *
tally_err2str(int err)
{
	switch (err) {
	case TALLY_OK:
		return "success";
#define TALLY__ERR_STR(name, code, str) case code: return str;
	TALLY_ERRNO_MAP(TALLY__ERR_STR)
#undef TALLY__ERR_STR
	}
	return "unknown error";
}

void
tally_errstr_vset(char *errstr, size_t errstr_size, const char *fmt, va_list ap)
{
	if (errstr != NULL && errstr_size > 0)
		vsnprintf(errstr, errstr_size, fmt, ap);
}

void
tally_errstr_set(char *errstr, size_t errstr_size, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	tally_errstr_vset(errstr, errstr_size, fmt, ap);
	va_end(ap);
}

const char *
tally_err_name(int err)
{
	switch (err) {
	case TALLY_OK:
		return "TALLY_OK";
#define TALLY__ERR_NAME(name, code, str) case code: return "TALLY_E" #name;
	TALLY_ERRNO_MAP(TALLY__ERR_NAME)
#undef TALLY__ERR_NAME
	}
	return "TALLY_EUNKNOWN";
}

static const char *const reason_names[] = {
#define TALLY__REASON_NAME(name, str, doc) str,
	TALLY_REASON_MAP(TALLY__REASON_NAME)
#undef TALLY__REASON_NAME
};

static const char *const reason_docs[] = {
#define TALLY__REASON_DOC(name, str, doc) doc,
	TALLY_REASON_MAP(TALLY__REASON_DOC)
#undef TALLY__REASON_DOC
};

const char *
tally_reason_name(int reason)
{
	if (reason < 0 || reason >= TALLY_REASON__COUNT)
		return "unknown";
	return reason_names[reason];
}

const char *
tally_reason_doc(int reason)
{
	if (reason < 0 || reason >= TALLY_REASON__COUNT)
		return "unknown reason";
	return reason_docs[reason];
}

int
tally_reason_from_name(const char *name)
{
	for (int i = 0; i < TALLY_REASON__COUNT; i++)
		if (strcmp(reason_names[i], name) == 0)
			return i;
	return -1;
}

const char *
tally_refusal_name(int refusal)
{
	static const char *const names[] = {
#define TALLY__REFUSAL_NAME(name, str) str,
		TALLY_REFUSAL_MAP(TALLY__REFUSAL_NAME)
#undef TALLY__REFUSAL_NAME
	};

	if (refusal < 0 || refusal >= TALLY_REFUSAL__COUNT)
		return "unknown";
	return names[refusal];
}

const char *
tally_election_status_name(int status)
{
	static const char *const names[] = {
#define TALLY__ESTATUS_NAME(name, str) str,
		TALLY_ELECTION_STATUS_MAP(TALLY__ESTATUS_NAME)
#undef TALLY__ESTATUS_NAME
	};

	if (status < 0 || status >= (int)(sizeof(names) / sizeof(names[0])))
		return "unknown";
	return names[status];
}

const char *
tally_decode_err_name(int cls)
{
	static const char *const names[] = {
#define TALLY__DECERR_NAME(name, str) str,
		TALLY_DECODE_ERR_MAP(TALLY__DECERR_NAME)
#undef TALLY__DECERR_NAME
	};

	if (cls < 0 || cls >= TALLY_DECODE_ERR__COUNT)
		return "unknown";
	return names[cls];
}

void
tally_batch_init(tally_batch_t *batch, tally_vote_t *votes, uint32_t count, uint32_t lane)
{
	memset(batch, 0, sizeof(*batch));
	batch->votes = votes;
	batch->count = count;
	batch->lane = lane;
}

int
tally_batch_done(const tally_batch_t *batch)
{
	return tally_load_acquire(&batch->done) != 0;
}

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define ONES  0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL

/*
 * Eight hex digits (either case) at p to their value, or -1. Branch-free: ids are random
 * hex, so a branch on digit-or-letter per character mispredicts half the time, and that was
 * most of a compact vote's decoding cost. No byte's sum below can carry into the next,
 * because bytes >= 0x80 are refused first.
 */
static inline int64_t
hex8(uint64_t x)
{
	uint64_t l = x | (ONES * 0x20), digit, alpha, v;

	if (x & HIGHS)
		return -1;
	digit = (x + ONES * (0x80 - '0')) & ~(x + ONES * (0x7F - '9'));
	alpha = (l + ONES * (0x80 - 'a')) & ~(l + ONES * (0x7F - 'f'));
	if (((digit | alpha) & HIGHS) != HIGHS)
		return -1;
	/* Letters have bit 6 set: their value is the low nibble plus 9. */
	v = (x & (ONES * 0x0F)) + ((x >> 6) & ONES) * 9;
	/* Pack the eight nibbles, first character most significant. */
	v = __builtin_bswap64(v);
	v = (v | (v >> 4)) & 0x00FF00FF00FF00FFULL;
	v = (v | (v >> 8)) & 0x0000FFFF0000FFFFULL;
	v = (v | (v >> 16)) & 0x00000000FFFFFFFFULL;
	return (int64_t)v;
}

/* Two four-byte runs at a and b as one eight-byte word. */
static inline uint64_t
load_4_4(const uint8_t *a, const uint8_t *b)
{
	uint32_t x, y;

	memcpy(&x, a, 4);
	memcpy(&y, b, 4);
	return (uint64_t)x | (uint64_t)y << 32;
}

bool
tally_uuid_parse(const char *text, size_t len, tally_uuid_t *out)
{
	const uint8_t *s = (const uint8_t *)text;
	uint64_t w[4];
	int64_t a, b, c, e;

	if (len != TALLY_UUID_STRLEN)
		return false;
	if ((s[8] != '-') | (s[13] != '-') | (s[18] != '-') | (s[23] != '-'))
		return false;
	memcpy(&w[0], s, 8);
	w[1] = load_4_4(s + 9, s + 14);
	w[2] = load_4_4(s + 19, s + 24);
	memcpy(&w[3], s + 28, 8);
	a = hex8(w[0]);
	b = hex8(w[1]);
	c = hex8(w[2]);
	e = hex8(w[3]);
	if ((a | b | c | e) < 0)
		return false;
	out->hi = (uint64_t)a << 32 | (uint64_t)b;
	out->lo = (uint64_t)c << 32 | (uint64_t)e;
	return true;
}
#else
static int
hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c |= 0x20;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

bool
tally_uuid_parse(const char *text, size_t len, tally_uuid_t *out)
{
	uint64_t w[2] = {0, 0};
	int nibbles = 0;

	if (len != TALLY_UUID_STRLEN)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (text[i] != '-')
				return false;
			continue;
		}
		int v = hexval((unsigned char)text[i]);
		if (v < 0)
			return false;
		w[nibbles >> 4] = (w[nibbles >> 4] << 4) | (uint64_t)v;
		nibbles++;
	}
	out->hi = w[0];
	out->lo = w[1];
	return true;
}
#endif

char *
tally_uuid_format(const tally_uuid_t *id, char *buf)
{
	static const char hex[] = "0123456789abcdef";
	char *p = buf;

	for (int n = 0; n < 32; n++) {
		uint64_t w = n < 16 ? id->hi : id->lo;
		int shift = 60 - 4 * (n & 15);

		if (n == 8 || n == 12 || n == 16 || n == 20)
			*p++ = '-';
		*p++ = hex[(w >> shift) & 15];
	}
	*p = '\0';
	return buf;
}

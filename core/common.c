/*
 * Strings of the enums and the small value types every layer shares.
 */
#include <string.h>

#include <tally/core.h>
#include <tally/decode.h>
#include <tally/error.h>
#include <tally/registry.h>
#include <tally/uuid.h>
#include <tally/vote.h>

#include "atomic.h"

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

/*
 * Export and import of the core's state (see include/tally/state.h for the contract).
 *
 * Layout, all integers little-endian:
 *   "TALLYST1"                         magic and format version
 *   u32 flags
 *   str election id, i64 opens_at, i64 closes_at, u32 status
 *   u64 version                        snapshot version at export
 *   u32 n, n x (str reason, u64 count) rejections by reason name
 *   u32 n, n x (uuid candidate, str region, u64 count)   non-zero cells
 *   u8  has_final; if 1: u64 read, u32 n, n x (str reason, u64 count) at the close
 *   u64 n, n x uuid                    voted set (when TALLY_STATE_VOTED), level 0
 *   "TALLYST2" only: u32 L, then for levels 1 .. L: u64 n, n x uuid (voted at that level)
 *   u32 n, n bytes                     caller's positions
 *   u32 crc32c of everything before
 * where str is u16 length + bytes and uuid is 16 bytes big-endian. A registry with levels
 * beyond 0 (contests) exports "TALLYST2"; any other, "TALLYST1" as before. Both import.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tally/error.h>
#include <tally/snapshot.h>
#include <tally/state.h>

#include "core_int.h"

static const char magic[8] = {'T', 'A', 'L', 'L', 'Y', 'S', 'T', '1'};
static const char magic2[8] = {'T', 'A', 'L', 'L', 'Y', 'S', 'T', '2'};

/* ---- CRC-32C (Castagnoli), bitwise table ------------------------------------------ */

static uint32_t crc_table[256];

static void
crc_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;

		for (int k = 0; k < 8; k++)
			c = (c & 1) ? (c >> 1) ^ 0x82f63b78u : c >> 1;
		crc_table[i] = c;
	}
}

static uint32_t
crc32c(const unsigned char *p, size_t n)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	uint32_t c = 0xffffffffu;

	pthread_once(&once, crc_init);
	while (n--)
		c = crc_table[(c ^ *p++) & 0xff] ^ (c >> 8);
	return c ^ 0xffffffffu;
}

/* ---- writer ----------------------------------------------------------------------- */

struct wbuf {
	unsigned char *p;
	size_t len, cap;
	int err;
};

static void
put(struct wbuf *b, const void *src, size_t n)
{
	if (b->err)
		return;
	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		void *np;

		while (cap < b->len + n)
			cap *= 2;
		if ((np = realloc(b->p, cap)) == NULL) {
			b->err = TALLY_ENOMEM;
			return;
		}
		b->p = np;
		b->cap = cap;
	}
	memcpy(b->p + b->len, src, n);
	b->len += n;
}

static void
put_u64(struct wbuf *b, uint64_t v)
{
	unsigned char x[8];

	for (int i = 0; i < 8; i++)
		x[i] = (unsigned char)(v >> (8 * i));
	put(b, x, 8);
}

static void
put_u32(struct wbuf *b, uint32_t v)
{
	unsigned char x[4] = {(unsigned char)v, (unsigned char)(v >> 8), (unsigned char)(v >> 16),
	                      (unsigned char)(v >> 24)};

	put(b, x, 4);
}

static void
put_str(struct wbuf *b, const char *s)
{
	size_t n = strlen(s);
	unsigned char x[2] = {(unsigned char)n, (unsigned char)(n >> 8)};

	put(b, x, 2);
	put(b, s, n);
}

static void
put_uuid(struct wbuf *b, const tally_uuid_t *id)
{
	unsigned char x[16];

	for (int i = 0; i < 8; i++) {
		x[i] = (unsigned char)(id->hi >> (56 - 8 * i));
		x[8 + i] = (unsigned char)(id->lo >> (56 - 8 * i));
	}
	put(b, x, 16);
}

static void
put_reasons(struct wbuf *b, const uint64_t *counts)
{
	put_u32(b, TALLY_REASON__COUNT - 1);
	for (int k = 1; k < TALLY_REASON__COUNT; k++) {
		put_str(b, tally_reason_name(k));
		put_u64(b, counts[k]);
	}
}

/* One cell, as the formats store it: (uuid candidate, str region, u64 count). */
static void
put_cell(tally_core_t *core, struct wbuf *b, const tally_uuid_t *cand, uint32_t region,
         uint64_t v)
{
	put_uuid(b, cand);
	put_str(b, tally_registry_region_name(core->reg, region));
	put_u64(b, v);
}

/* Patch a u32 count written as 0 at `at`. */
static void
patch_u32(struct wbuf *b, size_t at, uint32_t n)
{
	if (!b->err)
		for (int i = 0; i < 4; i++)
			b->p[at + i] = (unsigned char)(n >> (8 * i));
}

/* A snapshot's non-zero cells as u32 n, n x cell. */
static void
put_snapshot_cells(tally_core_t *core, struct wbuf *b, const tally_snapshot_t *snap)
{
	size_t count_at = b->len;
	uint32_t n = 0;

	put_u32(b, 0);
	for (uint32_t c = 0; c < snap->ncandidates; c++) {
		tally_candidate_info_t info;

		tally_registry_candidate_get(core->reg, c, &info);
		for (uint64_t i = snap->cell_first[c]; i < snap->cell_first[c + 1]; i++)
			if (snap->cells[i] != 0) {
				put_cell(core, b, &info.id, snap->cell_region[i], snap->cells[i]);
				n++;
			}
	}
	patch_u32(b, count_at, n);
}

/* Candidate c's cells in use: the first, how many (contest 0: the regions known, nr), and
 * the contest's regions (NULL for contest 0: cell i is region i). */
static void
cand_cells(const tally_core_t *core, uint32_t c, uint32_t nr, uint64_t *first, uint32_t *n,
           const uint32_t **regions)
{
	tally_contest_info_t k;

	tally_registry_candidate_cells(core->reg, c, first, n);
	if (core->hot->cands[c].contest == 0) {
		*n = nr;
		*regions = NULL;
	} else {
		tally_registry_contest_get(core->reg, core->hot->cands[c].contest, &k);
		*regions = k.regions;
	}
}

struct voted_ctx {
	struct wbuf *b;
	uint64_t n;
	uint32_t store;
};

static void
put_voted(tally__vslot_t *s, const tally__vtable_t *t, void *arg)
{
	struct voted_ctx *ctx = arg;

	if (ctx->store != TALLY__NO_STORE && (tally__vslot_voted(s, t) & (1u << ctx->store))) {
		tally_uuid_t id = {s->hi, s->lo};

		put_uuid(ctx->b, &id);
		ctx->n++;
	}
}

/* The voters who voted at a level, as u64 n, n x uuid. */
static void
put_voted_level(tally_core_t *core, struct wbuf *b, uint32_t level)
{
	struct voted_ctx ctx = {b, 0, tally__level_store(core->hot, level)};
	size_t count_at = b->len;

	put_u64(b, 0);
	tally__registry_voters_foreach(core->reg, put_voted, &ctx);
	if (!b->err)
		for (int i = 0; i < 8; i++)
			b->p[count_at + i] = (unsigned char)(ctx.n >> (8 * i));
}

int
tally_state_export(tally_core_t *core, unsigned flags, const void *positions,
                   size_t positions_len, void **out, size_t *out_len)
{
	uint32_t nlevels = tally_registry_level_count(core->reg);
	tally_snapshot_t *snap;
	struct wbuf b = {0};

	if (!tally__core_quiescent(core))
		return TALLY_ESTATE;
	if ((snap = tally_snapshot_take(core)) == NULL)
		return TALLY_ENOMEM;

	put(&b, nlevels > 1 ? magic2 : magic, sizeof(magic));
	put_u32(&b, flags);
	put_str(&b, snap->election.id);
	put_u64(&b, (uint64_t)snap->election.opens_at);
	put_u64(&b, (uint64_t)snap->election.closes_at);
	put_u32(&b, snap->election.status);
	put_u64(&b, snap->version);
	put_reasons(&b, snap->rejected);

	put_snapshot_cells(core, &b, snap);

	if (core->final != NULL) {
		put(&b, "\1", 1);
		put_u64(&b, core->final->read);
		put_reasons(&b, core->final->rejected);
	} else {
		put(&b, "\0", 1);
	}

	if (flags & TALLY_STATE_VOTED)
		put_voted_level(core, &b, 0);
	else
		put_u64(&b, 0);
	if (nlevels > 1) {
		put_u32(&b, (flags & TALLY_STATE_VOTED) ? nlevels - 1 : 0);
		for (uint32_t l = 1; (flags & TALLY_STATE_VOTED) && l < nlevels; l++)
			put_voted_level(core, &b, l);
	}
	put_u32(&b, (uint32_t)positions_len);
	if (positions_len > 0)
		put(&b, positions, positions_len);
	if (!b.err)
		put_u32(&b, crc32c(b.p, b.len));
	tally_snapshot_destroy(snap);
	if (b.err) {
		free(b.p);
		return b.err;
	}
	*out = b.p;
	*out_len = b.len;
	return 0;
}

/* ---- reader ----------------------------------------------------------------------- */

struct rbuf {
	const unsigned char *p;
	size_t len, off;
	int bad;
};

static const unsigned char *
take(struct rbuf *r, size_t n)
{
	const unsigned char *p;

	if (r->bad || r->len - r->off < n) {
		r->bad = 1;
		return NULL;
	}
	p = r->p + r->off;
	r->off += n;
	return p;
}

static uint64_t
get_u64(struct rbuf *r)
{
	const unsigned char *p = take(r, 8);
	uint64_t v = 0;

	for (int i = 0; p != NULL && i < 8; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static uint32_t
get_u32(struct rbuf *r)
{
	const unsigned char *p = take(r, 4);

	return p == NULL ? 0 : (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	                           (uint32_t)p[3] << 24;
}

/* Copies a string into buf (NUL-terminated); an over-long one marks the input bad. */
static void
get_str(struct rbuf *r, char *buf, size_t size)
{
	const unsigned char *p = take(r, 2);
	size_t n = p == NULL ? 0 : (size_t)p[0] | (size_t)p[1] << 8;

	buf[0] = '\0';
	if (p == NULL)
		return;
	if (n >= size) {
		r->bad = 1;
		return;
	}
	if ((p = take(r, n)) != NULL) {
		memcpy(buf, p, n);
		buf[n] = '\0';
	}
}

static void
get_uuid(struct rbuf *r, tally_uuid_t *id)
{
	const unsigned char *p = take(r, 16);

	id->hi = id->lo = 0;
	for (int i = 0; p != NULL && i < 8; i++) {
		id->hi = id->hi << 8 | p[i];
		id->lo = id->lo << 8 | p[8 + i];
	}
}

static int
get_reasons(struct rbuf *r, uint64_t *counts, char *errstr, size_t errstr_size)
{
	uint32_t n = get_u32(r);
	char name[64];

	memset(counts, 0, sizeof(uint64_t) * TALLY_REASON__COUNT);
	for (uint32_t i = 0; i < n && !r->bad; i++) {
		int k;

		get_str(r, name, sizeof(name));
		k = tally_reason_from_name(name);
		if (k <= 0 && !r->bad) {
			snprintf(errstr, errstr_size, "state names unknown rejection reason \"%s\"", name);
			return TALLY_ECORRUPT;
		}
		counts[k > 0 ? k : 0] = get_u64(r);
	}
	return 0;
}

/* The non-zero cells (u32 n, n x (uuid candidate, str region, u64 count)) into cells, by
 * this registry's indexes. r->bad is left for the caller to check. */
static int
get_cells(tally_core_t *core, struct rbuf *r, uint64_t *cells, const char *what, char *errstr,
          size_t errstr_size)
{
	char name[TALLY_NAME_MAX + 1];
	uint32_t n = get_u32(r);

	for (uint32_t i = 0; i < n && !r->bad; i++) {
		tally_uuid_t id;
		int32_t c, reg = -1;

		get_uuid(r, &id);
		get_str(r, name, sizeof(name));
		if (r->bad)
			break;
		if ((c = tally_registry_candidate_find(core->reg, &id)) < 0 ||
		    (reg = tally_registry_region_find(core->reg, name)) < 0) {
			char idtext[TALLY_UUID_STRLEN + 1];

			snprintf(errstr, errstr_size, "%s counts votes for %s \"%s\", which is not "
			         "registered", what, c < 0 ? "candidate" : "region",
			         c < 0 ? tally_uuid_format(&id, idtext) : name);
			return TALLY_ENOENT;
		}
		{
			const tally__cand_hot_t *h = &core->hot->cands[c];
			tally__place_t p = h->contest == 0 ? 0 : core->hot->places[h->level][reg];

			if (h->contest != 0 && TALLY__PLACE_CONTEST1(p) != h->contest + 1) {
				char idtext[TALLY_UUID_STRLEN + 1];

				snprintf(errstr, errstr_size, "%s counts votes for candidate %s from "
				         "region \"%s\", outside the candidate's contest", what,
				         tally_uuid_format(&id, idtext), name);
				return TALLY_ECORRUPT;
			}
			cells[h->cell + (h->contest == 0 ? (uint32_t)reg : TALLY__PLACE_POS(p))] =
			    get_u64(r);
		}
	}
	return 0;
}

/* A voted set (u64 n, n x uuid) marked at a level. */
static int
get_voted_level(tally_core_t *core, struct rbuf *r, uint32_t level, bool mark, char *errstr,
                size_t errstr_size)
{
	uint64_t nvoted = get_u64(r);

	if (r->bad || nvoted > (r->len - r->off) / 16) {
		snprintf(errstr, errstr_size, "state is truncated or malformed at byte %zu", r->off);
		return TALLY_ECORRUPT;
	}
	if (!mark) {
		take(r, nvoted * 16);
		return 0;
	}
	for (uint64_t i = 0; i < nvoted; i++) {
		tally_uuid_t id;
		int rc;

		get_uuid(r, &id);
		rc = tally_core_mark_voted_level(core, &id, level);
		if (rc == TALLY_EINVAL) {
			snprintf(errstr, errstr_size, "state has votes at level %u, which is not "
			         "registered", level);
			return TALLY_ECORRUPT;
		}
		if (rc == TALLY_ENOENT) {
			snprintf(errstr, errstr_size, "state has a vote by voter number %llu of %llu "
			         "at level %u, who is not registered", (unsigned long long)i + 1,
			         (unsigned long long)nvoted, level);
			return TALLY_ENOENT;
		}
	}
	return 0;
}

int
tally_state_import(tally_core_t *core, const void *buf, size_t len, void **positions,
                   size_t *positions_len, char *errstr, size_t errstr_size)
{
	struct rbuf r = {buf, len, 0, 0};
	size_t ncells_total = core->cells_per_part;
	uint64_t *cells = NULL, rejected[TALLY_REASON__COUNT], final_rejected[TALLY_REASON__COUNT];
	uint64_t version, final_read = 0;
	bool v2;
	tally_election_t el;
	tally_snapshot_t *final = NULL;
	uint32_t flags, n, crc;
	int has_final, rc = TALLY_ECORRUPT;

	if (tally_load_acquire(&core->running))
		return TALLY_ESTATE;
	if (core->parts > 1) {
		snprintf(errstr, errstr_size, "this core keeps %u parts: import each part's state",
		         core->parts);
		return TALLY_ESTATE;
	}
	if (len < sizeof(magic) + 4 || (memcmp(buf, magic, sizeof(magic)) != 0 &&
	                                 memcmp(buf, magic2, sizeof(magic2)) != 0)) {
		snprintf(errstr, errstr_size, "not a tally state (bad magic or format version)");
		return TALLY_ECORRUPT;
	}
	v2 = memcmp(buf, magic2, sizeof(magic2)) == 0;
	memcpy(&crc, (const unsigned char *)buf + len - 4, 4);
	crc = get_u32(&(struct rbuf){(const unsigned char *)buf + len - 4, 4, 0, 0});
	if (crc != crc32c(buf, len - 4)) {
		snprintf(errstr, errstr_size, "state checksum mismatch (truncated or damaged)");
		return TALLY_ECORRUPT;
	}
	r.len = len - 4;
	take(&r, sizeof(magic));
	flags = get_u32(&r);
	memset(&el, 0, sizeof(el));
	get_str(&r, el.id, sizeof(el.id));
	el.opens_at = (int64_t)get_u64(&r);
	el.closes_at = (int64_t)get_u64(&r);
	el.status = (tally_election_status_t)get_u32(&r);
	version = get_u64(&r);
	if ((rc = get_reasons(&r, rejected, errstr, errstr_size)) != 0)
		return rc;
	if (el.opens_at != core->election.opens_at || el.closes_at != core->election.closes_at ||
	    strcmp(el.id, core->election.id) != 0 || el.status > TALLY_ELECTION_FINAL) {
		snprintf(errstr, errstr_size, "state is of election \"%s\", not \"%s\"", el.id,
		         core->election.id);
		return TALLY_ECORRUPT;
	}
	if ((cells = calloc(ncells_total, sizeof(uint64_t))) == NULL)
		return TALLY_ENOMEM;
	if ((rc = get_cells(core, &r, cells, "state", errstr, errstr_size)) != 0)
		goto out;
	has_final = 0;
	if (!r.bad) {
		const unsigned char *p = take(&r, 1);

		has_final = p != NULL && *p == 1;
		if (has_final) {
			final_read = get_u64(&r);
			if ((rc = get_reasons(&r, final_rejected, errstr, errstr_size)) != 0)
				goto out;
		}
	}
	if ((flags & TALLY_STATE_VOTED) && !r.bad)
		tally__registry_clear_voted(core->reg);
	if ((rc = get_voted_level(core, &r, 0, (flags & TALLY_STATE_VOTED) != 0, errstr,
	                          errstr_size)) != 0)
		goto out;
	if (v2) {
		uint32_t nl = get_u32(&r);

		for (uint32_t l = 1; l <= nl && !r.bad; l++)
			if ((rc = get_voted_level(core, &r, l, (flags & TALLY_STATE_VOTED) != 0,
			                          errstr, errstr_size)) != 0)
				goto out;
	}
	n = get_u32(&r);
	{
		const unsigned char *p = take(&r, n);

		if (r.bad || r.off != r.len) {
			snprintf(errstr, errstr_size, "state is truncated or malformed at byte %zu", r.off);
			rc = TALLY_ECORRUPT;
			goto out;
		}
		if (positions != NULL) {
			*positions = malloc(n ? n : 1);
			if (*positions == NULL) {
				rc = TALLY_ENOMEM;
				goto out;
			}
			memcpy(*positions, p, n);
			*positions_len = n;
		}
	}

	/* Everything parsed: replace the counters (one part: the whole election). */
	for (unsigned w = 0; w < core->nworkers; w++)
		memset(core->workers[w].counters, 0, core->counters_bytes);
	memcpy(core->base, cells, ncells_total * sizeof(uint64_t));
	memcpy(core->base + core->cells_per_part, rejected, sizeof(rejected));
	core->status = el.status;
	core->election.status = el.status;
	if (has_final) {
		uint64_t saved[TALLY_REASON__COUNT];

		/* The accepted cells did not change after the close; only rejections did. */
		memcpy(saved, core->base + core->cells_per_part, sizeof(saved));
		memcpy(core->base + core->cells_per_part, final_rejected, sizeof(final_rejected));
		final = tally_snapshot_take(core);
		memcpy(core->base + core->cells_per_part, saved, sizeof(saved));
		if (final == NULL) {
			rc = TALLY_ENOMEM;
			goto out;
		}
		if (final->read != final_read) {
			snprintf(errstr, errstr_size, "state's final results do not add up");
			tally_snapshot_destroy(final);
			rc = TALLY_ECORRUPT;
			goto out;
		}
	}
	tally_snapshot_destroy(core->final);
	core->final = final;
	core->version_offset = 0;
	{
		tally_snapshot_t *now = tally_snapshot_take(core);

		if (now != NULL && now->version < version)
			core->version_offset = version - now->version;
		tally_snapshot_destroy(now);
	}
	rc = 0;
out:
	free(cells);
	return rc;
}

/* ---- one part ------------------------------------------------------------------------ */

static const char part_magic[8] = {'T', 'A', 'L', 'L', 'Y', 'P', 'T', '1'};

uint64_t
tally_state_part_read(const tally_core_t *core, unsigned part)
{
	uint32_t nc = tally_registry_candidate_count(core->reg);
	uint32_t nr = tally_registry_region_count(core->reg);
	uint64_t n = 0;

	if (part >= core->parts)
		return 0;
	/* Cells of unregistered candidates or regions are never counted into. */
	for (uint32_t c = 0; c < nc; c++) {
		const uint32_t *regions;
		uint64_t first;
		uint32_t m;

		cand_cells(core, c, nr, &first, &m, &regions);
		for (uint32_t i = 0; i < m; i++)
			n += tally__part_word(core, part, first + i);
	}
	for (int k = 1; k < TALLY_REASON__COUNT; k++)
		n += tally__part_word(core, part, core->cells_per_part + (size_t)k);
	return n;
}

int
tally_state_export_part(tally_core_t *core, unsigned part, void **out, size_t *out_len)
{
	uint32_t nc = tally_registry_candidate_count(core->reg);
	uint32_t nr = tally_registry_region_count(core->reg);
	uint64_t rejected[TALLY_REASON__COUNT];
	struct wbuf b = {0};
	size_t count_at;
	uint32_t ncells = 0;

	if (part >= core->parts)
		return TALLY_EINVAL;
	if (!tally__core_quiescent(core))
		return TALLY_ESTATE;
	put(&b, part_magic, sizeof(part_magic));
	put_str(&b, core->election.id);
	put_u32(&b, part);
	put_u64(&b, tally_state_part_read(core, part));
	for (int k = 0; k < TALLY_REASON__COUNT; k++)
		rejected[k] = tally__part_word(core, part, core->cells_per_part + (size_t)k);
	put_reasons(&b, rejected);
	count_at = b.len;
	put_u32(&b, 0);
	for (uint32_t c = 0; c < nc; c++) {
		tally_candidate_info_t info;
		const uint32_t *regions;
		uint64_t first;
		uint32_t m;

		tally_registry_candidate_get(core->reg, c, &info);
		cand_cells(core, c, nr, &first, &m, &regions);
		for (uint32_t i = 0; i < m; i++) {
			uint64_t v = tally__part_word(core, part, first + i);

			if (v != 0) {
				put_cell(core, &b, &info.id, regions == NULL ? i : regions[i], v);
				ncells++;
			}
		}
	}
	patch_u32(&b, count_at, ncells);
	if (!b.err)
		put_u32(&b, crc32c(b.p, b.len));
	if (b.err) {
		free(b.p);
		return b.err;
	}
	*out = b.p;
	*out_len = b.len;
	return 0;
}

/* Part p's counters: base[p] = from (slice_words words, or zeros), the workers' slice zeroed
 * (relaxed stores: the workers are parked, and write these cells only with relaxed ones). */
static void
part_set(tally_core_t *core, unsigned part, const uint64_t *from)
{
	for (unsigned w = 0; w < core->nworkers; w++) {
		uint64_t *slice = tally__slice(core, w, part);

		if (slice != NULL)
			for (size_t i = 0; i < core->slice_words; i++)
				tally_store_relaxed(&slice[i], 0);
	}
	if (from != NULL)
		memcpy(tally__base(core, part), from, core->slice_words * sizeof(uint64_t));
	else
		memset(tally__base(core, part), 0, core->slice_words * sizeof(uint64_t));
}

int
tally_state_reset_part(tally_core_t *core, unsigned part)
{
	if (part >= core->parts)
		return TALLY_EINVAL;
	if (!tally__core_quiescent(core))
		return TALLY_ESTATE;
	part_set(core, part, NULL);
	return 0;
}

int
tally_state_import_part(tally_core_t *core, unsigned part, const void *buf, size_t len,
                        uint64_t *version, char *errstr, size_t errstr_size)
{
	struct rbuf r = {buf, len, 0, 0};
	char id[TALLY_ELECTION_ID_MAX + 1];
	uint64_t *words = NULL, v, sum = 0;
	uint32_t stored_part;
	int rc = TALLY_ECORRUPT;

	if (part >= core->parts)
		return TALLY_EINVAL;
	if (!tally__core_quiescent(core))
		return TALLY_ESTATE;
	if (len < sizeof(part_magic) + 4 || memcmp(buf, part_magic, sizeof(part_magic)) != 0) {
		snprintf(errstr, errstr_size, "not a tally part state (bad magic or format version)");
		return TALLY_ECORRUPT;
	}
	if (get_u32(&(struct rbuf){(const unsigned char *)buf + len - 4, 4, 0, 0}) !=
	    crc32c(buf, len - 4)) {
		snprintf(errstr, errstr_size, "part state checksum mismatch (truncated or damaged)");
		return TALLY_ECORRUPT;
	}
	r.len = len - 4;
	take(&r, sizeof(part_magic));
	get_str(&r, id, sizeof(id));
	stored_part = get_u32(&r);
	v = get_u64(&r);
	if (!r.bad && (strcmp(id, core->election.id) != 0 || stored_part != part)) {
		snprintf(errstr, errstr_size, "part state is part %u of election \"%s\", not part %u "
		         "of \"%s\"", stored_part, id, part, core->election.id);
		return TALLY_ECORRUPT;
	}
	if ((words = calloc(core->slice_words, sizeof(uint64_t))) == NULL)
		return TALLY_ENOMEM;
	if ((rc = get_reasons(&r, words + core->cells_per_part, errstr, errstr_size)) != 0)
		goto out;
	if ((rc = get_cells(core, &r, words, "part state", errstr, errstr_size)) != 0)
		goto out;
	rc = TALLY_ECORRUPT;
	if (r.bad || r.off != r.len) {
		snprintf(errstr, errstr_size, "part state is truncated or malformed at byte %zu", r.off);
		goto out;
	}
	for (size_t i = 0; i < core->slice_words; i++)
		sum += i == core->cells_per_part ? 0 : words[i];
	if (sum != v) {
		snprintf(errstr, errstr_size, "part state's counts (%llu) do not add up to its "
		         "version (%llu)", (unsigned long long)sum, (unsigned long long)v);
		goto out;
	}
	part_set(core, part, words);
	if (version != NULL)
		*version = v;
	rc = 0;
out:
	free(words);
	return rc;
}

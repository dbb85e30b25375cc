/*
 * /api/contests and /api/contests/{id}: every contest's result, sortable, filterable and
 * pageable, from one snapshot (see include/tally/contest.h for the rules).
 *
 * The render thread builds, for each new version, a table of rows (contest_table_build()):
 * binary, in a body buffer like the other bodies, so a request holds it by the same
 * reference count. Strings are the registry's (they live as long as it, and never move).
 * A request filters, sorts (qsort_r: several requests at once) and pages that table on its
 * own thread and renders the page: 650 contests sort in well under a millisecond, so no
 * order needs to be kept ready.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <tally/contest.h>
#include <tally/uuid.h>

#include "contests.h"

typedef struct ctable_head {
	uint64_t version;
	int64_t taken_at_us;
	uint32_t nrows, ncands, nlevels, nparties;
	uint32_t report;
	uint32_t _pad;
} ctable_head_t;

typedef struct ctable_row {
	const char *id, *name, *level;
	uint64_t votes, registered, majority;
	int32_t leader;                  /* candidate index, -1: none */
	uint32_t status, tie;
	uint32_t cand_first, ncands;     /* into the candidates that follow the rows */
	uint32_t _pad;
} ctable_row_t;

typedef struct ctable_cand {
	uint32_t cand;
	uint32_t _pad;
	uint64_t votes;
} ctable_cand_t;

typedef struct ctable_seat {
	uint64_t won, led, votes;
	uint32_t contests, declared;
} ctable_seat_t;

/* The parts of a built table. */
typedef struct ctable {
	const ctable_head_t *head;
	const ctable_row_t *rows;
	const ctable_cand_t *cands;
	const ctable_seat_t *seats;      /* [nlevels * nparties] */
} ctable_t;

static void
view(const hbuf_t *b, ctable_t *t)
{
	t->head = (const ctable_head_t *)b->p;
	t->rows = (const ctable_row_t *)(t->head + 1);
	t->cands = (const ctable_cand_t *)(t->rows + t->head->nrows);
	t->seats = (const ctable_seat_t *)(t->cands + t->head->ncands);
}

void
tally__contest_table_build(const tally_snapshot_t *snap, const tally_registry_t *reg,
                           tally_contests_t *res, hbuf_t *out)
{
	ctable_head_t head = {0};
	uint32_t nrows = 0;

	hbuf_reset(out);
	if (tally_contests_compute(reg, snap, snap->election.status >= TALLY_ELECTION_CLOSED,
	                           res) != 0) {
		out->oom = true;
		return;
	}
	for (uint32_t k = 0; k < res->ncontests; k++)
		nrows += res->contests[k].ncandidates > 0;
	head.version = snap->version;
	head.taken_at_us = snap->taken_at_us;
	head.nrows = nrows;
	head.ncands = snap->ncandidates;
	head.nlevels = res->nlevels;
	head.nparties = res->nparties;
	head.report = res->report;
	hbuf_put(out, &head, sizeof(head));
	for (uint32_t k = 0, at = 0; k < res->ncontests; k++) {
		const tally_contest_result_t *c = &res->contests[k];
		tally_contest_info_t info;
		ctable_row_t row = {0};

		if (c->ncandidates == 0 || !tally_registry_contest_get(reg, k, &info))
			continue;
		row.id = info.id;
		row.name = info.name;
		row.level = tally_registry_level_name(reg, info.level);
		row.votes = c->votes;
		row.registered = c->registered;
		row.majority = c->majority;
		row.leader = c->leader;
		row.status = c->status;
		row.tie = c->tie;
		row.cand_first = at;
		row.ncands = c->ncandidates;
		at += c->ncandidates;
		hbuf_put(out, &row, sizeof(row));
	}
	/* Each row's candidates, most votes first, in row order: every candidate once (each
	 * stands in one contest), so snap->ncandidates of them. */
	for (uint32_t k = 0, n = 0; k < res->ncontests; k++) {
		const tally_contest_result_t *c = &res->contests[k];

		if (c->ncandidates == 0)
			continue;
		for (uint32_t i = 0; i < c->ncandidates; i++, n++) {
			ctable_cand_t cc = {res->cands[c->first + i], 0,
			                    snap->candidates[res->cands[c->first + i]]};

			hbuf_put(out, &cc, sizeof(cc));
		}
	}
	for (uint32_t l = 0; l < res->nlevels; l++)
		for (uint32_t p = 0; p < res->nparties; p++) {
			size_t i = (size_t)l * res->nparties + p;
			ctable_seat_t s = {res->seats_won[i], res->seats_led[i], res->party_votes[i],
			                   res->level_contests[l], res->level_declared[l]};

			hbuf_put(out, &s, sizeof(s));
		}
}

/* ---- requests -------------------------------------------------------------------------- */

enum sort_key { S_NAME, S_ID, S_VOTES, S_MAJORITY, S_TURNOUT, S_STATUS };

typedef struct query {
	enum sort_key sort;
	bool desc;
	const char *q, *party, *status;
	uint64_t offset, limit;
} query_t;

static double
turnout(const ctable_row_t *r)
{
	return r->registered > 0 ? (double)r->votes / (double)r->registered : 0.0;
}

typedef struct sort_ctx {
	const query_t *q;
	const ctable_t *t;
} sort_ctx_t;

/* qsort_r's comparison: requests sort on several threads at once, each with its own. */
static int
cmp_rows(const void *a, const void *b, void *arg)
{
	const sort_ctx_t *sc = arg;
	const ctable_row_t *x = &sc->t->rows[*(const uint32_t *)a];
	const ctable_row_t *y = &sc->t->rows[*(const uint32_t *)b];
	int c = 0;

	switch (sc->q->sort) {
	case S_NAME: c = strcmp(x->name, y->name); break;
	case S_ID: c = strcmp(x->id, y->id); break;
	case S_VOTES: c = x->votes < y->votes ? -1 : x->votes > y->votes; break;
	case S_MAJORITY: c = x->majority < y->majority ? -1 : x->majority > y->majority; break;
	case S_TURNOUT: c = turnout(x) < turnout(y) ? -1 : turnout(x) > turnout(y); break;
	case S_STATUS: c = (int)x->status - (int)y->status; break;
	}
	if (sc->q->desc)
		c = -c;
	/* Ties in the key: by id, always ascending, so pages never overlap. */
	return c != 0 ? c : strcmp(x->id, y->id);
}

static bool
contains_ci(const char *hay, const char *needle)
{
	size_t n = strlen(needle);

	if (n == 0)
		return true;
	for (; *hay != '\0'; hay++)
		if (strncasecmp(hay, needle, n) == 0)
			return true;
	return false;
}

static const char *
leader_party(const ctable_row_t *r, const tally_registry_t *reg)
{
	tally_candidate_info_t c;

	if (r->leader < 0 || !tally_registry_candidate_get(reg, (uint32_t)r->leader, &c))
		return NULL;
	return tally_registry_party_name(reg, c.party);
}

static bool
matches(const ctable_row_t *r, const tally_registry_t *reg, const query_t *q)
{
	const char *party = leader_party(r, reg);

	if (q->status != NULL && strcmp(q->status, tally_contest_status_name((int)r->status)) != 0)
		return false;
	if (q->party != NULL && (party == NULL || strcmp(party, q->party) != 0))
		return false;
	return q->q == NULL || contains_ci(r->name, q->q) || contains_ci(r->id, q->q) ||
	       (party != NULL && contains_ci(party, q->q));
}

static void
render_row(hbuf_t *out, const ctable_row_t *r, const tally_registry_t *reg)
{
	tally_candidate_info_t lead;
	char id[TALLY_UUID_STRLEN + 1];
	bool has = r->leader >= 0 && tally_registry_candidate_get(reg, (uint32_t)r->leader, &lead);

	hbuf_puts(out, "{\"contest_id\":");
	hbuf_json_str(out, r->id);
	hbuf_puts(out, ",\"contest_name\":");
	hbuf_json_str(out, r->name);
	hbuf_puts(out, ",\"level\":");
	hbuf_json_str(out, r->level);
	hbuf_puts(out, ",\"status\":\"");
	hbuf_puts(out, tally_contest_status_name((int)r->status));
	hbuf_puts(out, "\",\"total_votes\":");
	hbuf_u64(out, r->votes);
	hbuf_puts(out, ",\"registered\":");
	hbuf_u64(out, r->registered);
	hbuf_puts(out, ",\"turnout\":");
	hbuf_fixed(out, turnout(r), 6);
	hbuf_puts(out, ",\"leader\":");
	if (has) {
		hbuf_putc(out, '"');
		hbuf_puts(out, tally_uuid_format(&lead.id, id));
		hbuf_puts(out, "\",\"leader_name\":");
		hbuf_json_str(out, lead.name);
		hbuf_puts(out, ",\"party_affiliation\":");
		hbuf_json_str(out, tally_registry_party_name(reg, lead.party) ?: "");
	} else {
		hbuf_puts(out, "null,\"leader_name\":null,\"party_affiliation\":null");
	}
	hbuf_puts(out, ",\"majority\":");
	hbuf_u64(out, r->majority);
	hbuf_puts(out, ",\"majority_share\":");
	hbuf_fixed(out, r->votes > 0 ? (double)r->majority / (double)r->votes : 0.0, 6);
	hbuf_puts(out, r->tie ? ",\"tie\":true}" : ",\"tie\":false}");
}

static void
render_seats(hbuf_t *out, const ctable_t *t, const tally_registry_t *reg)
{
	bool first = true;

	hbuf_puts(out, "\"seats\":[");
	for (uint32_t l = 0; l < t->head->nlevels; l++)
		for (uint32_t p = 0; p < t->head->nparties; p++) {
			const ctable_seat_t *s = &t->seats[(size_t)l * t->head->nparties + p];

			if (s->contests == 0)
				continue;
			if (!first)
				hbuf_putc(out, ',');
			first = false;
			hbuf_puts(out, "{\"level\":");
			hbuf_json_str(out, tally_registry_level_name(reg, l) ?: "");
			hbuf_puts(out, ",\"party_affiliation\":");
			hbuf_json_str(out, tally_registry_party_name(reg, p) ?: "");
			hbuf_puts(out, ",\"seats_won\":");
			hbuf_u64(out, s->won);
			hbuf_puts(out, ",\"seats_led\":");
			hbuf_u64(out, s->led);
			hbuf_puts(out, ",\"total_votes\":");
			hbuf_u64(out, s->votes);
			hbuf_puts(out, ",\"contests\":");
			hbuf_u64(out, s->contests);
			hbuf_puts(out, ",\"declared\":");
			hbuf_u64(out, s->declared);
			hbuf_putc(out, '}');
		}
	hbuf_putc(out, ']');
}

/* The page as CSV (RFC 4180; names that a spreadsheet would take for a formula stay text). */
static void
render_csv(hbuf_t *out, const ctable_t *t, const uint32_t *idx, uint32_t n, const query_t *q,
           const tally_registry_t *reg)
{
	hbuf_puts(out, "contest_id,contest_name,level,status,total_votes,registered,turnout,"
	               "leader,leader_name,party_affiliation,majority,tie\r\n");
	for (uint64_t i = q->offset; i < n && i < q->offset + q->limit; i++) {
		const ctable_row_t *r = &t->rows[idx[i]];
		tally_candidate_info_t lead;
		char id[TALLY_UUID_STRLEN + 1];
		bool has = r->leader >= 0 &&
		           tally_registry_candidate_get(reg, (uint32_t)r->leader, &lead);

		hbuf_csv_field(out, r->id);
		hbuf_putc(out, ',');
		hbuf_csv_field(out, r->name);
		hbuf_putc(out, ',');
		hbuf_csv_field(out, r->level);
		hbuf_putc(out, ',');
		hbuf_puts(out, tally_contest_status_name((int)r->status));
		hbuf_putc(out, ',');
		hbuf_u64(out, r->votes);
		hbuf_putc(out, ',');
		hbuf_u64(out, r->registered);
		hbuf_putc(out, ',');
		hbuf_fixed(out, turnout(r), 6);
		hbuf_putc(out, ',');
		if (has) {
			hbuf_puts(out, tally_uuid_format(&lead.id, id));
			hbuf_putc(out, ',');
			hbuf_csv_field(out, lead.name);
			hbuf_putc(out, ',');
			hbuf_csv_field(out, tally_registry_party_name(reg, lead.party) ?: "");
		} else {
			hbuf_puts(out, ",,");
		}
		hbuf_putc(out, ',');
		hbuf_u64(out, r->majority);
		hbuf_puts(out, r->tie ? ",true\r\n" : ",false\r\n");
	}
}

/* A non-negative integer parameter: false when malformed. */
static bool
param_u64(const char *s, uint64_t *out)
{
	char *end;

	if (s == NULL)
		return true;
	if (*s < '0' || *s > '9')
		return false;
	*out = strtoull(s, &end, 10);
	return *end == '\0';
}

int
tally__contests_query(const hbuf_t *table, const tally_registry_t *reg,
                      const tally__contests_params_t *p, hbuf_t *out, const char **why)
{
	static const struct {
		const char *name;
		enum sort_key key;
	} sorts[] = {{"name", S_NAME}, {"id", S_ID}, {"votes", S_VOTES}, {"majority", S_MAJORITY},
	             {"turnout", S_TURNOUT}, {"status", S_STATUS}};
	query_t q = {S_NAME, false, p->q, p->party, p->status, 0, 50};
	uint32_t *idx, n = 0;
	ctable_t t;

	view(table, &t);
	if (p->sort != NULL) {
		size_t i;

		for (i = 0; i < sizeof(sorts) / sizeof(sorts[0]); i++)
			if (strcmp(p->sort, sorts[i].name) == 0)
				break;
		if (i == sizeof(sorts) / sizeof(sorts[0])) {
			*why = "sort must be name, id, votes, majority, turnout or status";
			return 400;
		}
		q.sort = sorts[i].key;
		/* Figures read best biggest first; names and ids alphabetically. */
		q.desc = q.sort == S_VOTES || q.sort == S_MAJORITY || q.sort == S_TURNOUT;
	}
	if (p->order != NULL) {
		if (strcmp(p->order, "asc") != 0 && strcmp(p->order, "desc") != 0) {
			*why = "order must be asc or desc";
			return 400;
		}
		q.desc = strcmp(p->order, "desc") == 0;
	}
	if (p->status != NULL && strcmp(p->status, "counting") != 0 &&
	    strcmp(p->status, "declared") != 0) {
		*why = "status must be counting or declared";
		return 400;
	}
	if (!param_u64(p->offset, &q.offset) || !param_u64(p->limit, &q.limit) || q.limit < 1 ||
	    q.limit > 1000) {
		*why = "offset must be a number, limit a number from 1 to 1000";
		return 400;
	}
	if ((idx = malloc((t.head->nrows + 1) * sizeof(uint32_t))) == NULL) {
		*why = "out of memory";
		return 503;
	}
	for (uint32_t i = 0; i < t.head->nrows; i++)
		if (matches(&t.rows[i], reg, &q))
			idx[n++] = i;
	{
		sort_ctx_t sc = {&q, &t};

		qsort_r(idx, n, sizeof(uint32_t), cmp_rows, &sc);
	}

	if (p->csv) {
		render_csv(out, &t, idx, n, &q, reg);
		free(idx);
		return out->oom ? 503 : 200;
	}
	hbuf_puts(out, "{\"version\":");
	hbuf_u64(out, t.head->version);
	hbuf_puts(out, ",\"updated_at\":\"");
	hbuf_iso_ms(out, t.head->taken_at_us);
	hbuf_puts(out, "\",\"report\":\"");
	hbuf_puts(out, tally_report_status_name((int)t.head->report));
	hbuf_puts(out, "\",\"total\":");
	hbuf_u64(out, t.head->nrows);
	hbuf_puts(out, ",\"matched\":");
	hbuf_u64(out, n);
	hbuf_puts(out, ",\"offset\":");
	hbuf_u64(out, q.offset);
	hbuf_puts(out, ",\"limit\":");
	hbuf_u64(out, q.limit);
	hbuf_puts(out, ",\"contests\":[");
	for (uint64_t i = q.offset; i < n && i < q.offset + q.limit; i++) {
		if (i > q.offset)
			hbuf_putc(out, ',');
		render_row(out, &t.rows[idx[i]], reg);
	}
	hbuf_puts(out, "],");
	render_seats(out, &t, reg);
	hbuf_puts(out, "}\n");
	free(idx);
	return out->oom ? 503 : 200;
}

int
tally__contest_one(const hbuf_t *table, const tally_registry_t *reg, const char *id,
                   hbuf_t *out)
{
	ctable_t t;
	const ctable_row_t *r = NULL;

	view(table, &t);
	for (uint32_t i = 0; i < t.head->nrows && r == NULL; i++)
		if (strcmp(t.rows[i].id, id) == 0)
			r = &t.rows[i];
	if (r == NULL)
		return 404;
	hbuf_puts(out, "{\"version\":");
	hbuf_u64(out, t.head->version);
	hbuf_puts(out, ",\"updated_at\":\"");
	hbuf_iso_ms(out, t.head->taken_at_us);
	hbuf_puts(out, "\",\"contest\":");
	render_row(out, r, reg);
	hbuf_puts(out, ",\"candidates\":[");
	for (uint32_t i = 0; i < r->ncands; i++) {
		const ctable_cand_t *c = &t.cands[r->cand_first + i];
		tally_candidate_info_t info;
		char cid[TALLY_UUID_STRLEN + 1];

		if (!tally_registry_candidate_get(reg, c->cand, &info))
			continue;
		if (i > 0)
			hbuf_putc(out, ',');
		hbuf_puts(out, "{\"candidate_id\":\"");
		hbuf_puts(out, tally_uuid_format(&info.id, cid));
		hbuf_puts(out, "\",\"candidate_name\":");
		hbuf_json_str(out, info.name);
		hbuf_puts(out, ",\"party_affiliation\":");
		hbuf_json_str(out, tally_registry_party_name(reg, info.party) ?: "");
		hbuf_puts(out, ",\"photo_url\":");
		hbuf_json_str(out, info.photo_url ? info.photo_url : "");
		hbuf_puts(out, ",\"total_votes\":");
		hbuf_u64(out, c->votes);
		hbuf_puts(out, ",\"share\":");
		hbuf_fixed(out, r->votes > 0 ? (double)c->votes / (double)r->votes : 0.0, 6);
		hbuf_putc(out, '}');
	}
	hbuf_puts(out, "]}\n");
	return out->oom ? 503 : 200;
}

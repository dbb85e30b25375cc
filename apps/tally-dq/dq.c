/*
 * tally-dq's model: dimensions of rows with one figure per source, and the named checks.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dq.h"

static const char *const src_names[DQ_NSRC] = {"postgres", "checkpoint", "topics", "truth"};

const char *
dq_src_name(dq_src_t src)
{
	return src < DQ_NSRC ? src_names[src] : "?";
}

/* FNV-1a: the rows are looked up by key once per message read from a results topic. */
static uint64_t
hash_key(const char *s)
{
	uint64_t h = 1469598103934665603ull;

	for (; *s != '\0'; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h;
}

static int
reindex(dq_dim_t *dim, size_t cap)
{
	uint32_t *idx = calloc(cap, sizeof(*idx));

	if (idx == NULL)
		return -1;
	for (size_t i = 0; i < dim->n; i++) {
		size_t h = (size_t)hash_key(dim->rows[i].key) & (cap - 1);

		while (idx[h] != 0)
			h = (h + 1) & (cap - 1);
		idx[h] = (uint32_t)i + 1;
	}
	free(dim->index);
	dim->index = idx;
	dim->index_cap = cap;
	return 0;
}

dq_row_t *
dq_dim_find(dq_dim_t *dim, const char *key)
{
	size_t h;

	if (dim->index_cap == 0)
		return NULL;
	h = (size_t)hash_key(key) & (dim->index_cap - 1);
	while (dim->index[h] != 0) {
		dq_row_t *row = &dim->rows[dim->index[h] - 1];

		if (strcmp(row->key, key) == 0)
			return row;
		h = (h + 1) & (dim->index_cap - 1);
	}
	return NULL;
}

dq_row_t *
dq_dim_row(dq_dim_t *dim, const char *key, const char *label, const char *party)
{
	dq_row_t *row = dq_dim_find(dim, key);

	if (row != NULL)
		return row;
	if (dim->n == dim->cap) {
		size_t cap = dim->cap ? dim->cap * 2 : 64;
		dq_row_t *rows = realloc(dim->rows, cap * sizeof(*rows));

		if (rows == NULL)
			return NULL;
		dim->rows = rows;
		dim->cap = cap;
	}
	if ((dim->n + 1) * 2 > dim->index_cap &&
	    reindex(dim, dim->index_cap ? dim->index_cap * 2 : 128) != 0)
		return NULL;
	row = &dim->rows[dim->n];
	memset(row, 0, sizeof(*row));
	row->key = strdup(key);
	row->label = strdup(label != NULL ? label : key);
	row->party = party != NULL ? strdup(party) : NULL;
	if (row->key == NULL || row->label == NULL || (party != NULL && row->party == NULL)) {
		free(row->key);
		free(row->label);
		free(row->party);
		return NULL;
	}
	for (int s = 0; s < DQ_NSRC; s++)
		row->v[s] = row->reg[s] = DQ_ABSENT;
	dim->n++;
	{
		size_t h = (size_t)hash_key(key) & (dim->index_cap - 1);

		while (dim->index[h] != 0)
			h = (h + 1) & (dim->index_cap - 1);
		dim->index[h] = (uint32_t)dim->n;
	}
	return row;
}

void
dq_add(int64_t *fig, int64_t n)
{
	*fig = (*fig == DQ_ABSENT ? 0 : *fig) + n;
}

void
dq_dim_free(dq_dim_t *dim)
{
	for (size_t i = 0; i < dim->n; i++) {
		free(dim->rows[i].key);
		free(dim->rows[i].label);
		free(dim->rows[i].party);
	}
	free(dim->rows);
	free(dim->index);
	memset(dim, 0, sizeof(*dim));
}

dq_check_t *
dq_check(dq_run_t *run, const char *name, dq_status_t status, json_t *figures, const char *fmt,
         ...)
{
	dq_check_t *c;
	va_list ap;

	if (run->nchecks == run->cap_checks) {
		size_t cap = run->cap_checks ? run->cap_checks * 2 : 32;
		dq_check_t *p = realloc(run->checks, cap * sizeof(*p));

		if (p == NULL) {
			/* Out of memory while reporting: say so and stop rather than hide a failure. */
			fprintf(stderr, "tally-dq: out of memory\n");
			exit(TALLYDQ_EXIT_FAIL);
		}
		run->checks = p;
		run->cap_checks = cap;
	}
	c = &run->checks[run->nchecks++];
	memset(c, 0, sizeof(*c));
	snprintf(c->name, sizeof(c->name), "%s", name);
	c->status = status;
	c->figures = figures != NULL ? figures : json_object();
	va_start(ap, fmt);
	vsnprintf(c->detail, sizeof(c->detail), fmt, ap);
	va_end(ap);
	return c;
}

static int64_t
val0(int64_t v)
{
	return v == DQ_ABSENT ? 0 : v;
}

void
dq_compare(dq_run_t *run, const char *name, int d, dq_src_t a, dq_src_t b, bool registered)
{
	dq_dim_t *dim = &run->dim[d];
	int64_t ta = 0, tb = 0, mismatches = 0, compared = 0;
	const dq_row_t *first = NULL;

	if (!dim->have[a] || !dim->have[b]) {
		const char *why = !dim->have[a] ? run->missing[a] : run->missing[b];

		dq_check(run, name, DQ_SKIP, NULL, "%s", why != NULL ? why : "a source was not read");
		return;
	}
	for (size_t i = 0; i < dim->n; i++) {
		const dq_row_t *row = &dim->rows[i];
		int64_t va = registered ? row->reg[a] : row->v[a];
		int64_t vb = registered ? row->reg[b] : row->v[b];

		if (registered && vb == DQ_ABSENT)
			continue;
		compared++;
		ta += val0(va);
		tb += val0(vb);
		if (val0(va) != val0(vb)) {
			mismatches++;
			if (first == NULL)
				first = row;
		}
	}
	if (mismatches == 0) {
		dq_check(run, name, DQ_PASS,
		         json_pack("{s:I, s:I, s:I, s:I}", "rows", (json_int_t)compared, "mismatches",
		                   (json_int_t)0, dq_src_name(a), (json_int_t)ta, dq_src_name(b),
		                   (json_int_t)tb),
		         "%" PRId64 " %s agree, total %" PRId64, compared, dim->name, ta);
	} else {
		int64_t fa = registered ? first->reg[a] : first->v[a];
		int64_t fb = registered ? first->reg[b] : first->v[b];

		dq_check(run, name, DQ_FAIL,
		         json_pack("{s:I, s:I, s:I, s:I}", "rows", (json_int_t)compared, "mismatches",
		                   (json_int_t)mismatches, dq_src_name(a), (json_int_t)ta,
		                   dq_src_name(b), (json_int_t)tb),
		         "%" PRId64 " of %" PRId64 " %s differ (first \"%s\": %s %" PRId64
		         ", %s %" PRId64 "); totals %s %" PRId64 ", %s %" PRId64,
		         mismatches, compared, dim->name, first->label, dq_src_name(a), val0(fa),
		         dq_src_name(b), val0(fb), dq_src_name(a), ta, dq_src_name(b), tb);
	}
}

size_t
dq_count(const dq_run_t *run, dq_status_t status)
{
	size_t n = 0;

	for (size_t i = 0; i < run->nchecks; i++)
		n += run->checks[i].status == status;
	return n;
}

bool
dq_row_mismatch(const dq_dim_t *dim, const dq_row_t *row)
{
	int64_t first = 0;
	bool seen = false;

	for (int s = 0; s < DQ_NSRC; s++) {
		if (!dim->have[s])
			continue;
		if (seen && val0(row->v[s]) != first)
			return true;
		first = val0(row->v[s]);
		seen = true;
	}
	/* Registered voters (regions): only where a source gave one. */
	seen = false;
	for (int s = 0; s < DQ_NSRC; s++) {
		if (!dim->have[s] || row->reg[s] == DQ_ABSENT)
			continue;
		if (seen && row->reg[s] != first)
			return true;
		first = row->reg[s];
		seen = true;
	}
	return false;
}

/*
 * tally-dq's report: a readable one (the checks in an aligned table, then the figures of
 * each source side by side, mismatches first and marked) or JSON for machines. Only counts
 * and candidate, region, party and reason names are printed: never a voter's id or data.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dq.h"

static const char *const status_name[] = {"PASS", "FAIL", "SKIP"};
static const char *const status_json[] = {"pass", "fail", "skip"};

/* Column headings per dimension; the TOPIC column is the dead letters for reasons. */
static const char *
column(int d, dq_src_t s)
{
	if (s == DQ_TOPIC)
		return d == DQ_DIM_REASONS ? "dead letters" : "topics";
	return dq_src_name(s);
}

static void
fmt_fig(char *buf, size_t size, int64_t v)
{
	if (v == DQ_ABSENT)
		snprintf(buf, size, "-");
	else
		snprintf(buf, size, "%" PRId64, v);
}

/* The order rows are shown in: mismatches first, then as they were added. */
static size_t *
row_order(const dq_dim_t *dim)
{
	size_t *order = malloc((dim->n + 1) * sizeof(*order)), k = 0;

	if (order == NULL)
		return NULL;
	for (size_t i = 0; i < dim->n; i++)
		if (dq_row_mismatch(dim, &dim->rows[i]))
			order[k++] = i;
	for (size_t i = 0; i < dim->n; i++)
		if (!dq_row_mismatch(dim, &dim->rows[i]))
			order[k++] = i;
	return order;
}

/* One dimension as a table: every mismatching row, and up to limit rows that agree. */
static void
text_dim(dq_run_t *run, int d, FILE *f, size_t limit)
{
	dq_dim_t *dim = &run->dim[d];
	size_t *order, shown = 0, mism = 0;
	int64_t total[DQ_NSRC] = {0};
	int width = (int)strlen(dim->what), nsrc = 0;
	bool regions = d == DQ_DIM_REGIONS;
	char buf[32];

	for (int s = 0; s < DQ_NSRC; s++)
		nsrc += dim->have[s];
	if (nsrc == 0 || dim->n == 0)
		return;
	for (size_t i = 0; i < dim->n; i++)
		mism += dq_row_mismatch(dim, &dim->rows[i]);
	if (limit == 0 && mism == 0)
		return;
	if ((order = row_order(dim)) == NULL)
		return;
	for (size_t i = 0; i < dim->n; i++) {
		const dq_row_t *row = &dim->rows[i];
		int w = (int)strlen(row->label) + (row->party != NULL ? (int)strlen(row->party) + 3 : 0);

		if (w > width)
			width = w;
		for (int s = 0; s < DQ_NSRC; s++)
			if (dim->have[s] && row->v[s] != DQ_ABSENT)
				total[s] += row->v[s];
	}
	if (width > 60)
		width = 60;
	fprintf(f, "\n%-*s", width, dim->what);
	for (int s = 0; s < DQ_NSRC; s++)
		if (dim->have[s])
			fprintf(f, "  %12s", column(d, (dq_src_t)s));
	if (regions)
		fprintf(f, "  %12s", "registered");
	fputc('\n', f);
	for (size_t k = 0; k < dim->n; k++) {
		const dq_row_t *row = &dim->rows[order[k]];
		bool bad = dq_row_mismatch(dim, row);
		char label[512];

		/* Every mismatch is shown; the rows that agree up to the limit. */
		if (!bad && shown >= limit)
			break;
		shown++;
		if (row->party != NULL)
			snprintf(label, sizeof(label), "%s (%s)", row->label, row->party);
		else
			snprintf(label, sizeof(label), "%s", row->label);
		fprintf(f, "%-*.*s", width, width, label);
		for (int s = 0; s < DQ_NSRC; s++) {
			if (!dim->have[s])
				continue;
			fmt_fig(buf, sizeof(buf), row->v[s]);
			fprintf(f, "  %12s", buf);
		}
		if (regions) {
			fmt_fig(buf, sizeof(buf), row->reg[DQ_PG]);
			fprintf(f, "  %12s", buf);
		}
		fprintf(f, "%s\n", bad ? "  MISMATCH" : "");
	}
	if (shown < dim->n)
		fprintf(f, "(%zu more rows that agree%s)\n", dim->n - shown,
		        limit > 0 ? "; --show N prints more" : "");
	fprintf(f, "%-*s", width, "total");
	for (int s = 0; s < DQ_NSRC; s++)
		if (dim->have[s])
			fprintf(f, "  %12" PRId64, total[s]);
	if (regions) {
		int64_t reg = 0;

		for (size_t i = 0; i < dim->n; i++)
			reg += dim->rows[i].reg[DQ_PG] != DQ_ABSENT ? dim->rows[i].reg[DQ_PG] : 0;
		fprintf(f, "  %12" PRId64, reg);
	}
	fprintf(f, "%s\n", mism > 0 ? "  MISMATCH" : "");
	free(order);
}

void
dq_report_text(dq_run_t *run, FILE *f)
{
	const tallydq_conf_t *conf = run->conf;
	size_t failed = dq_count(run, DQ_FAIL), passed = dq_count(run, DQ_PASS);
	size_t skipped = dq_count(run, DQ_SKIP);
	int width = 5;

	for (size_t i = 0; i < run->nchecks; i++)
		if ((int)strlen(run->checks[i].name) > width)
			width = (int)strlen(run->checks[i].name);
	if (!conf->quiet) {
		fprintf(f, "tally-dq: election \"%s\"", conf->election_id);
		if (conf->topic_prefix != NULL && conf->topic_prefix[0] != '\0')
			fprintf(f, ", topic prefix \"%s\"", conf->topic_prefix);
		if (conf->truth != NULL)
			fprintf(f, ", truth \"%s\"", conf->truth);
		fprintf(f, "\n\n%-*s  %-6s  %s\n", width, "CHECK", "RESULT", "DETAIL");
	}
	for (size_t i = 0; i < run->nchecks; i++) {
		const dq_check_t *c = &run->checks[i];

		if (conf->quiet && c->status != DQ_FAIL)
			continue;
		fprintf(f, "%-*s  %-6s  %s\n", width, c->name, status_name[c->status], c->detail);
	}
	if (!conf->quiet) {
		size_t limit = (size_t)conf->show;

		text_dim(run, DQ_DIM_CANDIDATES, f, limit);
		text_dim(run, DQ_DIM_REGIONS, f, limit);
		text_dim(run, DQ_DIM_PARTIES, f, limit);
		text_dim(run, DQ_DIM_REASONS, f, limit);
		/* Candidate x region cells: only the ones that disagree (they are many). */
		text_dim(run, DQ_DIM_CELLS, f, 0);
		fputc('\n', f);
	}
	fprintf(f, "tally-dq: %zu checks: %zu passed, %zu failed, %zu skipped: %s\n",
	        run->nchecks, passed, failed, skipped, failed > 0 ? "FAIL" : "PASS");
}

static json_t *
jfig(int64_t v)
{
	return v == DQ_ABSENT ? json_null() : json_integer((json_int_t)v);
}

static json_t *
json_dim(dq_run_t *run, int d, const char *key_name, const char *label_name, bool only_bad)
{
	dq_dim_t *dim = &run->dim[d];
	json_t *a = json_array();

	for (size_t i = 0; i < dim->n; i++) {
		const dq_row_t *row = &dim->rows[i];
		json_t *o;

		if (only_bad && !dq_row_mismatch(dim, row))
			continue;
		o = json_object();
		json_object_set_new(o, key_name, json_string(row->key));
		if (label_name != NULL)
			json_object_set_new(o, label_name, json_string(row->label));
		if (row->party != NULL)
			json_object_set_new(o, "party_affiliation", json_string(row->party));
		for (int s = 0; s < DQ_NSRC; s++)
			if (dim->have[s])
				json_object_set_new(o, d == DQ_DIM_REASONS && s == DQ_TOPIC
				                           ? "dead_letters" : dq_src_name((dq_src_t)s),
				                    jfig(row->v[s]));
		if (d == DQ_DIM_REGIONS) {
			json_t *reg = json_object();

			for (int s = 0; s < DQ_NSRC; s++)
				if (dim->have[s])
					json_object_set_new(reg, dq_src_name((dq_src_t)s), jfig(row->reg[s]));
			json_object_set_new(o, "registered", reg);
		}
		json_object_set_new(o, "agree", json_boolean(!dq_row_mismatch(dim, row)));
		json_array_append_new(a, o);
	}
	return a;
}

void
dq_report_json(dq_run_t *run, FILE *f)
{
	json_t *root = json_object(), *checks = json_array(), *totals;
	size_t failed = dq_count(run, DQ_FAIL);

	json_object_set_new(root, "election_id", json_string(run->conf->election_id));
	json_object_set_new(root, "passed", json_boolean(failed == 0));
	json_object_set_new(root, "summary",
	                    json_pack("{s:I, s:I, s:I, s:I}", "checks", (json_int_t)run->nchecks,
	                              "passed", (json_int_t)dq_count(run, DQ_PASS), "failed",
	                              (json_int_t)failed, "skipped",
	                              (json_int_t)dq_count(run, DQ_SKIP)));
	for (size_t i = 0; i < run->nchecks; i++) {
		dq_check_t *c = &run->checks[i];

		json_array_append_new(checks, json_pack("{s:s, s:s, s:s, s:O}", "name", c->name,
		                                        "status", status_json[c->status], "detail",
		                                        c->detail, "figures", c->figures));
	}
	json_object_set_new(root, "checks", checks);
	totals = json_object();
	json_object_set_new(totals, "postgres",
	                    json_pack("{s:I, s:I, s:I, s:I, s:I}", "voters",
	                              (json_int_t)run->pg_voters, "candidates",
	                              (json_int_t)run->pg_candidates, "parties",
	                              (json_int_t)run->pg_parties, "votes", (json_int_t)run->pg_votes,
	                              "votes_all_elections", (json_int_t)run->pg_votes_all));
	if (run->have_ckpt)
		json_object_set_new(totals, "checkpoint",
		                    json_pack("{s:I, s:I, s:I, s:I, s:I}", "checkpoint_id",
		                              (json_int_t)run->ckpt_id, "version",
		                              (json_int_t)run->ckpt_version, "read",
		                              (json_int_t)run->ckpt_read, "accepted",
		                              (json_int_t)run->ckpt_accepted, "rejected",
		                              (json_int_t)run->ckpt_rejected));
	if (run->dim[DQ_DIM_REASONS].have[DQ_TOPIC])
		json_object_set_new(totals, "dead_letters",
		                    json_pack("{s:I, s:I}", "rejected_votes",
		                              (json_int_t)run->dead_letters, "duplicates",
		                              (json_int_t)run->dead_letter_dups));
	if (run->conf->truth != NULL)
		json_object_set_new(totals, "truth",
		                    json_pack("{s:I, s:I, s:I}", "messages",
		                              (json_int_t)run->truth_messages, "accepted",
		                              (json_int_t)run->truth_accepted, "registered",
		                              (json_int_t)run->truth_registered));
	json_object_set_new(root, "totals", totals);
	json_object_set_new(root, "candidates",
	                    json_dim(run, DQ_DIM_CANDIDATES, "candidate_id", "candidate_name", false));
	json_object_set_new(root, "regions", json_dim(run, DQ_DIM_REGIONS, "region", NULL, false));
	json_object_set_new(root, "parties",
	                    json_dim(run, DQ_DIM_PARTIES, "party_affiliation", NULL, false));
	json_object_set_new(root, "rejected", json_dim(run, DQ_DIM_REASONS, "reason", NULL, false));
	json_object_set_new(root, "cell_mismatches",
	                    json_dim(run, DQ_DIM_CELLS, "cell", "label", true));
	json_dumpf(root, f, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	fputc('\n', f);
	json_decref(root);
}

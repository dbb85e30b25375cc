/*
 * The ground-truth file tally-sim writes: what the counts must be, read into the TRUTH
 * columns. Shape (every member required, counts non-negative integers):
 *
 *   {"election_id":"general","messages":N,"accepted":n,"rejected_total":n,
 *    "rejected":{"malformed":n, ... one per reason},
 *    "registered":n,
 *    "candidates":[{"candidate_id","candidate_name","party_affiliation","total_votes"}, ...],
 *    "parties":[{"party_affiliation","total_votes"}, ...],
 *    "regions":[{"region","registered","count"}, ...]}
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include <tally/vote.h>

#include "dq.h"

/* A required non-negative integer member; -1 with errstr set if missing or not one. */
static int64_t
get_count(json_t *obj, const char *key, const char *where, char *errstr, size_t errstr_size)
{
	json_t *v = json_object_get(obj, key);

	if (!json_is_integer(v) || json_integer_value(v) < 0) {
		snprintf(errstr, errstr_size, "%s: \"%s\" is missing or not a count", where, key);
		return -1;
	}
	return (int64_t)json_integer_value(v);
}

static const char *
get_str(json_t *obj, const char *key, const char *where, char *errstr, size_t errstr_size)
{
	const char *s = json_string_value(json_object_get(obj, key));

	if (s == NULL || s[0] == '\0')
		snprintf(errstr, errstr_size, "%s: \"%s\" is missing or not a string", where, key);
	return s;
}

static json_t *
get_array(json_t *root, const char *key, char *errstr, size_t errstr_size)
{
	json_t *a = json_object_get(root, key);

	if (!json_is_array(a))
		snprintf(errstr, errstr_size, "\"%s\" is missing or not an array", key);
	return json_is_array(a) ? a : NULL;
}

static int
read_truth(dq_run_t *run, json_t *root, char *err, size_t errsz)
{
	const char *eid = get_str(root, "election_id", "truth", err, errsz);
	json_t *rej, *a, *item;
	int64_t rejected_total, sum = 0;
	size_t i;

	if (eid == NULL)
		return -1;
	if (strcmp(eid, run->conf->election_id) != 0) {
		snprintf(err, errsz, "it is the truth of election \"%s\", not \"%s\"", eid,
		         run->conf->election_id);
		return -1;
	}
	if ((run->truth_messages = get_count(root, "messages", "truth", err, errsz)) < 0 ||
	    (run->truth_accepted = get_count(root, "accepted", "truth", err, errsz)) < 0 ||
	    (rejected_total = get_count(root, "rejected_total", "truth", err, errsz)) < 0 ||
	    (run->truth_registered = get_count(root, "registered", "truth", err, errsz)) < 0)
		return -1;
	if (!json_is_object(rej = json_object_get(root, "rejected"))) {
		snprintf(err, errsz, "\"rejected\" is missing or not an object");
		return -1;
	}
	for (int k = 1; k < TALLY_REASON__COUNT; k++) {
		dq_row_t *row = dq_dim_row(&run->dim[DQ_DIM_REASONS], tally_reason_name(k), NULL, NULL);
		int64_t n = get_count(rej, tally_reason_name(k), "rejected", err, errsz);

		if (n < 0 || row == NULL)
			return -1;
		row->v[DQ_TRUTH] = n;
		sum += n;
	}
	if (sum != rejected_total || run->truth_accepted + rejected_total != run->truth_messages) {
		snprintf(err, errsz,
		         "its figures do not add up (accepted %" PRId64 " + rejected %" PRId64
		         " (by reason %" PRId64 ") != messages %" PRId64 ")",
		         run->truth_accepted, rejected_total, sum, run->truth_messages);
		return -1;
	}

	if ((a = get_array(root, "candidates", err, errsz)) == NULL)
		return -1;
	run->truth_candidates = (int64_t)json_array_size(a);
	json_array_foreach(a, i, item) {
		const char *id = get_str(item, "candidate_id", "candidates", err, errsz);
		const char *name = get_str(item, "candidate_name", "candidates", err, errsz);
		const char *party = get_str(item, "party_affiliation", "candidates", err, errsz);
		int64_t n = get_count(item, "total_votes", "candidates", err, errsz);
		dq_row_t *row;

		if (id == NULL || name == NULL || party == NULL || n < 0)
			return -1;
		if ((row = dq_dim_row(&run->dim[DQ_DIM_CANDIDATES], id, name, party)) == NULL)
			return -1;
		dq_add(&row->v[DQ_TRUTH], n);
	}
	if ((a = get_array(root, "parties", err, errsz)) == NULL)
		return -1;
	run->truth_parties = (int64_t)json_array_size(a);
	json_array_foreach(a, i, item) {
		const char *party = get_str(item, "party_affiliation", "parties", err, errsz);
		int64_t n = get_count(item, "total_votes", "parties", err, errsz);
		dq_row_t *row;

		if (party == NULL || n < 0)
			return -1;
		if ((row = dq_dim_row(&run->dim[DQ_DIM_PARTIES], party, NULL, NULL)) == NULL)
			return -1;
		dq_add(&row->v[DQ_TRUTH], n);
	}
	if ((a = get_array(root, "regions", err, errsz)) == NULL)
		return -1;
	json_array_foreach(a, i, item) {
		const char *region = get_str(item, "region", "regions", err, errsz);
		int64_t n = get_count(item, "count", "regions", err, errsz);
		int64_t reg = get_count(item, "registered", "regions", err, errsz);
		dq_row_t *row;

		if (region == NULL || n < 0 || reg < 0)
			return -1;
		if ((row = dq_dim_row(&run->dim[DQ_DIM_REGIONS], region, NULL, NULL)) == NULL)
			return -1;
		dq_add(&row->v[DQ_TRUTH], n);
		dq_add(&row->reg[DQ_TRUTH], reg);
	}
	run->dim[DQ_DIM_CANDIDATES].have[DQ_TRUTH] = true;
	run->dim[DQ_DIM_REGIONS].have[DQ_TRUTH] = true;
	run->dim[DQ_DIM_PARTIES].have[DQ_TRUTH] = true;
	run->dim[DQ_DIM_REASONS].have[DQ_TRUTH] = true;
	return 0;
}

int
dq_truth(dq_run_t *run, const char *path, char *errstr, size_t errstr_size)
{
	json_error_t jerr;
	json_t *root = json_load_file(path, 0, &jerr);
	char err[400] = "out of memory";
	int rc;

	if (root == NULL) {
		snprintf(errstr, errstr_size, "--truth: could not read \"%s\": %s (line %d)", path,
		         jerr.text, jerr.line);
		return -1;
	}
	if (!json_is_object(root)) {
		snprintf(errstr, errstr_size, "--truth: \"%s\" is not a JSON object", path);
		json_decref(root);
		return -1;
	}
	rc = read_truth(run, root, err, sizeof(err));
	json_decref(root);
	if (rc != 0)
		snprintf(errstr, errstr_size, "--truth: \"%s\": %s", path, err);
	return rc;
}

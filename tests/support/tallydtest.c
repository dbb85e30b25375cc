#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <curl/curl.h>

#include <tally/core.h>
#include <tally/pg_checkpoint.h>
#include <tally/pg_registry.h>
#include <tally/registry.h>
#include <tally/snapshot.h>
#include <tally/state.h>
#include <tally/uuid.h>
#include <tally/vote.h>

#include "tallydtest.h"

/* ---- logs ------------------------------------------------------------------------------- */

long
tt_file_size(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 ? (long)st.st_size : 0;
}

int
tt_log_port(const char *log, long from)
{
	FILE *f = fopen(log, "r");
	char line[2048];
	int port = 0;

	if (f == NULL)
		return 0;
	if (fseek(f, from, SEEK_SET) == 0)
		while (fgets(line, sizeof(line), f) != NULL) {
			const char *p = strstr(line, "(port ");

			if (p != NULL)
				port = atoi(p + 6);
		}
	fclose(f);
	return port;
}

int
tt_log_count(const char *log, long from, const char *needle)
{
	FILE *f = fopen(log, "r");
	char line[2048];
	int n = 0;

	if (f == NULL)
		return 0;
	if (fseek(f, from, SEEK_SET) == 0)
		while (fgets(line, sizeof(line), f) != NULL)
			n += strstr(line, needle) != NULL;
	fclose(f);
	return n;
}

long
tt_log_sum_after(const char *log, long from, const char *prefix)
{
	FILE *f = fopen(log, "r");
	char line[2048];
	long sum = 0;

	if (f == NULL)
		return 0;
	if (fseek(f, from, SEEK_SET) == 0)
		while (fgets(line, sizeof(line), f) != NULL) {
			const char *p = strstr(line, prefix);

			if (p != NULL)
				sum += strtol(p + strlen(prefix), NULL, 10);
		}
	fclose(f);
	return sum;
}

void
tt_dump_tail(const char *path, long bytes)
{
	FILE *f = fopen(path, "r");
	char line[2048];
	long size = tt_file_size(path);

	if (f == NULL)
		return;
	fprintf(stderr, "---- %s (last %ld bytes) ----\n", path, bytes);
	if (size > bytes)
		fseek(f, size - bytes, SEEK_SET);
	while (fgets(line, sizeof(line), f) != NULL)
		fputs(line, stderr);
	fclose(f);
}

/* ---- HTTP ------------------------------------------------------------------------------- */

typedef struct body {
	char *p;
	size_t n;
} body_t;

static size_t
body_write(char *data, size_t size, size_t nmemb, void *arg)
{
	body_t *b = arg;
	size_t n = size * nmemb;
	char *p = realloc(b->p, b->n + n + 1);

	if (p == NULL)
		return 0;
	memcpy(p + b->n, data, n);
	b->n += n;
	p[b->n] = '\0';
	b->p = p;
	return n;
}

long
tt_http_get(int port, const char *path, char **out)
{
	CURL *h = curl_easy_init();
	body_t b = {0};
	char url[256];
	long status = 0;

	if (out != NULL)
		*out = NULL;
	if (h == NULL)
		return 0;
	snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 2000L);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, body_write);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
	if (curl_easy_perform(h) == CURLE_OK)
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(h);
	if (out != NULL && status != 0)
		*out = b.p;
	else
		free(b.p);
	return status;
}

/* ---- the truth ----------------------------------------------------------------------------- */

int64_t
tt_truth_int(json_t *truth, const char *field)
{
	json_t *v = json_object_get(truth, field);

	return json_is_integer(v) ? (int64_t)json_integer_value(v) : -1;
}

static int64_t
jint(json_t *o, const char *field)
{
	json_t *v = json_object_get(o, field);

	return json_is_integer(v) ? (int64_t)json_integer_value(v) : -1;
}

bool
tt_results_equal_truth(json_t *res, json_t *truth, char *why, size_t whysz)
{
	static const char *const totals[][2] = {{"read", "messages"}, {"accepted", "accepted"},
	                                        {"rejected_total", "rejected_total"}};
	json_t *e, *rej = json_object_get(res, "rejected");
	const char *k;
	size_t i;

	for (size_t t = 0; t < sizeof(totals) / sizeof(totals[0]); t++)
		if (jint(res, totals[t][0]) != tt_truth_int(truth, totals[t][1])) {
			snprintf(why, whysz, "%s is %" PRId64 ", truth %" PRId64, totals[t][0],
			         jint(res, totals[t][0]), tt_truth_int(truth, totals[t][1]));
			return false;
		}
	json_object_foreach(json_object_get(truth, "rejected"), k, e)
		if (jint(rej, k) != (int64_t)json_integer_value(e) &&
		    !(jint(rej, k) == -1 && json_integer_value(e) == 0)) {
			snprintf(why, whysz, "rejected %s is %" PRId64 ", truth %" PRId64, k, jint(rej, k),
			         (int64_t)json_integer_value(e));
			return false;
		}
	json_array_foreach(json_object_get(truth, "candidates"), i, e) {
		const char *id = json_string_value(json_object_get(e, "candidate_id"));
		int64_t want = jint(e, "total_votes"), got = -1;
		json_t *o;
		size_t j;

		json_array_foreach(json_object_get(res, "candidates"), j, o)
			if (strcmp(json_string_value(json_object_get(o, "candidate_id")), id) == 0)
				got = jint(o, "total_votes");
		if (got != want) {
			snprintf(why, whysz, "candidate %s has %" PRId64 ", truth %" PRId64, id, got, want);
			return false;
		}
	}
	return true;
}

/* ---- monotonic readings ----------------------------------------------------------------------- */

void
tt_monotonic_init(tt_monotonic_t *m, const char *name)
{
	memset(m, 0, sizeof(*m));
	m->name = name;
	m->version = -1;
}

static bool
see(tt_monotonic_t *m, const char *key, int64_t v)
{
	for (int i = 0; i < m->nkeys; i++)
		if (strcmp(m->keys[i], key) == 0) {
			if (v < m->values[i]) {
				if (m->failure[0] == '\0')
					snprintf(m->failure, sizeof(m->failure), "%s: %s went down from %" PRId64
					         " to %" PRId64 " (version %" PRId64 ")", m->name, key,
					         m->values[i], v, m->version);
				return false;
			}
			m->values[i] = v;
			return true;
		}
	if (m->nkeys < TT_MAX_KEYS) {
		snprintf(m->keys[m->nkeys], sizeof(m->keys[0]), "%s", key);
		m->values[m->nkeys++] = v;
	}
	return true;
}

bool
tt_monotonic_feed(tt_monotonic_t *m, json_t *res)
{
	static const char *const arrays[3][3] = {{"candidates", "candidate_id", "total_votes"},
	                                         {"parties", "party", "total_votes"},
	                                         {"regions", "region", "count"}};
	static const char *const totals[] = {"read", "accepted", "rejected_total"};
	int64_t version = jint(res, "version");
	bool ok = true;
	char key[160];
	const char *k;
	json_t *e;
	size_t i;

	if (version < m->version) {
		if (m->failure[0] == '\0')
			snprintf(m->failure, sizeof(m->failure), "%s: version went down from %" PRId64
			         " to %" PRId64, m->name, m->version, version);
		return false;
	}
	m->version = version;
	for (size_t t = 0; t < 3; t++)
		ok &= see(m, totals[t], jint(res, totals[t]));
	json_object_foreach(json_object_get(res, "rejected"), k, e) {
		snprintf(key, sizeof(key), "rejected.%s", k);
		ok &= see(m, key, (int64_t)json_integer_value(e));
	}
	for (int a = 0; a < 3; a++)
		json_array_foreach(json_object_get(res, arrays[a][0]), i, e) {
			const char *id = json_string_value(json_object_get(e, arrays[a][1]));

			snprintf(key, sizeof(key), "%s.%s", arrays[a][0], id != NULL ? id : "?");
			ok &= see(m, key, jint(e, arrays[a][2]));
		}
	m->readings++;
	return ok;
}

/* ---- PostgreSQL ---------------------------------------------------------------------------- */

static long
count(PGconn *c, const char *sql, bool *ok, char *why, size_t whysz)
{
	PGresult *res = PQexec(c, sql);
	long n = -1;

	if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
		n = strtol(PQgetvalue(res, 0, 0), NULL, 10);
	else if (*ok) {
		snprintf(why, whysz, "%s: %s", sql, PQerrorMessage(c));
		*ok = false;
	}
	PQclear(res);
	return n;
}

/* name -> count rows of sql, each against the truth's array. */
static bool
rows_equal(PGconn *c, const char *sql, json_t *truth, const char *array, const char *kf,
           const char *vf, char *why, size_t whysz)
{
	PGresult *res = PQexec(c, sql);
	json_t *e;
	size_t i;
	bool ok = PQresultStatus(res) == PGRES_TUPLES_OK;

	if (!ok)
		snprintf(why, whysz, "%s: %s", sql, PQerrorMessage(c));
	json_array_foreach(json_object_get(truth, array), i, e) {
		const char *key = json_string_value(json_object_get(e, kf));
		long got = 0, want = (long)jint(e, vf);

		if (!ok)
			break;
		for (int row = 0; row < PQntuples(res); row++)
			if (strcmp(PQgetvalue(res, row, 0), key) == 0)
				got = strtol(PQgetvalue(res, row, 1), NULL, 10);
		if (got != want) {
			snprintf(why, whysz, "votes table: %s %s has %ld, truth %ld", array, key, got, want);
			ok = false;
		}
	}
	PQclear(res);
	return ok;
}

/* Every stored partition state of votes_topic, summed in a core of nparts parts. */
static bool
states_equal(PGconn *c, json_t *truth, int nparts, char *why, size_t whysz)
{
	tally_registry_t *reg = tally_registry_new(NULL, NULL, 0);
	tally_core_opts_t co = {.workers = 1, .parts = (unsigned)nparts};
	tally_core_t *core = NULL;
	tally_snapshot_t *snap = NULL;
	PGresult *res = NULL;
	json_t *e;
	const char *k;
	size_t i;
	bool ok = false;
	char err[256];

	if (reg == NULL || tally_pg_registry_load(c, reg, NULL, NULL, NULL, err, sizeof(err)) != 0 ||
	    tally_pg_election_get(c, "general", &co.election, err, sizeof(err)) != 0 ||
	    (core = tally_core_new(reg, &co, err, sizeof(err))) == NULL) {
		snprintf(why, whysz, "partition states: %s", err);
		goto out;
	}
	res = PQexecParams(c, "SELECT partition, state FROM partition_states WHERE election_id = "
	                      "'general' AND topic LIKE '%votes_topic' ORDER BY 1",
	                   0, NULL, NULL, NULL, NULL, 1);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		snprintf(why, whysz, "partition states: %s", PQerrorMessage(c));
		goto out;
	}
	if (PQntuples(res) != nparts) {
		snprintf(why, whysz, "%d partition states stored, not %d", PQntuples(res), nparts);
		goto out;
	}
	for (int row = 0; row < PQntuples(res); row++) {
		uint32_t p;
		int rc;

		memcpy(&p, PQgetvalue(res, row, 0), 4);
		p = __builtin_bswap32(p);
		rc = tally_state_import_part(core, p, PQgetvalue(res, row, 1),
		                             (size_t)PQgetlength(res, row, 1), NULL, err, sizeof(err));
		if (rc != 0) {
			snprintf(why, whysz, "partition %u's state: %s (%s)", p, tally_err2str(rc), err);
			goto out;
		}
	}
	if ((snap = tally_snapshot_take(core)) == NULL) {
		snprintf(why, whysz, "out of memory");
		goto out;
	}
	if ((int64_t)snap->read != tt_truth_int(truth, "messages") ||
	    (int64_t)snap->accepted != tt_truth_int(truth, "accepted")) {
		snprintf(why, whysz, "partition states: read %" PRIu64 " accepted %" PRIu64 ", truth "
		         "%" PRId64 " %" PRId64, snap->read, snap->accepted,
		         tt_truth_int(truth, "messages"), tt_truth_int(truth, "accepted"));
		goto out;
	}
	json_object_foreach(json_object_get(truth, "rejected"), k, e) {
		int r = tally_reason_from_name(k);

		if (r <= 0 || r >= TALLY_REASON__COUNT ||
		    snap->rejected[r] != (uint64_t)json_integer_value(e)) {
			snprintf(why, whysz, "partition states: rejected %s is %" PRIu64 ", truth %" PRId64,
			         k, r > 0 && r < TALLY_REASON__COUNT ? snap->rejected[r] : 0,
			         (int64_t)json_integer_value(e));
			goto out;
		}
	}
	json_array_foreach(json_object_get(truth, "candidates"), i, e) {
		tally_uuid_t id;
		int32_t ci;

		const char *text = json_string_value(json_object_get(e, "candidate_id"));

		if (text == NULL || !tally_uuid_parse(text, strlen(text), &id) ||
		    (ci = tally_registry_candidate_find(reg, &id)) < 0 ||
		    (int64_t)snap->candidates[ci] != jint(e, "total_votes")) {
			snprintf(why, whysz, "partition states: candidate %s differs from the truth",
			         json_string_value(json_object_get(e, "candidate_id")));
			goto out;
		}
	}
	ok = true;
out:
	PQclear(res);
	tally_snapshot_destroy(snap);
	tally_core_destroy(core);
	tally_registry_destroy(reg);
	return ok;
}

bool
tt_pg_equal_truth(PGconn *c, json_t *truth, int nparts, char *why, size_t whysz)
{
	bool ok = true;
	long n;

	if ((n = count(c, "SELECT coalesce(sum(votes), 0) FROM vote_journal", &ok, why, whysz)) !=
	    0 && ok) {
		snprintf(why, whysz, "the vote journal holds %ld votes", n);
		return false;
	}
	if (ok && (n = count(c, "SELECT count(*) FROM votes", &ok, why, whysz)) !=
	              (long)tt_truth_int(truth, "accepted") && ok) {
		snprintf(why, whysz, "votes table: %ld votes, truth %" PRId64, n,
		         tt_truth_int(truth, "accepted"));
		return false;
	}
	if (ok && (n = count(c, "SELECT count(DISTINCT voter_id) FROM votes", &ok, why, whysz)) !=
	              (long)tt_truth_int(truth, "accepted") && ok) {
		snprintf(why, whysz, "votes table: %ld voters, truth %" PRId64, n,
		         tt_truth_int(truth, "accepted"));
		return false;
	}
	if (ok && (n = count(c, "SELECT count(*) FROM votes WHERE election_id <> 'general'", &ok,
	                     why, whysz)) != 0 && ok) {
		snprintf(why, whysz, "votes table: %ld votes of another election", n);
		return false;
	}
	if (!ok ||
	    !rows_equal(c, "SELECT candidate_id::text, count(*) FROM votes GROUP BY 1", truth,
	                "candidates", "candidate_id", "total_votes", why, whysz) ||
	    !rows_equal(c, "SELECT r.region, count(*) FROM votes v JOIN voters r USING (voter_id)"
	                   " GROUP BY 1", truth, "regions", "region", "count", why, whysz))
		return false;
	if ((n = count(c, "SELECT coalesce(sum(next_offset), 0) FROM checkpoint_offsets WHERE "
	                  "topic LIKE '%votes_topic'", &ok, why, whysz)) !=
	        (long)tt_truth_int(truth, "messages") && ok) {
		snprintf(why, whysz, "stored offsets sum to %ld, truth %" PRId64 " messages", n,
		         tt_truth_int(truth, "messages"));
		return false;
	}
	return ok && states_equal(c, truth, nparts, why, whysz);
}

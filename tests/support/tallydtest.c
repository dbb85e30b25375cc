#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <librdkafka/rdkafka.h>

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
tt_log_mark(const char *log, const char *fmt, ...)
{
	FILE *f = fopen(log, "a");
	va_list ap;

	if (f == NULL)
		return;
	va_start(ap, fmt);
	vfprintf(f, fmt, ap);
	va_end(ap);
	fclose(f);
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

/* ---- Server-Sent Events ---------------------------------------------------------------------- */

struct tt_sse {
	CURLM *multi;
	CURL *h;
	struct curl_slist *headers;
	tt_sse_fn fn;
	void *arg;
	char *buf, *data;
	size_t len, cap, dlen, dcap;
	int64_t id;
	char head[256];
	size_t head_len;
	long events;
	bool done;
};

static void
grow(char **p, size_t *cap, size_t need)
{
	char *q;
	size_t n = *cap;

	if (need <= n)
		return;
	while (n < need)
		n = n ? n * 2 : 4096;
	if ((q = realloc(*p, n)) == NULL) {
		fprintf(stderr, "tallydtest: out of memory\n");
		abort();
	}
	*p = q;
	*cap = n;
}

/* One line of the stream: "id: N", "data: ...", "event: ...", ": comment"; a blank line
 * ends an event. */
static void
sse_line(tt_sse_t *e, const char *line, size_t n)
{
	if (n == 0) {
		if (e->dlen > 0) {
			e->events++;
			e->fn(e->arg, e->id, e->data, e->dlen);
		}
		e->dlen = 0;
		e->id = -1;
		return;
	}
	if (n >= 5 && memcmp(line, "data:", 5) == 0) {
		const char *p = line + 5;
		size_t m = n - 5;

		if (m > 0 && *p == ' ')
			p++, m--;
		grow(&e->data, &e->dcap, e->dlen + m + 2);
		if (e->dlen > 0)
			e->data[e->dlen++] = '\n';
		memcpy(e->data + e->dlen, p, m);
		e->dlen += m;
		e->data[e->dlen] = '\0';
	} else if (n >= 3 && memcmp(line, "id:", 3) == 0) {
		char num[32];

		snprintf(num, sizeof(num), "%.*s", (int)(n - 3), line + 3);
		e->id = strtoll(num, NULL, 10);
	}
}

static size_t
sse_write(char *data, size_t size, size_t nmemb, void *arg)
{
	tt_sse_t *e = arg;
	size_t n = size * nmemb, start = 0;

	if (e->head_len < sizeof(e->head) - 1) {
		size_t room = sizeof(e->head) - 1 - e->head_len, m = n < room ? n : room;

		memcpy(e->head + e->head_len, data, m);
		e->head_len += m;
		e->head[e->head_len] = '\0';
	}
	grow(&e->buf, &e->cap, e->len + n + 1);
	memcpy(e->buf + e->len, data, n);
	e->len += n;
	for (size_t i = 0; i < e->len; i++)
		if (e->buf[i] == '\n') {
			size_t len = i - start;

			if (len > 0 && e->buf[start + len - 1] == '\r')
				len--;
			sse_line(e, e->buf + start, len);
			start = i + 1;
		}
	memmove(e->buf, e->buf + start, e->len - start);
	e->len -= start;
	return n;
}

tt_sse_t *
tt_sse_open(int port, const char *path, tt_sse_fn fn, void *arg)
{
	tt_sse_t *e = calloc(1, sizeof(*e));
	char url[256];

	if (e == NULL)
		return NULL;
	e->fn = fn;
	e->arg = arg;
	e->id = -1;
	if ((e->multi = curl_multi_init()) == NULL || (e->h = curl_easy_init()) == NULL) {
		tt_sse_close(e);
		return NULL;
	}
	snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
	e->headers = curl_slist_append(NULL, "Accept: text/event-stream");
	curl_easy_setopt(e->h, CURLOPT_URL, url);
	curl_easy_setopt(e->h, CURLOPT_HTTPHEADER, e->headers);
	curl_easy_setopt(e->h, CURLOPT_WRITEFUNCTION, sse_write);
	curl_easy_setopt(e->h, CURLOPT_WRITEDATA, e);
	curl_easy_setopt(e->h, CURLOPT_CONNECTTIMEOUT_MS, 2000L);
	curl_easy_setopt(e->h, CURLOPT_NOSIGNAL, 1L);
	curl_multi_add_handle(e->multi, e->h);
	return e;
}

bool
tt_sse_pump(tt_sse_t *e)
{
	CURLMsg *msg;
	int running = 0, left;

	if (e->done)
		return false;
	curl_multi_perform(e->multi, &running);
	while ((msg = curl_multi_info_read(e->multi, &left)) != NULL)
		if (msg->msg == CURLMSG_DONE)
			e->done = true;
	return !e->done;
}

long
tt_sse_status(const tt_sse_t *e, const char **head)
{
	long code = 0;

	curl_easy_getinfo(e->h, CURLINFO_RESPONSE_CODE, &code);
	if (head != NULL)
		*head = e->head;
	return code;
}

long
tt_sse_events(const tt_sse_t *e)
{
	return e->events;
}

void
tt_sse_close(tt_sse_t *e)
{
	if (e == NULL)
		return;
	if (e->h != NULL) {
		if (e->multi != NULL)
			curl_multi_remove_handle(e->multi, e->h);
		curl_easy_cleanup(e->h);
	}
	if (e->multi != NULL)
		curl_multi_cleanup(e->multi);
	curl_slist_free_all(e->headers);
	free(e->buf);
	free(e->data);
	free(e);
}

/* ---- the results topics ---------------------------------------------------------------------- */

#define TOPIC_KEYS 256

struct tt_topics {
	rd_kafka_t *rk;
	char topic[3][256];
	char election[80];
	int64_t next_offset[3];
	int nkeys[3];
	char keys[3][TOPIC_KEYS][128];
	int64_t counts[3][TOPIC_KEYS];
	long readings;
	char failure[1024];
};

static const char *const topic_id_field[3] = {"candidate_id", "state", "party_affiliation"};
static const char *const topic_count_field[3] = {"total_votes", "count", "total_votes"};

static void
topics_fail(tt_topics_t *tr, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
topics_fail(tt_topics_t *tr, const char *fmt, ...)
{
	va_list ap;

	if (tr->failure[0] != '\0')
		return;
	va_start(ap, fmt);
	vsnprintf(tr->failure, sizeof(tr->failure), fmt, ap);
	va_end(ap);
	fprintf(stderr, "VIOLATION: %s\n", tr->failure);
}

tt_topics_t *
tt_topics_new(const char *brokers, const char *const topics[3], const char *election,
              const char *group)
{
	tt_topics_t *tr = calloc(1, sizeof(*tr));
	rd_kafka_conf_t *kc = rd_kafka_conf_new();
	rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(3);
	char err[512];

	if (tr == NULL)
		abort();
	snprintf(tr->election, sizeof(tr->election), "%s", election);
	if (rd_kafka_conf_set(kc, "bootstrap.servers", brokers, err, sizeof(err)) != RD_KAFKA_CONF_OK ||
	    rd_kafka_conf_set(kc, "group.id", group, err, sizeof(err)) != RD_KAFKA_CONF_OK ||
	    rd_kafka_conf_set(kc, "enable.auto.commit", "false", err, sizeof(err)) !=
	        RD_KAFKA_CONF_OK ||
	    rd_kafka_conf_set(kc, "fetch.wait.max.ms", "10", err, sizeof(err)) != RD_KAFKA_CONF_OK ||
	    rd_kafka_conf_set(kc, "enable.partition.eof", "true", err, sizeof(err)) !=
	        RD_KAFKA_CONF_OK ||
	    (tr->rk = rd_kafka_new(RD_KAFKA_CONSUMER, kc, err, sizeof(err))) == NULL) {
		fprintf(stderr, "tallydtest: results topics reader: %s\n", err);
		abort();
	}
	for (int t = 0; t < 3; t++) {
		snprintf(tr->topic[t], sizeof(tr->topic[t]), "%s", topics[t]);
		rd_kafka_topic_partition_list_add(parts, tr->topic[t], 0)->offset =
		    RD_KAFKA_OFFSET_BEGINNING;
	}
	if (rd_kafka_assign(tr->rk, parts) != RD_KAFKA_RESP_ERR_NO_ERROR) {
		fprintf(stderr, "tallydtest: results topics reader: could not assign\n");
		abort();
	}
	rd_kafka_topic_partition_list_destroy(parts);
	return tr;
}

static int64_t
topic_key_count(const tt_topics_t *tr, int t, const char *key)
{
	for (int i = 0; i < tr->nkeys[t]; i++)
		if (strcmp(tr->keys[t][i], key) == 0)
			return tr->counts[t][i];
	return -1;
}

static void
on_topic_message(tt_topics_t *tr, int t, const rd_kafka_message_t *m)
{
	json_t *o = json_loadb(m->payload, m->len, 0, NULL);
	const char *id, *election;
	char key[128];
	int64_t count;
	int i;

	snprintf(key, sizeof(key), "%.*s", (int)m->key_len, (const char *)m->key);
	id = json_string_value(json_object_get(o, topic_id_field[t]));
	election = json_string_value(json_object_get(o, "election_id"));
	count = jint(o, topic_count_field[t]);
	if (o == NULL || id == NULL || strcmp(id, key) != 0 || election == NULL ||
	    strcmp(election, tr->election) != 0 || count < 0 ||
	    !json_is_integer(json_object_get(o, "version"))) {
		topics_fail(tr, "%s: offset %" PRId64 " key \"%s\": bad message %.*s", tr->topic[t],
		            m->offset, key, (int)(m->len < 300 ? m->len : 300),
		            (const char *)m->payload);
		json_decref(o);
		return;
	}
	for (i = 0; i < tr->nkeys[t] && strcmp(tr->keys[t][i], key) != 0; i++)
		;
	if (i == tr->nkeys[t]) {
		if (i == TOPIC_KEYS) {
			topics_fail(tr, "%s: more than %d keys", tr->topic[t], TOPIC_KEYS);
			json_decref(o);
			return;
		}
		snprintf(tr->keys[t][i], sizeof(tr->keys[t][i]), "%s", key);
		tr->counts[t][i] = count;
		tr->nkeys[t]++;
	} else if (count < tr->counts[t][i]) {
		topics_fail(tr, "%s: \"%s\" went down from %" PRId64 " to %" PRId64 " (offset %" PRId64
		            ", version %" PRId64 ")", tr->topic[t], key, tr->counts[t][i], count,
		            m->offset, jint(o, "version"));
	} else {
		tr->counts[t][i] = count;
	}
	tr->readings++;
	json_decref(o);
}

int
tt_topics_pump(tt_topics_t *tr)
{
	rd_kafka_message_t *m;
	int n = 0;

	while (n < 5000 && (m = rd_kafka_consumer_poll(tr->rk, 0)) != NULL) {
		if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
			const char *name = rd_kafka_topic_name(m->rkt);

			for (int t = 0; t < 3; t++)
				if (strcmp(name, tr->topic[t]) == 0) {
					if (m->offset < tr->next_offset[t])
						topics_fail(tr, "%s: offset %" PRId64 " again", tr->topic[t],
						            m->offset);
					tr->next_offset[t] = m->offset + 1;
					on_topic_message(tr, t, m);
				}
			n++;
		} else if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF && m->rkt != NULL) {
			/* The end: past any transaction markers after the last message (results are
			 * published in transactions; a read_committed reader never gets the markers). */
			const char *name = rd_kafka_topic_name(m->rkt);

			for (int t = 0; t < 3; t++)
				if (strcmp(name, tr->topic[t]) == 0 && m->offset > tr->next_offset[t])
					tr->next_offset[t] = m->offset;
		} else if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
			fprintf(stderr, "results topics reader: %s\n", rd_kafka_message_errstr(m));
		}
		rd_kafka_message_destroy(m);
	}
	return n;
}

bool
tt_topics_drain(tt_topics_t *tr, double timeout_s)
{
	int64_t hi[3];
	struct timespec t0, now;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int t = 0; t < 3; t++) {
		int64_t lo;

		if (rd_kafka_query_watermark_offsets(tr->rk, tr->topic[t], 0, &lo, &hi[t], 10000) !=
		    RD_KAFKA_RESP_ERR_NO_ERROR)
			return false;
	}
	for (;;) {
		bool done = true;

		for (int t = 0; t < 3; t++)
			done &= tr->next_offset[t] >= hi[t];
		if (done)
			return true;
		clock_gettime(CLOCK_MONOTONIC, &now);
		if ((double)(now.tv_sec - t0.tv_sec) + (double)(now.tv_nsec - t0.tv_nsec) / 1e9 >
		    timeout_s)
			return false;
		if (tt_topics_pump(tr) == 0)
			usleep(10000);
	}
}

const char *
tt_topics_failure(const tt_topics_t *tr)
{
	return tr->failure;
}

long
tt_topics_readings(const tt_topics_t *tr)
{
	return tr->readings;
}

bool
tt_topics_equal_truth(const tt_topics_t *tr, json_t *truth, char *why, size_t whysz)
{
	static const char *const arrays[3][3] = {{"candidates", "candidate_id", "total_votes"},
	                                         {"regions", "region", "count"},
	                                         {"parties", "party_affiliation", "total_votes"}};

	for (int t = 0; t < 3; t++) {
		json_t *e;
		size_t i;
		int known = 0;

		json_array_foreach(json_object_get(truth, arrays[t][0]), i, e) {
			const char *key = json_string_value(json_object_get(e, arrays[t][1]));
			int64_t want = jint(e, arrays[t][2]);
			int64_t got = key != NULL ? topic_key_count(tr, t, key) : -1;

			/* Only what changed is published: a key nobody voted for may have none. */
			if (got != want && !(got == -1 && want == 0)) {
				snprintf(why, whysz, "%s: the newest \"%s\" is %" PRId64 ", truth %" PRId64,
				         tr->topic[t], key != NULL ? key : "?", got, want);
				return false;
			}
			known += got >= 0;
		}
		if (known != tr->nkeys[t]) {
			snprintf(why, whysz, "%s: %d keys, %d of them in the truth", tr->topic[t],
			         tr->nkeys[t], known);
			return false;
		}
	}
	return true;
}

void
tt_topics_destroy(tt_topics_t *tr)
{
	if (tr == NULL)
		return;
	rd_kafka_consumer_close(tr->rk);
	rd_kafka_destroy(tr->rk);
	free(tr);
}

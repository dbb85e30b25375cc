/*
 * The HTTP adapter (adapters/http/): a registry and a core made here, votes counted with
 * tally_core_process(), the adapter started on a free loopback port, and every endpoint
 * hit with libcurl; figures are checked exactly against a snapshot of the same core.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <curl/curl.h>
#include <jansson.h>

#include <tally/atomic.h>
#include <tally/core.h>
#include <tally/http.h>
#include <tally/snapshot.h>
#include <tally/time.h>

#include "fixture.h"

#define NCAND 3
#define NPARTY 2
#define NREGION 4
#define NVOTERS 1000

/* ---- the election under test ------------------------------------------------------------ */

typedef struct env {
	tally_registry_t *reg;
	tally_core_t *core;
	tally_http_t *http;
	char base[64];
	uint64_t next_voter;
	pthread_mutex_t admin_mu;
	int ready;                       /* atomic */
	/* What snapshot_cb serves (as a store's last committed state would be). */
	pthread_mutex_t served_mu;
	tally_snapshot_t *served;        /* under served_mu */
	uint64_t served_fills;           /* under served_mu: calls that copied it */
} env_t;

static void
test_log(void *arg, const char *line)
{
	(void)arg;
	fprintf(stderr, "%s\n", line);
}

static bool
ready_cb(void *arg, char *reason, size_t size)
{
	env_t *e = arg;

	if (tally_load_acquire(&e->ready))
		return true;
	snprintf(reason, size, "checkpoint not restored");
	return false;
}

static int
admin_cb(void *arg, tally_http_action_t action, char *errstr, size_t size)
{
	env_t *e = arg;
	int rc;

	/* The app would hand this to its control thread; here one mutex serialises. */
	pthread_mutex_lock(&e->admin_mu);
	rc = action == TALLY_HTTP_ACTION_OPEN ? tally_core_election_open(e->core)
	                                      : tally_core_election_close(e->core);
	pthread_mutex_unlock(&e->admin_mu);
	if (rc == TALLY_ESTATE)
		snprintf(errstr, size, "the election is not %s",
		         action == TALLY_HTTP_ACTION_OPEN ? "scheduled" : "open");
	return rc;
}

static void
metrics_cb(void *arg, tally_metrics_builder_t *b)
{
	static const char *const p0[] = {"partition", "0", NULL};
	static const char *const p1[] = {"partition", "1", NULL};
	static const char *const odd[] = {"note", "a\"b\\c\nd", NULL};

	(void)arg;
	tally_metrics_counter(b, "tally_test_dead_letters_total", "Dead letters \"sent\".", p0, 3);
	tally_metrics_counter(b, "tally_test_dead_letters_total", "Dead letters \"sent\".", p1, 4);
	tally_metrics_gauge(b, "tally_test_checkpoint_age_seconds", "Age of the last checkpoint.", NULL,
	                    1.5);
	tally_metrics_gauge(b, "tally_test_escaped", "Label escaping.", odd, 1);
	/* Refused: a family's samples after another family, a counter without _total, a bad
	 * name. */
	tally_metrics_counter(b, "tally_test_dead_letters_total", "Dead letters \"sent\".", p0, 5);
	tally_metrics_counter(b, "tally_test_bad", "x", NULL, 1);
	tally_metrics_gauge(b, "9bad", "x", NULL, 1);
}

/* The snapshot source: e->served, copied only when newer than what snap holds. */
static int
snapshot_cb(void *arg, tally_snapshot_t *snap)
{
	env_t *e = arg;
	int rc = TALLY_EAGAIN;

	pthread_mutex_lock(&e->served_mu);
	if (e->served != NULL && (e->served->version != snap->version || snap->candidates == NULL)) {
		rc = tally_snapshot_copy_into(snap, e->served);
		e->served_fills += rc == 0;
	}
	pthread_mutex_unlock(&e->served_mu);
	return rc;
}

/* Serve a snapshot of the core as it is now; @returns its version. */
static uint64_t
serve_now(env_t *e)
{
	tally_snapshot_t *snap = tally_snapshot_take(e->core), *old;
	uint64_t v = snap->version;

	pthread_mutex_lock(&e->served_mu);
	old = e->served;
	e->served = snap;
	pthread_mutex_unlock(&e->served_mu);
	tally_snapshot_destroy(old);
	return v;
}

/* Count votes for voters [from, to): voter i votes for candidate i % NCAND, plus extras. */
static void
count_votes(env_t *e, uint64_t n, uint32_t dups, uint32_t unknown)
{
	uint32_t total = (uint32_t)n + dups + unknown;
	tally_vote_t *v = calloc(total, sizeof(*v));
	tally_batch_t batch;
	uint32_t k = 0;

	for (uint64_t i = 0; i < n; i++, k++)
		fixture_vote(&v[k], e->next_voter + i, (uint32_t)((e->next_voter + i) % NCAND));
	for (uint32_t i = 0; i < dups; i++, k++)
		fixture_vote(&v[k], e->next_voter + i, 0);
	for (uint32_t i = 0; i < unknown; i++, k++)
		fixture_vote(&v[k], 5000000 + e->next_voter + i, 0);
	e->next_voter += n;
	tally_batch_init(&batch, v, total, 0);
	tally_core_process(e->core, 0, &batch);
	free(v);
}

static void
env_start(env_t *e, tally_http_opts_t *o)
{
	tally_core_opts_t co = fixture_core_opts(1);
	char err[256];

	memset(e, 0, sizeof(*e));
	pthread_mutex_init(&e->admin_mu, NULL);
	pthread_mutex_init(&e->served_mu, NULL);
	e->reg = fixture_registry(NPARTY, NCAND, NREGION, NVOTERS, NVOTERS);
	/* A region whose name needs escaping everywhere, with no voters. */
	cr_assert_eq(tally_registry_add_region(e->reg, "Quote \"q\", back\\slash", NULL),
	             TALLY_REFUSAL_NONE);
	e->core = tally_core_new(e->reg, &co, err, sizeof(err));
	cr_assert_not_null(e->core, "%s", err);
	/* A snapshot source serves something from the first render on. */
	if (o->snapshot != NULL)
		e->served = tally_snapshot_take(e->core);
	o->cb_arg = e;
	o->log = test_log;
	o->render_interval_ms = o->render_interval_ms ? o->render_interval_ms : 20;
	e->http = tally_http_new(e->core, o, err, sizeof(err));
	cr_assert_not_null(e->http, "%s", err);
	cr_assert_eq(tally_http_start(e->http, err, sizeof(err)), 0, "%s", err);
	cr_assert_neq(tally_http_port(e->http), 0);
	snprintf(e->base, sizeof(e->base), "http://127.0.0.1:%u", (unsigned)tally_http_port(e->http));
}

static void
env_stop(env_t *e)
{
	tally_http_destroy(e->http);
	tally_core_destroy(e->core);
	tally_registry_destroy(e->reg);
	tally_snapshot_destroy(e->served);
	pthread_mutex_destroy(&e->admin_mu);
	pthread_mutex_destroy(&e->served_mu);
}

/* Wait until the adapter serves the core's current version. */
static tally_snapshot_t *
wait_rendered(env_t *e)
{
	tally_snapshot_t *snap = tally_snapshot_take(e->core);
	double t0 = tally_mono_ns() / 1e9;
	tally_http_stats_t st;

	for (;;) {
		tally_http_get_stats(e->http, &st);
		if (st.version == snap->version)
			return snap;
		cr_assert_lt(tally_mono_ns() / 1e9 - t0, 10.0, "render never caught up");
		usleep(5000);
	}
}

/* ---- a small libcurl client ------------------------------------------------------------------ */

typedef struct resp {
	long status;
	char *body;
	size_t len;
	char ctype[128];
	char headers[4096];
	CURLcode rc;
} resp_t;

static size_t
on_body(char *p, size_t size, size_t n, void *arg)
{
	resp_t *r = arg;
	char *nb = realloc(r->body, r->len + size * n + 1);

	if (nb == NULL)
		return 0;
	r->body = nb;
	memcpy(r->body + r->len, p, size * n);
	r->len += size * n;
	r->body[r->len] = '\0';
	return size * n;
}

static size_t
on_header(char *p, size_t size, size_t n, void *arg)
{
	resp_t *r = arg;
	size_t used = strlen(r->headers);

	if (used + size * n < sizeof(r->headers)) {
		memcpy(r->headers + used, p, size * n);
		r->headers[used + size * n] = '\0';
	}
	return size * n;
}

/* method NULL: GET. hdrs: NULL-terminated header lines. iface: a local source address. */
static resp_t
http_req(const env_t *e, const char *method, const char *path, const char *const *hdrs,
         const char *body, const char *iface)
{
	resp_t r = {0};
	CURL *c = curl_easy_init();
	struct curl_slist *list = NULL;
	char url[512];
	char *ct = NULL;

	snprintf(url, sizeof(url), "%s%s", e->base, path);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, &r);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	if (method != NULL && strcmp(method, "HEAD") == 0)
		curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
	else if (method != NULL)
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	if (body != NULL) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
	}
	if (iface != NULL)
		curl_easy_setopt(c, CURLOPT_INTERFACE, iface);
	for (size_t i = 0; hdrs != NULL && hdrs[i] != NULL; i++)
		list = curl_slist_append(list, hdrs[i]);
	if (list != NULL)
		curl_easy_setopt(c, CURLOPT_HTTPHEADER, list);
	r.rc = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
	if (curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &ct) == CURLE_OK && ct != NULL)
		snprintf(r.ctype, sizeof(r.ctype), "%s", ct);
	curl_slist_free_all(list);
	curl_easy_cleanup(c);
	if (r.body == NULL)
		r.body = calloc(1, 1);
	return r;
}

static resp_t
http_get(const env_t *e, const char *path)
{
	return http_req(e, NULL, path, NULL, NULL, NULL);
}

static void
resp_free(resp_t *r)
{
	free(r->body);
}

static json_t *
parse_json(const resp_t *r)
{
	json_error_t jerr;
	json_t *j = json_loadb(r->body, r->len, 0, &jerr);

	cr_assert_not_null(j, "bad JSON (%s): %.200s", jerr.text, r->body);
	return j;
}

static json_int_t
jint(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	cr_assert(json_is_integer(v), "\"%s\" is not an integer", key);
	return json_integer_value(v);
}

static double
jnum(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	cr_assert(json_is_number(v), "\"%s\" is not a number", key);
	return json_number_value(v);
}

static const char *
jstr(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	cr_assert(json_is_string(v), "\"%s\" is not a string", key);
	return json_string_value(v);
}

/* ---- the tests ---------------------------------------------------------------------------------- */

Test(http, results_json, .timeout = 60)
{
	tally_http_opts_t o = {0};
	tally_snapshot_t *snap;
	env_t e;
	resp_t r;
	json_t *j, *a;
	char id[40], path[64];
	int32_t leader;
	uint64_t second = 0;

	env_start(&e, &o);
	/* Nothing counted yet: no leader. */
	snap = wait_rendered(&e);
	r = http_get(&e, "/api/results");
	cr_assert_eq(r.status, 200);
	j = parse_json(&r);
	cr_assert(json_is_null(json_object_get(j, "leader")));
	cr_assert_eq(jint(json_object_get(j, "margin"), "votes"), 0);
	json_decref(j);
	resp_free(&r);
	tally_snapshot_destroy(snap);

	count_votes(&e, 601, 7, 5);
	snap = wait_rendered(&e);
	r = http_get(&e, "/api/results");
	cr_assert_eq(r.status, 200);
	cr_assert(strstr(r.ctype, "application/json") != NULL, "%s", r.ctype);
	j = parse_json(&r);
	cr_assert_str_eq(jstr(json_object_get(j, "election"), "id"), "ge-2026");
	cr_assert_str_eq(jstr(json_object_get(j, "election"), "status"), "open");
	cr_assert_str_eq(jstr(json_object_get(j, "election"), "opens_at"), "2026-05-07T07:00:00Z");
	cr_assert_str_eq(jstr(json_object_get(j, "election"), "closes_at"), "2026-05-07T22:00:00Z");
	cr_assert_eq((uint64_t)jint(j, "version"), snap->version);
	cr_assert_eq(strlen(jstr(j, "updated_at")), 24);
	cr_assert_eq(jint(j, "accepted"), 601);
	cr_assert_eq((uint64_t)jint(j, "accepted"), snap->accepted);
	cr_assert_eq(jint(j, "read"), 613);
	cr_assert_eq(jint(json_object_get(j, "rejected"), "duplicate"), 7);
	cr_assert_eq(jint(json_object_get(j, "rejected"), "unknown_voter"), 5);
	cr_assert_eq(jint(json_object_get(j, "rejected"), "malformed"), 0);
	cr_assert_eq(json_object_size(json_object_get(j, "rejected")), TALLY_REASON__COUNT - 1);
	cr_assert_eq(jint(j, "registered"), NVOTERS);
	cr_assert_float_eq(jnum(j, "turnout"), 0.601, 1e-6);

	a = json_object_get(j, "candidates");
	cr_assert_eq(json_array_size(a), NCAND);
	for (uint32_t c = 0; c < NCAND; c++) {
		json_t *x = json_array_get(a, c);
		tally_uuid_t cid = fixture_candidate_id(c);
		char name[32], party[32];

		snprintf(name, sizeof(name), "Candidate %u", c);
		snprintf(party, sizeof(party), "Party %u", c % NPARTY);
		cr_assert_str_eq(jstr(x, "candidate_id"), tally_uuid_format(&cid, id));
		cr_assert_str_eq(jstr(x, "candidate_name"), name);
		cr_assert_str_eq(jstr(x, "party_affiliation"), party);
		cr_assert_str_eq(jstr(x, "photo_url"), "");
		cr_assert_eq((uint64_t)jint(x, "total_votes"), snap->candidates[c]);
		cr_assert_float_eq(jnum(x, "share"), (double)snap->candidates[c] / 601.0, 1e-6);
	}
	/* 601 voters round-robin: 201, 200, 200. */
	cr_assert_eq(snap->candidates[0], 201);
	a = json_object_get(j, "parties");
	cr_assert_eq(json_array_size(a), NPARTY);
	for (uint32_t p = 0; p < NPARTY; p++)
		cr_assert_eq((uint64_t)jint(json_array_get(a, p), "total_votes"), snap->parties[p]);
	a = json_object_get(j, "regions");
	cr_assert_eq(json_array_size(a), NREGION + 1);
	for (uint32_t r2 = 0; r2 < NREGION + 1; r2++) {
		json_t *x = json_array_get(a, r2);

		cr_assert_str_eq(jstr(x, "region"), tally_registry_region_name(e.reg, r2));
		cr_assert_eq((uint64_t)jint(x, "count"), snap->regions[r2]);
		cr_assert_eq((uint64_t)jint(x, "registered"), snap->region_registered[r2]);
	}
	cr_assert_str_eq(jstr(json_array_get(a, NREGION), "region"), "Quote \"q\", back\\slash");
	leader = tally_snapshot_leader(snap);
	cr_assert_eq(leader, 0);
	for (uint32_t c = 1; c < NCAND; c++)
		second = snap->candidates[c] > second ? snap->candidates[c] : second;
	cr_assert_eq(jint(json_object_get(j, "leader"), "total_votes"), 201);
	cr_assert_str_eq(jstr(json_object_get(j, "leader"), "candidate_name"), "Candidate 0");
	cr_assert_eq((uint64_t)jint(json_object_get(j, "margin"), "votes"), 201 - second);
	cr_assert_float_eq(jnum(json_object_get(j, "margin"), "share_points"),
	                   100.0 * (double)(201 - second) / 601.0, 1e-6);
	json_decref(j);
	resp_free(&r);

	/* ?since: 304 when nothing changed, 200 when older, 400 when not a number. */
	snprintf(path, sizeof(path), "/api/results?since=%" PRIu64, snap->version);
	r = http_get(&e, path);
	cr_assert_eq(r.status, 304);
	cr_assert_eq(r.len, 0);
	resp_free(&r);
	snprintf(path, sizeof(path), "/api/results?since=%" PRIu64, snap->version - 1);
	r = http_get(&e, path);
	cr_assert_eq(r.status, 200);
	resp_free(&r);
	r = http_get(&e, "/api/results?since=abc");
	cr_assert_eq(r.status, 400);
	cr_assert(strstr(r.body, "\"error\"") != NULL);
	resp_free(&r);
	/* ETag revalidation. */
	{
		char inm[64];
		const char *hdrs[] = {inm, NULL};

		snprintf(inm, sizeof(inm), "If-None-Match: \"v%" PRIu64 "\"", snap->version);
		r = http_req(&e, NULL, "/api/results", hdrs, NULL, NULL);
		cr_assert_eq(r.status, 304);
		resp_free(&r);
	}
	tally_snapshot_destroy(snap);
	env_stop(&e);
}

Test(http, results_csv, .timeout = 60)
{
	tally_http_opts_t o = {0};
	tally_snapshot_t *snap;
	env_t e;
	resp_t r;
	char line[256], id[40];
	tally_uuid_t cid = fixture_candidate_id(1);

	env_start(&e, &o);
	count_votes(&e, 300, 0, 0);
	snap = wait_rendered(&e);
	r = http_get(&e, "/api/results.csv");
	cr_assert_eq(r.status, 200);
	cr_assert(strncmp(r.ctype, "text/csv", 8) == 0, "%s", r.ctype);
	cr_assert(strncmp(r.body, "kind,id,name,party,votes,share,registered,turnout\r\n", 51) == 0);
	snprintf(line, sizeof(line), "\r\ncandidate,%s,Candidate 1,Party 1,100,0.333333,,\r\n",
	         tally_uuid_format(&cid, id));
	cr_assert(strstr(r.body, line) != NULL, "no %s in %s", line, r.body);
	cr_assert(strstr(r.body, "\r\nparty,,Party 0,Party 0,200,0.666667,,\r\n") != NULL, "%s", r.body);
	snprintf(line, sizeof(line), "\r\nregion,,Region 2,,%" PRIu64 ",,%" PRIu64 ",",
	         snap->regions[2], snap->region_registered[2]);
	cr_assert(strstr(r.body, line) != NULL, "no %s", line);
	cr_assert(strstr(r.body, "\r\nregion,,\"Quote \"\"q\"\", back\\slash\",,0,,0,0.000000\r\n") != NULL,
	          "%s", r.body);
	resp_free(&r);
	tally_snapshot_destroy(snap);
	env_stop(&e);
}

/* The value of the sample line that starts with prefix (name and labels, then a space). */
static double
sample(const char *body, const char *prefix)
{
	char pat[512];
	const char *p;

	snprintf(pat, sizeof(pat), "\n%s ", prefix);
	p = strstr(body, pat);
	cr_assert_not_null(p, "no sample %s", prefix);
	return strtod(p + strlen(pat), NULL);
}

static bool
have_promtool(void)
{
	return system("command -v promtool >/dev/null 2>&1") == 0;
}

/* promtool check metrics on body: its output, and its exit status. */
static int
promtool_check(const char *body, size_t len, char *out, size_t out_size)
{
	char path[] = "/tmp/tally-test-metrics-XXXXXX", cmd[256];
	int fd = mkstemp(path);
	FILE *p;
	size_t n = 0;
	int status;

	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, body, len), (ssize_t)len);
	close(fd);
	snprintf(cmd, sizeof(cmd), "promtool check metrics < %s 2>&1", path);
	p = popen(cmd, "r");
	cr_assert_not_null(p);
	while (n + 1 < out_size && fgets(out + n, (int)(out_size - n), p) != NULL)
		n += strlen(out + n);
	out[n] = '\0';
	status = pclose(p);
	unlink(path);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

Test(http, metrics, .timeout = 60)
{
	tally_http_opts_t o = {.metrics = metrics_cb, .max_region_series = 2};
	tally_snapshot_t *snap;
	env_t e;
	resp_t r;
	char label[256], id[40], out[4096];
	uint64_t other_votes = 0, other_reg = 0;
	static const char *const om_accept[] = {
		"Accept: application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5", NULL};

	env_start(&e, &o);
	count_votes(&e, 500, 3, 2);
	snap = wait_rendered(&e);

	r = http_get(&e, "/metrics");
	cr_assert_eq(r.status, 200);
	cr_assert_str_eq(r.ctype, "text/plain; version=0.0.4; charset=utf-8");
	cr_assert_eq(sample(r.body, "tally_votes_read_total"), 505);
	cr_assert_eq(sample(r.body, "tally_votes_accepted_total"), 500);
	cr_assert_eq(sample(r.body, "tally_votes_rejected_total{reason=\"duplicate\"}"), 3);
	cr_assert_eq(sample(r.body, "tally_votes_rejected_total{reason=\"unknown_voter\"}"), 2);
	cr_assert_eq(sample(r.body, "tally_votes_rejected_total{reason=\"too_late\"}"), 0);
	for (uint32_t c = 0; c < NCAND; c++) {
		tally_uuid_t cid = fixture_candidate_id(c);

		snprintf(label, sizeof(label),
		         "tally_candidate_votes_total{candidate_id=\"%s\",candidate=\"Candidate %u\","
		         "party=\"Party %u\"}", tally_uuid_format(&cid, id), c, c % NPARTY);
		cr_assert_eq(sample(r.body, label), (double)snap->candidates[c]);
	}
	cr_assert_eq(sample(r.body, "tally_party_votes_total{party=\"Party 0\"}"), (double)snap->parties[0]);
	cr_assert_eq(sample(r.body, "tally_registered_voters"), NVOTERS);
	cr_assert_float_eq(sample(r.body, "tally_turnout_ratio"), 0.5, 1e-9);
	cr_assert_eq(sample(r.body, "tally_snapshot_version"), (double)snap->version);
	cr_assert_eq(sample(r.body, "tally_election_status{status=\"open\"}"), 1);
	cr_assert_eq(sample(r.body, "tally_election_status{status=\"closed\"}"), 0);
	cr_assert(strstr(r.body, "\ntally_build_info{version=\"") != NULL);
	/* Regions bounded to 2 series: the two with the most voters (ties by name), the rest in
	 * region="other" (the escaped region has no voters, so it is folded in). */
	{
		uint32_t order[NREGION + 1], n = NREGION + 1;

		for (uint32_t i = 0; i < n; i++)
			order[i] = i;
		for (uint32_t i = 0; i < n; i++)
			for (uint32_t k = i + 1; k < n; k++) {
				uint32_t a = order[i], b = order[k];
				bool swap = snap->region_registered[b] > snap->region_registered[a] ||
				            (snap->region_registered[b] == snap->region_registered[a] &&
				             strcmp(tally_registry_region_name(e.reg, b),
				                    tally_registry_region_name(e.reg, a)) < 0);

				if (swap) {
					order[i] = b;
					order[k] = a;
				}
			}
		for (uint32_t i = 0; i < n; i++) {
			const char *name = tally_registry_region_name(e.reg, order[i]);

			snprintf(label, sizeof(label), "tally_region_votes_total{region=\"%s\"}", name);
			if (i < 2) {
				cr_assert_eq(sample(r.body, label), (double)snap->regions[order[i]]);
			} else {
				char pat[300];

				snprintf(pat, sizeof(pat), "{region=\"%s\"}", name);
				cr_assert_null(strstr(r.body, pat), "%s has its own series", name);
				other_votes += snap->regions[order[i]];
				other_reg += snap->region_registered[order[i]];
			}
		}
		cr_assert_eq(sample(r.body, "tally_region_votes_total{region=\"other\"}"), (double)other_votes);
		cr_assert_eq(sample(r.body, "tally_region_registered_voters{region=\"other\"}"),
		             (double)other_reg);
	}
	/* The app's metrics, with their HELP/TYPE once per family, escaped labels. */
	cr_assert(strstr(r.body, "# HELP tally_test_dead_letters_total Dead letters \"sent\".\n"
	                         "# TYPE tally_test_dead_letters_total counter\n"
	                         "tally_test_dead_letters_total{partition=\"0\"} 3\n"
	                         "tally_test_dead_letters_total{partition=\"1\"} 4\n") != NULL, "%s", r.body);
	cr_assert_float_eq(sample(r.body, "tally_test_checkpoint_age_seconds"), 1.5, 1e-9);
	cr_assert(strstr(r.body, "tally_test_escaped{note=\"a\\\"b\\\\c\\nd\"} 1\n") != NULL);
	cr_assert_null(strstr(r.body, "tally_test_bad"));
	cr_assert_null(strstr(r.body, "9bad"));
	/* Every family has HELP and TYPE; no voter data. */
	cr_assert_null(strstr(r.body, "voter1"));
	if (have_promtool()) {
		int rc = promtool_check(r.body, r.len, out, sizeof(out));

		cr_assert_eq(rc, 0, "promtool: %s", out);
		cr_assert_str_eq(out, "", "promtool printed: %s", out);
	} else {
		cr_log_warn("promtool not found: the text format is not linted (scripts/setup installs it)");
	}
	resp_free(&r);

	/* OpenMetrics when asked for. */
	r = http_req(&e, NULL, "/metrics", om_accept, NULL, NULL);
	cr_assert_eq(r.status, 200);
	cr_assert_str_eq(r.ctype, "application/openmetrics-text; version=1.0.0; charset=utf-8");
	cr_assert(r.len > 6 && strcmp(r.body + r.len - 6, "# EOF\n") == 0, "no # EOF at the end");
	cr_assert_eq(strstr(r.body, "# EOF"), r.body + r.len - 6, "# EOF before the end");
	cr_assert(strstr(r.body, "# TYPE tally_votes_read counter\n") != NULL);
	cr_assert(strstr(r.body, "# HELP tally_votes_read ") != NULL);
	cr_assert_eq(sample(r.body, "tally_votes_read_total"), 505);
	cr_assert(strstr(r.body, "# TYPE tally_build info\n") != NULL);
	cr_assert(strstr(r.body, "# TYPE tally_test_dead_letters counter\n") != NULL);
	cr_assert(strstr(r.body, "# HELP tally_test_dead_letters Dead letters \\\"sent\\\".\n") != NULL);
	cr_assert(strstr(r.body, "# TYPE tally_turnout_ratio gauge\n") != NULL);
	/* Structure: every line is a comment of a known kind or a sample of the family last
	 * declared; no counter family is declared with _total; no empty line. */
	{
		char family[128] = "";
		char *save = NULL, *copy = strdup(r.body);

		for (char *l = strtok_r(copy, "\n", &save); l != NULL; l = strtok_r(NULL, "\n", &save)) {
			if (strncmp(l, "# TYPE ", 7) == 0) {
				char *sp = strchr(l + 7, ' ');

				cr_assert_not_null(sp);
				snprintf(family, sizeof(family), "%.*s", (int)(sp - l - 7), l + 7);
				if (strcmp(sp + 1, "counter") == 0)
					cr_assert(strlen(family) < 6 || strcmp(family + strlen(family) - 6, "_total") != 0,
					          "counter family %s ends in _total", family);
			} else if (strncmp(l, "# HELP ", 7) == 0 || strcmp(l, "# EOF") == 0) {
				continue;
			} else {
				cr_assert_neq(l[0], '#', "unknown comment %s", l);
				cr_assert(strncmp(l, family, strlen(family)) == 0, "sample %s outside %s", l, family);
			}
		}
		free(copy);
	}
	resp_free(&r);
	tally_snapshot_destroy(snap);
	env_stop(&e);
}

/* Wait until the adapter serves version v. */
static void
wait_version(env_t *e, uint64_t v)
{
	double t0 = tally_mono_ns() / 1e9;
	tally_http_stats_t st;

	for (;;) {
		tally_http_get_stats(e->http, &st);
		if (st.version == v)
			return;
		cr_assert_lt(tally_mono_ns() / 1e9 - t0, 10.0, "version %" PRIu64 " never served", v);
		usleep(5000);
	}
}

Test(http, snapshot_source, .timeout = 60)
{
	tally_http_opts_t o = {.snapshot = snapshot_cb};
	tally_http_stats_t st0, st1;
	tally_snapshot_t *live;
	uint64_t v0, v1, v2;
	env_t e;
	resp_t r;
	json_t *j;

	env_start(&e, &o);
	/* The first bodies come from the source (filled once by start). */
	v0 = e.served->version;
	wait_version(&e, v0);
	r = http_get(&e, "/api/results");
	cr_assert_eq(r.status, 200);
	j = parse_json(&r);
	cr_assert_eq((uint64_t)jint(j, "version"), v0);
	cr_assert_eq(jint(j, "accepted"), 0);
	json_decref(j);
	resp_free(&r);

	/* 100 votes committed (served), then 50 more counted but not served. */
	count_votes(&e, 100, 2, 0);
	v1 = serve_now(&e);
	cr_assert_gt(v1, v0);
	wait_version(&e, v1);
	count_votes(&e, 50, 0, 3);
	live = tally_snapshot_take(e.core);
	cr_assert_eq(live->accepted, 150);
	cr_assert_eq(live->read, 155);
	cr_assert_gt(live->version, v1);
	/* Many render passes (every 20 ms): nothing newer from the source, nothing rendered. */
	tally_http_get_stats(e.http, &st0);
	usleep(300000);
	tally_http_get_stats(e.http, &st1);
	cr_assert_eq(st1.renders, st0.renders);
	cr_assert_eq(st1.version, v1);
	pthread_mutex_lock(&e.served_mu);
	cr_assert_eq(e.served_fills, 2);         /* start, then v1 */
	pthread_mutex_unlock(&e.served_mu);

	r = http_get(&e, "/api/results");
	cr_assert_eq(r.status, 200);
	j = parse_json(&r);
	cr_assert_eq((uint64_t)jint(j, "version"), v1);
	cr_assert_eq(jint(j, "accepted"), 100);
	cr_assert_eq(jint(j, "read"), 102);
	cr_assert_eq(jint(json_object_get(j, "rejected"), "duplicate"), 2);
	cr_assert_eq(jint(json_object_get(j, "rejected"), "unknown_voter"), 0);
	/* 100 voters round-robin: 34, 33, 33. */
	cr_assert_eq(jint(json_array_get(json_object_get(j, "candidates"), 0), "total_votes"), 34);
	cr_assert_eq(jint(json_array_get(json_object_get(j, "candidates"), 1), "total_votes"), 33);
	cr_assert_eq(jint(json_array_get(json_object_get(j, "candidates"), 2), "total_votes"), 33);
	json_decref(j);
	resp_free(&r);
	r = http_get(&e, "/metrics");
	cr_assert_eq(r.status, 200);
	cr_assert_eq(sample(r.body, "tally_votes_accepted_total"), 100);
	cr_assert_eq(sample(r.body, "tally_votes_read_total"), 102);
	cr_assert_eq(sample(r.body, "tally_snapshot_version"), (double)v1);
	resp_free(&r);
	r = http_get(&e, "/api/results.csv");
	cr_assert_eq(r.status, 200);
	cr_assert(strstr(r.body, "\r\nparty,,Party 0,Party 0,67,0.670000,,\r\n") != NULL, "%s", r.body);
	resp_free(&r);

	/* The source moves on: the bodies follow. */
	v2 = serve_now(&e);
	cr_assert_eq(v2, live->version);
	wait_version(&e, v2);
	r = http_get(&e, "/api/results");
	j = parse_json(&r);
	cr_assert_eq((uint64_t)jint(j, "version"), v2);
	cr_assert_eq(jint(j, "accepted"), 150);
	cr_assert_eq(jint(j, "read"), 155);
	cr_assert_eq(jint(json_object_get(j, "rejected"), "unknown_voter"), 3);
	json_decref(j);
	resp_free(&r);
	r = http_get(&e, "/metrics");
	cr_assert_eq(sample(r.body, "tally_votes_accepted_total"), 150);
	resp_free(&r);
	tally_snapshot_destroy(live);
	env_stop(&e);
}

Test(http, snapshot_source_none_at_start)
{
	tally_http_opts_t o = {.snapshot = snapshot_cb};
	tally_core_opts_t co = fixture_core_opts(1);
	tally_registry_t *reg = fixture_registry(1, 1, 1, 1, 16);
	tally_core_t *core = tally_core_new(reg, &co, NULL, 0);
	tally_http_t *h;
	env_t e;
	char err[256];

	/* The source has nothing to serve yet ("nothing newer"): start fails, saying why. */
	memset(&e, 0, sizeof(e));
	pthread_mutex_init(&e.served_mu, NULL);
	o.cb_arg = &e;
	h = tally_http_new(core, &o, err, sizeof(err));
	cr_assert_not_null(h, "%s", err);
	cr_assert_eq(tally_http_start(h, err, sizeof(err)), TALLY_EAGAIN);
	cr_assert_str_eq(err, "http: no results to serve: the snapshot source has none yet");
	cr_assert_eq(tally_http_port(h), 0);
	tally_http_destroy(h);
	pthread_mutex_destroy(&e.served_mu);
	tally_core_destroy(core);
	tally_registry_destroy(reg);
}

/* ---- SSE -------------------------------------------------------------------------------------------- */

typedef struct sse {
	const env_t *e;
	pthread_mutex_t mu;
	char *data;
	size_t len;
	int stop;                        /* under mu */
	int status;
	long http_status;
	char ctype[128];
} sse_t;

static size_t
sse_body(char *p, size_t size, size_t n, void *arg)
{
	sse_t *s = arg;
	size_t ret = size * n;

	pthread_mutex_lock(&s->mu);
	if (s->stop) {
		ret = 0;
	} else {
		char *nb = realloc(s->data, s->len + size * n + 1);

		if (nb != NULL) {
			s->data = nb;
			memcpy(s->data + s->len, p, size * n);
			s->len += size * n;
			s->data[s->len] = '\0';
		}
	}
	pthread_mutex_unlock(&s->mu);
	return ret;
}

static int
sse_progress(void *arg, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
	sse_t *s = arg;
	int stop;

	(void)a, (void)b, (void)c, (void)d;
	pthread_mutex_lock(&s->mu);
	stop = s->stop;
	pthread_mutex_unlock(&s->mu);
	return stop;
}

static void *
sse_thread(void *arg)
{
	sse_t *s = arg;
	CURL *c = curl_easy_init();
	char url[128];
	char *ct = NULL;

	snprintf(url, sizeof(url), "%s/api/stream", s->e->base);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sse_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, s);
	curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, sse_progress);
	curl_easy_setopt(c, CURLOPT_XFERINFODATA, s);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
	s->status = (int)curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &s->http_status);
	if (curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &ct) == CURLE_OK && ct != NULL)
		snprintf(s->ctype, sizeof(s->ctype), "%s", ct);
	curl_easy_cleanup(c);
	return NULL;
}

/* Wait until the stream received the event of version v; @returns how many events so far. */
static int
sse_wait_version(sse_t *s, uint64_t v)
{
	char pat[64];
	double t0 = tally_mono_ns() / 1e9;

	snprintf(pat, sizeof(pat), "event: results\nid: %" PRIu64 "\ndata: {", v);
	for (;;) {
		int events = 0;
		bool found;

		pthread_mutex_lock(&s->mu);
		found = s->data != NULL && strstr(s->data, pat) != NULL;
		for (const char *p = s->data; p != NULL && (p = strstr(p, "event: results\n")) != NULL; p++)
			events++;
		pthread_mutex_unlock(&s->mu);
		if (found)
			return events;
		cr_assert_lt(tally_mono_ns() / 1e9 - t0, 10.0, "no SSE event for version %" PRIu64, v);
		usleep(10000);
	}
}

Test(http, stream, .timeout = 60)
{
	tally_http_opts_t o = {.heartbeat_ms = 300, .max_stream_clients = 1};
	tally_snapshot_t *snap;
	tally_http_stats_t st;
	pthread_t t;
	sse_t s = {0};
	env_t e;
	resp_t r;
	int events;

	env_start(&e, &o);
	count_votes(&e, 100, 0, 0);
	snap = wait_rendered(&e);
	s.e = &e;
	pthread_mutex_init(&s.mu, NULL);
	pthread_create(&t, NULL, sse_thread, &s);
	/* The first event at once, with the current results. */
	events = sse_wait_version(&s, snap->version);
	cr_assert_eq(events, 1);
	tally_snapshot_destroy(snap);

	/* The stream limit is 1: a second client is refused while the first is on. */
	r = http_get(&e, "/api/stream");
	cr_assert_eq(r.status, 503);
	cr_assert(strstr(r.body, "\"error\"") != NULL);
	resp_free(&r);

	/* More votes: a new event with the new version. */
	count_votes(&e, 50, 0, 0);
	snap = wait_rendered(&e);
	events = sse_wait_version(&s, snap->version);
	cr_assert_geq(events, 2);
	pthread_mutex_lock(&s.mu);
	cr_assert(strstr(s.data, "\"accepted\":150,") != NULL);
	pthread_mutex_unlock(&s.mu);
	tally_snapshot_destroy(snap);

	/* Idle: heartbeats, and no event repeated while nothing changes. */
	usleep(800000);
	pthread_mutex_lock(&s.mu);
	cr_assert(strstr(s.data, ": keepalive\n\n") != NULL);
	pthread_mutex_unlock(&s.mu);
	snap = tally_snapshot_take(e.core);
	cr_assert_eq(sse_wait_version(&s, snap->version), events);
	tally_snapshot_destroy(snap);
	tally_http_get_stats(e.http, &st);
	cr_assert_eq(st.stream_clients, 1);

	pthread_mutex_lock(&s.mu);
	s.stop = 1;
	pthread_mutex_unlock(&s.mu);
	pthread_join(t, NULL);
	cr_assert_eq(s.http_status, 200);
	cr_assert(strncmp(s.ctype, "text/event-stream", 17) == 0, "%s", s.ctype);
	free(s.data);
	pthread_mutex_destroy(&s.mu);

	/* A client on at stop time is ended cleanly by tally_http_stop(). */
	memset(&s, 0, sizeof(s));
	s.e = &e;
	pthread_mutex_init(&s.mu, NULL);
	{
		double t0 = tally_mono_ns() / 1e9;

		/* The server frees the first client's slot once it noticed the disconnect. */
		do {
			tally_http_get_stats(e.http, &st);
			cr_assert_lt(tally_mono_ns() / 1e9 - t0, 10.0);
			usleep(10000);
		} while (st.stream_clients != 0);
	}
	pthread_create(&t, NULL, sse_thread, &s);
	snap = tally_snapshot_take(e.core);
	sse_wait_version(&s, snap->version);
	tally_snapshot_destroy(snap);
	tally_http_stop(e.http);
	pthread_join(t, NULL);
	cr_assert_eq(s.status, CURLE_OK, "the stream did not end cleanly: %d", s.status);
	free(s.data);
	pthread_mutex_destroy(&s.mu);
	env_stop(&e);
}

/* ---- admin, probes, routing, dashboard ---------------------------------------------------------- */

Test(http, admin, .timeout = 60)
{
	tally_http_opts_t o = {.admin = admin_cb, .admin_token = "s3cret-token"};
	static const char *const good[] = {"Authorization: Bearer s3cret-token", NULL};
	static const char *const bad[] = {"Authorization: Bearer s3cret-tokem", NULL};
	static const char *const longer[] = {"Authorization: Bearer s3cret-token2", NULL};
	env_t e;
	resp_t r;
	json_t *j;

	env_start(&e, &o);
	r = http_req(&e, "POST", "/api/election/close", NULL, "", NULL);
	cr_assert_eq(r.status, 401);
	cr_assert(strstr(r.body, "{\"error\":") == r.body);
	cr_assert(strstr(r.headers, "WWW-Authenticate: Bearer") != NULL);
	resp_free(&r);
	r = http_req(&e, "POST", "/api/election/close", bad, "", NULL);
	cr_assert_eq(r.status, 401);
	resp_free(&r);
	r = http_req(&e, "POST", "/api/election/close", longer, "", NULL);
	cr_assert_eq(r.status, 401);
	resp_free(&r);

	r = http_req(&e, "POST", "/api/election/close", good, "", NULL);
	cr_assert_eq(r.status, 200, "%s", r.body);
	j = parse_json(&r);
	cr_assert_str_eq(jstr(json_object_get(j, "election"), "status"), "closed");
	json_decref(j);
	resp_free(&r);
	r = http_req(&e, "POST", "/api/election/close", good, "", NULL);
	cr_assert_eq(r.status, 409);
	cr_assert(strstr(r.body, "not open") != NULL, "%s", r.body);
	resp_free(&r);
	r = http_req(&e, "POST", "/api/election/open", good, "", NULL);
	cr_assert_eq(r.status, 409);
	resp_free(&r);
	/* The new status is served by the other endpoints too. */
	tally_snapshot_destroy(wait_rendered(&e));
	r = http_get(&e, "/api/results");
	j = parse_json(&r);
	cr_assert_str_eq(jstr(json_object_get(j, "election"), "status"), "closed");
	json_decref(j);
	resp_free(&r);

	/* Wrong methods. */
	r = http_get(&e, "/api/election/open");
	cr_assert_eq(r.status, 405);
	cr_assert(strstr(r.headers, "Allow: POST") != NULL, "%s", r.headers);
	resp_free(&r);
	r = http_req(&e, "POST", "/metrics", NULL, "x", NULL);
	cr_assert_eq(r.status, 405);
	cr_assert(strstr(r.headers, "Allow: GET, HEAD") != NULL, "%s", r.headers);
	cr_assert(strstr(r.body, "{\"error\":") == r.body);
	resp_free(&r);
	env_stop(&e);

	/* No token configured: admin is off (403), whatever is sent. */
	memset(&o, 0, sizeof(o));
	o.admin = admin_cb;
	env_start(&e, &o);
	r = http_req(&e, "POST", "/api/election/close", good, "", NULL);
	cr_assert_eq(r.status, 403);
	cr_assert(strstr(r.body, "disabled") != NULL);
	resp_free(&r);
	env_stop(&e);
}

Test(http, probes_and_routing, .timeout = 60)
{
	tally_http_opts_t o = {.ready = ready_cb};
	static const char *const inm_hdr[] = {NULL, NULL};
	env_t e;
	resp_t r;
	char inm[128];
	const char *etag;

	env_start(&e, &o);
	r = http_get(&e, "/healthz");
	cr_assert_eq(r.status, 200);
	cr_assert_str_eq(r.body, "{\"status\":\"ok\"}\n");
	resp_free(&r);
	r = http_get(&e, "/readyz");
	cr_assert_eq(r.status, 503);
	cr_assert(strstr(r.body, "checkpoint not restored") != NULL, "%s", r.body);
	resp_free(&r);
	tally_store_release(&e.ready, 1);
	r = http_get(&e, "/readyz");
	cr_assert_eq(r.status, 200);
	resp_free(&r);

	r = http_get(&e, "/nope");
	cr_assert_eq(r.status, 404);
	cr_assert_str_eq(r.body, "{\"error\":\"not found\"}\n");
	cr_assert(strstr(r.ctype, "application/json") != NULL);
	resp_free(&r);
	r = http_get(&e, "/api/results/../../etc/passwd");
	cr_assert_eq(r.status, 404);
	resp_free(&r);
	r = http_req(&e, "DELETE", "/api/results", NULL, NULL, NULL);
	cr_assert_eq(r.status, 405);
	resp_free(&r);
	r = http_req(&e, "HEAD", "/metrics", NULL, NULL, NULL);
	cr_assert_eq(r.rc, CURLE_OK, "%s", curl_easy_strerror(r.rc));
	cr_assert_eq(r.status, 200);
	cr_assert_eq(r.len, 0);
	resp_free(&r);

	/* The dashboard: embedded index.html at / and by name, revalidated by ETag. */
	r = http_get(&e, "/");
	cr_assert_eq(r.status, 200);
	cr_assert_str_eq(r.ctype, "text/html; charset=utf-8");
	cr_assert(strstr(r.body, "<html") != NULL);
	cr_assert(strstr(r.headers, "Cache-Control: no-cache") != NULL, "%s", r.headers);
	etag = strstr(r.headers, "ETag: ");
	cr_assert_not_null(etag);
	snprintf(inm, sizeof(inm), "If-None-Match: %.*s", (int)strcspn(etag + 6, "\r\n"), etag + 6);
	resp_free(&r);
	{
		const char *hdrs[] = {inm, inm_hdr[1]};

		r = http_req(&e, NULL, "/index.html", hdrs, NULL, NULL);
		cr_assert_eq(r.status, 304);
		resp_free(&r);
	}
	r = http_get(&e, "/index.html");
	cr_assert_eq(r.status, 200);
	resp_free(&r);
	env_stop(&e);
}

/* ---- limits ----------------------------------------------------------------------------------------- */

static int
tcp_connect(uint16_t port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
	cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0, "connect: %s", strerror(errno));
	return fd;
}

/* true when the server closed fd (EOF or reset) within ms. */
static bool
closed_within(int fd, int ms)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	char c;

	if (poll(&p, 1, ms) <= 0)
		return false;
	return recv(fd, &c, 1, MSG_DONTWAIT) <= 0;
}

Test(http, limits, .timeout = 90)
{
	tally_http_opts_t o = {.max_connections_per_ip = 4, .connection_timeout_s = 2, .threads = 1};
	char big[20000];
	int fds[10], refused = 0, open_left = 0;
	env_t e;
	resp_t r;

	env_start(&e, &o);
	/* An announced oversize body: 413 before it is sent. */
	{
		char *body = malloc(100000);

		memset(body, 'x', 99999);
		body[99999] = '\0';
		r = http_req(&e, "POST", "/api/election/open", NULL, body, NULL);
		cr_assert(r.status == 413 || r.rc != CURLE_OK, "status %ld", r.status);
		resp_free(&r);
		free(body);
	}
	/* A header block over the limit: refused (431) or closed. */
	memset(big, 'a', sizeof(big) - 1);
	memcpy(big, "X-Big: ", 7);
	big[sizeof(big) - 1] = '\0';
	{
		const char *hdrs[] = {big, NULL};

		r = http_req(&e, NULL, "/healthz", hdrs, NULL, NULL);
		cr_assert(r.status == 431 || r.status == 413 || r.status == 414 || r.rc != CURLE_OK,
		          "status %ld", r.status);
		resp_free(&r);
	}

	/* Ten idle connections from 127.0.0.1: beyond 4 they are closed at once. */
	for (int i = 0; i < 10; i++)
		fds[i] = tcp_connect(tally_http_port(e.http));
	for (int i = 0; i < 10; i++)
		refused += closed_within(fds[i], 300);
	cr_assert_geq(refused, 6, "only %d of 10 idle connections refused", refused);
	/* A normal client from another address is served meanwhile. */
	r = http_req(&e, NULL, "/healthz", NULL, NULL, "127.0.0.2");
	cr_assert_eq(r.rc, CURLE_OK, "%s", curl_easy_strerror(r.rc));
	cr_assert_eq(r.status, 200);
	resp_free(&r);
	/* And the idle ones time out (2 s). */
	for (int i = 0; i < 10; i++)
		open_left += !closed_within(fds[i], 4000);
	cr_assert_eq(open_left, 0, "%d idle connections not timed out", open_left);
	for (int i = 0; i < 10; i++)
		close(fds[i]);
	/* A slow client sending a header a byte at a time is cut off by the timeout too. */
	{
		int fd = tcp_connect(tally_http_port(e.http));
		const char *req = "GET /healthz HTTP/1.1\r\nHost: x\r\n";
		bool cut = false;
		double t0 = tally_mono_ns() / 1e9;

		for (size_t i = 0; i < strlen(req) && !cut; i++) {
			if (send(fd, req + i, 1, MSG_NOSIGNAL) != 1)
				cut = true;
			else
				cut = closed_within(fd, 1000);
		}
		if (!cut)
			cut = closed_within(fd, 4000);
		cr_assert(cut, "a slow client was not cut off");
		cr_assert_lt(tally_mono_ns() / 1e9 - t0, 40.0);
		close(fd);
	}
	r = http_get(&e, "/healthz");
	cr_assert_eq(r.status, 200);
	resp_free(&r);
	env_stop(&e);
}

Test(http, parse_addr_and_options)
{
	struct sockaddr_storage ss;
	socklen_t len;
	char err[256];
	tally_http_opts_t o = {0};
	tally_core_opts_t co = fixture_core_opts(1);
	tally_registry_t *reg = fixture_registry(1, 1, 1, 1, 16);
	tally_core_t *core = tally_core_new(reg, &co, err, sizeof(err));
	tally_http_t *h, *h2;

	cr_assert_eq(tally_http_parse_addr("127.0.0.1:8080", &ss, &len, err, sizeof(err)), 0);
	cr_assert_eq(ntohs(((struct sockaddr_in *)&ss)->sin_port), 8080);
	cr_assert_eq(tally_http_parse_addr("[::1]:0", &ss, &len, err, sizeof(err)), 0);
	cr_assert_eq(ss.ss_family, AF_INET6);
	cr_assert_eq(tally_http_parse_addr("localhost:1", &ss, &len, err, sizeof(err)), 0);
	cr_assert_eq(tally_http_parse_addr(":9", &ss, &len, err, sizeof(err)), 0);
	cr_assert_eq(ss.ss_family, AF_INET);
	cr_assert_eq(tally_http_parse_addr("127.0.0.1", &ss, &len, err, sizeof(err)), TALLY_EINVAL);
	cr_assert(strstr(err, "\"127.0.0.1\"") != NULL, "%s", err);
	cr_assert_eq(tally_http_parse_addr("example.com:80", &ss, &len, err, sizeof(err)), TALLY_EINVAL);
	cr_assert_eq(tally_http_parse_addr("1.2.3.4:65536", &ss, &len, err, sizeof(err)), TALLY_EINVAL);

	/* The parsed address is used as given; a port in use fails with the reason. */
	cr_assert_eq(tally_http_parse_addr("127.0.0.1:0", &ss, &len, err, sizeof(err)), 0);
	o.addr = (struct sockaddr *)&ss;
	o.addrlen = len;
	h = tally_http_new(core, &o, err, sizeof(err));
	cr_assert_not_null(h, "%s", err);
	cr_assert_eq(tally_http_port(h), 0);
	cr_assert_eq(tally_http_start(h, err, sizeof(err)), 0, "%s", err);
	memset(&o, 0, sizeof(o));
	o.port = tally_http_port(h);
	h2 = tally_http_new(core, &o, err, sizeof(err));
	cr_assert_not_null(h2);
	cr_assert_eq(tally_http_start(h2, err, sizeof(err)), TALLY_EIO);
	cr_assert(strstr(err, "could not listen on \"127.0.0.1:") != NULL, "%s", err);
	tally_http_destroy(h2);
	tally_http_stop(h);
	tally_http_stop(h);
	tally_http_destroy(h);
	tally_http_destroy(NULL);
	o.threads = 1000;
	cr_assert_null(tally_http_new(core, &o, err, sizeof(err)));
	tally_core_destroy(core);
	tally_registry_destroy(reg);
}

Test(http, idle_then_fresh, .timeout = 60)
{
	tally_http_opts_t o = {.idle_after_ms = 300};
	tally_http_stats_t st0, st1;
	env_t e;
	resp_t r;
	json_t *j;

	env_start(&e, &o);
	/* Nobody asks: after idle_after_ms the render thread takes no more snapshots. */
	usleep(600000);
	tally_http_get_stats(e.http, &st0);
	count_votes(&e, 100, 0, 0);
	usleep(300000);
	tally_http_get_stats(e.http, &st1);
	cr_assert_eq(st1.renders, st0.renders, "rendered while idle");
	/* The first request wakes it and gets the fresh figures at once. */
	r = http_get(&e, "/api/results");
	cr_assert_eq(r.status, 200);
	j = parse_json(&r);
	cr_assert_eq(jint(j, "accepted"), 100);
	json_decref(j);
	resp_free(&r);
	tally_http_get_stats(e.http, &st1);
	cr_assert_gt(st1.renders, st0.renders);
	env_stop(&e);
}

/* ---- hostile clients ---------------------------------------------------------------------------- */

/* A connection from a given local address (127.0.0.X), to reach the per-address limits. */
static int
tcp_connect_from(uint16_t port, const char *from)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
	struct sockaddr_in b = {.sin_family = AF_INET};
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
	inet_pton(AF_INET, from, &b.sin_addr);
	cr_assert_eq(bind(fd, (struct sockaddr *)&b, sizeof(b)), 0, "bind: %s", strerror(errno));
	cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0, "connect: %s", strerror(errno));
	return fd;
}

/* Read from fd until the server closes it or ms pass; @returns the bytes read (NUL-ended). */
static size_t
read_until_closed(int fd, char *out, size_t size, int ms)
{
	size_t n = 0;
	double t_end = tally_mono_ns() / 1e6 + ms;

	out[0] = '\0';
	for (;;) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		int left = (int)(t_end - tally_mono_ns() / 1e6);
		ssize_t k;

		if (left <= 0 || poll(&p, 1, left) <= 0)
			break;
		k = recv(fd, out + n, size - 1 - n, 0);
		if (k <= 0)
			break;
		n += (size_t)k;
		out[n] = '\0';
		if (n + 1 == size)
			break;
	}
	return n;
}

static tally_election_status_t
status_of(const env_t *e)
{
	tally_election_t el;

	tally_core_election(e->core, &el);
	return el.status;
}

/* Send a whole raw request on a new connection; the response, read until the server closes. */
static void
raw_request(const env_t *e, const char *req, char *out, size_t size)
{
	int fd = tcp_connect(tally_http_port(e->http));

	cr_assert_eq(send(fd, req, strlen(req), MSG_NOSIGNAL), (ssize_t)strlen(req));
	read_until_closed(fd, out, size, 5000);
	close(fd);
}

/* The body of a raw response (after the blank line), or "" if none. */
static const char *
raw_body(const char *resp)
{
	const char *b = strstr(resp, "\r\n\r\n");

	return b != NULL ? b + 4 : "";
}

Test(http, csv_formula_names_stay_text, .timeout = 60)
{
	tally_http_opts_t o = {0};
	static const char *const regions[] = {
		"=HYPERLINK(\"http://x.example/\",\"click\")", "+1", "-2", "@SUM(A1:A9)", "\tTab",
		"\rReturn", "Saint-Denis", "A=B",
	};
	static const char *const expect[] = {
		"\r\nregion,,\"'=HYPERLINK(\"\"http://x.example/\"\",\"\"click\"\")\",,0,,0,0.000000\r\n",
		"\r\nregion,,\"'+1\",,0,,0,0.000000\r\n",
		"\r\nregion,,\"'-2\",,0,,0,0.000000\r\n",
		"\r\nregion,,\"'@SUM(A1:A9)\",,0,,0,0.000000\r\n",
		"\r\nregion,,\"'\tTab\",,0,,0,0.000000\r\n",
		"\r\nregion,,\"'\rReturn\",,0,,0,0.000000\r\n",
		"\r\nregion,,Saint-Denis,,0,,0,0.000000\r\n",
		"\r\nregion,,A=B,,0,,0,0.000000\r\n",
	};
	tally_uuid_t cid = fixture_candidate_id(100);
	tally_candidate_reg_t cand = {cid, "+Candidate", "=Party", NULL, NULL};
	char line[256], id[40];
	env_t e;
	resp_t r;

	env_start(&e, &o);
	for (size_t i = 0; i < sizeof(regions) / sizeof(regions[0]); i++)
		cr_assert_eq(tally_registry_add_region(e.reg, regions[i], NULL), TALLY_REFUSAL_NONE);
	cr_assert_eq(tally_registry_add_party(e.reg, "=Party", NULL), TALLY_REFUSAL_NONE);
	cr_assert_eq(tally_registry_add_candidate(e.reg, &cand, NULL), TALLY_REFUSAL_NONE);
	tally_snapshot_destroy(wait_rendered(&e));
	r = http_get(&e, "/api/results.csv");
	cr_assert_eq(r.status, 200);
	for (size_t i = 0; i < sizeof(expect) / sizeof(expect[0]); i++)
		cr_assert(strstr(r.body, expect[i]) != NULL, "no %s in %s", expect[i], r.body);
	snprintf(line, sizeof(line), "\r\ncandidate,%s,\"'+Candidate\",\"'=Party\",0,0.000000,,\r\n",
	         tally_uuid_format(&cid, id));
	cr_assert(strstr(r.body, line) != NULL, "no %s in %s", line, r.body);
	cr_assert(strstr(r.body, "\r\nparty,,\"'=Party\",\"'=Party\",0,0.000000,,\r\n") != NULL, "%s",
	          r.body);
	/* Nothing starts a field with a formula character unquoted. */
	cr_assert_null(strstr(r.body, ",="));
	cr_assert_null(strstr(r.body, ",+"));
	cr_assert_null(strstr(r.body, ",@"));
	cr_assert_null(strstr(r.body, ",-"));
	/* The JSON keeps the names as they are. */
	resp_free(&r);
	r = http_get(&e, "/api/results");
	cr_assert(strstr(r.body, "\"region\":\"=HYPERLINK(\\\"http://x.example/\\\",\\\"click\\\")\"") != NULL,
	          "%s", r.body);
	resp_free(&r);
	env_stop(&e);
}

Test(http, conflicting_content_length, .timeout = 60)
{
	tally_http_opts_t o = {.admin = admin_cb, .admin_token = "tok"};
	char out[4096];
	env_t e;

	env_start(&e, &o);
	/* Two lengths that differ: 400, nothing done, the connection closed. */
	raw_request(&e,
	            "POST /api/election/close HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer tok\r\n"
	            "Content-Length: 0\r\nContent-Length: 40\r\n\r\n",
	            out, sizeof(out));
	cr_assert(strncmp(out, "HTTP/1.1 400 ", 13) == 0, "%s", out);
	cr_assert_str_eq(raw_body(out), "{\"error\":\"conflicting Content-Length headers\"}\n");
	cr_assert_eq(status_of(&e), TALLY_ELECTION_OPEN);
	raw_request(&e, "GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\ncontent-length: 3\r\n"
	                "\r\nabc",
	            out, sizeof(out));
	cr_assert(strncmp(out, "HTTP/1.1 400 ", 13) == 0, "%s", out);
	cr_assert_str_eq(raw_body(out), "{\"error\":\"conflicting Content-Length headers\"}\n");
	/* The same length twice is one length (RFC 9110 8.6): served. */
	raw_request(&e,
	            "POST /api/election/close HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer tok\r\n"
	            "Content-Length: 2\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
	            out, sizeof(out));
	cr_assert(strncmp(out, "HTTP/1.1 200 ", 13) == 0, "%s", out);
	cr_assert_eq(status_of(&e), TALLY_ELECTION_CLOSED);
	env_stop(&e);
}

Test(http, metrics_accept_q_values, .timeout = 60)
{
	tally_http_opts_t o = {0};
	static const struct {
		const char *accept;
		bool om;
	} cases[] = {
		{"Accept: application/openmetrics-text;q=0", false},
		{"Accept: application/openmetrics-text; version=1.0.0; q=0.0, text/plain", false},
		{"Accept: application/openmetrics-text;Q=0.000", false},
		{"Accept: text/plain;q=0.9, application/openmetrics-text;q=0.5", false},
		{"Accept: application/openmetrics-textual", false},
		{"Accept: */*", false},
		{"Accept: application/*", false},
		{"Accept: application/openmetrics-text;q=2", false},
		{"Accept: application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5", true},
		{"Accept: application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
		 "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1", true},
		{"Accept: application/openmetrics-text;q=0.001, */*;q=0.001", true},
		{"Accept: APPLICATION/OpenMetrics-Text", true},
		{"Accept: text/plain;q=0.5, application/openmetrics-text;q=0.5", true},
		{"Accept: application/openmetrics-text;note=\"a,b;q=0\";q=1", true},
		{"Accept: application/openmetrics-text;q=0, application/openmetrics-text;q=0.4", true},
	};
	env_t e;

	env_start(&e, &o);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *hdrs[] = {cases[i].accept, NULL};
		resp_t r = http_req(&e, NULL, "/metrics", hdrs, NULL, NULL);

		cr_assert_eq(r.status, 200);
		cr_assert_str_eq(r.ctype, cases[i].om
		                              ? "application/openmetrics-text; version=1.0.0; charset=utf-8"
		                              : "text/plain; version=0.0.4; charset=utf-8",
		                 "%s", cases[i].accept);
		cr_assert_eq(r.len > 6 && strcmp(r.body + r.len - 6, "# EOF\n") == 0, cases[i].om,
		             "%s", cases[i].accept);
		resp_free(&r);
	}
	env_stop(&e);
}

Test(http, slow_request_cut_at_deadline, .timeout = 60)
{
	/* Inactivity alone (10 s) never fires: the clients send a byte every 250 ms. */
	tally_http_opts_t o = {.request_timeout_s = 2, .connection_timeout_s = 10, .heartbeat_ms = 300};
	static const char head[] = "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: aaaaaaaaaaaaaaaaaaaaaaaaa"
	                           "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
	static const char post[] = "POST /api/election/open HTTP/1.1\r\nHost: x\r\n"
	                           "Content-Length: 100\r\n\r\n";
	int fd_head, fd_body, fd_ok;
	double t0, closed_head = 0, closed_body = 0;
	tally_http_stats_t st;
	sse_t sse = {0};
	pthread_t t;
	char out[4096];
	env_t e;
	resp_t r;
	size_t i = 0;

	env_start(&e, &o);
	/* A stream client that started before: its request arrived, so it is never cut. */
	sse.e = &e;
	pthread_mutex_init(&sse.mu, NULL);
	pthread_create(&t, NULL, sse_thread, &sse);
	{
		tally_snapshot_t *snap = wait_rendered(&e);

		sse_wait_version(&sse, snap->version);
		tally_snapshot_destroy(snap);
	}
	/* A kept-alive client that asks in time, then idles within the bound. */
	fd_ok = tcp_connect(tally_http_port(e.http));
	fd_head = tcp_connect(tally_http_port(e.http));
	fd_body = tcp_connect(tally_http_port(e.http));
	cr_assert_eq(send(fd_body, post, strlen(post), MSG_NOSIGNAL), (ssize_t)strlen(post));
	t0 = tally_mono_ns() / 1e9;
	while (tally_mono_ns() / 1e9 - t0 < 5.0 && (closed_head == 0 || closed_body == 0)) {
		if (closed_head == 0) {
			if (send(fd_head, head + i % (sizeof(head) - 1), 1, MSG_NOSIGNAL) != 1 ||
			    closed_within(fd_head, 0))
				closed_head = tally_mono_ns() / 1e9 - t0;
		}
		if (closed_body == 0) {
			if (send(fd_body, "x", 1, MSG_NOSIGNAL) != 1 || closed_within(fd_body, 0))
				closed_body = tally_mono_ns() / 1e9 - t0;
		}
		i++;
		usleep(250000);
	}
	cr_assert_neq(closed_head, 0, "a client sending its headers a byte at a time was not cut off");
	cr_assert_neq(closed_body, 0, "a client sending its body a byte at a time was not cut off");
	/* Cut at the 2 s bound (checked every render pass), not before. */
	cr_assert(closed_head >= 1.7 && closed_head < 3.0, "headers cut after %.2f s", closed_head);
	cr_assert(closed_body >= 1.7 && closed_body < 3.0, "body cut after %.2f s", closed_body);
	/* The body's 100 bytes never all came: nothing was done. */
	cr_assert_eq(status_of(&e), TALLY_ELECTION_OPEN);
	/* fd_ok sent nothing for as long: it was cut too (the third; counted before the cut). */
	cr_assert(closed_within(fd_ok, 1000));
	close(fd_ok);
	tally_http_get_stats(e.http, &st);
	cr_assert_eq(st.requests_timed_out, 3, "%" PRIu64, st.requests_timed_out);
	/* A connection kept alive after an answer (MHD keeps those answered once the body has
	 * come) has the bound again for its next request: in time it is served... */
	{
		static const char admin[] = "POST /api/election/open HTTP/1.1\r\nHost: x\r\n"
		                            "Content-Length: 2\r\n\r\n{}";
		static const char again[] = "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";

		fd_ok = tcp_connect(tally_http_port(e.http));
		cr_assert_eq(send(fd_ok, admin, sizeof(admin) - 1, MSG_NOSIGNAL), (ssize_t)sizeof(admin) - 1);
		read_until_closed(fd_ok, out, sizeof(out), 300);
		cr_assert(strncmp(out, "HTTP/1.1 403 ", 13) == 0, "%s", out);
		cr_assert_null(strstr(out, "Connection: close"), "%s", out);
		usleep(1000000);
		cr_assert_eq(send(fd_ok, again, sizeof(again) - 1, MSG_NOSIGNAL), (ssize_t)sizeof(again) - 1);
		read_until_closed(fd_ok, out, sizeof(out), 2000);
		cr_assert(strncmp(out, "HTTP/1.1 200 ", 13) == 0, "%s", out);
		cr_assert_str_eq(raw_body(out), "{\"status\":\"ok\"}\n");
		close(fd_ok);
		/* ... and silent, it is cut at the bound counted from the answer. */
		fd_ok = tcp_connect(tally_http_port(e.http));
		cr_assert_eq(send(fd_ok, admin, sizeof(admin) - 1, MSG_NOSIGNAL), (ssize_t)sizeof(admin) - 1);
		read_until_closed(fd_ok, out, sizeof(out), 300);
		cr_assert(strncmp(out, "HTTP/1.1 403 ", 13) == 0, "%s", out);
		t0 = tally_mono_ns() / 1e9;
		cr_assert(closed_within(fd_ok, 4000), "an idle kept-alive connection was not cut");
		t0 = tally_mono_ns() / 1e9 - t0;
		cr_assert(t0 >= 1.4 && t0 < 2.5, "cut %.2f s after the answer", t0);
	}
	close(fd_ok);
	close(fd_head);
	close(fd_body);

	/* The stream, open for more than the bound, is still served (heartbeats keep coming). */
	tally_http_get_stats(e.http, &st);
	cr_assert_eq(st.stream_clients, 1);
	cr_assert_eq(st.requests_timed_out, 4, "%" PRIu64, st.requests_timed_out);
	pthread_mutex_lock(&sse.mu);
	sse.len = 0;
	pthread_mutex_unlock(&sse.mu);
	usleep(700000);
	pthread_mutex_lock(&sse.mu);
	cr_assert(sse.len > 0 && strstr(sse.data, ": keepalive\n\n") != NULL);
	sse.stop = 1;
	pthread_mutex_unlock(&sse.mu);
	pthread_join(t, NULL);
	free(sse.data);
	pthread_mutex_destroy(&sse.mu);

	r = http_get(&e, "/healthz");
	cr_assert_eq(r.status, 200);
	resp_free(&r);
	env_stop(&e);
}

/*
 * Open /api/stream from a local address; @returns the socket once the response head came,
 * with its status in *status (the socket is closed and -1 returned unless it is 200).
 */
static int
raw_stream(const env_t *e, const char *from, int *status, char *body, size_t body_size)
{
	static const char req[] = "GET /api/stream HTTP/1.1\r\nHost: x\r\n\r\n";
	int fd = tcp_connect_from(tally_http_port(e->http), from);
	char buf[8192];
	size_t n = 0;
	double t0 = tally_mono_ns() / 1e9;

	cr_assert_eq(send(fd, req, sizeof(req) - 1, MSG_NOSIGNAL), (ssize_t)(sizeof(req) - 1));
	buf[0] = '\0';
	/* Until the head and (for 200) the first event, or (else) the whole error body. */
	while (strstr(buf, "\r\n\r\n") == NULL ||
	       (strncmp(buf, "HTTP/1.1 200 ", 13) == 0 ? strstr(buf, "\ndata: {") == NULL
	                                                : strstr(buf, "}\n") == NULL)) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		ssize_t k;

		cr_assert_lt(tally_mono_ns() / 1e9 - t0, 5.0, "no answer to /api/stream: %s", buf);
		if (poll(&p, 1, 100) <= 0)
			continue;
		k = recv(fd, buf + n, sizeof(buf) - 1 - n, 0);
		if (k <= 0)
			break;
		n += (size_t)k;
		buf[n] = '\0';
	}
	*status = (int)strtol(buf + 9, NULL, 10);
	snprintf(body, body_size, "%s", raw_body(buf));
	if (*status != 200) {
		close(fd);
		return -1;
	}
	return fd;
}

static resp_t
http_get_from(const env_t *e, const char *path, const char *from)
{
	return http_req(e, NULL, path, NULL, NULL, from);
}

Test(http, streams_leave_room_for_scrapes, .timeout = 60)
{
	/* 12 connections, 8 per address: 9 streams in all, 6 per address (the default, 3/4). */
	tally_http_opts_t o = {.max_connections = 12, .max_connections_per_ip = 8,
	                       .max_stream_clients = 9};
	int fds[12], nfd = 0, status;
	tally_http_stats_t st;
	char body[512];
	env_t e;
	resp_t r;

	env_start(&e, &o);
	/* One address (a proxy, say) takes its 6 streams; the 7th is refused... */
	for (int i = 0; i < 6; i++) {
		fds[nfd] = raw_stream(&e, "127.0.0.1", &status, body, sizeof(body));
		cr_assert_eq(status, 200, "stream %d: %d", i, status);
		nfd++;
	}
	cr_assert_eq(raw_stream(&e, "127.0.0.1", &status, body, sizeof(body)), -1);
	cr_assert_eq(status, 503);
	cr_assert_str_eq(body, "{\"error\":\"too many stream clients from this address\"}\n");
	/* ... while that address still reaches /metrics and /healthz. */
	r = http_get_from(&e, "/metrics", "127.0.0.1");
	cr_assert_eq(r.rc, CURLE_OK, "%s", curl_easy_strerror(r.rc));
	cr_assert_eq(r.status, 200);
	cr_assert_eq(sample(r.body, "tally_registered_voters"), NVOTERS);
	resp_free(&r);
	r = http_get_from(&e, "/healthz", "127.0.0.1");
	cr_assert_eq(r.status, 200);
	cr_assert_str_eq(r.body, "{\"status\":\"ok\"}\n");
	resp_free(&r);
	/* Other addresses take the rest of the 9, then the 10th is refused... */
	for (int i = 0; i < 3; i++) {
		fds[nfd] = raw_stream(&e, i < 2 ? "127.0.0.2" : "127.0.0.3", &status, body, sizeof(body));
		cr_assert_eq(status, 200, "stream %d: %d", 6 + i, status);
		nfd++;
	}
	cr_assert_eq(raw_stream(&e, "127.0.0.4", &status, body, sizeof(body)), -1);
	cr_assert_eq(status, 503);
	cr_assert_str_eq(body, "{\"error\":\"too many stream clients\"}\n");
	tally_http_get_stats(e.http, &st);
	cr_assert_eq(st.stream_clients, 9);
	/* ... and the server still answers scrapes and probes, from old and new addresses. */
	r = http_get_from(&e, "/metrics", "127.0.0.4");
	cr_assert_eq(r.status, 200);
	resp_free(&r);
	r = http_get_from(&e, "/healthz", "127.0.0.1");
	cr_assert_eq(r.status, 200);
	resp_free(&r);
	for (int i = 0; i < nfd; i++)
		close(fds[i]);
	env_stop(&e);
}

Test(http, stream_options_refused)
{
	tally_core_opts_t co = fixture_core_opts(1);
	tally_registry_t *reg = fixture_registry(1, 1, 1, 1, 16);
	tally_core_t *core = tally_core_new(reg, &co, NULL, 0);
	tally_http_opts_t o = {.max_connections = 10, .max_stream_clients = 10};
	tally_http_t *h;
	char err[256];

	cr_assert_null(tally_http_new(core, &o, err, sizeof(err)));
	cr_assert_str_eq(err, "http: invalid options: max_stream_clients (10) must be below "
	                      "max_connections (10), to leave room for other requests");
	o = (tally_http_opts_t){.max_connections_per_ip = 4, .max_streams_per_ip = 4};
	cr_assert_null(tally_http_new(core, &o, err, sizeof(err)));
	cr_assert_str_eq(err, "http: invalid options: max_streams_per_ip (4) must be below "
	                      "max_connections_per_ip (4), to leave room for other requests");
	o = (tally_http_opts_t){.max_connections_per_ip = 4, .max_streams_per_ip = 3,
	                        .max_connections = 10, .max_stream_clients = 9};
	h = tally_http_new(core, &o, err, sizeof(err));
	cr_assert_not_null(h, "%s", err);
	tally_http_destroy(h);
	tally_core_destroy(core);
	tally_registry_destroy(reg);
}

Test(http, departed_stream_client_frees_its_slot, .timeout = 60)
{
	/* The default heartbeat (15 s): the departure must be noticed without one. */
	tally_http_opts_t o = {.max_stream_clients = 1};
	tally_http_stats_t st;
	int fd, status;
	char body[512];
	double t0, freed;
	env_t e;

	env_start(&e, &o);
	fd = raw_stream(&e, "127.0.0.1", &status, body, sizeof(body));
	cr_assert_eq(status, 200);
	cr_assert_eq(raw_stream(&e, "127.0.0.2", &status, body, sizeof(body)), -1);
	cr_assert_eq(status, 503);
	/* Nothing new to send, so the stream is parked; the client leaves. */
	usleep(200000);
	close(fd);
	t0 = tally_mono_ns() / 1e9;
	do {
		tally_http_get_stats(e.http, &st);
		freed = tally_mono_ns() / 1e9 - t0;
		cr_assert_lt(freed, 5.0, "the departed client's slot is still taken");
		usleep(5000);
	} while (st.stream_clients != 0);
	cr_assert_lt(freed, 1.0, "the slot was freed only after %.2f s", freed);
	cr_assert_eq(st.streams_gone, 1);
	/* The slot is free for the next client at once. */
	fd = raw_stream(&e, "127.0.0.2", &status, body, sizeof(body));
	cr_assert_eq(status, 200);
	cr_assert(strstr(body, "event: results\n") != NULL, "%s", body);
	close(fd);
	env_stop(&e);
}

/* ---- /api/contests ------------------------------------------------------------------------------ */

#define NKREGIONS 30

/* The env with 30 one-region constituencies of 2 candidates (parties 0 and 1) and no
 * national race; contest k's candidates are fixture ids 100 + 2k and 101 + 2k; voter i
 * (region r) votes for 100 + 2r + (i % 3 == 0). Contest 7's name needs escaping. */
static void
env_start_contests(env_t *e, tally_http_opts_t *o)
{
	tally_core_opts_t co = fixture_core_opts(1);
	char err[256], id[16], name[64], region[32], cname[32];

	memset(e, 0, sizeof(*e));
	pthread_mutex_init(&e->admin_mu, NULL);
	pthread_mutex_init(&e->served_mu, NULL);
	e->reg = fixture_registry(NPARTY, 0, NKREGIONS, NVOTERS, NVOTERS);
	for (uint32_t k = 0; k < NKREGIONS; k++) {
		const char *regions[1] = {region};
		tally_contest_reg_t c = {id, name, "constituency", regions, 1};

		snprintf(id, sizeof(id), "C%02u", k);
		snprintf(name, sizeof(name), k == 7 ? "Quote \"Q\" <b>&amp;</b> %u" : "Seat %02u", k);
		snprintf(region, sizeof(region), "Region %u", k);
		cr_assert_eq(tally_registry_add_contest(e->reg, &c, NULL), TALLY_REFUSAL_NONE);
		for (uint32_t j = 0; j < 2; j++) {
			char party[16];
			tally_candidate_reg_t cr = {fixture_candidate_id(100 + 2 * k + j), cname, party,
			                            NULL, id};

			snprintf(party, sizeof(party), "Party %u", j);
			snprintf(cname, sizeof(cname), "Candidate %u-%u", k, j);
			cr_assert_eq(tally_registry_add_candidate(e->reg, &cr, NULL), TALLY_REFUSAL_NONE);
		}
	}
	e->core = tally_core_new(e->reg, &co, err, sizeof(err));
	cr_assert_not_null(e->core, "%s", err);
	o->cb_arg = e;
	o->log = test_log;
	o->render_interval_ms = 20;
	e->http = tally_http_new(e->core, o, err, sizeof(err));
	cr_assert_not_null(e->http, "%s", err);
	cr_assert_eq(tally_http_start(e->http, err, sizeof(err)), 0, "%s", err);
	snprintf(e->base, sizeof(e->base), "http://127.0.0.1:%u", (unsigned)tally_http_port(e->http));
	{
		tally_vote_t *v = calloc(NVOTERS, sizeof(*v));
		tally_batch_t b;

		for (uint64_t i = 0; i < NVOTERS; i++) {
			uint32_t r = fixture_region_of(i, NKREGIONS);

			fixture_vote(&v[i], i, 0);
			v[i].candidate_id = fixture_candidate_id(100 + 2 * r + (i % 3 == 0));
		}
		tally_batch_init(&b, v, NVOTERS, 0);
		tally_core_process(e->core, 0, &b);
		cr_assert_eq(b.accepted, NVOTERS);
		free(v);
	}
}

static json_t *
get_json(const env_t *e, const char *path, long want)
{
	resp_t r = http_get(e, path);
	json_t *j;

	cr_assert_eq(r.status, want, "%s: %ld %s", path, r.status, r.body);
	j = parse_json(&r);
	resp_free(&r);
	return j;
}

Test(http, contests_sort_filter_page, .timeout = 60)
{
	tally_http_opts_t o = {0};
	tally_snapshot_t *snap;
	env_t e;
	json_t *j, *rows, *row, *seen = json_object();
	size_t i;
	uint64_t prev = UINT64_MAX, led = 0, seats_led = 0, votes_sum = 0;

	env_start_contests(&e, &o);
	snap = wait_rendered(&e);

	/* Default: every contest (30 < 50), by name; votes per contest = its candidates'. */
	j = get_json(&e, "/api/contests", 200);
	cr_assert_eq(jint(j, "total"), NKREGIONS);
	cr_assert_eq(jint(j, "matched"), NKREGIONS);
	cr_assert_eq(jint(j, "version"), (json_int_t)snap->version);
	cr_assert_str_eq(jstr(j, "report"), "unofficial-partial");
	rows = json_object_get(j, "contests");
	cr_assert_eq(json_array_size(rows), NKREGIONS);
	cr_assert_str_eq(jstr(json_array_get(rows, 0), "contest_name"), "Quote \"Q\" <b>&amp;</b> 7");
	cr_assert_str_eq(jstr(json_array_get(rows, 1), "contest_name"), "Seat 00");
	json_array_foreach(rows, i, row) {
		const char *id = jstr(row, "contest_id");
		uint32_t k = (uint32_t)strtoul(id + 1, NULL, 10);
		uint64_t a = snap->candidates[2 * k], b = snap->candidates[2 * k + 1];

		cr_assert_eq(jint(row, "total_votes"), (json_int_t)(a + b), "%s", id);
		cr_assert_eq(jint(row, "registered"), (json_int_t)snap->region_registered[k]);
		cr_assert_str_eq(jstr(row, "status"), "counting");
		cr_assert_str_eq(jstr(row, "level"), "constituency");
		if (a == b) {
			cr_assert(json_is_true(json_object_get(row, "tie")));
			cr_assert(json_is_null(json_object_get(row, "leader")));
		} else {
			cr_assert_str_eq(jstr(row, "party_affiliation"), a > b ? "Party 0" : "Party 1");
			cr_assert_eq(jint(row, "majority"), (json_int_t)(a > b ? a - b : b - a));
			led++;
		}
		votes_sum += a + b;
	}
	cr_assert_eq(votes_sum, NVOTERS);
	/* Seats: led, none won while counting. */
	json_array_foreach(json_object_get(j, "seats"), i, row) {
		seats_led += (uint64_t)jint(row, "seats_led");
		cr_assert_eq(jint(row, "seats_won"), 0);
		cr_assert_eq(jint(row, "contests"), NKREGIONS);
	}
	cr_assert_eq(seats_led, led);
	json_decref(j);
	/* /api/results has the seats too. */
	j = get_json(&e, "/api/results", 200);
	seats_led = 0;
	json_array_foreach(json_object_get(j, "seats"), i, row)
		seats_led += (uint64_t)jint(row, "seats_led");
	cr_assert_eq(seats_led, led);
	cr_assert_str_eq(jstr(j, "report"), "unofficial-partial");
	json_decref(j);

	/* By votes: most first; ascending when asked. */
	j = get_json(&e, "/api/contests?sort=votes", 200);
	json_array_foreach(json_object_get(j, "contests"), i, row) {
		cr_assert_leq((uint64_t)jint(row, "total_votes"), prev);
		prev = (uint64_t)jint(row, "total_votes");
	}
	json_decref(j);
	j = get_json(&e, "/api/contests?sort=votes&order=asc&limit=1", 200);
	cr_assert_eq(jint(json_array_get(json_object_get(j, "contests"), 0), "total_votes"),
	             (json_int_t)prev);
	json_decref(j);

	/* Pages of 7 to the last row: every contest once. */
	for (int off = 0; off < NKREGIONS; off += 7) {
		char path[96];

		snprintf(path, sizeof(path), "/api/contests?sort=id&limit=7&offset=%d", off);
		j = get_json(&e, path, 200);
		rows = json_object_get(j, "contests");
		cr_assert_eq(json_array_size(rows), (size_t)(off + 7 <= NKREGIONS ? 7 : NKREGIONS - off));
		json_array_foreach(rows, i, row) {
			cr_assert_null(json_object_get(seen, jstr(row, "contest_id")));
			json_object_set_new(seen, jstr(row, "contest_id"), json_true());
		}
		json_decref(j);
	}
	cr_assert_eq(json_object_size(seen), NKREGIONS);
	j = get_json(&e, "/api/contests?offset=1000", 200);
	cr_assert_eq(json_array_size(json_object_get(j, "contests")), 0);
	json_decref(j);

	/* Filters: text in the name (any case), the leading party, the status. */
	j = get_json(&e, "/api/contests?q=quote", 200);
	cr_assert_eq(jint(j, "matched"), 1);
	cr_assert_str_eq(jstr(json_array_get(json_object_get(j, "contests"), 0), "contest_id"), "C07");
	json_decref(j);
	j = get_json(&e, "/api/contests?party=Party%200&limit=1000", 200);
	json_array_foreach(json_object_get(j, "contests"), i, row)
		cr_assert_str_eq(jstr(row, "party_affiliation"), "Party 0");
	json_decref(j);
	j = get_json(&e, "/api/contests?status=declared", 200);
	cr_assert_eq(jint(j, "matched"), 0);
	json_decref(j);

	/* The same pages as CSV: a header and the rows; the quoted name is CSV-escaped. */
	{
		resp_t r = http_get(&e, "/api/contests.csv?sort=id&limit=3");
		int lines = 0;

		cr_assert_eq(r.status, 200);
		cr_assert(strncmp(r.ctype, "text/csv", 8) == 0, "%s", r.ctype);
		cr_assert(strncmp(r.body, "contest_id,contest_name,level,status,total_votes,", 49) == 0,
		          "%s", r.body);
		for (const char *p = r.body; *p != '\0'; p++)
			lines += *p == '\n';
		cr_assert_eq(lines, 4, "%s", r.body);
		cr_assert_not_null(strstr(r.body, "\r\nC00,Seat 00,constituency,counting,"), "%s", r.body);
		resp_free(&r);
		r = http_get(&e, "/api/contests.csv?q=quote");
		cr_assert_not_null(strstr(r.body, "\r\nC07,\"Quote \"\"Q\"\" <b>&amp;</b> 7\","),
		                   "%s", r.body);
		resp_free(&r);
	}

	/* One contest, with its candidates most votes first. */
	j = get_json(&e, "/api/contests/C03", 200);
	rows = json_object_get(j, "candidates");
	cr_assert_eq(json_array_size(rows), 2);
	cr_assert_geq(jint(json_array_get(rows, 0), "total_votes"),
	              jint(json_array_get(rows, 1), "total_votes"));
	cr_assert_eq(jint(json_array_get(rows, 0), "total_votes") +
	             jint(json_array_get(rows, 1), "total_votes"),
	             jint(json_object_get(j, "contest"), "total_votes"));
	json_decref(j);
	json_decref(get_json(&e, "/api/contests/C99", 404));
	json_decref(get_json(&e, "/api/contests?sort=colour", 400));
	json_decref(get_json(&e, "/api/contests?limit=0", 400));
	json_decref(get_json(&e, "/api/contests?limit=1001", 400));
	json_decref(get_json(&e, "/api/contests?offset=-1", 400));
	json_decref(get_json(&e, "/api/contests?order=up", 400));

	/* Closed: every contest declared, the seats won. */
	cr_assert_eq(tally_core_election_close(e.core), 0);
	tally_snapshot_destroy(snap);
	snap = wait_rendered(&e);
	j = get_json(&e, "/api/contests?status=declared", 200);
	cr_assert_eq(jint(j, "matched"), NKREGIONS);
	cr_assert_str_eq(jstr(j, "report"), "unofficial-complete");
	seats_led = 0;
	json_array_foreach(json_object_get(j, "seats"), i, row) {
		seats_led += (uint64_t)jint(row, "seats_won");
		cr_assert_eq(jint(row, "seats_led"), 0);
	}
	cr_assert_eq(seats_led, led);
	json_decref(j);
	json_decref(seen);
	tally_snapshot_destroy(snap);
	env_stop(&e);
}

/*
 * The Random-User-API client against a local server (tests/support/randomuser_server.c,
 * libmicrohttpd in this process) that serves the API's JSON shape from a small deterministic
 * generator: batching and the field mapping, gender alternating for candidates, retries of
 * 503 and 429 (Retry-After honoured), errors that fail at once (404, malformed JSON, a
 * missing field, a short answer), a refused port, and the rate limit.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include <tally/error.h>
#include <tally/randomuser.h>

#include "randomuser_server.h"
#include "testutil.h"

static rusrv_t *srv;

static void
srv_start(void)
{
	srv = rusrv_start();
}

static void
srv_stop(void)
{
	rusrv_stop(srv);
	srv = NULL;
}


static tally_randomuser_t *
client(const char *suffix, tally_randomuser_opts_t *o)
{
	char url[128], err[256] = "";
	tally_randomuser_t *ru;

	snprintf(url, sizeof(url), "%s%s", rusrv_url(srv), suffix);
	ru = tally_randomuser_new(url, o, err, sizeof(err));
	cr_assert_not_null(ru, "tally_randomuser_new: %s", err);
	return ru;
}

/* Fast defaults for tests: no rate limit, 10 ms backoff. */
static tally_randomuser_opts_t
fast_opts(void)
{
	tally_randomuser_opts_t o;

	tally_randomuser_opts_init(&o);
	o.requests_per_s = 0;
	o.initial_backoff_ms = 10;
	o.max_backoff_ms = 40;
	o.timeout_ms = 5000;
	return o;
}

TestSuite(randomuser, .init = srv_start, .fini = srv_stop, .timeout = 30);

/* ---- voters ---------------------------------------------------------------------------- */

typedef struct kept {
	char id[64], name[64], dob[16], gender[16], nat[8], reg[32], street[64], city[32];
	char state[32], country[32], postcode[32], email[64], phone[32], cell[32], pic[96];
	int age;
} kept_t;

typedef struct voters {
	char (*ids)[40];
	size_t n;
	kept_t k0, k4, k1233;
} voters_t;

static void
keep(kept_t *k, const tally_randomuser_voter_t *v)
{
#define K(f, src) snprintf(k->f, sizeof(k->f), "%s", v->src)
	K(id, voter_id); K(name, voter_name); K(dob, date_of_birth); K(gender, gender);
	K(nat, nationality); K(reg, registration_number); K(street, address_street);
	K(city, address_city); K(state, address_state); K(country, address_country);
	K(postcode, address_postcode); K(email, email); K(phone, phone_number);
	K(cell, cell_number); K(pic, picture);
#undef K
	k->age = v->registered_age;
}

static int
on_voter(const tally_randomuser_voter_t *v, void *arg)
{
	voters_t *vs = arg;

	snprintf(vs->ids[vs->n], sizeof(vs->ids[0]), "%s", v->voter_id);
	if (vs->n == 0)
		keep(&vs->k0, v);
	else if (vs->n == 4)
		keep(&vs->k4, v);
	else if (vs->n == 1233)
		keep(&vs->k1233, v);
	vs->n++;
	return 0;
}

static int
cmp_id(const void *a, const void *b)
{
	return strcmp(a, b);
}

static int
count_progress(size_t done, size_t total, void *arg)
{
	size_t *calls = arg;

	cr_assert_eq(total, 1234);
	cr_assert_eq(done, calls[0] == 12 ? 1234 : (calls[0] + 1) * 100);
	calls[0]++;
	return 0;
}

Test(randomuser, voters_in_batches_with_the_original_mapping)
{
	tally_randomuser_opts_t o = fast_opts();
	voters_t vs = { .ids = calloc(1300, sizeof(*vs.ids)) };
	size_t distinct = 0, calls = 0;
	char err[256] = "";
	tally_randomuser_t *ru;
	int rc;

	o.progress = count_progress;
	o.progress_arg = &calls;
	ru = client("", &o);
	rc = tally_randomuser_fetch_voters(ru, 1234, on_voter, &vs, err, sizeof(err));
	cr_assert_eq(rc, 0, "fetch: %d %s", rc, err);
	cr_assert_eq(vs.n, 1234);
	cr_assert_eq(calls, 13);
	cr_assert_eq(rusrv_requests(srv), 13);
	cr_assert_eq(tally_randomuser_requests(ru), 13);
	cr_assert_str_eq(rusrv_query(srv, 0), "nat=gb&results=100");
	cr_assert_str_eq(rusrv_query(srv, 11), "nat=gb&results=100");
	cr_assert_str_eq(rusrv_query(srv, 12), "nat=gb&results=34");

	qsort(vs.ids, vs.n, sizeof(vs.ids[0]), cmp_id);
	for (size_t i = 0; i < vs.n; i++)
		distinct += i == 0 || strcmp(vs.ids[i], vs.ids[i - 1]) != 0;
	cr_assert_eq(distinct, 1234);

	/* User 0: postcode a number. */
	cr_assert_str_eq(vs.k0.id, "00000000-0000-4000-8000-000000000000");
	cr_assert_str_eq(vs.k0.name, "First0 Last0");
	cr_assert_str_eq(vs.k0.dob, "1940-01-01");
	cr_assert_str_eq(vs.k0.gender, "male");
	cr_assert_str_eq(vs.k0.nat, "GB");
	cr_assert_str_eq(vs.k0.reg, "user0");
	cr_assert_str_eq(vs.k0.street, "1 Street 0");
	cr_assert_str_eq(vs.k0.city, "City0");
	cr_assert_str_eq(vs.k0.state, "State0");
	cr_assert_str_eq(vs.k0.country, "United Kingdom");
	cr_assert_str_eq(vs.k0.postcode, "10000");
	cr_assert_str_eq(vs.k0.email, "user0@example.com");
	cr_assert_str_eq(vs.k0.phone, "01000000000");
	cr_assert_str_eq(vs.k0.cell, "07000000000");
	cr_assert_str_eq(vs.k0.pic, "https://randomuser.me/api/portraits/men/0.jpg");
	cr_assert_eq(vs.k0.age, 0);

	/* User 4: postcode a string, street number 5. */
	cr_assert_str_eq(vs.k4.id, "00000000-0000-4000-8000-000000000004");
	cr_assert_str_eq(vs.k4.name, "First4 Last4");
	cr_assert_str_eq(vs.k4.dob, "1944-05-05");
	cr_assert_str_eq(vs.k4.gender, "male");
	cr_assert_str_eq(vs.k4.street, "5 Street 4");
	cr_assert_str_eq(vs.k4.postcode, "AB4 1CD");
	cr_assert_str_eq(vs.k4.pic, "https://randomuser.me/api/portraits/men/4.jpg");
	cr_assert_eq(vs.k4.age, 4);

	/* User 1233 (last of the short batch, a multiple of 3): postcode a number. */
	cr_assert_str_eq(vs.k1233.id, "00000000-0000-4000-8000-0000000004d1");
	cr_assert_str_eq(vs.k1233.name, "First1233 Last1233");
	cr_assert_str_eq(vs.k1233.dob, "1973-10-02");
	cr_assert_str_eq(vs.k1233.reg, "user1233");
	cr_assert_str_eq(vs.k1233.street, "34 Street 33");
	cr_assert_str_eq(vs.k1233.city, "City3");
	cr_assert_str_eq(vs.k1233.state, "State1");
	cr_assert_str_eq(vs.k1233.postcode, "11233");
	cr_assert_str_eq(vs.k1233.email, "user1233@example.com");
	cr_assert_str_eq(vs.k1233.phone, "01000001233");
	cr_assert_eq(vs.k1233.age, 13);

	tally_randomuser_destroy(ru);
	free(vs.ids);
}

/* ---- candidates ------------------------------------------------------------------------ */

typedef struct cands {
	size_t n;
	char name[4][64], gender[4][8], photo[4][96], bio[4][256], platform[4][256];
} cands_t;

static int
on_cand(const tally_randomuser_candidate_t *c, void *arg)
{
	cands_t *cs = arg;

	cr_assert_eq(c->index, cs->n);
	snprintf(cs->name[cs->n], sizeof(cs->name[0]), "%s", c->candidate_name);
	snprintf(cs->gender[cs->n], sizeof(cs->gender[0]), "%s", c->gender);
	snprintf(cs->photo[cs->n], sizeof(cs->photo[0]), "%s", c->photo_url);
	snprintf(cs->bio[cs->n], sizeof(cs->bio[0]), "%s", c->biography);
	snprintf(cs->platform[cs->n], sizeof(cs->platform[0]), "%s", c->campaign_platform);
	cs->n++;
	return 0;
}

Test(randomuser, candidates_alternate_gender_one_request_each)
{
	tally_randomuser_opts_t o = fast_opts();
	cands_t a = { 0 }, b = { 0 };
	char err[256] = "";
	tally_randomuser_t *ru;

	o.seed = 42;
	ru = client("", &o);
	cr_assert_eq(tally_randomuser_fetch_candidates(ru, 4, on_cand, &a, err, sizeof(err)), 0,
	             "%s", err);
	cr_assert_eq(a.n, 4);
	cr_assert_eq(rusrv_requests(srv), 4);
	cr_assert_str_eq(rusrv_query(srv, 0), "nat=gb&results=1&gender=male");
	cr_assert_str_eq(rusrv_query(srv, 1), "nat=gb&results=1&gender=female");
	cr_assert_str_eq(rusrv_query(srv, 2), "nat=gb&results=1&gender=male");
	cr_assert_str_eq(rusrv_query(srv, 3), "nat=gb&results=1&gender=female");
	cr_assert_str_eq(a.gender[0], "male");
	cr_assert_str_eq(a.gender[1], "female");
	cr_assert_str_eq(a.name[0], "First0 Last0");
	cr_assert_str_eq(a.name[3], "First3 Last3");
	cr_assert_str_eq(a.photo[1], "https://randomuser.me/api/portraits/women/1.jpg");
	cr_assert_eq(strncmp(a.bio[0], "First0 Last0 has worked as ", 27), 0, "%s", a.bio[0]);
	cr_assert_eq(strncmp(a.platform[2], "Promises ", 9), 0, "%s", a.platform[2]);
	tally_randomuser_destroy(ru);

	/* Same seed, same texts (the names differ: the server's users move on). */
	rusrv_reset_users(srv);
	ru = client("", &o);
	cr_assert_eq(tally_randomuser_fetch_candidates(ru, 4, on_cand, &b, err, sizeof(err)), 0);
	for (int i = 0; i < 4; i++) {
		cr_assert_str_eq(a.bio[i], b.bio[i]);
		cr_assert_str_eq(a.platform[i], b.platform[i]);
	}
	cr_assert_str_neq(a.platform[0], a.platform[1]);
	tally_randomuser_destroy(ru);
}

/* ---- retries --------------------------------------------------------------------------- */

static int
count_only(const tally_randomuser_voter_t *v, void *arg)
{
	(void)v;
	(*(size_t *)arg)++;
	return 0;
}

Test(randomuser, retries_503_then_succeeds)
{
	tally_randomuser_opts_t o = fast_opts();
	size_t n = 0;
	char err[256] = "";
	tally_randomuser_t *ru;

	rusrv_set_mode(srv, RUSRV_503_TWICE);
	ru = client("", &o);
	cr_assert_eq(tally_randomuser_fetch_voters(ru, 10, count_only, &n, err, sizeof(err)), 0,
	             "%s", err);
	cr_assert_eq(n, 10);
	cr_assert_eq(rusrv_requests(srv), 3);
	cr_assert_eq(tally_randomuser_requests(ru), 3);
	tally_randomuser_destroy(ru);
}

Test(randomuser, honours_retry_after_on_429)
{
	tally_randomuser_opts_t o = fast_opts();
	size_t n = 0;
	char err[256] = "";
	tally_randomuser_t *ru;
	double t0, elapsed;

	rusrv_set_mode(srv, RUSRV_429_ONCE);
	ru = client("", &o);
	t0 = test_now_s();
	cr_assert_eq(tally_randomuser_fetch_voters(ru, 5, count_only, &n, err, sizeof(err)), 0,
	             "%s", err);
	elapsed = test_now_s() - t0;
	cr_assert_eq(n, 5);
	cr_assert_eq(rusrv_requests(srv), 2);
	cr_assert_geq(elapsed, 1.0, "elapsed %.3f s", elapsed);
	cr_assert_lt(elapsed, 3.0, "elapsed %.3f s", elapsed);
	tally_randomuser_destroy(ru);
}

Test(randomuser, retries_run_out_with_the_last_status)
{
	tally_randomuser_opts_t o = fast_opts();
	size_t n = 0;
	char err[256] = "", want[256];
	tally_randomuser_t *ru;

	rusrv_set_mode(srv, RUSRV_503_TWICE);
	o.max_retries = 1;
	ru = client("", &o);
	cr_assert_eq(tally_randomuser_fetch_voters(ru, 5, count_only, &n, err, sizeof(err)),
	             TALLY_EIO);
	snprintf(want, sizeof(want),
	         "could not fetch \"http://127.0.0.1:%d/api/\" after 2 attempts: HTTP status 503",
	         rusrv_port(srv));
	cr_assert_str_eq(err, want);
	cr_assert_eq(rusrv_requests(srv), 2);
	tally_randomuser_destroy(ru);
}

Test(randomuser, retries_a_timeout)
{
	tally_randomuser_opts_t o = fast_opts();
	size_t n = 0;
	char err[256] = "";
	tally_randomuser_t *ru;

	rusrv_set_mode(srv, RUSRV_SLOW_ONCE);
	o.timeout_ms = 300;
	ru = client("", &o);
	cr_assert_eq(tally_randomuser_fetch_voters(ru, 5, count_only, &n, err, sizeof(err)), 0,
	             "%s", err);
	cr_assert_eq(n, 5);
	cr_assert_eq(tally_randomuser_requests(ru), 2);
	tally_randomuser_destroy(ru);
}

Test(randomuser, timeouts_run_out)
{
	tally_randomuser_opts_t o = fast_opts();
	size_t n = 0;
	char err[256] = "", want[256];
	tally_randomuser_t *ru;

	rusrv_set_mode(srv, RUSRV_SLOW);
	o.timeout_ms = 200;
	o.max_retries = 1;
	ru = client("", &o);
	cr_assert_eq(tally_randomuser_fetch_voters(ru, 5, count_only, &n, err, sizeof(err)),
	             TALLY_ETIMEDOUT);
	snprintf(want, sizeof(want),
	         "could not fetch \"http://127.0.0.1:%d/api/\" after 2 attempts: Timeout was reached",
	         rusrv_port(srv));
	cr_assert_str_eq(err, want);
	cr_assert_eq(tally_randomuser_requests(ru), 2);
	cr_assert_eq(n, 0);
	tally_randomuser_destroy(ru);
}

/* ---- failures that are not retried ----------------------------------------------------- */

static void
expect_failure(rusrv_mode_t mode, size_t n, int want_rc, const char *fmt)
{
	tally_randomuser_opts_t o = fast_opts();
	size_t got = 0;
	char err[256] = "", want[256];
	tally_randomuser_t *ru;

	rusrv_set_mode(srv, mode);
	/* A secret in the query string must not reach the message. */
	ru = client("?key=s3cret", &o);
	cr_assert_eq(tally_randomuser_fetch_voters(ru, n, count_only, &got, err, sizeof(err)),
	             want_rc, "%s", err);
	snprintf(want, sizeof(want), fmt, rusrv_port(srv));
	cr_assert_str_eq(err, want);
	cr_assert_eq(rusrv_requests(srv), 1);
	cr_assert_str_eq(rusrv_query(srv, 0), n == 10 ? "key=s3cret&nat=gb&results=10"
	                                         : "key=s3cret&nat=gb&results=5");
	cr_assert_eq(got, 0);
	tally_randomuser_destroy(ru);
}

Test(randomuser, http_404_fails_at_once)
{
	expect_failure(RUSRV_404, 5, TALLY_EIO,
	               "could not fetch \"http://127.0.0.1:%d/api/\": HTTP status 404");
}

Test(randomuser, malformed_json_fails_at_once)
{
	expect_failure(RUSRV_MALFORMED, 5, TALLY_EFORMAT,
	               "could not parse the answer of \"http://127.0.0.1:%d/api/\": line 1 column 31:"
	               " string or '}' expected near end of file");
}

Test(randomuser, missing_uuid_fails_at_once)
{
	expect_failure(RUSRV_NO_UUID, 5, TALLY_EFORMAT,
	               "the answer of \"http://127.0.0.1:%d/api/\": results[2]: missing \"login.uuid\"");
}

Test(randomuser, short_answer_fails_at_once)
{
	expect_failure(RUSRV_SHORT, 10, TALLY_EFORMAT,
	               "the answer of \"http://127.0.0.1:%d/api/\" has 9 results instead of 10");
}

Test(randomuser, refused_port_fails_after_the_retries)
{
	tally_randomuser_opts_t o = fast_opts();
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t len = sizeof(sa);
	char url[128], err[256] = "", want[256];
	tally_randomuser_t *ru;
	size_t n = 0;
	double t0;
	int fd, port;

	/* A port that was free a moment ago and has no listener now. */
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	cr_assert_geq(fd, 0);
	cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	cr_assert_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	port = ntohs(sa.sin_port);
	close(fd);

	o.max_retries = 3;
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/api/", port);
	ru = tally_randomuser_new(url, &o, err, sizeof(err));
	cr_assert_not_null(ru, "%s", err);
	t0 = test_now_s();
	cr_assert_eq(tally_randomuser_fetch_voters(ru, 5, count_only, &n, err, sizeof(err)),
	             TALLY_EIO);
	snprintf(want, sizeof(want),
	         "could not fetch \"http://127.0.0.1:%d/api/\" after 4 attempts: "
	         "Couldn't connect to server", port);
	cr_assert_str_eq(err, want);
	cr_assert_eq(tally_randomuser_requests(ru), 4);
	/* Three backoffs of at least 5, 10 and 20 ms (half of 10, 20, 40: the jitter's floor). */
	cr_assert_geq(test_now_s() - t0, 0.035);
	cr_assert_eq(n, 0);
	tally_randomuser_destroy(ru);
}

/* ---- rate limit and options ------------------------------------------------------------ */

Test(randomuser, rate_limit_holds)
{
	tally_randomuser_opts_t o = fast_opts();
	size_t n = 0;
	char err[256] = "";
	tally_randomuser_t *ru;
	double t0, elapsed;

	o.requests_per_s = 10;
	o.batch_size = 10;
	ru = client("", &o);
	t0 = test_now_s();
	cr_assert_eq(tally_randomuser_fetch_voters(ru, 60, count_only, &n, err, sizeof(err)), 0,
	             "%s", err);
	elapsed = test_now_s() - t0;
	cr_assert_eq(n, 60);
	cr_assert_eq(rusrv_requests(srv), 6);
	cr_assert_geq(elapsed, 0.5, "6 requests at 10/s took %.3f s", elapsed);
	tally_randomuser_destroy(ru);
}

Test(randomuser, options_and_urls_are_checked)
{
	tally_randomuser_opts_t o;
	char err[256] = "";

	tally_randomuser_opts_init(&o);
	cr_assert_eq(o.batch_size, 100);
	cr_assert_eq(o.max_retries, 6);
	cr_assert_eq(o.initial_backoff_ms, 250);
	cr_assert_eq(o.max_backoff_ms, 8000);
	cr_assert_eq(o.timeout_ms, 30000);
	cr_assert_float_eq(o.requests_per_s, 5.0, 1e-9);

	o.batch_size = 5001;
	cr_assert_null(tally_randomuser_new("http://127.0.0.1/api/", &o, err, sizeof(err)));
	cr_assert_str_eq(err, "invalid batch size 5001: must be 1 to 5000");
	cr_assert_null(tally_randomuser_new("ftp://example.com/api/", NULL, err, sizeof(err)));
	cr_assert_str_eq(err, "invalid Random User API URL \"ftp://example.com/api/\": not http:// "
	                      "or https://");
	tally_randomuser_destroy(NULL);
}

/*
 * The Random-User-API client (see include/tally/randomuser.h).
 *
 * One libcurl easy handle per client, reused so that batches share a connection. Each
 * request goes through ru_get(): rate limit, then up to 1 + max_retries attempts, then the
 * body parsed with jansson. Rows are mapped field by field; a missing field fails the fetch
 * rather than producing a half-filled voter.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <jansson.h>

#include <tally/error.h>
#include <tally/randomuser.h>

/* A 5,000-result answer is about 5 MB; anything far beyond is not this API. */
#define RU_MAX_BODY (256u * 1024u * 1024u)

struct tally_randomuser {
	char *base_url;           /* as given, query included */
	char *display_url;        /* without user info, query or fragment: safe for messages */
	tally_randomuser_opts_t opts;
	CURL *curl;
	char curl_err[CURL_ERROR_SIZE];
	char *body;
	size_t body_len, body_cap;
	int body_too_big;
	uint64_t rng;
	uint64_t last_start_ns;
	int has_last;
	uint64_t nrequests;
};

static uint64_t
splitmix64(uint64_t *s)
{
	uint64_t z = (*s += UINT64_C(0x9e3779b97f4a7c15));

	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return z ^ (z >> 31);
}

static uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * UINT64_C(1000000000) + (uint64_t)ts.tv_nsec;
}

static void
sleep_until_ns(uint64_t t)
{
	struct timespec ts = { .tv_sec = (time_t)(t / UINT64_C(1000000000)),
	                       .tv_nsec = (long)(t % UINT64_C(1000000000)) };

	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}


void
tally_randomuser_opts_init(tally_randomuser_opts_t *opts)
{
	memset(opts, 0, sizeof(*opts));
	opts->batch_size = TALLY_RANDOMUSER_DEFAULT_BATCH;
	opts->requests_per_s = 5.0;
	opts->max_retries = 6;
	opts->initial_backoff_ms = 250;
	opts->max_backoff_ms = 8000;
	opts->timeout_ms = 30000;
}

/* The URL without user info ("user:secret@"), query string or fragment. */
static char *
make_display_url(const char *url)
{
	const char *scheme_end = strstr(url, "://");
	const char *host = scheme_end != NULL ? scheme_end + 3 : url;
	size_t host_len = strcspn(host, "/?#");
	const char *at = memchr(host, '@', host_len);
	size_t prefix_len = (size_t)(host - url);
	const char *rest = at != NULL ? at + 1 : host;
	size_t rest_len = strcspn(rest, "?#");
	char *out = malloc(prefix_len + rest_len + 1);

	if (out == NULL)
		return NULL;
	memcpy(out, url, prefix_len);
	memcpy(out + prefix_len, rest, rest_len);
	out[prefix_len + rest_len] = '\0';
	return out;
}

tally_randomuser_t *
tally_randomuser_new(const char *base_url, const tally_randomuser_opts_t *opts, char *errstr,
                     size_t errstr_size)
{
	tally_randomuser_t *ru;
	tally_randomuser_opts_t o;

	if (opts != NULL)
		o = *opts;
	else
		tally_randomuser_opts_init(&o);
	if (base_url == NULL ||
	    (strncmp(base_url, "http://", 7) != 0 && strncmp(base_url, "https://", 8) != 0)) {
		tally_errstr_set(errstr, errstr_size, "invalid Random User API URL \"%s\": not http:// or https://",
		       base_url != NULL ? base_url : "(null)");
		return NULL;
	}
	if (o.batch_size < 1 || o.batch_size > TALLY_RANDOMUSER_MAX_BATCH) {
		tally_errstr_set(errstr, errstr_size, "invalid batch size %zu: must be 1 to %d", o.batch_size,
		       TALLY_RANDOMUSER_MAX_BATCH);
		return NULL;
	}
	if (o.max_retries < 0 || o.max_retries > 100) {
		tally_errstr_set(errstr, errstr_size, "invalid max retries %d: must be 0 to 100", o.max_retries);
		return NULL;
	}
	if (o.timeout_ms == 0) {
		tally_errstr_set(errstr, errstr_size, "invalid timeout 0 ms: must be at least 1");
		return NULL;
	}
	if (o.max_backoff_ms < o.initial_backoff_ms)
		o.max_backoff_ms = o.initial_backoff_ms;

	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		tally_errstr_set(errstr, errstr_size, "could not initialise libcurl");
		return NULL;
	}
	ru = calloc(1, sizeof(*ru));
	if (ru == NULL) {
		curl_global_cleanup();
		tally_errstr_set(errstr, errstr_size, "out of memory");
		return NULL;
	}
	ru->opts = o;
	ru->rng = o.seed ^ UINT64_C(0x5275736572415049);
	ru->base_url = strdup(base_url);
	ru->display_url = make_display_url(base_url);
	ru->curl = curl_easy_init();
	if (ru->base_url == NULL || ru->display_url == NULL || ru->curl == NULL) {
		tally_errstr_set(errstr, errstr_size, "could not create a libcurl handle: out of memory");
		tally_randomuser_destroy(ru);
		return NULL;
	}
	return ru;
}

void
tally_randomuser_destroy(tally_randomuser_t *ru)
{
	if (ru == NULL)
		return;
	if (ru->curl != NULL)
		curl_easy_cleanup(ru->curl);
	free(ru->base_url);
	free(ru->display_url);
	free(ru->body);
	free(ru);
	curl_global_cleanup();
}

uint64_t
tally_randomuser_requests(const tally_randomuser_t *ru)
{
	return ru->nrequests;
}

static size_t
on_body(char *data, size_t size, size_t nmemb, void *arg)
{
	tally_randomuser_t *ru = arg;
	size_t n = size * nmemb;

	if (ru->body_len + n + 1 > RU_MAX_BODY) {
		ru->body_too_big = 1;
		return 0;
	}
	if (ru->body_len + n + 1 > ru->body_cap) {
		size_t cap = ru->body_cap ? ru->body_cap : 65536;
		char *p;

		while (cap < ru->body_len + n + 1)
			cap *= 2;
		p = realloc(ru->body, cap);
		if (p == NULL)
			return 0;
		ru->body = p;
		ru->body_cap = cap;
	}
	memcpy(ru->body + ru->body_len, data, n);
	ru->body_len += n;
	ru->body[ru->body_len] = '\0';
	return n;
}

static int
curl_retryable(CURLcode rc)
{
	switch (rc) {
	case CURLE_COULDNT_CONNECT:
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
	case CURLE_SSL_CONNECT_ERROR:
		return 1;
	default:
		return 0;
	}
}

static void
rate_limit(tally_randomuser_t *ru)
{
	if (ru->opts.requests_per_s > 0 && ru->has_last) {
		uint64_t gap = (uint64_t)(1e9 / ru->opts.requests_per_s);

		if (now_ns() < ru->last_start_ns + gap)
			sleep_until_ns(ru->last_start_ns + gap);
	}
	ru->last_start_ns = now_ns();
	ru->has_last = 1;
}

/* Delay before retry number `retry` (0-based): doubling, capped, jittered to [d/2, d]. */
static uint64_t
backoff_ms(tally_randomuser_t *ru, int retry)
{
	uint64_t d = ru->opts.initial_backoff_ms;

	for (int i = 0; i < retry && d < ru->opts.max_backoff_ms; i++)
		d *= 2;
	if (d > ru->opts.max_backoff_ms)
		d = ru->opts.max_backoff_ms;
	if (d < 2)
		return d;
	return d / 2 + splitmix64(&ru->rng) % (d / 2 + 1);
}

/*
 * GET base_url + params (params starts with "nat=gb"), retrying what is worth retrying, and
 * parse the body. Returns 0 with *root set (the caller decrefs), or a TALLY_E* code.
 */
static int
ru_get(tally_randomuser_t *ru, const char *params, json_t **root, char *errstr,
       size_t errstr_size)
{
	const char *sep;
	char *url;
	size_t blen = strlen(ru->base_url), ulen;
	int attempts = 1 + ru->opts.max_retries;
	char last_problem[CURL_ERROR_SIZE + 64] = "";
	int last_err = TALLY_EIO;
	json_error_t jerr;

	if (strchr(ru->base_url, '?') == NULL)
		sep = "?";
	else if (ru->base_url[blen - 1] == '?' || ru->base_url[blen - 1] == '&')
		sep = "";
	else
		sep = "&";
	ulen = blen + strlen(sep) + strlen(params) + 1;
	url = malloc(ulen);
	if (url == NULL) {
		tally_errstr_set(errstr, errstr_size, "out of memory");
		return TALLY_ENOMEM;
	}
	snprintf(url, ulen, "%s%s%s", ru->base_url, sep, params);

	for (int attempt = 0; attempt < attempts; attempt++) {
		CURLcode rc;
		long status = 0;
		curl_off_t retry_after = 0;
		uint64_t wait_ms;

		if (attempt > 0) {
			wait_ms = backoff_ms(ru, attempt - 1);
			curl_easy_getinfo(ru->curl, CURLINFO_RETRY_AFTER, &retry_after);
			if (retry_after > 0 && (uint64_t)retry_after * 1000 > wait_ms)
				wait_ms = (uint64_t)retry_after * 1000;
			sleep_until_ns(now_ns() + wait_ms * UINT64_C(1000000));
		}
		rate_limit(ru);

		ru->body_len = 0;
		ru->body_too_big = 0;
		if (ru->body != NULL)
			ru->body[0] = '\0';
		ru->curl_err[0] = '\0';
		curl_easy_reset(ru->curl);
		curl_easy_setopt(ru->curl, CURLOPT_URL, url);
		curl_easy_setopt(ru->curl, CURLOPT_WRITEFUNCTION, on_body);
		curl_easy_setopt(ru->curl, CURLOPT_WRITEDATA, ru);
		curl_easy_setopt(ru->curl, CURLOPT_ERRORBUFFER, ru->curl_err);
		curl_easy_setopt(ru->curl, CURLOPT_TIMEOUT_MS, (long)ru->opts.timeout_ms);
		curl_easy_setopt(ru->curl, CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(ru->curl, CURLOPT_FOLLOWLOCATION, 1L);
		curl_easy_setopt(ru->curl, CURLOPT_MAXREDIRS, 5L);
		curl_easy_setopt(ru->curl, CURLOPT_PROTOCOLS_STR, "http,https");
		curl_easy_setopt(ru->curl, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
		curl_easy_setopt(ru->curl, CURLOPT_ACCEPT_ENCODING, "");
		curl_easy_setopt(ru->curl, CURLOPT_USERAGENT, "tally-gen/0.1");
		ru->nrequests++;
		rc = curl_easy_perform(ru->curl);

		if (rc != CURLE_OK) {
			if (ru->body_too_big) {
				tally_errstr_set(errstr, errstr_size,
				       "could not fetch \"%s\": the answer is larger than %u bytes",
				       ru->display_url, RU_MAX_BODY);
				free(url);
				return TALLY_EFORMAT;
			}
			snprintf(last_problem, sizeof(last_problem), "%s", curl_easy_strerror(rc));
			last_err = rc == CURLE_OPERATION_TIMEDOUT ? TALLY_ETIMEDOUT : TALLY_EIO;
			if (!curl_retryable(rc)) {
				tally_errstr_set(errstr, errstr_size, "could not fetch \"%s\": %s", ru->display_url,
				       last_problem);
				free(url);
				return last_err;
			}
			continue;
		}
		curl_easy_getinfo(ru->curl, CURLINFO_RESPONSE_CODE, &status);
		if (status == 429 || (status >= 500 && status <= 599)) {
			snprintf(last_problem, sizeof(last_problem), "HTTP status %ld", status);
			last_err = TALLY_EIO;
			continue;
		}
		if (status < 200 || status > 299) {
			tally_errstr_set(errstr, errstr_size, "could not fetch \"%s\": HTTP status %ld",
			       ru->display_url, status);
			free(url);
			return TALLY_EIO;
		}
		free(url);
		*root = json_loadb(ru->body != NULL ? ru->body : "", ru->body_len, 0, &jerr);
		if (*root == NULL) {
			tally_errstr_set(errstr, errstr_size,
			       "could not parse the answer of \"%s\": line %d column %d: %s",
			       ru->display_url, jerr.line, jerr.column, jerr.text);
			return TALLY_EFORMAT;
		}
		return 0;
	}
	free(url);
	tally_errstr_set(errstr, errstr_size, "could not fetch \"%s\" after %d attempts: %s",
	       ru->display_url, attempts, last_problem);
	return last_err;
}

/* The array of exactly `want` results in root, or NULL with errstr set. */
static json_t *
results_of(tally_randomuser_t *ru, json_t *root, size_t want, char *errstr, size_t errstr_size)
{
	json_t *results = json_is_object(root) ? json_object_get(root, "results") : NULL;
	json_t *error = json_is_object(root) ? json_object_get(root, "error") : NULL;

	if (json_is_string(error)) {
		tally_errstr_set(errstr, errstr_size, "the answer of \"%s\" is an error: \"%s\"",
		       ru->display_url, json_string_value(error));
		return NULL;
	}
	if (!json_is_array(results)) {
		tally_errstr_set(errstr, errstr_size, "the answer of \"%s\" has no \"results\" array",
		       ru->display_url);
		return NULL;
	}
	if (json_array_size(results) != want) {
		tally_errstr_set(errstr, errstr_size, "the answer of \"%s\" has %zu results instead of %zu",
		       ru->display_url, json_array_size(results), want);
		return NULL;
	}
	return results;
}

/* The value at a dotted path ("login.uuid") in obj, or NULL. */
static json_t *
jpath(json_t *obj, const char *path)
{
	char key[64];

	while (obj != NULL) {
		size_t n = strcspn(path, ".");

		if (!json_is_object(obj) || n >= sizeof(key))
			return NULL;
		memcpy(key, path, n);
		key[n] = '\0';
		obj = json_object_get(obj, key);
		if (path[n] == '\0')
			return obj;
		path += n + 1;
	}
	return NULL;
}

typedef struct row_ctx {
	tally_randomuser_t *ru;
	size_t i;
	char *errstr;
	size_t errstr_size;
} row_ctx_t;

static const char *
get_str(row_ctx_t *c, json_t *r, const char *path)
{
	json_t *v = jpath(r, path);

	if (v == NULL || json_is_null(v)) {
		tally_errstr_set(c->errstr, c->errstr_size, "the answer of \"%s\": results[%zu]: missing \"%s\"",
		       c->ru->display_url, c->i, path);
		return NULL;
	}
	if (!json_is_string(v)) {
		tally_errstr_set(c->errstr, c->errstr_size,
		       "the answer of \"%s\": results[%zu]: \"%s\" is not a string", c->ru->display_url,
		       c->i, path);
		return NULL;
	}
	return json_string_value(v);
}

/* A string or an integer (postcode, street number) written into buf. */
static const char *
get_str_or_int(row_ctx_t *c, json_t *r, const char *path, char *buf, size_t size)
{
	json_t *v = jpath(r, path);

	if (json_is_integer(v)) {
		snprintf(buf, size, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		return buf;
	}
	if (v != NULL && !json_is_null(v) && !json_is_string(v)) {
		tally_errstr_set(c->errstr, c->errstr_size,
		       "the answer of \"%s\": results[%zu]: \"%s\" is not a string or an integer",
		       c->ru->display_url, c->i, path);
		return NULL;
	}
	return get_str(c, r, path);
}

static int
join2(row_ctx_t *c, char *buf, size_t size, const char *a, const char *b, const char *what)
{
	if ((size_t)snprintf(buf, size, "%s %s", a, b) >= size) {
		tally_errstr_set(c->errstr, c->errstr_size, "the answer of \"%s\": results[%zu]: %s too long",
		       c->ru->display_url, c->i, what);
		return -1;
	}
	return 0;
}

static int
map_voter(row_ctx_t *c, json_t *r, tally_randomuser_voter_t *v, char *name, char *street,
          char *dob, char *postcode, char *streetno)
{
	const char *first, *last, *date, *sname, *sno;
	json_t *age;

	memset(v, 0, sizeof(*v));
	if ((v->voter_id = get_str(c, r, "login.uuid")) == NULL ||
	    (first = get_str(c, r, "name.first")) == NULL ||
	    (last = get_str(c, r, "name.last")) == NULL ||
	    (date = get_str(c, r, "dob.date")) == NULL ||
	    (v->gender = get_str(c, r, "gender")) == NULL ||
	    (v->nationality = get_str(c, r, "nat")) == NULL ||
	    (v->registration_number = get_str(c, r, "login.username")) == NULL ||
	    (sno = get_str_or_int(c, r, "location.street.number", streetno, 32)) == NULL ||
	    (sname = get_str(c, r, "location.street.name")) == NULL ||
	    (v->address_city = get_str(c, r, "location.city")) == NULL ||
	    (v->address_state = get_str(c, r, "location.state")) == NULL ||
	    (v->address_country = get_str(c, r, "location.country")) == NULL ||
	    (v->address_postcode = get_str_or_int(c, r, "location.postcode", postcode, 64)) == NULL ||
	    (v->email = get_str(c, r, "email")) == NULL ||
	    (v->phone_number = get_str(c, r, "phone")) == NULL ||
	    (v->cell_number = get_str(c, r, "cell")) == NULL ||
	    (v->picture = get_str(c, r, "picture.large")) == NULL)
		return TALLY_EFORMAT;
	age = jpath(r, "registered.age");
	if (age == NULL || json_is_null(age)) {
		tally_errstr_set(c->errstr, c->errstr_size,
		       "the answer of \"%s\": results[%zu]: missing \"registered.age\"",
		       c->ru->display_url, c->i);
		return TALLY_EFORMAT;
	}
	if (!json_is_integer(age) || json_integer_value(age) < 0 ||
	    json_integer_value(age) > 1000) {
		tally_errstr_set(c->errstr, c->errstr_size,
		       "the answer of \"%s\": results[%zu]: \"registered.age\" is not an age",
		       c->ru->display_url, c->i);
		return TALLY_EFORMAT;
	}
	v->registered_age = (int)json_integer_value(age);
	/* dob.date is ISO 8601 ("1957-03-12T08:34:27.123Z"); the original kept the date part. */
	if (strlen(date) < 10 || date[4] != '-' || date[7] != '-' ||
	    strspn(date, "0123456789") != 4 || strspn(date + 5, "0123456789") != 2 ||
	    strspn(date + 8, "0123456789") < 2 || (date[10] != '\0' && date[10] != 'T')) {
		tally_errstr_set(c->errstr, c->errstr_size,
		       "the answer of \"%s\": results[%zu]: \"dob.date\" is not a date: \"%s\"",
		       c->ru->display_url, c->i, date);
		return TALLY_EFORMAT;
	}
	memcpy(dob, date, 10);
	dob[10] = '\0';
	v->date_of_birth = dob;
	if (join2(c, name, 512, first, last, "name") != 0 ||
	    join2(c, street, 512, sno, sname, "street"))
		return TALLY_EFORMAT;
	v->voter_name = name;
	v->address_street = street;
	return 0;
}

int
tally_randomuser_fetch_voters(tally_randomuser_t *ru, size_t n, tally_randomuser_voter_cb cb,
                              void *arg, char *errstr, size_t errstr_size)
{
	size_t done = 0;

	if (ru == NULL || cb == NULL) {
		tally_errstr_set(errstr, errstr_size, "invalid argument: no client or no callback");
		return TALLY_EINVAL;
	}
	while (done < n) {
		size_t want = n - done < ru->opts.batch_size ? n - done : ru->opts.batch_size;
		char params[64];
		json_t *root = NULL, *results;
		int rc;

		snprintf(params, sizeof(params), "nat=gb&results=%zu", want);
		rc = ru_get(ru, params, &root, errstr, errstr_size);
		if (rc != 0)
			return rc;
		results = results_of(ru, root, want, errstr, errstr_size);
		if (results == NULL) {
			json_decref(root);
			return TALLY_EFORMAT;
		}
		/*
		 * Check the whole batch before delivering any of it, so that a bad answer delivers
		 * nothing and the caller never holds half a batch.
		 */
		for (int pass = 0; pass < 2; pass++) {
			for (size_t i = 0; i < want; i++) {
				row_ctx_t c = { ru, i, errstr, errstr_size };
				tally_randomuser_voter_t v;
				char name[512], street[512], dob[16], postcode[64], streetno[32];

				rc = map_voter(&c, json_array_get(results, i), &v, name, street, dob,
				               postcode, streetno);
				if (rc == 0 && pass == 1)
					rc = cb(&v, arg);
				if (rc != 0) {
					json_decref(root);
					return rc;
				}
			}
		}
		json_decref(root);
		done += want;
		if (ru->opts.progress != NULL) {
			int prc = ru->opts.progress(done, n, ru->opts.progress_arg);

			if (prc != 0)
				return prc;
		}
	}
	return 0;
}

static const char *const bio_roles[] = {
	"a local councillor", "a secondary-school teacher", "a nurse", "a small-business owner",
	"a civil engineer", "a charity director", "a magistrate", "a trade-union organiser",
};
static const char *const bio_places[] = {
	"Leeds", "Bristol", "Norwich", "Cardiff", "Glasgow", "Belfast", "York", "Exeter",
};
static const char *const bio_traits[] = {
	"plain speaking", "careful budgeting", "listening to residents", "getting things built",
	"cross-party work", "open government",
};
static const char *const promises[] = {
	"shorter hospital waiting lists", "cheaper public transport", "more affordable housing",
	"faster broadband for rural areas", "smaller class sizes", "cleaner rivers",
	"lower energy bills", "safer streets", "support for local high streets",
	"a fairer tax system",
};

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static void
candidate_text(uint64_t seed, size_t index, const char *name, char *bio, size_t bio_size,
               char *platform, size_t platform_size)
{
	uint64_t s = seed ^ (UINT64_C(0xc4ceb9fe1a85ec53) * (index + 1));
	size_t p1, p2, p3;
	unsigned years;
	const char *role = bio_roles[splitmix64(&s) % NELEM(bio_roles)];
	const char *place = bio_places[splitmix64(&s) % NELEM(bio_places)];
	const char *trait = bio_traits[splitmix64(&s) % NELEM(bio_traits)];

	years = 3 + (unsigned)(splitmix64(&s) % 25);
	snprintf(bio, bio_size, "%s has worked as %s in %s for %u years and is known for %s.", name,
	         role, place, years, trait);
	p1 = splitmix64(&s) % NELEM(promises);
	p2 = (p1 + 1 + splitmix64(&s) % (NELEM(promises) - 1)) % NELEM(promises);
	do
		p3 = splitmix64(&s) % NELEM(promises);
	while (p3 == p1 || p3 == p2);
	snprintf(platform, platform_size, "Promises %s, %s and %s.", promises[p1], promises[p2],
	         promises[p3]);
}

int
tally_randomuser_fetch_candidates(tally_randomuser_t *ru, size_t n,
                                  tally_randomuser_candidate_cb cb, void *arg, char *errstr,
                                  size_t errstr_size)
{
	if (ru == NULL || cb == NULL) {
		tally_errstr_set(errstr, errstr_size, "invalid argument: no client or no callback");
		return TALLY_EINVAL;
	}
	for (size_t i = 0; i < n; i++) {
		const char *gender = i % 2 == 1 ? "female" : "male";
		char params[64], name[512], bio[1024], platform[1024];
		json_t *root = NULL, *results;
		row_ctx_t c = { ru, 0, errstr, errstr_size };
		tally_randomuser_candidate_t cand;
		const char *first, *last;
		int rc;

		snprintf(params, sizeof(params), "nat=gb&results=1&gender=%s", gender);
		rc = ru_get(ru, params, &root, errstr, errstr_size);
		if (rc != 0)
			return rc;
		results = results_of(ru, root, 1, errstr, errstr_size);
		if (results == NULL) {
			json_decref(root);
			return TALLY_EFORMAT;
		}
		memset(&cand, 0, sizeof(cand));
		cand.index = i;
		cand.gender = gender;
		json_t *r = json_array_get(results, 0);
		if ((cand.candidate_id = get_str(&c, r, "login.uuid")) == NULL ||
		    (first = get_str(&c, r, "name.first")) == NULL ||
		    (last = get_str(&c, r, "name.last")) == NULL ||
		    (cand.photo_url = get_str(&c, r, "picture.large")) == NULL ||
		    join2(&c, name, sizeof(name), first, last, "name") != 0) {
			json_decref(root);
			return TALLY_EFORMAT;
		}
		cand.candidate_name = name;
		candidate_text(ru->opts.seed, i, name, bio, sizeof(bio), platform, sizeof(platform));
		cand.biography = bio;
		cand.campaign_platform = platform;
		rc = cb(&cand, arg);
		json_decref(root);
		if (rc != 0)
			return rc;
		if (ru->opts.progress != NULL) {
			int prc = ru->opts.progress(i + 1, n, ru->opts.progress_arg);

			if (prc != 0)
				return prc;
		}
	}
	return 0;
}

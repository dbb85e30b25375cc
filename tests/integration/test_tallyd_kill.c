/*
 * tallyd killed with a reader watching, against the real Kafka and PostgreSQL.
 *
 * tally-gen registers a seeded election (250,000 voters, 5 candidates, 12 regions);
 * tally-sim casts its votes at a steady 3,000 messages/s (about 60 s, the original full
 * shape, its default fault mix: rejections of every reason but polls_closed) while tallyd
 * (--http 127.0.0.1:0, its default checkpoint cadence) is killed with SIGKILL at seeded
 * random instants, 10 or more of them, and restarted at once each time (the same group
 * instance: static membership). 70 % of the kills fall 0.1-4 s after the start logged
 * "live" (mid-count, mid-checkpoint, mid-publish), the others 0.2-4 s after the start
 * (restoring included). All along, the test process reads every surface tallyd
 * publishes, in its main loop:
 * - the three results topics from the beginning: per key the count never goes down, per
 *   topic the version never goes back, and one version never carries two counts for a key;
 * - /api/stream of whichever tallyd is up, reconnecting with Last-Event-ID after each kill:
 *   the event id is the data's version and never goes back, also across reconnects; no
 *   figure (read, accepted, each reason, candidate, party, region) ever goes down, and every
 *   event adds up (the candidates, parties and regions each sum to accepted; accepted plus
 *   rejected is read);
 * - /api/results, polled every 100 ms, checked the same way.
 * Then tallyd is started once more with --exit-idle-ms and runs to the end: the last reading
 * of every surface, PostgreSQL's votes and the dead letters equal tally-sim's ground truth
 * exactly, and votes_rejected holds each rejected source position exactly once.
 *
 * TALLY_KILL_SEED=N replays a run's kill instants (the seed is printed).
 */
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <curl/curl.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <librdkafka/rdkafka.h>

#include <tally/kafka.h>
#include <tally/vote.h>

#include "kafkatest.h"
#include "pgtest.h"
#include "services.h"
#include "tallydtest.h"
#include "testutil.h"

#define GEN_SEED "23"
#define VOTERS "250000"
#define CANDIDATES "5"
#define REGIONS "12"
#define N_PARTITIONS 4
#define RATE "3000"
#define ELECTION "general"
#define MIN_KILLS 10
/* Each tallyd is killed a random time after it logged "live" (a share KILL_LIVE of the
 * kills) or after it was started (anywhere, starting up included). */
#define KILL_LIVE 0.7
#define AFTER_LIVE_S 0.1, 4.0
#define AFTER_START_S 0.2, 4.0
#define LIVE_WITHIN_S 60.0
#define POLL_EVERY_S 0.1        /* /api/results */
#define EXIT_IDLE_MS "3000"
#define MAX_KEYS 128

/* ---- what a surface showed so far --------------------------------------------------------- */

typedef struct seen_key {
	char key[128];
	int64_t count;             /* the latest (and, as it never goes down, highest) count */
	int64_t version;           /* the version that count came with */
} seen_key_t;

typedef struct surface {
	const char *name;
	seen_key_t keys[MAX_KEYS];
	int nkeys;
	int64_t version;           /* the newest version seen, -1 before any */
	long readings;
	json_t *last;              /* HTTP: the last reading, whole */
} surface_t;

enum { S_CAND, S_REGION, S_PARTY, S_SSE, S_POLL, S__COUNT };

typedef struct reader {
	char failure[2048];        /* the first violation; empty while none */
	int kills;                 /* SIGKILLs so far */
	int start;                 /* tallyd starts so far: the current one's number */
	surface_t s[S__COUNT];

	/* Kafka: the three results topics, partition 0 each (TALLY_KAFKA_RESULTS_PARTITIONS). */
	rd_kafka_t *rk;
	const char *topic[3];
	int64_t next_offset[3];

	/* HTTP, to the tallyd now up: port 0 until its log names it. */
	char log[256];
	long log_from;             /* the current tallyd's part of the log starts here */
	int port;
	bool live;                 /* the current tallyd logged "live" */
	CURLM *multi;
	CURL *sse, *poll;
	struct curl_slist *sse_headers;
	char *sse_buf, *sse_data;
	size_t sse_len, sse_cap, data_len, data_cap;
	int64_t sse_id;            /* the pending event's id, -1 if none */
	long sse_connects, refused;
	char sse_head[256];        /* the start of the stream's answer, for a refusal's reason */
	size_t head_len;
	double sse_next;
	char *poll_body;
	size_t poll_len;
	double poll_next;
} reader_t;

static void
fail(reader_t *rd, const char *fmt, ...)
{
	char msg[1536];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fprintf(stderr, "VIOLATION: %s (after kill %d, tallyd start %d)\n", msg, rd->kills,
	        rd->start);
	if (rd->failure[0] == '\0')
		snprintf(rd->failure, sizeof(rd->failure), "%s (after kill %d, tallyd start %d)", msg,
		         rd->kills, rd->start);
}

static seen_key_t *
find_key(surface_t *s, const char *key)
{
	for (int i = 0; i < s->nkeys; i++)
		if (strcmp(s->keys[i].key, key) == 0)
			return &s->keys[i];
	return NULL;
}

/* A surface's version: never lower than the one before. */
static void
see_version(reader_t *rd, surface_t *s, int64_t version)
{
	if (version < s->version)
		fail(rd, "%s: version went back from %" PRId64 " to %" PRId64, s->name, s->version,
		     version);
	if (version > s->version)
		s->version = version;
}

/* One key's count at version: never lower, and one version names one count. */
static void
see_count(reader_t *rd, surface_t *s, const char *key, int64_t version, int64_t count)
{
	seen_key_t *k = find_key(s, key);

	if (k == NULL) {
		if (s->nkeys == MAX_KEYS) {
			fail(rd, "%s: more than %d keys", s->name, MAX_KEYS);
			return;
		}
		k = &s->keys[s->nkeys++];
		snprintf(k->key, sizeof(k->key), "%s", key);
		k->count = count;
		k->version = version;
		return;
	}
	if (count < k->count)
		fail(rd, "%s: \"%s\" went down from %" PRId64 " (version %" PRId64 ") to %" PRId64
		     " (version %" PRId64 ")", s->name, key, k->count, k->version, count, version);
	if (version < k->version)
		fail(rd, "%s: \"%s\" version went back from %" PRId64 " to %" PRId64, s->name, key,
		     k->version, version);
	if (version == k->version && count != k->count)
		fail(rd, "%s: \"%s\" at version %" PRId64 " was %" PRId64 ", now %" PRId64, s->name,
		     key, version, k->count, count);
	if (count >= k->count && version >= k->version) {
		k->count = count;
		k->version = version;
	}
}

static int64_t
json_int(json_t *o, const char *field, bool *ok)
{
	json_t *v = json_object_get(o, field);

	if (!json_is_integer(v)) {
		*ok = false;
		return -1;
	}
	return (int64_t)json_integer_value(v);
}

/* ---- the results topics ------------------------------------------------------------------- */

static const char *const topic_id_field[3] = {"candidate_id", "state", "party_affiliation"};
static const char *const topic_count_field[3] = {"total_votes", "count", "total_votes"};

static void
on_result(reader_t *rd, int t, const rd_kafka_message_t *m)
{
	surface_t *s = &rd->s[t];
	json_t *o = json_loadb(m->payload, m->len, 0, NULL);
	char key[128];
	const char *id, *election;
	int64_t version, count;
	bool ok = true;

	snprintf(key, sizeof(key), "%.*s", (int)m->key_len, (const char *)m->key);
	if (o == NULL) {
		fail(rd, "%s: offset %" PRId64 " is not JSON", s->name, m->offset);
		return;
	}
	id = json_string_value(json_object_get(o, topic_id_field[t]));
	election = json_string_value(json_object_get(o, "election_id"));
	version = json_int(o, "version", &ok);
	count = json_int(o, topic_count_field[t], &ok);
	if (!ok || id == NULL || strcmp(id, key) != 0 || election == NULL ||
	    strcmp(election, ELECTION) != 0)
		fail(rd, "%s: offset %" PRId64 " key \"%s\": bad message %.*s", s->name, m->offset,
		     key, (int)m->len, (const char *)m->payload);
	else {
		see_version(rd, s, version);
		see_count(rd, s, key, version, count);
		s->readings++;
	}
	json_decref(o);
}

static void
kafka_open(reader_t *rd, const char *group)
{
	rd_kafka_conf_t *kc = rd_kafka_conf_new();
	rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(3);
	char err[512];

	cr_assert_eq(rd_kafka_conf_set(kc, "bootstrap.servers",
	                               tally_test_service("TALLY_KAFKA_BROKERS"), err, sizeof(err)),
	             RD_KAFKA_CONF_OK, "%s", err);
	cr_assert_eq(rd_kafka_conf_set(kc, "group.id", group, err, sizeof(err)), RD_KAFKA_CONF_OK);
	cr_assert_eq(rd_kafka_conf_set(kc, "enable.auto.commit", "false", err, sizeof(err)),
	             RD_KAFKA_CONF_OK);
	/* Small waits: a results message should reach the reader within milliseconds. */
	cr_assert_eq(rd_kafka_conf_set(kc, "fetch.wait.max.ms", "10", err, sizeof(err)),
	             RD_KAFKA_CONF_OK);
	cr_assert_eq(rd_kafka_conf_set(kc, "fetch.error.backoff.ms", "10", err, sizeof(err)),
	             RD_KAFKA_CONF_OK);
	rd->rk = rd_kafka_new(RD_KAFKA_CONSUMER, kc, err, sizeof(err));
	cr_assert_not_null(rd->rk, "%s", err);
	for (int t = 0; t < 3; t++)
		rd_kafka_topic_partition_list_add(parts, rd->topic[t], 0)->offset =
		    RD_KAFKA_OFFSET_BEGINNING;
	cr_assert_eq(rd_kafka_assign(rd->rk, parts), RD_KAFKA_RESP_ERR_NO_ERROR);
	rd_kafka_topic_partition_list_destroy(parts);
}

/* Take whatever the consumer has; returns how many messages. */
static int
kafka_pump(reader_t *rd)
{
	rd_kafka_message_t *m;
	int n = 0;

	while (n < 5000 && (m = rd_kafka_consumer_poll(rd->rk, 0)) != NULL) {
		if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
			const char *name = rd_kafka_topic_name(m->rkt);

			for (int t = 0; t < 3; t++)
				if (strcmp(name, rd->topic[t]) == 0) {
					if (m->offset < rd->next_offset[t])
						fail(rd, "%s: offset %" PRId64 " again", rd->s[t].name, m->offset);
					rd->next_offset[t] = m->offset + 1;
					on_result(rd, t, m);
				}
			n++;
		} else if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
			fprintf(stderr, "reader: kafka: %s\n", rd_kafka_message_errstr(m));
		}
		rd_kafka_message_destroy(m);
	}
	return n;
}

/* ---- HTTP: /api/stream and /api/results ---------------------------------------------------- */

/* One /api/results body (or an SSE event's data, with its id; -1 for a poll). */
static void
on_results_json(reader_t *rd, surface_t *s, const char *text, size_t len, int64_t event_id)
{
	json_t *o = json_loadb(text, len, 0, NULL), *a, *e, *rej;
	int64_t version, read, accepted, rejected_total, sum;
	bool ok = true;
	size_t i;
	const char *k;
	char key[160];

	if (o == NULL) {
		fail(rd, "%s: not JSON: %.*s", s->name, (int)(len < 200 ? len : 200), text);
		return;
	}
	version = json_int(o, "version", &ok);
	read = json_int(o, "read", &ok);
	accepted = json_int(o, "accepted", &ok);
	rejected_total = json_int(o, "rejected_total", &ok);
	rej = json_object_get(o, "rejected");
	if (!ok || !json_is_object(rej)) {
		fail(rd, "%s: a reading without version, read, accepted or rejected", s->name);
		json_decref(o);
		return;
	}
	if (event_id >= 0 && event_id != version)
		fail(rd, "%s: event id %" PRId64 " but data version %" PRId64, s->name, event_id,
		     version);
	see_version(rd, s, version);
	see_count(rd, s, "read", version, read);
	see_count(rd, s, "accepted", version, accepted);
	see_count(rd, s, "rejected_total", version, rejected_total);
	if (accepted + rejected_total != read)
		fail(rd, "%s: version %" PRId64 ": accepted %" PRId64 " + rejected %" PRId64
		     " != read %" PRId64, s->name, version, accepted, rejected_total, read);
	sum = 0;
	json_object_foreach(rej, k, e) {
		snprintf(key, sizeof(key), "rejected.%s", k);
		see_count(rd, s, key, version, (int64_t)json_integer_value(e));
		sum += (int64_t)json_integer_value(e);
	}
	if (sum != rejected_total)
		fail(rd, "%s: version %" PRId64 ": reasons sum to %" PRId64 ", rejected_total %" PRId64,
		     s->name, version, sum, rejected_total);
	{
		static const char *const arrays[3][3] = {{"candidates", "candidate_id", "total_votes"},
		                                         {"parties", "party", "total_votes"},
		                                         {"regions", "region", "count"}};

		for (int j = 0; j < 3; j++) {
			sum = 0;
			a = json_object_get(o, arrays[j][0]);
			json_array_foreach(a, i, e) {
				const char *id = json_string_value(json_object_get(e, arrays[j][1]));
				int64_t n = json_int(e, arrays[j][2], &ok);

				snprintf(key, sizeof(key), "%s.%s", arrays[j][0], id != NULL ? id : "?");
				see_count(rd, s, key, version, n);
				sum += n;
			}
			if (!ok || sum != accepted)
				fail(rd, "%s: version %" PRId64 ": %s sum to %" PRId64 ", accepted %" PRId64,
				     s->name, version, arrays[j][0], sum, accepted);
		}
	}
	s->readings++;
	json_decref(s->last);
	s->last = o;
}

static void
grow(char **p, size_t *cap, size_t need)
{
	if (need <= *cap)
		return;
	while (*cap < need)
		*cap = *cap ? *cap * 2 : 4096;
	*p = realloc(*p, *cap);
	cr_assert_not_null(*p);
}

/* Server-Sent Events: lines "id: N", "data: ...", "event: ...", ": comment"; a blank line
 * ends an event. */
static void
sse_line(reader_t *rd, const char *line, size_t n)
{
	if (n == 0) {
		if (rd->data_len > 0) {
			on_results_json(rd, &rd->s[S_SSE], rd->sse_data, rd->data_len, rd->sse_id);
			if (rd->sse_id < 0)
				fail(rd, "sse: an event without an id");
		}
		rd->data_len = 0;
		rd->sse_id = -1;
		return;
	}
	if (n >= 5 && memcmp(line, "data:", 5) == 0) {
		const char *p = line + 5;
		size_t m = n - 5;

		if (m > 0 && *p == ' ')
			p++, m--;
		grow(&rd->sse_data, &rd->data_cap, rd->data_len + m + 2);
		if (rd->data_len > 0)
			rd->sse_data[rd->data_len++] = '\n';
		memcpy(rd->sse_data + rd->data_len, p, m);
		rd->data_len += m;
	} else if (n >= 3 && memcmp(line, "id:", 3) == 0) {
		char num[32];

		snprintf(num, sizeof(num), "%.*s", (int)(n - 3), line + 3);
		rd->sse_id = strtoll(num, NULL, 10);
	}
}

static size_t
sse_write(char *data, size_t size, size_t nmemb, void *arg)
{
	reader_t *rd = arg;
	size_t n = size * nmemb, start = 0;

	if (rd->head_len < sizeof(rd->sse_head) - 1) {
		size_t room = sizeof(rd->sse_head) - 1 - rd->head_len, m = n < room ? n : room;

		memcpy(rd->sse_head + rd->head_len, data, m);
		rd->head_len += m;
		rd->sse_head[rd->head_len] = '\0';
	}
	grow(&rd->sse_buf, &rd->sse_cap, rd->sse_len + n + 1);
	memcpy(rd->sse_buf + rd->sse_len, data, n);
	rd->sse_len += n;
	for (size_t i = 0; i < rd->sse_len; i++)
		if (rd->sse_buf[i] == '\n') {
			size_t len = i - start;

			if (len > 0 && rd->sse_buf[start + len - 1] == '\r')
				len--;
			sse_line(rd, rd->sse_buf + start, len);
			start = i + 1;
		}
	memmove(rd->sse_buf, rd->sse_buf + start, rd->sse_len - start);
	rd->sse_len -= start;
	return n;
}

static size_t
poll_write(char *data, size_t size, size_t nmemb, void *arg)
{
	reader_t *rd = arg;
	size_t n = size * nmemb;
	char *p = realloc(rd->poll_body, rd->poll_len + n + 1);

	cr_assert_not_null(p);
	memcpy(p + rd->poll_len, data, n);
	rd->poll_len += n;
	p[rd->poll_len] = '\0';
	rd->poll_body = p;
	return n;
}

static void
sse_connect(reader_t *rd)
{
	char url[128], hdr[64];

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/api/stream", rd->port);
	rd->sse = curl_easy_init();
	curl_easy_setopt(rd->sse, CURLOPT_URL, url);
	curl_easy_setopt(rd->sse, CURLOPT_WRITEFUNCTION, sse_write);
	curl_easy_setopt(rd->sse, CURLOPT_WRITEDATA, rd);
	curl_easy_setopt(rd->sse, CURLOPT_CONNECTTIMEOUT_MS, 2000L);
	rd->sse_headers = curl_slist_append(NULL, "Accept: text/event-stream");
	if (rd->s[S_SSE].version >= 0) {
		snprintf(hdr, sizeof(hdr), "Last-Event-ID: %" PRId64, rd->s[S_SSE].version);
		rd->sse_headers = curl_slist_append(rd->sse_headers, hdr);
	}
	curl_easy_setopt(rd->sse, CURLOPT_HTTPHEADER, rd->sse_headers);
	rd->sse_len = 0;
	rd->head_len = 0;
	rd->sse_head[0] = '\0';
	rd->data_len = 0;
	rd->sse_id = -1;
	rd->sse_connects++;
	curl_multi_add_handle(rd->multi, rd->sse);
}

static void
poll_start(reader_t *rd)
{
	char url[128];

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/api/results", rd->port);
	rd->poll = curl_easy_init();
	curl_easy_setopt(rd->poll, CURLOPT_URL, url);
	curl_easy_setopt(rd->poll, CURLOPT_WRITEFUNCTION, poll_write);
	curl_easy_setopt(rd->poll, CURLOPT_WRITEDATA, rd);
	curl_easy_setopt(rd->poll, CURLOPT_TIMEOUT_MS, 5000L);
	rd->poll_len = 0;
	if (rd->poll_body != NULL)
		rd->poll_body[0] = '\0';
	curl_multi_add_handle(rd->multi, rd->poll);
}

static void
http_end(reader_t *rd, CURL **h)
{
	curl_multi_remove_handle(rd->multi, *h);
	curl_easy_cleanup(*h);
	*h = NULL;
	if (h == &rd->sse) {
		curl_slist_free_all(rd->sse_headers);
		rd->sse_headers = NULL;
	}
}

/* Both transfers end (the tallyd they talk to is gone); the next one's port is unknown. */
static void
http_drop(reader_t *rd)
{
	if (rd->sse != NULL)
		http_end(rd, &rd->sse);
	if (rd->poll != NULL)
		http_end(rd, &rd->poll);
	rd->port = 0;
	rd->live = false;
}

/* What the current tallyd logged so far: its port ("(port N;") and whether it is live. */
static void
log_scan(reader_t *rd)
{
	FILE *f = fopen(rd->log, "r");
	char line[1024];

	if (f == NULL)
		return;
	if (fseek(f, rd->log_from, SEEK_SET) == 0)
		while (fgets(line, sizeof(line), f) != NULL) {
			const char *p = strstr(line, "(port ");

			if (p != NULL)
				rd->port = atoi(p + 6);
			if (strstr(line, "tallyd: live ") != NULL)
				rd->live = true;
		}
	fclose(f);
}

/* A refusal tallyd may give while it starts or stops (not one for too many streams). */
static bool
refusal_ok(const char *body)
{
	return strstr(body, "no results rendered yet") != NULL ||
	       strstr(body, "shutting down") != NULL;
}

/* Move every transfer on, waiting up to wait_ms for something to happen. */
static void
http_pump(reader_t *rd, int wait_ms)
{
	CURLMsg *msg;
	int running, left;

	if (rd->port == 0 || !rd->live)
		log_scan(rd);
	if (rd->port > 0 && rd->sse == NULL && test_now_s() >= rd->sse_next)
		sse_connect(rd);
	if (rd->port > 0 && rd->poll == NULL && test_now_s() >= rd->poll_next) {
		rd->poll_next = test_now_s() + POLL_EVERY_S;
		poll_start(rd);
	}
	curl_multi_poll(rd->multi, NULL, 0, wait_ms, NULL);
	curl_multi_perform(rd->multi, &running);
	while ((msg = curl_multi_info_read(rd->multi, &left)) != NULL) {
		long code = 0;

		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &code);
		if (msg->easy_handle == rd->poll) {
			/* A poll cut off by a kill says nothing; one that was answered is a reading. */
			if (msg->data.result == CURLE_OK && code == 200)
				on_results_json(rd, &rd->s[S_POLL], rd->poll_body, rd->poll_len, -1);
			else if (msg->data.result == CURLE_OK && code == 503 && refusal_ok(rd->poll_body != NULL ? rd->poll_body : ""))
				rd->refused++;
			else if (msg->data.result == CURLE_OK)
				fail(rd, "/api/results answered %ld: %s", code, rd->poll_body);
			http_end(rd, &rd->poll);
		} else if (msg->easy_handle == rd->sse) {
			if (msg->data.result == CURLE_OK && code == 503 && refusal_ok(rd->sse_head))
				rd->refused++;
			else if (msg->data.result == CURLE_OK && code != 200 && code != 0)
				fail(rd, "/api/stream answered %ld: %s", code, rd->sse_head);
			/* Ended (a kill, or refused): connect again soon, to the next tallyd once its
			 * port is known. */
			http_end(rd, &rd->sse);
			rd->sse_next = test_now_s() + 0.05;
		}
	}
}

static void
pump(reader_t *rd)
{
	http_pump(rd, kafka_pump(rd) > 0 ? 0 : 10);
}

/* ---- processes ------------------------------------------------------------------------------ */

#define MAX_STARTS 128

typedef struct run {
	char prefix[64], pgopt[160], log[256], simlog[256], truth_path[256];
	tally_kafka_topics_t topics;
	int tallyd, sim;
	int64_t start_ms[MAX_STARTS + 1];   /* wall clock of each start (1-based), for the report */
} run_t;

static int64_t
wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
spawn_tallyd(run_t *r, reader_t *rd, const char *exit_idle)
{
	const char *args[] = {"--topic-prefix", r->prefix, r->pgopt, "--group-id", r->prefix,
	                      "--http", "127.0.0.1:0",
	                      exit_idle != NULL ? "--exit-idle-ms" : NULL, exit_idle, NULL};

	rd->start++;
	cr_assert(rd->start <= MAX_STARTS);
	r->start_ms[rd->start] = wall_ms();
	tt_log_mark(r->log, "==== test: tallyd start %d (after %d kills)\n", rd->start, rd->kills);
	http_drop(rd);
	rd->log_from = tt_file_size(r->log);
	r->tallyd = test_spawn("tallyd", args, r->log);
	cr_assert(r->tallyd > 0);
}

/* A violation seen: stop the programs, show tallyd's log, fail the test. */
static void
check_reader(run_t *r, reader_t *rd)
{
	int status;

	if (rd->failure[0] == '\0')
		return;
	if (r->tallyd > 0) {
		kill(r->tallyd, SIGKILL);
		waitpid(r->tallyd, &status, 0);
		r->tallyd = 0;
	}
	if (r->sim > 0) {
		kill(r->sim, SIGKILL);
		waitpid(r->sim, &status, 0);
		r->sim = 0;
	}
	tt_dump_tail(r->log, 16384);
	fprintf(stderr, "tallyd's log: %s\n", r->log);
	cr_assert_fail("%s", rd->failure);
}

/* Has tally-sim ended? (exit 0 required.) */
static bool
sim_done(run_t *r)
{
	int status;

	if (r->sim == 0)
		return true;
	if (waitpid(r->sim, &status, WNOHANG) != r->sim)
		return false;
	r->sim = 0;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		tt_dump_tail(r->simlog, 4096);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "tally-sim: status %d", status);
	return true;
}

/* A uniform number in [0, 1) from a seeded xorshift64*. */
static double
uniform(uint64_t *state)
{
	*state ^= *state >> 12;
	*state ^= *state << 25;
	*state ^= *state >> 27;
	return (double)((*state * 2685821657736338717ull) >> 11) / 9007199254740992.0;
}

static double
between(uint64_t *state, double lo, double hi)
{
	return lo + (hi - lo) * uniform(state);
}

/* ---- the end: exact against the truth -------------------------------------------------------- */

static int64_t
truth_int(json_t *truth, const char *field)
{
	json_t *v = json_object_get(truth, field);

	cr_assert(json_is_integer(v), "truth: no %s", field);
	return (int64_t)json_integer_value(v);
}

static int64_t
key_count(surface_t *s, const char *key)
{
	seen_key_t *k = find_key(s, key);

	return k != NULL ? k->count : -1;
}

/* The last /api/stream event and /api/results reading equal the truth. */
static void
check_http_final(surface_t *s, json_t *truth)
{
	json_t *last = s->last, *e, *rej;
	const char *k;
	size_t i;

	cr_assert_not_null(last, "%s: no reading at all", s->name);
	cr_assert_eq(json_integer_value(json_object_get(last, "read")), truth_int(truth, "messages"),
	             "%s: final read", s->name);
	cr_assert_eq(json_integer_value(json_object_get(last, "accepted")),
	             truth_int(truth, "accepted"), "%s: final accepted", s->name);
	cr_assert_eq(json_integer_value(json_object_get(last, "rejected_total")),
	             truth_int(truth, "rejected_total"), "%s: final rejected_total", s->name);
	rej = json_object_get(last, "rejected");
	json_object_foreach(json_object_get(truth, "rejected"), k, e)
		cr_assert_eq(json_integer_value(json_object_get(rej, k)), json_integer_value(e),
		             "%s: final rejected %s", s->name, k);
	json_array_foreach(json_object_get(truth, "candidates"), i, e) {
		const char *id = json_string_value(json_object_get(e, "candidate_id"));
		json_t *o;
		size_t j;
		bool found = false;

		json_array_foreach(json_object_get(last, "candidates"), j, o)
			if (strcmp(json_string_value(json_object_get(o, "candidate_id")), id) == 0) {
				cr_assert_eq(json_integer_value(json_object_get(o, "total_votes")),
				             json_integer_value(json_object_get(e, "total_votes")),
				             "%s: final candidate %s", s->name, id);
				found = true;
			}
		cr_assert(found, "%s: candidate %s missing", s->name, id);
	}
}

/* The newest message per key of each results topic equals the truth, and no other key. */
static void
check_topics_final(reader_t *rd, json_t *truth)
{
	static const char *const arrays[3][3] = {{"candidates", "candidate_id", "total_votes"},
	                                         {"regions", "region", "count"},
	                                         {"parties", "party_affiliation", "total_votes"}};

	for (int t = 0; t < 3; t++) {
		surface_t *s = &rd->s[t];
		json_t *e;
		size_t i;
		int known = 0;

		json_array_foreach(json_object_get(truth, arrays[t][0]), i, e) {
			const char *key = json_string_value(json_object_get(e, arrays[t][1]));
			int64_t want = (int64_t)json_integer_value(json_object_get(e, arrays[t][2]));
			int64_t got = key_count(s, key);

			/* Only what changed is published: a key nobody voted for may have none. */
			cr_assert(got == want || (got == -1 && want == 0),
			          "%s: final \"%s\" is %" PRId64 ", truth %" PRId64, s->name, key, got, want);
			known += got >= 0;
		}
		cr_assert_eq(known, s->nkeys, "%s: %d keys, %d of them in the truth", s->name, s->nkeys,
		             known);
	}
}

/* Read the results topics to their ends as they are now. */
static void
kafka_drain(reader_t *rd)
{
	int64_t hi[3];
	double t0 = test_now_s();

	for (int t = 0; t < 3; t++) {
		int64_t lo;

		cr_assert_eq(rd_kafka_query_watermark_offsets(rd->rk, rd->topic[t], 0, &lo, &hi[t], 10000),
		             RD_KAFKA_RESP_ERR_NO_ERROR);
	}
	for (;;) {
		bool done = true;

		for (int t = 0; t < 3; t++)
			done &= rd->next_offset[t] >= hi[t];
		if (done)
			break;
		cr_assert(test_now_s() - t0 < 60, "results topics not read to their ends in 60 s");
		if (kafka_pump(rd) == 0)
			usleep(10000);
	}
}

typedef struct letters {
	const run_t *run;
	int starts;
	const char *votes_topic;
	uint64_t stride;           /* positions per partition */
	unsigned char *n;          /* dead letters per source position (saturating) */
	char *reason;              /* the reason index of the first one per position */
	int64_t *first_ts;         /* the first one's timestamp (its producer's clock) */
	int64_t *first_at;         /* and its place: partition << 48 | offset */
	long total, other_election, bad;
	long by_reason[TALLY_REASON__COUNT];
	char first_bad[512];
	/* Written twice: by which starts (the first copy's, the second's), and a few examples. */
	long pairs[MAX_STARTS + 1][MAX_STARTS + 1];
	char examples[4][256];
	int nexamples;
} letters_t;

/* The tallyd start that was running at wall clock ms (0: before the first). */
static int
start_at(const letters_t *l, int64_t ms)
{
	int s = 0;

	for (int i = 1; i <= l->starts; i++)
		if (l->run->start_ms[i] <= ms)
			s = i;
	return s;
}

static bool
header(rd_kafka_headers_t *h, const char *name, char *out, size_t size)
{
	const void *v;
	size_t n;

	if (rd_kafka_header_get_last(h, name, &v, &n) != RD_KAFKA_RESP_ERR_NO_ERROR)
		return false;
	snprintf(out, size, "%.*s", (int)n, (const char *)v);
	return true;
}

static void
on_letter(const rd_kafka_message_t *m, void *arg)
{
	letters_t *l = arg;
	rd_kafka_headers_t *h = NULL;
	char topic[160], part[24], off[24], election[80], reason[40];
	uint64_t p, o;
	int k;

	if (rd_kafka_message_headers(m, &h) != RD_KAFKA_RESP_ERR_NO_ERROR ||
	    !header(h, "source_topic", topic, sizeof(topic)) ||
	    !header(h, "source_partition", part, sizeof(part)) ||
	    !header(h, "source_offset", off, sizeof(off)) ||
	    !header(h, "election_id", election, sizeof(election)) ||
	    !header(h, "reason", reason, sizeof(reason))) {
		if (l->bad++ == 0)
			snprintf(l->first_bad, sizeof(l->first_bad), "offset %" PRId64 " of partition %d: "
			         "a header is missing", m->offset, (int)m->partition);
		return;
	}
	if (strcmp(election, ELECTION) != 0) {
		l->other_election++;
		return;
	}
	p = strtoull(part, NULL, 10);
	o = strtoull(off, NULL, 10);
	k = tally_reason_from_name(reason);
	if (strcmp(topic, l->votes_topic) != 0 || p >= N_PARTITIONS || o >= l->stride || k <= 0 ||
	    k >= TALLY_REASON__COUNT) {
		if (l->bad++ == 0)
			snprintf(l->first_bad, sizeof(l->first_bad), "source %s/%s/%s reason %s", topic,
			         part, off, reason);
		return;
	}
	l->total++;
	{
		uint64_t i = p * l->stride + o;
		rd_kafka_timestamp_type_t tt;
		int64_t ts = rd_kafka_message_timestamp(m, &tt);

		if (l->n[i] == 0) {
			l->reason[i] = (char)k;
			l->by_reason[k]++;
			l->first_ts[i] = ts;
			l->first_at[i] = (int64_t)m->partition << 48 | m->offset;
		} else {
			int s1 = start_at(l, l->first_ts[i]), s2 = start_at(l, ts);

			l->pairs[s1][s2]++;
			if (l->nexamples < 4)
				snprintf(l->examples[l->nexamples++], sizeof(l->examples[0]),
				         "source %" PRIu64 "/%" PRIu64 " (%s): at [%d]@%" PRId64 " by start %d, "
				         "again at [%d]@%" PRId64 " by start %d", p, o, reason,
				         (int)(l->first_at[i] >> 48), l->first_at[i] & (((int64_t)1 << 48) - 1), s1,
				         (int)m->partition, m->offset, s2);
		}
		if (l->n[i] < 255)
			l->n[i]++;
	}
}

/* votes_rejected: every rejected source position exactly once, reasons as the truth. */
static void
check_letters(run_t *r, int starts, json_t *truth)
{
	letters_t *l;
	long distinct = 0, twice = 0;
	char first_twice[128] = "";

	l = calloc(1, sizeof(*l));
	cr_assert_not_null(l);
	l->run = r;
	l->starts = starts;
	l->votes_topic = r->topics.topic[TALLY_KAFKA_VOTES].name;
	l->stride = (uint64_t)truth_int(truth, "messages") + 1;
	l->n = calloc(N_PARTITIONS * l->stride, 1);
	l->reason = calloc(N_PARTITIONS * l->stride, 1);
	l->first_ts = calloc(N_PARTITIONS * l->stride, sizeof(*l->first_ts));
	l->first_at = calloc(N_PARTITIONS * l->stride, sizeof(*l->first_at));
	cr_assert(l->n != NULL && l->reason != NULL && l->first_ts != NULL && l->first_at != NULL);
	kt_consume_all(r->topics.topic[TALLY_KAFKA_REJECTED].name, on_letter, l, 60);
	for (uint64_t i = 0; i < N_PARTITIONS * l->stride; i++) {
		if (l->n[i] > 0)
			distinct++;
		if (l->n[i] > 1 && twice++ == 0)
			snprintf(first_twice, sizeof(first_twice), "partition %" PRIu64 " offset %" PRIu64
			         " (%s) %u times", i / l->stride, i % l->stride,
			         tally_reason_name(l->reason[i]), l->n[i]);
	}
	fprintf(stderr, "dead letters: %ld messages, %ld source positions, %ld twice or more%s%s, "
	        "%ld of another election, %ld malformed\n", l->total, distinct, twice,
	        twice > 0 ? ", first: " : "", first_twice, l->other_election, l->bad);
	for (int a = 0; twice > 0 && a <= starts; a++)
		for (int b = 0; b <= starts; b++)
			if (l->pairs[a][b] > 0)
				fprintf(stderr, "dead letters written twice: %ld first by tallyd start %d, "
				        "again by start %d\n", l->pairs[a][b], a, b);
	for (int e = 0; e < l->nexamples; e++)
		fprintf(stderr, "dead letter written twice: %s\n", l->examples[e]);
	cr_assert_eq(l->bad, 0, "dead letters: %ld malformed, first: %s", l->bad, l->first_bad);
	cr_assert_eq(l->other_election, 0, "dead letters of another election");
	cr_assert_eq(twice, 0, "dead letters: %ld source positions written more than once, first: %s",
	             twice, first_twice);
	cr_assert_eq(distinct, truth_int(truth, "rejected_total"), "dead letters: source positions");
	cr_assert_eq(l->total, truth_int(truth, "rejected_total"), "dead letters: messages");
	for (int k = 1; k < TALLY_REASON__COUNT; k++)
		cr_assert_eq(l->by_reason[k],
		             (long)json_integer_value(json_object_get(json_object_get(truth, "rejected"),
		                                                      tally_reason_name(k))),
		             "dead letters: %s", tally_reason_name(k));
	free(l->n);
	free(l->reason);
	free(l->first_ts);
	free(l->first_at);
	free(l);
}

/* PostgreSQL: every accepted vote stored once, per candidate and region as the truth. */
static void
check_pg(json_t *truth)
{
	PGconn *c = pgtest_connect();
	PGresult *res;
	json_t *e;
	size_t i;

	cr_assert_eq(pgtest_count(c, "SELECT coalesce(sum(votes), 0) FROM vote_journal"), 0,
	             "the vote journal is not empty after --exit-idle-ms");
	cr_assert_eq(pgtest_count(c, "SELECT count(*) FROM votes"), truth_int(truth, "accepted"));
	cr_assert_eq(pgtest_count(c, "SELECT count(DISTINCT voter_id) FROM votes"),
	             truth_int(truth, "accepted"));
	cr_assert_eq(pgtest_count(c, "SELECT count(*) FROM votes WHERE election_id <> '" ELECTION "'"),
	             0);
	res = PQexec(c, "SELECT candidate_id::text, count(*) FROM votes GROUP BY 1");
	cr_assert_eq(PQresultStatus(res), PGRES_TUPLES_OK, "%s", PQerrorMessage(c));
	json_array_foreach(json_object_get(truth, "candidates"), i, e) {
		const char *id = json_string_value(json_object_get(e, "candidate_id"));
		long got = 0;

		for (int row = 0; row < PQntuples(res); row++)
			if (strcmp(PQgetvalue(res, row, 0), id) == 0)
				got = strtol(PQgetvalue(res, row, 1), NULL, 10);
		cr_assert_eq(got, (long)json_integer_value(json_object_get(e, "total_votes")),
		             "votes table: candidate %s", id);
	}
	PQclear(res);
	res = PQexec(c, "SELECT r.region, count(*) FROM votes v JOIN voters r USING (voter_id)"
	                " GROUP BY 1");
	cr_assert_eq(PQresultStatus(res), PGRES_TUPLES_OK, "%s", PQerrorMessage(c));
	json_array_foreach(json_object_get(truth, "regions"), i, e) {
		const char *name = json_string_value(json_object_get(e, "region"));
		long got = 0;

		for (int row = 0; row < PQntuples(res); row++)
			if (strcmp(PQgetvalue(res, row, 0), name) == 0)
				got = strtol(PQgetvalue(res, row, 1), NULL, 10);
		cr_assert_eq(got, (long)json_integer_value(json_object_get(e, "count")),
		             "votes table: region %s", name);
	}
	PQclear(res);
	cr_assert_eq(pgtest_count(c, "SELECT coalesce(sum(next_offset), 0) FROM checkpoint_offsets"
	                             " WHERE topic LIKE '%votes_topic'"),
	             truth_int(truth, "messages"), "stored offsets");
	PQfinish(c);
}

static long
checkpointed(PGconn *c)
{
	return pgtest_count(c, "SELECT coalesce(sum(next_offset), 0) FROM checkpoint_offsets"
	                       " WHERE topic LIKE '%votes_topic'");
}

/* ---- the test -------------------------------------------------------------------------------- */

static char out[1 << 16];

Test(tallyd_kill, with_reader, .timeout = 600)
{
	static reader_t rd;
	run_t r;
	const char *env = getenv("TALLY_KILL_SEED");
	uint64_t seed = env != NULL ? strtoull(env, NULL, 10) : (uint64_t)time(NULL), rng;
	char err[256], group[96];
	double t_start = test_now_s(), t_sim = 0, t_final;
	json_t *truth;
	PGconn *pg;
	int status;

	memset(&r, 0, sizeof(r));
	memset(&rd, 0, sizeof(rd));
	pgtest_schema_create();
	snprintf(r.prefix, sizeof(r.prefix), "tkill%d_%ld_", (int)getpid(), (long)time(NULL));
	snprintf(r.pgopt, sizeof(r.pgopt), "--pg.options=%s", pgtest_options());
	snprintf(r.log, sizeof(r.log), "/tmp/%stallyd.log", r.prefix);
	snprintf(r.simlog, sizeof(r.simlog), "/tmp/%stally-sim.log", r.prefix);
	snprintf(r.truth_path, sizeof(r.truth_path), "/tmp/%struth.json", r.prefix);
	cr_assert_eq(tally_kafka_topics_init(&r.topics, r.prefix, N_PARTITIONS, err, sizeof(err)), 0);
	{
		char parts[8];
		const char *args[] = {"--seed", GEN_SEED, "--voters", VOTERS, "--candidates",
		                      CANDIDATES, "--regions", REGIONS, "--partitions", parts,
		                      "--topic-prefix", r.prefix, r.pgopt, "--quiet", NULL};

		snprintf(parts, sizeof(parts), "%d", N_PARTITIONS);
		cr_assert_eq(test_run("tally-gen", args, out, sizeof(out)), 0, "tally-gen: %s", out);
	}

	/* The reader, from before the first tallyd. */
	rd.s[S_CAND].name = r.topics.topic[TALLY_KAFKA_RESULTS_CANDIDATE].name;
	rd.s[S_REGION].name = r.topics.topic[TALLY_KAFKA_RESULTS_LOCATION].name;
	rd.s[S_PARTY].name = r.topics.topic[TALLY_KAFKA_RESULTS_PARTY].name;
	rd.s[S_SSE].name = "/api/stream";
	rd.s[S_POLL].name = "/api/results";
	for (int i = 0; i < S__COUNT; i++)
		rd.s[i].version = -1;
	for (int t = 0; t < 3; t++)
		rd.topic[t] = rd.s[t].name;
	snprintf(rd.log, sizeof(rd.log), "%s", r.log);
	snprintf(group, sizeof(group), "%sreader", r.prefix);
	kafka_open(&rd, group);
	cr_assert_eq(curl_global_init(CURL_GLOBAL_DEFAULT), CURLE_OK);
	rd.multi = curl_multi_init();
	cr_assert_not_null(rd.multi);

	{
		const char *args[] = {"--topic-prefix", r.prefix, r.pgopt, "--truth", r.truth_path,
		                      "--rate", RATE, "--seed", GEN_SEED, "--quiet", NULL};

		r.sim = test_spawn("tally-sim", args, r.simlog);
		cr_assert(r.sim > 0);
	}
	fprintf(stderr, "kill test seed %" PRIu64 " (TALLY_KILL_SEED=%" PRIu64 " replays the kill "
	        "instants); tallyd log %s\n", seed, seed, r.log);
	rng = seed * 0x9E3779B97F4A7C15ull + 1;
	pg = pgtest_connect();

	/* Kill after kill while the votes come, and at least MIN_KILLS. */
	for (;;) {
		bool after_live = uniform(&rng) < KILL_LIVE;
		double wait = after_live ? between(&rng, AFTER_LIVE_S) : between(&rng, AFTER_START_S);
		double t0, t_live = 0, t_kill;

		spawn_tallyd(&r, &rd, NULL);
		t0 = test_now_s();
		t_kill = after_live ? 0 : t0 + wait;
		while (t_kill == 0 || test_now_s() < t_kill) {
			pump(&rd);
			if (t_live == 0 && rd.live) {
				t_live = test_now_s();
				if (after_live)
					t_kill = t_live + wait;
			}
			if (t_kill == 0)
				cr_assert(test_now_s() - t0 < LIVE_WITHIN_S, "tallyd start %d not live "
				          "within %.0f s", rd.start, LIVE_WITHIN_S);
			check_reader(&r, &rd);
			if (waitpid(r.tallyd, &status, WNOHANG) == r.tallyd) {
				r.tallyd = 0;
				tt_dump_tail(r.log, 16384);
				cr_assert_fail("tallyd start %d exited by itself (status %d)", rd.start,
				               status);
			}
			if (t_sim == 0 && sim_done(&r))
				t_sim = test_now_s() - t_start;
		}
		kill(r.tallyd, SIGKILL);
		cr_assert_eq(waitpid(r.tallyd, &status, 0), r.tallyd);
		cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
		          "tallyd start %d ended before its kill (status %d)", rd.start, status);
		r.tallyd = 0;
		rd.kills++;
		if (!rd.live)
			log_scan(&rd);
		fprintf(stderr, "kill %d: tallyd start %d after %.2f s up, %s (%.1f s into the run); "
		        "%ld votes read in checkpoints; readings so far: topics %ld/%ld/%ld, "
		        "stream %ld (%ld connections), results %ld\n",
		        rd.kills, rd.start, test_now_s() - t0,
		        after_live ? "counting" : rd.live ? "anywhere: counting" : "anywhere: not yet live",
		        test_now_s() - t_start, checkpointed(pg),
		        rd.s[S_CAND].readings, rd.s[S_REGION].readings, rd.s[S_PARTY].readings,
		        rd.s[S_SSE].readings, rd.sse_connects, rd.s[S_POLL].readings);
		if (t_sim == 0 && sim_done(&r))
			t_sim = test_now_s() - t_start;
		if (t_sim > 0 && rd.kills >= MIN_KILLS)
			break;
		cr_assert(test_now_s() - t_start < 300, "tally-sim not done within 300 s");
	}
	PQfinish(pg);
	fprintf(stderr, "tally-sim done after %.1f s; %d kills\n", t_sim, rd.kills);

	/* The last start reads to the end and exits once idle; the reader goes on meanwhile. */
	t_final = test_now_s();
	spawn_tallyd(&r, &rd, EXIT_IDLE_MS);
	for (;;) {
		pump(&rd);
		check_reader(&r, &rd);
		if (waitpid(r.tallyd, &status, WNOHANG) == r.tallyd)
			break;
		cr_assert(test_now_s() - t_final < 180, "the last tallyd did not finish within 180 s");
	}
	r.tallyd = 0;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		tt_dump_tail(r.log, 16384);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the last tallyd: status %d",
	          status);
	fprintf(stderr, "the last tallyd finished in %.1f s\n", test_now_s() - t_final);
	http_drop(&rd);
	kafka_drain(&rd);
	check_reader(&r, &rd);

	fprintf(stderr, "readings checked: %s %ld, %s %ld, %s %ld, /api/stream %ld events "
	        "(%ld connections), /api/results %ld (503 while starting or stopping: %ld); "
	        "%d kills, %d tallyd starts\n",
	        rd.s[S_CAND].name, rd.s[S_CAND].readings, rd.s[S_REGION].name,
	        rd.s[S_REGION].readings, rd.s[S_PARTY].name, rd.s[S_PARTY].readings,
	        rd.s[S_SSE].readings, rd.sse_connects, rd.s[S_POLL].readings, rd.refused, rd.kills,
	        rd.start);
	cr_assert_geq(rd.kills, MIN_KILLS);
	for (int i = 0; i < S__COUNT; i++)
		cr_assert_gt(rd.s[i].readings, 0, "%s: nothing read", rd.s[i].name);

	/* Exact at the end. */
	truth = json_load_file(r.truth_path, 0, NULL);
	cr_assert_not_null(truth, "no truth from tally-sim");
	fprintf(stderr, "truth: %" PRId64 " messages, %" PRId64 " accepted, %" PRId64 " rejected\n",
	        truth_int(truth, "messages"), truth_int(truth, "accepted"),
	        truth_int(truth, "rejected_total"));
	{
		int reasons = 0;
		json_t *e;
		const char *k;

		json_object_foreach(json_object_get(truth, "rejected"), k, e)
			reasons += json_integer_value(e) > 0;
		cr_assert_geq(reasons, 7, "the stream has rejections of only %d reasons", reasons);
	}
	check_topics_final(&rd, truth);
	check_http_final(&rd.s[S_SSE], truth);
	check_http_final(&rd.s[S_POLL], truth);
	check_pg(truth);
	check_letters(&r, rd.start, truth);

	json_decref(truth);
	for (int i = 0; i < S__COUNT; i++)
		json_decref(rd.s[i].last);
	free(rd.sse_buf);
	free(rd.sse_data);
	free(rd.poll_body);
	curl_multi_cleanup(rd.multi);
	rd_kafka_consumer_close(rd.rk);
	rd_kafka_destroy(rd.rk);
	{
		const char *names[TALLY_KAFKA_N_TOPICS];

		for (int i = 0; i < TALLY_KAFKA_N_TOPICS; i++)
			names[i] = r.topics.topic[i].name;
		kt_delete_topics(names, TALLY_KAFKA_N_TOPICS);
	}
	pgtest_schema_drop();
	unlink(r.log);
	unlink(r.simlog);
	unlink(r.truth_path);
	fprintf(stderr, "kill test: %.1f s in all\n", test_now_s() - t_start);
}

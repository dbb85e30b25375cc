/*
 * tally-bench latency: how long a vote takes from produce() to being visible in tallyd's
 * results, on the results topic and on /api/stream.
 *
 * The run loads a registry with tally-gen into its own schema and topic prefix (as e2e
 * does), starts tallyd on it (checkpointing at its defaults, --http on a free port) and
 * waits until it is live and has written its registry image (1000 warm-up votes, sent and
 * acknowledged before tallyd starts, are counted first). Then, in this process:
 * - the producer (the main thread; librdkafka, idempotent, acks=all, --linger-ms) sends
 *   one vote per adult registered voter, each voter once, all valid, compact, at a steady
 *   --rate for --seconds, and records each vote's send time (CLOCK_MONOTONIC, read just
 *   before its produce() call; the vote carries it too, as "sent_at_ns", which tally's
 *   decoder ignores) and, from its delivery report, when Kafka acknowledged it;
 * - a results reader (a librdkafka consumer, fetch.wait.max.ms 5, fetch.min.bytes 1)
 *   follows aggregated_votes_per_candidate, and an SSE reader (libcurl) follows
 *   /api/stream. Each records, with the same clock, every moment its surface's total
 *   grows: the sum over candidates of each candidate's total_votes at the newest version
 *   seen for it.
 * Vote k (1-based, in send order) is visible on a surface at the first recorded moment its
 * total is >= k; its latency is that moment minus its send time. Every vote is accepted,
 * so the totals end exactly at the votes sent, which is checked.
 *
 * DESIGN (threads): the main thread produces and then computes; each reader thread owns
 * its observations and publishes its running total with a relaxed store (the main thread
 * only polls it to know when to stop); the arrays are read after the threads are joined.
 */
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include <tally/atomic.h>
#include <tally/kafka.h>
#include <tally/time.h>

#include "bench.h"
#include "bench_svc.h"

#define MAX_CANDIDATES 4096
#define MAX_TALLYD_ARGS 16

/* One moment a surface's total grew. */
typedef struct obs {
	double t;
	uint64_t total;
} obs_t;

typedef struct surface {
	const char *name;
	obs_t *v;
	size_t n, cap;
	uint64_t total;       /* relaxed: read by the main thread while running */
	uint64_t updates;     /* messages or events parsed */
	uint64_t bad;         /* messages or events that did not parse */
	int ready;            /* relaxed: first message or event seen */
	/* Per candidate id: total_votes at the newest version seen (results topic). */
	char (*ids)[40];
	int64_t *version;
	uint64_t *votes;
	uint32_t ncand;
} surface_t;

/* The producer's delivery reports: when the broker acknowledged each vote. */
typedef struct acks {
	double *at;           /* [n]; 0 until acknowledged */
	uint64_t failed;
	uint64_t n;
} acks_t;

static void
on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	acks_t *a = opaque;
	uint64_t k = (uint64_t)(uintptr_t)m->_private;

	(void)rk;
	if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
		if (a->failed++ == 0)
			fprintf(stderr, "tally-bench: vote %" PRIu64 " not delivered: %s\n", k,
			        rd_kafka_err2str(m->err));
	} else if (k < a->n) {
		a->at[k] = bench_now();
	}
}

typedef struct lat {
	const bench_run_t *run;
	int stop;                      /* relaxed */
	surface_t results, stream;
	rd_kafka_t *rk;                /* results reader */
	char url[128];
	char sse_err[CURL_ERROR_SIZE];
	/* SSE parsing state. */
	char *line;
	size_t line_len, line_cap;
	char *data;
	size_t data_len, data_cap;
} lat_t;

static void
surface_record(surface_t *s, uint64_t total, double now)
{
	if (total <= s->total && s->n > 0)
		return;
	if (s->n == s->cap) {
		size_t cap = s->cap ? 2 * s->cap : 4096;
		obs_t *v = realloc(s->v, cap * sizeof(*v));

		if (v == NULL)
			return;
		s->v = v;
		s->cap = cap;
	}
	s->v[s->n++] = (obs_t){now, total};
	tally_store_relaxed(&s->total, total);
}

/* ---- results topic ------------------------------------------------------------------- */

/* One aggregated_votes_per_candidate message: candidate_id (or the key), total_votes,
 * version. Returns the surface's new total, or -1 if the message did not parse. */
static int64_t
results_apply(surface_t *s, const rd_kafka_message_t *m)
{
	json_error_t jerr;
	json_t *o = json_loadb(m->payload, m->len, 0, &jerr), *jid, *jv, *jver;
	char id[40];
	uint32_t i;
	uint64_t sum = 0;
	int64_t ver;

	if (o == NULL)
		return -1;
	jid = json_object_get(o, "candidate_id");
	jv = json_object_get(o, "total_votes");
	jver = json_object_get(o, "version");
	if (!json_is_integer(jv) || (!json_is_string(jid) && m->key_len == 0)) {
		json_decref(o);
		return -1;
	}
	if (json_is_string(jid))
		snprintf(id, sizeof(id), "%s", json_string_value(jid));
	else
		snprintf(id, sizeof(id), "%.*s", (int)(m->key_len < 39 ? m->key_len : 39),
		         (const char *)m->key);
	ver = json_is_integer(jver) ? (int64_t)json_integer_value(jver) : INT64_MAX;
	for (i = 0; i < s->ncand; i++)
		if (strcmp(s->ids[i], id) == 0)
			break;
	if (i == s->ncand) {
		if (s->ncand == MAX_CANDIDATES) {
			json_decref(o);
			return -1;
		}
		snprintf(s->ids[i], sizeof(s->ids[i]), "%s", id);
		s->version[i] = INT64_MIN;
		s->ncand++;
	}
	/* The newest version wins; a message without one is taken as newest. */
	if (ver >= s->version[i]) {
		s->version[i] = ver == INT64_MAX ? s->version[i] : ver;
		s->votes[i] = (uint64_t)json_integer_value(jv);
	}
	json_decref(o);
	for (uint32_t j = 0; j < s->ncand; j++)
		sum += s->votes[j];
	return (int64_t)sum;
}

static void *
results_reader(void *arg)
{
	lat_t *L = arg;
	surface_t *s = &L->results;

	while (!tally_load_relaxed(&L->stop)) {
		rd_kafka_message_t *m = rd_kafka_consumer_poll(L->rk, 50);
		double now = bench_now();
		int64_t total;

		if (m == NULL)
			continue;
		if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
			if ((total = results_apply(s, m)) < 0) {
				s->bad++;
			} else {
				s->updates++;
				surface_record(s, (uint64_t)total, now);
				tally_store_relaxed(&s->ready, 1);
			}
		} else if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
			fprintf(stderr, "tally-bench: results reader: %s\n", rd_kafka_message_errstr(m));
		}
		rd_kafka_message_destroy(m);
	}
	return NULL;
}

/* ---- /api/stream ---------------------------------------------------------------------- */

/* The total in one SSE event's data: the sum of candidates[].total_votes, or "accepted"
 * if there is no candidates array. -1 if it is not such a JSON object. */
static int64_t
sse_total(const char *data, size_t len)
{
	json_error_t jerr;
	json_t *o = json_loadb(data, len, 0, &jerr), *c, *a;
	int64_t sum = -1;

	if (o == NULL)
		return -1;
	if (json_is_array(c = json_object_get(o, "candidates"))) {
		size_t i;
		json_t *e;

		sum = 0;
		json_array_foreach(c, i, e) {
			json_t *v = json_object_get(e, "total_votes");

			if (!json_is_integer(v)) {
				sum = -1;
				break;
			}
			sum += (int64_t)json_integer_value(v);
		}
	} else if (json_is_integer(a = json_object_get(o, "accepted"))) {
		sum = (int64_t)json_integer_value(a);
	}
	json_decref(o);
	return sum;
}

static int
buf_put(char **p, size_t *len, size_t *cap, const char *s, size_t n)
{
	if (*len + n + 1 > *cap) {
		size_t c = *cap ? *cap : 65536;
		char *q;

		while (c < *len + n + 1)
			c *= 2;
		if ((q = realloc(*p, c)) == NULL)
			return -1;
		*p = q;
		*cap = c;
	}
	memcpy(*p + *len, s, n);
	*len += n;
	(*p)[*len] = '\0';
	return 0;
}

/* One complete line of the event stream (without its end of line). */
static void
sse_line(lat_t *L, const char *line, size_t n, double now)
{
	surface_t *s = &L->stream;

	if (n == 0) {
		/* Blank line: dispatch the event, if it had data. */
		if (L->data_len > 0) {
			int64_t total = sse_total(L->data, L->data_len);

			if (total < 0) {
				s->bad++;
			} else {
				s->updates++;
				surface_record(s, (uint64_t)total, now);
				tally_store_relaxed(&s->ready, 1);
			}
		}
		L->data_len = 0;
		return;
	}
	if (n >= 5 && memcmp(line, "data:", 5) == 0) {
		size_t skip = n > 5 && line[5] == ' ' ? 6 : 5;

		/* Several data lines make one value, joined by newlines. */
		if (L->data_len > 0)
			buf_put(&L->data, &L->data_len, &L->data_cap, "\n", 1);
		buf_put(&L->data, &L->data_len, &L->data_cap, line + skip, n - skip);
	}
	/* "event:", "id:", "retry:" and ":" comments (heartbeats) carry no count. */
}

static size_t
sse_write(char *ptr, size_t size, size_t nmemb, void *arg)
{
	lat_t *L = arg;
	size_t n = size * nmemb;
	double now = bench_now();

	for (size_t i = 0; i < n; i++) {
		if (ptr[i] == '\n') {
			size_t len = L->line_len;

			if (len > 0 && L->line[len - 1] == '\r')
				len--;
			sse_line(L, L->line ? L->line : "", len, now);
			L->line_len = 0;
		} else {
			size_t j = i;

			while (j < n && ptr[j] != '\n')
				j++;
			if (buf_put(&L->line, &L->line_len, &L->line_cap, ptr + i, j - i) != 0)
				return 0;
			i = j - 1;
		}
	}
	return n;
}

static int
sse_progress(void *arg, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
	lat_t *L = arg;

	(void)a, (void)b, (void)c, (void)d;
	return tally_load_relaxed(&L->stop) ? 1 : 0;
}

static void *
sse_reader(void *arg)
{
	lat_t *L = arg;
	CURL *c = curl_easy_init();
	CURLcode rc;

	if (c == NULL)
		return NULL;
	curl_easy_setopt(c, CURLOPT_URL, L->url);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sse_write);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, L);
	curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, sse_progress);
	curl_easy_setopt(c, CURLOPT_XFERINFODATA, L);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, L->sse_err);
	curl_easy_setopt(c, CURLOPT_TCP_NODELAY, 1L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	rc = curl_easy_perform(c);
	if (rc != CURLE_OK && rc != CURLE_ABORTED_BY_CALLBACK && !tally_load_relaxed(&L->stop))
		fprintf(stderr, "tally-bench: %s: %s\n", L->url,
		        L->sse_err[0] ? L->sse_err : curl_easy_strerror(rc));
	curl_easy_cleanup(c);
	return NULL;
}

/* ---- the votes ------------------------------------------------------------------------ */

/* Fixed-width slots for the rows of a one-column COPY ... TO STDOUT (text). */
typedef struct column {
	char *slots;
	size_t width, max, rows;
} column_t;

static void
column_row(void *arg, const char *data, int len)
{
	column_t *c = arg;

	if (c->rows < c->max && (size_t)len <= c->width) {
		memcpy(c->slots + c->rows * c->width, data, (size_t)len - 1);
		c->slots[c->rows * c->width + (size_t)len - 1] = '\0';
		c->rows++;
	}
}

/* Every row of a one-column COPY ... TO STDOUT (text), each without its newline, into
 * fixed-width slots of width bytes; returns the rows, or -1 after printing why. */
static int64_t
copy_column(PGconn *conn, const char *sql, char *slots, size_t width, size_t max)
{
	column_t c = {slots, width, max, 0};

	return bench_pg_copy_rows(conn, sql, column_row, &c, NULL) < 0 ? -1 : (int64_t)c.rows;
}

/* ---- options and the run -------------------------------------------------------------- */

typedef struct lopts {
	double rate, seconds;
	int partitions, linger_ms;
	uint64_t voters;
	const char *bindir;
	bool keep;
	double steady_from;
	char *tallyd_args[MAX_TALLYD_ARGS];
	int ntallyd_args;
} lopts_t;

enum { L_RATE = 1, L_SECONDS, L_PARTS, L_VOTERS, L_LINGER, L_KEEP, L_BIN, L_STEADY, L_TARG,
       L_HELP };

static const struct option lat_long_opts[] = {
	{"rate", required_argument, NULL, L_RATE},
	{"seconds", required_argument, NULL, L_SECONDS},
	{"partitions", required_argument, NULL, L_PARTS},
	{"voters", required_argument, NULL, L_VOTERS},
	{"linger-ms", required_argument, NULL, L_LINGER},
	{"keep", no_argument, NULL, L_KEEP},
	{"bin", required_argument, NULL, L_BIN},
	{"steady-from", required_argument, NULL, L_STEADY},
	{"tallyd-arg", required_argument, NULL, L_TARG},
	{"help", no_argument, NULL, L_HELP},
	{NULL, 0, NULL, 0}};

static void
latency_usage(FILE *f)
{
	fprintf(f,
	        "usage: tally-bench latency [options]\n\n"
	        "Loads a registry (tally-gen) into a private schema and topic prefix, starts\n"
	        "tallyd on it (checkpointing at its defaults, --http on a free port) and, once it\n"
	        "is live and has written its registry image, produces one valid vote per adult\n"
	        "voter at a steady rate, recording each vote's send time. Two readers in this\n"
	        "process follow aggregated_votes_per_candidate (fetch.wait.max.ms 5,\n"
	        "fetch.min.bytes 1) and /api/stream. Vote k (in send order) is visible on a\n"
	        "surface at the first moment the surface's total (the sum over candidates of\n"
	        "total_votes at the newest version seen) is >= k; latency = that moment - its\n"
	        "send time (one CLOCK_MONOTONIC). The final totals must equal the votes sent.\n\n"
	        "options:\n"
	        "  --rate N        votes per second (default 100000)\n"
	        "  --seconds S     how long to produce (default 20)\n"
	        "  --partitions N  partitions of votes_topic (default 12)\n"
	        "  --voters N      voters to register (default: rate x seconds x 1.05 + 1000, so\n"
	        "                  that enough are adults)\n"
	        "  --linger-ms N   the producer's linger.ms (default 5)\n"
	        "  --keep          keep the schema, topics and logs at the end\n"
	        "  --bin DIR       where tally-gen and tallyd are (default: next to tally-bench)\n"
	        "  --steady-from S also give the percentiles of the votes sent from second S on\n"
	        "                  (default 5: the broker's JIT and the first cuts warm up before)\n"
	        "  --tallyd-arg A  pass A to tallyd (repeatable; e.g. --tallyd-arg\n"
	        "                  --checkpoint.interval.ms=25)\n"
	        "\n"
	        "Needs TALLY_KAFKA_BROKERS and TALLY_PG_DSN: run 'eval \"$(scripts/services up)\"' "
	        "first.\n");
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

typedef struct pct {
	double p50, p99, max;
	uint64_t unseen;
} pct_t;

/* Percentiles of v[0..m) (sorted in place), in the unit given. */
static void
percentiles(double *v, size_t m, pct_t *out)
{
	out->p50 = out->p99 = out->max = 0;
	if (m == 0)
		return;
	qsort(v, m, sizeof(*v), cmp_double);
	out->p50 = v[(size_t)((double)(m - 1) * 0.50 + 0.5)];
	out->p99 = v[(size_t)ceil((double)m * 0.99) - 1];
	out->max = v[m - 1];
}

/* Each vote's latency on surface s in ms (sent[k] is vote k+1's send time), in send order:
 * vote k is visible when the total is >= base + k (base: votes counted before the first);
 * a vote never visible gets -1. Returns how many were never visible. */
static uint64_t
latencies(const surface_t *s, const double *sent, uint64_t base, uint64_t n, double *lat)
{
	size_t j = 0;
	uint64_t unseen = 0;

	for (uint64_t k = 1; k <= n; k++) {
		while (j < s->n && s->v[j].total < base + k)
			j++;
		if (j == s->n) {
			lat[k - 1] = -1;
			unseen++;
		} else {
			lat[k - 1] = (s->v[j].t - sent[k - 1]) * 1e3;
		}
	}
	return unseen;
}

/* Percentiles of lat[from..to) that are >= 0, using tmp as scratch. */
static void
range_pct(const double *lat, uint64_t from, uint64_t to, double *tmp, pct_t *out)
{
	size_t m = 0;

	for (uint64_t k = from; k < to; k++)
		if (lat[k] >= 0)
			tmp[m++] = lat[k];
	percentiles(tmp, m, out);
	out->unseen = (to - from) - m;
}

/* Mean and largest gap between the moments a surface's total grew, in ms, over [t0, t1]. */
static void
gaps(const surface_t *s, double t0, double t1, double *mean, double *max)
{
	double prev = -1, sum = 0;
	uint64_t k = 0;

	*mean = *max = 0;
	for (size_t i = 0; i < s->n; i++) {
		if (s->v[i].t < t0 || s->v[i].t > t1)
			continue;
		if (prev >= 0) {
			double g = (s->v[i].t - prev) * 1e3;

			sum += g;
			k++;
			if (g > *max)
				*max = g;
		}
		prev = s->v[i].t;
	}
	if (k > 0)
		*mean = sum / (double)k;
}

/* Wait for a line containing key in tallyd's log, up to timeout_s; returns the text after
 * the key (in *text, which the caller frees) or NULL. Stops early if tallyd exits. */
static const char *
wait_log(const bench_run_t *run, const char *log, pid_t pid, const char *key, double timeout_s,
         char **text)
{
	double t0 = bench_now();
	int st;

	for (;;) {
		const char *p;

		free(*text);
		*text = bench_slurp(bench_log_path(run, log));
		if ((p = bench_log_find(*text, key, false)) != NULL)
			return p;
		if (waitpid(pid, &st, WNOHANG) == pid) {
			fprintf(stderr, "tally-bench: tallyd exited (status %d) before \"%s\"\n",
			        WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st), key);
			bench_log_tail(bench_log_path(run, log), 20);
			return NULL;
		}
		if (bench_now() - t0 > timeout_s)
			return NULL;
		bench_sleep_ms(10);
	}
}

/* The producer: idempotent, acks=all (as tally's own), with a delivery report per vote
 * that records when the broker acknowledged it. NULL after printing why. */
static rd_kafka_t *
producer_new(const bench_run_t *run, int linger_ms, acks_t *acks)
{
	char err[512], linger[16];
	/* The local queue holds a whole run, so produce() never waits for room: a vote late
	 * to Kafka shows in the acknowledgement times, not as a send behind schedule. */
	const char *kv[] = {"enable.idempotence", "true", "acks", "all", "linger.ms", linger,
	                    "queue.buffering.max.messages", "10000000",
	                    "queue.buffering.max.kbytes", "2097151"};
	rd_kafka_conf_t *kc = tally_kafka_conf_new(run->brokers, NULL, 0, err, sizeof(err));
	rd_kafka_t *rk;

	snprintf(linger, sizeof(linger), "%d", linger_ms);
	if (kc == NULL) {
		fprintf(stderr, "tally-bench: %s\n", err);
		return NULL;
	}
	for (size_t i = 0; i < sizeof(kv) / sizeof(kv[0]); i += 2)
		if (rd_kafka_conf_set(kc, kv[i], kv[i + 1], err, sizeof(err)) != RD_KAFKA_CONF_OK) {
			fprintf(stderr, "tally-bench: %s: %s\n", kv[i], err);
			rd_kafka_conf_destroy(kc);
			return NULL;
		}
	rd_kafka_conf_set_opaque(kc, acks);
	rd_kafka_conf_set_dr_msg_cb(kc, on_delivery);
	if ((rk = rd_kafka_new(RD_KAFKA_PRODUCER, kc, err, sizeof(err))) == NULL) {
		fprintf(stderr, "tally-bench: could not create a Kafka producer: %s\n", err);
		rd_kafka_conf_destroy(kc);
	}
	return rk;
}

/* What the votes are made of. */
typedef struct ballots {
	const char *topic;
	char *ids;                          /* voter ids, 40 bytes each */
	char (*cands)[40];
	uint64_t ncand;
	char voting_time[24];               /* "YYYY-MM-DD HH:MM:SS", inside the window */
} ballots_t;

/* Produce vote i (voter ids[i]); opaque k is its delivery report's index (UINT64_MAX: not
 * recorded). now is the send time it carries. 0, or -1 after printing why. */
static int
produce_vote(rd_kafka_t *rk, const ballots_t *b, uint64_t i, uint64_t k, double now)
{
	const char *id = b->ids + i * 40;
	char msg[256];
	rd_kafka_resp_err_t e;
	int len = snprintf(msg, sizeof(msg),
	                   "{\"voter_id\":\"%s\",\"candidate_id\":\"%s\",\"voting_time\":\"%s\","
	                   "\"sent_at_ns\":%.0f}",
	                   id, b->cands[i % b->ncand], b->voting_time, now * 1e9);

	while ((e = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(b->topic), RD_KAFKA_V_KEY(id, strlen(id)),
	                              RD_KAFKA_V_VALUE(msg, (size_t)len),
	                              RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
	                              RD_KAFKA_V_OPAQUE((void *)(uintptr_t)k), RD_KAFKA_V_END)) ==
	       RD_KAFKA_RESP_ERR__QUEUE_FULL)
		rd_kafka_poll(rk, 1);
	if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
		fprintf(stderr, "tally-bench: could not produce vote %" PRIu64 ": %s\n", i,
		        rd_kafka_err2str(e));
		return -1;
	}
	return 0;
}

#define WARMUP_VOTES 1000

int
tally_bench_latency(int argc, char **argv)
{
	lopts_t o = {.rate = 100000, .seconds = 20, .partitions = 12, .linger_ms = 5,
	             .steady_from = 5};
	bench_run_t run;
	lat_t L;
	ballots_t b;
	PGconn *conn = NULL;
	char (*cands)[40] = NULL, *text = NULL;
	double *sent = NULL, behind = 0, t_end = 0;
	int64_t nvoters = 0, ncand = 0, opens_at = 0;
	uint64_t n, base = 0;
	pid_t tallyd = -1;
	pthread_t th_res, th_sse;
	bool res_started = false, sse_started = false, ok = false;
	rd_kafka_t *prod = NULL;
	acks_t acks = {0};
	unsigned port = 0;
	int c;

	/* Line by line, also into a file: a run is long and its lines are its progress. */
	setvbuf(stdout, NULL, _IOLBF, 0);
	memset(&L, 0, sizeof(L));
	memset(&b, 0, sizeof(b));
	curl_global_init(CURL_GLOBAL_DEFAULT);
	optind = 1;
	while ((c = getopt_long(argc, argv, "", lat_long_opts, NULL)) != -1) {
		switch (c) {
		case L_RATE: o.rate = strtod(optarg, NULL); break;
		case L_SECONDS: o.seconds = strtod(optarg, NULL); break;
		case L_PARTS: o.partitions = atoi(optarg); break;
		case L_VOTERS: o.voters = strtoull(optarg, NULL, 10); break;
		case L_LINGER: o.linger_ms = atoi(optarg); break;
		case L_KEEP: o.keep = true; break;
		case L_BIN: o.bindir = optarg; break;
		case L_STEADY: o.steady_from = strtod(optarg, NULL); break;
		case L_TARG:
			if (o.ntallyd_args == MAX_TALLYD_ARGS) {
				fprintf(stderr, "tally-bench: at most %d --tallyd-arg\n", MAX_TALLYD_ARGS);
				return 2;
			}
			o.tallyd_args[o.ntallyd_args++] = optarg;
			break;
		case L_HELP: latency_usage(stdout); return 0;
		default: latency_usage(stderr); return 2;
		}
	}
	if (optind < argc || !(o.rate >= 1 && o.rate <= 1e7) || !(o.seconds > 0) ||
	    o.partitions < 1 || o.linger_ms < 0 || o.rate * o.seconds > 1e9 ||
	    !(o.steady_from >= 0 && o.steady_from < o.seconds)) {
		latency_usage(stderr);
		return 2;
	}
	n = (uint64_t)(o.rate * o.seconds + 0.5);
	if (n < 2) {
		latency_usage(stderr);
		return 2;
	}
	if (o.voters == 0)
		o.voters = n + n / 20 + WARMUP_VOTES + 1000;
	if (bench_run_init(&run, "lat", argv[0], o.bindir, NULL, o.keep) != 0)
		return 1;
	L.run = &run;
	L.results.name = "results topic";
	L.stream.name = "/api/stream";
	L.results.ids = calloc(MAX_CANDIDATES, sizeof(*L.results.ids));
	L.results.version = calloc(MAX_CANDIDATES, sizeof(*L.results.version));
	L.results.votes = calloc(MAX_CANDIDATES, sizeof(*L.results.votes));
	sent = calloc(n, sizeof(*sent));
	acks.at = calloc(n, sizeof(*acks.at));
	acks.n = n;
	b.ids = malloc((n + WARMUP_VOTES) * 40);
	cands = calloc(MAX_CANDIDATES, sizeof(*cands));
	if (L.results.ids == NULL || L.results.version == NULL || L.results.votes == NULL ||
	    sent == NULL || acks.at == NULL || b.ids == NULL || cands == NULL) {
		fprintf(stderr, "tally-bench: out of memory\n");
		goto out;
	}
	b.topic = run.votes_topic;
	b.cands = cands;

	/* ---- the registry ---- */
	{
		char voters[32], parts[32];
		char *gargv[] = {"tally-gen", "--voters", voters, "--partitions", parts,
		                 "--topic-prefix", run.prefix, run.pgopt, "--quiet", NULL};
		double secs;

		snprintf(voters, sizeof(voters), "%" PRIu64, o.voters);
		snprintf(parts, sizeof(parts), "%d", o.partitions);
		if (bench_schema_create(&run) != 0 ||
		    (secs = bench_run_child(&run, "tally-gen", gargv, "tally-gen.log")) < 0)
			goto out;
		printf("load registry (tally-gen): %" PRIu64 " voters in %.3f s\n", o.voters, secs);
	}
	if ((conn = bench_pg(&run, true)) == NULL ||
	    (opens_at = bench_pg_int(conn, "SELECT extract(epoch FROM opens_at)::bigint FROM "
	                                   "elections WHERE election_id = 'general'")) <= 0)
		goto out;
	/* Adults on election day (the core's rule: 18 or older on the UTC date polls open),
	 * with a day's margin; every one of them votes once. */
	nvoters = copy_column(conn,
	                      "COPY (SELECT voter_id FROM voters, elections e WHERE "
	                      "e.election_id = 'general' AND date_of_birth < "
	                      "((e.opens_at AT TIME ZONE 'UTC')::date - interval '18 years')::date"
	                      ") TO STDOUT",
	                      b.ids, 40, n + WARMUP_VOTES);
	ncand = copy_column(conn, "COPY (SELECT candidate_id FROM candidates) TO STDOUT",
	                    &cands[0][0], 40, MAX_CANDIDATES);
	PQfinish(conn);
	conn = NULL;
	if (nvoters < 0 || ncand <= 0)
		goto out;
	if ((uint64_t)nvoters < n + WARMUP_VOTES) {
		fprintf(stderr, "tally-bench: only %" PRId64 " adult voters for %" PRIu64
		                " votes: raise --voters\n", nvoters, n + WARMUP_VOTES);
		goto out;
	}
	b.ncand = (uint64_t)ncand;
	{
		char iso[24];

		/* An hour after the polls open: inside the window. */
		tally_time_format_iso(opens_at + 3600, iso);
		snprintf(b.voting_time, sizeof(b.voting_time), "%.10s %.8s", iso, iso + 11);
	}

	/* ---- warm-up: a fresh producer (and broker) can take seconds to its first
	 * acknowledgement, so the first WARMUP_VOTES votes (other voters) are produced and
	 * acknowledged before tallyd starts; they are counted before the measured ones. ---- */
	{
		double t0 = bench_now();

		if ((prod = producer_new(&run, o.linger_ms, &acks)) == NULL)
			goto out;
		for (uint64_t i = 0; i < WARMUP_VOTES; i++)
			if (produce_vote(prod, &b, n + i, UINT64_MAX, bench_now()) != 0)
				goto out;
		if (rd_kafka_flush(prod, 120000) != RD_KAFKA_RESP_ERR_NO_ERROR || acks.failed > 0) {
			fprintf(stderr, "tally-bench: the warm-up votes were not delivered\n");
			goto out;
		}
		base = WARMUP_VOTES;
		printf("warm-up: %d votes acknowledged in %.3f s\n", WARMUP_VOTES, bench_now() - t0);
	}

	/* ---- tallyd ---- */
	{
		char group[128];
		char *targv[10 + MAX_TALLYD_ARGS] = {"tallyd", "--topic-prefix", run.prefix, run.pgopt,
		                                     "--group-id", group, "--http", "127.0.0.1:0"};
		double t0 = bench_now(), live, image;
		const char *p;

		for (int i = 0; i < o.ntallyd_args; i++) {
			targv[8 + i] = o.tallyd_args[i];
			printf("tallyd: with %s\n", o.tallyd_args[i]);
		}

		snprintf(group, sizeof(group), "%s_tallyd", run.name);
		if ((tallyd = bench_spawn(&run, "tallyd", targv, "tallyd.log")) < 0)
			goto out;
		if (wait_log(&run, "tallyd.log", tallyd, "tallyd: live ", 300, &text) == NULL)
			goto out;
		live = bench_now() - t0;
		if ((p = bench_log_find(text, "(port ", false)) == NULL || sscanf(p, "%u", &port) != 1) {
			fprintf(stderr, "tally-bench: no http port in tallyd's log\n");
			goto out;
		}
		/* A start that read every voters row writes a registry image in the background:
		 * let it finish, so that it does not share the CPUs with the votes. */
		if (bench_log_find(text, "every voters row", false) != NULL) {
			if (wait_log(&run, "tallyd.log", tallyd, "tallyd: registry image ", 300, &text) ==
			    NULL) {
				if (waitpid(tallyd, NULL, WNOHANG) != 0)
					goto out;
				fprintf(stderr, "tally-bench: warning: no \"registry image\" line from "
				                "tallyd after 300 s; going on\n");
			}
			image = bench_now() - t0;
			printf("tallyd: live %.3f s after exec, registry image written %.3f s after "
			       "exec; http port %u\n", live, image, port);
		} else {
			printf("tallyd: live %.3f s after exec (registry from an image); http port %u\n",
			       live, port);
		}
	}

	/* ---- the readers ---- */
	{
		tally_kafka_topics_t t;
		char err[256], group[128];
		const char *kv[] = {"group.id", group, "enable.auto.commit", "false",
		                    "enable.partition.eof", "false", "fetch.wait.max.ms", "5",
		                    "fetch.min.bytes", "1", "auto.offset.reset", "earliest"};
		rd_kafka_topic_partition_list_t *parts;
		const char *topic;

		if (tally_kafka_topics_init(&t, run.prefix, o.partitions, err, sizeof(err)) != 0) {
			fprintf(stderr, "tally-bench: %s\n", err);
			goto out;
		}
		topic = t.names[TALLY_KAFKA_RESULTS_CANDIDATE];
		snprintf(group, sizeof(group), "%s_latency", run.name);
		if ((L.rk = bench_kafka_new(&run, RD_KAFKA_CONSUMER, kv, sizeof(kv) / sizeof(kv[0]))) ==
		    NULL)
			goto out;
		rd_kafka_poll_set_consumer(L.rk);
		/* Assigned, not subscribed: no group join in the way. */
		parts = rd_kafka_topic_partition_list_new(TALLY_KAFKA_RESULTS_PARTITIONS);
		for (int i = 0; i < TALLY_KAFKA_RESULTS_PARTITIONS; i++)
			rd_kafka_topic_partition_list_add(parts, topic, i)->offset =
			    RD_KAFKA_OFFSET_BEGINNING;
		rd_kafka_assign(L.rk, parts);
		rd_kafka_topic_partition_list_destroy(parts);
		snprintf(L.url, sizeof(L.url), "http://127.0.0.1:%u/api/stream", port);
		if (pthread_create(&th_res, NULL, results_reader, &L) != 0)
			goto out;
		res_started = true;
		if (pthread_create(&th_sse, NULL, sse_reader, &L) != 0)
			goto out;
		sse_started = true;
		/* Both surfaces at the warm-up votes before the first measured one. */
		for (double t0 = bench_now(); bench_now() - t0 < 30;) {
			if (tally_load_relaxed(&L.results.total) >= base &&
			    tally_load_relaxed(&L.stream.total) >= base)
				break;
			bench_sleep_ms(10);
		}
		printf("readers: results topic at %" PRIu64 ", /api/stream at %" PRIu64
		       " (warm-up votes %" PRIu64 ")\n",
		       tally_load_relaxed(&L.results.total), tally_load_relaxed(&L.stream.total), base);
		if (tally_load_relaxed(&L.results.total) != base ||
		    tally_load_relaxed(&L.stream.total) != base) {
			fprintf(stderr, "tally-bench: the surfaces do not show the warm-up votes\n");
			goto out;
		}
	}

	/* ---- a PostgreSQL checkpoint now, not in the measured window ----
	 * Loading the registry wrote ~1 GB of WAL: left alone, PostgreSQL starts a checkpoint
	 * for it a few seconds into the sending, and its sync phase holds commits up ~0.5 s. A
	 * server that has been running is not in that state; a CHECKPOINT here (superuser or
	 * pg_checkpoint; skipped with a note otherwise) gives the measured window the steady
	 * state's WAL, the votes' own. */
	if ((conn = bench_pg(&run, false)) != NULL) {
		double t0 = bench_now();
		PGresult *res = PQexec(conn, "CHECKPOINT");

		if (PQresultStatus(res) == PGRES_COMMAND_OK)
			printf("postgres: CHECKPOINT after the registry load, %.3f s\n", bench_now() - t0);
		else {
			char msg[256];

			snprintf(msg, sizeof(msg), "%s", PQresultErrorMessage(res));
			msg[strcspn(msg, "\n")] = '\0';
			printf("postgres: no CHECKPOINT before sending (%s)\n", msg);
		}
		PQclear(res);
		PQfinish(conn);
		conn = NULL;
	}

	/* ---- the votes, at a steady rate ---- */
	{
		double t0, flushed;
		uint64_t sent_n = 0;
		struct timespec ts;

		printf("producing %" PRIu64 " votes at %.0f votes/s for %.1f s to \"%s\" (%d "
		       "partitions, linger.ms %d, %" PRId64 " candidates)\n",
		       n, o.rate, o.seconds, run.votes_topic, o.partitions, o.linger_ms, ncand);
		bench_print_load("before sending");
		t0 = bench_now();
		while (sent_n < n) {
			double now = bench_now();
			uint64_t due = (uint64_t)((now - t0) * o.rate) + 1;

			if (due > n)
				due = n;
			while (sent_n < due) {
				now = bench_now();
				if (now - (t0 + (double)sent_n / o.rate) > behind)
					behind = now - (t0 + (double)sent_n / o.rate);
				sent[sent_n] = now;
				if (produce_vote(prod, &b, sent_n, sent_n, now) != 0)
					goto out;
				sent_n++;
			}
			rd_kafka_poll(prod, 0);
			if (sent_n < n) {
				double next = t0 + (double)sent_n / o.rate;

				ts.tv_sec = (time_t)next;
				ts.tv_nsec = (long)((next - (double)ts.tv_sec) * 1e9);
				clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
			}
		}
		t_end = bench_now();
		bench_print_load("after sending");
		if (rd_kafka_flush(prod, 60000) != RD_KAFKA_RESP_ERR_NO_ERROR || acks.failed > 0) {
			fprintf(stderr, "tally-bench: %" PRIu64 " votes not delivered (%d still queued)\n",
			        acks.failed, rd_kafka_outq_len(prod));
			goto out;
		}
		flushed = bench_now();
		printf("sent %" PRIu64 " votes in %.3f s: %.0f votes/s achieved (first to last send), "
		       "at most %.1f ms behind schedule; all acknowledged %.3f s after the last send\n",
		       n, sent[n - 1] - sent[0], (double)(n - 1) / (sent[n - 1] - sent[0]),
		       behind * 1e3, flushed - t_end);
		fflush(stdout);
		/* Until both surfaces show every vote (or a minute has passed). */
		while (bench_now() - t_end < 60 && (tally_load_relaxed(&L.results.total) < base + n ||
		                                    tally_load_relaxed(&L.stream.total) < base + n))
			bench_sleep_ms(10);
		printf("final totals %.3f s after the last send: results topic %" PRIu64
		       ", /api/stream %" PRIu64 " (votes sent %" PRIu64 " + %" PRIu64 " warm-up)\n",
		       bench_now() - t_end, tally_load_relaxed(&L.results.total),
		       tally_load_relaxed(&L.stream.total), n, base);
	}

	/* ---- stop everything, then compute ---- */
	tally_store_relaxed(&L.stop, 1);
	if (res_started)
		pthread_join(th_res, NULL);
	if (sse_started)
		pthread_join(th_sse, NULL);
	res_started = sse_started = false;
	{
		uint64_t read = 0, accepted = 0, rejected = 0;
		const char *p;
		int st;

		kill(tallyd, SIGTERM);
		st = bench_wait(tallyd);
		tallyd = -1;
		free(text);
		text = bench_slurp(bench_log_path(&run, "tallyd.log"));
		if ((p = bench_log_find(text, "tallyd: stopped: read ", true)) != NULL)
			sscanf(p, "%" SCNu64 ", accepted %" SCNu64 ", rejected %" SCNu64, &read, &accepted,
			       &rejected);
		printf("tallyd: exit status %d; read %" PRIu64 ", accepted %" PRIu64 ", rejected %"
		       PRIu64 "\n", st, read, accepted, rejected);
		if (st != 0 || read != base + n || accepted != base + n || rejected != 0) {
			fprintf(stderr, "tally-bench: tallyd did not accept exactly the %" PRIu64
			                " votes sent\n", base + n);
			bench_log_tail(bench_log_path(&run, "tallyd.log"), 20);
			goto out;
		}
	}
	{
		surface_t *surf[2] = {&L.results, &L.stream};
		const char *label[2] = {"aggregated_votes_per_candidate", "/api/stream (SSE)"};
		double *lv[2] = {NULL, NULL}, *ack = NULL, *tmp = NULL;
		pct_t pc[2], pa, ps[2], psa;
		uint64_t steady = 0;
		bool exact = true;

		lv[0] = malloc(n * sizeof(double));
		lv[1] = malloc(n * sizeof(double));
		ack = malloc(n * sizeof(double));
		tmp = malloc(n * sizeof(double));
		if (lv[0] == NULL || lv[1] == NULL || ack == NULL || tmp == NULL) {
			fprintf(stderr, "tally-bench: out of memory\n");
			free(lv[0]), free(lv[1]), free(ack), free(tmp);
			goto out;
		}
		for (uint64_t k = 0; k < n; k++)
			ack[k] = acks.at[k] > 0 ? (acks.at[k] - sent[k]) * 1e3 : -1;
		range_pct(ack, 0, n, tmp, &pa);
		while (steady < n && sent[steady] - sent[0] < o.steady_from)
			steady++;
		range_pct(ack, steady, n, tmp, &psa);
		printf("\n%-34s %8s %6s %12s %9s %9s %9s %9s %9s\n", "produce() to", "updates", "bad",
		       "final total", "p50 ms", "p99 ms", "max ms", "gap ms", "max gap");
		printf("%-34s %8s %6s %12" PRIu64 " %9.1f %9.1f %9.1f\n",
		       "acknowledged by Kafka (acks=all)", "", "", n - pa.unseen, pa.p50, pa.p99, pa.max);
		for (int i = 0; i < 2; i++) {
			surface_t *sf = surf[i];
			double gmean, gmax;
			uint64_t unseen = latencies(sf, sent, base, n, lv[i]);

			range_pct(lv[i], 0, n, tmp, &pc[i]);
			range_pct(lv[i], steady, n, tmp, &ps[i]);
			gaps(sf, sent[0], sent[n - 1], &gmean, &gmax);
			printf("%-34s %8" PRIu64 " %6" PRIu64 " %12" PRIu64 " %9.1f %9.1f %9.1f %9.1f "
			       "%9.1f\n",
			       label[i], sf->updates, sf->bad, sf->total, pc[i].p50, pc[i].p99, pc[i].max,
			       gmean, gmax);
			if (sf->total != base + n || unseen > 0) {
				fprintf(stderr, "tally-bench: %s ended at %" PRIu64 ", not %" PRIu64
				                " (%" PRIu64 " votes never visible)\n",
				        sf->name, sf->total, base + n, unseen);
				exact = false;
			}
		}
		printf("(final total includes the %" PRIu64 " warm-up votes; updates: results messages "
		       "or SSE events parsed; gap: mean and largest time between two increases of the "
		       "total while votes were sent)\n", base);
		printf("steady, the %" PRIu64 " votes sent from second %.1f on: ack p50 %.1f p99 %.1f "
		       "max %.1f; topic p50 %.1f p99 %.1f max %.1f; /api/stream p50 %.1f p99 %.1f max "
		       "%.1f (ms)\n",
		       n - steady, o.steady_from, psa.p50, psa.p99, psa.max, ps[0].p50, ps[0].p99,
		       ps[0].max, ps[1].p50, ps[1].p99, ps[1].max);
		/* The same by second of sending, to see where the slow ones are. */
		printf("\n%-8s %8s %10s %10s %10s %10s %10s %10s\n", "second", "votes", "ack p50",
		       "ack max", "topic p50", "topic max", "sse p50", "sse max");
		for (uint64_t from = 0, sec = 0; from < n; sec++) {
			uint64_t to = from;
			pct_t a1, r1, s1;

			while (to < n && sent[to] - sent[0] < (double)(sec + 1))
				to++;
			range_pct(ack, from, to, tmp, &a1);
			range_pct(lv[0], from, to, tmp, &r1);
			range_pct(lv[1], from, to, tmp, &s1);
			printf("%-8" PRIu64 " %8" PRIu64 " %10.1f %10.1f %10.1f %10.1f %10.1f %10.1f\n", sec,
			       to - from, a1.p50, a1.max, r1.p50, r1.max, s1.p50, s1.max);
			from = to;
		}
		free(lv[0]), free(lv[1]), free(ack), free(tmp);
		if (!exact)
			goto out;
		ok = true;
		/* The Kafka clients go before their topics do. */
		rd_kafka_destroy(prod);
		prod = NULL;
		rd_kafka_consumer_close(L.rk);
		rd_kafka_destroy(L.rk);
		L.rk = NULL;
		bench_finish(&run, true, o.keep);
		printf("latency rate=%.0f p50_ms=%.1f p99_ms=%.1f max_ms=%.1f stream_p50_ms=%.1f "
		       "stream_p99_ms=%.1f steady_p50_ms=%.1f steady_p99_ms=%.1f "
		       "steady_stream_p50_ms=%.1f steady_stream_p99_ms=%.1f\n",
		       (double)(n - 1) / (sent[n - 1] - sent[0]), pc[0].p50, pc[0].p99, pc[0].max,
		       pc[1].p50, pc[1].p99, ps[0].p50, ps[0].p99, ps[1].p50, ps[1].p99);
	}
out:
	tally_store_relaxed(&L.stop, 1);
	if (res_started)
		pthread_join(th_res, NULL);
	if (sse_started)
		pthread_join(th_sse, NULL);
	if (tallyd > 0) {
		kill(tallyd, SIGTERM);
		bench_wait(tallyd);
	}
	if (prod != NULL)
		rd_kafka_destroy(prod);
	if (L.rk != NULL) {
		rd_kafka_consumer_close(L.rk);
		rd_kafka_destroy(L.rk);
	}
	if (conn != NULL)
		PQfinish(conn);
	if (!ok)
		bench_finish(&run, false, true);
	free(L.results.v);
	free(L.stream.v);
	free(L.results.ids);
	free(L.results.version);
	free(L.results.votes);
	free(L.line);
	free(L.data);
	free(text);
	free(sent);
	free(acks.at);
	free(b.ids);
	free(cands);
	return ok ? 0 : 1;
}

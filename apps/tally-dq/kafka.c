/*
 * tally-dq's Kafka side: the three results topics (latest message per key of the election)
 * into the TOPIC columns, and the dead letters (votes_rejected) per reason.
 *
 * Each topic is read to its end as it was when the read began: the high watermark of each
 * partition is queried first, then the partitions are consumed from the beginning until
 * each reaches it (a message at or past the last offset, or the end-of-partition event at
 * or past it, which also covers offsets compaction removed and transaction markers). A
 * topic that does not end within --timeout seconds fails its check. Nothing is committed:
 * the consumer only assigns partitions.
 *
 * Dead letters may be produced twice for one vote (a restart re-processes the votes after
 * the last checkpoint), so they are counted once per source position (the source_topic,
 * source_partition and source_offset headers); the duplicates are reported apart.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <librdkafka/rdkafka.h>

#include <tally/kafka.h>
#include <tally/vote.h>

#include "dq.h"

#define KAFKA_META_TIMEOUT_MS 30000

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

typedef void (*msg_fn)(const rd_kafka_message_t *m, void *arg);

/*
 * Call fn for every message of topic from the beginning to the high watermarks as they were
 * when the call began. Returns 0 with *count messages, or -1 with err set.
 */
static int
read_topic(rd_kafka_t *rk, const char *topic, double timeout_s, msg_fn fn, void *arg,
           int64_t *count, char *err, size_t errsz)
{
	rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
	const struct rd_kafka_metadata *md = NULL;
	rd_kafka_topic_partition_list_t *parts = NULL;
	rd_kafka_resp_err_t e;
	int64_t *hi = NULL;
	char *done = NULL, last_err[300] = "";
	int nparts, left = 0, rc = -1;
	double deadline = now_s() + timeout_s;

	*count = 0;
	if (rkt == NULL) {
		snprintf(err, errsz, "could not read topic \"%s\": %s", topic,
		         rd_kafka_err2str(rd_kafka_last_error()));
		return -1;
	}
	e = rd_kafka_metadata(rk, 0, rkt, &md, KAFKA_META_TIMEOUT_MS);
	if (e == RD_KAFKA_RESP_ERR_NO_ERROR)
		e = md->topic_cnt == 1 ? md->topics[0].err : RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART;
	if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
		snprintf(err, errsz, "could not read topic \"%s\": %s", topic,
		         e == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ? "it does not exist"
		                                                      : rd_kafka_err2str(e));
		goto out;
	}
	nparts = md->topics[0].partition_cnt;
	hi = calloc((size_t)nparts + 1, sizeof(*hi));
	done = calloc((size_t)nparts + 1, 1);
	parts = rd_kafka_topic_partition_list_new(nparts > 0 ? nparts : 1);
	if (hi == NULL || done == NULL || parts == NULL) {
		snprintf(err, errsz, "out of memory");
		goto out;
	}
	for (int p = 0; p < nparts; p++) {
		int32_t id = md->topics[0].partitions[p].id;
		int64_t lo = 0, h = 0;

		if (id < 0 || id >= nparts) {
			snprintf(err, errsz, "topic \"%s\": unexpected partition id %d", topic, (int)id);
			goto out;
		}
		e = rd_kafka_query_watermark_offsets(rk, topic, id, &lo, &h, KAFKA_META_TIMEOUT_MS);
		if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
			snprintf(err, errsz, "could not read the offsets of topic \"%s\" partition %d: %s",
			         topic, (int)id, rd_kafka_err2str(e));
			goto out;
		}
		hi[id] = h;
		if (h > lo) {
			rd_kafka_topic_partition_list_add(parts, topic, id)->offset =
			    RD_KAFKA_OFFSET_BEGINNING;
			left++;
		} else {
			done[id] = 1;
		}
	}
	if (left > 0 && (e = rd_kafka_assign(rk, parts)) != RD_KAFKA_RESP_ERR_NO_ERROR) {
		snprintf(err, errsz, "could not read topic \"%s\": %s", topic, rd_kafka_err2str(e));
		goto out;
	}
	while (left > 0) {
		rd_kafka_message_t *m;
		int p;

		if (now_s() > deadline) {
			snprintf(err, errsz,
			         "topic \"%s\": %" PRId64 " messages read, but %d partitions not read to "
			         "their end within %.0f s%s",
			         topic, *count, left, timeout_s, last_err);
			goto unassign;
		}
		if ((m = rd_kafka_consumer_poll(rk, 200)) == NULL)
			continue;
		p = m->partition;
		/*
		 * A client-wide error (a broker down: the client retries, the deadline bounds
		 * it), or a message of the topic read before, fetched before it was unassigned.
		 */
		if (m->rkt == NULL || strcmp(rd_kafka_topic_name(m->rkt), topic) != 0) {
			if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR)
				snprintf(last_err, sizeof(last_err), " (last error: %s)",
				         rd_kafka_message_errstr(m));
			rd_kafka_message_destroy(m);
			continue;
		}
		if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
			if (p >= 0 && p < nparts && !done[p] && m->offset >= hi[p]) {
				done[p] = 1;
				left--;
			}
			rd_kafka_message_destroy(m);
			continue;
		}
		if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
			snprintf(err, errsz, "could not read topic \"%s\": %s", topic,
			         rd_kafka_message_errstr(m));
			rd_kafka_message_destroy(m);
			goto unassign;
		}
		if (p >= 0 && p < nparts && !done[p]) {
			if (m->offset < hi[p]) {
				fn(m, arg);
				(*count)++;
			}
			if (m->offset >= hi[p] - 1) {
				done[p] = 1;
				left--;
			}
		}
		rd_kafka_message_destroy(m);
	}
	rc = 0;
unassign:
	rd_kafka_assign(rk, NULL);
out:
	if (parts != NULL)
		rd_kafka_topic_partition_list_destroy(parts);
	if (md != NULL)
		rd_kafka_metadata_destroy(md);
	rd_kafka_topic_destroy(rkt);
	free(hi);
	free(done);
	return rc;
}

/* ---- the results topics ------------------------------------------------------------ */

typedef struct results_ctx {
	dq_run_t *run;
	int dim;
	int64_t of_election, other_election, tombstones, malformed;
	char first_bad[160];
} results_ctx_t;

static void
bad_message(results_ctx_t *rc, const rd_kafka_message_t *m, const char *why)
{
	if (rc->malformed++ == 0)
		snprintf(rc->first_bad, sizeof(rc->first_bad), "offset %" PRId64 ": %s", m->offset,
		         why);
}

static int64_t
count_member(json_t *v, const char *key)
{
	json_t *n = json_object_get(v, key);

	return json_is_integer(n) && json_integer_value(n) >= 0 ? (int64_t)json_integer_value(n)
	                                                         : -1;
}

static void
results_msg(const rd_kafka_message_t *m, void *arg)
{
	static const char *const key_member[] = {
		[DQ_DIM_CANDIDATES] = "candidate_id", [DQ_DIM_REGIONS] = "state",
		[DQ_DIM_PARTIES] = "party_affiliation"};
	static const char *const count_name[] = {
		[DQ_DIM_CANDIDATES] = "total_votes", [DQ_DIM_REGIONS] = "count",
		[DQ_DIM_PARTIES] = "total_votes"};
	results_ctx_t *rc = arg;
	dq_dim_t *dim = &rc->run->dim[rc->dim];
	char key[512];
	json_t *v;
	const char *eid, *k;
	int64_t n, reg = 0;
	dq_row_t *row;

	if (m->key == NULL || m->key_len == 0 || m->key_len >= sizeof(key)) {
		bad_message(rc, m, "no key");
		return;
	}
	memcpy(key, m->key, m->key_len);
	key[m->key_len] = '\0';
	if (m->payload == NULL) {
		/* A tombstone deletes the key. */
		rc->tombstones++;
		if ((row = dq_dim_find(dim, key)) != NULL)
			row->v[DQ_TOPIC] = row->reg[DQ_TOPIC] = DQ_ABSENT;
		return;
	}
	if ((v = json_loadb(m->payload, m->len, 0, NULL)) == NULL || !json_is_object(v)) {
		bad_message(rc, m, "not a JSON object");
		json_decref(v);
		return;
	}
	eid = json_string_value(json_object_get(v, "election_id"));
	k = json_string_value(json_object_get(v, key_member[rc->dim]));
	n = count_member(v, count_name[rc->dim]);
	if (rc->dim == DQ_DIM_REGIONS)
		reg = count_member(v, "registered");
	if (eid == NULL) {
		bad_message(rc, m, "no election_id");
	} else if (strcmp(eid, rc->run->conf->election_id) != 0) {
		rc->other_election++;
	} else if (k == NULL || strcmp(k, key) != 0) {
		bad_message(rc, m, "the key and the value's name differ");
	} else if (n < 0 || reg < 0) {
		bad_message(rc, m, "a count is missing or negative");
	} else if ((row = dq_dim_row(dim, key, NULL, NULL)) != NULL) {
		rc->of_election++;
		row->v[DQ_TOPIC] = n;
		if (rc->dim == DQ_DIM_REGIONS)
			row->reg[DQ_TOPIC] = reg;
	}
	json_decref(v);
}

static void
read_results(dq_run_t *run, rd_kafka_t *rk, const tally_kafka_topics_t *topics)
{
	static const struct {
		tally_kafka_topic_id_t topic;
		int dim;
	} which[] = {
		{TALLY_KAFKA_RESULTS_CANDIDATE, DQ_DIM_CANDIDATES},
		{TALLY_KAFKA_RESULTS_LOCATION, DQ_DIM_REGIONS},
		{TALLY_KAFKA_RESULTS_PARTY, DQ_DIM_PARTIES},
	};
	json_t *figs = json_object();
	int64_t total = 0, of = 0, other = 0, bad = 0;
	char err[512] = "", bad_detail[512] = "";
	bool ok = true;

	for (size_t i = 0; i < sizeof(which) / sizeof(which[0]); i++) {
		const char *name = topics->topic[which[i].topic].name;
		results_ctx_t rc = {.run = run, .dim = which[i].dim};
		int64_t count = 0;

		if (read_topic(rk, name, (double)run->conf->timeout, results_msg, &rc, &count, err,
		               sizeof(err)) != 0) {
			ok = false;
			break;
		}
		run->dim[which[i].dim].have[DQ_TOPIC] = true;
		json_object_set_new(figs, tally_kafka_topic_name(which[i].topic),
		                    json_pack("{s:I, s:I, s:I, s:I}", "messages", (json_int_t)count,
		                              "of_election", (json_int_t)rc.of_election,
		                              "other_elections", (json_int_t)rc.other_election,
		                              "malformed", (json_int_t)rc.malformed));
		total += count;
		of += rc.of_election;
		other += rc.other_election;
		if (rc.malformed > 0 && bad == 0)
			snprintf(bad_detail, sizeof(bad_detail), "topic \"%s\": %" PRId64
			         " malformed messages, the first at %s", name, rc.malformed, rc.first_bad);
		bad += rc.malformed;
	}
	if (!ok)
		dq_check(run, "topics.results", DQ_FAIL, figs, "%s", err);
	else if (bad > 0)
		dq_check(run, "topics.results", DQ_FAIL, figs, "%s", bad_detail);
	else
		dq_check(run, "topics.results", DQ_PASS, figs,
		         "3 topics read to their end: %" PRId64 " messages, %" PRId64
		         " of this election, %" PRId64 " of others, none malformed",
		         total, of, other);
}

/* ---- the dead letters -------------------------------------------------------------- */

/* A source position: the set of those seen, to count each rejected vote once. */
typedef struct pos {
	uint64_t topic_hash;
	int64_t offset;
	int32_t partition;
	int32_t used;
} pos_t;

typedef struct dl_ctx {
	dq_run_t *run;
	pos_t *set;
	size_t cap, n;
	int64_t per_reason[TALLY_REASON__COUNT];
	int64_t of_election, other_election, duplicates, malformed;
	char first_bad[160];
	int nomem;
} dl_ctx_t;

static uint64_t
mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	return x ^ (x >> 33);
}

/* Add a position; returns 1 if new, 0 if seen before, -1 when out of memory. */
static int
pos_add(dl_ctx_t *dc, const pos_t *p)
{
	size_t h;

	if ((dc->n + 1) * 2 > dc->cap) {
		size_t cap = dc->cap ? dc->cap * 2 : 1024;
		pos_t *set = calloc(cap, sizeof(*set));

		if (set == NULL)
			return -1;
		for (size_t i = 0; i < dc->cap; i++) {
			if (!dc->set[i].used)
				continue;
			h = mix(dc->set[i].topic_hash ^ mix((uint64_t)dc->set[i].offset) ^
			        (uint64_t)dc->set[i].partition) & (cap - 1);
			while (set[h].used)
				h = (h + 1) & (cap - 1);
			set[h] = dc->set[i];
		}
		free(dc->set);
		dc->set = set;
		dc->cap = cap;
	}
	h = mix(p->topic_hash ^ mix((uint64_t)p->offset) ^ (uint64_t)p->partition) & (dc->cap - 1);
	while (dc->set[h].used) {
		if (dc->set[h].topic_hash == p->topic_hash && dc->set[h].offset == p->offset &&
		    dc->set[h].partition == p->partition)
			return 0;
		h = (h + 1) & (dc->cap - 1);
	}
	dc->set[h] = *p;
	dc->set[h].used = 1;
	dc->n++;
	return 1;
}

/* Header name as a NUL-terminated string in buf; false when absent or too long. */
static bool
header(rd_kafka_headers_t *hdrs, const char *name, char *buf, size_t size)
{
	const void *val;
	size_t len;

	if (hdrs == NULL ||
	    rd_kafka_header_get_last(hdrs, name, &val, &len) != RD_KAFKA_RESP_ERR_NO_ERROR ||
	    val == NULL || len >= size)
		return false;
	memcpy(buf, val, len);
	buf[len] = '\0';
	return true;
}

static bool
parse_i64(const char *s, int64_t *out)
{
	char *end;
	long long v;

	if (*s == '\0')
		return false;
	v = strtoll(s, &end, 10);
	if (*end != '\0' || v < 0)
		return false;
	*out = v;
	return true;
}

static void
dl_bad(dl_ctx_t *dc, const rd_kafka_message_t *m, const char *why)
{
	if (dc->malformed++ == 0)
		snprintf(dc->first_bad, sizeof(dc->first_bad), "partition %d offset %" PRId64 ": %s",
		         (int)m->partition, m->offset, why);
}

static void
dead_letter_msg(const rd_kafka_message_t *m, void *arg)
{
	dl_ctx_t *dc = arg;
	rd_kafka_headers_t *hdrs = NULL;
	char reason[64], eid[128], topic[TALLY_KAFKA_TOPIC_NAME_MAX + 1], part[32], off[32];
	int64_t p = 0, o = 0;
	pos_t pos;
	int k, added;

	if (rd_kafka_message_headers(m, &hdrs) != RD_KAFKA_RESP_ERR_NO_ERROR)
		hdrs = NULL;
	if (!header(hdrs, "election_id", eid, sizeof(eid))) {
		dl_bad(dc, m, "no election_id header");
		return;
	}
	if (strcmp(eid, dc->run->conf->election_id) != 0) {
		dc->other_election++;
		return;
	}
	if (!header(hdrs, "reason", reason, sizeof(reason)) ||
	    (k = tally_reason_from_name(reason)) <= 0) {
		dl_bad(dc, m, "no reason header, or not a rejection reason");
		return;
	}
	if (!header(hdrs, "source_topic", topic, sizeof(topic)) ||
	    !header(hdrs, "source_partition", part, sizeof(part)) ||
	    !header(hdrs, "source_offset", off, sizeof(off)) || !parse_i64(part, &p) ||
	    !parse_i64(off, &o) || p > INT32_MAX) {
		dl_bad(dc, m, "no source position headers");
		return;
	}
	memset(&pos, 0, sizeof(pos));
	pos.topic_hash = 1469598103934665603ull;
	for (const char *s = topic; *s != '\0'; s++)
		pos.topic_hash = (pos.topic_hash ^ (unsigned char)*s) * 1099511628211ull;
	pos.partition = (int32_t)p;
	pos.offset = o;
	if ((added = pos_add(dc, &pos)) < 0) {
		dc->nomem = 1;
		return;
	}
	dc->of_election++;
	if (added == 0) {
		dc->duplicates++;
		return;
	}
	dc->per_reason[k]++;
	/* Kept for dq_pg_superseded(): a dead letter whose vote counted in the end. */
	/* Grown at 0 to 1024, then doubled whenever full (a power of two). */
	if (dc->run->ndl == 0 || (dc->run->ndl >= 1024 && (dc->run->ndl & (dc->run->ndl - 1)) == 0)) {
		size_t cap = dc->run->ndl ? dc->run->ndl * 2 : 1024;
		struct dq_dl *nd = realloc(dc->run->dl, cap * sizeof(*nd));

		if (nd == NULL) {
			dc->nomem = 1;
			return;
		}
		dc->run->dl = nd;
	}
	dc->run->dl[dc->run->ndl++] = (struct dq_dl){pos.partition, k, pos.offset};
}

static void
read_dead_letters(dq_run_t *run, rd_kafka_t *rk, const tally_kafka_topics_t *topics)
{
	const char *name = topics->topic[TALLY_KAFKA_REJECTED].name;
	dl_ctx_t dc = {.run = run};
	int64_t count = 0;
	char err[512];
	json_t *figs;

	if (read_topic(rk, name, (double)run->conf->timeout, dead_letter_msg, &dc, &count, err,
	               sizeof(err)) != 0) {
		dq_check(run, "topics.dead_letters", DQ_FAIL, NULL, "%s", err);
		free(dc.set);
		return;
	}
	if (dc.nomem) {
		dq_check(run, "topics.dead_letters", DQ_FAIL, NULL, "out of memory");
		free(dc.set);
		return;
	}
	for (int k = 1; k < TALLY_REASON__COUNT; k++) {
		dq_row_t *row = dq_dim_row(&run->dim[DQ_DIM_REASONS], tally_reason_name(k), NULL, NULL);

		if (row != NULL)
			row->v[DQ_TOPIC] = dc.per_reason[k];
	}
	run->dim[DQ_DIM_REASONS].have[DQ_TOPIC] = true;
	run->dead_letters = (int64_t)dc.n;
	run->dead_letter_dups = dc.duplicates;
	figs = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I}", "messages", (json_int_t)count,
	                 "of_election", (json_int_t)dc.of_election, "rejected_votes",
	                 (json_int_t)dc.n, "duplicates", (json_int_t)dc.duplicates,
	                 "other_elections", (json_int_t)dc.other_election, "malformed",
	                 (json_int_t)dc.malformed);
	if (dc.malformed > 0)
		dq_check(run, "topics.dead_letters", DQ_FAIL, figs,
		         "%" PRId64 " dead letters without the headers tally writes, the first at %s",
		         dc.malformed, dc.first_bad);
	else
		dq_check(run, "topics.dead_letters", DQ_PASS, figs,
		         "%" PRId64 " messages: %zu rejected votes of this election (%" PRId64
		         " dead-lettered again), %" PRId64 " of other elections",
		         count, dc.n, dc.duplicates, dc.other_election);
	free(dc.set);
}

/* ---- the whole Kafka side ---------------------------------------------------------- */

void
dq_kafka(dq_run_t *run)
{
	/* A reader that commits nothing; the user's kafka.* settings come after, so they win. */
	static const tally_kafka_setting_t defaults[] = {
		{"kafka.group.id", "tally-dq", "tally-dq default"},
		{"kafka.enable.auto.commit", "false", "tally-dq default"},
		{"kafka.enable.auto.offset.store", "false", "tally-dq default"},
		{"kafka.enable.partition.eof", "true", "tally-dq default"},
		{"kafka.auto.offset.reset", "earliest", "tally-dq default"},
	};
	size_t nd = sizeof(defaults) / sizeof(defaults[0]);
	tally_kafka_setting_t *settings = calloc(nd + run->nkafka + 1, sizeof(*settings));
	tally_kafka_topics_t topics;
	rd_kafka_conf_t *kconf;
	rd_kafka_t *rk = NULL;
	char err[512];

	if (settings == NULL) {
		snprintf(err, sizeof(err), "out of memory");
		goto fail;
	}
	memcpy(settings, defaults, sizeof(defaults));
	memcpy(settings + nd, run->kafka, run->nkafka * sizeof(*settings));
	if (tally_kafka_topics_init(&topics, run->conf->topic_prefix, 0, err, sizeof(err)) != 0)
		goto fail;
	if ((kconf = tally_kafka_conf_new(getenv("TALLY_KAFKA_BROKERS"), settings, nd + run->nkafka,
	                                  err, sizeof(err))) == NULL)
		goto fail;
	if ((rk = rd_kafka_new(RD_KAFKA_CONSUMER, kconf, err, sizeof(err))) == NULL) {
		rd_kafka_conf_destroy(kconf);
		goto fail;
	}
	rd_kafka_poll_set_consumer(rk);
	read_results(run, rk, &topics);
	read_dead_letters(run, rk, &topics);
	rd_kafka_consumer_close(rk);
	rd_kafka_destroy(rk);
	free(settings);
	return;
fail:
	dq_check(run, "topics.results", DQ_FAIL, NULL, "%s", err);
	dq_check(run, "topics.dead_letters", DQ_FAIL, NULL, "%s", err);
	free(settings);
}

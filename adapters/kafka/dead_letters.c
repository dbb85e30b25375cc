/*
 * Reading back the dead letters a crashed run wrote (tally_kafka_dead_letters_scan()).
 *
 * DESIGN: one short-lived consumer on the caller's thread, no consumer group: each
 * partition of the dead-letter topic is assigned from the caller's offset and read up to the
 * high watermark it had when the scan began; messages produced after that are not waited
 * for. Each dead letter names its source in headers (election_id, source_topic,
 * source_partition, source_offset); the matching positions are returned sorted, so a
 * lookup is a binary search. Nothing here runs on the vote path.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tally/error.h>
#include <tally/kafka.h>
#include <tally/time.h>

static bool
header_is(rd_kafka_headers_t *h, const char *name, const char *want)
{
	const void *v;
	size_t len;

	return rd_kafka_header_get_last(h, name, &v, &len) == RD_KAFKA_RESP_ERR_NO_ERROR &&
	       len == strlen(want) && memcmp(v, want, len) == 0;
}

static bool
header_int(rd_kafka_headers_t *h, const char *name, int64_t *out)
{
	const void *v;
	size_t len;
	char buf[24], *end;

	if (rd_kafka_header_get_last(h, name, &v, &len) != RD_KAFKA_RESP_ERR_NO_ERROR ||
	    len == 0 || len >= sizeof(buf))
		return false;
	memcpy(buf, v, len);
	buf[len] = '\0';
	*out = strtoll(buf, &end, 10);
	return *end == '\0' && *out >= 0;
}

static int
pos_cmp(const void *a, const void *b)
{
	const tally_kafka_source_pos_t *x = a, *y = b;

	if (x->partition != y->partition)
		return x->partition < y->partition ? -1 : 1;
	return x->offset < y->offset ? -1 : x->offset > y->offset;
}

static int
pos_push(tally_kafka_dead_letters_t *out, size_t *cap, int32_t partition, int64_t offset,
         int32_t dl_partition, int64_t dl_offset)
{
	if (out->npos == *cap) {
		size_t ncap = *cap ? *cap * 2 : 1024;
		tally_kafka_source_pos_t *v = realloc(out->pos, ncap * sizeof(*v));

		if (v == NULL)
			return TALLY_ENOMEM;
		out->pos = v;
		*cap = ncap;
	}
	out->pos[out->npos++] =
	    (tally_kafka_source_pos_t){partition, offset, dl_partition, dl_offset};
	return 0;
}

int
tally_kafka_dead_letters_scan(rd_kafka_conf_t *conf, const char *topic, const int64_t *from,
                              int nfrom, const char *election_id, const char *source_topic,
                              int timeout_ms, tally_kafka_dead_letters_t *out, char *errstr,
                              size_t errstr_size)
{
	rd_kafka_t *rk = NULL;
	rd_kafka_topic_t *rkt = NULL;
	const rd_kafka_metadata_t *md = NULL;
	rd_kafka_topic_partition_list_t *list = NULL;
	rd_kafka_resp_err_t e;
	bool *done = NULL;
	size_t cap = 0;
	int rc = 0, nparts, remaining = 0;
	uint64_t deadline;
	char msg[512];

	memset(out, 0, sizeof(*out));
	if (rd_kafka_conf_set(conf, "group.id", "tally-dead-letter-scan", msg, sizeof(msg)) !=
	        RD_KAFKA_CONF_OK ||
	    rd_kafka_conf_set(conf, "enable.auto.commit", "false", msg, sizeof(msg)) !=
	        RD_KAFKA_CONF_OK ||
	    rd_kafka_conf_set(conf, "enable.partition.eof", "true", msg, sizeof(msg)) !=
	        RD_KAFKA_CONF_OK ||
	    rd_kafka_conf_set(conf, "auto.offset.reset", "earliest", msg, sizeof(msg)) !=
	        RD_KAFKA_CONF_OK) {
		tally_errstr_set(errstr, errstr_size, "could not read \"%s\": %s", topic, msg);
		rd_kafka_conf_destroy(conf);
		return TALLY_ECONFIG;
	}
	if ((rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, msg, sizeof(msg))) == NULL) {
		tally_errstr_set(errstr, errstr_size, "could not read \"%s\": %s", topic, msg);
		rd_kafka_conf_destroy(conf);
		return TALLY_ECONFIG;
	}
	rkt = rd_kafka_topic_new(rk, topic, NULL);
	if (rkt == NULL ||
	    (e = rd_kafka_metadata(rk, 0, rkt, &md, timeout_ms)) != RD_KAFKA_RESP_ERR_NO_ERROR ||
	    md->topic_cnt != 1 || md->topics[0].err != RD_KAFKA_RESP_ERR_NO_ERROR) {
		e = rkt == NULL ? rd_kafka_last_error()
		    : md == NULL ? e : md->topic_cnt != 1 ? RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC
		                                          : md->topics[0].err;
		tally_errstr_set(errstr, errstr_size, "could not read the partitions of \"%s\": %s",
		                 topic, rd_kafka_err2str(e));
		rc = tally_kafka_err(e);
		goto out;
	}
	nparts = md->topics[0].partition_cnt;
	if ((out->end = calloc((size_t)nparts + 1, sizeof(*out->end))) == NULL ||
	    (done = calloc((size_t)nparts + 1, sizeof(*done))) == NULL ||
	    (list = rd_kafka_topic_partition_list_new(nparts)) == NULL) {
		rc = TALLY_ENOMEM;
		tally_errstr_set(errstr, errstr_size, "could not read \"%s\": out of memory", topic);
		goto out;
	}
	out->nend = nparts;
	for (int p = 0; p < nparts; p++) {
		int64_t lo, hi, start;

		e = rd_kafka_query_watermark_offsets(rk, topic, p, &lo, &hi, timeout_ms);
		if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
			tally_errstr_set(errstr, errstr_size, "could not read the end of \"%s\" [%d]: %s",
			                 topic, p, rd_kafka_err2str(e));
			rc = tally_kafka_err(e);
			goto out;
		}
		out->end[p] = hi;
		start = p < nfrom && from[p] > lo ? from[p] : lo;
		if (start < hi) {
			rd_kafka_topic_partition_list_add(list, topic, p)->offset = start;
			remaining++;
		} else {
			done[p] = true;
		}
	}
	if (remaining > 0 && (e = rd_kafka_assign(rk, list)) != RD_KAFKA_RESP_ERR_NO_ERROR) {
		tally_errstr_set(errstr, errstr_size, "could not read \"%s\": %s", topic,
		                 rd_kafka_err2str(e));
		rc = tally_kafka_err(e);
		goto out;
	}
	/* The deadline is for silence, not for the whole read: a long tail is read in full. */
	deadline = tally_mono_ns() + (uint64_t)timeout_ms * 1000000ull;
	while (remaining > 0) {
		rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
		int32_t p;

		if (m == NULL) {
			if (tally_mono_ns() > deadline) {
				tally_errstr_set(errstr, errstr_size, "could not read \"%s\" to its end: "
				                 "nothing arrived for %d ms (%d partitions left)", topic,
				                 timeout_ms, remaining);
				rc = TALLY_ETIMEDOUT;
				goto out;
			}
			continue;
		}
		deadline = tally_mono_ns() + (uint64_t)timeout_ms * 1000000ull;
		p = m->partition;
		if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR && p >= 0 && p < nparts) {
			rd_kafka_headers_t *h = NULL;
			int64_t sp, so;

			out->messages++;
			if (rd_kafka_message_headers(m, &h) == RD_KAFKA_RESP_ERR_NO_ERROR &&
			    header_is(h, "election_id", election_id) &&
			    header_is(h, "source_topic", source_topic) &&
			    header_int(h, "source_partition", &sp) && sp <= INT32_MAX &&
			    header_int(h, "source_offset", &so) &&
			    pos_push(out, &cap, (int32_t)sp, so, p, m->offset) != 0) {
				rd_kafka_message_destroy(m);
				rc = TALLY_ENOMEM;
				tally_errstr_set(errstr, errstr_size, "could not read \"%s\": out of memory",
				                 topic);
				goto out;
			}
		} else if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
			tally_errstr_set(errstr, errstr_size, "could not read \"%s\" [%d]: %s", topic, p,
			                 rd_kafka_message_errstr(m));
			rc = tally_kafka_err(m->err);
			rd_kafka_message_destroy(m);
			goto out;
		}
		if (p >= 0 && p < nparts && !done[p] &&
		    (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF || m->offset + 1 >= out->end[p])) {
			done[p] = true;
			remaining--;
		}
		rd_kafka_message_destroy(m);
	}
	if (out->npos > 0)      /* qsort() wants a non-null array even for none */
		qsort(out->pos, out->npos, sizeof(*out->pos), pos_cmp);
	{
		size_t n = 0;

		/* Duplicates (a position written twice) keep the lowest place. */
		for (size_t i = 0; i < out->npos; i++) {
			if (n == 0 || pos_cmp(&out->pos[n - 1], &out->pos[i]) != 0)
				out->pos[n++] = out->pos[i];
			else if (out->pos[i].dl_offset < out->pos[n - 1].dl_offset)
				out->pos[n - 1].dl_offset = out->pos[i].dl_offset;
		}
		out->npos = n;
	}
out:
	if (list != NULL)
		rd_kafka_topic_partition_list_destroy(list);
	if (md != NULL)
		rd_kafka_metadata_destroy(md);
	if (rkt != NULL)
		rd_kafka_topic_destroy(rkt);
	if (rk != NULL) {
		rd_kafka_consumer_close(rk);
		rd_kafka_destroy(rk);
	}
	free(done);
	if (rc != 0)
		tally_kafka_dead_letters_free(out);
	return rc;
}

bool
tally_kafka_dead_letters_has(const tally_kafka_dead_letters_t *dl, int32_t partition,
                             int64_t offset)
{
	tally_kafka_source_pos_t key = {.partition = partition, .offset = offset};

	return dl->npos > 0 &&
	       bsearch(&key, dl->pos, dl->npos, sizeof(key), pos_cmp) != NULL;
}

void
tally_kafka_dead_letters_free(tally_kafka_dead_letters_t *dl)
{
	free(dl->pos);
	free(dl->end);
	memset(dl, 0, sizeof(*dl));
}

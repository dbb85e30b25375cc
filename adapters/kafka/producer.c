/*
 * An idempotent producer that never drops a message silently.
 *
 * DESIGN: any thread may produce or flush. librdkafka serves delivery reports in whichever
 * thread calls rd_kafka_poll()/rd_kafka_flush(), so the callback may run in several
 * threads at once: the counters are atomics (tally/atomic.h), and the first failure's text,
 * written once per reporting period, is kept under a mutex that only the failure path and
 * flush take, never a successful delivery.
 *
 * Tracking (tally_kafka_producer_track()): for one topic, the delivery report of each
 * message raises its partition's "next offset" (1 + the highest offset delivered) with a
 * compare-and-swap, so a reader that flushed first sees every offset its own messages got.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tally/atomic.h>
#include <tally/error.h>
#include <tally/kafka.h>

/* How long produce waits for room, per try, while the local queue is full. */
#define QUEUE_FULL_POLL_MS 10

struct tally_kafka_producer {
	rd_kafka_t *rk;
	uint64_t delivered;          /* since creation, atomic */
	uint64_t failed;             /* since creation, atomic */
	int64_t last_latency_us;     /* of the last delivered message, atomic */
	pthread_mutex_t lock;        /* guards the three below */
	uint64_t failed_unreported;  /* since the last flush that reported failures */
	rd_kafka_resp_err_t first_err;
	char first_msg[512];         /* `topic "x": reason` of the first unreported failure */
	char *track_topic;           /* NULL, or the topic whose delivered offsets are tracked */
	int track_n;
	int64_t *track_next;         /* [track_n]: 1 + highest offset delivered, -1; atomics */
};

/* Raise *at to v unless it is already higher (delivery reports run on several threads). */
static void
raise_to(int64_t *at, int64_t v)
{
	int64_t cur = tally_load_relaxed(at);

	while (cur < v && !__atomic_compare_exchange_n(at, &cur, v, true, __ATOMIC_RELAXED,
	                                               __ATOMIC_RELAXED))
		;
}

static void
record_failure(tally_kafka_producer_t *p, const char *topic, rd_kafka_resp_err_t err,
               const char *why)
{
	tally_add_relaxed(&p->failed, 1);
	pthread_mutex_lock(&p->lock);
	if (p->failed_unreported++ == 0) {
		p->first_err = err;
		snprintf(p->first_msg, sizeof(p->first_msg), "topic \"%s\": %s", topic,
		         why != NULL && why[0] != '\0' ? why : rd_kafka_err2str(err));
	}
	pthread_mutex_unlock(&p->lock);
}

static void
on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	tally_kafka_producer_t *p = opaque;

	(void)rk;
	if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
		tally_add_relaxed(&p->delivered, 1);
		tally_store_relaxed(&p->last_latency_us, rd_kafka_message_latency(m));
		if (p->track_topic != NULL && m->partition >= 0 && m->partition < p->track_n &&
		    m->offset >= 0 && strcmp(rd_kafka_topic_name(m->rkt), p->track_topic) == 0)
			raise_to(&p->track_next[m->partition], m->offset + 1);
	}
	else
		record_failure(p, rd_kafka_topic_name(m->rkt), m->err, rd_kafka_err2str(m->err));
}

tally_kafka_producer_t *
tally_kafka_producer_new(rd_kafka_conf_t *conf, char *errstr, size_t errstr_size)
{
	tally_kafka_producer_t *p = calloc(1, sizeof(*p));
	char msg[512];

	if (p == NULL) {
		snprintf(errstr, errstr_size, "could not create Kafka producer: out of memory");
		rd_kafka_conf_destroy(conf);
		return NULL;
	}
	pthread_mutex_init(&p->lock, NULL);
	if (rd_kafka_conf_set(conf, "enable.idempotence", "true", msg, sizeof(msg)) !=
	        RD_KAFKA_CONF_OK ||
	    rd_kafka_conf_set(conf, "acks", "all", msg, sizeof(msg)) != RD_KAFKA_CONF_OK) {
		snprintf(errstr, errstr_size, "could not create Kafka producer: %s", msg);
		rd_kafka_conf_destroy(conf);
		goto fail;
	}
	rd_kafka_conf_set_opaque(conf, p);
	rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
	/* rd_kafka_new() takes conf only when it succeeds. */
	p->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, msg, sizeof(msg));
	if (p->rk == NULL) {
		snprintf(errstr, errstr_size, "could not create Kafka producer: %s", msg);
		rd_kafka_conf_destroy(conf);
		goto fail;
	}
	return p;
fail:
	pthread_mutex_destroy(&p->lock);
	free(p);
	return NULL;
}

int
tally_kafka_produce_headers(tally_kafka_producer_t *p, const char *topic, const void *key,
                            size_t klen, const void *val, size_t vlen,
                            const tally_kafka_header_t *h, size_t nh)
{
	return tally_kafka_produce_to(p, topic, RD_KAFKA_PARTITION_UA, key, klen, val, vlen, h, nh);
}

int
tally_kafka_produce_to(tally_kafka_producer_t *p, const char *topic, int32_t partition,
                       const void *key, size_t klen, const void *val, size_t vlen,
                       const tally_kafka_header_t *h, size_t nh)
{
	size_t key_len = key != NULL ? klen : 0;
	rd_kafka_resp_err_t e;

	for (;;) {
		rd_kafka_headers_t *hdrs = NULL;

		if (nh > 0) {
			hdrs = rd_kafka_headers_new(nh);
			for (size_t i = 0; i < nh; i++)
				rd_kafka_header_add(hdrs, h[i].name, -1, h[i].value, (ssize_t)h[i].len);
		}
		/* On success librdkafka owns the headers; on failure they stay ours. */
		e = rd_kafka_producev(p->rk, RD_KAFKA_V_TOPIC(topic),
		                      RD_KAFKA_V_PARTITION(partition),
		                      RD_KAFKA_V_KEY((void *)key, key_len),
		                      RD_KAFKA_V_VALUE((void *)val, vlen),
		                      RD_KAFKA_V_HEADERS(hdrs),
		                      RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
		if (e != RD_KAFKA_RESP_ERR_NO_ERROR && hdrs != NULL)
			rd_kafka_headers_destroy(hdrs);
		if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL)
			break;
		/* Room is made by deliveries: serve their reports while waiting. */
		rd_kafka_poll(p->rk, QUEUE_FULL_POLL_MS);
	}
	if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
		record_failure(p, topic, e, rd_kafka_err2str(e));
		return tally_kafka_err(e);
	}
	rd_kafka_poll(p->rk, 0);
	return 0;
}

int
tally_kafka_produce(tally_kafka_producer_t *p, const char *topic, const void *key, size_t klen,
                    const void *val, size_t vlen)
{
	return tally_kafka_produce_headers(p, topic, key, klen, val, vlen, NULL, 0);
}

int
tally_kafka_producer_flush(tally_kafka_producer_t *p, int timeout_ms, char *errstr,
                           size_t errstr_size)
{
	uint64_t failed;
	int rc = 0;

	if (rd_kafka_flush(p->rk, timeout_ms) != RD_KAFKA_RESP_ERR_NO_ERROR) {
		snprintf(errstr, errstr_size, "%d messages still in flight after %d ms",
		         rd_kafka_outq_len(p->rk), timeout_ms);
		return TALLY_ETIMEDOUT;
	}
	pthread_mutex_lock(&p->lock);
	failed = p->failed_unreported;
	if (failed > 0) {
		snprintf(errstr, errstr_size, "%llu message%s failed delivery, the first to %s",
		         (unsigned long long)failed, failed == 1 ? "" : "s", p->first_msg);
		rc = tally_kafka_err(p->first_err);
		if (rc == 0)
			rc = TALLY_EIO;
		p->failed_unreported = 0;
	}
	pthread_mutex_unlock(&p->lock);
	return rc;
}

/* ---- transactions ------------------------------------------------------------------------ */

/* Is this transactional error the end of the producer (fenced, or fatal)? */
static bool
txn_fatal(const rd_kafka_error_t *e)
{
	rd_kafka_resp_err_t code = rd_kafka_error_code(e);

	return rd_kafka_error_is_fatal(e) || code == RD_KAFKA_RESP_ERR__FENCED ||
	       code == RD_KAFKA_RESP_ERR_PRODUCER_FENCED ||
	       code == RD_KAFKA_RESP_ERR_INVALID_PRODUCER_EPOCH;
}

/* Say why (errstr) and free the error. */
static void
txn_say(rd_kafka_error_t *e, const char *what, char *errstr, size_t errstr_size)
{
	snprintf(errstr, errstr_size, "%s: %s", what, rd_kafka_error_string(e));
	rd_kafka_error_destroy(e);
}

/*
 * End the current transaction by aborting it, retrying a retriable failure a few times:
 * 0, TALLY_EFENCED (fatal) or TALLY_EIO (still not aborted; the next begin tries again).
 */
static int
txn_abort(tally_kafka_producer_t *p, int timeout_ms, char *errstr, size_t errstr_size)
{
	for (int attempt = 0;; attempt++) {
		rd_kafka_error_t *e = rd_kafka_abort_transaction(p->rk, timeout_ms);
		bool fatal, retry;

		if (e == NULL)
			return 0;
		fatal = txn_fatal(e);
		retry = rd_kafka_error_is_retriable(e) ||
		        rd_kafka_error_code(e) == RD_KAFKA_RESP_ERR__TIMED_OUT;
		txn_say(e, "could not abort a transaction", errstr, errstr_size);
		if (fatal)
			return TALLY_EFENCED;
		if (!retry || attempt == 2)
			return TALLY_EIO;
	}
}

int
tally_kafka_txn_init(tally_kafka_producer_t *p, int timeout_ms, char *errstr,
                     size_t errstr_size)
{
	rd_kafka_error_t *e = rd_kafka_init_transactions(p->rk, timeout_ms);
	int rc;

	if (e == NULL)
		return 0;
	rc = txn_fatal(e) ? TALLY_EFENCED
	     : rd_kafka_error_is_retriable(e) || rd_kafka_error_code(e) == RD_KAFKA_RESP_ERR__TIMED_OUT
	         ? TALLY_EAGAIN
	         : TALLY_EIO;
	txn_say(e, "could not initialise transactions", errstr, errstr_size);
	return rc;
}

/*
 * Begin. A transaction left in progress by a commit that timed out (librdkafka then refuses
 * both begin and abort: "Conflicting commit_transaction API call is already in progress")
 * is first finished: its commit is resumed (tally_kafka_txn_commit(), which aborts what
 * cannot be committed), then begin is tried once more. What it held was committed figures
 * either way, and nothing newer was sent meanwhile.
 */
int
tally_kafka_txn_begin(tally_kafka_producer_t *p, char *errstr, size_t errstr_size)
{
	rd_kafka_error_t *e = rd_kafka_begin_transaction(p->rk);
	int rc;

	if (e == NULL)
		return 0;
	if (txn_fatal(e)) {
		txn_say(e, "could not begin a transaction", errstr, errstr_size);
		return TALLY_EFENCED;
	}
	rd_kafka_error_destroy(e);
	rc = tally_kafka_txn_commit(p, 30000, errstr, errstr_size);
	if (rc == TALLY_EFENCED)
		return rc;
	if ((e = rd_kafka_begin_transaction(p->rk)) == NULL)
		return 0;
	rc = txn_fatal(e) ? TALLY_EFENCED : TALLY_EIO;
	txn_say(e, "could not begin a transaction", errstr, errstr_size);
	return rc;
}

/*
 * Commit. A retriable failure (e.g. the flush timed out while the broker stalled) is
 * retried by calling commit again, as librdkafka asks, up to three times; a transaction
 * that must be aborted, or is still not committed, is aborted (TALLY_EAGAIN: what it held
 * is not out; send it again). Until this, a timed-out commit was left in progress, and
 * every later begin failed: the results leader published nothing more (CI run 13).
 */
int
tally_kafka_txn_commit(tally_kafka_producer_t *p, int timeout_ms, char *errstr,
                       size_t errstr_size)
{
	for (int attempt = 0;; attempt++) {
		rd_kafka_error_t *e = rd_kafka_commit_transaction(p->rk, timeout_ms);
		bool retry;
		int rc;

		if (e == NULL)
			return 0;
		if (txn_fatal(e)) {
			txn_say(e, "could not commit a transaction", errstr, errstr_size);
			return TALLY_EFENCED;
		}
		retry = !rd_kafka_error_txn_requires_abort(e) &&
		        (rd_kafka_error_is_retriable(e) ||
		         rd_kafka_error_code(e) == RD_KAFKA_RESP_ERR__TIMED_OUT);
		txn_say(e, "could not commit a transaction", errstr, errstr_size);
		if (retry && attempt < 2)
			continue;
		{
			char why[256];

			rc = txn_abort(p, timeout_ms, why, sizeof(why));
			if (rc != 0)
				snprintf(errstr + strlen(errstr), errstr_size - strlen(errstr),
				         "; then %s", why);
		}
		return rc == TALLY_EFENCED ? TALLY_EFENCED : TALLY_EAGAIN;
	}
}

uint64_t
tally_kafka_producer_delivered(const tally_kafka_producer_t *p)
{
	return tally_load_relaxed(&p->delivered);
}

uint64_t
tally_kafka_producer_failed(const tally_kafka_producer_t *p)
{
	return tally_load_relaxed(&p->failed);
}

int64_t
tally_kafka_producer_latency_us(const tally_kafka_producer_t *p)
{
	return tally_load_relaxed(&p->last_latency_us);
}

int
tally_kafka_producer_track(tally_kafka_producer_t *p, const char *topic, int partitions)
{
	if (p->track_topic != NULL || partitions <= 0)
		return TALLY_EINVAL;
	if ((p->track_next = malloc((size_t)partitions * sizeof(*p->track_next))) == NULL ||
	    (p->track_topic = strdup(topic)) == NULL) {
		free(p->track_next);
		p->track_next = NULL;
		return TALLY_ENOMEM;
	}
	for (int i = 0; i < partitions; i++)
		p->track_next[i] = -1;
	p->track_n = partitions;
	return 0;
}

int
tally_kafka_producer_tracked(const tally_kafka_producer_t *p, int64_t *next, int n)
{
	for (int i = 0; i < n; i++)
		next[i] = i < p->track_n ? tally_load_relaxed(&p->track_next[i]) : -1;
	return p->track_n;
}

rd_kafka_t *
tally_kafka_producer_handle(tally_kafka_producer_t *p)
{
	return p->rk;
}

void
tally_kafka_producer_destroy(tally_kafka_producer_t *p)
{
	if (p == NULL)
		return;
	/* Drop what is still queued: the caller chose not to flush. */
	rd_kafka_purge(p->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
	rd_kafka_poll(p->rk, 0);
	rd_kafka_destroy(p->rk);
	pthread_mutex_destroy(&p->lock);
	free(p->track_topic);
	free(p->track_next);
	free(p);
}

/*
 * The registrar: follows voters_topic and candidates_topic while tallyd counts, so a voter
 * or candidate registered after start can vote or be voted for.
 *
 * A registration is stored in PostgreSQL first (by the store, with the topic offsets, in
 * one transaction: tally_store_registrations_write()) and enters the in-memory registry
 * only after that commits. So a vote the
 * core accepts always names a voter and candidate the votes table can reference, and a
 * restart resumes each registration topic where the registry in PostgreSQL stands.
 * Registrations PostgreSQL already holds (tally-gen writes both) are skipped without a
 * write. On the first start (no stored offsets) the topics are followed from their end as
 * it is then: registrations that exist only in Kafka from before that must be loaded into
 * PostgreSQL. The registrar is the registry's only writer once tallyd has started.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <tally/atomic.h>
#include <tally/error.h>
#include <tally/kafka.h>
#include <tally/regmsg.h>
#include <tally/store.h>
#include <tally/thread.h>
#include <tally/time.h>

#include "registrar.h"
#include "server.h"

#define REG_POLL_BATCH 2048
#define REG_MAX_PARTITIONS 4096
#define OFFSETS_SAVE_NS 1000000000ull

typedef struct regtopic {
	const char *name;
	bool voters;
	int nparts;
	int64_t next[REG_MAX_PARTITIONS];
	bool dirty;
} regtopic_t;

/* A registration waiting for its commit. */
typedef struct pending_reg {
	bool voter;
	tally_regmsg_voter_t v;
	tally_regmsg_candidate_t c;
} pending_reg_t;

struct tallyd_registrar {
	const tallyd_conf_t *conf;
	tally_registry_t *reg;
	tally_store_t *store;
	rd_kafka_t *rk;
	regtopic_t topics[2];
	pending_reg_t *pend;
	tally_store_registration_t *regs;
	size_t npend;
	pthread_t thread;
	int quit;               /* atomic */
	uint64_t registered;    /* atomic: new registrations taken in */
};

static regtopic_t *
topic_of(tallyd_registrar_t *r, const char *name)
{
	for (int i = 0; i < 2; i++)
		if (strcmp(r->topics[i].name, name) == 0)
			return &r->topics[i];
	return NULL;
}

static bool
quitting(void *arg)
{
	tallyd_registrar_t *r = arg;

	return tally_load_relaxed(&r->quit) != 0;
}

/*
 * The store keeps the new registrations and the topics' offsets in one transaction,
 * retrying until it commits (or we stop: TALLY_EAGAIN, nothing taken in).
 */
static int
store(tallyd_registrar_t *r, rd_kafka_message_t **msgs, const bool *fresh, size_t n,
      char *err, size_t errsz)
{
	tally_store_topic_offsets_t tops[2];
	size_t nregs = 0, ntops = 0;
	int rc = 0;

	for (size_t i = 0; i < n; i++) {
		rd_kafka_message_t *m = msgs[i];
		char *json;

		if (!fresh[i])
			continue;
		if ((json = malloc(m->len + 1)) == NULL) {
			snprintf(err, errsz, "out of memory");
			rc = TALLY_ENOMEM;
			break;
		}
		memcpy(json, m->payload, m->len);
		json[m->len] = '\0';
		r->regs[nregs++] = (tally_store_registration_t){
		    .voter = r->pend[i].voter, .json = json,
		    .party = r->pend[i].voter ? NULL : r->pend[i].c.party};
	}
	for (int t = 0; t < 2; t++)
		if (r->topics[t].dirty)
			tops[ntops++] = (tally_store_topic_offsets_t){r->topics[t].name, r->topics[t].next,
			                                              r->topics[t].nparts};
	if (rc == 0)
		rc = tally_store_registrations_write(r->store, r->regs, nregs, tops, ntops, quitting, r,
		                                     err, errsz);
	for (size_t i = 0; i < nregs; i++)
		free((char *)r->regs[i].json);
	return rc;
}

/* Decide which messages are new registrations; note the offsets. */
static void
classify(tallyd_registrar_t *r, rd_kafka_message_t **msgs, bool *fresh, size_t n)
{
	char err[256];

	for (size_t i = 0; i < n; i++) {
		rd_kafka_message_t *m = msgs[i];
		regtopic_t *tp = topic_of(r, rd_kafka_topic_name(m->rkt));
		pending_reg_t *pr = &r->pend[i];

		fresh[i] = false;
		if (m->partition < REG_MAX_PARTITIONS) {
			tp->next[m->partition] = m->offset + 1;
			tp->dirty = true;
		}
		pr->voter = tp->voters;
		if (tp->voters) {
			tally_voter_info_t info;

			if (tally_regmsg_decode_voter(m->payload, m->len, &pr->v, err, sizeof(err)) != 0) {
				tallyd_log("voters_topic [%" PRId32 "] offset %" PRId64 ": not a voter "
				           "registration: %s", m->partition, m->offset, err);
				continue;
			}
			fresh[i] = !tally_registry_voter_get(r->reg, &pr->v.reg.id, &info);
		} else {
			if (tally_regmsg_decode_candidate(m->payload, m->len, &pr->c, err, sizeof(err)) !=
			    0) {
				tallyd_log("candidates_topic [%" PRId32 "] offset %" PRId64 ": not a "
				           "candidate registration: %s", m->partition, m->offset, err);
				continue;
			}
			fresh[i] = tally_registry_candidate_find(r->reg, &pr->c.reg.id) < 0;
		}
		/* The same id twice in one batch: the first one registers. */
		for (size_t k = 0; fresh[i] && k < i; k++)
			if (fresh[k] && r->pend[k].voter == pr->voter &&
			    (pr->voter ? tally_uuid_equal(&r->pend[k].v.reg.id, &pr->v.reg.id)
			               : tally_uuid_equal(&r->pend[k].c.reg.id, &pr->c.reg.id)))
				fresh[i] = false;
	}
}

static void
take_in(tallyd_registrar_t *r, const bool *fresh, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		pending_reg_t *pr = &r->pend[i];
		tally_refusal_t ref;

		if (!fresh[i])
			continue;
		if (pr->voter) {
			ref = tally_registry_add_voter(r->reg, &pr->v.reg);
		} else {
			if (tally_registry_party_find(r->reg, pr->c.party) < 0)
				tally_registry_add_party(r->reg, pr->c.party, NULL);
			ref = tally_registry_add_candidate(r->reg, &pr->c.reg, NULL);
		}
		if (ref != TALLY_REFUSAL_NONE)
			tallyd_log("a %s registration was stored but not taken in: %s",
			           pr->voter ? "voter" : "candidate", tally_refusal_name(ref));
		else
			tally_add_relaxed(&r->registered, 1);
	}
}

static void *
registrar_main(void *arg)
{
	tallyd_registrar_t *r = arg;
	rd_kafka_queue_t *q = rd_kafka_queue_get_consumer(r->rk);
	rd_kafka_message_t **msgs = calloc(REG_POLL_BATCH, sizeof(*msgs));
	rd_kafka_message_t **keep = calloc(REG_POLL_BATCH, sizeof(*keep));
	bool *fresh = calloc(REG_POLL_BATCH, sizeof(*fresh));
	uint64_t last_save = tally_mono_ns();
	char err[512];

	while (msgs != NULL && keep != NULL && fresh != NULL && !tally_load_relaxed(&r->quit)) {
		ssize_t got = rd_kafka_consume_batch_queue(q, 200, msgs, REG_POLL_BATCH);
		size_t n = 0;
		bool any = false;

		for (ssize_t i = 0; i < got; i++) {
			if (msgs[i]->err == RD_KAFKA_RESP_ERR_NO_ERROR)
				keep[n++] = msgs[i];
			else
				rd_kafka_message_destroy(msgs[i]);
		}
		classify(r, keep, fresh, n);
		for (size_t i = 0; i < n; i++)
			any |= fresh[i];
		if (any || (tally_mono_ns() - last_save > OFFSETS_SAVE_NS &&
		            (r->topics[0].dirty || r->topics[1].dirty))) {
			/* Retried by the store until stored: a registration is never dropped. */
			int rc = store(r, keep, fresh, n, err, sizeof(err));

			if (rc == TALLY_EAGAIN)
				goto out;
			if (rc != 0) {
				tallyd_log("registrations: could not store: %s", err);
				goto out;
			}
			r->topics[0].dirty = r->topics[1].dirty = false;
			last_save = tally_mono_ns();
			take_in(r, fresh, n);
		}
	out:
		for (size_t i = 0; i < n; i++)
			rd_kafka_message_destroy(keep[i]);
	}
	free(msgs);
	free(keep);
	free(fresh);
	rd_kafka_queue_destroy(q);
	return NULL;
}

static int
partitions_of(rd_kafka_t *rk, const char *topic)
{
	rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
	const struct rd_kafka_metadata *md;
	int n = -1;

	if (rd_kafka_metadata(rk, 0, rkt, &md, 10000) == RD_KAFKA_RESP_ERR_NO_ERROR) {
		if (md->topic_cnt == 1 && md->topics[0].err == RD_KAFKA_RESP_ERR_NO_ERROR)
			n = md->topics[0].partition_cnt;
		rd_kafka_metadata_destroy(md);
	}
	rd_kafka_topic_destroy(rkt);
	return n;
}

tallyd_registrar_t *
tallyd_registrar_start(const tallyd_conf_t *conf, tally_registry_t *reg,
                       const tally_kafka_topics_t *topics, tally_store_t *store, char *errstr,
                       size_t errstr_size)
{
	tallyd_registrar_t *r = calloc(1, sizeof(*r));
	rd_kafka_topic_partition_list_t *list = NULL;
	rd_kafka_conf_t *kc;

	if (r == NULL || (r->pend = calloc(REG_POLL_BATCH, sizeof(*r->pend))) == NULL ||
	    (r->regs = calloc(REG_POLL_BATCH, sizeof(*r->regs))) == NULL) {
		snprintf(errstr, errstr_size, "out of memory");
		goto fail;
	}
	r->conf = conf;
	r->reg = reg;
	r->store = store;
	r->topics[0] = (regtopic_t){.name = topics->topic[TALLY_KAFKA_VOTERS].name, .voters = true};
	r->topics[1] = (regtopic_t){.name = topics->topic[TALLY_KAFKA_CANDIDATES].name};
	if ((kc = tallyd_kafka_conf(conf, errstr, errstr_size)) == NULL)
		goto fail;
	rd_kafka_conf_set(kc, "group.id", "tallyd-registrar", NULL, 0);
	rd_kafka_conf_set(kc, "enable.auto.commit", "false", NULL, 0);
	if ((r->rk = rd_kafka_new(RD_KAFKA_CONSUMER, kc, errstr, errstr_size)) == NULL) {
		rd_kafka_conf_destroy(kc);
		goto fail;
	}
	rd_kafka_poll_set_consumer(r->rk);
	list = rd_kafka_topic_partition_list_new(64);
	for (int t = 0; t < 2; t++) {
		regtopic_t *tp = &r->topics[t];

		if ((tp->nparts = partitions_of(r->rk, tp->name)) <= 0 ||
		    tp->nparts > REG_MAX_PARTITIONS) {
			snprintf(errstr, errstr_size, "topic \"%s\" not found", tp->name);
			goto fail;
		}
		if (tally_store_offsets(store, tp->name, tp->next, REG_MAX_PARTITIONS, errstr,
		                        errstr_size) < 0)
			goto fail;
		for (int p = 0; p < tp->nparts; p++) {
			/* First start: PostgreSQL's registry is the whole registry, so follow the
			 * topic from its end as it is now (an explicit offset, stored with the next
			 * save, so nothing produced from here on can be missed). Replaying what
			 * tally-gen already wrote to both would only cost start-up time. */
			if (tp->next[p] < 0) {
				int64_t lo, hi;
				rd_kafka_resp_err_t e;

				/* A topic just created may not have its leaders yet: retried for 30 s. */
				for (int attempt = 0;; attempt++) {
					struct timespec second = {1, 0};

					e = rd_kafka_query_watermark_offsets(r->rk, tp->name, p, &lo, &hi, 10000);
					if (e == RD_KAFKA_RESP_ERR_NO_ERROR || attempt == 30)
						break;
					tallyd_log("registrar: reading the end of \"%s\" [%d], retrying in 1 s: "
					           "%s", tp->name, p, rd_kafka_err2str(e));
					nanosleep(&second, NULL);
				}
				if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
					snprintf(errstr, errstr_size, "could not read the end of \"%s\" [%d]: %s",
					         tp->name, p, rd_kafka_err2str(e));
					goto fail;
				}
				tp->next[p] = hi;
				tp->dirty = true;
			}
			rd_kafka_topic_partition_list_add(list, tp->name, p)->offset = tp->next[p];
		}
	}
	if (rd_kafka_assign(r->rk, list) != RD_KAFKA_RESP_ERR_NO_ERROR) {
		snprintf(errstr, errstr_size, "could not assign the registration topics");
		goto fail;
	}
	rd_kafka_topic_partition_list_destroy(list);
	list = NULL;
	if (tally_thread_start(&r->thread, "tally:registrar", registrar_main, r, errstr,
	                       errstr_size) != 0)
		goto fail;
	return r;
fail:
	if (list != NULL)
		rd_kafka_topic_partition_list_destroy(list);
	if (r != NULL) {
		if (r->rk != NULL)
			rd_kafka_destroy(r->rk);
		free(r->pend);
		free(r->regs);
		free(r);
	}
	return NULL;
}

void
tallyd_registrar_stop(tallyd_registrar_t *r)
{
	if (r == NULL)
		return;
	tally_store_relaxed(&r->quit, 1);
	pthread_join(r->thread, NULL);
	tallyd_log("registrar stopped");
	rd_kafka_consumer_close(r->rk);
	rd_kafka_destroy(r->rk);
	free(r->pend);
	free(r->regs);
	free(r);
}

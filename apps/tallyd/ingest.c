/*
 * tallyd's ingest path (server_int.h): messages from votes_topic decoded into one batch per
 * partition, batches submitted to the core, completed batches harvested in order per
 * partition: accepted votes become rows for the next checkpoint, rejected ones dead
 * letters, and the partition's next offset advances.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tally/atomic.h>
#include <tally/core.h>
#include <tally/decode.h>
#include <tally/error.h>
#include <tally/kafka.h>
#include <tally/pg_checkpoint.h>
#include <tally/snapshot.h>
#include <tally/state.h>
#include <tally/time.h>

#include "server_int.h"

/* ---- slots ------------------------------------------------------------------------------ */

static slot_t *
slot_get(server_t *s)
{
	slot_t *sl = s->free_slots;

	if (sl != NULL) {
		s->free_slots = sl->next;
		s->free_count--;
		sl->next = NULL;
		sl->n = 0;
	}
	return sl;
}

void
tallyd_slot_put(server_t *s, slot_t *sl)
{
	sl->next = s->free_slots;
	s->free_slots = sl;
	s->free_count++;
}

int
tallyd_parts_fit(server_t *s, int n)
{
	part_t *p;

	if (n <= s->nparts)
		return 0;
	if ((p = realloc(s->parts, (size_t)n * sizeof(*p))) == NULL)
		return TALLY_ENOMEM;
	for (int i = s->nparts; i < n; i++)
		p[i] = (part_t){.next_offset = -1, .read_offset = -1};
	s->parts = p;
	s->nparts = n;
	return 0;
}

static void
submit(server_t *s, part_t *p)
{
	slot_t *sl = p->fill;

	if (sl == NULL || sl->n == 0)
		return;
	p->fill = NULL;
	tally_batch_init(&sl->batch, sl->votes, sl->n, (uint32_t)sl->partition);
	if (p->tail != NULL)
		p->tail->next = sl;
	else
		p->head = sl;
	p->tail = sl;
	tally_core_submit(s->core, &sl->batch);
}

void
tallyd_submit_all(server_t *s)
{
	for (int i = 0; i < s->nparts; i++)
		submit(s, &s->parts[i]);
}

/* ---- harvest -------------------------------------------------------------------------- */

static int
rows_push(rows_t *r, const tally_pg_vote_row_t *row)
{
	if (r->n == r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 65536;
		tally_pg_vote_row_t *v = realloc(r->v, cap * sizeof(*v));

		if (v == NULL)
			return TALLY_ENOMEM;
		r->v = v;
		r->cap = cap;
	}
	r->v[r->n++] = *row;
	return 0;
}

static void
dead_letter(server_t *s, const rd_kafka_message_t *m, const tally_vote_t *v)
{
	char part[16], off[24], detail[160];
	const char *reason = tally_reason_name(v->reason);
	const char *topic = rd_kafka_topic_name(m->rkt);

	if (v->reason == TALLY_REASON_MALFORMED) {
		tally_vote_t scratch;
		tally_decode_result_t res;

		/* Decoding is pure: doing it again gives the detail without keeping it per vote. */
		tally_decode_vote(NULL, m->payload, m->len, &scratch, &res);
		snprintf(detail, sizeof(detail), "%s: %s", tally_decode_err_name(res.cls), res.detail);
	} else {
		snprintf(detail, sizeof(detail), "%s", tally_reason_doc(v->reason));
	}
	snprintf(part, sizeof(part), "%" PRId32, m->partition);
	snprintf(off, sizeof(off), "%" PRId64, m->offset);
	{
		tally_kafka_header_t h[6] = {
		    {"reason", reason, strlen(reason)},
		    {"detail", detail, strlen(detail)},
		    {"source_topic", topic, strlen(topic)},
		    {"source_partition", part, strlen(part)},
		    {"source_offset", off, strlen(off)},
		    {"election_id", s->conf->election_id, strlen(s->conf->election_id)},
		};

		int rc = tally_kafka_produce_headers(s->producer,
		                                     s->topics.topic[TALLY_KAFKA_REJECTED].name,
		                                     m->key, m->key_len, m->payload, m->len, h, 6);

		/* Refused at once (e.g. larger than message.max.bytes with the headers added):
		 * said loudly, since the vote's only trace is then this line and the counter. */
		if (rc != 0 && tally_add_relaxed(&s->dead_letter_failed, 1) % 1000 == 1)
			tallyd_log("could not dead-letter the vote at \"%s\" [%" PRId32 "] offset %" PRId64
			           " (%s): %s (%" PRIu64 " so far)", topic, m->partition, m->offset,
			           reason, tally_err2str(rc), tally_load_relaxed(&s->dead_letter_failed));
		else if (rc == 0)
			tally_add_relaxed(&s->dead_letters, 1);
	}
}

/* Take in every completed batch, in order per partition. */
void
tallyd_harvest(server_t *s)
{
	for (int i = 0; i < s->nparts; i++) {
		part_t *p = &s->parts[i];

		while (p->head != NULL && tally_batch_done(&p->head->batch)) {
			slot_t *sl = p->head;

			for (uint32_t k = 0; k < sl->n; k++) {
				const tally_vote_t *v = &sl->votes[k];
				rd_kafka_message_t *m = sl->msgs[k];

				if (v->reason == TALLY_REASON_ACCEPTED) {
					tally_pg_vote_row_t row = {v->voter_id, v->candidate_id, v->voting_time,
					                           m->offset, m->partition, 0};

					if (rows_push(&s->pending, &row) != 0) {
						tallyd_log("out of memory holding accepted votes");
						abort();
					}
				} else {
					dead_letter(s, m, v);
				}
				p->next_offset = m->offset + 1;
				rd_kafka_message_destroy(m);
			}
			tally_add_relaxed(&s->accepted, sl->batch.accepted);
			tally_add_relaxed(&s->rejected, sl->batch.rejected);
			p->head = sl->next;
			if (p->head == NULL)
				p->tail = NULL;
			tallyd_slot_put(s, sl);
		}
	}
}

/* Submit what is filling and wait until every batch is harvested. */
void
tallyd_settle(server_t *s)
{
	tallyd_submit_all(s);
	for (;;) {
		bool busy = false;

		tallyd_harvest(s);
		for (int i = 0; i < s->nparts; i++)
			busy |= s->parts[i].head != NULL;
		if (!busy)
			return;
		sched_yield();
	}
}

/* ---- ingest ----------------------------------------------------------------------------- */

void
tallyd_ingest(server_t *s, rd_kafka_message_t *m)
{
	part_t *p;
	slot_t *sl;

	if (m->partition >= s->nparts && tallyd_parts_fit(s, m->partition + 1) != 0) {
		tallyd_log("out of memory");
		abort();
	}
	p = &s->parts[m->partition];
	if (!p->assigned) {            /* left over from a revoked assignment */
		rd_kafka_message_destroy(m);
		return;
	}
	p->eof = false;
	while ((sl = p->fill) == NULL) {
		if ((sl = slot_get(s)) != NULL) {
			sl->partition = m->partition;
			p->fill = sl;
			break;
		}
		/* Every slot is in flight: wait for the workers. */
		tallyd_submit_all(s);
		tallyd_harvest(s);
		if (s->free_count == 0)
			sched_yield();
	}
	tally_decode_vote(NULL, m->payload, m->len, &sl->votes[sl->n], NULL);
	p->read_offset = m->offset + 1;
	sl->msgs[sl->n++] = m;
	tally_add_relaxed(&s->read, 1);
	if (sl->n == SLOT_VOTES)
		submit(s, p);
}


/*
 * tallyd's ingest path (server_int.h): messages from votes_topic decoded into one batch per
 * partition, batches submitted to the core, completed batches harvested in order per
 * partition: accepted votes become rows for the next checkpoint, rejected ones dead
 * letters for it (written by the checkpointer, never here: harvesting also runs while the
 * core is paused for a cut, where nothing may wait on Kafka), and the partition's next
 * offset advances.
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
#include <tally/pg_types.h>
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

/* Keep a rejected vote for the dead-letter topic; the message itself is let go. */
static int
dead_letters_push(dead_letters_t *dl, const rd_kafka_message_t *m, tally_reason_t reason)
{
	size_t need = m->key_len + m->len;

	if (dl->n == dl->cap) {
		size_t cap = dl->cap ? dl->cap * 2 : 1024;
		dead_letter_t *v = realloc(dl->v, cap * sizeof(*v));

		if (v == NULL)
			return TALLY_ENOMEM;
		dl->v = v;
		dl->cap = cap;
	}
	if (dl->used + need > dl->bufcap) {
		size_t cap = dl->bufcap ? dl->bufcap : 65536;
		char *b;

		while (cap < dl->used + need)
			cap *= 2;
		if ((b = realloc(dl->buf, cap)) == NULL)
			return TALLY_ENOMEM;
		dl->buf = b;
		dl->bufcap = cap;
	}
	dl->v[dl->n++] = (dead_letter_t){
	    .offset = m->offset,
	    .partition = m->partition,
	    .reason = (uint8_t)reason,
	    .has_key = m->key != NULL,
	    .key_len = (uint32_t)m->key_len,
	    .len = (uint32_t)m->len,
	    .at = dl->used,
	};
	if (m->key_len > 0)
		memcpy(dl->buf + dl->used, m->key, m->key_len);
	if (m->len > 0)
		memcpy(dl->buf + dl->used + m->key_len, m->payload, m->len);
	dl->used += need;
	return 0;
}

void
tallyd_dead_letters_free(dead_letters_t *dl)
{
	free(dl->v);
	free(dl->buf);
	memset(dl, 0, sizeof(*dl));
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
				} else if (dead_letters_push(&s->pending_dl, m, v->reason) != 0) {
					tallyd_log("out of memory holding rejected votes");
					abort();
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


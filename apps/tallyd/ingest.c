/*
 * tallyd's ingest path (server_int.h): messages from votes_topic decoded into one batch per
 * partition, batches submitted to the core, completed batches harvested in order per
 * partition: accepted votes become rows for the next checkpoint, rejected ones dead
 * letters for it (written by the checkpointer, never here: harvesting also runs while the
 * core is paused for a cut, where nothing may wait on Kafka), and the partition's next
 * offset advances.
 *
 * --cluster: a vote whose voter's home (include/tally/home.h) is another partition is
 * forwarded there through fwd_topic and let pass (its offset advances with the batches
 * around it, uncounted); fwd_topic's partition h is read into lane h, each forwarded vote
 * let in once per source position (server_int.h) and stored under that position.
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
#include <tally/home.h>
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
		sl->pass_to = -1;
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

/* The part a message is read into: its partition's, of votes_topic or of fwd_topic; NULL
 * for a partition of fwd_topic beyond votes_topic's. */
part_t *
tallyd_part_of(server_t *s, const rd_kafka_message_t *m)
{
	if (s->fparts != NULL && strcmp(rd_kafka_topic_name(m->rkt), s->fwd_topic) == 0)
		return m->partition >= 0 && m->partition < s->nvotes_parts ? &s->fparts[m->partition]
		                                                             : NULL;
	if (m->partition >= s->nparts && tallyd_parts_fit(s, m->partition + 1) != 0) {
		tallyd_log("out of memory");
		abort();
	}
	return &s->parts[m->partition];
}

/* The lane of a batch is its partition's number in either topic: fwd_topic's partition h
 * holds the votes of home h, counted in part h with those read on votes_topic's h. */
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
	for (int i = 0; s->fparts != NULL && i < s->nvotes_parts; i++)
		submit(s, &s->fparts[i]);
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

/* Keep a rejected vote (at src in votes_topic) for the dead-letter topic; the message
 * itself is let go. */
static int
dead_letters_push(dead_letters_t *dl, const rd_kafka_message_t *m, const srcpos_t *src,
                  tally_reason_t reason)
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
	    .offset = src->offset,
	    .partition = src->partition,
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

/* Take in p's completed batches, in order. */
static void
harvest_part(server_t *s, part_t *p)
{
	while (p->head != NULL && tally_batch_done(&p->head->batch)) {
		slot_t *sl = p->head;

		for (uint32_t k = 0; k < sl->n; k++) {
			const tally_vote_t *v = &sl->votes[k];
			const srcpos_t *src = &sl->src[k];
			rd_kafka_message_t *m = sl->msgs[k];

			if (v->reason == TALLY_REASON_ACCEPTED) {
				tally_pg_vote_row_t row = {v->voter_id, v->candidate_id, v->voting_time,
				                           src->offset, src->partition, 0};

				if (rows_push(&s->pending, &row) != 0) {
					tallyd_log("out of memory holding accepted votes");
					abort();
				}
			} else if (dead_letters_push(&s->pending_dl, m, src, v->reason) != 0) {
				tallyd_log("out of memory holding rejected votes");
				abort();
			}
			if (p->forward)
				p->seen_done[src->partition] = src->offset;
			p->next_offset = m->offset + 1;
			rd_kafka_message_destroy(m);
		}
		if (sl->pass_to > p->next_offset)
			p->next_offset = sl->pass_to;
		tally_add_relaxed(&s->accepted, sl->batch.accepted);
		tally_add_relaxed(&s->rejected, sl->batch.rejected);
		p->head = sl->next;
		if (p->head == NULL)
			p->tail = NULL;
		tallyd_slot_put(s, sl);
	}
}

/* Take in every completed batch, in order per partition. */
void
tallyd_harvest(server_t *s)
{
	for (int i = 0; i < s->nparts; i++)
		harvest_part(s, &s->parts[i]);
	for (int i = 0; s->fparts != NULL && i < s->nvotes_parts; i++)
		harvest_part(s, &s->fparts[i]);
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
		for (int i = 0; s->fparts != NULL && i < s->nvotes_parts; i++)
			busy |= s->fparts[i].head != NULL;
		if (!busy)
			return;
		sched_yield();
	}
}

/* ---- ingest ----------------------------------------------------------------------------- */

/* A message not counted here (forwarded to its home, or a forward already let in): its
 * offset advances with the batches read before it. */
static void
let_pass(server_t *s, part_t *p, rd_kafka_message_t *m)
{
	int64_t to = m->offset + 1;

	if (p->fill != NULL)
		p->fill->pass_to = to;
	else if (p->tail != NULL)
		p->tail->pass_to = to;
	else
		p->next_offset = to;
	p->read_offset = to;
	s->passed++;
	rd_kafka_message_destroy(m);
}

/* The header of a forwarded vote: its source partition and offset, big-endian. */
#define FWD_HEADER "tally-source"

static void
put_be(unsigned char *at, uint64_t v, int bytes)
{
	for (int i = bytes - 1; i >= 0; i--, v >>= 8)
		at[i] = (unsigned char)v;
}

static uint64_t
get_be(const unsigned char *at, int bytes)
{
	uint64_t v = 0;

	for (int i = 0; i < bytes; i++)
		v = v << 8 | at[i];
	return v;
}

static bool
forward_source(rd_kafka_message_t *m, srcpos_t *src)
{
	rd_kafka_headers_t *hdrs;
	const void *v;
	size_t n;

	if (rd_kafka_message_headers(m, &hdrs) != RD_KAFKA_RESP_ERR_NO_ERROR ||
	    rd_kafka_header_get_last(hdrs, FWD_HEADER, &v, &n) != RD_KAFKA_RESP_ERR_NO_ERROR ||
	    n != 12)
		return false;
	src->partition = (int32_t)(uint32_t)get_be(v, 4);
	src->offset = (int64_t)get_be((const unsigned char *)v + 4, 8);
	return src->offset >= 0;
}

/* Produce m to its voter's home partition of fwd_topic (delivered before any cut past it
 * commits: tallyd_forward_flush()). Not queued: nothing more may commit; stop. */
static void
forward(server_t *s, const rd_kafka_message_t *m, uint32_t home)
{
	unsigned char pos[12];
	tally_kafka_header_t h = {FWD_HEADER, pos, sizeof(pos)};
	int rc;

	put_be(pos, (uint32_t)m->partition, 4);
	put_be(pos + 4, (uint64_t)m->offset, 8);
	rc = tally_kafka_produce_to(s->fwd, s->fwd_topic, (int32_t)home, m->key, m->key_len,
	                            m->payload, m->len, &h, 1);
	if (rc != 0) {
		if (tally_load_relaxed(&s->fwd_failed) == 0)
			tallyd_log("could not forward a vote of partition %d to \"%s\": %s; stopping "
			           "without a final checkpoint (the next owner reads it again)",
			           (int)m->partition, s->fwd_topic, tally_err2str(rc));
		tally_store_release(&s->fwd_failed, 1);
		s->give_up = true;
		tallyd_request_stop();
		return;
	}
	tally_add_relaxed(&s->forwarded, 1);
}

void
tallyd_ingest(server_t *s, rd_kafka_message_t *m)
{
	part_t *p = tallyd_part_of(s, m);
	srcpos_t src = {m->partition, m->offset};
	tally_vote_t v;
	slot_t *sl;

	if (p == NULL || !p->assigned) {   /* left over from a revoked assignment */
		rd_kafka_message_destroy(m);
		return;
	}
	p->eof = false;
	if (p->forward) {
		if (!forward_source(m, &src) || src.partition < 0 ||
		    src.partition >= s->nvotes_parts) {
			tallyd_log("partition %d of \"%s\", offset %" PRId64 ": no valid \"" FWD_HEADER
			           "\" header: not a forwarded vote, skipped", (int)m->partition,
			           s->fwd_topic, m->offset);
			let_pass(s, p, m);
			return;
		}
		if (src.offset <= p->seen[src.partition]) {
			tally_add_relaxed(&s->fwd_twice, 1);
			let_pass(s, p, m);
			return;
		}
		p->seen[src.partition] = src.offset;
	}
	tally_decode_vote(NULL, m->payload, m->len, &v, NULL);
	if (s->fparts != NULL && !p->forward && v.reason == TALLY_REASON_ACCEPTED) {
		uint32_t home = tally_home_partition(&v.voter_id, (uint32_t)s->nvotes_parts);

		if ((int32_t)home != m->partition) {
			forward(s, m, home);
			let_pass(s, p, m);
			return;
		}
	}
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
	sl->votes[sl->n] = v;
	sl->src[sl->n] = src;
	p->read_offset = m->offset + 1;
	sl->msgs[sl->n++] = m;
	tally_add_relaxed(&s->read, 1);
	if (sl->n == SLOT_VOTES)
		submit(s, p);
}

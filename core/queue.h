/*
 * A bounded lock-free MPSC queue of pointers: ck_ring, plus what ThreadSanitizer needs.
 *
 * DESIGN: any number of producers enqueue, one consumer dequeues. ck_ring's atomics are
 * inline assembly that TSan cannot see, so under TSan the hand-over of each item is declared
 * with __tsan_release/__tsan_acquire on the item itself (the happens-before edge the ring
 * really provides), and reports inside ck's own headers are suppressed (tests/tsan.supp).
 */
#ifndef TALLY_QUEUE_H
#define TALLY_QUEUE_H

#include <stdbool.h>
#include <stdlib.h>

#include <ck_ring.h>

#ifdef TALLY_TSAN
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
#define TALLY__TSAN_ACQUIRE(p) __tsan_acquire(p)
#define TALLY__TSAN_RELEASE(p) __tsan_release(p)
#else
#define TALLY__TSAN_ACQUIRE(p) ((void)0)
#define TALLY__TSAN_RELEASE(p) ((void)0)
#endif

typedef struct tally__queue {
	ck_ring_t ring;
	ck_ring_buffer_t *buf;
} tally__queue_t;

/* size: a power of two; the queue holds size - 1 items. */
static inline int
tally__queue_init(tally__queue_t *q, unsigned size)
{
	q->buf = aligned_alloc(64, sizeof(ck_ring_buffer_t) * size);
	if (q->buf == NULL)
		return -1;
	ck_ring_init(&q->ring, size);
	return 0;
}

static inline void
tally__queue_fini(tally__queue_t *q)
{
	free(q->buf);
	q->buf = NULL;
}

static inline bool
tally__queue_enqueue_mpsc(tally__queue_t *q, void *item)
{
	TALLY__TSAN_RELEASE(item);
	return ck_ring_enqueue_mpsc(&q->ring, q->buf, item);
}

static inline void *
tally__queue_dequeue_mpsc(tally__queue_t *q)
{
	void *item;

	if (!ck_ring_dequeue_mpsc(&q->ring, q->buf, &item))
		return NULL;
	TALLY__TSAN_ACQUIRE(item);
	return item;
}

#endif /* TALLY_QUEUE_H */

/**
 * @file atomic.h
 * @brief The one thin wrapper through which tally's own code does atomics.
 *
 * Built on the compiler's __atomic builtins so ThreadSanitizer understands every access.
 * Public so apps and adapters keep to the same wrapper.
 * Relaxed and ordered variants have different names, so the reader sees which is meant.
 * (ck_ring, whose atomics are inline assembly TSan cannot see, is wrapped in queue.c.)
 */
#ifndef TALLY_ATOMIC_H
#define TALLY_ATOMIC_H

#include <stdbool.h>
#include <stdint.h>

#define TALLY_CACHELINE 64

#define tally_load_relaxed(p)      __atomic_load_n((p), __ATOMIC_RELAXED)
#define tally_load_acquire(p)      __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define tally_store_relaxed(p, v)  __atomic_store_n((p), (v), __ATOMIC_RELAXED)
#define tally_store_release(p, v)  __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#define tally_add_relaxed(p, v)    __atomic_add_fetch((p), (v), __ATOMIC_RELAXED)
#define tally_add_acq_rel(p, v)    __atomic_add_fetch((p), (v), __ATOMIC_ACQ_REL)
#define tally_fence_seq_cst()      __atomic_thread_fence(__ATOMIC_SEQ_CST)

/* Compare-and-swap; on failure *expected receives the current value. */
#define tally_cas_acq_rel(p, expected, desired)                                       \
	__atomic_compare_exchange_n((p), (expected), (desired), false, __ATOMIC_ACQ_REL, \
	                            __ATOMIC_ACQUIRE)

/*
 * A counter with a single writer: a relaxed load and store, no locked instruction.
 * Readers on other threads see a value that only grows.
 */
static inline void
tally_counter_inc_owned(uint64_t *c)
{
	tally_store_relaxed(c, tally_load_relaxed(c) + 1);
}

static inline void
tally_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#endif
}

#endif /* TALLY_ATOMIC_H */

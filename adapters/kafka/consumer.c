/*
 * Ending a group consumer, around a librdkafka fault.
 *
 * librdkafka before 2.3.0 (Debian's is 2.0.2) aborts in rd_kafka_destroy() on a
 * cooperative-sticky consumer whose group answered its JoinGroup but never its SyncGroup:
 * the sticky assignor's state is only made on a SyncGroup's answer, and destroying the
 * group destroys it unchecked ("rd_kafka_sticky_assignor_state_destroy: Assertion
 * `assignor_state' failed"; librdkafka issue 4312, fixed by pull request 4381). A broker
 * too slow to answer a SyncGroup before SIGTERM did that to a stopping tallyd in CI, after
 * everything it had was stored: the exit status said it failed when it had not.
 *
 * Every SyncGroup answer reaches the application's rebalance callback as an assignment
 * (empty or not), so a caller that saw one knows the state exists. A consumer that never
 * saw one is closed but not destroyed: its handle is kept on a list reachable from a
 * static until the process exits (so LeakSanitizer does not call it lost).
 */
#include <stdlib.h>

#include <tally/kafka.h>

/* Fixed by librdkafka pull request 4381, first released in 2.3.0. */
#define ASSIGNOR_STATE_FIXED 0x02030000

typedef struct kept {
	rd_kafka_t *rk;
	struct kept *next;
} kept_t;

static kept_t *kept_head; /* pushed by CAS: callers may be on any thread */

bool
tally_kafka_consumer_destroy_is_safe(bool assigned_once)
{
	return assigned_once || rd_kafka_version() >= ASSIGNOR_STATE_FIXED;
}

bool
tally_kafka_consumer_destroy(rd_kafka_t *rk, bool assigned_once)
{
	kept_t *k;

	if (rk == NULL)
		return true;
	if (tally_kafka_consumer_destroy_is_safe(assigned_once)) {
		rd_kafka_destroy(rk);
		return true;
	}
	if ((k = malloc(sizeof(*k))) == NULL)
		return false; /* a leak at exit, never an abort */
	k->rk = rk;
	k->next = __atomic_load_n(&kept_head, __ATOMIC_ACQUIRE);
	while (!__atomic_compare_exchange_n(&kept_head, &k->next, k, false, __ATOMIC_ACQ_REL,
	                                    __ATOMIC_ACQUIRE))
		;
	return false;
}

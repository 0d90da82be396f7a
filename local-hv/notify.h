/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * When a request/response queue's used entries are worth an interrupt
 * (README: completion coalescing). A pure function of the queue's state,
 * the guest's suppression state and the poller's round clock, so that it
 * can be tested against a simulated guest.
 *
 * The rules, once per poll round per queue, after the round's used entries
 * are published:
 * - Nothing new since the last decision: nothing to do.
 * - Without event-idx the ring's NO_INTERRUPT flag decides, at once.
 * - With event-idx, vring_need_event() over everything published since
 *   the last interrupt or suppressed decision decides whether the guest
 *   asked to be woken. If it did, and coalescing is on (window_ns > 0) and
 *   requests are still in flight on the queue, the interrupt is held: the
 *   old index is kept, so a later round's check still covers these entries
 *   and no wake-up the guest asked for is lost. A held interrupt goes at
 *   the first round at or past hold_since + window_ns, or as soon as
 *   nothing is in flight on the queue.
 */
#ifndef VRIO_LOCALHV_NOTIFY_H
#define VRIO_LOCALHV_NOTIFY_H

#include <stdbool.h>
#include <stdint.h>

struct lhv_notify {
	uint16_t signalled_used;	/* used index at the last interrupt or suppression */
	bool signalled_valid;		/* false until the first decision */
	uint64_t hold_since;		/* round clock when the held interrupt was first due; 0: none */
};

enum lhv_notify_act {
	LHV_NOTIFY_NONE,	/* no interrupt: nothing new, or the guest did not ask */
	LHV_NOTIFY_SEND,	/* write the call eventfd now */
	LHV_NOTIFY_HOLD,	/* due, held: decide again next round (before hold_since + window) */
};

/* The guest's side, read after the used index store and a full fence. */
struct lhv_notify_guest {
	bool event_idx;		/* VIRTIO_RING_F_EVENT_IDX negotiated */
	uint16_t used_event;	/* event-idx: avail->ring[size] */
	bool no_interrupt;	/* no event-idx: VRING_AVAIL_F_NO_INTERRUPT */
};

enum lhv_notify_act lhv_notify_decide(struct lhv_notify *n, uint16_t used_idx,
				      const struct lhv_notify_guest *g, unsigned inflight,
				      uint64_t window_ns, uint64_t now);

/* The queue starts again (a new ring): forget the last decision. */
static inline void lhv_notify_reset(struct lhv_notify *n)
{
	n->signalled_used = 0;
	n->signalled_valid = false;
	n->hold_since = 0;
}

#endif

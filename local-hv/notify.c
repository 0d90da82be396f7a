/* SPDX-License-Identifier: BSD-3-Clause */
#include <linux/virtio_ring.h>

#include "notify.h"

enum lhv_notify_act lhv_notify_decide(struct lhv_notify *n, uint16_t used_idx,
				      const struct lhv_notify_guest *g, unsigned inflight,
				      uint64_t window_ns, uint64_t now)
{
	uint16_t old = n->signalled_used;
	bool need;

	if (n->signalled_valid && old == used_idx)
		return LHV_NOTIFY_NONE;
	if (g->event_idx)
		need = !n->signalled_valid || vring_need_event(g->used_event, used_idx, old);
	else
		need = !g->no_interrupt;
	if (need && g->event_idx && window_ns && inflight && n->signalled_valid) {
		/* More completions are coming: one interrupt may cover them.
		 * 0 is not a clock value here (the round clock is monotonic
		 * from boot), so it marks "not holding". */
		if (!n->hold_since)
			n->hold_since = now ? now : 1;
		if (now - n->hold_since < window_ns)
			return LHV_NOTIFY_HOLD;
	}
	n->signalled_used = used_idx;
	n->signalled_valid = true;
	n->hold_since = 0;
	return need ? LHV_NOTIFY_SEND : LHV_NOTIFY_NONE;
}

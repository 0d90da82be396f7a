/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Fair shares within a poll round. A queue takes at most `quantum` units
 * (chains, packets) per pass; the queues that took a whole quantum are
 * served again, in the same order, until none has more or each has taken
 * `budget` in the round. A deep queue alone still takes `budget` a round;
 * beside it a shallow queue's request leaves after at most `quantum` of
 * the deep one's, not after `budget` of them.
 *
 * Poller thread only; nothing allocated, nothing per unit.
 */
#ifndef VRIO_LHV_FAIR_H
#define VRIO_LHV_FAIR_H

#include <stdbool.h>

#define LHV_FAIR_QUANTUM	16u
#define LHV_FAIR_MAX		256u	/* queues kept for later passes */

/* Takes at most max units from queue (obj, idx); returns those taken,
 * or a negative errno (the queue stops for this round). */
typedef int (*lhv_fair_take_fn)(void *ctx, void *obj, unsigned idx, unsigned max);

struct lhv_fair {
	unsigned quantum, budget;
	unsigned n;
	struct {
		void *obj;
		unsigned idx;
		unsigned taken;
	} more[LHV_FAIR_MAX];
};

/* A new round. quantum <= budget, both at least 1. */
void lhv_fair_begin(struct lhv_fair *f, unsigned quantum, unsigned budget);
/* The first pass took `took` (take's result with max = quantum) from
 * (obj, idx): a whole quantum keeps the queue for the later passes; with
 * no room left for it, it takes the rest of its budget at once. Returns
 * the units taken here. */
int lhv_fair_first(struct lhv_fair *f, void *obj, unsigned idx, int took, lhv_fair_take_fn take,
		   void *ctx);
/* The passes after the first; returns the units they took. */
int lhv_fair_rest(struct lhv_fair *f, lhv_fair_take_fn take, void *ctx);

#endif

/* SPDX-License-Identifier: BSD-3-Clause */
/* Fair shares within a poll round (fair.h). */
#include "fair.h"

void lhv_fair_begin(struct lhv_fair *f, unsigned quantum, unsigned budget)
{
	f->quantum = quantum;
	f->budget = budget;
	f->n = 0;
}

int lhv_fair_first(struct lhv_fair *f, void *obj, unsigned idx, int took, lhv_fair_take_fn take,
		   void *ctx)
{
	int more;

	if (took < (int)f->quantum || f->quantum >= f->budget)
		return 0;
	if (f->n < LHV_FAIR_MAX) {
		f->more[f->n].obj = obj;
		f->more[f->n].idx = idx;
		f->more[f->n].taken = (unsigned)took;
		f->n++;
		return 0;
	}
	/* More busy queues than places: this one is served as if alone. */
	more = take(ctx, obj, idx, f->budget - (unsigned)took);
	return more > 0 ? more : 0;
}

int lhv_fair_rest(struct lhv_fair *f, lhv_fair_take_fn take, void *ctx)
{
	unsigned i, k, max;
	int work = 0, w;

	while (f->n) {
		for (i = k = 0; i < f->n; i++) {
			max = f->budget - f->more[i].taken;
			if (max > f->quantum)
				max = f->quantum;
			w = take(ctx, f->more[i].obj, f->more[i].idx, max);
			if (w <= 0)
				continue;
			work += w;
			f->more[i].taken += (unsigned)w;
			/* Kept while it takes whole quanta and has budget left. */
			if ((unsigned)w >= max && f->more[i].taken < f->budget)
				f->more[k++] = f->more[i];
		}
		f->n = k;
	}
	return work;
}

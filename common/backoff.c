/* SPDX-License-Identifier: BSD-3-Clause */
#include "backoff.h"

void vrio_backoff_init(struct vrio_backoff *b, uint64_t max_ns)
{
	b->max_ns = max_ns;
	b->window_ns = max_ns;
	b->long_share = 0;
}

void vrio_backoff_work(struct vrio_backoff *b, uint64_t gap_ns)
{
	unsigned x = gap_ns > VRIO_BACKOFF_LONG * b->max_ns ? VRIO_BACKOFF_ONE : 0;

	if (x >= b->long_share)
		b->long_share += (x - b->long_share + (1u << VRIO_BACKOFF_SHIFT) - 1) >>
				 VRIO_BACKOFF_SHIFT;
	else
		b->long_share -= (b->long_share - x + (1u << VRIO_BACKOFF_SHIFT) - 1) >>
				 VRIO_BACKOFF_SHIFT;
	b->window_ns = b->long_share <= VRIO_BACKOFF_SELDOM ? b->max_ns : 0;
}

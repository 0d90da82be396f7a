// SPDX-License-Identifier: BSD-3-Clause
#include <math.h>
#include <string.h>

#include "stats.h"

void hist_init(struct lat_hist *h)
{
	memset(h, 0, sizeof(*h));
	h->min_ns = UINT64_MAX;
}

unsigned int hist_bucket(uint64_t ns)
{
	unsigned int msb, shift;

	if (ns < HIST_LINEAR)
		return (unsigned int)ns;
	msb = 63u - (unsigned int)__builtin_clzll(ns);
	shift = msb - HIST_SUB_BITS;
	/* ns >> shift lies in [HIST_SUB, 2 * HIST_SUB). */
	return HIST_LINEAR + (shift - 1u) * HIST_SUB + (unsigned int)((ns >> shift) - HIST_SUB);
}

uint64_t hist_bucket_value(unsigned int idx)
{
	unsigned int shift;
	uint64_t mant;

	if (idx < HIST_LINEAR)
		return idx;
	shift = (idx - HIST_LINEAR) / HIST_SUB + 1u;
	mant = (idx - HIST_LINEAR) % HIST_SUB + HIST_SUB;
	return (mant << shift) + (1ull << (shift - 1u));
}

void hist_add(struct lat_hist *h, uint64_t ns)
{
	h->buckets[hist_bucket(ns)]++;
	h->count++;
	h->sum_ns += ns;
	if (ns < h->min_ns)
		h->min_ns = ns;
	if (ns > h->max_ns)
		h->max_ns = ns;
}

uint64_t hist_percentile(const struct lat_hist *h, double p)
{
	uint64_t target, seen = 0, v;
	unsigned int i;

	if (!h->count)
		return 0;
	if (p <= 0)
		return h->min_ns;
	if (p >= 1)
		return h->max_ns;
	target = (uint64_t)ceil(p * (double)h->count);
	if (target == 0)
		target = 1;
	for (i = 0; i < HIST_BUCKETS; i++) {
		seen += h->buckets[i];
		if (seen >= target)
			break;
	}
	v = hist_bucket_value(i);
	if (v < h->min_ns)
		v = h->min_ns;
	if (v > h->max_ns)
		v = h->max_ns;
	return v;
}

double hist_mean(const struct lat_hist *h)
{
	return h->count ? (double)h->sum_ns / (double)h->count : 0.0;
}

/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Latency histogram: exact below 256 ns, then 128 linear buckets per power
 * of two, so any value is known to within 1/128 (under 1%) without keeping
 * samples.
 */
#ifndef VRIO_BENCH_STATS_H
#define VRIO_BENCH_STATS_H

#include <stdint.h>

#define HIST_SUB_BITS 7
#define HIST_SUB (1u << HIST_SUB_BITS)
#define HIST_LINEAR (2u * HIST_SUB)
#define HIST_BUCKETS (HIST_LINEAR + (64u - HIST_SUB_BITS - 1u) * HIST_SUB)

struct lat_hist {
	uint64_t count;
	uint64_t sum_ns;
	uint64_t min_ns;
	uint64_t max_ns;
	uint64_t buckets[HIST_BUCKETS];
};

void hist_init(struct lat_hist *h);
void hist_add(struct lat_hist *h, uint64_t ns);
unsigned int hist_bucket(uint64_t ns);
/* The middle of a bucket's range. */
uint64_t hist_bucket_value(unsigned int idx);
/* p in [0, 1]; 0 when the histogram is empty. */
uint64_t hist_percentile(const struct lat_hist *h, double p);
double hist_mean(const struct lat_hist *h);

#endif

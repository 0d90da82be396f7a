/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * A token bucket refilled continuously, in nanoseconds: no refill slices,
 * any rate from 1 unit per second up, exact over the long run. Tokens are
 * kept in units x 1e9 (so a unit per second refills one token-nanosecond
 * per nanosecond) in 64 bits; the refill is computed in 128.
 *
 * Two ways to spend: a shaper (throttle) lets a request go once the bucket
 * holds its cost, or, for a request larger than the bucket, once the
 * bucket is full, and charges its whole cost (a big request goes, and is
 * paid for by a debt); a policer (police) lets a frame go only if the
 * bucket holds its whole cost, and never runs a debt.
 */
#ifndef VRIO_IOSERVER_TBUCKET_H
#define VRIO_IOSERVER_TBUCKET_H

#include <stdbool.h>
#include <stdint.h>

struct ios_tbucket {
	uint64_t rate;		/* units per second; 0: no limit */
	int64_t cap;		/* most tokens it holds (x 1e9) */
	int64_t tokens;		/* may go below 0: a debt (x 1e9) */
	uint64_t last_ns;	/* the last refill */
};

/* Full at `now`; the bucket holds rate x burst_ns worth, at least one unit. */
void ios_tb_init(struct ios_tbucket *tb, uint64_t rate, uint64_t burst_ns, uint64_t now);
/* New settings, keeping what it holds (clamped to the new size). */
void ios_tb_set(struct ios_tbucket *tb, uint64_t rate, uint64_t burst_ns, uint64_t now);
void ios_tb_refill(struct ios_tbucket *tb, uint64_t now);
/* Shaper: `units` may go now (after a refill). */
bool ios_tb_ready(const struct ios_tbucket *tb, uint64_t units);
void ios_tb_charge(struct ios_tbucket *tb, uint64_t units);
/* Shaper: nanoseconds until `units` may go. */
uint64_t ios_tb_wait_ns(const struct ios_tbucket *tb, uint64_t units);
/* Policer: takes `units` if it holds them all (after a refill). */
bool ios_tb_take(struct ios_tbucket *tb, uint64_t units, uint64_t now);

#endif

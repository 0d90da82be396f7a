/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * How long an idle polling thread keeps polling before it sleeps.
 *
 * A spin pays only when the next piece of work comes before the spin ends:
 * then it saves a sleep and its wakeup (a few system calls, two context
 * switches, and the wakeup's latency). When work comes much later (a
 * throttled device, a net port with a packet every few milliseconds) the
 * whole spin is burnt and the thread sleeps anyway: with a fixed grace each
 * such request cost local-hv 50 us and the io-server 100 us of CPU.
 *
 * So each thread keeps an exponentially weighted share of the idle gaps
 * that ended in work and were long: more than VRIO_BACKOFF_LONG caps. It
 * spins for its cap (and again after each wakeup) while at most a quarter
 * of recent gaps were long, and not at all past that. The caller gives a
 * gap as far as it saw it: to its last look that found nothing, or to its
 * wakeup; so a spin that lost the core to another process for a slice is
 * not a long gap. A share, not a mean:
 *
 *   - work that comes seldom makes a third of its gaps long or more (at
 *     QD 1 on a throttled device, the io-server sees the wait in the
 *     throttle, the backend's, and the next request's; local-hv the wait
 *     for the answer and for the guest's next request), so the share
 *     stays past a quarter and the thread sleeps at once;
 *   - at full speed on a loaded 2-core machine the gaps are mostly short,
 *     but a mean of them crossed the cap often enough there (QD 32 waits
 *     about a cap between batches) to make local-hv sleep ten times as
 *     often and lose p50; a share turns off only when long gaps are common;
 *   - a gap that was slept through includes the wakeup's latency, and on
 *     a loaded machine that is often more than a cap: counted against two
 *     caps, it kept local-hv asleep at shm QD 32 (several times the
 *     sleeps of the fixed spin, 0.86x the IOPS); against three it did not.
 *
 * The window is all or nothing: a window of a multiple of the mean gap,
 * tried before on this machine, slept far more often at QD 1 and 32 and
 * lost IOPS, as each wakeup there waits for a core.
 *
 * Caller-owned, one thread; no clock of its own (tests inject times).
 */
#ifndef VRIO_COMMON_BACKOFF_H
#define VRIO_COMMON_BACKOFF_H

#include <stdbool.h>
#include <stdint.h>

#define VRIO_BACKOFF_SHIFT	3	/* each new gap weighs 1/8 */
#define VRIO_BACKOFF_LONG	3	/* a gap past this many caps is long */
#define VRIO_BACKOFF_ONE	1024u	/* the share's fixed-point one */
#define VRIO_BACKOFF_SELDOM	(VRIO_BACKOFF_ONE / 4)	/* past this share: no spin */

struct vrio_backoff {
	uint64_t max_ns;	/* the longest spin */
	uint64_t window_ns;	/* how long the next idle period spins */
	unsigned long_share;	/* of recent gaps, the long ones, of VRIO_BACKOFF_ONE */
};

/* Starts with the full window: a thread that just started expects work. */
void vrio_backoff_init(struct vrio_backoff *b, uint64_t max_ns);

/* Work came after an idle gap of gap_ns (spun or slept through). */
void vrio_backoff_work(struct vrio_backoff *b, uint64_t gap_ns);

/* True while an idle period idle_ns long should go on spinning. */
static inline bool vrio_backoff_spin(const struct vrio_backoff *b, uint64_t idle_ns)
{
	return idle_ns < b->window_ns;
}

#endif

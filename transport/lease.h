/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Write leases for fencing (standby failover). A host's io-server may
 * execute that host's writes only while it holds the host's lease; the
 * host moves a device to another io-server only once the lease has surely
 * lapsed. No clocks are compared between the two machines: each side
 * measures durations on its own monotonic clock.
 *
 *   grantor (io-server session)  sends a ping stamped with its own send
 *            time t0 every interval; when the host echoes the stamp, the
 *            lease runs until t0 + L. It checks vrio_lease_valid() with a
 *            fresh clock immediately before handing a write, discard,
 *            write-zeroes or flush to the backend, and never submits
 *            once it lapsed (a server that wakes from a hang finds it
 *            lapsed: its stamps are old).
 *   holder (local-hv upstream)   received that ping at t_r >= t0 (on its
 *            clock, read after the frame was read), so the grantor's lease
 *            ends no later than t_r + L, plus a margin for the two clocks'
 *            rates. It echoes every ping while it trusts the connection
 *            and none after; vrio_lease_hold_until() is then the time
 *            after which the grantor surely executes nothing of ours.
 *
 * The one window left: a grantor that hangs between its check and the
 * system call that submits (or whose kernel holds a submitted write and
 * lands it later) can still write late; closing that needs fencing in the
 * storage itself (SCSI persistent reservations, NVMe reservations).
 *
 * Single owner per side, except `expiry`, which the grantor's owner writes
 * and any reactor reads (atomics, no locks).
 */
#ifndef VRIO_TRANSPORT_LEASE_H
#define VRIO_TRANSPORT_LEASE_H

#include <stdbool.h>
#include <stdint.h>

/* The longest lease a holder believes (a peer's lease_ms is checked). */
#define VRIO_LEASE_MAX_MS	600000u

enum vrio_lease_state {
	VRIO_LEASE_NONE,	/* the peer does not take part: not fenced */
	VRIO_LEASE_PENDING,	/* it does, and has not echoed yet: no writes */
	VRIO_LEASE_HELD,
	VRIO_LEASE_LAPSED,
};

struct vrio_lease_grant {
	uint64_t lease_ns, interval_ns;
	uint64_t last_ping;	/* when the last stamp went out */
	uint64_t last_stamp;	/* the newest stamp sent (0: none yet) */
	uint64_t expiry;	/* atomic: writes only before it; 0: never granted */
	bool required;		/* atomic: the peer takes part (vrio_lease_require) */
};

/* L = lease_ms, a ping each interval_ms (interval_ms < lease_ms / 2). */
void vrio_lease_grant_init(struct vrio_lease_grant *g, unsigned lease_ms, unsigned interval_ms);
/* The peer said it echoes (its Hello): from now on no write without a
 * lease. Without this call a grantor that was never echoed allows writes
 * (an older peer). */
void vrio_lease_require(struct vrio_lease_grant *g);
/* A stamp to send now (the caller's clock, which it reads for this), or 0
 * when no ping is due. The first call always gives one. */
uint64_t vrio_lease_ping(struct vrio_lease_grant *g, uint64_t now);
/* The peer echoed `stamp` (received at `now`): the lease runs until
 * stamp + L unless it already runs longer. -EINVAL for a stamp never
 * sent (the peer is garbage). */
int vrio_lease_echo(struct vrio_lease_grant *g, uint64_t stamp, uint64_t now);
/* May a write be submitted at `now` (a clock read just now)? True while the
 * peer does not take part (no vrio_lease_require). */
bool vrio_lease_valid(const struct vrio_lease_grant *g, uint64_t now);
enum vrio_lease_state vrio_lease_state(const struct vrio_lease_grant *g, uint64_t now);
/* Milliseconds until the next ping is due (0: now). */
int vrio_lease_ping_timeout_ms(const struct vrio_lease_grant *g, uint64_t now);
const char *vrio_lease_state_name(enum vrio_lease_state s);

struct vrio_lease_hold {
	uint64_t until;		/* 0: the grantor never held a lease from us */
};

/* Clock rates differ a little: the holder waits this much more than L. */
uint64_t vrio_lease_margin_ns(uint64_t lease_ns);
/* A ping granting lease_ms, read from the connection at `now` (a clock read
 * after the read). -EINVAL for a lease_ms out of range. */
int vrio_lease_hold_ping(struct vrio_lease_hold *h, unsigned lease_ms, uint64_t now);
/* The grantor executes nothing of ours after this (0: never granted). */
static inline uint64_t vrio_lease_hold_until(const struct vrio_lease_hold *h)
{
	return h->until;
}

#endif

/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Liveness of one connection, kept by its owner (local-hv's upstream, the
 * io-server's session): two timers over the frames the connection's top
 * layer counts (its stats.frames_rx and frames_tx), so that any frame,
 * whatever its type, is a sign of life, and nothing on the data path pays
 * for them.
 *
 *   send   the owner has sent nothing for `interval`: it sends a Heartbeat
 *          (a CTRL frame) so that the peer hears from it.
 *   dead   nothing arrived for `dead_after`: the owner closes the
 *          connection as dead, with one line naming the peer.
 *
 * The owner calls vrio_hb_check() once per turn, after polling the
 * connection, with the turn's clock, and caps its sleep with
 * vrio_hb_timeout_ms(): a timer, never a reason to spin. Single owner
 * thread, no locks.
 */
#ifndef VRIO_TRANSPORT_HEARTBEAT_H
#define VRIO_TRANSPORT_HEARTBEAT_H

#include <stdbool.h>
#include <stdint.h>

struct vrio_conn;

struct vrio_hb {
	uint64_t interval_ns, dead_ns;
	uint64_t last_rx, last_tx;	/* when a frame last went each way */
	uint64_t seen_rx, seen_tx;	/* the connection's counters then */
	uint64_t last_check;		/* the owner's last vrio_hb_check() */
};

enum vrio_hb_verdict {
	VRIO_HB_OK,	/* nothing to do */
	VRIO_HB_SEND,	/* send a heartbeat now (counted as sent) */
	VRIO_HB_DEAD,	/* nothing received for dead_after: close it */
};

/* interval_ms and dead_after_ms from the topology (already checked). */
void vrio_hb_init(struct vrio_hb *h, unsigned interval_ms, unsigned dead_after_ms);
/* A new connection: both timers start at now. */
void vrio_hb_start(struct vrio_hb *h, const struct vrio_conn *c, uint64_t now);
/* After a poll: what the owner must do. SEND restarts the send timer
 * whether or not the owner's send succeeds (a full queue is retried one
 * interval later, not in a loop). An owner that did not check for more
 * than half of dead_after (its thread was not scheduled, or was held by
 * a reload) restarts the receive timer: its own gap is not the peer's
 * silence. */
enum vrio_hb_verdict vrio_hb_check(struct vrio_hb *h, const struct vrio_conn *c, uint64_t now);
/* An owner that has stopped reading (a drain) keeps the send timer only:
 * the peer must go on hearing from it, and the peer's silence, unread,
 * means nothing. True when a heartbeat is due (the timer restarts), and
 * the milliseconds until it is. */
bool vrio_hb_send_due(struct vrio_hb *h, const struct vrio_conn *c, uint64_t now);
int vrio_hb_send_timeout_ms(const struct vrio_hb *h, uint64_t now);
/* Milliseconds until vrio_hb_check() has something to do (0: now). */
int vrio_hb_timeout_ms(const struct vrio_hb *h, uint64_t now);
/* How long nothing has arrived, in ms, for the log line. */
uint64_t vrio_hb_silent_ms(const struct vrio_hb *h, uint64_t now);

#endif

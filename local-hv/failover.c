/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Standby failover, on the poller. A device whose topology entry names a
 * standby io-server (on the same storage) has two candidates, cand[0] the
 * primary and cand[1] the standby, and is linked to one of them at a time.
 * It moves:
 *
 *   on failure  the serving io-server is dead (heartbeats) or lost
 *               (closed, refused), the device is not attached there, the
 *               other one answers, and the serving one's lease on us has
 *               surely lapsed (lease.h: the last ping we echoed + L +
 *               margin): from then on it can write nothing of ours late,
 *               so what was in flight there is sent again to the other
 *               (upstream.c does that on the AttachReply). Failing back
 *               when the standby dies is the same rule the other way.
 *   on request  `vrioctl move DEVICE IO_SERVER`: the device takes no new
 *               chain from the guest; once nothing is in flight (each
 *               request answered, so none is left at the old io-server)
 *               and the leases of closed connections have lapsed, it
 *               moves.
 *
 * A move is a Detach from the old io-server (when attached there) and an
 * Attach at the new one; the guest only sees the requests wait.
 */
#include <errno.h>
#include <string.h>
#include <time.h>

#include "localhv.h"
#include "log.h"

static unsigned cand_of(const struct lhv_dev *d, const struct lhv_upstream *up)
{
	return d->cand[1] == up ? 1 : 0;
}

static bool answers(const struct lhv_upstream *up)
{
	return up->conn && __atomic_load_n(&up->state, __ATOMIC_RELAXED) == LHV_UP_READY &&
	       __atomic_load_n(&up->peer, __ATOMIC_RELAXED) == LHV_PEER_UP;
}

static bool failed(const struct lhv_upstream *up)
{
	int p = __atomic_load_n(&up->peer, __ATOMIC_RELAXED);

	return p == LHV_PEER_DEAD || p == LHV_PEER_LOST;
}

static void dev_move(struct lhv_dev *d, unsigned to, const char *why, uint64_t now)
{
	struct lhv_upstream *from = d->up, *up = d->cand[to];

	lhv_up_unlink(from, d);
	__atomic_store_n(&d->up, up, __ATOMIC_RELEASE);
	lhv_up_link(up, d);
	vrio_counter_add(to == 1 ? &d->failovers : &d->failbacks, 1);
	VRIO_NOTICE("%s: moved from io-server %s to %s (%s); %u request(s) in flight go there, "
		    "%llu ms after the move became due", d->name, from->name, up->name, why,
		    d->inflight, (unsigned long long)(d->move_ns && now > d->move_ns ?
						      (now - d->move_ns) / 1000000 : 0));
	d->move_ns = 0;
}

/* The serving io-server failed: may the device go to the other one now? */
static bool failover_due(struct lhv_dev *d, unsigned other, uint64_t now, uint64_t *until)
{
	struct lhv_upstream *cur = d->up;

	if (!failed(cur) || __atomic_load_n(&d->att_state, __ATOMIC_RELAXED) == LHV_ATT_DONE ||
	    !answers(d->cand[other]))
		return false;
	*until = vrio_lease_hold_until(&cur->lease);
	if (!d->move_ns)
		d->move_ns = now;
	return now >= *until;
}

/* The operator's move: -EAGAIN while it waits for the device to drain. */
static int operator_move(struct lhv_dev *d, unsigned to, uint64_t now)
{
	if (d->up == d->cand[to])
		return 0;
	if (!answers(d->cand[to])) {
		VRIO_WARN("%s: cannot move to io-server %s: it does not answer", d->name,
			  d->cand[to]->name);
		return -EHOSTUNREACH;
	}
	if (!d->move_ns)
		d->move_ns = now;
	if (d->inflight || now < d->up->lease_prev_until)
		return -EAGAIN;
	dev_move(d, to, "asked by the operator", now);
	return 0;
}

int lhv_failover_poll(struct lhv *l, uint64_t now)
{
	unsigned i = 0, cur;
	struct lhv_dev *d;
	uint64_t until;
	int moves = 0, to, rc;

	while ((d = lhv_dev_next(l, &i))) {
		if (!d->cand[1] || !d->linked)
			continue;
		cur = cand_of(d, d->up);
		to = __atomic_load_n(&d->move_to, __ATOMIC_ACQUIRE);
		if (to >= 0) {
			rc = operator_move(d, (unsigned)to, now);
			if (rc == -EAGAIN)
				continue;
			moves += rc == 0;
			__atomic_store_n(&d->move_to, -1, __ATOMIC_RELEASE);
			__atomic_store_n(&d->move_rc, rc, __ATOMIC_RELEASE);
			continue;
		}
		if (failover_due(d, 1 - cur, now, &until)) {
			dev_move(d, 1 - cur, __atomic_load_n(&d->up->peer, __ATOMIC_RELAXED) ==
				 LHV_PEER_DEAD ? "its io-server is hung, and its lease lapsed" :
				 "its io-server is unreachable, and its lease lapsed", now);
			moves++;
		}
	}
	return moves;
}

int lhv_failover_timeout_ms(struct lhv *l, uint64_t now)
{
	unsigned i = 0;
	struct lhv_dev *d;
	uint64_t until, best = 0;

	while ((d = lhv_dev_next(l, &i))) {
		if (!d->cand[1] || !d->linked || !failed(d->up) ||
		    !answers(d->cand[1 - cand_of(d, d->up)]))
			continue;
		until = vrio_lease_hold_until(&d->up->lease);
		if (until > now && (!best || until < best))
			best = until;
	}
	if (!best)
		return -1;
	return (int)((best - now + 999999) / 1000000);
}

int lhv_failover_move(struct lhv *l, struct lhv_dev *d, const char *to, uint64_t timeout_ns)
{
	const struct timespec tick = { 0, 5 * 1000 * 1000 };
	uint64_t t0 = vrio_now_ns();
	int idx = -1, rc, want;

	for (int k = 0; k < 2; k++)
		if (d->cand[k] && strcmp(d->cand[k]->name, to) == 0)
			idx = k;
	if (idx < 0 || !d->cand[1])
		return -EINVAL;
	__atomic_store_n(&d->move_rc, 1, __ATOMIC_RELEASE);
	__atomic_store_n(&d->move_to, idx, __ATOMIC_RELEASE);
	lhv_poller_wake(l);
	for (;;) {
		rc = __atomic_load_n(&d->move_rc, __ATOMIC_ACQUIRE);
		if (rc < 0)
			return rc;
		/* Done once attached there: the guest's requests flow again. */
		if (rc == 0 && lhv_dev_up(d) == d->cand[idx] &&
		    __atomic_load_n(&d->att_state, __ATOMIC_ACQUIRE) == LHV_ATT_DONE)
			return 0;
		if (vrio_now_ns() - t0 > timeout_ns)
			break;
		nanosleep(&tick, NULL);
	}
	want = idx;
	/* Still waiting for the drain: withdraw the request. */
	__atomic_compare_exchange_n(&d->move_to, &want, -1, false, __ATOMIC_ACQ_REL,
				    __ATOMIC_ACQUIRE);
	return -ETIMEDOUT;
}

/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The inflight region (VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD) of the
 * request/response kind: a shared memory the frontend keeps across our
 * restarts, where rte_vhost records, per queue, which heads we took from
 * the avail ring and have not yet returned. A local-hv that was killed
 * leaves it behind; the next one learns from it exactly which requests were
 * in flight, whatever order their completions came in, and sends them
 * again. Without it a VMM can only restart the ring from the guest's used
 * index, which loses or repeats requests when completions were out of order.
 *
 * The protocol, as rte_vhost's external-backend calls define it:
 *   take      desc[head].inflight = 1 (with a counter giving the order),
 *             before the request leaves;
 *   complete  last_inflight_io = head, then the used entry and used->idx,
 *             then desc[head].inflight = 0 and the region's used_idx; a
 *             crash between the two stores is undone at the next
 *             SET_VRING_KICK, which also counts the heads still set, moves
 *             last_avail past them and lists them (the resubmit list).
 *
 * The region is rte_vhost's while the control thread handles a message;
 * GET/SET_INFLIGHT_FD take the device back from the poller first
 * (vumsg.c), so the poller's calls here never race a remap.
 */
#include <stdio.h>

#include <rte_vhost.h>

#include "localhv.h"
#include "log.h"

/*
 * Control thread, at start: whether the frontend gave a region for queue
 * qi, and the heads a previous backend left in flight, marked busy and
 * unsent for the poller (lhv_vq_process sends them before new work; they
 * count as in flight once sent). The
 * resubmit list lives as long as rte_vhost's queue, past later starts of
 * the same connection: a head is taken from it only while the region still
 * says it is in flight, so a request answered since is never sent again.
 */
unsigned lhv_inflight_start(struct lhv_dev *d, int vid, unsigned qi)
{
	struct lhv_vq *q = &d->vq[qi];
	struct rte_vhost_ring_inflight ri;
	struct rte_vhost_resubmit_info *rs;
	struct rte_vhost_inflight_info_split *is;
	unsigned i, n = 0;
	char *heads = q->resub_heads;
	size_t used = 0;
	uint16_t head;
	int w;

	q->track = false;
	q->resub_n = 0;
	heads[0] = '\0';
	/* No region: the frontend does not keep one (it need not, even with
	 * the protocol feature), or this is a packed ring (refused at start). */
	if (rte_vhost_get_vhost_ring_inflight(vid, (uint16_t)qi, &ri) != 0 || !ri.inflight_split)
		return 0;
	is = ri.inflight_split;
	if (is->desc_num < q->size) {
		VRIO_WARN("%s: queue %u: the inflight region covers %u of %u heads; not used",
			  d->name, qi, is->desc_num, q->size);
		return 0;
	}
	q->track = true;
	rs = ri.resubmit_inflight;
	if (!rs || !rs->resubmit_list)
		return 0;
	/* The list runs newest first: send the oldest first. */
	for (i = rs->resubmit_num; i-- > 0;) {
		head = rs->resubmit_list[i].index;
		if (head >= q->size || !is->desc[head].inflight || q->slots[head].busy)
			continue;
		q->slots[head].busy = true;
		q->slots[head].unsent = true;
		q->unsent++;
		n++;
		/* The heads, for the operator and the tests: as many as fit. */
		w = snprintf(heads + used, sizeof(q->resub_heads) - used, " %u", head);
		if (w > 0 && (size_t)w < sizeof(q->resub_heads) - used) {
			used += (size_t)w;
		} else {
			snprintf(heads + used, sizeof(q->resub_heads) - used, " ...");
			used = sizeof(q->resub_heads) - 1;	/* full: no more */
		}
	}
	/* Logged once they are sent (lhv_inflight_sent): a device started
	 * several times before it runs marks them each time. */
	q->resub_n = n;
	return n;
}

/* Poller: the last of the requests lhv_inflight_start marked was sent. */
void lhv_inflight_sent(struct lhv_dev *d, unsigned qi)
{
	struct lhv_vq *q = &d->vq[qi];

	VRIO_NOTICE("%s: queue %u: sent again the %u request(s) the last backend left in flight (inflight region), heads%s",
		    d->name, qi, q->resub_n, q->resub_heads);
}

/* Poller: head leaves for the io-server. */
void lhv_inflight_take(struct lhv_dev *d, unsigned qi, uint16_t head)
{
	if (d->vq[qi].track)
		rte_vhost_set_inflight_desc_split(d->vid, (uint16_t)qi, head);
}

/* Poller: head's used entry is about to be published... */
void lhv_inflight_completing(struct lhv_dev *d, unsigned qi, uint16_t head)
{
	if (d->vq[qi].track)
		rte_vhost_set_last_inflight_io_split(d->vid, (uint16_t)qi, head);
}

/* ... and was: used->idx is q->used_idx. */
void lhv_inflight_completed(struct lhv_dev *d, unsigned qi, uint16_t head)
{
	struct lhv_vq *q = &d->vq[qi];

	if (q->track)
		rte_vhost_clr_inflight_desc_split(d->vid, (uint16_t)qi, q->used_idx, head);
}

/* Poller: head did not leave after all (the send failed): not in flight.
 * The same store as a completion's: the region's used_idx it also writes
 * is q->used_idx, unchanged, since no used entry was published. */
void lhv_inflight_untake(struct lhv_dev *d, unsigned qi, uint16_t head)
{
	lhv_inflight_completed(d, qi, head);
}

/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The request/response queue path: take chains from a split virtqueue, send
 * each upstream as one REQ frame, and on its RESP scatter the bytes into the
 * chain's writable buffers and publish the used entry. local-hv knows nothing
 * of what the bytes mean.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>

#include "localhv.h"
#include "log.h"

void lhv_dev_break(struct lhv_dev *d, int reason, const char *fmt, ...)
{
	char msg[160];
	va_list ap;

	if (d->broken)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	d->broken = true;
	if (reason > 0 && reason < LHV_WALK_NR_ERRORS)
		vrio_counter_add(&d->st.chain_errors[reason], 1);
	/* Once per device start: the device stops here until the guest resets it. */
	VRIO_ERR("%s: guest error: %s; device stopped until reset", d->name, msg);
}

static struct lhv_walk_opts walk_opts(const struct lhv_dev *d, const struct lhv_vq *q)
{
	return (struct lhv_walk_opts){
		.desc = q->desc,
		.qsize = q->size,
		.indirect = d->indirect,
		.max_bytes = d->max_request,
		.mem = &d->mem,
	};
}

/* Keeps the chain's writable segments in its slot (lhv_slot). */
static void keep_segments(const struct lhv_dev *d, struct lhv_slot *s, const struct lhv_chain *c)
{
	s->cached = !d->iommu.on && c->nw <= LHV_SLOT_SEGS && c->wlen == s->wcap;
	if (!s->cached)
		return;
	s->nw = (uint8_t)c->nw;
	memcpy(s->w, &c->seg[c->nr], c->nw * sizeof(s->w[0]));
}

static int send_chain(struct lhv *l, struct lhv_dev *d, unsigned qi, uint16_t head,
		      const struct lhv_chain *c)
{
	struct vrio_frame f = {
		.type = VRIO_FRAME_REQ,
		.queue = (uint16_t)qi,
		.dev = d->dev_id,
		.id = lhv_frame_id(d, head),
		.len = c->rlen,
		.arg = c->wlen,
	};

	return lhv_up_send(d->up, &f, c->seg, (int)c->nr);
}

/* Sends the chain at head, walked again, and counts it in flight. 0,
 * -ENOBUFS (not sent: try again), -EBADMSG (the device broke) or -errno. */
static int send_again(struct lhv *l, struct lhv_dev *d, unsigned qi, uint16_t head)
{
	struct lhv_vq *q = &d->vq[qi];
	struct lhv_walk_opts o = walk_opts(d, q);
	struct lhv_chain *c = &l->chain;
	struct lhv_slot *s = &q->slots[head];
	int rc;

	rc = lhv_walk_chain(&o, head, c);
	if (rc != LHV_WALK_OK) {
		lhv_dev_break(d, rc, "queue %u head %u changed in flight: %s", qi, head,
			      lhv_walk_strerror(rc));
		return -EBADMSG;
	}
	rc = send_chain(l, d, qi, head, c);
	if (rc < 0)
		return rc;
	if (s->unsent) {
		/* A previous backend's request (inflight.c): ours from now. */
		s->unsent = false;
		s->wcap = c->wlen;
		s->lo = c->lo;
		s->hi = c->hi;
		s->t0 = vrio_now_ns();
		q->unsent--;
		q->inflight++;
		d->inflight++;
		vrio_counter_add(&d->st.resubmitted, 1);
		if (!q->unsent)
			lhv_inflight_sent(d, qi);
	}
	keep_segments(d, s, c);
	return 0;
}

/* The requests a previous backend left in flight, before any new one. */
static int send_unsent(struct lhv *l, struct lhv_dev *d, unsigned qi)
{
	struct lhv_vq *q = &d->vq[qi];
	unsigned head;
	int n = 0;

	for (head = 0; q->unsent && head < q->size; head++) {
		if (!q->slots[head].unsent)
			continue;
		if (send_again(l, d, qi, (uint16_t)head) < 0)
			break;
		n++;
	}
	return n;
}

static int lhv_vq_process(struct lhv *l, struct lhv_dev *d, unsigned qi, unsigned budget)
{
	struct lhv_vq *q = &d->vq[qi];
	struct lhv_walk_opts o = walk_opts(d, q);
	struct lhv_chain *c = &l->chain;
	uint16_t avail_idx, head, n, taken[LHV_BUDGET];
	struct lhv_slot *s;
	int done = 0, ntaken = 0, rc, i;
	uint64_t seen, t0;

	if (q->unsent) {
		done = send_unsent(l, d, qi);
		if (q->unsent || d->broken)
			return done;
	}
	avail_idx = __atomic_load_n(&q->avail->idx, __ATOMIC_ACQUIRE);
	n = (uint16_t)(avail_idx - q->last_avail);
	if (n > q->size) {
		lhv_dev_break(d, 0, "queue %u: avail index moved by %u, queue size %u", qi, n,
			      q->size);
		return 0;
	}
	if (!n)
		return 0;
	if (budget > LHV_BUDGET)
		budget = LHV_BUDGET;
	seen = vrio_now_ns();
	while (n-- && done < (int)budget) {
		head = __atomic_load_n(&q->avail->ring[q->last_avail & (q->size - 1)],
				       __ATOMIC_RELAXED);
		rc = lhv_walk_chain(&o, head, c);
		/* Behind a vIOMMU a chain may have to wait: for the VMM to
		 * answer a miss, or for an invalidation of what it touches. */
		if (d->iommu.on && !lhv_iommu_admit(d, rc, c->lo, c->hi, seen)) {
			/* The VMM's answer wakes the poller; until then this
			 * chain is no reason to stay awake. */
			q->iommu_wait = true;
			break;
		}
		q->iommu_wait = false;
		if (rc != LHV_WALK_OK) {
			lhv_dev_break(d, rc, "queue %u head %u: %s", qi, head, lhv_walk_strerror(rc));
			break;
		}
		s = &q->slots[head];
		if (s->busy) {
			lhv_dev_break(d, 0, "queue %u: head %u posted while in flight", qi, head);
			break;
		}
		/* In the inflight region before it leaves: a local-hv killed
		 * after the send sends it again, never loses it. */
		lhv_inflight_take(d, qi, head);
		rc = send_chain(l, d, qi, head, c);
		if (rc < 0)
			lhv_inflight_untake(d, qi, head);
		if (rc == -ENOBUFS)
			break;	/* not consumed: taken again next round */
		if (rc < 0)
			break;	/* the upstream's poll notices the dead connection */
		s->busy = true;
		s->wcap = c->wlen;
		s->lo = c->lo;
		s->hi = c->hi;
		keep_segments(d, s, c);
		q->last_avail++;
		q->inflight++;
		d->inflight++;
		vrio_counter_add(&d->st.bytes_out, c->rlen);
		taken[ntaken++] = head;
		done++;
	}
	if (!ntaken)
		return done;
	/* One clock read for the batch, not one per request: each left
	 * when the last of them was queued, as far as the hops tell. The
	 * requests sent again above (send_unsent) have their own. */
	t0 = vrio_now_ns();
	for (i = 0; i < ntaken; i++)
		q->slots[taken[i]].t0 = t0;
	vrio_hist_add_n(&d->st.hop[LHV_HOP_SUBMIT], t0 - seen, (uint64_t)ntaken);
	vrio_counter_add(&d->st.requests, (uint64_t)ntaken);
	return done;
}

static void scatter(const struct iovec *seg, unsigned nseg, const uint8_t *p, uint32_t len)
{
	unsigned i;
	size_t n;

	for (i = 0; len && i < nseg; i++) {
		n = seg[i].iov_len < len ? seg[i].iov_len : len;
		memcpy(seg[i].iov_base, p, n);
		p += n;
		len -= (uint32_t)n;
	}
}

static int lhv_vq_complete(struct lhv *l, struct lhv_dev *d, const struct vrio_frame *f,
			   const void *payload)
{
	uint16_t head = (uint16_t)(f->id & 0xffff);
	struct lhv_chain *c = &l->chain;
	struct lhv_walk_opts o;
	struct vring_used_elem *e;
	struct lhv_slot *s;
	struct lhv_vq *q;
	int state, rc;

	state = __atomic_load_n(&d->state, __ATOMIC_ACQUIRE);
	if ((state != LHV_DEV_RUNNING && state != LHV_DEV_STOP) || (f->id >> 16) != d->epoch) {
		/* A response for a frontend that is gone: drop it, touch nothing. */
		vrio_counter_add(&d->st.dropped_responses, 1);
		return 0;
	}
	if (f->queue >= d->nvq || !d->vq[f->queue].active)
		return -EBADMSG;
	q = &d->vq[f->queue];
	if (head >= q->size || !q->slots[head].busy || q->slots[head].unsent)
		return -EBADMSG;
	s = &q->slots[head];
	if (f->len > s->wcap)
		return -EBADMSG;

	s->busy = false;
	q->inflight--;
	d->inflight--;
	vrio_counter_add(&d->st.responses, 1);
	/* Received at the poll's clock (no read per response); a request
	 * sent again during this very poll may look older than it. */
	vrio_hist_add(&d->st.latency, l->round_ns > s->t0 ? l->round_ns - s->t0 : 0);
	if (d->broken) {
		vrio_counter_add(&d->st.dropped_responses, 1);
		return 0;
	}
	if (s->cached) {
		/* The buffers the chain had when it was taken, as a device
		 * that reads each descriptor once writes them; f->len is
		 * within them (wcap). */
		scatter(s->w, s->nw, payload, f->len);
	} else {
		/* Behind a vIOMMU the translation may have changed: walk the
		 * chain again, checking again. */
		o = walk_opts(d, q);
		rc = lhv_walk_chain(&o, head, c);
		if (rc != LHV_WALK_OK) {
			lhv_dev_break(d, rc, "queue %u head %u changed in flight: %s", f->queue,
				      head, lhv_walk_strerror(rc));
			return 0;
		}
		if (c->wlen < f->len) {
			lhv_dev_break(d, 0, "queue %u head %u shrank in flight", f->queue, head);
			return 0;
		}
		scatter(&c->seg[c->nr], c->nw, payload, f->len);
	}
	vrio_counter_add(&d->st.bytes_in, f->len);

	lhv_inflight_completing(d, f->queue, head);
	e = &q->used->ring[q->used_idx & (q->size - 1)];
	e->id = head;
	e->len = f->len;
	q->used_idx++;
	if (q->track) {
		/* The inflight region's order, entry by entry (inflight.c). */
		__atomic_store_n(&q->used->idx, q->used_idx, __ATOMIC_RELEASE);
		lhv_inflight_completed(d, f->queue, head);
	} else {
		/* used->idx once for the poll's batch (lhv_vq_frames_done):
		 * the line the guest polls moves once, not per entry. */
		q->used_dirty = true;
	}
	lhv_completed(l, d);
	return 0;
}

/* The upstream poll ended: publish the used entries it wrote. */
static void lhv_vq_frames_done(struct lhv_dev *d)
{
	struct lhv_vq *q;
	unsigned qi;

	for (qi = 0; qi < d->nvq; qi++) {
		q = &d->vq[qi];
		if (!q->used_dirty)
			continue;
		q->used_dirty = false;
		__atomic_store_n(&q->used->idx, q->used_idx, __ATOMIC_RELEASE);
	}
}

static bool lhv_vq_notify(struct lhv_dev *d, struct lhv_vq *q, uint64_t now)
{
	struct lhv_notify_guest g = { .event_idx = d->event_idx };
	enum lhv_notify_act act;

	if (q->note.signalled_valid && q->note.signalled_used == q->used_idx)
		return false;
	/* Our used->idx store must be visible before we read the driver's
	 * suppression state, or both sides may decide not to act. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (d->event_idx)
		g.used_event = __atomic_load_n(&q->avail->ring[q->size], __ATOMIC_RELAXED);
	else
		g.no_interrupt = __atomic_load_n(&q->avail->flags, __ATOMIC_RELAXED) &
				 VRING_AVAIL_F_NO_INTERRUPT;
	act = lhv_notify_decide(&q->note, q->used_idx, &g, q->inflight, d->coalesce_ns, now);
	if (act == LHV_NOTIFY_SEND && q->callfd >= 0) {
		eventfd_write(q->callfd, 1);
		vrio_counter_add(&d->st.irqs, 1);
	}
	return act == LHV_NOTIFY_HOLD;
}

static bool lhv_vq_kicks(struct lhv_dev *d, struct lhv_vq *q, bool enable)
{
	uint16_t *avail_event = (uint16_t *)&q->used->ring[q->size];

	if (d->event_idx) {
		/* Suppressing with event-idx is leaving avail_event behind. */
		if (!enable)
			return false;
		__atomic_store_n(avail_event, q->last_avail, __ATOMIC_RELAXED);
	} else {
		__atomic_store_n(&q->used->flags, enable ? 0 : VRING_USED_F_NO_NOTIFY,
				 __ATOMIC_RELAXED);
		if (!enable)
			return false;
	}
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	return !q->iommu_wait && __atomic_load_n(&q->avail->idx, __ATOMIC_ACQUIRE) != q->last_avail;
}

/* The connection is back: every request in flight goes again, those a
 * previous backend left (unsent) with them. */
static int lhv_vq_resend(struct lhv *l, struct lhv_dev *d)
{
	struct lhv_vq *q;
	unsigned qi, head;
	int rc, n = 0;

	for (qi = 0; qi < d->nvq; qi++) {
		q = &d->vq[qi];
		if (!q->active)
			continue;
		for (head = 0; (q->inflight || q->unsent) && head < q->size; head++) {
			if (!q->slots[head].busy)
				continue;
			rc = send_again(l, d, qi, (uint16_t)head);
			if (rc == -EBADMSG)
				return n;
			if (rc < 0)
				return rc;
			n++;
		}
	}
	return n;
}

const struct lhv_dev_ops lhv_rr_ops = {
	.name = "request/response",
	.frame_type = VRIO_FRAME_RESP,
	.own_rings = true,
	.start = lhv_rr_start,
	.release = lhv_rr_release,
	.process = lhv_vq_process,
	.frame = lhv_vq_complete,
	.frames_done = lhv_vq_frames_done,
	.notify = lhv_vq_notify,
	.kicks = lhv_vq_kicks,
	.resend = lhv_vq_resend,
};

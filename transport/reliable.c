/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The reliable layer: turns a connection that may drop, duplicate or
 * reorder frames into one that delivers each frame once and in order.
 * Every frame travels as the payload of an RDATA frame with a sequence
 * number; acknowledgements are cumulative, carried by every RDATA and by
 * RACK frames. The sender keeps what is unacknowledged in a byte ring and,
 * on a timeout or three duplicate acknowledgements, goes back to the oldest
 * unacknowledged frame and sends from there. The receiver takes frames only
 * in order; anything else is discarded and answered with its cumulative
 * acknowledgement. A window (frames and bytes) bounds what is in flight;
 * send() reports a full window as -ENOBUFS, counted as a window stall.
 *
 * A connection starts at sequence 0 on both sides: it is stacked on a fresh
 * backend connection, so nothing from an earlier one can arrive here.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "metrics.h"
#include "transport_internal.h"

#define REL_WINDOW	512u			/* frames in flight, a power of two */
#define REL_RING	(32u << 20)		/* bytes kept for retransmission */
#define REL_RTO_INIT_NS	(20ull * 1000 * 1000)
#define REL_RTO_MIN_NS	(1ull * 1000 * 1000)
#define REL_RTO_MAX_NS	(200ull * 1000 * 1000)
#define REL_DUPACKS	3
#define REL_MAX_INNER	(VRIO_FRAME_MAX_PAYLOAD - VRIO_FRAME_HDR_LEN)

_Static_assert((REL_WINDOW & (REL_WINDOW - 1)) == 0, "window is a power of two");
_Static_assert(REL_RING >= 2 * (VRIO_FRAME_HDR_LEN + VRIO_FRAME_MAX_PAYLOAD), "ring holds frames");

struct rel_tx {
	uint64_t pos;		/* where the encoded frame starts in the ring */
	uint32_t len;
	uint64_t sent_ns;
	bool resent;		/* no round-trip sample from it (Karn) */
};

struct rel_rx {
	bool full;
	uint32_t len, cap;
	uint8_t *buf;		/* the whole RDATA payload: inner header + data */
};

struct rel_conn {
	struct vrio_conn base;		/* base.inner: the connection below */

	/* Sending: [una, sent) on the wire, [sent, nxt) queued. */
	uint32_t una, sent, nxt;
	struct rel_tx tx[REL_WINDOW];
	uint8_t *ring;
	uint64_t head, tail;	/* ring positions, monotonic */
	uint64_t rto_ns, srtt_ns, rttvar_ns, rto_at;
	unsigned dupacks;
	bool recovering;
	uint32_t recover;	/* `sent` when the loss was seen */

	/* Receiving. */
	uint32_t rcv_nxt;
	bool ack_owed;
	unsigned dupacks_owed;	/* a pure ack for each frame out of order */
	struct rel_rx rx[REL_WINDOW];	/* frames ahead of rcv_nxt */

	/* The owner's callback during poll(). */
	vrio_recv_cb cb;
	void *arg;
	unsigned delivered;
};

static const struct vrio_transport_ops rel_ops;

static struct rel_conn *to_rel(struct vrio_conn *c)
{
	return container_of(c, struct rel_conn, base);
}

static bool seq_before(uint32_t a, uint32_t b)
{
	return (int32_t)(a - b) < 0;
}

static int rel_send(struct vrio_conn *c, const struct vrio_frame *f, const struct iovec *iov,
		    int iovcnt)
{
	struct rel_conn *r = to_rel(c);
	uint32_t len = VRIO_FRAME_HDR_LEN + f->len;
	uint64_t pos = r->tail, room;
	struct rel_tx *t;
	uint8_t *p;
	int i;

	if (f->len > REL_MAX_INNER || f->type == VRIO_FRAME_RDATA || f->type == VRIO_FRAME_RACK)
		return -EINVAL;
	/* A frame never wraps in the ring: skip to the start if needed. */
	room = REL_RING - pos % REL_RING;
	if (room < len)
		pos += room;
	if (r->nxt - r->una >= REL_WINDOW || pos + len - r->head > REL_RING) {
		vrio_counter_add(&c->stats.window_stalls, 1);
		return -ENOBUFS;
	}
	p = r->ring + pos % REL_RING;
	vrio_frame_encode(f, p);
	p += VRIO_FRAME_HDR_LEN;
	for (i = 0; i < iovcnt; i++) {
		memcpy(p, iov[i].iov_base, iov[i].iov_len);
		p += iov[i].iov_len;
	}
	t = &r->tx[r->nxt & (REL_WINDOW - 1)];
	t->pos = pos;
	t->len = len;
	t->sent_ns = 0;
	t->resent = false;
	r->tail = pos + len;
	r->nxt++;
	c->stats.frames_tx++;
	c->stats.bytes_tx += len;
	return 0;
}

/* Put queued frames on the wire, oldest first, as far as the layer below
 * takes them. */
static int transmit(struct rel_conn *r, uint64_t now)
{
	struct vrio_frame f = { .type = VRIO_FRAME_RDATA };
	struct iovec iov;
	struct rel_tx *t;
	int rc;

	while (r->sent != r->nxt) {
		t = &r->tx[r->sent & (REL_WINDOW - 1)];
		f.id = r->sent;
		f.arg = r->rcv_nxt;
		f.len = t->len;
		iov.iov_base = r->ring + t->pos % REL_RING;
		iov.iov_len = t->len;
		rc = r->base.inner->ops->send(r->base.inner, &f, &iov, 1);
		if (rc == -ENOBUFS)
			return 0;
		if (rc < 0)
			return rc;
		if (t->sent_ns)
			t->resent = true;
		t->sent_ns = now;
		if (r->sent == r->una)
			r->rto_at = now + r->rto_ns;
		r->sent++;
		r->ack_owed = false;
	}
	return 0;
}

/* Send the oldest unacknowledged frame again. */
static int resend_una(struct rel_conn *r, uint64_t now)
{
	struct rel_tx *t = &r->tx[r->una & (REL_WINDOW - 1)];
	struct vrio_frame f = { .type = VRIO_FRAME_RDATA, .id = r->una, .arg = r->rcv_nxt,
				.len = t->len };
	struct iovec iov = { r->ring + t->pos % REL_RING, t->len };
	int rc;

	if (!r->recovering) {
		r->recovering = true;
		r->recover = r->sent;
	}
	r->dupacks = 0;
	r->rto_at = now + r->rto_ns;
	rc = r->base.inner->ops->send(r->base.inner, &f, &iov, 1);
	if (rc == -ENOBUFS)
		return 0;	/* the timer brings it back */
	if (rc < 0)
		return rc;
	t->resent = true;
	r->ack_owed = false;
	vrio_counter_add(&r->base.stats.retransmits, 1);
	return 0;
}

static void rtt_sample(struct rel_conn *r, uint64_t rtt)
{
	uint64_t dev;

	if (!r->srtt_ns) {
		r->srtt_ns = rtt;
		r->rttvar_ns = rtt / 2;
	} else {
		dev = rtt > r->srtt_ns ? rtt - r->srtt_ns : r->srtt_ns - rtt;
		r->rttvar_ns = (3 * r->rttvar_ns + dev) / 4;
		r->srtt_ns = (7 * r->srtt_ns + rtt) / 8;
	}
	r->rto_ns = r->srtt_ns + 4 * r->rttvar_ns;
	if (r->rto_ns < REL_RTO_MIN_NS)
		r->rto_ns = REL_RTO_MIN_NS;
	if (r->rto_ns > REL_RTO_MAX_NS)
		r->rto_ns = REL_RTO_MAX_NS;
	__atomic_store_n(&r->base.stats.rtt_ns, r->srtt_ns, __ATOMIC_RELAXED);
}

/* `pure`: a RACK. Frames carrying data repeat the acknowledgement as a
 * matter of course, so only pure ones count as duplicates. */
static int on_ack(struct rel_conn *r, uint32_t ack, bool pure, uint64_t now)
{
	struct rel_tx *t;

	/* Acknowledging what was never queued is a peer we cannot trust. After
	 * a go-back, acknowledgements past `sent` are for the first copies. */
	if (seq_before(r->nxt, ack))
		return -EBADMSG;
	if (!seq_before(r->una, ack)) {
		if (pure && ack == r->una && r->una != r->sent && ++r->dupacks == REL_DUPACKS &&
		    !r->recovering)
			return resend_una(r, now);
		return 0;
	}
	t = &r->tx[(ack - 1) & (REL_WINDOW - 1)];
	if (!t->resent && t->sent_ns)
		rtt_sample(r, now - t->sent_ns);
	r->head = t->pos + t->len;
	r->una = ack;
	if (seq_before(r->sent, ack))
		r->sent = ack;
	r->dupacks = 0;
	r->rto_at = now + r->rto_ns;
	if (r->recovering) {
		if (seq_before(ack, r->recover) && r->una != r->sent)
			return resend_una(r, now);	/* a partial ack: the next hole */
		r->recovering = false;
	}
	return 0;
}

/* The inner frame inside an RDATA payload, checked like any peer input. */
static int unwrap(const struct vrio_frame *f, const uint8_t *payload, struct vrio_frame *inner)
{
	if (f->len < VRIO_FRAME_HDR_LEN || vrio_frame_decode(payload, inner) < 0 ||
	    inner->len != f->len - VRIO_FRAME_HDR_LEN || inner->type == VRIO_FRAME_RDATA ||
	    inner->type == VRIO_FRAME_RACK)
		return -EBADMSG;
	return 0;
}

static int deliver(struct rel_conn *r, const struct vrio_frame *inner, const uint8_t *payload)
{
	r->rcv_nxt++;
	r->base.stats.frames_rx++;
	r->base.stats.bytes_rx += VRIO_FRAME_HDR_LEN + inner->len;
	r->delivered++;
	return r->cb(r->arg, &r->base, inner, payload + VRIO_FRAME_HDR_LEN);
}

/* Keep a frame that came ahead of a gap. */
static int stash(struct rel_conn *r, uint32_t seq, const uint8_t *payload, uint32_t len)
{
	struct rel_rx *x = &r->rx[seq & (REL_WINDOW - 1)];
	uint8_t *nb;

	if (x->full)
		return 0;
	if (x->cap < len) {
		nb = realloc(x->buf, len);
		if (!nb)
			return 0;	/* dropped; the sender will try again */
		x->buf = nb;
		x->cap = len;
	}
	memcpy(x->buf, payload, len);
	x->len = len;
	x->full = true;
	return 0;
}

static int rel_recv(void *arg, struct vrio_conn *c, const struct vrio_frame *f,
		    const void *payload)
{
	struct rel_conn *r = arg;
	struct vrio_frame inner;
	struct rel_rx *x;
	int rc;

	if (f->type != VRIO_FRAME_RDATA && f->type != VRIO_FRAME_RACK)
		return -EBADMSG;
	rc = on_ack(r, f->arg, f->type == VRIO_FRAME_RACK, vrio_now_ns());
	if (rc < 0 || f->type == VRIO_FRAME_RACK)
		return rc;
	rc = unwrap(f, payload, &inner);
	if (rc < 0)
		return rc;
	r->ack_owed = true;
	if (f->id != r->rcv_nxt) {
		if (seq_before(f->id, r->rcv_nxt))
			vrio_counter_add(&r->base.stats.duplicates, 1);
		else if (f->id - r->rcv_nxt < REL_WINDOW)
			stash(r, f->id, payload, f->len);
		else
			return -EBADMSG;	/* beyond any window we offered */
		/* Out of order: a pure ack each tells the sender where we are. */
		if (r->dupacks_owed < REL_DUPACKS)
			r->dupacks_owed++;
		return 0;
	}
	rc = deliver(r, &inner, payload);
	/* Then whatever was kept for right after it. */
	while (rc >= 0 && (x = &r->rx[r->rcv_nxt & (REL_WINDOW - 1)])->full) {
		x->full = false;
		if (vrio_frame_decode(x->buf, &inner) < 0)
			return -EBADMSG;
		rc = deliver(r, &inner, x->buf);
	}
	return rc;
}

static int rel_flush(struct vrio_conn *c)
{
	struct rel_conn *r = to_rel(c);
	struct vrio_frame ack = { .type = VRIO_FRAME_RACK };
	int rc;

	rc = transmit(r, vrio_now_ns());
	if (rc < 0)
		return rc;
	ack.arg = r->rcv_nxt;
	while (r->ack_owed || r->dupacks_owed) {
		rc = r->base.inner->ops->send(r->base.inner, &ack, NULL, 0);
		if (rc == -ENOBUFS)
			break;
		if (rc < 0)
			return rc;
		r->ack_owed = false;
		if (r->dupacks_owed)
			r->dupacks_owed--;
	}
	rc = r->base.inner->ops->flush(r->base.inner);
	if (rc < 0)
		return rc;
	return rc || r->sent != r->nxt || r->ack_owed || r->dupacks_owed ? 1 : 0;
}

static int rel_poll(struct vrio_conn *c, vrio_recv_cb cb, void *arg, unsigned budget)
{
	struct rel_conn *r = to_rel(c);
	uint64_t now = vrio_now_ns();
	int rc;

	if (r->una != r->sent && now >= r->rto_at) {
		r->rto_ns = r->rto_ns * 2 > REL_RTO_MAX_NS ? REL_RTO_MAX_NS : r->rto_ns * 2;
		r->recovering = false;
		rc = resend_una(r, now);
		if (rc < 0)
			return rc;
	}
	r->cb = cb;
	r->arg = arg;
	r->delivered = 0;
	rc = r->base.inner->ops->poll(r->base.inner, rel_recv, r, budget);
	if (rc < 0)
		return rc;
	/* The layer below may still hold frames it did not hand us: say so,
	 * or the owner might sleep on a file descriptor that will not fire. */
	return (unsigned)rc == budget ? (int)budget : (int)r->delivered;
}

static int rel_sleep_prepare(struct vrio_conn *c)
{
	return vrio_conn_sleep_prepare(to_rel(c)->base.inner);
}

static int rel_conn_fd(struct vrio_conn *c)
{
	return vrio_conn_fd(to_rel(c)->base.inner);
}

static int rel_pending(struct vrio_conn *c)
{
	struct rel_conn *r = to_rel(c);

	return r->sent != r->nxt || r->ack_owed || r->dupacks_owed ||
	       (r->base.inner->ops->pending && r->base.inner->ops->pending(r->base.inner));
}

static int rel_timeout_ms(struct vrio_conn *c)
{
	struct rel_conn *r = to_rel(c);
	int t = vrio_conn_timeout_ms(r->base.inner), ms;
	uint64_t now;

	if (r->una == r->sent)
		return t;
	now = vrio_now_ns();
	ms = r->rto_at > now ? (int)((r->rto_at - now) / 1000000) + 1 : 0;
	return t < 0 || ms < t ? ms : t;
}

static unsigned rel_unacked(struct vrio_conn *c)
{
	struct rel_conn *r = to_rel(c);

	return r->nxt - r->una;
}

static void rel_close(struct vrio_conn *c)
{
	struct rel_conn *r;

	if (!c)
		return;
	r = to_rel(c);
	r->base.inner->ops->close(r->base.inner);
	for (unsigned i = 0; i < REL_WINDOW; i++)
		free(r->rx[i].buf);
	free(r->ring);
	free(r);
}

/* A layer, stacked with vrio_reliable_wrap(), never registered: it has
 * only the connection operations. */
static const struct vrio_transport_ops rel_ops = {
	.name = "reliable",
	.send = rel_send,
	.flush = rel_flush,
	.poll = rel_poll,
	.close = rel_close,
	.conn_fd = rel_conn_fd,
	.sleep_prepare = rel_sleep_prepare,
	.pending = rel_pending,
	.timeout_ms = rel_timeout_ms,
	.unacked = rel_unacked,
};

int vrio_reliable_wrap(struct vrio_conn *inner, struct vrio_conn **out)
{
	struct rel_conn *r = calloc(1, sizeof(*r));

	/* The ring is virtual memory: pages are touched only as it fills. */
	if (r)
		r->ring = malloc(REL_RING);
	if (!r || !r->ring) {
		free(r);
		inner->ops->close(inner);
		return -ENOMEM;
	}
	r->base.ops = &rel_ops;
	snprintf(r->base.name, sizeof(r->base.name), "%s", inner->name);
	r->base.inner = inner;
	r->rto_ns = REL_RTO_INIT_NS;
	*out = &r->base;
	return 0;
}

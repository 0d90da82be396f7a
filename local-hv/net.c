/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The packet-queue path (virtio-net): rte_vhost's own net data path moves
 * frames in and out of the guest (its dequeue and enqueue bursts: mergeable
 * receive buffers, packed rings, IOTLB translation are DPDK's), and this file
 * only carries them between the guest and the io-server as PKT frames.
 *
 * Offloads: rte_vhost turns the guest's virtio-net header into mbuf
 * metadata on dequeue (its legacy offload flags: RTE_MBUF_F_TX_TCP_SEG,
 * TX_TCP/UDP_CKSUM, l2/l3/l4 lengths, tso_segsz, as a NIC driver would
 * take them) and back into a header on enqueue; this file translates that
 * metadata to and from the PKT frame's struct vrio_pkt_wire. A TSO packet
 * arrives as a chain of mbufs of up to 64 KiB. The header's ECN bit is
 * lost on the way in and cannot be written on the way out: recovered from
 * the packet's CWR on transmit (tso_cwr), never sent to a guest.
 *
 * Guest transmit: the odd vrings (2k + 1 for queue pair k). Each poll
 * round dequeues a burst from each, sends each packet upstream (its PKT
 * frame's queue is the pair) and frees its mbuf. Nothing is in flight
 * afterwards, so a lost connection loses only the frames on the wire, as a
 * cable would.
 * Guest receive: the even vrings. PKT frames from the io-server are copied
 * into mbufs and batched, each for the receive vring its flow hashes to
 * among those the guest enabled (flowhash.h), so a flow keeps its order
 * on one queue; the batch is enqueued once per round, and what the guest
 * has no buffers for is dropped and counted: a full receive queue never
 * holds up the upstream connection, and so never another device.
 *
 * Multiqueue: the device offers the topology's queue pairs; a driver
 * enables as many as it wants (Linux: one per vCPU) through the VMM, and
 * rte_vhost reports each vring's readiness to the control thread, which
 * cannot stop the device there (vhost.c): it publishes the set in
 * d->net_ready and the poller follows it between two rounds.
 */
#include <endian.h>
#include <errno.h>
#include <string.h>
#include <linux/virtio_net.h>

#include <rte_errno.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <rte_vhost.h>

#include "flowhash.h"
#include "localhv.h"
#include "log.h"

#define NET_RXQ		0	/* pair 0, the one a driver always has */
#define NET_TXQ		1
#define NET_MAX_SEGS	64	/* mbufs in one dequeued packet: 64 KiB of 2 KiB ones */
#define NET_POOL_SIZE	8191	/* mbufs: a power of two minus one */
/* Per lcore (the poller's): a freed mbuf is the next one taken, still in
 * the CPU's cache; the pool's ring alone hands out all 8191 in turn. */
#define NET_POOL_CACHE	256
#define NET_VHOST_BURST	32	/* rte_vhost's dequeue: at most this many a call */

const char *const lhv_net_drop_names[LHV_NET_NR_DROPS] = {
	[LHV_NET_DROP_GUEST_RX_FULL] = "guest_rx_full",
	[LHV_NET_DROP_NO_GUEST] = "no_guest",
	[LHV_NET_DROP_UPSTREAM_DOWN] = "upstream_down",
	[LHV_NET_DROP_UPSTREAM_FULL] = "upstream_full",
	[LHV_NET_DROP_TOO_LONG] = "too_long",
	[LHV_NET_DROP_NO_MBUF] = "no_mbuf",
	[LHV_NET_DROP_BAD_OFFLOAD] = "bad_offload",
};

static void count_drop(struct lhv_dev *d, enum lhv_net_drop why, unsigned n)
{
	vrio_counter_add(&d->st.net_drops[why], n);
}

/* Main thread, with the first net device (at start or a reload). */
int lhv_net_init(struct lhv *l)
{
	if (l->mbufs)
		return 0;
	l->mbufs = rte_pktmbuf_pool_create("lhv-mbufs", NET_POOL_SIZE, NET_POOL_CACHE, 0,
					   RTE_MBUF_DEFAULT_BUF_SIZE, SOCKET_ID_ANY);
	if (!l->mbufs) {
		VRIO_ERR("%s: cannot create the packet buffer pool: %s", l->node,
			 rte_strerror(rte_errno));
		return -ENOMEM;
	}
	return 0;
}

void lhv_net_fini(struct lhv *l)
{
	rte_mempool_free(l->mbufs);
	l->mbufs = NULL;
}

_Static_assert(LHV_BUDGET <= 64, "a flush marks the batch in one word");

/*
 * Serve the vrings in `ready` (pair 0 always), among the device's pairs.
 * The rings stay rte_vhost's; we keep only the transmit kicks, to sleep
 * on. `l`: the poller, which also watches the kicks; NULL: the control
 * thread at start (the poller watches what is active when it takes it).
 */
static void net_follow(struct lhv *l, struct lhv_dev *d, int vid, uint64_t ready)
{
	struct rte_vhost_vring vr;
	unsigned qi;

	ready |= 1ull << NET_RXQ | 1ull << NET_TXQ;
	d->net_nrxq = 0;
	for (qi = 0; qi < d->nvq; qi++) {
		struct lhv_vq *q = &d->vq[qi];
		bool on = ready >> qi & 1;

		if (on && !(qi & 1))
			d->net_rxq[d->net_nrxq++] = (uint8_t)qi;
		if (on == q->active)
			continue;
		if (!(qi & 1)) {
			q->active = on;
			continue;
		}
		if (!on) {
			if (l)
				lhv_poller_watch_vq(l, q, false);
			q->active = false;
			q->kickfd = -1;
			continue;
		}
		if (rte_vhost_get_vhost_vring(vid, (uint16_t)qi, &vr) != 0)
			continue;
		q->kickfd = vr.kickfd;
		q->active = true;
		q->armed = false;
		if (l) {
			lhv_poller_watch_vq(l, q, true);
			rte_vhost_enable_guest_notification(vid, (uint16_t)qi, 0);
		}
	}
	d->net_served = ready;
}

/* The control thread: rte_vhost says the guest driver is ready. */
static int net_start(struct lhv_dev *d, int vid)
{
	unsigned qi, pairs = d->num_queues / 2;
	struct rte_vhost_vring vr;

	if (pairs == 0 || pairs > LHV_MAX_QUEUES / 2) {
		VRIO_ERR("%s: %u virtqueues is not a net device", d->name, d->num_queues);
		return -EINVAL;
	}
	if (rte_vhost_get_vring_num(vid) < 2 ||
	    rte_vhost_get_vhost_vring(vid, NET_TXQ, &vr) != 0) {
		VRIO_ERR("%s: the frontend set up no transmit queue", d->name);
		return -ENOENT;
	}
	memset(d->vq, 0, 2 * pairs * sizeof(d->vq[0]));
	for (qi = 0; qi < 2 * pairs; qi++)
		d->vq[qi].kickfd = d->vq[qi].callfd = -1;
	d->nvq = 2 * pairs;
	d->n_rx = 0;
	net_follow(NULL, d, vid, __atomic_load_n(&d->net_ready, __ATOMIC_ACQUIRE));
	return 0;
}

/* What the guest takes on receive, for the io-server's switch. */
static uint16_t rx_offloads(const struct lhv_dev *d)
{
	uint16_t ol = 0;

	if (d->features & (1ull << VIRTIO_NET_F_GUEST_CSUM))
		ol |= VRIO_PKT_RX_CSUM;
	if (d->features & (1ull << VIRTIO_NET_F_GUEST_TSO4))
		ol |= VRIO_PKT_RX_TSO4;
	if (d->features & (1ull << VIRTIO_NET_F_GUEST_TSO6))
		ol |= VRIO_PKT_RX_TSO6;
	return ol;
}

/*
 * Poller: tell the io-server that the guest takes `ol` on receive, in a PKT
 * frame with no packet (the io-server forwards it nowhere). Sent when the
 * poller takes the device (the driver started, with the features it
 * negotiated), when it gives it back (none: the next driver may negotiate
 * less) and when the device is attached again under a running guest, so
 * that on the ordered connection every frame the io-server sends after it
 * is built for this guest, not for the one before. A connection too full
 * to take it leaves it due: tried again each round. Not attached: the
 * io-server assumes none until the attach's resend tells it.
 */
static void net_tell_offloads(struct lhv_dev *d, uint16_t ol)
{
	struct vrio_pkt_wire h = { .rx_ol = htole16(ol) };
	struct vrio_frame f = {
		.type = VRIO_FRAME_PKT,
		.dev = d->dev_id,
		.len = VRIO_PKT_HDR_LEN,
	};
	struct iovec iov = { &h, sizeof(h) };

	d->net_ol_due = false;
	if (!d->attached || !d->up->conn ||
	    __atomic_load_n(&d->up->state, __ATOMIC_RELAXED) != LHV_UP_READY)
		return;
	if (lhv_up_send(d->up, &f, &iov, 1) < 0)
		d->net_ol_due = true;
}

static void net_started(struct lhv_dev *d)
{
	net_tell_offloads(d, rx_offloads(d));
}

/* The connection is back and the device attached on it: the io-server
 * forgot the guest's offloads (it assumes none after an attach). */
static int net_resend(struct lhv *l, struct lhv_dev *d)
{
	(void)l;
	if (__atomic_load_n(&d->state, __ATOMIC_ACQUIRE) == LHV_DEV_RUNNING)
		net_tell_offloads(d, rx_offloads(d));
	return 0;
}

/*
 * True if the TCP header of a TSO packet has CWR set. rte_vhost's dequeue
 * masks the ECN bit out of the guest's gso_type, but Linux sets that bit
 * on exactly the TSO packets whose header has CWR (the first data after a
 * congestion signal; HOST_ECN negotiated, else the guest cuts them
 * itself), so the flag says it again. rte_vhost checked that the headers
 * it measured are in the first mbuf; a packet where they are not is left
 * without the bit.
 */
static bool tso_cwr(const struct rte_mbuf *m)
{
	uint32_t at = (uint32_t)m->l2_len + m->l3_len + 13;	/* TCP's flags */

	return at < rte_pktmbuf_data_len(m) &&
	       (*rte_pktmbuf_mtod_offset(m, const uint8_t *, at) & 0x80);
}

/* The guest's header, as rte_vhost left it in the mbuf; -EPROTO for what
 * a PKT frame cannot say (an SCTP checksum). */
static int pkt_meta(const struct lhv_dev *d, const struct rte_mbuf *m, struct vrio_pkt_wire *h)
{
	uint64_t ol = m->ol_flags;

	memset(h, 0, sizeof(*h));
	h->rx_ol = htole16(rx_offloads(d));
	if (ol & RTE_MBUF_F_TX_TCP_SEG) {
		h->gso_type = ol & RTE_MBUF_F_TX_IPV6 ? VRIO_PKT_GSO_TCPV6 : VRIO_PKT_GSO_TCPV4;
		if (tso_cwr(m))
			h->gso_type |= VRIO_PKT_GSO_ECN;
		h->gso_size = htole16(m->tso_segsz);
		h->hdr_len = htole16((uint16_t)(m->l2_len + m->l3_len + m->l4_len));
		ol = (ol & ~RTE_MBUF_F_TX_L4_MASK) | RTE_MBUF_F_TX_TCP_CKSUM;
	}
	switch (ol & RTE_MBUF_F_TX_L4_MASK) {
	case RTE_MBUF_F_TX_L4_NO_CKSUM:
		return 0;
	case RTE_MBUF_F_TX_TCP_CKSUM:
		h->csum_offset = htole16(16);
		break;
	case RTE_MBUF_F_TX_UDP_CKSUM:
		h->csum_offset = htole16(6);
		break;
	default:
		return -EPROTO;
	}
	h->flags = VRIO_PKT_F_NEEDS_CSUM;
	h->csum_start = htole16((uint16_t)(m->l2_len + m->l3_len));
	return 0;
}

/* 1 if the packet was queued, 0 if dropped (counted), or -errno. */
static int send_pkt(struct lhv_dev *d, struct rte_mbuf *m, unsigned qi)
{
	struct vrio_pkt_wire hdr;
	struct iovec iov[1 + NET_MAX_SEGS];
	struct vrio_frame f = {
		.type = VRIO_FRAME_PKT,
		.queue = (uint16_t)(qi / 2),
		.dev = d->dev_id,
		.len = VRIO_PKT_HDR_LEN + m->pkt_len,
	};
	struct rte_mbuf *s;
	int n = 1, rc;

	if (m->nb_segs > NET_MAX_SEGS || m->pkt_len > VRIO_PKT_MAX_GSO_FRAME ||
	    (m->pkt_len > VRIO_PKT_MAX_FRAME && !(m->ol_flags & RTE_MBUF_F_TX_TCP_SEG))) {
		count_drop(d, LHV_NET_DROP_TOO_LONG, 1);
		return 0;
	}
	if (pkt_meta(d, m, &hdr) < 0) {
		count_drop(d, LHV_NET_DROP_BAD_OFFLOAD, 1);
		return 0;
	}
	iov[0].iov_base = &hdr;
	iov[0].iov_len = sizeof(hdr);
	for (s = m; s; s = s->next) {
		iov[n].iov_base = rte_pktmbuf_mtod(s, void *);
		iov[n++].iov_len = s->data_len;
	}
	rc = lhv_up_send(d->up, &f, iov, n);
	if (rc == -ENOBUFS) {
		count_drop(d, LHV_NET_DROP_UPSTREAM_FULL, 1);
		return 0;
	}
	return rc < 0 ? rc : 1;
}

/* Guest transmit -> io-server: the burst's counters and its mbufs go
 * back once, not per packet. */
static int net_process(struct lhv *l, struct lhv_dev *d, unsigned qi, unsigned budget)
{
	struct rte_mbuf *pkts[LHV_BUDGET];
	unsigned sent = 0, down = 0;
	uint64_t bytes = 0;
	uint16_t n = 0, got, i;
	bool up;
	int rc = 0;

	if (!(qi & 1)) {
		uint64_t ready;

		/* Once a round, on pair 0's receive vring (always served):
		 * the vrings the guest enabled or disabled since. */
		ready = __atomic_load_n(&d->net_ready, __ATOMIC_ACQUIRE) | 1ull << NET_RXQ |
			1ull << NET_TXQ;
		if (qi == NET_RXQ && ready != d->net_served)
			net_follow(l, d, d->vid, ready);
		if (qi == NET_RXQ && d->net_ol_due)
			net_tell_offloads(d, rx_offloads(d));
		return 0;
	}
	/* rte_vhost hands out at most 32 (its MAX_PKT_BURST) a call: ask
	 * again while it fills them, so that a round (one send, one receive
	 * on the connection) carries the whole budget; the round's later
	 * passes (fair.h) take the rest of it. */
	if (budget > LHV_BUDGET)
		budget = LHV_BUDGET;
	do {
		got = rte_vhost_dequeue_burst(d->vid, (uint16_t)qi, l->mbufs, pkts + n,
					      (uint16_t)(budget - n));
		n = (uint16_t)(n + got);
	} while (got >= NET_VHOST_BURST && n < budget);
	if (!n)
		return 0;
	up = d->attached && d->up->conn &&
	     __atomic_load_n(&d->up->state, __ATOMIC_RELAXED) == LHV_UP_READY;
	for (i = 0; i < n; i++) {
		/* A dead connection: its poll notices; these frames are gone. */
		if (up && rc >= 0)
			rc = send_pkt(d, pkts[i], qi);
		else
			rc = -ENOTCONN;
		if (rc > 0) {
			sent++;
			bytes += pkts[i]->pkt_len;
		} else if (rc < 0) {
			down++;
		}
	}
	rte_pktmbuf_free_bulk(pkts, n);
	if (sent) {
		vrio_counter_add(&d->st.requests, sent);
		vrio_counter_add(&d->st.net_frames[qi], sent);
		vrio_counter_add(&d->st.bytes_out, bytes);
	}
	if (down)
		count_drop(d, LHV_NET_DROP_UPSTREAM_DOWN, down);
	return n;
}

/* An mbuf from the device's stash, filled a burst at a time. */
static struct rte_mbuf *mbuf_get(struct lhv *l, struct lhv_dev *d)
{
	if (!d->n_stash) {
		if (rte_pktmbuf_alloc_bulk(l->mbufs, d->stash, LHV_BUDGET) == 0)
			d->n_stash = LHV_BUDGET;
		else
			return rte_pktmbuf_alloc(l->mbufs);	/* the pool runs low */
	}
	return d->stash[--d->n_stash];
}

/* Copy a packet into a chain of mbufs. */
static struct rte_mbuf *pkt_mbuf(struct lhv *l, struct lhv_dev *d, const uint8_t *p,
				uint32_t len)
{
	struct rte_mbuf *head = NULL, *m;
	uint32_t n;

	do {
		m = mbuf_get(l, d);
		if (!m) {
			rte_pktmbuf_free(head);
			return NULL;
		}
		n = rte_pktmbuf_tailroom(m);
		if (n > len)
			n = len;
		memcpy(rte_pktmbuf_append(m, (uint16_t)n), p, n);
		p += n;
		len -= n;
		if (!head)
			head = m;
		else if (rte_pktmbuf_chain(head, m) < 0) {
			rte_pktmbuf_free(m);
			rte_pktmbuf_free(head);
			return NULL;
		}
	} while (len);
	return head;
}

/*
 * A packet's metadata from the io-server as the mbuf flags rte_vhost's
 * enqueue writes into the guest's header: -EPROTO for what the guest did
 * not negotiate or rte_vhost cannot say (a checksum not TCP's or UDP's, an
 * IP header that is neither IPv4 nor IPv6, the ECN bit: its enqueue never
 * writes it, so no guest is offered GUEST_ECN and the io-server cuts such
 * a packet before it comes here).
 */
static int set_meta(const struct lhv_dev *d, const struct vrio_pkt_wire *h, struct rte_mbuf *m,
		    const uint8_t *eth, uint32_t len)
{
	uint32_t gso = h->gso_type & ~VRIO_PKT_GSO_ECN, start, l2 = 14, type, thl;
	uint16_t rx = rx_offloads(d);

	if (!(h->flags & VRIO_PKT_F_NEEDS_CSUM))
		return 0;	/* whole and checksummed (DATA_VALID: no matter) */
	if (!(rx & VRIO_PKT_RX_CSUM) || (h->gso_type & VRIO_PKT_GSO_ECN) ||
	    (gso == VRIO_PKT_GSO_TCPV4 && !(rx & VRIO_PKT_RX_TSO4)) ||
	    (gso == VRIO_PKT_GSO_TCPV6 && !(rx & VRIO_PKT_RX_TSO6)))
		return -EPROTO;
	start = le16toh(h->csum_start);
	type = (uint32_t)eth[12] << 8 | eth[13];
	if (type == 0x8100 && len >= 18) {
		l2 = 18;
		type = (uint32_t)eth[16] << 8 | eth[17];
	}
	if (start < l2 + 20 || start - l2 > 511)	/* l3_len has 9 bits */
		return -EPROTO;
	if (type == 0x0800)
		m->ol_flags |= RTE_MBUF_F_TX_IPV4;
	else if (type == 0x86dd)
		m->ol_flags |= RTE_MBUF_F_TX_IPV6;
	else
		return -EPROTO;
	m->l2_len = l2;
	m->l3_len = start - l2;
	switch (le16toh(h->csum_offset)) {
	case 16:
		m->ol_flags |= RTE_MBUF_F_TX_TCP_CKSUM;
		break;
	case 6:
		if (gso != VRIO_PKT_GSO_NONE)
			return -EPROTO;
		m->ol_flags |= RTE_MBUF_F_TX_UDP_CKSUM;
		break;
	default:
		return -EPROTO;
	}
	if (gso == VRIO_PKT_GSO_NONE)
		return 0;
	/* The TCP header's length, from the frame (vrio_pkt_wire_check kept
	 * csum_start + 18 inside it). */
	thl = (uint32_t)(eth[start + 12] >> 4) * 4;
	if (thl < 20 || start + thl > len)
		return -EPROTO;
	m->l4_len = thl;
	m->tso_segsz = le16toh(h->gso_size);
	m->ol_flags |= RTE_MBUF_F_TX_TCP_SEG;
	return 0;
}

/* A PKT frame from the io-server, for the guest. */
static int net_frame(struct lhv *l, struct lhv_dev *d, const struct vrio_frame *f,
		     const void *payload)
{
	const uint8_t *eth = (const uint8_t *)payload + VRIO_PKT_HDR_LEN;
	struct vrio_pkt_wire h;
	struct rte_mbuf *m;
	uint32_t len;
	int state;

	/* The dispatcher matched the type. The queue is the io-server's to
	 * name within the pairs; the receive vring is ours to choose (by the
	 * flow). */
	if (f->queue >= d->num_queues / 2 || f->len <= VRIO_PKT_HDR_LEN ||
	    f->len - VRIO_PKT_HDR_LEN > VRIO_PKT_MAX_GSO_FRAME)
		return -EBADMSG;
	len = f->len - VRIO_PKT_HDR_LEN;
	memcpy(&h, payload, sizeof(h));
	state = __atomic_load_n(&d->state, __ATOMIC_ACQUIRE);
	if (state != LHV_DEV_RUNNING || d->broken) {
		count_drop(d, LHV_NET_DROP_NO_GUEST, 1);
		return 0;
	}
	/* Checked like anything a peer says: a bad one costs its frame. */
	if (h.rx_ol || (!vrio_pkt_wire_plain(&h) &&
			vrio_pkt_wire_check(&h, len, VRIO_PKT_MAX_FRAME) < 0)) {
		count_drop(d, LHV_NET_DROP_BAD_OFFLOAD, 1);
		return 0;
	}
	m = pkt_mbuf(l, d, eth, len);
	if (!m) {
		count_drop(d, LHV_NET_DROP_NO_MBUF, 1);
		return 0;
	}
	if (!vrio_pkt_wire_plain(&h) && set_meta(d, &h, m, eth, len) < 0) {
		rte_pktmbuf_free(m);
		count_drop(d, LHV_NET_DROP_BAD_OFFLOAD, 1);
		return 0;
	}
	d->rx_ring[d->n_rx] = d->net_nrxq > 1 ?
		d->net_rxq[lhv_flow_queue(lhv_flow_hash(eth, len), d->net_nrxq)] : NET_RXQ;
	d->rx[d->n_rx++] = m;
	if (d->n_rx == LHV_BUDGET)
		lhv_net_flush(d);
	return 0;
}

/* Enqueue n packets into one receive vring (rte_vhost takes at most its
 * own burst size per call), free them; returns how many the guest got. */
static unsigned enqueue_ring(struct lhv_dev *d, unsigned ring, struct rte_mbuf **pkts,
			     unsigned n, bool running)
{
	unsigned done = 0, i;
	uint64_t bytes = 0;

	while (running && done < n) {
		uint16_t got = rte_vhost_enqueue_burst(d->vid, (uint16_t)ring, pkts + done,
						       (uint16_t)(n - done));

		done += got;
		if (got == 0)
			break;
	}
	for (i = 0; i < done; i++)
		bytes += pkts[i]->pkt_len;
	rte_pktmbuf_free_bulk(pkts, n);
	if (done) {
		vrio_counter_add(&d->st.responses, done);
		vrio_counter_add(&d->st.net_frames[ring], done);
		vrio_counter_add(&d->st.bytes_in, bytes);
	}
	if (done < n)
		count_drop(d, LHV_NET_DROP_GUEST_RX_FULL, n - done);
	return done;
}

/* The batch, ring by ring, each ring's packets in their order. */
void lhv_net_flush(struct lhv_dev *d)
{
	struct rte_mbuf *pkts[LHV_BUDGET];
	uint64_t taken = 0;
	unsigned i, j, n;
	bool running;

	if (!d->n_rx)
		return;
	running = __atomic_load_n(&d->state, __ATOMIC_ACQUIRE) == LHV_DEV_RUNNING && !d->broken;
	for (i = 0; i < d->n_rx; i++) {
		if (taken >> i & 1)
			continue;
		for (j = i, n = 0; j < d->n_rx; j++) {
			if (!(taken >> j & 1) && d->rx_ring[j] == d->rx_ring[i]) {
				pkts[n++] = d->rx[j];
				taken |= 1ull << j;
			}
		}
		enqueue_ring(d, d->rx_ring[i], pkts, n, running);
	}
	d->n_rx = 0;
}

static bool net_notify(struct lhv_dev *d, struct lhv_vq *q, uint64_t now)
{
	(void)now;
	/* rte_vhost signals the guest from its enqueue and dequeue. */
	if (q == &d->vq[NET_RXQ])
		lhv_net_flush(d);
	return false;
}

static bool net_kicks(struct lhv_dev *d, struct lhv_vq *q, bool enable)
{
	uint16_t qi = (uint16_t)(q - d->vq);

	if (!(qi & 1))
		return false;
	rte_vhost_enable_guest_notification(d->vid, qi, enable);
	if (!enable)
		return false;
	/* A packet posted before the guest saw notifications on: do not sleep
	 * on it. (Split rings only: we do not offer packed ones.) */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	return rte_vhost_avail_entries(d->vid, qi) != 0;
}

static void net_stopped(struct lhv_dev *d)
{
	net_tell_offloads(d, 0);
	d->net_ol_due = false;	/* the next start tells again */
	rte_pktmbuf_free_bulk(d->rx, d->n_rx);
	d->n_rx = 0;
	rte_pktmbuf_free_bulk(d->stash, d->n_stash);
	d->n_stash = 0;
	memset(d->vq, 0, d->nvq * sizeof(d->vq[0]));
	d->nvq = 0;
	d->net_served = 0;
	d->net_nrxq = 0;
}

const struct lhv_dev_ops lhv_net_ops = {
	.name = "net",
	.frame_type = VRIO_FRAME_PKT,
	.drops_when_detached = true,
	.start = net_start,
	.process = net_process,
	.frame = net_frame,
	.notify = net_notify,
	.kicks = net_kicks,
	.resend = net_resend,
	.started = net_started,
	.stopped = net_stopped,
};

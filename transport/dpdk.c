/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * DPDK backend: vrio frames as raw Ethernet packets (EtherType 0x88B5) on
 * one DPDK port per process: a NIC, af_xdp, af_packet, memif. It is a
 * datagram layer (ops.unreliable): the stack puts the reliable layer on top
 * for sequencing, acknowledgement, retransmission and flow control. The
 * packet format is in dpdk_internal.h.
 *
 * Connections. The connecting side picks a random connection id and sends
 * SYN to the listener's MAC address until a SYN-ACK comes back. The id and
 * the two MAC addresses identify the connection: every packet carries the
 * id, and one whose addresses do not match is dropped. A SYN for an id the
 * listener already accepted means its SYN-ACK was lost, and is answered
 * again. close() sends FIN, which the peer's poll() reports as
 * -ECONNRESET; a DATA packet for an id nobody here knows is answered with
 * FIN too, so that a peer that outlived our process hears of it at once.
 *
 * Frames. A frame larger than a packet is cut into fragments that carry
 * the frame's number on the connection, their offset and the frame's
 * length. The receiver rebuilds one frame at a time and drops it whole when
 * a fragment is missing or out of order: the reliable layer resends it.
 *
 * Threads. The port is shared by the listener and every connection of the
 * process, whose owners are different threads (the io-server accepts on its
 * main thread and serves connections from reactors). Whoever wins the
 * port's trylock bursts for everybody: it sends what the connections queued
 * in their transmit rings, receives, and puts each packet in its
 * connection's receive ring (a SYN in the listener's). The rings are
 * single-producer single-consumer: one end is the owner, the other is
 * whoever holds the lock, and the lock orders successive holders. The
 * connection table changes only under the lock, so a burst never meets a
 * connection being freed. Owners that lose the race only use their rings.
 * Nothing here has a file descriptor to sleep on: owners poll at least
 * every millisecond (conn_fd() is -1).
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

/* Ours first: rte_common.h defines container_of only where none is. */
#include "dpdk_eal.h"
#include "dpdk_internal.h"
#include "log.h"
#include "topology.h"
#include "transport_internal.h"

#include <rte_byteorder.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_ether.h>
#include <rte_mbuf.h>
#include <rte_mbuf_pool_ops.h>
#include <rte_mempool.h>
#include <rte_ring.h>

#define DPDK_BURST		32u
#define DPDK_RX_ROUNDS		8u	/* receive bursts per turn at most */
#define DPDK_RING		4096u	/* packets per connection and direction */
#define DPDK_SYN_RING		256u
#define DPDK_POOL		8191u	/* mbufs per port */
#define DPDK_POOL_CACHE		64u
#define DPDK_DESC		1024u
#define DPDK_MAX_CONNS		1024u
#define DPDK_TABLE		(2 * DPDK_MAX_CONNS)	/* a power of two */
#define DPDK_HDRS		(RTE_ETHER_HDR_LEN + DPDK_WIRE_LEN)
#define DPDK_SCRATCH		(DPDK_MTU_MAX + 1u)
#define DPDK_CONNECT_NS		(2000ull * 1000 * 1000)
#define DPDK_SYN_EVERY_NS	(100ull * 1000 * 1000)
/* Polled this long after the last packet: a peer's answer wakes nobody. */
#define DPDK_LINGER_NS		(1000ull * 1000)

/* A largest frame fits in a transmit ring, and in the pool. */
_Static_assert(DPDK_FRAG_COUNT_MAX < DPDK_RING, "a frame fits a ring");
_Static_assert(DPDK_FRAG_COUNT_MAX < DPDK_POOL / 2, "a frame fits the pool");
_Static_assert((DPDK_TABLE & (DPDK_TABLE - 1)) == 0, "table size is a power of two");

/* ---- The packet format: pure functions (dpdk_internal.h). ---- */

static void put_le16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void put_le32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

static uint16_t get_le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

void dpdk_hdr_encode(const struct dpdk_hdr *h, uint8_t out[DPDK_WIRE_LEN])
{
	out[offsetof(struct dpdk_wire, version)] = DPDK_WIRE_VERSION;
	out[offsetof(struct dpdk_wire, type)] = h->type;
	put_le16(out + offsetof(struct dpdk_wire, len), h->len);
	put_le32(out + offsetof(struct dpdk_wire, conn), h->conn);
	put_le32(out + offsetof(struct dpdk_wire, seq), h->seq);
	put_le32(out + offsetof(struct dpdk_wire, off), h->off);
	put_le32(out + offsetof(struct dpdk_wire, total), h->total);
}

int dpdk_hdr_decode(const uint8_t *p, size_t avail, struct dpdk_hdr *h)
{
	struct dpdk_hdr d;

	if (avail < DPDK_WIRE_LEN)
		return -EBADMSG;
	if (p[offsetof(struct dpdk_wire, version)] != DPDK_WIRE_VERSION)
		return -EPROTONOSUPPORT;
	d.type = p[offsetof(struct dpdk_wire, type)];
	d.len = get_le16(p + offsetof(struct dpdk_wire, len));
	d.conn = get_le32(p + offsetof(struct dpdk_wire, conn));
	d.seq = get_le32(p + offsetof(struct dpdk_wire, seq));
	d.off = get_le32(p + offsetof(struct dpdk_wire, off));
	d.total = get_le32(p + offsetof(struct dpdk_wire, total));
	if (d.conn == 0)
		return -EBADMSG;
	switch (d.type) {
	case DPDK_SYN:
	case DPDK_SYNACK:
		if (d.len || d.seq || d.off || d.total < DPDK_MTU_MIN || d.total > DPDK_MTU_MAX)
			return -EBADMSG;
		break;
	case DPDK_FIN:
		if (d.len || d.seq || d.off || d.total)
			return -EBADMSG;
		break;
	case DPDK_DATA:
		if (d.len == 0 || d.len > avail - DPDK_WIRE_LEN || d.total < VRIO_FRAME_HDR_LEN ||
		    d.total > DPDK_FRAME_MAX || d.off >= d.total || d.len > d.total - d.off)
			return -EBADMSG;
		break;
	default:
		return -EBADMSG;
	}
	*h = d;
	return 0;
}

uint32_t dpdk_frag_count(uint32_t total, uint32_t frag_max)
{
	return (total + frag_max - 1) / frag_max;
}

void dpdk_frag_hdr(uint32_t conn, uint32_t seq, uint32_t total, uint32_t frag_max, uint32_t idx,
		   struct dpdk_hdr *h)
{
	uint32_t off = idx * frag_max;

	h->type = DPDK_DATA;
	h->conn = conn;
	h->seq = seq;
	h->off = off;
	h->total = total;
	h->len = (uint16_t)(total - off < frag_max ? total - off : frag_max);
}

static void reasm_abandon(struct dpdk_reasm *r, uint64_t *dropped)
{
	if (r->active)
		*dropped += r->frags;
	r->active = false;
}

int dpdk_reasm_push(struct dpdk_reasm *r, const struct dpdk_hdr *h, const uint8_t *data,
		    const uint8_t **frame, uint64_t *dropped)
{
	uint32_t ncap;
	uint8_t *nb;

	if (h->off == 0) {
		reasm_abandon(r, dropped);
		if (h->len == h->total) {
			*frame = data;
			return 1;
		}
		if (r->cap < h->total) {
			ncap = r->cap ? r->cap : 64u << 10;
			while (ncap < h->total)
				ncap = ncap > DPDK_FRAME_MAX / 2 ? DPDK_FRAME_MAX : ncap * 2;
			nb = realloc(r->buf, ncap);
			if (!nb) {
				*dropped += 1;
				return 0;
			}
			r->buf = nb;
			r->cap = ncap;
		}
		memcpy(r->buf, data, h->len);
		r->active = true;
		r->seq = h->seq;
		r->total = h->total;
		r->got = h->len;
		r->frags = 1;
		return 0;
	}
	if (!r->active || h->seq != r->seq || h->total != r->total || h->off != r->got) {
		reasm_abandon(r, dropped);
		*dropped += 1;
		return 0;
	}
	memcpy(r->buf + r->got, data, h->len);
	r->got += h->len;
	r->frags++;
	if (r->got < r->total)
		return 0;
	r->active = false;
	*frame = r->buf;
	return 1;
}

void dpdk_reasm_fini(struct dpdk_reasm *r, uint64_t *dropped)
{
	reasm_abandon(r, dropped);
	free(r->buf);
	r->buf = NULL;
	r->cap = 0;
}

/* ---- The port, its connections and its listener. ---- */

struct dpdk_conn;
struct dpdk_listener;

struct dpdk_port {
	char spec[64];			/* as the topology names it */
	char name[RTE_ETH_NAME_MAX_LEN];
	uint16_t id;
	struct rte_ether_addr mac;
	uint32_t mtu;			/* ours, bounded by the mbufs' room */
	bool promisc;
	struct rte_mempool *pool;
	unsigned refs;			/* setup() calls not undone; under g_setup */
	int busy;			/* the burst right: whoever swaps it 0 -> 1 */

	/* Under `busy`. */
	struct dpdk_listener *listener;
	struct dpdk_conn *table[DPDK_TABLE];	/* by id, open addressing */
	struct dpdk_conn *conns[DPDK_MAX_CONNS];
	unsigned nconns, next;		/* next: where the next transmit round starts */
	struct rte_mbuf *backlog[DPDK_BURST];	/* refused by the device: sent first */
	unsigned nbacklog;
	uint64_t rx_other, rx_bad, rx_stray, rx_full, tx_drops;
};

struct dpdk_listener {
	struct vrio_listener base;
	struct dpdk_port *port;
	struct rte_ether_addr mac;
	struct rte_ring *syns;
};

struct dpdk_conn {
	struct vrio_conn base;
	struct dpdk_port *port;
	uint32_t id;
	bool accepted;			/* the listener's side: answers a repeated SYN */
	bool open;			/* the handshake is done */
	bool closed;			/* the peer sent FIN */
	struct rte_ether_addr local, peer;
	struct rte_ether_hdr eth;	/* what every packet starts with */
	uint32_t frag_max;		/* frame bytes per packet */
	uint32_t tx_seq;
	uint64_t active_ns;		/* when the owner last sent or received */
	struct rte_ring *rx, *tx;
	struct rte_mbuf *rxq[DPDK_BURST];	/* taken from rx, not yet consumed */
	unsigned rxq_head, rxq_n;
	struct dpdk_reasm reasm;
	uint8_t scratch[DPDK_SCRATCH];	/* a packet's bytes when its mbuf is chained */
};

/*
 * One port per process, like the EAL under it: the module's registry of
 * connections by id. setup() and teardown() take g_setup; everything else
 * the port's own burst right.
 */
static struct dpdk_port g_port;
static pthread_mutex_t g_setup = PTHREAD_MUTEX_INITIALIZER;

static struct dpdk_conn *to_dc(struct vrio_conn *c)
{
	return container_of(c, struct dpdk_conn, base);
}

static struct dpdk_listener *to_dl(struct vrio_listener *l)
{
	return container_of(l, struct dpdk_listener, base);
}

static bool port_trylock(struct dpdk_port *p)
{
	return !__atomic_load_n(&p->busy, __ATOMIC_RELAXED) &&
	       !__atomic_exchange_n(&p->busy, 1, __ATOMIC_ACQUIRE);
}

static void port_unlock(struct dpdk_port *p)
{
	__atomic_store_n(&p->busy, 0, __ATOMIC_RELEASE);
}

/* Control path only: the holder's turn is short. */
static void port_lock(struct dpdk_port *p)
{
	while (!port_trylock(p))
		sched_yield();
}

/* The connection with this id between these two addresses (either may be
 * NULL: any), or NULL. Two ends of one connection may both be here. */
static struct dpdk_conn *table_find(const struct dpdk_port *p, uint32_t id,
				    const struct rte_ether_addr *local,
				    const struct rte_ether_addr *peer)
{
	const struct dpdk_conn *c;
	unsigned i;

	for (i = id & (DPDK_TABLE - 1); (c = p->table[i]); i = (i + 1) & (DPDK_TABLE - 1))
		if (c->id == id && (!local || rte_is_same_ether_addr(local, &c->local)) &&
		    (!peer || rte_is_same_ether_addr(peer, &c->peer)))
			return p->table[i];
	return NULL;
}

static int table_insert(struct dpdk_port *p, struct dpdk_conn *c)
{
	unsigned i;

	if (p->nconns == DPDK_MAX_CONNS)
		return -ENOSPC;
	for (i = c->id & (DPDK_TABLE - 1); p->table[i]; i = (i + 1) & (DPDK_TABLE - 1))
		;
	p->table[i] = c;
	p->conns[p->nconns++] = c;
	return 0;
}

static void table_remove(struct dpdk_port *p, struct dpdk_conn *c)
{
	unsigned i, j, home;

	for (i = 0; i < p->nconns; i++) {
		if (p->conns[i] == c) {
			p->conns[i] = p->conns[--p->nconns];
			break;
		}
	}
	for (i = c->id & (DPDK_TABLE - 1); p->table[i] && p->table[i] != c;
	     i = (i + 1) & (DPDK_TABLE - 1))
		;
	if (!p->table[i])
		return;
	/* Close the gap: move back each entry of the run that it would hide. */
	p->table[i] = NULL;
	for (j = (i + 1) & (DPDK_TABLE - 1); p->table[j]; j = (j + 1) & (DPDK_TABLE - 1)) {
		home = p->table[j]->id & (DPDK_TABLE - 1);
		if (((j - home) & (DPDK_TABLE - 1)) >= ((j - i) & (DPDK_TABLE - 1))) {
			p->table[i] = p->table[j];
			p->table[j] = NULL;
			i = j;
		}
	}
}

/* Hand packets to the device, after whatever it refused before; what it
 * refuses now waits in the backlog, or is dropped once that is full. */
static void port_send(struct dpdk_port *p, struct rte_mbuf **pkts, unsigned n)
{
	unsigned sent = 0;

	if (!p->nbacklog)
		sent = rte_eth_tx_burst(p->id, 0, pkts, (uint16_t)n);
	while (sent < n && p->nbacklog < DPDK_BURST)
		p->backlog[p->nbacklog++] = pkts[sent++];
	if (sent < n) {
		rte_pktmbuf_free_bulk(pkts + sent, n - sent);
		p->tx_drops += n - sent;
	}
}

/* Send the backlog, then each connection's queue in turn. */
static unsigned port_tx(struct dpdk_port *p)
{
	struct rte_mbuf *pkts[DPDK_BURST];
	unsigned sent, n, i, k, work = 0;

	if (p->nbacklog) {
		sent = rte_eth_tx_burst(p->id, 0, p->backlog, (uint16_t)p->nbacklog);
		p->nbacklog -= sent;
		memmove(p->backlog, p->backlog + sent, p->nbacklog * sizeof(*p->backlog));
		work += sent;
		if (p->nbacklog)
			return work;
	}
	for (k = 0; k < p->nconns; k++) {
		i = (p->next + k) % p->nconns;
		while ((n = rte_ring_sc_dequeue_burst(p->conns[i]->tx, (void **)pkts, DPDK_BURST,
						      NULL))) {
			port_send(p, pkts, n);
			work += n;
			if (p->nbacklog) {
				/* The device is full: this one goes first next time. */
				p->next = i;
				return work;
			}
		}
	}
	if (p->nconns)
		p->next = (p->next + 1) % p->nconns;
	return work;
}

static struct rte_mbuf *ctl_pkt(struct dpdk_port *p, const struct rte_ether_addr *src,
				const struct rte_ether_addr *dst, uint8_t type, uint32_t conn)
{
	struct dpdk_hdr h = { .type = type, .conn = conn };
	struct rte_ether_hdr *eth;
	struct rte_mbuf *m;
	uint8_t *b;

	m = rte_pktmbuf_alloc(p->pool);
	if (!m)
		return NULL;
	b = (uint8_t *)rte_pktmbuf_append(m, DPDK_HDRS);
	if (!b) {
		rte_pktmbuf_free(m);
		return NULL;
	}
	eth = (struct rte_ether_hdr *)b;
	rte_ether_addr_copy(dst, &eth->dst_addr);
	rte_ether_addr_copy(src, &eth->src_addr);
	eth->ether_type = rte_cpu_to_be_16(DPDK_ETHERTYPE);
	if (type == DPDK_SYN || type == DPDK_SYNACK)
		h.total = p->mtu;
	dpdk_hdr_encode(&h, b + RTE_ETHER_HDR_LEN);
	return m;
}

/* Under the lock: a SYN, SYN-ACK or FIN, sent now (or lost). */
static void ctl_send(struct dpdk_port *p, const struct rte_ether_addr *src,
		     const struct rte_ether_addr *dst, uint8_t type, uint32_t conn)
{
	struct rte_mbuf *m = ctl_pkt(p, src, dst, type, conn);

	if (m)
		port_send(p, &m, 1);
	else
		p->tx_drops++;
}

static bool port_owns(const struct dpdk_port *p, const struct rte_ether_addr *a)
{
	return rte_is_same_ether_addr(a, &p->mac) ||
	       (p->listener && rte_is_same_ether_addr(a, &p->listener->mac));
}

/* Headers of a packet the dispatcher let through, or NULL. */
static const struct rte_ether_hdr *pkt_hdrs(const struct rte_mbuf *m, uint8_t *tmp,
					    struct dpdk_hdr *h)
{
	const uint8_t *b = rte_pktmbuf_read(m, 0, DPDK_HDRS, tmp);
	const struct rte_ether_hdr *eth = (const struct rte_ether_hdr *)b;

	if (!b || eth->ether_type != rte_cpu_to_be_16(DPDK_ETHERTYPE) ||
	    dpdk_hdr_decode(b + RTE_ETHER_HDR_LEN, rte_pktmbuf_pkt_len(m) - RTE_ETHER_HDR_LEN,
			    h) < 0)
		return NULL;
	return eth;
}

/* Under the lock: one received packet to the ring it belongs in. */
static void dispatch(struct dpdk_port *p, struct rte_mbuf *m)
{
	const struct rte_ether_hdr *eth;
	uint8_t tmp[DPDK_HDRS];
	struct dpdk_conn *c;
	struct dpdk_hdr h;
	const uint8_t *b;

	b = rte_pktmbuf_read(m, 0, DPDK_HDRS, tmp);
	eth = (const struct rte_ether_hdr *)b;
	if (!b || eth->ether_type != rte_cpu_to_be_16(DPDK_ETHERTYPE)) {
		p->rx_other++;
		goto drop;
	}
	if (dpdk_hdr_decode(b + RTE_ETHER_HDR_LEN, rte_pktmbuf_pkt_len(m) - RTE_ETHER_HDR_LEN,
			    &h) < 0) {
		p->rx_bad++;
		goto drop;
	}
	c = table_find(p, h.conn, &eth->dst_addr, &eth->src_addr);
	if (h.type == DPDK_SYN) {
		if (c) {
			/* Our SYN-ACK was lost. */
			if (c->accepted)
				ctl_send(p, &c->local, &c->peer, DPDK_SYNACK, c->id);
			goto drop;
		}
		if (!p->listener || !rte_is_same_ether_addr(&eth->dst_addr, &p->listener->mac))
			goto stray;
		if (rte_ring_sp_enqueue(p->listener->syns, m) != 0) {
			p->rx_full++;
			goto drop;
		}
		return;
	}
	if (!c) {
		/* Tell the sender at once that this end forgot it. */
		if (h.type == DPDK_DATA && port_owns(p, &eth->dst_addr))
			ctl_send(p, &eth->dst_addr, &eth->src_addr, DPDK_FIN, h.conn);
		goto stray;
	}
	if (rte_ring_sp_enqueue(c->rx, m) != 0) {
		p->rx_full++;
		goto drop;
	}
	return;
stray:
	p->rx_stray++;
drop:
	rte_pktmbuf_free(m);
}

static unsigned port_rx(struct dpdk_port *p)
{
	struct rte_mbuf *pkts[DPDK_BURST];
	unsigned round, i, n, work = 0;

	for (round = 0; round < DPDK_RX_ROUNDS; round++) {
		n = rte_eth_rx_burst(p->id, 0, pkts, DPDK_BURST);
		for (i = 0; i < n; i++)
			dispatch(p, pkts[i]);
		work += n;
		if (n < DPDK_BURST)
			break;
	}
	return work;
}

/* A turn at the port, if nobody else is taking one. */
static void port_turn(struct dpdk_port *p)
{
	if (!port_trylock(p))
		return;
	port_tx(p);
	port_rx(p);
	port_tx(p);	/* what the received packets made us answer */
	port_unlock(p);
}

static struct rte_ring *ring_new(const char *name, unsigned count)
{
	ssize_t size = rte_ring_get_memsize(count);
	struct rte_ring *r;

	if (size < 0)
		return NULL;
	r = aligned_alloc(RTE_CACHE_LINE_SIZE, RTE_ALIGN_CEIL((size_t)size, RTE_CACHE_LINE_SIZE));
	if (!r)
		return NULL;
	if (rte_ring_init(r, name, count, RING_F_SP_ENQ | RING_F_SC_DEQ) < 0) {
		free(r);
		return NULL;
	}
	return r;
}

static void ring_free(struct rte_ring *r)
{
	void *m;

	if (!r)
		return;
	while (rte_ring_sc_dequeue(r, &m) == 0)
		rte_pktmbuf_free(m);
	free(r);
}

static void conn_name(struct dpdk_conn *c)
{
	char mac[RTE_ETHER_ADDR_FMT_SIZE];

	rte_ether_format_addr(mac, sizeof(mac), &c->peer);
	snprintf(c->base.name, sizeof(c->base.name), "%s#%08x", mac, c->id);
}

static struct dpdk_conn *conn_new(struct dpdk_port *p, const struct rte_ether_addr *local,
				  const struct rte_ether_addr *peer)
{
	struct dpdk_conn *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->rx = ring_new("vrio_dpdk_rx", DPDK_RING);
	c->tx = ring_new("vrio_dpdk_tx", DPDK_RING);
	if (!c->rx || !c->tx) {
		ring_free(c->rx);
		ring_free(c->tx);
		free(c);
		return NULL;
	}
	c->base.ops = &vrio_dpdk_transport;
	c->port = p;
	c->local = *local;
	c->peer = *peer;
	rte_ether_addr_copy(peer, &c->eth.dst_addr);
	rte_ether_addr_copy(local, &c->eth.src_addr);
	c->eth.ether_type = rte_cpu_to_be_16(DPDK_ETHERTYPE);
	c->frag_max = p->mtu - DPDK_WIRE_LEN;
	return c;
}

/* The peer's MTU, from its SYN or SYN-ACK, bounds our packets too. */
static void conn_peer_mtu(struct dpdk_conn *c, uint32_t mtu)
{
	if (mtu < c->port->mtu)
		c->frag_max = mtu - DPDK_WIRE_LEN;
}

/* Out of the table: after this, no burst touches the connection. */
static void conn_free(struct dpdk_conn *c)
{
	while (c->rxq_head < c->rxq_n)
		rte_pktmbuf_free(c->rxq[c->rxq_head++]);
	ring_free(c->rx);
	ring_free(c->tx);
	dpdk_reasm_fini(&c->reasm, &c->base.stats.reasm_drops);
	free(c);
}

static bool parse_mac(const char *addr, struct rte_ether_addr *mac)
{
	return strlen(addr) == 17 && rte_ether_unformat_addr(addr, mac) == 0 &&
	       rte_is_valid_assigned_ether_addr(mac);
}

static int dpdk_listen(const char *addr, struct vrio_listener **out)
{
	struct dpdk_port *p = &g_port;
	char have[RTE_ETHER_ADDR_FMT_SIZE];
	struct dpdk_listener *l;
	struct rte_ether_addr mac;
	bool set = false;
	int rc;

	if (!__atomic_load_n(&p->refs, __ATOMIC_ACQUIRE)) {
		VRIO_ERR("dpdk %s: no port is set up in this process", addr);
		return -ENODEV;
	}
	if (!parse_mac(addr, &mac)) {
		VRIO_ERR("dpdk %s: not a unicast MAC address", addr);
		return -EINVAL;
	}
	l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	l->syns = ring_new("vrio_dpdk_syn", DPDK_SYN_RING);
	if (!l->syns) {
		free(l);
		return -ENOMEM;
	}
	l->base.ops = &vrio_dpdk_transport;
	snprintf(l->base.name, sizeof(l->base.name), "%s", addr);
	l->port = p;
	l->mac = mac;
	if (!rte_is_same_ether_addr(&mac, &p->mac)) {
		rte_ether_format_addr(have, sizeof(have), &p->mac);
		rc = rte_eth_dev_default_mac_addr_set(p->id, &mac);
		if (rc == 0) {
			VRIO_NOTICE("dpdk %s: port %s had MAC %s", addr, p->name, have);
			set = true;
		} else if (p->promisc) {
			VRIO_NOTICE("dpdk %s: port %s keeps its MAC %s (%s); receiving in promiscuous mode",
				    addr, p->name, have, strerror(-rc));
		} else {
			VRIO_ERR("dpdk %s: port %s has MAC %s and can take neither another nor promiscuous mode",
				 addr, p->name, have);
			rc = -EADDRNOTAVAIL;
			goto err;
		}
	}
	port_lock(p);
	rc = p->listener ? -EADDRINUSE : 0;
	if (rc == 0) {
		if (set)
			p->mac = mac;
		p->listener = l;
	}
	port_unlock(p);
	if (rc < 0) {
		VRIO_ERR("dpdk %s: port %s has a listener already", addr, p->name);
		goto err;
	}
	*out = &l->base;
	return 0;
err:
	ring_free(l->syns);
	free(l);
	return rc;
}

static int dpdk_accept(struct vrio_listener *vl, struct vrio_conn **out)
{
	struct dpdk_listener *l = to_dl(vl);
	struct dpdk_port *p = l->port;
	struct rte_ether_addr peer;
	uint8_t tmp[DPDK_HDRS];
	const struct rte_ether_hdr *eth;
	struct dpdk_conn *c, *old;
	struct rte_mbuf *m;
	struct dpdk_hdr h;
	int rc;

	port_turn(p);
	while (rte_ring_sc_dequeue(l->syns, (void **)&m) == 0) {
		eth = pkt_hdrs(m, tmp, &h);
		if (!eth) {
			rte_pktmbuf_free(m);
			continue;
		}
		peer = eth->src_addr;
		rte_pktmbuf_free(m);
		c = conn_new(p, &l->mac, &peer);
		if (!c) {
			VRIO_ERR_RL("%s: out of memory for a connection", vl->name);
			return -ENOMEM;
		}
		c->id = h.conn;
		c->accepted = true;
		c->open = true;
		conn_peer_mtu(c, h.total);
		conn_name(c);
		port_lock(p);
		old = table_find(p, c->id, &c->local, &c->peer);
		rc = old ? -EEXIST : table_insert(p, c);
		if (rc == 0 || old)
			ctl_send(p, &c->local, &c->peer, DPDK_SYNACK, c->id);	/* or again */
		else
			ctl_send(p, &c->local, &c->peer, DPDK_FIN, c->id);	/* refused */
		port_unlock(p);
		if (rc == 0) {
			*out = &c->base;
			return 0;
		}
		if (rc == -ENOSPC)
			VRIO_ERR_RL("%s: %u connections already: refusing %s", vl->name,
				    DPDK_MAX_CONNS, c->base.name);
		conn_free(c);
	}
	return -EAGAIN;
}

static int dpdk_connect(const char *addr, int cancel_fd, struct vrio_conn **out)
{
	struct dpdk_port *p = &g_port;
	struct rte_ether_addr peer;
	uint64_t now, deadline, next_syn;
	struct dpdk_conn *c;
	struct rte_mbuf *m;
	uint8_t tmp[DPDK_HDRS];
	struct dpdk_hdr h;
	uint32_t id;
	int rc;

	if (!__atomic_load_n(&p->refs, __ATOMIC_ACQUIRE))
		return -ENODEV;
	if (!parse_mac(addr, &peer))
		return -EINVAL;
	c = conn_new(p, &p->mac, &peer);
	if (!c)
		return -ENOMEM;
	port_lock(p);
	do {
		if (getrandom(&id, sizeof(id), 0) != sizeof(id))
			id = (uint32_t)vrio_now_ns() * 2654435761u;
	} while (id == 0 || table_find(p, id, NULL, NULL));
	c->id = id;
	rc = table_insert(p, c);
	port_unlock(p);
	if (rc < 0) {
		conn_free(c);
		return rc;
	}
	conn_name(c);

	now = vrio_now_ns();
	deadline = now + DPDK_CONNECT_NS;
	next_syn = now;
	for (;;) {
		if (now >= next_syn) {
			/* A SYN every 100 ms: the time to see a cancel too. */
			if (cancel_fd >= 0 &&
			    (rc = vrio_connect_wait(-1, 0, cancel_fd, 0)) == -ECANCELED)
				goto err;
			port_lock(p);
			ctl_send(p, &c->local, &c->peer, DPDK_SYN, c->id);
			port_unlock(p);
			next_syn = now + DPDK_SYN_EVERY_NS;
		}
		port_turn(p);
		while (!c->open && rte_ring_sc_dequeue(c->rx, (void **)&m) == 0) {
			if (pkt_hdrs(m, tmp, &h)) {
				if (h.type == DPDK_SYNACK) {
					c->open = true;
					conn_peer_mtu(c, h.total);
				} else if (h.type == DPDK_FIN) {
					rte_pktmbuf_free(m);
					rc = -ECONNREFUSED;
					goto err;
				}
			}
			rte_pktmbuf_free(m);
		}
		if (c->open)
			break;
		now = vrio_now_ns();
		if (now >= deadline) {
			rc = -ETIMEDOUT;
			goto err;
		}
		nanosleep(&(struct timespec){ .tv_nsec = 100000 }, NULL);
		now = vrio_now_ns();
	}
	*out = &c->base;
	return 0;
err:
	port_lock(p);
	table_remove(p, c);
	port_unlock(p);
	conn_free(c);
	return rc;
}

/* Copies the frame's bytes, header first, into consecutive packets. */
struct frame_cursor {
	const uint8_t *hdr;
	const struct iovec *iov;
	int iovcnt, i;		/* i == -1: still in the header */
	size_t off;
};

static void cursor_copy(struct frame_cursor *cur, uint8_t *dst, uint32_t len)
{
	const uint8_t *src;
	size_t seg, n;

	while (len) {
		if (cur->i < 0) {
			src = cur->hdr;
			seg = VRIO_FRAME_HDR_LEN;
		} else {
			src = cur->iov[cur->i].iov_base;
			seg = cur->iov[cur->i].iov_len;
		}
		n = seg - cur->off < len ? seg - cur->off : len;
		memcpy(dst, src + cur->off, n);
		dst += n;
		len -= (uint32_t)n;
		cur->off += n;
		if (cur->off == seg) {
			cur->i++;
			cur->off = 0;
		}
	}
}

static int dpdk_send(struct vrio_conn *vc, const struct vrio_frame *f, const struct iovec *iov,
		     int iovcnt)
{
	struct dpdk_conn *c = to_dc(vc);
	struct rte_mbuf *pkts[DPDK_BURST];
	uint8_t hdr[VRIO_FRAME_HDR_LEN];
	struct frame_cursor cur = { .hdr = hdr, .iov = iov, .iovcnt = iovcnt, .i = -1 };
	uint32_t total, nfrag, i, j, k, seq;
	struct dpdk_hdr h;
	size_t sum = 0;
	uint8_t *b;
	int n;

	if (c->closed)
		return -ECONNRESET;
	for (n = 0; n < iovcnt; n++)
		sum += iov[n].iov_len;
	if (sum != f->len || f->len > VRIO_FRAME_MAX_PAYLOAD)
		return -EINVAL;
	total = VRIO_FRAME_HDR_LEN + f->len;
	nfrag = dpdk_frag_count(total, c->frag_max);
	if (rte_ring_free_count(c->tx) < nfrag)
		return -ENOBUFS;
	vrio_frame_encode(f, hdr);
	seq = c->tx_seq;
	for (i = 0; i < nfrag; i += k) {
		k = nfrag - i < DPDK_BURST ? nfrag - i : DPDK_BURST;
		if (rte_pktmbuf_alloc_bulk(c->port->pool, pkts, k) != 0) {
			if (i == 0)
				return -ENOBUFS;
			/* The frame's head is queued: the rest is lost like any
			 * packet, and the reliable layer sends the frame again. */
			break;
		}
		for (j = 0; j < k; j++) {
			dpdk_frag_hdr(c->id, seq, total, c->frag_max, i + j, &h);
			b = (uint8_t *)rte_pktmbuf_append(pkts[j], DPDK_HDRS + h.len);
			memcpy(b, &c->eth, RTE_ETHER_HDR_LEN);
			dpdk_hdr_encode(&h, b + RTE_ETHER_HDR_LEN);
			cursor_copy(&cur, b + DPDK_HDRS, h.len);
		}
		rte_ring_sp_enqueue_bulk(c->tx, (void **)pkts, k, NULL);
	}
	c->tx_seq++;
	c->active_ns = vrio_now_ns();
	c->base.stats.frames_tx++;
	c->base.stats.bytes_tx += total;
	return 0;
}

static int dpdk_flush(struct vrio_conn *vc)
{
	struct dpdk_conn *c = to_dc(vc);
	struct dpdk_port *p = c->port;

	if (c->closed)
		return -ECONNRESET;
	if (port_trylock(p)) {
		port_tx(p);
		port_unlock(p);
	}
	return rte_ring_count(c->tx) ? 1 : 0;
}

static int dpdk_pending(struct vrio_conn *vc)
{
	return rte_ring_count(to_dc(vc)->tx) != 0;
}

/* Nothing can wake an owner that sleeps: while packets flow, it polls on. */
static int dpdk_timeout_ms(struct vrio_conn *vc)
{
	return vrio_now_ns() - to_dc(vc)->active_ns < DPDK_LINGER_NS ? 0 : -1;
}

static struct rte_mbuf *next_pkt(struct dpdk_conn *c)
{
	if (c->rxq_head == c->rxq_n) {
		c->rxq_head = 0;
		c->rxq_n = rte_ring_sc_dequeue_burst(c->rx, (void **)c->rxq, DPDK_BURST, NULL);
		if (!c->rxq_n)
			return NULL;
	}
	return c->rxq[c->rxq_head++];
}

/* One packet: 1 if it completed a frame the callback took, 0 if not, or
 * the callback's error, -ECONNRESET (FIN) or -EBADMSG (a bad frame). */
static int consume(struct dpdk_conn *c, struct rte_mbuf *m, vrio_recv_cb cb, void *arg)
{
	uint8_t tmp[DPDK_HDRS];
	const uint8_t *data, *frame;
	struct vrio_frame f;
	struct dpdk_hdr h;
	int rc = 0;

	if (!pkt_hdrs(m, tmp, &h))
		goto out;
	switch (h.type) {
	case DPDK_FIN:
		c->closed = true;
		rc = -ECONNRESET;
		goto out;
	case DPDK_DATA:
		break;
	default:
		goto out;	/* a repeated SYN-ACK */
	}
	data = rte_pktmbuf_read(m, DPDK_HDRS, h.len, c->scratch);
	if (!data || dpdk_reasm_push(&c->reasm, &h, data, &frame, &c->base.stats.reasm_drops) <= 0)
		goto out;
	rc = vrio_frame_decode(frame, &f);
	if (rc == 0 && f.len != h.total - VRIO_FRAME_HDR_LEN)
		rc = -EBADMSG;
	if (rc < 0) {
		VRIO_ERR_RL("dpdk %s: frame %u is not a vrio frame", c->base.name, h.seq);
		goto out;
	}
	c->base.stats.frames_rx++;
	c->base.stats.bytes_rx += h.total;
	rc = cb(arg, &c->base, &f, frame + VRIO_FRAME_HDR_LEN);
	if (rc >= 0)
		rc = 1;
out:
	rte_pktmbuf_free(m);
	return rc;
}

static int dpdk_poll(struct vrio_conn *vc, vrio_recv_cb cb, void *arg, unsigned budget)
{
	struct dpdk_conn *c = to_dc(vc);
	struct rte_mbuf *m;
	unsigned done = 0;
	int rc;

	if (c->closed)
		return -ECONNRESET;
	port_turn(c->port);
	while (done < budget && (m = next_pkt(c))) {
		rc = consume(c, m, cb, arg);
		if (rc == -ECONNRESET && done)
			break;	/* said on the next call */
		if (rc < 0)
			return rc;
		done += (unsigned)rc;
	}
	if (done)
		c->active_ns = vrio_now_ns();
	return (int)done;
}

static void dpdk_close(struct vrio_conn *vc)
{
	struct rte_mbuf *pkts[DPDK_BURST];
	struct dpdk_conn *c;
	struct dpdk_port *p;
	unsigned n;

	if (!vc)
		return;
	c = to_dc(vc);
	p = c->port;
	port_lock(p);
	table_remove(p, c);
	/* What the owner queued goes first, then the FIN. */
	while ((n = rte_ring_sc_dequeue_burst(c->tx, (void **)pkts, DPDK_BURST, NULL)))
		port_send(p, pkts, n);
	if (!c->closed)
		ctl_send(p, &c->local, &c->peer, DPDK_FIN, c->id);
	port_tx(p);
	port_unlock(p);
	conn_free(c);
}

static void dpdk_listener_close(struct vrio_listener *vl)
{
	struct dpdk_listener *l;

	if (!vl)
		return;
	l = to_dl(vl);
	port_lock(l->port);
	l->port->listener = NULL;
	port_unlock(l->port);
	ring_free(l->syns);
	free(l);
}

static int port_resolve(const char *spec, uint16_t *id)
{
	char *end;
	unsigned long v;

	v = strtoul(spec, &end, 10);
	if (*spec >= '0' && *spec <= '9' && !*end) {
		if (v >= RTE_MAX_ETHPORTS || !rte_eth_dev_is_valid_port((uint16_t)v))
			return -ENODEV;
		*id = (uint16_t)v;
		return 0;
	}
	return rte_eth_dev_get_port_by_name(spec, id) == 0 ? 0 : -ENODEV;
}

static void port_close(struct dpdk_port *p, bool started)
{
	int rc;

	if (started) {
		rc = rte_eth_dev_stop(p->id);
		if (rc < 0)
			VRIO_WARN("dpdk: port %s: stop: %s", p->name, strerror(-rc));
	}
	rte_eth_dev_close(p->id);
	while (p->nbacklog)
		rte_pktmbuf_free(p->backlog[--p->nbacklog]);
	rte_mempool_free(p->pool);
	p->pool = NULL;
}

/*
 * rte_pktmbuf_pool_create(), but without hugepages the mbufs are packed
 * end to end: the default keeps each inside a 4 KiB page and leaves a hole
 * at the end of every page, while af_xdp registers the pool as a umem of
 * (mbufs x mbuf size) bytes from its start, so the last third of the mbufs
 * would lie outside it and every packet in one would be lost. With
 * hugepages the layout is kept, for devices that DMA into the mbufs.
 */
static struct rte_mempool *pool_create(const char *name, int socket)
{
	struct rte_pktmbuf_pool_private priv = {
		.mbuf_data_room_size = RTE_MBUF_DEFAULT_BUF_SIZE,
	};
	unsigned flags = rte_eal_has_hugepages() ? 0 : RTE_MEMPOOL_F_NO_IOVA_CONTIG;
	struct rte_mempool *mp;
	int rc;

	mp = rte_mempool_create_empty(name, DPDK_POOL,
				      sizeof(struct rte_mbuf) + RTE_MBUF_DEFAULT_BUF_SIZE,
				      DPDK_POOL_CACHE, sizeof(priv), socket, flags);
	if (!mp)
		return NULL;
	rc = rte_mempool_set_ops_byname(mp, rte_mbuf_best_mempool_ops(), NULL);
	if (rc == 0) {
		rte_pktmbuf_pool_init(mp, &priv);
		rc = rte_mempool_populate_default(mp);
	}
	if (rc < 0) {
		rte_errno = -rc;
		rte_mempool_free(mp);
		return NULL;
	}
	rte_mempool_obj_iter(mp, rte_pktmbuf_init, NULL);
	return mp;
}

static int port_open(struct dpdk_port *p, const char *spec)
{
	char mac[RTE_ETHER_ADDR_FMT_SIZE], pool[RTE_MEMPOOL_NAMESIZE];
	struct rte_eth_conf conf;
	uint16_t nrx = DPDK_DESC, ntx = DPDK_DESC, mtu;
	uint32_t room;
	bool started = false;
	int socket, rc;
	const char *what;

	memset(p, 0, sizeof(*p));
	snprintf(p->spec, sizeof(p->spec), "%s", spec);
	if (port_resolve(spec, &p->id) < 0) {
		VRIO_ERR("dpdk: no port %s (the EAL has %u; dpdk.eal adds them, like --vdev=net_memif0,...)",
			 spec, rte_eth_dev_count_avail());
		return -ENODEV;
	}
	rte_eth_dev_get_name_by_port(p->id, p->name);
	socket = rte_eth_dev_socket_id(p->id);
	snprintf(pool, sizeof(pool), "vrio_dpdk%u", p->id);
	p->pool = pool_create(pool, socket);
	if (!p->pool) {
		VRIO_ERR("dpdk: port %s: no memory for %u packet buffers: %s (raise -m in dpdk.eal)",
			 p->name, DPDK_POOL, rte_strerror(rte_errno));
		return -ENOMEM;
	}
	memset(&conf, 0, sizeof(conf));
	what = "configure";
	rc = rte_eth_dev_configure(p->id, 1, 1, &conf);
	if (rc == 0)
		rc = rte_eth_dev_adjust_nb_rx_tx_desc(p->id, &nrx, &ntx);
	if (rc == 0) {
		what = "set up its queues";
		rc = rte_eth_rx_queue_setup(p->id, 0, nrx, socket, NULL, p->pool);
	}
	if (rc == 0)
		rc = rte_eth_tx_queue_setup(p->id, 0, ntx, socket, NULL);
	if (rc == 0) {
		what = "start";
		rc = rte_eth_dev_start(p->id);
		started = rc == 0;
	}
	if (rc == 0) {
		what = "read its MTU and MAC";
		rc = rte_eth_dev_get_mtu(p->id, &mtu);
	}
	if (rc == 0)
		rc = rte_eth_macaddr_get(p->id, &p->mac);
	if (rc < 0) {
		VRIO_ERR("dpdk: port %s: cannot %s: %s", p->name, what, strerror(-rc));
		goto err;
	}
	rc = rte_eth_promiscuous_enable(p->id);
	p->promisc = rc == 0;
	if (rc < 0)
		VRIO_INFO("dpdk: port %s: no promiscuous mode: %s", p->name, strerror(-rc));
	room = rte_pktmbuf_data_room_size(p->pool) - RTE_PKTMBUF_HEADROOM - RTE_ETHER_HDR_LEN;
	p->mtu = mtu < room ? mtu : room;
	if (p->mtu < DPDK_MTU_MIN) {
		VRIO_ERR("dpdk: port %s: MTU %u is below the %u vrio needs", p->name, p->mtu,
			 DPDK_MTU_MIN);
		rc = -EINVAL;
		goto err;
	}
	rte_ether_format_addr(mac, sizeof(mac), &p->mac);
	VRIO_NOTICE("dpdk: port %u (%s) is up: MAC %s, MTU %u", p->id, p->name, mac, p->mtu);
	return 0;
err:
	port_close(p, started);
	return rc;
}

static int dpdk_setup(const struct vrio_transport_node *self)
{
	const struct vrio_topo_dpdk *local = self->dpdk;
	const char *spec = local && local->port ? local->port : "0";
	struct dpdk_port *p = &g_port;
	int rc;

	/* A no-op once the EAL is up (local-hv starts it for rte_vhost). */
	rc = vrio_dpdk_eal_init(self->prog, self->name, local, self->verbose);
	if (rc < 0)
		return rc;
	pthread_mutex_lock(&g_setup);
	if (p->refs && strcmp(p->spec, spec) != 0) {
		VRIO_ERR("dpdk: port %s is in use; one port per process, cannot also open %s",
			 p->spec, spec);
		rc = -EBUSY;
	} else if (!p->refs) {
		rc = port_open(p, spec);
	}
	if (rc == 0)
		__atomic_store_n(&p->refs, p->refs + 1, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&g_setup);
	return rc;
}

static void dpdk_teardown(void)
{
	struct dpdk_port *p = &g_port;
	struct rte_eth_stats st;

	pthread_mutex_lock(&g_setup);
	if (p->refs)
		__atomic_store_n(&p->refs, p->refs - 1, __ATOMIC_RELEASE);
	if (!p->refs && p->pool) {
		if (p->nconns || p->listener)
			VRIO_ERR("dpdk: port %s: closing with %u connections open", p->name,
				 p->nconns);
		if (rte_eth_stats_get(p->id, &st) != 0)
			memset(&st, 0, sizeof(st));
		VRIO_INFO("dpdk: port %s: device sent %llu packets (%llu errors), received %llu (%llu missed, %llu errors, %llu without buffers)",
			  p->name, (unsigned long long)st.opackets, (unsigned long long)st.oerrors,
			  (unsigned long long)st.ipackets, (unsigned long long)st.imissed,
			  (unsigned long long)st.ierrors, (unsigned long long)st.rx_nombuf);
		VRIO_INFO("dpdk: port %s: received %llu foreign, %llu malformed, %llu stray packets, %llu for full rings; dropped %llu to send",
			  p->name, (unsigned long long)p->rx_other, (unsigned long long)p->rx_bad,
			  (unsigned long long)p->rx_stray, (unsigned long long)p->rx_full,
			  (unsigned long long)p->tx_drops);
		port_close(p, true);
	}
	pthread_mutex_unlock(&g_setup);
}

const struct vrio_transport_ops vrio_dpdk_transport = {
	.name = "dpdk",
	.unreliable = true,
	.listen = dpdk_listen,
	.accept = dpdk_accept,
	.connect = dpdk_connect,
	.send = dpdk_send,
	.flush = dpdk_flush,
	.poll = dpdk_poll,
	.close = dpdk_close,
	.listener_close = dpdk_listener_close,
	.pending = dpdk_pending,
	.timeout_ms = dpdk_timeout_ms,
	.setup = dpdk_setup,
	.teardown = dpdk_teardown,
};

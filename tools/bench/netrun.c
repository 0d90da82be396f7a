// SPDX-License-Identifier: BSD-3-Clause
/*
 * The net load: two virtio-net devices, A and B, on one switch (vrio's
 * io-server, or any vhost-user-net backend that forwards between them).
 *
 *   stream  A sends frames to B as fast as its ring allows; B counts them,
 *           checks their sequence and contents. Packets per second, bytes,
 *           loss.
 *   rr      request/response: A sends, B answers each frame at once, A
 *           times the round trip; iodepth transactions in flight.
 *
 * Both start with a broadcast hello from each side, so that a learning
 * switch knows both addresses before the measurement.
 *
 * With several queue pairs the frames are IPv4/UDP, one flow per port
 * pair, so that a device that spreads its receive queues by flow can: a
 * frame of flow f goes out on pair f mod pairs, and B checks the order of
 * each flow, not across flows (those may arrive on different queues).
 *
 * stream with gso_mss: each of A's packets is one TCP/IPv4 GSO packet of
 * GSO_SEGS + 1/2 segments (its checksum partial, as Linux leaves it), and
 * B, which negotiated no offload, must get it as wire-sized segments: each
 * checked for its lengths, its IPv4 and TCP checksums (computed here, over
 * the pseudo-header), its sequence number and bytes, and PSH on the
 * packet's last segment only; anything else counts as bad. With ecn, A's
 * packets have CWR and the ECN bit (HOST_ECN negotiated), and B wants CWR
 * on each packet's first segment and on no other.
 */
#include <endian.h>
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "bench.h"
#include "netdrv.h"
#include "netrun.h"

#define NET_ETHERTYPE 0x88b6	/* IEEE local experimental 2 */
#define NET_MAGIC 0x31424e56u	/* "VNB1" */
#define SPIN_NS 50000ull
#define WAIT_MAX_MS 10
#define HELLO_TIMEOUT_NS (5ull * 1000000000ull)
#define DRAIN_NS (200ull * 1000000ull)
#define STREAM_SLACK 8u	/* of B's buffers, outside a stream's window */
#define GSO_SEGS 20u		/* whole segments in a GSO packet, then half of one */
#define GSO_HDRS 54u		/* Ethernet, IPv4 and TCP headers */
#define TCP_PSH 0x08u
#define TCP_ACK 0x10u
#define TCP_CWR 0x80u
#define GSO_ECN 0x80u	/* VIRTIO_NET_HDR_GSO_ECN */
#define ETH_HLEN 14u
#define IPUDP_LEN 28u		/* IPv4 without options, UDP */
#define FLOWS_PER_PAIR 4u
#define MAX_FLOWS (NETDEV_MAX_PAIRS * FLOWS_PER_PAIR)

enum { K_DATA, K_REPLY, K_HELLO };

/* After the Ethernet header, and the IPv4/UDP one with several pairs. */
struct pkt {
	uint32_t magic;
	uint32_t seq;
	uint64_t t_ns;
	uint8_t kind;
} __attribute__((packed));

struct netrun {
	const struct netrun_opts *o;
	struct netrun_result *res;
	struct netdev a, b;
	uint8_t frame[NET_MAX_FRAME];
	uint8_t *gso_frame;		/* [NET_GSO_MAX_FRAME] */
	uint32_t gso_payload;		/* TCP payload bytes per GSO packet */
	uint32_t next_seq, expect_seq;
	uint32_t hdr;			/* bytes ahead of struct pkt */
	unsigned int flows;
	uint32_t last_seq[MAX_FLOWS];	/* per flow, + 1 (0: none yet) */
	uint64_t abandoned;		/* several pairs: frames given up on */
	bool hello_a, hello_b;
	bool fatal;
	/* rr: the transactions in flight, by seq % iodepth. */
	uint64_t *sent_ns;
	uint32_t *slot_seq;
	uint64_t t_end;
};

static const uint8_t bcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };

static uint8_t fill_byte(uint32_t seq, uint32_t i)
{
	return (uint8_t)(seq * 31u + i * 7u);
}

static void put16(uint8_t *p, unsigned int v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static unsigned int flow_of(const struct netrun *r, uint32_t seq)
{
	return r->flows > 1 ? seq % r->flows : 0;
}

/* The transmit pair of frame seq. */
static unsigned int pair_of(const struct netrun *r, uint32_t seq)
{
	return flow_of(r, seq) % (r->o->pairs ? r->o->pairs : 1);
}

static uint32_t build(struct netrun *r, const uint8_t *dst, const uint8_t *src, uint8_t kind,
		      uint32_t seq, uint64_t t)
{
	struct pkt *p = (struct pkt *)(r->frame + r->hdr);
	uint32_t len = r->o->frame_size;
	uint8_t *ip = r->frame + ETH_HLEN;

	memcpy(r->frame, dst, 6);
	memcpy(r->frame + 6, src, 6);
	if (r->hdr == ETH_HLEN) {
		put16(r->frame + 12, NET_ETHERTYPE);
	} else {
		unsigned int f = flow_of(r, seq);

		put16(r->frame + 12, 0x0800);
		memset(ip, 0, IPUDP_LEN);
		ip[0] = 0x45;
		put16(ip + 2, len - ETH_HLEN);
		ip[8] = 64;
		ip[9] = 17;
		memcpy(ip + 12, (uint8_t[4]){ 10, 0, 0, kind == K_REPLY ? 2 : 1 }, 4);
		memcpy(ip + 16, (uint8_t[4]){ 10, 0, 0, kind == K_REPLY ? 1 : 2 }, 4);
		put16(ip + 20, 10000 + f);
		put16(ip + 22, 20000 + f);
		put16(ip + 24, len - ETH_HLEN - 20);
	}
	p->magic = htole32(NET_MAGIC);
	p->seq = htole32(seq);
	p->t_ns = htole64(t);
	p->kind = kind;
	for (uint32_t i = r->hdr + sizeof(*p); i < len; i++)
		r->frame[i] = fill_byte(seq, i);
	return len;
}

/* 0 and the packet, or -EBADMSG for a frame that is not ours or damaged. */
static int parse(struct netrun *r, const uint8_t *f, uint32_t len, struct pkt *out)
{
	if (len < r->hdr + sizeof(*out))
		return -EBADMSG;
	memcpy(out, f + r->hdr, sizeof(*out));
	if ((unsigned int)(f[12] << 8 | f[13]) != (r->hdr == ETH_HLEN ? NET_ETHERTYPE : 0x0800) ||
	    le32toh(out->magic) != NET_MAGIC)
		return -EBADMSG;
	out->seq = le32toh(out->seq);
	out->t_ns = le64toh(out->t_ns);
	if (out->kind == K_HELLO)
		return 0;
	if (len != r->o->frame_size)
		return -EBADMSG;
	/* Its ports name its flow. */
	if (r->hdr != ETH_HLEN &&
	    (unsigned int)(f[ETH_HLEN + 20] << 8 | f[ETH_HLEN + 21]) != 10000 + flow_of(r, out->seq))
		return -EBADMSG;
	for (uint32_t i = r->hdr + sizeof(*out); i < len; i++)
		if (f[i] != fill_byte(out->seq, i))
			return -EBADMSG;
	return 0;
}

/* ---- gso: TCP/IPv4 packets from A, wire segments at B ---- */

static uint8_t tcp_byte(uint32_t off)
{
	return (uint8_t)(off * 7u + (off >> 11));
}

static uint32_t sum16(uint32_t sum, const uint8_t *p, uint32_t n)
{
	for (uint32_t i = 0; i + 1 < n; i += 2)
		sum += (uint32_t)p[i] << 8 | p[i + 1];
	if (n & 1)
		sum += (uint32_t)p[n - 1] << 8;
	return sum;
}

static uint16_t fold16(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)sum;
}

static uint32_t pseudo_sum(const uint8_t *ip, uint32_t tcp_len)
{
	uint8_t ph[12];

	memcpy(ph, ip + 12, 8);
	ph[8] = 0;
	ph[9] = 6;
	ph[10] = (uint8_t)(tcp_len >> 8);
	ph[11] = (uint8_t)tcp_len;
	return sum16(0, ph, sizeof(ph));
}

/* Packet seq: stream bytes [seq * payload, +payload), A's ports to B's. */
static bool send_gso(struct netrun *r, uint32_t seq)
{
	uint8_t *f = r->gso_frame, *ip = f + 14, *th = f + 34;
	uint32_t p = r->gso_payload, off = seq * p, tcp_len = 20 + p;
	struct {
		uint8_t flags, gso_type;
		uint16_t hdr_len, gso_size, csum_start, csum_offset, num_buffers;
	} __attribute__((packed)) h = {
		.flags = 1,			/* NEEDS_CSUM */
		.gso_type = 1,			/* TCPV4 */
		.hdr_len = htole16(GSO_HDRS),
		.gso_size = htole16((uint16_t)r->o->gso_mss),
		.csum_start = htole16(34),
		.csum_offset = htole16(16),
	};
	int ret;

	memcpy(f, r->o->mac_b, 6);
	memcpy(f + 6, r->o->mac_a, 6);
	f[12] = 0x08;
	f[13] = 0;
	memset(ip, 0, 40);
	ip[0] = 0x45;
	ip[2] = (uint8_t)((20 + tcp_len) >> 8);
	ip[3] = (uint8_t)(20 + tcp_len);
	ip[4] = (uint8_t)(seq >> 8);
	ip[5] = (uint8_t)seq;
	ip[6] = 0x40;
	ip[8] = 64;
	ip[9] = 6;
	memcpy(ip + 12, "\x0a\x00\x00\x01\x0a\x00\x00\x02", 8);
	ip[10] = 0;
	ip[11] = 0;
	ret = (uint16_t)~fold16(sum16(0, ip, 20));
	ip[10] = (uint8_t)(ret >> 8);
	ip[11] = (uint8_t)ret;
	memcpy(th, "\x9c\x40\x13\x89", 4);
	th[4] = (uint8_t)(off >> 24);
	th[5] = (uint8_t)(off >> 16);
	th[6] = (uint8_t)(off >> 8);
	th[7] = (uint8_t)off;
	th[12] = 5 << 4;
	th[13] = TCP_ACK | TCP_PSH;
	if (r->o->ecn) {
		th[13] |= TCP_CWR;
		h.gso_type |= GSO_ECN;
	}
	th[14] = 0xff;
	th[15] = 0xff;
	/* The partial checksum: the pseudo-header's sum, not complemented. */
	ret = fold16(pseudo_sum(ip, tcp_len));
	th[16] = (uint8_t)(ret >> 8);
	th[17] = (uint8_t)ret;
	for (uint32_t i = 0; i < p; i++)
		f[GSO_HDRS + i] = tcp_byte(off + i);
	if (netdev_reap_tx(&r->a) < 0) {
		r->fatal = true;
		return false;
	}
	ret = netdev_send_hdr(&r->a, 0, &h, f, GSO_HDRS + p);
	if (ret == -ENOSPC)
		return false;
	if (ret < 0) {
		r->fatal = true;
		return false;
	}
	return true;
}

/* A frame at B in gso mode: one wire segment, checked; 0, or -EBADMSG. */
static int check_segment(struct netrun *r, const uint8_t *f, uint32_t len)
{
	const uint8_t *ip = f + 14, *th = f + 34;
	uint32_t data = len - GSO_HDRS, off, end, pkt;
	bool last, first;

	if (len < GSO_HDRS || len > GSO_HDRS + r->o->gso_mss || f[12] != 0x08 || f[13] != 0 ||
	    ip[0] != 0x45 || ip[9] != 6 || ((uint32_t)ip[2] << 8 | ip[3]) != len - 14 ||
	    (th[12] >> 4) != 5 || data == 0)
		return -EBADMSG;
	if (fold16(sum16(0, ip, 20)) != 0xffff ||
	    fold16(sum16(pseudo_sum(ip, len - 34), th, len - 34)) != 0xffff)
		return -EBADMSG;
	off = (uint32_t)th[4] << 24 | (uint32_t)th[5] << 16 | (uint32_t)th[6] << 8 | th[7];
	pkt = off / r->gso_payload;
	end = off - pkt * r->gso_payload + data;
	last = end == r->gso_payload;
	first = end == data;
	if (end > r->gso_payload || (data != r->o->gso_mss && !last) ||
	    !!(th[13] & TCP_PSH) != last || !(th[13] & TCP_ACK) ||
	    !!(th[13] & TCP_CWR) != (r->o->ecn && first))
		return -EBADMSG;
	for (uint32_t i = 0; i < data; i++)
		if (f[GSO_HDRS + i] != tcp_byte(off + i))
			return -EBADMSG;
	r->res->segments++;
	r->res->bytes += len;
	if (last) {
		r->res->received++;
		if (pkt >= r->expect_seq)
			r->expect_seq = pkt + 1;
		else
			r->res->reordered++;
	}
	return 0;
}

static bool send_one(struct netrun *r, struct netdev *d, const uint8_t *dst, const uint8_t *src,
		     uint8_t kind, uint32_t seq, uint64_t t)
{
	uint32_t len = build(r, dst, src, kind, seq, t);
	int ret;

	if (netdev_reap_tx(d) < 0) {
		r->fatal = true;
		return false;
	}
	ret = netdev_send(d, pair_of(r, seq), r->frame, len);
	if (ret == -ENOSPC)
		return false;
	if (ret < 0) {
		r->fatal = true;
		return false;
	}
	if (d == &r->a && kind == K_DATA)
		r->res->tx_pair[pair_of(r, seq)]++;
	return true;
}

/* Waits for a completion on either device, or a short while. */
static void wait_work(struct netrun *r, uint64_t since)
{
	struct netdev *devs[2] = { &r->a, &r->b };
	struct pollfd pfd[2 * (2 * NETDEV_MAX_PAIRS + 1) + 2];
	bool pending = false;
	int n = 0, ret, base[2];

	/* Playing the vIOMMU: either backend may be waiting on a miss. */
	for (int i = 0; i < 2; i++) {
		if (devs[i]->v.iommu && vudev_serve_iotlb(&devs[i]->v) < 0) {
			bench_err("%s: the backend's IOTLB channel broke", devs[i]->name);
			r->fatal = true;
			return;
		}
	}
	if (r->o->poll || bench_now_ns() - since < SPIN_NS) {
		bench_cpu_relax();
		return;
	}
	for (int i = 0; i < 2; i++) {
		base[i] = n;
		for (unsigned int q = 0; q < devs[i]->v.nq; q++) {
			pending |= virtq_enable_cb(&devs[i]->v.vqs[q]);
			pfd[n++] = (struct pollfd){ .fd = devs[i]->v.vqs[q].call_fd, .events = POLLIN };
		}
		pfd[n++] = (struct pollfd){ .fd = devs[i]->v.vu.fd, .events = POLLIN };
	}
	pfd[n++] = (struct pollfd){ .fd = r->a.v.slave_fd, .events = POLLIN };
	pfd[n++] = (struct pollfd){ .fd = r->b.v.slave_fd, .events = POLLIN };
	if (!pending) {
		ret = poll(pfd, (nfds_t)n, WAIT_MAX_MS);
		if (ret < 0 && errno != EINTR)
			r->fatal = true;
		for (int i = 0; ret > 0 && i < 2; i++) {
			unsigned int nq = devs[i]->v.nq;

			for (unsigned int q = 0; q < nq; q++)
				if (pfd[base[i] + (int)q].revents & POLLIN)
					virtq_drain_call(&devs[i]->v.vqs[q]);
			if (pfd[base[i] + (int)nq].revents && vu_check_peer(&devs[i]->v.vu) != 0) {
				bench_err("%s: the backend went away", devs[i]->name);
				r->res->disconnected = true;
				r->fatal = true;
			}
		}
	}
	for (int i = 0; i < 2; i++)
		for (unsigned int q = 0; q < devs[i]->v.nq; q++)
			virtq_disable_cb(&devs[i]->v.vqs[q]);
}

static void rr_send(struct netrun *r, uint64_t now)
{
	unsigned int d = r->o->iodepth, k;
	uint32_t seq = r->next_seq;

	/* Transaction seq lives in slot seq % iodepth. Answers that come
	 * back out of order (several queues) free another slot than the
	 * next seq's: skip ahead to a seq whose slot is free. */
	for (k = 0; k < d && r->sent_ns[(seq + k) % d]; k++)
		;
	if (k == d)
		return;
	seq += k;
	if (!send_one(r, &r->a, r->o->mac_b, r->o->mac_a, K_DATA, seq, now))
		return;
	r->slot_seq[seq % d] = seq;
	r->sent_ns[seq % d] = now;
	r->next_seq = seq + 1;
	r->res->sent++;
}

static bool want_more(const struct netrun *r, uint64_t now)
{
	return !*r->o->stop && now < r->t_end && (!r->o->count || r->res->sent < r->o->count);
}

/* Everything device `d` received; B answers (rr) or counts (stream), A
 * completes transactions (rr). Returns the frames taken. */
static int receive(struct netrun *r, struct netdev *d, uint64_t now)
{
	unsigned int slot, pair;
	const uint8_t *f;
	uint32_t len;
	struct pkt p;
	int n = 0, ret;

	while ((ret = netdev_recv(d, &f, &len, &slot, &pair)) == 0) {
		n++;
		if (r->o->gso_mss && d == &r->b && len > 13 && f[12] == 0x08 && f[13] == 0) {
			if (check_segment(r, f, len) < 0)
				r->res->bad++;
		} else if (parse(r, f, len, &p) < 0) {
			r->res->bad++;
		} else if (p.kind == K_HELLO) {
			if (d == &r->a)
				r->hello_a = true;
			else
				r->hello_b = true;
		} else if (d == &r->b && p.kind == K_DATA) {
			r->res->bytes += len;
			if (r->o->mode == NET_RR) {
				/* The answer goes from B's buffer straight back. */
				netdev_rx_done(d, slot);
				send_one(r, &r->b, r->o->mac_a, r->o->mac_b, K_REPLY, p.seq, p.t_ns);
				continue;
			}
			r->res->received++;
			r->res->rx_pair[pair]++;
			if (r->flows > 1) {
				/* In order within its flow; flows may interleave. */
				unsigned int fl = flow_of(r, p.seq);

				if (r->last_seq[fl] && p.seq < r->last_seq[fl])
					r->res->reordered++;
				else
					r->last_seq[fl] = p.seq + 1;
				if (p.seq >= r->expect_seq)
					r->expect_seq = p.seq + 1;
			} else if (p.seq >= r->expect_seq) {
				r->expect_seq = p.seq + 1;
			} else {
				r->res->reordered++;
			}
		} else if (d == &r->a && p.kind == K_REPLY && r->o->mode == NET_RR) {
			unsigned int s = p.seq % r->o->iodepth;

			if (r->slot_seq[s] == p.seq && r->sent_ns[s]) {
				hist_add(&r->res->hist, now - r->sent_ns[s]);
				r->sent_ns[s] = 0;
				r->res->received++;
				if (want_more(r, now))
					rr_send(r, now);
			}
		} else {
			r->res->bad++;
		}
		netdev_rx_done(d, slot);
	}
	if (ret != -EAGAIN)
		r->fatal = true;
	return n;
}

/* rr: a transaction that waited past the timeout is lost; start another. */
static void rr_expire(struct netrun *r, uint64_t now)
{
	uint64_t limit = (uint64_t)r->o->timeout_ms * 1000000ull;

	for (unsigned int s = 0; s < r->o->iodepth; s++) {
		if (r->sent_ns[s] && now - r->sent_ns[s] > limit) {
			r->sent_ns[s] = 0;
			r->res->lost++;
			if (want_more(r, now))
				rr_send(r, now);
		}
	}
}

static bool rr_idle(const struct netrun *r)
{
	for (unsigned int s = 0; s < r->o->iodepth; s++)
		if (r->sent_ns[s])
			return false;
	return true;
}

static int kick_both(struct netrun *r)
{
	if (netdev_kick(&r->a) < 0 || netdev_kick(&r->b) < 0) {
		r->fatal = true;
		return -EIO;
	}
	return 0;
}

static int say_hello(struct netrun *r)
{
	uint64_t t0 = bench_now_ns(), last = t0, now;

	while (!r->fatal && (!r->hello_a || !r->hello_b)) {
		now = bench_now_ns();
		/* Resent every 100 ms: a switch may still be setting up. */
		if (now == t0 || now - last > 100000000ull) {
			send_one(r, &r->b, bcast, r->o->mac_b, K_HELLO, 0, 0);
			send_one(r, &r->a, bcast, r->o->mac_a, K_HELLO, 0, 0);
			last = now;
		}
		kick_both(r);
		if (receive(r, &r->a, now) + receive(r, &r->b, now) == 0)
			wait_work(r, last);
		if (now - t0 > HELLO_TIMEOUT_NS) {
			bench_err("no hello %s within 5 s: are both ports on one switch?",
				  !r->hello_a ? "from B at A" : "from A at B");
			return -ETIMEDOUT;
		}
		if (*r->o->stop)
			return -EINTR;
	}
	return r->fatal ? -EIO : 0;
}

/* Stream: frames sent and not yet seen at B. With several pairs, those
 * behind the newest seen may be on any queue: count them all, so that no
 * one receive queue can be sent more than it holds. */
static uint64_t in_flight(const struct netrun *r)
{
	if (r->flows > 1)
		return r->res->sent - r->res->received - r->abandoned;
	return r->next_seq - r->expect_seq;
}

static void run_loop(struct netrun *r)
{
	uint64_t now = bench_now_ns(), last_work = now, drain_until = 0;
	uint32_t window;
	int work;

	/* With gso, a packet takes GSO_SEGS + 1 of B's buffers. Without,
	 * a few buffers are kept for frames the window does not count: a
	 * hello resent while the other side's was on its way (every 100 ms)
	 * can reach B after the stream began. */
	if (r->o->gso_mss)
		window = r->o->queue_size / (GSO_SEGS + 1);
	else if (r->o->queue_size > 2 * STREAM_SLACK)
		window = r->o->queue_size - STREAM_SLACK;
	else
		window = r->o->queue_size / 2;

	r->t_end = r->o->runtime > 0 ? now + (uint64_t)(r->o->runtime * 1e9) : UINT64_MAX;
	if (r->o->mode == NET_RR)
		for (unsigned int i = 0; i < r->o->iodepth && want_more(r, now); i++)
			rr_send(r, now);
	while (!r->fatal) {
		now = bench_now_ns();
		work = 0;
		if (r->o->mode == NET_STREAM) {
			/* A window of B's ring: the rate B keeps up with, not how
			 * fast A can drop frames into a full receive queue. Frames
			 * after the last one B saw count as in flight. */
			while (want_more(r, now) && in_flight(r) < window &&
			       (r->o->gso_mss ? send_gso(r, r->next_seq)
					      : send_one(r, &r->a, r->o->mac_b, r->o->mac_a, K_DATA,
							 r->next_seq, now))) {
				r->next_seq++;
				r->res->sent++;
				work++;
			}
			/* A tail that never arrives: give up on it after the timeout. */
			if (work == 0 && in_flight(r) &&
			    now - last_work > (uint64_t)r->o->timeout_ms * 1000000ull) {
				r->expect_seq = r->next_seq;
				r->abandoned = r->res->sent - r->res->received;
			}
		}
		kick_both(r);
		work += receive(r, &r->b, now);
		work += receive(r, &r->a, now);
		if (r->o->mode == NET_RR)
			rr_expire(r, now);
		kick_both(r);
		if (!want_more(r, now)) {
			bool idle = r->o->mode == NET_RR ? rr_idle(r)
							 : r->res->received >= r->res->sent;
			if (!drain_until)
				drain_until = now + DRAIN_NS;
			if (idle || now > drain_until || *r->o->stop)
				break;
		}
		if (work)
			last_work = now;
		else
			wait_work(r, last_work);
	}
	if (r->o->mode == NET_STREAM)
		r->res->lost = r->res->sent - r->res->received;
	else
		for (unsigned int s = 0; s < r->o->iodepth; s++)
			r->res->lost += r->sent_ns[s] != 0;
}

void netrun_opts_init(struct netrun_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->mode = NET_STREAM;
	o->frame_size = 64;
	o->iodepth = 1;
	o->queue_size = 256;
	o->timeout_ms = 1000;
	memcpy(o->mac_a, (uint8_t[6]){ 0x52, 0x54, 0x00, 0x00, 0x00, 0x01 }, 6);
	memcpy(o->mac_b, (uint8_t[6]){ 0x52, 0x54, 0x00, 0x00, 0x00, 0x02 }, 6);
}

static double tv_seconds(const struct timeval *tv)
{
	return (double)tv->tv_sec + (double)tv->tv_usec / 1e6;
}

int netrun_bench(const struct netrun_opts *o, struct netrun_result *res)
{
	struct netdev_opts da = { .socket = o->sock_a, .timeout_ms = 5000, .quiet = o->quiet,
				  .no_event_idx = o->no_event_idx, .iommu = o->iommu,
				  .pairs = o->pairs ? o->pairs : 1 };
	uint32_t hdr = da.pairs > 1 ? ETH_HLEN + IPUDP_LEN : ETH_HLEN;
	struct netdev_opts db = da;
	struct rusage ru0, ru1;
	struct netrun *r;
	uint64_t t0;
	int ret;

	da.tso = o->gso_mss != 0;
	da.ecn = o->ecn;
	memset(res, 0, sizeof(*res));
	hist_init(&res->hist);
	res->pairs = da.pairs;
	if (o->frame_size < hdr + sizeof(struct pkt) || o->frame_size > NET_MAX_FRAME ||
	    !o->iodepth || da.pairs > NETDEV_MAX_PAIRS ||
	    (o->gso_mss && (o->mode != NET_STREAM || o->gso_mss < 64 || o->gso_mss > 1460 ||
			    o->queue_size < GSO_SEGS + 1 || da.pairs > 1)) || (o->ecn && !o->gso_mss))
		return -EINVAL;
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->o = o;
	r->res = res;
	r->hdr = hdr;
	r->flows = da.pairs > 1 ? da.pairs * FLOWS_PER_PAIR : 1;
	if (o->gso_mss) {
		r->gso_payload = o->gso_mss * GSO_SEGS + o->gso_mss / 2;
		r->gso_frame = malloc(NET_GSO_MAX_FRAME);
		if (!r->gso_frame) {
			free(r);
			return -ENOMEM;
		}
	}
	r->a.v.mem.fd = r->b.v.mem.fd = -1;
	r->sent_ns = calloc(o->iodepth, sizeof(*r->sent_ns));
	r->slot_seq = calloc(o->iodepth, sizeof(*r->slot_seq));
	db.socket = o->sock_b;
	ret = !r->sent_ns || !r->slot_seq ? -ENOMEM : netdev_connect(&r->a, &da);
	if (ret == 0) {
		ret = netdev_connect(&r->b, &db);
		/* A frame lost to a miss is lost for good (rte_vhost drops it):
		 * map receive buffers 2 MiB at a time, as a VMM with huge
		 * pages would, so that only the first few are. */
		r->a.v.iotlb_granule = r->b.v.iotlb_granule = 2ull << 20;
		if (ret == 0)
			ret = netdev_start(&r->a, (uint16_t)o->queue_size);
		if (ret == 0)
			ret = netdev_start(&r->b, (uint16_t)o->queue_size);
		if (ret == 0)
			ret = say_hello(r);
		if (ret == 0) {
			getrusage(RUSAGE_SELF, &ru0);
			t0 = bench_now_ns();
			run_loop(r);
			res->elapsed_s = (double)(bench_now_ns() - t0) / 1e9;
			getrusage(RUSAGE_SELF, &ru1);
			res->cpu_user_s = tv_seconds(&ru1.ru_utime) - tv_seconds(&ru0.ru_utime);
			res->cpu_sys_s = tv_seconds(&ru1.ru_stime) - tv_seconds(&ru0.ru_stime);
			res->failed = r->fatal;
		}
		netdev_close(&r->b);
		netdev_close(&r->a);
	}
	res->interrupted = *o->stop != 0;
	free(r->sent_ns);
	free(r->slot_seq);
	free(r->gso_frame);
	free(r);
	return ret;
}

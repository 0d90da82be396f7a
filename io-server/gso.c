/* SPDX-License-Identifier: BSD-3-Clause */
/* Software checksums and TCP segmentation (gso.h). */
#include <endian.h>
#include <errno.h>
#include <string.h>

#include "gso.h"

#define ETH_P_IPV4	0x0800u
#define ETH_P_IPV6	0x86ddu
#define ETH_P_VLAN	0x8100u
#define PROTO_TCP	6u
#define TCP_FIN		0x01u
#define TCP_PSH		0x08u
#define TCP_CWR		0x80u

static uint32_t be16(const uint8_t *p)
{
	return (uint32_t)p[0] << 8 | p[1];
}

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put16(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

uint32_t ios_csum_add(uint32_t sum, const uint8_t *p, size_t n)
{
	uint64_t s = sum;

	for (; n >= 2; p += 2, n -= 2)
		s += (uint32_t)p[0] << 8 | p[1];
	if (n)
		s += (uint32_t)p[0] << 8;
	while (s >> 32)
		s = (s & 0xffffffffu) + (s >> 32);
	return (uint32_t)s;
}

uint16_t ios_csum_fold(uint32_t sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)sum;
}

void ios_csum_complete(uint8_t *frame, uint32_t len, const struct vrio_pkt_wire *h)
{
	uint32_t start = le16toh(h->csum_start), at = start + le16toh(h->csum_offset);
	uint16_t sum = (uint16_t)~ios_csum_fold(ios_csum_add(0, frame + start, len - start));

	put16(frame + at, sum ? sum : 0xffff);
}

int ios_gso_plan(const uint8_t *frame, uint32_t len, const struct vrio_pkt_wire *h,
		 uint32_t max_seg, struct ios_gso_plan *pl)
{
	uint32_t gso = h->gso_type & ~VRIO_PKT_GSO_ECN, type, l3 = 14, l4, thl;

	if (len < l3 + 2 || !(h->flags & VRIO_PKT_F_NEEDS_CSUM))
		return -EINVAL;
	type = be16(frame + 12);
	if (type == ETH_P_VLAN) {
		l3 = 18;
		type = be16(frame + 16);
	}
	if (gso == VRIO_PKT_GSO_TCPV4) {
		if (type != ETH_P_IPV4 || len < l3 + 20 || (frame[l3] >> 4) != 4 ||
		    (frame[l3] & 15) < 5 || frame[l3 + 9] != PROTO_TCP)
			return -EINVAL;
		l4 = l3 + (frame[l3] & 15u) * 4;
	} else if (gso == VRIO_PKT_GSO_TCPV6) {
		if (type != ETH_P_IPV6 || len < l3 + 40 || (frame[l3] >> 4) != 6 ||
		    frame[l3 + 6] != PROTO_TCP)
			return -EINVAL;
		l4 = l3 + 40;
	} else {
		return -EINVAL;
	}
	if (le16toh(h->csum_start) != l4 || le16toh(h->csum_offset) != 16 || len < l4 + 20)
		return -EINVAL;
	thl = (frame[l4 + 12] >> 4) * 4u;
	if (thl < 20 || len < l4 + thl || le16toh(h->gso_size) == 0 ||
	    l4 + thl + le16toh(h->gso_size) > max_seg)
		return -EINVAL;
	pl->l3 = l3;
	pl->l4 = l4;
	pl->hdrs = l4 + thl;
	pl->mss = le16toh(h->gso_size);
	pl->payload = len - pl->hdrs;
	pl->nseg = pl->payload ? (pl->payload + pl->mss - 1) / pl->mss : 1;
	pl->v6 = gso == VRIO_PKT_GSO_TCPV6;
	return 0;
}

uint32_t ios_gso_seg_len(const struct ios_gso_plan *pl, uint32_t i)
{
	uint32_t off = i * pl->mss, left = pl->payload - off;

	return pl->hdrs + (left < pl->mss ? left : pl->mss);
}

void ios_gso_build(const uint8_t *frame, const struct ios_gso_plan *pl, uint32_t i, uint8_t *out)
{
	uint32_t seg = ios_gso_seg_len(pl, i), data = seg - pl->hdrs;
	uint32_t tcp_len = seg - pl->l4, sum;
	uint8_t *ip = out + pl->l3, *tcp = out + pl->l4, tail[4];

	memcpy(out, frame, pl->hdrs);
	memcpy(out + pl->hdrs, frame + pl->hdrs + i * pl->mss, data);
	if (pl->v6) {
		put16(ip + 4, tcp_len);
		sum = ios_csum_add(0, ip + 8, 32);	/* source and destination */
	} else {
		put16(ip + 2, seg - pl->l3);
		put16(ip + 4, be16(ip + 4) + i);	/* the id, as Linux's GSO counts */
		put16(ip + 10, 0);
		put16(ip + 10, (uint16_t)~ios_csum_fold(ios_csum_add(0, ip, pl->l4 - pl->l3)));
		sum = ios_csum_add(0, ip + 12, 8);
	}
	put32(tcp + 4, be32(tcp + 4) + i * pl->mss);
	if (i + 1 < pl->nseg)
		tcp[13] &= (uint8_t)~(TCP_FIN | TCP_PSH);
	if (i > 0)
		tcp[13] &= (uint8_t)~TCP_CWR;
	/* The pseudo-header's rest: protocol and TCP length (the same sum
	 * for IPv4's 16-bit and IPv6's 32-bit length, under 64 KiB). */
	put16(tail, PROTO_TCP);
	put16(tail + 2, tcp_len);
	sum = ios_csum_add(sum, tail, 4);
	put16(tcp + 16, 0);
	sum = ios_csum_add(sum, tcp, tcp_len);
	put16(tcp + 16, (uint16_t)~ios_csum_fold(sum));
}

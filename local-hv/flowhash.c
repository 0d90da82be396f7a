/* SPDX-License-Identifier: BSD-3-Clause */
#include <string.h>

#include "flowhash.h"

#define ETH_HLEN	14u
#define ET_IPV4		0x0800u
#define ET_IPV6		0x86ddu
#define ET_VLAN		0x8100u
#define ET_QINQ		0x88a8u
#define IPPROTO_TCP_	6u
#define IPPROTO_UDP_	17u
#define IPPROTO_SCTP_	132u

static inline uint16_t be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static inline uint32_t rd32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static inline uint32_t mix(uint32_t h, uint32_t w)
{
	w *= 0xcc9e2d51u;
	w = w << 15 | w >> 17;
	w *= 0x1b873593u;
	h ^= w;
	h = h << 13 | h >> 19;
	return h * 5u + 0xe6546b64u;
}

/* murmur3's finaliser: every input bit reaches the high bits, which
 * lhv_flow_queue() uses. */
static inline uint32_t fmix(uint32_t h)
{
	h ^= h >> 16;
	h *= 0x85ebca6bu;
	h ^= h >> 13;
	h *= 0xc2b2ae35u;
	return h ^ h >> 16;
}

static uint32_t hash_bytes(uint32_t h, const uint8_t *p, uint32_t n)
{
	for (; n >= 4; n -= 4, p += 4)
		h = mix(h, rd32(p));
	return n ? mix(h, (uint32_t)p[0] | (n > 1 ? (uint32_t)p[1] << 8 : 0) |
				 (n > 2 ? (uint32_t)p[2] << 16 : 0)) : h;
}

static int has_ports(unsigned proto)
{
	return proto == IPPROTO_TCP_ || proto == IPPROTO_UDP_ || proto == IPPROTO_SCTP_;
}

uint32_t lhv_flow_hash(const uint8_t *eth, uint32_t len)
{
	uint32_t off = ETH_HLEN, h = 0x7672696fu, l4 = 0;
	unsigned type, proto = 0, tags;

	if (len < ETH_HLEN)
		return fmix(hash_bytes(h, eth, len));
	type = be16(eth + 12);
	for (tags = 0; tags < 2 && (type == ET_VLAN || type == ET_QINQ) && off + 4 <= len; tags++) {
		type = be16(eth + off + 2);
		off += 4;
	}
	if (type == ET_IPV4 && off + 20 <= len && (eth[off] >> 4) == 4) {
		uint32_t ihl = (eth[off] & 0xfu) * 4u;
		unsigned frag = be16(eth + off + 6) & 0x3fffu;	/* MF and offset */

		if (ihl >= 20) {
			proto = eth[off + 9];
			h = mix(h, proto);
			h = hash_bytes(h, eth + off + 12, 8);
			if (!frag && has_ports(proto))
				l4 = off + ihl;
			goto ports;
		}
	} else if (type == ET_IPV6 && off + 40 <= len && (eth[off] >> 4) == 6) {
		/* Ports only right behind the fixed header: behind extension
		 * headers (a fragment's among them) the addresses alone. */
		proto = eth[off + 6];
		h = mix(h, proto);
		h = hash_bytes(h, eth + off + 8, 32);
		if (has_ports(proto))
			l4 = off + 40;
		goto ports;
	}
	h = mix(h, type);
	return fmix(hash_bytes(h, eth, 12));
ports:
	if (l4 && l4 + 4 <= len)
		h = mix(h, rd32(eth + l4));
	return fmix(h);
}

/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The acl classifier (acl.h): compiling rules, parsing a frame's headers
 * with every read bounded by its length, and the first match.
 */
#include <stdlib.h>
#include <string.h>

#include "acl.h"

#define ETH_HLEN	14u
#define VLAN_HLEN	4u
#define MAX_VLAN_TAGS	2u
#define IPV4_HLEN	20u
#define IPV6_HLEN	40u
#define MAX_IPV6_EXT	8u	/* extension headers walked before giving up */

#define ETH_P_IP_	0x0800
#define ETH_P_IPV6_	0x86dd

static uint16_t be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint64_t be64(const uint8_t *p)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

static uint64_t be32(const uint8_t *p)
{
	return (uint64_t)p[0] << 24 | (uint64_t)p[1] << 16 | (uint64_t)p[2] << 8 | p[3];
}

/* ---- compiling ---- */

/* The first `bits` bits set, of a 64-bit word. */
static uint64_t mask64(unsigned bits)
{
	return bits == 0 ? 0 : bits >= 64 ? ~0ull : ~0ull << (64 - bits);
}

static void prefix(const uint8_t addr[16], unsigned len, bool v6, uint64_t a[2], uint64_t m[2])
{
	if (v6) {
		m[0] = mask64(len > 64 ? 64 : len);
		m[1] = mask64(len > 64 ? len - 64 : 0);
		a[0] = be64(addr) & m[0];
		a[1] = be64(addr + 8) & m[1];
	} else {
		m[0] = 0;
		m[1] = mask64(len) >> 32;
		a[0] = 0;
		a[1] = be32(addr) & m[1];
	}
}

static void compile_rule(const struct vrio_topo_acl_rule *t, struct ios_acl_rule *r)
{
	memset(r, 0, sizeof(*r));
	r->dir = (uint8_t)((t->dir & VRIO_ACL_IN ? IOS_ACL_DIR_IN : 0) |
			   (t->dir & VRIO_ACL_OUT ? IOS_ACL_DIR_OUT : 0));
	r->allow = t->allow;
	r->ethertype = t->ethertype;
	r->proto = (int16_t)t->proto;
	r->has_src = t->has_src;
	r->has_dst = t->has_dst;
	if (t->has_src || t->has_dst)
		r->l3 = t->v6 ? IOS_ACL_L3_V6 : IOS_ACL_L3_V4;
	else if (t->proto >= 0)
		r->l3 = t->ethertype == ETH_P_IP_ ? IOS_ACL_L3_V4
			: t->ethertype == ETH_P_IPV6_ ? IOS_ACL_L3_V6 : IOS_ACL_L3_IP;
	else
		r->l3 = IOS_ACL_L3_ANY;
	if (t->has_src)
		prefix(t->src, t->src_len, t->v6, r->src, r->src_mask);
	if (t->has_dst)
		prefix(t->dst, t->dst_len, t->v6, r->dst, r->dst_mask);
	r->sport_lo = (uint16_t)t->sport_lo;
	r->sport_hi = (uint16_t)t->sport_hi;
	r->dport_lo = (uint16_t)t->dport_lo;
	r->dport_hi = (uint16_t)t->dport_hi;
	r->has_ports = t->sport_lo != 0 || t->sport_hi != 65535 || t->dport_lo != 0 ||
		       t->dport_hi != 65535;
}

static bool class_fits(const struct ios_acl_rule *r, unsigned cls)
{
	switch (r->l3) {
	case IOS_ACL_L3_IP:
		return cls != IOS_ACL_NOT_IP;
	case IOS_ACL_L3_V4:
		return cls == IOS_ACL_IPV4;
	case IOS_ACL_L3_V6:
		return cls == IOS_ACL_IPV6;
	default:
		return true;
	}
}

struct ios_acl *ios_acl_compile(const struct vrio_topo_acl *t)
{
	struct ios_acl *acl;
	uint16_t *idx;

	if (t->n_rules > IOS_ACL_MAX_RULES)
		return NULL;
	acl = calloc(1, sizeof(*acl) + t->n_rules * sizeof(acl->rules[0]) +
			       IOS_ACL_NR_CLASSES * 2 * t->n_rules * sizeof(uint16_t));
	if (!acl)
		return NULL;
	acl->default_allow = t->default_allow;
	acl->n = t->n_rules;
	for (unsigned i = 0; i < t->n_rules; i++)
		compile_rule(&t->rules[i], &acl->rules[i]);
	idx = (uint16_t *)&acl->rules[t->n_rules];
	for (unsigned cls = 0; cls < IOS_ACL_NR_CLASSES; cls++) {
		for (unsigned dir = 0; dir < 2; dir++) {
			acl->cand[cls][dir] = idx;
			for (unsigned i = 0; i < t->n_rules; i++) {
				if ((acl->rules[i].dir & (1u << dir)) &&
				    class_fits(&acl->rules[i], cls))
					acl->cand[cls][dir][acl->n_cand[cls][dir]++] = (uint16_t)i;
			}
			idx += acl->n_cand[cls][dir];
		}
	}
	return acl;
}

void ios_acl_free(struct ios_acl *acl)
{
	free(acl);
}

/* ---- parsing ---- */

static bool l4_ports(uint8_t proto)
{
	return proto == 6 || proto == 17;
}

static void parse_l4(const uint8_t *f, uint32_t off, uint32_t end, struct ios_acl_pkt *pkt)
{
	if (!l4_ports(pkt->proto) || off > end || end - off < 4)
		return;
	pkt->sport = be16(f + off);
	pkt->dport = be16(f + off + 2);
	pkt->has_ports = true;
}

static void parse_ipv4(const uint8_t *f, uint32_t off, uint32_t len, struct ios_acl_pkt *pkt)
{
	uint32_t ihl, total, end;

	if (len - off < IPV4_HLEN || f[off] >> 4 != 4)
		return;
	ihl = (uint32_t)(f[off] & 0xf) * 4;
	total = be16(f + off + 2);
	if (ihl < IPV4_HLEN || len - off < ihl || total < ihl)
		return;
	pkt->l3 = 4;
	pkt->src[1] = be32(f + off + 12);
	pkt->dst[1] = be32(f + off + 16);
	pkt->proto = f[off + 9];
	pkt->has_proto = true;
	/* A later fragment has no transport header. */
	if (be16(f + off + 6) & 0x1fff)
		return;
	/* Ethernet pads short frames: the transport header ends with the
	 * datagram, or with the frame if it was cut. */
	end = len - off < total ? len : off + total;
	parse_l4(f, off + ihl, end, pkt);
}

static void parse_ipv6(const uint8_t *f, uint32_t off, uint32_t len, struct ios_acl_pkt *pkt)
{
	uint32_t end, hlen;
	uint8_t nh;

	if (len - off < IPV6_HLEN || f[off] >> 4 != 6)
		return;
	pkt->l3 = 6;
	pkt->src[0] = be64(f + off + 8);
	pkt->src[1] = be64(f + off + 16);
	pkt->dst[0] = be64(f + off + 24);
	pkt->dst[1] = be64(f + off + 32);
	end = len - off - IPV6_HLEN < be16(f + off + 4) ? len : off + IPV6_HLEN + be16(f + off + 4);
	nh = f[off + 6];
	off += IPV6_HLEN;
	for (unsigned i = 0; i <= MAX_IPV6_EXT; i++) {
		switch (nh) {
		case 0:		/* hop-by-hop options */
		case 43:	/* routing */
		case 60:	/* destination options */
			if (end - off < 8 || i == MAX_IPV6_EXT)
				return;
			hlen = ((uint32_t)f[off + 1] + 1) * 8;
			break;
		case 51:	/* authentication header */
			if (end - off < 8 || i == MAX_IPV6_EXT)
				return;
			hlen = ((uint32_t)f[off + 1] + 2) * 4;
			break;
		case 44:	/* fragment */
			if (end - off < 8 || i == MAX_IPV6_EXT)
				return;
			if (be16(f + off + 2) & 0xfff8) {
				/* A later fragment: its protocol, no ports. */
				pkt->proto = f[off];
				pkt->has_proto = true;
				return;
			}
			hlen = 8;
			break;
		default:
			pkt->proto = nh;
			pkt->has_proto = true;
			parse_l4(f, off, end, pkt);
			return;
		}
		if (end - off < hlen)
			return;
		nh = f[off];
		off += hlen;
	}
}

void ios_acl_parse(const uint8_t *f, uint32_t len, struct ios_acl_pkt *pkt)
{
	uint32_t off = ETH_HLEN;
	uint16_t type;

	/* What the rules read first; the rest only once these say it is set. */
	pkt->ethertype = 0;
	pkt->l3 = 0;
	pkt->has_proto = false;
	pkt->has_ports = false;
	if (len < ETH_HLEN)
		return;
	type = be16(f + 12);
	for (unsigned tags = 0; type == 0x8100 || type == 0x88a8 || type == 0x9100; tags++) {
		if (tags == MAX_VLAN_TAGS || len - off < VLAN_HLEN)
			return;
		type = be16(f + off + 2);
		off += VLAN_HLEN;
	}
	pkt->ethertype = type;
	if (type == ETH_P_IP_)
		parse_ipv4(f, off, len, pkt);
	else if (type == ETH_P_IPV6_)
		parse_ipv6(f, off, len, pkt);
}

/* ---- matching ---- */

static bool addr_in(const uint64_t a[2], const uint64_t net[2], const uint64_t mask[2])
{
	return (a[0] & mask[0]) == net[0] && (a[1] & mask[1]) == net[1];
}

/* The rule's direction and the frame's kind fit already (acl->cand). */
static bool rule_matches(const struct ios_acl_rule *r, const struct ios_acl_pkt *p)
{
	if (r->ethertype >= 0 && p->ethertype != r->ethertype)
		return false;
	if (r->l3 == IOS_ACL_L3_ANY)
		return true;
	if (r->proto >= 0 && (!p->has_proto || p->proto != r->proto))
		return false;
	if (r->has_src && !addr_in(p->src, r->src, r->src_mask))
		return false;
	if (r->has_dst && !addr_in(p->dst, r->dst, r->dst_mask))
		return false;
	if (r->has_ports && (!p->has_ports || p->sport < r->sport_lo || p->sport > r->sport_hi ||
			     p->dport < r->dport_lo || p->dport > r->dport_hi))
		return false;
	return true;
}

int ios_acl_match(const struct ios_acl *acl, const struct ios_acl_pkt *pkt, unsigned dir)
{
	unsigned cls = pkt->l3 == 4 ? IOS_ACL_IPV4 : pkt->l3 == 6 ? IOS_ACL_IPV6 : IOS_ACL_NOT_IP;
	unsigned d = dir == IOS_ACL_DIR_OUT;
	const uint16_t *c = acl->cand[cls][d];

	for (unsigned i = 0; i < acl->n_cand[cls][d]; i++)
		if (rule_matches(&acl->rules[c[i]], pkt))
			return c[i];
	return -1;
}

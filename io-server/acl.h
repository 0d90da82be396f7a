/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * A stateless frame classifier: the topology's acl rules (topology.h,
 * struct vrio_topo_acl) compiled for the data path, and the first rule a
 * frame matches. Pure: no I/O, no clock, no allocation after compiling;
 * the acl stage (stage_acl.c) counts and drops.
 *
 * What a frame is matched on, parsed once and never read past its length:
 *   ethertype  the one after up to two VLAN tags (802.1Q, 802.1ad, 0x9100);
 *              ARP is 0x0806
 *   IPv4/IPv6  source and destination against the rule's prefixes; the
 *              protocol is IPv4's, or IPv6's after its extension headers
 *              (hop-by-hop, routing, fragment, destination options, AH),
 *              so `icmpv6` matches neighbour discovery (ICMPv6 133-137)
 *   ports      TCP and UDP source and destination, in the first fragment
 *
 * A rule with addresses needs an IP frame of its family; one with only a
 * protocol, an IP frame of either family (or of its ethertype's). A frame
 * whose headers are cut short or malformed has none of the fields it
 * lacks: a rule that needs one does not match it, a rule that does not
 * can (the default, an ethertype-only rule).
 */
#ifndef VRIO_IOSERVER_ACL_H
#define VRIO_IOSERVER_ACL_H

#include <stdbool.h>
#include <stdint.h>

#include "topology.h"

#define IOS_ACL_MAX_RULES	1024u

enum {
	IOS_ACL_DIR_IN = 1,	/* from the guest (VRIO_ACL_IN) */
	IOS_ACL_DIR_OUT = 2,	/* toward the guest (VRIO_ACL_OUT) */
};

enum ios_acl_l3 {
	IOS_ACL_L3_ANY,		/* the rule has no IP field */
	IOS_ACL_L3_IP,		/* a protocol only: IPv4 or IPv6 */
	IOS_ACL_L3_V4,
	IOS_ACL_L3_V6,
};

struct ios_acl_rule {
	uint8_t dir;		/* IOS_ACL_DIR_* bits */
	bool allow;
	uint8_t l3;		/* enum ios_acl_l3 */
	bool has_src, has_dst, has_ports;
	int32_t ethertype;	/* -1: any */
	int16_t proto;		/* -1: any */
	uint16_t sport_lo, sport_hi, dport_lo, dport_hi;
	/* Addresses and masks in host order: IPv4 in a[1], IPv6 in a[0..1]. */
	uint64_t src[2], src_mask[2], dst[2], dst_mask[2];
};

enum { IOS_ACL_NOT_IP, IOS_ACL_IPV4, IOS_ACL_IPV6, IOS_ACL_NR_CLASSES };

struct ios_acl {
	bool default_allow;
	unsigned n;
	/* For each kind of frame and direction, the rules that may match it,
	 * in order: a frame is checked only against those. */
	uint16_t *cand[IOS_ACL_NR_CLASSES][2];
	unsigned n_cand[IOS_ACL_NR_CLASSES][2];
	struct ios_acl_rule rules[];
};

/* The fields of one frame the rules look at; addresses only with l3, the
 * protocol only with has_proto, ports only with has_ports. */
struct ios_acl_pkt {
	uint16_t ethertype;	/* 0: none (runt or cut in a tag) */
	uint8_t l3;		/* 4, 6, or 0: not IP or malformed */
	bool has_proto, has_ports;
	uint8_t proto;
	uint16_t sport, dport;
	uint64_t src[2], dst[2];	/* as in struct ios_acl_rule */
};

/* NULL if out of memory or with more than IOS_ACL_MAX_RULES rules. */
struct ios_acl *ios_acl_compile(const struct vrio_topo_acl *t);
void ios_acl_free(struct ios_acl *acl);

void ios_acl_parse(const uint8_t *frame, uint32_t len, struct ios_acl_pkt *pkt);
/* The index of the first rule that matches the frame going `dir`
 * (IOS_ACL_DIR_IN or _OUT), or -1: the default. */
int ios_acl_match(const struct ios_acl *acl, const struct ios_acl_pkt *pkt, unsigned dir);

static inline bool ios_acl_allows(const struct ios_acl *acl, int rule)
{
	return rule < 0 ? acl->default_allow : acl->rules[rule].allow;
}

#endif

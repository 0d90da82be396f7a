/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Software offloads, for where a packet with offload metadata (proto/
 * frame.h, struct vrio_pkt_wire) must leave as what a receiver without
 * those offloads expects: a partial checksum completed, a TCP GSO packet
 * (IPv4 or IPv6, with or without one VLAN tag) cut into wire-sized
 * segments with their own lengths, IP ids, sequence numbers, flags and
 * checksums, as Linux's own GSO does.
 *
 * Pure functions over caller-owned buffers: no allocation, no state.
 * Segmenting is planned once (every header checked against the metadata,
 * nothing trusted), then each segment is built straight into the buffer
 * that carries it on.
 */
#ifndef VRIO_IOSERVER_GSO_H
#define VRIO_IOSERVER_GSO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "frame.h"

/* Ones'-complement sum of n bytes into a 32-bit accumulator (RFC 1071),
 * p taken as starting on an even offset; fold with ios_csum_fold. */
uint32_t ios_csum_add(uint32_t sum, const uint8_t *p, size_t n);
uint16_t ios_csum_fold(uint32_t sum);

/*
 * Completes a partial checksum in place: the sum of the frame from
 * csum_start to its end (the field's pseudo-header sum included) stored
 * at csum_start + csum_offset, 0 written as 0xffff. The metadata must have
 * passed vrio_pkt_wire_check for this frame.
 */
void ios_csum_complete(uint8_t *frame, uint32_t len, const struct vrio_pkt_wire *h);

struct ios_gso_plan {
	uint32_t l3;		/* offset of the IP header */
	uint32_t l4;		/* of the TCP header */
	uint32_t hdrs;		/* Ethernet, IP and TCP headers */
	uint32_t mss;		/* payload bytes per segment */
	uint32_t payload;	/* in the whole packet */
	uint32_t nseg;
	bool v6;
};

/*
 * Plans the segments of a TCP GSO packet (gso_type TCPV4 or TCPV6) whose
 * segments may be at most max_seg bytes: the Ethernet type, the IP version,
 * header length and protocol, csum_start and csum_offset must all point at
 * the one TCP header (IPv6 without extension headers); 0 or -EINVAL.
 */
int ios_gso_plan(const uint8_t *frame, uint32_t len, const struct vrio_pkt_wire *h,
		 uint32_t max_seg, struct ios_gso_plan *pl);
/* Bytes of segment i (i < pl->nseg). */
uint32_t ios_gso_seg_len(const struct ios_gso_plan *pl, uint32_t i);
/* Builds segment i into out (ios_gso_seg_len bytes), checksums complete. */
void ios_gso_build(const uint8_t *frame, const struct ios_gso_plan *pl, uint32_t i, uint8_t *out);

#endif

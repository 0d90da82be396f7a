/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Which receive queue pair a frame for the guest goes to (virtio-net
 * multiqueue): a hash over the frame's flow, so that the frames of one
 * flow stay on one queue and keep their order there, and different flows
 * spread over the queues the guest enabled.
 *
 * The flow is the IP source and destination, plus the ports for TCP, UDP
 * and SCTP (not for fragments, whose later parts carry no ports: all the
 * fragments of a datagram stay together), behind up to two VLAN tags.
 * Anything else (ARP, other ethertypes, a frame cut short) hashes on its
 * MAC addresses and ethertype. The bytes come from the io-server: every
 * read is bounded by len.
 */
#ifndef VRIO_LOCALHV_FLOWHASH_H
#define VRIO_LOCALHV_FLOWHASH_H

#include <stdint.h>

uint32_t lhv_flow_hash(const uint8_t *eth, uint32_t len);

/* Index in [0, n) for a hash (n >= 1; 0 when n is 0). */
static inline unsigned lhv_flow_queue(uint32_t hash, unsigned n)
{
	return (unsigned)(((uint64_t)hash * n) >> 32);
}

#endif

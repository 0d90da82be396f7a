/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The dpdk backend's packet format and its pure parts (header coding,
 * fragmentation, reassembly), apart from DPDK so that unit tests reach them.
 *
 * A packet is an Ethernet header with EtherType DPDK_ETHERTYPE, then this
 * fixed little-endian header, then `len` bytes of a frame:
 *
 *   SYN     connector -> listener: open connection `conn`; `total` is the
 *           sender's MTU.
 *   SYNACK  listener -> connector: accepted; `total` is the sender's MTU.
 *   DATA    bytes [off, off + len) of frame number `seq` on the connection,
 *           a frame of `total` bytes (a vrio frame: header and payload).
 *   FIN     the connection is closed (or unknown to the sender).
 *
 * Fields a type does not use are zero.
 */
#ifndef VRIO_TRANSPORT_DPDK_INTERNAL_H
#define VRIO_TRANSPORT_DPDK_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "frame.h"

#define DPDK_ETHERTYPE		0x88B5u		/* IEEE 802 local experimental 1 */
#define DPDK_WIRE_VERSION	1
#define DPDK_WIRE_LEN		20u
#define DPDK_FRAME_MAX		(VRIO_FRAME_HDR_LEN + VRIO_FRAME_MAX_PAYLOAD)
/* The smallest MTU either side may have (IPv6's): keeps a largest frame
 * under DPDK_FRAG_COUNT_MAX fragments. */
#define DPDK_MTU_MIN		1280u
#define DPDK_MTU_MAX		65535u
#define DPDK_FRAG_MIN		(DPDK_MTU_MIN - DPDK_WIRE_LEN)
#define DPDK_FRAG_COUNT_MAX	((DPDK_FRAME_MAX + DPDK_FRAG_MIN - 1) / DPDK_FRAG_MIN)

enum dpdk_pkt_type {
	DPDK_SYN = 1,
	DPDK_SYNACK = 2,
	DPDK_DATA = 3,
	DPDK_FIN = 4,
};

struct dpdk_wire {
	uint8_t version;
	uint8_t type;
	uint16_t len;
	uint32_t conn;
	uint32_t seq;
	uint32_t off;
	uint32_t total;
} __attribute__((packed));

_Static_assert(sizeof(struct dpdk_wire) == DPDK_WIRE_LEN, "dpdk header size");
_Static_assert(offsetof(struct dpdk_wire, conn) == 4, "conn offset");
_Static_assert(offsetof(struct dpdk_wire, total) == 16, "total offset");

/* Decoded, host byte order. */
struct dpdk_hdr {
	uint8_t type;
	uint16_t len;
	uint32_t conn;
	uint32_t seq;
	uint32_t off;
	uint32_t total;
};

void dpdk_hdr_encode(const struct dpdk_hdr *h, uint8_t out[DPDK_WIRE_LEN]);
/*
 * Decode and check the header at p; `avail` is the packet's length after
 * the Ethernet header. 0, or -EPROTONOSUPPORT (version) or -EBADMSG: too
 * short, unknown type, connection id 0, a field the type does not use set,
 * or lengths and offsets that do not fit the packet, the frame or the
 * bounds (DPDK_FRAME_MAX, DPDK_MTU_MIN..DPDK_MTU_MAX).
 */
int dpdk_hdr_decode(const uint8_t *p, size_t avail, struct dpdk_hdr *h);

/* Fragments of a frame of `total` bytes, `frag_max` bytes each at most. */
uint32_t dpdk_frag_count(uint32_t total, uint32_t frag_max);
/* The header of fragment `idx` of frame `seq` on connection `conn`. */
void dpdk_frag_hdr(uint32_t conn, uint32_t seq, uint32_t total, uint32_t frag_max, uint32_t idx,
		   struct dpdk_hdr *h);

/*
 * One frame in reassembly per connection. Fragments must come in order; a
 * frame that misses one, or whose fragments interleave with another
 * frame's, is dropped whole (the reliable layer sends it again). The buffer
 * only grows, up to DPDK_FRAME_MAX.
 */
struct dpdk_reasm {
	uint8_t *buf;
	uint32_t cap;
	bool active;
	uint32_t seq, total, got, frags;
};

/*
 * Take the `h->len` bytes of DATA packet `h`. Returns 1 with *frame set when
 * they complete a frame of h->total bytes (data itself for a frame in one
 * packet, otherwise the buffer, valid until the next call), else 0. Every
 * fragment thrown away is counted in *dropped.
 */
int dpdk_reasm_push(struct dpdk_reasm *r, const struct dpdk_hdr *h, const uint8_t *data,
		    const uint8_t **frame, uint64_t *dropped);
/* Forget a frame in progress (counted in *dropped) and free the buffer. */
void dpdk_reasm_fini(struct dpdk_reasm *r, uint64_t *dropped);

#endif

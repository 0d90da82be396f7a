/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The data-path frame: a fixed 32-byte little-endian header followed by
 * `len` payload bytes. Every frame on every transport carries one.
 *
 *   CTRL  payload is one protobuf-c encoded Vrio__Ctrl (proto/vrio.proto).
 *   REQ   local-hv -> io-server. `id` is the chain's head (opaque to the
 *         io-server, echoed back), payload = the chain's readable bytes in
 *         order, `arg` = the chain's writable capacity in bytes.
 *   RESP  io-server -> local-hv. payload = the bytes to scatter into the
 *         chain's writable buffers from offset 0; `len` is the used length.
 *         `arg` is 0.
 *   PKT   either way: one packet of a net device, no reply. `queue` is the
 *         queue pair, payload = struct vrio_pkt_wire (the packet's
 *         virtio-net header metadata) followed by the Ethernet frame.
 *
 * The header is decoded into struct vrio_frame, never used in place, so the
 * wire layout below is the single definition of the byte order.
 */
#ifndef VRIO_PROTO_FRAME_H
#define VRIO_PROTO_FRAME_H

#include <stddef.h>
#include <stdint.h>

#define VRIO_FRAME_MAGIC	0x4f495256u	/* "VRIO" as LE bytes */
#define VRIO_FRAME_VERSION	1
#define VRIO_FRAME_HDR_LEN	32u
/* Largest payload any frame may carry: a 4 MiB request plus headers. */
#define VRIO_FRAME_MAX_PAYLOAD	((4u << 20) + 4096u)

enum vrio_frame_type {
	VRIO_FRAME_CTRL = 1,
	VRIO_FRAME_REQ = 2,
	VRIO_FRAME_RESP = 3,
	/* The reliable layer (transport/reliable.c): RDATA carries one whole
	 * inner frame as payload, `id` its sequence number and `arg` the
	 * cumulative acknowledgement (next sequence number expected); RACK
	 * carries only the acknowledgement in `arg`. */
	VRIO_FRAME_RDATA = 4,
	VRIO_FRAME_RACK = 5,
	VRIO_FRAME_PKT = 6,
};
#define VRIO_FRAME_TYPE_MAX	VRIO_FRAME_PKT

/* Wire layout. All fields little-endian. */
struct vrio_frame_wire {
	uint32_t magic;
	uint8_t version;
	uint8_t type;
	uint16_t queue;
	uint32_t dev;
	uint32_t id;
	uint32_t len;
	uint32_t arg;
	uint32_t flags;
	uint32_t rsvd;
} __attribute__((packed));

_Static_assert(sizeof(struct vrio_frame_wire) == VRIO_FRAME_HDR_LEN, "frame header size");
_Static_assert(offsetof(struct vrio_frame_wire, queue) == 6, "queue offset");
_Static_assert(offsetof(struct vrio_frame_wire, dev) == 8, "dev offset");
_Static_assert(offsetof(struct vrio_frame_wire, id) == 12, "id offset");
_Static_assert(offsetof(struct vrio_frame_wire, len) == 16, "len offset");
_Static_assert(offsetof(struct vrio_frame_wire, arg) == 20, "arg offset");
_Static_assert(offsetof(struct vrio_frame_wire, flags) == 24, "flags offset");

/*
 * Ahead of a PKT frame's Ethernet frame: the fields of a virtio-net header
 * (virtio 1.x, little-endian, flag and type values as linux/virtio_net.h)
 * that travel with the packet. `flags` NEEDS_CSUM: the bytes from
 * csum_start to the end still need their ones'-complement sum stored at
 * csum_start + csum_offset (the field holds the pseudo-header's sum);
 * `gso_type` TCPV4/TCPV6: one large TCP segment to cut into gso_size
 * pieces of payload. `rx_ol`, only from local-hv to the io-server: what the
 * sending port's guest negotiated to take on receive (VRIO_PKT_RX_*), so
 * the switch knows per port whether to hand it a large or partially
 * checksummed packet; zero the other way and between io-servers.
 */
struct vrio_pkt_wire {
	uint8_t flags;
	uint8_t gso_type;
	uint16_t hdr_len;
	uint16_t gso_size;
	uint16_t csum_start;
	uint16_t csum_offset;
	uint16_t rx_ol;
} __attribute__((packed));

#define VRIO_PKT_HDR_LEN	12u
_Static_assert(sizeof(struct vrio_pkt_wire) == VRIO_PKT_HDR_LEN, "packet header size");

#define VRIO_PKT_F_NEEDS_CSUM	1u
#define VRIO_PKT_F_DATA_VALID	2u
#define VRIO_PKT_GSO_NONE	0u
#define VRIO_PKT_GSO_TCPV4	1u
#define VRIO_PKT_GSO_TCPV6	4u
#define VRIO_PKT_GSO_ECN	0x80u

#define VRIO_PKT_RX_CSUM	1u	/* VIRTIO_NET_F_GUEST_CSUM */
#define VRIO_PKT_RX_TSO4	2u	/* VIRTIO_NET_F_GUEST_TSO4 */
#define VRIO_PKT_RX_TSO6	4u	/* VIRTIO_NET_F_GUEST_TSO6 */
#define VRIO_PKT_RX_ALL		7u

/* True for the header of a packet without offload metadata. */
static inline int vrio_pkt_wire_plain(const struct vrio_pkt_wire *h)
{
	return !(h->flags | h->gso_type | h->hdr_len | h->gso_size | h->csum_start |
		 h->csum_offset | h->rx_ol);
}
/* Ethernet, with one VLAN tag, around the largest MTU a network may have. */
#define VRIO_PKT_MAX_FRAME	(9000u + 18u)
/* A GSO packet: up to 64 KiB of IP, Ethernet and a VLAN tag around it. */
#define VRIO_PKT_MAX_GSO_FRAME	(65535u + 18u)

/*
 * Check a packet's offload metadata against its Ethernet frame of eth_len
 * bytes, on a network whose frames are at most max_frame bytes: known flags
 * and gso type (TCPV4/TCPV6, ECN only with them), a partial checksum inside
 * the frame at an even offset, a GSO packet with a partial checksum, a gso_size whose
 * segments fit max_frame and a hdr_len inside the frame; a packet without
 * GSO no larger than max_frame, one with it no larger than
 * VRIO_PKT_MAX_GSO_FRAME. `rx_ol` is not looked at. Returns 0 or -EBADMSG.
 */
int vrio_pkt_wire_check(const struct vrio_pkt_wire *h, uint32_t eth_len, uint32_t max_frame);

/* Decoded header, host byte order. */
struct vrio_frame {
	uint8_t type;
	uint16_t queue;
	uint32_t dev;
	uint32_t id;
	uint32_t len;
	uint32_t arg;
	uint32_t flags;
};

void vrio_frame_encode(const struct vrio_frame *f, uint8_t out[VRIO_FRAME_HDR_LEN]);

/*
 * Decode and check a header from a peer. Returns 0, or -EBADMSG (bad magic,
 * unknown type, non-zero reserved bits), -EPROTONOSUPPORT (version) or
 * -EMSGSIZE (len above VRIO_FRAME_MAX_PAYLOAD). On error *f is untouched.
 */
int vrio_frame_decode(const uint8_t in[VRIO_FRAME_HDR_LEN], struct vrio_frame *f);

const char *vrio_frame_type_name(uint8_t type);

#endif

/* SPDX-License-Identifier: BSD-3-Clause */
#include <endian.h>
#include <errno.h>
#include <string.h>

#include "frame.h"

void vrio_frame_encode(const struct vrio_frame *f, uint8_t out[VRIO_FRAME_HDR_LEN])
{
	struct vrio_frame_wire w = {
		.magic = htole32(VRIO_FRAME_MAGIC),
		.version = VRIO_FRAME_VERSION,
		.type = f->type,
		.queue = htole16(f->queue),
		.dev = htole32(f->dev),
		.id = htole32(f->id),
		.len = htole32(f->len),
		.arg = htole32(f->arg),
		.flags = htole32(f->flags),
		.rsvd = 0,
	};
	memcpy(out, &w, sizeof(w));
}

int vrio_frame_decode(const uint8_t in[VRIO_FRAME_HDR_LEN], struct vrio_frame *f)
{
	struct vrio_frame_wire w;
	uint32_t len;

	memcpy(&w, in, sizeof(w));
	if (le32toh(w.magic) != VRIO_FRAME_MAGIC)
		return -EBADMSG;
	if (w.version != VRIO_FRAME_VERSION)
		return -EPROTONOSUPPORT;
	if (w.type < VRIO_FRAME_CTRL || w.type > VRIO_FRAME_TYPE_MAX)
		return -EBADMSG;
	/* No flags are defined yet: a set bit is a peer we do not understand. */
	if (w.flags != 0 || w.rsvd != 0)
		return -EBADMSG;
	len = le32toh(w.len);
	if (len > VRIO_FRAME_MAX_PAYLOAD)
		return -EMSGSIZE;
	f->type = w.type;
	f->queue = le16toh(w.queue);
	f->dev = le32toh(w.dev);
	f->id = le32toh(w.id);
	f->len = len;
	f->arg = le32toh(w.arg);
	f->flags = 0;
	return 0;
}

int vrio_pkt_wire_check(const struct vrio_pkt_wire *h, uint32_t eth_len, uint32_t max_frame)
{
	uint32_t gso = h->gso_type & ~VRIO_PKT_GSO_ECN;
	uint32_t start = le16toh(h->csum_start), off = le16toh(h->csum_offset);

	if (h->flags & ~(VRIO_PKT_F_NEEDS_CSUM | VRIO_PKT_F_DATA_VALID))
		return -EBADMSG;
	if (gso != VRIO_PKT_GSO_NONE && gso != VRIO_PKT_GSO_TCPV4 && gso != VRIO_PKT_GSO_TCPV6)
		return -EBADMSG;
	if (h->flags & VRIO_PKT_F_NEEDS_CSUM) {
		/* The sum field after an Ethernet header, inside the frame, at
		 * an even distance from where the sum starts (TCP's 16, UDP's
		 * 6: at an odd one the 16-bit sum would not verify). */
		if (start < 14 || off > eth_len || start + off + 2 > eth_len || (off & 1))
			return -EBADMSG;
	} else if (start || off) {
		return -EBADMSG;
	}
	if (gso == VRIO_PKT_GSO_NONE) {
		if ((h->gso_type & VRIO_PKT_GSO_ECN) || h->gso_size || h->hdr_len)
			return -EBADMSG;
		return eth_len <= max_frame ? 0 : -EBADMSG;
	}
	/* A segment: the headers (a TCP one at least 20 bytes) and gso_size
	 * bytes of payload in one frame of the network. */
	if (!(h->flags & VRIO_PKT_F_NEEDS_CSUM) || le16toh(h->gso_size) == 0 ||
	    start + 20u + le16toh(h->gso_size) > max_frame || le16toh(h->hdr_len) > eth_len ||
	    eth_len > VRIO_PKT_MAX_GSO_FRAME)
		return -EBADMSG;
	return 0;
}

const char *vrio_frame_type_name(uint8_t type)
{
	switch (type) {
	case VRIO_FRAME_CTRL:
		return "ctrl";
	case VRIO_FRAME_REQ:
		return "req";
	case VRIO_FRAME_RESP:
		return "resp";
	case VRIO_FRAME_RDATA:
		return "rdata";
	case VRIO_FRAME_RACK:
		return "rack";
	case VRIO_FRAME_PKT:
		return "pkt";
	}
	return "unknown";
}

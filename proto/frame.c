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

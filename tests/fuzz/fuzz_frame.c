/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * What a peer puts on the wire first: a 32-byte frame header, then (for a
 * CTRL frame) a protobuf-c control message. The input is a header followed
 * by the payload; the payload is unpacked whatever the header says, so the
 * control decoder is fuzzed even while the header is garbage.
 *
 * Properties: a header that decodes re-encodes to the very same 32 bytes
 * (so decode checked every bit it dropped), and one that does not leaves
 * the output untouched. A control message that unpacks has a message set,
 * packs again, and what it packs to unpacks to the same kind -- unless it
 * carried unknown fields: protobuf-c keeps those verbatim and may keep one
 * it cannot write back (a field number 0 spelled as an overlong varint),
 * which is protobuf-c's business, not vrio's.
 */
#include <errno.h>
#include <string.h>

#include "ctrl.h"
#include "frame.h"
#include "fuzz_input.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	return 0;
}

static void check_header(const uint8_t *in)
{
	struct vrio_frame f, poison;
	uint8_t out[VRIO_FRAME_HDR_LEN];
	int rc;

	memset(&f, 0xa5, sizeof(f));
	poison = f;
	rc = vrio_frame_decode(in, &f);
	if (rc < 0) {
		FUZZ_CHECK(rc == -EBADMSG || rc == -EPROTONOSUPPORT || rc == -EMSGSIZE,
			   "decode returned %d", rc);
		FUZZ_CHECK(!memcmp(&f, &poison, sizeof(f)), "a refused header changed the output");
		return;
	}
	FUZZ_CHECK(rc == 0, "decode returned %d", rc);
	FUZZ_CHECK(f.len <= VRIO_FRAME_MAX_PAYLOAD, "len %u accepted", f.len);
	FUZZ_CHECK(f.flags == 0, "flags %#x accepted", f.flags);
	FUZZ_CHECK(strcmp(vrio_frame_type_name(f.type), "unknown") != 0, "type %u accepted",
		   f.type);
	vrio_frame_encode(&f, out);
	FUZZ_CHECK(!memcmp(in, out, sizeof(out)), "decode/encode is not the identity");
}

/* The message the oneof holds. */
static const ProtobufCMessage *ctrl_inner(const Vrio__Ctrl *m)
{
	switch (m->msg_case) {
	case VRIO__CTRL__MSG_HELLO:
		return &m->hello->base;
	case VRIO__CTRL__MSG_ATTACH:
		return &m->attach->base;
	case VRIO__CTRL__MSG_ATTACH_REPLY:
		return &m->attach_reply->base;
	case VRIO__CTRL__MSG_DETACH:
		return &m->detach->base;
	case VRIO__CTRL__MSG_DEVICE_ERROR:
		return &m->device_error->base;
	case VRIO__CTRL__MSG_HEARTBEAT:
		return &m->heartbeat->base;
	case VRIO__CTRL__MSG_ERROR:
		return &m->error->base;
	case VRIO__CTRL__MSG_IOTLB_INVALIDATE:
		return &m->iotlb_invalidate->base;
	case VRIO__CTRL__MSG_IOTLB_ACK:
		return &m->iotlb_ack->base;
	case VRIO__CTRL__MSG_AUTH:
		return &m->auth->base;
	default:
		return NULL;
	}
}

static void check_ctrl(const uint8_t *p, size_t len)
{
	const ProtobufCMessage *inner;
	Vrio__Ctrl *m, *again;
	size_t cap;
	uint8_t *buf;
	int n;

	m = vrio_ctrl_unpack(p, len);
	if (!m)
		return;
	FUZZ_CHECK(len <= VRIO_CTRL_MAX_LEN, "a %zu-byte message unpacked", len);
	FUZZ_CHECK(m->msg_case != VRIO__CTRL__MSG__NOT_SET, "an empty message unpacked");
	(void)vrio_ctrl_name(m);

	/* Re-encoding may grow (unknown fields are kept, varints made
	 * canonical): give it room, and accept -EMSGSIZE past the limit. */
	cap = vrio__ctrl__get_packed_size(m);
	buf = malloc(cap ? cap : 1);
	FUZZ_CHECK(buf != NULL, "malloc");
	n = vrio_ctrl_pack(m, buf, cap);
	if (n == -EMSGSIZE) {
		FUZZ_CHECK(cap > VRIO_CTRL_MAX_LEN, "pack refused %zu bytes", cap);
	} else {
		FUZZ_CHECK(n >= 0 && (size_t)n == cap, "pack returned %d for %zu bytes", n, cap);
		inner = ctrl_inner(m);
		FUZZ_CHECK(inner != NULL, "%s without its message", vrio_ctrl_name(m));
		again = vrio_ctrl_unpack(buf, (size_t)n);
		if (m->base.n_unknown_fields == 0 && inner->n_unknown_fields == 0) {
			FUZZ_CHECK(again != NULL, "a packed %s does not unpack",
				   vrio_ctrl_name(m));
			FUZZ_CHECK(again->msg_case == m->msg_case, "%s came back as %s",
				   vrio_ctrl_name(m), vrio_ctrl_name(again));
			FUZZ_CHECK(again->seq == m->seq, "seq changed");
		}
		vrio_ctrl_free(again);
	}
	free(buf);
	vrio_ctrl_free(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t hdr[VRIO_FRAME_HDR_LEN];

	if (size < VRIO_FRAME_HDR_LEN)
		return 0;
	/* An exact 32-byte copy: a read past the header hits a redzone. */
	memcpy(hdr, data, sizeof(hdr));
	check_header(hdr);
	check_ctrl(data + VRIO_FRAME_HDR_LEN, size - VRIO_FRAME_HDR_LEN);
	return 0;
}

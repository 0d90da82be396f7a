/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The software offloads (io-server/gso.c) on what a guest or a peer may
 * send: the input is a packet's 12-byte offload header, then its Ethernet
 * frame, in a buffer of exactly that size (so a read past it is ASan's).
 * The switch's order is kept: vrio_pkt_wire_check first, on a 1518-byte
 * network, and only then a plan and the segments, or a checksum completed.
 *
 * Properties: every planned segment fits the network and starts with the
 * packet's headers; the segments' payloads are the packet's, in order; each
 * segment's TCP checksum verifies over its pseudo-header and an IPv4 one's
 * header checksum verifies (by a sum written here, not gso.c's); a
 * completed checksum makes the bytes from csum_start, with the partial sum
 * the field held before (the pseudo-header's), sum to 0xffff.
 */
#include <string.h>

#include "frame.h"
#include "fuzz_input.h"
#include "gso.h"

#define MAX_FRAME 1518u

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	return 0;
}

static uint16_t ref_sum(const uint8_t *p, size_t n, uint32_t s)
{
	for (size_t i = 0; i < n; i += 2) {
		s += (uint32_t)p[i] << 8 | (i + 1 < n ? p[i + 1] : 0);
		s = (s & 0xffff) + (s >> 16);
	}
	return (uint16_t)((s & 0xffff) + (s >> 16));
}

static void check_segments(const uint8_t *f, uint32_t len, const struct vrio_pkt_wire *h)
{
	static uint8_t seg[MAX_FRAME];
	struct ios_gso_plan pl;
	uint32_t off = 0;

	if (ios_gso_plan(f, len, h, MAX_FRAME, &pl) < 0)
		return;
	FUZZ_CHECK(pl.nseg >= 1 && pl.hdrs <= len && pl.l4 + 20 <= pl.hdrs, "plan %u segments",
		   pl.nseg);
	for (uint32_t i = 0; i < pl.nseg; i++) {
		uint32_t n = ios_gso_seg_len(&pl, i), data = n - pl.hdrs, tcp_len = n - pl.l4;
		uint8_t ph[40] = { 0 };
		size_t phn;

		FUZZ_CHECK(n <= MAX_FRAME && n >= pl.hdrs, "segment %u of %u bytes", i, n);
		ios_gso_build(f, &pl, i, seg);
		FUZZ_CHECK(!memcmp(seg, f, pl.l3), "segment %u's Ethernet header changed", i);
		FUZZ_CHECK(!memcmp(seg + pl.hdrs, f + pl.hdrs + off, data),
			   "segment %u's payload is not the packet's", i);
		if (pl.v6) {
			memcpy(ph, seg + pl.l3 + 8, 32);
			ph[34] = (uint8_t)(tcp_len >> 8);
			ph[35] = (uint8_t)tcp_len;
			ph[39] = 6;
			phn = 40;
		} else {
			FUZZ_CHECK(ref_sum(seg + pl.l3, pl.l4 - pl.l3, 0) == 0xffff,
				   "segment %u's IPv4 header checksum", i);
			memcpy(ph, seg + pl.l3 + 12, 8);
			ph[9] = 6;
			ph[10] = (uint8_t)(tcp_len >> 8);
			ph[11] = (uint8_t)tcp_len;
			phn = 12;
		}
		FUZZ_CHECK(ref_sum(seg + pl.l4, tcp_len, ref_sum(ph, phn, 0)) == 0xffff,
			   "segment %u's TCP checksum", i);
		off += data;
	}
	FUZZ_CHECK(off == pl.payload, "segments carry %u of %u payload bytes", off, pl.payload);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vrio_pkt_wire h;
	uint8_t *f;
	uint32_t len;

	if (size < VRIO_PKT_HDR_LEN || size - VRIO_PKT_HDR_LEN > VRIO_PKT_MAX_GSO_FRAME)
		return 0;
	memcpy(&h, data, sizeof(h));
	len = (uint32_t)(size - VRIO_PKT_HDR_LEN);
	f = malloc(len ? len : 1);
	if (!f)
		return 0;
	memcpy(f, data + VRIO_PKT_HDR_LEN, len);
	if (vrio_pkt_wire_check(&h, len, MAX_FRAME) == 0) {
		if (h.gso_type != VRIO_PKT_GSO_NONE) {
			check_segments(f, len, &h);
		} else if (h.flags & VRIO_PKT_F_NEEDS_CSUM) {
			const uint8_t *at = f + h.csum_start + h.csum_offset;
			uint32_t partial = (uint32_t)at[0] << 8 | at[1];

			ios_csum_complete(f, len, &h);
			FUZZ_CHECK(ref_sum(f + h.csum_start, len - h.csum_start, partial) == 0xffff,
				   "a completed checksum does not verify");
		}
	}
	free(f);
	return 0;
}

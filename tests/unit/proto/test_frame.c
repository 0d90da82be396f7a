/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "ctrl.h"
#include "frame.h"

static void test_roundtrip(void **state)
{
	struct vrio_frame in, out;
	uint8_t buf[VRIO_FRAME_HDR_LEN];

	memset(&in, 0, sizeof(in));
	in.type = VRIO_FRAME_REQ;
	in.queue = 3;
	in.dev = 0x01020304;
	in.id = 77;
	in.len = 4096 + 16;
	in.arg = 4097;
	memset(&out, 0, sizeof(out));
	vrio_frame_encode(&in, buf);
	assert_int_equal(vrio_frame_decode(buf, &out), 0);
	assert_memory_equal(&in, &out, sizeof(in));
}

/* The byte layout is the protocol: pin it. */
static void test_wire_bytes(void **state)
{
	static const uint8_t want[VRIO_FRAME_HDR_LEN] = {
		'V', 'R', 'I', 'O', 1, 3, 0x02, 0x01, 0x44, 0x33, 0x22, 0x11,
		0x05, 0, 0, 0, 0x00, 0x10, 0, 0, 0x09, 0, 0, 0,
	};
	struct vrio_frame f = { .type = VRIO_FRAME_RESP, .queue = 0x0102, .dev = 0x11223344,
				.id = 5, .len = 4096, .arg = 9 };
	uint8_t buf[VRIO_FRAME_HDR_LEN];

	vrio_frame_encode(&f, buf);
	assert_memory_equal(buf, want, sizeof(want));
}

struct bad_case {
	const char *what;
	size_t off;
	uint8_t val;
	int err;
};

static const struct bad_case bad_cases[] = {
	{ "magic", 0, 'X', -EBADMSG },
	{ "version", 4, 2, -EPROTONOSUPPORT },
	{ "type zero", 5, 0, -EBADMSG },
	{ "type unknown", 5, 9, -EBADMSG },
	{ "flags", 24, 1, -EBADMSG },
	{ "reserved", 31, 1, -EBADMSG },
	{ "len too big", 19, 0x7f, -EMSGSIZE },
};

static void test_bad_headers(void **state)
{
	struct vrio_frame f = { .type = VRIO_FRAME_REQ, .len = 16 }, out, sentinel;
	uint8_t good[VRIO_FRAME_HDR_LEN], buf[VRIO_FRAME_HDR_LEN];
	size_t i;

	vrio_frame_encode(&f, good);
	for (i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
		memcpy(buf, good, sizeof(buf));
		buf[bad_cases[i].off] = bad_cases[i].val;
		memset(&out, 0xa5, sizeof(out));
		sentinel = out;
		if (vrio_frame_decode(buf, &out) != bad_cases[i].err)
			fail_msg("case '%s': wrong result", bad_cases[i].what);
		assert_memory_equal(&out, &sentinel, sizeof(out));
	}
}

static void test_len_limit(void **state)
{
	struct vrio_frame f = { .type = VRIO_FRAME_REQ, .len = VRIO_FRAME_MAX_PAYLOAD }, out;
	uint8_t buf[VRIO_FRAME_HDR_LEN];

	vrio_frame_encode(&f, buf);
	assert_int_equal(vrio_frame_decode(buf, &out), 0);
	f.len++;
	vrio_frame_encode(&f, buf);
	assert_int_equal(vrio_frame_decode(buf, &out), -EMSGSIZE);
}

static void test_ctrl_roundtrip(void **state)
{
	Vrio__Ctrl m = VRIO__CTRL__INIT, *back;
	Vrio__Hello h = VRIO__HELLO__INIT;
	uint8_t buf[256];
	int n;

	h.version = VRIO_PROTO_VERSION;
	h.node = (char *)"host0";
	m.msg_case = VRIO__CTRL__MSG_HELLO;
	m.hello = &h;
	m.seq = 42;
	n = vrio_ctrl_pack(&m, buf, sizeof(buf));
	assert_true(n > 0);
	back = vrio_ctrl_unpack(buf, (size_t)n);
	assert_non_null(back);
	assert_int_equal(back->msg_case, VRIO__CTRL__MSG_HELLO);
	assert_string_equal(back->hello->node, "host0");
	assert_int_equal(back->seq, 42);
	vrio_ctrl_free(back);
	assert_int_equal(vrio_ctrl_pack(&m, buf, 2), -EMSGSIZE);
}

static void test_ctrl_garbage(void **state)
{
	static const uint8_t garbage[] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x01 };
	static const uint8_t empty_ctrl[] = { 0x08, 0x01 };	/* seq only, no message */

	assert_null(vrio_ctrl_unpack(garbage, sizeof(garbage)));
	assert_null(vrio_ctrl_unpack(empty_ctrl, sizeof(empty_ctrl)));
	assert_null(vrio_ctrl_unpack(garbage, VRIO_CTRL_MAX_LEN + 1));
}

/* Offload metadata against a frame of 1000 bytes on a 1518-byte network. */
static void test_pkt_wire_check(void **state)
{
	static const struct {
		struct vrio_pkt_wire h;
		uint32_t len;
		int ok;
	} rows[] = {
		{ { 0 }, 1000, 1 },
		{ { 0 }, 1519, 0 },				/* above the network's MTU */
		{ { .flags = 1, .csum_start = 34, .csum_offset = 16 }, 1000, 1 },
		{ { .flags = 2 }, 1000, 1 },			/* DATA_VALID */
		{ { .flags = 4 }, 1000, 0 },			/* unknown flag */
		{ { .flags = 1, .csum_start = 10, .csum_offset = 16 }, 1000, 0 },
		{ { .flags = 1, .csum_start = 990, .csum_offset = 9 }, 1000, 0 },
		{ { .flags = 1, .csum_start = 34, .csum_offset = 0xffff }, 1000, 0 },
		{ { .flags = 1, .csum_start = 34, .csum_offset = 7 }, 1000, 0 },	/* odd */
		{ { .csum_start = 34 }, 1000, 0 },		/* a start without the flag */
		{ { .flags = 1, .gso_type = 1, .gso_size = 1448, .hdr_len = 66,
		    .csum_start = 34, .csum_offset = 16 }, 60000, 1 },
		{ { .flags = 1, .gso_type = 0x81, .gso_size = 1448, .hdr_len = 66,
		    .csum_start = 34, .csum_offset = 16 }, 60000, 1 },	/* ECN */
		{ { .flags = 1, .gso_type = 0x84, .gso_size = 1428, .hdr_len = 86,
		    .csum_start = 54, .csum_offset = 16 }, 60000, 1 },	/* ECN, IPv6 */
		{ { .flags = 1, .gso_type = 0x83, .gso_size = 1448,
		    .csum_start = 34, .csum_offset = 6 }, 60000, 0 },	/* ECN with UFO */
		{ { .gso_type = 0x80 }, 1000, 0 },		/* ECN alone, no metadata */
		{ { .flags = 1, .gso_type = 1, .gso_size = 1448, .hdr_len = 66,
		    .csum_start = 34, .csum_offset = 16 }, 65554, 0 },	/* above 64 KiB */
		{ { .flags = 1, .gso_type = 1, .gso_size = 1480, .hdr_len = 66,
		    .csum_start = 34, .csum_offset = 16 }, 60000, 0 },	/* segments too big */
		{ { .flags = 1, .gso_type = 1, .gso_size = 0, .hdr_len = 66,
		    .csum_start = 34, .csum_offset = 16 }, 60000, 0 },
		{ { .gso_type = 1, .gso_size = 1448 }, 60000, 0 },	/* no partial sum */
		{ { .flags = 1, .gso_type = 3, .gso_size = 1448,
		    .csum_start = 34, .csum_offset = 6 }, 60000, 0 },	/* UFO */
		{ { .flags = 1, .gso_type = 0x80, .csum_start = 34, .csum_offset = 16 }, 1000, 0 },
		{ { .flags = 1, .gso_type = 4, .gso_size = 1000, .hdr_len = 60001,
		    .csum_start = 54, .csum_offset = 16 }, 60000, 0 },	/* hdr_len past the end */
	};

	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
		if (vrio_pkt_wire_check(&rows[i].h, rows[i].len, 1518) != (rows[i].ok ? 0 : -EBADMSG))
			fail_msg("row %zu: expected %s", i, rows[i].ok ? "accepted" : "refused");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip),   cmocka_unit_test(test_wire_bytes),
		cmocka_unit_test(test_bad_headers), cmocka_unit_test(test_len_limit),
		cmocka_unit_test(test_ctrl_roundtrip), cmocka_unit_test(test_ctrl_garbage),
		cmocka_unit_test(test_pkt_wire_check),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

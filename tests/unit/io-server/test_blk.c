/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The virtio-blk model over the RAM backend: a table of requests, run in
 * order against one device (later rows read what earlier rows wrote), each
 * with the status and RESP it must produce. Plus the advertised features
 * and config space, and the backend registry's checks.
 */
#include <endian.h>
#include <errno.h>
#include <linux/virtio_blk.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "bdev.h"
#include "blk.h"

#define RAM_SIZE	(8u << 20)
#define CAP_SECTORS	(RAM_SIZE / 512u)
#define DEV_NAME	"vm1-disk"

struct fixture {
	struct vrio_topo_device td, td_ro;
	struct ios_bdev *bdev, *bdev_ro;
	struct ios_bdev_chan *ch, *ch_ro;
	struct ios_blk_dev dev, dev_ro;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	assert_int_equal(ios_bdev_register_builtin(), 0);
	f->td.name = (char *)DEV_NAME;
	f->td.type = VRIO_DEV_BLK;
	f->td.queues = 2;
	f->td.queue_size = 128;
	f->td.backend.kind = VRIO_BACKEND_RAM;
	f->td.backend.size = RAM_SIZE;
	f->td_ro = f->td;
	f->td_ro.name = (char *)"ro-disk";
	f->td_ro.queues = 1;
	f->td_ro.read_only = true;
	assert_int_equal(ios_bdev_open(&f->td, &f->bdev), 0);
	assert_int_equal(ios_bdev_open(&f->td_ro, &f->bdev_ro), 0);
	assert_int_equal(ios_bdev_chan_open(f->bdev, 256, &f->ch), 0);
	assert_int_equal(ios_bdev_chan_open(f->bdev_ro, 128, &f->ch_ro), 0);
	ios_blk_dev_init(&f->dev, DEV_NAME, f->bdev, 2, 128);
	ios_blk_dev_init(&f->dev_ro, "ro-disk", f->bdev_ro, 1, 128);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	ios_bdev_chan_close(f->ch);
	ios_bdev_chan_close(f->ch_ro);
	ios_bdev_close(f->bdev);
	ios_bdev_close(f->bdev_ro);
	free(f);
	return 0;
}

/* ---- the request table ---- */

enum expect_data {
	DATA_ANY,	/* nothing to check before the status */
	DATA_ZERO,	/* zeroes */
	DATA_FILL,	/* the byte `fill` */
	DATA_ID,	/* the device id, zero padded */
};

struct seg {
	uint64_t sector;
	uint32_t num;
	uint32_t flags;
};

struct blk_case {
	const char *what;
	bool ro;		/* against the read-only device */
	uint32_t type;
	uint64_t sector;
	uint32_t rdlen;		/* 0: header + data_len (+ segments) */
	uint32_t data_len;	/* OUT payload, filled with `fill` */
	uint32_t wcap;
	unsigned nsegs;
	struct seg segs[20];
	uint8_t fill;
	/* expected */
	enum ios_blk_op op;
	uint8_t status;
	uint32_t resp_len;
	enum expect_data data;
};

#define S_OK	VIRTIO_BLK_S_OK
#define S_IOERR	VIRTIO_BLK_S_IOERR
#define S_UNSUPP VIRTIO_BLK_S_UNSUPP
#define T_IN	VIRTIO_BLK_T_IN
#define T_OUT	VIRTIO_BLK_T_OUT
#define T_FLUSH	VIRTIO_BLK_T_FLUSH
#define T_GETID	VIRTIO_BLK_T_GET_ID
#define T_DISC	VIRTIO_BLK_T_DISCARD
#define T_WZ	VIRTIO_BLK_T_WRITE_ZEROES
#define UNMAP	1u

static const struct blk_case blk_cases[] = {
	{ "get id", .type = T_GETID, .wcap = 21,
	  .op = IOS_BLK_OP_GET_ID, .status = S_OK, .resp_len = 21, .data = DATA_ID },
	{ "get id into a short buffer", .type = T_GETID, .wcap = 5,
	  .op = IOS_BLK_OP_GET_ID, .status = S_OK, .resp_len = 5, .data = DATA_ID },
	{ "write 4 KiB", .type = T_OUT, .sector = 8, .data_len = 4096, .wcap = 1, .fill = 0xa5,
	  .op = IOS_BLK_OP_WRITE, .status = S_OK, .resp_len = 1 },
	{ "read it back", .type = T_IN, .sector = 8, .wcap = 4097, .fill = 0xa5,
	  .op = IOS_BLK_OP_READ, .status = S_OK, .resp_len = 4097, .data = DATA_FILL },
	{ "flush", .type = T_FLUSH, .wcap = 1,
	  .op = IOS_BLK_OP_FLUSH, .status = S_OK, .resp_len = 1 },
	{ "discard it", .type = T_DISC, .wcap = 1, .nsegs = 1, .segs = { { 8, 8, 0 } },
	  .op = IOS_BLK_OP_DISCARD, .status = S_OK, .resp_len = 1 },
	{ "discarded range reads zeroes", .type = T_IN, .sector = 8, .wcap = 4097,
	  .op = IOS_BLK_OP_READ, .status = S_OK, .resp_len = 4097, .data = DATA_ZERO },
	{ "write again", .type = T_OUT, .sector = 16, .data_len = 8192, .wcap = 1, .fill = 0x5a,
	  .op = IOS_BLK_OP_WRITE, .status = S_OK, .resp_len = 1 },
	{ "write zeroes over half, unmap", .type = T_WZ, .wcap = 1, .nsegs = 1,
	  .segs = { { 16, 8, UNMAP } },
	  .op = IOS_BLK_OP_WRITE_ZEROES, .status = S_OK, .resp_len = 1 },
	{ "that half reads zeroes", .type = T_IN, .sector = 16, .wcap = 4097,
	  .op = IOS_BLK_OP_READ, .status = S_OK, .resp_len = 4097, .data = DATA_ZERO },
	{ "the other half is intact", .type = T_IN, .sector = 24, .wcap = 4097, .fill = 0x5a,
	  .op = IOS_BLK_OP_READ, .status = S_OK, .resp_len = 4097, .data = DATA_FILL },
	{ "write zeroes without unmap", .type = T_WZ, .wcap = 1, .nsegs = 1,
	  .segs = { { 24, 8, 0 } },
	  .op = IOS_BLK_OP_WRITE_ZEROES, .status = S_OK, .resp_len = 1 },
	{ "now it reads zeroes too", .type = T_IN, .sector = 24, .wcap = 4097,
	  .op = IOS_BLK_OP_READ, .status = S_OK, .resp_len = 4097, .data = DATA_ZERO },
	{ "write two ranges", .type = T_OUT, .sector = 32, .data_len = 16384, .wcap = 1,
	  .fill = 0x11, .op = IOS_BLK_OP_WRITE, .status = S_OK, .resp_len = 1 },
	{ "discard two segments", .type = T_DISC, .wcap = 1, .nsegs = 2,
	  .segs = { { 32, 8, 0 }, { 56, 8, 0 } },
	  .op = IOS_BLK_OP_DISCARD, .status = S_OK, .resp_len = 1 },
	{ "first segment reads zeroes", .type = T_IN, .sector = 32, .wcap = 4097,
	  .op = IOS_BLK_OP_READ, .status = S_OK, .resp_len = 4097, .data = DATA_ZERO },
	{ "between the segments is intact", .type = T_IN, .sector = 40, .wcap = 8193,
	  .fill = 0x11, .op = IOS_BLK_OP_READ, .status = S_OK, .resp_len = 8193, .data = DATA_FILL },
	{ "second segment reads zeroes", .type = T_IN, .sector = 56, .wcap = 4097,
	  .op = IOS_BLK_OP_READ, .status = S_OK, .resp_len = 4097, .data = DATA_ZERO },
	{ "the last sector", .type = T_IN, .sector = CAP_SECTORS - 1, .wcap = 513,
	  .op = IOS_BLK_OP_READ, .status = S_OK, .resp_len = 513, .data = DATA_ZERO },
	{ "a zero-length read", .type = T_IN, .sector = 0, .wcap = 1,
	  .op = IOS_BLK_OP_READ, .status = S_OK, .resp_len = 1 },
	{ "the largest read", .type = T_IN, .sector = 0, .wcap = 63 * 65536 + 1,
	  .op = IOS_BLK_OP_READ, .status = S_OK, .resp_len = 63 * 65536 + 1 },

	/* Errors: the status is always the last writable byte. */
	{ "read past capacity", .type = T_IN, .sector = CAP_SECTORS - 4, .wcap = 4097,
	  .op = IOS_BLK_OP_READ, .status = S_IOERR, .resp_len = 4097, .data = DATA_ZERO },
	{ "read at capacity", .type = T_IN, .sector = CAP_SECTORS, .wcap = 513,
	  .op = IOS_BLK_OP_READ, .status = S_IOERR, .resp_len = 513, .data = DATA_ZERO },
	{ "read at a sector that overflows", .type = T_IN, .sector = UINT64_MAX - 1, .wcap = 1025,
	  .op = IOS_BLK_OP_READ, .status = S_IOERR, .resp_len = 1025, .data = DATA_ZERO },
	{ "write past capacity", .type = T_OUT, .sector = CAP_SECTORS - 1, .data_len = 1024,
	  .wcap = 1, .op = IOS_BLK_OP_WRITE, .status = S_IOERR, .resp_len = 1 },
	{ "read length not a multiple of 512", .type = T_IN, .sector = 0, .wcap = 1001,
	  .op = IOS_BLK_OP_READ, .status = S_IOERR, .resp_len = 1001, .data = DATA_ZERO },
	{ "write length not a multiple of 512", .type = T_OUT, .sector = 0, .data_len = 100,
	  .wcap = 1, .op = IOS_BLK_OP_WRITE, .status = S_IOERR, .resp_len = 1 },
	{ "unknown type", .type = 99, .wcap = 1,
	  .op = IOS_BLK_OP_UNSUPPORTED, .status = S_UNSUPP, .resp_len = 1 },
	{ "scsi passthrough", .type = 2, .wcap = 1,
	  .op = IOS_BLK_OP_UNSUPPORTED, .status = S_UNSUPP, .resp_len = 1 },
	{ "secure erase", .type = 14, .wcap = 1, .nsegs = 1, .segs = { { 0, 8, 0 } },
	  .op = IOS_BLK_OP_UNSUPPORTED, .status = S_UNSUPP, .resp_len = 1 },
	{ "header cut short", .type = T_IN, .rdlen = 8, .wcap = 1,
	  .op = IOS_BLK_OP_UNSUPPORTED, .status = S_IOERR, .resp_len = 1 },
	{ "no readable bytes at all", .type = T_IN, .rdlen = 0xffffffff, .wcap = 513,
	  .op = IOS_BLK_OP_UNSUPPORTED, .status = S_IOERR, .resp_len = 513, .data = DATA_ZERO },
	{ "write to a read-only device", .ro = true, .type = T_OUT, .sector = 0,
	  .data_len = 512, .wcap = 1,
	  .op = IOS_BLK_OP_WRITE, .status = S_IOERR, .resp_len = 1 },
	{ "read from a read-only device", .ro = true, .type = T_IN, .sector = 0, .wcap = 513,
	  .op = IOS_BLK_OP_READ, .status = S_OK, .resp_len = 513, .data = DATA_ZERO },
	{ "flush on a read-only device", .ro = true, .type = T_FLUSH, .wcap = 1,
	  .op = IOS_BLK_OP_FLUSH, .status = S_OK, .resp_len = 1 },
	{ "discard on a read-only device is not offered", .ro = true, .type = T_DISC, .wcap = 1,
	  .nsegs = 1, .segs = { { 0, 8, 0 } },
	  .op = IOS_BLK_OP_DISCARD, .status = S_UNSUPP, .resp_len = 1 },
	{ "discard with reserved flags", .type = T_DISC, .wcap = 1, .nsegs = 1,
	  .segs = { { 0, 8, 2 } },
	  .op = IOS_BLK_OP_DISCARD, .status = S_UNSUPP, .resp_len = 1 },
	{ "discard with the unmap flag", .type = T_DISC, .wcap = 1, .nsegs = 1,
	  .segs = { { 0, 8, UNMAP } },
	  .op = IOS_BLK_OP_DISCARD, .status = S_UNSUPP, .resp_len = 1 },
	{ "write zeroes with reserved flags", .type = T_WZ, .wcap = 1, .nsegs = 2,
	  .segs = { { 0, 8, UNMAP }, { 16, 8, 0x80000000u } },
	  .op = IOS_BLK_OP_WRITE_ZEROES, .status = S_UNSUPP, .resp_len = 1 },
	{ "too many discard segments", .type = T_DISC, .wcap = 1, .nsegs = 17,
	  .op = IOS_BLK_OP_DISCARD, .status = S_UNSUPP, .resp_len = 1 },
	{ "too many write-zeroes segments", .type = T_WZ, .wcap = 1, .nsegs = 20,
	  .op = IOS_BLK_OP_WRITE_ZEROES, .status = S_UNSUPP, .resp_len = 1 },
	{ "discard past capacity", .type = T_DISC, .wcap = 1, .nsegs = 1,
	  .segs = { { CAP_SECTORS - 4, 8, 0 } },
	  .op = IOS_BLK_OP_DISCARD, .status = S_IOERR, .resp_len = 1 },
	{ "discard without segments", .type = T_DISC, .wcap = 1,
	  .op = IOS_BLK_OP_DISCARD, .status = S_IOERR, .resp_len = 1 },
	{ "discard with a cut segment", .type = T_DISC, .rdlen = 16 + 8, .wcap = 1,
	  .op = IOS_BLK_OP_DISCARD, .status = S_IOERR, .resp_len = 1 },
	{ "discard of more than max sectors", .type = T_DISC, .wcap = 1, .nsegs = 1,
	  .segs = { { 0, (1u << 22) + 1, 0 } },
	  .op = IOS_BLK_OP_DISCARD, .status = S_IOERR, .resp_len = 1 },

	/* Status placement with a writable area larger than the status. */
	{ "flush with 64 writable bytes", .type = T_FLUSH, .wcap = 64,
	  .op = IOS_BLK_OP_FLUSH, .status = S_OK, .resp_len = 64, .data = DATA_ZERO },
	{ "unsupported with 33 writable bytes", .type = 77, .wcap = 33,
	  .op = IOS_BLK_OP_UNSUPPORTED, .status = S_UNSUPP, .resp_len = 33, .data = DATA_ZERO },
	{ "write with 512 writable bytes", .type = T_OUT, .sector = 0, .data_len = 512,
	  .wcap = 512, .fill = 0x77,
	  .op = IOS_BLK_OP_WRITE, .status = S_OK, .resp_len = 512, .data = DATA_ZERO },
	{ "get id with 40 writable bytes", .type = T_GETID, .wcap = 40,
	  .op = IOS_BLK_OP_GET_ID, .status = S_OK, .resp_len = 40, .data = DATA_ID },

	/* No writable byte: nothing to answer with. */
	{ "write without a status byte", .type = T_OUT, .sector = 0, .data_len = 512, .wcap = 0,
	  .op = IOS_BLK_OP_WRITE, .status = S_IOERR, .resp_len = 0 },
	{ "garbage without a status byte", .type = T_IN, .rdlen = 3, .wcap = 0,
	  .op = IOS_BLK_OP_UNSUPPORTED, .status = S_IOERR, .resp_len = 0 },
};

static bool io_done;

static void done_cb(struct ios_blk_req *r)
{
	io_done = true;
}

static void put_le32(uint8_t *p, uint32_t v)
{
	v = htole32(v);
	memcpy(p, &v, 4);
}

static void put_le64(uint8_t *p, uint64_t v)
{
	v = htole64(v);
	memcpy(p, &v, 8);
}

static uint8_t *build_req(const struct blk_case *c, uint32_t *rdlen)
{
	uint32_t len = 16 + c->data_len + c->nsegs * 16;
	uint32_t alloc = c->rdlen != 0xffffffff && c->rdlen > len ? c->rdlen : len;
	uint8_t *rd = calloc(1, alloc);
	unsigned i;

	assert_non_null(rd);
	put_le32(rd, c->type);
	put_le32(rd + 4, 0);
	put_le64(rd + 8, c->sector);
	memset(rd + 16, c->fill, c->data_len);
	for (i = 0; i < c->nsegs; i++) {
		/* Unlisted segments of a long list are valid ranges. */
		const struct seg s = i < 20 && c->segs[i].num ? c->segs[i] :
				     (struct seg){ (uint64_t)i * 8, 8, 0 };

		put_le64(rd + 16 + c->data_len + i * 16, s.sector);
		put_le32(rd + 16 + c->data_len + i * 16 + 8, s.num);
		put_le32(rd + 16 + c->data_len + i * 16 + 12, s.flags);
	}
	if (c->rdlen == 0xffffffff)
		*rdlen = 0;
	else
		*rdlen = c->rdlen ? c->rdlen : len;
	return rd;
}

static void check_data(const struct blk_case *c, const struct ios_blk_dev *d,
		       const uint8_t *buf, uint32_t n)
{
	uint8_t id[20] = { 0 };
	uint32_t i;

	switch (c->data) {
	case DATA_ANY:
		break;
	case DATA_ZERO:
		for (i = 0; i < n; i++)
			if (buf[i] != 0)
				fail_msg("%s: byte %u is %#x, not zero", c->what, i, buf[i]);
		break;
	case DATA_FILL:
		for (i = 0; i < n; i++)
			if (buf[i] != c->fill)
				fail_msg("%s: byte %u is %#x, not %#x", c->what, i, buf[i], c->fill);
		break;
	case DATA_ID:
		memcpy(id, d->name, strlen(d->name));
		for (i = 0; i < n; i++) {
			uint8_t want = i < 20 ? id[i] : 0;

			if (buf[i] != want)
				fail_msg("%s: id byte %u is %#x, not %#x", c->what, i, buf[i], want);
		}
		break;
	}
}

static void run_case(struct fixture *f, const struct blk_case *c)
{
	const struct ios_blk_dev *d = c->ro ? &f->dev_ro : &f->dev;
	struct ios_bdev_chan *ch = c->ro ? f->ch_ro : f->ch;
	struct ios_blk_req req;
	uint32_t rdlen, n;
	uint8_t *rd, *buf;
	int spins = 0;

	memset(&req, 0, sizeof(req));
	req.done = done_cb;
	rd = build_req(c, &rdlen);
	ios_blk_parse(d, rd, rdlen, c->wcap, &req);
	if (req.op != c->op)
		fail_msg("%s: op %s, expected %s", c->what, ios_blk_op_name(req.op),
			 ios_blk_op_name(c->op));
	buf = malloc(ios_blk_buf_len(&req) + 1);
	assert_non_null(buf);
	/* Stale bytes from an earlier request must never leak out. */
	memset(buf, 0xee, ios_blk_buf_len(&req) + 1);
	if (req.backend) {
		io_done = false;
		assert_int_equal(ios_blk_submit(&req, ch, buf), 0);
		free(rd);
		rd = NULL;
		while (!io_done && spins++ < 1000)
			ios_bdev_poll(ch, 64);
		if (!io_done)
			fail_msg("%s: the backend never completed", c->what);
	}
	n = ios_blk_resp(d, &req, buf);
	if (n != c->resp_len)
		fail_msg("%s: RESP of %u bytes, expected %u", c->what, n, c->resp_len);
	if (n) {
		if (buf[n - 1] != c->status)
			fail_msg("%s: status %u, expected %u", c->what, buf[n - 1], c->status);
		check_data(c, d, buf, n - 1);
	}
	assert_int_equal(req.no_status, c->wcap == 0);
	free(rd);
	free(buf);
}

static void test_request_table(void **state)
{
	size_t i;

	for (i = 0; i < sizeof(blk_cases) / sizeof(blk_cases[0]); i++)
		run_case(*state, &blk_cases[i]);
}

/* ---- features and config space ---- */

static uint32_t cfg32(const struct ios_blk_dev *d, size_t off)
{
	uint32_t v;

	memcpy(&v, d->config + off, 4);
	return le32toh(v);
}

static void test_features_and_config(void **state)
{
	struct fixture *f = *state;
	const struct ios_blk_dev *d = &f->dev, *ro = &f->dev_ro;
	uint64_t cap;
	uint16_t nq;

	assert_true(d->features & (1ull << VIRTIO_BLK_F_SIZE_MAX));
	assert_true(d->features & (1ull << VIRTIO_BLK_F_SEG_MAX));
	assert_true(d->features & (1ull << VIRTIO_BLK_F_BLK_SIZE));
	assert_true(d->features & (1ull << VIRTIO_BLK_F_FLUSH));
	assert_true(d->features & (1ull << VIRTIO_BLK_F_MQ));
	assert_true(d->features & (1ull << VIRTIO_BLK_F_DISCARD));
	assert_true(d->features & (1ull << VIRTIO_BLK_F_WRITE_ZEROES));
	assert_false(d->features & (1ull << VIRTIO_BLK_F_RO));
	assert_int_equal(d->features >> 24, 0);

	assert_true(ro->features & (1ull << VIRTIO_BLK_F_RO));
	assert_false(ro->features & (1ull << VIRTIO_BLK_F_MQ));
	assert_false(ro->features & (1ull << VIRTIO_BLK_F_DISCARD));
	assert_false(ro->features & (1ull << VIRTIO_BLK_F_WRITE_ZEROES));

	memcpy(&cap, d->config + offsetof(struct virtio_blk_config, capacity), 8);
	assert_int_equal(le64toh(cap), CAP_SECTORS);
	assert_int_equal(cfg32(d, offsetof(struct virtio_blk_config, size_max)), 65536);
	assert_int_equal(cfg32(d, offsetof(struct virtio_blk_config, seg_max)), 63);
	assert_true((uint64_t)cfg32(d, offsetof(struct virtio_blk_config, seg_max)) *
		    cfg32(d, offsetof(struct virtio_blk_config, size_max)) + 16 <= IOS_BLK_MAX_REQUEST);
	assert_int_equal(cfg32(d, offsetof(struct virtio_blk_config, blk_size)), 512);
	memcpy(&nq, d->config + offsetof(struct virtio_blk_config, num_queues), 2);
	assert_int_equal(le16toh(nq), 2);
	assert_int_equal(cfg32(d, offsetof(struct virtio_blk_config, max_discard_seg)), 16);
	assert_int_equal(cfg32(d, offsetof(struct virtio_blk_config, max_write_zeroes_seg)), 16);
	assert_int_equal(cfg32(d, offsetof(struct virtio_blk_config, discard_sector_alignment)), 1);
	assert_int_equal(d->config[offsetof(struct virtio_blk_config, write_zeroes_may_unmap)], 1);
	assert_int_equal(cfg32(ro, offsetof(struct virtio_blk_config, max_discard_seg)), 0);
	assert_true(IOS_BLK_MAX_REQUEST <= VRIO_FRAME_MAX_PAYLOAD - 4096);
}

static void test_seg_max_follows_small_rings(void **state)
{
	struct fixture *f = *state;
	struct ios_blk_dev d;

	ios_blk_dev_init(&d, "small", f->bdev, 1, 16);
	assert_int_equal(d.seg_max, 14);
	assert_int_equal(d.max_request, 14 * 65536 + 16);
	ios_blk_dev_init(&d, "tiny", f->bdev, 1, 2);
	assert_int_equal(d.seg_max, 1);
	ios_blk_dev_init(&d, "a-name-longer-than-twenty-bytes", f->bdev, 1, 1024);
	assert_int_equal(d.seg_max, 63);
	assert_int_equal(d.max_request, 63 * 65536 + 16);
	assert_true(d.max_request <= VRIO_FRAME_MAX_PAYLOAD - 4096);
	assert_memory_equal(d.id, "a-name-longer-than-t", 20);
}

/* ---- the backend registry ---- */

static int nop_open(const char *name, const struct vrio_topo_device *td, struct ios_bdev **out)
{
	return -ENOSYS;
}

static void test_registry_checks(void **state)
{
	struct ios_bdev_ops missing = ios_bdev_ram_ops;
	struct ios_bdev_ops dup_name = ios_bdev_ram_ops;
	struct ios_bdev_ops no_kind = ios_bdev_ram_ops;

	missing.name = "missing";
	missing.kind = (enum vrio_backend_kind)7;
	missing.poll = NULL;
	assert_int_equal(ios_bdev_register(&missing), -EINVAL);

	dup_name.kind = (enum vrio_backend_kind)8;
	dup_name.open = nop_open;
	assert_int_equal(ios_bdev_register(&dup_name), -EEXIST);

	no_kind.name = "nokind";
	no_kind.kind = VRIO_BACKEND_NONE;
	assert_int_equal(ios_bdev_register(&no_kind), -EINVAL);

	assert_int_equal(ios_bdev_register_builtin(), 0);
	assert_ptr_equal(ios_bdev_find(VRIO_BACKEND_RAM), &ios_bdev_ram_ops);
	assert_ptr_equal(ios_bdev_find(VRIO_BACKEND_FILE), &ios_bdev_file_ops);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_request_table),
		cmocka_unit_test(test_features_and_config),
		cmocka_unit_test(test_seg_max_follows_small_rings),
		cmocka_unit_test(test_registry_checks),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}

/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * What a guest's virtio-blk driver feeds the io-server's device model: a
 * chain's readable bytes and writable capacity, one request after another
 * against a 256 KiB RAM disk (zeroed through the backend at the start of
 * each input, so an input replays alone). The input:
 *
 *   u8  bit 0: the disk is read-only
 *   u16 queue size - 1 (mod 1024), u8 queues - 1 (mod 64): the device shape
 *   then requests, each
 *     u32 writable capacity, u32 readable length, u8 fill, then the
 *     readable bytes; past the input they are the fill byte. Lengths are
 *     at most 8 KiB, or the disk's size with bit 31 set, or max_request
 *     (the session refuses larger ones) with bits 31 and 30 set, so most
 *     requests stay cheap.
 *
 * A shadow copy of the disk follows every write, discard and write-zeroes
 * that reports success, and every read that reports success must return
 * it. The REQ payload is freed as soon as ios_blk_submit() returns, as its
 * contract allows.
 *
 * Properties: a status byte always lands in the last writable byte; reads
 * and writes are accepted exactly when the spec says (sector-aligned, inside
 * the disk, writes not on a read-only disk); a request the model sends to
 * the backend completes exactly once, and successfully on RAM; data read is
 * what was written; no stale buffer byte leaks into a RESP.
 */
#include <endian.h>
#include <linux/virtio_blk.h>
#include <stdbool.h>
#include <string.h>

#include "bdev.h"
#include "blk.h"
#include "fuzz_input.h"
#include "log.h"

#define FUZZ_DISK	(256u << 10)
#define FUZZ_SECTORS	(FUZZ_DISK / IOS_SECTOR_SIZE)
#define FUZZ_MAX_REQS	64
#define FUZZ_NAME	"fuzz-disk"

static unsigned done_calls;

static void done_cb(struct ios_blk_req *r)
{
	done_calls++;
}

static uint32_t le32_at(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
	return le32toh(v);
}

static uint64_t le64_at(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return le64toh(v);
}

static bool in_disk(uint64_t sector, uint64_t nsec)
{
	return sector <= FUZZ_SECTORS && nsec <= FUZZ_SECTORS - sector;
}

/* Opened once (a fresh 256 KiB disk per input costs more in page faults
 * than the rest of the run): one writable, one read-only. */
static struct fuzz_disk {
	struct vrio_topo_device td;
	struct ios_bdev *bdev;
	struct ios_bdev_chan *ch;
} disks[2];

static uint8_t shadow[FUZZ_DISK];

static void io_done(struct ios_bdev_io *io)
{
	done_calls++;
}

/* Zeroes the writable disk through the backend, as a guest could. */
static void disk_reset(struct fuzz_disk *k)
{
	struct ios_bdev_io io = {
		.op = IOS_BDEV_WRITE_ZEROES, .offset = 0, .len = FUZZ_DISK, .cb = io_done,
	};

	done_calls = 0;
	FUZZ_CHECK(ios_bdev_submit(k->ch, &io) == 0, "write zeroes");
	FUZZ_CHECK(ios_bdev_poll(k->ch, 1) == 1 && done_calls == 1 && io.result == 0,
		   "write zeroes did not complete");
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *lvl = getenv("VRIO_FUZZ_LOG");
	int max = lvl ? vrio_log_level_parse(lvl) : -1;
	unsigned i;

	vrio_log_init("fuzz_blk", max > 0 ? (enum vrio_log_level)max : (enum vrio_log_level)0);
	FUZZ_CHECK(ios_bdev_register_builtin() == 0, "bdev registry");
	for (i = 0; i < 2; i++) {
		disks[i].td.name = (char *)FUZZ_NAME;
		disks[i].td.type = VRIO_DEV_BLK;
		disks[i].td.queues = 1;
		disks[i].td.queue_size = 1024;
		disks[i].td.read_only = i == 1;
		disks[i].td.backend.kind = VRIO_BACKEND_RAM;
		disks[i].td.backend.size = FUZZ_DISK;
		FUZZ_CHECK(ios_bdev_open(&disks[i].td, &disks[i].bdev) == 0, "ram open");
		FUZZ_CHECK(ios_bdev_chan_open(disks[i].bdev, 64, &disks[i].ch) == 0, "chan open");
	}
	return 0;
}

static void check_device(const struct ios_blk_dev *d, bool ro, unsigned nq)
{
	uint64_t cap;

	FUZZ_CHECK(d->capacity == FUZZ_SECTORS, "capacity %llu", (unsigned long long)d->capacity);
	memcpy(&cap, d->config + offsetof(struct virtio_blk_config, capacity), sizeof(cap));
	FUZZ_CHECK(le64toh(cap) == FUZZ_SECTORS, "config capacity");
	FUZZ_CHECK(d->seg_max >= 1 && d->seg_max <= IOS_BLK_SEG_MAX, "seg_max %u", d->seg_max);
	FUZZ_CHECK(d->seg_max + 2 <= d->queue_size || d->seg_max == 1,
		   "seg_max %u with a ring of %u", d->seg_max, d->queue_size);
	FUZZ_CHECK(d->max_request == d->seg_max * IOS_BLK_SIZE_MAX + IOS_BLK_HDR_LEN &&
		   d->max_request <= IOS_BLK_MAX_REQUEST, "max_request %u", d->max_request);
	FUZZ_CHECK((d->features >> 24) == 0, "features %#llx", (unsigned long long)d->features);
	FUZZ_CHECK(!!(d->features & (1ull << VIRTIO_BLK_F_RO)) == ro, "RO feature");
	FUZZ_CHECK(!!(d->features & (1ull << VIRTIO_BLK_F_MQ)) == (nq > 1), "MQ feature");
	if (ro)
		FUZZ_CHECK(!(d->features & ((1ull << VIRTIO_BLK_F_DISCARD) |
					    (1ull << VIRTIO_BLK_F_WRITE_ZEROES))),
			   "a read-only disk offers discard or write-zeroes");
}

/*
 * The status the spec asks for, where it is not up to the device; -1 for
 * DISCARD and WRITE_ZEROES, whose refusals are the device's choice.
 */
static int expected_status(bool ro, const uint8_t *rd, uint32_t rdlen, uint32_t wcap)
{
	uint64_t sector;
	uint32_t dl;

	if (rdlen < IOS_BLK_HDR_LEN)
		return VIRTIO_BLK_S_IOERR;
	sector = le64_at(rd + 8);
	switch (le32_at(rd)) {
	case VIRTIO_BLK_T_IN:
		dl = wcap - 1;
		return dl % IOS_SECTOR_SIZE == 0 && in_disk(sector, dl / IOS_SECTOR_SIZE) ?
		       VIRTIO_BLK_S_OK : VIRTIO_BLK_S_IOERR;
	case VIRTIO_BLK_T_OUT:
		dl = rdlen - IOS_BLK_HDR_LEN;
		return !ro && dl % IOS_SECTOR_SIZE == 0 && in_disk(sector, dl / IOS_SECTOR_SIZE) ?
		       VIRTIO_BLK_S_OK : VIRTIO_BLK_S_IOERR;
	case VIRTIO_BLK_T_FLUSH:
	case VIRTIO_BLK_T_GET_ID:
		return VIRTIO_BLK_S_OK;
	case VIRTIO_BLK_T_DISCARD:
	case VIRTIO_BLK_T_WRITE_ZEROES:
		return ro ? VIRTIO_BLK_S_UNSUPP : -1;
	default:
		return VIRTIO_BLK_S_UNSUPP;
	}
}

/* A DISCARD or WRITE_ZEROES the device took: every segment must be sound.
 * Applies it to the shadow. */
static void apply_segments(const uint8_t *rd, uint32_t rdlen)
{
	bool discard = le32_at(rd) == VIRTIO_BLK_T_DISCARD;
	uint32_t n = (rdlen - IOS_BLK_HDR_LEN) / IOS_BLK_SEG_LEN, i, num, flags;
	const uint8_t *p = rd + IOS_BLK_HDR_LEN;
	uint64_t sector;

	FUZZ_CHECK((rdlen - IOS_BLK_HDR_LEN) % IOS_BLK_SEG_LEN == 0 && n >= 1 &&
		   n <= IOS_BLK_MAX_SEGS, "took %u bytes of segments", rdlen - IOS_BLK_HDR_LEN);
	for (i = 0; i < n; i++, p += IOS_BLK_SEG_LEN) {
		sector = le64_at(p);
		num = le32_at(p + 8);
		flags = le32_at(p + 12);
		FUZZ_CHECK(in_disk(sector, num), "took segment %u: %u sectors at %llu", i, num,
			   (unsigned long long)sector);
		FUZZ_CHECK(flags == 0 || (!discard && flags == 1), "took segment flags %#x", flags);
		memset(shadow + sector * IOS_SECTOR_SIZE, 0, (size_t)num * IOS_SECTOR_SIZE);
	}
}

/* Index of the first non-zero byte, or n. memcmp() in blocks: a byte loop
 * here would be instrumented and dominate the run time. */
static uint32_t first_nonzero(const uint8_t *p, uint32_t n)
{
	static const uint8_t zeroes[4096];
	uint32_t off = 0, k;

	while (off < n) {
		k = n - off < sizeof(zeroes) ? n - off : (uint32_t)sizeof(zeroes);
		if (memcmp(p + off, zeroes, k))
			break;
		off += k;
	}
	while (off < n && p[off] == 0)
		off++;
	return off;
}

static void check_resp(const struct ios_blk_dev *d, const struct ios_blk_req *r,
		       const uint8_t *buf, uint32_t n)
{
	uint32_t data = r->wcap - 1, i, idlen;

	FUZZ_CHECK(n == r->wcap, "RESP of %u bytes for %u writable", n, r->wcap);
	FUZZ_CHECK(buf[data] == r->status, "status byte %u, request status %u", buf[data],
		   r->status);
	if (r->op == IOS_BLK_OP_READ && r->status == VIRTIO_BLK_S_OK) {
		FUZZ_CHECK(r->len == data, "read %u bytes into %u", r->len, data);
		FUZZ_CHECK(!memcmp(buf, shadow + r->sector * IOS_SECTOR_SIZE, data),
			   "read at sector %llu returns what was not written",
			   (unsigned long long)r->sector);
		return;
	}
	idlen = r->op == IOS_BLK_OP_GET_ID && r->status == VIRTIO_BLK_S_OK ?
		(data < IOS_BLK_ID_LEN ? data : IOS_BLK_ID_LEN) : 0;
	FUZZ_CHECK(!memcmp(buf, d->id, idlen), "id bytes");
	i = idlen + first_nonzero(buf + idlen, data - idlen);
	FUZZ_CHECK(i == data, "RESP byte %u of %u is %#x (op %s, status %u)", i, data, buf[i],
		   ios_blk_op_name(r->op), r->status);
}

/* Bit 31 clear: up to 8 KiB; bit 31 set: up to the disk's size; bits 31
 * and 30 set: up to max_request. Large buffers cost page faults. */
static uint32_t fuzz_len(struct fuzz_in *in, uint32_t max)
{
	uint32_t raw = fuzz_u32(in);

	if (!(raw & 0x80000000u) && max > 8192)
		max = 8192;
	else if (!(raw & 0x40000000u) && max > FUZZ_DISK + 1)
		max = FUZZ_DISK + 1;
	return raw % (max + 1);
}

static void one_request(const struct ios_blk_dev *d, struct ios_bdev_chan *ch, bool ro,
			struct fuzz_in *in)
{
	uint32_t wcap = fuzz_len(in, d->max_request);
	uint32_t rdlen = fuzz_len(in, d->max_request);
	uint8_t fill = fuzz_u8(in);
	struct ios_blk_req req;
	uint8_t *rd, *copy, *buf;
	unsigned spins;
	size_t got;
	int want, rc;

	rd = malloc(rdlen ? rdlen : 1);
	copy = malloc(rdlen ? rdlen : 1);
	FUZZ_CHECK(rd && copy, "malloc");
	got = fuzz_take(in, rd, rdlen);
	memset(rd + got, fill, rdlen - got);
	memcpy(copy, rd, rdlen);
	want = expected_status(ro, copy, rdlen, wcap);

	memset(&req, 0xa5, sizeof(req));
	req.done = done_cb;
	ios_blk_parse(d, rd, rdlen, wcap, &req);
	FUZZ_CHECK((unsigned)req.op < IOS_BLK_OP_COUNT, "op %d", (int)req.op);
	FUZZ_CHECK(req.no_status == (wcap == 0), "no_status with %u writable bytes", wcap);
	FUZZ_CHECK(req.status == VIRTIO_BLK_S_OK || req.status == VIRTIO_BLK_S_IOERR ||
		   req.status == VIRTIO_BLK_S_UNSUPP, "status %u", req.status);
	FUZZ_CHECK(!req.backend || req.status == VIRTIO_BLK_S_OK, "backend with status %u",
		   req.status);
	FUZZ_CHECK(req.len <= d->max_request, "data of %u bytes", req.len);

	buf = malloc(ios_blk_buf_len(&req) ? ios_blk_buf_len(&req) : 1);
	FUZZ_CHECK(buf != NULL, "malloc");
	/* Stale bytes from an earlier request must never leak out. */
	memset(buf, 0xee, ios_blk_buf_len(&req));
	done_calls = 0;
	if (req.backend) {
		rc = ios_blk_submit(&req, ch, buf);
		free(rd);
		rd = NULL;
		for (spins = 0; spins < 16 && !done_calls; spins++)
			FUZZ_CHECK(ios_bdev_poll(ch, 64) >= 0, "poll");
		if (rc == 0) {
			FUZZ_CHECK(done_calls == 1, "%u completions", done_calls);
			FUZZ_CHECK(req.status == VIRTIO_BLK_S_OK, "%s failed on RAM: %d",
				   ios_blk_op_name(req.op), req.error);
		} else {
			FUZZ_CHECK(done_calls == 0, "a refused submit completed");
			FUZZ_CHECK(req.status == VIRTIO_BLK_S_IOERR, "refused, status %u",
				   req.status);
		}
	}
	free(rd);

	if (wcap && want >= 0)
		FUZZ_CHECK(req.status == want, "%s: status %u, the spec says %d",
			   ios_blk_op_name(req.op), req.status, want);
	if (req.status == VIRTIO_BLK_S_OK && req.op == IOS_BLK_OP_WRITE)
		memcpy(shadow + req.sector * IOS_SECTOR_SIZE, copy + IOS_BLK_HDR_LEN, req.len);
	if (req.status == VIRTIO_BLK_S_OK &&
	    (req.op == IOS_BLK_OP_DISCARD || req.op == IOS_BLK_OP_WRITE_ZEROES))
		apply_segments(copy, rdlen);

	rc = (int)ios_blk_resp(d, &req, buf);
	if (req.no_status)
		FUZZ_CHECK(rc == 0, "a RESP of %d bytes without a status byte", rc);
	else
		check_resp(d, &req, buf, (uint32_t)rc);
	free(buf);
	free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_in in = { data, size };
	struct fuzz_disk *k;
	struct ios_blk_dev d;
	unsigned qs, nq, i;
	bool ro;

	ro = fuzz_u8(&in) & 1u;
	qs = 1 + fuzz_u16(&in) % 1024u;
	nq = 1 + fuzz_u8(&in) % 64u;
	k = &disks[ro];
	if (!ro)
		disk_reset(k);
	memset(shadow, 0, sizeof(shadow));
	ios_blk_dev_init(&d, FUZZ_NAME, k->bdev, nq, qs);
	check_device(&d, ro, nq);

	for (i = 0; i < FUZZ_MAX_REQS && fuzz_left(&in); i++)
		one_request(&d, k->ch, ro, &in);
	return 0;
}

/* SPDX-License-Identifier: BSD-3-Clause */
/* The virtio-blk device model; see blk.h for the RESP layout. */
#include <endian.h>
#include <errno.h>
#include <linux/virtio_blk.h>
#include <stddef.h>
#include <string.h>

#include "blk.h"

_Static_assert(offsetof(struct virtio_blk_config, unused1) + 3 == IOS_BLK_CONFIG_LEN,
	       "virtio_blk_config layout");
_Static_assert(sizeof(struct virtio_blk_outhdr) == IOS_BLK_HDR_LEN, "outhdr size");
_Static_assert(sizeof(struct virtio_blk_discard_write_zeroes) == IOS_BLK_SEG_LEN, "segment size");
_Static_assert(VIRTIO_BLK_ID_BYTES == IOS_BLK_ID_LEN, "id length");

#define BLK_SEG_FLAG_UNMAP 1u

const char *const ios_blk_op_names[IOS_BLK_OP_COUNT] = {
	[IOS_BLK_OP_READ] = "read",
	[IOS_BLK_OP_WRITE] = "write",
	[IOS_BLK_OP_FLUSH] = "flush",
	[IOS_BLK_OP_GET_ID] = "get_id",
	[IOS_BLK_OP_DISCARD] = "discard",
	[IOS_BLK_OP_WRITE_ZEROES] = "write_zeroes",
	[IOS_BLK_OP_UNSUPPORTED] = "unsupported",
};

const char *ios_blk_op_name(enum ios_blk_op op)
{
	return (unsigned)op < IOS_BLK_OP_COUNT ? ios_blk_op_names[op] : "unknown";
}

static void put_le16(uint8_t *cfg, size_t off, uint16_t v)
{
	v = htole16(v);
	memcpy(cfg + off, &v, sizeof(v));
}

static void put_le32(uint8_t *cfg, size_t off, uint32_t v)
{
	v = htole32(v);
	memcpy(cfg + off, &v, sizeof(v));
}

static void put_le64(uint8_t *cfg, size_t off, uint64_t v)
{
	v = htole64(v);
	memcpy(cfg + off, &v, sizeof(v));
}

static uint32_t get_le32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
	return le32toh(v);
}

static uint64_t get_le64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return le64toh(v);
}

#define CFG(field) offsetof(struct virtio_blk_config, field)

void ios_blk_dev_init(struct ios_blk_dev *d, const char *name, struct ios_bdev *bdev,
		      unsigned num_queues, unsigned queue_size)
{
	uint32_t lbs = bdev->block_size, pbs = bdev->phys_block_size;
	uint8_t *cfg = d->config;
	uint8_t phys_exp = 0;
	size_t n;

	memset(d, 0, sizeof(*d));
	d->name = name;
	d->bdev = bdev;
	d->capacity = bdev->size / IOS_SECTOR_SIZE;
	d->num_queues = (uint16_t)num_queues;
	d->queue_size = (uint16_t)queue_size;
	/* A chain holds the header, the data segments and the status, and is
	 * never longer than the ring. */
	d->seg_max = queue_size > IOS_BLK_SEG_MAX + 2 ? IOS_BLK_SEG_MAX :
		     queue_size > 3 ? queue_size - 2 : 1;
	d->max_request = d->seg_max * IOS_BLK_SIZE_MAX + IOS_BLK_HDR_LEN;
	while (phys_exp < 15 && (lbs << (phys_exp + 1)) <= pbs)
		phys_exp++;

	d->features = (1ull << VIRTIO_BLK_F_SIZE_MAX) | (1ull << VIRTIO_BLK_F_SEG_MAX) |
		      (1ull << VIRTIO_BLK_F_BLK_SIZE) | (1ull << VIRTIO_BLK_F_FLUSH) |
		      (1ull << VIRTIO_BLK_F_TOPOLOGY);
	if (num_queues > 1)
		d->features |= 1ull << VIRTIO_BLK_F_MQ;
	d->read_only = bdev->read_only;
	if (bdev->read_only) {
		d->features |= 1ull << VIRTIO_BLK_F_RO;
	} else {
		if (ios_bdev_has_discard(bdev))
			d->features |= 1ull << VIRTIO_BLK_F_DISCARD;
		if (ios_bdev_has_write_zeroes(bdev))
			d->features |= 1ull << VIRTIO_BLK_F_WRITE_ZEROES;
	}

	put_le64(cfg, CFG(capacity), d->capacity);
	put_le32(cfg, CFG(size_max), IOS_BLK_SIZE_MAX);
	put_le32(cfg, CFG(seg_max), d->seg_max);
	put_le32(cfg, CFG(blk_size), lbs);
	cfg[CFG(physical_block_exp)] = phys_exp;
	cfg[CFG(alignment_offset)] = 0;
	put_le16(cfg, CFG(min_io_size), 1);
	put_le32(cfg, CFG(opt_io_size), 0);
	/* Writes land in the page cache or a volatile device cache: FLUSH is
	 * what makes them durable. */
	cfg[CFG(wce)] = 1;
	put_le16(cfg, CFG(num_queues), (uint16_t)num_queues);
	if (d->features & (1ull << VIRTIO_BLK_F_DISCARD)) {
		put_le32(cfg, CFG(max_discard_sectors), IOS_BLK_MAX_DWZ_SECTORS);
		put_le32(cfg, CFG(max_discard_seg), IOS_BLK_MAX_SEGS);
		put_le32(cfg, CFG(discard_sector_alignment), lbs / IOS_SECTOR_SIZE);
	}
	if (d->features & (1ull << VIRTIO_BLK_F_WRITE_ZEROES)) {
		put_le32(cfg, CFG(max_write_zeroes_sectors), IOS_BLK_MAX_DWZ_SECTORS);
		put_le32(cfg, CFG(max_write_zeroes_seg), IOS_BLK_MAX_SEGS);
		cfg[CFG(write_zeroes_may_unmap)] = 1;
	}

	n = strlen(name);
	memcpy(d->id, name, n < IOS_BLK_ID_LEN ? n : IOS_BLK_ID_LEN);
}

static bool blk_range_ok(const struct ios_blk_dev *d, uint64_t sector, uint64_t nsec)
{
	return sector <= d->capacity && nsec <= d->capacity - sector;
}

static enum ios_blk_op blk_op_of(uint32_t type)
{
	switch (type) {
	case VIRTIO_BLK_T_IN:
		return IOS_BLK_OP_READ;
	case VIRTIO_BLK_T_OUT:
		return IOS_BLK_OP_WRITE;
	case VIRTIO_BLK_T_FLUSH:
		return IOS_BLK_OP_FLUSH;
	case VIRTIO_BLK_T_GET_ID:
		return IOS_BLK_OP_GET_ID;
	case VIRTIO_BLK_T_DISCARD:
		return IOS_BLK_OP_DISCARD;
	case VIRTIO_BLK_T_WRITE_ZEROES:
		return IOS_BLK_OP_WRITE_ZEROES;
	}
	return IOS_BLK_OP_UNSUPPORTED;
}

/* DISCARD and WRITE_ZEROES: a list of segments after the header. */
static uint8_t blk_parse_segs(const struct ios_blk_dev *d, const uint8_t *p, uint32_t len,
			      struct ios_blk_req *r)
{
	bool discard = r->op == IOS_BLK_OP_DISCARD;
	uint64_t feature = discard ? VIRTIO_BLK_F_DISCARD : VIRTIO_BLK_F_WRITE_ZEROES;
	uint32_t n, i, flags;
	struct ios_blk_seg *s;

	if (!(d->features & (1ull << feature)))
		return VIRTIO_BLK_S_UNSUPP;
	if (len == 0 || len % IOS_BLK_SEG_LEN)
		return VIRTIO_BLK_S_IOERR;
	n = len / IOS_BLK_SEG_LEN;
	if (n > IOS_BLK_MAX_SEGS)
		return VIRTIO_BLK_S_UNSUPP;
	for (i = 0; i < n; i++, p += IOS_BLK_SEG_LEN) {
		s = &r->segs[i];
		s->sector = get_le64(p);
		s->num_sectors = get_le32(p + 8);
		flags = get_le32(p + 12);
		if (flags & ~BLK_SEG_FLAG_UNMAP)
			return VIRTIO_BLK_S_UNSUPP;
		/* Discard deallocates by nature; the flag is for write-zeroes. */
		if (discard && (flags & BLK_SEG_FLAG_UNMAP))
			return VIRTIO_BLK_S_UNSUPP;
		if (s->num_sectors > IOS_BLK_MAX_DWZ_SECTORS ||
		    !blk_range_ok(d, s->sector, s->num_sectors))
			return VIRTIO_BLK_S_IOERR;
		s->unmap = flags & BLK_SEG_FLAG_UNMAP;
	}
	r->nsegs = n;
	return VIRTIO_BLK_S_OK;
}

void ios_blk_parse(const struct ios_blk_dev *d, const void *rd, uint32_t rdlen, uint32_t wcap,
		   struct ios_blk_req *r)
{
	const uint8_t *p = rd;
	uint32_t len;

	r->op = IOS_BLK_OP_UNSUPPORTED;
	r->status = VIRTIO_BLK_S_IOERR;
	r->backend = false;
	r->no_status = false;
	r->error = 0;
	r->wcap = wcap;
	r->sector = 0;
	r->len = 0;
	r->wdata = NULL;
	r->nsegs = 0;
	r->seg = 0;
	r->lend = false;
	r->io.lent = false;

	if (rdlen >= IOS_BLK_HDR_LEN) {
		r->op = blk_op_of(get_le32(p));
		r->sector = get_le64(p + 8);
	}
	if (wcap == 0) {
		r->no_status = true;
		return;
	}
	if (rdlen < IOS_BLK_HDR_LEN)
		return;

	switch (r->op) {
	case IOS_BLK_OP_READ:
		len = wcap - 1;
		if (len % IOS_SECTOR_SIZE || !blk_range_ok(d, r->sector, len / IOS_SECTOR_SIZE))
			return;
		r->len = len;
		break;
	case IOS_BLK_OP_WRITE:
		len = rdlen - IOS_BLK_HDR_LEN;
		if (d->read_only)
			return;
		if (len % IOS_SECTOR_SIZE || !blk_range_ok(d, r->sector, len / IOS_SECTOR_SIZE))
			return;
		r->len = len;
		r->wdata = p + IOS_BLK_HDR_LEN;
		break;
	case IOS_BLK_OP_FLUSH:
	case IOS_BLK_OP_GET_ID:
		break;
	case IOS_BLK_OP_DISCARD:
	case IOS_BLK_OP_WRITE_ZEROES:
		r->status = blk_parse_segs(d, p + IOS_BLK_HDR_LEN, rdlen - IOS_BLK_HDR_LEN, r);
		if (r->status != VIRTIO_BLK_S_OK)
			return;
		if (d->read_only) {
			r->status = VIRTIO_BLK_S_IOERR;
			return;
		}
		break;
	case IOS_BLK_OP_UNSUPPORTED:
	default:
		r->status = VIRTIO_BLK_S_UNSUPP;
		return;
	}
	r->status = VIRTIO_BLK_S_OK;
	switch (r->op) {
	case IOS_BLK_OP_READ:
	case IOS_BLK_OP_WRITE:
		r->backend = r->len > 0;
		break;
	case IOS_BLK_OP_GET_ID:
		r->backend = false;
		break;
	default:
		r->backend = true;
		break;
	}
}

static void blk_io_done(struct ios_bdev_io *io);

static int blk_submit_seg(struct ios_blk_req *r)
{
	const struct ios_blk_seg *s = &r->segs[r->seg];

	r->io.op = r->op == IOS_BLK_OP_DISCARD ? IOS_BDEV_DISCARD : IOS_BDEV_WRITE_ZEROES;
	r->io.offset = s->sector * IOS_SECTOR_SIZE;
	r->io.len = (uint64_t)s->num_sectors * IOS_SECTOR_SIZE;
	r->io.unmap = s->unmap;
	r->io.lend = false;
	r->io.iov = NULL;
	r->io.iovcnt = 0;
	r->io.cb = blk_io_done;
	return ios_bdev_submit(r->chan, &r->io);
}

static void blk_io_done(struct ios_bdev_io *io)
{
	struct ios_blk_req *r = container_of(io, struct ios_blk_req, io);
	int rc;

	if (io->result < 0) {
		r->status = VIRTIO_BLK_S_IOERR;
		r->error = io->result;
		r->done(r);
		return;
	}
	if ((r->op == IOS_BLK_OP_DISCARD || r->op == IOS_BLK_OP_WRITE_ZEROES) &&
	    r->seg + 1 < r->nsegs) {
		r->seg++;
		rc = blk_submit_seg(r);
		if (rc == 0)
			return;
		r->status = VIRTIO_BLK_S_IOERR;
		r->error = rc;
		r->done(r);
		return;
	}
	r->status = VIRTIO_BLK_S_OK;
	r->done(r);
}

int ios_blk_submit(struct ios_blk_req *r, struct ios_bdev_chan *ch, uint8_t *buf)
{
	int rc;

	r->chan = ch;
	r->io.cb = blk_io_done;
	r->io.lend = false;
	r->io.unmap = false;
	r->io.iov = NULL;
	r->io.iovcnt = 0;
	r->io.len = 0;
	r->io.offset = 0;
	switch (r->op) {
	case IOS_BLK_OP_READ:
	case IOS_BLK_OP_WRITE:
		if (r->op == IOS_BLK_OP_WRITE && r->wdata)
			memcpy(buf, r->wdata, r->len);
		r->iov.iov_base = buf;
		r->iov.iov_len = r->len;
		r->io.op = r->op == IOS_BLK_OP_READ ? IOS_BDEV_READ : IOS_BDEV_WRITE;
		r->io.offset = r->sector * IOS_SECTOR_SIZE;
		r->io.len = r->len;
		r->io.iov = &r->iov;
		r->io.iovcnt = 1;
		r->io.lend = r->op == IOS_BLK_OP_READ && r->lend;
		rc = ios_bdev_submit(ch, &r->io);
		break;
	case IOS_BLK_OP_FLUSH:
		r->io.op = IOS_BDEV_FLUSH;
		rc = ios_bdev_submit(ch, &r->io);
		break;
	case IOS_BLK_OP_DISCARD:
	case IOS_BLK_OP_WRITE_ZEROES:
		r->seg = 0;
		rc = blk_submit_seg(r);
		break;
	default:
		rc = -EINVAL;
		break;
	}
	r->wdata = NULL;
	if (rc < 0) {
		r->status = VIRTIO_BLK_S_IOERR;
		r->error = rc;
	}
	return rc;
}

void ios_blk_take_data(struct ios_blk_req *r, uint8_t *buf)
{
	if (r->wdata)
		memcpy(buf, r->wdata, r->len);
	r->wdata = NULL;
}

uint32_t ios_blk_resp(const struct ios_blk_dev *d, const struct ios_blk_req *r, uint8_t *buf)
{
	uint32_t data = r->wcap - 1, n;

	if (r->no_status)
		return 0;
	if (r->op == IOS_BLK_OP_READ && r->status == VIRTIO_BLK_S_OK) {
		/* The data is in place: data == r->len. */
	} else if (r->op == IOS_BLK_OP_GET_ID && r->status == VIRTIO_BLK_S_OK) {
		n = data < IOS_BLK_ID_LEN ? data : IOS_BLK_ID_LEN;
		memcpy(buf, d->id, n);
		memset(buf + n, 0, data - n);
	} else {
		memset(buf, 0, data);
	}
	buf[data] = r->status;
	return r->wcap;
}

/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * RAM backend: the device is a zeroed allocation. Operations run at submit
 * time but complete through the channel's queue (ios_bdev_syncq), so
 * callers see the same
 * asynchronous contract as with any other backend. With the fault switch
 * on (bdev.h) they touch nothing and complete with EIO.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bdev.h"
#include "log.h"

struct bdev_ram {
	struct ios_bdev base;
	uint8_t *mem;
};

static struct bdev_ram *to_ram(struct ios_bdev *b)
{
	return container_of(b, struct bdev_ram, base);
}

static int ram_open(const char *name, const struct vrio_topo_device *td, struct ios_bdev **out)
{
	uint64_t size = td->backend.size & ~(uint64_t)(IOS_SECTOR_SIZE - 1);
	struct bdev_ram *r;

	if (size == 0) {
		VRIO_ERR("%s: ram backend needs a size of at least %u bytes", name,
			 IOS_SECTOR_SIZE);
		return -EINVAL;
	}
	if (size != td->backend.size)
		VRIO_WARN("%s: ram size %llu rounded down to %llu bytes", name,
			  (unsigned long long)td->backend.size, (unsigned long long)size);
	if (size > SIZE_MAX) {
		VRIO_ERR("%s: ram size %llu does not fit in memory", name,
			 (unsigned long long)size);
		return -EFBIG;
	}
	r = calloc(1, sizeof(*r));
	if (!r)
		goto err_nomem;
	r->mem = calloc(1, (size_t)size);
	if (!r->mem)
		goto err_free;
	r->base.size = size;
	r->base.block_size = IOS_SECTOR_SIZE;
	r->base.phys_block_size = IOS_SECTOR_SIZE;
	r->base.read_only = td->read_only;
	*out = &r->base;
	return 0;

err_free:
	free(r);
err_nomem:
	VRIO_ERR("%s: cannot allocate %llu bytes of ram", name, (unsigned long long)size);
	return -ENOMEM;
}

static void ram_close(struct ios_bdev *b)
{
	struct bdev_ram *r = to_ram(b);

	free(r->mem);
	free(r);
}

static int ram_range_ok(const struct ios_bdev *b, const struct ios_bdev_io *io)
{
	return io->offset <= b->size && io->len <= b->size - io->offset;
}

static int ram_rw(struct ios_bdev_chan *ch, struct ios_bdev_io *io, int write)
{
	struct bdev_ram *r = to_ram(ch->bdev);
	uint64_t off = io->offset;
	unsigned i;

	if (ios_bdev_faulty(&r->base)) {
		ios_bdev_syncq_done(ch, io, -EIO);
		return 0;
	}
	if (!ram_range_ok(&r->base, io)) {
		ios_bdev_syncq_done(ch, io, -EINVAL);
		return 0;
	}
	for (i = 0; i < io->iovcnt; i++) {
		if (io->iov[i].iov_len > r->base.size - off) {
			ios_bdev_syncq_done(ch, io, -EINVAL);
			return 0;
		}
		if (write)
			memcpy(r->mem + off, io->iov[i].iov_base, io->iov[i].iov_len);
		else
			memcpy(io->iov[i].iov_base, r->mem + off, io->iov[i].iov_len);
		off += io->iov[i].iov_len;
	}
	ios_bdev_syncq_done(ch, io, 0);
	return 0;
}

static int ram_read(struct ios_bdev_chan *ch, struct ios_bdev_io *io)
{
	return ram_rw(ch, io, 0);
}

static int ram_write(struct ios_bdev_chan *ch, struct ios_bdev_io *io)
{
	if (ch->bdev->read_only)
		return -EROFS;
	return ram_rw(ch, io, 1);
}

static int ram_flush(struct ios_bdev_chan *ch, struct ios_bdev_io *io)
{
	ios_bdev_syncq_done(ch, io, ios_bdev_faulty(ch->bdev) ? -EIO : 0);
	return 0;
}

/* Both leave zeroes behind: reads of a discarded range return zeroes. */
static int ram_zero(struct ios_bdev_chan *ch, struct ios_bdev_io *io)
{
	struct bdev_ram *r = to_ram(ch->bdev);

	if (r->base.read_only)
		return -EROFS;
	if (ios_bdev_faulty(&r->base)) {
		ios_bdev_syncq_done(ch, io, -EIO);
		return 0;
	}
	if (!ram_range_ok(&r->base, io)) {
		ios_bdev_syncq_done(ch, io, -EINVAL);
		return 0;
	}
	memset(r->mem + io->offset, 0, (size_t)io->len);
	ios_bdev_syncq_done(ch, io, 0);
	return 0;
}

const struct ios_bdev_ops ios_bdev_ram_ops = {
	.name = "ram",
	.kind = VRIO_BACKEND_RAM,
	.open = ram_open,
	.close = ram_close,
	.chan_open = ios_bdev_syncq_open,
	.chan_close = ios_bdev_syncq_close,
	.read = ram_read,
	.write = ram_write,
	.flush = ram_flush,
	.discard = ram_zero,
	.write_zeroes = ram_zero,
	.poll = ios_bdev_syncq_poll,
};

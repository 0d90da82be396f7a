/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Null backend: a device of the given size that stores nothing, to measure
 * the data path without a backend's cost. Writes are dropped; flush,
 * discard and write-zeroes succeed; reads return zeroes. Ranges, read-only
 * and the fault switch (bdev.h) are checked as any backend checks them, so
 * the device model sees the same answers as from ram.
 *
 * SPDK's null bdev leaves a read's buffer as it finds it: there the buffer
 * is the guest's own memory, so a guest can only see what it had. Here the
 * buffer is the io-server's, recycled between the requests of every device
 * on its reactor, and the RESP carries it whole to the guest (blk.h): left
 * alone it would hand one guest another's data. So a read lends zeroes
 * instead where its caller allows (bdev.h `lend`: the device has no stage
 * that would work on the data in place): one read-only anonymous mapping
 * for the process, which costs no memory (every page of it is the kernel's
 * zero page) and no write per request; else it zeroes the buffer. Nothing
 * is allocated for the size, which may be anything the topology accepts.
 *
 * Operations complete through the channel's queue (ios_bdev_syncq) from
 * the next poll(), as bdev.h asks of every backend.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "bdev.h"
#include "frame.h"
#include "log.h"

/* Reads this long or shorter may be lent: any one frame's payload. */
#define NULL_ZEROES_LEN ((size_t)VRIO_FRAME_MAX_PAYLOAD)

static pthread_once_t null_zeroes_once = PTHREAD_ONCE_INIT;
/* Never unmapped: a lent read may still be on its way out when its
 * device is closed. NULL if the mapping failed: reads then zero. */
static const uint8_t *null_zeroes;

static void null_zeroes_map(void)
{
	void *p = mmap(NULL, NULL_ZEROES_LEN, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED) {
		VRIO_WARN("null backend: no zero mapping (%s): reads zero their buffers",
			  strerror(errno));
		return;
	}
	null_zeroes = p;
}

static int null_open(const char *name, const struct vrio_topo_device *td, struct ios_bdev **out)
{
	uint64_t size = td->backend.size & ~(uint64_t)(IOS_SECTOR_SIZE - 1);
	struct ios_bdev *b;

	if (size == 0) {
		VRIO_ERR("%s: null backend needs a size of at least %u bytes", name,
			 IOS_SECTOR_SIZE);
		return -EINVAL;
	}
	if (size != td->backend.size)
		VRIO_WARN("%s: null size %llu rounded down to %llu bytes", name,
			  (unsigned long long)td->backend.size, (unsigned long long)size);
	pthread_once(&null_zeroes_once, null_zeroes_map);
	b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->size = size;
	b->block_size = IOS_SECTOR_SIZE;
	b->phys_block_size = IOS_SECTOR_SIZE;
	b->read_only = td->read_only;
	*out = b;
	return 0;
}

static void null_close(struct ios_bdev *b)
{
	free(b);
}

/* The outcome of an io on this device before it does anything. */
static int null_check(const struct ios_bdev *b, const struct ios_bdev_io *io)
{
	if (ios_bdev_faulty(b))
		return -EIO;
	if (io->offset > b->size || io->len > b->size - io->offset)
		return -EINVAL;
	return 0;
}

static int null_read(struct ios_bdev_chan *ch, struct ios_bdev_io *io)
{
	uint64_t left = io->len;
	int rc = null_check(ch->bdev, io);
	unsigned i;

	if (rc == 0 && io->lend && io->iovcnt == 1 && null_zeroes && left <= NULL_ZEROES_LEN) {
		io->iov[0].iov_base = (void *)null_zeroes;
		io->lent = true;
		left = 0;
	}
	for (i = 0; rc == 0 && i < io->iovcnt && left; i++) {
		size_t n = io->iov[i].iov_len < left ? io->iov[i].iov_len : (size_t)left;

		memset(io->iov[i].iov_base, 0, n);
		left -= n;
	}
	ios_bdev_syncq_done(ch, io, rc);
	return 0;
}

/* write, discard and write-zeroes: checked, then nothing to do. */
static int null_drop(struct ios_bdev_chan *ch, struct ios_bdev_io *io)
{
	if (ch->bdev->read_only)
		return -EROFS;
	ios_bdev_syncq_done(ch, io, null_check(ch->bdev, io));
	return 0;
}

static int null_flush(struct ios_bdev_chan *ch, struct ios_bdev_io *io)
{
	ios_bdev_syncq_done(ch, io, ios_bdev_faulty(ch->bdev) ? -EIO : 0);
	return 0;
}

const struct ios_bdev_ops ios_bdev_null_ops = {
	.name = "null",
	.kind = VRIO_BACKEND_NULL,
	.open = null_open,
	.close = null_close,
	.chan_open = ios_bdev_syncq_open,
	.chan_close = ios_bdev_syncq_close,
	.read = null_read,
	.write = null_drop,
	.flush = null_flush,
	.discard = null_drop,
	.write_zeroes = null_drop,
	.poll = ios_bdev_syncq_poll,
};

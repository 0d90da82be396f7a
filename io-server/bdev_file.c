/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * File backend: a regular file or a block device, driven through one
 * io_uring per (device, reactor). Reads are prepared as they come and
 * handed to the kernel once per poll(); anything that writes is handed to
 * it at once, right after its caller's lease check (transport/lease.h): a
 * write left in the ring until the next poll could reach the kernel after
 * the lease lapsed, if the io-server hung in between. Short reads and
 * writes are resubmitted for the remainder.
 *
 * Discard punches a hole (it is advisory: a file system that cannot punch
 * still reports success). Write-zeroes uses ZERO_RANGE, or PUNCH_HOLE when
 * the guest allows unmapping, and falls back to the other mode once if the
 * file system refuses the first; both leave zeroes behind.
 *
 * While the bdev's fault switch is on (a test hook, bdev.h), ios are not
 * prepared at all: they wait on the channel's failed list and complete
 * with EIO at the next poll, whose eventfd is kicked so a sleeping reactor
 * comes to it.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <liburing.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bdev.h"
#include "log.h"

#define FILE_SQ_MAX 256u
#define FILE_SQ_MIN 8u
#define FILE_CQ_FACTOR 4u

struct bdev_file {
	struct ios_bdev base;
	int fd;
};

struct bdev_file_chan {
	struct ios_bdev_chan base;
	struct io_uring ring;
	int efd;
	unsigned inflight;		/* prepared SQEs whose CQE is not reaped */
	unsigned max_inflight;		/* what the CQ holds */
	struct ios_bdev_io *wait_head, *wait_tail;	/* waiting for room */
	struct ios_bdev_io *fail_head, *fail_tail;	/* the fault switch: EIO next poll */
};

static struct bdev_file *to_file(struct ios_bdev *b)
{
	return container_of(b, struct bdev_file, base);
}

static struct bdev_file_chan *to_file_chan(struct ios_bdev_chan *ch)
{
	return container_of(ch, struct bdev_file_chan, base);
}

static uint32_t file_pow2_block(uint64_t v)
{
	if (v < IOS_SECTOR_SIZE || v > (64u << 10) || (v & (v - 1)))
		return IOS_SECTOR_SIZE;
	return (uint32_t)v;
}

static int file_size_blkdev(const char *name, const char *path, int fd, struct bdev_file *f,
			    uint64_t *size)
{
	unsigned int lbs = 0, pbs = 0;

	if (ioctl(fd, BLKGETSIZE64, size) < 0) {
		VRIO_ERR("%s: BLKGETSIZE64 on %s: %s", name, path, strerror(errno));
		return -errno;
	}
	if (ioctl(fd, BLKSSZGET, &lbs) < 0)
		lbs = IOS_SECTOR_SIZE;
	if (ioctl(fd, BLKPBSZGET, &pbs) < 0)
		pbs = lbs;
	f->base.block_size = file_pow2_block(lbs);
	f->base.phys_block_size = file_pow2_block(pbs);
	if (f->base.phys_block_size < f->base.block_size)
		f->base.phys_block_size = f->base.block_size;
	return 0;
}

/* With O_DIRECT the file system dictates the alignment of offsets and
 * lengths: the device's logical block size, so the guest follows it. */
static uint32_t file_dio_align(int fd)
{
	struct statx stx;

	if (statx(fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &stx) < 0 ||
	    !(stx.stx_mask & STATX_DIOALIGN) || stx.stx_dio_mem_align > IOS_BDEV_BUF_ALIGN)
		return IOS_SECTOR_SIZE;
	return file_pow2_block(stx.stx_dio_offset_align);
}

static int file_open(const char *name, const struct vrio_topo_device *td, struct ios_bdev **out)
{
	const struct vrio_topo_backend *be = &td->backend;
	int flags = O_CLOEXEC | (td->read_only ? O_RDONLY : O_RDWR);
	struct bdev_file *f;
	uint64_t size;
	struct stat st;
	int rc;

	if (!be->path || !be->path[0]) {
		VRIO_ERR("%s: file backend without a path", name);
		return -EINVAL;
	}
	if (be->direct)
		flags |= O_DIRECT;
	if (!td->read_only && be->size > 0)
		flags |= O_CREAT;
	f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	f->fd = open(be->path, flags, 0600);
	if (f->fd < 0) {
		rc = -errno;
		VRIO_ERR("%s: cannot open %s%s: %s", name, be->path,
			 be->direct ? " with O_DIRECT" : "", strerror(errno));
		goto err_free;
	}
	if (fstat(f->fd, &st) < 0) {
		rc = -errno;
		VRIO_ERR("%s: fstat %s: %s", name, be->path, strerror(errno));
		goto err_close;
	}
	if (S_ISBLK(st.st_mode)) {
		rc = file_size_blkdev(name, be->path, f->fd, f, &size);
		if (rc < 0)
			goto err_close;
		if (be->size > size) {
			VRIO_ERR("%s: %s holds %llu bytes, less than the size %llu", name,
				 be->path, (unsigned long long)size,
				 (unsigned long long)be->size);
			rc = -ENOSPC;
			goto err_close;
		}
	} else if (S_ISREG(st.st_mode)) {
		size = (uint64_t)st.st_size;
		if (be->size > size) {
			if (td->read_only) {
				VRIO_ERR("%s: %s holds %llu bytes, less than the size %llu, and the device is read-only",
					 name, be->path, (unsigned long long)size,
					 (unsigned long long)be->size);
				rc = -EINVAL;
				goto err_close;
			}
			if (ftruncate(f->fd, (off_t)be->size) < 0) {
				rc = -errno;
				VRIO_ERR("%s: cannot extend %s to %llu bytes: %s", name, be->path,
					 (unsigned long long)be->size, strerror(errno));
				goto err_close;
			}
		}
		f->base.block_size = be->direct ? file_dio_align(f->fd) : IOS_SECTOR_SIZE;
		f->base.phys_block_size = file_pow2_block((uint64_t)st.st_blksize);
		if (f->base.phys_block_size < f->base.block_size)
			f->base.phys_block_size = f->base.block_size;
	} else {
		VRIO_ERR("%s: %s is neither a regular file nor a block device", name, be->path);
		rc = -EINVAL;
		goto err_close;
	}
	if (be->size > 0)
		size = be->size;
	size &= ~(uint64_t)(f->base.block_size - 1);
	if (size == 0) {
		VRIO_ERR("%s: %s is empty (give the backend a size to create it)", name, be->path);
		rc = -EINVAL;
		goto err_close;
	}
	f->base.size = size;
	f->base.read_only = td->read_only;
	*out = &f->base;
	return 0;

err_close:
	close(f->fd);
err_free:
	free(f);
	return rc;
}

static void file_close(struct ios_bdev *b)
{
	struct bdev_file *f = to_file(b);

	close(f->fd);
	free(f);
}

static int file_chan_open(struct ios_bdev *b, unsigned depth, struct ios_bdev_chan **out)
{
	struct io_uring_params p;
	struct bdev_file_chan *c;
	unsigned sq = FILE_SQ_MIN;
	int rc;

	while (sq < depth && sq < FILE_SQ_MAX)
		sq <<= 1;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->base.bdev = b;
	memset(&p, 0, sizeof(p));
	p.flags = IORING_SETUP_CQSIZE;
	p.cq_entries = sq * FILE_CQ_FACTOR;
	rc = io_uring_queue_init_params(sq, &c->ring, &p);
	if (rc < 0) {
		VRIO_ERR("%s: io_uring setup: %s", b->name, strerror(-rc));
		goto err_free;
	}
	c->max_inflight = p.cq_entries;
	c->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (c->efd < 0) {
		rc = -errno;
		VRIO_ERR("%s: eventfd: %s", b->name, strerror(errno));
		goto err_ring;
	}
	rc = io_uring_register_eventfd(&c->ring, c->efd);
	if (rc < 0) {
		VRIO_ERR("%s: io_uring eventfd: %s", b->name, strerror(-rc));
		goto err_efd;
	}
	*out = &c->base;
	return 0;

err_efd:
	close(c->efd);
err_ring:
	io_uring_queue_exit(&c->ring);
err_free:
	free(c);
	return rc;
}

static void file_chan_close(struct ios_bdev_chan *ch)
{
	struct bdev_file_chan *c = to_file_chan(ch);

	io_uring_queue_exit(&c->ring);
	close(c->efd);
	free(c);
}

static void file_prep(struct bdev_file_chan *c, struct io_uring_sqe *sqe, struct ios_bdev_io *io)
{
	int fd = to_file(c->base.bdev)->fd;

	switch (io->op) {
	case IOS_BDEV_READ:
		io_uring_prep_readv(sqe, fd, io->iov, io->iovcnt, io->offset + io->done);
		break;
	case IOS_BDEV_WRITE:
		io_uring_prep_writev(sqe, fd, io->iov, io->iovcnt, io->offset + io->done);
		break;
	case IOS_BDEV_FLUSH:
		io_uring_prep_fsync(sqe, fd, IORING_FSYNC_DATASYNC);
		break;
	case IOS_BDEV_DISCARD:
	case IOS_BDEV_WRITE_ZEROES:
		io_uring_prep_fallocate(sqe, fd, io->mode, (off_t)io->offset, (off_t)io->len);
		break;
	}
	io_uring_sqe_set_data(sqe, io);
	c->inflight++;
}

static void file_fail_later(struct bdev_file_chan *c, struct ios_bdev_io *io)
{
	uint64_t one = 1;

	io->next = NULL;
	if (c->fail_tail)
		c->fail_tail->next = io;
	else
		c->fail_head = io;
	c->fail_tail = io;
	if (write(c->efd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		VRIO_ERR_RL("%s: eventfd write: %s", c->base.bdev->name, strerror(errno));
}

/* Hands the prepared SQEs to the kernel; how many it took. */
static int file_submit(struct bdev_file_chan *c)
{
	int rc;

	if (!io_uring_sq_ready(&c->ring))
		return 0;
	rc = io_uring_submit(&c->ring);
	if (rc < 0 && rc != -EAGAIN && rc != -EBUSY && rc != -EINTR)
		VRIO_ERR_RL("%s: io_uring submit: %s", c->base.bdev->name, strerror(-rc));
	return rc > 0 ? rc : 0;
}

/* Prepares an SQE now (and submits it, if it writes), or parks the io
 * until the rings have room. */
static void file_queue(struct bdev_file_chan *c, struct ios_bdev_io *io)
{
	bool writes = io->op != IOS_BDEV_READ;
	struct io_uring_sqe *sqe = NULL;

	if (ios_bdev_faulty(c->base.bdev)) {
		file_fail_later(c, io);
		return;
	}
	if (!c->wait_head && c->inflight < c->max_inflight) {
		sqe = io_uring_get_sqe(&c->ring);
		if (!sqe && writes && file_submit(c) > 0)
			sqe = io_uring_get_sqe(&c->ring);
	}
	if (sqe) {
		file_prep(c, sqe, io);
		if (writes)
			file_submit(c);
		return;
	}
	io->next = NULL;
	if (c->wait_tail)
		c->wait_tail->next = io;
	else
		c->wait_head = io;
	c->wait_tail = io;
}

static int file_check(struct ios_bdev_chan *ch, const struct ios_bdev_io *io)
{
	const struct ios_bdev *b = ch->bdev;

	if (io->offset > b->size || io->len > b->size - io->offset)
		return -EINVAL;
	return 0;
}

static int file_read(struct ios_bdev_chan *ch, struct ios_bdev_io *io)
{
	int rc = file_check(ch, io);

	if (rc < 0)
		return rc;
	file_queue(to_file_chan(ch), io);
	return 0;
}

static int file_write(struct ios_bdev_chan *ch, struct ios_bdev_io *io)
{
	int rc = file_check(ch, io);

	if (rc < 0)
		return rc;
	if (ch->bdev->read_only)
		return -EROFS;
	file_queue(to_file_chan(ch), io);
	return 0;
}

static int file_flush(struct ios_bdev_chan *ch, struct ios_bdev_io *io)
{
	file_queue(to_file_chan(ch), io);
	return 0;
}

static int file_discard(struct ios_bdev_chan *ch, struct ios_bdev_io *io)
{
	int rc = file_check(ch, io);

	if (rc < 0)
		return rc;
	if (ch->bdev->read_only)
		return -EROFS;
	io->mode = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE;
	file_queue(to_file_chan(ch), io);
	return 0;
}

static int file_write_zeroes(struct ios_bdev_chan *ch, struct ios_bdev_io *io)
{
	int rc = file_check(ch, io);

	if (rc < 0)
		return rc;
	if (ch->bdev->read_only)
		return -EROFS;
	io->mode = FALLOC_FL_KEEP_SIZE |
		   (io->unmap ? FALLOC_FL_PUNCH_HOLE : FALLOC_FL_ZERO_RANGE);
	file_queue(to_file_chan(ch), io);
	return 0;
}

/* Drops `n` transferred bytes from the front of the io's iovecs. */
static void file_iov_advance(struct ios_bdev_io *io, uint64_t n)
{
	while (n && io->iovcnt) {
		if (n < io->iov[0].iov_len) {
			io->iov[0].iov_base = (char *)io->iov[0].iov_base + n;
			io->iov[0].iov_len -= n;
			return;
		}
		n -= io->iov[0].iov_len;
		io->iov++;
		io->iovcnt--;
	}
}

/* Returns 1 if the io completed, 0 if it was queued again. */
static int file_complete(struct bdev_file_chan *c, struct ios_bdev_io *io, int res)
{
	switch (io->op) {
	case IOS_BDEV_READ:
	case IOS_BDEV_WRITE:
		if (res == -EAGAIN || res == -EINTR) {
			file_queue(c, io);
			return 0;
		}
		if (res < 0)
			break;
		/* No progress: the file shrank under us, or the device ended. */
		if (res == 0) {
			res = -EIO;
			break;
		}
		io->done += (uint64_t)res;
		if (io->done < io->len) {
			file_iov_advance(io, (uint64_t)res);
			file_queue(c, io);
			return 0;
		}
		res = 0;
		break;
	case IOS_BDEV_FLUSH:
		break;
	case IOS_BDEV_DISCARD:
		if (res == -EOPNOTSUPP)
			res = 0;
		break;
	case IOS_BDEV_WRITE_ZEROES:
		if (res == -EOPNOTSUPP && io->done == 0) {
			io->done = 1;
			io->mode = FALLOC_FL_KEEP_SIZE | ((io->mode & FALLOC_FL_PUNCH_HOLE) ?
				   FALLOC_FL_ZERO_RANGE : FALLOC_FL_PUNCH_HOLE);
			file_queue(c, io);
			return 0;
		}
		break;
	}
	io->result = res < 0 ? res : 0;
	io->cb(io);
	return 1;
}

static int file_poll(struct ios_bdev_chan *ch, unsigned budget)
{
	struct bdev_file_chan *c = to_file_chan(ch);
	struct io_uring_cqe *cqe;
	struct io_uring_sqe *sqe;
	struct ios_bdev_io *io;
	unsigned reaped = 0;
	int work = 0, res;

	while (c->fail_head && reaped < budget) {
		io = c->fail_head;
		c->fail_head = io->next;
		if (!c->fail_head)
			c->fail_tail = NULL;
		io->next = NULL;
		io->result = -EIO;
		reaped++;
		io->cb(io);
	}
	while (c->wait_head && c->inflight < c->max_inflight) {
		sqe = io_uring_get_sqe(&c->ring);
		if (!sqe)
			break;
		io = c->wait_head;
		c->wait_head = io->next;
		if (!c->wait_head)
			c->wait_tail = NULL;
		file_prep(c, sqe, io);
	}
	work += file_submit(c);
	while (reaped < budget && io_uring_peek_cqe(&c->ring, &cqe) == 0) {
		io = io_uring_cqe_get_data(cqe);
		res = cqe->res;
		io_uring_cqe_seen(&c->ring, cqe);
		c->inflight--;
		file_complete(c, io, res);
		reaped++;
	}
	work += (int)reaped;
	return work;
}

static int file_chan_fd(struct ios_bdev_chan *ch)
{
	return to_file_chan(ch)->efd;
}

const struct ios_bdev_ops ios_bdev_file_ops = {
	.name = "file",
	.kind = VRIO_BACKEND_FILE,
	.open = file_open,
	.close = file_close,
	.chan_open = file_chan_open,
	.chan_close = file_chan_close,
	.read = file_read,
	.write = file_write,
	.flush = file_flush,
	.discard = file_discard,
	.write_zeroes = file_write_zeroes,
	.poll = file_poll,
	.chan_fd = file_chan_fd,
};

/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Block backends: what a storage backend implements for the io-server.
 *
 * A backend embeds struct ios_bdev first in its device object and struct
 * ios_bdev_chan first in its channel object, and gets back to itself with
 * container_of. A device is opened once; each reactor that serves it opens
 * its own channel (an io_uring for files), so the data path never shares a
 * queue between threads.
 *
 * Data operations are asynchronous: read/write/flush/discard/write_zeroes
 * queue an ios_bdev_io and return 0; the backend runs it and calls io->cb
 * from a later poll() on the same channel, never from inside the submit.
 * A submit that returns -errno has queued nothing and will call nothing.
 * Submissions may be batched until the next poll(): poll() is what hands
 * queued work to the kernel.
 */
#ifndef VRIO_IOSERVER_BDEV_H
#define VRIO_IOSERVER_BDEV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "topology.h"

#ifndef container_of
#define container_of(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))
#endif

#define IOS_SECTOR_SIZE 512u
/* Data buffers handed to a backend are aligned to this (O_DIRECT-safe). */
#define IOS_BDEV_BUF_ALIGN 4096u

enum ios_bdev_op {
	IOS_BDEV_READ,
	IOS_BDEV_WRITE,
	IOS_BDEV_FLUSH,
	IOS_BDEV_DISCARD,
	IOS_BDEV_WRITE_ZEROES,
};

struct ios_bdev_io {
	/* Set by the caller. */
	enum ios_bdev_op op;
	bool unmap;		/* write_zeroes: the range may be deallocated */
	uint64_t offset;	/* bytes */
	uint64_t len;		/* bytes: the iovecs' total for read and write */
	struct iovec *iov;	/* read/write; the backend may advance it in place */
	unsigned iovcnt;
	/* read: after cb the caller only reads the data, and takes it from
	 * iov[0] (iovcnt 1), so the backend may lend bytes of its own there
	 * instead of filling the buffer (see `lent`). */
	bool lend;
	void (*cb)(struct ios_bdev_io *io);

	/* Set by the backend before cb: 0 or a negative errno. */
	int result;
	/* Set by the backend before cb, only when `lend` allowed it: the data
	 * is at iov[0].iov_base, read-only bytes of the backend's that stay
	 * valid for the life of the process; the caller's buffer is
	 * untouched. */
	bool lent;

	/* Backend private. */
	uint64_t done;
	int mode;
	struct ios_bdev_io *next;
};

struct ios_bdev {
	const struct ios_bdev_ops *ops;
	const char *name;		/* the device's, for logs */
	uint64_t size;			/* bytes, a multiple of IOS_SECTOR_SIZE */
	uint32_t block_size;		/* logical block size */
	uint32_t phys_block_size;	/* a power-of-two multiple of block_size */
	bool read_only;
	/* Atomic, a test hook (the control socket's bdev_fault): while set,
	 * every io submitted fails with EIO from a later poll() and touches
	 * nothing, as a device that stopped answering would. */
	bool fault;
};

struct ios_bdev_chan {
	struct ios_bdev *bdev;
};

struct ios_bdev_ops {
	const char *name;
	enum vrio_backend_kind kind;

	/* Mandatory. `name` is the device's and outlives the bdev. */
	int (*open)(const char *name, const struct vrio_topo_device *td, struct ios_bdev **out);
	void (*close)(struct ios_bdev *bdev);
	/* `depth` is how many ios the caller may have in flight at once. */
	int (*chan_open)(struct ios_bdev *bdev, unsigned depth, struct ios_bdev_chan **out);
	/* Only with nothing in flight. */
	void (*chan_close)(struct ios_bdev_chan *ch);
	int (*read)(struct ios_bdev_chan *ch, struct ios_bdev_io *io);
	int (*write)(struct ios_bdev_chan *ch, struct ios_bdev_io *io);
	int (*flush)(struct ios_bdev_chan *ch, struct ios_bdev_io *io);
	/* Submit what is queued and complete what is done, at most `budget`
	 * completions. Returns how much work it did (0: idle) or -errno. */
	int (*poll)(struct ios_bdev_chan *ch, unsigned budget);

	/* Optional: without them the device does not offer the command. */
	int (*discard)(struct ios_bdev_chan *ch, struct ios_bdev_io *io);
	int (*write_zeroes)(struct ios_bdev_chan *ch, struct ios_bdev_io *io);
	/* Optional: an eventfd that becomes readable when poll() has work, so
	 * an idle reactor can sleep. A backend without one completes only
	 * from poll() itself, right after the submit. */
	int (*chan_fd)(struct ios_bdev_chan *ch);
};

extern const struct ios_bdev_ops ios_bdev_file_ops;
extern const struct ios_bdev_ops ios_bdev_ram_ops;
extern const struct ios_bdev_ops ios_bdev_null_ops;

/* The registry. Checks mandatory ops and refuses a duplicate name or kind
 * (-EINVAL, -EEXIST). Call before any thread starts. */
int ios_bdev_register(const struct ios_bdev_ops *ops);
/* Registers the backends compiled into this binary; idempotent. */
int ios_bdev_register_builtin(void);
const struct ios_bdev_ops *ios_bdev_find(enum vrio_backend_kind kind);

/* Opens the device's backend; logs its own errors. */
int ios_bdev_open(const struct vrio_topo_device *td, struct ios_bdev **out);

static inline void ios_bdev_close(struct ios_bdev *bdev)
{
	bdev->ops->close(bdev);
}

static inline void ios_bdev_set_fault(struct ios_bdev *bdev, bool fail)
{
	__atomic_store_n(&bdev->fault, fail, __ATOMIC_RELEASE);
}

static inline bool ios_bdev_faulty(const struct ios_bdev *bdev)
{
	return __atomic_load_n(&bdev->fault, __ATOMIC_RELAXED);
}

static inline bool ios_bdev_has_discard(const struct ios_bdev *bdev)
{
	return bdev->ops->discard != NULL;
}

static inline bool ios_bdev_has_write_zeroes(const struct ios_bdev *bdev)
{
	return bdev->ops->write_zeroes != NULL;
}

static inline int ios_bdev_chan_open(struct ios_bdev *bdev, unsigned depth,
				     struct ios_bdev_chan **out)
{
	return bdev->ops->chan_open(bdev, depth, out);
}

static inline void ios_bdev_chan_close(struct ios_bdev_chan *ch)
{
	ch->bdev->ops->chan_close(ch);
}

static inline int ios_bdev_chan_fd(struct ios_bdev_chan *ch)
{
	return ch->bdev->ops->chan_fd ? ch->bdev->ops->chan_fd(ch) : -1;
}

static inline int ios_bdev_poll(struct ios_bdev_chan *ch, unsigned budget)
{
	return ch->bdev->ops->poll(ch, budget);
}

int ios_bdev_submit(struct ios_bdev_chan *ch, struct ios_bdev_io *io);

/* A channel for backends that do an io at submit time (ram, null): the
 * io waits in the channel's queue and completes from the next poll(), as
 * the contract above asks. Their chan_open, chan_close and poll. */
int ios_bdev_syncq_open(struct ios_bdev *bdev, unsigned depth, struct ios_bdev_chan **out);
void ios_bdev_syncq_close(struct ios_bdev_chan *ch);
/* The io is done with result (0 or -errno): queued for the next poll. */
void ios_bdev_syncq_done(struct ios_bdev_chan *ch, struct ios_bdev_io *io, int result);
int ios_bdev_syncq_poll(struct ios_bdev_chan *ch, unsigned budget);

#endif

/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * What every vrio-bench device shares: the vhost-user connection, the
 * guest memory, the negotiated features and the vrings, set up in the
 * order a VMM uses. blkdrv.c and netdrv.c add their device on top.
 */
#ifndef VRIO_BENCH_VUDEV_H
#define VRIO_BENCH_VUDEV_H

#include <stdbool.h>
#include <stdint.h>

#include "mem.h"
#include "vhost_user.h"
#include "virtq.h"

#define VIRTIO_RING_F_INDIRECT_DESC 28
#define VIRTIO_RING_F_EVENT_IDX 29
#define VIRTIO_F_VERSION_1 32

#define BIT64(n) (1ull << (n))

struct vudev {
	struct vu_conn vu;
	struct gmem mem;
	uint64_t dev_features;
	uint64_t features;
	uint64_t protocol_features;
	unsigned int max_queues;
	unsigned int nq;
	uint16_t queue_size;
	struct virtq *vqs;
	bool started;
};

static inline bool vudev_has(const struct vudev *d, unsigned int bit)
{
	return d->features & BIT64(bit);
}

/*
 * Connect, take ownership, read the device's features (VERSION_1 required)
 * and negotiate the protocol features in `want_protocol` that it offers.
 * *offered_protocol gets what it offered. On error the connection is closed.
 */
int vudev_connect(struct vudev *d, const char *socket, int timeout_ms, uint64_t want_protocol,
		  uint64_t *offered_protocol);
/* Guest memory (rings plus extra bytes for the caller) and the vrings. */
int vudev_start(struct vudev *d, unsigned int nq, uint16_t queue_size, uint64_t extra);
/*
 * GET_VRING_BASE on each started queue, if the backend is still there;
 * check: complain if the backend did not consume everything we posted.
 */
void vudev_stop(struct vudev *d, bool check);
void vudev_close(struct vudev *d);

#endif

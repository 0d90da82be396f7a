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
#define VIRTIO_F_ACCESS_PLATFORM 33

/* Where vrio-bench puts guest memory in I/O virtual address space when it
 * plays a vIOMMU: IOVA = IOVA_BASE + guest-physical address. */
#define VUDEV_IOVA_BASE 0x100000000000ull
/* By default misses are answered with the page around the address, as a
 * vIOMMU mapping pages one by one would. */
#define VUDEV_IOTLB_GRANULE 4096ull

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

	/* Playing the VMM's vIOMMU (VIRTIO_F_ACCESS_PLATFORM negotiated). */
	bool iommu;
	int slave_fd;			/* our end of the backend's channel */
	/* Answers a miss: the mapping to give for iova (size 0: refuse it).
	 * NULL: the whole of guest memory at VUDEV_IOVA_BASE. */
	void (*iotlb_resolve)(struct vudev *d, uint64_t iova, uint64_t *map_iova,
			      uint64_t *size, uint64_t *uaddr, void *arg);
	void *iotlb_arg;
	uint64_t iotlb_granule;		/* what the default resolver maps per miss */
	uint64_t misses_served, misses_refused;

	const char *socket;		/* the caller's string, for reconnecting */
	/* VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD negotiated: the inflight
	 * region, asked for at the start and handed to every backend after. */
	bool keep_inflight;
	int inflight_fd;
	struct vu_inflight inflight;
	unsigned int reconnects;
};

static inline bool vudev_has(const struct vudev *d, unsigned int bit)
{
	return d->features & BIT64(bit);
}

/*
 * Connect, take ownership, read the device's features (VERSION_1 required)
 * and negotiate the protocol features in `want_protocol` that it offers.
 * *offered_protocol gets what it offered. With `iommu`, also the backend
 * channel and acknowledgements a vIOMMU needs, and the device must offer
 * VIRTIO_F_ACCESS_PLATFORM (the caller then negotiates it). On error the
 * connection is closed.
 */
int vudev_connect(struct vudev *d, const char *socket, int timeout_ms, uint64_t want_protocol,
		  uint64_t *offered_protocol, bool iommu);
/* Answers the backend's IOTLB misses; call while waiting on it. Returns
 * the misses answered or refused, -errno if the channel broke. */
int vudev_serve_iotlb(struct vudev *d);
/* The device address of guest-physical gpa. */
static inline uint64_t vudev_addr(const struct vudev *d, uint64_t gpa)
{
	return d->iommu ? VUDEV_IOVA_BASE + gpa : gpa;
}

/* Guest memory (rings plus extra bytes for the caller) and the vrings. */
int vudev_start(struct vudev *d, unsigned int nq, uint16_t queue_size, uint64_t extra);
/*
 * After the backend hung up: connect again (waiting up to timeout_ms for
 * it to listen), negotiate what was negotiated, hand it the inflight
 * region and the same memory and rings, each queue based at its used
 * index as it stands, as QEMU does with reconnect=1. The requests the
 * region says were in flight are the backend's to send again; the
 * caller's stay posted. Not with a vIOMMU.
 */
int vudev_reconnect(struct vudev *d, int timeout_ms);
/*
 * GET_VRING_BASE on each started queue, if the backend is still there;
 * check: complain if the backend did not consume everything we posted.
 */
void vudev_stop(struct vudev *d, bool check);
void vudev_close(struct vudev *d);

#endif

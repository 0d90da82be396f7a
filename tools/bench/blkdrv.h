/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * A virtio-blk driver over vhost-user: device set-up in the order a VMM
 * uses, request building and status codes.
 */
#ifndef VRIO_BENCH_BLKDRV_H
#define VRIO_BENCH_BLKDRV_H

#include <stdbool.h>
#include <stdint.h>

#include "vudev.h"

#define VIRTIO_BLK_F_SIZE_MAX 1
#define VIRTIO_BLK_F_SEG_MAX 2
#define VIRTIO_BLK_F_RO 5
#define VIRTIO_BLK_F_BLK_SIZE 6
#define VIRTIO_BLK_F_FLUSH 9
#define VIRTIO_BLK_F_MQ 12
#define VIRTIO_BLK_F_DISCARD 13
#define VIRTIO_BLK_F_WRITE_ZEROES 14

enum blk_type {
	BLK_T_IN = 0,
	BLK_T_OUT = 1,
	BLK_T_FLUSH = 4,
	BLK_T_GET_ID = 8,
	BLK_T_DISCARD = 11,
	BLK_T_WRITE_ZEROES = 13,
};

enum blk_status {
	BLK_S_OK = 0,
	BLK_S_IOERR = 1,
	BLK_S_UNSUPP = 2,
};

/* The status byte before the device writes it. */
#define BLK_S_UNSET 0xffu

struct virtio_blk_config {
	uint64_t capacity;
	uint32_t size_max;
	uint32_t seg_max;
	uint16_t cylinders;
	uint8_t heads;
	uint8_t sectors;
	uint32_t blk_size;
	uint8_t physical_block_exp;
	uint8_t alignment_offset;
	uint16_t min_io_size;
	uint32_t opt_io_size;
	uint8_t wce;
	uint8_t unused0;
	uint16_t num_queues;
	uint32_t max_discard_sectors;
	uint32_t max_discard_seg;
	uint32_t discard_sector_alignment;
	uint32_t max_write_zeroes_sectors;
	uint32_t max_write_zeroes_seg;
	uint8_t write_zeroes_may_unmap;
	uint8_t unused1[3];
};

/* The part of the config space we read: everything up to unused1. */
#define BLK_CONFIG_LEN 60u

struct blk_req_hdr {
	uint32_t type;
	uint32_t ioprio;
	uint64_t sector;
};

struct blkdev_opts {
	const char *socket;
	int timeout_ms;
	bool quiet;
	/* Feature bits not to negotiate even if offered. */
	uint64_t features_off;
	/* Play the VMM's vIOMMU: IOVAs, the backend's misses answered. */
	bool iommu;
	/* Keep the inflight region (the backend must offer it), to reconnect. */
	bool reconnect;
};

struct blkdev {
	struct vudev v;
	struct virtio_blk_config cfg;
};

/* A request's memory in the guest: header, data buffer, status byte. */
struct blk_req {
	struct blk_req_hdr *hdr;
	uint8_t *status;
	uint8_t *data;
	uint64_t hdr_gpa;
	uint64_t status_gpa;
	uint64_t data_gpa;
	uint32_t data_cap;
};

/* Connect and negotiate, up to and including SET_FEATURES. */
int blkdev_connect(struct blkdev *d, const struct blkdev_opts *o);
static inline int blkdev_start(struct blkdev *d, unsigned int nq, uint16_t queue_size,
			       uint64_t extra)
{
	return vudev_start(&d->v, nq, queue_size, extra);
}

static inline void blkdev_stop(struct blkdev *d, bool check)
{
	vudev_stop(&d->v, check);
}

static inline void blkdev_close(struct blkdev *d)
{
	vudev_close(&d->v);
}

static inline bool blkdev_has(const struct blkdev *d, unsigned int bit)
{
	return vudev_has(&d->v, bit);
}

static inline uint64_t blkdev_capacity_bytes(const struct blkdev *d)
{
	return d->cfg.capacity * 512u;
}

int blk_req_alloc(struct blkdev *d, struct blk_req *r, uint32_t data_cap);
/* Builds header, data and status descriptors; returns the head or -errno. */
int blk_req_submit(struct virtq *vq, struct blk_req *r, uint32_t type, uint64_t sector,
		   uint32_t len, void *cookie);

const char *blk_type_name(uint32_t type);
const char *blk_status_name(uint8_t status);

#endif

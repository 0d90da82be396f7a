/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The descriptor-chain walker: turns a head index from a split virtqueue into
 * host iovecs, readable segments first, then writable ones, refusing anything
 * a well-behaved driver would not post. It reads each descriptor once, so a
 * guest rewriting its table under us sees its later writes ignored, not
 * trusted.
 */
#ifndef VRIO_LOCALHV_WALKER_H
#define VRIO_LOCALHV_WALKER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>
#include <linux/virtio_ring.h>

#include "gmem.h"

/* Host segments one chain may map to (descriptors split at region edges). */
#define LHV_CHAIN_MAX_SEGS 512

enum lhv_walk_err {
	LHV_WALK_OK = 0,
	LHV_WALK_HEAD_OOB,		/* head index >= queue size */
	LHV_WALK_NEXT_OOB,		/* next index >= queue (or table) size */
	LHV_WALK_LOOP,			/* more descriptors than the table holds */
	LHV_WALK_TOO_LONG,		/* more segments than LHV_CHAIN_MAX_SEGS */
	LHV_WALK_BAD_ADDR,		/* a buffer outside guest memory */
	LHV_WALK_ZERO_LEN,		/* a zero-length buffer */
	LHV_WALK_READ_AFTER_WRITE,	/* a readable buffer after a writable one */
	LHV_WALK_BAD_INDIRECT,		/* indirect not negotiated, nested, or a bad table */
	LHV_WALK_TOO_BIG,		/* more bytes than the device takes per request */
	LHV_WALK_IOMMU_FAULT,		/* access the vIOMMU mapping does not allow */
	LHV_WALK_NR_ERRORS,
	/* Not an error: an address the IOTLB has no entry for yet (the gmem's
	 * IOTLB says which). Ask the VMM, walk again once it answered. */
	LHV_WALK_IOTLB_MISS = LHV_WALK_NR_ERRORS
};

struct lhv_walk_opts {
	const struct vring_desc *desc;	/* the queue's descriptor table (host VA) */
	uint16_t qsize;
	bool indirect;			/* VIRTIO_RING_F_INDIRECT_DESC negotiated */
	uint32_t max_bytes;		/* per direction */
	const struct lhv_gmem *mem;
};

struct lhv_chain {
	unsigned nr, nw;		/* seg[0, nr) readable, seg[nr, nr + nw) writable */
	uint32_t rlen, wlen;
	/* The guest addresses the chain touches lie within [lo, hi) (its
	 * descriptors' buffers and indirect table): what an invalidation of
	 * the device's IOTLB must wait for while the chain is in flight. */
	uint64_t lo, hi;
	struct iovec seg[LHV_CHAIN_MAX_SEGS];
};

/* Returns LHV_WALK_OK or one of the errors above (positive). */
int lhv_walk_chain(const struct lhv_walk_opts *o, uint16_t head, struct lhv_chain *c);
const char *lhv_walk_strerror(int err);
/* Short snake_case reason for metrics labels. */
const char *lhv_walk_reason(int err);

#endif

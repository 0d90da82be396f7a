/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * A device's IOTLB: the I/O virtual address ranges the VMM's vIOMMU has
 * mapped for it, each to a range of the VMM's own address space (the
 * `uaddr` of vhost-user's IOTLB messages) with read and/or write access.
 * Owned by the poller; the control thread only sends it messages.
 *
 * Entries never overlap: an update replaces what it covers, an
 * invalidation removes (or trims) what it covers.
 */
#ifndef VRIO_LOCALHV_IOTLB_H
#define VRIO_LOCALHV_IOTLB_H

#include <stdbool.h>
#include <stdint.h>

#define LHV_IOTLB_MAX	4096	/* entries; an update beyond it evicts the oldest */

enum {
	LHV_IOTLB_R = 1,	/* VHOST_ACCESS_RO */
	LHV_IOTLB_W = 2,	/* VHOST_ACCESS_WO */
};

struct lhv_iotlb_entry {
	uint64_t iova, size, uaddr;
	uint8_t perm;
	uint64_t seq;		/* insertion order, for eviction */
};

struct lhv_iotlb {
	struct lhv_iotlb_entry *e;	/* sorted by iova */
	unsigned n;
	uint64_t next_seq;
	/* The last failed lookup, for the miss the caller sends. */
	uint64_t miss_iova;
	uint8_t miss_perm;
	uint64_t hits;			/* lookups; one writer, relaxed atomics */
	uint64_t misses;		/* misses asked of the VMM (iommu.c) */
};

int lhv_iotlb_init(struct lhv_iotlb *t);
void lhv_iotlb_fini(struct lhv_iotlb *t);
/* 0, or -EINVAL for an empty, wrapping or permission-less range. */
int lhv_iotlb_update(struct lhv_iotlb *t, uint64_t iova, uint64_t size, uint64_t uaddr,
		     uint8_t perm);
/* Removes every byte of [iova, iova+size); returns the bytes removed. */
uint64_t lhv_iotlb_invalidate(struct lhv_iotlb *t, uint64_t iova, uint64_t size);
/*
 * The VMM address of iova for `perm` access, and how many bytes from there
 * the same entry covers (at most len): 0, -ENOENT (a miss: miss_iova is set)
 * or -EACCES (mapped without that access).
 */
int lhv_iotlb_lookup(struct lhv_iotlb *t, uint64_t iova, uint64_t len, uint8_t perm,
		     uint64_t *uaddr, uint64_t *run);

static inline bool lhv_ranges_overlap(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
	return a < b + blen && b < a + alen;
}

#endif

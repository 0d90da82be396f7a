/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * A guest's memory as local-hv sees it: the regions the VMM shared, by
 * guest-physical address and by the VMM's own address. Everything the guest
 * hands us is translated and bounds-checked here before it is touched.
 *
 * Without a vIOMMU a device's addresses are guest-physical. With one
 * (VIRTIO_F_ACCESS_PLATFORM) they are I/O virtual addresses: the IOTLB
 * turns them into VMM addresses, and the regions those into ours; access
 * is checked against what the mapping allows.
 */
#ifndef VRIO_LOCALHV_GMEM_H
#define VRIO_LOCALHV_GMEM_H

#include <stdint.h>
#include <sys/uio.h>

struct lhv_iotlb;

struct lhv_region {
	uint64_t gpa;
	uint64_t size;
	uint64_t hva;
	uint64_t uaddr;		/* the VMM's address of the region */
};

struct lhv_gmem {
	unsigned n;
	struct lhv_region *r;
	struct lhv_iotlb *iotlb;	/* non-NULL: addresses are IOVAs */
};

/* Access a mapping must allow (iotlb.h's LHV_IOTLB_R / _W). */
enum { LHV_GMEM_READ = 1, LHV_GMEM_WRITE = 2 };

/*
 * Translate [addr, addr+len) for `perm` access into host iovecs, splitting
 * where the range crosses regions (or IOTLB entries). Appends at most `max`
 * entries to iov and returns how many, -EFAULT if any byte is outside guest
 * memory, -E2BIG if it needs more than `max` entries, and with a vIOMMU
 * -ENOENT for an IOTLB miss (the IOTLB records which) or -EACCES for access
 * the mapping does not allow. len 0 is -EINVAL.
 */
int lhv_gmem_map(const struct lhv_gmem *m, uint64_t addr, uint64_t len, unsigned perm,
		 struct iovec *iov, unsigned max);

/* A contiguous host pointer for [addr, addr+len), or NULL with *err set
 * (the errors of lhv_gmem_map). */
void *lhv_gmem_ptr(const struct lhv_gmem *m, uint64_t addr, uint64_t len, unsigned perm,
		   int *err);

#endif

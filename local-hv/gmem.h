/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * A guest's memory as local-hv sees it: the regions the VMM shared, by
 * guest-physical address. Everything the guest hands us is translated and
 * bounds-checked here before it is touched.
 */
#ifndef VRIO_LOCALHV_GMEM_H
#define VRIO_LOCALHV_GMEM_H

#include <stdint.h>
#include <sys/uio.h>

struct lhv_region {
	uint64_t gpa;
	uint64_t size;
	uint64_t hva;
};

struct lhv_gmem {
	unsigned n;
	struct lhv_region *r;
};

/*
 * Translate [gpa, gpa+len) into host iovecs, splitting where the range
 * crosses regions. Appends at most `max` entries to iov and returns how many,
 * -EFAULT if any byte is outside guest memory, or -E2BIG if it needs more
 * than `max` entries. len 0 is -EINVAL.
 */
int lhv_gmem_map(const struct lhv_gmem *m, uint64_t gpa, uint64_t len, struct iovec *iov,
		 unsigned max);

/* A contiguous host pointer for [gpa, gpa+len), or NULL. */
void *lhv_gmem_ptr(const struct lhv_gmem *m, uint64_t gpa, uint64_t len);

#endif

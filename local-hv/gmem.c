/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>

#include "gmem.h"
#include "iotlb.h"

static const struct lhv_region *find_region(const struct lhv_gmem *m, uint64_t a, bool by_uaddr)
{
	unsigned i;

	for (i = 0; i < m->n; i++) {
		uint64_t base = by_uaddr ? m->r[i].uaddr : m->r[i].gpa;

		if (a >= base && a - base < m->r[i].size)
			return &m->r[i];
	}
	return NULL;
}

/* [a, a+len) of guest-physical or VMM addresses into iovecs from *n on. */
static int map_regions(const struct lhv_gmem *m, uint64_t a, uint64_t len, bool by_uaddr,
		       struct iovec *iov, unsigned *n, unsigned max)
{
	const struct lhv_region *r;
	uint64_t off, chunk;

	if (a + len < a)
		return -EFAULT;
	while (len) {
		r = find_region(m, a, by_uaddr);
		if (!r)
			return -EFAULT;
		if (*n == max)
			return -E2BIG;
		off = a - (by_uaddr ? r->uaddr : r->gpa);
		chunk = r->size - off;
		if (chunk > len)
			chunk = len;
		iov[*n].iov_base = (void *)(uintptr_t)(r->hva + off);
		iov[*n].iov_len = chunk;
		(*n)++;
		a += chunk;
		len -= chunk;
	}
	return 0;
}

int lhv_gmem_map(const struct lhv_gmem *m, uint64_t addr, uint64_t len, unsigned perm,
		 struct iovec *iov, unsigned max)
{
	uint64_t uaddr, run;
	unsigned n = 0;
	int rc;

	if (len == 0)
		return -EINVAL;
	if (addr + len < addr)
		return -EFAULT;
	if (!m->iotlb) {
		rc = map_regions(m, addr, len, false, iov, &n, max);
		return rc < 0 ? rc : (int)n;
	}
	while (len) {
		rc = lhv_iotlb_lookup(m->iotlb, addr, len, (uint8_t)perm, &uaddr, &run);
		if (rc == 0)
			rc = map_regions(m, uaddr, run, true, iov, &n, max);
		if (rc < 0)
			return rc;
		addr += run;
		len -= run;
	}
	return (int)n;
}

void *lhv_gmem_ptr(const struct lhv_gmem *m, uint64_t addr, uint64_t len, unsigned perm,
		   int *err)
{
	struct iovec iov;
	int n = lhv_gmem_map(m, addr, len, perm, &iov, 1);

	if (n < 0) {
		/* Two pieces: not contiguous for us, a fault for the caller. */
		*err = n == -E2BIG ? -EFAULT : n;
		return NULL;
	}
	return iov.iov_base;
}

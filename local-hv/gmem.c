/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <stddef.h>

#include "gmem.h"

static const struct lhv_region *find_region(const struct lhv_gmem *m, uint64_t gpa)
{
	unsigned i;

	for (i = 0; i < m->n; i++)
		if (gpa >= m->r[i].gpa && gpa - m->r[i].gpa < m->r[i].size)
			return &m->r[i];
	return NULL;
}

int lhv_gmem_map(const struct lhv_gmem *m, uint64_t gpa, uint64_t len, struct iovec *iov,
		 unsigned max)
{
	const struct lhv_region *r;
	uint64_t off, chunk;
	unsigned n = 0;

	if (len == 0)
		return -EINVAL;
	if (gpa + len < gpa)
		return -EFAULT;
	while (len) {
		r = find_region(m, gpa);
		if (!r)
			return -EFAULT;
		if (n == max)
			return -E2BIG;
		off = gpa - r->gpa;
		chunk = r->size - off;
		if (chunk > len)
			chunk = len;
		iov[n].iov_base = (void *)(uintptr_t)(r->hva + off);
		iov[n].iov_len = chunk;
		n++;
		gpa += chunk;
		len -= chunk;
	}
	return (int)n;
}

void *lhv_gmem_ptr(const struct lhv_gmem *m, uint64_t gpa, uint64_t len)
{
	const struct lhv_region *r = find_region(m, gpa);

	if (!r || len > r->size - (gpa - r->gpa))
		return NULL;
	return (void *)(uintptr_t)(r->hva + (gpa - r->gpa));
}

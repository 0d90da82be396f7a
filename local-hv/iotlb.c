/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "iotlb.h"

int lhv_iotlb_init(struct lhv_iotlb *t)
{
	memset(t, 0, sizeof(*t));
	t->e = calloc(LHV_IOTLB_MAX, sizeof(*t->e));
	return t->e ? 0 : -ENOMEM;
}

void lhv_iotlb_fini(struct lhv_iotlb *t)
{
	free(t->e);
	memset(t, 0, sizeof(*t));
}

/* The first entry that ends after iova. */
static unsigned first_after(const struct lhv_iotlb *t, uint64_t iova)
{
	unsigned lo = 0, hi = t->n, mid;

	while (lo < hi) {
		mid = (lo + hi) / 2;
		if (t->e[mid].iova + t->e[mid].size <= iova)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static void remove_at(struct lhv_iotlb *t, unsigned i)
{
	memmove(&t->e[i], &t->e[i + 1], (t->n - i - 1) * sizeof(t->e[0]));
	t->n--;
}

static void insert_at(struct lhv_iotlb *t, unsigned i, const struct lhv_iotlb_entry *e)
{
	memmove(&t->e[i + 1], &t->e[i], (t->n - i) * sizeof(t->e[0]));
	t->e[i] = *e;
	t->n++;
}

uint64_t lhv_iotlb_invalidate(struct lhv_iotlb *t, uint64_t iova, uint64_t size)
{
	uint64_t end = iova + size, removed = 0, e_end;
	struct lhv_iotlb_entry *e, tail;
	unsigned i;

	if (size == 0)
		return 0;
	if (end < iova)
		end = UINT64_MAX;
	for (i = first_after(t, iova); i < t->n && t->e[i].iova < end;) {
		e = &t->e[i];
		e_end = e->iova + e->size;
		if (e->iova >= iova && e_end <= end) {
			removed += e->size;
			remove_at(t, i);
			continue;
		}
		if (e->iova < iova && e_end > end) {
			/* The range is inside: split in two. */
			tail = *e;
			tail.uaddr += end - e->iova;
			tail.iova = end;
			tail.size = e_end - end;
			e->size = iova - e->iova;
			removed += size;
			if (t->n < LHV_IOTLB_MAX)
				insert_at(t, i + 1, &tail);
			return removed;
		}
		if (e->iova < iova) {
			removed += e_end - iova;
			e->size = iova - e->iova;
		} else {
			removed += end - e->iova;
			e->uaddr += end - e->iova;
			e->size = e_end - end;
			e->iova = end;
		}
		i++;
	}
	return removed;
}

static void evict_oldest(struct lhv_iotlb *t)
{
	unsigned i, old = 0;

	for (i = 1; i < t->n; i++)
		if (t->e[i].seq < t->e[old].seq)
			old = i;
	remove_at(t, old);
}

int lhv_iotlb_update(struct lhv_iotlb *t, uint64_t iova, uint64_t size, uint64_t uaddr,
		     uint8_t perm)
{
	struct lhv_iotlb_entry e = { iova, size, uaddr, perm, 0 };

	if (size == 0 || iova + size < iova || uaddr + size < uaddr ||
	    !(perm & (LHV_IOTLB_R | LHV_IOTLB_W)) || (perm & ~(LHV_IOTLB_R | LHV_IOTLB_W)))
		return -EINVAL;
	lhv_iotlb_invalidate(t, iova, size);
	/* Each split above may have taken a slot: make room before inserting. */
	while (t->n >= LHV_IOTLB_MAX - 1)
		evict_oldest(t);
	e.seq = t->next_seq++;
	insert_at(t, first_after(t, iova), &e);
	return 0;
}

int lhv_iotlb_lookup(struct lhv_iotlb *t, uint64_t iova, uint64_t len, uint8_t perm,
		     uint64_t *uaddr, uint64_t *run)
{
	unsigned i = first_after(t, iova);
	const struct lhv_iotlb_entry *e = i < t->n ? &t->e[i] : NULL;
	uint64_t off;

	if (!e || e->iova > iova) {
		t->miss_iova = iova;
		t->miss_perm = perm;
		return -ENOENT;
	}
	__atomic_store_n(&t->hits, t->hits + 1, __ATOMIC_RELAXED);
	if ((e->perm & perm) != perm)
		return -EACCES;
	off = iova - e->iova;
	*uaddr = e->uaddr + off;
	*run = e->size - off < len ? e->size - off : len;
	return 0;
}

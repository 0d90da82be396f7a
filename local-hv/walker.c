/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "walker.h"

static const struct {
	const char *text;
	const char *reason;
} walk_errors[LHV_WALK_NR_ERRORS] = {
	[LHV_WALK_OK] = { "ok", "ok" },
	[LHV_WALK_HEAD_OOB] = { "head index out of range", "head_out_of_range" },
	[LHV_WALK_NEXT_OOB] = { "next index out of range", "next_out_of_range" },
	[LHV_WALK_LOOP] = { "descriptor loop", "loop" },
	[LHV_WALK_TOO_LONG] = { "chain too long", "too_long" },
	[LHV_WALK_BAD_ADDR] = { "buffer outside guest memory", "bad_address" },
	[LHV_WALK_ZERO_LEN] = { "zero-length buffer", "zero_length" },
	[LHV_WALK_READ_AFTER_WRITE] = { "readable buffer after a writable one",
					"read_after_write" },
	[LHV_WALK_BAD_INDIRECT] = { "bad indirect descriptor", "bad_indirect" },
	[LHV_WALK_TOO_BIG] = { "request larger than the device takes", "too_big" },
	[LHV_WALK_IOMMU_FAULT] = { "access the vIOMMU mapping does not allow", "iommu_fault" },
};

static void span(struct lhv_chain *c, uint64_t addr, uint64_t len)
{
	if (addr < c->lo)
		c->lo = addr;
	if (addr + len > c->hi)
		c->hi = addr + len;
}

/* What a failed translation means for the chain. */
static int map_error(int rc)
{
	switch (rc) {
	case -ENOENT:
		return LHV_WALK_IOTLB_MISS;
	case -EACCES:
		return LHV_WALK_IOMMU_FAULT;
	default:
		return LHV_WALK_BAD_ADDR;
	}
}

const char *lhv_walk_strerror(int err)
{
	if (err == LHV_WALK_IOTLB_MISS)
		return "IOTLB miss";
	if (err < 0 || err >= LHV_WALK_NR_ERRORS)
		return "unknown";
	return walk_errors[err].text;
}

const char *lhv_walk_reason(int err)
{
	if (err < 0 || err >= LHV_WALK_NR_ERRORS)
		return "unknown";
	return walk_errors[err].reason;
}

/*
 * On the error path only: tell a loop from a merely long chain by following
 * the next pointers without mapping anything.
 */
static bool chain_loops(const struct vring_desc *table, uint32_t tsize, uint16_t idx)
{
	struct vring_desc d;
	uint32_t steps;

	for (steps = 0; steps <= tsize; steps++) {
		memcpy(&d, (const void *)&table[idx], sizeof(d));
		if (!(d.flags & VRING_DESC_F_NEXT) || d.next >= tsize)
			return false;
		idx = d.next;
	}
	return true;
}

/* Walk one table (the ring's, or an indirect one) starting at `idx`. */
static int walk_table(const struct lhv_walk_opts *o, const struct vring_desc *table,
		      uint32_t tsize, uint16_t idx, bool nested, struct lhv_chain *c)
{
	struct vring_desc d;
	uint32_t visited = 0;
	uint16_t start = idx;
	int n;

	for (;;) {
		if (++visited > tsize)
			return LHV_WALK_LOOP;
		/* One read of the descriptor; everything below uses the copy. */
		memcpy(&d, (const void *)&table[idx], sizeof(d));
		__atomic_signal_fence(__ATOMIC_SEQ_CST);

		if (d.flags & VRING_DESC_F_INDIRECT) {
			const struct vring_desc *itab;

			if (!o->indirect || nested || (d.flags & VRING_DESC_F_NEXT) ||
			    c->nr + c->nw)
				return LHV_WALK_BAD_INDIRECT;
			if (d.len == 0 || d.len % sizeof(struct vring_desc))
				return LHV_WALK_BAD_INDIRECT;
			/* A chain, indirect or not, is at most the queue size. */
			if (d.len / sizeof(struct vring_desc) > o->qsize)
				return LHV_WALK_TOO_LONG;
			itab = lhv_gmem_ptr(o->mem, d.addr, d.len, LHV_GMEM_READ, &n);
			if (!itab)
				return n == -EFAULT ? LHV_WALK_BAD_INDIRECT : map_error(n);
			span(c, d.addr, d.len);
			return walk_table(o, itab, d.len / sizeof(struct vring_desc), 0, true, c);
		}
		if (d.len == 0)
			return LHV_WALK_ZERO_LEN;
		if (d.flags & VRING_DESC_F_WRITE) {
			if (d.len > o->max_bytes - c->wlen)
				return LHV_WALK_TOO_BIG;
		} else {
			if (c->nw)
				return LHV_WALK_READ_AFTER_WRITE;
			if (d.len > o->max_bytes - c->rlen)
				return LHV_WALK_TOO_BIG;
		}
		n = lhv_gmem_map(o->mem, d.addr, d.len,
				 d.flags & VRING_DESC_F_WRITE ? LHV_GMEM_WRITE : LHV_GMEM_READ,
				 &c->seg[c->nr + c->nw], LHV_CHAIN_MAX_SEGS - (c->nr + c->nw));
		if (n == -E2BIG)
			return chain_loops(table, tsize, start) ? LHV_WALK_LOOP : LHV_WALK_TOO_LONG;
		if (n < 0)
			return map_error(n);
		span(c, d.addr, d.len);
		if (d.flags & VRING_DESC_F_WRITE) {
			c->nw += (unsigned)n;
			c->wlen += d.len;
		} else {
			c->nr += (unsigned)n;
			c->rlen += d.len;
		}
		if (!(d.flags & VRING_DESC_F_NEXT))
			return LHV_WALK_OK;
		if (d.next >= tsize)
			return LHV_WALK_NEXT_OOB;
		idx = d.next;
	}
}

int lhv_walk_chain(const struct lhv_walk_opts *o, uint16_t head, struct lhv_chain *c)
{
	c->nr = c->nw = 0;
	c->rlen = c->wlen = 0;
	c->lo = UINT64_MAX;
	c->hi = 0;
	if (head >= o->qsize)
		return LHV_WALK_HEAD_OOB;
	return walk_table(o, o->desc, o->qsize, head, false, c);
}

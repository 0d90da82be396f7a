/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * What a guest feeds local-hv: descriptor chains. The input describes a
 * small guest memory, the ring's descriptor table, the queue size, the head
 * and whether indirect descriptors were negotiated:
 *
 *   u8  bits 0-1: regions - 1, bit 2: indirect negotiated
 *   u16 queue size - 1 (mod 1024)
 *   u16 head (any value: the walker must refuse one out of range)
 *   u32 max_bytes
 *   4 x { u64 gpa, u16 size - 1 } regions (only the first n are used)
 *   then the descriptor table, qsize * 16 bytes, then the regions' contents
 *   in order (an indirect table lives in guest memory).
 *
 * Every region and the table are separate heap blocks of their exact size,
 * so ASan catches a read of the table or of an indirect table past its end.
 *
 * Properties: a walk either fails with one of the documented reasons or
 * returns segments that each lie inside one region, readable first, with
 * rlen and wlen their sums and neither above max_bytes.
 */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "fuzz_input.h"
#include "walker.h"

#define FUZZ_MAX_REGIONS 4
#define FUZZ_MAX_QSIZE 1024u

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	return 0;
}

/* Which region's host range holds [base, base + len), or -1. */
static int seg_region(const struct lhv_gmem *m, const struct iovec *v)
{
	uintptr_t b = (uintptr_t)v->iov_base;
	unsigned i;

	for (i = 0; i < m->n; i++) {
		uintptr_t lo = (uintptr_t)m->r[i].hva;

		if (b >= lo && b - lo < m->r[i].size && v->iov_len <= m->r[i].size - (b - lo))
			return (int)i;
	}
	return -1;
}

static void check_chain(const struct lhv_walk_opts *o, const struct lhv_chain *c)
{
	uint64_t rsum = 0, wsum = 0;
	unsigned i;

	FUZZ_CHECK(c->nr + c->nw >= 1, "an empty chain was accepted");
	FUZZ_CHECK(c->nr + c->nw <= LHV_CHAIN_MAX_SEGS, "%u + %u segments", c->nr, c->nw);
	for (i = 0; i < c->nr + c->nw; i++) {
		FUZZ_CHECK(c->seg[i].iov_len > 0, "segment %u is empty", i);
		FUZZ_CHECK(seg_region(o->mem, &c->seg[i]) >= 0,
			   "segment %u (%p, %zu bytes) lies outside guest memory", i,
			   c->seg[i].iov_base, c->seg[i].iov_len);
		if (i < c->nr)
			rsum += c->seg[i].iov_len;
		else
			wsum += c->seg[i].iov_len;
	}
	FUZZ_CHECK(rsum == c->rlen, "readable segments sum to %llu, rlen %u",
		   (unsigned long long)rsum, c->rlen);
	FUZZ_CHECK(wsum == c->wlen, "writable segments sum to %llu, wlen %u",
		   (unsigned long long)wsum, c->wlen);
	FUZZ_CHECK(c->rlen <= o->max_bytes && c->wlen <= o->max_bytes,
		   "%u readable, %u writable bytes above max_bytes %u", c->rlen, c->wlen,
		   o->max_bytes);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct lhv_chain chain;		/* 8 KiB: keep it off the stack */
	struct lhv_region regions[FUZZ_MAX_REGIONS];
	uint8_t *backing[FUZZ_MAX_REGIONS] = { 0 };
	struct fuzz_in in = { data, size };
	struct lhv_gmem mem = { .r = regions };
	struct lhv_walk_opts o;
	struct vring_desc *table;
	uint16_t head, qsize;
	unsigned i;
	uint8_t b;
	int rc;

	b = fuzz_u8(&in);
	mem.n = 1 + (b & 3u);
	o.indirect = b & 4u;
	qsize = (uint16_t)(1 + fuzz_u16(&in) % FUZZ_MAX_QSIZE);
	head = fuzz_u16(&in);
	o.max_bytes = fuzz_u32(&in);
	for (i = 0; i < FUZZ_MAX_REGIONS; i++) {
		regions[i].gpa = fuzz_u64(&in);
		regions[i].size = 1 + (uint64_t)fuzz_u16(&in);
	}
	table = malloc(qsize * sizeof(*table));
	FUZZ_CHECK(table != NULL, "malloc");
	fuzz_take(&in, table, qsize * sizeof(*table));
	for (i = 0; i < mem.n; i++) {
		backing[i] = malloc(regions[i].size);
		FUZZ_CHECK(backing[i] != NULL, "malloc");
		fuzz_take(&in, backing[i], regions[i].size);
		regions[i].hva = (uintptr_t)backing[i];
	}
	o.desc = table;
	o.qsize = qsize;
	o.mem = &mem;

	rc = lhv_walk_chain(&o, head, &chain);
	FUZZ_CHECK(rc >= LHV_WALK_OK && rc < LHV_WALK_NR_ERRORS, "walk returned %d", rc);
	FUZZ_CHECK(strcmp(lhv_walk_strerror(rc), "unknown") && strcmp(lhv_walk_reason(rc), "unknown"),
		   "no text for %d", rc);
	if (head >= qsize)
		FUZZ_CHECK(rc == LHV_WALK_HEAD_OOB, "head %u of %u: %s", head, qsize,
			   lhv_walk_strerror(rc));
	if (rc == LHV_WALK_OK)
		check_chain(&o, &chain);

	for (i = 0; i < mem.n; i++)
		free(backing[i]);
	free(table);
	return 0;
}

/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "iotlb.h"
#include "walker.h"

/*
 * Guest memory: two regions with a hole between them, and a third directly
 * after the second (a buffer may span those two).
 *   region 0: gpa 0x00000 - 0x40000
 *   hole    : gpa 0x40000 - 0x80000
 *   region 1: gpa 0x80000 - 0xc0000
 *   region 2: gpa 0xc0000 - 0x100000
 */
#define R0 0x00000ull
#define R1 0x80000ull
#define R2 0xc0000ull
#define RSIZE 0x40000ull
#define QSIZE 1024
#define TABLE_GPA 0x1000ull	/* the ring's descriptor table lives in region 0 */
#define ITABLE_GPA 0x20000ull	/* an indirect table */

static uint8_t *mem0, *mem1;	/* mem1 backs regions 1 and 2 contiguously */
static struct lhv_region regions[3];
static struct lhv_gmem gmem = { .n = 3, .r = regions };

static struct vring_desc *table(uint64_t gpa)
{
	return (struct vring_desc *)(mem0 + gpa);
}

static int setup(void **state)
{
	mem0 = calloc(1, RSIZE);
	mem1 = calloc(1, 2 * RSIZE);
	/* The VMM's addresses of the regions, for IOTLB translation. */
	regions[0] = (struct lhv_region){ R0, RSIZE, (uintptr_t)mem0, 0x7f0000000000 };
	regions[1] = (struct lhv_region){ R1, RSIZE, (uintptr_t)mem1, 0x7f0010000000 };
	regions[2] = (struct lhv_region){ R2, RSIZE, (uintptr_t)(mem1 + RSIZE), 0x7f0010040000 };
	return mem0 && mem1 ? 0 : -1;
}

static int teardown(void **state)
{
	free(mem0);
	free(mem1);
	return 0;
}

#define W VRING_DESC_F_WRITE
#define N VRING_DESC_F_NEXT
#define I VRING_DESC_F_INDIRECT

struct desc_spec {
	uint16_t idx;
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};

struct walk_case {
	const char *name;
	uint16_t head;
	bool indirect;
	struct desc_spec ring[6];
	struct desc_spec itab[4];	/* entries of the indirect table at ITABLE_GPA */
	int want;
	unsigned nr, nw;
	uint32_t rlen, wlen;
};

static const struct walk_case cases[] = {
	{ "blk read", 0, false,
	  { { 0, R1, 16, N, 1 }, { 1, R1 + 4096, 4096, N | W, 2 }, { 2, R1 + 8192, 1, W, 0 } },
	  {}, LHV_WALK_OK, 1, 2, 16, 4097 },
	{ "blk write, chain out of order", 7, false,
	  { { 7, R1, 16, N, 3 }, { 3, R1 + 4096, 4096, N, 5 }, { 5, R1 + 8192, 1, W, 0 } },
	  {}, LHV_WALK_OK, 2, 1, 4112, 1 },
	{ "buffer spanning two regions", 0, false,
	  { { 0, R2 - 100, 200, W, 0 } }, {}, LHV_WALK_OK, 0, 2, 0, 200 },
	{ "head out of range", QSIZE, false, { { 0, R1, 16, 0, 0 } }, {}, LHV_WALK_HEAD_OOB },
	{ "next out of range", 0, false,
	  { { 0, R1, 16, N, QSIZE } }, {}, LHV_WALK_NEXT_OOB },
	{ "loop", 0, false,
	  { { 0, R1, 16, N, 1 }, { 1, R1 + 16, 16, N, 0 } }, {}, LHV_WALK_LOOP },
	{ "self loop", 4, false, { { 4, R1, 16, N, 4 } }, {}, LHV_WALK_LOOP },
	{ "buffer in the hole", 0, false,
	  { { 0, R1, 16, N, 1 }, { 1, 0x50000, 512, W, 0 } }, {}, LHV_WALK_BAD_ADDR },
	{ "buffer past the end of memory", 0, false,
	  { { 0, R2 + RSIZE - 8, 16, 0, 0 } }, {}, LHV_WALK_BAD_ADDR },
	{ "address wraps around", 0, false,
	  { { 0, UINT64_MAX - 4, 16, 0, 0 } }, {}, LHV_WALK_BAD_ADDR },
	{ "zero length", 0, false,
	  { { 0, R1, 16, N, 1 }, { 1, R1 + 512, 0, W, 0 } }, {}, LHV_WALK_ZERO_LEN },
	{ "readable after writable", 0, false,
	  { { 0, R1, 16, N | W, 1 }, { 1, R1 + 512, 16, 0, 0 } }, {}, LHV_WALK_READ_AFTER_WRITE },
	{ "too big", 0, false,
	  { { 0, R1, 16, N, 1 }, { 1, R1 + 512, 0x30000, W, 0 } }, {}, LHV_WALK_TOO_BIG },
	{ "indirect", 2, true,
	  { { 2, ITABLE_GPA, 3 * 16, I, 0 } },
	  { { 0, R1, 16, N, 1 }, { 1, R1 + 512, 512, N | W, 2 }, { 2, R1 + 1024, 1, W, 0 } },
	  LHV_WALK_OK, 1, 2, 16, 513 },
	{ "indirect not negotiated", 2, false,
	  { { 2, ITABLE_GPA, 16, I, 0 } }, { { 0, R1, 16, 0, 0 } }, LHV_WALK_BAD_INDIRECT },
	{ "indirect with next", 2, true,
	  { { 2, ITABLE_GPA, 16, I | N, 3 } }, { { 0, R1, 16, 0, 0 } }, LHV_WALK_BAD_INDIRECT },
	{ "indirect length not a multiple of 16", 2, true,
	  { { 2, ITABLE_GPA, 20, I, 0 } }, { { 0, R1, 16, 0, 0 } }, LHV_WALK_BAD_INDIRECT },
	{ "indirect table larger than the queue", 2, true,
	  { { 2, ITABLE_GPA, (QSIZE + 1) * 16, I, 0 } }, {}, LHV_WALK_TOO_LONG },
	{ "indirect table outside memory", 2, true,
	  { { 2, 0x50000, 16, I, 0 } }, {}, LHV_WALK_BAD_INDIRECT },
	{ "nested indirect", 2, true,
	  { { 2, ITABLE_GPA, 16, I, 0 } }, { { 0, ITABLE_GPA, 16, I, 0 } },
	  LHV_WALK_BAD_INDIRECT },
	{ "loop inside indirect table", 2, true,
	  { { 2, ITABLE_GPA, 32, I, 0 } }, { { 0, R1, 16, N, 1 }, { 1, R1, 16, N, 0 } },
	  LHV_WALK_LOOP },
	{ "next out of indirect table", 2, true,
	  { { 2, ITABLE_GPA, 32, I, 0 } }, { { 0, R1, 16, N, 2 } }, LHV_WALK_NEXT_OOB },
};

static void fill(struct vring_desc *t, const struct desc_spec *s, size_t n)
{
	size_t i;

	for (i = 0; i < n && (s[i].len || s[i].flags || s[i].addr); i++)
		t[s[i].idx] = (struct vring_desc){ .addr = s[i].addr, .len = s[i].len,
						   .flags = s[i].flags, .next = s[i].next };
	/* "zero length" has len 0 but flags set, so it is filled above. */
}

static void test_table(void **state)
{
	static struct lhv_chain c;
	struct lhv_walk_opts o = { .desc = table(TABLE_GPA), .qsize = QSIZE,
				   .max_bytes = 0x20000, .mem = &gmem };
	size_t i;
	int rc;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct walk_case *k = &cases[i];

		memset(table(TABLE_GPA), 0, QSIZE * sizeof(struct vring_desc));
		memset(table(ITABLE_GPA), 0, 4 * sizeof(struct vring_desc));
		fill(table(TABLE_GPA), k->ring, 6);
		fill(table(ITABLE_GPA), k->itab, 4);
		o.indirect = k->indirect;
		rc = lhv_walk_chain(&o, k->head, &c);
		if (rc != k->want)
			fail_msg("%s: got '%s', want '%s'", k->name, lhv_walk_strerror(rc),
				 lhv_walk_strerror(k->want));
		if (rc != LHV_WALK_OK)
			continue;
		if (c.nr != k->nr || c.nw != k->nw || c.rlen != k->rlen || c.wlen != k->wlen)
			fail_msg("%s: nr %u nw %u rlen %u wlen %u", k->name, c.nr, c.nw, c.rlen,
				 c.wlen);
	}
}

/* The segments point where the guest's buffers are, in order. */
static void test_segments(void **state)
{
	static struct lhv_chain c;
	struct lhv_walk_opts o = { .desc = table(TABLE_GPA), .qsize = QSIZE,
				   .max_bytes = 0x20000, .mem = &gmem };
	struct vring_desc *t = table(TABLE_GPA);

	t[0] = (struct vring_desc){ R1, 16, N, 1 };
	t[1] = (struct vring_desc){ R2 - 8, 24, N | W, 2 };
	t[2] = (struct vring_desc){ R0 + 0x30000, 1, W, 0 };
	assert_int_equal(lhv_walk_chain(&o, 0, &c), LHV_WALK_OK);
	assert_int_equal(c.nr, 1);
	assert_int_equal(c.nw, 3);
	assert_ptr_equal(c.seg[0].iov_base, mem1);
	assert_ptr_equal(c.seg[1].iov_base, mem1 + RSIZE - 8);
	assert_int_equal(c.seg[1].iov_len, 8);
	assert_ptr_equal(c.seg[2].iov_base, mem1 + RSIZE);
	assert_int_equal(c.seg[2].iov_len, 16);
	assert_ptr_equal(c.seg[3].iov_base, mem0 + 0x30000);
}

/* A loop-free chain longer than the segment limit is "too long". */
static void test_too_long(void **state)
{
	static struct lhv_chain c;
	struct lhv_walk_opts o = { .desc = table(TABLE_GPA), .qsize = QSIZE,
				   .max_bytes = 0x100000, .mem = &gmem };
	struct vring_desc *t = table(TABLE_GPA);
	uint16_t i;

	for (i = 0; i < LHV_CHAIN_MAX_SEGS + 1; i++)
		t[i] = (struct vring_desc){ R1 + i * 64u, 64, N, (uint16_t)(i + 1) };
	t[LHV_CHAIN_MAX_SEGS].flags = 0;
	assert_int_equal(lhv_walk_chain(&o, 0, &c), LHV_WALK_TOO_LONG);
	t[LHV_CHAIN_MAX_SEGS - 1].flags = 0;
	assert_int_equal(lhv_walk_chain(&o, 0, &c), LHV_WALK_OK);
	assert_int_equal(c.nr, LHV_CHAIN_MAX_SEGS);
}

static void test_gmem(void **state)
{
	struct iovec iov[2];

	int err = 0;

	assert_int_equal(lhv_gmem_map(&gmem, R1, 0, LHV_GMEM_READ, iov, 2), -EINVAL);
	assert_int_equal(lhv_gmem_map(&gmem, R2 - 1, 2, LHV_GMEM_READ, iov, 1), -E2BIG);
	assert_int_equal(lhv_gmem_map(&gmem, R2 - 1, 2, LHV_GMEM_READ, iov, 2), 2);
	assert_int_equal(lhv_gmem_map(&gmem, RSIZE - 1, 2, LHV_GMEM_READ, iov, 2), -EFAULT);
	assert_null(lhv_gmem_ptr(&gmem, R2 - 1, 2, LHV_GMEM_READ, &err));
	assert_int_equal(err, -EFAULT);
	assert_ptr_equal(lhv_gmem_ptr(&gmem, R2, 2, LHV_GMEM_READ, &err), mem1 + RSIZE);
	assert_string_equal(lhv_walk_reason(LHV_WALK_LOOP), "loop");
}

/* Behind a vIOMMU: buffers are IOVAs, through the IOTLB to the VMM's
 * addresses, to ours; misses and refused access are told apart. */
static void test_iommu(void **state)
{
	struct lhv_iotlb tlb;
	struct lhv_gmem im = { .n = 3, .r = regions, .iotlb = &tlb };
	struct lhv_walk_opts o = { .desc = table(TABLE_GPA), .qsize = QSIZE, .indirect = true,
				   .max_bytes = 0x100000, .mem = &im };
	struct vring_desc *t = table(TABLE_GPA);
	static struct lhv_chain c;
	const uint64_t A = 0x100000000ull, RO = 0x200000000ull, NONE = 0x300000000ull;

	assert_int_equal(lhv_iotlb_init(&tlb), 0);
	/* A: 64 KiB of region 1, read-write; RO: the next page, read-only. */
	assert_int_equal(lhv_iotlb_update(&tlb, A, 0x10000, 0x7f0010000000,
					  LHV_IOTLB_R | LHV_IOTLB_W), 0);
	assert_int_equal(lhv_iotlb_update(&tlb, RO, 0x1000, 0x7f0010010000, LHV_IOTLB_R), 0);

	t[0] = (struct vring_desc){ A + 0x100, 16, N, 1 };
	t[1] = (struct vring_desc){ A + 0x1000, 4096, W | N, 2 };
	t[2] = (struct vring_desc){ RO, 512, 0, 0 };
	/* A read after a write is refused anyway: make 2 the status byte. */
	t[2] = (struct vring_desc){ A + 0x3000, 1, W, 0 };
	assert_int_equal(lhv_walk_chain(&o, 0, &c), LHV_WALK_OK);
	assert_int_equal(c.nr, 1);
	assert_int_equal(c.nw, 2);
	assert_ptr_equal(c.seg[0].iov_base, mem1 + 0x100);
	assert_ptr_equal(c.seg[1].iov_base, mem1 + 0x1000);
	assert_int_equal(c.lo, A + 0x100);
	assert_int_equal(c.hi, A + 0x3001);

	/* The device may read RO, not write it. */
	t[0] = (struct vring_desc){ RO, 512, N, 1 };
	assert_int_equal(lhv_walk_chain(&o, 0, &c), LHV_WALK_OK);
	assert_ptr_equal(c.seg[0].iov_base, mem1 + 0x10000);
	t[1] = (struct vring_desc){ RO, 512, W, 0 };
	assert_int_equal(lhv_walk_chain(&o, 0, &c), LHV_WALK_IOMMU_FAULT);

	/* Unmapped: a miss, for the first byte that has no entry. */
	t[1] = (struct vring_desc){ NONE + 8, 512, W, 0 };
	assert_int_equal(lhv_walk_chain(&o, 0, &c), LHV_WALK_IOTLB_MISS);
	assert_int_equal(tlb.miss_iova, NONE + 8);
	t[1] = (struct vring_desc){ A + 0xfff0, 0x20, W, 0 };
	assert_int_equal(lhv_walk_chain(&o, 0, &c), LHV_WALK_IOTLB_MISS);
	assert_int_equal(tlb.miss_iova, A + 0x10000);

	/* An indirect table is looked up like any buffer. */
	t[0] = (struct vring_desc){ NONE, 16 * 2, I, 0 };
	assert_int_equal(lhv_walk_chain(&o, 0, &c), LHV_WALK_IOTLB_MISS);
	lhv_iotlb_invalidate(&tlb, A, 0x1000);
	t[0] = (struct vring_desc){ A + 0x800, 16, 0, 0 };
	assert_int_equal(lhv_walk_chain(&o, 0, &c), LHV_WALK_IOTLB_MISS);
	lhv_iotlb_fini(&tlb);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_segments),
		cmocka_unit_test(test_too_long),
		cmocka_unit_test(test_gmem),
		cmocka_unit_test(test_iommu),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}

/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The IOTLB: updates replace what they cover, invalidations remove or trim
 * it (splitting an entry they fall inside), lookups honour permissions and
 * report misses, and a full table evicts its oldest entry.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "iotlb.h"

#define RW (LHV_IOTLB_R | LHV_IOTLB_W)

static void expect(struct lhv_iotlb *t, uint64_t iova, uint8_t perm, int rc, uint64_t uaddr,
		   uint64_t run)
{
	uint64_t u = 0, r = 0;

	assert_int_equal(lhv_iotlb_lookup(t, iova, 1u << 30, perm, &u, &r), rc);
	if (rc == 0) {
		assert_int_equal(u, uaddr);
		assert_int_equal(r, run);
	}
}

static void test_update_lookup(void **state)
{
	struct lhv_iotlb t;

	assert_int_equal(lhv_iotlb_init(&t), 0);
	expect(&t, 0x1000, LHV_IOTLB_R, -ENOENT, 0, 0);
	assert_int_equal(t.miss_iova, 0x1000);
	assert_int_equal(lhv_iotlb_update(&t, 0x10000, 0x4000, 0x7f0000000000, LHV_IOTLB_R), 0);
	assert_int_equal(lhv_iotlb_update(&t, 0x20000, 0x1000, 0x7f0000100000, RW), 0);
	expect(&t, 0x10000, LHV_IOTLB_R, 0, 0x7f0000000000, 0x4000);
	expect(&t, 0x12345, LHV_IOTLB_R, 0, 0x7f0000002345, 0x4000 - 0x2345);
	/* Read-only: a device write is refused, not missed. */
	expect(&t, 0x10000, LHV_IOTLB_W, -EACCES, 0, 0);
	expect(&t, 0x14000, LHV_IOTLB_R, -ENOENT, 0, 0);
	expect(&t, 0x20fff, RW, 0, 0x7f0000100fff, 1);
	/* An update over part of an entry replaces that part. */
	assert_int_equal(lhv_iotlb_update(&t, 0x11000, 0x1000, 0x600000000000, RW), 0);
	expect(&t, 0x10fff, LHV_IOTLB_R, 0, 0x7f0000000fff, 1);
	expect(&t, 0x11000, LHV_IOTLB_W, 0, 0x600000000000, 0x1000);
	expect(&t, 0x12000, LHV_IOTLB_R, 0, 0x7f0000002000, 0x2000);
	assert_int_equal(t.n, 4);
	/* Nonsense is refused. */
	assert_int_equal(lhv_iotlb_update(&t, 0x1000, 0, 0x1000, RW), -EINVAL);
	assert_int_equal(lhv_iotlb_update(&t, UINT64_MAX - 10, 0x1000, 0x1000, RW), -EINVAL);
	assert_int_equal(lhv_iotlb_update(&t, 0x1000, 0x1000, 0x1000, 0), -EINVAL);
	assert_int_equal(lhv_iotlb_update(&t, 0x1000, 0x1000, 0x1000, 4), -EINVAL);
	lhv_iotlb_fini(&t);
}

static void test_invalidate(void **state)
{
	struct lhv_iotlb t;

	assert_int_equal(lhv_iotlb_init(&t), 0);
	assert_int_equal(lhv_iotlb_update(&t, 0x10000, 0x10000, 0x100000, RW), 0);
	/* Inside an entry: it splits around the hole. */
	assert_int_equal(lhv_iotlb_invalidate(&t, 0x14000, 0x1000), 0x1000);
	expect(&t, 0x13fff, RW, 0, 0x103fff, 1);
	expect(&t, 0x14000, RW, -ENOENT, 0, 0);
	expect(&t, 0x14fff, RW, -ENOENT, 0, 0);
	expect(&t, 0x15000, RW, 0, 0x105000, 0xb000);
	/* Over an edge of each piece, and past the end. */
	assert_int_equal(lhv_iotlb_invalidate(&t, 0x13000, 0x3000), 0x2000);
	expect(&t, 0x12fff, RW, 0, 0x102fff, 1);
	expect(&t, 0x16000, RW, 0, 0x106000, 0xa000);
	assert_int_equal(lhv_iotlb_invalidate(&t, 0x1f000, 0x100000), 0x1000);
	expect(&t, 0x1efff, RW, 0, 0x10efff, 1);
	/* Everything, with a size that wraps. */
	assert_int_equal(lhv_iotlb_invalidate(&t, 0, UINT64_MAX), 0x3000 + 0x9000);
	assert_int_equal(t.n, 0);
	assert_int_equal(lhv_iotlb_invalidate(&t, 0, 0), 0);
	lhv_iotlb_fini(&t);
}

static void test_full_table(void **state)
{
	struct lhv_iotlb t;
	unsigned i;

	assert_int_equal(lhv_iotlb_init(&t), 0);
	for (i = 0; i < LHV_IOTLB_MAX + 10; i++)
		assert_int_equal(lhv_iotlb_update(&t, (uint64_t)i << 12, 0x1000,
						  0x100000 + ((uint64_t)i << 12), RW), 0);
	assert_true(t.n < LHV_IOTLB_MAX);
	/* The oldest went first; the newest are there. */
	expect(&t, 0, RW, -ENOENT, 0, 0);
	expect(&t, (uint64_t)(LHV_IOTLB_MAX + 9) << 12, RW, 0,
	       0x100000 + ((uint64_t)(LHV_IOTLB_MAX + 9) << 12), 0x1000);
	lhv_iotlb_fini(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_update_lookup),
		cmocka_unit_test(test_invalidate),
		cmocka_unit_test(test_full_table),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

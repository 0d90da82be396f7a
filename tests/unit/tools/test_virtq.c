// SPDX-License-Identifier: BSD-3-Clause
/* The driver-side split ring against a fake device in the same process. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "virtq.h"

#define NUM 8u

struct fake {
	struct virtq vq;
	void *ring;
	uint16_t dev_avail;	/* device's next avail index */
	uint16_t dev_used;	/* device's used index */
};

static void fake_init(struct fake *f, bool event_idx)
{
	size_t len = (virtq_ring_bytes(NUM) + 63) & ~(size_t)63;

	f->ring = aligned_alloc(64, len);
	assert_non_null(f->ring);
	memset(f->ring, 0, len);
	assert_int_equal(virtq_init(&f->vq, 0, NUM, f->ring, event_idx), 0);
	f->dev_avail = 0;
	f->dev_used = 0;
}

static void fake_fini(struct fake *f)
{
	virtq_fini(&f->vq);
	free(f->ring);
}

static bool kicked(struct fake *f)
{
	uint64_t v;

	return read(f->vq.kick_fd, &v, sizeof(v)) == (ssize_t)sizeof(v);
}

/* The device side: take the next avail head, walk its chain. */
static uint16_t fake_pop(struct fake *f, unsigned int *len)
{
	uint16_t head = f->vq.avail->ring[f->dev_avail++ % NUM], i = head;
	unsigned int n = 1;

	assert_true(head < NUM);
	while (f->vq.desc[i].flags & VQ_DESC_F_NEXT) {
		i = f->vq.desc[i].next;
		assert_true(i < NUM);
		assert_true(++n <= NUM);
	}
	*len = n;
	return head;
}

static void fake_push(struct fake *f, uint32_t id, uint32_t len)
{
	f->vq.used->ring[f->dev_used % NUM].id = id;
	f->vq.used->ring[f->dev_used % NUM].len = len;
	f->dev_used++;
	__atomic_store_n(&f->vq.used->idx, f->dev_used, __ATOMIC_RELEASE);
}

static int add_chain(struct fake *f, unsigned int n, void *cookie)
{
	struct vq_buf bufs[4] = {
		{ 0x1000, 16, false }, { 0x2000, 4096, true }, { 0x3000, 512, true },
		{ 0x4000, 1, true },
	};

	return virtq_add(&f->vq, bufs, n, cookie);
}

static void test_add_and_complete(void **state)
{
	struct fake f;
	int cookies[3], h0, h1;
	unsigned int n;
	uint32_t len;
	void *c;

	(void)state;
	fake_init(&f, true);
	h0 = add_chain(&f, 3, &cookies[0]);
	h1 = add_chain(&f, 3, &cookies[1]);
	assert_true(h0 >= 0 && h1 >= 0 && h0 != h1);
	assert_int_equal(f.vq.num_free, NUM - 6);
	assert_int_equal(add_chain(&f, 3, &cookies[2]), -ENOSPC);
	/* Nothing is visible before publishing. */
	assert_int_equal(f.vq.avail->idx, 0);
	virtq_publish(&f.vq);
	assert_int_equal(f.vq.avail->idx, 2);

	assert_int_equal(fake_pop(&f, &n), h0);
	assert_int_equal(n, 3);
	assert_int_equal(f.vq.desc[h0].flags, VQ_DESC_F_NEXT);	/* header: device-readable */
	assert_int_equal(fake_pop(&f, &n), h1);

	assert_int_equal(virtq_get_used(&f.vq, &c, &len), -EAGAIN);
	/* Out of order, as a device may complete. */
	fake_push(&f, (uint32_t)h1, 17);
	assert_true(virtq_pending(&f.vq));
	assert_int_equal(virtq_get_used(&f.vq, &c, &len), 0);
	assert_ptr_equal(c, &cookies[1]);
	assert_int_equal(len, 17);
	assert_int_equal(f.vq.num_free, NUM - 3);
	fake_push(&f, (uint32_t)h0, 1);
	assert_int_equal(virtq_get_used(&f.vq, &c, &len), 0);
	assert_ptr_equal(c, &cookies[0]);
	assert_int_equal(f.vq.num_free, NUM);
	assert_false(virtq_pending(&f.vq));
	fake_fini(&f);
}

/* Chains of mixed length completed in random order keep the free list whole. */
static void test_free_list_churn(void **state)
{
	static unsigned int sizes[] = { 1, 2, 3, 4, 3, 2 };
	uint16_t pending[NUM];
	unsigned int npending = 0, used_descs = 0, round, n, rng = 1;
	struct fake f;
	uint32_t len;
	void *c;

	(void)state;
	fake_init(&f, true);
	for (round = 0; round < 5000; round++) {
		unsigned int *size = &sizes[round % 6];
		int h = add_chain(&f, *size, size);

		if (h >= 0) {
			used_descs += *size;
			virtq_publish(&f.vq);
			pending[npending++] = fake_pop(&f, &n);
			assert_int_equal(n, *size);
		} else {
			unsigned int k;

			assert_int_equal(h, -ENOSPC);
			rng = rng * 1103515245u + 12345u;
			k = (rng >> 16) % npending;
			fake_push(&f, pending[k], 0);
			pending[k] = pending[--npending];
			assert_int_equal(virtq_get_used(&f.vq, &c, &len), 0);
			used_descs -= *(unsigned int *)c;
		}
		assert_int_equal(f.vq.num_free, NUM - used_descs);
	}
	fake_fini(&f);
}

static void test_bad_used_entries(void **state)
{
	struct fake f;
	uint32_t len;
	void *c;
	int h;

	(void)state;
	fake_init(&f, true);
	h = add_chain(&f, 3, &f);
	virtq_publish(&f.vq);
	/* A head that is not in flight, one out of range, an index that runs ahead. */
	fake_push(&f, (uint32_t)(h + 3) % NUM, 0);
	assert_int_equal(virtq_get_used(&f.vq, &c, &len), -EIO);
	f.vq.used->ring[0].id = NUM + 1;
	assert_int_equal(virtq_get_used(&f.vq, &c, &len), -EIO);
	f.vq.used->ring[0].id = (uint32_t)h;
	f.vq.used->idx = NUM + 1;
	assert_int_equal(virtq_get_used(&f.vq, &c, &len), -EIO);
	f.vq.used->idx = 1;
	assert_int_equal(virtq_get_used(&f.vq, &c, &len), 0);
	fake_fini(&f);
}

/* With event-idx the device says through avail_event which index it waits for. */
static void test_kick_event_idx(void **state)
{
	static const struct {
		unsigned int before;	/* published and kicked already */
		unsigned int added;
		uint16_t avail_event;
		bool kick;
	} cases[] = {
		{ 0, 1, 0, true },
		{ 0, 2, 1, true },
		{ 0, 2, 2, false },
		{ 1, 1, 0, false },
		{ 1, 1, 1, true },
		{ 1, 2, 2, true },
		{ 1, 2, 3, false },
		{ 2, 0, 2, false },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct fake f;
		unsigned int k;

		fake_init(&f, true);
		*f.vq.avail_event = 0;
		for (k = 0; k < cases[i].before; k++)
			add_chain(&f, 1, &f);
		virtq_publish(&f.vq);
		virtq_kick(&f.vq);
		kicked(&f);
		for (k = 0; k < cases[i].added; k++)
			add_chain(&f, 1, &f);
		virtq_publish(&f.vq);
		*f.vq.avail_event = cases[i].avail_event;
		assert_int_equal(virtq_kick(&f.vq), cases[i].kick ? 1 : 0);
		assert_int_equal(kicked(&f), cases[i].kick);
		fake_fini(&f);
	}
}

static void test_kick_flags(void **state)
{
	struct fake f;

	(void)state;
	fake_init(&f, false);
	add_chain(&f, 1, &f);
	virtq_publish(&f.vq);
	f.vq.used->flags = VQ_USED_F_NO_NOTIFY;
	assert_int_equal(virtq_kick(&f.vq), 0);
	add_chain(&f, 1, &f);
	virtq_publish(&f.vq);
	f.vq.used->flags = 0;
	assert_int_equal(virtq_kick(&f.vq), 1);
	assert_true(kicked(&f));
	/* Nothing new: no kick whatever the flags say. */
	assert_int_equal(virtq_kick(&f.vq), 0);
	fake_fini(&f);
}

static void test_interrupt_suppression(void **state)
{
	struct fake f;
	uint32_t len;
	void *c;
	int h;

	(void)state;
	fake_init(&f, true);
	h = add_chain(&f, 2, &f);
	virtq_publish(&f.vq);
	assert_false(virtq_enable_cb(&f.vq));
	assert_int_equal(*f.vq.used_event, 0);
	fake_push(&f, (uint32_t)h, 0);
	assert_true(virtq_enable_cb(&f.vq));
	assert_int_equal(virtq_get_used(&f.vq, &c, &len), 0);
	/* As far from the device's used index as the ring allows. */
	virtq_disable_cb(&f.vq);
	assert_int_equal(*f.vq.used_event, 0);
	assert_false(virtq_enable_cb(&f.vq));
	assert_int_equal(*f.vq.used_event, 1);
	fake_fini(&f);

	fake_init(&f, false);
	virtq_disable_cb(&f.vq);
	assert_int_equal(f.vq.avail->flags, VQ_AVAIL_F_NO_INTERRUPT);
	assert_false(virtq_enable_cb(&f.vq));
	assert_int_equal(f.vq.avail->flags, 0);
	fake_fini(&f);
}

static void test_ring_layout(void **state)
{
	struct fake f;

	(void)state;
	fake_init(&f, true);
	assert_int_equal((char *)f.vq.avail - (char *)f.vq.desc, NUM * sizeof(struct vq_desc));
	assert_int_equal(((uintptr_t)f.vq.used) % 64, 0);
	assert_ptr_equal(f.vq.used_event, &f.vq.avail->ring[NUM]);
	assert_true((char *)(f.vq.avail_event + 1) <= (char *)f.ring + virtq_ring_bytes(NUM));
	fake_fini(&f);
	assert_int_equal(virtq_init(&f.vq, 0, 6, NULL, false), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_add_and_complete),
		cmocka_unit_test(test_free_list_churn),
		cmocka_unit_test(test_bad_used_entries),
		cmocka_unit_test(test_kick_event_idx),
		cmocka_unit_test(test_kick_flags),
		cmocka_unit_test(test_interrupt_suppression),
		cmocka_unit_test(test_ring_layout),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

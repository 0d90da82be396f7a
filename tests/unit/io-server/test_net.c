/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The virtio-net model's queue pairs: the topology's queues: within 1 to
 * VRIO_NET_MAX_QUEUE_PAIRS (with offloads or without),
 * VIRTIO_NET_F_MQ offered above 1 pair and
 * max_virtqueue_pairs in the config, twice as many vrings; HOST_ECN with
 * the offloads, never GUEST_ECN or UFO; and a PKT frame
 * from a host names a transmit pair the device has.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <linux/virtio_net.h>

#include <cmocka.h>

#include "ioserver_internal.h"

static void test_pairs(void **state)
{
	static const struct {
		unsigned pairs;
		int rc;
	} cases[] = { { 0, -EINVAL }, { 1, 0 }, { 2, 0 }, { 32, 0 }, { 33, -EINVAL }, { 64, -EINVAL } };
	struct ios_net_dev n;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(ios_net_dev_init(&n, "52:54:00:00:00:01", 1500, cases[i].pairs,
						  i & 1), cases[i].rc);
		if (cases[i].rc)
			continue;
		assert_int_equal(n.pairs, cases[i].pairs);
		assert_int_equal(n.num_queues, 2 * cases[i].pairs);
		assert_int_equal(!!(n.features & (1ull << VIRTIO_NET_F_MQ)), cases[i].pairs > 1);
		/* ECN with TSO (offloads), never GUEST_ECN (rte_vhost cannot
		 * write the bit), UFO or USO. */
		assert_int_equal(!!(n.features & (1ull << VIRTIO_NET_F_HOST_ECN)), i & 1);
		assert_int_equal(!!(n.features & (1ull << VIRTIO_NET_F_HOST_TSO4)), i & 1);
		assert_int_equal(n.features & ((1ull << VIRTIO_NET_F_GUEST_ECN) |
					       (1ull << VIRTIO_NET_F_GUEST_UFO) |
					       (1ull << VIRTIO_NET_F_HOST_UFO)), 0);
		/* max_virtqueue_pairs, le16 at offset 8 */
		assert_int_equal(n.config[8] | n.config[9] << 8, cases[i].pairs);
		assert_int_equal(n.config[10] | n.config[11] << 8, 1500);
	}
}

static void test_frame_queue(void **state)
{
	struct ios_device d;
	uint8_t payload[VRIO_PKT_HDR_LEN + 60] = { 0 };
	struct vrio_frame f = { .type = VRIO_FRAME_PKT, .len = sizeof(payload) };
	char why[128];

	(void)state;
	memset(&d, 0, sizeof(d));
	assert_int_equal(ios_net_dev_init(&d.u.net.model, "52:54:00:00:00:01", 1500, 4, true), 0);
	for (unsigned q = 0; q < 8; q++) {
		f.queue = (uint16_t)q;
		assert_int_equal(ios_net_dev_ops.check(&d, &f, payload, why, sizeof(why)),
				 q < 4 ? 0 : -EBADMSG);
	}
	assert_non_null(strstr(why, "queue pair 7 of 4"));
	assert_int_equal(ios_net_dev_init(&d.u.net.model, "52:54:00:00:00:01", 1500, 1, false), 0);
	f.queue = 1;
	assert_int_equal(ios_net_dev_ops.check(&d, &f, payload, why, sizeof(why)), -EBADMSG);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pairs),
		cmocka_unit_test(test_frame_queue),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

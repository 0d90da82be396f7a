/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <linux/virtio_net.h>

#include "frame.h"
#include "net.h"
#include "topology.h"

int ios_net_parse_mac(const char *s, uint8_t mac[6])
{
	unsigned b[6];
	char tail;

	if (sscanf(s, "%2x:%2x:%2x:%2x:%2x:%2x%c", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5],
		   &tail) != 6)
		return -EINVAL;
	for (int i = 0; i < 6; i++)
		mac[i] = (uint8_t)b[i];
	return 0;
}

int ios_net_dev_init(struct ios_net_dev *n, const char *mac, unsigned mtu, unsigned pairs,
		     bool offloads)
{
	uint8_t *c = n->config;

	memset(n, 0, sizeof(*n));
	if (ios_net_parse_mac(mac, n->mac) < 0 || mtu < 68 || mtu > 9000 || pairs == 0 ||
	    pairs > VRIO_NET_MAX_QUEUE_PAIRS)
		return -EINVAL;
	n->mtu = (uint16_t)mtu;
	/* Mergeable receive buffers are rte_vhost's to use on local-hv.
	 * Offloads: what rte_vhost's net path turns into mbuf metadata and
	 * back (local-hv/net.c): partial checksums and TCP segmentation, and
	 * HOST_ECN: rte_vhost's dequeue drops the header's ECN bit, but a TSO
	 * packet with CWR set is what it means, so local-hv sets it again.
	 * Not GUEST_ECN: rte_vhost's enqueue never writes the bit, so an ECN
	 * packet toward a guest is segmented by the switch (dev_net.c). Not
	 * UFO (Linux guests never send it since 4.14) nor USO (6.2 and later). */
	n->features = (1ull << VIRTIO_NET_F_MAC) | (1ull << VIRTIO_NET_F_MTU) |
		      (1ull << VIRTIO_NET_F_STATUS) | (1ull << VIRTIO_NET_F_MRG_RXBUF);
	if (offloads) {
		n->features |= (1ull << VIRTIO_NET_F_CSUM) | (1ull << VIRTIO_NET_F_GUEST_CSUM) |
			       (1ull << VIRTIO_NET_F_HOST_TSO4) | (1ull << VIRTIO_NET_F_HOST_TSO6) |
			       (1ull << VIRTIO_NET_F_HOST_ECN) |
			       (1ull << VIRTIO_NET_F_GUEST_TSO4) | (1ull << VIRTIO_NET_F_GUEST_TSO6);
		n->rx_ol = VRIO_PKT_RX_ALL;
		n->offloads = true;
	}
	/* Several queue pairs: the VMM runs the control queue that sets how
	 * many the driver uses; local-hv serves those it enables. */
	if (pairs > 1)
		n->features |= 1ull << VIRTIO_NET_F_MQ;
	memcpy(c, n->mac, 6);
	c[6] = VIRTIO_NET_S_LINK_UP;		/* status, le16 */
	c[7] = 0;
	c[8] = (uint8_t)pairs;			/* max_virtqueue_pairs, le16 */
	c[9] = 0;
	c[10] = (uint8_t)(mtu & 0xff);		/* mtu, le16 */
	c[11] = (uint8_t)(mtu >> 8);
	n->pairs = pairs;
	n->num_queues = 2 * pairs;
	n->max_request = VRIO_PKT_HDR_LEN + (offloads ? VRIO_PKT_MAX_GSO_FRAME : mtu + 18u);
	return 0;
}

/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The virtio-net device model (virtio 1.1, 5.1): what the io-server tells
 * local-hv about a net device when it attaches. The guest's MAC, MTU and
 * link are the VMM's config space (ARCHITECTURE.md): these describe the
 * device and let the switch enforce the topology's MAC on its port.
 */
#ifndef VRIO_IOSERVER_NET_H
#define VRIO_IOSERVER_NET_H

#include <stdbool.h>
#include <stdint.h>

#define IOS_NET_CONFIG_LEN	12u	/* mac, status, max_virtqueue_pairs, mtu */

struct ios_net_dev {
	uint8_t mac[6];
	uint16_t mtu;
	uint64_t features;
	uint8_t config[IOS_NET_CONFIG_LEN];
	uint32_t pairs;			/* queue pairs (the topology's queues:) */
	uint32_t num_queues;		/* vrings: a receive and a transmit per pair */
	uint32_t max_request;		/* a PKT frame's payload */
	uint16_t rx_ol;			/* VRIO_PKT_RX_* the guest may take */
	bool offloads;			/* the guest may send offload metadata */
};

/* A frame going through a net device's stages (stage_net.h), in a
 * request's u.net. Net stages never hold a frame past their request op: a
 * frame is passed or dropped in the call. */
struct ios_net_req {
	const uint8_t *eth;		/* the Ethernet frame, lent for the call */
	uint32_t len;
	bool out;			/* toward the guest; false: from it */
	bool dropped;			/* a stage ended it: it goes no further */
};

/* mac is "52:54:00:00:00:01" (the topology checked it); pairs from 1 to
 * VRIO_NET_MAX_QUEUE_PAIRS, above 1 offers VIRTIO_NET_F_MQ. offloads:
 * offer checksum and TSO offloads both ways. */
int ios_net_dev_init(struct ios_net_dev *n, const char *mac, unsigned mtu, unsigned pairs,
		     bool offloads);
int ios_net_parse_mac(const char *s, uint8_t mac[6]);

#endif

/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * A virtio-net driver over vhost-user, as a guest's would be: one queue
 * pair, or several with VIRTIO_NET_F_MQ (every pair enabled, as a driver
 * with as many CPUs would), receive buffers posted ahead, one buffer per packet (no mergeable
 * buffers), the 12-byte virtio 1.x header in front of each. No offloads on
 * receive; with `tso`, the transmit side negotiates VIRTIO_NET_F_CSUM and
 * HOST_TSO4 (and HOST_ECN with `ecn`) and its buffers hold a 64 KiB TCP
 * segment.
 */
#ifndef VRIO_BENCH_NETDRV_H
#define VRIO_BENCH_NETDRV_H

#include <stdbool.h>
#include <stdint.h>

#include "vudev.h"

#define NET_HDR_LEN 12u
#define NET_BUF_LEN 2048u		/* one packet's buffer, header included */
#define NET_MAX_FRAME (NET_BUF_LEN - NET_HDR_LEN)
#define NET_GSO_BUF_LEN (NET_HDR_LEN + 65536u)	/* a transmit buffer with tso */
#define NET_GSO_MAX_FRAME (NET_GSO_BUF_LEN - NET_HDR_LEN)
#define NET_RXQ 0u
#define NET_TXQ 1u
#define NETDEV_MAX_PAIRS 32u

struct netdev_opts {
	const char *socket;
	int timeout_ms;
	bool quiet;
	bool no_event_idx;
	bool iommu;		/* play the VMM's vIOMMU (vudev.h) */
	bool tso;		/* send with CSUM and HOST_TSO4 */
	bool ecn;		/* with tso: HOST_ECN too */
	unsigned int pairs;	/* queue pairs, 1 to NETDEV_MAX_PAIRS (0: 1) */
};

struct netdev {
	struct vudev v;
	const char *name;
	unsigned int pairs;
	uint16_t qsize;
	uint64_t rx_gpa, tx_gpa;	/* queue_size buffers per pair each */
	uint32_t tx_buf_len;		/* NET_BUF_LEN, or NET_GSO_BUF_LEN with tso */
	uint16_t *tx_free;		/* free transmit buffers, qsize per pair */
	unsigned int n_tx_free[NETDEV_MAX_PAIRS];
	unsigned int rx_next;		/* the pair netdev_recv looks at first */
	uint64_t tx_frames, rx_frames;
	uint64_t rx_pair_frames[NETDEV_MAX_PAIRS];
};

int netdev_connect(struct netdev *d, const struct netdev_opts *o);
/* Guest memory, both vrings, and every receive buffer posted. */
int netdev_start(struct netdev *d, uint16_t queue_size);
void netdev_close(struct netdev *d);

/* Queues a frame on pair `pair`'s transmit queue (made visible, not
 * kicked); -ENOSPC without a buffer. */
int netdev_send(struct netdev *d, unsigned int pair, const void *frame, uint32_t len);
/* The same with a virtio-net header (NET_HDR_LEN bytes, the device's
 * byte order), for a device connected with tso. */
int netdev_send_hdr(struct netdev *d, unsigned int pair, const void *hdr, const void *frame,
		    uint32_t len);
/* Takes back transmit buffers the device is done with; -EIO if it lies. */
int netdev_reap_tx(struct netdev *d);
/* The next received frame, in place, from the pairs' receive queues in
 * turn (each queue's frames in their order); -EAGAIN if none. *pair says
 * which. Give the buffer back with netdev_rx_done(). */
int netdev_recv(struct netdev *d, const uint8_t **frame, uint32_t *len, unsigned int *slot,
		unsigned int *pair);
void netdev_rx_done(struct netdev *d, unsigned int slot);
/* Publishes reposted receive buffers and kicks both queues as needed. */
int netdev_kick(struct netdev *d);

#endif

/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * A virtio-net driver over vhost-user, as a guest's would be: one queue
 * pair, receive buffers posted ahead, one buffer per packet (no mergeable
 * buffers), the 12-byte virtio 1.x header in front of each. No offloads on
 * receive; with `tso`, the transmit side negotiates VIRTIO_NET_F_CSUM and
 * HOST_TSO4 and its buffers hold a 64 KiB TCP segment.
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

struct netdev_opts {
	const char *socket;
	int timeout_ms;
	bool quiet;
	bool no_event_idx;
	bool iommu;		/* play the VMM's vIOMMU (vudev.h) */
	bool tso;		/* send with CSUM and HOST_TSO4 */
};

struct netdev {
	struct vudev v;
	const char *name;
	uint64_t rx_gpa, tx_gpa;	/* queue_size buffers each */
	uint32_t tx_buf_len;		/* NET_BUF_LEN, or NET_GSO_BUF_LEN with tso */
	uint16_t *tx_free;		/* free transmit buffers */
	unsigned int n_tx_free;
	uint64_t tx_frames, rx_frames;
};

int netdev_connect(struct netdev *d, const struct netdev_opts *o);
/* Guest memory, both vrings, and every receive buffer posted. */
int netdev_start(struct netdev *d, uint16_t queue_size);
void netdev_close(struct netdev *d);

/* Queues a frame (made visible, not kicked); -ENOSPC without a buffer. */
int netdev_send(struct netdev *d, const void *frame, uint32_t len);
/* The same with a virtio-net header (NET_HDR_LEN bytes, the device's
 * byte order), for a device connected with tso. */
int netdev_send_hdr(struct netdev *d, const void *hdr, const void *frame, uint32_t len);
/* Takes back transmit buffers the device is done with; -EIO if it lies. */
int netdev_reap_tx(struct netdev *d);
/* The next received frame, in place; -EAGAIN if none. Give the buffer back
 * with netdev_rx_done(). */
int netdev_recv(struct netdev *d, const uint8_t **frame, uint32_t *len, unsigned int *slot);
void netdev_rx_done(struct netdev *d, unsigned int slot);
/* Publishes reposted receive buffers and kicks both queues as needed. */
int netdev_kick(struct netdev *d);

#endif

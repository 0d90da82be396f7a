// SPDX-License-Identifier: BSD-3-Clause
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "netdrv.h"

#define VIRTIO_NET_F_CSUM 0
#define VIRTIO_NET_F_MAC 5
#define VIRTIO_NET_F_HOST_TSO4 11

#define NETDEV_WANTED_FEATURES                                                    \
	(BIT64(VIRTIO_F_VERSION_1) | BIT64(VIRTIO_RING_F_EVENT_IDX) |             \
	 BIT64(VU_F_PROTOCOL_FEATURES) | BIT64(VIRTIO_NET_F_MAC))
#define NETDEV_WANTED_PROTOCOL (BIT64(VU_PF_REPLY_ACK))

int netdev_connect(struct netdev *d, const struct netdev_opts *o)
{
	int ret;

	memset(d, 0, sizeof(*d));
	d->name = o->socket;
	ret = vudev_connect(&d->v, o->socket, o->timeout_ms, NETDEV_WANTED_PROTOCOL, NULL, o->iommu);
	if (ret < 0)
		return ret;
	d->v.features = d->v.dev_features &
			(NETDEV_WANTED_FEATURES | (o->iommu ? BIT64(VIRTIO_F_ACCESS_PLATFORM) : 0));
	if (o->no_event_idx)
		d->v.features &= ~BIT64(VIRTIO_RING_F_EVENT_IDX);
	d->tx_buf_len = NET_BUF_LEN;
	if (o->tso) {
		uint64_t want = BIT64(VIRTIO_NET_F_CSUM) | BIT64(VIRTIO_NET_F_HOST_TSO4);

		if ((d->v.dev_features & want) != want) {
			bench_err("%s: the device offers no CSUM and HOST_TSO4 (features 0x%llx)",
				  o->socket, (unsigned long long)d->v.dev_features);
			ret = -ENOTSUP;
			goto err;
		}
		d->v.features |= want;
		d->tx_buf_len = NET_GSO_BUF_LEN;
	}
	ret = vu_set_u64(&d->v.vu, VU_SET_FEATURES, d->v.features);
	if (ret < 0)
		goto err;
	d->v.max_queues = 2;
	if (!o->quiet)
		fprintf(stderr, "vrio-bench: %s: net device, features 0x%llx (offered 0x%llx)\n",
			o->socket, (unsigned long long)d->v.features,
			(unsigned long long)d->v.dev_features);
	return 0;
err:
	vu_close(&d->v.vu);
	return ret;
}

/* A virtq cookie is never NULL: buffer n travels as n + 1. */
static void *slot_cookie(unsigned int slot)
{
	return (void *)(uintptr_t)(slot + 1);
}

static unsigned int cookie_slot(void *cookie)
{
	return (unsigned int)((uintptr_t)cookie - 1);
}

static int post_rx(struct netdev *d, unsigned int slot)
{
	struct vq_buf b = { d->rx_gpa + (uint64_t)slot * NET_BUF_LEN, NET_BUF_LEN, true };

	return virtq_add(&d->v.vqs[NET_RXQ], &b, 1, slot_cookie(slot));
}

int netdev_start(struct netdev *d, uint16_t queue_size)
{
	uint64_t bufs = (uint64_t)queue_size * NET_BUF_LEN;
	uint64_t tx_bufs = (uint64_t)queue_size * d->tx_buf_len;
	int ret;

	ret = vudev_start(&d->v, 2, queue_size, bufs + tx_bufs + 2 * BENCH_PAGE_SIZE);
	if (ret < 0)
		return ret;
	ret = gmem_alloc(&d->v.mem, bufs, BENCH_PAGE_SIZE, &d->rx_gpa);
	if (ret == 0)
		ret = gmem_alloc(&d->v.mem, tx_bufs, BENCH_PAGE_SIZE, &d->tx_gpa);
	if (ret < 0)
		return ret;
	d->tx_free = calloc(queue_size, sizeof(*d->tx_free));
	if (!d->tx_free)
		return -ENOMEM;
	for (unsigned int i = 0; i < queue_size; i++) {
		d->tx_free[d->n_tx_free++] = (uint16_t)i;
		ret = post_rx(d, i);
		if (ret < 0)
			return ret;
	}
	virtq_publish(&d->v.vqs[NET_RXQ]);
	return virtq_kick(&d->v.vqs[NET_RXQ]) < 0 ? -EIO : 0;
}

void netdev_close(struct netdev *d)
{
	vudev_stop(&d->v, false);
	vudev_close(&d->v);
	free(d->tx_free);
	d->tx_free = NULL;
}

int netdev_send_hdr(struct netdev *d, const void *hdr, const void *frame, uint32_t len)
{
	struct virtq *vq = &d->v.vqs[NET_TXQ];
	uint64_t gpa;
	unsigned int slot;
	uint8_t *buf;
	struct vq_buf b;
	int ret;

	if (len > d->tx_buf_len - NET_HDR_LEN)
		return -EMSGSIZE;
	if (!d->n_tx_free)
		return -ENOSPC;
	slot = d->tx_free[d->n_tx_free - 1];
	gpa = d->tx_gpa + (uint64_t)slot * d->tx_buf_len;
	buf = gmem_hva(&d->v.mem, gpa);
	if (hdr)
		memcpy(buf, hdr, NET_HDR_LEN);
	else
		memset(buf, 0, NET_HDR_LEN);
	memcpy(buf + NET_HDR_LEN, frame, len);
	b = (struct vq_buf){ gpa, NET_HDR_LEN + len, false };
	ret = virtq_add(vq, &b, 1, slot_cookie(slot));
	if (ret < 0)
		return ret;
	d->n_tx_free--;
	virtq_publish(vq);
	d->tx_frames++;
	return 0;
}

int netdev_send(struct netdev *d, const void *frame, uint32_t len)
{
	if (len > NET_MAX_FRAME)
		return -EMSGSIZE;
	return netdev_send_hdr(d, NULL, frame, len);
}

int netdev_reap_tx(struct netdev *d)
{
	struct virtq *vq = &d->v.vqs[NET_TXQ];
	void *cookie;
	uint32_t len;
	int ret, n = 0;

	while ((ret = virtq_get_used(vq, &cookie, &len)) == 0) {
		d->tx_free[d->n_tx_free++] = (uint16_t)cookie_slot(cookie);
		n++;
	}
	return ret == -EAGAIN ? n : ret;
}

int netdev_recv(struct netdev *d, const uint8_t **frame, uint32_t *len, unsigned int *slot)
{
	void *cookie;
	uint32_t used;
	int ret;

	ret = virtq_get_used(&d->v.vqs[NET_RXQ], &cookie, &used);
	if (ret < 0)
		return ret;
	*slot = cookie_slot(cookie);
	if (used < NET_HDR_LEN || used > NET_BUF_LEN) {
		bench_err("%s: device used %u bytes of a %u-byte receive buffer", d->name, used,
			  NET_BUF_LEN);
		return -EIO;
	}
	*frame = (const uint8_t *)gmem_hva(&d->v.mem, d->rx_gpa + (uint64_t)*slot * NET_BUF_LEN) +
		 NET_HDR_LEN;
	*len = used - NET_HDR_LEN;
	d->rx_frames++;
	return 0;
}

void netdev_rx_done(struct netdev *d, unsigned int slot)
{
	post_rx(d, slot);
}

int netdev_kick(struct netdev *d)
{
	virtq_publish(&d->v.vqs[NET_RXQ]);
	if (virtq_kick(&d->v.vqs[NET_RXQ]) < 0 || virtq_kick(&d->v.vqs[NET_TXQ]) < 0)
		return -EIO;
	return 0;
}

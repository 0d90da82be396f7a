// SPDX-License-Identifier: BSD-3-Clause
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "netdrv.h"

#define VIRTIO_NET_F_CSUM 0
#define VIRTIO_NET_F_MAC 5
#define VIRTIO_NET_F_HOST_TSO4 11
#define VIRTIO_NET_F_HOST_ECN 13
#define VIRTIO_NET_F_MQ 22

#define NETDEV_WANTED_FEATURES                                                    \
	(BIT64(VIRTIO_F_VERSION_1) | BIT64(VIRTIO_RING_F_EVENT_IDX) |             \
	 BIT64(VU_F_PROTOCOL_FEATURES) | BIT64(VIRTIO_NET_F_MAC))
#define NETDEV_WANTED_PROTOCOL (BIT64(VU_PF_REPLY_ACK) | BIT64(VU_PF_MQ))

/* Several pairs: the device offers MQ, and as many pairs (GET_QUEUE_NUM). */
static int want_pairs(struct netdev *d, unsigned int pairs)
{
	uint64_t n;
	int ret;

	if (pairs == 1)
		return 0;
	if (!(d->v.dev_features & BIT64(VIRTIO_NET_F_MQ)) ||
	    !(d->v.protocol_features & BIT64(VU_PF_MQ))) {
		bench_err("%s: the device offers no multiqueue (VIRTIO_NET_F_MQ)", d->name);
		return -ENOTSUP;
	}
	ret = vu_get_u64(&d->v.vu, VU_GET_QUEUE_NUM, &n);
	if (ret < 0)
		return ret;
	if (n < pairs) {
		bench_err("%s: the device has %llu queue pairs, %u asked for", d->name,
			  (unsigned long long)n, pairs);
		return -ENOTSUP;
	}
	d->v.features |= BIT64(VIRTIO_NET_F_MQ);
	return 0;
}

int netdev_connect(struct netdev *d, const struct netdev_opts *o)
{
	int ret;

	memset(d, 0, sizeof(*d));
	d->name = o->socket;
	d->pairs = o->pairs ? o->pairs : 1;
	if (d->pairs > NETDEV_MAX_PAIRS)
		return -EINVAL;
	ret = vudev_connect(&d->v, o->socket, o->timeout_ms, NETDEV_WANTED_PROTOCOL, NULL, o->iommu);
	if (ret < 0)
		return ret;
	d->v.features = d->v.dev_features &
			(NETDEV_WANTED_FEATURES | (o->iommu ? BIT64(VIRTIO_F_ACCESS_PLATFORM) : 0));
	if (o->no_event_idx)
		d->v.features &= ~BIT64(VIRTIO_RING_F_EVENT_IDX);
	d->tx_buf_len = NET_BUF_LEN;
	if (o->tso) {
		uint64_t want = BIT64(VIRTIO_NET_F_CSUM) | BIT64(VIRTIO_NET_F_HOST_TSO4) |
				(o->ecn ? BIT64(VIRTIO_NET_F_HOST_ECN) : 0);

		if ((d->v.dev_features & want) != want) {
			bench_err("%s: the device offers no CSUM and HOST_TSO4%s (features 0x%llx)",
				  o->socket, o->ecn ? " and HOST_ECN" : "",
				  (unsigned long long)d->v.dev_features);
			ret = -ENOTSUP;
			goto err;
		}
		d->v.features |= want;
		d->tx_buf_len = NET_GSO_BUF_LEN;
	}
	ret = want_pairs(d, d->pairs);
	if (ret == 0)
		ret = vu_set_u64(&d->v.vu, VU_SET_FEATURES, d->v.features);
	if (ret < 0)
		goto err;
	d->v.max_queues = 2 * d->pairs;
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

/* Receive buffer `slot` (pair slot / qsize) back on its pair's queue. */
static int post_rx(struct netdev *d, unsigned int slot)
{
	struct vq_buf b = { d->rx_gpa + (uint64_t)slot * NET_BUF_LEN, NET_BUF_LEN, true };

	return virtq_add(&d->v.vqs[2 * (slot / d->qsize) + NET_RXQ], &b, 1, slot_cookie(slot));
}

int netdev_start(struct netdev *d, uint16_t queue_size)
{
	uint64_t bufs = (uint64_t)queue_size * NET_BUF_LEN * d->pairs;
	uint64_t tx_bufs = (uint64_t)queue_size * d->tx_buf_len * d->pairs;
	unsigned int p, i;
	int ret;

	d->qsize = queue_size;
	ret = vudev_start(&d->v, 2 * d->pairs, queue_size, bufs + tx_bufs + 2 * BENCH_PAGE_SIZE);
	if (ret < 0)
		return ret;
	ret = gmem_alloc(&d->v.mem, bufs, BENCH_PAGE_SIZE, &d->rx_gpa);
	if (ret == 0)
		ret = gmem_alloc(&d->v.mem, tx_bufs, BENCH_PAGE_SIZE, &d->tx_gpa);
	if (ret < 0)
		return ret;
	d->tx_free = calloc((size_t)queue_size * d->pairs, sizeof(*d->tx_free));
	if (!d->tx_free)
		return -ENOMEM;
	for (p = 0; p < d->pairs; p++) {
		for (i = 0; i < queue_size; i++) {
			d->tx_free[p * queue_size + d->n_tx_free[p]++] = (uint16_t)i;
			ret = post_rx(d, p * queue_size + i);
			if (ret < 0)
				return ret;
		}
		virtq_publish(&d->v.vqs[2 * p + NET_RXQ]);
		if (virtq_kick(&d->v.vqs[2 * p + NET_RXQ]) < 0)
			return -EIO;
	}
	return 0;
}

void netdev_close(struct netdev *d)
{
	vudev_stop(&d->v, false);
	vudev_close(&d->v);
	free(d->tx_free);
	d->tx_free = NULL;
}

int netdev_send_hdr(struct netdev *d, unsigned int pair, const void *hdr, const void *frame,
		    uint32_t len)
{
	struct virtq *vq = &d->v.vqs[2 * pair + NET_TXQ];
	uint16_t *free_slots = d->tx_free + (size_t)pair * d->qsize;
	uint64_t gpa;
	unsigned int slot;
	uint8_t *buf;
	struct vq_buf b;
	int ret;

	if (len > d->tx_buf_len - NET_HDR_LEN)
		return -EMSGSIZE;
	if (!d->n_tx_free[pair])
		return -ENOSPC;
	/* Transmit buffers of all pairs in one area: pair p's at p * qsize. */
	slot = pair * d->qsize + free_slots[d->n_tx_free[pair] - 1];
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
	d->n_tx_free[pair]--;
	virtq_publish(vq);
	d->tx_frames++;
	return 0;
}

int netdev_send(struct netdev *d, unsigned int pair, const void *frame, uint32_t len)
{
	if (len > NET_MAX_FRAME)
		return -EMSGSIZE;
	return netdev_send_hdr(d, pair, NULL, frame, len);
}

int netdev_reap_tx(struct netdev *d)
{
	void *cookie;
	uint32_t len;
	int ret = -EAGAIN, n = 0;

	for (unsigned int p = 0; p < d->pairs && ret == -EAGAIN; p++) {
		while ((ret = virtq_get_used(&d->v.vqs[2 * p + NET_TXQ], &cookie, &len)) == 0) {
			unsigned int slot = cookie_slot(cookie);

			if (slot / d->qsize != p) {
				bench_err("%s: transmit queue %u returned another queue's buffer",
					  d->name, p);
				return -EIO;
			}
			d->tx_free[p * d->qsize + d->n_tx_free[p]++] = (uint16_t)(slot % d->qsize);
			n++;
		}
	}
	return ret == -EAGAIN ? n : ret;
}

int netdev_recv(struct netdev *d, const uint8_t **frame, uint32_t *len, unsigned int *slot,
		unsigned int *pair)
{
	unsigned int p = d->rx_next, k;
	void *cookie;
	uint32_t used;
	int ret = -EAGAIN;

	for (k = 0; k < d->pairs; k++, p = (p + 1) % d->pairs) {
		ret = virtq_get_used(&d->v.vqs[2 * p + NET_RXQ], &cookie, &used);
		if (ret != -EAGAIN)
			break;
	}
	if (ret < 0)
		return ret;
	d->rx_next = (p + 1) % d->pairs;
	*slot = cookie_slot(cookie);
	if (*slot / d->qsize != p) {
		bench_err("%s: receive queue %u returned another queue's buffer", d->name, p);
		return -EIO;
	}
	*pair = p;
	d->rx_pair_frames[p]++;
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
	for (unsigned int p = 0; p < d->pairs; p++) {
		virtq_publish(&d->v.vqs[2 * p + NET_RXQ]);
		if (virtq_kick(&d->v.vqs[2 * p + NET_RXQ]) < 0 ||
		    virtq_kick(&d->v.vqs[2 * p + NET_TXQ]) < 0)
			return -EIO;
	}
	return 0;
}

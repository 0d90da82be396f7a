// SPDX-License-Identifier: BSD-3-Clause
#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "vudev.h"

int vudev_connect(struct vudev *d, const char *socket, int timeout_ms, uint64_t want_protocol,
		  uint64_t *offered_protocol, bool iommu)
{
	const uint64_t iommu_pf = BIT64(VU_PF_SLAVE_REQ) | BIT64(VU_PF_REPLY_ACK);
	uint64_t pf = 0;
	int ret;

	memset(d, 0, sizeof(*d));
	d->mem.fd = -1;
	d->slave_fd = -1;
	d->inflight_fd = -1;
	d->socket = socket;
	d->iotlb_granule = VUDEV_IOTLB_GRANULE;
	if (iommu)
		want_protocol |= iommu_pf;
	ret = vu_connect(&d->vu, socket, timeout_ms);
	if (ret < 0)
		return ret;
	ret = vu_set_owner(&d->vu);
	if (ret == 0)
		ret = vu_get_u64(&d->vu, VU_GET_FEATURES, &d->dev_features);
	if (ret < 0)
		goto err;
	if (!(d->dev_features & BIT64(VIRTIO_F_VERSION_1))) {
		bench_err("%s: device does not offer VIRTIO_F_VERSION_1", socket);
		ret = -ENOTSUP;
		goto err;
	}
	if (d->dev_features & BIT64(VU_F_PROTOCOL_FEATURES)) {
		ret = vu_get_u64(&d->vu, VU_GET_PROTOCOL_FEATURES, &pf);
		if (ret < 0)
			goto err;
		d->protocol_features = pf & want_protocol;
		ret = vu_set_u64(&d->vu, VU_SET_PROTOCOL_FEATURES, d->protocol_features);
		if (ret < 0)
			goto err;
		d->vu.reply_ack = d->protocol_features & BIT64(VU_PF_REPLY_ACK);
	}
	if (iommu && (!(d->dev_features & BIT64(VIRTIO_F_ACCESS_PLATFORM)) ||
		      (d->protocol_features & iommu_pf) != iommu_pf)) {
		bench_err("%s: no vIOMMU support (VIRTIO_F_ACCESS_PLATFORM with the backend channel "
			  "and REPLY_ACK)", socket);
		ret = -ENOTSUP;
		goto err;
	}
	d->iommu = iommu;
	d->keep_inflight = d->protocol_features & BIT64(VU_PF_INFLIGHT_SHMFD);
	if (offered_protocol)
		*offered_protocol = pf;
	return 0;
err:
	vu_close(&d->vu);
	return ret;
}

static uint64_t gpa_of(const struct vudev *d, const void *p)
{
	return (uint64_t)((const uint8_t *)p - d->mem.base);
}

/* Gives the backend its channel to us. */
static int open_backend_channel(struct vudev *d)
{
	int sv[2], ret;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	ret = vu_set_slave_fd(&d->vu, sv[1]);
	close(sv[1]);
	if (ret < 0) {
		close(sv[0]);
		return ret;
	}
	d->slave_fd = sv[0];
	return 0;
}

static void resolve_all(struct vudev *d, uint64_t iova, uint64_t *map_iova, uint64_t *size,
			uint64_t *uaddr, void *arg)
{
	uint64_t base = VUDEV_IOVA_BASE, g = d->iotlb_granule, lo, hi;

	(void)arg;
	*size = 0;
	if (iova < base || iova - base >= d->mem.size)
		return;
	lo = (iova - base) & ~(g - 1);
	hi = lo + g < d->mem.size ? lo + g : d->mem.size;
	*map_iova = base + lo;
	*size = hi - lo;
	*uaddr = (uint64_t)(uintptr_t)(d->mem.base + lo);
}

int vudev_serve_iotlb(struct vudev *d)
{
	struct vu_iotlb m;
	uint64_t iova, size, uaddr;
	int n = 0, ret;

	if (d->slave_fd < 0)
		return 0;
	while ((ret = vu_backend_recv(d->slave_fd, &m)) == 1) {
		if (m.type != VU_IOTLB_MISS)
			continue;
		(d->iotlb_resolve ? d->iotlb_resolve : resolve_all)(d, m.iova, &iova, &size,
									&uaddr, d->iotlb_arg);
		n++;
		if (!size) {
			d->misses_refused++;
			continue;
		}
		ret = vu_iotlb(&d->vu, VU_IOTLB_UPDATE, iova, size, uaddr, 3);
		if (ret < 0)
			return ret;
		d->misses_served++;
	}
	return ret < 0 ? ret : n;
}

/* The base the backend starts a queue from: 0 at the first start; after a
 * reconnection the used index as it stands, as QEMU restores it (with the
 * inflight region rte_vhost then skips the requests it sends again). */
static uint16_t vudev_queue_base(const struct vudev *d, const struct virtq *vq)
{
	if (!d->reconnects)
		return 0;
	return le16toh(__atomic_load_n(&vq->used->idx, __ATOMIC_ACQUIRE));
}

static int vudev_start_queue(struct vudev *d, struct virtq *vq)
{
	unsigned int i = vq->index;
	int ret;

	ret = vu_set_vring_state(&d->vu, VU_SET_VRING_NUM, i, vq->num);
	if (ret < 0)
		return ret;
	/* Ring addresses are the VMM's own, or IOVAs behind a vIOMMU. */
	if (d->iommu)
		ret = vu_set_vring_addr(&d->vu, i, vudev_addr(d, gpa_of(d, vq->desc)),
					vudev_addr(d, gpa_of(d, vq->used)),
					vudev_addr(d, gpa_of(d, vq->avail)));
	else
		ret = vu_set_vring_addr(&d->vu, i, (uint64_t)(uintptr_t)vq->desc,
					(uint64_t)(uintptr_t)vq->used,
					(uint64_t)(uintptr_t)vq->avail);
	if (ret < 0)
		return ret;
	ret = vu_set_vring_state(&d->vu, VU_SET_VRING_BASE, i, vudev_queue_base(d, vq));
	if (ret < 0)
		return ret;
	ret = vu_set_vring_fd(&d->vu, VU_SET_VRING_KICK, i, vq->kick_fd);
	if (ret < 0)
		return ret;
	return vu_set_vring_fd(&d->vu, VU_SET_VRING_CALL, i, vq->call_fd);
}

/*
 * The inflight region, as QEMU keeps it: asked for once (GET), handed to
 * the backend at every connection (SET). rte_vhost places a queue's part
 * of it only for queues it already knows, which a SET_VRING_CALL makes
 * (QEMU's are sent at its device's init, before this).
 */
static int vudev_inflight(struct vudev *d)
{
	unsigned int i;
	int ret;

	if (!d->keep_inflight)
		return 0;
	for (i = 0; i < d->nq; i++) {
		ret = vu_set_vring_fd(&d->vu, VU_SET_VRING_CALL, i, d->vqs[i].call_fd);
		if (ret < 0)
			return ret;
	}
	if (d->inflight_fd < 0) {
		ret = vu_get_inflight_fd(&d->vu, (uint16_t)d->nq, d->queue_size, &d->inflight,
					 &d->inflight_fd);
		if (ret < 0)
			return ret;
		d->inflight.num_queues = (uint16_t)d->nq;
		d->inflight.queue_size = d->queue_size;
	}
	return vu_set_inflight_fd(&d->vu, &d->inflight, d->inflight_fd);
}

/* Everything after the features, on guest memory and rings that exist. */
static int vudev_setup(struct vudev *d)
{
	struct vu_mem_region region = {
		.guest_phys_addr = 0,
		.memory_size = d->mem.size,
		.userspace_addr = (uint64_t)(uintptr_t)d->mem.base,
		.mmap_offset = 0,
	};
	unsigned int i;
	int ret;

	ret = vudev_inflight(d);
	if (ret < 0)
		return ret;
	ret = vu_set_mem_table(&d->vu, &region, &d->mem.fd, 1);
	if (ret < 0)
		return ret;
	if (d->iommu) {
		ret = open_backend_channel(d);
		if (ret < 0)
			return ret;
		for (i = 0; i < d->nq; i++)
			d->vqs[i].addr_base = VUDEV_IOVA_BASE;
	}

	for (i = 0; i < d->nq; i++) {
		ret = vudev_start_queue(d, &d->vqs[i]);
		if (ret < 0)
			return ret;
	}
	d->started = true;
	/* With protocol features negotiated, rings start disabled. */
	if (vudev_has(d, VU_F_PROTOCOL_FEATURES)) {
		for (i = 0; i < d->nq; i++) {
			ret = vu_set_vring_state(&d->vu, VU_SET_VRING_ENABLE, i, 1);
			if (ret < 0)
				return ret;
		}
	}
	return 0;
}

int vudev_start(struct vudev *d, unsigned int nq, uint16_t queue_size, uint64_t extra)
{
	uint64_t ring_bytes = BENCH_ALIGN_UP(virtq_ring_bytes(queue_size), BENCH_PAGE_SIZE);
	unsigned int i;
	int ret;

	if (nq == 0 || nq > d->max_queues)
		return -EINVAL;
	d->vqs = calloc(nq, sizeof(*d->vqs));
	if (!d->vqs)
		return -ENOMEM;
	for (i = 0; i < nq; i++) {
		d->vqs[i].kick_fd = -1;
		d->vqs[i].call_fd = -1;
	}
	d->queue_size = queue_size;

	ret = gmem_init(&d->mem, ring_bytes * nq + BENCH_ALIGN_UP(extra, BENCH_PAGE_SIZE));
	if (ret < 0)
		goto err;
	for (; d->nq < nq; d->nq++) {
		uint64_t gpa;

		ret = gmem_alloc(&d->mem, ring_bytes, BENCH_PAGE_SIZE, &gpa);
		if (ret < 0)
			goto err;
		ret = virtq_init(&d->vqs[d->nq], d->nq, queue_size, gmem_hva(&d->mem, gpa),
				 vudev_has(d, VIRTIO_RING_F_EVENT_IDX));
		if (ret < 0)
			goto err;
	}

	ret = vudev_setup(d);
	if (ret < 0)
		goto err;
	return 0;

err:
	/* The caller's vudev_close() releases queues and memory. */
	return ret;
}

/* The features and protocol features of the first connection, again. */
static int vudev_negotiate_again(struct vudev *d)
{
	uint64_t f, pf;
	int ret;

	ret = vu_set_owner(&d->vu);
	if (ret == 0)
		ret = vu_get_u64(&d->vu, VU_GET_FEATURES, &f);
	if (ret < 0)
		return ret;
	if ((f & d->features) != d->features) {
		bench_err("%s: the backend no longer offers features 0x%llx", d->socket,
			  (unsigned long long)(d->features & ~f));
		return -ENOTSUP;
	}
	if (d->dev_features & BIT64(VU_F_PROTOCOL_FEATURES)) {
		ret = vu_get_u64(&d->vu, VU_GET_PROTOCOL_FEATURES, &pf);
		if (ret < 0)
			return ret;
		if ((pf & d->protocol_features) != d->protocol_features) {
			bench_err("%s: the backend no longer offers protocol features 0x%llx",
				  d->socket, (unsigned long long)(d->protocol_features & ~pf));
			return -ENOTSUP;
		}
		ret = vu_set_u64(&d->vu, VU_SET_PROTOCOL_FEATURES, d->protocol_features);
		if (ret < 0)
			return ret;
		d->vu.reply_ack = d->protocol_features & BIT64(VU_PF_REPLY_ACK);
	}
	return vu_set_u64(&d->vu, VU_SET_FEATURES, d->features);
}

int vudev_reconnect(struct vudev *d, int timeout_ms)
{
	const struct timespec pause = { 0, 20 * 1000000 };
	uint64_t deadline = bench_now_ns() + (uint64_t)timeout_ms * 1000000ull;
	int per_msg_ms = d->vu.timeout_ms, ret;
	unsigned int i;

	if (d->iommu || !d->vqs)
		return -ENOTSUP;
	vu_close(&d->vu);
	d->started = false;
	for (;;) {
		ret = vu_try_connect(&d->vu, d->socket, per_msg_ms);
		if (ret == 0) {
			d->reconnects++;
			ret = vudev_negotiate_again(d);
			if (ret == 0)
				ret = vudev_setup(d);
			if (ret == 0)
				break;
			d->reconnects--;
			/* Only a backend that went away again is waited for. */
			if (!d->vu.closed)
				return ret;
			vu_close(&d->vu);
		} else if (ret != -ECONNREFUSED && ret != -ENOENT) {
			return ret;
		}
		if (bench_now_ns() >= deadline) {
			bench_err("%s: no backend to reconnect to within %d ms", d->socket,
				  timeout_ms);
			return -ETIMEDOUT;
		}
		nanosleep(&pause, NULL);
	}
	/* What was posted while nobody listened, or while the old backend
	 * was dying, may have had its kick eaten: one on each queue. */
	for (i = 0; i < d->nq; i++)
		virtq_notify(&d->vqs[i]);
	return 0;
}

void vudev_stop(struct vudev *d, bool check)
{
	unsigned int i;

	if (!d->started)
		return;
	d->started = false;
	for (i = 0; i < d->nq; i++) {
		uint32_t base;

		if (d->vu.closed || vu_get_vring_base(&d->vu, i, &base) < 0)
			return;
		if (check && base != d->vqs[i].avail_idx)
			bench_err("queue %u: backend stopped at avail index %u, we posted %u", i,
				  base, d->vqs[i].avail_idx);
	}
}

void vudev_close(struct vudev *d)
{
	unsigned int i;

	vu_close(&d->vu);
	if (d->slave_fd >= 0)
		close(d->slave_fd);
	d->slave_fd = -1;
	if (d->inflight_fd >= 0)
		close(d->inflight_fd);
	d->inflight_fd = -1;
	if (d->vqs) {
		for (i = 0; i < d->nq; i++)
			virtq_fini(&d->vqs[i]);
		/* Queues that failed half-way through init hold no resources. */
		free(d->vqs);
	}
	d->vqs = NULL;
	d->nq = 0;
	gmem_fini(&d->mem);
}


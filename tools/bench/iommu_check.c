// SPDX-License-Identifier: BSD-3-Clause
/*
 * vrio-bench --iommu-check KIND: vrio-bench as the VMM's vIOMMU, checking
 * what a backend promises when it acknowledges an IOTLB invalidation.
 *
 *   invalidate  write a pattern, then post reads of it into buffers and,
 *               while they are in flight, invalidate the buffers' IOVAs.
 *               Strict backend: when the acknowledgement comes, every read
 *               has completed, with the pattern in its buffer; a canary
 *               written into the buffers afterwards is never overwritten.
 *               --iommu-deferred: the backend may answer before the reads
 *               complete (that is the policy's exposure); they must still
 *               complete, and the canary check is skipped.
 *   unmapped    post a read whose buffer lies at an IOVA this VMM never
 *               maps, and refuse the backend's miss: the request must never
 *               complete (the backend breaks the device instead, which the
 *               caller sees in its metrics); a buffer outside the window is
 *               never written.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"
#include "blkdrv.h"
#include "iommu_check.h"

#define CHECK_REQS	16u
#define CHECK_LEN	(64u << 10)
#define PATTERN		0x5a
#define CANARY		0xc3

/* The window of guest memory a test keeps out of reach: misses in it are
 * refused, as a VMM does for an IOVA its guest unmapped. */
struct hole {
	uint64_t iova, size;
};

static void resolve(struct vudev *d, uint64_t iova, uint64_t *map_iova, uint64_t *size,
		    uint64_t *uaddr, void *arg)
{
	const struct hole *h = arg;
	uint64_t gpa = iova - VUDEV_IOVA_BASE;

	*size = 0;
	if (iova < VUDEV_IOVA_BASE || gpa >= d->mem.size ||
	    (iova >= h->iova && iova - h->iova < h->size))
		return;
	*map_iova = iova & ~(VUDEV_IOTLB_GRANULE - 1);
	*size = VUDEV_IOTLB_GRANULE;
	*uaddr = (uint64_t)(uintptr_t)(d->mem.base + (gpa & ~(VUDEV_IOTLB_GRANULE - 1)));
}

/* Reap until `want` completions or the deadline, answering misses. */
static int reap(struct blkdev *dev, unsigned want, int timeout_ms, unsigned *got)
{
	uint64_t deadline = bench_now_ns() + (uint64_t)timeout_ms * 1000000ull;
	struct virtq *vq = &dev->v.vqs[0];
	struct pollfd pfd[2] = {
		{ .fd = vq->call_fd, .events = POLLIN },
		{ .fd = dev->v.slave_fd, .events = POLLIN },
	};
	void *cookie;
	uint32_t len;
	int ret;

	while (*got < want) {
		while ((ret = virtq_get_used(vq, &cookie, &len)) == 0)
			(*got)++;
		if (ret != -EAGAIN)
			return ret;
		if (*got >= want || bench_now_ns() >= deadline)
			break;
		if (vudev_serve_iotlb(&dev->v) < 0)
			return -EIO;
		if (!virtq_enable_cb(vq)) {
			poll(pfd, 2, 10);
			virtq_drain_call(vq);
		}
		virtq_disable_cb(vq);
	}
	return 0;
}

static int submit(struct blkdev *dev, struct blk_req *r, unsigned n, uint32_t type)
{
	struct virtq *vq = &dev->v.vqs[0];
	int ret;

	for (unsigned i = 0; i < n; i++) {
		ret = blk_req_submit(vq, &r[i], type, (uint64_t)i * (CHECK_LEN / 512), CHECK_LEN,
				     &r[i]);
		if (ret < 0)
			return ret;
	}
	virtq_publish(vq);
	return virtq_kick(vq) < 0 ? -EIO : 0;
}

static bool all_bytes(const uint8_t *p, size_t n, uint8_t v)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != v)
			return false;
	return true;
}

static int check_invalidate(struct blkdev *dev, struct blk_req *r, const struct iommu_check_opts *o,
			    struct hole *hole)
{
	uint64_t lo = dev->v.vqs[0].addr_base + r[0].data_gpa;
	uint64_t hi = dev->v.vqs[0].addr_base + r[CHECK_REQS - 1].data_gpa + CHECK_LEN;
	struct timespec settle = { 0, 5 * 1000000 }, later = { 0, 200 * 1000000 };
	unsigned got = 0, at_ack, bad = 0, i;
	uint64_t t0;
	int ret;

	for (i = 0; i < CHECK_REQS; i++)
		memset(r[i].data, PATTERN, CHECK_LEN);
	ret = submit(dev, r, CHECK_REQS, BLK_T_OUT);
	if (ret == 0)
		ret = reap(dev, CHECK_REQS, o->timeout_ms, &got);
	if (ret < 0 || got < CHECK_REQS) {
		bench_err("the pattern writes did not complete (%u of %u)", got, CHECK_REQS);
		return 1;
	}
	for (i = 0; i < CHECK_REQS; i++)
		memset(r[i].data, 0, CHECK_LEN);
	got = 0;
	ret = submit(dev, r, CHECK_REQS, BLK_T_IN);
	if (ret < 0)
		return ret;
	/* Let the backend take the chains before the VMM takes the IOVAs back. */
	nanosleep(&settle, NULL);
	reap(dev, CHECK_REQS, 0, &got);
	t0 = bench_now_ns();
	ret = vu_iotlb(&dev->v.vu, VU_IOTLB_INVALIDATE, lo, hi - lo, 0, 0);
	if (ret < 0) {
		bench_err("the backend did not acknowledge the invalidation");
		return 1;
	}
	/* The VMM maps that range no more. */
	hole->iova = lo;
	hole->size = hi - lo;
	reap(dev, CHECK_REQS, 0, &got);
	at_ack = got;
	if (!o->quiet)
		fprintf(stderr, "vrio-bench: invalidation of %#llx+%#llx acknowledged after %.3f ms, "
			"%u of %u reads completed by then\n", (unsigned long long)lo,
			(unsigned long long)(hi - lo), (double)(bench_now_ns() - t0) / 1e6, at_ack,
			CHECK_REQS);
	if (!o->deferred && at_ack < CHECK_REQS) {
		bench_err("acknowledged with %u reads on the range still in flight",
			  CHECK_REQS - at_ack);
		return 1;
	}
	ret = reap(dev, CHECK_REQS, o->timeout_ms, &got);
	if (ret < 0 || got < CHECK_REQS) {
		bench_err("%u reads never completed", CHECK_REQS - got);
		return 1;
	}
	for (i = 0; i < CHECK_REQS; i++) {
		if (*r[i].status != BLK_S_OK || !all_bytes(r[i].data, CHECK_LEN, PATTERN))
			bad++;
		memset(r[i].data, CANARY, CHECK_LEN);
	}
	if (bad) {
		bench_err("%u reads returned wrong data or status", bad);
		return 1;
	}
	if (o->deferred)
		return 0;
	/* Nothing may land in the range once it was acknowledged. */
	nanosleep(&later, NULL);
	for (i = 0; i < CHECK_REQS; i++)
		if (!all_bytes(r[i].data, CHECK_LEN, CANARY))
			bad++;
	if (bad) {
		bench_err("%u buffers were written after the acknowledgement", bad);
		return 1;
	}
	return 0;
}

static int check_unmapped(struct blkdev *dev, struct blk_req *r, const struct iommu_check_opts *o)
{
	unsigned got = 0;

	memset(r[0].data, CANARY, CHECK_LEN);
	if (submit(dev, r, 1, BLK_T_IN) < 0)
		return -EIO;
	reap(dev, 1, o->timeout_ms, &got);
	if (got) {
		bench_err("a read into an unmapped IOVA completed (status %u)", *r[0].status);
		return 1;
	}
	if (!all_bytes(r[0].data, CHECK_LEN, CANARY)) {
		bench_err("the buffer behind the unmapped IOVA was written");
		return 1;
	}
	if (!dev->v.misses_refused) {
		bench_err("the backend never asked for the unmapped IOVA");
		return 1;
	}
	return 0;
}

int iommu_check_run(const struct iommu_check_opts *o)
{
	struct blkdev_opts bo = {
		.socket = o->socket, .timeout_ms = o->timeout_ms, .quiet = o->quiet, .iommu = true,
	};
	struct blk_req r[CHECK_REQS];
	struct blkdev dev;
	struct hole hole = { 0, 0 };
	int ret;

	ret = blkdev_connect(&dev, &bo);
	if (ret < 0)
		return ret;
	ret = blkdev_start(&dev, 1, 256, (CHECK_REQS + 1) * (CHECK_LEN + BENCH_PAGE_SIZE));
	for (unsigned i = 0; ret == 0 && i < CHECK_REQS; i++)
		ret = blk_req_alloc(&dev, &r[i], CHECK_LEN);
	if (ret < 0)
		goto out;
	dev.v.iotlb_resolve = resolve;
	dev.v.iotlb_arg = &hole;
	if (!strcmp(o->kind, "unmapped")) {
		/* The data buffer of the first request is where the VMM maps nothing. */
		hole.iova = VUDEV_IOVA_BASE + r[0].data_gpa;
		hole.size = CHECK_LEN;
		ret = check_unmapped(&dev, r, o);
	} else {
		ret = check_invalidate(&dev, r, o, &hole);
	}
	if (!o->quiet)
		fprintf(stderr, "vrio-bench: iommu-check %s: %s; misses answered %llu, refused %llu\n",
			o->kind, ret == 0 ? "ok" : "FAILED",
			(unsigned long long)dev.v.misses_served,
			(unsigned long long)dev.v.misses_refused);
out:
	blkdev_close(&dev);
	return ret;
}

// SPDX-License-Identifier: BSD-3-Clause
#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "blkdrv.h"

_Static_assert(offsetof(struct virtio_blk_config, blk_size) == 20, "virtio-blk config layout");
_Static_assert(offsetof(struct virtio_blk_config, num_queues) == 34, "virtio-blk config layout");
_Static_assert(offsetof(struct virtio_blk_config, write_zeroes_may_unmap) == 56,
	       "virtio-blk config layout");
_Static_assert(offsetof(struct virtio_blk_config, unused1) + 3 == BLK_CONFIG_LEN,
	       "virtio-blk config length");
_Static_assert(sizeof(struct blk_req_hdr) == 16, "virtio-blk request header");

/* What vrio-bench drives, taken when the device offers it. */
#define BLKDEV_WANTED_FEATURES                                                              \
	(BIT64(VIRTIO_F_VERSION_1) | BIT64(VIRTIO_RING_F_EVENT_IDX) |                       \
	 BIT64(VIRTIO_RING_F_INDIRECT_DESC) | BIT64(VU_F_PROTOCOL_FEATURES) |               \
	 BIT64(VIRTIO_BLK_F_SEG_MAX) | BIT64(VIRTIO_BLK_F_BLK_SIZE) |                       \
	 BIT64(VIRTIO_BLK_F_FLUSH) | BIT64(VIRTIO_BLK_F_MQ) | BIT64(VIRTIO_BLK_F_RO))

#define BLKDEV_WANTED_PROTOCOL \
	(BIT64(VU_PF_MQ) | BIT64(VU_PF_REPLY_ACK) | BIT64(VU_PF_CONFIG))

static void blkdev_config_to_cpu(struct virtio_blk_config *c)
{
	c->capacity = le64toh(c->capacity);
	c->size_max = le32toh(c->size_max);
	c->seg_max = le32toh(c->seg_max);
	c->cylinders = le16toh(c->cylinders);
	c->blk_size = le32toh(c->blk_size);
	c->min_io_size = le16toh(c->min_io_size);
	c->opt_io_size = le32toh(c->opt_io_size);
	c->num_queues = le16toh(c->num_queues);
	c->max_discard_sectors = le32toh(c->max_discard_sectors);
	c->max_discard_seg = le32toh(c->max_discard_seg);
	c->discard_sector_alignment = le32toh(c->discard_sector_alignment);
	c->max_write_zeroes_sectors = le32toh(c->max_write_zeroes_sectors);
	c->max_write_zeroes_seg = le32toh(c->max_write_zeroes_seg);
}

int blkdev_connect(struct blkdev *d, const struct blkdev_opts *o)
{
	uint64_t pf = 0, nq = 1;
	int ret;

	memset(d, 0, sizeof(*d));
	ret = vudev_connect(&d->v, o->socket, o->timeout_ms,
			    BLKDEV_WANTED_PROTOCOL |
			    (o->reconnect ? BIT64(VU_PF_INFLIGHT_SHMFD) : 0), &pf, o->iommu);
	if (ret < 0)
		return ret;
	if (o->reconnect && !d->v.keep_inflight) {
		bench_err("%s: backend does not offer VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD, which reconnecting needs",
			  o->socket);
		ret = -ENOTSUP;
		goto err;
	}
	if (d->v.protocol_features & BIT64(VU_PF_MQ)) {
		ret = vu_get_u64(&d->v.vu, VU_GET_QUEUE_NUM, &nq);
		if (ret < 0)
			goto err;
		if (nq == 0) {
			bench_err("%s: GET_QUEUE_NUM says 0 queues", o->socket);
			ret = -EPROTO;
			goto err;
		}
	}
	if (!(d->v.protocol_features & BIT64(VU_PF_CONFIG))) {
		bench_err("%s: backend does not offer VHOST_USER_PROTOCOL_F_CONFIG, so the capacity is unknown",
			  o->socket);
		ret = -ENOTSUP;
		goto err;
	}
	ret = vu_get_config(&d->v.vu, 0, &d->cfg, BLK_CONFIG_LEN);
	if (ret < 0)
		goto err;
	blkdev_config_to_cpu(&d->cfg);

	d->v.features = d->v.dev_features & (BLKDEV_WANTED_FEATURES |
					      (o->iommu ? BIT64(VIRTIO_F_ACCESS_PLATFORM) : 0)) &
			~o->features_off;
	ret = vu_set_u64(&d->v.vu, VU_SET_FEATURES, d->v.features);
	if (ret < 0)
		goto err;

	d->v.max_queues = 1;
	if (blkdev_has(d, VIRTIO_BLK_F_MQ) && d->cfg.num_queues > 0)
		d->v.max_queues = d->cfg.num_queues;
	if (d->v.max_queues > nq)
		d->v.max_queues = (unsigned int)nq;
	if (blkdev_has(d, VIRTIO_BLK_F_BLK_SIZE) &&
	    (d->cfg.blk_size < 512 || (d->cfg.blk_size & (d->cfg.blk_size - 1)))) {
		bench_err("%s: device reports a block size of %u", o->socket, d->cfg.blk_size);
		ret = -EPROTO;
		goto err;
	}

	if (!o->quiet)
		fprintf(stderr,
			"vrio-bench: %s: capacity %llu sectors (%llu MiB), blk_size %u, seg_max %u, queues %u, features 0x%llx (offered 0x%llx), protocol 0x%llx (offered 0x%llx)\n",
			o->socket, (unsigned long long)d->cfg.capacity,
			(unsigned long long)(d->cfg.capacity >> 11),
			blkdev_has(d, VIRTIO_BLK_F_BLK_SIZE) ? d->cfg.blk_size : 512,
			blkdev_has(d, VIRTIO_BLK_F_SEG_MAX) ? d->cfg.seg_max : 0, d->v.max_queues,
			(unsigned long long)d->v.features, (unsigned long long)d->v.dev_features,
			(unsigned long long)d->v.protocol_features, (unsigned long long)pf);
	return 0;

err:
	vu_close(&d->v.vu);
	return ret;
}

int blk_req_alloc(struct blkdev *d, struct blk_req *r, uint32_t data_cap)
{
	uint64_t gpa;
	int ret;

	ret = gmem_alloc(&d->v.mem, 32, 32, &gpa);
	if (ret < 0)
		return ret;
	r->hdr_gpa = gpa;
	r->status_gpa = gpa + sizeof(struct blk_req_hdr);
	r->hdr = gmem_hva(&d->v.mem, r->hdr_gpa);
	r->status = gmem_hva(&d->v.mem, r->status_gpa);
	r->data = NULL;
	r->data_gpa = 0;
	r->data_cap = data_cap;
	if (!data_cap)
		return 0;
	ret = gmem_alloc(&d->v.mem, data_cap, data_cap >= BENCH_PAGE_SIZE ? BENCH_PAGE_SIZE : 512,
			 &gpa);
	if (ret < 0)
		return ret;
	r->data_gpa = gpa;
	r->data = gmem_hva(&d->v.mem, gpa);
	return 0;
}

int blk_req_submit(struct virtq *vq, struct blk_req *r, uint32_t type, uint64_t sector,
		   uint32_t len, void *cookie)
{
	struct vq_buf bufs[3];
	unsigned int n = 0;

	if (len > r->data_cap)
		return -EINVAL;
	r->hdr->type = htole32(type);
	r->hdr->ioprio = 0;
	r->hdr->sector = htole64(sector);
	*r->status = BLK_S_UNSET;

	bufs[n++] = (struct vq_buf){ r->hdr_gpa, sizeof(struct blk_req_hdr), false };
	if (len)
		bufs[n++] = (struct vq_buf){ r->data_gpa, len, type == BLK_T_IN };
	bufs[n++] = (struct vq_buf){ r->status_gpa, 1, true };
	return virtq_add(vq, bufs, n, cookie);
}

const char *blk_type_name(uint32_t type)
{
	switch (type) {
	case BLK_T_IN:
		return "READ";
	case BLK_T_OUT:
		return "WRITE";
	case BLK_T_FLUSH:
		return "FLUSH";
	case BLK_T_GET_ID:
		return "GET_ID";
	case BLK_T_DISCARD:
		return "DISCARD";
	case BLK_T_WRITE_ZEROES:
		return "WRITE_ZEROES";
	default:
		return "UNKNOWN";
	}
}

const char *blk_status_name(uint8_t status)
{
	switch (status) {
	case BLK_S_OK:
		return "OK";
	case BLK_S_IOERR:
		return "IOERR";
	case BLK_S_UNSUPP:
		return "UNSUPP";
	case BLK_S_UNSET:
		return "not written";
	default:
		return "invalid";
	}
}

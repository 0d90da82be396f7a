/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The vhost-user messages local-hv acts on before rte_vhost does (its
 * pre_msg_handle): the VMM's IOTLB, the config space, the backend channel,
 * and the messages after which the rings are not what the poller uses.
 * Everything here is the frontend's word, and the frontend is untrusted.
 * vhost.c is the adapter that finds the device for a connection; this file
 * calls nothing of rte_vhost's, so tests/fuzz/fuzz_vhost_msg.c drives it
 * without a running rte_vhost.
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <string.h>
#include <time.h>
#include <linux/vhost_types.h>

#include "channel.h"
#include "localhv.h"
#include "log.h"

#define VHOST_USER_SET_FEATURES		2
#define VHOST_USER_RESET_OWNER		4
#define VHOST_USER_SET_MEM_TABLE	5
#define VHOST_USER_SET_VRING_NUM	8
#define VHOST_USER_SET_VRING_ADDR	9
#define VHOST_USER_SET_VRING_BASE	10
#define VHOST_USER_GET_VRING_BASE	11
#define VHOST_USER_SET_VRING_KICK	12
#define VHOST_USER_SET_VRING_CALL	13
#define VHOST_USER_GET_QUEUE_NUM	17
#define VHOST_USER_SET_VRING_ENABLE	18
#define VHOST_USER_SET_SLAVE_REQ_FD	21
#define VHOST_USER_IOTLB_MSG		22
#define VHOST_USER_GET_CONFIG		24
#define VHOST_USER_SET_CONFIG		25
#define VHOST_USER_GET_INFLIGHT_FD	31
#define VHOST_USER_SET_INFLIGHT_FD	32
#define VU_CFG_HDR			12	/* offset, size, flags */
#define STOP_TIMEOUT_NS			(5ull * 1000 * 1000 * 1000)

/* The part of a vhost-user message we read: the start of rte_vhost's
 * context (channel.c), the frontend's bytes. */
struct vu_msg {
	uint32_t request;
	uint32_t flags;
	uint32_t size;
	union {
		uint64_t u64;
		struct {
			uint32_t offset;
			uint32_t size;
			uint32_t flags;
			uint8_t region[LHV_CONFIG_MAX];
		} cfg;
		struct vhost_iotlb_msg iotlb;
		struct {
			uint64_t mmap_size;
			uint64_t mmap_offset;
			uint16_t num_queues;
			uint16_t queue_size;
		} __attribute__((packed)) inflight;
	} payload;
} __attribute__((packed));

bool lhv_vu_changes_rings(uint32_t request)
{
	switch (request) {
	case VHOST_USER_SET_FEATURES:
	case VHOST_USER_RESET_OWNER:
	case VHOST_USER_SET_MEM_TABLE:
	case VHOST_USER_SET_VRING_NUM:
	case VHOST_USER_SET_VRING_ADDR:
	case VHOST_USER_SET_VRING_BASE:
	case VHOST_USER_GET_VRING_BASE:
	case VHOST_USER_SET_VRING_KICK:
	case VHOST_USER_SET_VRING_CALL:
	case VHOST_USER_SET_VRING_ENABLE:
	/* rte_vhost remaps the inflight region the poller writes to. */
	case VHOST_USER_GET_INFLIGHT_FD:
	case VHOST_USER_SET_INFLIGHT_FD:
		return true;
	}
	return false;
}

/* Take the device back from the poller: it drains requests in flight
 * (bounded by stop_deadline) first. We never return while it may still
 * touch guest memory. Ring positions go back to rte_vhost (ops->release),
 * which hands them to the frontend on GET_VRING_BASE. */
void lhv_dev_stop(struct lhv *l, struct lhv_dev *d)
{
	struct timespec ms = { 0, 1000000 };

	if (__atomic_load_n(&d->state, __ATOMIC_ACQUIRE) == LHV_DEV_IDLE)
		return;
	/* At a stop, lhv_poller_quiesce() already waited: what is still in
	 * flight now is abandoned, so that the stop stays bounded in all. */
	d->stop_deadline = vrio_now_ns() +
		(__atomic_load_n(&l->quiesce, __ATOMIC_ACQUIRE) ? 0 : STOP_TIMEOUT_NS);
	__atomic_store_n(&d->state, LHV_DEV_STOP, __ATOMIC_RELEASE);
	lhv_poller_wake(l);
	while (__atomic_load_n(&d->state, __ATOMIC_ACQUIRE) != LHV_DEV_IDLE &&
	       __atomic_load_n(&l->poller_started, __ATOMIC_ACQUIRE))
		nanosleep(&ms, NULL);
	if (d->ops->release)
		d->ops->release(d);
	VRIO_INFO("%s: rings handed back", d->name);
}

void lhv_vu_forget_frontend(struct lhv *l, struct lhv_dev *d)
{
	lhv_dev_stop(l, d);
	d->conn_vid = -1;
	/* The next frontend has its own address space and vIOMMU: its
	 * mappings start empty, and it gives its own channel. */
	if (d->ops->own_rings) {
		lhv_iotlb_invalidate(&d->iommu.tlb, 0, UINT64_MAX);
		lhv_iommu_set_channel(&d->iommu, -1);
	}
}

/* The backend channel from this message's descriptors, or -1 (logged). */
static int take_channel(struct lhv *l, struct lhv_dev *d, const void *ctx)
{
	struct lhv_channel_peer p = { .name = d->name, .socket = d->socket };
	unsigned i, n = __atomic_load_n(&l->n_slots, __ATOMIC_ACQUIRE);
	struct lhv_dev *o;
	int *held, fd;

	/* Other devices' channels: a descriptor we hold must not come back
	 * as this one's. Slots added meanwhile have no frontend yet. */
	held = calloc(n ? n : 1, sizeof(*held));
	if (!held) {
		VRIO_ERR("%s: no memory to check the backend channel", d->name);
		return -1;
	}
	pthread_mutex_lock(&l->lock);
	for (i = 0; i < n; i++) {
		o = l->devs[i];
		held[i] = o && o != d ? __atomic_load_n(&o->iommu.slave_fd, __ATOMIC_ACQUIRE) : -1;
	}
	pthread_mutex_unlock(&l->lock);
	p.n_held = n;
	p.held = held;
	fd = lhv_channel_take(ctx, &p);
	free(held);
	return fd < 0 ? -1 : fd;
}

/* GET_CONFIG: the io-server's config space, answered in the message. */
static enum lhv_msg_result get_config(struct lhv_dev *d, struct vu_msg *m)
{
	uint32_t off = m->payload.cfg.offset, len = m->payload.cfg.size;

	if (m->size < VU_CFG_HDR || off > LHV_CONFIG_MAX || len > LHV_CONFIG_MAX - off ||
	    m->size - VU_CFG_HDR < len) {
		VRIO_ERR_RL("%s: bad GET_CONFIG (offset %u size %u)", d->name, off, len);
		return LHV_MSG_ERR;
	}
	memset(m->payload.cfg.region, 0, len);
	if (off < d->config_len)
		memcpy(m->payload.cfg.region, d->config + off,
		       len < d->config_len - off ? len : d->config_len - off);
	return LHV_MSG_REPLY;
}

/* VhostUserInflight: u64 mmap_size, u64 mmap_offset, u16 num_queues, u16
 * queue_size, padded to 24 bytes (not packed, in QEMU and in rte_vhost,
 * which insists on exactly this size). */
#define VU_INFLIGHT_PAYLOAD	24
#define VU_INFLIGHT_ALIGN	64
#define VU_INFLIGHT_HDR		16	/* features, version, desc_num, last io, used_idx */
#define VU_INFLIGHT_DESC	16	/* struct rte_vhost_inflight_desc_split */

/*
 * GET_INFLIGHT_FD and SET_INFLIGHT_FD: rte_vhost believes their numbers.
 * It makes and zeroes (GET) a region of num_queues * queue_size entries,
 * and writes each queue's header at its offset in the one it is given
 * (SET) without comparing with mmap_size or the file's size. Both are held
 * to the device (its queues, its queue size), and a given region must hold
 * what its numbers say, in the file too, or a frontend would have
 * local-hv allocate gigabytes or write past a mapping.
 */
static enum lhv_msg_result check_inflight(struct lhv_dev *d, const struct vu_msg *m,
					  const void *ctx)
{
	uint16_t nq = m->payload.inflight.num_queues, qs = m->payload.inflight.queue_size;
	uint64_t size = m->payload.inflight.mmap_size, off = m->payload.inflight.mmap_offset;
	uint64_t need;
	struct stat st;
	int fd;

	if (m->size != VU_INFLIGHT_PAYLOAD || nq == 0 || nq > d->num_queues || qs == 0 ||
	    qs > d->queue_size) {
		VRIO_ERR_RL("%s: bad %s_INFLIGHT_FD (%u queue(s) of %u; the device has %u of %u)",
			    d->name, m->request == VHOST_USER_GET_INFLIGHT_FD ? "GET" : "SET", nq,
			    qs, d->num_queues, d->queue_size);
		return LHV_MSG_ERR;
	}
	if (m->request == VHOST_USER_GET_INFLIGHT_FD)
		return LHV_MSG_PASS;
	need = (uint64_t)nq * ((VU_INFLIGHT_HDR + (uint64_t)qs * VU_INFLIGHT_DESC +
				VU_INFLIGHT_ALIGN - 1) / VU_INFLIGHT_ALIGN * VU_INFLIGHT_ALIGN);
	if (size < need || off > UINT64_MAX - size) {
		VRIO_ERR_RL("%s: SET_INFLIGHT_FD: a region of %llu bytes for %u queue(s) of %u (%llu needed)",
			    d->name, (unsigned long long)size, nq, qs, (unsigned long long)need);
		return LHV_MSG_ERR;
	}
	/* Where the context is known, the file must be that long too (a
	 * mapping past its end faults at the first touch). */
	fd = lhv_channel_msg_fd(ctx, d->name);
	if (fd == -ENOTSUP)
		return LHV_MSG_PASS;
	if (fd < 0 || fstat(fd, &st) != 0 || st.st_size < 0 ||
	    (uint64_t)st.st_size < off + size) {
		VRIO_ERR_RL("%s: SET_INFLIGHT_FD without a region of %llu bytes at %llu", d->name,
			    (unsigned long long)size, (unsigned long long)off);
		return LHV_MSG_ERR;
	}
	return LHV_MSG_PASS;
}

enum lhv_msg_result lhv_vu_msg(struct lhv *l, struct lhv_dev *d, void *ctx)
{
	struct vu_msg *m = ctx;

	switch (m->request) {
	case VHOST_USER_IOTLB_MSG:
		/* Ours first (the walker's), then rte_vhost's (the rings'),
		 * which also answers the VMM. */
		if (m->size < sizeof(m->payload.iotlb))
			return LHV_MSG_ERR;
		if (lhv_iommu_post(l, d, m->payload.iotlb.type, m->payload.iotlb.iova,
				   m->payload.iotlb.size, m->payload.iotlb.uaddr,
				   m->payload.iotlb.perm) < 0)
			return LHV_MSG_ERR;
		return LHV_MSG_PASS;
	case VHOST_USER_SET_SLAVE_REQ_FD:
		/* rte_vhost keeps its own copy (for the rings' misses) and
		 * refuses a message without exactly one descriptor itself. */
		lhv_iommu_set_channel(&d->iommu, take_channel(l, d, ctx));
		return LHV_MSG_PASS;
	case VHOST_USER_GET_CONFIG:
		return get_config(d, m);
	case VHOST_USER_SET_CONFIG:
		/* Nothing in our config space is writable (no CONFIG_WCE). */
		VRIO_WARN_RL("%s: frontend tried to write config space; ignored", d->name);
		return LHV_MSG_ERR;
	}
	if (lhv_vu_changes_rings(m->request)) {
		lhv_dev_stop(l, d);
		/* The frontend restarts its rings after a device reset: only then
		 * may a device the guest broke be served again. */
		if (m->request == VHOST_USER_SET_VRING_BASE || m->request == VHOST_USER_RESET_OWNER)
			d->broken = false;
		if ((m->request == VHOST_USER_GET_INFLIGHT_FD ||
		     m->request == VHOST_USER_SET_INFLIGHT_FD) &&
		    check_inflight(d, m, ctx) == LHV_MSG_ERR)
			return LHV_MSG_ERR;
		/* GET_INFLIGHT_FD unmaps the region the queues still point
		 * to, until SET_INFLIGHT_FD gives them one again. */
		if (m->request == VHOST_USER_GET_INFLIGHT_FD)
			d->inflight_unmapped = true;
		else if (m->request == VHOST_USER_SET_INFLIGHT_FD)
			d->inflight_unmapped = false;
	}
	return LHV_MSG_PASS;
}

enum lhv_msg_result lhv_vu_net_msg(struct lhv_dev *d, void *ctx)
{
	struct vu_msg *m = ctx;

	if (m->request != VHOST_USER_GET_QUEUE_NUM)
		return LHV_MSG_PASS;
	/* A VMM asked for more pairs than this refuses to start the device,
	 * rather than have some of its queues never served. */
	m->payload.u64 = d->num_queues / 2;
	m->size = sizeof(m->payload.u64);
	return LHV_MSG_REPLY;
}

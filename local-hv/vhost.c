/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The adapter over DPDK's rte_vhost: one vhost-user server socket per device.
 * rte_vhost runs the vhost-user protocol in its own thread and calls us when
 * a frontend's device becomes ready or goes away; we hand the rings to the
 * poller and take them back (localhv.h, "Device ownership"). Config space and
 * the features offered come from the io-server, not from here.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <linux/vhost_types.h>

#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_log.h>
#include <rte_vhost.h>

#include "channel.h"
#include "dpdk_eal.h"
#include "localhv.h"
#include "log.h"

#define VIRTIO_F_VERSION_1_BIT		32
#define VIRTIO_F_ACCESS_PLATFORM_BIT	33
#define VIRTIO_F_RING_PACKED_BIT	34
#define VHOST_USER_F_PROTOCOL_FEATURES_BIT 30
#define VHOST_USER_PROTOCOL_F_CONFIG_BIT 9
#define VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD_BIT 12

/* rte_vhost's callbacks carry no context; this is the registry they use. */
static struct lhv *g_lhv;

static enum rte_vhost_msg_result post_msg(int vid, void *arg);

/* A device is freed only after its socket is unregistered, so the one
 * found here outlives the callback that asked (lhv_dev_remove). */
static struct lhv_dev *dev_by_vid(int vid)
{
	struct lhv_dev *d, *found = NULL;
	char path[PATH_MAX];
	unsigned i;

	if (!g_lhv || rte_vhost_get_ifname(vid, path, sizeof(path)) < 0)
		return NULL;
	pthread_mutex_lock(&g_lhv->lock);
	for (i = 0; i < g_lhv->n_slots && !found; i++) {
		d = g_lhv->devs[i];
		if (d && strcmp(d->socket, path) == 0)
			found = d;
	}
	pthread_mutex_unlock(&g_lhv->lock);
	return found;
}

/* The device, if vid is its current frontend connection. A connection a
 * newer one replaced (new_connection) is not heard any more. */
static struct lhv_dev *dev_of(int vid)
{
	struct lhv_dev *d = dev_by_vid(vid);

	return d && d->conn_vid == vid ? d : NULL;
}

/* The messages are vumsg.c's; here only the connection's device is found. */
static enum rte_vhost_msg_result pre_msg(int vid, void *arg)
{
	struct lhv_dev *d = dev_of(vid);

	if (!d)
		return RTE_VHOST_MSG_RESULT_ERR;
	switch (lhv_vu_msg(g_lhv, d, arg)) {
	case LHV_MSG_PASS:
		return RTE_VHOST_MSG_RESULT_NOT_HANDLED;
	case LHV_MSG_REPLY:
		return RTE_VHOST_MSG_RESULT_REPLY;
	case LHV_MSG_ERR:
		break;
	}
	return RTE_VHOST_MSG_RESULT_ERR;
}

static const struct rte_vhost_user_extern_ops extern_ops = {
	.pre_msg_handle = pre_msg,
	.post_msg_handle = post_msg,
};

static enum rte_vhost_msg_result net_pre_msg(int vid, void *arg)
{
	struct lhv_dev *d = dev_of(vid);

	if (!d)
		return RTE_VHOST_MSG_RESULT_ERR;
	return lhv_vu_net_msg(d, arg) == LHV_MSG_REPLY ? RTE_VHOST_MSG_RESULT_REPLY
						       : RTE_VHOST_MSG_RESULT_NOT_HANDLED;
}

/* The packet kind: rte_vhost's messages, but the number of queue pairs. */
static const struct rte_vhost_user_extern_ops net_extern_ops = {
	.pre_msg_handle = net_pre_msg,
};

/*
 * A new frontend while the device still has one: rte_vhost's event loop
 * takes a new connection before the hang-up of the one it replaces when
 * both arrive at once (a VMM that reconnects, a client run right after
 * another). The newest connection is the one that wants the device: the
 * old one is let go (its rings drained) and never heard again (dev_of).
 */
static int new_connection(int vid)
{
	struct lhv_dev *d = dev_by_vid(vid);

	if (!d)
		return -1;
	if (d->conn_vid >= 0) {
		VRIO_WARN("%s: a new frontend connected before the last one's hang-up was seen; serving the new one",
			  d->name);
		lhv_vu_forget_frontend(g_lhv, d);
	}
	__atomic_store_n(&d->net_ready, 0, __ATOMIC_RELEASE);
	if (rte_vhost_extern_callback_register(vid, d->ops->own_rings ? &extern_ops : &net_extern_ops,
					       NULL) != 0) {
		VRIO_ERR("%s: cannot register vhost-user message hooks", d->name);
		return -1;
	}
	d->conn_vid = vid;
	d->broken = false;
	d->inflight_unmapped = false;
	memset(d->ready, 0, sizeof(d->ready));
	VRIO_INFO("%s: frontend connected", d->name);
	return 0;
}

static void free_rings(struct lhv_dev *d)
{
	unsigned i;

	for (i = 0; i < d->nvq; i++) {
		free(d->vq[i].slots);
		d->vq[i].slots = NULL;
		d->vq[i].active = false;
	}
	free(d->mem.r);
	d->mem.r = NULL;
	d->mem.n = 0;
	d->nvq = 0;
}

void lhv_rr_release(struct lhv_dev *d)
{
	unsigned i;

	for (i = 0; i < d->nvq; i++)
		if (d->vq[i].active)
			rte_vhost_set_vring_base(d->vid, (uint16_t)i, d->vq[i].last_avail,
						 d->vq[i].used_idx);
	free_rings(d);
}

static int map_memory(struct lhv_dev *d, int vid)
{
	struct rte_vhost_memory *mem = NULL;
	unsigned i;

	if (rte_vhost_get_mem_table(vid, &mem) != 0)
		return -ENOENT;
	d->mem.r = calloc(mem->nregions ? mem->nregions : 1, sizeof(*d->mem.r));
	if (!d->mem.r) {
		free(mem);
		return -ENOMEM;
	}
	for (i = 0; i < mem->nregions; i++) {
		d->mem.r[i].gpa = mem->regions[i].guest_phys_addr;
		d->mem.r[i].size = mem->regions[i].size;
		d->mem.r[i].hva = mem->regions[i].host_user_addr;
		d->mem.r[i].uaddr = mem->regions[i].guest_user_addr;
	}
	d->mem.n = mem->nregions;
	free(mem);
	return 0;
}

static int setup_vq(struct lhv_dev *d, int vid, unsigned i)
{
	struct lhv_vq *q = &d->vq[i];
	struct rte_vhost_vring vr;
	uint16_t last_avail, last_used;

	if (rte_vhost_get_vhost_vring(vid, (uint16_t)i, &vr) != 0 ||
	    rte_vhost_get_vring_base(vid, (uint16_t)i, &last_avail, &last_used) != 0 || !vr.desc)
		return -ENOENT;
	if (vr.size == 0 || (vr.size & (vr.size - 1)) || vr.size > d->queue_size) {
		VRIO_ERR("%s: queue %u has size %u (power of two up to %u expected)", d->name, i,
			 vr.size, d->queue_size);
		return -EINVAL;
	}
	q->desc = vr.desc;
	q->avail = vr.avail;
	q->used = vr.used;
	q->size = vr.size;
	q->kickfd = vr.kickfd;
	q->callfd = vr.callfd;
	q->last_avail = last_avail;
	q->used_idx = last_used;
	lhv_notify_reset(&q->note);
	q->armed = false;
	q->inflight = 0;
	q->unsent = 0;
	q->slots = calloc(vr.size, sizeof(*q->slots));
	if (!q->slots)
		return -ENOMEM;
	q->active = true;
	/* After GET_INFLIGHT_FD and before SET_INFLIGHT_FD, rte_vhost's
	 * pointer to the region is stale (vumsg.c). */
	if (!d->inflight_unmapped)
		lhv_inflight_start(d, vid, i);
	else
		q->track = false;
	return 0;
}

/*
 * The request/response kind's rings: whichever vrings the frontend made
 * ready. rte_vhost's new_device waits for all of them, but firmware drives
 * only some: SeaBIOS boots from queue 0 of a multi-queue disk.
 */
int lhv_rr_start(struct lhv_dev *d, int vid)
{
	unsigned i, nvq = 0, served = 0;
	int rc;

	for (i = 0; i < LHV_MAX_QUEUES; i++)
		if (d->ready[i])
			nvq = i + 1;
	if (nvq == 0)
		return -ENOENT;
	if (nvq > d->num_queues) {
		VRIO_ERR("%s: frontend uses queue %u, the device has %u", d->name, nvq - 1,
			 d->num_queues);
		return -EINVAL;
	}
	if (d->features & (1ull << VIRTIO_F_RING_PACKED_BIT)) {
		VRIO_ERR("%s: packed rings were not offered", d->name);
		return -EINVAL;
	}
	rc = map_memory(d, vid);
	if (rc < 0)
		return rc;
	/* Behind a vIOMMU, buffers are IOVAs: the IOTLB comes between. */
	d->iommu.on = d->features & (1ull << VIRTIO_F_ACCESS_PLATFORM_BIT);
	d->mem.iotlb = d->iommu.on ? &d->iommu.tlb : NULL;
	d->nvq = nvq;
	for (i = 0; i < nvq; i++) {
		if (!d->ready[i])
			continue;
		rc = setup_vq(d, vid, i);
		/* A vring the frontend just tore down reports ready until
		 * rte_vhost's notification catches up: skip it. */
		if (rc == -ENOENT)
			continue;
		if (rc < 0)
			goto err;
		served++;
	}
	if (served)
		return 0;
	rc = -ENOENT;
err:
	free_rings(d);
	if (rc != -ENOENT)
		VRIO_ERR("%s: cannot serve the device's rings", d->name);
	return rc;
}

/* Hand the device to the poller, its queues set up by its kind. */
static void dev_start(struct lhv_dev *d, int vid)
{
	unsigned i, served = 0;

	if (__atomic_load_n(&d->state, __ATOMIC_ACQUIRE) != LHV_DEV_IDLE || d->conn_vid != vid)
		return;
	if (rte_vhost_get_negotiated_features(vid, &d->features) != 0)
		return;
	if (d->ops->start(d, vid) < 0)
		return;
	for (i = 0; i < d->nvq; i++)
		served += d->vq[i].active;
	d->event_idx = d->features & (1ull << VIRTIO_RING_F_EVENT_IDX);
	d->indirect = d->features & (1ull << VIRTIO_RING_F_INDIRECT_DESC);
	d->vid = vid;
	d->epoch++;
	d->inflight = 0;
	__atomic_store_n(&d->state, LHV_DEV_START, __ATOMIC_RELEASE);
	lhv_poller_wake(g_lhv);
	VRIO_INFO("%s: serving %u of %u queue(s), features %#llx", d->name, served, d->nvq,
		  (unsigned long long)d->features);
}

static enum rte_vhost_msg_result post_msg(int vid, void *arg)
{
	uint32_t request;
	struct lhv_dev *d;

	memcpy(&request, arg, sizeof(request));
	if (lhv_vu_changes_rings(request) && (d = dev_of(vid)))
		dev_start(d, vid);
	return RTE_VHOST_MSG_RESULT_NOT_HANDLED;
}

static void destroy_connection(int vid)
{
	struct lhv_dev *d = dev_of(vid);

	if (d) {
		lhv_vu_forget_frontend(g_lhv, d);
		VRIO_INFO("%s: frontend disconnected", d->name);
	}
}

static int new_device(int vid)
{
	struct lhv_dev *d = dev_of(vid);
	unsigned i, n = rte_vhost_get_vring_num(vid);

	if (!d)
		return -1;
	for (i = 0; i < n && i < LHV_MAX_QUEUES; i++)
		d->ready[i] = true;
	lhv_dev_stop(g_lhv, d);
	dev_start(d, vid);
	if (__atomic_load_n(&d->state, __ATOMIC_ACQUIRE) == LHV_DEV_IDLE)
		return -1;
	VRIO_NOTICE("%s: guest driver ready: %u queue(s)", d->name, d->nvq);
	return 0;
}

static void destroy_device(int vid)
{
	struct lhv_dev *d = dev_of(vid);

	if (d)
		lhv_dev_stop(g_lhv, d);
}

static int vring_state_changed(int vid, uint16_t queue, int enable)
{
	struct lhv_dev *d = dev_of(vid);

	if (!d || queue >= LHV_MAX_QUEUES)
		return 0;
	/*
	 * The packet kind: rte_vhost calls this with the queues' locks held,
	 * which its enqueue on the poller waits for, so the device is not
	 * stopped here: the poller follows the new set of vrings (net.c).
	 */
	if (!d->ops->own_rings) {
		if (enable)
			__atomic_fetch_or(&d->net_ready, 1ull << queue, __ATOMIC_RELEASE);
		else
			__atomic_fetch_and(&d->net_ready, ~(1ull << queue), __ATOMIC_RELEASE);
		lhv_poller_wake(g_lhv);
		return 0;
	}
	if (d->ready[queue] == (enable != 0))
		return 0;
	d->ready[queue] = enable != 0;
	lhv_dev_stop(g_lhv, d);
	dev_start(d, vid);
	return 0;
}

static const struct rte_vhost_device_ops vhost_ops = {
	.new_device = new_device,
	.destroy_device = destroy_device,
	.vring_state_changed = vring_state_changed,
	.new_connection = new_connection,
	.destroy_connection = destroy_connection,
};

int lhv_vhost_init(struct lhv *l, const char *prog, bool verbose)
{
	const char *why;
	int rc;

	/* rte_vhost needs the EAL for its allocations, whether or not a
	 * transport runs on DPDK; a dpdk transport's setup() finds it up. */
	l->self = (struct vrio_transport_node){
		.prog = prog,
		.name = l->host->name,
		.dpdk = &l->host->dpdk,
		.verbose = verbose,
	};
	rc = vrio_dpdk_eal_init(prog, l->host->name, &l->host->dpdk, verbose);
	if (rc < 0)
		return rc;
	if (!lhv_channel_supported(&why))
		VRIO_WARN("%s: no backend channel for IOTLB misses (%s): request/response devices are offered without vIOMMU support",
			  l->host->name, why);
	g_lhv = l;
	return 0;
}

void lhv_vhost_thread_start(struct lhv *l)
{
	/* Without an lcore the thread still works, from the pools' rings. */
	if (rte_lcore_id() == LCORE_ID_ANY && rte_thread_register() != 0)
		VRIO_WARN("%s: the poller has no DPDK lcore (%s): its mbufs come from the pool "
			  "without a cache", l->node, rte_strerror(rte_errno));
}

void lhv_vhost_thread_end(void)
{
	rte_thread_unregister();
}

/*
 * Setting a feature word tells rte_vhost that we bring our own device and
 * turns its net data path off; the packet kind keeps that path and only
 * takes away what we do not offer.
 */
static int set_features(const struct lhv_dev *d, const char *path, uint64_t features)
{
	uint64_t have;

	if (d->ops->own_rings)
		return rte_vhost_driver_set_features(path, features);
	if (rte_vhost_driver_get_features(path, &have) != 0)
		return -1;
	if ((features & ~have) != 0)
		VRIO_INFO("%s: rte_vhost cannot offer features %#llx", d->name,
			  (unsigned long long)(features & ~have));
	return rte_vhost_driver_disable_features(path, have & ~features);
}

int lhv_vhost_register(struct lhv *l, struct lhv_dev *d)
{
	const char *path = d->socket;
	uint64_t features, pfeatures, pextra = 0;
	const char *why;
	struct stat sb;

	/* A socket left by an earlier run would make bind fail. */
	if (lstat(path, &sb) == 0 && S_ISSOCK(sb.st_mode))
		unlink(path);
	/* Ring features are ours (or rte_vhost's) to offer; the device's own
	 * come from the io-server. Neither kind offers packed rings yet. */
	features = d->dev_features | (1ull << VIRTIO_F_VERSION_1_BIT) |
		   (1ull << VIRTIO_RING_F_EVENT_IDX) | (1ull << VIRTIO_RING_F_INDIRECT_DESC) |
		   (1ull << VHOST_USER_F_PROTOCOL_FEATURES_BIT) |
		   (1ull << VIRTIO_F_ACCESS_PLATFORM_BIT);
	/* The inflight region is for backends that walk the rings
	 * themselves (inflight.c); rte_vhost's net path keeps no such
	 * record, and a VMM's net device does not ask for one. */
	if (d->ops->own_rings)
		pextra = 1ull << VHOST_USER_PROTOCOL_F_CONFIG_BIT |
			 1ull << VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD_BIT;
	/* Our walker's IOTLB misses need the backend channel (channel.c);
	 * without it a vIOMMU is refused when features are negotiated rather
	 * than breaking the device at its first miss. */
	if (d->ops->own_rings && !lhv_channel_supported(&why))
		features &= ~(1ull << VIRTIO_F_ACCESS_PLATFORM_BIT);
	d->conn_vid = -1;
	/* IOTLB support: rte_vhost's for the rings and its net path, ours
	 * (iommu.c) for the request/response kind's buffers. */
	if (rte_vhost_driver_register(path, RTE_VHOST_USER_IOMMU_SUPPORT) != 0) {
		VRIO_ERR("%s: cannot create vhost-user socket %s", d->name, path);
		return -EIO;
	}
	if (set_features(d, path, features) != 0 ||
	    rte_vhost_driver_get_protocol_features(path, &pfeatures) != 0 ||
	    rte_vhost_driver_set_protocol_features(path, pfeatures | pextra) != 0 ||
	    rte_vhost_driver_callback_register(path, &vhost_ops) != 0 ||
	    rte_vhost_driver_start(path) != 0) {
		VRIO_ERR("%s: cannot start vhost-user socket %s", d->name, path);
		rte_vhost_driver_unregister(path);
		return -EIO;
	}
	d->registered = true;
	VRIO_NOTICE("%s: serving vhost-user on %s", d->name, path);
	return 0;
}

void lhv_vhost_unregister(struct lhv *l, struct lhv_dev *d)
{
	if (!d->registered)
		return;
	/* Closes the frontend's connection: destroy_device drains in flight. */
	rte_vhost_driver_unregister(d->socket);
	d->registered = false;
	unlink(d->socket);
}

void lhv_vhost_fini(void)
{
	vrio_dpdk_eal_fini();
	g_lhv = NULL;
}

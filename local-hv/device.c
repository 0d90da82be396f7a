/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The device table, on the main thread (localhv.h). A device's life:
 *
 *   add       built from its topology entry, published in a slot, handed
 *             to the poller, which links it to its io-server's connection
 *             and asks for it (Attach).
 *   register  once the io-server has described it, its vhost-user socket
 *             opens: a VMM that finds the socket finds a working device.
 *   remove    the socket closes (the VMM sees a disconnect; rte_vhost's
 *             destroy_device has the poller finish what is in flight), the
 *             poller unlinks it (Detach), the slot is cleared and, after
 *             one more poller round, it is freed.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "localhv.h"
#include "log.h"
#include "topology_diff.h"

static void cmd_link(struct lhv *l, void *arg)
{
	struct lhv_dev *d = arg;

	lhv_up_link(d->up, d);
}

static void cmd_unlink(struct lhv *l, void *arg)
{
	struct lhv_dev *d = arg;

	lhv_up_unlink(d->up, d);
}

static void cmd_nothing(struct lhv *l, void *arg)
{
}

static void dev_free(struct lhv *l, struct lhv_dev *d)
{
	if (d->type != VRIO_DEV_NET)
		lhv_iommu_fini(&d->iommu);
	free(d);
}

static int slot_take(struct lhv *l)
{
	unsigned i;

	for (i = 0; i < l->n_slots; i++)
		if (!l->devs[i])
			return (int)i;
	return l->n_slots < LHV_MAX_DEVICES ? (int)l->n_slots : -1;
}

int lhv_dev_add(struct lhv *l, const struct vrio_topo_device *t)
{
	struct lhv_dev *d;
	char esc[128];
	int slot, rc;

	slot = slot_take(l);
	if (slot < 0) {
		VRIO_ERR("%s: %s has %u devices already", t->name, l->node, LHV_MAX_DEVICES);
		return -ENOSPC;
	}
	if (t->type == VRIO_DEV_NET) {
		rc = lhv_net_init(l);
		if (rc < 0)
			return rc;
	}
	d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->l = l;
	d->slot = (unsigned)slot;
	snprintf(d->name, sizeof(d->name), "%s", t->name);
	snprintf(d->socket, sizeof(d->socket), "%s", t->socket);
	d->type = t->type;
	d->queue_size = t->queue_size;
	d->coalesce_ns = (uint64_t)t->coalesce_us * 1000;
	d->conn_vid = -1;
	d->vid = -1;
	d->iommu.slave_fd = -1;
	vrio_mw_escape(esc, sizeof(esc), t->name);
	snprintf(d->label, sizeof(d->label), "device=\"%s\"", esc);
	if (t->type != VRIO_DEV_NET) {
		lhv_iommu_init(&d->iommu, t);
		if (lhv_iotlb_init(&d->iommu.tlb) < 0) {
			free(d);
			return -ENOMEM;
		}
	}
	d->up = d->cand[0] = lhv_up_get(l, t->io_server);
	if (t->standby)
		d->cand[1] = lhv_up_get(l, t->standby);
	d->move_to = -1;
	if (!d->up || (t->standby && !d->cand[1])) {
		dev_free(l, d);
		return -EIO;
	}
	pthread_mutex_lock(&l->lock);
	__atomic_store_n(&l->devs[slot], d, __ATOMIC_RELEASE);
	if ((unsigned)slot == l->n_slots)
		__atomic_store_n(&l->n_slots, l->n_slots + 1, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&l->lock);
	lhv_poller_call(l, cmd_link, d);
	return 0;
}

struct lhv_dev *lhv_dev_find(struct lhv *l, const char *name)
{
	for (unsigned i = 0; i < l->n_slots; i++)
		if (l->devs[i] && !strcmp(l->devs[i]->name, name))
			return l->devs[i];
	return NULL;
}

void lhv_dev_remove(struct lhv *l, struct lhv_dev *d)
{
	/* The VMM sees its socket close; rte_vhost's destroy_device has the
	 * poller finish (bounded) what is in flight before this returns. */
	lhv_vhost_unregister(l, d);
	lhv_poller_call(l, cmd_unlink, d);
	pthread_mutex_lock(&l->lock);
	__atomic_store_n(&l->devs[d->slot], NULL, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&l->lock);
	/* A round that loaded the slot before it was cleared is over. */
	lhv_poller_call(l, cmd_nothing, NULL);
	VRIO_NOTICE("%s: removed", d->name);
	dev_free(l, d);
}

struct dev_cfg {
	struct lhv_dev *d;
	const struct vrio_topo_device *td;
	unsigned keys;		/* enum vrio_topo_live_key */
};

static void cmd_reconfigure(struct lhv *l, void *arg)
{
	struct dev_cfg *c = arg;

	if (c->keys & VRIO_LIVE_IOMMU)
		lhv_iommu_configure(&c->d->iommu, c->td);
	if (c->keys & VRIO_LIVE_COALESCE)
		c->d->coalesce_ns = (uint64_t)c->td->coalesce_us * 1000;
}

void lhv_dev_reconfigure(struct lhv *l, struct lhv_dev *d, const struct vrio_topo_device *td,
			 unsigned keys)
{
	struct dev_cfg c = { d, td, keys & (VRIO_LIVE_IOMMU | VRIO_LIVE_COALESCE) };

	if (d->type == VRIO_DEV_NET || !c.keys)
		return;	/* rte_vhost's IOTLB has no policy to change */
	lhv_poller_call(l, cmd_reconfigure, &c);
	if (c.keys & VRIO_LIVE_IOMMU)
		VRIO_NOTICE("%s: vIOMMU invalidations now %s (batch %u, %u ms)", d->name,
			    td->iommu_deferred ? "deferred" : "strict", td->iommu_batch,
			    td->iommu_delay_ms);
	if (c.keys & VRIO_LIVE_COALESCE)
		VRIO_NOTICE("%s: guest interrupts now held up to %u us (coalesce_us)", d->name,
			    td->coalesce_us);
}

unsigned lhv_devs_register(struct lhv *l)
{
	unsigned waiting = 0;
	struct lhv_dev *d;

	for (unsigned i = 0; i < l->n_slots; i++) {
		d = l->devs[i];
		if (!d || d->registered || d->register_failed)
			continue;
		if (!__atomic_load_n(&d->described, __ATOMIC_ACQUIRE)) {
			waiting += !__atomic_load_n(&d->answered, __ATOMIC_ACQUIRE);
			continue;
		}
		if (lhv_vhost_register(l, d) < 0)
			d->register_failed = true;
	}
	return waiting;
}

void lhv_devs_fini(struct lhv *l)
{
	for (unsigned i = 0; i < l->n_slots; i++) {
		if (!l->devs[i])
			continue;
		dev_free(l, l->devs[i]);
		l->devs[i] = NULL;
	}
	l->n_slots = 0;
}

const char *const lhv_dev_view_names[LHV_NR_VIEWS] = {
	[LHV_VIEW_CONNECTING] = "connecting",
	[LHV_VIEW_ATTACHING] = "attaching",
	[LHV_VIEW_ATTACHED] = "attached",
	[LHV_VIEW_REFUSED] = "refused",
	[LHV_VIEW_DRAINING] = "draining",
	[LHV_VIEW_BROKEN] = "broken",
	[LHV_VIEW_DEAD] = "dead",
	[LHV_VIEW_UNREACHABLE] = "unreachable",
};

/*
 * Until the io-server answers again after a hang or a lost connection, its
 * devices say so, even while a new connection waits for that answer.
 */
enum lhv_dev_view lhv_dev_view(const struct lhv_dev *d)
{
	int st = __atomic_load_n(&d->att_state, __ATOMIC_ACQUIRE);

	if (__atomic_load_n(&d->broken, __ATOMIC_RELAXED))
		return LHV_VIEW_BROKEN;
	switch (st) {
	case LHV_ATT_DONE:
		return LHV_VIEW_ATTACHED;
	case LHV_ATT_REFUSED:
		return LHV_VIEW_REFUSED;
	case LHV_ATT_DETACHED:
		return LHV_VIEW_DRAINING;
	default:
		break;
	}
	switch (__atomic_load_n(&lhv_dev_up(d)->peer, __ATOMIC_RELAXED)) {
	case LHV_PEER_DEAD:
		return LHV_VIEW_DEAD;
	case LHV_PEER_LOST:
		return LHV_VIEW_UNREACHABLE;
	default:
		break;
	}
	if (st == LHV_ATT_SENT)
		return LHV_VIEW_ATTACHING;
	return __atomic_load_n(&lhv_dev_up(d)->state, __ATOMIC_RELAXED) == LHV_UP_READY ?
		       LHV_VIEW_ATTACHING : LHV_VIEW_CONNECTING;
}

const char *lhv_dev_state_name(const struct lhv_dev *d)
{
	return lhv_dev_view_names[lhv_dev_view(d)];
}

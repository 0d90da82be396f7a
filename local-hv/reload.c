/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The topology, at start and on reload (SIGHUP, `vrioctl reload`), on the
 * main thread. A reload applies the difference (topology_diff.h) to this
 * host's devices, or nothing at all: a file that does not load, or a
 * change that needs a device re-attached, is refused whole.
 *
 *   added    built and asked for at the io-server; the socket opens once
 *            the io-server described it (lhv_devs_register, main loop);
 *   removed  socket closed, in-flight finished, Detach, freed;
 *   live     the vIOMMU policy (read_only is the io-server's);
 * devices the difference does not name are never touched.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "localhv.h"
#include "log.h"
#include "reload.h"
#include "topology_diff.h"

int lhv_apply_initial(struct lhv *l)
{
	const struct vrio_topology *t = l->topo;
	int rc;

	for (size_t i = 0; i < t->n_devices; i++) {
		if (t->devices[i].host != l->host)
			continue;
		rc = lhv_dev_add(l, &t->devices[i]);
		if (rc < 0)
			return rc;
	}
	l->generation = 1;
	snprintf(l->sha256, sizeof(l->sha256), "%s", t->sha256);
	return 0;
}

static void reload_failed(struct lhv *l, struct vrio_reload_report *res, int rc)
{
	res->rc = rc;
	VRIO_ERR("%s: reload refused, the running configuration stays: %s", l->node,
		 res->error);
	snprintf(l->last_error, sizeof(l->last_error), "%s", res->error);
	vrio_counter_add(&l->reloads_failed, 1);
}

/* Adds first: they are the part that can fail, and undo leaves no trace. */
static int add_devices(struct lhv *l, const struct vrio_topo_diff *diff,
		       struct vrio_reload_report *res)
{
	const struct vrio_topo_change *c;
	struct lhv_dev *d;
	size_t i;
	int rc = 0;

	for (i = 0; i < diff->n; i++) {
		c = &diff->v[i];
		if (c->kind != VRIO_CHANGE_ADDED)
			continue;
		rc = lhv_dev_add(l, c->new_dev);
		if (rc < 0)
			break;
	}
	if (rc == 0)
		return 0;
	snprintf(res->error, sizeof(res->error), "%s:%u:%u: device '%s' cannot be added: %s",
		 l->topo->path, c->new_dev->line, c->new_dev->col, c->new_dev->name,
		 strerror(-rc));
	while (i--) {
		c = &diff->v[i];
		if (c->kind == VRIO_CHANGE_ADDED && (d = lhv_dev_find(l, c->new_dev->name)))
			lhv_dev_remove(l, d);
	}
	return rc;
}

static void apply(struct lhv *l, const struct vrio_topo_diff *diff)
{
	const struct vrio_topo_change *c;
	struct lhv_dev *d;

	for (size_t i = 0; i < diff->n; i++) {
		c = &diff->v[i];
		if (c->kind == VRIO_CHANGE_REMOVED && (d = lhv_dev_find(l, c->old_dev->name)))
			lhv_dev_remove(l, d);
		else if (c->kind == VRIO_CHANGE_LIVE && (c->keys & VRIO_LIVE_IOMMU) &&
			 (d = lhv_dev_find(l, c->new_dev->name)))
			lhv_dev_reconfigure(l, d, c->new_dev);
	}
}

void lhv_reload(struct lhv *l, struct vrio_reload_report *res)
{
	struct vrio_topology *t = NULL, *old;
	struct vrio_topo_diff diff;
	int rc;

	memset(res, 0, sizeof(*res));
	VRIO_NOTICE("%s: reloading %s", l->node, l->config_path);
	rc = vrio_topology_load(l->config_path, &t, res->error, sizeof(res->error));
	if (rc < 0) {
		reload_failed(l, res, rc);
		return;
	}
	rc = vrio_topology_diff(l->topo, t, VRIO_ROLE_HOST, l->node, &diff);
	if (rc < 0) {
		snprintf(res->error, sizeof(res->error), "%s: out of memory", l->topo->path);
		reload_failed(l, res, rc);
		vrio_topology_free(t);
		return;
	}
	if (diff.refused) {
		vrio_reload_report_refused(res, &diff);
		reload_failed(l, res, -EPERM);
		goto out;
	}
	/* The transports of new io-servers are set up against the new file. */
	l->self.dpdk = &vrio_topology_host(t, l->node)->dpdk;
	rc = add_devices(l, &diff, res);
	l->self.dpdk = &l->host->dpdk;
	if (rc < 0) {
		reload_failed(l, res, rc);
		goto out;
	}
	apply(l, &diff);
	if (vrio_reload_report_fill(res, &diff) < 0)
		VRIO_ERR("%s: out of memory for the reload's report", l->node);
	vrio_topology_diff_free(&diff);

	old = l->topo;
	pthread_mutex_lock(&l->lock);
	l->topo = t;
	l->host = vrio_topology_host(t, l->node);
	l->self.name = l->host->name;
	l->self.dpdk = &l->host->dpdk;
	snprintf(l->sha256, sizeof(l->sha256), "%s", t->sha256);
	__atomic_add_fetch(&l->generation, 1, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&l->lock);
	vrio_topology_free(old);
	vrio_counter_add(&l->reloads_ok, 1);
	l->last_error[0] = '\0';
	VRIO_NOTICE("%s: configuration generation %llu: %u added, %u removed, %u changed, %u unchanged",
		    l->node, (unsigned long long)l->generation, res->n_added, res->n_removed,
		    res->n_changed, res->unchanged);
	return;
out:
	vrio_topology_diff_free(&diff);
	vrio_topology_free(t);
}

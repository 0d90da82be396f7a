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
	l->cfg.generation = 1;
	snprintf(l->cfg.sha256, sizeof(l->cfg.sha256), "%s", t->sha256);
	return 0;
}

static int add_one(void *arg, const struct vrio_topo_device *td)
{
	return lhv_dev_add(arg, td);
}

static void undo_one(void *arg, const char *name)
{
	struct lhv_dev *d = lhv_dev_find(arg, name);

	if (d)
		lhv_dev_remove(arg, d);
}

static void apply(struct lhv *l, const struct vrio_topo_diff *diff)
{
	const struct vrio_topo_change *c;
	struct lhv_dev *d;

	for (size_t i = 0; i < diff->n; i++) {
		c = &diff->v[i];
		if (c->kind == VRIO_CHANGE_REMOVED && (d = lhv_dev_find(l, c->old_dev->name)))
			lhv_dev_remove(l, d);
		else if (c->kind == VRIO_CHANGE_LIVE && (d = lhv_dev_find(l, c->new_dev->name)))
			lhv_dev_reconfigure(l, d, c->new_dev, c->keys);
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
		vrio_config_failed(&l->cfg, l->node, res, rc);
		return;
	}
	rc = vrio_topology_diff(l->topo, t, VRIO_ROLE_HOST, l->node, &diff);
	if (rc < 0) {
		snprintf(res->error, sizeof(res->error), "%s: out of memory", t->path);
		vrio_config_failed(&l->cfg, l->node, res, rc);
		vrio_topology_free(t);
		return;
	}
	if (diff.refused) {
		vrio_reload_report_refused(res, &diff);
		vrio_config_failed(&l->cfg, l->node, res, -EPERM);
		goto out;
	}
	/* The transports of new io-servers are set up against the new file. */
	l->self.dpdk = &vrio_topology_host(t, l->node)->dpdk;
	rc = vrio_reload_add_all(&diff, t->path, add_one, undo_one, l, res);
	l->self.dpdk = &l->host->dpdk;
	if (rc < 0) {
		vrio_config_failed(&l->cfg, l->node, res, rc);
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
	vrio_config_applied(&l->cfg, t->sha256);
	pthread_mutex_unlock(&l->lock);
	vrio_topology_free(old);
	VRIO_NOTICE("%s: configuration generation %llu: %u added, %u removed, %u changed, %u unchanged",
		    l->node, (unsigned long long)l->cfg.generation, res->n_added, res->n_removed,
		    res->n_changed, res->unchanged);
	return;
out:
	vrio_topology_diff_free(&diff);
	vrio_topology_free(t);
}

/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The topology, at start and on reload (SIGHUP, `vrioctl reload`), on the
 * main thread. A reload applies the difference (topology_diff.h) to this
 * io-server's part, or nothing at all:
 *
 *   1. load and check the file, diff it, ask each changed device's model
 *      whether its live changes can be made: any error or refusal stops
 *      here and the running configuration stays;
 *   2. add the new devices (each can still fail: a backing file that is
 *      missing): a failure removes those added so far and stops;
 *   3. from here nothing fails: live changes, removals (refuse new work,
 *      freed once their host detaches them), what the trunks carry (trunk.h:
 *      the networks whose span changed), hosts, then the new topology
 *      replaces the old one, and every interposition stage hears of it
 *      (a degraded mirror is tried again at once).
 * Devices the difference does not name are never touched.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ioserver_internal.h"
#include "log.h"
#include "keyfile.h"
#include "reload.h"
#include "topology_diff.h"

/* In a reload's list of new chains: the device's chain becomes empty. */
#define IOS_CHAIN_NONE ((struct ios_chain *)1)

static void set_hosts(struct ios_server *srv, const struct vrio_topology *t)
{
	unsigned i, n = __atomic_load_n(&srv->n_hosts, __ATOMIC_ACQUIRE);

	for (i = 0; i < n; i++)
		__atomic_store_n(&srv->hosts[i].present,
				 vrio_topology_host(t, srv->hosts[i].name) != NULL, __ATOMIC_RELEASE);
	for (i = 0; i < t->n_hosts; i++)
		if (ios_server_host(srv, t->hosts[i].name, true) < 0)
			VRIO_ERR("%s: host %s: more than %u hosts known", srv->name,
				 t->hosts[i].name, IOS_MAX_HOSTS);
}

int ios_server_apply_initial(struct ios_server *srv)
{
	const struct vrio_topology *t = srv->topo;
	struct vrio_key **keys, *tkey;
	char why[512];
	int rc;

	rc = ios_hostkeys_load(srv, t, &keys, why, sizeof(why));
	if (rc < 0) {
		VRIO_ERR("%s", why);
		return rc;
	}
	rc = ios_trunkkey_load(srv, t, &tkey, why, sizeof(why));
	if (rc < 0) {
		VRIO_ERR("%s", why);
		ios_hostkeys_drop(keys, t->n_hosts);
		return rc;
	}
	set_hosts(srv, t);
	ios_hostkeys_install(srv, t, keys);
	ios_trunkkey_install(srv, t, tkey);
	for (size_t i = 0; i < t->n_devices; i++) {
		/* A standby describes and opens the device too: it answers an
		 * Attach only when local-hv moves the device here. */
		if (t->devices[i].io_server != srv->self && t->devices[i].standby != srv->self)
			continue;
		rc = ios_device_add(srv, &t->devices[i]);
		if (rc < 0)
			return rc;
	}
	srv->cfg.generation = 1;
	snprintf(srv->cfg.sha256, sizeof(srv->cfg.sha256), "%s", t->sha256);
	return 0;
}

/* Step 1's last part: the models' say on live changes. */
static int check_live(struct ios_server *srv, const struct vrio_topo_diff *diff, char *why,
		      size_t n)
{
	const struct vrio_topo_change *c;
	struct ios_device *d;

	for (size_t i = 0; i < diff->n; i++) {
		c = &diff->v[i];
		if (c->kind != VRIO_CHANGE_LIVE)
			continue;
		d = ios_device_find(srv, c->new_dev->name);
		if (d && d->ops->reconfigure && (c->keys & VRIO_LIVE_READ_ONLY) &&
		    d->ops->reconfigure(d, c->new_dev, false, why, n) < 0)
			return -EPERM;
	}
	return 0;
}

/* Step 2. */
static int add_one(void *arg, const struct vrio_topo_device *td)
{
	return ios_device_add(arg, td);
}

static void undo_one(void *arg, const char *name)
{
	struct ios_device *d = ios_device_find(arg, name);

	if (d)
		ios_device_remove(arg, d);
}

/* Step 2, for devices whose chain changes: the new chains, built but not
 * in use (chains[i] for the diff's i-th entry). */
static int build_chains(struct ios_server *srv, const struct vrio_topo_diff *diff,
			struct ios_chain **chains, struct vrio_reload_report *res)
{
	const struct vrio_topo_change *c;
	struct ios_device *d;
	int rc;

	for (size_t i = 0; i < diff->n; i++) {
		c = &diff->v[i];
		if (c->kind != VRIO_CHANGE_LIVE || !(c->keys & VRIO_LIVE_INTERPOSE) ||
		    !(d = ios_device_find(srv, c->new_dev->name)))
			continue;
		rc = ios_chain_build(d, c->new_dev, &chains[i], res->error, sizeof(res->error));
		if (rc < 0)
			return rc;
		/* No stage: an empty chain, not "unchanged". */
		if (!chains[i])
			chains[i] = IOS_CHAIN_NONE;
	}
	return 0;
}

static void put_chains(const struct vrio_topo_diff *diff, struct ios_chain **chains)
{
	for (size_t i = 0; i < diff->n; i++)
		if (chains[i] != IOS_CHAIN_NONE)
			ios_chain_put(chains[i]);
}

/* Step 3. */
static void apply(struct ios_server *srv, const struct vrio_topo_diff *diff,
		  struct ios_chain **chains)
{
	const struct vrio_topo_change *c;
	struct ios_device *d;
	char why[256];

	for (size_t i = 0; i < diff->n; i++) {
		c = &diff->v[i];
		if (c->kind == VRIO_CHANGE_REMOVED) {
			d = ios_device_find(srv, c->old_dev->name);
			if (!d)
				continue;
			ios_device_remove(srv, d);
		} else if (c->kind == VRIO_CHANGE_LIVE) {
			d = ios_device_find(srv, c->new_dev->name);
			/* Other live keys are local-hv's (coalesce_us) or
			 * handled below (interpose). */
			if (d && d->ops->reconfigure && (c->keys & VRIO_LIVE_READ_ONLY))
				d->ops->reconfigure(d, c->new_dev, true, why, sizeof(why));
			if (d && chains[i]) {
				ios_chain_commit(d, chains[i] == IOS_CHAIN_NONE ? NULL : chains[i]);
				chains[i] = NULL;
				VRIO_NOTICE("%s: interposition chain now has %u stage(s)", d->name,
					    c->new_dev->n_stages);
			}
		}
	}
}

/* The new topology replaces the old: re-point what refers to it. */
static void swap_topology(struct ios_server *srv, struct vrio_topology *t)
{
	struct ios_device *d;
	struct vrio_topology *old = srv->topo;

	pthread_mutex_lock(&srv->lock);
	for (d = ios_device_next(srv, NULL, NULL); d; d = ios_device_next(srv, d, NULL))
		d->topo = __atomic_load_n(&d->removing, __ATOMIC_ACQUIRE) ?
				  NULL : vrio_topology_device(t, d->name);
	srv->topo = t;
	srv->self = vrio_topology_ioserver(t, srv->name);
	pthread_mutex_unlock(&srv->lock);
	vrio_topology_free(old);
}

void ios_server_reload(struct ios_server *srv, struct vrio_reload_report *res)
{
	struct ios_chain **chains = NULL;
	struct vrio_key **keys = NULL, *tkey = NULL;
	struct vrio_topo_diff diff;
	struct vrio_topology *t = NULL;
	int rc;

	memset(res, 0, sizeof(*res));
	VRIO_NOTICE("%s: reloading %s", srv->name, srv->config_path);
	rc = vrio_topology_load(srv->config_path, &t, res->error, sizeof(res->error));
	if (rc < 0) {
		vrio_config_failed(&srv->cfg, srv->name, res, rc);
		return;
	}
	rc = vrio_topology_diff(srv->topo, t, VRIO_ROLE_IOSERVER, srv->name, &diff);
	if (rc < 0) {
		snprintf(res->error, sizeof(res->error), "%s: out of memory", t->path);
		vrio_config_failed(&srv->cfg, srv->name, res, rc);
		vrio_topology_free(t);
		return;
	}
	if (diff.refused) {
		vrio_reload_report_refused(res, &diff);
		vrio_config_failed(&srv->cfg, srv->name, res, -EPERM);
		goto out;
	}
	if (check_live(srv, &diff, res->error, sizeof(res->error)) < 0 ||
	    ios_trunks_reload_check(srv, &diff, t->path, res->error, sizeof(res->error)) < 0) {
		vrio_config_failed(&srv->cfg, srv->name, res, -EPERM);
		goto out;
	}
	rc = ios_hostkeys_load(srv, t, &keys, res->error, sizeof(res->error));
	if (rc == 0)
		rc = ios_trunkkey_load(srv, t, &tkey, res->error, sizeof(res->error));
	if (rc < 0) {
		vrio_config_failed(&srv->cfg, srv->name, res, rc);
		goto out;
	}
	/* New devices are opened against the new file's entries. */
	chains = calloc(diff.n ? diff.n : 1, sizeof(*chains));
	rc = chains ? build_chains(srv, &diff, chains, res) : -ENOMEM;
	if (rc == 0)
		rc = vrio_reload_add_all(&diff, t->path, add_one, undo_one, srv, res);
	if (rc < 0) {
		if (chains)
			put_chains(&diff, chains);
		ios_devices_reap(srv);
		vrio_config_failed(&srv->cfg, srv->name, res, rc);
		goto out;
	}
	set_hosts(srv, t);
	ios_hostkeys_install(srv, t, keys);
	keys = NULL;
	ios_trunkkey_install(srv, t, tkey);
	tkey = NULL;
	apply(srv, &diff, chains);
	ios_trunks_reload(srv, t, &diff);
	ios_chains_reloaded(srv);
	free(chains);
	chains = NULL;
	if (vrio_reload_report_fill(res, &diff) < 0)
		VRIO_ERR("%s: out of memory for the reload's report", srv->name);
	vrio_topology_diff_free(&diff);
	pthread_mutex_lock(&srv->lock);
	vrio_config_applied(&srv->cfg, t->sha256);
	pthread_mutex_unlock(&srv->lock);
	swap_topology(srv, t);
	ios_devices_reap(srv);
	VRIO_NOTICE("%s: configuration generation %llu: %u added, %u removed, %u changed, %u unchanged",
		    srv->name, (unsigned long long)srv->cfg.generation, res->n_added, res->n_removed,
		    res->n_changed, res->unchanged);
	return;
out:
	ios_hostkeys_drop(keys, t->n_hosts);
	vrio_key_free(tkey);
	free(chains);
	vrio_topology_diff_free(&diff);
	vrio_topology_free(t);
}

/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The hosts' keys (hosts[].key_file), on the control thread. A reload
 * reads them all before it changes anything, so that a missing or unsafe
 * key file refuses the reload whole; then each host's slot points at its
 * new key. A key replaced by a reload is kept until the server stops: a
 * reactor may be computing a proof with it (control.c reads the pointer
 * once per Hello), and keys are few. The rack's trunk key
 * (trunk_key_file) is kept the same way, for the trunks (trunk.c).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "ioserver_internal.h"
#include "keyfile.h"
#include "log.h"

/* Does a device of this io-server belong to host h? */
static bool host_here(const struct ios_server *srv, const struct vrio_topology *t,
		      const struct vrio_topo_host *h)
{
	for (size_t i = 0; i < t->n_devices; i++)
		if (t->devices[i].host == h && !strcmp(t->devices[i].io_server->name, srv->name))
			return true;
	return false;
}

int ios_hostkeys_load(struct ios_server *srv, const struct vrio_topology *t,
		      struct vrio_key ***out, char *why, size_t n)
{
	struct vrio_key **keys = calloc(t->n_hosts ? t->n_hosts : 1, sizeof(*keys));
	char reason[384];
	int rc;

	*out = NULL;
	if (!keys) {
		snprintf(why, n, "%s: out of memory for the hosts' keys", t->path);
		return -ENOMEM;
	}
	for (size_t i = 0; i < t->n_hosts; i++) {
		const struct vrio_topo_host *h = &t->hosts[i];

		if (!h->key_file) {
			if (host_here(srv, t, h))
				VRIO_WARN("%s: host %s has no key_file: any peer that says it is %s gets its devices",
					  srv->name, h->name, h->name);
			continue;
		}
		rc = vrio_key_load(h->key_file, VRIO_AUTH_KEY_MIN, VRIO_AUTH_KEY_MAX,
				   "a host's key file holds 32 to 4096 random bytes", &keys[i],
				   reason, sizeof(reason));
		if (rc < 0) {
			snprintf(why, n, "%s:%u:%u: host '%s': %s", t->path, h->line, h->col, h->name,
				 reason);
			ios_hostkeys_drop(keys, t->n_hosts);
			return rc;
		}
	}
	*out = keys;
	return 0;
}

void ios_hostkeys_drop(struct vrio_key **keys, size_t n)
{
	if (!keys)
		return;
	for (size_t i = 0; i < n; i++)
		vrio_key_free(keys[i]);
	free(keys);
}

static void retire(struct ios_server *srv, struct vrio_key *k)
{
	struct vrio_key **r;

	if (!k)
		return;
	r = realloc(srv->retired_keys, (srv->n_retired_keys + 1) * sizeof(*r));
	if (!r) {
		/* Leaked rather than freed under a reactor. */
		VRIO_ERR("%s: out of memory retiring a host key", srv->name);
		return;
	}
	srv->retired_keys = r;
	r[srv->n_retired_keys++] = k;
}

void ios_hostkeys_install(struct ios_server *srv, const struct vrio_topology *t,
			  struct vrio_key **keys)
{
	struct vrio_key *old;
	int slot;

	for (size_t i = 0; i < t->n_hosts; i++) {
		slot = ios_server_host(srv, t->hosts[i].name, false);
		if (slot < 0) {
			vrio_key_free(keys[i]);
			continue;
		}
		old = __atomic_load_n(&srv->hosts[slot].key, __ATOMIC_ACQUIRE);
		if (vrio_key_equal(old, keys[i])) {
			vrio_key_free(keys[i]);
			continue;
		}
		__atomic_store_n(&srv->hosts[slot].key, keys[i], __ATOMIC_RELEASE);
		retire(srv, old);
		if (keys[i])
			VRIO_INFO("%s: host %s: key from %s", srv->name, t->hosts[i].name,
				  t->hosts[i].key_file);
	}
	free(keys);
}

/* Does a network span this io-server and another (a trunk)? */
static bool trunks_here(const struct ios_server *srv, const struct vrio_topology *t)
{
	for (size_t i = 0; i < t->n_networks; i++)
		if (t->networks[i].n_span >= 2 && vrio_topo_network_spans(&t->networks[i], srv->name))
			return true;
	return false;
}

int ios_trunkkey_load(struct ios_server *srv, const struct vrio_topology *t,
		      struct vrio_key **out, char *why, size_t n)
{
	char reason[384];
	int rc;

	*out = NULL;
	if (!trunks_here(srv, t))
		return 0;
	if (!t->trunk_key_file) {
		VRIO_WARN("%s: no trunk_key_file: any peer that says it is an io-server of the rack "
			  "joins its networks", srv->name);
		return 0;
	}
	rc = vrio_key_load(t->trunk_key_file, VRIO_AUTH_KEY_MIN, VRIO_AUTH_KEY_MAX,
			   "the trunk key file holds 32 to 4096 random bytes", out, reason,
			   sizeof(reason));
	if (rc < 0)
		snprintf(why, n, "%s:%u:%u: trunk_key_file: %s", t->path, t->trunk_key_line,
			 t->trunk_key_col, reason);
	return rc;
}

void ios_trunkkey_install(struct ios_server *srv, const struct vrio_topology *t,
			  struct vrio_key *key)
{
	struct vrio_key *old = __atomic_load_n(&srv->trunk_key, __ATOMIC_ACQUIRE);

	if (vrio_key_equal(old, key)) {
		vrio_key_free(key);
		return;
	}
	__atomic_store_n(&srv->trunk_key, key, __ATOMIC_RELEASE);
	retire(srv, old);
	if (key)
		VRIO_INFO("%s: trunk key from %s", srv->name, t->trunk_key_file);
}

void ios_hostkeys_fini(struct ios_server *srv)
{
	vrio_key_free(srv->trunk_key);
	srv->trunk_key = NULL;
	for (unsigned i = 0; i < srv->n_hosts; i++) {
		vrio_key_free(srv->hosts[i].key);
		srv->hosts[i].key = NULL;
	}
	for (unsigned i = 0; i < srv->n_retired_keys; i++)
		vrio_key_free(srv->retired_keys[i]);
	free(srv->retired_keys);
	srv->retired_keys = NULL;
	srv->n_retired_keys = 0;
}

/* A key's bytes into a PSK lookup's buffer. */
static int psk_key(const struct vrio_key *k, uint8_t *key, size_t *len)
{
	if (!k || k->len > *len)
		return -ENOKEY;
	memcpy(key, k->bytes, k->len);
	*len = k->len;
	return 0;
}

/* The PSK lookup of tls.h: the key of the host named by the identity, or
 * for a peer io-server that dials its trunk here, the rack's trunk key. */
int ios_hostkeys_psk(void *arg, const char *identity, uint8_t *key, size_t *len)
{
	struct ios_server *srv = arg;
	unsigned n = __atomic_load_n(&srv->n_hosts, __ATOMIC_ACQUIRE);
	const struct ios_trunk *t;

	for (unsigned i = 0; i < n; i++)
		if (__atomic_load_n(&srv->hosts[i].present, __ATOMIC_ACQUIRE) &&
		    strcmp(srv->hosts[i].name, identity) == 0)
			return psk_key(__atomic_load_n(&srv->hosts[i].key, __ATOMIC_ACQUIRE), key,
				       len);
	t = ios_trunk_find(srv, identity);
	if (!t || t->dialer)
		return -ENOENT;
	return psk_key(__atomic_load_n(&srv->trunk_key, __ATOMIC_ACQUIRE), key, len);
}

/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The server: devices, reactors, the listener, and the hand-off of each
 * accepted connection to a reactor (round-robin) through its inbox. Runs on
 * the main thread.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ioserver_internal.h"
#include "log.h"

int ios_server_init(struct ios_server *srv, struct vrio_topology *topo, const char *node)
{
	unsigned i, n;
	int rc;

	memset(srv, 0, sizeof(*srv));
	srv->topo = topo;
	srv->self = vrio_topology_ioserver(topo, node);
	if (!srv->self) {
		VRIO_ERR("%s: no io_server of that name in %s", node, topo->path);
		return -ENOENT;
	}
	rc = vrio_stack_init(&srv->stack, srv->self);
	if (rc < 0)
		return rc;
	srv->tops = srv->stack.base;
	if (!srv->self->listen) {
		VRIO_ERR("%s: no listen address", node);
		return -EINVAL;
	}
	rc = ios_bdev_register_builtin();
	if (rc < 0)
		return rc;
	rc = ios_devices_open(srv);
	if (rc < 0)
		return rc;
	rc = vrio_stack_setup(&srv->stack, &(const struct vrio_transport_node){
		.prog = "vrio-ioserver",
		.name = srv->self->name,
		.dpdk = &srv->self->dpdk,
	});
	if (rc < 0)
		goto err;

	n = srv->self->cores_max ? srv->self->cores_max : 1;
	if (n > IOS_MAX_REACTORS) {
		VRIO_WARN("%s: %u cores asked, using %u", node, n, IOS_MAX_REACTORS);
		n = IOS_MAX_REACTORS;
	}
	rc = ios_switch_open(srv, n);
	if (rc < 0)
		goto err;
	srv->reactors = calloc(n, sizeof(*srv->reactors));
	if (!srv->reactors) {
		rc = -ENOMEM;
		goto err;
	}
	for (i = 0; i < n; i++) {
		rc = ios_reactor_create(srv, i, &srv->reactors[i]);
		if (rc < 0)
			goto err;
		srv->n_reactors++;
	}
	for (i = 0; i < n; i++) {
		rc = ios_reactor_start(srv->reactors[i]);
		if (rc < 0)
			goto err;
	}
	return 0;

err:
	ios_server_stop(srv);
	ios_server_fini(srv);
	return rc;
}

int ios_server_listen(struct ios_server *srv)
{
	int rc = srv->tops->listen(srv->self->listen, &srv->listener);

	if (rc < 0) {
		VRIO_ERR("%s: cannot listen on %s: %s", srv->self->name, srv->self->listen,
			 strerror(-rc));
		srv->listener = NULL;
		return rc;
	}
	return 0;
}

int ios_server_listener_fd(const struct ios_server *srv)
{
	if (!srv->listener || !srv->tops->listener_fd)
		return -1;
	return srv->tops->listener_fd(srv->listener);
}

int ios_server_accept(struct ios_server *srv)
{
	struct ios_session *s;
	struct ios_reactor *r;
	struct vrio_conn *c;
	unsigned i;
	int rc;

	/* Bounded, so that signals and the watchdog get their turn. */
	for (i = 0; i < 64 && srv->listener; i++) {
		rc = srv->tops->accept(srv->listener, &c);
		if (rc == -EAGAIN)
			return 0;
		if (rc < 0) {
			VRIO_ERR_RL("%s: accept: %s", srv->self->name, strerror(-rc));
			return rc;
		}
		rc = vrio_stack_wrap(&srv->stack, c, &c);
		if (rc < 0) {
			VRIO_ERR_RL("%s: cannot set up a connection: %s", srv->self->name,
				    strerror(-rc));
			continue;
		}
		s = ios_session_create(srv, c);
		if (!s) {
			VRIO_ERR_RL("%s: %s: out of memory, refusing the connection",
				    srv->self->name, c->name);
			c->ops->close(c);
			continue;
		}
		r = srv->reactors[srv->next_reactor++ % srv->n_reactors];
		VRIO_INFO("%s: connection from %s, served by %s", srv->self->name, c->name,
			  r->name);
		rc = ios_reactor_post(r, s);
		if (rc < 0) {
			VRIO_ERR_RL("%s: %s: %s has too many connections waiting, refusing it",
				    srv->self->name, c->name, r->name);
			ios_session_free(s);
		}
	}
	return 0;
}

void ios_server_stop(struct ios_server *srv)
{
	unsigned i;

	if (srv->listener) {
		srv->tops->listener_close(srv->listener);
		srv->listener = NULL;
	}
	for (i = 0; i < srv->n_reactors; i++)
		ios_reactor_drain(srv->reactors[i]);
	for (i = 0; i < srv->n_reactors; i++)
		ios_reactor_join(srv->reactors[i]);
}

void ios_server_fini(struct ios_server *srv)
{
	unsigned i;

	for (i = 0; i < srv->n_reactors; i++)
		ios_reactor_destroy(srv->reactors[i]);
	free(srv->reactors);
	srv->reactors = NULL;
	srv->n_reactors = 0;
	ios_switch_close(srv);
	ios_devices_close(srv);
	/* The transport closes its port here. rte_eal_cleanup() is left out:
	 * DPDK 22.11 keeps its interrupt thread running over the handles the
	 * cleanup frees: a memif server crashed in about one exit in six. */
	vrio_stack_teardown(&srv->stack);
}

bool ios_server_alive(const struct ios_server *srv, uint64_t since)
{
	unsigned i;

	for (i = 0; i < srv->n_reactors; i++)
		if (__atomic_load_n(&srv->reactors[i]->alive_ns, __ATOMIC_RELAXED) < since)
			return false;
	return true;
}

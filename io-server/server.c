/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The server: reactors, the switch, the listener, and the hand-off of each
 * accepted connection to the reactor with the fewest. Runs on the main
 * thread.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "ioserver_internal.h"
#include "log.h"
#include "tls.h"

int ios_server_host(struct ios_server *srv, const char *name, bool add)
{
	unsigned i, n = __atomic_load_n(&srv->n_hosts, __ATOMIC_ACQUIRE);

	for (i = 0; i < n; i++) {
		if (strcmp(srv->hosts[i].name, name))
			continue;
		if (add)
			__atomic_store_n(&srv->hosts[i].present, true, __ATOMIC_RELEASE);
		return __atomic_load_n(&srv->hosts[i].present, __ATOMIC_ACQUIRE) ? (int)i : -1;
	}
	if (!add || n >= IOS_MAX_HOSTS || strlen(name) >= sizeof(srv->hosts[n].name))
		return -1;
	snprintf(srv->hosts[n].name, sizeof(srv->hosts[n].name), "%s", name);
	srv->hosts[n].present = true;
	__atomic_store_n(&srv->n_hosts, n + 1, __ATOMIC_RELEASE);
	return (int)n;
}

void ios_server_wake_main(struct ios_server *srv)
{
	uint64_t one = 1;

	if (write(srv->wakefd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		VRIO_ERR_RL("%s: wake: %s", srv->name, strerror(errno));
}

static int reactors_create(struct ios_server *srv)
{
	unsigned i, n = srv->self->cores_max ? srv->self->cores_max : 1;
	int rc;

	if (n > IOS_MAX_REACTORS) {
		VRIO_WARN("%s: %u cores asked, using %u", srv->name, n, IOS_MAX_REACTORS);
		n = IOS_MAX_REACTORS;
	}
	srv->reactors = calloc(n, sizeof(*srv->reactors));
	srv->rctx = calloc(n, sizeof(*srv->rctx));
	if (!srv->reactors || !srv->rctx)
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		rc = ios_reactor_create(srv, i, &srv->reactors[i]);
		if (rc < 0)
			return rc;
		TAILQ_INIT(&srv->rctx[i].sessions);
		TAILQ_INIT(&srv->rctx[i].pool);
		srv->reactors[i]->priv = &srv->rctx[i];
		srv->n_reactors++;
	}
	srv->n_fixed = srv->self->cores_min < n ? srv->self->cores_min : n;
	if (srv->n_fixed < 1)
		srv->n_fixed = 1;
	return ios_balancer_create(srv);
}

int ios_server_init(struct ios_server *srv, struct vrio_topology *topo, const char *node,
		    const char *config_path)
{
	int rc;

	memset(srv, 0, sizeof(*srv));
	srv->wakefd = -1;
	pthread_mutex_init(&srv->lock, NULL);
	srv->started_ns = vrio_now_ns();
	srv->topo = topo;
	srv->self = vrio_topology_ioserver(topo, node);
	if (!srv->self) {
		VRIO_ERR("%s: no io_server of that name in %s", node, topo->path);
		return -ENOENT;
	}
	snprintf(srv->name, sizeof(srv->name), "%s", node);
	/* Reloads read the same file whatever the working directory. */
	if (!config_path || !realpath(config_path, srv->config_path))
		snprintf(srv->config_path, sizeof(srv->config_path), "%s",
			 config_path ? config_path : topo->path);
	rc = vrio_stack_init(&srv->stack, srv->self);
	if (rc < 0)
		return rc;
	if (srv->self->tls.enabled) {
		const struct vrio_topo_tls *t = &srv->self->tls;
		struct vrio_tls_ctx *tls = vrio_tls_ctx_new(&(const struct vrio_tls_opts){
			.name = srv->name,
			.server = true,
			.psk = t->psk,
			.lookup = ios_hostkeys_psk,
			.lookup_arg = srv,
			.cert_file = t->cert,
			.key_file = t->key,
		});

		if (!tls)
			return -EINVAL;
		vrio_stack_tls(&srv->stack, tls);
	}
	if (!srv->self->listen) {
		VRIO_ERR("%s: no listen address", node);
		return -EINVAL;
	}
	rc = ios_bdev_register_builtin();
	if (rc < 0)
		return rc;
	srv->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (srv->wakefd < 0)
		return -errno;
	rc = vrio_stack_setup(&srv->stack, &(const struct vrio_transport_node){
		.prog = "vrio-ioserver",
		.name = srv->self->name,
		.dpdk = &srv->self->dpdk,
	});
	if (rc < 0)
		goto err;
	rc = reactors_create(srv);
	if (rc < 0)
		goto err;
	rc = ios_switch_open(srv, srv->reactors, srv->n_reactors);
	if (rc < 0)
		goto err;
	rc = ios_server_apply_initial(srv);
	if (rc < 0)
		goto err;
	rc = ios_trunks_open(srv);
	if (rc < 0)
		goto err;
	return 0;

err:
	ios_server_fini(srv);
	return rc;
}

int ios_server_start(struct ios_server *srv)
{
	int rc;

	for (unsigned i = 0; i < srv->n_reactors; i++) {
		rc = ios_reactor_start(srv->reactors[i]);
		if (rc < 0)
			return rc;
	}
	/* Dials post to the reactors: they run now. */
	return ios_trunks_start(srv);
}

int ios_server_listen(struct ios_server *srv)
{
	int rc = srv->stack.base->listen(srv->self->listen, &srv->listener);

	if (rc < 0) {
		VRIO_ERR("%s: cannot listen on %s: %s", srv->name, srv->self->listen,
			 strerror(-rc));
		srv->listener = NULL;
		return rc;
	}
	return 0;
}

int ios_server_listener_fd(const struct ios_server *srv)
{
	if (!srv->listener || !srv->stack.base->listener_fd)
		return -1;
	return srv->stack.base->listener_fd(srv->listener);
}

/* Sessions do not move: they go to the reactors that never park. */
static struct ios_reactor *pick_session_reactor(struct ios_server *srv)
{
	struct ios_reactor *best = srv->reactors[0], *r;

	for (unsigned i = 1; i < srv->n_fixed; i++) {
		r = srv->reactors[i];
		if (__atomic_load_n(&r->n_sessions, __ATOMIC_RELAXED) <
		    __atomic_load_n(&best->n_sessions, __ATOMIC_RELAXED))
			best = r;
	}
	return best;
}

static void session_adopt(struct ios_reactor *r, void *arg)
{
	ios_session_adopt(r, arg);
}

int ios_server_accept(struct ios_server *srv)
{
	const struct vrio_transport_ops *tops = srv->stack.base;
	struct ios_session *s;
	struct ios_reactor *r;
	struct vrio_conn *c;
	unsigned i;
	int rc;

	/* Bounded, so that signals and the watchdog get their turn. */
	for (i = 0; i < 64 && srv->listener; i++) {
		rc = tops->accept(srv->listener, &c);
		if (rc == -EAGAIN)
			return 0;
		if (rc < 0) {
			VRIO_ERR_RL("%s: accept: %s", srv->name, strerror(-rc));
			return rc;
		}
		rc = vrio_stack_wrap(&srv->stack, c, &c);
		if (rc < 0) {
			VRIO_ERR_RL("%s: cannot set up a connection: %s", srv->name, strerror(-rc));
			continue;
		}
		s = ios_session_create(srv, c);
		if (!s) {
			VRIO_ERR_RL("%s: %s: out of memory, refusing the connection", srv->name,
				    c->name);
			c->ops->close(c);
			continue;
		}
		r = pick_session_reactor(srv);
		__atomic_add_fetch(&r->n_sessions, 1, __ATOMIC_RELAXED);
		VRIO_INFO("%s: connection from %s, served by %s", srv->name, c->name, r->name);
		if (ios_reactor_call(r, session_adopt, s) < 0) {
			__atomic_sub_fetch(&r->n_sessions, 1, __ATOMIC_RELAXED);
			ios_session_free(s);
		}
	}
	return 0;
}

/* ---- barriers ---- */

struct barrier {
	int left;			/* atomic: reactors still to pass */
	int refs;			/* atomic: the waiter and each reactor */
};

static void barrier_put(struct barrier *b)
{
	if (__atomic_sub_fetch(&b->refs, 1, __ATOMIC_ACQ_REL) == 0)
		free(b);
}

static void barrier_pass(struct ios_reactor *r, void *arg)
{
	struct barrier *b = arg;

	__atomic_sub_fetch(&b->left, 1, __ATOMIC_ACQ_REL);
	barrier_put(b);
}

int ios_server_barrier(struct ios_server *srv)
{
	uint64_t deadline = vrio_now_ns() + IOS_BARRIER_TIMEOUT_NS;
	struct timespec ts = { 0, 200000 };
	struct barrier *b;
	unsigned i;
	int rc = 0;

	b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->left = (int)srv->n_reactors;
	b->refs = 1;
	for (i = 0; i < srv->n_reactors; i++) {
		__atomic_add_fetch(&b->refs, 1, __ATOMIC_ACQ_REL);
		if (ios_reactor_call(srv->reactors[i], barrier_pass, b) < 0) {
			__atomic_sub_fetch(&b->refs, 1, __ATOMIC_ACQ_REL);
			rc = -ENOMEM;
			break;
		}
	}
	while (rc == 0 && __atomic_load_n(&b->left, __ATOMIC_ACQUIRE) > 0) {
		if (vrio_now_ns() >= deadline) {
			rc = -ETIMEDOUT;
			break;
		}
		nanosleep(&ts, NULL);
	}
	barrier_put(b);
	return rc;
}

/* ---- stop ---- */

static unsigned sessions_left(const struct ios_server *srv)
{
	unsigned n = 0;

	for (unsigned i = 0; i < srv->n_reactors; i++)
		n += __atomic_load_n(&srv->reactors[i]->n_sessions, __ATOMIC_RELAXED);
	return n;
}

void ios_server_stop(struct ios_server *srv)
{
	uint64_t deadline = vrio_now_ns() + IOS_DRAIN_TIMEOUT_NS;
	struct timespec ms = { 0, 1000000 };
	unsigned i, left;

	/* Before the reactors go: a dialer posts to them. */
	ios_trunks_stop(srv);
	if (srv->listener) {
		srv->stack.base->listener_close(srv->listener);
		srv->listener = NULL;
	}
	for (i = 0; i < srv->n_reactors; i++)
		if (!srv->reactors[i]->started ||
		    ios_reactor_call(srv->reactors[i], ios_sessions_drain, NULL) < 0)
			ios_rctx(srv->reactors[i])->draining = true;
	while ((left = sessions_left(srv)) && vrio_now_ns() < deadline &&
	       srv->n_reactors && srv->reactors[0]->started)
		nanosleep(&ms, NULL);
	if (left && srv->n_reactors && srv->reactors[0]->started)
		VRIO_ERR("%s: drain timed out after %llu s: closing %u connection(s) without a "
			 "goodbye; the requests they had in flight are abandoned (below)",
			 srv->name, IOS_DRAIN_TIMEOUT_NS / 1000000000ull, left);
	for (i = 0; i < srv->n_reactors; i++)
		ios_reactor_join(srv->reactors[i]);
}

void ios_server_fini(struct ios_server *srv)
{
	struct ios_session *s;
	struct ios_req *req;
	unsigned i;

	/* The reactors are stopped: what they owned is ours to free. First
	 * what they were still asked to do, so that nothing is half done. */
	for (unsigned pass = 0; pass < 100; pass++) {
		int n = 0;

		for (i = 0; i < srv->n_reactors; i++)
			n += ios_reactor_run_msgs(srv->reactors[i], ~0u);
		if (!n)
			break;
	}
	for (i = 0; i < srv->n_reactors; i++) {
		struct ios_rctx *x = &srv->rctx[i];

		while ((s = TAILQ_FIRST(&x->sessions)))
			ios_session_free(s);
	}
	ios_hostkeys_fini(srv);
	for (i = 0; i < srv->n_slots; i++) {
		struct ios_device *d = srv->devs[i];

		if (d && d->home) {
			ios_chain_unplace(d, d->home);
			d->ops->unplace(d, d->home);
			d->home = NULL;
		}
	}
	ios_devices_close(srv);
	ios_trunks_close(srv);
	ios_switch_close(srv);
	ios_balancer_destroy(srv);
	for (i = 0; i < srv->n_reactors; i++) {
		struct ios_rctx *x = &srv->rctx[i];

		while ((req = TAILQ_FIRST(&x->pool))) {
			TAILQ_REMOVE(&x->pool, req, link);
			free(req->buf);
			free(req->rx);
			free(req);
		}
		ios_reactor_destroy(srv->reactors[i]);
	}
	free(srv->reactors);
	free(srv->rctx);
	srv->reactors = NULL;
	srv->rctx = NULL;
	srv->n_reactors = 0;
	if (srv->wakefd >= 0)
		close(srv->wakefd);
	srv->wakefd = -1;
	/* The transport closes its port here. rte_eal_cleanup() is left out:
	 * DPDK 22.11 keeps its interrupt thread running over the handles the
	 * cleanup frees: a memif server crashed in about one exit in six. */
	vrio_stack_teardown(&srv->stack);
	vrio_stack_fini(&srv->stack);
	pthread_mutex_destroy(&srv->lock);
}

bool ios_server_alive(const struct ios_server *srv, uint64_t since)
{
	unsigned i;

	for (i = 0; i < srv->n_reactors; i++)
		if (!ios_reactor_parked(srv->reactors[i]) &&
		    __atomic_load_n(&srv->reactors[i]->alive_ns, __ATOMIC_RELAXED) < since)
			return false;
	return true;
}

double ios_reactor_busy(struct ios_server *srv, unsigned idx)
{
	const struct ios_reactor *r = srv->reactors[idx];
	struct ios_rctx *x = &srv->rctx[idx];
	uint64_t busy = vrio_counter_get(&r->stats.busy_ns);
	uint64_t idle = vrio_counter_get(&r->stats.idle_ns);
	uint64_t db = busy - x->seen_busy_ns, di = idle - x->seen_idle_ns;

	x->seen_busy_ns = busy;
	x->seen_idle_ns = idle;
	return db + di ? (double)db / (double)(db + di) : 0.0;
}

/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "ctrl.h"
#include "topology.h"
#include "log.h"
#include "tls.h"
#include "transport_internal.h"

#define MAX_TRANSPORTS 8

static const struct vrio_transport_ops *registry[MAX_TRANSPORTS];
static unsigned n_registered;
static pthread_once_t builtin_once = PTHREAD_ONCE_INIT;

/* The one place that decides which backends are built in. */
static void register_builtin(void)
{
	vrio_transport_register(&vrio_tcp_transport);
	vrio_transport_register(&vrio_shm_transport);
	vrio_transport_register(&vrio_dpdk_transport);
#ifdef VRIO_HAVE_RDMA
	vrio_transport_register(&vrio_rdma_transport);
#endif
}

int vrio_transport_register(const struct vrio_transport_ops *ops)
{
	unsigned i;

	if (!ops->name || !ops->listen || !ops->accept || !ops->connect || !ops->send ||
	    !ops->flush || !ops->poll || !ops->close || !ops->listener_close) {
		VRIO_ERR("transport %s: missing a mandatory operation", ops->name ? ops->name : "?");
		return -EINVAL;
	}
	for (i = 0; i < n_registered; i++) {
		if (strcmp(registry[i]->name, ops->name) == 0) {
			VRIO_ERR("transport %s: already registered", ops->name);
			return -EEXIST;
		}
	}
	if (n_registered == MAX_TRANSPORTS)
		return -ENOSPC;
	registry[n_registered++] = ops;
	return 0;
}

const struct vrio_transport_ops *vrio_transport_find(const char *name)
{
	unsigned i;

	pthread_once(&builtin_once, register_builtin);
	for (i = 0; i < n_registered; i++)
		if (strcmp(registry[i]->name, name) == 0)
			return registry[i];
	return NULL;
}

int vrio_connect_wait(int fd, short events, int cancel_fd, int timeout_ms)
{
	struct pollfd pfd[2] = {
		{ .fd = fd, .events = events },
		{ .fd = cancel_fd, .events = POLLIN },
	};

	/* poll() skips an entry whose descriptor is negative. */
	if (poll(pfd, 2, timeout_ms) < 0)
		return -errno;
	if (pfd[1].revents)
		return -ECANCELED;
	return pfd[0].revents ? 1 : 0;
}

int vrio_conn_send_ctrl(struct vrio_conn *c, const struct Vrio__Ctrl *m)
{
	struct vrio_frame f = { .type = VRIO_FRAME_CTRL };
	struct iovec iov;
	uint8_t *buf;
	int len, rc;

	buf = malloc(VRIO_CTRL_MAX_LEN);
	if (!buf)
		return -ENOMEM;
	len = vrio_ctrl_pack(m, buf, VRIO_CTRL_MAX_LEN);
	if (len < 0) {
		free(buf);
		return len;
	}
	f.len = (uint32_t)len;
	iov.iov_base = buf;
	iov.iov_len = (size_t)len;
	rc = c->ops->send(c, &f, &iov, 1);
	free(buf);
	return rc;
}

int vrio_stack_init(struct vrio_stack *s, const struct vrio_topo_ioserver *ios)
{
	const char *env = getenv("VRIO_FAULTS");
	const struct vrio_topo_faults *tf = &ios->faults;

	memset(s, 0, sizeof(*s));
	s->base = vrio_transport_find(ios->transport);
	if (!s->base) {
		VRIO_ERR("%s: transport '%s' is not built in", ios->name, ios->transport);
		return -ENOTSUP;
	}
	s->faults = (struct vrio_faults){
		.enabled = tf->enabled,
		.seed = tf->seed,
		.drop = tf->drop,
		.duplicate = tf->duplicate,
		.reorder = tf->reorder,
		.delay_us = tf->delay_us,
		.disconnect_after = tf->disconnect_after,
	};
	/* The environment wins, so a test can inject faults into any rack. */
	if (env && *env && vrio_faults_parse(env, &s->faults) < 0) {
		VRIO_ERR("VRIO_FAULTS='%s': expected key=value pairs among drop, duplicate, "
			 "reorder (0..1), delay_us, seed, disconnect_after", env);
		return -EINVAL;
	}
	s->reliable = s->faults.enabled || s->base->unreliable;
	if (s->faults.enabled)
		VRIO_WARN("%s: injecting faults: drop %.3f duplicate %.3f reorder %.3f delay %u us "
			  "disconnect after %llu frames, seed %llu", ios->name, s->faults.drop,
			  s->faults.duplicate, s->faults.reorder, s->faults.delay_us,
			  (unsigned long long)s->faults.disconnect_after,
			  (unsigned long long)s->faults.seed);
	return 0;
}

int vrio_stack_wrap(struct vrio_stack *s, struct vrio_conn *inner, struct vrio_conn **out)
{
	uint64_t stream = s->nconns++;
	int rc;

	if (s->tls) {
		rc = vrio_tls_wrap(s->tls, inner, &inner);
		if (rc < 0)
			return rc;
	}
	if (s->faults.enabled) {
		rc = vrio_fault_wrap(inner, &s->faults, stream, &inner);
		if (rc < 0)
			return rc;
	}
	if (s->reliable) {
		rc = vrio_reliable_wrap(inner, &inner);
		if (rc < 0)
			return rc;
	}
	*out = inner;
	return 0;
}

int vrio_stack_connect(struct vrio_stack *s, const char *addr, int cancel_fd,
		       struct vrio_conn **out)
{
	struct vrio_conn *c;
	int rc;

	rc = s->base->connect(addr, cancel_fd, &c);
	if (rc < 0)
		return rc;
	return vrio_stack_wrap(s, c, out);
}

void vrio_stack_plain(struct vrio_stack *dst, const struct vrio_stack *src)
{
	*dst = (struct vrio_stack){
		.base = src->base,
		.faults = src->faults,
		.reliable = src->reliable,
	};
}

void vrio_stack_tls(struct vrio_stack *s, struct vrio_tls_ctx *tls)
{
	vrio_tls_ctx_free(s->tls);
	s->tls = tls;
}

void vrio_stack_fini(struct vrio_stack *s)
{
	vrio_tls_ctx_free(s->tls);
	s->tls = NULL;
}

int vrio_stack_setup(struct vrio_stack *s, const struct vrio_transport_node *self)
{
	int rc = 0;

	if (s->base->setup)
		rc = s->base->setup(self);
	s->set_up = rc == 0;
	return rc;
}

void vrio_stack_teardown(struct vrio_stack *s)
{
	if (s->set_up && s->base->teardown)
		s->base->teardown();
	s->set_up = false;
}

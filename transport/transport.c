/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "ctrl.h"
#include "log.h"
#include "transport_internal.h"

#define MAX_TRANSPORTS 8

static const struct vrio_transport_ops *registry[MAX_TRANSPORTS];
static unsigned n_registered;
static pthread_once_t builtin_once = PTHREAD_ONCE_INIT;

/* The one place that decides which backends are built in. */
static void register_builtin(void)
{
	vrio_transport_register(&vrio_tcp_transport);
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

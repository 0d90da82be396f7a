/* SPDX-License-Identifier: BSD-3-Clause */
/* The backends' ops tables, for the registry in transport.c only. */
#ifndef VRIO_TRANSPORT_INTERNAL_H
#define VRIO_TRANSPORT_INTERNAL_H

#include <stddef.h>

#include "transport.h"

#define container_of(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))

/* A connect()'s wait: up to timeout_ms (-1: no limit) for `events` on fd
 * (-1: none, a plain sleep) or for cancel_fd (-1: none) to be readable.
 * 1 when fd is ready, 0 at the timeout, -ECANCELED, or -errno (-EINTR
 * included). */
int vrio_connect_wait(int fd, short events, int cancel_fd, int timeout_ms);

extern const struct vrio_transport_ops vrio_tcp_transport;
extern const struct vrio_transport_ops vrio_shm_transport;
extern const struct vrio_transport_ops vrio_dpdk_transport;
extern const struct vrio_transport_ops vrio_rdma_transport;

#endif

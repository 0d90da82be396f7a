/* SPDX-License-Identifier: BSD-3-Clause */
/* The backends' ops tables, for the registry in transport.c only. */
#ifndef VRIO_TRANSPORT_INTERNAL_H
#define VRIO_TRANSPORT_INTERNAL_H

#include <stddef.h>

#include "transport.h"

#define container_of(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))

extern const struct vrio_transport_ops vrio_tcp_transport;
extern const struct vrio_transport_ops vrio_shm_transport;
extern const struct vrio_transport_ops vrio_dpdk_transport;
extern const struct vrio_transport_ops vrio_rdma_transport;

#endif

/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * DPDK's Environment Abstraction Layer, started once per process for
 * whoever needs it first: the dpdk transport's setup(), or local-hv's
 * rte_vhost (which needs the EAL whatever its transports are). Every
 * daemon starts it with the same defaults here: no hugepages, PCI scan,
 * shared files or telemetry, one lcore, a runtime directory of its own
 * per node; the node's `dpdk: eal:` arguments come last and may override
 * them (a --vdev for a port, more memory with -m).
 */
#ifndef VRIO_TRANSPORT_DPDK_EAL_H
#define VRIO_TRANSPORT_DPDK_EAL_H

#include <stdbool.h>

struct vrio_topo_dpdk;

/*
 * Starts the EAL for program `prog` (argv[0]; its basename names the
 * runtime directory) on node `node`, with `cfg`'s extra arguments (NULL:
 * none); `verbose` lets DPDK log at info level. 0 or -errno; logs the
 * failure once. Idempotent and thread-safe: once the EAL is up, later calls
 * return 0 whatever their arguments; a first call that failed makes every
 * later one return the same -errno, since rte_eal_init() cannot be retried.
 * The calling thread keeps the CPU affinity it had: the EAL pins it to
 * lcore 0, and that is undone.
 */
int vrio_dpdk_eal_init(const char *prog, const char *node, const struct vrio_topo_dpdk *cfg,
		       bool verbose);

/*
 * rte_eal_cleanup(), if vrio_dpdk_eal_init() started the EAL: at exit,
 * after every DPDK object (ports, pools, vhost-user sockets) is gone. The
 * EAL cannot start again: vrio_dpdk_eal_init() then returns -ESHUTDOWN.
 * The io-server never calls it (io-server/server.c, ios_server_fini).
 */
void vrio_dpdk_eal_fini(void);

#endif

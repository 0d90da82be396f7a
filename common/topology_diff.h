/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * What one node must do when the topology file changes under it (SIGHUP,
 * `systemctl reload`, `vrioctl reload`). A pure function of the two loaded
 * files: no I/O, no logging. The daemons rely on this contract:
 *
 * - A node's part is, for VRIO_ROLE_IOSERVER, the devices whose io_server is
 *   the node; for VRIO_ROLE_HOST, those whose host is the node. Devices are
 *   matched by name between the two files.
 * - The node must still exist in the new file with the same role; otherwise
 *   the diff is that one REFUSED entry and nothing else.
 * - The node's own settings that need a restart are REFUSED, naming the key:
 *   for an io_server transport, listen, metrics, control, cores, dpdk and
 *   faults; for a host metrics, control and dpdk. A host also refuses a
 *   change of the transport, listen or faults of an io_server that one of
 *   its devices (in both files) uses: the connection would need remaking.
 *   Other nodes' settings are none of this node's business.
 * - A device of the part in both files: a change of type, host, io_server,
 *   socket, queues, queue_size, backend (kind, path, size, direct), mac or
 *   network needs a re-attach and is REFUSED (one entry per key; a change of
 *   type is reported alone). A device whose host or io_server changes leaves
 *   one node's part for another's: both refuse it. read_only, iommu
 *   (policy, batch, delay_ms), interpose (the chain) and coalesce_us change live: one LIVE entry with the bitmask
 *   of the keys. A device in both files, outside the part in both, is
 *   ignored.
 * - For an io_server: a network its net devices use in both files whose mtu,
 *   ageing or uplink changed is REFUSED; a network its net devices use only
 *   in the new file is listed in new_networks (its switch must be created).
 *   A host ignores networks.
 * - For an io_server: what its trunks carry (trunk.h). A network trunks
 *   this io_server with each other io_server of its span; each (peer,
 *   network) pair trunked in one file and not in the other is a trunk
 *   change: first those the new file drops (old-file order of networks,
 *   then of each span), then those it adds (new-file order). A span may
 *   change freely: what cannot span (an uplink, mixed transports, a psk
 *   tls listener without trunk_key_file) is a load error of the new file.
 * - Hosts, networks and io_servers may be added freely; removing one that a
 *   device still names is a load error of the new file.
 * - Order: REFUSED entries first (the node, the io_servers a host uses, the
 *   networks, then the devices, each in new-file order), then REMOVED in
 *   old-file order, then ADDED and LIVE in new-file order.
 * - refused is true when any entry is REFUSED; the daemon then applies
 *   nothing and keeps running with the old file. The other entries are still
 *   listed, for the operator.
 * - A REFUSED message names the position of the device, node or network in
 *   the new file where it exists there, else in the old file:
 *   "FILE:LINE:COL: device 'vm1': queues cannot change while the device
 *   exists (2 -> 4); remove it and add it back".
 *
 * The diff points into both topologies: free it before either of them.
 */
#ifndef VRIO_COMMON_TOPOLOGY_DIFF_H
#define VRIO_COMMON_TOPOLOGY_DIFF_H

#include <stdbool.h>
#include <stddef.h>

#include "topology.h"

enum vrio_topo_role {
	VRIO_ROLE_IOSERVER,
	VRIO_ROLE_HOST,
};

enum vrio_topo_change_kind {
	VRIO_CHANGE_ADDED,	/* device new to this node's part */
	VRIO_CHANGE_REMOVED,	/* device gone from this node's part */
	VRIO_CHANGE_LIVE,	/* device in both, with settings that change live: keys */
	VRIO_CHANGE_REFUSED,	/* a change this node cannot apply while running */
};

/* Device settings that change while the device runs. */
enum vrio_topo_live_key {
	VRIO_LIVE_READ_ONLY = 1u << 0,
	VRIO_LIVE_IOMMU = 1u << 1,	/* policy, batch or delay_ms */
	VRIO_LIVE_INTERPOSE = 1u << 2,	/* the chain of stages */
	VRIO_LIVE_COALESCE = 1u << 3,	/* coalesce_us (local-hv's) */
};

struct vrio_topo_change {
	enum vrio_topo_change_kind kind;
	/* NULL where it does not exist; both NULL for a refusal about a node
	 * or a network. */
	const struct vrio_topo_device *old_dev, *new_dev;
	unsigned keys;		/* LIVE: bitmask of enum vrio_topo_live_key */
	char msg[256];		/* REFUSED: "FILE:LINE:COL: ..."; empty otherwise */
};

/* The trunk to `peer` starts (added) or stops carrying network `net`;
 * both point into the new file when added, into the old one when not. */
struct vrio_topo_trunk_change {
	const struct vrio_topo_ioserver *peer;
	const struct vrio_topo_network *net;
	bool added;
};

struct vrio_topo_diff {
	struct vrio_topo_change *v;
	size_t n;
	size_t unchanged;	/* devices of this node's part in both files, identical */
	bool refused;		/* any REFUSED entry: the daemon must apply nothing */
	/* io_server: networks its net devices use in the new file and did not
	 * in the old one, in new-file order: their switch must be created. */
	const struct vrio_topo_network **new_networks;
	size_t n_new_networks;
	/* io_server: what its trunks start and stop carrying. */
	struct vrio_topo_trunk_change *trunks;
	size_t n_trunks;
};

/*
 * Compute what `node`, in `role`, must do to go from old_t to new_t. Returns
 * 0 (refusals are in out, not errors) or -ENOMEM. out is always initialised;
 * release it with vrio_topology_diff_free().
 */
int vrio_topology_diff(const struct vrio_topology *old_t, const struct vrio_topology *new_t,
		       enum vrio_topo_role role, const char *node, struct vrio_topo_diff *out);
void vrio_topology_diff_free(struct vrio_topo_diff *d);

/* "read_only", "iommu"; "unknown" for anything but one known bit. */
const char *vrio_topo_live_key_name(unsigned bit);
const char *vrio_topo_change_kind_name(enum vrio_topo_change_kind kind);
const char *vrio_topo_role_name(enum vrio_topo_role role);

#endif

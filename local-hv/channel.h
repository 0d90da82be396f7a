/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The backend channel: the socket a frontend hands over with
 * VHOST_USER_SET_SLAVE_REQ_FD, on which local-hv sends it IOTLB misses.
 *
 * rte_vhost (DPDK 22.11) gives an external backend no call for it. The
 * descriptor is taken from the context rte_vhost passes to pre_msg_handle,
 * at that context's layout for the DPDK release we build against (pinned in
 * channel.c, checked at build time and against the running library), and
 * only from the descriptors that arrived with this message: never from
 * bytes the frontend wrote. It is then checked to be the kind of socket a
 * frontend makes for this (see lhv_channel_take).
 */
#ifndef VRIO_LOCALHV_CHANNEL_H
#define VRIO_LOCALHV_CHANNEL_H

#include <stdbool.h>

/*
 * Whether the channel can be taken in this process: built for a known
 * rte_vhost context layout, and running that release. When not, why is
 * put in *why (static text) and devices must not offer a vIOMMU.
 */
bool lhv_channel_supported(const char **why);

/* What a received descriptor is checked against. */
struct lhv_channel_peer {
	const char *name;	/* the device, for log lines */
	const char *socket;	/* its vhost-user socket: the frontend connected there */
	const int *held;	/* channels local-hv holds already; -1 entries skipped */
	unsigned n_held;
};

/*
 * vu_ctx: what rte_vhost passed pre_msg_handle for a SET_SLAVE_REQ_FD.
 * Returns a duplicate of the one descriptor that came with the message,
 * for the caller to keep, if it is a unix stream socket with no address
 * (one end of a socketpair, not a connection to a named socket such as a
 * vhost-user or control socket), made by the same process as a frontend
 * connected on p->socket (SO_PEERCRED), and not one of p->held. Otherwise
 * a negative errno and one log line naming p->name.
 */
int lhv_channel_take(const void *vu_ctx, const struct lhv_channel_peer *p);

/*
 * The one descriptor that came with the message in vu_ctx, still
 * rte_vhost's (not to be closed or kept), for a look at it; -ENOTSUP when
 * the context is not pinned for this release, -EBADF unless exactly one
 * came, -EPROTO if the context is not as built for (logged, naming name).
 */
int lhv_channel_msg_fd(const void *vu_ctx, const char *name);

#endif

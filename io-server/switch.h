/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The io-server as the rack's virtual switch: one L2 switch per network
 * that this io-server's net devices name, its ports those devices and,
 * optionally, an uplink to a TAP device on this node.
 *
 * Threads. Each network has a home reactor, which alone runs its switch:
 * the MAC table, the port list, source checks, flooding, the uplink. A
 * device port's frames for its guest are handled on the device's own home
 * reactor (device.h), which hands them to the session that sends them.
 * Frames cross between reactors over single-producer single-consumer byte
 * rings, one per ordered pair of reactors (xring.c), drained by a poller
 * the switch registers on each reactor. With one reactor nothing crosses.
 *
 * Ports come and go with reloads. A port is a slot of its network that is
 * never freed while the process runs: a frame in a ring names its port and
 * the port's generation, which the home reactor bumps when it takes the
 * port out; a frame for a stale generation is dropped, so no frame ever
 * reaches a port's next device. The control thread takes a slot, fills it
 * and asks the home reactor to link it; the home reactor unlinks it and
 * frees the slot.
 *
 * Counters: what a port sends into the switch and the switch's drops are
 * written by the home reactor; what leaves toward a port's guest by the
 * front reactor that sends it. Drops on the way between reactors are
 * atomic adds: the rare path.
 */
#ifndef VRIO_IOSERVER_SWITCH_H
#define VRIO_IOSERVER_SWITCH_H

#include <stdbool.h>
#include <stdint.h>

#include "frame.h"
#include "reactor.h"
#include "topology.h"

struct ios_server;
struct ios_device;
struct ios_network;
struct ios_xring;
struct ios_trunk;

#define IOS_ETH_HLEN		14u
#define IOS_MAC_SLOTS		4096u	/* learned addresses per network (power of two) */
#define IOS_MAC_PROBE		8u
#define IOS_NET_BACKLOG		1024u	/* packets queued toward one local-hv port */
#define IOS_XRING_BYTES		(1u << 20)
#define IOS_MAX_NETWORKS	256u
#define IOS_NET_MAX_PORTS	256u	/* device and trunk ports per network, plus the uplink */

enum ios_port_drop {
	IOS_DROP_SRC_MAC,	/* a guest sent with a source MAC not its own */
	IOS_DROP_BAD_SRC,	/* multicast or zero source address */
	IOS_DROP_RUNT,		/* shorter than an Ethernet header */
	IOS_DROP_OVERSIZE,	/* above the network's MTU */
	IOS_DROP_PORT_DOWN,	/* the destination's device is not attached */
	IOS_DROP_BACKLOG,	/* the destination's local-hv is not keeping up */
	IOS_DROP_CORE_RING,	/* the ring to another reactor is full */
	IOS_DROP_UPLINK,	/* the TAP device refused the frame */
	IOS_DROP_SAME_PORT,	/* addressed to the port it came from */
	IOS_DROP_SPLIT_HORIZON,	/* from a trunk, for another trunk */
	IOS_DROP_BAD_OFFLOAD,	/* offload metadata that does not fit its frame */
	IOS_NR_DROPS,
};
extern const char *const ios_port_drop_names[IOS_NR_DROPS];

struct ios_port_stats {
	uint64_t in_frames, in_bytes;	/* into the switch: home reactor */
	uint64_t out_frames, out_bytes;	/* out to the port: the sender */
	uint64_t drops[IOS_NR_DROPS];	/* of frames from or to this port */
	/* Offloads done in software toward the port (the sender): GSO
	 * packets cut, the segments they made, partial checksums completed. */
	uint64_t gso_packets, gso_segments, csum_completed;
	/* TSO packets with the ECN bit (their first segment has CWR): into
	 * the switch from the port (home), passed whole to a trunk or the
	 * uplink, segmented toward a guest, which never takes one (the
	 * sender). */
	uint64_t ecn_in, ecn_out, ecn_segmented;
	/* Frames with no packet that told the port's offloads (home). */
	uint64_t ol_updates;
};

struct ios_port {
	struct ios_network *net;
	struct ios_device *dev;		/* NULL: the uplink or a trunk */
	struct ios_trunk *trunk;	/* a trunk to a peer io-server (trunk.h) */
	uint32_t gen;			/* atomic: bumped when unlinked */
	bool in_use;			/* atomic: the slot is taken */
	bool linked;			/* home reactor: in the port list */
	uint8_t mac[6];			/* a device port's, from the topology */
	int reactor;			/* atomic: its device's home or its trunk's
					 * reactor while up; -1: none */
	uint16_t rx_ol;			/* atomic: VRIO_PKT_RX_* the port takes; a
					 * device's, from its guest's frames */
	char label[288];		/* network="..",port=".." */
	struct ios_port_stats st;
};

struct ios_mac_entry {
	uint64_t mac;			/* 48 bits; 0: empty */
	struct ios_port *port;
	uint64_t seen_ns;
};

struct ios_network {
	char name[64];
	unsigned idx;
	uint32_t id;			/* on trunks (topology.h) */
	struct ios_reactor *home;	/* the reactor that switches it */
	unsigned mtu;
	uint32_t max_frame;		/* Ethernet bytes, VLAN tag included */
	uint64_t ageing_ns;
	struct ios_port slots[IOS_NET_MAX_PORTS + 1];	/* the uplink last */
	/* Home reactor only. */
	struct ios_port *ports[IOS_NET_MAX_PORTS + 1];	/* linked ports */
	unsigned n_ports;
	int tap_fd;			/* -1: no uplink */
	char tap_name[16];
	bool tap_ready;			/* frames may be waiting */
	uint64_t tap_read_ns;		/* the last read */
	struct ios_poller poller;	/* the uplink's reads */
	struct ios_evsrc tap_ev;
	struct ios_mac_entry *table;	/* [IOS_MAC_SLOTS] */
	/* An uplink's read: its virtio-net header, then the frame. */
	uint8_t frame_buf[VRIO_PKT_HDR_LEN + VRIO_PKT_MAX_GSO_FRAME];
	struct {
		uint64_t flooded, learned, moved, table_full;	/* home reactor */
	} st;
	char label[160];		/* network=".." */
};

/* A frame between reactors: kind, then the port it concerns. */
enum ios_xmsg_kind {
	IOS_XMSG_TO_SWITCH,		/* from a port's guest, for the home reactor */
	IOS_XMSG_TO_PORT,		/* from the switch, for the port's device */
};

struct ios_switch {
	struct ios_network *nets[IOS_MAX_NETWORKS];	/* atomic slots */
	unsigned n_nets;		/* atomic */
	struct ios_xring **xrings;	/* [from * n + to]; NULL: one reactor */
	unsigned xring_n;
	struct ios_reactor **reactors;
	struct ios_poller *xpollers;	/* [n]: each reactor's ring drain */
};

/* switch.c, control thread */
int ios_switch_open(struct ios_server *srv, struct ios_reactor **reactors, unsigned n);
/* Stop (reactors joined) and free. */
void ios_switch_close(struct ios_server *srv);
/* The network a device names, created (its uplink opened, its switch
 * started on the least loaded reactor) the first time. */
int ios_switch_network(struct ios_server *srv, const struct vrio_topo_network *tn,
		       struct ios_network **out);
/* A port for device d on network n, linked by the home reactor. */
int ios_switch_port_add(struct ios_server *srv, struct ios_network *n, struct ios_device *d,
			const uint8_t mac[6], struct ios_port **out);
/* A port for a trunk on network n; placed while the trunk is up. */
int ios_switch_trunk_port_add(struct ios_server *srv, struct ios_network *n,
			      struct ios_trunk *t, const char *name, struct ios_port **out);
/* Unlinks the port and waits (bounded) until the home reactor has. */
void ios_switch_port_del(struct ios_server *srv, struct ios_port *p);

/* switch.c, reactors */
/* A frame from a port's guest, on its device's home reactor. */
/* Every function below takes a frame as `vh`, its offload metadata (checked
 * by whoever took it in: vrio_pkt_wire_check), and the Ethernet frame. */
void ios_switch_input(struct ios_reactor *r, struct ios_port *in,
		      const struct vrio_pkt_wire *vh, const uint8_t *frame, uint32_t len);
/* The home reactor: switch one frame. */
void ios_switch_forward(struct ios_reactor *r, struct ios_port *in,
			const struct vrio_pkt_wire *vh, const uint8_t *frame, uint32_t len);
/* Toward a device port's guest or a trunk's peer, on the reactor the
 * port names. */
void ios_port_output_here(struct ios_reactor *r, struct ios_port *p,
			  const struct vrio_pkt_wire *vh, const uint8_t *frame, uint32_t len);
/* Toward a port's guest, on its device's home reactor (dev_net.c): whole,
 * or segmented and checksummed here for what its guest did not negotiate. */
void ios_port_deliver(struct ios_reactor *r, struct ios_port *p,
		      const struct vrio_pkt_wire *vh, const uint8_t *frame, uint32_t len);

/* xring.c */
/* Queue a frame for reactor `to` and wake it if it sleeps; false if the
 * ring is full. */
bool ios_xring_push(struct ios_switch *sw, struct ios_reactor *from, struct ios_reactor *to,
		    enum ios_xmsg_kind kind, struct ios_port *p, const struct vrio_pkt_wire *vh,
		    const uint8_t *frame, uint32_t len);
/* Delivers what other reactors queued for r; returns the frames taken. */
int ios_xring_poll(struct ios_switch *sw, struct ios_reactor *r);
/* True if a ring toward r holds frames. */
bool ios_xring_pending(struct ios_switch *sw, struct ios_reactor *r);
void ios_xring_free(struct ios_switch *sw);

static inline void ios_port_drop(struct ios_port *p, enum ios_port_drop why)
{
	__atomic_fetch_add(&p->st.drops[why], 1, __ATOMIC_RELAXED);
}

#endif

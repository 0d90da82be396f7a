/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The io-server as the rack's virtual switch: one L2 switch per network of
 * the topology that this io-server serves, its ports the network's net
 * devices and, optionally, an uplink to a TAP device on this node.
 *
 * Threads. Each network has a home reactor, which alone runs its switch:
 * the MAC table, source checks, flooding, the uplink's descriptor. A port's
 * device is attached on some session, whose reactor alone sends to it.
 * Frames cross between the two over single-producer single-consumer byte
 * rings, one per ordered pair of reactors (xring.c): a frame from a guest
 * goes from its session's reactor to the network's home, and from there to
 * each destination port's reactor. With one reactor nothing crosses.
 *
 * Counters follow the same split: what a port sends into the switch, and
 * the switch's drops, are written by the home reactor; what leaves toward
 * a port's guest by the reactor that owns the port (the hand-off that moves
 * a device between sessions moves that role too). Drops that happen on the
 * way between reactors are atomic adds: they are the rare path.
 */
#ifndef VRIO_IOSERVER_SWITCH_H
#define VRIO_IOSERVER_SWITCH_H

#include <stdbool.h>
#include <stdint.h>

#include "frame.h"
#include "topology.h"

struct ios_server;
struct ios_reactor;
struct ios_device;
struct ios_network;

#define IOS_ETH_HLEN		14u
#define IOS_MAC_SLOTS		4096u	/* learned addresses per network (power of two) */
#define IOS_MAC_PROBE		8u
#define IOS_NET_BACKLOG		1024u	/* packets queued toward one local-hv port */
#define IOS_XRING_BYTES		(1u << 20)

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
	IOS_NR_DROPS,
};
extern const char *const ios_port_drop_names[IOS_NR_DROPS];

struct ios_port_stats {
	uint64_t in_frames, in_bytes;	/* into the switch: home reactor */
	uint64_t out_frames, out_bytes;	/* out to the port: its owner */
	uint64_t drops[IOS_NR_DROPS];	/* of frames from or to this port */
};

struct ios_port {
	struct ios_network *net;
	struct ios_device *dev;		/* NULL: the uplink */
	uint8_t mac[6];			/* a device port's, from the topology */
	int reactor;			/* atomic: the owner's index, -1: none */
	char label[288];		/* network="..",port=".." */
	struct ios_port_stats st;
};

struct ios_mac_entry {
	uint64_t mac;			/* 48 bits; 0: empty */
	struct ios_port *port;
	uint64_t seen_ns;
};

struct ios_network {
	const struct vrio_topo_network *topo;
	unsigned idx;
	unsigned home;			/* the reactor that switches it */
	uint32_t max_frame;		/* Ethernet bytes, VLAN tag included */
	uint64_t ageing_ns;
	struct ios_port **ports;	/* the uplink last */
	unsigned n_ports;
	struct ios_port uplink;		/* in use when tap_fd >= 0 */
	int tap_fd;
	char tap_name[16];
	bool tap_ready;			/* home reactor: frames may be waiting */
	uint64_t tap_read_ns;		/* home reactor: the last read */
	/* Home reactor only. */
	struct ios_mac_entry *table;	/* [IOS_MAC_SLOTS] */
	struct {
		uint64_t flooded, learned, moved, table_full;	/* home reactor */
	} st;
	char label[160];		/* network=".." */
};

/* A frame between reactors: kind, then the port it concerns. */
enum ios_xmsg_kind {
	IOS_XMSG_TO_SWITCH,		/* from a port's guest, for the home reactor */
	IOS_XMSG_TO_PORT,		/* from the switch, for the port's owner */
};

/* switch.c, main thread */
int ios_switch_open(struct ios_server *srv, unsigned n_reactors);
void ios_switch_close(struct ios_server *srv);

/* switch.c, reactors */
/* A frame from a port's guest; any reactor may call it. */
void ios_switch_input(struct ios_reactor *r, struct ios_port *in, const uint8_t *frame,
		      uint32_t len);
/* Reads the uplinks homed on this reactor; returns the frames taken. */
int ios_switch_poll(struct ios_reactor *r);
/* The home reactor: switch one frame. */
void ios_switch_forward(struct ios_reactor *r, struct ios_port *in, const uint8_t *frame,
			uint32_t len);

/* session.c: toward a port's guest, on the port owner's reactor. */
void ios_port_deliver(struct ios_reactor *r, struct ios_port *p, const uint8_t *frame,
		      uint32_t len);

/* xring.c */
struct ios_xring;
/* Queue a frame for reactor `to`; false if its ring is full. The reactor
 * is woken by ios_xring_kick() at the end of the caller's turn. */
bool ios_xring_push(struct ios_reactor *from, unsigned to, enum ios_xmsg_kind kind,
		    struct ios_port *p, const uint8_t *frame, uint32_t len);
/* Delivers what other reactors queued here; returns the frames taken. */
int ios_xring_poll(struct ios_reactor *r);
/* Wakes the reactors this one queued frames for since the last call. */
void ios_xring_kick(struct ios_reactor *r);
void ios_xring_free(struct ios_server *srv);

static inline void ios_port_drop(struct ios_port *p, enum ios_port_drop why)
{
	__atomic_fetch_add(&p->st.drops[why], 1, __ATOMIC_RELAXED);
}

#endif

/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The L2 switches (switch.h): MAC learning with ageing, flooding of
 * broadcast, multicast and unknown destinations, a port's source MAC held
 * to the topology's, and networks that never see each other's frames (a
 * frame only ever reaches ports of the network it came in on).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "ioserver_internal.h"
#include "log.h"

#define UPLINK_BUDGET	32
#define UPLINK_POLL_NS	(50ull * 1000)

const char *const ios_port_drop_names[IOS_NR_DROPS] = {
	[IOS_DROP_SRC_MAC] = "src_mac",
	[IOS_DROP_BAD_SRC] = "bad_src",
	[IOS_DROP_RUNT] = "runt",
	[IOS_DROP_OVERSIZE] = "oversize",
	[IOS_DROP_PORT_DOWN] = "port_down",
	[IOS_DROP_BACKLOG] = "backlog_full",
	[IOS_DROP_CORE_RING] = "core_ring_full",
	[IOS_DROP_UPLINK] = "uplink_error",
	[IOS_DROP_SAME_PORT] = "same_port",
	[IOS_DROP_SPLIT_HORIZON] = "split_horizon",
	[IOS_DROP_BAD_OFFLOAD] = "bad_offload",
};

static uint64_t mac48(const uint8_t *p)
{
	return (uint64_t)p[0] << 40 | (uint64_t)p[1] << 32 | (uint64_t)p[2] << 24 |
	       (uint64_t)p[3] << 16 | (uint64_t)p[4] << 8 | p[5];
}

static unsigned mac_hash(uint64_t mac)
{
	mac *= 0x9e3779b97f4a7c15ull;
	return (unsigned)(mac >> 40) & (IOS_MAC_SLOTS - 1);
}

static bool entry_live(const struct ios_network *n, const struct ios_mac_entry *e, uint64_t now)
{
	return e->mac && now - e->seen_ns < n->ageing_ns;
}

static struct ios_port *mac_lookup(struct ios_network *n, uint64_t mac, uint64_t now)
{
	unsigned h = mac_hash(mac);

	for (unsigned i = 0; i < IOS_MAC_PROBE; i++) {
		struct ios_mac_entry *e = &n->table[(h + i) & (IOS_MAC_SLOTS - 1)];

		if (e->mac == mac)
			return entry_live(n, e, now) ? e->port : NULL;
	}
	return NULL;
}

/* Learn or refresh: the address's own slot, else a free or expired one in
 * its probe window, else the oldest there (the table is full). */
static void mac_learn(struct ios_network *n, uint64_t mac, struct ios_port *p, uint64_t now)
{
	struct ios_mac_entry *e, *victim = NULL;
	unsigned h = mac_hash(mac);

	for (unsigned i = 0; i < IOS_MAC_PROBE; i++) {
		e = &n->table[(h + i) & (IOS_MAC_SLOTS - 1)];
		if (e->mac == mac) {
			if (e->port != p && entry_live(n, e, now))
				vrio_counter_add(&n->st.moved, 1);
			e->port = p;
			e->seen_ns = now;
			return;
		}
		if (!victim || (entry_live(n, victim, now) &&
				(!entry_live(n, e, now) || e->seen_ns < victim->seen_ns)))
			victim = e;
	}
	if (entry_live(n, victim, now))
		vrio_counter_add(&n->st.table_full, 1);
	victim->mac = mac;
	victim->port = p;
	victim->seen_ns = now;
	vrio_counter_add(&n->st.learned, 1);
}

/* The TAP takes the virtio-net header ahead of the frame (IFF_VNET_HDR):
 * the kernel segments or checksums what its side needs. */
static void uplink_send(struct ios_network *n, const struct vrio_pkt_wire *vh,
			const uint8_t *frame, uint32_t len)
{
	struct iovec iov[2] = {
		{ (void *)vh, VRIO_PKT_HDR_LEN },
		{ (void *)frame, len },
	};
	ssize_t w = writev(n->tap_fd, iov, 2);

	if (w != (ssize_t)(VRIO_PKT_HDR_LEN + len)) {
		ios_port_drop(&n->slots[IOS_NET_MAX_PORTS], IOS_DROP_UPLINK);
		return;
	}
	vrio_counter_add(&n->slots[IOS_NET_MAX_PORTS].st.out_frames, 1);
	vrio_counter_add(&n->slots[IOS_NET_MAX_PORTS].st.out_bytes, len);
	if (vh->gso_type & VRIO_PKT_GSO_ECN)
		vrio_counter_add(&n->slots[IOS_NET_MAX_PORTS].st.ecn_out, 1);
}

void ios_port_output_here(struct ios_reactor *r, struct ios_port *p,
			  const struct vrio_pkt_wire *vh, const uint8_t *frame, uint32_t len)
{
	if (p->trunk)
		ios_trunk_send(r, p, vh, frame, len);
	else
		ios_port_deliver(r, p, vh, frame, len);
}

static void port_output(struct ios_reactor *r, struct ios_port *p,
			const struct vrio_pkt_wire *vh, const uint8_t *frame, uint32_t len)
{
	struct ios_switch *sw = r->srv->sw;
	int owner;

	if (!p->dev && !p->trunk) {
		uplink_send(p->net, vh, frame, len);
		return;
	}
	owner = __atomic_load_n(&p->reactor, __ATOMIC_ACQUIRE);
	if (owner < 0 || ((unsigned)owner != r->idx && !sw->xrings))
		ios_port_drop(p, IOS_DROP_PORT_DOWN);
	else if ((unsigned)owner == r->idx)
		ios_port_output_here(r, p, vh, frame, len);
	else if (!ios_xring_push(sw, r, sw->reactors[owner], IOS_XMSG_TO_PORT, p, vh, frame, len))
		ios_port_drop(p, IOS_DROP_CORE_RING);
}

void ios_switch_forward(struct ios_reactor *r, struct ios_port *in,
			const struct vrio_pkt_wire *vh, const uint8_t *frame, uint32_t len)
{
	struct ios_network *n = in->net;
	struct ios_port *out;
	uint64_t src;

	if (!in->linked)
		return;		/* unlinked while its frame was on its way */
	if (len < IOS_ETH_HLEN) {
		ios_port_drop(in, IOS_DROP_RUNT);
		return;
	}
	if (len > n->max_frame && vh->gso_type == VRIO_PKT_GSO_NONE) {
		ios_port_drop(in, IOS_DROP_OVERSIZE);
		return;
	}
	/* Whatever its source, metadata that does not fit its frame goes no
	 * further: every port after this may trust it. */
	if (!vrio_pkt_wire_plain(vh) && vrio_pkt_wire_check(vh, len, n->max_frame) < 0) {
		ios_port_drop(in, IOS_DROP_BAD_OFFLOAD);
		return;
	}
	src = mac48(frame + 6);
	if (in->dev && src != mac48(in->mac)) {
		ios_port_drop(in, IOS_DROP_SRC_MAC);
		return;
	}
	if (!src || (frame[6] & 1)) {
		ios_port_drop(in, IOS_DROP_BAD_SRC);
		return;
	}
	vrio_counter_add(&in->st.in_frames, 1);
	vrio_counter_add(&in->st.in_bytes, len);
	if (vh->gso_type & VRIO_PKT_GSO_ECN)
		vrio_counter_add(&in->st.ecn_in, 1);
	mac_learn(n, src, in, r->now);

	out = frame[0] & 1 ? NULL : mac_lookup(n, mac48(frame), r->now);
	if (out == in) {
		ios_port_drop(in, IOS_DROP_SAME_PORT);
		return;
	}
	/* Split horizon: the trunks are a full mesh, so a frame from one has
	 * reached every io-server that it had to; forwarding it again would
	 * loop. */
	if (out && in->trunk && out->trunk) {
		ios_port_drop(in, IOS_DROP_SPLIT_HORIZON);
		return;
	}
	if (out) {
		port_output(r, out, vh, frame, len);
		return;
	}
	vrio_counter_add(&n->st.flooded, 1);
	for (unsigned i = 0; i < n->n_ports; i++)
		if (n->ports[i] != in && !(in->trunk && n->ports[i]->trunk))
			port_output(r, n->ports[i], vh, frame, len);
}

void ios_switch_input(struct ios_reactor *r, struct ios_port *in,
		      const struct vrio_pkt_wire *vh, const uint8_t *frame, uint32_t len)
{
	struct ios_reactor *home = in->net->home;

	if (home == r)
		ios_switch_forward(r, in, vh, frame, len);
	else if (!ios_xring_push(r->srv->sw, r, home, IOS_XMSG_TO_SWITCH, in, vh, frame, len))
		ios_port_drop(in, IOS_DROP_CORE_RING);
}

/* ---- the home reactor's pollers ---- */

static int uplink_poll(struct ios_poller *pl)
{
	struct ios_network *n = container_of(pl, struct ios_network, poller);
	struct ios_reactor *r = pl->r;
	int work = 0, k;
	ssize_t len;

	/* A TAP has no ring to peek at: read it when epoll said so or the
	 * last read left frames, else at most every UPLINK_POLL_NS while the
	 * reactor is too busy to sleep. */
	if (!n->tap_ready && r->now - n->tap_read_ns < UPLINK_POLL_NS)
		return 0;
	n->tap_read_ns = r->now;
	for (k = 0; k < UPLINK_BUDGET; k++) {
		struct vrio_pkt_wire *vh = (struct vrio_pkt_wire *)n->frame_buf;

		len = read(n->tap_fd, n->frame_buf, sizeof(n->frame_buf));
		if (len <= 0)
			break;
		if (len < (ssize_t)VRIO_PKT_HDR_LEN) {
			ios_port_drop(&n->slots[IOS_NET_MAX_PORTS], IOS_DROP_RUNT);
			continue;
		}
		/* The kernel skips num_buffers: not ours to pass on. */
		vh->rx_ol = 0;
		ios_switch_forward(r, &n->slots[IOS_NET_MAX_PORTS], vh,
				   n->frame_buf + VRIO_PKT_HDR_LEN,
				   (uint32_t)len - VRIO_PKT_HDR_LEN);
		work++;
	}
	n->tap_ready = k == UPLINK_BUDGET;
	return work;
}

static int uplink_sleep(struct ios_poller *pl)
{
	struct ios_network *n = container_of(pl, struct ios_network, poller);

	ios_reactor_watch(pl->r, &n->tap_ev, EPOLLIN);
	return n->tap_ready ? 0 : -1;
}

static void uplink_ready(struct ios_evsrc *e, uint32_t events)
{
	container_of(e, struct ios_network, tap_ev)->tap_ready = true;
}

static int xring_poll(struct ios_poller *pl)
{
	return ios_xring_poll(pl->r->srv->sw, pl->r);
}

static int xring_sleep(struct ios_poller *pl)
{
	return ios_xring_pending(pl->r->srv->sw, pl->r) ? 0 : -1;
}

/* ---- ports: linked and unlinked by the home reactor ---- */

struct port_msg {
	struct ios_msg m;
	struct ios_port *p;
	int done;		/* atomic: unlink ran */
	int refs;		/* atomic: the waiter and the reactor */
};

static void port_link(struct ios_reactor *r, struct ios_msg *m)
{
	struct port_msg *pm = container_of(m, struct port_msg, m);
	struct ios_network *n = pm->p->net;

	n->ports[n->n_ports++] = pm->p;
	pm->p->linked = true;
	free(pm);
}

static void port_unlink_now(struct ios_port *p)
{
	struct ios_network *n = p->net;
	unsigned i;

	for (i = 0; i < n->n_ports && n->ports[i] != p; i++)
		;
	if (i < n->n_ports)
		n->ports[i] = n->ports[--n->n_ports];
	for (i = 0; i < IOS_MAC_SLOTS; i++)
		if (n->table[i].port == p)
			n->table[i].mac = 0;
	p->linked = false;
	/* Frames on their way to or from it are stale from here on. */
	__atomic_add_fetch(&p->gen, 1, __ATOMIC_RELEASE);
	__atomic_store_n(&p->in_use, false, __ATOMIC_RELEASE);
}

static void port_unlink(struct ios_reactor *r, struct ios_msg *m)
{
	struct port_msg *pm = container_of(m, struct port_msg, m);

	port_unlink_now(pm->p);
	__atomic_store_n(&pm->done, 1, __ATOMIC_RELEASE);
	if (__atomic_sub_fetch(&pm->refs, 1, __ATOMIC_ACQ_REL) == 0)
		free(pm);
}

static void network_start(struct ios_reactor *r, void *arg)
{
	struct ios_network *n = arg;

	if (n->tap_fd < 0)
		return;
	ios_poller_register(r, &n->poller);
	ios_reactor_watch(r, &n->tap_ev, EPOLLIN);
}

static void xring_start(struct ios_reactor *r, void *arg)
{
	ios_poller_register(r, arg);
}

/* ---- set-up, on the main thread ---- */

static int tap_open(struct ios_network *n, const char *name)
{
	struct ifreq ifr;
	int fd, sk, rc, hdr_sz;

	fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		VRIO_ERR("%s: uplink %s: cannot open /dev/net/tun: %s", n->name, name,
			 strerror(errno));
		return rc;
	}
	memset(&ifr, 0, sizeof(ifr));
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
		rc = -errno;
		VRIO_ERR("%s: uplink: cannot create or attach TAP device %s: %s", n->name,
			 name, strerror(errno));
		close(fd);
		return rc;
	}
	snprintf(n->tap_name, sizeof(n->tap_name), "%s", ifr.ifr_name);
	/* Our PKT header's layout is virtio-net's 12-byte one. The kernel
	 * takes large segments (ECN ones too) and partial checksums from us
	 * whatever the offload flags (and segments them itself where they
	 * must leave as wire frames), and with them hands us its own: fewer
	 * reads. With TSO_ECN it hands over a CWR one whole too (its ECN
	 * bit set), which the switch cuts for a guest (dev_net.c). */
	hdr_sz = (int)VRIO_PKT_HDR_LEN;
	if (ioctl(fd, TUNSETVNETHDRSZ, &hdr_sz) < 0) {
		rc = -errno;
		VRIO_ERR("%s: uplink %s: cannot set the virtio-net header size: %s", n->name,
			 name, strerror(errno));
		close(fd);
		return rc;
	}
	if (ioctl(fd, TUNSETOFFLOAD, TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN) < 0)
		VRIO_WARN("%s: uplink %s: the kernel keeps its offloads: %s", n->name, name,
			  strerror(errno));
	/* Up, with the network's MTU: what the operator would do by hand. */
	sk = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (sk >= 0) {
		ifr.ifr_mtu = (int)n->mtu;
		if (ioctl(sk, SIOCSIFMTU, &ifr) < 0)
			VRIO_WARN("%s: uplink %s: cannot set MTU %u: %s", n->name, name,
				  n->mtu, strerror(errno));
		if (ioctl(sk, SIOCGIFFLAGS, &ifr) == 0) {
			ifr.ifr_flags |= IFF_UP;
			if (ioctl(sk, SIOCSIFFLAGS, &ifr) < 0)
				VRIO_WARN("%s: uplink %s: cannot bring it up: %s", n->name,
					  name, strerror(errno));
		}
		close(sk);
	}
	n->tap_fd = fd;
	return 0;
}

static void port_label(struct ios_port *p, const char *port)
{
	char net[128], name[128];

	vrio_mw_escape(net, sizeof(net), p->net->name);
	vrio_mw_escape(name, sizeof(name), port);
	snprintf(p->label, sizeof(p->label), "network=\"%s\",port=\"%s\"", net, name);
}

static int port_add(struct ios_network *n, struct ios_device *d, struct ios_trunk *t,
		    const uint8_t mac[6], const char *name, struct ios_port **out)
{
	struct port_msg *pm;
	struct ios_port *p = NULL;
	unsigned i;

	for (i = 0; i < IOS_NET_MAX_PORTS && !p; i++)
		if (!__atomic_load_n(&n->slots[i].in_use, __ATOMIC_ACQUIRE))
			p = &n->slots[i];
	if (!p) {
		VRIO_ERR("%s: network %s has %u ports already", name, n->name,
			 IOS_NET_MAX_PORTS);
		return -ENOSPC;
	}
	pm = calloc(1, sizeof(*pm));
	if (!pm)
		return -ENOMEM;
	p->net = n;
	p->dev = d;
	p->trunk = t;
	if (mac)
		memcpy(p->mac, mac, sizeof(p->mac));
	else
		memset(p->mac, 0, sizeof(p->mac));
	__atomic_store_n(&p->reactor, -1, __ATOMIC_RELAXED);
	memset(&p->st, 0, sizeof(p->st));
	/* A trunk's peer switches whatever comes; a guest's offloads are
	 * learned from its frames (dev_net.c): none until then. */
	__atomic_store_n(&p->rx_ol, t ? VRIO_PKT_RX_ALL : 0, __ATOMIC_RELAXED);
	port_label(p, name);
	__atomic_store_n(&p->in_use, true, __ATOMIC_RELEASE);
	pm->m.fn = port_link;
	pm->p = p;
	ios_reactor_post(n->home, &pm->m);
	*out = p;
	return 0;
}

int ios_switch_port_add(struct ios_server *srv, struct ios_network *n, struct ios_device *d,
			const uint8_t mac[6], struct ios_port **out)
{
	return port_add(n, d, NULL, mac, d->name, out);
}

int ios_switch_trunk_port_add(struct ios_server *srv, struct ios_network *n,
			      struct ios_trunk *t, const char *name, struct ios_port **out)
{
	return port_add(n, NULL, t, NULL, name, out);
}

void ios_switch_port_del(struct ios_server *srv, struct ios_port *p)
{
	uint64_t deadline = vrio_now_ns() + IOS_BARRIER_TIMEOUT_NS;
	struct timespec ms = { 0, 1000000 };
	struct port_msg *pm;

	if (!p->net->home->started) {
		/* No thread runs the switch (exit, or a test): ours to do. */
		port_unlink_now(p);
		return;
	}
	pm = calloc(1, sizeof(*pm));
	if (!pm) {
		/* Left linked: its frames go on being counted, nothing breaks. */
		VRIO_ERR("%s: out of memory: port left in its switch", p->dev->name);
		return;
	}
	pm->m.fn = port_unlink;
	pm->p = p;
	pm->refs = 2;
	ios_reactor_post(p->net->home, &pm->m);
	while (!__atomic_load_n(&pm->done, __ATOMIC_ACQUIRE) && vrio_now_ns() < deadline)
		nanosleep(&ms, NULL);
	if (!__atomic_load_n(&pm->done, __ATOMIC_ACQUIRE))
		VRIO_ERR("%s: the switch of %s did not let its port go in time", p->dev->name,
			 p->net->name);
	if (__atomic_sub_fetch(&pm->refs, 1, __ATOMIC_ACQ_REL) == 0)
		free(pm);
}

static struct ios_network *network_find(struct ios_switch *sw, const char *name)
{
	unsigned i, n = __atomic_load_n(&sw->n_nets, __ATOMIC_ACQUIRE);

	for (i = 0; i < n; i++)
		if (!strcmp(sw->nets[i]->name, name))
			return sw->nets[i];
	return NULL;
}

int ios_switch_network(struct ios_server *srv, const struct vrio_topo_network *tn,
		       struct ios_network **out)
{
	struct ios_switch *sw = srv->sw;
	struct ios_network *n;
	char esc[128];
	int rc;

	n = network_find(sw, tn->name);
	if (n) {
		*out = n;
		return 0;
	}
	if (sw->n_nets >= IOS_MAX_NETWORKS) {
		VRIO_ERR("%s: %s: more than %u networks", srv->name, tn->name, IOS_MAX_NETWORKS);
		return -ENOSPC;
	}
	n = calloc(1, sizeof(*n));
	if (!n)
		return -ENOMEM;
	snprintf(n->name, sizeof(n->name), "%s", tn->name);
	n->idx = sw->n_nets;
	n->id = tn->id;
	n->tap_fd = -1;
	n->mtu = tn->mtu;
	n->max_frame = tn->mtu + 18u;
	n->ageing_ns = (uint64_t)tn->ageing_s * 1000000000ull;
	vrio_mw_escape(esc, sizeof(esc), tn->name);
	snprintf(n->label, sizeof(n->label), "network=\"%s\"", esc);
	n->table = calloc(IOS_MAC_SLOTS, sizeof(*n->table));
	if (!n->table) {
		free(n);
		return -ENOMEM;
	}
	n->home = ios_server_pick_reactor(srv);
	n->poller.name = "uplink";
	n->poller.poll = uplink_poll;
	n->poller.sleep = uplink_sleep;
	n->tap_ev.fd = -1;
	n->tap_ev.ready = uplink_ready;
	if (tn->uplink_tap) {
		rc = tap_open(n, tn->uplink_tap);
		if (rc < 0) {
			free(n->table);
			free(n);
			return rc;
		}
		n->tap_ev.fd = n->tap_fd;
		n->slots[IOS_NET_MAX_PORTS].net = n;
		n->slots[IOS_NET_MAX_PORTS].reactor = (int)n->home->idx;
		n->slots[IOS_NET_MAX_PORTS].in_use = true;
		n->slots[IOS_NET_MAX_PORTS].linked = true;
		n->slots[IOS_NET_MAX_PORTS].rx_ol = VRIO_PKT_RX_ALL;
		snprintf(esc, sizeof(esc), "uplink:%s", n->tap_name);
		port_label(&n->slots[IOS_NET_MAX_PORTS], esc);
		n->ports[n->n_ports++] = &n->slots[IOS_NET_MAX_PORTS];
		rc = ios_reactor_call(n->home, network_start, n);
		if (rc < 0) {
			close(n->tap_fd);
			free(n->table);
			free(n);
			return rc;
		}
	}
	sw->nets[n->idx] = n;
	__atomic_store_n(&sw->n_nets, n->idx + 1, __ATOMIC_RELEASE);
	VRIO_INFO("%s: switched on %s%s%s, MTU %u", n->name, n->home->name,
		  n->tap_fd >= 0 ? ", uplink " : "", n->tap_fd >= 0 ? n->tap_name : "", n->mtu);
	*out = n;
	return 0;
}

int ios_switch_open(struct ios_server *srv, struct ios_reactor **reactors, unsigned n)
{
	struct ios_switch *sw = calloc(1, sizeof(*sw));
	int rc;

	if (!sw)
		return -ENOMEM;
	srv->sw = sw;
	sw->reactors = reactors;
	if (n < 2)
		return 0;
	sw->xrings = calloc((size_t)n * n, sizeof(*sw->xrings));
	sw->xpollers = calloc(n, sizeof(*sw->xpollers));
	if (!sw->xrings || !sw->xpollers) {
		ios_switch_close(srv);
		return -ENOMEM;
	}
	sw->xring_n = n;
	for (unsigned i = 0; i < n; i++) {
		sw->xpollers[i].name = "xring";
		sw->xpollers[i].poll = xring_poll;
		sw->xpollers[i].sleep = xring_sleep;
		rc = ios_reactor_call(reactors[i], xring_start, &sw->xpollers[i]);
		if (rc < 0) {
			ios_switch_close(srv);
			return rc;
		}
	}
	return 0;
}

void ios_switch_close(struct ios_server *srv)
{
	struct ios_switch *sw = srv->sw;

	if (!sw)
		return;
	ios_xring_free(sw);
	for (unsigned i = 0; i < sw->n_nets; i++) {
		struct ios_network *n = sw->nets[i];

		if (n->tap_fd >= 0)
			close(n->tap_fd);
		free(n->table);
		free(n);
	}
	free(sw->xpollers);
	free(sw);
	srv->sw = NULL;
}

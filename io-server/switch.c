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
#include <sys/socket.h>
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

static void uplink_send(struct ios_network *n, const uint8_t *frame, uint32_t len)
{
	ssize_t w = write(n->tap_fd, frame, len);

	if (w != (ssize_t)len) {
		ios_port_drop(&n->uplink, IOS_DROP_UPLINK);
		return;
	}
	vrio_counter_add(&n->uplink.st.out_frames, 1);
	vrio_counter_add(&n->uplink.st.out_bytes, len);
}

static void port_output(struct ios_reactor *r, struct ios_port *p, const uint8_t *frame,
			uint32_t len)
{
	int owner;

	if (!p->dev) {
		uplink_send(p->net, frame, len);
		return;
	}
	owner = __atomic_load_n(&p->reactor, __ATOMIC_ACQUIRE);
	if (owner < 0)
		ios_port_drop(p, IOS_DROP_PORT_DOWN);
	else if ((unsigned)owner == r->idx)
		ios_port_deliver(r, p, frame, len);
	else if (!ios_xring_push(r, (unsigned)owner, IOS_XMSG_TO_PORT, p, frame, len))
		ios_port_drop(p, IOS_DROP_CORE_RING);
}

void ios_switch_forward(struct ios_reactor *r, struct ios_port *in, const uint8_t *frame,
			uint32_t len)
{
	struct ios_network *n = in->net;
	struct ios_port *out;
	uint64_t src;

	if (len < IOS_ETH_HLEN) {
		ios_port_drop(in, IOS_DROP_RUNT);
		return;
	}
	if (len > n->max_frame) {
		ios_port_drop(in, IOS_DROP_OVERSIZE);
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
	mac_learn(n, src, in, r->now);

	out = frame[0] & 1 ? NULL : mac_lookup(n, mac48(frame), r->now);
	if (out == in) {
		ios_port_drop(in, IOS_DROP_SAME_PORT);
		return;
	}
	if (out) {
		port_output(r, out, frame, len);
		return;
	}
	vrio_counter_add(&n->st.flooded, 1);
	for (unsigned i = 0; i < n->n_ports; i++)
		if (n->ports[i] != in)
			port_output(r, n->ports[i], frame, len);
}

void ios_switch_input(struct ios_reactor *r, struct ios_port *in, const uint8_t *frame,
		      uint32_t len)
{
	if (in->net->home == r->idx)
		ios_switch_forward(r, in, frame, len);
	else if (!ios_xring_push(r, in->net->home, IOS_XMSG_TO_SWITCH, in, frame, len))
		ios_port_drop(in, IOS_DROP_CORE_RING);
}

int ios_switch_poll(struct ios_reactor *r)
{
	struct ios_server *srv = r->srv;
	struct ios_network *n;
	int work = 0, k;
	ssize_t len;

	for (unsigned i = 0; i < srv->n_nets; i++) {
		n = &srv->nets[i];
		if (n->home != r->idx || n->tap_fd < 0)
			continue;
		/* A TAP has no ring to peek at: read it when epoll said so or
		 * the last read left frames, else at most every
		 * UPLINK_POLL_NS while the reactor is too busy to sleep. */
		if (!n->tap_ready && r->now - n->tap_read_ns < UPLINK_POLL_NS)
			continue;
		n->tap_read_ns = r->now;
		for (k = 0; k < UPLINK_BUDGET; k++) {
			len = read(n->tap_fd, r->frame_buf, sizeof(r->frame_buf));
			if (len <= 0)
				break;
			ios_switch_forward(r, &n->uplink, r->frame_buf, (uint32_t)len);
			work++;
		}
		n->tap_ready = k == UPLINK_BUDGET;
	}
	return work;
}

/* ---- set-up, on the main thread ---- */

static int tap_open(struct ios_network *n)
{
	const char *name = n->topo->uplink_tap;
	struct ifreq ifr;
	int fd, sk, rc;

	fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		VRIO_ERR("%s: uplink %s: cannot open /dev/net/tun: %s", n->topo->name, name,
			 strerror(errno));
		return rc;
	}
	memset(&ifr, 0, sizeof(ifr));
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
		rc = -errno;
		VRIO_ERR("%s: uplink: cannot create or attach TAP device %s: %s", n->topo->name,
			 name, strerror(errno));
		close(fd);
		return rc;
	}
	snprintf(n->tap_name, sizeof(n->tap_name), "%s", ifr.ifr_name);
	/* Up, with the network's MTU: what the operator would do by hand. */
	sk = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (sk >= 0) {
		ifr.ifr_mtu = (int)n->topo->mtu;
		if (ioctl(sk, SIOCSIFMTU, &ifr) < 0)
			VRIO_WARN("%s: uplink %s: cannot set MTU %u: %s", n->topo->name, name,
				  n->topo->mtu, strerror(errno));
		if (ioctl(sk, SIOCGIFFLAGS, &ifr) == 0) {
			ifr.ifr_flags |= IFF_UP;
			if (ioctl(sk, SIOCSIFFLAGS, &ifr) < 0)
				VRIO_WARN("%s: uplink %s: cannot bring it up: %s", n->topo->name,
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

	vrio_mw_escape(net, sizeof(net), p->net->topo->name);
	vrio_mw_escape(name, sizeof(name), port);
	snprintf(p->label, sizeof(p->label), "network=\"%s\",port=\"%s\"", net, name);
}

static int network_open(struct ios_server *srv, struct ios_network *n, unsigned n_reactors)
{
	struct ios_device *d;
	unsigned np = 0;
	char esc[128];
	int rc;

	n->home = n->idx % n_reactors;
	n->max_frame = n->topo->mtu + 18u;
	n->ageing_ns = (uint64_t)n->topo->ageing_s * 1000000000ull;
	vrio_mw_escape(esc, sizeof(esc), n->topo->name);
	snprintf(n->label, sizeof(n->label), "network=\"%s\"", esc);
	n->table = calloc(IOS_MAC_SLOTS, sizeof(*n->table));
	n->ports = calloc(srv->n_devs + 1, sizeof(*n->ports));
	if (!n->table || !n->ports)
		return -ENOMEM;
	for (uint32_t i = 0; i < srv->n_devs; i++) {
		d = &srv->devs[i];
		if (!d->port || d->topo->network != n->topo)
			continue;
		d->port->net = n;
		port_label(d->port, d->topo->name);
		n->ports[np++] = d->port;
	}
	if (n->topo->uplink_tap) {
		rc = tap_open(n);
		if (rc < 0)
			return rc;
		n->uplink.net = n;
		n->uplink.reactor = (int)n->home;
		snprintf(esc, sizeof(esc), "uplink:%s", n->tap_name);
		port_label(&n->uplink, esc);
		n->ports[np++] = &n->uplink;
	}
	n->n_ports = np;
	VRIO_INFO("%s: switching %u port(s) on reactor %u%s%s, MTU %u", n->topo->name, np,
		  n->home, n->tap_fd >= 0 ? ", uplink " : "", n->tap_fd >= 0 ? n->tap_name : "",
		  n->topo->mtu);
	return 0;
}

int ios_switch_open(struct ios_server *srv, unsigned n_reactors)
{
	const struct vrio_topology *t = srv->topo;
	unsigned n = 0;
	int rc;

	for (size_t i = 0; i < t->n_networks; i++)
		n += t->networks[i].io_server == srv->self;
	if (!n)
		return 0;
	srv->nets = calloc(n, sizeof(*srv->nets));
	if (!srv->nets)
		return -ENOMEM;
	for (unsigned i = 0; i < n; i++)
		srv->nets[i].tap_fd = -1;
	for (size_t i = 0; i < t->n_networks; i++) {
		struct ios_network *net;

		if (t->networks[i].io_server != srv->self)
			continue;
		net = &srv->nets[srv->n_nets];
		net->topo = &t->networks[i];
		net->idx = srv->n_nets++;
		rc = network_open(srv, net, n_reactors);
		if (rc < 0)
			goto err;
	}
	if (n_reactors > 1) {
		srv->xrings = calloc((size_t)n_reactors * n_reactors, sizeof(*srv->xrings));
		srv->xring_n = n_reactors;
		if (!srv->xrings) {
			rc = -ENOMEM;
			goto err;
		}
	}
	return 0;
err:
	ios_switch_close(srv);
	return rc;
}

void ios_switch_close(struct ios_server *srv)
{
	ios_xring_free(srv);
	for (unsigned i = 0; i < srv->n_nets; i++) {
		struct ios_network *n = &srv->nets[i];

		if (n->tap_fd >= 0)
			close(n->tap_fd);
		free(n->table);
		free(n->ports);
	}
	free(srv->nets);
	srv->nets = NULL;
	srv->n_nets = 0;
}

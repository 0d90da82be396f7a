/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * virtio-net devices: a port on the switch of the device's network
 * (switch.h), behind the device ops (device.h). PKT frames from the guest
 * enter the switch on the device's home reactor; frames for the guest
 * leave from there to the session that sends them.
 */
#include <endian.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "gso.h"
#include "ioserver_internal.h"
#include "log.h"
#include "stage_net.h"
#include "vrio.pb-c.h"

static const char *const net_op_names[] = { "packet" };

static int net_open(struct ios_server *srv, struct ios_device *d)
{
	const struct vrio_topo_device *td = d->topo;
	struct ios_network *n;
	int rc;

	if (ios_net_dev_init(&d->u.net.model, td->mac, td->network->mtu, td->queues,
			     td->offloads) < 0) {
		VRIO_ERR("%s: cannot describe a net device with mac %s and %u queue pair(s)", d->name,
			 td->mac, td->queues);
		return -EINVAL;
	}
	rc = ios_switch_network(srv, td->network, &n);
	if (rc < 0)
		return rc;
	rc = ios_switch_port_add(srv, n, d, d->u.net.model.mac, &d->u.net.port);
	if (rc < 0)
		return rc;
	d->num_queues = d->u.net.model.num_queues;
	/* What the session lets through; frames above the network's MTU
	 * and bad offload metadata are the switch's to drop and count, not a
	 * protocol error. */
	d->max_request = VRIO_PKT_HDR_LEN + VRIO_PKT_MAX_GSO_FRAME;
	d->max_outstanding = IOS_NET_BACKLOG;
	VRIO_INFO("%s: dev %u, net on network %s, mac %s, %u queue pair(s) of %u", d->name, d->id,
		  n->name, td->mac, td->queues, td->queue_size);
	return 0;
}

static void net_close(struct ios_server *srv, struct ios_device *d)
{
	ios_switch_port_del(srv, d->u.net.port);
	d->u.net.port = NULL;
}

static void net_describe(const struct ios_device *d, Vrio__AttachReply *ar)
{
	const struct ios_net_dev *m = &d->u.net.model;

	ar->type = VRIO__DEVICE_TYPE__DEVICE_TYPE_NET;
	ar->features = m->features;
	ar->config.data = (uint8_t *)m->config;
	ar->config.len = sizeof(m->config);
	ar->num_queues = m->num_queues;
	ar->max_request = m->max_request;
	ar->queue_size = d->queue_size;
}

static int net_check(const struct ios_device *d, const struct vrio_frame *f, const void *payload,
		     char *why, size_t n)
{
	/* `queue` is the guest's transmit queue pair. */
	if (f->queue >= d->u.net.model.pairs || f->len < VRIO_PKT_HDR_LEN ||
	    f->len - VRIO_PKT_HDR_LEN > VRIO_PKT_MAX_GSO_FRAME) {
		snprintf(why, n, "packet frame of %u bytes on queue pair %u of %u", f->len, f->queue,
			 d->u.net.model.pairs);
		return -EBADMSG;
	}
	return 0;
}

/* A new guest (or the same one, restarted with other features, behind a
 * new connection) takes no offload until local-hv says it does: the
 * previous guest's are not its. */
static void net_attach(struct ios_device *d)
{
	__atomic_store_n(&d->u.net.port->rx_ol, 0, __ATOMIC_RELAXED);
}

static int net_place(struct ios_device *d, struct ios_reactor *r)
{
	__atomic_store_n(&d->u.net.port->reactor, (int)r->idx, __ATOMIC_RELEASE);
	return 0;
}

static void net_unplace(struct ios_device *d, struct ios_reactor *r)
{
	/* Frames for the port still on their way here are dropped once it
	 * names no reactor. */
	__atomic_store_n(&d->u.net.port->reactor, -1, __ATOMIC_RELEASE);
}

/* ---- frames through the stages (stage_net.h) ---- */

enum ios_stage_verdict ios_net_stage_drop(struct ios_stage *st, struct ios_req *req,
					  enum ios_stage_drop why)
{
	vrio_counter_add(&st->st.drops[why], 1);
	req->u.net.dropped = true;
	return IOS_STAGE_END;
}

/* A frame's way through the device's stages, in this call: net stages
 * never hold one (ios_chain_run), so they read it where it is, lent. */
static bool net_stages_pass(struct ios_device *d, struct ios_req *req, const uint8_t *eth,
			    uint32_t len, bool out)
{
	if (!__atomic_load_n(&d->chain, __ATOMIC_RELAXED))
		return true;
	req->u.net = (struct ios_net_req){ .eth = eth, .len = len, .out = out };
	return ios_chain_run(d, req);
}

/* A packet from the guest into the switch, unless it is malformed or a
 * stage drops it; req carries it through the stages, NULL where the
 * device has none. */
static void net_in(struct ios_device *d, struct ios_req *req, const void *payload,
		   uint32_t in_len)
{
	const uint8_t *eth = (const uint8_t *)payload + VRIO_PKT_HDR_LEN;
	uint32_t len = in_len - VRIO_PKT_HDR_LEN;
	const struct ios_net_dev *m = &d->u.net.model;
	struct ios_port *p = d->u.net.port;
	struct vrio_pkt_wire vh;
	uint16_t rx_ol;

	memcpy(&vh, payload, sizeof(vh));
	/* What the guest takes on receive rides on what it sends: never
	 * more than the device offered. A frame with no packet says only
	 * that (local-hv sends one when the guest's driver starts or stops,
	 * before any frame can reach the guest): anything else in its header
	 * is garbage, refused and counted, and it goes nowhere. */
	rx_ol = le16toh(vh.rx_ol) & m->rx_ol;
	if (!(rx_ol & VRIO_PKT_RX_CSUM))
		rx_ol = 0;	/* virtio: no TSO without the checksum offload */
	vh.rx_ol = 0;
	if (in_len == VRIO_PKT_HDR_LEN && !vrio_pkt_wire_plain(&vh)) {
		ios_port_drop(p, IOS_DROP_BAD_OFFLOAD);
		return;
	}
	if (__atomic_load_n(&p->rx_ol, __ATOMIC_RELAXED) != rx_ol)
		__atomic_store_n(&p->rx_ol, rx_ol, __ATOMIC_RELAXED);
	if (in_len == VRIO_PKT_HDR_LEN) {
		vrio_counter_add(&p->st.ol_updates, 1);
	} else if (!m->offloads && !vrio_pkt_wire_plain(&vh)) {
		ios_port_drop(p, IOS_DROP_BAD_OFFLOAD);
	} else if (!__atomic_load_n(&d->removing, __ATOMIC_RELAXED) && in_len > VRIO_PKT_HDR_LEN &&
		   (!req || net_stages_pass(d, req, eth, len, false))) {
		ios_switch_input(d->home, p, &vh, eth, len);
	}
}

/* Nothing goes back. */
static void net_request(struct ios_device *d, struct ios_req *req, const void *payload)
{
	net_in(d, req, payload, req->in_len);
	req->frame.type = 0;
	req->frame.len = 0;
	ios_req_done(req);
}

/* Without stages, the packet needs no request: into the switch within the
 * session's poll. */
static bool net_frame_now(struct ios_device *d, const struct vrio_frame *f, const void *payload)
{
	if (__atomic_load_n(&d->chain, __ATOMIC_RELAXED))
		return false;
	net_in(d, NULL, payload, f->len);
	return true;
}

/* A request for `len` bytes toward p's guest behind their metadata
 * (zeroed), or NULL (counted). */
static struct ios_req *out_req(struct ios_reactor *r, struct ios_port *p, uint32_t len)
{
	struct ios_req *req = ios_req_get(r);

	if (!req) {
		ios_port_drop(p, IOS_DROP_BACKLOG);
		return NULL;
	}
	if (ios_req_reserve(req, VRIO_PKT_HDR_LEN + len) < 0) {
		ios_req_put(r, req);
		ios_port_drop(p, IOS_DROP_BACKLOG);
		return NULL;
	}
	req->t_start = r->now;
	memset(req->buf, 0, VRIO_PKT_HDR_LEN);
	return req;
}

/* req's buffer holds len bytes for the guest, through the stages first. */
static void out_send(struct ios_reactor *r, struct ios_device *d, struct ios_req *req,
		     uint32_t len)
{
	if (!net_stages_pass(d, req, req->buf + VRIO_PKT_HDR_LEN, len, true)) {
		ios_req_put(r, req);
		return;
	}
	memset(&req->frame, 0, sizeof(req->frame));
	req->frame.type = VRIO_FRAME_PKT;
	req->frame.dev = d->id;
	req->frame.len = VRIO_PKT_HDR_LEN + len;
	ios_dev_to_front(d, req);
}

static void net_sent(struct ios_device *d, uint32_t len);

/* A whole frame that needs nothing done to it and no stage to see it:
 * straight into its session's send queue when it can (one copy, the
 * transport's, and no request); false: a request must carry it. */
static bool out_now(struct ios_reactor *r, struct ios_device *d, const struct vrio_pkt_wire *vh,
		    const uint8_t *frame, uint32_t len)
{
	struct vrio_frame f = {
		.type = VRIO_FRAME_PKT,
		.dev = d->id,
		.len = VRIO_PKT_HDR_LEN + len,
	};
	struct iovec iov[2] = {
		{ (void *)vh, VRIO_PKT_HDR_LEN },
		{ (void *)frame, len },
	};

	if (ios_session_to_guest_now(r, d, &f, iov, 2) < 0)
		return false;
	net_sent(d, f.len);
	return true;
}

/*
 * Toward a port's guest: whole with its metadata, or, for what the guest
 * did not negotiate, its partial checksum completed or cut into wire-sized
 * segments, each built straight into the buffer that carries it. The
 * stages see what the guest gets: the segments, not the large packet.
 * A TSO packet with the ECN bit is always cut (CWR on its first segment
 * only): no guest takes one, as rte_vhost's enqueue never writes the bit
 * into a guest's header, so the device offers no GUEST_ECN.
 */
void ios_port_deliver(struct ios_reactor *r, struct ios_port *p, const struct vrio_pkt_wire *vh,
		      const uint8_t *frame, uint32_t len)
{
	struct ios_device *d = p->dev;
	uint32_t gso = vh->gso_type & ~VRIO_PKT_GSO_ECN, i;
	struct ios_gso_plan pl;
	struct ios_req *req;
	uint16_t rx_ol;

	if (__atomic_load_n(&p->reactor, __ATOMIC_ACQUIRE) != (int)r->idx) {
		ios_port_drop(p, IOS_DROP_PORT_DOWN);
		return;
	}
	rx_ol = __atomic_load_n(&p->rx_ol, __ATOMIC_RELAXED);
	if (gso == VRIO_PKT_GSO_NONE ||
	    (!(vh->gso_type & VRIO_PKT_GSO_ECN) &&
	     (rx_ol & (gso == VRIO_PKT_GSO_TCPV4 ? VRIO_PKT_RX_TSO4 : VRIO_PKT_RX_TSO6)))) {
		if (!__atomic_load_n(&d->chain, __ATOMIC_RELAXED) &&
		    (!(vh->flags & VRIO_PKT_F_NEEDS_CSUM) || (rx_ol & VRIO_PKT_RX_CSUM)) &&
		    out_now(r, d, vh, frame, len))
			return;
		req = out_req(r, p, len);
		if (!req)
			return;
		memcpy(req->buf + VRIO_PKT_HDR_LEN, frame, len);
		if (!(vh->flags & VRIO_PKT_F_NEEDS_CSUM) || (rx_ol & VRIO_PKT_RX_CSUM)) {
			memcpy(req->buf, vh, VRIO_PKT_HDR_LEN);
		} else {
			ios_csum_complete(req->buf + VRIO_PKT_HDR_LEN, len, vh);
			vrio_counter_add(&p->st.csum_completed, 1);
		}
		out_send(r, d, req, len);
		return;
	}
	if (ios_gso_plan(frame, len, vh, p->net->max_frame, &pl) < 0) {
		ios_port_drop(p, IOS_DROP_BAD_OFFLOAD);
		return;
	}
	vrio_counter_add(&p->st.gso_packets, 1);
	vrio_counter_add(&p->st.gso_segments, pl.nseg);
	if (vh->gso_type & VRIO_PKT_GSO_ECN)
		vrio_counter_add(&p->st.ecn_segmented, 1);
	for (i = 0; i < pl.nseg; i++) {
		uint32_t n = ios_gso_seg_len(&pl, i);

		req = out_req(r, p, n);
		if (!req)
			return;
		ios_gso_build(frame, &pl, i, req->buf + VRIO_PKT_HDR_LEN);
		out_send(r, d, req, n);
	}
}

static void net_drop(struct ios_device *d, enum ios_dev_drop why)
{
	ios_port_drop(d->u.net.port, why == IOS_DEV_DROP_BACKLOG ? IOS_DROP_BACKLOG
								   : IOS_DROP_PORT_DOWN);
}

static void net_sent(struct ios_device *d, uint32_t len)
{
	struct ios_port *p = d->u.net.port;

	vrio_counter_add(&p->st.out_frames, 1);
	vrio_counter_add(&p->st.out_bytes, len - VRIO_PKT_HDR_LEN);
}

const struct ios_dev_ops ios_net_dev_ops = {
	.name = "net",
	.type = VRIO_DEV_NET,
	.frame_type = VRIO_FRAME_PKT,
	.op_names = net_op_names,
	.n_ops = 1,
	.open = net_open,
	.close = net_close,
	.describe = net_describe,
	.attach = net_attach,
	.check = net_check,
	.place = net_place,
	.unplace = net_unplace,
	.request = net_request,
	.frame_now = net_frame_now,
	.drop = net_drop,
	.sent = net_sent,
};

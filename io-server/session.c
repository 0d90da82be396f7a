/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * One connection's protocol, run by the reactor that owns it.
 *
 *   HELLO   the first frame must be a CTRL Hello from a host of the topology;
 *           answered with ours. A version we do not speak, or a node we do
 *           not know, gets an Error and a close (CLOSING, then DEAD).
 *   READY   Attach / Detach / DeviceError / Heartbeat, and REQ frames for
 *           the devices attached on this connection.
 *   DEAD    the connection is closed; the session lives on until the
 *           backend has returned every request it holds, then it is freed.
 *
 * Anything else from the peer is garbage: one line naming the peer, and
 * the connection (only this one) is closed.
 */
#include <errno.h>
#include <linux/virtio_blk.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#include "ctrl.h"
#include "ioserver_internal.h"
#include "log.h"

/* A peer-supplied string, fit for a log line. */
static const char *printable(char *dst, size_t n, const char *src)
{
	size_t i;

	for (i = 0; src && src[i] && i + 1 < n; i++)
		dst[i] = (src[i] >= 0x20 && src[i] < 0x7f) ? src[i] : '?';
	dst[i] = '\0';
	return dst;
}

/* Records why the connection goes away; logged once when it closes. */
static int __attribute__((format(printf, 3, 4)))
session_reject(struct ios_session *s, int rc, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(s->close_reason, sizeof(s->close_reason), fmt, ap);
	va_end(ap);
	return rc;
}

#define session_garbage(s, ...) session_reject(s, -EBADMSG, __VA_ARGS__)

struct ios_session *ios_session_create(struct ios_server *srv, struct vrio_conn *conn)
{
	struct ios_session *s;

	s = calloc(1, sizeof(*s) + srv->n_devs * sizeof(s->att[0]));
	if (!s)
		return NULL;
	s->conn = conn;
	conn->owner = s;
	snprintf(s->name, sizeof(s->name), "%s", conn->name);
	s->state = IOS_SESSION_HELLO;
	s->ev.kind = IOS_EV_CONN;
	s->ev.fd = vrio_conn_fd(conn);
	TAILQ_INIT(&s->backlog);
	TAILQ_INIT(&s->unflushed);
	TAILQ_INIT(&s->atts);
	return s;
}

void ios_session_adopt(struct ios_reactor *r, struct ios_session *s)
{
	s->r = r;
	TAILQ_INSERT_TAIL(&r->sessions, s, link);
	vrio_counter_add(&r->stats.connections, 1);
	ios_reactor_arm(r, s, EPOLLIN);
}

static void session_drop_list(struct ios_session *s, struct ios_req_list *l)
{
	struct ios_req *req;

	while ((req = TAILQ_FIRST(l))) {
		TAILQ_REMOVE(l, req, link);
		if (req->att && l == &s->backlog)
			req->att->outstanding--;
		ios_req_put(s->r, req);
	}
}

static void att_release(struct ios_attach *a)
{
	struct ios_session *s = a->s;

	TAILQ_REMOVE(&s->atts, a, link);
	s->att[a->dev->id] = NULL;
	/* Frames for the port that are still on their way here are dropped
	 * once it names no reactor (ios_port_deliver). */
	if (a->dev->port)
		__atomic_store_n(&a->dev->port->reactor, -1, __ATOMIC_RELEASE);
	__atomic_store_n(&a->dev->owner, NULL, __ATOMIC_RELEASE);
	VRIO_INFO("%s: %s released", s->name, a->dev->topo->name);
	free(a);
}

/* No more RESPs for this device; it is released once the backend is done. */
static void att_detach(struct ios_attach *a)
{
	struct ios_session *s = a->s;
	struct ios_req *req, *next;

	a->detached = true;
	for (req = TAILQ_FIRST(&s->backlog); req; req = next) {
		next = TAILQ_NEXT(req, link);
		if (req->att != a)
			continue;
		TAILQ_REMOVE(&s->backlog, req, link);
		a->outstanding--;
		ios_req_put(s->r, req);
	}
	if (a->outstanding == 0)
		att_release(a);
}

/* `garbage`: the peer broke the protocol, which it can repeat at will. */
static void session_close(struct ios_session *s, bool garbage, const char *reason)
{
	struct ios_attach *a, *next;

	if (!s->conn)
		return;
	if (garbage)
		VRIO_WARN_RL("%s: connection closed: %s", s->name, reason);
	else
		VRIO_NOTICE("%s: connection closed: %s", s->name, reason);
	ios_reactor_arm(s->r, s, 0);
	if (s->conn_pub) {
		vrio_conn_stats_publish(s->conn_pub, &s->conn_last, s->conn);
		vrio_conn_stats_retire(s->conn_pub);
	}
	s->conn->ops->close(s->conn);
	s->conn = NULL;
	s->state = IOS_SESSION_DEAD;
	s->flush_pending = false;
	vrio_counter_add(&s->r->stats.connections, (uint64_t)-1);
	/* The transport is gone, so nothing refers to these buffers any more. */
	session_drop_list(s, &s->backlog);
	session_drop_list(s, &s->unflushed);
	for (a = TAILQ_FIRST(&s->atts); a; a = next) {
		next = TAILQ_NEXT(a, link);
		if (!a->detached)
			att_detach(a);
	}
}

void ios_session_close(struct ios_session *s, const char *reason)
{
	session_close(s, false, reason);
}

void ios_session_free(struct ios_session *s)
{
	struct ios_attach *a;

	if (!s->r) {
		/* Never adopted: still in an inbox at shutdown. */
		s->conn->ops->close(s->conn);
		free(s);
		return;
	}
	ios_session_close(s, "shutting down");
	/* Left only at a forced exit: requests still at the backend keep their
	 * buffers, which the kernel may still write into. */
	while ((a = TAILQ_FIRST(&s->atts))) {
		if (a->inflight)
			VRIO_ERR("%s: %s: abandoning %u requests still at the backend", s->name,
				 a->dev->topo->name, a->inflight);
		att_release(a);
	}
	TAILQ_REMOVE(&s->r->sessions, s, link);
	free(s);
}

/* Queues a CTRL frame; it leaves with the next send turn. */
static int session_send_ctrl(struct ios_session *s, const Vrio__Ctrl *m)
{
	struct ios_req *req;
	int rc;

	req = ios_req_get(s->r);
	if (!req)
		return -ENOMEM;
	rc = ios_req_reserve(req, (uint32_t)vrio__ctrl__get_packed_size(m));
	if (rc == 0)
		rc = vrio_ctrl_pack(m, req->buf, req->cap);
	if (rc < 0) {
		ios_req_put(s->r, req);
		return rc;
	}
	req->s = s;
	req->att = NULL;
	memset(&req->frame, 0, sizeof(req->frame));
	req->frame.type = VRIO_FRAME_CTRL;
	req->frame.len = (uint32_t)rc;
	TAILQ_INSERT_TAIL(&s->backlog, req, link);
	return 0;
}

/* Sends an Error and closes once it is flushed. */
static int session_send_error(struct ios_session *s, uint64_t seq, int status, const char *msg)
{
	Vrio__Ctrl m = VRIO__CTRL__INIT;
	Vrio__Error e = VRIO__ERROR__INIT;
	int rc;

	e.status = status;
	e.message = (char *)msg;
	m.seq = seq;
	m.msg_case = VRIO__CTRL__MSG_ERROR;
	m.error = &e;
	rc = session_send_ctrl(s, &m);
	if (rc < 0)
		return session_reject(s, rc, "cannot send an error: %s", strerror(-rc));
	s->state = IOS_SESSION_CLOSING;
	session_reject(s, 0, "%s", msg);
	return 0;
}

/* ---- REQ frames ---- */

static void session_finish(struct ios_req *req)
{
	struct ios_attach *a = req->att;
	struct ios_device *d = a->dev;
	struct ios_dev_stats *st = &d->stats;
	struct ios_blk_req *b = &req->blk;

	vrio_counter_add(&st->requests[b->op], 1);
	if (b->no_status) {
		vrio_counter_add(&st->err_protocol, 1);
		VRIO_ERR_RL("%s: %s: %s request without a writable byte", req->s->name,
			    d->topo->name, ios_blk_op_name(b->op));
	} else if (b->status == VIRTIO_BLK_S_OK) {
		if (b->op == IOS_BLK_OP_READ)
			vrio_counter_add(&st->bytes_read, b->len);
		else if (b->op == IOS_BLK_OP_WRITE)
			vrio_counter_add(&st->bytes_written, b->len);
	} else if (b->status == VIRTIO_BLK_S_UNSUPP) {
		vrio_counter_add(&st->err_unsupp, 1);
	} else {
		vrio_counter_add(&st->err_ioerr, 1);
		if (b->error)
			VRIO_ERR_RL("%s: %s at sector %llu failed: %s", d->topo->name,
				    ios_blk_op_name(b->op), (unsigned long long)b->sector,
				    strerror(-b->error));
	}
	if (a->detached) {
		a->outstanding--;
		ios_req_put(req->s->r, req);
		return;
	}
	req->frame.len = ios_blk_resp(&d->blk, b, req->buf);
	TAILQ_INSERT_TAIL(&req->s->backlog, req, link);
}

static void session_blk_done(struct ios_blk_req *b)
{
	struct ios_req *req = container_of(b, struct ios_req, blk);

	req->att->inflight--;
	session_finish(req);
}

static int session_req(struct ios_session *s, const struct vrio_frame *f, const void *payload)
{
	struct ios_attach *a;
	struct ios_device *d;
	struct ios_req *req;
	int rc;

	if (s->state != IOS_SESSION_READY)
		return session_garbage(s, "request before hello");
	if (f->dev >= s->r->srv->n_devs || !(a = s->att[f->dev]) || a->detached)
		return session_garbage(s, "request for device %u, which is not attached here",
				       f->dev);
	d = a->dev;
	if (d->type != VRIO_DEV_BLK)
		return session_garbage(s, "%s: a request frame for a %s device", d->topo->name,
				       vrio_dev_type_name(d->type));
	if (f->queue >= d->blk.num_queues) {
		vrio_counter_add(&d->stats.err_protocol, 1);
		return session_garbage(s, "%s: request on queue %u of %u", d->topo->name,
				       f->queue, d->blk.num_queues);
	}
	if (f->len > d->blk.max_request || f->arg > d->blk.max_request) {
		vrio_counter_add(&d->stats.err_protocol, 1);
		return session_garbage(s, "%s: request of %u readable and %u writable bytes, above max_request %u",
				       d->topo->name, f->len, f->arg, d->blk.max_request);
	}
	if (a->outstanding >= d->max_outstanding) {
		vrio_counter_add(&d->stats.err_protocol, 1);
		return session_garbage(s, "%s: more than %u requests outstanding", d->topo->name,
				       d->max_outstanding);
	}
	req = ios_req_get(s->r);
	if (!req)
		return session_reject(s, -ENOMEM, "out of memory for a request");
	req->s = s;
	req->att = a;
	req->t_start = vrio_now_ns();
	memset(&req->frame, 0, sizeof(req->frame));
	req->frame.type = VRIO_FRAME_RESP;
	req->frame.queue = f->queue;
	req->frame.dev = f->dev;
	req->frame.id = f->id;
	req->blk.done = session_blk_done;
	ios_blk_parse(&d->blk, payload, f->len, f->arg, &req->blk);
	rc = ios_req_reserve(req, ios_blk_buf_len(&req->blk));
	if (rc < 0) {
		ios_req_put(s->r, req);
		return session_reject(s, rc, "out of memory for a %u-byte request",
				      ios_blk_buf_len(&req->blk));
	}
	a->outstanding++;
	if (req->blk.backend) {
		rc = ios_blk_submit(&req->blk, a->chan, req->buf);
		if (rc == 0) {
			a->inflight++;
			return 0;
		}
	}
	session_finish(req);
	return 0;
}

/* ---- PKT frames: a net device's packets ---- */

static int session_pkt(struct ios_session *s, const struct vrio_frame *f, const void *payload)
{
	const struct vrio_pkt_wire *h = payload;
	struct ios_attach *a;
	struct ios_device *d;

	if (s->state != IOS_SESSION_READY)
		return session_garbage(s, "packet before hello");
	if (f->dev >= s->r->srv->n_devs || !(a = s->att[f->dev]) || a->detached)
		return session_garbage(s, "packet for device %u, which is not attached here",
				       f->dev);
	d = a->dev;
	if (d->type != VRIO_DEV_NET)
		return session_garbage(s, "%s: a packet for a %s device", d->topo->name,
				       vrio_dev_type_name(d->type));
	if (f->queue != 0 || f->len < VRIO_PKT_HDR_LEN ||
	    f->len - VRIO_PKT_HDR_LEN > VRIO_PKT_MAX_FRAME)
		return session_garbage(s, "%s: packet frame of %u bytes on queue %u",
				       d->topo->name, f->len, f->queue);
	/* No offload is offered: metadata we did not negotiate is garbage. */
	if (!vrio_pkt_wire_plain(h))
		return session_garbage(s, "%s: packet with offload metadata", d->topo->name);
	ios_switch_input(s->r, d->port, (const uint8_t *)payload + VRIO_PKT_HDR_LEN,
			 f->len - VRIO_PKT_HDR_LEN);
	return 0;
}

void ios_port_deliver(struct ios_reactor *r, struct ios_port *p, const uint8_t *frame,
		      uint32_t len)
{
	struct ios_device *d = p->dev;
	struct ios_session *s;
	struct ios_attach *a;
	struct ios_req *req;

	/* Only the reactor a port names may look at its device's owner. */
	if (__atomic_load_n(&p->reactor, __ATOMIC_ACQUIRE) != (int)r->idx ||
	    !(s = __atomic_load_n(&d->owner, __ATOMIC_ACQUIRE)) || !s->conn ||
	    s->state != IOS_SESSION_READY || !(a = s->att[d->id]) || a->detached) {
		ios_port_drop(p, IOS_DROP_PORT_DOWN);
		return;
	}
	if (a->outstanding >= IOS_NET_BACKLOG) {
		ios_port_drop(p, IOS_DROP_BACKLOG);
		return;
	}
	req = ios_req_get(r);
	if (!req || ios_req_reserve(req, VRIO_PKT_HDR_LEN + len) < 0) {
		if (req)
			ios_req_put(r, req);
		ios_port_drop(p, IOS_DROP_BACKLOG);
		return;
	}
	memset(req->buf, 0, VRIO_PKT_HDR_LEN);
	memcpy(req->buf + VRIO_PKT_HDR_LEN, frame, len);
	req->s = s;
	req->att = a;
	req->t_start = r->now;
	memset(&req->frame, 0, sizeof(req->frame));
	req->frame.type = VRIO_FRAME_PKT;
	req->frame.dev = d->id;
	req->frame.len = VRIO_PKT_HDR_LEN + len;
	TAILQ_INSERT_TAIL(&s->backlog, req, link);
	a->outstanding++;
	vrio_counter_add(&p->st.out_frames, 1);
	vrio_counter_add(&p->st.out_bytes, len);
}

/* ---- CTRL messages ---- */

static int ctrl_hello(struct ios_session *s, const Vrio__Ctrl *m)
{
	const struct ios_server *srv = s->r->srv;
	Vrio__Ctrl reply = VRIO__CTRL__INIT;
	Vrio__Hello hello = VRIO__HELLO__INIT;
	const Vrio__Hello *h = m->hello;
	char node[64], msg[160];
	int rc;

	if (s->state != IOS_SESSION_HELLO)
		return session_garbage(s, "second hello");
	printable(node, sizeof(node), h->node);
	if (h->version != VRIO_PROTO_VERSION) {
		snprintf(msg, sizeof(msg), "protocol version %u from %s is not spoken here (%u is)",
			 h->version, node, VRIO_PROTO_VERSION);
		return session_send_error(s, m->seq, -EPROTONOSUPPORT, msg);
	}
	s->host = vrio_topology_host(srv->topo, h->node);
	if (!s->host) {
		snprintf(msg, sizeof(msg), "%s is not a host of the topology", node);
		return session_send_error(s, m->seq, -EPERM, msg);
	}
	snprintf(s->name, sizeof(s->name), "%s@%s", s->host->name, s->conn->name);
	s->conn_pub = &s->r->conn_pub[s->host - srv->topo->hosts];
	hello.version = VRIO_PROTO_VERSION;
	hello.node = srv->self->name;
	reply.seq = m->seq;
	reply.msg_case = VRIO__CTRL__MSG_HELLO;
	reply.hello = &hello;
	rc = session_send_ctrl(s, &reply);
	if (rc < 0)
		return session_reject(s, rc, "cannot answer hello: %s", strerror(-rc));
	s->state = IOS_SESSION_READY;
	VRIO_INFO("%s: hello", s->name);
	return 0;
}

static int attach_reply(struct ios_session *s, uint64_t seq, const char *device, int status,
			const char *error, const struct ios_device *d)
{
	Vrio__Ctrl reply = VRIO__CTRL__INIT;
	Vrio__AttachReply ar = VRIO__ATTACH_REPLY__INIT;
	int rc;

	ar.status = status;
	ar.error = (char *)(error ? error : "");
	ar.device = (char *)device;
	if (d)
		ios_device_describe(d, &ar);
	reply.seq = seq;
	reply.msg_case = VRIO__CTRL__MSG_ATTACH_REPLY;
	reply.attach_reply = &ar;
	rc = session_send_ctrl(s, &reply);
	if (rc < 0)
		return session_reject(s, rc, "cannot answer attach: %s", strerror(-rc));
	return 0;
}

static int ctrl_attach(struct ios_session *s, const Vrio__Ctrl *m)
{
	struct ios_server *srv = s->r->srv;
	const char *name = m->attach->device;
	const struct vrio_topo_device *td;
	struct ios_session *expected = NULL;
	char shown[96], err[192];
	struct ios_device *d;
	struct ios_attach *a;

	printable(shown, sizeof(shown), name);
	d = ios_device_find(srv, name);
	if (!d) {
		td = vrio_topology_device(srv->topo, name);
		snprintf(err, sizeof(err), td ? "%s is not served by %s" : "no device %s on %s",
			 shown, srv->self->name);
		VRIO_WARN_RL("%s: attach: %s", s->name, err);
		return attach_reply(s, m->seq, name, -ENOENT, err, NULL);
	}
	if (d->topo->host != s->host) {
		snprintf(err, sizeof(err), "%s belongs to host %s", d->topo->name,
			 d->topo->host->name);
		VRIO_WARN_RL("%s: attach: %s", s->name, err);
		return attach_reply(s, m->seq, name, -EPERM, err, NULL);
	}
	if (s->att[d->id]) {
		snprintf(err, sizeof(err), "%s is already attached on this connection",
			 d->topo->name);
		VRIO_WARN_RL("%s: attach: %s", s->name, err);
		return attach_reply(s, m->seq, name, -EBUSY, err, NULL);
	}
	if (!__atomic_compare_exchange_n(&d->owner, &expected, s, false, __ATOMIC_ACQ_REL,
					 __ATOMIC_ACQUIRE)) {
		snprintf(err, sizeof(err), "%s is attached on another connection", d->topo->name);
		VRIO_WARN_RL("%s: attach: %s", s->name, err);
		return attach_reply(s, m->seq, name, -EBUSY, err, NULL);
	}
	a = calloc(1, sizeof(*a));
	if (!a) {
		__atomic_store_n(&d->owner, NULL, __ATOMIC_RELEASE);
		return attach_reply(s, m->seq, name, -ENOMEM, "out of memory", NULL);
	}
	a->s = s;
	a->dev = d;
	a->chan = s->r->chans[d->id];
	s->att[d->id] = a;
	if (d->port)
		__atomic_store_n(&d->port->reactor, (int)s->r->idx, __ATOMIC_RELEASE);
	TAILQ_INSERT_TAIL(&s->atts, a, link);
	VRIO_INFO("%s: %s attached as dev %u on %s", s->name, d->topo->name, d->id, s->r->name);
	return attach_reply(s, m->seq, name, 0, NULL, d);
}

static struct ios_attach *session_att(struct ios_session *s, uint32_t dev_id)
{
	struct ios_attach *a;

	if (dev_id >= s->r->srv->n_devs)
		return NULL;
	a = s->att[dev_id];
	return a && !a->detached ? a : NULL;
}

static int ctrl_detach(struct ios_session *s, const Vrio__Ctrl *m)
{
	struct ios_attach *a = session_att(s, m->detach->dev_id);

	if (!a)
		return session_garbage(s, "detach of device %u, which is not attached here",
				       m->detach->dev_id);
	VRIO_INFO("%s: %s detached%s", s->name, a->dev->topo->name,
		  a->outstanding ? ", waiting for its requests" : "");
	att_detach(a);
	return 0;
}

static int ctrl_device_error(struct ios_session *s, const Vrio__Ctrl *m)
{
	struct ios_attach *a = session_att(s, m->device_error->dev_id);
	char reason[128];

	if (!a)
		return session_garbage(s, "device error for device %u, which is not attached here",
				       m->device_error->dev_id);
	vrio_counter_add(&a->dev->stats.err_guest, 1);
	VRIO_ERR_RL("%s: %s: the guest broke the device: %s", s->name, a->dev->topo->name,
		    printable(reason, sizeof(reason), m->device_error->reason));
	return 0;
}

static int ctrl_heartbeat(struct ios_session *s, const Vrio__Ctrl *m)
{
	Vrio__Ctrl reply = VRIO__CTRL__INIT;
	Vrio__Heartbeat hb = VRIO__HEARTBEAT__INIT;
	int rc;

	hb.seq = m->heartbeat->seq;
	reply.seq = m->seq;
	reply.msg_case = VRIO__CTRL__MSG_HEARTBEAT;
	reply.heartbeat = &hb;
	rc = session_send_ctrl(s, &reply);
	if (rc < 0)
		return session_reject(s, rc, "cannot answer heartbeat: %s", strerror(-rc));
	return 0;
}

/*
 * A vIOMMU invalidation for one of this connection's devices. Every REQ
 * that came before it is already parsed into the io-server's own buffers
 * (the transports copy), so nothing queued here refers to guest memory:
 * the acknowledgement can go at once, in order behind what is queued.
 */
static int ctrl_iotlb_invalidate(struct ios_session *s, const Vrio__Ctrl *m)
{
	const Vrio__IotlbInvalidate *inv = m->iotlb_invalidate;
	struct ios_attach *a = session_att(s, inv->dev_id);
	Vrio__Ctrl reply = VRIO__CTRL__INIT;
	Vrio__IotlbAck ack = VRIO__IOTLB_ACK__INIT;
	int rc;

	if (!a)
		return session_garbage(s, "IOTLB invalidation for device %u, which is not attached here",
				       inv->dev_id);
	if (inv->size == 0 || inv->iova + inv->size - 1 < inv->iova)
		return session_garbage(s, "%s: IOTLB invalidation of %#llx+%#llx",
				       a->dev->topo->name, (unsigned long long)inv->iova,
				       (unsigned long long)inv->size);
	vrio_counter_add(&a->dev->stats.invalidations, 1);
	ack.dev_id = inv->dev_id;
	reply.seq = m->seq;
	reply.msg_case = VRIO__CTRL__MSG_IOTLB_ACK;
	reply.iotlb_ack = &ack;
	rc = session_send_ctrl(s, &reply);
	if (rc < 0)
		return session_reject(s, rc, "cannot acknowledge an invalidation: %s", strerror(-rc));
	return 0;
}

static int ctrl_error(struct ios_session *s, const Vrio__Ctrl *m)
{
	char msg[160];

	return session_reject(s, -ECONNABORTED, "the peer reports error %d: %s",
			      m->error->status, printable(msg, sizeof(msg), m->error->message));
}

static const struct ios_ctrl_handler {
	Vrio__Ctrl__MsgCase msg;
	int (*fn)(struct ios_session *s, const Vrio__Ctrl *m);
	bool needs_hello;
} ctrl_handlers[] = {
	{ VRIO__CTRL__MSG_HELLO, ctrl_hello, false },
	{ VRIO__CTRL__MSG_ATTACH, ctrl_attach, true },
	{ VRIO__CTRL__MSG_DETACH, ctrl_detach, true },
	{ VRIO__CTRL__MSG_DEVICE_ERROR, ctrl_device_error, true },
	{ VRIO__CTRL__MSG_HEARTBEAT, ctrl_heartbeat, true },
	{ VRIO__CTRL__MSG_IOTLB_INVALIDATE, ctrl_iotlb_invalidate, true },
	{ VRIO__CTRL__MSG_ERROR, ctrl_error, false },
};

static int session_ctrl(struct ios_session *s, const struct vrio_frame *f, const void *payload)
{
	const struct ios_ctrl_handler *h = NULL;
	Vrio__Ctrl *m;
	size_t i;
	int rc;

	m = vrio_ctrl_unpack(payload, f->len);
	if (!m)
		return session_garbage(s, "undecodable control message of %u bytes", f->len);
	for (i = 0; i < sizeof(ctrl_handlers) / sizeof(ctrl_handlers[0]); i++)
		if (ctrl_handlers[i].msg == m->msg_case)
			h = &ctrl_handlers[i];
	if (!h)
		rc = session_garbage(s, "unexpected %s message", vrio_ctrl_name(m));
	else if (h->needs_hello && s->state != IOS_SESSION_READY)
		rc = session_garbage(s, "%s before hello", vrio_ctrl_name(m));
	else
		rc = h->fn(s, m);
	vrio_ctrl_free(m);
	return rc;
}

static int session_recv(void *arg, struct vrio_conn *c, const struct vrio_frame *f,
			const void *payload)
{
	struct ios_session *s = arg;

	/* An Error is on its way out: the rest of this batch is moot. */
	if (s->state == IOS_SESSION_CLOSING)
		return 0;
	switch (f->type) {
	case VRIO_FRAME_REQ:
		return session_req(s, f, payload);
	case VRIO_FRAME_PKT:
		return session_pkt(s, f, payload);
	case VRIO_FRAME_CTRL:
		return session_ctrl(s, f, payload);
	default:
		return session_garbage(s, "unexpected %s frame", vrio_frame_type_name(f->type));
	}
}

/* ---- sending ---- */

static void session_recycle_unflushed(struct ios_session *s)
{
	struct ios_req *req;

	while ((req = TAILQ_FIRST(&s->unflushed))) {
		TAILQ_REMOVE(&s->unflushed, req, link);
		ios_req_put(s->r, req);
	}
}

static int session_flush(struct ios_session *s)
{
	int rc = s->conn->ops->flush(s->conn);

	if (rc < 0)
		return rc;
	s->flush_pending = rc > 0;
	if (rc == 0)
		session_recycle_unflushed(s);
	return 0;
}

/* Sends the backlog and flushes. Returns the frames sent or -errno. */
static int session_tx(struct ios_session *s)
{
	struct vrio_conn *c = s->conn;
	bool flushed = false;
	struct ios_req *req;
	struct iovec iov;
	int sent = 0, rc;
	uint64_t now;

	while ((req = TAILQ_FIRST(&s->backlog))) {
		iov.iov_base = req->buf;
		iov.iov_len = req->frame.len;
		rc = c->ops->send(c, &req->frame, &iov, req->frame.len ? 1 : 0);
		if (rc == -ENOBUFS && !flushed) {
			flushed = true;
			rc = session_flush(s);
			if (rc < 0)
				return rc;
			continue;
		}
		if (rc == -ENOBUFS)
			break;
		if (rc < 0)
			return rc;
		TAILQ_REMOVE(&s->backlog, req, link);
		TAILQ_INSERT_TAIL(&s->unflushed, req, link);
		if (req->att) {
			req->att->outstanding--;
			if (req->att->dev->type == VRIO_DEV_BLK) {
				now = vrio_now_ns();
				vrio_hist_add(&req->att->dev->stats.latency, now - req->t_start);
			}
		}
		sent++;
	}
	if (sent || s->flush_pending || !TAILQ_EMPTY(&s->unflushed) || vrio_conn_pending(c)) {
		rc = session_flush(s);
		if (rc < 0)
			return rc;
		if (s->conn_pub)
			vrio_conn_stats_publish(s->conn_pub, &s->conn_last, c);
	}
	return sent;
}

/* ---- the reactor's view ---- */

int ios_session_poll(struct ios_session *s, bool draining)
{
	struct ios_attach *a, *next;
	char why[64];
	int work = 0, rc;

	if (s->conn && !draining &&
	    (s->state == IOS_SESSION_HELLO || s->state == IOS_SESSION_READY)) {
		s->close_reason[0] = '\0';
		rc = s->conn->ops->poll(s->conn, session_recv, s, IOS_POLL_BUDGET);
		if (rc < 0) {
			if (rc == -ECONNRESET && !s->close_reason[0])
				session_close(s, false, "closed by the peer");
			else if (!s->close_reason[0])
				session_reject(s, rc, "receive: %s", strerror(-rc));
			if (s->close_reason[0])
				session_close(s, true, s->close_reason);
		} else {
			work += rc;
		}
	}
	for (a = TAILQ_FIRST(&s->atts); a; a = next) {
		next = TAILQ_NEXT(a, link);
		if (a->inflight) {
			rc = ios_bdev_poll(a->chan, IOS_POLL_BUDGET);
			if (rc > 0)
				work += rc;
		}
		if (a->detached && a->outstanding == 0)
			att_release(a);
	}
	if (s->conn) {
		rc = session_tx(s);
		if (rc < 0) {
			snprintf(why, sizeof(why), "send: %s", strerror(-rc));
			ios_session_close(s, why);
		} else {
			work += rc;
		}
	}
	if (s->conn && s->state == IOS_SESSION_CLOSING && TAILQ_EMPTY(&s->backlog) &&
	    !s->flush_pending)
		session_close(s, s->close_reason[0] != '\0',
			      s->close_reason[0] ? s->close_reason : "shutting down");
	return work;
}

uint32_t ios_session_events(const struct ios_session *s, bool draining)
{
	uint32_t ev = 0;

	if (!s->conn)
		return 0;
	if (s->flush_pending || !TAILQ_EMPTY(&s->backlog))
		ev |= EPOLLOUT;
	if (!draining && (s->state == IOS_SESSION_HELLO || s->state == IOS_SESSION_READY))
		ev |= EPOLLIN;
	return ev;
}

bool ios_session_finished(struct ios_session *s, bool draining)
{
	const struct ios_attach *a;

	/* Draining: once everything read has been answered and flushed, say
	 * why the connection goes (every REQ without a RESP was never started),
	 * then close after that flush too. */
	if (draining && s->conn && s->state != IOS_SESSION_CLOSING) {
		TAILQ_FOREACH(a, &s->atts, link)
			if (a->outstanding)
				return false;
		if (!TAILQ_EMPTY(&s->backlog) || s->flush_pending)
			return false;
		if (session_send_error(s, 0, -ESHUTDOWN, "the io-server is shutting down") < 0)
			ios_session_close(s, "shutting down");
		else
			s->close_reason[0] = '\0';
	}
	return !s->conn && TAILQ_EMPTY(&s->atts);
}

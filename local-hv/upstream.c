/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Connections to io-servers. One per io-server this host's devices use,
 * owned by the poller. DOWN -> connect, Hello, one Attach per device ->
 * ATTACHING -> every AttachReply in -> READY, and requests still in flight
 * from before a disconnect are sent again. Anything malformed from the peer
 * closes the connection and nothing else.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ctrl.h"
#include "localhv.h"
#include "log.h"

#define RETRY_MIN_NS	(200ull * 1000 * 1000)
#define RETRY_MAX_NS	(2000ull * 1000 * 1000)

static const char *up_name(const struct lhv_upstream *up)
{
	return up->ios->name;
}

static void up_down(struct lhv_upstream *up, int err)
{
	unsigned i, inflight = 0;
	uint64_t backoff;

	for (i = 0; i < up->ndevs; i++)
		inflight += up->devs[i]->inflight;
	if (up->conn) {
		vrio_conn_stats_publish(&up->cpub, &up->clast, up->conn);
		vrio_conn_stats_retire(&up->cpub);
		memset(&up->clast, 0, sizeof(up->clast));
		lhv_epoll_mod(up->l, vrio_conn_fd(up->conn), NULL, false);
		up->conn->ops->close(up->conn);
		up->conn = NULL;
		vrio_counter_add(&up->st.disconnects, 1);
		VRIO_WARN("%s: connection lost: %s; %u request(s) in flight wait for the reconnect",
			  up_name(up), strerror(-err), inflight);
	}
	for (i = 0; i < up->ndevs; i++) {
		up->devs[i]->attached = false;
		if (up->devs[i]->iommu.on)
			lhv_iommu_upstream_lost(up->devs[i]);
	}
	__atomic_store_n(&up->state, LHV_UP_DOWN, __ATOMIC_RELEASE);
	backoff = RETRY_MIN_NS << (up->failures < 4 ? up->failures : 4);
	up->retry_at = vrio_now_ns() + (backoff < RETRY_MAX_NS ? backoff : RETRY_MAX_NS);
}

static int send_ctrl(struct lhv_upstream *up, Vrio__Ctrl *m)
{
	m->seq = ++up->seq;
	return vrio_conn_send_ctrl(up->conn, m);
}

int lhv_up_send(struct lhv_upstream *up, const struct vrio_frame *f, const struct iovec *iov,
		int iovcnt)
{
	struct vrio_conn *c = up->conn;
	int rc = c->ops->send(c, f, iov, iovcnt);

	if (rc == -ENOBUFS) {
		/* The peer is behind: push what we have, try once more. */
		c->ops->flush(c);
		rc = c->ops->send(c, f, iov, iovcnt);
	}
	return rc;
}

int lhv_up_send_invalidate(struct lhv_dev *d, uint64_t iova, uint64_t size, uint64_t *seq)
{
	struct lhv_upstream *up = d->up;
	Vrio__Ctrl m = VRIO__CTRL__INIT;
	Vrio__IotlbInvalidate inv = VRIO__IOTLB_INVALIDATE__INIT;
	int rc;

	if (!up->conn || !d->attached ||
	    __atomic_load_n(&up->state, __ATOMIC_RELAXED) != LHV_UP_READY)
		return -ENOTCONN;
	inv.dev_id = d->dev_id;
	inv.iova = iova;
	inv.size = size;
	m.msg_case = VRIO__CTRL__MSG_IOTLB_INVALIDATE;
	m.iotlb_invalidate = &inv;
	rc = send_ctrl(up, &m);
	if (rc < 0)
		return rc;	/* -ENOBUFS: tried again next round */
	*seq = m.seq;
	return 0;
}

static int up_start(struct lhv_upstream *up)
{
	Vrio__Ctrl m = VRIO__CTRL__INIT;
	Vrio__Hello hello = VRIO__HELLO__INIT;
	Vrio__Attach att = VRIO__ATTACH__INIT;
	unsigned i;
	int rc;

	hello.version = VRIO_PROTO_VERSION;
	hello.node = up->l->host->name;
	m.msg_case = VRIO__CTRL__MSG_HELLO;
	m.hello = &hello;
	rc = send_ctrl(up, &m);
	for (i = 0; rc == 0 && i < up->ndevs; i++) {
		att.device = up->devs[i]->topo->name;
		m.msg_case = VRIO__CTRL__MSG_ATTACH;
		m.attach = &att;
		rc = send_ctrl(up, &m);
	}
	if (rc == 0)
		rc = up->conn->ops->flush(up->conn) < 0 ? -EPIPE : 0;
	up->pending_attach = up->ndevs;
	return rc;
}

static int try_connect(struct lhv_upstream *up)
{
	int rc;

	rc = vrio_stack_connect(&up->stack, up->ios->listen, &up->conn);
	if (rc < 0) {
		if (up->failures++ % 10 == 0)
			VRIO_WARN("%s: cannot connect to %s: %s; retrying", up_name(up),
				  up->ios->listen, strerror(-rc));
		up_down(up, rc);
		return rc;
	}
	up->conn->owner = up;
	vrio_counter_add(&up->st.connects, 1);
	__atomic_store_n(&up->state, LHV_UP_ATTACHING, __ATOMIC_RELEASE);
	lhv_epoll_mod(up->l, vrio_conn_fd(up->conn), up, true);
	rc = up_start(up);
	if (rc < 0) {
		up_down(up, rc);
		return rc;
	}
	VRIO_NOTICE("%s: connected to %s", up_name(up), up->ios->listen);
	return 0;
}

static struct lhv_dev *dev_by_name(struct lhv_upstream *up, const char *name)
{
	unsigned i;

	for (i = 0; i < up->ndevs; i++)
		if (strcmp(up->devs[i]->topo->name, name) == 0)
			return up->devs[i];
	return NULL;
}

static struct lhv_dev *dev_by_id(struct lhv_upstream *up, uint32_t id)
{
	unsigned i;

	for (i = 0; i < up->ndevs; i++)
		if (up->devs[i]->attached && up->devs[i]->dev_id == id)
			return up->devs[i];
	return NULL;
}

/*
 * The first reply describes the device for good: the vhost-user socket
 * offers those features and config. A later reply (after a reconnect) must
 * describe the same device, or the guest would see it change under it.
 */
static int on_attach_reply(struct lhv_upstream *up, const Vrio__AttachReply *r)
{
	struct lhv_dev *d = r->device ? dev_by_name(up, r->device) : NULL;

	if (!d || d->attached) {
		VRIO_ERR("%s: attach reply for unknown or attached device '%s'", up_name(up),
			 r->device ? r->device : "");
		return -EBADMSG;
	}
	if (r->status < 0) {
		VRIO_ERR("%s: io-server %s refused the device: %s", d->name, up_name(up),
			 r->error && r->error[0] ? r->error : strerror(-r->status));
		return -EPERM;
	}
	if (r->type != (d->topo->type == VRIO_DEV_NET ? VRIO__DEVICE_TYPE__DEVICE_TYPE_NET
						      : VRIO__DEVICE_TYPE__DEVICE_TYPE_BLK) ||
	    r->config.len > LHV_CONFIG_MAX ||
	    r->num_queues == 0 || r->num_queues > LHV_MAX_QUEUES || r->max_request == 0 ||
	    r->max_request > VRIO_FRAME_MAX_PAYLOAD || (r->features >> 24)) {
		VRIO_ERR("%s: io-server %s described the device in a way we cannot serve",
			 d->name, up_name(up));
		return -EBADMSG;
	}
	if (!d->described) {
		d->dev_features = r->features;
		memcpy(d->config, r->config.data, r->config.len);
		d->config_len = (uint32_t)r->config.len;
		d->num_queues = r->num_queues;
		d->max_request = r->max_request;
		d->ops = r->type == VRIO__DEVICE_TYPE__DEVICE_TYPE_NET ? &lhv_net_ops : &lhv_rr_ops;
		d->described = true;
	} else if (d->dev_features != r->features || d->num_queues != r->num_queues ||
		   d->config_len != r->config.len ||
		   memcmp(d->config, r->config.data, r->config.len) != 0) {
		VRIO_ERR("%s: io-server %s now describes a different device", d->name,
			 up_name(up));
		return -EBADMSG;
	}
	d->dev_id = r->dev_id;
	d->attached = true;
	if (--up->pending_attach == 0) {
		unsigned i;
		int n = 0, rc;

		__atomic_store_n(&up->state, LHV_UP_READY, __ATOMIC_RELEASE);
		__atomic_store_n(&up->ready_once, true, __ATOMIC_RELEASE);
		up->failures = 0;
		for (i = 0; i < up->ndevs; i++) {
			int st = __atomic_load_n(&up->devs[i]->state, __ATOMIC_ACQUIRE);

			if (st != LHV_DEV_RUNNING && st != LHV_DEV_STOP)
				continue;
			if (!up->devs[i]->ops->resend)
				continue;
			rc = up->devs[i]->ops->resend(up->l, up->devs[i]);
			if (rc < 0)
				return rc;
			n += rc;
		}
		vrio_counter_add(&up->st.resent, (uint64_t)n);
		VRIO_NOTICE("%s: %u device(s) attached%s", up_name(up), up->ndevs,
			    n ? ", requests in flight sent again" : "");
	}
	return 0;
}

static int on_ctrl(struct lhv_upstream *up, const void *payload, uint32_t len)
{
	Vrio__Ctrl *m = vrio_ctrl_unpack(payload, len);
	int rc = 0;

	if (!m) {
		VRIO_ERR("%s: malformed control message", up_name(up));
		return -EBADMSG;
	}
	switch (m->msg_case) {
	case VRIO__CTRL__MSG_HELLO:
		if (m->hello->version != VRIO_PROTO_VERSION) {
			VRIO_ERR("%s: io-server speaks protocol %u, we speak %u", up_name(up),
				 m->hello->version, VRIO_PROTO_VERSION);
			rc = -EPROTONOSUPPORT;
		}
		break;
	case VRIO__CTRL__MSG_ATTACH_REPLY:
		rc = on_attach_reply(up, m->attach_reply);
		break;
	case VRIO__CTRL__MSG_HEARTBEAT:
		break;
	case VRIO__CTRL__MSG_IOTLB_ACK: {
		struct lhv_dev *d = dev_by_id(up, m->iotlb_ack->dev_id);

		if (!d || !d->iommu.on || lhv_iommu_acked(d, m->seq) < 0) {
			VRIO_ERR("%s: IOTLB acknowledgement (seq %llu) for nothing asked", up_name(up),
				 (unsigned long long)m->seq);
			rc = -EBADMSG;
		}
		break;
	}
	case VRIO__CTRL__MSG_ERROR:
		VRIO_ERR("%s: io-server error: %s", up_name(up),
			 m->error->message ? m->error->message : "");
		rc = m->error->status < 0 ? m->error->status : -EPROTO;
		break;
	default:
		VRIO_ERR("%s: unexpected control message %s", up_name(up), vrio_ctrl_name(m));
		rc = -EBADMSG;
	}
	vrio_ctrl_free(m);
	return rc;
}

static int on_frame(void *arg, struct vrio_conn *c, const struct vrio_frame *f,
		    const void *payload)
{
	struct lhv_upstream *up = arg;
	struct lhv_dev *d;
	int rc;

	switch (f->type) {
	case VRIO_FRAME_CTRL:
		return on_ctrl(up, payload, f->len);
	case VRIO_FRAME_RESP:
	case VRIO_FRAME_PKT:
		d = dev_by_id(up, f->dev);
		if (!d || d->ops->frame_type != f->type) {
			VRIO_ERR("%s: %s frame for device id %u, which is no %s device here",
				 up_name(up), vrio_frame_type_name(f->type), f->dev,
				 f->type == VRIO_FRAME_PKT ? "net" : "request/response");
			return -EBADMSG;
		}
		rc = d->ops->frame(up->l, d, f, payload);
		if (rc < 0)
			VRIO_ERR("%s: %s: malformed %s frame (queue %u id %#x len %u)", up_name(up),
				 d->name, vrio_frame_type_name(f->type), f->queue, f->id, f->len);
		return rc;
	default:
		VRIO_ERR("%s: unexpected %s frame", up_name(up), vrio_frame_type_name(f->type));
		return -EBADMSG;
	}
}

int lhv_up_poll(struct lhv_upstream *up, uint64_t now)
{
	int rc;

	if (!up->conn) {
		if (now < up->retry_at)
			return 0;
		return try_connect(up) == 0 ? 1 : 0;
	}
	rc = up->conn->ops->poll(up->conn, on_frame, up, LHV_BUDGET);
	if (rc < 0) {
		if (rc != -ECONNRESET)
			vrio_counter_add(&up->st.protocol_errors, 1);
		up_down(up, rc);
		return 1;
	}
	return rc;
}

void lhv_up_flush(struct lhv_upstream *up)
{
	int rc;

	if (!up->conn)
		return;
	rc = up->conn->ops->flush(up->conn);
	if (rc < 0) {
		up_down(up, rc);
		return;
	}
	vrio_conn_stats_publish(&up->cpub, &up->clast, up->conn);
}

int lhv_up_timeout_ms(const struct lhv_upstream *up, uint64_t now)
{
	if (up->conn)
		return vrio_conn_timeout_ms(up->conn);
	return up->retry_at <= now ? 0 : (int)((up->retry_at - now) / 1000000 + 1);
}

void lhv_up_close(struct lhv_upstream *up)
{
	if (up->conn) {
		up->conn->ops->flush(up->conn);
		up->conn->ops->close(up->conn);
		up->conn = NULL;
	}
	vrio_stack_teardown(&up->stack);
	free(up->devs);
	up->devs = NULL;
}

int lhv_up_setup(struct lhv *l)
{
	unsigned i;
	int rc;

	for (i = 0; i < l->nups; i++) {
		rc = vrio_stack_setup(&l->ups[i].stack, &l->self);
		if (rc < 0) {
			VRIO_ERR("%s: cannot set up transport %s for io-server %s: %s",
				 l->host->name, l->ups[i].stack.base->name, l->ups[i].ios->name,
				 strerror(-rc));
			return rc;
		}
	}
	return 0;
}

/* One upstream per io-server that this host's devices name. */
int lhv_up_init(struct lhv *l)
{
	struct lhv_upstream *up;
	unsigned i, j;

	l->ups = calloc(l->ndevs ? l->ndevs : 1, sizeof(*l->ups));
	if (!l->ups)
		return -ENOMEM;
	for (i = 0; i < l->ndevs; i++) {
		struct lhv_dev *d = &l->devs[i];

		for (j = 0; j < l->nups; j++)
			if (l->ups[j].ios == d->topo->io_server)
				break;
		up = &l->ups[j];
		if (j == l->nups) {
			up->l = l;
			up->ios = d->topo->io_server;
			if (vrio_stack_init(&up->stack, up->ios) < 0)
				return -EINVAL;
			up->devs = calloc(l->ndevs, sizeof(*up->devs));
			if (!up->devs)
				return -ENOMEM;
			l->nups++;
		}
		up->devs[up->ndevs++] = d;
		d->up = up;
	}
	return 0;
}

/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * One connection, run by the reactor that owns it (its front reactor):
 *
 *   HELLO   the first frame must be a CTRL Hello (control.c).
 *   READY   CTRL frames go to control.c; REQ and PKT frames to the device
 *           they name, which must be attached here, through its model's
 *           ops (device.h). The session never looks at a device's type.
 *   CLOSING an Error is queued: flush it, then close.
 *   DEAD    the connection is closed; the session lives on until every
 *           device it had attached has been let go, then it is freed.
 *
 * Anything else from the peer is garbage: one line naming the peer, and
 * the connection (only this one) is closed.
 *
 * Liveness (heartbeat.h): a READY session sends a Heartbeat when it has
 * sent nothing for the interval; a session in HELLO or READY on which
 * nothing arrived for dead_after is closed as dead (a hung local-hv, or a
 * peer that connected and said nothing), which lets its devices go.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#include "ctrl.h"
#include "ioserver_internal.h"
#include "log.h"

/* ---- request buffers, from the reactor's pool ---- */

struct ios_req *ios_req_get(struct ios_reactor *r)
{
	struct ios_rctx *x = ios_rctx(r);
	struct ios_req *req = TAILQ_FIRST(&x->pool);

	if (req) {
		TAILQ_REMOVE(&x->pool, req, link);
		req->lent_len = 0;
		return req;
	}
	return calloc(1, sizeof(*req));
}

void ios_req_put(struct ios_reactor *r, struct ios_req *req)
{
	req->s = NULL;
	req->att = NULL;
	req->dev = NULL;
	TAILQ_INSERT_HEAD(&ios_rctx(r)->pool, req, link);
}

static int reserve(uint8_t **buf, uint32_t *cap, uint32_t len)
{
	size_t n;
	void *p;

	if (len <= *cap && *buf)
		return 0;
	n = ((size_t)len + IOS_BUF_ALIGN - 1) & ~(size_t)(IOS_BUF_ALIGN - 1);
	if (n == 0)
		n = IOS_BUF_ALIGN;
	if (posix_memalign(&p, IOS_BUF_ALIGN, n))
		return -ENOMEM;
	free(*buf);
	*buf = p;
	*cap = (uint32_t)n;
	return 0;
}

/* Buffers only grow: in steady state every request finds one big enough. */
int ios_req_reserve(struct ios_req *req, uint32_t len)
{
	return reserve(&req->buf, &req->cap, len);
}

int ios_req_reserve_rx(struct ios_req *req, uint32_t len)
{
	return reserve(&req->rx, &req->rx_cap, len);
}

/* ---- helpers ---- */

const char *ios_printable(char *dst, size_t n, const char *src)
{
	size_t i;

	for (i = 0; src && src[i] && i + 1 < n; i++)
		dst[i] = (src[i] >= 0x20 && src[i] < 0x7f) ? src[i] : '?';
	dst[i] = '\0';
	return dst;
}

/* Records why the connection goes away; logged once when it closes. */
int ios_session_reject(struct ios_session *s, int rc, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(s->close_reason, sizeof(s->close_reason), fmt, ap);
	va_end(ap);
	return rc;
}

struct ios_attach *ios_session_att(struct ios_session *s, uint32_t dev_id)
{
	struct ios_attach *a;

	if (dev_id >= IOS_MAX_DEVICES)
		return NULL;
	a = s->att[dev_id];
	return a && !a->detached ? a : NULL;
}

static void drop_list(struct ios_session *s, struct ios_req_list *l, struct ios_attach *only)
{
	struct ios_req *req, *next;

	for (req = TAILQ_FIRST(l); req; req = next) {
		next = TAILQ_NEXT(req, link);
		if (only && req->att != only)
			continue;
		TAILQ_REMOVE(l, req, link);
		if (req->att && l != &s->unflushed)
			req->att->outstanding--;
		ios_req_put(s->r, req);
	}
}

/* A frame of attachment a ready to send: behind a's earlier ones. */
static void ready_push(struct ios_session *s, struct ios_attach *a, struct ios_req *req)
{
	if (TAILQ_EMPTY(&a->ready))
		TAILQ_INSERT_TAIL(&s->ready, a, ready_link);
	TAILQ_INSERT_TAIL(&a->ready, req, link);
	s->tx_data_queued++;
}

/* Drops a's ready frames (all attachments' without one). */
static void ready_drop(struct ios_session *s, struct ios_attach *only)
{
	struct ios_attach *a, *next;
	struct ios_req *req;

	for (a = TAILQ_FIRST(&s->ready); a; a = next) {
		next = TAILQ_NEXT(a, ready_link);
		if (only && a != only)
			continue;
		TAILQ_FOREACH(req, &a->ready, link)
			s->tx_data_done++;
		drop_list(s, &a->ready, NULL);
		TAILQ_REMOVE(&s->ready, a, ready_link);
	}
}

bool ios_session_queued(const struct ios_session *s)
{
	return !TAILQ_EMPTY(&s->backlog) || !TAILQ_EMPTY(&s->ready);
}

/* Lets the device go once nothing of this attachment is left here. */
static void att_maybe_release(struct ios_attach *a)
{
	if (a->detached && a->outstanding == 0 && a->state == IOS_ATT_READY)
		ios_device_release(a);
}

void ios_session_released(struct ios_attach *a)
{
	struct ios_session *s = a->s;

	TAILQ_REMOVE(&s->atts, a, link);
	s->att[a->dev->id] = NULL;
	VRIO_INFO("%s: %s released", s->name, a->dev->name);
	free(a);
}

/* No more responses for this device; it is let go once idle. */
void ios_session_detach(struct ios_attach *a)
{
	struct ios_session *s = a->s;

	if (a->detached)
		return;
	a->detached = true;
	ready_drop(s, a);
	drop_list(s, &a->held, NULL);
	att_maybe_release(a);
}

struct ios_session *ios_session_create(struct ios_server *srv, struct vrio_conn *conn)
{
	struct ios_session *s;

	s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->srv = srv;
	s->conn = conn;
	conn->owner = s;
	s->host = -1;
	vrio_hb_init(&s->hb, srv->self->heartbeat.interval_ms, srv->self->heartbeat.dead_after_ms);
	/* L = dead_after + interval: the host gives up on us at about the
	 * time the lease runs out, so a takeover waits little more than
	 * that; and a silent host is declared dead (the heartbeat's verdict,
	 * its own line and counter) before its lease lapses. */
	vrio_lease_grant_init(&s->lease, srv->self->heartbeat.dead_after_ms +
					 srv->self->heartbeat.interval_ms,
			      srv->self->heartbeat.interval_ms);
	snprintf(s->name, sizeof(s->name), "%s", conn->name);
	s->state = IOS_SESSION_HELLO;
	s->ev.fd = vrio_conn_fd(conn);
	TAILQ_INIT(&s->backlog);
	TAILQ_INIT(&s->ready);
	TAILQ_INIT(&s->unflushed);
	TAILQ_INIT(&s->atts);
	return s;
}

/* `garbage`: the peer broke the protocol, which it can repeat at will. */
static void session_close(struct ios_session *s, bool garbage, const char *reason)
{
	struct ios_attach *a, *next;

	if (!s->conn)
		return;
	ios_control_closed(s);
	if (garbage)
		VRIO_WARN_RL("%s: connection closed: %s", s->name, reason);
	else
		VRIO_NOTICE("%s: connection closed: %s", s->name, reason);
	ios_reactor_watch(s->r, &s->ev, 0);
	if (s->host >= 0) {
		struct vrio_conn_stats *pub = &ios_rctx(s->r)->conn_pub[s->host];

		vrio_conn_stats_publish(pub, &s->conn_last, s->conn);
		vrio_conn_stats_retire(pub);
		__atomic_store_n(&ios_rctx(s->r)->lease_state[s->host], (int)VRIO_LEASE_NONE,
				 __ATOMIC_RELAXED);
	}
	s->conn->ops->close(s->conn);
	s->conn = NULL;
	s->state = IOS_SESSION_DEAD;
	s->flush_pending = false;
	/* The transport is gone, so nothing refers to these buffers any more. */
	drop_list(s, &s->backlog, NULL);
	ready_drop(s, NULL);
	drop_list(s, &s->unflushed, NULL);
	for (a = TAILQ_FIRST(&s->atts); a; a = next) {
		next = TAILQ_NEXT(a, link);
		ios_session_detach(a);
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
		/* Never adopted: still on its way to a reactor at shutdown. */
		if (s->conn)
			s->conn->ops->close(s->conn);
		free(s);
		return;
	}
	/* Attachments left here only at a forced exit (the reactors are
	 * stopped: no message would run): they go without a release, and
	 * requests still at the backend keep their buffers, which the kernel
	 * may still write into. */
	TAILQ_FOREACH(a, &s->atts, link)
		a->detached = true;
	ios_session_close(s, "shutting down");
	while ((a = TAILQ_FIRST(&s->atts))) {
		if (a->outstanding)
			VRIO_ERR("%s: %s: abandoning %u requests", s->name, a->dev->name,
				 a->outstanding);
		drop_list(s, &a->held, NULL);
		__atomic_store_n(&a->dev->front, NULL, __ATOMIC_SEQ_CST);
		__atomic_store_n(&a->dev->owner, NULL, __ATOMIC_SEQ_CST);
		TAILQ_REMOVE(&s->atts, a, link);
		free(a);
	}
	ios_poller_unregister(&s->poller);
	TAILQ_REMOVE(&ios_rctx(s->r)->sessions, s, link);
	__atomic_sub_fetch(&s->r->n_sessions, 1, __ATOMIC_RELAXED);
	free(s);
}

/* Queues a CTRL frame; it leaves with the next send turn. */
int ios_session_send_ctrl(struct ios_session *s, const Vrio__Ctrl *m)
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
	memset(&req->frame, 0, sizeof(req->frame));
	req->frame.type = VRIO_FRAME_CTRL;
	req->frame.len = (uint32_t)rc;
	req->tx_after = s->tx_data_queued;
	TAILQ_INSERT_TAIL(&s->backlog, req, link);
	return 0;
}

/* Sends an Error and closes once it is flushed. */
int ios_session_send_error(struct ios_session *s, uint64_t seq, int status, const char *msg)
{
	Vrio__Ctrl m = VRIO__CTRL__INIT;
	Vrio__Error e = VRIO__ERROR__INIT;
	int rc;

	e.status = status;
	e.message = (char *)msg;
	m.seq = seq;
	m.msg_case = VRIO__CTRL__MSG_ERROR;
	m.error = &e;
	rc = ios_session_send_ctrl(s, &m);
	if (rc < 0)
		return ios_session_reject(s, rc, "cannot send an error: %s", strerror(-rc));
	s->state = IOS_SESSION_CLOSING;
	ios_session_reject(s, 0, "%s", msg);
	return 0;
}

/* ---- REQ and PKT frames: to the device ---- */

static int session_data(struct ios_session *s, const struct vrio_frame *f, const void *payload)
{
	struct ios_attach *a;
	struct ios_device *d;
	struct ios_req *req;
	char why[128];

	if (s->state != IOS_SESSION_READY)
		return ios_session_garbage(s, "%s frame before hello", vrio_frame_type_name(f->type));
	a = ios_session_att(s, f->dev);
	if (!a || a->state == IOS_ATT_PLACING)
		return ios_session_garbage(s, "%s frame for device %u, which is not attached here",
					   vrio_frame_type_name(f->type), f->dev);
	d = a->dev;
	if (f->type != d->ops->frame_type)
		return ios_session_garbage(s, "%s: a %s frame for a %s device", d->name,
					   vrio_frame_type_name(f->type), d->ops->name);
	if (f->queue >= d->num_queues || f->len > d->max_request || f->arg > d->max_request) {
		vrio_counter_add(&d->stats.err_protocol, 1);
		return ios_session_garbage(s, "%s: %s frame on queue %u of %u with %u readable and %u writable bytes (max %u)",
					   d->name, vrio_frame_type_name(f->type), f->queue,
					   d->num_queues, f->len, f->arg, d->max_request);
	}
	if (d->ops->check && d->ops->check(d, f, payload, why, sizeof(why)) < 0) {
		vrio_counter_add(&d->stats.err_protocol, 1);
		return ios_session_garbage(s, "%s: %s", d->name, why);
	}
	if (a->outstanding >= d->max_outstanding) {
		if (d->ops->drop) {
			d->ops->drop(d, IOS_DEV_DROP_BACKLOG);
			return 0;
		}
		vrio_counter_add(&d->stats.err_protocol, 1);
		return ios_session_garbage(s, "%s: more than %u requests outstanding", d->name,
					   d->max_outstanding);
	}
	if (d->ops->frame_now && a->state == IOS_ATT_READY && a->home == s->r &&
	    d->ops->frame_now(d, f, payload))
		return 0;
	req = ios_req_get(s->r);
	if (!req)
		return ios_session_reject(s, -ENOMEM, "out of memory for a request");
	req->s = s;
	req->t_start = s->r->now;
	req->t_submit = req->t_done = 0;
	req->in_len = f->len;
	req->in_arg = f->arg;
	memset(&req->frame, 0, sizeof(req->frame));
	/* A REQ is answered by a RESP with its id; a PKT by nothing. */
	if (f->type == VRIO_FRAME_REQ)
		req->frame.type = VRIO_FRAME_RESP;
	req->frame.queue = f->queue;
	req->frame.dev = f->dev;
	req->frame.id = f->id;
	a->outstanding++;
	s->reqs_taken += f->type == VRIO_FRAME_REQ;
	ios_device_submit(a, req, payload);
	return 0;
}

void ios_session_resp(struct ios_reactor *r, struct ios_req *req)
{
	struct ios_attach *a = req->att;
	struct ios_session *s = req->s;

	if (req->frame.type == 0 || a->detached || !s->conn) {
		a->outstanding--;
		ios_req_put(r, req);
		att_maybe_release(a);
		return;
	}
	ready_push(s, a, req);
}

void ios_session_to_guest(struct ios_reactor *r, struct ios_device *d, struct ios_req *req)
{
	struct ios_session *s = NULL;
	struct ios_attach *a = NULL;

	/* Only the front reactor may look at the owner (device.c). */
	if (__atomic_load_n(&d->front, __ATOMIC_ACQUIRE) == r)
		s = __atomic_load_n(&d->owner, __ATOMIC_ACQUIRE);
	/* Draining: a packet from the uplink would keep the session busy
	 * for ever; the guest's port is going down anyway. */
	if (s && s->conn && s->state == IOS_SESSION_READY && !ios_rctx(r)->draining)
		a = ios_session_att(s, d->id);
	if (!a || a->state == IOS_ATT_PLACING || a->state == IOS_ATT_RELEASING ||
	    a->outstanding >= d->max_outstanding) {
		if (d->ops->drop)
			d->ops->drop(d, a ? IOS_DEV_DROP_BACKLOG : IOS_DEV_DROP_DOWN);
		ios_req_put(r, req);
		return;
	}
	req->s = s;
	req->att = a;
	a->outstanding++;
	ready_push(s, a, req);
}

int ios_session_to_guest_now(struct ios_reactor *r, struct ios_device *d,
			     const struct vrio_frame *f, const struct iovec *iov, int iovcnt)
{
	struct ios_session *s;
	struct ios_attach *a;

	if (__atomic_load_n(&d->front, __ATOMIC_ACQUIRE) != r)
		return -EAGAIN;
	s = __atomic_load_n(&d->owner, __ATOMIC_ACQUIRE);
	/* A peer that did not take the last flush whole is behind: the
	 * request path bounds what waits for it (max_outstanding). */
	if (!s || !s->conn || s->state != IOS_SESSION_READY || ios_rctx(r)->draining ||
	    ios_session_queued(s) || s->flush_pending)
		return -EAGAIN;
	a = ios_session_att(s, d->id);
	if (!a || a->state == IOS_ATT_PLACING || a->state == IOS_ATT_RELEASING)
		return -EAGAIN;
	/* A full queue or a dead connection: the request path flushes and
	 * tries again, or the next poll closes. */
	if (s->conn->ops->send(s->conn, f, iov, iovcnt) < 0)
		return -EAGAIN;
	s->sent_now++;
	return 0;
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
	case VRIO_FRAME_PKT:
		return session_data(s, f, payload);
	case VRIO_FRAME_CTRL:
		return ios_control_frame(s, f, payload);
	default:
		return ios_session_garbage(s, "unexpected %s frame", vrio_frame_type_name(f->type));
	}
}

/* ---- sending ---- */

static int session_flush(struct ios_session *s)
{
	int rc = s->conn->ops->flush(s->conn);

	if (rc < 0)
		return rc;
	s->flush_pending = rc > 0;
	if (rc == 0)
		drop_list(s, &s->unflushed, NULL);
	return 0;
}

/* `now`: one clock read per batch sent (session_tx), not one per frame:
 * the frames of a batch leave with the same send(). */
static void sent(struct ios_session *s, struct ios_req *req, uint64_t now)
{
	struct ios_attach *a = req->att;
	struct ios_device *d;

	if (!a)
		return;
	d = a->dev;
	a->outstanding--;
	vrio_hist_add(&d->stats.latency, now - req->t_start);
	if (req->t_submit && req->t_done >= req->t_submit && req->t_submit >= req->t_start) {
		vrio_hist_add(&d->stats.hop[IOS_HOP_QUEUE], req->t_submit - req->t_start);
		vrio_hist_add(&d->stats.hop[IOS_HOP_BACKEND], req->t_done - req->t_submit);
		vrio_hist_add(&d->stats.hop[IOS_HOP_RESPOND], now - req->t_done);
	}
	if (d->ops->sent)
		d->ops->sent(d, req->frame.len);
	att_maybe_release(a);
}

/* The next frame to send: a CTRL reply once the device frames queued
 * before it are gone, else the first frame of the attachment whose turn
 * it is. */
static struct ios_req *tx_next(struct ios_session *s)
{
	struct ios_req *req = TAILQ_FIRST(&s->backlog);
	struct ios_attach *a = TAILQ_FIRST(&s->ready);

	if (!a || (req && s->tx_data_done >= req->tx_after))
		return req;
	return TAILQ_FIRST(&a->ready);
}

/* req is sent: off its list; its attachment, if more is ready, goes to
 * the back of the ring (one frame a turn, whatever the depth). */
static void tx_taken(struct ios_session *s, struct ios_req *req)
{
	struct ios_attach *a = req->att;

	if (!a) {
		TAILQ_REMOVE(&s->backlog, req, link);
		return;
	}
	TAILQ_REMOVE(&a->ready, req, link);
	TAILQ_REMOVE(&s->ready, a, ready_link);
	s->tx_data_done++;
	if (!TAILQ_EMPTY(&a->ready))
		TAILQ_INSERT_TAIL(&s->ready, a, ready_link);
}

/* Sends what is ready and flushes. Returns the frames sent or -errno. */
static int session_tx(struct ios_session *s)
{
	struct vrio_conn *c = s->conn;
	bool flushed = false;
	struct ios_req *req;
	struct iovec iov[2];
	uint64_t now = 0;
	int n = 0, rc, cnt;

	while ((req = tx_next(s))) {
		iov[0].iov_base = req->buf;
		iov[0].iov_len = req->frame.len;
		cnt = req->frame.len ? 1 : 0;
		if (req->lent_len && req->lent_len <= req->frame.len) {
			iov[0].iov_base = (void *)req->lent;
			iov[0].iov_len = req->lent_len;
			iov[1].iov_base = req->buf + req->lent_len;
			iov[1].iov_len = req->frame.len - req->lent_len;
			cnt = 2;
		}
		/* A device's frame stays on `unflushed`, its buffer untouched,
		 * until a flush returns 0 (or the connection closes): the
		 * transport may keep pointers to it rather than copy. A CTRL
		 * reply is copied (a trunk's handover takes the connection
		 * after dropping what was sent on it). */
		rc = req->att ? vrio_conn_send_lent(c, &req->frame, iov, cnt) :
				c->ops->send(c, &req->frame, iov, cnt);
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
		tx_taken(s, req);
		TAILQ_INSERT_TAIL(&s->unflushed, req, link);
		if (!now)
			now = vrio_now_ns();
		sent(s, req, now);
		n++;
	}
	n += (int)s->sent_now;
	s->sent_now = 0;
	if (n || s->flush_pending || !TAILQ_EMPTY(&s->unflushed) || vrio_conn_pending(c)) {
		rc = session_flush(s);
		if (rc < 0)
			return rc;
		if (s->host >= 0)
			vrio_conn_stats_publish(&ios_rctx(s->r)->conn_pub[s->host], &s->conn_last, c);
	}
	return n;
}

/* ---- liveness ---- */

static void session_heartbeat(struct ios_session *s)
{
	Vrio__Ctrl m = VRIO__CTRL__INIT;
	Vrio__Heartbeat hb = VRIO__HEARTBEAT__INIT;
	uint64_t *sent;

	/* Frames waiting to go say as much, once the peer takes them. */
	if (s->state != IOS_SESSION_READY || ios_session_queued(s))
		return;
	sent = &ios_rctx(s->r)->hb_sent[s->host];
	vrio_counter_add(sent, 1);
	hb.seq = *sent;
	m.msg_case = VRIO__CTRL__MSG_HEARTBEAT;
	m.heartbeat = &hb;
	/* Out of memory: the next interval tries again. */
	ios_session_send_ctrl(s, &m);
}

bool ios_session_may_write(const struct ios_session *s, uint64_t now)
{
	return vrio_lease_valid(&s->lease, now);
}

/* Every interval once the hello is answered, whatever else goes: the
 * stamp the host echoes to renew the lease. */
void ios_session_fenced(struct ios_session *s)
{
	__atomic_store_n(&s->lease_fenced, true, __ATOMIC_RELEASE);
}

void ios_session_lease_ping(struct ios_session *s)
{
	Vrio__Ctrl m = VRIO__CTRL__INIT;
	Vrio__Heartbeat hb = VRIO__HEARTBEAT__INIT;
	uint64_t stamp;

	if (s->state != IOS_SESSION_READY || !__atomic_load_n(&s->lease.required, __ATOMIC_RELAXED))
		return;
	stamp = vrio_lease_ping(&s->lease, s->r->now);
	if (!stamp)
		return;
	hb.lease_stamp = stamp;
	hb.lease_ms = (uint32_t)(s->lease.lease_ns / 1000000);
	m.msg_case = VRIO__CTRL__MSG_HEARTBEAT;
	m.heartbeat = &hb;
	/* Out of memory: the next turn tries again, the lease may lapse. */
	ios_session_send_ctrl(s, &m);
}

/*
 * The lease: a lapse alone only stops writes (ios_session_may_write), and
 * a later echo renews it; that is safe because the host echoes only while
 * it trusts this connection, and an echo grants no more than the bound
 * the host itself waits out. Echoes queue behind data frames, so a busy
 * connection (a net stream on a slow machine) can lapse with nothing
 * wrong. Once a write was dropped, though, the connection ends, so the
 * host sends it again (here after a reconnect, or to its standby).
 */
static int session_lease_check(struct ios_session *s)
{
	enum vrio_lease_state st = vrio_lease_state(&s->lease, s->r->now);
	bool lapsed = st == VRIO_LEASE_LAPSED;

	if (s->host >= 0)
		__atomic_store_n(&ios_rctx(s->r)->lease_state[s->host], (int)st, __ATOMIC_RELAXED);
	if (lapsed && !s->lease_lapsed) {
		if (s->host >= 0)
			vrio_counter_add(&ios_rctx(s->r)->lease_lapses[s->host], 1);
		VRIO_INFO("%s: the host's write lease lapsed (no echo in time): no write of it "
			  "runs until an echo renews it", s->name);
	}
	s->lease_lapsed = lapsed;
	if (!__atomic_load_n(&s->lease_fenced, __ATOMIC_ACQUIRE))
		return 0;
	session_close(s, false, lapsed ? "a write came after the host's lease lapsed" :
					 "a write came before the host's lease");
	return 1;
}

/* After the receive of a turn. Returns 1 if it closed the session. */
static int session_liveness(struct ios_session *s)
{
	char why[128];

	if (session_lease_check(s))
		return 1;
	ios_session_lease_ping(s);
	if (!s->hb_started) {
		vrio_hb_start(&s->hb, s->conn, s->r->now);
		s->hb_started = true;
		return 0;
	}
	switch (vrio_hb_check(&s->hb, s->conn, s->r->now)) {
	case VRIO_HB_DEAD:
		if (s->host >= 0)
			vrio_counter_add(&ios_rctx(s->r)->hb_timeouts[s->host], 1);
		snprintf(why, sizeof(why), "the peer sent nothing for %llu ms: declared dead",
			 (unsigned long long)vrio_hb_silent_ms(&s->hb, s->r->now));
		session_close(s, false, why);
		return 1;
	case VRIO_HB_SEND:
		session_heartbeat(s);
		return 0;
	default:
		return 0;
	}
}

/* ---- the reactor's view ---- */

static bool session_idle(const struct ios_session *s)
{
	const struct ios_attach *a;

	TAILQ_FOREACH(a, &s->atts, link)
		if (a->outstanding)
			return false;
	return !ios_session_queued(s) && !s->flush_pending;
}

static uint32_t session_outstanding(const struct ios_session *s)
{
	const struct ios_attach *a;
	uint32_t n = 0;

	TAILQ_FOREACH(a, &s->atts, link)
		n += a->outstanding;
	return n;
}

/* The goodbye of a clean stop: an Error with -ESHUTDOWN that says how many
 * REQ frames were taken, every one of them answered before it. */
static int session_goodbye(struct ios_session *s)
{
	Vrio__Ctrl m = VRIO__CTRL__INIT;
	Vrio__Error e = VRIO__ERROR__INIT;
	int rc;

	e.status = -ESHUTDOWN;
	e.message = (char *)"the io-server is shutting down";
	e.requests_taken = s->reqs_taken;
	m.msg_case = VRIO__CTRL__MSG_ERROR;
	m.error = &e;
	rc = ios_session_send_ctrl(s, &m);
	if (rc < 0)
		return rc;
	s->state = IOS_SESSION_CLOSING;
	s->close_reason[0] = '\0';
	s->linger_until = s->r->now + IOS_LINGER_NS;
	return 0;
}

/*
 * Draining (a stop): nothing more is read, so no request is taken after
 * the stop began; once every request taken has been answered and flushed,
 * the goodbye goes, then the session waits (IOS_LINGER_NS) for the peer to
 * close first, reading and dropping what it still sends, and closes.
 */
static int session_drain(struct ios_session *s)
{
	if (!s->drain_seen) {
		s->drain_seen = true;
		s->drain_outstanding = session_outstanding(s);
	}
	if (!s->conn || s->state == IOS_SESSION_CLOSING || !session_idle(s))
		return 0;
	if (s->state == IOS_SESSION_READY)
		VRIO_NOTICE("%s: stopping: answered the %u request(s) in flight at the stop "
			    "(%llu taken on this connection); saying goodbye", s->name,
			    s->drain_outstanding, (unsigned long long)s->reqs_taken);
	if (session_goodbye(s) < 0)
		ios_session_close(s, "shutting down");
	return 1;
}

static int discard_frame(void *arg, struct vrio_conn *c, const struct vrio_frame *f,
			 const void *payload)
{
	return 0;
}

/* After the goodbye: 1 once the peer closed or the wait is over. */
static bool session_lingered(struct ios_session *s)
{
	int rc;

	if (!s->linger_until)
		return true;
	rc = s->conn->ops->poll(s->conn, discard_frame, s, IOS_POLL_BUDGET);
	if (rc < 0) {
		snprintf(s->close_reason, sizeof(s->close_reason), "%s",
			 "closed by the peer after the goodbye");
		return true;
	}
	if (s->r->now >= s->linger_until) {
		snprintf(s->close_reason, sizeof(s->close_reason), "%s",
			 "the peer kept the connection open after the goodbye");
		return true;
	}
	return false;
}

/* The peer is an io-server that trunks with us: its connection leaves the
 * session for the trunk's reactor. It sent nothing after its Hello (it
 * waits for ours), so nothing read is left behind. */
static void session_handover(struct ios_session *s)
{
	struct vrio_conn *c = s->conn;

	VRIO_INFO("%s: %s", s->name, s->close_reason);
	ios_reactor_watch(s->r, &s->ev, 0);
	s->conn = NULL;
	s->state = IOS_SESSION_DEAD;
	drop_list(s, &s->backlog, NULL);
	ready_drop(s, NULL);
	drop_list(s, &s->unflushed, NULL);
	ios_trunk_accept(s->trunk, c, s->trunk_nonce, s->trunk_nonce_len);
	if (TAILQ_EMPTY(&s->atts))
		ios_session_free(s);
}

static int session_poll(struct ios_poller *p)
{
	struct ios_session *s = container_of(p, struct ios_session, poller);
	bool draining = ios_rctx(s->r)->draining, open = s->conn != NULL;
	char why[64];
	int work = 0, rc;

	if (s->conn && !draining &&
	    (s->state == IOS_SESSION_HELLO || s->state == IOS_SESSION_READY)) {
		s->close_reason[0] = '\0';
		rc = s->conn->ops->poll(s->conn, session_recv, s, IOS_POLL_BUDGET);
		if (rc < 0 && s->trunk) {
			session_handover(s);
			return 1;
		}
		if (rc < 0) {
			if (rc == -ECONNRESET && !s->close_reason[0])
				session_close(s, false, "closed by the peer");
			else if (!s->close_reason[0])
				ios_session_reject(s, rc, "receive: %s", strerror(-rc));
			if (s->close_reason[0])
				session_close(s, true, s->close_reason);
		} else {
			work += rc;
		}
		if (s->conn)
			work += session_liveness(s);
	} else if (s->conn && draining && s->state == IOS_SESSION_READY && s->hb_started &&
		   vrio_hb_send_due(&s->hb, s->conn, s->r->now)) {
		/* A drain may wait on slow requests for longer than the
		 * peer's dead_after: it must not take us for hung. */
		session_heartbeat(s);
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
	if (draining)
		work += session_drain(s);
	if (s->conn && s->state == IOS_SESSION_CLOSING && !ios_session_queued(s) &&
	    !s->flush_pending) {
		if (s->linger_until) {
			if (session_lingered(s))
				session_close(s, false, s->close_reason);
		} else {
			session_close(s, s->close_reason[0] != '\0',
				      s->close_reason[0] ? s->close_reason : "shutting down");
		}
	}
	if (!s->conn && TAILQ_EMPTY(&s->atts)) {
		ios_session_free(s);
		return 1;
	}
	/* A close is work: it posts the release of its devices. */
	return work + (open && !s->conn);
}

/* The events the session needs while its reactor sleeps. */
static int session_sleep(struct ios_poller *p)
{
	struct ios_session *s = container_of(p, struct ios_session, poller);
	bool reading = !ios_rctx(s->r)->draining &&
		       (s->state == IOS_SESSION_HELLO || s->state == IOS_SESSION_READY);
	uint32_t ev = 0;
	int t;

	if (!s->conn)
		return -1;
	if (s->sent_now)
		return 0;	/* queued since our turn: flush first */
	if (s->flush_pending || ios_session_queued(s))
		ev |= EPOLLOUT;
	if (reading)
		ev |= EPOLLIN;
	if (s->linger_until && !(ev & EPOLLOUT)) {
		/* After the goodbye: the peer's close, or the end of the wait. */
		ios_reactor_watch(s->r, &s->ev, EPOLLIN);
		if (s->linger_until <= s->r->now)
			return 0;
		return (int)((s->linger_until - s->r->now) / 1000000 + 1);
	}
	ios_reactor_watch(s->r, &s->ev, ev);
	/* A doorbell to ask for (shm); frames already there, or an error for
	 * the next poll to report: no sleep. */
	if (reading && vrio_conn_sleep_prepare(s->conn) != 0)
		return 0;
	/* A transport without a descriptor can only be polled; a layer's
	 * timer (a retransmission) must not wait for us. */
	t = vrio_conn_timeout_ms(s->conn);
	if (ev && s->ev.fd < 0 && (t < 0 || t > 1))
		t = 1;
	if (s->hb_started && (reading || s->state == IOS_SESSION_READY)) {
		int th = reading ? vrio_hb_timeout_ms(&s->hb, s->r->now) :
				   vrio_hb_send_timeout_ms(&s->hb, s->r->now);

		if (t < 0 || th < t)
			t = th;
	}
	if (reading && s->state == IOS_SESSION_READY && s->lease.required) {
		int tl = vrio_lease_ping_timeout_ms(&s->lease, s->r->now);

		if (t < 0 || tl < t)
			t = tl;
	}
	return t;
}

void ios_session_adopt(struct ios_reactor *r, struct ios_session *s)
{
	s->r = r;
	TAILQ_INSERT_TAIL(&ios_rctx(r)->sessions, s, link);
	s->poller.name = s->name;
	s->poller.poll = session_poll;
	s->poller.sleep = session_sleep;
	ios_poller_register(r, &s->poller);
	ios_reactor_watch(r, &s->ev, EPOLLIN);
	if (ios_rctx(r)->draining)
		ios_session_close(s, "shutting down");
}

void ios_sessions_drain(struct ios_reactor *r, void *arg)
{
	ios_rctx(r)->draining = true;
}

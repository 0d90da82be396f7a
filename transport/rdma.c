/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * RDMA backend: one reliable-connected queue pair per connection, set up
 * with rdma_cm ("ip:port" of an RDMA netdev). The connect and accept carry a
 * hello (magic, version, receive buffer count and size) in their private
 * data, which each side checks.
 *
 * Messages. Every SEND carries 32 bits of immediate data: the message type,
 * the receive buffers re-posted since the last message (credits) and the
 * bulk frames delivered since the last message (see below). Types:
 *  - FRAME: a whole frame (header + payload) that fits the peer's receive
 *    buffers, copied into a registered send buffer;
 *  - DESC: a larger frame. The sender copies it into a registered bulk
 *    buffer and sends its address, rkey and length; the receiver RDMA READs
 *    it into a bulk buffer of its own, delivers it in place, and reports it
 *    in a later message so the sender can reuse the buffer. Bulk buffers are
 *    used and released in order, so a count says which;
 *  - CREDIT: no payload, only the two counts.
 * Received messages are delivered in arrival order; a DESC holds back what
 * follows it until its READ is complete. Payloads are lent to the callback
 * in place and the buffer is re-posted afterwards.
 *
 * Flow control. A SEND is posted only against a credit (a receive buffer
 * the peer has posted), so it never meets a receiver-not-ready. A side owes
 * the peer the buffers it re-posted; the count rides on every message, and a
 * CREDIT message carries it when a quarter of the buffers is owed (or a bulk
 * frame was delivered) and nothing else goes out. CREDIT messages use
 * credits too, so a side may spend its last credit only on a message that
 * also grants credits: then the last message sent always left its receiver
 * able to answer, and the two sides can never both be out of credits.
 *
 * Wakeups. Both completion queues (receive; send, READ and credit) share
 * a completion channel; conn_fd() is an epoll descriptor over it and the
 * rdma_cm event channel (where a disconnect shows). An armed queue's next
 * completion raises an event: an interrupt and a kernel wake-up (with
 * soft-RoCE, arming is a system call too), and reading it is one more. So
 * the receive queue is armed only by sleep_prepare(), when the owner is
 * about to sleep: two polling sides raise none, and poll() reads the
 * channel only while a queue is armed or, for the cm channel, every
 * RDMA_CM_EVERY polls. An owner that never calls sleep_prepare() gets the
 * receive queue armed by poll() whenever it found fewer frames than its
 * budget, as before. The send queue is armed only while the owner waits
 * for a READ or for room to send. After arming, the queues are looked at
 * once more, so that a completion that raced with the arming is not left
 * without an event. Frames that flush() or send() reaped raised no event:
 * timeout_ms() is 0 while one is deliverable.
 *
 * Close waits (bounded) for the posted sends and for the peer to have read
 * every bulk frame, so that what was flushed reaches the peer.
 */
#include <arpa/inet.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <infiniband/verbs.h>
#include <netinet/in.h>
#include <poll.h>
#include <rdma/rdma_cma.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "addr.h"
#include "log.h"
#include "transport_internal.h"

#define RDMA_MAGIC		0x4d445256u	/* "VRDM" as LE bytes */
#define RDMA_VERSION		1
#define RDMA_NRECV		128u		/* receive buffers (a power of two) */
#define RDMA_NSEND		128u		/* send buffers (a power of two) */
#define RDMA_BUF_SIZE		(64u << 10)	/* each of them */
#define RDMA_NBULK		4u		/* bulk buffers per direction (power of two) */
#define RDMA_BULK_MIN		(256u << 10)
#define RDMA_BULK_MAX		(VRIO_FRAME_HDR_LEN + VRIO_FRAME_MAX_PAYLOAD)
#define RDMA_NCREDIT		8u		/* CREDIT messages in flight at most */
#define RDMA_CREDIT_AT		(RDMA_NRECV / 4)
/* What a peer may announce: at least 3 buffers (a CREDIT threshold of at
 * least 2 keeps CREDIT messages from answering each other forever), and
 * room for a DESC. */
#define RDMA_PEER_NRECV_MIN	4u
#define RDMA_PEER_NRECV_MAX	0xffffu
#define RDMA_PEER_BUF_MIN	256u
#define RDMA_PEER_BUF_MAX	(1u << 30)
#define RDMA_CONNECT_MS		5000
#define RDMA_RESOLVE_MS		2000
#define RDMA_CLOSE_DRAIN_MS	1000
#define RDMA_CQ_BATCH		32
#define RDMA_CQ_ACK_BATCH	64u
#define RDMA_CM_EVERY		256u	/* polls between looks at the cm channel */

/* Immediate data: type, bulk frames done, reserved (zero), credits. */
#define IMM_TYPE_SHIFT		30
#define IMM_DONE_SHIFT		24
#define IMM_DONE_MAX		0x3fu
#define IMM_RSVD_MASK		0x00ff0000u
#define IMM_GRANT_MAX		0xffffu

enum rdma_msg { MSG_FRAME = 0, MSG_DESC = 1, MSG_CREDIT = 2 };

/* What a work request was, in the top byte of its wr_id. */
enum rdma_wr_kind { WR_RECV = 0, WR_SEND = 1, WR_CREDIT = 2, WR_READ = 3 };
#define WR_ID(kind, idx)	(((uint64_t)(kind) << 56) | (uint32_t)(idx))
#define WR_KIND(id)		((unsigned)((id) >> 56))
#define WR_IDX(id)		((uint32_t)(id))

/* Private data of the connect and of the accept, little-endian. */
struct rdma_hello {
	uint32_t magic;
	uint8_t version;
	uint8_t rsvd[3];
	uint32_t nrecv;		/* receive buffers posted */
	uint32_t buf_size;	/* bytes each */
} __attribute__((packed));

/* Payload of a DESC message, little-endian. */
struct rdma_desc {
	uint64_t addr;
	uint32_t rkey;
	uint32_t len;		/* the whole frame, header included */
} __attribute__((packed));

struct rdma_region {
	uint8_t *base;
	size_t cap;
	struct ibv_mr *mr;
};

enum rx_state { RX_READY, RX_WAIT, RX_READING };

/* A completion queue and its notification state. */
struct rdma_cq {
	struct ibv_cq *cq;
	bool armed;		/* its next completion raises an event */
	unsigned unacked;	/* events taken, not acknowledged yet */
	uint64_t events;	/* taken, for the tests */
};

/* A received message waiting for delivery, in arrival order. */
struct rdma_rx {
	uint32_t slot;		/* the receive buffer */
	uint32_t len;		/* frame length, header included */
	uint8_t kind;		/* MSG_FRAME or MSG_DESC */
	uint8_t state;
	uint16_t target;	/* DESC: the bulk buffer READ into */
	uint32_t rkey;
	uint64_t raddr;
};

struct rdma_conn {
	struct vrio_conn base;
	struct rdma_event_channel *ch;
	struct rdma_cm_id *id;
	struct ibv_pd *pd;
	struct ibv_comp_channel *cc;
	/* Receives wake the owner; sends, READs and credit messages complete
	 * on their own queue, armed only when the owner waits for one of them
	 * (a READ, or room to send), so that a sleeping owner is not woken by
	 * each of its own sends. */
	struct rdma_cq rcq, scq;
	int epfd;
	int err;		/* 0, or why the connection is dead */
	bool established;
	bool starved;		/* send() refused for want of credits or buffers */
	bool rx_broken;		/* the peer sent garbage: receive nothing more */
	/* The owner calls sleep_prepare() before it sleeps: poll() leaves the
	 * receive queue unarmed. */
	bool prepares;
	unsigned quiet_polls;	/* polls since the channels were last read */

	/* Receive side. */
	struct rdma_region rbuf;
	struct ibv_recv_wr rwr[RDMA_NRECV];
	struct ibv_sge rsge[RDMA_NRECV];
	struct rdma_rx rx[RDMA_NRECV];
	uint32_t rx_head, rx_tail;	/* ring of arrived messages */
	uint32_t rx_read;		/* next entry to look at for a READ */
	uint32_t owed;			/* buffers re-posted, not granted yet */
	uint32_t done_owed;		/* bulk frames delivered, not reported */
	struct rdma_region tgt[RDMA_NBULK];
	uint32_t tgt_head, tgt_tail;
	uint8_t initiator_depth;

	/* Send side. */
	struct rdma_region sbuf;
	struct ibv_send_wr swr[RDMA_NSEND];
	struct ibv_sge ssge[RDMA_NSEND];
	uint32_t s_head, s_post, s_tail;	/* filled, posted, completed */
	uint32_t credits;		/* receive buffers the peer has for us */
	uint32_t peer_nrecv;
	size_t frame_max;		/* largest frame sent as FRAME */
	struct rdma_region bulk[RDMA_NBULK];
	uint32_t b_head, b_tail;	/* filled, reported done by the peer */
	unsigned credit_inflight;
};

struct rdma_listener {
	struct vrio_listener base;
	struct rdma_event_channel *ch;
	struct rdma_cm_id *id;
};

static struct rdma_conn *to_rdma(struct vrio_conn *c)
{
	return container_of(c, struct rdma_conn, base);
}

static struct rdma_listener *to_rdmal(struct vrio_listener *l)
{
	return container_of(l, struct rdma_listener, base);
}

static void addr_name(const struct sockaddr *sa, char *buf, size_t len)
{
	char host[INET6_ADDRSTRLEN] = "?";

	if (sa && sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const void *)sa;

		inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
		snprintf(buf, len, "%s:%u", host, ntohs(in->sin_port));
	} else if (sa && sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const void *)sa;

		inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
		snprintf(buf, len, "[%s]:%u", host, ntohs(in6->sin6_port));
	} else {
		snprintf(buf, len, "?");
	}
}

static int set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -errno;
	return 0;
}

static int64_t ms_left(const struct timespec *deadline)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (int64_t)(deadline->tv_sec - now.tv_sec) * 1000 +
	       (deadline->tv_nsec - now.tv_nsec) / 1000000;
}

static void deadline_in(struct timespec *d, unsigned ms)
{
	clock_gettime(CLOCK_MONOTONIC, d);
	d->tv_sec += ms / 1000;
	d->tv_nsec += (long)(ms % 1000) * 1000000;
	if (d->tv_nsec >= 1000000000) {
		d->tv_sec++;
		d->tv_nsec -= 1000000000;
	}
}

static int cm_event_errno(const struct rdma_cm_event *ev)
{
	switch (ev->event) {
	case RDMA_CM_EVENT_REJECTED:
		return -ECONNREFUSED;
	case RDMA_CM_EVENT_ADDR_ERROR:
	case RDMA_CM_EVENT_UNREACHABLE:
		return -EHOSTUNREACH;
	case RDMA_CM_EVENT_ROUTE_ERROR:
		return -ENETUNREACH;
	case RDMA_CM_EVENT_CONNECT_ERROR:
		return -ECONNABORTED;
	case RDMA_CM_EVENT_DEVICE_REMOVAL:
		return -ENODEV;
	default:
		return -EPROTO;
	}
}

/*
 * Waits (until the deadline) for the next event on a connection's own
 * channel. 0 with *out set when it is `want` (the caller acknowledges it),
 * or -errno, which the caller reports (a refused connect is no news to log
 * here: the owner retries and says so).
 */
/* cancel_fd: as connect()'s (-1: none). */
static int cm_wait(struct rdma_event_channel *ch, enum rdma_cm_event_type want,
		   const struct timespec *deadline, int cancel_fd, const char *name,
		   struct rdma_cm_event **out)
{
	struct rdma_cm_event *ev;
	int64_t left;
	int rc;

	for (;;) {
		if (rdma_get_cm_event(ch, &ev) == 0)
			break;
		if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
			return -errno;
		left = ms_left(deadline);
		if (left <= 0)
			return -ETIMEDOUT;
		rc = vrio_connect_wait(ch->fd, POLLIN, cancel_fd, (int)left);
		if (rc < 0 && rc != -EINTR)
			return rc;
	}
	if (ev->event != want) {
		rc = cm_event_errno(ev);
		if (rc == -EPROTO)
			VRIO_ERR("rdma %s: %s while waiting for %s", name,
				 rdma_event_str(ev->event), rdma_event_str(want));
		rdma_ack_cm_event(ev);
		return rc;
	}
	*out = ev;
	return 0;
}

static void hello_init(struct rdma_hello *h)
{
	memset(h, 0, sizeof(*h));
	h->magic = htole32(RDMA_MAGIC);
	h->version = RDMA_VERSION;
	h->nrecv = htole32(RDMA_NRECV);
	h->buf_size = htole32(RDMA_BUF_SIZE);
}

/* Checks the peer's hello and sizes the send side from it. */
static int hello_check(struct rdma_conn *c, const void *data, size_t len)
{
	struct rdma_hello h;
	uint32_t nrecv, size;

	/* The CM may pad private data with zeros: take the prefix. */
	if (!data || len < sizeof(h)) {
		VRIO_ERR("rdma %s: no hello in the connection's private data (%zu bytes)",
			 c->base.name, len);
		return -EPROTO;
	}
	memcpy(&h, data, sizeof(h));
	if (le32toh(h.magic) != RDMA_MAGIC) {
		VRIO_ERR("rdma %s: bad hello magic 0x%08x", c->base.name, le32toh(h.magic));
		return -EPROTO;
	}
	if (h.version != RDMA_VERSION) {
		VRIO_ERR("rdma %s: hello version %u, expected %u", c->base.name, h.version,
			 RDMA_VERSION);
		return -EPROTONOSUPPORT;
	}
	nrecv = le32toh(h.nrecv);
	size = le32toh(h.buf_size);
	if (h.rsvd[0] || h.rsvd[1] || h.rsvd[2] || nrecv < RDMA_PEER_NRECV_MIN ||
	    nrecv > RDMA_PEER_NRECV_MAX || size < RDMA_PEER_BUF_MIN || size > RDMA_PEER_BUF_MAX) {
		VRIO_ERR("rdma %s: hello announces %u receive buffers of %u bytes (expected "
			 "%u..%u buffers of %u..%u bytes)", c->base.name, nrecv, size,
			 RDMA_PEER_NRECV_MIN, RDMA_PEER_NRECV_MAX, RDMA_PEER_BUF_MIN,
			 RDMA_PEER_BUF_MAX);
		return -EPROTO;
	}
	c->peer_nrecv = nrecv;
	c->credits = nrecv;
	c->frame_max = size < RDMA_BUF_SIZE ? size : RDMA_BUF_SIZE;
	return 0;
}

static int region_alloc(struct rdma_conn *c, struct rdma_region *r, size_t len, int access)
{
	void *p;

	if (posix_memalign(&p, 4096, len))
		return -ENOMEM;
	r->mr = ibv_reg_mr(c->pd, p, len, access);
	if (!r->mr) {
		int rc = -errno;

		VRIO_ERR("rdma %s: cannot register %zu bytes: %s", c->base.name, len,
			 strerror(-rc));
		free(p);
		return rc;
	}
	r->base = p;
	r->cap = len;
	return 0;
}

static void region_free(struct rdma_region *r)
{
	if (r->mr)
		ibv_dereg_mr(r->mr);
	free(r->base);
	memset(r, 0, sizeof(*r));
}

/* Bulk buffers grow to the largest frame seen, and stay. */
static int region_reserve(struct rdma_conn *c, struct rdma_region *r, size_t need, int access)
{
	size_t cap = RDMA_BULK_MIN;

	if (r->cap >= need)
		return 0;
	while (cap < need)
		cap *= 2;
	if (cap > RDMA_BULK_MAX)
		cap = RDMA_BULK_MAX;
	region_free(r);
	return region_alloc(c, r, cap, access);
}

/* Called with the id's verbs context known: PD, CQ, QP, buffers, receives. */
static int conn_setup_qp(struct rdma_conn *c)
{
	struct ibv_qp_init_attr qa = {
		.qp_type = IBV_QPT_RC,
		.sq_sig_all = 1,
		.cap = {
			.max_send_wr = RDMA_NSEND + RDMA_NBULK + RDMA_NCREDIT,
			.max_recv_wr = RDMA_NRECV,
			.max_send_sge = 1,
			.max_recv_sge = 1,
		},
	};
	struct ibv_device_attr da;
	struct ibv_recv_wr *bad;
	struct epoll_event ev = { .events = EPOLLIN };
	unsigned i, depth;
	int rc;

	if (ibv_query_device(c->id->verbs, &da))
		return -errno;
	depth = (unsigned)(da.max_qp_init_rd_atom < da.max_qp_rd_atom ? da.max_qp_init_rd_atom
								       : da.max_qp_rd_atom);
	if (depth == 0) {
		VRIO_ERR("rdma %s: the device does not do RDMA READ", c->base.name);
		return -EOPNOTSUPP;
	}
	c->initiator_depth = (uint8_t)(depth < RDMA_NBULK ? depth : RDMA_NBULK);
	c->pd = ibv_alloc_pd(c->id->verbs);
	if (!c->pd)
		return -errno;
	c->cc = ibv_create_comp_channel(c->id->verbs);
	if (!c->cc)
		return -errno;
	rc = set_nonblock(c->cc->fd);
	if (rc < 0)
		return rc;
	c->rcq.cq = ibv_create_cq(c->id->verbs, (int)qa.cap.max_recv_wr, c, c->cc, 0);
	if (!c->rcq.cq)
		return -errno;
	c->scq.cq = ibv_create_cq(c->id->verbs, (int)qa.cap.max_send_wr, c, c->cc, 0);
	if (!c->scq.cq)
		return -errno;
	qa.send_cq = c->scq.cq;
	qa.recv_cq = c->rcq.cq;
	if (rdma_create_qp(c->id, c->pd, &qa))
		return -errno;

	rc = region_alloc(c, &c->rbuf, (size_t)RDMA_NRECV * RDMA_BUF_SIZE, IBV_ACCESS_LOCAL_WRITE);
	if (rc < 0)
		return rc;
	rc = region_alloc(c, &c->sbuf, (size_t)RDMA_NSEND * RDMA_BUF_SIZE, 0);
	if (rc < 0)
		return rc;
	for (i = 0; i < RDMA_NRECV; i++) {
		c->rsge[i] = (struct ibv_sge){
			.addr = (uintptr_t)(c->rbuf.base + (size_t)i * RDMA_BUF_SIZE),
			.length = RDMA_BUF_SIZE,
			.lkey = c->rbuf.mr->lkey,
		};
		c->rwr[i] = (struct ibv_recv_wr){
			.wr_id = WR_ID(WR_RECV, i),
			.sg_list = &c->rsge[i],
			.num_sge = 1,
			.next = i + 1 < RDMA_NRECV ? &c->rwr[i + 1] : NULL,
		};
	}
	for (i = 0; i < RDMA_NSEND; i++) {
		c->ssge[i] = (struct ibv_sge){
			.addr = (uintptr_t)(c->sbuf.base + (size_t)i * RDMA_BUF_SIZE),
			.lkey = c->sbuf.mr->lkey,
		};
		c->swr[i] = (struct ibv_send_wr){
			.wr_id = WR_ID(WR_SEND, i),
			.sg_list = &c->ssge[i],
			.num_sge = 1,
			.opcode = IBV_WR_SEND_WITH_IMM,
			.send_flags = IBV_SEND_SIGNALED,
		};
	}
	rc = ibv_post_recv(c->id->qp, &c->rwr[0], &bad);
	if (rc)
		return -rc;
	for (i = 0; i < RDMA_NRECV; i++)
		c->rwr[i].next = NULL;

	c->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (c->epfd < 0)
		return -errno;
	ev.data.fd = c->cc->fd;
	if (epoll_ctl(c->epfd, EPOLL_CTL_ADD, c->cc->fd, &ev) < 0)
		return -errno;
	ev.data.fd = c->ch->fd;
	if (epoll_ctl(c->epfd, EPOLL_CTL_ADD, c->ch->fd, &ev) < 0)
		return -errno;
	if (ibv_req_notify_cq(c->rcq.cq, 0))
		return -errno;
	c->rcq.armed = true;
	return 0;
}

static struct rdma_conn *conn_alloc(void)
{
	struct rdma_conn *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->base.ops = &vrio_rdma_transport;
	c->epfd = -1;
	return c;
}

/* Frees everything; disconnects first, after a bounded wait for the sends
 * already posted, so that the last frames reach the peer. */
static void conn_destroy(struct rdma_conn *c);

static void conn_params(struct rdma_conn *c, struct rdma_conn_param *p, const struct rdma_hello *h)
{
	memset(p, 0, sizeof(*p));
	p->private_data = h;
	p->private_data_len = sizeof(*h);
	p->responder_resources = c->initiator_depth;
	p->initiator_depth = c->initiator_depth;
	p->retry_count = 7;
	/* Credits make a receiver-not-ready impossible: one is a bug, and the
	 * connection should fail loudly rather than stall. */
	p->rnr_retry_count = 0;
}

/* ---- listen, accept, connect ---- */

static int rd_listen(const char *addr, struct vrio_listener **out)
{
	struct sockaddr_storage ss;
	struct rdma_listener *l;
	socklen_t sslen;
	int rc;

	rc = vrio_parse_hostport(addr, &ss, &sslen);
	if (rc < 0) {
		VRIO_ERR("rdma %s: not a host:port address", addr);
		return rc;
	}
	l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	l->base.ops = &vrio_rdma_transport;
	snprintf(l->base.name, sizeof(l->base.name), "%s", addr);
	l->ch = rdma_create_event_channel();
	if (!l->ch) {
		rc = -errno;
		VRIO_ERR("rdma %s: no rdma_cm event channel (no RDMA device?): %s", addr,
			 strerror(-rc));
		goto err_free;
	}
	rc = set_nonblock(l->ch->fd);
	if (rc < 0)
		goto err_ch;
	if (rdma_create_id(l->ch, &l->id, l, RDMA_PS_TCP)) {
		rc = -errno;
		goto err_ch;
	}
	if (rdma_bind_addr(l->id, (struct sockaddr *)&ss) || rdma_listen(l->id, 64)) {
		rc = -errno;
		VRIO_ERR("rdma %s: cannot listen: %s", addr, strerror(-rc));
		goto err_id;
	}
	*out = &l->base;
	return 0;
err_id:
	rdma_destroy_id(l->id);
err_ch:
	rdma_destroy_event_channel(l->ch);
err_free:
	free(l);
	return rc;
}

/* Takes over a connection request's id (acknowledged already). Returns 0,
 * or -errno with the id rejected and destroyed. */
static int accept_one(struct rdma_cm_id *id, const void *pdata, size_t plen, uint8_t peer_init,
		      uint8_t peer_resp, struct vrio_conn **out)
{
	struct rdma_conn_param param;
	struct rdma_cm_event *ev;
	struct timespec deadline;
	struct rdma_hello h;
	struct rdma_conn *c;
	int rc;

	c = conn_alloc();
	if (!c) {
		rdma_reject(id, NULL, 0);
		rdma_destroy_id(id);
		return -ENOMEM;
	}
	c->id = id;
	addr_name(rdma_get_peer_addr(id), c->base.name, sizeof(c->base.name));
	rc = hello_check(c, pdata, plen);
	if (rc < 0)
		goto err_reject;
	c->ch = rdma_create_event_channel();
	if (!c->ch) {
		rc = -errno;
		goto err_reject;
	}
	rc = set_nonblock(c->ch->fd);
	if (rc < 0)
		goto err_reject;
	/* From here on this connection's events come to its own channel. */
	if (rdma_migrate_id(id, c->ch)) {
		rc = -errno;
		goto err_reject;
	}
	rc = conn_setup_qp(c);
	if (rc < 0) {
		VRIO_ERR("rdma %s: cannot set up the queue pair: %s", c->base.name, strerror(-rc));
		goto err_reject;
	}
	hello_init(&h);
	conn_params(c, &param, &h);
	/* Never more READs in flight than the peer can answer, and the other
	 * way round. */
	if (param.responder_resources > peer_init)
		param.responder_resources = peer_init;
	if (param.initiator_depth > peer_resp)
		param.initiator_depth = peer_resp;
	if (param.initiator_depth == 0) {
		VRIO_ERR("rdma %s: the peer takes no RDMA READ", c->base.name);
		rc = -EPROTO;
		goto err_reject;
	}
	if (rdma_accept(id, &param)) {
		rc = -errno;
		VRIO_ERR("rdma %s: rdma_accept: %s", c->base.name, strerror(-rc));
		goto err;
	}
	deadline_in(&deadline, RDMA_CONNECT_MS);
	rc = cm_wait(c->ch, RDMA_CM_EVENT_ESTABLISHED, &deadline, -1, c->base.name, &ev);
	if (rc < 0) {
		VRIO_WARN("rdma %s: the connection was not established: %s", c->base.name,
			  strerror(-rc));
		goto err;
	}
	rdma_ack_cm_event(ev);
	c->established = true;
	*out = &c->base;
	return 0;
err_reject:
	rdma_reject(id, NULL, 0);
err:
	conn_destroy(c);
	return rc;
}

static int rd_accept(struct vrio_listener *vl, struct vrio_conn **out)
{
	struct rdma_listener *l = to_rdmal(vl);
	struct rdma_cm_event *ev;
	uint8_t pdata[256], peer_init, peer_resp;
	struct rdma_cm_id *id;
	size_t plen;
	int rc;

	for (;;) {
		if (rdma_get_cm_event(l->ch, &ev)) {
			if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
				return -EAGAIN;
			return -errno;
		}
		if (ev->event != RDMA_CM_EVENT_CONNECT_REQUEST) {
			/* The listener's own (an address change): nothing to do. */
			VRIO_INFO("rdma %s: %s on the listener", l->base.name,
				  rdma_event_str(ev->event));
			rdma_ack_cm_event(ev);
			continue;
		}
		id = ev->id;
		plen = ev->param.conn.private_data_len;
		if (plen > sizeof(pdata))
			plen = sizeof(pdata);
		if (plen)
			memcpy(pdata, ev->param.conn.private_data, plen);
		peer_init = ev->param.conn.initiator_depth;
		peer_resp = ev->param.conn.responder_resources;
		rdma_ack_cm_event(ev);
		rc = accept_one(id, pdata, plen, peer_init, peer_resp, out);
		/* A peer that got the handshake wrong is its own problem; a
		 * local failure is the owner's to see. */
		if (rc == -EPROTO || rc == -EPROTONOSUPPORT || rc == -ETIMEDOUT ||
		    rc == -ECONNABORTED || rc == -ECONNREFUSED)
			continue;
		return rc;
	}
}

static int rd_connect(const char *addr, int cancel_fd, struct vrio_conn **out)
{
	struct rdma_conn_param param;
	struct sockaddr_storage ss;
	struct rdma_cm_event *ev;
	struct timespec deadline;
	struct rdma_hello h;
	struct rdma_conn *c;
	socklen_t sslen;
	int rc;

	rc = vrio_parse_hostport(addr, &ss, &sslen);
	if (rc < 0)
		return rc;
	c = conn_alloc();
	if (!c)
		return -ENOMEM;
	snprintf(c->base.name, sizeof(c->base.name), "%s", addr);
	deadline_in(&deadline, RDMA_CONNECT_MS);
	c->ch = rdma_create_event_channel();
	if (!c->ch) {
		rc = -errno;
		goto err;
	}
	rc = set_nonblock(c->ch->fd);
	if (rc < 0)
		goto err;
	if (rdma_create_id(c->ch, &c->id, c, RDMA_PS_TCP)) {
		rc = -errno;
		goto err;
	}
	if (rdma_resolve_addr(c->id, NULL, (struct sockaddr *)&ss, RDMA_RESOLVE_MS)) {
		rc = -errno;
		goto err;
	}
	rc = cm_wait(c->ch, RDMA_CM_EVENT_ADDR_RESOLVED, &deadline, cancel_fd, c->base.name, &ev);
	if (rc < 0)
		goto err;
	rdma_ack_cm_event(ev);
	if (rdma_resolve_route(c->id, RDMA_RESOLVE_MS)) {
		rc = -errno;
		goto err;
	}
	rc = cm_wait(c->ch, RDMA_CM_EVENT_ROUTE_RESOLVED, &deadline, cancel_fd, c->base.name, &ev);
	if (rc < 0)
		goto err;
	rdma_ack_cm_event(ev);
	rc = conn_setup_qp(c);
	if (rc < 0) {
		VRIO_ERR("rdma %s: cannot set up the queue pair: %s", addr, strerror(-rc));
		goto err;
	}
	hello_init(&h);
	conn_params(c, &param, &h);
	if (rdma_connect(c->id, &param)) {
		rc = -errno;
		goto err;
	}
	rc = cm_wait(c->ch, RDMA_CM_EVENT_ESTABLISHED, &deadline, cancel_fd, c->base.name, &ev);
	if (rc < 0)
		goto err;
	c->established = true;
	rc = hello_check(c, ev->param.conn.private_data, ev->param.conn.private_data_len);
	rdma_ack_cm_event(ev);
	if (rc < 0)
		goto err;
	*out = &c->base;
	return 0;
err:
	conn_destroy(c);
	return rc;
}

/* ---- the data path ---- */

static void set_dead(struct rdma_conn *c, int err)
{
	if (!c->err)
		c->err = err;
}

static bool rx_deliverable(const struct rdma_conn *c)
{
	const struct rdma_rx *e;

	if (c->rx_tail == c->rx_head)
		return false;
	e = &c->rx[c->rx_tail % RDMA_NRECV];
	return e->state == RX_READY;
}

static uint32_t imm_encode(struct rdma_conn *c, enum rdma_msg type)
{
	uint32_t grant = c->owed < IMM_GRANT_MAX ? c->owed : IMM_GRANT_MAX;
	uint32_t done = c->done_owed < IMM_DONE_MAX ? c->done_owed : IMM_DONE_MAX;

	c->owed -= grant;
	c->done_owed -= done;
	return htobe32((uint32_t)type << IMM_TYPE_SHIFT | done << IMM_DONE_SHIFT | grant);
}

/* A message may use the last credit only if it grants some back. */
static bool may_take_credit(const struct rdma_conn *c)
{
	return c->credits >= 2 || (c->credits == 1 && c->owed > 0);
}

static bool credit_due(const struct rdma_conn *c)
{
	return (c->owed >= RDMA_CREDIT_AT || c->done_owed > 0) && may_take_credit(c) &&
	       c->credit_inflight < RDMA_NCREDIT;
}

static int post_credit(struct rdma_conn *c)
{
	struct ibv_send_wr wr = {
		.wr_id = WR_ID(WR_CREDIT, 0),
		.opcode = IBV_WR_SEND_WITH_IMM,
		.send_flags = IBV_SEND_SIGNALED,
	}, *bad;
	int rc;

	wr.imm_data = imm_encode(c, MSG_CREDIT);
	rc = ibv_post_send(c->id->qp, &wr, &bad);
	if (rc) {
		VRIO_ERR_RL("rdma %s: cannot post a credit message: %s", c->base.name, strerror(rc));
		set_dead(c, -rc);
		return -rc;
	}
	c->credits--;
	c->credit_inflight++;
	return 0;
}

/* A received message, in arrival order: account its counts, queue it. */
static int on_recv(struct rdma_conn *c, const struct ibv_wc *wc)
{
	uint32_t slot = WR_IDX(wc->wr_id), imm, type, done, grant;
	struct rdma_desc d;
	struct rdma_rx *e;
	struct ibv_recv_wr *bad;
	int rc;

	if (slot >= RDMA_NRECV || wc->opcode != IBV_WC_RECV || !(wc->wc_flags & IBV_WC_WITH_IMM)) {
		VRIO_ERR_RL("rdma %s: unexpected receive completion (opcode %d, flags 0x%x)",
			    c->base.name, wc->opcode, wc->wc_flags);
		return -EBADMSG;
	}
	imm = be32toh(wc->imm_data);
	type = imm >> IMM_TYPE_SHIFT;
	done = (imm >> IMM_DONE_SHIFT) & IMM_DONE_MAX;
	grant = imm & IMM_GRANT_MAX;
	if (imm & IMM_RSVD_MASK || grant > c->peer_nrecv - c->credits ||
	    done > c->b_head - c->b_tail) {
		VRIO_ERR_RL("rdma %s: bad counts 0x%08x: %u credits back (%u out), %u bulk frames "
			    "done (%u out)", c->base.name, imm, grant, c->peer_nrecv - c->credits,
			    done, c->b_head - c->b_tail);
		return -EBADMSG;
	}
	c->credits += grant;
	c->b_tail += done;
	switch (type) {
	case MSG_CREDIT:
		if (wc->byte_len != 0)
			break;
		c->rwr[slot].next = NULL;
		rc = ibv_post_recv(c->id->qp, &c->rwr[slot], &bad);
		if (rc) {
			set_dead(c, -rc);
			return -rc;
		}
		c->owed++;
		return 0;
	case MSG_FRAME:
		if (wc->byte_len < VRIO_FRAME_HDR_LEN || wc->byte_len > RDMA_BUF_SIZE)
			break;
		e = &c->rx[c->rx_head++ % RDMA_NRECV];
		*e = (struct rdma_rx){ .slot = slot, .len = wc->byte_len, .kind = MSG_FRAME };
		return 0;
	case MSG_DESC:
		if (wc->byte_len != sizeof(d))
			break;
		memcpy(&d, c->rbuf.base + (size_t)slot * RDMA_BUF_SIZE, sizeof(d));
		if (le32toh(d.len) < VRIO_FRAME_HDR_LEN || le32toh(d.len) > RDMA_BULK_MAX) {
			VRIO_ERR_RL("rdma %s: bulk frame of %u bytes", c->base.name, le32toh(d.len));
			return -EMSGSIZE;
		}
		e = &c->rx[c->rx_head++ % RDMA_NRECV];
		*e = (struct rdma_rx){
			.slot = slot,
			.len = le32toh(d.len),
			.kind = MSG_DESC,
			.state = RX_WAIT,
			.rkey = le32toh(d.rkey),
			.raddr = le64toh(d.addr),
		};
		return 0;
	default:
		break;
	}
	VRIO_ERR_RL("rdma %s: bad message: type %u, %u bytes", c->base.name, type, wc->byte_len);
	return -EBADMSG;
}

/* Reaps a completion queue. Errors mark the connection dead. */
static void reap_cq(struct rdma_conn *c, struct ibv_cq *cq)
{
	struct ibv_wc wc[RDMA_CQ_BATCH];
	struct rdma_rx *e;
	int n, i, rc;

	do {
		n = ibv_poll_cq(cq, RDMA_CQ_BATCH, wc);
		if (n < 0) {
			VRIO_ERR_RL("rdma %s: ibv_poll_cq failed", c->base.name);
			set_dead(c, -EIO);
			return;
		}
		for (i = 0; i < n; i++) {
			if (wc[i].status != IBV_WC_SUCCESS) {
				/* Flushed work after the connection went down says
				 * nothing new; the first other failure is the news. */
				if (!c->err && wc[i].status != IBV_WC_WR_FLUSH_ERR)
					VRIO_ERR_RL("rdma %s: work request failed: %s%s",
						    c->base.name, ibv_wc_status_str(wc[i].status),
						    wc[i].status == IBV_WC_RNR_RETRY_EXC_ERR ?
						    " (credit accounting broken)" : "");
				set_dead(c, -ECONNRESET);
				continue;
			}
			/* What arrived before a disconnect is still delivered;
			 * nothing after a bad message is. */
			switch (WR_KIND(wc[i].wr_id)) {
			case WR_RECV:
				if (c->rx_broken)
					break;
				rc = on_recv(c, &wc[i]);
				if (rc < 0) {
					c->rx_broken = true;
					set_dead(c, rc);
				}
				break;
			case WR_SEND:
				c->s_tail++;
				break;
			case WR_CREDIT:
				c->credit_inflight--;
				break;
			case WR_READ:
				e = &c->rx[WR_IDX(wc[i].wr_id) % RDMA_NRECV];
				e->state = RX_READY;
				break;
			default:
				set_dead(c, -EIO);
				break;
			}
		}
	} while (n == RDMA_CQ_BATCH);
}

static void reap(struct rdma_conn *c)
{
	reap_cq(c, c->rcq.cq);
	reap_cq(c, c->scq.cq);
}

/* READs the bulk frames announced, in order, while bulk buffers are free. */
static void issue_reads(struct rdma_conn *c)
{
	struct ibv_send_wr wr, *bad;
	struct ibv_sge sge;
	struct rdma_region *t;
	struct rdma_rx *e;
	int rc;

	if ((int32_t)(c->rx_read - c->rx_tail) < 0)
		c->rx_read = c->rx_tail;
	while (!c->err && c->rx_read != c->rx_head) {
		e = &c->rx[c->rx_read % RDMA_NRECV];
		if (e->kind != MSG_DESC || e->state != RX_WAIT) {
			c->rx_read++;
			continue;
		}
		if (c->tgt_head - c->tgt_tail == RDMA_NBULK)
			return;
		t = &c->tgt[c->tgt_head % RDMA_NBULK];
		rc = region_reserve(c, t, e->len, IBV_ACCESS_LOCAL_WRITE);
		if (rc < 0) {
			set_dead(c, rc);
			return;
		}
		sge = (struct ibv_sge){ .addr = (uintptr_t)t->base, .length = e->len,
					.lkey = t->mr->lkey };
		wr = (struct ibv_send_wr){
			.wr_id = WR_ID(WR_READ, c->rx_read % RDMA_NRECV),
			.sg_list = &sge,
			.num_sge = 1,
			.opcode = IBV_WR_RDMA_READ,
			.send_flags = IBV_SEND_SIGNALED,
			.wr.rdma = { .remote_addr = e->raddr, .rkey = e->rkey },
		};
		rc = ibv_post_send(c->id->qp, &wr, &bad);
		if (rc) {
			VRIO_ERR_RL("rdma %s: cannot post a READ: %s", c->base.name, strerror(rc));
			set_dead(c, -rc);
			return;
		}
		e->state = RX_READING;
		e->target = (uint16_t)(c->tgt_head % RDMA_NBULK);
		c->tgt_head++;
		c->rx_read++;
	}
}

/* Posts the frames send() queued, as one chain. */
static int post_queued(struct rdma_conn *c)
{
	struct ibv_send_wr *bad;
	uint32_t i;
	int rc;

	if (c->s_post == c->s_head)
		return 0;
	for (i = c->s_post; i != c->s_head; i++)
		c->swr[i % RDMA_NSEND].next =
			i + 1 != c->s_head ? &c->swr[(i + 1) % RDMA_NSEND] : NULL;
	rc = ibv_post_send(c->id->qp, &c->swr[c->s_post % RDMA_NSEND], &bad);
	if (rc) {
		VRIO_ERR_RL("rdma %s: cannot post sends: %s", c->base.name, strerror(rc));
		set_dead(c, -rc);
		return -rc;
	}
	c->s_post = c->s_head;
	return 0;
}

static bool send_room(const struct rdma_conn *c, size_t need)
{
	return c->s_head - c->s_tail < RDMA_NSEND && may_take_credit(c) &&
	       (need <= c->frame_max || c->b_head - c->b_tail < RDMA_NBULK);
}

static int rd_send(struct vrio_conn *vc, const struct vrio_frame *f, const struct iovec *iov,
		      int iovcnt)
{
	struct rdma_conn *c = to_rdma(vc);
	uint32_t slot = c->s_head % RDMA_NSEND;
	struct ibv_send_wr *wr = &c->swr[slot];
	struct rdma_region *b;
	struct rdma_desc d;
	size_t total = 0, need;
	uint8_t *p;
	int i, rc;

	if (c->err)
		return c->err;
	for (i = 0; i < iovcnt; i++)
		total += iov[i].iov_len;
	if (total != f->len || total > VRIO_FRAME_MAX_PAYLOAD)
		return -EINVAL;
	need = VRIO_FRAME_HDR_LEN + total;
	if (!send_room(c, need)) {
		/* What came back since the last poll or flush may be enough. */
		reap(c);
		if (c->err)
			return c->err;
		if (!send_room(c, need)) {
			c->starved = true;
			return -ENOBUFS;
		}
	}
	if (need <= c->frame_max) {
		p = c->sbuf.base + (size_t)slot * RDMA_BUF_SIZE;
		c->ssge[slot].length = (uint32_t)need;
		wr->imm_data = imm_encode(c, MSG_FRAME);
	} else {
		b = &c->bulk[c->b_head % RDMA_NBULK];
		rc = region_reserve(c, b, need, IBV_ACCESS_REMOTE_READ);
		if (rc < 0)
			return rc;
		p = b->base;
		d = (struct rdma_desc){
			.addr = htole64((uintptr_t)b->base),
			.rkey = htole32(b->mr->rkey),
			.len = htole32((uint32_t)need),
		};
		memcpy(c->sbuf.base + (size_t)slot * RDMA_BUF_SIZE, &d, sizeof(d));
		c->ssge[slot].length = sizeof(d);
		c->b_head++;
		wr->imm_data = imm_encode(c, MSG_DESC);
	}
	vrio_frame_encode(f, p);
	p += VRIO_FRAME_HDR_LEN;
	for (i = 0; i < iovcnt; i++) {
		memcpy(p, iov[i].iov_base, iov[i].iov_len);
		p += iov[i].iov_len;
	}
	c->credits--;
	c->s_head++;
	c->starved = false;
	c->base.stats.frames_tx++;
	c->base.stats.bytes_tx += need;
	return 0;
}

static int rd_flush(struct vrio_conn *vc)
{
	struct rdma_conn *c = to_rdma(vc);

	if (c->err)
		return c->err;
	reap(c);
	if (!c->err)
		post_queued(c);
	if (!c->err && credit_due(c))
		post_credit(c);
	issue_reads(c);
	return c->err;
}

/* Events on the completion and cm channels (non-blocking). */
static void take_events(struct rdma_conn *c)
{
	struct epoll_event evs[2];
	struct rdma_cm_event *cm;
	struct rdma_cq *q;
	struct ibv_cq *cq;
	void *ctx;
	int n, i;

	n = epoll_wait(c->epfd, evs, 2, 0);
	for (i = 0; i < n; i++) {
		if (evs[i].data.fd == c->cc->fd) {
			while (ibv_get_cq_event(c->cc, &cq, &ctx) == 0) {
				q = cq == c->rcq.cq ? &c->rcq : &c->scq;
				q->armed = false;
				q->events++;
				if (++q->unacked >= RDMA_CQ_ACK_BATCH) {
					ibv_ack_cq_events(q->cq, q->unacked);
					q->unacked = 0;
				}
			}
			continue;
		}
		while (rdma_get_cm_event(c->ch, &cm) == 0) {
			switch (cm->event) {
			case RDMA_CM_EVENT_DISCONNECTED:
			case RDMA_CM_EVENT_DEVICE_REMOVAL:
			case RDMA_CM_EVENT_TIMEWAIT_EXIT:
				if (!c->err)
					VRIO_INFO("rdma %s: %s", c->base.name, rdma_event_str(cm->event));
				set_dead(c, -ECONNRESET);
				break;
			default:
				break;
			}
			rdma_ack_cm_event(cm);
		}
	}
}

/* Delivers ready frames in order, re-posting their buffers in one chain. */
static int deliver(struct rdma_conn *c, vrio_recv_cb cb, void *arg, unsigned budget,
		   unsigned *done)
{
	struct ibv_recv_wr *first = NULL, *last = NULL, *bad;
	struct vrio_frame f;
	struct rdma_rx *e;
	unsigned reposted = 0;
	const uint8_t *p;
	int rc = 0, prc;

	while (*done < budget && rx_deliverable(c)) {
		e = &c->rx[c->rx_tail % RDMA_NRECV];
		p = e->kind == MSG_DESC ? c->tgt[e->target].base
					: c->rbuf.base + (size_t)e->slot * RDMA_BUF_SIZE;
		rc = vrio_frame_decode(p, &f);
		if (rc == 0 && f.len != e->len - VRIO_FRAME_HDR_LEN) {
			VRIO_ERR_RL("rdma %s: frame says %u payload bytes, message has %u",
				    c->base.name, f.len, e->len - VRIO_FRAME_HDR_LEN);
			rc = -EBADMSG;
		}
		if (rc < 0) {
			set_dead(c, rc);
			break;
		}
		rc = cb(arg, &c->base, &f, p + VRIO_FRAME_HDR_LEN);
		c->rx_tail++;
		if (e->kind == MSG_DESC) {
			c->tgt_tail++;
			c->done_owed++;
		}
		c->rwr[e->slot].next = NULL;
		if (last)
			last->next = &c->rwr[e->slot];
		else
			first = &c->rwr[e->slot];
		last = &c->rwr[e->slot];
		reposted++;
		c->base.stats.frames_rx++;
		c->base.stats.bytes_rx += e->len;
		if (rc < 0)
			break;
		(*done)++;
	}
	if (first) {
		prc = ibv_post_recv(c->id->qp, first, &bad);
		if (prc) {
			set_dead(c, -prc);
			return rc < 0 ? rc : -prc;
		}
		c->owed += reposted;
	}
	return rc;
}

/* Arms a queue that is not armed yet; true if it did. */
static bool cq_arm(struct rdma_conn *c, struct rdma_cq *q)
{
	if (q->armed || c->err)
		return false;
	if (ibv_req_notify_cq(q->cq, 0)) {
		set_dead(c, -errno);
		return false;
	}
	q->armed = true;
	return true;
}

/* The owner waits for a send-side completion: a READ to finish, or room
 * that send() or a credit message did not find. */
static bool send_events_wanted(const struct rdma_conn *c)
{
	return c->tgt_head != c->tgt_tail || c->starved ||
	       (c->credit_inflight == RDMA_NCREDIT && (c->owed || c->done_owed));
}

static int rd_poll(struct vrio_conn *vc, vrio_recv_cb cb, void *arg, unsigned budget)
{
	struct rdma_conn *c = to_rdma(vc);
	unsigned done = 0;
	bool armed;
	int rc;

	/* No queue armed: no completion event can be there. A disconnect
	 * also fails the posted work, which reap() sees. */
	if (!c->prepares || c->rcq.armed || c->scq.armed || ++c->quiet_polls >= RDMA_CM_EVERY) {
		c->quiet_polls = 0;
		take_events(c);
	}
	reap(c);
	for (;;) {
		issue_reads(c);
		rc = deliver(c, cb, arg, budget, &done);
		if (rc < 0)
			return rc;
		if (done == budget || c->err)
			break;
		/* The owner may sleep after this: arm, then look once more
		 * for what completed before the arming took effect. */
		armed = !c->prepares && cq_arm(c, &c->rcq);
		if (send_events_wanted(c))
			armed |= cq_arm(c, &c->scq);
		if (!armed)
			break;
		reap(c);
	}
	/* The peer's progress must not depend on this owner sending or
	 * flushing: give back what is due now. */
	if (!c->err && credit_due(c))
		post_credit(c);
	if (c->err && done == 0)
		return c->err;
	return (int)done;
}

/* The owner is about to sleep on conn_fd(): arm the receive queue (and the
 * send queue if a READ or room to send is awaited), then look once more
 * (poll()'s loop). 1 if frames are there to deliver, 0, or the
 * connection's error. */
static int rd_sleep_prepare(struct vrio_conn *vc)
{
	struct rdma_conn *c = to_rdma(vc);
	bool armed;

	c->prepares = true;
	for (;;) {
		/* An arrived bulk frame needs its READ issued, or nothing
		 * will complete to wake the owner. */
		issue_reads(c);
		if (c->err)
			return c->err;
		if (rx_deliverable(c))
			return 1;
		armed = cq_arm(c, &c->rcq);
		if (send_events_wanted(c))
			armed |= cq_arm(c, &c->scq);
		if (!armed)
			return 0;
		reap(c);
	}
}

static int rd_pending(struct vrio_conn *vc)
{
	struct rdma_conn *c = to_rdma(vc);

	/* A dead connection asks for a flush, which reports it. */
	return c->err || c->s_post != c->s_head || credit_due(c);
}

static int rd_timeout_ms(struct vrio_conn *vc)
{
	struct rdma_conn *c = to_rdma(vc);

	/* Frames reaped by flush() raised no event: come back for them. */
	if (c->err || rx_deliverable(c))
		return 0;
	/* Credits or buffers come back with completions, but an owner that
	 * waits only for writability would not see them. */
	return c->starved ? 1 : -1;
}

static int rd_conn_fd(struct vrio_conn *vc)
{
	return to_rdma(vc)->epfd;
}

static int rd_listener_fd(struct vrio_listener *vl)
{
	return to_rdmal(vl)->ch->fd;
}

static void cq_destroy(struct rdma_cq *q)
{
	if (!q->cq)
		return;
	if (q->unacked)
		ibv_ack_cq_events(q->cq, q->unacked);
	ibv_destroy_cq(q->cq);
}

/* Everything posted has completed, and the peer has read every bulk frame. */
static bool all_sent(const struct rdma_conn *c)
{
	return c->s_tail == c->s_post && !c->credit_inflight && c->b_tail == c->b_head;
}

static void conn_destroy(struct rdma_conn *c)
{
	struct timespec deadline;
	unsigned i;

	if (c->established && !c->err) {
		post_queued(c);
		deadline_in(&deadline, RDMA_CLOSE_DRAIN_MS);
		while (!c->err && !all_sent(c) && ms_left(&deadline) > 0) {
			reap(c);
			if (!all_sent(c))
				usleep(100);
		}
	}
	if (c->established)
		rdma_disconnect(c->id);
	if (c->id && c->id->qp)
		rdma_destroy_qp(c->id);
	cq_destroy(&c->rcq);
	cq_destroy(&c->scq);
	if (c->cc)
		ibv_destroy_comp_channel(c->cc);
	region_free(&c->rbuf);
	region_free(&c->sbuf);
	for (i = 0; i < RDMA_NBULK; i++) {
		region_free(&c->bulk[i]);
		region_free(&c->tgt[i]);
	}
	if (c->pd)
		ibv_dealloc_pd(c->pd);
	if (c->id)
		rdma_destroy_id(c->id);
	if (c->ch)
		rdma_destroy_event_channel(c->ch);
	if (c->epfd >= 0)
		close(c->epfd);
	free(c);
}

static void rd_close(struct vrio_conn *vc)
{
	if (vc)
		conn_destroy(to_rdma(vc));
}

static void rd_listener_close(struct vrio_listener *vl)
{
	struct rdma_listener *l;

	if (!vl)
		return;
	l = to_rdmal(vl);
	rdma_destroy_id(l->id);
	rdma_destroy_event_channel(l->ch);
	free(l);
}

const struct vrio_transport_ops vrio_rdma_transport = {
	.name = "rdma",
	.listen = rd_listen,
	.accept = rd_accept,
	.connect = rd_connect,
	.send = rd_send,
	.flush = rd_flush,
	.poll = rd_poll,
	.close = rd_close,
	.listener_close = rd_listener_close,
	.conn_fd = rd_conn_fd,
	.listener_fd = rd_listener_fd,
	.pending = rd_pending,
	.timeout_ms = rd_timeout_ms,
	.sleep_prepare = rd_sleep_prepare,
};

/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * What a peer feeds the io-server: frame sequences on a connection. Two
 * in-memory connections run against one io-server (RAM devices, two
 * reactors that are never started: the harness turns them by hand, peer i
 * served by reactor i). The server and its devices live for the process;
 * each input gets fresh connections and must leave every device as it
 * found it. The input is a script of records:
 *
 *   u8 op   bits 0-5 what, bit 6 draining (for a turn), bit 7 which peer
 *           (which reactor, for op 9)
 *   0  CTRL frame   u16 len, payload
 *   1  REQ frame    u16 queue, u32 dev, u32 id, u32 arg (writable bytes),
 *                   u32 len, payload (len with bit 31 set: mod the largest
 *                   payload; without: mod 8 KiB + 1, to keep most cheap)
 *   2  other frame  u8 type (any type the frame header admits besides CTRL
 *                   and REQ; RESP if none), u32 dev, u16 len, payload:
 *                   PKT frames for the switch, and what a peer may not
 *                   send a session
 *   3  turn         one turn of every reactor in order (messages, then
 *                   pollers); a reactor that found no work goes through
 *                   its sleep as its loop would (pollers arm their
 *                   descriptors, epoll is asked without waiting)
 *   4  transport    u8: bit 0 flush stalls, bits 1-3 send queue depth
 *                   (0: unbounded), bit 4 the next send fails, bit 5 the
 *                   next flush fails, bit 6 the peer hangs up once its
 *                   frames are read
 *   5  drain        every reactor starts draining (one way, as on SIGTERM)
 *   6, 7            turn
 *   8  move         u8 dev_id (mod the table), u8 reactor (mod the
 *                   reactors): what the control socket's `move` asks
 *   9  turn one     one turn of one reactor: what it posts to the other
 *                   waits there
 *   10-63           turn
 *
 * Payloads shorter than their length are padded with zeroes: the transport
 * always delivers whole frames. The transport hands a payload out only for
 * the callback and frees it afterwards, and reads what was sent only at
 * flush time, checking it did not change after send(): the session keeps a
 * buffer until the flush that pushed it.
 *
 * Properties: no crash, UB, leak or use of a closed connection. Every frame
 * the io-server sends is well formed, and every RESP answers a REQ the
 * session took, had not answered yet, nor detached since (so none is
 * answered twice, moves or not). A reactor about to sleep watches what
 * its sessions wait for (frames to read, room to write), and a closed
 * session watches nothing. Once the script ends and the transport is
 * healthy, the reactors go idle; an open session that is not closing has
 * answered every Hello, Attach, Heartbeat and IOTLB invalidation it took
 * and every REQ, with nothing outstanding at its devices; a closed one is
 * gone; every move has ended. Closed and drained, every session is gone,
 * and every device is neither owned nor placed.
 */
#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "ctrl.h"
#include "fuzz_input.h"
#include "ioserver_internal.h"
#include "log.h"

#define FUZZ_PEERS	2
#define FUZZ_MAX_FRAMES	256	/* per peer and input */
#define FUZZ_MAX_SENT	256	/* frames between two flushes */
#define FUZZ_MAX_TURNS	1000	/* "goes idle" means within this many */
#define FUZZ_MAX_MOVES	64	/* per input */
/* The clock jumps this far between inputs: past any network's ageing, so
 * what the switch learned in one input is forgotten in the next. */
#define FUZZ_EPOCH_NS	(1000ull * 1000000000ull)

static const char topo_yaml[] =
	"version: 1\n"
	"io_servers:\n"
	"  - {name: io0, listen: 127.0.0.1:7400, cores: {min: 2, max: 2}}\n"
	"  - {name: io1, listen: 127.0.0.1:7401}\n"
	"hosts:\n"
	"  - {name: host0}\n"
	"  - {name: host1}\n"
	"networks:\n"
	"  - {name: lan}\n"
	"devices:\n"
	"  - {name: disk-a, type: blk, host: host0, io_server: io0, socket: /run/a.sock,\n"
	"     queues: 2, queue_size: 4, backend: {ram: 64K}}\n"
	"  - {name: disk-r, type: blk, host: host0, io_server: io0, socket: /run/r.sock,\n"
	"     queue_size: 2, read_only: true, backend: {ram: 8K}}\n"
	"  - {name: disk-b, type: blk, host: host1, io_server: io0, socket: /run/b.sock,\n"
	"     backend: {ram: 8K}}\n"
	"  - {name: disk-c, type: blk, host: host0, io_server: io1, socket: /run/c.sock,\n"
	"     backend: {ram: 8K}}\n"
	"  - {name: nic0, type: net, host: host0, io_server: io0, socket: /run/n.sock,\n"
	"     mac: \"52:54:00:00:00:01\", network: lan}\n"
	"  - {name: nic1, type: net, host: host1, io_server: io0, socket: /run/m.sock,\n"
	"     mac: \"52:54:00:00:00:02\", network: lan}\n";

static struct vrio_topology *topo;
static struct ios_server srv;
static uint64_t fuzz_now;

static uint64_t fuzz_clock(void)
{
	return fuzz_now;
}

/* ---- an in-memory transport ---- */

struct fake_frame {
	struct vrio_frame f;
	uint8_t *payload;
};

struct fake_sent {
	const void *buf;
	size_t len;
	uint64_t hash;
};

/* A REQ the session took and has not answered. */
struct fake_req {
	uint32_t dev, id, arg;
};

struct fake_conn {
	struct vrio_conn base;
	int efd;			/* readable while there is something to read */
	struct fake_frame in[FUZZ_MAX_FRAMES];
	unsigned in_head, in_tail;
	struct fake_sent sent[FUZZ_MAX_SENT];	/* sent, not flushed */
	unsigned n_sent;
	bool closed;
	/* knobs */
	bool stalled;
	unsigned depth;			/* 0: unbounded */
	bool fail_send, fail_flush, hangup;
	/* what the session took and gave */
	struct fake_req reqs[FUZZ_MAX_FRAMES];
	unsigned n_reqs;
	unsigned ctrls_to_answer, ctrls_out;
};

static struct fake_conn *to_fake(struct vrio_conn *c)
{
	return container_of(c, struct fake_conn, base);
}

/* The RESP answers the REQ with its device and id whose writable bytes
 * fit it most tightly: with repeated ids, any other choice could fail a
 * later RESP that a right matching would have accepted. */
static void req_answered(struct fake_conn *fc, const struct vrio_frame *f)
{
	struct fake_req *r, *best = NULL;
	unsigned i;

	for (i = 0; i < fc->n_reqs; i++) {
		r = &fc->reqs[i];
		if (r->dev == f->dev && r->id == f->id && r->arg >= f->len &&
		    (!best || r->arg < best->arg))
			best = r;
	}
	FUZZ_CHECK(best != NULL,
		   "a RESP of %u bytes for device %u, id %u, answers no REQ taken, unanswered and not detached",
		   f->len, f->dev, f->id);
	*best = fc->reqs[--fc->n_reqs];
}

/* A Detach: what was taken for the device is never to be answered. */
static void reqs_forget(struct fake_conn *fc, uint32_t dev)
{
	unsigned i = 0;

	while (i < fc->n_reqs) {
		if (fc->reqs[i].dev == dev)
			fc->reqs[i] = fc->reqs[--fc->n_reqs];
		else
			i++;
	}
}

static void check_sent_frame(struct fake_conn *fc, struct ios_session *s,
			     const struct vrio_frame *f, const uint8_t *p)
{
	const struct ios_attach *a;
	const struct ios_device *d;
	Vrio__Ctrl *m;

	switch (f->type) {
	case VRIO_FRAME_CTRL:
		m = vrio_ctrl_unpack(p, f->len);
		FUZZ_CHECK(m != NULL, "the io-server sent an undecodable CTRL of %u bytes", f->len);
		FUZZ_CHECK(m->msg_case == VRIO__CTRL__MSG_HELLO ||
			   m->msg_case == VRIO__CTRL__MSG_ATTACH_REPLY ||
			   m->msg_case == VRIO__CTRL__MSG_HEARTBEAT ||
			   m->msg_case == VRIO__CTRL__MSG_IOTLB_ACK ||
			   m->msg_case == VRIO__CTRL__MSG_ERROR,
			   "the io-server sent a %s", vrio_ctrl_name(m));
		vrio_ctrl_free(m);
		fc->ctrls_out++;
		break;
	case VRIO_FRAME_RESP:
		a = ios_session_att(s, f->dev);
		FUZZ_CHECK(a != NULL, "RESP for device %u, which is not attached", f->dev);
		FUZZ_CHECK(a->state != IOS_ATT_PLACING, "RESP for device %u, still being placed",
			   f->dev);
		d = a->dev;
		FUZZ_CHECK(f->queue < d->num_queues, "RESP on queue %u of %u", f->queue,
			   d->num_queues);
		FUZZ_CHECK(f->len <= d->max_request, "RESP of %u bytes (max %u)", f->len,
			   d->max_request);
		FUZZ_CHECK(f->arg == 0 && f->flags == 0, "RESP arg %u flags %u", f->arg, f->flags);
		req_answered(fc, f);
		break;
	case VRIO_FRAME_PKT:
		/* The switch forwards only what passed its checks, whole, to a
		 * net device attached on this connection. */
		a = ios_session_att(s, f->dev);
		FUZZ_CHECK(a && a->dev->ops->type == VRIO_DEV_NET,
			   "PKT for device %u, which is no net device attached here", f->dev);
		FUZZ_CHECK(f->queue == 0 && f->len >= VRIO_PKT_HDR_LEN + IOS_ETH_HLEN &&
			   f->len <= VRIO_PKT_HDR_LEN + VRIO_PKT_MAX_GSO_FRAME,
			   "PKT of %u bytes on queue %u", f->len, f->queue);
		/* Offload metadata only as it passed the switch's check (which
		 * also bounds a frame without GSO by the network's MTU). */
		FUZZ_CHECK(((const struct vrio_pkt_wire *)p)->rx_ol == 0 &&
			   vrio_pkt_wire_check((const struct vrio_pkt_wire *)p,
					       f->len - VRIO_PKT_HDR_LEN,
					       a->dev->u.net.port->net->max_frame) == 0,
			   "PKT with bad offload metadata");
		break;
	default:
		FUZZ_CHECK(0, "the io-server sent a frame of type %u", f->type);
	}
}

static int fake_send(struct vrio_conn *c, const struct vrio_frame *f, const struct iovec *iov,
		     int iovcnt)
{
	struct fake_conn *fc = to_fake(c);
	static uint8_t copy[VRIO_FRAME_MAX_PAYLOAD];
	struct fake_sent *st;
	size_t total = 0;
	int i;

	FUZZ_CHECK(!fc->closed, "send on a closed connection");
	FUZZ_CHECK(iovcnt >= 0 && iovcnt <= 4, "%d iovecs", iovcnt);
	FUZZ_CHECK(f->len <= VRIO_FRAME_MAX_PAYLOAD, "a %u-byte frame", f->len);
	for (i = 0; i < iovcnt; i++)
		total += iov[i].iov_len;
	FUZZ_CHECK(total == f->len, "iov of %zu bytes for len %u", total, f->len);
	if (fc->fail_send) {
		fc->fail_send = false;
		return -EPIPE;
	}
	if ((fc->depth && fc->n_sent >= fc->depth) || fc->n_sent == FUZZ_MAX_SENT)
		return -ENOBUFS;
	for (i = 0, total = 0; i < iovcnt; i++) {
		memcpy(copy + total, iov[i].iov_base, iov[i].iov_len);
		total += iov[i].iov_len;
	}
	check_sent_frame(fc, c->owner, f, copy);
	c->stats.frames_tx++;
	/* Every transport copies a frame at send(): the session lends a
	 * request's one buffer until the flush anyway (checked there); a
	 * frame gathered from several pieces (the switch's straight path
	 * toward a guest) is not lent past the call. */
	st = &fc->sent[fc->n_sent++];
	st->buf = f->len && iovcnt == 1 ? iov[0].iov_base : NULL;
	st->len = st->buf ? f->len : 0;
	st->hash = fuzz_hash(copy, st->len);
	return 0;
}

static int fake_flush(struct vrio_conn *c)
{
	struct fake_conn *fc = to_fake(c);
	unsigned i;

	FUZZ_CHECK(!fc->closed, "flush on a closed connection");
	if (fc->fail_flush) {
		fc->fail_flush = false;
		return -EPIPE;
	}
	if (fc->stalled)
		return fc->n_sent ? 1 : 0;
	for (i = 0; i < fc->n_sent; i++)
		FUZZ_CHECK(fuzz_hash(fc->sent[i].buf, fc->sent[i].len) == fc->sent[i].hash,
			   "frame %u of this flush changed between send and flush", i);
	fc->n_sent = 0;
	return 0;
}

/* The session accepted the frame (it was reading, not closing). */
static void fake_took(struct fake_conn *fc, const struct ios_session *s,
		      const struct fake_frame *fr)
{
	Vrio__Ctrl *m;

	if (fr->f.type == VRIO_FRAME_REQ) {
		fc->reqs[fc->n_reqs++] = (struct fake_req){ fr->f.dev, fr->f.id, fr->f.arg };
		return;
	}
	if (fr->f.type != VRIO_FRAME_CTRL || !(m = vrio_ctrl_unpack(fr->payload, fr->f.len)))
		return;
	switch (m->msg_case) {
	case VRIO__CTRL__MSG_HELLO:
	case VRIO__CTRL__MSG_ATTACH:
	case VRIO__CTRL__MSG_HEARTBEAT:
	case VRIO__CTRL__MSG_IOTLB_INVALIDATE:
		fc->ctrls_to_answer++;
		break;
	case VRIO__CTRL__MSG_DETACH:
		reqs_forget(fc, m->detach->dev_id);
		break;
	default:
		break;
	}
	vrio_ctrl_free(m);
}

static int fake_poll(struct vrio_conn *c, vrio_recv_cb cb, void *arg, unsigned budget)
{
	struct fake_conn *fc = to_fake(c);
	const struct ios_session *s = c->owner;
	enum ios_session_state before;
	struct fake_frame *fr;
	unsigned n = 0;
	int rc;

	FUZZ_CHECK(!fc->closed, "poll on a closed connection");
	while (fc->in_head != fc->in_tail && n < budget) {
		fr = &fc->in[fc->in_head++];
		c->stats.frames_rx++;
		before = s->state;
		rc = cb(arg, c, &fr->f, fr->payload);
		if (rc == 0 && (before == IOS_SESSION_HELLO || before == IOS_SESSION_READY))
			fake_took(fc, s, fr);
		/* The payload is lent for the callback only. */
		free(fr->payload);
		fr->payload = NULL;
		if (rc < 0)
			return rc;
		n++;
	}
	if (n == 0 && fc->hangup)
		return -ECONNRESET;
	return (int)n;
}

static void fake_close(struct vrio_conn *c)
{
	struct fake_conn *fc = to_fake(c);

	FUZZ_CHECK(!fc->closed, "closed twice");
	fc->closed = true;
	fc->n_sent = 0;
}

static int fake_fd(struct vrio_conn *c)
{
	return to_fake(c)->efd;
}

static const struct vrio_transport_ops fake_ops = {
	.name = "fuzz",
	.send = fake_send,
	.flush = fake_flush,
	.poll = fake_poll,
	.close = fake_close,
	.conn_fd = fake_fd,
};

/* Level-triggered, as a socket: readable while a frame or the hang-up
 * waits. */
static void fake_sync_fd(struct fake_conn *fc)
{
	uint64_t v = 1;

	if (read(fc->efd, &v, sizeof(v)) < 0)
		FUZZ_CHECK(errno == EAGAIN, "eventfd read: %s", strerror(errno));
	if (!fc->closed && (fc->in_head != fc->in_tail || fc->hangup)) {
		v = 1;
		FUZZ_CHECK(write(fc->efd, &v, sizeof(v)) == sizeof(v), "eventfd write: %s",
			   strerror(errno));
	}
}

static void fake_push(struct fake_conn *fc, const struct vrio_frame *f, struct fuzz_in *in)
{
	struct fake_frame *fr;
	uint8_t *p;

	p = malloc(f->len ? f->len : 1);
	FUZZ_CHECK(p != NULL, "malloc");
	fuzz_take(in, p, f->len);
	if (fc->in_tail == FUZZ_MAX_FRAMES) {
		free(p);
		return;
	}
	fr = &fc->in[fc->in_tail++];
	fr->f = *f;
	fr->payload = p;
}

/* ---- what the server needs of the transport library ---- */

/* The harness brings its own connections; the server's stack would only
 * listen and accept, which nothing here asks of it. */
int vrio_stack_init(struct vrio_stack *s, const struct vrio_topo_ioserver *ios)
{
	(void)ios;
	memset(s, 0, sizeof(*s));
	s->base = &fake_ops;
	return 0;
}

/* A trunk's dial stack (none dials here). */
void vrio_stack_plain(struct vrio_stack *dst, const struct vrio_stack *src)
{
	*dst = (struct vrio_stack){ .base = src->base };
}

int vrio_stack_setup(struct vrio_stack *s, const struct vrio_transport_node *self)
{
	(void)s;
	(void)self;
	return 0;
}

void vrio_stack_teardown(struct vrio_stack *s)
{
	(void)s;
}

int vrio_stack_wrap(struct vrio_stack *s, struct vrio_conn *inner, struct vrio_conn **out)
{
	(void)s;
	*out = inner;
	return 0;
}

/* Only trunks to other io-servers dial or send control messages through
 * the transport library, and no network of this topology spans two
 * io-servers. */
int vrio_stack_connect(struct vrio_stack *s, const char *addr, int cancel_fd,
		       struct vrio_conn **out)
{
	(void)s;
	(void)cancel_fd;
	(void)out;
	FUZZ_CHECK(0, "a connection to %s dialed, with no trunk in the topology", addr);
	return -ECONNREFUSED;
}

int vrio_conn_send_ctrl(struct vrio_conn *c, const struct Vrio__Ctrl *m)
{
	(void)c;
	(void)m;
	FUZZ_CHECK(0, "a trunk's control message, with no trunk in the topology");
	return -EPIPE;
}

/* ---- the reactors, by hand ---- */

struct run {
	struct fake_conn *fc[FUZZ_PEERS];
	struct ios_move_result *moves[FUZZ_MAX_MOVES];	/* one reference each */
	unsigned n_moves;
};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *lvl = getenv("VRIO_FUZZ_LOG");
	int max = lvl ? vrio_log_level_parse(lvl) : -1;
	struct ios_device *d;
	char err[256];
	unsigned i, n = 0;

	(void)argc;
	(void)argv;
	/* Quiet unless asked (VRIO_FUZZ_LOG=debug): a level below every message. */
	vrio_log_init("fuzz_session", max > 0 ? (enum vrio_log_level)max : (enum vrio_log_level)0);
	FUZZ_CHECK(vrio_topology_parse("fuzz.yaml", topo_yaml, strlen(topo_yaml), &topo, err,
				       sizeof(err)) == 0, "%s", err);
	/* Reactors are created, never started: LLVMFuzzerTestOneInput turns them. */
	FUZZ_CHECK(ios_server_init(&srv, topo, "io0", NULL) == 0, "server");
	for (d = ios_device_next(&srv, NULL, NULL); d; d = ios_device_next(&srv, d, NULL))
		n++;
	FUZZ_CHECK(n == 5, "%u devices", n);
	FUZZ_CHECK(srv.n_reactors == 2, "%u reactors", srv.n_reactors);
	for (i = 0; i < srv.n_reactors; i++)
		srv.reactors[i]->clock = fuzz_clock;
	for (i = 0; i < srv.sw->n_nets; i++)
		FUZZ_CHECK(srv.sw->nets[i]->ageing_ns < FUZZ_EPOCH_NS, "%s: ageing of %llu ns",
			   srv.sw->nets[i]->name, (unsigned long long)srv.sw->nets[i]->ageing_ns);
	return 0;
}

static bool session_reading(struct ios_session *s)
{
	return s->conn && !ios_rctx(s->r)->draining &&
	       (s->state == IOS_SESSION_HELLO || s->state == IOS_SESSION_READY);
}

static bool epoll_reported(const struct epoll_event *evs, int n, const struct ios_evsrc *e,
			   uint32_t what)
{
	for (int i = 0; i < n; i++)
		if (evs[i].data.ptr == e && (evs[i].events & what))
			return true;
	return false;
}

/*
 * What the reactor's loop does once its turns find nothing to do, but
 * without blocking: each poller arms its descriptors and says how long it
 * may sleep, then epoll says what is ready. A reactor that would sleep
 * must wake for what its sessions wait on (frames to read, room to
 * write), must not sleep over frames already there, and a closed session
 * watches nothing.
 */
static void reactor_idle(struct run *run, struct ios_reactor *r)
{
	struct epoll_event evs[64];
	int timeout = IOS_SLEEP_MAX_MS, t, n, i;
	struct ios_session *s;
	struct ios_poller *p;
	struct ios_evsrc *e;
	struct fake_conn *fc;

	for (i = 0; i < FUZZ_PEERS; i++)
		fake_sync_fd(run->fc[i]);
	TAILQ_FOREACH(p, &r->pollers, link) {
		if (!p->sleep)
			continue;
		t = p->sleep(p);
		if (t >= 0 && t < timeout)
			timeout = t;
	}
	n = epoll_wait(r->epfd, evs, sizeof(evs) / sizeof(evs[0]), 0);
	FUZZ_CHECK(n >= 0, "epoll_wait: %s", strerror(errno));
	TAILQ_FOREACH(s, &ios_rctx(r)->sessions, link) {
		if (!s->conn) {
			FUZZ_CHECK(s->ev.armed == 0, "%s: closed, yet watched for %#x", s->name,
				   s->ev.armed);
			continue;
		}
		if (timeout == 0)
			continue;
		FUZZ_CHECK(!session_reading(s) || (s->ev.armed & EPOLLIN),
			   "%s would sleep deaf to %s's frames", r->name, s->name);
		FUZZ_CHECK((!ios_session_queued(s) && !s->flush_pending) ||
			   (s->ev.armed & EPOLLOUT),
			   "%s would sleep on %s's unsent frames", r->name, s->name);
		fc = to_fake(s->conn);
		FUZZ_CHECK(!session_reading(s) || (fc->in_head == fc->in_tail && !fc->hangup) ||
			   epoll_reported(evs, n, &s->ev, EPOLLIN),
			   "%s would sleep %d ms with %s's %s unread", r->name, timeout, s->name,
			   fc->in_head != fc->in_tail ? "frames" : "hang-up");
	}
	for (i = 0; i < n; i++) {
		e = evs[i].data.ptr;
		if (e->ready)
			e->ready(e, evs[i].events);
	}
}

static int turn_one(struct run *run, struct ios_reactor *r)
{
	int work = ios_reactor_turn(r);

	if (work == 0)
		reactor_idle(run, r);
	return work;
}

/* One turn of every reactor; returns the work done. */
static int turn(struct run *run)
{
	int work = 0;

	fuzz_now += 1000;
	for (unsigned i = 0; i < srv.n_reactors; i++)
		work += turn_one(run, srv.reactors[i]);
	return work;
}

static void drain(void)
{
	for (unsigned i = 0; i < srv.n_reactors; i++)
		ios_sessions_drain(srv.reactors[i], NULL);
}

/* Two turns of every reactor in a row with nothing to do: the first one
 * posted nothing either, or the second would have run it. */
static void turn_until_idle(struct run *run, const char *what)
{
	unsigned turns = 0, idle = 0;

	while (idle < 2) {
		FUZZ_CHECK(++turns < FUZZ_MAX_TURNS, "%s", what);
		idle = turn(run) ? 0 : idle + 1;
	}
}

static void move(struct run *run, uint8_t dev, uint8_t to)
{
	struct ios_device *d = srv.devs[dev % srv.n_slots];
	struct ios_move_result *res;

	if (!d || run->n_moves == FUZZ_MAX_MOVES)
		return;
	res = calloc(1, sizeof(*res));
	FUZZ_CHECK(res != NULL, "calloc");
	res->refs = 1;
	if (ios_device_move(&srv, d, srv.reactors[to % srv.n_reactors], res) == 0)
		run->moves[run->n_moves++] = res;
	else
		ios_move_result_put(res);
}

static void run_script(struct run *run, struct fuzz_in *in)
{
	struct vrio_frame f;
	struct fake_conn *fc;
	uint8_t op, knobs, dev;

	while (fuzz_left(in)) {
		op = fuzz_u8(in);
		fc = run->fc[op >> 7];
		memset(&f, 0, sizeof(f));
		switch (op & 0x3fu) {
		case 0:
			f.type = VRIO_FRAME_CTRL;
			f.len = fuzz_u16(in);
			fake_push(fc, &f, in);
			break;
		case 1:
			f.type = VRIO_FRAME_REQ;
			f.queue = fuzz_u16(in);
			f.dev = fuzz_u32(in);
			f.id = fuzz_u32(in);
			f.arg = fuzz_u32(in);
			f.len = fuzz_u32(in);
			f.len %= (f.len & 0x80000000u ? VRIO_FRAME_MAX_PAYLOAD : 8192u) + 1;
			fake_push(fc, &f, in);
			break;
		case 2:
			f.type = fuzz_u8(in);
			if (f.type == VRIO_FRAME_CTRL || f.type == VRIO_FRAME_REQ ||
			    !strcmp(vrio_frame_type_name(f.type), "unknown"))
				f.type = VRIO_FRAME_RESP;
			f.dev = fuzz_u32(in);
			f.len = fuzz_u16(in);
			fake_push(fc, &f, in);
			break;
		case 4:
			knobs = fuzz_u8(in);
			fc->stalled = knobs & 1u;
			fc->depth = (knobs >> 1) & 7u;
			fc->fail_send = knobs & 0x10u;
			fc->fail_flush = knobs & 0x20u;
			fc->hangup = fc->hangup || (knobs & 0x40u);
			break;
		case 5:
			drain();
			break;
		case 8:
			dev = fuzz_u8(in);
			move(run, dev, fuzz_u8(in));
			break;
		case 9:
			if (op & 0x40u)
				drain();
			turn_one(run, srv.reactors[(op >> 7) % srv.n_reactors]);
			break;
		default:
			if (op & 0x40u)
				drain();
			turn(run);
			break;
		}
	}
}

/* The session on fc's connection, NULL once it is closed. */
static struct ios_session *session_of(const struct fake_conn *fc)
{
	struct ios_session *s;

	for (unsigned i = 0; i < srv.n_reactors; i++)
		TAILQ_FOREACH(s, &ios_rctx(srv.reactors[i])->sessions, link)
			if (s->conn == &fc->base)
				return s;
	return NULL;
}

static bool session_alive(const struct ios_session *x)
{
	struct ios_session *s;

	for (unsigned i = 0; i < srv.n_reactors; i++)
		TAILQ_FOREACH(s, &ios_rctx(srv.reactors[i])->sessions, link)
			if (s == x)
				return true;
	return false;
}

/* The transport is healthy again: everything must settle. */
static bool lingering(void)
{
	const struct ios_session *s;

	for (unsigned i = 0; i < srv.n_reactors; i++)
		TAILQ_FOREACH(s, &ios_rctx(srv.reactors[i])->sessions, link)
			if (s->linger_until)
				return true;
	return false;
}

static void settle(struct run *run)
{
	for (unsigned i = 0; i < FUZZ_PEERS; i++) {
		run->fc[i]->stalled = false;
		run->fc[i]->depth = 0;
		run->fc[i]->fail_send = false;
		run->fc[i]->fail_flush = false;
	}
	turn_until_idle(run, "the reactors never go idle");
	/* A session that said goodbye (a drain) waits IOS_LINGER_NS for its
	 * peer to close first; these peers never do: let the wait run out. */
	if (lingering()) {
		fuzz_now += IOS_LINGER_NS;
		turn_until_idle(run, "the reactors never go idle after a goodbye");
	}
}

static void check_answers(const struct fake_conn *fc)
{
	const struct ios_session *s = session_of(fc);
	const struct ios_attach *a;
	const struct ios_device *d;

	if (!s) {
		FUZZ_CHECK(fc->closed, "%s: open, but no session has it", fc->base.name);
		return;
	}
	FUZZ_CHECK(s->state != IOS_SESSION_CLOSING, "%s: closing, but never closes", s->name);
	FUZZ_CHECK(!ios_session_queued(s) && TAILQ_EMPTY(&s->unflushed) && !s->flush_pending,
		   "%s: idle with frames left to send", s->name);
	TAILQ_FOREACH(a, &s->atts, link) {
		d = a->dev;
		FUZZ_CHECK(a->state == IOS_ATT_READY && !a->detached,
			   "%s: %s: idle in state %d%s", s->name, d->name, a->state,
			   a->detached ? ", detached" : "");
		FUZZ_CHECK(a->outstanding == 0 && d->inflight == 0 && TAILQ_EMPTY(&a->held),
			   "%s: %s: idle with %u requests outstanding, %u at the device",
			   s->name, d->name, a->outstanding, d->inflight);
		FUZZ_CHECK(d->owner == s && d->front == s->r && d->home && d->home == a->home,
			   "%s: %s: attached here, but the device says otherwise", s->name, d->name);
	}
	FUZZ_CHECK(fc->ctrls_out == fc->ctrls_to_answer,
		   "%s: %u control replies for %u control requests", s->name, fc->ctrls_out,
		   fc->ctrls_to_answer);
	FUZZ_CHECK(fc->n_reqs == 0, "%s: %u REQs never answered, the first for device %u, id %u",
		   s->name, fc->n_reqs, fc->reqs[0].dev, fc->reqs[0].id);
}

static void check_settled(struct run *run)
{
	const struct ios_session *s;
	const struct ios_device *d;
	unsigned i;

	for (i = 0; i < FUZZ_PEERS; i++)
		check_answers(run->fc[i]);
	for (i = 0; i < srv.n_reactors; i++)
		TAILQ_FOREACH(s, &ios_rctx(srv.reactors[i])->sessions, link)
			FUZZ_CHECK(s->conn, "%s: closed and idle, but never freed", s->name);
	for (i = 0; i < srv.n_slots; i++) {
		d = srv.devs[i];
		if (!d)
			continue;
		FUZZ_CHECK(d->inflight == 0 && !d->move, "%s: idle with %u requests in flight%s",
			   d->name, d->inflight, d->move ? " and a move" : "");
		if (d->owner)
			FUZZ_CHECK(session_alive(d->owner) && d->owner->att[d->id] &&
				   d->owner->att[d->id]->dev == d,
				   "%s: owned by a session that has not attached it", d->name);
		else
			FUZZ_CHECK(!d->home && !d->front, "%s: placed, but owned by no session",
				   d->name);
	}
	for (i = 0; i < run->n_moves; i++)
		FUZZ_CHECK(__atomic_load_n(&run->moves[i]->done, __ATOMIC_ACQUIRE),
			   "move %u never ended", i);
}

/* Close what is open and drain, as a stopping server does. */
static void finish(struct run *run)
{
	struct ios_session *s;
	struct ios_reactor *r;
	const struct ios_device *d;
	unsigned i, n;

	for (i = 0; i < srv.n_reactors; i++)
		TAILQ_FOREACH(s, &ios_rctx(srv.reactors[i])->sessions, link)
			ios_session_close(s, "fuzz: end of input");
	drain();
	turn_until_idle(run, "closed sessions never finish");
	for (i = 0; i < srv.n_reactors; i++) {
		r = srv.reactors[i];
		n = 0;
		TAILQ_FOREACH(s, &ios_rctx(r)->sessions, link)
			n++;
		FUZZ_CHECK(n == 0 && r->n_sessions == 0, "%s: %u sessions left (%u counted)",
			   r->name, n, r->n_sessions);
		FUZZ_CHECK(r->n_devices == 0, "%s: %u devices still placed", r->name,
			   r->n_devices);
		FUZZ_CHECK(!ios_xring_pending(srv.sw, r), "%s: frames left in its rings", r->name);
		/* The next input starts with a server that takes connections. */
		ios_rctx(r)->draining = false;
	}
	for (i = 0; i < FUZZ_PEERS; i++)
		FUZZ_CHECK(run->fc[i]->closed, "%s: never closed", run->fc[i]->base.name);
	for (i = 0; i < srv.n_slots; i++) {
		d = srv.devs[i];
		if (d)
			FUZZ_CHECK(!d->owner && !d->front && !d->home && d->inflight == 0,
				   "%s: still %s with no session left", d->name,
				   d->owner ? "owned" : d->home ? "placed" : "busy");
	}
	for (i = 0; i < run->n_moves; i++) {
		FUZZ_CHECK(__atomic_load_n(&run->moves[i]->done, __ATOMIC_ACQUIRE),
			   "move %u never ended", i);
		ios_move_result_put(run->moves[i]);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_in in = { data, size };
	struct run run = { 0 };
	struct ios_reactor *r;
	struct ios_session *s;
	struct fake_conn *fc;
	unsigned i, j;

	fuzz_now += FUZZ_EPOCH_NS;
	for (i = 0; i < FUZZ_PEERS; i++) {
		fc = calloc(1, sizeof(*fc));
		FUZZ_CHECK(fc != NULL, "calloc");
		fc->base.ops = &fake_ops;
		fc->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		FUZZ_CHECK(fc->efd >= 0, "eventfd: %s", strerror(errno));
		snprintf(fc->base.name, sizeof(fc->base.name), "peer%u", i);
		s = ios_session_create(&srv, &fc->base);
		FUZZ_CHECK(s != NULL, "session");
		r = srv.reactors[i % srv.n_reactors];
		__atomic_add_fetch(&r->n_sessions, 1, __ATOMIC_RELAXED);
		ios_session_adopt(r, s);
		run.fc[i] = fc;
	}

	run_script(&run, &in);
	settle(&run);
	check_settled(&run);
	finish(&run);

	for (i = 0; i < FUZZ_PEERS; i++) {
		for (j = run.fc[i]->in_head; j < run.fc[i]->in_tail; j++)
			free(run.fc[i]->in[j].payload);
		close(run.fc[i]->efd);
		free(run.fc[i]);
	}
	return 0;
}

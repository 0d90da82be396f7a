/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * What a peer feeds the io-server: frame sequences on a connection. Two
 * in-memory connections run against one io-server (RAM devices, one
 * reactor driven by hand). The input is a script of records:
 *
 *   u8 op   bits 0-2 what, bit 6 draining (for a turn), bit 7 which peer
 *   0  CTRL frame   u16 len, payload
 *   1  REQ frame    u16 queue, u32 dev, u32 id, u32 arg (writable bytes),
 *                   u32 len, payload (len with bit 31 set: mod the largest
 *                   payload; without: mod 8 KiB + 1, to keep most cheap)
 *   2  other frame  u8 type (any type the frame header admits besides CTRL
 *                   and REQ; RESP if none), u32 dev, u16 len, payload:
 *                   PKT frames for the switch, and what a peer may not
 *                   send a session
 *   3  turn         poll every session once, as the reactor loop does
 *   4  transport    u8: bit 0 flush stalls, bits 1-3 send queue depth
 *                   (0: unbounded), bit 4 the next send fails, bit 5 the
 *                   next flush fails, bit 6 the peer hangs up once its
 *                   frames are read
 *   5  drain        the reactor starts draining (one way, as on SIGTERM)
 *   6, 7            turn
 *
 * Payloads shorter than their length are padded with zeroes: the transport
 * always delivers whole frames. The transport hands a payload out only for
 * the callback and frees it afterwards, and reads what was sent only at
 * flush time, checking it did not change after send(): the session keeps a
 * buffer until the flush that pushed it.
 *
 * Properties: no crash, UB, leak or use of a closed connection. Every frame
 * the io-server sends is well formed. Once the script ends and the
 * transport is healthy, every session goes idle; an open session that is
 * not closing has answered every Hello, Attach and Heartbeat it took and
 * every REQ it took (unless a Detach let it drop some). Closed, every
 * session finishes once the backend is done, and every device is free.
 */
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "ctrl.h"
#include "fuzz_input.h"
#include "ioserver_internal.h"
#include "log.h"

#define FUZZ_PEERS	2
#define FUZZ_MAX_FRAMES	256	/* per peer and input */
#define FUZZ_MAX_SENT	256	/* frames between two flushes */
#define FUZZ_MAX_TURNS	1000	/* "goes idle" means within this many */

static const char topo_yaml[] =
	"version: 1\n"
	"io_servers:\n"
	"  - {name: io0, listen: 127.0.0.1:7400}\n"
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

struct fake_conn {
	struct vrio_conn base;
	struct ios_session *s;		/* NULL once freed */
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
	unsigned reqs_taken, ctrls_to_answer, detaches;
	unsigned resps_out, ctrls_out;
};

static struct fake_conn *to_fake(struct vrio_conn *c)
{
	return container_of(c, struct fake_conn, base);
}

static void check_sent_frame(struct fake_conn *fc, const struct vrio_frame *f, const uint8_t *p)
{
	const struct ios_attach *a;
	Vrio__Ctrl *m;

	switch (f->type) {
	case VRIO_FRAME_CTRL:
		m = vrio_ctrl_unpack(p, f->len);
		FUZZ_CHECK(m != NULL, "the io-server sent an undecodable CTRL of %u bytes", f->len);
		FUZZ_CHECK(m->msg_case == VRIO__CTRL__MSG_HELLO ||
			   m->msg_case == VRIO__CTRL__MSG_ATTACH_REPLY ||
			   m->msg_case == VRIO__CTRL__MSG_HEARTBEAT ||
			   m->msg_case == VRIO__CTRL__MSG_ERROR,
			   "the io-server sent a %s", vrio_ctrl_name(m));
		vrio_ctrl_free(m);
		fc->ctrls_out++;
		break;
	case VRIO_FRAME_RESP:
		FUZZ_CHECK(f->dev < srv.n_devs, "RESP for device %u of %u", f->dev, srv.n_devs);
		a = fc->s->att[f->dev];
		FUZZ_CHECK(a && !a->detached, "RESP for device %u, which is not attached", f->dev);
		FUZZ_CHECK(f->queue < a->dev->blk.num_queues, "RESP on queue %u", f->queue);
		FUZZ_CHECK(f->len <= a->dev->blk.max_request, "RESP of %u bytes", f->len);
		FUZZ_CHECK(f->arg == 0 && f->flags == 0, "RESP arg %u flags %u", f->arg, f->flags);
		fc->resps_out++;
		break;
	case VRIO_FRAME_PKT:
		/* The switch forwards only what passed its checks, whole, to a
		 * net device attached on this connection. */
		FUZZ_CHECK(f->dev < srv.n_devs, "PKT for device %u of %u", f->dev, srv.n_devs);
		a = fc->s->att[f->dev];
		FUZZ_CHECK(a && !a->detached && a->dev->type == VRIO_DEV_NET,
			   "PKT for device %u, which is no net device attached here", f->dev);
		FUZZ_CHECK(f->queue == 0 && f->len >= VRIO_PKT_HDR_LEN + 14 &&
			   f->len <= VRIO_PKT_HDR_LEN + a->dev->port->net->max_frame,
			   "PKT of %u bytes on queue %u", f->len, f->queue);
		FUZZ_CHECK(vrio_pkt_wire_plain((const struct vrio_pkt_wire *)p),
			   "PKT with offload metadata");
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

	FUZZ_CHECK(!fc->closed, "send on a closed connection");
	FUZZ_CHECK(iovcnt == 0 || iovcnt == 1, "%d iovecs", iovcnt);
	FUZZ_CHECK(f->len <= VRIO_FRAME_MAX_PAYLOAD, "a %u-byte frame", f->len);
	FUZZ_CHECK((iovcnt ? iov[0].iov_len : 0) == f->len, "iov of %zu bytes for len %u",
		   iovcnt ? iov[0].iov_len : 0, f->len);
	if (fc->fail_send) {
		fc->fail_send = false;
		return -EPIPE;
	}
	if ((fc->depth && fc->n_sent >= fc->depth) || fc->n_sent == FUZZ_MAX_SENT)
		return -ENOBUFS;
	if (f->len)
		memcpy(copy, iov[0].iov_base, f->len);
	check_sent_frame(fc, f, copy);
	st = &fc->sent[fc->n_sent++];
	st->buf = f->len ? iov[0].iov_base : NULL;
	st->len = f->len;
	st->hash = fuzz_hash(copy, f->len);
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

static bool ctrl_needs_answer(const struct fake_frame *fr)
{
	Vrio__Ctrl *m = vrio_ctrl_unpack(fr->payload, fr->f.len);
	bool answer;

	if (!m)
		return false;
	answer = m->msg_case == VRIO__CTRL__MSG_HELLO || m->msg_case == VRIO__CTRL__MSG_ATTACH ||
		 m->msg_case == VRIO__CTRL__MSG_HEARTBEAT;
	vrio_ctrl_free(m);
	return answer;
}

static bool ctrl_is_detach(const struct fake_frame *fr)
{
	Vrio__Ctrl *m = vrio_ctrl_unpack(fr->payload, fr->f.len);
	bool detach = m && m->msg_case == VRIO__CTRL__MSG_DETACH;

	vrio_ctrl_free(m);
	return detach;
}

static int fake_poll(struct vrio_conn *c, vrio_recv_cb cb, void *arg, unsigned budget)
{
	struct fake_conn *fc = to_fake(c);
	enum ios_session_state before;
	struct fake_frame *fr;
	unsigned n = 0;
	int rc;

	FUZZ_CHECK(!fc->closed, "poll on a closed connection");
	while (fc->in_head != fc->in_tail && n < budget) {
		fr = &fc->in[fc->in_head++];
		before = fc->s->state;
		rc = cb(arg, c, &fr->f, fr->payload);
		/* Taken: the session was reading (not closing) and accepted it. */
		if (rc == 0 && (before == IOS_SESSION_HELLO || before == IOS_SESSION_READY)) {
			if (fr->f.type == VRIO_FRAME_REQ)
				fc->reqs_taken++;
			else if (fr->f.type == VRIO_FRAME_CTRL && ctrl_needs_answer(fr))
				fc->ctrls_to_answer++;
			else if (fr->f.type == VRIO_FRAME_CTRL && ctrl_is_detach(fr))
				fc->detaches++;
		}
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

static const struct vrio_transport_ops fake_ops = {
	.name = "fuzz",
	.send = fake_send,
	.flush = fake_flush,
	.poll = fake_poll,
	.close = fake_close,
};

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

/* ---- the reactor, by hand ---- */

struct run {
	struct ios_reactor *r;
	struct fake_conn *fc[FUZZ_PEERS];
	bool draining;
};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *lvl = getenv("VRIO_FUZZ_LOG");
	int max = lvl ? vrio_log_level_parse(lvl) : -1;
	char err[256];

	/* Quiet unless asked (VRIO_FUZZ_LOG=debug): a level below every message. */
	vrio_log_init("fuzz_session", max > 0 ? (enum vrio_log_level)max : (enum vrio_log_level)0);
	FUZZ_CHECK(vrio_topology_parse("fuzz.yaml", topo_yaml, strlen(topo_yaml), &topo, err,
				       sizeof(err)) == 0, "%s", err);
	srv.topo = topo;
	srv.self = vrio_topology_ioserver(topo, "io0");
	FUZZ_CHECK(ios_bdev_register_builtin() == 0, "bdev registry");
	FUZZ_CHECK(ios_devices_open(&srv) == 0, "devices");
	FUZZ_CHECK(srv.n_devs == 5, "%u devices", srv.n_devs);
	FUZZ_CHECK(ios_switch_open(&srv, 1) == 0, "switch");
	return 0;
}

static void session_free(struct run *run, struct ios_session *s)
{
	unsigned i;

	for (i = 0; i < FUZZ_PEERS; i++)
		if (run->fc[i]->s == s)
			run->fc[i]->s = NULL;
	ios_session_free(s);
}

/* One turn of reactor_main() over the sessions; returns the work done. */
static int turn(struct run *run)
{
	struct ios_session *s, *next;
	int work = 0;

	for (s = TAILQ_FIRST(&run->r->sessions); s; s = next) {
		next = TAILQ_NEXT(s, link);
		work += ios_session_poll(s, run->draining);
		/* What the reactor would sleep on: nothing once closed. */
		FUZZ_CHECK(s->conn || ios_session_events(s, run->draining) == 0,
			   "%s: events on a closed session", s->name);
		if (ios_session_finished(s, run->draining))
			session_free(run, s);
	}
	return work;
}

static void run_script(struct run *run, struct fuzz_in *in)
{
	struct vrio_frame f;
	struct fake_conn *fc;
	uint8_t op, knobs;

	while (fuzz_left(in)) {
		op = fuzz_u8(in);
		fc = run->fc[op >> 7];
		memset(&f, 0, sizeof(f));
		switch (op & 7u) {
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
			run->draining = true;
			break;
		default:
			if (op & 0x40u)
				run->draining = true;
			turn(run);
			break;
		}
	}
}

/* The transport is healthy again: everything must settle. */
static void settle(struct run *run)
{
	unsigned i, turns = 0;

	for (i = 0; i < FUZZ_PEERS; i++) {
		run->fc[i]->stalled = false;
		run->fc[i]->depth = 0;
		run->fc[i]->fail_send = false;
		run->fc[i]->fail_flush = false;
	}
	while (turn(run) > 0)
		FUZZ_CHECK(++turns < FUZZ_MAX_TURNS, "the sessions never go idle");
	/* One more: a turn that did no work may still have closed a session
	 * whose Error was flushed. */
	turn(run);
}

static void check_answers(const struct fake_conn *fc)
{
	const struct ios_session *s = fc->s;
	const struct ios_attach *a;

	if (!s || !s->conn || s->state == IOS_SESSION_DEAD)
		return;
	FUZZ_CHECK(s->state != IOS_SESSION_CLOSING, "%s: closing, but never closes", s->name);
	FUZZ_CHECK(TAILQ_EMPTY(&s->backlog) && !s->flush_pending,
		   "%s: idle with frames left to send", s->name);
	TAILQ_FOREACH(a, &s->atts, link)
		FUZZ_CHECK(a->outstanding == 0 && a->inflight == 0,
			   "%s: %s: idle with %u requests outstanding, %u at the backend",
			   s->name, a->dev->topo->name, a->outstanding, a->inflight);
	FUZZ_CHECK(fc->ctrls_out == fc->ctrls_to_answer,
		   "%s: %u control replies for %u control requests", s->name, fc->ctrls_out,
		   fc->ctrls_to_answer);
	if (fc->detaches == 0)
		FUZZ_CHECK(fc->resps_out == fc->reqs_taken, "%s: %u RESPs for %u REQs", s->name,
			   fc->resps_out, fc->reqs_taken);
	else
		FUZZ_CHECK(fc->resps_out <= fc->reqs_taken, "%s: %u RESPs for %u REQs", s->name,
			   fc->resps_out, fc->reqs_taken);
}

/* Close what is open and wait for the backend, as a stopping reactor does. */
static void finish(struct run *run)
{
	struct ios_session *s, *next;
	unsigned turns = 0;
	uint32_t i;

	TAILQ_FOREACH(s, &run->r->sessions, link)
		ios_session_close(s, "fuzz: end of input");
	while (!TAILQ_EMPTY(&run->r->sessions)) {
		FUZZ_CHECK(++turns < FUZZ_MAX_TURNS, "closed sessions never finish");
		for (s = TAILQ_FIRST(&run->r->sessions); s; s = next) {
			next = TAILQ_NEXT(s, link);
			ios_session_poll(s, true);
			if (ios_session_finished(s, true))
				session_free(run, s);
		}
	}
	for (i = 0; i < srv.n_devs; i++)
		FUZZ_CHECK(srv.devs[i].owner == NULL, "%s is still owned with no session left",
			   srv.devs[i].topo->name);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_in in = { data, size };
	struct run run = { 0 };
	struct fake_conn *fc;
	unsigned i, j;

	FUZZ_CHECK(ios_reactor_create(&srv, 0, &run.r) == 0, "reactor");
	for (i = 0; i < FUZZ_PEERS; i++) {
		fc = calloc(1, sizeof(*fc));
		FUZZ_CHECK(fc != NULL, "calloc");
		fc->base.ops = &fake_ops;
		snprintf(fc->base.name, sizeof(fc->base.name), "peer%u", i);
		fc->s = ios_session_create(&srv, &fc->base);
		FUZZ_CHECK(fc->s != NULL, "session");
		ios_session_adopt(run.r, fc->s);
		run.fc[i] = fc;
	}

	run_script(&run, &in);
	settle(&run);
	for (i = 0; i < FUZZ_PEERS; i++)
		check_answers(run.fc[i]);
	finish(&run);

	ios_reactor_destroy(run.r);
	for (i = 0; i < FUZZ_PEERS; i++) {
		for (j = run.fc[i]->in_head; j < run.fc[i]->in_tail; j++)
			free(run.fc[i]->in[j].payload);
		free(run.fc[i]);
	}
	return 0;
}

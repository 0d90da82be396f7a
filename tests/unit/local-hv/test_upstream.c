/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * local-hv's upstream connection (upstream.c) over an in-memory transport,
 * with the poller's clock in the test's hands: heartbeats on a quiet
 * connection, the dead verdict after dead_after of silence and what a
 * device shows then (device.c's view), the reconnect, and a closed or
 * refused connection told apart from a hang, and an io-server's goodbye
 * checked against the answers that came. The poller's neighbours are
 * stubs.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "auth.h"
#include "ctrl.h"
#include "keyfile.h"
#include "localhv.h"
#include "log.h"

#define MS 1000000ull

/* ---- stubs of the poller's neighbours ---- */

void lhv_epoll_mod(struct lhv *l, int fd, void *tag, bool add)
{
}

void lhv_main_wake(struct lhv *l)
{
}

void lhv_poller_wake(struct lhv *l)
{
}

void lhv_iommu_upstream_lost(struct lhv_dev *d)
{
}

int lhv_iommu_acked(struct lhv_dev *d, uint64_t seq)
{
	return -ENOENT;
}

/* device.c's table functions, which the test does not call. */
void lhv_iommu_init(struct lhv_iommu *m, const struct vrio_topo_device *t)
{
}

void lhv_iommu_configure(struct lhv_iommu *m, const struct vrio_topo_device *t)
{
}

void lhv_iommu_fini(struct lhv_iommu *m)
{
}

int lhv_iotlb_init(struct lhv_iotlb *t)
{
	return 0;
}

int lhv_net_init(struct lhv *l)
{
	return 0;
}

void lhv_poller_call(struct lhv *l, void (*fn)(struct lhv *l, void *arg), void *arg)
{
	fn(l, arg);
}

int lhv_vhost_register(struct lhv *l, struct lhv_dev *d)
{
	return 0;
}

void lhv_vhost_unregister(struct lhv *l, struct lhv_dev *d)
{
}

static unsigned resends;

static int stub_resend(struct lhv *l, struct lhv_dev *d)
{
	resends++;
	return 0;
}

static unsigned answers;

static int stub_frame(struct lhv *l, struct lhv_dev *d, const struct vrio_frame *f,
		      const void *payload)
{
	answers++;
	return 0;
}

const struct lhv_dev_ops lhv_rr_ops = { .name = "rr", .frame_type = VRIO_FRAME_RESP,
					 .frame = stub_frame, .resend = stub_resend };
const struct lhv_dev_ops lhv_net_ops = { .name = "net", .frame_type = VRIO_FRAME_PKT };

/* ---- an in-memory transport ---- */

#define FAKE_MAX 64

struct fake_msg {
	struct vrio_frame f;
	uint8_t buf[512];
};

struct fake_conn {
	struct vrio_conn base;
	struct fake_msg in[FAKE_MAX], out[FAKE_MAX];
	unsigned in_head, in_tail, n_out;
	bool closed, reset;
};

static const struct vrio_transport_ops fake_ops;
static struct fake_conn *conns[8];
static unsigned n_conns;
static int connect_error;	/* the next connect()s fail with it */

static struct fake_conn *to_fake(struct vrio_conn *c)
{
	return (struct fake_conn *)((char *)c - offsetof(struct fake_conn, base));
}

static int fake_connect(const char *addr, int cancel_fd, struct vrio_conn **out)
{
	struct fake_conn *fc;

	(void)cancel_fd;
	if (connect_error)
		return connect_error;
	assert_true(n_conns < 8);
	fc = calloc(1, sizeof(*fc));
	assert_non_null(fc);
	fc->base.ops = &fake_ops;
	snprintf(fc->base.name, sizeof(fc->base.name), "%s", addr);
	conns[n_conns++] = fc;
	*out = &fc->base;
	return 0;
}

static int fake_send(struct vrio_conn *c, const struct vrio_frame *f, const struct iovec *iov,
		     int iovcnt)
{
	struct fake_conn *fc = to_fake(c);
	struct fake_msg *m;
	size_t off = 0;

	assert_false(fc->closed);
	assert_true(fc->n_out < FAKE_MAX);
	m = &fc->out[fc->n_out++];
	m->f = *f;
	for (int i = 0; i < iovcnt; i++) {
		assert_true(off + iov[i].iov_len <= sizeof(m->buf));
		memcpy(m->buf + off, iov[i].iov_base, iov[i].iov_len);
		off += iov[i].iov_len;
	}
	c->stats.frames_tx++;
	return 0;
}

static int fake_flush(struct vrio_conn *c)
{
	return 0;
}

static int fake_poll(struct vrio_conn *c, vrio_recv_cb cb, void *arg, unsigned budget)
{
	struct fake_conn *fc = to_fake(c);
	unsigned n = 0;
	int rc;

	while (fc->in_head < fc->in_tail && n < budget) {
		struct fake_msg *m = &fc->in[fc->in_head++];

		c->stats.frames_rx++;
		rc = cb(arg, c, &m->f, m->buf);
		if (rc < 0)
			return rc;
		n++;
	}
	if (!n && fc->reset)
		return -ECONNRESET;
	return (int)n;
}

static void fake_close(struct vrio_conn *c)
{
	to_fake(c)->closed = true;
}

static int fake_listen(const char *addr, struct vrio_listener **out)
{
	return -ENOTSUP;
}

static int fake_accept(struct vrio_listener *l, struct vrio_conn **out)
{
	return -EAGAIN;
}

static void fake_listener_close(struct vrio_listener *l)
{
}

static const struct vrio_transport_ops fake_ops = {
	.name = "fake",
	.listen = fake_listen,
	.accept = fake_accept,
	.connect = fake_connect,
	.send = fake_send,
	.flush = fake_flush,
	.poll = fake_poll,
	.close = fake_close,
	.listener_close = fake_listener_close,
};

/* The io-server's side of a frame. */
static void push_ctrl(struct fake_conn *fc, Vrio__Ctrl *m)
{
	struct fake_msg *in = &fc->in[fc->in_tail++];
	int n;

	assert_true(fc->in_tail <= FAKE_MAX);
	n = vrio_ctrl_pack(m, in->buf, sizeof(in->buf));
	assert_true(n > 0);
	memset(&in->f, 0, sizeof(in->f));
	in->f.type = VRIO_FRAME_CTRL;
	in->f.len = (uint32_t)n;
}

static void push_hello(struct fake_conn *fc)
{
	Vrio__Ctrl m = VRIO__CTRL__INIT;
	Vrio__Hello h = VRIO__HELLO__INIT;

	h.version = VRIO_PROTO_VERSION;
	h.node = (char *)"io0";
	m.msg_case = VRIO__CTRL__MSG_HELLO;
	m.hello = &h;
	push_ctrl(fc, &m);
}

static void push_attach_reply(struct fake_conn *fc)
{
	static uint8_t config[60];
	Vrio__Ctrl m = VRIO__CTRL__INIT;
	Vrio__AttachReply r = VRIO__ATTACH_REPLY__INIT;

	r.device = (char *)"disk-a";
	r.dev_id = 3;
	r.type = VRIO__DEVICE_TYPE__DEVICE_TYPE_BLK;
	r.config.data = config;
	r.config.len = sizeof(config);
	r.num_queues = 1;
	r.queue_size = 256;
	r.max_request = 4096;
	m.msg_case = VRIO__CTRL__MSG_ATTACH_REPLY;
	m.attach_reply = &r;
	push_ctrl(fc, &m);
}

static void push_heartbeat(struct fake_conn *fc)
{
	Vrio__Ctrl m = VRIO__CTRL__INIT;
	Vrio__Heartbeat h = VRIO__HEARTBEAT__INIT;

	m.msg_case = VRIO__CTRL__MSG_HEARTBEAT;
	m.heartbeat = &h;
	push_ctrl(fc, &m);
}

/* An answer to request id of the device (dev 3). */
static void push_resp(struct fake_conn *fc, uint32_t id)
{
	struct fake_msg *in = &fc->in[fc->in_tail++];

	assert_true(fc->in_tail <= FAKE_MAX);
	memset(&in->f, 0, sizeof(in->f));
	in->f.type = VRIO_FRAME_RESP;
	in->f.dev = 3;
	in->f.id = id;
}

/* A clean stop's goodbye, saying `taken` requests were taken. */
static void push_goodbye(struct fake_conn *fc, uint64_t taken)
{
	Vrio__Ctrl m = VRIO__CTRL__INIT;
	Vrio__Error e = VRIO__ERROR__INIT;

	e.status = -ESHUTDOWN;
	e.message = (char *)"the io-server is shutting down";
	e.requests_taken = taken;
	m.msg_case = VRIO__CTRL__MSG_ERROR;
	m.error = &e;
	push_ctrl(fc, &m);
}

/* The control messages local-hv sent on fc, from the i-th frame. */
static Vrio__Ctrl__MsgCase out_case(struct fake_conn *fc, unsigned i)
{
	Vrio__Ctrl *m;
	Vrio__Ctrl__MsgCase c;

	assert_true(i < fc->n_out);
	assert_int_equal(fc->out[i].f.type, VRIO_FRAME_CTRL);
	m = vrio_ctrl_unpack(fc->out[i].buf, fc->out[i].f.len);
	assert_non_null(m);
	c = m->msg_case;
	vrio_ctrl_free(m);
	return c;
}

/* ---- the fixture: one host, one io-server, one device ---- */

static uint64_t test_now;

static uint64_t test_clock(void)
{
	return test_now;
}

struct fixture {
	struct lhv l;
	struct vrio_topo_ioserver ios;
	struct lhv_upstream *up;
	struct lhv_dev d;
	uint64_t t0;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	if (!vrio_transport_find("fake"))
		assert_int_equal(vrio_transport_register(&fake_ops), 0);
	n_conns = 0;
	connect_error = 0;
	resends = 0;
	snprintf(f->l.node, sizeof(f->l.node), "host0");
	f->l.clock = test_clock;
	f->l.connect_inline = true;	/* connects as the test's clock says */
	f->ios.name = (char *)"io0";
	f->ios.transport = (char *)"fake";
	f->ios.listen = (char *)"io0.test";
	f->ios.heartbeat.interval_ms = 100;
	f->ios.heartbeat.dead_after_ms = 1000;
	f->up = lhv_up_get(&f->l, &f->ios);
	assert_non_null(f->up);
	snprintf(f->d.name, sizeof(f->d.name), "disk-a");
	f->d.type = VRIO_DEV_BLK;
	f->d.l = &f->l;
	f->d.up = f->up;
	lhv_up_link(f->up, &f->d);
	f->t0 = test_now = 1000000 * MS;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	lhv_up_close(f->up);
	for (unsigned i = 0; i < n_conns; i++)
		free(conns[i]);
	free(f->up);
	free(f);
	return 0;
}

static void poll_at(struct fixture *f, uint64_t ms)
{
	test_now = f->t0 + ms * MS;
	lhv_up_poll(f->up, test_now);
	lhv_up_flush(f->up, test_now);
}

static const char *view(struct fixture *f)
{
	return lhv_dev_state_name(&f->d);
}

/* Connected, the Hello and the Attach answered. */
static struct fake_conn *connect_and_attach(struct fixture *f, uint64_t ms)
{
	struct fake_conn *fc;

	poll_at(f, ms);
	assert_int_equal(__atomic_load_n(&f->up->state, __ATOMIC_RELAXED), LHV_UP_READY);
	fc = conns[n_conns - 1];
	assert_int_equal(out_case(fc, 0), VRIO__CTRL__MSG_HELLO);
	assert_int_equal(out_case(fc, 1), VRIO__CTRL__MSG_ATTACH);
	push_hello(fc);
	push_attach_reply(fc);
	poll_at(f, ms + 10);
	assert_string_equal(view(f), "attached");
	return fc;
}

static void test_quiet_then_hung(void **state)
{
	struct fixture *f = *state;
	struct fake_conn *fc, *fc2;
	unsigned sent;

	assert_string_equal(view(f), "connecting");
	fc = connect_and_attach(f, 0);
	assert_int_equal(__atomic_load_n(&f->up->peer, __ATOMIC_RELAXED), LHV_PEER_UP);
	/* A guest drives it from now on. */
	__atomic_store_n(&f->d.state, LHV_DEV_RUNNING, __ATOMIC_RELEASE);
	assert_int_equal(resends, 0);

	/* Quiet: a heartbeat once an interval passed since the last frame
	 * left (the Attach, at 10 ms at the latest), then one each interval. */
	sent = fc->n_out;
	poll_at(f, 60);
	assert_int_equal(fc->n_out, sent);
	poll_at(f, 115);
	assert_int_equal(fc->n_out, sent + 1);
	assert_int_equal(out_case(fc, sent), VRIO__CTRL__MSG_HEARTBEAT);
	assert_int_equal(f->up->st.heartbeats, 1);
	/* The poller may sleep until the next one, not spin. */
	assert_true(lhv_up_timeout_ms(f->up, f->t0 + 115 * MS) >= 99);
	poll_at(f, 116);
	assert_int_equal(fc->n_out, sent + 1);
	poll_at(f, 216);
	assert_int_equal(fc->n_out, sent + 2);

	/* Any frame is life: the io-server's heartbeat at 500 ms. */
	push_heartbeat(fc);
	poll_at(f, 500);
	/* Turns as a poller takes them (a gap of more than half of dead_after
	 * would be the poller's own, not the peer's silence). */
	poll_at(f, 900);
	poll_at(f, 1300);
	poll_at(f, 1499);
	assert_false(fc->closed);
	assert_string_equal(view(f), "attached");
	assert_int_equal(f->up->st.heartbeat_timeouts, 0);

	/* Silent for dead_after: closed as dead, counted, shown dead. */
	poll_at(f, 1500);
	assert_true(fc->closed);
	assert_int_equal(f->up->st.heartbeat_timeouts, 1);
	assert_int_equal(f->up->st.disconnects, 1);
	assert_int_equal(__atomic_load_n(&f->up->peer, __ATOMIC_RELAXED), LHV_PEER_DEAD);
	assert_string_equal(view(f), "dead");
	assert_false(f->d.attached);

	/* Not before the back-off (200 ms). */
	poll_at(f, 1699);
	assert_int_equal(n_conns, 1);
	/* Reconnected (a hung server's kernel accepts), Attach sent: still
	 * dead until the io-server answers. */
	poll_at(f, 1700);
	assert_int_equal(n_conns, 2);
	fc2 = conns[1];
	assert_int_equal(out_case(fc2, 1), VRIO__CTRL__MSG_ATTACH);
	assert_string_equal(view(f), "dead");
	/* That connection is declared dead in turn, dead_after later. */
	poll_at(f, 2100);
	poll_at(f, 2500);
	poll_at(f, 2699);
	assert_false(fc2->closed);
	poll_at(f, 2700);
	assert_true(fc2->closed);
	assert_int_equal(f->up->st.heartbeat_timeouts, 2);

	assert_int_equal(resends, 0);

	/* It answers on the next one: attached, shown attached, and what was
	 * in flight is sent again. */
	connect_and_attach(f, 2900);
	assert_int_equal(__atomic_load_n(&f->up->peer, __ATOMIC_RELAXED), LHV_PEER_UP);
	assert_int_equal(f->up->st.heartbeat_timeouts, 2);
	assert_int_equal(resends, 1);
}

static void test_closed_then_refused(void **state)
{
	struct fixture *f = *state;
	struct fake_conn *fc;

	fc = connect_and_attach(f, 0);
	/* The io-server's process is killed: its connection is reset. */
	fc->reset = true;
	poll_at(f, 50);
	assert_true(fc->closed);
	assert_int_equal(f->up->st.heartbeat_timeouts, 0);
	assert_string_equal(view(f), "unreachable");
	/* Nobody listens: refused, still unreachable, never dead. */
	connect_error = -ECONNREFUSED;
	poll_at(f, 1000);
	poll_at(f, 5000);
	assert_string_equal(view(f), "unreachable");
	assert_int_equal(f->up->st.heartbeat_timeouts, 0);
	/* Back. */
	connect_error = 0;
	connect_and_attach(f, 20000);
}

/* A clean stop: the goodbye closes the connection as the peer's word,
 * not a protocol error, and its count is checked against the answers
 * that came on that connection (and only that one). */
static void test_goodbye(void **state)
{
	struct fixture *f = *state;
	struct fake_conn *fc;

	fc = connect_and_attach(f, 0);
	__atomic_store_n(&f->d.state, LHV_DEV_RUNNING, __ATOMIC_RELEASE);
	answers = 0;
	push_resp(fc, 1);
	push_resp(fc, 2);
	push_goodbye(fc, 2);
	poll_at(f, 20);
	assert_int_equal(answers, 2);
	assert_true(fc->closed);
	assert_int_equal(f->up->st.goodbyes, 1);
	assert_int_equal(f->up->st.goodbye_unanswered, 0);
	assert_int_equal(f->up->st.protocol_errors, 0);
	assert_int_equal(f->up->st.disconnects, 1);
	assert_string_equal(view(f), "unreachable");

	/* The next io-server says it answered three; one came. */
	fc = connect_and_attach(f, 300);
	push_resp(fc, 3);
	push_goodbye(fc, 3);
	poll_at(f, 320);
	assert_true(fc->closed);
	assert_int_equal(f->up->st.goodbyes, 2);
	assert_int_equal(f->up->st.goodbye_unanswered, 2);
	assert_int_equal(f->up->st.protocol_errors, 0);

	/* An io-server older than the count says nothing: no shortfall. */
	fc = connect_and_attach(f, 600);
	push_resp(fc, 4);
	push_goodbye(fc, 0);
	poll_at(f, 620);
	assert_true(fc->closed);
	assert_int_equal(f->up->st.goodbyes, 3);
	assert_int_equal(f->up->st.goodbye_unanswered, 2);
}


/* ---- authentication: this host has a key (proto/auth.h) ---- */

static uint8_t key_bytes[32], other_bytes[32];
static struct vrio_key host_key = { .bytes = key_bytes, .len = sizeof(key_bytes) };

/* The nonce of local-hv's Hello on fc (its first frame). */
static void hello_nonce(struct fake_conn *fc, uint8_t nh[VRIO_AUTH_NONCE_LEN])
{
	Vrio__Ctrl *m = vrio_ctrl_unpack(fc->out[0].buf, fc->out[0].f.len);

	assert_non_null(m);
	assert_int_equal(m->msg_case, VRIO__CTRL__MSG_HELLO);
	assert_int_equal(m->hello->nonce.len, VRIO_AUTH_NONCE_LEN);
	memcpy(nh, m->hello->nonce.data, VRIO_AUTH_NONCE_LEN);
	vrio_ctrl_free(m);
}

/* The io-server's Hello: its nonce ns and a proof under `key` (NULL: no
 * proof at all) over nh and ns. */
static void push_challenge(struct fake_conn *fc, const uint8_t *nh, const uint8_t *ns,
			   const uint8_t *key)
{
	struct vrio_auth_ctx c = {
		.key = key, .key_len = 32, .host = "host0", .ioserver = "io0",
		.host_nonce = nh, .ios_nonce = ns,
	};
	uint8_t proof[VRIO_AUTH_PROOF_LEN];
	Vrio__Ctrl m = VRIO__CTRL__INIT;
	Vrio__Hello h = VRIO__HELLO__INIT;

	h.version = VRIO_PROTO_VERSION;
	h.node = (char *)"io0";
	h.nonce.data = (uint8_t *)ns;
	h.nonce.len = VRIO_AUTH_NONCE_LEN;
	if (key) {
		assert_int_equal(vrio_auth_proof(&c, VRIO_AUTH_IOSERVER, proof), 0);
		h.proof.data = proof;
		h.proof.len = sizeof(proof);
	}
	m.msg_case = VRIO__CTRL__MSG_HELLO;
	m.hello = &h;
	push_ctrl(fc, &m);
}

static int setup_key(void **state)
{
	struct fixture *f;

	for (unsigned i = 0; i < sizeof(key_bytes); i++) {
		key_bytes[i] = (uint8_t)(i + 1);
		other_bytes[i] = (uint8_t)(i + 2);
	}
	setup(state);
	f = *state;
	f->l.key = &host_key;
	return 0;
}

static void test_auth_good(void **state)
{
	struct fixture *f = *state;
	uint8_t nh[VRIO_AUTH_NONCE_LEN], ns[VRIO_AUTH_NONCE_LEN] = { 9, 8, 7 };
	struct vrio_auth_ctx c = {
		.key = key_bytes, .key_len = 32, .host = "host0", .ioserver = "io0",
		.host_nonce = nh, .ios_nonce = ns,
	};
	struct fake_conn *fc;
	Vrio__Ctrl *m;

	/* The Hello alone, with a nonce; no Attach, and no heartbeat while
	 * the io-server has not answered. */
	poll_at(f, 0);
	fc = conns[0];
	assert_int_equal(fc->n_out, 1);
	hello_nonce(fc, nh);
	poll_at(f, 150);
	assert_int_equal(fc->n_out, 1);
	/* Its proof checks: ours goes, then the Attach. */
	push_challenge(fc, nh, ns, key_bytes);
	poll_at(f, 160);
	assert_false(fc->closed);
	assert_int_equal(fc->n_out, 3);
	m = vrio_ctrl_unpack(fc->out[1].buf, fc->out[1].f.len);
	assert_non_null(m);
	assert_int_equal(m->msg_case, VRIO__CTRL__MSG_AUTH);
	assert_int_equal(vrio_auth_check(&c, VRIO_AUTH_HOST, m->auth->proof.data,
					 m->auth->proof.len), 0);
	vrio_ctrl_free(m);
	assert_int_equal(out_case(fc, 2), VRIO__CTRL__MSG_ATTACH);
	push_attach_reply(fc);
	poll_at(f, 170);
	assert_string_equal(view(f), "attached");
	assert_int_equal(f->up->st.auth_failures, 0);
}

/* Each io-server that cannot prove the key: closed before anything but
 * the Hello went, counted, not a protocol error, and tried again. */
static void test_auth_refusals(void **state)
{
	static const char *const cases[] = {
		"another key", "no proof", "a proof replayed from another connection",
		"the io-server refuses our proof",
	};
	uint8_t nh[VRIO_AUTH_NONCE_LEN], old_nh[VRIO_AUTH_NONCE_LEN];
	uint8_t ns[VRIO_AUTH_NONCE_LEN] = { 1, 2, 3 };
	struct fixture *f = *state;
	struct fake_conn *fc;
	uint64_t at = 0;

	for (unsigned k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		at += 3000;
		poll_at(f, at);
		fc = conns[n_conns - 1];
		assert_int_equal(fc->n_out, 1);
		hello_nonce(fc, nh);
		switch (k) {
		case 0:
			push_challenge(fc, nh, ns, other_bytes);
			break;
		case 1:
			push_challenge(fc, nh, ns, NULL);
			break;
		case 2:
			/* The right proof, for the last connection's nonce. */
			push_challenge(fc, old_nh, ns, key_bytes);
			break;
		default: {
			Vrio__Ctrl m = VRIO__CTRL__INIT;
			Vrio__Error e = VRIO__ERROR__INIT;

			push_challenge(fc, nh, ns, key_bytes);
			poll_at(f, at + 1);
			assert_int_equal(out_case(fc, 1), VRIO__CTRL__MSG_AUTH);
			e.status = -EACCES;
			e.message = (char *)"host0: authentication failed";
			m.msg_case = VRIO__CTRL__MSG_ERROR;
			m.error = &e;
			push_ctrl(fc, &m);
			break;
		}
		}
		memcpy(old_nh, nh, sizeof(nh));
		poll_at(f, at + 10);
		if (!fc->closed)
			fail_msg("case '%s': still connected", cases[k]);
		assert_int_equal(f->up->st.auth_failures, k + 1);
		assert_int_equal(f->up->st.protocol_errors, 0);
		/* Only the last case got as far as our proof (and the Attach
		 * behind it). */
		assert_int_equal(fc->n_out, k == 3 ? 3 : 1);
		assert_false(f->d.attached);
		assert_string_equal(view(f), "unreachable");
	}
	assert_int_equal(n_conns, 4);
	assert_int_equal(f->up->auth_streak, 4);
	/* An io-server with the key again: in, and the streak is over. */
	poll_at(f, at + 3000);
	fc = conns[n_conns - 1];
	hello_nonce(fc, nh);
	push_challenge(fc, nh, ns, key_bytes);
	poll_at(f, at + 3001);
	push_attach_reply(fc);
	poll_at(f, at + 3002);
	assert_string_equal(view(f), "attached");
	assert_int_equal(f->up->auth_streak, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_quiet_then_hung, setup, teardown),
		cmocka_unit_test_setup_teardown(test_closed_then_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_goodbye, setup, teardown),
		cmocka_unit_test_setup_teardown(test_auth_good, setup_key, teardown),
		cmocka_unit_test_setup_teardown(test_auth_refusals, setup_key, teardown),
	};

	vrio_log_init("test_upstream", VRIO_LOG_NOTICE);
	return cmocka_run_group_tests(tests, NULL, NULL);
}

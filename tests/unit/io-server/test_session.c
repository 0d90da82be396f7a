/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The session protocol, driven through an in-memory transport: hello,
 * attach and its refusals, REQ/RESP, heartbeats, device errors, detach,
 * and the garbage that must close the connection (and only it). Then the
 * switch, through the same sessions: PKT frames between net devices of two
 * hosts, learning, flooding, ageing, isolation between networks, and the
 * frames it must drop.
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/virtio_blk.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cmocka.h>

#include "auth.h"
#include "ctrl.h"
#include "ioserver_internal.h"

/* %s: host2's key file, made by setup. */
static const char topo_yaml[] =
	"version: 1\n"
	"io_servers:\n"
	"  - name: io0\n"
	"    listen: 127.0.0.1:7400\n"
	/* The clock jumps (the switch's ageing): no heartbeat gets in the
	 * way; test_liveness sets its own. */
	"    heartbeat: {interval_ms: 60000, dead_after_ms: 600000}\n"
	"  - name: io1\n"
	"    listen: 127.0.0.1:7401\n"
	"hosts:\n"
	"  - name: host0\n"
	"  - name: host1\n"
	"  - name: host2\n"
	"    key_file: %s\n"
	"devices:\n"
	"  - name: disk-a\n"
	"    type: blk\n"
	"    host: host0\n"
	"    io_server: io0\n"
	"    socket: /run/vrio/a.sock\n"
	"    queues: 2\n"
	"    queue_size: 4\n"
	"    backend: {ram: 1M}\n"
	"  - name: disk-b\n"
	"    type: blk\n"
	"    host: host1\n"
	"    io_server: io0\n"
	"    socket: /run/vrio/b.sock\n"
	"    backend: {ram: 1M}\n"
	"  - name: disk-c\n"
	"    type: blk\n"
	"    host: host0\n"
	"    io_server: io1\n"
	"    socket: /run/vrio/c.sock\n"
	"    backend: {ram: 1M}\n"
	"  - name: nic-a\n"
	"    type: net\n"
	"    host: host0\n"
	"    io_server: io0\n"
	"    socket: /run/vrio/na.sock\n"
	"    mac: 52:54:00:00:00:0a\n"
	"    network: lan\n"
	"  - name: nic-b\n"
	"    type: net\n"
	"    host: host1\n"
	"    io_server: io0\n"
	"    socket: /run/vrio/nb.sock\n"
	"    mac: 52:54:00:00:00:0b\n"
	"    network: lan\n"
	"  - name: nic-c\n"
	"    type: net\n"
	"    host: host0\n"
	"    io_server: io0\n"
	"    socket: /run/vrio/nc.sock\n"
	"    mac: 52:54:00:00:00:0c\n"
	"    network: other\n"
	/* A deep neighbour of disk-a's on the same connection (fairness). */
	"  - name: disk-d\n"
	"    type: blk\n"
	"    host: host0\n"
	"    io_server: io0\n"
	"    socket: /run/vrio/d.sock\n"
	"    queue_size: 128\n"
	"    backend: {ram: 1M}\n"
	"networks:\n"
	"  - name: lan\n"
	"    ageing: 2\n"
	"  - name: other\n";

/* dev_id of each net device: io0's devices in topology order. */
enum { NIC_A = 2, NIC_B = 3, NIC_C = 4 };

/* ---- an in-memory transport ---- */

struct msg {
	struct vrio_frame f;
	uint8_t *payload;
};

#define FAKE_MAX 64

struct fake_conn {
	struct vrio_conn base;
	struct msg in[FAKE_MAX];
	unsigned in_head, in_tail;
	struct msg out[FAKE_MAX];
	unsigned n_out;
	bool closed;
	bool stuck;		/* flush() cannot push everything */
	unsigned refuse;	/* send() refuses this many: -ENOBUFS */
	bool hung_up;		/* the peer closed: poll() ends with -ECONNRESET */
	int efd;		/* what the reactor would sleep on */
};

static struct fake_conn *to_fake(struct vrio_conn *c)
{
	return container_of(c, struct fake_conn, base);
}

static int fake_send(struct vrio_conn *c, const struct vrio_frame *f, const struct iovec *iov,
		     int iovcnt)
{
	struct fake_conn *fc = to_fake(c);
	struct msg *m;
	size_t off = 0;
	int i;

	assert_false(fc->closed);
	if (fc->refuse) {
		fc->refuse--;
		return -ENOBUFS;
	}
	assert_true(fc->n_out < FAKE_MAX);
	c->stats.frames_tx++;
	m = &fc->out[fc->n_out++];
	m->f = *f;
	m->payload = malloc(f->len ? f->len : 1);
	for (i = 0; i < iovcnt; i++) {
		memcpy(m->payload + off, iov[i].iov_base, iov[i].iov_len);
		off += iov[i].iov_len;
	}
	assert_int_equal(off, f->len);
	return 0;
}

static int fake_flush(struct vrio_conn *c)
{
	return to_fake(c)->stuck ? 1 : 0;
}

static int fake_poll(struct vrio_conn *c, vrio_recv_cb cb, void *arg, unsigned budget)
{
	struct fake_conn *fc = to_fake(c);
	unsigned n = 0;
	struct msg *m;
	int rc;

	while (fc->in_head != fc->in_tail && n < budget) {
		m = &fc->in[fc->in_head++];
		c->stats.frames_rx++;
		rc = cb(arg, c, &m->f, m->payload);
		free(m->payload);
		m->payload = NULL;
		if (rc < 0)
			return rc;
		n++;
	}
	if (fc->hung_up && fc->in_head == fc->in_tail)
		return -ECONNRESET;
	return (int)n;
}

static void fake_close(struct vrio_conn *c)
{
	to_fake(c)->closed = true;
}

static int fake_fd(struct vrio_conn *c)
{
	return to_fake(c)->efd;
}

static const struct vrio_transport_ops fake_ops = {
	.name = "fake",
	.send = fake_send,
	.flush = fake_flush,
	.poll = fake_poll,
	.close = fake_close,
	.conn_fd = fake_fd,
};

static void push(struct fake_conn *fc, const struct vrio_frame *f, const void *payload)
{
	struct msg *m = &fc->in[fc->in_tail++];

	assert_true(fc->in_tail <= FAKE_MAX);
	m->f = *f;
	m->payload = malloc(f->len ? f->len : 1);
	memcpy(m->payload, payload, f->len);
}

static void push_ctrl(struct fake_conn *fc, Vrio__Ctrl *m)
{
	struct vrio_frame f = { .type = VRIO_FRAME_CTRL };
	uint8_t buf[1024];
	int n = vrio_ctrl_pack(m, buf, sizeof(buf));

	assert_true(n >= 0);
	f.len = (uint32_t)n;
	push(fc, &f, buf);
}

static void push_hello(struct fake_conn *fc, uint32_t version, const char *node)
{
	Vrio__Ctrl m = VRIO__CTRL__INIT;
	Vrio__Hello h = VRIO__HELLO__INIT;

	h.version = version;
	h.node = (char *)node;
	m.seq = 1;
	m.msg_case = VRIO__CTRL__MSG_HELLO;
	m.hello = &h;
	push_ctrl(fc, &m);
}

static void push_attach(struct fake_conn *fc, uint64_t seq, const char *dev)
{
	Vrio__Ctrl m = VRIO__CTRL__INIT;
	Vrio__Attach a = VRIO__ATTACH__INIT;

	a.device = (char *)dev;
	m.seq = seq;
	m.msg_case = VRIO__CTRL__MSG_ATTACH;
	m.attach = &a;
	push_ctrl(fc, &m);
}

static void push_detach(struct fake_conn *fc, uint32_t dev_id)
{
	Vrio__Ctrl m = VRIO__CTRL__INIT;
	Vrio__Detach d = VRIO__DETACH__INIT;

	d.dev_id = dev_id;
	m.msg_case = VRIO__CTRL__MSG_DETACH;
	m.detach = &d;
	push_ctrl(fc, &m);
}

/* A virtio-blk request: header, then `data` bytes of OUT data. */
static void push_req(struct fake_conn *fc, uint32_t dev, uint16_t queue, uint32_t id,
		     uint32_t type, uint64_t sector, uint32_t data, uint32_t wcap)
{
	struct vrio_frame f = { .type = VRIO_FRAME_REQ, .dev = dev, .queue = queue, .id = id };
	uint8_t *p = calloc(1, 16 + data);
	uint32_t t = htole32(type);
	uint64_t s = htole64(sector);

	memcpy(p, &t, 4);
	memcpy(p + 8, &s, 8);
	memset(p + 16, 0x42, data);
	f.len = 16 + data;
	f.arg = wcap;
	push(fc, &f, p);
	free(p);
}

/* ---- fixture ---- */

struct fixture {
	char dir[64], key_path[96];	/* host2's key file */
	uint8_t key[40];
	struct vrio_topology *topo;
	struct ios_server srv;
	struct ios_reactor *r;
	struct fake_conn fc[2];
	struct ios_session *s[2];
};

/* The reactor's clock: the switch's ageing runs on it. */
static uint64_t test_now = 1;

static uint64_t test_clock(void)
{
	return test_now;
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct ios_device *d;
	char err[256], yaml[4096];
	int i, n = 0, fd;

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/vrio-test-session-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->key_path, sizeof(f->key_path), "%s/host2.key", f->dir);
	for (i = 0; i < (int)sizeof(f->key); i++)
		f->key[i] = (uint8_t)(i * 7 + 3);
	fd = open(f->key_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, f->key, sizeof(f->key)), sizeof(f->key));
	close(fd);
	snprintf(yaml, sizeof(yaml), topo_yaml, f->key_path);
	assert_int_equal(vrio_topology_parse("test.yaml", yaml, strlen(yaml), &f->topo, err,
					     sizeof(err)), 0);
	/* One reactor, not started: the test turns it. */
	assert_int_equal(ios_server_init(&f->srv, f->topo, "io0", NULL), 0);
	for (d = ios_device_next(&f->srv, NULL, NULL); d; d = ios_device_next(&f->srv, d, NULL))
		n++;
	assert_int_equal(n, 6);
	assert_int_equal(f->srv.sw->n_nets, 2);
	f->r = f->srv.reactors[0];
	f->r->clock = test_clock;
	for (i = 0; i < 2; i++) {
		f->fc[i].base.ops = &fake_ops;
		f->fc[i].efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		assert_true(f->fc[i].efd >= 0);
		snprintf(f->fc[i].base.name, sizeof(f->fc[i].base.name), "peer%d", i);
		f->s[i] = ios_session_create(&f->srv, &f->fc[i].base);
		assert_non_null(f->s[i]);
		__atomic_add_fetch(&f->r->n_sessions, 1, __ATOMIC_RELAXED);
		ios_session_adopt(f->r, f->s[i]);
	}
	*state = f;
	return 0;
}

static void clear_out(struct fake_conn *fc)
{
	unsigned i;

	for (i = 0; i < fc->n_out; i++)
		free(fc->out[i].payload);
	fc->n_out = 0;
}

static void free_msgs(struct fake_conn *fc)
{
	unsigned i;

	clear_out(fc);
	for (i = fc->in_head; i < fc->in_tail; i++)
		free(fc->in[i].payload);
	fc->in_head = fc->in_tail = 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	int i;

	ios_server_stop(&f->srv);
	ios_server_fini(&f->srv);
	for (i = 0; i < 2; i++) {
		free_msgs(&f->fc[i]);
		close(f->fc[i].efd);
	}
	vrio_topology_free(f->topo);
	unlink(f->key_path);
	rmdir(f->dir);
	free(f);
	return 0;
}

/* Turns the reactor until nothing moves. */
static void turn(struct fixture *f)
{
	int i;

	for (i = 0; i < 100; i++)
		if (!ios_reactor_turn(f->r))
			return;
	fail_msg("the reactor never went idle");
}

/* The session is still on its reactor (not freed). */
static bool session_alive(struct fixture *f, struct ios_session *s)
{
	struct ios_session *x;

	TAILQ_FOREACH(x, &ios_rctx(f->r)->sessions, link)
		if (x == s)
			return true;
	return false;
}

static Vrio__Ctrl *out_ctrl(struct fake_conn *fc, unsigned i)
{
	Vrio__Ctrl *m;

	assert_true(i < fc->n_out);
	assert_int_equal(fc->out[i].f.type, VRIO_FRAME_CTRL);
	m = vrio_ctrl_unpack(fc->out[i].payload, fc->out[i].f.len);
	assert_non_null(m);
	return m;
}

static void hello_ok(struct fixture *f, int i, const char *node)
{
	Vrio__Ctrl *m;

	push_hello(&f->fc[i], VRIO_PROTO_VERSION, node);
	turn(f);
	m = out_ctrl(&f->fc[i], f->fc[i].n_out - 1);
	assert_int_equal(m->msg_case, VRIO__CTRL__MSG_HELLO);
	assert_string_equal(m->hello->node, "io0");
	assert_int_equal(m->hello->version, VRIO_PROTO_VERSION);
	assert_int_equal(m->seq, 1);
	vrio_ctrl_free(m);
}

static int attach(struct fixture *f, int i, const char *dev, uint32_t *dev_id)
{
	Vrio__Ctrl *m;
	int status;

	push_attach(&f->fc[i], 7, dev);
	turn(f);
	m = out_ctrl(&f->fc[i], f->fc[i].n_out - 1);
	assert_int_equal(m->msg_case, VRIO__CTRL__MSG_ATTACH_REPLY);
	assert_int_equal(m->seq, 7);
	status = m->attach_reply->status;
	if (status == 0 && !strncmp(dev, "nic-", 4)) {
		assert_int_equal(m->attach_reply->type, VRIO__DEVICE_TYPE__DEVICE_TYPE_NET);
		assert_int_equal(m->attach_reply->config.len, IOS_NET_CONFIG_LEN);
		assert_int_equal(m->attach_reply->num_queues, 2);
		/* The config's MAC is the topology's. */
		assert_int_equal(m->attach_reply->config.data[5], 0x0a + (dev[4] - 'a'));
		if (dev_id)
			*dev_id = m->attach_reply->dev_id;
	} else if (status == 0) {
		assert_string_equal(m->attach_reply->device, dev);
		assert_int_equal(m->attach_reply->type, VRIO__DEVICE_TYPE__DEVICE_TYPE_BLK);
		assert_int_equal(m->attach_reply->config.len, IOS_BLK_CONFIG_LEN);
		assert_int_equal(m->attach_reply->features >> 24, 0);
		assert_true(m->attach_reply->max_request <= VRIO_FRAME_MAX_PAYLOAD - 4096);
		if (!strcmp(dev, "disk-a")) {
			assert_int_equal(m->attach_reply->max_request, 2 * 65536 + 16);
			assert_int_equal(m->attach_reply->num_queues, 2);
			assert_int_equal(m->attach_reply->queue_size, 4);
		}
		if (dev_id)
			*dev_id = m->attach_reply->dev_id;
	} else {
		assert_true(m->attach_reply->error[0] != '\0');
	}
	vrio_ctrl_free(m);
	return status;
}

/* A PKT frame: no offload metadata, then an Ethernet frame of `len` bytes
 * from `src` to `dst` whose payload bytes are `fill`. */
static void push_pkt(struct fake_conn *fc, uint32_t dev, const uint8_t dst[6],
		     const uint8_t src[6], uint32_t len, uint8_t fill)
{
	struct vrio_frame f = { .type = VRIO_FRAME_PKT, .dev = dev };
	uint8_t *p = calloc(1, VRIO_PKT_HDR_LEN + len + 14);

	memcpy(p + VRIO_PKT_HDR_LEN, dst, 6);
	memcpy(p + VRIO_PKT_HDR_LEN + 6, src, 6);
	p[VRIO_PKT_HDR_LEN + 12] = 0x08;
	if (len > 14)
		memset(p + VRIO_PKT_HDR_LEN + 14, fill, len - 14);
	f.len = VRIO_PKT_HDR_LEN + len;
	push(fc, &f, p);
	free(p);
}

/* The PKT frames a connection got since the last clear, for `dev`. */
static unsigned pkts_for(const struct fake_conn *fc, uint32_t dev, uint8_t fill)
{
	unsigned n = 0;

	for (unsigned i = 0; i < fc->n_out; i++) {
		const struct msg *m = &fc->out[i];

		if (m->f.type != VRIO_FRAME_PKT || m->f.dev != dev)
			continue;
		assert_true(m->f.len > VRIO_PKT_HDR_LEN + 14);
		for (unsigned k = 0; k < VRIO_PKT_HDR_LEN; k++)
			assert_int_equal(m->payload[k], 0);
		n += m->payload[m->f.len - 1] == fill;
	}
	return n;
}

static const uint8_t mac_a[6] = { 0x52, 0x54, 0, 0, 0, 0x0a };
static const uint8_t mac_b[6] = { 0x52, 0x54, 0, 0, 0, 0x0b };
static const uint8_t mac_c[6] = { 0x52, 0x54, 0, 0, 0, 0x0c };
static const uint8_t mac_x[6] = { 0x52, 0x54, 0, 0, 0, 0x77 };
static const uint8_t bcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };

static uint64_t drops(const struct fixture *f, uint32_t dev, enum ios_port_drop why)
{
	return f->srv.devs[dev]->u.net.port->st.drops[why];
}

/* host0 has nic-a (lan) and nic-c (other) on connection 0, host1 nic-b. */
static void net_up(struct fixture *f)
{
	hello_ok(f, 0, "host0");
	hello_ok(f, 1, "host1");
	assert_int_equal(attach(f, 0, "nic-a", NULL), 0);
	assert_int_equal(attach(f, 0, "nic-c", NULL), 0);
	assert_int_equal(attach(f, 1, "nic-b", NULL), 0);
	clear_out(&f->fc[0]);
	clear_out(&f->fc[1]);
}

/* ---- tests ---- */

static void test_hello_wrong_version(void **state)
{
	struct fixture *f = *state;
	Vrio__Ctrl *m;

	push_hello(&f->fc[0], VRIO_PROTO_VERSION + 1, "host0");
	turn(f);
	assert_int_equal(f->fc[0].n_out, 1);
	m = out_ctrl(&f->fc[0], 0);
	assert_int_equal(m->msg_case, VRIO__CTRL__MSG_ERROR);
	assert_int_equal(m->error->status, -EPROTONOSUPPORT);
	vrio_ctrl_free(m);
	assert_true(f->fc[0].closed);
	assert_false(f->fc[1].closed);
}

static void test_hello_unknown_node(void **state)
{
	struct fixture *f = *state;
	Vrio__Ctrl *m;

	push_hello(&f->fc[0], VRIO_PROTO_VERSION, "intruder");
	turn(f);
	m = out_ctrl(&f->fc[0], 0);
	assert_int_equal(m->msg_case, VRIO__CTRL__MSG_ERROR);
	assert_int_equal(m->error->status, -EPERM);
	vrio_ctrl_free(m);
	assert_true(f->fc[0].closed);
}

static void test_request_before_hello(void **state)
{
	struct fixture *f = *state;

	push_req(&f->fc[0], 0, 0, 1, VIRTIO_BLK_T_IN, 0, 0, 513);
	turn(f);
	assert_int_equal(f->fc[0].n_out, 0);
	assert_true(f->fc[0].closed);
	assert_false(f->fc[1].closed);
}

/* ---- authentication (proto/auth.h), host2 has a key ---- */

struct auth_run {
	uint8_t nh[VRIO_AUTH_NONCE_LEN], ns[VRIO_AUTH_NONCE_LEN];
	uint8_t host_proof[VRIO_AUTH_PROOF_LEN];
};

static void push_hello_nonce(struct fake_conn *fc, const char *node, const uint8_t *nonce,
			     size_t len)
{
	Vrio__Ctrl m = VRIO__CTRL__INIT;
	Vrio__Hello h = VRIO__HELLO__INIT;

	h.version = VRIO_PROTO_VERSION;
	h.node = (char *)node;
	h.nonce.data = (uint8_t *)nonce;
	h.nonce.len = len;
	m.seq = 1;
	m.msg_case = VRIO__CTRL__MSG_HELLO;
	m.hello = &h;
	push_ctrl(fc, &m);
}

static void push_auth(struct fake_conn *fc, const uint8_t *proof, size_t len)
{
	Vrio__Ctrl m = VRIO__CTRL__INIT;
	Vrio__Auth a = VRIO__AUTH__INIT;

	a.proof.data = (uint8_t *)proof;
	a.proof.len = len;
	m.seq = 2;
	m.msg_case = VRIO__CTRL__MSG_AUTH;
	m.auth = &a;
	push_ctrl(fc, &m);
}

/* host2's Hello on connection i, the io-server's proof checked with key,
 * and the host's proof computed for the caller to send (or not). */
static void auth_hello(struct fixture *f, int i, struct auth_run *run)
{
	struct vrio_auth_ctx c = {
		.key = f->key, .key_len = sizeof(f->key), .host = "host2", .ioserver = "io0",
		.host_nonce = run->nh, .ios_nonce = run->ns,
	};
	Vrio__Ctrl *m;

	assert_int_equal(vrio_auth_nonce(run->nh), 0);
	push_hello_nonce(&f->fc[i], "host2", run->nh, sizeof(run->nh));
	turn(f);
	assert_int_equal(f->fc[i].n_out, 1);
	m = out_ctrl(&f->fc[i], 0);
	assert_int_equal(m->msg_case, VRIO__CTRL__MSG_HELLO);
	assert_int_equal(m->hello->nonce.len, VRIO_AUTH_NONCE_LEN);
	memcpy(run->ns, m->hello->nonce.data, VRIO_AUTH_NONCE_LEN);
	assert_int_equal(vrio_auth_check(&c, VRIO_AUTH_IOSERVER, m->hello->proof.data,
					 m->hello->proof.len), 0);
	vrio_ctrl_free(m);
	assert_int_equal(vrio_auth_proof(&c, VRIO_AUTH_HOST, run->host_proof), 0);
	clear_out(&f->fc[i]);
}

static uint64_t host_counter(struct fixture *f, const uint64_t *by_host, const char *host)
{
	int slot = ios_server_host(&f->srv, host, false);

	assert_true(slot >= 0);
	return by_host[slot];
}

/* The Error that refused connection i, and its close. */
static void refused(struct fixture *f, int i, int status)
{
	Vrio__Ctrl *m = out_ctrl(&f->fc[i], f->fc[i].n_out - 1);

	assert_int_equal(m->msg_case, VRIO__CTRL__MSG_ERROR);
	assert_int_equal(m->error->status, status);
	vrio_ctrl_free(m);
	assert_true(f->fc[i].closed);
}

static void test_auth_good(void **state)
{
	struct fixture *f = *state;
	struct auth_run run;

	auth_hello(f, 0, &run);
	/* Nothing but the proof before it is given. */
	push_auth(&f->fc[0], run.host_proof, sizeof(run.host_proof));
	turn(f);
	assert_int_equal(f->fc[0].n_out, 0);
	assert_false(f->fc[0].closed);
	assert_int_equal(f->s[0]->state, IOS_SESSION_READY);
	/* In: only host2's own devices, and it has none here. */
	assert_int_equal(attach(f, 0, "disk-a", NULL), -EPERM);
	assert_int_equal(host_counter(f, ios_rctx(f->r)->attach_refused, "host2"), 1);
	assert_int_equal(host_counter(f, ios_rctx(f->r)->auth_failures, "host2"), 0);
	assert_false(f->fc[0].closed);
}

/* Each way in without the key: refused, counted, closed, and only it. */
static void test_auth_refusals(void **state)
{
	static const char *const cases[] = {
		"no nonce", "short nonce", "wrong proof", "short proof", "replayed proof",
		"attach before the proof", "reflected proof", "second hello", "hung up",
	};
	struct auth_run run, old;
	uint64_t fails;

	for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		struct fixture *f;
		uint8_t bad[VRIO_AUTH_PROOF_LEN];
		Vrio__Ctrl *m;

		assert_int_equal(setup(state), 0);
		f = *state;
		switch (k) {
		case 0:
			push_hello(&f->fc[0], VRIO_PROTO_VERSION, "host2");
			turn(f);
			refused(f, 0, -EACCES);
			break;
		case 1:
			push_hello_nonce(&f->fc[0], "host2", bad, 16);
			turn(f);
			refused(f, 0, -EACCES);
			break;
		case 2:
			auth_hello(f, 0, &run);
			run.host_proof[0] ^= 1;
			push_auth(&f->fc[0], run.host_proof, sizeof(run.host_proof));
			turn(f);
			refused(f, 0, -EACCES);
			break;
		case 3:
			auth_hello(f, 0, &run);
			push_auth(&f->fc[0], run.host_proof, 31);
			turn(f);
			refused(f, 0, -EACCES);
			break;
		case 4:
			/* A recorded good exchange, sent again on a new
			 * connection: the io-server's nonce differs. */
			auth_hello(f, 1, &old);
			push_auth(&f->fc[1], old.host_proof, sizeof(old.host_proof));
			turn(f);
			assert_false(f->fc[1].closed);
			push_hello_nonce(&f->fc[0], "host2", old.nh, sizeof(old.nh));
			turn(f);
			m = out_ctrl(&f->fc[0], 0);
			assert_memory_not_equal(m->hello->nonce.data, old.ns, VRIO_AUTH_NONCE_LEN);
			vrio_ctrl_free(m);
			push_auth(&f->fc[0], old.host_proof, sizeof(old.host_proof));
			turn(f);
			refused(f, 0, -EACCES);
			break;
		case 5:
			auth_hello(f, 0, &run);
			push_attach(&f->fc[0], 7, "disk-a");
			turn(f);
			assert_int_equal(f->fc[0].n_out, 0);
			assert_true(f->fc[0].closed);
			break;
		case 6:
			/* The io-server's own proof sent back as the host's. */
			assert_int_equal(vrio_auth_nonce(run.nh), 0);
			push_hello_nonce(&f->fc[0], "host2", run.nh, sizeof(run.nh));
			turn(f);
			m = out_ctrl(&f->fc[0], 0);
			memcpy(bad, m->hello->proof.data, sizeof(bad));
			vrio_ctrl_free(m);
			push_auth(&f->fc[0], bad, sizeof(bad));
			turn(f);
			refused(f, 0, -EACCES);
			break;
		case 7:
			auth_hello(f, 0, &run);
			push_hello_nonce(&f->fc[0], "host2", run.nh, sizeof(run.nh));
			turn(f);
			assert_true(f->fc[0].closed);
			break;
		default:
			/* Its local-hv found our proof wrong and left. */
			auth_hello(f, 0, &run);
			f->fc[0].hung_up = true;
			turn(f);
			assert_true(f->fc[0].closed);
			break;
		}
		fails = host_counter(f, ios_rctx(f->r)->auth_failures, "host2");
		if (fails != 1)
			fail_msg("case '%s': %llu failures counted, want 1", cases[k],
				 (unsigned long long)fails);
		assert_int_equal(f->srv.devs[0]->owner, NULL);
		if (k != 4)
			assert_false(f->fc[1].closed);
		assert_int_equal(teardown(state), 0);
	}
	*state = NULL;
}

/* A host without a key_file here still gets in, unauthenticated, and a
 * nonce it sends is answered without a proof (its local-hv refuses). */
static void test_auth_keyless_host(void **state)
{
	struct fixture *f = *state;
	uint8_t nh[VRIO_AUTH_NONCE_LEN] = { 1 };
	Vrio__Ctrl *m;

	push_hello_nonce(&f->fc[0], "host0", nh, sizeof(nh));
	turn(f);
	m = out_ctrl(&f->fc[0], 0);
	assert_int_equal(m->msg_case, VRIO__CTRL__MSG_HELLO);
	assert_int_equal(m->hello->proof.len, 0);
	vrio_ctrl_free(m);
	assert_int_equal(f->s[0]->state, IOS_SESSION_READY);
	/* An Auth nobody asked for is garbage. */
	push_auth(&f->fc[0], nh, sizeof(nh));
	turn(f);
	assert_true(f->fc[0].closed);
}

static void test_attach_rules(void **state)
{
	struct fixture *f = *state;
	uint32_t id;

	hello_ok(f, 0, "host0");
	hello_ok(f, 1, "host0");
	assert_int_equal(attach(f, 0, "no-such-disk", NULL), -ENOENT);
	assert_int_equal(attach(f, 0, "disk-c", NULL), -ENOENT);	/* io1's */
	assert_int_equal(attach(f, 0, "disk-b", NULL), -EPERM);		/* host1's */
	assert_int_equal(host_counter(f, ios_rctx(f->r)->attach_refused, "host0"), 1);
	assert_int_equal(attach(f, 0, "disk-a", &id), 0);
	assert_int_equal(id, 0);
	assert_non_null(f->srv.devs[0]->owner);
	assert_int_equal(attach(f, 0, "disk-a", NULL), -EBUSY);
	assert_int_equal(attach(f, 1, "disk-a", NULL), -EBUSY);
	assert_false(f->fc[0].closed);

	/* Once the first connection lets go, the second may have it. */
	push_detach(&f->fc[0], id);
	turn(f);
	assert_null(f->srv.devs[0]->owner);
	assert_int_equal(attach(f, 1, "disk-a", &id), 0);
}


/* A deep device's batch of responses goes out interleaved with a shallow
 * neighbour's, one frame each in turn: disk-a's one response, finished
 * after 32 of disk-d's while the connection took nothing, is sent second,
 * not 33rd (one FIFO for the connection). Each device's own order is
 * kept, and a CTRL reply queued before any response still goes first. */
static void test_fair_responses(void **state)
{
	struct fixture *f = *state;
	struct fake_conn *fc = &f->fc[0];
	Vrio__Ctrl hb = VRIO__CTRL__INIT, *m;
	Vrio__Heartbeat h = VRIO__HEARTBEAT__INIT;
	uint32_t a, d, next_d = 0;
	unsigned i;

	hello_ok(f, 0, "host0");
	assert_int_equal(attach(f, 0, "disk-a", &a), 0);
	assert_int_equal(attach(f, 0, "disk-d", &d), 0);
	clear_out(fc);

	hb.seq = 42;
	hb.msg_case = VRIO__CTRL__MSG_HEARTBEAT;
	hb.heartbeat = &h;
	h.seq = 4242;
	push_ctrl(fc, &hb);
	fc->refuse = 1000000;	/* the peer takes nothing for now */
	for (i = 0; i < 32; i++)
		push_req(fc, d, 0, 1000 + i, VIRTIO_BLK_T_IN, 8 * i, 0, 4097);
	turn(f);
	push_req(fc, a, 0, 7, VIRTIO_BLK_T_IN, 0, 0, 4097);
	turn(f);
	assert_int_equal(fc->n_out, 0);
	fc->refuse = 0;
	turn(f);
	assert_int_equal(fc->n_out, 34);
	m = out_ctrl(fc, 0);
	assert_int_equal(m->msg_case, VRIO__CTRL__MSG_HEARTBEAT);
	assert_int_equal(m->heartbeat->seq, 4242);
	vrio_ctrl_free(m);
	for (i = 1; i < 34; i++) {
		const struct msg *o = &fc->out[i];

		assert_int_equal(o->f.type, VRIO_FRAME_RESP);
		if (o->f.dev == a) {
			assert_int_equal(o->f.id, 7);
			assert_int_equal(i, 2);
			continue;
		}
		assert_int_equal(o->f.dev, d);
		assert_int_equal(o->f.id, 1000 + next_d++);
	}
	assert_int_equal(next_d, 32);
}

static void test_requests(void **state)
{
	struct fixture *f = *state;
	struct fake_conn *fc = &f->fc[0];
	Vrio__Ctrl hb = VRIO__CTRL__INIT, *m;
	Vrio__Heartbeat h = VRIO__HEARTBEAT__INIT;
	const struct msg *o;
	uint32_t id;
	unsigned i;

	hello_ok(f, 0, "host0");
	assert_int_equal(attach(f, 0, "disk-a", &id), 0);
	clear_out(fc);

	push_req(fc, id, 0, 100, VIRTIO_BLK_T_OUT, 8, 4096, 1);
	push_req(fc, id, 1, 101, VIRTIO_BLK_T_IN, 8, 0, 4097);
	push_req(fc, id, 1, 102, 12345, 0, 0, 8);
	turn(f);
	assert_int_equal(fc->n_out, 3);
	for (i = 0; i < 3; i++) {
		o = &fc->out[i];
		assert_int_equal(o->f.type, VRIO_FRAME_RESP);
		assert_int_equal(o->f.dev, id);
	}
	/* Completion order is the backend's; match by id. */
	for (i = 0; i < 3; i++) {
		o = &fc->out[i];
		switch (o->f.id) {
		case 100:
			assert_int_equal(o->f.queue, 0);
			assert_int_equal(o->f.len, 1);
			assert_int_equal(o->payload[0], VIRTIO_BLK_S_OK);
			break;
		case 101:
			assert_int_equal(o->f.queue, 1);
			assert_int_equal(o->f.len, 4097);
			assert_int_equal(o->payload[0], 0x42);
			assert_int_equal(o->payload[4095], 0x42);
			assert_int_equal(o->payload[4096], VIRTIO_BLK_S_OK);
			break;
		case 102:
			assert_int_equal(o->f.len, 8);
			assert_int_equal(o->payload[7], VIRTIO_BLK_S_UNSUPP);
			break;
		default:
			fail_msg("unexpected RESP id %u", o->f.id);
		}
	}
	assert_int_equal(f->srv.devs[0]->stats.requests[IOS_BLK_OP_WRITE], 1);
	assert_int_equal(f->srv.devs[0]->stats.bytes_read, 4096);
	assert_int_equal(f->srv.devs[0]->stats.err_unsupp, 1);
	assert_int_equal(f->srv.devs[0]->stats.latency.count, 3);

	/* A request without any writable byte: an empty RESP. */
	push_req(fc, id, 0, 103, VIRTIO_BLK_T_FLUSH, 0, 0, 0);
	hb.seq = 99;
	hb.msg_case = VRIO__CTRL__MSG_HEARTBEAT;
	hb.heartbeat = &h;
	h.seq = 1234;
	push_ctrl(fc, &hb);
	turn(f);
	assert_int_equal(fc->n_out, 5);
	assert_int_equal(fc->out[3].f.id, 103);
	assert_int_equal(fc->out[3].f.len, 0);
	assert_int_equal(f->srv.devs[0]->stats.err_protocol, 1);
	m = out_ctrl(fc, 4);
	assert_int_equal(m->msg_case, VRIO__CTRL__MSG_HEARTBEAT);
	assert_int_equal(m->seq, 99);
	assert_int_equal(m->heartbeat->seq, 1234);
	vrio_ctrl_free(m);
	assert_false(fc->closed);
}

/*
 * A write the backend took under the host's lease and completed after it
 * lapsed (the kernel held it: lease.h's window) is executed, answered,
 * and counted and logged as late; one that completes in time is not.
 */
/* The RESP with this id among what the session sent, or NULL. */
static const struct msg *find_resp(const struct fake_conn *fc, uint32_t id)
{
	unsigned i;

	for (i = 0; i < fc->n_out; i++)
		if (fc->out[i].f.type == VRIO_FRAME_RESP && fc->out[i].f.id == id)
			return &fc->out[i];
	return NULL;
}

static void test_late_write_counted(void **state)
{
	struct fixture *f = *state;
	struct fake_conn *fc = &f->fc[0];
	struct ios_session *s = f->s[0];
	const struct msg *o;
	struct ios_device *d;
	uint32_t id;

	hello_ok(f, 0, "host0");
	assert_int_equal(attach(f, 0, "disk-a", &id), 0);
	clear_out(fc);
	d = f->srv.devs[0];
	/* The host takes part in leases, and holds one (on the clock the
	 * data path reads). */
	vrio_lease_require(&s->lease);
	__atomic_store_n(&s->lease.expiry, vrio_now_ns() + 60ull * 1000000000, __ATOMIC_RELEASE);

	/* In time: taken and completed under the lease. */
	push_req(fc, id, 0, 200, VIRTIO_BLK_T_OUT, 8, 4096, 1);
	turn(f);
	o = find_resp(fc, 200);
	assert_non_null(o);
	assert_int_equal(o->payload[0], VIRTIO_BLK_S_OK);
	assert_int_equal(d->stats.late_writes, 0);
	clear_out(fc);

	/* Taken under the lease: the session's poll hands it to the backend,
	 * which completes it from its own poll... */
	push_req(fc, id, 0, 201, VIRTIO_BLK_T_OUT, 16, 4096, 1);
	assert_true(s->poller.poll(&s->poller) > 0);
	assert_int_equal(d->u.blk.at_backend, 1);
	assert_int_equal(d->stats.fenced, 0);
	/* ...after the lease lapsed. */
	__atomic_store_n(&s->lease.expiry, 1, __ATOMIC_RELEASE);
	turn(f);
	assert_int_equal(d->stats.late_writes, 1);
	assert_int_equal(d->stats.fenced, 0);
	o = find_resp(fc, 201);
	assert_non_null(o);
	assert_int_equal(o->payload[0], VIRTIO_BLK_S_OK);

	/* A write that comes now is fenced, not late. */
	clear_out(fc);
	push_req(fc, id, 0, 202, VIRTIO_BLK_T_OUT, 24, 4096, 1);
	turn(f);
	assert_int_equal(d->stats.fenced, 1);
	assert_int_equal(d->stats.late_writes, 1);
	assert_null(find_resp(fc, 202));
}

/*
 * Liveness: a quiet READY session sends a heartbeat each interval; any
 * frame from the peer keeps it; dead_after of silence closes it as dead,
 * lets its device go and is counted; the other session does not notice.
 */
static void test_liveness(void **state)
{
	struct fixture *f = *state;
	struct fake_conn *fc = &f->fc[0];
	struct ios_session *s = f->s[0];
	const uint64_t ms = 1000000ull;
	Vrio__Ctrl hb = VRIO__CTRL__INIT, *m;
	Vrio__Heartbeat h = VRIO__HEARTBEAT__INIT;
	uint32_t id;
	int host;

	hello_ok(f, 0, "host0");
	hello_ok(f, 1, "host1");
	host = s->host;	/* s is freed once closed and its device let go */
	assert_int_equal(attach(f, 0, "disk-a", &id), 0);
	/* The fixture's io0 waits a minute; this one 100 ms and 1 s. */
	vrio_hb_init(&s->hb, 100, 1000);
	vrio_hb_start(&s->hb, s->conn, test_now);
	clear_out(fc);

	test_now += 99 * ms;
	turn(f);
	assert_int_equal(fc->n_out, 0);
	test_now += 1 * ms;
	turn(f);
	assert_int_equal(fc->n_out, 1);
	m = out_ctrl(fc, 0);
	assert_int_equal(m->msg_case, VRIO__CTRL__MSG_HEARTBEAT);
	vrio_ctrl_free(m);
	/* The next one only an interval after that one left. */
	test_now += 50 * ms;
	turn(f);
	assert_int_equal(fc->n_out, 1);
	test_now += 50 * ms;
	turn(f);
	assert_int_equal(fc->n_out, 2);

	/* The peer's heartbeat at +900 ms is life: answered, and the session
	 * lives until 1 s after it. */
	test_now += 700 * ms;
	hb.msg_case = VRIO__CTRL__MSG_HEARTBEAT;
	hb.heartbeat = &h;
	push_ctrl(fc, &hb);
	turn(f);
	assert_false(fc->closed);
	/* Turns as a reactor takes them (a gap of more than half of
	 * dead_after would be the reactor's own, not the peer's silence). */
	for (int i = 0; i < 3; i++) {
		test_now += 333 * ms;
		turn(f);
	}
	assert_false(fc->closed);
	assert_int_equal(ios_rctx(f->r)->hb_timeouts[host], 0);
	test_now += 1 * ms;
	turn(f);
	assert_true(fc->closed);
	assert_int_equal(ios_rctx(f->r)->hb_timeouts[host], 1);
	assert_true(ios_rctx(f->r)->hb_sent[host] >= 2);
	/* Its device was let go: the session is gone, the device free. */
	assert_false(session_alive(f, s));
	assert_null(f->srv.devs[0]->owner);
	/* The other host's session keeps the fixture's minute. */
	assert_false(f->fc[1].closed);
}

static void test_device_error(void **state)
{
	struct fixture *f = *state;
	Vrio__Ctrl m = VRIO__CTRL__INIT;
	Vrio__DeviceError de = VRIO__DEVICE_ERROR__INIT;
	uint32_t id;

	hello_ok(f, 0, "host0");
	assert_int_equal(attach(f, 0, "disk-a", &id), 0);
	de.dev_id = id;
	de.reason = (char *)"descriptor loop\n\x01";
	m.msg_case = VRIO__CTRL__MSG_DEVICE_ERROR;
	m.device_error = &de;
	push_ctrl(&f->fc[0], &m);
	turn(f);
	assert_int_equal(f->srv.devs[0]->stats.err_guest, 1);
	assert_false(f->fc[0].closed);
}

/* Each kind of garbage closes that connection and frees its device. */
enum garbage {
	G_BAD_QUEUE,
	G_NOT_ATTACHED,
	G_TOO_BIG,
	G_TOO_MANY,
	G_RESP_FRAME,
	G_UNDECODABLE,
	G_SECOND_HELLO,
	G_DETACH_UNKNOWN,
	G_PEER_ATTACH_REPLY,
	G_AFTER_DETACH,
	G_COUNT,
};

static void test_garbage(void **state)
{
	struct fixture *f;
	Vrio__Ctrl m = VRIO__CTRL__INIT;
	Vrio__AttachReply ar = VRIO__ATTACH_REPLY__INIT;
	struct vrio_frame fr;
	uint8_t junk[8] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
	struct fake_conn *fc;
	uint32_t id;
	int g, i;

	for (g = 0; g < G_COUNT; g++) {
		f = *state;
		fc = &f->fc[0];
		hello_ok(f, 0, "host0");
		hello_ok(f, 1, "host0");
		assert_int_equal(attach(f, 0, "disk-a", &id), 0);
		switch (g) {
		case G_BAD_QUEUE:
			push_req(fc, id, 2, 1, VIRTIO_BLK_T_IN, 0, 0, 513);
			break;
		case G_NOT_ATTACHED:
			push_req(fc, 1, 0, 1, VIRTIO_BLK_T_IN, 0, 0, 513);
			break;
		case G_TOO_BIG:
			/* disk-a's rings of 4 allow 2 segments of 64 KiB. */
			push_req(fc, id, 0, 1, VIRTIO_BLK_T_IN, 0, 0, 2 * 65536 + 16 + 1);
			break;
		case G_TOO_MANY:
			/* disk-a: 2 queues of 4 entries, so 8 at most. */
			for (i = 0; i < 9; i++)
				push_req(fc, id, 0, (uint32_t)i, VIRTIO_BLK_T_IN, 0, 0, 513);
			break;
		case G_RESP_FRAME:
			fr = (struct vrio_frame){ .type = VRIO_FRAME_RESP, .dev = id, .len = 1 };
			push(fc, &fr, junk);
			break;
		case G_UNDECODABLE:
			fr = (struct vrio_frame){ .type = VRIO_FRAME_CTRL, .len = sizeof(junk) };
			push(fc, &fr, junk);
			break;
		case G_SECOND_HELLO:
			push_hello(fc, VRIO_PROTO_VERSION, "host0");
			break;
		case G_DETACH_UNKNOWN:
			push_detach(fc, 1);
			break;
		case G_PEER_ATTACH_REPLY:
			m.msg_case = VRIO__CTRL__MSG_ATTACH_REPLY;
			m.attach_reply = &ar;
			push_ctrl(fc, &m);
			break;
		case G_AFTER_DETACH:
			push_detach(fc, id);
			push_req(fc, id, 0, 1, VIRTIO_BLK_T_IN, 0, 0, 513);
			break;
		}
		turn(f);
		if (!fc->closed)
			fail_msg("garbage case %d did not close the connection", g);
		assert_false(f->fc[1].closed);
		assert_null(f->srv.devs[0]->owner);
		assert_false(session_alive(f, f->s[0]));
		/* The other connection may take the device now. */
		assert_int_equal(attach(f, 1, "disk-a", NULL), 0);
		teardown(state);
		setup(state);
	}
}

static void test_drain_flushes_then_closes(void **state)
{
	struct fixture *f = *state;
	Vrio__Ctrl *m;
	uint32_t id;
	unsigned n;

	hello_ok(f, 0, "host0");
	hello_ok(f, 1, "host0");
	assert_int_equal(attach(f, 0, "disk-a", &id), 0);
	f->fc[0].stuck = true;
	push_req(&f->fc[0], id, 0, 1, VIRTIO_BLK_T_IN, 0, 0, 513);
	turn(f);
	assert_int_equal(f->fc[0].out[f->fc[0].n_out - 1].f.type, VRIO_FRAME_RESP);
	/* Bytes left behind: it wants to write as well as read. */
	f->s[0]->poller.sleep(&f->s[0]->poller);
	assert_int_equal(f->s[0]->ev.armed, EPOLLIN | EPOLLOUT);

	/* Draining: nothing more is read, but the RESP must leave first. */
	push_req(&f->fc[0], id, 0, 2, VIRTIO_BLK_T_IN, 0, 0, 513);
	ios_sessions_drain(f->r, NULL);
	ios_reactor_turn(f->r);
	f->s[0]->poller.sleep(&f->s[0]->poller);
	assert_int_equal(f->s[0]->ev.armed, EPOLLOUT);
	assert_false(f->fc[0].closed);
	assert_true(session_alive(f, f->s[0]));
	/* The idle one says goodbye at once, then waits for its peer to
	 * close first; one that never does is closed after IOS_LINGER_NS. */
	turn(f);
	n = f->fc[1].n_out;
	m = out_ctrl(&f->fc[1], n - 1);
	assert_int_equal(m->msg_case, VRIO__CTRL__MSG_ERROR);
	assert_int_equal(m->error->status, -ESHUTDOWN);
	assert_int_equal(m->error->requests_taken, 0);
	vrio_ctrl_free(m);
	assert_false(f->fc[1].closed);
	f->s[1]->poller.sleep(&f->s[1]->poller);
	assert_int_equal(f->s[1]->ev.armed, EPOLLIN);
	test_now += IOS_LINGER_NS;
	turn(f);
	assert_true(f->fc[1].closed);
	assert_false(session_alive(f, f->s[1]));
	/* The busy one: its answer, then the goodbye with what it took. */
	assert_false(f->fc[0].closed);
	f->fc[0].stuck = false;
	test_now -= IOS_LINGER_NS;
	turn(f);
	assert_true(session_alive(f, f->s[0]));
	n = f->fc[0].n_out;
	assert_int_equal(f->fc[0].out[n - 2].f.type, VRIO_FRAME_RESP);
	assert_int_equal(f->fc[0].out[n - 2].f.id, 1);
	m = out_ctrl(&f->fc[0], n - 1);
	assert_int_equal(m->msg_case, VRIO__CTRL__MSG_ERROR);
	assert_int_equal(m->error->status, -ESHUTDOWN);
	assert_int_equal(m->error->requests_taken, 1);
	vrio_ctrl_free(m);
	/* The peer closes: so does the session; request 2 was never taken. */
	f->fc[0].hung_up = true;
	turn(f);
	assert_true(f->fc[0].closed);
	assert_int_equal(f->fc[0].n_out, n);
	assert_false(session_alive(f, f->s[0]));
	assert_null(f->srv.devs[0]->owner);
	assert_int_equal(f->r->n_sessions, 0);
}

static void test_metrics_exposition(void **state)
{
	struct fixture *f = *state;
	char *text = NULL;
	size_t len = 0;

	assert_int_equal(vrio_metrics_render(ios_metrics_collect, &f->srv, &text, &len), 0);
	assert_non_null(strstr(text, "vrio_ioserver_requests_total{device=\"disk-a\",op=\"read\"} 0"));
	assert_non_null(strstr(text, "vrio_ioserver_bytes_total{device=\"disk-b\",direction=\"write\"} 0"));
	assert_non_null(strstr(text, "vrio_ioserver_errors_total{device=\"disk-a\",reason=\"guest\"} 0"));
	assert_non_null(strstr(text, "vrio_ioserver_request_latency_seconds_bucket{device=\"disk-a\""));
	assert_non_null(strstr(text, "vrio_ioserver_device_attached{device=\"disk-a\"} 0"));
	assert_non_null(strstr(text, "vrio_ioserver_reactor_busy_seconds_total{reactor=\"0\"}"));
	assert_non_null(strstr(text, "vrio_ioserver_connections 2"));
	assert_non_null(strstr(text, "vrio_ioserver_config_generation 1"));
	assert_non_null(strstr(text, "vrio_ioserver_switch_port_up{network=\"lan\",port=\"nic-a\"} 0"));
	assert_non_null(strstr(text, "vrio_ioserver_switch_ecn_packets_total{network=\"lan\",port=\"nic-a\",direction=\"in\"} 0"));
	assert_non_null(strstr(text, "vrio_ioserver_switch_ecn_segmented_total{network=\"lan\",port=\"nic-a\"} 0"));
	free(text);
}

static void test_switch_forwarding(void **state)
{
	struct fixture *f = *state;
	struct ios_network *lan = f->srv.devs[NIC_A]->u.net.port->net;

	net_up(f);
	/* A broadcast from b floods lan (to a) and never reaches other (c). */
	push_pkt(&f->fc[1], NIC_B, bcast, mac_b, 60, 1);
	turn(f);
	assert_int_equal(pkts_for(&f->fc[0], NIC_A, 1), 1);
	assert_int_equal(pkts_for(&f->fc[0], NIC_C, 1), 0);
	assert_int_equal(pkts_for(&f->fc[1], NIC_B, 1), 0);
	assert_int_equal(lan->st.flooded, 1);
	/* b is learned: a's unicast to it goes to b alone, without a flood. */
	push_pkt(&f->fc[0], NIC_A, mac_b, mac_a, 1514, 2);
	turn(f);
	assert_int_equal(pkts_for(&f->fc[1], NIC_B, 2), 1);
	assert_int_equal(lan->st.flooded, 1);
	assert_int_equal(f->srv.devs[NIC_A]->u.net.port->st.in_frames, 1);
	assert_int_equal(f->srv.devs[NIC_B]->u.net.port->st.out_frames, 1);
	assert_int_equal(f->srv.devs[NIC_B]->u.net.port->st.out_bytes, 1514);
	/* An unknown destination floods; c's own network has no one else. */
	push_pkt(&f->fc[0], NIC_A, mac_x, mac_a, 60, 3);
	push_pkt(&f->fc[0], NIC_C, mac_a, mac_c, 60, 4);
	turn(f);
	assert_int_equal(pkts_for(&f->fc[1], NIC_B, 3), 1);
	assert_int_equal(pkts_for(&f->fc[0], NIC_A, 4), 0);
	assert_int_equal(lan->st.flooded, 2);
	assert_false(f->fc[0].closed);
	assert_false(f->fc[1].closed);
}

/* A packet for a guest goes straight into its connection's send queue
 * only when nothing waits there for that connection: one that found the
 * queue full waits as a request, and the next ones queue behind it even
 * once there is room. */
static void test_switch_order_behind_backlog(void **state)
{
	struct fixture *f = *state;
	unsigned i, k = 0;

	net_up(f);
	push_pkt(&f->fc[1], NIC_B, bcast, mac_b, 60, 1);
	turn(f);
	f->fc[1].refuse = 1;
	for (i = 2; i <= 4; i++)
		push_pkt(&f->fc[0], NIC_A, mac_b, mac_a, 60, (uint8_t)i);
	turn(f);
	for (i = 0; i < f->fc[1].n_out; i++) {
		const struct msg *m = &f->fc[1].out[i];

		if (m->f.type == VRIO_FRAME_PKT && m->f.dev == NIC_B)
			assert_int_equal(m->payload[m->f.len - 1], 2 + k++);
	}
	assert_int_equal(k, 3);
	assert_int_equal(f->srv.devs[NIC_B]->u.net.port->st.out_frames, 3);
	assert_int_equal(drops(f, NIC_B, IOS_DROP_BACKLOG), 0);
}

static void test_switch_ageing_and_port_down(void **state)
{
	struct fixture *f = *state;
	struct ios_network *lan = f->srv.devs[NIC_A]->u.net.port->net;

	net_up(f);
	test_now = 1000000000ull;
	push_pkt(&f->fc[1], NIC_B, bcast, mac_b, 60, 1);
	turn(f);
	push_pkt(&f->fc[0], NIC_A, mac_b, mac_a, 60, 2);
	turn(f);
	assert_int_equal(lan->st.flooded, 1);
	/* Past the network's 2 s ageing, b is unknown again: flooded. */
	test_now += 3000000000ull;
	push_pkt(&f->fc[0], NIC_A, mac_b, mac_a, 60, 3);
	turn(f);
	assert_int_equal(lan->st.flooded, 2);
	assert_int_equal(pkts_for(&f->fc[1], NIC_B, 3), 1);
	/* b's device goes away: frames for it are dropped and counted. */
	push_detach(&f->fc[1], NIC_B);
	turn(f);
	push_pkt(&f->fc[0], NIC_A, mac_b, mac_a, 60, 4);
	turn(f);
	assert_int_equal(drops(f, NIC_B, IOS_DROP_PORT_DOWN), 1);
}

static void test_switch_drops(void **state)
{
	struct fixture *f = *state;

	net_up(f);
	/* A guest that sends with another guest's address is dropped. */
	push_pkt(&f->fc[0], NIC_A, bcast, mac_b, 60, 1);
	/* Frames shorter than a header, longer than the MTU allows, or from
	 * a multicast address. */
	push_pkt(&f->fc[0], NIC_A, bcast, mac_a, 13, 2);
	push_pkt(&f->fc[0], NIC_A, bcast, mac_a, 1500 + 19, 3);
	turn(f);
	assert_int_equal(drops(f, NIC_A, IOS_DROP_SRC_MAC), 1);
	assert_int_equal(drops(f, NIC_A, IOS_DROP_RUNT), 1);
	assert_int_equal(drops(f, NIC_A, IOS_DROP_OVERSIZE), 1);
	assert_int_equal(f->fc[1].n_out, 0);
	assert_int_equal(f->srv.devs[NIC_A]->u.net.port->st.in_frames, 0);
	/* None of that is a protocol error: the connection stays. */
	assert_false(f->fc[0].closed);
}

/* An IPv4 TCP packet from src to dst with `payload` bytes and the
 * metadata a guest gives it: rx_ol, and a partial checksum, and GSO into
 * `mss` pieces when mss is not 0, with CWR and the ECN bit if ecn. */
static void push_tcp_ecn(struct fake_conn *fc, uint32_t dev, const uint8_t dst[6],
			 const uint8_t src[6], uint16_t rx_ol, uint32_t payload, uint16_t mss,
			 bool partial, bool ecn)
{
	struct vrio_frame f = { .type = VRIO_FRAME_PKT, .dev = dev };
	uint32_t len = 14 + 20 + 20 + payload;
	uint8_t *p = calloc(1, VRIO_PKT_HDR_LEN + len), *e = p + VRIO_PKT_HDR_LEN;
	struct vrio_pkt_wire h = { .rx_ol = rx_ol };

	memcpy(e, dst, 6);
	memcpy(e + 6, src, 6);
	e[12] = 0x08;
	e[14] = 0x45;
	e[16] = (uint8_t)((len - 14) >> 8);
	e[17] = (uint8_t)(len - 14);
	e[23] = 6;
	e[34 + 12] = 5 << 4;
	e[34 + 13] = 0x18;
	memset(e + 54, 0x5a, payload);
	if (partial || mss) {
		h.flags = VRIO_PKT_F_NEEDS_CSUM;
		h.csum_start = 34;
		h.csum_offset = 16;
	}
	if (mss) {
		h.gso_type = VRIO_PKT_GSO_TCPV4;
		h.gso_size = mss;
		h.hdr_len = 54;
	}
	if (ecn) {
		e[34 + 13] |= 0x80;	/* CWR */
		h.gso_type |= VRIO_PKT_GSO_ECN;
	}
	memcpy(p, &h, sizeof(h));
	f.len = VRIO_PKT_HDR_LEN + len;
	push(fc, &f, p);
	free(p);
}

static void push_tcp(struct fake_conn *fc, uint32_t dev, const uint8_t dst[6],
		     const uint8_t src[6], uint16_t rx_ol, uint32_t payload, uint16_t mss,
		     bool partial)
{
	push_tcp_ecn(fc, dev, dst, src, rx_ol, payload, mss, partial, false);
}

/* The PKT frames for dev since the last clear: their count, and each one's
 * metadata and length through the callers' arrays. */
static unsigned pkts_meta(const struct fake_conn *fc, uint32_t dev, struct vrio_pkt_wire *h,
			  uint32_t *len, unsigned max)
{
	unsigned n = 0;

	for (unsigned i = 0; i < fc->n_out && n < max; i++) {
		const struct msg *m = &fc->out[i];

		if (m->f.type != VRIO_FRAME_PKT || m->f.dev != dev)
			continue;
		memcpy(&h[n], m->payload, sizeof(h[n]));
		len[n++] = m->f.len - VRIO_PKT_HDR_LEN;
	}
	return n;
}

/* A GSO packet reaches a port whose guest did not say it takes one as
 * wire-sized segments, and whole once it has; a partial checksum is
 * completed for a guest without GUEST_CSUM; bad metadata costs its frame. */
static void test_switch_offloads(void **state)
{
	struct fixture *f = *state;
	struct ios_port *pa = f->srv.devs[NIC_A]->u.net.port, *pb = f->srv.devs[NIC_B]->u.net.port;
	struct vrio_pkt_wire h[8];
	uint32_t len[8];

	net_up(f);
	push_pkt(&f->fc[1], NIC_B, bcast, mac_b, 60, 1);
	push_tcp(&f->fc[0], NIC_A, bcast, mac_a, VRIO_PKT_RX_ALL, 10, 0, false);
	turn(f);
	assert_int_equal(pa->rx_ol, VRIO_PKT_RX_ALL);
	assert_int_equal(pb->rx_ol, 0);
	clear_out(&f->fc[1]);
	/* b has said nothing of offloads: 4000 bytes in MSS 1448 is 3 frames. */
	push_tcp(&f->fc[0], NIC_A, mac_b, mac_a, VRIO_PKT_RX_ALL, 4000, 1448, false);
	turn(f);
	assert_int_equal(pkts_meta(&f->fc[1], NIC_B, h, len, 8), 3);
	for (unsigned i = 0; i < 3; i++) {
		assert_true(vrio_pkt_wire_plain(&h[i]));
		assert_int_equal(len[i], 54 + (i < 2 ? 1448 : 4000 - 2 * 1448));
	}
	assert_int_equal(pb->st.gso_packets, 1);
	assert_int_equal(pb->st.gso_segments, 3);
	clear_out(&f->fc[1]);
	/* Now b's guest takes TSO: the packet goes whole, its metadata kept. */
	push_tcp(&f->fc[1], NIC_B, mac_a, mac_b, VRIO_PKT_RX_ALL, 10, 0, false);
	turn(f);
	push_tcp(&f->fc[0], NIC_A, mac_b, mac_a, VRIO_PKT_RX_ALL, 4000, 1448, false);
	turn(f);
	assert_int_equal(pkts_meta(&f->fc[1], NIC_B, h, len, 8), 1);
	assert_int_equal(len[0], 54 + 4000);
	assert_int_equal(h[0].gso_type, VRIO_PKT_GSO_TCPV4);
	assert_int_equal(h[0].gso_size, 1448);
	assert_int_equal(h[0].rx_ol, 0);
	assert_int_equal(pb->st.gso_packets, 1);
	clear_out(&f->fc[1]);
	/* b's guest restarts without offloads: a partial checksum completed. */
	push_tcp(&f->fc[1], NIC_B, mac_a, mac_b, 0, 10, 0, false);
	turn(f);
	push_tcp(&f->fc[0], NIC_A, mac_b, mac_a, VRIO_PKT_RX_ALL, 1000, 0, true);
	turn(f);
	assert_int_equal(pkts_meta(&f->fc[1], NIC_B, h, len, 8), 1);
	assert_true(vrio_pkt_wire_plain(&h[0]));
	assert_int_equal(pb->st.csum_completed, 1);
	/* Metadata that does not fit its frame: that frame dropped, counted. */
	push_tcp(&f->fc[0], NIC_A, mac_b, mac_a, VRIO_PKT_RX_ALL, 4000, 9000, false);
	push_tcp(&f->fc[0], NIC_A, mac_b, mac_a, VRIO_PKT_RX_ALL, 9000, 0, true);
	turn(f);
	assert_int_equal(drops(f, NIC_A, IOS_DROP_BAD_OFFLOAD), 1);
	assert_int_equal(drops(f, NIC_A, IOS_DROP_OVERSIZE), 1);
	assert_false(f->fc[0].closed);
	assert_false(f->fc[1].closed);
}

/* A TSO packet with the ECN bit reaches even a guest that takes TSO as
 * wire-sized segments, CWR on the first only: no guest takes ECN. */
static void test_switch_ecn(void **state)
{
	struct fixture *f = *state;
	struct ios_port *pa = f->srv.devs[NIC_A]->u.net.port, *pb = f->srv.devs[NIC_B]->u.net.port;
	uint8_t cwr[3];
	unsigned n = 0;

	net_up(f);
	push_tcp(&f->fc[1], NIC_B, mac_a, mac_b, VRIO_PKT_RX_ALL, 10, 0, false);
	turn(f);
	assert_int_equal(pb->rx_ol, VRIO_PKT_RX_ALL);
	clear_out(&f->fc[1]);
	push_tcp_ecn(&f->fc[0], NIC_A, mac_b, mac_a, VRIO_PKT_RX_ALL, 4000, 1448, false, true);
	turn(f);
	for (unsigned i = 0; i < f->fc[1].n_out; i++) {
		const struct msg *m = &f->fc[1].out[i];
		struct vrio_pkt_wire h;

		if (m->f.type != VRIO_FRAME_PKT || m->f.dev != NIC_B)
			continue;
		memcpy(&h, m->payload, sizeof(h));
		assert_true(vrio_pkt_wire_plain(&h));
		assert_true(n < 3);
		assert_int_equal(m->f.len - VRIO_PKT_HDR_LEN, 54 + (n < 2 ? 1448 : 4000 - 2 * 1448));
		cwr[n++] = m->payload[VRIO_PKT_HDR_LEN + 34 + 13] & 0x80;
	}
	assert_int_equal(n, 3);
	assert_int_equal(cwr[0], 0x80);
	assert_int_equal(cwr[1] | cwr[2], 0);
	assert_int_equal(pa->st.ecn_in, 1);
	assert_int_equal(pb->st.ecn_segmented, 1);
	assert_int_equal(pb->st.ecn_out, 0);
	assert_int_equal(pb->st.gso_packets, 1);
	assert_int_equal(drops(f, NIC_B, IOS_DROP_BAD_OFFLOAD), 0);
	/* The same packet without the bit goes whole. */
	clear_out(&f->fc[1]);
	push_tcp(&f->fc[0], NIC_A, mac_b, mac_a, VRIO_PKT_RX_ALL, 4000, 1448, false);
	turn(f);
	assert_int_equal(f->fc[1].n_out, 1);
	assert_int_equal(pa->st.ecn_in, 1);
	assert_int_equal(pb->st.gso_packets, 1);
}

/* A PKT frame with no packet: only its header, rx_ol and flags as given. */
static void push_ol(struct fake_conn *fc, uint32_t dev, uint16_t rx_ol, uint8_t flags)
{
	struct vrio_frame f = { .type = VRIO_FRAME_PKT, .dev = dev, .len = VRIO_PKT_HDR_LEN };
	struct vrio_pkt_wire h = { .flags = flags, .rx_ol = rx_ol };

	push(fc, &f, &h);
}

/* local-hv tells a port's offloads in a frame with no packet, which goes
 * nowhere; one with metadata besides is refused and counted; a new
 * attachment starts from none, not from the previous guest's. */
static void test_switch_offload_update(void **state)
{
	struct fixture *f = *state;
	struct ios_port *pb = f->srv.devs[NIC_B]->u.net.port;
	struct ios_network *lan = pb->net;
	struct vrio_pkt_wire h[8];
	uint32_t len[8];

	net_up(f);
	assert_int_equal(pb->rx_ol, 0);
	push_ol(&f->fc[1], NIC_B, VRIO_PKT_RX_ALL, 0);
	turn(f);
	assert_int_equal(pb->rx_ol, VRIO_PKT_RX_ALL);
	assert_int_equal(pb->st.ol_updates, 1);
	assert_int_equal(pb->st.in_frames, 0);
	assert_int_equal(lan->st.flooded, 0);
	assert_int_equal(f->fc[0].n_out, 0);
	assert_int_equal(f->fc[1].n_out, 0);
	/* Before b sent any packet, a GSO packet reaches it whole. */
	push_tcp(&f->fc[0], NIC_A, mac_b, mac_a, 0, 4000, 1448, false);
	turn(f);
	assert_int_equal(pkts_meta(&f->fc[1], NIC_B, h, len, 8), 1);
	assert_int_equal(len[0], 54 + 4000);
	assert_int_equal(h[0].gso_type, VRIO_PKT_GSO_TCPV4);
	clear_out(&f->fc[1]);
	/* More than offloads in a frame without a packet: refused, counted,
	 * the port's offloads left as they were; no protocol error. */
	push_ol(&f->fc[1], NIC_B, 0, VRIO_PKT_F_NEEDS_CSUM);
	turn(f);
	assert_int_equal(drops(f, NIC_B, IOS_DROP_BAD_OFFLOAD), 1);
	assert_int_equal(pb->rx_ol, VRIO_PKT_RX_ALL);
	assert_int_equal(pb->st.ol_updates, 1);
	assert_false(f->fc[1].closed);
	/* The guest's driver stops: none, so a partial checksum is completed. */
	push_ol(&f->fc[1], NIC_B, 0, 0);
	turn(f);
	assert_int_equal(pb->rx_ol, 0);
	push_tcp(&f->fc[0], NIC_A, mac_b, mac_a, 0, 1000, 0, true);
	turn(f);
	assert_int_equal(pkts_meta(&f->fc[1], NIC_B, h, len, 8), 1);
	assert_true(vrio_pkt_wire_plain(&h[0]));
	assert_int_equal(pb->st.csum_completed, 1);
	clear_out(&f->fc[1]);
	/* Told again, then b detaches and attaches anew (local-hv
	 * restarted): none until it says otherwise, the GSO packet cut. */
	push_ol(&f->fc[1], NIC_B, VRIO_PKT_RX_ALL, 0);
	turn(f);
	assert_int_equal(pb->rx_ol, VRIO_PKT_RX_ALL);
	push_detach(&f->fc[1], NIC_B);
	turn(f);
	assert_int_equal(attach(f, 1, "nic-b", NULL), 0);
	clear_out(&f->fc[1]);
	assert_int_equal(pb->rx_ol, 0);
	push_tcp(&f->fc[0], NIC_A, mac_b, mac_a, 0, 4000, 1448, false);
	turn(f);
	assert_int_equal(pkts_meta(&f->fc[1], NIC_B, h, len, 8), 3);
	for (unsigned i = 0; i < 3; i++)
		assert_true(vrio_pkt_wire_plain(&h[i]));
	assert_int_equal(pb->st.gso_packets, 1);
	assert_false(f->fc[0].closed);
	assert_false(f->fc[1].closed);
}

/* What a peer may not send: each closes that connection, not the other. */
static void test_switch_garbage(void **state)
{
	struct fixture *f = *state;
	struct vrio_frame fr = { .type = VRIO_FRAME_PKT, .dev = NIC_A, .len = VRIO_PKT_HDR_LEN + 60 };
	uint8_t p[VRIO_PKT_HDR_LEN + 60] = { 0 };
	static const struct {
		const char *what;
		uint32_t dev;
		uint16_t queue;
		uint8_t meta;		/* a header byte to set */
	} cases[] = {
		{ "second queue pair", NIC_A, 1, 0 },
		{ "a blk device", 0, 0, 0 },
		{ "a device not attached", NIC_B, 0, 0 },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		teardown(state);
		setup(state);
		f = *state;
		net_up(f);
		if (cases[i].dev == 0)
			assert_int_equal(attach(f, 0, "disk-a", NULL), 0);
		fr.dev = cases[i].dev;
		fr.queue = cases[i].queue;
		p[0] = cases[i].meta;
		push(&f->fc[0], &fr, p);
		turn(f);
		if (!f->fc[0].closed)
			fail_msg("%s: the connection stayed open", cases[i].what);
		assert_false(f->fc[1].closed);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_hello_wrong_version, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hello_unknown_node, setup, teardown),
		cmocka_unit_test_setup_teardown(test_request_before_hello, setup, teardown),
		cmocka_unit_test_setup_teardown(test_late_write_counted, setup, teardown),
		cmocka_unit_test_setup_teardown(test_attach_rules, setup, teardown),
		cmocka_unit_test_setup_teardown(test_auth_good, setup, teardown),
		cmocka_unit_test(test_auth_refusals),
		cmocka_unit_test_setup_teardown(test_auth_keyless_host, setup, teardown),
		cmocka_unit_test_setup_teardown(test_requests, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fair_responses, setup, teardown),
		cmocka_unit_test_setup_teardown(test_liveness, setup, teardown),
		cmocka_unit_test_setup_teardown(test_device_error, setup, teardown),
		cmocka_unit_test_setup_teardown(test_garbage, setup, teardown),
		cmocka_unit_test_setup_teardown(test_drain_flushes_then_closes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_metrics_exposition, setup, teardown),
		cmocka_unit_test_setup_teardown(test_switch_forwarding, setup, teardown),
		cmocka_unit_test_setup_teardown(test_switch_order_behind_backlog, setup, teardown),
		cmocka_unit_test_setup_teardown(test_switch_ageing_and_port_down, setup, teardown),
		cmocka_unit_test_setup_teardown(test_switch_drops, setup, teardown),
		cmocka_unit_test_setup_teardown(test_switch_offloads, setup, teardown),
		cmocka_unit_test_setup_teardown(test_switch_offload_update, setup, teardown),
		cmocka_unit_test_setup_teardown(test_switch_ecn, setup, teardown),
		cmocka_unit_test_setup_teardown(test_switch_garbage, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

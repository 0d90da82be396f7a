/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * A trunk's authentication (trunk.h), on the accepting side, driven
 * through an in-memory transport: io1 accepts the trunk that io0 dials.
 * io0's Hello comes in on a session, which hands the connection to the
 * trunk; the trunk answers with its nonce and proof, and comes up only on
 * io0's proof. Each way in without the rack's trunk key is refused,
 * counted, and leaves the trunk down. Reloads change what the trunk
 * carries without touching its connection. Once up, an ECN TSO packet
 * goes across whole.
 * Then io0's dialer thread over a transport whose connect the test plays:
 * a connection posted to the reactor, the interval between refused dials,
 * a hanging dial given up at the stop or when a reload retires the trunk,
 * one made as the stop began closed, a trunk a reload adds dialled.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cmocka.h>

#include "auth.h"
#include "ctrl.h"
#include "ioserver_internal.h"
#include "topology_diff.h"

/* %s: the trunk key file, made by setup. */
#define TOPO_HEAD \
	"version: 1\n" \
	"trunk_key_file: %s\n" \
	"io_servers:\n" \
	"  - name: io0\n" \
	"    listen: 127.0.0.1:7400\n" \
	"  - name: io1\n" \
	"    listen: 127.0.0.1:7401\n" \
	"    heartbeat: {interval_ms: 60000, dead_after_ms: 600000}\n" \
	"hosts:\n" \
	"  - name: host0\n" \
	"devices:\n" \
	"  - {name: nic-a, type: net, host: host0, io_server: io0, socket: /run/vrio/a.sock," \
	" mac: \"52:54:00:00:00:0a\", network: lan}\n"
#define DEV_B \
	"  - {name: nic-b, type: net, host: host0, io_server: io1, socket: /run/vrio/b.sock," \
	" mac: \"52:54:00:00:00:0b\", network: lan}\n"
#define WAN_SPANS "  - name: wan\n    io_servers: [io0, io1]\n"

static const char topo_yaml[] = TOPO_HEAD DEV_B "networks:\n  - name: lan\n";
/* The reloads of test_trunk_reload: wan comes to span io0 and io1; lan
 * leaves io1 (nic-b goes); nothing is shared any more. */
static const char topo_wan[] = TOPO_HEAD DEV_B "networks:\n  - name: lan\n" WAN_SPANS;
static const char topo_no_lan[] = TOPO_HEAD "networks:\n  - name: lan\n" WAN_SPANS;
static const char topo_none[] = TOPO_HEAD "networks:\n  - name: lan\n  - name: wan\n";

struct msg {
	struct vrio_frame f;
	uint8_t *payload;
};

#define FAKE_MAX 32

struct fake_conn {
	struct vrio_conn base;
	struct msg in[FAKE_MAX];
	unsigned in_head, in_tail;
	struct msg out[FAKE_MAX];
	unsigned n_out;
	bool closed;
	bool hung_up;		/* the peer closed: poll() ends with -ECONNRESET */
	int efd;
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

	assert_false(fc->closed);
	assert_true(fc->n_out < FAKE_MAX);
	m = &fc->out[fc->n_out++];
	m->f = *f;
	m->payload = malloc(f->len ? f->len : 1);
	for (int i = 0; i < iovcnt; i++) {
		memcpy(m->payload + off, iov[i].iov_base, iov[i].iov_len);
		off += iov[i].iov_len;
	}
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
	struct msg *m;
	int rc;

	while (fc->in_head != fc->in_tail && n < budget) {
		m = &fc->in[fc->in_head++];
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

static void push_ctrl(struct fake_conn *fc, Vrio__Ctrl *m)
{
	uint8_t buf[512];
	int n = vrio_ctrl_pack(m, buf, sizeof(buf));
	struct msg *x = &fc->in[fc->in_tail++];

	assert_true(n >= 0);
	assert_true(fc->in_tail <= FAKE_MAX);
	x->f = (struct vrio_frame){ .type = VRIO_FRAME_CTRL, .len = (uint32_t)n };
	x->payload = malloc((size_t)n);
	memcpy(x->payload, buf, (size_t)n);
}

static void push_hello(struct fake_conn *fc, const char *node, const uint8_t *nonce, size_t len)
{
	Vrio__Ctrl m = VRIO__CTRL__INIT;
	Vrio__Hello h = VRIO__HELLO__INIT;

	h.version = VRIO_PROTO_VERSION;
	h.node = (char *)node;
	h.nonce.data = (uint8_t *)nonce;
	h.nonce.len = len;
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
	m.msg_case = VRIO__CTRL__MSG_AUTH;
	m.auth = &a;
	push_ctrl(fc, &m);
}

struct fixture {
	char dir[64], key_path[96];
	uint8_t key[32];
	struct vrio_topology *topo;
	struct ios_server srv;
	struct ios_reactor *r;
	struct ios_trunk *t;
	struct fake_conn fc;
	const char *node;
};

/* The io-server `node` of the rack `fmt` (%s: the key file). */
static int setup_node(void **state, const char *node, const char *fmt)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char err[256], yaml[2048];
	const char *key_at;
	int fd;

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/vrio-test-trunk-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->key_path, sizeof(f->key_path), "%s/trunk.key", f->dir);
	for (size_t i = 0; i < sizeof(f->key); i++)
		f->key[i] = (uint8_t)(i * 5 + 1);
	fd = open(f->key_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, f->key, sizeof(f->key)), sizeof(f->key));
	close(fd);
	key_at = strstr(fmt, "%s");
	assert_non_null(key_at);
	snprintf(yaml, sizeof(yaml), "%.*s%s%s", (int)(key_at - fmt), fmt, f->key_path, key_at + 2);
	assert_int_equal(vrio_topology_parse("test.yaml", yaml, strlen(yaml), &f->topo, err,
					     sizeof(err)), 0);
	/* One reactor, not started: the test turns it. */
	assert_int_equal(ios_server_init(&f->srv, f->topo, node, NULL), 0);
	f->node = node;
	f->t = f->srv.n_trunks ? f->srv.trunks[0] : NULL;
	f->r = f->srv.reactors[0];
	f->fc.base.ops = &fake_ops;
	f->fc.efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	assert_true(f->fc.efd >= 0);
	snprintf(f->fc.base.name, sizeof(f->fc.base.name), "10.0.0.9:4000");
	*state = f;
	return 0;
}

/* io1: accepts the trunk. */
static int setup(void **state)
{
	struct fixture *f;
	int rc = setup_node(state, "io1", topo_yaml);

	f = *state;
	assert_non_null(f->srv.trunk_key);
	assert_int_equal(f->srv.n_trunks, 1);
	assert_false(f->t->dialer);
	return rc;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	ios_server_stop(&f->srv);
	ios_server_fini(&f->srv);
	for (unsigned i = 0; i < f->fc.n_out; i++)
		free(f->fc.out[i].payload);
	for (unsigned i = f->fc.in_head; i < f->fc.in_tail; i++)
		free(f->fc.in[i].payload);
	close(f->fc.efd);
	vrio_topology_free(f->topo);
	unlink(f->key_path);
	rmdir(f->dir);
	free(f);
	return 0;
}

static void turn(struct fixture *f)
{
	for (int i = 0; i < 100; i++)
		if (!ios_reactor_turn(f->r))
			return;
	fail_msg("the reactor never went idle");
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

/* io0 dials: its Hello (nonce nd, nonce_len bytes of it) on a new
 * connection, which the session hands to the trunk. Returns the trunk's
 * answer, or NULL if it sent none. */
static Vrio__Ctrl *dial(struct fixture *f, const uint8_t *nd, size_t nonce_len)
{
	struct ios_session *s = ios_session_create(&f->srv, &f->fc.base);

	assert_non_null(s);
	__atomic_add_fetch(&f->r->n_sessions, 1, __ATOMIC_RELAXED);
	ios_session_adopt(f->r, s);
	push_hello(&f->fc, "io0", nd, nonce_len);
	turn(f);
	return f->fc.n_out ? out_ctrl(&f->fc, 0) : NULL;
}

static uint64_t failures(const struct fixture *f)
{
	return vrio_counter_get(&f->t->st.auth_failures);
}

/* io0 dials with the right key: the trunk's proof checks, and io0's
 * brings the trunk up. */
static void bring_up(struct fixture *f)
{
	uint8_t nd[VRIO_AUTH_NONCE_LEN], proof[VRIO_AUTH_PROOF_LEN];
	struct vrio_auth_ctx c = {
		.key = f->key, .key_len = sizeof(f->key), .host = "io0", .ioserver = "io1",
		.host_nonce = nd,
	};
	Vrio__Ctrl *m;

	assert_int_equal(vrio_auth_nonce(nd), 0);
	m = dial(f, nd, sizeof(nd));
	assert_non_null(m);
	assert_int_equal(m->msg_case, VRIO__CTRL__MSG_HELLO);
	assert_string_equal(m->hello->node, "io1");
	assert_int_equal(m->hello->nonce.len, VRIO_AUTH_NONCE_LEN);
	c.ios_nonce = m->hello->nonce.data;
	assert_int_equal(vrio_auth_check(&c, VRIO_AUTH_TRUNK_ACCEPTOR, m->hello->proof.data,
					 m->hello->proof.len), 0);
	/* A host's proof under the same key is no trunk's. */
	assert_int_equal(vrio_auth_check(&c, VRIO_AUTH_IOSERVER, m->hello->proof.data,
					 m->hello->proof.len), -EACCES);
	assert_int_equal(vrio_auth_proof(&c, VRIO_AUTH_TRUNK_DIALER, proof), 0);
	vrio_ctrl_free(m);
	assert_int_equal(f->t->state, IOS_TRUNK_HELLO);
	assert_int_equal(__atomic_load_n(&f->t->up, __ATOMIC_RELAXED), 0);
	push_auth(&f->fc, proof, sizeof(proof));
	turn(f);
	assert_int_equal(f->t->state, IOS_TRUNK_UP);
	assert_int_equal(__atomic_load_n(&f->t->up, __ATOMIC_RELAXED), 1);
	assert_false(f->fc.closed);
	assert_int_equal(failures(f), 0);
}

/* The trunk key proved both ways. */
static void test_trunk_auth_good(void **state)
{
	bring_up(*state);
}

/* A TSO packet with the ECN bit goes to the peer io-server whole, the bit
 * kept (the peer decides for its own ports), and is counted both ways. */
static void test_trunk_ecn_whole(void **state)
{
	struct fixture *f = *state;
	struct ios_network *n = f->t->nets[0].net;
	struct ios_port *tp = f->t->nets[0].port, *pb = NULL;
	static uint8_t frame[54 + 4000];
	struct vrio_pkt_wire vh = {
		.flags = VRIO_PKT_F_NEEDS_CSUM,
		.gso_type = VRIO_PKT_GSO_TCPV4 | VRIO_PKT_GSO_ECN,
		.hdr_len = 54,
		.gso_size = 1448,
		.csum_start = 34,
		.csum_offset = 16,
	};
	const struct msg *m = NULL;

	bring_up(f);
	for (unsigned i = 0; i < n->n_ports; i++)
		if (n->ports[i]->dev)
			pb = n->ports[i];
	assert_non_null(pb);
	/* From nic-b to an address not learned: flooded, to the trunk. */
	memcpy(frame, "\x52\x54\x00\x00\x00\x77\x52\x54\x00\x00\x00\x0b\x08\x00", 14);
	frame[14] = 0x45;
	frame[16] = (uint8_t)((sizeof(frame) - 14) >> 8);
	frame[17] = (uint8_t)(sizeof(frame) - 14);
	frame[23] = 6;
	frame[34 + 12] = 5 << 4;
	frame[34 + 13] = 0x80 | 0x10;	/* CWR, ACK */
	ios_switch_forward(f->r, pb, &vh, frame, sizeof(frame));
	for (unsigned i = 0; i < f->fc.n_out; i++)
		if (f->fc.out[i].f.type == VRIO_FRAME_PKT)
			m = &f->fc.out[i];
	assert_non_null(m);
	assert_int_equal(m->f.len, VRIO_PKT_HDR_LEN + sizeof(frame));
	assert_memory_equal(m->payload, &vh, VRIO_PKT_HDR_LEN);
	assert_memory_equal(m->payload + VRIO_PKT_HDR_LEN, frame, sizeof(frame));
	assert_int_equal(pb->st.ecn_in, 1);
	assert_int_equal(tp->st.ecn_out, 1);
	assert_int_equal(tp->st.ecn_segmented, 0);
	assert_int_equal(tp->st.gso_packets, 0);
}

/* Each way in without the key: refused with an Error, counted, closed,
 * and the trunk stays down. */
static void test_trunk_auth_refusals(void **state)
{
	static const char *const cases[] = {
		"no nonce", "short nonce", "wrong key", "host's proof", "short proof",
		"packet before the proof", "hung up",
	};
	struct fixture *f = *state;

	for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		uint8_t nd[VRIO_AUTH_NONCE_LEN], proof[VRIO_AUTH_PROOF_LEN], other[32];
		struct vrio_auth_ctx c = {
			.key = f->key, .key_len = sizeof(f->key), .host = "io0",
			.ioserver = "io1", .host_nonce = nd,
		};
		uint64_t before = failures(f);
		const char *what = cases[k];
		Vrio__Ctrl *m;

		for (unsigned i = 0; i < f->fc.n_out; i++)
			free(f->fc.out[i].payload);
		f->fc.n_out = 0;
		f->fc.closed = false;
		assert_int_equal(vrio_auth_nonce(nd), 0);
		m = dial(f, nd, !strcmp(what, "no nonce") ? 0 :
				!strcmp(what, "short nonce") ? sizeof(nd) - 1 : sizeof(nd));
		assert_non_null(m);
		if (m->msg_case == VRIO__CTRL__MSG_HELLO) {
			c.ios_nonce = m->hello->nonce.data;
			if (!strcmp(what, "wrong key")) {
				memset(other, 0x5a, sizeof(other));
				c.key = other;
			}
			assert_int_equal(vrio_auth_proof(&c, !strcmp(what, "host's proof") ?
							 VRIO_AUTH_HOST : VRIO_AUTH_TRUNK_DIALER,
							 proof), 0);
			if (!strcmp(what, "short proof")) {
				push_auth(&f->fc, proof, sizeof(proof) - 1);
			} else if (!strcmp(what, "packet before the proof")) {
				struct msg *x = &f->fc.in[f->fc.in_tail++];

				x->f = (struct vrio_frame){ .type = VRIO_FRAME_PKT, .len = 64 };
				x->payload = calloc(1, 64);
			} else if (!strcmp(what, "hung up")) {
				f->fc.hung_up = true;
			} else {
				push_auth(&f->fc, proof, sizeof(proof));
			}
			turn(f);
			f->fc.hung_up = false;
		}
		vrio_ctrl_free(m);
		/* An Error when the trunk refused; a peer that hung up or
		 * broke the protocol is closed without one. */
		m = out_ctrl(&f->fc, f->fc.n_out - 1);
		if (strcmp(what, "hung up") && strcmp(what, "packet before the proof")) {
			assert_int_equal(m->msg_case, VRIO__CTRL__MSG_ERROR);
			assert_int_equal(m->error->status, -EACCES);
		}
		vrio_ctrl_free(m);
		assert_true(f->fc.closed);
		if (failures(f) != before + 1)
			fail_msg("case '%s': %llu failures counted, want %llu", what,
				 (unsigned long long)failures(f), (unsigned long long)before + 1);
		assert_int_equal(__atomic_load_n(&f->t->up, __ATOMIC_RELAXED), 0);
	}
}

/* A broadcast from the peer's side of network `id`. */
static void push_pkt(struct fake_conn *fc, uint32_t id)
{
	static const uint8_t src[6] = { 0x52, 0x54, 0x00, 0x00, 0x00, 0x0c };
	const uint32_t len = VRIO_PKT_HDR_LEN + 60;
	struct msg *x = &fc->in[fc->in_tail++];
	uint8_t *eth;

	assert_true(fc->in_tail <= FAKE_MAX);
	x->f = (struct vrio_frame){ .type = VRIO_FRAME_PKT, .dev = id, .len = len };
	x->payload = calloc(1, len);
	assert_non_null(x->payload);
	eth = x->payload + VRIO_PKT_HDR_LEN;
	memset(eth, 0xff, 6);
	memcpy(eth + 6, src, sizeof(src));
	eth[12] = 0x08;
}

static uint32_t net_id(const struct vrio_topology *t, const char *name)
{
	for (size_t i = 0; i < t->n_networks; i++)
		if (!strcmp(t->networks[i].name, name))
			return t->networks[i].id;
	fail_msg("no network %s", name);
	return 0;
}

struct reload_job {
	struct ios_server *srv;
	const struct vrio_topology *t;
	const struct vrio_topo_diff *diff;
	int done;			/* atomic */
};

static void *reload_main(void *arg)
{
	struct reload_job *j = arg;

	ios_trunks_reload(j->srv, j->t, j->diff);
	__atomic_store_n(&j->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

/* The trunks' part of a reload from `old` to `fmt` (%s: the key file), on
 * a thread of its own as on the control thread, while this one turns the
 * reactor as its thread would. Returns the new file. */
static struct vrio_topology *reload(struct fixture *f, const struct vrio_topology *old,
				    const char *fmt)
{
	const char *key_at = strstr(fmt, "%s");
	struct reload_job j = { .srv = &f->srv };
	char yaml[2048], err[256];
	struct vrio_topo_diff diff;
	struct vrio_topology *t;
	pthread_t th;

	assert_non_null(key_at);
	snprintf(yaml, sizeof(yaml), "%.*s%s%s", (int)(key_at - fmt), fmt, f->key_path, key_at + 2);
	assert_int_equal(vrio_topology_parse("new.yaml", yaml, strlen(yaml), &t, err,
					     sizeof(err)), 0);
	assert_int_equal(vrio_topology_diff(old, t, VRIO_ROLE_IOSERVER, f->node, &diff), 0);
	assert_false(diff.refused);
	j.t = t;
	j.diff = &diff;
	/* Ports leave their switch by a message to it (switch.c). */
	f->r->started = true;
	assert_int_equal(pthread_create(&th, NULL, reload_main, &j), 0);
	while (!__atomic_load_n(&j.done, __ATOMIC_ACQUIRE))
		ios_reactor_turn(f->r);
	assert_int_equal(pthread_join(th, NULL), 0);
	f->r->started = false;
	turn(f);
	vrio_topology_diff_free(&diff);
	return t;
}

/* What the trunk carries follows the reloads without a new connection: a
 * network added is switched, one removed is counted as unknown, and a
 * trunk with nothing left is closed and leaves the table. */
static void test_trunk_reload(void **state)
{
	struct fixture *f = *state;
	struct vrio_topology *t_wan, *t_no_lan, *t_none;
	uint32_t lan = net_id(f->topo, "lan"), wan;
	struct ios_port *lan_port, *wan_port;
	unsigned sent;

	bring_up(f);
	sent = f->fc.n_out;
	assert_int_equal(f->t->n_nets, 1);
	lan_port = f->t->carried[0].tn.port;
	push_pkt(&f->fc, lan);
	turn(f);
	assert_int_equal(vrio_counter_get(&f->t->st.frames_rx), 1);

	t_wan = reload(f, f->topo, topo_wan);
	wan = net_id(t_wan, "wan");

	assert_ptr_equal(ios_trunk_find(&f->srv, "io0"), f->t);
	assert_int_equal(f->t->state, IOS_TRUNK_UP);
	assert_false(f->fc.closed);
	assert_int_equal(f->fc.n_out, sent);	/* no new hello: the same connection */
	assert_int_equal(f->t->n_nets, 2);
	assert_int_equal(f->t->n_carried, 2);
	wan_port = f->t->carried[1].tn.port;
	assert_int_equal(__atomic_load_n(&wan_port->reactor, __ATOMIC_RELAXED), (int)f->r->idx);
	push_pkt(&f->fc, lan);
	push_pkt(&f->fc, wan);
	turn(f);
	assert_int_equal(vrio_counter_get(&f->t->st.frames_rx), 3);
	assert_int_equal(vrio_counter_get(&f->t->st.drops[IOS_TRUNK_DROP_UNKNOWN_NET]), 0);

	t_no_lan = reload(f, t_wan, topo_no_lan);
	assert_int_equal(f->t->state, IOS_TRUNK_UP);
	assert_false(f->fc.closed);
	assert_int_equal(f->t->n_nets, 1);
	assert_int_equal(f->t->n_carried, 1);
	assert_ptr_equal(f->t->carried[0].tn.port, wan_port);
	assert_false(__atomic_load_n(&lan_port->in_use, __ATOMIC_RELAXED));
	push_pkt(&f->fc, lan);
	push_pkt(&f->fc, wan);
	turn(f);
	assert_int_equal(vrio_counter_get(&f->t->st.frames_rx), 4);
	assert_int_equal(vrio_counter_get(&f->t->st.drops[IOS_TRUNK_DROP_UNKNOWN_NET]), 1);

	t_none = reload(f, t_no_lan, topo_none);
	f->t = NULL;		/* freed */
	assert_null(ios_trunk_find(&f->srv, "io0"));
	assert_null(f->srv.trunks[0]);
	assert_true(f->fc.closed);
	assert_false(__atomic_load_n(&wan_port->in_use, __ATOMIC_RELAXED));

	vrio_topology_free(t_wan);
	vrio_topology_free(t_no_lan);
	vrio_topology_free(t_none);
}

/* ---- io0's dialer thread ---- */

enum dial_mode {
	DIAL_NOW,	/* connected at once */
	DIAL_REFUSED,	/* refused at once */
	DIAL_HANG,	/* a silent peer: waits for the cancel, then gives up */
	DIAL_LATE,	/* waits for the cancel, then connects anyway */
};

static struct {
	enum dial_mode mode;
	struct vrio_conn *conn;
	int calls;		/* atomic */
	int bad;		/* atomic: a dial without a cancel descriptor */
} dialing;

static int dial_connect(const char *addr, int cancel_fd, struct vrio_conn **out)
{
	struct pollfd pfd = { .fd = cancel_fd, .events = POLLIN };

	(void)addr;
	__atomic_add_fetch(&dialing.calls, 1, __ATOMIC_SEQ_CST);
	if (cancel_fd < 0)
		__atomic_store_n(&dialing.bad, 1, __ATOMIC_SEQ_CST);
	switch (dialing.mode) {
	case DIAL_REFUSED:
		return -ECONNREFUSED;
	case DIAL_HANG:
		return poll(&pfd, 1, 5000) > 0 ? -ECANCELED : -ETIMEDOUT;
	case DIAL_LATE:
		poll(&pfd, 1, 5000);
		break;
	case DIAL_NOW:
		break;
	}
	*out = dialing.conn;
	return 0;
}

static const struct vrio_transport_ops dial_ops = {
	.name = "fake",
	.connect = dial_connect,
	.send = fake_send,
	.flush = fake_flush,
	.poll = fake_poll,
	.close = fake_close,
	.conn_fd = fake_fd,
};

static int dial_calls(void)
{
	return __atomic_load_n(&dialing.calls, __ATOMIC_SEQ_CST);
}

static void wait_dials(int n)
{
	for (int i = 0; i < 2000 && dial_calls() < n; i++)
		usleep(1000);
	assert_true(dial_calls() >= n);
}

/* Turns the reactor until the trunk holds a connection. */
static void wait_conn(struct fixture *f)
{
	for (int i = 0; i < 1000 && !f->t->conn; i++) {
		turn(f);
		usleep(1000);
	}
	assert_ptr_equal(f->t->conn, &f->fc.base);
}

/* io0 of `fmt`, its dials through dial_ops. */
static int setup_io0(void **state, const char *fmt)
{
	struct fixture *f;
	int rc = setup_node(state, "io0", fmt);

	f = *state;
	memset(&dialing, 0, sizeof(dialing));
	dialing.conn = &f->fc.base;
	f->srv.stack.base = &dial_ops;
	/* Trunks made from here on copy it; those made at start dial
	 * through their own stack (trunk.h: dial_stack). */
	for (unsigned i = 0; i < IOS_MAX_TRUNKS; i++)
		if (f->srv.trunks[i])
			f->srv.trunks[i]->dial_stack.base = &dial_ops;
	return rc;
}

/* io0, dialling io1. */
static int setup_dialer(void **state)
{
	int rc = setup_io0(state, topo_yaml);
	struct fixture *f = *state;

	assert_int_equal(f->srv.n_trunks, 1);
	assert_true(f->t->dialer);
	return rc;
}

/* io0, sharing no network with io1 yet. */
static int setup_alone(void **state)
{
	int rc = setup_io0(state, topo_none);
	struct fixture *f = *state;

	assert_null(f->t);
	return rc;
}

/* A dial made: posted to the trunk's reactor, which says Hello; no other
 * dial while the connection is held. */
static void test_dial_posts(void **state)
{
	struct fixture *f = *state;
	Vrio__Ctrl *m;

	dialing.mode = DIAL_NOW;
	assert_int_equal(ios_trunks_start(&f->srv), 0);
	wait_dials(1);
	wait_conn(f);
	assert_int_equal(f->t->state, IOS_TRUNK_HELLO);
	m = out_ctrl(&f->fc, 0);
	assert_int_equal(m->msg_case, VRIO__CTRL__MSG_HELLO);
	assert_string_equal(m->hello->node, "io0");
	vrio_ctrl_free(m);
	usleep(700 * 1000);
	assert_int_equal(dial_calls(), 1);
	ios_trunks_stop(&f->srv);
	assert_false(f->t->dial_started);
	assert_int_equal(dialing.bad, 0);
}

/* Refused dials: one every IOS_TRUNK_DIAL_NS, one streak. */
static void test_dial_interval(void **state)
{
	struct fixture *f = *state;
	int n;

	dialing.mode = DIAL_REFUSED;
	assert_int_equal(ios_trunks_start(&f->srv), 0);
	usleep(1200 * 1000);
	ios_trunks_stop(&f->srv);
	/* At 0, 0.5 and 1 s; a slow machine may miss one. */
	n = dial_calls();
	assert_in_range(n, 2, 3);
	assert_int_equal(f->t->dial_failures, (unsigned)n);
	assert_null(f->t->conn);
}

/* The stop gives a hanging dial up at once. */
static void test_dial_stop_gives_up(void **state)
{
	struct fixture *f = *state;
	uint64_t t0;

	dialing.mode = DIAL_HANG;
	assert_int_equal(ios_trunks_start(&f->srv), 0);
	wait_dials(1);
	t0 = vrio_now_ns();
	ios_trunks_stop(&f->srv);
	assert_true(vrio_now_ns() - t0 < 500ull * 1000000);
	assert_false(f->t->dial_started);
	assert_int_equal(dial_calls(), 1);
	assert_int_equal(dialing.bad, 0);
	/* Idempotent. */
	ios_trunks_stop(&f->srv);
}

/* A connection made as the stop began is closed, not posted. */
static void test_dial_late_closed(void **state)
{
	struct fixture *f = *state;

	dialing.mode = DIAL_LATE;
	assert_int_equal(ios_trunks_start(&f->srv), 0);
	wait_dials(1);
	ios_trunks_stop(&f->srv);
	assert_true(f->fc.closed);
	assert_int_equal(__atomic_load_n(&f->t->linked, __ATOMIC_RELAXED), 0);
	turn(f);
	assert_null(f->t->conn);
}

/* A reload that retires the trunk gives its hanging dial up and joins
 * its dialer before the trunk is freed. */
static void test_dial_reload_retires(void **state)
{
	struct fixture *f = *state;
	struct vrio_topology *t_none;
	uint64_t t0;

	dialing.mode = DIAL_HANG;
	assert_int_equal(ios_trunks_start(&f->srv), 0);
	wait_dials(1);
	t0 = vrio_now_ns();
	t_none = reload(f, f->topo, topo_none);
	assert_true(vrio_now_ns() - t0 < 1000ull * 1000000);
	f->t = NULL;		/* freed */
	assert_null(ios_trunk_find(&f->srv, "io1"));
	assert_int_equal(dial_calls(), 1);
	vrio_topology_free(t_none);
}

/* A trunk a reload adds is dialled at once. */
static void test_dial_reload_adds(void **state)
{
	struct fixture *f = *state;
	struct vrio_topology *t_wan;

	dialing.mode = DIAL_NOW;
	assert_int_equal(ios_trunks_start(&f->srv), 0);
	t_wan = reload(f, f->topo, topo_wan);
	f->t = ios_trunk_find(&f->srv, "io1");
	assert_non_null(f->t);
	assert_true(f->t->dial_started);
	wait_dials(1);
	wait_conn(f);
	assert_int_equal(f->t->state, IOS_TRUNK_HELLO);
	ios_trunks_stop(&f->srv);
	vrio_topology_free(t_wan);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_trunk_auth_good, setup, teardown),
		cmocka_unit_test_setup_teardown(test_trunk_auth_refusals, setup, teardown),
		cmocka_unit_test_setup_teardown(test_trunk_reload, setup, teardown),
		cmocka_unit_test_setup_teardown(test_trunk_ecn_whole, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dial_posts, setup_dialer, teardown),
		cmocka_unit_test_setup_teardown(test_dial_interval, setup_dialer, teardown),
		cmocka_unit_test_setup_teardown(test_dial_stop_gives_up, setup_dialer, teardown),
		cmocka_unit_test_setup_teardown(test_dial_late_closed, setup_dialer, teardown),
		cmocka_unit_test_setup_teardown(test_dial_reload_retires, setup_dialer, teardown),
		cmocka_unit_test_setup_teardown(test_dial_reload_adds, setup_alone, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The io-server's side of the authentication handshake (proto/auth.h,
 * io-server/control.c), driven by a scripted peer over an in-memory
 * connection. host0 has a key file (made at start), host1 has none. The
 * peer may say hello as either, as nobody, with any nonce; send the right
 * proof (computed from the io-server's challenge, as a host with the key
 * would), the right proof with one bit flipped, or any bytes; attach;
 * and send any control message. The input is a script of records:
 *
 *   u8 op (mod 8)
 *   0  Hello      u8 flags: bits 0-1 node (host0, host1, "nobody", none),
 *                 bit 2 a wrong version, bits 3-4 the nonce (none, 32, 16
 *                 or 33 bytes, from the input)
 *   1  Auth       the right proof for the last challenge (zeroes if none);
 *                 u8 flip: 0 none, else bit (flip - 1) of it flipped
 *   2  Auth       u8 len (mod 48), bytes
 *   3  Attach     u8: disk-a (host0's), disk-b (host1's), or "x"
 *   4  CTRL       u16 len (mod 512), payload: anything
 *   5  Heartbeat
 *   6  hang up    the peer closes once its frames are read
 *   7  turn
 *
 * Each record is delivered and the reactor turned until idle. Properties:
 * no crash, UB or leak; the io-server's Hello to host0 carries a nonce and
 * a proof that checks under host0's key, its Hello to host1 none; no
 * device is attached and no session is ready as host0 unless the right
 * proof answered the challenge; the right proof, sent as the first thing
 * after a challenge, makes the session ready; no attach of another host's
 * device succeeds; and a connection that ends as host0 without its proof
 * is counted as a failed authentication.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "auth.h"
#include "ctrl.h"
#include "fuzz_input.h"
#include "ioserver_internal.h"
#include "log.h"

#define FUZZ_MAX_FRAMES	64
#define FUZZ_MAX_TURNS	1000

static char key_dir[64], key_path[96];
static uint8_t key[VRIO_AUTH_KEY_MIN];
static struct vrio_topology *topo;
static struct ios_server srv;
static uint64_t fuzz_now;

static const char topo_fmt[] =
	"version: 1\n"
	"io_servers:\n"
	"  - {name: io0, listen: 127.0.0.1:7400}\n"
	"hosts:\n"
	"  - {name: host0, key_file: %s}\n"
	"  - {name: host1}\n"
	"devices:\n"
	"  - {name: disk-a, type: blk, host: host0, io_server: io0, socket: /run/a.sock,\n"
	"     backend: {ram: 8K}}\n"
	"  - {name: disk-b, type: blk, host: host1, io_server: io0, socket: /run/b.sock,\n"
	"     backend: {ram: 8K}}\n";

static uint64_t fuzz_clock(void)
{
	return fuzz_now;
}

/* ---- the peer, and the connection it talks over ---- */

struct peer {
	struct vrio_conn base;
	int efd;
	struct vrio_frame in_f[FUZZ_MAX_FRAMES];
	uint8_t *in_p[FUZZ_MAX_FRAMES];
	unsigned in_head, in_tail;
	bool closed, hangup;
	/* the handshake, as the peer sees it */
	const char *hello_node;		/* the node of its last Hello */
	uint8_t nh[VRIO_AUTH_NONCE_LEN], ns[VRIO_AUTH_NONCE_LEN];
	bool challenged;		/* host0 got our nonce and answered */
	bool sent_since_challenge;	/* anything after that challenge */
	bool proved;			/* the right proof went as the first thing */
	bool expect_ready;
	unsigned attached;
};

static struct peer *to_peer(struct vrio_conn *c)
{
	return container_of(c, struct peer, base);
}

static struct vrio_auth_ctx auth_ctx(struct peer *p)
{
	return (struct vrio_auth_ctx){
		.key = key, .key_len = sizeof(key), .host = "host0", .ioserver = "io0",
		.host_nonce = p->nh, .ios_nonce = p->ns,
	};
}

static void got_hello(struct peer *p, const Vrio__Hello *h)
{
	struct vrio_auth_ctx c = auth_ctx(p);

	FUZZ_CHECK(h->node && !strcmp(h->node, "io0"), "a Hello from '%s'", h->node ? h->node : "");
	if (p->hello_node && !strcmp(p->hello_node, "host0")) {
		FUZZ_CHECK(h->nonce.len == VRIO_AUTH_NONCE_LEN, "host0's challenge: a %zu-byte nonce",
			   h->nonce.len);
		memcpy(p->ns, h->nonce.data, VRIO_AUTH_NONCE_LEN);
		FUZZ_CHECK(vrio_auth_check(&c, VRIO_AUTH_IOSERVER, h->proof.data, h->proof.len) == 0,
			   "the io-server's proof does not check under host0's key");
		p->challenged = true;
		p->sent_since_challenge = false;
	} else {
		FUZZ_CHECK(h->nonce.len == 0 && h->proof.len == 0,
			   "a Hello with a challenge to a host without a key");
	}
}

static int peer_send(struct vrio_conn *c, const struct vrio_frame *f, const struct iovec *iov,
		     int iovcnt)
{
	struct peer *p = to_peer(c);
	const struct ios_session *s = c->owner;
	Vrio__Ctrl *m;

	FUZZ_CHECK(!p->closed, "send on a closed connection");
	FUZZ_CHECK(f->type == VRIO_FRAME_CTRL && iovcnt == 1 && iov[0].iov_len == f->len,
		   "a frame of type %u", f->type);
	m = vrio_ctrl_unpack(iov[0].iov_base, f->len);
	FUZZ_CHECK(m != NULL, "an undecodable CTRL");
	switch (m->msg_case) {
	case VRIO__CTRL__MSG_HELLO:
		got_hello(p, m->hello);
		break;
	case VRIO__CTRL__MSG_ATTACH_REPLY:
		if (m->attach_reply->status == 0) {
			const char *host = srv.hosts[s->host].name;

			FUZZ_CHECK(s->state == IOS_SESSION_READY, "an attach before the session is ready");
			FUZZ_CHECK(strcmp(host, "host0") || p->proved,
				   "%s attached for host0, which never proved its key",
				   m->attach_reply->device);
			FUZZ_CHECK(!strcmp(m->attach_reply->device, "disk-a") == !strcmp(host, "host0"),
				   "%s attached for %s", m->attach_reply->device, host);
			p->attached++;
		}
		break;
	case VRIO__CTRL__MSG_HEARTBEAT:
	case VRIO__CTRL__MSG_ERROR:
		break;
	default:
		FUZZ_CHECK(0, "the io-server sent a %s", vrio_ctrl_name(m));
	}
	vrio_ctrl_free(m);
	return 0;
}

static int peer_flush(struct vrio_conn *c)
{
	FUZZ_CHECK(!to_peer(c)->closed, "flush on a closed connection");
	return 0;
}

static int peer_poll(struct vrio_conn *c, vrio_recv_cb cb, void *arg, unsigned budget)
{
	struct peer *p = to_peer(c);
	unsigned n = 0, i;
	int rc;

	FUZZ_CHECK(!p->closed, "poll on a closed connection");
	while (p->in_head != p->in_tail && n < budget) {
		i = p->in_head++;
		rc = cb(arg, c, &p->in_f[i], p->in_p[i]);
		free(p->in_p[i]);
		p->in_p[i] = NULL;
		if (rc < 0)
			return rc;
		n++;
	}
	if (n == 0 && p->hangup)
		return -ECONNRESET;
	return (int)n;
}

static void peer_close(struct vrio_conn *c)
{
	FUZZ_CHECK(!to_peer(c)->closed, "closed twice");
	to_peer(c)->closed = true;
}

static int peer_fd(struct vrio_conn *c)
{
	return to_peer(c)->efd;
}

static const struct vrio_transport_ops peer_ops = {
	.name = "fuzz",
	.send = peer_send,
	.flush = peer_flush,
	.poll = peer_poll,
	.close = peer_close,
	.conn_fd = peer_fd,
};

/* What the server needs of the transport library: nothing listens here. */
int vrio_stack_init(struct vrio_stack *s, const struct vrio_topo_ioserver *ios)
{
	(void)ios;
	memset(s, 0, sizeof(*s));
	s->base = &peer_ops;
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
 * the transport library, and this topology has none. */
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

/* ---- the script ---- */

static void push_ctrl(struct peer *p, const Vrio__Ctrl *m)
{
	uint8_t buf[1024];
	int n = vrio_ctrl_pack(m, buf, sizeof(buf));

	FUZZ_CHECK(n >= 0, "pack");
	if (p->in_tail == FUZZ_MAX_FRAMES)
		return;
	p->in_f[p->in_tail] = (struct vrio_frame){ .type = VRIO_FRAME_CTRL, .len = (uint32_t)n };
	p->in_p[p->in_tail] = malloc(n ? (size_t)n : 1);
	FUZZ_CHECK(p->in_p[p->in_tail] != NULL, "malloc");
	memcpy(p->in_p[p->in_tail], buf, (size_t)n);
	p->in_tail++;
	p->sent_since_challenge = true;
}

static void push_raw(struct peer *p, struct fuzz_in *in, uint32_t len)
{
	if (p->in_tail == FUZZ_MAX_FRAMES)
		return;
	p->in_f[p->in_tail] = (struct vrio_frame){ .type = VRIO_FRAME_CTRL, .len = len };
	p->in_p[p->in_tail] = malloc(len ? len : 1);
	FUZZ_CHECK(p->in_p[p->in_tail] != NULL, "malloc");
	fuzz_take(in, p->in_p[p->in_tail], len);
	p->in_tail++;
	p->sent_since_challenge = true;
}

static void op_hello(struct peer *p, struct fuzz_in *in)
{
	static const char *const nodes[] = { "host0", "host1", "nobody", NULL };
	static const size_t nonce_len[] = { 0, 32, 16, 33 };
	uint8_t flags = fuzz_u8(in), nonce[33];
	Vrio__Ctrl m = VRIO__CTRL__INIT;
	Vrio__Hello h = VRIO__HELLO__INIT;

	h.version = VRIO_PROTO_VERSION + ((flags >> 2) & 1u);
	h.node = (char *)nodes[flags & 3u];
	h.nonce.len = nonce_len[(flags >> 3) & 3u];
	fuzz_take(in, nonce, h.nonce.len);
	h.nonce.data = nonce;
	if (h.nonce.len == VRIO_AUTH_NONCE_LEN)
		memcpy(p->nh, nonce, VRIO_AUTH_NONCE_LEN);
	m.seq = 1;
	m.msg_case = VRIO__CTRL__MSG_HELLO;
	m.hello = &h;
	/* The first Hello names the session; a second is garbage. */
	if (!p->hello_node)
		p->hello_node = h.node ? h.node : "";
	push_ctrl(p, &m);
}

static void op_auth(struct peer *p, const uint8_t *proof, size_t len, bool right)
{
	Vrio__Ctrl m = VRIO__CTRL__INIT;
	Vrio__Auth a = VRIO__AUTH__INIT;
	bool first = p->challenged && !p->sent_since_challenge;

	a.proof.data = (uint8_t *)proof;
	a.proof.len = len;
	m.seq = 2;
	m.msg_case = VRIO__CTRL__MSG_AUTH;
	m.auth = &a;
	push_ctrl(p, &m);
	if (right && first) {
		p->proved = true;
		p->expect_ready = !p->hangup;
	}
}

static void op_attach(struct peer *p, uint8_t which)
{
	static const char *const devs[] = { "disk-a", "disk-b", "x" };
	Vrio__Ctrl m = VRIO__CTRL__INIT;
	Vrio__Attach a = VRIO__ATTACH__INIT;

	a.device = (char *)devs[which % 3];
	m.seq = 3;
	m.msg_case = VRIO__CTRL__MSG_ATTACH;
	m.attach = &a;
	push_ctrl(p, &m);
}

static struct ios_session *session_of(const struct peer *p)
{
	struct ios_session *s;

	TAILQ_FOREACH(s, &ios_rctx(srv.reactors[0])->sessions, link)
		if (s->conn == &p->base)
			return s;
	return NULL;
}

static void turn_until_idle(void)
{
	unsigned turns = 0, idle = 0;

	while (idle < 2) {
		FUZZ_CHECK(++turns < FUZZ_MAX_TURNS, "the reactor never goes idle");
		fuzz_now += 1000;
		idle = ios_reactor_turn(srv.reactors[0]) ? 0 : idle + 1;
	}
}

static void check(struct peer *p)
{
	struct ios_session *s = session_of(p);

	if (!s)
		return;
	if (s->state == IOS_SESSION_READY && s->host >= 0 &&
	    !strcmp(srv.hosts[s->host].name, "host0"))
		FUZZ_CHECK(p->proved, "ready as host0 without its proof");
	if (p->expect_ready) {
		FUZZ_CHECK(s->state == IOS_SESSION_READY, "the right proof left the session in state %d",
			   s->state);
		p->expect_ready = false;
	}
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *lvl = getenv("VRIO_FUZZ_LOG");
	int max = lvl ? vrio_log_level_parse(lvl) : -1;
	char err[256], yaml[1024];
	int fd;

	(void)argc;
	(void)argv;
	vrio_log_init("fuzz_auth", max > 0 ? (enum vrio_log_level)max : (enum vrio_log_level)0);
	for (size_t i = 0; i < sizeof(key); i++)
		key[i] = (uint8_t)(0xa5 ^ i);
	snprintf(key_dir, sizeof(key_dir), "/tmp/vrio-fuzz-auth-XXXXXX");
	FUZZ_CHECK(mkdtemp(key_dir) != NULL, "mkdtemp: %s", strerror(errno));
	snprintf(key_path, sizeof(key_path), "%s/host0.key", key_dir);
	fd = open(key_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	FUZZ_CHECK(fd >= 0, "%s: %s", key_path, strerror(errno));
	FUZZ_CHECK(write(fd, key, sizeof(key)) == (ssize_t)sizeof(key), "write");
	close(fd);
	snprintf(yaml, sizeof(yaml), topo_fmt, key_path);
	FUZZ_CHECK(vrio_topology_parse("fuzz.yaml", yaml, strlen(yaml), &topo, err,
				       sizeof(err)) == 0, "%s", err);
	FUZZ_CHECK(ios_server_init(&srv, topo, "io0", NULL) == 0, "server");
	/* Read at start: the file is not needed any more. */
	unlink(key_path);
	rmdir(key_dir);
	FUZZ_CHECK(srv.n_reactors == 1, "%u reactors", srv.n_reactors);
	srv.reactors[0]->clock = fuzz_clock;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_in in = { data, size };
	struct ios_reactor *r = srv.reactors[0];
	int host0 = ios_server_host(&srv, "host0", false);
	uint64_t fails0 = ios_rctx(r)->auth_failures[host0];
	uint8_t proof[VRIO_AUTH_PROOF_LEN], raw[48], flip;
	struct vrio_auth_ctx c;
	struct ios_session *s;
	struct peer *p;
	unsigned i;

	fuzz_now += 1000000000ull;
	p = calloc(1, sizeof(*p));
	FUZZ_CHECK(p != NULL, "calloc");
	p->base.ops = &peer_ops;
	p->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	FUZZ_CHECK(p->efd >= 0, "eventfd");
	snprintf(p->base.name, sizeof(p->base.name), "peer");
	s = ios_session_create(&srv, &p->base);
	FUZZ_CHECK(s != NULL, "session");
	__atomic_add_fetch(&r->n_sessions, 1, __ATOMIC_RELAXED);
	ios_session_adopt(r, s);

	while (fuzz_left(&in) && !p->closed) {
		switch (fuzz_u8(&in) % 8) {
		case 0:
			op_hello(p, &in);
			break;
		case 1:
			flip = fuzz_u8(&in);
			memset(proof, 0, sizeof(proof));
			if (p->challenged) {
				c = auth_ctx(p);
				FUZZ_CHECK(vrio_auth_proof(&c, VRIO_AUTH_HOST, proof) == 0, "proof");
			}
			if (flip)
				proof[((flip - 1) / 8) % sizeof(proof)] ^= (uint8_t)(1u << ((flip - 1) % 8));
			op_auth(p, proof, sizeof(proof), p->challenged && !flip);
			break;
		case 2: {
			size_t len = fuzz_u8(&in) % sizeof(raw);

			fuzz_take(&in, raw, len);
			op_auth(p, raw, len, false);
			break;
		}
		case 3:
			op_attach(p, fuzz_u8(&in));
			break;
		case 4:
			push_raw(p, &in, fuzz_u16(&in) % 512u);
			break;
		case 5: {
			Vrio__Ctrl m = VRIO__CTRL__INIT;
			Vrio__Heartbeat hb = VRIO__HEARTBEAT__INIT;

			m.msg_case = VRIO__CTRL__MSG_HEARTBEAT;
			m.heartbeat = &hb;
			push_ctrl(p, &m);
			break;
		}
		case 6:
			p->hangup = true;
			break;
		default:
			break;
		}
		turn_until_idle();
		check(p);
	}

	/* The end: the peer leaves; the session goes, and with it what it
	 * attached. A host0 that never proved its key counts as refused. */
	s = session_of(p);
	if (s)
		ios_session_close(s, "fuzz: end of input");
	turn_until_idle();
	FUZZ_CHECK(!session_of(p) && TAILQ_EMPTY(&ios_rctx(r)->sessions), "a session left");
	FUZZ_CHECK(r->n_sessions == 0 && r->n_devices == 0, "%u sessions, %u devices left",
		   r->n_sessions, r->n_devices);
	for (i = 0; i < srv.n_slots; i++)
		FUZZ_CHECK(!srv.devs[i] || !srv.devs[i]->owner, "%s still owned",
			   srv.devs[i]->name);
	if (p->challenged && !p->proved)
		FUZZ_CHECK(ios_rctx(r)->auth_failures[host0] > fails0,
			   "host0 left without its proof, and no failure was counted");
	for (i = p->in_head; i < p->in_tail; i++)
		free(p->in_p[i]);
	close(p->efd);
	free(p);
	return 0;
}

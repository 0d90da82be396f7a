/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Trunks between io-servers (trunk.h): set-up and reloads on the control
 * thread; dialling on a dialer thread per trunk this side dials; the
 * connection, its Hello, its heartbeats and the frames both ways on the
 * trunk's reactor.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "auth.h"
#include "ctrl.h"
#include "ioserver_internal.h"
#include "keyfile.h"
#include "log.h"
#include "tls.h"
#include "topology_diff.h"

#define TRUNK_POLL_BUDGET	64u

_Static_assert(sizeof(((struct ios_trunk *)0)->nets) / sizeof(struct ios_trunk_net) ==
		       IOS_MAX_NETWORKS &&
	       sizeof(((struct ios_trunk *)0)->carried) / sizeof(struct ios_trunk_carry) ==
		       IOS_MAX_NETWORKS, "a trunk carries up to every network");
_Static_assert(sizeof(((struct ios_trunk *)0)->nonce) == VRIO_AUTH_NONCE_LEN &&
		       sizeof(((struct ios_trunk *)0)->auth_expect) == VRIO_AUTH_PROOF_LEN &&
		       sizeof(((struct ios_session *)0)->trunk_nonce) == VRIO_AUTH_NONCE_LEN,
	       "room for auth.h's nonces and proofs");

const char *const ios_trunk_drop_names[IOS_TRUNK_NR_DROPS] = {
	[IOS_TRUNK_DROP_UNKNOWN_NET] = "unknown_network",
	[IOS_TRUNK_DROP_SEND] = "send_queue_full",
	[IOS_TRUNK_DROP_UNACKED] = "unacked",
};

/* ---- the trunk's reactor ---- */

static void trunk_nets_str(const struct ios_trunk *t, char *buf, size_t len)
{
	size_t k = 0;

	buf[0] = '\0';
	for (unsigned i = 0; i < t->n_nets && k < len; i++) {
		int w = snprintf(buf + k, len - k, "%s%s", i ? ", " : "", t->nets[i].net->name);

		if (w < 0)
			break;
		k += (size_t)w;
	}
}

static void trunk_place(struct ios_trunk *t, int reactor)
{
	for (unsigned i = 0; i < t->n_nets; i++)
		__atomic_store_n(&t->nets[i].port->reactor, reactor, __ATOMIC_RELEASE);
}

/* Closes the connection; true if the trunk was up (its ports unplaced). */
static bool trunk_disconnect(struct ios_trunk *t)
{
	bool was_up = t->state == IOS_TRUNK_UP;
	int lost;

	if (t->auth_pending) {
		/* Its proof never came: the dialer found ours wrong (another
		 * key), or it is not who it says. */
		vrio_counter_add(&t->st.auth_failures, 1);
		VRIO_WARN_RL("%s: trunk from %s refused: the connection ended before it proved the "
			     "trunk key (another key?)", t->conn->name, t->peer);
		t->auth_pending = false;
	}
	OPENSSL_cleanse(t->auth_expect, sizeof(t->auth_expect));
	ios_reactor_watch(t->r, &t->ev, 0);
	/* What the peer never acknowledged goes down with the connection:
	 * counted where the stack can tell (the reliable layer), not over a
	 * bare tcp stack, whose socket buffers are not counted in frames. */
	lost = vrio_conn_unacked(t->conn);
	if (lost > 0 && t->state == IOS_TRUNK_UP)
		vrio_counter_add(&t->st.drops[IOS_TRUNK_DROP_UNACKED], (uint64_t)lost);
	t->conn->ops->close(t->conn);
	t->conn = NULL;
	t->sent = false;
	t->flush_pending = false;
	if (was_up) {
		trunk_place(t, -1);
		__atomic_store_n(&t->up, 0, __ATOMIC_RELEASE);
	}
	t->state = IOS_TRUNK_DOWN;
	__atomic_store_n(&t->linked, 0, __ATOMIC_RELEASE);
	return was_up;
}

static void trunk_down(struct ios_trunk *t, const char *reason)
{
	char nets[256];

	if (!t->conn)
		return;
	if (!trunk_disconnect(t)) {
		VRIO_NOTICE("%s: trunk to %s: connection closed before its hello: %s",
			    t->srv->name, t->peer, reason);
		return;
	}
	__atomic_fetch_add(&t->st.downs, 1, __ATOMIC_RELAXED);
	trunk_nets_str(t, nets, sizeof(nets));
	VRIO_NOTICE("%s: trunk to %s down: %s; network(s) %s split until it is back%s",
		    t->srv->name, t->peer, reason, nets,
		    t->dialer ? " (dialling again)" : " (waiting for the peer to dial)");
}

static int trunk_reject(struct ios_trunk *t, int rc, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int trunk_reject(struct ios_trunk *t, int rc, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(t->close_reason, sizeof(t->close_reason), fmt, ap);
	va_end(ap);
	return rc;
}

static int trunk_send_ctrl(struct ios_trunk *t, const Vrio__Ctrl *m)
{
	int rc = vrio_conn_send_ctrl(t->conn, m);

	if (rc == 0)
		t->sent = true;
	return rc;
}

/* Our Hello: with our nonce when the trunk is authenticated, and the
 * acceptor's proof (NULL from the dialer). */
static int trunk_send_hello(struct ios_trunk *t, const uint8_t *proof)
{
	Vrio__Ctrl m = VRIO__CTRL__INIT;
	Vrio__Hello hello = VRIO__HELLO__INIT;

	hello.version = VRIO_PROTO_VERSION;
	hello.node = t->srv->name;
	if (t->key) {
		hello.nonce.data = t->nonce;
		hello.nonce.len = VRIO_AUTH_NONCE_LEN;
	}
	if (proof) {
		hello.proof.data = (uint8_t *)proof;
		hello.proof.len = VRIO_AUTH_PROOF_LEN;
	}
	m.msg_case = VRIO__CTRL__MSG_HELLO;
	m.hello = &hello;
	return trunk_send_ctrl(t, &m);
}

/* The proofs of this connection: the dialer in the host's place; over TLS
 * bound to the session, in `binding`, as a host's are (control.c). */
static int trunk_auth_ctx(struct ios_trunk *t, const uint8_t *peer_nonce,
			  uint8_t binding[VRIO_TLS_BINDING_LEN], struct vrio_auth_ctx *c)
{
	int rc = vrio_tls_binding(t->conn, binding);

	*c = (struct vrio_auth_ctx){
		.key = t->key->bytes,
		.key_len = t->key->len,
		.host = t->dialer ? t->srv->name : t->peer,
		.ioserver = t->dialer ? t->peer : t->srv->name,
		.host_nonce = t->dialer ? t->nonce : peer_nonce,
		.ios_nonce = t->dialer ? peer_nonce : t->nonce,
		.binding = rc == 0 ? binding : NULL,
	};
	return rc == -ENOENT ? 0 : rc;
}

/* A peer that cannot prove the trunk key: counted, one line with its
 * address, an Error it may read, and the close (the caller's). */
static int trunk_refuse(struct ios_trunk *t, const char *why)
{
	Vrio__Ctrl m = VRIO__CTRL__INIT;
	Vrio__Error e = VRIO__ERROR__INIT;
	char msg[128];

	vrio_counter_add(&t->st.auth_failures, 1);
	VRIO_WARN_RL("%s: trunk %s %s refused: %s", t->conn->name, t->dialer ? "to" : "from",
		     t->peer, why);
	t->auth_pending = false;
	OPENSSL_cleanse(t->auth_expect, sizeof(t->auth_expect));
	snprintf(msg, sizeof(msg), "%s: trunk authentication failed", t->srv->name);
	e.status = -EACCES;
	e.message = msg;
	m.msg_case = VRIO__CTRL__MSG_ERROR;
	m.error = &e;
	if (trunk_send_ctrl(t, &m) == 0)
		t->conn->ops->flush(t->conn);
	return trunk_reject(t, -EACCES, "authentication failed: %s", why);
}

static void trunk_up(struct ios_trunk *t)
{
	char nets[256];

	t->state = IOS_TRUNK_UP;
	trunk_place(t, (int)t->r->idx);
	__atomic_store_n(&t->up, 1, __ATOMIC_RELEASE);
	__atomic_fetch_add(&t->st.connects, 1, __ATOMIC_RELAXED);
	trunk_nets_str(t, nets, sizeof(nets));
	VRIO_NOTICE("%s: trunk to %s up (%s), network(s) %s", t->srv->name, t->peer,
		    t->conn->name, nets);
}

static const struct ios_trunk_net *trunk_net(const struct ios_trunk *t, uint32_t id)
{
	for (unsigned i = 0; i < t->n_nets; i++)
		if (t->nets[i].id == id)
			return &t->nets[i];
	return NULL;
}

/* The dialer: the acceptor's Hello must carry its proof; then ours. */
static int trunk_hello_auth(struct ios_trunk *t, const Vrio__Hello *h)
{
	Vrio__Ctrl m = VRIO__CTRL__INIT;
	Vrio__Auth auth = VRIO__AUTH__INIT;
	uint8_t proof[VRIO_AUTH_PROOF_LEN], binding[VRIO_TLS_BINDING_LEN];
	struct vrio_auth_ctx c;
	int rc;

	if (h->nonce.len != VRIO_AUTH_NONCE_LEN || h->proof.len != VRIO_AUTH_PROOF_LEN)
		return trunk_refuse(t, h->proof.len ? "a nonce or proof of the wrong length" :
				       "it sent no proof, but trunk_key_file is set here");
	rc = trunk_auth_ctx(t, h->nonce.data, binding, &c);
	if (rc == 0)
		rc = vrio_auth_check(&c, VRIO_AUTH_TRUNK_ACCEPTOR, h->proof.data, h->proof.len);
	if (rc == -EACCES)
		return trunk_refuse(t, "wrong proof (another trunk key, or a replayed answer)");
	if (rc == 0)
		rc = vrio_auth_proof(&c, VRIO_AUTH_TRUNK_DIALER, proof);
	if (rc < 0)
		return trunk_reject(t, rc, "cannot check the proof: %s", strerror(-rc));
	auth.proof.data = proof;
	auth.proof.len = sizeof(proof);
	m.msg_case = VRIO__CTRL__MSG_AUTH;
	m.auth = &auth;
	rc = trunk_send_ctrl(t, &m);
	OPENSSL_cleanse(proof, sizeof(proof));
	if (rc < 0)
		return trunk_reject(t, rc, "cannot send our proof: %s", strerror(-rc));
	return 0;
}

/* The acceptor: the dialer's proof, in answer to our Hello. */
static int trunk_auth(struct ios_trunk *t, const Vrio__Auth *a)
{
	if (t->state != IOS_TRUNK_HELLO || !t->auth_pending)
		return trunk_reject(t, -EBADMSG, "auth without a challenge");
	if (a->proof.len != VRIO_AUTH_PROOF_LEN ||
	    CRYPTO_memcmp(a->proof.data, t->auth_expect, VRIO_AUTH_PROOF_LEN) != 0)
		return trunk_refuse(t, a->proof.len != VRIO_AUTH_PROOF_LEN ?
					       "a proof of the wrong length" :
					       "wrong proof (another trunk key, or a replayed answer)");
	t->auth_pending = false;
	OPENSSL_cleanse(t->auth_expect, sizeof(t->auth_expect));
	trunk_up(t);
	return 0;
}

static int trunk_ctrl(struct ios_trunk *t, const struct vrio_frame *f, const void *payload)
{
	char node[64], msg[160];
	Vrio__Ctrl *m;
	int rc = 0;

	m = vrio_ctrl_unpack(payload, f->len);
	if (!m)
		return trunk_reject(t, -EBADMSG, "undecodable control message of %u bytes", f->len);
	switch (m->msg_case) {
	case VRIO__CTRL__MSG_HELLO:
		ios_printable(node, sizeof(node), m->hello->node);
		if (t->state != IOS_TRUNK_HELLO || !t->dialer)
			rc = trunk_reject(t, -EBADMSG, "second hello");
		else if (m->hello->version != VRIO_PROTO_VERSION)
			rc = trunk_reject(t, -EPROTONOSUPPORT, "protocol version %u from %s",
					  m->hello->version, node);
		else if (!m->hello->node || strcmp(m->hello->node, t->peer))
			rc = trunk_reject(t, -EPERM, "the hello names %s, not %s", node, t->peer);
		else if (t->key && (rc = trunk_hello_auth(t, m->hello)) < 0)
			break;
		else
			trunk_up(t);
		break;
	case VRIO__CTRL__MSG_AUTH:
		rc = trunk_auth(t, m->auth);
		break;
	case VRIO__CTRL__MSG_HEARTBEAT:
		break;
	case VRIO__CTRL__MSG_ERROR:
		rc = trunk_reject(t, -ECONNABORTED, "the peer reports error %d: %s",
				  m->error->status,
				  ios_printable(msg, sizeof(msg), m->error->message));
		break;
	default:
		rc = trunk_reject(t, -EBADMSG, "unexpected %s message", vrio_ctrl_name(m));
	}
	vrio_ctrl_free(m);
	return rc;
}

static int trunk_recv(void *arg, struct vrio_conn *c, const struct vrio_frame *f,
		      const void *payload)
{
	struct ios_trunk *t = arg;
	const struct ios_trunk_net *tn;
	struct vrio_pkt_wire vh;
	uint32_t len;

	if (f->type == VRIO_FRAME_CTRL)
		return trunk_ctrl(t, f, payload);
	if (f->type != VRIO_FRAME_PKT)
		return trunk_reject(t, -EBADMSG, "unexpected %s frame",
				    vrio_frame_type_name(f->type));
	if (t->state != IOS_TRUNK_UP)
		return trunk_reject(t, -EBADMSG, "a packet before the hello");
	if (f->queue != 0 || f->len < VRIO_PKT_HDR_LEN ||
	    f->len - VRIO_PKT_HDR_LEN > VRIO_PKT_MAX_GSO_FRAME)
		return trunk_reject(t, -EBADMSG, "packet frame of %u bytes on queue %u", f->len,
				    f->queue);
	tn = trunk_net(t, f->dev);
	if (!tn) {
		/* Not garbage: the peer may have read a newer file. */
		vrio_counter_add(&t->st.drops[IOS_TRUNK_DROP_UNKNOWN_NET], 1);
		return 0;
	}
	len = f->len - VRIO_PKT_HDR_LEN;
	vrio_counter_add(&t->st.frames_rx, 1);
	vrio_counter_add(&t->st.bytes_rx, len);
	/* The metadata: the switch checks it against the frame. */
	memcpy(&vh, payload, sizeof(vh));
	vh.rx_ol = 0;
	ios_switch_input(t->r, tn->port, &vh, (const uint8_t *)payload + VRIO_PKT_HDR_LEN, len);
	return 0;
}

void ios_trunk_send(struct ios_reactor *r, struct ios_port *p, const struct vrio_pkt_wire *vh,
		    const uint8_t *frame, uint32_t len)
{
	struct ios_trunk *t = p->trunk;
	struct vrio_frame f = {
		.type = VRIO_FRAME_PKT,
		.dev = p->net->id,
		.len = VRIO_PKT_HDR_LEN + len,
	};
	struct iovec iov[2] = {
		{ (void *)vh, VRIO_PKT_HDR_LEN },
		{ (void *)frame, len },
	};
	int rc;

	if (t->r != r || t->state != IOS_TRUNK_UP) {
		ios_port_drop(p, IOS_DROP_PORT_DOWN);
		return;
	}
	rc = t->conn->ops->send(t->conn, &f, iov, 2);
	if (rc == -ENOBUFS) {
		rc = t->conn->ops->flush(t->conn);
		t->flush_pending = rc > 0;
		if (rc >= 0)
			rc = t->conn->ops->send(t->conn, &f, iov, 2);
	}
	if (rc < 0) {
		/* A dead connection shows at the next poll, which closes it. */
		vrio_counter_add(&t->st.drops[IOS_TRUNK_DROP_SEND], 1);
		ios_port_drop(p, IOS_DROP_BACKLOG);
		return;
	}
	t->sent = true;
	vrio_counter_add(&t->st.frames_tx, 1);
	vrio_counter_add(&t->st.bytes_tx, len);
	vrio_counter_add(&p->st.out_frames, 1);
	vrio_counter_add(&p->st.out_bytes, len);
	if (vh->gso_type & VRIO_PKT_GSO_ECN)
		vrio_counter_add(&p->st.ecn_out, 1);
}

static void trunk_heartbeat(struct ios_trunk *t)
{
	Vrio__Ctrl m = VRIO__CTRL__INIT;
	Vrio__Heartbeat hb = VRIO__HEARTBEAT__INIT;

	if (t->state != IOS_TRUNK_UP)
		return;
	m.msg_case = VRIO__CTRL__MSG_HEARTBEAT;
	m.heartbeat = &hb;
	/* A full queue: the next interval tries again. */
	trunk_send_ctrl(t, &m);
}

static int trunk_poll(struct ios_poller *pl)
{
	struct ios_trunk *t = container_of(pl, struct ios_trunk, poller);
	char why[192];
	int work = 0, rc;

	if (!t->conn)
		return 0;
	t->close_reason[0] = '\0';
	rc = t->conn->ops->poll(t->conn, trunk_recv, t, TRUNK_POLL_BUDGET);
	if (rc < 0) {
		if (!t->close_reason[0])
			snprintf(t->close_reason, sizeof(t->close_reason), "%s",
				 rc == -ECONNRESET ? "closed by the peer" : strerror(-rc));
		trunk_down(t, t->close_reason);
		return 1;
	}
	work += rc;
	switch (vrio_hb_check(&t->hb, t->conn, t->r->now)) {
	case VRIO_HB_DEAD:
		snprintf(why, sizeof(why), "the peer sent nothing for %llu ms: declared dead",
			 (unsigned long long)vrio_hb_silent_ms(&t->hb, t->r->now));
		trunk_down(t, why);
		return 1;
	case VRIO_HB_SEND:
		trunk_heartbeat(t);
		break;
	default:
		break;
	}
	if (t->sent || t->flush_pending || vrio_conn_pending(t->conn)) {
		rc = t->conn->ops->flush(t->conn);
		if (rc < 0) {
			snprintf(why, sizeof(why), "send: %s", strerror(-rc));
			trunk_down(t, why);
			return 1;
		}
		work += t->sent;
		t->sent = false;
		t->flush_pending = rc > 0;
	}
	return work;
}

static int trunk_sleep(struct ios_poller *pl)
{
	struct ios_trunk *t = container_of(pl, struct ios_trunk, poller);
	int tmo, th;

	if (!t->conn)
		return -1;
	if (t->sent)
		return 0;
	ios_reactor_watch(t->r, &t->ev, EPOLLIN | (t->flush_pending ? EPOLLOUT : 0));
	/* A doorbell or a completion event to ask for (shm, rdma: they raise
	 * none for an owner that did not say it sleeps); frames already
	 * there, or an error for the next poll: no sleep. */
	if (vrio_conn_sleep_prepare(t->conn) != 0)
		return 0;
	tmo = vrio_conn_timeout_ms(t->conn);
	if (t->ev.fd < 0 && (tmo < 0 || tmo > 1))
		tmo = 1;
	th = vrio_hb_timeout_ms(&t->hb, t->r->now);
	if (tmo < 0 || th < tmo)
		tmo = th;
	return tmo;
}

static void trunk_ev_ready(struct ios_evsrc *e, uint32_t events)
{
}

struct trunk_conn_msg {
	struct ios_msg m;
	struct ios_trunk *t;
	struct vrio_conn *c;
	size_t nonce_len;		/* the dialer's Hello's, as it came */
	uint8_t nonce[VRIO_AUTH_NONCE_LEN];
};

/*
 * Our Hello on a new connection. The dialer's carries its nonce; the
 * acceptor's its nonce and proof, and the dialer's proof is computed now
 * for its Auth, so that nothing refers to the peer's nonce later.
 */
static int trunk_greet(struct ios_trunk *t, const struct trunk_conn_msg *tm)
{
	uint8_t proof[VRIO_AUTH_PROOF_LEN], binding[VRIO_TLS_BINDING_LEN];
	struct vrio_auth_ctx c;
	int rc;

	if (!t->key)
		return trunk_send_hello(t, NULL);
	rc = vrio_auth_nonce(t->nonce);
	if (rc < 0)
		return rc;
	if (t->dialer)
		return trunk_send_hello(t, NULL);
	if (tm->nonce_len != VRIO_AUTH_NONCE_LEN)
		return trunk_refuse(t, tm->nonce_len ? "a nonce of the wrong length" :
					       "it sent no nonce, but trunk_key_file is set here");
	rc = trunk_auth_ctx(t, tm->nonce, binding, &c);
	if (rc == 0)
		rc = vrio_auth_proof(&c, VRIO_AUTH_TRUNK_ACCEPTOR, proof);
	if (rc == 0)
		rc = vrio_auth_proof(&c, VRIO_AUTH_TRUNK_DIALER, t->auth_expect);
	if (rc == 0)
		rc = trunk_send_hello(t, proof);
	OPENSSL_cleanse(proof, sizeof(proof));
	if (rc == 0)
		t->auth_pending = true;
	return rc;
}

/* A connection for the trunk: dialled (send our Hello, wait for the
 * peer's) or accepted (its Hello came; answer, and it is up). */
static void trunk_adopt(struct ios_reactor *r, struct ios_msg *m)
{
	struct trunk_conn_msg *tm = container_of(m, struct trunk_conn_msg, m);
	struct ios_trunk *t = tm->t;
	int rc;

	if (t->conn && t->state == IOS_TRUNK_UP) {
		/* The live connection stays until it closes or falls silent (a
		 * restarted peer's TCP connection does at once): whoever says
		 * it is the peer must not bring a working trunk down, not even
		 * for the moment it takes to fail the key. */
		VRIO_WARN_RL("%s: trunk to %s: refusing a second connection (%s) while the trunk is up",
			     t->srv->name, t->peer, tm->c->name);
		tm->c->ops->close(tm->c);
		OPENSSL_cleanse(tm, sizeof(*tm));
		free(tm);
		return;
	}
	if (t->conn)
		trunk_down(t, "replaced by a new connection from the peer");
	__atomic_store_n(&t->linked, 1, __ATOMIC_RELEASE);
	t->conn = tm->c;
	t->conn->owner = t;
	t->ev.fd = vrio_conn_fd(t->conn);
	t->ev.armed = 0;
	vrio_hb_start(&t->hb, t->conn, r->now);
	ios_reactor_watch(r, &t->ev, EPOLLIN);
	t->state = IOS_TRUNK_HELLO;
	t->key = __atomic_load_n(&t->srv->trunk_key, __ATOMIC_ACQUIRE);
	t->close_reason[0] = '\0';
	rc = trunk_greet(t, tm);
	OPENSSL_cleanse(tm, sizeof(*tm));
	free(tm);
	if (rc < 0) {
		char why[192];

		if (t->close_reason[0])
			snprintf(why, sizeof(why), "%s", t->close_reason);
		else
			snprintf(why, sizeof(why), "cannot send the hello: %s", strerror(-rc));
		trunk_down(t, why);
		return;
	}
	if (!t->dialer && !t->auth_pending)
		trunk_up(t);
}

static int trunk_post_conn(struct ios_trunk *t, struct vrio_conn *c, const uint8_t *nonce,
			   size_t nonce_len)
{
	struct trunk_conn_msg *tm = calloc(1, sizeof(*tm));

	if (!tm)
		return -ENOMEM;
	tm->m.fn = trunk_adopt;
	tm->t = t;
	tm->c = c;
	tm->nonce_len = nonce_len;
	if (nonce && nonce_len == VRIO_AUTH_NONCE_LEN)
		memcpy(tm->nonce, nonce, VRIO_AUTH_NONCE_LEN);
	__atomic_store_n(&t->linked, 1, __ATOMIC_RELEASE);
	ios_reactor_post(t->r, &tm->m);
	return 0;
}

int ios_trunk_accept(struct ios_trunk *t, struct vrio_conn *c, const uint8_t *nonce,
		     size_t nonce_len)
{
	int rc = trunk_post_conn(t, c, nonce, nonce_len);

	if (rc < 0) {
		VRIO_ERR("%s: trunk to %s: out of memory, refusing its connection", t->srv->name,
			 t->peer);
		c->ops->close(c);
	}
	return rc;
}

static void trunk_start(struct ios_reactor *r, void *arg)
{
	struct ios_trunk *t = arg;

	ios_poller_register(r, &t->poller);
}

/* A reload: the trunk carries one more network. */
static void trunk_net_added(struct ios_reactor *r, struct ios_msg *m)
{
	struct ios_trunk_carry *c = container_of(m, struct ios_trunk_carry, msg);
	struct ios_trunk *t = c->t;

	t->nets[t->n_nets++] = c->tn;
	if (t->state == IOS_TRUNK_UP)
		__atomic_store_n(&c->tn.port->reactor, (int)r->idx, __ATOMIC_RELEASE);
	VRIO_NOTICE("%s: trunk to %s now carries network %s%s", t->srv->name, t->peer,
		    c->tn.net->name, t->state == IOS_TRUNK_UP ? "" : " (once it is up)");
}

/* A reload: the trunk no longer carries a network; what the peer still
 * sends for it is counted as unknown_network from here. */
static void trunk_net_dropped(struct ios_reactor *r, struct ios_msg *m)
{
	struct ios_trunk_carry *c = container_of(m, struct ios_trunk_carry, msg);
	struct ios_trunk *t = c->t;
	unsigned i;

	for (i = 0; i < t->n_nets && t->nets[i].port != c->tn.port; i++)
		;
	if (i == t->n_nets)
		return;
	__atomic_store_n(&c->tn.port->reactor, -1, __ATOMIC_RELEASE);
	t->nets[i] = t->nets[--t->n_nets];
	VRIO_NOTICE("%s: trunk to %s no longer carries network %s", t->srv->name, t->peer,
		    c->tn.net->name);
}

/* A reload left the trunk with no network: closed, and nothing of it is
 * left on the reactor. */
static void trunk_stop(struct ios_reactor *r, struct ios_msg *m)
{
	struct ios_trunk *t = container_of(m, struct ios_trunk, stop_msg);

	if (t->conn)
		trunk_disconnect(t);
	trunk_place(t, -1);
	t->n_nets = 0;
	ios_poller_unregister(&t->poller);
	VRIO_NOTICE("%s: trunk to %s closed: it carries no network any more", t->srv->name,
		    t->peer);
}

/* ---- control thread ---- */

struct ios_trunk *ios_trunk_find(struct ios_server *srv, const char *node)
{
	unsigned n = __atomic_load_n(&srv->n_trunks, __ATOMIC_ACQUIRE);
	struct ios_trunk *t;

	for (unsigned i = 0; i < n; i++) {
		t = __atomic_load_n(&srv->trunks[i], __ATOMIC_ACQUIRE);
		if (t && !strcmp(t->peer, node))
			return t;
	}
	return NULL;
}

static unsigned trunk_free_slots(const struct ios_server *srv)
{
	unsigned n = 0;

	for (unsigned i = 0; i < IOS_MAX_TRUNKS; i++)
		n += !srv->trunks[i];
	return n;
}

/* A trunk to `peer`, not yet in the table: a free slot is kept for it. */
static struct ios_trunk *trunk_new(struct ios_server *srv, const struct vrio_topo_ioserver *self,
				   const struct vrio_topo_ioserver *peer, unsigned slot)
{
	struct ios_trunk *t = calloc(1, sizeof(*t));
	char esc[128];

	if (!t)
		return NULL;
	t->srv = srv;
	t->slot = slot;
	snprintf(t->peer, sizeof(t->peer), "%s", peer->name);
	snprintf(t->addr, sizeof(t->addr), "%s", peer->listen);
	/* Deterministic: exactly one side dials. */
	t->dialer = strcmp(srv->name, peer->name) < 0;
	vrio_mw_escape(esc, sizeof(esc), peer->name);
	snprintf(t->label, sizeof(t->label), "peer=\"%s\"", esc);
	vrio_hb_init(&t->hb, self->heartbeat.interval_ms, self->heartbeat.dead_after_ms);
	t->ev.fd = -1;
	t->dial_stopfd = -1;
	/* The io-server's own stack, without its listener's TLS. */
	vrio_stack_plain(&t->dial_stack, &srv->stack);
	if (peer->tls.enabled) {
		t->tls = true;
		t->tls_psk = peer->tls.psk;
		if (!t->tls_psk && !(t->tls_ca = strdup(peer->tls.ca))) {
			free(t);
			return NULL;
		}
	}
	t->ev.ready = trunk_ev_ready;
	t->poller.name = t->peer;
	t->poller.poll = trunk_poll;
	t->poller.sleep = trunk_sleep;
	t->stop_msg.fn = trunk_stop;
	return t;
}

static struct ios_trunk_carry *trunk_carried(struct ios_trunk *t, uint32_t id)
{
	for (unsigned i = 0; i < t->n_carried; i++)
		if (t->carried[i].tn.id == id)
			return &t->carried[i];
	return NULL;
}

/* t carries network tn from now on: its port in tn's switch, then the
 * reactor's nets[] (directly while no reactor runs the trunk). */
static int trunk_carry(struct ios_server *srv, struct ios_trunk *t,
		       const struct vrio_topo_network *tn)
{
	struct ios_trunk_carry fresh = { .t = t }, *c;
	char label[96];
	int rc;

	if (trunk_carried(t, tn->id))
		return 0;
	if (t->n_carried >= IOS_MAX_NETWORKS)
		return -ENOSPC;
	rc = ios_switch_network(srv, tn, &fresh.tn.net);
	if (rc < 0)
		return rc;
	snprintf(label, sizeof(label), "trunk:%s", t->peer);
	rc = ios_switch_trunk_port_add(srv, fresh.tn.net, t, label, &fresh.tn.port);
	if (rc < 0)
		return rc;
	fresh.tn.id = tn->id;
	pthread_mutex_lock(&srv->lock);
	c = &t->carried[t->n_carried++];
	*c = fresh;
	pthread_mutex_unlock(&srv->lock);
	if (t->started) {
		c->msg.fn = trunk_net_added;
		ios_reactor_post(t->r, &c->msg);
	} else {
		t->nets[t->n_nets++] = c->tn;
	}
	return 0;
}

/* ---- the dialer threads ---- */

/* Waits ns (rounded up to a millisecond) or until the stop: true then. */
static bool trunk_dial_wait(const struct ios_trunk *t, uint64_t ns)
{
	struct pollfd pfd = { .fd = t->dial_stopfd, .events = POLLIN };

	return poll(&pfd, 1, (int)((ns + 999999) / 1000000)) > 0;
}

/*
 * The dialer thread: the client side of the peer's TLS in the dial stack,
 * made again when the trunk key changed (psk) since the last; a context
 * that cannot be made (logged by tls.c) is not tried again until then.
 * No connection uses the old one: the dialer dials only while the trunk
 * holds none.
 */
static int trunk_dial_tls(struct ios_trunk *t)
{
	struct ios_server *srv = t->srv;
	const struct vrio_key *k =
		t->tls_psk ? __atomic_load_n(&srv->trunk_key, __ATOMIC_ACQUIRE) : NULL;
	struct vrio_tls_ctx *x;

	if (!t->tls || (k == t->dial_key && (t->dial_stack.tls || t->dial_tls_failed)))
		return t->dial_tls_failed ? -EINVAL : 0;
	t->dial_key = k;
	t->dial_tls_failed = true;
	if (t->tls_psk && !k) {
		VRIO_ERR("%s: trunk to %s: its listener takes a PSK, and there is no trunk key",
			 srv->name, t->peer);
		return -ENOKEY;
	}
	x = vrio_tls_ctx_new(&(const struct vrio_tls_opts){
		.name = srv->name,
		.psk = t->tls_psk,
		.identity = srv->name,
		.key = k ? k->bytes : NULL,
		.key_len = k ? k->len : 0,
		.ca_file = t->tls_ca,
	});
	if (!x)
		return -EINVAL;
	vrio_stack_tls(&t->dial_stack, x);
	t->dial_tls_failed = false;
	return 0;
}

/* Dials while the trunk has no connection, IOS_TRUNK_DIAL_NS from the
 * start of one dial to the next; the reactor clears `linked` when the
 * trunk goes down. */
static void *trunk_dialer(void *arg)
{
	struct ios_trunk *t = arg;
	struct ios_server *srv = t->srv;
	char addr[sizeof(t->addr)];
	uint64_t next = 0, now;
	struct vrio_conn *c;
	int rc;

	for (;;) {
		now = vrio_now_ns();
		if (trunk_dial_wait(t, next > now ? next - now : 0))
			break;
		next = vrio_now_ns() + IOS_TRUNK_DIAL_NS;
		if (__atomic_load_n(&t->linked, __ATOMIC_ACQUIRE))
			continue;
		/* A reload may move the peer. */
		pthread_mutex_lock(&srv->lock);
		memcpy(addr, t->addr, sizeof(addr));
		pthread_mutex_unlock(&srv->lock);
		rc = trunk_dial_tls(t);
		if (rc == 0)
			rc = vrio_stack_connect(&t->dial_stack, addr, t->dial_stopfd, &c);
		if (rc == -ECANCELED)
			break;
		if (rc == 0 && trunk_dial_wait(t, 0)) {
			/* Made as the stop began: nobody would serve it. */
			c->ops->close(c);
			break;
		}
		if (rc < 0) {
			/* One line per streak: a peer that is down for long is
			 * logged once. */
			if (t->dial_failures++ == 0)
				VRIO_NOTICE("%s: trunk to %s: cannot connect to %s: %s; dialling "
					    "again until it answers", srv->name, t->peer, addr,
					    strerror(-rc));
			continue;
		}
		if (t->dial_failures)
			VRIO_INFO("%s: trunk to %s: connected after %u failed attempt(s)",
				  srv->name, t->peer, t->dial_failures);
		t->dial_failures = 0;
		if (trunk_post_conn(t, c, NULL, 0) < 0)
			c->ops->close(c);
	}
	return NULL;
}

static int trunk_dial_start(struct ios_server *srv, struct ios_trunk *t)
{
	char name[16];
	int rc;

	if (!t->dialer || t->dial_started)
		return 0;
	if (t->dial_stopfd < 0)
		t->dial_stopfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (t->dial_stopfd < 0)
		rc = errno;
	else
		rc = pthread_create(&t->dial_thread, NULL, trunk_dialer, t);
	if (rc) {
		VRIO_ERR("%s: trunk to %s: cannot start its dialer thread: %s; its network(s) "
			 "stay split", srv->name, t->peer, strerror(rc));
		return -rc;
	}
	/* The kernel keeps 15 characters of a thread's name. */
	snprintf(name, sizeof(name), "dial-%.10s", t->peer);
	pthread_setname_np(t->dial_thread, name);
	t->dial_started = true;
	return 0;
}

/* All told first: their dials give up together. */
static void trunks_dial_stop(struct ios_trunk *const *v, unsigned n)
{
	struct ios_trunk *t;
	unsigned i;

	for (i = 0; i < n; i++) {
		t = v[i];
		if (t && t->dial_started && eventfd_write(t->dial_stopfd, 1) < 0)
			VRIO_ERR("%s: trunk to %s: cannot stop its dialer: %s", t->srv->name,
				 t->peer, strerror(errno));
	}
	for (i = 0; i < n; i++) {
		t = v[i];
		if (!t || !t->dial_started)
			continue;
		pthread_join(t->dial_thread, NULL);
		t->dial_started = false;
	}
}

static void trunk_free(struct ios_trunk *t)
{
	if (t->dial_stopfd >= 0)
		close(t->dial_stopfd);
	vrio_stack_fini(&t->dial_stack);
	free(t->tls_ca);
	free(t);
}

/* Takes the ports of a trunk that never ran out of their switches, and
 * frees it. */
static void trunk_unwind(struct ios_server *srv, struct ios_trunk *t)
{
	for (unsigned i = 0; i < t->n_carried; i++)
		ios_switch_port_del(srv, t->carried[i].tn.port);
	trunk_free(t);
}

/* On one of the reactors that never park (balance.h), as sessions: a
 * trunk must hear its peer and send its heartbeats whatever the load.
 * Started before it is in the table, so that a connection a session hands
 * it finds its poller there. */
static int trunk_launch(struct ios_server *srv, struct ios_trunk *t)
{
	unsigned n_fixed = srv->n_fixed ? srv->n_fixed : 1;
	int rc;

	t->r = srv->reactors[t->slot % n_fixed];
	rc = ios_reactor_call(t->r, trunk_start, t);
	if (rc < 0)
		return rc;
	t->started = true;
	pthread_mutex_lock(&srv->lock);
	__atomic_store_n(&srv->trunks[t->slot], t, __ATOMIC_RELEASE);
	if (t->slot >= srv->n_trunks)
		__atomic_store_n(&srv->n_trunks, t->slot + 1, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&srv->lock);
	VRIO_INFO("%s: trunk to %s on %s: %s %s, %u network(s)", srv->name, t->peer, t->r->name,
		  t->dialer ? "dials" : "accepts from", t->addr, t->n_carried);
	/* Launched by a reload: it dials at once. A dialer that cannot start
	 * is logged; the trunk is there for the next start. */
	if (srv->trunks_dialing)
		trunk_dial_start(srv, t);
	return 0;
}

/* The trunk changes that add: each network to its trunk, and the trunks
 * that are new started. Returns the first error (each is logged; the
 * network stays split there). */
static int trunks_add(struct ios_server *srv, const struct vrio_topo_ioserver *self,
		      const struct vrio_topo_trunk_change *v, size_t n)
{
	struct ios_trunk *fresh[IOS_MAX_TRUNKS], *t;
	unsigned n_fresh = 0, slot = 0;
	int rc, ret = 0;

	for (size_t i = 0; i < n; i++) {
		if (!v[i].added)
			continue;
		t = ios_trunk_find(srv, v[i].peer->name);
		for (unsigned k = 0; !t && k < n_fresh; k++)
			if (!strcmp(fresh[k]->peer, v[i].peer->name))
				t = fresh[k];
		if (!t) {
			while (slot < IOS_MAX_TRUNKS && srv->trunks[slot])
				slot++;
			rc = slot < IOS_MAX_TRUNKS ? -ENOMEM : -ENOSPC;
			t = slot < IOS_MAX_TRUNKS ? trunk_new(srv, self, v[i].peer, slot++) : NULL;
			if (!t) {
				VRIO_ERR("%s: trunk to %s: %s; network %s stays split there",
					 srv->name, v[i].peer->name, strerror(-rc), v[i].net->name);
				ret = ret ? ret : rc;
				continue;
			}
			fresh[n_fresh++] = t;
		}
		rc = trunk_carry(srv, t, v[i].net);
		if (rc < 0) {
			VRIO_ERR("%s: trunk to %s cannot carry network %s: %s; it stays split there",
				 srv->name, t->peer, v[i].net->name, strerror(-rc));
			ret = ret ? ret : rc;
		}
	}
	for (unsigned k = 0; k < n_fresh; k++) {
		t = fresh[k];
		rc = t->n_carried ? trunk_launch(srv, t) : -ENOENT;
		if (rc == 0)
			continue;
		if (rc != -ENOENT) {
			VRIO_ERR("%s: trunk to %s: cannot start it: %s", srv->name, t->peer,
				 strerror(-rc));
			ret = ret ? ret : rc;
		}
		trunk_unwind(srv, t);
	}
	return ret;
}

int ios_trunks_open(struct ios_server *srv)
{
	const struct vrio_topology *topo = srv->topo;
	struct vrio_topo_trunk_change *v;
	size_t n = 0, max = 0;
	int rc;

	for (size_t i = 0; i < topo->n_networks; i++)
		max += topo->networks[i].n_span;
	v = calloc(max ? max : 1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	/* What a reload from an empty file would add (topology_diff.h). */
	for (size_t i = 0; i < topo->n_networks; i++) {
		const struct vrio_topo_network *tn = &topo->networks[i];

		if (!vrio_topo_network_spans(tn, srv->name))
			continue;
		for (size_t j = 0; j < tn->n_span; j++)
			if (tn->span[j] != srv->self)
				v[n++] = (struct vrio_topo_trunk_change){
					.peer = tn->span[j], .net = tn, .added = true,
				};
	}
	rc = ios_trunks_reload_check(srv, &(struct vrio_topo_diff){ .trunks = v, .n_trunks = n },
				     topo->path, NULL, 0);
	if (rc == 0)
		rc = trunks_add(srv, srv->self, v, n);
	free(v);
	return rc;
}

int ios_trunks_reload_check(struct ios_server *srv, const struct vrio_topo_diff *diff,
			    const char *path, char *why, size_t len)
{
	const char *seen[IOS_MAX_TRUNKS];
	unsigned n_new = 0, room = trunk_free_slots(srv);
	const struct vrio_topo_trunk_change *c;
	char msg[256];
	bool dup;

	for (size_t i = 0; i < diff->n_trunks; i++) {
		c = &diff->trunks[i];
		if (!c->added || ios_trunk_find(srv, c->peer->name))
			continue;
		dup = false;
		for (unsigned k = 0; k < n_new && !dup; k++)
			dup = !strcmp(seen[k], c->peer->name);
		if (dup)
			continue;
		if (n_new == room) {
			snprintf(msg, sizeof(msg),
				 "%s:%u:%u: network '%s' spans io_server '%s': %s would trunk with "
				 "more than %u io_servers", path, c->net->line, c->net->col,
				 c->net->name, c->peer->name, srv->name, IOS_MAX_TRUNKS);
			if (why)
				snprintf(why, len, "%s", msg);
			else
				VRIO_ERR("%s", msg);
			return -ENOSPC;
		}
		seen[n_new++] = c->peer->name;
	}
	return 0;
}

/* The trunk changes that remove. Each network leaves its trunk's nets[]
 * on the trunk's reactor, then its port leaves the switch; a trunk left
 * with nothing leaves the table first and its reactor stops it. The
 * barriers: before the messages, the last reload's (each carry has one
 * message node) have run and no session still holds a trunk that leaves;
 * after them, they ran; after the ports are gone, no reactor is in a turn
 * that found one of them. */
static void trunks_drop(struct ios_server *srv, const struct vrio_topo_diff *diff)
{
	struct ios_trunk *touched[IOS_MAX_TRUNKS], *t;
	bool retire[IOS_MAX_TRUNKS] = { false };
	struct ios_trunk_carry *c;
	unsigned n_touched = 0, k, i, kept, n_drop;
	struct ios_port *p;

	for (size_t j = 0; j < diff->n_trunks; j++) {
		if (diff->trunks[j].added || !(t = ios_trunk_find(srv, diff->trunks[j].peer->name)) ||
		    !(c = trunk_carried(t, diff->trunks[j].net->id)))
			continue;
		c->dropping = true;
		for (k = 0; k < n_touched && touched[k] != t; k++)
			;
		if (k == n_touched)
			touched[n_touched++] = t;
	}
	if (!n_touched)
		return;
	for (k = 0; k < n_touched; k++) {
		t = touched[k];
		for (i = 0, n_drop = 0; i < t->n_carried; i++)
			n_drop += t->carried[i].dropping;
		/* A peer that the reload gives other networks keeps its
		 * connection. */
		retire[k] = n_drop == t->n_carried;
		for (size_t j = 0; retire[k] && j < diff->n_trunks; j++)
			retire[k] = !diff->trunks[j].added ||
				    strcmp(diff->trunks[j].peer->name, t->peer) != 0;
		if (!retire[k])
			continue;
		pthread_mutex_lock(&srv->lock);
		__atomic_store_n(&srv->trunks[t->slot], NULL, __ATOMIC_RELEASE);
		pthread_mutex_unlock(&srv->lock);
		/* Before its stop message: what it posted comes first. */
		trunks_dial_stop(&t, 1);
	}
	if (ios_server_barrier(srv) < 0)
		goto stuck;
	for (k = 0; k < n_touched; k++) {
		t = touched[k];
		if (retire[k]) {
			if (t->started)
				ios_reactor_post(t->r, &t->stop_msg);
			continue;
		}
		for (i = 0; i < t->n_carried; i++) {
			if (!t->carried[i].dropping)
				continue;
			t->carried[i].msg.fn = trunk_net_dropped;
			ios_reactor_post(t->r, &t->carried[i].msg);
		}
	}
	if (ios_server_barrier(srv) < 0)
		goto stuck;
	for (k = 0; k < n_touched; k++) {
		t = touched[k];
		for (i = 0; i < t->n_carried; i++)
			if (t->carried[i].dropping)
				ios_switch_port_del(srv, t->carried[i].tn.port);
		pthread_mutex_lock(&srv->lock);
		for (i = 0, kept = 0; i < t->n_carried; i++) {
			c = &t->carried[i];
			if (!c->dropping) {
				t->carried[kept++] = *c;
				continue;
			}
			p = c->tn.port;
			vrio_counter_add(&t->st.down_gone,
					 vrio_counter_get(&p->st.drops[IOS_DROP_PORT_DOWN]));
		}
		t->n_carried = kept;
		pthread_mutex_unlock(&srv->lock);
	}
	/* A frame between reactors may have named a port just let go. */
	if (ios_server_barrier(srv) < 0)
		goto stuck;
	for (k = 0; k < n_touched; k++)
		if (retire[k])
			trunk_free(touched[k]);
	return;
stuck:
	/* Nothing is freed while a reactor may still run it. */
	VRIO_ERR("%s: reactors did not answer: the trunk changes of this reload are left "
		 "half done", srv->name);
	for (k = 0; k < n_touched; k++)
		for (i = 0; i < touched[k]->n_carried; i++)
			touched[k]->carried[i].dropping = false;
}

void ios_trunks_reload(struct ios_server *srv, const struct vrio_topology *t,
		       const struct vrio_topo_diff *diff)
{
	const struct vrio_topo_ioserver *self = vrio_topology_ioserver(t, srv->name), *peer;
	struct ios_trunk *tr;

	/* A peer that moved: dialled at its new address from the next dial
	 * on (a live connection stays). */
	for (unsigned i = 0; i < srv->n_trunks; i++) {
		tr = srv->trunks[i];
		peer = tr ? vrio_topology_ioserver(t, tr->peer) : NULL;
		if (!peer || !peer->listen || !strcmp(peer->listen, tr->addr))
			continue;
		if (tr->dialer)
			VRIO_NOTICE("%s: trunk to %s: dialling %s from now on (was %s)", srv->name,
				    tr->peer, peer->listen, tr->addr);
		pthread_mutex_lock(&srv->lock);
		snprintf(tr->addr, sizeof(tr->addr), "%s", peer->listen);
		pthread_mutex_unlock(&srv->lock);
	}
	if (!diff->n_trunks)
		return;
	trunks_drop(srv, diff);
	trunks_add(srv, self, diff->trunks, diff->n_trunks);
}

int ios_trunks_start(struct ios_server *srv)
{
	int rc;

	srv->trunks_dialing = true;
	for (unsigned i = 0; i < srv->n_trunks; i++) {
		rc = srv->trunks[i] ? trunk_dial_start(srv, srv->trunks[i]) : 0;
		if (rc < 0)
			return rc;
	}
	return 0;
}

void ios_trunks_stop(struct ios_server *srv)
{
	srv->trunks_dialing = false;
	trunks_dial_stop(srv->trunks, srv->n_trunks);
}

void ios_trunks_close(struct ios_server *srv)
{
	ios_trunks_stop(srv);
	for (unsigned i = 0; i < srv->n_trunks; i++) {
		struct ios_trunk *t = srv->trunks[i];

		if (!t)
			continue;
		if (t->conn)
			t->conn->ops->close(t->conn);
		trunk_free(t);
		srv->trunks[i] = NULL;
	}
	srv->n_trunks = 0;
}

/* ---- metrics thread ---- */

void ios_trunks_metrics(const struct ios_server *srv, struct vrio_mw *w)
{
	/* Each trunk's counters, a family a row (help NULL: the row before's
	 * family), labelled by direction where dir is set. */
	static const struct {
		const char *metric, *help, *dir;
		size_t off;
	} counters[] = {
		{ "vrio_ioserver_trunk_connects_total", "Times the trunk came up", NULL,
		  offsetof(struct ios_trunk, st.connects) },
		{ "vrio_ioserver_trunk_downs_total",
		  "Times the trunk went down: its networks split until it is back", NULL,
		  offsetof(struct ios_trunk, st.downs) },
		{ "vrio_ioserver_trunk_frames_total", "Frames over a trunk to a peer io-server, by direction",
		  "out", offsetof(struct ios_trunk, st.frames_tx) },
		{ "vrio_ioserver_trunk_frames_total", NULL, "in", offsetof(struct ios_trunk, st.frames_rx) },
		{ "vrio_ioserver_trunk_bytes_total", "Ethernet bytes over a trunk, by direction",
		  "out", offsetof(struct ios_trunk, st.bytes_tx) },
		{ "vrio_ioserver_trunk_bytes_total", NULL, "in", offsetof(struct ios_trunk, st.bytes_rx) },
		{ "vrio_ioserver_trunk_auth_failures_total",
		  "Trunk connections refused because a side did not prove the trunk key", NULL,
		  offsetof(struct ios_trunk, st.auth_failures) },
	};
	const struct ios_trunk *t;
	char labels[256];
	uint64_t down;

	unsigned n = 0;

	/* Under srv->lock: the table and what each trunk carries hold
	 * still; a trunk gone with a reload has no series any more. */
	for (unsigned i = 0; i < srv->n_trunks; i++)
		n += srv->trunks[i] != NULL;
	if (!n)
		return;
	vrio_mw_family(w, "vrio_ioserver_trunk_up", "gauge",
		       "1 while the trunk to the peer io-server is connected");
	for (unsigned i = 0; i < srv->n_trunks; i++)
		if ((t = srv->trunks[i]))
			vrio_mw_u64(w, "vrio_ioserver_trunk_up", t->label,
				    (uint64_t)__atomic_load_n(&t->up, __ATOMIC_RELAXED));
	for (size_t k = 0; k < sizeof(counters) / sizeof(counters[0]); k++) {
		if (counters[k].help)
			vrio_mw_family(w, counters[k].metric, "counter", counters[k].help);
		for (unsigned i = 0; i < srv->n_trunks; i++) {
			if (!(t = srv->trunks[i]))
				continue;
			if (counters[k].dir)
				snprintf(labels, sizeof(labels), "%s,direction=\"%s\"", t->label,
					 counters[k].dir);
			vrio_mw_u64(w, counters[k].metric, counters[k].dir ? labels : t->label,
				    vrio_counter_get((const uint64_t *)((const char *)t +
									counters[k].off)));
		}
	}
	vrio_mw_family(w, "vrio_ioserver_trunk_drops_total", "counter",
		       "Frames for or from a peer io-server dropped, by reason (down: the trunk "
		       "was down, the network split)");
	for (unsigned i = 0; i < srv->n_trunks; i++) {
		if (!(t = srv->trunks[i]))
			continue;
		down = vrio_counter_get(&t->st.down_gone);
		for (unsigned j = 0; j < t->n_carried; j++)
			down += vrio_counter_get(
				&t->carried[j].tn.port->st.drops[IOS_DROP_PORT_DOWN]);
		snprintf(labels, sizeof(labels), "%s,reason=\"down\"", t->label);
		vrio_mw_u64(w, "vrio_ioserver_trunk_drops_total", labels, down);
		for (unsigned r = 0; r < IOS_TRUNK_NR_DROPS; r++) {
			snprintf(labels, sizeof(labels), "%s,reason=\"%s\"", t->label,
				 ios_trunk_drop_names[r]);
			vrio_mw_u64(w, "vrio_ioserver_trunk_drops_total", labels,
				    vrio_counter_get(&t->st.drops[r]));
		}
	}
}

/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Control messages on a host's connection, on its front reactor: Hello
 * and Auth (the challenge-response of auth.h), Attach and Detach, DeviceError, Heartbeat, IOTLB invalidations, Error.
 * One table of handlers; the data path (session.c) only sees devices
 * attached here.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "auth.h"
#include "tls.h"
#include "ctrl.h"
#include "ioserver_internal.h"
#include "keyfile.h"
#include "log.h"

/* A host that cannot prove its key: counted, one line with its address,
 * an Error, and the close. */
static int auth_refuse(struct ios_session *s, int host, uint64_t seq, const char *why)
{
	char msg[192];

	vrio_counter_add(&ios_rctx(s->r)->auth_failures[host], 1);
	snprintf(msg, sizeof(msg), "%s: authentication failed", s->srv->hosts[host].name);
	VRIO_WARN_RL("%s: host %s refused: %s", s->conn->name, s->srv->hosts[host].name, why);
	s->auth_pending = false;
	OPENSSL_cleanse(s->auth_expect, sizeof(s->auth_expect));
	return ios_session_send_error(s, seq, -EACCES, msg);
}

/*
 * With a key for the host: our nonce and proof go in our Hello, and the
 * host's proof is computed now and kept for its Auth (auth.h), so that
 * nothing refers to the key after this function.
 */
static int hello_challenge(struct ios_session *s, int host, const Vrio__Hello *h,
			   const struct vrio_key *key, Vrio__Hello *reply, uint8_t *nonce,
			   uint8_t *proof)
{
	struct vrio_auth_ctx c = {
		.key = key->bytes,
		.key_len = key->len,
		.host = s->srv->hosts[host].name,
		.ioserver = s->srv->name,
		.host_nonce = h->nonce.data,
		.ios_nonce = nonce,
	};
	uint8_t binding[VRIO_TLS_BINDING_LEN];
	int rc;

	if (h->nonce.len != VRIO_AUTH_NONCE_LEN)
		return -EACCES;
	rc = vrio_tls_binding(s->conn, binding);
	if (rc == 0)
		c.binding = binding;
	else if (rc != -ENOENT)
		return rc;
	rc = vrio_auth_nonce(nonce);
	if (rc == 0)
		rc = vrio_auth_proof(&c, VRIO_AUTH_IOSERVER, proof);
	if (rc == 0)
		rc = vrio_auth_proof(&c, VRIO_AUTH_HOST, s->auth_expect);
	if (rc < 0)
		return rc;
	reply->nonce.data = nonce;
	reply->nonce.len = VRIO_AUTH_NONCE_LEN;
	reply->proof.data = proof;
	reply->proof.len = VRIO_AUTH_PROOF_LEN;
	return 0;
}

static int ctrl_hello(struct ios_session *s, const Vrio__Ctrl *m)
{
	Vrio__Ctrl reply = VRIO__CTRL__INIT;
	Vrio__Hello hello = VRIO__HELLO__INIT;
	const Vrio__Hello *h = m->hello;
	uint8_t nonce[VRIO_AUTH_NONCE_LEN], proof[VRIO_AUTH_PROOF_LEN];
	const struct vrio_key *key;
	char node[64], msg[256];
	struct ios_trunk *t;
	int rc, host;

	if (s->state != IOS_SESSION_HELLO || s->auth_pending)
		return ios_session_garbage(s, "second hello");
	ios_printable(node, sizeof(node), h->node);
	if (h->version != VRIO_PROTO_VERSION) {
		snprintf(msg, sizeof(msg), "protocol version %u from %s is not spoken here (%u is)",
			 h->version, node, VRIO_PROTO_VERSION);
		return ios_session_send_error(s, m->seq, -EPROTONOSUPPORT, msg);
	}
	host = h->node ? ios_server_host(s->srv, h->node, false) : -1;
	t = host < 0 && h->node ? ios_trunk_find(s->srv, h->node) : NULL;
	if (t && t->dialer) {
		snprintf(msg, sizeof(msg), "%s: this io-server dials the trunk to %s, not the other "
			 "way (do both read the same topology?)", s->srv->name, node);
		return ios_session_send_error(s, m->seq, -EPERM, msg);
	}
	if (t) {
		/* A peer io-server: the connection is the trunk's from here
		 * (session_poll hands it over), and so is the answer. */
		s->trunk = t;
		s->trunk_nonce_len = h->nonce.len;
		if (h->nonce.len == sizeof(s->trunk_nonce))
			memcpy(s->trunk_nonce, h->nonce.data, h->nonce.len);
		return ios_session_reject(s, -EXDEV, "a trunk from %s", node);
	}
	if (host < 0) {
		snprintf(msg, sizeof(msg), "%s is not a host of the topology", node);
		return ios_session_send_error(s, m->seq, -EPERM, msg);
	}
	key = __atomic_load_n(&s->srv->hosts[host].key, __ATOMIC_ACQUIRE);
	if (key) {
		rc = hello_challenge(s, host, h, key, &hello, nonce, proof);
		if (rc == -EACCES)
			return auth_refuse(s, host, m->seq,
					   h->nonce.len ? "a nonce of the wrong length" :
							  "it sent no nonce, but its key_file is set here");
		if (rc < 0)
			return ios_session_reject(s, rc, "cannot make a challenge: %s",
						  strerror(-rc));
	}
	s->host = host;
	if (h->leases)
		vrio_lease_require(&s->lease);
	snprintf(s->name, sizeof(s->name), "%s@%s", s->srv->hosts[host].name, s->conn->name);
	hello.version = VRIO_PROTO_VERSION;
	hello.node = s->srv->name;
	reply.seq = m->seq;
	reply.msg_case = VRIO__CTRL__MSG_HELLO;
	reply.hello = &hello;
	rc = ios_session_send_ctrl(s, &reply);
	OPENSSL_cleanse(proof, sizeof(proof));
	if (rc < 0)
		return ios_session_reject(s, rc, "cannot answer hello: %s", strerror(-rc));
	if (key) {
		s->auth_pending = true;
		return 0;
	}
	s->state = IOS_SESSION_READY;
	ios_session_lease_ping(s);
	VRIO_INFO("%s: hello (unauthenticated: no key_file for host %s)", s->name,
		  s->srv->hosts[host].name);
	return 0;
}

/* A connection that goes before the host proved its key (its local-hv
 * found our proof wrong: another key) is a failed authentication too. */
void ios_control_closed(struct ios_session *s)
{
	if (!s->auth_pending)
		return;
	vrio_counter_add(&ios_rctx(s->r)->auth_failures[s->host], 1);
	VRIO_WARN_RL("%s: host %s refused: the connection ended before it proved its key (another key?)",
		     s->conn->name, s->srv->hosts[s->host].name);
	s->auth_pending = false;
	OPENSSL_cleanse(s->auth_expect, sizeof(s->auth_expect));
}

/* The host's proof, in answer to our Hello's challenge. */
static int ctrl_auth(struct ios_session *s, const Vrio__Ctrl *m)
{
	const ProtobufCBinaryData *p = &m->auth->proof;
	int host = s->host;

	if (s->state != IOS_SESSION_HELLO || !s->auth_pending)
		return ios_session_garbage(s, "auth without a challenge");
	if (p->len != VRIO_AUTH_PROOF_LEN ||
	    CRYPTO_memcmp(p->data, s->auth_expect, VRIO_AUTH_PROOF_LEN) != 0)
		return auth_refuse(s, host, m->seq, p->len != VRIO_AUTH_PROOF_LEN ?
					   "a proof of the wrong length" :
					   "wrong proof (another key, or a replayed answer)");
	s->auth_pending = false;
	OPENSSL_cleanse(s->auth_expect, sizeof(s->auth_expect));
	s->state = IOS_SESSION_READY;
	ios_session_lease_ping(s);
	VRIO_INFO("%s: hello, authenticated", s->name);
	return 0;
}

static int attach_reply(struct ios_session *s, uint64_t seq, const char *device, int status,
			const char *error, const struct ios_device *d)
{
	Vrio__Ctrl reply = VRIO__CTRL__INIT;
	Vrio__AttachReply ar = VRIO__ATTACH_REPLY__INIT;
	int rc;

	ar.status = status;
	ar.error = (char *)(error ? error : "");
	ar.device = (char *)device;
	if (d) {
		ar.dev_id = d->id;
		ar.queue_size = d->queue_size;
		d->ops->describe(d, &ar);
	}
	reply.seq = seq;
	reply.msg_case = VRIO__CTRL__MSG_ATTACH_REPLY;
	reply.attach_reply = &ar;
	rc = ios_session_send_ctrl(s, &reply);
	if (rc < 0)
		return ios_session_reject(s, rc, "cannot answer attach: %s", strerror(-rc));
	return 0;
}

static int attach_refuse(struct ios_session *s, uint64_t seq, const char *device, int status,
			 const char *err)
{
	VRIO_WARN_RL("%s: attach: %s", s->name, err);
	return attach_reply(s, seq, device, status, err, NULL);
}

/* Not this host's device: counted, one line with the peer's address. */
static int attach_forbidden(struct ios_session *s, uint64_t seq, const char *device,
			    const char *err)
{
	vrio_counter_add(&ios_rctx(s->r)->attach_refused[s->host], 1);
	return attach_refuse(s, seq, device, -EPERM, err);
}

static int ctrl_attach(struct ios_session *s, const Vrio__Ctrl *m)
{
	const char *name = m->attach->device ? m->attach->device : "";
	struct ios_session *expected = NULL;
	char shown[96], err[256];
	struct ios_device *d;
	struct ios_attach *a;

	ios_printable(shown, sizeof(shown), name);
	d = ios_device_find(s->srv, name);
	if (!d || __atomic_load_n(&d->removing, __ATOMIC_SEQ_CST)) {
		snprintf(err, sizeof(err), "no device %s on %s", shown, s->srv->name);
		return attach_refuse(s, m->seq, name, -ENOENT, err);
	}
	if (strcmp(d->host, s->srv->hosts[s->host].name)) {
		snprintf(err, sizeof(err), "%s belongs to host %s, not to %s", d->name, d->host,
			 s->srv->hosts[s->host].name);
		return attach_forbidden(s, m->seq, name, err);
	}
	if (s->att[d->id]) {
		snprintf(err, sizeof(err), "%s is already attached on this connection", d->name);
		return attach_refuse(s, m->seq, name, -EBUSY, err);
	}
	if (!__atomic_compare_exchange_n(&d->owner, &expected, s, false, __ATOMIC_SEQ_CST,
					 __ATOMIC_SEQ_CST)) {
		snprintf(err, sizeof(err), "%s is attached on another connection", d->name);
		return attach_refuse(s, m->seq, name, -EBUSY, err);
	}
	/* A removal that looked before the exchange frees it: give it back
	 * (device.c, ios_devices_reap). */
	if (__atomic_load_n(&d->removing, __ATOMIC_SEQ_CST)) {
		__atomic_store_n(&d->owner, NULL, __ATOMIC_SEQ_CST);
		snprintf(err, sizeof(err), "no device %s on %s", shown, s->srv->name);
		return attach_refuse(s, m->seq, name, -ENOENT, err);
	}
	a = calloc(1, sizeof(*a));
	if (!a) {
		__atomic_store_n(&d->owner, NULL, __ATOMIC_SEQ_CST);
		return attach_reply(s, m->seq, name, -ENOMEM, "out of memory", NULL);
	}
	a->s = s;
	a->dev = d;
	a->attach_seq = m->seq;
	TAILQ_INIT(&a->held);
	TAILQ_INIT(&a->ready);
	s->att[d->id] = a;
	TAILQ_INSERT_TAIL(&s->atts, a, link);
	ios_device_attach(a);
	return 0;
}

/* The device landed on its home reactor (rc 0), or could not. */
void ios_session_attached(struct ios_attach *a, int rc)
{
	struct ios_session *s = a->s;
	struct ios_device *d = a->dev;
	char err[192];

	if (rc == 0) {
		a->state = IOS_ATT_READY;
		if (a->detached) {
			/* Gone while it landed: let it go again. */
			ios_device_release(a);
			return;
		}
		VRIO_INFO("%s: %s attached as dev %u on %s", s->name, d->name, d->id, a->home->name);
		attach_reply(s, a->attach_seq, d->name, 0, NULL, d);
		return;
	}
	__atomic_store_n(&d->front, NULL, __ATOMIC_SEQ_CST);
	__atomic_store_n(&d->owner, NULL, __ATOMIC_SEQ_CST);
	if (!a->detached && s->conn) {
		snprintf(err, sizeof(err), "%s cannot be served: %s", d->name, strerror(-rc));
		attach_refuse(s, a->attach_seq, d->name, rc, err);
	}
	TAILQ_REMOVE(&s->atts, a, link);
	s->att[d->id] = NULL;
	free(a);
}

/* An attachment the peer may name: its AttachReply went out. */
static struct ios_attach *att_answered(struct ios_session *s, uint32_t dev_id)
{
	struct ios_attach *a = ios_session_att(s, dev_id);

	return a && a->state != IOS_ATT_PLACING ? a : NULL;
}

static int ctrl_detach(struct ios_session *s, const Vrio__Ctrl *m)
{
	struct ios_attach *a = att_answered(s, m->detach->dev_id);

	if (!a)
		return ios_session_garbage(s, "detach of device %u, which is not attached here",
					   m->detach->dev_id);
	VRIO_INFO("%s: %s detached%s", s->name, a->dev->name,
		  a->outstanding ? ", waiting for its requests" : "");
	ios_session_detach(a);
	return 0;
}

static int ctrl_device_error(struct ios_session *s, const Vrio__Ctrl *m)
{
	struct ios_attach *a = att_answered(s, m->device_error->dev_id);
	char reason[128];

	if (!a)
		return ios_session_garbage(s, "device error for device %u, which is not attached here",
					   m->device_error->dev_id);
	vrio_counter_add(&a->dev->stats.err_guest, 1);
	VRIO_ERR_RL("%s: %s: the guest broke the device: %s", s->name, a->dev->name,
		    ios_printable(reason, sizeof(reason), m->device_error->reason));
	return 0;
}

static int ctrl_heartbeat(struct ios_session *s, const Vrio__Ctrl *m)
{
	Vrio__Ctrl reply = VRIO__CTRL__INIT;
	Vrio__Heartbeat hb = VRIO__HEARTBEAT__INIT;
	int rc;

	if (m->heartbeat->lease_echo) {
		/* The host renews its lease: no answer (it is one). */
		if (vrio_lease_echo(&s->lease, m->heartbeat->lease_echo, s->r->now) < 0)
			return ios_session_garbage(s, "lease echo %llu for no stamp sent here",
						   (unsigned long long)m->heartbeat->lease_echo);
		return 0;
	}
	hb.seq = m->heartbeat->seq;
	reply.seq = m->seq;
	reply.msg_case = VRIO__CTRL__MSG_HEARTBEAT;
	reply.heartbeat = &hb;
	rc = ios_session_send_ctrl(s, &reply);
	if (rc < 0)
		return ios_session_reject(s, rc, "cannot answer heartbeat: %s", strerror(-rc));
	return 0;
}

/*
 * A vIOMMU invalidation for one of this connection's devices. Every REQ
 * that came before it is already copied into the io-server's own buffers
 * (the transports copy), so nothing queued here refers to guest memory:
 * the acknowledgement can go at once, in order behind what is queued.
 */
static int ctrl_iotlb_invalidate(struct ios_session *s, const Vrio__Ctrl *m)
{
	const Vrio__IotlbInvalidate *inv = m->iotlb_invalidate;
	struct ios_attach *a = att_answered(s, inv->dev_id);
	Vrio__Ctrl reply = VRIO__CTRL__INIT;
	Vrio__IotlbAck ack = VRIO__IOTLB_ACK__INIT;
	int rc;

	if (!a)
		return ios_session_garbage(s, "IOTLB invalidation for device %u, which is not attached here",
					   inv->dev_id);
	if (inv->size == 0 || inv->iova + inv->size - 1 < inv->iova)
		return ios_session_garbage(s, "%s: IOTLB invalidation of %#llx+%#llx", a->dev->name,
					   (unsigned long long)inv->iova,
					   (unsigned long long)inv->size);
	vrio_counter_add(&a->dev->stats.invalidations, 1);
	ack.dev_id = inv->dev_id;
	reply.seq = m->seq;
	reply.msg_case = VRIO__CTRL__MSG_IOTLB_ACK;
	reply.iotlb_ack = &ack;
	rc = ios_session_send_ctrl(s, &reply);
	if (rc < 0)
		return ios_session_reject(s, rc, "cannot acknowledge an invalidation: %s",
					  strerror(-rc));
	return 0;
}

static int ctrl_error(struct ios_session *s, const Vrio__Ctrl *m)
{
	char msg[160];

	return ios_session_reject(s, -ECONNABORTED, "the peer reports error %d: %s",
				  m->error->status,
				  ios_printable(msg, sizeof(msg), m->error->message));
}

static const struct ios_ctrl_handler {
	Vrio__Ctrl__MsgCase msg;
	int (*fn)(struct ios_session *s, const Vrio__Ctrl *m);
	bool needs_hello;
} ctrl_handlers[] = {
	{ VRIO__CTRL__MSG_HELLO, ctrl_hello, false },
	{ VRIO__CTRL__MSG_AUTH, ctrl_auth, false },
	{ VRIO__CTRL__MSG_ATTACH, ctrl_attach, true },
	{ VRIO__CTRL__MSG_DETACH, ctrl_detach, true },
	{ VRIO__CTRL__MSG_DEVICE_ERROR, ctrl_device_error, true },
	{ VRIO__CTRL__MSG_HEARTBEAT, ctrl_heartbeat, true },
	{ VRIO__CTRL__MSG_IOTLB_INVALIDATE, ctrl_iotlb_invalidate, true },
	{ VRIO__CTRL__MSG_ERROR, ctrl_error, false },
};

int ios_control_frame(struct ios_session *s, const struct vrio_frame *f, const void *payload)
{
	const struct ios_ctrl_handler *h = NULL;
	Vrio__Ctrl *m;
	size_t i;
	int rc;

	m = vrio_ctrl_unpack(payload, f->len);
	if (!m)
		return ios_session_garbage(s, "undecodable control message of %u bytes", f->len);
	for (i = 0; i < sizeof(ctrl_handlers) / sizeof(ctrl_handlers[0]); i++)
		if (ctrl_handlers[i].msg == m->msg_case)
			h = &ctrl_handlers[i];
	if (!h)
		rc = ios_session_garbage(s, "unexpected %s message", vrio_ctrl_name(m));
	else if (h->needs_hello && s->state != IOS_SESSION_READY)
		rc = ios_session_garbage(s, "%s before hello", vrio_ctrl_name(m));
	else
		rc = h->fn(s, m);
	vrio_ctrl_free(m);
	return rc;
}

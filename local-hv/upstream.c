/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Connections to io-servers. One per io-server this host's devices use,
 * owned by the poller. DOWN -> connect, Hello, one Attach per device ->
 * READY. Each device is attached on its own: its AttachReply attaches it
 * and sends again what it had in flight before a disconnect; a refusal
 * (the io-server does not know it yet: the two daemons reload one after
 * the other) leaves it waiting and asks again later, and disturbs no other
 * device. Devices join (Attach) and leave (Detach) a live connection with
 * reloads. Anything malformed from the peer closes the connection and
 * nothing else.
 *
 * Liveness (heartbeat.h): a Heartbeat goes up when nothing else did for
 * the io-server's interval, and a connection on which nothing arrived for
 * its dead_after is closed as dead: the io-server is hung, not gone, so
 * only the silence tells. Then, as after any close, the devices wait and
 * their requests in flight are sent again once a new connection attaches
 * them.
 *
 * Leases (lease.h): the io-server's Heartbeats with a lease stamp are
 * echoed at once while the connection is trusted; each raises the bound
 * after which the io-server surely executes nothing of ours, which the
 * failover (failover.c) waits for before a device goes elsewhere.
 *
 * Connects run on a thread of the upstream's own, so that a peer that does
 * not answer one stalls nothing else on the poller (the other upstream the
 * devices fail over to, above all).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "auth.h"
#include "ctrl.h"
#include "keyfile.h"
#include "localhv.h"
#include "log.h"
#include "tls.h"

#define RETRY_MIN_NS	(200ull * 1000 * 1000)
#define RETRY_MAX_NS	(2000ull * 1000 * 1000)
#define ATTACH_RETRY_MIN_NS	(20ull * 1000 * 1000)
#define ATTACH_RETRY_MAX_NS	(2000ull * 1000 * 1000)

static const char *up_name(const struct lhv_upstream *up)
{
	return up->name;
}

/* The clock after a call that may block (connect), for timers. */
static uint64_t up_clock(const struct lhv_upstream *up)
{
	return up->l->clock ? up->l->clock() : vrio_now_ns();
}

/* why: the one line logged for a connection that was up (NULL: err's text);
 * quiet: at info level, not as a warning. */
static void up_down_why(struct lhv_upstream *up, int err, const char *why, bool quiet)
{
	unsigned i, inflight = 0;
	uint64_t backoff;
	int peer;

	for (i = 0; i < up->ndevs; i++)
		inflight += up->devs[i]->inflight;
	/* A hang stays the verdict until the io-server answers again. */
	peer = __atomic_load_n(&up->peer, __ATOMIC_RELAXED);
	if (peer != LHV_PEER_DEAD)
		__atomic_store_n(&up->peer, LHV_PEER_LOST, __ATOMIC_RELAXED);
	/* Sessions of closed connections hold a lease until this at most. */
	up->lease_prev_until = vrio_lease_hold_until(&up->lease);
	if (up->conn) {
		vrio_conn_stats_publish(&up->cpub, &up->clast, up->conn);
		vrio_conn_stats_retire(&up->cpub);
		memset(&up->clast, 0, sizeof(up->clast));
		lhv_epoll_mod(up->l, vrio_conn_fd(up->conn), NULL, false);
		up->conn->ops->close(up->conn);
		up->conn = NULL;
		vrio_counter_add(&up->st.disconnects, 1);
		vrio_log(quiet ? VRIO_LOG_INFO : VRIO_LOG_WARN,
			 "%s: connection lost: %s; %u request(s) in flight wait for the reconnect",
			 up_name(up), why ? why : strerror(-err), inflight);
	}
	for (i = 0; i < up->ndevs; i++) {
		up->devs[i]->attached = false;
		__atomic_store_n(&up->devs[i]->att_state, LHV_ATT_NONE, __ATOMIC_RELEASE);
		if (up->devs[i]->iommu.on)
			lhv_iommu_upstream_lost(up->devs[i]);
	}
	__atomic_store_n(&up->state, LHV_UP_DOWN, __ATOMIC_RELEASE);
	backoff = RETRY_MIN_NS << (up->failures < 4 ? up->failures : 4);
	up->retry_at = up_clock(up) + (backoff < RETRY_MAX_NS ? backoff : RETRY_MAX_NS);
}

static void up_down(struct lhv_upstream *up, int err)
{
	up_down_why(up, err, NULL, false);
}

/*
 * Nothing arrived for dead_after: the io-server is hung (or the path to
 * it). A hung server's kernel keeps accepting the reconnects, each of
 * which ends the same way: the first verdict is a warning, the next ones
 * until it answers are logged at info level but for every tenth.
 */
static void up_dead(struct lhv_upstream *up, uint64_t now)
{
	bool quiet = up->dead_streak++ % 10 != 0;
	char why[384];

	snprintf(why, sizeof(why), "io-server %s (%s) sent nothing for %llu ms: declared dead",
		 up_name(up), up->listen, (unsigned long long)vrio_hb_silent_ms(&up->hb, now));
	vrio_counter_add(&up->st.heartbeat_timeouts, 1);
	__atomic_store_n(&up->peer, LHV_PEER_DEAD, __ATOMIC_RELAXED);
	up_down_why(up, -ETIMEDOUT, why, quiet);
}

static int send_ctrl(struct lhv_upstream *up, Vrio__Ctrl *m)
{
	m->seq = ++up->seq;
	return vrio_conn_send_ctrl(up->conn, m);
}

int lhv_up_send(struct lhv_upstream *up, const struct vrio_frame *f, const struct iovec *iov,
		int iovcnt)
{
	struct vrio_conn *c = up->conn;
	int rc = c->ops->send(c, f, iov, iovcnt);

	if (rc == -ENOBUFS) {
		/* The peer is behind: push what we have, try once more. */
		c->ops->flush(c);
		rc = c->ops->send(c, f, iov, iovcnt);
	}
	return rc;
}

int lhv_up_send_invalidate(struct lhv_dev *d, uint64_t iova, uint64_t size, uint64_t *seq)
{
	struct lhv_upstream *up = d->up;
	Vrio__Ctrl m = VRIO__CTRL__INIT;
	Vrio__IotlbInvalidate inv = VRIO__IOTLB_INVALIDATE__INIT;
	int rc;

	if (!up->conn || !d->attached ||
	    __atomic_load_n(&up->state, __ATOMIC_RELAXED) != LHV_UP_READY)
		return -ENOTCONN;
	inv.dev_id = d->dev_id;
	inv.iova = iova;
	inv.size = size;
	m.msg_case = VRIO__CTRL__MSG_IOTLB_INVALIDATE;
	m.iotlb_invalidate = &inv;
	rc = send_ctrl(up, &m);
	if (rc < 0)
		return rc;	/* -ENOBUFS: tried again next round */
	*seq = m.seq;
	return 0;
}

/* Best effort: a full send queue means the peer is not reading, which
 * its own silence will tell. */
static void send_heartbeat(struct lhv_upstream *up)
{
	Vrio__Ctrl m = VRIO__CTRL__INIT;
	Vrio__Heartbeat hb = VRIO__HEARTBEAT__INIT;

	vrio_counter_add(&up->st.heartbeats, 1);
	hb.seq = up->st.heartbeats;
	m.msg_case = VRIO__CTRL__MSG_HEARTBEAT;
	m.heartbeat = &hb;
	send_ctrl(up, &m);
}

static int send_detach(struct lhv_upstream *up, uint32_t dev_id)
{
	Vrio__Ctrl m = VRIO__CTRL__INIT;
	Vrio__Detach det = VRIO__DETACH__INIT;

	det.dev_id = dev_id;
	m.msg_case = VRIO__CTRL__MSG_DETACH;
	m.detach = &det;
	return send_ctrl(up, &m);
}

static int send_attach(struct lhv_upstream *up, struct lhv_dev *d)
{
	Vrio__Ctrl m = VRIO__CTRL__INIT;
	Vrio__Attach att = VRIO__ATTACH__INIT;
	int rc;

	att.device = d->name;
	m.msg_case = VRIO__CTRL__MSG_ATTACH;
	m.attach = &att;
	rc = send_ctrl(up, &m);
	if (rc == 0)
		__atomic_store_n(&d->att_state, LHV_ATT_SENT, __ATOMIC_RELEASE);
	return rc;
}

/* Our Hello. Without a key our Attach messages follow it at once; with
 * one they wait for the io-server's proof (hello_auth). */
static int up_start(struct lhv_upstream *up)
{
	Vrio__Ctrl m = VRIO__CTRL__INIT;
	Vrio__Hello hello = VRIO__HELLO__INIT;
	unsigned i;
	int rc;

	up->authed = !up->l->key;
	hello.version = VRIO_PROTO_VERSION;
	hello.node = up->l->node;
	hello.leases = true;
	if (up->l->key) {
		rc = vrio_auth_nonce(up->nonce);
		if (rc < 0)
			return rc;
		hello.nonce.data = up->nonce;
		hello.nonce.len = VRIO_AUTH_NONCE_LEN;
	}
	m.msg_case = VRIO__CTRL__MSG_HELLO;
	m.hello = &hello;
	rc = send_ctrl(up, &m);
	for (i = 0; rc == 0 && up->authed && i < up->ndevs; i++)
		rc = send_attach(up, up->devs[i]);
	if (rc == 0)
		rc = up->conn->ops->flush(up->conn) < 0 ? -EPIPE : 0;
	return rc;
}

/*
 * The io-server's Hello, with a key: it must carry the io-server's proof
 * over our nonce and its own (proto/auth.h); then our proof goes, and
 * behind it the Attach messages. -EACCES if it cannot prove the key.
 */
static int hello_auth(struct lhv_upstream *up, const Vrio__Hello *h)
{
	const struct vrio_key *key = up->l->key;
	struct vrio_auth_ctx c = {
		.host = up->l->node,
		.ioserver = up->name,
		.host_nonce = up->nonce,
		.ios_nonce = h->nonce.data,
	};
	Vrio__Ctrl m = VRIO__CTRL__INIT;
	Vrio__Auth auth = VRIO__AUTH__INIT;
	uint8_t proof[VRIO_AUTH_PROOF_LEN], binding[VRIO_TLS_BINDING_LEN];
	unsigned i;
	int rc;

	if (!key)
		return 0;
	rc = vrio_tls_binding(up->conn, binding);
	if (rc == 0)
		c.binding = binding;
	else if (rc != -ENOENT)
		return rc;
	if (up->authed) {
		VRIO_ERR("%s: second hello from the io-server", up_name(up));
		return -EBADMSG;
	}
	c.key = key->bytes;
	c.key_len = key->len;
	if (h->nonce.len != VRIO_AUTH_NONCE_LEN || !h->proof.len) {
		vrio_counter_add(&up->st.auth_failures, 1);
		snprintf(up->auth_why, sizeof(up->auth_why),
			 "io-server %s (%s) did not prove this host's key (it has no key_file for %s?)",
			 up_name(up), up->listen, up->l->node);
		return -EACCES;
	}
	rc = vrio_auth_check(&c, VRIO_AUTH_IOSERVER, h->proof.data, h->proof.len);
	if (rc < 0) {
		vrio_counter_add(&up->st.auth_failures, 1);
		snprintf(up->auth_why, sizeof(up->auth_why),
			 "io-server %s (%s) answered with a wrong proof: another key for %s",
			 up_name(up), up->listen, up->l->node);
		return -EACCES;
	}
	rc = vrio_auth_proof(&c, VRIO_AUTH_HOST, proof);
	if (rc < 0)
		return rc;
	auth.proof.data = proof;
	auth.proof.len = sizeof(proof);
	m.msg_case = VRIO__CTRL__MSG_AUTH;
	m.auth = &auth;
	rc = send_ctrl(up, &m);
	OPENSSL_cleanse(proof, sizeof(proof));
	up->authed = true;
	for (i = 0; rc == 0 && i < up->ndevs; i++)
		rc = send_attach(up, up->devs[i]);
	if (rc == 0)
		rc = up->conn->ops->flush(up->conn) < 0 ? -EPIPE : 0;
	return rc;
}

static int connect_done(struct lhv_upstream *up, struct vrio_conn *c, int rc)
{
	up->conn = rc < 0 ? NULL : c;
	if (rc < 0) {
		/* After a clean stop a refusal is expected, for a while. */
		if (up->failures++ % 10 == 0)
			vrio_log(up->said_goodbye && up->failures == 1 ? VRIO_LOG_INFO :
				 VRIO_LOG_WARN, "%s: cannot connect to %s: %s; retrying",
				 up_name(up), up->listen, strerror(-rc));
		up_down(up, rc);
		return rc;
	}
	up->conn->owner = up;
	up->conn_resps = 0;
	vrio_hb_start(&up->hb, up->conn, up_clock(up));
	vrio_counter_add(&up->st.connects, 1);
	lhv_epoll_mod(up->l, vrio_conn_fd(up->conn), up, true);
	rc = up_start(up);
	if (rc < 0) {
		up_down(up, rc);
		return rc;
	}
	__atomic_store_n(&up->state, LHV_UP_READY, __ATOMIC_RELEASE);
	up->failures = 0;
	up->said_goodbye = false;
	vrio_log(up->dead_streak ? VRIO_LOG_INFO : VRIO_LOG_NOTICE, "%s: connected to %s",
		 up_name(up), up->listen);
	return 0;
}

static void *connector_main(void *arg)
{
	struct lhv_upstream *up = arg;
	struct vrio_conn *c = NULL;
	int rc;

	pthread_mutex_lock(&up->conn_lock);
	for (;;) {
		while (!up->conn_quit &&
		       __atomic_load_n(&up->conn_step, __ATOMIC_ACQUIRE) != LHV_CONN_ASKED)
			pthread_cond_wait(&up->conn_cond, &up->conn_lock);
		if (up->conn_quit)
			break;
		pthread_mutex_unlock(&up->conn_lock);
		rc = vrio_stack_connect(&up->stack, up->listen, -1, &c);
		pthread_mutex_lock(&up->conn_lock);
		up->conn_new = rc < 0 ? NULL : c;
		up->conn_rc = rc;
		__atomic_store_n(&up->conn_step, LHV_CONN_DONE, __ATOMIC_RELEASE);
		lhv_poller_wake(up->l);
	}
	pthread_mutex_unlock(&up->conn_lock);
	return NULL;
}

/* Poller: 1 once a connection is up, 0 while waiting, or -errno. */
static int try_connect(struct lhv_upstream *up)
{
	struct vrio_conn *c = NULL;
	int rc;

	if (up->l->connect_inline) {
		rc = vrio_stack_connect(&up->stack, up->listen, -1, &c);
		return connect_done(up, c, rc) == 0 ? 1 : -1;
	}
	switch (__atomic_load_n(&up->conn_step, __ATOMIC_ACQUIRE)) {
	case LHV_CONN_ASKED:
		return 0;
	case LHV_CONN_DONE:
		pthread_mutex_lock(&up->conn_lock);
		c = up->conn_new;
		rc = up->conn_rc;
		up->conn_new = NULL;
		__atomic_store_n(&up->conn_step, LHV_CONN_IDLE, __ATOMIC_RELEASE);
		pthread_mutex_unlock(&up->conn_lock);
		return connect_done(up, c, rc) == 0 ? 1 : -1;
	default:
		break;
	}
	if (!up->connector_started) {
		rc = pthread_create(&up->connector, NULL, connector_main, up);
		if (rc) {
			VRIO_ERR("%s: cannot start the connect thread: %s", up_name(up),
				 strerror(rc));
			up_down(up, -rc);
			return -1;
		}
		up->connector_started = true;
	}
	pthread_mutex_lock(&up->conn_lock);
	__atomic_store_n(&up->conn_step, LHV_CONN_ASKED, __ATOMIC_RELEASE);
	pthread_cond_signal(&up->conn_cond);
	pthread_mutex_unlock(&up->conn_lock);
	return 0;
}

static struct lhv_dev *dev_by_name(struct lhv_upstream *up, const char *name)
{
	unsigned i;

	for (i = 0; i < up->ndevs; i++)
		if (strcmp(up->devs[i]->name, name) == 0)
			return up->devs[i];
	return NULL;
}

static struct lhv_dev *dev_by_id(struct lhv_upstream *up, uint32_t id)
{
	unsigned i;

	for (i = 0; i < up->ndevs; i++)
		if (up->devs[i]->attached && up->devs[i]->dev_id == id)
			return up->devs[i];
	return NULL;
}

/*
 * The first reply describes the device for good: the vhost-user socket
 * offers those features and config. A later reply (after a reconnect) must
 * describe the same device, or the guest would see it change under it.
 */
/* A refusal concerns this device alone: it waits, and asks again. */
static void attach_refused(struct lhv_upstream *up, struct lhv_dev *d, const Vrio__AttachReply *r)
{
	uint64_t backoff = ATTACH_RETRY_MIN_NS << (d->att_failures < 5 ? d->att_failures : 5);

	if (d->att_failures++ % 20 == 0)
		VRIO_WARN("%s: io-server %s refused the device: %s; asking again", d->name,
			  up_name(up), r->error && r->error[0] ? r->error : strerror(-r->status));
	d->att_retry_at = up_clock(up) + (backoff < ATTACH_RETRY_MAX_NS ? backoff :
					   ATTACH_RETRY_MAX_NS);
	__atomic_store_n(&d->att_state, LHV_ATT_REFUSED, __ATOMIC_RELEASE);
	if (!__atomic_exchange_n(&d->answered, true, __ATOMIC_ACQ_REL))
		lhv_main_wake(up->l);
}

/*
 * The first reply describes the device for good: the vhost-user socket
 * offers those features and config. A later reply (after a reconnect) must
 * describe the same device, or the guest would see it change under it.
 */
static int on_attach_reply(struct lhv_upstream *up, const Vrio__AttachReply *r)
{
	struct lhv_dev *d = r->device ? dev_by_name(up, r->device) : NULL;
	int rc, st;

	if (!d || __atomic_load_n(&d->att_state, __ATOMIC_ACQUIRE) != LHV_ATT_SENT) {
		/* A reload removed it while its Attach was on the way: let
		 * the io-server have it back. Anything else is garbage. */
		if (!d && r->device)
			return r->status == 0 ? send_detach(up, r->dev_id) : 0;
		VRIO_ERR("%s: attach reply for unknown or attached device '%s'", up_name(up),
			 r->device ? r->device : "");
		return -EBADMSG;
	}
	if (r->status < 0) {
		attach_refused(up, d, r);
		return 0;
	}
	if (r->type != (d->type == VRIO_DEV_NET ? VRIO__DEVICE_TYPE__DEVICE_TYPE_NET
						: VRIO__DEVICE_TYPE__DEVICE_TYPE_BLK) ||
	    r->config.len > LHV_CONFIG_MAX ||
	    r->num_queues == 0 || r->num_queues > LHV_MAX_QUEUES || r->max_request == 0 ||
	    r->max_request > VRIO_FRAME_MAX_PAYLOAD || (r->features >> 24)) {
		VRIO_ERR("%s: io-server %s described the device in a way we cannot serve",
			 d->name, up_name(up));
		return -EBADMSG;
	}
	if (!d->described) {
		d->dev_features = r->features;
		memcpy(d->config, r->config.data, r->config.len);
		d->config_len = (uint32_t)r->config.len;
		d->num_queues = r->num_queues;
		d->max_request = r->max_request;
		d->ops = r->type == VRIO__DEVICE_TYPE__DEVICE_TYPE_NET ? &lhv_net_ops : &lhv_rr_ops;
		__atomic_store_n(&d->described, true, __ATOMIC_RELEASE);
	} else if (d->dev_features != r->features || d->num_queues != r->num_queues ||
		   d->config_len != r->config.len ||
		   memcmp(d->config, r->config.data, r->config.len) != 0) {
		VRIO_ERR("%s: io-server %s now describes a different device", d->name,
			 up_name(up));
		return -EBADMSG;
	}
	d->dev_id = r->dev_id;
	d->attached = true;
	d->att_failures = 0;
	__atomic_store_n(&d->att_state, LHV_ATT_DONE, __ATOMIC_RELEASE);
	__atomic_store_n(&d->answered, true, __ATOMIC_RELEASE);
	if (!d->registered_once) {
		/* The main thread opens its socket now. */
		d->registered_once = true;
		lhv_main_wake(up->l);
	}
	st = __atomic_load_n(&d->state, __ATOMIC_ACQUIRE);
	if ((st == LHV_DEV_RUNNING || st == LHV_DEV_STOP) && d->ops->resend) {
		rc = d->ops->resend(up->l, d);
		if (rc < 0)
			return rc;
		vrio_counter_add(&up->st.resent, (uint64_t)rc);
		if (rc)
			VRIO_NOTICE("%s: attached at %s; %d request(s) in flight sent again",
				    d->name, up_name(up), rc);
	}
	VRIO_INFO("%s: attached at %s as dev %u", d->name, up_name(up), d->dev_id);
	return 0;
}

/*
 * The io-server stops cleanly: it took no request after the stop began and
 * answered every one it took, `requests_taken` on this connection, before
 * this goodbye; the connection is ordered, so every answer is here by now.
 * Our requests still in flight were never taken: they wait for the
 * reconnect, like after any close. An io-server that says it answered more
 * than we received broke its promise: counted and warned about.
 */
static void on_goodbye(struct lhv_upstream *up, const Vrio__Error *e)
{
	unsigned i, inflight = 0;

	for (i = 0; i < up->ndevs; i++)
		inflight += up->devs[i]->inflight;
	vrio_counter_add(&up->st.goodbyes, 1);
	up->said_goodbye = true;
	if (e->requests_taken == 0 && up->conn_resps) {
		/* Answers came, so it took some: an io-server that does not
		 * count them (older than the count). */
		VRIO_NOTICE("%s: io-server %s is stopping (it does not say what it took); "
			    "%u request(s) in flight wait for the reconnect", up_name(up),
			    up->listen, inflight);
		return;
	}
	if (e->requests_taken > up->conn_resps) {
		vrio_counter_add(&up->st.goodbye_unanswered, e->requests_taken - up->conn_resps);
		VRIO_WARN("%s: io-server %s is stopping, but answered only %llu of the %llu "
			  "request(s) it took; %u in flight are sent again after the reconnect",
			  up_name(up), up->listen, (unsigned long long)up->conn_resps,
			  (unsigned long long)e->requests_taken, inflight);
		return;
	}
	VRIO_NOTICE("%s: io-server %s is stopping: it answered all %llu request(s) it took; "
		    "%u it did not take wait for the reconnect", up_name(up), up->listen,
		    (unsigned long long)e->requests_taken, inflight);
}

/*
 * The io-server renews its lease: the bound moves to now (read after the
 * frame was read, so no earlier than its send) + L + margin, and the echo
 * goes at once. Only a live connection gets here: a dead one is closed,
 * so nothing is echoed after the verdict.
 */
static int on_lease_ping(struct lhv_upstream *up, const Vrio__Heartbeat *ping)
{
	Vrio__Ctrl m = VRIO__CTRL__INIT;
	Vrio__Heartbeat hb = VRIO__HEARTBEAT__INIT;

	if (vrio_lease_hold_ping(&up->lease, ping->lease_ms, up_clock(up)) < 0) {
		VRIO_ERR("%s: lease of %u ms offered: out of range", up_name(up), ping->lease_ms);
		return -EBADMSG;
	}
	__atomic_store_n(&up->lease_until_pub, vrio_lease_hold_until(&up->lease),
			 __ATOMIC_RELAXED);
	hb.lease_echo = ping->lease_stamp;
	m.msg_case = VRIO__CTRL__MSG_HEARTBEAT;
	m.heartbeat = &hb;
	/* A full queue: the peer is not reading; the lease lapses there. */
	send_ctrl(up, &m);
	return 0;
}

static int on_ctrl(struct lhv_upstream *up, const void *payload, uint32_t len)
{
	Vrio__Ctrl *m = vrio_ctrl_unpack(payload, len);
	int rc = 0;

	if (!m) {
		VRIO_ERR("%s: malformed control message", up_name(up));
		return -EBADMSG;
	}
	switch (m->msg_case) {
	case VRIO__CTRL__MSG_HELLO:
		if (m->hello->version != VRIO_PROTO_VERSION) {
			VRIO_ERR("%s: io-server speaks protocol %u, we speak %u", up_name(up),
				 m->hello->version, VRIO_PROTO_VERSION);
			rc = -EPROTONOSUPPORT;
			break;
		}
		rc = hello_auth(up, m->hello);
		if (rc < 0)
			break;
		if (__atomic_exchange_n(&up->peer, LHV_PEER_UP, __ATOMIC_RELAXED) == LHV_PEER_DEAD)
			VRIO_NOTICE("%s: io-server answers again (%u connection(s) declared dead)",
				    up_name(up), up->dead_streak);
		up->dead_streak = 0;
		break;
	case VRIO__CTRL__MSG_ATTACH_REPLY:
		/* An answer to an Attach: the io-server took our proof. */
		if (up->auth_streak)
			VRIO_NOTICE("%s: authenticated again after %u refused connection(s)",
				    up_name(up), up->auth_streak);
		up->auth_streak = 0;
		rc = on_attach_reply(up, m->attach_reply);
		break;
	case VRIO__CTRL__MSG_HEARTBEAT:
		if (m->heartbeat->lease_stamp)
			rc = on_lease_ping(up, m->heartbeat);
		break;
	case VRIO__CTRL__MSG_IOTLB_ACK: {
		struct lhv_dev *d = dev_by_id(up, m->iotlb_ack->dev_id);

		if (!d || !d->iommu.on || lhv_iommu_acked(d, m->seq) < 0) {
			VRIO_ERR("%s: IOTLB acknowledgement (seq %llu) for nothing asked", up_name(up),
				 (unsigned long long)m->seq);
			rc = -EBADMSG;
		}
		break;
	}
	case VRIO__CTRL__MSG_ERROR:
		if (m->error->status == -ESHUTDOWN) {
			on_goodbye(up, m->error);
			rc = -ESHUTDOWN;
			break;
		}
		if (m->error->status == -EACCES) {
			/* Refused: logged by lhv_up_poll, once per streak. */
			vrio_counter_add(&up->st.auth_failures, 1);
			snprintf(up->auth_why, sizeof(up->auth_why),
				 "io-server %s (%s) refused this host's proof: %s", up_name(up),
				 up->listen, m->error->message ? m->error->message : "");
			rc = -EACCES;
			break;
		}
		VRIO_ERR("%s: io-server error: %s", up_name(up),
			 m->error->message ? m->error->message : "");
		rc = m->error->status < 0 ? m->error->status : -EPROTO;
		break;
	default:
		VRIO_ERR("%s: unexpected control message %s", up_name(up), vrio_ctrl_name(m));
		rc = -EBADMSG;
	}
	vrio_ctrl_free(m);
	return rc;
}

static int on_frame(void *arg, struct vrio_conn *c, const struct vrio_frame *f,
		    const void *payload)
{
	struct lhv_upstream *up = arg;
	struct lhv_dev *d;
	int rc;

	switch (f->type) {
	case VRIO_FRAME_CTRL:
		return on_ctrl(up, payload, f->len);
	case VRIO_FRAME_RESP:
	case VRIO_FRAME_PKT:
		d = dev_by_id(up, f->dev);
		if (!d || d->ops->frame_type != f->type) {
			VRIO_ERR("%s: %s frame for device id %u, which is no %s device here",
				 up_name(up), vrio_frame_type_name(f->type), f->dev,
				 f->type == VRIO_FRAME_PKT ? "net" : "request/response");
			return -EBADMSG;
		}
		up->conn_resps += f->type == VRIO_FRAME_RESP;
		rc = d->ops->frame(up->l, d, f, payload);
		if (rc < 0)
			VRIO_ERR("%s: %s: malformed %s frame (queue %u id %#x len %u)", up_name(up),
				 d->name, vrio_frame_type_name(f->type), f->queue, f->id, f->len);
		return rc;
	default:
		VRIO_ERR("%s: unexpected %s frame", up_name(up), vrio_frame_type_name(f->type));
		return -EBADMSG;
	}
}

/* The devices whose work this poll completed publish it, and the
 * complete hop of each: from the poll's clock to now, one read for all of
 * them (a response waited for the ones before it in the batch as well). */
static void poll_done(struct lhv *l, uint64_t now)
{
	uint64_t end, hop;
	struct lhv_dev *d;
	unsigned i;

	if (!l->ncompleted)
		return;
	for (i = 0; i < l->ncompleted; i++) {
		d = l->completed[i];
		if (d->ops->frames_done)
			d->ops->frames_done(d);
	}
	end = vrio_now_ns();
	hop = end > now ? end - now : 0;
	for (i = 0; i < l->ncompleted; i++) {
		d = l->completed[i];
		vrio_hist_add_n(&d->st.hop[LHV_HOP_COMPLETE], hop, d->completed);
		d->completed = 0;
	}
	l->ncompleted = 0;
}

int lhv_up_poll(struct lhv_upstream *up, uint64_t now)
{
	int rc;

	if (!up->conn) {
		if (now < up->retry_at &&
		    __atomic_load_n(&up->conn_step, __ATOMIC_ACQUIRE) == LHV_CONN_IDLE)
			return 0;
		return try_connect(up) > 0 ? 1 : 0;
	}
	up->l->round_ns = now;
	rc = up->conn->ops->poll(up->conn, on_frame, up, LHV_BUDGET);
	poll_done(up->l, now);
	if (rc == -ESHUTDOWN) {
		/* A goodbye: closing at once lets the io-server go. */
		up_down_why(up, rc, "the io-server stopped", true);
		return 1;
	}
	if (rc == -EACCES) {
		/* Every retry ends the same way until a key changes: the
		 * first refusal is an error, then every tenth. */
		if (up->auth_streak++ % 10 == 0)
			VRIO_ERR("%s: authentication failed: %s", up_name(up), up->auth_why);
		up->failures++;
		up_down_why(up, rc, up->auth_why, true);
		return 1;
	}
	if (rc < 0) {
		if (rc != -ECONNRESET)
			vrio_counter_add(&up->st.protocol_errors, 1);
		up_down(up, rc);
		return 1;
	}
	switch (vrio_hb_check(&up->hb, up->conn, now)) {
	case VRIO_HB_DEAD:
		up_dead(up, now);
		return 1;
	case VRIO_HB_SEND:
		/* Not before our proof: the io-server takes nothing else. */
		if (up->authed)
			send_heartbeat(up);
		break;
	default:
		break;
	}
	for (unsigned i = 0; i < up->ndevs; i++) {
		struct lhv_dev *d = up->devs[i];

		if (d->att_state == LHV_ATT_REFUSED && now >= d->att_retry_at &&
		    send_attach(up, d) == 0)
			rc++;
	}
	return rc;
}

void lhv_up_link(struct lhv_upstream *up, struct lhv_dev *d)
{
	if (d->linked || up->ndevs >= LHV_MAX_DEVICES)
		return;
	up->devs[up->ndevs++] = d;
	d->linked = true;
	__atomic_store_n(&d->att_state, LHV_ATT_NONE, __ATOMIC_RELEASE);
	if (up->conn && up->authed && send_attach(up, d) < 0)
		up_down(up, -EPIPE);
}

void lhv_up_unlink(struct lhv_upstream *up, struct lhv_dev *d)
{
	unsigned i;

	if (!d->linked)
		return;
	if (up->conn && d->attached &&
	    (send_detach(up, d->dev_id) < 0 || up->conn->ops->flush(up->conn) < 0))
		up_down(up, -EPIPE);
	d->attached = false;
	__atomic_store_n(&d->att_state, LHV_ATT_DETACHED, __ATOMIC_RELEASE);
	for (i = 0; i < up->ndevs && up->devs[i] != d; i++)
		;
	if (i < up->ndevs)
		memmove(&up->devs[i], &up->devs[i + 1], (up->ndevs - i - 1) * sizeof(up->devs[0]));
	up->ndevs -= i < up->ndevs;
	d->linked = false;
}

/* How stale the published connection counters may be while frames stand
 * still (a layer below may still count: retransmits). */
#define PUBLISH_EVERY_NS	(1000ull * 1000)

void lhv_up_flush(struct lhv_upstream *up, uint64_t now)
{
	const struct vrio_conn_stats *st;
	int rc;

	if (!up->conn)
		return;
	rc = up->conn->ops->flush(up->conn);
	if (rc < 0) {
		up_down(up, rc);
		return;
	}
	/* Not every round: an idle one moved nothing. */
	st = &up->conn->stats;
	if (st->frames_tx == up->clast.frames_tx && st->frames_rx == up->clast.frames_rx &&
	    now - up->published_ns < PUBLISH_EVERY_NS)
		return;
	vrio_conn_stats_publish(&up->cpub, &up->clast, up->conn);
	up->published_ns = now;
}

bool lhv_ups_sleep_prepare(struct lhv *l)
{
	unsigned u, n = __atomic_load_n(&l->nups, __ATOMIC_ACQUIRE);

	for (u = 0; u < n; u++)
		if (l->ups[u]->conn && vrio_conn_sleep_prepare(l->ups[u]->conn) != 0)
			return true;
	return false;
}

int lhv_up_timeout_ms(const struct lhv_upstream *up, uint64_t now)
{
	int t = -1, td;

	if (!up->conn) {
		/* Connecting: the connector thread wakes the poller. */
		if (__atomic_load_n(&up->conn_step, __ATOMIC_ACQUIRE) != LHV_CONN_IDLE)
			return __atomic_load_n(&up->conn_step, __ATOMIC_ACQUIRE) ==
				       LHV_CONN_DONE ? 0 : -1;
		return up->retry_at <= now ? 0 : (int)((up->retry_at - now) / 1000000 + 1);
	}
	for (unsigned i = 0; i < up->ndevs; i++) {
		if (up->devs[i]->att_state != LHV_ATT_REFUSED)
			continue;
		td = up->devs[i]->att_retry_at <= now ? 0 :
			(int)((up->devs[i]->att_retry_at - now) / 1000000 + 1);
		if (t < 0 || td < t)
			t = td;
	}
	td = vrio_hb_timeout_ms(&up->hb, now);
	if (t < 0 || td < t)
		t = td;
	td = vrio_conn_timeout_ms(up->conn);
	return td >= 0 && td < t ? td : t;
}

void lhv_up_close(struct lhv_upstream *up)
{
	if (up->connector_started) {
		/* A connect under way ends within the transport's timeout. */
		pthread_mutex_lock(&up->conn_lock);
		up->conn_quit = true;
		pthread_cond_signal(&up->conn_cond);
		pthread_mutex_unlock(&up->conn_lock);
		pthread_join(up->connector, NULL);
		up->connector_started = false;
		if (up->conn_new)
			up->conn_new->ops->close(up->conn_new);
		up->conn_new = NULL;
	}
	if (up->conn) {
		up->conn->ops->flush(up->conn);
		up->conn->ops->close(up->conn);
		up->conn = NULL;
	}
	vrio_stack_teardown(&up->stack);
	vrio_stack_fini(&up->stack);
}

struct lhv_upstream *lhv_up_get(struct lhv *l, const struct vrio_topo_ioserver *ios)
{
	struct lhv_upstream *up;
	int rc;

	for (unsigned i = 0; i < l->nups; i++)
		if (!strcmp(l->ups[i]->name, ios->name))
			return l->ups[i];
	if (l->nups >= LHV_MAX_UPSTREAMS) {
		VRIO_ERR("%s: more than %u io-servers", l->node, LHV_MAX_UPSTREAMS);
		return NULL;
	}
	up = calloc(1, sizeof(*up));
	if (!up)
		return NULL;
	up->l = l;
	pthread_mutex_init(&up->conn_lock, NULL);
	pthread_cond_init(&up->conn_cond, NULL);
	snprintf(up->name, sizeof(up->name), "%s", ios->name);
	snprintf(up->listen, sizeof(up->listen), "%s", ios->listen ? ios->listen : "");
	vrio_hb_init(&up->hb, ios->heartbeat.interval_ms, ios->heartbeat.dead_after_ms);
	if (vrio_stack_init(&up->stack, ios) < 0) {
		free(up);
		return NULL;
	}
	if (ios->tls.enabled) {
		struct vrio_tls_ctx *tls = NULL;

		if (ios->tls.psk && !l->key)
			VRIO_ERR("%s: io_server %s has tls: {psk: true}, but this host has no key_file",
				 l->node, ios->name);
		else
			tls = vrio_tls_ctx_new(&(const struct vrio_tls_opts){
				.name = ios->name,
				.psk = ios->tls.psk,
				.identity = l->node,
				.key = l->key ? l->key->bytes : NULL,
				.key_len = l->key ? l->key->len : 0,
				.ca_file = ios->tls.ca,
			});
		if (!tls) {
			free(up);
			return NULL;
		}
		vrio_stack_tls(&up->stack, tls);
	}
	/* Process-wide set-up (the dpdk backend's port): nests, so a second
	 * io-server on the same transport costs nothing. */
	rc = vrio_stack_setup(&up->stack, &l->self);
	if (rc < 0) {
		VRIO_ERR("%s: cannot set up transport %s for io-server %s: %s", l->node,
			 up->stack.base->name, up->name, strerror(-rc));
		vrio_stack_fini(&up->stack);
		free(up);
		return NULL;
	}
	l->ups[l->nups] = up;
	__atomic_store_n(&l->nups, l->nups + 1, __ATOMIC_RELEASE);
	return up;
}

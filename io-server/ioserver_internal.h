/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * vrio-ioserver internals.
 *
 * Threads:
 *   main      the control thread: topology (load, reload), the device
 *             table, accepting connections, the control socket, the
 *             watchdog. It talks to reactors only by posting messages.
 *   reactors  reactor.h. Each owns the sessions handed to it (their
 *             connections, attachments, request buffers) and the devices
 *             placed on it (device.h).
 *   metrics   reads counters with relaxed atomics; walks the device table
 *             under srv->lock, which only it, the main thread and the
 *             trunks' dialers (a trunk's address) take.
 *   dialers   trunk.h: one per trunk this side dials; it dials and posts
 *             the connection to the trunk's reactor.
 *
 * A request's life: REQ received on the front reactor -> handed to the
 * device's home reactor (a direct call when it is the same) -> the model,
 * the backend -> ios_req_done() -> back on the front: the session's backlog
 * -> sent (att->outstanding drops) -> the unflushed list until a flush has
 * pushed every queued byte -> the front reactor's pool.
 */
#ifndef VRIO_IOSERVER_INTERNAL_H
#define VRIO_IOSERVER_INTERNAL_H

#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

#include "balance.h"
#include "bdev.h"
#include "blk.h"
#include "device.h"
#include "heartbeat.h"
#include "lease.h"
#include "log.h"
#include "metrics.h"
#include "net.h"
#include "reactor.h"
#include "reload.h"
#include "stage.h"
#include "switch.h"
#include "topology.h"
#include "transport.h"
#include "trunk.h"

#define IOS_POLL_BUDGET		64u	/* frames or completions per poll */
#define IOS_DRAIN_TIMEOUT_NS	(5ull * 1000000000ull)
/* After its goodbye, how long a session waits for the peer to close first
 * (so that nothing it sent is left unread, which would reset the
 * connection and could lose the goodbye on its way). */
#define IOS_LINGER_NS		(1ull * 1000000000ull)
#define IOS_BUF_ALIGN		IOS_BDEV_BUF_ALIGN
#define IOS_MAX_HOSTS		1024u	/* hosts ever known to this process */
#define IOS_BARRIER_TIMEOUT_NS	(5ull * 1000000000ull)

struct ios_session;
struct ios_move;

/* A buffer travelling through a session: a REQ being served, a packet for
 * a guest, or a CTRL reply. Owned by one reactor at a time; lives in
 * exactly one of: a pool, a message queue, the model, an attachment's held
 * or ready list, a session's backlog or unflushed list. */
struct ios_req {
	struct ios_msg msg;		/* between reactors */
	TAILQ_ENTRY(ios_req) link;
	struct ios_session *s;		/* the session that sends it */
	struct ios_attach *att;		/* NULL for a CTRL reply */
	struct ios_device *dev;
	uint64_t tx_after;		/* CTRL: the session's tx_data_queued then */
	struct vrio_frame frame;	/* the frame to send */
	uint8_t *buf;			/* its payload, and the model's data */
	uint32_t cap;
	/* The payload's first lent_len bytes are at `lent` instead of buf
	 * (a backend's own read-only bytes, bdev.h); 0: all in buf. */
	const uint8_t *lent;
	uint32_t lent_len;
	uint8_t *rx;			/* a REQ's payload, when it crosses */
	uint32_t rx_cap;
	uint32_t in_len, in_arg;	/* the REQ's len and arg */
	uint64_t t_start;
	/* A model that calls a backend stamps both (0: it did not). */
	uint64_t t_submit, t_done;
	union {
		struct ios_blk_req blk;
		struct ios_net_req net;
	} u;				/* the model's per-request state */
	/* Home reactor: its way through the device's stages (stage.h). */
	struct ios_chain *chain;
	int chain_pos;
	bool chain_back;		/* on the completion path */
	void (*chain_submit)(struct ios_req *req);
	void (*chain_done)(struct ios_req *req);
	uint8_t scratch[IOS_STAGE_SCRATCH] __attribute__((aligned(16)));
};

TAILQ_HEAD(ios_req_list, ios_req);

enum ios_att_state {
	IOS_ATT_PLACING,	/* the home reactor is opening its channel */
	IOS_ATT_READY,
	IOS_ATT_MOVING,		/* requests held until the device lands */
	IOS_ATT_RELEASING,	/* the home reactor is letting it go */
};

/* A device attached on one session; front reactor only. */
struct ios_attach {
	TAILQ_ENTRY(ios_attach) link;
	struct ios_session *s;
	struct ios_device *dev;
	enum ios_att_state state;
	struct ios_reactor *home;	/* where its requests go */
	uint32_t outstanding;		/* REQs received whose RESP is not sent */
	bool detached;			/* RESPs are dropped; released when idle */
	uint64_t attach_seq;		/* the Attach being answered */
	struct ios_req_list held;	/* MOVING: in arrival order */
	/* Its frames ready to send, in order; while not empty the
	 * attachment is on its session's ready ring. */
	struct ios_req_list ready;
	TAILQ_ENTRY(ios_attach) ready_link;
};

TAILQ_HEAD(ios_attach_list, ios_attach);

enum ios_session_state {
	IOS_SESSION_HELLO,	/* waiting for the peer's Hello */
	IOS_SESSION_READY,
	IOS_SESSION_CLOSING,	/* flush what is queued (an Error), then close */
	IOS_SESSION_DEAD,	/* connection closed; waiting for its devices */
};

struct ios_session {
	TAILQ_ENTRY(ios_session) link;
	struct ios_server *srv;
	struct ios_reactor *r;
	struct vrio_conn *conn;		/* NULL once closed */
	char name[160];			/* "host0@10.0.0.1:1234" once known */
	enum ios_session_state state;
	int host;			/* slot in srv->hosts, -1 before hello */
	struct vrio_conn_stats conn_last;
	char close_reason[192];		/* for the one line logged at close */
	struct ios_poller poller;
	struct ios_evsrc ev;
	struct vrio_hb hb;		/* the connection's liveness */
	bool hb_started;		/* its timers run from its first turn */
	/* The host's write lease on this connection (lease.h): the front
	 * reactor pings and takes echoes; the devices' home reactors check
	 * it before each write reaches a backend. */
	struct vrio_lease_grant lease;
	bool lease_fenced;		/* atomic: a write was dropped: close */
	bool lease_lapsed;		/* at the last check (counts lapses once) */
	bool flush_pending;		/* flush() left bytes behind */
	uint32_t sent_now;		/* frames queued by to_guest_now, unflushed */
	uint64_t reqs_taken;		/* REQ frames handed to a device */
	bool drain_seen;		/* draining: the first turn has counted */
	uint32_t drain_outstanding;	/* requests in flight at that turn */
	uint64_t linger_until;		/* goodbye sent: read and discard until */
	struct ios_trunk *trunk;	/* a peer io-server's hello: hand over */
	uint8_t trunk_nonce[32];	/* that hello's nonce (VRIO_AUTH_NONCE_LEN) */
	size_t trunk_nonce_len;		/* as it came; 0: none */
	struct ios_req_list backlog;	/* CTRL replies ready to send */
	/* The attachments with frames ready, served one frame each in turn,
	 * so that a deep device's batch of responses does not go out whole
	 * ahead of a shallow neighbour's one (session_tx). */
	struct ios_attach_list ready;
	/* Device frames put on the ring, and those sent or dropped since: a
	 * CTRL reply goes once the frames queued before it are gone, as in
	 * one FIFO (an IotlbAck behind the responses queued before it, a
	 * heartbeat delayed by no more than those). */
	uint64_t tx_data_queued, tx_data_done;
	struct ios_req_list unflushed;	/* sent, not yet flushed */
	struct ios_attach_list atts;
	struct ios_attach *att[IOS_MAX_DEVICES];	/* by dev_id */
	/* HELLO, after our Hello to a host with a key: the Auth expected. */
	bool auth_pending;
	uint8_t auth_expect[32];	/* VRIO_AUTH_PROOF_LEN */
};

TAILQ_HEAD(ios_session_list, ios_session);

/* What the server keeps on each reactor (r->priv). */
struct ios_rctx {
	struct ios_session_list sessions;
	struct ios_req_list pool;
	bool draining;			/* stop reading connections */
	uint64_t seen_busy_ns, seen_idle_ns;	/* control thread: for busy fractions */
	/* Its connections' counters by host slot, published by the reactor
	 * for the metrics thread (transport.h). */
	struct vrio_conn_stats conn_pub[IOS_MAX_HOSTS];
	/* By host slot too: heartbeats sent, connections found dead. */
	uint64_t hb_sent[IOS_MAX_HOSTS], hb_timeouts[IOS_MAX_HOSTS];
	/* Connections whose proof failed; attaches refused (control.c). */
	uint64_t auth_failures[IOS_MAX_HOSTS], attach_refused[IOS_MAX_HOSTS];
	/* Connections closed because the host's lease lapsed, and the lease
	 * of the host's newest session on this reactor (enum vrio_lease_state). */
	uint64_t lease_lapses[IOS_MAX_HOSTS];
	int lease_state[IOS_MAX_HOSTS];
};

static inline struct ios_rctx *ios_rctx(struct ios_reactor *r)
{
	return r->priv;
}

/* A host the topology named at some point; slots are never reused, so
 * counters keep their history across reloads. */
struct ios_host {
	char name[64];
	bool present;			/* atomic: in the current topology */
	struct vrio_key *key;		/* atomic; NULL: no key_file (hostkeys.c) */
};

/* A move's outcome, shared by the control thread that waits for it and
 * the reactors that carry it out; freed by whichever lets go last. */
struct ios_move_result {
	int refs;			/* atomic */
	int done;			/* atomic: 1 once rc and the rest are set */
	int rc;
	unsigned from, to;
	uint64_t t_start, t_end;
};

struct ios_server {
	struct vrio_topology *topo;	/* main thread only */
	const struct vrio_topo_ioserver *self;	/* main thread only */
	char name[64];
	char config_path[PATH_MAX];
	struct vrio_stack stack;	/* the accept thread's */
	struct vrio_listener *listener;
	pthread_mutex_t lock;		/* main and metrics threads: table changes */
	struct ios_device *devs[IOS_MAX_DEVICES];	/* atomic slots */
	uint32_t n_slots;		/* atomic: slots ever used */
	struct ios_host hosts[IOS_MAX_HOSTS];
	unsigned n_hosts;		/* atomic */
	struct ios_reactor **reactors;
	unsigned n_reactors;
	/* The first n_fixed (cores.min) never park and serve the
	 * connections; devices go to the first n_active (balance.h). */
	unsigned n_fixed;
	unsigned n_active;		/* atomic */
	struct ios_balancer *bal;	/* main thread; its counters: any */
	struct ios_rctx *rctx;		/* [n_reactors] */
	struct ios_switch *sw;		/* switch.h */
	/* trunk.h: atomic slots (NULL: free), written by the main thread
	 * (under lock), read by the metrics thread (under lock) and by
	 * sessions (a peer's Hello); n_trunks: slots ever used (atomic). */
	struct ios_trunk *trunks[IOS_MAX_TRUNKS];
	unsigned n_trunks;
	bool trunks_dialing;		/* main thread: the dialers run */
	struct vrio_metrics_server *metrics;
	int wakefd;			/* reactors wake the main thread */
	struct vrio_config_state cfg;	/* the loaded configuration */
	uint64_t started_ns;
	struct vrio_key *trunk_key;	/* atomic; NULL: no trunk_key_file (hostkeys.c) */
	struct vrio_key **retired_keys;	/* control thread (hostkeys.c) */
	unsigned n_retired_keys;
};

/* device.c, control thread */
int ios_device_add(struct ios_server *srv, const struct vrio_topo_device *td);
/* Refuses new work; frees it once detached (ios_devices_reap). */
void ios_device_remove(struct ios_server *srv, struct ios_device *d);
/* Frees removed devices that are neither attached nor placed. Returns how
 * many are still waiting. */
unsigned ios_devices_reap(struct ios_server *srv);
void ios_devices_close(struct ios_server *srv);
struct ios_device *ios_device_find(struct ios_server *srv, const char *name);
/* Starts a move; the result is filled in when it ends. -EBUSY, -ENOENT. */
int ios_device_move(struct ios_server *srv, struct ios_device *d, struct ios_reactor *to,
		    struct ios_move_result *res);
void ios_move_result_put(struct ios_move_result *res);
/* The reactor a new device should land on: of the active ones, the fewest
 * devices, then the least busy. */
struct ios_reactor *ios_server_pick_reactor(struct ios_server *srv);

/* device.c, front reactor */
/* Places the device (attach); the AttachReply goes when it has landed. */
void ios_device_attach(struct ios_attach *a);
/* The attachment is detached and idle: let the device go. */
void ios_device_release(struct ios_attach *a);
/* A REQ or PKT for the device: to its home reactor. */
void ios_device_submit(struct ios_attach *a, struct ios_req *req, const void *payload);
/* Runs the requests held during a move, in order. */
void ios_device_unhold(struct ios_attach *a);

/* reactor side of requests (session.c) */
struct ios_req *ios_req_get(struct ios_reactor *r);
void ios_req_put(struct ios_reactor *r, struct ios_req *req);
int ios_req_reserve(struct ios_req *req, uint32_t len);
int ios_req_reserve_rx(struct ios_req *req, uint32_t len);

/* session.c */
struct ios_session *ios_session_create(struct ios_server *srv, struct vrio_conn *conn);
/* Reactor: takes over a session (registers its poller). */
void ios_session_adopt(struct ios_reactor *r, struct ios_session *s);
/* Closes the connection now; requests at the backend finish on their own. */
void ios_session_close(struct ios_session *s, const char *reason);
void ios_session_free(struct ios_session *s);
/* Front reactor: a request came back from its device. */
void ios_session_resp(struct ios_reactor *r, struct ios_req *req);
/* Front reactor: a frame for the guest of device d. */
void ios_session_to_guest(struct ios_reactor *r, struct ios_device *d, struct ios_req *req);
/* Front reactor: a frame for the guest of device d that nothing answers
 * (a packet) straight into the connection's send queue, gathered from iov
 * (the transport copies it), when nothing of the session waits before it:
 * no request, no copy of our own. 0 if queued, the next flush sends it;
 * -EAGAIN: take the request path (ios_session_to_guest), which keeps the
 * order behind the backlog, its bound, and the drops. */
int ios_session_to_guest_now(struct ios_reactor *r, struct ios_device *d,
			     const struct vrio_frame *f, const struct iovec *iov, int iovcnt);
/* Front reactor: the attachment's device has landed (rc 0) or not. */
void ios_session_attached(struct ios_attach *a, int rc);
/* Front reactor: the attachment's device was let go. */
void ios_session_released(struct ios_attach *a);
/* Any reactor, immediately before a write reaches a backend: does the
 * request's session still hold its host's lease (lease.h)? */
/* now: a fresh clock (vrio_now_ns), not the turn's: a hang since the turn
 * began must count. */
bool ios_session_may_write(const struct ios_session *s, uint64_t now);
/* Any frame waiting to be sent (a CTRL reply, a device's frame). */
bool ios_session_queued(const struct ios_session *s);
/* Any reactor: a write was dropped for want of a lease; the front reactor
 * closes the session (the host then sends it again elsewhere). */
void ios_session_fenced(struct ios_session *s);
/* Front reactor, once the session is READY: the first lease ping goes
 * before any answer to an Attach, so the host's echo precedes its
 * requests. Then every interval (session.c). */
void ios_session_lease_ping(struct ios_session *s);
/* Drains (shutdown): stop reading, answer what was read, then close. */
void ios_sessions_drain(struct ios_reactor *r, void *arg);
/* Control messages queue CTRL frames and may end the session. */
int ios_session_send_ctrl(struct ios_session *s, const struct Vrio__Ctrl *m);
int ios_session_send_error(struct ios_session *s, uint64_t seq, int status, const char *msg);
int ios_session_reject(struct ios_session *s, int rc, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
#define ios_session_garbage(s, ...) ios_session_reject(s, -EBADMSG, __VA_ARGS__)
/* The attachment of dev_id, unless detached. */
struct ios_attach *ios_session_att(struct ios_session *s, uint32_t dev_id);
void ios_session_detach(struct ios_attach *a);
/* A peer-supplied string, fit for a log line. */
const char *ios_printable(char *dst, size_t n, const char *src);

/* control.c: CTRL frames (hello, attach, detach, IOTLB, heartbeat). */
int ios_control_frame(struct ios_session *s, const struct vrio_frame *f, const void *payload);
/* The connection closes: one still to prove its key counts as refused. */
void ios_control_closed(struct ios_session *s);

/* server.c */
int ios_server_init(struct ios_server *srv, struct vrio_topology *topo, const char *node,
		    const char *config_path);
/* Starts the reactors' threads (a unit test turns them by hand instead). */
int ios_server_start(struct ios_server *srv);
int ios_server_listen(struct ios_server *srv);
int ios_server_listener_fd(const struct ios_server *srv);
/* Accepts what is pending and hands it to the reactors; -errno if accept
 * itself fails. */
int ios_server_accept(struct ios_server *srv);
/* Stops accepting, drains the sessions (bounded) and joins the reactors. */
void ios_server_stop(struct ios_server *srv);
void ios_server_fini(struct ios_server *srv);
/* All reactors turned their loop since `since` (monotonic ns). */
bool ios_server_alive(const struct ios_server *srv, uint64_t since);
/* Control thread: returns once every reactor has finished the turn it was
 * in (nothing loaded before it is still in use), or -ETIMEDOUT. */
int ios_server_barrier(struct ios_server *srv);
/* The host slot of name, adding it if `add`; -1 if none (or full). */
int ios_server_host(struct ios_server *srv, const char *name, bool add);
/* Reactors: wake the main thread (a removed device let go). */
void ios_server_wake_main(struct ios_server *srv);
/* Busy fraction of a reactor since the last call for it (control). */
double ios_reactor_busy(struct ios_server *srv, unsigned idx);

/* hostkeys.c, control thread */
struct vrio_key;
/* tls.h's PSK lookup over srv->hosts (arg: the server). */
int ios_hostkeys_psk(void *arg, const char *identity, uint8_t *key, size_t *len);
/* Reads every host's key file of t into *out ([t->n_hosts], NULL for a
 * host without one); an error names the file in why. */
int ios_hostkeys_load(struct ios_server *srv, const struct vrio_topology *t,
		      struct vrio_key ***out, char *why, size_t n);
void ios_hostkeys_drop(struct vrio_key **keys, size_t n);
/* Points each host's slot at its key; takes keys. */
void ios_hostkeys_install(struct ios_server *srv, const struct vrio_topology *t,
			  struct vrio_key **keys);
void ios_hostkeys_fini(struct ios_server *srv);
/* Reads t's trunk_key_file into *out if this io-server trunks (NULL if it
 * does not or the file sets none: a warning); an error names the file. */
int ios_trunkkey_load(struct ios_server *srv, const struct vrio_topology *t,
		      struct vrio_key **out, char *why, size_t n);
/* Makes key the trunks' key from their next connection on; takes it. */
void ios_trunkkey_install(struct ios_server *srv, const struct vrio_topology *t,
			  struct vrio_key *key);

/* reload.c, control thread */
/* Applies the topology's devices to a server with none (start-up). */
int ios_server_apply_initial(struct ios_server *srv);
/* Re-reads the config file and applies the difference, or nothing. */
void ios_server_reload(struct ios_server *srv, struct vrio_reload_report *res);

/* rpc.c: the control socket's methods. */
struct vrio_ctl;
int ios_rpc_open(struct ios_server *srv, struct vrio_ctl **out);

/* metrics.c */
void ios_metrics_collect(void *arg, struct vrio_mw *w);

#endif

/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * vrio-ioserver internals.
 *
 * Threads: the main thread loads the topology, opens the devices, accepts
 * connections and hands each to a reactor (round-robin) through that
 * reactor's single-producer single-consumer inbox. From then on only that
 * reactor touches the connection, its session, its requests and the
 * reactor's backend channels. The one piece of state shared between
 * reactors is a device's owner (which session has it attached), taken with
 * a compare-and-swap on attach and released with a store once the device's
 * last request has completed; that hand-off also passes the single-writer
 * role of the device's counters.
 *
 * A request's life: REQ received -> parsed by the device model -> at the
 * backend (att->inflight) -> completed, RESP built -> the session's backlog
 * -> sent to the transport (att->outstanding drops) -> the unflushed list
 * until a flush has pushed every queued byte -> back to the reactor's pool.
 */
#ifndef VRIO_IOSERVER_INTERNAL_H
#define VRIO_IOSERVER_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

#include "bdev.h"
#include "blk.h"
#include "log.h"
#include "net.h"
#include "switch.h"
#include "metrics.h"
#include "topology.h"
#include "transport.h"

#define IOS_POLL_BUDGET		64u	/* frames or completions per poll */
#define IOS_IDLE_SPIN_NS	100000ull	/* busy-poll this long before sleeping */
#define IOS_SLEEP_MAX_MS	1000	/* refresh the counters at least this often */
#define IOS_INBOX_LEN		64u	/* a power of two */
#define IOS_DRAIN_TIMEOUT_NS	(10ull * 1000000000ull)
#define IOS_MAX_REACTORS	64u
#define IOS_BUF_ALIGN		IOS_BDEV_BUF_ALIGN

struct ios_server;
struct ios_reactor;
struct ios_session;

struct ios_dev_stats {
	uint64_t requests[IOS_BLK_OP_COUNT];
	uint64_t bytes_read, bytes_written;
	uint64_t err_ioerr, err_unsupp, err_protocol, err_guest;
	uint64_t invalidations;		/* vIOMMU invalidations acknowledged */
	struct vrio_hist latency;
};

struct ios_device {
	uint32_t id;				/* its dev_id on the wire */
	const struct vrio_topo_device *topo;
	enum vrio_dev_type type;
	struct ios_bdev *bdev;			/* blk */
	struct ios_blk_dev blk;			/* blk */
	struct ios_net_dev net;			/* net */
	struct ios_port *port;			/* net: its switch port */
	uint32_t max_outstanding;		/* queues * queue_size */
	struct ios_session *owner;		/* atomic; NULL when free */
	struct ios_dev_stats stats;		/* written by the owner's reactor */
	char label[192];			/* device="..." for the exposition */
};

/* A buffer travelling through a session: a REQ being served, or a CTRL
 * reply. Owned by one reactor; lives in exactly one of: the pool, the
 * backend, a session's backlog, a session's unflushed list. */
struct ios_req {
	TAILQ_ENTRY(ios_req) link;
	struct ios_session *s;
	struct ios_attach *att;		/* NULL for a CTRL reply */
	struct vrio_frame frame;	/* the frame to send */
	uint8_t *buf;
	uint32_t cap;
	uint64_t t_start;
	struct ios_blk_req blk;
};

TAILQ_HEAD(ios_req_list, ios_req);

/* A device attached on one session. */
struct ios_attach {
	TAILQ_ENTRY(ios_attach) link;
	struct ios_session *s;
	struct ios_device *dev;
	struct ios_bdev_chan *chan;	/* this reactor's channel to it */
	uint32_t outstanding;		/* REQs received whose RESP is not sent */
	uint32_t inflight;		/* of which at the backend */
	bool detached;			/* RESPs are dropped; released when idle */
};

TAILQ_HEAD(ios_attach_list, ios_attach);

enum ios_session_state {
	IOS_SESSION_HELLO,	/* waiting for the peer's Hello */
	IOS_SESSION_READY,
	IOS_SESSION_CLOSING,	/* flush what is queued (an Error), then close */
	IOS_SESSION_DEAD,	/* connection closed; waiting for the backend */
};

enum ios_evsrc_kind {
	IOS_EV_WAKE,
	IOS_EV_CHAN,
	IOS_EV_CONN,
	IOS_EV_TAP,	/* an uplink: readable means frames, not a counter */
};

/* What an epoll event points at. */
struct ios_evsrc {
	enum ios_evsrc_kind kind;
	int fd;
};

struct ios_session {
	TAILQ_ENTRY(ios_session) link;
	struct ios_reactor *r;
	struct vrio_conn *conn;		/* NULL once closed */
	char name[160];			/* "host0@10.0.0.1:1234" once known */
	enum ios_session_state state;
	const struct vrio_topo_host *host;
	struct vrio_conn_stats *conn_pub;	/* the host's, once it said hello */
	struct vrio_conn_stats conn_last;
	char close_reason[192];		/* for the one line logged at close */
	struct ios_evsrc ev;
	uint32_t ev_armed;		/* events registered with epoll, 0: none */
	bool flush_pending;		/* flush() left bytes behind */
	struct ios_req_list backlog;	/* ready to send */
	struct ios_req_list unflushed;	/* sent, not yet flushed */
	struct ios_attach_list atts;
	struct ios_attach *att[];	/* by dev_id */
};

TAILQ_HEAD(ios_session_list, ios_session);

struct ios_reactor_stats {
	uint64_t busy_ns, idle_ns;
	uint64_t connections;		/* gauge, written by the reactor */
};

struct ios_reactor {
	struct ios_server *srv;
	unsigned idx;
	char name[16];
	pthread_t thread;
	bool started;
	int epfd;
	int wakefd;
	struct ios_evsrc wake_ev;
	struct ios_bdev_chan **chans;	/* by dev_id */
	struct ios_evsrc *chan_ev;	/* by dev_id */
	/* Its connections' counters by host (topology index), published by
	 * the reactor for the metrics thread (transport.h). */
	struct vrio_conn_stats *conn_pub;

	/* Inbox: the main thread produces, the reactor consumes. */
	struct ios_session *inbox[IOS_INBOX_LEN];
	unsigned inbox_head;		/* atomic, written by the reactor */
	unsigned inbox_tail;		/* atomic, written by the main thread */
	int drain;			/* atomic, set by the main thread */

	struct ios_evsrc *tap_ev;	/* the uplinks of the networks homed here */
	uint64_t xwake;			/* reactors queued for this turn (xring.c) */
	uint8_t frame_buf[VRIO_PKT_MAX_FRAME];	/* an uplink's frame, read */

	struct ios_session_list sessions;
	struct ios_req_list pool;
	uint64_t now;			/* this loop iteration's clock */
	uint64_t alive_ns;		/* atomic: the loop's last turn */
	struct ios_reactor_stats stats;
};

struct ios_server {
	struct vrio_topology *topo;
	const struct vrio_topo_ioserver *self;
	const struct vrio_transport_ops *tops;	/* stack.base */
	struct vrio_stack stack;		/* the accept thread's */
	struct vrio_listener *listener;
	struct ios_device *devs;
	uint32_t n_devs;
	struct ios_reactor **reactors;
	unsigned n_reactors;
	struct ios_network *nets;		/* switch.h: the networks switched here */
	unsigned n_nets;
	struct ios_xring **xrings;		/* [from * xring_n + to]; NULL: one reactor */
	unsigned xring_n;
	unsigned next_reactor;
	struct vrio_metrics_server *metrics;
};

/* device.c */
int ios_devices_open(struct ios_server *srv);
void ios_devices_close(struct ios_server *srv);
struct ios_device *ios_device_find(struct ios_server *srv, const char *name);
/* What an AttachReply says of the device. */
struct Vrio__AttachReply;
void ios_device_describe(const struct ios_device *d, struct Vrio__AttachReply *ar);

/* reactor.c */
int ios_reactor_create(struct ios_server *srv, unsigned idx, struct ios_reactor **out);
int ios_reactor_start(struct ios_reactor *r);
/* Main thread: hands a new session over; -EAGAIN if the inbox is full. */
int ios_reactor_post(struct ios_reactor *r, struct ios_session *s);
void ios_reactor_drain(struct ios_reactor *r);
void ios_reactor_join(struct ios_reactor *r);
void ios_reactor_destroy(struct ios_reactor *r);
struct ios_req *ios_req_get(struct ios_reactor *r);
void ios_req_put(struct ios_reactor *r, struct ios_req *req);
int ios_req_reserve(struct ios_req *req, uint32_t len);
void ios_reactor_arm(struct ios_reactor *r, struct ios_session *s, uint32_t events);
void ios_reactor_wake(struct ios_reactor *r);

/* session.c */
struct ios_session *ios_session_create(struct ios_server *srv, struct vrio_conn *conn);
/* Reactor: takes over a session from the inbox. */
void ios_session_adopt(struct ios_reactor *r, struct ios_session *s);
/* One turn: receive (unless draining), reap the backend, send and flush.
 * Returns the work done. */
int ios_session_poll(struct ios_session *s, bool draining);
/* The epoll events the session needs while its reactor sleeps. */
uint32_t ios_session_events(const struct ios_session *s, bool draining);
/* True once the session may be freed: connection closed, nothing left at
 * the backend. A draining reactor closes idle sessions first. */
bool ios_session_finished(struct ios_session *s, bool draining);
/* Closes the connection now; requests at the backend finish on their own. */
void ios_session_close(struct ios_session *s, const char *reason);
/* Only when finished, or at a forced exit (requests still at the backend
 * are then left alone rather than freed under the kernel). */
void ios_session_free(struct ios_session *s);

/* server.c */
int ios_server_init(struct ios_server *srv, struct vrio_topology *topo, const char *node);
int ios_server_listen(struct ios_server *srv);
int ios_server_listener_fd(const struct ios_server *srv);
/* Accepts what is pending and hands it to the reactors; -errno if accept
 * itself fails. */
int ios_server_accept(struct ios_server *srv);
/* Stops accepting, drains the reactors (bounded) and joins them. */
void ios_server_stop(struct ios_server *srv);
void ios_server_fini(struct ios_server *srv);
/* All reactors turned their loop since `since` (monotonic ns). */
bool ios_server_alive(const struct ios_server *srv, uint64_t since);

/* metrics.c */
void ios_metrics_collect(void *arg, struct vrio_mw *w);

#endif

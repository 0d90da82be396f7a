/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * vrio-localhv internals. One poller thread owns every device's rings and
 * every upstream connection; rte_vhost's control thread hands devices to it
 * and takes them back through dev->state (see below), never touching ring
 * state while the poller owns it.
 *
 * The device table changes with reloads (reload.c), on the main thread:
 * a device is published in a slot once built, and taken out of the poller's
 * hands by a poller command (lhv_poller_call) before its slot is cleared;
 * the main, rte_vhost and metrics threads look at slots under l->lock. A
 * device keeps copies of what it needs from the topology, which a reload
 * frees.
 */
#ifndef VRIO_LOCALHV_H
#define VRIO_LOCALHV_H

#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <linux/virtio_ring.h>

#include "fair.h"
#include "heartbeat.h"
#include "iommu.h"
#include "lease.h"
#include "metrics.h"
#include "notify.h"
#include "reload.h"
#include "topology.h"
#include "transport.h"
#include "walker.h"

#define LHV_MAX_QUEUES	64
#define LHV_MAX_DEVICES	1024	/* per host */
#define LHV_MAX_UPSTREAMS 64
#define LHV_CONFIG_MAX	256	/* vhost-user's limit on config space */
#define LHV_BUDGET	64	/* chains or frames per queue per poll round */

/*
 * Device ownership:
 *   IDLE     not served; the control thread owns everything.
 *   START    the control thread filled in mem/vq and hands the device over.
 *   RUNNING  the poller owns mem/vq.
 *   STOP     the control thread asks for it back; the poller stops taking
 *            chains, waits for in-flight responses (bounded), records ring
 *            positions, and sets IDLE.
 */
enum lhv_dev_state {
	LHV_DEV_IDLE,
	LHV_DEV_START,
	LHV_DEV_RUNNING,
	LHV_DEV_STOP,
};

/* Writable segments a slot keeps from the walk at submit (a block
 * request's data and status: two, or three across a region edge). */
#define LHV_SLOT_SEGS	4

struct lhv_slot {
	uint64_t t0;		/* when the request went upstream */
	uint64_t lo, hi;	/* the guest addresses the chain touches */
	uint32_t wcap;		/* writable bytes the chain offered */
	bool busy;
	bool unsent;		/* busy: a previous backend's, not sent yet (inflight.c) */
	/* The chain's writable segments as translated at submit, so the
	 * response is scattered without walking the chain again. Not kept
	 * (cached false) behind a vIOMMU, where the completion translates
	 * again, or for more segments than fit. Host addresses inside the
	 * guest's regions, which stay mapped while the poller owns the
	 * device (localhv.h's states). */
	bool cached;
	uint8_t nw;
	struct iovec w[LHV_SLOT_SEGS];
};

struct lhv_vq {
	struct vring_desc *desc;
	struct vring_avail *avail;
	struct vring_used *used;
	uint16_t size;
	int kickfd, callfd;
	bool active;		/* the frontend made this vring ready */
	bool armed;		/* kicks enabled, kickfd in epoll */
	uint16_t last_avail;
	uint16_t used_idx;	/* our copy of used->idx */
	bool used_dirty;	/* used_idx not yet stored to used->idx */
	struct lhv_notify note;	/* the guest's interrupts (notify.h) */
	unsigned inflight;
	unsigned unsent;	/* slots busy and unsent, not counted in inflight */
	bool track;		/* the frontend keeps an inflight region for it */
	unsigned resub_n;	/* unsent at start, and their heads, for the log */
	char resub_heads[96];
	bool iommu_wait;	/* its next chain waits on the vIOMMU: not work */
	struct lhv_slot *slots;	/* [size], indexed by head */
};

struct lhv_upstream;
struct lhv_dev;
struct lhv;
struct rte_mbuf;
struct rte_mempool;

/*
 * How a device's queues are served: the request/response kind (vq.c: our
 * own walker over split rings, one REQ/RESP pair per chain) or the packet
 * kind (net.c: rte_vhost's net data path, PKT frames both ways). Chosen by
 * the device type the io-server gives at attach.
 */
struct lhv_dev_ops {
	const char *name;
	uint8_t frame_type;	/* the frames that carry the io-server's side */
	/* The poller reads the rings itself: vhost-user messages that change
	 * them take the device back first, vrings start and stop one by one,
	 * and the config space is the io-server's. Otherwise rte_vhost owns
	 * the rings and the frontend the config. */
	bool own_rings;
	/* Served while the io-server is away: what the guest sends then is
	 * dropped and counted (packets), rather than left in its ring to be
	 * sent after the reconnect (requests). */
	bool drops_when_detached;
	/* Control thread: the frontend is ready; fill d->vq, d->nvq. */
	int (*start)(struct lhv_dev *d, int vid);
	/* Optional, control thread: the poller handed the device back. */
	void (*release)(struct lhv_dev *d);
	/* Poller: take at most budget units of the guest's work on queue qi
	 * (fair.h); returns units done. */
	int (*process)(struct lhv *l, struct lhv_dev *d, unsigned qi, unsigned budget);
	/* Poller: a frame from the io-server; -errno: the peer sent garbage. */
	int (*frame)(struct lhv *l, struct lhv_dev *d, const struct vrio_frame *f,
		     const void *payload);
	/* Optional, poller: the upstream poll whose frames completed work of
	 * the device (lhv_completed) ended; publish what they wrote. */
	void (*frames_done)(struct lhv_dev *d);
	/* Poller, after each round (now: the round's start): publish to the
	 * guest, notify it. True if an interrupt is held for a later round
	 * (notify.h): the poller must not sleep before it goes. */
	bool (*notify)(struct lhv_dev *d, struct lhv_vq *q, uint64_t now);
	/* Poller: guest kicks on or off; true if work slipped in meanwhile. */
	bool (*kicks)(struct lhv_dev *d, struct lhv_vq *q, bool enable);
	/* Optional, poller: the connection is back; send in-flight work again. */
	int (*resend)(struct lhv *l, struct lhv_dev *d);
	/* Optional, poller: the poller takes the device (START), before any
	 * frame from the io-server can reach the guest. */
	void (*started)(struct lhv_dev *d);
	/* Optional, poller: the device goes back to the control thread. */
	void (*stopped)(struct lhv_dev *d);
};

extern const struct lhv_dev_ops lhv_rr_ops;
extern const struct lhv_dev_ops lhv_net_ops;

enum lhv_net_drop {
	LHV_NET_DROP_GUEST_RX_FULL,	/* the guest posted no receive buffer */
	LHV_NET_DROP_NO_GUEST,		/* no driver attached */
	LHV_NET_DROP_UPSTREAM_DOWN,
	LHV_NET_DROP_UPSTREAM_FULL,	/* the connection's send queue is full */
	LHV_NET_DROP_TOO_LONG,
	LHV_NET_DROP_NO_MBUF,
	LHV_NET_DROP_BAD_OFFLOAD,	/* offload metadata we cannot carry, or that
					 * the guest did not negotiate */
	LHV_NET_NR_DROPS,
};
extern const char *const lhv_net_drop_names[LHV_NET_NR_DROPS];

/* Where a request's time at local-hv goes (README: the breakdown): from the
 * poller finding the chain to its REQ queued upstream, and from its RESP
 * to the used entry published. In between is `latency` (the wire and the
 * io-server); before and after, the guest's kick and interrupt. */
enum lhv_hop {
	LHV_HOP_SUBMIT,
	LHV_HOP_COMPLETE,
	LHV_NR_HOPS,
};
extern const char *const lhv_hop_names[LHV_NR_HOPS];

struct lhv_dev_stats {
	uint64_t requests, responses;
	uint64_t bytes_out, bytes_in;	/* to the io-server, into the guest */
	uint64_t irqs, kicks;
	uint64_t dropped_responses;
	uint64_t resubmitted;	/* sent again from the inflight region */
	uint64_t chain_errors[LHV_WALK_NR_ERRORS];
	uint64_t net_drops[LHV_NET_NR_DROPS];
	/* net: frames through each vring (even: to the guest, odd: from it) */
	uint64_t net_frames[LHV_MAX_QUEUES];
	struct vrio_hist latency;
	struct vrio_hist hop[LHV_NR_HOPS];
};

/* A device's attachment at its io-server, as the poller sees it. */
enum lhv_att_state {
	LHV_ATT_NONE,		/* not asked (no connection) */
	LHV_ATT_SENT,		/* Attach sent, waiting for the reply */
	LHV_ATT_DONE,		/* attached */
	LHV_ATT_REFUSED,	/* refused: asked again at retry_at */
	LHV_ATT_DETACHED,	/* being removed: Detach sent */
};

struct lhv_dev {
	/* Copies of its topology entry. */
	char name[64];
	char socket[108];
	enum vrio_dev_type type;
	unsigned queue_size;
	char label[160];		/* escaped device="NAME" for metrics */
	struct lhv *l;
	/* The io-server serving it: one of cand[]; the poller switches it
	 * (failover.c), other threads read it atomically. */
	struct lhv_upstream *up;
	unsigned slot;

	/* Standby failover (failover.c). cand[0] is the topology's io_server,
	 * cand[1] its standby (NULL: none). */
	struct lhv_upstream *cand[2];
	int move_to;			/* atomic: the operator's move, an index in cand; -1 none */
	int move_rc;			/* atomic: 1 while asked, then 0 or -errno */
	uint64_t failovers, failbacks;	/* moves to the standby, back to the primary */
	uint64_t move_ns;		/* poller: when the current move became due */

	/* Poller: the attachment. */
	int att_state;			/* enum lhv_att_state; atomic for readers */
	uint64_t att_retry_at;
	unsigned att_failures;
	bool linked;			/* in up->devs */

	/* From the io-server's AttachReply; fixed after the first attach. */
	bool attached;
	bool described;			/* atomic: main registers its socket once set */
	bool answered;			/* atomic: the io-server answered once */
	bool registered_once;		/* poller: main was told it is described */
	const struct lhv_dev_ops *ops;
	uint32_t dev_id;
	uint64_t dev_features;
	uint8_t config[LHV_CONFIG_MAX];
	uint32_t config_len;
	uint32_t num_queues;
	uint32_t max_request;

	/* Control thread only. */
	int conn_vid;			/* the frontend connection, -1 if none */
	/* net: the vrings rte_vhost reports ready, a bit each; atomic, the
	 * control thread sets it and the poller follows (net.c). */
	uint64_t net_ready;
	bool ready[LHV_MAX_QUEUES];	/* vrings rte_vhost reports ready */
	bool registered;		/* main thread: its socket is open */
	bool inflight_unmapped;		/* GET_INFLIGHT_FD came, SET_INFLIGHT_FD not yet */
	bool register_failed;		/* main thread: do not try again */

	int state;			/* enum lhv_dev_state, atomic */
	int vid;
	uint16_t epoch;			/* per start; high half of frame ids */
	uint64_t features;		/* negotiated */
	bool event_idx, indirect;
	/* Poller: how long a due interrupt may wait for more completions
	 * (coalesce_us; 0: never), event-idx guests only (notify.h). */
	uint64_t coalesce_ns;
	struct lhv_gmem mem;
	unsigned nvq;
	struct lhv_vq vq[LHV_MAX_QUEUES];
	uint64_t stop_deadline;

	/* Poller only (read by the metrics thread). */
	bool broken;
	unsigned inflight;
	unsigned completed;		/* used entries published in this upstream poll */
	struct lhv_dev_stats st;
	struct rte_mbuf *rx[LHV_BUDGET];	/* net: packets for the guest */
	uint8_t rx_ring[LHV_BUDGET];	/* net: the receive vring of each */
	unsigned n_rx;
	/* net: empty mbufs for them, taken from the pool a burst at a time
	 * (its ring once per burst, not per packet). */
	struct rte_mbuf *stash[LHV_BUDGET];
	unsigned n_stash;
	uint64_t net_served;		/* net: the net_ready the vrings follow */
	bool net_ol_due;		/* net: the io-server is still to hear the
					 * guest's receive offloads (net.c) */
	uint8_t net_rxq[LHV_MAX_QUEUES / 2];	/* net: receive vrings served */
	unsigned net_nrxq;
	struct lhv_iommu iommu;		/* request/response kind behind a vIOMMU */
};

enum lhv_conn_step {
	LHV_CONN_IDLE,
	LHV_CONN_ASKED,		/* the connector thread is connecting */
	LHV_CONN_DONE,		/* conn_new / conn_rc wait for the poller */
};

enum lhv_up_state {
	LHV_UP_DOWN,
	LHV_UP_READY,		/* connected; each device attaches on its own */
};

/* What local-hv last knew of the io-server itself, for operators. */
enum lhv_peer_state {
	LHV_PEER_UNKNOWN,	/* not heard from yet */
	LHV_PEER_UP,		/* answered the Hello of the current connection */
	LHV_PEER_DEAD,		/* silent for dead_after: hung; not heard from since */
	LHV_PEER_LOST,		/* connection closed or refused; not heard from since */
};

struct vrio_key;

struct lhv_upstream {
	struct lhv *l;
	char name[64];			/* the io-server's */
	char listen[256];
	struct vrio_stack stack;
	struct vrio_conn *conn;
	int state;			/* enum lhv_up_state; atomic for readers */
	int peer;			/* enum lhv_peer_state; atomic for readers */
	uint64_t retry_at;
	unsigned failures;
	uint64_t seq;
	struct vrio_hb hb;		/* the connection's liveness */
	unsigned dead_streak;		/* connections declared dead since it last answered */
	struct lhv_dev *devs[LHV_MAX_DEVICES];	/* poller: its devices */
	unsigned ndevs;
	/* The io-server's write lease on us (lease.h): every ping echoed
	 * raises the bound; prev_until is the bound of closed connections
	 * alone (their sessions may still hold a lease until then). */
	struct vrio_lease_hold lease;
	uint64_t lease_prev_until;
	uint64_t lease_until_pub;	/* atomic: for the metrics thread */
	/*
	 * Connects happen off the poller, on a thread of the upstream's own
	 * (a connect to a hung peer whose backlog is full blocks for the
	 * transport's timeout): the poller asks (CONN_ASKED), the thread
	 * connects and hands the result over (CONN_DONE) and wakes it.
	 */
	pthread_t connector;
	bool connector_started;
	pthread_mutex_t conn_lock;
	pthread_cond_t conn_cond;
	int conn_step;			/* atomic: enum lhv_conn_step */
	bool conn_quit;			/* under conn_lock */
	struct vrio_conn *conn_new;	/* CONN_DONE: the result */
	int conn_rc;
	uint64_t conn_resps;		/* RESP frames on this connection */
	bool said_goodbye;		/* the last connection ended with one */
	/* Poller: Attach messages may go (the io-server took our proof, or
	 * this host has no key and sends them behind its Hello). */
	bool authed;
	uint8_t nonce[32];		/* this connection's (proto/auth.h) */
	unsigned auth_streak;		/* connections refused in a row */
	char auth_why[640];		/* the last refusal, for its log line */
	struct {
		uint64_t connects, disconnects, protocol_errors, resent;
		uint64_t auth_failures;	/* either side's proof failed */
		uint64_t heartbeats, heartbeat_timeouts;
		/* Clean stops of the io-server (its goodbye), and requests it
		 * said it answered that never arrived (0 unless it lies). */
		uint64_t goodbyes, goodbye_unanswered;
	} st;
	/* The connections' counters, published by the poller after each
	 * flush (the metrics thread never touches a connection). */
	struct vrio_conn_stats cpub, clast;
	uint64_t published_ns;		/* poller: when cpub was last published */
};

/* A function the main thread has the poller run between two rounds. */
struct lhv_cmd {
	void (*fn)(struct lhv *l, void *arg);
	void *arg;
	bool done;
};

struct lhv {
	struct vrio_topology *topo;	/* main thread */
	const struct vrio_topo_host *host;	/* main thread */
	char node[64];
	/* This host's key_file, read at start (a reload may not change it);
	 * NULL: none, the connections go unauthenticated. */
	struct vrio_key *key;
	char config_path[PATH_MAX];
	/* This node, for the EAL and the transports' set-up: lhv_vhost_init(). */
	struct vrio_transport_node self;

	pthread_mutex_t lock;		/* slots: main, rte_vhost, metrics threads */
	struct lhv_dev *devs[LHV_MAX_DEVICES];	/* atomic slots */
	unsigned n_slots;		/* atomic: slots ever used */
	struct lhv_upstream *ups[LHV_MAX_UPSTREAMS];	/* atomic, never freed */
	unsigned nups;			/* atomic */

	int epfd;
	int wakefd;
	int mainfd;			/* the poller wakes the main thread */
	int stop;			/* atomic: the poller exits */
	int quiesce;			/* atomic: take no new work from guests */
	bool quiesce_seen;		/* poller: it saw quiesce ... */
	unsigned quiesce_inflight;	/* atomic: ... with this many in flight */
	pthread_t poller;
	bool poller_started;
	pthread_mutex_t cmd_lock;
	pthread_cond_t cmd_cond;
	struct lhv_cmd *cmd;		/* under cmd_lock */
	int cmd_pending;		/* atomic */
	struct lhv_chain chain;		/* the poller's scratch chain */
	/* The poller's clock for the frames of one upstream poll, read once
	 * before it (lhv_up_poll's now), and the devices that published used
	 * entries in it: their complete hop is timed once, after the poll. */
	uint64_t round_ns;
	struct lhv_dev *completed[LHV_MAX_DEVICES];
	unsigned ncompleted;
	struct lhv_fair fair;		/* the poller's: this round's busy queues */
	struct rte_mempool *mbufs;	/* net devices' packets; NULL without */
	uint64_t alive_ns;		/* atomic: the poller's last round */
	uint64_t (*clock)(void);	/* tests inject one; NULL: vrio_now_ns */
	bool connect_inline;		/* tests: connect on the poller itself */
	struct {
		uint64_t busy_ns, idle_ns, wakeups;
	} st;
	uint64_t seen_busy_ns, seen_idle_ns;	/* main: busy fraction for status */
	struct vrio_metrics_server *metrics;

	struct vrio_config_state cfg;	/* the loaded configuration */
	uint64_t started_ns;
};

/* failover.c: a device with a standby moves between its io-servers;
 * poller. Returns the moves made. */
int lhv_failover_poll(struct lhv *l, uint64_t now);
/* Milliseconds until a move waiting for a lease becomes due, or -1. */
int lhv_failover_timeout_ms(struct lhv *l, uint64_t now);
/* Main thread: serve d on io-server `to` (the operator's move), waiting
 * at most timeout_ns. 0, -EINVAL (not one of its io-servers), -ETIMEDOUT. */
int lhv_failover_move(struct lhv *l, struct lhv_dev *d, const char *to, uint64_t timeout_ns);
/* The device's serving io-server, for any thread. */
static inline struct lhv_upstream *lhv_dev_up(const struct lhv_dev *d)
{
	return __atomic_load_n(&d->up, __ATOMIC_ACQUIRE);
}

/* vq.c: the request/response queue path (lhv_rr_ops). */
void lhv_dev_break(struct lhv_dev *d, int reason, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static inline uint32_t lhv_frame_id(const struct lhv_dev *d, uint16_t head)
{
	return (uint32_t)d->epoch << 16 | head;
}

/* inflight.c: the inflight region of the request/response kind. Control
 * thread at start: marks the heads a previous backend left in flight busy
 * and unsent in d->vq[qi]; returns how many. */
unsigned lhv_inflight_start(struct lhv_dev *d, int vid, unsigned qi);
/* Poller: the last of them was sent (logged once, with the heads). */
void lhv_inflight_sent(struct lhv_dev *d, unsigned qi);
/* Poller: around each request's life. */
void lhv_inflight_take(struct lhv_dev *d, unsigned qi, uint16_t head);
void lhv_inflight_untake(struct lhv_dev *d, unsigned qi, uint16_t head);
void lhv_inflight_completing(struct lhv_dev *d, unsigned qi, uint16_t head);
void lhv_inflight_completed(struct lhv_dev *d, unsigned qi, uint16_t head);

/* upstream.c: connections to io-servers. */
/* Main thread: the upstream to io-server ios, made (its transport set up)
 * the first time; NULL on error. */
struct lhv_upstream *lhv_up_get(struct lhv *l, const struct vrio_topo_ioserver *ios);
/* Poller: d joins or leaves its upstream's devices (Attach / Detach). */
void lhv_up_link(struct lhv_upstream *up, struct lhv_dev *d);
void lhv_up_unlink(struct lhv_upstream *up, struct lhv_dev *d);
int lhv_up_poll(struct lhv_upstream *up, uint64_t now);
/* Poller, as a frame op publishes a used entry: its complete hop is
 * timed with the others of this upstream poll, by one clock read. */
static inline void lhv_completed(struct lhv *l, struct lhv_dev *d)
{
	if (!d->completed++ && l->ncompleted < LHV_MAX_DEVICES)
		l->completed[l->ncompleted++] = d;
}
/* Poller, once a round: push what was queued, publish the counters. */
void lhv_up_flush(struct lhv_upstream *up, uint64_t now);
void lhv_up_close(struct lhv_upstream *up);
/* Before the poller sleeps: each connection asks for a doorbell where its
 * transport needs one (transport.h sleep_prepare). True if one has frames,
 * or an error, for the next round to take instead of sleeping. */
bool lhv_ups_sleep_prepare(struct lhv *l);
/* Milliseconds until the next reconnect attempt, or -1. */
int lhv_up_timeout_ms(const struct lhv_upstream *up, uint64_t now);
/* Queues a data frame; if the send queue is full, flushes and tries once
 * more. 0, -ENOBUFS (still full: the caller decides) or -errno. */
int lhv_up_send(struct lhv_upstream *up, const struct vrio_frame *f, const struct iovec *iov,
		int iovcnt);
/* Forwards a vIOMMU invalidation of d's; *seq names the IotlbAck to come.
 * -ENOTCONN when the device is not attached on a live connection. */
int lhv_up_send_invalidate(struct lhv_dev *d, uint64_t iova, uint64_t size, uint64_t *seq);

/* net.c: the packet queue path (lhv_net_ops). */
int lhv_net_init(struct lhv *l);
void lhv_net_fini(struct lhv *l);
void lhv_net_flush(struct lhv_dev *d);

/* vhost.c: the rte_vhost adapter. */
int lhv_rr_start(struct lhv_dev *d, int vid);
void lhv_rr_release(struct lhv_dev *d);
int lhv_vhost_init(struct lhv *l, const char *prog, bool verbose);
/* The poller thread, as it starts and ends: an lcore of its own, so that
 * DPDK's mempool caches serve its mbufs (hot, LIFO) instead of the pool's
 * ring (cold, FIFO, an atomic per burst). */
void lhv_vhost_thread_start(struct lhv *l);
void lhv_vhost_thread_end(void);
int lhv_vhost_register(struct lhv *l, struct lhv_dev *d);
void lhv_vhost_unregister(struct lhv *l, struct lhv_dev *d);
void lhv_vhost_fini(void);

/* vumsg.c: the vhost-user messages local-hv acts on before rte_vhost does;
 * control thread (rte_vhost's). */
enum lhv_msg_result {
	LHV_MSG_ERR,		/* refused: rte_vhost drops the connection */
	LHV_MSG_PASS,		/* rte_vhost handles it (as well) */
	LHV_MSG_REPLY,		/* answered in place: rte_vhost sends it back */
};
/* ctx is what rte_vhost gives pre_msg_handle: its message context, the
 * message at its start (channel.c pins its layout). */
enum lhv_msg_result lhv_vu_msg(struct lhv *l, struct lhv_dev *d, void *ctx);
/* The same for the packet kind, whose messages are rte_vhost's but for
 * the queue pairs it may offer (the device's, not rte_vhost's 128). */
enum lhv_msg_result lhv_vu_net_msg(struct lhv_dev *d, void *ctx);
/* Whether rings or memory may not be what the poller uses after it. */
bool lhv_vu_changes_rings(uint32_t request);
/* Takes the device back from the poller (bounded drain); returns once the
 * poller can no longer touch guest memory. */
void lhv_dev_stop(struct lhv *l, struct lhv_dev *d);
/* The frontend is gone: device stopped, its mappings and channel dropped. */
void lhv_vu_forget_frontend(struct lhv *l, struct lhv_dev *d);

/* device.c: the device table, main thread. */
int lhv_dev_add(struct lhv *l, const struct vrio_topo_device *td);
/* Closes its socket (the VMM sees a disconnect, requests in flight are
 * finished), detaches it at the io-server and frees it. */
void lhv_dev_remove(struct lhv *l, struct lhv_dev *d);
struct lhv_dev *lhv_dev_find(struct lhv *l, const char *name);
/* Control thread: apply a reload's live keys (enum vrio_topo_live_key). */
void lhv_dev_reconfigure(struct lhv *l, struct lhv_dev *d, const struct vrio_topo_device *td,
			 unsigned keys);
/* Opens the sockets of devices the io-server has described. Returns the
 * devices still waiting for their first answer. */
unsigned lhv_devs_register(struct lhv *l);
void lhv_devs_fini(struct lhv *l);

/* A device as vrioctl and the metrics show it. */
enum lhv_dev_view {
	LHV_VIEW_CONNECTING,	/* its io-server not answered yet */
	LHV_VIEW_ATTACHING,
	LHV_VIEW_ATTACHED,
	LHV_VIEW_REFUSED,	/* the io-server does not serve it: asked again */
	LHV_VIEW_DRAINING,	/* removed, waiting for its requests */
	LHV_VIEW_BROKEN,	/* the guest broke it */
	LHV_VIEW_DEAD,		/* its io-server stopped answering (heartbeats) */
	LHV_VIEW_UNREACHABLE,	/* its io-server closed or refuses the connection */
	LHV_NR_VIEWS,
};
extern const char *const lhv_dev_view_names[LHV_NR_VIEWS];
enum lhv_dev_view lhv_dev_view(const struct lhv_dev *d);
const char *lhv_dev_state_name(const struct lhv_dev *d);

/* reload.c, main thread */
int lhv_apply_initial(struct lhv *l);
void lhv_reload(struct lhv *l, struct vrio_reload_report *res);

/* rpc.c */
struct vrio_ctl;
int lhv_rpc_open(struct lhv *l, struct vrio_ctl **out);

/* poller.c */
int lhv_poller_start(struct lhv *l);
/* Main thread: runs fn(l, arg) on the poller between two rounds and
 * returns once it ran (at once if the poller is not running). */
void lhv_poller_call(struct lhv *l, void (*fn)(struct lhv *l, void *arg), void *arg);
/* The next device slot after *i (start at 0), or NULL: for the poller. */
static inline struct lhv_dev *lhv_dev_next(struct lhv *l, unsigned *i)
{
	unsigned n = __atomic_load_n(&l->n_slots, __ATOMIC_ACQUIRE);
	struct lhv_dev *d;

	while (*i < n) {
		d = __atomic_load_n(&l->devs[(*i)++], __ATOMIC_ACQUIRE);
		if (d)
			return d;
	}
	return NULL;
}
void lhv_poller_stop(struct lhv *l);
/* Main thread, at a stop: the poller takes nothing more from the guests'
 * rings and finishes what it took (its used entries written, the guests
 * notified), for at most timeout_ns. Returns the requests abandoned. */
unsigned lhv_poller_quiesce(struct lhv *l, uint64_t timeout_ns);
void lhv_poller_wake(struct lhv *l);
/* The poller wakes the main thread (a device was described). */
void lhv_main_wake(struct lhv *l);
void lhv_epoll_mod(struct lhv *l, int fd, void *tag, bool add);
/* Poller: watch a queue's kickfd while the poller sleeps, or stop. */
void lhv_poller_watch_vq(struct lhv *l, struct lhv_vq *q, bool on);

/* metrics.c */
void lhv_collect(void *arg, struct vrio_mw *w);

#endif

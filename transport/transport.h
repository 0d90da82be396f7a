/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The transport interface: connection-oriented, reliable, ordered per
 * connection, message based. A message is one frame (proto/frame.h).
 *
 * Data path contract:
 *  - send() queues one frame (header + payload gathered from iov); the
 *    transport may copy. Nothing is on the wire before flush() or the next
 *    poll(). Batch sends, then flush once. send_lent() (optional) may keep
 *    the payload's pointers instead of copying its bytes: the owner keeps
 *    them valid and unchanged until a flush() returns 0 or the connection
 *    is closed.
 *  - poll() delivers up to `budget` received frames to the callback. The
 *    payload pointer is lent for the duration of the callback only. A
 *    callback returning a negative errno means "this peer sent garbage":
 *    poll() stops and returns that error; the owner closes the connection.
 *  - Every call is made by the connection's single owner thread.
 */
#ifndef VRIO_TRANSPORT_H
#define VRIO_TRANSPORT_H

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "frame.h"

struct vrio_conn;
struct vrio_listener;
struct vrio_topo_dpdk;

typedef int (*vrio_recv_cb)(void *arg, struct vrio_conn *c, const struct vrio_frame *f,
			    const void *payload);

struct vrio_conn_stats {
	/* Every backend and layer counts the frames its send() took and its
	 * poll() delivered: the owners' liveness timers read the top layer's
	 * (heartbeat.h). */
	uint64_t frames_tx, frames_rx;
	uint64_t bytes_tx, bytes_rx;
	/* The reliable layer (reliable.c), where it is stacked. */
	uint64_t retransmits;		/* frames sent again */
	uint64_t duplicates;		/* frames received twice, discarded */
	uint64_t window_stalls;		/* send() refused: window full */
	uint64_t rtt_ns;		/* smoothed round-trip time */
	/* The fault-injection wrapper (fault.c), where it is stacked. */
	uint64_t injected_drops, injected_dups, injected_reorders;
	/* The dpdk backend: fragments thrown away by reassembly. */
	uint64_t reasm_drops;
};

/* Base object; each backend embeds it first. */
struct vrio_conn {
	const struct vrio_transport_ops *ops;
	char name[64];			/* peer address, for logs */
	struct vrio_conn_stats stats;	/* this layer's own counters */
	struct vrio_conn *inner;	/* a layer's connection below; NULL: a backend */
	void *owner;			/* free for the owner's use */
};

struct vrio_listener {
	const struct vrio_transport_ops *ops;
	char name[64];
};

/*
 * A node's own settings, for a backend's process-wide set-up: the program
 * (argv[0]) and the node's name in the topology, for names the process
 * leaves behind and for logs; the node's `dpdk:` entry (NULL: none), which
 * only a backend that runs on DPDK reads; and whether the operator asked
 * for debug logs. Borrowed for the duration of setup() only.
 */
struct vrio_transport_node {
	const char *prog;
	const char *name;
	const struct vrio_topo_dpdk *dpdk;
	bool verbose;
};

struct vrio_transport_ops {
	const char *name;
	/* Frames may be lost, duplicated or reordered (raw Ethernet): the
	 * stack always puts the reliable layer on top of this backend. */
	bool unreliable;

	/* Mandatory. addr is backend specific ("host:port" for tcp, a MAC
	 * address for dpdk). */
	int (*listen)(const char *addr, struct vrio_listener **out);
	/* -EAGAIN when no connection is pending. */
	int (*accept)(struct vrio_listener *l, struct vrio_conn **out);
	/* Blocks at most until the connection is up or refused, or the
	 * backend's own timeout. cancel_fd (-1: none) is a descriptor that
	 * becomes readable when the caller gives the dial up (a daemon that
	 * stops): a connect that waits on its peer then returns -ECANCELED
	 * within about 100 ms, and no connection. */
	int (*connect)(const char *addr, int cancel_fd, struct vrio_conn **out);
	/* 0, -ENOBUFS if the send queue is full (flush and retry), or -errno
	 * if the connection is dead. */
	int (*send)(struct vrio_conn *c, const struct vrio_frame *f, const struct iovec *iov,
		    int iovcnt);
	/* 0 when all queued bytes left, 1 if some remain, or -errno. */
	int (*flush)(struct vrio_conn *c);
	/* Optional: send(), with the payload lent rather than copied (the
	 * contract above): the bytes of iov are read by a later flush(), up
	 * to the one that returns 0. Without it, vrio_conn_send_lent() is
	 * send(). */
	int (*send_lent)(struct vrio_conn *c, const struct vrio_frame *f,
			 const struct iovec *iov, int iovcnt);
	/* Number of frames delivered (0 if none), or -errno: -ECONNRESET when
	 * the peer closed, the callback's error, or -EBADMSG & co for garbage.
	 * Fewer than `budget` means no whole frame is left buffered, so the
	 * owner may sleep on conn_fd(). */
	int (*poll)(struct vrio_conn *c, vrio_recv_cb cb, void *arg, unsigned budget);
	void (*close)(struct vrio_conn *c);
	void (*listener_close)(struct vrio_listener *l);

	/* Optional: a file descriptor that becomes readable when poll() may
	 * have work, so an idle owner can sleep; -1 or NULL if the backend can
	 * only be polled. */
	int (*conn_fd)(struct vrio_conn *c);
	int (*listener_fd)(struct vrio_listener *l);
	/* Optional: the owner found no work and is about to sleep on
	 * conn_fd(). A backend whose peer rings a doorbell only when asked
	 * (shm) asks for one here, never while its owner polls, so that two
	 * polling sides make no system call per frame. 1 if frames arrived
	 * meanwhile (poll again rather than sleep), 0, or -errno. Without it
	 * the descriptor fires on its own (a socket). */
	int (*sleep_prepare)(struct vrio_conn *c);
	/* Optional: 1 if send() queued bytes that flush() has not pushed. */
	int (*pending)(struct vrio_conn *c);
	/* Optional: milliseconds until poll() must run again whether or not
	 * conn_fd() fires (a retransmission timer, a delayed frame); -1 for
	 * none. An owner caps its sleep with it. */
	int (*timeout_ms)(struct vrio_conn *c);
	/* Optional: frames send() took that the peer has not acknowledged
	 * (the reliable layer's window and queue): at close, what is lost
	 * with the connection, but for any whose acknowledgement was on its
	 * way. A layer without it passes the question down. */
	unsigned (*unacked)(struct vrio_conn *c);
	/* Optional: process-wide set-up for this node, before its first
	 * listen() or connect() (the dpdk backend starts the EAL and opens its
	 * port); teardown() undoes it once the node's connections and listener
	 * are closed. Calls nest. */
	int (*setup)(const struct vrio_transport_node *self);
	void (*teardown)(void);
};

/* The registry: one place decides which backends are compiled in. */
const struct vrio_transport_ops *vrio_transport_find(const char *name);
int vrio_transport_register(const struct vrio_transport_ops *ops);

/* Pack a control message into a CTRL frame and queue it (control path:
 * may allocate). Returns 0 or -errno as send(). */
struct Vrio__Ctrl;
int vrio_conn_send_ctrl(struct vrio_conn *c, const struct Vrio__Ctrl *m);

/*
 * A connection stack: the backend a topology names, with the fault wrapper
 * and the reliable layer stacked on it when the topology (or VRIO_FAULTS in
 * the environment) asks for faults: reliable(fault(backend)). Both daemons
 * must agree, since the reliable layer changes what is on the wire.
 */
struct vrio_topo_ioserver;
struct vrio_faults {
	bool enabled;
	uint64_t seed;
	double drop, duplicate, reorder;
	unsigned delay_us;
	uint64_t disconnect_after;
};

struct vrio_tls_ctx;
struct vrio_stack {
	const struct vrio_transport_ops *base;
	/* TLS (tls.h) directly over the backend, under the other layers;
	 * NULL: none. Set by the owner with vrio_stack_tls(). */
	struct vrio_tls_ctx *tls;
	struct vrio_faults faults;
	bool reliable;
	uint64_t nconns;	/* gives each connection its own fault stream */
	bool set_up;		/* vrio_stack_setup() succeeded */
};

int vrio_stack_init(struct vrio_stack *s, const struct vrio_topo_ioserver *ios);
/* Stack the layers over a backend connection (closed on error). */
int vrio_stack_wrap(struct vrio_stack *s, struct vrio_conn *inner, struct vrio_conn **out);
/* The backend's connect() (cancel_fd as there), then the layers. Safe on
 * any thread: the owner's other calls do not change the stack. */
int vrio_stack_connect(struct vrio_stack *s, const char *addr, int cancel_fd,
		       struct vrio_conn **out);
/* dst: src's backend, faults and reliable layer without its TLS, for a
 * node that dials with a TLS client side of its own (vrio_stack_tls) from
 * the stack its listener serves with. Nothing is set up (the backend's
 * setup() stays src's). */
void vrio_stack_plain(struct vrio_stack *dst, const struct vrio_stack *src);
/* Put TLS over every connection of this stack (taken over; freed by
 * vrio_stack_fini()). */
void vrio_stack_tls(struct vrio_stack *s, struct vrio_tls_ctx *tls);
void vrio_stack_fini(struct vrio_stack *s);
/* The backend's process-wide setup() and teardown(), where it has them. */
int vrio_stack_setup(struct vrio_stack *s, const struct vrio_transport_node *self);
void vrio_stack_teardown(struct vrio_stack *s);

/* The layers, for tests. Each takes ownership of inner. */
int vrio_fault_wrap(struct vrio_conn *inner, const struct vrio_faults *f, uint64_t stream,
		    struct vrio_conn **out);
int vrio_reliable_wrap(struct vrio_conn *inner, struct vrio_conn **out);
/* "drop=0.05,duplicate=0.01,reorder=0.02,delay_us=100,seed=7,disconnect_after=N" */
int vrio_faults_parse(const char *spec, struct vrio_faults *f);

/* True when the connection holds output of its own (a layer's ack or
 * retransmission, bytes the peer has not taken): flush() even if the owner
 * queued nothing this round. */
/*
 * Connection counters for a metrics thread. The connection's owner calls
 * publish() after each flush and before close: it sums the stack's layers,
 * adds what changed since `last` to `pub` (relaxed atomic stores: one
 * writer) and copies the round-trip time; `last` starts zeroed with each
 * new connection. A metrics
 * thread reads `pub` only: emit() writes one family per counter, named
 * PREFIX_<counter>, with a sample for each k < n labelled LABEL="<name>",
 * where fill() returns the name and sums (vrio_conn_stats_sum) the k-th
 * set of counters into *st.
 */
struct vrio_mw;
void vrio_conn_stats_publish(struct vrio_conn_stats *pub, struct vrio_conn_stats *last,
			     const struct vrio_conn *c);
/* At close: the round-trip time of a connection that is gone means nothing. */
void vrio_conn_stats_retire(struct vrio_conn_stats *pub);
/* Reads a published set into `out`, adding to what `out` holds. */
void vrio_conn_stats_sum(struct vrio_conn_stats *out, const struct vrio_conn_stats *pub);
typedef const char *(*vrio_conn_stats_fill_fn)(const void *arg, unsigned k, struct vrio_conn_stats *st);
void vrio_conn_stats_emit(struct vrio_mw *w, const char *prefix, const char *label, unsigned n,
			  vrio_conn_stats_fill_fn fill, const void *arg);

static inline int vrio_conn_send_lent(struct vrio_conn *c, const struct vrio_frame *f,
				      const struct iovec *iov, int iovcnt)
{
	return c->ops->send_lent ? c->ops->send_lent(c, f, iov, iovcnt) :
				   c->ops->send(c, f, iov, iovcnt);
}

static inline bool vrio_conn_pending(struct vrio_conn *c)
{
	return c->ops->pending && c->ops->pending(c);
}

static inline int vrio_conn_sleep_prepare(struct vrio_conn *c)
{
	return c->ops->sleep_prepare ? c->ops->sleep_prepare(c) : 0;
}

static inline int vrio_conn_timeout_ms(struct vrio_conn *c)
{
	return c->ops->timeout_ms ? c->ops->timeout_ms(c) : -1;
}

/* The unacked() of the top layer that can tell; -EOPNOTSUPP if none can
 * (a tcp stack: what the kernel's buffers held is not known in frames). */
static inline int vrio_conn_unacked(struct vrio_conn *c)
{
	for (; c; c = c->inner)
		if (c->ops->unacked)
			return (int)c->ops->unacked(c);
	return -EOPNOTSUPP;
}

static inline int vrio_conn_fd(struct vrio_conn *c)
{
	return c->ops->conn_fd ? c->ops->conn_fd(c) : -1;
}

#endif

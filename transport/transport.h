/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The transport interface: connection-oriented, reliable, ordered per
 * connection, message based. A message is one frame (proto/frame.h).
 *
 * Data path contract:
 *  - send() queues one frame (header + payload gathered from iov); the
 *    transport may copy. Nothing is on the wire before flush() or the next
 *    poll(). Batch sends, then flush once.
 *  - poll() delivers up to `budget` received frames to the callback. The
 *    payload pointer is lent for the duration of the callback only. A
 *    callback returning a negative errno means "this peer sent garbage":
 *    poll() stops and returns that error; the owner closes the connection.
 *  - Every call is made by the connection's single owner thread.
 */
#ifndef VRIO_TRANSPORT_H
#define VRIO_TRANSPORT_H

#include <stdint.h>
#include <sys/uio.h>

#include "frame.h"

struct vrio_conn;
struct vrio_listener;

typedef int (*vrio_recv_cb)(void *arg, struct vrio_conn *c, const struct vrio_frame *f,
			    const void *payload);

struct vrio_conn_stats {
	uint64_t frames_tx, frames_rx;
	uint64_t bytes_tx, bytes_rx;
};

/* Base object; each backend embeds it first. */
struct vrio_conn {
	const struct vrio_transport_ops *ops;
	char name[64];			/* peer address, for logs */
	struct vrio_conn_stats stats;
	void *owner;			/* free for the owner's use */
};

struct vrio_listener {
	const struct vrio_transport_ops *ops;
	char name[64];
};

struct vrio_transport_ops {
	const char *name;

	/* Mandatory. addr is backend specific ("host:port" for tcp). */
	int (*listen)(const char *addr, struct vrio_listener **out);
	/* -EAGAIN when no connection is pending. */
	int (*accept)(struct vrio_listener *l, struct vrio_conn **out);
	/* Blocks at most until the connection is up or refused. */
	int (*connect)(const char *addr, struct vrio_conn **out);
	/* 0, -ENOBUFS if the send queue is full (flush and retry), or -errno
	 * if the connection is dead. */
	int (*send)(struct vrio_conn *c, const struct vrio_frame *f, const struct iovec *iov,
		    int iovcnt);
	/* 0 when all queued bytes left, 1 if some remain, or -errno. */
	int (*flush)(struct vrio_conn *c);
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
	/* Optional: 1 if send() queued bytes that flush() has not pushed. */
	int (*pending)(struct vrio_conn *c);
};

/* The registry: one place decides which backends are compiled in. */
const struct vrio_transport_ops *vrio_transport_find(const char *name);
int vrio_transport_register(const struct vrio_transport_ops *ops);

/* Pack a control message into a CTRL frame and queue it (control path:
 * may allocate). Returns 0 or -errno as send(). */
struct Vrio__Ctrl;
int vrio_conn_send_ctrl(struct vrio_conn *c, const struct Vrio__Ctrl *m);

static inline int vrio_conn_fd(struct vrio_conn *c)
{
	return c->ops->conn_fd ? c->ops->conn_fd(c) : -1;
}

#endif

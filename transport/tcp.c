/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * TCP backend: one non-blocking kernel socket per connection. Frames are
 * gathered into a send buffer and pushed with one send() per flush; received
 * bytes land in a linear buffer that always holds at least one whole frame,
 * so payloads are lent to the callback in place (stream.h).
 *
 * send_lent() copies only the header (and payloads too short to be worth an
 * iovec) into the send buffer and keeps a lent payload as a pointer, so the
 * bytes are copied once, by the kernel; a flush with lent payloads queued
 * is one sendmsg() over the buffer's bytes and the lent ones in order. The
 * queue of lent payloads has a fixed size: when full, send_lent() says
 * -ENOBUFS (flush and retry), as a full buffer does.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "addr.h"
#include "log.h"
#include "stream.h"
#include "transport_internal.h"

#define TCP_RBUF_INIT	(256u << 10)
#define TCP_RBUF_MAX	(VRIO_FRAME_HDR_LEN + VRIO_FRAME_MAX_PAYLOAD)
#define TCP_SBUF_INIT	(256u << 10)
/* Beyond this much unsent data the peer is not reading: push back. */
#define TCP_SBUF_MAX	(64u << 20)
#define TCP_CONNECT_TIMEOUT_MS 3000
/* Lent payloads queued at most; a flush's iovecs (two a payload, and the
 * buffer's last bytes) stay within IOV_MAX (1024). */
#define TCP_LENT_MAX	500u
/* A shorter payload is copied: an iovec costs the kernel more than that. */
#define TCP_LENT_MIN	512u

/* A lent payload: `before` bytes of the send buffer go out ahead of it
 * (what was queued between the previous lent payload and this one). */
struct tcp_lent {
	size_t before;
	const uint8_t *p;
	size_t len;
};

struct tcp_conn {
	struct vrio_conn base;
	int fd;
	struct vrio_rbuf rx;
	struct vrio_sbuf tx;
	struct tcp_lent *lent;		/* [TCP_LENT_MAX]; unsent: [lent_head, nlent) */
	unsigned lent_head, nlent;
	size_t lent_before;		/* sum of the unsent ones' `before` */
};

struct tcp_listener {
	struct vrio_listener base;
	int fd;
};

static struct tcp_conn *to_tcp(struct vrio_conn *c)
{
	return container_of(c, struct tcp_conn, base);
}

static struct tcp_listener *to_tcpl(struct vrio_listener *l)
{
	return container_of(l, struct tcp_listener, base);
}

static void sockaddr_name(const struct sockaddr_storage *ss, char *buf, size_t len)
{
	char host[64] = "?";
	unsigned port = 0;

	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *in = (const void *)ss;
		inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
		port = ntohs(in->sin_port);
		snprintf(buf, len, "%s:%u", host, port);
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const void *)ss;
		inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
		port = ntohs(in6->sin6_port);
		snprintf(buf, len, "[%s]:%u", host, port);
	} else {
		snprintf(buf, len, "?");
	}
}

static int tcp_conn_new(int fd, const struct sockaddr_storage *peer, struct vrio_conn **out);

static int tcp_listen(const char *addr, struct vrio_listener **out)
{
	struct sockaddr_storage ss;
	struct tcp_listener *l;
	socklen_t sslen;
	int fd, one = 1, rc;

	rc = vrio_parse_hostport(addr, &ss, &sslen);
	if (rc < 0) {
		VRIO_ERR("tcp %s: not a host:port address", addr);
		return rc;
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, sslen) < 0 || listen(fd, 64) < 0) {
		rc = -errno;
		VRIO_ERR("tcp %s: cannot listen: %s", addr, strerror(-rc));
		close(fd);
		return rc;
	}
	l = calloc(1, sizeof(*l));
	if (!l) {
		close(fd);
		return -ENOMEM;
	}
	l->base.ops = &vrio_tcp_transport;
	snprintf(l->base.name, sizeof(l->base.name), "%s", addr);
	l->fd = fd;
	*out = &l->base;
	return 0;
}

static int tcp_accept(struct vrio_listener *vl, struct vrio_conn **out)
{
	struct tcp_listener *l = to_tcpl(vl);
	struct sockaddr_storage peer;
	socklen_t plen = sizeof(peer);
	int fd, rc;

	fd = accept4(l->fd, (struct sockaddr *)&peer, &plen, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0)
		return (errno == EWOULDBLOCK || errno == EINTR) ? -EAGAIN : -errno;
	rc = tcp_conn_new(fd, &peer, out);
	if (rc < 0)
		close(fd);
	return rc;
}

static int tcp_connect(const char *addr, int cancel_fd, struct vrio_conn **out)
{
	struct sockaddr_storage ss;
	socklen_t sslen, elen;
	int fd, rc, err = 0;

	rc = vrio_parse_hostport(addr, &ss, &sslen);
	if (rc < 0)
		return rc;
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&ss, sslen) < 0) {
		if (errno != EINPROGRESS) {
			rc = -errno;
			goto err;
		}
		/* A peer that drops our SYNs: the whole timeout, or until
		 * the caller gives up. */
		rc = vrio_connect_wait(fd, POLLOUT, cancel_fd, TCP_CONNECT_TIMEOUT_MS);
		if (rc <= 0) {
			rc = rc == 0 ? -ETIMEDOUT : rc;
			goto err;
		}
		elen = sizeof(err);
		getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen);
		if (err) {
			rc = -err;
			goto err;
		}
	}
	rc = tcp_conn_new(fd, &ss, out);
	if (rc < 0)
		goto err;
	return 0;
err:
	close(fd);
	return rc;
}

static int tcp_conn_new(int fd, const struct sockaddr_storage *peer, struct vrio_conn **out)
{
	struct tcp_conn *c;
	int one = 1;

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->lent = calloc(TCP_LENT_MAX, sizeof(*c->lent));
	if (!c->lent || vrio_rbuf_init(&c->rx, TCP_RBUF_INIT) < 0 ||
	    vrio_sbuf_init(&c->tx, TCP_SBUF_INIT, TCP_SBUF_MAX) < 0) {
		vrio_rbuf_fini(&c->rx);
		vrio_sbuf_fini(&c->tx);
		free(c->lent);
		free(c);
		return -ENOMEM;
	}
	c->base.ops = &vrio_tcp_transport;
	sockaddr_name(peer, c->base.name, sizeof(c->base.name));
	c->fd = fd;
	*out = &c->base;
	return 0;
}

static int tcp_send(struct vrio_conn *vc, const struct vrio_frame *f, const struct iovec *iov,
		    int iovcnt)
{
	struct tcp_conn *c = to_tcp(vc);

	if (c->fd < 0)
		return -ENOTCONN;
	return vrio_sbuf_put_frame(&c->tx, vc, f, iov, iovcnt);
}

/* The header and short payloads go into the buffer, long ones are lent:
 * checked whole first, so that a refusal leaves nothing queued. */
static int tcp_send_lent(struct vrio_conn *vc, const struct vrio_frame *f,
			 const struct iovec *iov, int iovcnt)
{
	struct tcp_conn *c = to_tcp(vc);
	struct vrio_sbuf *s = &c->tx;
	size_t total = 0, copied = 0;
	unsigned lend = 0;
	struct tcp_lent *l;
	int i, rc;

	if (c->fd < 0)
		return -ENOTCONN;
	for (i = 0; i < iovcnt; i++) {
		if (iov[i].iov_len > VRIO_FRAME_MAX_PAYLOAD - total)
			return -EINVAL;
		total += iov[i].iov_len;
		if (iov[i].iov_len >= TCP_LENT_MIN)
			lend++;
		else
			copied += iov[i].iov_len;
	}
	if (total != f->len)
		return -EINVAL;
	if (!lend)
		return vrio_sbuf_put_frame(s, vc, f, iov, iovcnt);
	if (c->nlent + lend > TCP_LENT_MAX)
		return -ENOBUFS;
	rc = vrio_sbuf_reserve(s, VRIO_FRAME_HDR_LEN + copied);
	if (rc < 0)
		return rc;
	vrio_frame_encode(f, s->buf + s->tail);
	vrio_sbuf_commit(s, VRIO_FRAME_HDR_LEN);
	for (i = 0; i < iovcnt; i++) {
		if (iov[i].iov_len < TCP_LENT_MIN) {
			memcpy(s->buf + s->tail, iov[i].iov_base, iov[i].iov_len);
			vrio_sbuf_commit(s, iov[i].iov_len);
			continue;
		}
		l = &c->lent[c->nlent++];
		l->before = s->tail - s->head - c->lent_before;
		l->p = iov[i].iov_base;
		l->len = iov[i].iov_len;
		c->lent_before += l->before;
	}
	vc->stats.frames_tx++;
	vc->stats.bytes_tx += VRIO_FRAME_HDR_LEN + total;
	return 0;
}

/* n bytes left: off the front of the buffer and the lent payloads, in
 * their order. */
static void tcp_lent_consume(struct tcp_conn *c, size_t n)
{
	struct vrio_sbuf *s = &c->tx;
	struct tcp_lent *l;
	size_t k;

	while (n && c->lent_head < c->nlent) {
		l = &c->lent[c->lent_head];
		k = n < l->before ? n : l->before;
		s->head += k;
		l->before -= k;
		c->lent_before -= k;
		n -= k;
		if (l->before)
			return;
		k = n < l->len ? n : l->len;
		l->p += k;
		l->len -= k;
		n -= k;
		if (l->len)
			return;
		c->lent_head++;
	}
	s->head += n;
}

/* The buffer's bytes and the lent payloads, in order, with sendmsg(): as
 * vrio_sbuf_push(), 0 once all left, 1 if the socket takes no more. */
static int tcp_lent_push(struct tcp_conn *c)
{
	struct iovec iov[2 * TCP_LENT_MAX + 1];
	struct vrio_sbuf *s = &c->tx;
	struct msghdr mh = { .msg_iov = iov };
	const uint8_t *q;
	unsigned i, n;
	ssize_t w;

	while (c->lent_head < c->nlent) {
		q = s->buf + s->head;
		n = 0;
		for (i = c->lent_head; i < c->nlent; i++) {
			if (c->lent[i].before) {
				iov[n++] = (struct iovec){ (void *)q, c->lent[i].before };
				q += c->lent[i].before;
			}
			iov[n++] = (struct iovec){ (void *)c->lent[i].p, c->lent[i].len };
		}
		if (q < s->buf + s->tail)
			iov[n++] = (struct iovec){ (void *)q, (size_t)(s->buf + s->tail - q) };
		mh.msg_iovlen = n;
		w = sendmsg(c->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 1;
		if (w < 0)
			return -errno;
		tcp_lent_consume(c, (size_t)w);
	}
	c->lent_head = c->nlent = 0;
	c->lent_before = 0;
	return vrio_sbuf_push(s, vrio_stream_fd_write, &c->fd);
}

static int tcp_flush(struct vrio_conn *vc)
{
	struct tcp_conn *c = to_tcp(vc);

	if (c->fd < 0)
		return -ENOTCONN;
	if (c->nlent)
		return tcp_lent_push(c);
	return vrio_sbuf_push(&c->tx, vrio_stream_fd_write, &c->fd);
}

static int tcp_pending(struct vrio_conn *vc)
{
	struct tcp_conn *c = to_tcp(vc);

	return c->lent_head < c->nlent || vrio_sbuf_pending(&c->tx);
}

static int tcp_poll(struct vrio_conn *vc, vrio_recv_cb cb, void *arg, unsigned budget)
{
	struct tcp_conn *c = to_tcp(vc);
	unsigned done = 0;
	bool filled = false;
	int rc;

	if (c->fd < 0)
		return -ENOTCONN;
	for (;;) {
		rc = vrio_rbuf_deliver(&c->rx, vc, cb, arg, budget - done);
		if (rc < 0)
			return rc;
		done += (unsigned)rc;
		/* One read per poll: stop once the socket ran dry. */
		if (done == budget || filled)
			break;
		rc = vrio_rbuf_fill(&c->rx, vc, vrio_stream_fd_read, &c->fd);
		if (rc < 0)
			return rc;
		if (rc == 0)
			break;
		filled = true;
	}
	return (int)done;
}

static int tcp_conn_fd(struct vrio_conn *vc)
{
	return to_tcp(vc)->fd;
}

static int tcp_listener_fd(struct vrio_listener *vl)
{
	return to_tcpl(vl)->fd;
}

static void tcp_close(struct vrio_conn *vc)
{
	struct tcp_conn *c;

	if (!vc)
		return;
	c = to_tcp(vc);
	if (c->fd >= 0)
		close(c->fd);
	vrio_rbuf_fini(&c->rx);
	vrio_sbuf_fini(&c->tx);
	free(c->lent);
	free(c);
}

static void tcp_listener_close(struct vrio_listener *vl)
{
	struct tcp_listener *l;

	if (!vl)
		return;
	l = to_tcpl(vl);
	close(l->fd);
	free(l);
}

const struct vrio_transport_ops vrio_tcp_transport = {
	.name = "tcp",
	.listen = tcp_listen,
	.accept = tcp_accept,
	.connect = tcp_connect,
	.send = tcp_send,
	.send_lent = tcp_send_lent,
	.flush = tcp_flush,
	.poll = tcp_poll,
	.close = tcp_close,
	.listener_close = tcp_listener_close,
	.conn_fd = tcp_conn_fd,
	.listener_fd = tcp_listener_fd,
	.pending = tcp_pending,
};

/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * TCP backend: one non-blocking kernel socket per connection. Frames are
 * gathered into a send buffer and pushed with one send() per flush; received
 * bytes land in a linear buffer that always holds at least one whole frame,
 * so payloads are lent to the callback in place (stream.h).
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


struct tcp_conn {
	struct vrio_conn base;
	int fd;
	struct vrio_rbuf rx;
	struct vrio_sbuf tx;
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

static int tcp_connect(const char *addr, struct vrio_conn **out)
{
	struct sockaddr_storage ss;
	socklen_t sslen, elen;
	struct pollfd pfd;
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
		pfd.fd = fd;
		pfd.events = POLLOUT;
		rc = poll(&pfd, 1, TCP_CONNECT_TIMEOUT_MS);
		if (rc <= 0) {
			rc = rc == 0 ? -ETIMEDOUT : -errno;
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
	if (vrio_rbuf_init(&c->rx, TCP_RBUF_INIT) < 0 ||
	    vrio_sbuf_init(&c->tx, TCP_SBUF_INIT, TCP_SBUF_MAX) < 0) {
		vrio_rbuf_fini(&c->rx);
		vrio_sbuf_fini(&c->tx);
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

static int tcp_flush(struct vrio_conn *vc)
{
	struct tcp_conn *c = to_tcp(vc);

	if (c->fd < 0)
		return -ENOTCONN;
	return vrio_sbuf_push(&c->tx, vrio_stream_fd_write, &c->fd);
}

static int tcp_pending(struct vrio_conn *vc)
{
	return vrio_sbuf_pending(&to_tcp(vc)->tx);
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
	.flush = tcp_flush,
	.poll = tcp_poll,
	.close = tcp_close,
	.listener_close = tcp_listener_close,
	.conn_fd = tcp_conn_fd,
	.listener_fd = tcp_listener_fd,
	.pending = tcp_pending,
};

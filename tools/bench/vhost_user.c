// SPDX-License-Identifier: BSD-3-Clause
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "bench.h"
#include "vhost_user.h"

#define VU_VERSION 0x1u
#define VU_FLAG_REPLY 0x4u
#define VU_FLAG_NEED_REPLY 0x8u
#define VU_VERSION_MASK 0x3u

#define VU_VRING_NOFD (1ull << 8)
#define VU_MAX_FDS VU_MAX_REGIONS

struct vu_hdr {
	uint32_t request;
	uint32_t flags;
	uint32_t size;
};

struct vu_vring_state {
	uint32_t index;
	uint32_t num;
};

struct vu_vring_addr {
	uint32_t index;
	uint32_t flags;
	uint64_t desc;
	uint64_t used;
	uint64_t avail;
	uint64_t log;
};

struct vu_mem_table {
	uint32_t nregions;
	uint32_t padding;
	struct vu_mem_region regions[VU_MAX_REGIONS];
};

struct vu_config {
	uint32_t offset;
	uint32_t size;
	uint32_t flags;
	uint8_t payload[VU_MAX_CONFIG];
};

_Static_assert(sizeof(struct vu_hdr) == 12, "vhost-user header is 12 bytes");
_Static_assert(sizeof(struct vu_vring_addr) == 40, "vring address payload");
_Static_assert(sizeof(struct vu_mem_region) == 32, "memory region payload");
_Static_assert(sizeof(struct vu_iotlb) == 32, "IOTLB message payload");
_Static_assert(sizeof(struct vu_inflight) == 24, "inflight payload, as QEMU and rte_vhost lay it out");

/* Which requests carry a reply of their own (the rest may ask for an ack). */
static const struct vu_request_info {
	const char *name;
	bool reply;
} vu_requests[VU_REQUEST_MAX] = {
	[VU_GET_FEATURES] = { "GET_FEATURES", true },
	[VU_SET_FEATURES] = { "SET_FEATURES", false },
	[VU_SET_OWNER] = { "SET_OWNER", false },
	[VU_RESET_OWNER] = { "RESET_OWNER", false },
	[VU_SET_MEM_TABLE] = { "SET_MEM_TABLE", false },
	[VU_SET_LOG_BASE] = { "SET_LOG_BASE", true },
	[VU_SET_LOG_FD] = { "SET_LOG_FD", false },
	[VU_SET_VRING_NUM] = { "SET_VRING_NUM", false },
	[VU_SET_VRING_ADDR] = { "SET_VRING_ADDR", false },
	[VU_SET_VRING_BASE] = { "SET_VRING_BASE", false },
	[VU_GET_VRING_BASE] = { "GET_VRING_BASE", true },
	[VU_SET_VRING_KICK] = { "SET_VRING_KICK", false },
	[VU_SET_VRING_CALL] = { "SET_VRING_CALL", false },
	[VU_SET_VRING_ERR] = { "SET_VRING_ERR", false },
	[VU_GET_PROTOCOL_FEATURES] = { "GET_PROTOCOL_FEATURES", true },
	[VU_SET_PROTOCOL_FEATURES] = { "SET_PROTOCOL_FEATURES", false },
	[VU_GET_QUEUE_NUM] = { "GET_QUEUE_NUM", true },
	[VU_SET_VRING_ENABLE] = { "SET_VRING_ENABLE", false },
	[VU_SET_SLAVE_REQ_FD] = { "SET_SLAVE_REQ_FD", false },
	[VU_IOTLB_MSG] = { "IOTLB_MSG", false },
	[VU_GET_CONFIG] = { "GET_CONFIG", true },
	[VU_SET_CONFIG] = { "SET_CONFIG", false },
	[VU_GET_INFLIGHT_FD] = { "GET_INFLIGHT_FD", true },
	[VU_SET_INFLIGHT_FD] = { "SET_INFLIGHT_FD", false },
};

const char *vu_request_name(uint32_t req)
{
	if (req < VU_REQUEST_MAX && vu_requests[req].name)
		return vu_requests[req].name;
	return "UNKNOWN";
}

int vu_connect(struct vu_conn *c, const char *path, int timeout_ms)
{
	int ret = vu_try_connect(c, path, timeout_ms);

	if (ret == -ECONNREFUSED || ret == -ENOENT)
		bench_err("%s: connect: %s", path, strerror(-ret));
	return ret;
}

int vu_try_connect(struct vu_conn *c, const char *path, int timeout_ms)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int ret;

	c->fd = -1;
	c->timeout_ms = timeout_ms;
	c->reply_ack = false;
	c->closed = false;

	if (strlen(path) >= sizeof(sun.sun_path)) {
		bench_err("%s: socket path too long", path);
		return -ENAMETOOLONG;
	}
	strcpy(sun.sun_path, path);

	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		ret = -errno;
		bench_err("socket: %m");
		return ret;
	}
	if (connect(c->fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		ret = -errno;
		/* Nobody there (yet): the caller says whether that is an error. */
		if (ret != -ECONNREFUSED && ret != -ENOENT)
			bench_err("%s: connect: %m", path);
		close(c->fd);
		c->fd = -1;
		return ret;
	}
	return 0;
}

void vu_close(struct vu_conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	c->closed = true;
}

static int vu_send(struct vu_conn *c, uint32_t req, uint32_t flags, const void *payload,
		   uint32_t size, const int *fds, unsigned int nfds)
{
	struct vu_hdr hdr = { .request = req, .flags = VU_VERSION | flags, .size = size };
	union {
		char buf[CMSG_SPACE(sizeof(int) * VU_MAX_FDS)];
		struct cmsghdr align;
	} ctl;
	struct iovec iov[2] = {
		{ .iov_base = &hdr, .iov_len = sizeof(hdr) },
		{ .iov_base = (void *)payload, .iov_len = size },
	};
	struct msghdr msg = { .msg_iov = iov, .msg_iovlen = size ? 2 : 1 };
	size_t total = sizeof(hdr) + size, done = 0;
	ssize_t n;

	if (nfds > VU_MAX_FDS)
		return -EINVAL;
	if (nfds) {
		struct cmsghdr *cmsg;

		memset(&ctl, 0, sizeof(ctl));
		msg.msg_control = ctl.buf;
		msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		cmsg = CMSG_FIRSTHDR(&msg);
		cmsg->cmsg_level = SOL_SOCKET;
		cmsg->cmsg_type = SCM_RIGHTS;
		cmsg->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(cmsg), fds, sizeof(int) * nfds);
	}

	while (done < total) {
		n = sendmsg(c->fd, &msg, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EPIPE || errno == ECONNRESET)
				c->closed = true;
			return -errno;
		}
		done += (size_t)n;
		/* Descriptors went with the first byte; the rest is plain data. */
		msg.msg_control = NULL;
		msg.msg_controllen = 0;
		while (n > 0 && msg.msg_iovlen) {
			size_t step = (size_t)n < msg.msg_iov->iov_len ? (size_t)n :
								 msg.msg_iov->iov_len;

			msg.msg_iov->iov_base = (char *)msg.msg_iov->iov_base + step;
			msg.msg_iov->iov_len -= step;
			n -= (ssize_t)step;
			if (msg.msg_iov->iov_len == 0) {
				msg.msg_iov++;
				msg.msg_iovlen--;
			}
		}
	}
	return 0;
}

/* Closes the descriptors a message carried but the first, which goes to
 * *keep if the caller wants one (-1 there if none came). */
static void vu_close_passed_fds(struct msghdr *msg, int *keep)
{
	struct cmsghdr *cmsg;

	for (cmsg = CMSG_FIRSTHDR(msg); cmsg; cmsg = CMSG_NXTHDR(msg, cmsg)) {
		size_t i, n;

		if (cmsg->cmsg_level != SOL_SOCKET || cmsg->cmsg_type != SCM_RIGHTS)
			continue;
		n = (cmsg->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (i = 0; i < n; i++) {
			int fd;

			memcpy(&fd, CMSG_DATA(cmsg) + i * sizeof(int), sizeof(fd));
			if (keep && *keep < 0)
				*keep = fd;
			else
				close(fd);
		}
	}
}

static int vu_recv_full(struct vu_conn *c, void *buf, size_t len, uint64_t deadline, int *fd)
{
	size_t done = 0;

	while (done < len) {
		union {
			char buf[CMSG_SPACE(sizeof(int) * VU_MAX_FDS)];
			struct cmsghdr align;
		} ctl;
		struct iovec iov = { .iov_base = (char *)buf + done, .iov_len = len - done };
		struct msghdr msg = {
			.msg_iov = &iov, .msg_iovlen = 1,
			.msg_control = ctl.buf, .msg_controllen = sizeof(ctl.buf),
		};
		struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
		uint64_t now = bench_now_ns();
		ssize_t n;
		int ret;

		if (now >= deadline)
			return -ETIMEDOUT;
		ret = poll(&pfd, 1, (int)((deadline - now + 999999) / 1000000));
		if (ret < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (ret == 0)
			return -ETIMEDOUT;

		n = recvmsg(c->fd, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			if (errno == ECONNRESET)
				c->closed = true;
			return -errno;
		}
		/* A backend has no reason to pass us descriptors on this
		 * channel but in the replies that carry one. */
		vu_close_passed_fds(&msg, fd);
		if (n == 0) {
			c->closed = true;
			return -ECONNRESET;
		}
		done += (size_t)n;
	}
	return 0;
}

static int vu_recv_reply(struct vu_conn *c, uint32_t req, void *payload, uint32_t max,
			 uint32_t *size, int *fd)
{
	uint64_t deadline = bench_now_ns() + (uint64_t)c->timeout_ms * 1000000ull;
	struct vu_hdr hdr;
	int ret;

	ret = vu_recv_full(c, &hdr, sizeof(hdr), deadline, fd);
	if (ret < 0)
		goto err;
	if (hdr.request != req || !(hdr.flags & VU_FLAG_REPLY) ||
	    (hdr.flags & VU_VERSION_MASK) != VU_VERSION) {
		bench_err("%s: unexpected reply header (request %u flags 0x%x)",
			  vu_request_name(req), hdr.request, hdr.flags);
		return -EPROTO;
	}
	if (hdr.size > max) {
		bench_err("%s: reply of %u bytes, at most %u expected", vu_request_name(req),
			  hdr.size, max);
		return -EPROTO;
	}
	ret = vu_recv_full(c, payload, hdr.size, deadline, fd);
	if (ret < 0)
		goto err;
	*size = hdr.size;
	return 0;

err:
	if (ret == -ETIMEDOUT)
		bench_err("%s: no reply within %d ms", vu_request_name(req), c->timeout_ms);
	else if (ret == -ECONNRESET)
		bench_err("%s: backend closed the connection", vu_request_name(req));
	else
		bench_err("%s: receive: %s", vu_request_name(req), strerror(-ret));
	return ret;
}

/*
 * One request and, if it has one, its reply. Requests without a reply of
 * their own ask for an ack when REPLY_ACK is negotiated, so that a failure
 * is seen at the request that caused it.
 */
static int vu_transact_fd(struct vu_conn *c, uint32_t req, const void *payload, uint32_t size,
			  const int *fds, unsigned int nfds, void *reply, uint32_t reply_max,
			  uint32_t *reply_size, int *reply_fd)
{
	bool has_reply = vu_requests[req].reply;
	uint32_t flags = 0, got;
	uint64_t ack;
	int ret;

	if (c->closed || c->fd < 0)
		return -ECONNRESET;
	if (!has_reply && c->reply_ack)
		flags |= VU_FLAG_NEED_REPLY;

	ret = vu_send(c, req, flags, payload, size, fds, nfds);
	if (ret < 0) {
		if (c->closed)
			bench_err("%s: backend closed the connection", vu_request_name(req));
		else
			bench_err("%s: send: %s", vu_request_name(req), strerror(-ret));
		return ret;
	}
	if (has_reply)
		return vu_recv_reply(c, req, reply, reply_max, reply_size, reply_fd);
	if (!(flags & VU_FLAG_NEED_REPLY))
		return 0;

	ret = vu_recv_reply(c, req, &ack, sizeof(ack), &got, NULL);
	if (ret < 0)
		return ret;
	if (got != sizeof(ack)) {
		bench_err("%s: ack of %u bytes", vu_request_name(req), got);
		return -EPROTO;
	}
	if (ack != 0) {
		bench_err("%s: backend reports failure (%llu)", vu_request_name(req),
			  (unsigned long long)ack);
		return -EIO;
	}
	return 0;
}

static int vu_transact(struct vu_conn *c, uint32_t req, const void *payload, uint32_t size,
		       const int *fds, unsigned int nfds, void *reply, uint32_t reply_max,
		       uint32_t *reply_size)
{
	return vu_transact_fd(c, req, payload, size, fds, nfds, reply, reply_max, reply_size,
			      NULL);
}

int vu_get_u64(struct vu_conn *c, enum vu_request req, uint64_t *val)
{
	uint32_t size;
	int ret;

	ret = vu_transact(c, req, NULL, 0, NULL, 0, val, sizeof(*val), &size);
	if (ret < 0)
		return ret;
	if (size != sizeof(*val)) {
		bench_err("%s: reply of %u bytes, 8 expected", vu_request_name(req), size);
		return -EPROTO;
	}
	return 0;
}

int vu_set_u64(struct vu_conn *c, enum vu_request req, uint64_t val)
{
	return vu_transact(c, req, &val, sizeof(val), NULL, 0, NULL, 0, NULL);
}

int vu_set_owner(struct vu_conn *c)
{
	return vu_transact(c, VU_SET_OWNER, NULL, 0, NULL, 0, NULL, 0, NULL);
}

int vu_set_mem_table(struct vu_conn *c, const struct vu_mem_region *regions, const int *fds,
		     unsigned int n)
{
	struct vu_mem_table t = { .nregions = n };

	if (n == 0 || n > VU_MAX_REGIONS)
		return -EINVAL;
	memcpy(t.regions, regions, n * sizeof(*regions));
	return vu_transact(c, VU_SET_MEM_TABLE, &t,
			   (uint32_t)(offsetof(struct vu_mem_table, regions) + n * sizeof(*regions)),
			   fds, n, NULL, 0, NULL);
}

int vu_set_vring_state(struct vu_conn *c, enum vu_request req, uint32_t index, uint32_t num)
{
	struct vu_vring_state s = { .index = index, .num = num };

	return vu_transact(c, req, &s, sizeof(s), NULL, 0, NULL, 0, NULL);
}

int vu_get_vring_base(struct vu_conn *c, uint32_t index, uint32_t *base)
{
	struct vu_vring_state s = { .index = index };
	uint32_t size;
	int ret;

	ret = vu_transact(c, VU_GET_VRING_BASE, &s, sizeof(s), NULL, 0, &s, sizeof(s), &size);
	if (ret < 0)
		return ret;
	if (size != sizeof(s) || s.index != index) {
		bench_err("GET_VRING_BASE: malformed reply for queue %u", index);
		return -EPROTO;
	}
	*base = s.num;
	return 0;
}

int vu_set_vring_addr(struct vu_conn *c, uint32_t index, uint64_t desc, uint64_t used,
		      uint64_t avail)
{
	struct vu_vring_addr a = {
		.index = index, .desc = desc, .used = used, .avail = avail,
	};

	return vu_transact(c, VU_SET_VRING_ADDR, &a, sizeof(a), NULL, 0, NULL, 0, NULL);
}

int vu_set_vring_fd(struct vu_conn *c, enum vu_request req, uint32_t index, int fd)
{
	uint64_t v = index & 0xff;

	if (fd < 0)
		v |= VU_VRING_NOFD;
	return vu_transact(c, req, &v, sizeof(v), fd >= 0 ? &fd : NULL, fd >= 0 ? 1 : 0,
			   NULL, 0, NULL);
}

int vu_get_config(struct vu_conn *c, uint32_t offset, void *buf, uint32_t size)
{
	struct vu_config cfg = { .offset = offset, .size = size };
	uint32_t len = (uint32_t)offsetof(struct vu_config, payload) + size, got;
	int ret;

	if (size > VU_MAX_CONFIG)
		return -EINVAL;
	ret = vu_transact(c, VU_GET_CONFIG, &cfg, len, NULL, 0, &cfg, sizeof(cfg), &got);
	if (ret < 0)
		return ret;
	/* A backend signals failure with a reply that carries no config. */
	if (got != len || cfg.size != size) {
		bench_err("GET_CONFIG: backend refused %u bytes at offset %u", size, offset);
		return -EIO;
	}
	memcpy(buf, cfg.payload, size);
	return 0;
}

int vu_get_inflight_fd(struct vu_conn *c, uint16_t nq, uint16_t qs, struct vu_inflight *inf,
		       int *fd)
{
	struct vu_inflight q = { .num_queues = nq, .queue_size = qs };
	uint32_t size;
	int ret;

	*fd = -1;
	ret = vu_transact_fd(c, VU_GET_INFLIGHT_FD, &q, sizeof(q), NULL, 0, inf, sizeof(*inf),
			     &size, fd);
	if (ret < 0)
		goto err;
	if (size != sizeof(*inf) || *fd < 0 || inf->mmap_size == 0) {
		bench_err("GET_INFLIGHT_FD: no region in the reply (%u bytes, %s descriptor)", size,
			  *fd < 0 ? "no" : "a");
		ret = -EPROTO;
		goto err;
	}
	return 0;
err:
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
	return ret;
}

int vu_set_inflight_fd(struct vu_conn *c, const struct vu_inflight *inf, int fd)
{
	return vu_transact(c, VU_SET_INFLIGHT_FD, inf, sizeof(*inf), &fd, 1, NULL, 0, NULL);
}

int vu_check_peer(struct vu_conn *c)
{
	char byte;
	ssize_t n;

	if (c->closed || c->fd < 0)
		return 1;
	n = recv(c->fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
	if (n == 0 || (n < 0 && errno == ECONNRESET)) {
		c->closed = true;
		return 1;
	}
	if (n > 0)
		return -EPROTO;
	return 0;
}

int vu_set_slave_fd(struct vu_conn *c, int fd)
{
	return vu_transact(c, VU_SET_SLAVE_REQ_FD, NULL, 0, &fd, 1, NULL, 0, NULL);
}

int vu_iotlb(struct vu_conn *c, uint8_t type, uint64_t iova, uint64_t size, uint64_t uaddr,
	     uint8_t perm)
{
	struct vu_iotlb m = { .iova = iova, .size = size, .uaddr = uaddr, .perm = perm,
			      .type = type };

	return vu_transact(c, VU_IOTLB_MSG, &m, sizeof(m), NULL, 0, NULL, 0, NULL);
}

int vu_backend_recv(int fd, struct vu_iotlb *m)
{
	struct {
		struct vu_hdr hdr;
		struct vu_iotlb iotlb;
	} __attribute__((packed)) msg;
	ssize_t n;

	n = recv(fd, &msg, sizeof(msg.hdr), MSG_DONTWAIT | MSG_PEEK);
	if (n < 0)
		return errno == EAGAIN ? 0 : -errno;
	if (n == 0)
		return -ECONNRESET;
	if ((size_t)n < sizeof(msg.hdr))
		return 0;	/* the rest of the header is on its way */
	if (msg.hdr.request != VU_BACKEND_IOTLB_MSG || msg.hdr.size != sizeof(msg.iotlb) ||
	    (msg.hdr.flags & VU_VERSION_MASK) != VU_VERSION)
		return -EPROTO;
	n = recv(fd, &msg, sizeof(msg), MSG_WAITALL);
	if (n != (ssize_t)sizeof(msg))
		return n < 0 ? -errno : -EPROTO;
	*m = msg.iotlb;
	/* Nothing the backend sends here waits for our answer but the update
	 * itself, which goes on the main channel. */
	return 1;
}

/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "addr.h"
#include "http.h"
#include "log.h"

#define HTTP_MAX_BYTES (64u << 20)

int vrio_remaining_ms(uint64_t deadline)
{
	uint64_t now = vrio_now_ns();

	return now >= deadline ? 0 : (int)((deadline - now) / 1000000 + 1);
}

int vrio_wait_fd(int fd, short events, uint64_t deadline)
{
	struct pollfd p = { .fd = fd, .events = events };

	for (;;) {
		int ms = vrio_remaining_ms(deadline);
		int n;

		if (ms == 0)
			return -ETIMEDOUT;
		n = poll(&p, 1, ms);
		if (n > 0)
			return 0;
		if (n == 0)
			return -ETIMEDOUT;
		if (errno != EINTR)
			return -errno;
	}
}

int vrio_send_all(int fd, const char *buf, size_t len, uint64_t deadline)
{
	while (len > 0) {
		ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN)
				return -errno;
			n = vrio_wait_fd(fd, POLLOUT, deadline);
			if (n < 0)
				return (int)n;
			continue;
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

static int http_connect(const char *addr, uint64_t deadline, int *out)
{
	struct sockaddr_storage ss;
	socklen_t sslen, len;
	int fd, ret, soerr;

	if (vrio_parse_hostport(addr, &ss, &sslen) < 0)
		return -EINVAL;
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&ss, sslen) < 0) {
		if (errno != EINPROGRESS) {
			ret = -errno;
			goto err;
		}
		ret = vrio_wait_fd(fd, POLLOUT, deadline);
		if (ret < 0)
			goto err;
		len = sizeof(soerr);
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0) {
			ret = -errno;
			goto err;
		}
		if (soerr) {
			ret = -soerr;
			goto err;
		}
	}
	*out = fd;
	return 0;
err:
	close(fd);
	return ret;
}

/* Read until the peer closes; the response ends with NUL for parsing. */
static int http_recv(int fd, char **out, size_t *outlen, uint64_t deadline)
{
	size_t len = 0, cap = 0;
	char *buf = NULL, *nbuf;
	int ret;

	for (;;) {
		ssize_t n;

		if (cap - len < 4096) {
			if (cap >= HTTP_MAX_BYTES) {
				ret = -EFBIG;
				goto err;
			}
			cap = cap ? cap * 2 : 65536;
			nbuf = realloc(buf, cap);
			if (!nbuf) {
				ret = -ENOMEM;
				goto err;
			}
			buf = nbuf;
		}
		n = recv(fd, buf + len, cap - len - 1, 0);
		if (n > 0) {
			len += (size_t)n;
			continue;
		}
		if (n == 0)
			break;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN) {
			ret = -errno;
			goto err;
		}
		ret = vrio_wait_fd(fd, POLLIN, deadline);
		if (ret < 0)
			goto err;
	}
	buf[len] = '\0';
	*out = buf;
	*outlen = len;
	return 0;
err:
	free(buf);
	return ret;
}

int vrio_http_get(const char *addr, const char *path, int timeout_ms, char **body, size_t *len,
		  char *err, size_t errlen)
{
	uint64_t deadline = vrio_now_ns() + (uint64_t)timeout_ms * 1000000;
	char req[512], *resp = NULL;
	const char *b, *eol;
	int fd = -1, n, ret, status;
	size_t rlen = 0;

	n = snprintf(req, sizeof(req),
		     "GET %s HTTP/1.0\r\nHost: %s\r\nAccept: text/plain\r\nUser-Agent: vrio\r\n\r\n",
		     path, addr);
	if (n < 0 || (size_t)n >= sizeof(req)) {
		snprintf(err, errlen, "'%s': address too long", addr);
		return -EINVAL;
	}
	ret = http_connect(addr, deadline, &fd);
	if (ret == -EINVAL) {
		snprintf(err, errlen, "'%s': expected HOST:PORT", addr);
		return ret;
	}
	if (ret < 0) {
		snprintf(err, errlen, "%s: connect: %s", addr, strerror(-ret));
		return ret;
	}
	ret = vrio_send_all(fd, req, (size_t)n, deadline);
	if (ret == 0)
		ret = http_recv(fd, &resp, &rlen, deadline);
	close(fd);
	if (ret == -ETIMEDOUT) {
		snprintf(err, errlen, "%s: no complete answer within %d ms", addr, timeout_ms);
		return ret;
	}
	if (ret < 0) {
		snprintf(err, errlen, "%s: %s", addr, strerror(-ret));
		return ret;
	}
	ret = -EPROTO;
	if (sscanf(resp, "HTTP/%*d.%*d %d", &status) != 1) {
		snprintf(err, errlen, "%s: not an HTTP response", addr);
		goto fail;
	}
	if (status != 200) {
		eol = strpbrk(resp, "\r\n");
		snprintf(err, errlen, "%s: the server answered '%.*s'", addr,
			 (int)(eol ? eol - resp : 80), resp);
		goto fail;
	}
	b = strstr(resp, "\r\n\r\n");
	if (!b) {
		snprintf(err, errlen, "%s: the response has no body", addr);
		goto fail;
	}
	b += 4;
	*len = rlen - (size_t)(b - resp);
	memmove(resp, b, *len + 1);
	*body = resp;
	return 0;
fail:
	free(resp);
	return ret;
}

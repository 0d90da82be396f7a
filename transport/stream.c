/* SPDX-License-Identifier: BSD-3-Clause */
/* Frames over a byte stream: the send and receive buffers (stream.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "stream.h"

int vrio_sbuf_init(struct vrio_sbuf *s, size_t cap, size_t max)
{
	memset(s, 0, sizeof(*s));
	s->buf = malloc(cap);
	if (!s->buf)
		return -ENOMEM;
	s->cap = cap;
	s->max = max;
	return 0;
}

void vrio_sbuf_fini(struct vrio_sbuf *s)
{
	free(s->buf);
	s->buf = NULL;
	s->cap = s->head = s->tail = 0;
}

int vrio_rbuf_init(struct vrio_rbuf *r, size_t cap)
{
	memset(r, 0, sizeof(*r));
	r->buf = malloc(cap);
	if (!r->buf)
		return -ENOMEM;
	r->cap = r->room = cap;
	r->want = VRIO_FRAME_HDR_LEN;
	return 0;
}

void vrio_rbuf_fini(struct vrio_rbuf *r)
{
	free(r->buf);
	r->buf = NULL;
	r->cap = r->head = r->tail = 0;
}

int vrio_sbuf_make_room(struct vrio_sbuf *s, size_t need)
{
	size_t used = s->tail - s->head, ncap;
	uint8_t *nb;

	if (s->head) {
		memmove(s->buf, s->buf + s->head, used);
		s->head = 0;
		s->tail = used;
		if (s->cap - s->tail >= need)
			return 0;
	}
	if (used + need > s->max)
		return -ENOBUFS;
	ncap = s->cap;
	while (ncap < used + need)
		ncap *= 2;
	nb = realloc(s->buf, ncap);
	if (!nb)
		return -ENOMEM;
	s->buf = nb;
	s->cap = ncap;
	return 0;
}

/* Less than `want` bytes from head to the end: move the unparsed bytes to
 * the front, and grow if that is not enough. */
int vrio_rbuf_make_room(struct vrio_rbuf *r, size_t want)
{
	uint8_t *nb;

	if (r->head) {
		memmove(r->buf, r->buf + r->head, r->tail - r->head);
		r->tail -= r->head;
		r->head = 0;
	}
	if (r->cap < want) {
		nb = realloc(r->buf, want);
		if (!nb)
			return -ENOMEM;
		r->buf = nb;
		r->cap = want;
	}
	return 0;
}

ssize_t vrio_stream_fd_write(void *arg, const void *buf, size_t len)
{
	int fd = *(const int *)arg;
	ssize_t n;

	for (;;) {
		n = send(fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n >= 0)
			return n;
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return 0;
		return -errno;
	}
}

ssize_t vrio_stream_fd_read(void *arg, void *buf, size_t len)
{
	int fd = *(const int *)arg;
	ssize_t n;

	for (;;) {
		n = recv(fd, buf, len, MSG_DONTWAIT);
		if (n > 0)
			return n;
		if (n == 0)
			return -ECONNRESET;
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return 0;
		return -errno;
	}
}

/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Frames over a byte stream (stream.c), for the backends and layers that
 * carry frames on one: tcp over its socket, tls through SSL. Private to
 * the transport library.
 *
 *  - A send buffer: send() appends whole frames (header and gathered
 *    payload), flush() pushes the unsent bytes through a write callback.
 *    It grows by doubling up to a limit, beyond which the peer is not
 *    reading: -ENOBUFS.
 *  - A receive buffer: linear, holding at least one whole frame once its
 *    header arrived, so payloads are lent to the receive callback in
 *    place. It is filled through a read callback and grows only for a
 *    frame larger than any before.
 *
 * Each owner decides when to read (tcp: one read per poll; tls: decrypt
 * what SSL holds, then one read of the socket); the framing is here.
 * Allocates only at init and when a buffer grows.
 */
#ifndef VRIO_TRANSPORT_STREAM_H
#define VRIO_TRANSPORT_STREAM_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "frame.h"
#include "transport.h"

/* Moves at most len bytes: the count (> 0), 0 if the other side cannot
 * take or give any now, or -errno (-ECONNRESET: the peer closed). */
typedef ssize_t (*vrio_stream_write_fn)(void *arg, const void *buf, size_t len);
typedef ssize_t (*vrio_stream_read_fn)(void *arg, void *buf, size_t len);

struct vrio_sbuf {
	uint8_t *buf;
	size_t cap, head, tail;	/* unsent bytes are buf[head, tail) */
	size_t max;		/* unsent bytes allowed at most */
};

struct vrio_rbuf {
	uint8_t *buf;
	size_t cap, head, tail;	/* unparsed bytes are buf[head, tail) */
	size_t room;		/* a fill offers at least this much space */
	size_t want;		/* bytes from head the next frame needs */
};

/* 0 or -ENOMEM. fini() frees, and may be called on a zeroed buffer. */
int vrio_sbuf_init(struct vrio_sbuf *s, size_t cap, size_t max);
void vrio_sbuf_fini(struct vrio_sbuf *s);
int vrio_rbuf_init(struct vrio_rbuf *r, size_t cap);
void vrio_rbuf_fini(struct vrio_rbuf *r);

/* The slow paths, out of line: reserve()'s move or growth, fill()'s. */
int vrio_sbuf_make_room(struct vrio_sbuf *s, size_t need);
int vrio_rbuf_make_room(struct vrio_rbuf *r, size_t want);

/*
 * The data path is inline: each frame costs what it cost when tcp.c held
 * these loops as its own statics, and a constant callback becomes a
 * direct call.
 */

/* Room for `need` more bytes at buf + tail: the unsent bytes moved to the
 * front, or the buffer grown. 0, -ENOBUFS past max, or -ENOMEM. */
static inline int vrio_sbuf_reserve(struct vrio_sbuf *s, size_t need)
{
	if (s->cap - s->tail >= need)
		return 0;
	return vrio_sbuf_make_room(s, need);
}

static inline void vrio_sbuf_commit(struct vrio_sbuf *s, size_t n)
{
	s->tail += n;
}

static inline bool vrio_sbuf_pending(const struct vrio_sbuf *s)
{
	return s->head < s->tail;
}

/* send(): one frame, its payload gathered from iov (f->len bytes in all,
 * at most VRIO_FRAME_MAX_PAYLOAD, else -EINVAL), counted in c's stats.
 * 0 or as reserve(). */
static inline int vrio_sbuf_put_frame(struct vrio_sbuf *s, struct vrio_conn *c,
				      const struct vrio_frame *f, const struct iovec *iov,
				      int iovcnt)
{
	size_t total = 0;
	uint8_t *p;
	int i, rc;

	for (i = 0; i < iovcnt; i++)
		total += iov[i].iov_len;
	if (total != f->len || total > VRIO_FRAME_MAX_PAYLOAD)
		return -EINVAL;
	rc = vrio_sbuf_reserve(s, VRIO_FRAME_HDR_LEN + total);
	if (rc < 0)
		return rc;
	p = s->buf + s->tail;
	vrio_frame_encode(f, p);
	p += VRIO_FRAME_HDR_LEN;
	for (i = 0; i < iovcnt; i++) {
		memcpy(p, iov[i].iov_base, iov[i].iov_len);
		p += iov[i].iov_len;
	}
	vrio_sbuf_commit(s, VRIO_FRAME_HDR_LEN + total);
	c->stats.frames_tx++;
	c->stats.bytes_tx += VRIO_FRAME_HDR_LEN + total;
	return 0;
}

/* Write the unsent bytes until none are left (0: the buffer is empty
 * again) or wr takes no more (1), or wr's -errno. */
static inline int vrio_sbuf_push(struct vrio_sbuf *s, vrio_stream_write_fn wr, void *arg)
{
	ssize_t n;

	while (s->head < s->tail) {
		n = wr(arg, s->buf + s->head, s->tail - s->head);
		if (n < 0)
			return (int)n;
		if (n == 0)
			return 1;
		s->head += (size_t)n;
	}
	s->head = s->tail = 0;
	return 0;
}

/* Lend each whole frame at head to cb, at most `budget` of them, counted
 * in c's stats: the number delivered, the callback's error (its frame is
 * consumed), or the header's decode error. Sets r->want for fill(). */
static inline int vrio_rbuf_deliver(struct vrio_rbuf *r, struct vrio_conn *c, vrio_recv_cb cb,
				    void *arg, unsigned budget)
{
	struct vrio_frame f;
	unsigned done = 0;
	size_t avail, want = VRIO_FRAME_HDR_LEN;
	int rc;

	while (done < budget) {
		avail = r->tail - r->head;
		want = VRIO_FRAME_HDR_LEN;
		if (avail < VRIO_FRAME_HDR_LEN)
			break;
		rc = vrio_frame_decode(r->buf + r->head, &f);
		if (rc < 0)
			return rc;
		want += f.len;
		if (avail < want)
			break;
		rc = cb(arg, c, &f, r->buf + r->head + VRIO_FRAME_HDR_LEN);
		r->head += want;
		c->stats.frames_rx++;
		if (rc < 0)
			return rc;
		done++;
	}
	r->want = want;
	return (int)done;
}

/* One call of rd into the space after tail, made at least max(r->want,
 * r->room) bytes from head, counted in c's bytes_rx: 1 if bytes came, 0 if
 * none, or -errno. */
static inline int vrio_rbuf_fill(struct vrio_rbuf *r, struct vrio_conn *c,
				 vrio_stream_read_fn rd, void *arg)
{
	size_t want = r->want > r->room ? r->want : r->room;
	ssize_t n;
	int rc;

	if (r->head == r->tail)
		r->head = r->tail = 0;
	if (r->cap - r->head < want) {
		rc = vrio_rbuf_make_room(r, want);
		if (rc < 0)
			return rc;
	}
	n = rd(arg, r->buf + r->tail, r->cap - r->tail);
	if (n <= 0)
		return (int)n;
	r->tail += (size_t)n;
	c->stats.bytes_rx += (uint64_t)n;
	return 1;
}

/* Callbacks over a non-blocking socket; arg points to its int fd. The
 * read treats the peer's close as -ECONNRESET. */
ssize_t vrio_stream_fd_write(void *arg, const void *buf, size_t len);
ssize_t vrio_stream_fd_read(void *arg, void *buf, size_t len);

#endif

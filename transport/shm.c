/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Shared-memory backend, for two processes on one machine (the "local
 * sidecore" baseline). The address is an absolute unix socket path.
 *
 * The connector creates a memfd sealed against shrinking that holds two
 * single-producer single-consumer rings, one per direction, and passes it
 * to the acceptor over a unix stream socket with a hello (magic, version,
 * ring sizes); the acceptor checks the file against the layout, maps it and
 * acknowledges. From then on the socket carries only doorbells: one byte
 * sent when the other side asked to be woken (it found its ring empty, or
 * this side's ring full), and the end of file when a process goes away. So
 * the socket is the connection's one pollable descriptor.
 *
 * The doorbell is the socket and not a pair of eventfds because each side
 * owns its end of a socket, and send()/recv() take MSG_DONTWAIT per call.
 * An eventfd passed to the peer is one open file shared by both processes:
 * the peer could clear its O_NONBLOCK and fill or empty its counter, and our
 * next write() or read() on it would block the polling thread.
 *
 * Everything in the mapping is the peer's to scribble on at any time. Each
 * side keeps its own copy of its ring positions, reads the peer's position
 * once and bounds it, copies a frame header out before checking it and never
 * lets an index leave the ring. A peer that breaks a rule loses the
 * connection (-EBADMSG), and nothing else.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"
#include "transport_internal.h"

#define SHM_MAGIC		0x48535256u	/* "VRSH" as LE bytes */
#define SHM_ACK_MAGIC		0x4b535256u	/* "VRSK" */
#define SHM_PAD_MAGIC		0x44415056u	/* "VPAD" */
#define SHM_VERSION		1
#define SHM_CACHELINE		64
#define SHM_CTL_LEN		4096u
#define SHM_ALIGN(x)		(((x) + 7u) & ~(uint64_t)7u)
/* A frame never wraps, so a ring holds two of the largest: one of them may
 * find the end of the ring too close and start over at offset 0. */
#define SHM_REC_MAX		SHM_ALIGN((uint64_t)VRIO_FRAME_HDR_LEN + VRIO_FRAME_MAX_PAYLOAD)
#define SHM_RING_MIN		(16ull << 20)
#define SHM_RING_MAX		(256ull << 20)
#define SHM_RING_DEFAULT	SHM_RING_MIN
#define SHM_HANDSHAKE_MS	3000
#define SHM_PENDING_MAX		16
/* Empty polls, once armed, between two looks at the socket for a peer that
 * died without saying so; a sleeping owner woken by the end of file spins
 * at most this many polls before it hears -ECONNRESET. */
#define SHM_LIVENESS_EVERY	64
/* Past this offset, a frame (of up to an eighth of it) goes to the start
 * of the ring instead if the consumer lags by at most a quarter of it: the frames in flight then
 * cycle through the ring's first part, which stays in the caches, rather
 * than through all of it (16 MiB and more), each line of which the copy
 * into it would fetch from memory. The skip is the pad that a frame too
 * long for the end of the ring takes, so the consumer sees nothing new.
 * Until the consumer passes the pad, what was not taken sits at the end
 * of that first part and the rest of it is free: at least 384 KiB. */
#define SHM_REWIND		(512ull << 10)

_Static_assert(SHM_RING_MIN >= 2 * SHM_REC_MAX, "a ring holds two maximal frames");

/*
 * The head of each ring, in the first pages of the memfd. Positions count
 * bytes ever written or consumed; the offset in the ring is pos % size.
 */
struct shm_ring_ctl {
	/* Written by the producer. */
	uint64_t head;		/* bytes published */
	uint64_t kicks;		/* doorbells the producer's side rang, for data in
				 * this ring or space in the other */
	uint32_t closed;	/* the producer closed the connection */
	/* Written by the consumer. */
	_Alignas(SHM_CACHELINE) uint64_t tail;	/* bytes consumed */
	/* Set by a consumer that found the ring empty; the producer that
	 * publishes next takes it and rings the doorbell. */
	_Alignas(SHM_CACHELINE) uint32_t need_wake;
	/* Set by a producer that found the ring full; the consumer that frees
	 * space next takes it and rings the doorbell. */
	_Alignas(SHM_CACHELINE) uint32_t want_space;
};

_Static_assert(sizeof(struct shm_ring_ctl) <= SHM_CTL_LEN, "ring head fits its page");

/*
 * The hello (connector -> acceptor, with the memfd) and its answer. They
 * stay on one machine, so they are in host byte order. The memfd holds ring
 * 0's head, ring 1's head (SHM_CTL_LEN each), then ring 0's data, then ring
 * 1's; ring 0 carries connector -> acceptor.
 */
struct shm_hello {
	uint32_t magic;
	uint16_t version;
	uint16_t flags;		/* none defined */
	uint64_t ring_size[2];
	uint64_t region_len;
};

struct shm_ack {
	uint32_t magic;
	int32_t status;		/* 0, or the -errno the acceptor refused with */
};

/* The record that says "the rest of the ring is skipped": the magic, then
 * zeroes, in place of a frame header. */
static const uint8_t shm_pad[VRIO_FRAME_HDR_LEN] = {
	SHM_PAD_MAGIC & 0xff, (SHM_PAD_MAGIC >> 8) & 0xff, (SHM_PAD_MAGIC >> 16) & 0xff,
	SHM_PAD_MAGIC >> 24,
};

struct shm_ring {
	struct shm_ring_ctl *ctl;
	uint8_t *data;
	uint64_t size;		/* a power of two */
	uint64_t pos;		/* producer: next byte to write; consumer: next to read */
	uint64_t peer;		/* the other side's position, as last read and checked */
	uint64_t published;	/* producer: head as last stored */
	uint64_t kicks;		/* producer: doorbells rung; consumer: kicks last drained */
	uint64_t rewind_at;	/* producer: pos from which to try SHM_REWIND again */
};

struct shm_conn {
	struct vrio_conn base;
	int fd;
	void *map;
	size_t map_len;
	struct shm_ring tx, rx;
	int err;		/* sticky: the connection is dead */
	bool peer_gone;		/* end of file on the socket */
	unsigned idle;		/* armed empty polls since the socket was last read */
	uint8_t *bounce;	/* CTRL payloads, copied out of the peer's reach */
	size_t bounce_cap;
};

struct shm_pending {
	int fd;
	uint64_t deadline_ns;
};

struct shm_listener {
	struct vrio_listener base;
	int fd;
	int epfd;		/* the listening socket and the pending handshakes */
	dev_t dev;
	ino_t ino;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	struct shm_pending pending[SHM_PENDING_MAX];
	unsigned npending;
};

static struct shm_conn *to_shm(struct vrio_conn *c)
{
	return container_of(c, struct shm_conn, base);
}

static struct shm_listener *to_shml(struct vrio_listener *l)
{
	return container_of(l, struct shm_listener, base);
}

static int shm_sockaddr(const char *path, struct sockaddr_un *sa)
{
	size_t len = strlen(path);

	if (path[0] != '/' || len >= sizeof(sa->sun_path))
		return -EINVAL;
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	memcpy(sa->sun_path, path, len + 1);
	return 0;
}

static bool ring_size_ok(uint64_t size)
{
	return size >= SHM_RING_MIN && size <= SHM_RING_MAX && !(size & (size - 1));
}

static uint64_t region_len(const uint64_t ring_size[2])
{
	return 2ull * SHM_CTL_LEN + ring_size[0] + ring_size[1];
}

/* ---- connections ---- */

/* Takes the socket and the mapping; `acceptor` picks the direction. */
static struct shm_conn *shm_conn_new(int fd, void *map, const uint64_t ring_size[2],
				     bool acceptor)
{
	struct shm_ring *rings[2];
	struct shm_conn *c;
	uint8_t *data;
	unsigned i;

	c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->base.ops = &vrio_shm_transport;
	c->fd = fd;
	c->map = map;
	c->map_len = region_len(ring_size);
	rings[0] = acceptor ? &c->rx : &c->tx;
	rings[1] = acceptor ? &c->tx : &c->rx;
	data = (uint8_t *)map + 2 * SHM_CTL_LEN;
	for (i = 0; i < 2; i++) {
		rings[i]->ctl = (struct shm_ring_ctl *)((uint8_t *)map + i * SHM_CTL_LEN);
		rings[i]->data = data;
		rings[i]->size = ring_size[i];
		data += ring_size[i];
	}
	return c;
}

/* The connection is dead from here on; says why once. */
static int __attribute__((format(printf, 3, 4)))
shm_broken(struct shm_conn *c, int err, const char *fmt, ...)
{
	char why[160];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	if (!c->err)
		VRIO_WARN_RL("%s: %s", c->base.name, why);
	c->err = err;
	return err;
}

/* One byte on the socket wakes the peer. */
static int shm_kick(struct shm_conn *c)
{
	static const char bell = 'k';
	ssize_t n;

	n = send(c->fd, &bell, 1, MSG_DONTWAIT | MSG_NOSIGNAL);
	if (n < 0) {
		/* A full socket holds doorbells the peer has yet to read. */
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
			return 0;
		return -errno;
	}
	__atomic_store_n(&c->tx.ctl->kicks, ++c->tx.kicks, __ATOMIC_RELEASE);
	return 0;
}

/* Reads what the socket holds: doorbells, or the end of file. Bounded: a
 * peer that rings without pause wakes its owner again, no more. */
static int shm_drain_socket(struct shm_conn *c)
{
	char buf[256];
	unsigned i;
	ssize_t n;

	c->idle = 0;
	for (i = 0; i < 16; i++) {
		n = recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (n > 0 && (size_t)n == sizeof(buf))
			continue;
		if (n == 0)
			c->peer_gone = true;
		if (n >= 0)
			return 0;
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return 0;
		if (errno == ECONNRESET) {
			c->peer_gone = true;
			return 0;
		}
		return -errno;
	}
	return 0;
}

/* Reads the consumer's tail. It may only have moved forward, up to what
 * this side wrote. */
static int tx_refresh(struct shm_conn *c)
{
	struct shm_ring *r = &c->tx;
	uint64_t t = __atomic_load_n(&r->ctl->tail, __ATOMIC_ACQUIRE);

	if (t - r->peer > r->pos - r->peer)
		return shm_broken(c, -EBADMSG, "peer's tail %llu outside [%llu, %llu]",
				  (unsigned long long)t, (unsigned long long)r->peer,
				  (unsigned long long)r->pos);
	r->peer = t;
	return 0;
}

/* Reads the producer's head. At most a ring ahead of what this side read. */
static int rx_refresh(struct shm_conn *c)
{
	struct shm_ring *r = &c->rx;
	uint64_t h = __atomic_load_n(&r->ctl->head, __ATOMIC_ACQUIRE);

	if (h - r->pos > r->size)
		return shm_broken(c, -EBADMSG, "peer's head %llu outside [%llu, %llu]",
				  (unsigned long long)h, (unsigned long long)r->pos,
				  (unsigned long long)(r->pos + r->size));
	r->peer = h;
	return 0;
}

static uint64_t tx_free(const struct shm_ring *r)
{
	return r->size - (r->pos - r->peer);
}

static int shm_send(struct vrio_conn *vc, const struct vrio_frame *f, const struct iovec *iov,
		    int iovcnt)
{
	struct shm_conn *c = to_shm(vc);
	struct shm_ring *r = &c->tx;
	uint64_t off, to_end, rec, need;
	size_t total = 0;
	uint8_t *p;
	int i, rc;

	if (c->err)
		return c->err;
	for (i = 0; i < iovcnt; i++) {
		if (iov[i].iov_len > VRIO_FRAME_MAX_PAYLOAD - total)
			return -EINVAL;
		total += iov[i].iov_len;
	}
	if (total != f->len)
		return -EINVAL;
	rec = SHM_ALIGN(VRIO_FRAME_HDR_LEN + total);
	off = r->pos & (r->size - 1);
	to_end = r->size - off;
	if (off >= SHM_REWIND && rec <= SHM_REWIND / 8 && r->pos >= r->rewind_at) {
		/* The consumer's position as it is now, at most once every
		 * SHM_REWIND bytes while it lags too far for a rewind. */
		if (r->pos - r->peer > SHM_REWIND / 4) {
			rc = tx_refresh(c);
			if (rc < 0)
				return rc;
		}
		if (r->pos - r->peer <= SHM_REWIND / 4 && tx_free(r) >= to_end + rec) {
			if (to_end >= VRIO_FRAME_HDR_LEN)
				memcpy(r->data + off, shm_pad, sizeof(shm_pad));
			r->pos += to_end;
			off = 0;
			to_end = r->size;
		} else {
			r->rewind_at = r->pos + SHM_REWIND;
		}
	}
	need = rec > to_end ? to_end + rec : rec;
	if (tx_free(r) < need) {
		rc = tx_refresh(c);
		if (rc < 0)
			return rc;
	}
	if (tx_free(r) < need) {
		/* Ask the consumer for a doorbell once it frees space, then
		 * look again: it may have consumed before it saw the request. */
		__atomic_store_n(&r->ctl->want_space, 1, __ATOMIC_RELAXED);
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
		rc = tx_refresh(c);
		if (rc < 0)
			return rc;
		if (tx_free(r) < need)
			return -ENOBUFS;
		__atomic_store_n(&r->ctl->want_space, 0, __ATOMIC_RELAXED);
	}
	if (rec > to_end) {
		/* Too little room before the end: skip it. Under a header's
		 * worth the skip is implicit, else a pad record says so. */
		if (to_end >= VRIO_FRAME_HDR_LEN)
			memcpy(r->data + off, shm_pad, sizeof(shm_pad));
		r->pos += to_end;
		off = 0;
	}
	p = r->data + off;
	vrio_frame_encode(f, p);
	p += VRIO_FRAME_HDR_LEN;
	for (i = 0; i < iovcnt; i++) {
		memcpy(p, iov[i].iov_base, iov[i].iov_len);
		p += iov[i].iov_len;
	}
	r->pos += rec;
	c->base.stats.frames_tx++;
	c->base.stats.bytes_tx += VRIO_FRAME_HDR_LEN + total;
	return 0;
}

static int shm_flush(struct vrio_conn *vc)
{
	struct shm_conn *c = to_shm(vc);
	struct shm_ring *r = &c->tx;

	if (c->err)
		return c->err;
	if (r->pos == r->published)
		return 0;
	__atomic_store_n(&r->ctl->head, r->pos, __ATOMIC_RELEASE);
	r->published = r->pos;
	/* Pairs with the consumer's arming: either it sees the new head, or
	 * this side sees its request for a doorbell. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (__atomic_load_n(&r->ctl->need_wake, __ATOMIC_RELAXED) &&
	    __atomic_exchange_n(&r->ctl->need_wake, 0, __ATOMIC_ACQ_REL))
		return shm_kick(c);
	return 0;
}

static int shm_pending(struct vrio_conn *vc)
{
	struct shm_conn *c = to_shm(vc);

	return c->tx.pos != c->tx.published;
}

/*
 * The receive ring is empty. Drain the doorbells the peer rang and notice a
 * peer that left. Returns 1 if frames arrived meanwhile, 0 if none, or
 * -errno. The doorbell is not armed here: only an owner about to sleep asks
 * for one (shm_sleep_prepare), so two polling sides ring none.
 */
static int rx_idle(struct shm_conn *c)
{
	struct shm_ring *r = &c->rx;
	uint64_t kicks;
	int rc;

	kicks = __atomic_load_n(&r->ctl->kicks, __ATOMIC_ACQUIRE);
	if (kicks != r->kicks) {
		r->kicks = kicks;
		rc = shm_drain_socket(c);
		if (rc < 0)
			return rc;
	} else if (++c->idle >= SHM_LIVENESS_EVERY) {
		rc = shm_drain_socket(c);
		if (rc < 0)
			return rc;
	}
	if (c->peer_gone || __atomic_load_n(&r->ctl->closed, __ATOMIC_ACQUIRE)) {
		/* What the peer published before it left is still delivered. */
		rc = rx_refresh(c);
		if (rc < 0)
			return rc;
		if (r->peer != r->pos)
			return 1;
		c->err = -ECONNRESET;
		return -ECONNRESET;
	}
	return 0;
}

/*
 * The owner is going to sleep on the socket: ask the producer for a
 * doorbell, then look at the ring once more. Either the producer's flush
 * sees the request (it stores head, fences, then reads need_wake) or this
 * side sees the new head (it stores need_wake, fences, then reads head):
 * the two fences order both pairs, so no frame is left without a bell.
 */
static int shm_sleep_prepare(struct vrio_conn *vc)
{
	struct shm_conn *c = to_shm(vc);
	struct shm_ring *r = &c->rx;
	int rc;

	if (c->err)
		return c->err;
	if (!__atomic_load_n(&r->ctl->need_wake, __ATOMIC_RELAXED))
		__atomic_store_n(&r->ctl->need_wake, 1, __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	rc = rx_refresh(c);
	if (rc < 0)
		return rc;
	return r->peer != r->pos;
}

/* Awake again with frames to read: a doorbell would only cost the producer
 * a system call. */
static void rx_awake(struct shm_conn *c)
{
	if (__atomic_load_n(&c->rx.ctl->need_wake, __ATOMIC_RELAXED))
		__atomic_store_n(&c->rx.ctl->need_wake, 0, __ATOMIC_RELAXED);
}

/* CTRL payloads are parsed in several passes: give them bytes that hold
 * still. REQ and RESP payloads are lent in place; their readers take each
 * field once. */
static const void *shm_stable(struct shm_conn *c, const void *payload, uint32_t len)
{
	size_t cap;
	void *nb;

	if (len > c->bounce_cap) {
		cap = len < 4096 ? 4096 : len;
		nb = realloc(c->bounce, cap);
		if (!nb)
			return NULL;
		c->bounce = nb;
		c->bounce_cap = cap;
	}
	memcpy(c->bounce, payload, len);
	return c->bounce;
}

static void rx_release(struct shm_conn *c)
{
	struct shm_ring *r = &c->rx;

	__atomic_store_n(&r->ctl->tail, r->pos, __ATOMIC_RELEASE);
	/* Pairs with the producer's request for space, as in shm_flush(). */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (__atomic_load_n(&r->ctl->want_space, __ATOMIC_RELAXED) &&
	    __atomic_exchange_n(&r->ctl->want_space, 0, __ATOMIC_ACQ_REL))
		shm_kick(c);	/* a peer that is gone shows as the end of file */
}

static int shm_poll(struct vrio_conn *vc, vrio_recv_cb cb, void *arg, unsigned budget)
{
	struct shm_conn *c = to_shm(vc);
	struct shm_ring *r = &c->rx;
	uint8_t hdr[VRIO_FRAME_HDR_LEN];
	uint64_t off, to_end, avail, rec;
	const void *payload;
	struct vrio_frame f;
	bool consumed = false;
	unsigned done = 0;
	int rc = 0;

	if (c->err)
		return c->err;
	while (done < budget) {
		if (r->peer == r->pos) {
			rc = rx_refresh(c);
			if (rc == 0 && r->peer == r->pos)
				rc = rx_idle(c);
			if (rc < 0)
				goto out;
			if (r->peer == r->pos)
				break;
			rx_awake(c);
		}
		avail = r->peer - r->pos;
		off = r->pos & (r->size - 1);
		to_end = r->size - off;
		/* One copy of the header, taken before any check of it. */
		if (to_end >= VRIO_FRAME_HDR_LEN)
			memcpy(hdr, r->data + off, sizeof(hdr));
		if (to_end < VRIO_FRAME_HDR_LEN || memcmp(hdr, shm_pad, sizeof(hdr)) == 0) {
			/* Legal after a frame, up to the end of the ring. */
			if (off == 0 || avail < to_end) {
				rc = shm_broken(c, -EBADMSG, "pad at offset %llu with %llu bytes published",
						(unsigned long long)off, (unsigned long long)avail);
				goto out;
			}
			r->pos += to_end;
			consumed = true;
			continue;
		}
		rc = vrio_frame_decode(hdr, &f);
		if (rc < 0) {
			shm_broken(c, rc, "bad frame header at offset %llu: %s",
				   (unsigned long long)off, strerror(-rc));
			goto out;
		}
		rec = SHM_ALIGN(VRIO_FRAME_HDR_LEN + (uint64_t)f.len);
		if (rec > to_end || rec > avail) {
			rc = shm_broken(c, -EBADMSG,
					"%u-byte frame at offset %llu overruns the ring or what was published",
					f.len, (unsigned long long)off);
			goto out;
		}
		payload = r->data + off + VRIO_FRAME_HDR_LEN;
		if (f.type == VRIO_FRAME_CTRL && f.len) {
			payload = shm_stable(c, payload, f.len);
			if (!payload) {
				rc = -ENOMEM;
				goto out;
			}
		}
		rc = cb(arg, vc, &f, payload);
		r->pos += rec;
		consumed = true;
		c->base.stats.frames_rx++;
		c->base.stats.bytes_rx += VRIO_FRAME_HDR_LEN + f.len;
		if (rc < 0)
			goto out;
		done++;
	}
	rc = (int)done;
out:
	if (consumed)
		rx_release(c);
	return rc;
}

static int shm_conn_fd(struct vrio_conn *vc)
{
	return to_shm(vc)->fd;
}

static void shm_close(struct vrio_conn *vc)
{
	struct shm_conn *c;

	if (!vc)
		return;
	c = to_shm(vc);
	if (c->map) {
		/* An orderly goodbye; a crash shows as the end of file. */
		__atomic_store_n(&c->tx.ctl->closed, 1, __ATOMIC_RELEASE);
		munmap(c->map, c->map_len);
	}
	if (c->fd >= 0)
		close(c->fd);
	free(c->bounce);
	free(c);
}

/* ---- connecting ---- */

static int shm_region_create(const uint64_t ring_size[2], void **map)
{
	uint64_t len = region_len(ring_size);
	int fd, rc;

	fd = memfd_create("vrio-shm", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)len) < 0 ||
	    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0) {
		rc = -errno;
		goto err;
	}
	*map = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (*map == MAP_FAILED) {
		rc = -errno;
		goto err;
	}
	return fd;
err:
	close(fd);
	return rc;
}

static int shm_send_hello(int fd, int memfd, const uint64_t ring_size[2])
{
	struct shm_hello h = {
		.magic = SHM_MAGIC,
		.version = SHM_VERSION,
		.ring_size = { ring_size[0], ring_size[1] },
		.region_len = region_len(ring_size),
	};
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	struct iovec iov = { &h, sizeof(h) };
	struct msghdr msg = {
		.msg_iov = &iov,
		.msg_iovlen = 1,
		.msg_control = u.buf,
		.msg_controllen = sizeof(u.buf),
	};
	struct cmsghdr *cm;
	ssize_t n;

	memset(&u, 0, sizeof(u));
	cm = CMSG_FIRSTHDR(&msg);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &memfd, sizeof(int));
	n = sendmsg(fd, &msg, MSG_NOSIGNAL);
	if (n < 0)
		return -errno;
	return n == sizeof(h) ? 0 : -EPROTO;
}

static int shm_wait_ack(int fd, int cancel_fd)
{
	uint64_t deadline = vrio_now_ns() + SHM_HANDSHAKE_MS * 1000000ull, now;
	struct shm_ack ack;
	ssize_t n;
	int rc;

	for (;;) {
		n = recv(fd, &ack, sizeof(ack), MSG_DONTWAIT);
		if (n == sizeof(ack))
			break;
		if (n == 0)
			return -ECONNRESET;
		if (n > 0)
			return -EPROTO;
		if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
			return -errno;
		now = vrio_now_ns();
		if (now >= deadline)
			return -ETIMEDOUT;
		rc = vrio_connect_wait(fd, POLLIN, cancel_fd,
				       (int)((deadline - now) / 1000000 + 1));
		if (rc < 0 && rc != -EINTR)
			return rc;
	}
	if (ack.magic != SHM_ACK_MAGIC || ack.status > 0 || ack.status < -4095)
		return -EPROTO;
	return ack.status;
}

/* A listener that does not accept fills its backlog; a connect() that
 * waits for room there is bounded by SO_SNDTIMEO alone, not cancel_fd. */
static int shm_connect(const char *addr, int cancel_fd, struct vrio_conn **out)
{
	static const uint64_t ring_size[2] = { SHM_RING_DEFAULT, SHM_RING_DEFAULT };
	struct timeval tv = { .tv_sec = SHM_HANDSHAKE_MS / 1000 };
	struct shm_conn *c = NULL;
	struct sockaddr_un sa;
	void *map = NULL;
	int fd, memfd, rc;

	rc = shm_sockaddr(addr, &sa);
	if (rc < 0)
		return rc;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* Bounds a connect() that waits for room in a full backlog. */
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		rc = errno == EAGAIN ? -ETIMEDOUT : -errno;
		goto err;
	}
	if (fcntl(fd, F_SETFL, O_NONBLOCK) < 0) {
		rc = -errno;
		goto err;
	}
	memfd = shm_region_create(ring_size, &map);
	if (memfd < 0) {
		rc = memfd;
		goto err;
	}
	rc = shm_send_hello(fd, memfd, ring_size);
	close(memfd);
	if (rc == 0)
		rc = shm_wait_ack(fd, cancel_fd);
	if (rc == 0) {
		c = shm_conn_new(fd, map, ring_size, false);
		rc = c ? 0 : -ENOMEM;
	}
	if (rc < 0) {
		munmap(map, region_len(ring_size));
		goto err;
	}
	snprintf(c->base.name, sizeof(c->base.name), "%s", addr);
	*out = &c->base;
	return 0;
err:
	close(fd);
	return rc;
}

/* ---- listening ---- */

/* A socket file left by a process that is gone is replaced; a live one, or
 * anything that is not a socket, is left alone. */
static int shm_clear_stale(const char *path, const struct sockaddr_un *sa)
{
	struct stat st;
	int fd, rc;

	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISSOCK(st.st_mode)) {
		VRIO_ERR("shm %s: exists and is not a socket", path);
		return -EEXIST;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	rc = connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) < 0 ? -errno : 0;
	close(fd);
	if (rc != -ECONNREFUSED) {
		VRIO_ERR("shm %s: another process listens on it", path);
		return -EADDRINUSE;
	}
	if (unlink(path) < 0 && errno != ENOENT)
		return -errno;
	return 0;
}

static int shm_listen(const char *addr, struct vrio_listener **out)
{
	struct epoll_event ev = { .events = EPOLLIN };
	struct shm_listener *l;
	struct sockaddr_un sa;
	bool bound = false;
	struct stat st;
	int rc;

	rc = shm_sockaddr(addr, &sa);
	if (rc < 0) {
		VRIO_ERR("shm %s: not an absolute unix socket path", addr);
		return rc;
	}
	rc = shm_clear_stale(addr, &sa);
	if (rc < 0)
		return rc;
	l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	l->base.ops = &vrio_shm_transport;
	snprintf(l->base.name, sizeof(l->base.name), "%s", addr);
	snprintf(l->path, sizeof(l->path), "%s", addr);
	l->epfd = -1;
	l->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (l->fd < 0) {
		rc = -errno;
		goto err;
	}
	if (bind(l->fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
		bound = true;
	if (!bound || listen(l->fd, 64) < 0 || stat(addr, &st) < 0) {
		rc = -errno;
		VRIO_ERR("shm %s: cannot listen: %s", addr, strerror(-rc));
		goto err;
	}
	l->dev = st.st_dev;
	l->ino = st.st_ino;
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (l->epfd < 0 || epoll_ctl(l->epfd, EPOLL_CTL_ADD, l->fd, &ev) < 0) {
		rc = -errno;
		VRIO_ERR("shm %s: epoll: %s", addr, strerror(-rc));
		goto err;
	}
	*out = &l->base;
	return 0;
err:
	if (l->epfd >= 0)
		close(l->epfd);
	if (l->fd >= 0)
		close(l->fd);
	if (bound)
		unlink(addr);
	free(l);
	return rc;
}

static void pending_drop(struct shm_listener *l, unsigned i)
{
	epoll_ctl(l->epfd, EPOLL_CTL_DEL, l->pending[i].fd, NULL);
	close(l->pending[i].fd);
	l->npending--;
	memmove(&l->pending[i], &l->pending[i + 1], (l->npending - i) * sizeof(l->pending[0]));
}

static void peer_name(int fd, char *buf, size_t len)
{
	struct ucred cred;
	socklen_t clen = sizeof(cred);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) == 0)
		snprintf(buf, len, "shm pid %d", (int)cred.pid);
	else
		snprintf(buf, len, "shm pid ?");
}

/* Takes the connections the kernel holds into the handshake table. */
static int shm_admit(struct shm_listener *l)
{
	struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP };
	int fd;

	for (;;) {
		fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -errno;
		}
		if (l->npending == SHM_PENDING_MAX) {
			VRIO_WARN_RL("%s: %u handshakes pending: dropping the oldest",
				     l->base.name, SHM_PENDING_MAX);
			pending_drop(l, 0);
		}
		ev.data.fd = fd;
		if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
			close(fd);
			return -errno;
		}
		l->pending[l->npending].fd = fd;
		l->pending[l->npending].deadline_ns =
			vrio_now_ns() + SHM_HANDSHAKE_MS * 1000000ull;
		l->npending++;
	}
}

/* Checks a hello and the memfd that came with it, and maps it. Returns 0 or
 * -errno, with the reason in `why`. */
static int shm_hello_check(const struct shm_hello *h, int memfd, void **map, char *why,
			   size_t wlen)
{
	struct stat st;
	int seals;

	if (h->magic != SHM_MAGIC) {
		snprintf(why, wlen, "bad magic %#x", h->magic);
		return -EPROTO;
	}
	if (h->version != SHM_VERSION) {
		snprintf(why, wlen, "version %u, expected %u", h->version, SHM_VERSION);
		return -EPROTONOSUPPORT;
	}
	if (h->flags) {
		snprintf(why, wlen, "unknown flags %#x", h->flags);
		return -EPROTO;
	}
	if (!ring_size_ok(h->ring_size[0]) || !ring_size_ok(h->ring_size[1])) {
		snprintf(why, wlen, "ring sizes %llu and %llu: expected powers of two in [%llu, %llu]",
			 (unsigned long long)h->ring_size[0], (unsigned long long)h->ring_size[1],
			 SHM_RING_MIN, SHM_RING_MAX);
		return -EINVAL;
	}
	if (h->region_len != region_len(h->ring_size)) {
		snprintf(why, wlen, "region of %llu bytes, the rings need %llu",
			 (unsigned long long)h->region_len,
			 (unsigned long long)region_len(h->ring_size));
		return -EINVAL;
	}
	/* Sealed first: then the size read below cannot shrink under the
	 * mapping, which would turn our accesses into SIGBUS. */
	seals = fcntl(memfd, F_GET_SEALS);
	if (seals < 0 || !(seals & F_SEAL_SHRINK)) {
		snprintf(why, wlen, "the memory is not a memfd sealed against shrinking");
		return -EINVAL;
	}
	if (fstat(memfd, &st) < 0 || !S_ISREG(st.st_mode) ||
	    (uint64_t)st.st_size != h->region_len) {
		snprintf(why, wlen, "the memfd is not of the %llu bytes announced",
			 (unsigned long long)h->region_len);
		return -EINVAL;
	}
	*map = mmap(NULL, h->region_len, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
	if (*map == MAP_FAILED) {
		snprintf(why, wlen, "mmap: %s", strerror(errno));
		return -errno;
	}
	return 0;
}

static void shm_send_ack(int fd, int status)
{
	struct shm_ack ack = { .magic = SHM_ACK_MAGIC, .status = status };

	/* Best effort when refusing; the end of file says the rest. */
	if (send(fd, &ack, sizeof(ack), MSG_DONTWAIT | MSG_NOSIGNAL) != sizeof(ack) && !status)
		VRIO_DEBUG("shm: acknowledgement not sent: %s", strerror(errno));
}

/*
 * One pending handshake: 1 and *out when the hello checked out, 0 while it
 * has not come, or -errno when the entry was dropped.
 */
static int pending_try(struct shm_listener *l, unsigned i, struct vrio_conn **out)
{
	union {
		char buf[CMSG_SPACE(4 * sizeof(int))];
		struct cmsghdr align;
	} u;
	struct shm_pending *p = &l->pending[i];
	struct shm_hello h;
	struct iovec iov = { &h, sizeof(h) };
	struct msghdr msg = {
		.msg_iov = &iov,
		.msg_iovlen = 1,
		.msg_control = u.buf,
		.msg_controllen = sizeof(u.buf),
	};
	int fds[8], nfds = 0, k, rc, fd = p->fd;
	char name[64], why[160] = "";
	struct shm_conn *c;
	struct cmsghdr *cm;
	void *map = NULL;
	ssize_t n;

	n = recvmsg(fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
		if (vrio_now_ns() < p->deadline_ns)
			return 0;
		peer_name(fd, name, sizeof(name));
		VRIO_WARN_RL("%s: %s: no hello within %u ms", l->base.name, name,
			     SHM_HANDSHAKE_MS);
		pending_drop(l, i);
		return -ETIMEDOUT;
	}
	if (n <= 0) {
		rc = n < 0 ? -errno : -ECONNRESET;
		pending_drop(l, i);
		return rc;
	}
	for (cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm)) {
		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		for (k = 0; (size_t)k < (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int); k++) {
			if (nfds < (int)(sizeof(fds) / sizeof(fds[0])))
				memcpy(&fds[nfds++], CMSG_DATA(cm) + k * sizeof(int), sizeof(int));
		}
	}
	peer_name(fd, name, sizeof(name));
	if (n != sizeof(h) || (msg.msg_flags & MSG_CTRUNC) || nfds != 1) {
		snprintf(why, sizeof(why), "expected a %zu-byte hello with one descriptor, got %zd bytes and %d",
			 sizeof(h), n, nfds);
		rc = -EPROTO;
	} else {
		rc = shm_hello_check(&h, fds[0], &map, why, sizeof(why));
	}
	for (k = 0; k < nfds; k++)
		close(fds[k]);
	if (rc < 0) {
		VRIO_WARN_RL("%s: %s: refused: %s", l->base.name, name, why);
		shm_send_ack(fd, rc);
		pending_drop(l, i);
		return rc;
	}
	c = shm_conn_new(fd, map, h.ring_size, true);
	if (!c) {
		munmap(map, h.region_len);
		shm_send_ack(fd, -ENOMEM);
		pending_drop(l, i);
		return -ENOMEM;
	}
	snprintf(c->base.name, sizeof(c->base.name), "%s", name);
	/* The socket is the connection's now. */
	epoll_ctl(l->epfd, EPOLL_CTL_DEL, fd, NULL);
	l->npending--;
	memmove(&l->pending[i], &l->pending[i + 1], (l->npending - i) * sizeof(l->pending[0]));
	shm_send_ack(fd, 0);
	*out = &c->base;
	return 1;
}

static int shm_accept(struct vrio_listener *vl, struct vrio_conn **out)
{
	struct shm_listener *l = to_shml(vl);
	unsigned i = 0;
	int err, rc;

	err = shm_admit(l);
	while (i < l->npending) {
		rc = pending_try(l, i, out);
		if (rc == 1)
			return 0;
		if (rc == 0)
			i++;
	}
	/* An accept error (EMFILE, ...) goes to the owner, who backs off. */
	return err < 0 ? err : -EAGAIN;
}

static int shm_listener_fd(struct vrio_listener *vl)
{
	return to_shml(vl)->epfd;
}

static void shm_listener_close(struct vrio_listener *vl)
{
	struct shm_listener *l;
	struct stat st;

	if (!vl)
		return;
	l = to_shml(vl);
	while (l->npending)
		pending_drop(l, l->npending - 1);
	close(l->epfd);
	close(l->fd);
	/* Only the socket this listener made: another may have replaced it. */
	if (lstat(l->path, &st) == 0 && st.st_dev == l->dev && st.st_ino == l->ino)
		unlink(l->path);
	free(l);
}

const struct vrio_transport_ops vrio_shm_transport = {
	.name = "shm",
	.listen = shm_listen,
	.accept = shm_accept,
	.connect = shm_connect,
	.send = shm_send,
	.flush = shm_flush,
	.poll = shm_poll,
	.close = shm_close,
	.listener_close = shm_listener_close,
	.conn_fd = shm_conn_fd,
	.sleep_prepare = shm_sleep_prepare,
	.listener_fd = shm_listener_fd,
	.pending = shm_pending,
};

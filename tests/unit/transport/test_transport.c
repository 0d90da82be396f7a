/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The transport contract, run once per backend (tcp on loopback, shm on a
 * unix socket path): framing, batching, large frames, budget, callback
 * errors, garbage, peer close, wakeups, a full send queue, lent payloads,
 * the registry, a connect to a silent peer given up.
 * Then the shm backend from the inside (it is included, to reach its ring):
 * a peer that corrupts the rings, hellos that must be refused, the socket
 * path's life, doorbells, and a peer process that dies.
 */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "shm.c"

static char tmpdir[64];
static unsigned naddr;

struct backend {
	const char *name;
	void (*addr)(char *buf, size_t len);		/* a free address */
	void (*refused_addr)(char *buf, size_t len);	/* nobody listens there */
	const char *bad_addr;
	void (*garbage)(struct vrio_conn *from);	/* bytes that are no frame */
	/* A listener at a free address that never answers a connect:
	 * returns how many descriptors it put in fds (for the test to close). */
	unsigned (*silent)(char *buf, size_t len, int *fds, unsigned max);
};

struct pair {
	const struct vrio_transport_ops *ops;
	struct vrio_listener *l;
	struct vrio_conn *client, *server;
	char addr[108];
};

struct sink {
	unsigned frames;
	uint64_t bytes;
	uint32_t last_id;
	int fail_at;		/* return an error on this frame number, or -1 */
	int bad;		/* payload did not match its pattern */
	const void *last_payload;
};

static const struct backend *cur;

static uint8_t pattern(uint32_t id, size_t i)
{
	return (uint8_t)(id * 31 + i * 7);
}

/* ---- the backends' addresses and garbage ---- */

static int free_port(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;

	bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	getsockname(fd, (struct sockaddr *)&sa, &len);
	port = ntohs(sa.sin_port);
	close(fd);
	return port;
}

static void tcp_addr(char *buf, size_t len)
{
	snprintf(buf, len, "127.0.0.1:%d", free_port());
}

static void tcp_garbage(struct vrio_conn *from)
{
	static const char junk[64] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";

	assert_int_equal(send(vrio_conn_fd(from), junk, sizeof(junk), 0), (ssize_t)sizeof(junk));
}

/* A listener whose accept queue is full: the kernel drops further SYNs,
 * as a peer's black-holed address would. */
static unsigned tcp_silent(char *buf, size_t len, int *fds, unsigned max)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t sl = sizeof(sa);
	unsigned n = 0;

	fds[n] = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(fds[n] >= 0);
	assert_int_equal(bind(fds[n], (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(getsockname(fds[n], (struct sockaddr *)&sa, &sl), 0);
	assert_int_equal(listen(fds[n++], 0), 0);
	while (n < max) {
		fds[n] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
		assert_true(fds[n] >= 0);
		connect(fds[n++], (struct sockaddr *)&sa, sizeof(sa));
	}
	snprintf(buf, len, "127.0.0.1:%d", ntohs(sa.sin_port));
	return n;
}

static void shm_path(char *buf, size_t len)
{
	snprintf(buf, len, "%s/s%u.sock", tmpdir, naddr++);
}

/* A socket file whose process is gone. */
static void shm_refused_path(char *buf, size_t len)
{
	struct sockaddr_un sa;
	int fd;

	shm_path(buf, len);
	assert_int_equal(shm_sockaddr(buf, &sa), 0);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	close(fd);
}

/* A header with a bad magic, published into the ring `from` writes. */
static void shm_garbage(struct vrio_conn *from)
{
	struct shm_ring *r = &to_shm(from)->tx;
	uint64_t off = r->pos & (r->size - 1);

	memcpy(r->data + off, "GET / HTTP/1.1\r\nHost: x\r\n\r\n\0\0\0\0\0", VRIO_FRAME_HDR_LEN);
	r->pos += VRIO_FRAME_HDR_LEN;
	assert_int_equal(from->ops->flush(from), 0);
}

/* A unix socket that takes the connection and never answers its hello. */
static unsigned shm_silent(char *buf, size_t len, int *fds, unsigned max)
{
	struct sockaddr_un sa;

	assert_true(max > 0);
	shm_path(buf, len);
	assert_int_equal(shm_sockaddr(buf, &sa), 0);
	fds[0] = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_int_equal(bind(fds[0], (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(fds[0], 8), 0);
	return 1;
}

static const struct backend backends[] = {
	{ "tcp", tcp_addr, tcp_addr, "not-an-address", tcp_garbage, tcp_silent },
	{ "shm", shm_path, shm_refused_path, "not-an-absolute/path", shm_garbage, shm_silent },
};

/* ---- a connected pair ---- */

struct connect_job {
	const struct vrio_transport_ops *ops;
	const char *addr;
	struct vrio_conn *conn;
	int rc;
};

static void *connect_thread(void *arg)
{
	struct connect_job *j = arg;

	j->rc = j->ops->connect(j->addr, -1, &j->conn);
	return NULL;
}

/* Connects from another thread: a backend may wait for the acceptor. */
static int pair_connect(struct pair *p, struct vrio_conn **client, struct vrio_conn **server)
{
	struct connect_job j = { .ops = p->ops, .addr = p->addr };
	pthread_t t;
	int i, rc = -EAGAIN;

	assert_int_equal(pthread_create(&t, NULL, connect_thread, &j), 0);
	for (i = 0; i < 5000 && rc == -EAGAIN; i++) {
		rc = p->ops->accept(p->l, server);
		if (rc == -EAGAIN)
			usleep(1000);
	}
	pthread_join(t, NULL);
	assert_int_equal(j.rc, 0);
	*client = j.conn;
	return rc;
}

static struct pair *pair_new(const struct backend *b)
{
	struct pair *p = calloc(1, sizeof(*p));

	p->ops = vrio_transport_find(b->name);
	assert_non_null(p->ops);
	b->addr(p->addr, sizeof(p->addr));
	assert_int_equal(p->ops->listen(p->addr, &p->l), 0);
	assert_int_equal(pair_connect(p, &p->client, &p->server), 0);
	return p;
}

static int setup(void **state)
{
	*state = pair_new(cur);
	return 0;
}

static int setup_shm(void **state)
{
	*state = pair_new(&backends[1]);
	return 0;
}

static int teardown(void **state)
{
	struct pair *p = *state;

	p->ops->close(p->client);
	p->ops->close(p->server);
	p->ops->listener_close(p->l);
	free(p);
	return 0;
}

static int on_frame(void *arg, struct vrio_conn *c, const struct vrio_frame *f,
		    const void *payload)
{
	struct sink *s = arg;
	const uint8_t *b = payload;
	size_t i;

	if (s->fail_at >= 0 && s->frames == (unsigned)s->fail_at)
		return -EBADMSG;
	for (i = 0; i < f->len; i++)
		if (b[i] != pattern(f->id, i))
			s->bad++;
	s->frames++;
	s->bytes += f->len;
	s->last_id = f->id;
	s->last_payload = payload;
	return 0;
}

/* Poll until `want` frames arrived or a second passed; returns the last rc. */
static int drain(struct pair *p, struct vrio_conn *c, struct sink *s, unsigned want)
{
	struct pollfd pfd = { .fd = vrio_conn_fd(c), .events = POLLIN };
	int rc = 0, spins = 0;

	while (s->frames < want && spins++ < 2000) {
		if (p->client)
			p->ops->flush(p->client);
		rc = p->ops->poll(c, on_frame, s, 16);
		if (rc < 0)
			return rc;
		if (rc == 0 && vrio_conn_sleep_prepare(c) == 0)
			poll(&pfd, 1, 1);
	}
	return rc;
}

static int send_typed(struct pair *p, struct vrio_conn *c, uint8_t type, uint32_t id, size_t len)
{
	uint8_t *buf = malloc(len ? len : 1);
	struct iovec iov[2];
	struct vrio_frame f = { .type = type, .id = id, .len = (uint32_t)len };
	size_t i;
	int rc;

	for (i = 0; i < len; i++)
		buf[i] = pattern(id, i);
	/* Two iovecs, split unevenly, to exercise the gather. */
	iov[0] = (struct iovec){ buf, len / 3 };
	iov[1] = (struct iovec){ buf + len / 3, len - len / 3 };
	rc = p->ops->send(c, &f, iov, 2);
	free(buf);
	return rc;
}

static int send_pattern(struct pair *p, struct vrio_conn *c, uint32_t id, size_t len)
{
	return send_typed(p, c, VRIO_FRAME_REQ, id, len);
}

static bool fd_readable(int fd, int timeout_ms)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };

	return poll(&pfd, 1, timeout_ms) == 1;
}

/* ---- the contract, for every backend ---- */

static void test_many_small(void **state)
{
	struct pair *p = *state;
	struct sink s = { .fail_at = -1 };
	uint32_t i;

	for (i = 0; i < 1000; i++)
		assert_int_equal(send_pattern(p, p->client, i, i % 300), 0);
	assert_true(drain(p, p->server, &s, 1000) >= 0);
	assert_int_equal(s.frames, 1000);
	assert_int_equal(s.bad, 0);
	assert_int_equal(s.last_id, 999);
	assert_int_equal(p->server->stats.frames_rx, 1000);
	assert_int_equal(p->client->stats.frames_tx, 1000);
	assert_int_equal(p->server->stats.bytes_rx, p->client->stats.bytes_tx);
}

/* A frame larger than the initial receive buffer, both ways. */
static void test_large(void **state)
{
	struct pair *p = *state;
	struct sink s = { .fail_at = -1 };

	assert_int_equal(send_pattern(p, p->client, 7, 3u << 20), 0);
	assert_int_equal(send_pattern(p, p->client, 8, 100), 0);
	assert_true(drain(p, p->server, &s, 2) >= 0);
	assert_int_equal(s.frames, 2);
	assert_int_equal(s.bytes, (3u << 20) + 100);
	assert_int_equal(s.bad, 0);

	memset(&s, 0, sizeof(s));
	s.fail_at = -1;
	assert_int_equal(send_pattern(p, p->server, 9, VRIO_FRAME_MAX_PAYLOAD), 0);
	p->ops->flush(p->server);
	while (s.frames < 1) {
		p->ops->flush(p->server);
		assert_true(p->ops->poll(p->client, on_frame, &s, 4) >= 0);
	}
	assert_int_equal(s.bad, 0);
	assert_int_equal(send_pattern(p, p->client, 1, VRIO_FRAME_MAX_PAYLOAD + 1), -EINVAL);
}

static void test_budget(void **state)
{
	struct pair *p = *state;
	struct sink s = { .fail_at = -1 };
	int i, rc;

	for (i = 0; i < 10; i++)
		assert_int_equal(send_pattern(p, p->client, (uint32_t)i, 64), 0);
	assert_int_equal(p->ops->flush(p->client), 0);
	usleep(20000);
	rc = p->ops->poll(p->server, on_frame, &s, 4);
	assert_int_equal(rc, 4);
	assert_true(drain(p, p->server, &s, 10) >= 0);
	assert_int_equal(s.frames, 10);
}

static void test_callback_error(void **state)
{
	struct pair *p = *state;
	struct sink s = { .fail_at = 1 };

	assert_int_equal(send_pattern(p, p->client, 1, 10), 0);
	assert_int_equal(send_pattern(p, p->client, 2, 10), 0);
	assert_int_equal(drain(p, p->server, &s, 2), -EBADMSG);
	assert_int_equal(s.frames, 1);
}

static void test_garbage(void **state)
{
	struct pair *p = *state;
	struct sink s = { .fail_at = -1 };

	cur->garbage(p->client);
	assert_int_equal(drain(p, p->server, &s, 1), -EBADMSG);
	assert_int_equal(s.frames, 0);
}

static void test_peer_close(void **state)
{
	struct pair *p = *state;
	struct sink s = { .fail_at = -1 };

	assert_int_equal(send_pattern(p, p->client, 5, 10), 0);
	p->ops->flush(p->client);
	p->ops->close(p->client);
	p->client = NULL;
	assert_int_equal(drain(p, p->server, &s, 2), -ECONNRESET);
	assert_int_equal(s.frames, 1);
	/* teardown closes NULL safely */
}

/* An owner that found nothing sleeps on conn_fd(): it must wake for a frame,
 * and must not keep waking once the frame was taken. */
static void test_wakeup(void **state)
{
	struct pair *p = *state;
	struct sink s = { .fail_at = -1 };
	int fd = vrio_conn_fd(p->server);
	int round;

	assert_true(fd >= 0);
	for (round = 0; round < 3; round++) {
		assert_int_equal(p->ops->poll(p->server, on_frame, &s, 16), 0);
		assert_int_equal(vrio_conn_sleep_prepare(p->server), 0);
		assert_false(fd_readable(fd, 0));
		assert_int_equal(send_pattern(p, p->client, (uint32_t)round, 100), 0);
		assert_int_equal(p->ops->flush(p->client), 0);
		if (p->ops->pending)
			assert_int_equal(p->ops->pending(p->client), 0);
		assert_true(fd_readable(fd, 1000));
		assert_int_equal(p->ops->poll(p->server, on_frame, &s, 16), 1);
		assert_false(fd_readable(fd, 0));
	}
	assert_int_equal(s.frames, 3);
	assert_int_equal(s.bad, 0);
}

/* A peer that does not read: send() pushes back, and recovers once it does. */
static void test_full(void **state)
{
	struct pair *p = *state;
	struct sink s = { .fail_at = -1 };
	uint32_t sent = 0;
	int rc, spins = 0;

	for (;;) {
		rc = send_pattern(p, p->client, sent, 1u << 20);
		if (rc == -ENOBUFS)
			break;
		assert_int_equal(rc, 0);
		sent++;
		assert_true(sent < 1000);
	}
	assert_true(sent > 0);
	while (s.frames < sent && spins++ < 5000) {
		p->ops->flush(p->client);
		rc = p->ops->poll(p->server, on_frame, &s, 4);
		assert_true(rc >= 0);
		if (rc == 0 && vrio_conn_sleep_prepare(p->server) == 0)
			fd_readable(vrio_conn_fd(p->server), 1);
	}
	assert_int_equal(s.frames, sent);
	assert_int_equal(s.bad, 0);
	assert_int_equal(send_pattern(p, p->client, sent, 1u << 20), 0);
	assert_int_equal(drain(p, p->server, &s, sent + 1), 1);
	assert_int_equal(s.bad, 0);
}

/*
 * send_lent(): payloads of every size, some lent and some copied, many more
 * than one flush's worth, through a peer that reads only now and then (so
 * flushes stop part way, inside a lent payload too). The owner keeps each
 * buffer until a flush returns 0, then scribbles over it: what arrived
 * must be the pattern, whole and in order. A backend that lends (tcp)
 * must read the bytes at flush time, not at send time.
 */
#define LENT_FRAMES 3000u

static void test_lent(void **state)
{
	struct pair *p = *state;
	struct sink s = { .fail_at = -1 };
	uint8_t **bufs = calloc(LENT_FRAMES, sizeof(*bufs));
	unsigned sent = 0, kept = 0, i, spins = 0;
	struct vrio_frame f = { .type = VRIO_FRAME_RESP };
	struct iovec iov[2];
	size_t len, j;
	int rc;

	assert_non_null(bufs);
	while (s.frames < LENT_FRAMES && spins++ < 100000) {
		for (i = 0; i < 64 && sent < LENT_FRAMES; i++) {
			/* 0..70 KiB: below and above the lending threshold. */
			len = (sent * 2731u) % (70u << 10);
			bufs[sent] = malloc(len + 1);
			for (j = 0; j < len; j++)
				bufs[sent][j] = pattern(sent, j);
			/* A big head and a one-byte tail, as a lent RESP. */
			iov[0] = (struct iovec){ bufs[sent], len ? len - 1 : 0 };
			iov[1] = (struct iovec){ bufs[sent] + iov[0].iov_len, len - iov[0].iov_len };
			f.id = sent;
			f.len = (uint32_t)len;
			rc = vrio_conn_send_lent(p->client, &f, iov, 2);
			if (rc == -ENOBUFS) {
				free(bufs[sent]);
				bufs[sent] = NULL;
				break;
			}
			assert_int_equal(rc, 0);
			sent++;
		}
		rc = p->ops->flush(p->client);
		assert_true(rc >= 0);
		if (rc == 0) {
			for (; kept < sent; kept++) {
				memset(bufs[kept], 0xee, ((kept * 2731u) % (70u << 10)) + 1);
				free(bufs[kept]);
				bufs[kept] = NULL;
			}
		}
		/* Read a little at a time: the socket fills up. */
		if (spins % 3 == 0)
			assert_true(p->ops->poll(p->server, on_frame, &s, 8) >= 0);
	}
	assert_int_equal(s.frames, LENT_FRAMES);
	assert_int_equal(s.bad, 0);
	assert_int_equal(s.last_id, LENT_FRAMES - 1);
	assert_int_equal(p->server->stats.bytes_rx, p->client->stats.bytes_tx);
	for (i = kept; i < sent; i++)
		free(bufs[i]);
	free(bufs);

	if (!p->ops->send_lent)
		return;
	/* Lent, not copied: a change before the flush is what goes. */
	memset(&s, 0, sizeof(s));
	s.fail_at = -1;
	bufs = calloc(1, sizeof(*bufs));
	bufs[0] = malloc(4096);
	for (j = 0; j < 4096; j++)
		bufs[0][j] = pattern(1, j) ^ 0xff;
	iov[0] = (struct iovec){ bufs[0], 4096 };
	f.id = 1;
	f.len = 4096;
	assert_int_equal(vrio_conn_send_lent(p->client, &f, iov, 1), 0);
	assert_true(vrio_conn_pending(p->client));
	for (j = 0; j < 4096; j++)
		bufs[0][j] = pattern(1, j);
	assert_true(drain(p, p->server, &s, 1) >= 0);
	assert_int_equal(s.frames, 1);
	assert_int_equal(s.bad, 0);
	assert_false(vrio_conn_pending(p->client));
	free(bufs[0]);
	free(bufs);
}

static void test_registry(void **state)
{
	static const struct vrio_transport_ops incomplete = { .name = "half" };

	assert_null(vrio_transport_find("carrier-pigeon"));
	assert_int_equal(vrio_transport_register(&incomplete), -EINVAL);
	assert_int_equal(vrio_transport_register(vrio_transport_find(cur->name)), -EEXIST);
}

static void test_connect_refused(void **state)
{
	const struct vrio_transport_ops *ops = vrio_transport_find(cur->name);
	struct vrio_listener *l = NULL;
	struct vrio_conn *c = NULL;
	char addr[108];

	cur->refused_addr(addr, sizeof(addr));
	assert_int_equal(ops->connect(addr, -1, &c), -ECONNREFUSED);
	assert_int_equal(ops->connect(cur->bad_addr, -1, &c), -EINVAL);
	assert_int_equal(ops->listen(cur->bad_addr, &l), -EINVAL);
}

static void *cancel_later(void *arg)
{
	usleep(100 * 1000);
	assert_int_equal(eventfd_write(*(int *)arg, 1), 0);
	return NULL;
}

/* A connect that waits on a silent peer gives up once cancel_fd is
 * readable, long before the backend's own timeout (3 s). */
static void test_connect_cancelled(void **state)
{
	const struct vrio_transport_ops *ops = vrio_transport_find(cur->name);
	struct vrio_conn *c = NULL;
	int fds[8], cancel_fd;
	uint64_t t0, ms;
	char addr[108];
	pthread_t th;
	unsigned n;

	n = cur->silent(addr, sizeof(addr), fds, 8);
	cancel_fd = eventfd(0, EFD_CLOEXEC);
	assert_true(cancel_fd >= 0);
	t0 = vrio_now_ns();
	assert_int_equal(pthread_create(&th, NULL, cancel_later, &cancel_fd), 0);
	assert_int_equal(ops->connect(addr, cancel_fd, &c), -ECANCELED);
	ms = (vrio_now_ns() - t0) / 1000000;
	pthread_join(th, NULL);
	/* It waited for the peer, and not for the timeout. */
	assert_true(ms >= 90);
	assert_true(ms < 1000);
	assert_null(c);
	close(cancel_fd);
	while (n)
		close(fds[--n]);
}

/* ---- shm from the inside ---- */

static struct shm_ring *ring_of(struct vrio_conn *c, bool tx)
{
	return tx ? &to_shm(c)->tx : &to_shm(c)->rx;
}

/* Moves both ends of the client -> server ring to byte `pos`, empty. */
static void ring_seek(struct pair *p, uint64_t pos)
{
	struct shm_ring *tx = ring_of(p->client, true), *rx = ring_of(p->server, false);

	assert_int_equal(tx->pos, tx->published);
	assert_int_equal(rx->pos, tx->pos);
	tx->pos = tx->published = tx->peer = pos;
	rx->pos = rx->peer = pos;
	tx->ctl->head = tx->ctl->tail = pos;
}

/* Writes a header at ring offset `off` and publishes up to `head`. */
static void ring_put(struct pair *p, uint64_t off, const struct vrio_frame *f, uint64_t head)
{
	struct shm_ring *tx = ring_of(p->client, true);

	vrio_frame_encode(f, tx->data + off);
	tx->ctl->head = head;
}

static void ring_poke(struct pair *p, uint64_t off, const void *bytes, size_t len, uint64_t head)
{
	struct shm_ring *tx = ring_of(p->client, true);

	memcpy(tx->data + off, bytes, len);
	tx->ctl->head = head;
}

static void expect_poll(struct pair *p, int want)
{
	struct vrio_frame f = { .type = VRIO_FRAME_RESP };
	struct sink s = { .fail_at = -1 };

	assert_int_equal(p->ops->poll(p->server, on_frame, &s, 16), want);
	/* Dead for good: the owner closes it, and nothing is read meanwhile. */
	if (want < 0) {
		assert_int_equal(p->ops->poll(p->server, on_frame, &s, 16), want);
		assert_int_equal(p->ops->send(p->server, &f, NULL, 0), want);
		assert_int_equal(s.frames, 0);
	}
}

static void test_shm_bad_magic(void **state)
{
	struct pair *p = *state;

	ring_poke(p, 0, "GET / HTTP/1.1\r\n\r\n", 18, 32);
	expect_poll(p, -EBADMSG);
}

static void test_shm_bad_version(void **state)
{
	struct pair *p = *state;
	struct vrio_frame f = { .type = VRIO_FRAME_REQ };

	ring_put(p, 0, &f, 32);
	ring_of(p->client, true)->data[4] = VRIO_FRAME_VERSION + 1;
	expect_poll(p, -EPROTONOSUPPORT);
}

static void test_shm_len_above_max(void **state)
{
	struct pair *p = *state;
	struct vrio_frame f = { .type = VRIO_FRAME_REQ, .len = VRIO_FRAME_MAX_PAYLOAD + 1 };

	ring_put(p, 0, &f, 16u << 20);
	expect_poll(p, -EMSGSIZE);
}

/* A length the header allows, but more than was published. */
static void test_shm_len_beyond_head(void **state)
{
	struct pair *p = *state;
	struct vrio_frame f = { .type = VRIO_FRAME_REQ, .len = 4096 };

	ring_put(p, 0, &f, 40);
	expect_poll(p, -EBADMSG);
}

/* A frame that would run past the end of the ring. */
static void test_shm_frame_wraps(void **state)
{
	struct pair *p = *state;
	uint64_t size = ring_of(p->client, true)->size;
	struct vrio_frame f = { .type = VRIO_FRAME_REQ, .len = 100 };

	ring_seek(p, 3 * size - 64);
	ring_put(p, size - 64, &f, 3 * size + 200);
	expect_poll(p, -EBADMSG);
}

static void test_shm_head_too_far(void **state)
{
	struct pair *p = *state;
	struct vrio_frame f = { .type = VRIO_FRAME_REQ, .len = 8 };

	ring_put(p, 0, &f, ring_of(p->client, true)->size + 8);
	expect_poll(p, -EBADMSG);
}

static void test_shm_head_backwards(void **state)
{
	struct pair *p = *state;

	ring_seek(p, 4096);
	ring_of(p->client, true)->ctl->head = 4000;
	expect_poll(p, -EBADMSG);
}

static void test_shm_pad_at_start(void **state)
{
	struct pair *p = *state;
	uint64_t size = ring_of(p->client, true)->size;

	ring_seek(p, size);
	ring_poke(p, 0, shm_pad, sizeof(shm_pad), 2 * size);
	expect_poll(p, -EBADMSG);
}

/* A pad must cover what was published up to the end of the ring. */
static void test_shm_pad_unpublished(void **state)
{
	struct pair *p = *state;
	uint64_t size = ring_of(p->client, true)->size;

	ring_seek(p, size - 4096);
	ring_poke(p, size - 4096, shm_pad, sizeof(shm_pad), size - 2048);
	expect_poll(p, -EBADMSG);
}

/* The producer's own pads and implicit skips, both delivered right. */
static void test_shm_wrap(void **state)
{
	struct pair *p = *state;
	uint64_t size = ring_of(p->client, true)->size;
	struct sink s = { .fail_at = -1 };
	static const uint64_t starts[] = { 64, 24, 8, 0 };
	unsigned i;

	for (i = 0; i < sizeof(starts) / sizeof(starts[0]); i++) {
		ring_seek(p, (i + 1) * size - starts[i]);
		assert_int_equal(send_pattern(p, p->client, i, 1000), 0);
		assert_int_equal(send_pattern(p, p->client, 100 + i, 3), 0);
		assert_true(drain(p, p->server, &s, 2 * (i + 1)) >= 0);
	}
	assert_int_equal(s.frames, 8);
	assert_int_equal(s.bad, 0);
}

/* Past SHM_REWIND, with the consumer caught up, frames go back to the
 * start of the ring (the part that stays in the caches); while it lags
 * by more than fits before, they go on to the end, and come back once it
 * caught up. Every frame arrives whole and in order throughout. */
static void test_shm_rewind(void **state)
{
	struct pair *p = *state;
	struct shm_ring *r = ring_of(p->client, true);
	struct sink s = { .fail_at = -1 };
	uint64_t off, max_off = 0;
	unsigned i, n = 0;

	for (i = 0; i < 1000; i++, n++) {
		assert_int_equal(send_pattern(p, p->client, n, 4096), 0);
		off = r->pos & (r->size - 1);
		max_off = off > max_off ? off : max_off;
		assert_true(drain(p, p->server, &s, n + 1) >= 0);
	}
	assert_true(max_off <= SHM_REWIND + 8192);
	/* About 4 MiB went through, each lap of 512 KiB skipping the rest. */
	assert_true(r->pos >= 4 * r->size);

	/* From the start of a lap, 800 KiB the consumer has not taken: on
	 * past SHM_REWIND, the whole ring there to take it. */
	do {
		assert_int_equal(send_pattern(p, p->client, n, 4096), 0);
		n++;
		assert_true(drain(p, p->server, &s, n) >= 0);
	} while ((r->pos & (r->size - 1)) > 8192);
	for (i = 0; i < 200; i++, n++)
		assert_int_equal(send_pattern(p, p->client, n, 4096), 0);
	assert_int_equal(p->ops->flush(p->client), 0);
	assert_true((r->pos & (r->size - 1)) >= (700u << 10));
	assert_true(drain(p, p->server, &s, n) >= 0);
	/* Caught up: the next frame starts a lap. The rewind is tried again
	 * SHM_REWIND bytes after it last failed. */
	for (i = 0; i < SHM_REWIND / 4096 + 2; i++, n++) {
		assert_int_equal(send_pattern(p, p->client, n, 4096), 0);
		assert_true(drain(p, p->server, &s, n + 1) >= 0);
	}
	assert_true((r->pos & (r->size - 1)) < SHM_REWIND);
	assert_int_equal(s.frames, n);
	assert_int_equal(s.bad, 0);
	assert_int_equal(s.last_id, n - 1);
}

/* The consumer's tail must stay between what it had and what was written. */
static void test_shm_tail_corrupt(void **state)
{
	struct pair *p = *state;
	struct shm_ring *tx = ring_of(p->client, true);
	uint32_t i;

	for (i = 0; i < 3; i++)
		assert_int_equal(send_pattern(p, p->client, i, VRIO_FRAME_MAX_PAYLOAD), 0);
	tx->ctl->tail = tx->pos + 8;
	assert_int_equal(send_pattern(p, p->client, 3, VRIO_FRAME_MAX_PAYLOAD), -EBADMSG);
	assert_int_equal(p->ops->flush(p->client), -EBADMSG);
}

/* REQ payloads are lent in place; CTRL payloads are copied out first. */
static void test_shm_ctrl_copied(void **state)
{
	struct pair *p = *state;
	struct shm_ring *rx = ring_of(p->server, false);
	struct sink s = { .fail_at = -1 };
	const uint8_t *lo = rx->data, *hi = rx->data + rx->size;

	assert_int_equal(send_pattern(p, p->client, 1, 500), 0);
	assert_true(drain(p, p->server, &s, 1) >= 0);
	assert_true((const uint8_t *)s.last_payload >= lo && (const uint8_t *)s.last_payload < hi);
	assert_int_equal(send_typed(p, p->client, VRIO_FRAME_CTRL, 2, 500), 0);
	assert_true(drain(p, p->server, &s, 2) >= 0);
	assert_false((const uint8_t *)s.last_payload >= lo && (const uint8_t *)s.last_payload < hi);
	assert_int_equal(s.bad, 0);
}

/* A producer that found the ring full is woken when the consumer frees it. */
static void test_shm_space_doorbell(void **state)
{
	struct pair *p = *state;
	struct sink s = { .fail_at = -1 };
	int cfd = vrio_conn_fd(p->client);
	uint32_t sent = 0;
	int rc;

	while ((rc = send_pattern(p, p->client, sent, 1u << 20)) == 0)
		sent++;
	assert_int_equal(rc, -ENOBUFS);
	assert_int_equal(p->ops->flush(p->client), 0);
	assert_int_equal(p->ops->poll(p->client, on_frame, &s, 16), 0);
	assert_false(fd_readable(cfd, 0));
	assert_int_equal(p->ops->poll(p->server, on_frame, &s, 2), 2);
	assert_true(fd_readable(cfd, 1000));
	assert_int_equal(p->ops->poll(p->client, on_frame, &s, 16), 0);
	assert_false(fd_readable(cfd, 0));
	assert_int_equal(send_pattern(p, p->client, sent, 1u << 20), 0);
}

/* While the consumer polls, the producer rings no doorbell: a system call
 * per frame for nothing. Once it says it sleeps, one doorbell wakes it. */
static void test_shm_no_bell_while_polling(void **state)
{
	struct pair *p = *state;
	struct sink s = { .fail_at = -1 };
	struct shm_conn *cc = to_shm(p->client);
	int fd = vrio_conn_fd(p->server);
	uint64_t kicks = cc->tx.kicks;
	uint32_t i;

	for (i = 0; i < 10; i++) {
		assert_int_equal(p->ops->poll(p->server, on_frame, &s, 16), (int)(i > 0));
		assert_int_equal(send_pattern(p, p->client, i, 100), 0);
		assert_int_equal(p->ops->flush(p->client), 0);
		assert_false(fd_readable(fd, 0));
	}
	assert_int_equal(cc->tx.kicks, kicks);
	assert_int_equal(p->ops->poll(p->server, on_frame, &s, 16), 1);
	assert_int_equal(p->ops->poll(p->server, on_frame, &s, 16), 0);
	assert_int_equal(vrio_conn_sleep_prepare(p->server), 0);
	assert_int_equal(send_pattern(p, p->client, i, 100), 0);
	assert_int_equal(p->ops->flush(p->client), 0);
	assert_true(fd_readable(fd, 1000));
	assert_int_equal(cc->tx.kicks, kicks + 1);
	/* Frames published before the sleep is announced: no sleep at all. */
	assert_int_equal(p->ops->poll(p->server, on_frame, &s, 16), 1);
	assert_int_equal(send_pattern(p, p->client, i + 1, 100), 0);
	assert_int_equal(p->ops->flush(p->client), 0);
	assert_int_equal(vrio_conn_sleep_prepare(p->server), 1);
	assert_int_equal(p->ops->poll(p->server, on_frame, &s, 16), 1);
	assert_int_equal(s.frames, 12);
	assert_int_equal(s.bad, 0);
}

/*
 * The lost-wakeup race: a consumer that announces its sleep just as the
 * producer publishes must be rung, or see the frame. Two threads play
 * ping-pong, the producer sending a burst and then waiting for it to be
 * taken (as a QD 1 guest does), both pausing at random for a few
 * microseconds so that the consumer's last look, its announcement and the
 * producer's publication fall in every order. A burst left unrung stays
 * untaken: the consumer's sleep times out.
 */
#define RACE_BURSTS 4000u

struct race {
	struct pair *p;
	struct sink *s;
	unsigned seed;
	int fail;		/* atomic: the consumer gave up */
};

static void spin_random(unsigned *seed, unsigned max)
{
	for (unsigned k = rand_r(seed) % max; k; k--)
		__asm__ __volatile__("" ::: "memory");
}

static void *race_producer(void *arg)
{
	struct race *r = arg;
	uint32_t sent = 0;
	unsigned b, n;

	for (b = 0; b < RACE_BURSTS; b++) {
		for (n = 1 + rand_r(&r->seed) % 3; n; n--)
			if (send_pattern(r->p, r->p->client, sent++, 64) < 0)
				return (void *)1;
		spin_random(&r->seed, 2000);
		if (r->p->ops->flush(r->p->client) < 0)
			return (void *)2;
		while (__atomic_load_n(&r->s->frames, __ATOMIC_ACQUIRE) < sent)
			if (__atomic_load_n(&r->fail, __ATOMIC_ACQUIRE))
				return NULL;
	}
	return NULL;
}

static void test_shm_doorbell_race(void **state)
{
	struct pair *p = *state;
	struct sink s = { .fail_at = -1 };
	struct race r = { .p = p, .s = &s, .seed = 7 };
	struct pollfd pfd = { .fd = vrio_conn_fd(p->server), .events = POLLIN };
	unsigned sleeps = 0, lost = 0, seed = 11, total = 0;
	pthread_t t;
	void *ret;
	int rc;

	assert_int_equal(pthread_create(&t, NULL, race_producer, &r), 0);
	while (!lost) {
		rc = p->ops->poll(p->server, on_frame, &s, 64);
		if (rc < 0)
			break;
		if (rc > 0)
			continue;
		if (pthread_tryjoin_np(t, &ret) == 0) {
			total = 1;
			break;
		}
		/* Between the last look and the announcement. */
		spin_random(&seed, 2000);
		rc = vrio_conn_sleep_prepare(p->server);
		if (rc < 0)
			break;
		if (rc > 0)
			continue;
		sleeps++;
		if (poll(&pfd, 1, 1000) > 0)
			continue;
		/* Asleep for a second: the producer is done, or waits for a
		 * burst nobody rang for. */
		if (pthread_tryjoin_np(t, &ret) == 0) {
			total = 1;
			break;
		}
		lost++;
	}
	__atomic_store_n(&r.fail, 1, __ATOMIC_RELEASE);
	if (!total)
		assert_int_equal(pthread_join(t, &ret), 0);
	print_message("doorbell race: %u frames, %u sleeps, %llu doorbells, %u lost\n", s.frames,
		      sleeps, (unsigned long long)to_shm(p->client)->tx.kicks, lost);
	assert_int_equal(lost, 0);
	assert_true(rc >= 0);
	assert_null(ret);
	assert_int_equal(s.bad, 0);
	assert_true(sleeps > RACE_BURSTS / 10);
}

/* A peer whose process dies: no goodbye in the ring, only the end of file. */
static void test_shm_peer_dies(void **state)
{
	const struct vrio_transport_ops *ops = vrio_transport_find("shm");
	struct sink s = { .fail_at = -1 };
	struct vrio_listener *l;
	struct vrio_conn *c = NULL, *child;
	char addr[108];
	int i, rc = -EAGAIN, status;
	pid_t pid;

	shm_path(addr, sizeof(addr));
	assert_int_equal(ops->listen(addr, &l), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct pair cp = { .ops = ops };

		if (ops->connect(addr, -1, &child) < 0)
			_exit(1);
		for (i = 0; i < 3; i++)
			if (send_pattern(&cp, child, (uint32_t)i, 5000) < 0)
				_exit(2);
		if (ops->flush(child) < 0)
			_exit(3);
		kill(getpid(), SIGKILL);
	}
	for (i = 0; i < 5000 && rc == -EAGAIN; i++) {
		rc = ops->accept(l, &c);
		if (rc == -EAGAIN)
			usleep(1000);
	}
	assert_int_equal(rc, 0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status));
	for (i = 0; i < 1000; i++) {
		rc = ops->poll(c, on_frame, &s, 16);
		if (rc < 0)
			break;
		if (rc == 0)
			assert_true(fd_readable(vrio_conn_fd(c), 1000));
	}
	assert_int_equal(rc, -ECONNRESET);
	assert_int_equal(s.frames, 3);
	assert_int_equal(s.bad, 0);
	ops->close(c);
	ops->listener_close(l);
}

/* ---- handshakes a listener must refuse ---- */

enum hello_fault {
	HELLO_MAGIC, HELLO_VERSION, HELLO_FLAGS, HELLO_RING_ODD, HELLO_RING_SMALL,
	HELLO_REGION, HELLO_UNSEALED, HELLO_SIZE, HELLO_NO_FD, HELLO_TWO_FDS, HELLO_SHORT,
};

static const struct hello_case {
	enum hello_fault fault;
	int status;		/* in the acknowledgement */
} hello_cases[] = {
	{ HELLO_MAGIC, -EPROTO },
	{ HELLO_VERSION, -EPROTONOSUPPORT },
	{ HELLO_FLAGS, -EPROTO },
	{ HELLO_RING_ODD, -EINVAL },
	{ HELLO_RING_SMALL, -EINVAL },
	{ HELLO_REGION, -EINVAL },
	{ HELLO_UNSEALED, -EINVAL },
	{ HELLO_SIZE, -EINVAL },
	{ HELLO_NO_FD, -EPROTO },
	{ HELLO_TWO_FDS, -EPROTO },
	{ HELLO_SHORT, -EPROTO },
};

/* Connects by hand and sends a hello with one thing wrong. */
static int raw_hello(const char *path, enum hello_fault fault)
{
	uint64_t rs[2] = { SHM_RING_DEFAULT, SHM_RING_DEFAULT };
	struct shm_hello h = { .magic = SHM_MAGIC, .version = SHM_VERSION };
	union {
		char buf[CMSG_SPACE(2 * sizeof(int))];
		struct cmsghdr align;
	} u;
	struct iovec iov = { &h, sizeof(h) };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
	struct sockaddr_un sa;
	struct cmsghdr *cm;
	int fd, fds[2], nfds = 1;
	uint64_t len;

	if (fault == HELLO_RING_ODD)
		rs[1] = SHM_RING_DEFAULT + 4096;
	if (fault == HELLO_RING_SMALL)
		rs[0] = SHM_RING_MIN / 2;
	len = region_len(rs);
	h.ring_size[0] = rs[0];
	h.ring_size[1] = rs[1];
	h.region_len = fault == HELLO_REGION ? len - 4096 : len;
	if (fault == HELLO_MAGIC)
		h.magic = SHM_ACK_MAGIC;
	if (fault == HELLO_VERSION)
		h.version = SHM_VERSION + 1;
	if (fault == HELLO_FLAGS)
		h.flags = 1;
	if (fault == HELLO_SHORT)
		iov.iov_len = sizeof(h) - 8;
	fds[0] = memfd_create("test", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	assert_true(fds[0] >= 0);
	assert_int_equal(ftruncate(fds[0], (off_t)(fault == HELLO_SIZE ? len * 2 : len)), 0);
	if (fault != HELLO_UNSEALED)
		assert_int_equal(fcntl(fds[0], F_ADD_SEALS, F_SEAL_SHRINK), 0);
	fds[1] = fds[0];
	if (fault == HELLO_TWO_FDS)
		nfds = 2;
	if (fault != HELLO_NO_FD) {
		memset(&u, 0, sizeof(u));
		msg.msg_control = u.buf;
		msg.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
		cm = CMSG_FIRSTHDR(&msg);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(nfds * sizeof(int));
		memcpy(CMSG_DATA(cm), fds, nfds * sizeof(int));
	}
	assert_int_equal(shm_sockaddr(path, &sa), 0);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(sendmsg(fd, &msg, 0), (ssize_t)iov.iov_len);
	close(fds[0]);
	return fd;
}

static void test_shm_hello_refused(void **state)
{
	struct pair *p = *state;
	struct vrio_conn *c, *c2, *s2;
	struct shm_ack ack;
	unsigned i, n;
	int fd;

	for (i = 0; i < sizeof(hello_cases) / sizeof(hello_cases[0]); i++) {
		fd = raw_hello(p->addr, hello_cases[i].fault);
		for (n = 0; n < 20; n++) {
			assert_int_equal(p->ops->accept(p->l, &c), -EAGAIN);
			usleep(500);
		}
		assert_true(fd_readable(fd, 1000));
		assert_int_equal(recv(fd, &ack, sizeof(ack), 0), (ssize_t)sizeof(ack));
		assert_int_equal(ack.magic, SHM_ACK_MAGIC);
		assert_int_equal(ack.status, hello_cases[i].status);
		assert_int_equal(recv(fd, &ack, sizeof(ack), 0), 0);
		close(fd);
		assert_int_equal(to_shml(p->l)->npending, 0);
	}
	/* The listener still takes a good one. */
	assert_int_equal(pair_connect(p, &c2, &s2), 0);
	p->ops->close(c2);
	p->ops->close(s2);
}

/* A connection that never says hello holds nothing but its slot. */
static void test_shm_pending_bounded(void **state)
{
	struct pair *p = *state;
	struct vrio_conn *c, *c2, *s2;
	struct sockaddr_un sa;
	int fds[SHM_PENDING_MAX + 4];
	unsigned i;

	assert_int_equal(shm_sockaddr(p->addr, &sa), 0);
	for (i = 0; i < SHM_PENDING_MAX + 4; i++) {
		fds[i] = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		assert_int_equal(connect(fds[i], (struct sockaddr *)&sa, sizeof(sa)), 0);
	}
	assert_int_equal(p->ops->accept(p->l, &c), -EAGAIN);
	assert_int_equal(to_shml(p->l)->npending, SHM_PENDING_MAX);
	/* The oldest were dropped. */
	assert_true(fd_readable(fds[0], 0));
	assert_false(fd_readable(fds[SHM_PENDING_MAX + 3], 0));
	/* The listener is not readable for silent ones. */
	assert_false(fd_readable(p->ops->listener_fd(p->l), 0));
	close(fds[SHM_PENDING_MAX + 3]);
	assert_true(fd_readable(p->ops->listener_fd(p->l), 1000));
	assert_int_equal(p->ops->accept(p->l, &c), -EAGAIN);
	assert_int_equal(to_shml(p->l)->npending, SHM_PENDING_MAX - 1);
	for (i = 0; i < SHM_PENDING_MAX + 3; i++)
		close(fds[i]);
	assert_int_equal(pair_connect(p, &c2, &s2), 0);
	p->ops->close(c2);
	p->ops->close(s2);
}

/* The socket path: a stale socket is replaced, anything else is kept. */
static void test_shm_path(void **state)
{
	const struct vrio_transport_ops *ops = vrio_transport_find("shm");
	struct vrio_listener *l, *l2;
	char path[108];
	struct stat st;
	FILE *f;

	shm_refused_path(path, sizeof(path));
	assert_int_equal(ops->listen(path, &l), 0);
	assert_int_equal(ops->listen(path, &l2), -EADDRINUSE);
	ops->listener_close(l);
	assert_int_equal(lstat(path, &st), -1);
	assert_int_equal(errno, ENOENT);

	f = fopen(path, "w");
	assert_non_null(f);
	fclose(f);
	assert_int_equal(ops->listen(path, &l), -EEXIST);
	assert_int_equal(lstat(path, &st), 0);
	unlink(path);
	assert_int_equal(ops->listen("/nonexistent-dir/x.sock", &l), -ENOENT);
}

int main(void)
{
	const struct CMUnitTest contract[] = {
		cmocka_unit_test_setup_teardown(test_many_small, setup, teardown),
		cmocka_unit_test_setup_teardown(test_large, setup, teardown),
		cmocka_unit_test_setup_teardown(test_budget, setup, teardown),
		cmocka_unit_test_setup_teardown(test_callback_error, setup, teardown),
		cmocka_unit_test_setup_teardown(test_garbage, setup, teardown),
		cmocka_unit_test_setup_teardown(test_peer_close, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wakeup, setup, teardown),
		cmocka_unit_test_setup_teardown(test_full, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lent, setup, teardown),
		cmocka_unit_test(test_registry),
		cmocka_unit_test(test_connect_refused),
		cmocka_unit_test(test_connect_cancelled),
	};
	const struct CMUnitTest shm[] = {
		cmocka_unit_test_setup_teardown(test_shm_bad_magic, setup_shm, teardown),
		cmocka_unit_test_setup_teardown(test_shm_bad_version, setup_shm, teardown),
		cmocka_unit_test_setup_teardown(test_shm_len_above_max, setup_shm, teardown),
		cmocka_unit_test_setup_teardown(test_shm_len_beyond_head, setup_shm, teardown),
		cmocka_unit_test_setup_teardown(test_shm_frame_wraps, setup_shm, teardown),
		cmocka_unit_test_setup_teardown(test_shm_head_too_far, setup_shm, teardown),
		cmocka_unit_test_setup_teardown(test_shm_head_backwards, setup_shm, teardown),
		cmocka_unit_test_setup_teardown(test_shm_pad_at_start, setup_shm, teardown),
		cmocka_unit_test_setup_teardown(test_shm_pad_unpublished, setup_shm, teardown),
		cmocka_unit_test_setup_teardown(test_shm_wrap, setup_shm, teardown),
		cmocka_unit_test_setup_teardown(test_shm_rewind, setup_shm, teardown),
		cmocka_unit_test_setup_teardown(test_shm_tail_corrupt, setup_shm, teardown),
		cmocka_unit_test_setup_teardown(test_shm_ctrl_copied, setup_shm, teardown),
		cmocka_unit_test_setup_teardown(test_shm_space_doorbell, setup_shm, teardown),
		cmocka_unit_test_setup_teardown(test_shm_no_bell_while_polling, setup_shm, teardown),
		cmocka_unit_test_setup_teardown(test_shm_doorbell_race, setup_shm, teardown),
		cmocka_unit_test_setup_teardown(test_shm_hello_refused, setup_shm, teardown),
		cmocka_unit_test_setup_teardown(test_shm_pending_bounded, setup_shm, teardown),
		cmocka_unit_test(test_shm_peer_dies),
		cmocka_unit_test(test_shm_path),
	};
	int failed = 0;
	unsigned i;

	snprintf(tmpdir, sizeof(tmpdir), "/tmp/vrio-transport.XXXXXX");
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 1;
	}
	for (i = 0; i < sizeof(backends) / sizeof(backends[0]); i++) {
		cur = &backends[i];
		failed += cmocka_run_group_tests_name(cur->name, contract, NULL, NULL);
	}
	failed += cmocka_run_group_tests_name("shm internals", shm, NULL, NULL);
	for (i = 0; i < naddr; i++) {
		char path[128];

		snprintf(path, sizeof(path), "%s/s%u.sock", tmpdir, i);
		unlink(path);
	}
	rmdir(tmpdir);
	return failed;
}

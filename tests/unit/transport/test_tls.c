/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The TLS layer (transport/tls.c) in PSK mode over a socketpair: both ends
 * up, frames both ways (small batches and one frame of many records),
 * the same channel binding on both ends; a host with another key, or a
 * name the io-server does not know, is refused by both sides.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "tls.h"
#include "transport.h"

static const uint8_t host_key[40] = "0123456789abcdef0123456789abcdef-host0!";
static const uint8_t other_key[40] = "fedcba9876543210fedcba9876543210-other!";

/* A backend stand-in: one end of the socketpair. */
struct fd_conn {
	struct vrio_conn base;
	int fd;
};

static int fd_conn_fd(struct vrio_conn *c)
{
	return ((struct fd_conn *)c)->fd;
}

static void fd_close(struct vrio_conn *c)
{
	close(((struct fd_conn *)c)->fd);
	free(c);
}

static const struct vrio_transport_ops fd_ops = {
	.name = "fd", .conn_fd = fd_conn_fd, .close = fd_close,
};

static struct vrio_conn *fd_conn(int fd, const char *name)
{
	struct fd_conn *c = calloc(1, sizeof(*c));

	assert_non_null(c);
	c->base.ops = &fd_ops;
	c->fd = fd;
	snprintf(c->base.name, sizeof(c->base.name), "%s", name);
	return &c->base;
}

static int lookup(void *arg, const char *identity, uint8_t *key, size_t *len)
{
	(void)arg;
	if (strcmp(identity, "host0") || *len < sizeof(host_key))
		return -ENOENT;
	memcpy(key, host_key, sizeof(host_key));
	*len = sizeof(host_key);
	return 0;
}

struct client {
	struct vrio_tls_ctx *x;
	struct vrio_conn *inner, *c;
	int rc;
	volatile int done;
};

static void *client_main(void *arg)
{
	struct client *cl = arg;

	cl->rc = vrio_tls_wrap(cl->x, cl->inner, &cl->c);
	__atomic_store_n(&cl->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

struct rx {
	unsigned n;
	uint32_t next;
	size_t bytes;
	bool bad;
};

static uint8_t pat(uint32_t id, size_t i)
{
	return (uint8_t)(id * 31 + i * 7);
}

static int on_frame(void *arg, struct vrio_conn *c, const struct vrio_frame *f, const void *p)
{
	struct rx *r = arg;
	const uint8_t *b = p;

	(void)c;
	if (f->id != r->next)
		r->bad = true;
	for (size_t i = 0; i < f->len; i++)
		if (b[i] != pat(f->id, i))
			r->bad = true;
	r->next++;
	r->n++;
	r->bytes += f->len;
	return 0;
}

static int on_frame_none(void *arg, struct vrio_conn *c, const struct vrio_frame *f,
			 const void *p)
{
	(void)arg, (void)c, (void)f, (void)p;
	return -EBADMSG;
}

/* Both ends' handshake: the host's in a thread (it blocks), the
 * io-server's driven by poll(). Returns the server's last poll() result. */
static int pair(const char *identity, const uint8_t *key, struct vrio_conn **srv,
		struct client *cl, struct vrio_tls_ctx **sx)
{
	struct vrio_tls_opts so = { .name = "io0", .server = true, .psk = true, .lookup = lookup };
	struct vrio_tls_opts co = { .name = "io0", .psk = true, .identity = identity,
				    .key = key, .key_len = sizeof(host_key) };
	struct timespec ts = { 0, 1000000 };
	pthread_t th;
	int sv[2], rc = 0;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
	*sx = vrio_tls_ctx_new(&so);
	assert_non_null(*sx);
	memset(cl, 0, sizeof(*cl));
	cl->x = vrio_tls_ctx_new(&co);
	assert_non_null(cl->x);
	cl->inner = fd_conn(sv[1], "host-end");
	assert_int_equal(vrio_tls_wrap(*sx, fd_conn(sv[0], "ios-end"), srv), 0);
	assert_int_equal(pthread_create(&th, NULL, client_main, cl), 0);
	while (!__atomic_load_n(&cl->done, __ATOMIC_ACQUIRE)) {
		if (rc >= 0)
			rc = (*srv)->ops->poll(*srv, on_frame_none, NULL, 16);
		if (rc >= 0)
			rc = (*srv)->ops->flush(*srv) < 0 ? -EPIPE : rc;
		nanosleep(&ts, NULL);
	}
	pthread_join(th, NULL);
	if (rc >= 0)
		rc = (*srv)->ops->poll(*srv, on_frame_none, NULL, 16);
	return rc;
}

static void send_frames(struct vrio_conn *c, uint32_t first, unsigned n, size_t len)
{
	static uint8_t buf[300000];
	struct vrio_frame f = { .type = 2 };
	struct iovec iov = { buf, 0 };

	for (unsigned k = 0; k < n; k++) {
		f.id = first + k;
		f.len = (uint32_t)len;
		for (size_t i = 0; i < len; i++)
			buf[i] = pat(f.id, i);
		iov.iov_len = len;
		assert_int_equal(c->ops->send(c, &f, &iov, 1), 0);
	}
}

/* Flush the sender and poll the receiver until `want` frames arrived. */
static void pump(struct vrio_conn *tx, struct vrio_conn *rxc, struct rx *r, unsigned want)
{
	for (int spins = 0; r->n < want && spins < 100000; spins++) {
		assert_true(tx->ops->flush(tx) >= 0);
		assert_true(rxc->ops->poll(rxc, on_frame, r, 64) >= 0);
	}
	assert_int_equal(r->n, want);
	assert_false(r->bad);
}

static void test_frames_both_ways(void **state)
{
	struct vrio_tls_ctx *sx;
	struct vrio_conn *srv;
	struct client cl;
	struct rx to_srv = { 0 }, to_host = { 0 };
	uint8_t b1[VRIO_TLS_BINDING_LEN], b2[VRIO_TLS_BINDING_LEN];

	(void)state;
	assert_int_equal(pair("host0", host_key, &srv, &cl, &sx), 0);
	assert_int_equal(cl.rc, 0);
	/* A batch of small frames each way, then frames of many records. */
	send_frames(cl.c, 0, 100, 4096);
	pump(cl.c, srv, &to_srv, 100);
	send_frames(srv, 0, 100, 37);
	pump(srv, cl.c, &to_host, 100);
	send_frames(cl.c, 100, 3, 200000);
	pump(cl.c, srv, &to_srv, 103);
	send_frames(srv, 100, 2, 250000);
	pump(srv, cl.c, &to_host, 102);
	assert_int_equal(to_srv.bytes, 100 * 4096 + 3 * 200000);
	/* Both ends export the same binding; a stack without TLS has none. */
	assert_int_equal(vrio_tls_binding(srv, b1), 0);
	assert_int_equal(vrio_tls_binding(cl.c, b2), 0);
	assert_memory_equal(b1, b2, sizeof(b1));
	assert_int_equal(vrio_tls_binding(srv->inner, b1), -ENOENT);
	/* The host closes: the io-server sees the connection end. */
	cl.c->ops->close(cl.c);
	for (int i = 0, rc = 0; rc >= 0; i++) {
		assert_true(i < 100000);
		rc = srv->ops->poll(srv, on_frame, &to_srv, 64);
	}
	srv->ops->close(srv);
	vrio_tls_ctx_free(sx);
	vrio_tls_ctx_free(cl.x);
}

static void refused(const char *identity, const uint8_t *key)
{
	struct vrio_tls_ctx *sx;
	struct vrio_conn *srv;
	struct client cl;
	int rc;

	rc = pair(identity, key, &srv, &cl, &sx);
	assert_true(cl.rc < 0);
	assert_null(cl.c);
	/* The io-server's side failed too, or sees the host hang up. */
	for (int i = 0; rc >= 0 && i < 1000; i++)
		rc = srv->ops->poll(srv, on_frame_none, NULL, 16);
	assert_true(rc < 0);
	srv->ops->close(srv);
	vrio_tls_ctx_free(sx);
	vrio_tls_ctx_free(cl.x);
}

static void test_wrong_key_refused(void **state)
{
	(void)state;
	refused("host0", other_key);
}

static void test_unknown_identity_refused(void **state)
{
	(void)state;
	refused("host9", host_key);
}

static void test_psk_derivation(void **state)
{
	uint8_t a[VRIO_TLS_PSK_LEN], b[VRIO_TLS_PSK_LEN];

	(void)state;
	/* Distinct per name and per key, and never the key itself. */
	assert_int_equal(vrio_tls_psk(host_key, sizeof(host_key), "host0", a), 0);
	assert_int_equal(vrio_tls_psk(host_key, sizeof(host_key), "host1", b), 0);
	assert_memory_not_equal(a, b, sizeof(a));
	assert_int_equal(vrio_tls_psk(other_key, sizeof(other_key), "host0", b), 0);
	assert_memory_not_equal(a, b, sizeof(a));
	assert_memory_not_equal(a, host_key, sizeof(a));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_psk_derivation),
		cmocka_unit_test(test_frames_both_ways),
		cmocka_unit_test(test_wrong_key_refused),
		cmocka_unit_test(test_unknown_identity_refused),
	};

	/* As the daemons do (common/signals.c): a write to a closed socket
	 * is an error, not a signal. */
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}

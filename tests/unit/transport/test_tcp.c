/* SPDX-License-Identifier: BSD-3-Clause */
/* The TCP backend over loopback: framing, batching, large frames, garbage. */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "transport.h"

struct pair {
	const struct vrio_transport_ops *ops;
	struct vrio_listener *l;
	struct vrio_conn *client, *server;
};

struct sink {
	unsigned frames;
	uint64_t bytes;
	uint32_t last_id;
	int fail_at;		/* return an error on this frame number, or -1 */
	int bad;		/* payload did not match its pattern */
};

static uint8_t pattern(uint32_t id, size_t i)
{
	return (uint8_t)(id * 31 + i * 7);
}

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

static int setup(void **state)
{
	struct pair *p = calloc(1, sizeof(*p));
	char addr[64];
	int i, rc = -EAGAIN;

	p->ops = vrio_transport_find("tcp");
	assert_non_null(p->ops);
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", free_port());
	assert_int_equal(p->ops->listen(addr, &p->l), 0);
	assert_int_equal(p->ops->connect(addr, &p->client), 0);
	for (i = 0; i < 1000 && rc == -EAGAIN; i++) {
		rc = p->ops->accept(p->l, &p->server);
		if (rc == -EAGAIN)
			usleep(1000);
	}
	assert_int_equal(rc, 0);
	*state = p;
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
		if (rc == 0)
			poll(&pfd, 1, 1);
	}
	return rc;
}

static int send_pattern(struct pair *p, struct vrio_conn *c, uint32_t id, size_t len)
{
	uint8_t *buf = malloc(len ? len : 1);
	struct iovec iov[2];
	struct vrio_frame f = { .type = VRIO_FRAME_REQ, .id = id, .len = (uint32_t)len };
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
	static const char junk[64] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
	int fd = vrio_conn_fd(p->client);

	assert_int_equal(send(fd, junk, sizeof(junk), 0), (ssize_t)sizeof(junk));
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

static void test_registry(void **state)
{
	static const struct vrio_transport_ops incomplete = { .name = "half" };

	assert_null(vrio_transport_find("carrier-pigeon"));
	assert_int_equal(vrio_transport_register(&incomplete), -EINVAL);
	assert_int_equal(vrio_transport_register(vrio_transport_find("tcp")), -EEXIST);
}

static void test_connect_refused(void **state)
{
	const struct vrio_transport_ops *ops = vrio_transport_find("tcp");
	struct vrio_conn *c = NULL;
	char addr[64];

	snprintf(addr, sizeof(addr), "127.0.0.1:%d", free_port());
	assert_int_equal(ops->connect(addr, &c), -ECONNREFUSED);
	assert_int_equal(ops->connect("not-an-address", &c), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_many_small, setup, teardown),
		cmocka_unit_test_setup_teardown(test_large, setup, teardown),
		cmocka_unit_test_setup_teardown(test_budget, setup, teardown),
		cmocka_unit_test_setup_teardown(test_callback_error, setup, teardown),
		cmocka_unit_test_setup_teardown(test_garbage, setup, teardown),
		cmocka_unit_test_setup_teardown(test_peer_close, setup, teardown),
		cmocka_unit_test(test_registry),
		cmocka_unit_test(test_connect_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

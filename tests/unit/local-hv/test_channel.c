/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The backend channel (local-hv/channel.c). A frontend must not be able to
 * name a descriptor local-hv holds by writing its number into a message:
 *
 *   - a table of rte_vhost contexts built by hand: descriptors planted in
 *     the payload are never taken, only the one in fds[]; and that one only
 *     if it is a socketpair end made by the frontend's process, not a named
 *     connection, a TCP socket, a pipe, a datagram socket, a channel already
 *     held, one made by another process; a context not laid out as pinned
 *     is refused;
 *   - through the real rte_vhost: a frontend over a vhost-user socket sends
 *     a forged SET_SLAVE_REQ_FD whose payload plants the number of another
 *     open socket, and nothing is taken; a genuine one (the socket in
 *     SCM_RIGHTS) is, and is that very socket. This is the check that the
 *     pinned layout is the library's.
 */
#include <errno.h>
#include <fcntl.h>
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
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <rte_vhost.h>

#include "channel.h"
#include "dpdk_eal.h"

#define ARRAY_SIZE(a)		(sizeof(a) / sizeof((a)[0]))
#define CTX_SIZE		680
#define CTX_FDS			644
#define CTX_FD_NUM		676
#define SET_SLAVE_REQ_FD	21
#define NEED_REPLY		(1u << 3)

static char g_dir[64];

/* The bytes rte_vhost 22.11 hands pre_msg_handle, as channel.c pins them. */
struct ctx {
	uint8_t b[CTX_SIZE];
};

static void ctx_init(struct ctx *c, int fd_num, const int *fds)
{
	int i, v;

	memset(c, 0, sizeof(*c));
	v = SET_SLAVE_REQ_FD;
	memcpy(c->b, &v, 4);
	for (i = 0; i < 8; i++) {
		v = i < fd_num ? fds[i] : -1;
		memcpy(c->b + CTX_FDS + 4 * i, &v, 4);
	}
	memcpy(c->b + CTX_FD_NUM, &fd_num, 4);
}

/* What the old scanner took: fd, seven -1s, then 1, anywhere it looked. */
static void plant(uint8_t *p, size_t len, int fd)
{
	int v[9], k;
	size_t off;

	v[0] = fd;
	for (k = 1; k < 8; k++)
		v[k] = -1;
	v[8] = 1;
	for (off = 0; off + sizeof(v) <= len; off += sizeof(v))
		memcpy(p + off, v, sizeof(v));
}

static bool same_file(int a, int b)
{
	struct stat sa, sb;

	return fstat(a, &sa) == 0 && fstat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
	       sa.st_ino == sb.st_ino;
}

static int listen_at(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	assert_true(fd >= 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	unlink(path);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(fd, 4), 0);
	return fd;
}

static int connect_to(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	assert_true(fd >= 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return fd;
}

/* A socketpair end made by another process, passed to us. */
static int foreign_socket(void)
{
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	struct iovec iov;
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	struct cmsghdr *cm;
	int pass[2], sp[2], status, fd = -1;
	char byte = 0;
	pid_t pid;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, pass), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		if (socketpair(AF_UNIX, SOCK_STREAM, 0, sp) < 0)
			_exit(1);
		iov = (struct iovec){ &byte, 1 };
		mh.msg_control = u.buf;
		mh.msg_controllen = sizeof(u.buf);
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cm), &sp[1], sizeof(int));
		_exit(sendmsg(pass[1], &mh, 0) == 1 ? 0 : 1);
	}
	iov = (struct iovec){ &byte, 1 };
	mh.msg_control = u.buf;
	mh.msg_controllen = sizeof(u.buf);
	assert_int_equal(recvmsg(pass[0], &mh, 0), 1);
	cm = CMSG_FIRSTHDR(&mh);
	assert_non_null(cm);
	memcpy(&fd, CMSG_DATA(cm), sizeof(int));
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	close(pass[0]);
	close(pass[1]);
	return fd;
}

/* The descriptors of the table's world: a device whose frontend (this
 * process) is connected on its socket, and everything else we hold. */
enum which {
	W_NONE,
	W_GENUINE,	/* a socketpair end we made: what a frontend sends */
	W_OTHER,	/* another such end: what a forger plants */
	W_CONN,		/* the frontend's connection as local-hv holds it */
	W_TCP,
	W_PIPE,
	W_DGRAM,
	W_HELD,		/* another device's channel */
	W_FOREIGN,	/* a socketpair end another process made */
	W_COUNT,
};

struct world {
	int fd[W_COUNT];
	int held_dup;		/* local-hv's copy of W_HELD */
	int listener, client;
	char socket[96];
};

static void world_init(struct world *w)
{
	int sp[2], pp[2];

	memset(w, 0, sizeof(*w));
	w->fd[W_NONE] = -1;
	snprintf(w->socket, sizeof(w->socket), "%s/dev.sock", g_dir);
	w->listener = listen_at(w->socket);
	w->client = connect_to(w->socket);
	w->fd[W_CONN] = accept(w->listener, NULL, NULL);
	assert_true(w->fd[W_CONN] >= 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
	w->fd[W_GENUINE] = sp[1];
	close(sp[0]);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
	w->fd[W_OTHER] = sp[1];
	close(sp[0]);
	w->fd[W_TCP] = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(w->fd[W_TCP] >= 0);
	assert_int_equal(pipe(pp), 0);
	w->fd[W_PIPE] = pp[0];
	close(pp[1]);
	assert_int_equal(socketpair(AF_UNIX, SOCK_DGRAM, 0, sp), 0);
	w->fd[W_DGRAM] = sp[1];
	close(sp[0]);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
	w->fd[W_HELD] = sp[1];
	w->held_dup = dup(sp[1]);
	close(sp[0]);
	w->fd[W_FOREIGN] = foreign_socket();
}

static void world_fini(struct world *w)
{
	unsigned i;

	for (i = 1; i < W_COUNT; i++)
		close(w->fd[i]);
	close(w->held_dup);
	close(w->client);
	close(w->listener);
	unlink(w->socket);
}

struct take_case {
	const char *what;
	int fd_num;
	enum which fds[3];
	enum which planted;	/* written into the payload, the old scanner's way */
	int corrupt;		/* 1: a stray fds[] entry; 2: fd_num out of range */
	const char *socket;	/* NULL: the device's */
	int rc;			/* 0: W_GENUINE is taken */
};

static const struct take_case take_cases[] = {
	{ "forged: a planted socket, no descriptor", 0, { W_NONE }, W_OTHER, 0, NULL, -EBADF },
	{ "forged: the frontend's own connection planted", 0, { W_NONE }, W_CONN, 0, NULL, -EBADF },
	{ "genuine, with a planted one beside it", 1, { W_GENUINE }, W_OTHER, 0, NULL, 0 },
	{ "genuine", 1, { W_GENUINE }, W_NONE, 0, NULL, 0 },
	{ "two descriptors", 2, { W_GENUINE, W_OTHER }, W_NONE, 0, NULL, -EBADF },
	{ "a named connection", 1, { W_CONN }, W_NONE, 0, NULL, -EPERM },
	{ "a TCP socket", 1, { W_TCP }, W_NONE, 0, NULL, -EPERM },
	{ "a pipe", 1, { W_PIPE }, W_NONE, 0, NULL, -EPERM },
	{ "a datagram socketpair", 1, { W_DGRAM }, W_NONE, 0, NULL, -EPERM },
	{ "another device's channel", 1, { W_HELD }, W_NONE, 0, NULL, -EPERM },
	{ "made by another process", 1, { W_FOREIGN }, W_NONE, 0, NULL, -EPERM },
	{ "no frontend on the device's socket", 1, { W_GENUINE }, W_NONE, 0, "/nonexistent.sock",
	  -EPERM },
	{ "context: a stray descriptor after fd_num", 1, { W_GENUINE }, W_NONE, 1, NULL, -EPROTO },
	{ "context: fd_num out of range", 1, { W_GENUINE }, W_NONE, 2, NULL, -EPROTO },
};

static void test_take_table(void **state)
{
	struct world w;
	const char *why;
	unsigned i, k;

	(void)state;
	if (!lhv_channel_supported(&why))
		skip();
	world_init(&w);
	for (i = 0; i < ARRAY_SIZE(take_cases); i++) {
		const struct take_case *tc = &take_cases[i];
		struct lhv_channel_peer p = {
			.name = tc->what,
			.socket = tc->socket ? tc->socket : w.socket,
			.held = &w.held_dup,
			.n_held = 1,
		};
		int fds[3], v, rc;
		struct ctx c;

		for (k = 0; k < ARRAY_SIZE(fds); k++)
			fds[k] = w.fd[tc->fds[k]];
		ctx_init(&c, tc->fd_num, fds);
		if (tc->planted != W_NONE)
			plant(c.b + 12, CTX_FDS - 12, w.fd[tc->planted]);
		if (tc->corrupt == 1) {
			v = w.fd[W_OTHER];
			memcpy(c.b + CTX_FDS + 4 * 5, &v, 4);
		} else if (tc->corrupt == 2) {
			v = 9;
			memcpy(c.b + CTX_FD_NUM, &v, 4);
		}
		rc = lhv_channel_take(&c, &p);
		print_message("%-45s -> %d\n", tc->what, rc);
		if (tc->rc == 0) {
			assert_true(rc >= 0);
			assert_true(same_file(rc, w.fd[W_GENUINE]));
			assert_int_not_equal(rc, w.fd[W_GENUINE]);
			assert_true(fcntl(rc, F_GETFD) & FD_CLOEXEC);
			close(rc);
		} else {
			assert_int_equal(rc, tc->rc);
		}
	}
	world_fini(&w);
}

/* Through the real rte_vhost: what pre_msg_handle took, per message. */
static struct {
	char socket[96];
	int held;
	int taken;		/* atomic: the last result, 1: none yet */
} g_rv;

static enum rte_vhost_msg_result rv_pre_msg(int vid, void *arg)
{
	struct lhv_channel_peer p = {
		.name = "rte_vhost", .socket = g_rv.socket, .held = &g_rv.held, .n_held = 1,
	};
	uint32_t req;

	(void)vid;
	memcpy(&req, arg, sizeof(req));
	if (req == SET_SLAVE_REQ_FD)
		__atomic_store_n(&g_rv.taken, lhv_channel_take(arg, &p), __ATOMIC_RELEASE);
	return RTE_VHOST_MSG_RESULT_NOT_HANDLED;
}

static const struct rte_vhost_user_extern_ops rv_extern = { .pre_msg_handle = rv_pre_msg };

static int rv_new_connection(int vid)
{
	return rte_vhost_extern_callback_register(vid, &rv_extern, NULL);
}

static const struct rte_vhost_device_ops rv_ops = { .new_connection = rv_new_connection };

/* One SET_SLAVE_REQ_FD on a fresh connection, asking for a reply so that
 * rte_vhost is surely done with it; what pre_msg_handle took. */
static int rv_send(const void *payload, uint32_t size, int fd)
{
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	uint32_t hdr[3] = { SET_SLAVE_REQ_FD, 1 | NEED_REPLY, size };
	struct iovec iov[2] = { { hdr, sizeof(hdr) }, { (void *)payload, size } };
	struct msghdr mh = { .msg_iov = iov, .msg_iovlen = size ? 2 : 1 };
	struct pollfd pfd;
	uint8_t reply[20];
	struct cmsghdr *cm;
	int s, taken;

	__atomic_store_n(&g_rv.taken, 1, __ATOMIC_RELEASE);
	s = connect_to(g_rv.socket);
	if (fd >= 0) {
		mh.msg_control = u.buf;
		mh.msg_controllen = sizeof(u.buf);
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cm), &fd, sizeof(int));
	}
	/* rte_vhost reads the header (with the descriptors) apart from the
	 * payload; one sendmsg keeps the descriptors on the header. */
	assert_int_equal(sendmsg(s, &mh, 0), (ssize_t)(sizeof(hdr) + size));
	pfd = (struct pollfd){ .fd = s, .events = POLLIN };
	assert_int_equal(poll(&pfd, 1, 10000), 1);
	assert_int_equal(recv(s, reply, sizeof(reply), MSG_WAITALL), (ssize_t)sizeof(reply));
	taken = __atomic_load_n(&g_rv.taken, __ATOMIC_ACQUIRE);
	close(s);
	return taken;
}

static void test_through_rte_vhost(void **state)
{
	uint8_t payload[600];
	int planted[2], genuine[2], held[2], rc;
	const char *why;

	(void)state;
	if (!lhv_channel_supported(&why))
		skip();
	if (vrio_dpdk_eal_init("test_channel", "unit", NULL, false) < 0)
		skip();
	snprintf(g_rv.socket, sizeof(g_rv.socket), "%s/rv.sock", g_dir);
	assert_int_equal(rte_vhost_driver_register(g_rv.socket, 0), 0);
	assert_int_equal(rte_vhost_driver_callback_register(g_rv.socket, &rv_ops), 0);
	assert_int_equal(rte_vhost_driver_start(g_rv.socket), 0);

	/* A socket that would pass every check, had it been sent. */
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, planted), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, genuine), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, held), 0);
	g_rv.held = held[1];

	/* Forged: the number planted all over the payload, no descriptor. */
	plant(payload, sizeof(payload), planted[1]);
	rc = rv_send(payload, sizeof(payload), -1);
	print_message("forged, planted %d in the payload -> %d\n", planted[1], rc);
	assert_int_equal(rc, -EBADF);

	/* Forged: a payload left on rte_vhost's stack by the message before,
	 * then a SET_SLAVE_REQ_FD with none of its own. */
	rc = rv_send(payload, sizeof(payload), -1);
	rc = rv_send(NULL, 0, -1);
	print_message("forged, planted by the message before -> %d\n", rc);
	assert_int_equal(rc, -EBADF);

	/* Someone else's: a channel already held comes back. */
	rc = rv_send(NULL, 0, held[1]);
	print_message("a held channel sent back -> %d\n", rc);
	assert_int_equal(rc, -EPERM);

	/* Genuine, with the planted pattern still in the payload. */
	rc = rv_send(payload, sizeof(payload), genuine[1]);
	print_message("genuine -> %d\n", rc);
	assert_true(rc >= 0);
	assert_true(same_file(rc, genuine[1]));
	assert_false(same_file(rc, planted[1]));
	/* And it is a channel: what is written on it reaches the frontend. */
	assert_int_equal(write(rc, "x", 1), 1);
	assert_int_equal(read(genuine[0], payload, 1), 1);
	close(rc);

	close(planted[0]);
	close(planted[1]);
	close(genuine[0]);
	close(genuine[1]);
	close(held[0]);
	close(held[1]);
	assert_int_equal(rte_vhost_driver_unregister(g_rv.socket), 0);
	unlink(g_rv.socket);
	vrio_dpdk_eal_fini();
}

static int group_setup(void **state)
{
	(void)state;
	snprintf(g_dir, sizeof(g_dir), "/tmp/test_channel.XXXXXX");
	return mkdtemp(g_dir) ? 0 : -1;
}

static int group_teardown(void **state)
{
	(void)state;
	return rmdir(g_dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_take_table),
		cmocka_unit_test(test_through_rte_vhost),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}

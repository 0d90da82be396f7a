/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The control socket over a real unix socket in a temporary directory. The
 * server runs on the test's thread: every wait for an answer pumps it
 * (poll + vrio_ctl_process) until the answer is there, with a deadline.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "ctl.h"
#include "log.h"

#define WAIT_NS (5ull * 1000000000)

struct fixture {
	char dir[64];
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	struct vrio_ctl *c;
	unsigned notified;
};

/* Methods. */

static void m_add(void *arg, struct vrio_ctl_req *r, const json_t *params)
{
	json_int_t a, b;

	if (json_unpack((json_t *)params, "{s:I, s:I}", "a", &a, "b", &b) != 0) {
		vrio_ctl_error_data(r, json_pack("{s:s}", "expected", "{a: int, b: int}"));
		vrio_ctl_error(r, VRIO_CTL_INVALID_PARAMS, "%s: expected integers a and b",
			       vrio_ctl_req_method(r));
		return;
	}
	vrio_ctl_reply(r, json_pack("{s:I}", "sum", a + b));
}

static void m_echo(void *arg, struct vrio_ctl_req *r, const json_t *params)
{
	vrio_ctl_reply(r, params ? json_deep_copy(params) : json_null());
}

static void m_fail(void *arg, struct vrio_ctl_req *r, const json_t *params)
{
	vrio_ctl_error_data(r, json_pack("{s:s, s:i, s:i}", "file", "t.yaml", "line", 3, "col", 5));
	vrio_ctl_error(r, VRIO_CTL_EFAILED, "t.yaml:3:5: %s", "bad value");
}

static void m_notify(void *arg, struct vrio_ctl_req *r, const json_t *params)
{
	struct fixture *f = arg;

	f->notified++;
	vrio_ctl_reply(r, json_true());
}

/* Breaks the contract: the server answers for it. */
static void m_silent(void *arg, struct vrio_ctl_req *r, const json_t *params)
{
}

static const struct vrio_ctl_method methods[] = {
	{ "add", m_add, "a + b" },
	{ "echo", m_echo, "params back" },
	{ "fail", m_fail, "an error with data" },
	{ "notify", m_notify, "counts calls" },
	{ "silent", m_silent, "never answers" },
};

#define N_METHODS (sizeof(methods) / sizeof(methods[0]))

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/vrio-ctl.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/run/vrio/ctl.sock", f->dir);
	assert_int_equal(vrio_ctl_open(f->path, methods, N_METHODS, f, &f->c), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[128];

	vrio_ctl_close(f->c);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

/* One round of the server's loop. */
static void pump(struct fixture *f, int ms)
{
	struct pollfd fds[1 + VRIO_CTL_MAX_CLIENTS];
	int n = vrio_ctl_pollfds(f->c, fds, 1 + VRIO_CTL_MAX_CLIENTS);

	assert_true(n >= 1);
	if (poll(fds, (nfds_t)n, ms) > 0)
		vrio_ctl_process(f->c, fds, n);
}

/* A client. */

struct client {
	int fd;
	char buf[1 << 17];
	size_t len;
};

static struct client *client_open(struct fixture *f)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct client *cl = calloc(1, sizeof(*cl));

	assert_non_null(cl);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", f->path);
	cl->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	assert_true(cl->fd >= 0);
	assert_int_equal(connect(cl->fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	pump(f, 50);
	return cl;
}

static void client_close(struct client *cl)
{
	close(cl->fd);
	free(cl);
}

/* Sends everything, letting the server read; -errno once it is gone. */
static int client_send(struct fixture *f, struct client *cl, const void *buf, size_t len)
{
	uint64_t deadline = vrio_now_ns() + WAIT_NS;
	const char *p = buf;

	while (len > 0) {
		ssize_t n = send(cl->fd, p, len, MSG_NOSIGNAL);

		if (n < 0 && errno != EAGAIN)
			return -errno;
		if (n < 0) {
			assert_true(vrio_now_ns() < deadline);
			pump(f, 10);
			continue;
		}
		p += n;
		len -= (size_t)n;
	}
	pump(f, 0);
	return 0;
}

static void client_sendstr(struct fixture *f, struct client *cl, const char *s)
{
	assert_int_equal(client_send(f, cl, s, strlen(s)), 0);
}

/* The next answer line, or NULL at EOF (or a reset) before one. */
static json_t *client_recv(struct fixture *f, struct client *cl)
{
	uint64_t deadline = vrio_now_ns() + WAIT_NS;
	json_error_t je;
	char *nl;
	json_t *v;

	while (!(nl = memchr(cl->buf, '\n', cl->len))) {
		ssize_t n = recv(cl->fd, cl->buf + cl->len, sizeof(cl->buf) - cl->len, 0);

		if (n == 0 || (n < 0 && errno == ECONNRESET))
			return NULL;
		if (n > 0) {
			cl->len += (size_t)n;
			continue;
		}
		assert_int_equal(errno, EAGAIN);
		assert_true(vrio_now_ns() < deadline);
		pump(f, 10);
	}
	v = json_loadb(cl->buf, (size_t)(nl - cl->buf), 0, &je);
	if (!v)
		fail_msg("answer is not JSON: %s: '%.*s'", je.text, (int)(nl - cl->buf), cl->buf);
	cl->len -= (size_t)(nl + 1 - cl->buf);
	memmove(cl->buf, nl + 1, cl->len);
	return v;
}

static void expect_closed(struct fixture *f, struct client *cl)
{
	json_t *v = client_recv(f, cl);

	if (v)
		fail_msg("expected the server to close, got %s", json_dumps(v, JSON_COMPACT));
}

/* Compares and releases want. */
static void assert_json(const json_t *got, json_t *want)
{
	char *g = json_dumps(got, JSON_COMPACT | JSON_ENCODE_ANY);
	char *w = json_dumps(want, JSON_COMPACT | JSON_ENCODE_ANY);

	assert_non_null(want);
	if (!json_equal(got, want))
		fail_msg("got %s, want %s", g ? g : "(nothing)", w);
	free(g);
	free(w);
	json_decref(want);
}

/* Checks the envelope; returns the error code, or 0 for a result. */
static int answer_code(const json_t *a, const char *id_json)
{
	json_t *want = json_loads(id_json, JSON_DECODE_ANY, NULL);
	json_t *err = json_object_get(a, "error");

	assert_non_null(want);
	assert_string_equal(json_string_value(json_object_get(a, "jsonrpc")), "2.0");
	assert_true(json_equal(json_object_get(a, "id"), want));
	json_decref(want);
	assert_true(!err != !json_object_get(a, "result"));
	if (!err)
		return 0;
	assert_true(json_is_string(json_object_get(err, "message")));
	return (int)json_integer_value(json_object_get(err, "code"));
}

/* Sends one request, expects one answer with that id; returns the answer. */
static json_t *call(struct fixture *f, struct client *cl, const char *req, const char *id)
{
	json_t *a;

	client_sendstr(f, cl, req);
	a = client_recv(f, cl);
	assert_non_null(a);
	answer_code(a, id);
	return a;
}

static void expect_alive(struct fixture *f, struct client *cl)
{
	json_t *a = call(f, cl, "{\"jsonrpc\":\"2.0\",\"method\":\"add\",\"params\":{\"a\":2,"
			  "\"b\":40},\"id\":\"alive\"}", "\"alive\"");

	assert_int_equal(json_integer_value(json_object_get(json_object_get(a, "result"), "sum")),
			 42);
	json_decref(a);
}

/* Tests. */

static void test_good_call(void **state)
{
	struct fixture *f = *state;
	struct client *cl = client_open(f);
	json_t *a;

	a = call(f, cl, "{\"jsonrpc\":\"2.0\",\"method\":\"add\",\"params\":{\"a\":1,\"b\":2},"
		 "\"id\":1}\n", "1");
	assert_json(json_object_get(a, "result"), json_pack("{s:i}", "sum", 3));
	json_decref(a);
	a = call(f, cl, "{\"id\":\"x\",\"method\":\"echo\",\"jsonrpc\":\"2.0\","
		 "\"params\":[1,\"two\",null]}", "\"x\"");
	assert_json(json_object_get(a, "result"), json_pack("[i,s,n]", 1, "two"));
	json_decref(a);
	/* No params: the handler gets NULL; an id of null is still answered. */
	a = call(f, cl, "{\"jsonrpc\":\"2.0\",\"method\":\"echo\",\"id\":null}", "null");
	assert_true(json_is_null(json_object_get(a, "result")));
	json_decref(a);
	client_close(cl);
}

static const struct bad_case {
	const char *name;
	const char *req;
	int code;
	const char *id;		/* the answer's, as JSON */
	bool closes;
} bad_cases[] = {
	{ "batch", "[{\"jsonrpc\":\"2.0\",\"method\":\"add\",\"id\":1}]",
	  VRIO_CTL_INVALID_REQUEST, "null", false },
	{ "empty batch", "[]", VRIO_CTL_INVALID_REQUEST, "null", false },
	{ "string", "\"add\"", VRIO_CTL_INVALID_REQUEST, "null", false },
	{ "number", "42\n", VRIO_CTL_INVALID_REQUEST, "null", false },
	{ "literal", "true ", VRIO_CTL_INVALID_REQUEST, "null", false },
	{ "no jsonrpc", "{\"method\":\"add\",\"id\":2}", VRIO_CTL_INVALID_REQUEST, "2", false },
	{ "jsonrpc 1.0", "{\"jsonrpc\":\"1.0\",\"method\":\"add\",\"id\":3}",
	  VRIO_CTL_INVALID_REQUEST, "3", false },
	{ "jsonrpc number", "{\"jsonrpc\":2.0,\"method\":\"add\",\"id\":3}",
	  VRIO_CTL_INVALID_REQUEST, "3", false },
	{ "method number", "{\"jsonrpc\":\"2.0\",\"method\":5,\"id\":4}",
	  VRIO_CTL_INVALID_REQUEST, "4", false },
	{ "no method", "{\"jsonrpc\":\"2.0\",\"id\":4}", VRIO_CTL_INVALID_REQUEST, "4", false },
	{ "no method, no id", "{\"jsonrpc\":\"2.0\"}", VRIO_CTL_INVALID_REQUEST, "null", false },
	{ "params string", "{\"jsonrpc\":\"2.0\",\"method\":\"add\",\"params\":\"x\",\"id\":5}",
	  VRIO_CTL_INVALID_REQUEST, "5", false },
	{ "params null", "{\"jsonrpc\":\"2.0\",\"method\":\"add\",\"params\":null,\"id\":5}",
	  VRIO_CTL_INVALID_REQUEST, "5", false },
	{ "id object", "{\"jsonrpc\":\"2.0\",\"method\":\"add\",\"id\":{}}",
	  VRIO_CTL_INVALID_REQUEST, "null", false },
	{ "id bool", "{\"jsonrpc\":\"2.0\",\"method\":\"add\",\"id\":true}",
	  VRIO_CTL_INVALID_REQUEST, "null", false },
	{ "unknown method", "{\"jsonrpc\":\"2.0\",\"method\":\"nope\",\"id\":\"u\"}",
	  VRIO_CTL_METHOD_NOT_FOUND, "\"u\"", false },
	{ "invalid params",
	  "{\"jsonrpc\":\"2.0\",\"method\":\"add\",\"params\":{\"a\":1},\"id\":6}",
	  VRIO_CTL_INVALID_PARAMS, "6", false },
	{ "application error", "{\"jsonrpc\":\"2.0\",\"method\":\"fail\",\"id\":7}",
	  VRIO_CTL_EFAILED, "7", false },
	{ "handler without answer", "{\"jsonrpc\":\"2.0\",\"method\":\"silent\",\"id\":8}",
	  VRIO_CTL_INTERNAL_ERROR, "8", false },
	{ "truncated object", "{\"jsonrpc\":\"2.0\",\"method\":\"add\",}",
	  VRIO_CTL_PARSE_ERROR, "null", true },
	{ "bad literal", "{\"jsonrpc\":\"2.0\",\"method\":tru}", VRIO_CTL_PARSE_ERROR, "null",
	  true },
	{ "unmatched close", "}", VRIO_CTL_PARSE_ERROR, "null", true },
	{ "mismatched close", "{\"a\":[1}]", VRIO_CTL_PARSE_ERROR, "null", true },
	{ "garbage", "hello world", VRIO_CTL_PARSE_ERROR, "null", true },
	{ "bad escape", "{\"jsonrpc\":\"2\\x0\"}", VRIO_CTL_PARSE_ERROR, "null", true },
	{ "NUL in a string", "{\"jsonrpc\":\"2\\u0000\"}", VRIO_CTL_PARSE_ERROR, "null", true },
	{ "not UTF-8", "{\"jsonrpc\":\"\xff\xfe\"}", VRIO_CTL_PARSE_ERROR, "null", true },
};

static void test_bad_requests(void **state)
{
	struct fixture *f = *state;
	struct client *other = client_open(f);

	for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
		const struct bad_case *bc = &bad_cases[i];
		struct client *cl = client_open(f);
		json_t *a;

		print_message("case: %s\n", bc->name);
		client_sendstr(f, cl, bc->req);
		a = client_recv(f, cl);
		if (!a)
			fail_msg("%s: no answer", bc->name);
		assert_int_equal(answer_code(a, bc->id), bc->code);
		json_decref(a);
		if (bc->closes)
			expect_closed(f, cl);
		else
			expect_alive(f, cl);
		client_close(cl);
		/* Nothing one client sends affects another. */
		expect_alive(f, other);
	}
	client_close(other);
}

static void test_error_data(void **state)
{
	struct fixture *f = *state;
	struct client *cl = client_open(f);
	json_t *a, *err;

	a = call(f, cl, "{\"jsonrpc\":\"2.0\",\"method\":\"fail\",\"id\":1}", "1");
	err = json_object_get(a, "error");
	assert_string_equal(json_string_value(json_object_get(err, "message")),
			    "t.yaml:3:5: bad value");
	assert_json(json_object_get(err, "data"),
		    json_pack("{s:s, s:i, s:i}", "file", "t.yaml", "line", 3, "col", 5));
	json_decref(a);
	client_close(cl);
}

static void test_notification(void **state)
{
	struct fixture *f = *state;
	struct client *cl = client_open(f);
	json_t *a;

	/* Neither a notification nor its errors are answered. */
	client_sendstr(f, cl, "{\"jsonrpc\":\"2.0\",\"method\":\"notify\"}");
	client_sendstr(f, cl, "{\"jsonrpc\":\"2.0\",\"method\":\"nope\"}");
	client_sendstr(f, cl, "{\"jsonrpc\":\"2.0\",\"method\":\"fail\",\"params\":{}}");
	a = call(f, cl, "{\"jsonrpc\":\"2.0\",\"method\":\"notify\",\"id\":9}", "9");
	json_decref(a);
	assert_int_equal(f->notified, 2);
	assert_int_equal(cl->len, 0);
	client_close(cl);
}

static void test_parse_error_isolated(void **state)
{
	struct fixture *f = *state;
	struct client *good = client_open(f), *bad = client_open(f);
	json_t *a;

	/* A request half sent on the good client while the bad one fails. */
	client_sendstr(f, good, "{\"jsonrpc\":\"2.0\",\"method\":\"add\",");
	client_sendstr(f, bad, "{\"jsonrpc\" \"2.0\"}{\"jsonrpc\":\"2.0\",\"method\":\"add\"}");
	a = client_recv(f, bad);
	assert_non_null(a);
	assert_int_equal(answer_code(a, "null"), VRIO_CTL_PARSE_ERROR);
	json_decref(a);
	expect_closed(f, bad);
	a = call(f, good, "\"params\":{\"a\":1,\"b\":1},\"id\":1}", "1");
	json_decref(a);
	expect_alive(f, good);
	client_close(good);
	client_close(bad);
}

static void test_oversized(void **state)
{
	struct fixture *f = *state;
	struct client *cl = client_open(f), *other = client_open(f);
	size_t len = VRIO_CTL_MAX_REQUEST + 4096;
	char *req = malloc(len);
	json_t *a;

	assert_non_null(req);
	memset(req, 'x', len);
	memcpy(req, "{\"jsonrpc\":\"2.0\",\"method\":\"echo\",\"params\":[\"", 43);
	/* The server may close before it has read everything. */
	client_send(f, cl, req, len);
	a = client_recv(f, cl);
	assert_non_null(a);
	assert_int_equal(answer_code(a, "null"), VRIO_CTL_INVALID_REQUEST);
	assert_non_null(strstr(json_string_value(json_object_get(json_object_get(a, "error"),
								  "message")), "too large"));
	json_decref(a);
	expect_closed(f, cl);
	client_close(cl);
	expect_alive(f, other);
	client_close(other);
	free(req);
}

/* Large but within the bound: read over several turns of the loop. */
static void test_large_request(void **state)
{
	struct fixture *f = *state;
	struct client *cl = client_open(f);
	const size_t pad = VRIO_CTL_MAX_REQUEST - 100;
	char *big = malloc(pad + 1), *req = malloc(pad + 100);
	json_t *a;

	assert_non_null(big);
	assert_non_null(req);
	memset(big, 'y', pad);
	big[pad] = '\0';
	snprintf(req, pad + 100, "{\"jsonrpc\":\"2.0\",\"method\":\"echo\",\"params\":[\"%s\"],"
		 "\"id\":1}", big);
	assert_true(strlen(req) <= VRIO_CTL_MAX_REQUEST);
	a = call(f, cl, req, "1");
	assert_string_equal(json_string_value(json_array_get(json_object_get(a, "result"), 0)),
			    big);
	json_decref(a);
	client_close(cl);
	free(big);
	free(req);
}

static void test_byte_by_byte(void **state)
{
	static const char req[] =
		" \r\n{\"jsonrpc\":\"2.0\",\"method\":\"echo\",\"id\":-1.5e3,\"params\":"
		"{\"s\":\"a\\\"b\\\\{\\u00e9}\",\"t\":true,\"f\":false,\"n\":null,"
		"\"x\":[-12.5e-3,0,[]]}}\n";
	struct fixture *f = *state;
	struct client *cl = client_open(f);
	json_t *a, *want;

	for (size_t i = 0; i < sizeof(req) - 1; i++) {
		assert_int_equal(client_send(f, cl, &req[i], 1), 0);
		pump(f, 0);
	}
	a = client_recv(f, cl);
	assert_non_null(a);
	assert_int_equal(answer_code(a, "-1.5e3"), 0);
	want = json_pack("{s:s, s:b, s:b, s:n, s:[f, i, []]}", "s", "a\"b\\{\xc3\xa9}", "t", 1,
			 "f", 0, "n", "x", -12.5e-3, 0);
	assert_json(json_object_get(a, "result"), want);
	json_decref(a);
	client_close(cl);
}

static void test_two_in_one_write(void **state)
{
	static const char *const writes[] = {
		"{\"jsonrpc\":\"2.0\",\"method\":\"add\",\"params\":[],\"id\":1}"
		"{\"jsonrpc\":\"2.0\",\"method\":\"echo\",\"params\":[2],\"id\":2}",
		"{\"jsonrpc\":\"2.0\",\"method\":\"echo\",\"params\":[1],\"id\":1}\n\t "
		"{\"jsonrpc\":\"2.0\",\"method\":\"echo\",\"params\":[2],\"id\":2}\n",
	};
	struct fixture *f = *state;
	struct client *cl = client_open(f);
	json_t *a;

	for (size_t i = 0; i < sizeof(writes) / sizeof(writes[0]); i++) {
		client_sendstr(f, cl, writes[i]);
		a = client_recv(f, cl);
		assert_non_null(a);
		answer_code(a, "1");
		json_decref(a);
		a = client_recv(f, cl);
		assert_non_null(a);
		assert_int_equal(answer_code(a, "2"), 0);
		json_decref(a);
	}
	client_close(cl);
}

static void test_get_methods(void **state)
{
	struct fixture *f = *state;
	struct client *cl = client_open(f);
	json_t *a, *want;

	a = call(f, cl, "{\"jsonrpc\":\"2.0\",\"method\":\"rpc_get_methods\",\"id\":1}", "1");
	want = json_pack("[s,s,s,s,s,s]", "rpc_get_methods", "add", "echo", "fail", "notify",
			 "silent");
	assert_json(json_object_get(a, "result"), want);
	json_decref(a);
	client_close(cl);
}

static void test_socket_mode(void **state)
{
	struct fixture *f = *state;
	mode_t mask = umask(0);
	char dir[160];
	struct stat st;

	umask(mask);
	assert_int_equal(stat(f->path, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0600);
	snprintf(dir, sizeof(dir), "%s/run/vrio", f->dir);
	assert_int_equal(stat(dir, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0755 & ~mask);
}

static void test_close_unlinks(void **state)
{
	struct fixture *f = *state;
	struct stat st;

	vrio_ctl_close(f->c);
	f->c = NULL;
	assert_int_equal(stat(f->path, &st), -1);
	assert_int_equal(errno, ENOENT);
	vrio_ctl_close(NULL);
}

static void test_stale_socket(void **state)
{
	struct fixture *f = *state;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct client *cl;
	int fd;

	vrio_ctl_close(f->c);
	f->c = NULL;
	/* A socket file left behind: bound, then closed without unlink. */
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", f->path);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	close(fd);
	assert_int_equal(vrio_ctl_open(f->path, methods, N_METHODS, f, &f->c), 0);
	cl = client_open(f);
	expect_alive(f, cl);
	client_close(cl);
}

static void test_live_socket(void **state)
{
	struct fixture *f = *state;
	struct vrio_ctl *second = NULL;
	struct client *cl;
	char file[160];
	int fd;

	assert_int_equal(vrio_ctl_open(f->path, methods, N_METHODS, f, &second), -EADDRINUSE);
	assert_null(second);
	/* The refused server left the live one's socket alone. */
	cl = client_open(f);
	expect_alive(f, cl);
	client_close(cl);
	/* Nor does it replace what is not a socket. */
	snprintf(file, sizeof(file), "%s/run/plain", f->dir);
	fd = open(file, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(vrio_ctl_open(file, methods, N_METHODS, f, &second), -EEXIST);
	assert_int_equal(access(file, F_OK), 0);
}

static void test_bad_tables(void **state)
{
	static const struct vrio_ctl_method dup[] = {
		{ "a", m_echo, NULL }, { "b", m_echo, NULL }, { "a", m_add, NULL },
	};
	static const struct vrio_ctl_method builtin[] = { { "rpc_get_methods", m_echo, NULL } };
	static const struct vrio_ctl_method no_fn[] = { { "a", NULL, NULL } };
	struct fixture *f = *state;
	struct vrio_ctl *c = NULL;
	char path[160];

	snprintf(path, sizeof(path), "%s/other.sock", f->dir);
	assert_int_equal(vrio_ctl_open(path, dup, 3, NULL, &c), -EINVAL);
	assert_int_equal(vrio_ctl_open(path, builtin, 1, NULL, &c), -EINVAL);
	assert_int_equal(vrio_ctl_open(path, no_fn, 1, NULL, &c), -EINVAL);
	assert_null(c);
	assert_int_equal(access(path, F_OK), -1);
	memset(path, 'p', sizeof(path) - 1);
	path[0] = '/';
	path[sizeof(path) - 1] = '\0';
	assert_int_equal(vrio_ctl_open(path, methods, N_METHODS, NULL, &c), -ENAMETOOLONG);
}

static void test_too_many_clients(void **state)
{
	struct fixture *f = *state;
	struct client *cl[VRIO_CTL_MAX_CLIENTS + 1];
	json_t *a;
	int i;

	for (i = 0; i <= VRIO_CTL_MAX_CLIENTS; i++)
		cl[i] = client_open(f);
	a = client_recv(f, cl[VRIO_CTL_MAX_CLIENTS]);
	assert_non_null(a);
	assert_int_equal(answer_code(a, "null"), VRIO_CTL_EFAILED);
	json_decref(a);
	expect_closed(f, cl[VRIO_CTL_MAX_CLIENTS]);
	for (i = 0; i < VRIO_CTL_MAX_CLIENTS; i++)
		expect_alive(f, cl[i]);
	/* A freed slot takes the next one. */
	client_close(cl[0]);
	pump(f, 10);
	cl[0] = client_open(f);
	expect_alive(f, cl[0]);
	for (i = 0; i <= VRIO_CTL_MAX_CLIENTS; i++)
		client_close(cl[i]);
}

/* A client that never reads is dropped; the others go on. */
static void test_client_not_reading(void **state)
{
	struct fixture *f = *state;
	struct client *lazy = client_open(f), *other = client_open(f);
	const size_t pad = 32 * 1024;
	char *req = malloc(pad + 100);
	int ret = 0, i;

	assert_non_null(req);
	memset(req, 'z', pad + 100);
	memcpy(req, "{\"jsonrpc\":\"2.0\",\"method\":\"echo\",\"id\":1,\"params\":[\"", 51);
	memcpy(req + pad + 96, "\"]}\n", 4);
	/* 1 MiB of answers and what the socket buffers, well within 400. */
	for (i = 0; i < 400 && ret == 0; i++)
		ret = client_send(f, lazy, req, pad + 100);
	assert_true(ret == -EPIPE || ret == -ECONNRESET);
	expect_alive(f, other);
	client_close(lazy);
	client_close(other);
	free(req);
}

/* EOF after the requests: the answers still go out, then the server closes. */
static void test_half_close(void **state)
{
	struct fixture *f = *state;
	struct client *cl = client_open(f);
	json_t *a;

	client_sendstr(f, cl, "{\"jsonrpc\":\"2.0\",\"method\":\"echo\",\"params\":[],\"id\":1}");
	shutdown(cl->fd, SHUT_WR);
	a = client_recv(f, cl);
	assert_non_null(a);
	assert_int_equal(answer_code(a, "1"), 0);
	json_decref(a);
	expect_closed(f, cl);
	client_close(cl);
}

/* The socket-free core directly: bytes in, answer lines out. */
static void test_core(void **state)
{
	static const char in[] = "{\"jsonrpc\":\"2.0\",\"method\":\"add\",\"params\":{\"a\":1,"
				 "\"b\":2},\"id\":1}{\"jsonrpc\":\"2.0\",\"method\":\"add\","
				 "\"params\":{\"a\":1,\"b\":3},\"id\":2}";
	static const char out[] = "{\"jsonrpc\":\"2.0\",\"result\":{\"sum\":3},\"id\":1}\n"
				  "{\"jsonrpc\":\"2.0\",\"result\":{\"sum\":4},\"id\":2}\n";
	struct vrio_ctl_conn *conn;
	struct vrio_ctl *c;
	const char *p;
	size_t len;

	assert_int_equal(vrio_ctl_create(methods, N_METHODS, *state, &c), 0);
	assert_int_equal(vrio_ctl_pollfds(c, NULL, 0), 0);
	conn = vrio_ctl_conn_new(c);
	assert_non_null(conn);
	assert_int_equal(vrio_ctl_conn_feed(conn, in, 10), 0);
	p = vrio_ctl_conn_output(conn, &len);
	assert_int_equal(len, 0);
	assert_int_equal(vrio_ctl_conn_feed(conn, in + 10, sizeof(in) - 11), 0);
	p = vrio_ctl_conn_output(conn, &len);
	assert_int_equal(len, sizeof(out) - 1);
	assert_memory_equal(p, out, len);
	vrio_ctl_conn_consume(conn, 5);
	p = vrio_ctl_conn_output(conn, &len);
	assert_int_equal(len, sizeof(out) - 6);
	vrio_ctl_conn_consume(conn, len);
	assert_int_equal(vrio_ctl_conn_feed(conn, "{,}", 3), -EBADMSG);
	assert_int_equal(vrio_ctl_conn_feed(conn, in, sizeof(in) - 1), -EBADMSG);
	p = vrio_ctl_conn_output(conn, &len);
	assert_non_null(strstr(p, "-32700"));
	assert_null(memchr(p, '\n', len - 1));
	vrio_ctl_conn_free(conn);
	vrio_ctl_close(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
		T(test_good_call),
		T(test_bad_requests),
		T(test_error_data),
		T(test_notification),
		T(test_parse_error_isolated),
		T(test_oversized),
		T(test_large_request),
		T(test_byte_by_byte),
		T(test_two_in_one_write),
		T(test_get_methods),
		T(test_socket_mode),
		T(test_close_unlinks),
		T(test_stale_socket),
		T(test_live_socket),
		T(test_bad_tables),
		T(test_too_many_clients),
		T(test_client_not_reading),
		T(test_half_close),
		T(test_core),
#undef T
	};

	vrio_log_init("test_ctl", VRIO_LOG_ERR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}

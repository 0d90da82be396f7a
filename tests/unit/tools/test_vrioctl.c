/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * vrioctl's control-socket verbs: option parsing, the rendering of each
 * method's result (from the shapes the daemons answer), and one call over a
 * real socket to a server in a child process, plus a timeout.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/wait.h>

#include <cmocka.h>

int vrioctl_main(int argc, char **argv);
#define main vrioctl_main
#include "vrioctl.c"
#undef main

static char *render(void (*fn)(FILE *f, const json_t *r), const char *json)
{
	json_t *r = json_loads(json, 0, NULL);
	char *text = NULL;
	size_t len = 0;
	FILE *f;

	assert_non_null(r);
	f = open_memstream(&text, &len);
	assert_non_null(f);
	fn(f, r);
	fclose(f);
	json_decref(r);
	return text;
}

static void expect_render(void (*fn)(FILE *f, const json_t *r), const char *json,
			  const char *want)
{
	char *got = render(fn, json);

	if (strcmp(got, want) != 0)
		fail_msg("got:\n%s\nwant:\n%s", got, want);
	free(got);
}

static void test_parse_opts(void **state)
{
	const char *argv[] = { "--json", "move", "--socket", "/run/x.sock", "vm1", "2",
			       "--timeout", "1.5" };
	char *args[8];
	struct ctl_opts o;
	double t;

	assert_int_equal(ctl_parse_opts(8, (char **)argv, &o, args), 0);
	assert_int_equal(o.json, 1);
	assert_string_equal(o.socket, "/run/x.sock");
	assert_null(o.node);
	assert_int_equal(o.n_args, 3);
	assert_string_equal(o.args[0], "move");
	assert_string_equal(o.args[2], "2");
	assert_int_equal(ctl_parse_timeout(o.timeout, &t), 0);
	assert_true(t == 1.5);
	assert_int_equal(ctl_parse_timeout(NULL, &t), 0);
	assert_true(t == CTL_TIMEOUT_S);
	assert_int_equal(ctl_parse_timeout("0", &t), -EINVAL);
	assert_int_equal(ctl_parse_timeout("5s", &t), -EINVAL);

	/* --timeout without its value, at the end */
	assert_int_equal(ctl_parse_opts(7, (char **)argv, &o, args), -EINVAL);
	argv[6] = "--bogus";
	assert_int_equal(ctl_parse_opts(8, (char **)argv, &o, args), -EINVAL);
}

static void test_usage_errors(void **state)
{
	static const struct {
		int argc;
		const char *argv[6];
	} cases[] = {
		{ 1, { "status" } },					/* no daemon */
		{ 2, { "frobnicate", "--socket" } },			/* no value */
		{ 3, { "--socket", "/x", "frobnicate" } },		/* unknown verb */
		{ 4, { "--socket", "/x", "status", "extra" } },
		{ 4, { "--socket", "/x", "move", "vm1" } },
		{ 5, { "--socket", "/x", "move", "vm1", "-1" } },
		/* a name is an io-server (local-hv), a number a reactor */
		{ 5, { "--socket", "/x", "move", "vm1", "1x" } },
		{ 5, { "--socket", "/x", "call", "m", "{bad" } },
		{ 5, { "--socket", "/x", "--node", "io0", "status" } },
		{ 4, { "--socket", "/x", "--timeout", "-1" } },
	};

	int saved = dup(STDERR_FILENO), null = open("/dev/null", O_WRONLY | O_CLOEXEC);

	/* The usage text goes to stderr each time: keep the test's log short. */
	assert_true(saved >= 0 && null >= 0);
	dup2(null, STDERR_FILENO);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int ret = cmd_ctl(cases[i].argc, (char **)cases[i].argv);

		fflush(stderr);
		if (ret != 2) {
			dup2(saved, STDERR_FILENO);
			fail_msg("case %zu: exit %d", i, ret);
		}
	}
	dup2(saved, STDERR_FILENO);
	close(saved);
	close(null);
}

static void test_render_status(void **state)
{
	expect_render(render_status,
		      "{\"daemon\":\"vrio-ioserver\",\"node\":\"io0\",\"version\":\"0.4.0\","
		      "\"pid\":123,\"uptime_s\":12.5,\"config\":{\"path\":"
		      "\"/etc/vrio/topology.yaml\",\"generation\":3,\"sha256\":"
		      "\"1a2b3c4d5e6f7a8b9c0d\",\"reloads\":{\"ok\":2,\"failed\":1},"
		      "\"last_error\":null},\"reactors\":[{\"id\":0,\"busy\":0.12,\"devices\":2,"
		      "\"parked\":false},{\"id\":1,\"busy\":0.003,\"devices\":1,"
		      "\"parked\":true}]}",
		      "vrio-ioserver io0 (version 0.4.0, pid 123), up 12.5 s\n"
		      "config /etc/vrio/topology.yaml, generation 3, sha256 1a2b3c4d5e6f..., "
		      "reloads 2 ok / 1 failed\n"
		      "reactor  busy   devices\n"
		      "0        12.0%  2\n"
		      "1         0.3%  1  (parked)\n");
	expect_render(render_status,
		      "{\"daemon\":\"vrio-localhv\",\"node\":\"host0\",\"uptime_s\":90061,"
		      "\"config\":{\"generation\":1,\"sha256\":\"ab\",\"last_error\":"
		      "\"t.yaml:1:2: bad\"},\"reactors\":[]}",
		      "vrio-localhv host0 (version ?, pid -), up 1d 01h\n"
		      "config ?, generation 1, sha256 ab, reloads - ok / - failed\n"
		      "last reload failed: t.yaml:1:2: bad\n"
		      "reactor  busy   devices\n");
}

static void test_render_devices(void **state)
{
	expect_render(render_devices,
		      "{\"devices\":[{\"name\":\"vm1-disk\",\"type\":\"blk\",\"state\":"
		      "\"attached\",\"host\":\"host0\",\"io_server\":\"io0\",\"reactor\":1,"
		      "\"in_flight\":3,\"requests\":12345,\"bytes\":50593792,\"errors\":0,"
		      "\"moves\":2,\"interpose\":[\"throttle\",\"crypt\"]},{\"name\":\"vm2\","
		      "\"type\":\"net\",\"state\":\"connecting\",\"host\":\"host1\","
		      "\"io_server\":\"io0\",\"reactor\":null,\"in_flight\":0,\"requests\":0,"
		      "\"bytes\":1000,\"errors\":0,\"moves\":0,\"interpose\":[]}]}",
		      "NAME      TYPE  STATE       HOST   IO-SERVER  REACTOR  IN-FLIGHT  REQUESTS"
		      "  BYTES  ERRORS  MOVES  INTERPOSE\n"
		      "vm1-disk  blk   attached    host0  io0              1          3     12345"
		      "  48.2M       0      2  throttle,crypt\n"
		      "vm2       net   connecting  host1  io0              -          0         0"
		      "   1000       0      0  -\n");
	/* Nothing to show, or not the expected shape: the header alone. */
	expect_render(render_devices, "{}",
		      "NAME  TYPE  STATE  HOST  IO-SERVER  REACTOR  IN-FLIGHT  REQUESTS  BYTES"
		      "  ERRORS  MOVES  INTERPOSE\n");
}

/* A stage with a state of its own shows it when it is not ok. */
static void test_render_devices_stage_state(void **state)
{
	expect_render(render_devices,
		      "{\"devices\":[{\"name\":\"a\",\"type\":\"blk\",\"state\":\"attached\","
		      "\"host\":\"h\",\"io_server\":\"io0\",\"reactor\":0,\"in_flight\":0,"
		      "\"requests\":0,\"bytes\":0,\"errors\":0,\"moves\":0,"
		      "\"interpose\":[\"throttle\",\"mirror\"],\"mirror\":{\"state\":\"degraded\"}},"
		      "{\"name\":\"b\",\"type\":\"blk\",\"state\":\"attached\","
		      "\"host\":\"h\",\"io_server\":\"io0\",\"reactor\":0,\"in_flight\":0,"
		      "\"requests\":0,\"bytes\":0,\"errors\":0,\"moves\":0,\"interpose\":[\"mirror\"],"
		      "\"mirror\":{\"state\":\"resyncing\",\"resync_progress\":0.25}},"
		      "{\"name\":\"c\",\"type\":\"blk\",\"state\":\"attached\","
		      "\"host\":\"h\",\"io_server\":\"io0\",\"reactor\":0,\"in_flight\":0,"
		      "\"requests\":0,\"bytes\":0,\"errors\":0,\"moves\":0,\"interpose\":[\"mirror\"],"
		      "\"mirror\":{\"state\":\"ok\",\"resync_progress\":1.0}}]}",
		      "NAME  TYPE  STATE     HOST  IO-SERVER  REACTOR  IN-FLIGHT  REQUESTS  BYTES"
		      "  ERRORS  MOVES  INTERPOSE\n"
		      "a     blk   attached  h     io0              0          0         0      0"
		      "       0      0  throttle,mirror(degraded)\n"
		      "b     blk   attached  h     io0              0          0         0      0"
		      "       0      0  mirror(resyncing 25%)\n"
		      "c     blk   attached  h     io0              0          0         0      0"
		      "       0      0  mirror\n");
}

static void test_render_reload(void **state)
{
	expect_render(render_reload,
		      "{\"generation\":4,\"sha256\":\"ab\",\"added\":[\"vm2-disk\"],\"removed\":[],"
		      "\"changed\":[{\"device\":\"vm1-disk\",\"keys\":[\"read_only\"]}],"
		      "\"unchanged\":3}",
		      "reloaded generation 4: 1 added (vm2-disk), 0 removed, 1 changed "
		      "(vm1-disk: read_only)\n");
	expect_render(render_reload,
		      "{\"generation\":5,\"added\":[],\"removed\":[\"a\",\"b\"],\"changed\":["
		      "{\"device\":\"c\",\"keys\":[\"read_only\",\"backend\"]},{\"device\":\"d\","
		      "\"keys\":[\"iommu\"]}]}",
		      "reloaded generation 5: 0 added, 2 removed (a, b), 2 changed "
		      "(c: read_only, backend; d: iommu)\n");
}

static void test_render_move(void **state)
{
	expect_render(render_move,
		      "{\"device\":\"vm1-disk\",\"from\":0,\"to\":1,\"duration_us\":850}",
		      "vm1-disk: moved from reactor 0 to 1 in 0.85 ms\n");
	expect_render(render_move, "{\"device\":\"vm1-disk\",\"from\":1,\"to\":1}",
		      "vm1-disk: already on reactor 1\n");
}

/* Whatever the daemon answers, rendering does not crash. */
static void test_render_odd_shapes(void **state)
{
	static const char *const shapes[] = {
		"{}",
		"{\"config\":[],\"reactors\":{},\"devices\":7,\"added\":\"x\"}",
		"{\"reactors\":[1,null,{\"busy\":\"x\"}],\"devices\":[1,[],{\"name\":{}}]}",
		"{\"changed\":[1,{\"keys\":3}],\"uptime_s\":-1,\"bytes\":1e300}",
	};
	void (*const fns[])(FILE *, const json_t *) = {
		render_status, render_devices, render_reload, render_move, render_json,
	};

	for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++)
		for (size_t k = 0; k < sizeof(fns) / sizeof(fns[0]); k++)
			free(render(fns[k], shapes[i]));
}

static void m_status(void *arg, struct vrio_ctl_req *r, const json_t *params)
{
	vrio_ctl_reply(r, json_pack("{s:s, s:O}", "daemon", "test", "params",
				    params ? (json_t *)params : json_null()));
}

static void m_fail(void *arg, struct vrio_ctl_req *r, const json_t *params)
{
	vrio_ctl_error(r, VRIO_CTL_EFAILED, "t.yaml:1:1: no");
}

/* A server in a child process until it is killed. */
static pid_t serve(const char *path)
{
	static const struct vrio_ctl_method methods[] = {
		{ "status", m_status, NULL },
		{ "fail", m_fail, NULL },
	};
	struct pollfd fds[1 + VRIO_CTL_MAX_CLIENTS];
	struct vrio_ctl *c;
	pid_t pid = fork();
	int n;

	assert_true(pid >= 0);
	if (pid > 0)
		return pid;
	if (vrio_ctl_open(path, methods, 2, NULL, &c) != 0)
		_exit(1);
	for (;;) {
		n = vrio_ctl_pollfds(c, fds, 1 + VRIO_CTL_MAX_CLIENTS);
		if (poll(fds, (nfds_t)n, 1000) > 0)
			vrio_ctl_process(c, fds, n);
		if (getppid() == 1)
			_exit(0);
	}
}

static void test_call(void **state)
{
	char dir[] = "/tmp/vrioctl-test.XXXXXX", path[64], mute[64];
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	json_t *ans, *params = json_pack("{s:s}", "x", "y");
	uint64_t t0;
	pid_t pid;
	int fd, st;

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/ctl.sock", dir);
	pid = serve(path);
	for (int i = 0; i < 500 && access(path, F_OK) != 0; i++)
		poll(NULL, 0, 10);

	ans = ctl_call(path, "status", params, 5);
	assert_non_null(ans);
	assert_string_equal(json_string_value(json_object_get(json_object_get(ans, "result"),
							      "daemon")), "test");
	assert_true(json_equal(json_object_get(json_object_get(ans, "result"), "params"), params));
	json_decref(ans);
	ans = ctl_call(path, "fail", NULL, 5);
	assert_non_null(ans);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(ans, "error"), "code")),
			 VRIO_CTL_EFAILED);
	json_decref(ans);

	/* A socket that takes the connection and never answers. */
	snprintf(mute, sizeof(mute), "%s/mute.sock", dir);
	memcpy(sa.sun_path, mute, strlen(mute) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(fd, 1), 0);
	t0 = vrio_now_ns();
	assert_null(ctl_call(mute, "status", NULL, 0.2));
	assert_true(vrio_now_ns() - t0 >= 190000000ull);
	close(fd);
	assert_null(ctl_call(mute, "status", NULL, 0.2));	/* refused */

	kill(pid, SIGTERM);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	json_decref(params);
	unlink(mute);
	unlink(path);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_opts),
		cmocka_unit_test(test_usage_errors),
		cmocka_unit_test(test_render_status),
		cmocka_unit_test(test_render_devices),
		cmocka_unit_test(test_render_devices_stage_state),
		cmocka_unit_test(test_render_reload),
		cmocka_unit_test(test_render_move),
		cmocka_unit_test(test_render_odd_shapes),
		cmocka_unit_test(test_call),
	};

	vrio_log_init("test_vrioctl", VRIO_LOG_ERR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}

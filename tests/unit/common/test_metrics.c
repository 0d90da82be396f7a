/* SPDX-License-Identifier: BSD-3-Clause */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "log.h"
#include "metrics.h"

static struct vrio_hist sample_hist(void)
{
	struct vrio_hist h = { 0 };

	vrio_hist_add(&h, 3000);		/* le 5 us */
	vrio_hist_add(&h, 7000);		/* le 10 us */
	vrio_hist_add(&h, 2000000);		/* le 2.5 ms */
	vrio_hist_add(&h, 2000000000ull);	/* +Inf */
	return h;
}

static void collect(void *arg, struct vrio_mw *w)
{
	const struct vrio_hist *h = arg;
	char dev[64], labels[128];

	vrio_mw_escape(dev, sizeof(dev), "vm\"1\\disk\n");
	snprintf(labels, sizeof(labels), "device=\"%s\",queue=\"0\"", dev);
	vrio_mw_family(w, "vrio_requests_total", "counter", "Requests completed.");
	vrio_mw_u64(w, "vrio_requests_total", labels, 42);
	vrio_mw_u64(w, "vrio_requests_total", "", 18446744073709551615ull);
	vrio_mw_family(w, "vrio_busy_ratio", "gauge", "Busy share\\of a core,\nper core.");
	vrio_mw_double(w, "vrio_busy_ratio", "core=\"0\"", 0.25);
	vrio_mw_double(w, "vrio_busy_ratio", "core=\"1\"", 0.1);
	vrio_mw_double(w, "vrio_busy_ratio", "core=\"2\"", 1.0 / 3);
	vrio_mw_double(w, "vrio_busy_ratio", "core=\"3\"", 1e-7);
	vrio_mw_double(w, "vrio_busy_ratio", "core=\"4\"", NAN);
	vrio_mw_double(w, "vrio_busy_ratio", "core=\"5\"", -INFINITY);
	vrio_mw_family(w, "vrio_latency_seconds", "histogram", "Request latency.");
	vrio_mw_hist(w, "vrio_latency_seconds", "device=\"d0\"", h);
	vrio_mw_hist(w, "vrio_latency_seconds", NULL, h);
}

static const char expected_text[] =
	"# HELP vrio_requests_total Requests completed.\n"
	"# TYPE vrio_requests_total counter\n"
	"vrio_requests_total{device=\"vm\\\"1\\\\disk\\n\",queue=\"0\"} 42\n"
	"vrio_requests_total 18446744073709551615\n"
	"# HELP vrio_busy_ratio Busy share\\\\of a core,\\nper core.\n"
	"# TYPE vrio_busy_ratio gauge\n"
	"vrio_busy_ratio{core=\"0\"} 0.25\n"
	"vrio_busy_ratio{core=\"1\"} 0.1\n"
	"vrio_busy_ratio{core=\"2\"} 0.33333333333333331\n"
	"vrio_busy_ratio{core=\"3\"} 1e-07\n"
	"vrio_busy_ratio{core=\"4\"} NaN\n"
	"vrio_busy_ratio{core=\"5\"} -Inf\n"
	"# HELP vrio_latency_seconds Request latency.\n"
	"# TYPE vrio_latency_seconds histogram\n"
#define B(le, n) "vrio_latency_seconds_bucket{device=\"d0\",le=\"" le "\"} " #n "\n"
	B("0.000005", 1) B("0.00001", 2) B("0.000025", 2) B("0.00005", 2) B("0.0001", 2)
	B("0.00025", 2) B("0.0005", 2) B("0.001", 2) B("0.0025", 3) B("0.005", 3) B("0.01", 3)
	B("0.025", 3) B("0.05", 3) B("0.1", 3) B("0.25", 3) B("1", 3) B("+Inf", 4)
#undef B
	"vrio_latency_seconds_sum{device=\"d0\"} 2.00201\n"
	"vrio_latency_seconds_count{device=\"d0\"} 4\n"
#define B(le, n) "vrio_latency_seconds_bucket{le=\"" le "\"} " #n "\n"
	B("0.000005", 1) B("0.00001", 2) B("0.000025", 2) B("0.00005", 2) B("0.0001", 2)
	B("0.00025", 2) B("0.0005", 2) B("0.001", 2) B("0.0025", 3) B("0.005", 3) B("0.01", 3)
	B("0.025", 3) B("0.05", 3) B("0.1", 3) B("0.25", 3) B("1", 3) B("+Inf", 4)
#undef B
	"vrio_latency_seconds_sum 2.00201\n"
	"vrio_latency_seconds_count 4\n";

static void test_hist_buckets(void **state)
{
	static const struct {
		uint64_t ns;
		unsigned bucket;
	} cases[] = {
		{ 0, 0 },	      { 5000, 0 },	    { 5001, 1 },	 { 10000, 1 },
		{ 999999, 7 },	      { 1000000, 7 },	    { 1000001, 8 },	 { 250000000, 14 },
		{ 1000000000, 15 },   { 1000000001, 16 },   { UINT64_MAX / 2, 16 },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct vrio_hist h = { 0 };

		vrio_hist_add(&h, cases[i].ns);
		for (unsigned b = 0; b <= VRIO_HIST_BUCKETS; b++)
			assert_int_equal(h.bucket[b], b == cases[i].bucket);
		assert_int_equal(h.count, 1);
		assert_int_equal(h.sum_ns, cases[i].ns);
	}
	assert_int_equal(vrio_hist_bounds_us[0], 5);
	assert_int_equal(vrio_hist_bounds_us[VRIO_HIST_BUCKETS - 1], 1000000);
}

static void test_render(void **state)
{
	struct vrio_hist h = sample_hist();
	size_t len = 0;
	char *text;

	assert_int_equal(vrio_metrics_render(collect, &h, &text, &len), 0);
	assert_string_equal(text, expected_text);
	assert_int_equal(len, strlen(expected_text));
	free(text);
}

static void collect_nothing(void *arg, struct vrio_mw *w)
{
}

static void test_render_empty(void **state)
{
	size_t len = 1;
	char *text;

	assert_int_equal(vrio_metrics_render(collect_nothing, NULL, &text, &len), 0);
	assert_string_equal(text, "");
	assert_int_equal(len, 0);
	free(text);
}

/* Much more than one buffer growth. */
static void collect_many(void *arg, struct vrio_mw *w)
{
	char labels[64];

	vrio_mw_family(w, "vrio_queue_requests_total", "counter", "Requests per queue.");
	for (unsigned i = 0; i < 5000; i++) {
		snprintf(labels, sizeof(labels), "queue=\"%u\"", i);
		vrio_mw_u64(w, "vrio_queue_requests_total", labels, i);
	}
}

static void test_render_grows(void **state)
{
	char *text, line[64];
	size_t len;

	assert_int_equal(vrio_metrics_render(collect_many, NULL, &text, &len), 0);
	assert_int_equal(strlen(text), len);
	assert_true(len > 100000);
	snprintf(line, sizeof(line), "\nvrio_queue_requests_total{queue=\"4999\"} 4999\n");
	assert_string_equal(text + len - strlen(line), line);
	free(text);
}

static void test_writer_stops_after_oom(void **state)
{
	struct vrio_mw w = { .oom = 1 };

	vrio_mw_family(&w, "a_total", "counter", "x");
	vrio_mw_u64(&w, "a_total", NULL, 1);
	assert_null(w.buf);
	assert_int_equal(w.len, 0);
}

static void test_escape(void **state)
{
	char out[32];

	vrio_mw_escape(out, sizeof(out), "a\"b\\c\nd");
	assert_string_equal(out, "a\\\"b\\\\c\\nd");
	vrio_mw_escape(out, sizeof(out), "plain-name_0.1");
	assert_string_equal(out, "plain-name_0.1");
	/* Cut at a whole escape, never between its two characters. */
	vrio_mw_escape(out, 4, "ab\"c");
	assert_string_equal(out, "ab");
	vrio_mw_escape(out, 5, "ab\"c");
	assert_string_equal(out, "ab\\\"");
	vrio_mw_escape(out, 1, "abc");
	assert_string_equal(out, "");
}

static void collect_process(void *arg, struct vrio_mw *w)
{
	vrio_mw_process(w);
}

static double sample_value(const char *text, const char *name)
{
	char key[128];
	const char *p;

	snprintf(key, sizeof(key), "\n%s ", name);
	p = strstr(text, key);
	assert_non_null(p);
	return strtod(p + strlen(key), NULL);
}

static void test_process_families(void **state)
{
	double start, cpu, rss;
	char *text;

	/* Burn a little CPU so that the counter is visibly above zero. */
	for (volatile unsigned long i = 0; i < 20000000ul; i++)
		;
	assert_int_equal(vrio_metrics_render(collect_process, NULL, &text, NULL), 0);
	assert_non_null(strstr(text, "# TYPE process_cpu_seconds_total counter\n"));
	assert_non_null(strstr(text, "# TYPE process_start_time_seconds gauge\n"));
	assert_non_null(strstr(text, "# TYPE process_resident_memory_bytes gauge\n"));
	cpu = sample_value(text, "process_cpu_seconds_total");
	start = sample_value(text, "process_start_time_seconds");
	rss = sample_value(text, "process_resident_memory_bytes");
	assert_true(cpu > 0 && cpu < 600);
	assert_true(start <= (double)time(NULL) + 1 && start > (double)time(NULL) - 600);
	assert_true(rss > 100000);
	free(text);
}

/* HTTP */

static unsigned free_port(void)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	close(fd);
	return ntohs(sin.sin_port);
}

/* One request over HTTP/1.0; the whole response into resp. */
static void http_request(unsigned port, const char *method, const char *path, char *resp,
			 size_t len)
{
	struct sockaddr_in sin = {
		.sin_family = AF_INET,
		.sin_port = htons((uint16_t)port),
		.sin_addr.s_addr = htonl(INADDR_LOOPBACK),
	};
	struct timeval tv = { .tv_sec = 5 };
	char req[256];
	size_t got = 0;
	int fd, n;

	fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	n = snprintf(req, sizeof(req), "%s %s HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n",
		     method, path);
	assert_int_equal(send(fd, req, (size_t)n, MSG_NOSIGNAL), n);
	for (;;) {
		ssize_t r = recv(fd, resp + got, len - 1 - got, 0);

		assert_true(r >= 0);
		if (r == 0)
			break;
		got += (size_t)r;
		assert_true(got < len - 1);
	}
	resp[got] = '\0';
	close(fd);
}

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;

	assert_non_null(d);
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

static void test_http_server(void **state)
{
	struct vrio_hist h = sample_hist();
	struct vrio_metrics_server *s = NULL, *s2 = NULL;
	char addr[64], resp[65536];
	const char *body;
	unsigned port;
	int fds;

	fds = count_fds();
	port = free_port();
	snprintf(addr, sizeof(addr), "127.0.0.1:%u", port);
	assert_int_equal(vrio_metrics_start(addr, collect, &h, &s), 0);
	assert_non_null(s);

	http_request(port, "GET", "/metrics", resp, sizeof(resp));
	assert_memory_equal(resp, "HTTP/1.1 200 OK\r\n", 17);
	assert_non_null(strstr(resp, "\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"));
	body = strstr(resp, "\r\n\r\n");
	assert_non_null(body);
	assert_string_equal(body + 4, expected_text);

	http_request(port, "GET", "/other", resp, sizeof(resp));
	assert_memory_equal(resp, "HTTP/1.1 404 ", 13);
	http_request(port, "GET", "/metrics/x", resp, sizeof(resp));
	assert_memory_equal(resp, "HTTP/1.1 404 ", 13);
	http_request(port, "POST", "/metrics", resp, sizeof(resp));
	assert_memory_equal(resp, "HTTP/1.1 405 ", 13);
	assert_non_null(strstr(resp, "\r\nAllow: GET, HEAD\r\n"));
	http_request(port, "HEAD", "/metrics", resp, sizeof(resp));
	assert_memory_equal(resp, "HTTP/1.1 200 OK\r\n", 17);
	body = strstr(resp, "\r\n\r\n");
	assert_non_null(body);
	assert_string_equal(body + 4, "");

	/* The port is taken: the error says so. */
	assert_int_equal(vrio_metrics_start(addr, collect, &h, &s2), -EADDRINUSE);
	assert_null(s2);

	vrio_metrics_stop(s);
	assert_int_equal(count_fds(), fds);
	vrio_metrics_stop(NULL);
}

static void test_http_bad_address(void **state)
{
	struct vrio_metrics_server *s = NULL;

	assert_int_equal(vrio_metrics_start("127.0.0.1", collect_nothing, NULL, &s), -EINVAL);
	assert_int_equal(vrio_metrics_start("192.0.2.1:9400", collect_nothing, NULL, &s),
			 -EADDRNOTAVAIL);
	assert_null(s);
}

static void collect_for_promtool(void *arg, struct vrio_mw *w)
{
	collect(arg, w);
	vrio_mw_process(w);
}

static void test_promtool_accepts(void **state)
{
	struct vrio_hist h = sample_hist();
	char *text;
	size_t len;
	FILE *p;
	int st;

	if (system("command -v promtool >/dev/null 2>&1") != 0) {
		print_message("SKIP: promtool not installed\n");
		skip();
	}
	assert_int_equal(vrio_metrics_render(collect_for_promtool, &h, &text, &len), 0);
	p = popen("promtool check metrics", "w");
	assert_non_null(p);
	assert_int_equal(fwrite(text, 1, len, p), len);
	st = pclose(p);
	free(text);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hist_buckets),
		cmocka_unit_test(test_render),
		cmocka_unit_test(test_render_empty),
		cmocka_unit_test(test_render_grows),
		cmocka_unit_test(test_writer_stops_after_oom),
		cmocka_unit_test(test_escape),
		cmocka_unit_test(test_process_families),
		cmocka_unit_test(test_http_server),
		cmocka_unit_test(test_http_bad_address),
		cmocka_unit_test(test_promtool_accepts),
	};

	vrio_log_init("test_metrics", VRIO_LOG_ERR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}

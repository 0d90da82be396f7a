/* SPDX-License-Identifier: BSD-3-Clause */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "addr.h"

static void test_good(void **state)
{
	static const struct {
		const char *in;
		int family;
		const char *ip;
		unsigned port;
	} cases[] = {
		{ "127.0.0.1:7400", AF_INET, "127.0.0.1", 7400 },
		{ "0.0.0.0:65535", AF_INET, "0.0.0.0", 65535 },
		{ "10.1.2.3:1", AF_INET, "10.1.2.3", 1 },
		{ "127.0.0.1:0", AF_INET, "127.0.0.1", 0 },
		{ "[::1]:7400", AF_INET6, "::1", 7400 },
		{ "[fe80::1:2]:80", AF_INET6, "fe80::1:2", 80 },
		{ "[::]:9400", AF_INET6, "::", 9400 },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct sockaddr_storage ss;
		socklen_t len = 0;
		char ip[INET6_ADDRSTRLEN];
		unsigned port;
		const void *a;

		assert_int_equal(vrio_parse_hostport(cases[i].in, &ss, &len), 0);
		assert_int_equal(ss.ss_family, cases[i].family);
		if (ss.ss_family == AF_INET) {
			const struct sockaddr_in *sin = (const struct sockaddr_in *)&ss;

			assert_int_equal(len, sizeof(*sin));
			a = &sin->sin_addr;
			port = ntohs(sin->sin_port);
		} else {
			const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&ss;

			assert_int_equal(len, sizeof(*sin6));
			a = &sin6->sin6_addr;
			port = ntohs(sin6->sin6_port);
		}
		assert_non_null(inet_ntop(ss.ss_family, a, ip, sizeof(ip)));
		assert_string_equal(ip, cases[i].ip);
		assert_int_equal(port, cases[i].port);
	}
}

static void test_localhost(void **state)
{
	struct sockaddr_storage ss;
	socklen_t len;

	assert_int_equal(vrio_parse_hostport("localhost:7400", &ss, &len), 0);
	assert_true(ss.ss_family == AF_INET || ss.ss_family == AF_INET6);
	if (ss.ss_family == AF_INET)
		assert_int_equal(ntohs(((struct sockaddr_in *)&ss)->sin_port), 7400);
	else
		assert_int_equal(ntohs(((struct sockaddr_in6 *)&ss)->sin6_port), 7400);
}

static void test_bad(void **state)
{
	static const char *const cases[] = {
		"", ":7400", "127.0.0.1", "127.0.0.1:", "127.0.0.1:65536", "127.0.0.1:123456",
		"127.0.0.1:-1", "127.0.0.1:+80", "127.0.0.1:7a", "127.0.0.1: 80", "::1:7400",
		"[::1]7400", "[::1]", "[::1:80", "[]:80", "[127.0.0.1]:80", "[::1]:", "host name:80",
		"[::1]:80:80", "[::1]x:80",
	};
	struct sockaddr_storage ss;
	socklen_t len;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int ret = vrio_parse_hostport(cases[i], &ss, &len);

		if (ret != -EINVAL)
			print_message("'%s' was accepted\n", cases[i]);
		assert_int_equal(ret, -EINVAL);
	}
	assert_int_equal(vrio_parse_hostport(NULL, &ss, &len), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good),
		cmocka_unit_test(test_localhost),
		cmocka_unit_test(test_bad),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "log.h"

/* stderr goes to a temporary file while a test logs; read it back after. */
struct capture {
	FILE *f;
	int saved;
	char text[8192];
};

static void capture_start(struct capture *c)
{
	fflush(stderr);
	c->f = tmpfile();
	assert_non_null(c->f);
	c->saved = dup(STDERR_FILENO);
	assert_true(c->saved >= 0);
	assert_true(dup2(fileno(c->f), STDERR_FILENO) >= 0);
}

static const char *capture_end(struct capture *c)
{
	size_t n;

	assert_true(dup2(c->saved, STDERR_FILENO) >= 0);
	close(c->saved);
	rewind(c->f);
	n = fread(c->text, 1, sizeof(c->text) - 1, c->f);
	c->text[n] = '\0';
	fclose(c->f);
	return c->text;
}

static void test_level_parse(void **state)
{
	static const struct {
		const char *s;
		int want;
	} cases[] = {
		{ "error", VRIO_LOG_ERR },   { "warning", VRIO_LOG_WARN }, { "notice", VRIO_LOG_NOTICE },
		{ "info", VRIO_LOG_INFO },   { "debug", VRIO_LOG_DEBUG },  { "warn", -EINVAL },
		{ "ERROR", -EINVAL },	     { "", -EINVAL },		   { "debug ", -EINVAL },
		{ NULL, -EINVAL },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		assert_int_equal(vrio_log_level_parse(cases[i].s), cases[i].want);
}

static void test_line_format(void **state)
{
	struct capture c;

	unsetenv("JOURNAL_STREAM");
	vrio_log_init("/usr/sbin/vrio-test", VRIO_LOG_INFO);
	capture_start(&c);
	errno = EAGAIN;
	VRIO_ERR("%s: queue %u is empty", "dev0", 3u);
	assert_int_equal(errno, EAGAIN);
	VRIO_WARN("w");
	VRIO_NOTICE("n");
	VRIO_INFO("i\n");
	VRIO_DEBUG("not shown");
	assert_string_equal(capture_end(&c),
			    "vrio-test: error: dev0: queue 3 is empty\n"
			    "vrio-test: warning: w\n"
			    "vrio-test: notice: n\n"
			    "vrio-test: info: i\n");

	vrio_log_init("vrio-test", VRIO_LOG_DEBUG);
	capture_start(&c);
	VRIO_DEBUG("d");
	assert_string_equal(capture_end(&c), "vrio-test: debug: d\n");
}

static void test_journal_prefix(void **state)
{
	struct capture c;

	setenv("JOURNAL_STREAM", "8:12345", 1);
	vrio_log_init("vrio-test", VRIO_LOG_WARN);
	capture_start(&c);
	VRIO_ERR("e");
	VRIO_WARN("w");
	VRIO_INFO("filtered");
	assert_string_equal(capture_end(&c), "<3>vrio-test: e\n<4>vrio-test: w\n");
	unsetenv("JOURNAL_STREAM");
	vrio_log_init("vrio-test", VRIO_LOG_INFO);
}

static void test_long_line_truncated(void **state)
{
	static char big[5000];
	struct capture c;
	const char *out;
	size_t n;

	memset(big, 'a', sizeof(big) - 1);
	vrio_log_init("vrio-test", VRIO_LOG_INFO);
	capture_start(&c);
	VRIO_INFO("%s", big);
	VRIO_INFO("next");
	out = capture_end(&c);
	n = strcspn(out, "\n");
	assert_true(n > 1000 && n < 4096);
	assert_memory_equal(out + n - 3, "...", 3);
	assert_string_equal(out + n + 1, "vrio-test: info: next\n");
}

static void test_ratelimit(void **state)
{
	struct vrio_ratelimit rl = { 0 };
	unsigned sup = 99;

	for (int i = 0; i < 3; i++) {
		assert_int_equal(vrio_ratelimit_ok(&rl, 3, &sup), 1);
		assert_int_equal(sup, 0);
	}
	assert_int_equal(vrio_ratelimit_ok(&rl, 3, &sup), 0);
	assert_int_equal(vrio_ratelimit_ok(&rl, 3, &sup), 0);

	/* Within the window, still closed. */
	rl.window_start_ns = vrio_now_ns() - 900000000ull;
	assert_int_equal(vrio_ratelimit_ok(&rl, 3, &sup), 0);

	/* A second later the first line through reports what was dropped. */
	rl.window_start_ns = vrio_now_ns() - 1000000000ull;
	assert_int_equal(vrio_ratelimit_ok(&rl, 3, &sup), 1);
	assert_int_equal(sup, 3);
	assert_int_equal(vrio_ratelimit_ok(&rl, 3, &sup), 1);
	assert_int_equal(sup, 0);
	assert_int_equal(vrio_ratelimit_ok(&rl, 3, NULL), 1);
	assert_int_equal(vrio_ratelimit_ok(&rl, 3, NULL), 0);
}

static void test_ratelimit_macro(void **state)
{
	struct capture c;
	const char *out;
	int lines = 0;

	vrio_log_init("vrio-test", VRIO_LOG_INFO);
	capture_start(&c);
	for (int i = 0; i < 25; i++)
		VRIO_ERR_RL("dev0: bad chain %d", i);
	out = capture_end(&c);
	for (const char *p = out; *p; p++)
		lines += *p == '\n';
	assert_int_equal(lines, 10);
	assert_non_null(strstr(out, "vrio-test: error: dev0: bad chain 9\n"));
	assert_null(strstr(out, "chain 10"));
}

static void test_now_monotonic(void **state)
{
	struct timespec d = { 0, 2000000 };
	uint64_t a, b;

	a = vrio_now_ns();
	nanosleep(&d, NULL);
	b = vrio_now_ns();
	assert_true(b - a >= 2000000);
	assert_true(b - a < 2000000000ull);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_level_parse),
		cmocka_unit_test(test_line_format),
		cmocka_unit_test(test_journal_prefix),
		cmocka_unit_test(test_long_line_truncated),
		cmocka_unit_test(test_ratelimit),
		cmocka_unit_test(test_ratelimit_macro),
		cmocka_unit_test(test_now_monotonic),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

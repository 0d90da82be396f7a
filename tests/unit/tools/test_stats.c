// SPDX-License-Identifier: BSD-3-Clause
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "stats.h"

static void test_bucket_precision(void **state)
{
	static const uint64_t values[] = {
		0, 1, 255, 256, 257, 511, 512, 1000, 4095, 4096, 12345, 99999, 1000000,
		123456789, 1ull << 40, (1ull << 40) + 12345, UINT64_MAX / 3, UINT64_MAX,
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
		uint64_t v = values[i];
		unsigned int b = hist_bucket(v);
		uint64_t rep = hist_bucket_value(b);
		uint64_t diff = rep > v ? rep - v : v - rep;

		assert_true(b < HIST_BUCKETS);
		if (v < HIST_LINEAR)
			assert_int_equal(rep, v);
		else
			assert_true(diff <= v / 128);
	}
}

static void test_buckets_monotonic(void **state)
{
	unsigned int prev = 0;
	uint64_t v;

	(void)state;
	for (v = 0; v < 1u << 20; v += 7) {
		unsigned int b = hist_bucket(v);

		assert_true(b >= prev);
		prev = b;
	}
}

static void test_percentiles(void **state)
{
	struct lat_hist *h = malloc(sizeof(*h));
	uint64_t v;

	(void)state;
	assert_non_null(h);
	hist_init(h);
	assert_int_equal(hist_percentile(h, 0.5), 0);
	assert_true(hist_mean(h) == 0.0);

	/* 1..10000 us, uniformly. */
	for (v = 1; v <= 10000; v++)
		hist_add(h, v * 1000);
	assert_int_equal(h->count, 10000);
	assert_int_equal(h->min_ns, 1000);
	assert_int_equal(h->max_ns, 10000000);
	assert_true(llabs((long long)hist_percentile(h, 0.50) - 5000000) <= 5000000 / 100);
	assert_true(llabs((long long)hist_percentile(h, 0.99) - 9900000) <= 9900000 / 100);
	assert_true(llabs((long long)hist_percentile(h, 0.999) - 9990000) <= 9990000 / 100);
	assert_int_equal(hist_percentile(h, 1.0), 10000000);
	assert_int_equal(hist_percentile(h, 0.0), 1000);
	assert_true(hist_mean(h) > 5000499.0 && hist_mean(h) < 5000501.0);
	free(h);
}

static void test_single_sample(void **state)
{
	struct lat_hist *h = malloc(sizeof(*h));

	(void)state;
	assert_non_null(h);
	hist_init(h);
	hist_add(h, 123456);
	/* Clamped to what was seen, so one sample reports itself exactly. */
	assert_int_equal(hist_percentile(h, 0.5), 123456);
	assert_int_equal(hist_percentile(h, 0.999), 123456);
	free(h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bucket_precision),
		cmocka_unit_test(test_buckets_monotonic),
		cmocka_unit_test(test_percentiles),
		cmocka_unit_test(test_single_sample),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

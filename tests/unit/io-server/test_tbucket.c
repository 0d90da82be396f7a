/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The token bucket (tbucket.c) on an injected clock: a shaper holds its
 * rate exactly over any window once its burst is spent, at rates from one
 * unit a second up, charges large requests by their size, and a policer
 * never lets more than its burst plus the rate through.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "tbucket.h"

#define NS 1000000000ull

/* Sends `unit`-sized requests back to back through a shaper for `secs`
 * and counts the units that went in each window of `window_ns`, after the
 * first second (the burst). Returns the largest error against rate x
 * window, relative. */
static double shaped_error(uint64_t rate, uint64_t burst_ns, uint64_t unit, unsigned secs,
			   uint64_t window_ns)
{
	struct ios_tbucket tb;
	uint64_t now = 5 * NS, end = now + secs * NS, start = now + NS, wstart = start;
	uint64_t in_window = 0;
	double worst = 0, want = (double)rate * (double)window_ns / (double)NS, err;

	ios_tb_init(&tb, rate, burst_ns, now);
	while (now < end) {
		ios_tb_refill(&tb, now);
		if (!ios_tb_ready(&tb, unit)) {
			now += ios_tb_wait_ns(&tb, unit);
			continue;
		}
		ios_tb_charge(&tb, unit);
		if (now >= start) {
			while (now >= wstart + window_ns) {
				err = ((double)in_window - want) / want;
				if (err < 0)
					err = -err;
				if (err > worst)
					worst = err;
				in_window = 0;
				wstart += window_ns;
			}
			in_window += unit;
		}
	}
	return worst;
}

static void test_rates(void **state)
{
	static const struct {
		uint64_t rate, unit, window_ms;
		double tolerance;
	} cases[] = {
		{ 1, 1, 1000, 0.0 },		/* 1 IOPS: one a second, exactly */
		{ 7, 1, 1000, 1.0 / 7 },	/* a window holds 7 or 8 arrivals' worth */
		{ 1000, 1, 1000, 0.001 },
		{ 1000, 1, 100, 0.01 },
		{ 123457, 1, 100, 0.0001 },
		{ 4096, 4096, 1000, 0.0 },	/* 4 KiB/s of 4 KiB requests */
		{ 10u << 20, 4096, 100, 0.01 },
		{ 10u << 20, 1u << 20, 1000, 0.1 },	/* 1 MiB requests at 10 MiB/s */
		{ 2000000000ull, 65536, 100, 0.001 },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		double e = shaped_error(cases[i].rate, 100000000ull, cases[i].unit, 6,
					cases[i].window_ms * 1000000ull);

		if (e > cases[i].tolerance + 1e-9)
			fail_msg("rate %llu, unit %llu, window %llu ms: error %.4f > %.4f",
				 (unsigned long long)cases[i].rate, (unsigned long long)cases[i].unit,
				 (unsigned long long)cases[i].window_ms, e, cases[i].tolerance);
	}
}

static void test_burst(void **state)
{
	struct ios_tbucket tb;
	uint64_t now = NS;
	unsigned n = 0;

	/* 1000/s with a 100 ms burst: a full bucket lets 100 go at once. */
	ios_tb_init(&tb, 1000, 100000000ull, now);
	while (ios_tb_ready(&tb, 1)) {
		ios_tb_charge(&tb, 1);
		n++;
	}
	assert_int_equal(n, 100);
	/* Then one a millisecond. */
	assert_int_equal(ios_tb_wait_ns(&tb, 1), 1000000);
	ios_tb_refill(&tb, now + 1000000);
	assert_true(ios_tb_ready(&tb, 1));
	/* Idle for long: never more than the burst. */
	ios_tb_refill(&tb, now + 100 * NS);
	n = 0;
	while (ios_tb_ready(&tb, 1)) {
		ios_tb_charge(&tb, 1);
		n++;
	}
	assert_int_equal(n, 100);
}

static void test_big_request(void **state)
{
	struct ios_tbucket tb;
	uint64_t now = NS;

	/* A 1 MiB request through 64 KiB/s, more than the bucket holds: it
	 * goes on a full bucket, and the next one waits the 16 s it cost. */
	ios_tb_init(&tb, 65536, 100000000ull, now);
	assert_true(ios_tb_ready(&tb, 1u << 20));
	ios_tb_charge(&tb, 1u << 20);
	assert_false(ios_tb_ready(&tb, 1u << 20));
	assert_int_equal(ios_tb_wait_ns(&tb, 1u << 20), 16000000000ull);
}

static void test_retune(void **state)
{
	struct ios_tbucket tb;
	uint64_t now = NS;

	ios_tb_init(&tb, 1000, 100000000ull, now);
	ios_tb_charge(&tb, 100);
	/* Faster, with a debt: the debt stays, paid at the new rate. */
	ios_tb_charge(&tb, 10);
	ios_tb_set(&tb, 10000, 100000000ull, now);
	assert_int_equal(ios_tb_wait_ns(&tb, 1), 1100000);
	/* Smaller bucket: what it holds is cut to it. */
	ios_tb_refill(&tb, now + 10 * NS);
	ios_tb_set(&tb, 10, 100000000ull, now + 10 * NS);
	assert_true(ios_tb_ready(&tb, 1));
	ios_tb_charge(&tb, 1);
	assert_false(ios_tb_ready(&tb, 1));
}

static void test_policer(void **state)
{
	struct ios_tbucket tb;
	uint64_t now = NS, passed = 0;

	/* 1500-byte frames at 1 MB/s with a 64 KiB burst, offered at 10x for
	 * 10 s: the burst plus the rate goes, never more. */
	ios_tb_init(&tb, 1000000, 65536000000000ull / 1000000, now);
	for (uint64_t t = 0; t < 10 * NS; t += 150000) {
		if (ios_tb_take(&tb, 1500, now + t))
			passed += 1500;
	}
	assert_true(passed <= 65536 + 10 * 1000000);
	assert_true(passed >= 10 * 1000000 - 1500);
	/* A frame larger than the bucket never passes. */
	assert_false(ios_tb_take(&tb, 1u << 20, now + 100 * NS));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rates),
		cmocka_unit_test(test_burst),
		cmocka_unit_test(test_big_request),
		cmocka_unit_test(test_retune),
		cmocka_unit_test(test_policer),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

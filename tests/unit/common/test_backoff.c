/* SPDX-License-Identifier: BSD-3-Clause */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "backoff.h"

#define US 1000ull
#define MAX (50 * US)

/* A thread that just started spins for the whole cap. */
static void test_start(void **state)
{
	struct vrio_backoff b;

	(void)state;
	vrio_backoff_init(&b, MAX);
	assert_int_equal(b.window_ns, MAX);
	assert_true(vrio_backoff_spin(&b, MAX - 1));
	assert_false(vrio_backoff_spin(&b, MAX));
}

/* After many gaps of a repeating pattern the window settles where the
 * table says: a spin where long gaps are rare, none where they are common.
 * The caps are local-hv's (50 us) and the io-server's (100 us). */
static void test_steady(void **state)
{
	static const struct {
		const char *what;
		uint64_t cap;
		unsigned n;
		uint64_t gap[8];
		bool spin;
	} cases[] = {
		{ "work never stops", MAX, 1, { 0 }, true },
		{ "10 us gaps", MAX, 1, { 10 * US }, true },
		{ "gaps of three caps", MAX, 1, { 3 * MAX }, true },
		{ "just past three caps", MAX, 1, { 3 * MAX + US }, false },
		{ "QD 1 at full speed: round trip, then the guest", MAX, 2, { 35 * US, 5 * US }, true },
		{ "QD 32: a batch's wait and a wakeup", MAX, 1, { 120 * US }, true },
		{ "one gap in eight preempted", MAX, 8,
		  { 1000 * US, 5 * US, 30 * US, 5 * US, 30 * US, 5 * US, 30 * US, 5 * US }, true },
		{ "local-hv, QD 1 throttled to 2000 IOPS: the wait, then the guest", MAX, 2,
		  { 470 * US, 30 * US }, false },
		{ "io-server, the same: the wait, the backend, the next request", 2 * MAX, 3,
		  { 430 * US, 20 * US, 40 * US }, false },
		{ "throttled to 1000 IOPS at QD 32", MAX, 1, { 1000 * US }, false },
		{ "a packet every 5 ms", 2 * MAX, 1, { 5000 * US }, false },
		{ "a quiet second", 2 * MAX, 1, { 1000000 * US }, false },
	};
	struct vrio_backoff b;
	unsigned i, k;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		vrio_backoff_init(&b, cases[i].cap);
		for (k = 0; k < 400; k++) {
			vrio_backoff_work(&b, cases[i].gap[k % cases[i].n]);
			/* Settled: the window holds through the whole pattern. */
			if (k >= 200 && b.window_ns != (cases[i].spin ? cases[i].cap : 0))
				fail_msg("%s: window %llu ns after gap %u, expected %s",
					 cases[i].what, (unsigned long long)b.window_ns, k,
					 cases[i].spin ? "the cap" : "none");
		}
		/* The window decides the spin. */
		assert_int_equal(vrio_backoff_spin(&b, cases[i].cap / 2), cases[i].spin);
	}
}

/* Seldom work turns spinning off within a few gaps and frequent work turns
 * it back on as fast; one outlier among short gaps does not. */
static void test_adapts(void **state)
{
	struct vrio_backoff b;
	unsigned k;

	(void)state;
	vrio_backoff_init(&b, MAX);
	for (k = 0; k < 16; k++)
		vrio_backoff_work(&b, 10 * US);
	assert_int_equal(b.window_ns, MAX);
	/* Two preemptions in a row, or a quiet second: still spinning. */
	vrio_backoff_work(&b, 1000 * US);
	vrio_backoff_work(&b, 1000000 * US);
	assert_int_equal(b.window_ns, MAX);
	for (k = 0; k < 16 && b.window_ns; k++)
		vrio_backoff_work(&b, 1000 * US);
	assert_int_equal(b.window_ns, 0);
	assert_true(k <= 2);
	/* Back to full speed: spinning again within a dozen requests. */
	for (k = 0; k < 32 && !b.window_ns; k++)
		vrio_backoff_work(&b, 5 * US);
	assert_int_equal(b.window_ns, MAX);
	assert_true(k <= 12);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_start),
		cmocka_unit_test(test_steady),
		cmocka_unit_test(test_adapts),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

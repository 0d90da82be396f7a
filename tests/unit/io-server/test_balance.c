/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The elastic cores' policy (io-server/balance.h), over an injected clock
 * and injected loads: a sustained load unparks within 1 s, a fallen one
 * packs within 10 s, and a load at a threshold does not flap.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "balance.h"

#define MS 1000000ull
#define PERIOD IOS_BALANCE_PERIOD_NS

struct run {
	unsigned unparks, packs;
	uint64_t first_change;		/* ns after the start; 0: none */
};

/* Ticks every PERIOD from t0 for dur with load(k) (k: the tick's index). */
static struct run drive(struct ios_balance *b, uint64_t t0, uint64_t dur,
			double (*load)(unsigned k, unsigned active))
{
	struct run r = { 0 };
	unsigned k = 0;

	for (uint64_t t = t0; t < t0 + dur; t += PERIOD, k++) {
		switch (ios_balance_decide(b, t, load(k, b->active))) {
		case IOS_BALANCE_UNPARK:
			r.unparks++;
			break;
		case IOS_BALANCE_PACK:
			r.packs++;
			break;
		default:
			continue;
		}
		if (!r.first_change)
			r.first_change = t - t0 + 1;
	}
	return r;
}

static struct ios_balance mk(unsigned min, unsigned max)
{
	struct ios_balance_opts o;
	struct ios_balance b;

	ios_balance_opts_init(&o);
	o.min = min;
	o.max = max;
	ios_balance_init(&b, &o);
	return b;
}

/* Loads in cores: the sum of the active reactors' busy fractions. */
static double one_core_full(unsigned k, unsigned active) { return 0.95; }
static double idle(unsigned k, unsigned active) { return 0.02; }
static double at_high(unsigned k, unsigned active) { return 0.75; }
static double around_high(unsigned k, unsigned active) { return k % 2 ? 0.70 : 0.80; }
static double burst(unsigned k, unsigned active) { return k == 3 ? 0.99 : 0.1; }
/* After the unpark, the same work spread over two cores. */
static double steady_after_up(unsigned k, unsigned active) { return 0.8; }
static double just_under_pack(unsigned k, unsigned active) { return 0.52; }
static double saturated(unsigned k, unsigned active) { return 0.9 * active; }

static void test_unpark_within_1s(void **state)
{
	struct ios_balance b = mk(1, 2);
	struct run r = drive(&b, 1000 * MS, 3000 * MS, one_core_full);

	assert_int_equal(r.unparks, 1);
	assert_int_equal(r.packs, 0);
	assert_true(r.first_change <= 1000 * MS);
	/* Not on a single sample either: it must be sustained. */
	assert_true(r.first_change > PERIOD);
	assert_int_equal(b.active, 2);
}

static void test_burst_does_not_unpark(void **state)
{
	struct ios_balance b = mk(1, 2);
	struct run r = drive(&b, 0, 10000 * MS, burst);

	assert_int_equal(r.unparks, 0);
	assert_int_equal(b.active, 1);
}

static void test_pack_within_10s(void **state)
{
	struct ios_balance b = mk(1, 2);
	struct run r = drive(&b, 0, 2000 * MS, one_core_full);

	assert_int_equal(b.active, 2);
	r = drive(&b, 2000 * MS, 12000 * MS, idle);
	assert_int_equal(r.packs, 1);
	assert_int_equal(r.unparks, 0);
	assert_true(r.first_change <= 10000 * MS);
	/* A lull of a few seconds keeps the core. */
	assert_true(r.first_change >= 3000 * MS);
	assert_int_equal(b.active, 1);
}

static void test_no_flap_at_threshold(void **state)
{
	static double (*const loads[])(unsigned, unsigned) = {
		at_high, around_high, steady_after_up, just_under_pack,
	};
	struct ios_balance b;
	struct run r;

	for (size_t i = 0; i < sizeof(loads) / sizeof(loads[0]); i++) {
		b = mk(1, 2);
		r = drive(&b, 0, 60000 * MS, loads[i]);
		/* At most one change in a minute of one steady load. */
		assert_true(r.unparks + r.packs <= 1);
		assert_int_equal(r.packs, 0);
	}
	/* Exactly at busy_high: stays as it is. */
	b = mk(1, 2);
	r = drive(&b, 0, 60000 * MS, at_high);
	assert_int_equal(r.unparks, 0);
	/* Above it and steady: one unpark, then it keeps both. */
	b = mk(1, 2);
	r = drive(&b, 0, 60000 * MS, steady_after_up);
	assert_int_equal(r.unparks, 1);
	assert_int_equal(b.active, 2);
}

static void test_bounds(void **state)
{
	struct ios_balance b = mk(2, 2);
	struct run r = drive(&b, 0, 20000 * MS, saturated);

	assert_int_equal(r.unparks + r.packs, 0);
	assert_int_equal(b.active, 2);

	/* Up one core at a time to max, never past it; down to min. */
	b = mk(1, 4);
	r = drive(&b, 0, 20000 * MS, saturated);
	assert_int_equal(r.unparks, 3);
	assert_int_equal(b.active, 4);
	r = drive(&b, 20000 * MS, 60000 * MS, idle);
	assert_int_equal(r.packs, 3);
	assert_int_equal(b.active, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_unpark_within_1s),
		cmocka_unit_test(test_burst_does_not_unpark),
		cmocka_unit_test(test_pack_within_10s),
		cmocka_unit_test(test_no_flap_at_threshold),
		cmocka_unit_test(test_bounds),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

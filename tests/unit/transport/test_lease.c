/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Write leases (transport/lease.h) with both clocks in the test's hands:
 * the grantor's and the holder's start far apart and need not agree, only
 * measure durations. The property under test: whatever the delays and a
 * hang of the grantor, the grantor never finds its lease valid at a real
 * time after the holder's bound.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "lease.h"

#define MS 1000000ull
#define G0 (5000 * MS)		/* the grantor's clock at real time 0 */
#define H0 (123456 * MS)	/* the holder's */

static void test_never_granted_is_not_fenced(void **state)
{
	struct vrio_lease_grant g;

	(void)state;
	vrio_lease_grant_init(&g, 1000, 100);
	assert_true(vrio_lease_valid(&g, G0));
	assert_int_equal(vrio_lease_state(&g, G0), VRIO_LEASE_NONE);
	assert_int_equal(vrio_lease_ping_timeout_ms(&g, G0), 0);
	/* A peer that takes part: no write before its first echo. */
	vrio_lease_require(&g);
	assert_false(vrio_lease_valid(&g, G0));
	assert_int_equal(vrio_lease_state(&g, G0), VRIO_LEASE_PENDING);
	assert_int_equal(vrio_lease_echo(&g, vrio_lease_ping(&g, G0), G0 + MS), 0);
	assert_true(vrio_lease_valid(&g, G0 + 2 * MS));
}

static void test_ping_interval(void **state)
{
	struct vrio_lease_grant g;
	uint64_t s1, s2;

	(void)state;
	vrio_lease_grant_init(&g, 1000, 100);
	s1 = vrio_lease_ping(&g, G0);
	assert_int_equal(s1, G0);
	assert_int_equal(vrio_lease_ping(&g, G0 + 99 * MS), 0);
	assert_int_equal(vrio_lease_ping_timeout_ms(&g, G0 + 40 * MS), 60);
	s2 = vrio_lease_ping(&g, G0 + 100 * MS);
	assert_int_equal(s2, G0 + 100 * MS);
	assert_int_equal(vrio_lease_ping_timeout_ms(&g, G0 + 100 * MS), 100);
}

struct echo_case {
	const char *what;
	uint64_t stamp_after_ms;	/* from the first stamp; ~0: 0 */
	uint64_t now_ms;		/* of the echo, after the first stamp */
	int want;
};

static void test_echo_checked(void **state)
{
	static const struct echo_case cases[] = {
		{ "the stamp sent", 0, 5, 0 },
		{ "zero", ~0ull, 5, -EINVAL },
		{ "never sent (newer)", 1, 5, -EINVAL },
		{ "from the future", 0, 0, 0 },
	};
	struct vrio_lease_grant g;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct echo_case *c = &cases[i];
		uint64_t s;

		vrio_lease_grant_init(&g, 1000, 100);
		s = vrio_lease_ping(&g, G0);
		print_message("%s\n", c->what);
		assert_int_equal(vrio_lease_echo(&g, c->stamp_after_ms == ~0ull ? 0 :
						 s + c->stamp_after_ms * MS,
						 G0 + c->now_ms * MS), c->want);
	}
	/* A stamp newer than the grantor's clock: garbage. */
	vrio_lease_grant_init(&g, 1000, 100);
	vrio_lease_ping(&g, G0);
	assert_int_equal(vrio_lease_echo(&g, G0, G0 - 1), -EINVAL);
}

/* An old echo never shortens the lease, a new one extends it. */
static void test_lease_runs_from_the_stamp(void **state)
{
	struct vrio_lease_grant g;
	uint64_t s1, s2;

	(void)state;
	vrio_lease_grant_init(&g, 1000, 100);
	s1 = vrio_lease_ping(&g, G0);
	s2 = vrio_lease_ping(&g, G0 + 100 * MS);
	assert_int_equal(vrio_lease_echo(&g, s2, G0 + 150 * MS), 0);
	assert_int_equal(vrio_lease_echo(&g, s1, G0 + 160 * MS), 0);
	assert_true(vrio_lease_valid(&g, G0 + 1099 * MS));
	assert_int_equal(vrio_lease_state(&g, G0 + 1099 * MS), VRIO_LEASE_HELD);
	assert_false(vrio_lease_valid(&g, G0 + 1100 * MS));
	assert_int_equal(vrio_lease_state(&g, G0 + 1100 * MS), VRIO_LEASE_LAPSED);
}

/*
 * The safety property over a table of runs: pings every 100 ms (real time
 * `at`), each delayed `down` on the way to the holder and `up` back; the
 * holder stops echoing at real time `stop` (it declared the grantor dead);
 * the grantor hangs from `hang` to `wake` and then drains its socket: every
 * echo that arrived meanwhile. At no real time after the holder's bound
 * may the grantor find the lease valid.
 */
struct run {
	const char *what;
	unsigned down_ms, up_ms, stop_ms, hang_ms, wake_ms;
	bool rate_fast;		/* the grantor's clock runs 0.5% slow */
};

static void test_never_valid_after_the_bound(void **state)
{
	static const struct run runs[] = {
		{ "prompt both ways, holder stops at 2 s", 1, 1, 2000, 0, 0, false },
		{ "slow replies", 1, 400, 2000, 0, 0, false },
		{ "slow pings", 400, 1, 2000, 0, 0, false },
		{ "grantor hangs 1.5 s then reads old echoes", 1, 1, 2000, 1700, 3200, false },
		{ "hang just after a ping", 1, 300, 1850, 1801, 5000, false },
		{ "clock rates differ by 0.5%", 5, 5, 2000, 0, 0, true },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(runs) / sizeof(runs[0]); i++) {
		const struct run *r = &runs[i];
		struct vrio_lease_grant g;
		struct vrio_lease_hold h = { 0 };
		uint64_t stamps[64], echo_at[64], bound;
		unsigned n = 0;

		print_message("%s\n", r->what);
		/* A ping each 100 ms of real time, on either clock rate. */
		vrio_lease_grant_init(&g, 1000, 90);
		vrio_lease_require(&g);
		/* Real time t (ms) -> the grantor's clock. */
#define GCLK(t) (G0 + (r->rate_fast ? (uint64_t)(t) * MS * 995 / 1000 : (uint64_t)(t) * MS))
#define HCLK(t) (H0 + (uint64_t)(t) * MS)
		for (unsigned t = 0; t < 3000 && n < 64; t += 100) {
			if (r->hang_ms && t >= r->hang_ms && t < r->wake_ms)
				continue;	/* hung: sends nothing */
			stamps[n] = vrio_lease_ping(&g, GCLK(t));
			assert_true(stamps[n] != 0);
			if (t + r->down_ms >= r->stop_ms) {
				echo_at[n++] = 0;	/* not echoed */
				continue;
			}
			assert_int_equal(vrio_lease_hold_ping(&h, 1000, HCLK(t + r->down_ms)), 0);
			echo_at[n++] = t + r->down_ms + r->up_ms;
		}
		bound = vrio_lease_hold_until(&h) - H0;	/* real ns */
		/* The grantor takes each echo when it arrives, or at its wake. */
		for (unsigned real = 0; real < 8000; real++) {
			bool hung = r->hang_ms && real >= r->hang_ms && real < r->wake_ms;

			if (hung)
				continue;
			for (unsigned k = 0; k < n; k++)
				if (echo_at[k] && echo_at[k] <= real) {
					assert_int_equal(vrio_lease_echo(&g, stamps[k], GCLK(real)), 0);
					echo_at[k] = 0;
				}
			if ((uint64_t)real * MS >= bound)
				assert_false(vrio_lease_valid(&g, GCLK(real)));
		}
		/* And the bound is not far off: L + margin after the last echo. */
		assert_true(bound <= (uint64_t)(r->stop_ms + 1000) * MS +
				     vrio_lease_margin_ns(1000 * MS));
#undef GCLK
#undef HCLK
	}
}

static void test_hold_checks_the_peer(void **state)
{
	struct vrio_lease_hold h = { 0 };

	(void)state;
	assert_int_equal(vrio_lease_hold_ping(&h, 0, H0), -EINVAL);
	assert_int_equal(vrio_lease_hold_ping(&h, VRIO_LEASE_MAX_MS + 1, H0), -EINVAL);
	assert_int_equal(vrio_lease_hold_until(&h), 0);
	assert_int_equal(vrio_lease_hold_ping(&h, 1000, H0), 0);
	assert_int_equal(vrio_lease_hold_until(&h), H0 + 1000 * MS + vrio_lease_margin_ns(1000 * MS));
	/* An older ping (reordered on the way in) never shortens it. */
	assert_int_equal(vrio_lease_hold_ping(&h, 1000, H0 - 50 * MS), 0);
	assert_int_equal(vrio_lease_hold_until(&h), H0 + 1000 * MS + vrio_lease_margin_ns(1000 * MS));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_never_granted_is_not_fenced),
		cmocka_unit_test(test_ping_interval),
		cmocka_unit_test(test_echo_checked),
		cmocka_unit_test(test_lease_runs_from_the_stamp),
		cmocka_unit_test(test_never_valid_after_the_bound),
		cmocka_unit_test(test_hold_checks_the_peer),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

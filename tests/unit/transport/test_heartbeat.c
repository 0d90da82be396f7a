/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The liveness timers (transport/heartbeat.h) over a connection that is only
 * its counters, with the clock in the test's hands: a table of steps (time,
 * frames received and sent since the last step, the verdict and the sleep
 * expected).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "heartbeat.h"
#include "transport.h"

#define MS 1000000ull
#define T0 (1000 * MS)	/* a clock that does not start at 0 */

struct step {
	uint64_t at_ms;		/* after T0 */
	unsigned rx, tx;	/* frames since the previous step */
	enum vrio_hb_verdict want;
	int sleep_ms;		/* vrio_hb_timeout_ms() after the check */
};

struct hb_case {
	const char *what;
	unsigned interval_ms, dead_ms;
	struct step steps[8];
	unsigned n;
};

static const struct hb_case cases[] = {
	{ "quiet both ways: a heartbeat each interval, dead at dead_after", 100, 1000,
	  { { 0, 0, 0, VRIO_HB_OK, 100 },
	    { 99, 0, 0, VRIO_HB_OK, 1 },
	    { 100, 0, 0, VRIO_HB_SEND, 100 },
	    { 101, 0, 1, VRIO_HB_OK, 100 },	/* the heartbeat left */
	    { 201, 0, 0, VRIO_HB_SEND, 100 },
	    { 600, 0, 1, VRIO_HB_OK, 100 },
	    { 999, 0, 1, VRIO_HB_OK, 1 },
	    { 1000, 0, 0, VRIO_HB_DEAD, 0 } }, 8 },
	{ "any frame received is life", 100, 1000,
	  { { 900, 1, 1, VRIO_HB_OK, 100 },
	    { 1300, 0, 1, VRIO_HB_OK, 100 },
	    { 1700, 0, 1, VRIO_HB_OK, 100 },
	    { 1899, 0, 1, VRIO_HB_OK, 1 },
	    { 1900, 0, 0, VRIO_HB_DEAD, 0 } }, 5 },
	{ "a busy sender sends no heartbeat", 100, 1000,
	  { { 50, 3, 5, VRIO_HB_OK, 100 },
	    { 140, 0, 2, VRIO_HB_OK, 100 },
	    { 230, 1, 9, VRIO_HB_OK, 100 },
	    { 330, 0, 0, VRIO_HB_SEND, 100 } }, 4 },
	{ "the sleep ends at the sooner of the two timers", 300, 700,
	  { { 0, 0, 0, VRIO_HB_OK, 300 },
	    { 300, 0, 0, VRIO_HB_SEND, 300 },
	    { 600, 0, 0, VRIO_HB_SEND, 100 },
	    { 700, 0, 0, VRIO_HB_DEAD, 0 } }, 4 },
	{ "a late turn (the owner was stopped) still hears what arrived", 100, 1000,
	  { { 5000, 1, 0, VRIO_HB_SEND, 100 } }, 1 },
	{ "a late turn with nothing arrived is the owner's gap, not the peer's silence", 100, 1000,
	  { { 5000, 0, 0, VRIO_HB_SEND, 100 },
	    { 5400, 0, 1, VRIO_HB_OK, 100 },
	    { 5800, 0, 1, VRIO_HB_OK, 100 },
	    { 6000, 0, 0, VRIO_HB_DEAD, 0 } }, 4 },
};

static void test_table(void **state)
{
	unsigned failed = 0;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct hb_case *k = &cases[i];
		struct vrio_conn c;
		struct vrio_hb h;

		memset(&c, 0, sizeof(c));
		c.stats.frames_rx = 7;
		c.stats.frames_tx = 11;
		vrio_hb_init(&h, k->interval_ms, k->dead_ms);
		vrio_hb_start(&h, &c, T0);
		for (unsigned s = 0; s < k->n; s++) {
			const struct step *st = &k->steps[s];
			uint64_t now = T0 + st->at_ms * MS;
			enum vrio_hb_verdict v;
			int t;

			c.stats.frames_rx += st->rx;
			c.stats.frames_tx += st->tx;
			v = vrio_hb_check(&h, &c, now);
			t = vrio_hb_timeout_ms(&h, now);
			if (v != st->want || t != st->sleep_ms) {
				print_message("case '%s' step %u: verdict %d sleep %d, want %d and %d\n",
					      k->what, s, v, t, st->want, st->sleep_ms);
				failed++;
			}
		}
	}
	assert_int_equal(failed, 0);
}

static void test_silent(void **state)
{
	struct vrio_conn c;
	struct vrio_hb h;

	memset(&c, 0, sizeof(c));
	vrio_hb_init(&h, 100, 1000);
	vrio_hb_start(&h, &c, T0);
	assert_int_equal(vrio_hb_silent_ms(&h, T0 + 1234 * MS), 1234);
	/* A clock behind the timers (another thread's turn) is no silence. */
	assert_int_equal(vrio_hb_silent_ms(&h, T0 - MS), 0);
	assert_int_equal(vrio_hb_check(&h, &c, T0 - MS), VRIO_HB_OK);
}

/* A drain stops reading: the send timer alone runs, and no amount of
 * the peer's (unread) silence makes the connection dead. */
static void test_send_only(void **state)
{
	struct vrio_conn c;
	struct vrio_hb h;

	memset(&c, 0, sizeof(c));
	vrio_hb_init(&h, 100, 1000);
	vrio_hb_start(&h, &c, T0);
	assert_false(vrio_hb_send_due(&h, &c, T0 + 99 * MS));
	assert_int_equal(vrio_hb_send_timeout_ms(&h, T0 + 99 * MS), 1);
	assert_true(vrio_hb_send_due(&h, &c, T0 + 100 * MS));
	assert_int_equal(vrio_hb_send_timeout_ms(&h, T0 + 100 * MS), 100);
	/* A frame sent meanwhile restarts the timer. */
	c.stats.frames_tx = 1;
	assert_false(vrio_hb_send_due(&h, &c, T0 + 150 * MS));
	assert_false(vrio_hb_send_due(&h, &c, T0 + 249 * MS));
	assert_true(vrio_hb_send_due(&h, &c, T0 + 250 * MS));
	/* Long past dead_after, still only a heartbeat due each interval. */
	assert_true(vrio_hb_send_due(&h, &c, T0 + 5000 * MS));
	assert_int_equal(vrio_hb_send_timeout_ms(&h, T0 + 5000 * MS), 100);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_silent),
		cmocka_unit_test(test_send_only),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Completion coalescing (local-hv/notify.c): a table of single decisions,
 * then a simulated event-idx guest driven through random rounds, checking
 * that every wake-up the guest asked for comes, and within the window.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "notify.h"

#define US 1000ull

struct step {
	uint16_t used_idx;
	uint16_t used_event;
	unsigned inflight;
	uint64_t now;
	enum lhv_notify_act want;
};

static void run_steps(bool event_idx, uint64_t window, const struct step *s, size_t n)
{
	struct lhv_notify note;
	struct lhv_notify_guest g = { .event_idx = event_idx };

	lhv_notify_reset(&note);
	for (size_t i = 0; i < n; i++) {
		g.used_event = s[i].used_event;
		assert_int_equal(lhv_notify_decide(&note, s[i].used_idx, &g, s[i].inflight, window,
						   s[i].now),
				 s[i].want);
	}
}

static void test_off(void **state)
{
	/* Window 0: as before, every round the guest asked for interrupts. */
	static const struct step s[] = {
		{ 1, 0, 3, 100 * US, LHV_NOTIFY_SEND },		/* first decision */
		{ 1, 0, 3, 101 * US, LHV_NOTIFY_NONE },		/* nothing new */
		{ 2, 1, 3, 102 * US, LHV_NOTIFY_SEND },
		{ 3, 1, 3, 103 * US, LHV_NOTIFY_NONE },		/* guest not back yet */
		{ 4, 3, 3, 104 * US, LHV_NOTIFY_SEND },
	};

	(void)state;
	run_steps(true, 0, s, sizeof(s) / sizeof(s[0]));
}

static void test_hold_bounded(void **state)
{
	static const struct step s[] = {
		{ 1, 0, 3, 100 * US, LHV_NOTIFY_SEND },
		{ 2, 1, 3, 200 * US, LHV_NOTIFY_HOLD },		/* due, more in flight */
		{ 3, 1, 2, 204 * US, LHV_NOTIFY_HOLD },
		{ 3, 1, 2, 209 * US, LHV_NOTIFY_HOLD },		/* nothing new, still owed */
		{ 3, 1, 2, 210 * US, LHV_NOTIFY_SEND },		/* the window is up */
		{ 4, 3, 1, 300 * US, LHV_NOTIFY_HOLD },
		{ 5, 3, 0, 301 * US, LHV_NOTIFY_SEND },		/* nothing left in flight */
		{ 6, 5, 0, 400 * US, LHV_NOTIFY_SEND },		/* idle queue: at once */
		{ 7, 9, 4, 500 * US, LHV_NOTIFY_NONE },		/* guest asked for later */
	};

	(void)state;
	run_steps(true, 10 * US, s, sizeof(s) / sizeof(s[0]));
}

static void test_hold_guest_moved_on(void **state)
{
	/* Held, then the guest polled the ring itself and moved used_event
	 * past what was published: nothing is owed any more. */
	static const struct step s[] = {
		{ 1, 0, 3, 100 * US, LHV_NOTIFY_SEND },
		{ 2, 1, 3, 101 * US, LHV_NOTIFY_HOLD },
		{ 2, 2, 3, 102 * US, LHV_NOTIFY_NONE },
		{ 3, 2, 3, 103 * US, LHV_NOTIFY_HOLD },		/* a new hold, a new window */
		{ 3, 2, 3, 112 * US, LHV_NOTIFY_HOLD },
		{ 3, 2, 3, 113 * US, LHV_NOTIFY_SEND },
	};

	(void)state;
	run_steps(true, 10 * US, s, sizeof(s) / sizeof(s[0]));
}

static void test_no_event_idx(void **state)
{
	/* Without event-idx the flag decides and nothing is held. */
	struct lhv_notify note;
	struct lhv_notify_guest g = { .event_idx = false };

	(void)state;
	lhv_notify_reset(&note);
	assert_int_equal(lhv_notify_decide(&note, 1, &g, 5, 10 * US, 1 * US), LHV_NOTIFY_SEND);
	assert_int_equal(lhv_notify_decide(&note, 2, &g, 5, 10 * US, 2 * US), LHV_NOTIFY_SEND);
	g.no_interrupt = true;
	assert_int_equal(lhv_notify_decide(&note, 3, &g, 5, 10 * US, 3 * US), LHV_NOTIFY_NONE);
	assert_int_equal(lhv_notify_decide(&note, 3, &g, 5, 10 * US, 4 * US), LHV_NOTIFY_NONE);
}

/*
 * A guest in the style of Linux's virtio_ring: it reads the used ring when
 * interrupted, or now and then on its own, and then sets used_event to
 * what it has seen (virtqueue_enable_cb), or further ahead
 * (virtqueue_enable_cb_delayed). It is owed an interrupt from the round
 * its used_event is crossed until it reads the ring.
 */
struct guest {
	uint16_t seen, used_event;
	bool owed;
	uint64_t owed_since;
};

static void guest_reads(struct guest *g, uint16_t used_idx, unsigned ahead)
{
	g->seen = used_idx;
	g->used_event = (uint16_t)(used_idx + ahead);
	g->owed = false;
}

static void simulate(uint64_t window, unsigned seed)
{
	struct lhv_notify note;
	struct lhv_notify_guest ng = { .event_idx = true };
	struct guest g = { 0 };
	uint16_t used_idx = 0;
	unsigned inflight = 0, sends = 0, completions = 0, i, k;
	uint64_t now = 1000 * US, longest = 0;
	enum lhv_notify_act act;

	srand(seed);
	lhv_notify_reset(&note);
	for (i = 0; i < 200000; i++) {
		/* The guest posts, the io-server answers some of it. */
		inflight += (unsigned)(rand() % 3);
		k = inflight ? (unsigned)(rand() % (inflight < 4 ? inflight + 1 : 4)) : 0;
		if (rand() % 4 == 0)
			k = 0;
		inflight -= k;
		completions += k;
		for (; k; k--) {
			used_idx++;
			if (!g.owed && used_idx == (uint16_t)(g.used_event + 1)) {
				g.owed = true;
				g.owed_since = now;
			}
		}
		/* Sometimes the guest polls on its own. */
		if (rand() % 50 == 0)
			guest_reads(&g, used_idx, (unsigned)(rand() % 3));
		ng.used_event = g.used_event;
		act = lhv_notify_decide(&note, used_idx, &ng, inflight, window, now);
		if (act == LHV_NOTIFY_HOLD) {
			assert_true(window && inflight);
			assert_true(g.owed);
			assert_true(now - g.owed_since < window);
		}
		if (act == LHV_NOTIFY_SEND) {
			sends++;
			/* Only the very first decision may be spurious. */
			assert_true(g.owed || (i == 0 && used_idx == g.seen));
			if (g.owed && now - g.owed_since > longest)
				longest = now - g.owed_since;
			guest_reads(&g, used_idx, rand() % 8 ? 0 : (unsigned)(rand() % 4));
		}
		/* Never a wake-up lost: what the guest is owed is held or sent. */
		if (g.owed)
			assert_int_equal(act, LHV_NOTIFY_HOLD);
		now += (uint64_t)(rand() % 3000);	/* 0-3 us per round */
	}
	assert_true(longest < window + 3 * US);
	print_message("window %llu us: %u completions, %u interrupts, longest hold %.1f us\n",
		      (unsigned long long)(window / US), completions, sends, (double)longest / US);
}

static void test_simulated_guest(void **state)
{
	(void)state;
	simulate(0, 1);
	simulate(5 * US, 2);
	simulate(20 * US, 3);
}

/* Holding must cut interrupts per completion, or it is only latency. */
static void test_fewer_interrupts(void **state)
{
	struct lhv_notify a, b;
	struct lhv_notify_guest g = { .event_idx = true };
	uint16_t idx = 0, seen_a = 0, seen_b = 0;
	unsigned sa = 0, sb = 0, i;
	uint64_t now = 1000 * US;

	(void)state;
	lhv_notify_reset(&a);
	lhv_notify_reset(&b);
	for (i = 0; i < 1000; i++, now += 1 * US) {
		idx++;	/* one completion per 1 us round, 32 in flight */
		g.used_event = seen_a;
		if (lhv_notify_decide(&a, idx, &g, 32, 0, now) == LHV_NOTIFY_SEND) {
			sa++;
			seen_a = idx;
		}
		g.used_event = seen_b;
		if (lhv_notify_decide(&b, idx, &g, 32, 8 * US, now) == LHV_NOTIFY_SEND) {
			sb++;
			seen_b = idx;
		}
	}
	assert_int_equal(sa, 1000);
	assert_in_range(sb, 100, 130);	/* one per 8-9 completions */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_off),
		cmocka_unit_test(test_hold_bounded),
		cmocka_unit_test(test_hold_guest_moved_on),
		cmocka_unit_test(test_no_event_idx),
		cmocka_unit_test(test_simulated_guest),
		cmocka_unit_test(test_fewer_interrupts),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

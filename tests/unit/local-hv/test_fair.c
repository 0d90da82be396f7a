/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Fair shares within local-hv's poll round (fair.h), over fake queues
 * served as poll_devices() serves them: a QD 1 queue's request leaves
 * after at most a quantum of a deep neighbour's, not after its whole
 * budget; a deep queue alone, or each of many, still takes the whole
 * budget a round; a queue that runs dry or fails leaves the round.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "fair.h"

#define BUDGET	64u		/* LHV_BUDGET */
#define NQ_MAX	(LHV_FAIR_MAX + 8)
#define LOG_MAX	(NQ_MAX * BUDGET)

struct sim {
	unsigned nq;
	unsigned pending[NQ_MAX];
	unsigned taken[NQ_MAX];
	int fail_after[NQ_MAX];	/* >0: -ENOBUFS once this many are taken */
	unsigned log[LOG_MAX];	/* the queue of each unit, in order */
	unsigned nlog;
};

static int take(void *ctx, void *obj, unsigned idx, unsigned max)
{
	struct sim *s = ctx;
	unsigned q = idx, n;

	assert_ptr_equal(obj, s);
	assert_true(q < s->nq);
	assert_true(max >= 1);
	if (s->fail_after[q] && s->taken[q] >= (unsigned)s->fail_after[q])
		return -ENOBUFS;
	n = s->pending[q] < max ? s->pending[q] : max;
	for (unsigned i = 0; i < n; i++)
		s->log[s->nlog++] = q;
	s->pending[q] -= n;
	s->taken[q] += n;
	return (int)n;
}

/* One poll round, as poll_devices() runs it. */
static int round_of(struct lhv_fair *f, struct sim *s)
{
	int work = 0, took;

	memset(s->taken, 0, sizeof(s->taken));
	s->nlog = 0;
	lhv_fair_begin(f, LHV_FAIR_QUANTUM, BUDGET);
	for (unsigned q = 0; q < s->nq; q++) {
		took = take(s, s, q, LHV_FAIR_QUANTUM);
		if (took < 0)
			continue;
		work += took;
		work += lhv_fair_first(f, s, q, took, take, s);
	}
	return work + lhv_fair_rest(f, take, s);
}

static unsigned first_unit_of(const struct sim *s, unsigned q)
{
	for (unsigned i = 0; i < s->nlog; i++)
		if (s->log[i] == q)
			return i;
	return ~0u;
}

static struct lhv_fair fair;
static struct sim sim;

static void setup_sim(unsigned nq, unsigned depth)
{
	memset(&sim, 0, sizeof(sim));
	sim.nq = nq;
	for (unsigned q = 0; q < nq; q++)
		sim.pending[q] = depth;
}

/* The case: QD 128 beside QD 1, in either order of service. */
static void test_shallow_beside_deep(void **state)
{
	static const struct {
		unsigned deep, shallow;
	} order[] = { { 0, 1 }, { 1, 0 } };

	for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
		setup_sim(2, 128);
		sim.pending[order[i].shallow] = 1;
		assert_int_equal(round_of(&fair, &sim), BUDGET + 1);
		assert_int_equal(sim.taken[order[i].deep], BUDGET);
		assert_int_equal(sim.taken[order[i].shallow], 1);
		/* After at most a quarter budget of the deep queue's (one
		 * quantum); the budget taken whole, as before, puts it at 64. */
		assert_true(first_unit_of(&sim, order[i].shallow) <= BUDGET / 4);
		/* The next round: the deep queue's next budget. */
		sim.pending[order[i].shallow] = 1;
		assert_int_equal(round_of(&fair, &sim), BUDGET + 1);
		assert_true(first_unit_of(&sim, order[i].shallow) <= BUDGET / 4);
	}
}

/* Alone, a deep queue takes the same budget a round as before. */
static void test_alone_takes_budget(void **state)
{
	setup_sim(1, 1000);
	assert_int_equal(round_of(&fair, &sim), BUDGET);
	assert_int_equal(round_of(&fair, &sim), BUDGET);
	assert_int_equal(sim.pending[0], 1000 - 2 * BUDGET);
}

/* Equal deep queues: each its budget a round, a quantum at a time in
 * turn; equal shallow ones: one pass, each all it has. */
static void test_equal_queues(void **state)
{
	unsigned run = 1;

	setup_sim(16, 128);
	assert_int_equal(round_of(&fair, &sim), 16 * BUDGET);
	for (unsigned q = 0; q < 16; q++)
		assert_int_equal(sim.taken[q], BUDGET);
	for (unsigned i = 1; i < sim.nlog; i++) {
		run = sim.log[i] == sim.log[i - 1] ? run + 1 : 1;
		assert_true(run <= LHV_FAIR_QUANTUM);
	}
	setup_sim(16, 8);
	assert_int_equal(round_of(&fair, &sim), 16 * 8);
	for (unsigned q = 0; q < 16; q++)
		assert_int_equal(first_unit_of(&sim, q), q * 8);
}

/* More busy queues than the round keeps: the extra ones take their
 * budget at once, nothing is lost. */
static void test_more_queues_than_places(void **state)
{
	setup_sim(NQ_MAX, 128);
	assert_int_equal(round_of(&fair, &sim), NQ_MAX * BUDGET);
	for (unsigned q = 0; q < NQ_MAX; q++)
		assert_int_equal(sim.taken[q], BUDGET);
}

/* A queue that runs dry, or whose send fails (-ENOBUFS), leaves the
 * round; the others go on. */
static void test_dry_and_failing_queues(void **state)
{
	setup_sim(3, 128);
	sim.pending[0] = LHV_FAIR_QUANTUM + 3;
	sim.fail_after[1] = 2 * LHV_FAIR_QUANTUM;
	assert_int_equal(round_of(&fair, &sim), LHV_FAIR_QUANTUM + 3 + 2 * LHV_FAIR_QUANTUM + BUDGET);
	assert_int_equal(sim.taken[0], LHV_FAIR_QUANTUM + 3);
	assert_int_equal(sim.taken[1], 2 * LHV_FAIR_QUANTUM);
	assert_int_equal(sim.taken[2], BUDGET);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_shallow_beside_deep),
		cmocka_unit_test(test_alone_takes_budget),
		cmocka_unit_test(test_equal_queues),
		cmocka_unit_test(test_more_queues_than_places),
		cmocka_unit_test(test_dry_and_failing_queues),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

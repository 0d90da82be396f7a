/* SPDX-License-Identifier: BSD-3-Clause */
#include "tbucket.h"

#define SCALE 1000000000ll

static int64_t clamp_cap(unsigned __int128 v)
{
	return v > (unsigned __int128)(INT64_MAX / 2) ? INT64_MAX / 2 : (int64_t)v;
}

void ios_tb_set(struct ios_tbucket *tb, uint64_t rate, uint64_t burst_ns, uint64_t now)
{
	int64_t cap;

	ios_tb_refill(tb, now);
	cap = clamp_cap((unsigned __int128)rate * burst_ns);
	if (cap < SCALE)
		cap = SCALE;
	tb->rate = rate;
	tb->cap = cap;
	if (tb->tokens > cap)
		tb->tokens = cap;
}

void ios_tb_init(struct ios_tbucket *tb, uint64_t rate, uint64_t burst_ns, uint64_t now)
{
	tb->rate = 0;
	tb->last_ns = now;
	tb->tokens = 0;
	ios_tb_set(tb, rate, burst_ns, now);
	tb->tokens = tb->cap;
}

void ios_tb_refill(struct ios_tbucket *tb, uint64_t now)
{
	unsigned __int128 add;

	if (now <= tb->last_ns)
		return;
	add = (unsigned __int128)(now - tb->last_ns) * tb->rate;
	tb->last_ns = now;
	if (add >= (unsigned __int128)(tb->cap - tb->tokens))
		tb->tokens = tb->cap;
	else
		tb->tokens += (int64_t)add;
}

/* What must be in the bucket for `units` to go: their cost, or a full
 * bucket for more than it holds. */
static int64_t need(const struct ios_tbucket *tb, uint64_t units)
{
	unsigned __int128 cost = (unsigned __int128)units * SCALE;

	return cost > (unsigned __int128)tb->cap ? tb->cap : (int64_t)cost;
}

bool ios_tb_ready(const struct ios_tbucket *tb, uint64_t units)
{
	return !tb->rate || tb->tokens >= need(tb, units);
}

void ios_tb_charge(struct ios_tbucket *tb, uint64_t units)
{
	unsigned __int128 cost = (unsigned __int128)units * SCALE;

	if (!tb->rate)
		return;
	/* A debt larger than this would take centuries to pay anyway. */
	if (cost > (unsigned __int128)(INT64_MAX / 4))
		cost = INT64_MAX / 4;
	tb->tokens -= (int64_t)cost;
	if (tb->tokens < INT64_MIN / 2)
		tb->tokens = INT64_MIN / 2;
}

uint64_t ios_tb_wait_ns(const struct ios_tbucket *tb, uint64_t units)
{
	int64_t want;

	if (!tb->rate)
		return 0;
	want = need(tb, units);
	if (tb->tokens >= want)
		return 0;
	return (uint64_t)(((unsigned __int128)(want - tb->tokens) + tb->rate - 1) / tb->rate);
}

bool ios_tb_take(struct ios_tbucket *tb, uint64_t units, uint64_t now)
{
	unsigned __int128 cost = (unsigned __int128)units * SCALE;

	if (!tb->rate)
		return true;
	ios_tb_refill(tb, now);
	if (tb->tokens < 0 || (unsigned __int128)tb->tokens < cost)
		return false;
	tb->tokens -= (int64_t)cost;
	return true;
}

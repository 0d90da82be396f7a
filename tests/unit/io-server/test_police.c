/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The police stage (stage_police.c) in a chain, on an injected clock (the
 * frames' arrival, req->t_start): offered at several times its rate, each
 * direction lets through its burst and then its rate, held within a frame
 * over every 1 s and 100 ms window; what it drops is counted (reason
 * "rate") and goes no further; the directions do not share a
 * bucket; a reload's new rate takes over at the next frame, keeping the
 * counters; a burst below the largest frame is raised to it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ioserver_internal.h"

#define NS 1000000000ull

#define TOPO_HEAD \
	"version: 1\nio_servers:\n  - name: io0\n    listen: 127.0.0.1:7400\n" \
	"hosts:\n  - name: host0\n" \
	"devices:\n  - name: nic\n    type: net\n    host: host0\n    io_server: io0\n" \
	"    socket: /run/vrio/nic.sock\n    mac: \"52:54:00:00:00:01\"\n    network: lan\n" \
	"    interpose:\n"
#define TOPO_TAIL "networks:\n  - name: lan\n"

static struct vrio_topology *load(const char *interpose)
{
	struct vrio_topology *t = NULL;
	char text[2048], err[512] = "";

	snprintf(text, sizeof(text), TOPO_HEAD "%s" TOPO_TAIL, interpose);
	if (vrio_topology_parse("police.yaml", text, strlen(text), &t, err, sizeof(err)) != 0)
		fail_msg("%s\n%s", err, text);
	return t;
}

struct rig {
	struct vrio_topology *t;
	struct ios_device d;
	struct ios_stage *st;
	struct ios_req req;
	uint8_t frame[9018];
};

static bool rig_offloads;	/* the next rig's device offers offloads */

static struct rig *rig_new(const char *interpose)
{
	struct rig *g = calloc(1, sizeof(*g));
	struct ios_chain *c = NULL;
	char why[256] = "";

	assert_non_null(g);
	snprintf(g->d.name, sizeof(g->d.name), "nic");
	g->t = load(interpose);
	g->d.topo = &g->t->devices[0];
	g->d.u.net.model.mtu = 1500;
	g->d.u.net.model.offloads = rig_offloads;
	if (ios_chain_build(&g->d, g->d.topo, &c, why, sizeof(why)) != 0)
		fail_msg("chain: %s", why);
	g->d.chain = c;
	g->st = c->stages[0];
	return g;
}

static void rig_free(struct rig *g)
{
	ios_chain_put(g->d.chain);
	vrio_topology_free(g->t);
	free(g);
}

/* One frame of len bytes at time `now`, in or out, as dev_net sends it
 * (ios_chain_run); true if it passed. */
static bool frame(struct rig *g, uint32_t len, bool out, uint64_t now)
{
	bool passed;

	memset(&g->req, 0, sizeof(g->req));
	g->req.dev = &g->d;
	g->req.t_start = now;
	g->req.u.net = (struct ios_net_req){ .eth = g->frame, .len = len, .out = out };
	passed = ios_chain_run(&g->d, &g->req);
	assert_true(passed != g->req.u.net.dropped);
	assert_null(g->req.chain);
	return passed;
}

/* Offers len-byte frames every gap_ns from t0 for secs; returns the worst
 * error, relative, of the bytes through in windows of win_ns after the
 * first second, against rate x window; *through gets the total. */
static double offer(struct rig *g, uint64_t t0, unsigned secs, uint32_t len, uint64_t gap_ns,
		    bool out, uint64_t rate, uint64_t win_ns, uint64_t *through)
{
	uint64_t wstart = t0 + NS, in_win = 0, total = 0;
	double want = (double)rate * (double)win_ns / NS, worst = 0, err;

	for (uint64_t t = t0; t < t0 + secs * NS; t += gap_ns) {
		while (t >= wstart + win_ns) {
			err = ((double)in_win - want) / want;
			worst = err < 0 ? (-err > worst ? -err : worst) : (err > worst ? err : worst);
			in_win = 0;
			wstart += win_ns;
		}
		if (frame(g, len, out, t)) {
			total += len;
			if (t >= t0 + NS)
				in_win += len;
		}
	}
	*through = total;
	return worst;
}

static void test_rate_and_burst(void **state)
{
	static const struct {
		uint64_t rate, burst;
		uint32_t len;
		uint64_t gap_ns;	/* offered: len / gap, several times the rate */
		uint64_t win_ns;
		double tolerance;
	} cases[] = {
		/* 1 MB/s of 1000-byte frames offered at 10 MB/s, 1 s windows. */
		{ 1000000, 100000, 1000, 100000, NS, 0.0011 },
		/* 100 ms windows: a frame in 100,000 bytes. */
		{ 1000000, 100000, 1000, 100000, NS / 10, 0.011 },
		/* 80 Mbit/s of 64-byte frames offered at 3x. */
		{ 10000000, 1000000, 64, 2133, NS, 0.0001 },
		/* Jumbo frames, 2 MB/s offered at 4.5x. */
		{ 2000000, 200000, 9018, 1000000, NS, 0.005 },
	};
	char yaml[256];
	uint64_t through, drops;
	struct rig *g;
	double err;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(yaml, sizeof(yaml),
			 "      - police: {in: {rate: %llu, burst: %llu}}\n",
			 (unsigned long long)cases[i].rate, (unsigned long long)cases[i].burst);
		g = rig_new(yaml);
		err = offer(g, 7 * NS, 5, cases[i].len, cases[i].gap_ns, false, cases[i].rate,
			    cases[i].win_ns, &through);
		if (err > cases[i].tolerance)
			fail_msg("case %zu: a window off by %.4f%%", i, err * 100);
		printf("police %llu B/s, %u-byte frames: worst %llu ms window off by %.4f%%\n",
		       (unsigned long long)cases[i].rate, cases[i].len,
		       (unsigned long long)(cases[i].win_ns / 1000000), err * 100);
		/* Over the run: the burst and the rate, never more. */
		assert_true(through <= cases[i].burst + 5 * cases[i].rate + cases[i].len);
		assert_true(through + 2 * cases[i].len >= cases[i].burst + 5 * cases[i].rate);
		drops = g->st->st.drops[IOS_STAGE_DROP_RATE];
		assert_int_equal(drops * cases[i].len + through, g->st->st.bytes);
		assert_true(drops > 0);
		rig_free(g);
	}
}

static void test_directions(void **state)
{
	struct rig *g = rig_new("      - police: {in: {rate: 10K, burst: 10K}, out: {rate: 20K, burst: 20K}}\n");
	uint64_t through;

	/* In: its own bucket. Exhaust it; out still has its whole burst. */
	offer(g, NS, 1, 1000, 1000, false, 10240, NS, &through);
	assert_false(frame(g, 1000, false, 2 * NS - 1));
	for (unsigned i = 0; i < 20; i++)
		assert_true(frame(g, 1000, true, 2 * NS));
	assert_false(frame(g, 1000, true, 2 * NS));
	rig_free(g);

	/* Only one direction limited: the other passes whatever comes. */
	g = rig_new("      - police: {out: {rate: 1K, burst: 2K}}\n");
	for (unsigned i = 0; i < 1000; i++)
		assert_true(frame(g, 1500, false, NS + i));
	rig_free(g);
}

static void test_retune(void **state)
{
	struct rig *g = rig_new("      - police: {in: {rate: 100K, burst: 10K}}\n");
	struct vrio_topology *t2 = load("      - police: {in: {rate: 1M, burst: 100K}}\n");
	const struct ios_stage_ops *ops = ios_stage_ops_find(VRIO_STAGE_POLICE);
	uint64_t through, drops;
	double err;

	assert_ptr_equal(ops, &ios_stage_police_ops);
	offer(g, NS, 3, 1000, 100000, false, 102400, NS, &through);
	drops = g->st->st.drops[IOS_STAGE_DROP_RATE];
	assert_true(drops > 0);
	assert_int_equal(ops->retune(g->st, &t2->devices[0].stages[0], false), 0);
	assert_int_equal(ops->retune(g->st, &t2->devices[0].stages[0], true), 0);
	/* 1 MiB/s from the next frame on, offered at 10 MB/s. */
	err = offer(g, 10 * NS, 4, 1000, 100000, false, 1048576, NS, &through);
	if (err > 0.002)
		fail_msg("after the retune, a window off by %.4f%%", err * 100);
	assert_true(g->st->st.drops[IOS_STAGE_DROP_RATE] > drops);
	vrio_topology_free(t2);
	rig_free(g);
}

/* A burst smaller than the network's largest frame would never let such
 * a frame through: the bucket holds at least one. */
static void test_small_burst(void **state)
{
	struct rig *g = rig_new("      - police: {in: {rate: 1K, burst: 100}}\n");

	assert_true(frame(g, 1514, false, NS));
	assert_false(frame(g, 1514, false, NS));
	assert_true(frame(g, 1514, false, 3 * NS));
	rig_free(g);
}

/* With the device's offloads a 64 KiB TSO packet is its largest frame: a
 * small burst is raised to hold one (without, it could never pass). */
static void test_tso_packet(void **state)
{
	struct rig *g;

	rig_offloads = true;
	g = rig_new("      - police: {in: {rate: 1K, burst: 100}}\n");
	rig_offloads = false;
	assert_true(frame(g, VRIO_PKT_MAX_GSO_FRAME, false, NS));
	assert_false(frame(g, VRIO_PKT_MAX_GSO_FRAME, false, NS));
	rig_free(g);
	g = rig_new("      - police: {in: {rate: 1K, burst: 100}}\n");
	assert_false(frame(g, VRIO_PKT_MAX_GSO_FRAME, false, NS));
	rig_free(g);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rate_and_burst),
		cmocka_unit_test(test_directions),
		cmocka_unit_test(test_retune),
		cmocka_unit_test(test_small_burst),
		cmocka_unit_test(test_tso_packet),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

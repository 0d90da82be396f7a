/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * One network's switch (switch.c, ios_switch_forward) on its home
 * reactor: MAC learning and ageing, a MAC moving to another port (a trunk,
 * when its guest moved to another io-server), flooding of broadcast and
 * unknown destinations once to each port, split horizon between trunks,
 * a guest's source address held to its port.
 * Every port here is down (no reactor owns it), so what the switch sends
 * toward a port shows as that port's port_down drop: one per frame sent
 * there, none where nothing went.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ioserver_internal.h"

#define SEC 1000000000ull

enum { A, B, T1, T2, NPORTS };	/* two guests' ports, two trunks */

struct rig {
	struct ios_server srv;
	struct ios_switch sw;
	struct ios_reactor r;
	struct ios_network *n;
	struct ios_port *p[NPORTS];
	int dev, trunk;		/* what the ports' dev and trunk point at */
	uint64_t seen[NPORTS];	/* port_down drops at the last sent_to() */
};

static const uint8_t mac_a[6] = { 0x52, 0x54, 0, 0, 0, 0xa };
static const uint8_t mac_b[6] = { 0x52, 0x54, 0, 0, 0, 0xb };
static const uint8_t mac_x[6] = { 0x52, 0x54, 0, 0, 1, 0x1 };	/* behind a trunk */
static const uint8_t mac_y[6] = { 0x52, 0x54, 0, 0, 1, 0x2 };	/* behind the other */
static const uint8_t bcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };

static int setup(void **state)
{
	struct rig *g = calloc(1, sizeof(*g));
	struct ios_network *n = calloc(1, sizeof(*n));

	assert_non_null(g);
	assert_non_null(n);
	n->table = calloc(IOS_MAC_SLOTS, sizeof(*n->table));
	assert_non_null(n->table);
	n->mtu = 1500;
	n->max_frame = 1518;
	n->ageing_ns = 300 * SEC;
	n->tap_fd = -1;
	n->home = &g->r;
	g->srv.sw = &g->sw;	/* one reactor: no rings between reactors */
	g->r.srv = &g->srv;
	g->r.now = 1000 * SEC;
	for (unsigned i = 0; i < NPORTS; i++) {
		struct ios_port *p = &n->slots[i];

		p->net = n;
		p->reactor = -1;
		p->linked = true;
		if (i == A || i == B) {
			p->dev = (struct ios_device *)&g->dev;
			memcpy(p->mac, i == A ? mac_a : mac_b, 6);
		} else {
			p->trunk = (struct ios_trunk *)&g->trunk;
		}
		n->ports[n->n_ports++] = p;
		g->p[i] = p;
	}
	g->n = n;
	*state = g;
	return 0;
}

static int teardown(void **state)
{
	struct rig *g = *state;

	free(g->n->table);
	free(g->n);
	free(g);
	return 0;
}

/* A 60-byte frame from port `in`, dst -> src, through the switch. */
static void send(struct rig *g, int in, const uint8_t *dst, const uint8_t *src)
{
	uint8_t f[60] = { 0 };
	struct vrio_pkt_wire vh = { 0 };

	memcpy(f, dst, 6);
	memcpy(f + 6, src, 6);
	f[12] = 0x08;
	ios_switch_forward(&g->r, g->p[in], &vh, f, sizeof(f));
}

/* Frames sent toward each port since the last call, as a bitmask of the
 * ports that got exactly one (a port that got more fails the test). */
static unsigned sent_to(struct rig *g)
{
	uint64_t *seen = g->seen;
	unsigned mask = 0;

	for (unsigned i = 0; i < NPORTS; i++) {
		uint64_t d = g->p[i]->st.drops[IOS_DROP_PORT_DOWN];

		assert_true(d - seen[i] <= 1);
		if (d != seen[i])
			mask |= 1u << i;
		seen[i] = d;
	}
	return mask;
}

static void test_learn_and_age(void **state)
{
	struct rig *g = *state;

	sent_to(g);
	/* Unknown: flooded once to every other port, trunks included. */
	send(g, A, mac_b, mac_a);
	assert_int_equal(sent_to(g), 1u << B | 1u << T1 | 1u << T2);
	assert_int_equal(g->n->st.flooded, 1);
	/* A was learned: B's answer goes to A alone, and B is learned. */
	send(g, B, mac_a, mac_b);
	assert_int_equal(sent_to(g), 1u << A);
	send(g, A, mac_b, mac_a);
	assert_int_equal(sent_to(g), 1u << B);
	assert_int_equal(g->n->st.learned, 2);
	assert_int_equal(g->n->st.flooded, 1);
	/* Broadcast is flooded even to known ports. */
	send(g, A, bcast, mac_a);
	assert_int_equal(sent_to(g), 1u << B | 1u << T1 | 1u << T2);

	/* Just before the ageing time B is still known; refreshed by its own
	 * frame, it stays known past the first learning's expiry. */
	g->r.now += 299 * SEC;
	send(g, A, mac_b, mac_a);
	assert_int_equal(sent_to(g), 1u << B);
	send(g, B, mac_a, mac_b);
	assert_int_equal(sent_to(g), 1u << A);
	g->r.now += 200 * SEC;
	send(g, A, mac_b, mac_a);
	assert_int_equal(sent_to(g), 1u << B);
	/* Silent for the ageing time: forgotten, flooded again. */
	g->r.now += 301 * SEC;
	send(g, A, mac_b, mac_a);
	assert_int_equal(sent_to(g), 1u << B | 1u << T1 | 1u << T2);
	assert_int_equal(g->n->st.moved, 0);
}

/* A MAC first seen behind one trunk and then behind the other (its guest
 * now served by another io-server): the table follows it, counted. */
static void test_move_across_trunks(void **state)
{
	struct rig *g = *state;

	sent_to(g);
	send(g, T1, mac_a, mac_x);		/* x behind T1; A unknown yet */
	assert_int_equal(sent_to(g), 1u << A | 1u << B);
	send(g, A, mac_x, mac_a);
	assert_int_equal(sent_to(g), 1u << T1);
	send(g, T2, bcast, mac_x);		/* x moved */
	assert_int_equal(sent_to(g), 1u << A | 1u << B);
	assert_int_equal(g->n->st.moved, 1);
	send(g, A, mac_x, mac_a);
	assert_int_equal(sent_to(g), 1u << T2);
	/* A move after the entry aged out is a new learning, not a move. */
	g->r.now += 400 * SEC;
	send(g, T1, bcast, mac_x);
	assert_int_equal(sent_to(g), 1u << A | 1u << B);
	assert_int_equal(g->n->st.moved, 1);
	send(g, B, mac_x, mac_b);
	assert_int_equal(sent_to(g), 1u << T1);
}

/* A frame from a trunk never goes out on a trunk: not flooded to the
 * other, not forwarded to an address learned behind it. */
static void test_split_horizon(void **state)
{
	struct rig *g = *state;

	sent_to(g);
	send(g, T2, bcast, mac_y);		/* y behind T2 */
	assert_int_equal(sent_to(g), 1u << A | 1u << B);
	send(g, T1, mac_b, mac_x);		/* unknown B: device ports only */
	assert_int_equal(sent_to(g), 1u << A | 1u << B);
	send(g, T1, mac_y, mac_x);
	assert_int_equal(sent_to(g), 0);
	assert_int_equal(g->p[T1]->st.drops[IOS_DROP_SPLIT_HORIZON], 1);
	/* From a guest, both trunks are fine. */
	send(g, A, mac_y, mac_a);
	assert_int_equal(sent_to(g), 1u << T2);
	send(g, A, mac_x, mac_a);
	assert_int_equal(sent_to(g), 1u << T1);
}

/* A guest sends only as its port's MAC; a trunk may carry any unicast
 * source, never a multicast or zero one; a frame for its own port goes
 * nowhere. */
static void test_sources(void **state)
{
	struct rig *g = *state;
	static const uint8_t zero[6], mcast[6] = { 0x01, 0, 0x5e, 0, 0, 1 };

	sent_to(g);
	send(g, A, mac_b, mac_b);
	assert_int_equal(sent_to(g), 0);
	assert_int_equal(g->p[A]->st.drops[IOS_DROP_SRC_MAC], 1);
	send(g, T1, mac_a, zero);
	send(g, T1, mac_a, mcast);
	assert_int_equal(sent_to(g), 0);
	assert_int_equal(g->p[T1]->st.drops[IOS_DROP_BAD_SRC], 2);
	assert_int_equal(g->n->st.learned, 0);
	send(g, A, bcast, mac_a);
	sent_to(g);
	send(g, A, mac_a, mac_a);
	assert_int_equal(sent_to(g), 0);
	assert_int_equal(g->p[A]->st.drops[IOS_DROP_SAME_PORT], 1);
	/* A frame whose port was unlinked while it was on its way between
	 * reactors goes nowhere. */
	g->p[A]->linked = false;
	send(g, A, bcast, mac_a);
	assert_int_equal(sent_to(g), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_learn_and_age, setup, teardown),
		cmocka_unit_test_setup_teardown(test_move_across_trunks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_split_horizon, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sources, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

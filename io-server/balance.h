/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Elastic cores: how many of the io-server's reactors are active, between
 * the topology's cores.min and cores.max, and which devices run where.
 *
 * The active reactors are always the first ones: [0, active). The first
 * cores.min never park and serve every connection (sessions do not move);
 * the others only ever serve devices, so they can be emptied and parked.
 *
 * Every IOS_BALANCE_PERIOD_NS the main thread samples each reactor's busy
 * fraction (time in turns that found work over wall time: reactor.h) and
 * the sum over the active ones, the load, in cores:
 *   unpark  the mean over the active reactors stays above busy_high for
 *           IOS_BALANCE_UP_NS: one more becomes active and the devices
 *           with the most requests move onto it until the request rates
 *           are even (the device move of device.c: nothing lost).
 *   pack    the load stays under busy_low x (active - 1) for
 *           IOS_BALANCE_DOWN_NS: the last active reactor takes no new
 *           device, its devices move to the others, and once it has none
 *           it parks (reactor.h: blocked in epoll, no timeout).
 * busy_low < busy_high is the hysteresis: after a pack the mean is below
 * busy_low, so the same load cannot unpark again, and after an unpark the
 * load is above busy_high x (active - 1), so it cannot pack again.
 */
#ifndef VRIO_IOSERVER_BALANCE_H
#define VRIO_IOSERVER_BALANCE_H

#include <stdbool.h>
#include <stdint.h>

#define IOS_BALANCE_PERIOD_NS	(200ull * 1000000ull)
#define IOS_BALANCE_FIXED_PERIOD_NS	(1000ull * 1000000ull)	/* min == max */
#define IOS_BALANCE_UP_NS	(400ull * 1000000ull)
#define IOS_BALANCE_DOWN_NS	(5000ull * 1000000ull)
#define IOS_BALANCE_MAX_MOVES	64u	/* moves in flight at once */

struct ios_server;

struct ios_balance_opts {
	unsigned min, max;		/* reactors always active, at most active */
	double high, low;		/* busy fractions, 0 < low < high <= 1 */
	uint64_t up_ns, down_ns;	/* how long a load must last */
};

void ios_balance_opts_init(struct ios_balance_opts *o);

enum ios_balance_act {
	IOS_BALANCE_STAY,
	IOS_BALANCE_UNPARK,		/* reactor `active - 1` joins */
	IOS_BALANCE_PACK,		/* reactor `active` (after the call) leaves */
};

/* The policy alone, with the clock and the load given: unit tests drive it. */
struct ios_balance {
	struct ios_balance_opts o;
	unsigned active;
	bool over, under;		/* the load is past a threshold ... */
	uint64_t over_since, under_since;	/* ... since then */
};

void ios_balance_init(struct ios_balance *b, const struct ios_balance_opts *o);
/* load: the active reactors' busy fractions summed over the last period. */
enum ios_balance_act ios_balance_decide(struct ios_balance *b, uint64_t now, double load);

/* Main thread. */
int ios_balancer_create(struct ios_server *srv);
void ios_balancer_destroy(struct ios_server *srv);
/* Samples, decides and moves when a period has passed; returns the ns
 * until the next period (the main loop's longest sleep). */
uint64_t ios_balancer_tick(struct ios_server *srv, uint64_t now);

/* Any thread, for metrics and status. */
unsigned ios_balancer_active(const struct ios_server *srv);
/* The reactor's busy fraction over the last period, in millionths. */
unsigned ios_balancer_busy_ppm(const struct ios_server *srv, unsigned idx);
struct ios_balancer_stats {
	uint64_t moves, moves_failed, unparks, parks;
};
void ios_balancer_stats(const struct ios_server *srv, struct ios_balancer_stats *st);

#endif

/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Elastic cores (balance.h): the policy, then its application to the
 * server's reactors and devices, on the main thread.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "balance.h"
#include "ioserver_internal.h"
#include "log.h"

/* ---- the policy ---- */

void ios_balance_opts_init(struct ios_balance_opts *o)
{
	o->min = 1;
	o->max = 1;
	o->high = VRIO_TOPO_BUSY_HIGH / 100.0;
	o->low = VRIO_TOPO_BUSY_LOW / 100.0;
	o->up_ns = IOS_BALANCE_UP_NS;
	o->down_ns = IOS_BALANCE_DOWN_NS;
}

void ios_balance_init(struct ios_balance *b, const struct ios_balance_opts *o)
{
	memset(b, 0, sizeof(*b));
	b->o = *o;
	if (b->o.min < 1)
		b->o.min = 1;
	if (b->o.max < b->o.min)
		b->o.max = b->o.min;
	b->active = b->o.min;
}

/* The condition holds now: true once it has held for `hold` ns without a
 * break (then the clock starts again), *on and *since being its state. */
static bool held_for(bool *on, uint64_t *since, uint64_t now, uint64_t hold)
{
	if (!*on) {
		*on = true;
		*since = now;
	}
	if (now - *since < hold)
		return false;
	*on = false;
	return true;
}

enum ios_balance_act ios_balance_decide(struct ios_balance *b, uint64_t now, double load)
{
	if (b->active < b->o.max && load > b->o.high * b->active) {
		b->under = false;
		if (!held_for(&b->over, &b->over_since, now, b->o.up_ns))
			return IOS_BALANCE_STAY;
		b->active++;
		return IOS_BALANCE_UNPARK;
	}
	b->over = false;
	if (b->active > b->o.min && load < b->o.low * (b->active - 1)) {
		if (!held_for(&b->under, &b->under_since, now, b->o.down_ns))
			return IOS_BALANCE_STAY;
		b->active--;
		return IOS_BALANCE_PACK;
	}
	b->under = false;
	return IOS_BALANCE_STAY;
}

/* ---- the server's side ---- */

struct bal_move {
	uint32_t dev_id;
	struct ios_move_result *res;
};

struct ios_balancer {
	struct ios_balance pol;
	bool elastic;			/* max > min: the policy runs */
	uint64_t next_ns;		/* the next period */
	uint64_t seen_busy[IOS_MAX_REACTORS], seen_idle[IOS_MAX_REACTORS];
	unsigned busy_ppm[IOS_MAX_REACTORS];	/* atomic: last period's */
	/* Requests by device slot: the last count and the last period's. */
	uint64_t seen_reqs[IOS_MAX_DEVICES], rate[IOS_MAX_DEVICES];
	struct bal_move moves[IOS_BALANCE_MAX_MOVES];
	unsigned n_moves;
	struct ios_balancer_stats st;	/* atomic */
};

int ios_balancer_create(struct ios_server *srv)
{
	struct ios_balance_opts o;
	struct ios_balancer *b;

	b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	ios_balance_opts_init(&o);
	o.min = srv->n_fixed;
	o.max = srv->n_reactors;
	o.high = srv->self->cores_busy_high / 100.0;
	o.low = srv->self->cores_busy_low / 100.0;
	ios_balance_init(&b->pol, &o);
	b->elastic = o.max > o.min;
	/* The reactors past cores.min start parked. */
	for (unsigned i = b->pol.active; i < srv->n_reactors; i++)
		ios_reactor_park(srv->reactors[i], true);
	srv->bal = b;
	__atomic_store_n(&srv->n_active, b->pol.active, __ATOMIC_RELEASE);
	return 0;
}

void ios_balancer_destroy(struct ios_server *srv)
{
	struct ios_balancer *b = srv->bal;

	if (!b)
		return;
	for (unsigned i = 0; i < b->n_moves; i++)
		ios_move_result_put(b->moves[i].res);
	free(b);
	srv->bal = NULL;
}

unsigned ios_balancer_active(const struct ios_server *srv)
{
	unsigned n = 0;

	for (unsigned i = 0; i < srv->n_reactors; i++)
		n += !ios_reactor_parked(srv->reactors[i]);
	return n;
}

unsigned ios_balancer_busy_ppm(const struct ios_server *srv, unsigned idx)
{
	return srv->bal ? __atomic_load_n(&srv->bal->busy_ppm[idx], __ATOMIC_RELAXED) : 0;
}

void ios_balancer_stats(const struct ios_server *srv, struct ios_balancer_stats *st)
{
	memset(st, 0, sizeof(*st));
	if (!srv->bal)
		return;
	st->moves = vrio_counter_get(&srv->bal->st.moves);
	st->moves_failed = vrio_counter_get(&srv->bal->st.moves_failed);
	st->unparks = vrio_counter_get(&srv->bal->st.unparks);
	st->parks = vrio_counter_get(&srv->bal->st.parks);
}

static double sample(struct ios_server *srv, struct ios_balancer *b)
{
	double load = 0, f;
	uint64_t busy, idle, db, di;
	struct ios_device *d;
	uint64_t n;

	for (unsigned i = 0; i < srv->n_reactors; i++) {
		struct ios_reactor *r = srv->reactors[i];

		busy = vrio_counter_get(&r->stats.busy_ns);
		idle = vrio_counter_get(&r->stats.idle_ns);
		db = busy - b->seen_busy[i];
		di = idle - b->seen_idle[i];
		b->seen_busy[i] = busy;
		b->seen_idle[i] = idle;
		/* A sleeping reactor books its sleep when it wakes: a period
		 * with nothing booked was all sleep. */
		f = db + di ? (double)db / (double)(db + di) : 0.0;
		__atomic_store_n(&b->busy_ppm[i], (unsigned)(f * 1e6), __ATOMIC_RELAXED);
		if (i < b->pol.active)
			load += f;
	}
	for (d = ios_device_next(srv, NULL, NULL); d; d = ios_device_next(srv, d, NULL)) {
		n = 0;
		for (unsigned k = 0; k < IOS_DEV_MAX_OPS; k++)
			n += vrio_counter_get(&d->stats.requests[k]);
		b->rate[d->id] = n - b->seen_reqs[d->id];
		b->seen_reqs[d->id] = n;
	}
	return load;
}

static bool move_pending(const struct ios_balancer *b, uint32_t dev_id)
{
	for (unsigned i = 0; i < b->n_moves; i++)
		if (b->moves[i].dev_id == dev_id)
			return true;
	return false;
}

static void moves_reap(struct ios_balancer *b)
{
	struct ios_move_result *res;
	unsigned i = 0;

	while (i < b->n_moves) {
		res = b->moves[i].res;
		if (!__atomic_load_n(&res->done, __ATOMIC_ACQUIRE)) {
			i++;
			continue;
		}
		if (res->rc == 0 && res->from != res->to)
			vrio_counter_add(&b->st.moves, 1);
		else if (res->rc < 0)
			vrio_counter_add(&b->st.moves_failed, 1);
		ios_move_result_put(res);
		b->moves[i] = b->moves[--b->n_moves];
	}
}

static int move_start(struct ios_server *srv, struct ios_balancer *b, struct ios_device *d,
		      struct ios_reactor *to)
{
	struct ios_move_result *res;
	int rc;

	if (b->n_moves >= IOS_BALANCE_MAX_MOVES)
		return -EBUSY;
	res = calloc(1, sizeof(*res));
	if (!res)
		return -ENOMEM;
	res->refs = 1;
	rc = ios_device_move(srv, d, to, res);
	if (rc < 0) {
		free(res);
		return rc;
	}
	b->moves[b->n_moves++] = (struct bal_move){ d->id, res };
	return 0;
}

/* Spreads the devices with requests onto the active reactors, largest
 * first, each move taken only when it narrows the gap between the most
 * and the least loaded (by requests in the last period). */
static void spread(struct ios_server *srv, struct ios_balancer *b)
{
	uint64_t sum[IOS_MAX_REACTORS] = { 0 };
	unsigned active = b->pol.active, i, src, dst;
	struct ios_reactor *home;
	struct ios_device *d, *best;

	for (d = ios_device_next(srv, NULL, NULL); d; d = ios_device_next(srv, d, NULL)) {
		home = __atomic_load_n(&d->home, __ATOMIC_ACQUIRE);
		if (home && home->idx < active)
			sum[home->idx] += b->rate[d->id];
	}
	for (unsigned round = 0; round < IOS_BALANCE_MAX_MOVES; round++) {
		src = dst = 0;
		for (i = 1; i < active; i++) {
			if (sum[i] > sum[src])
				src = i;
			if (sum[i] < sum[dst])
				dst = i;
		}
		best = NULL;
		for (d = ios_device_next(srv, NULL, NULL); d; d = ios_device_next(srv, d, NULL)) {
			home = __atomic_load_n(&d->home, __ATOMIC_ACQUIRE);
			if (home != srv->reactors[src] || !b->rate[d->id] || move_pending(b, d->id))
				continue;
			if (b->rate[d->id] < sum[src] - sum[dst] &&
			    (!best || b->rate[d->id] > b->rate[best->id]))
				best = d;
		}
		if (!best || move_start(srv, b, best, srv->reactors[dst]) < 0)
			return;
		sum[src] -= b->rate[best->id];
		sum[dst] += b->rate[best->id];
	}
}

/* The reactors past the active ones: move what is left on them to the
 * active reactor with the fewest requests, then park them once empty. */
static void pack(struct ios_server *srv, struct ios_balancer *b)
{
	uint64_t sum[IOS_MAX_REACTORS] = { 0 };
	unsigned active = b->pol.active, i, dst;
	struct ios_reactor *home, *r;
	struct ios_device *d;

	for (d = ios_device_next(srv, NULL, NULL); d; d = ios_device_next(srv, d, NULL)) {
		home = __atomic_load_n(&d->home, __ATOMIC_ACQUIRE);
		if (home)
			sum[home->idx] += b->rate[d->id] + 1;
	}
	for (d = ios_device_next(srv, NULL, NULL); d; d = ios_device_next(srv, d, NULL)) {
		home = __atomic_load_n(&d->home, __ATOMIC_ACQUIRE);
		if (!home || home->idx < active || move_pending(b, d->id))
			continue;
		for (dst = 0, i = 1; i < active; i++)
			if (sum[i] < sum[dst])
				dst = i;
		/* Not attached on a session yet (or any more): the next period
		 * tries again. */
		if (move_start(srv, b, d, srv->reactors[dst]) < 0)
			continue;
		sum[dst] += b->rate[d->id] + 1;
	}
	for (i = active; i < srv->n_reactors; i++) {
		r = srv->reactors[i];
		if (ios_reactor_parked(r) || __atomic_load_n(&r->n_devices, __ATOMIC_ACQUIRE) ||
		    __atomic_load_n(&r->n_sessions, __ATOMIC_ACQUIRE))
			continue;
		ios_reactor_park(r, true);
		/* A device an attach placed there just before it was parked
		 * still runs (its messages wake it) and leaves next period. */
		vrio_counter_add(&b->st.parks, 1);
		VRIO_INFO("%s: %s parked: %u reactor(s) active", srv->name, r->name, active);
	}
}

uint64_t ios_balancer_tick(struct ios_server *srv, uint64_t now)
{
	struct ios_balancer *b = srv->bal;
	enum ios_balance_act act;
	struct ios_reactor *r;
	double load;

	if (!b)
		return UINT64_MAX;
	if (now < b->next_ns)
		return b->next_ns - now;
	/* A fixed core count only samples, for the busy ratios, at the
	 * main loop's own pace. */
	b->next_ns = now + (b->elastic ? IOS_BALANCE_PERIOD_NS : IOS_BALANCE_FIXED_PERIOD_NS);
	load = sample(srv, b);
	moves_reap(b);
	if (!b->elastic)
		return IOS_BALANCE_FIXED_PERIOD_NS;
	act = ios_balance_decide(&b->pol, now, load);
	if (act == IOS_BALANCE_UNPARK) {
		r = srv->reactors[b->pol.active - 1];
		ios_reactor_park(r, false);
		__atomic_store_n(&srv->n_active, b->pol.active, __ATOMIC_RELEASE);
		vrio_counter_add(&b->st.unparks, 1);
		VRIO_INFO("%s: %s unparked: load %.2f cores on %u reactor(s)", srv->name, r->name,
			  load, b->pol.active - 1);
		spread(srv, b);
	} else if (act == IOS_BALANCE_PACK) {
		__atomic_store_n(&srv->n_active, b->pol.active, __ATOMIC_RELEASE);
		VRIO_INFO("%s: packing %s: load %.2f cores on %u reactor(s)", srv->name,
			  srv->reactors[b->pol.active]->name, load, b->pol.active + 1);
	}
	pack(srv, b);
	return IOS_BALANCE_PERIOD_NS;
}

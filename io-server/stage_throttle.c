/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * throttle: token buckets on a disk's IOPS and bytes per second, for all
 * requests and for reads or writes (discards and write-zeroes count as
 * writes, with no bytes). A request that finds a bucket in debt waits in
 * the stage's queue, in order, never failed; a timerfd wakes the reactor
 * when the head may go, so a waiting queue costs no CPU and holds up
 * nothing else on the reactor. Flushes are not limited but keep their
 * place behind queued writes. The buckets refill on the reactor's turn
 * clock, so a request costs no clock read of its own. Queued requests
 * are parked (stage.h): a move of the device does not wait for them; the
 * queue, its buckets and its timer follow the device to its new reactor.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/queue.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "ioserver_internal.h"
#include "log.h"
#include "tbucket.h"

enum { TB_OPS, TB_BYTES, TB_ROPS, TB_RBYTES, TB_WOPS, TB_WBYTES, TB_N };

struct throttle_cfg {
	uint64_t rate[TB_N];
	uint64_t burst_ns;
};

struct throttle {
	struct ios_stage base;
	struct ios_tbucket tb[TB_N];
	struct throttle_cfg cfg;
	struct throttle_cfg *next;	/* atomic: settings from a reload */
	bool draining;			/* atomic: left the chain: let all go */
	TAILQ_HEAD(, ios_req) queue;	/* waiting, in arrival order */
	unsigned queued;		/* atomic for metrics */
	struct ios_reactor *r;		/* where its timer is watched, NULL: nowhere */
	struct ios_poller poller;
	struct ios_evsrc timer;
	uint64_t armed_at;		/* the timer's deadline, 0: disarmed */
	unsigned active;		/* bit i: tb[i] has a rate */
	bool started;			/* buckets initialised */
};

/* Each bucket with a rate, i its index. */
#define for_each_active(t, i, m) \
	for (unsigned m = (t)->active, i; m && (i = (unsigned)__builtin_ctz(m), 1); m &= m - 1)

static struct throttle *to_thr(struct ios_stage *st)
{
	return container_of(st, struct throttle, base);
}

static void cfg_from(struct throttle_cfg *c, const struct vrio_topo_throttle *t)
{
	c->rate[TB_OPS] = t->iops;
	c->rate[TB_BYTES] = t->bps;
	c->rate[TB_ROPS] = t->read_iops;
	c->rate[TB_RBYTES] = t->read_bps;
	c->rate[TB_WOPS] = t->write_iops;
	c->rate[TB_WBYTES] = t->write_bps;
	c->burst_ns = (uint64_t)t->burst_ms * 1000000ull;
}

/* Which buckets a request draws from, and how much. */
static unsigned charges(const struct ios_req *req, uint64_t amount[TB_N])
{
	const struct ios_blk_req *b = &req->u.blk;

	memset(amount, 0, sizeof(uint64_t) * TB_N);
	switch (b->op) {
	case IOS_BLK_OP_READ:
		amount[TB_OPS] = amount[TB_ROPS] = 1;
		amount[TB_BYTES] = amount[TB_RBYTES] = b->len;
		return 1;
	case IOS_BLK_OP_WRITE:
		amount[TB_OPS] = amount[TB_WOPS] = 1;
		amount[TB_BYTES] = amount[TB_WBYTES] = b->len;
		return 1;
	case IOS_BLK_OP_DISCARD:
	case IOS_BLK_OP_WRITE_ZEROES:
		amount[TB_OPS] = amount[TB_WOPS] = 1;
		return 1;
	default:
		return 0;
	}
}

static bool may_go(const struct throttle *t, const uint64_t amount[TB_N])
{
	for_each_active(t, i, m)
		if (amount[i] && !ios_tb_ready(&t->tb[i], amount[i]))
			return false;
	return true;
}

static void charge(struct throttle *t, const uint64_t amount[TB_N])
{
	for_each_active(t, i, m)
		if (amount[i])
			ios_tb_charge(&t->tb[i], amount[i]);
}

static uint64_t wait_ns(const struct throttle *t, const uint64_t amount[TB_N])
{
	uint64_t w = 0, x;

	for_each_active(t, i, m) {
		x = amount[i] ? ios_tb_wait_ns(&t->tb[i], amount[i]) : 0;
		if (x > w)
			w = x;
	}
	return w;
}

static void set_active(struct throttle *t)
{
	t->active = 0;
	for (unsigned i = 0; i < TB_N; i++)
		if (t->cfg.rate[i])
			t->active |= 1u << i;
}

static void refill(struct throttle *t, uint64_t now)
{
	struct throttle_cfg *next = NULL;

	/* A plain load first: the exchange is a locked instruction. */
	if (__atomic_load_n(&t->next, __ATOMIC_RELAXED))
		next = __atomic_exchange_n(&t->next, NULL, __ATOMIC_ACQ_REL);
	if (!t->started) {
		for (unsigned i = 0; i < TB_N; i++)
			ios_tb_init(&t->tb[i], t->cfg.rate[i], t->cfg.burst_ns, now);
		set_active(t);
		t->started = true;
	}
	if (next) {
		t->cfg = *next;
		free(next);
		for (unsigned i = 0; i < TB_N; i++)
			ios_tb_set(&t->tb[i], t->cfg.rate[i], t->cfg.burst_ns, now);
		set_active(t);
	}
	for_each_active(t, i, m)
		ios_tb_refill(&t->tb[i], now);
}

/* Lets go of what may go now; returns how many. */
static int release(struct throttle *t, uint64_t now)
{
	bool drain = __atomic_load_n(&t->draining, __ATOMIC_ACQUIRE);
	uint64_t amount[TB_N];
	struct ios_req *req;
	int n = 0;

	refill(t, now);
	while ((req = TAILQ_FIRST(&t->queue))) {
		if (charges(req, amount) && !drain && !may_go(t, amount))
			break;
		if (!drain)
			charge(t, amount);
		TAILQ_REMOVE(&t->queue, req, link);
		__atomic_store_n(&t->queued, t->queued - 1, __ATOMIC_RELAXED);
		ios_stage_unpark(&t->base);
		n++;
		ios_chain_resume(req);
	}
	return n;
}

static void arm(struct throttle *t, uint64_t deadline)
{
	struct itimerspec its = { 0 };

	if (deadline == t->armed_at)
		return;
	its.it_value.tv_sec = (time_t)(deadline / 1000000000ull);
	its.it_value.tv_nsec = (long)(deadline % 1000000000ull);
	if (timerfd_settime(t->timer.fd, TFD_TIMER_ABSTIME, &its, NULL) < 0)
		VRIO_ERR_RL("%s: throttle timer: %s", t->base.d->name, strerror(errno));
	t->armed_at = deadline;
}

static int thr_poll(struct ios_poller *p)
{
	struct throttle *t = container_of(p, struct throttle, poller);

	if (!TAILQ_EMPTY(&t->queue))
		return release(t, ios_reactor_now(p->r));
	if (!__atomic_load_n(&t->next, __ATOMIC_RELAXED))
		return 0;
	refill(t, ios_reactor_now(p->r));	/* new limits */
	return 1;
}

static int thr_sleep(struct ios_poller *p)
{
	struct throttle *t = container_of(p, struct throttle, poller);
	uint64_t amount[TB_N], now = vrio_now_ns(), w;
	struct ios_req *req = TAILQ_FIRST(&t->queue);

	if (!req)
		return -1;
	charges(req, amount);
	refill(t, now);
	w = wait_ns(t, amount);
	if (w == 0 || __atomic_load_n(&t->draining, __ATOMIC_RELAXED))
		return 0;
	arm(t, now + w);
	ios_reactor_watch(p->r, &t->timer, EPOLLIN);
	return -1;
}

static void thr_timer(struct ios_evsrc *e, uint32_t events)
{
	struct throttle *t = container_of(e, struct throttle, timer);
	uint64_t v;

	if (read(e->fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		VRIO_ERR_RL("throttle timer read: %s", strerror(errno));
	t->armed_at = 0;
}

static void place(struct throttle *t, struct ios_reactor *r)
{
	t->r = r;
	ios_poller_register(r, &t->poller);
}

static enum ios_stage_verdict thr_request(struct ios_stage *st, struct ios_req *req)
{
	struct throttle *t = to_thr(st);
	struct ios_reactor *here = st->d->home;
	uint64_t amount[TB_N];

	if (t->r != here)
		place(t, here);
	vrio_counter_add(&st->st.requests, 1);
	vrio_counter_add(&st->st.bytes, req->u.blk.len);
	if (TAILQ_EMPTY(&t->queue)) {
		refill(t, ios_reactor_now(here));
		if (!charges(req, amount) || may_go(t, amount)) {
			charge(t, amount);
			return IOS_STAGE_PASS;
		}
	}
	TAILQ_INSERT_TAIL(&t->queue, req, link);
	__atomic_store_n(&t->queued, t->queued + 1, __ATOMIC_RELAXED);
	ios_stage_park(st);
	vrio_counter_add(&st->st.delayed, 1);
	return IOS_STAGE_HOLD;
}

/* The device landed on r: a queue it brought along goes on from here. */
static void thr_place(struct ios_stage *st, struct ios_reactor *r)
{
	struct throttle *t = to_thr(st);

	if (t->r != r)
		place(t, r);
}

static void thr_unplace(struct ios_stage *st, struct ios_reactor *r)
{
	struct throttle *t = to_thr(st);

	if (t->r != r)
		return;
	ios_reactor_watch(r, &t->timer, 0);
	ios_poller_unregister(&t->poller);
	t->r = NULL;
}

static int thr_create(struct ios_device *d, const struct vrio_topo_stage *ts,
		      struct ios_stage **out, char *why, size_t n)
{
	struct throttle *t = calloc(1, sizeof(*t));

	if (!t)
		return -ENOMEM;
	t->timer.fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (t->timer.fd < 0) {
		free(t);
		return -errno;
	}
	t->timer.ready = thr_timer;
	t->poller.name = "throttle";
	t->poller.poll = thr_poll;
	t->poller.sleep = thr_sleep;
	TAILQ_INIT(&t->queue);
	cfg_from(&t->cfg, &ts->u.throttle);
	*out = &t->base;
	return 0;
}

/* Any new limits, in place: the buckets keep what they hold. */
static int thr_retune(struct ios_stage *st, const struct vrio_topo_stage *ts, bool apply)
{
	struct throttle *t = to_thr(st);
	struct throttle_cfg *c, *old;

	if (!apply)
		return 0;
	c = malloc(sizeof(*c));
	if (!c) {
		VRIO_ERR("%s: throttle: out of memory for its new limits; keeping the old",
			 st->d->name);
		return -ENOMEM;
	}
	cfg_from(c, &ts->u.throttle);
	old = __atomic_exchange_n(&t->next, c, __ATOMIC_ACQ_REL);
	free(old);
	if (t->r)
		ios_reactor_notify(t->r);
	return 0;
}

static void thr_drain(struct ios_stage *st)
{
	struct throttle *t = to_thr(st);

	__atomic_store_n(&t->draining, true, __ATOMIC_RELEASE);
	if (t->r)
		ios_reactor_notify(t->r);
}

static void thr_free(struct ios_reactor *r, void *arg)
{
	struct throttle *t = arg;

	if (r)
		thr_unplace(&t->base, r);
	close(t->timer.fd);
	free(__atomic_exchange_n(&t->next, NULL, __ATOMIC_ACQ_REL));
	free(t);
}

/* Its timer is watched on the reactor it last served on: let go there. */
static void thr_destroy(struct ios_stage *st)
{
	struct throttle *t = to_thr(st);

	if (!t->r || !t->r->started || ios_reactor_call(t->r, thr_free, t) < 0)
		thr_free(t->r, t);
}

static const struct ios_stage_gauge thr_gauges[] = {
	{ "vrio_ioserver_throttle_queued", "gauge", "Requests a throttle holds now" },
};

static double thr_gauge(struct ios_stage *st, unsigned i)
{
	return (double)__atomic_load_n(&to_thr(st)->queued, __ATOMIC_RELAXED);
}

const struct ios_stage_ops ios_stage_throttle_ops = {
	.kind = VRIO_STAGE_THROTTLE,
	.create = thr_create,
	.retune = thr_retune,
	.drain = thr_drain,
	.destroy = thr_destroy,
	.request = thr_request,
	.place = thr_place,
	.unplace = thr_unplace,
	.gauges = thr_gauges,
	.n_gauges = 1,
	.gauge = thr_gauge,
};

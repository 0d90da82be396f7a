/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The poller: one thread that owns every ring and upstream connection. It
 * spins while there is work and, idle, for as long as the recent gaps
 * between work say more is coming soon (common/backoff.h: up to SPIN_MAX_NS,
 * or not at all when work comes seldom), then turns guest kicks back on and
 * sleeps in epoll on kick eventfds, connection fds and its wake eventfd. On
 * a 2-core machine a poller that never sleeps would starve the guest and
 * the io-server.
 */
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "backoff.h"
#include "localhv.h"
#include "log.h"

/* The longest idle spin: about a request's round trip to the io-server
 * over TCP on one machine. */
#define SPIN_MAX_NS	(50ull * 1000)
#define MAX_SLEEP_MS	1000

/* epoll tags: a queue's kickfd is tagged with the queue, an upstream's fd
 * with the upstream, the wake eventfd with NULL. The low bit tells them
 * apart (both structs are at least 2-aligned). */
#define TAG_VQ 1ul

void lhv_epoll_mod(struct lhv *l, int fd, void *tag, bool add)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = tag };

	if (fd < 0)
		return;
	if (add)
		epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev);
	else
		epoll_ctl(l->epfd, EPOLL_CTL_DEL, fd, NULL);
}

void lhv_poller_wake(struct lhv *l)
{
	eventfd_write(l->wakefd, 1);
}

void lhv_main_wake(struct lhv *l)
{
	eventfd_write(l->mainfd, 1);
}

void lhv_poller_call(struct lhv *l, void (*fn)(struct lhv *l, void *arg), void *arg)
{
	struct lhv_cmd cmd = { .fn = fn, .arg = arg };

	if (!__atomic_load_n(&l->poller_started, __ATOMIC_ACQUIRE)) {
		fn(l, arg);
		return;
	}
	pthread_mutex_lock(&l->cmd_lock);
	while (l->cmd)		/* one at a time */
		pthread_cond_wait(&l->cmd_cond, &l->cmd_lock);
	l->cmd = &cmd;
	__atomic_store_n(&l->cmd_pending, 1, __ATOMIC_RELEASE);
	lhv_poller_wake(l);
	while (!cmd.done)
		pthread_cond_wait(&l->cmd_cond, &l->cmd_lock);
	pthread_mutex_unlock(&l->cmd_lock);
}

/* Between two rounds: what the main thread asked for. */
static void run_cmd(struct lhv *l)
{
	if (!__atomic_load_n(&l->cmd_pending, __ATOMIC_ACQUIRE))
		return;
	pthread_mutex_lock(&l->cmd_lock);
	if (l->cmd) {
		l->cmd->fn(l, l->cmd->arg);
		l->cmd->done = true;
		l->cmd = NULL;
		__atomic_store_n(&l->cmd_pending, 0, __ATOMIC_RELEASE);
		pthread_cond_broadcast(&l->cmd_cond);
	}
	pthread_mutex_unlock(&l->cmd_lock);
}

void lhv_poller_watch_vq(struct lhv *l, struct lhv_vq *q, bool on)
{
	lhv_epoll_mod(l, q->kickfd, on ? (void *)((uintptr_t)q | TAG_VQ) : NULL, on);
}

static void dev_started(struct lhv *l, struct lhv_dev *d)
{
	unsigned i;

	for (i = 0; i < d->nvq; i++) {
		struct lhv_vq *q = &d->vq[i];

		if (!q->active)
			continue;
		d->ops->kicks(d, q, true);
		q->armed = true;
		lhv_poller_watch_vq(l, q, true);
	}
	if (d->ops->started)
		d->ops->started(d);
}

/* Give the device back once nothing is in flight, or at the deadline. */
static void dev_stopping(struct lhv *l, struct lhv_dev *d, uint64_t now)
{
	unsigned i;

	if (d->inflight && now < d->stop_deadline && d->up->conn)
		return;
	if (d->inflight)
		VRIO_WARN("%s: %u request(s) still in flight at stop; their responses will be "
			  "dropped", d->name, d->inflight);
	for (i = 0; i < d->nvq; i++)
		if (d->vq[i].active)
			lhv_poller_watch_vq(l, &d->vq[i], false);
	d->inflight = 0;
	if (d->iommu.on)
		lhv_iommu_reset(d);
	if (d->ops->stopped)
		d->ops->stopped(d);
	__atomic_store_n(&d->state, LHV_DEV_IDLE, __ATOMIC_RELEASE);
}

/* A later pass of the round (fair.h) on queue qi of device obj. */
static int take_more(void *ctx, void *obj, unsigned qi, unsigned max)
{
	struct lhv_dev *d = obj;

	if (d->broken)
		return 0;
	return d->ops->process(ctx, d, qi, max);
}

/* Every queue takes a quantum, then the busy ones take more in turn (up
 * to LHV_BUDGET each): a deep queue's batch goes out interleaved with its
 * neighbours' requests, not whole ahead of them. */
static int poll_devices(struct lhv *l, uint64_t now)
{
	unsigned i = 0, qi;
	struct lhv_dev *d;
	int work = 0, st, took;

	lhv_fair_begin(&l->fair, LHV_FAIR_QUANTUM, LHV_BUDGET);

	while ((d = lhv_dev_next(l, &i))) {
		st = __atomic_load_n(&d->state, __ATOMIC_ACQUIRE);
		if (st == LHV_DEV_START) {
			dev_started(l, d);
			/* The control thread may already want it back (START ->
			 * STOP): never overwrite that. */
			if (__atomic_compare_exchange_n(&d->state, &st, LHV_DEV_RUNNING, false,
							__ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
				st = LHV_DEV_RUNNING;
		}
		/* Only while the poller owns the device (localhv.h). */
		if (d->iommu.on && (st == LHV_DEV_RUNNING || st == LHV_DEV_STOP))
			work += lhv_iommu_poll(d);
		if (st == LHV_DEV_STOP) {
			dev_stopping(l, d, now);
			continue;
		}
		/* A move the operator asked for: no new chain until it is done. */
		if (st != LHV_DEV_RUNNING || d->broken ||
		    (!d->attached && !d->ops->drops_when_detached) ||
		    (d->cand[1] && __atomic_load_n(&d->move_to, __ATOMIC_ACQUIRE) >= 0) ||
		    __atomic_load_n(&l->quiesce, __ATOMIC_ACQUIRE))
			continue;
		for (qi = 0; qi < d->nvq; qi++) {
			if (!d->vq[qi].active)
				continue;
			if (d->vq[qi].armed) {
				d->ops->kicks(d, &d->vq[qi], false);
				d->vq[qi].armed = false;
			}
			took = d->ops->process(l, d, qi, LHV_FAIR_QUANTUM);
			work += took;
			if (!d->broken)
				work += lhv_fair_first(&l->fair, d, qi, took, take_more, l);
		}
	}
	return work + lhv_fair_rest(&l->fair, take_more, l);
}

/* Returns the queues whose interrupt is held for a later round. */
static unsigned notify_devices(struct lhv *l, uint64_t now)
{
	unsigned i = 0, qi, held = 0;
	struct lhv_dev *d;
	int st;

	while ((d = lhv_dev_next(l, &i))) {
		st = __atomic_load_n(&d->state, __ATOMIC_ACQUIRE);
		if ((st != LHV_DEV_RUNNING && st != LHV_DEV_STOP) || d->broken)
			continue;
		for (qi = 0; qi < d->nvq; qi++)
			if (d->vq[qi].active)
				held += d->ops->notify(d, &d->vq[qi], now);
	}
	return held;
}

/* Turn kicks on everywhere; true if a guest posted work meanwhile (none
 * counts while quiescing: it waits for the next local-hv). */
static bool arm_kicks(struct lhv *l)
{
	bool work = false, quiesce = __atomic_load_n(&l->quiesce, __ATOMIC_ACQUIRE);
	unsigned i = 0, qi;
	struct lhv_dev *d;

	while ((d = lhv_dev_next(l, &i))) {
		if (__atomic_load_n(&d->state, __ATOMIC_ACQUIRE) != LHV_DEV_RUNNING || d->broken)
			continue;
		for (qi = 0; qi < d->nvq; qi++) {
			if (d->vq[qi].active && !d->vq[qi].armed) {
				work |= d->ops->kicks(d, &d->vq[qi], true) && !quiesce;
				d->vq[qi].armed = true;
			}
		}
	}
	return work;
}

static void sleep_until_work(struct lhv *l, uint64_t now)
{
	struct epoll_event ev[32];
	int timeout = MAX_SLEEP_MS, t, n, i, st;
	unsigned u, k = 0;
	struct lhv_dev *d;
	eventfd_t v;

	while ((d = lhv_dev_next(l, &k))) {
		st = __atomic_load_n(&d->state, __ATOMIC_ACQUIRE);
		if (!d->iommu.on || (st != LHV_DEV_RUNNING && st != LHV_DEV_STOP))
			continue;
		t = lhv_iommu_timeout_ms(d, now);
		if (t >= 0 && t < timeout)
			timeout = t;
	}
	for (u = 0; u < __atomic_load_n(&l->nups, __ATOMIC_ACQUIRE); u++) {
		struct vrio_conn *c = l->ups[u]->conn;

		t = lhv_up_timeout_ms(l->ups[u], now);
		/* Bytes the peer has not taken yet: come back soon to push them.
		 * A connection without a descriptor can only be polled. */
		if (c && (vrio_conn_pending(c) || vrio_conn_fd(c) < 0) && t != 0)
			t = 1;
		if (t >= 0 && t < timeout)
			timeout = t;
	}
	t = lhv_failover_timeout_ms(l, now);
	if (t >= 0 && t < timeout)
		timeout = t;
	n = epoll_wait(l->epfd, ev, 32, timeout);
	vrio_counter_add(&l->st.wakeups, 1);
	for (i = 0; i < n; i++) {
		uintptr_t tag = (uintptr_t)ev[i].data.ptr;

		if (tag & TAG_VQ) {
			struct lhv_vq *q = (struct lhv_vq *)(tag & ~TAG_VQ);

			eventfd_read(q->kickfd, &v);
		} else if (!tag) {
			eventfd_read(l->wakefd, &v);
		}
	}
}

static unsigned count_inflight(struct lhv *l)
{
	unsigned i = 0, n = 0;
	struct lhv_dev *d;
	int st;

	while ((d = lhv_dev_next(l, &i))) {
		st = __atomic_load_n(&d->state, __ATOMIC_ACQUIRE);
		if (st == LHV_DEV_RUNNING || st == LHV_DEV_STOP)
			n += d->inflight;
	}
	return n;
}

static void *poller_main(void *arg)
{
	struct lhv *l = arg;
	uint64_t now, last_work = vrio_now_ns(), spin_from = last_work, t0 = last_work;
	uint64_t seen_idle = 0;
	struct vrio_backoff bo;
	unsigned u, nups, held;
	bool idle = false, was_idle = false;
	int work;

	lhv_vhost_thread_start(l);
	vrio_backoff_init(&bo, SPIN_MAX_NS);
	while (!__atomic_load_n(&l->stop, __ATOMIC_ACQUIRE)) {
		/* An idle round reads the clock once, here: its end is the
		 * next round's start, its yield or sleep included. */
		now = vrio_now_ns();
		if (was_idle)
			vrio_counter_add(&l->st.idle_ns, now - t0);
		was_idle = false;
		t0 = now;
		__atomic_store_n(&l->alive_ns, now, __ATOMIC_RELAXED);
		work = 0;
		if (!l->quiesce_seen && __atomic_load_n(&l->quiesce, __ATOMIC_ACQUIRE)) {
			/* From this round on nothing is taken: what is in
			 * flight now is what the stop waits for. */
			l->quiesce_seen = true;
			__atomic_store_n(&l->quiesce_inflight, count_inflight(l),
					 __ATOMIC_RELEASE);
		}
		run_cmd(l);
		nups = __atomic_load_n(&l->nups, __ATOMIC_ACQUIRE);
		for (u = 0; u < nups; u++)
			work += lhv_up_poll(l->ups[u], now);
		work += lhv_failover_poll(l, now);
		work += poll_devices(l, now);
		for (u = 0; u < nups; u++)
			lhv_up_flush(l->ups[u], now);
		held = notify_devices(l, t0);
		if (work) {
			now = vrio_now_ns();
			/* The gap as far as it was seen: to the last look
			 * that found nothing, or to the wakeup. A yield that
			 * lost the core for a while (another process's
			 * slice) tells nothing of when the work came. */
			if (idle)
				vrio_backoff_work(&bo, seen_idle - last_work);
			idle = false;
			last_work = spin_from = now;
			vrio_counter_add(&l->st.busy_ns, now - t0);
			continue;
		}
		idle = was_idle = true;
		seen_idle = t0;
		if (held) {
			/* An interrupt waits at most coalesce_us for more
			 * completions: come round again without giving the
			 * core away, so that the bound holds. */
			continue;
		}
		if (vrio_backoff_spin(&bo, now - spin_from)) {
			/* Spin politely: the guest's vCPU or the io-server may be
			 * waiting for this core. */
			sched_yield();
			continue;
		}
		if (arm_kicks(l) || lhv_ups_sleep_prepare(l) ||
		    __atomic_load_n(&l->cmd_pending, __ATOMIC_ACQUIRE)) {
			spin_from = now;
			continue;
		}
		sleep_until_work(l, now);
		seen_idle = vrio_now_ns();
		/* A short spin after each wakeup, while spinning pays. */
		spin_from = seen_idle - SPIN_MAX_NS / 2;
	}
	lhv_vhost_thread_end();
	return NULL;
}

int lhv_poller_start(struct lhv *l)
{
	int rc;

	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	l->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (l->epfd < 0 || l->wakefd < 0)
		return -errno;
	lhv_epoll_mod(l, l->wakefd, NULL, true);
	rc = pthread_create(&l->poller, NULL, poller_main, l);
	if (rc)
		return -rc;
	pthread_setname_np(l->poller, "lhv-poller");
	__atomic_store_n(&l->poller_started, true, __ATOMIC_RELEASE);
	return 0;
}

static void sum_inflight(struct lhv *l, void *arg)
{
	*(unsigned *)arg = count_inflight(l);
}

unsigned lhv_poller_quiesce(struct lhv *l, uint64_t timeout_ns)
{
	uint64_t t0 = vrio_now_ns(), now = t0;
	struct timespec ms = { 0, 1000000 };
	unsigned first, n;

	__atomic_store_n(&l->quiesce, 1, __ATOMIC_RELEASE);
	lhv_poller_wake(l);
	/* The poller counted at the start of its first round since. */
	lhv_poller_call(l, sum_inflight, &n);
	first = __atomic_load_n(&l->quiesce_inflight, __ATOMIC_ACQUIRE);
	if (!__atomic_load_n(&l->poller_started, __ATOMIC_ACQUIRE))
		first = n;
	while (n && now - t0 < timeout_ns) {
		nanosleep(&ms, NULL);
		lhv_poller_call(l, sum_inflight, &n);
		now = vrio_now_ns();
	}
	if (n)
		VRIO_WARN("%s: %u of the %u request(s) in flight at the stop are still in flight "
			  "after %llu ms: abandoned (the guest sees no used entry for them)",
			  l->node, n, first, (unsigned long long)(now - t0) / 1000000);
	else
		VRIO_NOTICE("%s: stopping: finished the %u request(s) in flight in %llu ms; "
			    "the guests' new requests wait in their rings",
			    l->node, first, (unsigned long long)(now - t0) / 1000000);
	return n;
}

void lhv_poller_stop(struct lhv *l)
{
	if (__atomic_load_n(&l->poller_started, __ATOMIC_ACQUIRE)) {
		__atomic_store_n(&l->stop, 1, __ATOMIC_RELEASE);
		lhv_poller_wake(l);
		pthread_join(l->poller, NULL);
		__atomic_store_n(&l->poller_started, false, __ATOMIC_RELEASE);
	}
	if (l->epfd >= 0)
		close(l->epfd);
	if (l->wakefd >= 0)
		close(l->wakefd);
	l->epfd = l->wakefd = -1;
}

/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The reactor loop (reactor.h): messages, pollers, and a sleep that
 * producers need not pay for while the reactor polls.
 */
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "log.h"
#include "metrics.h"
#include "reactor.h"

#define REACTOR_MAX_EVENTS 64

/* ---- the inbox ---- */

static void inbox_push(struct ios_reactor *r, struct ios_msg *m)
{
	struct ios_msg *prev;

	__atomic_store_n(&m->next, NULL, __ATOMIC_RELAXED);
	prev = __atomic_exchange_n(&r->tail, m, __ATOMIC_ACQ_REL);
	/* Between the exchange and this store the queue is cut at prev: the
	 * consumer sees it as empty there and comes back next turn. */
	__atomic_store_n(&prev->next, m, __ATOMIC_RELEASE);
}

static struct ios_msg *inbox_pop(struct ios_reactor *r)
{
	struct ios_msg *head = r->head;
	struct ios_msg *next = __atomic_load_n(&head->next, __ATOMIC_ACQUIRE);

	if (head == &r->stub) {
		if (!next)
			return NULL;
		r->head = next;
		head = next;
		next = __atomic_load_n(&head->next, __ATOMIC_ACQUIRE);
	}
	if (next) {
		r->head = next;
		return head;
	}
	/* head is the last node: put the stub behind it to take it out. */
	if (head != __atomic_load_n(&r->tail, __ATOMIC_ACQUIRE))
		return NULL;	/* a producer is between its two steps */
	inbox_push(r, &r->stub);
	next = __atomic_load_n(&head->next, __ATOMIC_ACQUIRE);
	if (!next)
		return NULL;
	r->head = next;
	return head;
}

static bool inbox_empty(struct ios_reactor *r)
{
	struct ios_msg *head = r->head;

	return head == &r->stub && !__atomic_load_n(&head->next, __ATOMIC_ACQUIRE) &&
	       __atomic_load_n(&r->tail, __ATOMIC_ACQUIRE) == &r->stub;
}

static void reactor_kick(struct ios_reactor *r)
{
	uint64_t one = 1;

	/* A full counter (EAGAIN) still wakes the reactor. */
	if (write(r->wakefd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		VRIO_ERR_RL("%s: wake: %s", r->name, strerror(errno));
}

void ios_reactor_notify(struct ios_reactor *r)
{
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (__atomic_load_n(&r->sleeping, __ATOMIC_RELAXED))
		reactor_kick(r);
}

void ios_reactor_post(struct ios_reactor *r, struct ios_msg *m)
{
	inbox_push(r, m);
	ios_reactor_notify(r);
}

void ios_reactor_park(struct ios_reactor *r, bool park)
{
	if (park) {
		__atomic_store_n(&r->parked, 1, __ATOMIC_RELEASE);
		return;
	}
	/* The watchdog does not count a parked reactor's silence (it was
	 * asleep on purpose) against it. */
	__atomic_store_n(&r->alive_ns, vrio_now_ns(), __ATOMIC_RELAXED);
	__atomic_store_n(&r->parked, 0, __ATOMIC_RELEASE);
	reactor_kick(r);
}

struct call_msg {
	struct ios_msg m;
	void (*fn)(struct ios_reactor *r, void *arg);
	void *arg;
};

static void call_run(struct ios_reactor *r, struct ios_msg *m)
{
	struct call_msg *c = (struct call_msg *)m;

	c->fn(r, c->arg);
	free(c);
}

int ios_reactor_call(struct ios_reactor *r, void (*fn)(struct ios_reactor *r, void *arg),
		     void *arg)
{
	struct call_msg *c = malloc(sizeof(*c));

	if (!c)
		return -ENOMEM;
	c->m.fn = call_run;
	c->fn = fn;
	c->arg = arg;
	ios_reactor_post(r, &c->m);
	return 0;
}

/* ---- pollers and sources ---- */

void ios_poller_register(struct ios_reactor *r, struct ios_poller *p)
{
	if (p->r)
		return;
	p->r = r;
	TAILQ_INSERT_TAIL(&r->pollers, p, link);
}

void ios_poller_unregister(struct ios_poller *p)
{
	struct ios_reactor *r = p->r;

	if (!r)
		return;
	if (r->poll_next == p)
		r->poll_next = TAILQ_NEXT(p, link);
	TAILQ_REMOVE(&r->pollers, p, link);
	p->r = NULL;
}

void ios_reactor_watch(struct ios_reactor *r, struct ios_evsrc *e, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = e };
	int op;

	if (e->fd < 0 || events == e->armed)
		return;
	if (events == 0)
		op = EPOLL_CTL_DEL;
	else if (e->armed == 0)
		op = EPOLL_CTL_ADD;
	else
		op = EPOLL_CTL_MOD;
	if (epoll_ctl(r->epfd, op, e->fd, &ev) < 0) {
		VRIO_ERR_RL("%s: epoll_ctl on fd %d: %s", r->name, e->fd, strerror(errno));
		return;
	}
	e->armed = events;
}

static void wake_ready(struct ios_evsrc *e, uint32_t events)
{
	uint64_t v;

	if (read(e->fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		VRIO_ERR_RL("wake eventfd read: %s", strerror(errno));
}

/* ---- the loop ---- */

int ios_reactor_run_msgs(struct ios_reactor *r, unsigned budget)
{
	struct ios_msg *m;
	unsigned n = 0;

	while (n < budget && (m = inbox_pop(r))) {
		m->fn(r, m);
		n++;
	}
	return (int)n;
}

int ios_reactor_turn(struct ios_reactor *r)
{
	struct ios_poller *p;
	int work;

	r->now = r->clock ? r->clock() : vrio_now_ns();
	work = ios_reactor_run_msgs(r, IOS_MSG_BUDGET);
	/* Round-robin: the poller that went first goes last, so that none
	 * (a deep device's completions) always takes its budget before the
	 * others (a shallow one's). */
	p = TAILQ_FIRST(&r->pollers);
	if (p && TAILQ_NEXT(p, link)) {
		TAILQ_REMOVE(&r->pollers, p, link);
		TAILQ_INSERT_TAIL(&r->pollers, p, link);
	}
	for (p = TAILQ_FIRST(&r->pollers); p; p = r->poll_next) {
		r->poll_next = TAILQ_NEXT(p, link);
		work += p->poll(p);
	}
	r->poll_next = NULL;
	return work;
}

static void reactor_sleep(struct ios_reactor *r)
{
	struct epoll_event evs[REACTOR_MAX_EVENTS];
	int timeout, t, i, n;
	struct ios_poller *p;
	struct ios_evsrc *e;

	__atomic_store_n(&r->sleeping, 1, __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	/* Parked: no watchdog turn; its unpark writes the wake eventfd. */
	timeout = __atomic_load_n(&r->parked, __ATOMIC_ACQUIRE) ? -1 : IOS_SLEEP_MAX_MS;
	TAILQ_FOREACH(p, &r->pollers, link) {
		if (!p->sleep)
			continue;
		t = p->sleep(p);
		if (t >= 0 && (timeout < 0 || t < timeout))
			timeout = t;
	}
	if (!inbox_empty(r) || __atomic_load_n(&r->stop, __ATOMIC_ACQUIRE))
		timeout = 0;
	n = timeout == 0 ? 0 : epoll_wait(r->epfd, evs, REACTOR_MAX_EVENTS, timeout);
	__atomic_store_n(&r->sleeping, 0, __ATOMIC_RELAXED);
	if (n < 0 && errno != EINTR)
		VRIO_ERR_RL("%s: epoll_wait: %s", r->name, strerror(errno));
	vrio_counter_add(&r->stats.wakeups, 1);
	for (i = 0; i < n; i++) {
		e = evs[i].data.ptr;
		if (e->ready)
			e->ready(e, evs[i].events);
	}
}

static void *reactor_main(void *arg)
{
	struct ios_reactor *r = arg;
	uint64_t last, start, idle_since = 0, spin_since = 0, seen_idle = 0;
	int work;

	last = vrio_now_ns();
	vrio_backoff_init(&r->backoff, IOS_IDLE_SPIN_NS);
	while (!__atomic_load_n(&r->stop, __ATOMIC_ACQUIRE)) {
		work = ios_reactor_turn(r);
		start = r->now;		/* the turn's own clock, taken as it began */
		r->now = vrio_now_ns();
		__atomic_store_n(&r->alive_ns, r->now, __ATOMIC_RELAXED);
		if (work) {
			/* A yield before this turn is idle, not work. */
			if (start > last && start < r->now) {
				vrio_counter_add(&r->stats.idle_ns, start - last);
				last = start;
			}
			vrio_counter_add(&r->stats.busy_ns, r->now - last);
			/* The gap as far as it was seen: to the last turn
			 * that found nothing, or to the wakeup (a yield that
			 * lost the core for another process's slice tells
			 * nothing of when the work came). */
			if (idle_since)
				vrio_backoff_work(&r->backoff, seen_idle > idle_since ?
						  seen_idle - idle_since : 0);
			idle_since = 0;
			last = r->now;
			continue;
		}
		vrio_counter_add(&r->stats.idle_ns, r->now - last);
		last = r->now;
		if (!idle_since)
			idle_since = spin_since = r->now;
		seen_idle = r->now;
		if (vrio_backoff_spin(&r->backoff, r->now - spin_since)) {
			/* Spinning for the next request: let whatever else is
			 * runnable on this core (the guest, local-hv) go first. */
			sched_yield();
			continue;
		}
		reactor_sleep(r);
		/* While spinning pays, a new spin after each wakeup. */
		r->now = seen_idle = spin_since = vrio_now_ns();
		vrio_counter_add(&r->stats.idle_ns, r->now - last);
		last = r->now;
		__atomic_store_n(&r->alive_ns, r->now, __ATOMIC_RELAXED);
	}
	return NULL;
}

int ios_reactor_create(struct ios_server *srv, unsigned idx, struct ios_reactor **out)
{
	struct ios_reactor *r;
	int rc;

	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->srv = srv;
	r->idx = idx;
	r->epfd = -1;
	r->wakefd = -1;
	snprintf(r->name, sizeof(r->name), "reactor%u", idx);
	TAILQ_INIT(&r->pollers);
	r->head = r->tail = &r->stub;
	r->stub.next = NULL;
	r->epfd = epoll_create1(EPOLL_CLOEXEC);
	r->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (r->epfd < 0 || r->wakefd < 0) {
		rc = -errno;
		VRIO_ERR("%s: epoll or eventfd: %s", r->name, strerror(errno));
		goto err;
	}
	r->wake_ev.fd = r->wakefd;
	r->wake_ev.ready = wake_ready;
	ios_reactor_watch(r, &r->wake_ev, EPOLLIN);
	if (r->wake_ev.armed != EPOLLIN) {
		rc = -EIO;
		goto err;
	}
	r->now = r->alive_ns = vrio_now_ns();
	*out = r;
	return 0;

err:
	ios_reactor_destroy(r);
	return rc;
}

int ios_reactor_start(struct ios_reactor *r)
{
	int rc;

	r->alive_ns = vrio_now_ns();
	rc = pthread_create(&r->thread, NULL, reactor_main, r);
	if (rc) {
		VRIO_ERR("%s: cannot start: %s", r->name, strerror(rc));
		return -rc;
	}
	pthread_setname_np(r->thread, r->name);
	r->started = true;
	return 0;
}

void ios_reactor_join(struct ios_reactor *r)
{
	if (!r || !r->started)
		return;
	__atomic_store_n(&r->stop, 1, __ATOMIC_RELEASE);
	reactor_kick(r);
	pthread_join(r->thread, NULL);
	r->started = false;
}

void ios_reactor_destroy(struct ios_reactor *r)
{
	if (!r)
		return;
	/* Messages still queued belong to owners that are gone too. */
	if (r->wakefd >= 0)
		close(r->wakefd);
	if (r->epfd >= 0)
		close(r->epfd);
	free(r);
}

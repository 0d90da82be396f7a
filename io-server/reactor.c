/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * A reactor: one polling thread owning a set of sessions and one backend
 * channel per device.
 *
 * It busy-polls while there is work. After IOS_IDLE_SPIN_NS without any, it
 * arms its file descriptors in epoll (connections, the backends' eventfds,
 * its own wake eventfd) and sleeps. Only sessions with nothing buffered get
 * here: the last poll delivered nothing, so whatever arrives next makes a
 * descriptor readable. Level-triggered registration means an event that
 * lands between that poll and epoll_wait() is not lost.
 *
 * Draining (shutdown): the reactor stops reading connections, lets the
 * backend finish, sends and flushes the responses, closes each session as
 * it goes idle, and gives up after IOS_DRAIN_TIMEOUT_NS.
 */
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "ioserver_internal.h"
#include "log.h"

#define REACTOR_MAX_EVENTS 64

struct ios_req *ios_req_get(struct ios_reactor *r)
{
	struct ios_req *req = TAILQ_FIRST(&r->pool);

	if (req) {
		TAILQ_REMOVE(&r->pool, req, link);
		return req;
	}
	return calloc(1, sizeof(*req));
}

void ios_req_put(struct ios_reactor *r, struct ios_req *req)
{
	req->s = NULL;
	req->att = NULL;
	TAILQ_INSERT_HEAD(&r->pool, req, link);
}

/* Buffers only grow: in steady state every request finds one big enough. */
int ios_req_reserve(struct ios_req *req, uint32_t len)
{
	size_t cap;
	void *p;

	if (len <= req->cap && req->buf)
		return 0;
	cap = ((size_t)len + IOS_BUF_ALIGN - 1) & ~(size_t)(IOS_BUF_ALIGN - 1);
	if (cap == 0)
		cap = IOS_BUF_ALIGN;
	if (posix_memalign(&p, IOS_BUF_ALIGN, cap))
		return -ENOMEM;
	free(req->buf);
	req->buf = p;
	req->cap = (uint32_t)cap;
	return 0;
}

static void reactor_pool_free(struct ios_reactor *r)
{
	struct ios_req *req;

	while ((req = TAILQ_FIRST(&r->pool))) {
		TAILQ_REMOVE(&r->pool, req, link);
		free(req->buf);
		free(req);
	}
}

void ios_reactor_wake(struct ios_reactor *r)
{
	uint64_t one = 1;

	/* A full counter (EAGAIN) still wakes the reactor. */
	if (write(r->wakefd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		VRIO_ERR_RL("%s: wake: %s", r->name, strerror(errno));
}

void ios_reactor_arm(struct ios_reactor *r, struct ios_session *s, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = &s->ev };
	int op;

	if (s->ev.fd < 0 || events == s->ev_armed)
		return;
	if (events == 0)
		op = EPOLL_CTL_DEL;
	else if (s->ev_armed == 0)
		op = EPOLL_CTL_ADD;
	else
		op = EPOLL_CTL_MOD;
	if (epoll_ctl(r->epfd, op, s->ev.fd, &ev) < 0) {
		VRIO_ERR_RL("%s: %s: epoll_ctl: %s", r->name, s->name, strerror(errno));
		return;
	}
	s->ev_armed = events;
}

int ios_reactor_create(struct ios_server *srv, unsigned idx, struct ios_reactor **out)
{
	struct epoll_event ev;
	struct ios_reactor *r;
	struct ios_device *d;
	uint32_t i;
	int rc, fd;

	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->srv = srv;
	r->idx = idx;
	r->epfd = -1;
	r->wakefd = -1;
	snprintf(r->name, sizeof(r->name), "reactor%u", idx);
	TAILQ_INIT(&r->sessions);
	TAILQ_INIT(&r->pool);
	r->epfd = epoll_create1(EPOLL_CLOEXEC);
	r->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (r->epfd < 0 || r->wakefd < 0) {
		rc = -errno;
		VRIO_ERR("%s: epoll or eventfd: %s", r->name, strerror(errno));
		goto err;
	}
	r->wake_ev.kind = IOS_EV_WAKE;
	r->wake_ev.fd = r->wakefd;
	ev.events = EPOLLIN;
	ev.data.ptr = &r->wake_ev;
	if (epoll_ctl(r->epfd, EPOLL_CTL_ADD, r->wakefd, &ev) < 0) {
		rc = -errno;
		VRIO_ERR("%s: epoll_ctl: %s", r->name, strerror(errno));
		goto err;
	}
	r->chans = calloc(srv->n_devs ? srv->n_devs : 1, sizeof(*r->chans));
	r->chan_ev = calloc(srv->n_devs ? srv->n_devs : 1, sizeof(*r->chan_ev));
	r->conn_pub = calloc(srv->topo->n_hosts ? srv->topo->n_hosts : 1, sizeof(*r->conn_pub));
	if (!r->chans || !r->chan_ev || !r->conn_pub) {
		rc = -ENOMEM;
		goto err;
	}
	for (i = 0; i < srv->n_devs; i++) {
		d = &srv->devs[i];
		if (!d->bdev)
			continue;
		rc = ios_bdev_chan_open(d->bdev, d->max_outstanding, &r->chans[i]);
		if (rc < 0) {
			VRIO_ERR("%s: %s: cannot open a backend channel: %s", r->name,
				 d->topo->name, strerror(-rc));
			goto err;
		}
		fd = ios_bdev_chan_fd(r->chans[i]);
		r->chan_ev[i].kind = IOS_EV_CHAN;
		r->chan_ev[i].fd = fd;
		if (fd < 0)
			continue;
		ev.events = EPOLLIN;
		ev.data.ptr = &r->chan_ev[i];
		if (epoll_ctl(r->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
			rc = -errno;
			VRIO_ERR("%s: epoll_ctl: %s", r->name, strerror(errno));
			goto err;
		}
	}
	/* The uplinks this reactor switches: always watched, since reading
	 * one is how the switch finds frames on it. */
	r->tap_ev = calloc(srv->n_nets ? srv->n_nets : 1, sizeof(*r->tap_ev));
	if (!r->tap_ev) {
		rc = -ENOMEM;
		goto err;
	}
	for (i = 0; i < srv->n_nets; i++) {
		if (srv->nets[i].home != idx || srv->nets[i].tap_fd < 0)
			continue;
		r->tap_ev[i].kind = IOS_EV_TAP;
		r->tap_ev[i].fd = srv->nets[i].tap_fd;
		ev.events = EPOLLIN;
		ev.data.ptr = &r->tap_ev[i];
		if (epoll_ctl(r->epfd, EPOLL_CTL_ADD, r->tap_ev[i].fd, &ev) < 0) {
			rc = -errno;
			VRIO_ERR("%s: epoll_ctl: %s", r->name, strerror(errno));
			goto err;
		}
	}
	*out = r;
	return 0;

err:
	ios_reactor_destroy(r);
	return rc;
}

static int reactor_inbox(struct ios_reactor *r, bool draining)
{
	unsigned head = r->inbox_head;
	unsigned tail = __atomic_load_n(&r->inbox_tail, __ATOMIC_ACQUIRE);
	struct ios_session *s;
	int n = 0;

	while (head != tail) {
		s = r->inbox[head & (IOS_INBOX_LEN - 1)];
		head++;
		ios_session_adopt(r, s);
		if (draining)
			ios_session_close(s, "shutting down");
		n++;
	}
	__atomic_store_n(&r->inbox_head, head, __ATOMIC_RELEASE);
	return n;
}

int ios_reactor_post(struct ios_reactor *r, struct ios_session *s)
{
	unsigned tail = r->inbox_tail;
	unsigned head = __atomic_load_n(&r->inbox_head, __ATOMIC_ACQUIRE);

	if (tail - head >= IOS_INBOX_LEN)
		return -EAGAIN;
	r->inbox[tail & (IOS_INBOX_LEN - 1)] = s;
	__atomic_store_n(&r->inbox_tail, tail + 1, __ATOMIC_RELEASE);
	ios_reactor_wake(r);
	return 0;
}

static void reactor_sleep(struct ios_reactor *r, bool draining, uint64_t deadline)
{
	struct epoll_event evs[REACTOR_MAX_EVENTS];
	int timeout = IOS_SLEEP_MAX_MS;
	struct ios_evsrc *src;
	struct ios_session *s;
	uint32_t want;
	uint64_t v;
	int i, n, t;

	TAILQ_FOREACH(s, &r->sessions, link) {
		want = ios_session_events(s, draining);
		ios_reactor_arm(r, s, want);
		/* A transport without a descriptor can only be polled. */
		if (want && s->ev.fd < 0)
			timeout = 1;
		/* A layer's timer (a retransmission) must not wait for us. */
		t = vrio_conn_timeout_ms(s->conn);
		if (t >= 0 && t < timeout)
			timeout = t;
	}
	if (draining) {
		v = deadline > r->now ? (deadline - r->now) / 1000000 + 1 : 1;
		if (v < (uint64_t)timeout)
			timeout = (int)v;
	}
	n = epoll_wait(r->epfd, evs, REACTOR_MAX_EVENTS, timeout);
	if (n < 0 && errno != EINTR)
		VRIO_ERR_RL("%s: epoll_wait: %s", r->name, strerror(errno));
	for (i = 0; i < n; i++) {
		src = evs[i].data.ptr;
		if (src->kind == IOS_EV_TAP)
			r->srv->nets[src - r->tap_ev].tap_ready = true;
		if (src->kind == IOS_EV_CONN || src->kind == IOS_EV_TAP)
			continue;
		/* Reset the eventfd; the poll that follows finds the work. */
		if (read(src->fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
			VRIO_ERR_RL("%s: eventfd read: %s", r->name, strerror(errno));
	}
}

static unsigned reactor_inflight(const struct ios_reactor *r)
{
	const struct ios_session *s;
	const struct ios_attach *a;
	unsigned n = 0;

	TAILQ_FOREACH(s, &r->sessions, link)
		TAILQ_FOREACH(a, &s->atts, link)
			n += a->inflight;
	return n;
}

static void *reactor_main(void *arg)
{
	struct ios_reactor *r = arg;
	uint64_t last, idle_since = 0, deadline = 0;
	struct ios_session *s, *next;
	bool draining = false;
	unsigned left;
	int work;

	r->now = last = vrio_now_ns();
	for (;;) {
		if (!draining && __atomic_load_n(&r->drain, __ATOMIC_ACQUIRE)) {
			draining = true;
			deadline = r->now + IOS_DRAIN_TIMEOUT_NS;
		}
		work = reactor_inbox(r, draining);
		work += ios_xring_poll(r);
		work += ios_switch_poll(r);
		for (s = TAILQ_FIRST(&r->sessions); s; s = next) {
			next = TAILQ_NEXT(s, link);
			work += ios_session_poll(s, draining);
			if (ios_session_finished(s, draining))
				ios_session_free(s);
		}
		ios_xring_kick(r);

		r->now = vrio_now_ns();
		__atomic_store_n(&r->alive_ns, r->now, __ATOMIC_RELAXED);
		if (work) {
			vrio_counter_add(&r->stats.busy_ns, r->now - last);
			idle_since = 0;
		} else {
			vrio_counter_add(&r->stats.idle_ns, r->now - last);
			if (!idle_since)
				idle_since = r->now;
		}
		last = r->now;

		if (draining && (TAILQ_EMPTY(&r->sessions) || r->now >= deadline))
			break;
		if (!work && r->now - idle_since >= IOS_IDLE_SPIN_NS) {
			reactor_sleep(r, draining, deadline);
			r->now = vrio_now_ns();
			vrio_counter_add(&r->stats.idle_ns, r->now - last);
			last = r->now;
			idle_since = r->now;
			__atomic_store_n(&r->alive_ns, r->now, __ATOMIC_RELAXED);
		} else if (!work) {
			/* Spinning for the next request: let whatever else is
			 * runnable on this core (the guest, local-hv) go first. */
			sched_yield();
		}
	}
	if (!TAILQ_EMPTY(&r->sessions)) {
		left = 0;
		TAILQ_FOREACH(s, &r->sessions, link)
			left++;
		VRIO_ERR("%s: drain timed out: closing %u connections, %u requests still at the backend",
			 r->name, left, reactor_inflight(r));
	}
	while ((s = TAILQ_FIRST(&r->sessions)))
		ios_session_free(s);
	return NULL;
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

void ios_reactor_drain(struct ios_reactor *r)
{
	__atomic_store_n(&r->drain, 1, __ATOMIC_RELEASE);
	ios_reactor_wake(r);
}

void ios_reactor_join(struct ios_reactor *r)
{
	if (!r->started)
		return;
	pthread_join(r->thread, NULL);
	r->started = false;
}

void ios_reactor_destroy(struct ios_reactor *r)
{
	struct ios_session *s;
	unsigned head;
	uint32_t i;

	if (!r)
		return;
	/* Sessions posted after the reactor stopped were never adopted. */
	for (head = r->inbox_head; head != r->inbox_tail; head++)
		ios_session_free(r->inbox[head & (IOS_INBOX_LEN - 1)]);
	r->inbox_head = head;
	while ((s = TAILQ_FIRST(&r->sessions)))
		ios_session_free(s);
	if (r->chans) {
		for (i = 0; i < r->srv->n_devs; i++)
			if (r->chans[i])
				ios_bdev_chan_close(r->chans[i]);
	}
	free(r->chans);
	free(r->chan_ev);
	free(r->conn_pub);
	free(r->tap_ev);
	reactor_pool_free(r);
	if (r->wakefd >= 0)
		close(r->wakefd);
	if (r->epfd >= 0)
		close(r->epfd);
	free(r);
}

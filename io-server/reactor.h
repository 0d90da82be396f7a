/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * A reactor: one polling thread that runs what its owners registered on it
 * and the messages other threads post to it. It knows nothing of sessions,
 * devices or switches.
 *
 *   messages  "run this function on that reactor": an intrusive
 *             multi-producer single-consumer queue, so posting never
 *             allocates, never fails and never blocks. A message posted
 *             by one thread runs after every message that thread posted
 *             to the same reactor before it.
 *   pollers   registered and unregistered on the reactor's own thread by
 *             whoever owns them; each turn calls every poller once, each turn
 *             starting one further along (round-robin: with their
 *             per-poll budgets, no poller always goes first), and a
 *             poller says whether it found work (SPDK's BUSY / IDLE).
 *   sources   file descriptors a poller wants watched while the reactor
 *             sleeps (a connection, a backend's eventfd, a TAP).
 *
 * Sleeping: after the empty turns that the recent gaps between work make
 * worth spinning (common/backoff.h: up to IOS_IDLE_SPIN_NS, or none when
 * work comes seldom), each yielding the core, the reactor says it is going
 * to sleep (r->sleeping), asks each poller to arm its sources and give a
 * timeout, checks its queue once more and sleeps in epoll. A
 * producer posts first and then reads r->sleeping: only then does it write
 * the wake eventfd, so a polling reactor costs its producers no system
 * call. Both sides order their store before their load with a full fence,
 * so at least one of them sees the other.
 *
 * Parking (balance.h): a parked reactor sleeps without a timeout, blocked
 * in epoll until a message, a source or its unpark wakes it; it is given
 * no devices and no connections, so it costs no CPU at all.
 *
 * Busy time counts only turns that found work, from the turn's start to
 * its end: the spin, the yields and the sleep between turns are idle.
 */
#ifndef VRIO_IOSERVER_REACTOR_H
#define VRIO_IOSERVER_REACTOR_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

#include "backoff.h"

#define IOS_IDLE_SPIN_NS	100000ull	/* the longest idle busy-poll */
#define IOS_SLEEP_MAX_MS	1000	/* turn at least this often (watchdog) */
#define IOS_MAX_REACTORS	64u
#define IOS_MSG_BUDGET		256u	/* messages run per turn */

struct ios_reactor;
struct ios_server;

/* A message: embed it in what it carries and recover that with
 * container_of in fn. Owned by the reactor it was posted to from the post
 * until fn returns; fn may post it again or free it. */
struct ios_msg {
	struct ios_msg *next;
	void (*fn)(struct ios_reactor *r, struct ios_msg *m);
};

struct ios_poller {
	TAILQ_ENTRY(ios_poller) link;
	const char *name;
	/* Work done this turn; 0 means idle. */
	int (*poll)(struct ios_poller *p);
	/* Optional, before the reactor sleeps: arm sources, and return the
	 * longest sleep in ms this poller allows (0: it has work), or -1. */
	int (*sleep)(struct ios_poller *p);
	struct ios_reactor *r;		/* NULL while unregistered */
};

TAILQ_HEAD(ios_poller_list, ios_poller);

/* A watched descriptor; ready() runs on the reactor after a sleep. */
struct ios_evsrc {
	int fd;
	uint32_t armed;			/* the epoll events registered, 0: none */
	void (*ready)(struct ios_evsrc *e, uint32_t events);
};

struct ios_reactor_stats {
	uint64_t busy_ns, idle_ns;	/* written by the reactor */
	uint64_t wakeups;		/* sleeps that ended */
};

struct ios_reactor {
	unsigned idx;
	char name[16];
	struct ios_server *srv;
	pthread_t thread;
	bool started;
	int epfd;
	int wakefd;
	struct ios_evsrc wake_ev;

	/* The inbox: producers swap `tail`, the reactor reads from `head`
	 * (Vyukov's intrusive MPSC queue, `stub` its permanent node). */
	struct ios_msg *tail;		/* atomic */
	struct ios_msg *head;		/* reactor only */
	struct ios_msg stub;
	int sleeping;			/* atomic: between its last check and epoll */
	int stop;			/* atomic: leave the loop at the next turn */
	int parked;			/* atomic: sleep with no timeout */

	struct ios_poller_list pollers;
	struct ios_poller *poll_next;	/* the turn's cursor (unregister moves it) */
	uint64_t now;			/* this turn's clock */
	uint64_t (*clock)(void);	/* tests inject one; NULL: vrio_now_ns */
	uint64_t alive_ns;		/* atomic: the loop's last turn */
	unsigned n_devices;		/* atomic: devices placed here */
	unsigned n_sessions;		/* atomic: connections served here */
	struct ios_reactor_stats stats;
	struct vrio_backoff backoff;	/* reactor only: how long it spins idle */
	void *priv;			/* per-reactor state of the server's modules */
};

int ios_reactor_create(struct ios_server *srv, unsigned idx, struct ios_reactor **out);
int ios_reactor_start(struct ios_reactor *r);
/* Asks the thread to leave its loop after the current turn and joins it;
 * what it owns stays for its owners to take apart. */
void ios_reactor_join(struct ios_reactor *r);
/* Only once it is joined or never started. Pending messages are dropped. */
void ios_reactor_destroy(struct ios_reactor *r);

/* Any thread. */
void ios_reactor_post(struct ios_reactor *r, struct ios_msg *m);
/* Any thread: wakes r if it sleeps (after a producer of its own rings). */
void ios_reactor_notify(struct ios_reactor *r);
/* Any thread: parks r (its next sleep has no timeout) or unparks it (and
 * wakes it). The caller sees that nothing is left on it to serve. */
void ios_reactor_park(struct ios_reactor *r, bool park);
static inline bool ios_reactor_parked(const struct ios_reactor *r)
{
	return __atomic_load_n(&r->parked, __ATOMIC_ACQUIRE);
}
/* Control path: runs fn(arg) on r; the message is allocated. -ENOMEM. */
int ios_reactor_call(struct ios_reactor *r, void (*fn)(struct ios_reactor *r, void *arg),
		     void *arg);

/* On r's own thread. */
void ios_poller_register(struct ios_reactor *r, struct ios_poller *p);
void ios_poller_unregister(struct ios_poller *p);
/* Watch e->fd for `events` while sleeping; 0 stops watching. */
void ios_reactor_watch(struct ios_reactor *r, struct ios_evsrc *e, uint32_t events);

/* One turn: messages, then every poller. Returns the work done. The
 * thread's loop, and unit tests that drive a reactor by hand. */
int ios_reactor_turn(struct ios_reactor *r);

/* Runs up to budget messages, not the pollers; returns how many (a
 * stopped reactor's last messages, at exit). */
int ios_reactor_run_msgs(struct ios_reactor *r, unsigned budget);

/* The turn's clock, for pollers. */
static inline uint64_t ios_reactor_now(const struct ios_reactor *r)
{
	return r->now;
}

#endif

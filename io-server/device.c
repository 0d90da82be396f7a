/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The device table and a device's life on the reactors (device.h):
 *
 *   add        control thread: the model opens it, it takes a free slot.
 *   attach     front reactor: the owner CAS (control.c), then a place
 *              message to the least loaded reactor, whose answer sends
 *              the AttachReply.
 *   requests   front -> home -> front (a direct call on one reactor).
 *   move       front holds new requests; the old home lets the device go
 *              once nothing is in flight there; the new home takes it;
 *              the front sends it what it held, in order. So no request
 *              is lost, run twice, or overtaken by a later one.
 *   release    front, once detached and idle: the home lets it go, then
 *              the front clears the owner.
 *   remove     control thread: new work is refused; once neither
 *              attached nor placed, the slot is cleared and, after every
 *              reactor has finished the turn it was in, it is freed.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ioserver_internal.h"
#include "log.h"

static const struct ios_dev_ops *const dev_models[] = {
	&ios_blk_dev_ops,
	&ios_net_dev_ops,
};

const char *const ios_hop_names[IOS_NR_HOPS] = {
	[IOS_HOP_QUEUE] = "queue",
	[IOS_HOP_BACKEND] = "backend",
	[IOS_HOP_RESPOND] = "respond",
};

const struct ios_dev_ops *ios_dev_ops_find(enum vrio_dev_type type)
{
	for (size_t i = 0; i < sizeof(dev_models) / sizeof(dev_models[0]); i++)
		if (dev_models[i]->type == type)
			return dev_models[i];
	return NULL;
}

void ios_dev_models_metrics(struct ios_server *srv, struct vrio_mw *w)
{
	for (size_t i = 0; i < sizeof(dev_models) / sizeof(dev_models[0]); i++)
		if (dev_models[i]->metrics)
			dev_models[i]->metrics(srv, w);
}

/* ---- the table, control thread ---- */

struct ios_device *ios_device_next(struct ios_server *srv, struct ios_device *prev,
				   const struct ios_dev_ops *ops)
{
	uint32_t n = __atomic_load_n(&srv->n_slots, __ATOMIC_ACQUIRE);
	struct ios_device *d;

	for (uint32_t i = prev ? prev->id + 1 : 0; i < n; i++) {
		d = __atomic_load_n(&srv->devs[i], __ATOMIC_ACQUIRE);
		if (d && (!ops || d->ops == ops))
			return d;
	}
	return NULL;
}

struct ios_device *ios_device_find(struct ios_server *srv, const char *name)
{
	uint32_t n = __atomic_load_n(&srv->n_slots, __ATOMIC_ACQUIRE);
	struct ios_device *d;

	for (uint32_t i = 0; i < n; i++) {
		d = __atomic_load_n(&srv->devs[i], __ATOMIC_ACQUIRE);
		if (d && !strcmp(d->name, name))
			return d;
	}
	return NULL;
}

static int slot_take(struct ios_server *srv)
{
	uint32_t i;

	for (i = 0; i < srv->n_slots; i++)
		if (!srv->devs[i])
			return (int)i;
	return srv->n_slots < IOS_MAX_DEVICES ? (int)srv->n_slots : -1;
}

int ios_device_add(struct ios_server *srv, const struct vrio_topo_device *td)
{
	const struct ios_dev_ops *ops = ios_dev_ops_find(td->type);
	struct ios_chain *chain;
	char escaped[160], why[256];
	struct ios_device *d;
	int slot, rc;

	if (!ops) {
		VRIO_ERR("%s: no %s device model here", td->name, vrio_dev_type_name(td->type));
		return -ENOTSUP;
	}
	if (td->queues == 0 || td->queues > UINT16_MAX || td->queue_size == 0 ||
	    td->queue_size > UINT16_MAX) {
		VRIO_ERR("%s: %u queues of %u entries is not a device shape", td->name, td->queues,
			 td->queue_size);
		return -EINVAL;
	}
	slot = slot_take(srv);
	if (slot < 0) {
		VRIO_ERR("%s: %s serves %u devices already", td->name, srv->name, IOS_MAX_DEVICES);
		return -ENOSPC;
	}
	d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->id = (uint32_t)slot;
	TAILQ_INIT(&d->parked_stages);
	d->ops = ops;
	d->srv = srv;
	d->topo = td;
	snprintf(d->name, sizeof(d->name), "%s", td->name);
	snprintf(d->host, sizeof(d->host), "%s", td->host->name);
	vrio_mw_escape(escaped, sizeof(escaped), td->name);
	snprintf(d->label, sizeof(d->label), "device=\"%s\"", escaped);
	d->read_only = td->read_only;
	d->queue_size = td->queue_size;
	rc = ops->open(srv, d);
	if (rc < 0) {
		free(d);
		return rc;
	}
	rc = ios_chain_build(d, td, &chain, why, sizeof(why));
	if (rc < 0) {
		VRIO_ERR("%s", why);
		ops->close(srv, d);
		free(d);
		return rc;
	}
	ios_chain_commit(d, chain);
	pthread_mutex_lock(&srv->lock);
	__atomic_store_n(&srv->devs[slot], d, __ATOMIC_RELEASE);
	if ((uint32_t)slot == srv->n_slots)
		__atomic_store_n(&srv->n_slots, srv->n_slots + 1, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&srv->lock);
	return 0;
}

void ios_device_remove(struct ios_server *srv, struct ios_device *d)
{
	d->topo = NULL;		/* the file it came from goes with this reload */
	__atomic_store_n(&d->removing, true, __ATOMIC_SEQ_CST);
	if (__atomic_load_n(&d->owner, __ATOMIC_SEQ_CST))
		VRIO_NOTICE("%s: removed: refusing new requests until its host detaches it",
			    d->name);
	else
		VRIO_NOTICE("%s: removed", d->name);
}

unsigned ios_devices_reap(struct ios_server *srv)
{
	unsigned waiting = 0;
	struct ios_device *d;

	for (uint32_t i = 0; i < srv->n_slots; i++) {
		d = srv->devs[i];
		if (!d || !__atomic_load_n(&d->removing, __ATOMIC_SEQ_CST))
			continue;
		/* An attach that takes the owner after this sees `removing`
		 * and lets go again (control.c). */
		if (__atomic_load_n(&d->owner, __ATOMIC_SEQ_CST) ||
		    __atomic_load_n(&d->home, __ATOMIC_SEQ_CST)) {
			waiting++;
			continue;
		}
		pthread_mutex_lock(&srv->lock);
		__atomic_store_n(&srv->devs[i], NULL, __ATOMIC_RELEASE);
		pthread_mutex_unlock(&srv->lock);
		d->ops->close(srv, d);
		/* A reactor may have read the slot in the turn it is in. */
		if (ios_server_barrier(srv) < 0) {
			VRIO_ERR("%s: reactors did not answer; leaving its memory allocated", d->name);
			continue;
		}
		VRIO_INFO("%s: released", d->name);
		ios_chain_put(d->chain);
		free(d);
	}
	return waiting;
}

void ios_devices_close(struct ios_server *srv)
{
	struct ios_device *d;

	for (uint32_t i = 0; i < srv->n_slots; i++) {
		d = srv->devs[i];
		if (!d)
			continue;
		srv->devs[i] = NULL;
		d->ops->close(srv, d);
		ios_chain_put(d->chain);
		free(d);
	}
	srv->n_slots = 0;
}

struct ios_reactor *ios_server_pick_reactor(struct ios_server *srv)
{
	unsigned best_n = 0, n, active = __atomic_load_n(&srv->n_active, __ATOMIC_ACQUIRE);
	struct ios_reactor *best = NULL, *r;

	if (active < 1 || active > srv->n_reactors)
		active = srv->n_reactors;
	for (unsigned i = 0; i < active; i++) {
		r = srv->reactors[i];
		n = __atomic_load_n(&r->n_devices, __ATOMIC_RELAXED);
		if (!best || n < best_n ||
		    (n == best_n && vrio_counter_get(&r->stats.busy_ns) <
					    vrio_counter_get(&best->stats.busy_ns))) {
			best = r;
			best_n = n;
		}
	}
	return best;
}

/* ---- landing and leaving, home reactor ---- */

static int dev_land(struct ios_device *d, struct ios_reactor *r)
{
	int rc = d->ops->place(d, r);

	if (rc < 0) {
		VRIO_ERR("%s: cannot be served on %s: %s", d->name, r->name, strerror(-rc));
		return rc;
	}
	__atomic_add_fetch(&r->n_devices, 1, __ATOMIC_RELAXED);
	__atomic_store_n(&d->placed_ns, vrio_now_ns(), __ATOMIC_RELAXED);
	__atomic_store_n(&d->home, r, __ATOMIC_SEQ_CST);
	ios_chain_place(d, r);
	return 0;
}

static void dev_leave(struct ios_device *d, struct ios_reactor *r)
{
	ios_chain_unplace(d, r);
	d->ops->unplace(d, r);
	__atomic_sub_fetch(&r->n_devices, 1, __ATOMIC_RELAXED);
	__atomic_store_n(&d->home, NULL, __ATOMIC_SEQ_CST);
}

/* A placement message: to the home reactor and back to the front. */
struct place_msg {
	struct ios_msg m;
	struct ios_attach *a;
	struct ios_reactor *front;
	int rc;
};

static void place_back(struct ios_reactor *r, struct ios_msg *m)
{
	struct place_msg *pm = container_of(m, struct place_msg, m);

	ios_session_attached(pm->a, pm->rc);
	free(pm);
}

static void place_run(struct ios_reactor *r, struct ios_msg *m)
{
	struct place_msg *pm = container_of(m, struct place_msg, m);

	if (pm->a->dev->ops->attach)
		pm->a->dev->ops->attach(pm->a->dev);
	pm->rc = dev_land(pm->a->dev, r);
	pm->a->home = pm->rc == 0 ? r : NULL;
	pm->m.fn = place_back;
	ios_reactor_post(pm->front, &pm->m);
}

void ios_device_attach(struct ios_attach *a)
{
	struct ios_reactor *front = a->s->r;
	struct place_msg *pm = calloc(1, sizeof(*pm));

	a->state = IOS_ATT_PLACING;
	if (!pm) {
		ios_session_attached(a, -ENOMEM);
		return;
	}
	__atomic_store_n(&a->dev->front, front, __ATOMIC_SEQ_CST);
	pm->m.fn = place_run;
	pm->a = a;
	pm->front = front;
	ios_reactor_post(ios_server_pick_reactor(a->s->srv), &pm->m);
}

static void unplace_back(struct ios_reactor *r, struct ios_msg *m)
{
	struct place_msg *pm = container_of(m, struct place_msg, m);
	struct ios_device *d = pm->a->dev;

	/* In this order: a reactor that reads front == itself still finds
	 * its own session as the owner (ios_session_to_guest). */
	__atomic_store_n(&d->front, NULL, __ATOMIC_SEQ_CST);
	__atomic_store_n(&d->owner, NULL, __ATOMIC_SEQ_CST);
	ios_session_released(pm->a);
	if (__atomic_load_n(&d->removing, __ATOMIC_SEQ_CST))
		ios_server_wake_main(r->srv);
	free(pm);
}

static void unplace_run(struct ios_reactor *r, struct ios_msg *m)
{
	struct place_msg *pm = container_of(m, struct place_msg, m);

	dev_leave(pm->a->dev, r);
	pm->m.fn = unplace_back;
	ios_reactor_post(pm->front, &pm->m);
}

void ios_device_release(struct ios_attach *a)
{
	struct ios_device *d = a->dev;
	struct place_msg *pm;

	a->state = IOS_ATT_RELEASING;
	if (!a->home) {
		/* Placed nowhere (a move that found no reactor to land on). */
		__atomic_store_n(&d->front, NULL, __ATOMIC_SEQ_CST);
		__atomic_store_n(&d->owner, NULL, __ATOMIC_SEQ_CST);
		if (__atomic_load_n(&d->removing, __ATOMIC_SEQ_CST))
			ios_server_wake_main(a->s->srv);
		ios_session_released(a);
		return;
	}
	pm = calloc(1, sizeof(*pm));
	while (!pm) {
		/* Rare, and the device must not stay placed forever. */
		VRIO_ERR_RL("%s: out of memory releasing it; retrying", a->dev->name);
		pm = calloc(1, sizeof(*pm));
	}
	pm->m.fn = unplace_run;
	pm->a = a;
	pm->front = a->s->r;
	ios_reactor_post(a->home, &pm->m);
}

/* ---- requests ---- */

static void req_run(struct ios_reactor *r, struct ios_msg *m)
{
	struct ios_req *req = container_of(m, struct ios_req, msg);
	struct ios_device *d = req->dev;

	d->inflight++;
	d->ops->request(d, req, req->rx);
}

static void req_back(struct ios_reactor *r, struct ios_msg *m)
{
	ios_session_resp(r, container_of(m, struct ios_req, msg));
}

static void move_handoff_later(struct ios_device *d, struct ios_reactor *r);

void ios_req_done(struct ios_req *req)
{
	struct ios_device *d = req->dev;
	struct ios_reactor *here = d->home, *front = req->s->r;

	d->inflight--;
	if (d->move && d->inflight == d->parked)
		move_handoff_later(d, here);
	if (front == here) {
		ios_session_resp(here, req);
		return;
	}
	req->msg.fn = req_back;
	ios_reactor_post(front, &req->msg);
}

static void to_guest(struct ios_reactor *r, struct ios_msg *m)
{
	struct ios_req *req = container_of(m, struct ios_req, msg);

	ios_session_to_guest(r, req->dev, req);
}

void ios_dev_to_front(struct ios_device *d, struct ios_req *req)
{
	struct ios_reactor *front = __atomic_load_n(&d->front, __ATOMIC_ACQUIRE);
	struct ios_reactor *here = d->home;

	req->dev = d;
	if (front == here || !front) {
		ios_session_to_guest(here, d, req);
		return;
	}
	req->msg.fn = to_guest;
	ios_reactor_post(front, &req->msg);
}

static int req_keep_payload(struct ios_req *req, const void *payload)
{
	int rc = ios_req_reserve_rx(req, req->in_len);

	if (rc < 0)
		return rc;
	memcpy(req->rx, payload, req->in_len);
	return 0;
}

void ios_device_submit(struct ios_attach *a, struct ios_req *req, const void *payload)
{
	struct ios_reactor *front = a->s->r;

	req->dev = a->dev;
	req->att = a;
	if (a->state == IOS_ATT_MOVING || a->home != front) {
		if (req_keep_payload(req, payload) < 0) {
			/* The model answers with an error rather than the
			 * request being lost. */
			req->in_len = 0;
			req->in_arg = 0;
		}
		if (a->state == IOS_ATT_MOVING) {
			TAILQ_INSERT_TAIL(&a->held, req, link);
			return;
		}
		req->msg.fn = req_run;
		ios_reactor_post(a->home, &req->msg);
		return;
	}
	a->dev->inflight++;
	a->dev->ops->request(a->dev, req, payload);
}

void ios_device_unhold(struct ios_attach *a)
{
	struct ios_reactor *front = a->s->r;
	struct ios_req *req;

	while ((req = TAILQ_FIRST(&a->held))) {
		TAILQ_REMOVE(&a->held, req, link);
		if (a->home == front) {
			a->dev->inflight++;
			a->dev->ops->request(a->dev, req, req->rx);
		} else {
			req->msg.fn = req_run;
			ios_reactor_post(a->home, &req->msg);
		}
	}
}

/* ---- moves ---- */

struct ios_move {
	struct ios_msg m;
	struct ios_device *d;
	struct ios_attach *a;
	struct ios_reactor *front, *from, *to;
	struct ios_move_result *res;
	bool fallback;			/* landing back where it came from */
	bool posted;			/* a hand-off is this reactor's next message */
	int rc;
};

void ios_move_result_put(struct ios_move_result *res)
{
	if (__atomic_sub_fetch(&res->refs, 1, __ATOMIC_ACQ_REL) == 0)
		free(res);
}

static void move_finish(struct ios_move *mv, int rc)
{
	struct ios_move_result *res = mv->res;

	res->rc = rc;
	res->from = mv->from ? mv->from->idx : 0;
	res->to = mv->d->home ? mv->d->home->idx : res->from;
	res->t_end = vrio_now_ns();
	__atomic_store_n(&res->done, 1, __ATOMIC_RELEASE);
	ios_move_result_put(res);
	free(mv);
}

static void move_done(struct ios_reactor *r, struct ios_msg *m)
{
	struct ios_move *mv = container_of(m, struct ios_move, m);
	struct ios_attach *a = mv->a;
	struct ios_session *s = a->s;

	a->home = mv->d->home;
	a->state = IOS_ATT_READY;
	if (a->home) {
		ios_device_unhold(a);
		if (mv->rc == 0)
			VRIO_INFO("%s: moved from %s to %s", mv->d->name, mv->from->name,
				  a->home->name);
	} else {
		VRIO_ERR("%s: lost its placement in a move", mv->d->name);
	}
	move_finish(mv, mv->rc);
	if (a->home && !a->detached)
		return;
	if (!a->detached) {
		/* Neither reactor could take it: its requests have nowhere to
		 * run. The connection goes; local-hv reconnects and the device
		 * is placed afresh. Closing detaches and releases it. */
		ios_session_close(s, "a device lost its placement");
		return;
	}
	if (a->outstanding == 0)
		ios_device_release(a);
}

static void move_land(struct ios_reactor *r, struct ios_msg *m)
{
	struct ios_move *mv = container_of(m, struct ios_move, m);
	int rc = dev_land(mv->d, r);

	if (rc < 0 && !mv->fallback) {
		mv->fallback = true;
		mv->rc = rc;
		ios_reactor_post(mv->from, &mv->m);
		return;
	}
	if (rc == 0 && !mv->fallback)
		vrio_counter_add(&mv->d->stats.moves, 1);
	if (rc < 0)
		mv->rc = rc;
	mv->m.fn = move_done;
	ios_reactor_post(mv->front, &mv->m);
}

static void move_handoff(struct ios_device *d, struct ios_reactor *r)
{
	struct ios_move *mv = d->move;

	d->move = NULL;
	dev_leave(d, r);
	mv->m.fn = move_land;
	ios_reactor_post(mv->to, &mv->m);
}

static void move_handoff_run(struct ios_reactor *r, struct ios_msg *m)
{
	struct ios_move *mv = container_of(m, struct ios_move, m);
	struct ios_device *d = mv->d;

	mv->posted = false;
	/* A stage may have let a parked request go on since: the next
	 * completion tries again. */
	if (d->inflight == d->parked)
		move_handoff(d, r);
}

/* From a completion, inside the backend channel's own poll: the channel
 * must not close under it, so the hand-off runs as this reactor's next
 * message. No request can reach the device before it: the front holds
 * them all while the device moves. Requests parked in a stage go along
 * with the device (stage.h). */
static void move_handoff_later(struct ios_device *d, struct ios_reactor *r)
{
	if (d->move->posted)
		return;
	d->move->posted = true;
	d->move->m.fn = move_handoff_run;
	ios_reactor_post(r, &d->move->m);
}

static void move_quiesce(struct ios_reactor *r, struct ios_msg *m)
{
	struct ios_move *mv = container_of(m, struct ios_move, m);
	struct ios_device *d = mv->d;

	/* Every request the front sent before this message has arrived. */
	d->move = mv;
	if (d->inflight == d->parked)
		move_handoff(d, r);
}

static void move_begin(struct ios_reactor *r, struct ios_msg *m)
{
	struct ios_move *mv = container_of(m, struct ios_move, m);
	struct ios_device *d = mv->d;
	struct ios_session *s;
	struct ios_attach *a;

	if (__atomic_load_n(&d->front, __ATOMIC_ACQUIRE) != r ||
	    !(s = __atomic_load_n(&d->owner, __ATOMIC_ACQUIRE))) {
		move_finish(mv, -ENOTCONN);
		return;
	}
	a = s->att[d->id];
	if (!a || a->detached || a->state != IOS_ATT_READY) {
		move_finish(mv, -EBUSY);
		return;
	}
	mv->a = a;
	mv->from = a->home;
	if (a->home == mv->to) {
		move_finish(mv, 0);
		return;
	}
	a->state = IOS_ATT_MOVING;
	mv->m.fn = move_quiesce;
	ios_reactor_post(a->home, &mv->m);
}

int ios_device_move(struct ios_server *srv, struct ios_device *d, struct ios_reactor *to,
		    struct ios_move_result *res)
{
	struct ios_reactor *front = __atomic_load_n(&d->front, __ATOMIC_ACQUIRE);
	struct ios_move *mv;

	if (__atomic_load_n(&d->removing, __ATOMIC_ACQUIRE))
		return -ENOENT;
	if (!front || !__atomic_load_n(&d->home, __ATOMIC_ACQUIRE))
		return -ENOTCONN;
	mv = calloc(1, sizeof(*mv));
	if (!mv)
		return -ENOMEM;
	mv->m.fn = move_begin;
	mv->d = d;
	mv->front = front;
	mv->to = to;
	mv->res = res;
	res->t_start = vrio_now_ns();
	__atomic_add_fetch(&res->refs, 1, __ATOMIC_ACQ_REL);
	ios_reactor_post(front, &mv->m);
	return 0;
}

/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * virtio-blk devices: the blk model (blk.c) over a block backend (bdev.h),
 * behind the device ops (device.h). A device placed on a reactor has its
 * own backend channel there, polled while requests are in flight.
 */
#include <errno.h>
#include <linux/virtio_blk.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "ioserver_internal.h"
#include "log.h"
#include "vrio.pb-c.h"

_Static_assert(IOS_BLK_OP_COUNT <= IOS_DEV_MAX_OPS, "blk ops fit the request counters");

static int blk_open(struct ios_server *srv, struct ios_device *d)
{
	const struct vrio_topo_device *td = d->topo;
	struct ios_bdev *bdev;
	int rc;

	rc = ios_bdev_open(td, &bdev);
	if (rc < 0)
		return rc;
	bdev->name = d->name;	/* the topology's string goes with a reload */
	d->u.blk.bdev = bdev;
	ios_blk_dev_init(&d->u.blk.model, d->name, bdev, td->queues, td->queue_size);
	d->u.blk.model.read_only = bdev->read_only || d->read_only;
	d->num_queues = d->u.blk.model.num_queues;
	d->max_request = d->u.blk.model.max_request;
	d->max_outstanding = td->queues * td->queue_size;
	VRIO_INFO("%s: dev %u, %s backend, %llu sectors of %u bytes%s, %u queues of %u", d->name,
		  d->id, bdev->ops->name, (unsigned long long)d->u.blk.model.capacity,
		  IOS_SECTOR_SIZE, d->read_only ? ", read-only" : "", td->queues, td->queue_size);
	return 0;
}

static void blk_close(struct ios_server *srv, struct ios_device *d)
{
	ios_bdev_close(d->u.blk.bdev);
	d->u.blk.bdev = NULL;
}

static void blk_describe(const struct ios_device *d, Vrio__AttachReply *ar)
{
	const struct ios_blk_dev *m = &d->u.blk.model;

	ar->type = VRIO__DEVICE_TYPE__DEVICE_TYPE_BLK;
	ar->features = m->features;
	ar->config.data = (uint8_t *)m->config;
	ar->config.len = sizeof(m->config);
	ar->num_queues = m->num_queues;
	ar->queue_size = m->queue_size;
	ar->max_request = m->max_request;
}

static int blk_reconfigure(struct ios_device *d, const struct vrio_topo_device *td, bool apply,
			   char *why, size_t n)
{
	if (!td->read_only && d->u.blk.bdev->read_only) {
		snprintf(why, n, "device '%s': read_only cannot become false: its backend was opened read-only; remove it and add it back",
			 d->name);
		return -EPERM;
	}
	if (apply) {
		__atomic_store_n(&d->read_only, td->read_only, __ATOMIC_RELEASE);
		VRIO_NOTICE("%s: now %s", d->name, td->read_only ? "read-only" : "writable");
	}
	return 0;
}

/* ---- the channel's poller, on the home reactor ---- */

static void blk_finish(struct ios_req *req);

/* The answer held back by the test hook goes on once its time is up. */
static int blk_release_held(struct ios_device *d, uint64_t now)
{
	struct ios_req *req = d->u.blk.held;

	if (!req || now < d->u.blk.held_until)
		return 0;
	d->u.blk.held = NULL;
	VRIO_NOTICE("%s: test hook: answer to request %#x (%s at sector %llu) released", d->name,
		    req->frame.id, ios_blk_op_name(req->u.blk.op),
		    (unsigned long long)req->u.blk.sector);
	d->u.blk.at_backend--;
	ios_chain_finish(req, blk_finish);
	return 1;
}

static int blk_chan_poll(struct ios_poller *p)
{
	struct ios_device *d = container_of(p, struct ios_device, u.blk.poller);
	int rc, work;

	if (!d->u.blk.at_backend)
		return 0;
	d->u.blk.poll_now = 0;
	rc = ios_bdev_poll(d->u.blk.chan, IOS_POLL_BUDGET);
	d->u.blk.poll_now = 0;
	work = rc > 0 ? rc : 0;
	if (d->u.blk.held)
		work += blk_release_held(d, ios_reactor_now(d->home));
	return work;
}

static int blk_chan_sleep(struct ios_poller *p)
{
	struct ios_device *d = container_of(p, struct ios_device, u.blk.poller);
	uint64_t now, left;

	if (d->u.blk.held) {
		now = ios_reactor_now(d->home);
		if (now >= d->u.blk.held_until)
			return 0;
		left = (d->u.blk.held_until - now + 999999) / 1000000;
		/* Whatever else is at the backend has its descriptor. */
		if (d->u.blk.chan_ev.fd < 0 && d->u.blk.at_backend > 1)
			return 0;
		return left > 1000 ? 1000 : (int)left;
	}
	/* A backend without a descriptor completes only from poll(); what
	 * a stage holds (a throttle's queue) is not its to wait for. */
	if (d->u.blk.chan_ev.fd < 0)
		return d->u.blk.at_backend ? 0 : -1;
	return -1;
}

static void blk_chan_ready(struct ios_evsrc *e, uint32_t events)
{
	uint64_t v;

	/* Reset the eventfd; the poll that follows finds the work. */
	if (read(e->fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		VRIO_ERR_RL("backend eventfd read: %s", strerror(errno));
}

static int blk_place(struct ios_device *d, struct ios_reactor *r)
{
	int rc;

	rc = ios_bdev_chan_open(d->u.blk.bdev, d->max_outstanding, &d->u.blk.chan);
	if (rc < 0)
		return rc;
	d->u.blk.poller.name = d->name;
	d->u.blk.poller.poll = blk_chan_poll;
	d->u.blk.poller.sleep = blk_chan_sleep;
	d->u.blk.chan_ev.fd = ios_bdev_chan_fd(d->u.blk.chan);
	d->u.blk.chan_ev.armed = 0;
	d->u.blk.chan_ev.ready = blk_chan_ready;
	ios_poller_register(r, &d->u.blk.poller);
	ios_reactor_watch(r, &d->u.blk.chan_ev, EPOLLIN);
	return 0;
}

static void blk_unplace(struct ios_device *d, struct ios_reactor *r)
{
	ios_reactor_watch(r, &d->u.blk.chan_ev, 0);
	ios_poller_unregister(&d->u.blk.poller);
	ios_bdev_chan_close(d->u.blk.chan);
	d->u.blk.chan = NULL;
}

/* ---- requests ---- */

static void blk_finish(struct ios_req *req)
{
	struct ios_device *d = req->dev;
	struct ios_dev_stats *st = &d->stats;
	struct ios_blk_req *b = &req->u.blk;

	vrio_counter_add(&st->requests[b->op], 1);
	if (b->no_status) {
		vrio_counter_add(&st->err_protocol, 1);
		VRIO_ERR_RL("%s: %s request without a writable byte", d->name,
			    ios_blk_op_name(b->op));
	} else if (b->status == VIRTIO_BLK_S_OK) {
		if (b->op == IOS_BLK_OP_READ)
			vrio_counter_add(&st->bytes_read, b->len);
		else if (b->op == IOS_BLK_OP_WRITE)
			vrio_counter_add(&st->bytes_written, b->len);
	} else if (b->status == VIRTIO_BLK_S_UNSUPP) {
		vrio_counter_add(&st->err_unsupp, 1);
	} else {
		vrio_counter_add(&st->err_ioerr, 1);
		if (b->error)
			VRIO_ERR_RL("%s: %s at sector %llu failed: %s", d->name,
				    ios_blk_op_name(b->op), (unsigned long long)b->sector,
				    strerror(-b->error));
	}
	req->frame.len = ios_blk_resp(&d->u.blk.model, b, req->buf);
	req->lent = ios_blk_lent(b);
	req->lent_len = req->lent ? b->len : 0;
	ios_req_done(req);
}

static bool blk_op_writes(enum ios_blk_op op)
{
	return op == IOS_BLK_OP_WRITE || op == IOS_BLK_OP_FLUSH || op == IOS_BLK_OP_DISCARD ||
	       op == IOS_BLK_OP_WRITE_ZEROES;
}

/*
 * A write the backend took under the host's lease finished after it had
 * lapsed: the kernel held it (an io_uring worker stops with a stopped
 * process and runs on when it resumes). If the host has moved the device
 * since, this write may have landed over its standby's newer data: the
 * window lease.h names, which only fencing in the storage closes. Said
 * once per device in a while, counted always.
 */
static void blk_landed_late(struct ios_device *d, const struct ios_req *req)
{
	vrio_counter_add(&d->stats.late_writes, 1);
	VRIO_WARN_RL("%s: %s at sector %llu (%u bytes) completed after the host's lease had lapsed: "
		     "the kernel held it; if the host moved the device meanwhile, it may have "
		     "landed over newer data", d->name, ios_blk_op_name(req->u.blk.op),
		     (unsigned long long)req->u.blk.sector, req->u.blk.len);
}

/* The backend is done: back through the stages. */
static void blk_done(struct ios_blk_req *b)
{
	struct ios_req *req = container_of(b, struct ios_req, u.blk);
	struct ios_device *d = req->dev;
	uint32_t ms;

	/* Completions come from the channel's poll (bdev.h): the ones of a
	 * poll share its clock, read when the first came (after every one of
	 * them landed). */
	if (!d->u.blk.poll_now)
		d->u.blk.poll_now = vrio_now_ns();
	req->t_done = d->u.blk.poll_now;
	if (blk_op_writes(b->op) && !ios_session_may_write(req->s, req->t_done))
		blk_landed_late(d, req);
	/* Reads and writes only: a flush held would hold the guest's later
	 * writes behind it (its block layer orders them), not pass them. */
	if (__builtin_expect(__atomic_load_n(&d->u.blk.hold_ms, __ATOMIC_RELAXED) != 0, 0) &&
	    !d->u.blk.held && (b->op == IOS_BLK_OP_READ || b->op == IOS_BLK_OP_WRITE) &&
	    (ms = __atomic_exchange_n(&d->u.blk.hold_ms, 0, __ATOMIC_ACQ_REL))) {
		/* Still at the backend, as far as the poller and a move
		 * know, until released. */
		d->u.blk.held = req;
		d->u.blk.held_until = ios_reactor_now(d->home) + (uint64_t)ms * 1000000;
		VRIO_NOTICE("%s: test hook: holding back the answer to request %#x (%s at sector %llu) for %u ms",
			    d->name, req->frame.id, ios_blk_op_name(b->op),
			    (unsigned long long)b->sector, ms);
		return;
	}
	d->u.blk.at_backend--;
	ios_chain_finish(req, blk_finish);
}

/* A late write: dropped, no answer (the host has given up on this
 * connection and re-sends it elsewhere), the stages unwound. */
static void blk_fenced_finish(struct ios_req *req)
{
	req->frame.type = 0;
	req->frame.len = 0;
	ios_req_done(req);
}

/* Past the stages: to the backend, if the host's lease still allows. */
static void blk_submit(struct ios_req *req)
{
	struct ios_device *d = req->dev;
	/* One clock read for the lease and the breakdown (vDSO, no syscall). */
	uint64_t now = vrio_now_ns();

	if (blk_op_writes(req->u.blk.op) && !ios_session_may_write(req->s, now)) {
		if (vrio_counter_get(&d->stats.fenced) == 0)
			VRIO_NOTICE("%s: the host's lease lapsed: late writes are dropped, "
				    "not executed", d->name);
		vrio_counter_add(&d->stats.fenced, 1);
		ios_session_fenced(req->s);
		req->u.blk.status = VIRTIO_BLK_S_IOERR;
		ios_chain_finish(req, blk_fenced_finish);
		return;
	}
	d->u.blk.at_backend++;
	req->t_submit = now;
	/* No stage comes back through a read's data: the backend may lend. */
	req->u.blk.lend = req->chain == NULL;
	if (ios_blk_submit(&req->u.blk, d->u.blk.chan, req->buf) == 0)
		return;
	d->u.blk.at_backend--;
	ios_chain_finish(req, blk_finish);
}

static void blk_request(struct ios_device *d, struct ios_req *req, const void *payload)
{
	struct ios_blk_dev *m = &d->u.blk.model;
	struct ios_blk_req *b = &req->u.blk;
	bool refuse = __atomic_load_n(&d->removing, __ATOMIC_RELAXED);

	m->read_only = m->bdev->read_only || __atomic_load_n(&d->read_only, __ATOMIC_RELAXED);
	b->done = blk_done;
	ios_blk_parse(m, payload, req->in_len, req->in_arg, b);
	if (ios_req_reserve(req, ios_blk_buf_len(b)) < 0) {
		VRIO_ERR_RL("%s: out of memory for a %u-byte request", d->name,
			    ios_blk_buf_len(b));
		refuse = true;
		/* The status byte alone still fits the smallest buffer. */
		b->wcap = b->wcap && req->cap >= b->wcap ? b->wcap : (req->cap ? 1 : 0);
		b->no_status = b->wcap == 0;
	}
	if (refuse && b->backend) {
		/* Removed (or starved): answer, and leave the backend alone. */
		b->backend = false;
		b->status = VIRTIO_BLK_S_IOERR;
		vrio_counter_add(&d->stats.err_refused, 1);
	}
	if (!b->backend) {
		blk_finish(req);
		return;
	}
	/* Stages may hold it past the lent payload's life. */
	ios_blk_take_data(b, req->buf);
	ios_chain_start(d, req, blk_submit, blk_finish);
}

/* ---- metrics ---- */

static void blk_metrics(struct ios_server *srv, struct vrio_mw *w)
{
	static const struct {
		const char *reason;
		size_t off;
	} reasons[] = {
		{ "ioerr", offsetof(struct ios_dev_stats, err_ioerr) },
		{ "unsupp", offsetof(struct ios_dev_stats, err_unsupp) },
		{ "protocol", offsetof(struct ios_dev_stats, err_protocol) },
		{ "guest", offsetof(struct ios_dev_stats, err_guest) },
		{ "refused", offsetof(struct ios_dev_stats, err_refused) },
	};
	const struct ios_dev_ops *ops = &ios_blk_dev_ops;
	struct ios_device *d;
	char labels[256];

	vrio_mw_family(w, "vrio_ioserver_requests_total", "counter",
		       "Requests completed, by device and operation.");
	for (d = ios_device_next(srv, NULL, ops); d; d = ios_device_next(srv, d, ops)) {
		for (unsigned op = 0; op < ops->n_ops; op++) {
			snprintf(labels, sizeof(labels), "%s,op=\"%s\"", d->label, ops->op_names[op]);
			vrio_mw_u64(w, "vrio_ioserver_requests_total", labels,
				    vrio_counter_get(&d->stats.requests[op]));
		}
	}
	vrio_mw_family(w, "vrio_ioserver_bytes_total", "counter",
		       "Bytes read from and written to the backend for guests.");
	for (d = ios_device_next(srv, NULL, ops); d; d = ios_device_next(srv, d, ops)) {
		snprintf(labels, sizeof(labels), "%s,direction=\"read\"", d->label);
		vrio_mw_u64(w, "vrio_ioserver_bytes_total", labels,
			    vrio_counter_get(&d->stats.bytes_read));
		snprintf(labels, sizeof(labels), "%s,direction=\"write\"", d->label);
		vrio_mw_u64(w, "vrio_ioserver_bytes_total", labels,
			    vrio_counter_get(&d->stats.bytes_written));
	}
	vrio_mw_family(w, "vrio_ioserver_fenced_requests_total", "counter",
		       "Writes dropped unexecuted because the host's lease had lapsed (late requests).");
	for (d = ios_device_next(srv, NULL, ops); d; d = ios_device_next(srv, d, ops))
		vrio_mw_u64(w, "vrio_ioserver_fenced_requests_total", d->label,
			    vrio_counter_get(&d->stats.fenced));
	vrio_mw_family(w, "vrio_ioserver_late_writes_total", "counter",
		       "Writes submitted under the host's lease that completed after it lapsed "
		       "(held by the kernel: a standby may have written the same blocks since).");
	for (d = ios_device_next(srv, NULL, ops); d; d = ios_device_next(srv, d, ops))
		vrio_mw_u64(w, "vrio_ioserver_late_writes_total", d->label,
			    vrio_counter_get(&d->stats.late_writes));
	vrio_mw_family(w, "vrio_ioserver_errors_total", "counter",
		       "Requests answered with IOERR or UNSUPP, malformed requests, devices the guest "
		       "broke, and requests refused while the device was being removed.");
	for (d = ios_device_next(srv, NULL, ops); d; d = ios_device_next(srv, d, ops)) {
		for (size_t k = 0; k < sizeof(reasons) / sizeof(reasons[0]); k++) {
			snprintf(labels, sizeof(labels), "%s,reason=\"%s\"", d->label,
				 reasons[k].reason);
			vrio_mw_u64(w, "vrio_ioserver_errors_total", labels,
				    vrio_counter_get((const uint64_t *)((const char *)&d->stats +
									reasons[k].off)));
		}
	}
	vrio_mw_family(w, "vrio_ioserver_request_latency_seconds", "histogram",
		       "From a request's arrival to its response being queued for sending.");
	for (d = ios_device_next(srv, NULL, ops); d; d = ios_device_next(srv, d, ops))
		vrio_mw_hist(w, "vrio_ioserver_request_latency_seconds", d->label,
			     &d->stats.latency);
	vrio_mw_family(w, "vrio_ioserver_hop_seconds", "histogram",
		       "Where a request's time at the io-server goes, by hop: queue (arrival to the "
		       "backend's submit), backend (submit to completion), respond (completion to "
		       "the response queued for sending).");
	for (d = ios_device_next(srv, NULL, ops); d; d = ios_device_next(srv, d, ops)) {
		for (unsigned h = 0; h < IOS_NR_HOPS; h++) {
			snprintf(labels, sizeof(labels), "%s,hop=\"%s\"", d->label, ios_hop_names[h]);
			vrio_mw_hist(w, "vrio_ioserver_hop_seconds", labels, &d->stats.hop[h]);
		}
	}
}

static int blk_hold(struct ios_device *d, uint32_t ms)
{
	uint32_t none = 0;

	if (!__atomic_compare_exchange_n(&d->u.blk.hold_ms, &none, ms, false, __ATOMIC_ACQ_REL,
					 __ATOMIC_ACQUIRE))
		return -EBUSY;
	VRIO_WARN("%s: test hook: the next read or write answer from the backend will be held back %u ms",
		  d->name, ms);
	return 0;
}

const struct ios_dev_ops ios_blk_dev_ops = {
	.name = "blk",
	.type = VRIO_DEV_BLK,
	.frame_type = VRIO_FRAME_REQ,
	.op_names = ios_blk_op_names,
	.n_ops = IOS_BLK_OP_COUNT,
	.open = blk_open,
	.close = blk_close,
	.describe = blk_describe,
	.reconfigure = blk_reconfigure,
	.place = blk_place,
	.unplace = blk_unplace,
	.request = blk_request,
	.metrics = blk_metrics,
	.hold = blk_hold,
};

/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The io-server's control socket methods (JSON-RPC 2.0, common/ctl.h), run
 * on the main thread: status, devices, reload, move. The README documents
 * them; vrioctl renders them.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ctl.h"
#include "ioserver_internal.h"
#include "log.h"
#include "reload.h"

#define MOVE_TIMEOUT_NS (10ull * 1000000000ull)

static void rpc_status(void *arg, struct vrio_ctl_req *req, const json_t *params)
{
	struct ios_server *srv = arg;
	json_t *reactors = json_array(), *r;
	struct ios_reactor *rx;

	for (unsigned i = 0; reactors && i < srv->n_reactors; i++) {
		rx = srv->reactors[i];
		r = json_pack("{s:i, s:f, s:i, s:i, s:b}", "id", (int)i, "busy",
			      ios_reactor_busy(srv, i), "devices",
			      (int)__atomic_load_n(&rx->n_devices, __ATOMIC_RELAXED), "sessions",
			      (int)__atomic_load_n(&rx->n_sessions, __ATOMIC_RELAXED), "parked",
			      (int)ios_reactor_parked(rx));
		json_array_append_new(reactors, r);
	}
	vrio_ctl_reply(req, json_pack("{s:s, s:s, s:s, s:i, s:f, s:o, s:o}",
		"daemon", "vrio-ioserver", "node", srv->name, "version", VRIO_VERSION,
		"pid", (int)getpid(), "uptime_s", (double)(vrio_now_ns() - srv->started_ns) / 1e9,
		"config", vrio_config_json(&srv->cfg, srv->config_path), "reactors", reactors));
}

static const char *device_state(const struct ios_device *d)
{
	bool owner = __atomic_load_n(&d->owner, __ATOMIC_ACQUIRE) != NULL;
	bool home = __atomic_load_n(&d->home, __ATOMIC_ACQUIRE) != NULL;

	if (__atomic_load_n(&d->removing, __ATOMIC_ACQUIRE))
		return owner ? "draining" : "removed";
	if (owner)
		return home ? "attached" : "attaching";
	return "detached";
}

/* The stages' names, in order (the main thread is the one that swaps
 * chains, so the one read here stays). */
static json_t *chain_json(struct ios_device *d)
{
	struct ios_chain *c = __atomic_load_n(&d->chain, __ATOMIC_ACQUIRE);
	json_t *a = json_array();

	for (unsigned i = 0; a && c && i < c->n; i++)
		json_array_append_new(a, json_string(vrio_stage_kind_name(c->stages[i]->ops->kind)));
	return a;
}

/* Stages with a live state of their own add it under their name
 * ("mirror": {"state": ...}). */
static void stages_status(struct ios_device *d, json_t *o)
{
	struct ios_chain *c = __atomic_load_n(&d->chain, __ATOMIC_ACQUIRE);
	json_t *s;

	for (unsigned i = 0; o && c && i < c->n; i++) {
		if (!c->stages[i]->ops->status)
			continue;
		s = c->stages[i]->ops->status(c->stages[i]);
		if (s)
			json_object_set_new(o, vrio_stage_kind_name(c->stages[i]->ops->kind), s);
	}
}

static json_t *device_json(struct ios_server *srv, struct ios_device *d)
{
	const struct ios_dev_stats *st = &d->stats;
	struct ios_reactor *home = __atomic_load_n(&d->home, __ATOMIC_ACQUIRE);
	uint64_t requests = 0, errors;
	json_t *o;

	for (unsigned op = 0; op < d->ops->n_ops; op++)
		requests += vrio_counter_get(&st->requests[op]);
	errors = vrio_counter_get(&st->err_ioerr) + vrio_counter_get(&st->err_unsupp) +
		 vrio_counter_get(&st->err_protocol) + vrio_counter_get(&st->err_guest) +
		 vrio_counter_get(&st->err_refused);
	o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:o, s:o, s:i, s:I, s:I, s:I, s:I, s:I, s:I}",
		"name", d->name, "type", d->ops->name, "state", device_state(d), "host", d->host,
		"io_server", srv->name, "interpose", chain_json(d),
		"reactor", home ? json_integer(home->idx) : json_null(),
		"in_flight", (int)__atomic_load_n(&d->inflight, __ATOMIC_RELAXED),
		"requests", (json_int_t)requests,
		"bytes", (json_int_t)(vrio_counter_get(&st->bytes_read) +
				      vrio_counter_get(&st->bytes_written)),
		"errors", (json_int_t)errors, "moves", (json_int_t)vrio_counter_get(&st->moves),
		"fenced", (json_int_t)vrio_counter_get(&st->fenced),
		"late_writes", (json_int_t)vrio_counter_get(&st->late_writes));
	stages_status(d, o);
	return o;
}

static void rpc_devices(void *arg, struct vrio_ctl_req *req, const json_t *params)
{
	struct ios_server *srv = arg;
	json_t *list = json_array();
	struct ios_device *d;

	for (d = ios_device_next(srv, NULL, NULL); list && d; d = ios_device_next(srv, d, NULL))
		json_array_append_new(list, device_json(srv, d));
	vrio_ctl_reply(req, json_pack("{s:o}", "devices", list));
}

static void rpc_reload(void *arg, struct vrio_ctl_req *req, const json_t *params)
{
	struct ios_server *srv = arg;
	struct vrio_reload_report res = { 0 };

	ios_server_reload(srv, &res);
	vrio_reload_reply(req, &res, &srv->cfg);
	vrio_reload_report_free(&res);
}

static void rpc_move(void *arg, struct vrio_ctl_req *req, const json_t *params)
{
	struct timespec ts = { 0, 100000 };
	struct ios_server *srv = arg;
	struct ios_move_result *res;
	const char *name = NULL;
	struct ios_device *d;
	uint64_t deadline;
	json_int_t to = -1;
	int rc;

	if (!params || json_unpack((json_t *)params, "{s:s, s:I}", "device", &name, "reactor",
				   &to) < 0) {
		vrio_ctl_error(req, VRIO_CTL_INVALID_PARAMS,
			       "move takes {\"device\": NAME, \"reactor\": N}");
		return;
	}
	d = ios_device_find(srv, name);
	if (!d) {
		vrio_ctl_error(req, VRIO_CTL_EFAILED, "no device %s on %s", name, srv->name);
		return;
	}
	if (to < 0 || to >= (json_int_t)srv->n_reactors) {
		vrio_ctl_error(req, VRIO_CTL_INVALID_PARAMS, "reactor %lld: %s has reactors 0 to %u",
			       (long long)to, srv->name, srv->n_reactors - 1);
		return;
	}
	res = calloc(1, sizeof(*res));
	if (!res) {
		vrio_ctl_error(req, VRIO_CTL_INTERNAL_ERROR, "out of memory");
		return;
	}
	res->refs = 1;
	rc = ios_device_move(srv, d, srv->reactors[to], res);
	if (rc < 0) {
		vrio_ctl_error(req, VRIO_CTL_EFAILED, "%s: cannot move: %s", name,
			       rc == -ENOTCONN ? "not attached" : strerror(-rc));
		ios_move_result_put(res);
		return;
	}
	deadline = vrio_now_ns() + MOVE_TIMEOUT_NS;
	while (!__atomic_load_n(&res->done, __ATOMIC_ACQUIRE) && vrio_now_ns() < deadline)
		nanosleep(&ts, NULL);
	if (!__atomic_load_n(&res->done, __ATOMIC_ACQUIRE))
		vrio_ctl_error(req, VRIO_CTL_EFAILED, "%s: the move did not end within 10 s", name);
	else if (res->rc < 0)
		vrio_ctl_error(req, VRIO_CTL_EFAILED, "%s: cannot move: %s", name,
			       res->rc == -ENOTCONN ? "not attached" :
			       res->rc == -EBUSY ? "attaching, detaching or moving" :
			       strerror(-res->rc));
	else
		vrio_ctl_reply(req, json_pack("{s:s, s:i, s:i, s:I}", "device", name, "from",
					      (int)res->from, "to", (int)res->to, "duration_us",
					      (json_int_t)((res->t_end - res->t_start) / 1000)));
	if (res->rc == 0 && __atomic_load_n(&res->done, __ATOMIC_ACQUIRE) && res->from != res->to)
		VRIO_NOTICE("%s: %s moved from reactor %u to %u in %llu us", srv->name, name,
			    res->from, res->to,
			    (unsigned long long)((res->t_end - res->t_start) / 1000));
	ios_move_result_put(res);
}

/* The hold_ms form of bdev_fault: the device's next answer from its own
 * backend is held back. */
static void bdev_hold(struct ios_server *srv, struct vrio_ctl_req *req, const char *name,
		      json_int_t ms)
{
	struct ios_device *d = ios_device_find(srv, name);
	int rc;

	if (!d) {
		vrio_ctl_error(req, VRIO_CTL_EFAILED, "no device %s on %s", name, srv->name);
		return;
	}
	if (ms <= 0 || ms > 60000) {
		vrio_ctl_error(req, VRIO_CTL_INVALID_PARAMS, "hold_ms: 1 to 60000 expected");
		return;
	}
	if (!d->ops->hold) {
		vrio_ctl_error(req, VRIO_CTL_EFAILED, "%s: a %s device has no backend to hold",
			       name, d->ops->name);
		return;
	}
	rc = d->ops->hold(d, (uint32_t)ms);
	if (rc < 0)
		vrio_ctl_error(req, VRIO_CTL_EFAILED, "%s: %s", name,
			       rc == -EBUSY ? "a hold is already armed" : strerror(-rc));
	else
		vrio_ctl_reply(req, json_pack("{s:s, s:I}", "device", name, "hold_ms", ms));
}

/* A test hook: the backend of a device's stage (a mirror) fails every io
 * while `fail` is true; or, with hold_ms, the device's next answer from
 * its own backend is held back that long while later ones pass it. */
static void rpc_bdev_fault(void *arg, struct vrio_ctl_req *req, const json_t *params)
{
	struct ios_server *srv = arg;
	const char *name = NULL, *target = "mirror";
	struct ios_stage *st = NULL;
	struct ios_device *d;
	struct ios_chain *c;
	json_int_t hold_ms = 0;
	int fail = 0, rc;

	if (params && json_unpack((json_t *)params, "{s:s, s:I}", "device", &name, "hold_ms",
				  &hold_ms) == 0 && json_object_size(params) == 2) {
		bdev_hold(srv, req, name, hold_ms);
		return;
	}
	if (!params || json_unpack((json_t *)params, "{s:s, s?s, s:b}", "device", &name, "target",
				   &target, "fail", &fail) < 0) {
		vrio_ctl_error(req, VRIO_CTL_INVALID_PARAMS,
			       "bdev_fault takes {\"device\": NAME, \"target\": \"mirror\", \"fail\": BOOL} or {\"device\": NAME, \"hold_ms\": MS}");
		return;
	}
	d = ios_device_find(srv, name);
	if (!d) {
		vrio_ctl_error(req, VRIO_CTL_EFAILED, "no device %s on %s", name, srv->name);
		return;
	}
	c = __atomic_load_n(&d->chain, __ATOMIC_ACQUIRE);
	for (unsigned i = 0; c && i < c->n && !st; i++)
		if (!strcmp(vrio_stage_kind_name(c->stages[i]->ops->kind), target) &&
		    c->stages[i]->ops->fault)
			st = c->stages[i];
	if (!st) {
		vrio_ctl_error(req, VRIO_CTL_EFAILED, "%s: no stage '%s' with a backend of its own",
			       name, target);
		return;
	}
	rc = st->ops->fault(st, fail);
	if (rc < 0)
		vrio_ctl_error(req, VRIO_CTL_EFAILED, "%s: %s: %s", name, target, strerror(-rc));
	else
		vrio_ctl_reply(req, json_pack("{s:s, s:s, s:b}", "device", name, "target", target,
					      "fail", fail));
}

static const struct vrio_ctl_method ios_methods[] = {
	{ "status", rpc_status, "the daemon, its configuration and its reactors" },
	{ "devices", rpc_devices, "each device: state, placement, counters" },
	{ "reload", rpc_reload, "re-read the topology file and apply the difference" },
	{ "move", rpc_move, "move {device, reactor}: serve a device on another reactor" },
	{ "bdev_fault", rpc_bdev_fault,
	  "test hook: {device, target: \"mirror\", fail}: that backend fails every io, or not; "
	  "{device, hold_ms}: the device's next read or write answer is held back MS ms" },
};

int ios_rpc_open(struct ios_server *srv, struct vrio_ctl **out)
{
	return vrio_ctl_open(srv->self->control, ios_methods,
			     sizeof(ios_methods) / sizeof(ios_methods[0]), srv, out);
}

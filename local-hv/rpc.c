/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * vrio-localhv's control socket methods (JSON-RPC 2.0, common/ctl.h), on
 * the main thread: status, devices, reload, move. The README documents them.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl.h"
#include "localhv.h"
#include "log.h"
#include "reload.h"

static void rpc_status(void *arg, struct vrio_ctl_req *req, const json_t *params)
{
	struct lhv *l = arg;
	uint64_t busy = vrio_counter_get(&l->st.busy_ns), idle = vrio_counter_get(&l->st.idle_ns);
	uint64_t db = busy - l->seen_busy_ns, di = idle - l->seen_idle_ns;
	unsigned n = 0;

	l->seen_busy_ns = busy;
	l->seen_idle_ns = idle;
	for (unsigned i = 0; i < l->n_slots; i++)
		n += l->devs[i] != NULL;
	vrio_ctl_reply(req, json_pack("{s:s, s:s, s:s, s:i, s:f, s:o, s:[{s:i, s:f, s:i, s:b}]}",
		"daemon", "vrio-localhv", "node", l->node, "version", VRIO_VERSION,
		"pid", (int)getpid(), "uptime_s", (double)(vrio_now_ns() - l->started_ns) / 1e9,
		"config", vrio_config_json(&l->cfg, l->config_path),
		"reactors", "id", 0, "busy", db + di ? (double)db / (double)(db + di) : 0.0,
		"devices", (int)n, "parked", 0));
}

static json_t *device_json(struct lhv_dev *d)
{
	const struct lhv_dev_stats *st = &d->st;
	uint64_t errors = vrio_counter_get(&st->dropped_responses);

	for (unsigned k = 0; k < LHV_WALK_NR_ERRORS; k++)
		errors += vrio_counter_get(&st->chain_errors[k]);
	for (unsigned k = 0; k < LHV_NET_NR_DROPS; k++)
		errors += vrio_counter_get(&st->net_drops[k]);
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s?, s:n, s:i, s:I, s:I, s:I, s:I, s:I, s:I}",
		"name", d->name, "type", vrio_dev_type_name(d->type), "state", lhv_dev_state_name(d),
		"host", d->l->node, "io_server", lhv_dev_up(d)->name,
		"standby", d->cand[1] ? d->cand[1]->name : NULL, "reactor",
		"in_flight", (int)__atomic_load_n(&d->inflight, __ATOMIC_RELAXED),
		"requests", (json_int_t)vrio_counter_get(&st->requests),
		"bytes", (json_int_t)(vrio_counter_get(&st->bytes_out) +
				      vrio_counter_get(&st->bytes_in)),
		"errors", (json_int_t)errors,
		"moves", (json_int_t)(vrio_counter_get(&d->failovers) + vrio_counter_get(&d->failbacks)),
		"failovers", (json_int_t)vrio_counter_get(&d->failovers),
		"failbacks", (json_int_t)vrio_counter_get(&d->failbacks));
}

static void rpc_devices(void *arg, struct vrio_ctl_req *req, const json_t *params)
{
	struct lhv *l = arg;
	json_t *list = json_array();

	for (unsigned i = 0; list && i < l->n_slots; i++)
		if (l->devs[i])
			json_array_append_new(list, device_json(l->devs[i]));
	vrio_ctl_reply(req, json_pack("{s:o}", "devices", list));
}

static void rpc_reload(void *arg, struct vrio_ctl_req *req, const json_t *params)
{
	struct lhv *l = arg;
	struct vrio_reload_report res = { 0 };

	lhv_reload(l, &res);
	vrio_reload_reply(req, &res, &l->cfg);
	vrio_reload_report_free(&res);
}

#define MOVE_TIMEOUT_NS (10ull * 1000000000ull)

/* Between a device's io-servers (its io_server and its standby). */
static void rpc_move(void *arg, struct vrio_ctl_req *req, const json_t *params)
{
	struct lhv *l = arg;
	const char *name = NULL, *to = NULL;
	struct lhv_upstream *from;
	struct lhv_dev *d;
	uint64_t t0;
	int rc;

	if (!params || json_unpack((json_t *)params, "{s:s, s:s}", "device", &name, "io_server",
				   &to) < 0) {
		vrio_ctl_error(req, VRIO_CTL_INVALID_PARAMS,
			       "move takes {\"device\": NAME, \"io_server\": NAME}");
		return;
	}
	pthread_mutex_lock(&l->lock);
	d = lhv_dev_find(l, name);
	pthread_mutex_unlock(&l->lock);
	if (!d) {
		vrio_ctl_error(req, VRIO_CTL_EFAILED, "no device %s on %s", name, l->node);
		return;
	}
	if (!d->cand[1]) {
		vrio_ctl_error(req, VRIO_CTL_EFAILED, "%s has no standby: it is served by %s only",
			       name, d->cand[0]->name);
		return;
	}
	from = lhv_dev_up(d);
	t0 = vrio_now_ns();
	rc = lhv_failover_move(l, d, to, MOVE_TIMEOUT_NS);
	if (rc == -EINVAL) {
		vrio_ctl_error(req, VRIO_CTL_INVALID_PARAMS, "%s is served by %s or %s, not %s", name,
			       d->cand[0]->name, d->cand[1]->name, to);
		return;
	}
	if (rc < 0) {
		vrio_ctl_error(req, VRIO_CTL_EFAILED, "%s: cannot move to %s: %s", name, to,
			       rc == -ETIMEDOUT ? "it did not drain and attach within 10 s" :
			       rc == -EHOSTUNREACH ? "it does not answer" : strerror(-rc));
		return;
	}
	vrio_ctl_reply(req, json_pack("{s:s, s:s, s:s, s:f}", "device", name, "from", from->name,
				      "to", to, "duration_us", (double)(vrio_now_ns() - t0) / 1e3));
}

static const struct vrio_ctl_method lhv_methods[] = {
	{ "status", rpc_status, "the daemon, its configuration and its poller" },
	{ "devices", rpc_devices, "each device: state, io-server, counters" },
	{ "reload", rpc_reload, "re-read the topology file and apply the difference" },
	{ "move", rpc_move, "move {device, io_server}: serve a device on its other io-server" },
};

int lhv_rpc_open(struct lhv *l, struct vrio_ctl **out)
{
	return vrio_ctl_open(l->host->control, lhv_methods,
			     sizeof(lhv_methods) / sizeof(lhv_methods[0]), l, out);
}

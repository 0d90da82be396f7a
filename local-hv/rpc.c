/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * vrio-localhv's control socket methods (JSON-RPC 2.0, common/ctl.h), on
 * the main thread: status, devices, reload. The README documents them.
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
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:n, s:i, s:I, s:I, s:I, s:i}",
		"name", d->name, "type", vrio_dev_type_name(d->type), "state", lhv_dev_state_name(d),
		"host", d->l->node, "io_server", d->up->name, "reactor",
		"in_flight", (int)__atomic_load_n(&d->inflight, __ATOMIC_RELAXED),
		"requests", (json_int_t)vrio_counter_get(&st->requests),
		"bytes", (json_int_t)(vrio_counter_get(&st->bytes_out) +
				      vrio_counter_get(&st->bytes_in)),
		"errors", (json_int_t)errors, "moves", 0);
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

static const struct vrio_ctl_method lhv_methods[] = {
	{ "status", rpc_status, "the daemon, its configuration and its poller" },
	{ "devices", rpc_devices, "each device: state, io-server, counters" },
	{ "reload", rpc_reload, "re-read the topology file and apply the difference" },
};

int lhv_rpc_open(struct lhv *l, struct vrio_ctl **out)
{
	return vrio_ctl_open(l->host->control, lhv_methods,
			     sizeof(lhv_methods) / sizeof(lhv_methods[0]), l, out);
}

/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The exposition, written on each scrape from the metrics server's thread.
 * It reads counters with relaxed atomics and never touches sessions; it
 * walks the device table under srv->lock, so a reload cannot free a device
 * under it. The device models write their own families (device.h).
 */
#include <stddef.h>
#include <stdio.h>

#include "ioserver_internal.h"

static void metrics_devices(struct ios_server *srv, struct vrio_mw *w)
{
	struct ios_device *d;
	struct ios_reactor *home;

	vrio_mw_family(w, "vrio_ioserver_iotlb_invalidations_total", "counter",
		       "vIOMMU invalidations local-hv forwarded for the device, acknowledged.");
	for (d = ios_device_next(srv, NULL, NULL); d; d = ios_device_next(srv, d, NULL))
		vrio_mw_u64(w, "vrio_ioserver_iotlb_invalidations_total", d->label,
			    vrio_counter_get(&d->stats.invalidations));

	vrio_mw_family(w, "vrio_ioserver_device_attached", "gauge",
		       "1 while a local-hv has the device attached.");
	for (d = ios_device_next(srv, NULL, NULL); d; d = ios_device_next(srv, d, NULL))
		vrio_mw_u64(w, "vrio_ioserver_device_attached", d->label,
			    __atomic_load_n(&d->owner, __ATOMIC_RELAXED) != NULL);

	vrio_mw_family(w, "vrio_ioserver_device_draining", "gauge",
		       "1 while a device removed by a reload waits for its host to detach it.");
	for (d = ios_device_next(srv, NULL, NULL); d; d = ios_device_next(srv, d, NULL))
		vrio_mw_u64(w, "vrio_ioserver_device_draining", d->label,
			    __atomic_load_n(&d->removing, __ATOMIC_RELAXED));

	vrio_mw_family(w, "vrio_ioserver_device_reactor", "gauge",
		       "The reactor a placed device's requests run on.");
	for (d = ios_device_next(srv, NULL, NULL); d; d = ios_device_next(srv, d, NULL)) {
		home = __atomic_load_n(&d->home, __ATOMIC_RELAXED);
		if (home)
			vrio_mw_u64(w, "vrio_ioserver_device_reactor", d->label, home->idx);
	}

	vrio_mw_family(w, "vrio_ioserver_device_moves_total", "counter",
		       "Moves of the device from one reactor to another.");
	for (d = ios_device_next(srv, NULL, NULL); d; d = ios_device_next(srv, d, NULL))
		vrio_mw_u64(w, "vrio_ioserver_device_moves_total", d->label,
			    vrio_counter_get(&d->stats.moves));
	ios_dev_models_metrics(srv, w);
	ios_stages_metrics(srv, w);
}

static void metrics_reactors(const struct ios_server *srv, struct vrio_mw *w)
{
	struct ios_balancer_stats bst;
	const struct ios_reactor *r;
	uint64_t conns = 0;
	char labels[32];
	unsigned i;

	vrio_mw_family(w, "vrio_ioserver_reactor_busy_seconds_total", "counter",
		       "Time each polling core spent on turns that found work.");
	for (i = 0; i < srv->n_reactors; i++) {
		r = srv->reactors[i];
		snprintf(labels, sizeof(labels), "reactor=\"%u\"", r->idx);
		vrio_mw_double(w, "vrio_ioserver_reactor_busy_seconds_total", labels,
			       (double)vrio_counter_get(&r->stats.busy_ns) / 1e9);
	}
	vrio_mw_family(w, "vrio_ioserver_reactor_idle_seconds_total", "counter",
		       "Time each polling core spent idle: empty turns and sleep.");
	for (i = 0; i < srv->n_reactors; i++) {
		r = srv->reactors[i];
		snprintf(labels, sizeof(labels), "reactor=\"%u\"", r->idx);
		vrio_mw_double(w, "vrio_ioserver_reactor_idle_seconds_total", labels,
			       (double)vrio_counter_get(&r->stats.idle_ns) / 1e9);
	}
	vrio_mw_family(w, "vrio_ioserver_reactor_wakeups_total", "counter",
		       "Times each polling core went to sleep and woke again.");
	for (i = 0; i < srv->n_reactors; i++) {
		r = srv->reactors[i];
		snprintf(labels, sizeof(labels), "reactor=\"%u\"", r->idx);
		vrio_mw_u64(w, "vrio_ioserver_reactor_wakeups_total", labels,
			    vrio_counter_get(&r->stats.wakeups));
	}

	vrio_mw_family(w, "vrio_ioserver_reactor_busy_ratio", "gauge",
		       "Each polling core's busy fraction over the balancer's last period: time "
		       "in turns that found work over wall time (spinning counts as idle).");
	for (i = 0; i < srv->n_reactors; i++) {
		snprintf(labels, sizeof(labels), "reactor=\"%u\"", i);
		vrio_mw_double(w, "vrio_ioserver_reactor_busy_ratio", labels,
			       ios_balancer_busy_ppm(srv, i) / 1e6);
	}
	vrio_mw_family(w, "vrio_ioserver_reactor_parked", "gauge",
		       "1 while the polling core is parked: blocked in the kernel, no devices.");
	for (i = 0; i < srv->n_reactors; i++) {
		snprintf(labels, sizeof(labels), "reactor=\"%u\"", i);
		vrio_mw_u64(w, "vrio_ioserver_reactor_parked", labels,
			    ios_reactor_parked(srv->reactors[i]));
	}
	vrio_mw_family(w, "vrio_ioserver_reactors_active", "gauge",
		       "Polling cores not parked, between cores.min and cores.max.");
	vrio_mw_u64(w, "vrio_ioserver_reactors_active", "", ios_balancer_active(srv));
	ios_balancer_stats(srv, &bst);
	vrio_mw_family(w, "vrio_ioserver_reactor_unparks_total", "counter",
		       "Polling cores unparked because the active ones stayed busy.");
	vrio_mw_u64(w, "vrio_ioserver_reactor_unparks_total", "", bst.unparks);
	vrio_mw_family(w, "vrio_ioserver_reactor_parks_total", "counter",
		       "Polling cores parked once the load fit on fewer.");
	vrio_mw_u64(w, "vrio_ioserver_reactor_parks_total", "", bst.parks);
	vrio_mw_family(w, "vrio_ioserver_balancer_moves_total", "counter",
		       "Device moves the balancer made, by result.");
	vrio_mw_u64(w, "vrio_ioserver_balancer_moves_total", "result=\"ok\"", bst.moves);
	vrio_mw_u64(w, "vrio_ioserver_balancer_moves_total", "result=\"failed\"",
		    bst.moves_failed);

	vrio_mw_family(w, "vrio_ioserver_reactor_devices", "gauge",
		       "Devices placed on each reactor.");
	for (i = 0; i < srv->n_reactors; i++) {
		r = srv->reactors[i];
		snprintf(labels, sizeof(labels), "reactor=\"%u\"", r->idx);
		vrio_mw_u64(w, "vrio_ioserver_reactor_devices", labels,
			    __atomic_load_n(&r->n_devices, __ATOMIC_RELAXED));
	}

	for (i = 0; i < srv->n_reactors; i++)
		conns += __atomic_load_n(&srv->reactors[i]->n_sessions, __ATOMIC_RELAXED);
	vrio_mw_family(w, "vrio_ioserver_connections", "gauge", "Open local-hv connections.");
	vrio_mw_u64(w, "vrio_ioserver_connections", NULL, conns);
}

/* The switches: per port what went in and out and what was dropped. */
/* The ports in use of each network, the uplink last. */
static const struct ios_port *port_next(const struct ios_network *n, const struct ios_port *prev)
{
	unsigned i = prev ? (unsigned)(prev - n->slots) + 1 : 0;

	for (; i <= IOS_NET_MAX_PORTS; i++)
		if (__atomic_load_n(&n->slots[i].in_use, __ATOMIC_ACQUIRE))
			return &n->slots[i];
	return NULL;
}

static void metrics_switch(const struct ios_server *srv, struct vrio_mw *w)
{
	static const struct {
		const char *metric, *help, *dir;
		size_t off;
	} port_counters[] = {
		{ "vrio_ioserver_switch_frames_total", "Frames into the switch from a port, and out to it",
		  "in", offsetof(struct ios_port_stats, in_frames) },
		{ "vrio_ioserver_switch_frames_total", NULL, "out",
		  offsetof(struct ios_port_stats, out_frames) },
		{ "vrio_ioserver_switch_bytes_total", "Ethernet bytes into the switch from a port, and out to it",
		  "in", offsetof(struct ios_port_stats, in_bytes) },
		{ "vrio_ioserver_switch_bytes_total", NULL, "out",
		  offsetof(struct ios_port_stats, out_bytes) },
		{ "vrio_ioserver_switch_ecn_packets_total",
		  "TSO packets with the ECN bit (CWR set) into the switch from a port, and passed whole to it (a trunk or the uplink)",
		  "in", offsetof(struct ios_port_stats, ecn_in) },
		{ "vrio_ioserver_switch_ecn_packets_total", NULL, "out",
		  offsetof(struct ios_port_stats, ecn_out) },
	};
	static const struct {
		const char *metric, *help;
		size_t off;
	} net_counters[] = {
		{ "vrio_ioserver_switch_flooded_total",
		  "Frames flooded: broadcast, multicast or an unknown destination",
		  offsetof(struct ios_network, st.flooded) },
		{ "vrio_ioserver_switch_learned_total", "MAC addresses learned",
		  offsetof(struct ios_network, st.learned) },
		{ "vrio_ioserver_switch_moves_total", "Learned MAC addresses seen on another port",
		  offsetof(struct ios_network, st.moved) },
		{ "vrio_ioserver_switch_table_full_total",
		  "Learned addresses evicted while still live: the table was full",
		  offsetof(struct ios_network, st.table_full) },
	};
	static const struct {
		const char *metric, *help;
		size_t off;
	} offload_counters[] = {
		{ "vrio_ioserver_switch_gso_packets_total",
		  "Large (GSO) TCP packets segmented in software toward a port whose guest did not negotiate TSO",
		  offsetof(struct ios_port_stats, gso_packets) },
		{ "vrio_ioserver_switch_gso_segments_total",
		  "Wire-sized segments those packets were cut into",
		  offsetof(struct ios_port_stats, gso_segments) },
		{ "vrio_ioserver_switch_ecn_segmented_total",
		  "TSO packets with the ECN bit segmented in software toward a port's guest (no guest takes ECN)",
		  offsetof(struct ios_port_stats, ecn_segmented) },
		{ "vrio_ioserver_switch_csum_completed_total",
		  "Partial checksums completed in software toward a port whose guest did not negotiate GUEST_CSUM",
		  offsetof(struct ios_port_stats, csum_completed) },
		{ "vrio_ioserver_switch_offload_updates_total",
		  "Frames without a packet by which local-hv told the receive offloads of the port's guest",
		  offsetof(struct ios_port_stats, ol_updates) },
	};
	const struct ios_switch *sw = srv->sw;
	unsigned n_nets = __atomic_load_n(&sw->n_nets, __ATOMIC_ACQUIRE);
	const struct ios_network *n;
	const struct ios_port *p;
	char labels[352];

	for (size_t k = 0; k < sizeof(port_counters) / sizeof(port_counters[0]); k++) {
		if (port_counters[k].help)
			vrio_mw_family(w, port_counters[k].metric, "counter", port_counters[k].help);
		for (unsigned i = 0; i < n_nets; i++) {
			n = sw->nets[i];
			for (p = port_next(n, NULL); p; p = port_next(n, p)) {
				snprintf(labels, sizeof(labels), "%s,direction=\"%s\"", p->label,
					 port_counters[k].dir);
				vrio_mw_u64(w, port_counters[k].metric, labels,
					    vrio_counter_get((const uint64_t *)((const char *)&p->st +
										port_counters[k].off)));
			}
		}
	}
	vrio_mw_family(w, "vrio_ioserver_switch_drops_total", "counter",
		       "Frames from or to a port that the switch dropped, by reason");
	for (unsigned i = 0; i < n_nets; i++) {
		n = sw->nets[i];
		for (p = port_next(n, NULL); p; p = port_next(n, p)) {
			for (unsigned r = 0; r < IOS_NR_DROPS; r++) {
				snprintf(labels, sizeof(labels), "%s,reason=\"%s\"", p->label,
					 ios_port_drop_names[r]);
				vrio_mw_u64(w, "vrio_ioserver_switch_drops_total", labels,
					    vrio_counter_get(&p->st.drops[r]));
			}
		}
	}
	for (size_t k = 0; k < sizeof(offload_counters) / sizeof(offload_counters[0]); k++) {
		vrio_mw_family(w, offload_counters[k].metric, "counter", offload_counters[k].help);
		for (unsigned i = 0; i < n_nets; i++) {
			n = sw->nets[i];
			for (p = port_next(n, NULL); p; p = port_next(n, p))
				vrio_mw_u64(w, offload_counters[k].metric, p->label,
					    vrio_counter_get((const uint64_t *)((const char *)&p->st +
										offload_counters[k].off)));
		}
	}
	vrio_mw_family(w, "vrio_ioserver_switch_port_up", "gauge",
		       "1 while the port's device is attached or its trunk is up (an uplink always is)");
	for (unsigned i = 0; i < n_nets; i++) {
		n = sw->nets[i];
		for (p = port_next(n, NULL); p; p = port_next(n, p)) {
			vrio_mw_u64(w, "vrio_ioserver_switch_port_up", p->label,
				    __atomic_load_n(&p->reactor, __ATOMIC_RELAXED) >= 0);
		}
	}
	for (size_t k = 0; k < sizeof(net_counters) / sizeof(net_counters[0]); k++) {
		vrio_mw_family(w, net_counters[k].metric, "counter", net_counters[k].help);
		for (unsigned i = 0; i < n_nets; i++) {
			n = sw->nets[i];
			vrio_mw_u64(w, net_counters[k].metric, n->label,
				    vrio_counter_get((const uint64_t *)((const char *)n +
									net_counters[k].off)));
		}
	}
}

/* The connections' own counters (transport.h), by host, over reactors. */
static const char *conn_fill(const void *arg, unsigned h, struct vrio_conn_stats *st)
{
	const struct ios_server *srv = arg;

	for (unsigned i = 0; i < srv->n_reactors; i++)
		vrio_conn_stats_sum(st, &srv->rctx[i].conn_pub[h]);
	return srv->hosts[h].name;
}

/* Liveness (heartbeat.h) and access (control.c), by host, over reactors. */
static void metrics_heartbeats(struct ios_server *srv, struct vrio_mw *w)
{
	static const struct {
		const char *name, *help;
		size_t off;
	} fam[] = {
		{ "vrio_ioserver_heartbeats_sent_total",
		  "Heartbeats sent on an otherwise quiet connection",
		  offsetof(struct ios_rctx, hb_sent) },
		{ "vrio_ioserver_heartbeat_timeouts_total",
		  "Connections closed because nothing arrived for dead_after",
		  offsetof(struct ios_rctx, hb_timeouts) },
		{ "vrio_ioserver_auth_failures_total",
		  "Connections refused because the host did not prove its key",
		  offsetof(struct ios_rctx, auth_failures) },
		{ "vrio_ioserver_attach_refused_total",
		  "Attaches refused because the device belongs to another host",
		  offsetof(struct ios_rctx, attach_refused) },
		{ "vrio_ioserver_lease_lapses_total",
		  "Times the host's write lease lapsed: no write runs until an echo renews it",
		  offsetof(struct ios_rctx, lease_lapses) },
	};
	unsigned n = __atomic_load_n(&srv->n_hosts, __ATOMIC_ACQUIRE);
	char name[128], lab[160];
	uint64_t v;

	for (size_t k = 0; k < sizeof(fam) / sizeof(fam[0]); k++) {
		vrio_mw_family(w, fam[k].name, "counter", fam[k].help);
		for (unsigned h = 0; h < n; h++) {
			v = 0;
			for (unsigned i = 0; i < srv->n_reactors; i++)
				v += vrio_counter_get((const uint64_t *)((const char *)&srv->rctx[i] +
									 fam[k].off) + h);
			vrio_mw_escape(name, sizeof(name), srv->hosts[h].name);
			snprintf(lab, sizeof(lab), "host=\"%s\"", name);
			vrio_mw_u64(w, fam[k].name, lab, v);
		}
	}
	vrio_mw_family(w, "vrio_ioserver_lease_held", "gauge",
		       "1 while the host's newest connection holds its write lease (0: lapsed or "
		       "never granted)");
	for (unsigned h = 0; h < n; h++) {
		int held = 0;

		for (unsigned i = 0; i < srv->n_reactors; i++)
			held |= __atomic_load_n(&srv->rctx[i].lease_state[h], __ATOMIC_RELAXED) ==
				VRIO_LEASE_HELD;
		vrio_mw_escape(name, sizeof(name), srv->hosts[h].name);
		snprintf(lab, sizeof(lab), "host=\"%s\"", name);
		vrio_mw_u64(w, "vrio_ioserver_lease_held", lab, (uint64_t)held);
	}
}

void ios_metrics_collect(void *arg, struct vrio_mw *w)
{
	struct ios_server *srv = arg;

	pthread_mutex_lock(&srv->lock);
	vrio_config_metrics(w, "vrio_ioserver", &srv->cfg);
	metrics_devices(srv, w);
	metrics_reactors(srv, w);
	metrics_switch(srv, w);
	ios_trunks_metrics(srv, w);
	pthread_mutex_unlock(&srv->lock);
	vrio_conn_stats_emit(w, "vrio_ioserver_connection", "host",
			     __atomic_load_n(&srv->n_hosts, __ATOMIC_ACQUIRE), conn_fill, srv);
	metrics_heartbeats(srv, w);
	vrio_mw_process(w);
}

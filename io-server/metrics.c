/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The exposition, written on each scrape from the metrics server's thread.
 * It reads counters with relaxed atomics and never touches sessions: the
 * devices and reactors it walks live as long as the metrics server does.
 */
#include <stddef.h>
#include <stdio.h>

#include "ioserver_internal.h"

static void metrics_requests(const struct ios_server *srv, struct vrio_mw *w)
{
	const struct ios_device *d;
	char labels[256];
	uint32_t i;
	int op;

	vrio_mw_family(w, "vrio_ioserver_requests_total", "counter",
		       "Requests completed, by device and operation.");
	for (i = 0; i < srv->n_devs; i++) {
		d = &srv->devs[i];
		if (d->type != VRIO_DEV_BLK)
			continue;
		for (op = 0; op < IOS_BLK_OP_COUNT; op++) {
			snprintf(labels, sizeof(labels), "%s,op=\"%s\"", d->label,
				 ios_blk_op_name(op));
			vrio_mw_u64(w, "vrio_ioserver_requests_total", labels,
				    vrio_counter_get(&d->stats.requests[op]));
		}
	}

	vrio_mw_family(w, "vrio_ioserver_bytes_total", "counter",
		       "Bytes read from and written to the backend for guests.");
	for (i = 0; i < srv->n_devs; i++) {
		d = &srv->devs[i];
		if (d->type != VRIO_DEV_BLK)
			continue;
		snprintf(labels, sizeof(labels), "%s,direction=\"read\"", d->label);
		vrio_mw_u64(w, "vrio_ioserver_bytes_total", labels,
			    vrio_counter_get(&d->stats.bytes_read));
		snprintf(labels, sizeof(labels), "%s,direction=\"write\"", d->label);
		vrio_mw_u64(w, "vrio_ioserver_bytes_total", labels,
			    vrio_counter_get(&d->stats.bytes_written));
	}
}

static void metrics_errors(const struct ios_server *srv, struct vrio_mw *w)
{
	static const struct {
		const char *reason;
		size_t off;
	} reasons[] = {
		{ "ioerr", offsetof(struct ios_dev_stats, err_ioerr) },
		{ "unsupp", offsetof(struct ios_dev_stats, err_unsupp) },
		{ "protocol", offsetof(struct ios_dev_stats, err_protocol) },
		{ "guest", offsetof(struct ios_dev_stats, err_guest) },
	};
	const struct ios_device *d;
	char labels[256];
	uint32_t i;
	size_t k;

	vrio_mw_family(w, "vrio_ioserver_errors_total", "counter",
		       "Requests answered with IOERR or UNSUPP, malformed requests, and devices the guest broke.");
	for (i = 0; i < srv->n_devs; i++) {
		d = &srv->devs[i];
		if (d->type != VRIO_DEV_BLK)
			continue;
		for (k = 0; k < sizeof(reasons) / sizeof(reasons[0]); k++) {
			snprintf(labels, sizeof(labels), "%s,reason=\"%s\"", d->label,
				 reasons[k].reason);
			vrio_mw_u64(w, "vrio_ioserver_errors_total", labels,
				    vrio_counter_get((const uint64_t *)((const char *)&d->stats +
									reasons[k].off)));
		}
	}
}

static void metrics_devices(const struct ios_server *srv, struct vrio_mw *w)
{
	const struct ios_device *d;
	uint32_t i;

	vrio_mw_family(w, "vrio_ioserver_request_latency_seconds", "histogram",
		       "From a request's arrival to its response being queued for sending.");
	for (i = 0; i < srv->n_devs; i++) {
		d = &srv->devs[i];
		if (d->type != VRIO_DEV_BLK)
			continue;
		vrio_mw_hist(w, "vrio_ioserver_request_latency_seconds", d->label,
			     &d->stats.latency);
	}

	vrio_mw_family(w, "vrio_ioserver_iotlb_invalidations_total", "counter",
		       "vIOMMU invalidations local-hv forwarded for the device, acknowledged.");
	for (i = 0; i < srv->n_devs; i++) {
		d = &srv->devs[i];
		vrio_mw_u64(w, "vrio_ioserver_iotlb_invalidations_total", d->label,
			    vrio_counter_get(&d->stats.invalidations));
	}

	vrio_mw_family(w, "vrio_ioserver_device_attached", "gauge",
		       "1 while a local-hv has the device attached.");
	for (i = 0; i < srv->n_devs; i++) {
		d = &srv->devs[i];
		vrio_mw_u64(w, "vrio_ioserver_device_attached", d->label,
			    __atomic_load_n(&d->owner, __ATOMIC_RELAXED) != NULL);
	}
}

static void metrics_reactors(const struct ios_server *srv, struct vrio_mw *w)
{
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

	for (i = 0; i < srv->n_reactors; i++)
		conns += vrio_counter_get(&srv->reactors[i]->stats.connections);
	vrio_mw_family(w, "vrio_ioserver_connections", "gauge", "Open local-hv connections.");
	vrio_mw_u64(w, "vrio_ioserver_connections", NULL, conns);
}

/* The switches: per port what went in and out and what was dropped. */
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
	const struct ios_network *n;
	const struct ios_port *p;
	char labels[352];

	for (size_t k = 0; k < sizeof(port_counters) / sizeof(port_counters[0]); k++) {
		if (port_counters[k].help)
			vrio_mw_family(w, port_counters[k].metric, "counter", port_counters[k].help);
		for (unsigned i = 0; i < srv->n_nets; i++) {
			n = &srv->nets[i];
			for (unsigned j = 0; j < n->n_ports; j++) {
				p = n->ports[j];
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
	for (unsigned i = 0; i < srv->n_nets; i++) {
		n = &srv->nets[i];
		for (unsigned j = 0; j < n->n_ports; j++) {
			p = n->ports[j];
			for (unsigned r = 0; r < IOS_NR_DROPS; r++) {
				snprintf(labels, sizeof(labels), "%s,reason=\"%s\"", p->label,
					 ios_port_drop_names[r]);
				vrio_mw_u64(w, "vrio_ioserver_switch_drops_total", labels,
					    vrio_counter_get(&p->st.drops[r]));
			}
		}
	}
	vrio_mw_family(w, "vrio_ioserver_switch_port_up", "gauge",
		       "1 while the port's device is attached (an uplink always is)");
	for (unsigned i = 0; i < srv->n_nets; i++) {
		n = &srv->nets[i];
		for (unsigned j = 0; j < n->n_ports; j++) {
			p = n->ports[j];
			vrio_mw_u64(w, "vrio_ioserver_switch_port_up", p->label,
				    __atomic_load_n(&p->reactor, __ATOMIC_RELAXED) >= 0);
		}
	}
	for (size_t k = 0; k < sizeof(net_counters) / sizeof(net_counters[0]); k++) {
		vrio_mw_family(w, net_counters[k].metric, "counter", net_counters[k].help);
		for (unsigned i = 0; i < srv->n_nets; i++) {
			n = &srv->nets[i];
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
		vrio_conn_stats_sum(st, &srv->reactors[i]->conn_pub[h]);
	return srv->topo->hosts[h].name;
}

void ios_metrics_collect(void *arg, struct vrio_mw *w)
{
	const struct ios_server *srv = arg;

	metrics_requests(srv, w);
	metrics_errors(srv, w);
	metrics_devices(srv, w);
	metrics_reactors(srv, w);
	metrics_switch(srv, w);
	vrio_conn_stats_emit(w, "vrio_ioserver_connection", "host", (unsigned)srv->topo->n_hosts,
			     conn_fill, srv);
	vrio_mw_process(w);
}

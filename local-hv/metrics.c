/* SPDX-License-Identifier: BSD-3-Clause */
#include <stddef.h>
#include <stdio.h>

#include "localhv.h"
#include "log.h"

/* The devices in the table; the caller holds l->lock. */
#define FOR_DEVS(l, d, i) \
	for ((i) = 0; (i) < (l)->n_slots; (i)++) \
		if (((d) = (l)->devs[(i)]) != NULL)

/* Per-device counters that need only the device label. */
static const struct {
	const char *name, *help;
	size_t off;
} dev_counters[] = {
	{ "vrio_localhv_requests_total",
	  "Requests (net: packets the guest sent) forwarded to the io-server",
	  offsetof(struct lhv_dev_stats, requests) },
	{ "vrio_localhv_responses_total",
	  "Responses (net: packets) written into the guest, or dropped for a stopped device",
	  offsetof(struct lhv_dev_stats, responses) },
	{ "vrio_localhv_guest_interrupts_total", "Used-buffer notifications sent to the guest",
	  offsetof(struct lhv_dev_stats, irqs) },
	{ "vrio_localhv_dropped_responses_total",
	  "Responses for a stopped or broken device, dropped",
	  offsetof(struct lhv_dev_stats, dropped_responses) },
	{ "vrio_localhv_inflight_resubmitted_total",
	  "Requests a previous local-hv left in flight, sent again from the VMM's inflight region",
	  offsetof(struct lhv_dev_stats, resubmitted) },
};

static uint64_t stat_at(const struct lhv_dev *d, size_t off)
{
	return vrio_counter_get((const uint64_t *)((const char *)&d->st + off));
}

/* Request/response devices behind a vIOMMU (iommu.h). */
static void iommu_metrics(struct vrio_mw *w, struct lhv *l)
{
	static const struct {
		const char *name, *type, *help;
	} fam[] = {
		{ "vrio_localhv_iotlb_hits_total", "counter", "IOTLB lookups that found a mapping" },
		{ "vrio_localhv_iotlb_misses_total", "counter",
		  "IOTLB lookups without a mapping (each asks the VMM once)" },
		{ "vrio_localhv_iotlb_invalidations_total", "counter",
		  "vIOMMU invalidations done: forwarded, acknowledged, nothing in flight on them" },
		{ "vrio_localhv_iotlb_stale_mappings", "gauge",
		  "Deferred policy: invalidated mappings still usable, awaiting their batch" },
		{ "vrio_localhv_iotlb_stale_max_seconds", "gauge",
		  "Deferred policy: the longest an invalidated mapping stayed usable" },
	};
	const struct lhv_iommu *m;
	const struct lhv_dev *d;
	unsigned i, k;
	double v;

	for (k = 0; k < sizeof(fam) / sizeof(fam[0]); k++) {
		vrio_mw_family(w, fam[k].name, fam[k].type, fam[k].help);
		FOR_DEVS(l, d, i) {
			if (d->type == VRIO_DEV_NET)
				continue;
			m = &d->iommu;
			switch (k) {
			case 0: v = (double)vrio_counter_get(&m->tlb.hits); break;
			case 1: v = (double)vrio_counter_get(&m->tlb.misses); break;
			case 2: v = (double)vrio_counter_get(&m->st.invalidations); break;
			case 3: v = (double)vrio_counter_get(&m->st.stale); break;
			default: v = (double)vrio_counter_get(&m->st.stale_max_ns) / 1e9; break;
			}
			vrio_mw_double(w, fam[k].name, d->label, v);
		}
	}
	vrio_mw_family(w, "vrio_localhv_iotlb_invalidation_seconds", "histogram",
		       "From the VMM's invalidation to done (strict: to its acknowledgement)");
	FOR_DEVS(l, d, i)
		if (d->type != VRIO_DEV_NET)
			vrio_mw_hist(w, "vrio_localhv_iotlb_invalidation_seconds", d->label,
				     &d->iommu.st.rtt);
}

static void dev_metrics(struct vrio_mw *w, struct lhv *l)
{
	const struct lhv_dev *d;
	char lab[256];
	unsigned i, r, k;

	for (k = 0; k < sizeof(dev_counters) / sizeof(dev_counters[0]); k++) {
		vrio_mw_family(w, dev_counters[k].name, "counter", dev_counters[k].help);
		FOR_DEVS(l, d, i)
			vrio_mw_u64(w, dev_counters[k].name, d->label,
				    stat_at(d, dev_counters[k].off));
	}
	vrio_mw_family(w, "vrio_localhv_bytes_total", "counter",
		       "Bytes moved between the guest and the io-server");
	FOR_DEVS(l, d, i) {
		snprintf(lab, sizeof(lab), "%s,direction=\"to_ioserver\"", d->label);
		vrio_mw_u64(w, "vrio_localhv_bytes_total", lab,
			    vrio_counter_get(&d->st.bytes_out));
		snprintf(lab, sizeof(lab), "%s,direction=\"to_guest\"", d->label);
		vrio_mw_u64(w, "vrio_localhv_bytes_total", lab,
			    vrio_counter_get(&d->st.bytes_in));
	}
	vrio_mw_family(w, "vrio_localhv_net_drops_total", "counter",
		       "Packets of a net device dropped here, by reason");
	FOR_DEVS(l, d, i) {
		if (d->type != VRIO_DEV_NET)
			continue;
		for (r = 0; r < LHV_NET_NR_DROPS; r++) {
			snprintf(lab, sizeof(lab), "%s,reason=\"%s\"", d->label,
				 lhv_net_drop_names[r]);
			vrio_mw_u64(w, "vrio_localhv_net_drops_total", lab,
				    vrio_counter_get(&d->st.net_drops[r]));
		}
	}
	vrio_mw_family(w, "vrio_localhv_net_queue_frames_total", "counter",
		       "Frames of a net device by queue pair: taken from the guest's transmit queue, put in its receive queue");
	FOR_DEVS(l, d, i) {
		if (d->type != VRIO_DEV_NET)
			continue;
		for (r = 0; r < d->num_queues && r < LHV_MAX_QUEUES; r++) {
			snprintf(lab, sizeof(lab), "%s,queue=\"%u\",direction=\"%s\"", d->label,
				 r / 2, r & 1 ? "to_ioserver" : "to_guest");
			vrio_mw_u64(w, "vrio_localhv_net_queue_frames_total", lab,
				    vrio_counter_get(&d->st.net_frames[r]));
		}
	}
	vrio_mw_family(w, "vrio_localhv_chain_errors_total", "counter",
		       "Descriptor chains refused, by reason");
	FOR_DEVS(l, d, i) {
		for (r = 1; r < LHV_WALK_NR_ERRORS; r++) {
			snprintf(lab, sizeof(lab), "%s,reason=\"%s\"", d->label,
				 lhv_walk_reason((int)r));
			vrio_mw_u64(w, "vrio_localhv_chain_errors_total", lab,
				    vrio_counter_get(&d->st.chain_errors[r]));
		}
	}
	vrio_mw_family(w, "vrio_localhv_device_broken", "gauge",
		       "1 if the guest broke the device and it waits for a reset");
	FOR_DEVS(l, d, i)
		vrio_mw_u64(w, "vrio_localhv_device_broken", d->label,
			    __atomic_load_n(&d->broken, __ATOMIC_RELAXED));
	vrio_mw_family(w, "vrio_localhv_device_running", "gauge",
		       "1 while a guest driver is attached and the rings are served");
	FOR_DEVS(l, d, i)
		vrio_mw_u64(w, "vrio_localhv_device_running", d->label,
			    __atomic_load_n(&d->state, __ATOMIC_RELAXED) ==
				    LHV_DEV_RUNNING);
	vrio_mw_family(w, "vrio_localhv_device_state", "gauge",
		       "1 for the state the device is in (as vrioctl devices shows it), else 0; "
		       "dead: its io-server stopped answering");
	FOR_DEVS(l, d, i) {
		enum lhv_dev_view v = lhv_dev_view(d);

		for (r = 0; r < LHV_NR_VIEWS; r++) {
			snprintf(lab, sizeof(lab), "%s,state=\"%s\"", d->label,
				 lhv_dev_view_names[r]);
			vrio_mw_u64(w, "vrio_localhv_device_state", lab, r == (unsigned)v);
		}
	}
	vrio_mw_family(w, "vrio_localhv_failovers_total", "counter",
		       "Moves of a device from its io_server to its standby");
	FOR_DEVS(l, d, i)
		if (d->cand[1])
			vrio_mw_u64(w, "vrio_localhv_failovers_total", d->label,
				    vrio_counter_get(&d->failovers));
	vrio_mw_family(w, "vrio_localhv_failbacks_total", "counter",
		       "Moves of a device from its standby back to its io_server (the standby "
		       "failed, or vrioctl move)");
	FOR_DEVS(l, d, i)
		if (d->cand[1])
			vrio_mw_u64(w, "vrio_localhv_failbacks_total", d->label,
				    vrio_counter_get(&d->failbacks));
	vrio_mw_family(w, "vrio_localhv_device_on_standby", "gauge",
		       "1 while a device with a standby is served by the standby");
	FOR_DEVS(l, d, i)
		if (d->cand[1])
			vrio_mw_u64(w, "vrio_localhv_device_on_standby", d->label,
				    lhv_dev_up(d) == d->cand[1]);
	iommu_metrics(w, l);
	vrio_mw_family(w, "vrio_localhv_request_latency_seconds", "histogram",
		       "Time from forwarding a request to its response");
	FOR_DEVS(l, d, i)
		vrio_mw_hist(w, "vrio_localhv_request_latency_seconds", d->label,
			     &d->st.latency);
	vrio_mw_family(w, "vrio_localhv_hop_seconds", "histogram",
		       "Where a request's time at local-hv goes, by hop: submit (the poller finding "
		       "a batch's first chain to its last request queued upstream), complete (the "
		       "start of the poll that takes the response in to its end, the batch's used "
		       "entries published)");
	FOR_DEVS(l, d, i) {
		for (r = 0; r < LHV_NR_HOPS; r++) {
			snprintf(lab, sizeof(lab), "%s,hop=\"%s\"", d->label, lhv_hop_names[r]);
			vrio_mw_hist(w, "vrio_localhv_hop_seconds", lab, &d->st.hop[r]);
		}
	}
}

const char *const lhv_hop_names[LHV_NR_HOPS] = {
	[LHV_HOP_SUBMIT] = "submit",
	[LHV_HOP_COMPLETE] = "complete",
};

/* The upstream connections' own counters (transport.h). */
static const char *conn_fill(const void *arg, unsigned u, struct vrio_conn_stats *st)
{
	const struct lhv *l = arg;

	vrio_conn_stats_sum(st, &l->ups[u]->cpub);
	return l->ups[u]->name;
}

static void up_metrics(struct vrio_mw *w, const struct lhv *l)
{
	unsigned u, nups = __atomic_load_n(&l->nups, __ATOMIC_ACQUIRE);
	char lab[160], name[128];

	vrio_mw_family(w, "vrio_localhv_upstream_up", "gauge",
		       "1 while connected and the io-server has answered the connection's hello");
	for (u = 0; u < nups; u++) {
		vrio_mw_escape(name, sizeof(name), l->ups[u]->name);
		snprintf(lab, sizeof(lab), "io_server=\"%s\"", name);
		/* Connected is not enough: a hung io-server's kernel accepts. */
		vrio_mw_u64(w, "vrio_localhv_upstream_up", lab,
			    __atomic_load_n(&l->ups[u]->state, __ATOMIC_RELAXED) == LHV_UP_READY &&
				    __atomic_load_n(&l->ups[u]->peer, __ATOMIC_RELAXED) ==
					    LHV_PEER_UP);
	}
	vrio_mw_family(w, "vrio_localhv_upstream_dead", "gauge",
		       "1 from a heartbeat timeout until the io-server answers again");
	for (u = 0; u < nups; u++) {
		vrio_mw_escape(name, sizeof(name), l->ups[u]->name);
		snprintf(lab, sizeof(lab), "io_server=\"%s\"", name);
		vrio_mw_u64(w, "vrio_localhv_upstream_dead", lab,
			    __atomic_load_n(&l->ups[u]->peer, __ATOMIC_RELAXED) == LHV_PEER_DEAD);
	}
#define UP_COUNTER(field, metric, help)                                                  \
	vrio_mw_family(w, metric, "counter", help);                                      \
	for (u = 0; u < nups; u++) {                                                  \
		vrio_mw_escape(name, sizeof(name), l->ups[u]->name);                 \
		snprintf(lab, sizeof(lab), "io_server=\"%s\"", name);                    \
		vrio_mw_u64(w, metric, lab, vrio_counter_get(&l->ups[u]->st.field));      \
	}
	UP_COUNTER(connects, "vrio_localhv_upstream_connects_total", "Connections made")
	UP_COUNTER(disconnects, "vrio_localhv_upstream_disconnects_total", "Connections lost")
	UP_COUNTER(protocol_errors, "vrio_localhv_upstream_protocol_errors_total",
		   "Connections closed because the peer sent something malformed")
	UP_COUNTER(auth_failures, "vrio_localhv_upstream_auth_failures_total",
		   "Connections closed because the io-server or this host could not prove the key")
	UP_COUNTER(resent, "vrio_localhv_upstream_resent_total",
		   "Requests sent again after a reconnect")
	UP_COUNTER(heartbeats, "vrio_localhv_upstream_heartbeats_sent_total",
		   "Heartbeats sent on an otherwise quiet connection")
	UP_COUNTER(heartbeat_timeouts, "vrio_localhv_upstream_heartbeat_timeouts_total",
		   "Connections closed because nothing arrived for dead_after")
	UP_COUNTER(goodbyes, "vrio_localhv_upstream_goodbyes_total",
		   "Clean stops of the io-server: its goodbye after answering what it took")
	UP_COUNTER(goodbye_unanswered, "vrio_localhv_upstream_goodbye_unanswered_total",
		   "Requests an io-server's goodbye said it took and answered that never came")
#undef UP_COUNTER
	vrio_mw_family(w, "vrio_localhv_upstream_lease_seconds", "gauge",
		       "How long the io-server may still execute this host's writes: its lease "
		       "as echoed, plus the margin (0: lapsed or never granted)");
	for (u = 0; u < nups; u++) {
		uint64_t until = __atomic_load_n(&l->ups[u]->lease_until_pub, __ATOMIC_RELAXED);
		uint64_t now = vrio_now_ns();

		vrio_mw_escape(name, sizeof(name), l->ups[u]->name);
		snprintf(lab, sizeof(lab), "io_server=\"%s\"", name);
		vrio_mw_double(w, "vrio_localhv_upstream_lease_seconds", lab,
			       until > now ? (double)(until - now) / 1e9 : 0.0);
	}
	vrio_conn_stats_emit(w, "vrio_localhv_upstream", "io_server", nups, conn_fill, l);
}

void lhv_collect(void *arg, struct vrio_mw *w)
{
	struct lhv *l = arg;

	vrio_mw_process(w);
	pthread_mutex_lock(&l->lock);
	vrio_config_metrics(w, "vrio_localhv", &l->cfg);
	dev_metrics(w, l);
	pthread_mutex_unlock(&l->lock);
	up_metrics(w, l);
	vrio_mw_family(w, "vrio_localhv_poller_busy_seconds_total", "counter",
		       "Time the poller spent on rounds that found work");
	vrio_mw_double(w, "vrio_localhv_poller_busy_seconds_total", NULL,
		       (double)vrio_counter_get(&l->st.busy_ns) / 1e9);
	vrio_mw_family(w, "vrio_localhv_poller_idle_seconds_total", "counter",
		       "Time the poller spent spinning idle or asleep");
	vrio_mw_double(w, "vrio_localhv_poller_idle_seconds_total", NULL,
		       (double)vrio_counter_get(&l->st.idle_ns) / 1e9);
	vrio_mw_family(w, "vrio_localhv_poller_wakeups_total", "counter",
		       "Times the poller woke from sleep");
	vrio_mw_u64(w, "vrio_localhv_poller_wakeups_total", NULL,
		    vrio_counter_get(&l->st.wakeups));
}

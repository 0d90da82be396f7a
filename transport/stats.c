/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * A connection stack's counters, published for the metrics thread and
 * written out as Prometheus families (transport.h).
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include "metrics.h"
#include "transport.h"

/*
 * The counters of a connection stack. Frames and bytes are the top layer's
 * (what the owner sent and received); the others belong to one layer each
 * and are summed down the stack.
 */
#define CS(f) offsetof(struct vrio_conn_stats, f)
static const struct {
	size_t off;
	bool top_only;
	const char *name, *help;
} conn_counters[] = {
	{ CS(frames_tx), true, "frames_sent_total", "Frames sent" },
	{ CS(frames_rx), true, "frames_received_total", "Frames received" },
	{ CS(bytes_tx), true, "sent_bytes_total", "Bytes sent, frame headers included" },
	{ CS(bytes_rx), true, "received_bytes_total", "Bytes received, frame headers included" },
	{ CS(retransmits), false, "retransmits_total", "Frames sent again by the reliable layer" },
	{ CS(duplicates), false, "duplicates_total",
	  "Frames received twice or out of order and discarded by the reliable layer" },
	{ CS(window_stalls), false, "window_stalls_total",
	  "Sends refused because the reliable layer's window was full" },
	{ CS(injected_drops), false, "injected_drops_total", "Frames dropped by fault injection" },
	{ CS(injected_dups), false, "injected_duplicates_total",
	  "Frames duplicated by fault injection" },
	{ CS(injected_reorders), false, "injected_reorders_total",
	  "Frames held back and reordered by fault injection" },
	{ CS(reasm_drops), false, "reassembly_drops_total",
	  "Fragmented frames thrown away for a missing fragment" },
};
#undef CS

static uint64_t *cs_field(struct vrio_conn_stats *s, size_t off)
{
	return (uint64_t *)((char *)s + off);
}

static uint64_t cs_get(const struct vrio_conn_stats *s, size_t off)
{
	return vrio_counter_get((const uint64_t *)((const char *)s + off));
}

void vrio_conn_stats_publish(struct vrio_conn_stats *pub, struct vrio_conn_stats *last,
			     const struct vrio_conn *c)
{
	const struct vrio_conn *l;
	uint64_t now, rtt = 0;

	for (size_t i = 0; i < sizeof(conn_counters) / sizeof(conn_counters[0]); i++) {
		now = cs_get(&c->stats, conn_counters[i].off);
		for (l = c->inner; l && !conn_counters[i].top_only; l = l->inner)
			now += cs_get(&l->stats, conn_counters[i].off);
		vrio_counter_add(cs_field(pub, conn_counters[i].off),
				 now - *cs_field(last, conn_counters[i].off));
		*cs_field(last, conn_counters[i].off) = now;
	}
	for (l = c; l && !rtt; l = l->inner)
		rtt = vrio_counter_get(&l->stats.rtt_ns);
	__atomic_store_n(&pub->rtt_ns, rtt, __ATOMIC_RELAXED);
}

void vrio_conn_stats_retire(struct vrio_conn_stats *pub)
{
	__atomic_store_n(&pub->rtt_ns, 0, __ATOMIC_RELAXED);
}

void vrio_conn_stats_sum(struct vrio_conn_stats *out, const struct vrio_conn_stats *pub)
{
	uint64_t rtt = vrio_counter_get(&pub->rtt_ns);

	for (size_t i = 0; i < sizeof(conn_counters) / sizeof(conn_counters[0]); i++)
		*cs_field(out, conn_counters[i].off) += cs_get(pub, conn_counters[i].off);
	if (rtt > out->rtt_ns)
		out->rtt_ns = rtt;
}

void vrio_conn_stats_emit(struct vrio_mw *w, const char *prefix, const char *label, unsigned n,
			  vrio_conn_stats_fill_fn fill, const void *arg)
{
	struct vrio_conn_stats *st = calloc(n ? n : 1, sizeof(*st));
	char (*labels)[192] = calloc(n ? n : 1, sizeof(*labels));
	char metric[128], name[128];

	if (!st || !labels)
		goto out;
	for (unsigned k = 0; k < n; k++) {
		vrio_mw_escape(name, sizeof(name), fill(arg, k, &st[k]));
		snprintf(labels[k], sizeof(labels[k]), "%s=\"%s\"", label, name);
	}
	for (size_t i = 0; i < sizeof(conn_counters) / sizeof(conn_counters[0]); i++) {
		snprintf(metric, sizeof(metric), "%s_%s", prefix, conn_counters[i].name);
		vrio_mw_family(w, metric, "counter", conn_counters[i].help);
		for (unsigned k = 0; k < n; k++)
			vrio_mw_u64(w, metric, labels[k], *cs_field(&st[k], conn_counters[i].off));
	}
	snprintf(metric, sizeof(metric), "%s_rtt_seconds", prefix);
	vrio_mw_family(w, metric, "gauge",
		       "Smoothed round-trip time the reliable layer measures; 0 without it");
	for (unsigned k = 0; k < n; k++)
		vrio_mw_double(w, metric, labels[k], (double)st[k].rtt_ns / 1e9);
out:
	free(labels);
	free(st);
}

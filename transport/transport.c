/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctrl.h"
#include "topology.h"
#include "log.h"
#include "metrics.h"
#include "transport_internal.h"

#define MAX_TRANSPORTS 8

static const struct vrio_transport_ops *registry[MAX_TRANSPORTS];
static unsigned n_registered;
static pthread_once_t builtin_once = PTHREAD_ONCE_INIT;

/* The one place that decides which backends are built in. */
static void register_builtin(void)
{
	vrio_transport_register(&vrio_tcp_transport);
	vrio_transport_register(&vrio_shm_transport);
	vrio_transport_register(&vrio_dpdk_transport);
#ifdef VRIO_HAVE_RDMA
	vrio_transport_register(&vrio_rdma_transport);
#endif
}

int vrio_transport_register(const struct vrio_transport_ops *ops)
{
	unsigned i;

	if (!ops->name || !ops->listen || !ops->accept || !ops->connect || !ops->send ||
	    !ops->flush || !ops->poll || !ops->close || !ops->listener_close) {
		VRIO_ERR("transport %s: missing a mandatory operation", ops->name ? ops->name : "?");
		return -EINVAL;
	}
	for (i = 0; i < n_registered; i++) {
		if (strcmp(registry[i]->name, ops->name) == 0) {
			VRIO_ERR("transport %s: already registered", ops->name);
			return -EEXIST;
		}
	}
	if (n_registered == MAX_TRANSPORTS)
		return -ENOSPC;
	registry[n_registered++] = ops;
	return 0;
}

const struct vrio_transport_ops *vrio_transport_find(const char *name)
{
	unsigned i;

	pthread_once(&builtin_once, register_builtin);
	for (i = 0; i < n_registered; i++)
		if (strcmp(registry[i]->name, name) == 0)
			return registry[i];
	return NULL;
}

int vrio_conn_send_ctrl(struct vrio_conn *c, const struct Vrio__Ctrl *m)
{
	struct vrio_frame f = { .type = VRIO_FRAME_CTRL };
	struct iovec iov;
	uint8_t *buf;
	int len, rc;

	buf = malloc(VRIO_CTRL_MAX_LEN);
	if (!buf)
		return -ENOMEM;
	len = vrio_ctrl_pack(m, buf, VRIO_CTRL_MAX_LEN);
	if (len < 0) {
		free(buf);
		return len;
	}
	f.len = (uint32_t)len;
	iov.iov_base = buf;
	iov.iov_len = (size_t)len;
	rc = c->ops->send(c, &f, &iov, 1);
	free(buf);
	return rc;
}

int vrio_stack_init(struct vrio_stack *s, const struct vrio_topo_ioserver *ios)
{
	const char *env = getenv("VRIO_FAULTS");
	const struct vrio_topo_faults *tf = &ios->faults;

	memset(s, 0, sizeof(*s));
	s->base = vrio_transport_find(ios->transport);
	if (!s->base) {
		VRIO_ERR("%s: transport '%s' is not built in", ios->name, ios->transport);
		return -ENOTSUP;
	}
	s->faults = (struct vrio_faults){
		.enabled = tf->enabled,
		.seed = tf->seed,
		.drop = tf->drop,
		.duplicate = tf->duplicate,
		.reorder = tf->reorder,
		.delay_us = tf->delay_us,
		.disconnect_after = tf->disconnect_after,
	};
	/* The environment wins, so a test can inject faults into any rack. */
	if (env && *env && vrio_faults_parse(env, &s->faults) < 0) {
		VRIO_ERR("VRIO_FAULTS='%s': expected key=value pairs among drop, duplicate, "
			 "reorder (0..1), delay_us, seed, disconnect_after", env);
		return -EINVAL;
	}
	s->reliable = s->faults.enabled || s->base->unreliable;
	if (s->faults.enabled)
		VRIO_WARN("%s: injecting faults: drop %.3f duplicate %.3f reorder %.3f delay %u us "
			  "disconnect after %llu frames, seed %llu", ios->name, s->faults.drop,
			  s->faults.duplicate, s->faults.reorder, s->faults.delay_us,
			  (unsigned long long)s->faults.disconnect_after,
			  (unsigned long long)s->faults.seed);
	return 0;
}

int vrio_stack_wrap(struct vrio_stack *s, struct vrio_conn *inner, struct vrio_conn **out)
{
	uint64_t stream = s->nconns++;
	int rc;

	if (s->faults.enabled) {
		rc = vrio_fault_wrap(inner, &s->faults, stream, &inner);
		if (rc < 0)
			return rc;
	}
	if (s->reliable) {
		rc = vrio_reliable_wrap(inner, &inner);
		if (rc < 0)
			return rc;
	}
	*out = inner;
	return 0;
}

int vrio_stack_connect(struct vrio_stack *s, const char *addr, struct vrio_conn **out)
{
	struct vrio_conn *c;
	int rc;

	rc = s->base->connect(addr, &c);
	if (rc < 0)
		return rc;
	return vrio_stack_wrap(s, c, out);
}

int vrio_stack_setup(struct vrio_stack *s, const struct vrio_topo_dpdk *local)
{
	int rc = 0;

	if (s->base->setup)
		rc = s->base->setup(local);
	s->set_up = rc == 0;
	return rc;
}

void vrio_stack_teardown(struct vrio_stack *s)
{
	if (s->set_up && s->base->teardown)
		s->base->teardown();
	s->set_up = false;
}

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

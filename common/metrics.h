/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Prometheus text exposition. Daemons keep their own counters (single
 * writer: the data-path thread that owns the object) and hand the HTTP
 * server a collect callback that writes families on each scrape.
 *
 * Counters and histograms are written by one thread and read by the scrape
 * thread with relaxed atomics: a scrape may see a histogram mid-update, which
 * Prometheus tolerates; it never sees a torn 64-bit value.
 */
#ifndef VRIO_COMMON_METRICS_H
#define VRIO_COMMON_METRICS_H

#include <stddef.h>
#include <stdint.h>

static inline void vrio_counter_add(uint64_t *c, uint64_t n)
{
	__atomic_store_n(c, __atomic_load_n(c, __ATOMIC_RELAXED) + n, __ATOMIC_RELAXED);
}

static inline uint64_t vrio_counter_get(const uint64_t *c)
{
	return __atomic_load_n(c, __ATOMIC_RELAXED);
}

/* Latency buckets, upper bounds in microseconds; +Inf is implicit. */
#define VRIO_HIST_BUCKETS 16
extern const uint32_t vrio_hist_bounds_us[VRIO_HIST_BUCKETS];

struct vrio_hist {
	uint64_t bucket[VRIO_HIST_BUCKETS + 1];	/* not cumulative; last is +Inf */
	uint64_t count;
	uint64_t sum_ns;
};

void vrio_hist_add(struct vrio_hist *h, uint64_t ns);
/* n samples of the same value, as n calls of vrio_hist_add would. */
void vrio_hist_add_n(struct vrio_hist *h, uint64_t ns, uint64_t n);

/* Exposition writer: a growing text buffer. */
struct vrio_mw {
	char *buf;
	size_t len, cap;
	int oom;
};

void vrio_mw_family(struct vrio_mw *w, const char *name, const char *type, const char *help);
/* labels: preformatted 'a="x",b="y"' or NULL. Label values must already be
 * escaped; vrio_mw_escape() does that for names taken from the topology. */
void vrio_mw_u64(struct vrio_mw *w, const char *name, const char *labels, uint64_t v);
void vrio_mw_double(struct vrio_mw *w, const char *name, const char *labels, double v);
/* Writes NAME_bucket{...,le=...}, NAME_sum (seconds) and NAME_count. */
void vrio_mw_hist(struct vrio_mw *w, const char *name, const char *labels, const struct vrio_hist *h);
void vrio_mw_escape(char *dst, size_t dstlen, const char *src);
/* process_cpu_seconds_total, process_start_time_seconds and the process's
 * resident and virtual memory, as every daemon exposes them. */
void vrio_mw_process(struct vrio_mw *w);

typedef void (*vrio_metrics_collect_fn)(void *arg, struct vrio_mw *w);

/* Render the whole exposition into a malloc'd string (for tests and vrioctl). */
int vrio_metrics_render(vrio_metrics_collect_fn fn, void *arg, char **out, size_t *len);

struct vrio_metrics_server;
/* Serve GET /metrics on "host:port" from a thread of libmicrohttpd's. */
int vrio_metrics_start(const char *addr, vrio_metrics_collect_fn fn, void *arg,
		       struct vrio_metrics_server **out);
void vrio_metrics_stop(struct vrio_metrics_server *s);

#endif

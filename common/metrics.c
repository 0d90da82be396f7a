/* SPDX-License-Identifier: BSD-3-Clause */
#include "metrics.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "addr.h"
#include "log.h"

#define CONTENT_TYPE_EXPOSITION "text/plain; version=0.0.4; charset=utf-8"

const uint32_t vrio_hist_bounds_us[VRIO_HIST_BUCKETS] = {
	5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000,
	100000, 250000, 1000000,
};

void vrio_hist_add_n(struct vrio_hist *h, uint64_t ns, uint64_t n)
{
	unsigned i;

	for (i = 0; i < VRIO_HIST_BUCKETS; i++)
		if (ns <= (uint64_t)vrio_hist_bounds_us[i] * 1000)
			break;
	vrio_counter_add(&h->bucket[i], n);
	vrio_counter_add(&h->count, n);
	vrio_counter_add(&h->sum_ns, ns * n);
}

void vrio_hist_add(struct vrio_hist *h, uint64_t ns)
{
	vrio_hist_add_n(h, ns, 1);
}

static int mw_reserve(struct vrio_mw *w, size_t extra)
{
	size_t cap;
	char *buf;

	if (w->oom)
		return -ENOMEM;
	if (w->cap - w->len > extra)
		return 0;
	cap = w->cap ? w->cap : 4096;
	while (cap - w->len <= extra) {
		if (cap > SIZE_MAX / 2)
			goto oom;
		cap *= 2;
	}
	buf = realloc(w->buf, cap);
	if (!buf)
		goto oom;
	w->buf = buf;
	w->cap = cap;
	return 0;
oom:
	w->oom = 1;
	return -ENOMEM;
}

static void mw_printf(struct vrio_mw *w, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void mw_printf(struct vrio_mw *w, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (mw_reserve(w, 256))
		return;
	va_start(ap, fmt);
	n = vsnprintf(w->buf + w->len, w->cap - w->len, fmt, ap);
	va_end(ap);
	if (n < 0) {
		w->oom = 1;
		return;
	}
	if ((size_t)n >= w->cap - w->len) {
		if (mw_reserve(w, (size_t)n + 1))
			return;
		va_start(ap, fmt);
		vsnprintf(w->buf + w->len, w->cap - w->len, fmt, ap);
		va_end(ap);
	}
	w->len += (size_t)n;
}

static void mw_putc(struct vrio_mw *w, char ch)
{
	if (mw_reserve(w, 1))
		return;
	w->buf[w->len++] = ch;
	w->buf[w->len] = '\0';
}

/* "name" or "name{labels" + extra + "}"; extra is another preformatted label. */
static void mw_series(struct vrio_mw *w, const char *name, const char *suffix,
		      const char *labels, const char *extra)
{
	bool has_labels = labels && labels[0];

	mw_printf(w, "%s%s", name, suffix);
	if (!has_labels && !extra)
		return;
	mw_printf(w, "{%s%s%s}", has_labels ? labels : "", has_labels && extra ? "," : "",
		  extra ? extra : "");
}

/* v / 10^decimals, exactly, without trailing zeros: 5 us -> "0.000005". */
static void fmt_fixed(char *dst, size_t len, uint64_t v, unsigned decimals)
{
	uint64_t scale = 1;
	int n;

	for (unsigned i = 0; i < decimals; i++)
		scale *= 10;
	n = snprintf(dst, len, "%" PRIu64 ".%0*" PRIu64, v / scale, (int)decimals, v % scale);
	if (n < 0 || (size_t)n >= len)
		return;
	while (n > 0 && dst[n - 1] == '0')
		dst[--n] = '\0';
	if (n > 0 && dst[n - 1] == '.')
		dst[--n] = '\0';
}

/* Shortest decimal that reads back as the same double, in Prometheus' spelling. */
static void fmt_double(char *dst, size_t len, double v)
{
	if (isnan(v)) {
		snprintf(dst, len, "NaN");
		return;
	}
	if (isinf(v)) {
		snprintf(dst, len, v > 0 ? "+Inf" : "-Inf");
		return;
	}
	snprintf(dst, len, "%.15g", v);
	if (strtod(dst, NULL) != v)
		snprintf(dst, len, "%.17g", v);
}

void vrio_mw_family(struct vrio_mw *w, const char *name, const char *type, const char *help)
{
	mw_printf(w, "# HELP %s ", name);
	for (const char *p = help ? help : ""; *p; p++) {
		if (*p == '\\')
			mw_printf(w, "\\\\");
		else if (*p == '\n')
			mw_printf(w, "\\n");
		else
			mw_putc(w, *p);
	}
	mw_printf(w, "\n# TYPE %s %s\n", name, type);
}

void vrio_mw_u64(struct vrio_mw *w, const char *name, const char *labels, uint64_t v)
{
	mw_series(w, name, "", labels, NULL);
	mw_printf(w, " %" PRIu64 "\n", v);
}

void vrio_mw_double(struct vrio_mw *w, const char *name, const char *labels, double v)
{
	char num[40];

	fmt_double(num, sizeof(num), v);
	mw_series(w, name, "", labels, NULL);
	mw_printf(w, " %s\n", num);
}

void vrio_mw_hist(struct vrio_mw *w, const char *name, const char *labels,
		  const struct vrio_hist *h)
{
	char le[48], num[32];
	uint64_t cum = 0;

	for (unsigned i = 0; i <= VRIO_HIST_BUCKETS; i++) {
		cum += vrio_counter_get(&h->bucket[i]);
		if (i < VRIO_HIST_BUCKETS) {
			fmt_fixed(num, sizeof(num), vrio_hist_bounds_us[i], 6);
			snprintf(le, sizeof(le), "le=\"%s\"", num);
		} else {
			snprintf(le, sizeof(le), "le=\"+Inf\"");
		}
		mw_series(w, name, "_bucket", labels, le);
		mw_printf(w, " %" PRIu64 "\n", cum);
	}
	fmt_fixed(num, sizeof(num), vrio_counter_get(&h->sum_ns), 9);
	mw_series(w, name, "_sum", labels, NULL);
	mw_printf(w, " %s\n", num);
	/*
	 * The count is the bucket total rather than h->count so that a scrape
	 * racing the writer still shows _count equal to the +Inf bucket.
	 */
	mw_series(w, name, "_count", labels, NULL);
	mw_printf(w, " %" PRIu64 "\n", cum);
}

void vrio_mw_escape(char *dst, size_t dstlen, const char *src)
{
	size_t o = 0;

	if (dstlen == 0)
		return;
	for (; src && *src; src++) {
		const char *rep = NULL;
		char one[2] = { *src, '\0' };
		size_t n;

		if (*src == '\\')
			rep = "\\\\";
		else if (*src == '"')
			rep = "\\\"";
		else if (*src == '\n')
			rep = "\\n";
		else
			rep = one;
		n = strlen(rep);
		if (o + n >= dstlen)
			break;
		memcpy(dst + o, rep, n);
		o += n;
	}
	dst[o] = '\0';
}

int vrio_metrics_render(vrio_metrics_collect_fn fn, void *arg, char **out, size_t *len)
{
	struct vrio_mw w = { 0 };

	if (mw_reserve(&w, 1))
		return -ENOMEM;
	w.buf[0] = '\0';
	fn(arg, &w);
	if (w.oom) {
		free(w.buf);
		return -ENOMEM;
	}
	*out = w.buf;
	if (len)
		*len = w.len;
	return 0;
}

/* Process families, named as the Prometheus client libraries name them. */

static int read_file_line(const char *path, char *buf, size_t len)
{
	FILE *f = fopen(path, "re");
	int ret = 0;

	if (!f)
		return -errno;
	if (!fgets(buf, (int)len, f))
		ret = -EIO;
	fclose(f);
	return ret;
}

static int proc_boot_time(uint64_t *btime)
{
	char line[256];
	FILE *f = fopen("/proc/stat", "re");
	int ret = -ENOENT;

	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "btime %" SCNu64, btime) == 1) {
			ret = 0;
			break;
		}
	}
	fclose(f);
	return ret;
}

/* Seconds since the epoch at which this process started. */
static int proc_start_time(double *out)
{
	unsigned long long start_ticks;
	char stat[1024], *p;
	long hz = sysconf(_SC_CLK_TCK);
	uint64_t btime;
	int ret;

	ret = read_file_line("/proc/self/stat", stat, sizeof(stat));
	if (ret)
		return ret;
	/* The command name is in parentheses and may itself contain spaces. */
	p = strrchr(stat, ')');
	if (!p || hz <= 0)
		return -EIO;
	/* Field 22 (starttime); p + 2 starts at field 3 (state). */
	if (sscanf(p + 2,
		   "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d %*d %*d %llu",
		   &start_ticks) != 1)
		return -EIO;
	ret = proc_boot_time(&btime);
	if (ret)
		return ret;
	*out = (double)btime + (double)start_ticks / (double)hz;
	return 0;
}

void vrio_mw_process(struct vrio_mw *w)
{
	unsigned long long vsize_pages, rss_pages;
	long page = sysconf(_SC_PAGESIZE);
	struct rusage ru;
	char statm[256];
	double start;

	if (getrusage(RUSAGE_SELF, &ru) == 0) {
		double cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
			     ((double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_usec) / 1e6;

		vrio_mw_family(w, "process_cpu_seconds_total", "counter",
			       "Total user and system CPU time spent in seconds.");
		vrio_mw_double(w, "process_cpu_seconds_total", NULL, cpu);
	}
	if (proc_start_time(&start) == 0) {
		vrio_mw_family(w, "process_start_time_seconds", "gauge",
			       "Start time of the process since unix epoch in seconds.");
		vrio_mw_double(w, "process_start_time_seconds", NULL, start);
	}
	if (page > 0 && read_file_line("/proc/self/statm", statm, sizeof(statm)) == 0 &&
	    sscanf(statm, "%llu %llu", &vsize_pages, &rss_pages) == 2) {
		vrio_mw_family(w, "process_resident_memory_bytes", "gauge",
			       "Resident memory size in bytes.");
		vrio_mw_u64(w, "process_resident_memory_bytes", NULL,
			    (uint64_t)rss_pages * (uint64_t)page);
		vrio_mw_family(w, "process_virtual_memory_bytes", "gauge",
			       "Virtual memory size in bytes.");
		vrio_mw_u64(w, "process_virtual_memory_bytes", NULL,
			    (uint64_t)vsize_pages * (uint64_t)page);
	}
}

/* The HTTP server. */

struct vrio_metrics_server {
	struct MHD_Daemon *mhd;
	vrio_metrics_collect_fn fn;
	void *arg;
	char addr[128];
};

static enum MHD_Result metrics_reply(struct MHD_Connection *conn, unsigned status,
				     const char *text, const char *allow)
{
	struct MHD_Response *resp;
	enum MHD_Result ret;

	resp = MHD_create_response_from_buffer(strlen(text), (void *)(uintptr_t)text,
					       MHD_RESPMEM_PERSISTENT);
	if (!resp)
		return MHD_NO;
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; charset=utf-8");
	if (allow)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, allow);
	ret = MHD_queue_response(conn, status, resp);
	MHD_destroy_response(resp);
	return ret;
}

static enum MHD_Result metrics_handle(void *cls, struct MHD_Connection *conn, const char *url,
				      const char *method, const char *version,
				      const char *upload_data, size_t *upload_data_size,
				      void **con_cls)
{
	struct vrio_metrics_server *s = cls;
	struct MHD_Response *resp;
	enum MHD_Result ret;
	size_t len;
	char *body;

	if (strcmp(url, "/metrics") != 0)
		return metrics_reply(conn, MHD_HTTP_NOT_FOUND, "not found\n", NULL);
	if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
		return metrics_reply(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed\n",
				     "GET, HEAD");
	if (vrio_metrics_render(s->fn, s->arg, &body, &len))
		return metrics_reply(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n", NULL);

	resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
	if (!resp) {
		free(body);
		return MHD_NO;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, CONTENT_TYPE_EXPOSITION);
	ret = MHD_queue_response(conn, MHD_HTTP_OK, resp);
	MHD_destroy_response(resp);
	return ret;
}

static void metrics_mhd_log(void *cls, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));

static void metrics_mhd_log(void *cls, const char *fmt, va_list ap)
{
	const struct vrio_metrics_server *s = cls;
	char msg[512];
	size_t n;

	vsnprintf(msg, sizeof(msg), fmt, ap);
	n = strlen(msg);
	while (n > 0 && msg[n - 1] == '\n')
		msg[--n] = '\0';
	VRIO_WARN("metrics %s: %s", s->addr, msg);
}

/*
 * The listening socket is ours rather than MHD's (MHD_OPTION_SOCK_ADDR) so
 * that a failed bind reports its errno; MHD closes it on stop.
 */
static int metrics_listen(const struct sockaddr_storage *ss, socklen_t sslen)
{
	int one = 1, fd, ret;

	fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0)
		goto err;
	if (ss->ss_family == AF_INET6 &&
	    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0)
		goto err;
	if (bind(fd, (const struct sockaddr *)ss, sslen) < 0)
		goto err;
	if (listen(fd, 64) < 0)
		goto err;
	return fd;
err:
	ret = -errno;
	close(fd);
	return ret;
}

int vrio_metrics_start(const char *addr, vrio_metrics_collect_fn fn, void *arg,
		       struct vrio_metrics_server **out)
{
	struct vrio_metrics_server *s;
	struct sockaddr_storage ss;
	unsigned flags;
	socklen_t sslen;
	int fd, ret;

	ret = vrio_parse_hostport(addr, &ss, &sslen);
	if (ret) {
		VRIO_ERR("metrics %s: expected host:port", addr ? addr : "(null)");
		return ret;
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->fn = fn;
	s->arg = arg;
	snprintf(s->addr, sizeof(s->addr), "%s", addr);

	fd = metrics_listen(&ss, sslen);
	if (fd < 0) {
		ret = fd;
		VRIO_ERR("metrics %s: cannot listen: %s", s->addr, strerror(-ret));
		goto err;
	}
	flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_USE_ERROR_LOG;
	if (ss.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	s->mhd = MHD_start_daemon(flags, 0, NULL, NULL, metrics_handle, s,
				  MHD_OPTION_EXTERNAL_LOGGER, metrics_mhd_log, s,
				  MHD_OPTION_LISTEN_SOCKET, (MHD_socket)fd,
				  MHD_OPTION_CONNECTION_LIMIT, (unsigned)64,
				  MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10,
				  MHD_OPTION_END);
	if (!s->mhd) {
		close(fd);
		ret = -EIO;
		VRIO_ERR("metrics %s: cannot start the HTTP server", s->addr);
		goto err;
	}
	VRIO_INFO("metrics %s: serving /metrics", s->addr);
	*out = s;
	return 0;
err:
	free(s);
	return ret;
}

void vrio_metrics_stop(struct vrio_metrics_server *s)
{
	if (!s)
		return;
	MHD_stop_daemon(s->mhd);
	free(s);
}

/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "breakdown.h"
#include "http.h"
#include "topology.h"

#define BD_TIMEOUT_MS 5000

/* The series the breakdown reads; the others are skipped while parsing. */
static const char *const wanted[] = {
	"vrio_localhv_hop_seconds_", "vrio_localhv_request_latency_seconds_",
	"vrio_localhv_responses_total", "vrio_localhv_guest_interrupts_total",
	"vrio_localhv_poller_wakeups_total", "vrio_ioserver_hop_seconds_",
	"vrio_ioserver_request_latency_seconds_", "vrio_ioserver_reactor_wakeups_total",
};

struct bd_sample {
	char name[64];
	char hop[16];		/* "" without a hop label */
	bool has_le;
	double le;		/* seconds; INFINITY for +Inf */
	double v;
};

struct bd_snap {
	struct bd_sample *s;
	size_t n, cap;
};

static bool is_wanted(const char *name, size_t len)
{
	for (size_t i = 0; i < BENCH_ARRAY_SIZE(wanted); i++) {
		size_t w = strlen(wanted[i]);

		if (len >= w && strncmp(name, wanted[i], w) == 0 &&
		    (wanted[i][w - 1] == '_' || len == w))
			return true;
	}
	return false;
}

/* label="value" pairs between { and }: copies hop and le, and reports
 * whether the series is another device's. Values are ours (no escapes
 * in hop or le); a device name may hold escaped quotes. */
static const char *parse_labels(const char *p, struct bd_sample *s, const char *device,
				bool *other)
{
	char key[32], val[160];
	size_t k, v;

	while (*p && *p != '}') {
		for (k = 0; *p && *p != '=' && k + 1 < sizeof(key); p++)
			key[k++] = *p;
		key[k] = '\0';
		if (*p++ != '=' || *p++ != '"')
			return NULL;
		for (v = 0; *p && *p != '"'; p++) {
			if (*p == '\\' && p[1])
				p++;
			if (v + 1 < sizeof(val))
				val[v++] = *p;
		}
		val[v] = '\0';
		if (*p++ != '"')
			return NULL;
		if (*p == ',')
			p++;
		if (strcmp(key, "hop") == 0) {
			if (v >= sizeof(s->hop))
				*other = true;	/* not a hop of ours */
			else
				memcpy(s->hop, val, v + 1);
		} else if (strcmp(key, "le") == 0) {
			s->has_le = true;
			s->le = strcmp(val, "+Inf") == 0 ? INFINITY : strtod(val, NULL);
		} else if (strcmp(key, "device") == 0 && device && strcmp(val, device) != 0) {
			*other = true;
		}
	}
	return *p == '}' ? p + 1 : NULL;
}

static int snap_add_text(struct bd_snap *sn, const char *text, const char *device)
{
	const char *p = text, *eol, *q;
	struct bd_sample s, *ns;
	size_t len;
	bool other;
	char *end;

	for (; *p; p = *eol ? eol + 1 : eol) {
		eol = strchr(p, '\n');
		if (!eol)
			eol = p + strlen(p);
		if (*p == '#' || p == eol)
			continue;
		len = strcspn(p, "{ \n");
		if (!is_wanted(p, len) || len >= sizeof(s.name))
			continue;
		memset(&s, 0, sizeof(s));
		memcpy(s.name, p, len);
		q = p + len;
		other = false;
		if (*q == '{') {
			q = parse_labels(q + 1, &s, device, &other);
			if (!q || q > eol)
				return -EPROTO;
		}
		if (other)
			continue;
		s.v = strtod(q, &end);
		if (end == q || end > eol)
			return -EPROTO;
		if (sn->n == sn->cap) {
			sn->cap = sn->cap ? 2 * sn->cap : 256;
			ns = realloc(sn->s, sn->cap * sizeof(*ns));
			if (!ns)
				return -ENOMEM;
			sn->s = ns;
		}
		sn->s[sn->n++] = s;
	}
	return 0;
}

int bd_snap_parse(const char *io_text, const char *hv_text, const char *device,
		  struct bd_snap **out)
{
	struct bd_snap *sn = calloc(1, sizeof(*sn));
	int ret;

	if (!sn)
		return -ENOMEM;
	ret = snap_add_text(sn, io_text, device);
	if (ret == 0)
		ret = snap_add_text(sn, hv_text, device);
	if (ret < 0) {
		bd_snap_free(sn);
		return ret;
	}
	*out = sn;
	return 0;
}

int bd_snap_take(const struct bd_source *s, struct bd_snap **out)
{
	char *io = NULL, *hv = NULL, err[256];
	size_t len;
	int ret;

	ret = vrio_http_get(s->io_metrics, "/metrics", BD_TIMEOUT_MS, &io, &len, err, sizeof(err));
	if (ret == 0)
		ret = vrio_http_get(s->hv_metrics, "/metrics", BD_TIMEOUT_MS, &hv, &len, err,
				    sizeof(err));
	if (ret < 0) {
		bench_err("--breakdown: %s", err);
	} else {
		ret = bd_snap_parse(io, hv, s->device, out);
		if (ret < 0)
			bench_err("--breakdown: %s or %s: cannot read the metrics: %s",
				  s->io_metrics, s->hv_metrics, strerror(-ret));
	}
	free(io);
	free(hv);
	return ret;
}

void bd_snap_free(struct bd_snap *s)
{
	if (!s)
		return;
	free(s->s);
	free(s);
}

/* The sum over the series of `name` with this hop ("" none) and, with
 * has_le, this bucket bound. */
static double sum(const struct bd_snap *sn, const char *name, const char *hop, bool has_le,
		  double le)
{
	double t = 0;

	for (size_t i = 0; i < sn->n; i++) {
		const struct bd_sample *s = &sn->s[i];

		if (strcmp(s->name, name) || strcmp(s->hop, hop) || s->has_le != has_le ||
		    (has_le && s->le != le))
			continue;
		t += s->v;
	}
	return t;
}

static double delta(const struct bd_snap *a, const struct bd_snap *b, const char *name,
		    const char *hop)
{
	return sum(b, name, hop, false, 0) - sum(a, name, hop, false, 0);
}

static int cmp_double(const void *x, const void *y)
{
	double a = *(const double *)x, b = *(const double *)y;

	return a < b ? -1 : a > b;
}

static void hop_of(const struct bd_snap *a, const struct bd_snap *b, const char *fam,
		   const char *hop, struct bd_hop *h)
{
	char name[80];
	double *les, lo = 0, prev = 0, c, hi;
	size_t n = 0;

	memset(h, 0, sizeof(*h));
	snprintf(name, sizeof(name), "%s_count", fam);
	h->n = delta(a, b, name, hop);
	if (h->n <= 0) {
		h->n = 0;
		return;
	}
	snprintf(name, sizeof(name), "%s_sum", fam);
	h->mean_us = 1e6 * delta(a, b, name, hop) / h->n;
	h->p50_us = NAN;
	/* The median: the first bucket holding half, interpolated in it. */
	snprintf(name, sizeof(name), "%s_bucket", fam);
	les = malloc(b->n * sizeof(*les));
	if (!les)
		return;
	for (size_t i = 0; i < b->n; i++)
		if (b->s[i].has_le && !strcmp(b->s[i].name, name) && !strcmp(b->s[i].hop, hop))
			les[n++] = b->s[i].le;
	qsort(les, n, sizeof(*les), cmp_double);
	for (size_t i = 0; i < n; i++) {
		if (i && les[i] == les[i - 1])
			continue;
		c = sum(b, name, hop, true, les[i]) - sum(a, name, hop, true, les[i]);
		if (c >= h->n / 2) {
			hi = isinf(les[i]) ? lo * 2 : les[i];
			h->p50_us = 1e6 * (lo + (hi - lo) * (h->n / 2 - prev) / (c - prev > 1 ? c - prev : 1));
			break;
		}
		lo = les[i];
		prev = c;
	}
	free(les);
}

void bd_compute(const struct bd_snap *a, const struct bd_snap *b, double total_us,
		struct breakdown *bd)
{
	static const struct {
		const char *fam, *hop;
	} hops[BD_NR_HOPS] = {
		[BD_HV_SUBMIT] = { "vrio_localhv_hop_seconds", "submit" },
		[BD_HV_COMPLETE] = { "vrio_localhv_hop_seconds", "complete" },
		[BD_REMOTE] = { "vrio_localhv_request_latency_seconds", "" },
		[BD_IO_TOTAL] = { "vrio_ioserver_request_latency_seconds", "" },
		[BD_IO_QUEUE] = { "vrio_ioserver_hop_seconds", "queue" },
		[BD_IO_BACKEND] = { "vrio_ioserver_hop_seconds", "backend" },
		[BD_IO_RESPOND] = { "vrio_ioserver_hop_seconds", "respond" },
	};
	double r;

	memset(bd, 0, sizeof(*bd));
	for (int i = 0; i < BD_NR_HOPS; i++)
		hop_of(a, b, hops[i].fam, hops[i].hop, &bd->hop[i]);
	bd->total_us = total_us;
	bd->guest_us = total_us - bd->hop[BD_HV_SUBMIT].mean_us - bd->hop[BD_REMOTE].mean_us -
		       bd->hop[BD_HV_COMPLETE].mean_us;
	bd->wire_us = bd->hop[BD_REMOTE].mean_us - bd->hop[BD_IO_TOTAL].mean_us;
	r = bd->responses = delta(a, b, "vrio_localhv_responses_total", "");
	if (r > 0) {
		bd->irqs_per_io = delta(a, b, "vrio_localhv_guest_interrupts_total", "") / r;
		bd->hv_sleeps_per_io = delta(a, b, "vrio_localhv_poller_wakeups_total", "") / r;
		bd->io_sleeps_per_io = delta(a, b, "vrio_ioserver_reactor_wakeups_total", "") / r;
	}
}

static const char *const hop_names[BD_NR_HOPS] = {
	[BD_HV_SUBMIT] = "hv_submit", [BD_HV_COMPLETE] = "hv_complete", [BD_REMOTE] = "remote",
	[BD_IO_TOTAL] = "io_total", [BD_IO_QUEUE] = "io_queue", [BD_IO_BACKEND] = "io_backend",
	[BD_IO_RESPOND] = "io_respond",
};

void bd_print_text(FILE *f, const struct breakdown *bd)
{
	static const struct {
		const char *label;
		int hop;	/* -1: derived */
	} rows[] = {
		{ "guest (kick to local-hv, interrupt to guest)", -1 },
		{ "local-hv submit (chain found -> request queued)", BD_HV_SUBMIT },
		{ "wire (transport both ways, pollers waking)", -2 },
		{ "io-server queue (arrival -> backend submit)", BD_IO_QUEUE },
		{ "io-server backend", BD_IO_BACKEND },
		{ "io-server respond (completion -> response queued)", BD_IO_RESPOND },
		{ "local-hv complete (response -> used entry)", BD_HV_COMPLETE },
	};

	fprintf(f, "breakdown of the mean latency, %.2f us over %.0f requests seen by local-hv:\n",
		bd->total_us, bd->responses);
	for (size_t i = 0; i < BENCH_ARRAY_SIZE(rows); i++) {
		const struct bd_hop *h = rows[i].hop >= 0 ? &bd->hop[rows[i].hop] : NULL;
		double mean = h ? h->mean_us : rows[i].hop == -1 ? bd->guest_us : bd->wire_us;

		fprintf(f, "  %-52s %9.2f us", rows[i].label, mean);
		if (h && !isnan(h->p50_us) && h->n)
			fprintf(f, "  (p50 %.2f)", h->p50_us);
		fprintf(f, "\n");
	}
	fprintf(f, "  guest interrupts per I/O %.3f, local-hv sleeps per I/O %.3f, "
		   "io-server sleeps per I/O %.3f\n",
		bd->irqs_per_io, bd->hv_sleeps_per_io, bd->io_sleeps_per_io);
}

static void json_num(FILE *f, double v)
{
	if (isnan(v) || isinf(v))
		fprintf(f, "null");
	else
		fprintf(f, "%.4f", v);
}

void bd_print_json(FILE *f, const struct breakdown *bd)
{
	fprintf(f, ",\"breakdown\":{");
	for (int i = 0; i < BD_NR_HOPS; i++) {
		const struct bd_hop *h = &bd->hop[i];

		fprintf(f, "\"%s\":", hop_names[i]);
		if (!h->n) {
			fprintf(f, "null,");
			continue;
		}
		fprintf(f, "{\"mean\":");
		json_num(f, h->mean_us);
		fprintf(f, ",\"p50\":");
		json_num(f, h->p50_us);
		fprintf(f, ",\"n\":%.0f},", h->n);
	}
	fprintf(f, "\"total\":");
	json_num(f, bd->total_us);
	fprintf(f, ",\"guest\":");
	json_num(f, bd->guest_us);
	fprintf(f, ",\"wire\":");
	json_num(f, bd->wire_us);
	fprintf(f, ",\"responses\":%.0f,\"irqs_per_io\":", bd->responses);
	json_num(f, bd->irqs_per_io);
	fprintf(f, ",\"hv_sleeps_per_io\":");
	json_num(f, bd->hv_sleeps_per_io);
	fprintf(f, ",\"io_sleeps_per_io\":");
	json_num(f, bd->io_sleeps_per_io);
	fprintf(f, "}");
}

int bd_source_from_topology(struct bd_source *s, const char *path, const char *socket)
{
	struct vrio_topology *t = NULL;
	const struct vrio_topo_device *d = NULL;
	char err[512];
	int ret;

	ret = vrio_topology_load(path, &t, err, sizeof(err));
	if (ret < 0) {
		bench_err("--breakdown: %s", err);
		return ret;
	}
	for (size_t i = 0; i < t->n_devices; i++)
		if (strcmp(t->devices[i].socket, socket) == 0)
			d = &t->devices[i];
	ret = -ENOENT;
	if (!d) {
		bench_err("--breakdown: no device of %s has the socket %s", path, socket);
	} else if (d->type != VRIO_DEV_BLK) {
		bench_err("--breakdown: %s: device '%s' is not a blk device", path, d->name);
		ret = -EINVAL;
	} else if (!d->io_server->metrics || !d->host->metrics) {
		bench_err("--breakdown: %s: io_server '%s' and host '%s' both need metrics:", path,
			  d->io_server->name, d->host->name);
	} else {
		s->io_metrics = strdup(d->io_server->metrics);
		s->hv_metrics = strdup(d->host->metrics);
		s->device = strdup(d->name);
		ret = s->io_metrics && s->hv_metrics && s->device ? 0 : -ENOMEM;
	}
	vrio_topology_free(t);
	return ret;
}

void bd_source_fini(struct bd_source *s)
{
	free((char *)s->io_metrics);
	free((char *)s->hv_metrics);
	free((char *)s->device);
	memset(s, 0, sizeof(*s));
}

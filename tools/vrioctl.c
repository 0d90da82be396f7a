/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * vrioctl: the operator's command line. Checks and shows a topology file,
 * scrapes a daemon's /metrics, and calls a daemon's control socket
 * (JSON-RPC 2.0, see common/ctl.h).
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "addr.h"
#include "ctl.h"
#include "http.h"
#include "log.h"
#include "topology.h"

#define METRICS_TIMEOUT_MS 5000
#define CTL_DEFAULT_CONFIG "/etc/vrio/topology.yaml"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: vrioctl check FILE\n"
		"       vrioctl show FILE [--node NAME]\n"
		"       vrioctl metrics HOST:PORT\n"
		"       vrioctl DAEMON [--json] [--timeout SEC] status|devices|reload\n"
		"       vrioctl DAEMON [--json] [--timeout SEC] move DEVICE REACTOR|IO_SERVER\n"
		"       vrioctl DAEMON [--json] [--timeout SEC] call METHOD [JSON-PARAMS]\n"
		"\n"
		"  check    load a topology file and report the first error, if any\n"
		"  show     list the devices of a topology, or those of one host or io_server\n"
		"  metrics  fetch http://HOST:PORT/metrics from a vrio daemon (5 s timeout)\n"
		"  status   the daemon, its configuration and its reactors\n"
		"  devices  the daemon's devices: state, reactor, requests, errors\n"
		"  reload   re-read the topology file; prints what changed, or the error\n"
		"  move     io-server: move a device to another reactor; host: serve a device\n"
		"           with a standby on its other io-server\n"
		"  call     call a JSON-RPC method, print its result (rpc_get_methods lists them)\n"
		"\n"
		"  DAEMON is --socket PATH, a control socket, or --node NAME [--config FILE]:\n"
		"  the control socket of that io_server or host in the topology (default\n"
		"  " CTL_DEFAULT_CONFIG "). Options may come before or after the command.\n"
		"  --json     print the result, or the error, as JSON\n"
		"  --timeout  seconds to wait for the connection and the answer (default 10)\n"
		"\n"
		"  --version  print vrioctl's version and exit; --help  this\n"
		"\n"
		"Exit status: 0 ok, 1 the daemon answered an error or cannot be reached,\n"
		"2 usage. See vrioctl(8).\n");
}

static int is_help(const char *arg)
{
	return strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0;
}

static struct vrio_topology *load(const char *path)
{
	struct vrio_topology *t = NULL;
	char err[1024];

	if (vrio_topology_load(path, &t, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s\n", err);
		return NULL;
	}
	return t;
}

static int cmd_check(int argc, char **argv)
{
	struct vrio_topology *t;

	if (argc != 1) {
		usage(stderr);
		return 2;
	}
	t = load(argv[0]);
	if (!t)
		return 1;
	/* Warnings, not errors: a rack may run unauthenticated. */
	for (size_t i = 0; i < t->n_hosts; i++)
		if (!t->hosts[i].key_file)
			fprintf(stderr, "%s:%u:%u: warning: host '%s' has no key_file: any peer that says it is %s gets its devices\n",
				argv[0], t->hosts[i].line, t->hosts[i].col, t->hosts[i].name,
				t->hosts[i].name);
	for (size_t i = 0; i < t->n_networks && !t->trunk_key_file; i++) {
		if (t->networks[i].n_span < 2)
			continue;
		fprintf(stderr, "%s: warning: network '%s' spans io_servers and there is no trunk_key_file: any peer that says it is one of them joins its networks\n",
			argv[0], t->networks[i].name);
		break;
	}
	printf("%s: ok: %zu io_servers, %zu hosts, %zu devices\n", argv[0], t->n_io_servers,
	       t->n_hosts, t->n_devices);
	/* Where each network is switched, and the trunks that join it. */
	for (size_t i = 0; i < t->n_networks; i++) {
		const struct vrio_topo_network *n = &t->networks[i];
		size_t trunks = n->n_span * (n->n_span - (n->n_span > 0)) / 2;

		printf("network %s: %s", n->name, n->n_span ? "io_servers " : "no io_server");
		for (size_t j = 0; j < n->n_span; j++)
			printf("%s%s", j ? ", " : "", n->span[j]->name);
		if (trunks)
			printf(" (%zu trunk%s)", trunks, trunks > 1 ? "s" : "");
		printf("\n");
	}
	vrio_topology_free(t);
	return 0;
}

/* 268435456 -> "256M": the largest binary unit that divides the size. */
static void fmt_size(char *buf, size_t len, uint64_t v)
{
	static const char units[] = "KMGT";
	int u = -1;

	while (u + 1 < (int)sizeof(units) - 1 && v >= 1024 && v % 1024 == 0) {
		v /= 1024;
		u++;
	}
	if (u < 0)
		snprintf(buf, len, "%" PRIu64, v);
	else
		snprintf(buf, len, "%" PRIu64 "%c", v, units[u]);
}

static void fmt_backend(char *buf, size_t len, const struct vrio_topo_device *d)
{
	char size[32];

	fmt_size(size, sizeof(size), d->backend.size);
	if (d->type == VRIO_DEV_NET)
		snprintf(buf, len, "network %s, mac %s", d->network->name, d->mac);
	else if (d->backend.kind == VRIO_BACKEND_RAM)
		snprintf(buf, len, "ram %s", size);
	else if (d->backend.kind == VRIO_BACKEND_NULL)
		snprintf(buf, len, "null %s", size);
	else if (d->backend.size)
		snprintf(buf, len, "%s (%s%s)", d->backend.path, size,
			 d->backend.direct ? ", direct" : "");
	else
		snprintf(buf, len, "%s%s", d->backend.path, d->backend.direct ? " (direct)" : "");
}

enum { COL_NAME, COL_TYPE, COL_HOST, COL_IO_SERVER, COL_SOCKET, COL_BACKEND, COL_QUEUES, N_COLS };

static const char *const col_titles[N_COLS] = {
	"NAME", "TYPE", "HOST", "IO_SERVER", "SOCKET", "BACKEND", "QUEUES",
};

struct show_row {
	char backend[4200];
	char queues[16];
	const char *cell[N_COLS];
};

static void show_row_fill(struct show_row *r, const struct vrio_topo_device *d)
{
	fmt_backend(r->backend, sizeof(r->backend), d);
	snprintf(r->queues, sizeof(r->queues), "%u", d->queues);
	r->cell[COL_NAME] = d->name;
	r->cell[COL_TYPE] = vrio_dev_type_name(d->type);
	r->cell[COL_HOST] = d->host->name;
	r->cell[COL_IO_SERVER] = d->io_server->name;
	r->cell[COL_SOCKET] = d->socket;
	r->cell[COL_BACKEND] = r->backend;
	r->cell[COL_QUEUES] = r->queues;
}

static void show_print(const char *const *cell, const size_t *width)
{
	for (int c = 0; c < N_COLS; c++) {
		if (c + 1 < N_COLS)
			printf("%-*s  ", (int)width[c], cell[c]);
		else
			printf("%s\n", cell[c]);
	}
}

static int show_selected(const struct vrio_topo_device *d, const char *node)
{
	return !node || strcmp(d->host->name, node) == 0 || strcmp(d->io_server->name, node) == 0;
}

static int cmd_show(int argc, char **argv)
{
	size_t width[N_COLS];
	const char *node = NULL;
	struct vrio_topology *t;
	struct show_row row;

	if (argc == 3 && strcmp(argv[1], "--node") == 0)
		node = argv[2];
	else if (argc != 1) {
		usage(stderr);
		return 2;
	}
	t = load(argv[0]);
	if (!t)
		return 1;
	if (node && !vrio_topology_host(t, node) && !vrio_topology_ioserver(t, node)) {
		fprintf(stderr, "vrioctl: %s: no host or io_server named '%s'\n", argv[0], node);
		vrio_topology_free(t);
		return 1;
	}

	for (int c = 0; c < N_COLS; c++)
		width[c] = strlen(col_titles[c]);
	for (size_t i = 0; i < t->n_devices; i++) {
		if (!show_selected(&t->devices[i], node))
			continue;
		show_row_fill(&row, &t->devices[i]);
		for (int c = 0; c < N_COLS; c++)
			if (strlen(row.cell[c]) > width[c])
				width[c] = strlen(row.cell[c]);
	}
	show_print(col_titles, width);
	for (size_t i = 0; i < t->n_devices; i++) {
		if (!show_selected(&t->devices[i], node))
			continue;
		show_row_fill(&row, &t->devices[i]);
		show_print(row.cell, width);
	}
	vrio_topology_free(t);
	return 0;
}

static int cmd_metrics(int argc, char **argv)
{
	char *body = NULL, err[256];
	size_t len = 0;

	if (argc != 1) {
		usage(stderr);
		return 2;
	}
	if (vrio_http_get(argv[0], "/metrics", METRICS_TIMEOUT_MS, &body, &len, err,
			  sizeof(err)) < 0) {
		fprintf(stderr, "vrioctl: %s\n", err);
		return 1;
	}
	if (fwrite(body, 1, len, stdout) != len || fflush(stdout) != 0) {
		fprintf(stderr, "vrioctl: writing the metrics: %s\n", strerror(errno));
		free(body);
		return 1;
	}
	free(body);
	return 0;
}

/*
 * The daemons' control sockets: one JSON-RPC 2.0 call per run. Options may
 * come before or after the verb; check, show and metrics keep their own
 * arguments.
 */

#define CTL_TIMEOUT_S	   10.0
#define CTL_MAX_ANSWER	   (64u << 20)

struct ctl_opts {
	const char *socket;
	const char *node;
	const char *config;
	const char *timeout;
	int json;
	char **args;		/* the verb, then its arguments */
	int n_args;
};

static const struct {
	const char *name;
	size_t offset;		/* of a const char * in struct ctl_opts, or of int json */
	int has_arg;
} ctl_options[] = {
	{ "--socket", offsetof(struct ctl_opts, socket), 1 },
	{ "--node", offsetof(struct ctl_opts, node), 1 },
	{ "--config", offsetof(struct ctl_opts, config), 1 },
	{ "--timeout", offsetof(struct ctl_opts, timeout), 1 },
	{ "--json", offsetof(struct ctl_opts, json), 0 },
};

#define N_CTL_OPTIONS (sizeof(ctl_options) / sizeof(ctl_options[0]))

/* Splits argv into options and the verb with its arguments; -EINVAL with
 * a message on stderr if they do not parse. args must hold argc entries. */
static int ctl_parse_opts(int argc, char **argv, struct ctl_opts *o, char **args)
{
	*o = (struct ctl_opts){ .args = args };
	for (int i = 0; i < argc; i++) {
		size_t k;

		if (argv[i][0] != '-' || argv[i][1] == '\0') {
			o->args[o->n_args++] = argv[i];
			continue;
		}
		for (k = 0; k < N_CTL_OPTIONS; k++)
			if (strcmp(argv[i], ctl_options[k].name) == 0)
				break;
		if (k == N_CTL_OPTIONS) {
			fprintf(stderr, "vrioctl: unknown option '%s'\n", argv[i]);
			return -EINVAL;
		}
		if (!ctl_options[k].has_arg) {
			*(int *)((char *)o + ctl_options[k].offset) = 1;
			continue;
		}
		if (i + 1 == argc) {
			fprintf(stderr, "vrioctl: %s needs a value\n", argv[i]);
			return -EINVAL;
		}
		*(const char **)((char *)o + ctl_options[k].offset) = argv[++i];
	}
	return 0;
}

static int ctl_parse_timeout(const char *s, double *out)
{
	char *end;
	double v;

	if (!s) {
		*out = CTL_TIMEOUT_S;
		return 0;
	}
	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end || !(v > 0 && v <= 86400)) {
		fprintf(stderr, "vrioctl: --timeout '%s': expected seconds, more than 0\n", s);
		return -EINVAL;
	}
	*out = v;
	return 0;
}

/* The node's control socket from the topology; 0, or an exit status. */
static int ctl_node_socket(const struct ctl_opts *o, char *path, size_t len)
{
	const char *config = o->config ? o->config : CTL_DEFAULT_CONFIG;
	const struct vrio_topo_ioserver *s;
	const struct vrio_topo_host *h;
	struct vrio_topology *t;
	int ret = 0;

	t = load(config);
	if (!t)
		return 1;
	s = vrio_topology_ioserver(t, o->node);
	h = vrio_topology_host(t, o->node);
	if (s && h && strcmp(s->control, h->control) != 0) {
		fprintf(stderr, "vrioctl: %s: '%s' is both an io_server (%s) and a host (%s); "
			"use --socket\n", config, o->node, s->control, h->control);
		ret = 2;
	} else if (!s && !h) {
		fprintf(stderr, "vrioctl: %s: no host or io_server named '%s'\n", config, o->node);
		ret = 1;
	} else {
		snprintf(path, len, "%s", s ? s->control : h->control);
	}
	vrio_topology_free(t);
	return ret;
}

/* Which socket to call; 0, or an exit status. */
static int ctl_socket_path(const struct ctl_opts *o, char *path, size_t len)
{
	if (o->socket && (o->node || o->config)) {
		fprintf(stderr, "vrioctl: --socket, or --node with --config, not both\n");
		return 2;
	}
	if (o->socket) {
		snprintf(path, len, "%s", o->socket);
		return 0;
	}
	if (!o->node) {
		fprintf(stderr, "vrioctl: %s: which daemon? --socket PATH or --node NAME\n",
			o->args[0]);
		return 2;
	}
	return ctl_node_socket(o, path, len);
}

static const char *ctl_hint(int err)
{
	if (err == -ENOENT || err == -ECONNREFUSED)
		return " (is the daemon running?)";
	if (err == -EACCES || err == -EPERM)
		return " (the control socket is root only)";
	return "";
}

static int ctl_connect(const char *path, uint64_t deadline, int *out)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd, ret;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "vrioctl: %s: path too long for a unix socket\n", path);
		return -ENAMETOOLONG;
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		ret = -errno;
		fprintf(stderr, "vrioctl: %s: socket: %s\n", path, strerror(-ret));
		return ret;
	}
	/* A unix socket connects at once, or says EAGAIN while the backlog is full. */
	while (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		ret = -errno;
		if (ret == -EAGAIN && vrio_remaining_ms(deadline) > 0) {
			poll(NULL, 0, 10);
			continue;
		}
		if (ret == -EAGAIN)
			fprintf(stderr, "vrioctl: %s: connect: no room within the timeout\n", path);
		else
			fprintf(stderr, "vrioctl: %s: connect: %s%s\n", path, strerror(-ret),
				ctl_hint(ret));
		close(fd);
		return ret;
	}
	*out = fd;
	return 0;
}

/* Reads up to the answer's "\n"; the line ends with NUL instead. */
static int ctl_recv_line(int fd, uint64_t deadline, char **out)
{
	size_t len = 0, cap = 4096;
	char *buf = malloc(cap), *nbuf, *nl = NULL;
	ssize_t n;
	int ret = 0;

	while (buf && !nl) {
		if (cap - len < 1024) {
			nbuf = cap < CTL_MAX_ANSWER ? realloc(buf, cap * 2) : NULL;
			if (!nbuf) {
				ret = cap < CTL_MAX_ANSWER ? -ENOMEM : -EFBIG;
				break;
			}
			buf = nbuf;
			cap *= 2;
		}
		n = recv(fd, buf + len, cap - len - 1, 0);
		if (n > 0) {
			nl = memchr(buf + len, '\n', (size_t)n);
			len += (size_t)n;
			continue;
		}
		if (n == 0) {
			ret = -ECONNRESET;
			break;
		}
		if (errno == EINTR)
			continue;
		ret = errno == EAGAIN ? vrio_wait_fd(fd, POLLIN, deadline) : -errno;
		if (ret < 0)
			break;
	}
	if (!buf)
		return -ENOMEM;
	if (!nl) {
		free(buf);
		return ret;
	}
	*nl = '\0';
	*out = buf;
	return 0;
}

/* One call: the whole answer object, or NULL after a message on stderr. */
static json_t *ctl_call(const char *path, const char *method, json_t *params, double timeout)
{
	uint64_t deadline = vrio_now_ns() + (uint64_t)(timeout * 1e9);
	json_t *req, *ans = NULL;
	char *text, *line = NULL;
	json_error_t je;
	int fd = -1, ret;

	req = json_pack("{s:s, s:s, s:O*, s:i}", "jsonrpc", "2.0", "method", method, "params",
			params, "id", 1);
	text = req ? json_dumps(req, JSON_COMPACT) : NULL;
	json_decref(req);
	if (!text) {
		fprintf(stderr, "vrioctl: %s: cannot build the request\n", method);
		return NULL;
	}
	if (ctl_connect(path, deadline, &fd) < 0)
		goto out;
	ret = vrio_send_all(fd, text, strlen(text), deadline);
	if (ret == 0)
		ret = vrio_send_all(fd, "\n", 1, deadline);
	if (ret == 0)
		ret = ctl_recv_line(fd, deadline, &line);
	if (ret == -ETIMEDOUT)
		fprintf(stderr, "vrioctl: %s: no answer within %g s\n", path, timeout);
	else if (ret == -ECONNRESET || ret == -EPIPE)
		fprintf(stderr, "vrioctl: %s: the daemon closed the connection\n", path);
	else if (ret < 0)
		fprintf(stderr, "vrioctl: %s: %s\n", path, strerror(-ret));
	if (ret < 0)
		goto out;
	ans = json_loads(line, 0, &je);
	if (!json_is_object(ans) ||
	    !json_object_get(ans, "error") == !json_object_get(ans, "result")) {
		fprintf(stderr, "vrioctl: %s: not a JSON-RPC answer: %.200s\n", path, line);
		json_decref(ans);
		ans = NULL;
	}
out:
	if (fd >= 0)
		close(fd);
	free(line);
	free(text);
	return ans;
}

/* Rendering: missing or mistyped fields print as "-" or "?", never crash. */

static const char *j_str(const json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s ? s : "?";
}

/* A scalar as text: null and absent are "-". */
static void j_fmt(char *buf, size_t len, const json_t *v)
{
	if (json_is_integer(v))
		snprintf(buf, len, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
	else if (json_is_real(v))
		snprintf(buf, len, "%g", json_real_value(v));
	else if (json_is_string(v))
		snprintf(buf, len, "%s", json_string_value(v));
	else if (json_is_boolean(v))
		snprintf(buf, len, "%s", json_is_true(v) ? "true" : "false");
	else if (!v || json_is_null(v))
		snprintf(buf, len, "-");
	else
		snprintf(buf, len, "?");
}

static const char *j_fmt_key(char *buf, size_t len, const json_t *o, const char *key)
{
	j_fmt(buf, len, json_object_get(o, key));
	return buf;
}

/* 50593792 -> "48.3M": one decimal in the largest binary unit. */
static void fmt_bytes(char *buf, size_t len, const json_t *v)
{
	static const char units[] = "KMGTPE";
	double b;
	int u = -1;

	if (!json_is_number(v) || json_number_value(v) < 1024) {
		j_fmt(buf, len, v);
		return;
	}
	for (b = json_number_value(v); b >= 1024 && u + 1 < (int)sizeof(units) - 1; u++)
		b /= 1024;
	snprintf(buf, len, "%.1f%c", b, units[u]);
}

/* 12.5 -> "12.5 s", 3725 -> "1h 02m", 90061 -> "1d 01h". */
static void fmt_uptime(char *buf, size_t len, const json_t *v)
{
	double s = json_number_value(v);
	unsigned long t = (unsigned long)s;

	if (!json_is_number(v) || s < 0)
		snprintf(buf, len, "?");
	else if (s < 60)
		snprintf(buf, len, "%.1f s", s);
	else if (t < 3600)
		snprintf(buf, len, "%lum %02lus", t / 60, t % 60);
	else if (t < 86400)
		snprintf(buf, len, "%luh %02lum", t / 3600, t / 60 % 60);
	else
		snprintf(buf, len, "%lud %02luh", t / 86400, t / 3600 % 24);
}

/* A device's ["throttle", "crypt"] -> "throttle,crypt", in the chain's
 * order; "-" for none (and on a local-hv, which keeps no chains). A stage
 * whose own state (an object under its name) is not "ok" shows it:
 * "mirror(degraded)", "mirror(resyncing 40%)". */
static void fmt_chain(char *buf, size_t len, const json_t *dev)
{
	const json_t *st, *own;
	const char *name, *state;
	size_t i, off = 0;
	char extra[48];
	int n;

	snprintf(buf, len, "-");
	json_array_foreach(json_object_get(dev, "interpose"), i, st) {
		name = json_is_string(st) ? json_string_value(st) : "?";
		own = json_object_get(dev, name);
		state = json_string_value(json_object_get(own, "state"));
		extra[0] = '\0';
		if (state && !strcmp(state, "resyncing"))
			snprintf(extra, sizeof(extra), "(%s %.0f%%)", state,
				 100.0 * json_number_value(json_object_get(own, "resync_progress")));
		else if (state && strcmp(state, "ok"))
			snprintf(extra, sizeof(extra), "(%s)", state);
		n = snprintf(buf + off, len - off, "%s%s%s", i ? "," : "", name, extra);
		if (n < 0 || (size_t)n >= len - off)
			break;
		off += (size_t)n;
	}
}

static void render_status(FILE *f, const json_t *r)
{
	const json_t *cfg = json_object_get(r, "config");
	const json_t *reloads = json_object_get(cfg, "reloads");
	const json_t *reactor, *err = json_object_get(cfg, "last_error");
	const char *sha = j_str(cfg, "sha256");
	char a[64], b[64], c[64];
	size_t i;

	fmt_uptime(c, sizeof(c), json_object_get(r, "uptime_s"));
	fprintf(f, "%s %s (version %s, pid %s), up %s\n", j_str(r, "daemon"), j_str(r, "node"),
		j_str(r, "version"), j_fmt_key(a, sizeof(a), r, "pid"), c);
	fprintf(f, "config %s, generation %s, sha256 %.12s%s, reloads %s ok / %s failed\n",
		j_str(cfg, "path"), j_fmt_key(c, sizeof(c), cfg, "generation"), sha,
		strlen(sha) > 12 ? "..." : "", j_fmt_key(a, sizeof(a), reloads, "ok"),
		j_fmt_key(b, sizeof(b), reloads, "failed"));
	if (json_is_string(err))
		fprintf(f, "last reload failed: %s\n", json_string_value(err));
	fprintf(f, "reactor  busy   devices\n");
	json_array_foreach(json_object_get(r, "reactors"), i, reactor) {
		const json_t *busy = json_object_get(reactor, "busy");

		if (json_is_number(busy))
			snprintf(b, sizeof(b), "%4.1f%%", json_number_value(busy) * 100);
		else
			snprintf(b, sizeof(b), "    -");
		fprintf(f, "%-7s  %s  %s%s\n", j_fmt_key(a, sizeof(a), reactor, "id"), b,
			j_fmt_key(c, sizeof(c), reactor, "devices"),
			json_is_true(json_object_get(reactor, "parked")) ? "  (parked)" : "");
	}
}

static const struct dev_col {
	const char *title;
	const char *key;
	int number;		/* right-aligned */
	void (*fmt)(char *buf, size_t len, const json_t *v);
} dev_cols[] = {
	{ "NAME", "name", 0, j_fmt },
	{ "TYPE", "type", 0, j_fmt },
	{ "STATE", "state", 0, j_fmt },
	{ "HOST", "host", 0, j_fmt },
	{ "IO-SERVER", "io_server", 0, j_fmt },
	{ "REACTOR", "reactor", 1, j_fmt },
	{ "IN-FLIGHT", "in_flight", 1, j_fmt },
	{ "REQUESTS", "requests", 1, j_fmt },
	{ "BYTES", "bytes", 1, fmt_bytes },
	{ "ERRORS", "errors", 1, j_fmt },
	{ "MOVES", "moves", 1, j_fmt },
	{ "INTERPOSE", NULL, 0, fmt_chain },	/* NULL: the whole device */
};

#define N_DEV_COLS (sizeof(dev_cols) / sizeof(dev_cols[0]))

struct dev_row {
	char cell[N_DEV_COLS][72];
};

static void dev_print(FILE *f, const struct dev_row *row, const int *width)
{
	for (size_t c = 0; c < N_DEV_COLS; c++) {
		const char *sep = c + 1 < N_DEV_COLS ? "  " : "\n";

		if (dev_cols[c].number)
			fprintf(f, "%*s%s", width[c], row->cell[c], sep);
		else if (c + 1 < N_DEV_COLS)
			fprintf(f, "%-*s%s", width[c], row->cell[c], sep);
		else
			fprintf(f, "%s%s", row->cell[c], sep);
	}
}

static void render_devices(FILE *f, const json_t *r)
{
	const json_t *devs = json_object_get(r, "devices"), *d;
	size_t n = json_array_size(devs), i, c;
	struct dev_row *rows = calloc(n + 1, sizeof(*rows));
	int width[N_DEV_COLS];

	if (!rows) {
		fprintf(stderr, "vrioctl: out of memory\n");
		return;
	}
	for (c = 0; c < N_DEV_COLS; c++)
		snprintf(rows[0].cell[c], sizeof(rows[0].cell[c]), "%s", dev_cols[c].title);
	json_array_foreach(devs, i, d)
		for (c = 0; c < N_DEV_COLS; c++)
			dev_cols[c].fmt(rows[i + 1].cell[c], sizeof(rows[i + 1].cell[c]),
					dev_cols[c].key ? json_object_get(d, dev_cols[c].key) : d);
	for (c = 0; c < N_DEV_COLS; c++) {
		width[c] = 0;
		for (i = 0; i <= n; i++)
			if ((int)strlen(rows[i].cell[c]) > width[c])
				width[c] = (int)strlen(rows[i].cell[c]);
	}
	for (i = 0; i <= n; i++)
		dev_print(f, &rows[i], width);
	free(rows);
}

/* "a, b" from an array of strings. */
static void print_names(FILE *f, const json_t *names)
{
	const json_t *v;
	size_t i;

	json_array_foreach(names, i, v)
		fprintf(f, "%s%s", i ? ", " : "", json_is_string(v) ? json_string_value(v) : "?");
}

/* "N what (a, b)", without the parentheses when N is 0; a changed device
 * reads "vm1-disk: read_only, queues", with "; " between devices. */
static void print_counted(FILE *f, const json_t *list, const char *what)
{
	size_t i, n = json_array_size(list);
	const json_t *v;

	fprintf(f, "%zu %s%s", n, what, n ? " (" : "");
	json_array_foreach(list, i, v) {
		if (json_is_string(v)) {
			fprintf(f, "%s%s", json_string_value(v), i + 1 < n ? ", " : ")");
			continue;
		}
		fprintf(f, "%s: ", j_str(v, "device"));
		print_names(f, json_object_get(v, "keys"));
		fprintf(f, "%s", i + 1 < n ? "; " : ")");
	}
}

static void render_reload(FILE *f, const json_t *r)
{
	char gen[32];

	fprintf(f, "reloaded generation %s: ", j_fmt_key(gen, sizeof(gen), r, "generation"));
	print_counted(f, json_object_get(r, "added"), "added");
	fprintf(f, ", ");
	print_counted(f, json_object_get(r, "removed"), "removed");
	fprintf(f, ", ");
	print_counted(f, json_object_get(r, "changed"), "changed");
	fprintf(f, "\n");
}

static void render_move(FILE *f, const json_t *r)
{
	const json_t *us = json_object_get(r, "duration_us");
	char from[32], to[32];

	j_fmt_key(from, sizeof(from), r, "from");
	j_fmt_key(to, sizeof(to), r, "to");
	if (json_is_string(json_object_get(r, "to"))) {
		if (strcmp(from, to) == 0)
			fprintf(f, "%s: already served by io-server %s\n", j_str(r, "device"), to);
		else
			fprintf(f, "%s: moved from io-server %s to %s in %.2f ms\n",
				j_str(r, "device"), from, to,
				json_number_value(us) / 1000);
		return;
	}
	if (strcmp(from, to) == 0)
		fprintf(f, "%s: already on reactor %s\n", j_str(r, "device"), to);
	else if (json_is_number(us))
		fprintf(f, "%s: moved from reactor %s to %s in %.2f ms\n", j_str(r, "device"), from,
			to, json_number_value(us) / 1000);
	else
		fprintf(f, "%s: moved from reactor %s to %s\n", j_str(r, "device"), from, to);
}

static void render_json(FILE *f, const json_t *r)
{
	json_dumpf(r, f, JSON_INDENT(2) | JSON_ENCODE_ANY);
	fputc('\n', f);
}

/* Params builders: 0, or -EINVAL after a message (a usage error). */

static int params_move(int argc, char **argv, json_t **out)
{
	unsigned long reactor;
	char *end;

	errno = 0;
	reactor = strtoul(argv[1], &end, 10);
	if (argv[1][0] && !isdigit((unsigned char)argv[1][0]) && argv[1][0] != '-') {
		/* local-hv: a device's other io-server, by name. */
		*out = json_pack("{s:s, s:s}", "device", argv[0], "io_server", argv[1]);
		return *out ? 0 : -ENOMEM;
	}
	if (errno || end == argv[1] || *end || argv[1][0] == '-' || reactor > INT_MAX) {
		fprintf(stderr, "vrioctl: move: '%s' is not a reactor number\n", argv[1]);
		return -EINVAL;
	}
	*out = json_pack("{s:s, s:i}", "device", argv[0], "reactor", (int)reactor);
	return *out ? 0 : -ENOMEM;
}

static int params_call(int argc, char **argv, json_t **out)
{
	json_error_t je;

	if (argc < 2)
		return 0;
	*out = json_loads(argv[1], 0, &je);
	if (!*out) {
		fprintf(stderr, "vrioctl: call %s: params: %s at column %d\n", argv[0], je.text,
			je.column);
		return -EINVAL;
	}
	return 0;
}

static const struct ctl_verb {
	const char *name;
	const char *method;	/* NULL: the verb's first argument */
	int min_args, max_args;
	int (*params)(int argc, char **argv, json_t **out);	/* NULL: none */
	void (*render)(FILE *f, const json_t *result);
} ctl_verbs[] = {
	{ "status", "status", 0, 0, NULL, render_status },
	{ "devices", "devices", 0, 0, NULL, render_devices },
	{ "reload", "reload", 0, 0, NULL, render_reload },
	{ "move", "move", 2, 2, params_move, render_move },
	{ "call", NULL, 1, 2, params_call, render_json },
};

#define N_CTL_VERBS (sizeof(ctl_verbs) / sizeof(ctl_verbs[0]))

static const struct ctl_verb *ctl_verb(const char *name)
{
	for (size_t i = 0; i < N_CTL_VERBS; i++)
		if (strcmp(ctl_verbs[i].name, name) == 0)
			return &ctl_verbs[i];
	return NULL;
}

/*
 * An error answer: the message alone when it is the daemon's word for the
 * operator (an application error, bad params: "FILE:LINE:COL: ..."),
 * with the socket and method when the call itself went wrong.
 */
static void ctl_print_error(const char *path, const char *method, const json_t *err)
{
	json_int_t code = json_integer_value(json_object_get(err, "code"));
	const char *msg = json_string_value(json_object_get(err, "message"));

	if (!msg)
		msg = "error without a message";
	if (code <= -32600 && code >= -32700 && code != VRIO_CTL_INVALID_PARAMS)
		fprintf(stderr, "vrioctl: %s: %s: %s\n", path, method, msg);
	else
		fprintf(stderr, "%s\n", msg);
}

static int ctl_run(const struct ctl_opts *o, const struct ctl_verb *v, double timeout)
{
	const char *method = v->method ? v->method : o->args[1];
	char path[PATH_MAX];
	json_t *params = NULL, *ans, *err;
	int ret;

	if (v->params && v->params(o->n_args - 1, o->args + 1, &params) < 0)
		return 2;
	ret = ctl_socket_path(o, path, sizeof(path));
	if (ret) {
		json_decref(params);
		return ret;
	}
	ans = ctl_call(path, method, params, timeout);
	json_decref(params);
	if (!ans)
		return 1;
	err = json_object_get(ans, "error");
	if (err && o->json)
		render_json(stdout, err);
	else if (err)
		ctl_print_error(path, method, err);
	else if (o->json)
		render_json(stdout, json_object_get(ans, "result"));
	else
		v->render(stdout, json_object_get(ans, "result"));
	json_decref(ans);
	return err ? 1 : 0;
}

/* vrioctl [options] VERB [args] [options]: argv without the program name. */
static int cmd_ctl(int argc, char **argv)
{
	char **args = calloc((size_t)argc + 1, sizeof(*args));
	const struct ctl_verb *v = NULL;
	struct ctl_opts o;
	double timeout;
	int ret = 2;

	if (!args)
		return 1;
	if (ctl_parse_opts(argc, argv, &o, args) < 0 || ctl_parse_timeout(o.timeout, &timeout) < 0)
		goto out;
	if (o.n_args == 0) {
		fprintf(stderr, "vrioctl: no command\n");
		goto out;
	}
	v = ctl_verb(o.args[0]);
	if (!v) {
		fprintf(stderr, "vrioctl: unknown command '%s'\n", o.args[0]);
		goto out;
	}
	if (o.n_args - 1 < v->min_args || o.n_args - 1 > v->max_args) {
		fprintf(stderr, "vrioctl: %s: wrong number of arguments\n", v->name);
		goto out;
	}
	ret = ctl_run(&o, v, timeout);
out:
	if (ret == 2)
		usage(stderr);
	free(args);
	return ret;
}

static const struct {
	const char *name;
	int (*run)(int argc, char **argv);
} commands[] = {
	{ "check", cmd_check },
	{ "show", cmd_show },
	{ "metrics", cmd_metrics },
};

int main(int argc, char **argv)
{
	vrio_log_init("vrioctl", VRIO_LOG_WARN);
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	for (int i = 1; i < argc; i++) {
		if (is_help(argv[i])) {
			usage(stdout);
			return 0;
		}
		if (strcmp(argv[i], "--version") == 0) {
			printf("vrioctl %s\n", VRIO_VERSION);
			return 0;
		}
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(argv[1], commands[i].name) == 0)
			return commands[i].run(argc - 2, argv + 2);
	return cmd_ctl(argc - 1, argv + 1);
}

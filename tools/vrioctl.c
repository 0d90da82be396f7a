/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * vrioctl: the operator's command line. Checks and shows a topology file and
 * scrapes a daemon's /metrics.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "addr.h"
#include "log.h"
#include "topology.h"

#define METRICS_TIMEOUT_MS 5000
#define METRICS_MAX_BYTES  (64u << 20)

static void usage(FILE *f)
{
	fprintf(f,
		"usage: vrioctl check FILE\n"
		"       vrioctl show FILE [--node NAME]\n"
		"       vrioctl metrics HOST:PORT\n"
		"\n"
		"  check    load a topology file and report the first error, if any\n"
		"  show     list the devices of a topology, or those of one host or io_server\n"
		"  metrics  fetch http://HOST:PORT/metrics from a vrio daemon (5 s timeout)\n");
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
	printf("%s: ok: %zu io_servers, %zu hosts, %zu devices\n", argv[0], t->n_io_servers,
	       t->n_hosts, t->n_devices);
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

static int remaining_ms(uint64_t deadline)
{
	uint64_t now = vrio_now_ns();

	return now >= deadline ? 0 : (int)((deadline - now) / 1000000 + 1);
}

/* Wait for fd to become ready for `events` before the deadline. */
static int wait_fd(int fd, short events, uint64_t deadline)
{
	struct pollfd p = { .fd = fd, .events = events };

	for (;;) {
		int ms = remaining_ms(deadline);
		int n;

		if (ms == 0)
			return -ETIMEDOUT;
		n = poll(&p, 1, ms);
		if (n > 0)
			return 0;
		if (n == 0)
			return -ETIMEDOUT;
		if (errno != EINTR)
			return -errno;
	}
}

static int http_connect(const char *addr, uint64_t deadline, int *out)
{
	struct sockaddr_storage ss;
	socklen_t sslen, len;
	int fd, ret, soerr;

	if (vrio_parse_hostport(addr, &ss, &sslen) < 0) {
		fprintf(stderr, "vrioctl: '%s': expected HOST:PORT\n", addr);
		return -EINVAL;
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		ret = -errno;
		fprintf(stderr, "vrioctl: %s: socket: %s\n", addr, strerror(-ret));
		return ret;
	}
	if (connect(fd, (struct sockaddr *)&ss, sslen) < 0) {
		if (errno != EINPROGRESS) {
			ret = -errno;
			goto err;
		}
		ret = wait_fd(fd, POLLOUT, deadline);
		if (ret < 0)
			goto err;
		len = sizeof(soerr);
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0) {
			ret = -errno;
			goto err;
		}
		if (soerr) {
			ret = -soerr;
			goto err;
		}
	}
	*out = fd;
	return 0;
err:
	fprintf(stderr, "vrioctl: %s: connect: %s\n", addr, strerror(-ret));
	close(fd);
	return ret;
}

static int http_send(int fd, const char *buf, size_t len, uint64_t deadline)
{
	while (len > 0) {
		ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN)
				return -errno;
			n = wait_fd(fd, POLLOUT, deadline);
			if (n < 0)
				return (int)n;
			continue;
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Read until the peer closes; the response ends with NUL for parsing. */
static int http_recv(int fd, char **out, size_t *outlen, uint64_t deadline)
{
	size_t len = 0, cap = 0;
	char *buf = NULL, *nbuf;
	int ret;

	for (;;) {
		ssize_t n;

		if (cap - len < 4096) {
			if (cap >= METRICS_MAX_BYTES) {
				ret = -EFBIG;
				goto err;
			}
			cap = cap ? cap * 2 : 65536;
			nbuf = realloc(buf, cap);
			if (!nbuf) {
				ret = -ENOMEM;
				goto err;
			}
			buf = nbuf;
		}
		n = recv(fd, buf + len, cap - len - 1, 0);
		if (n > 0) {
			len += (size_t)n;
			continue;
		}
		if (n == 0)
			break;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN) {
			ret = -errno;
			goto err;
		}
		ret = wait_fd(fd, POLLIN, deadline);
		if (ret < 0)
			goto err;
	}
	buf[len] = '\0';
	*out = buf;
	*outlen = len;
	return 0;
err:
	free(buf);
	return ret;
}

static int cmd_metrics(int argc, char **argv)
{
	uint64_t deadline = vrio_now_ns() + (uint64_t)METRICS_TIMEOUT_MS * 1000000;
	const char *addr, *body, *eol;
	char req[512], *resp = NULL;
	int fd = -1, n, ret, status;
	size_t len = 0;

	if (argc != 1) {
		usage(stderr);
		return 2;
	}
	addr = argv[0];
	if (http_connect(addr, deadline, &fd) < 0)
		return 1;
	n = snprintf(req, sizeof(req),
		     "GET /metrics HTTP/1.0\r\nHost: %s\r\nAccept: text/plain\r\nUser-Agent: vrioctl\r\n\r\n",
		     addr);
	if (n < 0 || (size_t)n >= sizeof(req)) {
		fprintf(stderr, "vrioctl: '%s': address too long\n", addr);
		close(fd);
		return 1;
	}
	ret = http_send(fd, req, (size_t)n, deadline);
	if (ret == 0)
		ret = http_recv(fd, &resp, &len, deadline);
	close(fd);
	if (ret == -ETIMEDOUT) {
		fprintf(stderr, "vrioctl: %s: no complete answer within %d s\n", addr,
			METRICS_TIMEOUT_MS / 1000);
		return 1;
	}
	if (ret < 0) {
		fprintf(stderr, "vrioctl: %s: %s\n", addr, strerror(-ret));
		return 1;
	}

	if (sscanf(resp, "HTTP/%*d.%*d %d", &status) != 1) {
		fprintf(stderr, "vrioctl: %s: not an HTTP response\n", addr);
		goto fail;
	}
	if (status != 200) {
		eol = strpbrk(resp, "\r\n");
		fprintf(stderr, "vrioctl: %s: the server answered '%.*s'\n", addr,
			(int)(eol ? eol - resp : 80), resp);
		goto fail;
	}
	body = strstr(resp, "\r\n\r\n");
	if (!body) {
		fprintf(stderr, "vrioctl: %s: the response has no body\n", addr);
		goto fail;
	}
	body += 4;
	if (fwrite(body, 1, len - (size_t)(body - resp), stdout) != len - (size_t)(body - resp) ||
	    fflush(stdout) != 0) {
		fprintf(stderr, "vrioctl: writing the metrics: %s\n", strerror(errno));
		goto fail;
	}
	free(resp);
	return 0;
fail:
	free(resp);
	return 1;
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
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(argv[1], commands[i].name) == 0)
			return commands[i].run(argc - 2, argv + 2);
	fprintf(stderr, "vrioctl: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return 2;
}

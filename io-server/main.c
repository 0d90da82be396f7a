/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * vrio-ioserver: options, signals, systemd notification, lifecycle.
 *
 * The main thread accepts connections, serves the control socket, reloads
 * the topology and runs the watchdog; reactors do everything else. Signals
 * only set a flag: the main loop sees it (they are unblocked only inside
 * ppoll, so none is missed). SIGHUP reloads; SIGTERM and SIGINT tell
 * systemd it is stopping, stop accepting, let the reactors drain and exit.
 */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

#include "ctl.h"
#include "ioserver_internal.h"
#include "reload.h"
#include "signals.h"
#include "log.h"

#define MAIN_TICK_MS		1000
#define MAIN_ACCEPT_BACKOFF_NS	(100ull * 1000000ull)

struct ios_opts {
	const char *config;
	const char *node;
	enum vrio_log_level log_level;
};


static void ios_opts_init(struct ios_opts *o)
{
	o->config = NULL;
	o->node = NULL;
	o->log_level = VRIO_LOG_INFO;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: vrio-ioserver --config FILE --node NAME [--log-level LEVEL]\n"
		   "  -c, --config FILE      the rack topology (YAML)\n"
		   "  -n, --node NAME        this io_server's name in the topology\n"
		   "  -l, --log-level LEVEL  error, warning, notice, info or debug (default info)\n"
		   "  -V, --version          print the version and exit\n"
		   "  -h, --help             print this and exit\n"
		   "See vrio-ioserver(8) and vrio-topology(5).\n");
}

static int parse_opts(int argc, char **argv, struct ios_opts *o)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "node", required_argument, NULL, 'n' },
		{ "log-level", required_argument, NULL, 'l' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	int c, lvl;

	while ((c = getopt_long(argc, argv, "c:n:l:hV", longopts, NULL)) != -1) {
		switch (c) {
		case 'c':
			o->config = optarg;
			break;
		case 'n':
			o->node = optarg;
			break;
		case 'l':
			lvl = vrio_log_level_parse(optarg);
			if (lvl < 0) {
				fprintf(stderr, "vrio-ioserver: unknown log level %s\n", optarg);
				return -EINVAL;
			}
			o->log_level = (enum vrio_log_level)lvl;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		case 'V':
			printf("vrio-ioserver %s\n", VRIO_VERSION);
			exit(0);
		default:
			usage(stderr);
			return -EINVAL;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "vrio-ioserver: unexpected argument %s\n", argv[optind]);
		usage(stderr);
		return -EINVAL;
	}
	if (!o->config || !o->node) {
		usage(stderr);
		return -EINVAL;
	}
	return 0;
}

static void drain_fd(int fd)
{
	uint64_t v;

	if (read(fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		VRIO_ERR_RL("main wake eventfd: %s", strerror(errno));
}

static void reload(struct ios_server *srv)
{
	struct vrio_reload_report res = { 0 };

	ios_server_reload(srv, &res);
	if (res.rc == 0)
		sd_notifyf(0, "STATUS=serving on %s, configuration generation %llu",
			   srv->self->listen, (unsigned long long)srv->cfg.generation);
	vrio_reload_report_free(&res);
}

static void serve(struct ios_server *srv, struct vrio_ctl *ctl, const sigset_t *waitmask)
{
	uint64_t wd_usec = 0, wd_interval_ns = 0, wd_next = 0, backoff_until = 0, now, slack;
	struct pollfd pfd[2 + 1 + VRIO_CTL_MAX_CLIENTS];
	bool wd_stalled = false;
	struct timespec ts;
	uint64_t tick_ns, bal_ns;
	int nfds, rc, listen_fd;

	if (sd_watchdog_enabled(0, &wd_usec) > 0 && wd_usec > 0) {
		wd_interval_ns = wd_usec * 1000 / 2;
		wd_next = vrio_now_ns();
	}
	while (!vrio_stop_signal) {
		now = vrio_now_ns();
		if (wd_interval_ns && now >= wd_next) {
			/* Ping only while every reactor keeps turning: a sleeping
			 * one turns at least every IOS_SLEEP_MAX_MS. */
			slack = wd_usec * 1000 + (uint64_t)IOS_SLEEP_MAX_MS * 1000000;
			if (ios_server_alive(srv, now > slack ? now - slack : 0)) {
				sd_notify(0, "WATCHDOG=1");
				wd_stalled = false;
			} else if (!wd_stalled) {
				VRIO_ERR("%s: a reactor is stuck; withholding the watchdog ping",
					 srv->name);
				wd_stalled = true;
			}
			wd_next = now + wd_interval_ns;
		}
		tick_ns = (uint64_t)MAIN_TICK_MS * 1000000;
		/* Elastic cores: sample, park and unpark (balance.h). */
		bal_ns = ios_balancer_tick(srv, now);
		if (bal_ns < tick_ns)
			tick_ns = bal_ns;
		if (wd_interval_ns && wd_next - now < tick_ns)
			tick_ns = wd_next - now;
		listen_fd = ios_server_listener_fd(srv);
		/* A listener without a descriptor can only be polled. */
		if (listen_fd < 0 && tick_ns > 10000000)
			tick_ns = 10000000;
		if (now < backoff_until && backoff_until - now < tick_ns)
			tick_ns = backoff_until - now;
		pfd[0] = (struct pollfd){ .fd = srv->wakefd, .events = POLLIN };
		pfd[1] = (struct pollfd){ .fd = now >= backoff_until ? listen_fd : -1,
					  .events = POLLIN };
		nfds = 2 + (ctl ? vrio_ctl_pollfds(ctl, pfd + 2, 1 + VRIO_CTL_MAX_CLIENTS) : 0);
		ts.tv_sec = (time_t)(tick_ns / 1000000000);
		ts.tv_nsec = (long)(tick_ns % 1000000000);
		rc = ppoll(pfd, (nfds_t)nfds, &ts, waitmask);
		if (rc < 0 && errno != EINTR) {
			VRIO_ERR("%s: ppoll: %s", srv->name, strerror(errno));
			backoff_until = vrio_now_ns() + MAIN_ACCEPT_BACKOFF_NS;
			continue;
		}
		if (vrio_stop_signal)
			break;
		if (vrio_reload_signal) {
			vrio_reload_signal = 0;
			reload(srv);
		}
		if (rc > 0 && pfd[0].revents)
			drain_fd(srv->wakefd);
		if (ctl && rc > 0)
			vrio_ctl_process(ctl, pfd + 2, nfds - 2);
		/* Removed devices whose hosts let them go. */
		ios_devices_reap(srv);
		now = vrio_now_ns();
		if (now >= backoff_until && (listen_fd < 0 || pfd[1].revents)) {
			/* An accept error (EMFILE, ...) would wake us right away
			 * again: give it a moment to clear. */
			if (ios_server_accept(srv) < 0)
				backoff_until = now + MAIN_ACCEPT_BACKOFF_NS;
		}
	}
}

int main(int argc, char **argv)
{
	struct vrio_topology *topo = NULL;
	struct vrio_ctl *ctl = NULL;
	static struct ios_server srv;
	struct ios_opts opts;
	sigset_t waitmask;
	char err[512];
	int rc;

	ios_opts_init(&opts);
	if (parse_opts(argc, argv, &opts) < 0)
		return 2;
	vrio_log_init("vrio-ioserver", opts.log_level);

	rc = vrio_topology_load(opts.config, &topo, err, sizeof(err));
	if (rc < 0) {
		VRIO_ERR("%s", err);
		return 1;
	}
	rc = vrio_signals_setup(&waitmask);
	if (rc < 0) {
		VRIO_ERR("%s: signals: %s", opts.node, strerror(-rc));
		goto err_topo;
	}
	rc = ios_server_init(&srv, topo, opts.node, opts.config);
	if (rc < 0)
		goto err_topo;
	rc = ios_server_start(&srv);
	if (rc < 0)
		goto err_server;
	rc = ios_server_listen(&srv);
	if (rc < 0)
		goto err_server;
	if (srv.self->metrics) {
		rc = vrio_metrics_start(srv.self->metrics, ios_metrics_collect, &srv, &srv.metrics);
		if (rc < 0) {
			VRIO_ERR("%s: cannot serve metrics on %s: %s", srv.name,
				 srv.self->metrics, strerror(-rc));
			goto err_server;
		}
	}
	rc = ios_rpc_open(&srv, &ctl);
	if (rc < 0)
		goto err_server;
	VRIO_NOTICE("%s: serving on %s with %u reactors, control socket %s", srv.name,
		    srv.self->listen, srv.n_reactors, srv.self->control);
	sd_notifyf(0, "READY=1\nSTATUS=serving on %s, configuration generation 1",
		   srv.self->listen);

	serve(&srv, ctl, &waitmask);

	sd_notify(0, "STOPPING=1\nSTATUS=draining");
	VRIO_NOTICE("%s: stopping: draining in-flight requests", srv.name);
	vrio_ctl_close(ctl);
	ios_server_stop(&srv);
	if (srv.metrics)
		vrio_metrics_stop(srv.metrics);
	ios_server_fini(&srv);
	vrio_topology_free(srv.topo);
	VRIO_NOTICE("%s: stopped", opts.node);
	return 0;

err_server:
	ios_server_stop(&srv);
	if (srv.metrics)
		vrio_metrics_stop(srv.metrics);
	ios_server_fini(&srv);
	topo = srv.topo;
err_topo:
	vrio_topology_free(topo);
	return 1;
}

/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * vrio-localhv: the compute node's side. Serves this host's devices from
 * the topology as vhost-user sockets and forwards their requests to the
 * io-servers that own them.
 *
 * Start-up order: connect and attach first (the io-server describes each
 * device), then open the vhost-user sockets, then tell systemd READY: a
 * frontend that finds the socket finds a device that can be served. The
 * main thread then serves the control socket and reloads (SIGHUP); signal
 * handlers only set a flag, seen in main_turn's ppoll.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "auth.h"
#include "ctl.h"
#include "keyfile.h"
#include "localhv.h"
#include "reload.h"
#include "signals.h"
#include "log.h"

static void usage(FILE *f, const char *prog)
{
	fprintf(f,
		"usage: %s --config FILE --node NAME [--log-level LEVEL]\n"
		"Serve this host's vrio devices as vhost-user sockets.\n"
		"  -c, --config FILE     the rack topology (YAML); SIGHUP re-reads it\n"
		"  -n, --node NAME       this host's name under hosts:\n"
		"  -l, --log-level LEVEL error|warning|notice|info|debug (default notice)\n"
		"  -V, --version         print the version and exit\n"
		"  -h, --help            print this and exit\n"
		"See vrio-localhv(8) and vrio-topology(5).\n",
		prog);
}

/* The poller wakes at least once a second; one silent for this long is stuck. */
#define POLLER_STUCK_NS (5ull * 1000 * 1000 * 1000)
#define MAIN_TICK_MS	500
/* At SIGTERM: how long requests in flight may take to finish. */
#define STOP_DRAIN_NS	(5ull * 1000 * 1000 * 1000)

/*
 * Waits up to ms for a signal, the control socket or the poller (a device
 * described), serves what came, opens the sockets of described devices.
 * Pings the watchdog only while the poller makes rounds, so systemd
 * restarts a daemon whose data path hung.
 */
static unsigned main_turn(struct lhv *l, struct vrio_ctl *ctl, const sigset_t *waitmask, int ms)
{
	struct pollfd pfd[1 + 1 + VRIO_CTL_MAX_CLIENTS];
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };
	struct vrio_reload_report res;
	eventfd_t v;
	int n, rc;

	pfd[0] = (struct pollfd){ .fd = l->mainfd, .events = POLLIN };
	n = 1 + (ctl ? vrio_ctl_pollfds(ctl, pfd + 1, 1 + VRIO_CTL_MAX_CLIENTS) : 0);
	rc = ppoll(pfd, (nfds_t)n, &ts, waitmask);
	if (vrio_now_ns() - __atomic_load_n(&l->alive_ns, __ATOMIC_RELAXED) < POLLER_STUCK_NS)
		sd_notify(0, "WATCHDOG=1");
	if (rc > 0 && pfd[0].revents)
		eventfd_read(l->mainfd, &v);
	if (vrio_reload_signal && !vrio_stop_signal) {
		vrio_reload_signal = 0;
		lhv_reload(l, &res);
		if (res.rc == 0)
			sd_notifyf(0, "STATUS=serving, configuration generation %llu",
				   (unsigned long long)l->cfg.generation);
		vrio_reload_report_free(&res);
	}
	if (rc > 0 && ctl && !vrio_stop_signal)
		vrio_ctl_process(ctl, pfd + 1, n - 1);
	return lhv_devs_register(l);
}

static int lhv_init(struct lhv *l, const char *config, const char *node)
{
	pthread_mutex_init(&l->lock, NULL);
	pthread_mutex_init(&l->cmd_lock, NULL);
	pthread_cond_init(&l->cmd_cond, NULL);
	l->started_ns = vrio_now_ns();
	/* Reloads read the same file whatever the working directory. */
	if (!realpath(config, l->config_path))
		snprintf(l->config_path, sizeof(l->config_path), "%s", config);
	snprintf(l->node, sizeof(l->node), "%s", node);
	l->host = vrio_topology_host(l->topo, node);
	if (!l->host) {
		VRIO_ERR("%s: no host named '%s' under hosts:", l->topo->path, node);
		return -ENOENT;
	}
	if (l->host->key_file) {
		char why[384];
		int rc = vrio_key_load(l->host->key_file, VRIO_AUTH_KEY_MIN, VRIO_AUTH_KEY_MAX,
				       "a host's key file holds 32 to 4096 random bytes", &l->key,
				       why, sizeof(why));

		if (rc < 0) {
			VRIO_ERR("%s:%u:%u: host '%s': %s", l->topo->path, l->host->line,
				 l->host->col, node, why);
			return rc;
		}
	} else {
		VRIO_WARN("%s: no key_file: the io-servers cannot tell this host from any peer that says it is %s",
			  node, node);
	}
	l->mainfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	return l->mainfd < 0 ? -errno : 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "node", required_argument, NULL, 'n' },
		{ "log-level", required_argument, NULL, 'l' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	const char *config = NULL, *node = NULL;
	int level = VRIO_LOG_NOTICE, c, rc;
	static struct lhv l = { .epfd = -1, .wakefd = -1, .mainfd = -1 };
	struct vrio_ctl *ctl = NULL;
	sigset_t waitmask;
	char err[512];
	unsigned i, waiting;
	bool ready = false;

	while ((c = getopt_long(argc, argv, "c:n:l:hV", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			config = optarg;
			break;
		case 'n':
			node = optarg;
			break;
		case 'l':
			level = vrio_log_level_parse(optarg);
			if (level < 0) {
				fprintf(stderr, "%s: unknown log level '%s'\n", argv[0], optarg);
				return 2;
			}
			break;
		case 'h':
			usage(stdout, argv[0]);
			return 0;
		case 'V':
			printf("vrio-localhv %s\n", VRIO_VERSION);
			return 0;
		default:
			usage(stderr, argv[0]);
			return 2;
		}
	}
	if (!config || !node || optind != argc) {
		usage(stderr, argv[0]);
		return 2;
	}
	vrio_log_init("vrio-localhv", level);
	rc = vrio_signals_setup(&waitmask);
	if (rc < 0) {
		VRIO_ERR("%s: signals: %s", node, strerror(-rc));
		return 1;
	}
	rc = vrio_topology_load(config, &l.topo, err, sizeof(err));
	if (rc < 0) {
		VRIO_ERR("%s", err);
		return 1;
	}
	rc = lhv_init(&l, config, node);
	if (rc == 0)
		rc = lhv_vhost_init(&l, argv[0], level >= VRIO_LOG_DEBUG);
	if (rc == 0)
		rc = lhv_apply_initial(&l);
	if (rc == 0)
		rc = lhv_rpc_open(&l, &ctl);
	if (rc < 0)
		goto out;
	if (l.host->metrics) {
		rc = vrio_metrics_start(l.host->metrics, lhv_collect, &l, &l.metrics);
		if (rc < 0)
			goto out;
	}
	rc = lhv_poller_start(&l);
	if (rc < 0) {
		VRIO_ERR("%s: cannot start the poller: %s", node, strerror(-rc));
		goto out;
	}

	/* READY once the io-server answered for every device: its socket
	 * is open, or it was refused (and is asked for again). */
	sd_notify(0, "STATUS=attaching devices at the io-server(s)");
	while (!vrio_stop_signal) {
		waiting = main_turn(&l, ctl, &waitmask, ready ? MAIN_TICK_MS : 100);
		if (!ready && !waiting) {
			ready = true;
			sd_notifyf(0, "READY=1\nSTATUS=serving, configuration generation %llu",
				   (unsigned long long)l.cfg.generation);
			VRIO_NOTICE("%s: serving, control socket %s", node, l.host->control);
		}
	}
	VRIO_NOTICE("%s: %s: stopping: draining requests in flight", node,
		    strsignal(vrio_stop_signal));
	sd_notify(0, "STOPPING=1\nSTATUS=draining");
	/* Before any frontend's socket goes: a frontend that reconnects
	 * restarts its rings from the used index, which is then exact. */
	lhv_poller_quiesce(&l, STOP_DRAIN_NS);
	rc = 0;
out:
	vrio_ctl_close(ctl);
	/* Unregistering closes the frontends; destroy_device drains each. */
	for (i = 0; i < l.n_slots; i++)
		if (l.devs[i])
			lhv_vhost_unregister(&l, l.devs[i]);
	lhv_poller_stop(&l);
	for (i = 0; i < l.nups; i++) {
		lhv_up_close(l.ups[i]);
		free(l.ups[i]);
	}
	vrio_metrics_stop(l.metrics);
	lhv_net_fini(&l);
	if (l.n_slots || l.nups)
		lhv_vhost_fini();
	lhv_devs_fini(&l);
	if (l.mainfd >= 0)
		close(l.mainfd);
	vrio_key_free(l.key);
	vrio_topology_free(l.topo);
	return rc < 0 ? 1 : 0;
}

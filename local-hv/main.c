/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * vrio-localhv: the compute node's side. Serves this host's devices from
 * the topology as vhost-user sockets and forwards their requests to the
 * io-servers that own them.
 *
 * Start-up order: connect and attach first (the io-server describes each
 * device), then open the vhost-user sockets, then tell systemd READY: a
 * frontend that finds the socket finds a device that can be served.
 */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <systemd/sd-daemon.h>

#include "localhv.h"
#include "log.h"

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
	stop_requested = sig;
}

static void usage(FILE *f, const char *prog)
{
	fprintf(f,
		"usage: %s --config FILE --node NAME [--log-level LEVEL]\n"
		"Serve this host's vrio devices as vhost-user sockets.\n"
		"  -c, --config FILE     the rack topology (YAML)\n"
		"  -n, --node NAME       this host's name under hosts:\n"
		"  -l, --log-level LEVEL error|warning|notice|info|debug (default notice)\n",
		prog);
}

static int setup_devices(struct lhv *l, const char *node)
{
	size_t i, n = 0;

	l->host = vrio_topology_host(l->topo, node);
	if (!l->host) {
		VRIO_ERR("%s: no host named '%s' under hosts:", l->topo->path, node);
		return -ENOENT;
	}
	l->devs = calloc(l->topo->n_devices ? l->topo->n_devices : 1, sizeof(*l->devs));
	if (!l->devs)
		return -ENOMEM;
	for (i = 0; i < l->topo->n_devices; i++) {
		const struct vrio_topo_device *t = &l->topo->devices[i];
		struct lhv_dev *d;
		char esc[128];

		if (t->host != l->host)
			continue;
		d = &l->devs[n++];
		d->topo = t;
		d->name = t->name;
		d->conn_vid = -1;
		d->vid = -1;
		if (t->type != VRIO_DEV_NET) {
			lhv_iommu_init(&d->iommu, t);
			if (lhv_iotlb_init(&d->iommu.tlb) < 0)
				return -ENOMEM;
		}
		vrio_mw_escape(esc, sizeof(esc), t->name);
		snprintf(d->label, sizeof(d->label), "device=\"%s\"", esc);
	}
	l->ndevs = (unsigned)n;
	return 0;
}

static bool all_attached(struct lhv *l)
{
	unsigned u;

	for (u = 0; u < l->nups; u++)
		if (!__atomic_load_n(&l->ups[u].ready_once, __ATOMIC_ACQUIRE))
			return false;
	return true;
}

/* The poller wakes at least once a second; one silent for this long is stuck. */
#define POLLER_STUCK_NS (5ull * 1000 * 1000 * 1000)

/* Sleep up to ms, waking early on a signal. Pings the watchdog only while
 * the poller makes rounds, so systemd restarts a daemon whose data path hung. */
static void nap(const struct lhv *l, int ms)
{
	poll(NULL, 0, ms);
	if (vrio_now_ns() - __atomic_load_n(&l->alive_ns, __ATOMIC_RELAXED) < POLLER_STUCK_NS)
		sd_notify(0, "WATCHDOG=1");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "node", required_argument, NULL, 'n' },
		{ "log-level", required_argument, NULL, 'l' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *config = NULL, *node = NULL;
	int level = VRIO_LOG_NOTICE, c, rc;
	struct lhv l = { .epfd = -1, .wakefd = -1 };
	char err[512];
	unsigned i;
	struct sigaction sa = { .sa_handler = on_signal };

	while ((c = getopt_long(argc, argv, "c:n:l:h", opts, NULL)) != -1) {
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
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	rc = vrio_topology_load(config, &l.topo, err, sizeof(err));
	if (rc < 0) {
		VRIO_ERR("%s", err);
		return 1;
	}
	rc = setup_devices(&l, node);
	if (rc == 0)
		rc = lhv_up_init(&l);
	if (rc == 0)
		rc = lhv_vhost_init(&l, argv[0], level >= VRIO_LOG_DEBUG);
	if (rc == 0)
		rc = lhv_net_init(&l);
	if (rc == 0)
		rc = lhv_up_setup(&l);
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

	sd_notify(0, "STATUS=attaching devices at the io-server(s)");
	while (!stop_requested && !all_attached(&l))
		nap(&l, 100);
	for (i = 0; !stop_requested && i < l.ndevs; i++) {
		rc = lhv_vhost_register(&l, &l.devs[i]);
		if (rc < 0)
			goto out;
	}
	if (!stop_requested) {
		sd_notifyf(0, "READY=1\nSTATUS=serving %u device(s)", l.ndevs);
		VRIO_NOTICE("%s: serving %u device(s)", node, l.ndevs);
	}
	while (!stop_requested)
		nap(&l, 500);
	VRIO_NOTICE("%s: %s: stopping: draining requests in flight", node,
		    strsignal(stop_requested));
	sd_notify(0, "STOPPING=1");
	rc = 0;
out:
	/* Unregistering closes the frontends; destroy_device drains each. */
	for (i = 0; i < l.ndevs; i++)
		lhv_vhost_unregister(&l, &l.devs[i]);
	lhv_poller_stop(&l);
	for (i = 0; i < l.nups; i++)
		lhv_up_close(&l.ups[i]);
	vrio_metrics_stop(l.metrics);
	lhv_net_fini(&l);
	if (l.ndevs || l.nups)
		lhv_vhost_fini();
	free(l.ups);
	for (i = 0; i < l.ndevs; i++)
		lhv_iommu_fini(&l.devs[i].iommu);
	free(l.devs);
	vrio_topology_free(l.topo);
	return rc < 0 ? 1 : 0;
}

/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * DPDK's EAL, once per process (dpdk_eal.h). Both daemons used to start it
 * themselves with their own copies of the arguments; this is the one place
 * that does now.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <rte_eal.h>
#include <rte_errno.h>

#include "dpdk_eal.h"
#include "log.h"
#include "topology.h"

/*
 * Neither daemon needs hugepages, a PCI scan, shared files or telemetry by
 * default; a NIC port asks for more through dpdk.eal. 256 MiB, the larger
 * of the two daemons' former sizes: without hugepages the EAL's memory is
 * a sparse mapping that costs the pages touched (2 MiB more resident than
 * 64 MiB, measured on DPDK 22.11), and a dpdk port's packet pool alone
 * takes about 20 MiB, which left local-hv's 64 MiB little room beside
 * rte_vhost and its net devices' mbufs.
 */
static const char *const eal_defaults[] = {
	"--no-huge", "-m", "256", "--no-pci", "--no-shconf", "--no-telemetry",
	"-l", "0", "--log-level",
};
#define EAL_N_DEFAULTS (sizeof(eal_defaults) / sizeof(eal_defaults[0]))
#define EAL_PREFIX_OPT "--file-prefix="

/*
 * The EAL is one per process, and so is what we know of it. 1: not
 * started; 0: up; -errno: it failed to start, or was cleaned up, for good.
 */
static pthread_mutex_t g_eal_lock = PTHREAD_MUTEX_INITIALIZER;
static int g_eal_rc = 1;

/*
 * argv for rte_eal_init(): prog, the defaults, the log level, a file prefix
 * of the program's and the node's names (a runtime directory per node, so
 * that two daemons on one machine never share one), then cfg's arguments,
 * last so that they override. NULL-terminated; one allocation that also
 * holds the prefix's text. NULL when out of memory.
 */
static char **eal_argv(const char *prog, const char *node, const struct vrio_topo_dpdk *cfg,
		       bool verbose, int *argc)
{
	const char *base = strrchr(prog, '/');
	unsigned i, n_eal = cfg && cfg->eal ? cfg->n_eal : 0;
	size_t n = 1 + EAL_N_DEFAULTS + 2 + n_eal + 1, plen;
	char **argv, *prefix;
	int k = 0;

	base = base ? base + 1 : prog;
	plen = strlen(EAL_PREFIX_OPT) + strlen(base) + 1 + strlen(node) + 1;
	argv = malloc(n * sizeof(*argv) + plen);
	if (!argv)
		return NULL;
	prefix = (char *)(argv + n);
	snprintf(prefix, plen, EAL_PREFIX_OPT "%s-%s", base, node);
	argv[k++] = (char *)prog;
	for (i = 0; i < EAL_N_DEFAULTS; i++)
		argv[k++] = (char *)eal_defaults[i];
	argv[k++] = (char *)(verbose ? "*:info" : "*:warning");
	argv[k++] = prefix;
	for (i = 0; i < n_eal; i++)
		argv[k++] = cfg->eal[i];
	argv[k] = NULL;
	*argc = k;
	return argv;
}

static int eal_start(const char *prog, const char *node, const struct vrio_topo_dpdk *cfg,
		     bool verbose)
{
	cpu_set_t mask;
	char **argv;
	int argc, rc;
	long i, ncpu;

	argv = eal_argv(prog, node, cfg, verbose, &argc);
	if (!argv) {
		VRIO_ERR("%s: cannot initialise DPDK's EAL: %s", node, strerror(ENOMEM));
		return -ENOMEM;
	}
	if (pthread_getaffinity_np(pthread_self(), sizeof(mask), &mask) != 0) {
		CPU_ZERO(&mask);
		ncpu = sysconf(_SC_NPROCESSORS_ONLN);
		for (i = 0; i < ncpu && i < CPU_SETSIZE; i++)
			CPU_SET(i, &mask);
	}
	/* The EAL parses with getopt too: start it from the top of its argv,
	 * and leave the next getopt() user a fresh start as well. */
	optind = 1;
	rc = rte_eal_init(argc, argv);
	optind = 1;
	free(argv);
	if (rc < 0) {
		rc = rte_errno > 0 && rte_errno < RTE_MIN_ERRNO ? -rte_errno : -EIO;
		VRIO_ERR("%s: cannot initialise DPDK's EAL: %s", node, rte_strerror(rte_errno));
		return rc;
	}
	/* The EAL pins this thread to lcore 0; the threads it starts later
	 * (reactors, the poller) inherit its affinity and may run anywhere:
	 * give it back the CPUs it had. */
	pthread_setaffinity_np(pthread_self(), sizeof(mask), &mask);
	return 0;
}

int vrio_dpdk_eal_init(const char *prog, const char *node, const struct vrio_topo_dpdk *cfg,
		       bool verbose)
{
	int rc;

	pthread_mutex_lock(&g_eal_lock);
	if (g_eal_rc > 0)
		g_eal_rc = eal_start(prog, node, cfg, verbose);
	rc = g_eal_rc;
	pthread_mutex_unlock(&g_eal_lock);
	return rc;
}

void vrio_dpdk_eal_fini(void)
{
	pthread_mutex_lock(&g_eal_lock);
	if (g_eal_rc == 0) {
		rte_eal_cleanup();
		g_eal_rc = -ESHUTDOWN;
	}
	pthread_mutex_unlock(&g_eal_lock);
}

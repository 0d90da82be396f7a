// SPDX-License-Identifier: BSD-3-Clause
/*
 * vrio-bench: a vhost-user frontend for virtio-blk that plays VMM and guest
 * driver, for load generation, data verification and fuzzing of backends.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "breakdown.h"
#include "inject.h"
#include "iommu_check.h"
#include "netdrv.h"
#include "netrun.h"
#include "run.h"
#include "virtq.h"
#include "workload.h"

#define EXIT_USAGE 2

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
}

enum opt_id {
	OPT_SOCKET = 256,
	OPT_RW,
	OPT_BS,
	OPT_IODEPTH,
	OPT_QUEUES,
	OPT_QUEUE_SIZE,
	OPT_RUNTIME,
	OPT_WINDOW,
	OPT_COUNT,
	OPT_SIZE,
	OPT_OFFSET,
	OPT_SEED,
	OPT_VERIFY,
	OPT_STATE,
	OPT_POLL,
	OPT_TIMEOUT,
	OPT_JSON,
	OPT_QUIET,
	OPT_INJECT,
	OPT_CHECK_FILE,
	OPT_NO_EVENT_IDX,
	OPT_ZERO_UNWRITTEN,
	OPT_NET,
	OPT_PEER_SOCKET,
	OPT_MAC_A,
	OPT_MAC_B,
	OPT_FRAME_SIZE,
	OPT_GSO,
	OPT_ECN,
	OPT_IOMMU,
	OPT_IOMMU_CHECK,
	OPT_IOMMU_DEFERRED,
	OPT_IOMMU_UNMAP,
	OPT_RECONNECT,
	OPT_BREAKDOWN,
	OPT_SPIN_US,
	OPT_SPIN_KEEP,
	OPT_METRICS,
	OPT_TOPOLOGY,
	OPT_HELP,
	OPT_VERSION,
};

static const struct option long_opts[] = {
	{ "socket", required_argument, NULL, OPT_SOCKET },
	{ "rw", required_argument, NULL, OPT_RW },
	{ "bs", required_argument, NULL, OPT_BS },
	{ "iodepth", required_argument, NULL, OPT_IODEPTH },
	{ "queues", required_argument, NULL, OPT_QUEUES },
	{ "queue-size", required_argument, NULL, OPT_QUEUE_SIZE },
	{ "runtime", required_argument, NULL, OPT_RUNTIME },
	{ "window-ms", required_argument, NULL, OPT_WINDOW },
	{ "count", required_argument, NULL, OPT_COUNT },
	{ "size", required_argument, NULL, OPT_SIZE },
	{ "offset", required_argument, NULL, OPT_OFFSET },
	{ "seed", required_argument, NULL, OPT_SEED },
	{ "verify", no_argument, NULL, OPT_VERIFY },
	{ "state", required_argument, NULL, OPT_STATE },
	{ "poll", no_argument, NULL, OPT_POLL },
	{ "timeout", required_argument, NULL, OPT_TIMEOUT },
	{ "json", no_argument, NULL, OPT_JSON },
	{ "quiet", no_argument, NULL, OPT_QUIET },
	{ "inject", required_argument, NULL, OPT_INJECT },
	{ "check-file", required_argument, NULL, OPT_CHECK_FILE },
	{ "no-event-idx", no_argument, NULL, OPT_NO_EVENT_IDX },
	{ "zero-unwritten", no_argument, NULL, OPT_ZERO_UNWRITTEN },
	{ "net", required_argument, NULL, OPT_NET },
	{ "peer-socket", required_argument, NULL, OPT_PEER_SOCKET },
	{ "mac-a", required_argument, NULL, OPT_MAC_A },
	{ "mac-b", required_argument, NULL, OPT_MAC_B },
	{ "frame-size", required_argument, NULL, OPT_FRAME_SIZE },
	{ "gso", required_argument, NULL, OPT_GSO },
	{ "ecn", no_argument, NULL, OPT_ECN },
	{ "iommu", no_argument, NULL, OPT_IOMMU },
	{ "iommu-check", required_argument, NULL, OPT_IOMMU_CHECK },
	{ "iommu-deferred", no_argument, NULL, OPT_IOMMU_DEFERRED },
	{ "iommu-unmap", no_argument, NULL, OPT_IOMMU_UNMAP },
	{ "reconnect", no_argument, NULL, OPT_RECONNECT },
	{ "breakdown", no_argument, NULL, OPT_BREAKDOWN },
	{ "spin-us", required_argument, NULL, OPT_SPIN_US },
	{ "spin-keep", no_argument, NULL, OPT_SPIN_KEEP },
	{ "metrics", required_argument, NULL, OPT_METRICS },
	{ "topology", required_argument, NULL, OPT_TOPOLOGY },
	{ "help", no_argument, NULL, OPT_HELP },
	{ "version", no_argument, NULL, OPT_VERSION },
	{ NULL, 0, NULL, 0 },
};

struct main_opts {
	struct run_opts run;
	const char *iommu_check;
	bool iommu_deferred;
	struct netrun_opts net;
	bool net_mode;
	const char *inject;
	const char *check_file;
	bool zero_unwritten;
	bool offset_set;
	bool json;
	bool breakdown;
	const char *metrics;	/* --metrics IO,HV */
	const char *topology;	/* --topology FILE */
};

#define BENCH_DEFAULT_TOPOLOGY "/etc/vrio/topology.yaml"


static void usage(FILE *out)
{
	fprintf(out,
		"usage: vrio-bench --socket PATH [options]        load, verify\n"
		"       vrio-bench --socket PATH --inject KIND    post one malformed chain\n"
		"       vrio-bench --check-file PATH --state FILE [--offset BYTES] [--zero-unwritten]\n"
		"       vrio-bench --iommu-check invalidate|unmapped --socket PATH [--iommu-deferred]\n"
		"                                                  a backend's vIOMMU promises\n"
		"       vrio-bench --net stream|rr --socket A --peer-socket B [options]\n"
		"                                                  two virtio-net ports on one switch\n"
		"\n"
		"  --rw MODE          randread (default), randwrite, read, write, randrw\n"
		"  --bs BYTES         request size, a multiple of 512 (default 4096)\n"
		"  --iodepth N        requests in flight (default 1)\n"
		"  --queues N         virtqueues to spread them over (default 1)\n"
		"  --queue-size N     ring size, a power of two (default 256)\n"
		"  --runtime SECONDS  stop submitting after this long\n"
		"  --window-ms MS     with --json: requests and bytes done in each MS window\n"
		"  --count N          stop after N requests (default: one pass over the region)\n"
		"  --size BYTES       size of the region used (default: to the end of the disk)\n"
		"  --offset BYTES     start of the region on the disk; with --check-file,\n"
		"                     where the region starts in PATH (default: from the state)\n"
		"  --seed N           seed of access and data patterns (default 1)\n"
		"  --verify           check what reads return against the map\n"
		"  --state FILE       load the map of written blocks from FILE, save it back\n"
		"  --poll             busy-poll for completions instead of sleeping\n"
		"  --spin-us US       without --poll: look for completions this long before\n"
		"                     asking for an interrupt and sleeping (default 20; 0:\n"
		"                     sleep at once, as a guest taking an interrupt per batch);\n"
		"                     each look gives the core away if another task wants it,\n"
		"                     as KVM's halt polling stops when another task is runnable\n"
		"  --spin-keep        spin with a pause instruction instead, keeping the core\n"
		"  --timeout MS       longest a request may take (default 10000)\n"
		"  --no-event-idx     do not negotiate VIRTIO_RING_F_EVENT_IDX (use ring flags)\n"
		"  --iommu            play the VMM's vIOMMU: VIRTIO_F_ACCESS_PLATFORM, buffers\n"
		"                     at I/O virtual addresses, the backend's IOTLB misses\n"
		"                     answered on its channel\n"
		"  --iommu-unmap      --iommu, and unmap each request's data buffer once it is\n"
		"                     done, as a guest with strict unmaps does\n"
		"  --reconnect        as QEMU with reconnect=1: keep the backend's inflight\n"
		"                     region, and when the backend hangs up connect again\n"
		"                     (up to --timeout), hand it the region, the same memory\n"
		"                     and rings, and carry on (not with --iommu)\n"
		"  --zero-unwritten   with --check-file: blocks never written must read as zeros\n"
		"  --json             print the report as one JSON object on stdout\n"
		"  --breakdown        read both vrio daemons' metrics before and after the run\n"
		"                     and print where the mean latency went, hop by hop, and\n"
		"                     the guest interrupts per I/O (with --json: \"breakdown\")\n"
		"  --metrics IO,HV    the io-server's and local-hv's metrics HOST:PORT for\n"
		"                     --breakdown (all their devices summed), or:\n"
		"  --topology FILE    find them, and the device of --socket, in FILE\n"
		"                     (default " BENCH_DEFAULT_TOPOLOGY ")\n"
		"\n"
		"  --net MODE         stream: A sends to B as fast as it can (packets/s, loss);\n"
		"                     rr: B answers each frame, A times the round trip\n"
		"  --peer-socket PATH the second port, B (--socket is A)\n"
		"  --mac-a, --mac-b   the ports' source MACs (default 52:54:00:00:00:01, :02)\n"
		"  --frame-size BYTES Ethernet frame without FCS, 27 to 2036 (default 64)\n"
		"  --gso MSS          stream: A negotiates CSUM and HOST_TSO4 and sends TCP\n"
		"                     packets of 20.5 x MSS (64 to 1460) with partial\n"
		"                     checksums; B, without offloads, checks each segment\n"
		"  --ecn              with --gso: A negotiates HOST_ECN too and sends each\n"
		"                     packet with CWR and the ECN bit; B wants CWR on its\n"
		"                     first segment only\n"
		"  with --net: --iodepth (rr: in flight), --runtime, --count (frames or\n"
		"  transactions), --queue-size, --timeout (rr: a lost transaction), --poll,\n"
		"  --queues (queue pairs, VIRTIO_NET_F_MQ: IPv4/UDP frames in 4 flows a pair)\n"
		"  --quiet            no informational messages\n"
		"  --version          print the version and exit; --help: this\n"
		"\n"
		"sizes take a K, M, G or T suffix (powers of 1024). --inject KIND is one of:\n");
	inject_list_kinds(out);
	fprintf(out, "See vrio-bench(1).\n");
}

static int parse_u64(const char *s, uint64_t *v, bool suffix)
{
	unsigned long long n;
	unsigned int shift = 0;
	char *end;

	if (!*s || *s == '-')
		return -EINVAL;
	errno = 0;
	n = strtoull(s, &end, 0);
	if (errno || end == s)
		return -EINVAL;
	if (suffix && *end) {
		switch (*end) {
		case 'k':
		case 'K':
			shift = 10;
			break;
		case 'm':
		case 'M':
			shift = 20;
			break;
		case 'g':
		case 'G':
			shift = 30;
			break;
		case 't':
		case 'T':
			shift = 40;
			break;
		default:
			return -EINVAL;
		}
		end++;
	}
	if (*end || (shift && n > (UINT64_MAX >> shift)))
		return -EINVAL;
	*v = (uint64_t)n << shift;
	return 0;
}

static int parse_mac(const char *s, uint8_t mac[6])
{
	unsigned int b[6];
	char tail;

	if (sscanf(s, "%2x:%2x:%2x:%2x:%2x:%2x%c", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5],
		   &tail) != 6 || (b[0] & 1))
		return -EINVAL;
	for (int i = 0; i < 6; i++)
		mac[i] = (uint8_t)b[i];
	return 0;
}

static int parse_uint(const char *name, const char *s, uint64_t min, uint64_t max,
		      bool suffix, uint64_t *v)
{
	if (parse_u64(s, v, suffix) < 0 || *v < min || *v > max) {
		bench_err("%s: expected a number from %llu to %llu, got '%s'", name,
			  (unsigned long long)min, (unsigned long long)max, s);
		return -EINVAL;
	}
	return 0;
}

/* 0 to run, 1 when only help or the version was asked for, -EINVAL on a usage
 * error. */
static int parse_args(int argc, char **argv, struct main_opts *m)
{
	struct run_opts *o = &m->run;
	uint64_t v;
	char *end;
	int c;

	while ((c = getopt_long(argc, argv, "", long_opts, NULL)) != -1) {
		switch (c) {
		case OPT_SOCKET:
			o->socket = optarg;
			break;
		case OPT_RW:
			if (rw_mode_parse(optarg, &o->rw) < 0) {
				bench_err("--rw: unknown mode '%s'", optarg);
				return -EINVAL;
			}
			break;
		case OPT_BS:
			if (parse_uint("--bs", optarg, 512, 64u << 20, true, &v) < 0)
				return -EINVAL;
			if (v % 512) {
				bench_err("--bs: %llu is not a multiple of 512", (unsigned long long)v);
				return -EINVAL;
			}
			o->bs = (uint32_t)v;
			break;
		case OPT_IODEPTH:
			if (parse_uint("--iodepth", optarg, 1, 65536, false, &v) < 0)
				return -EINVAL;
			o->iodepth = (unsigned int)v;
			break;
		case OPT_QUEUES:
			if (parse_uint("--queues", optarg, 1, 256, false, &v) < 0)
				return -EINVAL;
			o->queues = (unsigned int)v;
			break;
		case OPT_QUEUE_SIZE:
			if (parse_uint("--queue-size", optarg, 4, VQ_MAX_SIZE, false, &v) < 0)
				return -EINVAL;
			if (v & (v - 1)) {
				bench_err("--queue-size: %llu is not a power of two",
					  (unsigned long long)v);
				return -EINVAL;
			}
			o->queue_size = (unsigned int)v;
			break;
		case OPT_RUNTIME:
			errno = 0;
			o->runtime = strtod(optarg, &end);
			if (errno || end == optarg || *end || !(o->runtime > 0) ||
			    o->runtime > 1e7) {
				bench_err("--runtime: expected a positive number of seconds, got '%s'",
					  optarg);
				return -EINVAL;
			}
			break;
		case OPT_WINDOW:
			if (parse_uint("--window-ms", optarg, 1, 3600000, false, &v) < 0)
				return -EINVAL;
			o->window_ms = (unsigned int)v;
			break;
		case OPT_COUNT:
			if (parse_uint("--count", optarg, 1, UINT64_MAX, true, &o->count) < 0)
				return -EINVAL;
			break;
		case OPT_SIZE:
			if (parse_uint("--size", optarg, 512, UINT64_MAX, true, &o->size) < 0)
				return -EINVAL;
			break;
		case OPT_OFFSET:
			if (parse_uint("--offset", optarg, 0, UINT64_MAX, true, &o->offset) < 0)
				return -EINVAL;
			if (o->offset % 512) {
				bench_err("--offset: not a multiple of 512");
				return -EINVAL;
			}
			m->offset_set = true;
			break;
		case OPT_SEED:
			if (parse_uint("--seed", optarg, 0, UINT64_MAX, false, &o->seed) < 0)
				return -EINVAL;
			break;
		case OPT_VERIFY:
			o->verify = true;
			break;
		case OPT_STATE:
			o->state = optarg;
			break;
		case OPT_POLL:
			o->poll = true;
			break;
		case OPT_TIMEOUT:
			if (parse_uint("--timeout", optarg, 1, 3600000, false, &v) < 0)
				return -EINVAL;
			o->timeout_ms = (int)v;
			break;
		case OPT_JSON:
			m->json = true;
			break;
		case OPT_QUIET:
			o->quiet = true;
			break;
		case OPT_INJECT:
			if (!inject_kind_known(optarg)) {
				bench_err("--inject: unknown kind '%s'", optarg);
				return -EINVAL;
			}
			m->inject = optarg;
			break;
		case OPT_CHECK_FILE:
			m->check_file = optarg;
			break;
		case OPT_NO_EVENT_IDX:
			o->no_event_idx = true;
			break;
		case OPT_ZERO_UNWRITTEN:
			m->zero_unwritten = true;
			break;
		case OPT_BREAKDOWN:
			m->breakdown = true;
			break;
		case OPT_SPIN_US:
			if (parse_uint("--spin-us", optarg, 0, 1000000, false, &v) < 0)
				return -EINVAL;
			o->spin_ns = v * 1000;
			break;
		case OPT_SPIN_KEEP:
			o->spin_keep = true;
			break;
		case OPT_METRICS:
			if (!strchr(optarg, ',')) {
				bench_err("--metrics: expected IO_HOST:PORT,HV_HOST:PORT");
				return -EINVAL;
			}
			m->metrics = optarg;
			break;
		case OPT_TOPOLOGY:
			m->topology = optarg;
			break;
		case OPT_NET:
			if (!strcmp(optarg, "stream")) {
				m->net.mode = NET_STREAM;
			} else if (!strcmp(optarg, "rr")) {
				m->net.mode = NET_RR;
			} else {
				bench_err("--net: expected stream or rr, got '%s'", optarg);
				return -EINVAL;
			}
			m->net_mode = true;
			break;
		case OPT_PEER_SOCKET:
			m->net.sock_b = optarg;
			break;
		case OPT_MAC_A:
		case OPT_MAC_B:
			if (parse_mac(optarg, c == OPT_MAC_A ? m->net.mac_a : m->net.mac_b) < 0) {
				bench_err("%s: expected a unicast MAC like 52:54:00:00:00:01, got '%s'",
					  c == OPT_MAC_A ? "--mac-a" : "--mac-b", optarg);
				return -EINVAL;
			}
			break;
		case OPT_FRAME_SIZE:
			if (parse_uint("--frame-size", optarg, 27, 2036, false, &v) < 0)
				return -EINVAL;
			m->net.frame_size = (uint32_t)v;
			break;
		case OPT_GSO:
			if (parse_uint("--gso", optarg, 64, 1460, false, &v) < 0)
				return -EINVAL;
			m->net.gso_mss = (uint32_t)v;
			break;
		case OPT_ECN:
			m->net.ecn = true;
			break;
		case OPT_IOMMU:
			o->iommu = true;
			break;
		case OPT_IOMMU_CHECK:
			if (strcmp(optarg, "invalidate") && strcmp(optarg, "unmapped")) {
				bench_err("--iommu-check: expected invalidate or unmapped, got '%s'",
					  optarg);
				return -EINVAL;
			}
			m->iommu_check = optarg;
			break;
		case OPT_IOMMU_DEFERRED:
			m->iommu_deferred = true;
			break;
		case OPT_IOMMU_UNMAP:
			o->iommu = o->iommu_unmap = true;
			break;
		case OPT_RECONNECT:
			o->reconnect = true;
			break;
		case OPT_HELP:
			usage(stdout);
			return 1;
		case OPT_VERSION:
			printf("vrio-bench %s\n", VRIO_VERSION);
			return 1;
		default:
			return -EINVAL;
		}
	}
	if (optind < argc) {
		bench_err("unexpected argument '%s'", argv[optind]);
		return -EINVAL;
	}
	if (m->check_file) {
		if (!o->state) {
			bench_err("--check-file needs --state");
			return -EINVAL;
		}
		return 0;
	}
	if (!o->socket) {
		bench_err("--socket is required");
		return -EINVAL;
	}
	if (m->net_mode) {
		if (!m->net.sock_b) {
			bench_err("--net needs --peer-socket");
			return -EINVAL;
		}
		if (!memcmp(m->net.mac_a, m->net.mac_b, 6)) {
			bench_err("--mac-a and --mac-b must differ");
			return -EINVAL;
		}
		if (m->breakdown) {
			bench_err("--breakdown: blk runs only, not with --net");
			return -EINVAL;
		}
		if (m->net.ecn && !m->net.gso_mss) {
			bench_err("--ecn needs --gso");
			return -EINVAL;
		}
		if (m->net.gso_mss && (m->net.mode != NET_STREAM || o->queue_size < 32)) {
			bench_err("--gso: --net stream only, with a --queue-size of 32 or more");
			return -EINVAL;
		}
		m->net.sock_a = o->socket;
		m->net.iodepth = o->iodepth;
		m->net.queue_size = o->queue_size;
		m->net.runtime = o->runtime;
		m->net.count = o->count;
		m->net.poll = o->poll;
		m->net.quiet = o->quiet;
		m->net.no_event_idx = o->no_event_idx;
		m->net.iommu = o->iommu;
		m->net.pairs = o->queues;
		if (o->queues > NETDEV_MAX_PAIRS) {
			bench_err("--net: --queues is queue pairs, 1 to %u", NETDEV_MAX_PAIRS);
			return -EINVAL;
		}
		if (o->queues > 1 && m->net.gso_mss) {
			bench_err("--gso runs on one queue pair");
			return -EINVAL;
		}
		if (o->timeout_ms != 10000)
			m->net.timeout_ms = o->timeout_ms;
		if (!o->runtime && !o->count)
			m->net.runtime = 5;
		return 0;
	}
	if ((m->metrics || m->topology) && !m->breakdown) {
		bench_err("--metrics and --topology go with --breakdown");
		return -EINVAL;
	}
	if (m->breakdown && (m->iommu_check || m->inject || m->check_file)) {
		bench_err("--breakdown: a load run's, not with --iommu-check, --inject or --check-file");
		return -EINVAL;
	}
	if (m->metrics && m->topology) {
		bench_err("--breakdown: --metrics or --topology, not both");
		return -EINVAL;
	}
	if (o->reconnect && (o->iommu || m->iommu_check || m->inject)) {
		bench_err("--reconnect: not with --iommu, --iommu-check or --inject");
		return -EINVAL;
	}
	if (o->size && o->size % o->bs) {
		bench_err("--size: not a multiple of --bs");
		return -EINVAL;
	}
	return 0;
}

static void json_string(FILE *out, const char *s)
{
	fputc('"', out);
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\')
			fprintf(out, "\\%c", ch);
		else if (ch < 0x20)
			fprintf(out, "\\u%04x", ch);
		else
			fputc(ch, out);
	}
	fputc('"', out);
}

static int do_check_file(const struct main_opts *m)
{
	struct check_counts c;
	struct workload w;
	uint64_t file_offset;
	int ret;

	ret = workload_state_open(&w, m->run.state);
	if (ret < 0)
		return 1;
	file_offset = m->offset_set ? m->run.offset : w.offset;
	ret = workload_check_file(&w, m->check_file, file_offset, &c, m->zero_unwritten,
				  m->run.quiet);
	workload_fini(&w);
	if (ret < 0)
		return 1;
	if (m->json) {
		printf("{\"check_file\":");
		json_string(stdout, m->check_file);
		printf(",\"written\":%" PRIu64 ",\"matched\":%" PRIu64 ",\"mismatched\":%" PRIu64
		       ",\"unwritten\":%" PRIu64 "}\n",
		       c.written, c.matched, c.mismatched, c.unwritten);
	} else {
		printf("check-file %s: %" PRIu64 " blocks written, %" PRIu64 " match, %" PRIu64
		       " differ, %" PRIu64 " never written\n",
		       m->check_file, c.written, c.matched, c.mismatched, c.unwritten);
	}
	return c.mismatched ? 1 : 0;
}

static double us(uint64_t ns)
{
	return (double)ns / 1000.0;
}

static void report_text(FILE *out, const struct run_opts *o, const struct run_result *r)
{
	double el = r->elapsed_s > 0 ? r->elapsed_s : 1e-9;

	fprintf(out, "%s bs=%u iodepth=%u queues=%u%s: %" PRIu64 " ops (%" PRIu64
		" reads, %" PRIu64 " writes) in %.3f s%s\n",
		rw_mode_name(o->rw), o->bs, r->iodepth, r->queues, o->poll ? " poll" : "",
		r->ops, r->reads, r->writes, r->elapsed_s, r->interrupted ? " (interrupted)" : "");
	fprintf(out, "  iops %.1f, %.2f MiB/s\n", (double)r->ops / el,
		(double)r->bytes / el / (1024.0 * 1024.0));
	fprintf(out, "  latency us: mean %.2f, p50 %.2f, p99 %.2f, p99.9 %.2f, max %.2f\n",
		hist_mean(&r->hist) / 1000.0, us(hist_percentile(&r->hist, 0.50)),
		us(hist_percentile(&r->hist, 0.99)), us(hist_percentile(&r->hist, 0.999)),
		us(r->hist.max_ns));
	fprintf(out, "  errors %" PRIu64 ", verify failures %" PRIu64 " (%" PRIu64
		" reads verified), timeout %s, disconnected %s, flushes %" PRIu64
		", reconnects %u\n",
		r->errors, r->verify_failures, r->verified, r->timed_out ? "yes" : "no",
		r->disconnected ? "yes" : "no", r->flushes, r->reconnects);
	fprintf(out, "  cpu user %.3f s, sys %.3f s; kicks %" PRIu64 ", calls %" PRIu64 "\n",
		r->cpu_user_s, r->cpu_sys_s, r->kicks, r->calls);
}

static void report_json(const struct run_opts *o, const struct run_result *r,
			const struct breakdown *bd)
{
	double el = r->elapsed_s > 0 ? r->elapsed_s : 1e-9;

	printf("{\"rw\":\"%s\",\"bs\":%u,\"iodepth\":%u,\"queues\":%u,\"poll\":%s,"
	       "\"ops\":%" PRIu64 ",\"reads\":%" PRIu64 ",\"writes\":%" PRIu64
	       ",\"bytes\":%" PRIu64 ",\"errors\":%" PRIu64 ",\"verify_failures\":%" PRIu64
	       ",\"verified\":%" PRIu64 ",\"timeout\":%s,\"disconnected\":%s,"
	       "\"answered_after_disconnect\":%" PRIu64 ","
	       "\"inflight_at_disconnect\":%" PRIu64 ",\"lost_on_restore\":%" PRIu64 ","
	       "\"device_error\":%s,\"interrupted\":%s,\"flushes\":%" PRIu64 ","
	       "\"elapsed_s\":%.6f,\"iops\":%.1f,\"mib_s\":%.3f,"
	       "\"lat_us\":{\"mean\":%.3f,\"p50\":%.3f,\"p99\":%.3f,\"p99_9\":%.3f,\"max\":%.3f},"
	       "\"cpu_user_s\":%.3f,\"cpu_sys_s\":%.3f,\"kicks\":%" PRIu64 ",\"calls\":%" PRIu64
	       ",\"reconnects\":%u",
	       rw_mode_name(o->rw), o->bs, r->iodepth, r->queues, o->poll ? "true" : "false",
	       r->ops, r->reads, r->writes, r->bytes, r->errors, r->verify_failures, r->verified,
	       r->timed_out ? "true" : "false", r->disconnected ? "true" : "false",
	       r->answered_after_disconnect, r->inflight_at_disconnect, r->lost_on_restore,
	       r->device_error ? "true" : "false", r->interrupted ? "true" : "false", r->flushes,
	       r->elapsed_s, (double)r->ops / el, (double)r->bytes / el / (1024.0 * 1024.0),
	       hist_mean(&r->hist) / 1000.0, us(hist_percentile(&r->hist, 0.50)),
	       us(hist_percentile(&r->hist, 0.99)), us(hist_percentile(&r->hist, 0.999)),
	       us(r->hist.max_ns), r->cpu_user_s, r->cpu_sys_s, r->kicks, r->calls,
	       r->reconnects);
	if (o->window_ms) {
		printf(",\"windows\":{\"ms\":%u,\"ops\":[", o->window_ms);
		for (unsigned int i = 0; i < r->n_windows; i++)
			printf("%s%" PRIu64, i ? "," : "", r->win_ops[i]);
		printf("],\"bytes\":[");
		for (unsigned int i = 0; i < r->n_windows; i++)
			printf("%s%" PRIu64, i ? "," : "", r->win_bytes[i]);
		printf("]}");
	}
	if (bd)
		bd_print_json(stdout, bd);
	printf("}\n");
}

static void net_report(const struct main_opts *m, const struct netrun_result *r)
{
	const struct netrun_opts *o = &m->net;
	double el = r->elapsed_s > 0 ? r->elapsed_s : 1e-9;
	double pps = (double)r->received / el;
	const char *mode = o->mode == NET_RR ? "rr" : "stream";

	if (!m->json || !o->quiet) {
		FILE *out = m->json ? stderr : stdout;

		fprintf(out, "net %s frame=%u iodepth=%u: %" PRIu64 " sent, %" PRIu64 " %s, %" PRIu64
			" lost, %" PRIu64 " bad in %.3f s%s\n",
			mode, o->frame_size, o->mode == NET_RR ? o->iodepth : 0, r->sent,
			r->received, o->mode == NET_RR ? "answered" : "received", r->lost, r->bad,
			r->elapsed_s, r->interrupted ? " (interrupted)" : "");
		fprintf(out, "  %.1f %s/s, %.2f Mbit/s at B\n", pps,
			o->mode == NET_RR ? "transactions" : "packets",
			(double)r->bytes * 8.0 / el / 1e6);
		if (o->gso_mss)
			fprintf(out, "  gso mss=%u%s: %" PRIu64 " segments at B, each checked\n",
				o->gso_mss, o->ecn ? " ecn" : "", r->segments);
		if (o->mode == NET_RR)
			fprintf(out, "  round trip us: mean %.2f, p50 %.2f, p99 %.2f, p99.9 %.2f, max %.2f\n",
				hist_mean(&r->hist) / 1000.0, us(hist_percentile(&r->hist, 0.50)),
				us(hist_percentile(&r->hist, 0.99)),
				us(hist_percentile(&r->hist, 0.999)), us(r->hist.max_ns));
		fprintf(out, "  cpu user %.3f s, sys %.3f s\n", r->cpu_user_s, r->cpu_sys_s);
	}
	if (!m->json)
		return;
	printf("{\"net\":\"%s\",\"frame_size\":%u,\"iodepth\":%u,\"sent\":%" PRIu64
	       ",\"received\":%" PRIu64 ",\"lost\":%" PRIu64 ",\"reordered\":%" PRIu64
	       ",\"bad\":%" PRIu64 ",\"bytes\":%" PRIu64 ",\"elapsed_s\":%.6f,\"pps\":%.1f,"
	       "\"mbit_s\":%.3f,\"rtt_us\":{\"mean\":%.3f,\"p50\":%.3f,\"p99\":%.3f,"
	       "\"p99_9\":%.3f,\"max\":%.3f},\"cpu_user_s\":%.3f,\"cpu_sys_s\":%.3f,"
	       "\"gso_mss\":%u,\"ecn\":%s,\"segments\":%" PRIu64 ",\"failed\":%s,"
	       "\"disconnected\":%s,",
	       mode, o->frame_size, o->iodepth, r->sent, r->received, r->lost, r->reordered,
	       r->bad, r->bytes, r->elapsed_s, pps, (double)r->bytes * 8.0 / el / 1e6,
	       hist_mean(&r->hist) / 1000.0, us(hist_percentile(&r->hist, 0.50)),
	       us(hist_percentile(&r->hist, 0.99)), us(hist_percentile(&r->hist, 0.999)),
	       us(r->hist.max_ns), r->cpu_user_s, r->cpu_sys_s, o->gso_mss,
	       o->ecn ? "true" : "false", r->segments,
	       r->failed ? "true" : "false",
	       r->disconnected ? "true" : "false");
	/* Frames by queue pair: A's transmit queues, B's receive queues. */
	for (int k = 0; k < 2; k++) {
		printf("\"%s\":[", k ? "rx_pairs" : "tx_pairs");
		for (unsigned int q = 0; q < r->pairs && q < 32; q++)
			printf("%s%" PRIu64, q ? "," : "", k ? r->rx_pair[q] : r->tx_pair[q]);
		printf("]%s", k ? "}\n" : ",");
	}
}

static int do_net(struct main_opts *m)
{
	struct netrun_result *res = malloc(sizeof(*res));
	int ret;

	if (!res) {
		bench_err("out of memory");
		return 1;
	}
	ret = netrun_bench(&m->net, res);
	if (ret < 0) {
		free(res);
		return 1;
	}
	net_report(m, res);
	ret = res->failed || res->disconnected || res->bad || !res->received;
	free(res);
	return ret;
}

/* --breakdown: where the metrics are, and their first reading. */
static int breakdown_begin(const struct main_opts *m, struct bd_source *s, struct bd_snap **snap)
{
	const char *comma;
	int ret;

	if (m->metrics) {
		comma = strchr(m->metrics, ',');
		s->io_metrics = strndup(m->metrics, (size_t)(comma - m->metrics));
		s->hv_metrics = strdup(comma + 1);
		if (!s->io_metrics || !s->hv_metrics) {
			bench_err("out of memory");
			return -ENOMEM;
		}
	} else {
		ret = bd_source_from_topology(s, m->topology ? m->topology : BENCH_DEFAULT_TOPOLOGY,
					      m->run.socket);
		if (ret < 0)
			return ret;
	}
	return bd_snap_take(s, snap);
}

int main(int argc, char **argv)
{
	struct sigaction sa = { .sa_handler = on_signal };
	struct main_opts m = { 0 };
	struct bd_snap *snap0 = NULL, *snap1 = NULL;
	struct bd_source bsrc = { 0 };
	struct inject_opts io;
	struct run_result *res;
	struct breakdown bd;
	bool have_bd = false;
	int ret;

	run_opts_init(&m.run);
	m.run.stop = &stop_requested;
	netrun_opts_init(&m.net);
	m.net.stop = &stop_requested;
	ret = parse_args(argc, argv, &m);
	if (ret < 0) {
		fprintf(stderr, "see vrio-bench --help\n");
		return EXIT_USAGE;
	}
	if (ret > 0)
		return 0;

	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (m.check_file)
		return do_check_file(&m);
	if (m.net_mode)
		return do_net(&m);
	if (m.iommu_check) {
		struct iommu_check_opts ic = {
			.socket = m.run.socket, .kind = m.iommu_check,
			.timeout_ms = m.run.timeout_ms < 5000 ? m.run.timeout_ms : 5000,
			.deferred = m.iommu_deferred, .quiet = m.run.quiet,
		};

		ret = iommu_check_run(&ic);
		return ret < 0 ? 1 : ret;
	}

	if (m.inject) {
		io = (struct inject_opts){
			.socket = m.run.socket, .kind = m.inject,
			.queue_size = m.run.queue_size, .timeout_ms = m.run.timeout_ms,
			.json = m.json, .quiet = m.run.quiet,
			.no_event_idx = m.run.no_event_idx,
		};
		ret = inject_run(&io);
		return ret < 0 ? 1 : ret;
	}

	if (m.breakdown) {
		ret = breakdown_begin(&m, &bsrc, &snap0);
		if (ret < 0)
			return 1;
	}
	/* The histogram is large: keep it off the stack. */
	res = malloc(sizeof(*res));
	if (!res) {
		bench_err("out of memory");
		ret = 1;
		goto out;
	}
	ret = run_bench(&m.run, res);
	if (ret < 0) {
		run_result_fini(res);
		free(res);
		ret = 1;
		goto out;
	}
	if (m.breakdown) {
		/* Still reported without it: the run itself went well. */
		if (bd_snap_take(&bsrc, &snap1) == 0) {
			bd_compute(snap0, snap1, hist_mean(&res->hist) / 1000.0, &bd);
			have_bd = true;
		}
	}
	if (m.json) {
		if (!m.run.quiet) {
			report_text(stderr, &m.run, res);
			if (have_bd)
				bd_print_text(stderr, &bd);
		}
		report_json(&m.run, res, have_bd ? &bd : NULL);
	} else {
		report_text(stdout, &m.run, res);
		if (have_bd)
			bd_print_text(stdout, &bd);
	}
	ret = res->errors || res->verify_failures || res->timed_out || res->disconnected ||
	      res->device_error || (m.breakdown && !have_bd);
	run_result_fini(res);
	free(res);
out:
	bd_snap_free(snap0);
	bd_snap_free(snap1);
	bd_source_fini(&bsrc);
	return ret;
}

/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * bench_ioserver_net_stages: what a net stage adds to each frame on the
 * reactor, measured in a loop over the real chain code (no clock read a
 * frame, no other thread): ios_chain_run and the stage, as dev_net runs
 * them, against the same loop handing the frame on directly.
 * tests/bench/net-stages.sh prints it beside what the io-server spends a
 * frame.
 *
 *   bench_ioserver_net_stages [FRAMES] [CAPTURE_DIR]
 *
 * Prints one line a chain: "NAME NS" (nanoseconds a frame over the direct
 * loop, the best of five runs; a capture's runs are of 40,000 frames, what
 * its ring holds, so that each is copied in rather than refused).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ioserver_internal.h"

static uint64_t sink;

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* The bench's frame: 64 bytes of ethertype 0x88b6. */
static const uint8_t frame[64] = {
	0x52, 0x54, 0x00, 0x00, 0x00, 0x0b, 0x52, 0x54, 0x00, 0x00, 0x00, 0x0a, 0x88, 0xb6,
};

/* ns a frame through d's stages, as dev_net runs them (ios_chain_run). */
static double run(struct ios_device *d, struct ios_req *req, unsigned long n)
{
	uint64_t t0 = now_ns();

	for (unsigned long i = 0; i < n; i++) {
		req->t_start = t0 + i * 100;
		req->u.net = (struct ios_net_req){ .eth = frame, .len = sizeof(frame), .out = false };
		if (!d->chain || ios_chain_run(d, req))
			sink += req->u.net.len;
	}
	return (double)(now_ns() - t0) / (double)n;
}

static struct ios_device *device(const char *interpose, struct vrio_topology **t)
{
	static const char head[] =
		"version: 1\nio_servers:\n  - name: io0\n    listen: 127.0.0.1:7400\n"
		"hosts:\n  - name: host0\n"
		"devices:\n  - name: nic\n    type: net\n    host: host0\n    io_server: io0\n"
		"    socket: /run/vrio/nic.sock\n    mac: \"52:54:00:00:00:01\"\n    network: lan\n";
	struct ios_device *d = calloc(1, sizeof(*d));
	char text[4096], err[512] = "", why[512] = "";
	struct ios_chain *c = NULL;

	if (!d)
		exit(1);
	snprintf(d->name, sizeof(d->name), "nic");
	snprintf(text, sizeof(text), "%s%s%snetworks:\n  - name: lan\n", head,
		 interpose[0] ? "    interpose:\n" : "", interpose);
	if (vrio_topology_parse("bench.yaml", text, strlen(text), t, err, sizeof(err)) != 0) {
		fprintf(stderr, "%s\n", err);
		exit(1);
	}
	d->topo = &(*t)->devices[0];
	if (ios_chain_build(d, d->topo, &c, why, sizeof(why)) != 0) {
		fprintf(stderr, "%s\n", why);
		exit(1);
	}
	d->chain = c;
	return d;
}

int main(int argc, char **argv)
{
	unsigned long n = argc > 1 ? strtoul(argv[1], NULL, 0) : 2000000;
	const char *dir = argc > 2 ? argv[2] : "/tmp";
	char capture[512];
	const struct {
		const char *name, *interpose;
	} chains[] = {
		{ "none", "" },
		{ "acl", "      - acl:\n          default: deny\n          rules:\n"
			 "            - {action: deny, src: 192.0.2.0/24}\n"
			 "            - {action: deny, dst: \"2001:db8::/32\"}\n"
			 "            - {action: allow, proto: tcp, dport: 22}\n"
			 "            - {action: deny, proto: udp, sport: 0-1023}\n"
			 "            - {action: allow, ethertype: arp}\n"
			 "            - {action: allow, proto: icmpv6}\n"
			 "            - {action: deny, dir: in, ethertype: 0x86dd}\n"
			 "            - {action: allow, ethertype: 0x88b6}\n" },
		{ "police", "      - police: {in: {rate: 100G}, out: {rate: 100G}}\n" },
		{ "capture", capture },
	};
	double base = 0, best, ns;
	struct ios_req *req = calloc(1, sizeof(*req));

	snprintf(capture, sizeof(capture), "      - capture: {file: %s/bench-net-stages.pcap}\n",
		 dir);
	if (!req)
		return 1;
	for (size_t i = 0; i < sizeof(chains) / sizeof(chains[0]); i++) {
		struct vrio_topology *t = NULL;
		struct ios_device *d = device(chains[i].interpose, &t);

		req->dev = d;
		best = 1e9;
		for (int r = 0; r < 5; r++) {
			/* A capture's ring holds some 50,000 such frames: runs
			 * that fit, and time for its writer between them. */
			if (!strcmp(chains[i].name, "capture")) {
				usleep(200000);
				ns = run(d, req, n < 40000 ? n : 40000);
			} else {
				ns = run(d, req, n);
			}
			best = ns < best ? ns : best;
		}
		if (i == 0)
			base = best;
		else
			printf("%s %.1f\n", chains[i].name, best - base);
		ios_chain_put(d->chain);
		vrio_topology_free(t);
		free(d);
	}
	snprintf(capture, sizeof(capture), "%s/bench-net-stages.pcap", dir);
	unlink(capture);
	return sink == 42;
}

/* SPDX-License-Identifier: BSD-3-Clause */
/* The net load generator (netrun.c): stream and request/response. */
#ifndef VRIO_BENCH_NETRUN_H
#define VRIO_BENCH_NETRUN_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "stats.h"

enum net_mode {
	NET_STREAM,
	NET_RR,
};

struct netrun_opts {
	const char *sock_a, *sock_b;
	uint8_t mac_a[6], mac_b[6];
	enum net_mode mode;
	uint32_t frame_size;	/* Ethernet bytes, no FCS */
	unsigned int iodepth;	/* rr: transactions in flight */
	unsigned int queue_size;
	double runtime;		/* seconds, 0: none */
	uint64_t count;		/* frames (stream) or transactions (rr), 0: none */
	int timeout_ms;		/* rr: a transaction older than this is lost */
	bool poll;
	bool quiet;
	bool no_event_idx;
	bool iommu;
	/* stream, not 0: A negotiates CSUM and HOST_TSO4 and sends TCP/IPv4
	 * GSO packets of gso_mss segments with a partial checksum; B takes
	 * no offload, and checks every segment it gets (netrun.c). */
	uint32_t gso_mss;
	/* With gso_mss: A negotiates HOST_ECN too and sends each packet with
	 * CWR and the header's ECN bit, as Linux does after a congestion
	 * signal; B checks that only a packet's first segment has CWR. */
	bool ecn;
	/* Queue pairs of both ports; above 1, the frames are IPv4/UDP in
	 * 4 flows per pair (ports 10000 + flow -> 20000 + flow), flow f sent
	 * on pair f mod pairs, and order is checked per flow. Not with gso. */
	unsigned int pairs;
	volatile sig_atomic_t *stop;
};

struct netrun_result {
	uint64_t sent;		/* stream: A's frames; rr: transactions started */
	uint64_t received;	/* stream: at B; rr: transactions answered */
	uint64_t lost;
	uint64_t reordered;
	uint64_t bad;		/* frames that were not ours or came damaged */
	uint64_t bytes;		/* Ethernet bytes that reached B */
	uint64_t segments;	/* gso: good wire-sized segments at B */
	double elapsed_s;
	double cpu_user_s, cpu_sys_s;
	bool failed, disconnected, interrupted;
	struct lat_hist hist;	/* rr: round-trip times */
	unsigned int pairs;
	uint64_t rx_pair[32];	/* B's frames by receive queue pair */
	uint64_t tx_pair[32];	/* A's frames by transmit queue pair */
};

void netrun_opts_init(struct netrun_opts *o);
/* 0 when the run took place (its failures are in res), -errno otherwise. */
int netrun_bench(const struct netrun_opts *o, struct netrun_result *res);

#endif

/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * --breakdown: where a blk run's mean latency went. Both daemons' /metrics
 * are read before and after the run, and the differences of their hop
 * histograms (README: "Where a request's time goes") split the bench's
 * mean latency into: guest (what neither daemon saw: the kick reaching
 * local-hv's poller, the interrupt reaching the guest), local-hv's submit
 * and complete hops, the wire (the transport both ways and the pollers'
 * wake-ups) and the io-server's queue, backend and respond hops; plus
 * guest interrupts and each daemon's sleeps per request. The one place
 * this is computed: tests/bench/blk-lib.sh takes it from --json.
 */
#ifndef VRIO_BENCH_BREAKDOWN_H
#define VRIO_BENCH_BREAKDOWN_H

#include <stdbool.h>
#include <stdio.h>

struct bd_source {
	const char *io_metrics, *hv_metrics;	/* HOST:PORT of each daemon */
	const char *device;			/* only this device's series; NULL: all */
};

/* Finds the endpoints and the device for the bench's socket in a topology
 * file (the device whose socket is `socket`; its host's and io_server's
 * metrics). 0 or -errno with one message on stderr. Strings live until
 * bd_source_fini. */
int bd_source_from_topology(struct bd_source *s, const char *path, const char *socket);
void bd_source_fini(struct bd_source *s);

/* One read of both expositions: the samples the breakdown uses. */
struct bd_snap;
int bd_snap_take(const struct bd_source *s, struct bd_snap **out);
void bd_snap_free(struct bd_snap *s);

/* A hop between two snapshots: requests, their mean, and the median
 * interpolated in the histogram's bucket; n == 0: no request. */
struct bd_hop {
	double n, mean_us, p50_us;
};

enum bd_hop_id {
	BD_HV_SUBMIT, BD_HV_COMPLETE, BD_REMOTE, BD_IO_TOTAL, BD_IO_QUEUE, BD_IO_BACKEND,
	BD_IO_RESPOND, BD_NR_HOPS
};

struct breakdown {
	struct bd_hop hop[BD_NR_HOPS];
	double total_us;		/* the bench's mean latency */
	double guest_us, wire_us;	/* derived: total minus what the daemons saw */
	double responses;
	double irqs_per_io, hv_sleeps_per_io, io_sleeps_per_io;
};

void bd_compute(const struct bd_snap *a, const struct bd_snap *b, double total_us,
		struct breakdown *out);
void bd_print_text(FILE *f, const struct breakdown *bd);
/* ,"breakdown":{...} for the bench's JSON object. */
void bd_print_json(FILE *f, const struct breakdown *bd);

/* For the unit test: a snapshot from two expositions' texts. */
int bd_snap_parse(const char *io_text, const char *hv_text, const char *device,
		  struct bd_snap **out);

#endif

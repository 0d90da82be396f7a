/* SPDX-License-Identifier: BSD-3-Clause */
/* The load generator: keeps iodepth requests in flight and reaps them. */
#ifndef VRIO_BENCH_RUN_H
#define VRIO_BENCH_RUN_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "stats.h"
#include "workload.h"

#define RUN_SPIN_NS_DEFAULT 20000ull

struct run_opts {
	const char *socket;
	enum rw_mode rw;
	uint32_t bs;
	unsigned int iodepth;
	unsigned int queues;
	unsigned int queue_size;
	double runtime;		/* seconds, 0: none */
	uint64_t count;		/* requests, 0: none */
	uint64_t size;		/* bytes, 0: to the end of the disk */
	uint64_t offset;
	uint64_t seed;
	const char *state;
	int timeout_ms;
	bool verify;
	bool poll;
	bool quiet;
	bool no_event_idx;
	bool iommu;		/* play the VMM's vIOMMU (IOVAs, misses answered) */
	bool iommu_unmap;	/* and unmap each request's buffer when it is done */
	bool reconnect;		/* as QEMU's reconnect=1 (vudev_reconnect) */
	unsigned int window_ms;	/* count completions per window of this, 0: no */
	/* Without poll: how long it looks for completions before it asks for
	 * an interrupt and sleeps. 0 plays a guest that sleeps at once (a
	 * Linux virtio-blk guest re-enables callbacks after each batch). */
	uint64_t spin_ns;
	/* Spin with a pause instruction, keeping the core; else each look
	 * yields it to whatever else is runnable there, as KVM's halt polling
	 * stops polling when another task is runnable on the CPU. On a
	 * machine where the backend's processes share the guest's cores, a
	 * spin that keeps the core delays the very completion it waits for. */
	bool spin_keep;
	volatile sig_atomic_t *stop;
};

struct run_result {
	unsigned int iodepth;	/* after capping to what the device allows */
	unsigned int queues;
	uint64_t ops;
	uint64_t reads;
	uint64_t writes;
	uint64_t bytes;
	uint64_t errors;
	uint64_t verify_failures;
	uint64_t verified;
	uint64_t flushes;
	uint64_t kicks;
	uint64_t calls;
	double elapsed_s;
	double cpu_user_s;
	double cpu_sys_s;
	bool timed_out;
	bool disconnected;
	/* When the backend hung up: requests answered in the 100 ms after it
	 * (the backend went on behind the frontend's back); those then left
	 * without a used entry, and those of them posted before the used
	 * index, which a frontend that restarts the ring from the used index
	 * (QEMU's reconnect) never sends again. */
	uint64_t answered_after_disconnect, inflight_at_disconnect, lost_on_restore;
	unsigned int reconnects;	/* to a restarted backend, with --reconnect */
	bool device_error;
	bool interrupted;
	struct lat_hist hist;
	/* With window_ms: successful completions and their bytes in each
	 * window from the start, n_windows of them (the last partial). */
	uint64_t *win_ops, *win_bytes;
	unsigned int n_windows;
};

void run_opts_init(struct run_opts *o);
/* 0 when the run took place (its failures are in res), -errno if it could not start. */
int run_bench(const struct run_opts *o, struct run_result *res);
/* Frees what run_bench allocated in res (not res itself). */
void run_result_fini(struct run_result *res);

#endif

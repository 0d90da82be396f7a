/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Fault injection: post one malformed descriptor chain on queue 0 and watch
 * what the backend does with it. A correct backend never completes it and
 * never crashes; it may drop the connection.
 */
#ifndef VRIO_BENCH_INJECT_H
#define VRIO_BENCH_INJECT_H

#include <stdbool.h>
#include <stdio.h>

struct inject_opts {
	const char *socket;
	const char *kind;
	unsigned int queue_size;
	int timeout_ms;
	bool json;
	bool quiet;
	bool no_event_idx;
};

#define INJECT_SKIPPED 77

bool inject_kind_known(const char *kind);
void inject_list_kinds(FILE *out);
/* 0 when the backend behaved, 1 when not, INJECT_SKIPPED, or -errno on set-up failure. */
int inject_run(const struct inject_opts *o);

#endif

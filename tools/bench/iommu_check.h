/* SPDX-License-Identifier: BSD-3-Clause */
/* vrio-bench as the VMM's vIOMMU, checking a backend's promises (iommu_check.c). */
#ifndef VRIO_BENCH_IOMMU_CHECK_H
#define VRIO_BENCH_IOMMU_CHECK_H

#include <stdbool.h>

struct iommu_check_opts {
	const char *socket;
	const char *kind;	/* "invalidate" or "unmapped" */
	int timeout_ms;
	bool deferred;		/* the backend answers invalidations before it is done */
	bool quiet;
};

/* 0 when the backend kept its promises, 1 when not, -errno on set-up failure. */
int iommu_check_run(const struct iommu_check_opts *o);

#endif

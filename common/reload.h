/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * What a reload did, as both daemons report it: in the log, in metrics and
 * in the control socket's answer to `reload` (common/ctl.h).
 */
#ifndef VRIO_COMMON_RELOAD_H
#define VRIO_COMMON_RELOAD_H

#include <jansson.h>
#include <stdint.h>

#include "topology_diff.h"

struct vrio_reload_report {
	int rc;				/* 0, or -errno: nothing was applied */
	char error[1024];		/* "FILE:LINE:COL: message", one per line */
	char **added, **removed, **changed;	/* device names */
	unsigned *changed_keys;		/* enum vrio_topo_live_key bits */
	unsigned n_added, n_removed, n_changed, unchanged;
};

/* Fills the lists from an applied diff; -ENOMEM. */
int vrio_reload_report_fill(struct vrio_reload_report *r, const struct vrio_topo_diff *d);
/* A refusal: every REFUSED message of the diff into r->error, rc -EPERM. */
void vrio_reload_report_refused(struct vrio_reload_report *r, const struct vrio_topo_diff *d);
void vrio_reload_report_free(struct vrio_reload_report *r);
/* The `reload` method's result object. */
json_t *vrio_reload_report_json(const struct vrio_reload_report *r, uint64_t generation,
				const char *sha256);
/* "FILE:LINE:COL: message" -> {"file", "line", "col"}, or NULL. */
json_t *vrio_reload_error_position(const char *msg);

#endif

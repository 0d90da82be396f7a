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

struct vrio_ctl_req;
struct vrio_mw;

/* The loaded configuration, as a daemon reports it. Written by the main
 * thread (under the daemon's metrics lock for sha256); read by metrics. */
struct vrio_config_state {
	uint64_t generation;		/* 1 at start, +1 per applied reload */
	char sha256[65];
	uint64_t reloads_ok, reloads_failed;
	char last_error[1024];
};

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

/*
 * Adds the diff's ADDED devices with add(arg, td); if one fails, removes
 * (undo(arg, name)) those added before it, writes why into res->error
 * (FILE:LINE:COL of the device in `path`) and returns its -errno.
 */
int vrio_reload_add_all(const struct vrio_topo_diff *d, const char *path,
			int (*add)(void *arg, const struct vrio_topo_device *td),
			void (*undo)(void *arg, const char *name), void *arg,
			struct vrio_reload_report *res);

/* A reload that applied nothing: logged once, counted, kept for status. */
void vrio_config_failed(struct vrio_config_state *c, const char *node,
			struct vrio_reload_report *res, int rc);
/* A reload applied: the new file's hash, the generation counted up. */
void vrio_config_applied(struct vrio_config_state *c, const char *sha256);
/* The families PREFIX_config_generation, PREFIX_config_info{sha256} and
 * PREFIX_reloads_total{result}. */
void vrio_config_metrics(struct vrio_mw *w, const char *prefix, const struct vrio_config_state *c);
/* status's "config" object. */
json_t *vrio_config_json(const struct vrio_config_state *c, const char *path);
/* Answers a `reload` request with res (the report, or its error). */
void vrio_reload_reply(struct vrio_ctl_req *req, const struct vrio_reload_report *res,
		       const struct vrio_config_state *c);

#endif

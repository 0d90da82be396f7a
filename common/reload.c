/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "log.h"
#include "metrics.h"
#include "reload.h"

static int push(char ***v, unsigned *n, const char *name)
{
	char **nv = realloc(*v, (*n + 1) * sizeof(**v));

	if (!nv)
		return -ENOMEM;
	*v = nv;
	nv[*n] = strdup(name);
	if (!nv[*n])
		return -ENOMEM;
	(*n)++;
	return 0;
}

int vrio_reload_report_fill(struct vrio_reload_report *r, const struct vrio_topo_diff *d)
{
	const struct vrio_topo_change *c;
	unsigned *keys;
	int rc = 0;

	for (size_t i = 0; i < d->n && rc == 0; i++) {
		c = &d->v[i];
		switch (c->kind) {
		case VRIO_CHANGE_ADDED:
			rc = push(&r->added, &r->n_added, c->new_dev->name);
			break;
		case VRIO_CHANGE_REMOVED:
			rc = push(&r->removed, &r->n_removed, c->old_dev->name);
			break;
		case VRIO_CHANGE_LIVE:
			keys = realloc(r->changed_keys, (r->n_changed + 1) * sizeof(*keys));
			if (!keys)
				return -ENOMEM;
			r->changed_keys = keys;
			keys[r->n_changed] = c->keys;
			rc = push(&r->changed, &r->n_changed, c->new_dev->name);
			break;
		case VRIO_CHANGE_REFUSED:
			break;
		}
	}
	r->unchanged = (unsigned)d->unchanged;
	return rc;
}

void vrio_reload_report_refused(struct vrio_reload_report *r, const struct vrio_topo_diff *d)
{
	size_t len = 0;

	r->rc = -EPERM;
	r->error[0] = '\0';
	for (size_t i = 0; i < d->n && len + 1 < sizeof(r->error); i++) {
		if (d->v[i].kind != VRIO_CHANGE_REFUSED)
			continue;
		len += (size_t)snprintf(r->error + len, sizeof(r->error) - len, "%s%s",
					len ? "\n" : "", d->v[i].msg);
	}
}

static void free_names(char **v, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

void vrio_reload_report_free(struct vrio_reload_report *r)
{
	free_names(r->added, r->n_added);
	free_names(r->removed, r->n_removed);
	free_names(r->changed, r->n_changed);
	free(r->changed_keys);
	r->added = r->removed = r->changed = NULL;
	r->changed_keys = NULL;
	r->n_added = r->n_removed = r->n_changed = 0;
}

static json_t *names(char *const *v, unsigned n)
{
	json_t *a = json_array();

	for (unsigned i = 0; a && i < n; i++)
		json_array_append_new(a, json_string(v[i]));
	return a;
}

json_t *vrio_reload_report_json(const struct vrio_reload_report *r, uint64_t generation,
				const char *sha256)
{
	json_t *changed = json_array(), *keys;

	for (unsigned i = 0; changed && i < r->n_changed; i++) {
		keys = json_array();
		for (unsigned b = 0; keys && b < 32; b++)
			if (r->changed_keys[i] & (1u << b))
				json_array_append_new(keys, json_string(vrio_topo_live_key_name(1u << b)));
		json_array_append_new(changed, json_pack("{s:s, s:o*}", "device", r->changed[i],
							 "keys", keys));
	}
	return json_pack("{s:I, s:s, s:o*, s:o*, s:o*, s:i}", "generation", (json_int_t)generation,
			 "sha256", sha256, "added", names(r->added, r->n_added), "removed",
			 names(r->removed, r->n_removed), "changed", changed, "unchanged",
			 (int)r->unchanged);
}

json_t *vrio_reload_error_position(const char *msg)
{
	unsigned line, col;
	const char *p;
	int n;

	for (p = strchr(msg, ':'); p; p = strchr(p + 1, ':')) {
		n = 0;
		if (sscanf(p, ":%u:%u:%n", &line, &col, &n) == 2 && n > 0)
			return json_pack("{s:s%, s:i, s:i}", "file", msg, (size_t)(p - msg), "line",
					 (int)line, "col", (int)col);
	}
	return NULL;
}

int vrio_reload_add_all(const struct vrio_topo_diff *d, const char *path,
			int (*add)(void *arg, const struct vrio_topo_device *td),
			void (*undo)(void *arg, const char *name), void *arg,
			struct vrio_reload_report *res)
{
	const struct vrio_topo_change *c = NULL;
	size_t i;
	int rc = 0;

	for (i = 0; i < d->n && rc == 0; i++) {
		c = &d->v[i];
		if (c->kind == VRIO_CHANGE_ADDED)
			rc = add(arg, c->new_dev);
	}
	if (rc == 0)
		return 0;
	snprintf(res->error, sizeof(res->error), "%s:%u:%u: device '%s' cannot be added: %s",
		 path, c->new_dev->line, c->new_dev->col, c->new_dev->name, strerror(-rc));
	for (i--; i-- > 0;)
		if (d->v[i].kind == VRIO_CHANGE_ADDED)
			undo(arg, d->v[i].new_dev->name);
	return rc;
}

void vrio_config_failed(struct vrio_config_state *c, const char *node,
			struct vrio_reload_report *res, int rc)
{
	res->rc = rc;
	VRIO_ERR("%s: reload refused, the running configuration stays: %s", node, res->error);
	snprintf(c->last_error, sizeof(c->last_error), "%s", res->error);
	vrio_counter_add(&c->reloads_failed, 1);
}

void vrio_config_applied(struct vrio_config_state *c, const char *sha256)
{
	snprintf(c->sha256, sizeof(c->sha256), "%s", sha256);
	__atomic_add_fetch(&c->generation, 1, __ATOMIC_RELEASE);
	vrio_counter_add(&c->reloads_ok, 1);
	c->last_error[0] = '\0';
}

void vrio_config_metrics(struct vrio_mw *w, const char *prefix, const struct vrio_config_state *c)
{
	char name[96], lab[96];

	snprintf(name, sizeof(name), "%s_config_generation", prefix);
	vrio_mw_family(w, name, "gauge",
		       "The loaded topology's generation: 1 at start, +1 per applied reload.");
	vrio_mw_u64(w, name, NULL, __atomic_load_n(&c->generation, __ATOMIC_RELAXED));
	snprintf(name, sizeof(name), "%s_config_info", prefix);
	vrio_mw_family(w, name, "gauge", "The loaded topology file's SHA-256, as a label.");
	snprintf(lab, sizeof(lab), "sha256=\"%s\"", c->sha256);
	vrio_mw_u64(w, name, lab, 1);
	snprintf(name, sizeof(name), "%s_reloads_total", prefix);
	vrio_mw_family(w, name, "counter",
		       "Reloads of the topology, applied (ok) or refused whole (failed).");
	vrio_mw_u64(w, name, "result=\"ok\"", vrio_counter_get(&c->reloads_ok));
	vrio_mw_u64(w, name, "result=\"failed\"", vrio_counter_get(&c->reloads_failed));
}

json_t *vrio_config_json(const struct vrio_config_state *c, const char *path)
{
	return json_pack("{s:s, s:I, s:s, s:{s:I, s:I}, s:s?}", "path", path, "generation",
			 (json_int_t)c->generation, "sha256", c->sha256, "reloads", "ok",
			 (json_int_t)vrio_counter_get(&c->reloads_ok), "failed",
			 (json_int_t)vrio_counter_get(&c->reloads_failed), "last_error",
			 c->last_error[0] ? c->last_error : NULL);
}

void vrio_reload_reply(struct vrio_ctl_req *req, const struct vrio_reload_report *res,
		       const struct vrio_config_state *c)
{
	json_t *pos;

	if (res->rc == 0) {
		vrio_ctl_reply(req, vrio_reload_report_json(res, c->generation, c->sha256));
		return;
	}
	pos = vrio_reload_error_position(res->error);
	if (pos)
		vrio_ctl_error_data(req, pos);
	vrio_ctl_error(req, VRIO_CTL_EFAILED, "%s", res->error);
}

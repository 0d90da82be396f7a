/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The difference between two topologies, seen from one node. Each kind of
 * entry (io_server, host, network, device) has one table of the keys that
 * matter: how two values compare and how one reads in a message, and for a
 * device whether the key changes live. The rules are in topology_diff.h.
 */
#include "topology_diff.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ARRAY_SIZE(a)	(sizeof(a) / sizeof((a)[0]))
/* A value quoted in a message; longer ones keep their head and tail. */
#define DIFF_VAL_MAX	72

struct diff_key {
	const char *name;
	size_t off;		/* the field the generic comparators read */
	bool (*same)(const void *a, const void *b, size_t off);
	void (*show)(char *buf, size_t len, const void *obj, size_t off);
	unsigned live;		/* devices: the enum vrio_topo_live_key bit; 0: re-attach */
};

#define AT(obj, off, type) ((const type *)((const char *)(obj) + (off)))

/* Generic fields. */

static bool diff_str_eq(const char *a, const char *b)
{
	return a == b || (a && b && strcmp(a, b) == 0);
}

static void diff_abbrev(char *buf, size_t len, const char *s)
{
	size_t n;

	if (!s) {
		snprintf(buf, len, "none");
		return;
	}
	n = strlen(s);
	if (n < len) {
		memcpy(buf, s, n + 1);
		return;
	}
	/* head...tail: paths differ at either end. */
	snprintf(buf, len, "%.*s...%s", (int)(len / 3), s, s + n - (len - len / 3 - 4));
}

static bool same_str(const void *a, const void *b, size_t off)
{
	return diff_str_eq(*AT(a, off, char *), *AT(b, off, char *));
}

static void show_str(char *buf, size_t len, const void *obj, size_t off)
{
	diff_abbrev(buf, len, *AT(obj, off, char *));
}

static bool same_uint(const void *a, const void *b, size_t off)
{
	return *AT(a, off, unsigned) == *AT(b, off, unsigned);
}

static void show_uint(char *buf, size_t len, const void *obj, size_t off)
{
	snprintf(buf, len, "%u", *AT(obj, off, unsigned));
}

static bool same_bool(const void *a, const void *b, size_t off)
{
	return *AT(a, off, bool) == *AT(b, off, bool);
}

static void show_bool(char *buf, size_t len, const void *obj, size_t off)
{
	snprintf(buf, len, "%s", *AT(obj, off, bool) ? "true" : "false");
}

/* A size the way the file writes it. */
static void diff_size(char *buf, size_t len, uint64_t n)
{
	static const char units[] = "KMGT";
	int u = -1;

	while (u < 3 && n && (n & 1023) == 0) {
		n >>= 10;
		u++;
	}
	if (u < 0)
		snprintf(buf, len, "%" PRIu64, n);
	else
		snprintf(buf, len, "%" PRIu64 "%c", n, units[u]);
}

/* io_servers and hosts */

static bool same_dpdk(const void *a, const void *b, size_t off)
{
	const struct vrio_topo_dpdk *x = AT(a, off, struct vrio_topo_dpdk);
	const struct vrio_topo_dpdk *y = AT(b, off, struct vrio_topo_dpdk);

	if (!diff_str_eq(x->port, y->port) || x->n_eal != y->n_eal)
		return false;
	for (unsigned i = 0; i < x->n_eal; i++)
		if (strcmp(x->eal[i], y->eal[i]) != 0)
			return false;
	return true;
}

static void show_dpdk(char *buf, size_t len, const void *obj, size_t off)
{
	const struct vrio_topo_dpdk *d = AT(obj, off, struct vrio_topo_dpdk);
	char eal[DIFF_VAL_MAX] = "", all[2 * DIFF_VAL_MAX];

	for (unsigned i = 0; i < d->n_eal; i++) {
		if (i)
			strncat(eal, " ", sizeof(eal) - strlen(eal) - 1);
		strncat(eal, d->eal[i], sizeof(eal) - strlen(eal) - 1);
	}
	snprintf(all, sizeof(all), "port %s, eal '%s'", d->port ? d->port : "0", eal);
	diff_abbrev(buf, len, all);
}

static bool same_cores(const void *a, const void *b, size_t off)
{
	const struct vrio_topo_ioserver *x = a, *y = b;

	return x->cores_min == y->cores_min && x->cores_max == y->cores_max &&
	       x->cores_busy_high == y->cores_busy_high && x->cores_busy_low == y->cores_busy_low;
}

static void show_cores(char *buf, size_t len, const void *obj, size_t off)
{
	const struct vrio_topo_ioserver *s = obj;

	if (s->cores_busy_high == VRIO_TOPO_BUSY_HIGH && s->cores_busy_low == VRIO_TOPO_BUSY_LOW)
		snprintf(buf, len, "min %u, max %u", s->cores_min, s->cores_max);
	else
		snprintf(buf, len, "min %u, max %u, busy_low %u, busy_high %u", s->cores_min,
			 s->cores_max, s->cores_busy_low, s->cores_busy_high);
}

static bool same_faults(const void *a, const void *b, size_t off)
{
	const struct vrio_topo_faults *x = &((const struct vrio_topo_ioserver *)a)->faults;
	const struct vrio_topo_faults *y = &((const struct vrio_topo_ioserver *)b)->faults;

	if (!x->enabled || !y->enabled)
		return x->enabled == y->enabled;
	return x->seed == y->seed && x->drop == y->drop && x->duplicate == y->duplicate &&
	       x->reorder == y->reorder && x->delay_us == y->delay_us &&
	       x->disconnect_after == y->disconnect_after;
}

/* Only what is set: "none", "on" (all zero), or "seed 7, drop 0.05". */
static void show_faults(char *buf, size_t len, const void *obj, size_t off)
{
	const struct vrio_topo_faults *f = &((const struct vrio_topo_ioserver *)obj)->faults;
	char all[160] = "";
	size_t n = 0;

#define FAULT(cond, fmt, ...)								\
	do {										\
		if ((cond) && n < sizeof(all))						\
			n += (size_t)snprintf(all + n, sizeof(all) - n, "%s" fmt,	\
					      n ? ", " : "", __VA_ARGS__);		\
	} while (0)
	FAULT(f->seed, "seed %" PRIu64, f->seed);
	FAULT(f->drop > 0, "drop %g", f->drop);
	FAULT(f->duplicate > 0, "duplicate %g", f->duplicate);
	FAULT(f->reorder > 0, "reorder %g", f->reorder);
	FAULT(f->delay_us, "delay_us %u", f->delay_us);
	FAULT(f->disconnect_after, "disconnect_after %" PRIu64, f->disconnect_after);
#undef FAULT
	diff_abbrev(buf, len, !f->enabled ? "none" : n ? all : "on");
}

static bool same_heartbeat(const void *a, const void *b, size_t off)
{
	const struct vrio_topo_heartbeat *x = &((const struct vrio_topo_ioserver *)a)->heartbeat;
	const struct vrio_topo_heartbeat *y = &((const struct vrio_topo_ioserver *)b)->heartbeat;

	return x->interval_ms == y->interval_ms && x->dead_after_ms == y->dead_after_ms;
}

static void show_heartbeat(char *buf, size_t len, const void *obj, size_t off)
{
	const struct vrio_topo_heartbeat *h = &((const struct vrio_topo_ioserver *)obj)->heartbeat;

	snprintf(buf, len, "interval_ms %u, dead_after_ms %u", h->interval_ms, h->dead_after_ms);
}

static bool opt_str_eq(const char *x, const char *y)
{
	return (!x && !y) || (x && y && strcmp(x, y) == 0);
}

static bool same_tls(const void *a, const void *b, size_t off)
{
	const struct vrio_topo_tls *x = &((const struct vrio_topo_ioserver *)a)->tls;
	const struct vrio_topo_tls *y = &((const struct vrio_topo_ioserver *)b)->tls;

	return x->enabled == y->enabled && x->psk == y->psk && opt_str_eq(x->cert, y->cert) &&
	       opt_str_eq(x->key, y->key) && opt_str_eq(x->ca, y->ca);
}

static void show_tls(char *buf, size_t len, const void *obj, size_t off)
{
	const struct vrio_topo_tls *t = &((const struct vrio_topo_ioserver *)obj)->tls;

	if (!t->enabled)
		snprintf(buf, len, "none");
	else if (t->psk)
		snprintf(buf, len, "psk");
	else
		diff_abbrev(buf, len, t->cert);
}

#define IOS(field) offsetof(struct vrio_topo_ioserver, field)
/* An io-server's own settings: each needs a restart. */
static const struct diff_key ioserver_keys[] = {
	{ "transport", IOS(transport), same_str, show_str, 0 },
	{ "listen", IOS(listen), same_str, show_str, 0 },
	{ "metrics", IOS(metrics), same_str, show_str, 0 },
	{ "control", IOS(control), same_str, show_str, 0 },
	{ "cores", 0, same_cores, show_cores, 0 },
	{ "dpdk", IOS(dpdk), same_dpdk, show_dpdk, 0 },
	{ "faults", 0, same_faults, show_faults, 0 },
	{ "heartbeat", 0, same_heartbeat, show_heartbeat, 0 },
	{ "tls", 0, same_tls, show_tls, 0 },
};

/* What a host's connection to an io-server was made with. */
static const struct diff_key connection_keys[] = {
	{ "transport", IOS(transport), same_str, show_str, 0 },
	{ "listen", IOS(listen), same_str, show_str, 0 },
	{ "faults", 0, same_faults, show_faults, 0 },
	{ "heartbeat", 0, same_heartbeat, show_heartbeat, 0 },
	{ "tls", 0, same_tls, show_tls, 0 },
};
#undef IOS

#define HOST(field) offsetof(struct vrio_topo_host, field)
static const struct diff_key host_keys[] = {
	{ "metrics", HOST(metrics), same_str, show_str, 0 },
	{ "control", HOST(control), same_str, show_str, 0 },
	{ "dpdk", HOST(dpdk), same_dpdk, show_dpdk, 0 },
	{ "key_file", HOST(key_file), same_str, show_str, 0 },
};
#undef HOST

/* networks */

#define NET(field) offsetof(struct vrio_topo_network, field)
static const struct diff_key network_keys[] = {
	{ "mtu", NET(mtu), same_uint, show_uint, 0 },
	{ "ageing", NET(ageing_s), same_uint, show_uint, 0 },
	{ "uplink", NET(uplink_tap), same_str, show_str, 0 },
};
#undef NET

/* devices */

static bool same_type(const void *a, const void *b, size_t off)
{
	return ((const struct vrio_topo_device *)a)->type ==
	       ((const struct vrio_topo_device *)b)->type;
}

static void show_type(char *buf, size_t len, const void *obj, size_t off)
{
	snprintf(buf, len, "%s", vrio_dev_type_name(((const struct vrio_topo_device *)obj)->type));
}

/* A resolved reference (host, io_server, network) compares and reads by name. */
#define DIFF_REF(field)								\
	static const char *ref_##field(const void *d)				\
	{									\
		const struct vrio_topo_device *dev = d;				\
										\
		return dev->field ? dev->field->name : NULL;			\
	}									\
	static bool same_##field(const void *a, const void *b, size_t off)	\
	{									\
		return diff_str_eq(ref_##field(a), ref_##field(b));		\
	}									\
	static void show_##field(char *buf, size_t len, const void *obj, size_t off) \
	{									\
		diff_abbrev(buf, len, ref_##field(obj));			\
	}
DIFF_REF(host)
DIFF_REF(io_server)
DIFF_REF(network)
DIFF_REF(standby)
#undef DIFF_REF

static bool same_backend(const void *a, const void *b, size_t off)
{
	const struct vrio_topo_backend *x = AT(a, off, struct vrio_topo_backend);
	const struct vrio_topo_backend *y = AT(b, off, struct vrio_topo_backend);

	return x->kind == y->kind && diff_str_eq(x->path, y->path) && x->size == y->size &&
	       x->direct == y->direct;
}

static void show_backend(char *buf, size_t len, const void *obj, size_t off)
{
	const struct vrio_topo_backend *be = AT(obj, off, struct vrio_topo_backend);
	char path[DIFF_VAL_MAX / 2 + 8], size[24];

	diff_size(size, sizeof(size), be->size);
	switch (be->kind) {
	case VRIO_BACKEND_FILE:
		diff_abbrev(path, sizeof(path), be->path);
		snprintf(buf, len, "file %s%s%s%s", path, be->size ? ", size " : "",
			 be->size ? size : "", be->direct ? ", direct" : "");
		break;
	case VRIO_BACKEND_RAM:
		snprintf(buf, len, "ram %s", size);
		break;
	case VRIO_BACKEND_NULL:
		snprintf(buf, len, "null %s", size);
		break;
	default:
		snprintf(buf, len, "none");
		break;
	}
}

static bool same_iommu(const void *a, const void *b, size_t off)
{
	const struct vrio_topo_device *x = a, *y = b;

	return x->iommu_deferred == y->iommu_deferred && x->iommu_batch == y->iommu_batch &&
	       x->iommu_delay_ms == y->iommu_delay_ms;
}

static bool same_interpose(const void *a, const void *b, size_t off)
{
	const struct vrio_topo_device *x = a, *y = b;

	if (x->n_stages != y->n_stages)
		return false;
	for (unsigned i = 0; i < x->n_stages; i++)
		if (!vrio_topo_stage_equal(&x->stages[i], &y->stages[i]))
			return false;
	return true;
}

static void show_interpose(char *buf, size_t len, const void *obj, size_t off)
{
	const struct vrio_topo_device *d = obj;
	size_t n = 0;

	buf[0] = '\0';
	for (unsigned i = 0; i < d->n_stages && n < len; i++)
		n += (size_t)snprintf(buf + n, len - n, "%s%s", i ? ", " : "",
				      vrio_stage_kind_name(d->stages[i].kind));
	if (!d->n_stages)
		snprintf(buf, len, "none");
}

static void show_iommu(char *buf, size_t len, const void *obj, size_t off)
{
	const struct vrio_topo_device *d = obj;

	snprintf(buf, len, "%s, batch %u, delay_ms %u", d->iommu_deferred ? "deferred" : "strict",
		 d->iommu_batch, d->iommu_delay_ms);
}

#define DEV(field) offsetof(struct vrio_topo_device, field)
enum { DEV_KEY_TYPE };
static const struct diff_key device_keys[] = {
	[DEV_KEY_TYPE] = { "type", 0, same_type, show_type, 0 },
	{ "host", 0, same_host, show_host, 0 },
	{ "io_server", 0, same_io_server, show_io_server, 0 },
	{ "standby", 0, same_standby, show_standby, 0 },
	{ "socket", DEV(socket), same_str, show_str, 0 },
	{ "queues", DEV(queues), same_uint, show_uint, 0 },
	{ "queue_size", DEV(queue_size), same_uint, show_uint, 0 },
	{ "backend", DEV(backend), same_backend, show_backend, 0 },
	{ "mac", DEV(mac), same_str, show_str, 0 },
	{ "network", 0, same_network, show_network, 0 },
	{ "offloads", DEV(offloads), same_bool, show_bool, 0 },
	{ "read_only", DEV(read_only), same_bool, show_bool, VRIO_LIVE_READ_ONLY },
	{ "iommu", 0, same_iommu, show_iommu, VRIO_LIVE_IOMMU },
	{ "interpose", 0, same_interpose, show_interpose, VRIO_LIVE_INTERPOSE },
	{ "coalesce_us", DEV(coalesce_us), same_uint, show_uint, VRIO_LIVE_COALESCE },
};
#undef DEV

static const struct {
	unsigned bit;
	const char *name;
} live_key_names[] = {
	{ VRIO_LIVE_READ_ONLY, "read_only" },
	{ VRIO_LIVE_IOMMU, "iommu" },
	{ VRIO_LIVE_INTERPOSE, "interpose" },
	{ VRIO_LIVE_COALESCE, "coalesce_us" },
};

/* The computation. */

struct diff_vec {
	struct vrio_topo_change *v;
	size_t n, cap;
};

struct diff_ctx {
	const struct vrio_topology *old_t, *new_t;
	enum vrio_topo_role role;
	const char *node;
	/* Concatenated in this order into the result. */
	struct diff_vec refused, removed, changed;
	struct vrio_topo_diff *out;
};

static struct vrio_topo_change *diff_push(struct diff_vec *vec, enum vrio_topo_change_kind kind,
					  const struct vrio_topo_device *old_dev,
					  const struct vrio_topo_device *new_dev)
{
	struct vrio_topo_change *c;

	if (vec->n == vec->cap) {
		size_t cap = vec->cap ? 2 * vec->cap : 8;
		struct vrio_topo_change *v = reallocarray(vec->v, cap, sizeof(*v));

		if (!v)
			return NULL;
		vec->v = v;
		vec->cap = cap;
	}
	c = &vec->v[vec->n++];
	memset(c, 0, sizeof(*c));
	c->kind = kind;
	c->old_dev = old_dev;
	c->new_dev = new_dev;
	return c;
}

static int diff_refuse(struct diff_ctx *x, const struct vrio_topo_device *old_dev,
		       const struct vrio_topo_device *new_dev, const struct vrio_topology *t,
		       unsigned line, unsigned col, const char *fmt, ...)
	__attribute__((format(printf, 7, 8)));

static int diff_refuse(struct diff_ctx *x, const struct vrio_topo_device *old_dev,
		       const struct vrio_topo_device *new_dev, const struct vrio_topology *t,
		       unsigned line, unsigned col, const char *fmt, ...)
{
	struct vrio_topo_change *c = diff_push(&x->refused, VRIO_CHANGE_REFUSED, old_dev, new_dev);
	va_list ap;
	int n;

	if (!c)
		return -ENOMEM;
	n = snprintf(c->msg, sizeof(c->msg), "%s:%u:%u: ", t->path, line, col);
	if (n >= 0 && (size_t)n < sizeof(c->msg)) {
		va_start(ap, fmt);
		vsnprintf(c->msg + n, sizeof(c->msg) - (size_t)n, fmt, ap);
		va_end(ap);
	}
	return 0;
}

/*
 * Compare a and b over a key table; refuse each key that differs.
 * what: "io_server 'io0'"; why: "while running"; fix: "restart the daemon".
 * Returns the number of keys refused, or -ENOMEM.
 */
static int diff_keys(struct diff_ctx *x, const struct diff_key *keys, size_t nkeys,
		     const void *a, const void *b, const struct vrio_topo_device *old_dev,
		     const struct vrio_topo_device *new_dev, unsigned line, unsigned col,
		     const char *what, const char *why, const char *fix)
{
	char va[DIFF_VAL_MAX], vb[DIFF_VAL_MAX];
	int refused = 0;

	for (size_t i = 0; i < nkeys; i++) {
		if (keys[i].live || keys[i].same(a, b, keys[i].off))
			continue;
		keys[i].show(va, sizeof(va), a, keys[i].off);
		keys[i].show(vb, sizeof(vb), b, keys[i].off);
		if (diff_refuse(x, old_dev, new_dev, x->new_t, line, col,
				"%s: %s cannot change %s (%s -> %s); %s", what, keys[i].name, why, va,
				vb, fix))
			return -ENOMEM;
		refused++;
	}
	return refused;
}

static const char *diff_part_node(const struct diff_ctx *x, const struct vrio_topo_device *d)
{
	return x->role == VRIO_ROLE_IOSERVER ? d->io_server->name : d->host->name;
}

/* An io-server's part includes the devices it stands by for. */
static bool diff_in_part(const struct diff_ctx *x, const struct vrio_topo_device *d)
{
	return d && (strcmp(diff_part_node(x, d), x->node) == 0 ||
		     (x->role == VRIO_ROLE_IOSERVER && d->standby &&
		      strcmp(d->standby->name, x->node) == 0));
}

/* The entry of node `name` in role `role`, or NULL; *line, *col: where it is. */
static const void *diff_find_node(const struct vrio_topology *t, enum vrio_topo_role role,
				  const char *name, unsigned *line, unsigned *col)
{
	const struct vrio_topo_ioserver *s;
	const struct vrio_topo_host *h;

	if (role == VRIO_ROLE_IOSERVER) {
		s = vrio_topology_ioserver(t, name);
		if (s) {
			*line = s->line;
			*col = s->col;
		}
		return s;
	}
	h = vrio_topology_host(t, name);
	if (h) {
		*line = h->line;
		*col = h->col;
	}
	return h;
}

/* The node itself: still there with its role, and its own settings. */
static int diff_node(struct diff_ctx *x, bool *gone)
{
	enum vrio_topo_role other =
		x->role == VRIO_ROLE_IOSERVER ? VRIO_ROLE_HOST : VRIO_ROLE_IOSERVER;
	const char *role = vrio_topo_role_name(x->role);
	unsigned line = 1, col = 1, old_line = 1, old_col = 1;
	const struct vrio_topology *where = x->new_t;
	const void *a, *b;
	char what[96];

	a = diff_find_node(x->old_t, x->role, x->node, &old_line, &old_col);
	b = diff_find_node(x->new_t, x->role, x->node, &line, &col);
	*gone = !b;
	if (!b) {
		/* Point at what took its name in the new file, else at the old entry. */
		if (!diff_find_node(x->new_t, other, x->node, &line, &col) && a) {
			where = x->old_t;
			line = old_line;
			col = old_col;
		}
		return diff_refuse(x, NULL, NULL, where, line, col, "node '%s' is no longer %s %s in %s",
				   x->node, x->role == VRIO_ROLE_IOSERVER ? "an" : "a", role,
				   x->new_t->path);
	}
	/* Not in the old file as this role: nothing of its own to compare. */
	if (!a)
		return 0;
	snprintf(what, sizeof(what), "%s '%s'", role, x->node);
	if (x->role == VRIO_ROLE_IOSERVER)
		return diff_keys(x, ioserver_keys, ARRAY_SIZE(ioserver_keys), a, b, NULL, NULL, line,
				 col, what, "while running", "restart the daemon") < 0 ? -ENOMEM : 0;
	return diff_keys(x, host_keys, ARRAY_SIZE(host_keys), a, b, NULL, NULL, line, col, what,
			 "while running", "restart the daemon") < 0 ? -ENOMEM : 0;
}

/* Does this host keep a device on io-server `name` in both files? */
static bool diff_host_keeps(const struct diff_ctx *x, const char *name)
{
	for (size_t i = 0; i < x->new_t->n_devices; i++) {
		const struct vrio_topo_device *nd = &x->new_t->devices[i];
		const struct vrio_topo_device *od = vrio_topology_device(x->old_t, nd->name);

		if (diff_in_part(x, nd) && diff_in_part(x, od) &&
		    strcmp(nd->io_server->name, name) == 0 &&
		    strcmp(od->io_server->name, name) == 0)
			return true;
	}
	return false;
}

/* A host: the io-servers its kept devices are connected to. */
static int diff_connections(struct diff_ctx *x)
{
	char what[96], why[128];

	for (size_t i = 0; i < x->new_t->n_io_servers; i++) {
		const struct vrio_topo_ioserver *sn = &x->new_t->io_servers[i];
		const struct vrio_topo_ioserver *so = vrio_topology_ioserver(x->old_t, sn->name);

		if (!so || !diff_host_keeps(x, sn->name))
			continue;
		snprintf(what, sizeof(what), "io_server '%s'", sn->name);
		snprintf(why, sizeof(why), "while host '%s' is connected to it", x->node);
		if (diff_keys(x, connection_keys, ARRAY_SIZE(connection_keys), so, sn, NULL, NULL,
			      sn->line, sn->col, what, why, "restart both daemons") < 0)
			return -ENOMEM;
	}
	return 0;
}

static bool diff_switched_here(const struct diff_ctx *x, const struct vrio_topo_network *nw)
{
	return vrio_topo_network_spans(nw, x->node);
}

static const struct vrio_topo_network *diff_network(const struct vrio_topology *t,
						    const char *name)
{
	for (size_t i = 0; t && i < t->n_networks; i++)
		if (strcmp(t->networks[i].name, name) == 0)
			return &t->networks[i];
	return NULL;
}

/* Does the trunk between this io-server and `peer` carry network nw? */
static bool diff_trunked(const struct diff_ctx *x, const struct vrio_topo_network *nw,
			 const char *peer)
{
	return nw && strcmp(peer, x->node) != 0 && vrio_topo_network_spans(nw, x->node) &&
	       vrio_topo_network_spans(nw, peer);
}

/* The networks of `from` that a trunk of this io-server carries and that
 * no trunk to the same peer carries in `other`, pushed as `added`. */
static int diff_trunks_one_way(struct diff_ctx *x, const struct vrio_topology *from,
			       const struct vrio_topology *other, bool added)
{
	struct vrio_topo_diff *out = x->out;
	struct vrio_topo_trunk_change *v;

	for (size_t i = 0; i < from->n_networks; i++) {
		const struct vrio_topo_network *nw = &from->networks[i];
		const struct vrio_topo_network *ow = diff_network(other, nw->name);

		for (size_t j = 0; j < nw->n_span; j++) {
			if (!diff_trunked(x, nw, nw->span[j]->name) ||
			    diff_trunked(x, ow, nw->span[j]->name))
				continue;
			v = realloc(out->trunks, (out->n_trunks + 1) * sizeof(*v));
			if (!v)
				return -ENOMEM;
			out->trunks = v;
			v[out->n_trunks++] = (struct vrio_topo_trunk_change){
				.peer = nw->span[j], .net = nw, .added = added,
			};
		}
	}
	return 0;
}

/* An io-server: what its trunks start and stop carrying. */
static int diff_trunks(struct diff_ctx *x)
{
	int ret = diff_trunks_one_way(x, x->old_t, x->new_t, false);

	return ret ? ret : diff_trunks_one_way(x, x->new_t, x->old_t, true);
}

/* An io-server: the networks its net devices use, i.e. its switches. */
static int diff_networks(struct diff_ctx *x)
{
	struct vrio_topo_diff *out = x->out;
	char what[96];

	for (size_t i = 0; i < x->new_t->n_networks; i++) {
		const struct vrio_topo_network *nn = &x->new_t->networks[i];
		const struct vrio_topo_network *on = diff_network(x->old_t, nn->name);

		if (!diff_switched_here(x, nn))
			continue;
		if (diff_switched_here(x, on)) {
			snprintf(what, sizeof(what), "network '%s'", nn->name);
			if (diff_keys(x, network_keys, ARRAY_SIZE(network_keys), on, nn, NULL, NULL,
				      nn->line, nn->col, what, "while its devices exist",
				      "remove them and add them back") < 0)
				return -ENOMEM;
			continue;
		}
		if (!out->new_networks) {
			out->new_networks = calloc(x->new_t->n_networks, sizeof(*out->new_networks));
			if (!out->new_networks)
				return -ENOMEM;
		}
		out->new_networks[out->n_new_networks++] = nn;
	}
	return 0;
}

static int diff_devices(struct diff_ctx *x)
{
	char what[96];

	for (size_t i = 0; i < x->new_t->n_devices; i++) {
		const struct vrio_topo_device *nd = &x->new_t->devices[i];
		const struct vrio_topo_device *od = vrio_topology_device(x->old_t, nd->name);
		struct vrio_topo_change *c;
		unsigned live = 0;
		size_t nkeys;
		int refused;

		if (!diff_in_part(x, nd) && !diff_in_part(x, od))
			continue;
		if (!od) {
			if (!diff_push(&x->changed, VRIO_CHANGE_ADDED, NULL, nd))
				return -ENOMEM;
			continue;
		}
		/* Another type makes every other key meaningless. */
		nkeys = same_type(od, nd, 0) ? ARRAY_SIZE(device_keys) : DEV_KEY_TYPE + 1;
		snprintf(what, sizeof(what), "device '%s'", nd->name);
		refused = diff_keys(x, device_keys, nkeys, od, nd, od, nd, nd->line, nd->col, what,
				    "while the device exists", "remove it and add it back");
		if (refused < 0)
			return -ENOMEM;
		if (refused)
			continue;
		for (size_t k = 0; k < nkeys; k++)
			if (device_keys[k].live && !device_keys[k].same(od, nd, device_keys[k].off))
				live |= device_keys[k].live;
		if (!live) {
			x->out->unchanged++;
			continue;
		}
		c = diff_push(&x->changed, VRIO_CHANGE_LIVE, od, nd);
		if (!c)
			return -ENOMEM;
		c->keys = live;
	}
	for (size_t i = 0; i < x->old_t->n_devices; i++) {
		const struct vrio_topo_device *od = &x->old_t->devices[i];

		if (diff_in_part(x, od) && !vrio_topology_device(x->new_t, od->name) &&
		    !diff_push(&x->removed, VRIO_CHANGE_REMOVED, od, NULL))
			return -ENOMEM;
	}
	return 0;
}

static int diff_collect(struct diff_ctx *x)
{
	struct vrio_topo_diff *out = x->out;
	const struct diff_vec *parts[] = { &x->refused, &x->removed, &x->changed };
	bool gone = false;
	size_t n = 0;
	int ret;

	ret = diff_node(x, &gone);
	if (ret == 0 && !gone && x->role == VRIO_ROLE_HOST)
		ret = diff_connections(x);
	if (ret == 0 && !gone && x->role == VRIO_ROLE_IOSERVER)
		ret = diff_networks(x);
	if (ret == 0 && !gone && x->role == VRIO_ROLE_IOSERVER)
		ret = diff_trunks(x);
	if (ret == 0 && !gone)
		ret = diff_devices(x);
	if (ret)
		return ret;

	for (size_t i = 0; i < ARRAY_SIZE(parts); i++)
		n += parts[i]->n;
	out->refused = x->refused.n > 0;
	if (n == 0)
		return 0;
	out->v = calloc(n, sizeof(*out->v));
	if (!out->v)
		return -ENOMEM;
	for (size_t i = 0; i < ARRAY_SIZE(parts); i++) {
		if (parts[i]->n)
			memcpy(out->v + out->n, parts[i]->v, parts[i]->n * sizeof(*out->v));
		out->n += parts[i]->n;
	}
	return 0;
}

int vrio_topology_diff(const struct vrio_topology *old_t, const struct vrio_topology *new_t,
		       enum vrio_topo_role role, const char *node, struct vrio_topo_diff *out)
{
	struct diff_ctx x = {
		.old_t = old_t, .new_t = new_t, .role = role, .node = node, .out = out,
	};
	int ret;

	memset(out, 0, sizeof(*out));
	ret = diff_collect(&x);
	free(x.refused.v);
	free(x.removed.v);
	free(x.changed.v);
	if (ret)
		vrio_topology_diff_free(out);
	return ret;
}

void vrio_topology_diff_free(struct vrio_topo_diff *d)
{
	if (!d)
		return;
	free(d->v);
	free(d->new_networks);
	free(d->trunks);
	memset(d, 0, sizeof(*d));
}

const char *vrio_topo_live_key_name(unsigned bit)
{
	for (size_t i = 0; i < ARRAY_SIZE(live_key_names); i++)
		if (live_key_names[i].bit == bit)
			return live_key_names[i].name;
	return "unknown";
}

const char *vrio_topo_change_kind_name(enum vrio_topo_change_kind kind)
{
	switch (kind) {
	case VRIO_CHANGE_ADDED:
		return "added";
	case VRIO_CHANGE_REMOVED:
		return "removed";
	case VRIO_CHANGE_LIVE:
		return "live";
	case VRIO_CHANGE_REFUSED:
		return "refused";
	}
	return "unknown";
}

const char *vrio_topo_role_name(enum vrio_topo_role role)
{
	return role == VRIO_ROLE_IOSERVER ? "io_server" : "host";
}

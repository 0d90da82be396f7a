/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The topology loader. libyaml builds the document tree; each section is
 * checked by one table of keys (name, parser, field, range, flags), so that
 * the table is also what an unknown-key message lists. Names that refer to
 * other sections are resolved after the whole file is read, because a device
 * may come before the host it names.
 */
#include "topology.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <openssl/evp.h>
#include <yaml.h>

#include "addr.h"

#define ARRAY_SIZE(a)	(sizeof(a) / sizeof((a)[0]))
#define TOPO_NAME_MAX	63
#define TOPO_FILE_MAX	(16u << 20)
#define TOPO_SUN_PATH	sizeof(((struct sockaddr_un *)0)->sun_path)
#define TOPO_EAL_ARGS	64
#define TOPO_ROOT_WANTED "a mapping with version, io_servers and hosts"

/* Transports the daemons know; a new backend adds its name here. */
struct topo_ctx;
struct topo_key;
typedef int (*topo_parse_fn)(struct topo_ctx *c, const struct topo_key *k, const yaml_node_t *v,
			     void *obj);
static int topo_p_hostport(struct topo_ctx *c, const struct topo_key *k, const yaml_node_t *v,
			   void *obj);
static int topo_p_socket(struct topo_ctx *c, const struct topo_key *k, const yaml_node_t *v,
			 void *obj);
static int topo_p_mac(struct topo_ctx *c, const struct topo_key *k, const yaml_node_t *v,
		      void *obj);

/* Known transports, how each one's `listen:` address is written, and
 * whether the io-server's `dpdk:` settings apply. */
static const struct {
	const char *name;
	topo_parse_fn listen;
	bool dpdk;
} topo_transports[] = {
	{ "tcp", topo_p_hostport, false },
	{ "shm", topo_p_socket, false },
	{ "dpdk", topo_p_mac, true },
	/* An IP address of the RDMA netdev (rdma_cm resolves the device). */
	{ "rdma", topo_p_hostport, false },
};

static const struct {
	const char *name;
	enum vrio_dev_type type;
} topo_dev_types[] = {
	{ "blk", VRIO_DEV_BLK },
	{ "net", VRIO_DEV_NET },
};

/* Device-level nodes kept until references are resolved. */
struct topo_dev_refs {
	const yaml_node_t *host, *io_server, *network, *mac, *socket, *standby;
};

/* Network-level nodes kept until references are resolved. */
struct topo_net_refs {
	const yaml_node_t *io_servers, *uplink;
};

struct topo_ctx {
	const char *name;	/* the file, as messages name it */
	const char *dir;	/* base of relative backend paths; NULL keeps them as written */
	yaml_document_t *doc;
	struct vrio_topology *t;
	struct topo_dev_refs *refs;	/* parallel to t->devices */
	struct topo_net_refs *net_refs;	/* parallel to t->networks */
	char *err;
	size_t errlen;
};

struct topo_key;

enum {
	KEY_REQUIRED = 1 << 0,
	/* Device keys that belong to one type; with KEY_REQUIRED, required for it. */
	KEY_BLK = 1 << 1,
	KEY_NET = 1 << 2,
};

struct topo_key {
	const char *name;
	topo_parse_fn parse;
	size_t off;		/* the field of obj that the generic parsers fill */
	uint64_t min, max;	/* integer range */
	unsigned flags;
};

struct topo_seen {
	const yaml_node_t *key, *val;
};

static int topo_verr(struct topo_ctx *c, unsigned line, unsigned col, const char *fmt, va_list ap)
	__attribute__((format(printf, 4, 0)));

static int topo_verr(struct topo_ctx *c, unsigned line, unsigned col, const char *fmt, va_list ap)
{
	int n;

	if (!c->err || c->errlen == 0)
		return -EINVAL;
	n = snprintf(c->err, c->errlen, "%s:%u:%u: ", c->name, line, col);
	if (n >= 0 && (size_t)n < c->errlen)
		vsnprintf(c->err + n, c->errlen - (size_t)n, fmt, ap);
	/* Values quoted into the message may hold line breaks; keep one line. */
	for (char *p = c->err; *p; p++)
		if ((unsigned char)*p < 0x20)
			*p = '?';
	return -EINVAL;
}

static int topo_err_at(struct topo_ctx *c, unsigned line, unsigned col, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int topo_err_at(struct topo_ctx *c, unsigned line, unsigned col, const char *fmt, ...)
{
	va_list ap;
	int ret;

	va_start(ap, fmt);
	ret = topo_verr(c, line, col, fmt, ap);
	va_end(ap);
	return ret;
}

static int topo_err(struct topo_ctx *c, const yaml_node_t *n, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int topo_err(struct topo_ctx *c, const yaml_node_t *n, const char *fmt, ...)
{
	va_list ap;
	int ret;

	va_start(ap, fmt);
	ret = topo_verr(c, (unsigned)n->start_mark.line + 1, (unsigned)n->start_mark.column + 1,
			fmt, ap);
	va_end(ap);
	return ret;
}

static int topo_oom(struct topo_ctx *c)
{
	if (c->err && c->errlen)
		snprintf(c->err, c->errlen, "%s: out of memory", c->name);
	return -ENOMEM;
}

static const char *topo_str(const yaml_node_t *n)
{
	return (const char *)n->data.scalar.value;
}

/* How a node reads in "got ..." */
static const char *topo_desc(const yaml_node_t *n, char *buf, size_t len)
{
	switch (n->type) {
	case YAML_MAPPING_NODE:
		return "a mapping";
	case YAML_SEQUENCE_NODE:
		return "a sequence";
	case YAML_SCALAR_NODE:
		if (n->data.scalar.length == 0)
			return "an empty value";
		snprintf(buf, len, "'%.*s'", (int)(len - 3), topo_str(n));
		return buf;
	default:
		return "nothing";
	}
}

static int topo_expected(struct topo_ctx *c, const struct topo_key *k, const yaml_node_t *v,
			 const char *what)
{
	char buf[80];

	return topo_err(c, v, "expected %s for '%s', got %s", what, k->name,
			topo_desc(v, buf, sizeof(buf)));
}

/* A non-empty scalar without embedded NULs. */
static int topo_scalar(struct topo_ctx *c, const struct topo_key *k, const yaml_node_t *v,
		       const char *what, const char **out)
{
	*out = NULL;
	if (v->type != YAML_SCALAR_NODE || v->data.scalar.length == 0 ||
	    strlen(topo_str(v)) != v->data.scalar.length)
		return topo_expected(c, k, v, what);
	*out = topo_str(v);
	return 0;
}

static int topo_set_str(struct topo_ctx *c, char **field, const char *s)
{
	char *dup = strdup(s);

	if (!dup)
		return topo_oom(c);
	free(*field);
	*field = dup;
	return 0;
}

#define FIELD(obj, k, type) ((type *)((char *)(obj) + (k)->off))

static void *topo_append(void *arr, size_t n, size_t size)
{
	char *p = reallocarray(arr, n + 1, size);

	if (p)
		memset(p + n * size, 0, size);
	return p;
}

static bool topo_name_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > TOPO_NAME_MAX)
		return false;
	return strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-") == n;
}

/* Decimal digits only; -ERANGE past UINT64_MAX. */
static int topo_u64(const char *s, uint64_t *out, const char **end)
{
	uint64_t v = 0;
	const char *p = s;

	for (; *p >= '0' && *p <= '9'; p++) {
		unsigned d = (unsigned)(*p - '0');

		if (v > (UINT64_MAX - d) / 10)
			return -ERANGE;
		v = v * 10 + d;
	}
	if (p == s)
		return -EINVAL;
	*out = v;
	*end = p;
	return 0;
}

/* The generic value parsers. */

static int topo_p_name(struct topo_ctx *c, const struct topo_key *k, const yaml_node_t *v,
		       void *obj)
{
	const char *s;
	int ret;

	ret = topo_scalar(c, k, v, "a name", &s);
	if (ret)
		return ret;
	if (!topo_name_ok(s))
		return topo_err(c, v,
				"invalid name '%s' for '%s' (expected 1 to %d of A-Z a-z 0-9 _ . -)",
				s, k->name, TOPO_NAME_MAX);
	return topo_set_str(c, FIELD(obj, k, char *), s);
}

/* A reference to another section's entry; checked once the file is read. */
static int topo_p_ref(struct topo_ctx *c, const struct topo_key *k, const yaml_node_t *v,
		      void *obj)
{
	const char *s;

	return topo_scalar(c, k, v, "a name", &s);
}

static int topo_p_hostport(struct topo_ctx *c, const struct topo_key *k, const yaml_node_t *v,
			   void *obj)
{
	struct sockaddr_storage ss;
	socklen_t sslen;
	const char *s;
	int ret;

	ret = topo_scalar(c, k, v, "host:port", &s);
	if (ret)
		return ret;
	if (vrio_parse_hostport(s, &ss, &sslen))
		return topo_expected(c, k, v, "host:port (like 127.0.0.1:7400 or [::1]:7400)");
	return topo_set_str(c, FIELD(obj, k, char *), s);
}

static int topo_p_transport(struct topo_ctx *c, const struct topo_key *k, const yaml_node_t *v,
			    void *obj)
{
	char known[128] = "";
	const char *s;
	int ret;

	ret = topo_scalar(c, k, v, "a transport name", &s);
	if (ret)
		return ret;
	for (size_t i = 0; i < ARRAY_SIZE(topo_transports); i++) {
		if (strcmp(s, topo_transports[i].name) == 0)
			return topo_set_str(c, FIELD(obj, k, char *), s);
		if (i)
			strncat(known, ", ", sizeof(known) - strlen(known) - 1);
		strncat(known, topo_transports[i].name, sizeof(known) - strlen(known) - 1);
	}
	return topo_err(c, v, "unknown transport '%s' (expected %s)", s, known);
}

static int topo_uint(struct topo_ctx *c, const struct topo_key *k, const yaml_node_t *v,
		     uint64_t *out)
{
	const char *s, *end;
	uint64_t n;
	int ret;

	ret = topo_scalar(c, k, v, "an integer", &s);
	if (ret)
		return ret;
	ret = topo_u64(s, &n, &end);
	if (ret == -EINVAL || (ret == 0 && *end))
		return topo_expected(c, k, v, "an integer");
	if (ret || n < k->min || n > k->max)
		return topo_err(c, v, "'%s' must be between %llu and %llu, got %s", k->name,
				(unsigned long long)k->min, (unsigned long long)k->max, s);
	*out = n;
	return 0;
}

static int topo_p_uint(struct topo_ctx *c, const struct topo_key *k, const yaml_node_t *v,
		       void *obj)
{
	uint64_t n;
	int ret;

	ret = topo_uint(c, k, v, &n);
	if (ret)
		return ret;
	*FIELD(obj, k, unsigned) = (unsigned)n;
	return 0;
}

static int topo_p_pow2(struct topo_ctx *c, const struct topo_key *k, const yaml_node_t *v,
		       void *obj)
{
	uint64_t n;
	int ret;

	ret = topo_uint(c, k, v, &n);
	if (ret == 0 && (n & (n - 1)) != 0)
		ret = topo_err(c, v, "'%s' must be a power of two, got %llu", k->name,
			       (unsigned long long)n);
	if (ret)
		return ret;
	*FIELD(obj, k, unsigned) = (unsigned)n;
	return 0;
}

static int topo_p_bool(struct topo_ctx *c, const struct topo_key *k, const yaml_node_t *v,
		       void *obj)
{
	static const struct {
		const char *word;
		bool value;
	} words[] = {
		{ "true", true }, { "false", false }, { "yes", true }, { "no", false },
	};
	const char *s;
	int ret;

	ret = topo_scalar(c, k, v, "true or false", &s);
	if (ret)
		return ret;
	for (size_t i = 0; i < ARRAY_SIZE(words); i++) {
		if (strcmp(s, words[i].word) == 0) {
			*FIELD(obj, k, bool) = words[i].value;
			return 0;
		}
	}
	return topo_expected(c, k, v, "true or false");
}

/* Bytes, or a number with a binary suffix; positive and whole sectors. */
static int topo_p_size(struct topo_ctx *c, const struct topo_key *k, const yaml_node_t *v,
		       void *obj)
{
	static const struct {
		const char *suffix;
		unsigned shift;
	} units[] = {
		{ "", 0 },
		{ "K", 10 }, { "M", 20 }, { "G", 30 }, { "T", 40 },
		{ "KiB", 10 }, { "MiB", 20 }, { "GiB", 30 }, { "TiB", 40 },
	};
	const char *s, *end;
	uint64_t n;
	int ret;

	ret = topo_scalar(c, k, v, "a size", &s);
	if (ret)
		return ret;
	ret = topo_u64(s, &n, &end);
	if (ret == -ERANGE)
		goto range;
	if (ret)
		goto bad;
	for (size_t i = 0; i < ARRAY_SIZE(units); i++) {
		if (strcmp(end, units[i].suffix) != 0)
			continue;
		if (n > (UINT64_MAX >> units[i].shift))
			goto range;
		n <<= units[i].shift;
		if (n == 0 || n % 512)
			goto range;
		*FIELD(obj, k, uint64_t) = n;
		return 0;
	}
bad:
	return topo_expected(c, k, v, "a size (bytes, or a number with suffix K, M, G or T)");
range:
	return topo_err(c, v, "'%s' must be a positive multiple of 512 bytes, got %s", k->name, s);
}

static int topo_p_socket(struct topo_ctx *c, const struct topo_key *k, const yaml_node_t *v,
			 void *obj)
{
	const char *s;
	int ret;

	ret = topo_scalar(c, k, v, "an absolute path", &s);
	if (ret)
		return ret;
	if (s[0] != '/')
		return topo_expected(c, k, v, "an absolute path");
	if (strlen(s) >= TOPO_SUN_PATH)
		return topo_err(c, v,
				"'%s' path is %zu bytes long, a unix socket path holds at most %zu",
				k->name, strlen(s), TOPO_SUN_PATH - 1);
	return topo_set_str(c, FIELD(obj, k, char *), s);
}

static int topo_p_path(struct topo_ctx *c, const struct topo_key *k, const yaml_node_t *v,
		       void *obj)
{
	char **field = FIELD(obj, k, char *);
	const char *s;
	char *path;
	int ret;

	ret = topo_scalar(c, k, v, "a path", &s);
	if (ret)
		return ret;
	if (s[0] == '/' || !c->dir)
		return topo_set_str(c, field, s);
	path = malloc(strlen(c->dir) + strlen(s) + 2);
	if (!path)
		return topo_oom(c);
	sprintf(path, "%s/%s", c->dir, s);
	free(*field);
	*field = path;
	return 0;
}

static int topo_p_type(struct topo_ctx *c, const struct topo_key *k, const yaml_node_t *v,
		       void *obj)
{
	const char *s;
	int ret;

	ret = topo_scalar(c, k, v, "a device type", &s);
	if (ret)
		return ret;
	for (size_t i = 0; i < ARRAY_SIZE(topo_dev_types); i++) {
		if (strcmp(s, topo_dev_types[i].name) == 0) {
			*FIELD(obj, k, enum vrio_dev_type) = topo_dev_types[i].type;
			return 0;
		}
	}
	return topo_err(c, v, "unknown device type '%s' (expected blk or net)", s);
}

static int topo_p_mac(struct topo_ctx *c, const struct topo_key *k, const yaml_node_t *v,
		      void *obj)
{
	char mac[18];
	unsigned first, any = 0;
	const char *s;
	int ret;

	ret = topo_scalar(c, k, v, "a MAC address", &s);
	if (ret)
		return ret;
	if (strlen(s) != 17)
		goto bad;
	for (unsigned i = 0; i < 17; i++) {
		if (i % 3 == 2) {
			if (s[i] != ':')
				goto bad;
		} else if (!isxdigit((unsigned char)s[i])) {
			goto bad;
		}
		mac[i] = (char)tolower((unsigned char)s[i]);
		any |= (s[i] != '0' && s[i] != ':');
	}
	mac[17] = '\0';
	first = (unsigned)strtoul(mac, NULL, 16);
	if ((first & 1) || !any)
		return topo_err(c, v, "'%s' must be a unicast address, got %s", k->name, s);
	return topo_set_str(c, FIELD(obj, k, char *), mac);
bad:
	return topo_expected(c, k, v, "a MAC address of six hex octets (like 52:54:00:00:00:01)");
}

/*
 * Walk one mapping against its key table: every key known, none twice, the
 * required ones present. seen[] (one slot per table row) receives the key and
 * value node of every key found.
 */
static int topo_walk(struct topo_ctx *c, const yaml_node_t *map, const char *section,
		     const struct topo_key *keys, size_t nkeys, void *obj, struct topo_seen *seen)
{
	const yaml_node_pair_t *p;
	char buf[80];
	int ret;

	for (p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
		const yaml_node_t *k = yaml_document_get_node(c->doc, p->key);
		const yaml_node_t *v = yaml_document_get_node(c->doc, p->value);
		size_t i;

		if (k->type != YAML_SCALAR_NODE)
			return topo_err(c, k, "expected a key name in %s, got %s", section,
					topo_desc(k, buf, sizeof(buf)));
		for (i = 0; i < nkeys; i++)
			if (strcmp(topo_str(k), keys[i].name) == 0)
				break;
		if (i == nkeys) {
			char known[256] = "";

			for (size_t j = 0; j < nkeys; j++) {
				if (j)
					strncat(known, ", ", sizeof(known) - strlen(known) - 1);
				strncat(known, keys[j].name, sizeof(known) - strlen(known) - 1);
			}
			return topo_err(c, k, "unknown key '%s' in %s (expected one of: %s)",
					topo_str(k), section, known);
		}
		if (seen[i].key)
			return topo_err(c, k, "duplicate key '%s'", keys[i].name);
		seen[i].key = k;
		seen[i].val = v;
		ret = keys[i].parse(c, &keys[i], v, obj);
		if (ret)
			return ret;
	}
	/* Keys required for one device type are checked by the device. */
	for (size_t i = 0; i < nkeys; i++) {
		if ((keys[i].flags & (KEY_REQUIRED | KEY_BLK | KEY_NET)) != KEY_REQUIRED)
			continue;
		if (!seen[i].key)
			return topo_err(c, map, "%s: missing required key '%s'", section,
					keys[i].name);
	}
	return 0;
}

static int topo_want_mapping(struct topo_ctx *c, const struct topo_key *k, const yaml_node_t *v)
{
	return v->type == YAML_MAPPING_NODE ? 0 : topo_expected(c, k, v, "a mapping");
}

/* io_servers[].cores */

enum { CORES_MIN, CORES_MAX, CORES_BUSY_HIGH, CORES_BUSY_LOW, N_CORES_KEYS };

struct topo_cores {
	unsigned min, max, busy_high, busy_low;
};

static const struct topo_key cores_keys[N_CORES_KEYS] = {
	[CORES_MIN] = { "min", topo_p_uint, offsetof(struct topo_cores, min), 1, 64, 0 },
	[CORES_MAX] = { "max", topo_p_uint, offsetof(struct topo_cores, max), 1, 64, 0 },
	[CORES_BUSY_HIGH] = { "busy_high", topo_p_uint, offsetof(struct topo_cores, busy_high),
			      2, 100, 0 },
	[CORES_BUSY_LOW] = { "busy_low", topo_p_uint, offsetof(struct topo_cores, busy_low),
			     1, 99, 0 },
};

static int topo_p_cores(struct topo_ctx *c, const struct topo_key *k, const yaml_node_t *v,
			void *obj)
{
	struct vrio_topo_ioserver *s = obj;
	struct topo_seen seen[N_CORES_KEYS] = { 0 };
	struct topo_cores cores = { 1, 0, VRIO_TOPO_BUSY_HIGH, VRIO_TOPO_BUSY_LOW };
	int ret;

	ret = topo_want_mapping(c, k, v);
	if (ret)
		return ret;
	ret = topo_walk(c, v, "cores", cores_keys, N_CORES_KEYS, &cores, seen);
	if (ret)
		return ret;
	if (!seen[CORES_MAX].key)
		cores.max = cores.min;
	if (cores.min > cores.max)
		return topo_err(c, v, "cores: 'min' (%u) is greater than 'max' (%u)", cores.min,
				cores.max);
	/* Packed onto one core fewer, the load must stay under busy_low and
	 * so under busy_high: that keeps a steady load from flapping. */
	if (cores.busy_low >= cores.busy_high)
		return topo_err(c, v, "cores: 'busy_low' (%u) must be below 'busy_high' (%u)",
				cores.busy_low, cores.busy_high);
	s->cores_min = cores.min;
	s->cores_max = cores.max;
	s->cores_busy_high = cores.busy_high;
	s->cores_busy_low = cores.busy_low;
	return 0;
}

/* io_servers[].heartbeat */

enum { HB_INTERVAL, HB_DEAD_AFTER, N_HB_KEYS };

#define F(field) offsetof(struct vrio_topo_heartbeat, field)
static const struct topo_key heartbeat_keys[N_HB_KEYS] = {
	[HB_INTERVAL] = { "interval_ms", topo_p_uint, F(interval_ms), 10, 60000, 0 },
	[HB_DEAD_AFTER] = { "dead_after_ms", topo_p_uint, F(dead_after_ms), 30, 600000, 0 },
};
#undef F

/* A peer is declared dead only after missing more than two heartbeats. */
static int topo_p_heartbeat(struct topo_ctx *c, const struct topo_key *k, const yaml_node_t *v,
			    void *obj)
{
	struct vrio_topo_ioserver *s = obj;
	struct topo_seen seen[N_HB_KEYS] = { 0 };
	struct vrio_topo_heartbeat hb = s->heartbeat;
	int ret;

	ret = topo_want_mapping(c, k, v);
	if (ret)
		return ret;
	ret = topo_walk(c, v, "heartbeat", heartbeat_keys, N_HB_KEYS, &hb, seen);
	if (ret)
		return ret;
	if ((uint64_t)hb.dead_after_ms <= 2ull * hb.interval_ms)
		return topo_err(c, seen[HB_DEAD_AFTER].val ? seen[HB_DEAD_AFTER].val : v,
				"heartbeat: 'dead_after_ms' (%u) must be more than twice 'interval_ms' (%u)",
				hb.dead_after_ms, hb.interval_ms);
	s->heartbeat = hb;
	return 0;
}

/* io_servers[].tls */

enum { TLS_PSK, TLS_CERT, TLS_KEY, TLS_CA, N_TLS_KEYS };

#define F(field) offsetof(struct vrio_topo_tls, field)
static const struct topo_key tls_keys[N_TLS_KEYS] = {
	[TLS_PSK] = { "psk", topo_p_bool, F(psk), 0, 0, 0 },
	[TLS_CERT] = { "cert", topo_p_path, F(cert), 0, 0, 0 },
	[TLS_KEY] = { "key", topo_p_path, F(key), 0, 0, 0 },
	[TLS_CA] = { "ca", topo_p_path, F(ca), 0, 0, 0 },
};
#undef F

/* Either {psk: true} or all three of cert, key and ca, never both. */
static int topo_p_tls(struct topo_ctx *c, const struct topo_key *k, const yaml_node_t *v,
		      void *obj)
{
	struct vrio_topo_ioserver *s = obj;
	struct topo_seen seen[N_TLS_KEYS] = { 0 };
	bool certs;
	int ret;

	ret = topo_want_mapping(c, k, v);
	if (ret)
		return ret;
	s->tls.line = (unsigned)v->start_mark.line + 1;
	s->tls.col = (unsigned)v->start_mark.column + 1;
	ret = topo_walk(c, v, "tls", tls_keys, N_TLS_KEYS, &s->tls, seen);
	if (ret)
		return ret;
	certs = seen[TLS_CERT].key || seen[TLS_KEY].key || seen[TLS_CA].key;
	if (s->tls.psk && certs)
		return topo_err(c, v, "tls: 'psk: true' or 'cert', 'key' and 'ca', not both");
	if (!s->tls.psk && !(seen[TLS_CERT].key && seen[TLS_KEY].key && seen[TLS_CA].key))
		return topo_err(c, v, "tls: expected 'psk: true', or 'cert', 'key' and 'ca' (PEM files)");
	s->tls.enabled = true;
	return 0;
}

/* io_servers[] */

/* faults: */

enum { FLT_SEED, FLT_DROP, FLT_DUP, FLT_REORDER, FLT_DELAY, FLT_DISCONNECT, N_FLT_KEYS };

static int topo_p_fraction(struct topo_ctx *c, const struct topo_key *k, const yaml_node_t *v,
			   void *obj)
{
	const char *s;
	char *end;
	double d;
	int ret;

	ret = topo_scalar(c, k, v, "a probability", &s);
	if (ret)
		return ret;
	errno = 0;
	d = strtod(s, &end);
	if (errno || *end || !(d >= 0.0 && d <= 1.0))
		return topo_expected(c, k, v, "a probability between 0 and 1");
	*FIELD(obj, k, double) = d;
	return 0;
}

static int topo_p_u64(struct topo_ctx *c, const struct topo_key *k, const yaml_node_t *v,
		      void *obj)
{
	return topo_uint(c, k, v, FIELD(obj, k, uint64_t));
}

#define F(field) offsetof(struct vrio_topo_faults, field)
static const struct topo_key fault_keys[N_FLT_KEYS] = {
	[FLT_SEED] = { "seed", topo_p_u64, F(seed), 0, UINT64_MAX, 0 },
	[FLT_DROP] = { "drop", topo_p_fraction, F(drop), 0, 0, 0 },
	[FLT_DUP] = { "duplicate", topo_p_fraction, F(duplicate), 0, 0, 0 },
	[FLT_REORDER] = { "reorder", topo_p_fraction, F(reorder), 0, 0, 0 },
	[FLT_DELAY] = { "delay_us", topo_p_uint, F(delay_us), 0, 1000000, 0 },
	[FLT_DISCONNECT] = { "disconnect_after", topo_p_u64, F(disconnect_after), 0,
			     UINT64_MAX, 0 },
};
#undef F

static int topo_p_faults(struct topo_ctx *c, const struct topo_key *k, const yaml_node_t *v,
			 void *obj)
{
	struct vrio_topo_ioserver *s = obj;
	struct topo_seen seen[N_FLT_KEYS] = { 0 };
	int ret;

	ret = topo_want_mapping(c, k, v);
	if (ret)
		return ret;
	ret = topo_walk(c, v, "faults", fault_keys, N_FLT_KEYS, &s->faults, seen);
	if (ret)
		return ret;
	s->faults.enabled = true;
	return 0;
}

/* dpdk: (io_servers[] and hosts[]) */

enum { DPDK_EAL, DPDK_PORT, N_DPDK_KEYS };

/* Split at blanks into a NULL-terminated argument vector. */
static int topo_p_eal(struct topo_ctx *c, const struct topo_key *k, const yaml_node_t *v,
		      void *obj)
{
	struct vrio_topo_dpdk *d = obj;
	const char *s, *p, *end;
	unsigned n = 0;
	char **argv;
	int ret;

	ret = topo_scalar(c, k, v, "EAL arguments", &s);
	if (ret)
		return ret;
	for (p = s; *p; p++)
		if ((unsigned char)*p < 0x20 && *p != '\t')
			return topo_expected(c, k, v, "EAL arguments on one line");
	if (strpbrk(s, "\"'\\"))
		return topo_err(c, v, "'%s' is split at blanks and takes no quotes or escapes, got %s",
				k->name, s);
	for (p = s + strspn(s, " \t"); *p; p += strspn(p, " \t")) {
		p += strcspn(p, " \t");
		n++;
	}
	if (n == 0)
		return topo_expected(c, k, v, "EAL arguments");
	if (n > TOPO_EAL_ARGS)
		return topo_err(c, v, "'%s' holds at most %d arguments, got %u", k->name,
				TOPO_EAL_ARGS, n);
	argv = calloc(n + 1, sizeof(*argv));
	if (!argv)
		return topo_oom(c);
	n = 0;
	for (p = s + strspn(s, " \t"); *p; p = end + strspn(end, " \t")) {
		end = p + strcspn(p, " \t");
		argv[n] = strndup(p, (size_t)(end - p));
		if (!argv[n]) {
			while (n--)
				free(argv[n]);
			free(argv);
			return topo_oom(c);
		}
		n++;
	}
	d->eal = argv;
	d->n_eal = n;
	return 0;
}

/* A port id, or a device name ("net_memif0", "0000:01:00.0"). */
static int topo_p_port(struct topo_ctx *c, const struct topo_key *k, const yaml_node_t *v,
		       void *obj)
{
	const char *s, *end;
	uint64_t n;
	size_t len;
	int ret;

	ret = topo_scalar(c, k, v, "a port id or a device name", &s);
	if (ret)
		return ret;
	len = strlen(s);
	ret = topo_u64(s, &n, &end);
	if (ret == -ERANGE || (ret == 0 && !*end)) {
		if (ret || n > k->max)
			return topo_err(c, v, "'%s' must be between 0 and %llu, got %s", k->name,
					(unsigned long long)k->max, s);
	} else if (len > TOPO_NAME_MAX ||
		   strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.:-") !=
			   len) {
		return topo_expected(c, k, v, "a port id or a device name (like net_memif0)");
	}
	return topo_set_str(c, FIELD(obj, k, char *), s);
}

#define F(field) offsetof(struct vrio_topo_dpdk, field)
static const struct topo_key dpdk_keys[N_DPDK_KEYS] = {
	[DPDK_EAL] = { "eal", topo_p_eal, 0, 0, 0, 0 },
	[DPDK_PORT] = { "port", topo_p_port, F(port), 0, UINT16_MAX, 0 },
};
#undef F

static int topo_p_dpdk(struct topo_ctx *c, const struct topo_key *k, const yaml_node_t *v,
		       void *obj)
{
	struct topo_seen seen[N_DPDK_KEYS] = { 0 };
	int ret;

	ret = topo_want_mapping(c, k, v);
	if (ret)
		return ret;
	return topo_walk(c, v, "dpdk", dpdk_keys, N_DPDK_KEYS, FIELD(obj, k, struct vrio_topo_dpdk),
			 seen);
}

static void topo_dpdk_free(struct vrio_topo_dpdk *d)
{
	for (unsigned i = 0; i < d->n_eal; i++)
		free(d->eal[i]);
	free(d->eal);
	free(d->port);
}

/* Checked once the transport is known: see topo_ioserver(). */
static int topo_p_later(struct topo_ctx *c, const struct topo_key *k, const yaml_node_t *v,
			void *obj)
{
	return 0;
}

enum {
	IOS_NAME, IOS_TRANSPORT, IOS_LISTEN, IOS_METRICS, IOS_CONTROL, IOS_CORES, IOS_FAULTS,
	IOS_DPDK, IOS_HEARTBEAT, IOS_TLS, N_IOS_KEYS
};

#define F(field) offsetof(struct vrio_topo_ioserver, field)
static const struct topo_key ioserver_keys[N_IOS_KEYS] = {
	[IOS_NAME] = { "name", topo_p_name, F(name), 0, 0, KEY_REQUIRED },
	[IOS_TRANSPORT] = { "transport", topo_p_transport, F(transport), 0, 0, 0 },
	[IOS_LISTEN] = { "listen", topo_p_later, F(listen), 0, 0, KEY_REQUIRED },
	[IOS_METRICS] = { "metrics", topo_p_hostport, F(metrics), 0, 0, 0 },
	[IOS_CONTROL] = { "control", topo_p_socket, F(control), 0, 0, 0 },
	[IOS_CORES] = { "cores", topo_p_cores, 0, 0, 0, 0 },
	[IOS_FAULTS] = { "faults", topo_p_faults, 0, 0, 0, 0 },
	[IOS_DPDK] = { "dpdk", topo_p_dpdk, F(dpdk), 0, 0, 0 },
	[IOS_HEARTBEAT] = { "heartbeat", topo_p_heartbeat, 0, 0, 0, 0 },
	[IOS_TLS] = { "tls", topo_p_tls, 0, 0, 0, 0 },
};
#undef F

static void topo_mark(const yaml_node_t *n, unsigned *line, unsigned *col)
{
	*line = (unsigned)n->start_mark.line + 1;
	*col = (unsigned)n->start_mark.column + 1;
}

/*
 * A node's control socket: the default when `control:` is absent, and one
 * path per node in the rack (a test rack runs every daemon on one machine).
 * Nodes are read in file order, so the later of two names the clash.
 */
static int topo_control(struct topo_ctx *c, const char *kind, const char *name, char **control,
			const yaml_node_t *val, const yaml_node_t *map)
{
	const struct vrio_topology *t = c->t;
	const yaml_node_t *at = val ? val : map;
	const char *dflt = val ? "" : " (the default)";
	char path[TOPO_SUN_PATH];
	int ret;

	if (!*control) {
		/* A name is at most TOPO_NAME_MAX bytes: the default always fits. */
		snprintf(path, sizeof(path), "%s/%s.sock", VRIO_TOPO_CONTROL_DIR, name);
		ret = topo_set_str(c, control, path);
		if (ret)
			return ret;
	}
	for (size_t i = 0; i < t->n_io_servers; i++) {
		const struct vrio_topo_ioserver *o = &t->io_servers[i];

		if (&o->control != control && o->control && strcmp(o->control, *control) == 0)
			return topo_err(c, at, "%s '%s': control '%s'%s is already used by io_server '%s'",
					kind, name, *control, dflt, o->name);
	}
	for (size_t i = 0; i < t->n_hosts; i++) {
		const struct vrio_topo_host *o = &t->hosts[i];

		if (&o->control != control && o->control && strcmp(o->control, *control) == 0)
			return topo_err(c, at, "%s '%s': control '%s'%s is already used by host '%s'",
					kind, name, *control, dflt, o->name);
	}
	return 0;
}

static int topo_ioserver(struct topo_ctx *c, const yaml_node_t *map)
{
	struct topo_seen seen[N_IOS_KEYS] = { 0 };
	struct vrio_topology *t = c->t;
	struct vrio_topo_ioserver *s, *arr;
	int ret;

	arr = topo_append(t->io_servers, t->n_io_servers, sizeof(*arr));
	if (!arr)
		return topo_oom(c);
	t->io_servers = arr;
	s = &t->io_servers[t->n_io_servers++];
	topo_mark(map, &s->line, &s->col);
	s->cores_min = s->cores_max = 1;
	s->cores_busy_high = VRIO_TOPO_BUSY_HIGH;
	s->cores_busy_low = VRIO_TOPO_BUSY_LOW;
	s->heartbeat.interval_ms = VRIO_TOPO_HB_INTERVAL_MS;
	s->heartbeat.dead_after_ms = VRIO_TOPO_HB_DEAD_AFTER_MS;

	ret = topo_walk(c, map, "io_server", ioserver_keys, N_IOS_KEYS, s, seen);
	if (ret)
		return ret;
	if (!s->transport) {
		ret = topo_set_str(c, &s->transport, topo_transports[0].name);
		if (ret)
			return ret;
	}
	for (size_t i = 0; i < ARRAY_SIZE(topo_transports); i++) {
		if (strcmp(s->transport, topo_transports[i].name) == 0) {
			ret = topo_transports[i].listen(c, &ioserver_keys[IOS_LISTEN],
							 seen[IOS_LISTEN].val, s);
			if (ret)
				return ret;
			if (seen[IOS_TLS].key && strcmp(s->transport, "tcp") != 0)
				return topo_err(c, seen[IOS_TLS].key,
						"io_server '%s': 'tls' goes with transport tcp, not %s",
						s->name, s->transport);
			if (seen[IOS_DPDK].key && !topo_transports[i].dpdk)
				return topo_err(c, seen[IOS_DPDK].key,
						"io_server '%s': 'dpdk' goes with transport dpdk, not %s",
						s->name, s->transport);
		}
	}
	for (size_t i = 0; i + 1 < t->n_io_servers; i++)
		if (strcmp(t->io_servers[i].name, s->name) == 0)
			return topo_err(c, seen[IOS_NAME].val,
					"io_server '%s' is already defined at %u:%u",
					s->name, t->io_servers[i].line, t->io_servers[i].col);
	return topo_control(c, "io_server", s->name, &s->control, seen[IOS_CONTROL].val, map);
}

/* hosts[] */

enum { HOST_NAME, HOST_METRICS, HOST_CONTROL, HOST_DPDK, HOST_KEY_FILE, N_HOST_KEYS };

#define F(field) offsetof(struct vrio_topo_host, field)
static const struct topo_key host_keys[N_HOST_KEYS] = {
	[HOST_NAME] = { "name", topo_p_name, F(name), 0, 0, KEY_REQUIRED },
	[HOST_METRICS] = { "metrics", topo_p_hostport, F(metrics), 0, 0, 0 },
	[HOST_CONTROL] = { "control", topo_p_socket, F(control), 0, 0, 0 },
	[HOST_DPDK] = { "dpdk", topo_p_dpdk, F(dpdk), 0, 0, 0 },
	[HOST_KEY_FILE] = { "key_file", topo_p_path, F(key_file), 0, 0, 0 },
};
#undef F

static int topo_host(struct topo_ctx *c, const yaml_node_t *map)
{
	struct topo_seen seen[N_HOST_KEYS] = { 0 };
	struct vrio_topology *t = c->t;
	struct vrio_topo_host *h, *arr;
	int ret;

	arr = topo_append(t->hosts, t->n_hosts, sizeof(*arr));
	if (!arr)
		return topo_oom(c);
	t->hosts = arr;
	h = &t->hosts[t->n_hosts++];
	topo_mark(map, &h->line, &h->col);

	ret = topo_walk(c, map, "host", host_keys, N_HOST_KEYS, h, seen);
	if (ret)
		return ret;
	for (size_t i = 0; i + 1 < t->n_hosts; i++)
		if (strcmp(t->hosts[i].name, h->name) == 0)
			return topo_err(c, seen[HOST_NAME].val,
					"host '%s' is already defined at %u:%u",
					h->name, t->hosts[i].line, t->hosts[i].col);
	return topo_control(c, "host", h->name, &h->control, seen[HOST_CONTROL].val, map);
}

/* networks[] */

enum { NET_NAME, NET_MTU, NET_AGEING, NET_UPLINK, NET_IO_SERVERS, N_NET_KEYS };

/* A network's io_servers: a list of names, resolved once the file is read. */
static int topo_p_span(struct topo_ctx *c, const struct topo_key *k, const yaml_node_t *v,
		       void *obj)
{
	const yaml_node_item_t *it;
	const char *s;
	int ret;

	if (v->type != YAML_SEQUENCE_NODE || v->data.sequence.items.start == v->data.sequence.items.top)
		return topo_expected(c, k, v, "a list of io_server names");
	for (it = v->data.sequence.items.start; it < v->data.sequence.items.top; it++) {
		ret = topo_scalar(c, k, yaml_document_get_node(c->doc, *it), "an io_server name",
				  &s);
		if (ret)
			return ret;
	}
	return 0;
}

/* A network's id on the trunks between io-servers: FNV-1a of its name, the
 * same in every daemon that reads the file, whatever the order. */
static uint32_t topo_network_id(const char *name)
{
	uint32_t h = 2166136261u;

	for (; *name; name++)
		h = (h ^ (uint8_t)*name) * 16777619u;
	return h;
}

bool vrio_topo_network_spans(const struct vrio_topo_network *n, const char *name)
{
	for (size_t i = 0; n && i < n->n_span; i++)
		if (strcmp(n->span[i]->name, name) == 0)
			return true;
	return false;
}

/* An interface name: what the kernel takes (IFNAMSIZ, no '/' or blanks). */
static int topo_p_ifname(struct topo_ctx *c, const struct topo_key *k, const yaml_node_t *v,
			 void *obj)
{
	const char *s;
	int ret;

	ret = topo_scalar(c, k, v, "an interface name", &s);
	if (ret)
		return ret;
	if (strlen(s) > 15 || !strcmp(s, ".") || !strcmp(s, "..") || strpbrk(s, "/: \t"))
		return topo_expected(c, k, v, "an interface name of 1 to 15 characters, without "
					      "'/', ':' or blanks");
	return topo_set_str(c, FIELD(obj, k, char *), s);
}

enum { UPLINK_TAP, N_UPLINK_KEYS };

static const struct topo_key uplink_keys[N_UPLINK_KEYS] = {
	[UPLINK_TAP] = { "tap", topo_p_ifname, offsetof(struct vrio_topo_network, uplink_tap), 0,
			 0, KEY_REQUIRED },
};

static int topo_p_uplink(struct topo_ctx *c, const struct topo_key *k, const yaml_node_t *v,
			 void *obj)
{
	struct topo_seen seen[N_UPLINK_KEYS] = { 0 };
	int ret;

	ret = topo_want_mapping(c, k, v);
	if (ret)
		return ret;
	return topo_walk(c, v, "uplink", uplink_keys, N_UPLINK_KEYS, obj, seen);
}

#define F(field) offsetof(struct vrio_topo_network, field)
static const struct topo_key network_keys[N_NET_KEYS] = {
	[NET_NAME] = { "name", topo_p_name, F(name), 0, 0, KEY_REQUIRED },
	[NET_MTU] = { "mtu", topo_p_uint, F(mtu), 68, 9000, 0 },
	[NET_AGEING] = { "ageing", topo_p_uint, F(ageing_s), 1, 86400, 0 },
	[NET_UPLINK] = { "uplink", topo_p_uplink, 0, 0, 0, 0 },
	[NET_IO_SERVERS] = { "io_servers", topo_p_span, 0, 0, 0, 0 },
};
#undef F

static int topo_network(struct topo_ctx *c, const yaml_node_t *map)
{
	struct topo_seen seen[N_NET_KEYS] = { 0 };
	struct vrio_topology *t = c->t;
	struct vrio_topo_network *n, *arr;
	struct topo_net_refs *refs;
	int ret;

	arr = topo_append(t->networks, t->n_networks, sizeof(*arr));
	if (!arr)
		return topo_oom(c);
	t->networks = arr;
	refs = topo_append(c->net_refs, t->n_networks, sizeof(*refs));
	if (!refs)
		return topo_oom(c);
	c->net_refs = refs;
	refs = &c->net_refs[t->n_networks];
	n = &t->networks[t->n_networks++];
	topo_mark(map, &n->line, &n->col);
	n->mtu = 1500;
	n->ageing_s = 300;

	ret = topo_walk(c, map, "network", network_keys, N_NET_KEYS, n, seen);
	if (ret)
		return ret;
	refs->io_servers = seen[NET_IO_SERVERS].val;
	refs->uplink = seen[NET_UPLINK].val;
	n->id = topo_network_id(n->name);
	for (size_t i = 0; i + 1 < t->n_networks; i++) {
		const struct vrio_topo_network *o = &t->networks[i];

		if (strcmp(o->name, n->name) == 0)
			return topo_err(c, seen[NET_NAME].val,
					"network '%s' is already defined at %u:%u",
					n->name, o->line, o->col);
		if (n->uplink_tap && o->uplink_tap && strcmp(o->uplink_tap, n->uplink_tap) == 0)
			return topo_err(c, seen[NET_UPLINK].val,
					"network '%s': tap '%s' is already the uplink of network '%s'",
					n->name, n->uplink_tap, o->name);
		if (o->id == n->id)
			return topo_err(c, seen[NET_NAME].val,
					"network '%s' has the trunk id of network '%s' (%#x): rename one",
					n->name, o->name, n->id);
	}
	return 0;
}

/* devices[].iommu */

enum { IOMMU_POLICY, IOMMU_BATCH, IOMMU_DELAY, N_IOMMU_KEYS };

static int topo_p_policy(struct topo_ctx *c, const struct topo_key *k, const yaml_node_t *v,
			 void *obj)
{
	struct vrio_topo_device *d = obj;
	const char *s;
	int ret;

	ret = topo_scalar(c, k, v, "strict or deferred", &s);
	if (ret)
		return ret;
	if (strcmp(s, "strict") && strcmp(s, "deferred"))
		return topo_expected(c, k, v, "strict or deferred");
	d->iommu_deferred = !strcmp(s, "deferred");
	return 0;
}

#define F(field) offsetof(struct vrio_topo_device, field)
static const struct topo_key iommu_keys[N_IOMMU_KEYS] = {
	[IOMMU_POLICY] = { "policy", topo_p_policy, 0, 0, 0, 0 },
	[IOMMU_BATCH] = { "batch", topo_p_uint, F(iommu_batch), 1, 1024, 0 },
	[IOMMU_DELAY] = { "delay_ms", topo_p_uint, F(iommu_delay_ms), 1, 1000, 0 },
};
#undef F

static int topo_p_iommu(struct topo_ctx *c, const struct topo_key *k, const yaml_node_t *v,
			void *obj)
{
	struct topo_seen seen[N_IOMMU_KEYS] = { 0 };
	int ret;

	ret = topo_want_mapping(c, k, v);
	if (ret)
		return ret;
	return topo_walk(c, v, "iommu", iommu_keys, N_IOMMU_KEYS, obj, seen);
}

/* devices[].backend, and a mirror's: the same keys but null (a mirror that
 * keeps nothing mirrors nothing), which comes last so that the mirror's
 * table is the first N_MIRROR_KEYS of the device's. */

enum { BE_FILE, BE_RAM, BE_SIZE, BE_DIRECT, BE_NULL, N_BE_KEYS };
#define N_MIRROR_KEYS BE_NULL

#define F(field) offsetof(struct vrio_topo_backend, field)
static const struct topo_key backend_keys[N_BE_KEYS] = {
	[BE_FILE] = { "file", topo_p_path, F(path), 0, 0, 0 },
	[BE_RAM] = { "ram", topo_p_size, F(size), 0, 0, 0 },
	[BE_SIZE] = { "size", topo_p_size, F(size), 0, 0, 0 },
	[BE_DIRECT] = { "direct", topo_p_bool, F(direct), 0, 0, 0 },
	[BE_NULL] = { "null", topo_p_size, F(size), 0, 0, 0 },
};
#undef F

static int topo_backend(struct topo_ctx *c, const struct topo_key *k, const yaml_node_t *v,
			struct vrio_topo_backend *be, size_t nkeys)
{
	static const struct {
		unsigned key;
		enum vrio_backend_kind kind;
	} kinds[] = {
		{ BE_FILE, VRIO_BACKEND_FILE },
		{ BE_RAM, VRIO_BACKEND_RAM },
		{ BE_NULL, VRIO_BACKEND_NULL },
	};
	struct topo_seen seen[N_BE_KEYS] = { 0 };
	const yaml_node_t *kind = NULL;
	unsigned kind_key = 0;
	int ret;

	ret = topo_want_mapping(c, k, v);
	if (ret)
		return ret;
	ret = topo_walk(c, v, k->name, backend_keys, nkeys, be, seen);
	if (ret)
		return ret;
	for (size_t i = 0; i < ARRAY_SIZE(kinds); i++) {
		const yaml_node_t *key = seen[kinds[i].key].key;

		if (!key)
			continue;
		if (kind) {
			const yaml_node_t *later =
				kind->start_mark.index > key->start_mark.index ? kind : key;

			return topo_err(c, later, "%s: '%s' and '%s' exclude each other", k->name,
					backend_keys[kind_key].name, backend_keys[kinds[i].key].name);
		}
		kind = key;
		kind_key = kinds[i].key;
		be->kind = kinds[i].kind;
	}
	if (!kind)
		return topo_err(c, v, "%s: missing required key %s", k->name,
				nkeys > BE_NULL ? "'file', 'ram' or 'null'" : "'file' or 'ram'");
	if (kind_key == BE_FILE)
		return 0;
	if (seen[BE_SIZE].key)
		return topo_err(c, seen[BE_SIZE].key, "%s: 'size' goes with 'file'; '%s' takes the size",
				k->name, backend_keys[kind_key].name);
	if (seen[BE_DIRECT].key)
		return topo_err(c, seen[BE_DIRECT].key, "%s: 'direct' goes with 'file' only",
				k->name);
	return 0;
}

static int topo_p_backend(struct topo_ctx *c, const struct topo_key *k, const yaml_node_t *v,
			  void *obj)
{
	return topo_backend(c, k, v, FIELD(obj, k, struct vrio_topo_backend), N_BE_KEYS);
}

/* devices[].interpose: the stages */

/* A rate or an amount of bytes: a number with an optional K, M, G or T
 * (binary) suffix, and an optional "/s". Positive. */
static int topo_p_rate(struct topo_ctx *c, const struct topo_key *k, const yaml_node_t *v,
		       void *obj)
{
	static const struct {
		const char *suffix;
		unsigned shift;
	} units[] = {
		{ "", 0 }, { "K", 10 }, { "M", 20 }, { "G", 30 }, { "T", 40 },
		{ "KiB", 10 }, { "MiB", 20 }, { "GiB", 30 }, { "TiB", 40 },
	};
	const char *s, *end;
	char unit[8];
	size_t n_unit;
	uint64_t n;
	int ret;

	ret = topo_scalar(c, k, v, "a number of bytes", &s);
	if (ret)
		return ret;
	ret = topo_u64(s, &n, &end);
	if (ret)
		return topo_expected(c, k, v, "a number of bytes (suffix K, M, G or T, optional /s)");
	n_unit = strlen(end);
	if (n_unit >= 2 && strcmp(end + n_unit - 2, "/s") == 0)
		n_unit -= 2;
	if (n_unit >= sizeof(unit))
		return topo_expected(c, k, v, "a number of bytes (suffix K, M, G or T, optional /s)");
	memcpy(unit, end, n_unit);
	unit[n_unit] = '\0';
	for (size_t i = 0; i < ARRAY_SIZE(units); i++) {
		if (strcmp(unit, units[i].suffix) != 0)
			continue;
		if (n == 0 || n > (UINT64_MAX >> units[i].shift))
			return topo_err(c, v, "'%s' must be positive, got %s", k->name, s);
		*FIELD(obj, k, uint64_t) = n << units[i].shift;
		return 0;
	}
	return topo_expected(c, k, v, "a number of bytes (suffix K, M, G or T, optional /s)");
}

enum { THR_IOPS, THR_BPS, THR_RIOPS, THR_RBPS, THR_WIOPS, THR_WBPS, THR_BURST, N_THR_KEYS };

#define F(field) offsetof(struct vrio_topo_throttle, field)
static const struct topo_key throttle_keys[N_THR_KEYS] = {
	[THR_IOPS] = { "iops", topo_p_u64, F(iops), 1, UINT32_MAX, 0 },
	[THR_BPS] = { "bps", topo_p_rate, F(bps), 0, 0, 0 },
	[THR_RIOPS] = { "read_iops", topo_p_u64, F(read_iops), 1, UINT32_MAX, 0 },
	[THR_RBPS] = { "read_bps", topo_p_rate, F(read_bps), 0, 0, 0 },
	[THR_WIOPS] = { "write_iops", topo_p_u64, F(write_iops), 1, UINT32_MAX, 0 },
	[THR_WBPS] = { "write_bps", topo_p_rate, F(write_bps), 0, 0, 0 },
	[THR_BURST] = { "burst_ms", topo_p_uint, F(burst_ms), 1, 60000, 0 },
};
#undef F

static int topo_s_throttle(struct topo_ctx *c, const yaml_node_t *v, struct vrio_topo_stage *st)
{
	struct topo_seen seen[N_THR_KEYS] = { 0 };
	struct vrio_topo_throttle *t = &st->u.throttle;
	int ret;

	t->burst_ms = 100;
	ret = topo_walk(c, v, "throttle", throttle_keys, N_THR_KEYS, t, seen);
	if (ret)
		return ret;
	if (!t->iops && !t->bps && !t->read_iops && !t->read_bps && !t->write_iops &&
	    !t->write_bps)
		return topo_err(c, v, "throttle: no limit: give iops, bps or a read_/write_ one");
	return 0;
}

enum { CRY_CIPHER, CRY_KEY_FILE, CRY_SECTOR, CRY_IV_LARGE, N_CRY_KEYS };

static int topo_p_cipher(struct topo_ctx *c, const struct topo_key *k, const yaml_node_t *v,
			 void *obj)
{
	const char *s;
	int ret;

	ret = topo_scalar(c, k, v, "aes-xts-plain64", &s);
	if (ret)
		return ret;
	return strcmp(s, "aes-xts-plain64") ? topo_expected(c, k, v, "aes-xts-plain64") : 0;
}

static int topo_p_sector(struct topo_ctx *c, const struct topo_key *k, const yaml_node_t *v,
			 void *obj)
{
	const char *s;
	int ret;

	ret = topo_scalar(c, k, v, "512 or 4096", &s);
	if (ret)
		return ret;
	if (strcmp(s, "512") && strcmp(s, "4096"))
		return topo_expected(c, k, v, "512 or 4096");
	*FIELD(obj, k, unsigned) = (unsigned)atoi(s);
	return 0;
}

#define F(field) offsetof(struct vrio_topo_crypt, field)
static const struct topo_key crypt_keys[N_CRY_KEYS] = {
	[CRY_CIPHER] = { "cipher", topo_p_cipher, 0, 0, 0, 0 },
	[CRY_KEY_FILE] = { "key_file", topo_p_path, F(key_file), 0, 0, KEY_REQUIRED },
	[CRY_SECTOR] = { "sector_size", topo_p_sector, F(sector_size), 0, 0, 0 },
	[CRY_IV_LARGE] = { "iv_large_sectors", topo_p_bool, F(iv_large_sectors), 0, 0, 0 },
};
#undef F

static int topo_s_crypt(struct topo_ctx *c, const yaml_node_t *v, struct vrio_topo_stage *st)
{
	struct topo_seen seen[N_CRY_KEYS] = { 0 };
	struct vrio_topo_crypt *cr = &st->u.crypt;
	int ret;

	cr->sector_size = 512;
	ret = topo_walk(c, v, "crypt", crypt_keys, N_CRY_KEYS, cr, seen);
	if (ret)
		return ret;
	if (cr->iv_large_sectors && cr->sector_size == 512)
		return topo_err(c, seen[CRY_IV_LARGE].key,
				"crypt: 'iv_large_sectors' goes with sector_size 4096");
	return 0;
}

static int topo_s_mirror(struct topo_ctx *c, const yaml_node_t *v, struct vrio_topo_stage *st)
{
	static const struct topo_key k = { "mirror", topo_p_backend,
					   offsetof(struct vrio_topo_mirror, backend), 0, 0, 0 };

	return topo_backend(c, &k, v, &st->u.mirror.backend, N_MIRROR_KEYS);
}

enum { POL_RATE, POL_BURST, N_POL_KEYS };

#define F(field) offsetof(struct vrio_topo_police_dir, field)
static const struct topo_key police_dir_keys[N_POL_KEYS] = {
	[POL_RATE] = { "rate", topo_p_rate, F(rate), 0, 0, KEY_REQUIRED },
	[POL_BURST] = { "burst", topo_p_rate, F(burst), 0, 0, 0 },
};
#undef F

static int topo_p_police_dir(struct topo_ctx *c, const struct topo_key *k, const yaml_node_t *v,
			     void *obj)
{
	struct vrio_topo_police_dir *d = FIELD(obj, k, struct vrio_topo_police_dir);
	struct topo_seen seen[N_POL_KEYS] = { 0 };
	int ret;

	ret = topo_want_mapping(c, k, v);
	if (ret)
		return ret;
	ret = topo_walk(c, v, k->name, police_dir_keys, N_POL_KEYS, d, seen);
	if (ret)
		return ret;
	if (!d->burst)
		d->burst = d->rate / 10 > 2048 ? d->rate / 10 : 2048;
	return 0;
}

enum { POLD_IN, POLD_OUT, N_POLD_KEYS };

#define F(field) offsetof(struct vrio_topo_police, field)
static const struct topo_key police_keys[N_POLD_KEYS] = {
	[POLD_IN] = { "in", topo_p_police_dir, F(in), 0, 0, 0 },
	[POLD_OUT] = { "out", topo_p_police_dir, F(out), 0, 0, 0 },
};
#undef F

static int topo_s_police(struct topo_ctx *c, const yaml_node_t *v, struct vrio_topo_stage *st)
{
	struct topo_seen seen[N_POLD_KEYS] = { 0 };
	int ret;

	ret = topo_walk(c, v, "police", police_keys, N_POLD_KEYS, &st->u.police, seen);
	if (ret)
		return ret;
	if (!seen[POLD_IN].key && !seen[POLD_OUT].key)
		return topo_err(c, v, "police: give 'in', 'out' or both");
	return 0;
}

enum { CAP_FILE, CAP_SNAPLEN, CAP_MAX, N_CAP_KEYS };

#define F(field) offsetof(struct vrio_topo_capture, field)
static const struct topo_key capture_keys[N_CAP_KEYS] = {
	[CAP_FILE] = { "file", topo_p_path, F(file), 0, 0, KEY_REQUIRED },
	[CAP_SNAPLEN] = { "snaplen", topo_p_uint, F(snaplen), 64, 65535, 0 },
	[CAP_MAX] = { "max_size", topo_p_rate, F(max_size), 0, 0, 0 },
};
#undef F

static int topo_s_capture(struct topo_ctx *c, const yaml_node_t *v, struct vrio_topo_stage *st)
{
	struct topo_seen seen[N_CAP_KEYS] = { 0 };
	int ret;

	st->u.capture.snaplen = 65535;
	ret = topo_walk(c, v, "capture", capture_keys, N_CAP_KEYS, &st->u.capture, seen);
	if (ret)
		return ret;
	if (st->u.capture.max_size && st->u.capture.max_size < 65536)
		return topo_err(c, seen[CAP_MAX].val, "capture: 'max_size' must be at least 64K");
	return 0;
}

/* acl: */

static int topo_p_action(struct topo_ctx *c, const struct topo_key *k, const yaml_node_t *v,
			 void *obj)
{
	const char *s;
	int ret;

	ret = topo_scalar(c, k, v, "allow or deny", &s);
	if (ret)
		return ret;
	if (strcmp(s, "allow") && strcmp(s, "deny"))
		return topo_expected(c, k, v, "allow or deny");
	*FIELD(obj, k, bool) = !strcmp(s, "allow");
	return 0;
}

static int topo_p_acl_dir(struct topo_ctx *c, const struct topo_key *k, const yaml_node_t *v,
			  void *obj)
{
	static const char *const words[] = { [VRIO_ACL_IN] = "in", [VRIO_ACL_OUT] = "out",
					     [VRIO_ACL_BOTH] = "both" };
	const char *s;
	int ret;

	ret = topo_scalar(c, k, v, "in, out or both", &s);
	if (ret)
		return ret;
	for (unsigned i = VRIO_ACL_IN; i <= VRIO_ACL_BOTH; i++) {
		if (!strcmp(s, words[i])) {
			*FIELD(obj, k, unsigned) = i;
			return 0;
		}
	}
	return topo_expected(c, k, v, "in, out or both");
}

/* A number (decimal or 0x hex) up to max, or one of names. */
static int topo_number_or_name(const char *s, unsigned max, const char *const *names,
			       const unsigned *values, size_t n, unsigned *out)
{
	char *end;
	unsigned long u;

	for (size_t i = 0; i < n; i++) {
		if (!strcmp(s, names[i])) {
			*out = values[i];
			return 0;
		}
	}
	errno = 0;
	u = strtoul(s, &end, 0);
	if (errno || *end || !*s || s[0] == '-' || u > max)
		return -EINVAL;
	*out = (unsigned)u;
	return 0;
}

static int topo_p_ethertype(struct topo_ctx *c, const struct topo_key *k, const yaml_node_t *v,
			    void *obj)
{
	static const char *const names[] = { "ipv4", "arp", "ipv6" };
	static const unsigned values[] = { 0x0800, 0x0806, 0x86dd };
	const char *s;
	unsigned u;
	int ret;

	ret = topo_scalar(c, k, v, "an ethertype", &s);
	if (ret)
		return ret;
	if (topo_number_or_name(s, 0xffff, names, values, ARRAY_SIZE(names), &u) < 0 || u < 0x600)
		return topo_expected(c, k, v, "ipv4, arp, ipv6 or an ethertype from 0x0600 to 0xffff");
	*FIELD(obj, k, int) = (int)u;
	return 0;
}

static int topo_p_proto(struct topo_ctx *c, const struct topo_key *k, const yaml_node_t *v,
			void *obj)
{
	static const char *const names[] = { "icmp", "tcp", "udp", "icmpv6" };
	static const unsigned values[] = { 1, 6, 17, 58 };
	const char *s;
	unsigned u;
	int ret;

	ret = topo_scalar(c, k, v, "a protocol", &s);
	if (ret)
		return ret;
	if (topo_number_or_name(s, 255, names, values, ARRAY_SIZE(names), &u) < 0)
		return topo_expected(c, k, v, "tcp, udp, icmp, icmpv6 or a protocol number");
	*FIELD(obj, k, int) = (int)u;
	return 0;
}

/* "80" or "1024-65535". */
static int topo_p_ports(struct topo_ctx *c, const struct topo_key *k, const yaml_node_t *v,
			void *obj)
{
	unsigned *range = FIELD(obj, k, unsigned);
	const char *s, *end;
	uint64_t lo, hi;
	int ret;

	ret = topo_scalar(c, k, v, "a port or a range", &s);
	if (ret)
		return ret;
	if (topo_u64(s, &lo, &end) < 0)
		goto bad;
	hi = lo;
	if (*end == '-' && topo_u64(end + 1, &hi, &end) < 0)
		goto bad;
	if (*end || lo > 65535 || hi > 65535 || lo > hi)
		goto bad;
	range[0] = (unsigned)lo;
	range[1] = (unsigned)hi;
	return 0;
bad:
	return topo_expected(c, k, v, "a port (0-65535) or a range such as 1024-65535");
}

/* An address with an optional /prefix; which of src and dst is k->name. */
static int topo_p_cidr(struct topo_ctx *c, const struct topo_key *k, const yaml_node_t *v,
		       void *obj)
{
	struct vrio_topo_acl_rule *r = obj;
	bool src = !strcmp(k->name, "src");
	uint8_t *addr = src ? r->src : r->dst;
	char buf[64], *slash, *end;
	unsigned long plen;
	const char *s;
	bool v6;
	int ret;

	ret = topo_scalar(c, k, v, "an address or a prefix", &s);
	if (ret)
		return ret;
	if (strlen(s) >= sizeof(buf))
		goto bad;
	strcpy(buf, s);
	slash = strchr(buf, '/');
	if (slash)
		*slash = '\0';
	memset(addr, 0, 16);
	if (inet_pton(AF_INET, buf, addr) == 1)
		v6 = false;
	else if (inet_pton(AF_INET6, buf, addr) == 1)
		v6 = true;
	else
		goto bad;
	plen = v6 ? 128 : 32;
	if (slash) {
		errno = 0;
		plen = strtoul(slash + 1, &end, 10);
		if (errno || *end || !slash[1] || plen > (v6 ? 128u : 32u))
			goto bad;
	}
	if ((r->has_src || r->has_dst) && r->v6 != v6)
		return topo_err(c, v, "acl: src and dst of one rule must both be IPv4 or IPv6");
	r->v6 = v6;
	if (src) {
		r->has_src = true;
		r->src_len = (unsigned)plen;
	} else {
		r->has_dst = true;
		r->dst_len = (unsigned)plen;
	}
	return 0;
bad:
	return topo_expected(c, k, v, "an IPv4 or IPv6 address, with an optional /prefix");
}

enum { RULE_ACTION, RULE_DIR, RULE_ETHERTYPE, RULE_SRC, RULE_DST, RULE_PROTO, RULE_SPORT,
       RULE_DPORT, N_RULE_KEYS };

#define F(field) offsetof(struct vrio_topo_acl_rule, field)
static const struct topo_key rule_keys[N_RULE_KEYS] = {
	[RULE_ACTION] = { "action", topo_p_action, F(allow), 0, 0, KEY_REQUIRED },
	[RULE_DIR] = { "dir", topo_p_acl_dir, F(dir), 0, 0, 0 },
	[RULE_ETHERTYPE] = { "ethertype", topo_p_ethertype, F(ethertype), 0, 0, 0 },
	[RULE_SRC] = { "src", topo_p_cidr, 0, 0, 0, 0 },
	[RULE_DST] = { "dst", topo_p_cidr, 0, 0, 0, 0 },
	[RULE_PROTO] = { "proto", topo_p_proto, F(proto), 0, 0, 0 },
	[RULE_SPORT] = { "sport", topo_p_ports, F(sport_lo), 0, 0, 0 },
	[RULE_DPORT] = { "dport", topo_p_ports, F(dport_lo), 0, 0, 0 },
};
#undef F

static int topo_acl_rule(struct topo_ctx *c, const yaml_node_t *map, struct vrio_topo_acl *acl)
{
	struct topo_seen seen[N_RULE_KEYS] = { 0 };
	struct vrio_topo_acl_rule *r, *arr;
	int ret;

	if (map->type != YAML_MAPPING_NODE)
		return topo_err(c, map, "acl: a rule is a mapping with action, dir, ...");
	arr = topo_append(acl->rules, acl->n_rules, sizeof(*arr));
	if (!arr)
		return topo_oom(c);
	acl->rules = arr;
	r = &acl->rules[acl->n_rules++];
	topo_mark(map, &r->line, &r->col);
	r->dir = VRIO_ACL_BOTH;
	r->ethertype = -1;
	r->proto = -1;
	r->sport_hi = r->dport_hi = 65535;
	ret = topo_walk(c, map, "acl rule", rule_keys, N_RULE_KEYS, r, seen);
	if (ret)
		return ret;
	if ((seen[RULE_SPORT].key || seen[RULE_DPORT].key) && r->proto != 6 && r->proto != 17)
		return topo_err(c, seen[RULE_SPORT].key ? seen[RULE_SPORT].key : seen[RULE_DPORT].key,
				"acl: ports go with proto tcp or udp");
	if ((r->has_src || r->has_dst || r->proto >= 0) && r->ethertype >= 0 &&
	    r->ethertype != (r->v6 ? 0x86dd : 0x0800) &&
	    !(r->ethertype == 0x86dd && !r->has_src && !r->has_dst))
		return topo_err(c, seen[RULE_ETHERTYPE].val,
				"acl: addresses and protocols match IPv4 or IPv6 frames only");
	return 0;
}

static int topo_p_acl_rules(struct topo_ctx *c, const struct topo_key *k, const yaml_node_t *v,
			    void *obj)
{
	int ret;

	if (v->type != YAML_SEQUENCE_NODE)
		return topo_expected(c, k, v, "a list of rules");
	for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top;
	     it++) {
		ret = topo_acl_rule(c, yaml_document_get_node(c->doc, *it), obj);
		if (ret)
			return ret;
	}
	return 0;
}

enum { ACL_DEFAULT, ACL_RULES, N_ACL_KEYS };

#define F(field) offsetof(struct vrio_topo_acl, field)
static const struct topo_key acl_keys[N_ACL_KEYS] = {
	[ACL_DEFAULT] = { "default", topo_p_action, F(default_allow), 0, 0, 0 },
	[ACL_RULES] = { "rules", topo_p_acl_rules, 0, 0, 0, 0 },
};
#undef F

static int topo_s_acl(struct topo_ctx *c, const yaml_node_t *v, struct vrio_topo_stage *st)
{
	struct topo_seen seen[N_ACL_KEYS] = { 0 };

	st->u.acl.default_allow = true;
	return topo_walk(c, v, "acl", acl_keys, N_ACL_KEYS, &st->u.acl, seen);
}

static const struct {
	const char *name;
	enum vrio_dev_type type;
	int (*parse)(struct topo_ctx *c, const yaml_node_t *v, struct vrio_topo_stage *st);
} topo_stages[] = {
	[VRIO_STAGE_THROTTLE] = { "throttle", VRIO_DEV_BLK, topo_s_throttle },
	[VRIO_STAGE_CRYPT] = { "crypt", VRIO_DEV_BLK, topo_s_crypt },
	[VRIO_STAGE_MIRROR] = { "mirror", VRIO_DEV_BLK, topo_s_mirror },
	[VRIO_STAGE_ACL] = { "acl", VRIO_DEV_NET, topo_s_acl },
	[VRIO_STAGE_POLICE] = { "police", VRIO_DEV_NET, topo_s_police },
	[VRIO_STAGE_CAPTURE] = { "capture", VRIO_DEV_NET, topo_s_capture },
};

const char *vrio_stage_kind_name(enum vrio_stage_kind k)
{
	return k >= VRIO_STAGE_THROTTLE && k <= VRIO_STAGE_KIND_MAX ? topo_stages[k].name : "unknown";
}

static int topo_stage(struct topo_ctx *c, const yaml_node_t *item, struct vrio_topo_device *d)
{
	const yaml_node_t *name, *val;
	struct vrio_topo_stage *st, *arr;
	const yaml_node_pair_t *pair;
	char known[128];
	size_t len = 0;

	if (item->type != YAML_MAPPING_NODE ||
	    item->data.mapping.pairs.top - item->data.mapping.pairs.start != 1)
		return topo_err(c, item, "interpose: each stage is one 'name: {settings}'");
	pair = item->data.mapping.pairs.start;
	name = yaml_document_get_node(c->doc, pair->key);
	val = yaml_document_get_node(c->doc, pair->value);
	arr = topo_append(d->stages, d->n_stages, sizeof(*arr));
	if (!arr)
		return topo_oom(c);
	d->stages = arr;
	st = &d->stages[d->n_stages++];
	topo_mark(item, &st->line, &st->col);
	for (unsigned k = VRIO_STAGE_THROTTLE; k <= VRIO_STAGE_KIND_MAX; k++) {
		if (name->type != YAML_SCALAR_NODE || strcmp(topo_str(name), topo_stages[k].name))
			continue;
		st->kind = (enum vrio_stage_kind)k;
		if (val->type != YAML_MAPPING_NODE)
			return topo_err(c, val, "%s: expected a mapping of settings", topo_stages[k].name);
		return topo_stages[k].parse(c, val, st);
	}
	for (unsigned k = VRIO_STAGE_THROTTLE; k <= VRIO_STAGE_KIND_MAX; k++)
		len += (size_t)snprintf(known + len, sizeof(known) - len, "%s%s", len ? ", " : "",
					topo_stages[k].name);
	return topo_err(c, name, "interpose: unknown stage '%s' (known: %s)",
			name->type == YAML_SCALAR_NODE ? topo_str(name) : "?", known);
}

static int topo_p_interpose(struct topo_ctx *c, const struct topo_key *k, const yaml_node_t *v,
			    void *obj)
{
	struct vrio_topo_device *d = obj;
	int ret;

	if (v->type != YAML_SEQUENCE_NODE)
		return topo_expected(c, k, v, "a list of stages");
	for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top;
	     it++) {
		const yaml_node_t *item = yaml_document_get_node(c->doc, *it);

		ret = topo_stage(c, item, d);
		if (ret)
			return ret;
		for (unsigned i = 0; i + 1 < d->n_stages; i++)
			if (d->stages[i].kind == d->stages[d->n_stages - 1].kind)
				return topo_err(c, item, "interpose: '%s' is already in the chain at %u:%u",
						vrio_stage_kind_name(d->stages[i].kind),
						d->stages[i].line, d->stages[i].col);
	}
	return 0;
}

/* After the device's type is known. */
static int topo_stages_check(struct topo_ctx *c, const struct vrio_topo_device *d)
{
	const struct vrio_topo_stage *mirror = NULL;

	for (unsigned i = 0; i < d->n_stages; i++) {
		const struct vrio_topo_stage *st = &d->stages[i];

		if (topo_stages[st->kind].type != d->type)
			return topo_err_at(c, st->line, st->col,
					   "device '%s': stage '%s' is only valid for %s devices",
					   d->name, vrio_stage_kind_name(st->kind),
					   vrio_dev_type_name(topo_stages[st->kind].type));
		if (st->kind == VRIO_STAGE_MIRROR)
			mirror = st;
		/* Stages run in order: a mirror before crypt gets plaintext. */
		if (st->kind == VRIO_STAGE_CRYPT && mirror)
			return topo_err_at(c, st->line, st->col,
					   "device '%s': crypt after the mirror at %u:%u would leave "
					   "the mirror's copy in plaintext; list crypt first",
					   d->name, mirror->line, mirror->col);
	}
	return 0;
}

static bool str_eq(const char *a, const char *b)
{
	return a == b || (a && b && !strcmp(a, b));
}

static bool rule_eq(const struct vrio_topo_acl_rule *a, const struct vrio_topo_acl_rule *b)
{
	return a->allow == b->allow && a->dir == b->dir && a->ethertype == b->ethertype &&
	       a->has_src == b->has_src && a->has_dst == b->has_dst && a->v6 == b->v6 &&
	       !memcmp(a->src, b->src, 16) && !memcmp(a->dst, b->dst, 16) &&
	       a->src_len == b->src_len && a->dst_len == b->dst_len && a->proto == b->proto &&
	       a->sport_lo == b->sport_lo && a->sport_hi == b->sport_hi &&
	       a->dport_lo == b->dport_lo && a->dport_hi == b->dport_hi;
}

bool vrio_topo_stage_equal(const struct vrio_topo_stage *a, const struct vrio_topo_stage *b)
{
	if (a->kind != b->kind)
		return false;
	switch (a->kind) {
	case VRIO_STAGE_THROTTLE:
		return !memcmp(&a->u.throttle, &b->u.throttle, sizeof(a->u.throttle));
	case VRIO_STAGE_CRYPT:
		return str_eq(a->u.crypt.key_file, b->u.crypt.key_file) &&
		       a->u.crypt.sector_size == b->u.crypt.sector_size &&
		       a->u.crypt.iv_large_sectors == b->u.crypt.iv_large_sectors;
	case VRIO_STAGE_MIRROR:
		return a->u.mirror.backend.kind == b->u.mirror.backend.kind &&
		       str_eq(a->u.mirror.backend.path, b->u.mirror.backend.path) &&
		       a->u.mirror.backend.size == b->u.mirror.backend.size &&
		       a->u.mirror.backend.direct == b->u.mirror.backend.direct;
	case VRIO_STAGE_ACL:
		if (a->u.acl.default_allow != b->u.acl.default_allow ||
		    a->u.acl.n_rules != b->u.acl.n_rules)
			return false;
		for (unsigned i = 0; i < a->u.acl.n_rules; i++)
			if (!rule_eq(&a->u.acl.rules[i], &b->u.acl.rules[i]))
				return false;
		return true;
	case VRIO_STAGE_POLICE:
		return !memcmp(&a->u.police, &b->u.police, sizeof(a->u.police));
	case VRIO_STAGE_CAPTURE:
		return str_eq(a->u.capture.file, b->u.capture.file) &&
		       a->u.capture.snaplen == b->u.capture.snaplen &&
		       a->u.capture.max_size == b->u.capture.max_size;
	}
	return false;
}

static void topo_stages_free(struct vrio_topo_device *d)
{
	for (unsigned i = 0; i < d->n_stages; i++) {
		struct vrio_topo_stage *st = &d->stages[i];

		switch (st->kind) {
		case VRIO_STAGE_CRYPT:
			free(st->u.crypt.key_file);
			break;
		case VRIO_STAGE_MIRROR:
			free(st->u.mirror.backend.path);
			break;
		case VRIO_STAGE_ACL:
			free(st->u.acl.rules);
			break;
		case VRIO_STAGE_CAPTURE:
			free(st->u.capture.file);
			break;
		default:
			break;
		}
	}
	free(d->stages);
}

/* devices[] */

enum {
	DEV_NAME, DEV_TYPE, DEV_HOST, DEV_IO_SERVER, DEV_SOCKET, DEV_QUEUES, DEV_QUEUE_SIZE,
	DEV_READ_ONLY, DEV_BACKEND, DEV_MAC, DEV_NETWORK, DEV_IOMMU, DEV_INTERPOSE, DEV_STANDBY,
	DEV_COALESCE, DEV_OFFLOADS, N_DEV_KEYS
};

#define F(field) offsetof(struct vrio_topo_device, field)
static const struct topo_key device_keys[N_DEV_KEYS] = {
	[DEV_NAME] = { "name", topo_p_name, F(name), 0, 0, KEY_REQUIRED },
	[DEV_TYPE] = { "type", topo_p_type, F(type), 0, 0, KEY_REQUIRED },
	[DEV_HOST] = { "host", topo_p_ref, 0, 0, 0, KEY_REQUIRED },
	[DEV_IO_SERVER] = { "io_server", topo_p_ref, 0, 0, 0, KEY_REQUIRED },
	[DEV_SOCKET] = { "socket", topo_p_socket, F(socket), 0, 0, KEY_REQUIRED },
	[DEV_QUEUES] = { "queues", topo_p_uint, F(queues), 1, 64, 0 },
	[DEV_QUEUE_SIZE] = { "queue_size", topo_p_pow2, F(queue_size), 2, 1024, 0 },
	[DEV_READ_ONLY] = { "read_only", topo_p_bool, F(read_only), 0, 0, KEY_BLK },
	[DEV_BACKEND] = { "backend", topo_p_backend, F(backend), 0, 0, KEY_BLK | KEY_REQUIRED },
	[DEV_MAC] = { "mac", topo_p_mac, F(mac), 0, 0, KEY_NET | KEY_REQUIRED },
	[DEV_NETWORK] = { "network", topo_p_ref, 0, 0, 0, KEY_NET | KEY_REQUIRED },
	[DEV_IOMMU] = { "iommu", topo_p_iommu, 0, 0, 0, KEY_BLK },
	[DEV_INTERPOSE] = { "interpose", topo_p_interpose, 0, 0, 0, 0 },
	[DEV_STANDBY] = { "standby", topo_p_ref, 0, 0, 0, KEY_BLK },
	[DEV_COALESCE] = { "coalesce_us", topo_p_uint, F(coalesce_us), 0, VRIO_COALESCE_US_MAX,
			   KEY_BLK },
	[DEV_OFFLOADS] = { "offloads", topo_p_bool, F(offloads), 0, 0, KEY_NET },
};
#undef F

static int topo_device(struct topo_ctx *c, const yaml_node_t *map)
{
	struct topo_seen seen[N_DEV_KEYS] = { 0 };
	struct vrio_topology *t = c->t;
	struct vrio_topo_device *d, *arr;
	struct topo_dev_refs *refs;
	unsigned mine;
	int ret;

	arr = topo_append(t->devices, t->n_devices, sizeof(*arr));
	if (!arr)
		return topo_oom(c);
	t->devices = arr;
	refs = topo_append(c->refs, t->n_devices, sizeof(*refs));
	if (!refs)
		return topo_oom(c);
	c->refs = refs;
	refs = &c->refs[t->n_devices];
	d = &t->devices[t->n_devices++];
	topo_mark(map, &d->line, &d->col);
	d->queues = 1;
	d->queue_size = 256;
	d->iommu_batch = 32;
	d->iommu_delay_ms = 10;
	d->coalesce_us = VRIO_COALESCE_US_DEFAULT;
	d->offloads = true;

	ret = topo_walk(c, map, "device", device_keys, N_DEV_KEYS, d, seen);
	if (ret)
		return ret;

	ret = topo_stages_check(c, d);
	if (ret)
		return ret;
	if (d->type == VRIO_DEV_NET && d->queues > VRIO_NET_MAX_QUEUE_PAIRS)
		return topo_err(c, seen[DEV_QUEUES].val,
				"device '%s': a net device has 1 to %u queue pairs, got %u",
				d->name, VRIO_NET_MAX_QUEUE_PAIRS, d->queues);
	mine = d->type == VRIO_DEV_BLK ? KEY_BLK : KEY_NET;
	for (size_t i = 0; i < N_DEV_KEYS; i++) {
		unsigned only = device_keys[i].flags & (KEY_BLK | KEY_NET);

		if (!only)
			continue;
		if (only != mine && seen[i].key)
			return topo_err(c, seen[i].key,
					"device '%s': '%s' is only valid for %s devices",
					d->name, device_keys[i].name,
					only == KEY_BLK ? "blk" : "net");
		if (only == mine && (device_keys[i].flags & KEY_REQUIRED) && !seen[i].key)
			return topo_err(c, map,
					"device '%s': missing required key '%s' for a %s device",
					d->name, device_keys[i].name, vrio_dev_type_name(d->type));
	}

	for (size_t i = 0; i + 1 < t->n_devices; i++) {
		const struct vrio_topo_device *o = &t->devices[i];

		if (strcmp(o->name, d->name) == 0)
			return topo_err(c, seen[DEV_NAME].val,
					"device '%s' is already defined at %u:%u",
					d->name, o->line, o->col);
		if (strcmp(o->socket, d->socket) == 0)
			return topo_err(c, seen[DEV_SOCKET].val,
					"device '%s': socket '%s' is already used by device '%s'",
					d->name, d->socket, o->name);
	}
	refs->host = seen[DEV_HOST].val;
	refs->io_server = seen[DEV_IO_SERVER].val;
	refs->network = seen[DEV_NETWORK].val;
	refs->mac = seen[DEV_MAC].val;
	refs->socket = seen[DEV_SOCKET].val;
	refs->standby = seen[DEV_STANDBY].val;
	return 0;
}

static struct vrio_topo_network *topo_network_find(const struct vrio_topology *t, const char *name)
{
	for (size_t i = 0; i < t->n_networks; i++)
		if (strcmp(t->networks[i].name, name) == 0)
			return &t->networks[i];
	return NULL;
}

/* A device's socket is bound where its host's control socket may be. */
static int topo_socket_not_control(struct topo_ctx *c, const struct vrio_topo_device *d,
				   const yaml_node_t *at)
{
	const struct vrio_topology *t = c->t;

	for (size_t i = 0; i < t->n_io_servers; i++)
		if (strcmp(t->io_servers[i].control, d->socket) == 0)
			return topo_err(c, at,
					"device '%s': socket '%s' is the control socket of io_server '%s'",
					d->name, d->socket, t->io_servers[i].name);
	for (size_t i = 0; i < t->n_hosts; i++)
		if (strcmp(t->hosts[i].control, d->socket) == 0)
			return topo_err(c, at,
					"device '%s': socket '%s' is the control socket of host '%s'",
					d->name, d->socket, t->hosts[i].name);
	return 0;
}

/* A network's explicit span (io_servers:), resolved. */
static int topo_span_resolve(struct topo_ctx *c, struct vrio_topo_network *n,
			     const yaml_node_t *list)
{
	const yaml_node_item_t *it;
	struct vrio_topo_ioserver *s;
	const yaml_node_t *v;

	n->span = calloc(c->t->n_io_servers ? c->t->n_io_servers : 1, sizeof(*n->span));
	if (!n->span)
		return topo_oom(c);
	if (!list)
		return 0;
	n->span_explicit = true;
	for (it = list->data.sequence.items.start; it < list->data.sequence.items.top; it++) {
		v = yaml_document_get_node(c->doc, *it);
		s = vrio_topology_ioserver(c->t, topo_str(v));
		if (!s)
			return topo_err(c, v, "network '%s': io_server '%s' is not defined under io_servers",
					n->name, topo_str(v));
		if (vrio_topo_network_spans(n, s->name))
			return topo_err(c, v, "network '%s': io_server '%s' is listed twice", n->name,
					s->name);
		n->span[n->n_span++] = s;
	}
	return 0;
}

/* Device d's io-server switches its network: the span grows by it, or an
 * explicit span must hold it already. */
static int topo_span_add(struct topo_ctx *c, struct vrio_topo_network *n,
			 const struct vrio_topo_device *d, const yaml_node_t *at)
{
	if (vrio_topo_network_spans(n, d->io_server->name))
		return 0;
	if (n->span_explicit)
		return topo_err(c, at,
				"device '%s': io_server '%s' is not one of the io_servers of network '%s'",
				d->name, d->io_server->name, n->name);
	n->span[n->n_span++] = d->io_server;
	return 0;
}

/* Once every device is in its network's span: what trunks need. */
static int topo_spans_check(struct topo_ctx *c)
{
	const struct vrio_topology *t = c->t;

	for (size_t i = 0; i < t->n_networks; i++) {
		const struct vrio_topo_network *n = &t->networks[i];

		if (n->n_span < 2)
			continue;
		/* Each io-server would open the same TAP, and an outside
		 * bridge between them would make a loop. */
		if (n->uplink_tap)
			return topo_err(c, c->net_refs[i].uplink,
					"network '%s': an uplink needs the network on one io_server, "
					"but it spans %s and %s", n->name, n->span[0]->name,
					n->span[1]->name);
		/* A trunk to a tls: {psk: true} listener proves its PSK,
		 * which comes from the rack's trunk key (transport/tls.h). */
		for (size_t j = 0; j < n->n_span; j++)
			if (n->span[j]->tls.psk && !t->trunk_key_file)
				return topo_err_at(c, n->line, n->col, "network '%s' spans io_server '%s', "
						   "whose listener has tls: {psk: true}: its trunks' PSK "
						   "comes from trunk_key_file, and there is none",
						   n->name, n->span[j]->name);
		for (size_t j = 1; j < n->n_span; j++)
			if (strcmp(n->span[j]->transport, n->span[0]->transport))
				return topo_err_at(c, n->line, n->col, "network '%s' spans io_servers '%s' (%s) and '%s' (%s): "
					   "trunks need one transport", n->name,
					   n->span[0]->name, n->span[0]->transport,
					   n->span[j]->name, n->span[j]->transport);
	}
	return 0;
}

/*
 * standby: another io-server that reaches the same storage: both open the
 * backend's path, so it must be a file or block device (a ram or null
 * backend would be a different disk on each).
 */
static int topo_standby(struct topo_ctx *c, struct vrio_topo_device *d, const yaml_node_t *at)
{
	if (!at)
		return 0;
	d->standby = vrio_topology_ioserver(c->t, topo_str(at));
	if (!d->standby)
		return topo_err(c, at, "device '%s': standby '%s' is not defined under io_servers",
				d->name, topo_str(at));
	if (d->standby == d->io_server)
		return topo_err(c, at, "device '%s': standby '%s' is its io_server already; name "
				"another io_server", d->name, d->standby->name);
	if (d->backend.kind != VRIO_BACKEND_FILE)
		return topo_err(c, at, "device '%s': a standby needs storage both io-servers "
				"reach: a file backend (a file or block device), not %s",
				d->name, d->backend.kind == VRIO_BACKEND_RAM ? "ram" : "null");
	return 0;
}

static int topo_resolve(struct topo_ctx *c)
{
	struct vrio_topology *t = c->t;
	int ret;

	for (size_t i = 0; i < t->n_networks; i++) {
		ret = topo_span_resolve(c, &t->networks[i], c->net_refs[i].io_servers);
		if (ret)
			return ret;
	}

	for (size_t i = 0; i < t->n_devices; i++) {
		struct vrio_topo_device *d = &t->devices[i];
		const struct topo_dev_refs *r = &c->refs[i];

		d->host = vrio_topology_host(t, topo_str(r->host));
		if (!d->host)
			return topo_err(c, r->host,
					"device '%s': host '%s' is not defined under hosts",
					d->name, topo_str(r->host));
		d->io_server = vrio_topology_ioserver(t, topo_str(r->io_server));
		if (!d->io_server)
			return topo_err(c, r->io_server,
					"device '%s': io_server '%s' is not defined under io_servers",
					d->name, topo_str(r->io_server));
		ret = topo_socket_not_control(c, d, r->socket);
		if (ret)
			return ret;
		ret = topo_standby(c, d, r->standby);
		if (ret)
			return ret;
		/* A PSK comes from the host's key (transport/tls.h). */
		for (int k = 0; k < 2; k++) {
			const struct vrio_topo_ioserver *s = k ? d->standby : d->io_server;

			if (s && s->tls.psk && !d->host->key_file)
				return topo_err(c, r->host, "device '%s': io_server '%s' has tls: {psk: true}, "
						"but host '%s' has no key_file to derive its PSK from",
						d->name, s->name, d->host->name);
		}
		if (d->type != VRIO_DEV_NET)
			continue;
		d->network = topo_network_find(t, topo_str(r->network));
		if (!d->network)
			return topo_err(c, r->network,
					"device '%s': network '%s' is not defined under networks",
					d->name, topo_str(r->network));
		ret = topo_span_add(c, d->network, d, r->io_server);
		if (ret)
			return ret;
		/* The io-server's switch learns ports by MAC within a network. */
		for (size_t j = 0; j < i; j++) {
			const struct vrio_topo_device *o = &t->devices[j];

			if (o->type == VRIO_DEV_NET && o->network == d->network &&
			    strcmp(o->mac, d->mac) == 0)
				return topo_err(c, r->mac,
						"device '%s': mac %s is already used by device '%s' on network '%s'",
						d->name, d->mac, o->name, d->network->name);
		}
	}
	return topo_spans_check(c);
}

/* The root mapping. */

typedef int (*topo_entry_fn)(struct topo_ctx *c, const yaml_node_t *map);

static int topo_seq(struct topo_ctx *c, const struct topo_key *k, const yaml_node_t *v,
		    topo_entry_fn entry)
{
	const yaml_node_item_t *it;
	char buf[80];
	int ret;

	if (v->type != YAML_SEQUENCE_NODE)
		return topo_expected(c, k, v, "a sequence");
	for (it = v->data.sequence.items.start; it < v->data.sequence.items.top; it++) {
		const yaml_node_t *n = yaml_document_get_node(c->doc, *it);

		if (n->type != YAML_MAPPING_NODE)
			return topo_err(c, n, "expected a mapping for each entry of '%s', got %s",
					k->name, topo_desc(n, buf, sizeof(buf)));
		ret = entry(c, n);
		if (ret)
			return ret;
	}
	return 0;
}

static int topo_p_version(struct topo_ctx *c, const struct topo_key *k, const yaml_node_t *v,
			  void *obj)
{
	struct vrio_topology *t = obj;
	int ret;

	ret = topo_p_uint(c, k, v, obj);
	if (ret)
		return ret;
	if (t->version != 1)
		return topo_err(c, v, "unsupported topology version %u (expected 1)", t->version);
	return 0;
}

static int topo_p_io_servers(struct topo_ctx *c, const struct topo_key *k, const yaml_node_t *v,
			     void *obj)
{
	int ret = topo_seq(c, k, v, topo_ioserver);

	if (ret == 0 && c->t->n_io_servers == 0)
		return topo_err(c, v, "'%s' must list at least one io_server", k->name);
	return ret;
}

static int topo_p_hosts(struct topo_ctx *c, const struct topo_key *k, const yaml_node_t *v,
			void *obj)
{
	return topo_seq(c, k, v, topo_host);
}

static int topo_p_devices(struct topo_ctx *c, const struct topo_key *k, const yaml_node_t *v,
			  void *obj)
{
	return topo_seq(c, k, v, topo_device);
}

static int topo_p_networks(struct topo_ctx *c, const struct topo_key *k, const yaml_node_t *v,
			   void *obj)
{
	return topo_seq(c, k, v, topo_network);
}

enum {
	ROOT_VERSION, ROOT_IO_SERVERS, ROOT_HOSTS, ROOT_DEVICES, ROOT_NETWORKS, ROOT_TRUNK_KEY,
	N_ROOT_KEYS
};

static const struct topo_key root_keys[N_ROOT_KEYS] = {
	[ROOT_VERSION] = { "version", topo_p_version, offsetof(struct vrio_topology, version),
			   0, UINT_MAX, KEY_REQUIRED },
	[ROOT_IO_SERVERS] = { "io_servers", topo_p_io_servers, 0, 0, 0, KEY_REQUIRED },
	[ROOT_HOSTS] = { "hosts", topo_p_hosts, 0, 0, 0, KEY_REQUIRED },
	[ROOT_DEVICES] = { "devices", topo_p_devices, 0, 0, 0, 0 },
	[ROOT_NETWORKS] = { "networks", topo_p_networks, 0, 0, 0, 0 },
	[ROOT_TRUNK_KEY] = { "trunk_key_file", topo_p_path,
			     offsetof(struct vrio_topology, trunk_key_file), 0, 0, 0 },
};

static int topo_syntax_err(struct topo_ctx *c, const yaml_parser_t *p, const char *text, size_t len)
{
	unsigned line = 1, col = 1;

	if (p->error == YAML_MEMORY_ERROR)
		return topo_oom(c);
	if (p->error == YAML_READER_ERROR) {
		/* The reader reports a byte offset rather than a mark. */
		for (size_t i = 0; i < p->problem_offset && i < len; i++) {
			if (text[i] == '\n') {
				line++;
				col = 1;
			} else {
				col++;
			}
		}
		return topo_err_at(c, line, col, "%s",
				   p->problem ? p->problem : "cannot read the input");
	}
	line = (unsigned)p->problem_mark.line + 1;
	col = (unsigned)p->problem_mark.column + 1;
	if (p->context)
		return topo_err_at(c, line, col, "%s (%s that starts at %u:%u)",
				   p->problem ? p->problem : "syntax error", p->context,
				   (unsigned)p->context_mark.line + 1,
				   (unsigned)p->context_mark.column + 1);
	return topo_err_at(c, line, col, "%s", p->problem ? p->problem : "syntax error");
}

/* Lowercase hex, as sha256sum prints it. */
static int topo_sha256(struct topo_ctx *c, const char *text, size_t len, char out[65])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned mdlen = 0;

	/* Fails only when OpenSSL cannot allocate its context. */
	if (!EVP_Digest(text, len, md, &mdlen, EVP_sha256(), NULL) || mdlen != 32)
		return topo_oom(c);
	for (unsigned i = 0; i < mdlen; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
	return 0;
}

static int topo_parse(const char *name, const char *dir, const char *text, size_t len,
		      struct vrio_topology **out, char *err, size_t errlen)
{
	struct topo_seen seen[N_ROOT_KEYS] = { 0 };
	struct topo_ctx c = { .name = name, .dir = dir, .err = err, .errlen = errlen };
	const yaml_node_t *root, *second;
	yaml_document_t doc, next;
	yaml_parser_t parser;
	char buf[80];
	int ret;

	if (err && errlen)
		err[0] = '\0';
	if (!yaml_parser_initialize(&parser))
		return topo_oom(&c);
	yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
	if (!yaml_parser_load(&parser, &doc)) {
		ret = topo_syntax_err(&c, &parser, text, len);
		goto out_parser;
	}
	c.doc = &doc;

	root = yaml_document_get_root_node(&doc);
	if (!root) {
		ret = topo_err_at(&c, 1, 1, "empty topology (expected %s)", TOPO_ROOT_WANTED);
		goto out_doc;
	}
	if (root->type != YAML_MAPPING_NODE) {
		ret = topo_err_at(&c, 1, 1, "expected %s at the top, got %s", TOPO_ROOT_WANTED,
				  topo_desc(root, buf, sizeof(buf)));
		goto out_doc;
	}
	if (!yaml_parser_load(&parser, &next)) {
		ret = topo_syntax_err(&c, &parser, text, len);
		goto out_doc;
	}
	second = yaml_document_get_root_node(&next);
	ret = second ? topo_err(&c, second, "expected a single YAML document") : 0;
	yaml_document_delete(&next);
	if (ret)
		goto out_doc;

	c.t = calloc(1, sizeof(*c.t));
	if (!c.t) {
		ret = topo_oom(&c);
		goto out_doc;
	}
	c.t->path = strdup(name);
	if (!c.t->path) {
		ret = topo_oom(&c);
		goto out_topo;
	}
	ret = topo_sha256(&c, text, len, c.t->sha256);
	if (ret)
		goto out_topo;
	ret = topo_walk(&c, root, "topology", root_keys, N_ROOT_KEYS, c.t, seen);
	if (ret)
		goto out_topo;
	if (seen[ROOT_TRUNK_KEY].val)
		topo_mark(seen[ROOT_TRUNK_KEY].val, &c.t->trunk_key_line, &c.t->trunk_key_col);
	ret = topo_resolve(&c);
	if (ret)
		goto out_topo;
	*out = c.t;
	c.t = NULL;
out_topo:
	vrio_topology_free(c.t);
out_doc:
	free(c.refs);
	free(c.net_refs);
	yaml_document_delete(&doc);
out_parser:
	yaml_parser_delete(&parser);
	return ret;
}

int vrio_topology_parse(const char *name, const char *text, size_t len,
			struct vrio_topology **out, char *err, size_t errlen)
{
	char *copy, *dir = NULL;
	int ret;

	if (strchr(name, '/')) {
		copy = strdup(name);
		if (!copy)
			return -ENOMEM;
		dir = strdup(dirname(copy));
		free(copy);
		if (!dir)
			return -ENOMEM;
	}
	ret = topo_parse(name, dir, text, len, out, err, errlen);
	free(dir);
	return ret;
}

static int topo_read(const char *path, char **out, size_t *outlen)
{
	size_t len = 0, cap = 0;
	char *buf = NULL, *nbuf;
	struct stat st;
	int fd, ret;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		ret = -errno;
		goto err;
	}
	if (S_ISDIR(st.st_mode)) {
		ret = -EISDIR;
		goto err;
	}
	for (;;) {
		ssize_t n;

		if (cap - len < 4096) {
			if (cap >= TOPO_FILE_MAX) {
				ret = -EFBIG;
				goto err;
			}
			cap = cap ? cap * 2 : 16384;
			nbuf = realloc(buf, cap);
			if (!nbuf) {
				ret = -ENOMEM;
				goto err;
			}
			buf = nbuf;
		}
		n = read(fd, buf + len, cap - len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			ret = -errno;
			goto err;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	*out = buf;
	*outlen = len;
	return 0;
err:
	free(buf);
	close(fd);
	return ret;
}

int vrio_topology_load(const char *path, struct vrio_topology **out, char *err, size_t errlen)
{
	char *text = NULL, *copy = NULL, *dir = NULL;
	size_t len = 0;
	int ret;

	ret = topo_read(path, &text, &len);
	if (ret)
		goto io_err;
	copy = strdup(path);
	if (!copy) {
		ret = -ENOMEM;
		goto io_err;
	}
	/* Absolute, so that backend paths do not depend on the daemon's cwd. */
	dir = realpath(dirname(copy), NULL);
	if (!dir) {
		ret = -errno;
		goto io_err;
	}
	ret = topo_parse(path, dir, text, len, out, err, errlen);
	goto out;
io_err:
	if (err && errlen)
		snprintf(err, errlen, "%s: %s", path, strerror(-ret));
out:
	free(dir);
	free(copy);
	free(text);
	return ret;
}

void vrio_topology_free(struct vrio_topology *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->n_io_servers; i++) {
		free(t->io_servers[i].name);
		free(t->io_servers[i].transport);
		free(t->io_servers[i].tls.cert);
		free(t->io_servers[i].tls.key);
		free(t->io_servers[i].tls.ca);
		free(t->io_servers[i].listen);
		free(t->io_servers[i].metrics);
		free(t->io_servers[i].control);
		topo_dpdk_free(&t->io_servers[i].dpdk);
	}
	free(t->trunk_key_file);
	for (size_t i = 0; i < t->n_hosts; i++) {
		free(t->hosts[i].name);
		free(t->hosts[i].metrics);
		free(t->hosts[i].key_file);
		free(t->hosts[i].control);
		topo_dpdk_free(&t->hosts[i].dpdk);
	}
	for (size_t i = 0; i < t->n_devices; i++) {
		free(t->devices[i].name);
		free(t->devices[i].socket);
		free(t->devices[i].backend.path);
		free(t->devices[i].mac);
		topo_stages_free(&t->devices[i]);
	}
	for (size_t i = 0; i < t->n_networks; i++) {
		free(t->networks[i].name);
		free(t->networks[i].uplink_tap);
		free(t->networks[i].span);
	}
	free(t->io_servers);
	free(t->hosts);
	free(t->devices);
	free(t->networks);
	free(t->path);
	free(t);
}

struct vrio_topo_ioserver *vrio_topology_ioserver(const struct vrio_topology *t, const char *name)
{
	for (size_t i = 0; t && name && i < t->n_io_servers; i++)
		if (strcmp(t->io_servers[i].name, name) == 0)
			return &t->io_servers[i];
	return NULL;
}

struct vrio_topo_host *vrio_topology_host(const struct vrio_topology *t, const char *name)
{
	for (size_t i = 0; t && name && i < t->n_hosts; i++)
		if (strcmp(t->hosts[i].name, name) == 0)
			return &t->hosts[i];
	return NULL;
}

struct vrio_topo_device *vrio_topology_device(const struct vrio_topology *t, const char *name)
{
	for (size_t i = 0; t && name && i < t->n_devices; i++)
		if (strcmp(t->devices[i].name, name) == 0)
			return &t->devices[i];
	return NULL;
}

const char *vrio_dev_type_name(enum vrio_dev_type t)
{
	for (size_t i = 0; i < ARRAY_SIZE(topo_dev_types); i++)
		if (topo_dev_types[i].type == t)
			return topo_dev_types[i].name;
	return "unknown";
}

/*
 * The key tables by where they sit in the file, for vrio_topology_keys().
 * A table added for a new mapping (a key whose value has keys of its own)
 * belongs here too, or the manual's check cannot see its keys.
 */
static const struct {
	const char *section;
	const struct topo_key *keys;
	size_t n;
} topo_key_tables[] = {
	{ "", root_keys, N_ROOT_KEYS },
	{ "io_servers", ioserver_keys, N_IOS_KEYS },
	{ "io_servers.cores", cores_keys, N_CORES_KEYS },
	{ "io_servers.faults", fault_keys, N_FLT_KEYS },
	{ "io_servers.dpdk", dpdk_keys, N_DPDK_KEYS },
	{ "io_servers.heartbeat", heartbeat_keys, N_HB_KEYS },
	{ "io_servers.tls", tls_keys, N_TLS_KEYS },
	{ "hosts", host_keys, N_HOST_KEYS },
	{ "hosts.dpdk", dpdk_keys, N_DPDK_KEYS },
	{ "networks", network_keys, N_NET_KEYS },
	{ "networks.uplink", uplink_keys, N_UPLINK_KEYS },
	{ "devices", device_keys, N_DEV_KEYS },
	{ "devices.backend", backend_keys, N_BE_KEYS },
	{ "devices.iommu", iommu_keys, N_IOMMU_KEYS },
	/* The stages' names, the keys of interpose's entries, come from
	 * topo_stages[]; their settings from these. */
	{ "devices.interpose.throttle", throttle_keys, N_THR_KEYS },
	{ "devices.interpose.crypt", crypt_keys, N_CRY_KEYS },
	{ "devices.interpose.mirror", backend_keys, N_MIRROR_KEYS },
	{ "devices.interpose.acl", acl_keys, N_ACL_KEYS },
	{ "devices.interpose.acl.rules", rule_keys, N_RULE_KEYS },
	{ "devices.interpose.police", police_keys, N_POLD_KEYS },
	{ "devices.interpose.police.in", police_dir_keys, N_POL_KEYS },
	{ "devices.interpose.police.out", police_dir_keys, N_POL_KEYS },
	{ "devices.interpose.capture", capture_keys, N_CAP_KEYS },
};

void vrio_topology_keys(void (*fn)(const char *section, const char *key, void *arg), void *arg)
{
	for (size_t i = 0; i < ARRAY_SIZE(topo_key_tables); i++)
		for (size_t j = 0; j < topo_key_tables[i].n; j++)
			fn(topo_key_tables[i].section, topo_key_tables[i].keys[j].name, arg);
	for (unsigned k = VRIO_STAGE_THROTTLE; k <= VRIO_STAGE_KIND_MAX; k++)
		fn("devices.interpose", topo_stages[k].name, arg);
}

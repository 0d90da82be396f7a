/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * What an operator feeds every daemon: the topology YAML, as arbitrary text
 * (not NUL-terminated: the parser must keep to `len`).
 *
 * Properties: the parser returns either a topology and 0, or a negative
 * errno, no topology and one line "FILE:LINE:COL: message" (LINE and COL
 * 1-based, within the text). A topology it returns keeps every promise of
 * topology.h: references resolved, names valid and unique, ranges kept.
 *
 * Addresses: getaddrinfo() is wrapped (-Wl,--wrap) to resolve numeric
 * hosts only, so a fuzzed host name never turns into a DNS query; a name
 * then reads as unresolvable, which the parser reports like any bad value.
 */
#include <errno.h>
#include <netdb.h>
#include <stdbool.h>
#include <string.h>

#include "fuzz_input.h"
#include "topology.h"

#define FUZZ_TOPO_NAME "/etc/vrio/topology.yaml"

int __real_getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
		       struct addrinfo **res);
int __wrap_getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
		       struct addrinfo **res);

int __wrap_getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
		       struct addrinfo **res)
{
	struct addrinfo h = { 0 };

	if (hints)
		h = *hints;
	h.ai_flags |= AI_NUMERICHOST;
	return __real_getaddrinfo(node, service, &h, res);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	return 0;
}

static bool name_ok(const char *s)
{
	size_t n = s ? strlen(s) : 0;

	return n >= 1 && n <= 63 &&
	       strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-") == n;
}

/* EAL arguments: NULL, or n_eal strings and a NULL. */
static void check_dpdk(const struct vrio_topo_dpdk *d, const char *node)
{
	unsigned i;

	if (!d->eal) {
		FUZZ_CHECK(d->n_eal == 0, "%s: %u EAL arguments without a list", node, d->n_eal);
		return;
	}
	for (i = 0; i < d->n_eal; i++)
		FUZZ_CHECK(d->eal[i] != NULL, "%s: EAL argument %u is NULL", node, i);
	FUZZ_CHECK(d->eal[d->n_eal] == NULL, "%s: EAL list not NULL-terminated", node);
}

static void check_topology(const struct vrio_topology *t)
{
	size_t i, j;

	FUZZ_CHECK(t->path && !strcmp(t->path, FUZZ_TOPO_NAME), "path %s", t->path);
	FUZZ_CHECK(t->version == 1, "version %u", t->version);
	FUZZ_CHECK(t->n_io_servers >= 1, "no io_server");
	for (i = 0; i < t->n_io_servers; i++) {
		const struct vrio_topo_ioserver *s = &t->io_servers[i];

		FUZZ_CHECK(name_ok(s->name), "io_server name '%s'", s->name);
		FUZZ_CHECK(vrio_topology_ioserver(t, s->name) == s, "io_server %s twice", s->name);
		FUZZ_CHECK(s->transport && s->transport[0], "io_server %s without a transport",
			   s->name);
		check_dpdk(&s->dpdk, s->name);
		FUZZ_CHECK(s->listen != NULL, "io_server %s without listen", s->name);
		FUZZ_CHECK(s->cores_min >= 1 && s->cores_min <= s->cores_max &&
			   s->cores_max <= 64, "cores %u..%u", s->cores_min, s->cores_max);
		FUZZ_CHECK(s->line >= 1 && s->col >= 1, "io_server at %u:%u", s->line, s->col);
	}
	for (i = 0; i < t->n_hosts; i++) {
		const struct vrio_topo_host *h = &t->hosts[i];

		FUZZ_CHECK(name_ok(h->name), "host name '%s'", h->name);
		FUZZ_CHECK(vrio_topology_host(t, h->name) == h, "host %s twice", h->name);
		check_dpdk(&h->dpdk, h->name);
	}
	for (i = 0; i < t->n_networks; i++)
		FUZZ_CHECK(name_ok(t->networks[i].name), "network name '%s'", t->networks[i].name);
	for (i = 0; i < t->n_devices; i++) {
		const struct vrio_topo_device *d = &t->devices[i];

		FUZZ_CHECK(name_ok(d->name), "device name '%s'", d->name);
		FUZZ_CHECK(vrio_topology_device(t, d->name) == d, "device %s twice", d->name);
		FUZZ_CHECK(d->host >= t->hosts && d->host < t->hosts + t->n_hosts,
			   "device %s: host not resolved", d->name);
		FUZZ_CHECK(d->io_server >= t->io_servers &&
			   d->io_server < t->io_servers + t->n_io_servers,
			   "device %s: io_server not resolved", d->name);
		FUZZ_CHECK(d->socket && d->socket[0] == '/' && strlen(d->socket) < 108,
			   "device %s: socket '%s'", d->name, d->socket);
		FUZZ_CHECK(d->queues >= 1 && d->queues <= 64, "device %s: %u queues", d->name,
			   d->queues);
		FUZZ_CHECK(d->queue_size >= 1 && d->queue_size <= 1024 &&
			   !(d->queue_size & (d->queue_size - 1)),
			   "device %s: queue_size %u", d->name, d->queue_size);
		for (j = 0; j < i; j++)
			FUZZ_CHECK(strcmp(t->devices[j].socket, d->socket) != 0,
				   "devices %s and %s share a socket", t->devices[j].name, d->name);
		switch (d->type) {
		case VRIO_DEV_BLK:
			FUZZ_CHECK(d->backend.kind == VRIO_BACKEND_FILE ||
				   d->backend.kind == VRIO_BACKEND_RAM,
				   "device %s: backend kind %d", d->name, (int)d->backend.kind);
			if (d->backend.kind == VRIO_BACKEND_FILE)
				FUZZ_CHECK(d->backend.path && d->backend.path[0] == '/',
					   "device %s: backend path '%s' is not absolute", d->name,
					   d->backend.path);
			else
				FUZZ_CHECK(d->backend.size && d->backend.size % 512 == 0,
					   "device %s: ram size %llu", d->name,
					   (unsigned long long)d->backend.size);
			FUZZ_CHECK(!d->mac && !d->network, "blk device %s has net keys", d->name);
			break;
		case VRIO_DEV_NET:
			FUZZ_CHECK(d->network >= t->networks &&
				   d->network < t->networks + t->n_networks,
				   "device %s: network not resolved", d->name);
			FUZZ_CHECK(d->mac && strlen(d->mac) == 17, "device %s: mac '%s'", d->name,
				   d->mac);
			FUZZ_CHECK(d->backend.kind == VRIO_BACKEND_NONE,
				   "net device %s has a backend", d->name);
			break;
		default:
			FUZZ_CHECK(0, "device %s: type %d", d->name, (int)d->type);
		}
		FUZZ_CHECK(strcmp(vrio_dev_type_name(d->type), "unknown") != 0, "type name");
	}
}

/* "FILE:LINE:COL: message", one line, LINE and COL within the text. */
static void check_error(int rc, const char *err, size_t size)
{
	const size_t nlen = strlen(FUZZ_TOPO_NAME);
	unsigned long line, col;
	const char *p;
	char *end;

	FUZZ_CHECK(rc < 0, "returned %d", rc);
	FUZZ_CHECK(strlen(err) > 0, "error %d without a message", rc);
	for (p = err; *p; p++)
		FUZZ_CHECK((unsigned char)*p >= 0x20, "control byte %#x in '%s'", *p, err);
	FUZZ_CHECK(!strncmp(err, FUZZ_TOPO_NAME ":", nlen + 1), "no file name in '%s'", err);
	if (rc == -ENOMEM && !strcmp(err + nlen, ": out of memory"))
		return;
	p = err + nlen + 1;
	FUZZ_CHECK(*p >= '0' && *p <= '9', "no line in '%s'", err);
	line = strtoul(p, &end, 10);
	FUZZ_CHECK(*end == ':' && end[1] >= '0' && end[1] <= '9', "no column in '%s'", err);
	col = strtoul(end + 1, &end, 10);
	FUZZ_CHECK(end[0] == ':' && end[1] == ' ' && end[2] != '\0', "no message in '%s'", err);
	FUZZ_CHECK(line >= 1 && line <= size + 1, "line %lu of a %zu-byte text: '%s'", line, size,
		   err);
	FUZZ_CHECK(col >= 1 && col <= size + 1, "column %lu of a %zu-byte text: '%s'", col, size,
		   err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct vrio_topology untouched;
	struct vrio_topology *t = &untouched;
	char err[512];
	int rc;

	memset(err, 0x5a, sizeof(err));
	err[sizeof(err) - 1] = '\0';
	rc = vrio_topology_parse(FUZZ_TOPO_NAME, (const char *)data, size, &t, err, sizeof(err));
	if (rc == 0) {
		FUZZ_CHECK(t != &untouched && t != NULL, "0 without a topology");
		check_topology(t);
		vrio_topology_free(t);
	} else {
		FUZZ_CHECK(t == &untouched, "error %d, yet the output was written", rc);
		check_error(rc, err, size);
	}
	return 0;
}
